"""Every backbone learns: a short PASSION training on the phantom beats the untrained model on a held-out case."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.learning import short_training
from trainables.backbones import backbone_names

# Why lr 3e-2, not the reference's 2e-4 (or the 1e-2 this test used before): 8 epochs of
# the four training cases are 32 AdamW steps, and AdamW moves a weight by at most about
# lr per step: over the poly-decayed schedule about 19 lr in all. The reference's
# kaiming-normal init gives RFNet's output convolution (4 input channels at width 4)
# weights of std 0.7, which favour one tumour class everywhere at init, and the
# class-weighted cross-entropy weighs background by only 1 - (its share), about 0.05: undoing
# that takes weight changes of the order of the weights. At lr 1e-2 (0.19 in all) RFNet still
# predicted tumour on half of the held-out volume (WT 0.06-0.37 by seed; 2e-2 or 64 steps did
# not help; PyTorch's smaller default init did, 0.57). At 3e-2, seeds 1037, 2 and 1 reach
# WT 0.79 / 0.66 / 0.73 (RFNet), 0.95 / 0.87 / 0.91 (mmFormer), 0.88 / 0.66 / 0.82 (M2FTrans),
# from 0.04-0.07 untrained; each training takes 40-50 s of CPU.
LEARNING_RATE = 3e-2


@pytest.mark.slow
@pytest.mark.parametrize("name", backbone_names())
def test_short_passion_training_learns(name: str, prepared_phantom: Path, tmp_path: Path) -> None:
    run = short_training(
        prepared_phantom, tmp_path / "run", [f"model.backbone={name}", "train.epochs=8", f"train.lr={LEARNING_RATE}"]
    )

    assert run.loss_fell(), run.losses
    # Untrained models score 0.04-0.07 (tumour everywhere); trained ones 0.66-0.95 (above).
    assert run.trained >= run.untrained + 0.25, (run.untrained, run.trained)
