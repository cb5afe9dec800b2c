"""medseg.checkout: the commit of the checkout medseg runs from, read from .git, and whether its files were that
commit's (git status)."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from medseg import checkout
from medseg.checkout import _head, commit_text, source_commit

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
    done = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                          env=_own_environment())
    if done.returncode != 0 or not (root / ".git").exists():
        pytest.skip("not run from a git checkout of medseg")
    described = subprocess.run(["git", "--no-optional-locks", "-C", str(root), "describe", "--always", "--dirty",
                                "--abbrev=40", "--exclude=*"], capture_output=True, text=True, env=_own_environment())
    assert source_commit() == done.stdout.strip() + ("-dirty" if described.stdout.strip().endswith("-dirty") else "")


def _own_environment() -> dict[str, str]:
    """The environment without the caller's GIT_* variables (a hook's GIT_DIR and GIT_INDEX_FILE name the repository
    being committed to), as medseg runs git."""
    return {name: value for name, value in os.environ.items() if not name.startswith("GIT_")}


def _git(folder, *args) -> str:
    done = subprocess.run(["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@example.org",
                           "-c", "commit.gpgsign=false", *args], capture_output=True, text=True, check=True,
                          env=_own_environment())
    return done.stdout.strip()


@pytest.fixture
def checkout_at(monkeypatch):
    """source_commit() as from a medseg checkout at the folder given, worked out afresh (and afresh again after)."""

    def at(root: Path) -> str | None:
        monkeypatch.setattr(checkout, "__file__", str(root / "medseg" / "checkout.py"))
        source_commit.cache_clear()
        return source_commit()

    yield at
    source_commit.cache_clear()


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_a_checkout_with_uncommitted_changes_is_told_dirty(tmp_path, checkout_at, monkeypatch):
    """medseg_commit named the commit checked out, whatever was changed since: results of edited code were recorded
    as that commit's. A tracked file changed, staged or not, adds -dirty (git describe --dirty's rule); a file git
    does not track does not, and neither does a GIT_DIR of another repository set by the caller."""
    monkeypatch.delenv("GIT_DIR", raising=False)
    repo = tmp_path / "repo"
    (repo / "medseg").mkdir(parents=True)
    (repo / "pyproject.toml").write_text('[project]\nname = "medseg"\n')
    (repo / "medseg" / "segment.py").write_text("LABELS = 3\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "first")
    head = _git(repo, "rev-parse", "HEAD")
    assert checkout_at(repo) == head
    (repo / "medseg" / "notes.txt").write_text("not tracked\n")
    assert checkout_at(repo) == head
    (repo / "medseg" / "segment.py").write_text("LABELS = 4\n")
    assert checkout_at(repo) == f"{head}-dirty"
    _git(repo, "add", "medseg/segment.py")  # staged, not committed
    assert checkout_at(repo) == f"{head}-dirty"
    other = tmp_path / "other"
    other.mkdir()
    _git(other, "init", "-q")
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    assert checkout_at(repo) == f"{head}-dirty"
    monkeypatch.delenv("GIT_DIR")
    _git(repo, "commit", "-q", "-m", "second")
    assert checkout_at(repo) == _git(repo, "rev-parse", "HEAD") != head


def test_where_git_cannot_say_the_commit_is_given_alone_with_a_warning(tmp_path, checkout_at, monkeypatch, caplog):
    (tmp_path / "medseg").mkdir()
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "medseg"\n')
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text(A + "\n")
    monkeypatch.setenv("PATH", str(tmp_path / "no-git-here"))
    with caplog.at_level("WARNING", logger="medseg.checkout"):
        assert checkout_at(tmp_path) == A
    assert [record.getMessage() for record in caplog.records] == [
        f"{tmp_path}: cannot tell whether the checkout medseg runs from has uncommitted changes (git is not "
        "installed); the commit recorded as medseg_commit is its own, without -dirty"]


def test_a_dirty_commit_is_named_with_its_uncommitted_changes():
    assert commit_text(A) == "a" * 12
    assert commit_text(f"{A}-dirty") == "aaaaaaaaaaaa with uncommitted changes"


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_the_warning_names_why_git_refused_not_a_warning_it_printed_first(tmp_path, checkout_at, monkeypatch,
                                                                         caplog):
    """git prints its warnings (a global config it cannot read) before the error that ended it: the warning named the
    first line, so the reason it could not say was lost behind one that did not matter."""
    monkeypatch.delenv("GIT_DIR", raising=False)
    repo = tmp_path / "repo"
    (repo / "medseg").mkdir(parents=True)
    (repo / "pyproject.toml").write_text('[project]\nname = "medseg"\n')
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "first")
    head = _git(repo, "rev-parse", "HEAD")
    _git(repo, "config", "core.repositoryformatversion", "99")  # a repository format this git cannot read
    (tmp_path / "home" / ".gitconfig").mkdir(parents=True)  # git warns: unable to access it
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home" / ".config"))
    with caplog.at_level("WARNING", logger="medseg.checkout"):
        assert checkout_at(repo) == head
    [message] = [record.getMessage() for record in caplog.records]
    assert "(git status: fatal: Expected git repo version <= 1, found 99)" in message, message


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_the_tests_own_git_leaves_the_callers_repository_alone(tmp_path, monkeypatch):
    """A git hook that runs the tests (pre-commit) runs them with GIT_INDEX_FILE, and GIT_DIR, naming the repository
    being committed to: the repositories these tests make were then added to that index, whose commit then deleted
    every file of the checkout. Their git runs without the caller's GIT_* variables, as medseg's own does."""
    caller = tmp_path / "caller"
    caller.mkdir()
    (caller / "kept.txt").write_text("the caller's\n")
    _git(caller, "init", "-q")
    _git(caller, "add", "kept.txt")
    staged = (caller / ".git" / "index").read_bytes()
    monkeypatch.setenv("GIT_INDEX_FILE", str(caller / ".git" / "index"))
    monkeypatch.setenv("GIT_DIR", str(caller / ".git"))
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "made.txt").write_text("the test's\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "first")
    assert (caller / ".git" / "index").read_bytes() == staged
    assert not list((caller / ".git" / "refs" / "heads").iterdir())  # no commit made there
    monkeypatch.delenv("GIT_INDEX_FILE")
    monkeypatch.delenv("GIT_DIR")
    assert _git(repo, "ls-files") == "made.txt" and len(_git(repo, "rev-parse", "HEAD")) == 40
