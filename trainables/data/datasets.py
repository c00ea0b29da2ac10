"""Torch datasets over a prepared data set: random training patches and whole test volumes.

Arrays are memory-mapped (``np.load(mmap_mode="r")``) at each access, so nothing is
loaded eagerly, the datasets pickle cheaply to DataLoader workers, and no file handle
stays open. Every random draw comes from torch's generator (seeded per DataLoader
worker), so ``torch.manual_seed`` plus the DataLoader's seeding make a run reproducible.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from trainables.data.augment import (
    Augmentation,
    random_flip,
    random_intensity,
    random_rotation,
    rotate_patch,
    rotation_margin,
)
from trainables.data.layout import label_path, volume_path
from trainables.data.splits import MissingRateSplit
from trainables.errors import ConfigError, DataError
from trainables.modalities import MASK_TYPES, NUM_MODALITIES, SUBSET_MASKS, reachable_subset_ids

__all__ = ["MASK_TYPES", "TrainingDataset", "VolumeDataset", "read_case_arrays"]


def read_case_arrays(data_dir: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Memory-map the volume (H, W, D, 4) float32 and label map (H, W, D) uint8 of one case.

    Raises:
        DataError: if a file is missing or unreadable, or the shapes disagree.
    """
    arrays = []
    for path in (volume_path(data_dir, name), label_path(data_dir, name)):
        try:
            arrays.append(np.load(path, mmap_mode="r"))
        except (OSError, ValueError, EOFError) as error:  # missing, empty, truncated or not .npy
            raise DataError(
                f"cannot read {path} of case {name}: {error}; run `passion-sweep data check {data_dir}`"
            ) from None
    vol, seg = arrays
    if vol.shape != (*seg.shape, NUM_MODALITIES) or seg.ndim != 3:
        raise DataError(f"case {name} in {data_dir}: volume {vol.shape} does not match label map {seg.shape} + (4,)")
    return vol, seg


def _as_float32(block: np.ndarray) -> np.ndarray:
    """Volumes of another float type (a reference-layout folder may hold float64) are read as float32."""
    return block.astype(np.float32, copy=False)


def _torch_rng() -> np.random.Generator:
    """A numpy generator seeded from torch's (per-worker) generator."""
    return np.random.default_rng(int(torch.randint(2**62, ())))


