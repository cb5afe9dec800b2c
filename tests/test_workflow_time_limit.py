"""A batch whose every attempt runs out of its SLURM time limit: the run through profiles/slurm and the executor
plugin, against stand-in SLURM commands (``tests/fake_slurm.py``) that end a job at its ``-t`` as SLURM does."""

from __future__ import annotations

import csv
import importlib.util
import json
import sys

import nibabel as nib
import numpy as np
import pytest
from workflow_runs import (
    REPO,
    snakemake,
    workflow_cohort,  # noqa: F401  (the cohort fixture its tests take)
    write_sheet,
)

pytestmark = [
    # seven SLURM jobs (the slow batch's three attempts among them), each running two Snakemake processes (the job's
    # and its step's), then a preview: 49-50 CPU s with every process counted, 2.6-3.5 min at a load average of
    # 11-13 on 2 cores, and at least the last attempt's 60 s on an idle machine, where its inference also runs until
    # the stop (the cases' own stop is proven in test_job_deadline.py, which runs by default)
    pytest.mark.slow,
    pytest.mark.skipif(importlib.util.find_spec("snakemake_executor_plugin_slurm") is None,
                       reason="the SLURM executor plugin is not installed (pip install -e '.[workflow]')"),
    pytest.mark.skipif(sys.platform != "linux",
                       reason="the stand-in SLURM commands read /proc to enforce --mem, as SLURM's cgroup does"),
]


def _run_with_a_big_case(cohort, tmp_path, monkeypatch, minutes: str, **options):
    """The cohort's cases a and b and a 256x256x300 case (planned at 10 min, batch002 at two cases a job) run through
    profiles/slurm against the stand-in SLURM, whose ``FAKE_SLURM_MINUTES`` gives batch002's attempts ``minutes``
    (seconds a planned minute, attempt by attempt): the run, the sheet, the stand-in's state and the results."""
    import fake_slurm

    folder, _ = cohort
    data = folder / "data"
    ramp = np.broadcast_to(np.arange(300, dtype=np.int16), (256, 256, 300))  # a small file, not a blank image
    nib.save(nib.Nifti1Image(np.ascontiguousarray(ramp), np.eye(4)), str(tmp_path / "big.nii.gz"))
    sheet = write_sheet(tmp_path, [("a", str(data / "a.nii.gz"), str(data / "a_label.nii.gz")),
                                   ("b", str(data / "b.nii.gz"), str(data / "b_label.nii.gz")),
                                   ("big", str(tmp_path / "big.nii.gz"), "")])
    state = fake_slurm.put_first(monkeypatch, tmp_path)
    monkeypatch.setenv("FAKE_SLURM_MINUTES", f"rule_infer_wildcards_batch002={minutes}")
    results = tmp_path / "results"
    run = snakemake(tmp_path, "--profile", str(REPO / "profiles" / "slurm"), "--default-resources",
                    "slurm_account=lab42", "slurm_partition=cpu", "runtime=30", "mem_mb=2000",
                    "--slurm-logdir", str(tmp_path / "slurm-logs"), "--slurm-init-seconds-before-status-checks", "1",
                    samples=sheet, results=results, cases_per_job=2, **options)
    return run, sheet, state, results


