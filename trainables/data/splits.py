"""Case lists and imbalanced missing-rate splits in the PASSION reference CSV format.

A missing-rate split gives each training case the modalities it really has. The CSV
(reference format, interchangeable with the reference's files both ways) reads::

    data_name,mask_id,mask,pos_mask_ids
    HG_BraTS20_Training_002,10,"[True, True, True, False]","[1, 2, 3, 5, 6, 9, 10]"

``mask`` is the availability in ``flair, t1ce, t1, t2`` order, ``mask_id`` its subset id
and ``pos_mask_ids`` the subset ids reachable by dropping available modalities.
"""

from __future__ import annotations

import csv
import difflib
import logging
import math
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from trainables.data.atomic import atomic_write, ensure_directory
from trainables.data.layout import (
    CASE_LISTS,
    case_list_path,
    is_case_name,
    open_utf8,
    read_case_list,
    read_manifest,
    unknown_case_message,
    write_case_list,
)
from trainables.errors import ConfigError, DataError
from trainables.modalities import MODALITIES, reachable_subset_ids, subset_id

__all__ = [
    "REFERENCE_SEED",
    "SPLIT_CSV_HEADER",
    "MissingRateSplit",
    "split_cases",
    "parse_missing_rates",
    "reference_pattern_counts",
    "allocate_missing_modalities",
    "write_missing_rate_split",
    "write_split_csv",
    "read_split_csv",
]

logger = logging.getLogger(__name__)

REFERENCE_SEED = 1037
SPLIT_CSV_HEADER: tuple[str, ...] = ("data_name", "mask_id", "mask", "pos_mask_ids")
# Order of the rates in a code such as mr2468 (t1 20%, t1ce 40%, flair 60%, t2 80% missing).
_CODE_ORDER: tuple[str, ...] = ("t1", "t1ce", "flair", "t2")
# The order in which the reference fills the 15 availability patterns, each written as
# present (t) or absent (f) for t1, t1ce, flair, t2. It is hand-written, not the order of
# itertools.product in any nesting, and the per-case masks depend on it.
_REFERENCE_FILL_ORDER: tuple[str, ...] = (
    "tttt", "ttft", "tttf", "ttff", "tftt", "tftf", "tfft", "tfff",
    "fttt", "ftft", "fttf", "ftff", "fftt", "fftf", "ffft",
)  # fmt: skip
_OTHER_DATA_SET = "; was the split written for another data set?"
_RATE_CODE = re.compile(r"mr(\d)(\d)(\d)(\d)", re.IGNORECASE)
_MASK_TEXT = re.compile(r"\[\s*(True|False)\s*,\s*(True|False)\s*,\s*(True|False)\s*,\s*(True|False)\s*\]")
_IDS_TEXT = re.compile(r"\[\s*(\d+(?:\s*,\s*\d+)*)?\s*\]")


@dataclass(frozen=True)
class MissingRateSplit:
    """Modality availability of each training case.

    Attributes:
        names: case names.
        masks: per case, availability in ``MODALITIES`` order (at least one True).
    """

    names: tuple[str, ...]
    masks: tuple[tuple[bool, ...], ...]

    @cached_property
    def _mask_by_name(self) -> dict[str, tuple[bool, ...]]:
        return dict(zip(self.names, self.masks, strict=True))

    def mask_of(self, name: str) -> tuple[bool, ...]:
        """Availability of case ``name`` in ``MODALITIES`` order.

        Raises:
            DataError: if the case is not in the split.
        """
        if name not in self._mask_by_name:
            raise DataError(
                f"case {name} is not in the missing-rate split: write the split from this data set's train.txt"
            )
        return self._mask_by_name[name]

    def modality_counts(self) -> dict[str, int]:
        """Number of cases that have each modality, in ``MODALITIES`` order."""
        return {modality: sum(mask[m] for mask in self.masks) for m, modality in enumerate(MODALITIES)}


