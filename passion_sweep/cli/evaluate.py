"""``passion-sweep evaluate``: all 15 modality subsets of a checkpoint on whole test volumes."""

from __future__ import annotations

from pathlib import Path

import click
import pandas as pd

from passion_sweep.cli.options import existing_dir, existing_file
from trainables.data.layout import read_case_list
from trainables.evaluation.conventions import (
    HD95_CONVENTIONS,
    HD95_PERCENTILES,
    HD95Convention,
    HD95Percentile,
    hd95_definition,
)

__all__ = ["evaluate"]

_DEVICES = ("auto", "cpu", "cuda")


@click.command()
@click.argument("checkpoint", type=existing_file)
@click.option("--data", "data_dir", type=existing_dir, required=True, help="Prepared data folder (data prepare).")
@click.option("--cases", "cases_file", type=existing_file, required=True, help="Case list, e.g. DATA/test.txt.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, resolve_path=True, path_type=Path),
    required=True,
    help="Folder for per_case.csv and summary.json.",
)
@click.option(
    "--hd95-percentile",
    type=click.Choice(HD95_PERCENTILES),
    default="pooled",
    show_default=True,
    help="HD95 from both directed surface distances pooled (medpy, reference) "
    "or the larger directed 95th percentile (MONAI).",
)
@click.option(
    "--hd95-convention",
    type=click.Choice(HD95_CONVENTIONS),
    default="reference",
    show_default=True,
    help="HD95 when exactly one of prediction and truth is empty: 1.0 (reference) or 373.13 (max).",
)
@click.option("--device", type=click.Choice(_DEVICES), default="auto", show_default=True, help="Where the model runs.")
@click.option(
    "--overlap",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.5,
    show_default=True,
    help="Overlap of neighbouring sliding windows.",
)
@click.option(
    "--hd95-workers",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Processes computing HD95 while the next case's inference runs (0: after it, in this process).",
)
def evaluate(
    checkpoint: str,
    data_dir: str,
    cases_file: str,
    out_dir: Path,
    hd95_percentile: HD95Percentile,  # click.Choice admits only these values
    hd95_convention: HD95Convention,
    device: str,
    overlap: float,
    hd95_workers: int,
) -> None:
    """Evaluate CHECKPOINT on whole volumes for all 15 modality subsets.

    Writes OUT/per_case.csv (Dice and HD95 of WT, TC, ET, ETpp per case and subset)
    and OUT/summary.json (means per subset and over subsets, and the HD95 definition),
    and prints the means.
    """
    # Imported here: they pull in torch, which `evaluate --help` does not need.
    from trainables.evaluation.evaluate import evaluate_model, write_evaluation
    from trainables.training import load_model, resolve_device

    resolved = resolve_device(device)
    model, config = load_model(Path(checkpoint), resolved)
    result = evaluate_model(
        model,
        Path(data_dir),
        read_case_list(Path(cases_file)),
        patch_size=config["model"]["patch_size"],
        overlap=overlap,
        hd95_percentile=hd95_percentile,
        hd95_convention=hd95_convention,
        hd95_workers=hd95_workers,
        device=resolved,
    )
    write_evaluation(result, out_dir)
    table = pd.DataFrame(result.summary["mean"]).T
    click.echo(f"mean over the 15 subsets, {result.per_case['case'].nunique()} cases:")
    click.echo(table.to_string(float_format="{:.4f}".format))
    click.echo(hd95_definition(hd95_percentile, hd95_convention))
    click.echo(f"wrote {out_dir}")
