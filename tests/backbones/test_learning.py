"""Every backbone learns: a short PASSION training on the phantom beats the untrained model on a held-out case."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.learning import short_training
from trainables.backbones import backbone_names


@pytest.mark.slow
@pytest.mark.parametrize("name", backbone_names())
def test_short_passion_training_learns(name: str, prepared_phantom: Path, tmp_path: Path) -> None:
    run = short_training(prepared_phantom, tmp_path / "run", [f"model.backbone={name}", "train.epochs=8"])

    assert run.loss_fell(), run.losses
    # Untrained models score 0.04-0.07 (tumour everywhere); trained ones 0.66-0.95 (tests/learning.py).
    assert run.trained >= run.untrained + 0.25, (run.untrained, run.trained)
