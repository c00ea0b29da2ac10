"""Errors of passion-sweep (re-exported from ``trainables.errors``, the one hierarchy)."""

from __future__ import annotations

from trainables.errors import CheckpointError, ConfigError, DataError, PassionSweepError, TrainingError

__all__ = ["PassionSweepError", "DataError", "ConfigError", "CheckpointError", "TrainingError"]
