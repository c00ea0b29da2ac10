"""Property-based corpus: generated specs and split CSVs either work or end with one
``error:`` line and the documented exit code, never a traceback."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.sweep.conftest import tiny_spec
from trainables.data.splits import SPLIT_CSV_HEADER

from .conftest import RUNTIME, USAGE, assert_one_line_error, run

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)  # fmt: skip
# Real keys of each section (so that generation reaches the validators), and a few others.
SECTION_KEYS = {
    "name": None,
    "data": ["path", "phantom", "train_list", "val_list"],
    "splits": ["mr2468", "a b"],
    "grid": ["method", "backbone", "seed", "split", "train.lr", "bogus"],
    "search": ["trials_per_cell", "apply_to", "space", "sampler"],
    "model": ["width", "patch_size", "backbone"],
    "train": ["epochs", "lr", "seed", "mask_type", "batch_size"],
    "passion": ["temperature", "enabled"],
    "eval": ["overlap", "cases"],
    "ray": ["storage_path", "max_concurrent_trials", "address"],
    "tracking": ["uri", "experiment"],
}


@st.composite
def damaged_specs(draw: st.DrawFn) -> dict[str, Any]:
    """The tiny spec with up to three keys replaced by generated values."""
    spec = tiny_spec(Path("/nonexistent/sweeps"))
    for _ in range(draw(st.integers(1, 3))):
        section = draw(st.sampled_from(sorted(SECTION_KEYS)))
        keys = SECTION_KEYS[section]
        if keys is None or (draw(st.booleans()) and draw(st.booleans())):
            spec[section] = draw(VALUES)
        else:
            if not isinstance(spec.get(section), dict):
                spec[section] = {}
            spec[section][draw(st.sampled_from(keys))] = draw(VALUES)
    return spec


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="ps-properties-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@SETTINGS
@given(spec=damaged_specs())
def test_generated_specs_run_dry_or_fail_with_one_line(spec: dict[str, Any], folder: Path) -> None:
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec, allow_unicode=True))
    result = run("run", path, "--dry-run")
    if result.exit_code != 0:
        assert_one_line_error(result, USAGE)


CSV_ALPHABET = st.sampled_from(list('Phantom_0123456789,"[]TrueFalse \n\r\t;\xe9\x00'))


@st.composite
def split_csvs(draw: st.DrawFn) -> bytes:
    """A split CSV: the real header (mostly) and rows of generated text, or any bytes."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=200))
    header = ",".join(SPLIT_CSV_HEADER) if draw(st.integers(0, 4)) else draw(st.text(CSV_ALPHABET, max_size=30))
    rows = draw(st.lists(st.text(CSV_ALPHABET, max_size=60), max_size=5))
    encoding = draw(st.sampled_from(["utf-8", "latin-1"]))
    return "\n".join([header, *rows]).encode(encoding, errors="replace")


@SETTINGS
@given(content=split_csvs())
def test_generated_split_csvs_check_or_fail_with_one_line(content: bytes, prepared_phantom: Path, folder: Path) -> None:
    path = folder / "split.csv"
    path.write_bytes(content)
    result = run("data", "check", prepared_phantom, "--split", path)
    if result.exit_code != 0:
        assert_one_line_error(result, RUNTIME)
