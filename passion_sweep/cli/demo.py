"""``passion-sweep demo``: the main job on the embedded default (phantom data)."""
from __future__ import annotations

from pathlib import Path

import click

from passion_sweep.cli.data import print_check
from passion_sweep.phantom import ensure_phantom
from trainables.data import parse_missing_rates, write_missing_rate_split

DEMO_CASES = 16
DEMO_SHAPE = (64, 64, 64)
DEMO_SPLIT = "mr2468"


@click.command()
@click.argument("out", type=click.Path(file_okay=False, resolve_path=True, path_type=Path))
def demo(out: Path) -> None:
    """Generate the phantom data set in OUT, prepare and split it, and print its summary."""
    data_dir = ensure_phantom(out / "data", cases=DEMO_CASES, shape=DEMO_SHAPE, seed=0)
    split_csv = data_dir.parent / f"{DEMO_SPLIT}.csv"
    if not split_csv.exists():
        write_missing_rate_split(data_dir, split_csv, rates=parse_missing_rates(DEMO_SPLIT))
    print_check(data_dir, split_csv)
    click.echo(f"\nprepared phantom: {data_dir}\nmissing-rate split: {split_csv}")
