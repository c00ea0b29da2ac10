"""M2FTrans (Shi et al., 2023) as the PASSION reference implements it.

Per-modality convolutional encoders (five levels, widths ``w .. 16w``) feed a
bottleneck transformer over the tokens of all four modalities and a grid of
learnable fusion tokens, with a learned positional embedding per block. Its attention
mask keeps each modality's tokens to themselves and lets the fusion tokens attend
only to the fusion tokens and the present modalities; absent modalities enter as
their zero features plus positional embedding, as in the reference. How much
attention the fusion tokens pay to each modality's token in the first layer (after
attention dropout, summed over heads and fusion tokens) is a spatial weight that
scales that modality's features at every level, nearest-upsampled; absent
modalities get weight zero. The fusion decoder starts from the fusion tokens; at the
two coarsest levels it fuses the modalities by channel cross-attention masked to the
present ones, at the three finest by convolutions over the masked features; each
level's decoder map feeds a deep-supervision head (five, the coarsest on the fusion
tokens). One separate decoder, shared by all modalities, serves PASSION.

Parameter names and their order are the reference's (``pos``, ``fusion``,
``flair_encoder.e1_c1.conv.weight`` ...), so its checkpoints load by name.

Beyond the reference: any patch size that is a multiple of 16 (the reference is fixed
at 80^3), and inputs whose token grid differs from the model's get the positional
embeddings and fusion tokens resampled trilinearly.

Shapes: ``B`` batch, ``K`` modalities, ``C`` channels, ``T`` token grid edge
(``patch_size / 16``), ``N = T^3`` tokens per block, levels finest first.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainables.backbones.base import Backbone, FusionOutput, register_backbone
from trainables.backbones.blocks import FlatEncoder
from trainables.backbones.layers import upsample
from trainables.backbones.m2ftrans_blocks import (
    ConvBlock,
    ConvFusion,
    CrossTokenFusion,
    PrmHead,
)
from trainables.backbones.m2ftrans_transformer import (
    MaskedTransformer,
    bottleneck_attention_mask,
)
from trainables.backbones.transformer import tokens_to_volume, volume_to_tokens
from trainables.modalities import MODALITIES, NUM_CLASSES, NUM_MODALITIES

__all__ = ["M2FTrans"]

# The published model's sizes; the transformer's width and MLP follow the base width.
_LEVELS = 5
_HEADS = 8
_DEPTH = 3
_MLP_RATIO = 32  # MLP hidden units per transformer channel (4096 at width 8)
_DROPOUT = 0.1
_CROSS_ATTENTION_LEVELS = (
    5,
    4,
)  # levels (1 = finest) that fuse the modalities by cross-attention


def _stage_names(level: int) -> tuple[str, str, str]:
    """The reference's names of a decoder stage's convs: reduce the upsampled coarser map, refine, 1x1 out."""
    return f"d{level}_c1", f"d{level}_c2", f"d{level}_out"


def _add_stage(decoder: nn.Module, level: int, channels: int, *, reduce: bool) -> None:
    """Register a decoder stage at ``level`` (``channels`` = its width; the coarser level has twice)."""
    reduce_name, refine_name, out_name = _stage_names(level)
    if reduce:
        decoder.add_module(reduce_name, ConvBlock(2 * channels, channels))
    decoder.add_module(refine_name, ConvBlock(2 * channels, channels))
    decoder.add_module(out_name, ConvBlock(channels, channels, kernel_size=1))


def _stage(decoder: nn.Module, level: int) -> tuple[nn.Module, nn.Module, nn.Module | None]:
    """A stage's (refine, out, reduce-into-the-next-finer-level) modules; the last is ``None`` at level 1."""
    _, refine_name, out_name = _stage_names(level)
    finer = getattr(decoder, _stage_names(level - 1)[0]) if level > 1 else None
    return getattr(decoder, refine_name), getattr(decoder, out_name), finer


class Encoder(FlatEncoder):
    """One modality's encoder of conv blocks, strided from level 2 on."""

    def _entry(self, level: int, in_channels: int, out_channels: int) -> nn.Module:
        return ConvBlock(in_channels, out_channels, stride=1 if level == 1 else 2)

    def _block(self, channels: int) -> nn.Module:
        return ConvBlock(channels, channels)


