"""The stand-in SLURM (``tests/fake_slurm.py``): the job an array task runs, as snakemake-executor-plugin-slurm 2.8
writes an array's script with and without ``pass-command-as-script``."""

from __future__ import annotations

import base64
import json
import shlex
import subprocess
import zlib

from fake_slurm import _task_comment


def _exec(batch: str) -> str:
    """A Snakemake job's command, as the plugin formats it (its --target-jobs names the rule and batch)."""
    return f"python -m snakemake --target-jobs 'infer:batch={batch}' --executor slurm-jobstep --jobs 1"


PAYLOAD = base64.b64encode(json.dumps({"2": zlib.compress(_exec("b").encode(), 9).hex()}).encode()).decode()
OPTIONS = {"--comment": "rule_infer_wildcards_a"}


def test_an_array_tasks_job_is_read_from_the_wrapped_commands_payload():
    """With --wrap (the plugin's default) the payload follows the option after ``=``, or after a space: task 2 runs
    b's job, task 1 a's."""
    for script in (f"{_exec('a')} --slurm-jobstep-array-execs={shlex.quote(PAYLOAD)}",
                   f"{_exec('a')} --slurm-jobstep-array-execs {PAYLOAD}"):
        assert _task_comment(script, 2, OPTIONS) == "rule_infer_wildcards_b"
        assert _task_comment(script, 1, OPTIONS) == "rule_infer_wildcards_a"


def test_under_pass_command_as_script_every_task_runs_the_first_job():
    """The plugin's script under pass-command-as-script: the option and its payload on lines of their own, which the
    shell runs as commands (not found: exit 127) rather than passing them to the task's Snakemake, so that task 2 runs
    a's job too, as it is known here."""
    script = "\n".join(["#!/bin/sh", _exec("a"), "--slurm-jobstep-array-execs", shlex.quote(PAYLOAD)])
    assert _task_comment(script, 2, OPTIONS) == "rule_infer_wildcards_a"
    ran = subprocess.run(["/bin/sh", "-c", script.replace(_exec("a"), "echo the first job")], capture_output=True,
                         text=True, check=False)
    assert ran.stdout == "the first job\n" and ran.returncode == 127
    assert "--slurm-jobstep-array-execs" in ran.stderr and "not found" in ran.stderr  # dash's or bash's words
