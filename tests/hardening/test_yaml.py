"""The one YAML loader: alias bombs, recursion, depth, size and duplicate keys fail fast
with one line, wherever YAML enters (spec files, ``--set`` of run and train)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.sweep.conftest import tiny_spec
from trainables.config import RunConfig
from trainables.errors import ConfigError
from trainables.safe_yaml import MAX_TEXT_BYTES, MAX_VALUES, load_yaml

from .conftest import USAGE, assert_one_line_error, run


def alias_bomb(levels: int = 9, width: int = 10) -> str:
    """ "Billion laughs": ``width ** levels`` values from a few hundred bytes."""
    lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    lines += [f"l{k}: &l{k} [{', '.join([f'*l{k - 1}'] * width)}]" for k in range(1, levels)]
    return "\n".join(lines) + "\n"


def flow_bomb(levels: int = 9, width: int = 10) -> str:
    """The same bomb as one flow value, as it would come in ``--set key=VALUE``."""
    text = f"&l0 [{', '.join(['1'] * width)}]"
    for k in range(1, levels):
        text = f"[{text}, &l{k} [{', '.join([f'*l{k - 1}'] * width)}]]"
    return text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (alias_bomb(), f"expands to more than {MAX_VALUES} values"),
        ("a: &a [*a]\n", "recursive document"),
        ("a: " + "[" * 5000 + "]" * 5000 + "\n", "nested more than 64 levels"),
        ("a: " + "{b: " * 70 + "1" + "}" * 70 + "\n", "nested more than 64 levels"),
        ("a: " + "x" * (MAX_TEXT_BYTES + 1) + "\n", "longer than"),
        ("a: [" + ", ".join(["*x"] * 1001) + "]\nx: &x 1\n", "not valid YAML|more than 1000 aliases"),
        ("name: a\nname: b\n", "line 2, column 1: duplicate key 'name'"),
        ("a: {x: 1, y: 2, x: 3}\n", "duplicate key 'x'"),
        ("a: !!python/object/apply:os.system ['true']\n", "could not determine a constructor"),
        ("a: [1,\n", "not valid YAML at line 2"),
    ],
)
def test_bad_yaml_is_one_config_error(text: str, message: str) -> None:
    started = time.monotonic()
    with pytest.raises(ConfigError, match=message) as raised:
        load_yaml(text, source="spec.yaml")
    assert time.monotonic() - started < 5
    assert str(raised.value).startswith("spec.yaml: ") and "\n" not in str(raised.value)


def test_what_real_specs_use_still_loads() -> None:
    text = "base: &base {lr: 2e-4, epochs: 3}\ntrain:\n  <<: *base\n  epochs: 5\nlists: [*base, *base]\n"
    values = load_yaml(text)
    assert values["train"] == {"lr": 0.0002, "epochs": 5}
    assert values["lists"] == [{"lr": 0.0002, "epochs": 3}] * 2
    assert load_yaml("[.inf, .nan, 1e3, 0x10, ~]")[2:] == [1000.0, 16, None]


def test_alias_bomb_in_a_spec_file_and_in_set_fails_fast_with_one_line(tmp_path: Path) -> None:
    spec = tmp_path / "bomb.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec(tmp_path)) + alias_bomb())
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(tiny_spec(tmp_path)))
    started = time.monotonic()
    assert_one_line_error(run("run", spec, "--dry-run"), USAGE, r"bomb.yaml: refused: it expands to more than")
    assert_one_line_error(
        run("run", good, "--dry-run", "--set", f"grid.seed={flow_bomb()}"), USAGE, r"^error: --set grid.seed=.*refused"
    )
    assert_one_line_error(
        run("train", "--data", tmp_path, "--out", tmp_path / "run", "--set", f"train.seed={flow_bomb()}"),
        USAGE,
        r"refused: it expands to more than",
    )
    assert time.monotonic() - started < 30
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("train.lr=[1,", r"--set train.lr=\[1,: not valid YAML at line 1, column 4"),
        ("train.lr=.nan", r"train.lr must be a finite number, got nan"),
        ("passion.temperature=-.inf", r"passion.temperature must be a finite number, got -inf"),
        ("train.seed=-1", r"train.seed must be in \[0, 4294967295\]"),
        ("grid.seed=[1, 4294967296]", r"train.seed must be in \[0, 4294967295\]"),
        ("search.space={passion.temperature: {type: float, low: .nan, high: 2}}", r"finite number"),
    ],
)
def test_bad_set_values_of_run_are_one_line(tmp_path: Path, assignment: str, message: str) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec(tmp_path)))
    assert_one_line_error(run("run", spec, "--dry-run", "--set", assignment), USAGE, message)


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("train.lr=.nan", "train.lr must be a finite number, got nan"),
        ("train.lr=[1,", "not valid YAML"),
        ("train.seed=4294967296", r"train.seed must be in \[0, 4294967295\]"),
    ],
)
def test_bad_overrides_of_a_run_config(assignment: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RunConfig().with_overrides([assignment])


def test_a_spec_that_is_not_utf8_is_one_line(tmp_path: Path) -> None:
    spec = tmp_path / "latin1.yaml"
    spec.write_bytes("name: caf\xe9\n".encode("latin-1"))
    assert_one_line_error(
        run("run", spec, "--dry-run"), USAGE, r"latin1.yaml: not UTF-8 text \(byte 0xe9 at offset 9\)"
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(alphabet=st.sampled_from(list("ab:-[]{}&*!|>'\"#,?.0 \n\t")), max_size=80))
def test_any_text_loads_or_is_a_config_error(text: str) -> None:
    try:
        load_yaml(text)
    except ConfigError as error:
        assert "\n" not in str(error)
