"""``passion-sweep import-checkpoint``: reference weights become an evaluable checkpoint."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from passion_sweep.cli import main
from tests.parity.fixtures import reference_parameters
from trainables.backbones import build_backbone
from trainables.backbones.reference import load_reference_state_dict
from trainables.errors import CheckpointError
from trainables.training import load_model


def reference_checkpoint(path: Path, *, drop: str | None = None, reshape: str | None = None) -> dict[str, torch.Tensor]:
    """A file shaped like the reference train.py's ``model_last.pth`` (DataParallel names), random weights."""
    generator = torch.Generator().manual_seed(0)
    state = {}
    for entry in reference_parameters("rfnet"):
        shape = entry["shape"] if entry["name"] != reshape else [entry["shape"][0] + 1, *entry["shape"][1:]]
        if entry["name"] != drop:
            state[f"module.{entry['name']}"] = torch.randn(shape, generator=generator)
    torch.save({"epoch": 299, "state_dict": state, "optim_dict": {"state": {}, "param_groups": []}}, path)
    return state


def import_checkpoint(source: Path, out: Path):
    return CliRunner().invoke(main, ["import-checkpoint", str(source), "--backbone", "rfnet", "--out", str(out)])


def assert_one_line_error(result, pattern: str) -> None:
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert re.search(pattern, lines[0]), lines[0]


def test_imported_weights_load_as_the_reference_saved_them(tmp_path: Path) -> None:
    state = reference_checkpoint(tmp_path / "model_last.pth")
    result = import_checkpoint(tmp_path / "model_last.pth", tmp_path / "run/checkpoint.pt")
    assert result.exit_code == 0, result.output
    model, config = load_model(tmp_path / "run/checkpoint.pt")
    assert config["model"] == {"backbone": "rfnet", "width": 8, "patch_size": 80}
    ours = dict(model.named_parameters())
    for name, tensor in state.items():
        torch.testing.assert_close(
            ours[model.reference_name_to_ours(name.removeprefix("module."))], tensor, rtol=0, atol=0
        )
    assert len(ours) == len(state)
    saved = torch.load(tmp_path / "run/checkpoint.pt", weights_only=True)
    assert saved["epoch"] == 300 and saved["imported_from"]["reference_epoch"] == 299


@pytest.mark.parametrize(
    ("broken", "pattern"),
    [
        ({"drop": "decoder_sep.seg_layer.bias"}, r"no tensor for RFNet's 'separate_decoder\.head\.bias'"),
        (
            {"reshape": "t2_encoder.e3_c2.conv.weight"},
            r"'t2_encoder\.e3_c2\.conv\.weight' has shape \(33, 32, 3, 3, 3\)",
        ),
    ],
)
def test_a_tensor_that_does_not_fit_is_named_and_nothing_is_written(tmp_path: Path, broken: dict, pattern: str) -> None:
    reference_checkpoint(tmp_path / "model_last.pth", **broken)
    result = import_checkpoint(tmp_path / "model_last.pth", tmp_path / "checkpoint.pt")
    assert_one_line_error(result, pattern)
    assert not (tmp_path / "checkpoint.pt").exists()


def test_a_file_that_is_not_a_reference_checkpoint_is_refused(tmp_path: Path) -> None:
    torch.save({"weights": torch.zeros(1)}, tmp_path / "other.pth")
    assert_one_line_error(
        import_checkpoint(tmp_path / "other.pth", tmp_path / "c.pt"), r"is not a reference checkpoint"
    )
    (tmp_path / "text.pth").write_text("not a checkpoint")
    assert_one_line_error(
        import_checkpoint(tmp_path / "text.pth", tmp_path / "c.pt"), r"cannot read reference checkpoint"
    )


def test_an_unknown_reference_name_is_named() -> None:
    model = build_backbone("rfnet", width=8, patch_size=80)
    with pytest.raises(CheckpointError, match=r"'decoder_fuse\.RFM5\.short_cut\.0\.conv\.weight' has no counterpart"):
        load_reference_state_dict(model, {"decoder_fuse.RFM5.short_cut.0.conv.weight": torch.zeros(1)})


def test_training_cannot_resume_imported_weights(prepared_phantom: Path, tmp_path: Path) -> None:
    reference_checkpoint(tmp_path / "model_last.pth")
    assert import_checkpoint(tmp_path / "model_last.pth", tmp_path / "run/checkpoint.pt").exit_code == 0
    args = ["train", "--data", str(prepared_phantom), "--split", str(prepared_phantom / "mr2468.csv")]
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "run"), "--resume"])
    assert_one_line_error(result, r"holds imported weights without optimizer state: evaluate it, or train afresh")
