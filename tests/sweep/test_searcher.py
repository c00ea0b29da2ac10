"""Per-cell Optuna studies: trials handed out per cell, objectives told, state saved and restored."""

from __future__ import annotations

from pathlib import Path

import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution

from passion_sweep.sweep.searcher import CellSearch, CellStudies, Suggestion

SPACE = {
    "passion.temperature": FloatDistribution(1.0, 8.0, log=True),
    "train.mask_type": CategoricalDistribution(["idt", "pdt"]),
}


def studies(sampler: str = "tpe") -> CellStudies:
    return CellStudies([CellSearch(1), CellSearch(3, SPACE)], mode="max", sampler=sampler, seed=0)


def test_trials_are_handed_out_round_robin_until_every_cell_has_its_trials() -> None:
    search = studies()
    assert search.total == 4
    suggestions = [search.ask(f"t{index}") for index in range(5)]
    assert [s.cell for s in suggestions[:4] if s] == [0, 1, 1, 1]
    assert suggestions[4] is None
    assert suggestions[0] == Suggestion(cell=0, params={})
    for suggestion in suggestions[1:4]:
        assert suggestion is not None and set(suggestion.params) == set(SPACE)
        assert 1.0 <= suggestion.params["passion.temperature"] <= 8.0
    assert len({s.params["passion.temperature"] for s in suggestions[1:4] if s}) == 3, "distinct samples"
    assert search.ask("t1") == suggestions[1], "asking again for a live trial repeats its suggestion"


@pytest.mark.parametrize("sampler", ["tpe", "random"])
def test_state_survives_save_and_restore(tmp_path: Path, sampler: str) -> None:
    search = studies(sampler)
    first, second = search.ask("a"), search.ask("b")
    search.tell("a", 0.5)
    search.save(tmp_path / "state.json")

    restored = studies(sampler)
    restored.restore(tmp_path / "state.json")
    assert restored.get_state() == search.get_state()
    assert restored.ask("b") == second, "a live trial resumed after a restore keeps its params"
    assert first is not None and first.cell == 0
    # Cell 0 is done; cell 1 has one of three trials handed out, so two remain.
    assert [restored.ask(name).cell for name in ("c", "d")] == [1, 1]  # type: ignore[union-attr]
    assert restored.ask("e") is None


def test_tell_records_failures_and_a_later_rerun() -> None:
    search = studies()
    for name in ("a", "b", "c", "d"):
        search.ask(name)
    search.tell("b", None)
    search.tell("c", float("nan"))
    search.tell("b", 0.7)  # trial b resumed after a failure and finished
    search.tell("unknown", 1.0)
    finished = search.get_state()["finished"]
    assert {name: item["value"] for name, item in finished.items()} == {"b": 0.7, "c": None}
    assert set(search.get_state()["live"]) == {"a", "d"}


def test_searched_cell_uses_finished_trials() -> None:
    """With TPE after its random start-up, the study is rebuilt from the record each ask."""
    search = CellStudies([CellSearch(14, {"x": FloatDistribution(0.0, 1.0)})], mode="min", sampler="tpe", seed=1)
    for index in range(12):
        suggestion = search.ask(str(index))
        assert suggestion is not None
        search.tell(str(index), suggestion.params["x"])
    late = [search.ask(name) for name in ("12", "13")]
    assert all(s is not None and s.params["x"] < 0.5 for s in late), "TPE moves towards the low values"