def _read_block(array: np.ndarray, start: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """``array[start:stop]`` over the first three axes, padded where it leaves the array with
    the array's corner value (per channel): the background, ``-mean/std`` after the
    reference's normalisation, 0 after zero-background and for label maps."""
    shape = np.array(array.shape[:3])
    low, high = np.maximum(start, 0), np.minimum(stop, shape)
    if (low == start).all() and (high == stop).all():
        return np.array(array[tuple(slice(a, b) for a, b in zip(start, stop, strict=True))])  # a copy in memory
    block = np.empty((*(stop - start), *array.shape[3:]), dtype=array.dtype)
    block[...] = array[0, 0, 0]
    inner = tuple(slice(a, b) for a, b in zip(low - start, high - start, strict=True))
    block[inner] = array[tuple(slice(a, b) for a, b in zip(low, high, strict=True))]
    return block


class _PreparedCases(Dataset):
    """Cases of a prepared data set, checked to exist when constructed."""

    def __init__(self, data_dir: Path, cases: Sequence[str]) -> None:
        self.data_dir = Path(data_dir)
        self.cases = tuple(cases)
        if not self.cases:
            raise ConfigError("a dataset needs at least one case: the case list is empty")
        self.shapes = {name: read_case_arrays(self.data_dir, name)[1].shape for name in self.cases}

    def __len__(self) -> int:
        return len(self.cases)


class TrainingDataset(_PreparedCases):
    """Random (augmented) training patches with their modality mask.

    ``mask_type`` sets the modality mask of each sample (see the method specification):
    ``idt`` the case's availability from ``split``; ``idt_drop`` one of the subsets
    reachable from it (``pos_mask_ids``), drawn uniformly per sample; in both the image
    channels of absent modalities are 0. ``pdt`` keeps all four modalities in the image
    and draws one of the 15 subsets uniformly as the mask.

    Each sample is a dict: ``image`` (4, P, P, P) float32, ``label`` (P, P, P) int64 with
    classes 0..3, ``mask`` (4,) bool in ``MODALITIES`` order, ``name`` str.

    Args:
        data_dir: a prepared data set.
        cases: case names, e.g. from ``read_case_list(DIR / "train.txt")``.
        patch_size: edge P of the cubic patch.
        mask_type: ``idt``, ``idt_drop`` or ``pdt``.
        split: missing-rate split; required by ``idt`` and ``idt_drop``, not used by ``pdt``.
        augment: True for the reference augmentation, False for plain random crops, or options.

    Raises:
        ConfigError: for a bad option.
        DataError: if a case is missing from the data set or the split, or smaller than the patch.
    """

    def __init__(
        self,
        data_dir: Path,
        cases: Sequence[str],
        *,
        patch_size: int = 80,
        mask_type: str = "idt",
        split: MissingRateSplit | None = None,
        augment: bool | Augmentation = True,
    ) -> None:
        if mask_type not in MASK_TYPES:
            raise ConfigError(f"mask_type must be one of {', '.join(MASK_TYPES)}, got {mask_type!r}")
        if mask_type == "pdt" and split is not None:
            raise ConfigError("mask_type 'pdt' trains on complete data: pass split=None (or use idt / idt_drop)")
        if mask_type != "pdt" and split is None:
            raise ConfigError(f"mask_type {mask_type!r} needs a missing-rate split: pass split=read_split_csv(...)")
        if patch_size < 1:
            raise ConfigError(f"patch_size must be >= 1, got {patch_size}")
        super().__init__(data_dir, cases)
        self.patch_size = patch_size
        self.mask_type = mask_type
        self.augmentation: Augmentation | None = Augmentation() if augment is True else (augment or None)
        self._availability = {name: split.mask_of(name) for name in self.cases} if split else {}
        for name, shape in self.shapes.items():
            if min(shape) < patch_size:
                raise DataError(
                    f"patch {patch_size} larger than volume {'x'.join(map(str, shape))} of case {name}: "
                    "use a smaller patch_size"
                )

    def _draw_mask(self, name: str, rng: np.random.Generator) -> tuple[bool, ...]:
        if self.mask_type == "pdt":
            return SUBSET_MASKS[rng.integers(len(SUBSET_MASKS))]
        available = self._availability[name]
        if self.mask_type == "idt":
            return available
        return SUBSET_MASKS[rng.choice(reachable_subset_ids(available))]

    def _crop(self, name: str, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """A random (4, P, P, P) float32 patch and its (P, P, P) int64 label, rotated if augmenting."""
        vol, seg = read_case_arrays(self.data_dir, name)
        size = self.patch_size
        start = rng.integers(0, np.array(self.shapes[name]) - size + 1)
        if self.augmentation is None or self.augmentation.max_rotation_degrees == 0:
            stop = start + size
            image = torch.from_numpy(_as_float32(_read_block(vol, start, stop))).permute(3, 0, 1, 2).contiguous()
            return image, torch.from_numpy(_read_block(seg, start, stop).astype(np.int64))
        axis, angle = random_rotation(rng, self.augmentation.max_rotation_degrees)
        margin = np.full(3, rotation_margin(size, angle))
        margin[axis] = 0
        # Outside the volume lies only background (the volume holds the brain's bounding box),
        # so padding a block that leaves it with the background value is faithful.
        start, stop = start - margin, start + size + margin
        image = torch.from_numpy(_as_float32(_read_block(vol, start, stop))).permute(3, 0, 1, 2)
        return rotate_patch(image, torch.from_numpy(_read_block(seg, start, stop)), axis, angle, size)

    def __getitem__(self, index: int) -> dict[str, Any]:
        name = self.cases[index]
        rng = _torch_rng()
        mask = self._draw_mask(name, rng)
        image, label = self._crop(name, rng)
        if self.augmentation is not None:
            image = random_intensity(image, rng, self.augmentation.intensity_scale, self.augmentation.intensity_shift)
            if self.augmentation.flip:
                image, label = random_flip(image, label, rng)
        mask_tensor = torch.tensor(mask)
        if self.mask_type != "pdt":
            image = image * mask_tensor.to(image.dtype)[:, None, None, None]
        return {"image": image.contiguous(), "label": label.contiguous(), "mask": mask_tensor, "name": name}


class VolumeDataset(_PreparedCases):
    """Whole preprocessed volumes, e.g. for sliding-window evaluation.

    Each sample is a dict: ``image`` (4, H, W, D) float32, ``label`` (H, W, D) int64, ``name`` str.

    Raises:
        ConfigError: if ``cases`` is empty.
        DataError: if a case is missing from the data set.
    """

    def __getitem__(self, index: int) -> dict[str, Any]:
        name = self.cases[index]
        vol, seg = read_case_arrays(self.data_dir, name)
        image = torch.from_numpy(np.ascontiguousarray(np.moveaxis(vol, -1, 0), dtype=np.float32))
        return {"image": image, "label": torch.from_numpy(seg.astype(np.int64)), "name": name}
