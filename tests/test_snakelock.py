"""The Snakemake lock of a killed cohort run (medseg.cohort.snakelock): released, kept, or explained."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medseg.cohort import snakelock


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _locks(state: Path) -> list[Path]:
    (state / "locks").mkdir(parents=True, exist_ok=True)
    paths = [state / "locks" / "0.input.lock", state / "locks" / "0.output.lock"]
    for path in paths:
        path.write_text("some/file\n")
    return paths


def test_locks_of_a_killed_run_are_released(tmp_path):
    locks = _locks(tmp_path)
    snakelock.record_run(tmp_path, pid=_dead_pid())
    assert snakelock.release_stale_locks(tmp_path) == ["0.input.lock", "0.output.lock"]
    assert not any(p.exists() for p in locks)
    assert list((tmp_path / snakelock.RUNS).iterdir()) == []


def test_a_killed_runs_stop_file_goes_with_its_record(tmp_path):
    """A run killed while it stopped (a SLURM time limit: SIGTERM, then SIGKILL while it waited for its jobs) left its
    stop file in .snakemake/medseg-runs; the next run released its lock and its record but kept the stop file, for
    good. It now goes with the record; a live run's is kept."""
    from medseg import stopping

    _locks(tmp_path)
    dead, live = _dead_pid(), os.getpid()
    for pid in (dead, live):
        stopping.mark(snakelock.stop_file(tmp_path, pid), signal.SIGTERM)
    snakelock.record_run(tmp_path, pid=dead)
    assert snakelock.release_stale_locks(tmp_path) == ["0.input.lock", "0.output.lock"]
    assert [p.name for p in (tmp_path / snakelock.RUNS).iterdir()] == [snakelock.stop_file(tmp_path, live).name]


def test_locks_of_a_live_run_are_kept(tmp_path):
    locks = _locks(tmp_path)
    snakelock.record_run(tmp_path, pid=_dead_pid())
    snakelock.record_run(tmp_path, pid=os.getpid())
    assert snakelock.release_stale_locks(tmp_path) == []
    assert all(p.exists() for p in locks)


def test_unrecorded_or_newer_locks_are_kept(tmp_path):
    locks = _locks(tmp_path)
    snakelock.record_run(tmp_path, pid=_dead_pid())
    # the lock file was replaced by another run after the recorded one died
    os.utime(locks[0], ns=(0, locks[0].stat().st_mtime_ns + 10**9))
    assert snakelock.release_stale_locks(tmp_path) == []
    assert all(p.exists() for p in locks)
    # a run recorded on another host cannot be checked, so its locks stay too
    record = tmp_path / snakelock.RUNS / "elsewhere-1.json"
    record.write_text(json.dumps({"pid": 1, "host": socket.gethostname() + "-other", "boot_id": None,
                                  "locks": []}))
    assert snakelock.release_stale_locks(tmp_path) == []


@pytest.mark.parametrize("edit", [{"pid": 99999999999999999999}, {"pid": -1}, {"locks": [1, ["x"]]},
                                  {"locks": "0.input.lock"}])
def test_a_run_record_edited_past_sense_is_an_unknown_run_not_a_traceback(tmp_path, monkeypatch, edit):
    """A hand-edited run record with a pid the OS cannot hold (OverflowError), one that is no process's, or locks
    that are not text (TypeError) is taken as a record that cannot be read: its run is unknown, its locks kept."""
    from medseg.errors import OutputExistsError

    state = tmp_path / ".snakemake"
    locks = _results_locks(tmp_path)
    record = snakelock.record_run(state, pid=_dead_pid())
    record.write_text(json.dumps({**json.loads(record.read_text()), **edit}))
    assert snakelock.release_stale_locks(state) == []
    assert all(lock.exists() for lock in locks)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OutputExistsError, match="left by a run medseg did not record"):
        snakelock.check_lock(state, "results")


def _results_locks(workdir: Path, results: str = "results") -> list[Path]:
    """Snakemake's lock files of a run whose outputs are under ``workdir/results`` (relative paths, as a relative
    results folder gives them)."""
    locks = workdir / ".snakemake" / "locks"
    locks.mkdir(parents=True)
    (locks / "0.input.lock").write_text(f"samples.tsv\n{results}/jobs/batch001.infer.json\n")
    (locks / "0.output.lock").write_text(f"{results}/jobs/batch001.infer.json\n{results}/report.html\n")
    return sorted(locks.iterdir())


def test_a_kept_snakemake_lock_says_whose_it_is_and_what_to_do(tmp_path, monkeypatch):
    """Snakemake's LockException advises --unlock whatever holds the lock; with a live run, or the jobs of a killed
    one still working, that lets two runs write the same cases. The next run now stops in one line saying which."""
    import getpass

    from medseg.errors import OutputExistsError

    state = tmp_path / ".snakemake"
    _results_locks(tmp_path)
    monkeypatch.chdir(tmp_path)
    snakelock.check_lock(state, "other")  # the locks name none of another results folder's files
    where = (f"results: Snakemake's lock {state / 'locks'} (0.input.lock, 0.output.lock, made ")
    # live: this process recorded as the run
    record = snakelock.record_run(state, pid=os.getpid())
    with pytest.raises(OutputExistsError) as live:
        snakelock.check_lock(state, "results")
    message = str(live.value)
    assert message.startswith(where) and message.endswith(
        f") names this folder's files: it is held by the Snakemake run pid {os.getpid()} on {socket.gethostname()} "
        f"(user {getpass.getuser()}), which is still running; wait for it to end (do not run --unlock: "
        "two runs would write the same files)")
    record.unlink()
    # killed, its job still working in the folder
    snakelock.record_run(state, pid=_dead_pid())
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "-m", "medseg", "cohort", "infer"],
                              cwd=tmp_path)
    try:
        deadline = time.monotonic() + 10
        while snakelock.working_steps(tmp_path) != [worker.pid] and time.monotonic() < deadline:
            time.sleep(0.02)
        with pytest.raises(OutputExistsError) as working:
            snakelock.check_lock(state, str(tmp_path / "results"))  # an absolute path names the same folder
        assert str(working.value).endswith(
            f"was killed, and its medseg step (pid {worker.pid}) is still working in {tmp_path}; run the same command "
            "again once it has ended (the lock is then released by itself; do not run --unlock: this run would redo "
            "their cases beside them)")
        assert "--unlock, then" not in str(working.value)
    finally:
        worker.kill()
        worker.wait()
    # once it has ended, the lock is released and nothing stops the run
    assert snakelock.release_stale_locks(state) == ["0.input.lock", "0.output.lock"]
    snakelock.check_lock(state, "results")


