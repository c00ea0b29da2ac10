"""Fixtures of the cluster tests: two Ray nodes on this machine and a tracking server.

The cluster is the tests' own (own temp folders, ports and token), separate from the
session's local Ray of the sweep tests; drivers run in subprocesses, so this pytest
process never connects to it. Every process a fixture starts, it stops.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .nodes import LocalCluster, free_port

PASSION_SWEEP = str(Path(sys.executable).parent / "passion-sweep")


@pytest.fixture(scope="module")
def two_nodes() -> Iterator[LocalCluster]:
    """A head node (1 CPU, with the job server) and a worker node (1 CPU)."""
    cluster = LocalCluster.create()
    try:
        yield cluster.start(nodes=2, num_cpus=1, dashboard=True)
    finally:
        cluster.stop()


@dataclass
class TrackingServer:
    """A ``passion-sweep tracking-server`` process; :meth:`ready` waits for the server."""

    process: subprocess.Popen[bytes]
    log: Path
    url: str = ""
    group: int = 0

    def ready(self, timeout: float = 180) -> TrackingServer:
        """Wait until the command says where the server listens (its URL and process group)."""
        deadline = time.monotonic() + timeout
        while not self.url:
            found = re.search(r"MLflow tracking server at (\S+) \(process group (\d+)\)", self.log.read_text())
            if found:
                self.url, self.group = found[1], int(found[2])
            elif self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the tracking server did not start:\n{self.log.read_text()[-3000:]}")
            else:
                time.sleep(0.2)
        return self

    def interrupt(self, timeout: float = 60) -> int:
        """Ctrl+C: SIGINT to the command (not to the server's own group); its exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=timeout)


def group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def tracking_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrackingServer]:
    """``passion-sweep tracking-server`` on a fresh sqlite store, on a free port. It starts
    while the next fixtures do: tests call :meth:`TrackingServer.ready` before using it."""
    folder = tmp_path_factory.mktemp("tracking")
    log = folder / "server.log"
    command = [
        PASSION_SWEEP,
        "tracking-server",
        "--backend-store-uri",
        str(folder / "mlflow.db"),
        "--port",
        str(free_port()),
    ]
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True, cwd=folder)
    server = TrackingServer(process, log)
    try:
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if server.group and group_alive(server.group):
            os.killpg(server.group, signal.SIGKILL)
