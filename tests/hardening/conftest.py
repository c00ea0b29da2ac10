"""Helpers of the hardening tests: run a command, and what every failure must look like."""

from __future__ import annotations

import re
from pathlib import Path

from click.testing import CliRunner, Result

from passion_sweep.cli import main

USAGE, RUNTIME = 2, 1


def run(*args: object) -> Result:
    """``passion-sweep ARGS`` in this process (click's runner, stdout and stderr apart)."""
    return CliRunner().invoke(main, [str(arg) for arg in args], prog_name="passion-sweep")


def assert_one_line_error(result: Result, exit_code: int, pattern: str = "") -> str:
    """The command failed with ``exit_code``, no traceback, and stderr is one line
    ``error: ...`` matching ``pattern``; returns that line."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert result.exit_code == exit_code, (result.exit_code, lines)
    assert lines[0].startswith("error: "), lines
    assert re.search(pattern, lines[0]), lines[0]
    return lines[0]


def files_under(folder: Path) -> list[str]:
    """Every file under ``folder``, relative, sorted (to show that nothing was half-written)."""
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())
