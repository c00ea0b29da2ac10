"""Is the sweep's storage shared by every node? The node-side check and its verdict.

On a cluster of several nodes, a trial may run (and be retried) on any node: every
node must see the sweep folder (checkpoints, splits, evaluation), the data and a
sqlite tracking store at the same paths. Whether a path is "on NFS" says little (a
bind mount, a FUSE-mounted bucket or a node-local disk mounted at the same path all
look alike), so the check asks each node directly: the driver writes a marker file
with a random token into the sweep folder, and a task pinned to each node reads it
back (:func:`unseen_paths`) and looks for the data. The Ray side lives in
:mod:`passion_sweep.sweep.launcher`; this module imports neither Ray nor click.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from trainables.errors import ConfigError

__all__ = ["MARKER_PREFIX", "StorageMarker", "unseen_paths", "check_node_answers"]

MARKER_PREFIX = ".shared-storage-check-"


@dataclass(frozen=True)
class StorageMarker:
    """A file with a random token, written by the driver, to be read by every node."""

    path: Path
    token: str

    @classmethod
    def write(cls, folder: Path) -> StorageMarker:
        token = secrets.token_hex(8)
        path = Path(folder) / f"{MARKER_PREFIX}{token}"
        path.write_text(token)
        return cls(path, token)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def unseen_paths(marker: StorageMarker, paths: Sequence[str], *, wait: float = 5.0) -> list[str]:
    """What this node cannot see: the marker (with its token) and ``paths``.

    Runs on each node. A network file system may show a new file a moment late, so
    the marker is polled for up to ``wait`` seconds.

    Returns:
        The paths this node does not see; empty when it sees everything.
    """
    deadline = time.monotonic() + wait
    while True:
        try:
            if marker.path.read_text() == marker.token:
                break
        except OSError:
            pass
        if time.monotonic() >= deadline:
            return [str(marker.path.parent), *[path for path in paths if not Path(path).exists()]]
        time.sleep(0.25)
    return [path for path in paths if not Path(path).exists()]


def check_node_answers(storage: Path, answers: Mapping[str, Sequence[str]]) -> None:
    """Refuse the sweep if any node does not see its storage or data.

    Args:
        storage: the spec's ``ray.storage_path``.
        answers: per node (its address and id), the paths it does not see.

    Raises:
        ConfigError: naming the first node and path, and the fix.
    """
    blind = {node: missing for node, missing in answers.items() if missing}
    if not blind:
        return
    node, missing = next(iter(blind.items()))
    others = f" (and {len(blind) - 1} more node(s))" if len(blind) > 1 else ""
    raise ConfigError(
        f"ray.storage_path {storage} is not shared by all {len(answers)} nodes of the cluster: node {node}{others} "
        f"does not see {missing[0]}; put the storage path and the data on storage that every node mounts at the "
        "same path (NFS, or a bucket mounted with s3fs/gcsfuse), e.g. --set ray.storage_path=/shared/sweeps"
    )
