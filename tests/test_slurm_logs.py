"""SLURM's own logs of a cohort run's jobs: where each attempt's is, and the memory a retry asks for after it."""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path

import pytest
from cohort_cases import SMALL_IMAGES_SEGMENTED

from medseg.cohort.slurm_logs import (
    LOGDIR_VARIABLE,
    attempt_logs,
    job_log_path,
    killed_for_memory,
    memory_attempts,
    slurm_logdir,
)

pytestmark = SMALL_IMAGES_SEGMENTED

# what SLURM writes at the end of an attempt's log (slurmstepd's lines, as on a cluster and as tests/fake_slurm.py
# writes them), and what a batch script that fails before medseg starts leaves
ENDINGS = {
    "oom": "slurmstepd: error: Detected 1 oom_kill event in StepId=4242001.batch. Some of the step tasks have been "
           "OOM Killed.\n",
    "time": "slurmstepd: error: *** JOB 4242001 ON node01 CANCELLED AT 2026-12-07T10:00:00 DUE TO TIME LIMIT ***\n",
    "before": "/var/spool/slurmd/job4242001/slurm_script: line 3: .venv/bin/python: No such file or directory\n",
}


def _attempts(folder, endings, start_id=4242001):
    folder.mkdir(parents=True, exist_ok=True)
    for number, ending in enumerate(endings):
        (folder / f"{start_id + number}.log").write_text("Building DAG of jobs...\n" + ENDINGS[ending])
    return attempt_logs(folder, time.time() - 60)


@pytest.mark.parametrize("endings", [list(pair) for pair in itertools.product(ENDINGS, repeat=2)],
                         ids=lambda endings: "-".join(endings))
def test_the_last_attempt_has_more_memory_for_each_oom_kill_alone(tmp_path, endings):
    """The retry rule, for any sequence of endings of the first two attempts: a time-out keeps the memory, an
    out-of-memory kill adds the first attempt's, and an attempt that ended before medseg started (no sign of an
    out-of-memory kill) keeps it too; it had doubled it. Attempt 2 reads attempt 1's log alone."""
    logs = _attempts(tmp_path / "rule_infer" / "batch001", endings)
    assert memory_attempts(logs, 3) == 1 + endings.count("oom")
    assert memory_attempts(logs, 2) == 1 + (endings[0] == "oom")
    assert memory_attempts(logs, 1) == 1


def test_two_time_outs_then_an_oom_kill(tmp_path):
    """A fourth attempt after time-out, time-out, oom: twice the memory; after oom, time-out, oom: three times."""
    assert memory_attempts(_attempts(tmp_path / "a", ["time", "time", "oom"]), 4) == 2
    assert memory_attempts(_attempts(tmp_path / "b", ["oom", "time", "oom"]), 4) == 3


def test_only_this_runs_logs_count_and_in_the_order_of_their_job_ids(tmp_path):
    """A log older than the run (an earlier run's failed attempt, kept for 10 days) is not one of its attempts; the
    attempts are ordered by their SLURM job ids, not their names as text."""
    folder = tmp_path / "rule_evaluate" / "batch002"
    folder.mkdir(parents=True)
    old = folder / "999.log"
    old.write_text(ENDINGS["oom"])
    os.utime(old, (time.time() - 3600, time.time() - 3600))
    (folder / "10000.log").write_text(ENDINGS["time"])
    (folder / "9999.log").write_text(ENDINGS["oom"])
    logs = attempt_logs(folder, time.time() - 60)
    assert [log.name for log in logs] == ["9999.log", "10000.log"]
    assert memory_attempts(logs, 2) == 2 and memory_attempts(logs, 3) == 2
    assert attempt_logs(tmp_path / "none", 0) == []
    assert killed_for_memory(tmp_path / "none.log") is False


def test_a_jobs_own_log_path_as_the_plugin_names_it(tmp_path):
    """The plugin writes an attempt's log to <slurm-logdir>/rule_<rule>/<batch>/<job id>.log; a job finds its own from
    the folder the workflow tells it and $SLURM_JOB_ID, and has none outside SLURM or untold."""
    environ = {LOGDIR_VARIABLE: str(tmp_path / "slurm-logs"), "SLURM_JOB_ID": "4242007"}
    assert job_log_path("batch003.infer", environ) == str(tmp_path / "slurm-logs" / "rule_infer" / "batch003"
                                                          / "4242007.log")
    assert job_log_path("batch003.infer", {"SLURM_JOB_ID": "4242007"}) is None
    assert job_log_path("batch003.infer", {LOGDIR_VARIABLE: str(tmp_path)}) is None
    assert job_log_path(None, environ) is None
    # the plugin's choice of folder: absolute as given, relative to the folder Snakemake runs in, else its default
    assert slurm_logdir("/scratch/logs", tmp_path).as_posix() == "/scratch/logs"
    assert slurm_logdir("logs", tmp_path) == tmp_path / "logs"
    assert slurm_logdir(None, tmp_path) == tmp_path / ".snakemake" / "slurm_logs"


