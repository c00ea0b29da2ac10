"""The data every trial of a sweep reads, prepared on the driver before any trial starts.

:func:`prepare_sweep_data` generates (or finds) the data set and writes the split CSVs
into the sweep folder, so that trials only get absolute paths and never write shared
files themselves.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from passion_sweep.layout import PHANTOM_DIR, SPLITS_DIR
from passion_sweep.phantom import ensure_phantom
from passion_sweep.sweep.spec import SweepSpec
from trainables.data import (
    read_case_list,
    read_manifest,
    read_split_csv,
    reference_splits,
    write_missing_rate_split,
    write_reference_split,
)
from trainables.data.atomic import ensure_directory

__all__ = ["SweepData", "prepare_sweep_data"]


@dataclass(frozen=True)
class SweepData:
    """The prepared data of a sweep: absolute data folder and split CSV per split name."""

    root: Path
    splits: Mapping[str, Path]


def prepare_sweep_data(spec: SweepSpec, sweep_dir: Path) -> SweepData:
    """Find or generate the data set and write each split's CSV into ``sweep_dir/splits``.

    Runs on the driver, before any trial.

    Raises:
        DataError: if the data set, a case list or a split CSV is missing or malformed.
    """
    if spec.data.phantom is not None:
        phantom = spec.data.phantom
        cache = phantom.cache or sweep_dir / PHANTOM_DIR
        root = ensure_phantom(cache, cases=phantom.cases, shape=phantom.shape, seed=phantom.seed)
    else:
        root = Path(str(spec.data.path))
    known = {row.case for row in read_manifest(root)}
    read_case_list(root / spec.eval.cases, known_cases=known)
    split_dir = ensure_directory(sweep_dir / SPLITS_DIR, what="split folder")
    splits = {}
    for name in dict.fromkeys(spec.grid.get("split", [])):
        split = spec.splits[str(name)]
        if split.csv is not None:
            read_split_csv(split.csv, known_cases=known)
            splits[str(name)] = split.csv
        elif split.reference is not None:
            splits[str(name)] = split_dir / f"{name}.csv"
            write_reference_split(root, splits[str(name)], reference_splits()[split.reference])
        else:
            splits[str(name)] = split_dir / f"{name}.csv"
            write_missing_rate_split(root, splits[str(name)], rates=split.rates(), seed=split.seed)
    return SweepData(root=root, splits=splits)
