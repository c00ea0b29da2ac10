"""PMR: the prototype classifier against the reference's golden values, and its rebalancing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from trainables.methods.pmr import PrototypeClassifier, pmr_loss, prototype_classifier, rebalancing_coefficients

GOLDEN = json.loads((Path(__file__).parents[1] / "fixtures/pmr/golden-pmr.json").read_text())


def golden_inputs(case: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Student features and one-hot target drawn as the case's ``inputs`` says."""
    rng = np.random.default_rng(case["seed"])
    shape = (case["B"], case["F"], *[case["S"]] * 3)
    features = rng.standard_normal(shape)
    rng.standard_normal(shape)  # the teacher features, unused by the loss but drawn in between
    labels = rng.integers(0, 4, (case["B"], *[case["S"]] * 3))
    if case["seed"] == 501:
        labels[1][labels[1] == 3] = 2
    target = F.one_hot(torch.from_numpy(labels), 4).movedim(-1, 1).double()
    return torch.from_numpy(features), target


@pytest.mark.parametrize("case", GOLDEN["cases"], ids=lambda case: f"seed{case['seed']}")
def test_prototype_classifier_matches_the_reference(case: dict) -> None:
    # 1e-8: the reference rounds class counts + eps in float32 (see the fixture's NOTICE).
    features, target = golden_inputs(case)
    classifier = prototype_classifier(features, target)
    assert classifier.cross_entropy.mean().item() == pytest.approx(case["proto_loss"], abs=1e-8, rel=0)
    assert classifier.score.mean().item() == pytest.approx(case["kl_loss"], abs=1e-8, rel=0)


def test_prototype_classifier_entropy_and_gradient() -> None:
    features, target = golden_inputs(GOLDEN["cases"][0])
    features.requires_grad_()
    classifier = prototype_classifier(features, target)
    assert 0 < classifier.entropy.item() < np.log(4)
    classifier.cross_entropy.sum().backward()
    assert torch.isfinite(features.grad).all() and features.grad.abs().sum() > 0


def test_rebalancing_boosts_only_the_lagging_modality() -> None:
    ratio = torch.tensor([1.5, 1.0, 0.5, 0.8], dtype=torch.float64)
    beta, leading = rebalancing_coefficients(ratio, alpha=2.0)
    expected = torch.tensor([0.0, 0.0, 2.0 * np.tanh(1.0), 2.0 * np.tanh(0.25)], dtype=torch.float64)
    torch.testing.assert_close(beta, expected)
    assert leading.tolist() == [True, False, False, False]


def _classifiers(scores: list[list[float]]) -> PrototypeClassifier:
    score = torch.tensor(scores, dtype=torch.float64)
    return PrototypeClassifier(cross_entropy=1 - score, score=score, entropy=score + 1)


def test_pmr_loss_is_zero_with_one_modality_per_case() -> None:
    present = torch.tensor([[True, False, False, False], [False, False, True, False]])
    loss, ratio = pmr_loss(_classifiers([[0.9, 0, 0, 0], [0, 0, 0.2, 0]]), present, alpha=1.0, entropy_weight=0.5)
    assert loss.item() == 0.0 and ratio.tolist() == [1.0] * 4


def test_pmr_loss_weighs_the_lagging_pce_and_the_leading_entropy() -> None:
    present = torch.tensor([[True, True, False, False]])
    loss, ratio = pmr_loss(_classifiers([[0.8, 0.4, 0, 0]]), present, alpha=1.0, entropy_weight=0.5)
    assert ratio.tolist() == pytest.approx([2.0, 0.5, 1.0, 1.0])
    # flair leads (entropy 1.8 maximised), t1ce lags (PCE 0.6 weighted tanh(1)).
    assert loss.item() == pytest.approx(np.tanh(1.0) * 0.6 - 0.5 * 1.8)
    switched_off, _ = pmr_loss(_classifiers([[0.8, 0.4, 0, 0]]), present, alpha=0.0, entropy_weight=0.0)
    assert switched_off.item() == 0.0
