"""BraTS Dice against the reference's golden values (HD95: test_hd95.py)."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from trainables.evaluation.metrics import brats_dice, dice_score, region_masks


def _check_golden_dice(pred: torch.Tensor, truth: torch.Tensor, expected: dict[str, Any], tolerance: float) -> None:
    dice_separate, dice_regions = brats_dice(pred, truth)
    torch.testing.assert_close(
        dice_separate, torch.tensor(expected["dice_separate[ncr,ed,et]"], dtype=torch.float64), atol=tolerance, rtol=0
    )
    torch.testing.assert_close(
        dice_regions,
        torch.tensor(expected["dice_evaluate[wt,tc,et,et_postpro]"], dtype=torch.float64),
        atol=tolerance,
        rtol=0,
    )


def test_brats_dice_matches_golden(golden: dict[str, Any], golden_inputs: dict[str, torch.Tensor]) -> None:
    expected = golden["outputs"]["softmax_output_dice_class4"]
    _check_golden_dice(golden_inputs["pred_lab"], golden_inputs["gt_lab"], expected, golden["tolerance"])


def test_brats_dice_matches_golden_with_sparse_et(
    golden: dict[str, Any], golden_inputs: dict[str, torch.Tensor]
) -> None:
    expected = golden["outputs"]["softmax_output_dice_class4_sparse_et"]
    pred = golden_inputs["pred_lab"].clone()
    pred[(pred == 3) & (golden_inputs["u"] > 0.1)] = 1
    # The reference thresholds the batch's ET count; per case agrees as each case is below 500 too.
    assert int((pred == 3).sum()) == expected["n_pred_et_voxels_batch"]
    assert ((pred == 3).flatten(1).sum(dim=1) < 500).all()
    _check_golden_dice(pred, golden_inputs["gt_lab"], expected, golden["tolerance"])


def test_region_masks_follow_brats_regions() -> None:
    labels = torch.tensor([[0, 1, 2, 3]])
    masks = region_masks(labels)
    expected = torch.tensor([[[0, 1, 1, 1], [0, 1, 0, 1], [0, 0, 0, 1], [0, 0, 0, 1]]], dtype=torch.bool)
    assert torch.equal(masks, expected)


def test_et_postprocessing_is_per_case() -> None:
    labels = torch.zeros(2, 10, dtype=torch.long)
    labels[0, :3] = 3
    labels[1, :4] = 3
    etpp = region_masks(labels, et_min_voxels=4)[:, 3]
    assert etpp[0].sum() == 0
    assert etpp[1].sum() == 4


def test_dice_score_by_hand() -> None:
    pred = torch.tensor([[[1, 1, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0]]], dtype=torch.bool)
    true = torch.tensor([[[1, 0, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]]], dtype=torch.bool)
    scores = dice_score(pred, true)
    assert scores[0, 0].item() == pytest.approx(2 / 4)
    assert scores[0, 1].item() == 1.0  # both empty
    assert scores[0, 2].item() == pytest.approx(1e-8 / (1 + 1e-8))


def test_brats_dice_of_perfect_prediction_is_one() -> None:
    labels = torch.randint(0, 4, (1, 8, 8, 8), generator=torch.Generator().manual_seed(1))
    dice_separate, dice_regions = brats_dice(labels, labels, et_min_voxels=1)
    assert torch.equal(dice_separate, torch.ones(1, 3, dtype=torch.float64))
    assert torch.equal(dice_regions, torch.ones(1, 4, dtype=torch.float64))