def test_a_job_that_never_started_is_recorded_with_its_slurm_log(tmp_path):
    """A scoring job whose three attempts ended before medseg started: its case with a segmentation is recorded as
    failed at evaluate naming the job, its attempts and SLURM's log of the last, with that log's last line; a case
    without a reference is none of its business; the job's record holds the error, so that the report is made. (The
    cases are 4 slices each: their segmentation by the job before is all this test needs of them, where the cohort's
    16-slice phantoms took 20-26 s of the default test run.)"""
    import json

    from medseg.cohort import InferOptions, Sample, infer_cases
    from medseg.cohort.check import failed_jobs
    from medseg.cohort.records import ResultsFolder
    from medseg.cohort.unstarted_jobs import record_unstarted_job
    from medseg.synthetic import write_phantom

    data = tmp_path / "data"
    data.mkdir()
    write_phantom(data / "a.nii.gz", data / "a_label.nii.gz", shape=(48, 48, 4), seed=5)
    write_phantom(data / "b.nii.gz", None, shape=(48, 48, 4), seed=6)
    results = tmp_path / "results"
    samples = [Sample("a", data / "a.nii.gz", data / "a_label.nii.gz"), Sample("b", data / "b.nii.gz", None)]
    assert infer_cases(samples, results, InferOptions("phantom")).count("ok") == 2
    logs = _attempts(tmp_path / "slurm-logs" / "rule_evaluate" / "batch001", ["before"] * 3)
    summary = record_unstarted_job(samples, results, "batch001.evaluate", logs, str(results / "logs" / "x.log"))
    assert [(case.case_id, case.outcome) for case in summary.cases] == [("a", "failed")]
    error = ("every attempt (3) ended before medseg started or recorded anything (its batch script failed, or its "
             f"node; SLURM's log of the last attempt ends: {ENDINGS['before'].strip()})")
    assert failed_jobs(results) == [("batch001.evaluate", {"error": error, "error_type": "JobFailedError",
                                                           "log": str(results / "logs" / "x.log"),
                                                           "slurm_log": str(logs[-1])})]
    failure = json.loads(ResultsFolder(results).failure("a").read_text())
    assert failure["stage"] == "evaluate" and failure["job"]["slurm_log"] == str(logs[-1])
    assert ResultsFolder(results).segmentation("a").exists()  # its segmentation kept


def test_the_job_itself_finds_the_same_earlier_attempts_as_the_run(tmp_path):
    """The memory a job tells medseg is worked out again by the job's own Snakemake process, which SLURM runs: it had
    the attempt alone (three times the memory after two time-outs, where SLURM gave it the first's). Asked from inside
    attempt 3 (its own job id), the two logs just before its own count, as the run that submitted it counted this
    run's first two; an earlier run's log of the same job does not."""
    folder = tmp_path / "rule_infer" / "batch001"
    folder.mkdir(parents=True)
    earlier_run = folder / "4241990.log"
    earlier_run.write_text(ENDINGS["oom"])
    os.utime(earlier_run, (time.time() - 3600, time.time() - 3600))
    for job_id, ending in (("4242001", "time"), ("4242005", "time"), ("4242009", "before")):
        (folder / f"{job_id}.log").write_text(ENDINGS[ending])
    from medseg.cohort.slurm_logs import earlier_attempts

    by_the_run = earlier_attempts(folder, 3, since=time.time() - 60)
    by_the_job = earlier_attempts(folder, 3, job_id="4242009")
    assert [log.name for log in by_the_run] == [log.name for log in by_the_job] == ["4242001.log", "4242005.log"]
    assert memory_attempts(by_the_job, 3) == 1
    assert earlier_attempts(folder, 1, job_id="4242001") == []
    assert [log.name for log in earlier_attempts(folder, 2, job_id="4242005")] == ["4242001.log"]


@pytest.mark.parametrize("line", [
    "slurmstepd: error: Detected 1 oom_kill event in StepId=4242001.batch. Some of the step tasks have been OOM "
    "Killed.",
    "slurmstepd: error: Detected 2 oom-kill event(s) in step 4242001.batch cgroup. Some of your processes may have "
    "been killed by the cgroup out-of-memory handler.",
    "slurmstepd-node01: error: Job 4242001 exceeded memory limit (10889240 > 4194304), being killed",
    "srun: error: node01: task 0: Out Of Memory",
])
def test_each_of_slurms_own_out_of_memory_lines_counts(tmp_path, line):
    """SLURM says an attempt was killed for memory in several ways: slurmstepd's oom_kill event (cgroup enforcement,
    as 21.08 on words it, and as older releases did), its own kill for a job past its memory limit (JobAcctGather's
    enforcement: 'exceeded memory limit ..., being killed', which was not read as one), srun's task line."""
    log = tmp_path / "4242001.log"
    log.write_text(f"Building DAG of jobs...\n{line}\n*** JOB 4242001 ON node01 CANCELLED AT 2026-12-07T10:00:00 ***\n")
    assert killed_for_memory(log) is True


@pytest.mark.parametrize("line", [
    # the rule's own log, which the profile's show-failed-logs puts in SLURM's log of a failed attempt: medseg's words
    "[2026-12-07 10:00:00] case a: torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB",
    "case b: data/b.nii.gz: the process working on this case died once without reporting an error (crashed, killed "
    "or out of memory); not tried again",
    "slurmstepd: error: Exceeded step memory limit at some point.",  # a warning: nothing was killed
])
def test_words_that_are_not_slurms_out_of_memory_kill_do_not_count(tmp_path, line):
    """An attempt that SLURM ended at its time limit keeps its memory on the retry, also where its log holds the words
    'out of memory' that are not SLURM's: the profile's show-failed-logs copies the rule's log (medseg's lines on a
    case, torch's CUDA message) into SLURM's log of the attempt, and any 'out of memory' there counted as a kill."""
    log = tmp_path / "4242001.log"
    log.write_text(f"Building DAG of jobs...\nLogfile results/logs/infer/batch001.log:\n{line}\n"
                   + ENDINGS["time"])
    assert killed_for_memory(log) is False


