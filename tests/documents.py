"""The project's documentation as the tests read it: README.md (the first page) and the reference pages under docs/.

A test that looks a fact up reads the page that holds it (``read("docs/cohorts.md")``), or every page at once
(``all_text()``) where a fact may be told on any of them (a sidecar key, a DICOM input's ``input_info`` key)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"


def doc_pages() -> list[Path]:
    """The reference pages, docs/*.md, by name."""
    return sorted(DOCS.glob("*.md"))


def pages() -> list[Path]:
    """README.md, then the reference pages."""
    return [README, *doc_pages()]


def read(name: str = "README.md") -> str:
    """The text of one page, by its path from the repository root (``"README.md"``, ``"docs/training.md"``)."""
    return (ROOT / name).read_text(encoding="utf-8")


def all_text() -> str:
    """README.md and every reference page, one after another."""
    return "\n".join(page.read_text(encoding="utf-8") for page in pages())


def section(text: str, heading: str) -> str:
    """The section of ``text`` under the heading ``heading`` (any level, outside fenced code), its heading line
    included, up to the next heading of the same or a higher level."""
    lines, fenced, start, level = text.split("\n"), False, None, 0
    for index, line in enumerate(lines):
        if line.startswith("```"):
            fenced = not fenced
            continue
        found = None if fenced else re.match(r"(#{1,6}) (.*)", line)
        if not found:
            continue
        if start is None and found.group(2).strip() == heading:
            start, level = index, len(found.group(1))
        elif start is not None and len(found.group(1)) <= level:
            return "\n".join(lines[start:index]) + "\n"
    if start is None:
        raise ValueError(f"no heading {heading!r}")
    return "\n".join(lines[start:]) + "\n"
