"""It learns: a short CPU training on the phantom segments held-out cases well above chance."""
from __future__ import annotations

from pathlib import Path

import pytest

from trainables.config import RunConfig
from trainables.data import read_case_list
from trainables.evaluation.evaluate import evaluate_model
from trainables.training.loop import fit

FULL = "flair-t1ce-t1-t2"


@pytest.mark.slow
def test_short_training_beats_chance_on_held_out_cases(prepared_phantom: Path, tmp_path: Path) -> None:
    config = RunConfig().with_overrides(
        [
            f"data.root={prepared_phantom}",
            "data.split=null",
            "data.val_list=null",
            "train.mask_type=pdt",
            "model.width=4",
            "model.patch_size=32",
            "train.epochs=15",
            "train.lr=5e-3",
            "train.augment=false",
            "train.num_workers=0",
        ]
    )
    model = fit(config, tmp_path / "run")
    test_cases = read_case_list(prepared_phantom / "test.txt")
    dice = evaluate_model(model, prepared_phantom, test_cases, patch_size=32, progress=False).summary["dice"]

    # An untrained model scores about 0.06 on WT (tumour everywhere); 0.4 needs real learning.
    assert dice[FULL]["WT"] >= 0.4, dice[FULL]
