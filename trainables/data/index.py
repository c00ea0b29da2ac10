"""Index a data set in the reference layout (RFNet's download) that ``prepare`` did not write.

RFNet's ``BRATS2020_Training_none_npy`` holds ``vol/NAME_vol.npy``, ``seg/NAME_seg.npy`` and
the case lists, but no ``manifest.csv``. On first use the arrays are validated (pairs
complete, 4 float channels, label shape agrees, labels 0..3) and the manifest is written,
atomically, beside them, or, if that folder is read-only, into a cache keyed by the folder's
path and checked against a fingerprint of its file listing. The arrays are never moved or
rewritten.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np

from trainables.data.atomic import atomic_write, ensure_directory
from trainables.data.layout import (
    MANIFEST_NAME,
    ManifestRow,
    is_case_name,
    label_path,
    parse_manifest,
    volume_path,
    write_manifest,
)
from trainables.errors import DataError
from trainables.modalities import NUM_CLASSES, NUM_MODALITIES

__all__ = ["CACHE_ENV", "cache_dir", "case_names", "inspect_case", "index_dataset"]

logger = logging.getLogger(__name__)

CACHE_ENV = "PASSION_SWEEP_CACHE"
_SUFFIXES = {"vol": "_vol.npy", "seg": "_seg.npy"}


def cache_dir() -> Path:
    """Where indexes of read-only data sets go: ``$PASSION_SWEEP_CACHE``, else
    ``$XDG_CACHE_HOME/passion-sweep``, else ``~/.cache/passion-sweep``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "passion-sweep"


def _names_in(folder: Path, suffix: str) -> set[str]:
    return {path.name[: -len(suffix)] for path in folder.glob(f"*{suffix}") if not path.name.startswith(".")}


def case_names(data_dir: Path) -> list[str]:
    """The cases of a reference-layout folder: every ``vol/NAME_vol.npy`` with its ``seg/NAME_seg.npy``.

    Raises:
        DataError: if ``vol/`` or ``seg/`` is missing, holds no case, an array has no partner
            or a name is not a usable case name.
    """
    data_dir = Path(data_dir)
    if not (data_dir / "vol").is_dir() or not (data_dir / "seg").is_dir():
        raise DataError(
            f"{data_dir} is not a data set: it has neither {MANIFEST_NAME} nor the vol/ and seg/ folders of the "
            f"reference layout; prepare one with `passion-sweep data prepare SRC {data_dir}`"
        )
    volumes, labels = (_names_in(data_dir / kind, suffix) for kind, suffix in _SUFFIXES.items())
    for names, other, kind in ((volumes, labels, "seg"), (labels, volumes, "vol")):
        unpaired = sorted(names - other)
        if unpaired:
            path = volume_path(data_dir, unpaired[0]) if kind == "seg" else label_path(data_dir, unpaired[0])
            partner = label_path(data_dir, unpaired[0]) if kind == "seg" else volume_path(data_dir, unpaired[0])
            more = f" ({len(unpaired) - 1} more unpaired)" if len(unpaired) > 1 else ""
            raise DataError(f"{path} has no {partner.relative_to(data_dir)}{more}: every case needs both arrays")
    if not volumes:
        raise DataError(f"{data_dir}/vol holds no NAME_vol.npy: not a data set in the reference layout")
    bad = sorted(name for name in volumes if not is_case_name(name))
    if bad:
        raise DataError(
            f"{volume_path(data_dir, bad[0])}: {bad[0]!r} is not a case name (letters, digits, '_', '.', '-')"
        )
    return sorted(volumes)


def _load(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r")
    except (OSError, ValueError) as error:  # truncated, not .npy, or an object array
        raise DataError(f"cannot read {path}: {error}") from None


def inspect_case(vol: np.ndarray, seg: np.ndarray) -> tuple[tuple[int, ...] | None, str | None]:
    """Voxels per class 0..3 of a (vol, seg) pair, and what makes the pair unusable (or None).

    ``vol`` must be H x W x D x 4 of a float type and ``seg`` an H x W x D integer map with
    labels 0..3. Reads the whole label map.

    Returns:
        ``(counts, None)`` for a usable pair, ``(None, problem)`` otherwise.
    """
    if vol.ndim != 4 or vol.shape[-1] != NUM_MODALITIES:
        return None, f"volume has shape {vol.shape}, expected H x W x D x {NUM_MODALITIES} (flair, t1ce, t1, t2)"
    if not np.issubdtype(vol.dtype, np.floating):
        return None, f"volume is {vol.dtype}, expected float32 (z-scored intensities)"
    if not np.issubdtype(seg.dtype, np.integer):
        return None, f"label map is {seg.dtype}, expected uint8 labels 0..3"
    if seg.shape != vol.shape[:3]:
        return None, f"label map has shape {seg.shape} but the volume {vol.shape}: expected {vol.shape[:3]}"
    values = np.asarray(seg).ravel()
    if values.size and (values.min() < 0 or values.max() >= NUM_CLASSES):
        outside = np.unique(values[(values < 0) | (values >= NUM_CLASSES)])
        return None, f"label map has values {', '.join(map(str, outside[:5]))}: labels must be 0..3"
    return tuple(int(count) for count in np.bincount(values.astype(np.int64), minlength=NUM_CLASSES)), None


def _index_row(data_dir: Path, name: str) -> ManifestRow:
    vol, seg = _load(volume_path(data_dir, name)), _load(label_path(data_dir, name))
    counts, problem = inspect_case(vol, seg)
    if counts is None:  # exactly when there is a problem
        raise DataError(f"case {name} in {data_dir}: {problem}")
    return ManifestRow(name, tuple(int(size) for size in seg.shape), counts)


def _fingerprint(data_dir: Path) -> str:
    """A digest of the folder's path and the name, size and time of every array."""
    digest = hashlib.sha256(str(data_dir.resolve()).encode())
    for kind in _SUFFIXES:
        for path in sorted((data_dir / kind).iterdir()):
            status = path.stat()
            digest.update(f"{kind}/{path.name}:{status.st_size}:{status.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _cached_index(data_dir: Path) -> Path:
    return cache_dir() / "indexes" / hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:20]


def index_dataset(data_dir: Path) -> list[ManifestRow]:
    """The manifest of a reference-layout folder, built and saved on first use.

    Returns:
        One row per case, sorted by name.

    Raises:
        DataError: if the folder is not in the reference layout or a case is unusable (with
            the case and the reason); nothing is written then.
    """
    data_dir = Path(data_dir)
    names = case_names(data_dir)
    cached = _cached_index(data_dir)
    fingerprint = _fingerprint(data_dir)
    if (cached / "fingerprint").is_file() and (cached / "fingerprint").read_text().strip() == fingerprint:
        return parse_manifest(cached / MANIFEST_NAME)
    logger.info("indexing %d cases of %s", len(names), data_dir)
    rows = [_index_row(data_dir, name) for name in names]
    if os.access(data_dir, os.W_OK):
        write_manifest(data_dir, rows)
        return rows
    ensure_directory(cached, what="index cache folder")
    write_manifest(cached, rows)
    with atomic_write(cached / "fingerprint", "w") as stream:  # written last: a partial index is never trusted
        stream.write(fingerprint + "\n")
    logger.info("%s is read-only: its index is in %s", data_dir, cached)
    return rows
