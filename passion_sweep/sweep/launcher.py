"""Running a sweep on Ray Tune: the one module that talks to Ray.

A sweep is one ``Tuner``: one experiment folder (``<storage_path>/<name>``), one
schedule and one resume point for every grid cell and every Optuna trial. The search
is :class:`~passion_sweep.sweep.searcher.CellStudies` behind a Tune ``Searcher``; each trial
runs :func:`~passion_sweep.sweep.trial.run_trial` with a :class:`_TuneSession`; driver
callbacks print progress and mark the MLflow runs of trials that fail for good or are
stopped early. :func:`run_sweep` starts a sweep, :func:`resume_sweep` finishes one
whose driver stopped.
"""

from __future__ import annotations

import logging
import os
import pickle
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray import tune
from ray.tune.experiment import Trial
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback
from ray.tune.search import Searcher
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from passion_sweep import tracking
from passion_sweep.cluster import shared_storage
from passion_sweep.layout import EVALUATION_DIR, TRIAL_DIR_PREFIX, sqlite_path
from passion_sweep.sweep.console import SweepConsole, TrialProgress
from passion_sweep.sweep.data import prepare_sweep_data
from passion_sweep.sweep.reaper import reaped
from passion_sweep.sweep.resume_point import TUNER_FILE, settle_resume_point
from passion_sweep.sweep.search_space import cell_space, grid_cells, total_trials
from passion_sweep.sweep.searcher import CellSearch, CellStudies
from passion_sweep.sweep.spec import (
    SPEC_FILE,
    ResourcesSpec,
    SweepSpec,
    check_ready,
    load_spec,
    locate_sweep,
    save_spec,
)
from passion_sweep.sweep.trial import SweepContext, run_trial
from passion_sweep.tables.report import log_sweep_report
from passion_sweep.tracking import OBJECTIVE
from trainables.data.atomic import ensure_directory
from trainables.errors import ConfigError, PassionSweepError

__all__ = ["SweepOutcome", "run_sweep", "resume_sweep", "trial_resources"]

logger = logging.getLogger(__name__)

# Tune's default loggers import torch (TensorBoardX) in the driver; JSON and CSV are enough.
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
# Trials report the objective only once they have validated; ASHA skips results without it.
os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
# Tune's new console output prints its configuration box even at verbose=0; its legacy
# reporter prints nothing there. The sweep's own console (_ProgressCallback) says what matters.
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")


@dataclass(frozen=True)
class SweepOutcome:
    """How a sweep run ended.

    Attributes:
        directory: the sweep folder.
        total: trials planned.
        ended: trials that ended (finished or stopped early).
        failed: trials that failed for good.
        trial_ids: the Ray trial ids of the sweep's trials so far.
    """

    directory: Path
    total: int
    ended: int
    failed: int
    trial_ids: tuple[str, ...]

    @property
    def complete(self) -> bool:
        """Whether every trial ended or failed (nothing left to resume)."""
        return self.ended + self.failed >= self.total


class _TuneSession:
    """:class:`~passion_sweep.sweep.trial.TrialSession` of a Ray Tune function trainable."""

    def __init__(self) -> None:
        # Tune logs every persisted checkpoint at INFO level: one console line per epoch and trial.
        logging.getLogger("ray.train._internal.storage").setLevel(logging.WARNING)
        context = tune.get_context()
        resources = context.get_trial_resources().required_resources
        self.trial_id = context.get_trial_id()
        self.cpus = float(resources.get("CPU", 1))
        self.gpus = float(resources.get("GPU", 0))

    def restore_checkpoint(self, run_dir: Path) -> bool:
        checkpoint = tune.get_checkpoint()
        if checkpoint is None:
            return False
        with checkpoint.as_directory() as folder:
            shutil.copytree(folder, run_dir, dirs_exist_ok=True)
        return True

    def report(self, metrics: Mapping[str, float], checkpoint_dir: Path) -> None:
        tune.report(dict(metrics), checkpoint=tune.Checkpoint.from_directory(str(checkpoint_dir)))


def _train_trial(config: dict[str, Any], context: SweepContext) -> None:
    """The Tune function trainable: one trial of the cell and params in ``config``."""
    run_trial(context, int(config["cell"]), dict(config["params"]), _TuneSession())


