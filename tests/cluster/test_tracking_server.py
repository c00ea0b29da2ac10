"""The tracking server's command line and store URIs (the running server: test_cluster_e2e)."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from passion_sweep.cli import main
from passion_sweep.cluster import tracking_server
from passion_sweep.cluster.tracking_server import (
    backend_store_uri,
    check_can_listen,
    exposure_warning,
    serve,
    server_command,
    settings_for,
)
from trainables.errors import ConfigError

from .nodes import free_port


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


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("localhost", True), ("::1", True), ("127.0.1.1", True),
     ("0.0.0.0", False), ("::", False), ("10.0.0.11", False), ("head-node", False), ("", False)],
)  # fmt: skip
def test_every_non_loopback_host_gets_the_no_authentication_warning(host: str, loopback: bool) -> None:
    warning = exposure_warning(settings_for("postgresql://db/mlflow", host=host, port=5123))
    assert (warning is None) == loopback
    if warning is not None:
        assert "has no authentication" in warning and "reverse proxy" in warning and "ssh -L 5123" in warning


def test_the_warning_comes_before_the_server_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def no_server(*args: object, **kwargs: object) -> None:
        raise RuntimeError("not started in this test")

    monkeypatch.setattr(tracking_server.subprocess, "Popen", no_server)
    with pytest.raises(RuntimeError, match="not started"):
        serve(settings_for(str(tmp_path / "mlflow.db"), host="0.0.0.0", port=free_port()))
    assert any("has no authentication" in record.message for record in caplog.records)


def test_a_port_in_use_or_a_foreign_address_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(
            main, ["tracking-server", "--port", str(port), "--backend-store-uri", str(tmp_path / "m.db")]
        )
    assert result.exit_code == 1 and result.stderr.splitlines() == [
        f"error: port {port} on 127.0.0.1 is in use (another tracking server?): choose another with --port"
    ]
    with pytest.raises(ConfigError, match=r"--host 192\.0\.2\.7 --port \d+: cannot listen there"):
        check_can_listen("192.0.2.7", free_port())  # TEST-NET-1: not an address of this machine
    assert not (tmp_path / "m.db").exists()
