"""BraTS evaluation metrics: Dice of the tumour regions and the 95th percentile Hausdorff distance.

Label maps hold 0 background, 1 NCR/NET, 2 ED and 3 ET. The evaluated regions are
WT = {1, 2, 3}, TC = {1, 3}, ET = {3} and ETpp, the ET of a prediction after
post-processing: a predicted ET of fewer than ``et_min_voxels`` voxels (500 in the
reference) is set empty. For the ground truth ETpp is ET.

Shapes: ``B`` batch (cases), ``...`` spatial axes.
"""
from __future__ import annotations

import warnings
from typing import Literal

import torch
from monai.metrics import compute_hausdorff_distance
from torch import Tensor

from trainables.errors import ConfigError

__all__ = [
    "DICE_EPS",
    "ET_MIN_VOXELS",
    "BRATS_MAX_HD95",
    "HD95Convention",
    "HD95_CONVENTIONS",
    "check_hd95_convention",
    "region_masks",
    "dice_score",
    "brats_dice",
    "hd95",
    "brats_hd95",
]

DICE_EPS = 1e-8
ET_MIN_VOXELS = 500
# Diagonal of the 240 x 240 x 155 BraTS volume: the HD95 the BraTS challenge reports
# when exactly one of prediction and ground truth is empty.
BRATS_MAX_HD95 = 373.13
# HD95 when exactly one mask is empty, per convention (both empty is always 0).
_ONE_EMPTY_HD95 = {"reference": 1.0, "max": BRATS_MAX_HD95}

HD95Convention = Literal["reference", "max"]
HD95_CONVENTIONS: tuple[str, ...] = tuple(_ONE_EMPTY_HD95)


def region_masks(labels: Tensor, *, et_min_voxels: int = 0) -> Tensor:
    """Masks of the four evaluated regions of each case.

    Args:
        labels: ``B...`` integer label maps.
        et_min_voxels: ETpp is empty in the cases whose ET has fewer voxels than this
            (0 for a ground truth, whose ETpp is its ET).

    Returns:
        ``B4...`` bool masks of WT, TC, ET and ETpp.
    """
    # Comparisons rather than torch.isin, which is several times slower on CPU.
    wt = (labels >= 1) & (labels <= 3)
    tc = (labels == 1) | (labels == 3)
    et = labels == 3
    et_voxels = torch.count_nonzero(et.flatten(1), dim=1)
    keep = (et_voxels >= et_min_voxels).reshape(-1, *([1] * (et.dim() - 1)))
    return torch.stack((wt, tc, et, et & keep), dim=1)


def dice_score(pred_mask: Tensor, true_mask: Tensor) -> Tensor:
    """Dice ``(2|O∩T| + eps) / (|O| + |T| + eps)`` per case and channel, ``eps = 1e-8``.

    Two empty masks score 1; an empty mask against a non-empty one scores about 0.

    Args:
        pred_mask: ``BC...`` bool predicted masks.
        true_mask: ``BC...`` bool ground-truth masks, or ``1C...`` to score every
            prediction against one truth.

    Returns:
        ``BC`` float64 scores.
    """
    overlap = _count(pred_mask & true_mask)
    total = _count(pred_mask) + _count(true_mask)
    return (2 * overlap + DICE_EPS) / (total + DICE_EPS)


def _count(mask: Tensor) -> Tensor:
    """``BC`` float64 number of true voxels of ``BC...`` masks."""
    return torch.count_nonzero(mask.flatten(2), dim=2).to(torch.float64)


