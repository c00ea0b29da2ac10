"""One Optuna study per grid cell, asked and told trial by trial: the search of a sweep.

Optuna's own Ray integration searches one space, but a sweep is a grid of cells with
a search inside each. :class:`CellStudies` keeps the whole sweep in one Tune run: it
hands out the trials of every cell (round-robin over cells, so each cell gets results
early), samples each searched cell's space with that cell's Optuna study, and takes the
objective of finished trials back. Its state is a plain record of trials, saved with
the Tune experiment and restored on resume; the studies are rebuilt from it, so a
sweep resumed after its driver was killed continues the same searches. The Ray
``Searcher`` around it lives in :mod:`passion_sweep.sweep.launcher`.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import TrialState, create_trial

__all__ = ["CellSearch", "Suggestion", "CellStudies"]

logger = logging.getLogger(__name__)

Sampler = Literal["tpe", "random"]


@dataclass(frozen=True)
class CellSearch:
    """What to search in one grid cell.

    Attributes:
        trials: number of trials of the cell.
        space: key to Optuna distribution; empty for a cell run once as specified.
    """

    trials: int
    space: Mapping[str, BaseDistribution] = field(default_factory=dict)


@dataclass(frozen=True)
class Suggestion:
    """One trial handed out: its cell and the sampled values (``section.key`` to value)."""

    cell: int
    params: dict[str, Any]


class CellStudies:
    """Per-cell Optuna studies behind one sweep (see the module docstring).

    Args:
        cells: the search of each cell, in cell order.
        mode: ``max`` or ``min``: direction of the objective.
        sampler: ``tpe`` or ``random``.
        seed: sampler seed; every ask draws from its own seed derived from it.
    """

    def __init__(
        self, cells: Sequence[CellSearch], *, mode: Literal["max", "min"], sampler: Sampler, seed: int
    ) -> None:
        self._cells = list(cells)
        self._direction: Literal["maximize", "minimize"] = "maximize" if mode == "max" else "minimize"
        self._sampler = sampler
        self._seed = seed
        self._live: dict[str, Suggestion] = {}
        self._finished: dict[str, tuple[Suggestion, float | None]] = {}

    @property
    def total(self) -> int:
        """Number of trials of all cells."""
        return sum(cell.trials for cell in self._cells)

    def _handed_out(self, cell: int) -> int:
        records = [*self._live.values(), *(suggestion for suggestion, _ in self._finished.values())]
        return sum(1 for suggestion in records if suggestion.cell == cell)

    def ask(self, trial_id: str) -> Suggestion | None:
        """The next trial, for the cell with the fewest trials handed out; ``None`` when
        every trial has been handed out."""
        if trial_id in self._live:
            return self._live[trial_id]
        open_cells = [index for index, cell in enumerate(self._cells) if self._handed_out(index) < cell.trials]
        if not open_cells:
            return None
        cell = min(open_cells, key=lambda index: (self._handed_out(index), index))
        params: dict[str, Any] = {}
        if self._cells[cell].space:
            trial = self._study(cell).ask(dict(self._cells[cell].space))
            params = dict(trial.params)
        suggestion = Suggestion(cell=cell, params=params)
        self._live[trial_id] = suggestion
        return suggestion

    def tell(self, trial_id: str, value: float | None) -> None:
        """Record the objective of a finished trial (``None``: failed or no objective).

        A trial told twice (run again after a resume) keeps its latest value.
        """
        suggestion = self._live.pop(trial_id, None)
        if suggestion is None and trial_id in self._finished:
            suggestion = self._finished[trial_id][0]
        if suggestion is None:
            logger.warning("result of unknown trial %s ignored", trial_id)
            return
        self._finished[trial_id] = (suggestion, float(value) if value is not None and math.isfinite(value) else None)

    def _study(self, cell: int) -> optuna.Study:
        """The cell's study rebuilt from the record: finished trials told, live ones running."""
        # SeedSequence: consecutive integer seeds give correlated first draws in numpy's legacy RNG.
        seed = int(np.random.SeedSequence([self._seed, cell, self._handed_out(cell)]).generate_state(1)[0])
        sampler = (
            optuna.samplers.TPESampler(seed=seed)
            if self._sampler == "tpe"
            else optuna.samplers.RandomSampler(seed=seed)
        )
        study = optuna.create_study(direction=self._direction, sampler=sampler)
        space = dict(self._cells[cell].space)
        for suggestion, value in self._finished.values():
            if suggestion.cell == cell:
                state = TrialState.FAIL if value is None else TrialState.COMPLETE
                study.add_trial(create_trial(params=suggestion.params, distributions=space, value=value, state=state))
        for suggestion in self._live.values():
            if suggestion.cell == cell:
                study.enqueue_trial(suggestion.params)
                study.ask(space)
        return study

    def get_state(self) -> dict[str, Any]:
        """The record of handed-out trials, JSON-compatible."""
        return {
            "live": {trial_id: vars(suggestion) for trial_id, suggestion in self._live.items()},
            "finished": {
                trial_id: {**vars(suggestion), "value": value}
                for trial_id, (suggestion, value) in self._finished.items()
            },
        }

    def set_state(self, state: Mapping[str, Any]) -> None:
        """Continue from a record made by :meth:`get_state`."""
        self._live = {
            trial_id: Suggestion(item["cell"], dict(item["params"])) for trial_id, item in state["live"].items()
        }
        self._finished = {
            trial_id: (Suggestion(item["cell"], dict(item["params"])), item["value"])
            for trial_id, item in state["finished"].items()
        }

    def save(self, path: Path) -> None:
        """Write :meth:`get_state` as JSON."""
        Path(path).write_text(json.dumps(self.get_state(), indent=1))

    def restore(self, path: Path) -> None:
        """Continue from a file written by :meth:`save`."""
        self.set_state(json.loads(Path(path).read_text()))
