"""The training methods by name: PASSION, its ablations, the baseline and the balancing methods.

A method is an objective (PASSION's, with some of its coefficients fixed, or the
baseline's) plus, for the balancing methods, a coefficient section of the run config
and the hooks that change the training step. Methods register like backbones;
:func:`method_info` names the closest one for an unknown name. This module imports
nothing heavy: specs and tables read it without torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from trainables.errors import ConfigError, did_you_mean
from trainables.methods.coefficients import Coefficients, MMParetoConfig, ModDropConfig, OGMGEConfig, PMRConfig

__all__ = ["MethodInfo", "register_method", "method_info", "method_names", "BALANCING_SECTIONS"]


@dataclass(frozen=True)
class MethodInfo:
    """One registered method.

    Attributes:
        name: registry name (a grid value of ``method``).
        summary: one line for tables and ``--help``.
        source: where the method is defined (paper), for the docs.
        passion: the ``passion.*`` keys the method fixes, ``enabled`` always among
            them; the rest of the ``passion`` section applies as configured.
        coefficients: its coefficient section (``section.key`` in configs and
            specs), or ``None`` for a method without one.
        hooks: ``module:Class`` of its :class:`~trainables.methods.hooks.TrainingMethod`,
            imported when training; ``None``: the plain step.
    """

    name: str
    summary: str
    source: str
    passion: Mapping[str, Any]
    coefficients: type[Coefficients] | None = None
    hooks: str | None = None
    tags: tuple[str, ...] = field(default=())

    @property
    def section(self) -> str | None:
        """The run-config section of its coefficients (``pmr``...), if it has one."""
        return None if self.coefficients is None else self.coefficients.SECTION

    @property
    def fixed_keys(self) -> dict[str, Any]:
        """``passion.key`` to the value this method fixes."""
        return {f"passion.{key}": value for key, value in self.passion.items()}


_REGISTRY: dict[str, MethodInfo] = {}


def register_method(info: MethodInfo) -> MethodInfo:
    """Make ``info`` available by its name.

    Raises:
        ValueError: if the name is taken.
    """
    if info.name in _REGISTRY:
        raise ValueError(f"method {info.name!r} is registered twice")
    if "enabled" not in info.passion:
        raise ValueError(f"method {info.name!r} must say whether PASSION's objective is on (passion.enabled)")
    _REGISTRY[info.name] = info
    return info


def method_names() -> list[str]:
    """Registered method names, in registration order (baseline first)."""
    return list(_REGISTRY)


def method_info(name: str) -> MethodInfo:
    """The method registered as ``name``.

    Raises:
        ConfigError: for an unknown name (the message suggests the closest one).
    """
    if name not in _REGISTRY:
        raise ConfigError(f"unknown method {name!r}{did_you_mean(name, _REGISTRY)}; available: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


_PASSION = "Shi et al., PASSION, ACM MM 2024"
_ABLATION = f"ablation of PASSION ({_PASSION})"
# PASSION's components as coefficients: pixel-wise KD (kl_weight), prototype KD
# (proto_weight), task-wise regularisation (the beta update: eta; with eta 0 and the
# default norm 2 = ||1_4||, beta stays exactly 1).
_NO_PIXEL_KD = {"kl_weight": 0.0}
_NO_PROTO_KD = {"proto_weight": 0.0}
_NO_TASK_REG = {"eta": 0.0, "beta_norm": 2.0}

for _info in (
    MethodInfo("baseline", "the backbone's own objective: fuse + prm + sum_m sep_m", "the backbone", {"enabled": False}),
    MethodInfo("passion", "PASSION, every component on", _PASSION, {"enabled": True}),
    MethodInfo("passion-no-pixel-kd", "PASSION without pixel-wise self-distillation", _ABLATION, {"enabled": True, **_NO_PIXEL_KD}, tags=("ablation",)),
    MethodInfo("passion-no-proto-kd", "PASSION without prototype self-distillation", _ABLATION, {"enabled": True, **_NO_PROTO_KD}, tags=("ablation",)),
    MethodInfo("passion-no-task-reg", "PASSION with beta frozen at 1 (no task-wise regularisation)", _ABLATION, {"enabled": True, **_NO_TASK_REG}, tags=("ablation",)),
    MethodInfo("grad-gate-only", "baseline + PASSION's relative-preference gate alone", _ABLATION, {"enabled": True, **_NO_PIXEL_KD, **_NO_PROTO_KD, **_NO_TASK_REG}, tags=("ablation",)),
    MethodInfo("moddrop", "random dropout of available modalities", "Neverova et al., ModDrop, TPAMI 2016", {"enabled": False}, ModDropConfig, "trainables.methods.moddrop:ModDrop", tags=("balancing",)),
    MethodInfo("pmr", "prototypical modal rebalance", "Fan et al., PMR, CVPR 2023", {"enabled": False}, PMRConfig, "trainables.methods.pmr:PMR", tags=("balancing",)),
    MethodInfo("ogm-ge", "on-the-fly gradient modulation with generalisation enhancement", "Peng et al., OGM-GE, CVPR 2022", {"enabled": False}, OGMGEConfig, "trainables.methods.ogm_ge:OGMGE", tags=("balancing",)),
    MethodInfo("mmpareto", "Pareto integration of multimodal and unimodal gradients", "Wei and Hu, MMPareto, ICML 2024", {"enabled": False}, MMParetoConfig, "trainables.methods.mmpareto:MMPareto", tags=("balancing",)),
):  # fmt: skip
    register_method(_info)

# The coefficient sections of the registered methods, by section name.
BALANCING_SECTIONS: dict[str, type[Coefficients]] = {
    info.coefficients.SECTION: info.coefficients for info in _REGISTRY.values() if info.coefficients is not None
}
