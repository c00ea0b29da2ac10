"""Where a sweep stands: trials by state, the best trial of each grid cell, elapsed time
and an estimate of the time left, read from the sweep folder and its MLflow runs; and
what a spec would run (``--dry-run``).

It works while the sweep runs (from another shell), after it ended, and after its
driver was killed (trials then show as running until ``passion-sweep resume``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from passion_sweep.sweep.console import format_duration
from passion_sweep.sweep.run_store import TrialRun, find_experiment, has_parent_run, trial_runs
from passion_sweep.sweep.search_space import GridCell, cell_space, grid_cells, total_trials
from passion_sweep.sweep.spec import SPEC_FILE, SweepSpec, describe_splits, load_spec, locate_sweep, readiness_problems
from passion_sweep.tracking import OBJECTIVE, SweepIdentity, mlflow_hint, runs_view

__all__ = [
    "STATES",
    "CellSummary",
    "SweepStatus",
    "sweep_status",
    "estimate_remaining",
    "format_status",
    "describe_plan",
]

# MLflow run status to the state shown; trials without a run yet are "pending".
STATES: dict[str, str] = {"RUNNING": "running", "FINISHED": "done", "KILLED": "stopped", "FAILED": "failed"}
_TEST_METRIC = "test/dice/mean/WT"


@dataclass(frozen=True)
class CellSummary:
    """One grid cell: its trials so far and the best of them.

    Attributes:
        values: the cell's grid values.
        trials: trials planned.
        ended: trials done, stopped or failed.
        best_trial: Ray trial id of the best trial so far (``None`` before any objective).
        objective: its objective.
        test_dice: its mean test Dice of WT over the 15 subsets, once evaluated.
        params: its searched values.
    """

    values: Mapping[str, Any]
    trials: int
    ended: int
    best_trial: str | None = None
    objective: float | None = None
    test_dice: float | None = None
    params: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class SweepStatus:
    """A sweep's progress.

    Attributes:
        name: sweep name.
        directory: sweep folder.
        sweep_id: its id (MLflow tag ``sweep.id``).
        tracking_uri: MLflow tracking URI.
        experiment_id: the MLflow experiment's id; ``None`` before the sweep created it.
        metric: the objective's metric and ``mode``.
        mode: ``max`` or ``min``.
        counts: trials per state (``pending``, ``running``, ``done``, ``stopped``, ``failed``).
        total: trials planned.
        elapsed: time since the sweep started (until its last trial ended, once all did).
        remaining: estimate of the time left; ``None`` before any trial finished.
        cells: one summary per grid cell.
        started: whether the sweep's tracking began (a driver stopped before that leaves
            a folder that only ``resume`` starts).
    """

    name: str
    directory: Path
    sweep_id: str
    tracking_uri: str
    experiment_id: str | None
    metric: str
    mode: str
    counts: dict[str, int]
    total: int
    elapsed: timedelta
    remaining: timedelta | None
    cells: tuple[CellSummary, ...]
    started: bool = True


def _summarize_cell(spec: SweepSpec, cell: GridCell, runs: Sequence[TrialRun]) -> CellSummary:
    ended = sum(1 for run in runs if run.status != "RUNNING")
    scored = [run for run in runs if OBJECTIVE in run.metrics]
    if not scored:
        return CellSummary(cell.values, cell.trials, ended)
    sign = 1 if spec.search.mode == "max" else -1
    best = max(scored, key=lambda run: sign * run.metrics[OBJECTIVE])
    params = tuple((key, _short(best.params.get(key, "?"))) for key in cell_space(spec, cell))
    return CellSummary(
        cell.values, cell.trials, ended, best.trial_id, best.metrics[OBJECTIVE], best.metrics.get(_TEST_METRIC), params
    )


def _short(value: str) -> str:
    """A param as text, floats to 4 significant digits."""
    try:
        number = float(value)
    except ValueError:
        return value
    return value if number.is_integer() else f"{number:.4g}"


def estimate_remaining(runs: Sequence[TrialRun], pending: int, slots: int, now: datetime) -> timedelta | None:
    """Mean duration of finished trials times the work left, spread over the trial slots."""
    durations = [(run.end - run.start).total_seconds() for run in runs if run.status == "FINISHED" and run.end]
    if not durations:
        return None
    mean = sum(durations) / len(durations)
    running = [max(mean - (now - run.start).total_seconds(), 0.0) for run in runs if run.status == "RUNNING"]
    return timedelta(seconds=(pending * mean + sum(running)) / max(slots, 1))


def sweep_status(target: str | Path) -> SweepStatus:
    """The status of the sweep in folder ``target`` (or named ``target`` under the default storage).

    Raises:
        ConfigError: if there is no such sweep.
    """
    directory = locate_sweep(target)
    spec = load_spec(directory / SPEC_FILE)
    identity = SweepIdentity.load(directory)
    cells = grid_cells(spec)
    uri, experiment = str(spec.tracking.uri), str(spec.tracking.experiment)
    runs = trial_runs(uri, experiment, identity.sweep_id, (OBJECTIVE, _TEST_METRIC))
    now = datetime.now(timezone.utc)
    total = total_trials(cells)
    counts = dict.fromkeys(("pending", *STATES.values()), 0)
    for run in runs:
        counts[STATES.get(run.status, "running")] += 1
    counts["pending"] = max(total - len(runs), 0)
    started = datetime.fromisoformat(identity.started)
    ended = [run.end for run in runs if run.end is not None]
    finished = counts["pending"] == 0 and counts["running"] == 0 and bool(ended)
    elapsed = (max(ended) if finished else now) - started
    slots = spec.ray.max_concurrent_trials or max(counts["running"], 1)
    return SweepStatus(
        name=spec.name,
        directory=directory,
        sweep_id=identity.sweep_id,
        tracking_uri=uri,
        experiment_id=find_experiment(uri, experiment),
        metric=spec.search.metric,
        mode=spec.search.mode,
        counts=counts,
        total=total,
        elapsed=elapsed,
        remaining=timedelta(0) if finished else estimate_remaining(runs, counts["pending"], slots, now),
        cells=tuple(_summarize_cell(spec, cell, [run for run in runs if run.cell == cell.label]) for cell in cells),
        started=bool(runs) or has_parent_run(uri, experiment, identity.sweep_id),
    )


def _duration(value: timedelta | None) -> str:
    return "unknown (no trial finished yet)" if value is None else format_duration(value.total_seconds())


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "") -> list[str]:
    """Left-aligned columns, two spaces apart."""
    widths = [max(len(row[column]) for row in [header, *rows]) for column in range(len(header))]
    return [
        indent + "  ".join(value.ljust(width) for value, width in zip(row, widths)).rstrip() for row in [header, *rows]
    ]


def format_status(status: SweepStatus) -> str:
    """The status as a few lines of text and a table of the grid cells."""
    counts = ", ".join(f"{count} {state}" for state, count in status.counts.items())
    keys = list(status.cells[0].values) if status.cells else []
    header = (
        *keys,
        "trials",
        f"best {status.metric} ({status.mode})",
        "test Dice WT, mean of subsets",
        "trial",
        "params",
    )
    rows = [
        (
            *(str(cell.values[key]) for key in keys),
            f"{cell.ended}/{cell.trials}",
            _number(cell.objective),
            _number(cell.test_dice),
            cell.best_trial or "-",
            " ".join(f"{key}={value}" for key, value in cell.params),
        )
        for cell in status.cells
    ]
    return "\n".join(
        [
            f"sweep {status.name} ({status.sweep_id}) in {status.directory}",
            *(
                []
                if status.started
                else [
                    "never started: its driver stopped before tracking began; "
                    f"`passion-sweep resume {status.directory}` starts it, or remove the folder"
                ]
            ),
            f"trials: {counts} of {status.total}",
            f"elapsed {_duration(status.elapsed)}, left {_duration(status.remaining)}",
            *_table(header, rows),
            f"MLflow: {mlflow_hint(status.tracking_uri)}",
            *([f"runs view: {runs_view(status.tracking_uri, status.experiment_id)}"] if status.experiment_id else []),
        ]
    )


def describe_plan(spec: SweepSpec) -> str:
    """What a sweep of ``spec`` would run: grid cells, trials, resources, destinations,
    and what would stop it from starting here."""
    cells = grid_cells(spec)
    keys = list(spec.grid)
    rows = [
        (
            str(cell.index),
            *(str(cell.values[key]) for key in keys),
            str(cell.trials),
            ", ".join(cell_space(spec, cell)) or "-",
        )
        for cell in cells
    ]
    phantom = spec.data.phantom
    data = (
        str(spec.data.path)
        if phantom is None
        else f"phantom, {phantom.cases} cases of {'x'.join(map(str, phantom.shape))}, cached in {phantom.cache}"
    )
    search = (
        f"search: {spec.search.sampler}, objective {spec.search.metric} ({spec.search.mode}), "
        f"{spec.search.trials_per_cell} trial(s) per searched cell"
        if spec.searched
        else "search: none (one trial per cell)"
    )
    concurrency = spec.ray.max_concurrent_trials or "as many as resources allow"
    return "\n".join(
        [
            f"sweep {spec.name}: {len(cells)} grid cells, {total_trials(cells)} trials",
            *_table(("cell", *keys, "trials", "searched"), rows, indent="  "),
            search,
            f"resources: {spec.resources.cpu:g} CPU, {spec.resources.gpu_per_trial:g} GPU per trial; "
            f"trials at a time: {concurrency}; retries per trial: {spec.ray.max_failures}",
            f"data: {data}",
            *describe_splits(spec),
            f"results: {spec.sweep_dir}",
            f"MLflow: {spec.tracking.uri}, experiment {spec.tracking.experiment} "
            f"({mlflow_hint(str(spec.tracking.uri))})",
            *(f"not ready: {problem}" for problem in readiness_problems(spec)),
        ]
    )
