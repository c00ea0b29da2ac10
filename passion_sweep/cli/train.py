"""``passion-sweep train``: one configuration on prepared data, without Ray."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from passion_sweep.cli.options import existing_dir, existing_file, set_option
from trainables.backbones.catalog import built_in_names
from trainables.config import DataConfig, ModelConfig, RunConfig
from trainables.passion.config import METHODS, with_method


@click.command()
@click.option("--data", "data_dir", type=existing_dir, required=True, help="Prepared data folder (data prepare).")
@click.option("--split", "split_csv", type=existing_file, help="Missing-rate split CSV (needed for idt, idt_drop).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, resolve_path=True, path_type=Path), required=True, help="Run folder for config, metrics and checkpoint.")
@click.option("--backbone", type=click.Choice(built_in_names()), default="rfnet", show_default=True)
@click.option("--method", type=click.Choice(list(METHODS)), default="passion", show_default=True)
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@set_option
def train(
    data_dir: str,
    split_csv: str | None,
    out_dir: Path,
    backbone: str,
    method: str,
    resume: bool,
    overrides: tuple[str, ...],
) -> None:
    """Train one configuration on prepared data (progress per epoch, checkpoint every epoch)."""
    from trainables.training.loop import fit  # torch: only once the command runs, not for --help

    base = RunConfig(data=DataConfig(root=data_dir, split=split_csv), model=ModelConfig(backbone=backbone))
    config = base.with_overrides(overrides)
    config = dataclasses.replace(config, passion=with_method(config.passion, method))
    fit(config, out_dir, resume=resume)
    click.echo(f"done: checkpoint {out_dir / 'checkpoint.pt'}, metrics {out_dir / 'metrics.jsonl'}")
