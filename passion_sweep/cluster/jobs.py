"""Sweeps as Ray jobs: submit one, read its state and logs.

This is the one module besides :mod:`passion_sweep.sweep.launcher` that talks to Ray. It is
separate because it talks to a different Ray API: the job server (the dashboard's
HTTP API, :class:`ray.job_submission.JobSubmissionClient`) rather than a Ray driver
(``ray.init``, Tune); it runs on a machine that is not part of the cluster and never
starts a Ray driver itself. Both APIs moved between Ray releases, so each stays in
one adapter.

A submitted sweep is ``passion-sweep run SPEC --address auto`` run by the cluster
with the submitting environment's interpreter (it must exist at the same path on the
head node), in a copy of the working folder (the project, with the spec) uploaded
without environments, data and results (:data:`WORKING_DIR_EXCLUDES`), credentials and
ignored files (:mod:`passion_sweep.cluster.upload`). The job runs in a temporary folder, so
every path of the spec (storage, tracking, data) is resolved on the submitting side and
passed as an absolute ``--set`` override.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from passion_sweep import tracking
from passion_sweep.cluster.upload import Upload, scan_upload, staged_copy
from passion_sweep.layout import sqlite_path, sqlite_uri
from passion_sweep.sweep.spec import SweepSpec, load_spec
from trainables.errors import ConfigError, PassionSweepError

__all__ = [
    "JOB_ID_PREFIX",
    "WORKING_DIR_EXCLUDES",
    "JobPlan",
    "JobState",
    "is_job_id",
    "dashboard_address",
    "plan_job",
    "submit_sweep",
    "job_state",
    "job_logs",
    "follow_job_logs",
]

JOB_ID_PREFIX = "raysubmit_"
SWEEP_DIR_KEY = "passion_sweep.sweep_dir"
# gitignore patterns, anchored ("/data") where a package folder has the same name
# (trainables/data): environments, version control, caches, data and results.
WORKING_DIR_EXCLUDES: tuple[str, ...] = (
    ".venv",
    "venv",
    ".git",
    "__pycache__",
    "*.pyc",
    ".pytest_cache",
    ".ruff_cache",
    ".mypy_cache",
    "*.egg-info",
    "*.whl",
    "/build",
    "/dist",
    ".cache",
    "/sweeps",
    "/demo-output",
    "/data",
    "/datasets",
    "mlruns",
    "mlartifacts",
    "*.db",
    "*.nii",
    "*.nii.gz",
    "*.npy",
    "*.npz",
    "*.pt",
    "*.pth",
    "*.ckpt",
)
_ADDRESS_VARIABLES = ("RAY_API_SERVER_ADDRESS", "RAY_ADDRESS")
# The job server refuses a job with this (HTTP 500) while no job agent of the head node
# answers in time, as when the node is starting or busy: a submission asks again after
# each of these pauses (30 s in all) before it gives up.
_NO_AGENT = "No available agent to submit job"
_SUBMIT_PAUSES: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0, 15.0)


def is_job_id(text: str) -> bool:
    """Whether ``text`` is a Ray job submission id (``raysubmit_...``)."""
    return text.startswith(JOB_ID_PREFIX)


def dashboard_address(address: str | None) -> str:
    """The job server's address: ``address``, else ``RAY_API_SERVER_ADDRESS``, else an
    ``http(s)://`` ``RAY_ADDRESS``.

    Raises:
        ConfigError: if none is given.
    """
    if address:
        return address
    for variable in _ADDRESS_VARIABLES:
        value = os.environ.get(variable, "")
        if value.startswith(("http://", "https://")):
            return value
    raise ConfigError(
        "no Ray job server address: pass --address http://HEAD:8265 (the head node's dashboard) "
        "or set RAY_API_SERVER_ADDRESS"
    )


@dataclass(frozen=True)
class JobPlan:
    """What a submission sends: the command and the files of the working folder.

    Attributes:
        entrypoint: the shell command the job runs (in the working folder's copy).
        upload: the files of the working folder that are uploaded.
        excludes: gitignore patterns left out of the upload besides credentials and
            ignored files.
        sweep_dir: the sweep's folder on shared storage.
    """

    entrypoint: str
    upload: Upload
    excludes: tuple[str, ...]
    sweep_dir: Path

    @property
    def working_dir(self) -> Path:
        return self.upload.root

    def runtime_env(self, staged: Path) -> dict[str, object]:
        """Ray's runtime environment of the job, whose working folder is the staged copy."""
        return {"working_dir": str(staged), "env_vars": {"PYTHONUNBUFFERED": "1"}}


def _absolute_sqlite(uri: str) -> str:
    path = sqlite_path(uri)
    return uri if path is None or path.is_absolute() else sqlite_uri(path.resolve())


def _path_overrides(spec: SweepSpec) -> list[str]:
    """``--set`` assignments that pin every path of ``spec`` (absolute once loaded)."""
    overrides = [
        f"ray.storage_path={spec.ray.storage_path}",
        f"tracking.uri={_absolute_sqlite(str(spec.tracking.uri))}",
    ]
    if spec.data.path is not None:
        overrides.append(f"data.path={spec.data.path}")
    if spec.data.phantom is not None and spec.data.phantom.cache is not None:
        overrides.append(f"data.phantom.cache={spec.data.phantom.cache}")
    overrides += [f"splits.{name}.csv={split.csv}" for name, split in spec.splits.items() if split.csv is not None]
    return overrides


def _inside(path: Path, folder: Path) -> str | None:
    try:
        return path.relative_to(folder).as_posix()
    except ValueError:
        return None


def plan_job(
    spec_file: Path,
    overrides: Sequence[str] = (),
    *,
    working_dir: Path | None = None,
    python: str | None = None,
    allow_suspected_secrets: bool = False,
) -> JobPlan:
    """Validate the spec here and build the job that runs it on the cluster.

    Args:
        spec_file: the YAML spec; it must lie inside ``working_dir``.
        overrides: ``--set`` assignments, applied before the spec is validated.
        working_dir: the folder to upload (default: the current folder).
        python: the interpreter the job runs (default: this one).
        allow_suspected_secrets: upload files that look like secrets (credentials
            by name are left out regardless).

    Returns:
        The job's entrypoint, files to upload, excludes and sweep folder.

    Raises:
        ConfigError: for an invalid spec, a spec outside the working folder, a sweep
            that exists already, or (unless allowed) files that look like secrets.
        DataError: if the working folder cannot be read.
    """
    working_dir = (working_dir or Path.cwd()).resolve()
    spec_file = Path(spec_file).resolve()
    relative_spec = _inside(spec_file, working_dir)
    if relative_spec is None:
        raise ConfigError(
            f"spec {spec_file} is outside the working folder {working_dir}, which the job uploads: "
            "run submit from a folder that holds the spec or pass --working-dir"
        )
    spec = load_spec(spec_file, overrides)
    if (spec.sweep_dir / tracking.IDENTITY_FILE).exists():
        raise ConfigError(f"sweep {spec.name} exists already in {spec.sweep_dir}: choose another name (--set name=...)")
    excludes = list(WORKING_DIR_EXCLUDES)
    inside_storage = _inside(spec.ray.storage_path, working_dir)
    if inside_storage not in (None, "."):
        excludes.append(f"/{inside_storage}")
    arguments = [python or sys.executable, "-m", "passion_sweep.cli", "run", relative_spec, "--address", "auto"]
    for assignment in [*overrides, *_path_overrides(spec)]:
        arguments += ["--set", assignment]
    upload = scan_upload(working_dir, excludes)
    if not allow_suspected_secrets:
        upload.refuse_suspects()
    return JobPlan(shlex.join(arguments), upload, tuple(excludes), spec.sweep_dir)


def _first_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


def _client(address: str):  # -> JobSubmissionClient; Ray is imported only when a job is asked for
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(address)
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise PassionSweepError(
            f"cannot reach the Ray job server at {address}: {_first_line(error)}; check --address "
            "(the head node's dashboard, e.g. http://HEAD:8265) and, with token authentication, "
            "RAY_AUTH_MODE=token and the cluster's token (RAY_AUTH_TOKEN or ~/.ray/auth_token)"
        ) from None


def _submit_patiently(submit: Callable[[], str], address: str) -> str:
    """``submit()``, asked again after each of :data:`_SUBMIT_PAUSES` while the job server
    has no free job agent.

    Raises:
        PassionSweepError: if it still has none after the last pause.
    """
    pauses = iter(_SUBMIT_PAUSES)
    while True:
        try:
            return submit()
        except RuntimeError as error:
            if _NO_AGENT not in str(error):
                raise
            pause = next(pauses, None)
            if pause is None:
                raise PassionSweepError(
                    f"the Ray job server at {address} had no job agent free to take the sweep for "
                    f"{sum(_SUBMIT_PAUSES):.0f} s: submit again later, and see `ray status` on the head node "
                    "if it keeps refusing"
                ) from None
            time.sleep(pause)


def submit_sweep(plan: JobPlan, *, address: str) -> str:
    """Submit ``plan`` to the job server at ``address``, uploading a copy of its files.

    A refusal for want of a free job agent (the head node starting or busy) is asked
    again for up to 30 s.

    Returns:
        The job's submission id (``raysubmit_...``).

    Raises:
        PassionSweepError: if the server cannot be reached or refuses the job
            (e.g. an upload over Ray's size limit, or no free agent for 30 s).
    """
    client = _client(address)
    try:
        with staged_copy(plan.upload) as staged:  # what was listed is what is uploaded
            return _submit_patiently(
                lambda: client.submit_job(
                    entrypoint=plan.entrypoint,
                    runtime_env=plan.runtime_env(staged),
                    metadata={SWEEP_DIR_KEY: str(plan.sweep_dir)},
                ),
                address,
            )
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise PassionSweepError(
            f"the Ray job server at {address} refused the sweep: {_first_line(error)}; "
            f"if the upload of {plan.working_dir} is too large, leave data and results out of that folder"
        ) from None


@dataclass(frozen=True)
class JobState:
    """A job's state as the job server reports it.

    Attributes:
        job_id: the submission id.
        status: PENDING, RUNNING, STOPPED, SUCCEEDED or FAILED.
        message: the server's explanation of the status.
        entrypoint: the command the job runs.
        sweep_dir: the sweep's folder, if the job was submitted by passion-sweep.
    """

    job_id: str
    status: str
    message: str
    entrypoint: str
    sweep_dir: Path | None

    @property
    def finished(self) -> bool:
        return self.status in ("STOPPED", "SUCCEEDED", "FAILED")


def _unknown_job(job_id: str, address: str, error: BaseException) -> PassionSweepError:
    return ConfigError(f"no job {job_id} at {address}: {_first_line(error)}")


def job_state(job_id: str, *, address: str) -> JobState:
    """The job's status, message, entrypoint and sweep folder.

    Raises:
        ConfigError: if the server has no such job.
        PassionSweepError: if the server cannot be reached.
    """
    client = _client(address)
    try:
        info = client.get_job_info(job_id)
    except RuntimeError as error:
        raise _unknown_job(job_id, address, error) from None
    sweep_dir = (info.metadata or {}).get(SWEEP_DIR_KEY)
    return JobState(
        job_id=job_id,
        status=str(info.status.value if hasattr(info.status, "value") else info.status),
        message=info.message or "",
        entrypoint=info.entrypoint,
        sweep_dir=Path(sweep_dir) if sweep_dir else None,
    )


def job_logs(job_id: str, *, address: str) -> str:
    """Everything the job's driver printed so far.

    Raises:
        ConfigError: if the server has no such job.
    """
    client = _client(address)
    try:
        return client.get_job_logs(job_id)
    except RuntimeError as error:
        raise _unknown_job(job_id, address, error) from None


def follow_job_logs(job_id: str, *, address: str, write: Callable[[str], None]) -> None:
    """Pass the job's output to ``write`` as it comes, until the job ends.

    Raises:
        ConfigError: if the server has no such job.
    """
    client = _client(address)
    job_state(job_id, address=address)  # a clear error for an unknown id

    async def tail() -> None:
        async for lines in client.tail_job_logs(job_id):
            write(lines)

    try:
        asyncio.run(tail())
    except RuntimeError as error:
        raise PassionSweepError(f"lost the logs of job {job_id} at {address}: {_first_line(error)}") from None
