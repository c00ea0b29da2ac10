"""A synthetic BraTS-like data set whose modalities carry different information.

Each case is a deformed ellipsoidal brain (zero outside) with one tumour: a necrotic
core (label 1) inside an enhancing rim (4) inside edema (2). Tissue intensities follow
:data:`CONTRAST` (relative to normal brain = 1.0), so that as in brain tumour MRI the
edema shows mainly in FLAIR and T2, the enhancing rim only in T1ce, and the core is
told from edema by T1ce, T1 and T2 but not by FLAIR. Smooth multiplicative bias fields,
Gaussian noise and a per-modality scanner gain are added; voxels are stored as int16.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import nibabel as nib
import numpy as np

from trainables.data.atomic import atomic_directory
from trainables.errors import ConfigError
from trainables.modalities import MODALITIES

__all__ = [
    "CONTRAST",
    "MIN_PHANTOM_SIZE",
    "PHANTOM_NORMALIZATION",
    "phantom_case_names",
    "synthesize_case",
    "synthesize_dataset",
]

logger = logging.getLogger(__name__)

# Mean intensity per tissue (raw BraTS label) and modality (flair, t1ce, t1, t2); brain = 1.0.
CONTRAST: dict[int, tuple[float, float, float, float]] = {
    0: (1.00, 1.00, 1.00, 1.00),  # normal brain (label 0 inside the brain)
    1: (1.75, 0.45, 0.60, 2.20),  # NCR/NET: like edema in FLAIR; dark in T1ce and T1, bright in T2
    2: (1.80, 1.05, 0.90, 1.65),  # ED: bright in FLAIR and T2, faint elsewhere
    4: (1.80, 2.20, 0.92, 1.68),  # ET: bright in T1ce, looks like edema elsewhere
}
NOISE_STD = 0.06  # Gaussian noise, relative to normal brain
BIAS_AMPLITUDE = 0.12  # smooth multiplicative bias field: 1 +- about this much
GAIN_RANGE = (250.0, 600.0)  # per-modality scanner gain: stored value of normal brain
MIN_PHANTOM_SIZE = 16
# How the sweep's phantom (data.phantom) and the test fixtures prepare it: zero-background,
# not the reference's normalisation. The phantom's brain is far more uniform than real MRI
# (std about 11 % of the mean), so the reference's background -mean/std would be -3..-9 on
# 72 % of a 48^3 volume and would dominate the short trainings the phantom is for (8-epoch
# WT Dice 0.14-0.24 instead of about 0.5 in tests/backbones/test_learning.py).
PHANTOM_NORMALIZATION = "zero-background"

_MEAN_BY_LABEL = np.zeros((max(CONTRAST) + 1, len(MODALITIES)), dtype=np.float32)  # (label, modality)
for _value, _means in CONTRAST.items():
    _MEAN_BY_LABEL[_value] = _means


def _smooth_field(rng: np.random.Generator, axes: Sequence[np.ndarray], terms: int = 4) -> np.ndarray:
    """A smooth random field of about unit variance: a sum of low-frequency plane waves.

    Args:
        axes: open-mesh coordinates in [-1, 1], e.g. from ``np.ogrid``, broadcasting to (X, Y, Z).
    """
    field = np.zeros(np.broadcast_shapes(*(axis.shape for axis in axes)), dtype=np.float32)
    for _ in range(terms):
        frequency = rng.normal(0.0, 1.2, size=3)
        phase = rng.uniform(0.0, 2 * np.pi)
        field += np.cos(sum(f * axis for f, axis in zip(frequency, axes, strict=True)) + phase)
    return field * np.float32(np.sqrt(2.0 / terms))


def _ellipsoid_distance(axes: Sequence[np.ndarray], centre: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """Normalised distance to ``centre``: 1 on the ellipsoid surface with ``radii``."""
    return np.sqrt(sum(((axis - c) / r) ** 2 for axis, c, r in zip(axes, centre, radii, strict=True)))


def synthesize_case(rng: np.random.Generator, shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """One phantom case.

    Returns:
        ``image`` (4, X, Y, Z) int16 in ``MODALITIES`` order, zero outside the brain, and
        ``label`` (X, Y, Z) uint8 with raw BraTS values 0, 1, 2, 4.
    """
    axes = [axis.astype(np.float32) for axis in np.ogrid[tuple(slice(-1.0, 1.0, complex(0, n)) for n in shape)]]

    brain_centre = rng.uniform(-0.05, 0.05, size=3)
    brain_radii = rng.uniform(0.78, 0.9, size=3)
    brain = _ellipsoid_distance(axes, brain_centre, brain_radii) + 0.06 * _smooth_field(rng, axes) < 1.0

    direction = rng.normal(size=3)
    offset = direction / np.linalg.norm(direction) * 0.45 * rng.uniform() ** (1 / 3)  # uniform in a ball
    tumour_centre = brain_centre + offset * brain_radii
    tumour_radii = brain_radii * rng.uniform(0.3, 0.5) * rng.uniform(0.8, 1.25, size=3)
    tumour = _ellipsoid_distance(axes, tumour_centre, tumour_radii) + 0.15 * _smooth_field(rng, axes)
    rim = rng.uniform(0.55, 0.8)
    core = rim * rng.uniform(0.5, 0.8)

    label = np.zeros(shape, dtype=np.uint8)
    label[tumour < 1.0] = 2
    label[tumour < rim] = 4
    label[tumour < core] = 1
    label[~brain] = 0

    image = np.zeros((len(MODALITIES), *shape), dtype=np.int16)
    for channel in range(len(MODALITIES)):
        intensity = _MEAN_BY_LABEL[label, channel] * (1.0 + BIAS_AMPLITUDE * _smooth_field(rng, axes))
        intensity += rng.normal(0.0, NOISE_STD, size=shape).astype(np.float32)
        stored = np.rint(intensity * rng.uniform(*GAIN_RANGE))
        image[channel] = np.where(brain, np.maximum(stored, 1), 0)  # inside the brain stays non-zero
    return image, label


def phantom_case_names(cases: int) -> list[str]:
    """Case names ``Phantom_001``, ``Phantom_002``, ... (wider numbers beyond 999 cases)."""
    width = max(3, len(str(cases)))
    return [f"Phantom_{index:0{width}d}" for index in range(1, cases + 1)]


def synthesize_dataset(out_dir: Path, *, cases: int, shape: Sequence[int], seed: int) -> list[str]:
    """Write a phantom data set in the BraTS layout ``OUT/NAME/NAME_{flair,t1ce,t1,t2,seg}.nii.gz``.

    Case ``i`` depends only on ``seed`` and ``i``, so a larger data set extends a smaller one.
    The folder appears complete or not at all.

    Args:
        out_dir: a new (or empty) folder.
        cases: number of cases, at least 1.
        shape: volume shape (X, Y, Z), each at least :data:`MIN_PHANTOM_SIZE`.
        seed: random seed.

    Returns:
        The case names.

    Raises:
        ConfigError: for a bad option value, or if ``out_dir`` is a file or a folder that is not empty.
    """
    shape = tuple(int(size) for size in shape)
    if cases < 1:
        raise ConfigError(f"cases must be >= 1, got {cases}")
    if len(shape) != 3 or min(shape) < MIN_PHANTOM_SIZE:
        raise ConfigError(
            f"shape must be three sizes >= {MIN_PHANTOM_SIZE} like 96,96,96, got {','.join(map(str, shape))}"
        )
    names = phantom_case_names(cases)
    affine = np.eye(4)
    with atomic_directory(Path(out_dir)) as staging:
        for index, name in enumerate(names):
            image, label = synthesize_case(np.random.default_rng([seed, index]), shape)
            case_dir = staging / name
            case_dir.mkdir()
            for modality, volume in zip(MODALITIES, image, strict=True):
                nib.save(nib.Nifti1Image(volume, affine), case_dir / f"{name}_{modality}.nii.gz")
            nib.save(nib.Nifti1Image(label, affine), case_dir / f"{name}_seg.nii.gz")
    logger.debug("synthesized %d phantom cases of shape %s into %s", cases, shape, out_dir)
    return names
