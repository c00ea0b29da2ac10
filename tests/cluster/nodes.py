"""A throwaway Ray cluster of several nodes on this machine, for tests and benchmarks.

Each node is one ``ray start --block`` in its own process group, with its own temp
folder and ports, and with token authentication on (a fresh token per cluster). A
node is stopped (or "lost") by killing every process of its tree: the ``ray start``
process, its group (GCS, raylet, dashboard, ...) and the raylet's workers, which put
themselves into groups of their own. Nothing else on the machine is touched (never
``ray stop``, which stops every Ray of the machine).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

RAY = str(Path(sys.executable).parent / "ray")
# Lost nodes are noticed in about 3 s rather than 15 s (1 s period, 3 misses).
_FAST_HEALTH_CHECKS = {
    "RAY_health_check_initial_delay_ms": "1000",
    "RAY_health_check_period_ms": "1000",
    "RAY_health_check_timeout_ms": "1000",
    "RAY_health_check_failure_threshold": "3",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _processes() -> dict[int, tuple[int, int]]:
    """Every process of the machine: pid to (parent pid, process group)."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        table[int(entry)] = (int(fields[1]), int(fields[2]))
    return table


def parent_pid(pid: int) -> int | None:
    """The parent of ``pid``, or ``None`` if it is gone."""
    return _processes().get(pid, (None, None))[0]


def _command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@dataclass
class RayNode:
    """One node: its ``ray start --block`` process and temp folder."""

    name: str
    process: subprocess.Popen[bytes]
    temp_dir: Path
    log: Path

    def tree(self) -> set[int]:
        """The node's processes: its group and every descendant (workers, job drivers)."""
        table = _processes()
        members = {pid for pid, (_, group) in table.items() if group == self.process.pid}
        members.add(self.process.pid)
        grew = True
        while grew:
            children = {pid for pid, (parent, _) in table.items() if parent in members} - members
            members |= children
            grew = bool(children)
        return {pid for pid in members if pid in table}

    def raylet_pid(self) -> int | None:
        return next((pid for pid in self.tree() if "raylet/raylet" in _command_line(pid)), None)

    def kill(self) -> None:
        """Kill every process of the node at once (SIGKILL), like a machine that is lost."""
        for pid in self.tree():
            with contextlib.suppress(ProcessLookupError):  # ended already
                os.kill(pid, signal.SIGKILL)
        self.process.wait()


@dataclass
class LocalCluster:
    """Nodes on this machine; :meth:`stop` stops all of them and removes their folders."""

    root: Path
    port: int = field(default_factory=free_port)
    dashboard_port: int = field(default_factory=free_port)
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    nodes: list[RayNode] = field(default_factory=list)

    @classmethod
    def create(cls) -> LocalCluster:
        # Short: Ray's socket paths have a length limit.
        return cls(Path(tempfile.mkdtemp(prefix="psc-", dir="/tmp")))

    @property
    def address(self) -> str:
        """The GCS address, for ``passion-sweep run --address``."""
        return f"127.0.0.1:{self.port}"

    @property
    def dashboard(self) -> str:
        """The job server, for ``passion-sweep submit --address``."""
        return f"http://127.0.0.1:{self.dashboard_port}"

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of the cluster's processes and of clients (token, no usage stats)."""
        return {
            **os.environ,
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": self.token,
            "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_TMPDIR": str(self.root / "head"),
            "OMP_NUM_THREADS": "1",
            **_FAST_HEALTH_CHECKS,
            **extra,
        }

    def _launch(self, name: str, arguments: list[str]) -> RayNode:
        temp = self.root / name
        temp.mkdir()
        log = self.root / f"{name}.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [RAY, "start", "--block", f"--temp-dir={temp}", "--disable-usage-stats", *arguments],
                env=self.env(RAY_TMPDIR=str(temp)),
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        node = RayNode(name, process, temp, log)
        self.nodes.append(node)
        return node

    @staticmethod
    def _wait(node: RayNode, ready: Callable[[], bool], deadline: float, what: str) -> None:
        while not ready():
            if node.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ray node {node.name}: no {what}:\n{node.log.read_text()[-3000:]}")
            time.sleep(0.2)

    def _gcs_listens(self) -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", self.port)) == 0

    def start(self, *, nodes: int, num_cpus: int = 1, dashboard: bool = False, timeout: float = 180) -> LocalCluster:
        """Start a head node and ``nodes - 1`` worker nodes of ``num_cpus`` CPUs each (no GPU).

        Workers start as soon as the head's GCS listens, while the head starts the rest.
        With ``dashboard``, the head runs the dashboard and job server at :attr:`dashboard`.
        """
        deadline = time.monotonic() + timeout
        cpus = [f"--num-cpus={num_cpus}", "--num-gpus=0"]
        head_arguments = ["--head", f"--port={self.port}", *cpus]
        if dashboard:
            head_arguments += [
                "--include-dashboard=true",
                "--dashboard-host=127.0.0.1",
                f"--dashboard-port={self.dashboard_port}",
            ]
        else:
            head_arguments += ["--include-dashboard=false"]
        head = self._launch("head", head_arguments)
        self._wait(head, self._gcs_listens, deadline, "GCS")
        for number in range(1, nodes):
            self._launch(f"worker{number}", [f"--address={self.address}", *cpus])
        for node in self.nodes:
            self._wait(node, lambda node=node: b"Ray runtime started" in node.log.read_bytes(), deadline, "start")
        if dashboard:
            self._wait(head, self._dashboard_answers, deadline, "dashboard")
        return self

    def _dashboard_answers(self) -> bool:
        request = urllib.request.Request(
            f"{self.dashboard}/api/version", headers={"Authorization": f"Bearer {self.token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=2):
                return True
        except OSError:
            return False

    def node_of(self, pid: int) -> str | None:
        """The name of the node whose raylet started worker ``pid``."""
        parent = parent_pid(pid)
        return next((node.name for node in self.nodes if parent is not None and node.raylet_pid() == parent), None)

    def stop(self) -> None:
        """Kill every node (workers first) and remove the cluster's folder."""
        for node in reversed(self.nodes):
            if node.process.poll() is None or node.tree():
                node.kill()
        shutil.rmtree(self.root, ignore_errors=True)
