"""``passion-sweep import-checkpoint``: a model trained by the reference code as a passion-sweep checkpoint."""

from __future__ import annotations

from pathlib import Path

import click

from passion_sweep.cli.options import existing_file
from trainables.backbones.catalog import built_in_names

__all__ = ["import_checkpoint"]


@click.command("import-checkpoint")
@click.argument("reference", type=existing_file)
@click.option("--backbone", type=click.Choice(built_in_names()), required=True, help="The reference model's network.")
@click.option(
    "--out",
    "out_file",
    type=click.Path(dir_okay=False, resolve_path=True, path_type=Path),
    required=True,
    help="The passion-sweep checkpoint to write, e.g. run/checkpoint.pt.",
)
def import_checkpoint(reference: str, backbone: str, out_file: Path) -> None:
    """Convert REFERENCE (a .pth saved by the PASSION reference train.py) for `evaluate`.

    Every tensor is checked by name and shape; the first one that does not fit is
    reported and nothing is written.
    """
    from trainables.training.checkpoint import import_reference_checkpoint  # torch: not for --help

    imported = import_reference_checkpoint(Path(reference), backbone, out_file)
    click.echo(f"wrote {out_file} ({backbone}, reference epoch {imported['reference_epoch']})")
