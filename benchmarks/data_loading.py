"""Training patches per second of ``TrainingDataset`` (augmentation on, idt masks).

Makes a phantom in a temporary folder (8 cases of 160^3, prepared: about 128^3 to
140^3 per case), then times a DataLoader (batch 1) for 80^3 and 128^3 patches with 0
and 2 worker processes. Target: at least 20 patches/s at 80^3 with 2 workers. Wall-clock
rates depend on what else runs on the machine, so the CPU time of one patch made in
this process with one thread is printed too (1000 / ms = patches/s one free core gives).

    python benchmarks/data_loading.py [--cases 8] [--shape 160] [--patches 40]
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from trainables.data import (
    TrainingDataset,
    parse_missing_rates,
    prepare_dataset,
    read_split_csv,
    split_cases,
    synthesize_dataset,
    write_missing_rate_split,
)


def patches_per_second(dataset: TrainingDataset, workers: int, patches: int) -> float:
    """Patches per second after the first batches (worker start-up) are served."""
    loader = DataLoader(dataset, batch_size=1, shuffle=True, num_workers=workers, persistent_workers=workers > 0)
    batches = itertools.chain.from_iterable(itertools.repeat(loader))
    for _ in range(max(2, 2 * workers)):
        next(batches)
    start = time.perf_counter()
    for _ in range(patches):
        next(batches)
    return patches / (time.perf_counter() - start)


def cpu_ms_per_patch(dataset: TrainingDataset, patches: int) -> float:
    """CPU milliseconds per patch in this process with one torch thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        dataset[0]
        start = time.process_time()
        for index in range(patches):
            dataset[index % len(dataset)]
        return 1000 * (time.process_time() - start) / patches
    finally:
        torch.set_num_threads(threads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--shape", type=int, default=160, help="edge of the cubic phantom volumes")
    parser.add_argument("--patches", type=int, default=40, help="patches timed per setting")
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        raw, data = Path(folder) / "raw", Path(folder) / "data"
        start = time.perf_counter()
        synthesize_dataset(raw, cases=args.cases, shape=(args.shape,) * 3, seed=0)
        rows = prepare_dataset(raw, data, workers=2, progress=False)
        split_cases(data, test=0.0, val=0.0)
        write_missing_rate_split(data, data / "mr2468.csv", rates=parse_missing_rates("mr2468"))
        shapes = sorted({"x".join(map(str, row.shape)) for row in rows})
        seconds = time.perf_counter() - start
        print(f"phantom: {args.cases} cases of {args.shape}^3, prepared to {', '.join(shapes)} in {seconds:.1f} s")
        split = read_split_csv(data / "mr2468.csv")
        print(f"{'patch':>6} {'workers':>8} {'patches/s':>10}")
        for patch_size in (80, 128):
            dataset = TrainingDataset(data, split.names, patch_size=patch_size, mask_type="idt", split=split)
            for workers in (0, 2):
                rate = patches_per_second(dataset, workers, args.patches)
                print(f"{patch_size:>5}^3 {workers:>8} {rate:>10.1f}")
            print(f"{patch_size:>5}^3: {cpu_ms_per_patch(dataset, args.patches):.1f} CPU ms per patch (one thread)")


if __name__ == "__main__":
    main()
