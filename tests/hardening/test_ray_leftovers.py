"""A sweep driver's own local Ray dies with it: nothing of it is left after a SIGKILL of
the driver, nor after a resume that ran to the end.

The drivers are ``passion-sweep`` subprocesses that start their own local Ray (no
``--address``), in a private temp folder. Their Ray processes are found by the mark
the launcher gives them (:data:`passion_sweep.sweep.reaper.MARK`).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from passion_sweep.sweep.reaper import marked_processes
from passion_sweep.sweep.spec import parse_spec
from tests.sweep.conftest import tiny_spec

pytestmark = pytest.mark.slow

PASSION_SWEEP = str(Path(sys.executable).parent / "passion-sweep")
GONE_WITHIN_S = 20.0


def wait_until(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise TimeoutError(f"{what} not within {timeout} s")


@pytest.fixture
def ray_environment() -> Iterator[dict[str, str]]:
    """The environment of a driver whose local Ray keeps to a temp folder of its own."""
    temp = tempfile.mkdtemp(prefix="ps-ray-", dir="/tmp")  # short: Ray's socket paths have a length limit
    yield {**os.environ, "RAY_TMPDIR": temp, "RAY_USAGE_STATS_ENABLED": "0"}
    shutil.rmtree(temp, ignore_errors=True)


def test_no_ray_process_outlives_a_killed_or_finished_driver(
    phantom_cache: Path, tmp_path: Path, ray_environment: dict[str, str]
) -> None:
    values = tiny_spec(tmp_path / "sweeps", cache=phantom_cache, name="leftovers", grid={"method": ["baseline"]})
    del values["search"]
    spec_file = tmp_path / "leftovers.yaml"
    spec_file.write_text(yaml.safe_dump(values))
    sweep_dir = parse_spec(values).sweep_dir

    with (tmp_path / "driver.log").open("w") as log:
        driver = subprocess.Popen([PASSION_SWEEP, "run", str(spec_file)], stdout=log, stderr=log, env=ray_environment)
        ours = f"{driver.pid}-"
        try:
            wait_until(lambda: list(sweep_dir.glob("trial_*/result.json")), 180, "a trial result")
            running = marked_processes(ours)
        finally:
            os.kill(driver.pid, signal.SIGKILL)  # the driver alone, not its process group
            driver.wait()
        assert len(running) >= 4, "Ray's processes (GCS, raylet, agents, the trial's worker) carry the mark"
        wait_until(lambda: not marked_processes(ours), GONE_WITHIN_S, "every Ray process of the killed driver gone")

        resume = subprocess.Popen(
            [PASSION_SWEEP, "resume", str(sweep_dir)], stdout=log, stderr=log, env=ray_environment
        )
        assert resume.wait(timeout=300) == 0, (tmp_path / "driver.log").read_text()[-2000:]
    assert not marked_processes(f"{resume.pid}-"), "a driver that ended left none of its Ray processes"
