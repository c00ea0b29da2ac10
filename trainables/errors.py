"""Error classes shared by ``trainables`` and ``passion_sweep``.

Every error a user can cause derives from :class:`PassionSweepError`, and also from
the builtin that fits, so callers may catch either. The CLI turns them into one line
and an exit code (:attr:`PassionSweepError.exit_code`).
"""
from __future__ import annotations

__all__ = [
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
