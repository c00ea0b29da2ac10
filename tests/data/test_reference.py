"""The reference's case lists and split CSVs as built-ins, and their reproduction: the
allocation of ``data split --missing-rates`` gives every reference CSV byte for byte."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from passion_sweep.cli import main
from tests.data.reference_layout import write_reference_layout
from trainables.data import (
    identify_reference_split,
    read_split_csv,
    reference_case_lists,
    reference_split,
    reference_splits,
)
from trainables.data.layout import ManifestRow, write_manifest
from trainables.modalities import MODALITIES

USAGE, DATA = 2, 1
BRATS2020 = reference_case_lists("brats2020")
ALL_2020 = sorted(name for names in BRATS2020.values() for name in names)


def run(*args: object) -> Result:
    return CliRunner().invoke(main, [str(arg) for arg in args])


def _data_set(folder: Path, names: list[str], train: list[str] | None = None) -> Path:
    write_reference_layout(folder, names, shape=(2, 2, 2), lists={"train": train} if train else None)
    write_manifest(folder, [ManifestRow(name, (2, 2, 2), (8, 0, 0, 0)) for name in sorted(names)])
    return folder


@pytest.fixture(scope="module")
def brats2020_layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 369 BraTS2020 case names of the reference lists, as tiny arrays with the reference lists."""
    folder = _data_set(tmp_path_factory.mktemp("brats2020") / "data", ALL_2020)
    assert run("data", "split", folder, "--reference", "brats2020").exit_code == 0
    return folder


def test_built_ins() -> None:
    assert [len(BRATS2020[subset]) for subset in ("train", "val", "test")] == [219, 50, 100]
    assert len(set(ALL_2020)) == 369
    assert sorted(reference_splits()) == [
        "brats2018-mr1379",
        "brats2018-mr2468",
        *(f"brats2020-mr{code}" for code in ("1379", "2258", "2285", "2468", "5528", "5582", "8825", "8852")),
    ]
    mr2468 = reference_split("brats2020", "mr2468")
    assert mr2468 == reference_split("brats2020-mr2468")
    assert mr2468.nominal_rates() == {"flair": 0.6, "t1ce": 0.4, "t1": 0.2, "t2": 0.8}
    assert mr2468.load().modality_counts() == {"flair": 90, "t1ce": 135, "t1": 184, "t2": 43}
    assert set(mr2468.load().names) == set(BRATS2020["train"])


@pytest.mark.parametrize("name", sorted(reference_splits()))
def test_missing_rate_split_reproduces_the_reference_csv(name: str, tmp_path: Path) -> None:
    """``data split --missing-rates mrABCD --seed 1037`` over the reference's training cases
    writes the reference's CSV, byte for byte (BraTS2018 over its own case names)."""
    builtin = reference_split(name)
    train = list(builtin.load().names)
    folder = _data_set(tmp_path / "data", train, train=train)
    out = tmp_path / "split.csv"
    result = run("data", "split", folder, "--missing-rates", builtin.code, "--seed", 1037, "--out", out)
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == builtin.path.read_bytes()
    assert identify_reference_split(read_split_csv(out)) == name


def test_identify_reference_split_needs_every_mask() -> None:
    split = reference_split("brats2020-mr2468").load()
    assert identify_reference_split(split) == "brats2020-mr2468"
    changed = tuple((not mask[0], *mask[1:]) if any(mask[1:]) else mask for mask in split.masks[:1]) + split.masks[1:]
    assert changed != split.masks
    assert identify_reference_split(type(split)(split.names, changed)) is None


def test_split_writes_the_reference_lists(brats2020_layout: Path) -> None:
    for subset, names in BRATS2020.items():
        assert (brats2020_layout / f"{subset}.txt").read_text().split() == names


@pytest.mark.parametrize(
    "args", [("--reference", "brats2020", "--missing-rates", "mr5528"), ("--reference", "brats2020-mr5528")]
)
def test_split_copies_a_reference_split(brats2020_layout: Path, tmp_path: Path, args: tuple[str, ...]) -> None:
    out = tmp_path / "mr5528.csv"
    result = run("data", "split", brats2020_layout, *args, "--out", out)
    assert result.exit_code == 0, result.output
    assert "reference split brats2020-mr5528, 219 cases; available flair 185, t1ce 111, t1 113, t2 42" in result.output
    assert out.read_bytes() == reference_split("brats2020-mr5528").path.read_bytes()


def _last_line(result: Result) -> str:
    assert "Traceback" not in result.output
    return [line for line in result.stderr.splitlines() if line.strip()][-1]


def test_reference_lists_over_folder_names_fail_with_a_prefix_hint(tmp_path: Path) -> None:
    bare = [re.sub(r"^(HG|LG)_", "", name) for name in ALL_2020]
    folder = _data_set(tmp_path / "data", bare)
    before = sorted(path.name for path in folder.iterdir())
    result = run("data", "split", folder, "--reference", "brats2020")
    assert result.exit_code == DATA
    assert re.search(
        r"reference brats2020 train.txt: case HG_BraTS20_Training_\d+ is not in the data set, which names it "
        r"BraTS20_Training_\d+: it was prepared without the RFNet names HG_/LG_.* \(and 218 more\)",
        _last_line(result),
    )
    assert sorted(path.name for path in folder.iterdir()) == before


def test_reference_split_needs_the_reference_train_list(brats2020_layout: Path, tmp_path: Path) -> None:
    folder = _data_set(tmp_path / "data", ALL_2020, train=BRATS2020["train"][:-1])
    out = tmp_path / "split.csv"
    result = run("data", "split", folder, "--reference", "brats2020-mr2468", "--out", out)
    assert result.exit_code == DATA and re.search(
        r"lists 218 cases, not the 219 training cases of brats2020-mr2468", _last_line(result)
    )
    assert not out.exists()


_MR2469 = r"no reference split 'brats2020-mr2469' \(did you mean 'brats2020-mr2468'\?\)"


@pytest.mark.parametrize(
    ("args", "code", "pattern"),
    [
        (
            ("--reference", "brats2020-mr2469", "--out", "x.csv"),
            USAGE,
            r"no reference split 'brats2020-mr2469' \(did you mean 'brats2020-mr2468'\?\)",
        ),
        (
            ("--reference", "brats2020", "--missing-rates", "mr2469", "--out", "x.csv"),
            USAGE,
            r"no reference split 'brats2020-mr2469' \(did you mean 'brats2020-mr2468'\?\)",
        ),
        (("--reference", "brats2020-mr2468"), USAGE, r"--out names the CSV"),
        (("--reference", "brats2020", "--out", "x.csv"), USAGE, r"--out names the CSV"),
        (("--reference", "brats2018"), USAGE, r"no reference split 'brats2018'.*the built-in case lists brats2020$"),
    ],
)
def test_bad_reference_options(brats2020_layout: Path, args: tuple[str, ...], code: int, pattern: str) -> None:
    result = run("data", "split", brats2020_layout, *args)
    assert result.exit_code == code, result.output
    assert re.search(pattern, _last_line(result)), _last_line(result)


def test_split_modalities_are_named_in_modalities_order() -> None:
    assert list(reference_split("brats2018-mr1379").nominal_rates()) == list(MODALITIES)
