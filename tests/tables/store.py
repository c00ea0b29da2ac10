"""Filling a real sqlite MLflow store with sweeps of known results, through the same
tracking functions the sweep uses."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from passion_sweep import tracking
from trainables.modalities import REGIONS, SUBSET_MASKS, subset_name

SUBSETS = [subset_name(mask) for mask in SUBSET_MASKS]


@dataclass(frozen=True)
class KnownTrial:
    """A trial to record: its cell, tags, outcome and results.

    ``dice`` maps a subset to its Dice (fraction) for every region; ``dice_by_region``
    overrides single regions of every subset; ``hd95`` is the HD95 of every subset;
    ``evaluation`` the settings recorded with the results (empty: none, as in runs
    logged before the HD95 definition was recorded).
    """

    cell: str
    tags: Mapping[str, str]
    status: str = "FINISHED"  # FINISHED, FAILED or RUNNING
    dice: Mapping[str, float] = field(default_factory=dict)
    dice_by_region: Mapping[str, float] = field(default_factory=dict)
    hd95: float = 5.0
    objective: float | None = None
    evaluation: Mapping[str, str] = field(
        default_factory=lambda: {"hd95_percentile": "pooled", "hd95_convention": "reference"}
    )


def summary_of(trial: KnownTrial) -> dict:
    """The evaluation summary the trainable would log for ``trial``."""
    dice = {
        subset: {region: trial.dice_by_region.get(region, trial.dice[subset]) for region in REGIONS}
        for subset in SUBSETS
    }
    hd95 = {subset: dict.fromkeys(REGIONS, trial.hd95) for subset in SUBSETS}
    mean = {
        "dice": {region: sum(dice[s][region] for s in SUBSETS) / len(SUBSETS) for region in REGIONS},
        "hd95": dict.fromkeys(REGIONS, trial.hd95),
    }
    return {"dice": dice, "hd95": hd95, "mean": mean, "eval": dict(trial.evaluation)}


def record_sweep(
    uri: str,
    folder: Path,
    *,
    experiment: str,
    name: str,
    plan: Mapping[str, int],
    trials: Sequence[KnownTrial],
    search_mode: str = "max",
) -> str:
    """Record a sweep with ``trials`` in the store at ``uri``; return its sweep id."""
    identity = tracking.SweepIdentity.new(name, "0" * 16)
    spec_file = folder / f"{identity.sweep_id}.yaml"
    spec_file.write_text(f"name: {name}\n")
    sweep = tracking.start_sweep_tracking(
        uri, experiment, identity, spec_file=spec_file, plan=tracking.SweepPlan(dict(plan), "val/dice/WT", search_mode)
    )
    for index, trial in enumerate(trials):
        trial_id = f"t{index:04d}"
        run_id = tracking.open_trial_run(
            sweep,
            trial_id,
            run_name=trial_id,
            tags={tracking.TAG_CELL: trial.cell, **trial.tags},
            params={"train.lr": "0.0002", "method.name": trial.tags["method"]},
        )
        if trial.objective is not None:
            tracking.log_metrics(sweep, run_id, {"objective": trial.objective}, step=1)
        if trial.status == "FINISHED":
            tracking.log_test_results(sweep, run_id, summary_of(trial), step=2, artifacts=())
            tracking.finish_trial_run(sweep, run_id)
        elif trial.status == "FAILED":
            tracking.fail_trial_run(sweep, trial_id, "CUDA out of memory")
    tracking.finish_sweep_tracking(sweep)
    return identity.sweep_id


def uniform(value: float) -> dict[str, float]:
    """The same Dice for every subset."""
    return dict.fromkeys(SUBSETS, value)
