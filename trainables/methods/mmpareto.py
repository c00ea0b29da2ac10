"""MMPareto (Wei and Hu, "MMPareto: Boosting Multimodal Learning with Innocent Unimodal
Assistance", ICML 2024), for segmentation with up to four modalities.

Each unimodal encoder receives two gradients: ``g_mm`` from the multimodal loss and
``g_u`` from its own unimodal loss. The paper integrates them (its MMPareto algorithm; the official code settles the details below): when they
do not conflict (``cos(g_mm, g_u) > 0``) with equal weights 1/2; when they conflict,
with the weights of the minimum-norm point of their convex hull (MGDA, two tasks:
``a = clamp((g_u - g_mm).g_u / ||g_mm - g_u||^2, 0, 1)`` on ``g_mm``), which gives a
direction common to both losses. The integrated gradient is ``2 (a g_mm + (1-a) g_u)``,
and, because a small Pareto gradient generalises worse (the paper's analysis of SGD
noise), its magnitude is lifted to at least that of the plain sum ``g_mm + g_u``.

Choices the paper leaves open or that segmentation forces, made here:

- Losses: the multimodal loss is the baseline's fused terms (``fuse + prm``); the
  unimodal loss of modality m is its separate-decoder term ``sep_m`` where the
  backbone has a separate decoder (RFNet), else the segmentation loss of the fusion
  decoder with only that modality.
- The cosine and the weights are computed over all of a modality encoder's
  parameters flattened together; the magnitude is lifted per parameter tensor and
  everything is scaled by ``gamma`` (both as the official code does: ``gamma = 1.5``
  there). The decoders' gradients are the plain sum.
- A zero gradient cannot conflict: if ``g_mm`` or ``g_u`` of an encoder is zero (an
  absent modality, or one without a unimodal term) its gradient is the plain sum.
- Every modality present in a step is integrated on its own; MMPareto has no
  cross-modality ratio, so with one modality present it still integrates that
  modality's two gradients (the paper implies no reduction there); with ``gamma = 1``
  and no conflict the step is the baseline's exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainables.backbones import Backbone
from trainables.methods.coefficients import MMParetoConfig
from trainables.methods.hooks import TrainingMethod, UnimodalStep, modality_encoder_parameters
from trainables.modalities import NUM_MODALITIES
from trainables.passion.losses import segmentation_loss

__all__ = ["conflicting", "pareto_weight", "integrate_gradients", "MMPareto"]


def _dot(first: Sequence[Tensor], second: Sequence[Tensor]) -> Tensor:
    return torch.stack([(a * b).sum() for a, b in zip(first, second)]).sum()


def conflicting(multimodal: Sequence[Tensor], unimodal: Sequence[Tensor]) -> bool:
    """Whether two non-zero gradients conflict (cosine <= 0); a zero gradient conflicts with nothing."""
    if not (_nonzero(multimodal) and _nonzero(unimodal)):
        return False
    return bool(_dot(multimodal, unimodal) <= 0)


def pareto_weight(multimodal: Sequence[Tensor], unimodal: Sequence[Tensor]) -> float:
    """The weight ``a`` of the multimodal gradient (``1 - a`` on the unimodal one).

    Args:
        multimodal: ``g_mm``, one tensor per encoder parameter.
        unimodal: ``g_u``, the same shapes.

    Returns:
        1/2 when the gradients do not conflict (cosine > 0), else the MGDA weight of
        the minimum-norm point of their convex hull.
    """
    cross = _dot(multimodal, unimodal)
    if cross > 0:
        return 0.5
    uni_sq = _dot(unimodal, unimodal)
    difference_sq = _dot(multimodal, multimodal) - 2 * cross + uni_sq
    return float(torch.clamp((uni_sq - cross) / difference_sq, 0.0, 1.0))


def integrate_gradients(
    multimodal: Sequence[Tensor], unimodal: Sequence[Tensor], *, gamma: float, rescale: bool
) -> list[Tensor]:
    """MMPareto's gradient of one encoder from its multimodal and unimodal gradients.

    Args:
        multimodal: ``g_mm`` per parameter tensor.
        unimodal: ``g_u`` per parameter tensor.
        gamma: final scale.
        rescale: lift each tensor to at least the norm of ``g_mm + g_u`` (MMPareto);
            off: conventional Pareto integration.

    Returns:
        The integrated gradient per parameter tensor; ``gamma (g_mm + g_u)`` when either
        gradient is zero.
    """
    summed = [m + u for m, u in zip(multimodal, unimodal)]
    if not (_nonzero(multimodal) and _nonzero(unimodal)):
        return [gamma * grad for grad in summed]
    weight = pareto_weight(multimodal, unimodal)
    integrated = []
    for m, u, plain in zip(multimodal, unimodal, summed):
        grad = 2 * (weight * m + (1 - weight) * u)
        if rescale:
            norm, plain_norm = grad.norm(), plain.norm()
            if plain_norm > norm > 0:  # a tensor the Pareto weights zeroed stays zero
                grad = grad * (plain_norm / norm)
        integrated.append(gamma * grad)
    return integrated


class MMPareto(TrainingMethod):
    """MMPareto's hooks: the encoders back-propagated once per loss group, then integrated."""

    coefficients: MMParetoConfig

    def __init__(self, coefficients: MMParetoConfig, *, seed: int) -> None:
        super().__init__(coefficients, seed=seed)
        self._encoders: list[list[nn.Parameter]] | None = None
        self._multimodal: list[Tensor | None] = []
        self._model: Backbone | None = None

    def after_multimodal_stage(self, features: Sequence[Tensor]) -> None:
        self._multimodal = [None if leaf.grad is None else leaf.grad.clone() for leaf in features]

    def unimodal_loss(self, step: UnimodalStep) -> Tensor | None:
        self._model = step.model
        if step.model.has_separate_decoder:
            return None  # its separate-decoder terms are the unimodal losses
        rows, modalities = step.pairs
        only = F.one_hot(modalities, NUM_MODALITIES).bool()
        logits = step.model.fuse([level[rows] for level in step.features], only).logits
        return segmentation_loss(torch.softmax(logits, dim=1), step.target[rows]).sum()

    def back_propagate_encoders(self, features: Sequence[Tensor], leaves: Sequence[Tensor]) -> bool:
        if self._model is None:
            return False
        if self._encoders is None:
            self._encoders = modality_encoder_parameters(self._model)
        multimodal = self._multimodal or [None] * len(leaves)
        unimodal = [
            None if leaf.grad is None else leaf.grad if first is None else leaf.grad - first
            for leaf, first in zip(leaves, multimodal)
        ]
        owned = [parameter for parameters in self._encoders for parameter in parameters]
        from_multimodal = self._encoder_gradients(features, multimodal, owned, retain=True)
        from_unimodal = self._encoder_gradients(features, unimodal, owned, retain=False)
        conflicts, integrated_any = torch.zeros(NUM_MODALITIES), torch.zeros(NUM_MODALITIES)
        for modality, parameters in enumerate(self._encoders):
            g_mm = [from_multimodal[id(parameter)] for parameter in parameters]
            g_u = [from_unimodal[id(parameter)] for parameter in parameters]
            integrated = integrate_gradients(
                g_mm, g_u, gamma=self.coefficients.gamma, rescale=self.coefficients.rescale
            )
            for parameter, grad in zip(parameters, integrated):
                parameter.grad = grad
            conflicts[modality] = float(conflicting(g_mm, g_u))
            integrated_any[modality] = float(_nonzero(g_mm) and _nonzero(g_u))
        # Share of the steps with both gradients in which they conflicted.
        self.record("mmpareto/conflict", conflicts, integrated_any)
        self._model, self._multimodal = None, []
        return True

    @staticmethod
    def _encoder_gradients(
        features: Sequence[Tensor], gradients: Sequence[Tensor | None], owned: Sequence[nn.Parameter], *, retain: bool
    ) -> dict[int, Tensor]:
        """Back-propagate ``gradients`` of the features; the modality encoders' parameter
        gradients it gives are returned (and taken off ``.grad``), shared parameters keep theirs."""
        reached = [(level, grad) for level, grad in zip(features, gradients) if grad is not None]
        if reached:
            torch.autograd.backward([level for level, _ in reached], [grad for _, grad in reached], retain_graph=retain)
        taken = {}
        for parameter in owned:
            taken[id(parameter)] = torch.zeros_like(parameter) if parameter.grad is None else parameter.grad
            parameter.grad = None
        return taken


def _nonzero(gradients: Sequence[Tensor]) -> bool:
    return any(bool(grad.any()) for grad in gradients)
