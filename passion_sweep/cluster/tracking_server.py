"""A lean MLflow tracking server for sweeps on a cluster.

Trials on several nodes should not share one sqlite file (sqlite locks badly on network
file systems, and a busy sweep has many writers): they log over HTTP to one ``mlflow
server`` instead, whose URI (``http://HOST:PORT``) goes into the spec's
``tracking.uri``. MLflow's default server starts four workers and seven job-runner
processes (2.5 GB, 36 s to ready) and orphans the runners when its parent is killed;
:func:`server_command` asks for one worker and no job runner (0.5 GB, about 10 s to
ready), and :func:`serve` starts it in its own process group, waits until it answers
``/health`` and, when interrupted (Ctrl+C, SIGTERM), stops the whole group.

Artifacts are proxied by the server (``mlflow-artifacts:/``) into
``--artifacts-destination``, so trials need no shared folder for them.

The server has no authentication: :func:`serve` warns when it listens on anything but
a loopback address (:func:`exposure_warning`), and refuses at once a port that is in use
or an address this machine does not have.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from passion_sweep.layout import ARTIFACTS_DIR, artifacts_beside, sqlite_path, sqlite_uri
from trainables.errors import ConfigError, PassionSweepError

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "ServerSettings",
    "backend_store_uri",
    "server_command",
    "is_loopback",
    "exposure_warning",
    "check_can_listen",
    "is_healthy",
    "serve",
]

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5000
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_STOP_SECONDS = 10.0


@dataclass(frozen=True)
class ServerSettings:
    """What the server stores where, and where it listens.

    Attributes:
        backend_store_uri: absolute sqlite URI or database URI of the runs.
        artifacts_destination: absolute folder (or object-store URI) of the artifacts.
        host: interface to bind; 127.0.0.1 serves this machine only.
        port: TCP port.
        allowed_hosts: extra ``Host`` headers to accept (MLflow accepts localhost and
            private IP addresses by default); empty for MLflow's default.
    """

    backend_store_uri: str
    artifacts_destination: str
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    allowed_hosts: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        """The tracking URI clients use (a wildcard host is reached at 127.0.0.1 here)."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"


def backend_store_uri(store: str) -> str:
    """``store`` as an absolute backend store URI: a file path or a relative
    ``sqlite:///`` URI becomes ``sqlite:////abs/path``; database URIs pass unchanged.

    Raises:
        ConfigError: for a ``file:`` store or an MLflow server URI (not a database).
    """
    path = sqlite_path(store)
    if path is not None:
        return sqlite_uri(path.expanduser().resolve())
    if store.startswith(("http://", "https://", "file:")):
        raise ConfigError(
            f"--backend-store-uri {store}: expected a sqlite file or database URI "
            "(e.g. sweeps/mlflow.db, sqlite:////shared/mlflow.db or postgresql://user@db/mlflow)"
        )
    if _SCHEME.match(store):
        return store
    return sqlite_uri(Path(store).expanduser().resolve())


def _default_artifacts(store_uri: str) -> str:
    path = sqlite_path(store_uri)
    return str(artifacts_beside(path) if path is not None else Path(ARTIFACTS_DIR).resolve())


def server_command(settings: ServerSettings, *, python: str | None = None) -> list[str]:
    """The ``mlflow server`` command line of ``settings`` (one worker, artifacts proxied)."""
    command = [
        python or sys.executable,
        "-m",
        "mlflow",
        "server",
        "--workers",
        "1",
        "--host",
        settings.host,
        "--port",
        str(settings.port),
        "--backend-store-uri",
        settings.backend_store_uri,
        "--artifacts-destination",
        settings.artifacts_destination,
    ]
    if settings.allowed_hosts:
        command += ["--allowed-hosts", ",".join(settings.allowed_hosts)]
    return [*command, "--serve-artifacts"]


def settings_for(
    store: str,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    artifacts_destination: str | None = None,
    allowed_hosts: Sequence[str] = (),
) -> ServerSettings:
    """Settings with the store and artifact locations made absolute (see :func:`backend_store_uri`)."""
    store_uri = backend_store_uri(store)
    if artifacts_destination is None:
        artifacts = _default_artifacts(store_uri)
    elif _SCHEME.match(artifacts_destination):
        artifacts = artifacts_destination
    else:
        artifacts = str(Path(artifacts_destination).expanduser().resolve())
    return ServerSettings(store_uri, artifacts, host, port, tuple(allowed_hosts))


