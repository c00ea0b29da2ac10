"""A trial restarted from a checkpoint older than its last logged epoch, or from scratch,
logs each epoch once (training is faked: what matters is what reaches MLflow)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from passion_sweep import tracking
from passion_sweep.sweep import trial
from passion_sweep.sweep.search_space import grid_cells
from passion_sweep.sweep.spec import SPEC_FILE, parse_spec, save_spec
from passion_sweep.sweep.trial import SweepContext
from tests.sweep.conftest import tiny_spec
from trainables.config import RunConfig
from trainables.training.loop import EpochReport

EPOCHS = 4


class Session:
    """A trial session that restores a checkpoint or not."""

    trial_id = "trial1"
    cpus, gpus = 1.0, 0.0

    def __init__(self, restores: bool) -> None:
        self.restores = restores

    def restore_checkpoint(self, run_dir: Path) -> bool:
        return self.restores

    def report(self, metrics: Mapping[str, float], checkpoint_dir: Path) -> None:
        pass


def fake_fit(first: int, last: int) -> Callable[..., None]:
    """``fit`` that trains epochs ``first``..``last`` (loss = epoch), then is killed unless done."""

    def fit(config: RunConfig, run_dir: Path, *, resume: bool, report: Callable[[EpochReport], None]) -> None:
        for epoch in range(first, last + 1):
            report(EpochReport(epoch, EPOCHS, {"loss": float(epoch), "lr": 0.1}, run_dir / "checkpoint.pt"))
        if last < EPOCHS:
            raise KeyboardInterrupt("killed")

    return fit


@pytest.mark.parametrize(
    ("killed_after", "checkpoint"),
    [(3, 2), (1, 0)],
    ids=["resumed from the checkpoint before the last logged epoch", "restarted before its first checkpoint"],
)
def test_a_restarted_trial_logs_each_epoch_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, killed_after: int, checkpoint: int
) -> None:
    spec = parse_spec(tiny_spec(tmp_path / "sweeps"))
    spec.sweep_dir.mkdir(parents=True)
    save_spec(spec, spec.sweep_dir / SPEC_FILE)
    identity = tracking.SweepIdentity.new(spec.name, spec.digest())
    sweep = tracking.start_sweep_tracking(
        str(spec.tracking.uri), str(spec.tracking.experiment), identity, spec_file=spec.sweep_dir / SPEC_FILE
    )
    context = SweepContext(spec, spec.sweep_dir, tuple(grid_cells(spec)), None, sweep)  # type: ignore[arg-type]
    run_id = tracking.open_trial_run(sweep, "trial1", run_name="trial1", tags={}, params={})

    # Killed after logging epoch `killed_after`, whose checkpoint the scheduler never saved.
    monkeypatch.setattr(trial, "fit", fake_fit(1, killed_after))
    with pytest.raises(KeyboardInterrupt):
        trial._train(context, RunConfig(), run_id, Session(restores=False), tmp_path / "run")
    monkeypatch.setattr(trial, "fit", fake_fit(checkpoint + 1, EPOCHS))
    trial._train(context, RunConfig(), run_id, Session(restores=checkpoint > 0), tmp_path / "run")

    history = MlflowClient(sweep.uri).get_metric_history(run_id, "loss")
    assert [(point.step, point.value) for point in history] == [(1, 1.0), (2, 2.0), (3, 3.0), (4, 4.0)]
