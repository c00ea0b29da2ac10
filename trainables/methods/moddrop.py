"""ModDrop (Neverova, Wolf, Taylor and Nebout, "ModDrop: adaptive multi-modal gesture
recognition", TPAMI 2016): modalities are dropped at random during training so that the
network learns to work with any subset of them.

The paper drops each modality's input independently (Sec. 4, "ModDrop") with a fixed
probability. Choices it leaves open, made here:

- Only *available* modalities can be dropped (a missing one is already absent), each
  independently with probability ``rate``.
- A case whose every available modality would be dropped keeps exactly one of them,
  drawn uniformly: a segmentation network needs one input. So the effective rate is
  slightly below ``rate`` for cases with few modalities, and a case with one modality
  is never changed (ModDrop then reduces to the baseline, as the paper implies).
- A dropped modality is absent for the whole step, exactly as a missing one: its
  encoder does not run (its gradient is zero), it has no unimodal loss term and it is
  masked at fusion. Under ``pdt`` (complete data, where the encoders see every
  modality and the drawn subset applies at fusion) it is dropped from that subset.
- Draws come from the method's own generator, seeded per epoch from the run seed, so
  the rest of the run's randomness (sampling, augmentation) is the baseline's and
  ``rate = 0`` gives the baseline step exactly.
"""

from __future__ import annotations

import torch
from torch import Tensor

from trainables.methods.coefficients import ModDropConfig
from trainables.methods.hooks import TrainingMethod

__all__ = ["drop_modalities", "ModDrop"]


def drop_modalities(available: Tensor, rate: float, generator: torch.Generator) -> Tensor:
    """Drop each available modality with probability ``rate``, never a case's last one.

    Args:
        available: ``BK`` bool, modalities each case has.
        rate: drop probability in ``[0, 1)``.
        generator: CPU generator of the draws.

    Returns:
        ``BK`` bool, the modalities kept (a subset of ``available``, non-empty where
        ``available`` is).
    """
    if rate == 0:
        return available
    draws = torch.rand(available.shape, generator=generator).to(available.device)
    kept = available & (draws >= rate)
    emptied = available.any(dim=1) & ~kept.any(dim=1)
    if emptied.any():
        # One available modality per emptied case, uniformly: argmax of random keys over the available ones.
        keys = torch.rand(available.shape, generator=generator).to(available.device)
        keys = torch.where(available, keys, -1.0)
        rescued = torch.nn.functional.one_hot(keys.argmax(dim=1), available.shape[1]).bool()
        kept = torch.where(emptied[:, None], rescued, kept)
    return kept


class ModDrop(TrainingMethod):
    """ModDrop's hook: drops modalities from the step's mask (records the dropped fraction)."""

    coefficients: ModDropConfig

    def drop_modalities(self, mask: Tensor) -> Tensor:
        kept = drop_modalities(mask, self.coefficients.rate, self.generator)
        available = mask.sum(dim=0)
        self.record("moddrop/dropped", (mask & ~kept).sum(dim=0) / available.clamp(min=1), available)
        return kept
