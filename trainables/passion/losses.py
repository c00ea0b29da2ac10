"""Loss terms of PASSION, per sample, as pure functions of tensors.

Shapes: ``B`` batch, ``C`` classes (4), ``F`` feature channels, ``HWD`` the patch.
``target`` is always the one-hot ``BCHWD`` float label.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "weighted_cross_entropy",
    "soft_dice_loss",
    "segmentation_loss",
    "upsample_probabilities",
    "temperature_kl",
    "shared_classes",
    "prototype_distillation",
]

_PROB_FLOOR = 0.005  # the reference clamps probabilities before every log


def weighted_cross_entropy(probs: Tensor, target: Tensor) -> Tensor:
    """Class-frequency weighted cross-entropy per sample.

    Class ``c`` is weighted ``1 - |y_c| / |y|`` within each sample; the loss is the mean
    over voxels of ``sum_c -w_c y_c log(clamp(p_c, 0.005, 1))``.

    Args:
        probs: ``BCHWD`` softmax probabilities.
        target: ``BCHWD`` one-hot labels.

    Returns:
        ``B`` losses.
    """
    spatial = tuple(range(2, target.dim()))
    class_voxels = target.sum(dim=spatial)
    weights = 1.0 - class_voxels / class_voxels.sum(dim=1, keepdim=True)
    log_probs = torch.log(torch.clamp(probs, min=_PROB_FLOOR, max=1.0))
    per_voxel = -(weights[(...,) + (None,) * len(spatial)] * target * log_probs).sum(dim=1)
    return per_voxel.flatten(1).mean(dim=1)


def soft_dice_loss(probs: Tensor, target: Tensor, eps: float = 1e-7) -> Tensor:
    """Soft Dice loss per sample over all classes, background included.

    ``1 - mean_c 2 sum(p_c y_c) / (sum p_c + sum y_c + eps)``.

    Args:
        probs: ``BCHWD`` probabilities.
        target: ``BCHWD`` one-hot labels.

    Returns:
        ``B`` losses.
    """
    spatial = tuple(range(2, target.dim()))
    overlap = (probs * target).sum(dim=spatial)
    denominator = probs.sum(dim=spatial) + target.sum(dim=spatial) + eps
    return 1.0 - (2.0 * overlap / denominator).mean(dim=1)


def segmentation_loss(probs: Tensor, target: Tensor) -> Tensor:
    """Weighted cross-entropy plus soft Dice, per sample (``B``)."""
    return weighted_cross_entropy(probs, target) + soft_dice_loss(probs, target)


def upsample_probabilities(probs: Tensor, scale: int) -> Tensor:
    """Trilinear (``align_corners=True``) upsampling of ``BCHWD`` maps by ``scale``; identity for 1."""
    if scale == 1:
        return probs
    return F.interpolate(probs, scale_factor=scale, mode="trilinear", align_corners=True)


def temperature_kl(student_logits: Tensor, teacher_logits: Tensor, *, temperature: float, scale: int = 1) -> Tensor:
    """Temperature-scaled KL distillation per sample.

    ``T^2 * mean over classes and voxels of p_t (log p_t - log p_s)`` with
    ``p = clamp(softmax(logits / T), 0.005, 1)``, upsampled by ``scale`` after the
    softmax. The teacher is used as given: detach it before calling.

    Args:
        student_logits: ``BCHWD`` student logits.
        teacher_logits: ``BCHWD`` teacher logits.
        temperature: softening temperature ``T``.
        scale: upsampling factor applied to both probability maps.

    Returns:
        ``B`` losses.
    """

    def softened(logits: Tensor) -> Tensor:
        probs = upsample_probabilities(torch.softmax(logits / temperature, dim=1), scale)
        return torch.clamp(probs, min=_PROB_FLOOR, max=1.0)

    p_student, p_teacher = softened(student_logits), softened(teacher_logits)
    kl = p_teacher * (torch.log(p_teacher) - torch.log(p_student))
    return temperature**2 * kl.flatten(1).mean(dim=1)


def shared_classes(target: Tensor) -> list[int]:
    """Classes present in every sample of a ``BCHWD`` one-hot batch."""
    spatial = tuple(range(2, target.dim()))
    return (target.sum(dim=spatial) > 0).all(dim=0).nonzero(as_tuple=True)[0].tolist()


def prototype_distillation(
    student_features: Tensor,
    teacher_features: Tensor,
    target: Tensor,
    *,
    classes: Sequence[int] | None = None,
    eps: float = 1e-5,
) -> tuple[Tensor, Tensor]:
    """Prototype self-distillation between student and teacher decoder features.

    For every class present in every sample of the batch, each path's prototype is the
    mean of its features over that class's voxels (per sample) and its similarity map
    the cosine between each voxel's feature and the prototype. The loss compares the
    student's and the teacher's similarity maps.

    Args:
        student_features: ``BFHWD``.
        teacher_features: ``BFHWD`` (detach before calling).
        target: ``BCHWD`` one-hot labels.
        classes: the classes to use; by default :func:`shared_classes` of ``target``
            (pass them when ``target`` is a gathered subset of the batch).
        eps: cosine-similarity epsilon.

    Returns:
        ``(loss, distance)``, each ``B``: the mean squared and the mean absolute
        difference of the similarity maps over the classes used and all voxels. Both
        are zero when no class is present in every sample.
    """
    classes = shared_classes(target) if classes is None else list(classes)
    if not classes:
        zero = student_features.new_zeros(target.shape[0])
        return zero, zero
    regions = target[:, classes]  # B K HWD
    spatial = tuple(range(2, target.dim()))
    region_voxels = regions.sum(dim=spatial)  # B K

    def similarity_maps(features: Tensor) -> Tensor:
        sums = torch.einsum("bf...,bk...->bkf", features, regions)
        prototypes = sums / region_voxels.unsqueeze(2)  # B K F
        # Cosine similarity as F.cosine_similarity defines it (each norm clamped at eps),
        # contracted with einsum so no B x K x F x HWD broadcast is materialised.
        unit_prototypes = prototypes / prototypes.norm(dim=2, keepdim=True).clamp_min(eps)
        unit_features = features / features.norm(dim=1, keepdim=True).clamp_min(eps)
        return torch.einsum("bf...,bkf->bk...", unit_features, unit_prototypes)  # B K HWD

    difference = similarity_maps(student_features) - similarity_maps(teacher_features)
    return difference.pow(2).flatten(1).mean(dim=1), difference.abs().flatten(1).mean(dim=1)
