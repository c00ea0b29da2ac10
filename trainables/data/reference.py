"""The PASSION reference's case lists and missing-rate splits, shipped as named built-ins.

The files live in ``reference_files/`` (Apache-2.0, PASSION repository; see its NOTICE.md):

- case lists ``brats2020``: RFNet's ``train.txt`` (219), ``val.txt`` (50), ``test.txt`` (100);
- splits ``brats2020-mrABCD`` (8) and ``brats2018-mrABCD`` (2), the reference's CSVs.

They are copied into a data set only after every case name was found in it, so a data set
prepared with other names fails with one line (and a hint when only ``HG_``/``LG_`` differs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from trainables.data.atomic import atomic_write, ensure_directory
from trainables.data.layout import (
    CASE_LISTS,
    case_list_path,
    read_case_list,
    read_manifest,
    unknown_case_message,
    write_case_list,
)
from trainables.data.splits import MissingRateSplit, parse_missing_rates, read_split_csv
from trainables.errors import ConfigError, DataError, did_you_mean

__all__ = [
    "REFERENCE_LISTS",
    "ReferenceSplit",
    "reference_splits",
    "reference_split",
    "reference_case_lists",
    "identify_reference_split",
    "write_reference_lists",
    "write_reference_split",
]

_FILES = Path(__file__).parent / "reference_files"
_SPLIT_FILE = re.compile(r"Brats(\d{4})_imb_split_(mr\d{4})\.csv")
# Data sets whose train/val/test lists ship: the lists of RFNet's BraTS2020 download.
REFERENCE_LISTS: tuple[str, ...] = ("brats2020",)


@dataclass(frozen=True)
class ReferenceSplit:
    """One of the reference's missing-rate split CSVs.

    Attributes:
        name: built-in name, e.g. ``brats2020-mr2468``.
        dataset: ``brats2020`` or ``brats2018``.
        code: the rate code, e.g. ``mr2468`` (tenths missing for t1, t1ce, flair, t2).
        path: the shipped CSV.
    """

    name: str
    dataset: str
    code: str
    path: Path

    def nominal_rates(self) -> dict[str, float]:
        """The missing rate per modality the split was drawn with, in ``MODALITIES`` order."""
        return parse_missing_rates(self.code)

    def load(self) -> MissingRateSplit:
        """The split's cases and availability masks."""
        return _load(self.path)


@cache
def _load(path: Path) -> MissingRateSplit:
    return read_split_csv(path)


@cache
def reference_splits() -> dict[str, ReferenceSplit]:
    """Every built-in split by name, sorted."""
    splits = {}
    for path in sorted(_FILES.glob("*.csv")):
        match = _SPLIT_FILE.fullmatch(path.name)
        if match:
            dataset = f"brats{match.group(1)}"
            name = f"{dataset}-{match.group(2)}"
            splits[name] = ReferenceSplit(name, dataset, match.group(2), path)
    return splits


def reference_split(name: str, rates: str | None = None) -> ReferenceSplit:
    """A built-in split by name (``brats2020-mr2468``) or by data set and rate code
    (``reference_split("brats2020", "mr2468")``).

    Raises:
        ConfigError: for an unknown name or code, listing the built-ins.
    """
    key = f"{name}-{rates.strip().lower()}" if rates is not None else name
    splits = reference_splits()
    if key not in splits:
        raise ConfigError(
            f"no reference split {key!r}{did_you_mean(key, splits)}: the built-in splits are {', '.join(splits)} "
            f"and the built-in case lists {', '.join(REFERENCE_LISTS)}"
        )
    return splits[key]


def reference_case_lists(dataset: str) -> dict[str, list[str]]:
    """The reference's ``train``, ``val`` and ``test`` case lists of ``dataset``.

    Raises:
        ConfigError: for a data set without shipped lists.
    """
    if dataset not in REFERENCE_LISTS:
        raise ConfigError(
            f"no reference case lists {dataset!r}{did_you_mean(dataset, REFERENCE_LISTS)}: "
            f"the built-ins are {', '.join(REFERENCE_LISTS)}"
        )
    return {subset: read_case_list(_FILES / f"{subset}.txt") for subset in CASE_LISTS}


def identify_reference_split(split: MissingRateSplit) -> str | None:
    """The name of the built-in split with the same cases and masks as ``split``, if any."""
    mine = dict(zip(split.names, split.masks, strict=True))
    for name, reference in reference_splits().items():
        theirs = reference.load()
        if len(theirs.names) == len(mine) and all(
            mine.get(n) == m for n, m in zip(theirs.names, theirs.masks, strict=True)
        ):
            return name
    return None


def _check_known(names: list[str], known: set[str], source: str) -> None:
    absent = [name for name in names if name not in known]
    if absent:
        more = f" (and {len(absent) - 1} more)" if len(absent) > 1 else ""
        raise DataError(f"{source}: {unknown_case_message(absent[0], known)}{more}")


def write_reference_lists(data_dir: Path, dataset: str) -> dict[str, list[str]]:
    """Write the reference's ``train.txt``, ``val.txt`` and ``test.txt`` into a data set.

    Raises:
        ConfigError: for an unknown built-in.
        DataError: if a listed case is not in the data set; nothing is written then.
    """
    lists = reference_case_lists(dataset)
    known = {row.case for row in read_manifest(data_dir)}
    for subset, names in lists.items():
        _check_known(names, known, f"reference {dataset} {subset}.txt")
    for subset, names in lists.items():
        write_case_list(case_list_path(data_dir, subset), names)
    return lists


def write_reference_split(data_dir: Path, out: Path, split: ReferenceSplit) -> MissingRateSplit:
    """Copy a built-in split CSV to ``out`` (byte for byte) after checking it fits the data set:
    every case present and the same cases as ``DIR/train.txt``.

    Raises:
        DataError: if a case is absent or ``train.txt`` lists other cases; nothing is written then.
        ConfigError: if ``out`` is a folder.
    """
    result = split.load()
    known = {row.case for row in read_manifest(data_dir)}
    _check_known(list(result.names), known, f"reference split {split.name}")
    train = read_case_list(case_list_path(data_dir, "train"), known_cases=known)
    if set(train) != set(result.names):
        raise DataError(
            f"{case_list_path(data_dir, 'train')} lists {len(train)} cases, not the {len(result.names)} "
            f"training cases of {split.name}: write the reference lists first, "
            f"`passion-sweep data split {data_dir} --reference {split.dataset}`"
        )
    ensure_directory(Path(out).parent, what="folder")
    with atomic_write(Path(out), "wb") as stream:
        stream.write(split.path.read_bytes())
    return result
