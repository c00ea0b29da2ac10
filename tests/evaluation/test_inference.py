"""Encoding each window once gives exactly the naive per-subset sliding-window result."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from trainables.backbones import build_backbone
from trainables.errors import ConfigError, DataError
from trainables.evaluation.inference import naive_subset_probabilities, predict_all_subsets, subset_probabilities
from trainables.modalities import NUM_MODALITIES, SUBSET_MASKS

from .toy_backbone import ToyBackbone

PATCH = 16
# Not multiples of the patch, and D shorter than it (MONAI pads, the result is cropped back).
SHAPE = (24, 20, 12)


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    return torch.randn(NUM_MODALITIES, *SHAPE, generator=torch.Generator().manual_seed(3))


@pytest.fixture(scope="module")
def naive(image: torch.Tensor) -> torch.Tensor:
    torch.manual_seed(0)
    model = ToyBackbone(width=4, patch_size=PATCH).eval()
    return torch.stack([naive_subset_probabilities(model, image, mask, patch_size=PATCH) for mask in SUBSET_MASKS])


def test_encode_once_equals_naive_per_subset_inference(
    toy_model: ToyBackbone, image: torch.Tensor, naive: torch.Tensor
) -> None:
    probabilities = subset_probabilities(toy_model, image, patch_size=PATCH)
    assert probabilities.shape == (len(SUBSET_MASKS), 4, *SHAPE)
    assert torch.equal(probabilities, naive)
    torch.testing.assert_close(probabilities.sum(dim=1), torch.ones(len(SUBSET_MASKS), *SHAPE))

    labels = predict_all_subsets(toy_model, image, patch_size=PATCH)
    assert labels.dtype == torch.uint8
    assert torch.equal(labels, naive.argmax(dim=1).to(torch.uint8))


@pytest.mark.parametrize(("sw_batch_size", "subset_batch_size"), [(3, 1), (1, 4), (2, 15)])
def test_batching_windows_and_subsets_does_not_change_the_result(
    toy_model: ToyBackbone, image: torch.Tensor, naive: torch.Tensor, sw_batch_size: int, subset_batch_size: int
) -> None:
    probabilities = subset_probabilities(
        toy_model, image, patch_size=PATCH, sw_batch_size=sw_batch_size, subset_batch_size=subset_batch_size
    )
    torch.testing.assert_close(probabilities, naive, atol=1e-5, rtol=0)


def _count_calls(monkeypatch: pytest.MonkeyPatch, model: ToyBackbone, name: str, calls: dict[str, int]) -> None:
    method = getattr(model, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls[name] += 1
        return method(*args, **kwargs)

    monkeypatch.setattr(model, name, counted)


def test_each_window_is_encoded_once_and_fused_once_per_subset(
    toy_model: ToyBackbone, image: torch.Tensor, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"encode": 0, "fuse": 0}
    for name in calls:
        _count_calls(monkeypatch, toy_model, name, calls)
    predict_all_subsets(toy_model, image, patch_size=PATCH)
    windows = 2 * 2 * 1  # starts 0, 8 / 0, 4 / one padded window along D
    assert calls == {"encode": NUM_MODALITIES * windows, "fuse": len(SUBSET_MASKS) * windows}


def test_encode_once_equals_naive_for_rfnet(image: torch.Tensor) -> None:
    torch.manual_seed(0)
    model = build_backbone("rfnet", width=4, patch_size=PATCH).eval()
    chosen = [SUBSET_MASKS[i] for i in (0, 9, 14)]  # t2, flair-t1ce, all four
    probabilities = subset_probabilities(model, image, patch_size=PATCH, subsets=chosen)
    for subset, mask in enumerate(chosen):
        assert torch.equal(probabilities[subset], naive_subset_probabilities(model, image, mask, patch_size=PATCH))


def test_a_subset_selection_keeps_its_order(toy_model: ToyBackbone, image: torch.Tensor, naive: torch.Tensor) -> None:
    chosen = [14, 3, 0]
    probabilities = subset_probabilities(toy_model, image, patch_size=PATCH, subsets=[SUBSET_MASKS[i] for i in chosen])
    torch.testing.assert_close(probabilities, naive[chosen], atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    ("options", "error", "pattern"),
    [
        ({"patch_size": 12}, ConfigError, "patch_size must be a multiple of 8 and at least 16.*got 12"),
        ({"overlap": 1.0}, ConfigError, r"overlap must be >= 0 and < 1, got 1.0"),
        ({"subset_batch_size": 0}, ConfigError, "subset_batch_size must be >= 1, got 0"),
        ({"subsets": [(False, False, False, False)]}, ConfigError, "bad subset"),
    ],
)
def test_bad_options_are_rejected(
    toy_model: ToyBackbone, image: torch.Tensor, options: dict[str, Any], error: type[Exception], pattern: str
) -> None:
    with pytest.raises(error, match=pattern):
        subset_probabilities(toy_model, image, **{"patch_size": PATCH, **options})


def test_a_volume_without_four_modalities_is_rejected(toy_model: ToyBackbone) -> None:
    with pytest.raises(DataError, match=r"must be 4 x H x W x D, got shape \(3, 16, 16, 16\)"):
        subset_probabilities(toy_model, torch.zeros(3, 16, 16, 16), patch_size=PATCH)
