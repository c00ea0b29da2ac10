"""PMR (Fan, Xu, Wang, Wang and Guo, "PMR: Prototypical Modal Rebalance for Multimodal
Learning", CVPR 2023), for segmentation with up to four modalities.

The paper (Sec. 3) gives each modality a non-parametric classifier: class prototypes
(the mean representation of each class), the probability of a class is the softmax of
minus the Euclidean distance to its prototype, and the prototypical cross-entropy (PCE)
of that classifier is added for the slow-learning modality, weighted by a coefficient
that grows with the imbalance ratio of the modalities' true-class scores; a
prototype-based entropy regulariser (maximising the entropy of the leading modality's
prototype classifier) is added in the early epochs to keep it from converging
prematurely. So the per-step loss on top of the baseline is

    sum_m beta_m PCE_m - mu sum_m gamma_m H_m

Choices the paper leaves open or that segmentation forces, made here:

- Representation: each modality's unimodal path is the fusion decoder with only that
  modality (the single-modality student path of PASSION); its finest decoder feature
  ``F^m`` (``BFHWD``) is the representation of every voxel.
- Prototypes are computed in the batch from the modality's own (not detached)
  features, per case and class, over the classes present in every case of the batch,
  exactly as the PASSION reference's ``prototype_pmr_loss`` (whose values are the
  golden test); the paper's prototypes come from the training set at each epoch.
  Voxels of a class left out (absent from some case) have no prototype: their
  true-class probability is 0, clamped to 0.005, as in the reference.
- ``s[b, m]`` is the mean true-class probability over the voxels of case b; the
  imbalance ratio over K modalities is :func:`~trainables.methods.imbalance.discrepancy_ratio`.
- Rebalancing coefficient: the paper scales the PCE of the slow-learning modality by a
  coefficient that grows with the imbalance ratio. Here a lagging modality
  (``rho_m < 1``) gets ``beta_m = alpha tanh(1/rho_m - 1)`` and the others 0: zero at
  balance, growing with the lag and saturating at ``alpha`` (the saturating form of
  OGM-GE's coefficient). The leading modalities (``rho_m > 1``) get ``gamma_m = 1`` for
  the entropy regulariser, during the first ``entropy_until`` of the epochs.
- Per-sample terms are summed over the cases that have the modality, as the
  baseline's terms are.
- With one modality present in every case, rho = 1: no term is added and PMR is the
  baseline (the paper's rebalancing needs two modalities to compare).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from trainables.methods.coefficients import PMRConfig
from trainables.methods.hooks import TrainingMethod, UnimodalStep
from trainables.methods.imbalance import discrepancy_ratio
from trainables.modalities import NUM_MODALITIES

__all__ = ["PrototypeClassifier", "prototype_classifier", "rebalancing_coefficients", "pmr_loss", "PMR"]

_PROB_FLOOR = 0.005  # the reference clamps the true-class probability before the log


@dataclass(frozen=True)
class PrototypeClassifier:
    """Per-sample outputs of a modality's prototype classifier (each ``B``).

    Attributes:
        cross_entropy: PCE, mean over voxels of ``-log(clamp(p_true, 0.005, 1))``.
        score: mean over voxels of ``p_true`` (the score of the imbalance ratio).
        entropy: mean over voxels of ``-sum_c p_c log p_c`` over the classes used.
    """

    cross_entropy: Tensor
    score: Tensor
    entropy: Tensor


def _shared_classes(target: Tensor) -> list[int]:
    spatial = tuple(range(2, target.dim()))
    return (target.sum(dim=spatial) > 0).all(dim=0).nonzero(as_tuple=True)[0].tolist()


def prototype_classifier(
    features: Tensor, target: Tensor, *, classes: Sequence[int] | None = None, eps: float = 1e-5
) -> PrototypeClassifier:
    """The prototype classifier of one modality's features and its PCE, score and entropy.

    Prototype of class c in case b: ``sum_v F(v) y_c(v) / (sum_v y_c(v) + eps)``; class
    probabilities: softmax over the classes used of ``-||F(v) - prototype_c||_2``.

    Args:
        features: ``BFHWD`` representation of each voxel.
        target: ``BCHWD`` one-hot labels.
        classes: the classes to use; default those present in every case of ``target``
            (pass them when ``target`` is a gathered subset of a batch).
        eps: added to the class voxel count.

    Returns:
        Per-sample PCE, score and entropy; PCE ``-log(0.005)`` and score and entropy 0
        when no class is used.
    """
    classes = _shared_classes(target) if classes is None else list(classes)
    batch = features.shape[0]
    if not classes:
        floor = -torch.log(features.new_tensor(_PROB_FLOOR))
        zero = features.new_zeros(batch)
        return PrototypeClassifier(floor.expand(batch), zero, zero)
    regions = target[:, classes]  # B K HWD
    spatial = tuple(range(2, target.dim()))
    prototypes = torch.einsum("bf...,bk...->bkf", features, regions) / (regions.sum(dim=spatial)[..., None] + eps)
    centred = features.unsqueeze(1) - prototypes.reshape(*prototypes.shape, *[1] * len(spatial))  # B K F HWD
    log_probs = torch.log_softmax(-centred.pow(2).sum(dim=2).sqrt(), dim=1)
    probs = log_probs.exp()
    true_prob = (probs * regions).sum(dim=1)  # B HWD, 0 where the voxel's class is not used
    cross_entropy = -torch.log(torch.clamp(true_prob, min=_PROB_FLOOR, max=1.0))
    entropy = -(probs * log_probs).sum(dim=1)
    return PrototypeClassifier(
        cross_entropy=cross_entropy.flatten(1).mean(dim=1),
        score=true_prob.flatten(1).mean(dim=1),
        entropy=entropy.flatten(1).mean(dim=1),
    )


def rebalancing_coefficients(ratio: Tensor, alpha: float) -> tuple[Tensor, Tensor]:
    """PMR's coefficients from the ``K`` imbalance ratios.

    Returns:
        ``(beta, leading)``: ``beta_m = alpha tanh(1/rho_m - 1)`` for a lagging modality
        (``rho_m < 1``), else 0; ``leading`` bool, ``rho_m > 1`` (gets the entropy
        regulariser).
    """
    lagging = ratio < 1
    beta = torch.where(lagging, alpha * torch.tanh(1.0 / torch.where(lagging, ratio, 1.0) - 1.0), 0.0)
    return beta, ratio > 1


def pmr_loss(
    classifiers: PrototypeClassifier, present: Tensor, *, alpha: float, entropy_weight: float
) -> tuple[Tensor, Tensor]:
    """The PMR terms of one step: ``sum_m beta_m sum_b PCE[b,m] - mu sum_m gamma_m sum_b H[b,m]``.

    Args:
        classifiers: ``BK`` outputs (zero where a modality is absent).
        present: ``BK`` bool, the (case, modality) pairs that count.
        alpha: scale of the rebalancing coefficient.
        entropy_weight: ``mu``; 0 while the entropy regulariser is off.

    Returns:
        ``(loss, ratio)``: the scalar loss and the ``K`` imbalance ratios.
    """
    ratio = discrepancy_ratio(classifiers.score.detach(), present)
    beta, leading = rebalancing_coefficients(ratio, alpha)
    weights = present.to(classifiers.cross_entropy.dtype)
    cross_entropy = (weights * classifiers.cross_entropy).sum(dim=0)
    entropy = (weights * classifiers.entropy).sum(dim=0)
    loss = (beta.to(cross_entropy) * cross_entropy).sum() - entropy_weight * (leading.to(entropy) * entropy).sum()
    return loss, ratio


class PMR(TrainingMethod):
    """PMR's hook: the rebalancing terms on every counted modality's unimodal path."""

    coefficients: PMRConfig

    def unimodal_loss(self, step: UnimodalStep) -> Tensor | None:
        rows, modalities = step.pairs
        only = F.one_hot(modalities, NUM_MODALITIES).bool()
        student = step.model.fuse([level[rows] for level in step.features], only)
        per_pair = prototype_classifier(student.features[0], step.target[rows], classes=step.classes)
        classifiers = PrototypeClassifier(*(step.scatter(value) for value in vars(per_pair).values()))
        entropy_weight = self.coefficients.entropy_weight if self.in_first(self.coefficients.entropy_until) else 0.0
        loss, ratio = pmr_loss(classifiers, step.counted, alpha=self.coefficients.alpha, entropy_weight=entropy_weight)
        present = step.counted.any(dim=0)
        self.record("pmr/rho", ratio, present)
        self.record("pmr/beta", rebalancing_coefficients(ratio, self.coefficients.alpha)[0], present)
        return loss
