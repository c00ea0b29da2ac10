"""MLflow tracking of a sweep: one parent run per sweep, exactly one child run per trial.

A trial's run is found by its tags (sweep id and Ray trial id) before one is created,
so a trial retried from its checkpoint, or run again after a resume, keeps logging to
the same run. Metrics go through ``log_batch`` with the epoch as their step, so an
epoch trained again after a failure adds its values at the same step.
"""

from __future__ import annotations

import fcntl
import json
import math
import re
import secrets
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from passion_sweep.layout import IDENTITY_FILE, artifacts_beside, sqlite_path
from trainables.config import RunConfig
from trainables.errors import DataError
from trainables.methods.registry import BALANCING_SECTIONS, method_info

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

__all__ = [
    "IDENTITY_FILE",
    "OBJECTIVE",
    "TAG_PARENT",
    "SweepIdentity",
    "SweepTracking",
    "SweepPlan",
    "start_sweep_tracking",
    "finish_sweep_tracking",
    "log_sweep_artifacts",
    "open_trial_run",
    "log_metrics",
    "log_test_results",
    "finish_trial_run",
    "fail_trial_run",
    "close_stopped_trial_run",
    "delete_runs_except",
    "metric_name",
    "mlflow_hint",
    "runs_view",
    "flatten_config",
]

TAG_SWEEP = "sweep.id"
TAG_SPEC_HASH = "spec.hash"
TAG_TRIAL = "ray.trial_id"
TAG_CELL = "grid.cell"
TAG_FAILURE = "failure.reason"
TAG_SEARCH_METRIC = "plan.search_metric"
TAG_SEARCH_MODE = "plan.search_mode"
# The best value so far of search.metric: reported to Tune with every result, logged with every epoch.
OBJECTIVE = "objective"
_TAG_PLAN_CELL = "plan.cell."  # one tag per grid cell: a single tag would outgrow MLflow's value limit
TAG_PARENT = "mlflow.parentRunId"
_LOCAL_UI = "http://127.0.0.1:5000"  # where `mlflow ui` serves by default
_INVALID_METRIC_CHARACTERS = re.compile(r"[^A-Za-z0-9_\-. :/]")
_BATCH = 900  # MLflow accepts at most 1000 metrics per log_batch


