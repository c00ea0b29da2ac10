"""Every registered backbone honours the contract PASSION, training and evaluation rely on."""

from __future__ import annotations

import functools

import pytest
import torch

from trainables.backbones import Backbone, FusionOutput, backbone_names, build_backbone
from trainables.errors import ConfigError
from trainables.passion import PassionConfig, training_step

WIDTH = 4
# Parameters at the reference width 8 and patch 80: exactly the reference's for all three.
PARAMETERS_AT_WIDTH_8 = {"rfnet": 2_381_792, "mmformer": 35_599_184, "m2ftrans": 13_194_788}
MASKS = torch.tensor([[True, False, True, True], [False, True, False, False], [True, True, True, True]])


@functools.cache
def patch_sizes(name: str) -> tuple[int, int]:
    """Two small patch sizes for backbone ``name``: 2 and 3 times its total downsampling.

    Twice, not once: a one-voxel bottleneck can be neither reflect-padded nor instance-normalised.
    """
    divisor = build_backbone(name, width=WIDTH, patch_size=128).size_divisor
    return 2 * divisor, 3 * divisor


def seeded_backbone(name: str, patch_size: int) -> Backbone:
    torch.manual_seed(0)
    return build_backbone(name, width=WIDTH, patch_size=patch_size).eval()


def all_present(batch: int) -> torch.Tensor:
    return torch.ones(batch, 4, dtype=torch.bool)


def assert_same_output(actual: FusionOutput, expected: FusionOutput) -> None:
    torch.testing.assert_close(actual.logits, expected.logits)
    for actual_aux, expected_aux in zip(actual.aux_logits, expected.aux_logits, strict=True):
        torch.testing.assert_close(actual_aux, expected_aux)
    torch.testing.assert_close(actual.features[0], expected.features[0])


