"""Consistency check of a data set, its case lists and a missing-rate split, and the
differences from the reference's data that matter to a model (normalisation, dtype)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainables.data.index import inspect_case
from trainables.data.layout import (
    CASE_LISTS,
    MANIFEST_NAME,
    PREPROCESSING_NAME,
    ManifestRow,
    case_list_path,
    label_path,
    read_case_list,
    read_manifest,
    read_preprocessing,
    volume_path,
)
from trainables.data.reference import identify_reference_split, reference_splits
from trainables.data.splits import MissingRateSplit, parse_missing_rates, read_split_csv
from trainables.errors import DataError

__all__ = ["BACKGROUNDS", "CaseCheck", "DatasetReport", "check_dataset"]

# How a volume's background (its corners) reads: "reference" a non-zero constant per
# modality (-mean/std, the reference's normalisation), "zero" 0 (zero-background), "varies" neither.
BACKGROUNDS: tuple[str, ...] = ("reference", "zero", "varies")
_RATE_CODE = re.compile(r"mr\d{4}", re.IGNORECASE)


@dataclass(frozen=True)
class CaseCheck:
    """What the check found for one case.

    Attributes:
        name: case name.
        shape: (H, W, D) of the stored label map, None if unreadable.
        label_counts: voxels per class 0..3, None if unreadable.
        problem: what is wrong, None if nothing.
        dtype: the volume's dtype, None if unreadable.
        background: one of :data:`BACKGROUNDS`, None if unreadable.
    """

    name: str
    shape: tuple[int, ...] | None
    label_counts: tuple[int, ...] | None
    problem: str | None = None
    dtype: str | None = None
    background: str | None = None


@dataclass(frozen=True)
class DatasetReport:
    """Result of :func:`check_dataset`.

    Attributes:
        data_dir: the checked data set.
        cases: one entry per case of the manifest.
        case_lists: number of cases per list present (train, val, test).
        split: the missing-rate split, if one was given and is valid.
        problems: every problem found, one line each; empty if the data set is fine.
        preprocessing: the options ``prepare`` recorded, None if it did not write the data set.
        reference_split: the name of the built-in reference split equal to ``split``, if any.
        nominal_rates: missing rate per modality the split should have: the reference's
            (its code, or an ``mrABCD`` in the file name), None if unknown.
    """

    data_dir: Path
    cases: tuple[CaseCheck, ...]
    case_lists: dict[str, int]
    split: MissingRateSplit | None
    problems: tuple[str, ...]
    preprocessing: dict[str, str] | None = None
    reference_split: str | None = None
    nominal_rates: dict[str, float] | None = None

    def backgrounds(self) -> dict[str, int]:
        """Number of readable cases per kind of background (:data:`BACKGROUNDS`)."""
        return _tally(case.background for case in self.cases)

    def dtypes(self) -> dict[str, int]:
        """Number of readable cases per volume dtype."""
        return _tally(case.dtype for case in self.cases)

    @property
    def ok(self) -> bool:
        """Whether no problem was found."""
        return not self.problems


def _tally(values: Iterable[str | None]) -> dict[str, int]:
    """How often each value occurs, None left out, sorted by value."""
    counts = Counter(value for value in values if value is not None)
    return dict(sorted(counts.items()))


def _open_array(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r")
    except (OSError, ValueError, EOFError) as error:  # missing, empty, truncated or not .npy
        raise DataError(f"cannot read {path}: {error}; re-run `passion-sweep data prepare`") from None


def _background(vol: np.ndarray) -> str:
    """Classify the background from the 8 corners of an (H, W, D, 4) volume: the crop box
    extends past the brain, so the corners lie outside it."""
    corners = np.asarray(vol[:: max(vol.shape[0] - 1, 1), :: max(vol.shape[1] - 1, 1), :: max(vol.shape[2] - 1, 1)])
    corners = corners.reshape(-1, vol.shape[-1])
    if not (corners == corners[0]).all():
        return "varies"
    return "zero" if not corners.any() else "reference" if corners.all() else "varies"


def _check_case(data_dir: Path, row: ManifestRow) -> CaseCheck:
    try:
        vol = _open_array(volume_path(data_dir, row.case))
        seg = _open_array(label_path(data_dir, row.case))
    except DataError as error:
        return CaseCheck(row.case, None, None, str(error))
    counts, problem = inspect_case(vol, seg)
    if problem is None and seg.shape != row.shape:
        problem = f"label map has shape {seg.shape}, the manifest {row.shape}"
    elif problem is None and counts != row.label_counts:
        problem = f"label counts {counts} differ from the manifest's {row.label_counts}"
    if problem is not None:
        return CaseCheck(row.case, None, None, f"case {row.case}: {problem}")
    return CaseCheck(row.case, seg.shape, counts, None, str(vol.dtype), _background(vol))


def _names_sample(names: Sequence[str]) -> str:
    return ", ".join(sorted(names)[:3]) + (", ..." if len(names) > 3 else "")


def _unlisted_arrays(data_dir: Path, known: set[str]) -> str | None:
    """A problem if ``vol/`` holds volumes the manifest lacks (cases added after indexing)."""
    folder = data_dir / "vol"
    extra = sorted(
        path.name.removesuffix("_vol.npy")
        for path in (folder.glob("*_vol.npy") if folder.is_dir() else ())
        if not path.name.startswith(".") and path.name.removesuffix("_vol.npy") not in known
    )
    if not extra:
        return None
    return (
        f"{len(extra)} volumes in {folder} are not in {MANIFEST_NAME}: {_names_sample(extra)}; "
        f"delete {data_dir / MANIFEST_NAME} to index the folder again"
    )


def _normalization_problem(recorded: dict[str, str] | None, backgrounds: dict[str, int]) -> str | None:
    """A problem if the background contradicts the normalization ``prepare`` recorded."""
    recorded = recorded or {}
    expected = {"reference": "reference", "zero-background": "zero"}.get(recorded.get("normalization", ""))
    contradicting = sum(count for kind, count in backgrounds.items() if kind != expected)
    if expected is None or not contradicting:
        return None
    return (
        f"{PREPROCESSING_NAME} records {recorded['normalization']} normalization, but {contradicting} cases have "
        f"another background ({', '.join(f'{kind} {count}' for kind, count in backgrounds.items())})"
    )


def _nominal_rates(split_csv: Path, reference: str | None) -> dict[str, float] | None:
    if reference is not None:
        return reference_splits()[reference].nominal_rates()
    code = _RATE_CODE.search(Path(split_csv).name)
    return parse_missing_rates(code.group(0)) if code else None


def check_dataset(data_dir: Path, *, split_csv: Path | None = None) -> DatasetReport:
    """Check a data set: every case readable with consistent shapes and labels 0..3, the case
    lists naming existing cases without overlap, the background agreeing with the recorded
    normalization, and the split (if given) valid and covering exactly the training cases.

    Args:
        data_dir: a prepared data set or a folder in the reference layout (indexed on first use).
        split_csv: a missing-rate split CSV to check against it.

    Returns:
        The report; problems do not raise.

    Raises:
        DataError: if ``data_dir`` is not a data set or cannot be indexed, so nothing can be checked.
    """
    data_dir = Path(data_dir)
    rows = read_manifest(data_dir)
    cases = tuple(_check_case(data_dir, row) for row in rows)
    problems = [case.problem for case in cases if case.problem]
    known = {row.case for row in rows}
    preprocessing = read_preprocessing(data_dir)
    backgrounds = _tally(case.background for case in cases)
    problems += filter(None, [_unlisted_arrays(data_dir, known), _normalization_problem(preprocessing, backgrounds)])

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
    reference = identify_reference_split(split) if split is not None else None
    return DatasetReport(
        data_dir,
        cases,
        {subset: len(names) for subset, names in lists.items()},
        split,
        tuple(problems),
        preprocessing=preprocessing,
        reference_split=reference,
        nominal_rates=_nominal_rates(split_csv, reference) if split is not None and split_csv is not None else None,
    )
