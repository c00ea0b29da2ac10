"""docs/reliability.md names only tests that exist: a promise never points at a test that
was renamed or removed."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parents[2]
# `tests/x.py::test_name`, `tests/x.py`, or `::test_name` (another test of the file named before).
_CITED = re.compile(r"`(tests/[\w/]+\.py)?(?:::(\w+))?`")


def cited_tests(text: str) -> list[tuple[str, str | None]]:
    """(file, test or None) of every test the text names, in order."""
    cited: list[tuple[str, str | None]] = []
    path = ""
    for match in _CITED.finditer(text):
        path = match[1] or path
        if match[1] or match[2]:
            cited.append((path, match[2]))
    return cited


def test_every_cited_test_exists() -> None:
    cited = cited_tests((ROOT / "docs" / "reliability.md").read_text())
    assert len(cited) > 20
    missing = [
        f"{path}::{name}"
        for path, name in cited
        if not (ROOT / path).is_file()
        or (name and not re.search(rf"^def {name}\(", (ROOT / path).read_text(), re.MULTILINE))
    ]
    assert missing == []
