"""Sliding-window inference of whole volumes for every modality subset.

The evaluation protocol runs, for each of the 15 modality subsets, the model over the
volume with the absent modalities zeroed: windows of the patch size with 50% overlap,
softmax averaged over overlaps, argmax (:func:`naive_subset_probabilities`).

:func:`subset_probabilities` computes the same values with one encoder pass per window
instead of one per window and subset: a modality's encoder sees only that modality,
so its features do not depend on which other modalities are present, and the fusion
decoder ignores the features of absent modalities. Each window is therefore encoded
once with every modality present and then fused once per subset.

Shapes: ``K`` modalities (4), ``S`` subsets, ``HWD`` the volume.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from monai.inferers import sliding_window_inference
from torch import Tensor

from trainables.backbones import Backbone
from trainables.errors import ConfigError, DataError
from trainables.modalities import NUM_MODALITIES, SUBSET_MASKS, subset_id

__all__ = ["subset_probabilities", "predict_all_subsets", "naive_subset_probabilities"]

Predictor = Callable[[Tensor], Tensor]


@torch.inference_mode()
def subset_probabilities(
    model: Backbone,
    image: Tensor,
    *,
    patch_size: int,
    overlap: float = 0.5,
    subsets: Sequence[Sequence[bool]] = SUBSET_MASKS,
    sw_batch_size: int = 1,
    subset_batch_size: int = 1,
    device: str | torch.device | None = None,
) -> Tensor:
    """Sliding-window softmax of every subset, encoding each window once.

    Args:
        model: backbone in eval mode.
        image: ``KHWD`` float volume, modalities in ``MODALITIES`` order. Axes shorter
            than the patch are zero-padded for inference and cropped back.
        patch_size: window edge, a multiple of ``model.size_divisor``.
        overlap: fraction of a window shared with its neighbour along each axis.
        subsets: presence masks to evaluate (default: the 15 subsets in id order).
        sw_batch_size: windows per encoder call.
        subset_batch_size: subsets per fusion-decoder call. 1 reproduces the naive
            computation bit for bit; more can be faster on a GPU, costs memory, and
            may change probabilities in the last float bits (batched kernels).
        device: where the model runs (default: where its parameters are).

    Returns:
        ``S4HWD`` float32 probabilities on the CPU, subsets in the order given.

    Raises:
        ConfigError: for a bad patch size, overlap or batch size.
        DataError: if ``image`` is not ``KHWD``.
    """
    masks = _subset_mask_tensor(subsets)
    if subset_batch_size < 1:
        raise ConfigError(f"subset_batch_size must be >= 1, got {subset_batch_size}")
    device = _model_device(model, device)
    probabilities = _sliding_window(
        _encode_once_predictor(model, masks.to(device), subset_batch_size),
        image,
        model=model,
        patch_size=patch_size,
        overlap=overlap,
        sw_batch_size=sw_batch_size,
        device=device,
    )
    return probabilities.reshape(len(masks), -1, *image.shape[1:])


def predict_all_subsets(
    model: Backbone,
    image: Tensor,
    *,
    patch_size: int,
    overlap: float = 0.5,
    subsets: Sequence[Sequence[bool]] = SUBSET_MASKS,
    sw_batch_size: int = 1,
    subset_batch_size: int = 1,
    device: str | torch.device | None = None,
) -> Tensor:
    """Label maps of every subset: the argmax of :func:`subset_probabilities`.

    Args: as :func:`subset_probabilities`.

    Returns:
        ``SHWD`` uint8 labels (0..3) on the CPU.
    """
    probabilities = subset_probabilities(
        model,
        image,
        patch_size=patch_size,
        overlap=overlap,
        subsets=subsets,
        sw_batch_size=sw_batch_size,
        subset_batch_size=subset_batch_size,
        device=device,
    )
    return probabilities.argmax(dim=1).to(torch.uint8)


@torch.inference_mode()
def naive_subset_probabilities(
    model: Backbone,
    image: Tensor,
    mask: Sequence[bool],
    *,
    patch_size: int,
    overlap: float = 0.5,
    sw_batch_size: int = 1,
    device: str | torch.device | None = None,
) -> Tensor:
    """Sliding-window softmax of one subset, the full model on the volume with absent modalities zeroed.

    This is the evaluation protocol computed literally; :func:`subset_probabilities`
    must equal it. It serves as the reference in tests and benchmarks.

    Args:
        model: backbone in eval mode.
        image: ``KHWD`` float volume.
        mask: presence mask in ``MODALITIES`` order.
        patch_size, overlap, sw_batch_size, device: as :func:`subset_probabilities`.

    Returns:
        ``4HWD`` float32 probabilities on the CPU.
    """
    device = _model_device(model, device)
    present = _subset_mask_tensor([mask]).to(device)
    zeroed = image * present[0].reshape(NUM_MODALITIES, 1, 1, 1).to(device=image.device, dtype=image.dtype)

    def predict(windows: Tensor) -> Tensor:
        return torch.softmax(model(windows, present.expand(windows.shape[0], -1)), dim=1)

    return _sliding_window(
        predict, zeroed, model=model, patch_size=patch_size, overlap=overlap, sw_batch_size=sw_batch_size, device=device
    )


def _encode_once_predictor(model: Backbone, masks: Tensor, subset_batch_size: int) -> Predictor:
    """Predictor mapping ``N K hwd`` windows to ``N (S*4) hwd`` softmax, subset-major channels."""

    def predict(windows: Tensor) -> Tensor:
        count = windows.shape[0]
        everything = torch.ones(count, NUM_MODALITIES, dtype=torch.bool, device=windows.device)
        features = model.encode_present(windows, everything)
        chunks = []
        for chunk in masks.split(subset_batch_size):
            # Batch row w * len(chunk) + s pairs window w with subset s of the chunk.
            repeated = [level.repeat_interleave(len(chunk), dim=0) for level in features]
            logits = model.fuse(repeated, chunk.repeat(count, 1)).logits
            chunks.append(torch.softmax(logits, dim=1).reshape(count, -1, *logits.shape[2:]))
        return torch.cat(chunks, dim=1)

    return predict


def _sliding_window(
    predictor: Predictor,
    image: Tensor,
    *,
    model: Backbone,
    patch_size: int,
    overlap: float,
    sw_batch_size: int,
    device: torch.device,
) -> Tensor:
    """Run ``predictor`` over ``image`` (``KHWD``) in windows; returns ``CHWD`` on the CPU.

    MONAI's constant blend mode sums the window outputs and divides by the number of
    windows covering each voxel, i.e. averages the softmax over overlaps. Window
    starts are multiples of ``int(patch_size * (1 - overlap))`` plus a last window
    flush with the far edge (0, 40, 48 for 128 voxels and patch 80, as the reference).
    """
    if image.dim() != 4 or image.shape[0] != NUM_MODALITIES:
        raise DataError(f"a volume must be {NUM_MODALITIES} x H x W x D, got shape {tuple(image.shape)}")
    model.check_patch_size(patch_size)
    if not 0 <= overlap < 1:
        raise ConfigError(f"overlap must be >= 0 and < 1, got {overlap}")
    if sw_batch_size < 1:
        raise ConfigError(f"sw_batch_size must be >= 1, got {sw_batch_size}")
    output = sliding_window_inference(
        image[None].to(device=device, dtype=torch.float32),
        roi_size=patch_size,
        sw_batch_size=sw_batch_size,
        predictor=predictor,
        overlap=overlap,
        mode="constant",
        padding_mode="constant",
        cval=0.0,
    )
    return output[0].cpu()


def _subset_mask_tensor(subsets: Sequence[Sequence[bool]]) -> Tensor:
    """``SK`` bool tensor of presence masks (each validated by :func:`subset_id`)."""
    if not subsets:
        raise ConfigError("subsets must name at least one modality subset")
    for mask in subsets:
        try:
            subset_id(mask)
        except ValueError as error:
            raise ConfigError(f"bad subset: {error}") from None
    return torch.tensor([[bool(present) for present in mask] for mask in subsets], dtype=torch.bool)


def _model_device(model: Backbone, device: str | torch.device | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    return next(model.parameters()).device