class Bottleneck(nn.Module):
    """The masked transformer over the modality tokens and the fusion tokens."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.trans_bottle = MaskedTransformer(
            dim, depth=_DEPTH, heads=_HEADS, mlp_dim=_MLP_RATIO * dim, dropout=_DROPOUT
        )

    def forward(
        self, features: Tensor, mask: Tensor, fusion: Tensor, position: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Mix the coarsest features of all modalities with the fusion tokens.

        Args:
            features: ``BKCTTT`` coarsest encoder features.
            mask: ``BK`` bool.
            fusion: ``1NC`` fusion tokens.
            position: ``1 x (K+1)N x C`` positional embedding.

        Returns:
            The modality tokens as ``BKCTTT`` volumes, the fusion tokens as a ``BCTTT``
            volume, and the spatial weights ``BKTTT`` (no gradient).
        """
        batch, modalities = features.shape[:2]
        grid = features.shape[3:]
        modality_tokens = volume_to_tokens(features.flatten(0, 1)).unflatten(0, (batch, modalities)).flatten(1, 2)
        tokens = torch.cat((modality_tokens, fusion.expand(batch, -1, -1)), dim=1) + position
        per_block = fusion.shape[1]
        mixed, attention = self.trans_bottle(tokens, bottleneck_attention_mask(mask, per_block))
        split = modalities * per_block
        weights = attention[:, :, split:, :split].sum(dim=1).sum(dim=1).unflatten(1, (modalities, *grid))
        modality_volumes = tokens_to_volume(mixed[:, :split].unflatten(1, (modalities, per_block)).flatten(0, 1), grid)
        fusion_volume = tokens_to_volume(mixed[:, split:], grid)
        return (
            modality_volumes.unflatten(0, (batch, modalities)),
            fusion_volume,
            weights,
        )


class FusionDecoder(nn.Module):
    """From the fusion tokens, coarse to fine: per level a deep-supervision head on the decoder map,
    fusion with the weighted modality features (cross-attention or convs), a refining conv stage,
    then upsampling and reduction into the next finer level."""

    def __init__(self, channels: Sequence[int]) -> None:
        super().__init__()
        levels = len(channels)
        # Registration order is the reference's (its state_dict order).
        _add_stage(self, levels, channels[-1], reduce=False)
        for level in _CROSS_ATTENTION_LEVELS:
            self.add_module(f"CT{level}", CrossTokenFusion(channels[level - 1]))
        for level in reversed(range(1, levels)):
            _add_stage(self, level, channels[level - 1], reduce=True)
        self.seg_layer = nn.Conv3d(channels[0], NUM_CLASSES, 1)
        for level in reversed(range(1, levels + 1)):
            if level not in _CROSS_ATTENTION_LEVELS:
                self.add_module(f"RFM{level}", ConvFusion(channels[level - 1]))
        for level in reversed(range(1, levels + 1)):
            self.add_module(f"prm_fusion{level}", PrmHead(channels[level - 1]))
        self.levels = levels
        self.up2 = upsample(2)

    def forward(self, features: Sequence[Tensor], fusion: Tensor, mask: Tensor) -> FusionOutput:
        """Args: features weighted ``BKC...`` modality features per level, finest first; fusion ``BCTTT``; mask ``BK``."""
        aux: list[Tensor] = []
        refined: list[Tensor] = []
        decoder = fusion
        for level in reversed(range(1, self.levels + 1)):
            aux.append(getattr(self, f"prm_fusion{level}")(decoder))
            if level in _CROSS_ATTENTION_LEVELS:
                fused = getattr(self, f"CT{level}")(features[level - 1], decoder, mask)
            else:
                fused = getattr(self, f"RFM{level}")(features[level - 1], mask)
            refine, out, reduce = _stage(self, level)
            x = out(refine(torch.cat((fused, decoder), dim=1)))
            refined.append(x)
            if reduce is not None:
                decoder = reduce(self.up2(x))
        return FusionOutput(
            logits=self.seg_layer(x),
            aux_logits=tuple(reversed(aux)),
            features=tuple(reversed(refined)),
        )


