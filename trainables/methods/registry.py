"""The training methods by name: PASSION, its ablations, the baseline and the balancing methods.

A method is an objective (PASSION's, with some of its coefficients fixed, or the
baseline's) plus, for the balancing methods, a coefficient section of the run config
and the hooks that change the training step. Methods register like backbones;
:func:`method_info` names the closest one for an unknown name. This module imports
nothing heavy: specs and tables read it without torch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from trainables.errors import ConfigError, did_you_mean
from trainables.methods.coefficients import Coefficients, MMParetoConfig, ModDropConfig, OGMGEConfig, PMRConfig
from trainables.passion.config import PassionConfig

__all__ = ["MethodInfo", "register_method", "method_info", "method_names", "method_passion", "BALANCING_SECTIONS"]


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

    def uses(self, key: str) -> bool:
        """Whether run-config key ``section.name`` can change this method's runs: ``passion``
        keys only with PASSION on and not fixed by the method, a coefficient section only
        for its own method, every other key always. A search samples only such keys."""
        section, _, name = key.partition(".")
        if section == "passion":
            return bool(self.passion["enabled"]) and name not in self.passion
        if section in BALANCING_SECTIONS:
            return section == self.section
        return True


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


def method_passion(name: str, passion: PassionConfig, given: Mapping[str, Any] | None = None) -> PassionConfig:
    """``passion`` with the keys that method ``name`` fixes set to its values.

    Args:
        name: a registered method.
        passion: the configured PASSION section.
        given: the ``passion`` keys as written by the user, if known: a key the method
            fixes, given with a value other than the method's and the default, is an error
            rather than silently replaced.

    Raises:
        ConfigError: for an unknown method or a contradicted key.
    """
    info = method_info(name)
    defaults = PassionConfig()
    for key, value in (given or {}).items():
        if key in info.passion and key != "enabled" and value not in (info.passion[key], getattr(defaults, key)):
            raise ConfigError(f"passion.{key} is fixed to {info.passion[key]!r} by method {name}, got {value!r}")
    return dataclasses.replace(passion, **info.passion)


_PASSION = "Shi et al., PASSION, ACM MM 2024"
_ABLATION = f"ablation of PASSION ({_PASSION})"
# PASSION's four components as coefficients: pixel-wise KD (kl_weight), prototype KD
# (proto_weight), task-wise regularisation (the beta update: eta; with eta 0 and the
# norm 2 = ||1_4||, beta stays exactly 1) and gradient-wise regularisation (the
# relative-preference gate). The "-only" variants keep PASSION's frequency weights w_m
# on the unimodal terms, which every PASSION variant shares.
_NO_PIXEL_KD = {"kl_weight": 0.0}
_NO_PROTO_KD = {"proto_weight": 0.0}
_NO_TASK_REG = {"eta": 0.0, "beta_norm": 2.0}
_NO_GRAD_GATE = {"preference_gate": False}

for _info in (
    MethodInfo("baseline", "the backbone's own objective: fuse + prm + sum_m sep_m", "the backbone", {"enabled": False}),
    MethodInfo("passion", "PASSION, every component on", _PASSION, {"enabled": True}),
    MethodInfo("passion-no-pixel-kd", "PASSION without pixel-wise self-distillation", _ABLATION, {"enabled": True, **_NO_PIXEL_KD}, tags=("ablation",)),
    MethodInfo("passion-no-proto-kd", "PASSION without prototype self-distillation", _ABLATION, {"enabled": True, **_NO_PROTO_KD}, tags=("ablation",)),
    MethodInfo("passion-no-task-reg", "PASSION with beta frozen at 1 (no task-wise regularisation)", _ABLATION, {"enabled": True, **_NO_TASK_REG}, tags=("ablation",)),
    MethodInfo("passion-no-grad-gate", "PASSION without the relative-preference gate (no gradient-wise regularisation)", _ABLATION, {"enabled": True, **_NO_GRAD_GATE}, tags=("ablation",)),
    MethodInfo("pixel-kd-only", "baseline + PASSION's pixel-wise self-distillation alone", _ABLATION, {"enabled": True, **_NO_PROTO_KD, **_NO_TASK_REG, **_NO_GRAD_GATE}, tags=("ablation",)),
    MethodInfo("proto-kd-only", "baseline + PASSION's prototype self-distillation alone", _ABLATION, {"enabled": True, **_NO_PIXEL_KD, **_NO_TASK_REG, **_NO_GRAD_GATE}, tags=("ablation",)),
    MethodInfo("task-reg-only", "baseline + PASSION's task-wise regularisation (beta) alone", _ABLATION, {"enabled": True, **_NO_PIXEL_KD, **_NO_PROTO_KD, **_NO_GRAD_GATE}, tags=("ablation",)),
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
