"""mmFormer (Zhang et al., MICCAI 2022): convolutional encoders with transformers at the bottleneck.

One five-level convolutional encoder per modality (widths ``w, 2w, 4w, 8w, 16w``)
whose bottleneck goes through that modality's intra-modal transformer; an inter-modal
transformer over the tokens of the present modalities; a convolutional fusion decoder
with deep supervision; and one auxiliary ("separate") decoder shared by all modalities,
on the raw encoder levels. The transformer dimension scales with the width
(``64 w``: 512 at the reference width 8, with an MLP of ``8 x`` that, 8 heads, depth
1); the token grid is the patch size divided by 16 (5^3 at 80^3).

Differences from the reference implementation, on purpose:

- Absent modalities are excluded from the inter-modal attention by a mask; the
  reference zeroes their tokens but still lets every token attend to them, so that
  a single-modality student still depends on what the others' tokens become.
- The mixed tokens go back to a volume modality by modality; the reference's reshape
  interleaves the four modalities' tokens over the voxels.
- Deep supervision at 1, 1/2, 1/4 and 1/8 of the input (the backbone contract); the
  finest is the final prediction itself, so the reference's 1/16 head is dropped.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from trainables.backbones.base import Backbone, FusionOutput, register_backbone
from trainables.backbones.blocks import ModalityEncoder, SeparateDecoder, UpStage, init_conv_weights
from trainables.backbones.layers import ConvNormAct, mask_modalities
from trainables.backbones.transformer import (
    LearnedPositionalEmbedding,
    Transformer,
    key_attention_mask,
    tokens_to_volume,
    volume_to_tokens,
)
from trainables.modalities import NUM_CLASSES, NUM_MODALITIES

__all__ = ["MMFormer"]

_LEVELS = 5
_DIM_PER_WIDTH = 64  # transformer dimension per unit of width: 512 at width 8
_MLP_RATIO = 8  # MLP hidden units per transformer dimension: 4096 at width 8
_HEADS = 8
_DEPTH = 1
_DROPOUT = 0.1  # the reference's, in attention and MLP


def _transformer(dim: int) -> Transformer:
    return Transformer(dim, depth=_DEPTH, heads=_HEADS, mlp_dim=_MLP_RATIO * dim, dropout=_DROPOUT)


class IntraModalTransformer(nn.Module):
    """One modality's bottleneck: 1x1 conv to the transformer dimension, then self-attention over its tokens."""

    def __init__(self, channels: int, dim: int) -> None:
        super().__init__()
        self.embed = nn.Conv3d(channels, dim, 1)
        self.transformer = _transformer(dim)

    def forward(self, bottleneck: Tensor, position: Tensor) -> Tensor:
        """Args: bottleneck ``NCHWD``; position ``LC`` (``L = HWD``). Returns ``N dim HWD``."""
        tokens = self.transformer(volume_to_tokens(self.embed(bottleneck)), position)
        return tokens_to_volume(tokens, bottleneck.shape[2:])


class InterModalTransformer(nn.Module):
    """Self-attention over the tokens of the present modalities, then a 1x1 conv back to encoder channels.

    Each sample's sequence holds its present modalities first, padded to the largest
    number present in the batch; padding is masked out of the attention and zeroed in
    the output. A batch of single-modality students thus attends over ``L`` tokens,
    not ``K * L``. A sample without modalities gets the output of all-zero tokens.
    """

    def __init__(self, dim: int, channels: int) -> None:
        super().__init__()
        self.transformer = _transformer(dim)
        self.project = nn.Conv3d(NUM_MODALITIES * dim, NUM_MODALITIES * channels, 1)

    def forward(self, intra: Tensor, mask: Tensor, position: Tensor) -> Tensor:
        """Mix the modalities' tokens.

        Args:
            intra: ``BKCHWD`` intra-modal transformer outputs (``C`` the transformer dimension).
            mask: ``BK`` bool, the modalities that take part.
            position: ``KLC`` positional embeddings of the modalities' tokens.

        Returns:
            ``B (K * channels) HWD``, a function of the present modalities only.
        """
        batch, modalities, dim = intra.shape[:3]
        grid = intra.shape[3:]
        # Masked keys still enter the attention scores (then get zero weight): zero them first.
        tokens = mask_modalities(intra, mask).flatten(3).transpose(2, 3)  # B K L C
        length = tokens.shape[2]
        slots = max(int(mask.sum(dim=1).max()), 1)
        chosen = torch.argsort((~mask).to(torch.uint8), dim=1, stable=True)[:, :slots]  # present first
        valid = mask.gather(1, chosen)
        # A query that may attend to nothing would be NaN, and NaN times zero is still NaN.
        keys = valid | ~valid.any(dim=1, keepdim=True)
        rows = torch.arange(batch, device=intra.device)[:, None]
        mixed = self.transformer(
            tokens[rows, chosen].flatten(1, 2),
            position[chosen].flatten(1, 2),
            key_attention_mask(keys.repeat_interleave(length, dim=1)),
        ).unflatten(1, (slots, length))
        mixed = mixed * valid[:, :, None, None].to(mixed.dtype)
        scattered = tokens.new_zeros(tokens.shape).index_put((rows, chosen), mixed)
        return self.project(scattered.transpose(2, 3).reshape(batch, modalities * dim, *grid))


