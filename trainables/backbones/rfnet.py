"""RFNet (Ding et al., ICCV 2021): region-aware fusion of per-modality encoders.

Four modality encoders (one per MRI modality, four levels), a fusion decoder that at
every level predicts region probability maps (PRMs) from the present modalities and
fuses the modalities region by region, and one separate decoder shared by all
modalities. Channel widths ``w, 2w, 4w, 8w`` from finest to coarsest.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from trainables.backbones.base import Backbone, FusionOutput, register_backbone
from trainables.backbones.blocks import ModalityEncoder, SeparateDecoder, init_conv_weights
from trainables.backbones.layers import ConvNormAct, mask_modalities, upsample
from trainables.modalities import MODALITIES, NUM_CLASSES, NUM_MODALITIES

__all__ = ["RFNet"]

_PRM_HIDDEN = 16  # channels of the PRM head, fixed in the published model
_WEIGHT_HIDDEN = 128  # hidden units of the per-region modality weighting


class RegionProbabilityHead(nn.Module):
    """Predicts region logits from the masked modality features of one level.

    At the coarsest level it sees only the modality features; at the others also the
    decoder feature coming from the coarser level.
    """

    def __init__(self, channels: int, *, with_decoder_input: bool) -> None:
        super().__init__()
        self.embed = nn.Sequential(
            ConvNormAct(NUM_MODALITIES * channels, channels // 4, kernel_size=1),
            ConvNormAct(channels // 4, channels // 4),
            ConvNormAct(channels // 4, channels, kernel_size=1),
        )
        head_in = 2 * channels if with_decoder_input else channels
        self.head = nn.Sequential(
            ConvNormAct(head_in, _PRM_HIDDEN, kernel_size=1), nn.Conv3d(_PRM_HIDDEN, NUM_CLASSES, 1)
        )

    def forward(self, stacked: Tensor, decoder: Tensor | None) -> Tensor:
        x = self.embed(stacked)
        if decoder is not None:
            x = torch.cat((decoder, x), dim=1)
        return self.head(x)


class RegionAwareFusion(nn.Module):
    """Fuses the modalities region by region, weighted by a learned per-region score.

    For region ``r`` with probability map ``p_r`` the published model multiplies every
    modality's features by ``p_r``, pools them to a per-modality weight ``s_rk`` and
    sums ``s_rk * p_r * y_k`` over modalities. This computes the same values as
    ``p_r * sum_k s_rk y_k`` with the pooling as one contraction, so the
    ``B x K x regions x C x HWD`` product is never materialised.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        # 1x1x1 convolutions on the pooled scores, as the reference (its kaiming-normal
        # init and parameter shapes, so that reference weights load unchanged).
        self.weighting = nn.ModuleList(
            nn.Sequential(
                nn.Conv3d(NUM_MODALITIES * channels + 1, _WEIGHT_HIDDEN, 1),
                nn.LeakyReLU(negative_slope=0.2, inplace=True),
                nn.Conv3d(_WEIGHT_HIDDEN, NUM_MODALITIES, 1),
            )
            for _ in range(NUM_CLASSES)
        )
        self.region_fusion = nn.Sequential(
            ConvNormAct(NUM_CLASSES * channels, channels, kernel_size=1),
            ConvNormAct(channels, channels),
            ConvNormAct(channels, channels // 2, kernel_size=1),
        )
        self.shortcut = nn.Sequential(
            ConvNormAct(NUM_MODALITIES * channels, channels, kernel_size=1),
            ConvNormAct(channels, channels),
            ConvNormAct(channels, channels // 2, kernel_size=1),
        )

    def forward(self, masked: Tensor, region_probs: Tensor) -> Tensor:
        """Args: masked ``BKCHWD`` features (absent modalities zero); region_probs ``B4HWD``."""
        batch, modalities, channels = masked.shape[:3]
        spatial = masked.shape[3:]
        probs = region_probs.flatten(2)  # B R S
        prob_mean = probs.mean(dim=2) + 1e-7  # B R
        pooled = torch.einsum("bkcs,brs->brkc", masked.flatten(3), probs) / probs.shape[2]
        pooled = pooled / prob_mean[:, :, None, None]
        scores = torch.cat((pooled.flatten(2), prob_mean.unsqueeze(2)), dim=2)[..., None, None, None]
        weights = torch.stack(
            [torch.sigmoid(weighting(scores[:, region])).flatten(1) for region, weighting in enumerate(self.weighting)],
            dim=1,
        )  # B R K
        regions = torch.einsum("brk,bkc...->brc...", weights, masked).mul_(region_probs.unsqueeze(2))
        flat = masked.reshape(batch, modalities * channels, *spatial)
        return torch.cat((self.region_fusion(regions.flatten(1, 2)), self.shortcut(flat)), dim=1)


class FusionDecoder(nn.Module):
    """RFNet's fusion decoder: PRM + region-aware fusion at every level, coarse to fine."""

    def __init__(self, channels: Sequence[int]) -> None:
        super().__init__()
        levels = range(len(channels))
        self.prm_heads = nn.ModuleList(
            RegionProbabilityHead(channels[level], with_decoder_input=level < len(channels) - 1) for level in levels
        )
        self.fusions = nn.ModuleList(RegionAwareFusion(channels[level]) for level in levels)
        self.reduce = nn.ModuleList(
            nn.Sequential(upsample(2), ConvNormAct(channels[level + 1], channels[level])) for level in levels[:-1]
        )
        self.refine = nn.ModuleList(
            nn.Sequential(
                ConvNormAct(2 * channels[level], channels[level]),
                ConvNormAct(channels[level], channels[level], kernel_size=1),
            )
            for level in levels[:-1]
        )
        self.head = nn.Conv3d(channels[0], NUM_CLASSES, 1)

    def forward(self, features: Sequence[Tensor], mask: Tensor) -> FusionOutput:
        aux: list[Tensor] = []
        decoded: list[Tensor] = []
        x: Tensor | None = None
        for level in reversed(range(len(features))):
            masked = mask_modalities(features[level], mask)
            stacked = masked.flatten(1, 2)
            decoder_in = None if x is None else self.reduce[level](x)
            region_logits = self.prm_heads[level](stacked, decoder_in)
            fused = self.fusions[level](masked, torch.softmax(region_logits, dim=1).detach())
            x = fused if decoder_in is None else self.refine[level](torch.cat((fused, decoder_in), dim=1))
            aux.append(region_logits)
            decoded.append(x)
        return FusionOutput(logits=self.head(x), aux_logits=tuple(reversed(aux)), features=tuple(reversed(decoded)))


@register_backbone("rfnet")
class RFNet(Backbone):
    """RFNet with base width ``width`` (reference 8) for ``patch_size`` patches (reference 80)."""

    has_separate_decoder = True
    # PRM logits at 1, 1/2, 1/4, 1/8 of the input, weights 1/2 .. 1/16 (the reference's).
    deep_supervision = ((1, 0.5), (2, 0.25), (4, 0.125), (8, 0.0625))

    def __init__(self, *, width: int = 8, patch_size: int = 80) -> None:
        super().__init__(width=width, patch_size=patch_size)
        channels = [width * 2**level for level in range(4)]
        self.encoders = nn.ModuleList(ModalityEncoder(channels) for _ in range(NUM_MODALITIES))
        self.fusion_decoder = FusionDecoder(channels)
        self.separate_decoder = SeparateDecoder(channels)
        init_conv_weights(self)

    @classmethod
    def reference_name_to_ours(cls, name: str) -> str:
        module, _, leaf = name.rpartition(".")
        ours = _reference_modules().get(module)
        if ours is None:
            raise KeyError(name)
        return f"{ours}.{leaf}"

    def encode(self, images: Tensor, modality: int) -> list[Tensor]:
        return self.encoders[modality](images)

    def fuse(self, features: Sequence[Tensor], mask: Tensor) -> FusionOutput:
        return self.fusion_decoder(features, mask)

    def separate(self, features: Sequence[Tensor]) -> Tensor:
        return self.separate_decoder(features)


@functools.cache
def _reference_modules() -> dict[str, str]:
    """Module paths of the reference RFNet (``models/rfnet.py``, levels 1-based) mapped to this one's."""
    modules = {"decoder_fuse.seg_layer": "fusion_decoder.head", "decoder_sep.seg_layer": "separate_decoder.head"}
    for level in range(4):
        ref = level + 1
        for modality, name in enumerate(MODALITIES):
            ours = f"encoders.{modality}.levels.{level}"
            modules[f"{name}_encoder.e{ref}_c1.conv"] = f"{ours}.entry.0"
            modules[f"{name}_encoder.e{ref}_c2.conv"] = f"{ours}.body.0.0"
            modules[f"{name}_encoder.e{ref}_c3.conv"] = f"{ours}.body.1.0"
        if level < 3:  # decoder stages: d<ref>_c1 reduces the coarser map, d<ref>_c2 and d<ref>_out refine
            stages = {
                "decoder_sep": (f"separate_decoder.stages.{level}.reduce", f"separate_decoder.stages.{level}.refine"),
                "decoder_fuse": (f"fusion_decoder.reduce.{level}", f"fusion_decoder.refine.{level}"),
            }
            for decoder, (reduce, refine) in stages.items():
                modules[f"{decoder}.d{ref}_c1.conv"] = f"{reduce}.1.0"
                modules[f"{decoder}.d{ref}_c2.conv"] = f"{refine}.0.0"
                modules[f"{decoder}.d{ref}_out.conv"] = f"{refine}.1.0"
        rfm, fusion = f"decoder_fuse.RFM{ref}", f"fusion_decoder.fusions.{level}"
        prm, head = f"decoder_fuse.prm_generator{ref}", f"fusion_decoder.prm_heads.{level}"
        for region in range(NUM_CLASSES):
            for layer in (0, 2):
                modules[f"{rfm}.modal_fusion.{region}.weight_layer.{layer}"] = f"{fusion}.weighting.{region}.{layer}"
        for layer in range(3):
            modules[f"{rfm}.region_fusion.fusion_layer.{layer}.conv"] = f"{fusion}.region_fusion.{layer}.0"
            modules[f"{rfm}.short_cut.{layer}.conv"] = f"{fusion}.shortcut.{layer}.0"
            modules[f"{prm}.embedding_layer.{layer}.conv"] = f"{head}.embed.{layer}.0"
        modules[f"{prm}.prm_layer.0.conv"] = f"{head}.head.0.0"
        modules[f"{prm}.prm_layer.1"] = f"{head}.head.1"
    return modules