@pytest.mark.parametrize("size_rank", [0, 1])
@pytest.mark.parametrize("name", backbone_names())
def test_output_shapes(name: str, size_rank: int) -> None:
    patch = patch_sizes(name)[size_rank]
    model = seeded_backbone(name, patch)
    images = torch.randn(len(MASKS), 4, patch, patch, patch)
    with torch.no_grad():
        features = model.encode_present(images, MASKS)
        output = model.fuse(features, MASKS)
        separate = model.separate([level[:, 0] for level in features]) if model.has_separate_decoder else None
    assert output.logits.shape == (len(MASKS), 4, patch, patch, patch)
    # Each auxiliary output, upsampled by its declared factor, covers the input.
    assert [aux.shape for aux in output.aux_logits] == [
        (len(MASKS), 4, *(3 * [patch // scale])) for scale, _ in model.deep_supervision
    ]
    assert output.features[0].shape[0] == len(MASKS) and output.features[0].shape[2:] == (patch, patch, patch)
    assert separate is None or separate.shape == (len(MASKS), 4, patch, patch, patch)


@pytest.mark.parametrize("name", backbone_names())
def test_deep_supervision_declares_upsamplings_and_halving_weights(name: str) -> None:
    declared = build_backbone(name, width=WIDTH, patch_size=patch_sizes(name)[0]).deep_supervision
    assert declared, "a backbone must declare its auxiliary outputs"
    scales = [scale for scale, _ in declared]
    assert scales == sorted(scales) and all(scale >= 1 and scale & (scale - 1) == 0 for scale in scales)
    assert [weight for _, weight in declared] == [2.0 ** -(k + 1) for k in range(len(declared))]


@pytest.mark.parametrize("name", backbone_names())
def test_rejects_a_patch_size_off_its_grid_or_too_small(name: str) -> None:
    smallest = patch_sizes(name)[0]
    for patch in (smallest + 1, smallest // 2):
        message = rf"patch_size must be a multiple of \d+ and at least {smallest} for \w+, got {patch}"
        with pytest.raises(ConfigError, match=message):
            build_backbone(name, width=WIDTH, patch_size=patch)


@pytest.mark.parametrize("name", backbone_names())
def test_fusion_ignores_absent_modalities(name: str) -> None:
    """What absent modalities hold (features of other images, zeros, noise) never reaches the output."""
    patch = patch_sizes(name)[0]
    model = seeded_backbone(name, patch)
    images = torch.randn(len(MASKS), 4, patch, patch, patch)
    other = torch.where(MASKS[..., None, None, None], images, torch.randn_like(images))
    with torch.no_grad():
        expected = model.fuse(model.encode_present(images, all_present(len(MASKS))), MASKS)
        from_other_images = model.fuse(model.encode_present(other, all_present(len(MASKS))), MASKS)
        zeroed = model.fuse(model.encode_present(images, MASKS), MASKS)
        noisy_features = [
            torch.where(MASKS.reshape(*MASKS.shape, *[1] * (level.dim() - 2)), level, 1e3 * torch.randn_like(level))
            for level in model.encode_present(images, all_present(len(MASKS)))
        ]
        from_noise = model.fuse(noisy_features, MASKS)
    for actual in (from_other_images, zeroed, from_noise):
        assert_same_output(actual, expected)


@pytest.mark.parametrize("name", backbone_names())
def test_each_student_depends_only_on_its_modality(name: str) -> None:
    """The one-hot students, fused as one batch (as PASSION does), ignore the other modalities' images."""
    patch = patch_sizes(name)[0]
    model = seeded_backbone(name, patch)
    images = torch.randn(1, 4, patch, patch, patch).expand(4, -1, -1, -1, -1)
    changed = images + torch.randn(4, 4, 1, 1, 1) * (1 - torch.eye(4))[..., None, None, None]
    students = torch.eye(4, dtype=torch.bool)
    with torch.no_grad():
        before = model.fuse(model.encode_present(images, all_present(4)), students)
        after = model.fuse(model.encode_present(changed, all_present(4)), students)
    assert_same_output(after, before)


@pytest.mark.parametrize("name", backbone_names())
def test_batched_fusion_equals_fusing_each_sample_alone(name: str) -> None:
    """Samples with different masks do not interact; in float64 so that the batch size's effect on
    the summation order of the kernels stays below the tolerance."""
    patch = patch_sizes(name)[0]
    model = seeded_backbone(name, patch).double()
    images = torch.randn(len(MASKS), 4, patch, patch, patch, dtype=torch.float64)
    with torch.no_grad():
        features = model.encode_present(images, all_present(len(MASKS)))
        batched = model.fuse(features, MASKS)
        for row in range(len(MASKS)):
            alone = model.fuse([level[row : row + 1] for level in features], MASKS[row : row + 1])
            torch.testing.assert_close(batched.logits[row : row + 1], alone.logits)
            torch.testing.assert_close(batched.features[0][row : row + 1], alone.features[0])


@pytest.mark.parametrize("name", backbone_names())
def test_a_passion_step_reaches_every_parameter(name: str) -> None:
    patch = patch_sizes(name)[0]
    model = seeded_backbone(name, patch).train()
    images = torch.randn(1, 4, patch, patch, patch)
    labels = torch.randint(0, 4, (1, patch, patch, patch))
    step = training_step(
        model,
        images,
        labels,
        fusion_mask=all_present(1),
        counted=all_present(1),
        beta=torch.ones(4),
        modality_weights=torch.ones(4),
        config=PassionConfig(),
        warmup=False,
    )
    assert torch.isfinite(step.total)
    unreached = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not unreached


@pytest.mark.parametrize("name", backbone_names())
def test_parameter_count_at_the_reference_size(name: str) -> None:
    count = sum(parameter.numel() for parameter in build_backbone(name, width=8, patch_size=80).parameters())
    print(f"{name}: {count:,} parameters at width 8, patch 80")
    assert name in PARAMETERS_AT_WIDTH_8, f"record {name}'s {count:,} parameters in PARAMETERS_AT_WIDTH_8"
    assert count == PARAMETERS_AT_WIDTH_8[name]


@pytest.mark.parametrize("name", backbone_names())
def test_rejects_a_width_below_its_smallest(name: str) -> None:
    smallest = build_backbone(name, width=WIDTH, patch_size=patch_sizes(name)[0]).min_width
    with pytest.raises(ConfigError, match=rf"width must be >= {smallest} for \w+, got {smallest - 1}"):
        build_backbone(name, width=smallest - 1, patch_size=patch_sizes(name)[0])
