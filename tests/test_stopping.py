"""Stopping a command (Ctrl-C, SIGTERM, SIGHUP): the exit code, the stop line, no partial files
(medseg.stopping)."""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import pytest
from conftest import _files, run_cli
from held_stops import ctrl_c_while_placing

from medseg.cli import main
from medseg.synthetic import write_phantom

run = run_cli  # medseg ARGS in this process: (exit code, stdout, stderr)


def test_a_stop_in_a_batch_says_how_far_it_got(tmp_path, case, make_package, capsys, monkeypatch):
    from medseg import segment

    inputs = [case]
    for name in ("b", "c", "d"):
        shutil.copy(case, tmp_path / f"{name}.nii.gz")
        inputs.append(tmp_path / f"{name}.nii.gz")
    inputs.insert(1, tmp_path / "missing.nii.gz")
    real, calls = segment.write_labels, []

    def interrupted_on_the_third(labels, like, path, **options):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt
        real(labels, like, path, **options)

    monkeypatch.setattr(segment, "write_labels", interrupted_on_the_third)
    code, out, err = run(["infer", *map(str, inputs), "-m", str(make_package()), "-o", str(tmp_path / "out")], capsys)
    assert code == 130  # the stop line alone (click's blank line and "Aborted." after it are gone)
    assert err.splitlines()[-1] == f"medseg: stopped at {inputs[2]}: 2 of 5 inputs done (1 failed), 3 not written"
    assert "" not in err.splitlines() and "Aborted." not in err
    assert _files(tmp_path / "out") == ["case_seg.json", "case_seg.nii.gz", "missing_failed.json"]


def test_a_sigterm_in_a_batch_is_its_own_line_alone_with_exit_143(tmp_path, case, make_package, capsys, monkeypatch):
    """A batch stopped by SIGTERM said how far it got, then "Terminated.": the stop is one line, as for Ctrl-C (the
    exit code, 143, tells the signal)."""
    from medseg import segment

    second = shutil.copy(case, tmp_path / "b.nii.gz")
    real, calls = segment.write_labels, []

    def terminated_at_the_second(labels, like, path, **options):
        calls.append(path)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)
        real(labels, like, path, **options)

    monkeypatch.setattr(segment, "write_labels", terminated_at_the_second)
    try:
        code, _, err = run(["infer", str(case), str(second), "-m", str(make_package()), "-o", str(tmp_path / "out")],
                           capsys)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    assert code == 143
    # the line names the signal: a batch job's log tells a time limit (SIGTERM) from a Ctrl-C, which it did not
    assert err.splitlines()[-1] == f"medseg: stopped by SIGTERM at {second}: 1 of 2 inputs done, 1 not written"
    assert "Terminated." not in err and "Aborted." not in err
    # no input failed: the one stopped is not written, and gets no failure record
    assert _files(tmp_path / "out") == ["case_seg.json", "case_seg.nii.gz"]


def test_a_stop_held_while_a_case_is_placed_counts_that_case_as_done(tmp_path, case, make_package, capsys,
                                                                      monkeypatch):
    """Ctrl-C while the second case's outputs were put in place acts once they are all there: the stop line
    counted that case as not written, though its files were whole on disk."""
    inputs = [case]
    for name in ("b", "c"):
        shutil.copy(case, tmp_path / f"{name}.nii.gz")
        inputs.append(tmp_path / f"{name}.nii.gz")
    package = make_package()
    with ctrl_c_while_placing(monkeypatch, "b_seg.nii.gz"):  # the second case's set
        code, out, err = run(["infer", *map(str, inputs), "-m", str(package), "-o", str(tmp_path / "out")], capsys)
    assert code == 130
    assert [line for line in err.splitlines() if line][-1] == (
        f"medseg: stopped after {inputs[1]}: 2 of 3 inputs done, 1 not written")
    assert "Aborted." not in err
    assert _files(tmp_path / "out") == ["b_seg.json", "b_seg.nii.gz", "case_seg.json", "case_seg.nii.gz"]


