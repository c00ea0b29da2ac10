"""The tiny spec of the sweep tests (their local Ray, ``ray_cluster``, is in ``tests/conftest.py``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


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
