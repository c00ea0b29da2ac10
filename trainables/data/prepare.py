"""BraTS NIfTI to preprocessed, memory-mappable arrays: the reference preprocessing.

Per case, as the PASSION reference (``code/preprocessing/preprocess_brats.py``), which
made RFNet's download: stack the four modalities as float32, crop to the reference's box
(:func:`crop_box`), z-score each modality with the mean and std of the brain (voxels where
the sum of the modalities is > 0) in float32, applied to every voxel of the crop so the
background becomes ``-mean/std``, map the labels 0, 1, 2, 4 to 0, 1, 2, 3, and name the
case as RFNet does (:func:`~trainables.data.layout.rfnet_name`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import ExitStack
from functools import partial
from pathlib import Path

import numpy as np
from tqdm import tqdm

from trainables.data.atomic import atomic_write, ensure_directory
from trainables.data.layout import (
    MANIFEST_NAME,
    PREPARING_MARKER,
    PREPROCESSING_NAME,
    ManifestRow,
    check_case_names,
    label_path,
    rfnet_name,
    volume_path,
    write_manifest,
    write_preprocessing,
)
from trainables.data.nifti import CaseFiles, find_cases, read_case
from trainables.errors import ConfigError, DataError
from trainables.modalities import MODALITIES, NUM_CLASSES

__all__ = ["MIN_CROP_SIZE", "NORMALIZATIONS", "crop_box", "preprocess_case", "prepare_case", "prepare_dataset"]

logger = logging.getLogger(__name__)

MIN_CROP_SIZE = 128
# "reference": every voxel of the crop z-scored with the brain's statistics (background
# -mean/std), as the reference and RFNet's download. "zero-background": the same
# statistics, voxels outside the brain set to 0 (not the reference; this project's former default).
NORMALIZATIONS: tuple[str, ...] = ("reference", "zero-background")
_LABEL_MAP = np.array([0, 1, 2, 0, 3], dtype=np.uint8)  # raw BraTS value -> class (4 -> 3)


def crop_box(foreground: np.ndarray, *, min_size: int = MIN_CROP_SIZE) -> tuple[slice, ...]:
    """The reference's crop box of ``foreground``, quirks included.

    Per axis: ``start`` is the first foreground index and ``stop`` the last one, used as an
    exclusive end (so the last foreground slice is left out). A box shorter than
    ``min_size`` is widened by ``e = (min_size - (stop - start)) // 2`` below and ``e + 1``
    above (length ``min_size`` or ``min_size + 1``); a negative start is moved to 0 with the
    end moved up by the same amount; an end past the volume is kept as is (slicing clips it).

    Args:
        foreground: (H, W, D) boolean array with at least one True voxel.

    Returns:
        One slice per axis, stops not clipped to the volume (as the reference's box).
    """
    box = []
    for axis in range(foreground.ndim):
        present = np.flatnonzero(foreground.any(axis=tuple(a for a in range(foreground.ndim) if a != axis)))
        start, stop = int(present[0]), int(present[-1])
        if stop - start < min_size:
            margin = (min_size - (stop - start)) // 2
            start, stop = start - margin, stop + margin + 1
        if start < 0:
            start, stop = 0, stop - start
        box.append(slice(start, stop))
    return tuple(box)


def preprocess_case(
    image: np.ndarray, label: np.ndarray, *, normalization: str = "reference", min_size: int = MIN_CROP_SIZE
) -> tuple[np.ndarray, np.ndarray]:
    """Crop, z-score and relabel one case.

    Args:
        image: (H, W, D, 4) modalities in ``MODALITIES`` order, any real dtype.
        label: (H, W, D) raw BraTS labels in {0, 1, 2, 4}.
        normalization: one of :data:`NORMALIZATIONS`.
        min_size: the smallest crop extent per axis.

    Returns:
        ``vol`` (h, w, d, 4) float32 and ``seg`` (h, w, d) uint8 with classes 0..3.

    Raises:
        ConfigError: for an unknown ``normalization``.
        DataError: if every voxel is zero or a modality is constant inside the brain.
    """
    if normalization not in NORMALIZATIONS:
        raise ConfigError(f"normalization must be one of {', '.join(NORMALIZATIONS)}, got {normalization!r}")
    vol = image.astype(np.float32)
    foreground = vol.max(axis=-1) != 0  # the reference's amax over the modalities
    if not foreground.any():
        raise DataError("every voxel of every modality is 0")
    box = crop_box(foreground, min_size=min_size)
    vol = vol[box]
    brain = vol.sum(axis=-1) > 0
    if not brain.any():
        raise DataError("no voxel has a positive sum of modalities, so the brain mask is empty")
    for channel, modality in enumerate(MODALITIES):
        inside = vol[..., channel][brain]
        # float32 reductions as the reference's numpy calls, so the values agree to the last bit
        mean, std = inside.mean(), inside.std()
        if not std > 0:
            raise DataError(f"modality {modality} is constant inside the brain, so it cannot be z-scored")
        vol[..., channel] = (vol[..., channel] - mean) / std
    if normalization == "zero-background":
        vol[~brain] = 0.0
    return vol, _LABEL_MAP[label[box]]


def prepare_case(files: CaseFiles, out_dir: Path, *, normalization: str = "reference") -> ManifestRow:
    """Read, preprocess and save one case under its RFNet name; its two files are written atomically.

    Raises:
        DataError: if the case cannot be read or preprocessed.
    """
    image, label = read_case(files)
    try:
        vol, seg = preprocess_case(image, label, normalization=normalization)
    except DataError as error:
        raise DataError(f"case {files.name}: {error}") from None
    name = rfnet_name(files.name)
    with ExitStack() as stack:
        np.save(stack.enter_context(atomic_write(volume_path(out_dir, name))), vol)
        np.save(stack.enter_context(atomic_write(label_path(out_dir, name))), seg)
    counts = np.bincount(seg.ravel(), minlength=NUM_CLASSES)
    return ManifestRow(name, seg.shape, tuple(int(count) for count in counts))


def _prepare_all(
    cases: list[CaseFiles], prepare: Callable[[CaseFiles], ManifestRow], *, workers: int, progress: bool
) -> list[ManifestRow]:
    """Run ``prepare`` on every case, in ``workers`` processes; the first error stops the run."""
    rows = []
    with tqdm(total=len(cases), desc="prepare", unit="case", disable=not progress) as bar:
        if workers == 1:
            for files in cases:
                rows.append(prepare(files))
                bar.update()
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futures = [pool.submit(prepare, files) for files in cases]
                try:
                    for future in as_completed(futures):
                        rows.append(future.result())
                        bar.update()
                except BaseException:
                    pool.shutdown(cancel_futures=True)
                    raise
    return rows


def _check_unique_names(cases: list[CaseFiles]) -> None:
    """Two folders must not get the same RFNet name (``BraTS20_Training_002`` and ``HG_BraTS20_Training_002``)."""
    seen: dict[str, str] = {}
    for files in cases:
        name = rfnet_name(files.name)
        if name in seen:
            raise DataError(f"case folders {seen[name]} and {files.name} both become case {name}: keep one of them")
        seen[name] = files.name


def prepare_dataset(
    src: Path, out: Path, *, workers: int = 1, progress: bool = True, normalization: str = "reference"
) -> list[ManifestRow]:
    """Preprocess a BraTS NIfTI folder into ``OUT/vol``, ``OUT/seg``, ``OUT/preprocessing.json``
    (the options used) and ``OUT/manifest.csv``.

    Every case folder is checked for its five files before any work starts. The first
    bad case stops the run; the cases done by then stay complete, the manifest, written
    last, is absent and ``.preparing`` stays, so an unfinished data set is never taken for
    a finished one (nor indexed as one in the reference layout).

    Args:
        src: folder of case folders ``NAME/NAME_{flair,t1ce,t1,t2,seg}.nii[.gz]``.
        out: output folder (created if needed).
        workers: number of processes.
        progress: show a progress bar on stderr.
        normalization: one of :data:`NORMALIZATIONS` (default the reference's).

    Returns:
        The manifest rows, sorted by case name.

    Raises:
        ConfigError: if ``workers`` < 1, ``normalization`` is unknown or ``out`` is a file.
        DataError: if a case is missing, unreadable or inconsistent.
    """
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    if normalization not in NORMALIZATIONS:
        raise ConfigError(f"normalization must be one of {', '.join(NORMALIZATIONS)}, got {normalization!r}")
    out = Path(out)
    cases = find_cases(src)
    check_case_names((files.name for files in cases), Path(src))
    _check_unique_names(cases)
    for folder in (out, out / "vol", out / "seg"):
        ensure_directory(folder)
        for stale in folder.glob(".*.tmp"):  # atomic_write's temporary files, left by a killed run
            stale.unlink(missing_ok=True)
    (out / PREPARING_MARKER).touch()
    (out / MANIFEST_NAME).unlink(missing_ok=True)
    (out / PREPROCESSING_NAME).unlink(missing_ok=True)
    prepare = partial(prepare_case, out_dir=out, normalization=normalization)
    try:
        rows = _prepare_all(cases, prepare, workers=workers, progress=progress)
    except BaseException:
        if not any((out / "vol").iterdir()):  # nothing written: no marker of an unfinished data set either
            (out / PREPARING_MARKER).unlink(missing_ok=True)
        raise
    rows.sort(key=lambda row: row.case)
    write_preprocessing(out, {"normalization": normalization, "crop": "reference", "names": "rfnet"})
    write_manifest(out, rows)
    (out / PREPARING_MARKER).unlink()
    logger.debug("prepared %d cases into %s", len(rows), out)
    return rows
