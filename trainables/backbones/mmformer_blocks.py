"""mmFormer's building blocks, named and ordered as in the reference implementation.

Attribute names (``e1_c1``, ``d4_c2``, ``seg_d4``, ``RFM5``, ``cross_attention_list`` ...)
are those of the reference's ``state_dict`` and modules are registered in its order, so
that a checkpoint trained with the authors' code loads by identity mapping.

The conv blocks are pre-norm (InstanceNorm -> LeakyReLU(0.2) -> conv); the token blocks
form a pre-norm transformer whose attention branch has two dropouts after the output
projection (the attention's own and the branch's), as the reference has.

Shapes: ``N`` batch, ``L`` tokens, ``C`` channels or token dimension.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainables.backbones.base import FusionOutput
from trainables.backbones.blocks import FlatEncoder
from trainables.backbones.layers import PaddingMode, conv3d, instance_norm_leaky_relu, upsample
from trainables.backbones.transformer import HeadedAttention, PreNormDrop, Residual, feed_forward_residual
from trainables.modalities import NUM_CLASSES, NUM_MODALITIES

__all__ = ["Encoder", "FusionDecoder", "PreNormConv", "SeparateDecoder", "TokenTransformer"]


class PreNormConv(nn.Module):
    """InstanceNorm (not affine) -> LeakyReLU(0.2) -> Conv3d, the reference's ``general_conv3d_prenorm``.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: 3 or 1 (a 3 is padded by one voxel).
        stride: 1, or 2 to halve the resolution.
        padding_mode: of a 3x3 conv; the reference reflects everywhere but in its
            modality-fusion blocks, which pad with zeros.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        kernel_size: int = 3,
        stride: int = 1,
        padding_mode: PaddingMode = "reflect",
    ) -> None:
        super().__init__()
        self.conv = conv3d(in_channels, out_channels, kernel_size=kernel_size, stride=stride, padding_mode=padding_mode)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(instance_norm_leaky_relu(x))


class Encoder(FlatEncoder):
    """One modality's encoder: a bare conv on the image, strided pre-norm convs after."""

    def _entry(self, level: int, in_channels: int, out_channels: int) -> nn.Module:
        return conv3d(in_channels, out_channels) if level == 1 else PreNormConv(in_channels, out_channels, stride=2)

    def _block(self, channels: int) -> nn.Module:
        return PreNormConv(channels, channels)


class _UpDecoder(nn.Module):
    """The reference's decoder stages ``d{l}`` for ``l = depth-1 .. 1``.

    A stage upsamples the coarser map (trilinear, x2), reduces it (``d{l}_c1``, 3x3),
    concatenates it with the level's skip map, then refines (``d{l}_c2``, 3x3, and
    ``d{l}_out``, 1x1). The two reference decoders concatenate in opposite orders.
    """

    skip_first: bool

    def _add_stages(self, channels: Sequence[int]) -> None:
        self.depth = len(channels)
        for level in range(self.depth - 1, 0, -1):
            coarse, fine = channels[level], channels[level - 1]
            self.add_module(f"d{level}_c1", PreNormConv(coarse, fine))
            self.add_module(f"d{level}_c2", PreNormConv(2 * fine, fine))
            self.add_module(f"d{level}_out", PreNormConv(fine, fine, kernel_size=1))

    def _stage(self, level: int, coarse: Tensor, skip: Tensor) -> Tensor:
        up = getattr(self, f"d{level}_c1")(upsample(2)(coarse))
        joined = torch.cat((skip, up) if self.skip_first else (up, skip), dim=1)
        return getattr(self, f"d{level}_out")(getattr(self, f"d{level}_c2")(joined))


class SeparateDecoder(_UpDecoder):
    """The decoder shared by all modalities (``decoder_sep``): one modality's levels to ``N4HWD`` logits."""

    skip_first = False

    def __init__(self, channels: Sequence[int]) -> None:
        super().__init__()
        self._add_stages(channels)
        self.seg_layer = nn.Conv3d(channels[0], NUM_CLASSES, 1)

    def forward(self, levels: Sequence[Tensor]) -> Tensor:
        """Args: levels ``NC_l...``, finest first. Returns ``N4HWD`` logits."""
        x = levels[-1]
        for level in range(self.depth - 1, 0, -1):
            x = self._stage(level, x, levels[level - 1])
        return self.seg_layer(x)


