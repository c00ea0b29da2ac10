"""PASSION's ablations are presets: each switches its component off exactly."""

from __future__ import annotations

import pytest
import torch

from trainables.methods.registry import method_info, method_passion
from trainables.passion import LossTerms, PassionConfig, PreferenceBalancer, combine_loss_terms


def preset(name: str) -> PassionConfig:
    return method_passion(name, PassionConfig())


@pytest.mark.parametrize("name", ["passion-no-task-reg", "pixel-kd-only", "proto-kd-only", "grad-gate-only"])
def test_without_task_wise_regularisation_beta_stays_exactly_one(name: str) -> None:
    balancer = PreferenceBalancer(preset(name), torch.tensor([3.0, 5.0, 8.0, 2.0]))
    generator = torch.Generator().manual_seed(0)
    for epoch in range(3):
        balancer.accumulate(torch.rand(2, 4, generator=generator), torch.ones(2, 4, dtype=torch.bool))
        balancer.end_epoch(epoch)
    assert torch.equal(balancer.beta, torch.ones(4, dtype=torch.float64))


def terms() -> LossTerms:
    generator = torch.Generator().manual_seed(1)
    per_pair = {name: torch.rand(2, 4, generator=generator, dtype=torch.float64) for name in ("sep", "kl", "proto")}
    # Modality 0 is far from its teacher (lags), 1-3 are close: rp_0 > 0 > rp_1..3.
    distance = torch.tensor([[0.9, 0.1, 0.2, 0.1], [0.8, 0.2, 0.1, 0.1]], dtype=torch.float64)
    fuse = torch.rand(2, generator=generator, dtype=torch.float64)
    return LossTerms(fuse=fuse, prm=fuse / 2, distance=distance, **per_pair)


def combined(name: str) -> dict[str, float]:
    loss = combine_loss_terms(
        terms(),
        counted=torch.ones(2, 4, dtype=torch.bool),
        beta=torch.tensor([1.2, 0.9, 1.0, 0.8]),
        modality_weights=torch.tensor([1.0, 2.0, 1.5, 3.0]),
        config=preset(name),
    )
    return {name: float(value) for name, value in loss.parts.items()} | {"total": float(loss.total)}


def test_the_relative_preference_gate_and_its_ablation() -> None:
    step, beta, weights = terms(), torch.tensor([1.2, 0.9, 1.0, 0.8]), torch.tensor([1.0, 2.0, 1.5, 3.0])
    gated, ungated = combined("passion"), combined("passion-no-grad-gate")
    sep, proto = step.sep.sum(0), step.proto.sum(0)
    assert gated["sep"] == pytest.approx(float(beta[0] * weights[0] * sep[0]))  # only the lagging modality
    assert ungated["sep"] == pytest.approx(float((beta * weights * sep).sum()))
    assert ungated["proto"] == pytest.approx(float((weights * proto).sum()))
    assert ungated["kl"] == gated["kl"]


@pytest.mark.parametrize(("name", "off"), [("passion-no-pixel-kd", "kl"), ("passion-no-proto-kd", "proto")])
def test_without_a_distillation_its_term_leaves_the_total(name: str, off: str) -> None:
    full, ablated = combined("passion"), combined(name)
    kept = {"kl": "proto", "proto": "kl"}[off]
    scale = {"kl": 0.5, "proto": 0.1}
    assert ablated["total"] == pytest.approx(full["total"] - scale[off] * full[off])
    assert ablated[kept] == full[kept]


def test_each_component_alone_switches_the_other_three_off() -> None:
    components = {"kl_weight": 0.0, "proto_weight": 0.0, "eta": 0.0, "preference_gate": False}
    for name, on in [
        ("pixel-kd-only", "kl_weight"),
        ("proto-kd-only", "proto_weight"),
        ("task-reg-only", "eta"),
        ("grad-gate-only", "preference_gate"),
    ]:
        fixed = method_info(name).passion
        assert fixed["enabled"] is True and on not in fixed, name
        assert {key: fixed[key] for key in components if key != on} == {k: v for k, v in components.items() if k != on}
