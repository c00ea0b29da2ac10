"""BraTS data: phantom synthesis, preprocessing, splits, checks and torch datasets.

See docs/data.md for the commands and file formats. Names are imported
on first use (PEP 562), so that light modules (splits, atomic writes) do not pull in
torch through this package: ``passion-sweep table`` and spec checks start in a second.
"""

from __future__ import annotations

from trainables.lazy import lazy_exports

# Public name to the submodule that defines it.
_EXPORTS: dict[str, str] = {
    "Augmentation": "augment",
    "CaseCheck": "check",
    "DatasetReport": "check",
    "check_dataset": "check",
    "MASK_TYPES": "datasets",
    "TrainingDataset": "datasets",
    "VolumeDataset": "datasets",
    "read_case_arrays": "datasets",
    "ManifestRow": "layout",
    "read_case_list": "layout",
    "read_manifest": "layout",
    "rfnet_name": "layout",
    "read_preprocessing": "layout",
    "CaseFiles": "nifti",
    "find_cases": "nifti",
    "read_case": "nifti",
    "CONTRAST": "phantom",
    "PHANTOM_NORMALIZATION": "phantom",
    "synthesize_dataset": "phantom",
    "MIN_CROP_SIZE": "prepare",
    "NORMALIZATIONS": "prepare",
    "crop_box": "prepare",
    "prepare_dataset": "prepare",
    "preprocess_case": "prepare",
    "REFERENCE_LISTS": "reference",
    "ReferenceSplit": "reference",
    "identify_reference_split": "reference",
    "reference_case_lists": "reference",
    "reference_split": "reference",
    "reference_splits": "reference",
    "write_reference_lists": "reference",
    "write_reference_split": "reference",
    "REFERENCE_SEED": "splits",
    "MissingRateSplit": "splits",
    "allocate_missing_modalities": "splits",
    "parse_missing_rates": "splits",
    "read_split_csv": "splits",
    "reference_pattern_counts": "splits",
    "split_cases": "splits",
    "write_missing_rate_split": "splits",
    "write_split_csv": "splits",
}

__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
