"""Files of a prepared data set and their readers.

A prepared data set ``DIR`` holds ``vol/NAME_vol.npy`` (H x W x D x 4 float32),
``seg/NAME_seg.npy`` (H x W x D uint8, labels 0..3), the case lists ``train.txt``,
``val.txt``, ``test.txt`` and, when ``prepare`` wrote it, ``preprocessing.json`` (its
options) and ``manifest.csv`` (written last). This is the layout of RFNet's download.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from trainables.data.atomic import atomic_write
from trainables.errors import DataError

__all__ = [
    "MANIFEST_NAME",
    "PREPROCESSING_NAME",
    "PREPARING_MARKER",
    "MANIFEST_COLUMNS",
    "CASE_LISTS",
    "ManifestRow",
    "volume_path",
    "label_path",
    "case_list_path",
    "is_case_name",
    "check_case_names",
    "rfnet_name",
    "unknown_case_message",
    "write_manifest",
    "write_preprocessing",
    "read_preprocessing",
    "read_manifest",
    "parse_manifest",
    "read_case_list",
    "write_case_list",
    "open_utf8",
]

MANIFEST_NAME = "manifest.csv"
PREPROCESSING_NAME = "preprocessing.json"
# Present while `prepare` writes a folder, so that a stopped run is not indexed as a data set.
PREPARING_MARKER = ".preparing"
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
    shape: tuple[int, ...]
    label_counts: tuple[int, ...]


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


def check_case_names(names: Iterable[str], source: Path) -> None:
    """Raise unless every name is a case name (:func:`is_case_name`), so that a name no
    later command accepts never enters a data set.

    Raises:
        DataError: listing the bad names of ``source`` (at most five).
    """
    bad = [name for name in names if not is_case_name(name)]
    if bad:
        shown = ", ".join(repr(name) for name in bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise DataError(
            f"{source}: case name(s) {shown} have characters other than letters, digits, '_', '.' and '-': "
            "rename those case folders and their files"
        )


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


def open_utf8(path: Path) -> io.StringIO:
    """The text of ``path`` as a stream (line endings kept, as ``open(newline="")``).

    Raises:
        DataError: if the file is not UTF-8 text, naming the byte and its offset.
    """
    raw = Path(path).read_bytes()
    try:
        return io.StringIO(raw.decode("utf-8"), newline="")
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not UTF-8 text (byte 0x{raw[error.start]:02x} at offset {error.start})") from None


def write_preprocessing(data_dir: Path, options: dict[str, str]) -> Path:
    """Record the options ``prepare`` used (e.g. the normalization) in ``DIR/preprocessing.json``, atomically."""
    path = Path(data_dir) / PREPROCESSING_NAME
    with atomic_write(path, "w") as stream:
        json.dump(options, stream, indent=1, sort_keys=True)
        stream.write("\n")
    return path


def read_preprocessing(data_dir: Path) -> dict[str, str] | None:
    """The options recorded by ``prepare``, or None for a data set it did not write (e.g. RFNet's download).

    Raises:
        DataError: if the file exists but is not a JSON object.
    """
    path = Path(data_dir) / PREPROCESSING_NAME
    if not path.is_file():
        return None
    try:
        options = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise DataError(f"cannot read {path}: {error}; re-run `passion-sweep data prepare`") from None
    if not isinstance(options, dict):
        raise DataError(f"{path} is not a JSON object; re-run `passion-sweep data prepare`")
    return {str(key): str(value) for key, value in options.items()}


def read_manifest(data_dir: Path) -> list[ManifestRow]:
    """The cases of a data set: ``DIR/manifest.csv``, or for a folder in the reference layout
    without one (RFNet's download) the index built on first use (:mod:`trainables.data.index`).

    Raises:
        DataError: if the folder is neither, ``prepare`` did not finish in it, a manifest row is
            malformed (with file and line) or an indexed case is unusable.
    """
    path = Path(data_dir) / MANIFEST_NAME
    if path.is_file():
        return parse_manifest(path)
    if (Path(data_dir) / PREPARING_MARKER).exists():
        raise DataError(
            f"`passion-sweep data prepare` did not finish in {data_dir} ({MANIFEST_NAME} is missing): run it again"
        )
    from trainables.data.index import index_dataset  # index imports this module

    return index_dataset(data_dir)


def parse_manifest(path: Path) -> list[ManifestRow]:
    """Read one ``manifest.csv``.

    Raises:
        DataError: if a row is malformed (with file and line).
    """
    with open_utf8(path) as stream:
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
            rows.append(ManifestRow(fields[0], numbers[:3], numbers[3:]))
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
    for line_number, line in enumerate(open_utf8(path).read().splitlines(), start=1):
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
