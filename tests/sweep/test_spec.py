"""The experiment spec: every bad input fails validation with its key path and a hint."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from passion_sweep.cli import main
from passion_sweep.sweep.spec import (
    SPEC_FILE,
    apply_overrides,
    load_spec,
    locate_sweep,
    parse_spec,
    readiness_problems,
    save_spec,
)
from trainables.errors import ConfigError

from .conftest import tiny_spec

EXPERIMENTS = Path(__file__).parents[2] / "experiments"

BAD_OVERRIDES = [
    (["nmae=x"], r"nmae: unknown key \(did you mean 'name'\?\)"),
    (["grid.methd=[passion]"], r"grid\.methd: unknown key \(did you mean 'method'\?\)"),
    (["data.phantom.casess=4"], r"data\.phantom\.casess: unknown key \(did you mean 'cases'\?\)"),
    (["train.lrr=0.1"], r"unknown key train\.lrr \(did you mean 'lr'\?\)"),
    (["train.epochs=many"], r"train\.epochs must be int, got 'many'"),
    (["ray.max_failures=two"], r"ray\.max_failures: expected a valid integer.*got 'two'"),
    (["ray.max_concurrent_trials=0"], r"ray\.max_concurrent_trials: expected greater than or equal to 1, got 0"),
    (["grid.method=[]"], r"grid\.method: expected a non-empty list of values, got \[\]"),
    (["grid.seed=1037"], r"grid\.seed: expected a valid list, got 1037"),
    (["grid.method=[basline, passion]"], r"grid\.method: unknown method 'basline' \(did you mean 'baseline'\?\)"),
    (["grid.backbone=[rfnett]"], r"grid\.backbone: unknown backbone 'rfnett' \(did you mean 'rfnet'\?\)"),
    (["grid.split=[mr2469]"], r"grid\.split: split 'mr2469' is not defined under splits \(did you mean 'mr2468'\?\)"),
    (["grid.train.mask_type=[idtt]"], r"grid\.train\.mask_type: 'idtt' is not valid: train\.mask_type must be one of"),
    (["grid.passion.enabled=[true]"], r"grid\.passion\.enabled: use grid\.method instead"),
    (["grid.train.lrr=[0.1]"], r"grid\.train\.lrr: unknown key \(did you mean 'train\.lr'\?\)"),
    (["model.backbone=rfnet"], r"model\.backbone: set this with grid\.backbone"),
    (["search.sampler=tpee"], r"search\.sampler: expected 'tpe' or 'random' \(did you mean 'tpe'\?\), got 'tpee'"),
    (
        ["search.space.passion.temprature={type: float, low: 1, high: 2}"],
        r"search\.space\.passion\.temprature: unknown key \(did you mean 'passion\.temperature'\?\)",
    ),
    (
        ["search.space.passion.temperature.type=flaot"],
        r"type: expected 'float', 'int' or 'categorical' \(did you mean 'float'\?\)",
    ),
    (
        ["search.space.passion.temperature.low=0"],
        r"search\.space\.passion\.temperature: log: true needs low > 0, got 0",
    ),
    (["search.space.passion.temperature.high=0.5"], r"low must be <= high, got low 1\.0 and high 0\.5"),
    (
        ["search.space.passion.temperature={type: float, low: 0, high: 2}"],
        r"search\.space\.passion\.temperature: 0\.0 is not valid: passion\.temperature has an invalid value 0\.0",
    ),
    (
        ["search.space.train.epochs={type: int, low: 1, high: 2.5}"],
        r"an int distribution needs integer low, high and step",
    ),
    (
        ["search.space.passion.kl_weight={type: categorical}"],
        r"a categorical distribution needs a non-empty list of choices",
    ),
    (
        ["grid.passion.temperature=[1, 2]"],
        r"search\.space\.passion\.temperature: passion\.temperature is also a grid key",
    ),
    (
        ["search.trials_per_cell=3", "search.space={}"],
        r"search\.trials_per_cell: trials_per_cell is 3 but search\.space is empty",
    ),
    (["search.apply_to.method=[pasion]"], r"search\.apply_to\.method: 'pasion' is not one of grid\.method"),
    (["search.apply_to.seeds=[1]"], r"search\.apply_to\.seeds: not a grid key"),
    (["splits.mr2468.missing_rates=mr24"], r"splits\.mr2468\.missing_rates: missing rates 'mr24'"),
    (["splits.mr2468.csv=a.csv"], r"splits\.mr2468: give exactly one of missing_rates .* and csv"),
    (["data.path=/data"], r"data: give exactly one of data\.path .* and data\.phantom"),
    (["data.phantom.shape=[4, 32, 32]"], r"data\.phantom\.shape: every size must be >= 8, got \[4, 32, 32\]"),
    (["resources.gpu=1.5"], r"resources\.gpu: a trial takes a fraction of one GPU or whole GPUs, got 1\.5"),
    (
        ["resources.gpu=0.5", "resources.trials_per_gpu=4"],
        r"resources: give resources\.gpu \(0\.5\) or resources\.trials_per_gpu \(4\), not both: trials_per_gpu: 4 means gpu: 0\.25",
    ),
    (["train.precision=fp16-amp"], r"train\.precision: fp16-amp trains on CUDA only, but the trials get no GPU"),
    (["resources.trials_per_gpu=0"], r"resources\.trials_per_gpu: expected greater than or equal to 1, got 0"),
    (["eval.overlap=1"], r"eval\.overlap: expected less than 1, got 1"),
    (["name=my sweep"], r"name: expected letters, digits, '_', '\.' or '-' \(a folder name\), got 'my sweep'"),
    (["splits={}"], r"splits: mask_type idt needs a missing-rate split"),
]


def write_spec(folder: Path, values: dict[str, Any], name: str = "spec.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(values, sort_keys=False))
    return path


@pytest.mark.parametrize(("overrides", "pattern"), BAD_OVERRIDES, ids=[case[0][0] for case in BAD_OVERRIDES])
def test_bad_spec_fails_with_key_path_and_hint(tmp_path: Path, overrides: list[str], pattern: str) -> None:
    path = write_spec(tmp_path, tiny_spec(tmp_path))
    with pytest.raises(ConfigError, match=pattern) as caught:
        load_spec(path, overrides)
    assert str(caught.value).startswith(f"{path}: "), "the message names the spec file"


def test_missing_name_and_non_mapping(tmp_path: Path) -> None:
    values = tiny_spec(tmp_path)
    del values["name"]
    with pytest.raises(ConfigError, match=r"spec: name: required key is missing"):
        parse_spec(values)
    with pytest.raises(ConfigError, match=r"expected a mapping of spec keys, got list"):
        parse_spec([1, 2])


def test_more_problems_are_counted(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\(and 1 more problem\(s\)\)"):
        parse_spec({**tiny_spec(tmp_path), "ray": {"max_failures": "two"}, "eval": {"overlap": 2}})


@pytest.mark.parametrize(
    ("text", "pattern"),
    [("name: [unclosed", r"not valid YAML"), ("", r"expected a mapping of spec keys, got NoneType")],
)
def test_unreadable_spec_files(tmp_path: Path, text: str, pattern: str) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=pattern):
        load_spec(path)
    with pytest.raises(ConfigError, match=r"cannot read spec"):
        load_spec(tmp_path / "absent.yaml")


def test_malformed_override() -> None:
    with pytest.raises(ConfigError, match=r"--set 'train\.epochs': expected key\.path=value"):
        apply_overrides({}, ["train.epochs"])


def test_overrides_reach_dotted_grid_and_space_keys() -> None:
    values = apply_overrides(
        {"grid": {"passion.kl_weight": [0.5]}},
        ["grid.passion.kl_weight=[0.1, 1.0]", "search.space.passion.eta.high=0.1", "train.lr=2e-4"],
    )
    assert values["grid"] == {"passion.kl_weight": [0.1, 1.0]}
    assert values["search"] == {"space": {"passion.eta": {"high": 0.1}}}
    assert values["train"]["lr"] == pytest.approx(2e-4)  # YAML 1.1 would read "2e-4" as a string


def test_resolved_spec_is_complete_and_round_trips(tmp_path: Path) -> None:
    path = write_spec(tmp_path, tiny_spec(Path("relative-storage")))
    spec = load_spec(path, base_dir=tmp_path)
    assert spec.ray.storage_path == tmp_path / "relative-storage"
    assert spec.tracking.uri == f"sqlite:///{tmp_path / 'relative-storage' / 'mlflow.db'}"
    assert spec.tracking.experiment == "tiny"
    assert spec.data.phantom is not None and spec.data.phantom.cache == tmp_path / "relative-storage" / "phantom"
    assert spec.grid["split"] == ["mr2468"]  # default: every split defined
    assert spec.train["lr_power"] == 0.9 and spec.passion["temperature"] == 4.0  # reference defaults filled in
    save_spec(spec, tmp_path / SPEC_FILE)
    again = load_spec(tmp_path / SPEC_FILE)
    assert again == spec and again.digest() == spec.digest()
    assert load_spec(path, ["train.epochs=3"], base_dir=tmp_path).digest() != spec.digest()


def test_trials_per_gpu_is_a_gpu_fraction_and_round_trips(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path, tiny_spec(tmp_path)), ["resources.trials_per_gpu=4"])
    assert spec.resources.gpu_per_trial == 0.25 and spec.resources.gpu == 0
    save_spec(spec, tmp_path / SPEC_FILE)
    assert load_spec(tmp_path / SPEC_FILE) == spec
    assert parse_spec(tiny_spec(tmp_path)).resources.gpu_per_trial == 0, "default: no GPU"


def test_run_config_of_a_cell(tmp_path: Path) -> None:
    spec = parse_spec(tiny_spec(tmp_path))
    config = spec.run_config(
        {"method": "baseline", "split": "mr2468", "passion.temperature": 2.0}, data={"root": "/data", "split": "/s.csv"}
    )
    assert not config.passion.enabled and config.passion.temperature == 2.0
    assert config.data.root == "/data" and config.data.split == "/s.csv"
    assert config.model.width == 4 and config.train.epochs == 2


def test_readiness_problems(tmp_path: Path) -> None:
    values = tiny_spec(
        tmp_path,
        data={"path": str(tmp_path / "absent")},
        splits={"own": {"csv": str(tmp_path / "own.csv")}},
        grid={"backbone": ["rfnet", "mmformer"], "method": ["baseline", "passion"]},
        model={"width": 4, "patch_size": 32},
    )
    problems = readiness_problems(parse_spec(values))
    assert any(re.search(r"data\.path: .*absent does not exist", problem) for problem in problems)
    assert any(re.search(r"splits\.own\.csv: .*own\.csv does not exist", problem) for problem in problems)
    assert readiness_problems(parse_spec(tiny_spec(tmp_path))) == []


def test_locate_sweep(tmp_path: Path) -> None:
    (tmp_path / SPEC_FILE).write_text("name: x\n")
    assert locate_sweep(tmp_path) == tmp_path
    with pytest.raises(ConfigError, match=r"no sweep nowhere: neither .* holds a spec\.yaml"):
        locate_sweep("nowhere")


def test_cli_reports_a_bad_spec_in_one_line_with_exit_code_2(tmp_path: Path) -> None:
    path = write_spec(tmp_path, tiny_spec(tmp_path))
    result = CliRunner().invoke(main, ["run", str(path), "--dry-run", "--set", "grid.methd=[passion]"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [f"error: {path}: grid.methd: unknown key (did you mean 'method'?)"]


def test_demo_dry_run() -> None:
    result = CliRunner().invoke(main, ["run", str(EXPERIMENTS / "demo.yaml"), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "4 grid cells, 6 trials" in result.output
    assert "not ready" not in result.output


def test_table1_dry_run_works_without_data_but_run_refuses(tmp_path: Path) -> None:
    storage = ["--set", f"ray.storage_path={tmp_path}"]
    result = CliRunner().invoke(main, ["run", str(EXPERIMENTS / "table1.yaml"), "--dry-run", *storage])
    assert result.exit_code == 0, result.output
    assert "48 grid cells, 48 trials" in result.output
    assert re.search(r"\n  32 +m2ftrans +mr2468 +baseline", result.output), "every backbone is registered"
    assert "not ready: data.path:" in result.output
    refused = CliRunner().invoke(main, ["run", str(EXPERIMENTS / "table1.yaml"), *storage])
    assert refused.exit_code == 2
    assert re.match(
        r"error: sweep table1 cannot start: data\.path: .*BRATS2020_Training_none_npy does not exist", refused.output
    )
    assert not (tmp_path / "table1").exists(), "nothing starts before the spec is ready"


def test_every_backbone_must_take_the_width_and_patch_size(tmp_path: Path) -> None:
    methods = ["baseline", "passion"]
    values = tiny_spec(tmp_path, grid={"backbone": ["rfnet", "mmformer"], "method": methods}, model={"patch_size": 24})
    with pytest.raises(ConfigError, match=r"model: patch_size must be a multiple of 16 and at least 32 for mmformer"):
        parse_spec(values)
    values = tiny_spec(tmp_path, grid={"backbone": ["rfnet"], "method": methods, "model.width": [2, 4]})
    with pytest.raises(ConfigError, match=r"model: width must be >= 4 for rfnet, got 2"):
        parse_spec(values)