def test_an_attempt_without_its_slurm_log_keeps_the_rule_without_logs(tmp_path):
    """Where SLURM's logs of the earlier attempts are not where the run looks (the plugin's array jobs write
    rule_infer/<array id>_<task>.log; a log folder moved or cleaned), nothing said the attempts were not killed for
    memory, yet every retry kept the first attempt's memory: a batch killed for memory failed three times alike. The
    rule without logs (one more for each attempt that did not note a time-out) holds then; and the job's own Snakemake
    process, asked from inside attempt 2, takes no earlier run's log of the same batch for this run's missing one."""
    from medseg.cohort.slurm_logs import earlier_attempts, retry_memory_attempts

    folder = tmp_path / "rule_infer" / "batch001"
    assert retry_memory_attempts(folder, 3, fallback=3) == 3  # no log at all: as Snakemake's attempt gives
    folder.mkdir(parents=True)
    start = time.time() - 60
    earlier_run = folder / "4241990.log"
    earlier_run.write_text(ENDINGS["oom"])
    os.utime(earlier_run, (start - 3600, start - 3600))
    # this run's attempt 1 (4242001) left no log; attempt 2 is 4242005
    assert earlier_attempts(folder, 2, since=start, job_id="4242005") == []
    assert retry_memory_attempts(folder, 2, 2, since=start) == 2
    assert retry_memory_attempts(folder, 2, 2, since=start, job_id="4242005") == 2
    # with every earlier attempt's log there, the logs decide, and the same in the run and in the job
    (folder / "4242001.log").write_text(ENDINGS["time"])
    assert retry_memory_attempts(folder, 2, 2, since=start) == 1
    assert retry_memory_attempts(folder, 2, 2, since=start, job_id="4242005") == 1


def test_a_job_killed_for_memory_before_it_recorded_anything_is_not_said_to_have_a_broken_script(tmp_path):
    """A job that SLURM killed for memory on every attempt before medseg wrote its record (a model that does not fit
    the job's memory) was recorded as one whose 'batch script failed, or its node': the words pointed at the Python
    environment, where SLURM's own line says memory. It says the out-of-memory kill now; the other stays."""
    from cohort_cases import write_cohort_data

    from medseg.cohort import Sample
    from medseg.cohort.check import failed_jobs
    from medseg.cohort.unstarted_jobs import record_unstarted_job

    data = write_cohort_data(tmp_path / "data", seeds=(5,))
    samples = [Sample("a", data / "a.nii.gz", data / "a_label.nii.gz")]
    for ending, results in (("oom", tmp_path / "killed"), ("before", tmp_path / "broken")):
        logs = _attempts(tmp_path / ending / "rule_infer" / "batch001", [ending] * 3)
        record_unstarted_job(samples, results, "batch001.infer", logs)
    killed = failed_jobs(tmp_path / "killed")[0][1]["error"]
    assert killed == ("every attempt (3) ended before medseg recorded anything (SLURM killed the last for memory; "
                      f"SLURM's log of the last attempt ends: {ENDINGS['oom'].strip()})"), killed
    broken = failed_jobs(tmp_path / "broken")[0][1]["error"]
    assert broken == ("every attempt (3) ended before medseg started or recorded anything (its batch script failed, "
                      f"or its node; SLURM's log of the last attempt ends: {ENDINGS['before'].strip()})"), broken


def _array_task_log(folder, name, first, own, ending=None):
    """An array task's SLURM log as snakemake-executor-plugin-slurm 2.8 and its jobstep 0.6 leave it: the Snakemake
    process of the array's command (its first job's, ``--executor slurm-jobstep`` with the other tasks' commands),
    then the one that runs the task's own job, then SLURM's line on how the attempt ended; ``own`` None: the batch
    script failed before Snakemake started."""
    command = "  Command: /venv/lib/python3.11/site-packages/snakemake/__main__.py --snakefile /repo/Snakefile "
    text = "" if own is None else (
        f"SNAKEMAKE\n{command}--target-jobs {first} --allowed-rules infer --attempt 1 --executor slurm-jobstep "
        "--jobs 1 --mode remote --slurm-jobstep-array-execs=eyIyIjogIjc4ZGEifQ==\n"
        f"rule infer:\n    wildcards: batch={first.split('=')[1]}\n"
        f"SNAKEMAKE\n{command}--target-jobs {own} --allowed-rules infer --attempt 1 --mode remote\n"
        f"rule infer:\n    wildcards: batch={own.split('=')[1]}\n")
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + (ENDINGS[ending] if ending else ""))
    return path


