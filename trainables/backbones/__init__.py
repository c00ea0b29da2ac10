"""Segmentation backbones, looked up by name (see :func:`build_backbone`)."""
from __future__ import annotations

from trainables.backbones.base import Backbone, FusionOutput, backbone_names, build_backbone, register_backbone
from trainables.backbones import rfnet  # noqa: F401  (registers "rfnet")

__all__ = ["Backbone", "FusionOutput", "backbone_names", "build_backbone", "register_backbone"]
