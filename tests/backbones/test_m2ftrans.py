"""M2FTrans: token grid, fusion-token masking, spatial-weighted attention, exact masking at every level.

The contract tests (``test_contract.py``) cover shapes, student independence and the parameter count.
"""
from __future__ import annotations

import pytest
import torch

from trainables.backbones import build_backbone
from trainables.backbones.m2ftrans import M2FTrans, bottleneck_attention_mask
from trainables.backbones.transformer import volume_to_tokens

PATCH = 32  # token grid 2
WIDTH = 2
MASKS = torch.tensor([[True, False, True, True], [False, True, False, False], [True, True, True, True]])


@pytest.fixture(scope="module")
def model() -> M2FTrans:
    torch.manual_seed(0)
    return build_backbone("m2ftrans", width=WIDTH, patch_size=PATCH).double().eval()


def encoded(model: M2FTrans, batch: int, seed: int = 1) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(batch, 4, PATCH, PATCH, PATCH, generator=generator, dtype=torch.float64)
    with torch.no_grad():
        return model.encode_present(images, torch.ones(batch, 4, dtype=torch.bool))


@pytest.mark.parametrize(("patch_size", "grid"), [(32, 2), (80, 5)])
def test_token_grid_follows_the_patch_size(patch_size: int, grid: int) -> None:
    model = build_backbone("m2ftrans", width=1, patch_size=patch_size)
    assert model.bottleneck.position.weight.shape == (5, grid**3, 16)
    assert model.bottleneck.fusion_tokens.weight.shape == (1, grid**3, 16)


def test_bottleneck_attention_mask_blocks() -> None:
    valid = torch.tensor([[True, False]])
    mask = bottleneck_attention_mask(valid, 2)[0, 0]
    expected = torch.tensor(
        [
            [1, 1, 0, 0, 0, 0],  # block 0 attends to itself
            [1, 1, 0, 0, 0, 0],
            [0, 0, 1, 1, 0, 0],  # block 1 (padding) too, and nobody attends to it
            [0, 0, 1, 1, 0, 0],
            [1, 1, 0, 0, 1, 1],  # fusion tokens: the valid block and themselves
            [1, 1, 0, 0, 1, 1],
        ],
        dtype=torch.bool,
    )
    assert torch.equal(mask, expected)


def published_bottleneck(
    model: M2FTrans, features: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The reference's bottleneck: all K+1 token blocks in one sequence, attention masked."""
    bottleneck = model.bottleneck
    batch, modalities, dim = features.shape[:3]
    tokens = volume_to_tokens(features.flatten(0, 1)).reshape(batch, -1, dim)
    per_block = tokens.shape[1] // modalities
    tokens = torch.cat((tokens, bottleneck.fusion_tokens.weight.expand(batch, -1, -1)), dim=1)
    tokens = tokens + bottleneck.position.weight.flatten(0, 1)
    attention_mask = bottleneck_attention_mask(mask, per_block)
    first = bottleneck.transformer.layers[0]
    attention = first.attention.attention_weights(first.attention_norm(tokens), attention_mask)
    weights = attention[:, :, modalities * per_block :, : modalities * per_block].sum(dim=(1, 2))
    mixed = bottleneck.transformer(tokens, mask=attention_mask)
    return mixed[:, : modalities * per_block].unflatten(1, (modalities, per_block)), mixed[:, -per_block:], weights


def test_bottleneck_equals_the_published_full_sequence(model: M2FTrans) -> None:
    features = encoded(model, len(MASKS))[-1]
    with torch.no_grad():
        modality, fusion, weights = model.bottleneck(features, MASKS)
        ref_modality, ref_fusion, ref_weights = published_bottleneck(model, features, MASKS)
    torch.testing.assert_close(volume_to_tokens(fusion), ref_fusion)
    torch.testing.assert_close(weights.flatten(1), ref_weights)
    for row, present in enumerate(MASKS):
        for k in present.nonzero().flatten().tolist():
            torch.testing.assert_close(volume_to_tokens(modality[row, k : k + 1])[0], ref_modality[row, k])


def test_spatial_weights_are_the_fusion_tokens_attention(model: M2FTrans) -> None:
    features = encoded(model, len(MASKS))[-1]
    with torch.no_grad():
        _, _, weights = model.bottleneck(features, MASKS)
    tokens = features.shape[-1] ** 3
    heads = model.bottleneck.transformer.layers[0].attention.heads
    assert weights.shape == (len(MASKS), 4, *features.shape[-3:])
    assert torch.all(weights[~MASKS] == 0) and torch.all(weights[MASKS] > 0)
    # Each fusion token's attention sums to one over the present modalities and the fusion tokens.
    assert torch.all(weights.flatten(1).sum(dim=1) < heads * tokens)
    assert not weights.requires_grad


def test_every_level_is_weighted_by_the_upsampled_spatial_weights(model: M2FTrans) -> None:
    features = encoded(model, len(MASKS))
    captured: dict[str, list[torch.Tensor]] = {}
    hook = model.fusion_decoder.register_forward_pre_hook(lambda module, args: captured.update(levels=args[0]))
    try:
        with torch.no_grad():
            model.fuse(features, MASKS)
            tokens, _, weights = model.bottleneck(features[-1], MASKS)
    finally:
        hook.remove()
    # Encoder levels 0..3, then the transformer's modality tokens at the token grid.
    for level, (weighted, raw) in enumerate(zip(captured["levels"], [*features[:-1], tokens], strict=True)):
        factor = 2 ** (len(features) - 1 - level)
        upsampled = weights.repeat_interleave(factor, 2).repeat_interleave(factor, 3).repeat_interleave(factor, 4)
        torch.testing.assert_close(weighted, raw * upsampled[:, :, None])


def test_no_gradient_reaches_absent_modalities(model: M2FTrans) -> None:
    model.train()
    try:
        leaves = [level.requires_grad_() for level in encoded(model, len(MASKS))]
        output = model.fuse(leaves, MASKS)
        (output.logits.sum() + sum(aux.sum() for aux in output.aux_logits)).backward()
    finally:
        model.eval()
    for level in leaves:
        assert torch.all(level.grad[~MASKS] == 0)
        assert torch.any(level.grad[MASKS] != 0)


def test_runs_on_another_input_size(model: M2FTrans) -> None:
    images = torch.randn(1, 4, 48, 48, 48, dtype=torch.float64)
    with torch.no_grad():
        logits = model(images, MASKS[:1])
    assert logits.shape == (1, 4, 48, 48, 48)
