"""Choosing the resume point of a sweep whose driver was killed while writing Tune's state."""

from __future__ import annotations

import json
import logging
import pickle
from collections.abc import Callable
from pathlib import Path

import pytest

from passion_sweep.sweep.resume_point import TUNER_FILE, settle_resume_point
from passion_sweep.sweep.spec import SPEC_FILE, parse_spec, save_spec
from passion_sweep.tracking import SweepIdentity
from tests.hardening.conftest import USAGE, assert_one_line_error, run

from .conftest import tiny_spec

OLD, MIDDLE, NEW = "2026-01-01_10-00-00", "2026-01-01_10-30-00", "2026-01-01_11-00-00"
Damage = Callable[[bytes], bytes]


def write_session(directory: Path, session: str) -> list[Path]:
    """The three files of an intact resume point, as Tune and the sweep's searcher write them."""
    files = {
        f"experiment_state-{session}.json": json.dumps({"trial_data": [["{}", "{}"]], "runner_data": {}}).encode(),
        f"search_gen_state-{session}.json": pickle.dumps({"counter": 1, "total_samples": 3, "finished": False}),
        f"searcher-state-{session}.pkl": json.dumps(
            {"live": {"a1": {"cell": 0, "params": {}}}, "finished": {}}
        ).encode(),
    }
    for name, data in files.items():
        (directory / name).write_bytes(data)
    return [directory / name for name in files]


@pytest.fixture
def sweep_dir(tmp_path: Path) -> Path:
    (tmp_path / TUNER_FILE).write_bytes(pickle.dumps({"trainable": "_train_trial"}))
    return tmp_path


def names(directory: Path) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


def assert_resumes_from(old: list[Path], new: list[Path]) -> None:
    """Only ``tuner.pkl`` and the two sessions are left, the newest names holding the old state."""
    directory = old[0].parent
    assert names(directory) == sorted([TUNER_FILE, *(path.name for path in [*old, *new])])
    assert [path.read_bytes() for path in new] == [path.read_bytes() for path in old]


def test_intact_state_is_left_alone(sweep_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_session(sweep_dir, OLD)
    write_session(sweep_dir, NEW)
    before = names(sweep_dir)

    assert settle_resume_point(sweep_dir)

    assert names(sweep_dir) == before
    assert not caplog.records


EMPTY: Damage = lambda data: b""  # noqa: E731
HALF: Damage = lambda data: data[: len(data) // 2]  # noqa: E731


@pytest.mark.parametrize("damage", [EMPTY, HALF], ids=["empty", "half"])
@pytest.mark.parametrize("which", [0, 1, 2], ids=["experiment_state", "search_gen_state", "searcher-state"])
def test_a_damaged_newest_session_falls_back_to_the_previous_one(
    sweep_dir: Path, caplog: pytest.LogCaptureFixture, which: int, damage: Damage
) -> None:
    old = write_session(sweep_dir, OLD)
    new = write_session(sweep_dir, NEW)
    new[which].write_bytes(damage(new[which].read_bytes()))

    with caplog.at_level(logging.WARNING):
        assert settle_resume_point(sweep_dir)

    assert_resumes_from(old, new)  # the whole damaged session is replaced
    [record] = caplog.records
    assert (
        f"(session {NEW}) is damaged" in record.getMessage() and f"resuming from session {OLD}" in record.getMessage()
    )


def test_a_session_missing_a_file_is_not_a_resume_point(sweep_dir: Path) -> None:
    old = write_session(sweep_dir, OLD)
    new = write_session(sweep_dir, NEW)
    new[2].unlink()  # the copy stopped before the searcher's state

    assert settle_resume_point(sweep_dir)
    assert_resumes_from(old, new)


def test_a_state_without_trials_is_not_a_resume_point(sweep_dir: Path) -> None:
    old = write_session(sweep_dir, OLD)
    new = write_session(sweep_dir, NEW)
    new[0].write_text(json.dumps({"trial_data": [], "runner_data": {}}))

    assert settle_resume_point(sweep_dir)
    assert_resumes_from(old, new)


def test_sessions_between_the_intact_and_the_newest_go(sweep_dir: Path) -> None:
    old = write_session(sweep_dir, OLD)
    write_session(sweep_dir, MIDDLE)[0].write_bytes(b"")
    new = write_session(sweep_dir, NEW)
    new[1].write_bytes(new[1].read_bytes()[:5])

    assert settle_resume_point(sweep_dir)
    assert_resumes_from(old, new)


def test_no_intact_session_starts_the_trials_anew(sweep_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_session(sweep_dir, OLD)[0].write_bytes(b"")

    with caplog.at_level(logging.WARNING):
        assert not settle_resume_point(sweep_dir)

    assert names(sweep_dir) == [], "no damaged file is left for Tune to read later"
    assert "starting the sweep's trials anew" in caplog.text


def test_a_damaged_tuner_file_starts_the_trials_anew(sweep_dir: Path) -> None:
    write_session(sweep_dir, OLD)
    tuner = sweep_dir / TUNER_FILE
    tuner.write_bytes(tuner.read_bytes()[:-3])

    assert not settle_resume_point(sweep_dir)
    assert names(sweep_dir) == []


def test_a_sweep_that_never_started_is_quiet(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "spec.yaml").write_text("name: x\n")

    with caplog.at_level(logging.WARNING):
        assert not settle_resume_point(tmp_path)

    assert names(tmp_path) == ["spec.yaml"] and not caplog.records


@pytest.mark.slow
def test_a_tune_state_that_does_not_load_is_one_line(ray_cluster: str, phantom_cache: Path, tmp_path: Path) -> None:
    spec = parse_spec(tiny_spec(tmp_path, cache=phantom_cache, name="foreign"))
    spec.sweep_dir.mkdir()
    save_spec(spec, spec.sweep_dir / SPEC_FILE)
    SweepIdentity.new(spec.name, spec.digest()).save(spec.sweep_dir)
    # A complete pickle (so the resume point counts as intact) of a class this Ray lacks.
    (spec.sweep_dir / TUNER_FILE).write_bytes(b"cray_of_another_version\nTuner\n.")
    write_session(spec.sweep_dir, OLD)

    result = run("resume", spec.sweep_dir)

    assert_one_line_error(result, USAGE, r"cannot resume sweep foreign: Tune's state in .* does not load here")
