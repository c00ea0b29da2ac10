"""Commands that only read or describe start fast: they import neither torch nor MLflow.

Each command runs in a fresh interpreter (imports are cached per process), which
then reports the heavy packages it holds.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from passion_sweep import tracking
from passion_sweep.cli import _COMMANDS
from passion_sweep.sweep.search_space import grid_cells
from passion_sweep.sweep.spec import SPEC_FILE, parse_spec, save_spec
from tests.sweep.conftest import tiny_spec
from tests.tables.store import KnownTrial, record_sweep, uniform

EXPERIMENTS = Path(__file__).parents[1] / "experiments"
HEAVY = {"torch", "mlflow"}

_PROBE = """
import json, sys
from passion_sweep.cli import main
try:
    main(sys.argv[1:], prog_name="passion-sweep", standalone_mode=False)
finally:
    print(json.dumps(sorted(set(sys.modules) & set({heavy}))))
"""


def imported_by(*args: str) -> tuple[list[str], str]:
    """The heavy packages that ``passion-sweep ARGS`` imported, and what it printed before."""
    code = _PROBE.format(heavy=sorted(HEAVY))
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True)
    *output, last = result.stdout.strip().splitlines()
    return json.loads(last), "\n".join(output)


@pytest.mark.parametrize("command", [None, *_COMMANDS])
def test_help_is_light(command: str | None) -> None:
    heavy, output = imported_by(*([command] if command else []), "--help")
    assert "Usage: passion-sweep" in output
    assert heavy == []


def test_dry_run_is_light() -> None:
    heavy, output = imported_by("run", str(EXPERIMENTS / "demo.yaml"), "--dry-run")
    assert "4 grid cells, 6 trials" in output
    assert heavy == []


@pytest.fixture(scope="module")
def recorded_sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sweep folder whose sqlite store holds one finished and one running trial."""
    storage = tmp_path_factory.mktemp("light")
    uri = f"sqlite:///{storage / 'mlflow.db'}"
    spec = parse_spec(tiny_spec(storage, tracking={"uri": uri, "experiment": "light"}, search={}))
    baseline, passion = (cell.label for cell in grid_cells(spec))
    trials = [
        KnownTrial(baseline, {"method": "baseline"}, dice=uniform(0.7), objective=0.6),
        KnownTrial(passion, {"method": "passion"}, status="RUNNING", objective=0.5),
    ]
    plan = {baseline: 1, passion: 1}
    sweep_id = record_sweep(uri, storage, experiment="light", name=spec.name, plan=plan, trials=trials)
    spec.sweep_dir.mkdir()
    save_spec(spec, spec.sweep_dir / SPEC_FILE)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    tracking.SweepIdentity(sweep_id, spec.digest(), started).save(spec.sweep_dir)
    return spec.sweep_dir


def test_status_is_light(recorded_sweep: Path) -> None:
    heavy, output = imported_by("status", str(recorded_sweep))
    assert "1 done" in output and "1 running" in output, output
    assert "0.6000" in output, "the best objective, read from the store"
    assert heavy == []


def test_table_is_light(recorded_sweep: Path) -> None:
    uri = f"sqlite:///{recorded_sweep.parent / 'mlflow.db'}"
    heavy, output = imported_by("table", "--tracking-uri", uri, "--experiment", "light")
    assert "70.00" in output
    assert heavy == []