def _usage_hint(settings: ServerSettings) -> str:
    """What to put into the spec's ``tracking.uri``, and whether other nodes can reach it."""
    if settings.host in ("127.0.0.1", "localhost", "::1"):
        return (
            f"set the spec's tracking.uri to {settings.url}; it serves this machine only: "
            "for trials on other nodes, start it with --host <an address they reach>"
        )
    if settings.host in ("0.0.0.0", "::", ""):
        return f"set the spec's tracking.uri to http://<this machine's address>:{settings.port}"
    return f"set the spec's tracking.uri to {settings.url}"


def is_loopback(host: str) -> bool:
    """Whether ``host`` serves this machine only: ``localhost`` or a loopback address."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # another host name: it may resolve to any interface
        return False


def exposure_warning(settings: ServerSettings) -> str | None:
    """A warning that the server is open to the network without authentication, or ``None``
    when it listens on a loopback address only."""
    if is_loopback(settings.host):
        return None
    return (
        f"warning: the tracking server on {settings.host or '*'}:{settings.port} has no authentication: "
        "anyone who reaches that address can read, change and delete every run. Keep it on a private network "
        "the cluster alone reaches (a firewall rule for the nodes), or bind it to 127.0.0.1 and put an "
        "authenticating reverse proxy with TLS in front (nginx or Caddy with basic auth; trials then set "
        "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD), or reach it through an SSH tunnel "
        f"(ssh -L {settings.port}:127.0.0.1:{settings.port} HEAD)"
    )


def check_can_listen(host: str, port: int) -> None:
    """Raise unless this machine can listen on ``host:port`` now.

    Raises:
        ConfigError: if ``host`` is not an address of this machine.
        PassionSweepError: if the port is in use.
    """
    try:
        family, kind, protocol, _, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        with socket.socket(family, kind, protocol) as probe:
            # As the server does: a port whose last connections are closing (TIME_WAIT) is free.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except socket.gaierror as error:
        raise ConfigError(f"--host {host}: not a known address ({error.strerror})") from None
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise PassionSweepError(
                f"port {port} on {host} is in use (another tracking server?): choose another with --port"
            ) from None
        raise ConfigError(f"--host {host} --port {port}: cannot listen there ({error.strerror})") from None


def is_healthy(url: str, *, timeout: float = 2.0, any_answer: bool = False) -> bool:
    """Whether the MLflow server at ``url`` answers ``/health`` with 200, or with
    ``any_answer`` at all (a proxy in front may ask for credentials first)."""
    try:
        with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=timeout) as response:
            return response.status == 200
    except urllib.error.HTTPError:
        return any_answer
    except (urllib.error.URLError, OSError):
        return False


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """Stop the server's whole process group: SIGTERM, then SIGKILL after a grace period."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(timeout=_STOP_SECONDS)
            break
        except subprocess.TimeoutExpired:
            continue
    # Workers of the group may outlive the leader for a moment: make sure none is left.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def serve(settings: ServerSettings, *, ready_timeout: float = 180.0) -> int:
    """Run the tracking server until it exits or this process is interrupted.

    The server runs in its own process group, so that Ctrl+C in a terminal reaches
    this process only; on Ctrl+C or SIGTERM the whole group is stopped and waited for.

    Args:
        settings: where to store and listen.
        ready_timeout: seconds to wait for ``/health`` to answer.

    Returns:
        0 after an interrupt, else the server's exit status.

    Raises:
        ConfigError: if this machine has no address ``settings.host``.
        PassionSweepError: if the port is in use, or the server exits or does not answer
            in time at start.
    """
    check_can_listen(settings.host, settings.port)
    warning = exposure_warning(settings)
    if warning is not None:
        logger.warning(warning)
    store = sqlite_path(settings.backend_store_uri)
    if store is not None:
        store.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    previous = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    process = subprocess.Popen(server_command(settings), env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + ready_timeout
        while not is_healthy(settings.url):
            if process.poll() is not None:
                raise PassionSweepError(
                    f"the MLflow server exited with status {process.returncode} at start (see its output above); "
                    f"is port {settings.port} in use? choose another with --port"
                )
            if time.monotonic() > deadline:
                raise PassionSweepError(
                    f"the MLflow server did not answer {settings.url}/health within {ready_timeout:.0f} s"
                )
            time.sleep(0.5)
        logger.info(
            "MLflow tracking server at %s (process group %d), runs in %s, artifacts in %s",
            settings.url,
            process.pid,
            settings.backend_store_uri,
            settings.artifacts_destination,
        )
        logger.info("%s; Ctrl+C stops it", _usage_hint(settings))
        return process.wait()
    except KeyboardInterrupt:
        logger.info("stopping the MLflow tracking server")
        return 0
    finally:
        if process.poll() is None or _group_alive(process.pid):
            _stop_group(process)
        signal.signal(signal.SIGTERM, previous)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