def split_cases(
    data_dir: Path, *, test: float = 0.2, val: float = 0.1, seed: int = REFERENCE_SEED
) -> dict[str, list[str]]:
    """Split the cases of a prepared data set at random into ``train.txt``, ``val.txt`` and ``test.txt``.

    Args:
        data_dir: a prepared data set (its ``manifest.csv`` lists the cases).
        test: fraction of cases for testing, in [0, 1).
        val: fraction of cases for validation, in [0, 1).
        seed: random seed; the split depends only on it and the case names.

    Returns:
        Sorted case names per list: ``{"train": [...], "val": [...], "test": [...]}``.

    Raises:
        ConfigError: if a fraction is out of range or no training case would be left.
        DataError: if ``data_dir`` is not a prepared data set.
    """
    for option, fraction in (("test", test), ("val", val)):
        if not 0 <= fraction < 1:
            raise ConfigError(f"{option} must be >= 0 and < 1, got {fraction}")
    names = sorted(row.case for row in read_manifest(data_dir))
    sizes = {"test": math.floor(len(names) * test + 0.5), "val": math.floor(len(names) * val + 0.5)}
    if sizes["test"] + sizes["val"] >= len(names):
        raise ConfigError(f"test {test} and val {val} leave no training case of {len(names)}: lower --test or --val")
    order = np.random.default_rng(seed).permutation(len(names))
    shuffled = [names[index] for index in order]
    lists = {
        "test": sorted(shuffled[: sizes["test"]]),
        "val": sorted(shuffled[sizes["test"] : sizes["test"] + sizes["val"]]),
        "train": sorted(shuffled[sizes["test"] + sizes["val"] :]),
    }
    for subset in CASE_LISTS:
        write_case_list(case_list_path(data_dir, subset), lists[subset])
    return {subset: lists[subset] for subset in CASE_LISTS}


