"""What medseg finds in the place of a claim file (medseg.io.folder_claim): its name beside a folder is known in
advance, so anyone who may write there can put a symbolic link or a named pipe in its place. The claim is made,
looked at and read only as a regular file of its own: never through a link, never waiting for a pipe's writer."""

from __future__ import annotations

import os
import threading

import pytest

from medseg.errors import OutputWriteError
from medseg.io import folder_claim

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo") or not hasattr(os, "O_NOFOLLOW"),
                                reason="named pipes and links are POSIX")


def _within(call, pipe, seconds: float = 10):
    """``call()``'s outcome (its value, or the exception it raised), given ``seconds``: a read of a named pipe waited
    for a writer for ever (the pipe ``pipe`` is then given a writer that closes at once, to let the old read end)."""
    outcome = []

    def target():
        try:
            outcome.append(call())
        except Exception as error:  # the refusal, compared by the caller
            outcome.append(error)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    waited = thread.is_alive()
    if waited:
        os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(seconds)
    assert not waited, "waited for the named pipe's writer"
    return outcome[0]


@pytest.mark.parametrize("linked", [False, True], ids=["pipe", "link to a pipe"])
def test_a_named_pipe_in_a_claims_place_is_no_claim_to_those_that_look(tmp_path, linked):
    """`medseg report RESULTS` and a cohort step started by hand look whether a run holds the results folder: with a
    named pipe (or a link to one) as ``.results.lock`` both hung for ever, waiting for a writer."""
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    claim = tmp_path / ".results.lock"
    if linked:
        claim.symlink_to(pipe)
    else:
        pipe.rename(claim)
        pipe = claim
    assert _within(lambda: folder_claim.held_by_another(tmp_path / "results"), pipe) is None
    assert _within(lambda: folder_claim.claim_holder(tmp_path / "results"), pipe) is None


def test_a_link_to_a_device_in_a_claims_place_is_not_read(tmp_path):
    """A cohort job compares the holder the results folder's claim file names with its run's: a link to /dev/zero
    there was read until the memory ran out (here in a process given 10 s and 2 GB of address space)."""
    import resource
    import subprocess
    import sys

    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero")
    (tmp_path / ".results.lock").symlink_to("/dev/zero")
    code = ("import sys; from medseg.io.folder_claim import claim_holder, held_by_another\n"
            "print(claim_holder(sys.argv[1]), held_by_another(sys.argv[1]))")

    def limited():
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "results")], capture_output=True, text=True,
                          timeout=10, preexec_fn=limited)
    assert (done.returncode, done.stdout) == (0, "None None\n"), done.stderr[-500:]


def test_a_link_to_a_file_in_a_claims_place_is_not_read_as_its_holder(tmp_path):
    """The holder a claim names decides whether a job belongs to the run holding the folder: a link's target, a file
    someone else chose, is no claim's."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_text(f"{folder_claim.holder_text()}\n")
    (tmp_path / ".results.lock").symlink_to(elsewhere)
    assert folder_claim.claim_holder(tmp_path / "results") is None


def test_a_claim_names_a_holder_with_a_long_host_name_whole(tmp_path, monkeypatch):
    """A job is its run's when the claim names the run's holder exactly: the first 200 bytes were read, so a host's
    full name of 200 characters (a cluster node's) cut the name short and the run's own jobs were refused."""
    monkeypatch.setattr(folder_claim.socket, "gethostname", lambda: "node" + "x" * 240 + ".cluster.example.org")
    with folder_claim.claimed(tmp_path / "results", "cohort run"):
        assert folder_claim.claim_holder(tmp_path / "results") == folder_claim.holder_text()


@pytest.mark.parametrize("kind", ["pipe", "link", "link to nothing"])
def test_a_pipe_or_link_in_a_claims_place_is_refused_naming_it_and_nothing_is_written_through_it(tmp_path, kind):
    """The claim file's name beside an output folder is known in advance (``.out.lock``): a symbolic link put there by
    anyone who may write to the folder's parent (a folder a group shares, a shared temporary folder without the
    kernel's protected links) made a training run truncate the file the link leads to and write its pid there. A run
    that claims the folder refuses a link (one leading nowhere too: nothing is made where it leads) or a named pipe
    there, in one line naming it (the other commands then find no claim there, and do not wait on it)."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    claim = tmp_path / ".out.lock"
    if kind == "pipe":
        os.mkfifo(claim)
    else:
        claim.symlink_to(victim if kind == "link" else tmp_path / "nowhere")
    with pytest.raises(OutputWriteError) as caught:
        with folder_claim.claimed(tmp_path / "out", "training run"):
            pass
    what = "a named pipe" if kind == "pipe" else "a symbolic link"
    assert str(caught.value) == (f"{claim}: {what} where medseg keeps its claim on {tmp_path / 'out'} (one training "
                                 "run at a time); nothing is written through it: remove it and run again")
    assert victim.read_text() == "precious\n" and not (tmp_path / "nowhere").exists()
    if kind == "pipe":
        assert claim.exists() and not claim.is_file() and not claim.is_symlink()
    else:
        assert claim.is_symlink()


def test_leftover_claims_are_removed_but_links_are_not_followed(tmp_path):
    """A cohort's planning removes the cases' claim files no process holds: a link among them was opened for writing
    and locked where it led. It is left (the case it blocks fails naming it), and so is what it leads to."""
    status = tmp_path / "status"
    status.mkdir()
    (status / ".a.lock").write_text("pid 1 on gone, user someone\n")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (status / ".b.lock").symlink_to(victim)
    assert folder_claim.remove_unheld_claims(status) == [status / ".a.lock"]
    assert (status / ".b.lock").is_symlink() and victim.read_text() == "precious\n"
