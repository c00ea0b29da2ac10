"""Reading BraTS case folders: ``NAME/NAME_{flair,t1ce,t1,t2,seg}.nii[.gz]``."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import nibabel as nib
import numpy as np

from trainables.errors import DataError
from trainables.modalities import MODALITIES

__all__ = ["BRATS_LABELS", "CaseFiles", "find_case_files", "find_cases", "read_case"]

BRATS_LABELS: tuple[int, ...] = (0, 1, 2, 4)  # background, NCR/NET, ED, ET as stored in raw BraTS
_EXTENSIONS = (".nii.gz", ".nii")
_FILE_KINDS = (*MODALITIES, "seg")


@dataclass(frozen=True)
class CaseFiles:
    """The NIfTI files of one case: ``images`` in ``MODALITIES`` order, then the ``label``."""

    name: str
    images: tuple[Path, ...]
    label: Path


def _find_file(case_dir: Path, kind: str) -> Path:
    for extension in _EXTENSIONS:
        candidate = case_dir / f"{case_dir.name}_{kind}{extension}"
        if candidate.is_file():
            return candidate
    raise DataError(
        f"case folder {case_dir} has no {case_dir.name}_{kind}.nii.gz (or .nii): "
        f"every case needs {', '.join(_FILE_KINDS)} files"
    )


def find_case_files(case_dir: Path) -> CaseFiles:
    """Locate the four modalities and the label of one case folder.

    Raises:
        DataError: if a file is missing.
    """
    case_dir = Path(case_dir)
    paths = [_find_file(case_dir, kind) for kind in _FILE_KINDS]
    return CaseFiles(case_dir.name, tuple(paths[:-1]), paths[-1])


def find_cases(src: Path) -> list[CaseFiles]:
    """All case folders of a BraTS data set, sorted by name (files and hidden folders are skipped).

    Raises:
        DataError: if ``src`` is not a folder, holds no case folder or a case lacks a file.
    """
    src = Path(src)
    if not src.is_dir():
        raise DataError(f"source folder {src} does not exist: pass a folder of BraTS case folders")
    folders = sorted(p for p in src.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise DataError(f"{src} holds no case folder: expected NAME/NAME_flair.nii.gz, ... (BraTS layout)")
    return [find_case_files(folder) for folder in folders]


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    try:
        yield
    except Exception as error:  # nibabel, gzip and zlib raise many types for a damaged file
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DataError(f"cannot read {path}: {reason}; the file is truncated or not NIfTI, re-export it") from None


def _check_same_grid(paths: Sequence[Path], images: Sequence[nib.spatialimages.SpatialImage]) -> None:
    reference_path, reference = paths[0], images[0]
    if len(reference.shape) != 3:
        raise DataError(f"{reference_path} has shape {reference.shape}: a BraTS volume must be 3-d")
    for path, image in zip(paths[1:], images[1:], strict=True):
        if image.shape != reference.shape:
            raise DataError(
                f"{path} has shape {image.shape} but {reference_path.name} has {reference.shape}: "
                "all files of a case must share one voxel grid"
            )
        if not np.allclose(image.affine, reference.affine, atol=1e-4):
            raise DataError(
                f"{path} has another affine than {reference_path.name}: all files of a case must share one voxel grid"
            )


def read_case(files: CaseFiles) -> tuple[np.ndarray, np.ndarray]:
    """Load one case and check it; any integer or float voxel type is accepted.

    Returns:
        ``image`` (H, W, D, 4) float32 in ``MODALITIES`` order and ``label`` (H, W, D) uint8 with
        the raw BraTS values 0, 1, 2, 4.

    Raises:
        DataError: if a file is unreadable, the files differ in shape or affine, or the label
            holds a value outside {0, 1, 2, 4}.
    """
    paths = (*files.images, files.label)
    images: list[nib.spatialimages.SpatialImage] = []
    for path in paths:
        with _reading(path):
            images.append(cast("nib.spatialimages.SpatialImage", nib.load(path)))  # the header only; NIfTI is spatial
    _check_same_grid(paths, images)
    voxels = []
    for path, image in zip(paths, images, strict=True):
        with _reading(path):
            voxels.append(image.get_fdata(dtype=np.float32))
    label = voxels.pop()
    unexpected = ~np.isin(label, BRATS_LABELS)
    if unexpected.any():
        values = ", ".join(f"{value:g}" for value in np.unique(label[unexpected])[:5])
        raise DataError(
            f"{files.label} has label values {values} outside {{0, 1, 2, 4}}: "
            "BraTS labels are 0 background, 1 NCR/NET, 2 ED, 4 ET"
        )
    return np.stack(voxels, axis=-1), label.astype(np.uint8)