def test_a_single_command_stopped_while_placing_says_what_it_wrote(tmp_path, case, make_package, capsys,
                                                                    monkeypatch):
    """A stop held until the set was whole said only "Aborted." (or "Terminated."), though the outputs were
    written: `infer` of one input, `evaluate`, `convert`, `report`."""
    package = make_package()
    out = tmp_path / "out"
    with ctrl_c_while_placing(monkeypatch, "case_seg.nii.gz"):
        code, _, err = run(["infer", str(case), "-m", str(package), "-o", str(out)], capsys)
    assert code == 130
    assert [line for line in err.splitlines() if line][-1] == (
        f"medseg: stopped once its outputs were whole: wrote {out / 'case_seg.nii.gz'}, {out / 'case_seg.json'}")
    assert "Aborted." not in err
    assert _files(out) == ["case_seg.json", "case_seg.nii.gz"]
    reference = tmp_path / "reference.nii.gz"
    reference.write_bytes((out / "case_seg.nii.gz").read_bytes())
    with ctrl_c_while_placing(monkeypatch, "m.json"):
        code, _, err = run(["evaluate", str(out / "case_seg.nii.gz"), str(reference), "-o",
                            str(tmp_path / "m.json")], capsys)
    assert code == 130 and [line for line in err.splitlines() if line][-1] == (
        f"medseg: stopped once its outputs were whole: wrote {tmp_path / 'm.json'}")
    assert "Aborted." not in err
    assert json.loads((tmp_path / "m.json").read_text())["schema"] == "medseg-metrics/1"


def test_sigterm_stops_like_ctrl_c_with_exit_143_and_no_partial_files(tmp_path, case, make_package, capsys,
                                                                     monkeypatch):

    import medseg.segment as segment

    real = segment.write_labels

    def terminated_while_writing(labels, like, path, **options):
        real(labels, like, path, **options)
        os.kill(os.getpid(), signal.SIGTERM)  # a scheduler's stop, in the middle of writing the case

    monkeypatch.setattr(segment, "write_labels", terminated_while_writing)
    try:
        code, _, err = run(["infer", str(case), "--model", str(make_package()), "-o", str(tmp_path / "out")], capsys)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    assert code == 143  # one input's own line names it, as a batch's does (it said "Terminated.")
    assert err.strip().splitlines()[-1] == f"medseg: stopped by SIGTERM at {case}: nothing was written"
    assert _files(tmp_path / "out") == []  # nothing partial, no temporary file


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
def test_a_hangup_stops_like_sigterm_with_exit_129_and_no_partial_files_unless_ignored(tmp_path, case, make_package,
                                                                                      capsys, monkeypatch):
    """An ssh session closed under `medseg infer` (SIGHUP) killed it at once: its temporary files stayed in the output
    folder (and a training run lost the epochs since its last checkpoint). It now stops as on SIGTERM, exit 129;
    under nohup (SIGHUP ignored) the command runs on."""
    import medseg.segment as segment

    real = segment.write_labels

    def hung_up_while_writing(labels, like, path, **options):
        real(labels, like, path, **options)
        os.kill(os.getpid(), signal.SIGHUP)  # the terminal closed, in the middle of writing the case

    monkeypatch.setattr(segment, "write_labels", hung_up_while_writing)
    package = str(make_package())
    before = signal.getsignal(signal.SIGHUP)
    try:
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        code, _, err = run(["infer", str(case), "--model", package, "-o", str(tmp_path / "out")], capsys)
        assert code == 129
        assert err.strip().splitlines()[-1] == f"medseg: stopped by SIGHUP at {case}: nothing was written"
        assert _files(tmp_path / "out") == []  # nothing partial, no temporary file
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_DFL  # the caller's handler back
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # nohup
        code, _, err = run(["infer", str(case), "--model", package, "-o", str(tmp_path / "nohup")], capsys)
        assert code == 0, err
        assert _files(tmp_path / "nohup") == ["case_seg.json", "case_seg.nii.gz"]
    finally:
        signal.signal(signal.SIGHUP, before)


