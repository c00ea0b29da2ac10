"""mmFormer specifics: its token grid follows the patch size (the contract tests reject
a patch that leaves a one-voxel bottleneck)."""
from __future__ import annotations

import pytest
import torch

from trainables.backbones import build_backbone


@pytest.mark.parametrize(("patch", "tokens"), [(32, 8), (48, 27), (80, 125)])
def test_token_grid_follows_the_patch_size(patch: int, tokens: int) -> None:
    model = build_backbone("mmformer", width=1, patch_size=patch)
    assert model.position.weight.shape == (4, tokens, 64)


def test_runs_on_inputs_larger_than_its_patch() -> None:
    """Another input size than the patch (e.g. a whole small volume) gets resampled positional embeddings."""
    torch.manual_seed(0)
    model = build_backbone("mmformer", width=2, patch_size=32).eval()
    with torch.no_grad():
        logits = model(torch.randn(1, 4, 48, 48, 48), torch.tensor([[True, False, True, True]]))
    assert logits.shape == (1, 4, 48, 48, 48)
