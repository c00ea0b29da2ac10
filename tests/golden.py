"""The reference implementation's golden values (``tests/fixtures/reference/golden.json``) and their inputs.

``PASSION_GOLDEN`` points to another copy. Inputs are drawn exactly as its ``how_inputs_are_drawn`` says and checked
against its fingerprints, so a changed torch RNG fails loudly instead of silently.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

GOLDEN_PATH = Path(os.environ.get("PASSION_GOLDEN", Path(__file__).resolve().parent / "fixtures/reference/golden.json"))


def load_golden() -> dict[str, Any]:
    if not GOLDEN_PATH.is_file():
        pytest.fail(f"{GOLDEN_PATH} not found: set PASSION_GOLDEN to a copy of the reference's golden.json")
    return json.loads(GOLDEN_PATH.read_text())


def draw_inputs(golden: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Every golden input, drawn in the reference's order and checked against its fingerprint."""
    torch.manual_seed(0)
    drawn = {
        "logits": torch.randn(2, 4, 16, 16, 16),
        "labels": torch.randint(0, 4, (2, 16, 16, 16)),
        "logit_s": torch.randn(2, 4, 16, 16, 16),
        "logit_t": torch.randn(2, 4, 16, 16, 16),
        "feat_s": torch.randn(2, 8, 16, 16, 16),
        "feat_t": torch.randn(2, 8, 16, 16, 16),
        "low": torch.randn(2, 4, 8, 8, 8),
        "low_t": torch.randn(2, 4, 8, 8, 8),
        "pred_lab": torch.randint(0, 4, (2, 16, 16, 16)),
        "gt_lab": torch.randint(0, 4, (2, 16, 16, 16)),
        "u": torch.rand(2, 16, 16, 16),
    }
    drawn["target"] = F.one_hot(drawn["labels"], 4).permute(0, 4, 1, 2, 3).float()
    for name, tensor in drawn.items():
        fingerprint, values = golden["inputs"][name], tensor.double()
        assert list(tensor.shape) == fingerprint["shape"], name
        assert values.sum().item() == pytest.approx(fingerprint["sum"], rel=1e-6), name
        assert values.abs().sum().item() == pytest.approx(fingerprint["abs_sum"], rel=1e-6), name
        assert values.flatten()[:5].tolist() == pytest.approx(fingerprint["first5"], abs=1e-7), name
        assert values.flatten()[-5:].tolist() == pytest.approx(fingerprint["last5"], abs=1e-7), name
    return drawn
