"""Atomic file and folder writes: a crash or an error never leaves a half-written output.

Temporary names start with a dot and live next to the target, so that the final
``os.replace`` is a rename within one file system.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from trainables.errors import ConfigError, DataError

__all__ = ["atomic_write", "atomic_directory", "ensure_directory"]


def _temporary_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")


def ensure_directory(path: Path, *, what: str = "output folder") -> Path:
    """Create ``path`` (and parents) unless it exists as a folder.

    Raises:
        ConfigError: if ``path`` or one of its parents is a file.
        DataError: if the folder cannot be created for another reason, e.g. permissions.
    """
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ConfigError(f"{what} {path} is a file (or lies under one): pass a folder path") from None
    except OSError as error:
        raise DataError(f"cannot create {what} {path}: {error.strerror}") from None
    return path


@contextmanager
def atomic_write(path: Path, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` and move it onto ``path`` when the block succeeds.

    Args:
        path: the final file; its folder must exist.
        mode: ``"wb"`` or ``"w"`` (text, opened with ``newline=""`` for the csv module).

    Raises:
        ConfigError: if ``path`` is an existing folder.
        DataError: if the file cannot be written (permissions, disk full, ...).
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path} is a folder: pass a file path")
    temporary = _temporary_sibling(path)
    text_options: dict[str, Any] = {} if "b" in mode else {"newline": "", "encoding": "utf-8"}
    try:
        # "x" rather than mkstemp: the file gets the usual umask permissions, not 0600.
        with open(temporary, mode.replace("w", "x"), **text_options) as stream:
            yield stream
        os.replace(temporary, path)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise DataError(f"cannot write {path}: {error.strerror or error}") from None
        raise


@contextmanager
def atomic_directory(path: Path) -> Iterator[Path]:
    """Yield a temporary folder that is renamed to ``path`` when the block succeeds.

    Raises:
        ConfigError: if ``path`` is a file or a folder that is not empty.
        DataError: if the folder cannot be written (permissions, disk full, ...).
    """
    path = Path(path)
    if path.is_file():
        raise ConfigError(f"output folder {path} is a file: pass a folder path")
    if path.is_dir() and any(path.iterdir()):
        raise ConfigError(f"output folder {path} is not empty: choose a new folder or remove it")
    ensure_directory(path.parent)
    staging = _temporary_sibling(path)
    try:
        staging.mkdir()
        yield staging
        os.replace(staging, path)  # also replaces an empty folder
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(error, OSError):
            raise DataError(f"cannot write {path}: {error.strerror or error}") from None
        raise
