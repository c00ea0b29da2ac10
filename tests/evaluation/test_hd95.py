"""HD95: hand-computed cases, medpy (the reference's implementation) on a corpus of hard
cases, MONAI for the ``max_directed`` option, and the reference's per-region procedure."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch
from medpy.metric.binary import hd95 as medpy_hd95
from monai.metrics import compute_hausdorff_distance
from scipy import ndimage

from trainables.errors import ConfigError
from trainables.evaluation.conventions import BRATS_MAX_HD95, hd95_definition
from trainables.evaluation.metrics import brats_hd95, hd95, surface_voxels

SIZE = 40
CENTRE = (SIZE - 1) / 2


def _ball(radius: float, centre: tuple[float, float, float] = (CENTRE, CENTRE, CENTRE)) -> np.ndarray:
    grid = np.indices((SIZE, SIZE, SIZE), dtype=float)
    return sum((axis - c) ** 2 for axis, c in zip(grid, centre)) <= radius**2


def _blobs(seed: int, level: float = 0.05) -> np.ndarray:
    """Random smooth blobs: thresholded smoothed noise."""
    noise = np.random.default_rng(seed).standard_normal((SIZE, SIZE, SIZE))
    return ndimage.gaussian_filter(noise, 3) > level


def _empty() -> np.ndarray:
    return np.zeros((SIZE, SIZE, SIZE), dtype=bool)


def _with_far_blobs() -> tuple[np.ndarray, np.ndarray]:
    truth = _ball(7)
    pred = truth.copy()
    pred[1:3, 1:3, 1:3] = pred[36:39, 2:4, 35:38] = pred[3, 37, 20] = True  # false positives near the corners
    return pred, truth


def _scattered() -> tuple[np.ndarray, np.ndarray]:
    truth = _ball(9)
    pred = truth | (np.random.default_rng(3).random(truth.shape) < 0.002)
    return pred, truth


def _missed_small_lesion() -> tuple[np.ndarray, np.ndarray]:
    large = _ball(8, (14, 14, 14))
    truth = large | _ball(1.5, (33, 30, 31))
    return large, truth


def _on_the_border() -> tuple[np.ndarray, np.ndarray]:
    truth = _empty()
    truth[:12, 5:20, :] = True  # touches three faces of the volume
    pred = _empty()
    pred[:10, 7:22, 3:] = True
    return pred, truth


def _thin_plate() -> tuple[np.ndarray, np.ndarray]:
    plate = _empty()
    plate[10:30, 10:30, 20] = True  # one voxel thick: all surface
    return plate, _ball(10)


# Every case has both masks non-empty: medpy refuses empty masks (the reference's
# conventions for those are tested below).
CORPUS: dict[str, Callable[[], tuple[np.ndarray, np.ndarray]]] = {
    "offset balls": lambda: (_ball(8), _ball(8, (CENTRE + 3, CENTRE - 2, CENTRE))),
    "nested balls": lambda: (_ball(4), _ball(11)),
    "distant false-positive blobs": _with_far_blobs,
    "scattered false positives": _scattered,
    "missed small lesion": _missed_small_lesion,
    "masks on the volume border": _on_the_border,
    "one-voxel-thick plate": _thin_plate,
    "single voxels": lambda: (_ball(0.5, (5, 5, 5)), _ball(0.5, (30, 20, 9))),
    "random blobs 1": lambda: (_blobs(1), _blobs(2)),
    "random blobs 2": lambda: (_blobs(3, 0.1), _blobs(4, 0.0)),
}


def _monai_hd95(pred: np.ndarray, truth: np.ndarray) -> float:
    distance = compute_hausdorff_distance(
        torch.from_numpy(pred)[None, None], torch.from_numpy(truth)[None, None], include_background=True, percentile=95
    )
    return float(distance.item())


@pytest.mark.parametrize("case", CORPUS)
def test_pooled_hd95_equals_medpy(case: str) -> None:
    pred, truth = CORPUS[case]()
    assert pred.any() and truth.any() and not np.array_equal(pred, truth)
    assert hd95(pred, truth) == pytest.approx(medpy_hd95(pred, truth), abs=1e-6, rel=0)
    assert hd95(torch.from_numpy(pred), torch.from_numpy(truth)) == hd95(pred, truth), "tensors as arrays"


@pytest.mark.filterwarnings("ignore::FutureWarning")  # MONAI passes a deprecated argument internally
@pytest.mark.parametrize("case", CORPUS)
def test_max_directed_hd95_equals_monai(case: str) -> None:
    pred, truth = CORPUS[case]()
    # MONAI computes in float32.
    assert hd95(pred, truth, percentile="max_directed") == pytest.approx(_monai_hd95(pred, truth), rel=1e-5)
    assert hd95(pred, truth, percentile="max_directed") >= hd95(pred, truth) - 1e-9


def test_the_definitions_differ_where_false_positives_are_far() -> None:
    pred, truth = _with_far_blobs()
    assert hd95(pred, truth, percentile="max_directed") > hd95(pred, truth) + 1


def test_pooled_and_max_directed_by_hand() -> None:
    # On a line the surface of a segment is its two ends. Truth: voxels 0-9, surface {0, 9};
    # prediction: the same plus voxel 29, surface {0, 9, 29}. Distances prediction -> truth
    # 0, 0, 20; truth -> prediction 0, 0. Pooled [0, 0, 0, 0, 20]: the 95th percentile lies
    # at 0.95 * 4 = 3.8, i.e. 0.8 * 20 = 16. Directed: 0.95 * 2 = 1.9, i.e. 0.9 * 20 = 18, and 0.
    truth = np.zeros(30, dtype=bool)
    truth[:10] = True
    pred = truth.copy()
    pred[29] = True
    assert hd95(pred, truth) == pytest.approx(16.0)
    assert hd95(pred, truth, percentile="max_directed") == pytest.approx(18.0)


def test_surface_is_the_mask_minus_its_six_neighbour_erosion() -> None:
    cube = np.zeros((7, 7, 7), dtype=bool)
    cube[1:6, 1:6, 1:6] = True
    assert surface_voxels(cube).sum() == 5**3 - 3**3
    full = np.ones((4, 4, 4), dtype=bool)
    assert surface_voxels(full).sum() == 4**3 - 2**3, "voxels on the array border are surface"
    # A 3x3x3 cube with its 8 corners removed erodes to its centre with faces-only connectivity.
    cross = np.ones((3, 3, 3), dtype=bool)
    cross[::2, ::2, ::2] = False
    assert not surface_voxels(np.pad(cross, 1))[2, 2, 2]


def _cube(corner: tuple[int, int, int], edge: int = 4, size: int = 16) -> torch.Tensor:
    mask = torch.zeros(size, size, size, dtype=torch.bool)
    x, y, z = corner
    mask[x : x + edge, y : y + edge, z : z + edge] = True
    return mask


@pytest.mark.parametrize("percentile", ["pooled", "max_directed"])
def test_hd95_of_cubes_offset_by_three_voxels(percentile: str) -> None:
    # Surface voxels of cube A lie 0, 1, 2 or 3 voxels (16, 12, 12, 16 of them) from B's
    # surface along x; the 95th percentile of the 56 sorted values is 3, both ways.
    assert hd95(_cube((2, 4, 4)), _cube((5, 4, 4)), percentile=percentile) == pytest.approx(3.0)


def test_hd95_ignores_an_outlier_that_hausdorff_would_count() -> None:
    truth = _cube((2, 2, 2))
    pred = truth.clone()
    pred[13, 13, 13] = True  # 1 of 57 surface voxels, sqrt(3 * 8**2), about 13.9 voxels from the cube
    assert hd95(pred, truth) == pytest.approx(0.0)


def test_hd95_is_symmetric() -> None:
    small, large = _cube((4, 4, 4), edge=2), _cube((2, 2, 2), edge=8)
    assert hd95(small, large) == hd95(large, small) > 0


@pytest.mark.parametrize("percentile", ["pooled", "max_directed"])
@pytest.mark.parametrize(("convention", "one_empty"), [("reference", 1.0), ("max", BRATS_MAX_HD95)])
def test_hd95_empty_conventions(percentile: str, convention: str, one_empty: float) -> None:
    empty, cube = torch.zeros(16, 16, 16, dtype=torch.bool), _cube((2, 2, 2))
    options = {"percentile": percentile, "empty_convention": convention}
    assert hd95(empty, empty, **options) == 0.0
    assert hd95(empty, cube, **options) == one_empty
    assert hd95(cube, empty, **options) == one_empty


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"empty_convention": "brats"}, "hd95 convention must be one of reference, max.*got 'brats'"),
        ({"percentile": "monai"}, "hd95 percentile must be one of pooled, max_directed.*got 'monai'"),
    ],
)
def test_hd95_rejects_unknown_options(options: dict[str, str], message: str) -> None:
    cube = _cube((2, 2, 2))
    with pytest.raises(ConfigError, match=message):
        hd95(cube, cube, **options)  # type: ignore[arg-type]


def test_definition_names_percentile_and_convention() -> None:
    text = hd95_definition("pooled", "max")
    assert "pooled (medpy, as the reference)" in text and "373.13 when exactly one" in text
    assert "larger of the two directed" in hd95_definition("max_directed", "reference")


# The reference's per-case procedure (PASSION code/utils/predict.py, cal_hd95), restated
# with medpy: WT = label != 0, TC = 1 or 3, ET = 3, ETpp = the predicted ET emptied when
# under 500 voxels; both masks empty: 0, exactly one: 1.0, else medpy's hd95.
def _reference_region_hd95(pred: np.ndarray, truth: np.ndarray) -> float:
    if not truth.any():
        return 0.0 if not pred.any() else 1.0
    return 1.0 if not pred.any() else float(medpy_hd95(pred, truth, (1, 1, 1)))


def _reference_case_hd95(output: np.ndarray, target: np.ndarray) -> list[float]:
    et = output == 3
    regions = [
        (output != 0, target != 0),
        ((output == 1) | (output == 3), (target == 1) | (target == 3)),
        (et, target == 3),
        (et if et.sum() >= 500 else np.zeros_like(et), target == 3),
    ]
    return [_reference_region_hd95(pred, truth) for pred, truth in regions]


def _tumour(centre: tuple[float, float, float], *, et: bool = True) -> np.ndarray:
    """Label map: ED ball of radius 11, NCR core of radius 5 and (optionally) an ET shell (920 ET voxels)."""
    labels = np.where(_ball(11, centre), 2, 0)
    if et:
        labels[_ball(7, centre)] = 3
    labels[_ball(5, centre)] = 1
    return labels.astype(np.int64)


def _label_cases() -> list[tuple[np.ndarray, np.ndarray]]:
    truth = _tumour((CENTRE, CENTRE, CENTRE))
    shifted = _tumour((CENTRE + 2, CENTRE - 1, CENTRE))
    small_et = truth.copy()
    small_et[small_et == 3] = 2
    small_et[_ball(2, (6, 6, 6))] = 3  # a distant ET blob of 33 voxels: ETpp empties it
    noisy = truth.copy()
    rng = np.random.default_rng(5)
    flips = rng.random(truth.shape) < 0.003
    noisy[flips] = rng.integers(1, 4, int(flips.sum()))
    no_et_truth = _tumour((CENTRE, CENTRE, CENTRE), et=False)
    return [
        (shifted, truth),
        (small_et, truth),
        (noisy, truth),
        (np.zeros_like(truth), truth),  # nothing predicted
        (small_et, no_et_truth),  # ET predicted where the truth has none; ETpp both empty
        (shifted, no_et_truth),  # ET of 920 voxels against none
    ]


@pytest.mark.parametrize("index", range(6))
def test_brats_hd95_follows_the_reference_procedure(index: int) -> None:
    pred, truth = _label_cases()[index]
    expected = _reference_case_hd95(pred, truth)
    distances = brats_hd95(torch.from_numpy(pred)[None], torch.from_numpy(truth)[None])
    assert distances.shape == (1, 4) and distances.dtype == torch.float64
    np.testing.assert_allclose(distances[0].numpy(), expected, rtol=0, atol=1e-6)


def test_brats_hd95_uses_postprocessed_et() -> None:
    truth = torch.zeros(1, 16, 16, 16, dtype=torch.long)
    truth[0, 2:10, 2:10, 2:10] = 2
    truth[0, 4:7, 4:7, 4:7] = 3  # 27 ET voxels
    distances = brats_hd95(truth, truth, et_min_voxels=28, empty_convention="max")
    torch.testing.assert_close(distances[0], torch.tensor([0.0, 0.0, 0.0, BRATS_MAX_HD95], dtype=torch.float64))
