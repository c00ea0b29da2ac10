"""One trial without Ray: reports, checkpoints, resume and its single MLflow run."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from passion_sweep import tracking
from passion_sweep.sweep.data import prepare_sweep_data
from passion_sweep.sweep.run_store import trial_runs
from passion_sweep.sweep.search_space import grid_cells
from passion_sweep.sweep.spec import SPEC_FILE, SweepSpec, parse_spec, save_spec
from passion_sweep.sweep.trial import SweepContext, run_trial
from passion_sweep.tracking import OBJECTIVE

from .conftest import tiny_spec


class FakeSession:
    """A trial session that keeps every reported checkpoint folder."""

    trial_id = "trial1"
    cpus = 1.0
    gpus = 0.0

    def __init__(self, saved: Path, checkpoint: Path | None = None) -> None:
        self.saved = saved
        self.checkpoint = checkpoint
        self.reports: list[dict[str, float]] = []

    def restore_checkpoint(self, run_dir: Path) -> bool:
        if self.checkpoint is None:
            return False
        shutil.copytree(self.checkpoint, run_dir, dirs_exist_ok=True)
        return True

    def report(self, metrics: Mapping[str, float], checkpoint_dir: Path) -> None:
        self.reports.append(dict(metrics))
        shutil.copytree(checkpoint_dir, self.saved / f"report{len(self.reports)}")


@pytest.fixture
def context(tmp_path: Path, phantom_cache: Path) -> SweepContext:
    spec: SweepSpec = parse_spec(tiny_spec(tmp_path, cache=phantom_cache, grid={"method": ["passion"]}))
    directory = spec.sweep_dir
    directory.mkdir(parents=True)
    save_spec(spec, directory / SPEC_FILE)
    identity = tracking.SweepIdentity.new(spec.name, spec.digest())
    sweep_tracking = tracking.start_sweep_tracking(
        str(spec.tracking.uri), str(spec.tracking.experiment), identity, spec_file=directory / SPEC_FILE
    )
    return SweepContext(spec, directory, tuple(grid_cells(spec)), prepare_sweep_data(spec, directory), sweep_tracking)


def test_trial_reports_each_epoch_and_resumes_into_the_same_run(context: SweepContext, tmp_path: Path) -> None:
    first = FakeSession(tmp_path / "first")
    run_trial(context, 0, {"passion.temperature": 2.0}, first)

    assert len(first.reports) == 2, "one report per epoch"
    assert "test/dice/mean/WT" not in first.reports[0]
    assert {"loss", "val/dice/WT", OBJECTIVE, "test/dice/mean/WT"} <= set(first.reports[1])
    assert first.reports[1][OBJECTIVE] == first.reports[1]["val/dice/WT"]
    assert (context.directory / "evaluation" / "trial1" / "per_case.csv").is_file()

    again = FakeSession(tmp_path / "again", checkpoint=tmp_path / "first" / "report1")
    run_trial(context, 0, {"passion.temperature": 2.0}, again)

    assert [report.keys() >= {"loss", "test/dice/mean/WT"} for report in again.reports] == [True]
    [run] = trial_runs(context.tracking.uri, str(context.spec.tracking.experiment), context.tracking.identity.sweep_id)
    assert run.status == "FINISHED" and run.trial_id == "trial1"
    assert run.params["passion.temperature"] == "2.0" and run.params["passion.enabled"] == "True"
    grid = {"backbone": "rfnet", "split": "mr2468", "method": "passion", "seed": "1037"}
    assert grid.items() <= run.params.items(), "grid values are params, for MLflow's compare view"
    tags = MlflowClient(context.tracking.uri).get_run(run.run_id).data.tags
    assert (tags["eval.hd95_percentile"], tags["eval.hd95_convention"]) == ("pooled", "reference"), "spec defaults"
    history = MlflowClient(context.tracking.uri).get_metric_history(run.run_id, "loss")
    assert [point.step for point in history] == [1, 2], "each epoch logged once, epoch 2 trained twice"