@pytest.mark.skipif(not hasattr(signal, "SIGHUP") or sys.platform != "linux", reason="a Linux pseudo-terminal")
def test_a_hangup_whose_terminal_is_gone_still_exits_129_without_a_traceback(tmp_path):
    """A closed ssh session: the terminal is gone when the hangup comes, and the stop's own lines ("stopped at …")
    failed to write (EIO): a traceback nobody saw and exit code 1 instead of 129. The outputs were whole either way."""
    import pty

    inputs = []
    for index in range(3):
        inputs.append(str(tmp_path / f"p{index}.nii.gz"))
        write_phantom(inputs[-1], tmp_path / f"l{index}.nii.gz", shape=(40, 40, 8), seed=index)
    out = tmp_path / "out"
    code = ("import sys, time\nimport medseg.segment as segment\nfrom medseg.cli import main\n"
            "real = segment.write_labels\n"
            "def slow(*args, **kwargs):\n    real(*args, **kwargs)\n    print('written', flush=True)\n"
            "    time.sleep(3)\n"
            f"segment.write_labels = slow\nsys.argv = ['medseg', 'infer', *{inputs!r}, '-o', {str(out)!r}]\nmain()\n")
    try:
        master, terminal = pty.openpty()
    except OSError as error:
        pytest.skip(f"no pseudo-terminal here ({error})")
    process = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL, stdout=terminal,
                               stderr=terminal, cwd=Path(__file__).resolve().parents[1])
    os.close(terminal)
    try:
        seen = b""
        while b"written" not in seen:
            chunk = os.read(master, 4096)  # the first case is being written
            assert chunk, seen
            seen += chunk
    finally:
        os.close(master)  # the terminal is gone (its reads and writes fail with EIO) ...
    process.send_signal(signal.SIGHUP)  # ... and the hangup comes
    assert process.wait(timeout=60) == 129
    assert [name for name in _files(out) if not name.startswith("p0_seg.")] == []  # nothing partial
    assert not [p for p in out.rglob(".*")]  # no temporary file


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
def test_a_stop_whose_own_lines_fail_to_write_still_exits_with_the_stop_code(tmp_path, case, make_package,
                                                                              monkeypatch):
    """After a hangup the terminal is gone and every write to it fails (EIO): a batch's own "stopped at" line then
    ended the command in an OSError traceback and exit 1 instead of the hangup's 129."""
    import errno
    import io

    import medseg.segment as segment

    gone = []

    class Terminal(io.RawIOBase):  # writes nowhere; once hung up, fails as a terminal that is gone does
        def writable(self):
            return True

        def write(self, data):
            if gone:
                raise OSError(errno.EIO, os.strerror(errno.EIO))
            return len(data)

    real = segment.write_labels

    def hung_up_while_writing(labels, like, path, **options):
        real(labels, like, path, **options)
        gone.append(True)
        os.kill(os.getpid(), signal.SIGHUP)

    monkeypatch.setattr(segment, "write_labels", hung_up_while_writing)
    second = shutil.copy(case, tmp_path / "second.nii.gz")
    package = str(make_package())
    monkeypatch.setattr(sys, "stderr", io.TextIOWrapper(io.BufferedWriter(Terminal()), line_buffering=True))
    before = signal.getsignal(signal.SIGHUP)
    try:
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        with pytest.raises(SystemExit) as caught:
            main(["infer", str(case), str(second), "--model", package, "-o", str(tmp_path / "out")])
    finally:
        signal.signal(signal.SIGHUP, before)
    assert caught.value.code == 129
    assert _files(tmp_path / "out") == []  # nothing partial, no temporary file


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_stop_after_the_command_has_finished_changes_nothing(tmp_path, signal_name):
    """The interpreter takes about a second to exit after a command (tearing torch and MONAI down): a Ctrl-C in that
    second turned a finished training run, whose "wrote" line was out and whose package was whole, into a silent
    exit 130 that a wrapper or Snakemake counts as a failure. The stop comes here as the process exits (atexit)."""
    code = ("import atexit, os, signal, sys, time\nfrom medseg.cli import main\n"
            f"atexit.register(lambda: (os.kill(os.getpid(), signal.{signal_name}), time.sleep(0.2)))\n"
            f"sys.argv = ['medseg', 'synth', {str(tmp_path / 'p.nii.gz')!r}, '--seed', '1']\nmain()\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stderr) == (0, "")
    assert nib.load(tmp_path / "p.nii.gz").ndim == 3


_STOP_AT_IMPORT = """
import importlib.abc, runpy, sys
class Stop(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == {name!r}:
            raise KeyboardInterrupt
sys.meta_path.insert(0, Stop())
sys.argv = ['medseg', 'synth', {path!r}]
runpy.run_module('medseg', run_name='__main__', alter_sys=True)
"""


@pytest.mark.parametrize("where", ["click", "medseg.allocator"])
def test_a_ctrl_c_in_the_first_tenth_of_a_second_is_aborted_not_a_traceback(tmp_path, where):
    """``python -m medseg`` (as the cohort's jobs run it) stopped while it imported its command line (click) or set
    itself up before the command's own handling of a Ctrl-C (the allocator) ended in a KeyboardInterrupt traceback,
    which Snakemake then printed from the job's log; it is "Aborted." and exit code 130, as a later Ctrl-C is."""
    code = _STOP_AT_IMPORT.format(name=where, path=str(tmp_path / "p.nii.gz"))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout, done.stderr) == (130, "", "Aborted.\n")
    assert not (tmp_path / "p.nii.gz").exists()