class SeparateDecoder(nn.Module):
    """U-Net decoder shared by all modalities: one modality's five levels to ``N4HWD`` logits.

    Each stage concatenates the upsampled, reduced coarser map before the skip (the reference's order).
    """

    def __init__(self, channels: Sequence[int]) -> None:
        super().__init__()
        for level in reversed(range(1, len(channels))):
            _add_stage(self, level, channels[level - 1], reduce=True)
        self.seg_layer = nn.Conv3d(channels[0], NUM_CLASSES, 1)
        self.levels = len(channels)
        self.up2 = upsample(2)

    def forward(self, levels: Sequence[Tensor]) -> Tensor:
        x = levels[-1]
        for level in reversed(range(1, self.levels)):
            reduce_name, refine_name, out_name = _stage_names(level)
            x = getattr(self, reduce_name)(self.up2(x))
            x = getattr(self, out_name)(getattr(self, refine_name)(torch.cat((x, levels[level - 1]), dim=1)))
        return self.seg_layer(x)


def _resample_blocks(blocks: Tensor, source: Sequence[int], grid: Sequence[int]) -> Tensor:
    """``1 x PN x C`` token blocks on grid ``source`` to blocks on ``grid`` (trilinear, per block)."""
    count = blocks.shape[1] // (source[0] * source[1] * source[2])
    volumes = tokens_to_volume(blocks.reshape(count, -1, blocks.shape[2]), source)
    resampled = F.interpolate(volumes, size=tuple(grid), mode="trilinear", align_corners=True)
    return volume_to_tokens(resampled).reshape(1, -1, blocks.shape[2])


@register_backbone("m2ftrans")
class M2FTrans(Backbone):
    """M2FTrans with base width ``width`` (reference 8) for ``patch_size`` patches (reference 80).

    The transformer has ``16 * width`` channels, ``32 * 16 * width`` MLP units, 8 heads
    and depth 3; its token grid is ``patch_size / 16`` per edge (5 at 80).
    """

    has_separate_decoder = True
    deep_supervision = ((1, 0.5), (2, 0.25), (4, 0.125), (8, 0.0625), (16, 0.03125))

    def __init__(self, *, width: int = 8, patch_size: int = 80) -> None:
        super().__init__(width=width, patch_size=patch_size)
        channels = [width * 2**level for level in range(_LEVELS)]
        self.grid = (patch_size // self.size_divisor,) * 3
        tokens = self.grid[0] ** 3
        self.pos = nn.Parameter(torch.zeros(1, (NUM_MODALITIES + 1) * tokens, channels[-1]))
        self.fusion = nn.Parameter(torch.randn(1, tokens, channels[-1]))
        for name in MODALITIES:
            self.add_module(f"{name}_encoder", Encoder(channels))
        self.Bottleneck = Bottleneck(channels[-1])
        self.decoder_fusion = FusionDecoder(channels)
        self.decoder_sep = SeparateDecoder(channels)
        for module in self.modules():
            if isinstance(module, nn.Conv3d):
                nn.init.kaiming_normal_(module.weight)

    def encode(self, images: Tensor, modality: int) -> list[Tensor]:
        return getattr(self, f"{MODALITIES[modality]}_encoder")(images)

    def fuse(self, features: Sequence[Tensor], mask: Tensor) -> FusionOutput:
        grid = features[-1].shape[3:]
        position: Tensor = self.pos
        fusion: Tensor = self.fusion
        if tuple(grid) != self.grid:
            position, fusion = (_resample_blocks(blocks, self.grid, grid) for blocks in (self.pos, self.fusion))
        modality_tokens, fusion_volume, weights = self.Bottleneck(features[-1], mask, fusion, position)
        # Spatial-weighted attention: every level's features scaled by the token grid's
        # weights, nearest-upsampled (absent modalities: weight zero).
        weighted = [
            level * F.interpolate(weights, size=level.shape[3:], mode="nearest").unsqueeze(2)
            for level in (*features[:-1], modality_tokens)
        ]
        return self.decoder_fusion(weighted, fusion_volume, mask)

    def separate(self, features: Sequence[Tensor]) -> Tensor:
        return self.decoder_sep(features)
