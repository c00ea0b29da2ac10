"""The experiment spec: a YAML file loaded into typed, frozen, fully validated objects.

:func:`load_spec` reads the YAML, applies ``--set key.path=value`` overrides, validates
every key and value and resolves paths and defaults, so that the returned
:class:`SweepSpec` is complete: saved as ``spec.yaml`` with the sweep, it loads back to
an equal spec with the same :meth:`SweepSpec.digest`. Checks that need the file system
or code that may not exist yet (data folders, backbones still to be implemented) are
separate, in :func:`readiness_problems`, so that ``--dry-run`` works without the data.

Errors are :class:`~trainables.errors.ConfigError` naming the spec file, the key path,
what was expected and what was given, and the closest valid name.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from passion_sweep.layout import PHANTOM_DIR, SPEC_FILE, default_store_uri
from trainables import safe_yaml
from trainables.backbones.catalog import built_in_names, check_backbone_options
from trainables.config import ModelConfig, RunConfig, parse_override
from trainables.data import (
    MissingRateSplit,
    allocate_missing_modalities,
    identify_reference_split,
    parse_missing_rates,
    read_case_list,
    read_split_csv,
    reference_splits,
)
from trainables.errors import ConfigError, DataError, did_you_mean_or_valid
from trainables.methods.registry import BALANCING_SECTIONS, method_info, method_names

__all__ = [
    "GRID_SHORTCUTS",
    "SPEC_FILE",
    "DataSpec",
    "PhantomSpec",
    "SplitSpec",
    "Distribution",
    "SearchSpec",
    "EvalSpec",
    "ResourcesSpec",
    "AshaSpec",
    "RaySpec",
    "TrackingSpec",
    "SweepSpec",
    "load_spec",
    "apply_overrides",
    "parse_spec",
    "load_yaml",
    "readiness_problems",
    "check_ready",
    "describe_splits",
    "save_spec",
    "locate_sweep",
]

# Grid keys that stand for a run-config key; any other grid key is `section.key`.
GRID_SHORTCUTS: dict[str, str] = {
    "backbone": "model.backbone",
    "split": "data.split",
    "method": "method.name",
    "mask_type": "train.mask_type",
    "seed": "train.seed",
}
# Run-config sections that a spec sets, and the keys it may set in each.
_TUNABLE_SECTIONS = ("model", "train", "passion", *BALANCING_SECTIONS)
_RESERVED_KEYS = {"model.backbone": "grid.backbone", "passion.enabled": "grid.method", "method.name": "grid.method"}
_DEFAULT_BACKBONE = ModelConfig().backbone
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_SCALAR = bool | int | float | str
# Tracking stores a sweep logs to: a sqlite file, a tracking server or a database.
_TRACKING_SCHEMES = ("sqlite:///", "http://", "https://", "postgresql", "mysql", "mssql")


def load_yaml(text: str, *, source: str = "YAML") -> Any:
    """Parse YAML text with the project's one safe, bounded loader (see :mod:`trainables.safe_yaml`)."""
    return safe_yaml.load_yaml(text, source=source)


def _problem(message: str, key: str = "") -> PydanticCustomError:
    """A validation error whose message is shown as is, at the error's key path (+ ``key``)."""
    return PydanticCustomError("spec", "{message}", {"message": message, "key": key})


def _resolve(path: Path, info: ValidationInfo) -> Path:
    """``path`` made absolute against the validation context's ``base_dir`` (default: cwd)."""
    base = Path((info.context or {}).get("base_dir", Path.cwd()))
    return (base / path.expanduser()).resolve()


AbsolutePath = Annotated[Path, AfterValidator(_resolve)]


