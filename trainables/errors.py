"""Error classes shared by ``trainables`` and ``passion_sweep``.

Every error a user can cause derives from :class:`PassionSweepError`, and also from
the builtin that fits, so callers may catch either. The CLI turns them into one line
and an exit code (:attr:`PassionSweepError.exit_code`).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "did_you_mean",
    "did_you_mean_or_valid",
    "PassionSweepError",
    "DataError",
    "ConfigError",
    "CheckpointError",
    "TrainingError",
]


class PassionSweepError(Exception):
    """Base class of every error passion-sweep reports to its user."""

    exit_code = 1


class DataError(PassionSweepError, ValueError):
    """A data file or folder is missing, unreadable or inconsistent (exit 1)."""


class ConfigError(PassionSweepError, ValueError):
    """A configuration value or command-line option is invalid (exit 2)."""

    exit_code = 2


class CheckpointError(PassionSweepError, ValueError):
    """A checkpoint cannot be used for the requested model or run (exit 1)."""


class TrainingError(PassionSweepError, RuntimeError):
    """Training cannot go on, e.g. the loss became NaN (exit 1)."""


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the known name closest to ``name`` (the same letters in
    another case first, then :func:`difflib.get_close_matches`), or ``""`` if none is close."""
    known = [str(option) for option in known]
    same_letters = [option for option in known if option.lower() == str(name).lower()]
    close = same_letters or difflib.get_close_matches(str(name), known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def did_you_mean_or_valid(name: str, valid: Iterable[str]) -> str:
    """:func:`did_you_mean`, or ``; valid: a, b, ...`` when no valid name is close."""
    valid = [str(option) for option in valid]
    return did_you_mean(name, valid) or f"; valid: {', '.join(valid)}"
