"""A data set in the reference layout (RFNet's download) is used as it is: indexed on first
use (beside the data, or in a cache when the folder is read-only), checked, split and read
by the datasets; bad folders fail with one line and leave nothing behind. Both routes, the
reference's arrays and ``prepare`` of the raw cases, give the same cases, arrays and masks."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result

from passion_sweep.cli import main
from tests.data.reference_layout import write_reference_layout
from trainables.data import TrainingDataset, VolumeDataset, read_case_arrays, read_manifest, read_split_csv
from trainables.data import index as index_module
from trainables.errors import DataError

FIXTURE = Path(__file__).parents[1] / "fixtures" / "reference" / "preprocess"
NAMES = ["HG_BraTS20_Training_002", "HG_BraTS20_Training_340", "LG_BraTS20_Training_270"]
USAGE, DATA = 2, 1


def run(*args: object) -> Result:
    return CliRunner().invoke(main, [str(arg) for arg in args])


def last_line(result: Result) -> str:
    assert "Traceback" not in result.output
    return [line for line in result.stderr.splitlines() if line.strip()][-1]


def snapshot(folder: Path) -> dict[str, int]:
    return {str(path.relative_to(folder)): path.stat().st_mtime_ns for path in sorted(folder.rglob("*"))}


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(index_module.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


def rfnet_download(folder: Path) -> Path:
    """The reference's arrays of the fixture, as RFNet's download lays them out, with case lists."""
    shutil.copytree(FIXTURE / "expected", folder)
    (folder / "train.txt").write_text("HG_BraTS20_Training_002\nLG_BraTS20_Training_270\n")
    (folder / "test.txt").write_text("HG_BraTS20_Training_340\n")
    return folder


def test_both_routes_give_the_same_cases_arrays_and_masks(tmp_path: Path) -> None:
    download = rfnet_download(tmp_path / "download")
    prepared = tmp_path / "prepared"
    assert run("data", "prepare", FIXTURE / "raw", prepared, "--no-progress").exit_code == 0
    for subset in ("train", "test"):
        shutil.copy(download / f"{subset}.txt", prepared / f"{subset}.txt")

    assert read_manifest(download) == read_manifest(prepared)
    assert [row.case for row in read_manifest(download)] == NAMES
    for name in NAMES:
        (vol_a, seg_a), (vol_b, seg_b) = read_case_arrays(download, name), read_case_arrays(prepared, name)
        assert np.array_equal(seg_a, seg_b)
        np.testing.assert_allclose(vol_a, vol_b, rtol=0, atol=1e-5)
    for folder in (download, prepared):
        result = run("data", "split", folder, "--missing-rates", "mr2468", "--out", folder / "mr2468.csv")
        assert result.exit_code == 0, result.output
    assert read_split_csv(download / "mr2468.csv") == read_split_csv(prepared / "mr2468.csv")
    samples = list(VolumeDataset(download, NAMES))
    assert [tuple(sample["image"].shape) for sample in samples] == [
        (4, 129, 40, 32),
        (4, 48, 44, 36),
        (4, 114, 131, 20),
    ]


def test_check_accepts_the_download_and_reports_what_differs(tmp_path: Path) -> None:
    download = rfnet_download(tmp_path / "download")
    arrays = {path: path.read_bytes() for path in download.rglob("*.npy")}
    result = run("data", "check", download)
    assert result.exit_code == 0, result.output
    assert re.search(r"cases\s+3\n", result.output)
    assert re.search(r"preprocessing\s+not recorded \(not written by `data prepare`", result.output)
    assert re.search(r"background\s+-mean/std per modality, as the reference: 3 cases", result.output)
    assert re.search(r"volume dtype\s+float32: 3 cases", result.output)
    assert {path: path.read_bytes() for path in download.rglob("*.npy")} == arrays  # never rewritten
    assert (download / "manifest.csv").is_file()


def test_check_reports_zero_background_and_float64(tmp_path: Path) -> None:
    prepared = tmp_path / "prepared"
    assert (
        run(
            "data", "prepare", FIXTURE / "raw", prepared, "--no-progress", "--normalization", "zero-background"
        ).exit_code
        == 0
    )
    vol = prepared / "vol" / "HG_BraTS20_Training_340_vol.npy"
    np.save(vol, np.load(vol).astype(np.float64))
    result = run("data", "check", prepared)
    assert result.exit_code == 0, result.output
    assert re.search(r"preprocessing\s+crop reference, names rfnet, normalization zero-background", result.output)
    assert re.search(r"background\s+0, not the reference's -mean/std \(zero-background\): 3 cases", result.output)
    assert re.search(
        r"float32: 2 cases; float64: 1 cases \(the reference's is float32; read as float32\)", result.output
    )
    image = VolumeDataset(prepared, ["HG_BraTS20_Training_340"])[0]["image"]
    assert str(image.dtype) == "torch.float32"


def test_check_finds_a_background_that_contradicts_the_record(tmp_path: Path) -> None:
    prepared = tmp_path / "prepared"
    assert run("data", "prepare", FIXTURE / "raw", prepared, "--no-progress").exit_code == 0
    (prepared / "preprocessing.json").write_text('{"normalization": "zero-background"}')
    result = run("data", "check", prepared)
    assert result.exit_code == DATA
    assert (
        "preprocessing.json records zero-background normalization, but 3 cases have another background" in result.output
    )


def test_read_only_folder_is_indexed_in_the_cache(
    tmp_path: Path, _cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    download = rfnet_download(tmp_path / "download")
    before = snapshot(download)
    monkeypatch.setattr(index_module.os, "access", lambda path, mode: Path(path) != download)
    rows = read_manifest(download)
    assert [row.case for row in rows] == NAMES
    assert snapshot(download) == before
    assert len(list(_cache.glob("indexes/*/manifest.csv"))) == 1

    def no_reindex(data_dir: Path, name: str) -> None:
        raise AssertionError("indexed again")

    monkeypatch.setattr(index_module, "_index_row", no_reindex)
    assert read_manifest(download) == rows  # from the cache
    write_reference_layout(tmp_path / "more", ["HG_BraTS20_Training_003"])
    shutil.copy(tmp_path / "more" / "vol" / "HG_BraTS20_Training_003_vol.npy", download / "vol")
    shutil.copy(tmp_path / "more" / "seg" / "HG_BraTS20_Training_003_seg.npy", download / "seg")
    with pytest.raises(AssertionError, match="indexed again"):  # the listing changed: the index is rebuilt
        read_manifest(download)


def _break_unpaired(folder: Path) -> None:
    (folder / "seg" / "LG_BraTS20_Training_270_seg.npy").unlink()


def _break_channels(folder: Path) -> None:
    path = folder / "vol" / "HG_BraTS20_Training_340_vol.npy"
    np.save(path, np.load(path)[..., :3])


def _break_dtype(folder: Path) -> None:
    path = folder / "vol" / "HG_BraTS20_Training_340_vol.npy"
    np.save(path, np.load(path).astype(np.int16))


def _break_labels(folder: Path) -> None:
    path = folder / "seg" / "HG_BraTS20_Training_340_seg.npy"
    seg = np.load(path)
    seg[seg == 3] = 4
    np.save(path, seg)


@pytest.mark.parametrize(
    ("damage", "pattern"),
    [
        (_break_unpaired, r"^error: .*vol/LG_BraTS20_Training_270_vol.npy has no seg/LG_BraTS20_Training_270_seg.npy"),
        (
            _break_channels,
            r"^error: case HG_BraTS20_Training_340 in .*: volume has shape \(48, 44, 36, 3\), expected H x W x D x 4",
        ),
        (_break_dtype, r"^error: case HG_BraTS20_Training_340 in .*: volume is int16, expected float32"),
        (_break_labels, r"^error: case HG_BraTS20_Training_340 in .*: label map has values 4: labels must be 0..3"),
    ],
    ids=["unpaired", "channels", "dtype", "labels"],
)
def test_bad_reference_layout(tmp_path: Path, _cache: Path, damage, pattern: str) -> None:
    download = rfnet_download(tmp_path / "download")
    damage(download)
    before = snapshot(download)
    for command in (
        ("data", "check", download),
        ("data", "split", download, "--missing-rates", "mr2468", "--out", tmp_path / "s.csv"),
    ):
        result = run(*command)
        assert result.exit_code == DATA, result.output
        line = last_line(result)
        assert re.search(pattern, line), line
        assert len([text for text in result.stderr.splitlines() if text.strip()]) == 1
    assert snapshot(download) == before  # no manifest, nothing else
    assert not _cache.exists() and not (tmp_path / "s.csv").exists()


def test_list_naming_an_absent_case(tmp_path: Path) -> None:
    download = rfnet_download(tmp_path / "download")
    (download / "train.txt").write_text("HG_BraTS20_Training_002\nHG_BraTS20_Training_999\n")
    out = tmp_path / "s.csv"
    result = run("data", "split", download, "--missing-rates", "mr2468", "--out", out)
    assert result.exit_code == DATA
    assert re.search(r"^error: .*train.txt:2: case HG_BraTS20_Training_999 is not in the data set", last_line(result))
    assert not out.exists()


def test_split_with_folder_names_gets_a_prefix_hint(tmp_path: Path) -> None:
    download = rfnet_download(tmp_path / "download")
    csv = tmp_path / "bare.csv"
    csv.write_text('data_name,mask_id,mask,pos_mask_ids\nBraTS20_Training_002,0,"[False, False, False, True]",[0]\n')
    result = run("data", "check", download, "--split", csv)
    assert result.exit_code == DATA
    assert (
        "case BraTS20_Training_002 is not in the data set, which names it HG_BraTS20_Training_002 "
        "(RFNet's HG_/LG_ names)" in result.output
    )


def test_an_unfinished_prepare_is_not_indexed(tmp_path: Path) -> None:
    src = tmp_path / "raw"
    shutil.copytree(FIXTURE / "raw", src)
    bad = src / "BraTS20_Training_340" / "BraTS20_Training_340_t2.nii.gz"
    bad.write_bytes(bad.read_bytes()[:100])
    out = tmp_path / "out"
    assert run("data", "prepare", src, out, "--no-progress").exit_code == DATA
    assert list((out / "vol").iterdir())  # the cases before the bad one are complete
    with pytest.raises(
        DataError, match=r"`passion-sweep data prepare` did not finish in .*out \(manifest.csv is missing\)"
    ):
        read_manifest(out)


def test_training_patches_from_the_download(tmp_path: Path) -> None:
    download = rfnet_download(tmp_path / "download")
    run("data", "split", download, "--missing-rates", "mr2468", "--out", download / "mr2468.csv")
    split = read_split_csv(download / "mr2468.csv")
    dataset = TrainingDataset(download, list(split.names), patch_size=16, mask_type="idt", split=split)
    sample = dataset[0]
    assert tuple(sample["image"].shape) == (4, 16, 16, 16) and str(sample["image"].dtype) == "torch.float32"
    assert tuple(sample["mask"].tolist()) == split.mask_of(sample["name"])


def test_check_lists_volumes_added_after_indexing(tmp_path: Path) -> None:
    download = rfnet_download(tmp_path / "download")
    read_manifest(download)
    write_reference_layout(tmp_path / "more", ["HG_BraTS20_Training_003"])
    for kind in ("vol", "seg"):
        shutil.copy(next((tmp_path / "more" / kind).iterdir()), download / kind)
    result = run("data", "check", download)
    assert result.exit_code == DATA
    assert re.search(r"1 volumes in .*vol are not in manifest.csv: HG_BraTS20_Training_003; delete", result.output)
