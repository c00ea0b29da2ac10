"""A tiny backbone honouring the PASSION contract, for fast evaluation tests.

Per-modality encoders at two levels (full size and 1/8); the fusion decoder sums the
features of the present modalities at each level, upsamples the coarse sum, adds a
window-wide mean (so that, as in RFNet, a window's output depends on the whole
window) and maps to four logits. Its output depends only on present modalities.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional

from trainables.backbones import Backbone, FusionOutput
from trainables.modalities import NUM_CLASSES, NUM_MODALITIES


class ToyBackbone(Backbone):
    """Two-level toy backbone; ``width`` channels per level."""

    deep_supervision = ((1, 0.5), (2, 0.25), (4, 0.125), (8, 0.0625))

    def __init__(self, *, width: int = 4, patch_size: int = 16) -> None:
        super().__init__(width=width, patch_size=patch_size)
        self.fine = nn.ModuleList(nn.Conv3d(1, width, 3, padding=1) for _ in range(NUM_MODALITIES))
        self.coarse = nn.ModuleList(nn.Conv3d(width, width, 1) for _ in range(NUM_MODALITIES))
        self.head = nn.Conv3d(width, NUM_CLASSES, 1)

    def encode(self, images: Tensor, modality: int) -> list[Tensor]:
        fine = torch.tanh(self.fine[modality](images))
        coarse = torch.tanh(self.coarse[modality](functional.avg_pool3d(fine, self.size_divisor)))
        return [fine, coarse]

    def fuse(self, features: Sequence[Tensor], mask: Tensor) -> FusionOutput:
        weights = mask.to(features[0].dtype).reshape(*mask.shape, 1, 1, 1, 1)
        fine, coarse = ((level * weights).sum(dim=1) for level in features)
        upsampled = functional.interpolate(coarse, scale_factor=self.size_divisor, mode="nearest")
        fused = fine + upsampled + fine.mean(dim=(2, 3, 4), keepdim=True)
        logits = self.head(fused)
        aux = tuple(functional.avg_pool3d(logits, 2**level) if level else logits for level in range(4))
        return FusionOutput(logits=logits, aux_logits=aux, features=(fused,))
