"""The ``passion-sweep`` command line: one click group per area, one module per group.

Command modules are imported when their command runs, so that ``passion-sweep table``
or ``status`` do not pay for torch, MONAI and Ray (seconds each on a small machine).
"""

from __future__ import annotations

import importlib
import logging

import click

from passion_sweep import __version__
from passion_sweep.cli.errors import ReportingGroup

__all__ = ["main"]

# Command name to "module:attribute" of its click command, in help order.
_COMMANDS: dict[str, str] = {
    "data": "passion_sweep.cli.data:data",
    "train": "passion_sweep.cli.train:train",
    "evaluate": "passion_sweep.cli.evaluate:evaluate",
    "import-checkpoint": "passion_sweep.cli.import_checkpoint:import_checkpoint",
    "run": "passion_sweep.cli.run:run",
    "resume": "passion_sweep.cli.run:resume",
    "status": "passion_sweep.cli.run:status",
    "table": "passion_sweep.cli.table:table",
    "submit": "passion_sweep.cli.cluster:submit",
    "logs": "passion_sweep.cli.cluster:logs",
    "tracking-server": "passion_sweep.cli.cluster:tracking_server",
}


class _LazyGroup(ReportingGroup):
    """A :class:`ReportingGroup` whose commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(_COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in _COMMANDS:
            return None
        module, attribute = _COMMANDS[name].split(":")
        return getattr(importlib.import_module(module), attribute)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="passion-sweep")
@click.option("-v", "--verbose", count=True, help="More log output (repeatable).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
def main(verbose: int, quiet: bool) -> None:
    """Sweeps of PASSION incomplete multi-modal segmentation experiments."""
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(level=level, format="%(message)s")
