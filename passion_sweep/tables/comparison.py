"""Paper-style comparison tables: a metric per modality subset and configuration.

Rows are the 15 modality subsets in the reference order, then their average; column
groups are the configurations named by ``columns`` (e.g. backbone and method), each
split by region. A value is the mean over seeds (with the standard deviation when there
are several); in a searched grid cell, each seed contributes its trial with the best
validation objective, so the test set never chooses. Trials that failed, never ran or
are still running are counted per configuration in footnotes, never dropped silently.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from passion_sweep.errors import ConfigError
from passion_sweep.tables.results import TrialResults
from trainables.errors import did_you_mean
from trainables.evaluation.conventions import HD95Convention, HD95Percentile, hd95_definition
from trainables.modalities import REGIONS, SUBSET_MASKS, subset_name

__all__ = [
    "METRICS",
    "AVERAGE_ROW",
    "SUBSET_ROWS",
    "Configuration",
    "ComparisonTable",
    "build_comparison_table",
]

METRICS: tuple[str, ...] = ("dice", "hd95")
SUBSET_ROWS: tuple[str, ...] = tuple(subset_name(mask) for mask in SUBSET_MASKS)
AVERAGE_ROW = "average"
_COMMON_TAGS = ("backbone", "split", "method")
_STATS = ("mean", "std", "n")
_SCALE = {"dice": 100.0, "hd95": 1.0}  # Dice in percent, as the papers print it
_OUTCOMES = {
    "FAILED": "failed",
    "MISSING": "never ran",
    "RUNNING": "still running",
    "NO_RESULTS": "finished without test results",
    "KILLED": "stopped early by the scheduler",
}


@dataclass(frozen=True)
class Configuration:
    """One column group of a table.

    Attributes:
        label: the values of the column keys joined by `` / ``, e.g. ``rfnet / passion``.
        values: column key to value.
        marker: footnote marker (``a``, ``b``...) if some of its trials have no result.
    """

    label: str
    values: Mapping[str, str]
    marker: str = ""


@dataclass(frozen=True)
class ComparisonTable:
    """A comparison table, ready to render in any format.

    Attributes:
        metric: ``dice`` (percent, higher is better) or ``hd95`` (mm, lower is better).
        regions: the regions of each column group.
        configurations: the column groups, in order.
        stats: index :data:`SUBSET_ROWS` plus :data:`AVERAGE_ROW`; columns
            ``(configuration label, region, stat)`` with stat ``mean``, ``std`` (NaN
            with a single seed) and ``n`` (seeds averaged).
        best: booleans, columns ``(configuration label, region)``: the best mean of its
            row and region at the printed precision (ties are all best).
        deltas: PASSION minus baseline of the same other values, columns ``(delta
            label, region)``; no columns unless asked for.
        footnotes: one line per marked configuration, then notes on trial selection.
        precision: decimals printed.
        definition: how the values were computed, for HD95 tables (which HD95 definition
            the runs recorded); empty for Dice.
    """

    metric: str
    regions: tuple[str, ...]
    configurations: tuple[Configuration, ...]
    stats: pd.DataFrame
    best: pd.DataFrame
    deltas: pd.DataFrame
    footnotes: tuple[str, ...]
    precision: int = 2
    definition: str = ""

    @property
    def lower_is_better(self) -> bool:
        return self.metric == "hd95"


def _check_options(metric: str, regions: Sequence[str], columns: Sequence[str], attributes: Sequence[str]) -> None:
    if metric not in METRICS:
        raise ConfigError(f"--metric must be one of {', '.join(METRICS)}, got {metric!r}")
    for region in regions:
        if region not in REGIONS:
            raise ConfigError(
                f"unknown region {region!r}{did_you_mean(region, REGIONS)}: --regions takes {','.join(REGIONS)}"
            )
    if not regions:
        raise ConfigError(f"--regions needs at least one of {','.join(REGIONS)}")
    for key in columns:
        if key not in attributes:
            raise ConfigError(
                f"no tag or param {key!r} on the selected runs{did_you_mean(key, attributes)}: "
                f"--columns takes tags such as {', '.join(_COMMON_TAGS)} or params such as passion.kl_weight"
            )


def _default_columns(results: TrialResults) -> list[str]:
    """The grid keys that vary among the runs, in grid order; else backbone and method."""
    runs, attributes = results.runs, results.attributes
    varying = [key for key in results.grid_keys if key in attributes and runs[key].nunique() > 1]
    return varying or [key for key in ("backbone", "method") if key in attributes]


def _check_nothing_mixed(results: TrialResults, columns: Sequence[str]) -> None:
    """Refuse to average over a grid key that the columns do not separate."""
    runs = results.runs
    for key in results.grid_keys:
        if key in columns or key not in runs:
            continue
        values = sorted(runs[key].dropna().astype(str).unique())
        if len(values) > 1:
            raise ConfigError(
                f"the selected runs differ in {key} ({', '.join(values)}): add it to --columns "
                f"or select one with --filter {key}={values[0]}"
            )


def _outcomes(runs: pd.DataFrame, metric_columns: list[str]) -> pd.Series:
    """Each run's outcome: ``DONE`` or a key of :data:`_OUTCOMES`."""
    has_results = runs[metric_columns].notna().any(axis=1) if metric_columns else pd.Series(False, index=runs.index)
    outcome = runs["status"].where(runs["status"] != "FINISHED", "NO_RESULTS")
    return outcome.where(~((runs["status"] == "FINISHED") & has_results), "DONE")