def test_a_kept_snakemake_lock_medseg_cannot_judge_says_how_to_tell(tmp_path, monkeypatch):
    """A lock no run recorded, or recorded on another host: where medseg cannot tell, it says how to before
    --unlock."""
    from medseg.errors import OutputExistsError

    state = tmp_path / ".snakemake"
    locks = _results_locks(tmp_path)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OutputExistsError) as unrecorded:
        snakelock.check_lock(state, "results")
    assert str(unrecorded.value).endswith(
        "names this folder's files, left by a run medseg did not record (killed as it started, or not this "
        f"workflow's): medseg cannot tell whether it still runs; if no snakemake runs in {tmp_path}, run the same "
        "command with --unlock, then again without it")
    (state / snakelock.RUNS).mkdir()
    (state / snakelock.RUNS / "node7-4242.json").write_text(json.dumps(
        {"pid": 4242, "host": "node7", "user": "ana", "boot_id": "x",
         "locks": [f"{lock.name}@{lock.stat().st_mtime_ns}" for lock in locks]}))
    with pytest.raises(OutputExistsError) as elsewhere:
        snakelock.check_lock(state, "results")
    assert str(elsewhere.value).endswith(
        "left by the Snakemake run pid 4242 on node7 (user ana), on another host: medseg cannot tell whether it still "
        "runs; if `ps -p 4242` on node7 shows no snakemake, run the same command with --unlock, then again without it")


def test_locks_are_kept_while_a_killed_runs_step_still_works(tmp_path, caplog):
    """After SIGKILL of Snakemake alone its job processes go on; releasing the lock then started a second worker on
    the same cases beside them (it cleared their partial files and counted their attempt as a crash)."""
    state = tmp_path / ".snakemake"
    locks = _locks(state)
    snakelock.record_run(state, pid=_dead_pid())
    # a process whose arguments are those of a workflow step, working in the run's folder: a script named medseg,
    # run by its interpreter as the installed console script is: through its shebang, or, where the interpreter's
    # path cannot go in one (a space in it, over 127 bytes), through the /bin/sh lines pip writes instead
    script = tmp_path / "bin" / "medseg"
    script.parent.mkdir()
    if " " in sys.executable or len(sys.executable) > 127:
        launcher = f"#!/bin/sh\n'''exec' \"{sys.executable}\" \"$0\" \"$@\"\n' '''\n"
    else:
        launcher = f"#!{sys.executable}\n"
    script.write_text(launcher + "import time\nprint('running', flush=True)\ntime.sleep(60)\n")
    script.chmod(0o755)
    worker = subprocess.Popen([str(script), "-v", "cohort", "infer", "x"], cwd=tmp_path, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert worker.stdout.readline() == "running\n"  # past /bin/sh, if any: the interpreter runs the script
        assert snakelock.working_steps(tmp_path) == [worker.pid]
        assert snakelock.working_steps(tmp_path / "locks") == []  # another folder
        with caplog.at_level("WARNING", logger="medseg"):
            assert snakelock.release_stale_locks(state) == []
        assert all(p.exists() for p in locks)
        assert f"still working here (pid {worker.pid})" in caplog.text
    finally:
        worker.kill()
        worker.wait()
    assert snakelock.release_stale_locks(state) == ["0.input.lock", "0.output.lock"]


@pytest.mark.parametrize(("argv", "step"), [
    (["/usr/bin/python3", "-m", "medseg", "-v", "cohort", "infer", "s.tsv"], True),
    (["/usr/bin/python3", "-m", "medseg", "-v", "cohort", "evaluate", "s.tsv"], True),
    (["/usr/bin/python3", "-m", "medseg", "-v", "report", "results"], True),  # was never matched
    (["/venv/bin/medseg", "report", "results"], True),
    (["/venv/bin/python3", "/venv/bin/medseg", "-v", "cohort", "infer", "s.tsv"], True),  # the console script
    (["/usr/bin/python3", "-sP", "/venv/bin/medseg", "report", "r"], True),  # a shebang with interpreter flags
    (["vim", "/home/u/medseg", "report"], False),
    (["/usr/bin/python3", "-m", "snakemake", "--config", "results=report"], False),
    (["/usr/bin/python3", "-m", "medseg", "infer", "cohort"], False),
    (["/bin/sh", "-c", "python -m medseg -v report r > log"], False),  # its child, python, is the step
    (["/usr/bin/python3", "-m", "snakemake", "-d", "/home/u/medseg", "report"], False),
    (["/usr/bin/python3", "-mmedseg", "report", "results"], True),
])
def test_the_workflows_steps_are_told_by_their_command_line(argv, step):
    assert snakelock._runs_step([word.encode() for word in argv]) == step
