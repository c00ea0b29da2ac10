"""Per-trial overhead of a sweep: the real launcher, trials of almost no compute.

Runs ``--trials`` (default 6) one-epoch, one-iteration trials of a tiny RFNet (width 4,
patch 16) on a tiny phantom (5 cases of 32^3, validation off, 1 test case) through
:func:`passion_sweep.sweep.launcher.run_sweep` on a local Ray (2 CPUs, as the tests start it),
one trial at a time, so every second that is not compute is the project's own per-trial
cost: Tune scheduling and actor reuse, MLflow run creation and logging, checkpoints,
the evaluation folder, driver callbacks.

In-trial compute is what the trials themselves report: ``epoch_seconds`` (the training
epoch) plus the wall time of ``evaluate_model``, which a worker setup hook times inside
the trial (the hook wraps the trial's phases with timers and also times the worker's
imports; ``--no-probe`` leaves it out and counts ``epoch_seconds`` only).

Printed: total wall time of the sweep, compute, and the overhead per trial after the
first one, i.e. (sweep time after the first trial ended - compute of the later trials)
/ (trials - 1). The first trial carries the one-off costs (worker start, torch
import, MLflow store creation), printed separately. Target on this 2-core machine: at
most 3 s of overhead per trial after the first.

    python benchmarks/sweep_overhead.py [--trials 6] [--concurrent 1] [--no-probe] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

TARGET_SECONDS = 3.0
_PROBE_PATH: str | None = None  # set in main(); captured by value when Ray pickles the hook


def _probe_setup() -> None:
    """Ray worker setup hook: time the worker's imports and each phase of every trial.

    Runs in every Ray worker process at start. Writes one JSON line per timed phase
    (``phase``, ``trial``, ``pid``, ``start``, ``end`` in ``time.time()`` seconds) to
    ``_PROBE_PATH``. Functions are wrapped where the trial looks them up at call time
    (module attributes), so the real code runs unchanged.
    """
    import functools
    import json as _json
    import os as _os
    import time as _time

    path = _PROBE_PATH
    state: dict[str, Any] = {"trial": None, "stack": []}

    def record(phase: str, start: float, end: float) -> None:
        parent = state["stack"][-1] if state["stack"] else None
        line = {
            "phase": phase,
            "parent": parent,
            "trial": state["trial"],
            "pid": _os.getpid(),
            "start": start,
            "end": end,
        }
        with open(path, "a") as handle:
            handle.write(_json.dumps(line) + "\n")

    started = _time.time()
    import torch  # noqa: F401

    record("worker_import_torch", started, _time.time())
    started = _time.time()
    from passion_sweep import tracking
    from passion_sweep.sweep import launcher, trial

    record("worker_import_project", started, _time.time())

    def timed(owner: Any, name: str, phase: str) -> None:
        original = getattr(owner, name)

        @functools.wraps(original)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            begin = _time.time()
            state["stack"].append(phase)
            try:
                return original(*args, **kwargs)
            finally:
                state["stack"].pop()
                record(phase, begin, _time.time())

        setattr(owner, name, wrapper)

    original_run_trial = launcher.run_trial

    @functools.wraps(original_run_trial)
    def run_trial(context: Any, cell_index: int, params: Any, session: Any) -> None:
        state["trial"] = session.trial_id
        begin = _time.time()
        state["stack"].append("run_trial")
        try:
            original_run_trial(context, cell_index, params, session)
        finally:
            state["stack"].pop()
            record("run_trial", begin, _time.time())

    launcher.run_trial = run_trial
    timed(launcher._TuneSession, "__init__", "session_init")
    timed(launcher._TuneSession, "restore_checkpoint", "restore_checkpoint")
    timed(launcher._TuneSession, "report", "tune_report")
    timed(trial, "fit", "fit")
    timed(trial, "evaluate_model", "evaluate_model")
    timed(trial, "write_evaluation", "write_evaluation")
    timed(trial, "_configure_torch", "configure_torch")
    for name in ("open_trial_run", "log_metrics", "log_test_results", "finish_trial_run"):
        timed(tracking, f"{name}", f"mlflow_{name}")


def tiny_spec(storage: Path, cache: Path, trials: int, concurrent: int) -> dict[str, Any]:
    """A spec of ``trials`` grid cells (seeds), one trivial trial each."""
    return {
        "name": "overhead",
        "data": {"phantom": {"cases": 5, "shape": [32, 32, 32], "seed": 0, "cache": str(cache)}, "val_list": None},
        "splits": {"mr2468": {"missing_rates": "mr2468"}},
        "grid": {"method": ["baseline"], "seed": list(range(1, trials + 1))},
        "search": {"metric": "loss", "mode": "min"},
        "model": {"width": 4, "patch_size": 16},
        "train": {
            "epochs": 1,
            "iters_per_epoch": 1,
            "num_workers": 0,
            "augment": False,
            "val_every": 100,
            "device": "cpu",
        },
        "eval": {"overlap": 0.0},
        "resources": {"cpu": 1, "gpu": 0},
        "ray": {"storage_path": str(storage), "max_concurrent_trials": concurrent, "max_failures": 0},
    }


def _last_results(sweep_dir: Path) -> dict[str, dict[str, Any]]:
    """The last Tune result of every trial, by trial id."""
    results = {}
    for path in sorted(sweep_dir.glob("trial_*/result.json")):
        lines = [line for line in path.read_text().splitlines() if line.strip()]
        if lines:
            result = json.loads(lines[-1])
            results[result["trial_id"]] = result
    return results


def _read_probe(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def main() -> int:
    global _PROBE_PATH
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--concurrent", type=int, default=1, help="max concurrent trials (1: strictly sequential)")
    parser.add_argument("--no-probe", action="store_true", help="no worker setup hook: compute = epoch_seconds only")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    if args.trials < 2:
        parser.error("--trials must be at least 2")

    work = Path(tempfile.mkdtemp(prefix="ps-ovh-", dir="/tmp"))  # short: Ray's socket paths have a length limit
    ray_temp = work / "ray"
    ray_temp.mkdir()
    os.environ["RAY_TMPDIR"] = str(ray_temp)
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    probe_path = work / "probe.jsonl"
    _PROBE_PATH = None if args.no_probe else str(probe_path)

    import logging

    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    started = time.time()
    import ray

    from passion_sweep.phantom import ensure_phantom
    from passion_sweep.sweep.launcher import run_sweep
    from passion_sweep.sweep.spec import parse_spec

    imports = time.time() - started
    try:
        spec = parse_spec(tiny_spec(work / "sweeps", work / "phantom", args.trials, args.concurrent))
        phantom = spec.data.phantom
        started = time.time()
        ensure_phantom(phantom.cache, cases=phantom.cases, shape=phantom.shape, seed=phantom.seed)
        phantom_s = time.time() - started

        started = time.time()
        runtime_env = {} if args.no_probe else {"worker_process_setup_hook": _probe_setup}
        ray.init(address="local", num_cpus=2, include_dashboard=False, _temp_dir=str(ray_temp), runtime_env=runtime_env)
        ray_init_s = time.time() - started
        try:
            sweep_start = time.time()
            outcome = run_sweep(spec)
            sweep_end = time.time()
        finally:
            ray.shutdown()
        if outcome.failed or not outcome.complete:
            print(f"sweep did not complete: {outcome}", file=sys.stderr)
            return 1

        results = _last_results(spec.sweep_dir)
        probe = _read_probe(probe_path)
        phases: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
        for line in probe:
            if line["trial"] is not None:
                phases[line["trial"]][line["phase"]].append(line)

        def duration(trial: str, phase: str) -> float:
            return sum(item["end"] - item["start"] for item in phases[trial][phase])

        def children(trial: str, parent: str) -> float:
            return sum(
                item["end"] - item["start"]
                for items in phases[trial].values()
                for item in items
                if item.get("parent") == parent
            )

        # Trials in the order they ran: by run_trial start (probe), else by Tune's start time.
        def began(trial: str) -> float:
            runs = phases[trial]["run_trial"]
            if runs:
                return min(item["start"] for item in runs)
            return results[trial]["timestamp"] - results[trial]["time_total_s"]

        def ended(trial: str) -> float:
            runs = phases[trial]["run_trial"]
            return max(item["end"] for item in runs) if runs else float(results[trial]["timestamp"])

        order = sorted(results, key=began)
        compute = {
            trial: float(results[trial].get("epoch_seconds", 0.0)) + duration(trial, "evaluate_model")
            for trial in order
        }
        total = sweep_end - sweep_start
        total_compute = sum(compute.values())
        first_end = ended(order[0])
        later = order[1:]
        after_first = sweep_end - first_end
        overhead_after_first = (after_first - sum(compute[trial] for trial in later)) / len(later)
        first_overhead = (first_end - sweep_start) - compute[order[0]]

        print(f"sweep of {len(order)} trivial trials, {args.concurrent} at a time, real launcher (reuse_actors=True)")
        print(
            f"setup, not counted: driver imports {imports:.1f} s, phantom {phantom_s:.1f} s, ray.init {ray_init_s:.1f} s"
        )
        print(f"total wall time of run_sweep:           {total:7.2f} s")
        print(
            f"in-trial compute (epoch + evaluation):  {total_compute:7.2f} s"
            + ("" if not args.no_probe else "  (epoch_seconds only: --no-probe counts the evaluation as overhead)")
        )
        print(f"overhead, total - compute:              {total - total_compute:7.2f} s")
        print(f"  first trial (start-up to its end, less its compute): {first_overhead:6.2f} s")
        print(
            f"  per trial after the first: ({after_first:.2f} s - {sum(compute[t] for t in later):.2f} s compute)"
            f" / {len(later)} = {overhead_after_first:.2f} s"
        )
        print(f"  (wall time per trial after the first: {after_first / len(later):.2f} s)")
        verdict = "MET" if overhead_after_first <= TARGET_SECONDS else "MISSED"
        print(f"target: <= {TARGET_SECONDS:.1f} s overhead per trial after the first: {verdict}")
        pids = sorted({int(results[trial]["pid"]) for trial in order})
        print(f"trial worker processes: {len(pids)} for {len(order)} trials (pids {', '.join(map(str, pids))})")

        if probe:
            print()
            print("where a trial's time goes (probe, seconds; median of the trials after the first, and the first):")
            imports_by_pid = defaultdict(float)
            for line in probe:
                if line["phase"].startswith("worker_import"):
                    imports_by_pid[(line["pid"], line["phase"])] += line["end"] - line["start"]
            torch_imports = [v for (_, phase), v in imports_by_pid.items() if phase == "worker_import_torch"]
            project_imports = [v for (_, phase), v in imports_by_pid.items() if phase == "worker_import_project"]
            if torch_imports:
                print(
                    f"  worker start imports (once per Ray worker process, {len(torch_imports)} processes): "
                    f"torch {statistics.median(torch_imports):.2f} s, project {statistics.median(project_imports):.2f} s"
                )
            rows = [
                ("gap before the trial (Tune scheduling, actor reuse, driver callbacks)", None),
                ("run_trial, whole", "run_trial"),
                ("  epoch_seconds (compute)", "epoch_seconds"),
                ("  fit less epoch (model build, data set, checkpoint file)", "fit_rest"),
                ("  evaluate_model (compute)", "evaluate_model"),
                ("  write_evaluation", "write_evaluation"),
                ("  MLflow open_trial_run (search + create run + params)", "mlflow_open_trial_run"),
                ("  MLflow log_metrics (epoch metrics; also inside log_test_results)", "mlflow_log_metrics"),
                ("  MLflow log_test_results (metrics + 2 artifacts)", "mlflow_log_test_results"),
                ("  MLflow finish_trial_run", "mlflow_finish_trial_run"),
                ("  tune.report with checkpoint", "tune_report"),
                ("  rest of run_trial (session, config, temp dir...)", "rest"),
            ]

            def value(trial: str, key: str | None, index: int) -> float:
                if key is None:
                    previous = order[index - 1] if index > 0 else None
                    return began(trial) - (ended(previous) if previous else sweep_start)
                if key == "epoch_seconds":
                    return float(results[trial].get("epoch_seconds", 0.0))
                if key == "fit_rest":  # the epoch's MLflow logging inside fit is shown on its own row
                    epoch = float(results[trial].get("epoch_seconds", 0.0))
                    return duration(trial, "fit") - epoch - children(trial, "fit")
                if key == "rest":
                    return duration(trial, "run_trial") - children(trial, "run_trial")
                return duration(trial, key)

            for label, key in rows:
                later_values = [value(trial, key, index) for index, trial in enumerate(order) if index > 0]
                first = value(order[0], key, 0)
                print(f"  {label:<72} {statistics.median(later_values):6.2f}   (first {first:6.2f})")
            print(
                f"  {'after the last trial (Tune teardown, MLflow clean-up, finish)':<72} {sweep_end - ended(order[-1]):6.2f}"
            )
        return 0
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
