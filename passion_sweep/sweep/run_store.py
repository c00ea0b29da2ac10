"""Reading sweep runs from an MLflow tracking store, fast enough for tables of 1,000 runs.

Tables and ``passion-sweep status`` read through here, so neither imports MLflow for a
sqlite store. MLflow's client works with any store, but its sqlite path builds one ORM object per
param, tag and metric (about 190,000 for 1,000 trial runs: 10-20 s on 2 cores). For a
sqlite file, :class:`SqliteRunReader` reads MLflow's tables directly, read-only and
only the metrics asked for (under a second). It is used only when the file has the
tables and columns it reads (stable since MLflow 1.x); any other store, a server
included, goes through :class:`ClientRunReader`.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

from passion_sweep.errors import PassionSweepError
from passion_sweep.layout import sqlite_path, sqlite_uri
from passion_sweep.tracking import TAG_CELL, TAG_PARENT, TAG_SWEEP, TAG_TRIAL

__all__ = [
    "StoredRun",
    "RunReader",
    "SqliteRunReader",
    "ClientRunReader",
    "open_run_reader",
    "TrialRun",
    "find_experiment",
    "trial_runs",
]

_PAGE = 1000
_SCHEMA: dict[str, set[str]] = {
    "experiments": {"experiment_id", "name", "lifecycle_stage"},
    "runs": {"run_uuid", "status", "lifecycle_stage", "experiment_id", "start_time", "end_time"},
    "tags": {"key", "value", "run_uuid"},
    "params": {"key", "value", "run_uuid"},
    "latest_metrics": {"key", "value", "is_nan", "run_uuid"},
}


@dataclass(frozen=True)
class StoredRun:
    """One run as stored: its status, times (ms since the epoch), all tags and params, and
    the metrics asked for."""

    run_id: str
    experiment_id: str
    status: str
    start_time: int
    end_time: int | None
    tags: Mapping[str, str]
    params: Mapping[str, str]
    metrics: Mapping[str, float]


class RunReader(Protocol):
    """What tables need from a tracking store."""

    def experiments(self) -> dict[str, str]:
        """Active experiments, name to id."""

    def sweep_runs(self, experiment_ids: Sequence[str], *, sweep: str | None = None) -> list[StoredRun]:
        """Active runs tagged with a sweep id (``sweep`` if given) in these experiments."""


def _wanted(key: str, prefixes: Sequence[str]) -> bool:
    return key.startswith(tuple(prefixes))


def _unreadable(uri: str, error: Exception) -> PassionSweepError:
    message = getattr(error, "message", None) or str(error)
    return PassionSweepError(f"cannot read the tracking store {uri}: {message.splitlines()[0]}")


class ClientRunReader:
    """Any MLflow store, through ``MlflowClient``.

    Args:
        uri: tracking URI.
        metric_prefixes: keep the metrics whose names start with one of these.

    Raises:
        PassionSweepError: from its methods, if the store cannot be read.
    """

    def __init__(self, uri: str, metric_prefixes: Sequence[str]) -> None:
        from mlflow.tracking import MlflowClient  # 2 s of imports, only for stores that need it

        self._uri = uri
        self._client = MlflowClient(tracking_uri=uri)
        self._prefixes = tuple(metric_prefixes)

    def experiments(self) -> dict[str, str]:
        from mlflow.exceptions import MlflowException

        try:
            return {experiment.name: experiment.experiment_id for experiment in self._client.search_experiments()}
        except MlflowException as error:
            raise _unreadable(self._uri, error) from None

    def sweep_runs(self, experiment_ids: Sequence[str], *, sweep: str | None = None) -> list[StoredRun]:
        from mlflow.exceptions import MlflowException

        try:
            return self._search(experiment_ids, sweep)
        except MlflowException as error:
            raise _unreadable(self._uri, error) from None

    def _search(self, experiment_ids: Sequence[str], sweep: str | None) -> list[StoredRun]:
        query = f"tags.`{TAG_SWEEP}` = '{sweep}'" if sweep else f"tags.`{TAG_SWEEP}` != ''"
        runs: list[StoredRun] = []
        token = None
        while True:
            page = self._client.search_runs(list(experiment_ids), query, max_results=_PAGE, page_token=token)
            runs.extend(
                StoredRun(
                    run.info.run_id,
                    run.info.experiment_id,
                    run.info.status,
                    run.info.start_time,
                    run.info.end_time,
                    dict(run.data.tags),
                    dict(run.data.params),
                    {key: value for key, value in run.data.metrics.items() if _wanted(key, self._prefixes)},
                )
                for run in page
            )
            token = page.token
            if not token:
                return runs


class SqliteRunReader:
    """A sqlite MLflow store, read directly and read-only.

    Args:
        path: the sqlite file.
        metric_prefixes: keep the metrics whose names start with one of these.

    Raises:
        PassionSweepError: from its methods, if the file cannot be read.
    """

    def __init__(self, path: Path, metric_prefixes: Sequence[str]) -> None:
        self._uri = sqlite_uri(path)
        self._connection = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
        self._prefixes = tuple(metric_prefixes)

    @classmethod
    def has_known_schema(cls, path: Path) -> bool:
        """Whether ``path`` holds the tables and columns this reader reads."""
        try:
            connection = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
            with connection:
                columns = {
                    table: {row[1] for row in connection.execute(f"pragma table_info({table})")} for table in _SCHEMA
                }
            connection.close()
        except sqlite3.Error:
            return False
        return all(needed <= columns[table] for table, needed in _SCHEMA.items())

    def experiments(self) -> dict[str, str]:
        try:
            rows = self._connection.execute(
                "select name, experiment_id from experiments where lifecycle_stage = 'active'"
            ).fetchall()
        except sqlite3.Error as error:
            raise _unreadable(self._uri, error) from None
        return {name: str(experiment_id) for name, experiment_id in rows}

    def _by_run(self, query: str, run_ids: list[str]) -> dict[str, dict[str, str]]:
        values: dict[str, dict[str, str]] = defaultdict(dict)
        for start in range(0, len(run_ids), 900):  # sqlite's limit on bound parameters
            chunk = run_ids[start : start + 900]
            marks = ",".join("?" * len(chunk))
            for run_id, key, value in self._connection.execute(query.format(marks=marks), chunk):
                values[run_id][key] = value
        return values

    def sweep_runs(self, experiment_ids: Sequence[str], *, sweep: str | None = None) -> list[StoredRun]:
        try:
            return self._search(experiment_ids, sweep)
        except sqlite3.Error as error:
            raise _unreadable(self._uri, error) from None

    def _search(self, experiment_ids: Sequence[str], sweep: str | None) -> list[StoredRun]:
        if not experiment_ids:
            return []
        marks = ",".join("?" * len(experiment_ids))
        query = (
            "select r.run_uuid, r.experiment_id, r.status, r.start_time, r.end_time "
            "from runs r join tags t on t.run_uuid = r.run_uuid "
            f"where r.lifecycle_stage = 'active' and r.experiment_id in ({marks}) and t.key = ? and t.value != ''"
            + (" and t.value = ?" if sweep else "")
        )
        arguments = [*experiment_ids, TAG_SWEEP, *([sweep] if sweep else [])]
        found = self._connection.execute(query, arguments).fetchall()
        run_ids = [run_id for run_id, *_ in found]
        tags = self._by_run("select run_uuid, key, value from tags where run_uuid in ({marks})", run_ids)
        params = self._by_run("select run_uuid, key, value from params where run_uuid in ({marks})", run_ids)
        metrics = self._by_run(
            "select run_uuid, key, value from latest_metrics where run_uuid in ({marks}) and not is_nan", run_ids
        )
        return [
            StoredRun(
                run_id,
                str(experiment_id),
                status,
                start_time,
                end_time,
                tags[run_id],
                params[run_id],
                {key: float(value) for key, value in metrics[run_id].items() if _wanted(key, self._prefixes)},
            )
            for run_id, experiment_id, status, start_time, end_time in found
        ]


def open_run_reader(uri: str, metric_prefixes: Iterable[str]) -> RunReader:
    """The fastest reader of the store at ``uri`` that understands it."""
    prefixes = tuple(metric_prefixes)
    path = sqlite_path(uri)
    if path is not None and SqliteRunReader.has_known_schema(path):
        return SqliteRunReader(path, prefixes)
    return ClientRunReader(uri, prefixes)


@dataclass(frozen=True)
class TrialRun:
    """One trial's run as recorded in MLflow.

    Attributes:
        run_id: MLflow run id.
        trial_id: Ray trial id.
        cell: grid cell label.
        status: ``RUNNING``, ``FINISHED``, ``FAILED`` or ``KILLED`` (stopped early).
        start: start time.
        end: end time, if ended.
        params: the run's params.
        metrics: latest value of each metric asked for.
    """

    run_id: str
    trial_id: str
    cell: str
    status: str
    start: datetime
    end: datetime | None
    params: Mapping[str, str]
    metrics: Mapping[str, float]


def _time(milliseconds: int) -> datetime:
    return datetime.fromtimestamp(milliseconds / 1000, timezone.utc)


def find_experiment(uri: str, experiment: str) -> str | None:
    """The id of the active experiment named ``experiment``; ``None`` while it does not exist."""
    store = sqlite_path(uri)
    if store is not None and not store.is_file():
        return None  # not created yet (MLflow's client would create it)
    return open_run_reader(uri, ()).experiments().get(experiment)


def has_parent_run(uri: str, experiment: str, sweep_id: str) -> bool:
    """Whether the sweep's parent run exists, i.e. the sweep got as far as starting its tracking."""
    experiment_id = find_experiment(uri, experiment)
    if experiment_id is None:
        return False
    found = open_run_reader(uri, ()).sweep_runs([experiment_id], sweep=sweep_id)
    return any(TAG_PARENT not in run.tags for run in found)


def trial_runs(uri: str, experiment: str, sweep_id: str, metric_prefixes: Iterable[str] = ("",)) -> list[TrialRun]:
    """The runs of a sweep's trials, oldest first; none before the sweep logged any.

    Args:
        uri: tracking URI.
        experiment: the sweep's MLflow experiment name.
        sweep_id: the sweep's id (its ``sweep.id`` tag).
        metric_prefixes: keep the metrics whose names start with one of these (default all).
    """
    experiment_id = find_experiment(uri, experiment)
    if experiment_id is None:
        return []
    found = open_run_reader(uri, metric_prefixes).sweep_runs([experiment_id], sweep=sweep_id)
    runs = [
        TrialRun(
            run_id=run.run_id,
            trial_id=run.tags.get(TAG_TRIAL, ""),
            cell=run.tags.get(TAG_CELL, ""),
            status=run.status,
            start=_time(run.start_time),
            end=None if run.end_time is None else _time(run.end_time),
            params=run.params,
            metrics=run.metrics,
        )
        for run in found
        if TAG_PARENT in run.tags
    ]
    return sorted(runs, key=lambda run: run.start)
