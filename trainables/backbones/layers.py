"""Building blocks shared by the convolutional backbones."""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor, nn

__all__ = [
    "ConvNormAct",
    "InstanceNormLeakyReLU",
    "PaddingMode",
    "conv3d",
    "instance_norm_leaky_relu",
    "mask_modalities",
    "upsample",
]

PaddingMode = Literal["zeros", "reflect", "replicate", "circular"]

_NEGATIVE_SLOPE = 0.2
_NORM_EPS = 1e-5  # nn.InstanceNorm3d's default


class _InstanceNormLeakyReLU(torch.autograd.Function):
    """InstanceNorm (no affine) followed by LeakyReLU, keeping only the output for backward.

    The stock modules save both the conv output (for the norm) and the normalised map
    (for the activation). The activation is invertible, so the normalised map can be
    recovered from the output: this halves the activation memory of every conv block.
    """

    @staticmethod
    def forward(ctx: Any, x: Tensor, slope: float, eps: float) -> Tensor:
        spatial = tuple(range(2, x.dim()))
        variance, mean = torch.var_mean(x, dim=spatial, keepdim=True, correction=0)
        inv_std = torch.rsqrt(variance + eps)
        y = (x - mean).mul_(inv_std)
        y = torch.nn.functional.leaky_relu_(y, slope)
        ctx.slope = slope
        ctx.save_for_backward(y, inv_std)
        return y

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        # Few passes over the (large) maps, in place where possible: this runs after every conv.
        y, inv_std = ctx.saved_tensors
        voxels = y[0, 0].numel()
        grad_normalised = torch.ops.aten.leaky_relu_backward(grad, y, ctx.slope, True)
        normalised = torch.nn.functional.leaky_relu(y, 1 / ctx.slope)  # the activation's inverse
        mean_grad = grad_normalised.mean(dim=tuple(range(2, y.dim())), keepdim=True)
        # grad_normalised * normalised equals grad * y: the activation's slopes cancel.
        mean_grad_normalised = torch.einsum("ncs,ncs->nc", grad.flatten(2), y.flatten(2)).div_(voxels)
        grad_x = grad_normalised.sub_(mean_grad).addcmul_(normalised, mean_grad_normalised.view_as(mean_grad), value=-1)
        return grad_x.mul_(inv_std), None, None


def instance_norm_leaky_relu(x: Tensor, *, slope: float = _NEGATIVE_SLOPE, eps: float = _NORM_EPS) -> Tensor:
    """``leaky_relu(instance_norm(x), slope)`` for ``NC...`` input, memory-lean in training."""
    if torch.is_grad_enabled() and x.requires_grad:
        return _InstanceNormLeakyReLU.apply(x, slope, eps)
    x = torch.nn.functional.instance_norm(x, eps=eps)
    return torch.nn.functional.leaky_relu_(x, slope)


class InstanceNormLeakyReLU(nn.Module):
    """Module form of :func:`instance_norm_leaky_relu` (no parameters, like ``InstanceNorm3d``)."""

    def forward(self, x: Tensor) -> Tensor:
        return instance_norm_leaky_relu(x)


def conv3d(
    in_channels: int,
    out_channels: int,
    *,
    kernel_size: int = 3,
    stride: int = 1,
    padding_mode: PaddingMode = "reflect",
) -> nn.Conv3d:
    """The reference backbones' conv: a 3x3 keeps the size (``padding_mode``-padded by one
    voxel, before any stride), a 1x1 has no padding.
    """
    return nn.Conv3d(
        in_channels,
        out_channels,
        kernel_size,
        stride=stride,
        padding=kernel_size // 2,
        padding_mode=padding_mode if kernel_size > 1 else "zeros",
    )


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
            conv3d(in_channels, out_channels, kernel_size=kernel_size, stride=stride), InstanceNormLeakyReLU()
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
