"""Random augmentation of training patches (reference settings: rotation up to 10 degrees,
intensity scale and shift 0.1 per channel, flips).

The rotation resamples a block read slightly larger than the patch (see
:func:`rotation_margin`), so the rotated patch has no empty corners.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from trainables.errors import ConfigError

__all__ = ["Augmentation", "random_rotation", "rotation_margin", "rotate_patch", "random_intensity", "random_flip"]


@dataclass(frozen=True)
class Augmentation:
    """Options of the training-patch augmentation; the defaults are the reference's.

    Attributes:
        max_rotation_degrees: rotation angle drawn from U(-max, max) about a random axis.
        intensity_scale: each channel is multiplied by 1 + U(-scale, scale).
        intensity_shift: then U(-shift, shift) is added to each channel.
        flip: flip each spatial axis with probability 1/2.
    """

    max_rotation_degrees: float = 10.0
    intensity_scale: float = 0.1
    intensity_shift: float = 0.1
    flip: bool = True

    def __post_init__(self) -> None:
        if not 0 <= self.max_rotation_degrees <= 45:
            raise ConfigError(f"max_rotation_degrees must be >= 0 and <= 45, got {self.max_rotation_degrees}")
        for option in ("intensity_scale", "intensity_shift"):
            if not 0 <= getattr(self, option) < 1:
                raise ConfigError(f"{option} must be >= 0 and < 1, got {getattr(self, option)}")


def random_rotation(rng: np.random.Generator, max_degrees: float) -> tuple[int, float]:
    """A spatial axis drawn uniformly and an angle in radians drawn from U(-max, max) degrees."""
    return int(rng.integers(3)), math.radians(rng.uniform(-max_degrees, max_degrees))


def rotation_margin(patch_size: int, angle: float) -> int:
    """Voxels to add on each side of a patch, in the rotation plane, so that the patch rotated
    by ``angle`` (radians) lies inside the block."""
    half = (patch_size - 1) / 2
    reach = (abs(math.cos(angle)) + abs(math.sin(angle))) * half  # farthest sample from the centre
    return max(math.ceil(reach - half - 1e-6), 0)


def rotate_patch(
    image: torch.Tensor, label: torch.Tensor, axis: int, angle: float, patch_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate a block about its centre and ``axis`` and cut the central patch.

    A rotation about a coordinate axis moves voxels only within the slices across it, so
    the slices are resampled in 2-d as one batch: bilinear for the image (what trilinear
    gives when the axis coordinate is exact), nearest for the label. The block may be a
    strided view (e.g. of a channel-last array): it is not copied.

    Args:
        image: (C, B0, B1, B2) float block, P long on ``axis``, the patch centred in it.
        label: (B0, B1, B2) integer block.
        axis: spatial axis (0, 1 or 2) to rotate about.
        angle: radians.
        patch_size: P.

    Returns:
        ``image`` (C, P, P, P) float32 and ``label`` (P, P, P) int64, possibly non-contiguous.
    """
    slices = image.movedim(axis + 1, 0)  # (P, C, U, V): the slices across the axis as a batch
    size, _, height, width = slices.shape
    if size != patch_size:
        raise ValueError(f"the block must be {patch_size} long on the rotation axis {axis}, got {size}")
    cos, sin = math.cos(angle), math.sin(angle)
    scale_u, scale_v = (patch_size - 1) / max(height - 1, 1), (patch_size - 1) / max(width - 1, 1)
    # Normalised coordinates (align_corners=True), in grid_sample's (x, y) = (V, U) order.
    theta = torch.tensor([[[scale_v * cos, scale_v * sin, 0.0], [-scale_u * sin, scale_u * cos, 0.0]]])
    grid = F.affine_grid(theta, [1, 1, patch_size, patch_size], align_corners=True).expand(size, -1, -1, -1)
    rotated = F.grid_sample(slices.float(), grid, align_corners=True)  # (P, C, P, P)
    label_slices = label.movedim(axis, 0)[:, None].float()
    rotated_label = F.grid_sample(label_slices, grid, mode="nearest", align_corners=True)[:, 0]
    return rotated.movedim(0, axis + 1), rotated_label.movedim(0, axis).long()


def random_intensity(image: torch.Tensor, rng: np.random.Generator, scale: float, shift: float) -> torch.Tensor:
    """``image * (1 + U(-scale, scale)) + U(-shift, shift)``, drawn per channel of (C, ...) ``image``."""
    channels = image.shape[0]
    shape = (channels,) + (1,) * (image.ndim - 1)
    factor = torch.from_numpy(rng.uniform(1 - scale, 1 + scale, channels)).float().reshape(shape)
    offset = torch.from_numpy(rng.uniform(-shift, shift, channels)).float().reshape(shape)
    return torch.addcmul(offset, image, factor)


def random_flip(
    image: torch.Tensor, label: torch.Tensor, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flip each spatial axis of (C, P, P, P) ``image`` and (P, P, P) ``label`` with probability 1/2."""
    axes = [axis for axis in range(3) if rng.random() < 0.5]
    if not axes:
        return image, label
    return image.flip([axis + 1 for axis in axes]), label.flip(axes)
