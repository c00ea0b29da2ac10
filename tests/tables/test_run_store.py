"""The direct sqlite reader returns what MLflow's client returns, only faster."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from passion_sweep.sweep.run_store import ClientRunReader, SqliteRunReader, open_run_reader

PREFIXES = ("test/", "objective")


def _as_records(runs) -> dict:
    return {
        run.run_id: (run.experiment_id, run.status, dict(run.tags), dict(run.params), dict(run.metrics)) for run in runs
    }


def test_sqlite_reader_matches_the_mlflow_client(known_store: str) -> None:
    path = Path(known_store.removeprefix("sqlite:///"))
    direct, client = SqliteRunReader(path, PREFIXES), ClientRunReader(known_store, PREFIXES)

    assert direct.experiments() == client.experiments()
    ids = list(client.experiments().values())
    assert _as_records(direct.sweep_runs(ids)) == _as_records(client.sweep_runs(ids))
    some_sweep = client.sweep_runs(ids)[0].tags["sweep.id"]
    assert _as_records(direct.sweep_runs(ids, sweep=some_sweep)) == _as_records(
        client.sweep_runs(ids, sweep=some_sweep)
    )
    metrics = next(run.metrics for run in direct.sweep_runs(ids) if run.metrics)
    assert metrics and all(key.startswith(PREFIXES) for key in metrics)


def test_stores_of_another_shape_go_through_the_client(known_store: str, tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("create table runs (run_uuid text)").connection.commit()

    assert isinstance(open_run_reader(known_store, PREFIXES), SqliteRunReader)
    assert not SqliteRunReader.has_known_schema(other)
    assert isinstance(open_run_reader("http://127.0.0.1:1", PREFIXES), ClientRunReader)
