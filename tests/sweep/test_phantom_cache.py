"""The phantom cache under concurrency: two sweeps generating the same phantom both get it."""

from __future__ import annotations

from pathlib import Path

import pytest

from passion_sweep import phantom
from trainables.errors import DataError


def ensure(cache: Path) -> Path:
    return phantom.ensure_phantom(cache, cases=4, shape=(24, 24, 24), seed=3)


def test_a_phantom_another_sweep_finished_first_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_synthesize = phantom.synthesize_dataset

    def rival_finishes_first(raw: Path, **kwargs: object) -> None:
        # The rival sweep runs to the end while this one is still synthesising.
        monkeypatch.setattr(phantom, "synthesize_dataset", real_synthesize)
        ensure(tmp_path)
        real_synthesize(raw, **kwargs)  # type: ignore[arg-type]  # the arguments ensure_phantom passed

    monkeypatch.setattr(phantom, "synthesize_dataset", rival_finishes_first)
    folder = ensure(tmp_path)

    assert (folder / "test.txt").is_file()
    assert sorted(path.name for path in tmp_path.iterdir()) == [folder.name]  # no staging folder left


def test_a_failure_without_a_finished_phantom_still_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def disk_full(raw: Path, **kwargs: object) -> None:
        raise DataError("cannot write: No space left on device")

    monkeypatch.setattr(phantom, "synthesize_dataset", disk_full)
    with pytest.raises(DataError, match="No space left"):
        ensure(tmp_path)
    assert list(tmp_path.iterdir()) == []
