"""``passion-sweep run``, ``resume`` and ``status``: experiment sweeps on Ray Tune."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

import click

from passion_sweep.cli.options import existing_file, set_option
from passion_sweep.sweep.spec import SPEC_FILE, load_spec
from passion_sweep.sweep.status import describe_plan, format_status, sweep_status
from trainables.errors import TrainingError

if TYPE_CHECKING:
    from passion_sweep.sweep.launcher import SweepOutcome

__all__ = ["run", "resume", "status"]

_address_option = click.option(
    "--address",
    help="Ray cluster to run on: auto (the cluster this machine belongs to) or HEAD:6379 "
    "(default: the spec's ray.address, else a local Ray).",
)


def _quiet_libraries() -> None:
    """Optuna logs every study it creates and MLflow the set-up of its store; the sweep's
    progress lines say what matters (``-v`` shows MLflow's lines). Runs before MLflow is
    imported, which reads its level once (for the trials' processes too); if MLflow is
    in this process already, its logger is set directly."""
    import optuna  # a second of imports that status and --dry-run do not need

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
        logging.getLogger("mlflow").setLevel(logging.WARNING)


def _report(outcome: SweepOutcome) -> None:
    click.echo(format_status(sweep_status(outcome.directory)))
    if not outcome.complete:
        click.echo(f"the sweep stopped early: continue it with `passion-sweep resume {outcome.directory}`")
    if outcome.failed:
        raise TrainingError(
            f"{outcome.failed} of {outcome.total} trials failed for good: "
            f"see `passion-sweep status {outcome.directory}`"
        )


@click.command()
@click.argument("spec_file", metavar="SPEC", type=existing_file)
@click.option("--dry-run", is_flag=True, help="Print the grid cells, trials and destinations, then exit.")
@_address_option
@set_option
def run(spec_file: str, dry_run: bool, address: str | None, overrides: tuple[str, ...]) -> None:
    """Run the sweep of the experiment spec SPEC (YAML) on Ray Tune, tracked in MLflow.

    Overrides such as --set train.epochs=5 or --set ray.max_concurrent_trials=2 apply
    before validation.
    """
    spec = load_spec(Path(spec_file), overrides)
    if dry_run:
        click.echo(describe_plan(spec))
        return
    _quiet_libraries()
    from passion_sweep.sweep.launcher import run_sweep  # imports Ray, which --dry-run does not need

    outcome = run_sweep(spec, address=address)
    _report(outcome)


@click.command()
@click.argument("target", metavar="NAME|PATH")
@_address_option
def resume(target: str, address: str | None) -> None:
    """Finish the sweep in folder PATH (or named NAME under ./sweeps) whose driver stopped."""
    _quiet_libraries()
    from passion_sweep.sweep.launcher import resume_sweep

    outcome = resume_sweep(target, address=address)
    _report(outcome)


@click.command()
@click.argument("target", metavar="NAME|PATH|JOB_ID")
@click.option("--address", help="With a JOB_ID (raysubmit_...): the Ray job server, e.g. http://HEAD:8265.")
def status(target: str, address: str | None) -> None:
    """Print the trials by state, the best trial per grid cell, elapsed time and time left.

    Given a job id from `passion-sweep submit`, print the job's state first, then its sweep's.
    """
    if target.startswith("raysubmit_"):
        from passion_sweep.cluster.jobs import dashboard_address, job_state

        state = job_state(target, address=dashboard_address(address))
        click.echo(f"job {state.job_id}: {state.status}" + (f" ({state.message})" if state.message else ""))
        if state.sweep_dir is None or not (state.sweep_dir / SPEC_FILE).is_file():
            return
        target = str(state.sweep_dir)
    click.echo(format_status(sweep_status(target)))
