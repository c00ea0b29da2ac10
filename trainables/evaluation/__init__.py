"""Whole-volume evaluation over the 15 modality subsets: inference, BraTS metrics, summaries."""

from __future__ import annotations

from trainables.evaluation.evaluate import EvaluationResult, evaluate_model, summarize, write_evaluation
from trainables.evaluation.inference import naive_subset_probabilities, predict_all_subsets, subset_probabilities
from trainables.evaluation.metrics import brats_dice, brats_hd95, hd95

__all__ = [
    "EvaluationResult",
    "evaluate_model",
    "summarize",
    "write_evaluation",
    "predict_all_subsets",
    "subset_probabilities",
    "naive_subset_probabilities",
    "brats_dice",
    "brats_hd95",
    "hd95",
]
