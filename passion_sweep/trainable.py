"""What one trial of a sweep does, and the data every trial needs, prepared beforehand.

:func:`prepare_sweep_data` runs on the driver before any trial starts: it generates
(or finds) the data set and writes the split CSVs, so that trials only get absolute
paths. :func:`run_trial` is the trial itself, written against :class:`TrialSession`
rather than Ray: it trains with :func:`~trainables.training.loop.fit` (reporting each
epoch and its checkpoint through the session, and resuming from the session's
checkpoint after a failure), evaluates the last model on all 15 modality subsets of
the test cases and logs everything to the trial's one MLflow run. The Ray Tune side of
the session lives in :mod:`passion_sweep.launcher`.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from passion_sweep import tracking
from passion_sweep.phantom import ensure_phantom
from passion_sweep.search_space import GridCell
from passion_sweep.spec import SweepSpec
from trainables.backbones import Backbone
from trainables.config import RunConfig
from trainables.data import read_case_list, read_manifest, read_split_csv, write_missing_rate_split
from trainables.data.atomic import ensure_directory
from trainables.evaluation.evaluate import PER_CASE_FILE, evaluate_model, write_evaluation
from trainables.training.loop import CONFIG_NAME, METRICS_NAME, EpochReport, fit

__all__ = ["SweepData", "SweepContext", "TrialSession", "prepare_sweep_data", "run_trial"]

logger = logging.getLogger(__name__)



@dataclass(frozen=True)
class SweepData:
    """The prepared data of a sweep: absolute data folder and split CSV per split name."""

    root: Path
    splits: Mapping[str, Path]


@dataclass(frozen=True)
class SweepContext:
    """Everything a trial needs besides its own suggestion; built once on the driver.

    Attributes:
        spec: the sweep's spec.
        directory: the sweep folder (on storage that every trial can reach).
        cells: the grid cells, indexed by a trial's ``cell``.
        data: the prepared data.
        tracking: the sweep's MLflow parent run.
    """

    spec: SweepSpec
    directory: Path
    cells: Sequence[GridCell]
    data: SweepData
    tracking: tracking.SweepTracking

    def run_config(self, cell: GridCell, params: Mapping[str, Any]) -> RunConfig:
        """The run config of a trial of ``cell`` with the sampled ``params``."""
        split = cell.values.get("split")
        data = {"root": str(self.data.root), "split": None if split is None else str(self.data.splits[split])}
        return self.spec.run_config({**cell.values, **params}, data=data)


class TrialSession(Protocol):
    """The trial's link to the scheduler that runs it (Ray Tune in a sweep)."""

    @property
    def trial_id(self) -> str:
        """Unique id of the trial, stable across retries and resumes."""

    @property
    def cpus(self) -> float:
        """CPUs granted to the trial."""

    @property
    def gpus(self) -> float:
        """GPUs granted to the trial (a fraction shares one)."""

    def restore_checkpoint(self, run_dir: Path) -> bool:
        """Copy the latest reported checkpoint folder into ``run_dir``; ``False`` if none."""

    def report(self, metrics: Mapping[str, float], checkpoint_dir: Path) -> None:
        """Report one result with the checkpoint folder it belongs to."""


def prepare_sweep_data(spec: SweepSpec, sweep_dir: Path) -> SweepData:
    """Find or generate the data set and write each split's CSV into ``sweep_dir/splits``.

    Runs on the driver, before any trial.

    Raises:
        DataError: if the data set, a case list or a split CSV is missing or malformed.
    """
    if spec.data.phantom is not None:
        phantom = spec.data.phantom
        cache = phantom.cache or sweep_dir / "phantom"
        root = ensure_phantom(cache, cases=phantom.cases, shape=phantom.shape, seed=phantom.seed)
    else:
        root = Path(str(spec.data.path))
    known = {row.case for row in read_manifest(root)}
    read_case_list(root / spec.eval.cases, known_cases=known)
    split_dir = ensure_directory(sweep_dir / "splits", what="split folder")
    splits = {}
    for name in dict.fromkeys(spec.grid.get("split", [])):
        split = spec.splits[str(name)]
        if split.csv is not None:
            read_split_csv(split.csv, known_cases=known)
            splits[str(name)] = split.csv
        else:
            splits[str(name)] = split_dir / f"{name}.csv"
            write_missing_rate_split(root, splits[str(name)], rates=split.rates(), seed=split.seed)
    return SweepData(root=root, splits=splits)


