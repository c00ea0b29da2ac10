"""Fixtures of the sweep tests: a tiny spec, and one local Ray for the whole session.

Ray starts once (``ray.init`` takes 6-16 s here) with a private temp folder, so that it
never attaches to another Ray on the machine and stops only itself.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def tiny_spec(storage: Path, *, cache: Path | None = None, **sections: Any) -> dict[str, Any]:
    """A valid spec dict of a tiny CPU sweep: phantom of 6 cases of 32^3 (cached in
    ``cache``, default under ``storage``), width 4, patch 16, two epochs, a baseline
    cell and a searched PASSION cell (2 trials). ``sections`` replace whole top-level
    sections."""
    phantom = {"cases": 6, "shape": [32, 32, 32], "seed": 0, **({"cache": str(cache)} if cache else {})}
    spec: dict[str, Any] = {
        "name": "tiny",
        "data": {"phantom": phantom},
        "splits": {"mr2468": {"missing_rates": "mr2468"}},
        "grid": {"method": ["baseline", "passion"]},
        "search": {
            "trials_per_cell": 2,
            "apply_to": {"method": ["passion"]},
            "space": {"passion.temperature": {"type": "float", "low": 1.0, "high": 8.0, "log": True}},
        },
        "model": {"width": 4, "patch_size": 16},
        "train": {"epochs": 2, "num_workers": 0, "augment": False, "val_every": 100, "lr": 0.005},
        "eval": {"overlap": 0.0},
        "ray": {"storage_path": str(storage), "max_concurrent_trials": 2},
    }
    spec.update(sections)
    return spec


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[str]:
    """A local Ray with 2 CPUs for the session; yields its address for other drivers."""
    import ray

    temp = tempfile.mkdtemp(prefix="ps-ray-", dir="/tmp")  # short: Ray's socket paths have a length limit
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_TMPDIR", temp)
        patch.setenv("RAY_USAGE_STATS_ENABLED", "0")
        ray.init(address="local", num_cpus=2, include_dashboard=False, _temp_dir=temp)
        try:
            yield ray.get_runtime_context().gcs_address
        finally:
            ray.shutdown()
            shutil.rmtree(temp, ignore_errors=True)
