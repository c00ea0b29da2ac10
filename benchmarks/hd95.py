"""Seconds of HD95 (4 regions) for the 15 subset predictions of one 128^3 volume.

The truth is a preprocessed phantom case; the 15 "predictions" are that truth shifted by
0-2 voxels, with scattered false-positive voxels all over the volume (0.01 % to 0.15 %
of the voxels, a different rate per subset) and, for every third, a missed lesion: the
hard case for HD95, whose masks' bounding box then spans the whole volume. Times
``brats_hd95`` with each ``hd95_percentile``, and MONAI's ``compute_hausdorff_distance``
(what passion-sweep computed before it matched the reference) on the same masks, each
three times interleaved, and prints the best of each in CPU seconds of this process
(torch on one thread): on a shared machine, wall-clock times measure the neighbours.

Usage: python benchmarks/hd95.py [--size 128] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch
from monai.metrics import compute_hausdorff_distance

from trainables.data.phantom import synthesize_case
from trainables.data.prepare import preprocess_case
from trainables.evaluation.metrics import brats_hd95, region_masks

SUBSETS = 15


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128, help="edge of the volume")
    parser.add_argument("--repeats", type=int, default=3)
    return parser.parse_args()


def _cases(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``HWD`` truth labels and ``SHWD`` predictions (see the module docstring)."""
    image, label = synthesize_case(np.random.default_rng(0), (size, size, size))
    _, truth = preprocess_case(np.moveaxis(image, 0, -1), label, min_size=size)
    rng = np.random.default_rng(1)
    predictions = []
    for subset in range(SUBSETS):
        prediction = np.roll(truth, (subset % 3, -(subset % 2), 0), axis=(0, 1, 2))
        noise = rng.random(truth.shape) < 1e-4 * (subset + 1)
        prediction[noise] = rng.integers(1, 4, int(noise.sum()))
        if subset % 3 == 0:
            prediction[prediction == 1] = 2  # the necrotic core missed
        predictions.append(prediction)
    return torch.from_numpy(truth.astype(np.int64)), torch.from_numpy(np.stack(predictions).astype(np.int64))


def _monai(predictions: torch.Tensor, truth: torch.Tensor) -> None:
    """MONAI's HD95 of the four regions of every prediction (both masks non-empty here)."""
    true = region_masks(truth[None])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # MONAI passes a deprecated argument internally
        for subset in range(len(predictions)):
            pred = region_masks(predictions[subset : subset + 1])
            compute_hausdorff_distance(pred, true, include_background=True, percentile=95)


def main() -> None:
    args = _arguments()
    torch.set_num_threads(1)
    truth, predictions = _cases(args.size)
    runs = {
        "pooled (default, medpy)": lambda: [brats_hd95(p[None], truth[None]) for p in predictions],
        "max_directed": lambda: [brats_hd95(p[None], truth[None], percentile="max_directed") for p in predictions],
        "MONAI compute_hausdorff_distance (before)": lambda: _monai(predictions, truth),
    }
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(args.repeats):
        for name, run in runs.items():
            started = time.process_time()
            run()
            best[name] = min(best[name], time.process_time() - started)
    size = "x".join(map(str, truth.shape))
    print(f"HD95 of 4 regions x {SUBSETS} subsets, volume {size}, CPU seconds, best of {args.repeats}:")
    for name, seconds in best.items():
        print(f"  {name:45s} {seconds:6.2f} s")


if __name__ == "__main__":
    main()
