"""experiments/table1.yaml runs the paper's exact splits on a folder in the reference layout:
it validates against one, ``--dry-run`` says which cases and availability each split has,
and the sweep's split files are the reference's CSVs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from passion_sweep.cli import main
from passion_sweep.sweep.data import prepare_sweep_data
from passion_sweep.sweep.spec import describe_splits, load_spec, parse_spec, readiness_problems
from tests.data.reference_layout import write_reference_layout
from trainables.data import reference_case_lists, reference_split

TABLE1 = Path(__file__).parents[2] / "experiments" / "table1.yaml"


@pytest.fixture(scope="module")
def download(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """RFNet's download in miniature: the 369 BraTS2020 cases as 2^3 arrays, with the reference lists."""
    lists = reference_case_lists("brats2020")
    folder = tmp_path_factory.mktemp("brats") / "BRATS2020_Training_none_npy"
    return write_reference_layout(
        folder, sorted(case for cases in lists.values() for case in cases), shape=(2, 2, 2), lists=lists
    )


def test_table1_uses_the_built_in_splits() -> None:
    splits = yaml.safe_load(TABLE1.read_text())["splits"]
    assert splits == {name: {"reference": f"brats2020-{name}"} for name in splits} and len(splits) == 8


def test_table1_validates_against_a_reference_layout_folder(download: Path, tmp_path: Path) -> None:
    spec = load_spec(TABLE1, [f"data.path={download}", f"ray.storage_path={tmp_path / 'sweeps'}"])
    assert readiness_problems(spec) == []
    data = prepare_sweep_data(spec, tmp_path / "sweep")
    for name, path in data.splits.items():
        assert path.read_bytes() == reference_split(f"brats2020-{name}").path.read_bytes()


def test_dry_run_says_cases_and_availability_per_split(download: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["run", str(TABLE1), "--dry-run", "--set", f"data.path={download}", "--set", f"ray.storage_path={tmp_path}"],
    )
    assert result.exit_code == 0, result.output
    assert "not ready" not in result.output
    assert (
        "split mr2468: reference brats2020-mr2468 over the reference's train.txt, 219 cases; "
        "available flair 90, t1ce 135, t1 184, t2 43" in result.output
    )
    assert len(re.findall(r"^split mr\d{4}: reference brats2020-mr\d{4} ", result.output, re.M)) == 8


def test_drawn_split_is_recognised_as_the_reference_one(download: Path, tmp_path: Path) -> None:
    values = yaml.safe_load(TABLE1.read_text())
    values["data"]["path"] = str(download)
    values["splits"] = {"mine": {"missing_rates": "mr5582", "seed": 1037}}
    values["grid"]["split"] = ["mine"]
    values["ray"]["storage_path"] = str(tmp_path)
    (line,) = describe_splits(parse_spec(values))
    assert line == (
        f"split mine: rates mr5582, seed 1037 over {download / 'train.txt'}, 219 cases; "
        "available flair 42, t1ce 111, t1 113, t2 186 (= reference brats2020-mr5582)"
    )


def test_reference_split_over_other_training_cases_is_not_ready(download: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    names = reference_case_lists("brats2020")["train"][:10]
    write_reference_layout(other, names, shape=(2, 2, 2), lists={"train": names, "val": names, "test": names})
    spec = load_spec(TABLE1, [f"data.path={other}", f"ray.storage_path={tmp_path / 'sweeps'}"])
    problems = readiness_problems(spec)
    assert len(problems) == 8 and problems[0].startswith(
        "splits.mr2468.reference: brats2020-mr2468 covers other cases than"
    )
    assert "passion-sweep data split" in problems[0] and "--reference brats2020" in problems[0]


def test_check_names_a_reference_split_and_its_nominal_rates(download: Path) -> None:
    result = CliRunner().invoke(main, ["data", "check", str(download), "--split", "brats2020-mr2468"])
    assert result.exit_code == 0, result.output
    assert re.search(r"split\s+219 cases, the reference split brats2020-mr2468\n", result.output)
    assert re.search(
        r"available\s+flair 90 \(41.1%; nominal 40%\), t1ce 135 \(61.6%; nominal 60%\), "
        r"t1 184 \(84.0%; nominal 80%\), t2 43 \(19.6%; nominal 20%\)",
        result.output,
    )


def test_check_says_when_a_split_is_not_the_reference_one(download: Path, tmp_path: Path) -> None:
    split = tmp_path / "mr2468.csv"
    assert (
        CliRunner()
        .invoke(main, ["data", "split", str(download), "--missing-rates", "mr2468", "--seed", "7", "--out", str(split)])
        .exit_code
        == 0
    )
    result = CliRunner().invoke(main, ["data", "check", str(download), "--split", str(split)])
    assert result.exit_code == 0, result.output
    assert re.search(r"split\s+219 cases, not one of the reference's splits\n", result.output)
    assert "nominal 40%" in result.output  # the rates of the mr2468 in the file name
