"""What this process may use: the machine's memory and its cgroup's memory limit, and its cgroup's CPU quota.

A SLURM job (with ``ConstrainRAMSpace``), a container or a systemd unit runs in a cgroup whose limits are often far
below the machine's. The kernel kills a process that goes over the memory limit, without a message: the memory guard
(:func:`medseg.preprocess.check_grid_size`) refuses what the machine cannot hold and warns about what the cgroup
would not let through, naming the limit's file. A CPU quota (``docker run --cpus 2``) leaves the CPU count as the
machine's, and torch would start a thread for each of its cores, which then wait on each other:
:func:`set_threads` starts no more than the quota allows. medseg's own CPU work (the surface distances' searches) takes
:func:`cpu_threads`: those set by :func:`set_threads`, else as many as the quota allows, without importing torch.

torch's OpenMP threads spin while they wait for each other (GNU OpenMP, which torch's Linux wheels ship, for about
300,000 turns at the end of each parallel region); where other processes keep the CPUs busy, a thread that spins holds
a CPU that the thread it waits for needs, and `medseg infer` of a hippocampus crop took 7.9 s of inference with two
threads against 0.31 s with a passive wait, on two cores that other processes kept busy (docs/infer.md, *Devices
and precision*). :func:`wait_passively` makes them sleep instead; the command line calls it in its own process, before
torch is imported, and leaves a program that imports medseg to choose its own.
"""

from __future__ import annotations

import logging
import math
import os
import re
import sys
from collections.abc import Callable, Iterator, MutableMapping
from dataclasses import dataclass
from numbers import Integral
from pathlib import Path

from medseg.settings_named import ANY, setting

__all__ = ["WAIT_VARIABLES", "CgroupLimit", "cgroup_cpus", "cgroup_limit", "cpu_threads", "physical_memory",
           "resident_memory", "set_threads", "usable_cpus", "wait_passively"]

log = logging.getLogger(__name__)

_UNLIMITED = 1 << 62  # cgroup v1 writes "no limit" as the largest page-aligned 63-bit number
_threads: int | None = None  # the CPU threads set by set_threads (--threads), for medseg's own work

# how a user chooses the OpenMP threads' waiting: the standard variable, GNU OpenMP's spin count, and Intel's and
# LLVM's (libiomp5, libomp: conda's and macOS's torch) block time and library mode
WAIT_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME", "KMP_LIBRARY")


def physical_memory() -> int | None:
    """The machine's physical memory in bytes, or None where the system does not say (not POSIX)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def resident_memory() -> int:
    """Bytes this process holds in memory now (its resident set: the interpreter, torch and MONAI take about 0.4 GB
    before any volume is read), or 0 where the system does not say."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return 0


@dataclass(frozen=True)
class CgroupLimit:
    """The tightest limit among this process's cgroup and its ancestors: ``size`` (bytes, or CPUs), set in ``file``."""

    size: float
    file: Path


def cgroup_limit(proc: Path | str = "/proc/self") -> CgroupLimit | None:
    """This process's cgroup memory limit in bytes (v2 ``memory.max`` or v1 ``memory.limit_in_bytes``, the smallest
    along its cgroup's ancestors), or None where there is none or it cannot be read (not Linux, no cgroup filesystem
    mounted, a limit of ``max``). ``proc``: the process's ``/proc`` folder (its ``mountinfo`` and ``cgroup``)."""
    def read(folder: Path, version: int) -> CgroupLimit | None:
        file = folder / ("memory.max" if version == 2 else "memory.limit_in_bytes")
        text = _read(file)
        return CgroupLimit(int(text), file) if _whole(text) and int(text) < _UNLIMITED else None

    return _smallest(Path(proc), "memory", read)


def cgroup_cpus(proc: Path | str = "/proc/self") -> CgroupLimit | None:
    """This process's cgroup CPU quota in CPUs (v2 ``cpu.max`` "quota period", v1 ``cpu.cfs_quota_us`` over
    ``cpu.cfs_period_us``; the smallest along its cgroup's ancestors), or None where there is none."""
    def read(folder: Path, version: int) -> CgroupLimit | None:
        if version == 2:
            file = folder / "cpu.max"
            quota, _, period = _read(file).partition(" ")
        else:
            file = folder / "cpu.cfs_quota_us"
            quota, period = _read(file), _read(folder / "cpu.cfs_period_us")
        if not (_whole(quota) and _whole(period) and int(quota) > 0 and int(period) > 0):
            return None  # "max", -1 (none) or unreadable
        return CgroupLimit(int(quota) / int(period), file)

    return _smallest(Path(proc), "cpu", read)


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask: a scheduler's allocation), else the machine's."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def set_threads(threads: int | None, *, torch: bool = True) -> None:
    """Set the CPU threads of this process: ``threads`` where given (``--threads``), for medseg's own work
    (:func:`cpu_threads`) and, with ``torch``, torch's; no more than the CPUs this process may run on. Without
    ``threads`` torch's are no more than this process's cgroup CPU quota allows, rounded up, where that is fewer than
    torch would start (a quota of 2 CPUs on a 64-core machine ran 64 threads that spin-waited for each other), and
    medseg's own stay as they were. ``torch=False`` (scoring) neither imports torch nor sets its threads. ``threads``
    that is no whole number from 1 is an :class:`~medseg.errors.InputError`, and the threads are left as they were."""
    global _threads

    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, Integral) or threads < 1:
            from medseg.errors import InputError

            raise InputError(f"{setting('threads', threads)}: give a whole number of CPU threads, 1 or more")
        threads = int(threads)
        available = usable_cpus()
        if threads > available:  # 100 000 threads exhausted the memory in the first forward pass, with a traceback
            log.warning("%s: this process may use %d CPU%s; using %d threads", setting("threads", threads), available,
                        "" if available == 1 else "s", available)
            threads = available
        _threads = threads
        if torch:
            import torch as torch_module

            torch_module.set_num_threads(threads)
        return
    if not torch:
        return
    quota = cgroup_cpus()
    if quota is None:
        return
    import torch as torch_module

    allowed = max(1, math.ceil(quota.size - 1e-9))
    if allowed < torch_module.get_num_threads():
        log.info("torch threads: %d, the CPU quota of this process's cgroup (%g CPUs, %s); %s sets them",
                 allowed, quota.size, quota.file, setting("threads", ANY))
        torch_module.set_num_threads(allowed)


