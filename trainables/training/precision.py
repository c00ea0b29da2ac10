"""Numerical precision of the training step (``train.precision``).

``fp32`` is the reference: no autocast, every value float32 (float64 in the parity
tests). ``bf16`` runs the forward passes under :func:`torch.autocast` with bfloat16,
on CPU and CUDA; bfloat16 has float32's exponent range, so gradients need no scaling.
``fp16-amp`` autocasts to float16 and scales the loss with a
:class:`torch.amp.GradScaler` so that small gradients do not underflow; it is offered
on CUDA only, for GPUs without fast bfloat16 (on a CPU, ``bf16`` does the same job
without a scaler).
Parameters, optimizer state and the loss terms that autocast keeps in float32 (softmax,
reductions) stay float32 in every mode.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch

from trainables.config import PRECISIONS
from trainables.errors import ConfigError

__all__ = ["Precision", "build_precision"]

_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16-amp": torch.float16}


@dataclass(frozen=True)
class Precision:
    """The run-time side of ``train.precision`` on one device.

    Attributes:
        name: one of :data:`~trainables.config.PRECISIONS`.
        device_type: ``cpu`` or ``cuda``.
        scaler: the loss scaler of ``fp16-amp``; ``None`` otherwise.
    """

    name: str = "fp32"
    device_type: str = "cpu"
    scaler: torch.amp.GradScaler | None = None

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """Autocast to the run's dtype; nothing at all for ``fp32`` (bit-identical to no context)."""
        dtype = _AUTOCAST_DTYPES.get(self.name)
        if dtype is None:
            yield
            return
        with torch.autocast(self.device_type, dtype=dtype):
            yield

    def state_dict(self) -> dict[str, Any]:
        """The scaler's state (its current scale), for exact resumes; empty without a scaler."""
        return {} if self.scaler is None else self.scaler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)


def build_precision(name: str, device: torch.device) -> Precision:
    """The :class:`Precision` of ``train.precision`` (one of ``PRECISIONS``) on ``device``.

    Raises:
        ConfigError: for ``fp16-amp`` on a device that is not CUDA.
    """
    assert name in PRECISIONS, name  # TrainConfig validated it
    if name == "fp16-amp":
        if device.type != "cuda":
            raise ConfigError(
                f"train.precision=fp16-amp needs a CUDA device, but this run trains on {device.type}: "
                "use train.precision=bf16 (CPU and CUDA) or fp32"
            )
        return Precision(name, device.type, torch.amp.GradScaler(device.type))
    return Precision(name, device.type)