@dataclass(frozen=True)
class SweepIdentity:
    """What names a sweep, saved as ``sweep.json`` in its folder.

    Attributes:
        sweep_id: unique id (name and a random suffix), tagged on every run.
        spec_hash: :meth:`~passion_sweep.sweep.spec.SweepSpec.digest` of the resolved spec.
        started: when the sweep first started (ISO 8601, UTC).
    """

    sweep_id: str
    spec_hash: str
    started: str

    @classmethod
    def new(cls, name: str, spec_hash: str) -> SweepIdentity:
        """A fresh identity for the sweep ``name``, started now."""
        started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        return cls(f"{name}-{secrets.token_hex(3)}", spec_hash, started)

    def save(self, folder: Path) -> None:
        """Write ``folder/sweep.json``."""
        (Path(folder) / IDENTITY_FILE).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, folder: Path) -> SweepIdentity:
        """Read ``folder/sweep.json``.

        Raises:
            DataError: if the file is missing, unreadable or not a sweep identity.
        """
        path = Path(folder) / IDENTITY_FILE
        try:
            return cls(**json.loads(path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, ValueError, TypeError) as error:
            reason = error.strerror if isinstance(error, OSError) else "not the JSON a sweep writes"
            raise DataError(f"cannot read the sweep's identity {path}: {reason}") from None


@dataclass(frozen=True)
class SweepTracking:
    """Where a sweep's runs are: tracking URI, experiment and parent run, plus its identity."""

    uri: str
    experiment_id: str
    parent_run_id: str
    identity: SweepIdentity


@dataclass(frozen=True)
class SweepPlan:
    """What a sweep sets out to run, kept on its parent run so that tables can count
    the trials that never ran, and pick a searched cell's best trial the sweep's way.

    Attributes:
        cells: grid cell label to the number of trials it runs, in grid order.
        search_metric: the metric the sweep's search optimises (a validation metric).
        search_mode: ``max`` or ``min``.
    """

    cells: Mapping[str, int]
    search_metric: str
    search_mode: str

    def as_tags(self) -> dict[str, str]:
        """The parent-run tags holding this plan."""
        tags = {TAG_SEARCH_METRIC: self.search_metric, TAG_SEARCH_MODE: self.search_mode}
        for index, (label, trials) in enumerate(self.cells.items()):
            tags[f"{_TAG_PLAN_CELL}{index:04d}"] = json.dumps({"cell": label, "trials": trials})
        return tags

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> SweepPlan | None:
        """The plan in a parent run's ``tags``, or ``None`` for a run without one."""
        if TAG_SEARCH_MODE not in tags:
            return None
        entries = [json.loads(tags[key]) for key in sorted(tags) if key.startswith(_TAG_PLAN_CELL)]
        cells = {entry["cell"]: int(entry["trials"]) for entry in entries}
        return cls(cells, tags.get(TAG_SEARCH_METRIC, ""), tags[TAG_SEARCH_MODE])


@contextmanager
def _sqlite_creation_lock(uri: str) -> Iterator[None]:
    """Hold an exclusive lock beside a sqlite store (``mlflow.db.lock``): MLflow creates and
    migrates the schema when a client first opens the file, and two processes doing so at
    once fail. Other stores need no lock."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    path = Path(uri.removeprefix("sqlite:///"))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f"{path.name}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@lru_cache(maxsize=4)
def _client(uri: str) -> MlflowClient:
    # MLflow is imported on first use (2 s): reading tables from a sqlite store never needs it.
    from mlflow.tracking import MlflowClient

    with _sqlite_creation_lock(uri):
        return MlflowClient(tracking_uri=uri)  # opens the store: creates its schema, under the lock


def metric_name(name: str) -> str:
    """``name`` with characters MLflow rejects in metric names replaced by ``_``."""
    return _INVALID_METRIC_CHARACTERS.sub("_", name)


def mlflow_hint(uri: str) -> str:
    """How to browse the runs at ``uri``: an ``mlflow ui`` command for a local store, else the URI."""
    return f"mlflow ui --backend-store-uri {uri}" if uri.startswith("sqlite:") else uri


def runs_view(uri: str, experiment_id: str) -> str:
    """The address of an experiment's runs view in the MLflow UI serving ``uri`` (for a local
    store: ``mlflow ui`` at its default address)."""
    server = uri.rstrip("/") if uri.startswith(("http://", "https://")) else _LOCAL_UI
    return f"{server}/#/experiments/{experiment_id}/runs"


def flatten_config(config: RunConfig) -> dict[str, str]:
    """``section.key`` to the value as text: the params of a trial's run (of the methods'
    coefficient sections, only its own method's)."""
    own = method_info(config.method.name).section
    return {
        f"{section}.{key}": str(value)
        for section, values in config.to_dict().items()
        if section not in BALANCING_SECTIONS or section == own
        for key, value in values.items()
    }


def _artifact_location(uri: str, experiment: str) -> str | None:
    """Artifacts beside a sqlite store (absolute), else where the tracking server puts them."""
    store = sqlite_path(uri)
    return None if store is None else (artifacts_beside(store) / experiment).as_uri()


