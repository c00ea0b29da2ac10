"""The tracking server's command line and store URIs (the running server: test_cluster_e2e)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from passion_sweep.tracking_server import backend_store_uri, server_command, settings_for
from trainables.errors import ConfigError


def test_a_lean_server_on_localhost_with_absolute_stores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = settings_for("sweeps/mlflow.db", port=5123)

    command = server_command(settings)

    assert command[:4] == [sys.executable, "-m", "mlflow", "server"]
    options = dict(zip(command[4::2], command[5::2]))
    assert options["--workers"] == "1" and options["--host"] == "127.0.0.1" and options["--port"] == "5123"
    assert options["--backend-store-uri"] == f"sqlite:///{tmp_path}/sweeps/mlflow.db"
    assert options["--artifacts-destination"] == f"{tmp_path}/sweeps/mlartifacts"
    assert settings.url == "http://127.0.0.1:5123"


def test_store_uris(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert backend_store_uri("sqlite:///runs.db") == f"sqlite:///{tmp_path}/runs.db"
    assert backend_store_uri("sqlite:////abs/runs.db") == "sqlite:////abs/runs.db"
    assert backend_store_uri("postgresql://user@db/mlflow") == "postgresql://user@db/mlflow"
    with pytest.raises(ConfigError, match="expected a sqlite file or database URI"):
        backend_store_uri("http://127.0.0.1:5000")


def test_other_hosts_and_artifact_stores_are_passed_on() -> None:
    settings = settings_for(
        "postgresql://db/mlflow", host="0.0.0.0", artifacts_destination="s3://bucket/art", allowed_hosts=["head"]
    )
    command = server_command(settings)
    options = dict(zip(command[4::2], command[5::2]))
    assert options["--host"] == "0.0.0.0" and options["--artifacts-destination"] == "s3://bucket/art"
    assert options["--allowed-hosts"] == "head"
    assert settings.url == "http://127.0.0.1:5000"
