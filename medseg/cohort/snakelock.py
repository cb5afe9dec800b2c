"""Releasing the Snakemake lock of a cohort run that was killed outright.

Snakemake locks its working directory while it runs and unlocks it on exit, also on Ctrl-C, SIGTERM or a
failed job; a run killed with SIGKILL (or a power loss, or the OOM killer) leaves the lock behind, and the
next run refuses to start until ``snakemake --unlock``. The Snakefile records each run it starts
(:func:`record_run`, in ``onstart``) and, before the next run locks, releases locks that were provably left by
runs that are gone (:func:`release_stale_locks`). Provably gone means: recorded on this host since its last
boot, and its process no longer exists. Lock files no run recorded (a run of another workflow, a run on another
host of a shared file system) are left alone. A lock that is kept and would stop this run is explained by
:func:`check_lock` in one line, before Snakemake's LockException, whose advice (``--unlock``) is right only when no
run is live: a live run, or the jobs of a killed one still working, are waited for instead.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import logging
import os
import socket
import time
from pathlib import Path

from medseg.errors import OutputExistsError
from medseg.jsonfile import RECORD_BYTES, read_json_object

__all__ = ["check_lock", "forget_run", "record_run", "release_stale_locks", "stop_file"]

log = logging.getLogger(__name__)

RUNS = "medseg-runs"
_PID_MAX = 2**31 - 1  # pid_t is a signed 32-bit int: a larger pid is no process's (os.kill would overflow)


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a uid without a name (a container's)
        return None


def _lock_files(state: Path) -> list[Path]:
    folder = state / "locks"
    return sorted(p for p in folder.glob("*.lock") if p.is_file()) if folder.is_dir() else []


def _identity(lock: Path) -> str:
    """A lock file's name and modification time: Snakemake reuses names (0.input.lock, ...) across runs."""
    try:
        return f"{lock.name}@{lock.stat().st_mtime_ns}"
    except OSError:
        return f"{lock.name}@gone"


def record_run(state: Path | str = ".snakemake", pid: int | None = None) -> Path:
    """Note that the run ``pid`` (default: this process) holds the lock files present now."""
    state = Path(state)
    pid = os.getpid() if pid is None else pid
    record = {
        "pid": pid,
        "host": socket.gethostname(),
        "user": _user(),
        "boot_id": _boot_id(),
        "locks": [_identity(p) for p in _lock_files(state)],
    }
    path = state / RUNS / f"{socket.gethostname()}-{pid}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record) + "\n")
    return path


def forget_run(state: Path | str = ".snakemake", pid: int | None = None) -> None:
    """Drop the record of a run that ended normally (Snakemake released its lock itself), and its stop file
    (:func:`stop_file`)."""
    pid = os.getpid() if pid is None else pid
    with contextlib.suppress(FileNotFoundError):
        (Path(state) / RUNS / f"{socket.gethostname()}-{pid}.json").unlink()
    with contextlib.suppress(OSError):
        stop_file(state, pid).unlink()


def stop_file(state: Path | str = ".snakemake", pid: int | None = None) -> Path:
    """The stop file of the run ``pid`` (default: this process), beside its record, absolute: written when the run is
    stopped (Ctrl-C, SIGTERM, SIGHUP), for its jobs to end after their current case (:mod:`medseg.stopping`)."""
    pid = os.getpid() if pid is None else pid
    return Path(state).absolute() / RUNS / f"{socket.gethostname()}-{pid}.stop"


STEPS = ((b"cohort", b"infer"), (b"cohort", b"evaluate"), (b"report",))  # what the workflow's jobs run


def working_steps(workdir: Path | str) -> list[int]:
    """The processes running a step of the workflow (``medseg [-v] cohort infer|evaluate``, ``medseg [-v] report``)
    in ``workdir`` (jobs of the local executor run there; they outlive a Snakemake killed with SIGKILL). Read from
    ``/proc``; none where it does not exist."""
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    workdir = os.path.realpath(workdir)
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if os.readlink(entry / "cwd") != workdir:
                continue
            words = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # gone meanwhile, or another user's
            continue
        if _runs_step(words):
            found.append(int(entry.name))
    return sorted(found)


