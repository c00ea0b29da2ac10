"""Usage errors: one line with a short pointer to --help, exit 2; help and version still work."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import USAGE, assert_one_line_error, run


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bogus"], r"^error: No such command 'bogus'\. \(see passion-sweep --help\)$"),
        (["--bogus"], r"^error: No such option '--bogus'.*\(see passion-sweep --help\)$"),
        (["run"], r"^error: Missing argument 'SPEC'\. \(see passion-sweep run --help\)$"),
        (["run", "missing.yaml"], r"File 'missing.yaml' does not exist\. \(see passion-sweep run --help\)$"),
        (["table", "--metric", "dise"], r"'dise' is not one of 'dice', 'hd95'.*\(see passion-sweep table --help\)$"),
        (["data", "split"], r"Missing argument 'DIR'\. \(see passion-sweep data split --help\)$"),
        (["tracking-server", "--port", "70000"], r"70000 is not in the range 1<=x<=65535"),
        (["train", "--data", "."], r"Missing option '--out'"),
    ],
)
def test_usage_errors_are_one_line(args: list[str], message: str) -> None:
    assert_one_line_error(run(*args), USAGE, message)


def test_help_and_version_exit_0(tmp_path: Path) -> None:
    for args in (["--help"], ["run", "--help"], ["data", "split", "-h"], ["--version"]):
        result = run(*args)
        assert result.exit_code == 0 and result.stdout and not result.stderr, args
