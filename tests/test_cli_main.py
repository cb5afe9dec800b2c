"""What every command shares: file names escaped in each line it writes, the log levels, one-line errors for
failures outside a case, the OpenMP threads' passive wait of the command's process (medseg.cli)."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import run_cli, run_program

from medseg.cli import main
from medseg.synthetic import make_phantom

run = run_cli  # medseg ARGS in this process: (exit code, stdout, stderr)


def test_a_line_break_in_a_file_name_keeps_its_error_one_line(tmp_path, case, make_package, capsys):
    bad = tmp_path / "bad\nname.nii.gz"
    bad.write_text("this is not an image\n")
    shown = str(bad).replace("\n", "\\n")
    for inputs in ([bad], [bad, case]):
        code, _, err = run(["infer", *map(str, inputs), "--model", str(make_package()), "-o", str(tmp_path / "out")],
                           capsys)
        assert code == 1
        errors = [line for line in err.splitlines() if line.startswith("medseg: error: ")]
        assert errors == [f"medseg: error: {shown}: not a NIfTI image (named .gz but not gzip-compressed, and not "
                          "an uncompressed NIfTI file either)"]
        assert not any(line.startswith("name.nii.gz") for line in err.splitlines())


@pytest.mark.parametrize("name, shown", [("bad\u2028name", "bad\\u2028name"), ("bad\x85name", "bad\\x85name"),
                                         ("bad\x0bname", "bad\\x0bname"), ("bad\x1b[2Jname", "bad\\x1b[2Jname")])
def test_other_line_breaks_and_terminal_controls_in_a_file_name_are_escaped(tmp_path, case, make_package, capsys,
                                                                             name, shown):
    """Unicode line separators and vertical controls also end a line (``str.splitlines`` and many log viewers
    split on them), and an escape character in a name would drive the terminal: each is written escaped."""
    bad = tmp_path / f"{name}.nii.gz"
    bad.write_text("this is not an image\n")
    code, _, err = run(["infer", str(bad), str(case), "--model", str(make_package()), "-o", str(tmp_path / "out")],
                       capsys)
    assert code == 1
    errors = [line for line in err.splitlines() if line.startswith("medseg: error: ")]
    assert errors == [f"medseg: error: {tmp_path}/{shown}.nii.gz: not a NIfTI image (named .gz but not "
                      "gzip-compressed, and not an uncompressed NIfTI file either)"]
    assert "\x1b" not in err


def test_log_and_result_lines_of_a_file_name_with_a_line_break_stay_one_line(tmp_path, case, make_package, capsys):
    """Errors were escaped, but the log lines and the result line of the same input were not: a line break in a
    name split them, and a line of the log then began with part of a file name."""
    odd = tmp_path / "a\nb.nii.gz"
    odd.write_bytes(case.read_bytes())
    done = run_program(["-v", "infer", str(odd), "--model", str(make_package()), "-o", str(tmp_path / "out")], capsys)
    assert done.returncode == 0
    shown = str(tmp_path / "a\\nb")
    assert done.stdout.startswith(f"{shown}.nii.gz -> {tmp_path / 'out'}/a\\nb_seg.nii.gz (")
    assert len(done.stdout.splitlines()) == 1
    logged = [line for line in done.stderr.splitlines() if line.startswith("INFO medseg.segment: ")]
    assert [line.split(" (read ")[0] for line in logged] == [
        f"INFO medseg.segment: {shown}.nii.gz: wrote {tmp_path / 'out'}/a\\nb_seg.nii.gz"]
    assert not [line for line in done.stderr.splitlines() if line.startswith("b")]
    assert (tmp_path / "out" / "a\nb_seg.nii.gz").is_file()


def test_the_wrote_lines_of_other_commands_escape_line_breaks_too(tmp_path, capsys):
    image, label = tmp_path / "a\nb.nii.gz", tmp_path / "c\x1bd.nii.gz"
    code, out, _ = run(["synth", str(image), "--label", str(label), "--shape", "24", "24", "8"], capsys)
    assert code == 0 and out == f"wrote {tmp_path}/a\\nb.nii.gz and {tmp_path}/c\\x1bd.nii.gz\n"
    copy = tmp_path / "copy.nii.gz"
    copy.write_bytes(label.read_bytes())
    code, out, _ = run(["evaluate", str(label), str(copy), "-o", str(tmp_path / "m\n.json")], capsys)
    assert code == 0 and out.splitlines()[-1] == f"wrote {tmp_path}/m\\n.json" and "\x1b" not in out


def test_verbose_shows_stage_timings_and_debug_stays_medsegs_own(tmp_path, case, make_package):
    """-v repeated the stdout line; -vv printed 36 lines of matplotlib's and pylibjpeg's debug output."""
    command = [sys.executable, "-m", "medseg", "-vv", "infer", str(case), "-m", str(make_package()), "-o",
               str(tmp_path / "out")]
    run = subprocess.run(command, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    assert run.returncode == 0, run.stderr
    debug = [line for line in run.stderr.splitlines() if line.startswith("DEBUG ")]
    assert all(line.startswith("DEBUG medseg") for line in debug), debug
    assert re.search(r"INFO medseg.segment: .*case.nii.gz: wrote .*case_seg.nii.gz \(read \d+\.\d\d s, preprocess "
                     r"\d+\.\d\d s, inference \d+\.\d\d s, postprocess \d+\.\d\d s, write \d+\.\d\d s\)", run.stderr)


def test_a_warning_the_library_logs_reads_as_the_commands_own_and_names_its_logger_at_debug(tmp_path, make_package,
                                                                                             capsys):
    """A NIfTI whose sform and qform disagree: `medseg infer` wrote "WARNING medseg.io.nifti: ..." beside its own
    "warning: ..." lines (the README quotes that form); at -vv every log line still names its logger."""
    odd = tmp_path / "odd.nii.gz"
    image = nib.Nifti1Image(make_phantom((40, 40, 8), seed=11).image, np.diag([1.0, 1.0, 2.0, 1.0]))
    shifted = np.diag([1.0, 1.0, 2.0, 1.0])
    shifted[0, 3] = 5.0
    image.set_qform(shifted, code=1)
    image.set_sform(np.diag([1.0, 1.0, 2.0, 1.0]), code=2)
    nib.save(image, odd)
    told = (f"{odd}: the header's sform and qform disagree, placing voxels up to 5 mm apart: the sform is used (as "
            "nibabel does); a tool that reads the qform shows the input, and its segmentation, elsewhere")
    package = make_package()
    for verbosity, line in (([], f"warning: {told}"), (["-vv"], f"WARNING medseg.io.nifti: {told}")):
        run = run_program([*verbosity, "infer", str(odd), "-m", str(package), "-o", str(tmp_path / "out"),
                           "--overwrite", "--threads", "1"], capsys)
        assert run.returncode == 0, run.stderr
        assert line in run.stderr.splitlines(), run.stderr
        if not verbosity:
            assert not [line for line in run.stderr.splitlines() if line.startswith(("WARNING", "INFO"))], run.stderr


def test_a_runtime_error_is_one_line_with_its_traceback_at_vv(tmp_path, case, monkeypatch, capsys, caplog):
    """torch's or MONAI's RuntimeError was one line even at -vv (where in the code it came from was lost), and was
    classed as a bad input."""
    import medseg.segment

    def broken(*args, **kwargs):
        raise RuntimeError("shapes [1, 4, 32, 32] and [1, 4, 30, 32] do not match")

    monkeypatch.setattr(medseg.segment, "segment_case", broken)
    code, out, err = run(["infer", str(case), "-o", str(tmp_path / "out")], capsys)
    assert (code, out) == (1, "")
    assert err.strip().splitlines()[-1] == (f"medseg: error: {case}: inference failed (shapes [1, 4, 32, 32] and "
                                            "[1, 4, 30, 32] do not match)")
    assert "Traceback" not in err
    with caplog.at_level("DEBUG", logger="medseg"):
        code, _, _ = run(["-vv", "infer", str(case), "-o", str(tmp_path / "out")], capsys)
    assert code == 1
    [record] = [r for r in caplog.records if r.getMessage() == f"{case}: inference failed"]
    assert record.levelname == "DEBUG" and record.exc_info[0] is RuntimeError
    assert not (tmp_path / "out").exists()


def test_a_memory_error_without_a_message_says_out_of_memory(tmp_path, case, monkeypatch, capsys):
    """Python's own MemoryError (an allocation refused under `ulimit -v`) has no message: the line read "inference
    failed ()", in a batch as alone."""
    import medseg.segment

    def exhausted(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr(medseg.segment, "segment_case", exhausted)
    for inputs in ([case], [case, case.with_name("copy.nii.gz")]):
        if len(inputs) == 2:
            shutil.copy(case, inputs[1])
        code, out, err = run(["infer", *map(str, inputs), "-o", str(tmp_path / "out")], capsys)
        assert (code, out) == (1, "")
        assert f"medseg: error: {case}: inference failed (out of memory)" in err.splitlines()


@pytest.mark.parametrize("refusal", [MemoryError(), ImportError("libtorch_cpu.so: failed to map segment from shared "
                                                                 "object")], ids=["memory-error", "loader"])
def test_running_out_of_memory_outside_a_case_is_one_line(tmp_path, monkeypatch, capsys, refusal):
    """Under a memory limit (ulimit -v, a batch system's h_vmem), a MemoryError outside a case's own work (importing
    torch and MONAI) ended the command in a traceback; under a tighter one, importing torch fails in the dynamic
    loader, as an ImportError ("failed to map segment from shared object"), and did the same. Any other ImportError
    is not taken for one."""
    import medseg.synthetic

    def refused(*args, **kwargs):
        raise refusal

    monkeypatch.setattr(medseg.synthetic, "write_phantom", refused)
    code, out, err = run(["synth", str(tmp_path / "p.nii.gz")], capsys)
    assert (code, out) == (1, "")
    assert err == ("medseg: error: out of memory (the machine's memory or a limit such as ulimit -v refused an "
                   "allocation)\n")
    assert list(tmp_path.iterdir()) == []

    def missing(*args, **kwargs):
        raise ImportError("No module named 'nonexistent'")

    monkeypatch.setattr(medseg.synthetic, "write_phantom", missing)
    with pytest.raises(ImportError, match="nonexistent"):
        main(["synth", str(tmp_path / "p.nii.gz")])


# `python -m medseg --version` as the cohort's jobs run medseg, then torch's own OpenMP runtime loaded in the same
# process, as torch loads it when a command imports it; OMP_DISPLAY_ENV makes the runtime print what it read
_OPENMP_SEEN = """
import ctypes, os, runpy, sys
from pathlib import Path
sys.argv = ["medseg", "--version"]
try:
    runpy.run_module("medseg", run_name="__main__", alter_sys=True)
except SystemExit:
    pass
print("torch imported:", "torch" in sys.modules)
print("OMP_WAIT_POLICY:", os.environ.get("OMP_WAIT_POLICY"))
import importlib.util
library = Path(importlib.util.find_spec("torch").submodule_search_locations[0]) / "lib" / "libgomp.so.1"
if library.exists():
    ctypes.CDLL(str(library))
"""


@pytest.mark.parametrize("chosen, policy, spins", [
    ({}, "PASSIVE", "0"),  # GNU OpenMP's spin count is 300,000 turns otherwise
    ({"OMP_WAIT_POLICY": "ACTIVE"}, "ACTIVE", "30000000000"),
    ({"GOMP_SPINCOUNT": "1000"}, None, "1000"),
])
def test_the_commands_torch_waits_passively_unless_the_user_chose(chosen, policy, spins):
    """Two torch threads spin-waited on each other while other processes kept both CPUs busy: 7.9 s of inference
    for a hippocampus crop against 0.31 s waiting passively (docs/infer.md, *Devices and precision*)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME",
                                                            "KMP_LIBRARY")}
    env.update(chosen, OMP_DISPLAY_ENV="VERBOSE")
    done = subprocess.run([sys.executable, "-c", _OPENMP_SEEN], env=env, capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1], timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-2:] == ["torch imported: False", f"OMP_WAIT_POLICY: {policy}"]
    if "OPENMP DISPLAY ENVIRONMENT" not in done.stderr:
        pytest.skip("this build of torch ships no GNU OpenMP runtime to ask")
    assert f"GOMP_SPINCOUNT = '{spins}'" in done.stderr
    if policy is not None:
        assert f"OMP_WAIT_POLICY = '{policy}'" in done.stderr


def test_a_caller_of_main_keeps_its_environment(monkeypatch, capsys):
    """main(ARGS) from a program: its process's settings are its own."""
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    with pytest.raises(SystemExit) as stopped:
        main(["--version"])
    assert stopped.value.code == 0
    assert "OMP_WAIT_POLICY" not in os.environ


@pytest.mark.parametrize("verbose", [[], ["-vv"]], ids=["plain", "-vv"])
def test_a_caller_of_main_keeps_its_warning_display_and_log_settings(tmp_path, verbose):
    """main(ARGS) from a program (or a test) sets up the command's output: warnings shown as one log line each, once
    per message (a set of those shown), nibabel's logger silenced, the log levels, the once-per-message filters on
    pydicom's and highdicom's loggers, a handler on the root logger where it had none. They were all left so when it
    returned: the caller's own warnings went into medseg's log and its set, and a later main() in the same process
    (the next test of a pytest worker) kept quiet about a message an earlier one had shown. They are put back."""
    import logging
    import warnings

    from conftest import no_logging_configured

    import medseg.cli as medseg_cli

    names = ("", "medseg", "nibabel", "pydicom", "highdicom")
    loggers = [logging.getLogger(name) for name in names]
    with no_logging_configured():  # as a program that configures no logging
        shown, warned = warnings.showwarning, set(medseg_cli._WARNED)
        before = [(log.level, log.filters[:], log.handlers[:]) for log in loggers]
        with pytest.raises(SystemExit) as stopped:
            main([*verbose, "synth", str(tmp_path / "p.nii.gz"), "--shape", "16", "16", "4"])
        assert stopped.value.code == 0
        assert (tmp_path / "p.nii.gz").is_file()
        assert warnings.showwarning is shown
        assert [(log.level, log.filters, log.handlers) for log in loggers] == before
        display = warnings.showwarning  # the caller's (Python's own), or what main() left
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            warnings.showwarning = display
            warnings.warn("a caller's own warning", UserWarning, stacklevel=1)
        assert [str(warning.message) for warning in caught] == ["a caller's own warning"]
        assert medseg_cli._WARNED == warned  # not taken into medseg's once-per-message set


@pytest.mark.parametrize("args, code", [(["infer", "--no-such-option"], 2),
                                        (["evaluate", "gone.nii.gz", "ref.nii.gz"], 1),
                                        (["-q", "synth", "there.nii.gz"], 1)],
                         ids=["usage error", "missing file", "quiet, output there"])
def test_a_caller_of_main_keeps_its_output_settings_when_the_command_fails(tmp_path, monkeypatch, capsys, args, code):
    """A usage error (click's), a file that is not there and a refusal under -q end main(ARGS) as a failure: the
    warning display and log settings are put back on those ways out too."""
    import logging
    import warnings

    from conftest import no_logging_configured

    monkeypatch.chdir(tmp_path)
    (tmp_path / "there.nii.gz").write_bytes(b"")  # synth refuses to replace it without --overwrite
    loggers = [logging.getLogger(name) for name in ("", "medseg", "nibabel", "pydicom", "highdicom")]
    with no_logging_configured():
        shown = warnings.showwarning
        before = [(log.level, log.filters[:], log.handlers[:]) for log in loggers]
        with pytest.raises(SystemExit) as stopped:
            main(args)
        assert stopped.value.code == code
        assert warnings.showwarning is shown
        assert [(log.level, log.filters, log.handlers) for log in loggers] == before
    assert capsys.readouterr().err.count("error: ") == 1


def test_main_with_args_after_main_as_the_entry_point_leaves_the_process_warnings_as_they_read(tmp_path,
                                                                                               monkeypatch, capsys):
    """``main()`` as a program's entry point keeps its one-line warnings (``warning: ...``) to the process's exit; a
    later ``main(["-vv", ...])`` in that process gave the handler it had left on the root logger its own -vv
    formatter, and did not put it back: the process's warnings then read ``WARNING medseg.x: ...``."""
    import logging
    import signal

    from conftest import no_logging_configured

    from medseg import stopping

    demo = logging.getLogger("medseg.demo")
    handlers = {number: signal.getsignal(number) for number in stopping.stop_signals()}
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)  # main() sets it for its process: put back afterwards
    with no_logging_configured():
        monkeypatch.setattr(sys, "argv", ["medseg", "synth", str(tmp_path / "a.nii.gz"), "--shape", "16", "16", "4"])
        try:
            with pytest.raises(SystemExit) as stopped:
                main()  # the program's entry point
        finally:  # main() ignores the stop signals on its way out: given back for the later tests
            for number, handler in handlers.items():
                signal.signal(number, handler)
        assert stopped.value.code == 0
        demo.warning("before")
        with pytest.raises(SystemExit) as stopped:
            main(["-vv", "synth", str(tmp_path / "b.nii.gz"), "--shape", "16", "16", "4"])
        assert stopped.value.code == 0 and (tmp_path / "b.nii.gz").is_file()
        demo.warning("after")
        err = capsys.readouterr().err.splitlines()
    assert "warning: before" in err and "warning: after" in err, err
    assert "WARNING medseg.demo: after" not in err


