from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from passion_sweep.cli import main
from trainables.data import (
    PHANTOM_NORMALIZATION,
    crop_box,
    prepare_dataset,
    preprocess_case,
    read_manifest,
    read_preprocessing,
    rfnet_name,
)
from trainables.data.layout import label_path, volume_path
from trainables.data.nifti import find_case_files, read_case
from trainables.errors import ConfigError, DataError

FIXTURE = Path(__file__).parents[1] / "fixtures" / "reference" / "preprocess"
SUMMARY = json.loads((FIXTURE / "expected-summary.json").read_text())


def test_crop_box_reproduces_the_reference_quirks() -> None:
    foreground = np.zeros((40, 40, 40), dtype=bool)
    foreground[15:19, 0:2, 37:40] = True
    # axis 0: 15..18 -> [15, 18) widened by 3 below and 4 above; axis 1: 0..1 widened to
    # [-4, 6), moved up to [0, 10); axis 2: 37..39 widened to [33, 44), past the end, not moved back
    assert crop_box(foreground, min_size=10) == (slice(12, 22), slice(0, 10), slice(33, 44))


def test_crop_box_leaves_out_the_last_slice_of_a_wide_box() -> None:
    foreground = np.zeros((40, 8, 40), dtype=bool)
    foreground[3:30, 2:4, 5:6] = True
    assert crop_box(foreground, min_size=10) == (slice(3, 29), slice(0, 10), slice(0, 11))


@pytest.mark.parametrize("case", SUMMARY["cases"], ids=lambda case: case["case"])
def test_crop_box_of_the_reference_fixture(case: dict) -> None:
    image, _ = read_case(find_case_files(FIXTURE / "raw" / case["case"]))
    box = crop_box(image.max(axis=-1) != 0)
    assert [bound for axis in box for bound in (axis.start, axis.stop)] == case["crop_box"]


