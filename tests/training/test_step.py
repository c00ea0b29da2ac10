"""The loop's step: the reference's learning rate and its AdamW semantics for absent modalities."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from trainables.backbones import build_backbone
from trainables.config import TrainConfig
from trainables.passion import PassionConfig
from trainables.training.step import build_optimizer, optimisation_step, poly_lr


def test_poly_lr_is_the_reference_schedule_as_a_python_float() -> None:
    config = TrainConfig(lr=2e-4, epochs=300, lr_power=0.9)
    assert poly_lr(config, 0) == 0.0002 and type(poly_lr(config, 0)) is float
    assert poly_lr(config, 1) == round(2e-4 * (1 - 1 / 300) ** 0.9, 8) == 0.0001994


@pytest.mark.parametrize("every", [True, False])
def test_absent_encoders_decay_only_when_every_parameter_steps(every: bool) -> None:
    torch.manual_seed(0)
    model = build_backbone("rfnet", width=4, patch_size=16)
    train = dataclasses.replace(TrainConfig(), step_every_parameter=every)
    optimizer = build_optimizer(model, train)
    absent = model.encoders[3].levels[0].entry[0].weight  # t2
    before = absent.detach().clone()
    mask = torch.tensor([[True, True, True, False]])
    images = torch.randn(1, 4, 16, 16, 16) * mask[..., None, None, None]
    labels = torch.randint(0, 4, (1, 16, 16, 16))
    optimisation_step(
        model,
        optimizer,
        images,
        labels,
        mask,
        train=train,
        passion=PassionConfig(),
        beta=torch.ones(4),
        modality_weights=torch.ones(4),
        warmup=False,
    )
    if every:  # a zero gradient: AdamW's first step is weight decay alone, and counts
        torch.testing.assert_close(absent.detach(), before * (1 - train.lr * train.weight_decay), rtol=0, atol=0)
        assert float(optimizer.state[absent]["step"]) == 1
    else:
        assert torch.equal(absent.detach(), before) and absent not in optimizer.state
    assert all(p.grad is not None for p in model.parameters()) is every