# The tags a trial's run gets with its test results (see tracking.log_test_results).
_HD95_TAGS = ("eval.hd95_percentile", "eval.hd95_convention")
# What runs logged before the definition was recorded computed (MONAI's HD95, 1.0 for one empty mask).
_UNRECORDED_HD95: tuple[HD95Percentile, HD95Convention] = ("max_directed", "reference")


def _hd95_definition(chosen: pd.DataFrame) -> str:
    """The HD95 definition of the tabulated runs, as one line.

    Raises:
        ConfigError: if the runs computed HD95 in different ways.
    """
    tags = chosen.reindex(columns=list(_HD95_TAGS)).astype("string").fillna("unrecorded")
    for key in _HD95_TAGS:
        values = sorted(tags[key].unique())
        if len(values) > 1:
            known = [value for value in values if value != "unrecorded"]
            raise ConfigError(
                f"the selected runs computed HD95 differently ({key}: {', '.join(values)}): "
                f"select one with --filter {key}={known[0]}"
            )
    if chosen.empty:
        return ""
    percentile, convention = tags.iloc[0]
    if percentile == "unrecorded":
        return "HD95 definition not recorded: runs logged before passion-sweep recorded it computed " + hd95_definition(
            *_UNRECORDED_HD95
        )
    return hd95_definition(percentile, convention)


def _pick_per_seed(done: pd.DataFrame, modes: Mapping[str, str]) -> tuple[pd.DataFrame, int]:
    """One run per configuration and seed: the best validation objective of its sweep's mode.

    Returns:
        The chosen runs and the most runs any configuration and seed had to choose from.
    """
    sign = done["sweep"].map(lambda sweep: -1.0 if modes.get(sweep, "max") == "min" else 1.0)
    ranked = done.assign(_rank=(done["objective"].astype(float) * sign).fillna(float("-inf")))
    groups = ranked.sort_values("_rank", ascending=False, kind="stable").groupby(["_config", "_seed"], sort=False)
    return groups.head(1).drop(columns="_rank"), int(groups.size().max())


def _values(chosen: pd.DataFrame, metric: str, regions: Sequence[str]) -> pd.DataFrame:
    """Long frame ``_config, _seed, row, region, value`` with the average row added per seed."""
    frames = []
    for region in regions:
        columns = {f"test/{metric}/{subset}/{region}": subset for subset in SUBSET_ROWS}
        wide = chosen.reindex(columns=["_config", "_seed", *columns]).rename(columns=columns)
        wide[list(SUBSET_ROWS)] = wide[list(SUBSET_ROWS)].astype(float) * _SCALE[metric]
        wide[AVERAGE_ROW] = wide[list(SUBSET_ROWS)].mean(axis=1)
        long = wide.melt(id_vars=["_config", "_seed"], var_name="row", value_name="value")
        frames.append(long.assign(region=region))
    return pd.concat(frames, ignore_index=True)


def _statistics(values: pd.DataFrame, labels: Sequence[str], regions: Sequence[str]) -> pd.DataFrame:
    grouped = values.groupby(["row", "_config", "region"])["value"].agg(["mean", "std", "count"])
    grouped = grouped.rename(columns={"count": "n"}).unstack(["_config", "region"])
    grouped.columns = grouped.columns.reorder_levels([1, 2, 0])
    full = pd.MultiIndex.from_product([labels, regions, _STATS])
    return grouped.reindex(index=[*SUBSET_ROWS, AVERAGE_ROW], columns=full)


def _best(
    stats: pd.DataFrame, labels: Sequence[str], regions: Sequence[str], *, lower: bool, precision: int
) -> pd.DataFrame:
    best = pd.DataFrame(False, index=stats.index, columns=pd.MultiIndex.from_product([labels, regions]))
    if len(labels) < 2:
        return best
    for region in regions:
        means = stats.xs((region, "mean"), axis=1, level=(1, 2)).astype(float).round(precision)
        target = means.min(axis=1) if lower else means.max(axis=1)
        for label in labels:
            best[(label, region)] = means[label].eq(target) & means[label].notna()
    return best


