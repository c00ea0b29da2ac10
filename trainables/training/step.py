"""One optimisation step: the body of the training loop, and what the parity tests run.

The reference (``train.py``) runs every encoder and decoder in every step, so every
parameter receives a gradient, exactly zero where a modality is absent, and AdamW
(``amsgrad``) applies weight decay and momentum to it and counts its step. Here the
passes the reference multiplies by zero are skipped, and the zero gradients are put
in before the optimizer step instead (``train.step_every_parameter``).

The step runs in the run's precision (:mod:`trainables.training.precision`); in the
default ``fp32`` nothing is added to it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from trainables.backbones import Backbone
from trainables.config import TrainConfig
from trainables.errors import TrainingError
from trainables.methods.hooks import TrainingMethod
from trainables.passion import PassionConfig, training_step
from trainables.passion.objective import StepLoss
from trainables.training.precision import Precision

__all__ = ["NonFiniteLossError", "build_optimizer", "poly_lr", "counted_pairs", "optimisation_step"]

_LR_DECIMALS = 8  # the reference's LR_Scheduler rounds the poly rate to 8 decimals


class NonFiniteLossError(TrainingError):
    """The loss of a step is NaN or infinite; the optimizer did not step."""


def build_optimizer(model: Backbone, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW with amsgrad over all parameters, one group (the reference's optimizer)."""
    return torch.optim.AdamW(
        model.parameters(),
        lr=config.lr,
        betas=(config.adam_beta1, config.adam_beta2),
        weight_decay=config.weight_decay,
        amsgrad=True,
    )


def poly_lr(config: TrainConfig, epoch: int) -> float:
    """``round(lr (1 - epoch/epochs)^lr_power, 8)`` as a Python float (the reference's schedule).

    The reference computes it in NumPy float32; under NumPy >= 2 that stays float32 and
    makes AdamW's decay factor exactly 1 (no weight decay). A Python float keeps the
    decay, as under the NumPy 1.x the authors used.
    """
    return round(config.lr * (1 - epoch / config.epochs) ** config.lr_power, _LR_DECIMALS)


def counted_pairs(mask: Tensor, mask_type: str) -> Tensor:
    """``BK`` (case, modality) pairs whose terms count: all for ``pdt`` (complete data), else ``mask``."""
    return torch.ones_like(mask) if mask_type == "pdt" else mask


def optimisation_step(
    model: Backbone,
    optimizer: torch.optim.Optimizer,
    images: Tensor,
    labels: Tensor,
    mask: Tensor,
    *,
    train: TrainConfig,
    passion: PassionConfig,
    beta: Tensor,
    modality_weights: Tensor,
    warmup: bool,
    method: TrainingMethod | None = None,
    precision: Precision | None = None,
) -> StepLoss:
    """Zero the gradients, compute the loss and its gradients, and step the optimizer.

    Args:
        model: the backbone, in training mode.
        optimizer: from :func:`build_optimizer`.
        images: ``BKHWD`` input (absent modalities zero).
        labels: ``BHWD`` int labels 0..3.
        mask: ``BK`` bool, the modalities each case has in this step.
        train: ``mask_type`` decides which pairs count (all for ``pdt``);
            ``step_every_parameter`` whether parameters without gradient step.
        passion: PASSION coefficients.
        beta: ``K`` preference-balancing factors.
        modality_weights: ``K`` frequency weights.
        warmup: whether the step is in the warm-up epochs.
        method: a balancing method's hooks: it may drop modalities from ``mask``
            before the forward pass and change the gradients before the update.
        precision: autocast and loss scaling (``train.precision``); ``None`` is
            ``fp32``: neither.

    Returns:
        The step's loss (computed before the update).

    Raises:
        NonFiniteLossError: if the loss is NaN or infinite (nothing was updated).
    """
    if method is not None:
        mask = method.drop_modalities(mask)
    counted = counted_pairs(mask, train.mask_type)
    optimizer.zero_grad(set_to_none=True)
    precision = precision or Precision()
    scaler = precision.scaler
    with precision.autocast():
        loss = training_step(
            model,
            images,
            labels,
            fusion_mask=mask,
            counted=counted,
            beta=beta,
            modality_weights=modality_weights,
            config=passion,
            warmup=warmup,
            method=method,
            loss_scale=None if scaler is None else scaler.scale(images.new_ones(())),
        )
    if not torch.isfinite(loss.total):
        raise NonFiniteLossError(f"loss became {loss.total.item()}")
    if scaler is not None:
        scaler.unscale_(optimizer)  # the method's hook and the zero gradients below see true gradients
    if method is not None:
        method.after_backward(model)
    if train.step_every_parameter:
        for parameter in model.parameters():
            if parameter.requires_grad and parameter.grad is None:
                parameter.grad = torch.zeros_like(parameter)
    if scaler is None:
        optimizer.step()
    else:
        scaler.step(optimizer)  # skipped when a gradient overflowed float16; the scale then shrinks
        scaler.update()
    return loss
