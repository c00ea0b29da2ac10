"""The training loop, a plain function: ``fit(config, out_dir, report=...)``.

It runs without Ray. Each finished epoch is written to ``metrics.jsonl`` and to an
atomically replaced ``checkpoint.pt`` and then passed to ``report``, the hook through
which ``passion-sweep train`` prints progress and the sweep reports to Ray Tune.
Resuming continues from the last checkpoint exactly: model, optimizer, beta and eta
are restored and every epoch's sampling and augmentation are seeded from
``(seed, epoch)``.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, RandomSampler

from trainables.backbones import Backbone, build_backbone
from trainables.config import RunConfig
from trainables.data import (
    Augmentation,
    MissingRateSplit,
    TrainingDataset,
    read_case_list,
    read_manifest,
    read_split_csv,
)
from trainables.data.atomic import atomic_write
from trainables.errors import CheckpointError, ConfigError, TrainingError
from trainables.methods.hooks import TrainingMethod, build_training_method
from trainables.modalities import MODALITIES, NUM_MODALITIES
from trainables.passion import PreferenceBalancer, modality_frequency_weights
from trainables.training.checkpoint import load_checkpoint, require_keys, save_checkpoint
from trainables.training.precision import Precision, build_precision
from trainables.training.step import (
    NonFiniteLossError,
    build_optimizer,
    counted_pairs,
    optimisation_step,
    poly_lr,
)
from trainables.training.validation import validate

__all__ = ["EpochReport", "fit", "resolve_device", "CHECKPOINT_NAME", "METRICS_NAME", "CONFIG_NAME"]

logger = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"
METRICS_NAME = "metrics.jsonl"
CONFIG_NAME = "config.json"


@dataclass(frozen=True)
class EpochReport:
    """What one finished epoch hands to the ``report`` callback.

    Attributes:
        epoch: number of completed epochs (1-based).
        epochs: total epochs of the run.
        metrics: flat metric names to values (``loss``, ``loss/fuse``, ``beta/flair``,
            ``rp/t2``, ``val/dice/WT``, ``lr``, ``epoch_seconds``...).
        checkpoint: path of the checkpoint holding this epoch (in the run folder).
    """

    epoch: int
    epochs: int
    metrics: dict[str, float]
    checkpoint: Path


Report = Callable[[EpochReport], None]


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present; anything else is passed to ``torch.device``.

    Raises:
        ConfigError: for an unknown device or CUDA requested without a GPU.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device {name!r} is not a device: use auto, cpu or cuda[:N]") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} was asked for but no CUDA GPU is visible: use auto or cpu")
    return device


@dataclass
class _Plan:
    """The training cases and the modality statistics the loss needs."""

    cases: list[str]
    split: MissingRateSplit | None
    modality_weights: torch.Tensor
    distance_normalisers: torch.Tensor
    steps_per_epoch: int
    val_cases: list[str]


def _plan(config: RunConfig) -> _Plan:
    root = Path(config.data.root)
    if not root.is_dir():
        raise ConfigError(f"data.root {root} is not a folder: pass a prepared data set (passion-sweep data prepare)")
    known_cases = {row.case for row in read_manifest(root)}
    mask_type = config.train.mask_type
    split = None
    if mask_type == "pdt":
        cases = read_case_list(root / config.data.train_list, known_cases=known_cases)
    else:
        if config.data.split is None:
            raise ConfigError(f"mask_type {mask_type} needs a missing-rate split: pass --split CSV (data.split)")
        split = read_split_csv(Path(config.data.split), known_cases=known_cases)
        cases = list(split.names)
    # The reference's iter_per_epoch: len(DataLoader) without drop_last.
    steps = config.train.iters_per_epoch or math.ceil(len(cases) / config.train.batch_size)
    if split is not None and mask_type == "idt":
        # The reference weighs by iter_per_epoch / N_m and normalises epoch distances by N_m.
        counts = split.modality_counts()
        normalisers = torch.tensor([float(counts[name]) for name in MODALITIES])
        weights = modality_frequency_weights(normalisers, steps)
    else:
        # idt_drop and pdt: no frequency weights, epoch distances per step (as the reference).
        weights = torch.ones(NUM_MODALITIES)
        normalisers = torch.full((NUM_MODALITIES,), float(steps))
    val_cases: list[str] = []
    if config.data.val_list is not None and (root / config.data.val_list).is_file():
        val_cases = read_case_list(root / config.data.val_list, known_cases=known_cases)
    return _Plan(cases, split, weights, normalisers, steps, val_cases)


def _epoch_seed(seed: int, epoch: int) -> int:
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def _loader(dataset: TrainingDataset, config: RunConfig, plan: _Plan, epoch: int, *, pin_memory: bool) -> DataLoader:
    generator = torch.Generator().manual_seed(_epoch_seed(config.train.seed, epoch))
    sampler = RandomSampler(dataset, num_samples=plan.steps_per_epoch * config.train.batch_size, generator=generator)
    return DataLoader(
        dataset,
        batch_size=config.train.batch_size,
        sampler=sampler,
        num_workers=config.train.num_workers,
        generator=generator,
        drop_last=True,
        pin_memory=pin_memory,
    )


def _prepare_run_dir(out_dir: Path, config: RunConfig, resume: bool) -> dict[str, Any] | None:
    checkpoint_path = out_dir / CHECKPOINT_NAME
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"output {out_dir} is a file: pass a folder for the run")
    if resume:
        state = load_checkpoint(checkpoint_path) if checkpoint_path.exists() else None
        if state is not None and "optimizer" not in state:
            raise CheckpointError(
                f"{checkpoint_path} holds imported weights without optimizer state: evaluate it, or train afresh"
            )
        if state is not None:
            require_keys(state, checkpoint_path, ("passion", "epoch"))
        if state is not None and state["config"]["model"] != config.to_dict()["model"]:
            raise CheckpointError(
                f"{checkpoint_path} was trained with model {state['config']['model']}, "
                f"not {config.to_dict()['model']}: resume with the same backbone, width and patch size"
            )
        return state
    if checkpoint_path.exists():
        raise ConfigError(f"{out_dir} already holds a run: pass --resume to continue it or choose another --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    return None


def _epoch_of(line: str) -> int:
    """The epoch of a ``metrics.jsonl`` line; 0 for a line a killed run left half-written."""
    try:
        return int(json.loads(line)["epoch"])
    except (ValueError, KeyError, TypeError):
        return 0


def _truncate_metrics(path: Path, epochs_kept: int) -> None:
    """Drop metric lines of epochs beyond the checkpoint (written before an interruption)."""
    if not path.exists():
        return
    lines = [line for line in path.read_text().splitlines() if 0 < _epoch_of(line) <= epochs_kept]
    with atomic_write(path, "w") as stream:  # a full disk must not truncate the metrics
        stream.write("".join(f"{line}\n" for line in lines))


def fit(config: RunConfig, out_dir: Path, *, resume: bool = False, report: Report | None = None) -> Backbone:
    """Train one configuration.

    Args:
        config: the run configuration (``data.root`` must be set).
        out_dir: run folder for ``config.json``, ``metrics.jsonl`` and ``checkpoint.pt``.
        resume: continue from ``out_dir/checkpoint.pt`` (start afresh if there is none).
        report: called after every epoch with its :class:`EpochReport`.

    Returns:
        The trained model (in eval mode).

    Raises:
        ConfigError: for an invalid configuration or an occupied ``out_dir``.
        DataError: for missing or malformed data.
        CheckpointError: when resuming from an incompatible checkpoint.
        TrainingError: when the loss becomes NaN or infinite (the last good
            checkpoint is kept).
    """
    out_dir = Path(out_dir)
    device = resolve_device(config.train.device)
    precision = build_precision(config.train.precision, device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = config.train.cudnn_benchmark
    plan = _plan(config)
    state = _prepare_run_dir(out_dir, config, resume)
    with atomic_write(out_dir / CONFIG_NAME, "w") as stream:
        stream.write(json.dumps(config.to_dict(), indent=2) + "\n")

    torch.manual_seed(config.train.seed)
    model = build_backbone(config.model.backbone, width=config.model.width, patch_size=config.model.patch_size)
    model.to(device)
    optimizer = build_optimizer(model, config.train)
    balancer = PreferenceBalancer(config.passion, plan.distance_normalisers)
    method = build_training_method(config)
    start_epoch = 0
    if state is not None:
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            balancer.load_state_dict(state["passion"])
            precision.load_state_dict(state.get("precision", {}))
        except (RuntimeError, ValueError, KeyError) as error:  # written by another version of the model
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise CheckpointError(f"{out_dir / CHECKPOINT_NAME} does not fit this run's model: {reason}") from None
        start_epoch = int(state["epoch"])
        logger.info("resuming %s after epoch %d", out_dir, start_epoch)
    _truncate_metrics(out_dir / METRICS_NAME, start_epoch)

    dataset = TrainingDataset(
        config.data.root,
        plan.cases,
        patch_size=config.model.patch_size,
        mask_type=config.train.mask_type,
        split=plan.split,
        augment=Augmentation(rotation_fill=config.train.rotation_fill) if config.train.augment else False,
    )
    started = time.monotonic()
    for epoch in range(start_epoch, config.train.epochs):
        epoch_started = time.monotonic()
        torch.manual_seed(_epoch_seed(config.train.seed, epoch))  # augmentation draws in the main process
        lr = poly_lr(config.train, epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loader = _loader(dataset, config, plan, epoch, pin_memory=device.type == "cuda")
        if method is not None:
            method.start_epoch(epoch, config.train.epochs)
        metrics = _train_epoch(
            model, optimizer, balancer, method, precision, loader, config, plan, epoch, device, out_dir
        )
        metrics["lr"] = lr
        done = epoch + 1
        if plan.val_cases and (done % config.train.val_every == 0 or done == config.train.epochs):
            metrics.update(
                validate(model, config.data.root, plan.val_cases, patch_size=config.model.patch_size, device=device)
            )
            model.train()
        metrics["epoch_seconds"] = time.monotonic() - epoch_started

        checkpoint_path = out_dir / CHECKPOINT_NAME
        save_checkpoint(
            checkpoint_path,
            {
                "config": config.to_dict(),
                "epoch": done,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "passion": balancer.state_dict(),
                "precision": precision.state_dict(),
            },
        )
        with (out_dir / METRICS_NAME).open("a") as handle:
            handle.write(json.dumps({"epoch": done, **metrics}) + "\n")
        elapsed = time.monotonic() - started
        remaining = elapsed / (done - start_epoch) * (config.train.epochs - done)
        logger.info(
            "epoch %d/%d  loss %.4f  %.1fs/epoch  ETA %s",
            done,
            config.train.epochs,
            metrics["loss"],
            metrics["epoch_seconds"],
            _format_duration(remaining),
        )
        if report is not None:
            report(EpochReport(done, config.train.epochs, metrics, checkpoint_path))
    return model.eval()


def _train_epoch(
    model: Backbone,
    optimizer: torch.optim.Optimizer,
    balancer: PreferenceBalancer,
    method: TrainingMethod | None,
    precision: Precision,
    loader: DataLoader,
    config: RunConfig,
    plan: _Plan,
    epoch: int,
    device: torch.device,
    out_dir: Path,
) -> dict[str, float]:
    model.train()
    warmup = epoch < config.passion.warmup_epochs
    distil = config.passion.enabled and not warmup
    totals: dict[str, float] = {}
    preference_sum = torch.zeros(NUM_MODALITIES, dtype=torch.float64)
    steps = 0
    for step, batch in enumerate(loader):
        images = batch["image"].to(device, non_blocking=True)
        labels = batch["label"].to(device, non_blocking=True)
        mask = batch["mask"].to(device, non_blocking=True)
        try:
            loss = optimisation_step(
                model,
                optimizer,
                images,
                labels,
                mask,
                train=config.train,
                passion=config.passion,
                beta=balancer.beta,
                modality_weights=plan.modality_weights,
                warmup=warmup,
                method=method,
                precision=precision,
            )
        except NonFiniteLossError as error:
            last = f"{out_dir / CHECKPOINT_NAME} (epoch {epoch})" if epoch > 0 else "none yet"
            raise TrainingError(
                f"{error} at epoch {epoch + 1}, step {step + 1}; last good checkpoint: {last}. "
                "Lower train.lr or check the data"
            ) from None
        if distil:
            # A distilling step always returns its distances and relative preference.
            assert loss.distance is not None and loss.relative_preference is not None
            balancer.accumulate(loss.distance, counted_pairs(mask, config.train.mask_type))
            # A step whose preference is undefined (NaN, as the reference's) adds nothing.
            preference_sum += loss.relative_preference.detach().cpu().to(torch.float64).nan_to_num(0.0)
        totals["loss"] = totals.get("loss", 0.0) + loss.total.item()
        for name, value in loss.parts.items():
            totals[f"loss/{name}"] = totals.get(f"loss/{name}", 0.0) + float(value)
        steps += 1
    metrics = {name: value / steps for name, value in totals.items()}
    if distil:
        epoch_preference = balancer.end_epoch(epoch)
        metrics.update({f"rp/{name}": float(value) for name, value in zip(MODALITIES, epoch_preference)})
        metrics.update({f"rp_step/{name}": float(value) / steps for name, value in zip(MODALITIES, preference_sum)})
    metrics.update({f"beta/{name}": float(value) for name, value in zip(MODALITIES, balancer.beta)})
    if method is not None:
        metrics.update(method.epoch_metrics())
    return metrics


def _format_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"
