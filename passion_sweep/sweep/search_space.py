"""The trials of a sweep: grid cells (the cartesian product of the grid lists) and the
Optuna search space of each cell."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from passion_sweep.sweep.spec import Distribution, SweepSpec
from trainables.methods.registry import method_info

__all__ = ["GridCell", "expand_grid", "grid_cells", "optuna_distribution", "cell_space", "total_trials"]


@dataclass(frozen=True)
class GridCell:
    """One combination of grid values and the number of trials it runs.

    Attributes:
        index: position in the sweep's cell order (stable for a given spec).
        values: grid key to value, in the grid's key order.
        trials: trials of this cell (``search.trials_per_cell`` if searched, else 1).
        searched: whether Optuna samples ``search.space`` in this cell.
    """

    index: int
    values: Mapping[str, Any]
    trials: int
    searched: bool

    @property
    def name(self) -> str:
        """The values joined by ``-``, e.g. ``rfnet-mr2468-passion`` (for run names)."""
        return "-".join(map(str, self.values.values())) or "default"

    @property
    def label(self) -> str:
        """``key=value`` pairs joined by commas, e.g. ``backbone=rfnet,split=mr2468``."""
        return ",".join(f"{key}={value}" for key, value in self.values.items()) or "default"


def expand_grid(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """The cartesian product of the grid's value lists, last key varying fastest.

    Example:
        ``expand_grid({"a": [1, 2], "b": ["x"]})`` is ``[{"a": 1, "b": "x"}, {"a": 2, "b": "x"}]``;
        an empty grid gives one empty combination.
    """
    keys = list(grid)
    return [dict(zip(keys, combination)) for combination in itertools.product(*(grid[key] for key in keys))]


def _matches(values: Mapping[str, Any], selection: Mapping[str, Sequence[Any]]) -> bool:
    return all(values[key] in allowed for key, allowed in selection.items())


def _used_keys(spec: SweepSpec, values: Mapping[str, Any]) -> list[str]:
    """The searched keys that matter in a cell with these grid values (see :meth:`MethodInfo.uses`)."""
    info = method_info(str(values.get("method", spec.run_config({}).method.name)))
    return [key for key in spec.search.space if info.uses(key)]


def grid_cells(spec: SweepSpec) -> list[GridCell]:
    """The cells of ``spec``: its grid expanded, each with its number of trials.

    A cell is searched if ``search.apply_to`` selects it and its method uses one of the
    searched keys (a baseline cell ignores ``passion.*``, a PMR cell ``ogm_ge.*``...).
    """
    cells = []
    for index, values in enumerate(expand_grid(spec.grid)):
        searched = bool(_used_keys(spec, values)) and _matches(values, spec.search.apply_to)
        trials = spec.search.trials_per_cell if searched else 1
        cells.append(GridCell(index=index, values=values, trials=trials, searched=searched))
    return cells


def total_trials(cells: Sequence[GridCell]) -> int:
    """Number of trials of all cells together."""
    return sum(cell.trials for cell in cells)


def optuna_distribution(distribution: Distribution) -> BaseDistribution:
    """The Optuna distribution of a spec distribution."""
    if distribution.type == "categorical":
        return CategoricalDistribution(list(distribution.choices or []))
    if distribution.type == "int":
        return IntDistribution(
            int(distribution.low or 0),
            int(distribution.high or 0),
            log=distribution.log,
            step=int(distribution.step or 1),
        )
    return FloatDistribution(
        float(distribution.low or 0.0), float(distribution.high or 0.0), log=distribution.log, step=distribution.step
    )


def cell_space(spec: SweepSpec, cell: GridCell) -> dict[str, BaseDistribution]:
    """The distributions Optuna samples in ``cell``: the searched keys its method uses (none
    for a cell that is not searched)."""
    if not cell.searched:
        return {}
    return {key: optuna_distribution(spec.search.space[key]) for key in _used_keys(spec, cell.values)}
