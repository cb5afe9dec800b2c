"""What the benchmark scripts share as programs: medseg's warnings shown on stderr, their argument types
(``benchmarks/argument_types.py``) found from any folder."""

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
def test_medseg_warnings_show_where_the_script_configures_no_logging(script, tmp_path, capsys):
    """Once the library's loggers had a NullHandler, a script that configures no logging showed none of medseg's
    warnings (here: a subfolder of the images left out); it shows them as the medseg command does."""
    main = benchmark_main(script)
    with no_logging_configured():
        assert main(_arguments(script, tmp_path)) == 1
    captured = capsys.readouterr()
    err = captured.err.splitlines()
    assert captured.out == "" and len(err) == 2
    assert err[0].startswith(f"warning: {tmp_path / 'images'}{LEFT_OUT}") and err[0].endswith(": sub/")
    assert err[1].startswith(f"error: {tmp_path / 'images'}: no .nii/")


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


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize("where", ["root", "elsewhere"])
def test_help_works_from_the_repository_root_and_from_another_folder(script, where, tmp_path):
    path = f"benchmarks/{script}.py" if where == "root" else str(REPO / "benchmarks" / f"{script}.py")
    done = subprocess.run([sys.executable, path, "--help"], capture_output=True, text=True, timeout=60,
                          cwd=REPO if where == "root" else tmp_path)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.startswith(f"usage: {script}.py ") and "--threads THREADS" in done.stdout
