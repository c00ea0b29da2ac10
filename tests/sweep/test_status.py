"""The time-left estimate and the status text."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from passion_sweep.sweep.run_store import TrialRun
from passion_sweep.sweep.status import CellSummary, SweepStatus, estimate_remaining, format_status

START = datetime(2026, 1, 1, tzinfo=timezone.utc)


def run(status: str, start_minute: int, end_minute: int | None = None) -> TrialRun:
    end = None if end_minute is None else START + timedelta(minutes=end_minute)
    return TrialRun("run", "trial", "cell", status, START + timedelta(minutes=start_minute), end, {}, {})


def test_time_left_spreads_the_work_left_over_the_slots() -> None:
    runs = [run("FINISHED", 0, 10), run("FINISHED", 0, 10), run("RUNNING", 10), run("RUNNING", 12)]
    now = START + timedelta(minutes=14)
    # Mean 10 min per trial: the running ones need 6 and 8 more, the 2 pending 20: 34 min over 2 slots.
    assert estimate_remaining(runs, pending=2, slots=2, now=now) == timedelta(minutes=17)
    assert estimate_remaining(runs[2:], pending=2, slots=2, now=now) is None, "no finished trial to learn from"


def test_format_status() -> None:
    status = SweepStatus(
        name="demo",
        directory=Path("/sweeps/demo"),
        sweep_id="demo-1",
        tracking_uri="sqlite:////sweeps/mlflow.db",
        experiment_id="3",
        metric="val/dice/WT",
        mode="max",
        counts={"pending": 1, "running": 1, "done": 1, "stopped": 0, "failed": 0},
        total=3,
        elapsed=timedelta(minutes=3, seconds=5),
        remaining=None,
        cells=(
            CellSummary({"method": "baseline"}, 1, 1, "t1", 0.51234, 0.6),
            CellSummary({"method": "passion"}, 2, 0, params=(("passion.temperature", "2.5"),)),
        ),
    )
    assert format_status(status).splitlines() == [
        "sweep demo (demo-1) in /sweeps/demo",
        "trials: 1 pending, 1 running, 1 done, 0 stopped, 0 failed of 3",
        "elapsed 0:03:05, left unknown (no trial finished yet)",
        "method    trials  best val/dice/WT (max)  test Dice WT, mean of subsets  trial  params",
        "baseline  1/1     0.5123                  0.6000                         t1",
        "passion   0/2     -                       -                              -      passion.temperature=2.5",
        "MLflow: mlflow ui --backend-store-uri sqlite:////sweeps/mlflow.db",
        "runs view: http://127.0.0.1:5000/#/experiments/3/runs",
    ]
