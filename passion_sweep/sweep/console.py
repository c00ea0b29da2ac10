"""What a running sweep prints: trial counts when they change and, at least every 30 s
while trials run, one line per running trial (epoch, last validation value) and the
sweep's estimated time left.

Nothing here knows Ray: the launcher's Tune callback describes its trials as
:class:`TrialProgress` and logs the lines :class:`SweepConsole` returns.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["TrialProgress", "SweepConsole", "format_duration"]

# Tune's trial states, as the console counts them.
_RUNNING, _ENDED, _FAILED = "RUNNING", "TERMINATED", "ERROR"


@dataclass(frozen=True)
class TrialProgress:
    """One trial as the console sees it.

    Attributes:
        name: the trial's name (its cell and Ray trial id, as its MLflow run).
        state: Tune's state: ``PENDING``, ``RUNNING``, ``PAUSED``, ``TERMINATED`` or ``ERROR``.
        epoch: epochs reported so far.
        epochs: epochs the trial trains.
        metric: latest value of the validation metric the search watches, if any yet.
        objective: best value of that metric so far, if any yet.
    """

    name: str
    state: str
    epoch: int
    epochs: int
    metric: float | None = None
    objective: float | None = None


def format_duration(seconds: float) -> str:
    """``h:mm:ss`` (whole seconds)."""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def _value(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


class SweepConsole:
    """Decides when to print and what: see the module docstring.

    The time left is the epochs still to train over the epochs trained per second since
    the console started (all trials together), so it accounts for concurrency; trials
    stopped early by a scheduler make it pessimistic until they are stopped.

    Args:
        total_trials: trials the sweep runs.
        planned_epochs: epochs of all its trials together.
        metric: the validation metric the search watches (``val/dice/WT``).
        mode: ``max`` or ``min``: which value of it is best.
        interval: seconds between two listings of the running trials.
        clock: monotonic seconds (a test's clock).
    """

    def __init__(
        self,
        *,
        total_trials: int,
        planned_epochs: int,
        metric: str,
        mode: str,
        interval: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._total = total_trials
        self._planned = planned_epochs
        self._metric = metric
        self._better = max if mode == "max" else min
        self._interval = interval
        self._clock = clock
        self._started = clock()
        self._listed = self._started
        self._counts: tuple[int, ...] = ()
        self._trained_at_start: int | None = None

    def lines(self, trials: Sequence[TrialProgress]) -> list[str]:
        """The lines to print now (none if nothing changed and no listing is due)."""
        now = self._clock()
        states = Counter(trial.state for trial in trials)
        running, ended, failed = states[_RUNNING], states[_ENDED], states[_FAILED]
        trained = sum(trial.epochs if trial.state in (_ENDED, _FAILED) else trial.epoch for trial in trials)
        if self._trained_at_start is None:
            self._trained_at_start = trained  # a resumed sweep: what was trained before does not count
        changed = (running, ended, failed) != self._counts
        due = running > 0 and now - self._listed >= self._interval
        if not (changed or due):
            return []
        self._counts = (running, ended, failed)
        pending = self._total - running - ended - failed
        objectives = [trial.objective for trial in trials if trial.objective is not None]
        best = _value(self._better(objectives) if objectives else None)
        header = (
            f"[{format_duration(now - self._started)}] trials: {pending} pending, {running} running, "
            f"{ended} done, {failed} failed of {self._total} | best {self._metric} {best}"
        )
        left = self._time_left(trained, now)
        lines = [header + (f" | about {format_duration(left)} left" if left is not None else "")]
        if due:
            self._listed = now
            lines += [
                f"  {trial.name}  epoch {trial.epoch}/{trial.epochs}  {self._metric} {_value(trial.metric)}"
                for trial in trials
                if trial.state == _RUNNING
            ]
        return lines

    def _time_left(self, trained: int, now: float) -> float | None:
        done_here = trained - (self._trained_at_start or 0)
        if done_here <= 0 or now <= self._started:
            return None
        return max(self._planned - trained, 0) * (now - self._started) / done_here
