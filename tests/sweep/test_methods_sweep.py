"""A toy comparison of every balancing method on the phantom: one sweep, one table with deltas."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from passion_sweep.sweep.launcher import run_sweep
from passion_sweep.sweep.spec import parse_spec
from passion_sweep.tables.comparison import build_comparison_table
from passion_sweep.tables.results import RunSelection, load_trial_results

from .conftest import tiny_spec

pytestmark = pytest.mark.slow

METHODS = ["baseline", "passion", "moddrop", "pmr", "ogm-ge", "mmpareto"]


def test_every_method_runs_in_one_sweep_and_compares_with_the_baseline(
    ray_cluster: str, phantom_cache: Path, tmp_path: Path
) -> None:
    values = tiny_spec(
        tmp_path,
        cache=phantom_cache,
        name="methods",
        grid={"method": METHODS},
        search={
            "trials_per_cell": 1,
            "space": {"pmr.alpha": {"type": "float", "low": 0.5, "high": 2.0}},
        },
        train={"epochs": 1, "num_workers": 0, "augment": False, "val_every": 100, "lr": 0.005},
    )
    spec = parse_spec(values)

    outcome = run_sweep(spec)

    assert outcome.complete and outcome.failed == 0 and outcome.total == len(METHODS)
    client = MlflowClient(str(spec.tracking.uri))
    experiment = client.get_experiment_by_name(str(spec.tracking.experiment))
    children = [run for run in client.search_runs([experiment.experiment_id]) if "mlflow.parentRunId" in run.data.tags]
    by_method = {run.data.tags["method"]: run for run in children}
    assert sorted(by_method) == sorted(METHODS)
    for method, run in by_method.items():
        assert run.data.params["method.name"] == method
        assert run.info.status == "FINISHED"
    assert 0.5 <= float(by_method["pmr"].data.params["pmr.alpha"]) <= 2.0
    assert "pmr.alpha" not in by_method["ogm-ge"].data.params
    assert "ogm/k/flair" in by_method["ogm-ge"].data.metrics or "ogm/k/t1" in by_method["ogm-ge"].data.metrics

    results = load_trial_results(str(spec.tracking.uri), RunSelection(experiment=str(spec.tracking.experiment)))
    table = build_comparison_table(results, columns=["method"], delta=True)
    labels = list(dict.fromkeys(table.deltas.columns.get_level_values(0)))
    assert labels == [f"Δ {method}" for method in METHODS[1:]]