@pytest.fixture(scope="module")
def prepared_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture's raw cases prepared by ``passion-sweep data prepare`` with its defaults."""
    out = tmp_path_factory.mktemp("fixture") / "data"
    result = CliRunner().invoke(main, ["data", "prepare", str(FIXTURE / "raw"), str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    return out


def test_prepare_reproduces_the_reference_output(prepared_fixture: Path) -> None:
    """Names, shapes and labels identical, volumes within 1e-5 of the reference's arrays."""
    for kind in ("vol", "seg"):
        assert sorted(path.name for path in (prepared_fixture / kind).iterdir()) == sorted(
            path.name for path in (FIXTURE / "expected" / kind).iterdir()
        )
    for case in SUMMARY["cases"]:
        name = case["expected_name"]
        vol, seg = np.load(volume_path(prepared_fixture, name)), np.load(label_path(prepared_fixture, name))
        expected_vol = np.load(volume_path(FIXTURE / "expected", name))
        expected_seg = np.load(label_path(FIXTURE / "expected", name))
        assert vol.dtype == expected_vol.dtype == np.float32 and vol.shape == expected_vol.shape
        assert list(vol.shape) == case["vol_shape"]
        assert seg.dtype == expected_seg.dtype == np.uint8 and np.array_equal(seg, expected_seg)
        np.testing.assert_allclose(vol, expected_vol, rtol=0, atol=1e-5)
        # the background is -mean/std of the brain, per channel, as recorded by the fixture
        for channel in case["channels"]:
            assert vol[0, 0, 0, channel["channel"]] == pytest.approx(channel["background_unique_values"][0], abs=1e-5)
    assert read_preprocessing(prepared_fixture) == {"crop": "reference", "names": "rfnet", "normalization": "reference"}
    assert [(row.case, list(row.label_counts)) for row in read_manifest(prepared_fixture)] == sorted(
        (case["expected_name"], [case["seg_counts"][str(k)] for k in range(4)]) for case in SUMMARY["cases"]
    )


def test_zero_background_is_an_explicit_recorded_option(prepared_fixture: Path, tmp_path: Path) -> None:
    out = tmp_path / "data"
    result = CliRunner().invoke(
        main, ["data", "prepare", str(FIXTURE / "raw"), str(out), "--no-progress", "--normalization", "zero-background"]
    )
    assert result.exit_code == 0 and "(zero-background normalization)" in result.output
    assert read_preprocessing(out)["normalization"] == "zero-background"
    for row in read_manifest(out):
        reference, zero = np.load(volume_path(prepared_fixture, row.case)), np.load(volume_path(out, row.case))
        brain = reference.sum(axis=-1) > reference[0, 0, 0].sum()  # background is the corner's -mean/std
        assert np.array_equal(zero[brain], reference[brain])
        assert not zero[~brain].any()


def test_rfnet_names() -> None:
    assert rfnet_name("BraTS20_Training_002") == "HG_BraTS20_Training_002"
    assert rfnet_name("BraTS20_Training_259") == "HG_BraTS20_Training_259"
    assert rfnet_name("BraTS20_Training_260") == "LG_BraTS20_Training_260"
    assert rfnet_name("BraTS20_Training_335") == "LG_BraTS20_Training_335"
    assert rfnet_name("BraTS20_Training_336") == "HG_BraTS20_Training_336"
    assert rfnet_name("Phantom_001") == "Phantom_001"
    assert rfnet_name("BraTS20_Validation_001") == "BraTS20_Validation_001"


def test_two_folders_with_one_rfnet_name(tmp_path: Path) -> None:
    src = tmp_path / "raw"
    shutil.copytree(FIXTURE / "raw" / "BraTS20_Training_340", src / "BraTS20_Training_340")
    renamed = src / "HG_BraTS20_Training_340"
    renamed.mkdir()
    for path in (src / "BraTS20_Training_340").iterdir():
        shutil.copy(path, renamed / f"HG_{path.name}")
    with pytest.raises(DataError, match="case folders BraTS20_Training_340 and HG_BraTS20_Training_340 both become"):
        prepare_dataset(src, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_preprocess_hand_made_case() -> None:
    image = np.zeros((200, 140, 100, 4), dtype=np.int16)
    brain = (slice(10, 150), slice(100, 130), slice(40, 60))
    alternating = np.where(np.arange(20) % 2 == 0, 1, 3)  # along the last axis of the brain box
    for channel in range(4):
        image[(*brain, channel)] = (channel + 1) * alternating
    label = np.zeros((200, 140, 100), dtype=np.uint8)
    label[20, 110, 45], label[21, 110, 45], label[22, 110, 45] = 1, 2, 4

    vol, seg = preprocess_case(image, label)

    # axis 0: [10, 149) is >= 128, kept without its last slice; axis 1: 100..129 widened to
    # [51, 179), clipped to 140; axis 2: 40..59 widened to [-14, 114), moved up to [0, 128), clipped to 100.
    assert vol.shape == (139, 89, 100, 4) and vol.dtype == np.float32
    assert seg.shape == (139, 89, 100) and seg.dtype == np.uint8
    inside = vol[:, 100 - 51 : 130 - 51, 40:60]
    expected = np.where(np.arange(20) % 2 == 0, -1.0, 1.0)  # z-score of 1, 3, 1, 3, ... is -1, 1, -1, 1, ...
    np.testing.assert_allclose(inside, np.broadcast_to(expected[None, None, :, None], inside.shape), atol=1e-6)
    np.testing.assert_allclose(vol[0, 0, 0], -2.0, atol=1e-6)  # background: (0 - 2) / 1 in every channel
    assert (seg[10, 59, 45], seg[11, 59, 45], seg[12, 59, 45]) == (1, 2, 3)  # 4 -> 3
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
        brain = (vol != vol[0, 0, 0]).any(axis=-1)  # the corner is background, -mean/std per channel
        np.testing.assert_allclose(vol[brain].mean(axis=0), 0, atol=1e-4)
        np.testing.assert_allclose(vol[brain].std(axis=0), 1, atol=1e-4)
    assert not list(prepared_phantom.rglob(".*.tmp"))


def test_workers_give_the_same_result(phantom_raw: Path, prepared_phantom: Path, tmp_path: Path) -> None:
    rows = prepare_dataset(phantom_raw, tmp_path, workers=2, progress=False, normalization=PHANTOM_NORMALIZATION)
    assert rows == read_manifest(prepared_phantom)
    for row in rows:
        assert np.array_equal(
            np.load(volume_path(tmp_path, row.case)), np.load(volume_path(prepared_phantom, row.case))
        )


def test_bad_worker_count(phantom_raw: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="workers must be >= 1"):
        prepare_dataset(phantom_raw, tmp_path, workers=0)
