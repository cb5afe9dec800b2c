"""The suite's in-process permission drop (conftest.plain_user): what runs under it may not read a file without read
permission by any way medseg or click asks, as a user other than root may not."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import plain_user

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="as another user every drop is already there")


@pytest.fixture
def unreadable(tmp_path):
    path = tmp_path / "secret.txt"
    path.write_text("secret\n")
    path.chmod(0)
    return path


def test_this_thread_may_neither_open_nor_be_told_it_may_read_a_file_without_read_permission(unreadable):
    """click's readable check asks access(2), which for root took the capabilities its thread had dropped back (the
    permitted set keeps them): a test of a path refused as a usage error by that check passed with the check back."""
    with plain_user():
        with pytest.raises(PermissionError):
            unreadable.read_text()
        assert os.access(unreadable, os.R_OK) is False
    assert (unreadable.read_text(), os.access(unreadable, os.R_OK)) == ("secret\n", True)


def test_a_program_started_under_it_may_not_read_a_file_without_read_permission(unreadable):
    """A program root starts gets every capability back at exec: what a command runs (git, a Snakemake job) read
    what the command itself could not."""
    with plain_user():
        done = subprocess.run([sys.executable, "-c", f"open({str(unreadable)!r}).read()"], capture_output=True,
                              text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("PermissionError: [Errno 13] Permission denied")
