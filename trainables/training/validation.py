"""Validation during training: whole-volume Dice of the full-modality prediction."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from trainables.backbones import Backbone
from trainables.data import VolumeDataset
from trainables.evaluation.inference import predict_all_subsets
from trainables.evaluation.metrics import brats_dice
from trainables.modalities import NUM_MODALITIES, REGIONS

__all__ = ["validate"]

_ALL_PRESENT = ((True,) * NUM_MODALITIES,)


def validate(
    model: Backbone, data_dir: str | Path, cases: Sequence[str], *, patch_size: int, device: torch.device
) -> dict[str, float]:
    """Mean Dice per region over ``cases`` with every modality present.

    Returns:
        ``{"val/dice/WT": ..., "val/dice/TC": ..., "val/dice/ET": ..., "val/dice/ETpp": ...}``.
    """
    model.eval()
    dataset = VolumeDataset(Path(data_dir), list(cases))
    scores = []
    for index in range(len(dataset)):
        item = dataset[index]
        prediction = predict_all_subsets(
            model, item["image"], patch_size=patch_size, subsets=_ALL_PRESENT, device=device
        )
        _, dice = brats_dice(prediction, item["label"][None])
        scores.append(dice[0])
    mean = torch.stack(scores).mean(dim=0)
    return {f"val/dice/{region}": float(value) for region, value in zip(REGIONS, mean)}
