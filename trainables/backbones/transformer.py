"""Token-level building blocks shared by the transformer backbones (mmFormer, M2FTrans).

A volume of features becomes a sequence of tokens, one per voxel of its (coarse)
token grid; a pre-norm transformer mixes the tokens; the tokens go back to a volume.
Attention masks let a batch mix sequences whose valid tokens differ, e.g. the tokens
of whichever modalities are present in each sample.

Shapes: ``N`` batch, ``L`` tokens, ``C`` transformer dimension, ``(H, W, D)`` token grid.
Attention masks are bool and ``True`` where a query may attend to a key.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "MultiHeadSelfAttention",
    "TransformerLayer",
    "Transformer",
    "LearnedPositionalEmbedding",
    "key_attention_mask",
    "volume_to_tokens",
    "tokens_to_volume",
]


def volume_to_tokens(volume: Tensor) -> Tensor:
    """``NCHWD`` volume to ``NLC`` tokens, ``L = H*W*D`` in row-major voxel order."""
    return volume.flatten(2).transpose(1, 2)


def tokens_to_volume(tokens: Tensor, grid: Sequence[int]) -> Tensor:
    """``NLC`` tokens to an ``NCHWD`` volume on ``grid`` (the inverse of :func:`volume_to_tokens`)."""
    return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], *grid)


def key_attention_mask(keys: Tensor) -> Tensor:
    """Attention mask letting every query attend to exactly the keys marked in ``keys``.

    Args:
        keys: ``NL`` bool, which tokens may be attended to; each row needs at least one.

    Returns:
        ``N11L`` bool, broadcastable over heads and queries.
    """
    return keys[:, None, None, :]


class MultiHeadSelfAttention(nn.Module):
    """Multi-head self-attention on ``NLC`` tokens with an optional attention mask.

    Args:
        dim: token dimension ``C``, a multiple of ``heads``.
        heads: number of attention heads.
        qkv_bias: whether the query/key/value projection has a bias (the reference's has none).
        dropout: dropout on the attention weights and on the output, in training.
    """

    def __init__(self, dim: int, *, heads: int, qkv_bias: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim must be a multiple of heads, got dim {dim} and {heads} heads")
        self.heads = heads
        self.dropout = dropout
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_dropout = nn.Dropout(dropout)

    def _heads(self, tokens: Tensor) -> Tensor:
        """Queries, keys and values of ``NLC`` tokens, ``3 x N x heads x L x C/heads``."""
        batch, length, dim = tokens.shape
        return self.qkv(tokens).reshape(batch, length, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)

    def forward(self, tokens: Tensor, mask: Tensor | None = None) -> Tensor:
        """Args: tokens ``NLC``; mask bool broadcastable to ``N x heads x L x L``. Returns ``NLC``."""
        batch, length, dim = tokens.shape
        qkv = self._heads(tokens)
        attended = F.scaled_dot_product_attention(
            qkv[0], qkv[1], qkv[2], attn_mask=mask, dropout_p=self.dropout if self.training else 0.0
        )
        return self.proj_dropout(self.proj(attended.transpose(1, 2).reshape(batch, length, dim)))


class TransformerLayer(nn.Module):
    """Pre-norm transformer layer: ``x + attention(LN(x))``, then ``x + MLP(LN(x))``.

    Args:
        dim: token dimension ``C``.
        heads: attention heads.
        mlp_dim: hidden units of the GELU MLP.
        qkv_bias: see :class:`MultiHeadSelfAttention`.
        dropout: dropout in attention and MLP, in training.
    """

    def __init__(self, dim: int, *, heads: int, mlp_dim: int, qkv_bias: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        self.attention_norm = nn.LayerNorm(dim)
        self.attention = MultiHeadSelfAttention(dim, heads=heads, qkv_bias=qkv_bias, dropout=dropout)
        self.mlp_norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, mlp_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(mlp_dim, dim), nn.Dropout(dropout)
        )

    def forward(self, tokens: Tensor, mask: Tensor | None = None) -> Tensor:
        """Args: tokens ``NLC``; mask as :meth:`MultiHeadSelfAttention.forward`. Returns ``NLC``."""
        tokens = tokens + self.attention(self.attention_norm(tokens), mask)
        return tokens + self.mlp(self.mlp_norm(tokens))


class Transformer(nn.Module):
    """A stack of :class:`TransformerLayer`, adding a positional embedding before each layer.

    Adding the embedding before every layer (not only the first) is what the mmFormer
    reference does; with depth 1 the two agree.

    Args:
        dim: token dimension ``C``.
        depth: number of layers.
        heads, mlp_dim, qkv_bias, dropout: see :class:`TransformerLayer`.
    """

    def __init__(
        self, dim: int, *, depth: int, heads: int, mlp_dim: int, qkv_bias: bool = False, dropout: float = 0.0
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            TransformerLayer(dim, heads=heads, mlp_dim=mlp_dim, qkv_bias=qkv_bias, dropout=dropout) for _ in range(depth)
        )

    def forward(self, tokens: Tensor, position: Tensor | None = None, mask: Tensor | None = None) -> Tensor:
        """Mix ``NLC`` tokens.

        Args:
            tokens: ``NLC``.
            position: positional embedding broadcastable to ``NLC``, or ``None``.
            mask: bool attention mask broadcastable to ``N x heads x L x L``, e.g.
                from :func:`key_attention_mask`; ``None`` lets every token attend to all.

        Returns:
            ``NLC`` tokens.
        """
        for layer in self.layers:
            if position is not None:
                tokens = tokens + position
            tokens = layer(tokens, mask)
        return tokens


class LearnedPositionalEmbedding(nn.Module):
    """``count`` learned positional embeddings for the tokens of a 3-D grid, zero at start.

    Args:
        grid: token grid ``(H, W, D)``, or one edge for a cube; for a backbone, the
            patch size divided by its total downsampling.
        dim: token dimension ``C``.
        count: number of independent embeddings (e.g. one per modality).
    """

    def __init__(self, grid: int | Sequence[int], dim: int, *, count: int = 1) -> None:
        super().__init__()
        self.grid = (grid,) * 3 if isinstance(grid, int) else tuple(grid)
        if len(self.grid) != 3 or min(self.grid) < 1:
            raise ValueError(f"grid must be three positive edges, got {grid}")
        self.weight = nn.Parameter(torch.zeros(count, self.grid[0] * self.grid[1] * self.grid[2], dim))

    def forward(self, grid: Sequence[int] | None = None) -> Tensor:
        """The embeddings, ``count x L x C``, for ``grid`` (default: the grid they were made for).

        Another grid gets the embeddings resampled trilinearly, so that a model trained
        on one patch size can still run on inputs of another.
        """
        if grid is None or tuple(grid) == self.grid:
            return self.weight
        volume = tokens_to_volume(self.weight, self.grid)
        resampled = F.interpolate(volume, size=tuple(grid), mode="trilinear", align_corners=True)
        return volume_to_tokens(resampled)
