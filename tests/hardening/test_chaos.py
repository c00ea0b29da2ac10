"""Chaos: a sweep whose trial workers and driver are killed at random, again and again,
ends as the same sweep undisturbed: one complete MLflow run per trial, the same table.

The sweep has no search (its table is then fixed by the spec, as training is
deterministic and resumes bit-exactly from a checkpoint). Its driver is
``passion-sweep run`` and then ``passion-sweep resume`` in subprocesses on the session's
Ray, after the undisturbed sweep; each round waits for a new epoch, SIGKILLs a running
trial's worker, waits a random moment and SIGKILLs the driver. Tune's newest experiment
state is then cut short, as a driver killed while Tune copies it leaves it, and a last
``resume`` finishes the sweep. The choices
and delays come from one seeded RNG: the seed is printed, and ``CHAOS_SEED=N`` replays it.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from passion_sweep.cli import main
from passion_sweep.sweep.launcher import run_sweep
from passion_sweep.sweep.spec import SweepSpec, parse_spec
from tests.sweep.conftest import tiny_spec

pytestmark = pytest.mark.slow

SEED = int(os.environ.get("CHAOS_SEED", "1037"))
KILLED_DRIVERS = 2
PASSION_SWEEP = str(Path(sys.executable).parent / "passion-sweep")


def chaos_spec(storage: Path, cache: Path) -> dict[str, Any]:
    """Two trials (baseline and PASSION) of two epochs, no search; a trial may fail often."""
    values = tiny_spec(
        storage,
        cache=cache,
        name="chaos",
        train={"epochs": 2, "num_workers": 0, "augment": False, "val_every": 100, "lr": 0.005},
        ray={"storage_path": str(storage), "max_concurrent_trials": 2, "max_failures": 10},
    )
    del values["search"]
    return values


def results(sweep_dir: Path) -> list[dict[str, Any]]:
    """Every complete result line the sweep's trials have reported so far."""
    lines = []
    for path in sorted(sweep_dir.glob("trial_*/result.json")):
        for line in path.read_text().splitlines():
            with contextlib.suppress(json.JSONDecodeError):  # the line being written
                lines.append(json.loads(line))
    return lines


def wait_for_new_result(sweep_dir: Path, seen: int, driver: subprocess.Popen[bytes], timeout: float = 180) -> bool:
    """Wait until a trial reports beyond ``seen`` results; False if the driver ended or
    ``timeout`` passed first (on a machine that busy, the driver is killed at that moment)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and driver.poll() is None:
        if len(results(sweep_dir)) > seen:
            return True
        time.sleep(0.2)
    return False


def is_our_worker(pid: int) -> bool:
    """Whether ``pid`` is still a Ray worker of this test session's Ray (never kill a reused pid)."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
        environment = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
    return command.startswith(b"ray::") and f"RAY_TMPDIR={os.environ['RAY_TMPDIR']}".encode() in environment


def kill_a_trial_worker(sweep_dir: Path, rng: random.Random) -> int | None:
    """SIGKILL the worker of a random trial that has not ended; its pid, or None if none runs."""
    latest = {result["trial_id"]: result for result in results(sweep_dir)}
    pids = sorted({result["pid"] for result in latest.values() if not result.get("done")})
    pids = [pid for pid in pids if is_our_worker(pid)]
    if not pids:
        return None
    pid = rng.choice(pids)
    os.kill(pid, signal.SIGKILL)
    return pid


def cut_newest_state(sweep_dir: Path, rng: random.Random) -> int:
    """Cut Tune's newest experiment state short at a random byte; the length left."""
    newest = max(sweep_dir.glob("experiment_state-*.json"))
    data = newest.read_bytes()
    cut = rng.randrange(len(data))
    newest.write_bytes(data[:cut])
    return cut


def table(spec: SweepSpec) -> str:
    result = CliRunner().invoke(main, ["table", "--tracking-uri", str(spec.tracking.uri), "--format", "csv"])
    assert result.exit_code == 0, result.output
    return result.output


def test_a_sweep_killed_again_and_again_ends_as_the_undisturbed_one(
    ray_cluster: str, phantom_cache: Path, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    print(f"chaos seed {SEED} (replay with CHAOS_SEED={SEED})")
    calm = parse_spec(chaos_spec(tmp_path / "calm", phantom_cache))
    assert run_sweep(calm).complete
    values = chaos_spec(tmp_path / "chaos", phantom_cache)
    chaos_file = tmp_path / "chaos.yaml"
    chaos_file.write_text(yaml.safe_dump(values))
    spec = parse_spec(values)

    def driver(*args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen([PASSION_SWEEP, *args, "--address", ray_cluster], stdout=log, stderr=subprocess.STDOUT)

    kills = []
    with (tmp_path / "drivers.log").open("w") as log:
        for command in [["run", str(chaos_file)], *[["resume", str(spec.sweep_dir)]] * (KILLED_DRIVERS - 1)]:
            seen = len(results(spec.sweep_dir))
            disturbed = driver(*command)
            try:
                if wait_for_new_result(spec.sweep_dir, seen, disturbed):
                    kills.append(("worker", kill_a_trial_worker(spec.sweep_dir, rng)))
                    time.sleep(rng.uniform(0.0, 3.0))
            finally:
                disturbed.kill()
                disturbed.wait()
            kills.append(("driver", disturbed.pid))
        cut = cut_newest_state(spec.sweep_dir, rng)  # as if the last kill came while Tune copied it
        print(f"killed: {kills}; newest experiment state cut to {cut} bytes")
        final = driver("resume", str(spec.sweep_dir))
        ended = final.wait(timeout=400)
    assert ended == 0, (tmp_path / "drivers.log").read_text()[-3000:]
    assert any(what == "worker" and pid for what, pid in kills), "a trial's worker was killed"

    client = MlflowClient(str(spec.tracking.uri))
    experiment = client.get_experiment_by_name(str(spec.tracking.experiment))
    runs = client.search_runs([experiment.experiment_id])
    children = [run for run in runs if "mlflow.parentRunId" in run.data.tags]
    assert len(runs) == len(children) + 1, "one parent run"
    assert sorted(run.data.tags["method"] for run in children) == ["baseline", "passion"], "one run per trial"
    assert all(run.info.status == "FINISHED" for run in runs), [run.info.status for run in runs]
    trial_ids = sorted(run.data.tags["ray.trial_id"] for run in children)
    assert sorted(path.name for path in spec.sweep_dir.glob("trial_*")) == [f"trial_{id_}" for id_ in trial_ids]
    assert sorted(path.name for path in (spec.sweep_dir / "evaluation").iterdir()) == trial_ids, "as a calm run"
    assert table(spec) == table(calm)
