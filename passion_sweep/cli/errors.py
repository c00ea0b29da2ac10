"""Turning library errors into one line on stderr and an exit code, without a traceback."""
from __future__ import annotations

import sys
from typing import Any

import click

from trainables.errors import PassionSweepError


class ReportingGroup(click.Group):
    """A click group that reports :class:`PassionSweepError` as ``error: <message>``.

    Usage and configuration errors exit with 2, data and runtime errors with 1.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PassionSweepError as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(error.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
