"""Sweeps on a Ray cluster of two nodes on this machine: a submitted job, trials on both
nodes, a lost worker node, the MLflow tracking server."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from mlflow.tracking import MlflowClient

from passion_sweep.sweep.spec import parse_spec
from tests.sweep.conftest import tiny_spec

from .conftest import PASSION_SWEEP, TrackingServer, group_alive
from .nodes import LocalCluster

pytestmark = pytest.mark.slow


def results(sweep_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """Every result reported so far (Tune's ``result.json``), per trial folder."""
    found = {}
    for path in sorted(sweep_dir.glob("trial_*/result.json")):
        lines = []
        for line in path.read_text().splitlines():
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError:  # half written
                break
        found[path.parent.name] = lines
    return found


def trial_runs(uri: str, experiment: str) -> list[Any]:
    """The trial (child) runs of the experiment; exactly one parent run."""
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    parents = [run for run in runs if "mlflow.parentRunId" not in run.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    return [run for run in runs if run is not parents[0]]


def test_a_submitted_sweep_completes(
    tracking_server: TrackingServer, two_nodes: LocalCluster, phantom_cache: Path, tmp_path: Path
) -> None:
    tracking_server.ready()
    project = tmp_path / "project"
    project.mkdir()
    values = tiny_spec(Path("sweeps"), cache=phantom_cache, name="submitted", grid={"method": ["baseline"]})
    values["train"]["epochs"] = 1
    values["tracking"] = {"uri": tracking_server.url}
    del values["search"]
    (project / "submitted.yaml").write_text(yaml.safe_dump(values))
    env = two_nodes.env()

    submitted = subprocess.run(
        [PASSION_SWEEP, "submit", "submitted.yaml", "--address", two_nodes.dashboard],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert submitted.returncode == 0, submitted.stderr
    job_id = re.search(r"submitted job (raysubmit_\w+)", submitted.stdout)[1]
    assert f"passion-sweep logs {job_id} --address {two_nodes.dashboard} --follow" in submitted.stdout
    follow = subprocess.run(
        [PASSION_SWEEP, "logs", job_id, "--address", two_nodes.dashboard, "--follow"],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert follow.returncode == 0, follow.stdout[-3000:] + follow.stderr
    assert "trials: 0 pending, 0 running, 1 done" in follow.stdout
    status = subprocess.run(
        [PASSION_SWEEP, "status", job_id, "--address", two_nodes.dashboard],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert status.returncode == 0, status.stderr
    assert f"job {job_id}: SUCCEEDED" in status.stdout
    sweep_dir = project / "sweeps" / "submitted"  # storage resolved here, not in the job's copy
    assert f"in {sweep_dir}" in status.stdout and "1 done" in status.stdout
    [run] = trial_runs(tracking_server.url, "submitted")
    assert run.info.status == "FINISHED" and "test/dice/mean/WT" in run.data.metrics


def test_trials_run_on_both_nodes_and_survive_a_lost_node(
    tracking_server: TrackingServer, two_nodes: LocalCluster, phantom_cache: Path, tmp_path: Path
) -> None:
    tracking_server.ready()
    values = tiny_spec(
        tmp_path / "sweeps", cache=phantom_cache, name="lost-node", grid={"method": ["baseline", "passion"]}
    )
    values["train"]["epochs"] = 4  # the kill comes after epoch 1: leave the lost worker time to be mid-trial
    values["tracking"] = {"uri": tracking_server.url}
    del values["search"]
    spec_file = tmp_path / "lost-node.yaml"
    spec_file.write_text(yaml.safe_dump(values))
    spec = parse_spec(values)
    nodes: dict[str, str] = {}  # trial folder -> node of its first worker
    killed: dict[str, Any] = {}
    with (tmp_path / "driver.log").open("w") as log:
        driver = subprocess.Popen(
            [PASSION_SWEEP, "run", str(spec_file), "--address", two_nodes.address],
            env=two_nodes.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 240
            while not killed:
                assert driver.poll() is None and time.monotonic() < deadline, (tmp_path / "driver.log").read_text()
                for trial, lines in results(spec.sweep_dir).items():
                    if lines and trial not in nodes:
                        nodes[trial] = two_nodes.node_of(lines[0]["pid"])
                    last_epoch = lines and lines[-1]["training_iteration"] >= values["train"]["epochs"]
                    if lines and not last_epoch and nodes.get(trial) == "worker1" and len(nodes) == 2:
                        killed.update(trial=trial, **lines[-1])
                time.sleep(0.1)
            two_nodes.nodes[1].kill()  # the worker node is lost during its trial's epoch 2
            driver.wait(timeout=300)
        finally:
            if driver.poll() is None:
                driver.kill()
                driver.wait()
    output = (tmp_path / "driver.log").read_text()

    assert driver.returncode == 0, output
    assert sorted(nodes.values()) == ["head", "worker1"], "one trial started on each node"
    assert "retrying from its last checkpoint" in output
    lines = results(spec.sweep_dir)[killed["trial"]]
    # The lost worker may report one more epoch (with its checkpoint) between the poll and the kill.
    before = [line for line in lines if line["pid"] == killed["pid"]]
    after = [line for line in lines if line["pid"] != killed["pid"]]
    assert before[-1]["training_iteration"] < values["train"]["epochs"], "the node was lost during the trial"
    resumed_at = before[-1]["training_iteration"] + 1
    assert after and after[0]["training_iteration"] == resumed_at, "went on from the checkpoint"
    assert after[-1]["training_iteration"] == values["train"]["epochs"]
    runs = trial_runs(tracking_server.url, "lost-node")
    assert sorted(run.data.tags["ray.trial_id"] for run in runs) == sorted(
        trial.removeprefix("trial_") for trial in nodes
    ), "exactly one run per trial"
    client = MlflowClient(tracking_server.url)
    [run] = [run for run in runs if f"trial_{run.data.tags['ray.trial_id']}" == killed["trial"]]
    steps = [point.step for point in client.get_metric_history(run.info.run_id, "loss")]
    assert steps.count(killed["training_iteration"]) == 1 and sorted(set(steps)) == [1, 2, 3, 4]
    assert all(run.info.status == "FINISHED" for run in runs)


def test_tracking_server_stops_on_ctrl_c(tracking_server: TrackingServer) -> None:
    tracking_server.ready()
    assert group_alive(tracking_server.group)

    assert tracking_server.interrupt() == 0

    assert not group_alive(tracking_server.group), "no process of the server's group is left"
    assert "stopping the MLflow tracking server" in tracking_server.log.read_text()
