"""Figures of a comparison table: one heatmap per region and bar charts of the averages.

Configurations run down the rows (a Table-1 sweep has 48 of them), the 15 subsets and
their average across the columns, so that the figure grows in height only and stays
readable from 2 to 50 configurations.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on cluster nodes or in CI

import matplotlib.pyplot as plt
import numpy as np

from passion_sweep.tables.comparison import AVERAGE_ROW, SUBSET_ROWS, ComparisonTable
from trainables.data.atomic import atomic_write

__all__ = ["plot_table"]

_SHORT = {"flair": "F", "t1ce": "T1c", "t1": "T1", "t2": "T2"}
_UNITS = {"dice": "Dice (%)", "hd95": "HD95 (mm)"}
_ROW_INCHES = 0.3
_COLUMN_INCHES = 0.78


def _column_label(row: str) -> str:
    return "Avg." if row == AVERAGE_ROW else "+".join(_SHORT[name] for name in row.split("-"))


def _means(table: ComparisonTable, region: str, stat: str = "mean") -> np.ndarray:
    """``configurations x (subsets + average)`` values of one region."""
    columns = [*SUBSET_ROWS, AVERAGE_ROW]
    return np.array(
        [[table.stats.at[row, (config.label, region, stat)] for row in columns] for config in table.configurations],
        dtype=float,
    )


def _heatmap(axis: plt.Axes, table: ComparisonTable, region: str, decimals: int) -> matplotlib.image.AxesImage:
    values = _means(table, region)
    columns = [*SUBSET_ROWS, AVERAGE_ROW]
    image = axis.imshow(
        np.ma.masked_invalid(values), cmap="viridis_r" if table.lower_is_better else "viridis", aspect="auto"
    )
    finite = values[np.isfinite(values)]
    middle = (finite.min() + finite.max()) / 2 if finite.size else 0.0
    for (row, column), value in np.ndenumerate(values):
        if math.isnan(value):
            axis.text(column, row, "–", ha="center", va="center", color="grey")
            continue
        dark_cell = (value < middle) != table.lower_is_better
        best = table.best.at[columns[column], (table.configurations[row].label, region)]
        axis.text(
            column, row, f"{value:.{decimals}f}", ha="center", va="center", fontsize=7,
            color="white" if dark_cell else "black", fontweight="bold" if best else "normal",
        )  # fmt: skip
    axis.axvline(len(SUBSET_ROWS) - 0.5, color="white", linewidth=2)  # set the average apart
    axis.set_xticks(range(len(columns)), [_column_label(row) for row in columns], rotation=45, ha="right", fontsize=8)
    axis.set_yticks(range(len(table.configurations)), [config.label for config in table.configurations], fontsize=8)
    axis.set_title(f"{region}: {_UNITS[table.metric]} per available-modality subset (best of each column in bold)")
    return image


def _averages(axis: plt.Axes, table: ComparisonTable, region: str, decimals: int) -> None:
    means = _means(table, region)[:, -1]
    stds = np.nan_to_num(_means(table, region, "std")[:, -1])
    positions = np.arange(len(means))
    bars = axis.barh(positions, np.nan_to_num(means), xerr=stds, capsize=2, color="tab:blue", alpha=0.8)
    labels = ["–" if math.isnan(m) else f"{m:.{decimals}f}" for m in means]
    axis.bar_label(bars, labels=labels, label_type="center", color="white", fontsize=7)
    axis.set_yticks(positions, [config.label for config in table.configurations], fontsize=8)
    axis.invert_yaxis()  # same order as the heatmaps
    axis.set_xlabel(f"{region}: average {_UNITS[table.metric]} (± std over seeds)")


def plot_table(table: ComparisonTable, path: Path) -> Path:
    """Save one heatmap per region and bar charts of the averages (error bars: std over
    seeds) of ``table`` as a PNG, written atomically."""
    decimals = max(1, table.precision - 1)  # heatmap cells are small
    configurations, regions = len(table.configurations), len(table.regions)
    panel = _ROW_INCHES * configurations + 1.6
    width = _COLUMN_INCHES * (len(SUBSET_ROWS) + 1) + 3.5
    figure = plt.figure(figsize=(width, panel * (regions + 1)), layout="constrained")
    grid = figure.add_gridspec(regions + 1, regions)
    for index, region in enumerate(table.regions):
        axis = figure.add_subplot(grid[index, :])
        figure.colorbar(_heatmap(axis, table, region, decimals), ax=axis, pad=0.01)
    for index, region in enumerate(table.regions):
        _averages(figure.add_subplot(grid[regions, index]), table, region, decimals)
    with atomic_write(Path(path)) as handle:
        figure.savefig(handle, format="png", dpi=100)
    plt.close(figure)
    return Path(path)
