"""How snakemake-executor-plugin-slurm 2.8 submits the cohort's jobs, beyond one sbatch a job: as SLURM arrays
(``--slurm-array-jobs``), and an sbatch that refuses a job. Runs through profiles/slurm against the stand-in SLURM
commands (``tests/fake_slurm.py``), which run an array's tasks and name their logs as SLURM does."""

from __future__ import annotations

import csv
import html
import importlib.util
import json
import sys

import pytest
from workflow_runs import (
    REPO,
    snakemake,
    workflow_cohort,  # noqa: F401  (the cohort fixture its tests take)
    write_sheet,
)

pytestmark = [
    pytest.mark.slow,  # each a run of SLURM jobs through the plugin: 1-2 min
    pytest.mark.skipif(importlib.util.find_spec("snakemake_executor_plugin_slurm") is None,
                       reason="the SLURM executor plugin is not installed (pip install -e '.[workflow]')"),
    pytest.mark.skipif(sys.platform != "linux",
                       reason="the stand-in SLURM commands read /proc to enforce --mem, as SLURM's cgroup does"),
]


def _run(cohort, tmp_path, monkeypatch, *args, cases=("a", "b"), **config):
    """The cohort's ``cases`` (a job a case, named by it) run through profiles/slurm against the stand-in SLURM: the
    run, the stand-in's state, the results and the SLURM log folder."""
    import fake_slurm

    data = cohort[0] / "data"
    sheet = write_sheet(tmp_path, [(case, str(data / f"{case}.nii.gz"),
                                    str(data / f"{case}_label.nii.gz") if case != "c" else "") for case in cases])
    state = fake_slurm.put_first(monkeypatch, tmp_path)
    results, logs = tmp_path / "results", tmp_path / "slurm-logs"
    run = snakemake(tmp_path, "--profile", str(REPO / "profiles" / "slurm"), "--default-resources",
                    "slurm_account=lab42", "slurm_partition=cpu", "runtime=30", "mem_mb=2000",
                    "--slurm-logdir", str(logs), "--slurm-init-seconds-before-status-checks", "1", *args,
                    samples=sheet, results=results, cases_per_job=1, **config)
    return run, state, results, logs


def _submitted(state) -> list[dict]:
    return sorted((json.loads(line) for line in (state / "sbatch.jsonl").read_text().splitlines()),
                  key=lambda entry: int(entry["job_id"]))


def _option(entry: dict, name: str) -> str:
    return entry["args"][entry["args"].index(name) + 1]


