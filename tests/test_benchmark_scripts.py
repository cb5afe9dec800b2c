"""What the benchmark scripts share as programs: medseg's warnings shown on stderr, torch's threads waiting as the
``medseg`` command's, their argument types (``benchmarks/argument_types.py``) found from any folder, their own
error lines one line whatever a file's name holds."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO, benchmark_main, no_logging_configured
from training_factory import tiny_training_config

SCRIPTS = ["cross_validate", "evaluate_model"]
LEFT_OUT = ": left out 1 entry that is not a .nii/.nii.gz/.nii.bz2/.nii.zst/.nrrd/.nhdr/.mha/.mhd file (subfolders"


def _arguments(script: str, tmp_path) -> list[str]:
    """Arguments that end the run at the pairing of its folders: images holding only a subfolder (left out with a
    warning of medseg's, then no image to pair: one error line)."""
    (tmp_path / "images" / "sub").mkdir(parents=True)
    (tmp_path / "labels").mkdir()
    folders = [str(tmp_path / "images"), str(tmp_path / "labels")]
    if script == "evaluate_model":
        return ["phantom", *folders, "--cases-from", "all"]
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(tiny_training_config(epochs=1)))
    return [str(config), *folders, "-o", str(tmp_path / "cv")]


@pytest.mark.parametrize("script", SCRIPTS)
def test_medseg_warnings_show_where_the_script_configures_no_logging(script, tmp_path, monkeypatch, capsys):
    """Once the library's loggers had a NullHandler, a script that configures no logging showed none of medseg's
    warnings (here: a subfolder of the images left out); it shows them as the medseg command does."""
    import medseg.allocator as allocator
    import medseg.resources as resources

    waits, tunes = [], []
    monkeypatch.setattr(resources, "wait_passively", lambda: waits.append(True) or False)
    monkeypatch.setattr(allocator, "tune_allocator", lambda: tunes.append(True) or False)
    main = benchmark_main(script)
    with no_logging_configured():
        assert main(_arguments(script, tmp_path)) == 1
    captured = capsys.readouterr()
    err = captured.err.splitlines()
    assert captured.out == "" and len(err) == 2
    assert err[0].startswith(f"warning: {tmp_path / 'images'}{LEFT_OUT}") and err[0].endswith(": sub/")
    assert err[1].startswith(f"error: {tmp_path / 'images'}: no .nii/")
    assert waits == [True]  # torch's threads wait as the medseg command's (before torch: see the test below)
    assert tunes == []  # main(ARGS) of a caller: its allocator is its own (a script's is tuned: below)


def test_a_script_run_from_another_folder_shows_medseg_warnings_on_stderr(tmp_path):
    """The real thing: ``python benchmarks/evaluate_model.py`` in its own process, run from another folder (its
    shared argument types found beside it), a capped --threads and a left-out entry each one line."""
    from medseg.resources import usable_cpus

    cpus = usable_cpus()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "evaluate_model.py"),
                           *_arguments("evaluate_model", tmp_path), "--threads", str(cpus + 1)],
                          env=env, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    err = done.stderr.splitlines()
    assert (done.returncode, done.stdout, len(err)) == (1, "", 3), done.stderr
    plural = "s" if cpus > 1 else ""
    assert err[0] == f"warning: --threads {cpus + 1}: this process may use {cpus} CPU{plural}; using {cpus} threads"
    assert err[1].startswith(f"warning: {tmp_path / 'images'}{LEFT_OUT}")
    assert err[2].startswith(f"error: {tmp_path / 'images'}: no .nii/")


# a stand-in torch first on the path: it writes down the wait policy the process has when the script imports it (when
# torch's OpenMP runtime reads its settings), then fails the import
_STAND_IN_TORCH = """import os
from pathlib import Path
Path(os.environ["MEDSEG_TEST_TORCH_SAW"]).write_text(os.environ.get("OMP_WAIT_POLICY", "(unset)"))
raise ImportError("a stand-in torch")
"""


