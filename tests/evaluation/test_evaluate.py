"""Evaluation over whole volumes: per-case table, summary, files and the ``evaluate`` command."""

from __future__ import annotations

import json
from pathlib import Path

import click
import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner, Result

from passion_sweep.cli.errors import ReportingGroup
from passion_sweep.cli.evaluate import evaluate
from trainables.errors import ConfigError, DataError
from trainables.evaluation.evaluate import (
    PER_CASE_COLUMNS,
    EvaluationResult,
    evaluate_model,
    summarize,
    write_evaluation,
)
from trainables.modalities import REGIONS, SUBSET_MASKS, subset_name
from trainables.training.checkpoint import save_checkpoint

from .toy_backbone import ToyBackbone

PATCH = 16
CASES = ("case_a", "case_b")
SUBSET_NAMES = [subset_name(mask) for mask in SUBSET_MASKS]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A prepared data set of two 20 x 18 x 16 cases, with test.txt listing both."""
    root = tmp_path_factory.mktemp("data")
    (root / "vol").mkdir()
    (root / "seg").mkdir()
    rng = np.random.default_rng(0)
    for name in CASES:
        np.save(root / "vol" / f"{name}_vol.npy", rng.standard_normal((20, 18, 16, 4)).astype(np.float32))
        label = np.zeros((20, 18, 16), dtype=np.uint8)
        label[4:16, 4:14, 4:12] = 2
        label[6:12, 6:10, 6:10] = 1
        label[8:10, 7:9, 7:9] = 3
        np.save(root / "seg" / f"{name}_seg.npy", label)
    (root / "test.txt").write_text("".join(f"{name}\n" for name in CASES))
    return root


@pytest.fixture(scope="module")
def result(data_dir: Path) -> EvaluationResult:
    torch.manual_seed(0)
    model = ToyBackbone(width=4, patch_size=PATCH).eval()
    return evaluate_model(model, data_dir, CASES, patch_size=PATCH, progress=False)


def test_per_case_table_has_a_row_per_case_and_subset(result: EvaluationResult) -> None:
    table = result.per_case
    assert tuple(table.columns) == PER_CASE_COLUMNS
    assert len(table) == len(CASES) * len(SUBSET_MASKS)
    assert table["subset"].tolist() == SUBSET_NAMES * len(CASES)
    assert table["case"].tolist() == [name for name in CASES for _ in SUBSET_MASKS]
    dice = table[[f"dice_{region}" for region in REGIONS]]
    assert ((dice >= 0) & (dice <= 1)).all().all()
    assert (table[[f"hd95_{region}" for region in REGIONS]] >= 0).all().all()


def test_summary_has_every_subset_and_region(result: EvaluationResult) -> None:
    summary = result.summary
    assert list(summary) == ["dice", "hd95", "mean", "eval"]
    assert summary["eval"] == {"hd95_percentile": "pooled", "hd95_convention": "reference"}, "the defaults"
    for metric in ("dice", "hd95"):
        assert list(summary[metric]) == SUBSET_NAMES
        assert "flair-t1ce" in summary[metric] and "flair-t1ce-t1-t2" in summary[metric]
        for values in summary[metric].values():
            assert list(values) == list(REGIONS)
        assert list(summary["mean"][metric]) == list(REGIONS)


def test_summarize_averages_cases_then_subsets() -> None:
    rows = [
        {"case": case, "subset": name, **dict.fromkeys(PER_CASE_COLUMNS[2:], index + offset)}
        for offset, case in enumerate(("x", "y"))
        for index, name in enumerate(SUBSET_NAMES)
    ]
    summary = summarize(pd.DataFrame(rows, columns=list(PER_CASE_COLUMNS)))
    assert summary["dice"]["t2"]["WT"] == 0.5  # subset 0: cases 0 and 1
    assert summary["hd95"]["flair-t1ce-t1-t2"]["ETpp"] == 14.5
    assert summary["mean"]["dice"]["TC"] == pytest.approx(7.5)  # mean of 0.5 .. 14.5


def test_write_evaluation_writes_csv_and_json(result: EvaluationResult, tmp_path: Path) -> None:
    csv_path, json_path = write_evaluation(result, tmp_path / "eval")
    assert json.loads(json_path.read_text()) == result.summary
    pd.testing.assert_frame_equal(pd.read_csv(csv_path), result.per_case)
    assert sorted(path.name for path in (tmp_path / "eval").iterdir()) == ["per_case.csv", "summary.json"]


def test_the_hd95_options_reach_every_value(data_dir: Path, toy_model: ToyBackbone, result: EvaluationResult) -> None:
    directed = evaluate_model(
        toy_model, data_dir, CASES, patch_size=PATCH, hd95_percentile="max_directed", progress=False
    )
    hd95_columns = [f"hd95_{region}" for region in REGIONS]
    assert directed.summary["eval"]["hd95_percentile"] == "max_directed"
    assert (directed.per_case[hd95_columns] >= result.per_case[hd95_columns] - 1e-9).all().all()
    pd.testing.assert_frame_equal(
        directed.per_case.drop(columns=hd95_columns), result.per_case.drop(columns=hd95_columns)
    )


def test_hd95_in_worker_processes_gives_the_same_numbers(data_dir: Path, result: EvaluationResult) -> None:
    torch.manual_seed(0)
    model = ToyBackbone(width=4, patch_size=PATCH).eval()
    beside = evaluate_model(model, data_dir, CASES, patch_size=PATCH, progress=False, hd95_workers=2)

    pd.testing.assert_frame_equal(beside.per_case, result.per_case, check_exact=True)
    assert beside.summary == result.summary
    distances = result.per_case.filter(like="hd95_").to_numpy()
    assert len(np.unique(distances)) > 3, "real distances, not only the empty-mask conventions"


def test_a_negative_worker_count_is_a_config_error(data_dir: Path, toy_model: ToyBackbone) -> None:
    with pytest.raises(ConfigError, match=r"hd95_workers must be >= 0 \(0 computes HD95 in this process\), got -1"):
        evaluate_model(toy_model, data_dir, CASES, patch_size=PATCH, progress=False, hd95_workers=-1)


def test_a_missing_case_is_a_data_error_naming_case_and_folder(data_dir: Path, toy_model: ToyBackbone) -> None:
    with pytest.raises(DataError, match="case_z") as error:
        evaluate_model(toy_model, data_dir, ["case_a", "case_z"], patch_size=PATCH, progress=False)
    assert str(data_dir) in str(error.value)


@pytest.fixture
def cli(toy_backbone_name: str) -> click.Group:
    """A root group with only the ``evaluate`` command, reporting errors as the real one does."""
    group = ReportingGroup("passion-sweep")
    group.add_command(evaluate)
    return group


def _save_toy_checkpoint(path: Path, *, config_width: int, weights_width: int, backbone: str = "toy") -> Path:
    torch.manual_seed(0)
    model = ToyBackbone(width=weights_width, patch_size=PATCH)
    config = {"model": {"backbone": backbone, "width": config_width, "patch_size": PATCH}}
    save_checkpoint(path, {"config": config, "epoch": 1, "model": model.state_dict()})
    return path


def _invoke(
    cli: click.Group, checkpoint: Path, data_dir: Path, out: Path, *extra: str, cases: Path | None = None
) -> Result:
    cases = cases or data_dir / "test.txt"
    arguments = ["evaluate", str(checkpoint), "--data", str(data_dir), "--cases", str(cases), "--out", str(out)]
    return CliRunner().invoke(cli, [*arguments, "--device", "cpu", *extra])


def test_evaluate_command_writes_results_and_prints_means(cli: click.Group, data_dir: Path, tmp_path: Path) -> None:
    checkpoint = _save_toy_checkpoint(tmp_path / "checkpoint.pt", config_width=4, weights_width=4)
    outcome = _invoke(
        cli, checkpoint, data_dir, tmp_path / "eval", "--hd95-convention", "max", "--hd95-percentile", "max_directed"
    )
    assert outcome.exit_code == 0, outcome.output
    assert "mean over the 15 subsets, 2 cases" in outcome.stdout
    assert all(region in outcome.stdout for region in REGIONS)
    assert "hd95_percentile=max_directed, hd95_convention=max" in outcome.stdout
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert set(summary["mean"]) == {"dice", "hd95"}
    assert summary["eval"] == {"hd95_percentile": "max_directed", "hd95_convention": "max"}
    assert len(pd.read_csv(tmp_path / "eval" / "per_case.csv")) == len(CASES) * len(SUBSET_MASKS)


def test_evaluate_command_with_hd95_workers_writes_the_same_numbers(
    cli: click.Group, data_dir: Path, tmp_path: Path
) -> None:
    checkpoint = _save_toy_checkpoint(tmp_path / "checkpoint.pt", config_width=4, weights_width=4)
    serial = _invoke(cli, checkpoint, data_dir, tmp_path / "serial")
    beside = _invoke(cli, checkpoint, data_dir, tmp_path / "beside", "--hd95-workers", "1")
    assert serial.exit_code == 0 and beside.exit_code == 0, (serial.output, beside.output)
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "serial" / "per_case.csv"), pd.read_csv(tmp_path / "beside" / "per_case.csv")
    )


def test_evaluate_command_reports_a_missing_case_in_one_line(cli: click.Group, data_dir: Path, tmp_path: Path) -> None:
    checkpoint = _save_toy_checkpoint(tmp_path / "checkpoint.pt", config_width=4, weights_width=4)
    cases = tmp_path / "cases.txt"
    cases.write_text("case_a\ncase_missing\n")
    outcome = _invoke(cli, checkpoint, data_dir, tmp_path / "eval", cases=cases)
    assert outcome.exit_code == 1
    assert outcome.stderr.count("\n") == 1 and outcome.stderr.startswith("error: ")
    assert "case_missing" in outcome.stderr
    assert not (tmp_path / "eval").exists()


@pytest.mark.parametrize(
    ("backbone", "config_width", "message"),
    [("toy", 8, "does not fit backbone 'toy' at width 8"), ("rfnet", 4, "does not fit backbone 'rfnet' at width 4")],
)
def test_evaluate_command_rejects_a_checkpoint_of_another_width_or_backbone(
    cli: click.Group, data_dir: Path, tmp_path: Path, backbone: str, config_width: int, message: str
) -> None:
    checkpoint = _save_toy_checkpoint(
        tmp_path / "checkpoint.pt", config_width=config_width, weights_width=4, backbone=backbone
    )
    outcome = _invoke(cli, checkpoint, data_dir, tmp_path / "eval")
    assert outcome.exit_code == 1
    assert outcome.stderr.count("\n") == 1 and outcome.stderr.startswith("error: ")
    assert message in outcome.stderr
    assert "Traceback" not in outcome.output


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--hd95-convention", "brats", "'brats' is not one of 'reference', 'max'"),
        ("--hd95-percentile", "monai", "'monai' is not one of 'pooled', 'max_directed'"),
    ],
)
def test_evaluate_command_rejects_an_unknown_hd95_option(
    cli: click.Group, data_dir: Path, tmp_path: Path, option: str, value: str, message: str
) -> None:
    checkpoint = _save_toy_checkpoint(tmp_path / "checkpoint.pt", config_width=4, weights_width=4)
    outcome = _invoke(cli, checkpoint, data_dir, tmp_path / "eval", option, value)
    assert outcome.exit_code == 2
    assert message in outcome.stderr
