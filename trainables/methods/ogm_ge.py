"""OGM-GE (Peng, Wei, Deng, Wang and Hu, "Balanced Multimodal Learning via On-the-fly
Gradient Modulation", CVPR 2022), for segmentation with up to four modalities.

The paper measures, per step, each modality's share of the correct prediction (its
score: the summed softmax probability of the true class of its unimodal
output), takes the discrepancy ratio ``rho_u`` of the two modalities, and scales the
gradient of the leading modality's encoder by (Eq. 10)

    k_u = 1 - tanh(alpha rho_u)   if rho_u > 1,   else 1

adding Gaussian noise with the covariance of the gradient's SGD noise to keep its
generalisation ability (GE). Choices the paper leaves open or that
segmentation forces, made here:

- Unimodal output: the separate decoder's logits where the backbone has one (RFNet),
  else the fusion decoder with only that modality; the score ``s[b, m]`` is the mean
  over voxels of its true-class probability.
- Four modalities: :func:`~trainables.methods.imbalance.discrepancy_ratio` compares a
  modality with the mean of the others present in the same cases; every modality
  with ``rho_m > 1`` is modulated (with two modalities at most one is, as in the paper).
  Eq. 10 is discontinuous at ``rho = 1`` (``k`` jumps to ``1 - tanh(alpha)``); kept.
- What is modulated: every parameter of the modality's encoder (the official code
  modulates convolution kernels only), with the step's whole gradient of it.
- GE noise: per parameter tensor, ``N(0, std(g)^2)`` with the standard deviation of
  that tensor's gradient, as the official code draws it, added only to gradients that
  were modulated (``k < 1``; the official code perturbs both modalities' gradients in
  every step), so that ``alpha = 0`` gives the baseline step exactly.
- Modulation is on during the first ``until`` of the epochs (the official code's
  default window is the first half); the noise comes from the method's own generator.
- With one modality present in every case, rho = 1: nothing is modulated and OGM-GE is
  the baseline (the paper's ratio needs two modalities).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from trainables.backbones import Backbone
from trainables.methods.coefficients import OGMGEConfig
from trainables.methods.hooks import TrainingMethod, UnimodalStep, modality_encoder_parameters, unimodal_logits
from trainables.methods.imbalance import discrepancy_ratio

__all__ = ["modulation_coefficients", "modulate_gradients", "true_class_scores", "OGMGE"]

_NOISE_EPS = 1e-8  # keeps the noise of a constant gradient non-degenerate, as the official code


def modulation_coefficients(ratio: Tensor, alpha: float) -> Tensor:
    """Eq. 10: ``k_m = 1 - tanh(alpha rho_m)`` where ``rho_m > 1``, else 1 (``K``)."""
    return torch.where(ratio > 1, 1.0 - torch.tanh(alpha * ratio), torch.ones_like(ratio))


def modulate_gradients(
    parameters: Iterable[torch.nn.Parameter], coefficient: float, *, noise: bool, generator: torch.Generator
) -> None:
    """Scale the gradients of ``parameters`` in place by ``coefficient`` and, with ``noise``, add GE noise.

    Args:
        parameters: one modality encoder's parameters (those without a gradient are skipped).
        coefficient: ``k_m``; 1 leaves the gradients untouched (no noise either).
        noise: add ``N(0, (std(g) + 1e-8)^2)`` per tensor, drawn after scaling ``g``'s std is taken.
        generator: CPU generator of the noise.
    """
    if coefficient == 1:
        return
    for parameter in parameters:
        grad = parameter.grad
        if grad is None:
            continue
        spread = grad.std().item() + _NOISE_EPS if noise and grad.numel() > 1 else None
        grad.mul_(coefficient)
        if spread is not None:
            draws = torch.randn(grad.shape, generator=generator, dtype=grad.dtype)
            grad.add_(draws.to(grad.device), alpha=spread)


def true_class_scores(logits: Tensor, target: Tensor) -> Tensor:
    """Mean over voxels of the softmax probability of the true class (``P4HWD``, one-hot ``P4HWD``) per prediction."""
    return (torch.softmax(logits, dim=1) * target).sum(dim=1).flatten(1).mean(dim=1)


class OGMGE(TrainingMethod):
    """OGM-GE's hooks: scores from the unimodal paths, then the encoders' gradients modulated."""

    coefficients: OGMGEConfig

    def __init__(self, coefficients: OGMGEConfig, *, seed: int) -> None:
        super().__init__(coefficients, seed=seed)
        self._encoders: list[list[nn.Parameter]] | None = None
        self._modulation: Tensor | None = None

    def unimodal_loss(self, step: UnimodalStep) -> Tensor | None:
        self._modulation = None
        if not self.in_first(self.coefficients.until):
            return None
        with torch.no_grad():
            rows, _ = step.pairs
            scores = step.scatter(true_class_scores(unimodal_logits(step), step.target[rows]))
        ratio = discrepancy_ratio(scores, step.counted)
        self._modulation = modulation_coefficients(ratio, self.coefficients.alpha)
        present = step.counted.any(dim=0)
        self.record("ogm/rho", ratio, present)
        self.record("ogm/k", self._modulation, present)
        return None

    def after_backward(self, model: Backbone) -> None:
        if self._modulation is None:
            return
        if self._encoders is None:
            self._encoders = modality_encoder_parameters(model)
        for parameters, coefficient in zip(self._encoders, self._modulation.tolist()):
            modulate_gradients(parameters, coefficient, noise=self.coefficients.noise, generator=self.generator)
