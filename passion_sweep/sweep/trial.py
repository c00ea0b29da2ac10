"""What one trial of a sweep does.

:func:`run_trial` is the trial itself, written against :class:`TrialSession` rather
than Ray: it trains with :func:`~trainables.training.loop.fit` (reporting each
epoch and its checkpoint through the session, and resuming from the session's
checkpoint after a failure), evaluates the last model on all 15 modality subsets of
the test cases and logs everything to the trial's one MLflow run. The Ray Tune side of
the session lives in :mod:`passion_sweep.sweep.launcher`; the data every trial reads is
prepared beforehand on the driver (:mod:`passion_sweep.sweep.data`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from passion_sweep import tracking
from passion_sweep.layout import EVALUATION_DIR
from passion_sweep.sweep.data import SweepData
from passion_sweep.sweep.search_space import GridCell
from passion_sweep.sweep.spec import SweepSpec
from trainables.backbones import Backbone
from trainables.config import RunConfig
from trainables.data import read_case_list
from trainables.errors import TrainingError
from trainables.evaluation.evaluate import PER_CASE_FILE, evaluate_model, write_evaluation
from trainables.training.loop import CONFIG_NAME, METRICS_NAME, EpochReport, fit

__all__ = ["SweepContext", "TrialSession", "run_trial"]

logger = logging.getLogger(__name__)


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
    """Use the trial's CPUs for torch threads and cap a GPU share's memory.

    Ray makes the trial's GPU the process's only visible one (device 0); without the
    cap, one trial could take memory the others sharing the GPU were promised.
    """
    torch.set_num_threads(max(1, int(cpus)))
    if 0 < gpus < 1 and torch.cuda.is_available():
        torch.cuda.set_per_process_memory_fraction(gpus)


@contextlib.contextmanager
def _gpu_memory_errors(gpus: float) -> Iterator[None]:
    """Turn CUDA running out of memory into an error naming the trial's share and how to change it."""
    try:
        yield
    except torch.OutOfMemoryError:
        total = torch.cuda.get_device_properties(0).total_memory / 2**30
        if 0 < gpus < 1:
            reason = (
                f"within its share of the GPU ({gpus:g} x {total:.1f} GiB = {gpus * total:.1f} GiB, set by "
                "resources.gpu or resources.trials_per_gpu): give each trial a larger share (fewer trials_per_gpu "
                "or a larger gpu), or lower model.patch_size or train.batch_size"
            )
        else:
            reason = f"on a whole GPU ({total:.1f} GiB): lower model.patch_size or train.batch_size"
        raise TrainingError(f"the trial ran out of CUDA memory {reason}") from None


def _grid_values(cell: GridCell, config: RunConfig) -> dict[str, str]:
    """The values that tell trials apart in tables and plots: tags of the trial's run (which
    tables select by) and params too (which MLflow's compare view plots)."""
    return {
        "backbone": config.model.backbone,
        "split": str(cell.values.get("split", "none")),
        "method": config.method.name,
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
    # A trial that stopped after logging an epoch but before the scheduler saved its checkpoint
    # trains that epoch again (from the last checkpoint, or from scratch): log it once.
    logged = tracking.last_logged_step(context.tracking, run_id)
    last_epoch: dict[str, float] = {}

    def on_epoch(report: EpochReport) -> None:
        objective.update(report.metrics)
        metrics = {**report.metrics, **objective.as_metrics()}
        if report.epoch > logged:
            tracking.log_metrics(context.tracking, run_id, metrics, step=report.epoch)
        if report.epoch < report.epochs:
            session.report(metrics, run_dir)
        else:
            last_epoch.update(metrics)

    model = fit(config, run_dir, resume=resumed, report=on_epoch)
    return model, {**last_epoch, **objective.as_metrics()}


def _hd95_workers(configured: int | None, cpus: float, gpus: float) -> int:
    """``eval.hd95_workers``, or by default the trial's CPUs when a GPU runs its inference."""
    if configured is not None:
        return configured
    return max(1, int(cpus)) if gpus > 0 and torch.cuda.is_available() else 0


def _evaluate(
    context: SweepContext,
    config: RunConfig,
    run_id: str,
    model: Backbone,
    session: TrialSession,
    run_dir: Path,
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
        hd95_percentile=spec.eval.hd95_percentile,
        hd95_convention=spec.eval.hd95_convention,
        progress=False,
        hd95_workers=_hd95_workers(spec.eval.hd95_workers, session.cpus, session.gpus),
    )
    evaluation_dir = context.directory / EVALUATION_DIR / session.trial_id
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
    grid = _grid_values(cell, config)
    run_id = tracking.open_trial_run(
        context.tracking,
        session.trial_id,
        run_name=f"{cell.name}-{session.trial_id}",
        tags={tracking.TAG_CELL: cell.label, **grid},
        params={**tracking.flatten_config(config), **grid},
    )
    with tempfile.TemporaryDirectory(prefix=f"trial-{session.trial_id}-") as scratch, _gpu_memory_errors(session.gpus):
        run_dir = Path(scratch)
        model, last_epoch = _train(context, config, run_id, session, run_dir)
        test_means = _evaluate(context, config, run_id, model, session, run_dir)
        tracking.finish_trial_run(context.tracking, run_id)
        session.report({**last_epoch, **test_means}, run_dir)
