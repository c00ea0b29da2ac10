"""Seconds to make a comparison table (and its plot) from an MLflow store of 1,000 trial runs.

Builds a sqlite store shaped like a Table-1 sweep repeated over seeds (3 backbones x 8
splits x 2 methods x 21 seeds = 1,008 trial runs, each with 40 params, 10 epochs of
training curves and the 128 final test metrics), through the sweep's own tracking
functions, then times ``passion-sweep table`` as a subprocess (what a user waits for,
imports included) and the library call alone. Target: under 5 s for the command.

Usage: python benchmarks/table.py [--store DIR] [--seeds 21]
       (an existing --store is reused instead of built again)
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from passion_sweep import tracking
from passion_sweep.tables.comparison import build_comparison_table
from passion_sweep.tables.formats import render_table
from passion_sweep.tables.plots import plot_table
from passion_sweep.tables.results import RunSelection, load_trial_results
from trainables.modalities import REGIONS, SUBSET_MASKS, subset_name

BACKBONES = ("rfnet", "mmformer", "m2ftrans")
SPLITS = ("mr2468", "mr2258", "mr2285", "mr5528", "mr5582", "mr8825", "mr8852", "mr1379")
METHODS = ("baseline", "passion")
TARGET_SECONDS = 5.0
EXPERIMENT = "table-benchmark"


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, help="folder of the store (default: a new temporary folder)")
    parser.add_argument("--seeds", type=int, default=21)
    return parser.parse_args()


def _summary(rng: random.Random) -> dict:
    subsets = [subset_name(mask) for mask in SUBSET_MASKS]
    dice = {subset: {region: rng.uniform(0.3, 0.9) for region in REGIONS} for subset in subsets}
    hd95 = {subset: {region: rng.uniform(2.0, 40.0) for region in REGIONS} for subset in subsets}
    mean = {
        name: {r: sum(v[s][r] for s in subsets) / len(subsets) for r in REGIONS}
        for name, v in (("dice", dice), ("hd95", hd95))
    }
    return {
        "dice": dice,
        "hd95": hd95,
        "mean": mean,
        "eval": {"hd95_percentile": "pooled", "hd95_convention": "reference"},
    }


def build_store(folder: Path, seeds: int) -> str:
    """Fill ``folder/mlflow.db`` with one sweep of ``3 x 8 x 2 x seeds`` finished trials."""
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    rng = random.Random(0)
    cells = [(b, s, m, seed) for b in BACKBONES for s in SPLITS for m in METHODS for seed in range(seeds)]
    plan = tracking.SweepPlan(
        {f"backbone={b},split={s},method={m},seed={seed}": 1 for b, s, m, seed in cells}, "val/dice/WT", "max"
    )
    spec_file = folder / "spec.yaml"
    spec_file.write_text("name: table-benchmark\n")
    identity = tracking.SweepIdentity.new("table-benchmark", "0" * 16)
    sweep = tracking.start_sweep_tracking(uri, EXPERIMENT, identity, spec_file=spec_file, plan=plan)
    params = {f"train.param_{index}": str(index) for index in range(40)}
    started = time.perf_counter()
    for index, (backbone, split, method, seed) in enumerate(cells):
        tags = {
            tracking.TAG_CELL: list(plan.cells)[index],
            "backbone": backbone,
            "split": split,
            "method": method,
            "seed": str(seed),
        }
        run_id = tracking.open_trial_run(sweep, f"trial{index:05d}", run_name=f"trial{index}", tags=tags, params=params)
        for epoch in range(1, 11):
            curves = {
                name: rng.random() for name in ("loss", "loss/fuse", "loss/prm", "loss/sep", "val/dice/WT", "objective")
            }
            tracking.log_metrics(sweep, run_id, curves, step=epoch)
        tracking.log_test_results(sweep, run_id, _summary(rng), step=10, artifacts=())
        tracking.finish_trial_run(sweep, run_id)
        if (index + 1) % 200 == 0:
            print(f"  {index + 1}/{len(cells)} runs recorded ({time.perf_counter() - started:.0f} s)", flush=True)
    tracking.finish_sweep_tracking(sweep)
    return uri


def main() -> None:
    args = _arguments()
    folder = args.store or Path(tempfile.mkdtemp(prefix="table-benchmark-"))
    folder.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{folder.resolve() / 'mlflow.db'}"
    if not (folder / "mlflow.db").is_file():
        print(f"building the store in {folder} ...", flush=True)
        build_store(folder.resolve(), args.seeds)

    started = time.perf_counter()
    results = load_trial_results(uri, RunSelection(experiment=EXPERIMENT))
    loaded = time.perf_counter()
    table = build_comparison_table(results, columns=["backbone", "split", "method"], delta=True)
    render_table(table, "md")
    built = time.perf_counter()
    plot_table(table, folder / "table.png")
    plotted = time.perf_counter()

    command = [
        str(Path(sys.executable).with_name("passion-sweep")),
        "table",
        "--tracking-uri",
        uri,
        "--experiment",
        EXPERIMENT,
        "--columns",
        "backbone,split,method",
        "--out",
        str(folder / "table.md"),
    ]
    cli_started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    cli_seconds = time.perf_counter() - cli_started

    print(f"runs: {len(results.runs)}; configurations: {len(table.configurations)}")
    print(f"read from MLflow:          {loaded - started:6.2f} s")
    print(f"aggregate + render (md):   {built - loaded:6.2f} s")
    print(f"plot:                      {plotted - built:6.2f} s")
    print(
        f"`passion-sweep table` CLI: {cli_seconds:6.2f} s  "
        f"(target < {TARGET_SECONDS:.0f} s; ratio {cli_seconds / TARGET_SECONDS:.2f})"
    )


if __name__ == "__main__":
    main()