def parse_missing_rates(text: str) -> dict[str, float]:
    """Missing rate per modality from ``flair=0.6,t1ce=0.4,t1=0.2,t2=0.8`` or a code ``mr2468``.

    A code lists the rates in tenths for t1, t1ce, flair, t2, in that order (the
    reference's naming): ``mr2468`` means t1 20%, t1ce 40%, flair 60%, t2 80% missing.

    Returns:
        Rates in ``MODALITIES`` order, each in [0, 1).

    Raises:
        ConfigError: for an unknown, repeated or missing modality, or a rate outside [0, 1).
    """
    text = text.strip()
    code = _RATE_CODE.fullmatch(text)
    if code:
        rates = {modality: int(digit) / 10 for modality, digit in zip(_CODE_ORDER, code.groups(), strict=True)}
        return {modality: rates[modality] for modality in MODALITIES}
    rates = {}
    for item in text.split(","):
        name, separator, value = (part.strip() for part in item.partition("="))
        if not separator:
            raise ConfigError(
                f"missing rates {text!r}: expected modality=rate pairs like flair=0.6,t1ce=0.4,t1=0.2,t2=0.8 "
                "or a code like mr2468"
            )
        if name not in MODALITIES:
            close = difflib.get_close_matches(name, MODALITIES, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(f"unknown modality {name!r} in missing rates{hint}: use {', '.join(MODALITIES)}")
        if name in rates:
            raise ConfigError(f"modality {name} is given twice in missing rates {text!r}")
        try:
            rate = float(value)
        except ValueError:
            raise ConfigError(f"missing rate of {name} must be a number in [0, 1), got {value!r}") from None
        if not 0 <= rate < 1:
            raise ConfigError(f"missing rate of {name} must be >= 0 and < 1, got {value}")
        rates[name] = rate
    absent = [modality for modality in MODALITIES if modality not in rates]
    if absent:
        raise ConfigError(
            f"missing rates {text!r} give no rate for {', '.join(absent)}: give all of {', '.join(MODALITIES)}"
        )
    return {modality: rates[modality] for modality in MODALITIES}


def reference_pattern_counts(num_cases: int, rates: Mapping[str, float]) -> list[tuple[tuple[bool, ...], int]]:
    """The deterministic part of the reference allocation: cases per availability pattern.

    Pattern by pattern, in the reference's hand-written fill order
    (:data:`_REFERENCE_FILL_ORDER`; with few cases only the first patterns get any), the
    count is ``max(1, int(N * prod_m(p_m if missing else 1 - p_m)))``, multiplied in the
    reference's order t1, t1ce, flair, t2 so that float rounding agrees. The counts may
    sum to more or fewer than N: the fill stops at N, and cases left over are drawn at random.

    Returns:
        ``(mask in MODALITIES order, count)`` for the 15 non-empty patterns, in fill order.
    """
    counts = []
    for pattern in _REFERENCE_FILL_ORDER:
        present = dict(zip(_CODE_ORDER, (letter == "t" for letter in pattern), strict=True))
        expected = float(num_cases)
        for modality in _CODE_ORDER:
            expected *= (1 - rates[modality]) if present[modality] else rates[modality]
        counts.append((tuple(present[modality] for modality in MODALITIES), max(1, int(expected))))
    return counts


def allocate_missing_modalities(
    names: Sequence[str], rates: Mapping[str, float], *, seed: int = REFERENCE_SEED
) -> MissingRateSplit:
    """The reference "i.i.d.-expected" allocation of modality availability.

    Patterns get :func:`reference_pattern_counts` cases, filled in order until the N
    cases are used up; the cases left over are drawn at random, each modality present
    with probability ``1 - p_m``, until at least one is present; the masks are shuffled
    over the sorted case names. The random stream is
    numpy's legacy ``RandomState(seed)`` used exactly as the reference uses it, so the
    same names, rates and seed give the reference's split (BraTS2020 train, mr2468, seed
    1037: flair 90, t1ce 135, t1 184, t2 43 cases).

    Args:
        names: training case names (sorted here, as by the reference).
        rates: missing rate per modality name, each in [0, 1).
        seed: random seed (reference 1037).

    Returns:
        The split, cases in sorted name order.

    Raises:
        ConfigError: unless ``rates`` gives each modality a rate in [0, 1).
    """
    if sorted(rates) != sorted(MODALITIES) or not all(0 <= rate < 1 for rate in rates.values()):
        raise ConfigError(
            f"rates must give each of {', '.join(MODALITIES)} a missing rate in [0, 1), got {dict(rates)}"
        )
    names = sorted(names)
    missing = [rates[modality] for modality in _CODE_ORDER]  # the reference's order of multiplication
    random_state = np.random.RandomState(seed)
    # The reference first draws four arrays that the fill below mostly overwrites; drawing
    # them keeps the random stream, and so the leftover cases, identical to the reference.
    masks = np.stack([random_state.rand(len(names)) > rate for rate in missing], axis=1)  # (N, 4) in _CODE_ORDER
    filled = 0
    for mask, count in reference_pattern_counts(len(names), rates):
        masks[filled : filled + count] = [mask[MODALITIES.index(modality)] for modality in _CODE_ORDER]
        filled += count
    masks[filled:] = False
    masks = masks[random_state.permutation(len(names))]  # one shuffle applied to all four columns
    for row in masks:
        while not row.any():
            row[:] = [random_state.rand(1)[0] > rate for rate in missing]
    order = [_CODE_ORDER.index(modality) for modality in MODALITIES]
    return MissingRateSplit(tuple(names), tuple(tuple(bool(v) for v in row[order]) for row in masks))


def write_missing_rate_split(
    data_dir: Path, out: Path, *, rates: Mapping[str, float], seed: int = REFERENCE_SEED
) -> MissingRateSplit:
    """Allocate modality availability over ``DIR/train.txt`` and write the split CSV to ``out``.

    Raises:
        DataError: if ``train.txt`` is missing or names unknown cases.
        ConfigError: if ``out`` is a folder.
    """
    known = {row.case for row in read_manifest(data_dir)}
    names = read_case_list(case_list_path(data_dir, "train"), known_cases=known)
    if not names:
        raise DataError(f"{case_list_path(data_dir, 'train')} is empty: a missing-rate split needs training cases")
    split = allocate_missing_modalities(names, rates, seed=seed)
    write_split_csv(out, split)
    return split


def _format_list(values: Sequence[object]) -> str:
    return "[" + ", ".join(str(value) for value in values) + "]"


def write_split_csv(path: Path, split: MissingRateSplit) -> None:
    """Write ``split`` in the reference CSV format (``csv`` module defaults, as the reference), atomically.

    Raises:
        ConfigError: if ``path`` is a folder or lies under a file.
    """
    path = Path(path)
    ensure_directory(path.parent, what="folder")
    with atomic_write(path, "w") as stream:
        writer = csv.writer(stream)
        writer.writerow(SPLIT_CSV_HEADER)
        for name, mask in zip(split.names, split.masks, strict=True):
            writer.writerow([name, subset_id(mask), _format_list(mask), _format_list(reachable_subset_ids(mask))])


def _parse_row(fields: list[str], where: str) -> tuple[str, tuple[bool, ...]]:
    """Name and mask of one CSV row, checked for consistency; errors are prefixed with ``where``."""
    if len(fields) != len(SPLIT_CSV_HEADER):
        raise DataError(f"{where}: expected 4 fields {','.join(SPLIT_CSV_HEADER)}, got {len(fields)}")
    name, mask_id_text, mask_text, ids_text = (field.strip() for field in fields)
    if not is_case_name(name):
        raise DataError(f"{where}: {name!r} is not a case name (letters, digits, '_', '.', '-')")
    mask_match = _MASK_TEXT.fullmatch(mask_text)
    if not mask_match:
        raise DataError(f'{where}: mask {mask_text!r} is not 4 True/False values like "[True, False, True, True]"')
    mask = tuple(value == "True" for value in mask_match.groups())
    if not any(mask):
        raise DataError(f"{where}: case {name} has no modality (mask {mask_text}); every case needs at least one")
    if not mask_id_text.isdigit() or int(mask_id_text) != subset_id(mask):
        raise DataError(
            f"{where}: mask_id {mask_id_text!r} does not match mask {mask_text} (its id is {subset_id(mask)})"
        )
    ids_match = _IDS_TEXT.fullmatch(ids_text)
    ids = (
        [int(value) for value in re.split(r"\s*,\s*", ids_match.group(1))] if ids_match and ids_match.group(1) else None
    )
    if ids != reachable_subset_ids(mask):
        raise DataError(
            f"{where}: pos_mask_ids {ids_text!r} do not match mask {mask_text}: "
            f"expected {_format_list(reachable_subset_ids(mask))}"
        )
    return name, mask


def read_split_csv(path: Path, *, known_cases: Collection[str] | None = None) -> MissingRateSplit:
    """Read and validate a missing-rate split CSV in the reference format (never ``eval``).

    Args:
        path: the CSV file.
        known_cases: if given, every case must be one of these (the data set's cases).

    Raises:
        DataError: naming the file and line, for a missing file, a bad header, a malformed
            or inconsistent row, a case without modality, an unknown or repeated case.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"split file {path} not found: "
            f"write one with `passion-sweep data split DIR --missing-rates RATES --out {path}`"
        )
    names: list[str] = []
    masks: list[tuple[bool, ...]] = []
    seen: set[str] = set()
    with open_utf8(path) as stream:
        reader = csv.reader(stream, strict=True)
        try:
            header = next(reader, [])
            if [field.strip() for field in header] != list(SPLIT_CSV_HEADER):
                raise DataError(f"{path}:1: header must be {','.join(SPLIT_CSV_HEADER)}, got {','.join(header)!r}")
            for fields in reader:
                if not fields:
                    continue
                name, mask = _parse_row(fields, f"{path}:{reader.line_num}")
                if name in seen:
                    raise DataError(f"{path}:{reader.line_num}: case {name} appears twice")
                if known_cases is not None and name not in known_cases:
                    message = unknown_case_message(name, known_cases, otherwise=_OTHER_DATA_SET)
                    raise DataError(f"{path}:{reader.line_num}: {message}")
                seen.add(name)
                names.append(name)
                masks.append(mask)
        except csv.Error as error:
            raise DataError(f"{path}:{reader.line_num}: not a valid CSV row ({error})") from None
    if not names:
        raise DataError(f"{path} lists no case: a split needs one row per training case")
    return MissingRateSplit(tuple(names), tuple(masks))
