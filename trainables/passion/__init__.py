"""PASSION: preference-aware self-distillation, as one backbone-independent module.

Names are imported on first use, so that the configuration does not pull in torch.
"""

from __future__ import annotations

from trainables.lazy import lazy_exports

# Public name to the submodule that defines it.
_EXPORTS: dict[str, str] = {
    "PassionConfig": "config",
    "LossTerms": "objective",
    "StepLoss": "objective",
    "training_step": "objective",
    "combine_loss_terms": "objective",
    "PreferenceBalancer": "preference",
    "modality_frequency_weights": "preference",
    "step_relative_preference": "preference",
}

__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
