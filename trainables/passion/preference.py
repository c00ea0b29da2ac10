"""Relative preference of modalities and the epoch-level beta update that balances them."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from trainables.modalities import NUM_MODALITIES
from trainables.passion.config import PassionConfig

__all__ = ["step_relative_preference", "modality_frequency_weights", "PreferenceBalancer"]


def step_relative_preference(distance: Tensor, mask: Tensor, *, per_sample: bool = False) -> Tensor:
    """Relative preference of each modality in one step.

    ``rp_m = sum_b mask[b,m] (D[b,m] / Dbar_b - 1)`` with ``Dbar_b`` the mean distance
    over the modalities sample ``b`` has. ``Dbar_b`` is zero for a sample with one
    counted modality (its student is the teacher) or when no class is shared by the
    batch; the reference then divides 0 by 0, and the NaN spreads to every modality of
    the step, so that no modality lags (``NaN > 0`` is false): the step has no
    uni-modal and no prototype term. That is the default; with ``per_sample`` only
    samples with ``Dbar_b = 0`` are left out.

    Args:
        distance: ``BK`` student-to-teacher distances ``D`` (zero where absent).
        mask: ``BK`` bool, modalities counted per sample.
        per_sample: leave out samples whose preference is undefined instead of
            making the whole step's NaN (the reference).

    Returns:
        ``K`` relative preferences; ``rp_m > 0`` means modality ``m`` lags behind.
    """
    weights = mask.to(distance.dtype)
    mean = (distance * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1)
    defined = mean > 0
    ratio = torch.where(defined[:, None], distance / torch.where(defined, mean, 1.0)[:, None] - 1.0, 0.0)
    preference = (ratio * weights).sum(dim=0)
    if not per_sample and not bool(defined.all()):
        return torch.full_like(preference, float("nan"))
    return preference


def modality_frequency_weights(modality_counts: Tensor, steps_per_epoch: int) -> Tensor:
    """``w_m = S / N_m`` (float64): rarer modalities weigh more; 0 for a modality no case has.

    The reference's ``modal_weight = iter_per_epoch / modal_num``; at batch size 1,
    ``S`` is the number of training cases.

    Args:
        modality_counts: ``K`` number of training cases having each modality (``N_m``).
        steps_per_epoch: ``S``, the steps of one epoch.
    """
    counts = modality_counts.to(torch.float64)
    return torch.where(counts > 0, steps_per_epoch / counts.clamp(min=1), 0.0)


class PreferenceBalancer:
    """Holds beta and eta and performs the end-of-epoch beta update.

    During an epoch, :meth:`accumulate` sums the masked distances; :meth:`end_epoch`
    turns them into the epoch's relative preference
    ``RP_m = (mean_m Dep_m - Dep_m) / mean_m Dep_m`` (``Dep_m`` the summed distance
    divided by ``normalisers[m]``), grows eta on schedule and moves beta against RP.

    Args:
        config: PASSION coefficients.
        normalisers: ``K`` divisors of the epoch distances: ``N_m`` for ``idt``, the
            number of steps for ``pdt``.
    """

    def __init__(self, config: PassionConfig, normalisers: Tensor) -> None:
        self.config = config
        self.normalisers = normalisers.to(torch.float64)
        self.beta = torch.ones(NUM_MODALITIES, dtype=torch.float64)
        self.eta = config.eta
        self._epoch_distance = torch.zeros(NUM_MODALITIES, dtype=torch.float64)

    def accumulate(self, distance: Tensor, mask: Tensor) -> None:
        """Add one step's ``BK`` distances of the counted (``mask``) modalities."""
        self._epoch_distance += (distance.detach() * mask).sum(dim=0).to(torch.float64).cpu()

    def end_epoch(self, epoch: int) -> Tensor:
        """Update beta from the accumulated distances and reset them.

        Modalities with a zero normaliser (never present) keep ``RP = 0`` and are left
        out of the mean.

        Returns:
            ``K`` epoch relative preferences RP.
        """
        known = self.normalisers > 0
        distance = torch.where(known, self._epoch_distance / torch.where(known, self.normalisers, 1.0), 0.0)
        mean = distance[known].mean() if known.any() else distance.new_tensor(0.0)
        preference = (mean - distance) / mean if mean > 0 else torch.zeros_like(distance)
        preference = torch.where(known, preference, 0.0)
        if epoch % self.config.eta_every == 0:
            self.eta *= self.config.eta_growth
        beta = torch.clamp(self.beta - self.eta * preference, self.config.beta_min, self.config.beta_max)
        self.beta = self.config.beta_norm * beta / beta.norm()
        self._epoch_distance.zero_()
        return preference

    def state_dict(self) -> dict[str, Any]:
        """State to checkpoint (beta, eta and the current epoch's accumulated distances)."""
        return {"beta": self.beta.clone(), "eta": self.eta, "epoch_distance": self._epoch_distance.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.beta = state["beta"].to(torch.float64)
        self.eta = float(state["eta"])
        self._epoch_distance = state["epoch_distance"].to(torch.float64)
