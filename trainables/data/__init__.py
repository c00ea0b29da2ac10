"""BraTS data: phantom synthesis, preprocessing, splits, checks and torch datasets.

See the README, section "Data", for the commands and file formats.
"""

from __future__ import annotations

from trainables.data.augment import Augmentation
from trainables.data.check import CaseCheck, DatasetReport, check_dataset
from trainables.data.datasets import MASK_TYPES, TrainingDataset, VolumeDataset, read_case_arrays
from trainables.data.layout import ManifestRow, read_case_list, read_manifest
from trainables.data.nifti import CaseFiles, find_cases, read_case
from trainables.data.phantom import CONTRAST, synthesize_dataset
from trainables.data.prepare import MIN_CROP_SIZE, crop_box, prepare_dataset, preprocess_case
from trainables.data.splits import (
    REFERENCE_SEED,
    MissingRateSplit,
    allocate_missing_modalities,
    parse_missing_rates,
    read_split_csv,
    reference_pattern_counts,
    split_cases,
    write_missing_rate_split,
    write_split_csv,
)

__all__ = [
    "Augmentation",
    "CaseCheck",
    "DatasetReport",
    "check_dataset",
    "MASK_TYPES",
    "TrainingDataset",
    "VolumeDataset",
    "read_case_arrays",
    "ManifestRow",
    "read_case_list",
    "read_manifest",
    "CaseFiles",
    "find_cases",
    "read_case",
    "CONTRAST",
    "synthesize_dataset",
    "MIN_CROP_SIZE",
    "crop_box",
    "prepare_dataset",
    "preprocess_case",
    "REFERENCE_SEED",
    "MissingRateSplit",
    "allocate_missing_modalities",
    "parse_missing_rates",
    "read_split_csv",
    "reference_pattern_counts",
    "split_cases",
    "write_missing_rate_split",
    "write_split_csv",
]
