"""Segmentation backbones, looked up by name (see :func:`build_backbone`)."""
from __future__ import annotations

from trainables.backbones import (
    m2ftrans,  # noqa: F401  (registers "m2ftrans")
    mmformer,  # noqa: F401  (registers "mmformer")
    rfnet,  # noqa: F401  (registers "rfnet")
)
from trainables.backbones.base import (
    Backbone,
    FusionOutput,
    backbone_class,
    backbone_names,
    build_backbone,
    register_backbone,
)

__all__ = ["Backbone", "FusionOutput", "backbone_class", "backbone_names", "build_backbone", "register_backbone"]
