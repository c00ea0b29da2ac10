"""BraTS Dice against the reference's golden values, HD95 against hand-computed cases."""
from __future__ import annotations

from typing import Any

import pytest
import torch

from trainables.errors import ConfigError
from trainables.evaluation.metrics import (
    BRATS_MAX_HD95,
    brats_dice,
    brats_hd95,
    dice_score,
    hd95,
    region_masks,
)

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


def test_brats_dice_matches_golden_with_sparse_et(golden: dict[str, Any], golden_inputs: dict[str, torch.Tensor]) -> None:
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


def _cube(corner: tuple[int, int, int], edge: int = 4, size: int = 16) -> torch.Tensor:
    mask = torch.zeros(size, size, size, dtype=torch.bool)
    x, y, z = corner
    mask[x : x + edge, y : y + edge, z : z + edge] = True
    return mask


def test_hd95_of_cubes_offset_by_three_voxels() -> None:
    # Boundary voxels of cube A lie 0, 1, 2 or 3 voxels (16, 12, 12, 16 of them) from B's
    # boundary along x; the 95th percentile of the 56 sorted values is 3, both ways.
    assert hd95(_cube((2, 4, 4)), _cube((5, 4, 4))) == pytest.approx(3.0)


def test_hd95_ignores_an_outlier_that_hausdorff_would_count() -> None:
    truth = _cube((2, 2, 2))
    pred = truth.clone()
    pred[13, 13, 13] = True  # 1 of 57 boundary voxels, sqrt(3 * 8**2), about 13.9 voxels from the cube
    assert hd95(pred, truth) == pytest.approx(0.0)


def test_hd95_is_symmetric() -> None:
    small, large = _cube((4, 4, 4), edge=2), _cube((2, 2, 2), edge=8)
    assert hd95(small, large) == hd95(large, small) > 0


@pytest.mark.parametrize(("convention", "one_empty"), [("reference", 1.0), ("max", BRATS_MAX_HD95)])
def test_hd95_empty_conventions(convention: str, one_empty: float) -> None:
    empty, cube = torch.zeros(16, 16, 16, dtype=torch.bool), _cube((2, 2, 2))
    assert hd95(empty, empty, empty_convention=convention) == 0.0
    assert hd95(empty, cube, empty_convention=convention) == one_empty
    assert hd95(cube, empty, empty_convention=convention) == one_empty


def test_hd95_rejects_unknown_convention() -> None:
    cube = _cube((2, 2, 2))
    with pytest.raises(ConfigError, match="must be one of reference, max.*got 'brats'"):
        hd95(cube, cube, empty_convention="brats")  # type: ignore[arg-type]


def test_brats_hd95_uses_postprocessed_et() -> None:
    truth = torch.zeros(1, 16, 16, 16, dtype=torch.long)
    truth[0, 2:10, 2:10, 2:10] = 2
    truth[0, 4:7, 4:7, 4:7] = 3  # 27 ET voxels
    distances = brats_hd95(truth, truth, et_min_voxels=28, empty_convention="max")
    assert distances.shape == (1, 4)
    torch.testing.assert_close(distances[0], torch.tensor([0.0, 0.0, 0.0, BRATS_MAX_HD95], dtype=torch.float64))