def _deltas(
    stats: pd.DataFrame, configurations: Sequence[Configuration], columns: Sequence[str], regions: Sequence[str]
) -> pd.DataFrame:
    """Method minus baseline for each configuration of another method that has a baseline twin
    (the same other column values). Labels name the other values, and the method when
    several methods are compared (``Δ rfnet / pmr``)."""
    if "method" not in columns:
        raise ConfigError("--delta compares every method with the baseline: add method to --columns")
    by_values = {tuple(sorted(config.values.items())): config for config in configurations}
    pairs = []
    for config in configurations:
        if config.values["method"] == "baseline":
            continue
        twin = by_values.get(tuple(sorted({**config.values, "method": "baseline"}.items())))
        if twin is not None:
            pairs.append((config, twin))
    several = len({config.values["method"] for config, _ in pairs}) > 1
    deltas: dict[tuple[str, str], pd.Series] = {}
    for config, twin in pairs:
        method = str(config.values["method"])
        named = [str(config.values[key]) for key in columns if key != "method"] + ([method] if several else [])
        label = "Δ " + (" / ".join(named) if named else ("PASSION" if method == "passion" else method))
        for region in regions:
            deltas[(label, region)] = stats[(config.label, region, "mean")] - stats[(twin.label, region, "mean")]
    if not deltas:
        raise ConfigError(
            "--delta needs runs of a method and of the baseline with the same other column values; none are selected"
        )
    return pd.DataFrame(deltas)


def _footnotes(
    runs: pd.DataFrame, configurations: list[Configuration], chosen_from: int, search_metrics: set[str]
) -> tuple[list[Configuration], list[str]]:
    """Mark the configurations with trials that have no result; say how runs were chosen."""
    marked, notes = [], []
    markers = iter(string.ascii_lowercase)
    for config in configurations:
        trials = runs[runs["_config"] == config.label]
        counts = trials["_outcome"].value_counts()
        problems = [f"{counts[key]} {text}" for key, text in _OUTCOMES.items() if counts.get(key, 0)]
        if not problems:
            marked.append(config)
            continue
        marker = next(markers, "*")
        seeds = trials.loc[trials["_outcome"] == "DONE", "_seed"].nunique()
        notes.append(
            f"{marker}: {config.label}: {', '.join(problems)} of {len(trials)} trials; values average {seeds} seed(s)"
        )
        marked.append(Configuration(config.label, config.values, marker))
    total = {text: int((runs["_outcome"] == key).sum()) for key, text in _OUTCOMES.items()}
    if any(total.values()):
        notes.append(
            "trials without a result: " + ", ".join(f"{count} {text}" for text, count in total.items() if count)
        )
    if chosen_from > 1:
        metric = " / ".join(sorted(search_metrics)) or "objective"
        notes.append(f"searched cells: each seed counts its trial with the best {metric} (of up to {chosen_from})")
    return marked, notes


def build_comparison_table(
    results: TrialResults,
    *,
    metric: str = "dice",
    regions: Sequence[str] = ("WT", "TC", "ET"),
    columns: Sequence[str] | None = None,
    delta: bool = False,
    precision: int = 2,
) -> ComparisonTable:
    """Aggregate trial results into a comparison table.

    Args:
        results: the selected trial runs (see :func:`~passion_sweep.tables.results.load_trial_results`).
        metric: ``dice`` or ``hd95``.
        regions: regions of each column group.
        columns: tag or param names whose values make the column groups; default the
            grid keys that vary among the runs, seed excepted (else backbone and method).
        delta: add method-minus-baseline columns for every method with baseline runs
            (``method`` must be a column).
        precision: decimals printed, also the precision at which ties for best are decided.

    Raises:
        ConfigError: for an unknown metric, region or column, for runs that differ in a
            grid key the columns do not separate or (HD95) in the HD95 definition, or for
            ``delta`` without pairs.
    """
    runs = results.runs
    regions = tuple(regions)
    columns = list(columns) if columns else _default_columns(results)
    _check_options(metric, regions, columns, results.attributes)
    _check_nothing_mixed(results, columns)
    metric_columns = [column for column in runs if str(column).startswith(f"test/{metric}/")]
    keys = runs[columns].astype("string").fillna("?")
    runs = runs.assign(
        _config=keys.agg(" / ".join, axis=1),
        _seed=runs.get("seed", ""),
        _outcome=_outcomes(runs, metric_columns),
    )
    # Grid order: a configuration comes where its first grid cell comes.
    first = keys.assign(_config=runs["_config"], _order=runs["cell_order"]).sort_values(
        ["_order", "_config"], kind="stable"
    )
    first = first.drop_duplicates("_config")
    configurations = [Configuration(row["_config"], {key: row[key] for key in columns}) for _, row in first.iterrows()]
    labels = [config.label for config in configurations]

    done = runs[runs["_outcome"] == "DONE"]
    modes = {sweep: plan.search_mode for sweep, plan in results.plans.items()}
    chosen, chosen_from = _pick_per_seed(done, modes) if not done.empty else (done, 0)
    stats = _statistics(_values(chosen, metric, regions), labels, regions)
    best = _best(stats, labels, regions, lower=metric == "hd95", precision=precision)
    deltas = _deltas(stats, configurations, columns, regions) if delta else pd.DataFrame(index=stats.index)
    search_metrics = {plan.search_metric for plan in results.plans.values()}
    configurations, notes = _footnotes(runs, configurations, chosen_from, search_metrics)
    definition = _hd95_definition(chosen) if metric == "hd95" else ""
    return ComparisonTable(
        metric, regions, tuple(configurations), stats, best, deltas, tuple(notes), precision, definition
    )
