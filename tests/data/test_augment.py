from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from trainables.data.augment import (
    Augmentation,
    random_flip,
    random_intensity,
    random_rotation,
    rotate_patch,
    rotation_margin,
)
from trainables.errors import ConfigError


def test_zero_angle_cuts_the_central_patch() -> None:
    image = torch.randn(2, 5, 9, 9)
    label = torch.randint(0, 4, (5, 9, 9))
    patch, patch_label = rotate_patch(image, label, 0, 0.0, 5)
    torch.testing.assert_close(patch, image[:, :, 2:7, 2:7])
    assert torch.equal(patch_label, label[:, 2:7, 2:7])


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_quarter_turn_matches_rot90(axis: int) -> None:
    block_shape = [7, 7, 7]
    block_shape[axis] = 5
    image = torch.randn(1, *block_shape)
    label = torch.randint(0, 4, tuple(block_shape))
    patch, patch_label = rotate_patch(image, label, axis, math.pi / 2, 5)
    centre = tuple(slice(None) if a == axis else slice(1, 6) for a in range(3))
    plane = [a for a in range(3) if a != axis]
    expected = torch.rot90(image[(slice(None), *centre)], 1, (plane[1] + 1, plane[0] + 1))
    torch.testing.assert_close(patch, expected, atol=1e-5, rtol=0)
    assert torch.equal(patch_label, torch.rot90(label[centre], 1, (plane[1], plane[0])))


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("degrees", [-10.0, 10.0])
def test_margin_leaves_no_empty_corner(axis: int, degrees: float) -> None:
    angle = math.radians(degrees)
    margin = rotation_margin(80, angle)
    assert margin == 7 and rotation_margin(80, 0.0) == 0
    shape = [80 + 2 * margin] * 3
    shape[axis] = 80
    patch, label = rotate_patch(torch.ones(4, *shape), torch.ones(shape, dtype=torch.uint8), axis, angle, 80)
    torch.testing.assert_close(patch, torch.ones(4, 80, 80, 80))
    assert (label == 1).all()
    too_small = [size - 2 if a != axis else size for a, size in enumerate(shape)]
    corners, _ = rotate_patch(torch.ones(4, *too_small), torch.ones(too_small), axis, angle, 80)
    assert (corners < 1 - 1e-4).any()  # so the margin is needed


def test_random_draws_stay_in_range() -> None:
    rng = np.random.default_rng(0)
    draws = [random_rotation(rng, 10) for _ in range(50)]
    assert {axis for axis, _ in draws} == {0, 1, 2} and all(abs(angle) <= math.radians(10) for _, angle in draws)
    changed = random_intensity(torch.ones(4, 3, 3, 3), rng, 0.1, 0.1).flatten(1)
    assert (changed == changed[:, :1]).all() and ((changed - 1).abs() <= 0.2 + 1e-6).all()
    flipped, flipped_label = random_flip(torch.arange(8.0).reshape(1, 2, 2, 2), torch.arange(8).reshape(2, 2, 2), rng)
    assert torch.equal(flipped[0].long(), flipped_label)


@pytest.mark.parametrize(
    ("options", "pattern"),
    [
        ({"max_rotation_degrees": 90}, "max_rotation_degrees must be >= 0 and <= 45"),
        ({"intensity_scale": 1.5}, "intensity_scale must be"),
    ],
)
def test_bad_augmentation_options(options: dict, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        Augmentation(**options)
