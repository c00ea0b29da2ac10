"""The per-step training objective: PASSION (or its baseline) on any backbone.

:func:`compute_loss_terms` runs the backbone and returns the per-sample terms of the
spec; :func:`combine_loss_terms` weighs them into the total. Only what the loss uses is
computed: encoders and separate-decoder passes run only for the (sample, modality)
pairs that count, and all single-modality student passes run as one batched
fusion-decoder call over those pairs.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from trainables.backbones import Backbone, FusionOutput
from trainables.modalities import NUM_CLASSES, NUM_MODALITIES
from trainables.passion.config import PassionConfig
from trainables.passion.losses import (
    prototype_distillation,
    segmentation_loss,
    shared_classes,
    temperature_kl,
    upsample_probabilities,
)
from trainables.passion.preference import step_relative_preference

__all__ = ["LossTerms", "StepLoss", "compute_loss_terms", "combine_loss_terms"]


@dataclass(frozen=True)
class LossTerms:
    """Per-sample loss terms of one step (``B`` samples, ``K`` modalities).

    Per-modality terms are zero where a modality does not count. ``fuse`` and ``prm``
    are ``None`` during warm-up; ``kl``, ``proto`` and ``distance`` are ``None`` when
    the distillation is not computed.
    """

    sep: Tensor  # B K
    fuse: Tensor | None = None  # B
    prm: Tensor | None = None  # B
    kl: Tensor | None = None  # B K
    proto: Tensor | None = None  # B K
    distance: Tensor | None = None  # B K


@dataclass(frozen=True)
class StepLoss:
    """The weighted total of one step and what went into it.

    Attributes:
        total: scalar loss to back-propagate.
        parts: each weighted sum before its coefficient (``fuse``, ``prm``, ``sep``,
            ``kl``, ``proto``), as detached tensors.
        relative_preference: ``K`` step relative preference, when PASSION ran.
    """

    total: Tensor
    parts: dict[str, Tensor]
    relative_preference: Tensor | None = None


def _deep_supervision_scales(count: int) -> list[tuple[float, int]]:
    """``(weight, upsampling)`` of the deep-supervision outputs, finest first: ``(1/2, 1), (1/4, 2), ...``."""
    return [(2.0 ** -(level + 1), 2**level) for level in range(count)]


def _segmentation_terms(output: FusionOutput, target: Tensor) -> tuple[Tensor, Tensor]:
    fuse = segmentation_loss(torch.softmax(output.logits, dim=1), target)
    prm = sum(
        weight * segmentation_loss(upsample_probabilities(torch.softmax(aux, dim=1), scale), target)
        for (weight, scale), aux in zip(_deep_supervision_scales(len(output.aux_logits)), output.aux_logits)
    )
    return fuse, prm


def _distillation_kl(student: FusionOutput, teacher: FusionOutput, temperature: float) -> Tensor:
    kl = temperature_kl(student.logits, teacher.logits.detach(), temperature=temperature)
    for (weight, scale), aux_s, aux_t in zip(
        _deep_supervision_scales(len(student.aux_logits)), student.aux_logits, teacher.aux_logits
    ):
        kl = kl + weight * temperature_kl(aux_s, aux_t.detach(), temperature=temperature, scale=scale)
    return kl


def _scatter_pairs(values: Tensor, rows: Tensor, modalities: Tensor, batch: int) -> Tensor:
    grid = values.new_zeros(batch, NUM_MODALITIES)
    return grid.index_put((rows, modalities), values)


def compute_loss_terms(
    model: Backbone,
    images: Tensor,
    labels: Tensor,
    *,
    fusion_mask: Tensor,
    counted: Tensor,
    config: PassionConfig,
    warmup: bool,
) -> LossTerms:
    """Run the backbone on a batch and compute the per-sample loss terms.

    Args:
        model: a backbone honouring the contract.
        images: ``BKHWD`` input (absent modalities already zero).
        labels: ``BHWD`` int labels 0..3.
        fusion_mask: ``BK`` bool, modalities the teacher (fused path) may use.
        counted: ``BK`` bool, (sample, modality) pairs whose encoder runs and whose
            per-modality terms count: the availability for ``idt``, all for ``pdt``.
        config: PASSION coefficients (``enabled`` decides whether to distil).
        warmup: only the separate-decoder term is computed.

    Returns:
        The :class:`LossTerms` of the step.
    """
    batch = images.shape[0]
    target = F.one_hot(labels, NUM_CLASSES).movedim(-1, 1).to(images.dtype)
    features = model.encode_present(images, counted)
    rows, modalities = counted.nonzero(as_tuple=True)
    pair_target = target[rows]

    sep = images.new_zeros(batch, NUM_MODALITIES)
    if model.has_separate_decoder:
        sep_logits = model.separate([level[rows, modalities] for level in features])
        sep = _scatter_pairs(segmentation_loss(torch.softmax(sep_logits, dim=1), pair_target), rows, modalities, batch)
    if warmup:
        return LossTerms(sep=sep)

    teacher = model.fuse(features, fusion_mask)
    fuse, prm = _segmentation_terms(teacher, target)
    if not config.enabled:
        return LossTerms(sep=sep, fuse=fuse, prm=prm)

    student_mask = F.one_hot(modalities, NUM_MODALITIES).bool()
    student = model.fuse([level[rows] for level in features], student_mask)
    kl = _distillation_kl(student, _select(teacher, rows), config.temperature)
    proto, distance = prototype_distillation(
        student.features[0], teacher.features[0][rows].detach(), pair_target, classes=shared_classes(target)
    )
    return LossTerms(
        sep=sep,
        fuse=fuse,
        prm=prm,
        kl=_scatter_pairs(kl, rows, modalities, batch),
        proto=_scatter_pairs(proto, rows, modalities, batch),
        distance=_scatter_pairs(distance, rows, modalities, batch),
    )


def _select(output: FusionOutput, rows: Tensor) -> FusionOutput:
    return FusionOutput(
        logits=output.logits[rows],
        aux_logits=tuple(aux[rows] for aux in output.aux_logits),
        features=tuple(feature[rows] for feature in output.features),
    )


def combine_loss_terms(
    terms: LossTerms,
    *,
    counted: Tensor,
    beta: Tensor,
    modality_weights: Tensor,
    config: PassionConfig,
) -> StepLoss:
    """Weigh the per-sample terms into the step's total loss (spec: "Loss, per training step").

    PASSION on: ``fuse + prm + sum_m lag_m beta_m w_m sep_m + kl_weight sum_m beta_m w_m kl_m
    + proto_weight sum_m lag_m w_m proto_m`` with ``lag_m = rp_m > 0``. Off:
    ``fuse + prm + sum_m sep_m``. Warm-up (``terms.fuse is None``): ``sum_m beta_m w_m sep_m``
    (on) or ``sum_m sep_m`` (off).

    Args:
        terms: the step's per-sample terms.
        counted: ``BK`` bool pairs counted in the relative preference.
        beta: ``K`` preference-balancing factors.
        modality_weights: ``K`` frequency weights ``w_m``.
        config: PASSION coefficients.
    """
    sep = terms.sep.sum(dim=0)
    beta = beta.to(sep)
    weights = modality_weights.to(sep)
    if terms.fuse is None:
        total = (beta * weights * sep).sum() if config.enabled else sep.sum()
        return StepLoss(total=total, parts={"sep": total.detach()})
    fuse, prm = terms.fuse.sum(), terms.prm.sum()
    if not config.enabled:
        sep_total = sep.sum()
        return StepLoss(total=fuse + prm + sep_total, parts=_detached(fuse=fuse, prm=prm, sep=sep_total))

    preference = step_relative_preference(terms.distance.detach(), counted)
    lag = (preference > 0).to(sep)
    sep_total = (lag * beta * weights * sep).sum()
    kl_total = (beta * weights * terms.kl.sum(dim=0)).sum()
    proto_total = (lag * weights * terms.proto.sum(dim=0)).sum()
    total = fuse + prm + sep_total + config.kl_weight * kl_total + config.proto_weight * proto_total
    parts = _detached(fuse=fuse, prm=prm, sep=sep_total, kl=kl_total, proto=proto_total)
    return StepLoss(total=total, parts=parts, relative_preference=preference)


def _detached(**parts: Tensor) -> dict[str, Tensor]:
    return {name: value.detach() for name, value in parts.items()}