def test_array_tasks_logs_are_found_for_the_job_each_ran(cohort, tmp_path, monkeypatch):
    """With --slurm-array-jobs the inference jobs of a, b and c go as one array, whose tasks write
    rule_infer/<array id>_<task>.log (not the <batch>/<job id>.log the run looked in); c's task is killed for memory
    and c is retried alone. The run finds c's array log among its attempts (it had none: the rule without logs),
    and reads SLURM's out-of-memory line there: the retry asks for twice the memory."""
    from medseg.cohort.slurm_logs import array_task_job, attempt_logs, killed_for_memory

    # c needs more than the array's memory (1,300 MB), less than twice it: its first attempt is killed for memory
    monkeypatch.setenv("FAKE_SLURM_NEEDS", "rule_infer_wildcards_c=2000")
    # killed once medseg runs (an infer job peaks at 800-900 MB), not while the task's Snakemake processes start,
    # before the one that runs c's job has written its command: a log that names no job
    monkeypatch.setenv("FAKE_SLURM_KILL_MB", "500")
    run, state, results, logs = _run(cohort, tmp_path, monkeypatch, "--slurm-array-jobs", "infer",
                                     "--slurm-keep-successful-logs", cases=("a", "b", "c"))
    assert run.returncode == 0, run.stderr[-3000:]
    submitted = _submitted(state)
    arrays = [entry for entry in submitted if entry["tasks"]]
    assert [entry["tasks"] for entry in arrays] == [[1, 2, 3]] and "--array=1-3" in arrays[0]["args"]
    array_id = arrays[0]["job_id"]
    tasks = sorted(path.name for path in (logs / "rule_infer").glob("*_*.log"))
    assert tasks == [f"{array_id}_{task}.log" for task in (1, 2, 3)]
    ran = {array_task_job(logs / "rule_infer" / name): name for name in tasks}
    assert set(ran) == {("infer", "a"), ("infer", "b"), ("infer", "c")}
    # the jobs submitted alone: c's retry, and no other inference job (the array's --comment names its first job,
    # which Snakemake picks in no fixed order: c's when c is first, and then not a retry)
    alone = [entry for entry in submitted if not entry["tasks"]]
    retries = [entry for entry in alone if _option(entry, "--comment") == "rule_infer_wildcards_c"]
    assert len(retries) == 1
    assert [entry for entry in alone if _option(entry, "--comment").startswith("rule_infer_")] == retries
    found = attempt_logs(logs / "rule_infer" / "c", 0)
    assert [path.name for path in found] == [ran[("infer", "c")], f"{retries[0]['job_id']}.log"]
    assert killed_for_memory(found[0]) and not killed_for_memory(found[1])
    # twice the jobs' memory (planned in steps of 100 MB; the array asks a MB more, the plugin's allowance for the
    # tasks' commands it carries)
    assert int(_option(retries[0], "--mem")) == 2 * (int(_option(arrays[0], "--mem")) // 100 * 100)


def test_a_job_sbatch_refuses_is_recorded_failed_with_sbatchs_message(cohort, tmp_path, monkeypatch):
    """sbatch refuses b's inference job on every attempt (a QOS's submission limit): nothing ran, no SLURM log was
    written, so the run, which looked for those logs, recorded nothing and made no report. The plugin gives
    Snakemake sbatch's message as the job's error: b's case is now recorded as failed with it, the report is made
    (its memory on the login node named); the run still fails."""
    monkeypatch.setenv("FAKE_SLURM_REFUSE", "rule_infer_wildcards_b")
    run, state, results, logs = _run(cohort, tmp_path, monkeypatch)
    assert run.returncode == 1, run.stderr[-3000:]
    calls = [json.loads(line) for line in (state / "calls.jsonl").read_text().splitlines()]
    refused = [call for call in calls if call["command"] == "sbatch"
               and "rule_infer_wildcards_b" in call["args"]]
    assert len(refused) == 3
    assert list((logs / "rule_infer" / "b").glob("*.log")) == []
    said = ("sbatch: error: QOSMaxSubmitJobPerUserLimit sbatch: error: Batch job submission failed: Job violates "
            "accounting/QOS policy (job submit limit, user's size and/or time limits)")
    record = json.loads((results / "jobs" / "b.infer.json").read_text())
    assert record["job_error"]["error"] == f"every attempt (3) was refused by sbatch, and never ran: {said}"
    assert record["job_error"]["error_type"] == "JobFailedError" and record["job_error"]["slurm_log"] is None
    assert record["job_error"]["log"] is None  # it never ran: no rule log either
    failure = json.loads((results / "cases" / "b" / "b_failed.json").read_text())
    assert failure["stage"] == "infer" and said in failure["error"]
    assert html.escape(said) in (results / "report.html").read_text()
    assert "their cases are recorded as failed, and the report is made here (about " in run.stderr
    assert " MB, as its job would ask)" in run.stderr
    assert not (results / "jobs" / "cohort.check.json").exists()  # the check fails before its record, as its step
    assert "job b.infer failed on its last attempt for a reason of the whole job" in run.stderr
    # the profile keeps going: a's scoring ran (Snakemake stopped at b's failure and a was listed as failed, "no
    # scores (the evaluate step has not run for it)", a case never scored for a job it never reached)
    with open(results / "cohort.tsv", newline="", encoding="utf-8") as handle:
        rows = {row["case_id"]: row["status"] for row in csv.DictReader(handle, delimiter="\t")}
    assert rows == {"a": "scored", "b": "failed"}


def test_an_array_sbatch_refuses_records_each_of_its_jobs_failed_with_sbatchs_message(cohort, tmp_path, monkeypatch):
    """sbatch refuses the array of a's and b's inference jobs on every attempt: the plugin reports each job as 'Part
    of failed array sbatch submission', sbatch's message logged once before, for the array. Each job is recorded as
    failed with that message, as a job refused alone is, and the report is made."""
    monkeypatch.setenv("FAKE_SLURM_REFUSE", "rule_infer_wildcards_a,rule_infer_wildcards_b")
    run, state, results, logs = _run(cohort, tmp_path, monkeypatch, "--slurm-array-jobs", "infer")
    assert run.returncode == 1, run.stderr[-3000:]
    calls = [json.loads(line) for line in (state / "calls.jsonl").read_text().splitlines()]
    submitted = [call["args"] for call in calls if call["command"] == "sbatch"]
    # the first attempts as one array; the retries alone or as an array, as they became ready: 3 attempts a job
    assert any(arg == "--array=1-2" for arg in submitted[0]), submitted[0]
    def jobs(args: list[str]) -> int:
        ranges = [arg.removeprefix("--array=").split("-") for arg in args if arg.startswith("--array=")]
        return int(ranges[0][-1]) - int(ranges[0][0]) + 1 if ranges else 1

    assert sum(jobs(args) for args in submitted) == 6, submitted
    said = ("sbatch: error: QOSMaxSubmitJobPerUserLimit sbatch: error: Batch job submission failed: Job violates "
            "accounting/QOS policy (job submit limit, user's size and/or time limits)")
    for case in ("a", "b"):
        record = json.loads((results / "jobs" / f"{case}.infer.json").read_text())
        assert record["job_error"]["error"] == f"every attempt (3) was refused by sbatch, and never ran: {said}"
        assert record["job_error"]["slurm_log"] is None and record["job_error"]["log"] is None
    assert html.escape(said) in (results / "report.html").read_text()


def test_an_array_task_whose_batch_script_failed_before_snakemake_started_is_matched_to_its_job(cohort, tmp_path,
                                                                                                 monkeypatch):
    """The inference jobs of a and b go as one array; b's task fails before its batch script starts Snakemake (the
    Python environment not on the node), and so do its two retries, submitted alone. b's task log names no job (no
    Snakemake command in it): the run found two of b's three attempts, recorded nothing for b, and made no report.
    The array's other task's log carries every task's command (the plugin's --slurm-jobstep-array-execs): b's task is
    matched to b's job through it, and b is recorded as failed, naming SLURM's log of its last attempt."""
    from medseg.cohort.slurm_logs import array_task_job, attempt_logs

    monkeypatch.setenv("FAKE_SLURM_BROKEN", "rule_infer_wildcards_b")
    run, state, results, logs = _run(cohort, tmp_path, monkeypatch, "--slurm-array-jobs", "infer",
                                     "--slurm-keep-successful-logs")
    assert run.returncode == 1, run.stderr[-3000:]
    arrays = [entry for entry in _submitted(state) if entry["tasks"]]
    assert [entry["tasks"] for entry in arrays[:1]] == [[1, 2]]
    tasks = sorted((logs / "rule_infer").glob(f"{arrays[0]['job_id']}_*.log"))
    broken = [path for path in tasks if "slurm_script" in path.read_text()]
    assert len(broken) == 1 and array_task_job(broken[0]) is None  # its log names no job
    found = attempt_logs(logs / "rule_infer" / "b", 0)
    assert len(found) == 3 and found[0] == broken[0], found
    record = json.loads((results / "jobs" / "b.infer.json").read_text())
    assert record["job_error"]["error"].startswith("every attempt (3) ended before medseg started or recorded "
                                                   "anything (its batch script failed, or its node; ")
    assert record["job_error"]["slurm_log"] == str(found[-1])
    assert (results / "report.html").exists()


def test_an_array_whose_every_task_failed_before_snakemake_started_is_matched_through_snakemakes_log(cohort,
                                                                                                     tmp_path,
                                                                                                     monkeypatch):
    """Every task of the array of a's and b's inference jobs fails before its batch script starts Snakemake, and so
    do their retries: no log of the array names a job. Snakemake's log of the run names each failed task's job (the
    plugin's external_jobid beside the job's record): both jobs are recorded as failed and the report is made."""
    monkeypatch.setenv("FAKE_SLURM_BROKEN", "rule_infer_wildcards_a,rule_infer_wildcards_b")
    run, state, results, logs = _run(cohort, tmp_path, monkeypatch, "--slurm-array-jobs", "infer")
    assert run.returncode == 1, run.stderr[-3000:]
    array_id = next(entry for entry in _submitted(state) if entry["tasks"])["job_id"]
    for case in ("a", "b"):
        record = json.loads((results / "jobs" / f"{case}.infer.json").read_text())
        assert record["job_error"]["error"].startswith("every attempt (3) ended before medseg started or recorded "
                                                       "anything (its batch script failed, or its node; ")
    assert sorted(path.name for path in (logs / "rule_infer").glob(f"{array_id}_*.log")) == [
        f"{array_id}_1.log", f"{array_id}_2.log"]
    assert (results / "report.html").exists()
