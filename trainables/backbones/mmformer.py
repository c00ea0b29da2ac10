"""mmFormer (Zhang et al., MICCAI 2022) as the PASSION reference implementation computes it.

One five-level pre-norm convolutional encoder per modality (widths ``w, 2w, 4w, 8w,
16w``); each modality's bottleneck goes through a 1x1 conv to the transformer
dimension and that modality's intra-modal transformer; an inter-modal transformer
over the tokens of all four modalities; a fusion decoder with deep supervision at
1/2, 1/4, 1/8 and 1/16 of the input; and one separate decoder shared by all
modalities, on the raw encoder levels. The transformer dimension scales with the
width (``64 w``: 512 at the reference width 8, an MLP of ``8 x`` that, 8 heads, depth
1); the token grid is the patch size divided by 16 (5^3 at 80^3).

Reference behaviour kept on purpose (it defines the published numbers):

- Absent modalities are zeroed, not removed: their intra-modal tokens enter the
  inter-modal attention as zeros plus their positional embedding, and every token
  attends to them. A single-modality student therefore attends over 500 tokens.
- The mixed tokens go back to a volume by a plain reshape of the modality-major
  token sequence, which interleaves the modalities' tokens over the voxels.

The one deliberate difference: the reference builds the T2 student's bottleneck
with the T1 mask (``masks_mod2``); here every student uses its own modality's mask.
Parameter names and order are the reference's (see ``mmformer_blocks``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from trainables.backbones.base import Backbone, FusionOutput, register_backbone
from trainables.backbones.blocks import init_conv_weights
from trainables.backbones.layers import mask_modalities
from trainables.backbones.mmformer_blocks import Encoder, FusionDecoder, SeparateDecoder, TokenTransformer
from trainables.backbones.transformer import resample_tokens, tokens_to_volume, volume_to_tokens
from trainables.modalities import MODALITIES, NUM_MODALITIES

__all__ = ["MMFormer"]

_LEVELS = 5
_DIM_PER_WIDTH = 64  # transformer dimension per unit of width: 512 at width 8
_MLP_RATIO = 8  # MLP hidden units per transformer dimension: 4096 at width 8
_HEADS = 8
_DEPTH = 1
_DROPOUT = 0.1  # the reference's, in attention and MLP


@register_backbone("mmformer")
class MMFormer(Backbone):
    """mmFormer with base width ``width`` (reference 8) for ``patch_size`` patches (reference 80).

    :meth:`encode` returns the five encoder levels followed by the intra-modal
    transformer's output (``N x 64w x`` the token grid): the separate decoder reads
    the former, the fusion decoder the four finer levels and the latter.
    """

    has_separate_decoder = True
    # Heads at 1/2, 1/4, 1/8 and 1/16 of the input, weights 1/2 .. 1/16 (the reference's).
    deep_supervision = ((2, 0.5), (4, 0.25), (8, 0.125), (16, 0.0625))

    def __init__(self, *, width: int = 8, patch_size: int = 80) -> None:
        super().__init__(width=width, patch_size=patch_size)
        channels = [width * 2**level for level in range(_LEVELS)]
        dim = _DIM_PER_WIDTH * width
        self.grid = (patch_size // self.size_divisor,) * 3
        # One positional embedding per modality, shared by its intra-modal and the inter-modal transformer.
        for name in MODALITIES:
            self.register_parameter(f"{name}_pos", nn.Parameter(torch.zeros(1, math.prod(self.grid), dim)))
        for name in MODALITIES:
            self.add_module(f"{name}_encoder", Encoder(channels))
        for name in MODALITIES:
            self.add_module(f"{name}_encode_conv", nn.Conv3d(channels[-1], dim, 1))
        for name in MODALITIES:
            self.add_module(f"{name}_transformer", self._transformer(dim))
        self.multimodal_transformer = self._transformer(dim)
        self.multimodal_decode_conv = nn.Conv3d(NUM_MODALITIES * dim, NUM_MODALITIES * channels[-1], 1)
        self.decoder_fuse = FusionDecoder(channels)
        self.decoder_sep = SeparateDecoder(channels)
        init_conv_weights(self)

    @staticmethod
    def _transformer(dim: int) -> TokenTransformer:
        return TokenTransformer(dim, depth=_DEPTH, heads=_HEADS, mlp_dim=_MLP_RATIO * dim, dropout=_DROPOUT)

    def _position(self, modality: int, grid: Sequence[int]) -> Tensor:
        """Modality ``modality``'s positional embedding, ``1LC``, resampled trilinearly to another ``grid``.

        The resampling lets a model trained on one patch size run on inputs of another.
        """
        return resample_tokens(getattr(self, f"{MODALITIES[modality]}_pos"), self.grid, grid)

    def encode(self, images: Tensor, modality: int) -> list[Tensor]:
        name = MODALITIES[modality]
        levels = getattr(self, f"{name}_encoder")(images)
        bottleneck = getattr(self, f"{name}_encode_conv")(levels[-1])
        grid = bottleneck.shape[2:]
        tokens = getattr(self, f"{name}_transformer")(volume_to_tokens(bottleneck), self._position(modality, grid))
        return [*levels, tokens_to_volume(tokens, grid)]

    def fuse(self, features: Sequence[Tensor], mask: Tensor) -> FusionOutput:
        skips = [mask_modalities(level, mask).flatten(1, 2) for level in features[: _LEVELS - 1]]
        return self.decoder_fuse(skips, self._inter_modal(mask_modalities(features[-1], mask)))

    def separate(self, features: Sequence[Tensor]) -> Tensor:
        return self.decoder_sep(features[:_LEVELS])

    def _inter_modal(self, intra: Tensor) -> Tensor:
        """Mix the modalities' tokens and map them back to encoder channels.

        Args:
            intra: ``BKCHWD`` intra-modal transformer outputs, zero for absent modalities.

        Returns:
            ``B(K*C_5)HWD``, the input of the fusion decoder's deepest level.
        """
        batch, modalities, dim, *grid = intra.shape
        tokens = intra.flatten(3).transpose(2, 3).flatten(1, 2)  # B (K L) C, modality-major
        position = torch.cat([self._position(modality, grid) for modality in range(modalities)], dim=1)
        mixed = self.multimodal_transformer(tokens, position)
        # The reference reads the K*L tokens back as L voxels of K*C channels (a reshape, no
        # transpose): voxel v gets tokens K*v .. K*v + K-1, whatever modality and place they came from.
        volume = mixed.reshape(batch, -1, modalities * dim).transpose(1, 2).reshape(batch, modalities * dim, *grid)
        return self.multimodal_decode_conv(volume)