def test_the_logs_of_array_tasks_count_for_the_job_each_ran(tmp_path):
    """With --slurm-array-jobs the plugin's tasks write <slurm-logdir>/rule_infer/<array id>_<task>.log, beside the
    jobs' folders, and a task's number says nothing of its job: a batch's earlier attempts were not found there, and
    its retries fell back to the rule without logs (twice the memory after a time-out). Each task's log now counts for
    the job whose command it ran (not the array's first, whose command every task's log starts with), ordered with the
    job's plain logs (a retry submitted alone) by SLURM job id; a task whose batch script failed counts for none."""
    from medseg.cohort.slurm_logs import array_task_job, earlier_attempts, retry_memory_attempts

    rule = tmp_path / "slurm-logs" / "rule_infer"
    _array_task_log(rule, "4242001_1.log", "infer:batch=a", "infer:batch=a", "oom")
    second = _array_task_log(rule, "4242001_2.log", "infer:batch=a", "infer:batch=c", "time")
    _array_task_log(rule, "4242001_3.log", "infer:batch=a", "infer:batch=b", "oom")
    broken = _array_task_log(rule, "4242001_4.log", "infer:batch=a", None, "before")
    retry = rule / "c" / "4242010.log"
    retry.parent.mkdir()
    retry.write_text(ENDINGS["oom"])
    assert array_task_job(second) == ("infer", "c") and array_task_job(broken) is None
    since = time.time() - 60
    assert [log.name for log in attempt_logs(rule / "c", since)] == ["4242001_2.log", "4242010.log"]
    assert [log.name for log in attempt_logs(rule / "b", since)] == ["4242001_3.log"]
    # c: a time-out, then an out-of-memory kill: its third attempt asks for twice the memory, not the fallback's 3
    assert retry_memory_attempts(rule / "c", 3, fallback=3, since=since) == 2
    # b: killed for memory in the array; its retry (attempt 2) asks for twice the memory, from that log
    assert retry_memory_attempts(rule / "b", 2, fallback=1, since=since) == 2
    # asked from inside c's third attempt, a task of a later array (its own log named <array id>_<task>)
    assert [log.name for log in earlier_attempts(rule / "c", 3, job_id="4242020_1")] == ["4242001_2.log",
                                                                                      "4242010.log"]
    assert [log.name for log in earlier_attempts(rule / "c", 2, job_id="4242010")] == ["4242001_2.log"]


def _array_payload(jobs):
    """The plugin's --slurm-jobstep-array-execs for ``jobs`` (task number → ``infer:batch=x``): base64 JSON of each
    task's Snakemake command, zlib-compressed and hex-encoded, as snakemake-executor-plugin-slurm 2.8 writes it."""
    import base64
    import json
    import zlib

    execs = {str(task): zlib.compress(f"python -m snakemake --target-jobs '{target}' --mode remote".encode()).hex()
             for task, target in jobs.items()}
    return base64.b64encode(json.dumps(execs).encode()).decode()


def test_an_array_task_whose_batch_script_failed_is_matched_through_the_arrays_commands(tmp_path):
    """An array task whose batch script failed before Snakemake started leaves a log that names no job: its attempt
    counted for none, so a job whose every attempt failed so was short of one and went unrecorded (no report). The
    array's first command, which every task that started logs, carries each task's command (the chunk's first task's
    own, the others' in --slurm-jobstep-array-execs): the task's number names its job there. Where no task of the
    array started, it still counts for none."""
    from medseg.cohort.slurm_logs import array_task_job, earlier_attempts

    rule = tmp_path / "slurm-logs" / "rule_infer"
    command = "  Command: /venv/lib/python3.11/site-packages/snakemake/__main__.py --snakefile /repo/Snakefile "
    payload = _array_payload({6: "infer:batch=c", 7: "infer:batch=b"})  # a chunk of tasks 5-7: a's the first
    started = rule / "4242001_6.log"
    started.parent.mkdir(parents=True)
    started.write_text(f"SNAKEMAKE\n{command}--target-jobs infer:batch=a --executor slurm-jobstep --mode remote "
                       f"--slurm-jobstep-array-execs={payload}\nSNAKEMAKE\n{command}--target-jobs infer:batch=c "
                       "--mode remote\n" + ENDINGS["time"])
    first = _array_task_log(rule, "4242001_5.log", "infer:batch=a", None, "before")
    broken = _array_task_log(rule, "4242001_7.log", "infer:batch=a", None, "before")
    lone = _array_task_log(rule, "4242002_1.log", "infer:batch=a", None, "before")  # no task of its array started
    retry = rule / "b" / "4242010.log"
    retry.parent.mkdir()
    retry.write_text(ENDINGS["before"])
    assert array_task_job(broken) is None  # its own log names no job
    since = time.time() - 60
    assert attempt_logs(rule / "b", since) == [broken, retry]
    assert attempt_logs(rule / "a", since) == [first]
    assert attempt_logs(rule / "c", since) == [started]
    assert lone not in attempt_logs(rule / "a", since)
    assert earlier_attempts(rule / "b", 2, job_id="4242010") == [broken]


def _failed_task(output, task):
    """A failed array task, as snakemake-executor-plugin-slurm 2.8 reports it and Snakemake 9 logs it."""
    return (f"[Tue Dec  8 01:16:53 2026]\nError in rule infer:\n    message: SLURM-job '{task}' failed, SLURM status "
            "is: 'FAILED'. Reason: Unknown.For further error details see the cluster/cloud log and the log files of "
            f"the involved rule(s).\n    jobid: 3\n    output: {output}\n    log: /r/logs/infer/b.log, /s/rule_infer/b/"
            f"{task}.log (check log file(s) for error details)\n    shell:\n        medseg\n        (command exited "
            f"with non-zero exit code)\n    external_jobid: {task}\nTrying to restart job 3.\n")


