"""What the transformer backbones (mmFormer, M2FTrans) share: tokens and transformer layers.

A volume of features becomes a sequence of tokens, one per voxel of its (coarse)
token grid, and back; learned token embeddings made for one grid are resampled to
another, so that a model trained on one patch size runs on inputs of another.

The layers are those of the references' pre-norm transformers, with their attribute
names (``fn``, ``norm``, ``net``, ``qkv``, ``proj`` ...), so that checkpoints load by name.

Shapes: ``N`` batch, ``L`` tokens, ``C`` channels, ``(H, W, D)`` token grid.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "FeedForward",
    "HeadedAttention",
    "PreNorm",
    "PreNormDrop",
    "Residual",
    "feed_forward_residual",
    "resample_tokens",
    "tokens_to_volume",
    "volume_to_tokens",
]


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


class HeadedAttention(nn.Module):
    """Multi-head self-attention's projections and dropouts; subclasses attend.

    Queries, keys and values come from one linear map without bias; the heads'
    outputs are joined, projected and dropped out. Both dropouts are ``nn.Dropout``
    modules, so that setting their ``p`` (or ``eval()``) switches them off.

    Args:
        dim: token dimension ``C``, a multiple of ``heads``.
        heads: attention heads.
        dropout: on the attention weights (as a subclass applies ``attn_drop``) and on
            the projected output, in training.
    """

    def __init__(self, dim: int, *, heads: int, dropout: float) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim must be a multiple of heads, got dim {dim} and {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.attn_drop = nn.Dropout(dropout)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(dropout)

    def split_heads(self, tokens: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``NLC`` tokens to the query, key and value, each ``N x heads x L x C/heads``."""
        batch, length, _ = tokens.shape
        query, key, value = self.qkv(tokens).reshape(batch, length, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        return query, key, value

    def join_heads(self, attended: Tensor) -> Tensor:
        """``N x heads x L x C/heads`` to the projected ``NLC`` output, after dropout."""
        batch, _, length, _ = attended.shape
        return self.proj_drop(self.proj(attended.transpose(1, 2).reshape(batch, length, -1)))


class PreNorm(nn.Module):
    """``fn(LayerNorm(x))``."""

    def __init__(self, dim: int, fn: nn.Module) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = fn

    def forward(self, x: Tensor) -> Tensor:
        return self.fn(self.norm(x))


class PreNormDrop(PreNorm):
    """``dropout(fn(LayerNorm(x)))``: the references' attention branch, which drops out
    after the attention's own output dropout."""

    def __init__(self, dim: int, fn: nn.Module, *, dropout: float) -> None:
        super().__init__(dim, fn)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(super().forward(x))


class Residual(nn.Module):
    """``x + fn(x)``."""

    def __init__(self, fn: nn.Module) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: Tensor) -> Tensor:
        return x + self.fn(x)


class FeedForward(nn.Module):
    """Linear -> GELU -> dropout -> Linear -> dropout."""

    def __init__(self, dim: int, hidden: int, *, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim), nn.Dropout(dropout)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def feed_forward_residual(dim: int, hidden: int, *, dropout: float) -> Residual:
    """A transformer layer's second half, ``x + MLP(LN(x))``, with ``hidden`` units in the MLP."""
    return Residual(PreNorm(dim, FeedForward(dim, hidden, dropout=dropout)))