class _Objective:
    """Best value so far of one metric (``None`` until the metric first appears)."""

    def __init__(self, metric: str, mode: str) -> None:
        self.metric = metric
        self._better = max if mode == "max" else min
        self.value: float | None = None

    def update(self, metrics: Mapping[str, float]) -> None:
        value = metrics.get(self.metric)
        if value is not None and math.isfinite(value):
            self.value = value if self.value is None else self._better(self.value, value)

    def as_metrics(self) -> dict[str, float]:
        return {} if self.value is None else {tracking.OBJECTIVE: self.value}


def _configure_torch(cpus: float, gpus: float) -> None:
    """Use the trial's CPUs for torch threads and cap a GPU share's memory."""
    torch.set_num_threads(max(1, int(cpus)))
    if 0 < gpus < 1 and torch.cuda.is_available():
        torch.cuda.set_per_process_memory_fraction(gpus)


def _tags(cell: GridCell, config: RunConfig) -> dict[str, str]:
    return {
        tracking.TAG_CELL: cell.label,
        "backbone": config.model.backbone,
        "split": str(cell.values.get("split", "none")),
        "method": "passion" if config.passion.enabled else "baseline",
        "seed": str(config.train.seed),
    }


def _past_metrics(run_dir: Path) -> list[dict[str, float]]:
    path = run_dir / METRICS_NAME
    return [json.loads(line) for line in path.read_text().splitlines() if line] if path.is_file() else []


def _train(
    context: SweepContext, config: RunConfig, run_id: str, session: TrialSession, run_dir: Path
) -> tuple[Backbone, dict[str, float]]:
    """Train (or go on training from the session's checkpoint), logging every epoch.

    Returns:
        The trained model and the last epoch's metrics, which are not reported yet.
    """
    objective = _Objective(context.spec.search.metric, context.spec.search.mode)
    resumed = session.restore_checkpoint(run_dir)
    for past in _past_metrics(run_dir):
        objective.update(past)
    last_epoch: dict[str, float] = {}

    def on_epoch(report: EpochReport) -> None:
        objective.update(report.metrics)
        metrics = {**report.metrics, **objective.as_metrics()}
        tracking.log_metrics(context.tracking, run_id, metrics, step=report.epoch)
        if report.epoch < report.epochs:
            session.report(metrics, run_dir)
        else:
            last_epoch.update(metrics)

    model = fit(config, run_dir, resume=resumed, report=on_epoch)
    return model, {**last_epoch, **objective.as_metrics()}


def _evaluate(
    context: SweepContext, config: RunConfig, run_id: str, model: Backbone, trial_id: str, run_dir: Path
) -> dict[str, float]:
    """Evaluate on all 15 subsets of the test cases, save and log the results.

    Returns:
        The mean test Dice per region (``test/dice/mean/<region>``).
    """
    spec = context.spec
    result = evaluate_model(
        model,
        context.data.root,
        read_case_list(context.data.root / spec.eval.cases),
        patch_size=config.model.patch_size,
        overlap=spec.eval.overlap,
        hd95_convention=spec.eval.hd95_convention,
        progress=False,
    )
    evaluation_dir = context.directory / "evaluation" / trial_id
    write_evaluation(result, evaluation_dir)
    tracking.log_test_results(
        context.tracking,
        run_id,
        result.summary,
        step=config.train.epochs,
        artifacts=[evaluation_dir / PER_CASE_FILE, run_dir / CONFIG_NAME],
    )
    return {f"test/dice/mean/{region}": value for region, value in result.summary["mean"]["dice"].items()}


def run_trial(context: SweepContext, cell_index: int, params: Mapping[str, Any], session: TrialSession) -> None:
    """Train, evaluate and log one trial; resumes from the session's checkpoint if any.

    Every epoch but the last is reported as soon as it ends; the last one is reported
    after the test evaluation, together with its results, so that a scheduler
    stopping the trial at its last epoch cannot cut the evaluation off.

    Args:
        context: the sweep's context.
        cell_index: the trial's grid cell.
        params: the values sampled for the searched keys.
        session: the scheduler's side of the trial.

    Raises:
        PassionSweepError: from training or evaluation (the scheduler may retry).
    """
    cell = context.cells[cell_index]
    config = context.run_config(cell, params)
    _configure_torch(session.cpus, session.gpus)
    run_id = tracking.open_trial_run(
        context.tracking,
        session.trial_id,
        run_name=f"{cell.name}-{session.trial_id}",
        tags=_tags(cell, config),
        params=tracking.flatten_config(config),
    )
    with tempfile.TemporaryDirectory(prefix=f"trial-{session.trial_id}-") as scratch:
        run_dir = Path(scratch)
        model, last_epoch = _train(context, config, run_id, session, run_dir)
        test_means = _evaluate(context, config, run_id, model, session.trial_id, run_dir)
        tracking.finish_trial_run(context.tracking, run_id)
        session.report({**last_epoch, **test_means}, run_dir)
