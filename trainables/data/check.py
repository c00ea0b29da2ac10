"""Consistency check of a prepared data set, its case lists and a missing-rate split."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainables.data.layout import (
    CASE_LISTS,
    ManifestRow,
    case_list_path,
    label_path,
    read_case_list,
    read_manifest,
    volume_path,
)
from trainables.data.splits import MissingRateSplit, read_split_csv
from trainables.errors import DataError
from trainables.modalities import NUM_CLASSES, NUM_MODALITIES

__all__ = ["CaseCheck", "DatasetReport", "check_dataset"]


@dataclass(frozen=True)
class CaseCheck:
    """What the check found for one case.

    Attributes:
        name: case name.
        shape: (H, W, D) of the stored label map, None if unreadable.
        label_counts: voxels per class 0..3, None if unreadable.
        problem: what is wrong, None if nothing.
    """

    name: str
    shape: tuple[int, ...] | None
    label_counts: tuple[int, ...] | None
    problem: str | None = None


@dataclass(frozen=True)
class DatasetReport:
    """Result of :func:`check_dataset`.

    Attributes:
        data_dir: the checked data set.
        cases: one entry per case of the manifest.
        case_lists: number of cases per list present (train, val, test).
        split: the missing-rate split, if one was given and is valid.
        problems: every problem found, one line each; empty if the data set is fine.
    """

    data_dir: Path
    cases: tuple[CaseCheck, ...]
    case_lists: dict[str, int]
    split: MissingRateSplit | None
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """Whether no problem was found."""
        return not self.problems


def _open_array(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r")
    except (OSError, ValueError, EOFError) as error:  # missing, empty, truncated or not .npy
        raise DataError(f"cannot read {path}: {error}; re-run `passion-sweep data prepare`") from None


def _check_case(data_dir: Path, row: ManifestRow) -> CaseCheck:
    try:
        vol = _open_array(volume_path(data_dir, row.case))
        seg = _open_array(label_path(data_dir, row.case))
    except DataError as error:
        return CaseCheck(row.case, None, None, str(error))
    counts = tuple(int(count) for count in np.bincount(np.asarray(seg).ravel(), minlength=NUM_CLASSES))
    if vol.shape != (*row.shape, NUM_MODALITIES) or vol.dtype != np.float32:
        expected = (*row.shape, NUM_MODALITIES)
        problem = f"volume is {vol.dtype} {vol.shape}, expected float32 {expected} (the label shape plus 4 modalities)"
    elif seg.shape != row.shape or seg.dtype != np.uint8:
        problem = f"label map is {seg.dtype} {seg.shape}, expected uint8 {row.shape} as in the manifest"
    elif len(counts) > NUM_CLASSES:
        problem = f"label map has values above {NUM_CLASSES - 1}: labels must be 0..3"
    elif counts != row.label_counts:
        problem = f"label counts {counts} differ from the manifest's {row.label_counts}"
    else:
        problem = None
    return CaseCheck(row.case, seg.shape, counts, None if problem is None else f"case {row.case}: {problem}")


def _names_sample(names: Sequence[str]) -> str:
    return ", ".join(sorted(names)[:3]) + (", ..." if len(names) > 3 else "")


def check_dataset(data_dir: Path, *, split_csv: Path | None = None) -> DatasetReport:
    """Check a prepared data set: every case readable with consistent shapes and labels 0..3,
    the case lists naming existing cases without overlap, and the split (if given) valid and
    covering exactly the training cases.

    Args:
        data_dir: a prepared data set.
        split_csv: a missing-rate split CSV to check against it.

    Returns:
        The report; problems do not raise.

    Raises:
        DataError: if ``data_dir`` has no readable manifest, so nothing can be checked.
    """
    data_dir = Path(data_dir)
    rows = read_manifest(data_dir)
    cases = tuple(_check_case(data_dir, row) for row in rows)
    problems = [case.problem for case in cases if case.problem]
    known = {row.case for row in rows}

    lists: dict[str, list[str]] = {}
    for subset in CASE_LISTS:
        path = case_list_path(data_dir, subset)
        if path.is_file():
            try:
                lists[subset] = read_case_list(path, known_cases=known)
            except DataError as error:
                problems.append(str(error))
    for first, second in ((a, b) for i, a in enumerate(CASE_LISTS) for b in CASE_LISTS[i + 1 :]):
        shared = set(lists.get(first, ())) & set(lists.get(second, ()))
        if shared:
            problems.append(
                f"{len(shared)} cases are in both {first}.txt and {second}.txt: {_names_sample(list(shared))}"
            )

    split = None
    if split_csv is not None:
        try:
            split = read_split_csv(split_csv, known_cases=known)
        except DataError as error:
            problems.append(str(error))
    if split is not None and "train" in lists:
        outside = set(split.names) - set(lists["train"])
        uncovered = set(lists["train"]) - set(split.names)
        if outside:
            problems.append(f"{split_csv}: {len(outside)} cases are not in train.txt: {_names_sample(list(outside))}")
        if uncovered:
            problems.append(
                f"{split_csv}: {len(uncovered)} training cases have no row: {_names_sample(list(uncovered))}"
            )
    return DatasetReport(
        data_dir, cases, {subset: len(names) for subset, names in lists.items()}, split, tuple(problems)
    )
