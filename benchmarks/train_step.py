"""Seconds per training step and peak memory, PASSION on and off.

RFNet at width 8, patch 80, batch 1, ``idt``, averaged over the availability masks
flair+t1ce+t2, t1ce+t1 and flair alone (one untimed warm-up step first). Each method
runs in its own process so that its peak resident memory (CPU) or peak allocated GPU
memory (CUDA) is its own. Reference implementation on a 2-core CPU machine: 31 s per
PASSION step with a 15 GiB peak, 8.7 s per baseline step. Target: at most half the
time and at most 6 GiB for the PASSION step.

Usage: python benchmarks/train_step.py [--backbone rfnet] [--width 8] [--patch-size 80]
       [--device cpu|cuda] [--threads 2] [--repeats 1]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

from trainables.backbones import build_backbone
from trainables.passion import PassionConfig, training_step

MASKS = {"flair+t1ce+t2": (True, True, False, True), "t1ce+t1": (False, True, True, False), "flair": (True, False, False, False)}
REFERENCE = {"passion": {"seconds": 31.0, "peak_gib": 15.0}, "baseline": {"seconds": 8.7, "peak_gib": None}}
TARGET = {"seconds_ratio": 0.5, "peak_gib": 6.0}


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="rfnet")
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--patch-size", type=int, default=80)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=1, help="timed rounds over the three masks")
    parser.add_argument("--method", choices=("passion", "baseline"), help=argparse.SUPPRESS)
    return parser.parse_args()


def _measure(args: argparse.Namespace) -> dict[str, float]:
    """Time steps of one method in this process; return seconds per step and peak GiB."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = torch.device(args.device)
    model = build_backbone(args.backbone, width=args.width, patch_size=args.patch_size).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-4, weight_decay=1e-4, amsgrad=True)
    config = PassionConfig(enabled=args.method == "passion")
    size = args.patch_size

    def step(mask_values: tuple[bool, ...]) -> float:
        mask = torch.tensor([mask_values], device=device)
        images = torch.randn(1, 4, size, size, size, device=device) * mask[..., None, None, None]
        labels = torch.randint(0, 4, (1, size, size, size), device=device)
        _synchronize(device)
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        training_step(
            model, images, labels, fusion_mask=mask, counted=mask, beta=torch.ones(4),
            modality_weights=torch.ones(4), config=config, warmup=False,
        )
        optimizer.step()
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


def _run_method(method: str) -> dict[str, float]:
    command = [sys.executable, __file__, *sys.argv[1:], "--method", method]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    args = _arguments()
    if args.method:
        print(json.dumps(_measure(args)))
        return
    memory = "peak GPU memory allocated" if args.device.startswith("cuda") else "peak RSS"
    print(f"{args.backbone} width {args.width}, patch {args.patch_size}^3, batch 1, idt, device {args.device}, "
          f"{args.threads} threads; masks: {', '.join(MASKS)}")
    results = {method: _run_method(method) for method in ("passion", "baseline")}
    for method, result in results.items():
        per_mask = ", ".join(f"{name} {value:.2f}s" for name, value in zip(MASKS, result["per_mask"]))
        line = f"{method:>8}: {result['seconds']:.2f} s/step ({per_mask}), {memory} {result['peak_gib']:.2f} GiB"
        reference = REFERENCE[method]
        if args.device == "cpu" and args.width == 8 and args.patch_size == 80 and args.backbone == "rfnet":
            line += f"; vs reference {reference['seconds']} s: ratio {result['seconds'] / reference['seconds']:.2f}"
            if reference["peak_gib"]:
                line += f", memory ratio {result['peak_gib'] / reference['peak_gib']:.2f}"
        print(line)
    passion = results["passion"]
    print(f"PASSION / baseline step time: {passion['seconds'] / results['baseline']['seconds']:.2f}")
    print(f"target: PASSION step <= {TARGET['seconds_ratio'] * REFERENCE['passion']['seconds']:.1f} s and <= {TARGET['peak_gib']} GiB (CPU)")


if __name__ == "__main__":
    main()
