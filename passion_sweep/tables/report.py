"""The comparison tables and plot a sweep attaches to its parent MLflow run when it ends."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from passion_sweep.errors import PassionSweepError
from passion_sweep.tables.comparison import build_comparison_table
from passion_sweep.tables.formats import render_table
from passion_sweep.tables.plots import plot_table
from passion_sweep.tables.results import RunSelection, load_trial_results
from passion_sweep.tracking import SweepTracking, log_sweep_artifacts

__all__ = ["REPORT_FOLDER", "log_sweep_report"]

logger = logging.getLogger(__name__)

REPORT_FOLDER = "tables"  # artifact folder of the parent run


def log_sweep_report(sweep: SweepTracking) -> list[str]:
    """Attach the sweep's Dice and HD95 tables (Markdown and CSV) and its Dice plot to
    the parent run, under ``tables/``; columns are the grid keys that vary.

    A table that cannot be made (no trial has results yet) is logged as a warning:
    the sweep's outcome does not depend on its report.

    Returns:
        The names of the files attached.
    """
    try:
        results = load_trial_results(sweep.uri, RunSelection(sweep=sweep.identity.sweep_id))
        tables = {metric: build_comparison_table(results, metric=metric) for metric in ("dice", "hd95")}
    except PassionSweepError as error:
        logger.warning("no comparison table for sweep %s: %s", sweep.identity.sweep_id, error)
        return []
    with tempfile.TemporaryDirectory(prefix="passion-sweep-report-") as folder:
        for metric, table in tables.items():
            for fmt in ("md", "csv"):
                (Path(folder) / f"{metric}.{fmt}").write_text(render_table(table, fmt), encoding="utf-8")
        plot_table(tables["dice"], Path(folder) / "dice.png")
        names = sorted(path.name for path in Path(folder).iterdir())
        log_sweep_artifacts(sweep, Path(folder), artifact_path=REPORT_FOLDER)
    return names
