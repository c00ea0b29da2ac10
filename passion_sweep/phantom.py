"""The embedded default data set: a synthetic BraTS phantom, generated, prepared and
split on first use and cached by its generation settings."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from trainables.data import PHANTOM_NORMALIZATION, prepare_dataset, split_cases, synthesize_dataset
from trainables.data.atomic import atomic_directory
from trainables.errors import ConfigError, DataError

__all__ = ["phantom_dir", "ensure_phantom"]

logger = logging.getLogger(__name__)


def phantom_dir(cache: Path, *, cases: int, shape: tuple[int, int, int], seed: int) -> Path:
    """Folder of the prepared phantom with these settings under ``cache``."""
    return Path(cache) / f"phantom-n{cases}-{'x'.join(map(str, shape))}-s{seed}"


def ensure_phantom(
    cache: Path, *, cases: int, shape: tuple[int, int, int], seed: int, test: float = 0.2, val: float = 0.1
) -> Path:
    """Generate, prepare and split the phantom unless it is cached already.

    The prepared folder appears atomically, complete with ``train.txt``, ``val.txt``
    and ``test.txt``, so concurrent or interrupted calls never see half a data set.

    Returns:
        The prepared data folder.
    """
    target = phantom_dir(cache, cases=cases, shape=shape, seed=seed)
    if (target / "test.txt").is_file():
        return target
    logger.info("generating the phantom data set (%d cases of %s) in %s", cases, "x".join(map(str, shape)), target)
    try:
        with atomic_directory(target) as staging:
            raw = staging.parent / f".{staging.name}-raw"
            try:
                synthesize_dataset(raw, cases=cases, shape=shape, seed=seed)
                prepare_dataset(raw, staging, progress=False, normalization=PHANTOM_NORMALIZATION)
            finally:
                shutil.rmtree(raw, ignore_errors=True)
            split_cases(staging, test=test, val=val, seed=seed)
    except (ConfigError, DataError):
        # Another sweep generated the same phantom meanwhile and its folder appeared
        # first (the final rename then finds it not empty): the same seed made the same
        # data, so theirs serves. Any other failure still ends the call.
        if not (target / "test.txt").is_file():
            raise
    return target
