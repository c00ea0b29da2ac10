"""Session-wide fixtures: a small phantom data set, raw and prepared, shared by all tests.

Both folders are read-only for tests: copy them before changing anything.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.golden import draw_inputs, load_golden
from trainables.data import (
    PHANTOM_NORMALIZATION,
    parse_missing_rates,
    prepare_dataset,
    split_cases,
    synthesize_dataset,
    write_missing_rate_split,
)

PHANTOM_CASES = 6
PHANTOM_SHAPE = (48, 48, 48)


@pytest.fixture(scope="session")
def phantom_raw(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six 48^3 phantom cases in the BraTS NIfTI layout (seed 0)."""
    out = tmp_path_factory.mktemp("phantom") / "raw"
    synthesize_dataset(out, cases=PHANTOM_CASES, shape=PHANTOM_SHAPE, seed=0)
    return out


@pytest.fixture(scope="session")
def prepared_phantom(phantom_raw: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``phantom_raw`` prepared as the sweep's phantom (48^3 volumes, zero-background), split 4 / 1 / 1 into train / val / test,
    with the mr2468 missing-rate split of its training cases in ``mr2468.csv``."""
    out = tmp_path_factory.mktemp("prepared") / "data"
    prepare_dataset(phantom_raw, out, progress=False, normalization=PHANTOM_NORMALIZATION)
    split_cases(out)
    write_missing_rate_split(out, out / "mr2468.csv", rates=parse_missing_rates("mr2468"))
    return out


@pytest.fixture(scope="session")
def phantom_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A phantom cache shared by the session's sweeps (the first one generates it)."""
    return tmp_path_factory.mktemp("phantom-cache")


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Run the tests on one torch thread: on their tiny tensors, thread start-up and (on a
    busy 2-core machine) spinning OpenMP threads cost far more than they save."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def golden() -> dict[str, Any]:
    """The reference's golden values (see ``tests/golden.py``)."""
    return load_golden()


@pytest.fixture(scope="session")
def golden_inputs(golden: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The golden inputs, fingerprints checked."""
    return draw_inputs(golden)


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[str]:
    """A local Ray with 2 CPUs for the session; yields its address for other drivers.

    It starts once (``ray.init`` takes 6-16 s here), with a private temp folder, so that it
    never attaches to another Ray on the machine and stops only itself.
    """
    import ray

    temp = tempfile.mkdtemp(prefix="ps-ray-", dir="/tmp")  # short: Ray's socket paths have a length limit
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_TMPDIR", temp)
        patch.setenv("RAY_USAGE_STATS_ENABLED", "0")
        ray.init(address="local", num_cpus=2, include_dashboard=False, _temp_dir=temp)
        try:
            yield ray.get_runtime_context().gcs_address
        finally:
            ray.shutdown()
            shutil.rmtree(temp, ignore_errors=True)
