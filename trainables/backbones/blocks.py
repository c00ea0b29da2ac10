"""Convolutional blocks the backbones share: residual encoder levels, the per-modality
encoder, U-Net decoder stages and the separate decoder (RFNet's design, reused by
mmFormer and M2FTrans as in their reference implementations), and the per-modality
encoder with mmFormer's and M2FTrans' parameter names."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from trainables.backbones.layers import ConvNormAct, upsample
from trainables.modalities import NUM_CLASSES

__all__ = ["FlatEncoder", "ResidualLevel", "ModalityEncoder", "UpStage", "SeparateDecoder", "init_conv_weights"]


def init_conv_weights(model: nn.Module) -> None:
    """He (Kaiming) normal initialisation of every 3D conv's weights, as the reference backbones."""
    for module in model.modules():
        if isinstance(module, nn.Conv3d):
            nn.init.kaiming_normal_(module.weight)


class ResidualLevel(nn.Module):
    """One encoder level: an (optionally strided) entry conv and two residual convs."""

    def __init__(self, in_channels: int, out_channels: int, *, stride: int) -> None:
        super().__init__()
        self.entry = ConvNormAct(in_channels, out_channels, stride=stride)
        self.body = nn.Sequential(ConvNormAct(out_channels, out_channels), ConvNormAct(out_channels, out_channels))

    def forward(self, x: Tensor) -> Tensor:
        x = self.entry(x)
        return x + self.body(x)


class ModalityEncoder(nn.Module):
    """Encoder of one modality: ``N1HWD`` to four levels, finest first."""

    def __init__(self, channels: Sequence[int]) -> None:
        super().__init__()
        inputs = (1, *channels[:-1])
        self.levels = nn.ModuleList(
            ResidualLevel(cin, cout, stride=1 if index == 0 else 2)
            for index, (cin, cout) in enumerate(zip(inputs, channels))
        )

    def forward(self, x: Tensor) -> list[Tensor]:
        outputs = []
        for level in self.levels:
            x = level(x)
            outputs.append(x)
        return outputs


class FlatEncoder(nn.Module):
    """Encoder of one modality with its convs named as mmFormer's and M2FTrans' references do.

    Level ``l`` is ``x = e{l}_c1(previous)`` (on the image at level 1, strided after),
    then ``x + e{l}_c3(e{l}_c2(x))``; the convs are attributes of the encoder itself, so
    that the references' parameter names (``e1_c1.conv.weight`` ...) load. Subclasses
    choose the convs.
    """

    def __init__(self, channels: Sequence[int]) -> None:
        super().__init__()
        self.depth = len(channels)
        for level, (cin, cout) in enumerate(zip((1, *channels[:-1]), channels), start=1):
            self.add_module(f"e{level}_c1", self._entry(level, cin, cout))
            self.add_module(f"e{level}_c2", self._block(cout))
            self.add_module(f"e{level}_c3", self._block(cout))

    def _entry(self, level: int, in_channels: int, out_channels: int) -> nn.Module:
        """``e{level}_c1``: takes the previous level's map (the image at level 1) to this level's size."""
        raise NotImplementedError

    def _block(self, channels: int) -> nn.Module:
        """``e{l}_c2`` and ``e{l}_c3``: a size-keeping conv of the residual branch."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> list[Tensor]:
        """``N1HWD`` to one map per level, finest first."""
        levels = []
        for level in range(1, self.depth + 1):
            x = getattr(self, f"e{level}_c1")(x)
            x = x + getattr(self, f"e{level}_c3")(getattr(self, f"e{level}_c2")(x))
            levels.append(x)
        return levels


class UpStage(nn.Module):
    """Decoder stage: upsample the coarser map, reduce it, concatenate the skip after it, refine.

    The order of the concatenation (reduced coarse map first) is the reference's, so that
    its weights load unchanged.
    """

    def __init__(self, coarse_channels: int, channels: int) -> None:
        super().__init__()
        self.reduce = nn.Sequential(upsample(2), ConvNormAct(coarse_channels, channels))
        self.refine = nn.Sequential(ConvNormAct(2 * channels, channels), ConvNormAct(channels, channels, kernel_size=1))

    def forward(self, coarse: Tensor, skip: Tensor) -> Tensor:
        return self.refine(torch.cat((self.reduce(coarse), skip), dim=1))


class SeparateDecoder(nn.Module):
    """U-Net decoder shared by all modalities: one modality's four levels to ``N4HWD`` logits."""

    def __init__(self, channels: Sequence[int]) -> None:
        super().__init__()
        self.stages = nn.ModuleList(UpStage(channels[level + 1], channels[level]) for level in range(len(channels) - 1))
        self.head = nn.Conv3d(channels[0], NUM_CLASSES, 1)

    def forward(self, levels: Sequence[Tensor]) -> Tensor:
        x = levels[-1]
        for level in reversed(range(len(self.stages))):
            x = self.stages[level](x, levels[level])
        return self.head(x)
