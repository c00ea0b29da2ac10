"""What of a working folder a sweep job uploads: never credentials, never ignored files.

``submit`` sends a copy of the working folder to the cluster. :func:`scan_upload` decides
file by file what goes: it leaves out what the job does not need (environments, data,
results: the caller's excludes), credentials by name (:data:`CREDENTIAL_PATTERNS`,
always, whatever else says), whatever the folder's ``.gitignore`` and ``.rayignore``
files ignore, and symbolic links (they may point anywhere, ``~/.ssh`` included). It then
reads what is left for content that looks like a secret (a private key, a cloud or
forge token) or a name that suggests one, so that ``submit`` can refuse to upload it
unless told to. :func:`staged_copy` copies exactly the files listed into a temporary
folder, which is what Ray uploads: what was listed is what goes.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pathspec

from trainables.errors import ConfigError, DataError

__all__ = [
    "CREDENTIAL_PATTERNS",
    "IGNORE_FILES",
    "UploadFile",
    "Suspect",
    "Upload",
    "scan_upload",
    "staged_copy",
]

# gitignore patterns of files that hold credentials, never uploaded.
CREDENTIAL_PATTERNS: tuple[str, ...] = (
    ".env",
    ".env.*",
    "*.env",
    ".envrc",
    ".netrc",
    "_netrc",
    ".git-credentials",
    ".pgpass",
    ".pypirc",
    ".npmrc",
    ".htpasswd",
    ".databrickscfg",
    ".aws/",
    ".ssh/",
    ".gnupg/",
    ".kube/",
    ".azure/",
    ".docker/",
    ".mlflow/",
    "gcloud/",
    "auth_token",  # Ray's token file (~/.ray/auth_token)
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.jks",
    "*.keystore",
    "*.kdbx",
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    "credentials",
    "credentials.json",
    "*service-account*.json",
)
IGNORE_FILES = (".gitignore", ".rayignore")

# Content that is a secret in any file: well-known key and token formats.
_SECRET_CONTENT: tuple[tuple[str, re.Pattern[bytes]], ...] = (
    ("a private key", re.compile(rb"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY(?: BLOCK)?-----")),
    ("an AWS access key id", re.compile(rb"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("an AWS secret key", re.compile(rb"aws_secret_access_key\s*[:=]\s*\S{20,}", re.IGNORECASE)),
    ("a GitHub token", re.compile(rb"\b(?:gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{40,})")),
    ("a GitLab token", re.compile(rb"\bglpat-[A-Za-z0-9_-]{20}")),
    ("a Slack token", re.compile(rb"\bxox[abposr]-[A-Za-z0-9-]{10,}")),
    ("a Hugging Face token", re.compile(rb"\bhf_[A-Za-z0-9]{34}\b")),
    ("a Google API key", re.compile(rb"\bAIza[0-9A-Za-z_-]{35}")),
)
# Names of settings files that suggest a secret without a known format (secrets.yaml,
# db_password.txt); source files are judged by their content only.
_SECRET_NAME = re.compile(r"secret|credential|passw(?:or)?d|private[_-]?key", re.IGNORECASE)
_SETTINGS_SUFFIXES = frozenset({"", ".txt", ".yaml", ".yml", ".json", ".toml", ".ini", ".cfg", ".conf"})
# Bytes read of each file for the content check: keys and tokens sit in small files.
_SCAN_BYTES = 1 << 20


@dataclass(frozen=True)
class UploadFile:
    """A file that is uploaded: its path relative to the folder (POSIX) and size in bytes."""

    path: str
    size: int


@dataclass(frozen=True)
class Suspect:
    """An uploaded file that looks like it holds a secret, and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class Upload:
    """The files of a folder that a job uploads, and what was left out to keep secrets home.

    Attributes:
        root: the folder.
        files: the files uploaded, in path order.
        credentials: paths left out as credentials (a folder ends in ``/``).
        links: symbolic links left out.
        suspects: uploaded files that look like secrets.
    """

    root: Path
    files: tuple[UploadFile, ...]
    credentials: tuple[str, ...]
    links: tuple[str, ...]
    suspects: tuple[Suspect, ...]

    @property
    def size(self) -> int:
        """Bytes uploaded."""
        return sum(file.size for file in self.files)

    def largest(self, count: int = 3) -> list[UploadFile]:
        """The ``count`` largest files, largest first."""
        return sorted(self.files, key=lambda file: (-file.size, file.path))[:count]

    def summary(self) -> str:
        """One line: count, size and largest files uploaded, and what was left out."""
        largest = ", ".join(f"{file.path} {_size(file.size)}" for file in self.largest())
        line = f"uploading {len(self.files)} files ({_size(self.size)}) from {self.root}"
        line += f"; largest: {largest}" if largest else ""
        if self.credentials:
            line += f"; left out as credentials: {_listing(self.credentials)}"
        if self.links:
            line += f"; left out symbolic links: {_listing(self.links)}"
        return line

    def refuse_suspects(self) -> None:
        """Raise unless no uploaded file looks like a secret.

        Raises:
            ConfigError: naming each suspect file and why, and how to proceed.
        """
        if not self.suspects:
            return
        found = ", ".join(f"{suspect.path} ({suspect.reason})" for suspect in self.suspects)
        raise ConfigError(
            f"refusing to upload {len(self.suspects)} file(s) of {self.root} that look like secrets: {found}; "
            "move them out of the folder or list them in its .gitignore, "
            "or pass --allow-suspected-secrets to upload them anyway"
        )


