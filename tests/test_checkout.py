"""medseg.checkout: the commit of the checkout medseg runs from, read from .git without running git."""

import shutil
import subprocess
from pathlib import Path

import pytest

from medseg.checkout import _head, source_commit

A, B = "a" * 40, "b" * 40


def test_a_branch_is_read_from_its_loose_ref_or_the_packed_refs(tmp_path):
    git = tmp_path / ".git"
    (git / "refs" / "heads").mkdir(parents=True)
    (git / "HEAD").write_text("ref: refs/heads/main\n")
    (git / "packed-refs").write_text(f"# pack-refs with: peeled fully-peeled sorted\n{B} refs/heads/main\n"
                                     f"^{A}\n")
    assert _head(git) == B  # packed only
    (git / "refs" / "heads" / "main").write_text(A + "\n")
    assert _head(git) == A  # a loose ref is newer than the packed one
    (git / "HEAD").write_text(B + "\n")
    assert _head(git) == B  # a detached HEAD
    (git / "HEAD").write_text("ref: refs/heads/new\n")
    assert _head(git) is None  # a branch without a commit yet


def test_a_worktree_reads_its_branch_from_the_main_repository(tmp_path):
    main = tmp_path / "repo" / ".git"
    (main / "refs" / "heads").mkdir(parents=True)
    (main / "refs" / "heads" / "feature").write_text(A + "\n")
    linked = main / "worktrees" / "wt"
    linked.mkdir(parents=True)
    (linked / "HEAD").write_text("ref: refs/heads/feature\n")
    (linked / "commondir").write_text("../..\n")
    checkout = tmp_path / "wt"
    checkout.mkdir()
    (checkout / ".git").write_text(f"gitdir: {linked}\n")
    assert _head(checkout / ".git") == A
    (checkout / ".git").write_text("not a gitdir line\n")
    assert _head(checkout / ".git") is None


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_this_checkout_gives_the_commit_git_gives():
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True)
    if done.returncode != 0 or not (root / ".git").exists():
        pytest.skip("not run from a git checkout of medseg")
    assert source_commit() == done.stdout.strip()
