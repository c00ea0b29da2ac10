"""Training checkpoints: one file per run, replaced atomically every epoch.

A checkpoint is a ``torch.save`` dict of tensors and plain Python values only, so it
loads with ``torch.load(weights_only=True)``:

``{"format": 1, "config": {...resolved run config...}, "epoch": int (completed epochs),
"model": state_dict, "optimizer": state_dict, "passion": PASSION state dict,
"rng": {...}}``. ``config["model"]`` holds ``backbone``, ``width`` and ``patch_size``.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from trainables.backbones import Backbone, build_backbone
from trainables.errors import CheckpointError

__all__ = ["CHECKPOINT_FORMAT", "save_checkpoint", "load_checkpoint", "load_model"]

CHECKPOINT_FORMAT = 1


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically (a crash leaves the previous file intact)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(handle)
    try:
        torch.save({"format": CHECKPOINT_FORMAT, **state}, temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`.

    Raises:
        CheckpointError: if the file is missing, unreadable or not a passion-sweep checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist: pass the checkpoint.pt of a training run")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises many types for a corrupt file
        raise CheckpointError(f"cannot read checkpoint {path}: {error}") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT or "model" not in state:
        raise CheckpointError(f"{path} is not a passion-sweep checkpoint (format {CHECKPOINT_FORMAT})")
    return state


def load_model(path: Path, device: str | torch.device = "cpu") -> tuple[Backbone, dict[str, Any]]:
    """Rebuild the backbone saved in a checkpoint, in eval mode on ``device``.

    Returns:
        The model and the run config saved with it.

    Raises:
        CheckpointError: if the checkpoint is unusable or its weights do not fit the
            backbone its config names.
    """
    state = load_checkpoint(path)
    model_config = state["config"]["model"]
    model = build_backbone(
        model_config["backbone"], width=model_config["width"], patch_size=model_config["patch_size"]
    )
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as error:
        first_line = str(error).splitlines()[0] if str(error) else "shape mismatch"
        raise CheckpointError(
            f"checkpoint {path} does not fit backbone {model_config['backbone']!r} at width "
            f"{model_config['width']}: {first_line}"
        ) from None
    return model.to(device).eval(), state["config"]
