"""ModDrop, the discrepancy ratio, OGM-GE's modulation and MMPareto's integration as pure functions."""

from __future__ import annotations

import math

import pytest
import torch

from trainables.methods.imbalance import discrepancy_ratio
from trainables.methods.mmpareto import integrate_gradients, pareto_weight
from trainables.methods.moddrop import drop_modalities
from trainables.methods.ogm_ge import modulate_gradients, modulation_coefficients


def test_moddrop_never_drops_the_last_modality_and_only_drops_available_ones() -> None:
    generator = torch.Generator().manual_seed(0)
    available = torch.rand(4000, 4, generator=generator) < 0.5
    available[:, 0] |= ~available.any(dim=1)
    kept = drop_modalities(available, 0.9, generator)
    assert (kept <= available).all()
    assert kept.any(dim=1).all()
    single = available.sum(dim=1) == 1
    assert torch.equal(kept[single], available[single])


def test_moddrop_drop_rate_and_zero_rate() -> None:
    generator = torch.Generator().manual_seed(1)
    available = torch.ones(20000, 4, dtype=torch.bool)
    kept = drop_modalities(available, 0.3, generator)
    # Dropped fraction: 0.3, less the rescued cases (all four drawn: 0.3^4, one of four put back).
    assert 1 - kept.float().mean().item() == pytest.approx(0.3 - 0.3**4 / 4, abs=0.01)
    assert drop_modalities(available, 0.0, generator) is available


def test_discrepancy_ratio_is_the_papers_ratio_for_two_modalities() -> None:
    scores = torch.tensor([[0.9, 0.3, 0.0, 0.0], [0.5, 0.7, 0.0, 0.0]], dtype=torch.float64)
    present = torch.tensor([[True, True, False, False]] * 2)
    ratio = discrepancy_ratio(scores, present)
    assert ratio.tolist() == pytest.approx([1.4 / 1.0, 1.0 / 1.4, 1.0, 1.0])


def test_discrepancy_ratio_compares_with_the_others_present_in_the_same_case() -> None:
    scores = torch.tensor([[0.8, 0.4, 0.2, 0.9], [0.6, 0.0, 0.0, 0.3]], dtype=torch.float64)
    present = torch.tensor([[True, True, True, False], [True, False, False, False]])
    ratio = discrepancy_ratio(scores, present)
    # Case 1 has flair alone: it does not count; t2 is absent everywhere.
    assert ratio.tolist() == pytest.approx([0.8 / 0.3, 0.4 / 0.5, 0.2 / 0.6, 1.0])


def test_ogm_coefficients_follow_eq_10() -> None:
    ratio = torch.tensor([2.0, 1.0, 0.5, 1.2], dtype=torch.float64)
    coefficients = modulation_coefficients(ratio, alpha=0.3)
    assert coefficients.tolist() == pytest.approx([1 - math.tanh(0.6), 1.0, 1.0, 1 - math.tanh(0.36)])
    assert modulation_coefficients(ratio, alpha=0.0).tolist() == [1.0] * 4


def test_ogm_modulation_scales_and_adds_noise_of_the_gradients_spread() -> None:
    weight = torch.nn.Parameter(torch.zeros(1000, dtype=torch.float64))
    weight.grad = torch.linspace(-1, 1, 1000, dtype=torch.float64)
    original = weight.grad.clone()
    modulate_gradients([weight], 0.5, noise=False, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(weight.grad, 0.5 * original)
    weight.grad = original.clone()
    modulate_gradients([weight], 0.5, noise=True, generator=torch.Generator().manual_seed(0))
    residual = weight.grad - 0.5 * original
    assert residual.std().item() == pytest.approx(original.std().item(), rel=0.1)
    weight.grad = original.clone()
    modulate_gradients([weight], 1.0, noise=True, generator=torch.Generator().manual_seed(0))
    assert torch.equal(weight.grad, original)


def test_mmpareto_without_conflict_is_the_plain_sum() -> None:
    multimodal = [torch.tensor([1.0, 2.0]), torch.tensor([[0.5]])]
    unimodal = [torch.tensor([3.0, 0.5]), torch.tensor([[1.0]])]
    assert pareto_weight(multimodal, unimodal) == 0.5
    integrated = integrate_gradients(multimodal, unimodal, gamma=1.0, rescale=True)
    for grad, m, u in zip(integrated, multimodal, unimodal):
        assert torch.equal(grad, m + u)


def test_mmpareto_conflict_takes_the_min_norm_direction_common_to_both() -> None:
    multimodal = [torch.tensor([1.0, 0.0], dtype=torch.float64)]
    unimodal = [torch.tensor([-1.0, 2.0], dtype=torch.float64)]
    weight = pareto_weight(multimodal, unimodal)
    # min over a of ||a g_mm + (1 - a) g_u||^2: a = (g_u - g_mm).g_u / ||g_mm - g_u||^2 = 6/8,
    # the point (1/2, 1/2), equally inclined to both.
    assert weight == pytest.approx(3 / 4)
    plain = integrate_gradients(multimodal, unimodal, gamma=1.0, rescale=False)[0]
    torch.testing.assert_close(plain, torch.tensor([1.0, 1.0], dtype=torch.float64))
    assert torch.dot(plain, multimodal[0]) > 0 and torch.dot(plain, unimodal[0]) > 0
    lifted = integrate_gradients(multimodal, unimodal, gamma=1.5, rescale=True)[0]
    assert lifted.norm().item() == pytest.approx(1.5 * (multimodal[0] + unimodal[0]).norm().item())
    torch.testing.assert_close(lifted / lifted.norm(), plain / plain.norm())


def test_mmpareto_zero_gradient_is_the_plain_sum() -> None:
    multimodal = [torch.tensor([1.0, -2.0])]
    unimodal = [torch.zeros(2)]
    assert torch.equal(integrate_gradients(multimodal, unimodal, gamma=1.0, rescale=True)[0], multimodal[0])
