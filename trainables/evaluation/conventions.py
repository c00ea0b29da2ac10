"""The HD95 options: how the 95th percentile is taken and what an empty mask scores.

Kept apart from :mod:`trainables.evaluation.metrics` (which needs torch and scipy) so
that commands which only name or describe the options (``evaluate --help``, tables)
start light.
"""

from __future__ import annotations

from typing import Literal

from trainables.errors import ConfigError

__all__ = [
    "BRATS_MAX_HD95",
    "ONE_EMPTY_HD95",
    "HD95Convention",
    "HD95_CONVENTIONS",
    "HD95Percentile",
    "HD95_PERCENTILES",
    "check_hd95_convention",
    "check_hd95_percentile",
    "hd95_definition",
]

# Diagonal of the 240 x 240 x 155 BraTS volume: the HD95 the BraTS challenge reports
# when exactly one of prediction and ground truth is empty.
BRATS_MAX_HD95 = 373.13
# HD95 when exactly one mask is empty, per convention (both empty is always 0).
ONE_EMPTY_HD95 = {"reference": 1.0, "max": BRATS_MAX_HD95}

HD95Convention = Literal["reference", "max"]
HD95_CONVENTIONS: tuple[str, ...] = tuple(ONE_EMPTY_HD95)

HD95Percentile = Literal["pooled", "max_directed"]
# How the 95th percentile is taken from the two directed surface-distance sets.
_PERCENTILE_TEXT = {
    "pooled": "95th percentile of both directed surface-distance sets pooled (medpy, as the reference)",
    "max_directed": "larger of the two directed 95th percentiles (MONAI)",
}
HD95_PERCENTILES: tuple[str, ...] = tuple(_PERCENTILE_TEXT)


def check_hd95_convention(name: str) -> None:
    """Raise :class:`ConfigError` unless ``name`` is one of :data:`HD95_CONVENTIONS`."""
    if name not in ONE_EMPTY_HD95:
        raise ConfigError(
            f"hd95 convention must be one of {', '.join(HD95_CONVENTIONS)} "
            f"(hd95_convention=, --hd95-convention), got {name!r}"
        )


def check_hd95_percentile(name: str) -> None:
    """Raise :class:`ConfigError` unless ``name`` is one of :data:`HD95_PERCENTILES`."""
    if name not in HD95_PERCENTILES:
        raise ConfigError(
            f"hd95 percentile must be one of {', '.join(HD95_PERCENTILES)} "
            f"(hd95_percentile=, --hd95-percentile), got {name!r}"
        )


def hd95_definition(percentile: HD95Percentile, convention: HD95Convention) -> str:
    """One line saying how HD95 values were computed, for captions and logs.

    Raises:
        ConfigError: for an unknown percentile or convention.
    """
    check_hd95_percentile(percentile)
    check_hd95_convention(convention)
    return (
        f"HD95 in mm at unit voxel spacing: {_PERCENTILE_TEXT[percentile]}; {ONE_EMPTY_HD95[convention]:g} "
        f"when exactly one of prediction and truth is empty, 0 when both are (hd95_percentile={percentile}, "
        f"hd95_convention={convention})"
    )