_SIGNAL_AT_IMPORT = """
import importlib.abc, os, signal, sys
class Signalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == 'click':
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.{signal_name})
sys.meta_path.insert(0, Signalled())
sys.argv = ['medseg', 'synth', {path!r}]
{start}
"""


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGINT"])
@pytest.mark.parametrize("start", ["import runpy; runpy.run_module('medseg', run_name='__main__', alter_sys=True)",
                                   "from medseg.__main__ import run; run()"])
def test_a_signal_while_the_command_line_is_imported_is_told_in_its_line(tmp_path, signal_name, start):
    """A SIGTERM within the first tenth of a second or so (click and medseg's command line imported: before medseg's
    handler was installed) killed the process without a word (a cohort job scancelled as it started: an empty log),
    and a Ctrl-C then ended the console command (``medseg``) in a traceback. The handlers come before those imports:
    "Terminated." and exit code 143, "Aborted." and 130, nothing written, from ``python -m medseg`` and the console
    command's entry point alike."""
    import tomllib

    code = _SIGNAL_AT_IMPORT.format(signal_name=signal_name, path=str(tmp_path / "p.nii.gz"), start=start)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    expected = (143, "Terminated.\n") if signal_name == "SIGTERM" else (130, "Aborted.\n")
    assert (done.returncode, done.stderr, done.stdout) == (*expected, "")
    assert not (tmp_path / "p.nii.gz").exists()
    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert project["project"]["scripts"]["medseg"] == "medseg.__main__:run"  # the console command starts there


def test_a_command_run_in_process_gives_the_signal_handlers_back(capsys):
    """main() installed its Ctrl-C and SIGTERM handlers for good: a caller's later Ctrl-C was recorded as a stop and
    raised again by its next, unrelated segmentation."""
    import signal

    from medseg import stopping

    before = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    code, _, _ = run(["models"], capsys)
    assert code == 0
    assert {number: signal.getsignal(number) for number in before} == before
    with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGINT)  # the caller's own Ctrl-C, handled by the caller
    stopping.check()  # nothing recorded: no stop left for later work


def test_a_stops_own_line_names_a_sigterm_or_sighup_and_a_ctrl_c_by_nothing():
    """A batch, a folder's scoring or a training run stopped by a scheduler's time limit wrote the same line as a
    Ctrl-C (the words "Terminated." and "Hangup." no longer follow it): its log could not tell them apart."""
    from medseg.cli import stop_for
    from medseg.cli.options import stopped_by

    assert [stopped_by(stop_for(number)) for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)] == [
        "", " by SIGTERM", " by SIGHUP"]


_STOP_IN_SCAN = """
import sys
import medseg.io.dicom_series as dicom_series
from medseg.cli import main
import time
real, read = dicom_series._scan, dicom_series._read_header
def scanning(*args, **kwargs):
    print('scanning', 'torch' in sys.modules, flush=True)
    return real(*args, **kwargs)
def slow_read(path):  # 10 ms a file: the scan outlasts a loaded machine's delay in sending the signal
    time.sleep(0.01)
    return read(path)
dicom_series._scan, dicom_series._read_header = scanning, slow_read
sys.argv = ['medseg', 'infer', *{inputs!r}, '-o', {out!r}]
main()
"""


@pytest.mark.parametrize(("signal_name", "code", "by"), [("SIGINT", 130, ""), ("SIGTERM", 143, " by SIGTERM")])
def test_a_stop_in_a_dicom_folders_scan_is_told_in_its_own_line(tmp_path, signal_name, code, by):
    """Ctrl-C while `infer` read a DICOM folder's headers before the model loaded (minutes for a study of thousands
    of files) said only click's bare "Aborted.": the line names the folder being scanned, which input of the batch
    it was, and that nothing was written; exit 130 (SIGTERM: 143), and no output folder made."""
    sys.path.insert(0, str(Path(__file__).parent))
    from dicom_factory import make_series

    study = tmp_path / "study"
    make_series(study, shape=(4, 4, 600))  # 600 files: a scan of 6 s or more (10 ms a file), to be stopped in
    first = tmp_path / "scan.nii.gz"
    write_phantom(first, tmp_path / "label.nii.gz", shape=(16, 16, 4), seed=1)
    out = tmp_path / "out"
    script = _STOP_IN_SCAN.format(inputs=[str(first), str(study)], out=str(out))
    process = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1])
    try:
        assert process.stdout.readline() == "scanning False\n"  # the folder's scan began, before torch was imported
        process.send_signal(getattr(signal, signal_name))
        stdout, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == code
    assert stderr == (f"medseg: stopped{by} while the DICOM folder {study} was scanned (input 2 of 2), before the "
                      "model loaded: nothing was written\n")
    assert stdout == ""
    assert not out.exists()


