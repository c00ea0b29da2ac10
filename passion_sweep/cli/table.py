"""``passion-sweep table``: paper-style comparison tables and plots from MLflow."""

from __future__ import annotations

from pathlib import Path

import click

from passion_sweep.errors import ConfigError
from passion_sweep.tables.comparison import METRICS, build_comparison_table
from passion_sweep.tables.formats import FORMATS, render_table
from passion_sweep.tables.results import RunSelection, default_tracking_uri, load_trial_results
from trainables.data.atomic import atomic_write

__all__ = ["table"]


def _names(value: str | None) -> list[str] | None:
    return [name.strip() for name in value.split(",") if name.strip()] if value else None


def _filters(values: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    filters: dict[str, tuple[str, ...]] = {}
    for item in values:
        key, sep, listed = item.partition("=")
        if not sep or not key.strip() or not listed.strip():
            raise ConfigError(
                f"--filter {item!r} must look like KEY=VALUE or KEY=VALUE1,VALUE2, e.g. --filter split=mr2468"
            )
        filters[key.strip()] = tuple(value.strip() for value in listed.split(","))
    return filters


def _check_destinations(*paths: Path | None) -> None:
    """Fail before any work if an output's folder is missing, so nothing is half-written."""
    for path in paths:
        if path is not None and not path.resolve().parent.is_dir():
            raise ConfigError(
                f"folder {path.resolve().parent} does not exist: create it or write {path.name} elsewhere"
            )


@click.command()
@click.option("--experiment", help="MLflow experiment (default: the store's only experiment with sweeps).")
@click.option("--sweep", help="Sweep id (tag sweep.id, printed by `passion-sweep run`); default: every sweep.")
@click.option(
    "--tracking-uri",
    help="MLflow store: sqlite:////abs/mlflow.db or http://host:port "
    "(default: $MLFLOW_TRACKING_URI, else ./sweeps/mlflow.db).",
)
@click.option("--metric", type=click.Choice(METRICS), default="dice", show_default=True)
@click.option("--regions", default="WT,TC,ET", show_default=True, help="Regions of each column group.")
@click.option(
    "--columns",
    help="Tags or params whose values make the column groups, e.g. backbone,method "
    "(default: those of backbone, split and method that vary).",
)
@click.option(
    "--filter",
    "filters",
    multiple=True,
    metavar="KEY=VALUE[,VALUE]",
    help="Keep runs whose tag or param KEY has one of the values (repeatable), e.g. --filter split=mr2468.",
)
@click.option(
    "--delta", is_flag=True, help="Add method-minus-baseline columns for every method (needs method in --columns)."
)
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="md", show_default=True)
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the table here instead of printing it."
)
@click.option(
    "--plot",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also save heatmaps per region and a bar chart of the averages (PNG).",
)
def table(
    experiment: str | None,
    sweep: str | None,
    tracking_uri: str | None,
    metric: str,
    regions: str,
    columns: str | None,
    filters: tuple[str, ...],
    delta: bool,
    fmt: str,
    out: Path | None,
    plot: Path | None,
) -> None:
    """Print the comparison table of sweeps' trials: the metric per modality subset
    (rows) and configuration (column groups), mean ± std over seeds, best in bold."""
    _check_destinations(out, plot)
    selection = RunSelection(experiment=experiment, sweep=sweep, filters=_filters(filters))
    results = load_trial_results(tracking_uri or default_tracking_uri(), selection)
    comparison = build_comparison_table(
        results, metric=metric, regions=_names(regions) or [], columns=_names(columns), delta=delta
    )
    text = render_table(comparison, fmt)
    if plot is not None:
        from passion_sweep.tables.plots import plot_table  # matplotlib only when a plot is asked for

        plot_table(comparison, plot)
        click.echo(f"plot written to {plot}", err=True)
    if out is None:
        click.echo(text, nl=False)
        return
    with atomic_write(out, "w") as handle:
        handle.write(text)
    click.echo(f"table written to {out}", err=True)
