"""Releasing the Snakemake lock of a cohort run that was killed outright.

Snakemake locks its working directory while it runs and unlocks it on exit, also on Ctrl-C, SIGTERM or a
failed job; a run killed with SIGKILL (or a power loss, or the OOM killer) leaves the lock behind, and the
next run refuses to start until ``snakemake --unlock``. The Snakefile records each run it starts
(:func:`record_run`, in ``onstart``) and, before the next run locks, releases locks that were provably left by
runs that are gone (:func:`release_stale_locks`). Provably gone means: recorded on this host since its last
boot, and its process no longer exists. Lock files no run recorded (a run of another workflow, a run on another
host of a shared file system) are left alone, and Snakemake reports them as usual.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
from pathlib import Path

from medseg.jsonfile import RECORD_BYTES, read_json_object

__all__ = ["forget_run", "record_run", "release_stale_locks"]

log = logging.getLogger(__name__)

RUNS = "medseg-runs"


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
        "boot_id": _boot_id(),
        "locks": [_identity(p) for p in _lock_files(state)],
    }
    path = state / RUNS / f"{socket.gethostname()}-{pid}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record) + "\n")
    return path


def forget_run(state: Path | str = ".snakemake", pid: int | None = None) -> None:
    """Drop the record of a run that ended normally (Snakemake released its lock itself)."""
    pid = os.getpid() if pid is None else pid
    with contextlib.suppress(FileNotFoundError):
        (Path(state) / RUNS / f"{socket.gethostname()}-{pid}.json").unlink()


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
    """Whether a command line runs medseg (``-m medseg``, or a ``medseg`` script) with one of :data:`STEPS` as its
    command (options of medseg itself, like ``-v``, may come between)."""
    python = bool(words) and Path(words[0].decode(errors="replace")).name.startswith("python")
    starts = [i + 1 for i, word in enumerate(words)
              # the installed script, on its own or run by its interpreter (python [-sP] /venv/bin/medseg ...)
              if ((i == 0 or (python and all(w.startswith(b"-") for w in words[1:i])))
                  and (word == b"medseg" or word.endswith(b"/medseg")))
              or (word == b"medseg" and i > 0 and words[i - 1] == b"-m") or word == b"-mmedseg"]
    for start in starts:
        rest = [word for word in words[start:] if not word.startswith(b"-")][:2]
        if any(tuple(rest[:len(step)]) == step for step in STEPS):
            return True
    return False


def release_stale_locks(state: Path | str = ".snakemake") -> list[str]:
    """Remove the lock files held only by recorded runs that are gone; return their names.

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
        try:
            record = read_json_object(path, RECORD_BYTES, "a workflow run record")
            pid = int(record["pid"])
        except (OSError, ValueError, KeyError, TypeError):  # a JsonFileError too
            continue
        if record.get("host") != host or boot is None or record.get("boot_id") != boot:
            continue  # cannot tell whether it is alive
        if _alive(pid):
            return []  # a run of this workflow is still going: leave everything to Snakemake
        dead.append(path)
        held.update(record.get("locks", []))
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
    names = [lock.name for lock in locks]
    log.info("released Snakemake lock(s) %s left by a killed run", ", ".join(names))
    return names
