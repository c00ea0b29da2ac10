"""M2FTrans' bottleneck transformer: masked self-attention over the modality and fusion tokens.

The sequence holds ``K`` modality blocks and one block of learnable fusion tokens, all
of ``N`` tokens. A modality block attends to itself only; the fusion block attends to
itself and to the present modalities' blocks (:func:`bottleneck_attention_mask`). The
first layer's attention weights, after attention dropout, are returned too: M2FTrans
weights its skip features by them.

Module and attribute names mirror the reference implementation
(``cross_attention_list.<j>.fn.fn.qkv`` ...), so that its weights load by name.

Shapes: ``B`` batch, ``K`` modalities, ``N`` tokens per block, ``L = (K+1) N``,
``C`` token dimension.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from trainables.backbones.transformer import HeadedAttention, feed_forward_residual

__all__ = ["MaskedSelfAttention", "MaskedTransformer", "bottleneck_attention_mask"]


def bottleneck_attention_mask(mask: Tensor, tokens: int) -> Tensor:
    """Which keys each query may attend to in a sequence of ``K`` modality blocks and the fusion block.

    Args:
        mask: ``BK`` bool, present modalities.
        tokens: tokens per block ``N``.

    Returns:
        ``B1LL`` bool, ``True`` where a query may attend to a key: a modality block's
        tokens to that block, the fusion tokens to themselves and the present blocks.
    """
    batch, modalities = mask.shape
    allowed = torch.eye(modalities + 1, dtype=torch.bool, device=mask.device).repeat(batch, 1, 1)
    allowed[:, modalities, :modalities] = mask
    return allowed.repeat_interleave(tokens, dim=1).repeat_interleave(tokens, dim=2)[:, None]


class MaskedSelfAttention(HeadedAttention):
    """Multi-head self-attention that also returns its attention weights (after attention dropout)."""

    def forward(self, tokens: Tensor, allowed: Tensor) -> tuple[Tensor, Tensor]:
        """Args: tokens ``BLC``; allowed bool, broadcastable to ``B x heads x L x L``.

        Returns:
            ``BLC`` output and the ``B x heads x L x L`` attention weights as applied
            (zero where not allowed).
        """
        query, key, value = self.split_heads(tokens)
        # Written out rather than fused: the weights themselves are an output.
        scores = (query @ key.transpose(-2, -1)) * query.shape[-1] ** -0.5
        weights = self.attn_drop(scores.masked_fill(~allowed, float("-inf")).softmax(dim=-1))
        return self.join_heads(weights @ value), weights


class _PreNormAttention(nn.Module):
    """``dropout(attention(LN(x)))``: the reference applies a second dropout after the projection's."""

    def __init__(self, dim: int, *, heads: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fn = MaskedSelfAttention(dim, heads=heads, dropout=dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, tokens: Tensor, allowed: Tensor) -> tuple[Tensor, Tensor]:
        attended, weights = self.fn(self.norm(tokens), allowed)
        return self.dropout(attended), weights


class _AttentionResidual(nn.Module):
    """``x + dropout(attention(LN(x)))`` and the attention weights."""

    def __init__(self, dim: int, *, heads: int, dropout: float) -> None:
        super().__init__()
        self.fn = _PreNormAttention(dim, heads=heads, dropout=dropout)

    def forward(self, tokens: Tensor, allowed: Tensor) -> tuple[Tensor, Tensor]:
        attended, weights = self.fn(tokens, allowed)
        return tokens + attended, weights


class MaskedTransformer(nn.Module):
    """Pre-norm transformer layers with an attention mask, returning the first layer's attention weights.

    Args:
        dim: token dimension ``C``.
        depth: layers.
        heads: attention heads.
        mlp_dim: hidden units of the GELU MLP.
        dropout: every dropout's rate, in training.
    """

    def __init__(self, dim: int, *, depth: int, heads: int, mlp_dim: int, dropout: float) -> None:
        super().__init__()
        self.cross_attention_list = nn.ModuleList(
            _AttentionResidual(dim, heads=heads, dropout=dropout) for _ in range(depth)
        )
        self.cross_ffn_list = nn.ModuleList(feed_forward_residual(dim, mlp_dim, dropout=dropout) for _ in range(depth))

    def forward(self, tokens: Tensor, allowed: Tensor) -> tuple[Tensor, Tensor]:
        """Args: tokens ``BLC``; allowed bool attention mask broadcastable to ``B x heads x L x L``.

        Returns:
            ``BLC`` tokens and the first layer's attention weights, detached.
        """
        tokens, first = self.cross_attention_list[0](tokens, allowed)
        tokens = self.cross_ffn_list[0](tokens)
        for attention, feed_forward in zip(self.cross_attention_list[1:], self.cross_ffn_list[1:]):
            tokens = feed_forward(attention(tokens, allowed)[0])
        return tokens, first.detach()