def brats_dice(
    pred_labels: Tensor, true_labels: Tensor, *, et_min_voxels: int = ET_MIN_VOXELS
) -> tuple[Tensor, Tensor]:
    """Dice of the three tumour classes and of the four BraTS regions, per case.

    The reference applies the ET threshold to the voxel count of the whole batch;
    here it applies to each case, which is what a per-case evaluation means (the two
    agree for a batch of one).

    Args:
        pred_labels: ``B...`` predicted label maps (first axis the case; ``x[None]``
            for one case).
        true_labels: ``B...`` ground-truth label maps, or ``1...`` to score every
            prediction against one truth.
        et_min_voxels: predicted ET smaller than this is emptied for ETpp.

    Returns:
        ``dice_separate``: ``B3`` float64 Dice of NCR/NET, ED and ET;
        ``dice_regions``: ``B4`` float64 Dice of WT, TC, ET and ETpp.
    """
    classes = torch.arange(1, 4, device=pred_labels.device).reshape(1, 3, *([1] * (pred_labels.dim() - 1)))
    dice_separate = dice_score(pred_labels.unsqueeze(1) == classes, true_labels.unsqueeze(1) == classes)
    dice_regions = dice_score(
        region_masks(pred_labels, et_min_voxels=et_min_voxels), region_masks(true_labels)
    )
    return dice_separate, dice_regions


def check_hd95_convention(name: str) -> None:
    """Raise :class:`ConfigError` unless ``name`` is one of :data:`HD95_CONVENTIONS`."""
    if name not in _ONE_EMPTY_HD95:
        raise ConfigError(
            f"hd95 convention must be one of {', '.join(HD95_CONVENTIONS)} "
            f"(hd95_convention=, --hd95-convention), got {name!r}"
        )


def hd95(pred_mask: Tensor, true_mask: Tensor, *, empty_convention: HD95Convention = "reference") -> float:
    """95th percentile Hausdorff distance between two masks of one case, unit spacing.

    Computed with MONAI (``compute_hausdorff_distance(..., percentile=95)``): MONAI
    takes the boundary voxels of both masks, the Euclidean distance of every boundary
    voxel of each mask to the nearest boundary voxel of the other, the 95th
    percentile (linear interpolation) of each of the two directed distance sets, and
    returns the larger of the two. That symmetric max-of-directed-percentiles is the
    semantics used here (medpy's ``hd95`` instead takes the percentile of the two
    sets pooled, which can be smaller).

    Args:
        pred_mask: ``HWD`` bool predicted mask.
        true_mask: ``HWD`` bool ground-truth mask.
        empty_convention: value when exactly one mask is empty: ``"reference"`` gives
            1.0 (the PASSION reference), ``"max"`` gives 373.13 (BraTS, the volume
            diagonal). Two empty masks give 0 in both.

    Raises:
        ConfigError: for an unknown convention.
    """
    check_hd95_convention(empty_convention)
    pred_any, true_any = bool(pred_mask.any()), bool(true_mask.any())
    if not pred_any and not true_any:
        return 0.0
    if pred_any != true_any:
        return _ONE_EMPTY_HD95[empty_convention]
    with warnings.catch_warnings():
        # MONAI 1.5+ passes its own deprecated argument internally; nothing to act on here.
        warnings.filterwarnings("ignore", message=".*always_return_as_numpy", category=FutureWarning)
        distance = compute_hausdorff_distance(
            pred_mask[None, None], true_mask[None, None], include_background=True, percentile=95
        )
    return float(distance.item())


def brats_hd95(
    pred_labels: Tensor,
    true_labels: Tensor,
    *,
    et_min_voxels: int = ET_MIN_VOXELS,
    empty_convention: HD95Convention = "reference",
) -> Tensor:
    """HD95 of the four BraTS regions (WT, TC, ET, ETpp) per case, see :func:`hd95`.

    Args:
        pred_labels: ``B...`` predicted label maps.
        true_labels: ``B...`` ground-truth label maps.
        et_min_voxels: predicted ET smaller than this is emptied for ETpp.
        empty_convention: ``"reference"`` or ``"max"``, see :func:`hd95`.

    Returns:
        ``B4`` float64 distances in voxels.
    """
    pred = region_masks(pred_labels, et_min_voxels=et_min_voxels).cpu()
    true = region_masks(true_labels).cpu()
    values = [
        [hd95(pred[case, region], true[case, region], empty_convention=empty_convention) for region in range(4)]
        for case in range(pred.shape[0])
    ]
    return torch.tensor(values, dtype=torch.float64).reshape(-1, 4)
