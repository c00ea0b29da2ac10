"""Trial results of sweeps, read from an MLflow tracking store into one pandas frame.

Only the tracking store is read (a sqlite file or a tracking server), never the sweep
folders, so tables can be made on any machine that reaches the store. Each sweep's
parent run holds its plan (:class:`~passion_sweep.tracking.SweepPlan`); each trial's
child run holds its tags, params and final ``test/<metric>/<subset>/<region>`` values.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from passion_sweep import tracking
from passion_sweep.cluster.tracking_server import is_healthy
from passion_sweep.errors import ConfigError, PassionSweepError
from passion_sweep.layout import default_store_uri, sqlite_path, sqlite_uri
from passion_sweep.sweep.run_store import StoredRun, open_run_reader
from passion_sweep.sweep.spec import GRID_SHORTCUTS, RaySpec
from trainables.errors import did_you_mean

__all__ = ["RunSelection", "TrialResults", "load_trial_results", "default_tracking_uri", "RUN_COLUMNS"]

# Columns every runs frame has, before the tag, param and metric columns.
RUN_COLUMNS: tuple[str, ...] = ("run_id", "sweep", "cell", "cell_order", "status", "failure", "objective")
_METRIC_PREFIX = "test/"


@dataclass(frozen=True)
class RunSelection:
    """Which trial runs a table covers.

    Attributes:
        experiment: MLflow experiment name; ``None`` for the store's only experiment
            with sweeps (or the sweep's, with ``sweep``).
        sweep: a sweep id (tag ``sweep.id``); ``None`` for every sweep of the experiment.
        filters: tag or param name to the values a run must have one of, e.g.
            ``{"split": ("mr2468",)}``.
    """

    experiment: str | None = None
    sweep: str | None = None
    filters: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class TrialResults:
    """The selected trial runs and the plans of their sweeps.

    Attributes:
        runs: one row per trial run: :data:`RUN_COLUMNS`, then one column per tag and
            param (``backbone``, ``split``, ``method``, ``seed``, ``passion.kl_weight``...),
            then the ``test/...`` metrics; absent values are missing (``None``/NaN).
        plans: sweep id to its plan, for the sweeps whose parent run has one.
        attributes: the names of the tag and param columns.
    """

    runs: pd.DataFrame
    plans: Mapping[str, tracking.SweepPlan]
    attributes: tuple[str, ...]

    @property
    def grid_keys(self) -> list[str]:
        """The keys the sweeps' grids vary (from the runs' cell labels), in grid order, seed excepted."""
        labels = self.runs["cell"].dropna().unique()
        return [key for key in dict.fromkeys(key for label in labels for key in _cell_values(label)) if key != "seed"]


def default_tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI``, else the store of sweeps under the default storage path."""
    return os.environ.get("MLFLOW_TRACKING_URI") or default_store_uri(RaySpec().storage_path)


_SQLITE_MAGIC = b"SQLite format 3\x00"
# MLflow stores besides sqlite files and servers that a table can be read from.
_STORE_SCHEMES = ("postgresql", "mysql", "mssql", "databricks")
_STORE_FORMS = "sqlite:////abs/path/mlflow.db (a sweep's store is <ray.storage_path>/mlflow.db) or http://host:port"