def _size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    if size < 1024**2:
        return f"{size / 1024:.1f} KiB"
    return f"{size / 1024**2:.1f} MiB"


def _listing(paths: Sequence[str], shown: int = 8) -> str:
    return ", ".join(paths[:shown]) + (f" and {len(paths) - shown} more" if len(paths) > shown else "")


def _ignore_specs(folder: Path) -> list[pathspec.GitIgnoreSpec]:
    specs = []
    for name in IGNORE_FILES:
        path = folder / name
        if path.is_file():
            lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
            specs.append(pathspec.GitIgnoreSpec.from_lines(lines))
    return specs


def _secret_in(path: Path) -> str | None:
    """Why the file looks like a secret, or ``None``."""
    if path.suffix.lower() in _SETTINGS_SUFFIXES and _SECRET_NAME.search(path.name):
        return "its name"
    try:
        with open(path, "rb") as stream:
            head = stream.read(_SCAN_BYTES)
    except OSError as error:
        raise DataError(f"cannot read {path} for the upload: {error.strerror}") from None
    return next((what for what, pattern in _SECRET_CONTENT if pattern.search(head)), None)


def scan_upload(root: Path, excludes: Sequence[str] = ()) -> Upload:
    """List what of ``root`` a job uploads (see the module's docstring).

    Args:
        root: the working folder.
        excludes: gitignore patterns (relative to ``root``) to leave out besides credentials.

    Returns:
        The files uploaded, what was left out as credentials or links, and suspect files.

    Raises:
        DataError: if a file or folder cannot be read.
    """
    root = Path(root).resolve()
    credentials_rule = pathspec.GitIgnoreSpec.from_lines(CREDENTIAL_PATTERNS)
    excluded = pathspec.GitIgnoreSpec.from_lines(excludes)
    files: list[UploadFile] = []
    credentials: list[str] = []
    links: list[str] = []
    suspects: list[Suspect] = []

    def visit(folder: Path, rules: list[tuple[Path, pathspec.GitIgnoreSpec]]) -> None:
        rules = rules + [(folder, spec) for spec in _ignore_specs(folder)]
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError as error:
            raise DataError(f"cannot list {folder} for the upload: {error.strerror}") from None
        for entry in entries:
            path = Path(entry.path)
            is_dir = entry.is_dir(follow_symlinks=False)
            relative = path.relative_to(root).as_posix() + ("/" if is_dir else "")
            if credentials_rule.match_file(relative):
                credentials.append(relative)
            elif excluded.match_file(relative) or any(
                spec.match_file(path.relative_to(base).as_posix() + ("/" if is_dir else "")) for base, spec in rules
            ):
                continue
            elif entry.is_symlink():
                links.append(relative)
            elif is_dir:
                visit(path, rules)
            elif entry.is_file(follow_symlinks=False):
                files.append(UploadFile(relative, entry.stat(follow_symlinks=False).st_size))
                reason = _secret_in(path)
                if reason is not None:
                    suspects.append(Suspect(relative, reason))

    visit(root, [])
    return Upload(root, tuple(files), tuple(credentials), tuple(links), tuple(suspects))


@contextmanager
def staged_copy(upload: Upload) -> Iterator[Path]:
    """A temporary folder holding copies of exactly the files of ``upload``, removed on exit."""
    with tempfile.TemporaryDirectory(prefix="passion-sweep-upload-") as staging:
        for file in upload.files:
            target = Path(staging, file.path)
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(upload.root / file.path, target, follow_symlinks=False)
            except OSError as error:
                raise DataError(f"cannot copy {file.path} for the upload: {error.strerror or error}") from None
        yield Path(staging)
