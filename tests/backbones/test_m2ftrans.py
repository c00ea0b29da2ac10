"""M2FTrans: the reference's parameters, token grid, fusion-token masking, spatial weights, deep supervision.

The contract tests (``test_contract.py``) cover shapes, student independence and the
parameter count; the parity tests (``tests/parity``) the reference's values.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from trainables.backbones import build_backbone
from trainables.backbones.m2ftrans import M2FTrans
from trainables.backbones.m2ftrans_transformer import bottleneck_attention_mask

PATCH = 32  # token grid 2
WIDTH = 2
MASKS = torch.tensor([[True, False, True, True], [False, True, False, False], [True, True, True, True]])
REFERENCE_PARAMETERS = (
    Path(__file__).resolve().parents[1] / "fixtures" / "reference" / "parity" / "m2ftrans-params.json"
)


@pytest.fixture(scope="module")
def model() -> M2FTrans:
    torch.manual_seed(0)
    return build_backbone("m2ftrans", width=WIDTH, patch_size=PATCH).double().eval()


def encoded(model: M2FTrans, batch: int, seed: int = 1) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(batch, 4, PATCH, PATCH, PATCH, generator=generator, dtype=torch.float64)
    with torch.no_grad():
        return model.encode_present(images, torch.ones(batch, 4, dtype=torch.bool))


def test_state_dict_is_the_references_in_order() -> None:
    """Names, shapes and order of the reference ``state_dict`` at width 8, so its weights load by name."""
    reference = [
        (entry["name"], tuple(entry["shape"])) for entry in json.loads(REFERENCE_PARAMETERS.read_text())["entries"]
    ]
    ours = [(name, tuple(value.shape)) for name, value in build_backbone("m2ftrans").state_dict().items()]
    assert ours == reference


def test_dropouts_are_the_references() -> None:
    """19 dropouts of 0.1: five per transformer layer (attention weights, projection, after
    the projection, two in the MLP) and one per cross-attention block."""
    rates = [
        module.p
        for module in build_backbone("m2ftrans", width=1, patch_size=32).modules()
        if isinstance(module, torch.nn.Dropout)
    ]
    assert rates == [0.1] * 19


@pytest.mark.parametrize(("patch_size", "grid"), [(32, 2), (80, 5)])
def test_token_grid_follows_the_patch_size(patch_size: int, grid: int) -> None:
    model = build_backbone("m2ftrans", width=1, patch_size=patch_size)
    assert model.pos.shape == (1, 5 * grid**3, 16)
    assert model.fusion.shape == (1, grid**3, 16)


def test_bottleneck_attention_mask_blocks() -> None:
    mask = bottleneck_attention_mask(torch.tensor([[True, False]]), 2)[0, 0]
    expected = torch.tensor(
        [
            [1, 1, 0, 0, 0, 0],  # a modality's tokens attend to that modality only
            [1, 1, 0, 0, 0, 0],
            [0, 0, 1, 1, 0, 0],  # an absent one's too, and the fusion tokens ignore it
            [0, 0, 1, 1, 0, 0],
            [1, 1, 0, 0, 1, 1],  # fusion tokens: the present modality and themselves
            [1, 1, 0, 0, 1, 1],
        ],
        dtype=torch.bool,
    )
    assert torch.equal(mask, expected)


def capture_spatial_weights(model: M2FTrans, features: list[torch.Tensor], mask: torch.Tensor) -> dict:
    """One fusion pass, capturing the first layer's attention as applied and the decoder's weighted inputs."""
    captured: dict = {}
    first = model.Bottleneck.trans_bottle.cross_attention_list[0].fn.fn
    hooks = [
        first.attn_drop.register_forward_hook(lambda module, args, output: captured.update(attention=output)),
        model.decoder_fusion.register_forward_pre_hook(lambda module, args: captured.update(levels=args[0])),
    ]
    try:
        model.fuse(features, mask)
    finally:
        for hook in hooks:
            hook.remove()
    return captured


@pytest.mark.parametrize("training", [False, True])
def test_every_level_is_weighted_by_the_fusion_tokens_attention(model: M2FTrans, training: bool) -> None:
    """The weight of a modality's token is the first layer's attention to it from all fusion
    tokens, summed over heads, after attention dropout (in training); each level's features are
    scaled by it, nearest-upsampled."""
    features = encoded(model, len(MASKS))
    torch.manual_seed(2)
    model.train(training)
    try:
        with torch.no_grad():
            captured = capture_spatial_weights(model, features, MASKS)
    finally:
        model.eval()
    grid = features[-1].shape[3:]
    tokens = grid.numel()
    attention = captured["attention"]
    weights = attention[:, :, 4 * tokens :, : 4 * tokens].sum(dim=(1, 2)).reshape(len(MASKS), 4, *grid)
    assert torch.all(weights[~MASKS] == 0) and torch.all(weights[MASKS] > 0)
    dropped = (attention == 0) & bottleneck_attention_mask(MASKS, tokens)
    assert torch.any(dropped) == training
    levels = captured["levels"]
    assert len(levels) == 5
    for level, (weighted, raw) in enumerate(zip(levels[:-1], features[:-1])):
        factor = 2 ** (len(features) - 1 - level)
        upsampled = weights.repeat_interleave(factor, 2).repeat_interleave(factor, 3).repeat_interleave(factor, 4)
        torch.testing.assert_close(weighted, raw * upsampled[:, :, None])
    assert torch.all(levels[-1][~MASKS] == 0)


def test_deep_supervision_has_five_heads_the_coarsest_on_the_fusion_tokens(
    model: M2FTrans,
) -> None:
    features = encoded(model, 1)
    captured: dict = {}
    hook = model.decoder_fusion.prm_fusion5.register_forward_pre_hook(lambda module, args: captured.update(x=args[0]))
    try:
        with torch.no_grad():
            output = model.fuse(features, MASKS[:1])
    finally:
        hook.remove()
    scales = [scale for scale, _ in model.deep_supervision]
    assert [weight for _, weight in model.deep_supervision] == [
        0.5,
        0.25,
        0.125,
        0.0625,
        0.03125,
    ]
    assert [aux.shape[2:] for aux in output.aux_logits] == [(PATCH // scale,) * 3 for scale in scales]
    assert captured["x"].shape == (
        1,
        16 * WIDTH,
        2,
        2,
        2,
    )  # the fusion tokens, after the transformer


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