def test_a_library_warning_shown_by_one_main_call_is_shown_by_the_next_too(tmp_path, capsys):
    """A library's warning is shown once per command: nibabel warns about a NIfTI extension whose size is not a
    multiple of 16 bytes, and the first ``main(ARGS)`` showed it; the set of messages already shown was left holding
    it, so a second ``main(ARGS)`` in the same process (a program scoring file after file, the next test of a pytest
    worker) scored the same file without a word about it."""
    import struct

    import medseg.cli as medseg_cli

    data = np.zeros((8, 8, 4), np.uint8)
    data[2:6, 2:6, 1:3] = 1
    image = nib.Nifti1Image(data, np.eye(4))
    image.header.extensions.append(nib.nifti1.Nifti1Extension(0, b"x" * 24))  # 32 bytes with its own 8
    odd = tmp_path / "odd.nii"
    nib.save(image, odd)
    raw = bytearray(odd.read_bytes())
    assert struct.unpack("<i", raw[352:356]) == (32,)
    raw[352:356] = struct.pack("<i", 24)  # the extension's size as a writer that forgot the padding gives it
    odd.write_bytes(bytes(raw))
    reference = tmp_path / "reference.nii.gz"
    nib.save(nib.Nifti1Image(data, np.eye(4)), reference)
    warned = set(medseg_cli._WARNED)
    told = (f"warning: UserWarning: {odd}: Extension size is not a multiple of 16 bytes; Assuming size is correct and "
            "hoping for the best")
    for _ in range(2):
        run = run_program(["evaluate", str(odd), str(reference)], capsys)
        assert run.returncode == 0, run.stderr
        assert run.stderr.splitlines().count(told) == 1, run.stderr
        assert "1 label_1  1.0000" in run.stdout
        assert medseg_cli._WARNED == warned


