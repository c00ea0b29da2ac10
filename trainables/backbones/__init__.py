"""Segmentation backbones, looked up by name (see :func:`build_backbone`).

The torch-free :mod:`~trainables.backbones.catalog` says which backbones exist and what
options they take; everything else is imported on first use (it needs torch).
"""

from __future__ import annotations

from trainables.lazy import lazy_exports

# Public name to the submodule that defines it.
_EXPORTS: dict[str, str] = {
    "Backbone": "base",
    "FusionOutput": "base",
    "backbone_class": "base",
    "backbone_names": "base",
    "build_backbone": "base",
    "register_backbone": "base",
}

__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
