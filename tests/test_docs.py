"""Every link in the README and docs/, and every doc an experiment spec names, exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6} (.+)$", re.MULTILINE)
_NAMED_DOC = re.compile(r"\b((?:docs/)?[\w.-]+\.md)\b")


def anchors(doc: Path) -> set[str]:
    """GitHub's anchors of the headings in ``doc``: lower case, punctuation dropped, spaces to ``-``."""
    return {
        re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-") for title in _HEADING.findall(doc.read_text())
    }


@pytest.mark.parametrize("doc", DOCS, ids=lambda doc: doc.name)
def test_relative_links_resolve(doc: Path) -> None:
    broken = []
    for target in _LINK.findall(doc.read_text()):
        if re.match(r"[a-z]+:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        linked = (doc.parent / path).resolve() if path else doc
        if not linked.exists() or (anchor and linked.suffix == ".md" and anchor not in anchors(linked)):
            broken.append(target)
    assert broken == [], f"{doc.name} links to what does not exist"


@pytest.mark.parametrize("spec", sorted((ROOT / "experiments").glob("*.yaml")), ids=lambda spec: spec.name)
def test_specs_name_existing_docs(spec: Path) -> None:
    named = _NAMED_DOC.findall(spec.read_text())
    assert [name for name in named if not (ROOT / name).is_file()] == []
