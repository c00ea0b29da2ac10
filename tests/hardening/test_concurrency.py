"""Several processes opening a new sqlite tracking store at the same moment all succeed."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from mlflow.tracking import MlflowClient

REPO = Path(__file__).resolve().parents[2]
# Waits for a common start time, so that every process opens the store at once.
OPEN_STORE = """
import sys, time
from passion_sweep import tracking
start = float(sys.argv[2])
time.sleep(max(0.0, start - time.time()))
tracking._client(sys.argv[1]).create_experiment(sys.argv[3])
"""


def test_processes_creating_one_sqlite_store_at_once_all_succeed(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'sweeps' / 'mlflow.db'}"
    start = time.time() + 8  # after every process has imported MLflow
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_STORE, uri, str(start), f"experiment{k}"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for k in range(3)
    ]
    outputs = [process.communicate(timeout=120)[0].decode() for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0], outputs
    names = {experiment.name for experiment in MlflowClient(uri).search_experiments()}
    assert {"experiment0", "experiment1", "experiment2"} <= names
