"""The ``passion-sweep data`` commands end to end, and every bad input of the issue:
exit code 2 for usage errors and 1 for data errors, one line on stderr, no traceback,
nothing half-written."""

from __future__ import annotations

import gzip
import re
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from click.testing import CliRunner, Result

from passion_sweep.cli import main
from trainables.data import read_split_csv

USAGE, DATA = 2, 1


def run(*args: object) -> Result:
    return CliRunner().invoke(main, [str(arg) for arg in args])


def assert_fails(result: Result, exit_code: int, pattern: str) -> None:
    """The command failed with ``exit_code`` and a last stderr line matching ``pattern``;
    library errors (``error: ...``) are the only stderr line."""
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert re.search(pattern, lines[-1]), lines[-1]
    if lines[-1].startswith("error: "):
        assert len(lines) == 1, lines


def files_under(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


def test_synth_prepare_split_check_round_trip(tmp_path: Path) -> None:
    raw, data = tmp_path / "raw", tmp_path / "data"
    result = run("data", "synth", raw, "--cases", 5, "--shape", "32,32,24", "--seed", 3)
    assert result.exit_code == 0 and "wrote 5 phantom cases of shape 32x32x24" in result.output
    result = run("data", "prepare", raw, data, "--workers", 2, "--no-progress")
    assert result.exit_code == 0 and "prepared 5 cases" in result.output
    result = run("data", "split", data, "--test", 0.2, "--val", 0.2)
    assert result.exit_code == 0 and "train 3, val 1, test 1" in result.output
    result = run(
        "data", "split", data, "--missing-rates", "flair=0.5,t1ce=0.5,t1=0.5,t2=0.5", "--out", data / "mr5555.csv"
    )
    assert result.exit_code == 0 and re.search(r"3 cases; available flair \d, t1ce \d, t1 \d, t2 \d", result.output)
    assert read_split_csv(data / "mr5555.csv").names == tuple((data / "train.txt").read_text().split())
    result = run("data", "check", data, "--split", data / "mr5555.csv")
    assert result.exit_code == 0, result.output
    assert re.search(r"cases\s+5\n.*smallest shape\s+32x32x24", result.output, re.S)
    assert re.search(r"case lists\s+train 3, val 1, test 1", result.output) and re.search(
        r"problems\s+0", result.output
    )
    assert not [name for name in files_under(tmp_path) if name.endswith(".tmp")]


def test_check_reports_every_problem(prepared_phantom: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(prepared_phantom, data)
    np.save(data / "seg" / "Phantom_002_seg.npy", np.full((48, 48, 48), 5, dtype=np.uint8))
    (data / "vol" / "Phantom_003_vol.npy").write_bytes((data / "vol" / "Phantom_003_vol.npy").read_bytes()[:1000])
    (data / "val.txt").write_text("Phantom_001\n")  # also in train.txt or test.txt
    result = run("data", "check", data, "--split", data / "mr2468.csv")
    assert_fails(result, DATA, r"^error: \d problem\(s\) in .*: see above$")
    assert "case Phantom_002: label map has values 5: labels must be 0..3" in result.stdout
    assert re.search(r"cannot read .*Phantom_003_vol.npy", result.stdout)
    assert re.search(r"cases are in both \w+.txt and \w+.txt: Phantom_001", result.stdout)


def test_check_needs_a_prepared_data_set(tmp_path: Path) -> None:
    assert_fails(
        run("data", "check", tmp_path),
        DATA,
        r"^error: .* is not a data set: it has neither manifest.csv nor the vol/ and seg/ folders .*"
        r"prepare one with `passion-sweep data prepare",
    )


# Bad inputs of prepare: each leaves no array of the bad case, no temporary file and no manifest.


@pytest.fixture
def one_case(phantom_raw: Path, tmp_path: Path) -> Path:
    """A copy of one phantom case folder in its own source folder; returns the case folder."""
    shutil.copytree(phantom_raw / "Phantom_001", tmp_path / "src" / "Phantom_001")
    return tmp_path / "src" / "Phantom_001"


def _prepare_fails(case: Path, exit_code: int, pattern: str) -> None:
    out = case.parent.parent / "out"
    assert_fails(run("data", "prepare", case.parent, out, "--no-progress"), exit_code, pattern)
    assert not out.exists() or files_under(out) == []


def _resave(path: Path, voxels: np.ndarray, affine: np.ndarray | None = None) -> None:
    nib.save(nib.Nifti1Image(voxels, np.eye(4) if affine is None else affine), path)


def test_case_missing_a_modality(one_case: Path) -> None:
    (one_case / "Phantom_001_t1ce.nii.gz").unlink()
    _prepare_fails(
        one_case,
        DATA,
        r"^error: case folder .*Phantom_001 has no Phantom_001_t1ce.nii.gz \(or .nii\): every case needs",
    )


def test_truncated_nifti(one_case: Path) -> None:
    path = one_case / "Phantom_001_t2.nii.gz"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    _prepare_fails(
        one_case, DATA, r"^error: cannot read .*Phantom_001_t2.nii.gz: .*truncated or not NIfTI, re-export it$"
    )


def test_shapes_differ_within_a_case(one_case: Path) -> None:
    path = one_case / "Phantom_001_t1.nii.gz"
    _resave(path, np.asarray(nib.load(path).dataobj)[:, :, :40])
    _prepare_fails(
        one_case,
        DATA,
        r"^error: .*Phantom_001_t1.nii.gz has shape \(48, 48, 40\) but Phantom_001_flair.nii.gz has \(48, 48, 48\)",
    )


def test_affines_differ_within_a_case(one_case: Path) -> None:
    path = one_case / "Phantom_001_seg.nii.gz"
    _resave(path, np.asarray(nib.load(path).dataobj), np.diag([2.0, 1.0, 1.0, 1.0]))
    _prepare_fails(one_case, DATA, r"^error: .*Phantom_001_seg.nii.gz has another affine than Phantom_001_flair.nii.gz")


def test_label_values_outside_brats(one_case: Path) -> None:
    path = one_case / "Phantom_001_seg.nii.gz"
    label = np.asarray(nib.load(path).dataobj).copy()
    label[label == 4] = 3  # the BraTS 2023 convention
    _resave(path, label)
    _prepare_fails(one_case, DATA, r"^error: .*Phantom_001_seg.nii.gz has label values 3 outside \{0, 1, 2, 4\}")


def test_nii_and_float_files_are_accepted(one_case: Path) -> None:
    for kind in ("flair", "seg"):
        path = one_case / f"Phantom_001_{kind}.nii.gz"
        image = nib.load(path)
        nib.save(
            nib.Nifti1Image(np.asarray(image.dataobj).astype(np.float64), image.affine),
            one_case / f"Phantom_001_{kind}.nii",
        )
        path.unlink()
    result = run("data", "prepare", one_case.parent, one_case.parent.parent / "out", "--no-progress")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("command", ["synth", "prepare"])
def test_output_folder_that_is_a_file(phantom_raw: Path, tmp_path: Path, command: str) -> None:
    out = tmp_path / "out"
    out.write_text("not a folder")
    args = (
        ("data", "synth", out, "--cases", 1)
        if command == "synth"
        else ("data", "prepare", phantom_raw, out, "--no-progress")
    )
    assert_fails(run(*args), USAGE, r"^error: output folder .*out is a file")
    assert out.read_text() == "not a folder" and files_under(tmp_path) == ["out"]


# Bad inputs of split and of split files.


@pytest.mark.parametrize(
    ("rates", "pattern"),
    [
        ("flair=0.6,t1ce=1.0,t1=0.2,t2=0.8", r"missing rate of t1ce must be >= 0 and < 1, got 1.0"),
        ("flair=0.6,t1c=0.4,t1=0.2,t2=0.8", r"unknown modality 't1c' in missing rates \(did you mean t1ce\?\)"),
    ],
)
def test_bad_missing_rates(prepared_phantom: Path, tmp_path: Path, rates: str, pattern: str) -> None:
    out = tmp_path / "split.csv"
    result = run("data", "split", prepared_phantom, "--missing-rates", rates, "--out", out)
    assert_fails(result, USAGE, r"^error: Invalid value for '--missing-rates': " + pattern)
    assert not out.exists()


def test_missing_rates_need_out(prepared_phantom: Path) -> None:
    assert_fails(
        run("data", "split", prepared_phantom, "--missing-rates", "mr2468"),
        USAGE,
        r"--out names the CSV of a missing-rate split .*: pass it with one, and only then",
    )


@pytest.mark.parametrize(
    ("row", "pattern"),
    [
        (None, r":1: header must be data_name,mask_id,mask,pos_mask_ids"),
        (
            'Phantom_001,10,"[True, True, Ture, False]","[1, 2, 3, 5, 6, 9, 10]"',
            r":2: mask .* is not 4 True/False values",
        ),
        ('Phantom_042,0,"[False, False, False, True]",[0]', r":2: case Phantom_042 is not in the data set"),
        ('Phantom_001,0,"[False, False, False, False]",[]', r":2: case Phantom_001 has no modality"),
    ],
)
def test_malformed_split_csv(prepared_phantom: Path, tmp_path: Path, row: str | None, pattern: str) -> None:
    path = tmp_path / "split.csv"
    path.write_text(
        "data_name,mask_id,mask pos_mask_ids\n" if row is None else f"data_name,mask_id,mask,pos_mask_ids\n{row}\n"
    )
    result = run("data", "check", prepared_phantom, "--split", path)
    assert_fails(result, DATA, r"^error: 1 problem\(s\) in")
    assert re.search(re.escape(f"problem: {path}") + pattern, result.stdout)


def test_split_without_train_list(prepared_phantom: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(prepared_phantom / "manifest.csv", data)
    result = run("data", "split", data, "--missing-rates", "mr2468", "--out", data / "split.csv")
    assert_fails(result, DATA, r"^error: case list .*train.txt not found: run `passion-sweep data split")
    assert not (data / "split.csv").exists()


def test_truncated_gzip_is_reported_not_raised(one_case: Path) -> None:
    path = one_case / "Phantom_001_flair.nii.gz"
    path.write_bytes(gzip.compress(b"not a nifti header"))
    _prepare_fails(one_case, DATA, r"^error: cannot read .*Phantom_001_flair.nii.gz")
