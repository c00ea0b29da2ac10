"""Whole-volume evaluation over the 15 modality subsets: inference, BraTS metrics, summaries.

Names are imported on first use (PEP 562), so that the light HD95 options module
(:mod:`trainables.evaluation.conventions`) does not pull in torch through this package.
"""

from __future__ import annotations

from trainables.lazy import lazy_exports

# Public name to the submodule that defines it.
_EXPORTS: dict[str, str] = {
    "EvaluationResult": "evaluate",
    "evaluate_model": "evaluate",
    "summarize": "evaluate",
    "write_evaluation": "evaluate",
    "predict_all_subsets": "inference",
    "subset_probabilities": "inference",
    "naive_subset_probabilities": "inference",
    "brats_dice": "metrics",
    "brats_hd95": "metrics",
    "hd95": "metrics",
}

__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
