"""Shared fixtures: synthetic volumes made in code, and the optional real data folder."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MEDSEG_SHARED_DATA", REPO.parent / "shared" / "data"))

# A shell without job control starts a background command (`make test &`, some CI runners) with Ctrl-C ignored, and
# Python then keeps SIGINT ignored, as does every process it starts. The Ctrl-C tests (medseg's handlers, its
# subprocesses and Snakemake runs stopped with SIGINT) test what a user at a terminal sees, so the suite takes Ctrl-C
# back as Python's own KeyboardInterrupt; its children then start with SIGINT at its default.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
# Under nohup SIGHUP is ignored likewise, and the hangup tests' children would ignore it too: the suite keeps surviving
# a hangup (a handler that does nothing), and its children, as every exec resets a handled signal, start at default.
if getattr(signal, "SIGHUP", None) is not None and signal.getsignal(signal.SIGHUP) is signal.SIG_IGN:
    signal.signal(signal.SIGHUP, lambda number, frame: None)


def pytest_collection_modifyitems(items):
    """The Snakemake test modules (``test_workflow_*.py``: about 60 % of the default run's time in 91 of its 3439
    tests) first, the others after them in their order. ``make test`` hands the modules out whole, in this order
    (``--dist loadfile --no-loadscope-reorder``), so that the run ends on short modules; sorted last by their names,
    they were handed out last, and a module's run its tests share (``finished``) was made on each worker."""
    items.sort(key=lambda item: not item.path.name.startswith("test_workflow_"))


def pytest_sessionfinish(session):
    """The browser the page tests share in this process (``tests/chromium_page.py``), closed with its profile."""
    chromium_page = sys.modules.get("chromium_page")
    if chromium_page is not None:
        chromium_page.close_shared()


def as_plain_user(command: list[str], wait: bool = True,
                  **options) -> subprocess.CompletedProcess | subprocess.Popen:
    """Run ``command`` (run from the repository; ``options``, such as ``timeout``, passed to ``subprocess.run``) with
    root's power to read any file dropped (the process keeps its user id), so that a file or folder without read
    permission is unreadable to it as to any other user; skipped as root without ``setpriv``. ``wait=False``:
    started, not waited for (its output piped, as text)."""
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: every file is readable")
        command = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--", *command]
    if not wait:
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, **options)
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO, **options)


_DAC_CAPABILITIES = (1 << 1) | (1 << 2)  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
_PR_GET_SECUREBITS, _PR_SET_SECUREBITS = 27, 28
_NOROOT_BITS = (1 << 0) | (1 << 2)  # SECBIT_NOROOT, SECBIT_NO_SETUID_FIXUP


def _capabilities(libc, header, data=None):
    """The calling thread's capability sets (``capget``), or set to ``data`` (``capset``)."""
    import ctypes

    if data is None:
        data = (ctypes.c_uint32 * 6)()
        call = libc.capget
    else:
        call = libc.capset
    if call(ctypes.byref(header), data) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error))
    return data


