"""The git commit of the checkout medseg runs from, where it runs from one (an editable install): the version number
is the same for every commit between releases, and results recorded with it alone could not be told apart."""

from __future__ import annotations

import functools
import re
from pathlib import Path

__all__ = ["source_commit"]

_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


@functools.cache
def source_commit() -> str | None:
    """The commit checked out where medseg's code lies (read from ``.git`` directly, no ``git`` run), or None: an
    installed copy, or a checkout that cannot be read. Uncommitted changes are not told."""
    root = Path(__file__).resolve().parent.parent
    try:  # medseg's own checkout, not a project that holds a copy of its code
        if not re.search(r'(?m)^name\s*=\s*"medseg"', (root / "pyproject.toml").read_text(encoding="utf-8")):
            return None
        return _head(root / ".git")
    except (OSError, UnicodeDecodeError, ValueError):
        return None


def _head(git: Path) -> str | None:
    if git.is_file():  # a worktree or submodule: "gitdir: <path>"
        text = git.read_text(encoding="utf-8").strip()
        if not text.startswith("gitdir:"):
            return None
        git = (git.parent / text.removeprefix("gitdir:").strip()).resolve()
    if not (git / "HEAD").is_file():
        return None
    head = (git / "HEAD").read_text(encoding="utf-8").strip()
    if _SHA.fullmatch(head):  # a detached HEAD
        return head
    if not head.startswith("ref:"):
        return None
    ref = head.removeprefix("ref:").strip()
    common = git
    if (git / "commondir").is_file():  # a worktree's branches live in the main repository's folder
        common = (git / (git / "commondir").read_text(encoding="utf-8").strip()).resolve()
    for folder in (git, common):
        loose = folder / ref
        if loose.is_file():
            sha = loose.read_text(encoding="utf-8").strip()
            return sha if _SHA.fullmatch(sha) else None
    packed = common / "packed-refs"
    if packed.is_file():
        for line in packed.read_text(encoding="utf-8").splitlines():
            sha, _, name = line.partition(" ")
            if name == ref and _SHA.fullmatch(sha):
                return sha
    return None  # a branch without a commit yet
