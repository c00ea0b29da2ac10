"""Build small data sets in the reference (RFNet download) layout for tests."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np


def write_reference_layout(
    folder: Path,
    names: Iterable[str],
    *,
    shape: tuple[int, int, int] = (4, 4, 4),
    background: float = -2.5,
    lists: dict[str, Iterable[str]] | None = None,
) -> Path:
    """Write ``vol/NAME_vol.npy`` (H x W x D x 4 float32, a constant ``background`` around a
    brain of random values) and ``seg/NAME_seg.npy`` (uint8 0..3) per case, plus the case lists.

    No manifest: the project must index the folder itself.
    """
    rng = np.random.default_rng(0)
    (folder / "vol").mkdir(parents=True)
    (folder / "seg").mkdir()
    inner = tuple(slice(1, size - 1) for size in shape)
    for name in names:
        vol = np.full((*shape, 4), background, dtype=np.float32)
        vol[inner] = rng.standard_normal(vol[inner].shape)
        seg = np.zeros(shape, dtype=np.uint8)
        seg[inner] = rng.integers(0, 4, seg[inner].shape)
        np.save(folder / "vol" / f"{name}_vol.npy", vol)
        np.save(folder / "seg" / f"{name}_seg.npy", seg)
    for subset, subset_names in (lists or {}).items():
        (folder / f"{subset}.txt").write_text("".join(f"{name}\n" for name in subset_names))
    return folder
