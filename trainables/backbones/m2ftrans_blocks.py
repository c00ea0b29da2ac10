"""M2FTrans' convolutional and cross-attention blocks.

Attribute names mirror the reference implementation (``conv``, ``fusion_layer``,
``prm_layer``, ``cross_attn.key_map_flair.conv1`` ...) so that its weights load by name;
the order in which a module registers its children follows the reference too, so that
``state_dict()`` lists the same tensors in the same order.

Shapes: ``B`` batch, ``K`` modalities, ``C`` channels, ``S`` voxels of a level.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainables.backbones.layers import conv3d, instance_norm_leaky_relu, mask_modalities
from trainables.modalities import MODALITIES, NUM_CLASSES, NUM_MODALITIES

__all__ = [
    "ConvBlock",
    "ConvFusion",
    "CrossTokenBlock",
    "CrossTokenFusion",
    "DepthwiseConvBlock",
    "GroupConvFeedForward",
    "ModalityCrossAttention",
    "PrmHead",
]

_LAYER_NORM_EPS = 1e-6
_PRM_HIDDEN = 16


class ConvBlock(nn.Module):
    """Conv3d (reflect-padded if 3x3) -> InstanceNorm3d -> LeakyReLU(0.2): the reference's ``general_conv3d``."""

    def __init__(self, in_channels: int, out_channels: int, *, kernel_size: int = 3, stride: int = 1) -> None:
        super().__init__()
        self.conv = conv3d(in_channels, out_channels, kernel_size=kernel_size, stride=stride)

    def forward(self, x: Tensor) -> Tensor:
        return instance_norm_leaky_relu(self.conv(x))


def _channel_layer_norm(norm: nn.LayerNorm, x: Tensor) -> Tensor:
    """LayerNorm over the channels of each voxel of an ``NC...`` volume."""
    return norm(x.movedim(1, -1)).movedim(-1, 1)


class DepthwiseConvBlock(nn.Module):
    """1x1 conv, depthwise 3x3 conv, 1x1 conv, each followed by a channel LayerNorm, GELU between."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(channels, channels, 1)
        self.norm1 = nn.LayerNorm(channels, eps=_LAYER_NORM_EPS)
        self.conv2 = nn.Conv3d(channels, channels, 3, padding=1, groups=channels)
        self.norm2 = nn.LayerNorm(channels, eps=_LAYER_NORM_EPS)
        self.conv3 = nn.Conv3d(channels, channels, 1)
        self.norm3 = nn.LayerNorm(channels, eps=_LAYER_NORM_EPS)

    def forward(self, x: Tensor) -> Tensor:
        x = F.gelu(_channel_layer_norm(self.norm1, self.conv1(x)))
        x = F.gelu(_channel_layer_norm(self.norm2, self.conv2(x)))
        return _channel_layer_norm(self.norm3, self.conv3(x))


class GroupConvFeedForward(nn.Module):
    """``GELU(x + f(x))``: ``f`` expands the channels by 1x1 conv, mixes each group of
    ``expansion`` channels by a grouped 3x3 conv and projects back, with channel
    LayerNorms and GELUs between."""

    def __init__(self, channels: int, *, expansion: int = 4) -> None:
        super().__init__()
        hidden = channels * expansion
        self.pwconv1 = nn.Conv3d(channels, hidden, 1)
        self.norm1 = nn.LayerNorm(hidden, eps=_LAYER_NORM_EPS)
        self.dwconv = nn.Conv3d(hidden, hidden, 3, padding=1, groups=channels)
        self.norm2 = nn.LayerNorm(hidden, eps=_LAYER_NORM_EPS)
        self.pwconv2 = nn.Conv3d(hidden, channels, 1)
        self.norm3 = nn.LayerNorm(channels, eps=_LAYER_NORM_EPS)

    def forward(self, x: Tensor) -> Tensor:
        y = F.gelu(_channel_layer_norm(self.norm1, self.pwconv1(x)))
        y = F.gelu(_channel_layer_norm(self.norm2, self.dwconv(y)))
        return F.gelu(x + _channel_layer_norm(self.norm3, self.pwconv2(y)))


class ModalityCrossAttention(nn.Module):
    """Channel cross-attention of a decoder map over the channels of the present modalities.

    Each channel of the query map (a length-``S`` vector) attends over the ``K*C``
    channels of the modalities' key maps, scaled by ``1/sqrt(S)``; the channels of
    absent modalities are masked out. Keys and values have their own maps per modality.

    Args:
        channels: ``C``.
        dropout: on the projected output, in training.
    """

    def __init__(self, channels: int, *, dropout: float) -> None:
        super().__init__()
        self.query_map = DepthwiseConvBlock(channels)
        for name in MODALITIES:
            self.add_module(f"key_map_{name}", DepthwiseConvBlock(channels))
            self.add_module(f"value_map_{name}", DepthwiseConvBlock(channels))
        self.out_project = DepthwiseConvBlock(channels)
        self.proj_drop = nn.Dropout(dropout)

    def forward(self, query: Tensor, features: Sequence[Tensor], mask: Tensor) -> Tensor:
        """Args: query ``BCHWD``; features ``K`` maps ``BCHWD``; mask ``BK`` bool. Returns ``BCHWD``."""
        channels = query.shape[1]
        keys = torch.cat(
            [getattr(self, f"key_map_{n}")(f).flatten(2) for n, f in zip(MODALITIES, features)],
            dim=1,
        )
        values = torch.cat(
            [getattr(self, f"value_map_{n}")(f).flatten(2) for n, f in zip(MODALITIES, features)],
            dim=1,
        )
        allowed = mask.repeat_interleave(channels, dim=1)[:, None, :]  # B 1 KC
        attended = F.scaled_dot_product_attention(self.query_map(query).flatten(2), keys, values, attn_mask=allowed)
        return query + self.proj_drop(self.out_project(attended.reshape(query.shape)))


class CrossTokenBlock(nn.Module):
    """Cross-attention and a feed-forward on the query; optionally a feed-forward shared by the modalities' maps."""

    def __init__(self, channels: int, *, update_features: bool, dropout: float) -> None:
        super().__init__()
        self.cross_attn = ModalityCrossAttention(channels, dropout=dropout)
        self.ffn2 = GroupConvFeedForward(channels) if update_features else None
        self.ffn1 = GroupConvFeedForward(channels)

    def forward(self, query: Tensor, features: Sequence[Tensor], mask: Tensor) -> tuple[Tensor, list[Tensor]]:
        query = self.ffn1(self.cross_attn(query, features, mask))
        if self.ffn2 is not None:
            features = [self.ffn2(feature) for feature in features]
        return query, list(features)


