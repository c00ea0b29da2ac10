"""The sweep console: when it prints, what a running trial's line says, the time left."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import pytest

from passion_sweep import tracking
from passion_sweep.sweep.console import SweepConsole, TrialProgress, format_duration
from passion_sweep.sweep.data import SweepData
from passion_sweep.sweep.launcher import _ProgressCallback
from passion_sweep.sweep.search_space import grid_cells
from passion_sweep.sweep.spec import parse_spec
from passion_sweep.sweep.trial import SweepContext

from .conftest import tiny_spec


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def console(clock: Clock) -> SweepConsole:
    # Four trials of 10 epochs each; the search watches val/dice/WT (max).
    return SweepConsole(total_trials=4, planned_epochs=40, metric="val/dice/WT", mode="max", clock=clock)


def trial(name: str, state: str, epoch: int, metric: float | None = None, objective: float | None = None):
    return TrialProgress(name, state, epoch, 10, metric, objective)


def test_counts_when_they_change_and_running_trials_every_30_s() -> None:
    clock = Clock()
    sweep = console(clock)
    first = [trial("a", "RUNNING", 0), trial("b", "RUNNING", 0)]
    assert sweep.lines(first) == ["[0:00:00] trials: 2 pending, 2 running, 0 done, 0 failed of 4 | best val/dice/WT -"]
    clock.now = 29
    assert sweep.lines(first) == [], "nothing changed, no listing due yet"

    clock.now = 30
    progressed = [trial("a", "RUNNING", 3, metric=0.61, objective=0.64), trial("b", "RUNNING", 2)]
    assert sweep.lines(progressed) == [
        # 5 epochs in 30 s: the 35 left take 210 s.
        "[0:00:30] trials: 2 pending, 2 running, 0 done, 0 failed of 4 | best val/dice/WT 0.6400 | about 0:03:30 left",
        "  a  epoch 3/10  val/dice/WT 0.6100",
        "  b  epoch 2/10  val/dice/WT -",
    ]
    clock.now = 45
    ended = [trial("a", "TERMINATED", 10, objective=0.7), trial("b", "RUNNING", 5), trial("c", "PENDING", 0)]
    # A trial ended: one line. An ended trial counts all its epochs: 15 in 45 s, 25 left.
    assert sweep.lines(ended) == [
        "[0:00:45] trials: 2 pending, 1 running, 1 done, 0 failed of 4 | best val/dice/WT 0.7000 | about 0:01:15 left"
    ]


def test_a_resumed_sweep_counts_only_what_it_trains_itself() -> None:
    clock = Clock()
    sweep = console(clock)
    sweep.lines([trial("a", "TERMINATED", 10), trial("b", "RUNNING", 4)])  # trained before the resume
    clock.now = 60
    [header, _] = sweep.lines([trial("a", "TERMINATED", 10), trial("b", "RUNNING", 6)])
    # 2 epochs a minute: the 24 left take 12 minutes (not 24 * 60 / 16 s).
    assert header.endswith("| about 0:12:00 left")


def test_durations() -> None:
    assert format_duration(59.9) == "0:00:59"
    assert format_duration(3 * 3600 + 62) == "3:01:02"


def test_the_tune_callback_describes_its_trials(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spec = parse_spec(tiny_spec(tmp_path))  # a baseline cell, and a PASSION cell searched with 2 trials
    identity = tracking.SweepIdentity.new(spec.name, spec.digest())
    context = SweepContext(
        spec,
        spec.sweep_dir,
        tuple(grid_cells(spec)),
        SweepData(tmp_path, {}),
        tracking.SweepTracking("sqlite:///unused.db", "0", "parent", identity),
    )
    callback = _ProgressCallback(context, interval=0)  # lists the running trials at every step
    running = SimpleNamespace(
        trial_id="t1",
        status="RUNNING",
        config={"cell": 1, "params": {"passion.temperature": 2.0, "train.epochs": 5}},
        last_result={},
    )
    pending = SimpleNamespace(trial_id="t2", status="PENDING", config={"cell": 0, "params": {}}, last_result={})
    result = {"training_iteration": 2, "val/dice/WT": 0.55, "objective": 0.6}
    callback.on_trial_result(2, [running, pending], running, result)
    running.last_result = result
    with caplog.at_level(logging.INFO, logger="passion_sweep.sweep.launcher"):
        callback.on_step_end(3, [running, pending])
    header, line = caplog.messages
    assert "2 pending, 1 running, 0 done, 0 failed of 3 | best val/dice/WT 0.6000" in header
    name = f"{context.cells[1].name}-t1"
    assert line == f"  {name}  epoch 2/5  val/dice/WT 0.5500", "epochs as searched"
