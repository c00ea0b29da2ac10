"""The ``passion-sweep`` command line: one click group per area, one module per group."""
from __future__ import annotations

import logging

import click

from passion_sweep import __version__
from passion_sweep.cli.data import data
from passion_sweep.cli.errors import ReportingGroup
from passion_sweep.cli.evaluate import evaluate
from passion_sweep.cli.run import resume, run, status
from passion_sweep.cli.train import train

__all__ = ["main"]


@click.group(cls=ReportingGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="passion-sweep")
@click.option("-v", "--verbose", count=True, help="More log output (repeatable).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
def main(verbose: int, quiet: bool) -> None:
    """Sweeps of PASSION incomplete multi-modal segmentation experiments."""
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(level=level, format="%(message)s")


for command in (data, train, evaluate, run, resume, status):
    main.add_command(command)
