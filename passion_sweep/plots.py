"""Figures of a comparison table: one heatmap per region and a bar chart of the averages."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on cluster nodes or in CI

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from passion_sweep.tables import AVERAGE_ROW, SUBSET_ROWS, ComparisonTable  # noqa: E402
from trainables.data.atomic import atomic_write  # noqa: E402

__all__ = ["plot_table"]

_SHORT = {"flair": "F", "t1ce": "T1c", "t1": "T1", "t2": "T2"}
_UNITS = {"dice": "Dice (%)", "hd95": "HD95 (mm)"}


def _row_label(row: str) -> str:
    return "Average" if row == AVERAGE_ROW else "+".join(_SHORT[name] for name in row.split("-"))


def _heatmap(axis: plt.Axes, table: ComparisonTable, region: str, precision: int) -> matplotlib.image.AxesImage:
    labels = [config.label for config in table.configurations]
    rows = [*SUBSET_ROWS, AVERAGE_ROW]
    values = np.array([[table.stats.at[row, (label, region, "mean")] for label in labels] for row in rows], dtype=float)
    colours = "viridis_r" if table.lower_is_better else "viridis"
    image = axis.imshow(np.ma.masked_invalid(values), cmap=colours, aspect="auto")
    finite = values[np.isfinite(values)]
    middle = (finite.min() + finite.max()) / 2 if finite.size else 0.0
    for (row, column), value in np.ndenumerate(values):
        if math.isnan(value):
            axis.text(column, row, "–", ha="center", va="center", color="grey")
            continue
        dark = (value < middle) != table.lower_is_better
        weight = "bold" if table.best.at[rows[row], (labels[column], region)] else "normal"
        axis.text(
            column,
            row,
            f"{value:.{precision}f}",
            ha="center",
            va="center",
            fontsize=8,
            color="white" if dark else "black",
            fontweight=weight,
        )
    axis.axhline(len(SUBSET_ROWS) - 0.5, color="white", linewidth=2)  # set the average apart
    axis.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
    axis.set_yticks(range(len(rows)), [_row_label(row) for row in rows], fontsize=8)
    axis.set_title(f"{region}: {_UNITS[table.metric]}")
    return image


def _averages(axis: plt.Axes, table: ComparisonTable, precision: int) -> None:
    labels = [config.label for config in table.configurations]
    width = 0.8 / max(1, len(labels))
    for index, label in enumerate(labels):
        means = [table.stats.at[AVERAGE_ROW, (label, region, "mean")] for region in table.regions]
        stds = [table.stats.at[AVERAGE_ROW, (label, region, "std")] for region in table.regions]
        positions = np.arange(len(table.regions)) + (index - (len(labels) - 1) / 2) * width
        bars = axis.bar(positions, np.nan_to_num(means), width, yerr=np.nan_to_num(stds), capsize=3, label=label)
        axis.bar_label(bars, labels=[f"{m:.{precision - 1}f}" if not math.isnan(m) else "–" for m in means], fontsize=7)
    axis.set_xticks(range(len(table.regions)), table.regions)
    axis.set_ylabel(f"{_UNITS[table.metric]}, average over subsets")
    axis.set_title("Average over the 15 subsets (error bars: std over seeds)")
    axis.legend(fontsize=8, loc="lower right" if not table.lower_is_better else "upper right")


def plot_table(table: ComparisonTable, path: Path) -> Path:
    """Save heatmaps (one per region) and a bar chart of the averages of ``table`` as a PNG.

    The file is written atomically: ``path`` holds either the old figure or the new one.
    """
    precision = max(1, table.precision - 1)  # heatmap cells are small
    columns = len(table.regions)
    cell_width = max(3.0, 0.7 * len(table.configurations) + 1.5)
    figure = plt.figure(figsize=(cell_width * columns + 1.0, 11.5), layout="constrained")
    grid = figure.add_gridspec(2, columns, height_ratios=[3, 1.3])
    for index, region in enumerate(table.regions):
        axis = figure.add_subplot(grid[0, index])
        image = _heatmap(axis, table, region, precision)
        figure.colorbar(image, ax=axis, shrink=0.8)
    _averages(figure.add_subplot(grid[1, :]), table, table.precision)
    path = Path(path)
    with atomic_write(path) as handle:
        figure.savefig(handle, format="png", dpi=110)
    plt.close(figure)
    return path
