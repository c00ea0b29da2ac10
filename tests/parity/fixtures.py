"""The reference's training-step fixtures (``tests/fixtures/reference/parity``, see its NOTICE.md).

Loads the fixed 80^3 batch, the recorded steps, and builds the initial weights by the
fixtures' seeded rule over the reference's parameter names, checked against the sums and
norms the fixtures record.
"""

from __future__ import annotations

import hashlib
import json
import math
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "reference" / "parity"
_BATCH_SHAPE = (1, 4, 80, 80, 80)
_BATCH_SEED = 7
# SHA-256 of the float32 bytes of batch-80.npz's ``x`` (which the rule reproduces).
_BATCH_SHA256 = "c463ee34e9fbd0b7515e7bb2011c6f2a1800145fe30750bd47be337dad99b776"
_INIT_SEED = 10_000
_INIT_RELATIVE_TOLERANCE = 1e-12


@cache
def expected_steps(fixture: str) -> dict[str, Any]:
    """``<fixture>-expected.json``, e.g. ``rfnet-passion``."""
    return json.loads((FIXTURES / f"{fixture}-expected.json").read_text())


@cache
def reference_parameters(backbone: str) -> list[dict[str, Any]]:
    """The entries of ``<backbone>-params.json``: the reference ``state_dict`` in order."""
    return json.loads((FIXTURES / f"{backbone}-params.json").read_text())["entries"]


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    """The shared batch: ``x`` float64 ``(1,4,80,80,80)`` and the labels int64 ``(1,80,80,80)``."""
    x = np.random.default_rng(_BATCH_SEED).standard_normal(_BATCH_SHAPE).astype(np.float32)
    assert hashlib.sha256(x.tobytes()).hexdigest() == _BATCH_SHA256, "numpy's generator changed: x differs"
    label = np.load(FIXTURES / "label-80.npz")["label"]
    return torch.from_numpy(x.astype(np.float64)), torch.from_numpy(label.astype(np.int64))[None]


def initial_value(entry: dict[str, Any]) -> np.ndarray:
    """One reference tensor's initial float64 value by the fixtures' rule."""
    shape = tuple(entry["shape"])
    z = np.random.default_rng(_INIT_SEED + entry["index"]).standard_normal(shape)
    if entry["rule"] == "fan_in":
        return z * (1.0 / math.sqrt(math.prod(shape[1:])))
    if entry["rule"] == "norm_weight":
        return 1.0 + 0.1 * z
    assert entry["rule"] == "small", entry
    return 0.1 * z


def initial_state(backbone: str) -> dict[str, torch.Tensor]:
    """The reference's initial ``state_dict`` (its names, float64), each tensor checked
    against the recorded ``init_sum`` and ``init_l2``."""
    state = {}
    for entry in reference_parameters(backbone):
        value = initial_value(entry)
        for recorded, actual in ((entry["init_sum"], value.sum()), (entry["init_l2"], np.linalg.norm(value))):
            assert math.isclose(actual, recorded, rel_tol=_INIT_RELATIVE_TOLERANCE, abs_tol=1e-12), entry["name"]
        state[entry["name"]] = torch.from_numpy(value)
    return state
