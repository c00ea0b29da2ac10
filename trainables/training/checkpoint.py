"""Training checkpoints: one file per run, replaced atomically every epoch.

A checkpoint is a ``torch.save`` dict of tensors and plain Python values only, so it
loads with ``torch.load(weights_only=True)``:

``{"format": 1, "config": {...resolved run config...}, "epoch": int (completed epochs),
"model": state_dict, "optimizer": state_dict, "passion": PASSION state dict,
"precision": fp16 loss-scaler state}`` (``precision`` is ``{}`` in other precisions and
absent in older checkpoints). ``config["model"]`` holds ``backbone``, ``width`` and
``patch_size``.

A checkpoint imported from the reference implementation (:func:`import_reference_checkpoint`)
holds ``format``, ``config``, ``epoch``, ``model`` and ``imported_from`` only: it can be
evaluated, not resumed.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from trainables.backbones import Backbone, build_backbone
from trainables.backbones.reference import load_reference_state_dict
from trainables.config import ModelConfig, RunConfig
from trainables.errors import CheckpointError, DataError

__all__ = ["CHECKPOINT_FORMAT", "save_checkpoint", "load_checkpoint", "load_model", "import_reference_checkpoint"]

CHECKPOINT_FORMAT = 1


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically (a crash leaves the previous file intact).

    Raises:
        DataError: if the file cannot be written (read-only folder, full disk).
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as error:
        raise DataError(f"cannot write checkpoint {path}: {error.strerror or error}") from None
    os.close(handle)
    try:
        torch.save({"format": CHECKPOINT_FORMAT, **state}, temporary)
        os.replace(temporary, path)
    except (OSError, RuntimeError) as error:  # torch reports a failed write (a full disk) as RuntimeError
        Path(temporary).unlink(missing_ok=True)
        reason = error.strerror if isinstance(error, OSError) else "the write failed (is the disk full?)"
        raise DataError(f"cannot write checkpoint {path}: {reason}; an earlier checkpoint there is kept") from None
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
    require_keys(state, path, ("config",))
    return state


def require_keys(state: dict[str, Any], path: Path, keys: tuple[str, ...]) -> None:
    """Raise unless the checkpoint ``state`` read from ``path`` holds every key of ``keys``.

    Raises:
        CheckpointError: naming the missing keys.
    """
    missing = [key for key in keys if key not in state]
    if missing:
        raise CheckpointError(
            f"checkpoint {path} lacks {', '.join(missing)}: it is damaged or was not written by passion-sweep"
        )


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
    model = build_backbone(model_config["backbone"], width=model_config["width"], patch_size=model_config["patch_size"])
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as error:
        first_line = str(error).splitlines()[0] if str(error) else "shape mismatch"
        raise CheckpointError(
            f"checkpoint {path} does not fit backbone {model_config['backbone']!r} at width "
            f"{model_config['width']}: {first_line}"
        ) from None
    return model.to(device).eval(), state["config"]


def import_reference_checkpoint(source: Path, backbone: str, out: Path) -> dict[str, Any]:
    """Turn a checkpoint of the reference implementation into a passion-sweep checkpoint.

    The reference (``train.py``) saves ``{'epoch', 'state_dict', 'optim_dict'}`` with
    ``epoch`` 0-based and ``module.``-prefixed names; its networks have width 8 and
    80^3 patches. The weights are checked tensor by tensor before anything is written.

    Args:
        source: the reference ``.pth`` file (read with ``weights_only=True``).
        backbone: the registered backbone the weights are for.
        out: the checkpoint to write (replaced atomically).

    Returns:
        The written checkpoint's ``imported_from`` record.

    Raises:
        ConfigError: for an unknown backbone.
        CheckpointError: if ``source`` is unreadable, is not a reference checkpoint, or
            a tensor does not fit (the message names the first one); ``out`` is untouched.
    """
    source = Path(source)
    config = RunConfig(model=ModelConfig(backbone=backbone))
    model = build_backbone(backbone, width=config.model.width, patch_size=config.model.patch_size)
    try:
        state = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for an unreadable or unsafe file
        raise CheckpointError(f"cannot read reference checkpoint {source}: {str(error).splitlines()[0]}") from None
    if not isinstance(state, dict) or not isinstance(state.get("state_dict"), dict):
        raise CheckpointError(f"{source} is not a reference checkpoint (a dict with 'state_dict')")
    try:
        load_reference_state_dict(model, state["state_dict"])
    except CheckpointError as error:
        raise CheckpointError(f"{source} does not fit {backbone}: {error}") from None
    reference_epoch = state.get("epoch")
    imported_from = {
        "file": source.name,
        "sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
        "reference_epoch": reference_epoch,
    }
    epochs_done = int(reference_epoch) + 1 if isinstance(reference_epoch, int) else 0
    save_checkpoint(
        Path(out),
        {"config": config.to_dict(), "epoch": epochs_done, "model": model.state_dict(), "imported_from": imported_from},
    )
    return imported_from
