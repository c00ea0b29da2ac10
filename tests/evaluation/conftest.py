"""Fixtures of the evaluation tests: the toy backbone, registered as "toy" for this session."""

from __future__ import annotations

import pytest
import torch

from trainables.backbones import backbone_names, register_backbone

from .toy_backbone import ToyBackbone


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
