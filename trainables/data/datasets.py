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

from trainables.data.augment import Augmentation, augment_patch, draw_augmentation
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


def _torch_rng() -> np.random.Generator:
    """A numpy generator seeded from torch's (per-worker) generator."""
    return np.random.default_rng(int(torch.randint(2**62, ())))


def _background(vol: np.ndarray) -> np.ndarray:
    """The value outside the brain per channel of an ``HWDC`` volume: the median of its eight
    corner voxels (a prepared volume is the brain's bounding box, whose corners lie outside
    the brain; the median tolerates a few that do not)."""
    corners = vol[np.ix_((0, -1), (0, -1), (0, -1))]
    return np.median(corners.reshape(8, -1), axis=0)


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

    def __getitem__(self, index: int) -> dict[str, Any]:
        # Draws in the reference's order: mask, crop, rotation and flips, intensity.
        name = self.cases[index]
        rng = _torch_rng()
        mask = self._draw_mask(name, rng)
        vol, seg = read_case_arrays(self.data_dir, name)
        start = rng.integers(0, np.array(self.shapes[name]) - self.patch_size + 1)
        box = tuple(slice(first, first + self.patch_size) for first in start)
        # copies in memory; a reference-layout folder may hold float64 volumes, read as float32
        image, label = np.array(vol[box], dtype=np.float32), np.array(seg[box])
        if self.augmentation is not None:
            draw = draw_augmentation(rng, self.augmentation)
            image, label = augment_patch(image, label, draw, rng, self.augmentation, _background(vol))
        image_tensor = torch.from_numpy(np.ascontiguousarray(np.moveaxis(image, -1, 0)))
        mask_tensor = torch.tensor(mask)
        if self.mask_type != "pdt":
            image_tensor = image_tensor * mask_tensor.to(image_tensor.dtype)[:, None, None, None]
        label_tensor = torch.from_numpy(label.astype(np.int64))
        return {"image": image_tensor, "label": label_tensor, "mask": mask_tensor, "name": name}


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
