"""Choosing the device: one that is not available is an error that says why, never a fallback (medseg.device)."""


import pytest
from conftest import run_cli

run = run_cli  # medseg ARGS in this process: (exit code, stdout, stderr)


def test_unavailable_device_is_an_error_not_a_fallback(case, make_package, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code, _, err = run(["infer", str(case), "--model", str(make_package()), "--device", "cuda"], capsys)
    assert code == 1 and "CUDA is not available" in err
    code, _, err = run(["infer", str(case), "--model", str(make_package()), "--precision", "fp16"], capsys)
    assert code == 1 and "fp16 needs a CUDA device" in err


def test_unavailable_cuda_says_why_where_it_can(case, make_package, capsys, monkeypatch):
    """A CPU-only build of torch on a machine with a GPU (installed from PyTorch's CPU wheels), or
    CUDA_VISIBLE_DEVICES hiding the GPUs, was told as "CUDA is not available on this machine", which sent the user
    looking for a missing GPU or driver; so was a device index past the GPUs a batch system's CUDA_VISIBLE_DEVICES
    left, which torch numbers from 0."""
    import torch

    from medseg.device import resolve_device
    from medseg.errors import DeviceError

    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(torch.version, "hip", None)
    code, _, err = run(["infer", str(case), "--model", str(make_package()), "--device", "cuda"], capsys)
    assert code == 1 and err.splitlines()[-1] == (
        f"medseg: error: --device cuda: CUDA is not available on this machine: this torch ({torch.__version__}) is "
        "a build without CUDA; install a CUDA build of torch, or use --device cpu or auto")
    monkeypatch.setattr(torch.version, "cuda", "12.8")  # a CUDA build, the GPUs hidden
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(DeviceError) as error:
        resolve_device("cuda:0")
    assert str(error.value) == ("device='cuda:0': CUDA is not available on this machine; CUDA_VISIBLE_DEVICES is "
                                "'': torch sees only the GPUs it names (use device='cpu' or 'auto')")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    with pytest.raises(DeviceError, match=r"^device='cuda': CUDA is not available on this machine \(use "
                                          r"device='cpu' or 'auto'\)$"):
        resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a batch system's allocation: physical GPU 3
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    with pytest.raises(DeviceError) as error:
        resolve_device("cuda:3")
    assert str(error.value) == ("device='cuda:3': only 1 CUDA device present (CUDA_VISIBLE_DEVICES is '3': "
                                "torch sees only the GPUs it names, numbered from 0)")


def test_unavailable_cuda_on_macos_points_to_mps(monkeypatch):
    """PyTorch makes no CUDA build for macOS: "install a CUDA build of torch" sent a Mac's user after one that does
    not exist, and did not name MPS, the Mac's GPU."""
    import sys

    import torch

    from medseg.device import resolve_device
    from medseg.errors import DeviceError

    monkeypatch.setattr(torch.version, "cuda", None)
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(sys, "platform", "darwin")
    with pytest.raises(DeviceError) as error:
        resolve_device("cuda")
    assert str(error.value) == ("device='cuda': CUDA is not available on this machine: this torch "
                                f"({torch.__version__}) is a macOS build, which has no CUDA; use device='mps', 'cpu' "
                                "or 'auto'")