class ModalityFusion(nn.Module):
    """``RFM{l}``: the modality-major stacked maps of one level, ``K*C -> C`` by 1x1, 3x3 (zero-padded), 1x1."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fusion_layer = nn.Sequential(
            PreNormConv(NUM_MODALITIES * channels, channels, kernel_size=1),
            PreNormConv(channels, channels, padding_mode="zeros"),
            PreNormConv(channels, channels, kernel_size=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.fusion_layer(x)


class FusionDecoder(_UpDecoder):
    """The fusion decoder (``decoder_fuse``): fuses each level's modalities, decodes, and
    predicts at every level (``seg_d{l}`` reads the output of level ``l + 1``)."""

    skip_first = True

    def __init__(self, channels: Sequence[int]) -> None:
        super().__init__()
        self._add_stages(channels)
        for level in range(len(channels) - 1, 0, -1):
            self.add_module(f"seg_d{level}", nn.Conv3d(channels[level], NUM_CLASSES, 1))
        self.seg_layer = nn.Conv3d(channels[0], NUM_CLASSES, 1)
        for level in range(len(channels), 0, -1):
            self.add_module(f"RFM{level}", ModalityFusion(channels[level - 1]))

    def forward(self, skips: Sequence[Tensor], bottleneck: Tensor) -> FusionOutput:
        """Decode.

        Args:
            skips: the masked, modality-major stacked skip maps ``N(K*C_l)...``, finest first,
                all levels but the deepest.
            bottleneck: ``N(K*C)...`` at the deepest level.

        Returns:
            The logits; the auxiliary logits at 1/2, 1/4, ... of the input size; the
            decoder features, finest first.
        """
        x = getattr(self, f"RFM{self.depth}")(bottleneck)
        features, aux = [x], [getattr(self, f"seg_d{self.depth - 1}")(x)]
        for level in range(self.depth - 1, 0, -1):
            x = self._stage(level, x, getattr(self, f"RFM{level}")(skips[level - 1]))
            features.append(x)
            if level > 1:
                aux.append(getattr(self, f"seg_d{level - 1}")(x))
        return FusionOutput(
            logits=self.seg_layer(x), aux_logits=tuple(reversed(aux)), features=tuple(reversed(features))
        )


class SelfAttention(HeadedAttention):
    """Multi-head self-attention, fused (the weights are not needed)."""

    def forward(self, tokens: Tensor) -> Tensor:
        """Args: tokens ``NLC``. Returns ``NLC``."""
        query, key, value = self.split_heads(tokens)
        dropout = self.attn_drop.p if self.training else 0.0
        return self.join_heads(F.scaled_dot_product_attention(query, key, value, dropout_p=dropout))


class TokenTransformer(nn.Module):
    """Pre-norm transformer adding the positional embedding before every layer.

    A layer is ``x = x + pos``; ``x = x + dropout(attention(LN(x)))``; ``x = x + MLP(LN(x))``.

    Args:
        dim: token dimension ``C``.
        depth: layers.
        heads: attention heads.
        mlp_dim: hidden units of the GELU MLP.
        dropout: every dropout's probability, in training.
    """

    def __init__(self, dim: int, *, depth: int, heads: int, mlp_dim: int, dropout: float) -> None:
        super().__init__()
        self.cross_attention_list = nn.ModuleList(
            Residual(PreNormDrop(dim, SelfAttention(dim, heads=heads, dropout=dropout), dropout=dropout))
            for _ in range(depth)
        )
        self.cross_ffn_list = nn.ModuleList(feed_forward_residual(dim, mlp_dim, dropout=dropout) for _ in range(depth))

    def forward(self, tokens: Tensor, position: Tensor) -> Tensor:
        """Args: tokens ``NLC``; position broadcastable to ``NLC``. Returns ``NLC``."""
        for attention, feed_forward in zip(self.cross_attention_list, self.cross_ffn_list):
            tokens = feed_forward(attention(tokens + position))
        return tokens
