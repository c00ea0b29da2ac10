"""Seconds per training step and peak memory, PASSION on and off, for each backbone.

Width 8, patch 80, batch 1, ``idt``, averaged over the availability masks
flair+t1ce+t2, t1ce+t1 and flair alone (one untimed warm-up step first). A step is what
``passion-sweep train`` runs per batch (``optimisation_step``: loss, gradients, the
reference's zero gradients, AdamW). Each backbone and method runs in its own process so
that its peak resident memory (CPU) or peak allocated GPU memory (CUDA) is its own.

Reference implementations, measured side by side with passion-sweep in one run on a
quiet 2-core CPU machine (PASSION step, peak): RFNet 21.0 s, 15.1 GiB; mmFormer 15.2 s,
9.0 GiB; M2FTrans 19.3 s, 11.4 GiB (the reference computes every modality whatever the
mask, so one figure serves all masks). Baseline steps come from an earlier, slower run
(RFNet 8.7 s, mmFormer 7.7 s, M2FTrans 8.2 s) and overstate the gain. Targets: at most
half the reference time for the PASSION step, with a lower peak (RFNet: at most 6 GiB).

Usage: python benchmarks/train_step.py [--backbone rfnet mmformer m2ftrans] [--width 8]
       [--patch-size 80] [--device cpu|cuda] [--threads 2] [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

from trainables.backbones import backbone_names, build_backbone
from trainables.config import TrainConfig
from trainables.passion import PassionConfig
from trainables.training.step import build_optimizer, optimisation_step

MASKS = {
    "flair+t1ce+t2": (True, True, False, True),
    "t1ce+t1": (False, True, True, False),
    "flair": (True, False, False, False),
}
METHODS = ("passion", "baseline")
# Reference implementations, 2-core CPU, width 8, patch 80: seconds per step, PASSION peak GiB.
# PASSION figures from the same run as passion-sweep's; baseline figures from an earlier one.
REFERENCE = {
    "rfnet": {"passion": 21.0, "baseline": 8.7, "peak_gib": 15.1},
    "mmformer": {"passion": 15.2, "baseline": 7.7, "peak_gib": 9.0},
    "m2ftrans": {"passion": 19.3, "baseline": 8.2, "peak_gib": 11.4},
}
TARGET_SECONDS_RATIO = 0.5
TARGET_PEAK_GIB = {"rfnet": 6.0}  # others: below the reference's peak


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", nargs="+", default=list(REFERENCE), choices=backbone_names())
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--patch-size", type=int, default=80)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=1, help="timed rounds over the three masks")
    parser.add_argument("--measure", nargs=2, metavar=("BACKBONE", "METHOD"), help=argparse.SUPPRESS)
    return parser.parse_args()


def _measure(args: argparse.Namespace, backbone: str, method: str) -> dict[str, float]:
    """Time steps of one backbone and method in this process; return seconds per step and peak GiB."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    model = build_backbone(backbone, width=args.width, patch_size=args.patch_size).to(device).train()
    train = TrainConfig()
    optimizer = build_optimizer(model, train)
    config = PassionConfig(enabled=method == "passion")
    size = args.patch_size

    def step(mask_values: tuple[bool, ...]) -> float:
        mask = torch.tensor([mask_values], device=device)
        images = torch.randn(1, 4, size, size, size, device=device) * mask[..., None, None, None]
        labels = torch.randint(0, 4, (1, size, size, size), device=device)
        _synchronize(device)
        started = time.perf_counter()
        optimisation_step(
            model,
            optimizer,
            images,
            labels,
            mask,
            train=train,
            passion=config,
            beta=torch.ones(4),
            modality_weights=torch.ones(4),
            warmup=False,
        )
        _synchronize(device)
        return time.perf_counter() - started

    step(MASKS["flair+t1ce+t2"])  # warm-up
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    seconds = [step(mask) for _ in range(args.repeats) for mask in MASKS.values()]
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) / 2**30
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return {"seconds": sum(seconds) / len(seconds), "peak_gib": peak, "per_mask": seconds[: len(MASKS)]}


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _run(backbone: str, method: str) -> dict[str, float]:
    command = [sys.executable, __file__, *sys.argv[1:], "--measure", backbone, method]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def _verdict(backbone: str, results: dict[str, dict[str, float]]) -> str:
    reference = REFERENCE[backbone]
    passion = results["passion"]
    ratio = passion["seconds"] / reference["passion"]
    peak_limit = TARGET_PEAK_GIB.get(backbone, reference["peak_gib"])
    time_ok = ratio <= TARGET_SECONDS_RATIO
    peak_ok = passion["peak_gib"] <= peak_limit if backbone in TARGET_PEAK_GIB else passion["peak_gib"] < peak_limit
    return (
        f"  vs reference: PASSION {ratio:.2f} of {reference['passion']} s (target <= {TARGET_SECONDS_RATIO}: "
        f"{'met' if time_ok else 'MISSED'}), peak {passion['peak_gib']:.1f} GiB vs {reference['peak_gib']} GiB "
        f"(target {'<=' if backbone in TARGET_PEAK_GIB else '<'} {peak_limit}: {'met' if peak_ok else 'MISSED'}), "
        f"baseline {results['baseline']['seconds'] / reference['baseline']:.2f} of {reference['baseline']} s "
        "(earlier, slower reference run)"
    )


def main() -> None:
    args = _arguments()
    if args.measure:
        print(json.dumps(_measure(args, *args.measure)))
        return
    memory = "peak GPU memory allocated" if args.device.startswith("cuda") else "peak RSS"
    comparable = args.device == "cpu" and args.width == 8 and args.patch_size == 80
    print(
        f"width {args.width}, patch {args.patch_size}^3, batch 1, idt, device {args.device}, "
        f"{args.threads} threads; masks: {', '.join(MASKS)}"
    )
    for backbone in args.backbone:
        results = {method: _run(backbone, method) for method in METHODS}
        print(f"{backbone}:")
        for method, result in results.items():
            per_mask = ", ".join(f"{name} {value:.2f}s" for name, value in zip(MASKS, result["per_mask"], strict=True))
            print(f"  {method:>8}: {result['seconds']:.2f} s/step ({per_mask}), {memory} {result['peak_gib']:.2f} GiB")
        print(f"  PASSION / baseline step time: {results['passion']['seconds'] / results['baseline']['seconds']:.2f}")
        if comparable:
            print(_verdict(backbone, results))


if __name__ == "__main__":
    main()
