"""BraTS evaluation metrics: Dice of the tumour regions and the 95th percentile Hausdorff distance.

Label maps hold 0 background, 1 NCR/NET, 2 ED and 3 ET. The evaluated regions are
WT = {1, 2, 3}, TC = {1, 3}, ET = {3} and ETpp, the ET of a prediction after
post-processing: a predicted ET of fewer than ``et_min_voxels`` voxels (500 in the
reference) is set empty. For the ground truth ETpp is ET.

Shapes: ``B`` batch (cases), ``...`` spatial axes.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage, spatial
from torch import Tensor

from trainables.evaluation.conventions import (
    ONE_EMPTY_HD95,
    HD95Convention,
    HD95Percentile,
    check_hd95_convention,
    check_hd95_percentile,
)

__all__ = [
    "DICE_EPS",
    "ET_MIN_VOXELS",
    "surface_voxels",
    "directed_surface_distances",
    "region_masks",
    "dice_score",
    "brats_dice",
    "hd95",
    "brats_hd95",
]

DICE_EPS = 1e-8
ET_MIN_VOXELS = 500


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
    dice_regions = dice_score(region_masks(pred_labels, et_min_voxels=et_min_voxels), region_masks(true_labels))
    return dice_separate, dice_regions


def surface_voxels(mask: np.ndarray) -> np.ndarray:
    """The mask minus its binary erosion with the 6-neighbourhood (connectivity 1).

    Voxels outside the array count as background, so mask voxels on the array's border
    are surface voxels (medpy's and MONAI's definition).

    Args:
        mask: ``...`` bool mask.

    Returns:
        ``...`` bool mask of the surface voxels.
    """
    # Connectivity 1 (faces only): medpy's default, and the structure MONAI erodes with.
    neighbours = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask & ~ndimage.binary_erosion(mask, structure=neighbours)


def _bounding_box(mask: np.ndarray) -> tuple[slice, ...]:
    """The smallest box holding every true voxel of a non-empty mask."""
    box = []
    for axis in range(mask.ndim):
        hits = np.flatnonzero(mask.any(axis=tuple(other for other in range(mask.ndim) if other != axis)))
        box.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return tuple(box)


def directed_surface_distances(pred_mask: np.ndarray, true_mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distances (unit spacing) between the surfaces of two non-empty masks.

    The surfaces are found in the bounding box of both masks (outside it both are
    background, so they are those of the whole arrays); the nearest surface voxel of the
    other mask comes from a k-d tree over its coordinates. The distances are those of
    medpy's distance transform: exact, the square root of an integer.

    Args:
        pred_mask: ``...`` bool mask, not empty.
        true_mask: ``...`` bool mask of the same shape, not empty.

    Returns:
        The distance of every surface voxel of ``pred_mask`` to the nearest surface voxel
        of ``true_mask``, and the other way round (float64, in array order).
    """
    box = _bounding_box(pred_mask | true_mask)
    pred_points = np.argwhere(surface_voxels(pred_mask[box]))
    true_points = np.argwhere(surface_voxels(true_mask[box]))
    pred_to_true, _ = spatial.KDTree(true_points).query(pred_points)
    true_to_pred, _ = spatial.KDTree(pred_points).query(true_points)
    return pred_to_true, true_to_pred


def hd95(
    pred_mask: Tensor | np.ndarray,
    true_mask: Tensor | np.ndarray,
    *,
    percentile: HD95Percentile = "pooled",
    empty_convention: HD95Convention = "reference",
) -> float:
    """95th percentile Hausdorff distance between two masks of one case, unit spacing.

    The surfaces are the masks minus their erosion (:func:`surface_voxels`); the
    distances those of every surface voxel of each mask to the nearest surface voxel
    of the other (:func:`directed_surface_distances`). ``"pooled"`` takes the 95th
    percentile (linear interpolation) of both directed sets together: medpy's
    ``hd95``, which the PASSION reference calls. ``"max_directed"`` takes the larger of
    the two directed 95th percentiles: MONAI's ``compute_hausdorff_distance(...,
    percentile=95)``, which the project used before; it is higher than the pooled
    value wherever one direction has the far outliers (scattered false positives).

    Args:
        pred_mask: ``...`` bool predicted mask (``HWD`` for a volume; any rank works).
        true_mask: ``...`` bool ground-truth mask of the same shape.
        percentile: ``"pooled"`` (reference, medpy) or ``"max_directed"`` (MONAI).
        empty_convention: value when exactly one mask is empty: ``"reference"`` gives
            1.0 (the PASSION reference), ``"max"`` gives 373.13 (BraTS, the volume
            diagonal). Two empty masks give 0 in both.

    Raises:
        ConfigError: for an unknown percentile or convention.
    """
    check_hd95_percentile(percentile)
    check_hd95_convention(empty_convention)
    pred, true = _as_numpy(pred_mask), _as_numpy(true_mask)
    pred_any, true_any = bool(pred.any()), bool(true.any())
    if not pred_any and not true_any:
        return 0.0
    if pred_any != true_any:
        return ONE_EMPTY_HD95[empty_convention]
    pred_to_true, true_to_pred = directed_surface_distances(pred, true)
    if percentile == "pooled":
        return float(np.percentile(np.concatenate((pred_to_true, true_to_pred)), 95))
    return float(max(np.percentile(pred_to_true, 95), np.percentile(true_to_pred, 95)))


def _as_numpy(mask: Tensor | np.ndarray) -> np.ndarray:
    return np.asarray(mask.numpy(force=True) if isinstance(mask, Tensor) else mask, dtype=bool)


def brats_hd95(
    pred_labels: Tensor,
    true_labels: Tensor,
    *,
    et_min_voxels: int = ET_MIN_VOXELS,
    percentile: HD95Percentile = "pooled",
    empty_convention: HD95Convention = "reference",
) -> Tensor:
    """HD95 of the four BraTS regions (WT, TC, ET, ETpp) per case, see :func:`hd95`.

    As in the reference, ETpp's prediction is emptied first (predicted ET under
    ``et_min_voxels``), then the empty-mask convention applies: an emptied ET against an
    empty truth scores 0, against a non-empty one the convention's value.

    Args:
        pred_labels: ``B...`` predicted label maps.
        true_labels: ``B...`` ground-truth label maps.
        et_min_voxels: predicted ET smaller than this is emptied for ETpp.
        percentile: ``"pooled"`` or ``"max_directed"``, see :func:`hd95`.
        empty_convention: ``"reference"`` or ``"max"``, see :func:`hd95`.

    Returns:
        ``B4`` float64 distances in voxels.
    """
    pred = region_masks(pred_labels, et_min_voxels=et_min_voxels).numpy(force=True)
    true = region_masks(true_labels).numpy(force=True)
    values = [
        [
            hd95(pred[case, region], true[case, region], percentile=percentile, empty_convention=empty_convention)
            for region in range(4)
        ]
        for case in range(pred.shape[0])
    ]
    return torch.tensor(values, dtype=torch.float64).reshape(-1, 4)
