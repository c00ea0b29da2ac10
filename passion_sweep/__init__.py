"""passion-sweep: PASSION experiment sweeps on Ray Tune with MLflow tracking."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
