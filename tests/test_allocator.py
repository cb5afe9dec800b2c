"""The allocator tuning of the medseg command (medseg/allocator.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt: Linux only")

ROOT = Path(__file__).resolve().parents[1]


def _tuned(**env: str) -> str:
    """What tune_allocator says in a fresh process with ``env`` added (the test process's allocator is left alone)."""
    clean = {k: v for k, v in os.environ.items()
             if k not in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")}
    result = subprocess.run([sys.executable, "-c", "from medseg.allocator import tune_allocator; "
                             "print(tune_allocator())"], capture_output=True, text=True, cwd=ROOT,
                            env={**clean, **env}, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_the_thresholds_are_raised_unless_the_user_set_mallocs_own():
    """glibc's allocator gave back and refetched each slab's activations: a quarter of `medseg infer`'s time was
    the kernel's (page faults). The command raises the mmap and trim thresholds, unless the user chose them."""
    import ctypes.util

    if not (ctypes.util.find_library("c") or "").startswith("libc.so"):
        pytest.skip("not glibc")
    assert _tuned() == "True"
    assert _tuned(MALLOC_MMAP_THRESHOLD_="131072") == "False"
    assert _tuned(GLIBC_TUNABLES="glibc.malloc.check=0") == "False"


def test_free_memory_is_given_back_when_asked():
    """With the thresholds raised, memory freed stays with the process: the report's cases each left their volumes'
    pages resident, in holes the next case's larger volumes did not fit (1.03 GB for 0.78 GB alive at once).
    ``release_free_memory`` gives them back."""
    import ctypes.util

    if not (ctypes.util.find_library("c") or "").startswith("libc.so"):
        pytest.skip("not glibc")
    code = """
import numpy as np
from medseg.allocator import release_free_memory, tune_allocator

def rss_mb():
    return int(open('/proc/self/statm').read().split()[1]) * 4096 / 2**20

assert tune_allocator()
blocks = [np.ones(8 << 20, np.uint8) for _ in range(8)]  # 64 MiB from the heap, below the 1 GiB mmap threshold
held = rss_mb()
del blocks
kept = rss_mb()
assert release_free_memory()
print(round(held - kept), round(kept - rss_mb()))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                            env={k: v for k, v in os.environ.items()
                                 if k not in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")},
                            timeout=60)
    assert result.returncode == 0, result.stderr
    kept_after_free, given_back = map(int, result.stdout.split())
    assert kept_after_free < 8 and given_back >= 56, result.stdout
