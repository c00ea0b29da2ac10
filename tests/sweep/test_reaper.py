"""The reaper without Ray: a process started inside ``reaped()`` that ignores SIGTERM dies
when its driver is SIGKILLed or exits; unmarked processes are left alone."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from passion_sweep.sweep.reaper import marked_processes

# A driver that starts, inside reaped(), a child in a session of its own that ignores
# SIGTERM (as Ray's agents do), prints the mark and the child's pid, and then dies or exits.
DRIVER = textwrap.dedent(
    """
    import os, signal, subprocess, sys
    from passion_sweep.sweep.reaper import reaped

    with reaped() as mark:
        child = subprocess.Popen(
            [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"],
            start_new_session=True,
        )
        print(mark, child.pid, flush=True)
        if sys.argv[1] == "killed":
            os.kill(os.getpid(), signal.SIGKILL)
    """
)


def is_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("end", ["killed", "exits"])
def test_the_marked_child_of_a_driver_that_ends_is_killed(end: str) -> None:
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        driver = subprocess.run([sys.executable, "-c", DRIVER, end], capture_output=True, text=True, timeout=60)
        mark, child = driver.stdout.split()
        deadline = time.monotonic() + 10
        while is_alive(int(child)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not is_alive(int(child)), f"the child of a driver that {end} survived"
        assert marked_processes(mark) == []
        assert is_alive(bystander.pid), "an unmarked process is left alone"
    finally:
        bystander.kill()
        bystander.wait()
