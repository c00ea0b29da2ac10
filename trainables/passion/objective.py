"""The per-step training objective: PASSION (or its baseline) on any backbone.

:func:`combine_loss_terms` weighs per-sample loss terms into the step's total (the
spec's formula, in one place). :func:`training_step` runs the backbone, computes the
terms and accumulates their gradients. It computes only what the loss uses: encoders
and separate-decoder passes run only for the (sample, modality) pairs that count (and
the separate passes of modalities the relative preference gates off without autograd,
for the log), and all single-modality student passes run as one batched fusion-decoder
call over those pairs. It also back-propagates in stages: the decoders (teacher, students, separate)
each run on detached copies of the encoder features and are back-propagated, and
their graphs freed, before the next stage; the encoders are back-propagated last
with the summed feature gradients. By linearity the gradients equal those of the
total, while only one decoder stage's activations are alive at a time.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import Tensor

from trainables.backbones import Backbone, FusionOutput
from trainables.methods.hooks import TrainingMethod, UnimodalStep
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

__all__ = ["LossTerms", "StepLoss", "combine_loss_terms", "training_step"]


@dataclass(frozen=True)
class LossTerms:
    """Per-sample loss terms of one step (``B`` samples, ``K`` modalities); ``None`` where not computed.

    Per-modality terms are zero where a modality does not count.
    """

    sep: Tensor | None = None  # B K
    fuse: Tensor | None = None  # B
    prm: Tensor | None = None  # B
    kl: Tensor | None = None  # B K
    proto: Tensor | None = None  # B K
    distance: Tensor | None = None  # B K


@dataclass(frozen=True)
class StepLoss:
    """The weighted total of one step and what went into it.

    Attributes:
        total: scalar loss.
        parts: each weighted sum before its coefficient (``fuse``, ``prm``, ``sep``,
            ``kl``, ``proto``), detached.
        relative_preference: ``K`` step relative preference, when PASSION distilled
            (NaN where the reference's is, see :func:`step_relative_preference`).
        distance: ``BK`` student-to-teacher distances, when PASSION distilled.
        per_modality: ``K`` unweighted per-modality terms summed over the batch
            (``sep``, ``kl``, ``proto``, ``distance``; those computed), detached: the
            reference's ``seplist``, ``kllist``, ``protolist`` and ``distlist``.
    """

    total: Tensor
    parts: dict[str, Tensor]
    relative_preference: Tensor | None = None
    distance: Tensor | None = None
    per_modality: dict[str, Tensor] = field(default_factory=dict)


def _weighted_parts(
    terms: LossTerms,
    *,
    lag: Tensor | None,
    beta: Tensor,
    modality_weights: Tensor,
    config: PassionConfig,
    warmup: bool,
) -> dict[str, Tensor]:
    """The spec's weighted sums of whichever terms are present (distillation only with ``lag``).

    PASSION on: ``sep = sum_m lag_m beta_m w_m sep_m`` (no lag during warm-up),
    ``kl = sum_m beta_m w_m kl_m``, ``proto = sum_m lag_m w_m proto_m``. Off: ``sep = sum_m sep_m``.
    """
    parts: dict[str, Tensor] = {}
    if terms.fuse is not None:
        assert terms.prm is not None  # the fused path always brings its deep supervision
        parts["fuse"] = terms.fuse.sum()
        parts["prm"] = terms.prm.sum()
    if terms.sep is not None:
        sep = terms.sep.sum(dim=0)
        if not config.enabled:
            parts["sep"] = sep.sum()
        else:
            assert warmup or lag is not None  # PASSION after warm-up always has a preference
            gate = 1.0 if warmup or lag is None else lag.to(sep)
            parts["sep"] = (gate * beta.to(sep) * modality_weights.to(sep) * sep).sum()
    if terms.kl is not None and lag is not None:
        assert terms.proto is not None  # distillation computes both terms
        kl = terms.kl.sum(dim=0)
        parts["kl"] = (beta.to(kl) * modality_weights.to(kl) * kl).sum()
        parts["proto"] = (lag.to(kl) * modality_weights.to(kl) * terms.proto.sum(dim=0)).sum()
    return parts


def _lagging(preference: Tensor, config: PassionConfig) -> Tensor:
    """``lag_m = rp_m > 0``, or every modality when the relative-preference gate is off."""
    return preference > 0 if config.preference_gate else torch.ones_like(preference, dtype=torch.bool)


def _total(parts: dict[str, Tensor], config: PassionConfig) -> Tensor:
    scale = {"kl": config.kl_weight, "proto": config.proto_weight}
    return cast(Tensor, sum(scale.get(name, 1.0) * value for name, value in parts.items()))


def combine_loss_terms(
    terms: LossTerms,
    *,
    counted: Tensor,
    beta: Tensor,
    modality_weights: Tensor,
    config: PassionConfig,
    warmup: bool = False,
) -> StepLoss:
    """Weigh the per-sample terms into the step's total loss (spec: "Loss, per training step").

    PASSION on: ``fuse + prm + sum_m lag_m beta_m w_m sep_m + kl_weight sum_m beta_m w_m kl_m
    + proto_weight sum_m lag_m w_m proto_m`` with ``lag_m = rp_m > 0``. Off:
    ``fuse + prm + sum_m sep_m``. Warm-up: ``sum_m beta_m w_m sep_m`` (on) or ``sum_m sep_m`` (off).

    Args:
        terms: the step's per-sample terms (all of them for the chosen method).
        counted: ``BK`` bool pairs counted in the relative preference.
        beta: ``K`` preference-balancing factors.
        modality_weights: ``K`` frequency weights ``w_m``.
        config: PASSION coefficients.
        warmup: whether the step is in the warm-up epochs.
    """
    preference = lag = None
    if config.enabled and not warmup:
        assert terms.distance is not None, "PASSION needs the distances of its distillation"
        preference = step_relative_preference(terms.distance.detach(), counted, per_sample=config.per_sample_preference)
        lag = _lagging(preference, config)
    parts = _weighted_parts(terms, lag=lag, beta=beta, modality_weights=modality_weights, config=config, warmup=warmup)
    total = _total(parts, config)
    return StepLoss(
        total=total,
        parts={name: value.detach() for name, value in parts.items()},
        relative_preference=preference,
        distance=None if terms.distance is None else terms.distance.detach(),
    )


DeepSupervision = Sequence[tuple[int, float]]


def _declared(aux_logits: Sequence[Tensor], supervision: DeepSupervision) -> zip:
    """Pairs each auxiliary output with its declared ``(upsampling, weight)``."""
    if len(aux_logits) != len(supervision):
        raise ValueError(
            f"the fusion decoder returned {len(aux_logits)} auxiliary outputs but the backbone declares "
            f"{len(supervision)} in deep_supervision"
        )
    return zip(aux_logits, supervision)


def _segmentation_terms(output: FusionOutput, target: Tensor, supervision: DeepSupervision) -> tuple[Tensor, Tensor]:
    """``fuse`` on the fused logits and ``prm = sum_k w_k seg(up_k(softmax(aux_k)))``, per sample."""
    fuse = segmentation_loss(torch.softmax(output.logits, dim=1), target)
    prm = sum(
        weight * segmentation_loss(upsample_probabilities(torch.softmax(aux, dim=1), scale), target)
        for aux, (scale, weight) in _declared(output.aux_logits, supervision)
    )
    return fuse, prm


def _distillation_kl(
    student: FusionOutput, teacher: FusionOutput, temperature: float, supervision: DeepSupervision
) -> Tensor:
    kl = temperature_kl(student.logits, teacher.logits, temperature=temperature)
    for (aux_s, (scale, weight)), aux_t in zip(_declared(student.aux_logits, supervision), teacher.aux_logits):
        kl = kl + weight * temperature_kl(aux_s, aux_t, temperature=temperature, scale=scale)
    return kl


class _Pairs:
    """The (sample, modality) pairs that count, and scattering per-pair values back to ``BK``."""

    def __init__(self, counted: Tensor) -> None:
        self.batch = counted.shape[0]
        self.rows, self.modalities = counted.nonzero(as_tuple=True)
        self.single = counted.sum(dim=1)[self.rows] == 1  # per pair: its sample has only this modality

    def subset(self, keep: Tensor) -> _Pairs:
        """The pairs where ``keep`` (one bool per pair) holds."""
        subset = copy.copy(self)
        subset.rows, subset.modalities, subset.single = self.rows[keep], self.modalities[keep], self.single[keep]
        return subset

    def __len__(self) -> int:
        return self.rows.numel()

    def scatter(self, values: Tensor) -> Tensor:
        grid = values.new_zeros(self.batch, NUM_MODALITIES)
        return grid.index_put((self.rows, self.modalities), values)


def _detached(output: FusionOutput, rows: Tensor) -> FusionOutput:
    return FusionOutput(
        logits=output.logits[rows].detach(),
        aux_logits=tuple(aux[rows].detach() for aux in output.aux_logits),
        features=tuple(feature[rows].detach() for feature in output.features),
    )


def training_step(
    model: Backbone,
    images: Tensor,
    labels: Tensor,
    *,
    fusion_mask: Tensor,
    counted: Tensor,
    beta: Tensor,
    modality_weights: Tensor,
    config: PassionConfig,
    warmup: bool,
    method: TrainingMethod | None = None,
    loss_scale: Tensor | None = None,
) -> StepLoss:
    """Compute one step's loss and accumulate its gradients into the model's ``.grad``.

    Args:
        model: a backbone honouring the contract.
        images: ``BKHWD`` input (absent modalities already zero).
        labels: ``BHWD`` int labels 0..3.
        fusion_mask: ``BK`` bool, modalities the teacher (fused path) may use.
        counted: ``BK`` bool, (sample, modality) pairs whose encoder runs and whose
            per-modality terms count: the availability for ``idt``, all for ``pdt``.
        beta: ``K`` preference-balancing factors.
        modality_weights: ``K`` frequency weights ``w_m``.
        config: PASSION coefficients (``enabled`` decides whether to distil).
        warmup: only the separate-decoder term counts.
        method: a balancing method's hooks (after the fused terms, an extra unimodal
            loss as part ``method``, the encoders' back-propagation), if any.
        loss_scale: multiplies every stage's loss before its backward pass, so the
            gradients are those of ``loss_scale * total`` (float16 loss scaling); the
            returned loss is unscaled.

    Returns:
        The step's (detached) loss, its parts, and the relative preference and
        distances when PASSION distilled.
    """
    target = F.one_hot(labels, NUM_CLASSES).movedim(-1, 1).to(images.dtype)
    pairs = _Pairs(counted)
    features = model.encode_present(images, counted)
    leaves = [level.detach().requires_grad_() for level in features]
    weighting: dict[str, Any] = {"beta": beta, "modality_weights": modality_weights, "config": config, "warmup": warmup}
    parts: dict[str, Tensor] = {}
    per_modality: dict[str, Tensor] = {}
    preference = lag = distance = None

    def back_propagate(terms: LossTerms) -> None:
        stage = _weighted_parts(terms, lag=lag, **weighting)
        total = _total(stage, config)
        if total.requires_grad:  # not when every term of the stage is gated off or skipped
            _scaled(total, loss_scale).backward()
        parts.update({name: value.detach() for name, value in stage.items()})
        for name in ("sep", "kl", "proto"):
            if getattr(terms, name) is not None:
                per_modality[name] = getattr(terms, name).detach().sum(dim=0)

    if not warmup:
        teacher = model.fuse(leaves, fusion_mask)
        fuse, prm = _segmentation_terms(teacher, target, model.deep_supervision)
        back_propagate(LossTerms(fuse=fuse, prm=prm))
        if method is not None:
            method.after_multimodal_stage(leaves)
        if config.enabled:
            kl, proto, distance = _distillation_terms(model, leaves, pairs, teacher, target, config)
            preference = step_relative_preference(distance, counted, per_sample=config.per_sample_preference)
            lag = _lagging(preference, config)
            per_modality["distance"] = distance.sum(dim=0)
            back_propagate(LossTerms(kl=kl, proto=proto))
    if model.has_separate_decoder:
        back_propagate(LossTerms(sep=_separate_terms(model, leaves, pairs, target, lag)))
    if method is not None:
        extra = method.unimodal_loss(UnimodalStep(model, leaves, counted, target, shared_classes(target)))
        if extra is not None:
            _scaled(extra, loss_scale).backward()
            parts["method"] = extra.detach()
    if method is None or not method.back_propagate_encoders(features, leaves):
        _back_propagate_encoders(features, leaves)
    return StepLoss(
        total=_total(parts, config),
        parts=parts,
        relative_preference=preference,
        distance=distance,
        per_modality=per_modality,
    )


def _scaled(loss: Tensor, scale: Tensor | None) -> Tensor:
    return loss if scale is None else loss * scale


def _distillation_terms(
    model: Backbone,
    leaves: Sequence[Tensor],
    pairs: _Pairs,
    teacher: FusionOutput,
    target: Tensor,
    config: PassionConfig,
) -> tuple[Tensor, Tensor, Tensor]:
    """Per-pair KL and prototype terms and distances of the batched student passes, scattered to ``BK``.

    A sample with one modality still needs its student pass although the student is
    its teacher: the clamped KL has a gradient there (where probabilities are clamped).
    """
    student_mask = F.one_hot(pairs.modalities, NUM_MODALITIES).bool()
    student = model.fuse([level[pairs.rows] for level in leaves], student_mask)
    reference = _detached(teacher, pairs.rows)
    kl = _distillation_kl(student, reference, config.temperature, model.deep_supervision)
    proto, distance = prototype_distillation(
        student.features[0], reference.features[0], target[pairs.rows], classes=shared_classes(target)
    )
    # Where a sample has one modality, its student is its teacher: the reference's
    # distance is exactly 0 there (at its batch size 1), which makes the sample's
    # relative preference undefined; a differently batched pass may leave roundoff.
    distance = torch.where(pairs.single, 0.0, distance.detach())
    return pairs.scatter(kl), pairs.scatter(proto), pairs.scatter(distance)


def _separate_terms(
    model: Backbone, leaves: Sequence[Tensor], pairs: _Pairs, target: Tensor, lag: Tensor | None
) -> Tensor:
    """Per-pair separate-decoder losses, scattered to ``BK``.

    With PASSION the term of a modality counts only where it lags (``lag``); the
    reference multiplies the others by zero, so they get no gradient. They run without
    autograd, only for the per-modality log.
    """
    counts = pairs if lag is None else pairs.subset(lag[pairs.modalities])
    losses = _separate_losses(model, leaves, counts, target)
    if lag is not None:
        with torch.no_grad():
            gated_off = _separate_losses(model, leaves, pairs.subset(~lag[pairs.modalities]), target)
        losses = losses + gated_off  # outside no_grad, or the counted terms lose their graph
    return losses


def _separate_losses(model: Backbone, leaves: Sequence[Tensor], pairs: _Pairs, target: Tensor) -> Tensor:
    if not len(pairs):
        return target.new_zeros(pairs.batch, NUM_MODALITIES)
    logits = model.separate([level[pairs.rows, pairs.modalities] for level in leaves])
    return pairs.scatter(segmentation_loss(torch.softmax(logits, dim=1), target[pairs.rows]))


def _back_propagate_encoders(features: Sequence[Tensor], leaves: Sequence[Tensor]) -> None:
    reached = [(level, leaf.grad) for level, leaf in zip(features, leaves) if leaf.grad is not None]
    if reached:
        torch.autograd.backward([level for level, _ in reached], [grad for _, grad in reached])