def _find_runs(client: MlflowClient, experiment_id: str, tags: Mapping[str, str]) -> list[Any]:
    """Every run of the experiment with these tag values (all pages)."""
    query = " and ".join(f"tags.`{key}` = '{value}'" for key, value in tags.items())
    runs: list[Any] = []
    token = None
    while True:
        page = client.search_runs([experiment_id], filter_string=query, max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _reopen(client: MlflowClient, run: Any) -> None:
    if run.info.status != "RUNNING":
        client.update_run(run.info.run_id, status="RUNNING")


def _parent_run(client: MlflowClient, experiment_id: str, identity: SweepIdentity) -> Any | None:
    found = _find_runs(client, experiment_id, {TAG_SWEEP: identity.sweep_id})
    parents = [run for run in found if TAG_PARENT not in run.data.tags]
    return parents[0] if parents else None


def start_sweep_tracking(
    uri: str, experiment: str, identity: SweepIdentity, *, spec_file: Path, plan: SweepPlan | None = None
) -> SweepTracking:
    """Find or create the experiment and the sweep's parent run (RUNNING from now on).

    Args:
        uri: tracking URI (absolute).
        experiment: experiment name.
        identity: the sweep's identity (tags of the parent run).
        spec_file: the resolved spec, logged as an artifact of a new parent run.
        plan: the sweep's plan, tagged on a new parent run.
    """
    client = _client(uri)
    found = client.get_experiment_by_name(experiment)
    experiment_id = (
        found.experiment_id
        if found is not None
        else client.create_experiment(experiment, artifact_location=_artifact_location(uri, experiment))
    )
    parent = _parent_run(client, experiment_id, identity)
    if parent is not None:
        _reopen(client, parent)
        return SweepTracking(uri, experiment_id, parent.info.run_id, identity)
    run = client.create_run(
        experiment_id,
        run_name=identity.sweep_id,
        tags={TAG_SWEEP: identity.sweep_id, TAG_SPEC_HASH: identity.spec_hash, **(plan.as_tags() if plan else {})},
    )
    client.log_artifact(run.info.run_id, str(spec_file))
    return SweepTracking(uri, experiment_id, run.info.run_id, identity)


def finish_sweep_tracking(tracking: SweepTracking, *, status: str = "FINISHED") -> None:
    """Mark the parent run ``FINISHED`` (or ``KILLED``, ``FAILED``)."""
    _client(tracking.uri).set_terminated(tracking.parent_run_id, status=status)


def log_sweep_artifacts(tracking: SweepTracking, folder: Path, *, artifact_path: str) -> None:
    """Attach the files of ``folder`` to the sweep's parent run under ``artifact_path``."""
    _client(tracking.uri).log_artifacts(tracking.parent_run_id, str(folder), artifact_path=artifact_path)


def _trial_tags(tracking: SweepTracking, trial_id: str) -> dict[str, str]:
    return {TAG_SWEEP: tracking.identity.sweep_id, TAG_TRIAL: trial_id}


def open_trial_run(
    tracking: SweepTracking, trial_id: str, *, run_name: str, tags: Mapping[str, str], params: Mapping[str, str]
) -> str:
    """The run of Ray trial ``trial_id``: found by its tags and reopened, or created.

    Args:
        tracking: the sweep's tracking.
        trial_id: Ray Tune trial id.
        run_name: display name of a new run.
        tags: further tags of a new run (grid cell, backbone, split...).
        params: params of a new run.

    Returns:
        The run id.
    """
    client = _client(tracking.uri)
    found = _find_runs(client, tracking.experiment_id, _trial_tags(tracking, trial_id))
    if found:
        _reopen(client, found[0])
        return found[0].info.run_id
    all_tags = {
        **tags,
        **_trial_tags(tracking, trial_id),
        TAG_SPEC_HASH: tracking.identity.spec_hash,
        TAG_PARENT: tracking.parent_run_id,
    }
    run = client.create_run(tracking.experiment_id, run_name=run_name, tags=all_tags)
    from mlflow.entities import Param

    client.log_batch(run.info.run_id, params=[Param(key, value) for key, value in params.items()])
    return run.info.run_id


def log_metrics(tracking: SweepTracking, run_id: str, metrics: Mapping[str, float], *, step: int) -> None:
    """Log finite ``metrics`` at ``step`` (names made valid for MLflow)."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    batch = [
        Metric(metric_name(name), float(value), now, step) for name, value in metrics.items() if math.isfinite(value)
    ]
    client = _client(tracking.uri)
    for start in range(0, len(batch), _BATCH):
        client.log_batch(run_id, metrics=batch[start : start + _BATCH])


def last_logged_step(tracking: SweepTracking, run_id: str, key: str = "lr") -> int:
    """The last step (epoch) at which ``key`` was logged to the run, 0 if none.

    A restarted trial trains again the epochs after its last checkpoint; those it had
    logged before it stopped are not logged twice (training is deterministic: same values)."""
    history = _client(tracking.uri).get_metric_history(run_id, metric_name(key))
    return max((point.step for point in history), default=0)


def log_test_results(
    tracking: SweepTracking, run_id: str, summary: Mapping[str, Any], *, step: int, artifacts: Iterable[Path]
) -> None:
    """Log the final evaluation: ``test/<dice|hd95>/<subset|mean>/<region>`` metrics, the
    settings that produced them as ``eval.<key>`` tags (the HD95 definition), and files.

    Args:
        tracking: the sweep's tracking.
        run_id: the trial's run.
        summary: ``{"dice": {SUBSET: {REGION: v}}, "hd95": {...}, "mean": {"dice": {...}, "hd95": {...}},
            "eval": {KEY: value}}``.
        step: the step of these metrics (the last epoch).
        artifacts: files to attach (per-case CSV, resolved config).
    """
    metrics = {
        f"test/{metric}/{subset}/{region}": value
        for metric in ("dice", "hd95")
        for subset, regions in [*summary[metric].items(), ("mean", summary["mean"][metric])]
        for region, value in regions.items()
    }
    log_metrics(tracking, run_id, metrics, step=step)
    from mlflow.entities import RunTag

    client = _client(tracking.uri)
    client.log_batch(run_id, tags=[RunTag(f"eval.{key}", str(value)) for key, value in summary["eval"].items()])
    for path in artifacts:
        client.log_artifact(run_id, str(path))


def finish_trial_run(tracking: SweepTracking, run_id: str) -> None:
    """Mark a trial's run ``FINISHED``."""
    _client(tracking.uri).set_terminated(run_id, status="FINISHED")


def _trial_run(tracking: SweepTracking, trial_id: str) -> Any | None:
    found = _find_runs(_client(tracking.uri), tracking.experiment_id, _trial_tags(tracking, trial_id))
    return found[0] if found else None


def fail_trial_run(tracking: SweepTracking, trial_id: str, reason: str) -> None:
    """Mark the run of a trial that failed for good ``FAILED``, with ``reason`` as a tag."""
    run = _trial_run(tracking, trial_id)
    if run is None:
        return
    client = _client(tracking.uri)
    client.set_tag(run.info.run_id, TAG_FAILURE, reason[:5000])
    client.set_terminated(run.info.run_id, status="FAILED")


def close_stopped_trial_run(tracking: SweepTracking, trial_id: str) -> None:
    """Mark the run of a trial stopped early (by the scheduler) ``KILLED``, if still running."""
    run = _trial_run(tracking, trial_id)
    if run is not None and run.info.status == "RUNNING":
        _client(tracking.uri).set_terminated(run.info.run_id, status="KILLED")


def delete_runs_except(tracking: SweepTracking, trial_ids: Iterable[str]) -> int:
    """Delete the trial runs of this sweep whose trial is not in ``trial_ids``.

    Returns:
        The number of runs deleted.
    """
    keep = set(trial_ids)
    client = _client(tracking.uri)
    orphans = [
        run
        for run in _find_runs(client, tracking.experiment_id, {TAG_SWEEP: tracking.identity.sweep_id})
        if run.data.tags.get(TAG_TRIAL) is not None and run.data.tags[TAG_TRIAL] not in keep
    ]
    for run in orphans:
        client.delete_run(run.info.run_id)
    return len(orphans)
