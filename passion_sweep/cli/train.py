"""``passion-sweep train``: one configuration on prepared data, without Ray."""

from __future__ import annotations

from pathlib import Path

import click

from passion_sweep.cli.options import existing_dir, existing_file, set_option
from trainables.backbones.catalog import built_in_names
from trainables.config import DataConfig, ModelConfig, RunConfig
from trainables.errors import ConfigError
from trainables.methods.registry import method_names


@click.command()
@click.option("--data", "data_dir", type=existing_dir, required=True, help="Prepared data folder (data prepare).")
@click.option("--split", "split_csv", type=existing_file, help="Missing-rate split CSV (needed for idt, idt_drop).")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, resolve_path=True, path_type=Path),
    required=True,
    help="Run folder for config, metrics and checkpoint.",
)
@click.option("--backbone", type=click.Choice(built_in_names()), default="rfnet", show_default=True)
@click.option(
    "--method",
    type=click.Choice(method_names()),
    default="passion",
    show_default=True,
    help="Training method (docs/methods.md); its coefficients: --set pmr.alpha=2 etc.",
)
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
    if resume and not out_dir.is_dir():
        raise ConfigError(f"--resume: no run folder {out_dir} to continue: pass the --out of an earlier run")
    from trainables.training.loop import fit  # torch: only once the command runs, not for --help

    base = RunConfig(data=DataConfig(root=data_dir, split=split_csv), model=ModelConfig(backbone=backbone))
    config = base.with_overrides([f"method.name={method}", *overrides])
    fit(config, out_dir, resume=resume)
    click.echo(f"done: checkpoint {out_dir / 'checkpoint.pt'}, metrics {out_dir / 'metrics.jsonl'}")