# the script run as `python benchmarks/<script>.py` runs it (its folder first on sys.path), the allocator's tuning
# written down instead of done
_AS_SCRIPT = """import os, runpy, sys
import medseg.allocator
medseg.allocator.tune_allocator = lambda: print("allocator tuned", flush=True) or True
sys.path.insert(0, os.path.dirname(sys.argv[1]))
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.mark.parametrize("script", SCRIPTS)
def test_torch_waits_passively_and_the_allocator_is_tuned_as_the_commands(script, tmp_path):
    """evaluate_model.py's seconds per volume and cross_validate.py's training time are set beside `medseg infer`'s and
    `medseg train`'s: their torch waited spinning and their allocator gave freed memory back, where the commands'
    threads wait passively and their allocator keeps it."""
    (tmp_path / "stand_in" / "torch").mkdir(parents=True)
    (tmp_path / "stand_in" / "torch" / "__init__.py").write_text(_STAND_IN_TORCH)
    saw = tmp_path / "saw.txt"
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME", "KMP_LIBRARY")}
    env.update(PYTHONPATH=os.pathsep.join([str(tmp_path / "stand_in"), str(REPO)]), MEDSEG_TEST_TORCH_SAW=str(saw))
    done = subprocess.run([sys.executable, "-c", _AS_SCRIPT, str(REPO / "benchmarks" / f"{script}.py"),
                           *_arguments(script, tmp_path)], env=env, capture_output=True, text=True, cwd=tmp_path,
                          timeout=60)
    assert "a stand-in torch" in done.stderr
    assert saw.read_text() == "PASSIVE"
    assert done.stdout == "allocator tuned\n"


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize("where", ["root", "elsewhere"])
def test_help_works_from_the_repository_root_and_from_another_folder(script, where, tmp_path):
    path = f"benchmarks/{script}.py" if where == "root" else str(REPO / "benchmarks" / f"{script}.py")
    done = subprocess.run([sys.executable, path, "--help"], capture_output=True, text=True, timeout=60,
                          cwd=REPO if where == "root" else tmp_path)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.startswith(f"usage: {script}.py ") and "--threads THREADS" in done.stdout


def test_the_report_demo_case_meant_to_fail_fails_where_its_wrong_label_fits_the_grid(tmp_path):
    """``report_demo.py``'s failing case is scored against another case's label; where that label is a box of the
    image's lattice (identity affines, a few voxels larger: the hippocampus set's hippocampus_004 label against the
    hippocampus_023 image), scoring zero-pads it and the demo stopped with 'unexpectedly shares … grid'. The label is
    given a coarser voxel size, so the case fails at scoring as the README says, and the report is written."""
    import nibabel as nib
    import numpy as np

    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    rng = np.random.default_rng(0)
    for index in range(9):
        shape = (14, 16, 12) if index == 0 else (13, 15, 11)  # the first label reaches past the others' grids
        image = rng.normal(100, 10, shape).astype(np.float32)
        label = np.zeros(shape, np.uint8)
        label[4:8, 4:9, 3:7], label[4:8, 9:12, 3:7] = 1, 2
        for folder, array in (("images", image), ("labels", label)):
            nib.save(nib.Nifti1Image(array, np.eye(4)), tmp_path / folder / f"case_{index:03d}.nii.gz")
    out = tmp_path / "out"
    assert benchmark_main("report_demo")([str(tmp_path), str(out), "--cases", "9", "--max-overlays", "0"]) == 0
    failure = json.loads((out / "cases" / "case_008" / "case_008_failed.json").read_text())
    assert failure["stage"] == "evaluate" and failure["error_type"] == "GeometryError"
    assert "(1.5, 1.5, 1.5) mm against (1, 1, 1) mm" in failure["error"]
    # the record medseg's own writers make (failure_records.py): the version that wrote it, the paths absolute
    from medseg import __version__

    assert (failure["schema"], failure["case_id"], failure["medseg_version"]) == ("medseg-failure/1", "case_008",
                                                                                 __version__)
    assert failure["input"] == str((tmp_path / "images" / "case_008.nii.gz").absolute())
    summary = json.loads((out / "summary.json").read_text())
    assert summary["cases"]["total"] == 9 and summary["cases"]["failed"] == 1


ODD = "odd\nname\x1b[31m"  # a line break and a terminal escape in a file name
ODD_SHOWN = "odd\\nname\\x1b[31m"


def _odd_arguments(script: str, tmp_path) -> list[str]:
    """Arguments naming a file that is not there, its name ``ODD``: the script's own error line names it."""
    missing = str(tmp_path / ODD)
    folders = [str(tmp_path), str(tmp_path)]
    return {"evaluate_model": [missing, *folders], "cross_validate": [missing, *folders, "-o", str(tmp_path / "cv")],
            "reference_3d": [missing, *folders], "report_demo": [missing, str(tmp_path / "out")],
            "infer_speed": ["--model", missing], "report_sort": [missing]}[script]


@pytest.mark.parametrize("script", ["evaluate_model", "cross_validate", "reference_3d", "report_demo", "infer_speed",
                                    "report_sort"])
def test_a_scripts_own_error_line_is_one_line_whatever_the_file_name(script, tmp_path, monkeypatch, capsys):
    """A line break or terminal escape in a file name is written escaped in the script's own error line, as the
    ``medseg`` command writes it: before, the line split in two and the escape reached the terminal."""
    import medseg.allocator as allocator
    import medseg.resources as resources

    monkeypatch.setattr(resources, "wait_passively", lambda: False)
    monkeypatch.setattr(allocator, "tune_allocator", lambda: False)
    main = benchmark_main(script)
    arguments = _odd_arguments(script, tmp_path)
    if script == "infer_speed":  # reads sys.argv
        monkeypatch.setattr(sys, "argv", ["infer_speed.py", *arguments])
        arguments = None
    with no_logging_configured():
        try:
            code = main(arguments) if arguments is not None else main()
        except SystemExit as stop:  # report_demo and infer_speed stop with SystemExit
            code = stop.code
    captured = capsys.readouterr()
    told = captured.err if script != "report_demo" else f"{code}\n"  # SystemExit(TEXT): Python writes TEXT
    assert code not in (0, None)
    assert told.count("\n") == 1 and "\x1b" not in told
    assert f"{tmp_path / ODD_SHOWN}" in told
    assert told.startswith(f"error: {tmp_path / ODD_SHOWN}") or script == "report_demo"


