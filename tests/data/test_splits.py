from __future__ import annotations

import re
from pathlib import Path

import pytest

from trainables.data import (
    allocate_missing_modalities,
    parse_missing_rates,
    read_case_list,
    read_split_csv,
    reference_pattern_counts,
    split_cases,
    write_split_csv,
)
from trainables.errors import ConfigError, DataError
from trainables.modalities import MODALITIES

MR2468 = {"flair": 0.6, "t1ce": 0.4, "t1": 0.2, "t2": 0.8}
BRATS2020_TRAIN = [f"BraTS20_Training_{index:03d}" for index in range(1, 220)]


def test_deterministic_part_of_the_reference_allocation() -> None:
    counts = reference_pattern_counts(219, MR2468)
    assert len(counts) == 15 and sum(count for _, count in counts) == 204
    available = {m: sum(count for mask, count in counts if mask[i]) for i, m in enumerate(MODALITIES)}
    assert available == {"t1": 171, "t1ce": 128, "flair": 84, "t2": 41}


def test_allocation_reproduces_the_reference_split() -> None:
    split = allocate_missing_modalities(BRATS2020_TRAIN, MR2468, seed=1037)
    assert split.names == tuple(BRATS2020_TRAIN)
    assert all(any(mask) for mask in split.masks)
    assert split.modality_counts() == {"flair": 90, "t1ce": 135, "t1": 184, "t2": 43}


def test_allocation_is_deterministic_per_seed() -> None:
    first, second = (allocate_missing_modalities(BRATS2020_TRAIN, MR2468, seed=7) for _ in range(2))
    assert first == second
    assert allocate_missing_modalities(BRATS2020_TRAIN, MR2468, seed=8).masks != first.masks


def test_few_cases_get_the_first_patterns_of_the_reference_order() -> None:
    split = allocate_missing_modalities(["d", "c", "b", "a"], MR2468)
    assert split.names == ("a", "b", "c", "d")
    full, no_flair, no_t2, t1ce_t1 = (
        (True, True, True, True),
        (False, True, True, True),
        (True, True, True, False),
        (False, True, True, False),
    )
    assert sorted(split.masks) == sorted([full, no_flair, no_t2, t1ce_t1])


