"""The Tune state a sweep resumes from, when its driver was killed while writing it.

Each driver run (a session) saves Tune's resume point into the sweep folder as
``experiment_state-S.json`` (the trials), ``search_gen_state-S.json`` and
``searcher-state-S.pkl`` (the search), named by the session ``S``, and copies them there
without an atomic rename: a driver killed during the copy leaves its session's files
empty or cut short. Tune reads the newest file of each kind on its own, and on a damaged
one logs a traceback and starts every trial again, under new ids, while the searcher it
restores may still count the old ones. :func:`settle_resume_point` finds the newest
session whose files are all intact and puts copies of them under the newest session's
names (removing the sessions between), so that Tune resumes from that session as a whole:
its trials go on from their checkpoints, trials started since then run again (``resume``
later deletes their MLflow runs). Copies, not removal: Tune reads the searcher's state
from a staging folder of the Ray session, which a driver on the same Ray cluster shares
with the killed one and which still holds the newest session's own files; Tune copies the
sweep folder's files over them, so the newest names must hold the intact state.

Files are checked as data, never loaded: JSON is parsed, pickles are walked opcode by
opcode (:func:`pickletools.genops`) to their end without running them.
"""

from __future__ import annotations

import json
import logging
import pickletools
import re
from pathlib import Path

from trainables.data.atomic import atomic_write

__all__ = ["TUNER_FILE", "settle_resume_point"]

logger = logging.getLogger(__name__)

TUNER_FILE = "tuner.pkl"  # Tune's settings of the run, written once when the sweep starts
_SESSION = re.compile(r"^experiment_state-(?P<session>.+)\.json$")


def _session_files(directory: Path, session: str) -> tuple[Path, Path, Path]:
    """The experiment state (JSON), the search generator's state (a pickle, despite its
    name) and the sweep's searcher state (JSON written by ``_CellSearcher.save``)."""
    return (
        directory / f"experiment_state-{session}.json",
        directory / f"search_gen_state-{session}.json",
        directory / f"searcher-state-{session}.pkl",
    )


def _read_json(path: Path) -> object:
    """The parsed file; ``None`` if it is missing or not complete JSON."""
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError):  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return None


def _is_complete_pickle(path: Path) -> bool:
    try:
        for _ in pickletools.genops(path.read_bytes()):
            pass
    except (OSError, ValueError):  # genops raises ValueError on a pickle cut short or garbled
        return False
    return True


def _is_intact(directory: Path, session: str) -> bool:
    """Whether every file of the session's resume point is there and complete, and its
    experiment state names a trial (Tune cannot resume from one without)."""
    experiment, search_generator, searcher = _session_files(directory, session)
    state = _read_json(experiment)
    return (
        isinstance(state, dict)
        and bool(state.get("trial_data"))
        and _is_complete_pickle(search_generator)
        and isinstance(_read_json(searcher), dict)
    )


def _remove_session(directory: Path, session: str) -> None:
    for path in _session_files(directory, session):
        path.unlink(missing_ok=True)


def settle_resume_point(directory: Path) -> bool:
    """Leave ``directory`` with an intact newest resume point, or none at all.

    Copies the newest intact session's files over the newest session's and removes the
    sessions between. Without an intact session, or with a damaged ``tuner.pkl``, removes
    every session's files and ``tuner.pkl``: the sweep's trials then start anew.

    Returns:
        Whether Tune can resume from what is left.
    """
    sessions = sorted(
        (match["session"] for path in directory.iterdir() if (match := _SESSION.match(path.name))), reverse=True
    )
    tuner_intact = _is_complete_pickle(directory / TUNER_FILE)
    for index, session in enumerate(sessions):
        if tuner_intact and _is_intact(directory, session):
            if index:
                logger.warning(
                    "the Tune state of the driver's last run (session %s) is damaged, as when a driver is "
                    "killed while writing it: resuming from session %s; trials started since then run again",
                    sessions[0],
                    session,
                )
                for source, target in zip(_session_files(directory, session), _session_files(directory, sessions[0])):
                    with atomic_write(target) as copy:
                        copy.write(source.read_bytes())
            return True
        if index:  # the newest session's names are kept for the intact state, if there is one
            _remove_session(directory, session)
    if sessions:
        _remove_session(directory, sessions[0])
    if sessions or (directory / TUNER_FILE).exists():
        logger.warning(
            "no intact Tune state in %s (the driver stopped before it saved one, or while writing it): "
            "starting the sweep's trials anew",
            directory,
        )
        (directory / TUNER_FILE).unlink(missing_ok=True)
    return False