def test_a_batch_out_of_time_on_every_attempt_is_reported_as_failed(cohort, tmp_path, monkeypatch):
    """Every attempt of one inference job ran out of its time: the batch had no job record, the report (which needs
    every batch's) was never made, and the run failed without a word on the other cases. Its last attempt now stops
    before SLURM's limit ($SLURM_JOB_END_TIME), records its unfinished cases as failed, and the report lists them
    beside the others, scored as usual; the next run tries them again."""
    # its first two attempts are given 2 and 4 s (0.2 s a minute), and its last 60 s (2 s a minute), which its
    # inference alone outlasts (about 40 CPU seconds): it stops itself 30 s before its end
    run, sheet, state, results = _run_with_a_big_case(cohort, tmp_path, monkeypatch, "0.2:0.2:2")
    assert run.returncode == 0, run.stderr[-3000:]
    submitted = [json.loads(line) for line in (state / "sbatch.jsonl").read_text().splitlines()]

    def option(entry: dict, name: str) -> str:
        return entry["args"][entry["args"].index(name) + 1]

    # the slow batch's three attempts, with twice and three times the time; the first two ended by the time limit
    assert sorted(option(s, "-t") for s in submitted if option(s, "--comment") == "rule_infer_wildcards_batch002") \
        == ["10", "20", "30"]
    jobs = [json.loads(file.read_text()) for file in (state / "jobs").glob("*.json")]
    assert sorted(job["state"] for job in jobs if option(job, "--comment") == "rule_infer_wildcards_batch002") == [
        "COMPLETED", "TIMEOUT", "TIMEOUT"]
    # the report lists the case as failed, the job never having finished it, and the others as usual
    with open(results / "cohort.tsv", newline="", encoding="utf-8") as handle:
        rows = {row["case_id"]: row for row in csv.DictReader(handle, delimiter="\t")}
    assert {case: row["status"] for case, row in rows.items()} == {"a": "scored", "b": "scored", "big": "failed"}
    failure = json.loads((results / "cases" / "big" / "big_failed.json").read_text())
    assert failure["stage"] == "infer" and failure["error_type"] == "JobTimeLimitError"
    assert failure["error"].startswith(f"{tmp_path / 'big.nii.gz'}: the job never finished this case: the job's "
                                       "last attempt ran out of time and stopped itself before SLURM ended it")
    assert "failed: big: " in run.stdout
    record = json.loads((results / "jobs" / "batch002.infer.json").read_text())
    assert record["counts"]["failed"] == 1 and record["cases"][0]["stage"] == "infer"
    assert not (results / "cases" / "big" / "big_seg.nii.gz").exists()
    # a later run tries it again (here as a preview: it says so, and changes nothing)
    again = snakemake(tmp_path, "-n", "--profile", str(REPO / "profiles" / "slurm"), "--default-resources",
                      "slurm_account=lab42", "slurm_partition=cpu", samples=sheet, results=results, cases_per_job=2)
    assert again.returncode == 0, again.stderr[-3000:]
    assert ("infer: big not finished by the last run, whose job's last attempt ran out of time: job batch002.infer "
            "will run again when the workflow runs") in again.stdout + again.stderr