def test_an_array_whose_every_task_failed_before_snakemake_started_is_matched_through_snakemakes_log(tmp_path):
    """Where every task of an array failed before Snakemake started (the Python environment on no node), no log of
    the array names a job; Snakemake's log of the run does, for each failed task: its SLURM id and its job's record.
    The run's own records read it there; without it the logs count for no job."""
    from medseg.cohort.unstarted_jobs import failed_array_tasks

    rule = tmp_path / "slurm-logs" / "rule_infer"
    first = _array_task_log(rule, "4242001_1.log", "infer:batch=a", None, "before")
    second = _array_task_log(rule, "4242001_2.log", "infer:batch=a", None, "before")
    log = tmp_path / "run.snakemake.log"
    log.write_text("Submitted array job with Snakemake IDs 3,2 and SLURM job ID 4242001.\n"
                   + _failed_task("/r/jobs/b.infer.json", "4242001_1")
                   + _failed_task("/r/jobs/a.infer.json", "4242001_2")
                   + _failed_task("/r/jobs/b.infer.json", "4242003"))  # a retry alone: its own folder names it
    tasks = failed_array_tasks(log)
    assert tasks == {"4242001_1": ("infer", "b"), "4242001_2": ("infer", "a")}
    since = time.time() - 60
    assert attempt_logs(rule / "b", since) == [] and attempt_logs(rule / "a", since) == []
    assert attempt_logs(rule / "b", since, tasks) == [first]
    assert attempt_logs(rule / "a", since, tasks) == [second]
    assert failed_array_tasks(tmp_path / "gone.log") == {} and failed_array_tasks(None) == {}


def test_an_array_tasks_own_log_path_as_slurm_names_it(tmp_path):
    """An array task's SLURM log is <slurm-logdir>/rule_<rule>/<$SLURM_ARRAY_JOB_ID>_<$SLURM_ARRAY_TASK_ID>.log
    (the plugin's %A_%a): a job named <batch>/<$SLURM_JOB_ID>.log in its records, a file that is not there."""
    from medseg.cohort.slurm_logs import attempt_id

    environ = {LOGDIR_VARIABLE: str(tmp_path), "SLURM_JOB_ID": "4242003", "SLURM_ARRAY_JOB_ID": "4242001",
               "SLURM_ARRAY_TASK_ID": "3"}
    assert attempt_id(environ) == "4242001_3"
    assert job_log_path("batch003.evaluate", environ) == str(tmp_path / "rule_evaluate" / "4242001_3.log")
    assert attempt_id({"SLURM_JOB_ID": "4242003"}) == "4242003" and attempt_id({}) is None


def _refusal(rule, output, message):
    """A job sbatch refused, as snakemake-executor-plugin-slurm 2.8 reports it and Snakemake 9 logs it."""
    return (f"[Mon Dec  7 22:21:07 2026]\nError in rule {rule}:\n    message: SLURM sbatch failed. The error message "
            f"was '{message}'.\n    sbatch call:\n        sbatch --parsable --job-name 7b81 --output "
            f"/x/slurm-logs/rule_{rule}/b/%j.log --comment rule_{rule}_wildcards_b -A lab42 -p cpu "
            "--wrap=\"python -m snakemake --target-jobs 'infer:batch=b'\"\nFor further error details see the "
            f"cluster/cloud log and the log files of the involved rule(s).\n    jobid: 3\n    output: {output}\n"
            f"    log: /r/logs/{rule}/b.log (check log file(s) for error details)\n    shell:\n        medseg\n")


def test_sbatchs_refusals_are_read_from_snakemakes_log(tmp_path):
    """sbatch's refusal of a job leaves no SLURM log: the plugin gives its message as the job's error, which
    Snakemake logs. Each attempt's is read there, for the job whose record the error names as its output; an array's
    refusal names the array's sbatch message for each of its jobs; a log not there names none."""
    from medseg.cohort.unstarted_jobs import refused_submissions

    quota = ("sbatch: error: QOSMaxSubmitJobPerUserLimit\nsbatch: error: Batch job submission failed: Job violates "
             "accounting/QOS policy (job submit limit, user's size and/or time limits)")
    array = ("SLURM sbatch failed for array job submission (tasks 1-2). The error message was 'sbatch: error: "
             "invalid partition specified: gpu2'.\n    sbatch call:\n        sbatch --array=1-2\n")
    part = ("Error in rule evaluate:\n    message: Part of failed array sbatch submission (tasks 1-2); see log for "
            "details.\n    jobid: {id}\n    output: /r/jobs/{batch}.evaluate.json\n")
    log = tmp_path / "run.snakemake.log"
    log.write_text("Building DAG of jobs...\n" + _refusal("infer", "/r/jobs/b.infer.json", quota)
                   + _refusal("infer", "/r/jobs/b.infer.json", "sbatch: error: Batch job submission failed: "
                              "Requested time limit is invalid (missing or exceeds some limit)")
                   + array + part.format(id=5, batch="a") + part.format(id=6, batch="c"))
    found = refused_submissions(log)
    assert found == {
        "b.infer": [quota.replace("\n", " "), "sbatch: error: Batch job submission failed: Requested time limit is "
                                              "invalid (missing or exceeds some limit)"],
        "a.evaluate": ["sbatch: error: invalid partition specified: gpu2"],
        "c.evaluate": ["sbatch: error: invalid partition specified: gpu2"]}
    assert refused_submissions([tmp_path / "none.log", log]) == found  # the logs onerror is given
    assert refused_submissions(tmp_path / "none.log") == {} and refused_submissions(None) == {}


