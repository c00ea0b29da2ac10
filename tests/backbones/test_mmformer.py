"""mmFormer specifics: the reference's token layout and attention over all tokens, its dropouts,
and a token grid that follows the patch size.

The contract tests (``test_contract.py``) cover shapes, student independence and the parameter
count; the parity tests compare whole training steps with the reference's.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from trainables.backbones import build_backbone
from trainables.backbones.mmformer import MMFormer
from trainables.modalities import MODALITIES

PATCH = 32  # token grid 2
WIDTH = 1  # transformer dimension 64


@pytest.fixture(scope="module")
def model() -> MMFormer:
    torch.manual_seed(0)
    return build_backbone("mmformer", width=WIDTH, patch_size=PATCH).double().eval()


@pytest.mark.parametrize(("patch", "tokens"), [(32, 8), (48, 27), (80, 125)])
def test_token_grid_follows_the_patch_size(patch: int, tokens: int) -> None:
    model = build_backbone("mmformer", width=1, patch_size=patch)
    assert [getattr(model, f"{name}_pos").shape for name in MODALITIES] == 4 * [(1, tokens, 64)]


def test_runs_on_inputs_larger_than_its_patch() -> None:
    """Another input size than the patch (e.g. a whole small volume) gets resampled positional embeddings."""
    torch.manual_seed(0)
    model = build_backbone("mmformer", width=2, patch_size=32).eval()
    with torch.no_grad():
        logits = model(torch.randn(1, 4, 48, 48, 48), torch.tensor([[True, False, True, True]]))
    assert logits.shape == (1, 4, 48, 48, 48)


def test_mixed_tokens_are_reassembled_by_a_plain_reshape(monkeypatch: pytest.MonkeyPatch) -> None:
    """Voxel ``v`` of the inter-modal output holds tokens ``4v .. 4v+3`` of the modality-major
    sequence (the reference's ``.view``), not the four modalities' tokens at ``v``."""
    model = build_backbone("mmformer", width=WIDTH, patch_size=PATCH).double()
    monkeypatch.setattr(model.multimodal_transformer, "forward", lambda tokens, position: tokens)
    model.multimodal_decode_conv = nn.Identity()
    intra = torch.randn(1, 4, 64, 2, 2, 2, dtype=torch.float64)
    sequence = intra.flatten(3).transpose(2, 3).flatten(1, 2)[0]  # (4 * 8 tokens) x 64, modality-major
    volume = model._inter_modal(intra)[0].flatten(1)  # (4 * 64) x 8 voxels
    for voxel in range(8):
        for slot in range(4):
            torch.testing.assert_close(volume[slot * 64 : (slot + 1) * 64, voxel], sequence[4 * voxel + slot])


def test_absent_modalities_take_part_in_attention_through_their_positions(model: MMFormer) -> None:
    """A FLAIR-only student depends on the T2 positional embedding: absent tokens are zeroed, not masked out."""
    images = torch.randn(1, 4, PATCH, PATCH, PATCH, dtype=torch.float64)
    flair = torch.tensor([[True, False, False, False]])
    with torch.no_grad():
        features = model.encode_present(images, flair)
        before = model.fuse(features, flair).logits
        model.t2_pos.add_(1.0)
        after = model.fuse(features, flair).logits
        model.t2_pos.sub_(1.0)
    assert not torch.allclose(before, after)


def test_every_dropout_is_a_module() -> None:
    """Training differs from evaluation only by dropout, and zeroing every ``nn.Dropout`` switches it
    off (the parity tests rely on this: the fixtures were computed without dropout)."""
    torch.manual_seed(0)
    model = build_backbone("mmformer", width=WIDTH, patch_size=PATCH).double()
    images = torch.randn(1, 4, PATCH, PATCH, PATCH, dtype=torch.float64)
    mask = torch.tensor([[True, True, False, True]])

    def logits() -> torch.Tensor:
        torch.manual_seed(1)
        with torch.no_grad():
            return model(images, mask)

    model.eval()
    expected = logits()
    model.train()
    assert not torch.allclose(logits(), expected)
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
    torch.testing.assert_close(logits(), expected)
