"""Files of a prepared data set and their readers.

A prepared data set ``DIR`` holds ``vol/NAME_vol.npy`` (H x W x D x 4 float32),
``seg/NAME_seg.npy`` (H x W x D uint8, labels 0..3), ``manifest.csv`` (written last by
``prepare``) and the case lists ``train.txt``, ``val.txt``, ``test.txt``.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from trainables.data.atomic import atomic_write
from trainables.errors import DataError

__all__ = [
    "MANIFEST_NAME",
    "MANIFEST_COLUMNS",
    "CASE_LISTS",
    "ManifestRow",
    "volume_path",
    "label_path",
    "case_list_path",
    "is_case_name",
    "rfnet_name",
    "unknown_case_message",
    "write_manifest",
    "read_manifest",
    "read_case_list",
    "write_case_list",
]

MANIFEST_NAME = "manifest.csv"
MANIFEST_COLUMNS: tuple[str, ...] = ("case", "size_x", "size_y", "size_z", "background", "ncr", "ed", "et")
CASE_LISTS: tuple[str, ...] = ("train", "val", "test")
_CASE_NAME = re.compile(r"[\w.\-]+")
_BRATS20_FOLDER = re.compile(r"BraTS20_Training_(\d+)")
_GRADE_PREFIX = re.compile(r"(HG|LG)_")
_RESPLIT = "; re-run `passion-sweep data split`"


@dataclass(frozen=True)
class ManifestRow:
    """One prepared case: its name, volume shape (H, W, D) and voxel count per label 0..3."""

    case: str
    shape: tuple[int, int, int]
    label_counts: tuple[int, int, int, int]


def volume_path(data_dir: Path, name: str) -> Path:
    """Path of the H x W x D x 4 float32 volume of case ``name``."""
    return Path(data_dir) / "vol" / f"{name}_vol.npy"


def label_path(data_dir: Path, name: str) -> Path:
    """Path of the H x W x D uint8 label map of case ``name``."""
    return Path(data_dir) / "seg" / f"{name}_seg.npy"


def case_list_path(data_dir: Path, subset: str) -> Path:
    """Path of ``train.txt``, ``val.txt`` or ``test.txt``."""
    return Path(data_dir) / f"{subset}.txt"


def is_case_name(text: str) -> bool:
    """Whether ``text`` is a usable case name: letters, digits, ``_``, ``.`` and ``-``."""
    return _CASE_NAME.fullmatch(text) is not None


def rfnet_name(folder_name: str) -> str:
    """The case name RFNet's download (and the reference's lists) give a raw case folder.

    ``BraTS20_Training_NNN`` becomes ``HG_BraTS20_Training_NNN`` if NNN <= 259 or NNN >= 336
    (the high-grade cases of BraTS2020) and ``LG_...`` otherwise; other names are kept.
    """
    match = _BRATS20_FOLDER.fullmatch(folder_name)
    if match is None:
        return folder_name
    number = int(match.group(1))
    return f"{'HG' if number <= 259 or number >= 336 else 'LG'}_{folder_name}"


def unknown_case_message(name: str, known: Collection[str], *, otherwise: str = "") -> str:
    """``case NAME is not in the data set``, with a hint when only the HG_/LG_ prefix differs
    and ``otherwise`` (e.g. ``"; re-run ..."``) when it does not."""
    bare = _GRADE_PREFIX.sub("", name, count=1)
    if bare != name and bare in known:
        return (
            f"case {name} is not in the data set, which names it {bare}: it was prepared without the "
            "RFNet names HG_/LG_; prepare it again with `passion-sweep data prepare`"
        )
    if rfnet_name(name) in known:
        return (
            f"case {name} is not in the data set, which names it {rfnet_name(name)} (RFNet's HG_/LG_ names): "
            "use lists and splits with those names, e.g. the built-in `--reference brats2020`"
        )
    return f"case {name} is not in the data set{otherwise}"


def write_manifest(data_dir: Path, rows: Iterable[ManifestRow]) -> Path:
    """Write ``DIR/manifest.csv`` atomically, one row per case."""
    path = Path(data_dir) / MANIFEST_NAME
    with atomic_write(path, "w") as stream:
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(MANIFEST_COLUMNS)
        writer.writerows((row.case, *row.shape, *row.label_counts) for row in rows)
    return path


def read_manifest(data_dir: Path) -> list[ManifestRow]:
    """Read ``DIR/manifest.csv``.

    Raises:
        DataError: if the manifest is missing or a row is malformed (with file and line).
    """
    path = Path(data_dir) / MANIFEST_NAME
    if not path.is_file():
        raise DataError(
            f"{path} not found: {data_dir} is not a prepared data set; run `passion-sweep data prepare SRC {data_dir}`"
        )
    with open(path, newline="", encoding="utf-8") as stream:
        reader = csv.reader(stream)
        header = next(reader, None)
        if header is None or tuple(header) != MANIFEST_COLUMNS:
            raise DataError(
                f"{path}:1: header must be {','.join(MANIFEST_COLUMNS)}; re-run `passion-sweep data prepare`"
            )
        rows = []
        for fields in reader:
            if not fields:
                continue
            if (
                len(fields) != len(MANIFEST_COLUMNS)
                or not is_case_name(fields[0])
                or not all(f.isdigit() for f in fields[1:])
            ):
                raise DataError(
                    f"{path}:{reader.line_num}: malformed manifest row {','.join(fields)!r}; "
                    "re-run `passion-sweep data prepare`"
                )
            numbers = tuple(int(field) for field in fields[1:])
            rows.append(ManifestRow(fields[0], numbers[:3], numbers[3:]))  # type: ignore[arg-type]
    return rows


def read_case_list(path: Path, *, known_cases: Collection[str] | None = None) -> list[str]:
    """Read a case list such as ``train.txt``: one case name per line, blank lines ignored.

    Args:
        path: the list file.
        known_cases: if given, every name must be one of these.

    Raises:
        DataError: for a missing file, a malformed, duplicate or unknown name (with file and line).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"case list {path} not found: run `passion-sweep data split {path.parent}` to write it")
    names: list[str] = []
    seen: set[str] = set()
    for line_number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        name = line.strip()
        if not name:
            continue
        if not is_case_name(name):
            raise DataError(f"{path}:{line_number}: {name!r} is not a case name (letters, digits, '_', '.', '-')")
        if name in seen:
            raise DataError(f"{path}:{line_number}: case {name} is listed twice")
        if known_cases is not None and name not in known_cases:
            raise DataError(f"{path}:{line_number}: {unknown_case_message(name, known_cases, otherwise=_RESPLIT)}")
        seen.add(name)
        names.append(name)
    return names


def write_case_list(path: Path, names: Sequence[str]) -> None:
    """Write one case name per line, atomically."""
    with atomic_write(Path(path), "w") as stream:
        stream.write("".join(f"{name}\n" for name in names))
