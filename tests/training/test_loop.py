"""The training loop on the phantom: metrics, checkpoints, exact resume, NaN handling."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from trainables.config import RunConfig
from trainables.data.augment import Augmentation
from trainables.errors import CheckpointError, TrainingError
from trainables.training import loop
from trainables.training.checkpoint import load_checkpoint
from trainables.training.loop import EpochReport, fit


def small_config(data: Path, *overrides: str) -> RunConfig:
    base = [
        f"data.root={data}",
        f"data.split={data / 'mr2468.csv'}",
        "model.width=4",
        "model.patch_size=24",
        "train.epochs=2",
        "train.num_workers=0",
        "train.val_every=1",
    ]
    return RunConfig().with_overrides([*base, *overrides])


def test_fit_writes_metrics_checkpoint_and_reports_each_epoch(prepared_phantom: Path, tmp_path: Path) -> None:
    reports: list[EpochReport] = []
    fit(small_config(prepared_phantom), tmp_path / "run", report=reports.append)

    assert [report.epoch for report in reports] == [1, 2]
    lines = [json.loads(line) for line in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in lines] == [1, 2]
    for key in ("loss", "loss/fuse", "loss/kl", "loss/proto", "beta/t2", "rp/flair", "val/dice/WT", "lr"):
        assert all(np.isfinite(line[key]) for line in lines), key
    assert lines[1]["lr"] < lines[0]["lr"]  # poly decay
    beta = np.array([lines[-1][f"beta/{m}"] for m in ("flair", "t1ce", "t1", "t2")])
    assert np.linalg.norm(beta) == pytest.approx(2.0)  # beta is renormalised every epoch
    assert not np.allclose(beta, 1.0)
    state = load_checkpoint(tmp_path / "run/checkpoint.pt")
    assert state["epoch"] == 2 and state["config"]["model"]["width"] == 4


def test_baseline_logs_no_distillation_terms(prepared_phantom: Path, tmp_path: Path) -> None:
    config = small_config(prepared_phantom, "method.name=baseline", "train.epochs=1", "data.val_list=null")
    fit(config, tmp_path / "run")
    line = json.loads((tmp_path / "run/metrics.jsonl").read_text())
    assert "loss/kl" not in line and "rp/flair" not in line and "val/dice/WT" not in line
    assert line["beta/flair"] == 1.0


class _Interrupt(Exception):
    """Stands for a killed process: raised from the report hook after epoch 1."""


def _stop_after_first_epoch(report: EpochReport) -> None:
    if report.epoch == 1:
        raise _Interrupt


def test_resume_continues_exactly(prepared_phantom: Path, tmp_path: Path) -> None:
    straight = fit(small_config(prepared_phantom), tmp_path / "straight")
    with pytest.raises(_Interrupt):
        fit(small_config(prepared_phantom), tmp_path / "resumed", report=_stop_after_first_epoch)
    resumed = fit(small_config(prepared_phantom), tmp_path / "resumed", resume=True)

    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
    straight_lines = (tmp_path / "straight/metrics.jsonl").read_text().splitlines()
    resumed_lines = (tmp_path / "resumed/metrics.jsonl").read_text().splitlines()
    assert len(resumed_lines) == 2
    for a, b in zip(straight_lines, resumed_lines):
        a, b = json.loads(a), json.loads(b)
        assert a["loss"] == pytest.approx(b["loss"]) and a["beta/t2"] == pytest.approx(b["beta/t2"])


def test_nan_loss_stops_with_epoch_and_step_and_keeps_last_checkpoint(prepared_phantom: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    shutil.copytree(prepared_phantom, data)
    config = small_config(data, "train.epochs=1", "data.val_list=null")
    fit(config, tmp_path / "run")
    for volume in (data / "vol").glob("*_vol.npy"):
        array = np.load(volume)
        array[:] = np.nan
        np.save(volume, array)
    with pytest.raises(TrainingError, match=r"at epoch 2, step 1; last good checkpoint: .*checkpoint.pt \(epoch 1\)"):
        fit(small_config(data, "data.val_list=null"), tmp_path / "run", resume=True)
    assert load_checkpoint(tmp_path / "run/checkpoint.pt")["epoch"] == 1


def test_resume_refuses_a_checkpoint_of_another_width(prepared_phantom: Path, tmp_path: Path) -> None:
    fit(small_config(prepared_phantom, "train.epochs=1", "data.val_list=null"), tmp_path / "run")
    with pytest.raises(CheckpointError, match="resume with the same backbone, width and patch size"):
        fit(small_config(prepared_phantom, "model.width=8"), tmp_path / "run", resume=True)


@pytest.mark.parametrize(("overrides", "augment"), [([], Augmentation()), (["train.augment=false"], False)])
def test_augmentation_options_reach_the_dataset_and_the_checkpoint(
    prepared_phantom: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, overrides: list[str], augment: object
) -> None:
    built: list[object] = []
    dataset = loop.TrainingDataset

    def recording(*args: object, **kwargs: object) -> object:
        built.append(kwargs["augment"])
        return dataset(*args, **kwargs)

    monkeypatch.setattr(loop, "TrainingDataset", recording)
    fill = "background" if augment else "reference"
    expected = Augmentation(rotation_fill=fill) if augment else False
    base = ["method.name=baseline", "train.epochs=1", "data.val_list=null", f"train.rotation_fill={fill}"]
    fit(small_config(prepared_phantom, *base, *overrides), tmp_path / "run")
    assert built == [expected]
    assert load_checkpoint(tmp_path / "run/checkpoint.pt")["config"]["train"]["rotation_fill"] == fill