class ModalityFusion(nn.Sequential):
    """Fuses the stacked modality features of one level: 1x1 conv ``K*C -> C``, 3x3 conv, 1x1 conv."""

    def __init__(self, in_channels: int, channels: int) -> None:
        super().__init__(
            ConvNormAct(in_channels, channels, kernel_size=1),
            ConvNormAct(channels, channels),
            ConvNormAct(channels, channels, kernel_size=1),
        )


class FusionDecoder(nn.Module):
    """Inter-modal transformer at the bottleneck, then a U-Net decoder over the fused skip levels."""

    def __init__(self, channels: Sequence[int], dim: int) -> None:
        super().__init__()
        self.inter_modal = InterModalTransformer(dim, channels[-1])
        self.fusions = nn.ModuleList(ModalityFusion(NUM_MODALITIES * c, c) for c in channels)
        self.stages = nn.ModuleList(UpStage(channels[level + 1], channels[level]) for level in range(len(channels) - 1))
        self.head = nn.Conv3d(channels[0], NUM_CLASSES, 1)
        self.aux_heads = nn.ModuleList(nn.Conv3d(c, NUM_CLASSES, 1) for c in channels[1:4])

    def forward(self, skips: Sequence[Tensor], intra: Tensor, mask: Tensor, position: Tensor) -> FusionOutput:
        """Args: skips the ``BKC_l...`` encoder levels but the bottleneck, finest first; intra, mask,
        position as :meth:`InterModalTransformer.forward`."""
        x = self.fusions[-1](self.inter_modal(intra, mask, position))
        decoded = [x]
        for level in reversed(range(len(skips))):
            fused = self.fusions[level](mask_modalities(skips[level], mask).flatten(1, 2))
            x = self.stages[level](x, fused)
            decoded.append(x)
        decoded.reverse()
        logits = self.head(decoded[0])
        aux = (logits, *(head(feature) for head, feature in zip(self.aux_heads, decoded[1:4])))
        return FusionOutput(logits=logits, aux_logits=aux, features=tuple(decoded))


@register_backbone("mmformer")
class MMFormer(Backbone):
    """mmFormer with base width ``width`` (reference 8) for ``patch_size`` patches (reference 80).

    :meth:`encode` returns the five encoder levels followed by the intra-modal
    transformer's output (``N x 64w x`` the token grid): the separate decoder reads
    the former, the fusion decoder the skip levels and the latter.
    """

    has_separate_decoder = True
    # The final logits again, then heads at 1/2, 1/4, 1/8 (not yet the reference's 1/2 .. 1/16).
    deep_supervision = ((1, 0.5), (2, 0.25), (4, 0.125), (8, 0.0625))

    def __init__(self, *, width: int = 8, patch_size: int = 80) -> None:
        super().__init__(width=width, patch_size=patch_size)
        channels = [width * 2**level for level in range(_LEVELS)]
        dim = _DIM_PER_WIDTH * width
        self.encoders = nn.ModuleList(ModalityEncoder(channels) for _ in range(NUM_MODALITIES))
        self.intra_modal = nn.ModuleList(IntraModalTransformer(channels[-1], dim) for _ in range(NUM_MODALITIES))
        # One embedding per modality, shared by its intra-modal and the inter-modal transformer (as the reference).
        self.position = LearnedPositionalEmbedding(patch_size // self.size_divisor, dim, count=NUM_MODALITIES)
        self.fusion_decoder = FusionDecoder(channels, dim)
        self.separate_decoder = SeparateDecoder(channels)
        init_conv_weights(self)

    def encode(self, images: Tensor, modality: int) -> list[Tensor]:
        levels = self.encoders[modality](images)
        bottleneck = levels[-1]
        intra = self.intra_modal[modality](bottleneck, self.position(bottleneck.shape[2:])[modality])
        return [*levels, intra]

    def fuse(self, features: Sequence[Tensor], mask: Tensor) -> FusionOutput:
        intra = features[-1]
        return self.fusion_decoder(features[: _LEVELS - 1], intra, mask, self.position(intra.shape[3:]))

    def separate(self, features: Sequence[Tensor]) -> Tensor:
        return self.separate_decoder(features[:_LEVELS])
