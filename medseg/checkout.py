"""The git commit of the checkout medseg runs from, where it runs from one (an editable install): the version number
is the same for every commit between releases, and results recorded with it alone could not be told apart; and
whether the checkout's files were that commit's (``-dirty`` after it, as ``git describe --dirty`` writes it)."""

from __future__ import annotations

import functools
import logging
import os
import re
import subprocess
from pathlib import Path

__all__ = ["DIRTY", "commit_text", "source_commit"]

log = logging.getLogger(__name__)

_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
DIRTY = "-dirty"  # after the commit where a tracked file differs from it, as `git describe --dirty` writes it
_GIT_SECONDS = 30  # a checkout on a hung network disk: the record goes on without the check


@functools.cache
def source_commit() -> str | None:
    """The commit checked out where medseg's code lies (read from ``.git`` directly), with ``-dirty`` after it where
    a tracked file of the checkout differs from it, staged or not (``git status``; files git does not track do not
    count: ``git describe --dirty``'s rule), or None: an installed copy, or a checkout that cannot be read. Where git
    cannot be run or cannot say (not installed, a checkout of another user's that it refuses), a warning says so and
    the commit is given alone. Worked out once per process."""
    root = Path(__file__).resolve().parent.parent
    try:  # medseg's own checkout, not a project that holds a copy of its code
        if not re.search(r'(?m)^name\s*=\s*"medseg"', (root / "pyproject.toml").read_text(encoding="utf-8")):
            return None
        commit = _head(root / ".git")
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if commit is None:
        return None
    return commit + (DIRTY if _changed(root) else "")


def commit_text(commit: str) -> str:
    """A recorded commit as a sentence names it: its first 12 characters, and ``with uncommitted changes`` for
    one recorded ``-dirty``."""
    if commit.endswith(DIRTY):
        return f"{commit.removesuffix(DIRTY)[:12]} with uncommitted changes"
    return commit[:12]


def _changed(root: Path) -> bool:
    """Whether a tracked file of the checkout at ``root`` differs from its commit, as ``git status`` tells it (about
    10-20 ms for medseg's files). Git runs without taking the index's lock (``--no-optional-locks``: a commit the
    user makes meanwhile does not fail on it) and without the caller's ``GIT_*`` variables (a ``GIT_DIR`` of another
    project would have it look there). False, with a warning, where it cannot say."""
    environment = {name: value for name, value in os.environ.items() if not name.startswith("GIT_")}
    command = ["git", "--no-optional-locks", "-C", os.fspath(root), "status", "--porcelain", "--untracked-files=no"]
    try:
        done = subprocess.run(command, capture_output=True, env=environment, stdin=subprocess.DEVNULL,
                              timeout=_GIT_SECONDS, check=False)
    except FileNotFoundError:
        reason = "git is not installed"
    except subprocess.TimeoutExpired:
        reason = f"git status took more than {_GIT_SECONDS} s"
    except OSError as error:
        reason = f"git cannot be run: {error.strerror or error}"
    else:
        if done.returncode == 0:
            return bool(done.stdout.strip())
        said = [line for line in done.stderr.decode("utf-8", "replace").splitlines() if line.strip()]
        # git's own warnings (a config file it cannot read) come before the error that ended it
        said = [line for line in said if line.startswith(("fatal:", "error:"))] or said
        reason = f"git status: {said[0] if said else f'exit status {done.returncode}'}"
    log.warning("%s: cannot tell whether the checkout medseg runs from has uncommitted changes (%s); the commit "
                "recorded as medseg_commit is its own, without -dirty", root, reason)
    return False


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