def test_missing_rates_from_pairs_and_from_a_code() -> None:
    assert parse_missing_rates("flair=0.6, t1ce=0.4,t1=0.2,t2=0.8") == MR2468
    assert parse_missing_rates("mr2468") == MR2468
    assert list(parse_missing_rates("mr2468")) == list(MODALITIES)
    assert parse_missing_rates("mr1379") == {"flair": 0.7, "t1ce": 0.3, "t1": 0.1, "t2": 0.9}


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("flair=1.0,t1ce=0.4,t1=0.2,t2=0.8", r"missing rate of flair must be >= 0 and < 1, got 1.0"),
        ("flair=-0.1,t1ce=0.4,t1=0.2,t2=0.8", r"must be >= 0 and < 1"),
        ("flare=0.6,t1ce=0.4,t1=0.2,t2=0.8", r"unknown modality 'flare' in missing rates \(did you mean flair\?\)"),
        ("flair=0.6,t1ce=0.4,t1=0.2", r"no rate for t2"),
        ("flair=0.6,flair=0.4,t1=0.2,t2=0.8", r"flair is given twice"),
        ("flair=high,t1ce=0.4,t1=0.2,t2=0.8", r"must be a number"),
        ("mr24", r"expected modality=rate pairs"),
    ],
)
def test_bad_missing_rates(text: str, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        parse_missing_rates(text)


REFERENCE_CSV = (
    "data_name,mask_id,mask,pos_mask_ids\r\n"
    'HG_BraTS20_Training_002,10,"[True, True, True, False]","[1, 2, 3, 5, 6, 9, 10]"\r\n'
    'HG_BraTS20_Training_003,0,"[False, False, False, True]",[0]\r\n'
    'LG_BraTS20_Training_260,14,"[True, True, True, True]","[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]"\r\n'
)


def test_reference_csv_round_trip(tmp_path: Path) -> None:
    original = tmp_path / "reference.csv"
    original.write_bytes(REFERENCE_CSV.encode())
    split = read_split_csv(original)
    assert split.mask_of("HG_BraTS20_Training_002") == (True, True, True, False)
    assert split.modality_counts() == {"flair": 2, "t1ce": 2, "t1": 2, "t2": 2}
    write_split_csv(tmp_path / "copy.csv", split)
    assert (tmp_path / "copy.csv").read_bytes() == original.read_bytes()


def _replace_row(row: int, text: str) -> str:
    lines = REFERENCE_CSV.split("\r\n")
    lines[row - 1] = text
    return "\r\n".join(lines)


@pytest.mark.parametrize(
    ("content", "line", "pattern"),
    [
        (
            _replace_row(1, "data_name,mask_id,maskpos_mask_ids"),
            1,
            "header must be data_name,mask_id,mask,pos_mask_ids",
        ),
        (_replace_row(2, 'A,10,"[True, Tru, True, False]","[1]"'), 2, "mask .* is not 4 True/False values"),
        (_replace_row(2, 'A,10,"[1, 1, 1, 0]","[1]"'), 2, "is not 4 True/False values"),
        (_replace_row(2, 'A,10,"__import__(\'os\')","[1]"'), 2, "is not 4 True/False values"),
        (_replace_row(3, 'B,0,"[False, False, False, False]",[]'), 3, "case B has no modality"),
        (_replace_row(2, 'A,9,"[True, True, True, False]","[1, 2, 3, 5, 6, 9, 10]"'), 2, "mask_id '9' does not match"),
        (
            _replace_row(2, 'A,10,"[True, True, True, False]","[1, 2, 3]"'),
            2,
            r"pos_mask_ids .* expected \[1, 2, 3, 5, 6, 9, 10\]",
        ),
        (_replace_row(3, 'HG_BraTS20_Training_002,0,"[False, False, False, True]",[0]'), 3, "appears twice"),
        (_replace_row(2, "A,10"), 2, "expected 4 fields"),
        (_replace_row(2, 'A B,0,"[False, False, False, True]",[0]'), 2, "is not a case name"),
    ],
)
def test_malformed_split_csv(tmp_path: Path, content: str, line: int, pattern: str) -> None:
    path = tmp_path / "split.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=re.escape(f"{path}:{line}: ") + ".*" + pattern):
        read_split_csv(path)


def test_unknown_case_in_split_csv(tmp_path: Path) -> None:
    path = tmp_path / "split.csv"
    path.write_text(REFERENCE_CSV)
    with pytest.raises(DataError, match=re.escape(f"{path}:3: case HG_BraTS20_Training_003 is not in the data set")):
        read_split_csv(path, known_cases={"HG_BraTS20_Training_002", "LG_BraTS20_Training_260"})


def test_empty_split_csv(tmp_path: Path) -> None:
    path = tmp_path / "split.csv"
    path.write_text("data_name,mask_id,mask,pos_mask_ids\n")
    with pytest.raises(DataError, match="lists no case"):
        read_split_csv(path)


def test_split_cases(prepared_phantom: Path, tmp_path: Path) -> None:
    lists = {subset: read_case_list(prepared_phantom / f"{subset}.txt") for subset in ("train", "val", "test")}
    assert [len(names) for names in lists.values()] == [4, 1, 1]
    assert sorted(name for names in lists.values() for name in names) == [f"Phantom_00{index}" for index in range(1, 7)]
    copy = tmp_path / "data"
    copy.mkdir()
    (copy / "manifest.csv").write_bytes((prepared_phantom / "manifest.csv").read_bytes())
    assert split_cases(copy) == lists  # same seed, same split
    assert split_cases(copy, seed=2) != lists


@pytest.mark.parametrize(
    ("options", "pattern"),
    [({"test": 1.0}, "test must be >= 0 and < 1"), ({"test": 0.6, "val": 0.4}, "leave no training case")],
)
def test_bad_split_fractions(prepared_phantom: Path, options: dict, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        split_cases(prepared_phantom, **options)


def test_allocation_rejects_impossible_rates() -> None:
    with pytest.raises(ConfigError, match=r"missing rate in \[0, 1\)"):
        allocate_missing_modalities(["a"], dict.fromkeys(MODALITIES, 1.0))
