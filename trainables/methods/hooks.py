"""The points at which a balancing method changes the training step, and how a run builds its method.

One training step calls, in this order (every default leaves the baseline step as it is):

1. :meth:`TrainingMethod.drop_modalities` on the step's ``BK`` modality mask, before the
   forward pass (ModDrop);
2. :meth:`TrainingMethod.after_multimodal_stage` once the fused (multimodal) terms are
   back-propagated into the encoder features (MMPareto keeps their gradient);
3. :meth:`TrainingMethod.unimodal_loss` after the per-modality terms: an extra loss on
   the per-modality paths, back-propagated like the other terms (PMR), or a look at
   them without a loss (OGM-GE's scores);
4. :meth:`TrainingMethod.back_propagate_encoders` to back-propagate the encoders
   (MMPareto splits it into its multimodal and unimodal parts);
5. :meth:`TrainingMethod.after_backward` on the final gradients, before the optimizer
   step (OGM-GE).

The loop calls :meth:`TrainingMethod.start_epoch` before each epoch and logs
:meth:`TrainingMethod.epoch_metrics` after it. Random draws come from the method's own
generator, seeded from ``(seed, epoch)``: the rest of the run draws as the baseline
does, and a resumed run draws as an uninterrupted one.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainables.methods.registry import method_info
from trainables.modalities import MODALITIES, NUM_MODALITIES

if TYPE_CHECKING:
    from trainables.backbones import Backbone
    from trainables.config import RunConfig

__all__ = ["UnimodalStep", "TrainingMethod", "build_training_method", "modality_encoder_parameters", "unimodal_logits"]


@dataclass(frozen=True)
class UnimodalStep:
    """What :meth:`TrainingMethod.unimodal_loss` sees of the step.

    Attributes:
        model: the backbone.
        features: per-level ``BKC_l...`` encoder features (leaves: a loss of them is
            back-propagated into the encoders with the other terms).
        counted: ``BK`` bool, the (case, modality) pairs whose per-modality terms count.
        target: ``BCHWD`` one-hot labels.
        classes: the classes present in every case of the batch.
    """

    model: Backbone
    features: Sequence[Tensor]
    counted: Tensor
    target: Tensor
    classes: Sequence[int]

    @property
    def pairs(self) -> tuple[Tensor, Tensor]:
        """Row and modality indices of the counted pairs."""
        rows, modalities = self.counted.nonzero(as_tuple=True)
        return rows, modalities

    def scatter(self, values: Tensor) -> Tensor:
        """Per-pair values (in :attr:`pairs` order) as ``BK``, zero elsewhere."""
        grid = values.new_zeros(self.counted.shape)
        return grid.index_put(self.pairs, values)


def unimodal_logits(step: UnimodalStep) -> Tensor:
    """Each counted pair's unimodal prediction (``P4HWD``): the separate decoder's where the
    backbone has one, else the fusion decoder with only that modality."""
    rows, modalities = step.pairs
    if step.model.has_separate_decoder:
        return step.model.separate([level[rows, modalities] for level in step.features])
    only = F.one_hot(modalities, NUM_MODALITIES).bool()
    return step.model.fuse([level[rows] for level in step.features], only).logits


def modality_encoder_parameters(model: Backbone) -> list[list[nn.Parameter]]:
    """The parameters that modality m's encoder uses and no other modality's does, per modality.

    Found by differentiating :meth:`~trainables.backbones.Backbone.encode` of each
    modality on one zero patch (in eval mode, so no running statistic moves);
    parameters that several modalities use (mmFormer's positional embedding) belong to
    none. Nothing of the model changes.
    """
    parameters = [parameter for parameter in model.parameters() if parameter.requires_grad]
    training = model.training
    model.eval()
    try:
        used = []
        probe = next(model.parameters()).new_zeros((1, 1, *[model.patch_size] * 3))
        for modality in range(NUM_MODALITIES):
            outputs = model.encode(probe, modality)
            total = torch.stack([level.sum() for level in outputs]).sum()
            grads = torch.autograd.grad(total, parameters, allow_unused=True)
            used.append({index for index, grad in enumerate(grads) if grad is not None})
    finally:
        model.train(training)
    return [
        [parameters[index] for index in sorted(own) if all(index not in other for other in used if other is not own)]
        for own in used
    ]


class TrainingMethod:
    """A balancing method's hooks into the training step (see the module docstring).

    Args:
        coefficients: the method's coefficient section (``None`` for none).
        seed: the run seed; the method's generator is seeded from ``(seed, epoch)``.
    """

    def __init__(self, coefficients: Any, *, seed: int) -> None:
        self.coefficients = coefficients
        self.seed = seed
        self.generator = torch.Generator()
        self.epoch = 0
        self.epochs = 1
        self._sums: dict[str, Tensor] = {}
        self._counts: dict[str, Tensor] = {}

    def start_epoch(self, epoch: int, epochs: int) -> None:
        """Seed the generator for ``epoch`` (0-based) of ``epochs`` and reset the epoch's metrics."""
        self.epoch, self.epochs = epoch, epochs
        self.generator.manual_seed(int(np.random.SeedSequence([self.seed, epoch, 0x6D6574]).generate_state(1)[0]))
        self._sums, self._counts = {}, {}

    def in_first(self, fraction: float) -> bool:
        """Whether the current epoch lies in the first ``fraction`` of the run."""
        return self.epoch < fraction * self.epochs

    def drop_modalities(self, mask: Tensor) -> Tensor:
        """The ``BK`` modality mask the step uses (default: unchanged)."""
        return mask

    def after_multimodal_stage(self, features: Sequence[Tensor]) -> None:
        """Called once the fused terms are back-propagated into the feature leaves (default: nothing)."""

    def unimodal_loss(self, step: UnimodalStep) -> Tensor | None:
        """An extra scalar loss of the per-modality paths, or ``None`` (default)."""
        return None

    def back_propagate_encoders(self, features: Sequence[Tensor], leaves: Sequence[Tensor]) -> bool:
        """Back-propagate the leaves' gradients through the encoders; ``False`` (default): the step does."""
        return False

    def after_backward(self, model: Backbone) -> None:
        """Change the final gradients in place before the optimizer step (default: nothing)."""

    def record(self, name: str, values: Tensor, weights: Tensor | None = None) -> None:
        """Accumulate ``K`` per-modality values for :meth:`epoch_metrics`, which reports their
        mean over the epoch's steps weighted by ``weights`` (default 1; 0 leaves a step out)."""
        values = values.detach().to("cpu", torch.float64)
        weights = torch.ones_like(values) if weights is None else weights.detach().to("cpu", torch.float64)
        self._sums[name] = self._sums.get(name, torch.zeros_like(values)) + values * weights
        self._counts[name] = self._counts.get(name, torch.zeros_like(values)) + weights

    def epoch_metrics(self) -> dict[str, float]:
        """The epoch's recorded ratios, as ``<name>/<modality>`` (modalities of zero weight left out)."""
        metrics = {}
        for name, total in self._sums.items():
            counts = self._counts[name]
            for index, modality in enumerate(MODALITIES):
                if counts[index] > 0:
                    metrics[f"{name}/{modality}"] = float(total[index] / counts[index])
        return metrics


def build_training_method(config: RunConfig) -> TrainingMethod | None:
    """The hooks of ``config``'s method, or ``None`` for a method without any (the plain step)."""
    info = method_info(config.method.name)
    if info.hooks is None:
        return None
    module, _, name = info.hooks.partition(":")
    hooks = getattr(importlib.import_module(module), name)
    coefficients = None if info.section is None else getattr(config, info.section)
    return hooks(coefficients, seed=config.train.seed)