def wait_passively(environ: MutableMapping[str, str] | None = None) -> bool:
    """Have OpenMP's threads (torch's) sleep while they wait, not spin: ``OMP_WAIT_POLICY=PASSIVE`` in ``environ``
    (this process's environment by default, and so its children's; or a child's, given); True when set. Not where the
    user chose how they wait (any of :data:`WAIT_VARIABLES` set, even empty), and not in this process once torch is
    imported, whose OpenMP runtime read its settings when it was loaded. It changes the environment: for a program's
    entry point (medseg's command line calls it), not for a library call."""
    own = environ is None
    environ = os.environ if environ is None else environ
    if any(name in environ for name in WAIT_VARIABLES) or (own and "torch" in sys.modules):
        return False
    environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return True


def cpu_threads() -> int:
    """The CPU threads medseg's own work may start: those :func:`set_threads` was given (``--threads``), else the CPUs
    this process may run on, no more than its cgroup's CPU quota (rounded up). Imports no torch."""
    if _threads is not None:
        return _threads
    quota = cgroup_cpus()
    allowed = usable_cpus()
    return allowed if quota is None else max(1, min(allowed, math.ceil(quota.size - 1e-9)))


def _whole(text: str) -> bool:
    """Whether ``text`` is a whole number in ASCII digits (``str.isdigit`` takes "²", which ``int`` refuses)."""
    return text.isascii() and text.isdecimal()


def _read(file: Path) -> str:
    try:
        return file.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return ""


def _cgroup_folders(proc: Path, controller: str) -> Iterator[tuple[int, Path, Path]]:
    """(version, the process's cgroup folder, the mount point above which nothing is visible) for each mounted
    hierarchy that can hold ``controller``'s limits: the v2 one, and a v1 one with that controller."""
    try:
        mounts = (proc / "mountinfo").read_text().splitlines()
        groups = (proc / "cgroup").read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return
    for version, path in _groups(groups, controller):
        for root, point in _mounts(mounts, version, controller):
            # the cgroup's path is given from the hierarchy's root; a mount may show only a part of it (a container's)
            # "/.." leads out of the namespace's view (a process moved outside it): nothing there to read
            if (path == root or path.startswith(root.rstrip("/") + "/")) and ".." not in path.split("/"):
                yield version, Path(point) / path[len(root):].lstrip("/"), Path(point)


def _groups(lines: list[str], controller: str) -> list[tuple[int, str]]:
    """(version, path) of the lines of ``/proc/self/cgroup`` that can hold ``controller``'s limits: the v2 hierarchy
    (``0::/path``) and a v1 hierarchy with the controller."""
    found = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        number, controllers, path = parts
        if number == "0" and controllers == "":
            found.append((2, path))
        elif controller in controllers.split(","):
            found.append((1, path))
    return found


def _mounts(lines: list[str], version: int, controller: str) -> list[tuple[str, str]]:
    """(root, mount point) of the cgroup filesystems of ``version`` in ``/proc/self/mountinfo`` (for v1, those with
    the controller); octal escapes (a space is ``\\040``) undone."""
    found = []
    for line in lines:
        head, sep, tail = line.partition(" - ")
        fields, rest = head.split(), tail.split()
        if not sep or len(fields) < 5 or len(rest) < 3:
            continue
        kind, options = rest[0], rest[2].split(",")
        if (version == 2 and kind == "cgroup2") or (version == 1 and kind == "cgroup" and controller in options):
            found.append((_unescape(fields[3]), _unescape(fields[4])))
    return found


def _unescape(text: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), text)


def _smallest(proc: Path, controller: str, read: Callable[[Path, int], CgroupLimit | None]) -> CgroupLimit | None:
    """The smallest limit that ``read(folder, version)`` finds in the process's cgroup folders and their ancestors
    up to each mount point (a parent's limit binds its children), over all the hierarchies with ``controller``."""
    smallest = None
    for version, folder, top in _cgroup_folders(proc, controller):
        while True:
            limit = read(folder, version)
            if limit is not None and (smallest is None or limit.size < smallest.size):
                smallest = limit
            if folder == top or folder.parent == folder or top not in folder.parents:
                break
            folder = folder.parent
    return smallest
