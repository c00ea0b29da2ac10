"""Scaling of a sweep from one Ray node to two: the same small sweep on each.

Starts a Ray cluster on this machine (each node one ``ray start`` with its own temp
folder and ports, token authentication on; see ``tests/cluster/nodes.py``), runs
``passion-sweep run`` against it and stops the cluster; first with one node of 1 CPU,
then with two nodes of 1 CPU each. The sweep: ``--trials`` (default 8) trials of a
tiny RFNet (width 4, patch 16, ``--epochs`` epochs, default 20) on a phantom of 6 cases
of 32^3, one CPU each, tracked in a sqlite store; the phantom is generated once
beforehand. Each wall time is that of the driver command (imports, data check, all
trials, evaluation, tracking), not of the cluster's start.

Printed: both wall times and their ratio (two nodes / one node). Target: at most 0.6.
About 25 s of each run does not parallelise (the driver's start, the data check, the
first worker's imports, the tables and plot at the end), so the trials must do enough
work for the ratio to show the scaling: 4 trials of 8 epochs measure 0.68.
Both nodes share this machine's cores, so the figure is only meaningful when at least
two cores are free; other work on the machine shows up directly in the ratio.

    python benchmarks/cluster_scaling.py [--trials 8] [--epochs 20] [--keep]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from passion_sweep.phantom import ensure_phantom  # noqa: E402
from tests.cluster.nodes import LocalCluster  # noqa: E402

TARGET_RATIO = 0.6
PASSION_SWEEP = str(Path(sys.executable).parent / "passion-sweep")


def sweep_spec(folder: Path, *, trials: int, epochs: int) -> dict:
    """``trials`` trials: baseline and PASSION cells over as many seeds as it takes."""
    seeds = list(range(1, (trials + 1) // 2 + 1))
    return {
        "name": "scaling",
        "data": {"phantom": {"cases": 6, "shape": [32, 32, 32], "seed": 0, "cache": str(folder / "phantom")}},
        "splits": {"mr2468": {"missing_rates": "mr2468"}},
        "grid": {"method": ["baseline", "passion"], "seed": seeds},
        "model": {"width": 4, "patch_size": 16},
        "train": {"epochs": epochs, "num_workers": 0, "augment": False, "val_every": 100, "lr": 0.005},
        "eval": {"overlap": 0.0},
        "resources": {"cpu": 1},
        "ray": {"storage_path": str(folder / "sweeps"), "max_concurrent_trials": 2},
    }


def timed_sweep(spec_file: Path, *, nodes: int, name: str, log: Path) -> float:
    """Wall time of ``passion-sweep run`` on a fresh cluster of ``nodes`` nodes of 1 CPU."""
    cluster = LocalCluster.create()
    try:
        cluster.start(nodes=nodes, num_cpus=1)
        command = [PASSION_SWEEP, "run", str(spec_file), "--address", cluster.address, "--set", f"name={name}"]
        started = time.monotonic()
        with log.open("w") as output:
            status = subprocess.run(command, env=cluster.env(), stdout=output, stderr=subprocess.STDOUT).returncode
        elapsed = time.monotonic() - started
        if status:
            raise SystemExit(f"the sweep on {nodes} node(s) failed (exit {status}); see {log}")
        return elapsed
    finally:
        cluster.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=8, help="trials of the sweep (even)")
    parser.add_argument("--epochs", type=int, default=20, help="epochs per trial")
    parser.add_argument("--keep", action="store_true", help="keep the sweeps and logs (path printed)")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="cluster-scaling-"))
    try:
        values = sweep_spec(folder, trials=args.trials, epochs=args.epochs)
        spec_file = folder / "scaling.yaml"
        spec_file.write_text(yaml.safe_dump(values))
        ensure_phantom(folder / "phantom", cases=6, shape=(32, 32, 32), seed=0)
        trials = len(values["grid"]["method"]) * len(values["grid"]["seed"])
        print(f"sweep: {trials} trials of {args.epochs} epochs, 1 CPU each")
        one = timed_sweep(spec_file, nodes=1, name="one-node", log=folder / "one-node.log")
        print(f"one node, 1 CPU:        {one:7.1f} s")
        two = timed_sweep(spec_file, nodes=2, name="two-nodes", log=folder / "two-nodes.log")
        print(f"two nodes, 1 CPU each:  {two:7.1f} s")
        ratio = two / one
        verdict = "meets" if ratio <= TARGET_RATIO else "misses"
        print(f"ratio two / one: {ratio:.2f} ({verdict} the target <= {TARGET_RATIO})")
    finally:
        if args.keep:
            print(f"kept: {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
