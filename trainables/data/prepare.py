"""BraTS NIfTI to preprocessed, memory-mappable arrays (the reference preprocessing).

Per case: stack the four modalities, crop to the bounding box of the non-zero voxels
widened to at least :data:`MIN_CROP_SIZE` per axis, z-score each modality inside the
brain (voxels where the sum of the modalities is > 0; outside stays 0), and map the
labels 0, 1, 2, 4 to 0, 1, 2, 3.
"""

from __future__ import annotations

import logging
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import ExitStack
from pathlib import Path

import numpy as np
from tqdm import tqdm

from trainables.data.atomic import atomic_write, ensure_directory
from trainables.data.layout import (
    MANIFEST_NAME,
    ManifestRow,
    check_case_names,
    label_path,
    volume_path,
    write_manifest,
)
from trainables.data.nifti import CaseFiles, find_cases, read_case
from trainables.errors import ConfigError, DataError
from trainables.modalities import MODALITIES, NUM_CLASSES

__all__ = ["MIN_CROP_SIZE", "crop_box", "preprocess_case", "prepare_case", "prepare_dataset"]

logger = logging.getLogger(__name__)

MIN_CROP_SIZE = 128
_LABEL_MAP = np.array([0, 1, 2, 0, 3], dtype=np.uint8)  # raw BraTS value -> class (4 -> 3)


def crop_box(foreground: np.ndarray, *, min_size: int = MIN_CROP_SIZE) -> tuple[slice, ...]:
    """Bounding box of ``foreground``, each axis widened symmetrically to at least ``min_size``.

    A widened box is shifted back inside the volume at a border; an axis shorter than
    ``min_size`` is kept whole.

    Args:
        foreground: (H, W, D) boolean array with at least one True voxel.

    Returns:
        One slice per axis.
    """
    box = []
    for axis, size in enumerate(foreground.shape):
        present = np.flatnonzero(foreground.any(axis=tuple(a for a in range(foreground.ndim) if a != axis)))
        start, stop = int(present[0]), int(present[-1]) + 1
        if stop - start < min_size:  # widen, then shift back inside [0, size)
            start = min(max(start - (min_size - (stop - start)) // 2, 0), max(size - min_size, 0))
            stop = min(start + min_size, size)
        box.append(slice(start, stop))
    return tuple(box)


def preprocess_case(
    image: np.ndarray, label: np.ndarray, *, min_size: int = MIN_CROP_SIZE
) -> tuple[np.ndarray, np.ndarray]:
    """Crop, z-score and relabel one case.

    Args:
        image: (H, W, D, 4) modalities in ``MODALITIES`` order, any real dtype.
        label: (H, W, D) raw BraTS labels in {0, 1, 2, 4}.
        min_size: the smallest crop extent per axis.

    Returns:
        ``vol`` (h, w, d, 4) float32, z-scored inside the brain and 0 outside, and ``seg``
        (h, w, d) uint8 with classes 0..3.

    Raises:
        DataError: if every voxel is zero or a modality is constant inside the brain.
    """
    foreground = np.any(image != 0, axis=-1)
    if not foreground.any():
        raise DataError("every voxel of every modality is 0")
    box = crop_box(foreground, min_size=min_size)
    vol = image[box].astype(np.float32)
    brain = vol.sum(axis=-1) > 0
    if not brain.any():
        raise DataError("no voxel has a positive sum of modalities, so the brain mask is empty")
    for channel, modality in enumerate(MODALITIES):
        inside = vol[..., channel][brain]
        mean, std = inside.mean(dtype=np.float64), inside.std(dtype=np.float64)
        if not std > 0:
            raise DataError(f"modality {modality} is constant inside the brain, so it cannot be z-scored")
        vol[..., channel] = np.where(brain, (vol[..., channel] - mean) / std, 0.0)
    return vol, _LABEL_MAP[label[box]]


def prepare_case(files: CaseFiles, out_dir: Path) -> ManifestRow:
    """Read, preprocess and save one case; its two files are written atomically.

    Raises:
        DataError: if the case cannot be read or preprocessed.
    """
    image, label = read_case(files)
    try:
        vol, seg = preprocess_case(image, label)
    except DataError as error:
        raise DataError(f"case {files.name}: {error}") from None
    with ExitStack() as stack:
        np.save(stack.enter_context(atomic_write(volume_path(out_dir, files.name))), vol)
        np.save(stack.enter_context(atomic_write(label_path(out_dir, files.name))), seg)
    counts = np.bincount(seg.ravel(), minlength=NUM_CLASSES)
    return ManifestRow(files.name, seg.shape, tuple(int(count) for count in counts))


def prepare_dataset(src: Path, out: Path, *, workers: int = 1, progress: bool = True) -> list[ManifestRow]:
    """Preprocess a BraTS NIfTI folder into ``OUT/vol``, ``OUT/seg`` and ``OUT/manifest.csv``.

    Every case folder is checked for its five files before any work starts. The first
    bad case stops the run; the cases done by then stay complete, and the manifest,
    written last, is absent, so an unfinished data set is never taken for a finished one.

    Args:
        src: folder of case folders ``NAME/NAME_{flair,t1ce,t1,t2,seg}.nii[.gz]``.
        out: output folder (created if needed).
        workers: number of processes.
        progress: show a progress bar on stderr.

    Returns:
        The manifest rows, sorted by case name.

    Raises:
        ConfigError: if ``workers`` < 1 or ``out`` is a file.
        DataError: if a case is missing, unreadable or inconsistent.
    """
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    out = Path(out)
    cases = find_cases(src)
    check_case_names((files.name for files in cases), Path(src))
    for folder in (out, out / "vol", out / "seg"):
        ensure_directory(folder)
        for stale in folder.glob(".*.tmp"):  # atomic_write's temporary files, left by a killed run
            stale.unlink(missing_ok=True)
    (out / MANIFEST_NAME).unlink(missing_ok=True)
    rows = []
    with tqdm(total=len(cases), desc="prepare", unit="case", disable=not progress) as bar:
        if workers == 1:
            for files in cases:
                rows.append(prepare_case(files, out))
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futures = [pool.submit(prepare_case, files, out) for files in cases]
                try:
                    for future in as_completed(futures):
                        rows.append(future.result())
                        bar.update()
                except BaseException:
                    pool.shutdown(cancel_futures=True)
                    raise
    rows.sort(key=lambda row: row.case)
    write_manifest(out, rows)
    logger.debug("prepared %d cases into %s", len(rows), out)
    return rows