class _CellSearcher(Searcher):
    """Tune's view of :class:`~passion_sweep.sweep.searcher.CellStudies`."""

    def __init__(self, studies: CellStudies, mode: str) -> None:
        super().__init__(metric=OBJECTIVE, mode=mode)
        self._studies = studies

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        suggestion = self._studies.ask(trial_id)
        if suggestion is None:
            return Searcher.FINISHED  # type: ignore[return-value]  # Ray's end sentinel, missing from its annotation
        return {"cell": suggestion.cell, "params": suggestion.params}

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        self._studies.tell(trial_id, None if error or not result else result.get(OBJECTIVE))

    def save(self, checkpoint_path: str) -> None:
        self._studies.save(Path(checkpoint_path))

    def restore(self, checkpoint_path: str) -> None:
        self._studies.restore(Path(checkpoint_path))


def _error_reason(trial: Trial) -> str:
    """The last line of the trial's latest error: its exception type and message."""
    path = trial.error_file  # the driver's copy; the one in storage is synced only later
    if not path or not Path(path).is_file():
        return "unknown error"
    lines = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    return lines[-1] if lines else "unknown error"


class _ProgressCallback(tune.Callback):
    """The sweep's console (see :mod:`passion_sweep.sweep.console`) and a line per trial failure."""

    def __init__(self, context: SweepContext, *, interval: float = 30.0) -> None:
        self._context = context
        self._metric = context.spec.search.metric
        self._epochs: dict[str, int] = {}  # trial id to the epochs it trains
        self._last_metric: dict[str, float] = {}  # trial id to its latest validation value
        epochs = [context.spec.run_config(cell.values).train.epochs for cell in context.cells]
        self._console = SweepConsole(
            total_trials=total_trials(context.cells),
            planned_epochs=sum(cell.trials * cell_epochs for cell, cell_epochs in zip(context.cells, epochs)),
            metric=self._metric,
            mode=context.spec.search.mode,
            interval=interval,
        )

    def _progress(self, trial: Trial) -> TrialProgress:
        cell = self._context.cells[int(trial.config["cell"])]
        if trial.trial_id not in self._epochs:  # searched keys may include train.epochs
            config = self._context.spec.run_config({**cell.values, **trial.config["params"]})
            self._epochs[trial.trial_id] = config.train.epochs
        return TrialProgress(
            name=f"{cell.name}-{trial.trial_id}",
            state=trial.status,
            epoch=int(trial.last_result.get("training_iteration", 0)),
            epochs=self._epochs[trial.trial_id],
            metric=self._last_metric.get(trial.trial_id),
            objective=trial.last_result.get(OBJECTIVE),
        )

    def on_trial_result(self, iteration: int, trials: list[Trial], trial: Trial, result: dict, **info: Any) -> None:
        if self._metric in result:  # validation runs every val_every epochs only
            self._last_metric[trial.trial_id] = float(result[self._metric])

    def on_step_end(self, iteration: int, trials: list[Trial], **info: Any) -> None:
        for line in self._console.lines([self._progress(trial) for trial in trials]):
            logger.info(line)

    def on_trial_recover(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        logger.warning("trial %s failed (%s); retrying from its last checkpoint", trial.trial_id, _error_reason(trial))

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        logger.error("trial %s failed for good: %s", trial.trial_id, _error_reason(trial))


class _TrackingCallback(tune.Callback):
    """Marks the MLflow runs of trials that fail for good (FAILED) or are stopped early (KILLED)."""

    def __init__(self, sweep_tracking: tracking.SweepTracking) -> None:
        self._tracking = sweep_tracking

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        tracking.fail_trial_run(self._tracking, trial.trial_id, _error_reason(trial))

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        tracking.close_stopped_trial_run(self._tracking, trial.trial_id)


def _trial_dirname(trial: Trial) -> str:
    return f"{TRIAL_DIR_PREFIX}{trial.trial_id}"


@contextmanager
def _ray_session(address: str | None) -> Iterator[None]:
    """Connect to ``address`` (or start a local Ray, killed with this process) unless Ray
    is up already.

    Ray's banner, its warnings and the trials' own output reach the console only with
    ``-v`` (this module logging at DEBUG); the sweep's progress lines say what matters.
    """
    if ray.is_initialized():
        yield
        return
    verbose = logger.isEnabledFor(logging.DEBUG)
    address = address or "local"
    # A local Ray is this driver's own: its processes must not outlive it (see reaper).
    with reaped() if address == "local" else nullcontext():
        ray.init(
            address=address,
            logging_level=logging.INFO if verbose else logging.ERROR,
            log_to_driver=verbose,
        )
        try:
            yield
        finally:
            ray.shutdown()


_STORAGE_CHECK_SECONDS = 120.0


def _check_shared_storage(context: SweepContext) -> None:
    """On a cluster of several nodes, refuse storage or data that some node does not see.

    Every alive node runs :func:`~passion_sweep.cluster.shared_storage.unseen_paths` (pinned to
    it, no CPU taken) against a marker the driver writes into the sweep folder.

    Raises:
        ConfigError: if a node does not see the sweep folder, the data or the sqlite store.
        PassionSweepError: if a node does not answer in time.
    """
    nodes = [node for node in ray.nodes() if node["Alive"]]
    if len(nodes) < 2:
        return
    paths = [str(context.data.root), *(str(path) for path in context.data.splits.values())]
    uri = str(context.spec.tracking.uri)
    store = sqlite_path(uri)
    if store is not None:
        paths.append(str(store.parent))
        logger.warning(
            "%d nodes log to the sqlite store %s: on a cluster, run `passion-sweep tracking-server` "
            "and set tracking.uri to its http:// address",
            len(nodes),
            uri,
        )
    check = ray.remote(num_cpus=0, max_retries=0)(shared_storage.unseen_paths)
    marker = shared_storage.StorageMarker.write(context.directory)
    try:
        pending = {
            f"{node['NodeManagerAddress']} (id {node['NodeID'][:8]})": check.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)
            ).remote(marker, paths)
            for node in nodes
        }
        try:
            answers = dict(zip(pending, ray.get(list(pending.values()), timeout=_STORAGE_CHECK_SECONDS)))
        except ray.exceptions.GetTimeoutError:
            raise PassionSweepError(
                f"not every node of the cluster answered the shared-storage check within "
                f"{_STORAGE_CHECK_SECONDS:.0f} s: see `ray status` for nodes that are busy or lost"
            ) from None
        shared_storage.check_node_answers(context.spec.ray.storage_path, answers)
    except PassionSweepError:
        tracking.finish_sweep_tracking(context.tracking, status="FAILED")
        raise
    finally:
        marker.remove()
    logger.info("storage and data are shared by all %d nodes of the cluster", len(nodes))


