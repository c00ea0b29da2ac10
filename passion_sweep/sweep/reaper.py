"""A local Ray that dies with the sweep driver that started it.

``ray.init`` has the kernel kill Ray's head processes (GCS, raylet, dashboard) when the
driver dies, but not what the raylet started: after a SIGKILLed driver, its agents
(``ray::DashboardAgent``, ``ray::RuntimeEnvAgent``) live on and ignore SIGTERM. So the
launcher starts a local Ray inside :func:`reaped`: every process Ray starts inherits the
environment variable :data:`MARK` with a value of this driver run's own, and a watcher
process in a session of its own waits for the driver to end (its end of a pipe closes,
at exit or at SIGKILL alike) and then SIGKILLs every process that carries the mark.

Processes are found through ``/proc`` (Linux); elsewhere the watcher finds none.
Only the standard library is imported: the watcher starts in a fraction of a second.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["MARK", "marked_processes", "reaped"]

MARK = "PASSION_SWEEP_RAY"
# A dying raylet may still start a worker: the watcher sweeps until it finds none twice.
_SWEEP_INTERVAL_S = 0.5
_SWEEP_LIMIT_S = 30.0


def marked_processes(prefix: str) -> list[int]:
    """The live processes (zombies have no environment) other than this one whose mark
    starts with ``prefix``: a mark's value, or ``<pid>-`` for every run of a driver."""
    needle = f"{MARK}={prefix}".encode()
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            environment = (entry / "environ").read_bytes().split(b"\0")
        except OSError:  # gone, or not ours to read
            continue
        if any(item.startswith(needle) for item in environment) and int(entry.name) != os.getpid():
            found.append(int(entry.name))
    return found


def _kill_marked(value: str) -> int:
    """SIGKILL every process marked ``value``; how many there were."""
    pids = marked_processes(value)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return len(pids)


def _watch(value: str) -> None:
    """The watcher: block until stdin closes, then kill the marked processes."""
    sys.stdin.buffer.read()
    deadline = time.monotonic() + _SWEEP_LIMIT_S
    quiet = 0
    while quiet < 2 and time.monotonic() < deadline:
        quiet = quiet + 1 if _kill_marked(value) == 0 else 0
        time.sleep(_SWEEP_INTERVAL_S)


@contextlib.contextmanager
def reaped() -> Iterator[str]:
    """Mark the processes started inside (through the environment) and kill them at exit,
    or when this process dies; yields the mark's value (``<pid>-<random>``)."""
    value = f"{os.getpid()}-{secrets.token_hex(4)}"
    watcher = subprocess.Popen([sys.executable, "-m", __name__, value], stdin=subprocess.PIPE, start_new_session=True)
    os.environ[MARK] = value
    try:
        yield value
    finally:
        del os.environ[MARK]
        assert watcher.stdin is not None  # a pipe, as asked
        watcher.stdin.close()  # the watcher kills what Ray left and ends
        watcher.wait(timeout=_SWEEP_LIMIT_S + 10)


if __name__ == "__main__":
    _watch(sys.argv[1])
