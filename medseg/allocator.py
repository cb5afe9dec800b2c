"""The C allocator's settings for medseg's workload: large arrays allocated and freed once per slab or batch.

glibc's malloc serves allocations above its mmap threshold (dynamic, at most 32 MiB by default) with fresh
mappings and gives them back to the system when freed; each slab's activations then come as new pages, zeroed by the
kernel on first touch. On the 2-core CPU a quarter of `medseg infer`'s time went to that (system time 7.8 s of 34.6 s
for a 512×512×64 phantom, 3.5 million page faults). Keeping freed memory for reuse (a 1 GiB mmap and trim threshold)
took that run from 19.3–20.0 s to 14.2–14.5 s wall at the same peak memory (benchmarks/README.md).
"""

from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["release_free_memory", "tune_allocator"]

_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
_M_MMAP_THRESHOLD = -3
_KEEP = 1 << 30


def tune_allocator() -> bool:
    """Raise glibc's mmap and trim thresholds to 1 GiB for this process; True when done. Not on other systems or C
    libraries, and not where the user set malloc's own variables (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_,
    GLIBC_TUNABLES), which are theirs to choose."""
    if not sys.platform.startswith("linux"):
        return False
    if any(name in os.environ for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt to speak of)
        return False
    # the mmap threshold first: a trim threshold set alone also freezes the mmap threshold at its 128 KiB start,
    # which made the same run twice as slow
    if mallopt(_M_MMAP_THRESHOLD, _KEEP) != 1:
        return False
    return mallopt(_M_TRIM_THRESHOLD, _KEEP) == 1


def release_free_memory() -> bool:
    """Give the memory the C allocator holds free back to the system (glibc's ``malloc_trim``); True when some was.
    With the thresholds :func:`tune_allocator` raises, the volumes one case of a report freed stayed with the process,
    in holes the next case's larger ones did not fit: the report of three whole-body CTs peaked at 1.03 GB for 0.78 GB
    of arrays alive at once. Not on other systems or C libraries."""
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False


_TRIM: list = []


def _malloc_trim():
    if not _TRIM:
        try:
            _TRIM.append(ctypes.CDLL("libc.so.6").malloc_trim if sys.platform.startswith("linux") else None)
        except (OSError, AttributeError):  # not glibc
            _TRIM.append(None)
    return _TRIM[0]
