"""Coefficients of PASSION, with the reference implementation's values as defaults."""

from __future__ import annotations

from dataclasses import dataclass

from trainables.errors import ConfigError

__all__ = ["PassionConfig"]


@dataclass(frozen=True)
class PassionConfig:
    """Every tunable number of PASSION.

    Attributes:
        enabled: PASSION on; off gives the baseline ``fuse + prm + sum_m sep_m``. Set by
            the run's method (``method.name``), not on its own.
        temperature: softening temperature of the pixel-wise KL distillation.
        kl_weight: weight of the pixel-wise distillation term.
        proto_weight: weight of the prototype distillation term.
        eta: initial step of the preference-balancing (beta) update.
        eta_growth: factor applied to ``eta`` every ``eta_every`` epochs (epoch 0 included).
        eta_every: period of the ``eta`` growth, in epochs.
        beta_min: lower clamp of beta.
        beta_max: upper clamp of beta.
        beta_norm: L2 norm beta is rescaled to after each update.
        warmup_epochs: epochs during which only the separate-decoder term counts
            (the reference's ``region_fusion_start_epoch``).
        per_sample_preference: a sample whose relative preference is undefined (one
            modality, or no class shared by the batch) is left out of the step's
            preference; off (the reference), it turns the uni-modal and prototype
            terms of the whole step off (see ``step_relative_preference``).
        preference_gate: gate the separate-decoder and prototype terms by the step's
            relative preference (``lag_m``, the gradient-wise regularisation); off,
            every modality's terms count (``lag_m = 1``), as in the
            ``passion-no-grad-gate`` ablation.
    """

    enabled: bool = True
    temperature: float = 4.0
    kl_weight: float = 0.5
    proto_weight: float = 0.1
    eta: float = 0.01
    eta_growth: float = 1.5
    eta_every: int = 100
    beta_min: float = 0.1
    beta_max: float = 4.0
    beta_norm: float = 2.0
    warmup_epochs: int = 0
    per_sample_preference: bool = False
    preference_gate: bool = True

    def __post_init__(self) -> None:
        checks = {
            "temperature": self.temperature > 0,
            "kl_weight": self.kl_weight >= 0,
            "proto_weight": self.proto_weight >= 0,
            "eta": self.eta >= 0,
            "eta_growth": self.eta_growth > 0,
            "eta_every": self.eta_every >= 1,
            "beta_min": 0 < self.beta_min <= self.beta_max,
            "beta_norm": self.beta_norm > 0,
            "warmup_epochs": self.warmup_epochs >= 0,
        }
        for name, valid in checks.items():
            if not valid:
                raise ConfigError(f"passion.{name} has an invalid value {getattr(self, name)!r}")
