"""Grid expansion and search spaces."""

from __future__ import annotations

from pathlib import Path

from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from passion_sweep.sweep.search_space import cell_space, expand_grid, grid_cells, optuna_distribution, total_trials
from passion_sweep.sweep.spec import Distribution, parse_spec

from .conftest import tiny_spec


def test_expand_grid_is_the_cartesian_product_last_key_fastest() -> None:
    assert expand_grid({"a": [1, 2], "b": ["x", "y"]}) == [
        {"a": 1, "b": "x"},
        {"a": 1, "b": "y"},
        {"a": 2, "b": "x"},
        {"a": 2, "b": "y"},
    ]
    assert expand_grid({}) == [{}]


def test_grid_cells_search_only_the_selected_cells(tmp_path: Path) -> None:
    grid = {"split": ["mr2468", "mr8642"], "method": ["baseline", "passion"], "seed": [1, 2]}
    splits = {"mr2468": {"missing_rates": "mr2468"}, "mr8642": {"missing_rates": "mr8642"}}
    spec = parse_spec(tiny_spec(tmp_path, grid=grid, splits=splits))
    cells = grid_cells(spec)
    assert len(cells) == 8 and [cell.index for cell in cells] == list(range(8))
    assert cells[1].label == "split=mr2468,method=baseline,seed=2"
    assert [cell.trials for cell in cells] == [1, 1, 2, 2, 1, 1, 2, 2]
    assert all(cell.searched == (cell.values["method"] == "passion") for cell in cells)
    assert total_trials(cells) == 12
    assert cell_space(spec, cells[0]) == {}
    assert cell_space(spec, cells[2]) == {"passion.temperature": FloatDistribution(1.0, 8.0, log=True)}


def test_without_search_each_cell_runs_once(tmp_path: Path) -> None:
    values = tiny_spec(tmp_path)
    del values["search"]
    cells = grid_cells(parse_spec(values))
    assert [(cell.trials, cell.searched) for cell in cells] == [(1, False), (1, False)]


def test_optuna_distributions() -> None:
    assert optuna_distribution(Distribution(type="float", low=0.1, high=1.0, step=0.1)) == FloatDistribution(
        0.1, 1.0, step=0.1
    )
    assert optuna_distribution(Distribution(type="int", low=1, high=64, log=True)) == IntDistribution(1, 64, log=True)
    assert optuna_distribution(Distribution(type="int", low=2, high=10, step=2)) == IntDistribution(2, 10, step=2)
    assert optuna_distribution(Distribution(type="categorical", choices=["idt", "pdt"])) == CategoricalDistribution(
        ["idt", "pdt"]
    )
