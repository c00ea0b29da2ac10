"""Coefficients of the modality-balancing methods: one frozen, validated dataclass per method.

Each coefficient declares the values it may take (checked on construction) and the
range a search should sample (:func:`search_space`, the ``search.space`` form of a
spec). These classes are run-config sections (``moddrop.rate``, ``pmr.alpha``...), so
they import nothing heavy.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from trainables.errors import ConfigError

__all__ = [
    "Coefficients",
    "MethodConfig",
    "ModDropConfig",
    "PMRConfig",
    "OGMGEConfig",
    "MMParetoConfig",
    "search_space",
]


def _coefficient(
    default: Any,
    *,
    valid: tuple[float, float] | None = None,
    open_high: bool = False,
    search: dict[str, Any],
) -> Any:
    """A dataclass field with its valid interval (``[low, high]``, or ``[low, high)``) and search distribution."""
    return dataclasses.field(default=default, metadata={"valid": valid, "open_high": open_high, "search": search})


@dataclass(frozen=True)
class Coefficients:
    """Base of the coefficient sections: checks every field against its declared interval."""

    SECTION = ""  # the run-config section name, set by each subclass (not a field: no annotation)

    def __post_init__(self) -> None:
        section = self.SECTION
        for field in dataclasses.fields(self):
            valid = field.metadata.get("valid")
            value = getattr(self, field.name)
            if valid is None:
                continue
            low, high = valid
            inside = low <= value < high if field.metadata["open_high"] else low <= value <= high
            if not (math.isfinite(value) and inside):
                bracket = ")" if field.metadata["open_high"] else "]"
                raise ConfigError(f"{section}.{field.name} must be in [{low}, {high}{bracket}, got {value!r}")


@dataclass(frozen=True)
class MethodConfig:
    """Which training method runs (``passion-sweep train --help`` lists them; see ``docs/methods.md``)."""

    name: str = "passion"


@dataclass(frozen=True)
class ModDropConfig(Coefficients):
    """ModDrop (Neverova et al., TPAMI 2016): random dropping of available modalities.

    Attributes:
        rate: probability that each available modality of a case is dropped in a step
            (the last remaining one never is); 0 gives the baseline step.
    """

    SECTION = "moddrop"
    rate: float = _coefficient(
        0.25, valid=(0.0, 1.0), open_high=True, search={"type": "float", "low": 0.0, "high": 0.75}
    )


@dataclass(frozen=True)
class PMRConfig(Coefficients):
    """PMR (Fan et al., CVPR 2023): prototypical rebalancing of the lagging modalities.

    Attributes:
        alpha: scale of the prototypical cross-entropy of a lagging modality
            (``beta_m = alpha tanh(1/rho_m - 1)``); 0 switches it off.
        entropy_weight: ``mu``, weight of the entropy regulariser of the leading
            modalities; 0 switches it off.
        entropy_until: fraction of the epochs during which the entropy regulariser
            is on (the paper's "early training stage").
    """

    SECTION = "pmr"
    alpha: float = _coefficient(
        1.0, valid=(0.0, math.inf), open_high=True, search={"type": "float", "low": 0.1, "high": 4.0, "log": True}
    )
    entropy_weight: float = _coefficient(
        0.1, valid=(0.0, math.inf), open_high=True, search={"type": "float", "low": 0.01, "high": 1.0, "log": True}
    )
    entropy_until: float = _coefficient(0.1, valid=(0.0, 1.0), search={"type": "float", "low": 0.0, "high": 0.5})


@dataclass(frozen=True)
class OGMGEConfig(Coefficients):
    """OGM-GE (Peng et al., CVPR 2022): on-the-fly gradient modulation with generalisation enhancement.

    Attributes:
        alpha: modulation strength, ``k_m = 1 - tanh(alpha rho_m)`` for a leading
            modality (``rho_m > 1``); 0 gives the baseline step.
        noise: add the Gaussian-noise generalisation enhancement (GE) to the
            modulated gradients; off is plain OGM.
        until: fraction of the epochs during which modulation is on (the official
            code's default window is the first half).
    """

    SECTION = "ogm_ge"
    alpha: float = _coefficient(
        0.5, valid=(0.0, math.inf), open_high=True, search={"type": "float", "low": 0.05, "high": 2.0, "log": True}
    )
    noise: bool = _coefficient(True, search={"type": "categorical", "choices": [True, False]})
    until: float = _coefficient(0.5, valid=(0.0, 1.0), search={"type": "float", "low": 0.1, "high": 1.0})


@dataclass(frozen=True)
class MMParetoConfig(Coefficients):
    """MMPareto (Wei and Hu, ICML 2024): Pareto integration of multimodal and unimodal gradients.

    Attributes:
        gamma: scale of every integrated encoder gradient (the official code's 1.5);
            with 1 and no conflicting gradients the step is the baseline's.
        rescale: lift each integrated gradient to at least the norm of the plain
            sum (the paper's magnitude enhancement); off is conventional Pareto
            integration.
    """

    SECTION = "mmpareto"
    gamma: float = _coefficient(
        1.5, valid=(0.0, math.inf), open_high=True, search={"type": "float", "low": 1.0, "high": 2.0}
    )
    rescale: bool = _coefficient(True, search={"type": "categorical", "choices": [True, False]})


def search_space(section: type[Coefficients]) -> dict[str, dict[str, Any]]:
    """The declared search distribution of every coefficient, keyed ``section.name`` (a spec's ``search.space``)."""
    return {f"{section.SECTION}.{field.name}": dict(field.metadata["search"]) for field in dataclasses.fields(section)}
