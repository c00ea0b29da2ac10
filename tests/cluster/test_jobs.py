"""Planning a sweep job (no cluster needed) and the job commands' errors."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from passion_sweep.cli import main
from passion_sweep.cluster import jobs
from passion_sweep.cluster.jobs import (
    WORKING_DIR_EXCLUDES,
    JobPlan,
    dashboard_address,
    is_job_id,
    plan_job,
    submit_sweep,
)
from tests.sweep.conftest import tiny_spec
from trainables.errors import ConfigError, PassionSweepError

REPO = Path(__file__).resolve().parents[2]


def test_plan_of_the_demo_runs_the_spec_with_absolute_paths_and_this_interpreter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)

    plan = plan_job(Path("experiments/demo.yaml"), ["train.epochs=1", f"ray.storage_path={tmp_path}"])

    arguments = shlex.split(plan.entrypoint)
    assert arguments[:7] == [
        sys.executable,
        "-m",
        "passion_sweep.cli",
        "run",
        "experiments/demo.yaml",
        "--address",
        "auto",
    ]
    assert Path(arguments[0]).is_absolute()
    assignments = arguments[8::2]
    assert assignments[:2] == ["train.epochs=1", f"ray.storage_path={tmp_path}"]
    assert f"ray.storage_path={tmp_path}" in assignments[2:]
    assert f"tracking.uri=sqlite:///{tmp_path}/mlflow.db" in assignments
    assert f"data.phantom.cache={tmp_path}/phantom" in assignments
    assert plan.working_dir == REPO and plan.sweep_dir == tmp_path / "demo"
    assert {"README.md", "experiments/demo.yaml"} <= {file.path for file in plan.upload.files}
    for pattern in (".venv", ".git", "__pycache__", "/sweeps", "/demo-output", "/data", "*.db", "mlruns"):
        assert pattern in plan.excludes
    assert "data" not in WORKING_DIR_EXCLUDES, "an unanchored 'data' would drop the trainables.data package"


def test_plan_pins_a_relative_storage_path_and_sqlite_uri_and_leaves_storage_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = tiny_spec(Path("out/sweeps"), tracking={"uri": "sqlite:///out/runs.db"})
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(values))
    monkeypatch.chdir(tmp_path)

    plan = plan_job(Path("spec.yaml"))

    assignments = shlex.split(plan.entrypoint)[8::2]
    assert f"ray.storage_path={tmp_path}/out/sweeps" in assignments
    assert f"tracking.uri=sqlite:///{tmp_path}/out/runs.db" in assignments
    assert "/out/sweeps" in plan.excludes


def test_plan_refuses_a_spec_outside_the_working_folder(tmp_path: Path) -> None:
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(tiny_spec(tmp_path)))
    with pytest.raises(ConfigError, match=r"outside the working folder .* pass --working-dir"):
        plan_job(tmp_path / "spec.yaml", working_dir=REPO)


def test_plan_refuses_a_sweep_that_exists(tmp_path: Path) -> None:
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(tiny_spec(tmp_path)))
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "sweep.json").write_text("{}")
    with pytest.raises(ConfigError, match="sweep tiny exists already"):
        plan_job(tmp_path / "spec.yaml", working_dir=tmp_path)


def test_dashboard_address_from_option_or_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_API_SERVER_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")  # a GCS address is not a job server
    with pytest.raises(ConfigError, match="pass --address http://HEAD:8265"):
        dashboard_address(None)
    monkeypatch.setenv("RAY_ADDRESS", "http://10.0.0.1:8265")
    assert dashboard_address(None) == "http://10.0.0.1:8265"
    monkeypatch.setenv("RAY_API_SERVER_ADDRESS", "http://head:8265")
    assert dashboard_address(None) == "http://head:8265"
    assert dashboard_address("http://other:8265") == "http://other:8265"
    assert is_job_id("raysubmit_abc") and not is_job_id("sweeps/demo")


def test_status_of_a_job_without_an_address_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_API_SERVER_ADDRESS", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    result = CliRunner().invoke(main, ["status", "raysubmit_abc"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: no Ray job server address: pass --address http://HEAD:8265 (the head node's dashboard) "
        "or set RAY_API_SERVER_ADDRESS"
    ]


def test_submit_to_an_unreachable_job_server_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(tiny_spec(tmp_path / "sweeps")))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["submit", "spec.yaml", "--address", "http://127.0.0.1:9"])
    assert result.exit_code == 1
    assert result.stdout.startswith("uploading 1 files")
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: cannot reach the Ray job server at http://127.0.0.1:9: ")


NO_AGENT = "Request failed with status code 500: No available agent to submit job, please try again later.."


class FlakyJobServer:
    """A job client whose first ``refusals`` submissions fail with ``error``."""

    def __init__(self, refusals: int, error: str = NO_AGENT) -> None:
        self.refusals = refusals
        self.error = error
        self.calls = 0

    def submit_job(self, **job: object) -> str:
        self.calls += 1
        if self.calls <= self.refusals:
            raise RuntimeError(self.error)
        return "raysubmit_1"


@pytest.fixture
def tiny_plan(tmp_path: Path) -> JobPlan:
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(tiny_spec(tmp_path / "sweeps")))
    return plan_job(tmp_path / "spec.yaml", working_dir=tmp_path)


def serve(monkeypatch: pytest.MonkeyPatch, server: FlakyJobServer) -> list[float]:
    """Let ``submit_sweep`` talk to ``server``; returns the pauses it takes, recorded, not slept."""
    pauses: list[float] = []
    monkeypatch.setattr(jobs, "_client", lambda address: server)
    monkeypatch.setattr(jobs.time, "sleep", pauses.append)
    return pauses


def test_submit_asks_again_while_no_job_agent_is_free(tiny_plan: JobPlan, monkeypatch: pytest.MonkeyPatch) -> None:
    server = FlakyJobServer(refusals=3)
    pauses = serve(monkeypatch, server)

    assert submit_sweep(tiny_plan, address="http://head:8265") == "raysubmit_1"
    assert server.calls == 4 and pauses == [1.0, 2.0, 4.0]


def test_submit_gives_up_after_30_s_without_a_free_agent(tiny_plan: JobPlan, monkeypatch: pytest.MonkeyPatch) -> None:
    server = FlakyJobServer(refusals=100)
    pauses = serve(monkeypatch, server)

    with pytest.raises(
        PassionSweepError, match=r"^the Ray job server at http://head:8265 had no job agent free .* 30 s"
    ):
        submit_sweep(tiny_plan, address="http://head:8265")
    assert sum(pauses) == 30 and server.calls == len(pauses) + 1


def test_submit_does_not_ask_again_after_another_refusal(tiny_plan: JobPlan, monkeypatch: pytest.MonkeyPatch) -> None:
    server = FlakyJobServer(refusals=1, error="Request failed with status code 400: upload too large")
    pauses = serve(monkeypatch, server)

    with pytest.raises(PassionSweepError, match=r"refused the sweep: .*status code 400: upload too large"):
        submit_sweep(tiny_plan, address="http://head:8265")
    assert server.calls == 1 and pauses == []
