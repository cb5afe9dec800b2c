"""What a result was computed on, beyond the libraries' versions: the Python, the system, the CPU and the instruction
set torch dispatched its kernels for, and a GPU's name.

Two CPUs with other instruction sets (AVX2, AVX-512) run other kernels of torch, which sum in another order: their
last bits differ, and so, now and then, a voxel's label. A sidecar records this beside ``versions``.
"""

from __future__ import annotations

import functools
import platform

__all__ = ["platform_record"]


@functools.lru_cache(maxsize=1)
def _cpu_name() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo's ``model name``), else what ``platform.processor()`` says, else
    the machine's architecture."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def platform_record(device: str = "cpu") -> dict[str, str]:
    """``python``, ``system`` (name and release), ``machine``, ``cpu`` (its model name), ``cpu_capability`` (the
    instruction set torch's CPU kernels were chosen for: ``AVX2``, ``AVX512``, ``DEFAULT``...) and, for a CUDA
    ``device`` this machine has, ``gpu`` (its name; none where it has no such device, as a machine that checks a
    sidecar written on another may not)."""
    import torch

    record = {"python": platform.python_version(), "system": f"{platform.system()} {platform.release()}",
              "machine": platform.machine(), "cpu": _cpu_name(),
              "cpu_capability": str(torch.backends.cpu.get_cpu_capability())}
    if device.startswith("cuda") and torch.cuda.is_available():
        index = torch.device(device).index
        if index is None or index < torch.cuda.device_count():
            record["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return record
