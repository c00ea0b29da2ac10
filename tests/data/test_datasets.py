from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from trainables.data import TrainingDataset, VolumeDataset, read_case_list, read_manifest, read_split_csv
from trainables.data.augment import Augmentation, augment_patch, draw_augmentation
from trainables.data.datasets import read_case_arrays
from trainables.data.layout import label_path
from trainables.errors import ConfigError, DataError
from trainables.modalities import SUBSET_MASKS, reachable_subset_ids

PATCH = 32


@pytest.fixture(scope="module")
def train_cases(prepared_phantom: Path) -> list[str]:
    return read_case_list(prepared_phantom / "train.txt")


@pytest.fixture(scope="module")
def split(prepared_phantom: Path):
    return read_split_csv(prepared_phantom / "mr2468.csv")


def _check_sample(sample: dict, name: str) -> None:
    assert sample["name"] == name
    assert sample["image"].shape == (4, PATCH, PATCH, PATCH) and sample["image"].dtype == torch.float32
    assert sample["label"].shape == (PATCH, PATCH, PATCH) and sample["label"].dtype == torch.int64
    assert sample["mask"].shape == (4,) and sample["mask"].dtype == torch.bool
    assert set(sample["label"].unique().tolist()) <= {0, 1, 2, 3}


def test_idt_uses_the_split_and_zeroes_absent_modalities(prepared_phantom: Path, train_cases: list[str], split) -> None:
    dataset = TrainingDataset(prepared_phantom, train_cases, patch_size=PATCH, mask_type="idt", split=split)
    for index, name in enumerate(train_cases):
        sample = dataset[index]
        _check_sample(sample, name)
        mask = sample["mask"]
        assert tuple(mask.tolist()) == split.mask_of(name)
        assert not sample["image"][~mask].any()
        assert all(sample["image"][channel].std() > 0 for channel in np.flatnonzero(mask.numpy()))


def test_idt_drop_draws_reachable_subsets(prepared_phantom: Path, train_cases: list[str], split) -> None:
    name = max(train_cases, key=lambda case: sum(split.mask_of(case)))
    dataset = TrainingDataset(
        prepared_phantom, [name], patch_size=PATCH, mask_type="idt_drop", split=split, augment=False
    )
    torch.manual_seed(0)
    masks = set()
    for _ in range(15):
        sample = dataset[0]
        _check_sample(sample, name)
        mask = tuple(sample["mask"].tolist())
        assert SUBSET_MASKS.index(mask) in reachable_subset_ids(split.mask_of(name))
        assert not sample["image"][~sample["mask"]].any()
        masks.add(mask)
    assert len(masks) > 1


def test_pdt_keeps_all_modalities_and_draws_any_subset(prepared_phantom: Path, train_cases: list[str]) -> None:
    dataset = TrainingDataset(prepared_phantom, train_cases, patch_size=PATCH, mask_type="pdt", augment=False)
    torch.manual_seed(0)
    masks = set()
    for _ in range(20):
        sample = dataset[0]
        _check_sample(sample, train_cases[0])
        assert all(sample["image"][channel].any() for channel in range(4))
        masks.add(tuple(sample["mask"].tolist()))
    assert len(masks) >= 8 and masks <= set(SUBSET_MASKS)


def test_unaugmented_patch_is_a_crop_of_the_volume(prepared_phantom: Path, train_cases: list[str]) -> None:
    dataset = TrainingDataset(prepared_phantom, train_cases[:1], patch_size=PATCH, mask_type="pdt", augment=False)
    label = np.load(label_path(prepared_phantom, train_cases[0]))
    patch = dataset[0]["label"].numpy()
    windows = np.lib.stride_tricks.sliding_window_view(label, patch.shape)
    assert (windows == patch).all(axis=(3, 4, 5)).any()


def test_seeding_torch_makes_samples_reproducible(prepared_phantom: Path, train_cases: list[str], split) -> None:
    dataset = TrainingDataset(prepared_phantom, train_cases, patch_size=PATCH, mask_type="idt_drop", split=split)

    def draw() -> list[dict]:
        loader = DataLoader(
            dataset, batch_size=2, shuffle=True, num_workers=2, generator=torch.Generator().manual_seed(3)
        )
        return list(loader)

    first, second = draw(), draw()
    assert [batch["name"] for batch in first] == [batch["name"] for batch in second]
    assert all(
        torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])
        for a, b in zip(first, second, strict=True)
    )
    torch.manual_seed(5)
    one = dataset[1]
    torch.manual_seed(5)
    assert torch.equal(one["image"], dataset[1]["image"])


