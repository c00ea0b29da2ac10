"""Comparison tables from a real MLflow store with known values (see conftest.py)."""

from __future__ import annotations

import dataclasses
import math
import statistics
from pathlib import Path

import pytest

from passion_sweep.errors import ConfigError
from passion_sweep.tables.comparison import AVERAGE_ROW, SUBSET_ROWS, build_comparison_table
from passion_sweep.tables.results import RunSelection, load_trial_results

ROWS = [*SUBSET_ROWS, AVERAGE_ROW]
RB, RP, MB, MP = "rfnet / baseline", "rfnet / passion", "mmformer / baseline", "mmformer / passion"


def table1(uri: str, **options):
    return build_comparison_table(load_trial_results(uri, RunSelection(experiment="table1")), **options)


def test_values_are_means_over_seeds_with_sample_std(known_store: str) -> None:
    table = table1(known_store)

    assert [config.label for config in table.configurations] == [RB, RP, MB, MP], "grid order"
    for row in ROWS:
        assert table.stats.at[row, (RB, "WT", "mean")] == pytest.approx(72.0)
        assert table.stats.at[row, (RB, "WT", "std")] == pytest.approx(statistics.stdev([70.0, 74.0]))
        assert table.stats.at[row, (RB, "WT", "n")] == 2
        assert table.stats.at[row, (RP, "ET", "mean")] == pytest.approx(67.0)
        assert table.stats.at[row, (RP, "ET", "std")] == pytest.approx(statistics.stdev([50.0, 84.0]))


def test_a_single_seed_has_no_standard_deviation(known_store: str) -> None:
    table = table1(known_store)

    assert table.stats.at["flair", (MB, "TC", "mean")] == pytest.approx(60.0)
    assert table.stats.at["flair", (MB, "TC", "n")] == 1
    assert math.isnan(table.stats.at["flair", (MB, "TC", "std")])


def test_best_of_each_row_and_region_is_marked(known_store: str) -> None:
    dice = table1(known_store)
    hd95 = table1(known_store, metric="hd95")

    for row in ROWS:
        assert [label for label in (RB, RP, MB, MP) if dice.best.at[row, (label, "WT")]] == [RP]
        assert [label for label in (RB, RP, MB, MP) if dice.best.at[row, (label, "ET")]] == [RB], (
            "ET of rfnet/passion is 67"
        )
        assert [label for label in (RB, RP, MB, MP) if hd95.best.at[row, (label, "WT")]] == [MP], "lowest HD95 wins"


def test_ties_at_the_printed_precision_are_all_best(known_store: str) -> None:
    results = load_trial_results(known_store, RunSelection(experiment="table1", filters={"backbone": ("rfnet",)}))
    table = build_comparison_table(results, metric="hd95")

    assert table.best.all().all(), "every rfnet HD95 is 5.00"


def test_delta_is_passion_minus_baseline_of_the_same_backbone(known_store: str) -> None:
    table = table1(known_store, delta=True)

    assert list(dict.fromkeys(table.deltas.columns.get_level_values(0))) == ["Δ rfnet", "Δ mmformer"]
    assert table.deltas.at["t2", ("Δ rfnet", "WT")] == pytest.approx(10.0)
    assert table.deltas.at[AVERAGE_ROW, ("Δ rfnet", "ET")] == pytest.approx(-5.0)
    assert table.deltas.at["flair-t1ce", ("Δ mmformer", "TC")] == pytest.approx(5.0)


def test_failed_and_missing_trials_are_counted_in_footnotes(known_store: str) -> None:
    table = table1(known_store)

    markers = {config.label: config.marker for config in table.configurations}
    assert markers == {RB: "", RP: "", MB: "a", MP: "b"}
    assert table.footnotes[:3] == (
        f"a: {MB}: 1 failed of 2 trials; values average 1 seed(s)",
        f"b: {MP}: 1 never ran of 2 trials; values average 1 seed(s)",
        "trials without a result: 1 failed, 1 never ran",
    )


def test_hd95_tables_name_the_definition_the_runs_recorded(known_store: str) -> None:
    assert table1(known_store).definition == "", "Dice tables need none"
    definition = table1(known_store, metric="hd95").definition
    assert "pooled (medpy, as the reference)" in definition
    assert "hd95_percentile=pooled, hd95_convention=reference" in definition


def _hd95_runs(known_store: str, seed: str | None = None, metric: str = "hd95"):
    filters = {"seed": (seed,)} if seed else {}
    results = load_trial_results(known_store, RunSelection(experiment="hd95", filters=filters))
    return build_comparison_table(results, metric=metric)


