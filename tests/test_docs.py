"""The README is a short entry whose docs index reaches every page; every relative link
and anchor in the README and docs/, and every doc an experiment spec names, exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").glob("*.md"))
DOCS = [README, *PAGES]
README_LIMIT = 16 * 1024  # the README is the entry; details belong in docs/
_FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_HEADING = re.compile(r"^#{1,6} (.+)$", re.MULTILINE)
_NAMED_DOC = re.compile(r"\b((?:docs/)?[\w.-]+\.md)\b")


def prose(doc: Path) -> str:
    """The text of ``doc`` without its fenced code blocks, whose ``#`` lines are comments, not headings."""
    return _FENCE.sub("", doc.read_text())


def anchors(doc: Path) -> set[str]:
    """GitHub's anchors of the headings in ``doc``: lower case, punctuation dropped, spaces to ``-``."""
    return {re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-") for title in _HEADING.findall(prose(doc))}


def relative_links(doc: Path) -> list[str]:
    """The targets of ``doc``'s links and images that are not URLs (http:, https:, mailto:)."""
    return [target for target in _LINK.findall(prose(doc)) if not re.match(r"[a-z]+:", target)]


def test_anchors_follow_github(tmp_path: Path) -> None:
    doc = tmp_path / "page.md"
    doc.write_text(
        "# Sweeps: `passion-sweep run`\n\n```bash\n# a comment, not a heading\n```\n## Table 1 (BraTS2020)\n"
    )
    assert anchors(doc) == {"sweeps-passion-sweep-run", "table-1-brats2020"}


@pytest.mark.parametrize("doc", DOCS, ids=lambda doc: doc.name)
def test_relative_links_resolve(doc: Path) -> None:
    broken = []
    for target in relative_links(doc):
        path, _, anchor = target.partition("#")
        linked = (doc.parent / path).resolve() if path else doc
        if not linked.exists() or (anchor and linked.suffix == ".md" and anchor not in anchors(linked)):
            broken.append(target)
    assert broken == [], f"{doc.name} links to what does not exist"


def test_readme_is_short() -> None:
    assert len(README.read_bytes()) < README_LIMIT


def test_readme_indexes_every_page() -> None:
    linked = {(ROOT / target.partition("#")[0]).resolve() for target in relative_links(README)}
    assert [page.name for page in PAGES if page.resolve() not in linked] == []


@pytest.mark.parametrize("spec", sorted((ROOT / "experiments").glob("*.yaml")), ids=lambda spec: spec.name)
def test_specs_name_existing_docs(spec: Path) -> None:
    named = _NAMED_DOC.findall(spec.read_text())
    assert [name for name in named if not (ROOT / name).is_file()] == []
