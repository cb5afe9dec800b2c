"""How much memory this process has: the machine's physical memory, and the limit of its control group.

A SLURM job (with ``ConstrainRAMSpace``), a container or a systemd unit runs in a cgroup whose memory limit is often
far below the machine's memory; the kernel kills the process that goes over it, without a message. The memory guard
(:func:`medseg.preprocess.check_grid_size`) refuses what the machine cannot hold and warns about what the cgroup
would not let through: it names the limit's file, so that a kill that follows has its reason in the log.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CgroupLimit", "cgroup_limit", "physical_memory", "resident_memory"]

_UNLIMITED = 1 << 62  # cgroup v1 writes "no limit" as the largest page-aligned 63-bit number


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
    """The tightest memory limit among this process's cgroup and its ancestors: ``size`` bytes, set in ``file``."""

    size: int
    file: Path


def cgroup_limit(proc: Path | str = "/proc/self") -> CgroupLimit | None:
    """This process's cgroup memory limit (v2 ``memory.max`` or v1 ``memory.limit_in_bytes``, the smallest along
    its cgroup's ancestors), or None where there is none or it cannot be read (not Linux, no cgroup filesystem
    mounted, a limit of ``max``). ``proc``: the process's ``/proc`` folder (its ``mountinfo`` and ``cgroup``)."""
    proc = Path(proc)
    try:
        mounts = (proc / "mountinfo").read_text().splitlines()
        groups = (proc / "cgroup").read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    limits = []
    for version, path in _memory_groups(groups):
        for root, point in _mounts(mounts, version):
            # the cgroup's path is given from the hierarchy's root; a mount may show only a part of it (a container's)
            if path != root and not path.startswith(root.rstrip("/") + "/"):
                continue
            folder = Path(point) / path[len(root):].lstrip("/")
            limit = _smallest_along(folder, Path(point), "memory.max" if version == 2 else "memory.limit_in_bytes")
            if limit is not None:
                limits.append(limit)
    return min(limits, key=lambda limit: limit.size, default=None)


def _memory_groups(lines: list[str]) -> list[tuple[int, str]]:
    """(version, path) of the lines of ``/proc/self/cgroup`` that can hold a memory limit: the v2
    hierarchy (``0::/path``) and a v1 hierarchy with the memory controller."""
    found = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        number, controllers, path = parts
        if number == "0" and controllers == "":
            found.append((2, path))
        elif "memory" in controllers.split(","):
            found.append((1, path))
    return found


def _mounts(lines: list[str], version: int) -> list[tuple[str, str]]:
    """(root, mount point) of the cgroup filesystems of ``version`` in ``/proc/self/mountinfo`` (for v1, those with
    the memory controller); octal escapes (a space is ``\\040``) undone."""
    found = []
    for line in lines:
        head, sep, tail = line.partition(" - ")
        fields, rest = head.split(), tail.split()
        if not sep or len(fields) < 5 or len(rest) < 3:
            continue
        kind, options = rest[0], rest[2].split(",")
        if (version == 2 and kind == "cgroup2") or (version == 1 and kind == "cgroup" and "memory" in options):
            found.append((_unescape(fields[3]), _unescape(fields[4])))
    return found


def _unescape(text: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), text)


def _smallest_along(folder: Path, top: Path, name: str) -> CgroupLimit | None:
    """The smallest limit in ``name`` files from ``folder`` up to ``top`` (a parent's limit binds its children)."""
    smallest = None
    while True:
        try:
            text = (folder / name).read_text().strip()
        except (OSError, UnicodeDecodeError):
            text = ""
        if text.isdigit() and int(text) < _UNLIMITED and (smallest is None or int(text) < smallest.size):
            smallest = CgroupLimit(int(text), folder / name)
        if folder == top or folder.parent == folder or top not in folder.parents:
            return smallest
        folder = folder.parent