def test_hd95_of_different_definitions_is_not_averaged(known_store: str) -> None:
    with pytest.raises(
        ConfigError,
        match=r"computed HD95 differently \(eval.hd95_percentile: max_directed, pooled, unrecorded\): "
        "select one with --filter eval.hd95_percentile=max_directed",
    ):
        _hd95_runs(known_store)
    assert _hd95_runs(known_store, metric="dice").stats.at["t1", ("rfnet / baseline", "WT", "n")] == 3
    assert "hd95_percentile=max_directed" in _hd95_runs(known_store, "2").definition


def test_runs_without_a_recorded_definition_say_so(known_store: str) -> None:
    definition = _hd95_runs(known_store, "3").definition
    assert definition.startswith("HD95 definition not recorded: runs logged before passion-sweep recorded it")
    assert "hd95_percentile=max_directed" in definition


def test_a_searched_cell_counts_its_best_validation_trial_not_its_best_test(known_store: str) -> None:
    results = load_trial_results(known_store, RunSelection(experiment="searched"))
    table = build_comparison_table(results)

    assert [config.label for config in table.configurations] == [
        "mr2468 / baseline",
        "mr2468 / passion",
        "mr5528 / baseline",
        "mr5528 / passion",
    ], "default columns: the grid keys that vary"
    assert table.stats.at["t1", ("mr2468 / passion", "WT", "mean")] == pytest.approx(70.0), (
        "objective 0.9, not Dice 0.95"
    )
    assert table.footnotes == ("searched cells: each seed counts its trial with the best val/dice/WT (of up to 3)",)

    minimising = dataclasses.replace(
        results, plans={sweep: dataclasses.replace(plan, search_mode="min") for sweep, plan in results.plans.items()}
    )
    assert build_comparison_table(minimising).stats.at["t1", ("mr2468 / passion", "WT", "mean")] == pytest.approx(60.0)


def test_runs_that_differ_in_a_grid_key_the_columns_do_not_separate_are_refused(known_store: str) -> None:
    results = load_trial_results(known_store, RunSelection(experiment="searched"))

    with pytest.raises(
        ConfigError,
        match=r"differ in split \(mr2468, mr5528\): add it to --columns or select one with --filter split=mr2468",
    ):
        build_comparison_table(results, columns=["method"])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"metric": "iou"}, "--metric must be one of dice, hd95, got 'iou'"),
        ({"regions": ["WT", "et"]}, "unknown region 'et' \\(did you mean 'ET'\\?\\)"),
        (
            {"columns": ["backbon", "method"]},
            "no tag or param 'backbon' on the selected runs \\(did you mean 'backbone'\\?\\)",
        ),
        ({"columns": ["backbone"], "delta": False}, "differ in method"),
    ],
)
def test_bad_options_are_named(known_store: str, options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        table1(known_store, **options)


def test_delta_needs_the_method_column(known_store: str) -> None:
    results = load_trial_results(known_store, RunSelection(experiment="table1", filters={"method": ("passion",)}))
    with pytest.raises(ConfigError, match="--delta compares every method with the baseline: add method to --columns"):
        build_comparison_table(results, columns=["backbone"], delta=True)
    with pytest.raises(ConfigError, match="--delta needs runs of a method and of the baseline"):
        build_comparison_table(results, columns=["backbone", "method"], delta=True)


def test_a_planned_trial_without_a_run_is_a_missing_row(known_store: str) -> None:
    runs = load_trial_results(known_store, RunSelection(experiment="table1")).runs

    missing = runs[runs["status"] == "MISSING"]
    assert len(runs) == 8 and len(missing) == 1
    assert missing.iloc[0][["backbone", "method", "seed", "split", "method.name"]].tolist() == [
        "mmformer",
        "passion",
        "2",
        "mr2468",
        "passion",
    ]


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        (
            RunSelection(experiment="tabel1"),
            "no experiment 'tabel1' in the tracking store \\(did you mean 'table1'\\?\\)",
        ),
        (RunSelection(sweep="nope"), "no sweep 'nope' in the tracking store"),
        (RunSelection(), "name the runs to tabulate with --experiment NAME or --sweep ID \\(experiments with sweeps: "),
        (
            RunSelection(experiment="table1", filters={"split": ("mr9999",)}),
            "has split in \\(mr9999\\): its values are mr2468",
        ),
        (
            RunSelection(experiment="table1", filters={"splt": ("mr2468",)}),
            "no tag or param 'splt' .*did you mean 'split'",
        ),
    ],
)
def test_bad_selections_are_named(known_store: str, selection: RunSelection, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_trial_results(known_store, selection)


def test_a_missing_store_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "mlflow.db"
    with pytest.raises(ConfigError, match=f"no MLflow store at {path}: pass --tracking-uri"):
        load_trial_results(f"sqlite:///{path}", RunSelection(experiment="table1"))
    assert not path.exists()


def test_an_experiment_without_trial_runs_is_an_error(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(uri).create_experiment("empty")
    with pytest.raises(ConfigError, match="the selected sweeps have no trial runs yet"):
        load_trial_results(uri, RunSelection(experiment="empty"))
