"""PASSION: preference-aware self-distillation, as one backbone-independent module."""
from __future__ import annotations

from trainables.passion.config import PassionConfig
from trainables.passion.objective import LossTerms, StepLoss, combine_loss_terms, training_step
from trainables.passion.preference import PreferenceBalancer, modality_frequency_weights, step_relative_preference

__all__ = [
    "PassionConfig",
    "LossTerms",
    "StepLoss",
    "training_step",
    "combine_loss_terms",
    "PreferenceBalancer",
    "modality_frequency_weights",
    "step_relative_preference",
]
