"""Real sweeps on a local Ray with a sqlite MLflow store: tracking, a worker crash, a
killed driver and ``resume``, and ``status``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from passion_sweep.cli import main
from passion_sweep.sweep.launcher import SweepOutcome, resume_sweep, run_sweep
from passion_sweep.sweep.spec import SweepSpec, parse_spec
from passion_sweep.sweep.status import sweep_status
from trainables.modalities import REGIONS, SUBSET_MASKS, subset_name

from .conftest import tiny_spec

pytestmark = pytest.mark.slow

T = TypeVar("T")
Crashed = tuple[SweepSpec, SweepOutcome, dict[str, Any]]
TRIAL_TAGS = ("sweep.id", "spec.hash", "grid.cell", "backbone", "split", "method", "seed", "ray.trial_id")


def wait_for(probe: Callable[[], T | None], *, timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value is not None:
            return value
        time.sleep(0.1)
    raise TimeoutError(f"no {what} after {timeout} s")


def first_result(sweep_dir: Path) -> dict[str, Any] | None:
    """The first result any trial reported (Tune's ``result.json`` line), if any yet."""
    for path in sorted(sweep_dir.glob("trial_*/result.json")):
        lines = path.read_text().splitlines()
        try:
            return json.loads(lines[0])
        except (IndexError, json.JSONDecodeError):  # not written yet, or half
            continue
    return None


def runs_of(spec: SweepSpec) -> tuple[Any, list[Any]]:
    """The parent run and the child runs of the sweep's experiment."""
    client = MlflowClient(str(spec.tracking.uri))
    experiment = client.get_experiment_by_name(str(spec.tracking.experiment))
    runs = client.search_runs([experiment.experiment_id])
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    assert len(parents) == 1
    children = [run for run in runs if run.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(children) == len(runs) - 1
    return parents[0], children


@pytest.fixture(scope="module")
def crashed_sweep(ray_cluster: str, phantom_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Crashed:
    """The tiny sweep (3 trials of 2 epochs), whose first trial's worker is killed
    right after it reported its first epoch. Returns the spec, the outcome and the
    result that trial had reported."""
    spec = parse_spec(tiny_spec(tmp_path_factory.mktemp("sweeps"), cache=phantom_cache))
    killed: dict[str, Any] = {}

    def kill_first_worker() -> None:
        result = wait_for(lambda: first_result(spec.sweep_dir), timeout=180, what="trial result")
        os.kill(result["pid"], signal.SIGKILL)  # the trial's Ray worker, started by this session's Ray
        killed.update(result)

    killer = threading.Thread(target=kill_first_worker, daemon=True)
    killer.start()
    outcome = run_sweep(spec)
    killer.join(timeout=5)
    assert killed, "the worker was killed"
    return spec, outcome, killed


def test_sweep_ends_with_every_trial_done(crashed_sweep: Crashed) -> None:
    spec, outcome, _ = crashed_sweep
    assert (outcome.directory, outcome.total, outcome.ended, outcome.failed) == (spec.sweep_dir, 3, 3, 0)
    assert outcome.complete and len(outcome.trial_ids) == 3


def test_mlflow_has_one_parent_and_one_child_per_trial(crashed_sweep: Crashed) -> None:
    spec, outcome, _ = crashed_sweep
    parent, children = runs_of(spec)
    client = MlflowClient(str(spec.tracking.uri))
    assert parent.info.status == "FINISHED"
    assert [item.path for item in client.list_artifacts(parent.info.run_id)] == ["spec.yaml", "tables"]
    report = {Path(item.path).name for item in client.list_artifacts(parent.info.run_id, "tables")}
    assert report == {"dice.md", "dice.csv", "hd95.md", "hd95.csv", "dice.png"}
    table = Path(client.download_artifacts(parent.info.run_id, "tables/dice.md")).read_text()
    assert "| baseline WT |" in table and "| passion WT |" in table, table
    assert "best val/dice/WT (of up to 2)" in table, "the searched cell counts its best trial by validation"
    hd95_table = Path(client.download_artifacts(parent.info.run_id, "tables/hd95.md")).read_text()
    assert "hd95_percentile=pooled, hd95_convention=reference" in hd95_table, "the HD95 definition is named"
    assert sorted(run.data.tags["ray.trial_id"] for run in children) == sorted(outcome.trial_ids)
    assert sorted(run.data.tags["method"] for run in children) == ["baseline", "passion", "passion"]
    subsets = [subset_name(mask) for mask in SUBSET_MASKS]
    for run in children:
        assert run.info.status == "FINISHED"
        assert all(run.data.tags.get(tag) for tag in TRIAL_TAGS), run.data.tags
        assert run.data.tags["sweep.id"] == parent.data.tags["sweep.id"]
        assert run.data.params["train.epochs"] == "2" and run.data.params["model.width"] == "4"
        assert Path(run.data.params["data.split"]).is_absolute()
        metrics = run.data.metrics
        for name in ("loss", "loss/fuse", "beta/flair", "val/dice/WT", "objective", "lr"):
            assert name in metrics, name
        for metric in ("dice", "hd95"):
            for subset in [*subsets, "mean"]:
                for region in REGIONS:
                    assert f"test/{metric}/{subset}/{region}" in metrics
        history = client.get_metric_history(run.info.run_id, "beta/t2")
        assert sorted({point.step for point in history}) == [1, 2]
        artifacts = {item.path for item in client.list_artifacts(run.info.run_id)}
        assert artifacts == {"per_case.csv", "config.json"}
        assert (spec.sweep_dir / "evaluation" / run.data.tags["ray.trial_id"] / "per_case.csv").is_file()
    temperatures = {run.data.params["passion.temperature"] for run in children if run.data.tags["method"] == "passion"}
    assert len(temperatures) == 2, "Optuna sampled the searched cell"


def test_crashed_trial_went_on_from_its_checkpoint(crashed_sweep: Crashed) -> None:
    spec, _, killed = crashed_sweep
    _, children = runs_of(spec)
    client = MlflowClient(str(spec.tracking.uri))
    [run] = [run for run in children if run.data.tags["ray.trial_id"] == killed["trial_id"]]
    steps = [point.step for point in client.get_metric_history(run.info.run_id, "loss")]
    assert steps.count(killed["training_iteration"]) == 1, "the epoch before the crash was not trained again"
    assert sorted(set(steps)) == [1, 2]


def test_status_of_a_finished_sweep(crashed_sweep: Crashed) -> None:
    spec, _, _ = crashed_sweep
    status = sweep_status(spec.sweep_dir)
    assert status.counts == {"pending": 0, "running": 0, "done": 3, "stopped": 0, "failed": 0}
    assert status.remaining is not None and status.remaining.total_seconds() == 0
    assert [(dict(cell.values), cell.ended, cell.trials) for cell in status.cells] == [
        ({"method": "baseline", "split": "mr2468"}, 1, 1),
        ({"method": "passion", "split": "mr2468"}, 2, 2),
    ]
    assert all(cell.objective is not None and cell.test_dice is not None for cell in status.cells)
    assert status.cells[1].params[0][0] == "passion.temperature"
    result = CliRunner().invoke(main, ["status", str(spec.sweep_dir)])
    assert result.exit_code == 0, result.output
    assert "trials: 0 pending, 0 running, 3 done, 0 stopped, 0 failed of 3" in result.output
    assert f"mlflow ui --backend-store-uri {spec.tracking.uri}" in result.output


def test_resume_after_the_driver_was_killed(ray_cluster: str, phantom_cache: Path, tmp_path: Path) -> None:
    values = tiny_spec(tmp_path / "sweeps", cache=phantom_cache, name="killed")
    spec_file = tmp_path / "killed.yaml"
    spec_file.write_text(yaml.safe_dump(values))
    spec = parse_spec(values)
    command = [str(Path(sys.executable).parent / "passion-sweep"), "run", str(spec_file), "--address", ray_cluster]
    with (tmp_path / "driver.log").open("w") as log:
        driver = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_for(lambda: first_result(spec.sweep_dir), timeout=180, what="trial result")
        finally:
            os.killpg(driver.pid, signal.SIGKILL)  # the driver's own process group
            driver.wait()

    outcome = resume_sweep(spec.sweep_dir)

    assert outcome.complete and outcome.failed == 0 and outcome.total == 3
    parent, children = runs_of(spec)
    assert parent.info.status == "FINISHED"
    trial_ids = sorted(run.data.tags["ray.trial_id"] for run in children)
    assert len(trial_ids) == 3 and trial_ids == sorted(outcome.trial_ids), "one run per trial: none lost or doubled"
    assert all(run.info.status == "FINISHED" for run in children)


def test_a_trial_that_fails_for_good_is_marked_failed(ray_cluster: str, phantom_cache: Path, tmp_path: Path) -> None:
    values = tiny_spec(
        tmp_path,
        cache=phantom_cache,
        name="failing",
        grid={"method": ["baseline"]},
        train={"epochs": 2, "num_workers": 0, "device": "cuda:99"},  # fails in every attempt, GPU or not
        ray={"storage_path": str(tmp_path), "max_failures": 0},
    )
    del values["search"]
    spec_file = tmp_path / "failing.yaml"
    spec_file.write_text(yaml.safe_dump(values))

    result = CliRunner().invoke(main, ["run", str(spec_file)])

    assert result.exit_code == 1
    assert "error: 1 of 1 trials failed for good" in result.output
    _, [run] = runs_of(parse_spec(values))
    assert run.info.status == "FAILED"
    assert "cuda:99" in run.data.tags["failure.reason"]
    parent, _ = runs_of(parse_spec(values))
    table = Path(
        MlflowClient(str(parse_spec(values).tracking.uri)).download_artifacts(parent.info.run_id, "tables/dice.md")
    )
    assert "1 failed of 1 trials" in table.read_text(), "a failed trial is counted, not dropped"
