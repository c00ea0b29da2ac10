"""Tracking URIs and the files beside a sqlite store."""

from __future__ import annotations

from pathlib import Path

from passion_sweep.layout import artifacts_beside, default_store_uri, sqlite_path, sqlite_uri


def test_sqlite_uris_map_to_files_and_back() -> None:
    store = Path("/shared/sweeps/mlflow.db")
    assert default_store_uri(store.parent) == "sqlite:////shared/sweeps/mlflow.db"
    assert sqlite_path(sqlite_uri(store)) == store
    assert sqlite_path("sqlite:///sweeps/mlflow.db") == Path("sweeps/mlflow.db"), "relative stays relative"
    assert sqlite_path("http://head:5000") is None
    assert sqlite_path("postgresql://user@db/mlflow") is None
    assert artifacts_beside(store) == Path("/shared/sweeps/mlartifacts")