def _checked_store(uri: str) -> str:
    """``uri`` as a store to read: a path becomes ``sqlite:///``; a sqlite file must exist
    and be a database (MLflow would create an empty store, or fail in its schema code);
    a server must answer.

    Raises:
        ConfigError: for a missing or non-sqlite file, or a URI that is not a store.
        PassionSweepError: if no server answers at an ``http(s)://`` URI.
    """
    if uri.startswith(("http://", "https://")):
        if not is_healthy(uri, timeout=5, any_answer=True):  # MLflow's client would retry for minutes
            raise PassionSweepError(
                f"no MLflow tracking server answers at {uri}: is it running (passion-sweep tracking-server)?"
            )
        return uri
    if uri.startswith(_STORE_SCHEMES):
        return uri
    store = sqlite_path(uri)
    if store is None and ("://" in uri or uri.startswith("file:")):
        raise ConfigError(f"--tracking-uri {uri}: not an MLflow store this command reads; pass {_STORE_FORMS}")
    path = (store or Path(uri)).expanduser()
    if not path.is_file():
        raise ConfigError(f"no MLflow store at {path}: pass --tracking-uri {_STORE_FORMS}")
    try:
        with open(path, "rb") as stream:
            is_sqlite = stream.read(len(_SQLITE_MAGIC)) == _SQLITE_MAGIC
    except OSError as error:
        raise ConfigError(f"cannot read the MLflow store {path}: {error.strerror}") from None
    if not is_sqlite:
        raise ConfigError(f"{path} is not an sqlite database: pass --tracking-uri {_STORE_FORMS}")
    if not _mlflow_tables(path):  # MLflow would add its tables to someone else's database
        raise ConfigError(f"{path} is an sqlite database but not an MLflow store: pass --tracking-uri {_STORE_FORMS}")
    return sqlite_uri(path.resolve())


