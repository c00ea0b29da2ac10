"""M2FTrans (Shi et al., 2023): modality-masked fusion transformer.

Per-modality convolutional encoders (five levels, widths ``w .. 16w``) feed a
bottleneck transformer over the tokens of every modality and a grid of learnable
fusion tokens. Its attention mask keeps each modality's tokens to themselves and lets
the fusion tokens attend only to the fusion tokens and the present modalities.
How much attention the fusion tokens pay to each modality's token, in the first
layer, gives a spatial weight per modality that scales that modality's features at
every level (spatial-weighted attention). The fusion decoder starts from the fusion
tokens; at the two coarsest levels it mixes in the modalities by channel cross-attention
masked to the present modalities, at the three finest by convolutions over the masked
features. One separate decoder, shared by all modalities, serves PASSION.

Differences from the reference implementation, on purpose:

- Only the present modalities' tokens enter the bottleneck sequence (padded per batch
  and masked). The reference runs all four and masks the attention; since a
  modality's tokens attend only to themselves and the fusion tokens never attend to
  an absent modality, the values that are used are the same.
- The spatial weights come from the attention weights before dropout; the
  reference's, in training, are those after its attention dropout.
- Deep supervision at 1, 1/2, 1/4 and 1/8 of the input (the backbone contract): the
  reference's 1/16 head on the fusion tokens (2,132 parameters at width 8) is dropped.
- The positional embeddings and fusion tokens are resampled for an input whose token
  grid differs from the one the model was built for.

Shapes: ``B`` batch, ``K`` modalities, ``C`` channels, ``T`` token grid edge
(``patch_size / 16``), levels finest first.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainables.backbones.base import Backbone, FusionOutput, register_backbone
from trainables.backbones.blocks import ModalityEncoder, SeparateDecoder, init_conv_weights
from trainables.backbones.layers import ConvNormAct, mask_modalities, upsample
from trainables.backbones.transformer import (
    LearnedPositionalEmbedding,
    Transformer,
    tokens_to_volume,
    volume_to_tokens,
)
from trainables.modalities import NUM_CLASSES, NUM_MODALITIES

__all__ = ["M2FTrans", "bottleneck_attention_mask"]

# The published model's sizes; the transformer's width and MLP follow the base width.
_LEVELS = 5
_HEADS = 8
_DEPTH = 3
_MLP_RATIO = 32  # MLP hidden units per transformer channel (4096 at width 8)
_DROPOUT = 0.1
_CROSS_ATTENTION_LEVELS = 2  # the coarsest levels fuse modalities by cross-attention
_CROSS_ATTENTION_BLOCKS = 2
_FEED_FORWARD_EXPANSION = 4
_PRM_HIDDEN = 16
_LAYER_NORM_EPS = 1e-6


class ChannelLayerNorm(nn.LayerNorm):
    """LayerNorm over the channels of each voxel of an ``NC...`` volume."""

    def __init__(self, channels: int) -> None:
        super().__init__(channels, eps=_LAYER_NORM_EPS)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x.movedim(1, -1)).movedim(-1, 1)


def separable_block(channels: int, hidden: int) -> nn.Sequential:
    """Pointwise conv to ``hidden`` channels, grouped 3x3 conv (``channels`` groups),
    pointwise conv back, each followed by LayerNorm, with GELU between."""
    return nn.Sequential(
        nn.Conv3d(channels, hidden, 1),
        ChannelLayerNorm(hidden),
        nn.GELU(),
        nn.Conv3d(hidden, hidden, 3, padding=1, groups=channels),
        ChannelLayerNorm(hidden),
        nn.GELU(),
        nn.Conv3d(hidden, channels, 1),
        ChannelLayerNorm(channels),
    )


class ConvFeedForward(nn.Module):
    """``GELU(x + f(x))`` with ``f`` a :func:`separable_block` that expands the channels."""

    def __init__(self, channels: int, *, expansion: int = _FEED_FORWARD_EXPANSION) -> None:
        super().__init__()
        self.block = separable_block(channels, channels * expansion)

    def forward(self, x: Tensor) -> Tensor:
        return F.gelu(x + self.block(x))


class ModalityCrossAttention(nn.Module):
    """Channel cross-attention of a decoder map over the channels of the present modalities.

    Each channel of the query map (a length-``HWD`` vector) attends over the ``K*C``
    channels of the modalities' key maps; the channels of absent modalities are
    masked out of the attention.
    """

    def __init__(self, channels: int, *, dropout: float) -> None:
        super().__init__()
        self.query_map = separable_block(channels, channels)
        self.key_maps = nn.ModuleList(separable_block(channels, channels) for _ in range(NUM_MODALITIES))
        self.value_maps = nn.ModuleList(separable_block(channels, channels) for _ in range(NUM_MODALITIES))
        self.output_map = separable_block(channels, channels)
        self.dropout = nn.Dropout(dropout)

    def forward(self, query: Tensor, features: Tensor, mask: Tensor) -> Tensor:
        """Args: query ``BCHWD``; features ``BKCHWD``; mask ``BK`` bool. Returns ``BCHWD``."""
        channels = query.shape[1]
        keys = torch.cat([key(features[:, k]).flatten(2) for k, key in enumerate(self.key_maps)], dim=1)
        values = torch.cat([value(features[:, k]).flatten(2) for k, value in enumerate(self.value_maps)], dim=1)
        allowed = mask.repeat_interleave(channels, dim=1)[:, None, :]  # B 1 KC
        # Channels are the sequence and voxels the embedding: scaled by 1/sqrt(HWD), as published.
        attended = F.scaled_dot_product_attention(self.query_map(query).flatten(2), keys, values, attn_mask=allowed)
        return query + self.dropout(self.output_map(attended.reshape(query.shape)))


class CrossAttentionBlock(nn.Module):
    """Cross-attention and a conv feed-forward on the query; optionally a shared feed-forward on each modality."""

    def __init__(self, channels: int, *, update_features: bool, dropout: float) -> None:
        super().__init__()
        self.attention = ModalityCrossAttention(channels, dropout=dropout)
        self.query_feed_forward = ConvFeedForward(channels)
        self.feature_feed_forward = ConvFeedForward(channels) if update_features else None

    def forward(self, query: Tensor, features: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        query = self.query_feed_forward(self.attention(query, features, mask))
        if self.feature_feed_forward is not None:
            features = self.feature_feed_forward(features.flatten(0, 1)).unflatten(0, features.shape[:2])
        return query, features


class CrossAttentionFusion(nn.Module):
    """Fuses the present modalities into the decoder map by stacked cross-attention blocks."""

    def __init__(self, channels: int, *, blocks: int = _CROSS_ATTENTION_BLOCKS, dropout: float = _DROPOUT) -> None:
        super().__init__()
        # The last block's feature update would feed nothing, so the published model has none.
        self.blocks = nn.ModuleList(
            CrossAttentionBlock(channels, update_features=index < blocks - 1, dropout=dropout)
            for index in range(blocks)
        )

    def forward(self, features: Tensor, decoder: Tensor, mask: Tensor) -> Tensor:
        """Args: features ``BKCHWD``; decoder ``BCHWD`` (the query); mask ``BK``. Returns ``BCHWD``."""
        for block in self.blocks:
            decoder, features = block(decoder, features, mask)
        return decoder


class ConvFusion(nn.Sequential):
    """Fuses the masked, stacked modality features by 1x1, 3x3 and 1x1 convs (independent of the decoder map)."""

    def __init__(self, channels: int) -> None:
        super().__init__(
            ConvNormAct(NUM_MODALITIES * channels, channels, kernel_size=1),
            ConvNormAct(channels, channels),
            ConvNormAct(channels, channels, kernel_size=1),
        )

    def forward(self, features: Tensor, decoder: Tensor, mask: Tensor) -> Tensor:
        """Args: features ``BKCHWD``; decoder ignored; mask ``BK``. Returns ``BCHWD``."""
        return super().forward(mask_modalities(features, mask).flatten(1, 2))


def bottleneck_attention_mask(valid: Tensor, tokens: int) -> Tensor:
    """Attention mask of the bottleneck's blocks of ``tokens`` tokens: modality blocks, then the fusion block.

    A modality block's tokens attend to that block only; the fusion tokens attend to
    the fusion tokens and to the valid modality blocks.

    Args:
        valid: ``BP`` bool, which of the ``P`` modality blocks hold a present modality.
        tokens: tokens per block (``T^3``).

    Returns:
        ``B1LL`` bool, ``L = (P+1) * tokens``, ``True`` where a query may attend to a key.
    """
    batch, blocks = valid.shape
    allowed = torch.eye(blocks + 1, dtype=torch.bool, device=valid.device).repeat(batch, 1, 1)
    allowed[:, blocks, :blocks] = valid
    return allowed.repeat_interleave(tokens, dim=1).repeat_interleave(tokens, dim=2)[:, None]


class TokenFusion(nn.Module):
    """Masked transformer over the modality tokens and the learnable fusion tokens.

    Only the present modalities' token blocks enter the sequence, padded to the most
    present modalities of the batch and masked (see the module docstring): a
    single-modality student pass runs two blocks instead of five.

    Args:
        dim: token dimension (the coarsest encoder level's channels).
        grid: token grid edge ``T`` the model is built for.
        depth, heads, mlp_dim, dropout: of the transformer.
    """

    def __init__(self, dim: int, *, grid: int, depth: int, heads: int, mlp_dim: int, dropout: float) -> None:
        super().__init__()
        self.position = LearnedPositionalEmbedding(grid, dim, count=NUM_MODALITIES + 1)
        # The fusion tokens are a learned grid too, resampled like the positions for another grid.
        self.fusion_tokens = LearnedPositionalEmbedding(grid, dim)
        nn.init.normal_(self.fusion_tokens.weight)
        self.transformer = Transformer(dim, depth=depth, heads=heads, mlp_dim=mlp_dim, dropout=dropout)

    def forward(self, features: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Mix the bottleneck features of the present modalities into the fusion tokens.

        Args:
            features: ``BKCTTT`` coarsest encoder features.
            mask: ``BK`` bool.

        Returns:
            The modality tokens ``BKCTTT`` (each depends only on its own modality; zero
            for absent ones), the fusion tokens ``BCTTT``, and the spatial weights
            ``BKTTT``: the first layer's attention from all fusion tokens to each
            modality token, summed over heads and fusion tokens (zero for absent
            modalities; no gradient).
        """
        batch, modalities, dim = features.shape[:3]
        grid = features.shape[3:]
        position = self.position(grid)  # (K+1) N C
        per_block = position.shape[1]
        # Present modalities first (stable order), then as many absent ones as padding needs.
        order = torch.argsort((~mask).to(torch.uint8), dim=1, stable=True)[:, : int(mask.sum(dim=1).max())]
        valid = mask.gather(1, order)
        blocks = order.shape[1]
        modality_tokens = volume_to_tokens(features.flatten(0, 1)).unflatten(0, (batch, modalities))  # B K N C
        picked = modality_tokens[torch.arange(batch, device=order.device)[:, None], order] + position[order]
        fusion_tokens = self.fusion_tokens(grid).expand(batch, -1, -1) + position[modalities]
        tokens = torch.cat((picked.flatten(1, 2), fusion_tokens), dim=1)
        attention_mask = bottleneck_attention_mask(valid, per_block)
        first = self.transformer.layers[0]
        with torch.no_grad():
            attention = first.attention.attention_weights(first.attention_norm(tokens), attention_mask)
            picked_weights = attention[:, :, blocks * per_block :, : blocks * per_block].sum(dim=(1, 2))
            weights = _unpick(picked_weights.unflatten(1, (blocks, per_block)), order, valid, modalities)
        mixed = self.transformer(tokens, mask=attention_mask)
        picked_mixed = mixed[:, : blocks * per_block].unflatten(1, (blocks, per_block))
        modality_mixed = _unpick(picked_mixed, order, valid, modalities)
        modality_volumes = tokens_to_volume(modality_mixed.flatten(0, 1), grid).unflatten(0, (batch, modalities))
        fusion_volume = tokens_to_volume(mixed[:, blocks * per_block :], grid)
        return modality_volumes, fusion_volume, weights.reshape(batch, modalities, *grid)


def _unpick(picked: Tensor, order: Tensor, valid: Tensor, modalities: int) -> Tensor:
    """``BP...`` values of the picked token blocks back to ``BK...`` in modality order, zero where absent."""
    rows = torch.arange(order.shape[0], device=order.device)[:, None].expand_as(order)
    full = picked.new_zeros(picked.shape[0], modalities, *picked.shape[2:])
    return full.index_put((rows[valid], order[valid]), picked[valid])


class FusionDecoder(nn.Module):
    """M2FTrans' fusion decoder: from the fusion tokens, coarse to fine, fusing the modalities at every level.

    At each level the decoder map (the fusion tokens at the coarsest, else the
    upsampled and reduced map from the level below) predicts deep-supervision logits
    (all but the coarsest level), is fused with the modality features, and refined.
    """

    def __init__(self, channels: Sequence[int]) -> None:
        super().__init__()
        levels = range(len(channels))
        cross_attention = set(levels[-_CROSS_ATTENTION_LEVELS:])
        self.fusions = nn.ModuleList(
            CrossAttentionFusion(channels[level]) if level in cross_attention else ConvFusion(channels[level])
            for level in levels
        )
        self.reduce = nn.ModuleList(
            nn.Sequential(upsample(2), ConvNormAct(channels[level + 1], channels[level])) for level in levels[:-1]
        )
        self.refine = nn.ModuleList(
            nn.Sequential(
                ConvNormAct(2 * channels[level], channels[level]),
                ConvNormAct(channels[level], channels[level], kernel_size=1),
            )
            for level in levels
        )
        # Deep supervision at 1, 1/2, 1/4 and 1/8 of the input, as the contract asks.
        self.prm_heads = nn.ModuleList(
            nn.Sequential(
                ConvNormAct(channels[level], _PRM_HIDDEN, kernel_size=1), nn.Conv3d(_PRM_HIDDEN, NUM_CLASSES, 1)
            )
            for level in levels[:-1]
        )
        self.head = nn.Conv3d(channels[0], NUM_CLASSES, 1)

    def forward(self, features: Sequence[Tensor], fusion: Tensor, mask: Tensor) -> FusionOutput:
        """Args: features ``BKC_l...`` weighted modality features, finest first; fusion ``BCTTT``; mask ``BK``."""
        aux: list[Tensor] = []
        decoded: list[Tensor] = []
        x: Tensor | None = None
        for level in reversed(range(len(features))):
            decoder = fusion if x is None else self.reduce[level](x)
            if level < len(self.prm_heads):
                aux.append(self.prm_heads[level](decoder))
            fused = self.fusions[level](features[level], decoder, mask)
            x = self.refine[level](torch.cat((fused, decoder), dim=1))
            decoded.append(x)
        return FusionOutput(logits=self.head(x), aux_logits=tuple(reversed(aux)), features=tuple(reversed(decoded)))


@register_backbone("m2ftrans")
class M2FTrans(Backbone):
    """M2FTrans with base width ``width`` (reference 8) for ``patch_size`` patches (reference 80).

    The transformer has ``16 * width`` channels, ``32 * 16 * width`` MLP units, 8 heads
    and depth 3; its token grid is ``patch_size / 16`` per edge (5 at 80).
    """

    has_separate_decoder = True
    # Heads at 1, 1/2, 1/4, 1/8 (not yet the reference's fifth head at 1/16).
    deep_supervision = ((1, 0.5), (2, 0.25), (4, 0.125), (8, 0.0625))

    def __init__(self, *, width: int = 8, patch_size: int = 80) -> None:
        super().__init__(width=width, patch_size=patch_size)
        channels = [width * 2**level for level in range(_LEVELS)]
        self.encoders = nn.ModuleList(ModalityEncoder(channels) for _ in range(NUM_MODALITIES))
        self.bottleneck = TokenFusion(
            channels[-1],
            grid=patch_size // self.size_divisor,
            depth=_DEPTH,
            heads=_HEADS,
            mlp_dim=_MLP_RATIO * channels[-1],
            dropout=_DROPOUT,
        )
        self.fusion_decoder = FusionDecoder(channels)
        self.separate_decoder = SeparateDecoder(channels)
        init_conv_weights(self)

    def encode(self, images: Tensor, modality: int) -> list[Tensor]:
        return self.encoders[modality](images)

    def fuse(self, features: Sequence[Tensor], mask: Tensor) -> FusionOutput:
        modality_tokens, fusion, weights = self.bottleneck(features[-1], mask)
        # Spatial-weighted attention: each level's features scaled by the token grid's
        # weights, nearest-upsampled; absent modalities get weight zero.
        weighted = [
            level * F.interpolate(weights, size=level.shape[3:], mode="nearest").unsqueeze(2)
            for level in (*features[:-1], modality_tokens)
        ]
        return self.fusion_decoder(weighted, fusion, mask)

    def separate(self, features: Sequence[Tensor]) -> Tensor:
        return self.separate_decoder(features)