# a stand-in torch first on the path: it writes down the wait policy the process has when a command imports it (the
# moment torch's OpenMP runtime reads its settings), then fails the import
_STAND_IN_TORCH = """import os
from pathlib import Path
Path(os.environ["MEDSEG_TEST_TORCH_SAW"]).write_text(os.environ.get("OMP_WAIT_POLICY", "(unset)"))
raise ImportError("a stand-in torch")
"""


def _with_stand_in_torch(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """The environment of a process that imports the stand-in torch, without a wait policy chosen, and the file in
    which the stand-in writes down the policy it saw."""
    (tmp_path / "stand_in" / "torch").mkdir(parents=True)
    (tmp_path / "stand_in" / "torch" / "__init__.py").write_text(_STAND_IN_TORCH)
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME",
                                                            "KMP_LIBRARY")}
    saw = tmp_path / "saw.txt"
    env.update(PYTHONPATH=os.pathsep.join([str(tmp_path / "stand_in"), str(_ROOT)]), MEDSEG_TEST_TORCH_SAW=str(saw))
    return env, saw


_ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("start", ["console", "module", "job"])
def test_torch_is_imported_after_the_passive_wait_is_set(tmp_path, start):
    """However the command starts (the console script, ``python -m medseg``, a cohort job's ``-P -c`` runpy), the
    policy is in the environment when ``medseg infer`` imports torch, not only once the command is done (--version
    imports no torch, and a runtime loaded after it ran saw the policy however late it was set)."""
    from medseg.cohort.job_command import FROM_FOLDER

    env, saw = _with_stand_in_torch(tmp_path)
    image = tmp_path / "scan.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 4), np.float32), np.eye(4)), str(image))
    args = ["infer", str(image), "--model", "phantom", "-o", str(tmp_path / "out")]
    python = [sys.executable, "-P"]  # the stand-in, not the working folder, decides what `import torch` finds
    # the console script as pip writes it for pyproject's entry point (medseg.__main__:run)
    command = {"console": [*python, "-c", "import sys; from medseg.__main__ import run; sys.exit(run())", *args],
               "module": [*python, "-m", "medseg", *args],
               "job": [*python, "-c", FROM_FOLDER, str(_ROOT), *args]}[start]
    done = subprocess.run(command, env=env, capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert saw.exists(), f"medseg infer imported no torch (exit {done.returncode}): {done.stderr}"
    assert saw.read_text() == "PASSIVE"
    assert done.returncode != 0  # the stand-in's failed import, not a segmentation


def test_the_speed_benchmarks_torch_waits_as_the_commands(tmp_path):
    """benchmarks/infer_speed.py's in-process figures are set beside the command's: its torch, imported at the top,
    waited spinning while the command's waited passively."""
    env, saw = _with_stand_in_torch(tmp_path)
    done = subprocess.run([sys.executable, "-P", "-c", "import runpy, sys; runpy.run_path(sys.argv[1])",
                           str(_ROOT / "benchmarks" / "infer_speed.py")], env=env, capture_output=True, text=True,
                          cwd=tmp_path, timeout=60)
    assert "a stand-in torch" in done.stderr
    assert saw.read_text() == "PASSIVE"
