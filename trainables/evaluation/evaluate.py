"""Evaluation of a trained model on whole test volumes, for all 15 modality subsets.

For each case and subset: Dice and HD95 of WT, TC, ET and ETpp (see
:mod:`trainables.evaluation.metrics`). The summary averages each subset over the
cases, then the subsets:

``{"dice": {SUBSET: {REGION: value}}, "hd95": {...}, "mean": {"dice": {REGION: value}, "hd95": {...}},
"eval": {"hd95_percentile": ..., "hd95_convention": ...}}``

with SUBSET the present modalities joined by ``-`` (``flair-t1ce``) and REGION one of
``WT, TC, ET, ETpp``; the same names serve as metric names elsewhere. ``eval`` records
which HD95 definition produced the numbers (see :func:`~trainables.evaluation.metrics.hd95`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from trainables.backbones import Backbone
from trainables.data.atomic import atomic_write, ensure_directory
from trainables.data.datasets import VolumeDataset
from trainables.evaluation.conventions import (
    HD95Convention,
    HD95Percentile,
    check_hd95_convention,
    check_hd95_percentile,
)
from trainables.evaluation.hd95_workers import HD95Workers
from trainables.evaluation.inference import predict_all_subsets
from trainables.evaluation.metrics import brats_dice
from trainables.modalities import REGIONS, SUBSET_MASKS, subset_name

__all__ = [
    "METRICS",
    "PER_CASE_COLUMNS",
    "PER_CASE_FILE",
    "SUMMARY_FILE",
    "EvaluationResult",
    "evaluate_model",
    "summarize",
    "write_evaluation",
]

logger = logging.getLogger(__name__)

METRICS: tuple[str, ...] = ("dice", "hd95")
_VALUE_COLUMNS = tuple(f"{metric}_{region}" for metric in METRICS for region in REGIONS)
PER_CASE_COLUMNS: tuple[str, ...] = ("case", "subset", *_VALUE_COLUMNS)
PER_CASE_FILE = "per_case.csv"
SUMMARY_FILE = "summary.json"
_SUBSET_NAMES = tuple(subset_name(mask) for mask in SUBSET_MASKS)


@dataclass(frozen=True)
class EvaluationResult:
    """Per-case metrics and their summary.

    Attributes:
        per_case: one row per case and subset, columns :data:`PER_CASE_COLUMNS`
            (``dice_WT`` ... ``hd95_ETpp``), subsets in reference id order.
        summary: per-subset means, their mean over subsets and the HD95 definition,
            see the module docstring.
    """

    per_case: pd.DataFrame
    summary: dict[str, Any]


def evaluate_model(
    model: Backbone,
    data_dir: Path,
    cases: Sequence[str],
    *,
    patch_size: int,
    overlap: float = 0.5,
    hd95_percentile: HD95Percentile = "pooled",
    hd95_convention: HD95Convention = "reference",
    device: str | torch.device | None = None,
    progress: bool = True,
    hd95_workers: int = 0,
) -> EvaluationResult:
    """Evaluate ``model`` on the whole volumes of ``cases`` for all 15 subsets.

    Args:
        model: backbone in eval mode, on ``device``.
        data_dir: prepared data set (``vol/NAME_vol.npy``, ``seg/NAME_seg.npy``).
        cases: case names, e.g. from ``test.txt``.
        patch_size: sliding-window edge (the training patch size).
        overlap: window overlap, 0.5 in the protocol.
        hd95_percentile: ``"pooled"`` (reference, medpy) or ``"max_directed"`` (MONAI).
        hd95_convention: HD95 when exactly one mask is empty: ``"reference"`` (1.0)
            or ``"max"`` (373.13).
        device: where the model runs (default: where its parameters are).
        progress: show a progress bar over cases x subsets (on a terminal).
        hd95_workers: processes computing HD95 while the next case's inference runs
            (:class:`~trainables.evaluation.hd95_workers.HD95Workers`); 0 computes it in
            this process after each case. The numbers are the same.

    Returns:
        The per-case table and its summary.

    Raises:
        DataError: if a case is missing from ``data_dir`` or unreadable.
        ConfigError: for a bad HD95 option, patch size, overlap or worker count, or no cases.
    """
    check_hd95_percentile(hd95_percentile)
    check_hd95_convention(hd95_convention)
    dataset = VolumeDataset(data_dir, cases)
    workers = HD95Workers(hd95_workers, percentile=hd95_percentile, convention=hd95_convention)
    pending: list[tuple[str, torch.Tensor, list[Future[np.ndarray]]]] = []
    total = len(dataset) * len(SUBSET_MASKS)
    # disable=None: a bar on terminals only, so that logs and CI output stay clean.
    with tqdm(total=total, disable=None if progress else True, desc="evaluate", unit="subset") as bar, workers:
        for index in range(len(dataset)):
            item = dataset[index]
            bar.set_postfix_str(item["name"])
            predictions = predict_all_subsets(
                model, item["image"], patch_size=patch_size, overlap=overlap, device=device
            )
            truth = item["label"][None]
            _, dice = brats_dice(predictions, truth)
            pending.append((item["name"], dice, workers.submit(predictions, item["label"])))
            bar.update(len(predictions))
        rows = [
            {
                "case": name,
                "subset": _SUBSET_NAMES[subset],
                **{f"dice_{region}": float(value) for region, value in zip(REGIONS, dice[subset])},
                **{f"hd95_{region}": float(value) for region, value in zip(REGIONS, distances.result())},
            }
            for name, dice, futures in pending
            for subset, distances in enumerate(futures)
        ]
    per_case = pd.DataFrame(rows, columns=list(PER_CASE_COLUMNS))
    summary = {**summarize(per_case), "eval": {"hd95_percentile": hd95_percentile, "hd95_convention": hd95_convention}}
    logger.info(
        "evaluated %d cases x %d subsets: mean Dice %s",
        len(dataset),
        len(SUBSET_MASKS),
        ", ".join(f"{region} {value:.4f}" for region, value in summary["mean"]["dice"].items()),
    )
    return EvaluationResult(per_case=per_case, summary=summary)


def summarize(per_case: pd.DataFrame) -> dict[str, Any]:
    """Mean of each subset over cases, and the mean of those over the 15 subsets.

    Args:
        per_case: rows with columns :data:`PER_CASE_COLUMNS`, every subset present.

    Returns:
        ``{"dice": {SUBSET: {REGION: v}}, "hd95": {...}, "mean": {"dice": {REGION: v}, "hd95": {...}}}``,
        subsets in reference id order.
    """
    by_subset = per_case.groupby("subset")[list(_VALUE_COLUMNS)].mean().reindex(list(_SUBSET_NAMES))
    summary: dict[str, Any] = {
        metric: {
            subset: {region: float(by_subset.at[subset, f"{metric}_{region}"]) for region in REGIONS}
            for subset in _SUBSET_NAMES
        }
        for metric in METRICS
    }
    summary["mean"] = {
        metric: {region: float(by_subset[f"{metric}_{region}"].mean()) for region in REGIONS} for metric in METRICS
    }
    return summary


def write_evaluation(result: EvaluationResult, out_dir: Path) -> tuple[Path, Path]:
    """Write ``per_case.csv`` and ``summary.json`` into ``out_dir`` atomically.

    Returns:
        The paths of the CSV and of the JSON file.

    Raises:
        ConfigError: if ``out_dir`` is a file.
    """
    out_dir = ensure_directory(Path(out_dir))
    per_case_path = out_dir / PER_CASE_FILE
    summary_path = out_dir / SUMMARY_FILE
    with atomic_write(per_case_path, "w") as stream:
        result.per_case.to_csv(stream, index=False, lineterminator="\n")
    with atomic_write(summary_path, "w") as stream:
        json.dump(result.summary, stream, indent=2)
        stream.write("\n")
    logger.info("wrote %s and %s", per_case_path, summary_path)
    return per_case_path, summary_path
