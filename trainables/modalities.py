"""Modalities, the 15 modality subsets, the training mask types and the evaluation regions.

Every tensor with a modality axis uses the channel order of :data:`MODALITIES`.
Subset ids follow the PASSION reference (they are the ``mask_id`` of split CSVs).
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "MODALITIES",
    "NUM_MODALITIES",
    "NUM_CLASSES",
    "REGIONS",
    "MASK_TYPES",
    "SUBSET_MASKS",
    "subset_id",
    "subset_name",
    "reachable_subset_ids",
    "parse_subset_name",
]

MODALITIES: tuple[str, ...] = ("flair", "t1ce", "t1", "t2")
NUM_MODALITIES = len(MODALITIES)
NUM_CLASSES = 4  # background, NCR/NET, ED, ET (BraTS label 4 is stored as 3)
REGIONS: tuple[str, ...] = ("WT", "TC", "ET", "ETpp")
# How training draws the available modalities: a case's fixed availability (idt), one
# subset of it per iteration (idt_drop), or any subset of complete data (pdt).
MASK_TYPES: tuple[str, ...] = ("idt", "idt_drop", "pdt")

# Presence masks (flair, t1ce, t1, t2) in the reference's subset id order.
SUBSET_MASKS: tuple[tuple[bool, ...], ...] = (
    (False, False, False, True),  # 0  t2
    (False, True, False, False),  # 1  t1ce
    (False, False, True, False),  # 2  t1
    (True, False, False, False),  # 3  flair
    (False, True, False, True),  # 4  t1ce t2
    (False, True, True, False),  # 5  t1ce t1
    (True, False, True, False),  # 6  flair t1
    (False, False, True, True),  # 7  t1 t2
    (True, False, False, True),  # 8  flair t2
    (True, True, False, False),  # 9  flair t1ce
    (True, True, True, False),  # 10 flair t1ce t1
    (True, False, True, True),  # 11 flair t1 t2
    (True, True, False, True),  # 12 flair t1ce t2
    (False, True, True, True),  # 13 t1ce t1 t2
    (True, True, True, True),  # 14 flair t1ce t1 t2
)
_ID_BY_MASK = {mask: index for index, mask in enumerate(SUBSET_MASKS)}


def subset_id(mask: Sequence[bool]) -> int:
    """Reference subset id (0..14) of a presence mask in ``MODALITIES`` order.

    Raises:
        ValueError: if the mask does not have four entries or has none present.
    """
    key = tuple(bool(present) for present in mask)
    if key not in _ID_BY_MASK:
        raise ValueError(f"a modality mask needs 4 entries with at least one present, got {list(key)}")
    return _ID_BY_MASK[key]


def subset_name(mask: Sequence[bool]) -> str:
    """Name of a subset, e.g. ``flair-t1ce``: present modalities in ``MODALITIES`` order."""
    subset_id(mask)  # validates
    return "-".join(name for name, present in zip(MODALITIES, mask) if present)


def parse_subset_name(name: str) -> tuple[bool, ...]:
    """Presence mask of a subset name such as ``flair-t1ce``.

    Raises:
        ValueError: on an unknown modality or an empty name.
    """
    parts = [part for part in name.split("-") if part]
    unknown = [part for part in parts if part not in MODALITIES]
    if unknown or not parts:
        raise ValueError(f"unknown subset {name!r}: use modality names from {', '.join(MODALITIES)} joined by '-'")
    return tuple(modality in parts for modality in MODALITIES)


def reachable_subset_ids(mask: Sequence[bool]) -> list[int]:
    """Ids of the subsets reachable by dropping available modalities (``pos_mask_ids``), ascending."""
    available = tuple(bool(present) for present in mask)
    subset_id(available)
    return [
        index
        for index, candidate in enumerate(SUBSET_MASKS)
        if all(available[m] or not candidate[m] for m in range(NUM_MODALITIES))
    ]