def test_augmented_sample_draws_in_the_reference_order(prepared_phantom: Path, train_cases: list[str]) -> None:
    # Mask, crop corner, rotation plane and angle, flips, then the intensity factors, all
    # from one generator seeded from torch's: replayed here step by step.
    options = Augmentation(rotation_fill="background")
    dataset = TrainingDataset(prepared_phantom, train_cases[:1], patch_size=PATCH, mask_type="pdt", augment=options)
    vol, seg = read_case_arrays(prepared_phantom, train_cases[0])
    for seed in range(3):
        torch.manual_seed(seed)
        sample = dataset[0]
        torch.manual_seed(seed)
        rng = np.random.default_rng(int(torch.randint(2**62, ())))
        mask = SUBSET_MASKS[rng.integers(len(SUBSET_MASKS))]
        start = rng.integers(0, np.array(seg.shape) - PATCH + 1)
        box = tuple(slice(first, first + PATCH) for first in start)
        draw = draw_augmentation(rng, options)
        background = np.median(vol[np.ix_((0, -1), (0, -1), (0, -1))].reshape(8, 4), axis=0)
        image, label = augment_patch(np.array(vol[box]), np.array(seg[box]), draw, rng, options, background)
        assert tuple(sample["mask"].tolist()) == mask
        np.testing.assert_array_equal(sample["image"].numpy(), np.moveaxis(image, -1, 0))
        np.testing.assert_array_equal(sample["label"].numpy(), label)


def test_volume_dataset_returns_whole_volumes(prepared_phantom: Path) -> None:
    dataset = VolumeDataset(prepared_phantom, ["Phantom_006"])
    sample = dataset[0]
    assert sample["name"] == "Phantom_006"
    assert sample["image"].shape == (4, 48, 48, 48) and sample["image"].dtype == torch.float32
    assert sample["label"].dtype == torch.int64
    assert (
        tuple(torch.bincount(sample["label"].flatten(), minlength=4).tolist())
        == read_manifest(prepared_phantom)[-1].label_counts
    )


def test_patch_larger_than_the_volume(prepared_phantom: Path, train_cases: list[str]) -> None:
    with pytest.raises(DataError, match=f"patch 80 larger than volume 48x48x48 of case {train_cases[0]}"):
        TrainingDataset(prepared_phantom, train_cases, mask_type="pdt")


@pytest.mark.parametrize(
    ("options", "pattern"),
    [
        ({"mask_type": "random"}, "mask_type must be one of idt, idt_drop, pdt"),
        ({"mask_type": "idt"}, "needs a missing-rate split"),
        ({"mask_type": "pdt", "split": "any"}, "pass split=None"),
        ({"mask_type": "pdt", "patch_size": 0}, "patch_size must be >= 1"),
    ],
)
def test_bad_options(prepared_phantom: Path, train_cases: list[str], options: dict, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        TrainingDataset(prepared_phantom, train_cases, **{"patch_size": PATCH, **options})


def test_cases_missing_from_the_data_set_or_the_split(prepared_phantom: Path, split) -> None:
    with pytest.raises(DataError, match=r"Phantom_999_vol\.npy of case Phantom_999"):
        VolumeDataset(prepared_phantom, ["Phantom_999"])
    test_case = read_case_list(prepared_phantom / "test.txt")[0]
    with pytest.raises(DataError, match=f"case {test_case} is not in the missing-rate split"):
        TrainingDataset(prepared_phantom, [test_case], patch_size=PATCH, split=split)


def test_read_case_list_errors(prepared_phantom: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"case list .*nothing\.txt not found"):
        read_case_list(tmp_path / "nothing.txt")
    path = tmp_path / "train.txt"
    path.write_text("Phantom_001\n\nPhantom_042\n")
    with pytest.raises(DataError, match=re.escape(f"{path}:3: case Phantom_042 is not in the data set")):
        read_case_list(path, known_cases={row.case for row in read_manifest(prepared_phantom)})
