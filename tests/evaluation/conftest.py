"""Fixtures of the evaluation tests: the toy backbone, registered as "toy" for this session."""
from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from trainables.backbones import backbone_names, register_backbone

from .toy_backbone import ToyBackbone


@pytest.fixture(scope="package", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    """Run these tests on one thread: on tiny tensors, thread start-up and (on a busy
    2-core machine) spinning OpenMP threads cost far more than they save (40 s vs 9 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def toy_backbone_name() -> str:
    """Registers :class:`ToyBackbone` as ``"toy"`` once and returns that name."""
    if "toy" not in backbone_names():
        register_backbone("toy")(ToyBackbone)
    return "toy"


@pytest.fixture
def toy_model() -> ToyBackbone:
    """A seeded toy backbone (width 4, patch 16) in eval mode."""
    torch.manual_seed(0)
    return ToyBackbone(width=4, patch_size=16).eval()
