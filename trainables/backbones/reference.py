"""Weights of the reference implementation (github.com/Jun-Jie-Shi/PASSION) in a backbone.

The reference saves ``{'epoch', 'state_dict', 'optim_dict'}`` with the ``state_dict`` of
an ``nn.DataParallel`` model (names prefixed ``module.``). Each backbone maps the
reference's parameter names to its own (:meth:`Backbone.reference_name_to_ours`); the
tensors themselves load unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from trainables.backbones.base import Backbone
from trainables.errors import CheckpointError

__all__ = ["reference_state_dict_to_ours", "load_reference_state_dict"]

_DATA_PARALLEL_PREFIX = "module."


def reference_state_dict_to_ours(model: Backbone, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The reference ``state`` under ``model``'s names, checked tensor by tensor.

    Args:
        model: the backbone to receive the weights (its shapes are checked).
        state: reference parameter names (``module.`` prefixes allowed) to tensors.

    Returns:
        ``model``'s parameter names to the reference tensors, in the reference's order.

    Raises:
        CheckpointError: naming the first tensor that does not fit: a reference name
            without a counterpart, a shape that differs, or a parameter of ``model``
            the reference state lacks.
    """
    backbone = type(model).__name__
    expected = model.state_dict()
    mapped: dict[str, Tensor] = {}
    for name, tensor in state.items():
        name = name.removeprefix(_DATA_PARALLEL_PREFIX)
        if not isinstance(tensor, Tensor):
            raise CheckpointError(f"reference entry {name!r} is a {type(tensor).__name__}, not a tensor")
        try:
            ours = type(model).reference_name_to_ours(name)
        except KeyError:
            raise CheckpointError(f"reference tensor {name!r} has no counterpart in {backbone}") from None
        if ours not in expected:
            raise CheckpointError(f"reference tensor {name!r} maps to {ours!r}, which {backbone} does not have")
        if tuple(tensor.shape) != tuple(expected[ours].shape):
            raise CheckpointError(
                f"reference tensor {name!r} has shape {tuple(tensor.shape)} but {backbone}'s {ours!r} has "
                f"{tuple(expected[ours].shape)} (check the backbone and its width)"
            )
        mapped[ours] = tensor
    missing = next((name for name in expected if name not in mapped), None)
    if missing is not None:
        raise CheckpointError(f"the reference state_dict has no tensor for {backbone}'s {missing!r}")
    return mapped


@torch.no_grad()
def load_reference_state_dict(model: Backbone, state: Mapping[str, Tensor]) -> None:
    """Copy the reference's weights ``state`` into ``model`` (see :func:`reference_state_dict_to_ours`).

    Raises:
        CheckpointError: naming the first tensor that does not fit; ``model`` is unchanged then.
    """
    model.load_state_dict(reference_state_dict_to_ours(model, state))
