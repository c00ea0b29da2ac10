"""Trials per GPU-hour of a Table 1 trial when 1, 2, 4 or 8 trials share a GPU, and evaluation vs inference.

Training: for each backbone, P processes (P = each ``--packing``) run at the same time,
each as one sweep trial with ``resources.trials_per_gpu: P`` (its CUDA memory capped to
1/P of the GPU): a PASSION step (``optimisation_step``, idt, batch 1, the masks
flair+t1ce+t2, t1ce+t1 and flair in turn) after warm-up steps, ``--steps`` times, all
starting together. Printed per packing: seconds per step of each trial, the GPU's steps
per second together, trials per GPU-hour (a Table 1 trial is 300 epochs of 219 steps),
the ratio to one trial per GPU, GPU utilisation while they ran (NVML, or nvidia-smi)
and each trial's peak memory; then the projected GPU-hours of experiments/table1.yaml
(training steps only: validation and the final evaluation are left out).

Evaluation (``--eval``): ``--eval-cases`` phantom volumes of ``--eval-size``^3, all 15
subsets: inference alone, then ``evaluate_model`` with HD95 in this process and with
``--hd95-workers`` processes beside inference; seconds per volume and the ratio to
inference.

Targets (issue 17, an H100-class GPU): at least 3x the trials per GPU-hour of one
unpacked fp32 trial, GPU utilisation above 80 %, evaluation of a 128^3 volume over the 15
subsets within 1.2x its inference time. Reference: one unpacked fp32 trial per H100
(README): RFNet 0.27 s per step, 3.5 GiB peak; mmFormer 0.19 s; M2FTrans 0.43 s.

Without CUDA it runs a tiny configuration (width 4, patch 32, 2 steps, packing 1 and 2,
two 32^3 volumes) and says that its numbers are not GPU numbers.

Usage: python benchmarks/gpu_throughput.py [--backbone rfnet mmformer m2ftrans]
       [--packing 1 2 4 8] [--steps 30] [--precision fp32|bf16|fp16-amp] [--cudnn-benchmark]
       [--width 8] [--patch-size 80] [--threads 2] [--eval] [--eval-size 128] [--eval-cases 3]
       [--hd95-workers 4]
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import queue
import resource
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from passion_sweep.sweep.search_space import grid_cells
from passion_sweep.sweep.spec import load_spec
from trainables.backbones import build_backbone
from trainables.config import PRECISIONS, TrainConfig
from trainables.data import PHANTOM_NORMALIZATION, prepare_dataset, synthesize_dataset
from trainables.data.datasets import VolumeDataset
from trainables.evaluation.evaluate import evaluate_model
from trainables.evaluation.inference import predict_all_subsets
from trainables.passion import PassionConfig
from trainables.training.precision import build_precision
from trainables.training.step import build_optimizer, optimisation_step

MASKS = ((True, True, False, True), (False, True, True, False), (True, False, False, False))
TABLE1 = Path(__file__).parents[1] / "experiments" / "table1.yaml"
TRAIN_CASES = 219  # the reference's BraTS2020 training list: steps per epoch at batch 1
REFERENCE_SECONDS = {"rfnet": 0.27, "mmformer": 0.19, "m2ftrans": 0.43}  # one fp32 trial per H100
TARGET_GAIN, TARGET_UTILISATION, TARGET_EVAL_RATIO = 3.0, 80.0, 1.2
START_TIMEOUT_S = 900  # model building and warm-up of the slowest trial


def _arguments() -> argparse.Namespace:
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", nargs="+", default=list(REFERENCE_SECONDS))
    parser.add_argument("--packing", nargs="+", type=int, default=[1, 2, 4, 8] if cuda else [1, 2])
    parser.add_argument("--steps", type=int, default=30 if cuda else 2, help="timed steps per trial")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32")
    parser.add_argument("--cudnn-benchmark", action="store_true")
    parser.add_argument("--width", type=int, default=8 if cuda else 4)
    parser.add_argument("--patch-size", type=int, default=80 if cuda else 32)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads per trial")
    parser.add_argument("--eval", action="store_true", help="also time evaluation against inference")
    parser.add_argument("--eval-size", type=int, default=128 if cuda else 32)
    parser.add_argument("--eval-cases", type=int, default=3 if cuda else 2)
    parser.add_argument("--hd95-workers", type=int, default=4 if cuda else 1)
    args = parser.parse_args()
    args.device = "cuda" if cuda else "cpu"
    return args


def _trial(backbone: str, packing: int, args: argparse.Namespace, barrier: Any, results: Any) -> None:
    """One trial's steps, in its own process; puts seconds per step and peak GiB on ``results``."""
    try:
        torch.set_num_threads(args.threads)
        device = torch.device(args.device)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = args.cudnn_benchmark
            if packing > 1:
                torch.cuda.set_per_process_memory_fraction(1 / packing)  # as a sweep trial with trials_per_gpu
        torch.manual_seed(0)
        model = build_backbone(backbone, width=args.width, patch_size=args.patch_size).to(device).train()
        train = TrainConfig(precision=args.precision)
        optimizer = build_optimizer(model, train)
        precision = build_precision(args.precision, device)
        size = args.patch_size
        batches = []
        for values in MASKS:
            mask = torch.tensor([values], device=device)
            images = torch.randn(1, 4, size, size, size, device=device) * mask[..., None, None, None]
            batches.append((images, torch.randint(0, 4, (1, size, size, size), device=device), mask))

        def step(index: int) -> None:
            images, labels, mask = batches[index % len(batches)]
            optimisation_step(
                model,
                optimizer,
                images,
                labels,
                mask,
                train=train,
                passion=PassionConfig(),
                beta=torch.ones(4),
                modality_weights=torch.ones(4),
                warmup=False,
                precision=precision,
            )

        for index in range(len(batches)):  # warm-up: every mask once (and cuDNN's autotuning)
            step(index)
        _synchronize(device)
        barrier.wait(timeout=START_TIMEOUT_S)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        started = time.perf_counter()
        for index in range(args.steps):
            step(index)
        _synchronize(device)
        seconds = (time.perf_counter() - started) / args.steps
        if device.type == "cuda":
            peak = torch.cuda.max_memory_allocated(device) / 2**30
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        results.put({"seconds": seconds, "peak_gib": peak})
    except Exception as error:  # reported by the parent: one line, e.g. running out of the memory share
        barrier.abort()
        results.put({"error": f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"})


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _utilisation() -> float | None:
    """The GPU's current utilisation in percent (NVML through torch, else nvidia-smi); None if neither answers."""
    try:
        return float(torch.cuda.utilization(0))
    except Exception:  # no pynvml
        pass
    try:
        query = ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits", "-i", "0"]
        return float(subprocess.run(query, capture_output=True, text=True, timeout=5, check=True).stdout.strip())
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def _packed(backbone: str, packing: int, args: argparse.Namespace) -> dict[str, Any]:
    """Run ``packing`` trials at once; their results and the mean GPU utilisation while they ran."""
    context = multiprocessing.get_context("spawn")  # CUDA cannot be used in forked children
    barrier, results = context.Barrier(packing + 1), context.Queue()
    processes = [
        context.Process(target=_trial, args=(backbone, packing, args, barrier, results)) for _ in range(packing)
    ]
    for process in processes:
        process.start()
    samples: list[float] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            value = _utilisation() if args.device == "cuda" else None
            if value is not None:
                samples.append(value)

    outcomes = []
    try:
        barrier.wait(timeout=START_TIMEOUT_S)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        outcomes = [results.get(timeout=START_TIMEOUT_S) for _ in processes]
        done.set()
        sampler.join()
    except threading.BrokenBarrierError:
        outcomes = [results.get(timeout=5) for _ in processes if not results.empty()] or [{"error": "a trial failed"}]
    except queue.Empty:
        outcomes = [{"error": "a trial did not finish in time"}]
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    errors = [outcome["error"] for outcome in outcomes if "error" in outcome]
    return {
        "error": errors[0] if errors else None,
        "trials": [outcome for outcome in outcomes if "error" not in outcome],
        "utilisation": sum(samples) / len(samples) if samples else None,
    }


def _table1_trials() -> tuple[dict[str, int], int]:
    """Trials per backbone in experiments/table1.yaml and the steps of one trial."""
    spec = load_spec(TABLE1)
    trials: dict[str, int] = {}
    for cell in grid_cells(spec):
        backbone = str(cell.values.get("backbone", spec.model.get("backbone", "rfnet")))
        trials[backbone] = trials.get(backbone, 0) + cell.trials
    epochs, batch = int(spec.train["epochs"]), int(spec.train["batch_size"])
    return trials, epochs * math.ceil(TRAIN_CASES / batch)


def _training(args: argparse.Namespace) -> None:
    trials, steps_per_trial = _table1_trials()
    print(
        f"training: PASSION step, width {args.width}, patch {args.patch_size}^3, batch 1, {args.precision}, "
        f"{args.steps} timed steps per trial, {args.threads} CPU threads per trial; "
        f"a Table 1 trial = {steps_per_trial} steps"
    )
    projected: dict[int, float] = {}
    for backbone in args.backbone:
        print(f"{backbone}:")
        single: float | None = None
        for packing in args.packing:
            outcome = _packed(backbone, packing, args)
            if outcome["error"]:
                print(f"  {packing} per GPU: failed: {outcome['error']}")
                continue
            seconds = [trial["seconds"] for trial in outcome["trials"]]
            steps_per_second = sum(1 / value for value in seconds)
            per_hour = steps_per_second * 3600 / steps_per_trial
            if packing == 1:
                single = per_hour
            gain = "" if single is None else f" ({per_hour / single:.2f}x one per GPU; target >= {TARGET_GAIN:g}x)"
            utilisation = outcome["utilisation"]
            projected[packing] = projected.get(packing, 0.0) + trials.get(backbone, 0) / per_hour
            print(
                f"  {packing} per GPU: {np.mean(seconds):.3f} s/step per trial (max {max(seconds):.3f}), "
                f"{steps_per_second:.2f} steps/s, {per_hour:.3f} trials per GPU-hour{gain}, "
                f"GPU utilisation {'n/a' if utilisation is None else f'{utilisation:.0f} %'} "
                f"(target > {TARGET_UTILISATION:g} %), peak {max(t['peak_gib'] for t in outcome['trials']):.2f} GiB "
                "per trial"
            )
        if backbone in REFERENCE_SECONDS and args.device == "cuda":
            print(f"  reference: {REFERENCE_SECONDS[backbone]} s/step, one fp32 trial per H100 (README)")
    for packing, hours in projected.items():
        complete = all(backbone in args.backbone for backbone in trials)
        print(
            f"experiments/table1.yaml at {packing} per GPU: {hours:.0f} GPU-hours of training steps"
            f"{'' if complete else ' (backbones measured only)'}"
        )


def _evaluation(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="gpu-throughput-"))
    try:
        size = (args.eval_size,) * 3
        synthesize_dataset(folder / "raw", cases=args.eval_cases, shape=size, seed=0)
        prepare_dataset(folder / "raw", folder / "data", progress=False, normalization=PHANTOM_NORMALIZATION)
        cases = sorted(path.name.removesuffix("_vol.npy") for path in (folder / "data" / "vol").glob("*_vol.npy"))
        torch.set_num_threads(args.threads)
        torch.manual_seed(0)
        device = torch.device(args.device)
        model = build_backbone("rfnet", width=args.width, patch_size=args.patch_size).to(device).eval()
        dataset = VolumeDataset(folder / "data", cases)
        started = time.perf_counter()
        for index in range(len(dataset)):
            predict_all_subsets(model, dataset[index]["image"], patch_size=args.patch_size)
        _synchronize(device)
        inference = (time.perf_counter() - started) / len(cases)
        print(f"evaluation: RFNet width {args.width}, {len(cases)} volumes of {args.eval_size}^3, 15 subsets each")
        print(f"  inference alone: {inference:.2f} s per volume")
        for workers in (0, args.hd95_workers):
            started = time.perf_counter()
            evaluate_model(
                model, folder / "data", cases, patch_size=args.patch_size, progress=False, hd95_workers=workers
            )
            seconds = (time.perf_counter() - started) / len(cases)
            where = "after each case in this process" if workers == 0 else f"in {workers} processes beside inference"
            print(
                f"  evaluation, HD95 {where}: {seconds:.2f} s per volume, {seconds / inference:.2f}x inference "
                f"(target <= {TARGET_EVAL_RATIO:g}x)"
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    args = _arguments()
    if args.device == "cpu":
        print("NO CUDA GPU: a tiny configuration on the CPU. These are NOT GPU numbers; they check the script.")
    else:
        print(f"GPU: {torch.cuda.get_device_name(0)}")
    _training(args)
    if args.eval:
        _evaluation(args)


if __name__ == "__main__":
    main()
