"""The node-side shared-storage check and its verdict (the Ray side: test_cluster_e2e)."""

from __future__ import annotations

from pathlib import Path

import pytest

from passion_sweep.cluster.shared_storage import StorageMarker, check_node_answers, unseen_paths
from passion_sweep.sweep.spec import parse_spec
from tests.sweep.conftest import tiny_spec
from trainables.errors import ConfigError


def test_a_node_that_sees_the_marker_and_the_data(tmp_path: Path) -> None:
    marker = StorageMarker.write(tmp_path)
    assert unseen_paths(marker, [str(tmp_path)]) == []
    assert unseen_paths(marker, [str(tmp_path / "data")]) == [str(tmp_path / "data")]
    marker.remove()
    assert not marker.path.exists()


def test_a_node_with_its_own_disk_at_that_path(tmp_path: Path) -> None:
    elsewhere = StorageMarker(tmp_path / "other" / ".shared-storage-check-x", "x")  # what another node would look at
    (tmp_path / "other").mkdir()
    (elsewhere.path).write_text("a different token")
    assert unseen_paths(elsewhere, [], wait=0.3) == [str(tmp_path / "other")]


def test_the_verdict_names_the_node_the_path_and_the_fix() -> None:
    check_node_answers(Path("/x"), {"10.0.0.1 (id a)": [], "10.0.0.2 (id b)": []})
    with pytest.raises(
        ConfigError,
        match=(
            r"ray.storage_path /local/sweeps is not shared by all 2 nodes of the cluster: node 10.0.0.2 \(id b\) "
            r"does not see /local/sweeps/tiny; .* \(NFS, or a bucket mounted .*--set ray.storage_path=/shared/sweeps"
        ),
    ):
        check_node_answers(Path("/local/sweeps"), {"10.0.0.1 (id a)": [], "10.0.0.2 (id b)": ["/local/sweeps/tiny"]})


def test_an_object_store_uri_as_storage_path_is_refused() -> None:
    with pytest.raises(
        ConfigError, match=r"ray.storage_path: expected a folder that every node mounts .* got the URI 's3://b/s'"
    ):
        parse_spec(tiny_spec(Path("/tmp"), ray={"storage_path": "s3://b/s"}))
