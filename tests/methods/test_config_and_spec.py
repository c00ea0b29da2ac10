"""Methods in the run config, in specs (grid, search, plan), in the tracked params and in tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from passion_sweep import tracking
from passion_sweep.sweep.search_space import cell_space, grid_cells
from passion_sweep.sweep.spec import load_spec, parse_spec
from passion_sweep.tables.comparison import build_comparison_table
from passion_sweep.tables.results import RunSelection, load_trial_results
from tests.tables.store import KnownTrial, record_sweep, uniform
from trainables.config import RunConfig
from trainables.errors import ConfigError
from trainables.methods.coefficients import MMParetoConfig, ModDropConfig, OGMGEConfig, PMRConfig, search_space
from trainables.methods.registry import method_info, method_names

EXPERIMENTS = Path(__file__).parents[2] / "experiments"


def test_a_method_sets_its_passion_keys_and_refuses_a_contradiction() -> None:
    config = RunConfig().with_overrides(["method.name=passion-no-task-reg"])
    assert config.passion.enabled and config.passion.eta == 0.0
    assert not RunConfig().with_overrides(["method.name=pmr"]).passion.enabled
    with pytest.raises(ConfigError, match=r"passion.eta is fixed to 0.0 by method passion-no-task-reg, got 0.02"):
        config.with_overrides(["passion.eta=0.02"])
    with pytest.raises(ConfigError, match=r"passion.enabled follows the method; set method.name=baseline"):
        RunConfig().with_overrides(["passion.enabled=false"])
    # Switching the method frees the keys the previous one fixed.
    assert config.with_overrides(["method.name=passion"]).passion.eta == 0.01


def test_configs_written_before_methods_name_baseline_or_passion() -> None:
    assert RunConfig.from_dict({"passion": {"enabled": False}}).method.name == "baseline"
    assert RunConfig.from_dict({"train": {"epochs": 3}}).method.name == "passion"
    config = RunConfig().with_overrides(["method.name=ogm-ge", "ogm_ge.alpha=0.3"])
    assert RunConfig.from_dict(config.to_dict()) == config


def test_tracked_params_hold_the_method_and_only_its_own_coefficients() -> None:
    params = tracking.flatten_config(RunConfig().with_overrides(["method.name=pmr", "pmr.alpha=2"]))
    assert params["method.name"] == "pmr" and params["pmr.alpha"] == "2.0" and params["passion.enabled"] == "False"
    assert not any(key.startswith(("moddrop.", "ogm_ge.", "mmpareto.")) for key in params)


def test_methods_spec_plans_every_method_with_the_same_budget() -> None:
    spec = load_spec(EXPERIMENTS / "methods.yaml")
    cells = grid_cells(spec)
    assert {cell.values["method"] for cell in cells} == {"baseline", "passion", "moddrop", "pmr", "ogm-ge", "mmpareto"}
    assert {cell.trials for cell in cells} == {spec.search.trials_per_cell}
    sections = {"moddrop": "moddrop", "pmr": "pmr", "ogm-ge": "ogm_ge", "mmpareto": "mmpareto", "passion": "passion"}
    for cell in cells:
        keys = set(cell_space(spec, cell))
        own = {key for key in keys if key != "train.lr"}
        assert "train.lr" in keys
        assert {key.split(".")[0] for key in own} <= {sections.get(cell.values["method"])}, (cell.values, keys)
    # The balancing methods search exactly their declared ranges.
    for section in (ModDropConfig, PMRConfig, OGMGEConfig, MMParetoConfig):
        for key, declared in search_space(section).items():
            assert spec.search.space[key].model_dump(exclude_defaults=True) == declared, key


def test_ablation_spec_runs_every_ablation_with_its_fixed_keys() -> None:
    spec = load_spec(EXPERIMENTS / "ablation.yaml")
    methods = {str(cell.values["method"]) for cell in grid_cells(spec)}
    assert methods == {name for name in method_names() if method_info(name).passion["enabled"]} | {"baseline"}
    for method in methods:
        config = spec.run_config({"method": method})
        for key, value in method_info(method).passion.items():
            assert getattr(config.passion, key) == value, (method, key)


def test_a_grid_method_wins_over_the_passion_section(tmp_path: Path) -> None:
    spec = parse_spec(
        {
            "name": "s",
            "data": {"path": str(tmp_path)},
            "splits": {"mr2468": {"missing_rates": "mr2468"}},
            "grid": {"method": ["passion", "passion-no-pixel-kd"]},
            "passion": {"kl_weight": 0.7},
            "search": {"trials_per_cell": 2, "space": {"passion.kl_weight": {"type": "float", "low": 0.1, "high": 1}}},
        }
    )
    assert spec.run_config({"method": "passion"}).passion.kl_weight == 0.7
    assert spec.run_config({"method": "passion-no-pixel-kd"}).passion.kl_weight == 0.0
    # The key the ablation fixes is not searched there: that cell runs once.
    assert [cell.trials for cell in grid_cells(spec)] == [2, 1]


def test_unknown_grid_method_names_the_closest(tmp_path: Path) -> None:
    values = {
        "name": "s",
        "data": {"path": str(tmp_path)},
        "grid": {"method": ["mmparet"]},
        "train": {"mask_type": "pdt"},
    }
    with pytest.raises(ConfigError, match=r"grid.method: unknown method 'mmparet' \(did you mean 'mmpareto'\?\)"):
        parse_spec(values)


def test_delta_compares_every_method_with_the_baseline(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    dice = {"baseline": 0.70, "passion": 0.80, "pmr": 0.75, "ogm-ge": 0.60}
    trials = [
        KnownTrial(
            f"method={method}",
            {"backbone": "rfnet", "method": method, "seed": "1", "split": "mr2468"},
            dice=uniform(value),
        )
        for method, value in dice.items()
    ]
    record_sweep(uri, tmp_path, experiment="methods", name="methods", plan={t.cell: 1 for t in trials}, trials=trials)
    table = build_comparison_table(
        load_trial_results(uri, RunSelection(experiment="methods")), columns=["backbone", "method"], delta=True
    )
    labels = list(dict.fromkeys(table.deltas.columns.get_level_values(0)))
    assert labels == ["Δ rfnet / passion", "Δ rfnet / pmr", "Δ rfnet / ogm-ge"]
    assert table.deltas.at["average", ("Δ rfnet / ogm-ge", "WT")] == pytest.approx(-10.0)


def test_a_searched_key_that_no_method_of_the_grid_uses_is_refused(tmp_path: Path) -> None:
    values = {
        "name": "s",
        "data": {"path": str(tmp_path)},
        "grid": {"method": ["baseline", "pmr"]},
        "train": {"mask_type": "pdt"},
        "search": {"trials_per_cell": 2, "space": {"ogm_ge.alpha": {"type": "float", "low": 0.1, "high": 1}}},
    }
    with pytest.raises(
        ConfigError, match=r"search.space.ogm_ge.alpha: no method of the grid uses it \(baseline, pmr\)"
    ):
        parse_spec(values)