def _runs_step(words: list[bytes]) -> bool:
    """Whether a command line runs medseg (``-m medseg``, a ``medseg`` script, or the jobs' ``-c`` that runs the
    medseg of a folder, :data:`medseg.cohort.job_command.FROM_FOLDER`) with one of :data:`STEPS` as its command
    (options of medseg itself, like ``-v``, may come between)."""
    from medseg.cohort.job_command import FROM_FOLDER

    python = bool(words) and Path(words[0].decode(errors="replace")).name.startswith("python")
    starts = [i + 1 for i, word in enumerate(words)
              # the installed script, on its own or run by its interpreter (python [-sP] /venv/bin/medseg ...)
              if ((i == 0 or (python and all(w.startswith(b"-") for w in words[1:i])))
                  and (word == b"medseg" or word.endswith(b"/medseg")))
              or (word == b"medseg" and i > 0 and words[i - 1] == b"-m") or word == b"-mmedseg"]
    starts += [i + 2 for i, word in enumerate(words)  # python -c FROM_FOLDER FOLDER [-v] cohort infer ...
               if python and i > 0 and words[i - 1] == b"-c" and word == FROM_FOLDER.encode()]
    for start in starts:
        rest = [word for word in words[start:] if not word.startswith(b"-")][:2]
        if any(tuple(rest[:len(step)]) == step for step in STEPS):
            return True
    return False


def release_stale_locks(state: Path | str = ".snakemake") -> list[str]:
    """Remove the lock files held only by recorded runs that are gone, and those runs' records and stop files
    (:func:`stop_file`: a run killed while it stopped, a SLURM time limit's SIGKILL after its SIGTERM, left it); return
    the lock files' names.

    Nothing is removed unless every lock file present is accounted for by such a run, no recorded run on this
    host is still alive, and no ``medseg cohort`` step of it is still working in the run's folder.
    """
    state = Path(state)
    locks = _lock_files(state)
    runs_dir = state / RUNS
    if not locks or not runs_dir.is_dir():
        return []
    host, boot = socket.gethostname(), _boot_id()
    dead, held = [], set()
    for path in sorted(runs_dir.glob("*.json")):
        record = _run_record(path)
        if record is None:
            continue
        pid = record["pid"]
        if record.get("host") != host or boot is None or record.get("boot_id") != boot:
            continue  # cannot tell whether it is alive
        if _alive(pid):
            return []  # a run of this workflow is still going: leave everything to Snakemake
        dead.append(path)
        held.update(record["locks"])
    if not dead or any(_identity(lock) not in held for lock in locks):
        return []
    workers = working_steps(state.resolve().parent)
    if workers:  # the killed run's jobs outlive it: a second run would work on their cases beside them
        log.warning("the Snakemake lock of a killed run is kept: %d of its medseg steps are still working here "
                    "(pid %s); run again when they have finished", len(workers), ", ".join(map(str, workers)))
        return []
    for lock in locks:
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()
    for path in dead:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        with contextlib.suppress(OSError):  # its stop file, where it was killed once stopped (stop_file)
            path.with_suffix(".stop").unlink()
    names = [lock.name for lock in locks]
    log.info("released Snakemake lock%s %s left by a killed run", "s" if len(names) != 1 else "", ", ".join(names))
    return names


