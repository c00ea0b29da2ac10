"""``passion-sweep train`` end to end and its answers to bad input."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from click.testing import CliRunner

from passion_sweep.cli import main

FAST = [
    "--set",
    "model.width=4",
    "--set",
    "model.patch_size=24",
    "--set",
    "train.num_workers=0",
    "--set",
    "train.epochs=1",
    "--set",
    "data.val_list=null",
]


def train(data: Path, out: Path, *extra: str):
    args = ["train", "--data", str(data), "--split", str(data / "mr2468.csv"), "--out", str(out), *FAST, *extra]
    return CliRunner().invoke(main, args)


def assert_one_line_error(result, exit_code: int, pattern: str) -> None:
    assert result.exit_code == exit_code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert re.search(pattern, lines[0]), lines[0]


def test_train_runs_and_resume_refuses_another_width(prepared_phantom: Path, tmp_path: Path) -> None:
    result = train(prepared_phantom, tmp_path / "run", "--method", "baseline")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run/checkpoint.pt").is_file() and (tmp_path / "run/metrics.jsonl").is_file()

    again = train(prepared_phantom, tmp_path / "run")
    assert_one_line_error(again, 2, r"already holds a run: pass --resume")

    other_width = train(prepared_phantom, tmp_path / "run", "--resume", "--set", "model.width=8")
    assert_one_line_error(other_width, 1, r"was trained with model .* resume with the same backbone, width")


def test_unknown_override_key_is_a_usage_error(prepared_phantom: Path, tmp_path: Path) -> None:
    result = train(prepared_phantom, tmp_path / "run", "--set", "train.epoch=3")
    assert_one_line_error(result, 2, r"unknown key train\.epoch \(did you mean 'epochs'\?\)")
    assert not (tmp_path / "run").exists()


def test_missing_case_in_data_folder(prepared_phantom: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(prepared_phantom, data)
    missing = (data / "mr2468.csv").read_text().splitlines()[1].split(",")[0]
    (data / "vol" / f"{missing}_vol.npy").unlink()
    result = train(data, tmp_path / "run")
    assert_one_line_error(result, 1, missing)


def test_patch_larger_than_volume(prepared_phantom: Path, tmp_path: Path) -> None:
    result = train(prepared_phantom, tmp_path / "run", "--set", "model.patch_size=64")
    assert_one_line_error(result, 1, r"patch 64 larger than volume 48x48x48")
