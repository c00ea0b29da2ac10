"""Where sweeps keep their files, and what a tracking URI points at.

The one place that knows the names inside a sweep folder
(``<ray.storage_path>/<name>``), what lies beside it under the storage path (the
default sqlite MLflow store, its artifacts, the phantom cache), and how a ``sqlite:///``
URI maps to a file. Everything else asks here instead of spelling names or parsing URIs.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "SPEC_FILE",
    "IDENTITY_FILE",
    "SPLITS_DIR",
    "EVALUATION_DIR",
    "TRIAL_DIR_PREFIX",
    "PHANTOM_DIR",
    "STORE_FILE",
    "ARTIFACTS_DIR",
    "sqlite_path",
    "sqlite_uri",
    "default_store_uri",
    "artifacts_beside",
]

# Inside a sweep folder.
SPEC_FILE = "spec.yaml"  # the resolved spec, as run
IDENTITY_FILE = "sweep.json"  # the sweep's id, spec hash and start time
SPLITS_DIR = "splits"  # the missing-rate split CSVs the sweep wrote
EVALUATION_DIR = "evaluation"  # <trial id>/ per trial: the test evaluation
TRIAL_DIR_PREFIX = "trial_"  # Tune's folder of each trial: trial_<trial id>

# Beside the sweep folders, under the storage path.
PHANTOM_DIR = "phantom"  # the default phantom cache, shared by the sweeps there
STORE_FILE = "mlflow.db"  # the default MLflow store
ARTIFACTS_DIR = "mlartifacts"  # the artifacts of a sqlite store, beside its file

_SQLITE = "sqlite:///"


def sqlite_path(uri: str) -> Path | None:
    """The file of a ``sqlite:///`` tracking URI; ``None`` for any other store."""
    return Path(uri.removeprefix(_SQLITE)) if uri.startswith(_SQLITE) else None


def sqlite_uri(path: Path) -> str:
    """The tracking URI of the sqlite file ``path`` (``sqlite:////abs/path`` when absolute)."""
    return f"{_SQLITE}{path}"


def default_store_uri(storage_path: Path) -> str:
    """The store of the sweeps under ``storage_path``."""
    return sqlite_uri(storage_path / STORE_FILE)


def artifacts_beside(store: Path) -> Path:
    """Where the artifacts of the sqlite store ``store`` go."""
    return store.parent / ARTIFACTS_DIR