def _prepare(spec: SweepSpec, directory: Path, identity: tracking.SweepIdentity) -> SweepContext:
    data = prepare_sweep_data(spec, directory)
    cells = tuple(grid_cells(spec))
    plan = tracking.SweepPlan({cell.label: cell.trials for cell in cells}, spec.search.metric, spec.search.mode)
    sweep_tracking = tracking.start_sweep_tracking(
        str(spec.tracking.uri), str(spec.tracking.experiment), identity, spec_file=directory / SPEC_FILE, plan=plan
    )
    return SweepContext(spec=spec, directory=directory, cells=cells, data=data, tracking=sweep_tracking)


def trial_resources(resources: ResourcesSpec) -> dict[str, float]:
    """What each trial asks Ray Tune for (a GPU fraction lets that many trials share one GPU)."""
    return {"cpu": resources.cpu, "gpu": resources.gpu_per_trial}


def _trainable(context: SweepContext) -> Any:
    return tune.with_resources(
        tune.with_parameters(_train_trial, context=context), trial_resources(context.spec.resources)
    )


def _new_tuner(context: SweepContext) -> tune.Tuner:
    spec = context.spec
    studies = CellStudies(
        [CellSearch(cell.trials, cell_space(spec, cell)) for cell in context.cells],
        mode=spec.search.mode,
        sampler=spec.search.sampler,
        seed=spec.search.seed,
    )
    scheduler = None
    if spec.ray.asha is not None:
        scheduler = tune.schedulers.ASHAScheduler(
            time_attr="training_iteration",
            metric=OBJECTIVE,
            mode=spec.search.mode,
            max_t=max(context.spec.run_config(cell.values).train.epochs for cell in context.cells),
            grace_period=spec.ray.asha.grace_period,
            reduction_factor=spec.ray.asha.reduction_factor,
        )
    total = total_trials(context.cells)
    return tune.Tuner(
        _trainable(context),
        tune_config=tune.TuneConfig(
            search_alg=_CellSearcher(studies, spec.search.mode),
            scheduler=scheduler,
            num_samples=total,
            max_concurrent_trials=spec.ray.max_concurrent_trials,
            reuse_actors=True,
            trial_dirname_creator=_trial_dirname,
        ),
        run_config=tune.RunConfig(
            name=spec.name,
            storage_path=str(spec.ray.storage_path),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=spec.ray.keep_checkpoints),
            failure_config=tune.FailureConfig(max_failures=spec.ray.max_failures),
            callbacks=[
                JsonLoggerCallback(),
                CSVLoggerCallback(),
                _ProgressCallback(context),
                _TrackingCallback(context.tracking),
            ],
            verbose=0,
        ),
    )


