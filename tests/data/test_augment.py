"""The reference's augmentation: draws, rotation, intensity change, flips and their order."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from scipy import ndimage

from trainables.data.augment import (
    REFERENCE_FILL,
    ROTATION_PLANES,
    Augmentation,
    AugmentationDraw,
    augment_patch,
    draw_augmentation,
    flip_patch,
    random_intensity,
    rotate_patch,
)
from trainables.errors import ConfigError

P = 20


def _patch(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((P, P, P, 4)).astype(np.float32), rng.integers(0, 4, (P, P, P)).astype(np.uint8)


def test_angles_are_integers_from_minus_10_to_9_about_a_uniform_plane() -> None:
    rng = np.random.default_rng(0)
    draws = [draw_augmentation(rng, Augmentation()) for _ in range(4000)]
    angles = Counter(draw.degrees for draw in draws)
    assert all(isinstance(draw.degrees, int) for draw in draws)
    assert sorted(angles) == list(range(-10, 10)), "numpy's randint(-10, 10): 10 is never drawn"
    assert min(angles.values()) > 4000 / 20 * 0.7
    planes = Counter(draw.plane for draw in draws)
    assert set(planes) == set(ROTATION_PLANES) and min(planes.values()) > 4000 / 3 * 0.9
    flips = np.array([draw.flips for draw in draws])
    assert np.allclose(flips.mean(axis=0), 0.5, atol=0.03)


def test_no_flips_and_no_rotation_when_switched_off() -> None:
    draw = draw_augmentation(np.random.default_rng(0), Augmentation(max_rotation_degrees=0, flip=False))
    assert draw.degrees == 0 and draw.flips == (False, False, False)


@pytest.mark.parametrize("plane", ROTATION_PLANES)
def test_rotation_equals_the_references_scipy_call_at_every_angle(plane: tuple[int, int]) -> None:
    # The reference's RandomRotion, restated: each image channel and the uint8 labels through
    # scipy.ndimage.rotate(..., axes=plane, reshape=False, order=0, mode="constant", cval=-1).
    rng = np.random.default_rng(1)
    image = rng.standard_normal((14, 12, 9, 4)).astype(np.float32)  # not a cube: no axis mix-up hides
    label = rng.integers(0, 4, image.shape[:3]).astype(np.uint8)
    options = {"axes": plane, "reshape": False, "order": 0, "mode": "constant", "cval": -1}
    for degrees in range(-10, 10):
        rotated, rotated_label = rotate_patch(image, label, plane, degrees, np.full(4, REFERENCE_FILL))
        expected = np.stack([ndimage.rotate(image[..., c], degrees, **options) for c in range(4)], axis=-1)
        np.testing.assert_array_equal(rotated, expected, err_msg=f"{degrees} degrees")
        np.testing.assert_array_equal(rotated_label, ndimage.rotate(label, degrees, **options))
        assert rotated.dtype == np.float32 and rotated_label.dtype == np.uint8


def test_nearest_rotation_keeps_values_and_fills_the_corners() -> None:
    image, label = _patch()
    fill = np.array([-1.0, -2.0, -3.0, -4.0])
    rotated, rotated_label = rotate_patch(image, label, (2, 0), 9, fill)
    for channel in range(4):
        values = set(np.unique(rotated[..., channel]))
        assert values <= set(np.unique(image[..., channel])) | {np.float32(fill[channel])}, "no interpolated value"
        assert rotated[0, P // 2, 0, channel] == fill[channel], "a corner of the rotation plane"
        assert rotated[P // 2, P // 2, P // 2, channel] == image[P // 2, P // 2, P // 2, channel], "the centre stays"
    assert set(np.unique(rotated_label)) <= {0, 1, 2, 3} and rotated_label[0, P // 2, 0] == 0
    ones, _ = rotate_patch(np.ones((P, P, P, 1), np.float32), label, (1, 0), 9, np.array([5.0]))
    assert (ones[:, :, 3] == 5.0).sum() > 0 and np.isin(ones, [1.0, 5.0]).all()


@pytest.mark.parametrize("plane", ROTATION_PLANES)
def test_a_quarter_turn_is_rot90_from_the_lower_axis_to_the_higher(plane: tuple[int, int]) -> None:
    # The direction matters: the angles are not symmetric about 0 (-10 is drawn, 10 is not).
    image, label = _patch()
    rotated, rotated_label = rotate_patch(image, label, plane, 90, np.zeros(4))
    np.testing.assert_array_equal(rotated, np.rot90(image, 1, axes=sorted(plane)))
    np.testing.assert_array_equal(rotated_label, np.rot90(label, 1, axes=sorted(plane)))


def test_intensity_factors_are_per_slice_and_channel_shift_drawn_first() -> None:
    image = np.ones((P, P, P, 4), np.float32)
    changed = random_intensity(image, np.random.default_rng(7), 0.1, 0.1)
    rng = np.random.default_rng(7)
    shift = rng.uniform(-0.1, 0.1, (P, 1, 1, 4))
    scale = rng.uniform(0.9, 1.1, (P, 1, 1, 4))
    np.testing.assert_array_equal(changed, (image * scale + shift).astype(np.float32))
    assert changed.dtype == np.float32
    per_slice = changed.reshape(P, -1, 4)
    assert (per_slice == per_slice[:, :1]).all(), "one factor per slice of the first axis and channel"
    assert len(np.unique(per_slice[:, 0, 0])) == P and len(np.unique(per_slice[0, 0])) == 4
    assert (np.abs(changed - 1) <= 0.1 * 1 + 0.1 + 1e-6).all()


def test_flips_move_image_and_labels_together() -> None:
    image, label = _patch()
    image[..., 0] = label
    flipped, flipped_label = flip_patch(image, label, (True, False, True))
    np.testing.assert_array_equal(flipped[..., 0], flipped_label)
    np.testing.assert_array_equal(flipped_label, label[::-1, :, ::-1])
    assert flip_patch(image, label, (False, False, False))[1] is label


@pytest.mark.parametrize(("fill", "expected"), [("reference", [-1.0] * 4), ("background", [0.5, -0.2, -1.3, 2.0])])
def test_augment_patch_rotates_with_the_chosen_fill(fill: str, expected: list[float]) -> None:
    image, label = _patch()
    options = Augmentation(intensity_scale=0.0, intensity_shift=0.0, rotation_fill=fill)
    draw = AugmentationDraw((2, 1), 9, (False, False, False))
    augmented, _ = augment_patch(
        image, label, draw, np.random.default_rng(0), options, np.array([0.5, -0.2, -1.3, 2.0])
    )
    np.testing.assert_allclose(augmented[P // 2, 0, 0], expected)


def test_augment_patch_order_is_rotate_intensity_flip() -> None:
    image, label = _patch()
    options = Augmentation()
    draw = AugmentationDraw((1, 0), 5, (True, True, False))
    augmented, augmented_label = augment_patch(image, label, draw, np.random.default_rng(1), options, np.zeros(4))
    rotated, rotated_label = rotate_patch(image, label, (1, 0), 5, np.full(4, REFERENCE_FILL))
    expected = random_intensity(rotated, np.random.default_rng(1), 0.1, 0.1)[::-1, ::-1]
    np.testing.assert_array_equal(augmented, expected)
    np.testing.assert_array_equal(augmented_label, rotated_label[::-1, ::-1])


@pytest.mark.parametrize(
    ("options", "pattern"),
    [
        ({"max_rotation_degrees": 90}, "max_rotation_degrees must be an integer >= 0 and <= 45"),
        ({"max_rotation_degrees": 7.5}, "max_rotation_degrees must be an integer"),
        ({"intensity_scale": 1.5}, "intensity_scale must be"),
        ({"rotation_fill": "zero"}, "rotation_fill must be one of reference, background"),
    ],
)
def test_bad_augmentation_options(options: dict, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        Augmentation(**options)
