"""``passion-sweep submit``, ``logs`` and ``tracking-server``: sweeps on a Ray cluster."""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from passion_sweep.cli.options import existing_dir, existing_file, set_option

__all__ = ["submit", "logs", "tracking_server", "job_address_option"]

job_address_option = click.option(
    "--address",
    help="The Ray job server: the head node's dashboard, e.g. http://HEAD:8265 "
    "(default: RAY_API_SERVER_ADDRESS, else an http:// RAY_ADDRESS).",
)


@click.command()
@click.argument("spec_file", metavar="SPEC", type=existing_file)
@job_address_option
@click.option(
    "--working-dir",
    type=existing_dir,
    help="Folder uploaded as the job's working folder; must hold SPEC (default: the current folder).",
)
@click.option("--dry-run", is_flag=True, help="List the files that would be uploaded and the job's command, then exit.")
@click.option(
    "--allow-suspected-secrets",
    is_flag=True,
    help="Upload files that look like secrets (private keys, tokens) instead of refusing; "
    "credential files (.env, .ssh/, *.pem...) are left out regardless.",
)
@set_option
def submit(
    spec_file: str,
    address: str | None,
    working_dir: str | None,
    dry_run: bool,
    allow_suspected_secrets: bool,
    overrides: tuple[str, ...],
) -> None:
    """Submit the sweep of SPEC to a Ray cluster as a job, print its id and how to follow it.

    The job runs `passion-sweep run SPEC --address auto` on the cluster with this
    environment's interpreter, in an uploaded copy of the working folder (without
    environments, data, results, credentials and what .gitignore ignores); the spec's
    storage, tracking and data paths are made absolute here, so they must be the same
    on the cluster (shared storage).
    """
    from passion_sweep.cluster import jobs

    plan = jobs.plan_job(
        Path(spec_file),
        overrides,
        working_dir=Path(working_dir) if working_dir else None,
        allow_suspected_secrets=allow_suspected_secrets,
    )
    if dry_run:
        for file in plan.upload.files:
            click.echo(f"{file.size:>12}  {file.path}")
        click.echo(f"job command: {plan.entrypoint}")
        click.echo(plan.upload.summary())
        return
    address = jobs.dashboard_address(address)
    click.echo(plan.upload.summary())
    job_id = jobs.submit_sweep(plan, address=address)
    where = f"--address {shlex.quote(address)}"
    click.echo(f"submitted job {job_id}; the sweep writes to {plan.sweep_dir}")
    click.echo(f"follow it:  passion-sweep logs {job_id} {where} --follow")
    click.echo(f"its state:  passion-sweep status {job_id} {where}")
    click.echo(f"the sweep:  passion-sweep status {plan.sweep_dir}")


@click.command()
@click.argument("job_id", metavar="JOB_ID")
@job_address_option
@click.option("-f", "--follow", is_flag=True, help="Keep printing the output until the job ends.")
def logs(job_id: str, address: str | None, follow: bool) -> None:
    """Print the output of the sweep job JOB_ID (raysubmit_...)."""
    from passion_sweep.cluster import jobs
    from trainables.errors import TrainingError

    address = jobs.dashboard_address(address)
    if not follow:
        click.echo(jobs.job_logs(job_id, address=address), nl=False)
        return
    jobs.follow_job_logs(job_id, address=address, write=lambda lines: click.echo(lines, nl=False))
    state = jobs.job_state(job_id, address=address)
    if state.status == "FAILED":
        raise TrainingError(f"job {job_id} failed: {state.message}")


@click.command("tracking-server")
@click.option(
    "--backend-store-uri",
    "store",
    default="sweeps/mlflow.db",
    show_default=True,
    help="Where runs are kept: a sqlite file, sqlite:///PATH or a database URI (postgresql://...).",
)
@click.option(
    "--artifacts-destination",
    help="Folder (or object-store URI) for artifacts, proxied by the server "
    "(default: mlartifacts beside a sqlite file, else ./mlartifacts).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Interface to listen on; 127.0.0.1 serves this machine only, a cluster needs an address its nodes reach.",
)
@click.option("--port", type=click.IntRange(1, 65535), default=5000, show_default=True, help="TCP port.")
@click.option(
    "--allowed-hosts",
    multiple=True,
    metavar="HOST",
    help="Host header to accept besides localhost and private IP addresses, e.g. a host name (repeatable).",
)
def tracking_server(
    store: str, artifacts_destination: str | None, host: str, port: int, allowed_hosts: tuple[str, ...]
) -> None:
    """Run a lean MLflow tracking server (one worker, no job runner) until Ctrl+C.

    Point the spec's tracking.uri at it (http://HOST:PORT) so that trials on every
    node log to one place.
    """
    from passion_sweep.cluster.tracking_server import serve, settings_for

    settings = settings_for(
        store, host=host, port=port, artifacts_destination=artifacts_destination, allowed_hosts=allowed_hosts
    )
    status = serve(settings)
    if status:
        raise click.exceptions.Exit(status)