def test_a_job_sbatch_refused_is_recorded_with_sbatchs_message(tmp_path):
    """An inference job sbatch refused on each attempt ran nowhere: its case is recorded as failed naming sbatch's
    last message and no SLURM log; one refused once after two attempts that ran counts all three."""
    from cohort_cases import write_cohort_data

    from medseg.cohort import Sample
    from medseg.cohort.check import failed_jobs
    from medseg.cohort.unstarted_jobs import record_unstarted_job

    data = write_cohort_data(tmp_path / "data", seeds=(5,))
    results = tmp_path / "results"
    samples = [Sample("a", data / "a.nii.gz", data / "a_label.nii.gz")]
    said = "sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified"
    summary = record_unstarted_job(samples, results, "batch001.infer", [], None, refused=[said] * 3)
    assert [(case.case_id, case.outcome) for case in summary.cases] == [("a", "failed")]
    assert failed_jobs(results)[0][1]["error"] == f"every attempt (3) was refused by sbatch, and never ran: {said}"
    assert failed_jobs(results)[0][1].get("slurm_log") is None
    logs = _attempts(tmp_path / "slurm-logs" / "rule_evaluate" / "batch001", ["before"] * 2)
    record_unstarted_job(samples, results, "batch001.evaluate", logs, None, refused=[said])
    error = dict(failed_jobs(results))["batch001.evaluate"]["error"]
    assert error.startswith("every attempt (3) ended before medseg started or recorded anything")
    assert error.endswith(f"; sbatch refused 1 of them: {said})")
    # the last attempt may be the one sbatch refused, which left no log: the log named is of the last that ran
    assert f"; SLURM's log of the last attempt that ran ends: {ENDINGS['before'].strip()}; sbatch refused" in error


def test_an_array_task_ended_as_its_jobs_snakemake_starts_counts_for_that_job(tmp_path):
    """A task of an array other than the first runs its job's command as the main process gave it (``--executor
    slurm-jobstep``, without the other tasks' commands), and that process the job's own Snakemake process: a task that
    ended (out of time, out of memory, its node) before the last started named no job, its log counting for none, and
    the job's retries fell back to the rule without logs. The array's first command alone carries
    ``--slurm-jobstep-array-execs``: any other names the task's own job."""
    from medseg.cohort.slurm_logs import array_task_job

    command = "  Command: /venv/lib/python3.11/site-packages/snakemake/__main__.py --snakefile /repo/Snakefile "
    first = (f"{command}--target-jobs infer:batch=a --allowed-rules infer --attempt 1 --executor slurm-jobstep "
             "--jobs 1 --mode remote --slurm-jobstep-array-execs=eyIyIjogIjc4ZGEifQ==\n")
    log = tmp_path / "rule_infer" / "4242001_2.log"
    log.parent.mkdir(parents=True)
    log.write_text(f"SNAKEMAKE\n{first}rule infer:\n    wildcards: batch=a\nSNAKEMAKE\n{command}--target-jobs "
                   "infer:batch=c --allowed-rules infer --attempt 1 --executor slurm-jobstep --jobs 1 --mode remote\n"
                   + ENDINGS["time"])
    assert array_task_job(log) == ("infer", "c")
    attempt = tmp_path / "rule_infer" / "c"
    attempt.mkdir()
    assert [path.name for path in attempt_logs(attempt, time.time() - 60)] == ["4242001_2.log"]
    # the first task's log: the array's command, then its own job's (the same job), without the jobstep executor
    task = tmp_path / "rule_infer" / "4242001_1.log"
    task.write_text(f"SNAKEMAKE\n{first}SNAKEMAKE\n{command}--target-jobs infer:batch=a --attempt 1\n")
    assert array_task_job(task) == ("infer", "a")
    task.write_text(f"SNAKEMAKE\n{first}")  # ended before its own job's process started: none
    assert array_task_job(task) is None


