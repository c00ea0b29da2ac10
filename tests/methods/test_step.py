"""The balancing methods in the training step: switched off or with one modality per case
they give the baseline step exactly; MMPareto integrates the right gradients."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from trainables.backbones import Backbone, build_backbone
from trainables.config import RunConfig, TrainConfig
from trainables.methods.hooks import TrainingMethod, build_training_method, modality_encoder_parameters
from trainables.methods.mmpareto import integrate_gradients
from trainables.passion.losses import segmentation_loss, upsample_probabilities
from trainables.training.step import build_optimizer, optimisation_step

PATCH = 16
TWO_AND_THREE = [[True, False, True, False], [False, True, True, True]]
ONE_EACH = [[True, False, False, False], [False, False, False, True]]


def batch(mask: list[list[bool]], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    present = torch.tensor(mask)
    images = torch.randn(len(mask), 4, PATCH, PATCH, PATCH, generator=generator) * present[..., None, None, None]
    labels = torch.randint(0, 4, (len(mask), PATCH, PATCH, PATCH), generator=generator)
    return images, labels, present


def run_config(method: str, *overrides: str) -> RunConfig:
    return RunConfig().with_overrides([f"method.name={method}", "model.width=4", *overrides])


def step(model: Backbone, config: RunConfig, method: TrainingMethod | None, mask: list[list[bool]]) -> float:
    """One optimisation step of ``model`` (in place) on a fixed batch; returns the loss."""
    optimizer = build_optimizer(model, config.train)
    if method is not None:
        method.start_epoch(0, config.train.epochs)
    images, labels, present = batch(mask)
    loss = optimisation_step(
        model,
        optimizer,
        images,
        labels,
        present,
        train=config.train,
        passion=config.passion,
        beta=torch.ones(4),
        modality_weights=torch.ones(4),
        warmup=False,
        method=method,
    )
    return float(loss.total)


@pytest.fixture(scope="module")
def initial() -> Backbone:
    torch.manual_seed(0)
    return build_backbone("rfnet", width=4, patch_size=PATCH)


def assert_same_step(initial: Backbone, config: RunConfig, mask: list[list[bool]]) -> None:
    baseline, balanced = copy.deepcopy(initial), copy.deepcopy(initial)
    baseline_loss = step(baseline, run_config("baseline"), None, mask)
    balanced_loss = step(balanced, config, build_training_method(config), mask)
    assert balanced_loss == baseline_loss
    for (name, expected), actual in zip(baseline.state_dict().items(), balanced.state_dict().values()):
        assert torch.equal(expected, actual), name


@pytest.mark.parametrize(
    "overrides",
    [
        ("method.name=moddrop", "moddrop.rate=0"),
        ("method.name=pmr", "pmr.alpha=0", "pmr.entropy_weight=0"),
        ("method.name=ogm-ge", "ogm_ge.alpha=0"),
    ],
    ids=lambda overrides: overrides[0].split("=")[1],
)
def test_switched_off_coefficients_give_the_baseline_step(initial: Backbone, overrides: tuple[str, ...]) -> None:
    assert_same_step(initial, RunConfig().with_overrides(["model.width=4", *overrides]), TWO_AND_THREE)


@pytest.mark.parametrize("method", ["moddrop", "pmr", "ogm-ge"])
def test_with_one_modality_per_case_the_balancing_methods_are_the_baseline(initial: Backbone, method: str) -> None:
    # Defaults, with the PMR entropy term and OGM-GE's modulation on in the first epoch.
    assert_same_step(initial, run_config(method, "moddrop.rate=0.7"), ONE_EACH)


def test_balancing_methods_change_the_step_with_several_modalities(initial: Backbone) -> None:
    baseline = copy.deepcopy(initial)
    step(baseline, run_config("baseline"), None, TWO_AND_THREE)
    for method in ("moddrop", "pmr", "ogm-ge", "mmpareto"):
        config = run_config(method, "moddrop.rate=0.7", "ogm_ge.alpha=2")
        model = copy.deepcopy(initial)
        step(model, config, build_training_method(config), TWO_AND_THREE)
        changed = any(not torch.equal(a, b) for a, b in zip(baseline.parameters(), model.parameters()))
        assert changed, method


def test_mmpareto_integrates_each_encoders_multimodal_and_unimodal_gradients(initial: Backbone) -> None:
    model = copy.deepcopy(initial).double()
    config = run_config("mmpareto", "mmpareto.gamma=1.3")
    images, labels, present = batch(TWO_AND_THREE)
    images = images.double()
    target = F.one_hot(labels, 4).movedim(-1, 1).double()

    # The two losses by hand: multimodal fuse + prm, unimodal sum_m sep_m (the baseline's terms).
    features = model.encode_present(images, present)
    fused = model.fuse(features, present)
    multimodal = segmentation_loss(torch.softmax(fused.logits, 1), target).sum() + sum(
        weight * segmentation_loss(upsample_probabilities(torch.softmax(aux, 1), scale), target).sum()
        for aux, (scale, weight) in zip(fused.aux_logits, model.deep_supervision, strict=True)
    )
    rows, modalities = present.nonzero(as_tuple=True)
    separate = model.separate([level[rows, modalities] for level in features])
    unimodal = segmentation_loss(torch.softmax(separate, 1), target[rows]).sum()
    encoders = modality_encoder_parameters(model)
    owned = [parameter for parameters in encoders for parameter in parameters]
    g_mm = torch.autograd.grad(multimodal, owned, retain_graph=True, allow_unused=True)
    g_u = torch.autograd.grad(unimodal, owned, allow_unused=True)
    by_id = {id(p): (mm, u) for p, mm, u in zip(owned, g_mm, g_u, strict=True)}

    method = build_training_method(config)
    method.start_epoch(0, 1)
    optimizer = build_optimizer(model, config.train)
    train = TrainConfig(step_every_parameter=False)
    # Capture the gradients the optimizer sees.
    seen = {}
    original_step = optimizer.step
    optimizer.step = lambda: seen.update({id(p): p.grad.clone() for p in owned if p.grad is not None})  # type: ignore[method-assign]
    optimisation_step(
        model, optimizer, images, labels, present, train=train, passion=config.passion,
        beta=torch.ones(4), modality_weights=torch.ones(4), warmup=False, method=method,
    )  # fmt: skip
    optimizer.step = original_step  # type: ignore[method-assign]
    for modality, parameters in enumerate(encoders):
        if not present[:, modality].any():
            continue
        mm = [by_id[id(p)][0] for p in parameters]
        u = [by_id[id(p)][1] for p in parameters]
        expected = integrate_gradients(mm, u, gamma=1.3, rescale=True)
        for parameter, grad in zip(parameters, expected, strict=True):
            torch.testing.assert_close(seen[id(parameter)], grad, rtol=1e-9, atol=1e-12)
    # The batch has encoders with and without conflicting gradients: both branches are checked.
    assert 0 < sum(method.epoch_metrics().values()) < present.any(dim=0).sum()