def check_lock(state: Path | str, results: Path | str) -> None:
    """Raise :class:`~medseg.errors.OutputExistsError` when a Snakemake lock file in ``state`` (what
    :func:`release_stale_locks` kept) names files of the results folder ``results``: Snakemake would stop the run
    with a LockException advising ``--unlock``, which lets two runs write the same files where the run that locked
    them, or its jobs, still work. The message says which it is and what to do: wait for a live run or for a killed
    run's jobs (the lock is then released by itself), or, where medseg cannot tell (a run on another host, from
    before this host restarted, or one it did not record), how to tell before unlocking. Paths in the lock files are
    taken from the folder Snakemake runs in (``state``'s parent)."""
    state = Path(state)
    workdir = state.resolve().parent
    folder = os.path.normpath(os.path.join(workdir, results))
    blocking = [lock for lock in _lock_files(state) if _names_under(lock, folder, workdir)]
    if not blocking:
        return
    made = time.strftime("%Y-%m-%d %H:%M", time.localtime(max(_mtime(lock) for lock in blocking)))
    where = (f"{results}: Snakemake's lock {state / 'locks'} ({', '.join(lock.name for lock in blocking)}, made "
             f"{made}) names this folder's files")
    host, boot = socket.gethostname(), _boot_id()
    owner = _owner(state, blocking)
    workers = working_steps(workdir)
    if owner is not None and owner.get("host") == host and boot is not None and owner.get("boot_id") == boot:
        run = _run_text(owner)
        if _alive(owner["pid"]):
            raise OutputExistsError(f"{where}: it is held by {run}, which is still running; wait for it to end (do not "
                                    "run --unlock: two runs would write the same files)")
        if workers:
            ended = "they have" if len(workers) > 1 else "it has"
            raise OutputExistsError(f"{where}: {run} was killed, and its {_steps_text(workers)} still working in "
                                    f"{workdir}; run the same command again once {ended} ended (the lock is then "
                                    "released by itself; do not run --unlock: this run would redo their cases beside "
                                    "them)")
    if workers:  # whoever made the lock, steps of a cohort are working here now
        raise OutputExistsError(f"{where}, and {_steps_text(workers)} working in {workdir}; wait for them to end, then "
                                "run the same command again (with --unlock if this message comes back)")
    if owner is None:
        who = "a run medseg did not record (killed as it started, or not this workflow's)"
        check = f"no snakemake runs in {workdir}"
    elif owner.get("host") != host:
        who = f"{_run_text(owner)}, on another host"
        check = f"`ps -p {owner['pid']}` on {owner.get('host')} shows no snakemake"
    elif boot is None:  # no /proc (macOS): neither the boot nor the processes' folders can be read
        who = _run_text(owner)
        check = f"`ps -p {owner['pid']}` shows no snakemake"
    elif owner.get("boot_id") != boot:
        who = f"{_run_text(owner)}, recorded before this host last started (or on another machine of its name)"
        check = f"no snakemake runs in {workdir}"
    else:  # recorded here, gone, no step working, yet kept: other lock files beside it
        who = f"{_run_text(owner)}, which is gone, and by a run medseg did not record"
        check = f"no snakemake runs in {workdir}"
    raise OutputExistsError(f"{where}, left by {who}: medseg cannot tell whether it still runs; if {check}, run the "
                            "same command with --unlock, then again without it")


def _names_under(lock: Path, folder: str, workdir: Path) -> bool:
    """Whether a Snakemake lock file lists ``folder`` or a path inside it (its paths relative to ``workdir``)."""
    try:
        lines = lock.read_text(errors="replace").splitlines()
    except OSError:
        return False
    for line in lines:
        path = os.path.normpath(os.path.join(workdir, line.strip())) if line.strip() else None
        if path is not None and (path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)):
            return True
    return False


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _owner(state: Path, locks: list[Path]) -> dict | None:
    """The recorded run that holds one of ``locks`` (by name and time), if any."""
    wanted = {_identity(lock) for lock in locks}
    runs = state / RUNS
    for path in sorted(runs.glob("*.json")) if runs.is_dir() else []:
        record = _run_record(path)
        if record is not None and wanted & set(record["locks"]):
            return record
    return None


def _run_record(path: Path) -> dict | None:
    """The run record at ``path``, its pid an int the OS can hold and its locks a list of text; None for a record
    that cannot be read or was edited past that (not JSON, no pid, a pid such as 99999999999999999999 or -1, a lock
    that is not text): such a run is unknown, as an unrecorded one is."""
    try:
        record = read_json_object(path, RECORD_BYTES, "a workflow run record")
    except (OSError, ValueError):  # a JsonFileError too
        return None
    pid, locks = record.get("pid"), record.get("locks") or []
    if isinstance(pid, str) and pid.strip().isdigit():
        pid = int(pid)
    if isinstance(pid, bool) or not isinstance(pid, int) or not 0 < pid <= _PID_MAX:
        return None
    if not isinstance(locks, list) or not all(isinstance(lock, str) for lock in locks):
        return None
    return {**record, "pid": pid, "locks": locks}


def _run_text(record: dict) -> str:
    user = record.get("user")
    return f"the Snakemake run pid {record['pid']} on {record.get('host')}" + (f" (user {user})" if user else "")


def _steps_text(pids: list[int]) -> str:
    """"medseg step (pid 12) is", "medseg steps (pid 12, 13) are"."""
    several = len(pids) > 1
    return f"medseg step{'s' if several else ''} (pid {', '.join(map(str, pids))}) {'are' if several else 'is'}"
