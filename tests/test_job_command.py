"""The command with which the workflow's jobs run medseg: the medseg package of the folder given, before the
working folder's, the environment's and a user's own PYTHONPATH, also where that folder's path holds the path
separator."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys

import pytest

from medseg.cohort.job_command import medseg_command


def _stand_in(folder, name):
    """A medseg package in ``folder`` that prints its name, its arguments and the path's folders of the environment's
    stand-in, and exits with code 3."""
    package = folder / "medseg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text(
        f"import json, sys\nprint(json.dumps([{name!r}, sys.argv[1:], [p for p in sys.path if 'environment' in p]]))\n"
        "sys.exit(3)\n")


@pytest.mark.skipif(shutil.which("bash") is None, reason="the jobs' commands are bash")
@pytest.mark.parametrize("name", ["my checkout", "checkout 12:30"])
def test_the_command_runs_the_medseg_of_the_folder_given(tmp_path, name):
    _stand_in(tmp_path / name, "planned")
    _stand_in(tmp_path / "environment", "environment")
    _stand_in(tmp_path / "work", "working folder")  # Snakemake run there with -s: python -m put it first
    command = medseg_command(sys.executable, tmp_path / name) + " -v cohort infer 'a sheet.tsv' --case 'x:y'"
    environment = {**os.environ, "PYTHONPATH": str(tmp_path / "environment")}
    run = subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=environment,
                         cwd=tmp_path / "work", timeout=60)
    assert run.returncode == 3, run.stderr
    # the user's own PYTHONPATH still follows, after the folder given
    assert json.loads(run.stdout) == ["planned", ["-v", "cohort", "infer", "a sheet.tsv", "--case", "x:y"],
                                      [str(tmp_path / "environment")]]


@pytest.mark.parametrize("folder", ["/home/u/my checkout", "/home/u/run 12:30"])
def test_the_jobs_are_told_as_the_workflows_steps_by_their_command_line(folder):
    """A killed run's Snakemake lock is kept while a step of it still works in its folder, told by its command line
    (medseg.cohort.snakelock): the command of a folder with a ':' in its path must read as a step too."""
    from medseg.cohort import snakelock

    for step, expected in (("-v cohort infer s.tsv", True), ("-v report results", True), ("models", False)):
        words = shlex.split(f"{medseg_command('/usr/bin/python3', folder)} {step}")
        if ":" not in folder:
            words = words[1:]  # PYTHONPATH=... is bash's, not the process's
        assert snakelock._runs_step([word.encode() for word in words]) == expected, words


def test_a_conda_environment_runs_its_own_medseg():
    assert medseg_command("python", None) == "python -m medseg"
    assert medseg_command("/opt/my env/bin/python", None) == "'/opt/my env/bin/python' -m medseg"
