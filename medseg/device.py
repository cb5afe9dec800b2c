"""Choosing the compute device and precision, and saying which was chosen and why."""

from __future__ import annotations

import re
from dataclasses import dataclass

from medseg.errors import DeviceError
from medseg.settings_named import setting, setting_choices

__all__ = ["DeviceChoice", "check_device_spec", "gpu_free_text", "native_bf16", "resolve_device", "resolve_precision",
           "slow_bf16_warning"]


@dataclass(frozen=True)
class DeviceChoice:
    """The device chosen (``cpu``, ``cuda:0``, ``mps``) and why (as asked, or what ``auto`` found)."""

    device: str
    reason: str

    def __str__(self) -> str:
        return f"{self.device} ({self.reason})"


def resolve_device(spec: str = "auto") -> DeviceChoice:
    """``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` | ``mps``, or a ``torch.device`` of one. Never falls back silently."""
    import torch

    spec = str(spec or "auto").strip().lower()  # torch.device("cuda", 1) is "cuda:1"
    cuda_ok = torch.cuda.is_available()
    mps_ok = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if spec == "auto":
        if cuda_ok:
            return DeviceChoice("cuda:0", f"auto: CUDA available, {torch.cuda.get_device_name(0)}")
        if mps_ok:
            return DeviceChoice("mps", "auto: Apple MPS available")
        return DeviceChoice("cpu", "auto: no CUDA or MPS device found")
    if spec == "cpu":
        return DeviceChoice("cpu", "requested")
    if spec.startswith("cuda"):
        if not cuda_ok:
            raise DeviceError(f"{setting('device', spec)}: CUDA is not available on this machine{_why_no_cuda()}")
        index = 0
        if ":" in spec:
            try:
                index = int(spec.split(":", 1)[1])
            except ValueError as error:
                raise DeviceError(f"{setting('device', spec)}: expected cuda or cuda:N") from error
        if index >= torch.cuda.device_count():
            from medseg.numbers import counted

            present = counted(torch.cuda.device_count(), "CUDA device")
            raise DeviceError(f"{setting('device', spec)}: only {present} present"
                              + (f" ({_visible_devices()}, numbered from 0)" if _visible_devices() else ""))
        return DeviceChoice(f"cuda:{index}", f"requested, {torch.cuda.get_device_name(index)}")
    if spec == "mps":
        if not mps_ok:
            raise DeviceError(f"{setting('device', 'mps')}: Apple MPS is not available on this machine")
        return DeviceChoice("mps", "requested")
    raise DeviceError(f"{setting('device', spec)}: expected auto, cpu, cuda, cuda:N or mps")


def _visible_devices() -> str | None:
    """``CUDA_VISIBLE_DEVICES is '1': torch sees only the GPUs it names`` where it is set (a batch system's
    allocation, or a hand's), else None."""
    import os

    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return None if visible is None else f"CUDA_VISIBLE_DEVICES is {visible!r}: torch sees only the GPUs it names"


def _why_no_cuda() -> str:
    """Why torch sees no CUDA device, where it can tell, and the ways on (for :func:`resolve_device`'s error)."""
    import sys

    import torch

    if torch.version.cuda is None and not torch.version.hip:  # a GPU beside it changes nothing
        if sys.platform == "darwin":  # PyTorch makes no CUDA build for macOS: its GPU is MPS
            return (f": this torch ({torch.__version__}) is a macOS build, which has no CUDA; use "
                    f"{setting_choices('device', 'mps', 'cpu', 'auto')}")
        return (f": this torch ({torch.__version__}) is a build without CUDA; install a CUDA build of torch, or use "
                f"{setting_choices('device', 'cpu', 'auto')}")
    visible = _visible_devices()
    use = f"use {setting_choices('device', 'cpu', 'auto')}"
    return f"; {visible} ({use})" if visible else f" ({use})"


DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def check_device_spec(spec: str) -> str:
    """``spec`` when it has a form :func:`resolve_device` accepts (whether the device exists is its business)."""
    if not DEVICE_PATTERN.fullmatch(str(spec).strip().lower()):
        raise DeviceError(f"{setting('device', spec)}: expected auto, cpu, cuda, cuda:N or mps")
    return spec


def resolve_precision(precision: str, device: str) -> str:
    """``auto`` | ``fp32`` | ``bf16`` | ``fp16`` → the precision used. auto: fp16 on CUDA, fp32 elsewhere."""
    precision = (precision or "auto").lower()
    if precision == "auto":
        return "fp16" if device.startswith("cuda") else "fp32"
    if precision not in ("fp32", "bf16", "fp16"):
        raise DeviceError(f"{setting('precision', precision)}: expected auto, fp32, bf16 or fp16")
    if precision == "fp16" and not device.startswith("cuda"):
        raise DeviceError(f"{setting('precision', 'fp16')} needs a CUDA device (got {device}); use bf16 or fp32")
    return precision


def native_bf16(device: str) -> bool:
    """Does ``device`` compute bf16 in hardware? A CUDA device of compute capability 8.0 or later (Ampere on), a
    ROCm device; a CPU with AVX-512 BF16 or AMX. Elsewhere (an older GPU, an AVX2 CPU, Apple MPS) bf16 autocast is
    emulated: several times slower than float32, not faster (a training step 11x slower on an AVX2-only CPU)."""
    import torch

    if device.startswith("cuda"):
        if torch.version.hip:
            return True
        # the device asked for (``cuda:1`` may be another GPU than the current one); torch.cuda.is_bf16_supported()
        # also says yes where bf16 is only emulated (a V100 or T4)
        return torch.cuda.get_device_capability(torch.device(device))[0] >= 8
    if device != "cpu":
        return False
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # torch's own CPU capability probes
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def slow_bf16_warning(device: str, what: str) -> str:
    """The warning for bf16 asked of a device that emulates it (``what``: the setting that asked it, with its value:
    ``training.precision bf16``, ``precision='bf16'``)."""
    where = "this CPU has no AVX-512 BF16 or AMX" if device == "cpu" else f"{device} has no native bf16"
    return (f"{what}: {where}, so bf16 runs emulated, several times slower than fp32; "
            f"use fp32 (or auto)")


def gpu_free_text(device) -> str:
    """``" (0.4 of 80 GiB free)"`` for a CUDA device (a name or a ``torch.device``), for out-of-memory messages;
    empty where it cannot be asked (another device, no CUDA)."""
    import torch

    try:
        free, total = torch.cuda.mem_get_info(torch.device(device))
    except (RuntimeError, AssertionError, ValueError):
        return ""
    return f" ({free / 2**30:.1f} of {total / 2**30:.0f} GiB free)"
