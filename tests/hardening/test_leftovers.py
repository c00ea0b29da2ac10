"""Names enter under one rule, and a killed run leaves nothing a rerun keeps."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from passion_sweep.sweep.spec import SPEC_FILE, parse_spec, save_spec
from passion_sweep.tracking import SweepIdentity
from tests.sweep.conftest import tiny_spec

from .conftest import RUNTIME, assert_one_line_error, files_under, run


def copy_case(raw: Path, src: Path, name: str) -> None:
    """Phantom_001 of ``raw`` as case ``name`` (folder and files renamed) in ``src``."""
    (src / name).mkdir(parents=True)
    for path in (raw / "Phantom_001").iterdir():
        shutil.copy(path, src / name / path.name.replace("Phantom_001", name))


@pytest.mark.parametrize("name", ["Case 1", "a,b", "tab\tname", "new\nline", "caf\u00e9'"])
def test_prepare_refuses_a_case_name_that_later_commands_reject(phantom_raw: Path, tmp_path: Path, name: str) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    copy_case(phantom_raw, src, "Phantom_001")
    copy_case(phantom_raw, src, name)
    result = run("data", "prepare", src, out, "--no-progress")
    assert_one_line_error(result, RUNTIME, r"case name\(s\) .* have characters other than letters")
    assert not out.exists() or files_under(out) == []


def test_a_rerun_of_prepare_removes_the_temporary_files_of_a_killed_run(phantom_raw: Path, tmp_path: Path) -> None:
    src, out = tmp_path / "src", tmp_path / "out"
    copy_case(phantom_raw, src, "Phantom_001")
    (out / "vol").mkdir(parents=True)
    (out / "vol" / ".Phantom_001_vol.npy.0a1b2c3d.tmp").write_bytes(b"half an array")
    (out / ".manifest.csv.0a1b2c3d.tmp").write_text("case,")
    result = run("data", "prepare", src, out, "--no-progress")
    assert result.exit_code == 0, result.output
    assert files_under(out) == [
        "manifest.csv",
        "preprocessing.json",
        "seg/Phantom_001_seg.npy",
        "vol/Phantom_001_vol.npy",
    ]


def test_a_sweep_whose_driver_stopped_before_tracking_says_so(tmp_path: Path) -> None:
    spec = parse_spec(tiny_spec(tmp_path / "sweeps"))
    spec.sweep_dir.mkdir(parents=True)
    save_spec(spec, spec.sweep_dir / SPEC_FILE)
    SweepIdentity.new(spec.name, spec.digest()).save(spec.sweep_dir)

    result = run("status", spec.sweep_dir)

    assert result.exit_code == 0, result.output
    assert f"never started: its driver stopped before tracking began; `passion-sweep resume {spec.sweep_dir}`" in (
        result.stdout
    )
    assert "trials: 3 pending" in result.stdout


def test_resume_drops_a_metrics_line_that_a_killed_run_left_half_written(
    prepared_phantom: Path, tmp_path: Path
) -> None:
    settings = ["model.width=4", "model.patch_size=16", "train.num_workers=0", "data.val_list=null"]
    args = ["train", "--data", prepared_phantom, "--split", prepared_phantom / "mr2468.csv", "--out", tmp_path / "run"]
    args += [part for setting in settings for part in ("--set", setting)]
    assert run(*args, "--set", "train.epochs=1").exit_code == 0
    with open(tmp_path / "run" / "metrics.jsonl", "a") as metrics:
        metrics.write('{"epoch": 2, "lo')
    result = run(*args, "--set", "train.epochs=2", "--resume")
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [1, 2]