class _Section(BaseModel):
    """A spec section: frozen, with unknown keys reported with the closest valid name."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, values: Any) -> Any:
        if isinstance(values, Mapping):
            for key in values:
                if key not in cls.model_fields:
                    raise _problem(f"unknown key{did_you_mean_or_valid(key, cls.model_fields)}", key=str(key))
        return values


class PhantomSpec(_Section):
    """Settings of the synthetic phantom, generated and prepared on first use and cached.

    Attributes:
        cases: number of cases.
        shape: volume size X, Y, Z.
        seed: generation (and train/val/test split) seed.
        cache: folder of prepared phantoms; default ``<ray.storage_path>/phantom``.
    """

    cases: int = Field(16, ge=3)
    shape: tuple[int, int, int] = (64, 64, 64)
    seed: int = Field(0, ge=0)
    cache: AbsolutePath | None = None

    @field_validator("shape")
    @classmethod
    def _positive(cls, shape: tuple[int, int, int]) -> tuple[int, int, int]:
        if min(shape) < 8:
            raise _problem(f"every size must be >= 8, got {list(shape)}")
        return shape


class DataSpec(_Section):
    """Where the prepared data set is: a folder (``path``) or the phantom (``phantom``).

    Attributes:
        path: prepared data folder (``passion-sweep data prepare``).
        phantom: phantom settings, used instead of ``path``.
        train_list: training case list in the data folder (used with ``mask_type: pdt``).
        val_list: validation case list in the data folder; null skips validation.
    """

    path: AbsolutePath | None = None
    phantom: PhantomSpec | None = None
    train_list: str = "train.txt"
    val_list: str | None = "val.txt"

    @model_validator(mode="after")
    def _one_source(self) -> DataSpec:
        if (self.path is None) == (self.phantom is None):
            raise _problem("give exactly one of data.path (a prepared folder) and data.phantom (generated)")
        return self


class SplitSpec(_Section):
    """A named missing-rate split: rates (``mrABCD`` or per modality) with a seed, a CSV, or
    one of the reference's splits shipped with the project.

    Attributes:
        missing_rates: ``mr2468`` (tenths for t1, t1ce, flair, t2) or a mapping
            ``{flair: 0.6, t1ce: 0.4, t1: 0.2, t2: 0.8}``, drawn over ``train.txt``.
        seed: allocation seed (reference 1037).
        csv: a split CSV in the reference format.
        reference: a built-in reference split, e.g. ``brats2020-mr2468`` (the PASSION CSV).
    """

    missing_rates: str | dict[str, float] | None = None
    seed: int = Field(1037, ge=0)
    csv: AbsolutePath | None = None
    reference: str | None = None

    @field_validator("missing_rates")
    @classmethod
    def _valid_rates(cls, rates: str | dict[str, float] | None) -> str | None:
        if rates is None:
            return None
        text = rates if isinstance(rates, str) else ",".join(f"{name}={rate}" for name, rate in rates.items())
        try:
            parse_missing_rates(text)
        except ConfigError as error:
            raise _problem(str(error)) from None
        return text

    @field_validator("reference")
    @classmethod
    def _known_reference(cls, name: str | None) -> str | None:
        if name is not None and name not in reference_splits():
            raise _problem(f"unknown reference split {name!r}{did_you_mean_or_valid(name, reference_splits())}")
        return name

    @model_validator(mode="after")
    def _one_source(self) -> SplitSpec:
        if sum(source is not None for source in (self.missing_rates, self.csv, self.reference)) != 1:
            raise _problem(
                "give exactly one of missing_rates (e.g. mr2468), reference (e.g. brats2020-mr2468) "
                "and csv (a split file)"
            )
        return self

    def rates(self) -> dict[str, float]:
        """Missing rate per modality (only for rate-based splits)."""
        return parse_missing_rates(str(self.missing_rates))


class Distribution(_Section):
    """An Optuna distribution of one searched key.

    Attributes:
        type: ``float``, ``int`` or ``categorical``.
        low: lower bound (float, int).
        high: upper bound, inclusive (float, int).
        log: sample on a log scale (float, int; needs ``low > 0``).
        step: grid step (int: default 1; float: optional, not with ``log``).
        choices: the values (categorical).
    """

    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[_SCALAR] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Distribution:
        if self.type == "categorical":
            if not self.choices:
                raise _problem("a categorical distribution needs a non-empty list of choices")
            if any(value is not None for value in (self.low, self.high, self.step)) or self.log:
                raise _problem("a categorical distribution takes only choices")
            return self
        if self.choices is not None:
            raise _problem(f"a {self.type} distribution takes low, high, log and step, not choices")
        if self.low is None or self.high is None:
            raise _problem(f"a {self.type} distribution needs low and high")
        if self.type == "int" and not all(float(v).is_integer() for v in (self.low, self.high, self.step or 1)):
            raise _problem(f"an int distribution needs integer low, high and step, got {self.low}, {self.high}")
        if self.low > self.high:
            raise _problem(f"low must be <= high, got low {self.low} and high {self.high}")
        if self.log and self.low <= 0:
            raise _problem(f"log: true needs low > 0, got {self.low}")
        if self.log and self.step is not None and self.type == "float":
            raise _problem("a float distribution takes log or step, not both")
        if self.step is not None and self.step <= 0:
            raise _problem(f"step must be > 0, got {self.step}")
        return self

    def bounds(self) -> list[_SCALAR]:
        """The extreme values (or every choice): enough to check that all samples are valid."""
        if self.type == "categorical":
            return list(self.choices or [])
        cast = int if self.type == "int" else float
        return [cast(bound) for bound in (self.low, self.high) if bound is not None]  # both set: see _consistent


class SearchSpec(_Section):
    """Optuna search within each grid cell.

    Attributes:
        sampler: ``tpe`` or ``random``.
        trials_per_cell: trials of each searched cell (cells not searched run once).
        metric: objective reported by the trials (its best value so far counts).
        mode: ``max`` or ``min``.
        seed: sampler seed (cell ``i`` uses ``seed + i``).
        apply_to: grid values of the cells to search, e.g. ``{method: [passion]}``;
            empty: every cell.
        space: distributions of ``train.*``, ``passion.*`` and ``model.*`` keys.
    """

    sampler: Literal["tpe", "random"] = "tpe"
    trials_per_cell: int = Field(1, ge=1)
    metric: str = "val/dice/WT"
    mode: Literal["max", "min"] = "max"
    seed: int = Field(0, ge=0)
    apply_to: dict[str, list[_SCALAR]] = Field(default_factory=dict)
    space: dict[str, Distribution] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _space_for_trials(self) -> SearchSpec:
        if self.trials_per_cell > 1 and not self.space:
            raise _problem(
                f"trials_per_cell is {self.trials_per_cell} but search.space is empty: "
                "add distributions, or repeat runs with several grid.seed values",
                key="trials_per_cell",
            )
        return self


class EvalSpec(_Section):
    """The final test evaluation of every trial (all 15 modality subsets).

    Attributes:
        cases: case list in the data folder.
        hd95_percentile: ``pooled`` (both directed surface-distance sets, medpy, the
            reference) or ``max_directed`` (the larger directed percentile, MONAI).
        hd95_convention: HD95 when exactly one mask is empty: ``reference`` (1.0) or
            ``max`` (373.13).
        overlap: sliding-window overlap.
        hd95_workers: processes computing HD95 while the next case's inference runs
            (same numbers); 0 computes it after each case in the trial's process; null:
            the trial's CPUs when it has a GPU, else 0 (on CPU, inference uses them).
    """

    cases: str = "test.txt"
    hd95_percentile: Literal["pooled", "max_directed"] = "pooled"
    hd95_convention: Literal["reference", "max"] = "reference"
    overlap: float = Field(0.5, ge=0, lt=1)
    hd95_workers: int | None = Field(None, ge=0)


class ResourcesSpec(_Section):
    """Resources of one trial: CPUs and GPUs.

    Attributes:
        cpu: CPUs per trial (also torch's thread count).
        gpu: GPUs per trial; a fraction such as 0.25 shares a GPU, each trial capped to
            that share of its memory.
        trials_per_gpu: the same as ``gpu: 1/trials_per_gpu``, said the other way
            round; give one of the two.
    """

    cpu: float = Field(1, gt=0)
    gpu: float = Field(0, ge=0)
    trials_per_gpu: int | None = Field(None, ge=1)

    @field_validator("gpu")
    @classmethod
    def _whole_above_one(cls, gpu: float) -> float:
        if gpu > 1 and not float(gpu).is_integer():
            raise _problem(f"a trial takes a fraction of one GPU or whole GPUs, got {gpu}")
        return gpu

    @model_validator(mode="after")
    def _one_way(self) -> ResourcesSpec:
        if self.trials_per_gpu is not None and self.gpu:
            raise _problem(
                f"give resources.gpu ({self.gpu:g}) or resources.trials_per_gpu ({self.trials_per_gpu}), not both: "
                f"trials_per_gpu: {self.trials_per_gpu} means gpu: {1 / self.trials_per_gpu:g}"
            )
        return self

    @property
    def gpu_per_trial(self) -> float:
        """The GPUs each trial asks Ray for (``1/trials_per_gpu`` when that is given)."""
        return self.gpu if self.trials_per_gpu is None else 1 / self.trials_per_gpu


class AshaSpec(_Section):
    """Early stopping of poor trials with ASHA (on the objective; ``max_t`` is ``train.epochs``)."""

    grace_period: int = Field(1, ge=1)
    reduction_factor: float = Field(2, gt=1)


class RaySpec(_Section):
    """Where and how the sweep runs.

    Attributes:
        address: Ray cluster address; null starts a local Ray.
        storage_path: folder holding the sweep folder ``<storage_path>/<name>``.
        max_concurrent_trials: trials at a time; null: as many as resources allow.
        max_failures: retries of a failing trial, each from its last checkpoint.
        keep_checkpoints: checkpoints kept per trial.
        asha: ASHA early stopping; null: every trial runs all epochs.
    """

    address: str | None = None
    storage_path: AbsolutePath = Field(Path("sweeps"), validate_default=True)
    max_concurrent_trials: int | None = Field(None, ge=1)
    max_failures: int = Field(1, ge=0)
    keep_checkpoints: int = Field(2, ge=1)
    asha: AshaSpec | None = None

    @field_validator("storage_path", mode="before")
    @classmethod
    def _file_system_path(cls, value: Any) -> Any:
        # Trials and the driver write the sweep folder as files (splits, evaluation, the
        # phantom): an object store must be mounted (s3fs, gcsfuse) rather than named by URI.
        if isinstance(value, str) and re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", value):
            raise _problem(
                f"expected a folder that every node mounts at the same path (NFS, or a bucket mounted with "
                f"s3fs or gcsfuse), got the URI {value!r}"
            )
        return value


class TrackingSpec(_Section):
    """MLflow: tracking URI (default ``sqlite:///<storage_path>/mlflow.db``) and experiment (default: ``name``)."""

    uri: str | None = None
    experiment: str | None = None

    @field_validator("uri")
    @classmethod
    def _store(cls, uri: str | None) -> str | None:
        if uri is not None and not uri.startswith(_TRACKING_SCHEMES):
            raise _problem(
                "expected sqlite:////abs/path/mlflow.db, http://host:port or a database URI "
                f"(postgresql://...), got {uri!r}"
            )
        return uri


class SweepSpec(_Section):
    """A whole experiment: the grid of cells, the search in each, and where it all goes.

    ``model``, ``train``, ``passion`` and the methods' coefficient sections
    (``moddrop``, ``pmr``, ``ogm_ge``, ``mmpareto``) hold run-config keys (see
    :class:`~trainables.config.RunConfig`); after loading they are complete (defaults
    filled in), as are ``data.phantom.cache`` and ``tracking``. ``grid.method`` lists
    the training methods (``docs/methods.md``); a method's fixed ``passion`` keys win
    over the ``passion`` section in its cells.
    """

    name: str
    data: DataSpec
    splits: dict[str, SplitSpec] = Field(default_factory=dict)
    grid: dict[str, list[_SCALAR]] = Field(default_factory=dict)
    search: SearchSpec = SearchSpec()
    model: dict[str, Any] = Field(default_factory=dict, validate_default=True)
    train: dict[str, Any] = Field(default_factory=dict, validate_default=True)
    passion: dict[str, Any] = Field(default_factory=dict, validate_default=True)
    moddrop: dict[str, Any] = Field(default_factory=dict, validate_default=True)
    pmr: dict[str, Any] = Field(default_factory=dict, validate_default=True)
    ogm_ge: dict[str, Any] = Field(default_factory=dict, validate_default=True)
    mmpareto: dict[str, Any] = Field(default_factory=dict, validate_default=True)
    eval: EvalSpec = EvalSpec()
    resources: ResourcesSpec = ResourcesSpec()
    ray: RaySpec = RaySpec()
    tracking: TrackingSpec = TrackingSpec()

    @field_validator("name")
    @classmethod
    def _folder_name(cls, name: str) -> str:
        if not _NAME.fullmatch(name):
            raise _problem(f"expected letters, digits, '_', '.' or '-' (a folder name), got {name!r}")
        return name

    @field_validator("splits")
    @classmethod
    def _split_names(cls, splits: dict[str, SplitSpec]) -> dict[str, SplitSpec]:
        for name in splits:
            if not _NAME.fullmatch(name):
                raise _problem(f"a split name must be letters, digits, '_', '.' or '-', got {name!r}", key=name)
        return splits

    @field_validator("model", "train", "passion", *BALANCING_SECTIONS)
    @classmethod
    def _run_config_section(cls, values: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        section = str(info.field_name)
        for key in values:
            if f"{section}.{key}" in _RESERVED_KEYS:
                raise _problem(f"set this with {_RESERVED_KEYS[f'{section}.{key}']}", key=key)
        try:
            config = RunConfig.from_dict({section: values})
        except ConfigError as error:
            raise _problem(str(error)) from None
        resolved = config.to_dict()[section]
        return {key: value for key, value in resolved.items() if f"{section}.{key}" not in _RESERVED_KEYS}

    @field_validator("grid")
    @classmethod
    def _grid_lists(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in grid.items():
            _check_config_key(key, "grid")
            if not values:
                raise _problem("expected a non-empty list of values, got []", key=key)
            if len(set(map(repr, values))) != len(values):
                raise _problem(f"values repeat: {values}", key=key)
        return grid

    @model_validator(mode="after")
    def _cross_checks(self) -> SweepSpec:
        self._check_grid_values()
        self._check_search()
        self._check_cells()
        self._check_precision()
        return self

    def _check_precision(self) -> None:
        """``fp16-amp`` trains on CUDA only: without GPUs every trial would fail."""
        if "fp16-amp" in self.grid.get("train.precision", [self.train["precision"]]) and not (
            self.resources.gpu_per_trial
        ):
            raise _problem(
                "train.precision: fp16-amp trains on CUDA only, but the trials get no GPU: "
                "set resources.gpu or resources.trials_per_gpu, or use bf16"
            )

    def _check_grid_values(self) -> None:
        known = built_in_names()
        for backbone in self.grid.get("backbone", [_DEFAULT_BACKBONE]):
            if backbone not in known:
                raise _problem(
                    f"grid.backbone: unknown backbone {backbone!r}{did_you_mean_or_valid(str(backbone), known)}"
                )
        for method in self.grid.get("method", []):
            if method not in method_names():
                raise _problem(
                    f"grid.method: unknown method {method!r}{did_you_mean_or_valid(str(method), method_names())}"
                )
        for split in self.grid.get("split", []):
            if split not in self.splits:
                hint = did_you_mean_or_valid(str(split), self.splits) if self.splits else "; no split is defined"
                raise _problem(f"grid.split: split {split!r} is not defined under splits{hint}")

    def _check_search(self) -> None:
        for key in self.search.space:
            _check_config_key(key, "search.space", shortcuts=False)
            if key in self.grid:
                raise _problem(f"search.space.{key}: {key} is also a grid key; a key is either listed or searched")
        methods = [str(method) for method in self.grid.get("method", ["passion"])]
        for key in self.search.space:
            if not any(method_info(method).uses(key) for method in methods):
                raise _problem(
                    f"search.space.{key}: no method of the grid uses it ({', '.join(methods)}): "
                    "add the method that reads it to grid.method, or leave the key out"
                )
        for key, values in self.search.apply_to.items():
            if key not in self.grid:
                raise _problem(f"search.apply_to.{key}: not a grid key{did_you_mean_or_valid(key, self.grid)}")
            for value in values:
                if value not in self.grid[key]:
                    raise _problem(f"search.apply_to.{key}: {value!r} is not one of grid.{key} {self.grid[key]}")

    def _check_cells(self) -> None:
        """Every grid value and both ends of every distribution must make a valid run config."""
        needing_split = [kind for kind in self.grid.get("mask_type", [self.train["mask_type"]]) if kind != "pdt"]
        if needing_split and not self.splits:
            raise _problem(f"splits: mask_type {needing_split[0]} needs a missing-rate split; define one under splits")
        probes = [(f"grid.{key}", key, value) for key, values in self.grid.items() for value in values]
        probes += [
            (f"search.space.{key}", key, value)
            for key, distribution in self.search.space.items()
            for value in distribution.bounds()
        ]
        for where, key, value in probes:
            if key in ("backbone", "split", "method"):
                continue
            try:
                self.run_config({key: value})
            except ConfigError as error:
                raise _problem(f"{where}: {value!r} is not valid: {error}") from None
        model = self.run_config({}).model
        for backbone in self.grid.get("backbone", [model.backbone]):
            for width in self.grid.get("model.width", [model.width]):
                for patch_size in self.grid.get("model.patch_size", [model.patch_size]):
                    try:
                        check_backbone_options(str(backbone), width=int(width), patch_size=int(patch_size))
                    except ConfigError as error:
                        raise _problem(f"model: {error}") from None

    @property
    def searched(self) -> bool:
        """Whether any cell is searched with Optuna."""
        return bool(self.search.space)

    @property
    def sweep_dir(self) -> Path:
        """The sweep folder: Tune's experiment folder, with the spec and splits beside it."""
        return self.ray.storage_path / self.name

    def run_config(self, values: Mapping[str, Any], *, data: Mapping[str, Any] | None = None) -> RunConfig:
        """The run config of this spec with grid or search ``values`` applied.

        Args:
            values: grid keys (shortcuts or ``section.key``) and searched keys to their
                values; ``method`` names the method (its fixed ``passion`` keys win
                over the ``passion`` section), ``split`` is ignored here (pass the
                split's CSV in ``data``).
            data: the ``data`` section (root, split, lists) of the run config.

        Raises:
            ConfigError: if a value is invalid.
        """
        sections: dict[str, dict[str, Any]] = {
            "data": {"train_list": self.data.train_list, "val_list": self.data.val_list, **(data or {})},
            **{section: dict(getattr(self, section)) for section in _TUNABLE_SECTIONS},
        }
        for key, value in values.items():
            if key in ("split", "method"):
                continue
            section, _, name = GRID_SHORTCUTS.get(key, key).partition(".")
            sections[section][name] = value
        if "method" in values:
            # The method's fixed keys are left out, so that it sets them whatever the other values say.
            sections["method"] = {"name": values["method"]}
            for fixed in method_info(str(values["method"])).passion:
                sections["passion"].pop(fixed, None)
        return RunConfig.from_dict(sections)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-compatible nested form (paths as strings), as saved in ``spec.yaml``."""
        return self.model_dump(mode="json")

    def digest(self) -> str:
        """Short hash of the resolved spec: equal specs, equal digests."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def _check_config_key(key: str, where: str, *, shortcuts: bool = True) -> None:
    """Raise unless ``key`` is a grid shortcut (if allowed) or a tunable ``section.key``."""
    valid = [*(GRID_SHORTCUTS if shortcuts else ()), *_tunable_keys()]
    if key in valid:
        return
    if key in _RESERVED_KEYS:
        raise _problem(f"{where}.{key}: use {_RESERVED_KEYS[key]} instead")
    raise _problem(f"{where}.{key}: unknown key{did_you_mean_or_valid(key, valid)}")


def _tunable_keys() -> list[str]:
    defaults = RunConfig().to_dict()
    return [
        f"{section}.{key}"
        for section in _TUNABLE_SECTIONS
        for key in defaults[section]
        if f"{section}.{key}" not in _RESERVED_KEYS
    ]


def _with_defaults(spec: SweepSpec) -> SweepSpec:
    """Fill in the defaults that depend on other keys: tracking and the phantom cache
    (from the storage path and the name) and ``grid.split`` (every split defined)."""
    storage = spec.ray.storage_path
    grid = spec.grid if "split" in spec.grid or not spec.splits else {**spec.grid, "split": list(spec.splits)}
    tracking = spec.tracking.model_copy(
        update={
            "uri": spec.tracking.uri or default_store_uri(storage),
            "experiment": spec.tracking.experiment or spec.name,
        }
    )
    data = spec.data
    if data.phantom is not None and data.phantom.cache is None:
        data = data.model_copy(update={"phantom": data.phantom.model_copy(update={"cache": storage / PHANTOM_DIR})})
    return spec.model_copy(update={"tracking": tracking, "data": data, "grid": grid})


def _format_error(error: Mapping[str, Any]) -> str:
    """One pydantic error as ``key.path: what was expected, got what``."""
    parts = [f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"]]
    context = error.get("ctx") or {}
    if error["type"] == "spec" and context.get("key"):
        parts.append(f".{context['key']}")
    path = "".join(parts).lstrip(".")
    if error["type"] == "spec":
        message = str(context["message"])
        return f"{path}: {message}" if path and not message.startswith(path) else message
    if error["type"] == "missing":
        return f"{path}: required key is missing"
    message = str(error["msg"]).replace("Input should be", "expected")
    if error["type"] == "literal_error":
        options = re.findall(r"'([^']*)'", str(context.get("expected", "")))
        message += did_you_mean_or_valid(str(error["input"]), options) if options else ""
    return f"{path}: {message}, got {error['input']!r}"


def parse_spec(values: Any, *, source: str = "spec", base_dir: Path | None = None) -> SweepSpec:
    """Validate a nested spec (as loaded from YAML) and resolve its paths and defaults.

    Args:
        values: the spec mapping.
        source: name of the spec in error messages, e.g. its file.
        base_dir: folder that relative paths are resolved against (default: cwd).

    Raises:
        ConfigError: naming the first problem (and how many more there are).
    """
    if not isinstance(values, Mapping):
        raise ConfigError(f"{source}: expected a mapping of spec keys, got {type(values).__name__}")
    try:
        spec = SweepSpec.model_validate(values, context={"base_dir": base_dir or Path.cwd()})
    except ValidationError as error:
        problems = [_format_error(item) for item in error.errors()]
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise ConfigError(f"{source}: {problems[0]}{more}") from None
    return _with_defaults(spec)


def _set_key(tree: dict[str, Any], path: str, value: Any) -> None:
    """Set ``value`` at the dotted ``path``; below the top level, ``train.x``, ``passion.x``
    and ``model.x`` are single keys (as in ``grid`` and ``search.space``)."""
    parts = path.split(".")
    node = tree
    depth = 0
    while parts:
        key = parts.pop(0)
        if depth > 0 and key in _TUNABLE_SECTIONS and parts:
            key = f"{key}.{parts.pop(0)}"
        if not parts:
            node[key] = value
            return
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {path}: {key} holds {child!r}, not a mapping of keys")
        node, depth = child, depth + 1


def apply_overrides(values: dict[str, Any], assignments: Sequence[str]) -> dict[str, Any]:
    """``values`` with ``key.path=value`` assignments applied (values parsed as YAML).

    Raises:
        ConfigError: for an assignment without ``=``, an empty key path or a value that is not valid YAML.
    """
    for assignment in assignments:
        _set_key(values, *parse_override(assignment))
    return values


def load_spec(path: Path, overrides: Sequence[str] = (), *, base_dir: Path | None = None) -> SweepSpec:
    """Read a spec file, apply overrides, validate it and resolve paths and defaults.

    Args:
        path: the YAML spec.
        overrides: ``key.path=value`` assignments applied before validation.
        base_dir: folder that relative paths are resolved against (default: cwd).

    Raises:
        ConfigError: for a missing, unreadable or non-UTF-8 file, bad or oversized YAML
            (see :mod:`trainables.safe_yaml`) or any invalid key.
    """
    path = Path(path)
    values = safe_yaml.load_yaml_file(path, what="spec")
    if isinstance(values, dict):
        values = apply_overrides(values, overrides)
    return parse_spec(values, source=str(path), base_dir=base_dir)


def save_spec(spec: SweepSpec, path: Path) -> None:
    """Write the resolved spec as YAML (loadable with :func:`load_spec`)."""
    Path(path).write_text(yaml.safe_dump(spec.to_dict(), sort_keys=False))


def readiness_problems(spec: SweepSpec) -> list[str]:
    """What would stop this spec from running here: missing data or split files.

    Returns:
        One message per problem; empty when the sweep can start.
    """
    problems = []
    if spec.data.path is not None:
        if not spec.data.path.is_dir():
            problems.append(
                f"data.path: {spec.data.path} does not exist; point it at RFNet's download or prepare it with "
                "passion-sweep data prepare"
            )
        else:
            lists = [spec.data.train_list, spec.eval.cases, spec.data.val_list]
            problems += [
                f"data: case list {spec.data.path / name} does not exist; write it with passion-sweep data split"
                for name in lists
                if name is not None and not (spec.data.path / name).is_file()
            ]
    train_list = spec.data.path / spec.data.train_list if spec.data.path is not None else None
    if train_list is not None and train_list.is_file():
        train = set(train_list.read_text(encoding="utf-8").split())
        problems += [
            f"splits.{name}.reference: {split.reference} covers other cases than {train_list}; "
            f"write the reference lists with passion-sweep data split {spec.data.path} --reference "
            f"{reference_splits()[split.reference].dataset}"
            for name, split in spec.splits.items()
            if split.reference is not None and set(reference_splits()[split.reference].load().names) != train
        ]
    problems += [
        f"splits.{name}.csv: {split.csv} does not exist"
        for name, split in spec.splits.items()
        if split.csv is not None and not split.csv.is_file()
    ]
    return problems


def _availability(split: MissingRateSplit, *, identify: bool = True) -> str:
    reference = identify_reference_split(split) if identify else None
    counts = ", ".join(f"{modality} {count}" for modality, count in split.modality_counts().items())
    return f"{len(split.names)} cases; available {counts}" + (f" (= reference {reference})" if reference else "")


def _split_summary(spec: SweepSpec, split: SplitSpec) -> str:
    if split.reference is not None:
        builtin = reference_splits()[split.reference]
        cases = "the reference's train.txt" if builtin.dataset == "brats2020" else f"the {builtin.dataset} train list"
        return f"reference {split.reference} over {cases}, {_availability(builtin.load(), identify=False)}"
    if split.csv is not None:
        return f"{split.csv}, {_availability(read_split_csv(split.csv))}" if split.csv.is_file() else f"{split.csv}"
    drawn = f"rates {split.missing_rates}, seed {split.seed}"
    train_list = spec.data.path / spec.data.train_list if spec.data.path is not None else None
    if train_list is None or not train_list.is_file():
        return f"{drawn}, drawn over the training list when the sweep starts"
    split_now = allocate_missing_modalities(read_case_list(train_list), split.rates(), seed=split.seed)
    return f"{drawn} over {train_list}, {_availability(split_now)}"


def describe_splits(spec: SweepSpec) -> list[str]:
    """One line per split of the grid: where its cases come from and how many have each
    modality, and whether it is one of the reference's. Reads the data only where it exists."""
    lines = []
    for name in dict.fromkeys(spec.grid.get("split", [])):
        try:
            lines.append(f"split {name}: {_split_summary(spec, spec.splits[str(name)])}")
        except DataError as error:
            lines.append(f"split {name}: {error}")
    return lines


def check_ready(spec: SweepSpec) -> None:
    """Raise unless :func:`readiness_problems` finds nothing.

    Raises:
        ConfigError: listing every problem.
    """
    problems = readiness_problems(spec)
    if problems:
        raise ConfigError(f"sweep {spec.name} cannot start: " + "; ".join(problems))


def locate_sweep(target: str | Path) -> Path:
    """The folder of a sweep, given as that folder or as a name under the default storage path.

    Raises:
        ConfigError: if neither holds a saved spec.
    """
    candidates = [Path(target).expanduser().resolve(), RaySpec().storage_path / str(target)]
    for folder in candidates:
        if (folder / SPEC_FILE).is_file():
            return folder
    raise ConfigError(
        f"no sweep {target}: neither {candidates[0]} nor {candidates[1]} holds a {SPEC_FILE}; "
        "pass the sweep folder <ray.storage_path>/<name>"
    )
