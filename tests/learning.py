"""Short trainings on the phantom, shared by the learning tests of the backbones and of the balancing methods."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from trainables.backbones import Backbone, build_backbone
from trainables.config import RunConfig
from trainables.data import read_case_list
from trainables.data.datasets import VolumeDataset
from trainables.evaluation import brats_dice, predict_all_subsets
from trainables.training import EpochReport, fit

PATCH = 32  # a multiple of every backbone's downsampling (8 or 16), with a bottleneck of 2^3 voxels or more
WIDTH = 4
ALL_MODALITIES = (True, True, True, True)


def held_out_wt_dice(model: Backbone, data_dir: Path) -> float:
    """Mean WT Dice over the test cases with every modality present."""
    dataset = VolumeDataset(data_dir, read_case_list(data_dir / "test.txt"))
    scores = []
    for index in range(len(dataset)):
        case = dataset[index]
        prediction = predict_all_subsets(model.eval(), case["image"], patch_size=PATCH, subsets=[ALL_MODALITIES])
        scores.append(float(brats_dice(prediction, case["label"][None])[1][0, 0]))
    return sum(scores) / len(scores)


@dataclass(frozen=True)
class ShortTraining:
    """Held-out WT Dice before and after a short training, and its epoch reports."""

    untrained: float
    trained: float
    reports: list[EpochReport]

    @property
    def losses(self) -> list[float]:
        return [report.metrics["loss"] for report in self.reports]

    def loss_fell(self) -> bool:
        """Per-epoch losses are noisy (a random modality subset per step): the mean of the
        last three epochs is below 0.9 times the first epoch's."""
        return sum(self.losses[-3:]) / 3 < 0.9 * self.losses[0]


def short_training(data_dir: Path, out_dir: Path, overrides: list[str]) -> ShortTraining:
    """Train on the prepared phantom ``data_dir`` without augmentation or validation, every
    modality present (``pdt``), at :data:`WIDTH` and :data:`PATCH`; ``overrides`` (``--set``
    assignments) choose the backbone, method and optimisation."""
    config = RunConfig().with_overrides(
        [
            f"data.root={data_dir}",
            "data.split=null",
            "data.val_list=null",
            "train.mask_type=pdt",
            f"model.width={WIDTH}",
            f"model.patch_size={PATCH}",
            "train.augment=false",
            "train.num_workers=0",
            *overrides,
        ]
    )
    torch.manual_seed(config.train.seed)  # the weights fit starts from
    untrained = build_backbone(config.model.backbone, width=WIDTH, patch_size=PATCH)
    before = held_out_wt_dice(untrained, data_dir)
    reports: list[EpochReport] = []
    after = held_out_wt_dice(fit(config, out_dir, report=reports.append), data_dir)
    return ShortTraining(before, after, reports)