def test_the_sort_benchmark_refuses_a_page_not_of_this_report_in_one_line(tmp_path, capsys):
    """``report_sort.py`` given a page that is not this medseg's report (or not text) says so in one line naming it,
    before any browser is started."""
    main = benchmark_main("report_sort")
    (tmp_path / ODD).write_text("<!DOCTYPE html><p>another page", encoding="utf-8")
    (tmp_path / "binary.html").write_bytes(b"\xff\xfe\x00 not text")
    assert main([str(tmp_path / ODD)]) == 1
    assert capsys.readouterr().err == (f"error: {tmp_path / ODD_SHOWN}: not a page of this medseg's report (its "
                                       "sorting script differs)\n")
    assert main([str(tmp_path / "binary.html")]) == 1
    assert capsys.readouterr().err == f"error: {tmp_path / 'binary.html'}: not UTF-8 text, not a report page\n"


def test_reference_3d_writes_medseg_warnings_one_line_each(tmp_path, capsys):
    """reference_3d.py configures logging for medseg's info lines; a warning naming an odd file is one line there."""
    import logging

    images, labels = tmp_path / "images", tmp_path / "labels"
    (images / ODD).mkdir(parents=True)  # a subfolder: left out with a warning naming it, then no image to pair
    labels.mkdir()
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(tiny_training_config(epochs=1)))
    root, medseg_log = logging.getLogger(), logging.getLogger("medseg")
    level = medseg_log.level
    with no_logging_configured():  # the script's logging.basicConfig configures it (put back below)
        try:
            assert benchmark_main("reference_3d")([str(config), str(images), str(labels)]) == 1
        finally:
            for handler in root.handlers[:]:
                root.removeHandler(handler)
            medseg_log.setLevel(level)
    err = capsys.readouterr().err
    assert "\x1b" not in err
    lines = err.splitlines()
    assert len(lines) == 2, err
    assert lines[0].endswith(f": {ODD_SHOWN}/") and lines[1].startswith(f"error: {images}: no .nii/")


def test_the_seg_read_benchmark_reads_back_the_labels_it_wrote(capsys):
    """``dicom_seg_read.py`` (the README's figure for reading a DICOM SEG) writes a series and a SEG of its
    segments, reads the SEG back onto the series and onto its headers' grid, and says whether the labels are those
    written: a small series of two segments, each box a fifth of the slices (6 of 30) deep."""
    main = benchmark_main("dicom_seg_read")
    with no_logging_configured():
        assert main(["--shape", "40", "32", "30", "--segments", "2", "--repeats", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "series 40×32×30 int16, 2 segments, 12 frames; best of 1"
    assert [line.split()[0] for line in out[1:7]] == ["writing", "writing", "reading", "reading", "the", "reading"]
    assert out[-1] == "  labels read back identical: yes"


@pytest.mark.parametrize("option, line", [
    (["--device", "tpu"], "error: --device tpu: expected auto, cpu, cuda, cuda:N or mps"),
    (["--device", "cpu", "--precision", "fp16"],
     "error: --precision fp16 needs a CUDA device (got cpu); use bf16 or fp32")])
def test_infer_speed_names_its_own_options_in_medsegs_errors(option, line, monkeypatch, capsys):
    """infer_speed's --device and --precision go to medseg's Segmenter, whose messages name a Python caller's keyword
    arguments (device='tpu'): the script's reader was told of an argument it cannot give."""
    main = benchmark_main("infer_speed")
    monkeypatch.setattr(sys, "argv", ["infer_speed.py", *option])
    with no_logging_configured(), pytest.raises(SystemExit) as stop:
        main()
    captured = capsys.readouterr()
    assert (stop.value.code, captured.out, captured.err) == (1, "", f"{line}\n")


def test_multimodal_names_its_threads_option_where_medseg_caps_it(tmp_path, case, make_package, monkeypatch, capsys):
    """multimodal.py's --threads goes to medseg's set_threads, whose warning names a Python caller's keyword argument
    (threads=100000): the script's reader was told of an argument it cannot give."""
    from medseg.resources import usable_cpus

    main = benchmark_main("multimodal")
    monkeypatch.setattr(sys, "argv", ["multimodal.py", "--threads", "100000", "--one", str(make_package()), str(case),
                                      str(tmp_path / "out")])
    with no_logging_configured():
        main()
    captured = capsys.readouterr()
    cpus = usable_cpus()
    assert captured.err.splitlines() == [
        f"warning: --threads 100000: this process may use {cpus} CPU{'' if cpus == 1 else 's'}; using {cpus} threads"]
    assert json.loads(captured.out)["tiles"] > 0 and (tmp_path / "out" / "case_seg.nii.gz").is_file()
