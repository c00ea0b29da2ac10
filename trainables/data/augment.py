"""Random augmentation of training patches, as the PASSION reference does it.

The reference composes, on a case stored channel-last (``HWDC``): a random crop of the
patch, a rotation by an integer angle about one of the three axes, an intensity scale
and shift per slice (along the first axis) and channel, and a flip of each axis. All
parameters but the intensity factors are drawn before any is applied; the intensity
factors are drawn when the image is changed. :func:`draw_augmentation` and
:func:`augment_patch` keep that order and those distributions; the draws come from a
``numpy.random.Generator`` instead of numpy's and Python's global generators, so the
stream of numbers differs, not their distribution.

Shapes: ``P`` patch edge, ``C`` channels (modalities).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from trainables.errors import ConfigError

__all__ = [
    "ROTATION_FILLS",
    "ROTATION_PLANES",
    "REFERENCE_FILL",
    "Augmentation",
    "AugmentationDraw",
    "draw_augmentation",
    "augment_patch",
    "rotate_patch",
    "random_intensity",
    "flip_patch",
]

# The axis pairs the reference rotates in (one drawn uniformly), in its order.
ROTATION_PLANES: tuple[tuple[int, int], ...] = ((1, 0), (2, 1), (2, 0))
# The reference fills the image corners a rotation uncovers with -1. (Its labels are
# uint8, into which scipy writes that -1 as 0: the label corners are background.)
REFERENCE_FILL = -1.0
ROTATION_FILLS: tuple[str, ...] = ("reference", "background")


@dataclass(frozen=True)
class Augmentation:
    """Options of the training-patch augmentation; the defaults are the reference's.

    Attributes:
        max_rotation_degrees: the angle is an integer drawn uniformly from
            ``[-max, max - 1]`` (numpy's ``randint(-max, max)``, as the reference).
        intensity_scale: each slice and channel is multiplied by U(1 - scale, 1 + scale).
        intensity_shift: then U(-shift, shift) is added to each slice and channel.
        flip: flip each spatial axis with probability 1/2.
        rotation_fill: value of the image corners a rotation uncovers: ``"reference"``
            is -1 (the reference); ``"background"`` is the case's background value per
            channel, a fix of the reference, whose normalised background is not -1.
    """

    max_rotation_degrees: int = 10
    intensity_scale: float = 0.1
    intensity_shift: float = 0.1
    flip: bool = True
    rotation_fill: str = "reference"

    def __post_init__(self) -> None:
        if not isinstance(self.max_rotation_degrees, int) or not 0 <= self.max_rotation_degrees <= 45:
            raise ConfigError(
                f"max_rotation_degrees must be an integer >= 0 and <= 45 (the reference draws integer angles), "
                f"got {self.max_rotation_degrees}"
            )
        for option in ("intensity_scale", "intensity_shift"):
            if not 0 <= getattr(self, option) < 1:
                raise ConfigError(f"{option} must be >= 0 and < 1, got {getattr(self, option)}")
        if self.rotation_fill not in ROTATION_FILLS:
            raise ConfigError(
                f"rotation_fill must be one of {', '.join(ROTATION_FILLS)} (train.rotation_fill), "
                f"got {self.rotation_fill!r}"
            )


@dataclass(frozen=True)
class AugmentationDraw:
    """The geometric parameters of one sample's augmentation.

    Attributes:
        plane: the two axes spanning the rotation plane, one of :data:`ROTATION_PLANES`.
        degrees: the integer rotation angle.
        flips: whether each spatial axis is flipped.
    """

    plane: tuple[int, int]
    degrees: int
    flips: tuple[bool, bool, bool]


def draw_augmentation(rng: np.random.Generator, options: Augmentation) -> AugmentationDraw:
    """Draw the rotation plane, the angle and the flips, in the reference's order."""
    plane = ROTATION_PLANES[int(rng.integers(len(ROTATION_PLANES)))]
    limit = options.max_rotation_degrees
    degrees = int(rng.integers(-limit, limit)) if limit else 0
    flips = tuple(bool(flip) for flip in rng.random(3) < 0.5) if options.flip else (False, False, False)
    return AugmentationDraw(plane, degrees, flips)  # type: ignore[arg-type]


def _plane_sources(shape: tuple[int, int], degrees: int) -> np.ndarray:
    """For each pixel of a plane rotated as the reference rotates it, the flat index of
    the pixel it copies, or -1 where the rotation uncovers it.

    Nearest-neighbour interpolation only copies values, and which pixel it copies depends
    on the coordinates alone: rotating a plane of indices with the reference's own call
    gives the exact copy map, which then serves every slice and channel at once.
    """
    indices = np.arange(shape[0] * shape[1], dtype=np.float64).reshape(shape)
    rotated = ndimage.rotate(indices, degrees, reshape=False, order=0, mode="constant", cval=-1)
    return rotated.astype(np.intp)


def _gather(array: np.ndarray, plane: tuple[int, int], sources: np.ndarray, fill: float | np.ndarray) -> np.ndarray:
    """``array`` with the axes of ``plane`` resampled by ``sources``, ``fill`` where it is -1."""
    planes = np.moveaxis(array, plane, (0, 1))
    flat = planes.reshape(sources.size, *planes.shape[2:])
    covered = sources >= 0
    rotated = flat[np.where(covered, sources, 0)]
    rotated[~covered] = fill
    return np.moveaxis(rotated, (0, 1), plane)


def rotate_patch(
    image: np.ndarray, label: np.ndarray, plane: tuple[int, int], degrees: int, fill: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Rotate a patch about its centre in ``plane``, with nearest-neighbour interpolation.

    The result equals the reference's ``scipy.ndimage.rotate(..., axes=plane,
    reshape=False, order=0, mode="constant")`` of each channel and of the labels (tested),
    computed once for all slices and channels instead of plane by plane.

    Args:
        image: ``PPPC`` float patch.
        label: ``PPP`` integer labels; uncovered corners become 0 (background).
        plane: the two axes spanning the rotation plane.
        degrees: the angle.
        fill: ``C`` value per channel of the uncovered image corners.

    Returns:
        The rotated image (float32) and labels (the dtype of ``label``).
    """
    if degrees == 0:
        return image, label
    low, high = sorted(plane)  # scipy rotates from the lower axis towards the higher
    axes = (low, high)
    sources = _plane_sources((image.shape[low], image.shape[high]), degrees)
    rotated = _gather(image.astype(np.float32, copy=False), axes, sources, fill)
    return rotated, _gather(label, axes, sources, 0)


def random_intensity(image: np.ndarray, rng: np.random.Generator, scale: float, shift: float) -> np.ndarray:
    """``image * U(1 - scale, 1 + scale) + U(-shift, shift)`` per slice of the first axis and channel.

    The shift is drawn before the scale, both of shape ``(P, C)`` (the reference's
    ``[1, P, 1, 1, C]``), and the result is computed in float64 as the reference's is.

    Args:
        image: ``PPPC`` float patch.

    Returns:
        ``PPPC`` float32.
    """
    size, channels = image.shape[0], image.shape[-1]
    offset = rng.uniform(-shift, shift, (size, 1, 1, channels))
    factor = rng.uniform(1 - scale, 1 + scale, (size, 1, 1, channels))
    return (image * factor + offset).astype(np.float32)


def flip_patch(image: np.ndarray, label: np.ndarray, flips: tuple[bool, bool, bool]) -> tuple[np.ndarray, np.ndarray]:
    """Flip the spatial axes marked in ``flips`` of a ``PPPC`` image and its ``PPP`` labels (views)."""
    axes = tuple(axis for axis, flip in enumerate(flips) if flip)
    if not axes:
        return image, label
    return np.flip(image, axes), np.flip(label, axes)


def augment_patch(
    image: np.ndarray,
    label: np.ndarray,
    draw: AugmentationDraw,
    rng: np.random.Generator,
    options: Augmentation,
    background: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Rotate, change the intensity of and flip a cropped patch, in the reference's order.

    Args:
        image: ``PPPC`` float patch.
        label: ``PPP`` integer labels.
        draw: the sample's geometric parameters (:func:`draw_augmentation`).
        rng: the generator of the intensity factors.
        options: the augmentation options.
        background: ``C`` background value of the case per channel (used by
            ``rotation_fill="background"``).

    Returns:
        The augmented ``PPPC`` float32 image and ``PPP`` labels (possibly views).
    """
    fill = background if options.rotation_fill == "background" else np.full(image.shape[-1], REFERENCE_FILL)
    image, label = rotate_patch(image, label, draw.plane, draw.degrees, fill)
    image = random_intensity(image, rng, options.intensity_scale, options.intensity_shift)
    return flip_patch(image, label, draw.flips)