def _remove_trial_folders_except(directory: Path, trial_ids: tuple[str, ...]) -> int:
    """Remove the folders (Tune's and the test evaluation's) of trials not in ``trial_ids``;
    returns how many."""
    folders = [*directory.glob(f"{TRIAL_DIR_PREFIX}*"), *(directory / EVALUATION_DIR).glob("*")]
    orphans = [folder for folder in folders if folder.name.removeprefix(TRIAL_DIR_PREFIX) not in trial_ids]
    for folder in orphans:
        shutil.rmtree(folder)
    return len(orphans)


def _fit(tuner: tune.Tuner, context: SweepContext, directory: Path) -> SweepOutcome:
    results = tuner.fit()
    # A driver killed before Tune recorded a new trial (or while it wrote its state) leaves
    # that trial's run and folders behind, while the resumed sweep runs the trial anew
    # under another id: keep one run and one set of folders per trial.
    known = tuple(Path(results[i].path).name.removeprefix(TRIAL_DIR_PREFIX) for i in range(len(results)))
    deleted = tracking.delete_runs_except(context.tracking, known)
    removed = _remove_trial_folders_except(directory, known)
    if deleted or removed:
        logger.info(
            "deleted %d MLflow run(s) and %d folder(s) of trials that this sweep does not know", deleted, removed
        )
    total = total_trials(context.cells)
    outcome = SweepOutcome(directory, total, results.num_terminated, results.num_errors, known)
    attached = log_sweep_report(context.tracking)
    if attached:
        logger.info("comparison tables and plot attached to the sweep's MLflow run: %s", ", ".join(attached))
    tracking.finish_sweep_tracking(context.tracking, status="FINISHED" if outcome.complete else "KILLED")
    return outcome


def run_sweep(spec: SweepSpec, *, address: str | None = None) -> SweepOutcome:
    """Prepare the data, start tracking and run every trial of ``spec``.

    Args:
        spec: the validated spec.
        address: Ray cluster address; default ``spec.ray.address``, else a local Ray.

    Returns:
        How the sweep ended.

    Raises:
        ConfigError: if the spec cannot run here or its sweep folder holds a sweep already.
        DataError: if the data set or a split is missing or malformed.
    """
    check_ready(spec)
    directory = spec.sweep_dir
    if (directory / tracking.IDENTITY_FILE).exists():
        raise ConfigError(
            f"sweep {spec.name} exists already in {directory}: continue it with `passion-sweep resume {directory}` "
            "or choose another name (--set name=...)"
        )
    ensure_directory(directory, what="sweep folder")
    save_spec(spec, directory / SPEC_FILE)
    identity = tracking.SweepIdentity.new(spec.name, spec.digest())
    identity.save(directory)
    context = _prepare(spec, directory, identity)
    logger.info("sweep %s: %d trials; results in %s", identity.sweep_id, total_trials(context.cells), directory)
    with _ray_session(address or spec.ray.address):
        _check_shared_storage(context)
        return _fit(_new_tuner(context), context, directory)


def resume_sweep(target: str | Path, *, address: str | None = None) -> SweepOutcome:
    """Finish a sweep whose driver stopped: unfinished and failed trials go on from
    their last checkpoints, trials not started yet start. Tune's state, if the driver
    left it damaged, is first settled on the newest intact one
    (:func:`~passion_sweep.sweep.resume_point.settle_resume_point`).

    Args:
        target: the sweep folder, or the name of a sweep under the default storage path.
        address: Ray cluster address; default the spec's, else a local Ray.

    Returns:
        How the sweep ended.

    Raises:
        ConfigError: if there is no such sweep, it cannot run here, or Tune's state of it
            does not load (another Ray version).
    """
    directory = locate_sweep(target)
    spec = load_spec(directory / SPEC_FILE)
    check_ready(spec)
    context = _prepare(spec, directory, tracking.SweepIdentity.load(directory))
    started = (directory / TUNER_FILE).exists()
    resumable = settle_resume_point(directory)
    with _ray_session(address or spec.ray.address):
        _check_shared_storage(context)
        if not resumable:
            if not started:
                logger.info("sweep %s had not started any trial: starting it", spec.name)
            return _fit(_new_tuner(context), context, directory)
        try:
            tuner = tune.Tuner.restore(str(directory), _trainable(context), resume_errored=True)
        except (AttributeError, ImportError, TypeError, ValueError, pickle.UnpicklingError) as error:
            raise ConfigError(
                f"cannot resume sweep {spec.name}: Tune's state in {directory} does not load here "
                f"({type(error).__name__}: {error}); resume it with the Ray and passion-sweep versions "
                "that started it, or run its spec again under a new name (--set name=...)"
            ) from None
        return _fit(tuner, context, directory)
