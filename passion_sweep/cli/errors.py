"""Turning every error into one line on stderr and an exit code, without a traceback."""

from __future__ import annotations

import errno
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import click

from trainables.errors import PassionSweepError

USAGE_EXIT_CODE = 2


def _fail(message: str, exit_code: int) -> NoReturn:
    click.echo(f"error: {' '.join(message.split())}", err=True)
    sys.exit(exit_code)


class ReportingGroup(click.Group):
    """A click group that reports every error as one line ``error: <message>``.

    :class:`PassionSweepError` exits with its :attr:`~PassionSweepError.exit_code`
    (usage and configuration 2, data and runtime 1); click's usage errors, which click
    prints as a usage block, exit with 2 and end with a pointer to ``--help``; an
    :class:`OSError` or :class:`EOFError` that no library error names (a full disk, a
    truncated file) exits with 1.
    """

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as error:
            where = error.ctx.command_path if error.ctx is not None else (prog_name or self.name)
            _fail(f"{error.format_message()} (see {where} --help)", USAGE_EXIT_CODE)
        except click.ClickException as error:
            _fail(error.format_message(), error.exit_code)
        except click.Abort:  # Ctrl+C or end of input at a prompt
            click.echo("interrupted", err=True)
            sys.exit(130)
        sys.exit(result if isinstance(result, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PassionSweepError as error:
            _fail(str(error), error.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            sys.exit(130)
        # The environment's faults that no library error names: one line each, exit 1.
        except EOFError as error:  # click would report it as "Aborted!"
            _fail(f"a file ended before its data did (empty or truncated?): {error}", 1)
        except OSError as error:
            if error.errno == errno.EPIPE:  # output piped into a command that stopped reading: click's to handle
                raise
            where = f"{error.filename}: " if error.filename else ""
            _fail(f"{where}{error.strerror or error}", 1)
