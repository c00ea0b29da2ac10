"""Does it learn? Train on the phantom for a few CPU minutes, evaluate all 15 subsets.

Generates (or reuses) a phantom data set, trains one configuration with
``trainables.training.fit`` and evaluates the held-out cases over every modality
subset. Prints the full-modality Dice (target: WT >= 0.7) and the ET Dice of the
subsets with and without T1ce (expected: much better with T1ce).

Usage: python benchmarks/phantom_learning.py [--out DIR] [--epochs 40] [--method passion]
       [--set train.lr=1e-3 ...]
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import torch

from passion_sweep.phantom import ensure_phantom
from trainables.config import RunConfig
from trainables.data import parse_missing_rates, read_case_list, write_missing_rate_split
from trainables.evaluation.evaluate import evaluate_model, write_evaluation
from trainables.methods.registry import method_names
from trainables.modalities import MODALITIES
from trainables.training.loop import fit


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="work folder (default: a temporary one)")
    parser.add_argument("--cases", type=int, default=16)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--method", choices=method_names(), default="passion")
    parser.add_argument("--split", default="mr2468", help="missing-rate code for idt / idt_drop")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="config override")
    return parser.parse_args()


def main() -> None:
    args = _arguments()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    work = args.out or Path(tempfile.mkdtemp(prefix="phantom-learning-"))
    data = ensure_phantom(work / "data", cases=args.cases, shape=(args.size,) * 3, seed=0)
    split = work / f"{args.split}.csv"
    if not split.exists():
        write_missing_rate_split(data, split, rates=parse_missing_rates(args.split))
    config = RunConfig().with_overrides(
        [
            f"data.root={data}",
            f"data.split={split}",
            "model.width=4",
            "model.patch_size=32",
            f"train.epochs={args.epochs}",
            "train.lr=5e-3",  # a short run needs a larger step than the reference's 2e-4
            "train.augment=false",
            "train.num_workers=1",
            f"train.val_every={args.epochs}",
            f"method.name={args.method}",
            *args.overrides,
        ]
    )
    started = time.monotonic()
    model = fit(config, work / f"run-{args.method}")
    trained = time.monotonic() - started
    result = evaluate_model(
        model, data, read_case_list(data / "test.txt"), patch_size=config.model.patch_size, progress=False
    )
    write_evaluation(result, work / f"eval-{args.method}")
    dice = result.summary["dice"]
    print(f"trained {args.epochs} epochs in {trained / 60:.1f} min ({args.method}, {torch.get_num_threads()} threads)")
    print(json.dumps({"full": dice["-".join(MODALITIES)], "mean": result.summary["mean"]["dice"]}, indent=1))
    with_t1ce = [v["ET"] for k, v in dice.items() if "t1ce" in k.split("-")]
    without = [v["ET"] for k, v in dice.items() if "t1ce" not in k.split("-")]
    print(
        f"ET Dice, subsets with t1ce: {sum(with_t1ce) / len(with_t1ce):.3f}; without: {sum(without) / len(without):.3f}"
    )
    for name in MODALITIES:
        print(f"  {name:>5} alone: " + ", ".join(f"{r} {dice[name][r]:.3f}" for r in ("WT", "TC", "ET")))
    print(f"results in {work}")


if __name__ == "__main__":
    main()
