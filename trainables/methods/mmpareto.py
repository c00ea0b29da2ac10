"""MMPareto (Wei and Hu, "MMPareto: Boosting Multimodal Learning with Innocent Unimodal
Assistance", ICML 2024), for segmentation with up to four modalities.

Each unimodal encoder receives two gradients: ``g_mm`` from the multimodal loss and
``g_u`` from its own unimodal loss. The paper integrates them (Algorithm 1): when they
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
from torch import Tensor

__all__ = ["pareto_weight", "integrate_gradients"]


def _dot(first: Sequence[Tensor], second: Sequence[Tensor]) -> Tensor:
    return torch.stack([(a * b).sum() for a, b in zip(first, second)]).sum()


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
    if _dot(multimodal, multimodal) == 0 or _dot(unimodal, unimodal) == 0:
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
