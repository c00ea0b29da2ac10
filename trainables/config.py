"""The configuration of one training run: typed, frozen, validated sections.

``RunConfig.from_dict`` accepts the nested dict form (as saved in ``config.json`` and
in checkpoints) and rejects unknown keys with the closest valid name;
``RunConfig.with_overrides`` applies ``section.key=value`` strings from the CLI.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from typing import Any

from trainables.errors import ConfigError, did_you_mean, did_you_mean_or_valid
from trainables.methods.coefficients import MethodConfig, MMParetoConfig, ModDropConfig, OGMGEConfig, PMRConfig
from trainables.methods.registry import BALANCING_SECTIONS, method_info, method_passion
from trainables.modalities import MASK_TYPES
from trainables.passion.config import PassionConfig
from trainables.safe_yaml import load_yaml

__all__ = ["SEED_LIMIT", "PRECISIONS", "DataConfig", "ModelConfig", "TrainConfig", "RunConfig", "parse_override"]

# Seeds go to numpy, which takes 0 <= seed < 2**32.
SEED_LIMIT = 2**32

# train.precision: the reference's float32, bfloat16 autocast, float16 autocast with loss
# scaling (trainables.training.precision applies them).
PRECISIONS = ("fp32", "bf16", "fp16-amp")


@dataclass(frozen=True)
class DataConfig:
    """Where the prepared data set and the missing-rate split are.

    Attributes:
        root: prepared data folder (``vol/``, ``seg/``, ``train.txt``...).
        split: reference-format missing-rate CSV; required for ``idt`` and ``idt_drop``.
        train_list: case list of the training cases (relative to ``root``), used when
            no split is given.
        val_list: case list for validation (relative to ``root``); skipped if absent.
    """

    root: str = ""
    split: str | None = None
    train_list: str = "train.txt"
    val_list: str | None = "val.txt"


@dataclass(frozen=True)
class ModelConfig:
    """Backbone name (see ``passion-sweep train --help``), base width and patch size."""

    backbone: str = "rfnet"
    width: int = 8
    patch_size: int = 80


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings; defaults are the reference's.

    Attributes:
        epochs: number of epochs.
        batch_size: cases per step.
        iters_per_epoch: steps per epoch; ``None`` means the reference's
            ``ceil(training cases / batch size)``.
        lr: initial learning rate, decayed as ``lr (1 - epoch/epochs)^lr_power``.
        lr_power: exponent of the poly decay.
        weight_decay: AdamW weight decay.
        adam_beta1: AdamW first-moment decay.
        adam_beta2: AdamW second-moment decay.
        mask_type: ``idt`` (fixed availability), ``idt_drop`` (random reachable
            subset of it) or ``pdt`` (complete data, random subset at fusion).
        seed: seed of weights, sampling and augmentation.
        num_workers: data-loading worker processes.
        augment: the reference's random rotation, intensity change and flips.
        rotation_fill: image value where a rotation uncovers the patch's corners:
            ``reference`` (-1, as the reference) or ``background`` (the case's
            background value per channel; a fix of the reference, see
            :class:`~trainables.data.augment.Augmentation`).
        val_every: validate every this many epochs (and after the last).
        device: ``auto`` (CUDA if present), ``cpu`` or ``cuda[:N]``.
        step_every_parameter: AdamW steps every parameter in every step, with a zero
            gradient where the loss does not reach it (an absent modality's encoder),
            as in the reference, whose graph always reaches every parameter: weight
            decay, momentum and the step count go on. Off: such parameters are
            skipped (PyTorch's rule for parameters without a gradient).
        precision: ``fp32`` (the reference), ``bf16`` (bfloat16 autocast, CPU and
            CUDA) or ``fp16-amp`` (float16 autocast with loss scaling, CUDA only); see
            :mod:`trainables.training.precision`.
        cudnn_benchmark: let cuDNN time its convolution algorithms on the first steps
            and keep the fastest (CUDA only). The same arithmetic, but the chosen
            algorithms, and so the rounding, may differ between runs.
    """

    epochs: int = 300
    batch_size: int = 1
    iters_per_epoch: int | None = None
    lr: float = 2e-4
    lr_power: float = 0.9
    weight_decay: float = 1e-4
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    mask_type: str = "idt"
    seed: int = 1037
    num_workers: int = 2
    augment: bool = True
    rotation_fill: str = "reference"
    val_every: int = 10
    device: str = "auto"
    step_every_parameter: bool = True
    precision: str = "fp32"
    cudnn_benchmark: bool = False

    def __post_init__(self) -> None:
        if self.mask_type not in MASK_TYPES:
            raise ConfigError(f"train.mask_type must be one of {', '.join(MASK_TYPES)}, got {self.mask_type!r}")
        for name in ("epochs", "batch_size", "val_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        if self.iters_per_epoch is not None and self.iters_per_epoch < 1:
            raise ConfigError(f"train.iters_per_epoch must be >= 1 or null, got {self.iters_per_epoch}")
        if self.lr <= 0:
            raise ConfigError(f"train.lr must be > 0, got {self.lr}")
        if not 0 <= self.seed < SEED_LIMIT:
            raise ConfigError(f"train.seed must be in [0, {SEED_LIMIT - 1}] (what numpy accepts), got {self.seed}")
        if self.num_workers < 0:
            raise ConfigError(f"train.num_workers must be >= 0, got {self.num_workers}")
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"train.precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"
                f"{did_you_mean(self.precision, PRECISIONS)}"
            )
        # Imported here, not at the top: it pulls in numpy, and this module must stay light.
        from trainables.data.augment import ROTATION_FILLS

        if self.rotation_fill not in ROTATION_FILLS:
            raise ConfigError(
                f"train.rotation_fill must be one of {', '.join(ROTATION_FILLS)}, got {self.rotation_fill!r}"
            )


_SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "model": ModelConfig,
    "train": TrainConfig,
    "passion": PassionConfig,
    "method": MethodConfig,
    **BALANCING_SECTIONS,
}


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines one training run.

    ``method`` names the training method (``docs/methods.md``); it fixes some
    ``passion`` keys (``enabled`` always) and may read one of the coefficient sections
    ``moddrop``, ``pmr``, ``ogm_ge``, ``mmpareto``.
    """

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    passion: PassionConfig = field(default_factory=PassionConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    moddrop: ModDropConfig = field(default_factory=ModDropConfig)
    pmr: PMRConfig = field(default_factory=PMRConfig)
    ogm_ge: OGMGEConfig = field(default_factory=OGMGEConfig)
    mmpareto: MMParetoConfig = field(default_factory=MMParetoConfig)

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Nested plain-dict form (JSON-serialisable)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunConfig:
        """Build from the nested dict form; missing keys take their defaults.

        The method's fixed ``passion`` keys are set (see
        :func:`~trainables.methods.registry.method_passion`). Without a ``method``
        section (configs written before methods existed), ``passion.enabled`` names it:
        ``passion`` or ``baseline``.

        Raises:
            ConfigError: on an unknown section, key or method, a value of the wrong
                type, or a ``passion`` key that contradicts the method.
        """
        if not isinstance(values, dict):
            raise ConfigError(f"a run config must be a mapping of sections, got {type(values).__name__}")
        sections = {}
        for section, section_values in values.items():
            section_type = _SECTIONS.get(section)
            if section_type is None:
                raise ConfigError(f"unknown config section {section!r}{did_you_mean_or_valid(section, _SECTIONS)}")
            sections[section] = _build_section(section, section_type, section_values or {})
        passion = sections.get("passion", PassionConfig())
        if "method" not in sections:
            sections["method"] = MethodConfig("passion" if passion.enabled else "baseline")
        given = values.get("passion") or {}
        sections["passion"] = method_passion(sections["method"].name, passion, given)
        return cls(**sections)

    def with_overrides(self, assignments: typing.Iterable[str]) -> RunConfig:
        """Apply ``section.key=value`` assignments (values parsed as YAML scalars).

        ``passion.enabled`` follows the method: set ``method.name`` instead. Switching
        the method frees the ``passion`` keys the previous one fixed (back to defaults).

        Raises:
            ConfigError: on a malformed assignment, unknown key or invalid value.
        """
        values = self.to_dict()
        for assignment in assignments:
            path, value = parse_override(assignment)
            section, _, key = path.partition(".")
            if not key:
                raise ConfigError(f"--set {assignment!r}: expected section.key=value, e.g. --set train.epochs=5")
            if section not in values:
                raise ConfigError(
                    f"unknown config section {section!r} in {assignment!r}{did_you_mean_or_valid(section, _SECTIONS)}"
                )
            if (section, key) == ("passion", "enabled"):
                raise ConfigError(
                    f"--set {assignment!r}: passion.enabled follows the method; set method.name=baseline or passion"
                )
            if (section, key) == ("method", "name"):
                _free_fixed_keys(values, self.method.name)
            values[section][key] = value
        return RunConfig.from_dict(values)


def _free_fixed_keys(values: dict[str, dict[str, Any]], method: str) -> None:
    """Reset the ``passion`` keys that ``method`` fixes to their defaults in ``values``."""
    defaults = dataclasses.asdict(PassionConfig())
    for key in method_info(method).passion:
        values["passion"][key] = defaults[key]


def parse_override(assignment: str) -> tuple[str, Any]:
    """Split a ``--set key.path=value`` override into its key path and its value, read as the
    project's YAML loader reads it (``2e-3`` is a float; an empty value is null).

    Raises:
        ConfigError: without ``=``, with an empty key path or path part, or with a value
            that is not valid YAML.
    """
    path, separator, raw = assignment.partition("=")
    path, text = path.strip(), raw.strip()
    if not separator or not path or any(not part for part in path.split(".")):
        raise ConfigError(f"--set {assignment!r}: expected key.path=value, e.g. --set train.epochs=5")
    return path, load_yaml(text, source=f"--set {assignment}") if text else None


def _build_section(section: str, section_type: type, values: dict[str, Any]) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"config section {section!r} must be a mapping, got {values!r}")
    hints = typing.get_type_hints(section_type)
    converted = {}
    for key, value in values.items():
        if key not in hints:
            raise ConfigError(f"unknown key {section}.{key}{did_you_mean_or_valid(key, hints)}")
        converted[key] = _convert(f"{section}.{key}", hints[key], value)
    return section_type(**converted)


def _convert(path: str, annotation: Any, value: Any) -> Any:
    """Check ``value`` against a field type (int, float, bool, str, optionally None)."""
    options = typing.get_args(annotation) or (annotation,)
    if value is None:
        if type(None) in options:
            return None
        raise ConfigError(f"{path} must not be null")
    for option in options:
        if option is bool and isinstance(value, bool):
            return value
        if option is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if option is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ConfigError(f"{path} must be a finite number, got {value!r}")
            return float(value)
        if option is str and isinstance(value, str):
            return value
    expected = " or ".join(option.__name__ for option in options if option is not type(None))
    raise ConfigError(f"{path} must be {expected}, got {value!r}")