def _mlflow_tables(path: Path) -> bool:
    """Whether the sqlite file has MLflow's tables (read-only: the file is left as it is)."""
    try:
        with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as database:
            tables = {row[0] for row in database.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.Error:
        return False
    return {"experiments", "runs", "alembic_version"} <= tables


def _unknown(what: str, name: str, known: Iterable[str], flag: str) -> ConfigError:
    known = sorted(set(known))
    hint = did_you_mean(name, known)
    listing = ", ".join(known[:12]) + (" ..." if len(known) > 12 else "") if known else "none"
    return ConfigError(f"no {what} {name!r} in the tracking store{hint}; {flag} takes one of: {listing}")


def _experiment_ids(experiments: Mapping[str, str], selection: RunSelection) -> list[str]:
    """The experiments to search: the one named, or every one (narrowed down later)."""
    if selection.experiment is None:
        return list(experiments.values())
    if selection.experiment not in experiments:
        raise _unknown("experiment", selection.experiment, experiments, "--experiment")
    return [experiments[selection.experiment]]


def _check_one_experiment(experiments: Mapping[str, str], found: list[StoredRun]) -> None:
    """Without --experiment or --sweep, the runs must come from the store's only experiment with sweeps."""
    names = {experiment_id: name for name, experiment_id in experiments.items()}
    with_sweeps = sorted({names.get(run.experiment_id, run.experiment_id) for run in found})
    if len(with_sweeps) != 1:
        raise ConfigError(
            "name the runs to tabulate with --experiment NAME or --sweep ID "
            f"(experiments with sweeps: {', '.join(with_sweeps) or 'none'})"
        )


def _cell_values(label: str | None) -> dict[str, str]:
    """The grid values in a cell label such as ``backbone=rfnet,method=passion``."""
    if not label or label == "default":
        return {}
    return dict(pair.partition("=")[::2] for pair in label.split(","))


def _row(run: StoredRun) -> dict[str, Any]:
    row: dict[str, Any] = {
        "run_id": run.run_id,
        "sweep": run.tags.get(tracking.TAG_SWEEP),
        "cell": run.tags.get(tracking.TAG_CELL),
        "status": run.status,
        "failure": run.tags.get(tracking.TAG_FAILURE),
        "objective": run.metrics.get(tracking.OBJECTIVE),
    }
    # Grid keys without a tag of their own (mask_type, passion.kl_weight...) become columns too.
    row.update(_cell_values(row["cell"]))
    row.update((key, value) for key, value in run.tags.items() if not key.startswith("mlflow."))
    row.update(run.params)
    row.update((key, value) for key, value in run.metrics.items() if key.startswith(_METRIC_PREFIX))
    return row


def _apply_filters(runs: pd.DataFrame, filters: Mapping[str, tuple[str, ...]], attributes: list[str]) -> pd.DataFrame:
    for key, values in filters.items():
        if key not in attributes:
            raise _unknown("tag or param", key, attributes, "--filter")
        kept = runs[runs[key].isin(values)]
        if kept.empty:
            present = ", ".join(sorted(runs[key].dropna().astype(str).unique())) or "none"
            raise ConfigError(f"no selected trial run has {key} in ({', '.join(values)}): its values are {present}")
        runs = kept
    return runs


def _planned_values(label: str) -> dict[str, str]:
    """The tag and param values a grid cell fixes: its grid values, and the params that
    grid shortcuts stand for (``method=pmr`` fixes ``method.name``)."""
    values = _cell_values(label)
    for key, value in list(values.items()):
        if key in GRID_SHORTCUTS:
            values[GRID_SHORTCUTS[key]] = value
    return values


def _missing_trials(runs: pd.DataFrame, plans: Mapping[str, tracking.SweepPlan], attributes: list[str]) -> pd.DataFrame:
    """One row per planned trial without a run: its sweep, cell and the attributes it would have."""
    rows = []
    for sweep, plan in plans.items():
        in_sweep = runs[runs["sweep"] == sweep]
        constants = {
            key: in_sweep[key].iloc[0]
            for key in attributes
            if not in_sweep.empty and in_sweep[key].nunique(dropna=False) == 1
        }
        started = in_sweep["cell"].value_counts()
        for label, trials in plan.cells.items():
            row = {**constants, **_planned_values(label), "sweep": sweep, "cell": label, "status": "MISSING"}
            rows.extend([row] * max(0, trials - int(started.get(label, 0))))
    return pd.DataFrame.from_records(rows, columns=[*RUN_COLUMNS, *attributes])


def load_trial_results(uri: str, selection: RunSelection) -> TrialResults:
    """Read the trial runs of ``selection`` and their sweeps' plans from the store at ``uri``.

    Planned trials that have no run (the sweep never started them) are rows with status
    ``MISSING``, so that tables count them instead of dropping them silently.

    Raises:
        ConfigError: for a missing or non-sqlite store file, a URI that is no store, an
            unknown experiment, sweep or filter
            key, or a selection without trial runs.
        PassionSweepError: if the tracking store cannot be read.
    """
    uri = _checked_store(uri)
    reader = open_run_reader(uri, (_METRIC_PREFIX, tracking.OBJECTIVE))
    experiments = reader.experiments()
    experiment_ids = _experiment_ids(experiments, selection)
    found = reader.sweep_runs(experiment_ids, sweep=selection.sweep)
    if selection.sweep and not found:
        known = {run.tags[tracking.TAG_SWEEP] for run in reader.sweep_runs(experiment_ids)}
        raise _unknown("sweep", selection.sweep, known, "--sweep")
    if selection.experiment is None and selection.sweep is None:
        _check_one_experiment(experiments, found)
    plans = {
        run.tags[tracking.TAG_SWEEP]: plan
        for run in found
        if tracking.TAG_PARENT not in run.tags and (plan := tracking.SweepPlan.from_tags(run.tags)) is not None
    }
    records = [_row(run) for run in found if tracking.TAG_PARENT in run.tags]
    runs = pd.DataFrame.from_records(records) if records else pd.DataFrame(columns=list(RUN_COLUMNS))
    attributes = [
        column for column in runs.columns if column not in RUN_COLUMNS and not column.startswith(_METRIC_PREFIX)
    ]
    missing = _missing_trials(runs, plans, attributes)
    runs = pd.concat([runs, missing], ignore_index=True)
    # Position of each run's cell in its sweep's grid: tables keep that order (-1 if unknown).
    positions = {(sweep, cell): index for sweep, plan in plans.items() for index, cell in enumerate(plan.cells)}
    runs["cell_order"] = [positions.get(key, -1) for key in zip(runs["sweep"], runs["cell"], strict=True)]
    runs = _apply_filters(runs, selection.filters, attributes)
    if runs.empty:
        raise ConfigError(
            "the selected sweeps have no trial runs yet: check --experiment/--sweep, or wait for trials to start"
        )
    return TrialResults(runs.reset_index(drop=True), plans, tuple(attributes))
