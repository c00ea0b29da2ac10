"""MLflow tracking: one run per trial id whatever happens to the trial."""

from __future__ import annotations

from pathlib import Path

import pytest

from passion_sweep import tracking
from passion_sweep.sweep.run_store import trial_runs
from trainables.config import RunConfig


@pytest.fixture
def sweep(tmp_path: Path) -> tracking.SweepTracking:
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text("name: test\n")
    identity = tracking.SweepIdentity.new("test", "abc123")
    return tracking.start_sweep_tracking(f"sqlite:///{tmp_path / 'mlflow.db'}", "test", identity, spec_file=spec_file)


def open_run(sweep: tracking.SweepTracking, trial_id: str) -> str:
    return tracking.open_trial_run(sweep, trial_id, run_name=trial_id, tags={"grid.cell": "a=1"}, params={"p": "1"})


def statuses(sweep: tracking.SweepTracking) -> dict[str, str]:
    return {run.trial_id: run.status for run in trial_runs(sweep.uri, "test", sweep.identity.sweep_id)}


def test_a_trial_reopens_its_run(sweep: tracking.SweepTracking) -> None:
    first = open_run(sweep, "t1")
    tracking.finish_trial_run(sweep, first)
    assert open_run(sweep, "t1") == first
    assert statuses(sweep) == {"t1": "RUNNING"}


def test_failed_stopped_and_unknown_trials(sweep: tracking.SweepTracking) -> None:
    for trial_id in ("t1", "t2", "t3"):
        open_run(sweep, trial_id)
    tracking.finish_trial_run(sweep, open_run(sweep, "t3"))
    tracking.fail_trial_run(sweep, "t1", "ConfigError: no GPU")
    tracking.close_stopped_trial_run(sweep, "t2")
    tracking.close_stopped_trial_run(sweep, "t3")  # finished already: stays FINISHED
    assert statuses(sweep) == {"t1": "FAILED", "t2": "KILLED", "t3": "FINISHED"}
    assert tracking.delete_runs_except(sweep, ["t1", "t3"]) == 1
    assert sorted(statuses(sweep)) == ["t1", "t3"]


def test_identity_and_parent_survive_a_restart(sweep: tracking.SweepTracking, tmp_path: Path) -> None:
    sweep.identity.save(tmp_path)
    identity = tracking.SweepIdentity.load(tmp_path)
    tracking.finish_sweep_tracking(sweep, status="KILLED")
    again = tracking.start_sweep_tracking(sweep.uri, "test", identity, spec_file=tmp_path / "spec.yaml")
    assert again == sweep


def test_names_and_params() -> None:
    assert tracking.metric_name("dice/flair+t1ce (WT): x.y-z") == "dice/flair_t1ce _WT_: x.y-z"
    params = tracking.flatten_config(RunConfig())
    assert params["train.lr"] == "0.0002" and params["model.backbone"] == "rfnet"
    assert params["train.augment"] == "True" and params["train.rotation_fill"] == "reference", "recorded per run"
    assert params["train.precision"] == "fp32" and params["train.cudnn_benchmark"] == "False", "recorded per run"
    assert tracking.mlflow_hint("sqlite:////x/mlflow.db") == "mlflow ui --backend-store-uri sqlite:////x/mlflow.db"
    assert tracking.mlflow_hint("http://host:5000") == "http://host:5000"
    assert tracking.runs_view("sqlite:////x/mlflow.db", "3") == "http://127.0.0.1:5000/#/experiments/3/runs"
    assert tracking.runs_view("http://host:5000/", "3") == "http://host:5000/#/experiments/3/runs"