@pytest.mark.parametrize("given", ["study", "scan.nii.gz"])
def test_a_stop_of_a_single_input_after_the_model_loaded_names_it_and_what_was_written(tmp_path, make_package,
                                                                                       capsys, monkeypatch, given):
    """Ctrl-C on one input once the model had loaded (a DICOM folder of over 20,000 files is scanned then, minutes)
    said click's bare "Aborted." (SIGTERM "Terminated.", told in test_sigterm_stops_like_ctrl_c_with_exit_143_...),
    where a batch names the input and what was written: the line names the input and that nothing was written; exit
    130, the output folder left empty. In this process: a command in a process of its own cost 10 s a case."""
    import medseg.io.dicom_series as dicom_series
    import medseg.package as package
    import medseg.segment as segment

    sys.path.insert(0, str(Path(__file__).parent))
    from dicom_factory import make_series

    if given == "study":
        make_series(tmp_path / given, shape=(4, 4, 6))
    else:
        write_phantom(tmp_path / given, tmp_path / "label.nii.gz", shape=(16, 16, 4), seed=1)
    monkeypatch.setattr(dicom_series, "_HELD_FILES_MAX", 4)  # the folder's scan is not kept before the model loads
    loaded, real_load = [], package.load_package
    monkeypatch.setattr(package, "load_package", lambda *args, **kwargs: loaded.append(1) or real_load(*args, **kwargs))
    module, name = (dicom_series, "_scan") if given == "study" else (segment, "write_labels")
    real = getattr(module, name)

    def stopped_here(*args, **kwargs):
        if loaded:  # the folder's reading scans it, or the labels are being written: the model has loaded
            os.kill(os.getpid(), signal.SIGINT)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, stopped_here)
    out = tmp_path / "out"
    out.mkdir()
    code, stdout, stderr = run(["infer", str(tmp_path / given), "-m", str(make_package()), "-o", str(out)], capsys)
    assert (code, stdout) == (130, "")
    assert stderr.splitlines()[-1] == f"medseg: stopped at {tmp_path / given}: nothing was written"
    assert "Aborted." not in stderr
    assert _files(out) == []


@pytest.mark.parametrize(("inputs", "signal_name", "exit_code", "by"), [
    (1, "SIGINT", 130, ""), (2, "SIGINT", 130, ""), (1, "SIGTERM", 143, " by SIGTERM")])
def test_a_stop_while_the_model_loads_is_told_in_its_own_line(tmp_path, make_package, capsys, monkeypatch, inputs,
                                                              signal_name, exit_code, by):
    """Between the checks before the model loads and the first input (torch, MONAI and the weights: 8 to 18 s on a
    busy machine) a Ctrl-C said click's bare "Aborted.", for one input as for a batch: the line says that the model
    was loading and nothing was written; exit 130 (SIGTERM: 143), no output folder made. In this process, the signal
    sent while the package is read: a command in a process of its own cost 8 s a case."""
    import medseg.package as package

    given = []
    for index in range(inputs):
        given.append(str(tmp_path / f"scan{index}.nii.gz"))
        write_phantom(tmp_path / f"scan{index}.nii.gz", tmp_path / f"label{index}.nii.gz", shape=(16, 16, 4), seed=1)
    real = package.load_package

    def loading(*args, **kwargs):
        os.kill(os.getpid(), getattr(signal, signal_name))  # the stop lands here, as in the weights' reading
        return real(*args, **kwargs)

    monkeypatch.setattr(package, "load_package", loading)
    out = tmp_path / "out"
    try:
        code, stdout, stderr = run(["infer", *given, "-m", str(make_package()), "-o", str(out)], capsys)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    assert (code, stdout) == (exit_code, "")
    assert stderr == f"medseg: stopped{by} while the model was loaded: nothing was written\n"
    assert not out.exists()
