"""Seconds to evaluate one 128^3 volume over all 15 modality subsets.

Compares the evaluation schedule (each window encoded once, the fusion decoder run once
per subset) with the naive one (the full model per subset and window, absent modalities
zeroed), whose time is measured on one window and extrapolated, and checks on one
subset that both give the same labels and Dice. The reference implementation (RFNet) takes
about 1,140 s on a 2-core CPU machine; the target is at most 450 s.

Usage: python benchmarks/evaluate.py [--backbone rfnet mmformer m2ftrans] [--width 8] [--patch-size 80]
       [--size 128] [--device cpu] [--threads 2] [--check-subset flair] [--quick]
"""

from __future__ import annotations

import argparse
import math
import resource
import time
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import torch
from torch import Tensor

from trainables.backbones import Backbone, backbone_names, build_backbone
from trainables.data.phantom import synthesize_case
from trainables.data.prepare import preprocess_case
from trainables.evaluation.inference import naive_subset_probabilities, predict_all_subsets
from trainables.evaluation.metrics import brats_dice, brats_hd95
from trainables.modalities import REGIONS, SUBSET_MASKS, parse_subset_name

T = TypeVar("T")

REFERENCE_SECONDS = 1140.0
TARGET_SECONDS = 450.0


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", nargs="+", default=["rfnet", "mmformer", "m2ftrans"], choices=backbone_names())
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--patch-size", type=int, default=80)
    parser.add_argument("--size", type=int, default=128, help="edge of the evaluated volume")
    parser.add_argument("--overlap", type=float, default=0.5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--naive-repeats", type=int, default=1, help="timings of the naive window to average")
    parser.add_argument("--check-subset", default="flair", help="subset whose naive labels are compared in full")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="only time one window both ways and extrapolate (minutes, not half an hour)",
    )
    return parser.parse_args()


def _phantom_volume(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A preprocessed phantom case: ``4HWD`` float32 image and ``HWD`` int64 labels, edges ``size``."""
    image, label = synthesize_case(np.random.default_rng(0), (size, size, size))
    vol, seg = preprocess_case(np.moveaxis(image, 0, -1), label, min_size=size)
    return torch.from_numpy(np.moveaxis(vol, -1, 0).copy()), torch.from_numpy(seg.astype(np.int64))


def _window_count(shape: tuple[int, ...], patch_size: int, overlap: float) -> int:
    """Windows MONAI's sliding window visits (per axis: steps of int(patch * (1 - overlap)), last one flush)."""
    step = max(int(patch_size * (1 - overlap)), 1)
    return math.prod(1 if size <= patch_size else math.ceil((size - patch_size) / step) + 1 for size in shape)


def _timed(function: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[T, float]:
    """``function(*args, **kwargs)`` and the seconds it took."""
    start = time.perf_counter()
    value = function(*args, **kwargs)
    return value, time.perf_counter() - start


def _time_ours(model: Backbone, image: Tensor, truth: Tensor, options: dict[str, Any]) -> tuple[Tensor, Tensor]:
    """Labels (``SHWD``) and Dice (``S4``) of all subsets, printing the time of inference, Dice and HD95."""
    labels, inference_s = _timed(predict_all_subsets, model, image, **options)
    (_, dice), dice_s = _timed(brats_dice, labels, truth[None])
    _, hd95_s = _timed(lambda: [brats_hd95(labels[s : s + 1], truth[None]) for s in range(len(labels))])
    ours_s = inference_s + dice_s
    print(
        f"ours:  {ours_s:8.1f} s (inference {inference_s:.1f} s, Dice {dice_s:.1f} s); "
        f"ratio to the RFNet reference's {REFERENCE_SECONDS:.0f} s: {ours_s / REFERENCE_SECONDS:.2f} "
        f"(target <= {TARGET_SECONDS / REFERENCE_SECONDS:.2f}, i.e. {TARGET_SECONDS:.0f} s)"
    )
    print(f"       HD95 of 4 regions x {len(labels)} subsets: {hd95_s:.1f} s more")
    return labels, dice


def _naive_seconds_per_window(model: Backbone, window: Tensor, options: dict[str, Any], repeats: int) -> float:
    """Seconds of the full model on one window for every subset (absent modalities zeroed)."""
    seconds = sum(
        _timed(naive_subset_probabilities, model, window, mask, **options)[1]
        for _ in range(repeats)
        for mask in SUBSET_MASKS
    )
    return seconds / repeats


def _compare_with_naive(
    model: Backbone, image: Tensor, truth: Tensor, labels: Tensor, dice: Tensor, name: str, options: dict[str, Any]
) -> None:
    """Print whether the naive labels and Dice of subset ``name`` equal ours."""
    subset = SUBSET_MASKS.index(parse_subset_name(name))
    naive_labels = naive_subset_probabilities(model, image, SUBSET_MASKS[subset], **options).argmax(dim=0)
    _, naive_dice = brats_dice(naive_labels[None], truth[None])
    differing = int((naive_labels != labels[subset]).sum())
    verdict = "identical" if torch.equal(naive_dice[0], dice[subset]) else "DIFFERENT"
    values = " ".join(
        f"{region} {ours:.6f}/{naive:.6f}" for region, ours, naive in zip(REGIONS, dice[subset], naive_dice[0])
    )
    print(f"check {name}: {differing} voxels differ; Dice ours/naive {verdict}: {values}")


def _evaluate_backbone(args: argparse.Namespace, backbone: str, image: Tensor, truth: Tensor) -> None:
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = build_backbone(backbone, width=args.width, patch_size=args.patch_size).to(device).eval()
    windows = _window_count(tuple(image.shape[1:]), args.patch_size, args.overlap)
    options = {"patch_size": args.patch_size, "overlap": args.overlap, "device": device}
    print(
        f"{backbone} width {args.width}, patch {args.patch_size}, volume {'x'.join(map(str, image.shape[1:]))}, "
        f"{windows} windows x {len(SUBSET_MASKS)} subsets, {device} ({torch.get_num_threads()} threads)"
    )
    corner = image[:, : args.patch_size, : args.patch_size, : args.patch_size]
    naive_subset_probabilities(model, corner, SUBSET_MASKS[-1], **options)  # warm-up

    if not args.quick:
        labels, dice = _time_ours(model, image, truth, options)
    naive_s = _naive_seconds_per_window(model, corner, options, args.naive_repeats) * windows
    ours_s = _timed(predict_all_subsets, model, corner, **options)[1] * windows
    print(
        f"naive: {naive_s:8.1f} s inference (1 window x {len(SUBSET_MASKS)} subsets timed, x {windows} windows); "
        f"ratio to the RFNet reference: {naive_s / REFERENCE_SECONDS:.2f}; ours, timed the same way: {ours_s:.1f} s, "
        f"{naive_s / ours_s:.2f}x faster"
    )
    if not args.quick:
        _compare_with_naive(model, image, truth, labels, dice, args.check_subset, options)
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB")
    if device.type == "cuda":
        print(f"peak CUDA memory {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB")
        torch.cuda.reset_peak_memory_stats(device)


def main() -> None:
    args = _arguments()
    if args.threads:
        torch.set_num_threads(args.threads)
    image, truth = _phantom_volume(args.size)
    for backbone in args.backbone:
        _evaluate_backbone(args, backbone, image, truth)


if __name__ == "__main__":
    main()