def test_a_job_ended_by_its_time_limit_is_retried_with_more_time_and_the_same_memory(cohort, tmp_path, monkeypatch):
    """A retry asked for twice the memory and the time whichever ran out: Snakemake gives a rule's resources the
    attempt, not why the last one failed. A job that SLURM's time limit ends gets SIGTERM at its end
    ($SLURM_JOB_END_TIME) and notes its attempt beside its record: its retry asks for twice the time and the memory it
    had. (A job killed for memory notes nothing, and its retry has twice the memory:
    test_the_slurm_profile_runs_the_cohort_through_the_executor.)"""
    # its first attempt is given 20 s (2 s a minute), which its inference alone outlasts (about 40 CPU seconds, after
    # the job's and its step's Snakemake and medseg's imports; at 40 s an idle machine finished it in time), its
    # retry 20 min
    run, sheet, state, results = _run_with_a_big_case(cohort, tmp_path, monkeypatch, "2:60", timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "SLURM status is: 'TIMEOUT'" in run.stderr
    submitted = [json.loads(line) for line in (state / "sbatch.jsonl").read_text().splitlines()]

    def option(entry: dict, name: str) -> str:
        return entry["args"][entry["args"].index(name) + 1]

    slow = [(option(s, "--mem"), option(s, "-t")) for s in sorted(submitted, key=lambda s: int(s["job_id"]))
            if option(s, "--comment") == "rule_infer_wildcards_batch002"]
    assert [minutes for _, minutes in slow] == ["10", "20"]
    assert slow[1][0] == slow[0][0], slow  # the memory it had, not twice
    jobs = [json.loads(file.read_text()) for file in (state / "jobs").glob("*.json")]
    assert sorted(job["state"] for job in jobs if option(job, "--comment") == "rule_infer_wildcards_batch002") == [
        "COMPLETED", "TIMEOUT"]
    assert f"--memory-mb {slow[0][0]} --final-memory-mb " in run.stderr
    # and the job's own Snakemake process, which works the memory out again for the command it runs, told medseg
    # the memory the job asked SLURM for (the segmentation's sidecar records the command)
    from medseg.cohort.records import ResultsFolder

    argv = json.loads(ResultsFolder(results).sidecar("big").read_text())["invocation"]["argv"]
    assert argv[argv.index("--memory-mb") + 1] == slow[1][0] and argv[argv.index("--attempt") + 1] == "2"
    assert json.loads((results / "jobs" / "batch002.infer.json.out-of-time").read_text()) == {"attempts": [1]}
    with open(results / "cohort.tsv", newline="", encoding="utf-8") as handle:
        rows = {row["case_id"]: row["status"] for row in csv.DictReader(handle, delimiter="\t")}
    assert rows == {"a": "scored", "b": "scored", "big": "no_reference"}


def test_a_batch_whose_every_attempt_fails_before_medseg_starts_is_reported_with_its_slurm_log(cohort, tmp_path,
                                                                                              monkeypatch):
    """An inference job whose every attempt SLURM ended before medseg started (here its batch script's first line
    fails, as where the Python environment is not on the node) left no record: no report, the run's other cases in
    none, and each retry asked for twice the memory with no out-of-memory kill. Its retries keep the memory now (only
    SLURM's oom_kill line in an attempt's log adds to it), and the run records the job as failed, naming SLURM's log
    of its last attempt, and makes the report, which lists the job and its case; the run still fails."""
    import fake_slurm

    folder, _ = cohort
    data = folder / "data"
    sheet = write_sheet(tmp_path, [("a", str(data / "a.nii.gz"), str(data / "a_label.nii.gz")),
                                   ("b", str(data / "b.nii.gz"), str(data / "b_label.nii.gz"))])
    state = fake_slurm.put_first(monkeypatch, tmp_path)
    monkeypatch.setenv("FAKE_SLURM_BROKEN", "rule_infer_wildcards_b")
    results = tmp_path / "results"
    logs = tmp_path / "slurm-logs"
    run = snakemake(tmp_path, "--profile", str(REPO / "profiles" / "slurm"), "--default-resources",
                    "slurm_account=lab42", "slurm_partition=cpu", "runtime=30", "mem_mb=2000",
                    "--slurm-logdir", str(logs), "--slurm-init-seconds-before-status-checks", "1",
                    samples=sheet, results=results, cases_per_job=1)  # a job a case, named by it
    assert run.returncode == 1, run.stderr[-3000:]
    submitted = [json.loads(line) for line in (state / "sbatch.jsonl").read_text().splitlines()]

    def option(entry: dict, name: str) -> str:
        return entry["args"][entry["args"].index(name) + 1]

    broken = [(option(s, "--mem"), option(s, "-t")) for s in sorted(submitted, key=lambda s: int(s["job_id"]))
              if option(s, "--comment") == "rule_infer_wildcards_b"]
    assert len(broken) == 3 and len({memory for memory, _ in broken}) == 1, broken  # the memory kept
    assert [int(minutes) for _, minutes in broken] == [int(broken[0][1]) * k for k in (1, 2, 3)]
    last_id = max(int(s["job_id"]) for s in submitted if option(s, "--comment") == "rule_infer_wildcards_b")
    last_log = logs / "rule_infer" / "b" / f"{last_id}.log"
    # the job's record, its case's failure and the report name SLURM's log of the last attempt
    record = json.loads((results / "jobs" / "b.infer.json").read_text())
    assert record["job_error"]["slurm_log"] == str(last_log) and record["job_error"]["error_type"] == "JobFailedError"
    assert record["job_error"]["error"].startswith("every attempt (3) ended before medseg started or recorded "
                                                   "anything (its batch script failed, or its node; SLURM's log of "
                                                   "the last attempt ends: ")
    assert "No such file or directory" in record["job_error"]["error"]
    summary = json.loads((results / "summary.json").read_text())
    assert [(job["job"], job["cases"], job["slurm_log"]) for job in summary["failed_jobs"]] == [
        ("b.infer", ["b"], str(last_log))]
    assert f"SLURM log <code>{last_log}</code>" in (results / "report.html").read_text()
    with open(results / "cohort.tsv", newline="", encoding="utf-8") as handle:
        rows = {row["case_id"]: row["status"] for row in csv.DictReader(handle, delimiter="\t")}
    assert rows == {"a": "scored", "b": "failed"}
    # the run fails naming the job and SLURM's log (the cohort's check, as its last step would)
    assert "job b.infer failed on its last attempt for a reason of the whole job" in run.stderr
    assert f"(SLURM's log of its last attempt: {last_log})" in run.stderr
