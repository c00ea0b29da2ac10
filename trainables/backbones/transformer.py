"""Token helpers shared by the transformer backbones (mmFormer, M2FTrans).

A volume of features becomes a sequence of tokens, one per voxel of its (coarse)
token grid, and back; learned token embeddings made for one grid are resampled to
another, so that a model trained on one patch size runs on inputs of another.

Shapes: ``N`` batch, ``L`` tokens, ``C`` channels, ``(H, W, D)`` token grid.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor

__all__ = ["resample_tokens", "tokens_to_volume", "volume_to_tokens"]


def volume_to_tokens(volume: Tensor) -> Tensor:
    """``NCHWD`` volume to ``NLC`` tokens, ``L = H*W*D`` in row-major voxel order."""
    return volume.flatten(2).transpose(1, 2)


def tokens_to_volume(tokens: Tensor, grid: Sequence[int]) -> Tensor:
    """``NLC`` tokens to an ``NCHWD`` volume on ``grid`` (the inverse of :func:`volume_to_tokens`)."""
    return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], *grid)


def resample_tokens(tokens: Tensor, source: Sequence[int], grid: Sequence[int]) -> Tensor:
    """``NLC`` tokens on grid ``source`` resampled trilinearly (``align_corners=True``) to ``grid``."""
    if tuple(source) == tuple(grid):
        return tokens
    volume = F.interpolate(tokens_to_volume(tokens, source), size=tuple(grid), mode="trilinear", align_corners=True)
    return volume_to_tokens(volume)
