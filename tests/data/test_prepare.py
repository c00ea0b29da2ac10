from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trainables.data import crop_box, prepare_dataset, preprocess_case, read_manifest
from trainables.data.layout import label_path, volume_path
from trainables.errors import ConfigError, DataError


def test_crop_box_widens_symmetrically_and_shifts_at_borders() -> None:
    foreground = np.zeros((40, 40, 40), dtype=bool)
    foreground[15:19, 0:2, 37:40] = True
    assert crop_box(foreground, min_size=10) == (slice(12, 22), slice(0, 10), slice(30, 40))


def test_crop_box_keeps_wide_boxes_and_short_axes() -> None:
    foreground = np.zeros((40, 8, 40), dtype=bool)
    foreground[3:30, 2:4, 5:6] = True
    assert crop_box(foreground, min_size=10) == (slice(3, 30), slice(0, 8), slice(1, 11))


def test_preprocess_hand_made_case() -> None:
    image = np.zeros((200, 140, 100, 4), dtype=np.int16)
    brain = (slice(10, 150), slice(100, 130), slice(40, 60))
    alternating = np.where(np.arange(20) % 2 == 0, 1, 3)  # along the last axis of the brain box
    for channel in range(4):
        image[(*brain, channel)] = (channel + 1) * alternating
    label = np.zeros((200, 140, 100), dtype=np.uint8)
    label[20, 110, 45], label[21, 110, 45], label[22, 110, 45] = 1, 2, 4

    vol, seg = preprocess_case(image, label)

    # axis 0: extent 140 >= 128 kept; axis 1: 30 widened to 128, shifted inside at the far border
    # (rows 12..139); axis 2: the volume is only 100 deep, kept whole.
    assert vol.shape == (140, 128, 100, 4) and vol.dtype == np.float32
    assert seg.shape == (140, 128, 100) and seg.dtype == np.uint8
    inside = vol[:, 100 - 12 : 130 - 12, 40:60]
    expected = np.where(np.arange(20) % 2 == 0, -1.0, 1.0)  # z-score of 1, 3, 1, 3, ... is -1, 1, -1, 1, ...
    np.testing.assert_allclose(inside, np.broadcast_to(expected[None, None, :, None], inside.shape), atol=1e-6)
    assert np.count_nonzero(vol) == inside.size  # outside the brain stays 0
    assert (seg[10, 98, 45], seg[11, 98, 45], seg[12, 98, 45]) == (1, 2, 3)  # 4 -> 3
    assert np.count_nonzero(seg) == 3


def test_preprocess_rejects_a_constant_modality() -> None:
    image = np.ones((8, 8, 8, 4), dtype=np.float32)
    image[:4, ..., 1:] = 2
    with pytest.raises(DataError, match="flair is constant inside the brain"):
        preprocess_case(image, np.zeros((8, 8, 8), dtype=np.uint8))


def test_prepare_writes_arrays_and_manifest(prepared_phantom: Path) -> None:
    rows = read_manifest(prepared_phantom)
    assert [row.case for row in rows] == [f"Phantom_00{index}" for index in range(1, 7)]
    for row in rows:
        vol = np.load(volume_path(prepared_phantom, row.case), mmap_mode="r")
        seg = np.load(label_path(prepared_phantom, row.case), mmap_mode="r")
        assert vol.shape == (*row.shape, 4) and vol.dtype == np.float32
        assert tuple(np.bincount(seg.ravel(), minlength=4)) == row.label_counts
        brain = vol.sum(axis=-1) != 0
        np.testing.assert_allclose(vol[brain].mean(axis=0), 0, atol=1e-4)
        np.testing.assert_allclose(vol[brain].std(axis=0), 1, atol=1e-4)
    assert not list(prepared_phantom.rglob(".*.tmp"))


def test_workers_give_the_same_result(phantom_raw: Path, prepared_phantom: Path, tmp_path: Path) -> None:
    rows = prepare_dataset(phantom_raw, tmp_path, workers=2, progress=False)
    assert rows == read_manifest(prepared_phantom)
    for row in rows:
        assert np.array_equal(
            np.load(volume_path(tmp_path, row.case)), np.load(volume_path(prepared_phantom, row.case))
        )


def test_bad_worker_count(phantom_raw: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="workers must be >= 1"):
        prepare_dataset(phantom_raw, tmp_path, workers=0)