@contextlib.contextmanager
def plain_user():
    """This thread without root's power to read any file (as :func:`as_plain_user` runs a command), given back
    afterwards: a file or folder without read permission is unreadable to what runs inside, as to any other user. It
    drops the two capabilities from the thread's effective set only (threads made before keep them; threads it makes
    inherit the drop). Two of the thread's securebits close root's two ways back: NO_SETUID_FIXUP keeps access(2)
    (click's ``readable`` check, ``os.access``) from taking the permitted set as effective, and NOROOT keeps a program
    it starts (git, a Snakemake job) from getting every capability at exec. Skipped as root where the capability calls
    are not there (not Linux)."""
    if os.geteuid() != 0:
        yield
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.capget, libc.capset  # noqa: B018 (Linux only)
    except (OSError, AttributeError):
        pytest.skip("running as root without capget/capset: every file is readable")
    header = (ctypes.c_uint32 * 2)(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this thread
    saved = _capabilities(libc, header)
    bits = libc.prctl(_PR_GET_SECUREBITS, 0, 0, 0, 0)
    if bits < 0 or libc.prctl(_PR_SET_SECUREBITS, bits | _NOROOT_BITS, 0, 0, 0) != 0:
        error = ctypes.get_errno()  # root without CAP_SETPCAP (a container's choice): as without setpriv before
        pytest.skip(f"running as root that cannot set its securebits ({os.strerror(error)}): every file is readable")
    dropped = (ctypes.c_uint32 * 6)(*saved)
    dropped[0] &= ~_DAC_CAPABILITIES  # the effective set's low word (permitted keeps them, to take them back)
    try:
        _capabilities(libc, header, dropped)
        yield
    finally:
        _capabilities(libc, header, saved)
        libc.prctl(_PR_SET_SECUREBITS, bits, 0, 0, 0)


def run_program(args: list[str], capsys) -> subprocess.CompletedProcess:
    """``medseg ARGS`` run in this process as a program of its own runs (:func:`run_cli` with logging unconfigured, as
    in a fresh process: :func:`no_logging_configured`), so that the command's log and warning lines are on its stderr,
    as the command line writes them: its exit code, standard output and standard error. For the tests of those lines
    that need no fresh interpreter (each ``python -m medseg`` spent some 4 CPU-seconds importing torch and MONAI)."""
    with no_logging_configured():
        code, out, err = run_cli(args, capsys)
    return subprocess.CompletedProcess(["medseg", *args], code, out, err)


def medseg_as_plain_user(args: list[str], capsys) -> subprocess.CompletedProcess:
    """:func:`run_program` under :func:`plain_user`, as ``as_plain_user([python, -m, medseg, *args])`` runs the command
    in another process (for the tests about permission messages, which need no process of their own)."""
    with plain_user():
        return run_program(args, capsys)


def benchmark_main(name: str):
    """The ``main`` of ``benchmarks/<name>.py`` (the benchmarks are scripts, not a package; run as scripts, their
    folder is on ``sys.path`` for the modules they share, as here)."""
    if str(REPO / "benchmarks") not in sys.path:
        sys.path.append(str(REPO / "benchmarks"))
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


@contextlib.contextmanager
def no_logging_configured():
    """This process as a program that configures no logging (a script, the workflow): the root logger without
    handlers, pytest's own put back afterwards, as are the ``medseg`` logger's (the one ``show_warnings`` adds
    goes), and the two loggers' levels; a handler a script's ``logging.basicConfig`` gave the root logger goes too.
    Within the test itself: pytest gives the root logger its handlers for each phase, after the fixtures' setup."""
    import logging

    root, medseg_log = logging.getLogger(), logging.getLogger("medseg")
    saved, kept = root.handlers[:], medseg_log.handlers[:]
    levels = root.level, medseg_log.level
    for handler in saved:
        root.removeHandler(handler)
    try:
        yield
    finally:
        for handler in medseg_log.handlers[:]:
            if handler not in kept:
                medseg_log.removeHandler(handler)
        # a script's logging.basicConfig gave the root logger a handler on this test's (captured, then closed) stderr:
        # left there, every later test's warning was a "--- Logging error ---" of a closed file
        for handler in root.handlers[:]:
            root.removeHandler(handler)
        for handler in saved:
            root.addHandler(handler)
        root.setLevel(levels[0])
        medseg_log.setLevel(levels[1])


@pytest.fixture(autouse=True)
def cpu_unless_marked_cuda(request, monkeypatch):
    """Every test but those marked ``cuda`` sees a machine without CUDA or MPS, in this process and in the
    processes it starts: `--device auto` then means the CPU and fp32, and the figures the tests assert (Dice,
    labels, the device recorded) are the CPU's on any machine. ``tests/test_cuda.py`` checks the GPU path."""
    if request.node.get_closest_marker("cuda") is not None:
        return
    import torch

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    if getattr(torch.backends, "mps", None) is not None:
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


@pytest.fixture(autouse=True)
def columns_unset(monkeypatch):
    """Every test runs with COLUMNS unset, whatever the shell that started pytest exports: `medseg inspect` takes it
    as its width, piped or not, and the tests that read its table got the blocks of a narrow terminal instead. A test
    that wants a width sets COLUMNS itself."""
    monkeypatch.delenv("COLUMNS", raising=False)


@pytest.fixture(autouse=True)
def stop_handlers_restored():
    """Each test leaves the Ctrl-C, SIGTERM and SIGHUP handlers as it found them. medseg's ``main()`` run as a
    program's entry point ignores them on its way out (a second stop waits for the exit); one test that ran it so in
    this process left its worker ignoring Ctrl-C, and 13 later stop tests of that worker (and the processes they
    started) failed, depending on which modules shared the worker."""
    from medseg import stopping

    before = {number: signal.getsignal(number) for number in stopping.stop_signals()}
    yield
    for number, handler in before.items():
        if signal.getsignal(number) is not handler:
            signal.signal(number, handler)


@pytest.fixture(autouse=True)
def output_settings_restored():
    """Each test leaves what medseg's command line sets up for its output as it found it: Python's warning display,
    the set of library messages shown once, and the levels, filters and handlers of the loggers it sets (nibabel's
    silenced). ``main(ARGS)`` puts them back itself as it returns; ``main()`` run as a program's entry point (the
    command line from ``sys.argv``) keeps them to the process's exit, and a test that ran it so left them to the later
    tests of its worker: a library message it had shown was not shown again there."""
    from medseg.cli import _output_settings_kept

    with _output_settings_kept():
        yield


@pytest.fixture(autouse=True)
def torch_threads_restored():
    """Each test leaves torch's CPU threads as it found them. A test running a command in this process with
    ``--threads 2`` left them at 2 for every later test of its worker: with make test's two workers on two cores,
    torch's threads then spin-waited for a core, and a small segmentation took 20 times as long. medseg's own
    threads (:func:`medseg.resources.cpu_threads`) too."""
    import torch

    import medseg.resources as resources

    before = torch.get_num_threads()
    own = resources._threads  # medseg's own (the surface distances' searches), set with torch's by --threads
    yield
    if torch.get_num_threads() != before:
        torch.set_num_threads(before)
    resources._threads = own


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data folder beside the checkout; tests using it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (set MEDSEG_SHARED_DATA to point at it)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def phantom_package():
    """The shipped phantom model package."""
    from medseg.package import load_package

    return load_package("phantom")


@pytest.fixture(scope="session")
def phantom_segmenter(phantom_package):
    from medseg.inference import Segmenter

    return Segmenter(phantom_package, device="cpu", batch_size=8)


def failing_on_call(real, call: int, error: BaseException):
    """``real`` wrapped to raise ``error`` on its ``call``-th call (1-based) and to run as itself otherwise; returns the
    wrapper and the list its calls are counted in."""
    calls: list[int] = []

    def wrapper(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            raise error
        return real(*args, **kwargs)

    return wrapper, calls


def tiny_config(**overrides) -> dict:
    """A small valid model config (phantom labels); ``overrides`` replace top-level sections."""
    config = {
        "format": "medseg-model/1",
        "name": "tiny",
        "version": "0",
        "description": "random weights, for tests",
        "architecture": {"type": "unet2d", "in_channels": 1, "n_classes": 4, "base_width": 4, "depth": 2,
                         "dropout": 0.0, "norm": "batch"},
        "labels": {"0": "background", "1": "ellipsoid", "2": "box", "3": "tube"},
        "preprocessing": {"orientation": "RAS", "spacing_mm": None, "intensity": {"kind": "zscore"}},
        "inference": {"slice_axis": 2, "roi_size": [32, 32], "overlap": 0.25, "blend": "gaussian", "context_slices": 0},
    }
    config.update(overrides)
    return config


@pytest.fixture
def make_package(tmp_path):
    """Factory: write a random-weight package (seeded) and return its folder."""
    import torch

    from medseg.network import UNet2D, UNetConfig
    from medseg.package import save_package

    def factory(name: str = "tiny", **overrides) -> Path:
        config = tiny_config(name=name, **overrides)
        torch.manual_seed(0)
        arch = {k: v for k, v in config["architecture"].items() if k != "type"}
        net = UNet2D(UNetConfig(**arch))
        save_package(net, config, tmp_path / name)
        return tmp_path / name

    return factory


def run_cli(args, capsys):
    """``medseg ARGS`` in this process: its exit code, standard output and standard error."""
    from medseg.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(args)
    out, err = capsys.readouterr()
    return exit_info.value.code, out, err


def _files(folder):
    return sorted(p.name for p in folder.rglob("*") if p.is_file())


@pytest.fixture
def case(tmp_path):
    """A 40x40x8 phantom stored in RAS order (so model space keeps its axes)."""
    import nibabel as nib
    import numpy as np

    from medseg.synthetic import make_phantom

    phantom = make_phantom((40, 40, 8), seed=11)
    nib.save(nib.Nifti1Image(phantom.image, np.diag([1.0, 1.0, 2.0, 1.0])), str(tmp_path / "case.nii.gz"))
    return tmp_path / "case.nii.gz"


@pytest.fixture(scope="module")
def tiny_set(tmp_path_factory) -> tuple[Path, Path]:
    """Six synthetic phantom cases (``images/``, ``labels/``) for the training tests, made once per test module."""
    from training_factory import write_set  # it imports this module's tiny_config

    return write_set(tmp_path_factory.mktemp("tiny_set"))


@pytest.fixture(scope="module")
def config_file(tmp_path_factory) -> Path:
    """A training config file of :func:`training_factory.tiny_training_config`, written once per test module."""
    import json

    from training_factory import tiny_training_config

    path = tmp_path_factory.mktemp("config") / "tiny.json"
    path.write_text(json.dumps(tiny_training_config()))
    return path


@pytest.fixture(scope="module")
def tiny_package(tmp_path_factory):
    """A small randomly initialised model package: the test is about where labels go, not their quality."""
    import torch

    from medseg.network import UNet2D, UNetConfig
    from medseg.package import load_package, save_package

    torch.manual_seed(0)
    architecture = {"in_channels": 1, "n_classes": 3, "base_width": 4, "depth": 2}
    config = {
        "format": "medseg-model/1", "name": "tiny", "version": "0.0.1",
        "architecture": {"type": "unet2d", **architecture},
        "labels": {"0": "background", "1": "first", "2": "second"},
        "preprocessing": {"orientation": "RAS", "spacing_mm": None, "intensity": {"kind": "zscore"}},
        "inference": {"slice_axis": 2, "roi_size": [32, 32], "overlap": 0.25},
        "weights": {"file": "weights.safetensors", "sha256": "0" * 64},
    }
    net = UNet2D(UNetConfig(**architecture)).eval()
    with torch.no_grad():  # spread the logits so that all three labels win somewhere
        net.head.weight.mul_(500.0)
        net.head.bias.zero_()
        net.head.bias.sub_(net(torch.randn(4, 1, 32, 32)).mean(dim=(0, 2, 3)))
    folder = tmp_path_factory.mktemp("tiny")
    save_package(net, config, folder)
    return load_package(folder)


@pytest.fixture(scope="session")
def cohort(tmp_path_factory) -> Path:
    """A results folder of ten cases for the report's tests (scored, without a reference, failed, an id to escape),
    made once for all of them as when they were one module."""
    from report_cases import EVIL, write_case, write_failure

    root = tmp_path_factory.mktemp("results")
    plan = [("c00", "exact"), ("c01", "erode"), ("c02", "shift"), ("c03", "exact"), ("c04", "erode"),
            ("c05", "shift"), ("bad", "bad"), (EVIL, "exact")]
    for seed, (case_id, how) in enumerate(plan):
        write_case(root, case_id, seed, how)
    write_case(root, "noref_big", 20, "dilate3", reference=False)
    write_failure(root, "crashed")
    return root


@pytest.fixture(scope="session")
def built(cohort, tmp_path_factory):
    """The report of :func:`cohort` (its outputs)."""
    from medseg.report.build import build_report

    out = tmp_path_factory.mktemp("report") / "report.html"
    outputs = build_report(cohort, out, dice_threshold=0.6)  # an eroded ball has Dice 0.675
    return outputs


@pytest.fixture(scope="session")
def many_labels(tmp_path_factory):
    """A cohort of more than MANY_LABELS labels and its report: (the label count, the report's outputs)."""
    from report_cases import write_failure, write_many_label_case

    from medseg.report.build import build_report
    from medseg.report.figures import MANY_LABELS

    count = MANY_LABELS + 14  # 20: plots wider than the few-label ones
    root = tmp_path_factory.mktemp("many")
    for case_id, eroded in (("m0", ()), ("m1", (3, 11)), ("m2", (5,)), ("m3", ())):
        write_many_label_case(root, case_id, count, eroded)
    write_failure(root, "m_failed")
    return count, build_report(root, root / "report.html")


def tf32_settings() -> tuple:
    """cuDNN convolutions' and matrix products' TF32 settings as this torch has them (the library's own reader:
    ``fp32_precision`` from torch 2.9, the old ``allow_tf32`` flags before it)."""
    from medseg.inference import _tf32_settings

    return _tf32_settings()


def set_tf32_settings(settings: tuple) -> None:
    from medseg.inference import _set_tf32_settings

    _set_tf32_settings(settings)


def tf32(on: bool) -> tuple:
    """The settings :func:`tf32_settings` gives with TF32 on (or off) for both."""
    import torch

    if hasattr(getattr(torch.backends.cudnn, "conv", None), "fp32_precision"):
        return ("tf32", "tf32") if on else ("ieee", "ieee")
    return (on, on)
