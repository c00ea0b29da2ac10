"""The training loop, its checkpoints and validation (runs without Ray)."""

from __future__ import annotations

from trainables.training.checkpoint import import_reference_checkpoint, load_checkpoint, load_model, save_checkpoint
from trainables.training.loop import EpochReport, fit, resolve_device

__all__ = [
    "EpochReport",
    "fit",
    "resolve_device",
    "load_checkpoint",
    "load_model",
    "save_checkpoint",
    "import_reference_checkpoint",
]