class CrossTokenFusion(nn.Module):
    """Fuses the present modalities into the decoder map by stacked :class:`CrossTokenBlock` (the reference's ``MultiCrossToken``)."""

    def __init__(self, channels: int, *, blocks: int = 2, dropout: float = 0.1) -> None:
        super().__init__()
        # The last block's feature update would feed nothing, so the reference has none.
        self.layers = nn.ModuleList(
            CrossTokenBlock(channels, update_features=index < blocks - 1, dropout=dropout) for index in range(blocks)
        )

    def forward(self, features: Tensor, decoder: Tensor, mask: Tensor) -> Tensor:
        """Args: features ``BKCHWD``; decoder ``BCHWD`` (the query); mask ``BK``. Returns ``BCHWD``."""
        maps: Sequence[Tensor] = features.unbind(1)
        for layer in self.layers:
            decoder, maps = layer(decoder, maps, mask)
        return decoder


class ConvFusion(nn.Module):
    """Fuses the masked, stacked modality maps by 1x1, 3x3 and 1x1 conv blocks (the reference's ``fusion_postnorm``)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fusion_layer = nn.Sequential(
            ConvBlock(NUM_MODALITIES * channels, channels, kernel_size=1),
            ConvBlock(channels, channels),
            ConvBlock(channels, channels, kernel_size=1),
        )

    def forward(self, features: Tensor, mask: Tensor) -> Tensor:
        """Args: features ``BKCHWD``; mask ``BK``. Returns ``BCHWD``."""
        return self.fusion_layer(mask_modalities(features, mask).flatten(1, 2))


class PrmHead(nn.Module):
    """Deep-supervision logits of a decoder map: 1x1 conv block to 16 channels, 1x1 conv to the classes."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.prm_layer = nn.Sequential(
            ConvBlock(channels, _PRM_HIDDEN, kernel_size=1),
            nn.Conv3d(_PRM_HIDDEN, NUM_CLASSES, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.prm_layer(x)
