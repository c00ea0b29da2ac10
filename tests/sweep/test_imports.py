"""Ray stays inside the launcher; the spec and the search import neither Ray nor click."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    ("modules", "forbidden"),
    [
        (
            ["passion_sweep.sweep.spec", "passion_sweep.sweep.search_space", "passion_sweep.sweep.searcher"],
            {"ray", "click"},
        ),
        (
            ["passion_sweep.sweep.trial", "passion_sweep.tracking", "passion_sweep.sweep.status"],
            {"ray"},
        ),  # MLflow brings click
    ],
)
def test_modules_do_not_import(modules: list[str], forbidden: set[str]) -> None:
    code = f"import sys, {', '.join(modules)}; print(sorted({forbidden!r} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