def test_a_rule_folder_is_listed_once_for_all_its_jobs_until_it_changes(tmp_path, monkeypatch):
    """Each job's attempts are looked for among the array tasks' logs in its rule's folder, which holds a folder a
    batch: a run listed it again for every job it looked at (2,000 batches: 8 s where 0.16 s had done, the listing
    alone, before any log was read). It is listed once until it changes: a task's log added since is found (the folder
    listed again while it changed within the last 2 s: its time has coarse ticks), and one that names its job only
    later (its job's process not started yet) counts once it does."""
    rule = tmp_path / "slurm-logs" / "rule_infer"
    for batch in range(40):
        (rule / f"batch{batch:03d}").mkdir(parents=True)
    listed = []
    real_scandir = os.scandir

    def scandir(path="."):
        listed.append(Path(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    since = time.time() - 60
    os.utime(rule, (since, since))  # its batches' folders made a while ago
    assert all(attempt_logs(rule / f"batch{batch:03d}", since) == [] for batch in range(40))
    assert listed.count(rule) == 1, len(listed)
    task = _array_task_log(rule, "4242001_2.log", "infer:batch=batch000", None)  # started: no job named yet
    assert attempt_logs(rule / "batch007", since) == []
    task.write_text(_array_task_log(tmp_path / "x", "4242001_2.log", "infer:batch=batch000",
                                    "infer:batch=batch007").read_text())
    assert attempt_logs(rule / "batch007", since) == [task]
    assert attempt_logs(rule / "batch008", since) == []


def _unstarted_error(tmp_path, slurm_endings, rule_log=None, rule_log_age_s=None):
    """The error recorded for a scoring job of one case (never segmented: nothing to record for it, the job's record
    alone) whose SLURM logs end with ``slurm_endings`` (one an attempt, the last ended 30 s ago, each before it 30 s
    earlier) and whose rule log holds ``rule_log`` (last written ``rule_log_age_s`` seconds ago)."""
    from medseg.cohort import Sample
    from medseg.cohort.check import failed_jobs
    from medseg.cohort.unstarted_jobs import record_unstarted_job

    results = tmp_path / "results"
    samples = [Sample("a", tmp_path / "a.nii.gz", tmp_path / "a_label.nii.gz")]
    folder = tmp_path / "slurm-logs" / "rule_evaluate" / "batch001"
    folder.mkdir(parents=True)
    now = time.time()
    for number, ending in enumerate(slurm_endings):
        path = folder / f"{4242001 + number}.log"
        path.write_text("Building DAG of jobs...\n" + ending)
        age = 30 * (len(slurm_endings) - number)
        os.utime(path, (now - age, now - age))
    logs = attempt_logs(folder, now - 3600)
    job_log = results / "logs" / "evaluate" / "batch001.log"
    if rule_log is not None:
        job_log.parent.mkdir(parents=True, exist_ok=True)
        job_log.write_text(rule_log)
        os.utime(job_log, (now - rule_log_age_s, now - rule_log_age_s))
    record_unstarted_job(samples, results, "batch001.evaluate", logs, str(job_log))
    return failed_jobs(results)[0][1]["error"], logs


# what the job's Snakemake process leaves in SLURM's log where the workflow's planning failed on the node
PLANNING = ("medseg: error: /shared/samples.tsv: cannot be read (No such file or directory)\n"
            "[Mon Dec  7 23:15:21 2026]\nError in rule evaluate:\n    jobid: 0\n")
MEDSEGS = "loading phantom\nmedseg: error: device: cuda in the workflow config: CUDA is not available on this machine\n"


def test_a_job_whose_snakemake_failed_with_medsegs_error_on_every_attempt_names_it(tmp_path):
    """Every attempt's Snakemake process stopped with medseg's own error (the sheet not on the node): the job is
    recorded with that error, not as one whose batch script or node failed."""
    error, logs = _unstarted_error(tmp_path, [PLANNING] * 3)
    assert error == ("every attempt (3) ended before medseg recorded anything, the last with medseg's error: "
                     "/shared/samples.tsv: cannot be read (No such file or directory) (SLURM's log of the last "
                     f"attempt: {logs[-1]})")


def test_a_job_whose_medseg_failed_on_every_attempt_names_its_error_from_the_rule_log(tmp_path):
    """medseg ran and stopped with its error before it recorded anything (its line in the rule's log, which the last
    attempt wrote, after the attempt before it ended): the job is recorded with that error."""
    error, logs = _unstarted_error(tmp_path, ["Error in rule evaluate:\n"] * 3, MEDSEGS, rule_log_age_s=10)
    assert error == ("every attempt (3) ended before medseg recorded anything, the last with medseg's error: device: "
                     "cuda in the workflow config: CUDA is not available on this machine (SLURM's log of the last "
                     f"attempt: {logs[-1]})")


def test_a_job_recorded_by_the_run_names_the_type_of_medsegs_error_as_the_job_would(tmp_path):
    """A job whose attempts ended with medseg's DeviceError before recording anything was recorded by the run as a
    JobFailedError, where a last attempt that recorded itself names DeviceError for the same cause: the type a
    workflow job says on the line before its error line is the record's type; a line without one stays a
    JobFailedError."""
    from medseg.cohort.check import failed_jobs

    typed = MEDSEGS.replace("medseg: error:", "medseg: error type: DeviceError\nmedseg: error:")
    _unstarted_error(tmp_path / "typed", ["Error in rule evaluate:\n"] * 3, typed, rule_log_age_s=10)
    job = failed_jobs(tmp_path / "typed" / "results")[0][1]
    assert job["error_type"] == "DeviceError"
    assert job["error"].startswith("every attempt (3) ended before medseg recorded anything, the last with medseg's "
                                   "error: device: cuda in the workflow config: CUDA is not available")
    _unstarted_error(tmp_path / "untyped", ["Error in rule evaluate:\n"] * 3, MEDSEGS, rule_log_age_s=10)
    assert failed_jobs(tmp_path / "untyped" / "results")[0][1]["error_type"] == "JobFailedError"
    # a type line of an earlier error does not name a later one's type
    earlier = typed + "medseg: error: another\n"
    _unstarted_error(tmp_path / "earlier", ["Error in rule evaluate:\n"] * 3, earlier, rule_log_age_s=10)
    assert failed_jobs(tmp_path / "earlier" / "results")[0][1]["error_type"] == "JobFailedError"


def test_an_earlier_attempts_rule_log_does_not_name_the_last_attempts_error(tmp_path):
    """The rule's log was written before the second attempt ended (the last attempt's batch script failed before
    medseg started, and wrote none): its medseg error is not the last attempt's, which is recorded as before."""
    error, _ = _unstarted_error(tmp_path, [ENDINGS["before"]] * 3, MEDSEGS, rule_log_age_s=75)
    assert error.startswith("every attempt (3) ended before medseg started or recorded anything (its batch script "
                            f"failed, or its node; SLURM's log of the last attempt ends: {ENDINGS['before'].strip()})")


def test_a_usage_error_of_medsegs_command_counts_as_its_error(tmp_path):
    from medseg.cohort.unstarted_jobs import medseg_error_line

    log = tmp_path / "batch001.log"
    log.write_text("medseg: error: an earlier one\nmedseg cohort infer: error: Invalid value for '--model': "
                   "Path '/shared/model' does not exist. Try 'medseg cohort infer --help'.\nSnakemake's line\n")
    assert medseg_error_line(log) == ("Invalid value for '--model': Path '/shared/model' does not exist. Try 'medseg "
                                      "cohort infer --help'.")
    assert medseg_error_line(tmp_path / "none.log") is None


def test_an_earlier_runs_rule_log_does_not_name_the_error_of_the_one_attempt_that_ran(tmp_path):
    """One attempt ran (its batch script failed: no rule log written), sbatch refused the other two; the rule's log is
    an earlier run's, with that run's medseg error: it is not this run's error, and the job is recorded as one whose
    batch script failed. The same log written after the run started names the error, and the two attempts that never
    ran are not said to have ended with it."""
    from medseg.cohort import Sample
    from medseg.cohort.check import failed_jobs
    from medseg.cohort.unstarted_jobs import record_unstarted_job

    samples = [Sample("a", tmp_path / "a.nii.gz", tmp_path / "a_label.nii.gz")]
    now = time.time()
    logs = _attempts(tmp_path / "slurm-logs" / "rule_evaluate" / "batch001", ["before"])
    said = "sbatch: error: QOSMaxSubmitJobPerUserLimit"
    for age_s, results in ((86400, tmp_path / "earlier"), (10, tmp_path / "this")):
        job_log = results / "logs" / "evaluate" / "batch001.log"
        job_log.parent.mkdir(parents=True)
        job_log.write_text(MEDSEGS)
        os.utime(job_log, (now - age_s, now - age_s))
        record_unstarted_job(samples, results, "batch001.evaluate", logs, str(job_log), refused=[said] * 2,
                             since=now - 3600)
    assert failed_jobs(tmp_path / "earlier")[0][1]["error"] == (
        "every attempt (3) ended before medseg started or recorded anything (its batch script failed, or its node; "
        f"SLURM's log of the last attempt that ran ends: {ENDINGS['before'].strip()}; sbatch refused 2 of them: "
        f"{said})")
    assert failed_jobs(tmp_path / "this")[0][1]["error"] == (
        "every attempt (3) ended before medseg recorded anything, the last that ran with medseg's error: device: cuda "
        "in the workflow config: CUDA is not available on this machine (SLURM's log of the last attempt that ran: "
        f"{logs[-1]}; sbatch refused 2 of them: {said})")


def test_a_long_error_copied_into_the_record_marks_its_cut_and_names_the_log_that_holds_it_whole(tmp_path):
    """A job's error copied from a log into its record (medseg's error line from the rule's log, the last line of
    SLURM's log) was cut at 300 characters without a mark: the record read as if the message ended there. The cut is
    marked, naming the log that holds the whole line; a line short enough stays whole, unmarked."""
    from medseg.cohort.unstarted_jobs import last_log_line, medseg_error_line

    long_error = "device: cuda in the workflow config: " + "x" * 400
    error, logs = _unstarted_error(tmp_path, ["Error in rule evaluate:\n"] * 3, f"medseg: error: {long_error}\n",
                                   rule_log_age_s=10)
    rule_log = tmp_path / "results" / "logs" / "evaluate" / "batch001.log"
    # the job's log, as the record names it (its "log"): jobs that failed alike keep one error
    assert error == ("every attempt (3) ended before medseg recorded anything, the last with medseg's error: "
                     f"{long_error[:299]}… (cut; the whole line in the job's log) (SLURM's log of the last attempt: "
                     f"{logs[-1]})")
    assert medseg_error_line(rule_log) == f"{long_error[:299]}… (cut; the whole line in {rule_log})"
    slurm_log = tmp_path / "4242009.log"
    slurm_log.write_text("Building DAG of jobs...\n" + "/var/spool/slurmd/job4242009/slurm_script: " + "y" * 400 + "\n")
    said = last_log_line(slurm_log)
    assert said.endswith(f"… (cut; the whole line in {slurm_log})") and len(said.partition("…")[0]) == 299
    slurm_log.write_text("Building DAG of jobs...\n" + ENDINGS["before"])
    assert last_log_line(slurm_log) == ENDINGS["before"].strip()
