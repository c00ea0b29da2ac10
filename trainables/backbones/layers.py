"""Building blocks shared by the convolutional backbones."""
from __future__ import annotations

from torch import Tensor, nn

__all__ = ["ConvNormAct", "upsample", "mask_modalities"]


class ConvNormAct(nn.Sequential):
    """Conv3d -> InstanceNorm3d -> LeakyReLU(0.2), RFNet's ``general_conv3d``.

    Args:
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: 3 (reflect-padded) or 1.
        stride: 1, or 2 to halve the resolution.
    """

    def __init__(self, in_channels: int, out_channels: int, *, kernel_size: int = 3, stride: int = 1) -> None:
        super().__init__(
            nn.Conv3d(
                in_channels,
                out_channels,
                kernel_size,
                stride=stride,
                padding=kernel_size // 2,
                padding_mode="reflect" if kernel_size > 1 else "zeros",
            ),
            nn.InstanceNorm3d(out_channels),
            nn.LeakyReLU(negative_slope=0.2, inplace=True),
        )


def upsample(scale: int) -> nn.Upsample:
    """Trilinear upsampling with ``align_corners=True`` (the reference's choice)."""
    return nn.Upsample(scale_factor=scale, mode="trilinear", align_corners=True)


def mask_modalities(features: Tensor, mask: Tensor) -> Tensor:
    """Zero the features of absent modalities.

    Args:
        features: ``BKC...`` per-modality features.
        mask: ``BK`` bool presence mask.
    """
    shape = (*mask.shape, *([1] * (features.dim() - mask.dim())))
    return features * mask.reshape(shape).to(features.dtype)
