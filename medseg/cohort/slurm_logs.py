"""SLURM's own logs of a cohort run's jobs: where each attempt's is, and what it says of why the attempt ended.

snakemake-executor-plugin-slurm (2.8) has each job write its output, and SLURM's own lines about it, to
``<slurm-logdir>/rule_<rule>/<wildcards>/<SLURM job id>.log`` (``rule_infer/batch001/4242001.log``); it keeps the
log of a failed job and deletes those of the jobs that succeeded. SLURM writes there why it ended an attempt: an
``oom_kill`` event (``slurmstepd: error: Detected 1 oom_kill event in StepId=4242001.batch. Some of the step tasks
have been OOM Killed.``) or ``*** JOB 4242001 ON node01 CANCELLED AT ... DUE TO TIME LIMIT ***``. That is the only
evidence of an out-of-memory kill that reaches the workflow: Snakemake gives a rule's resource functions the attempt
alone, so every retry asked for more memory, also after a time-out, a node's failure or a batch script that failed
before medseg started (:func:`memory_attempts`).

The workflow tells its jobs the folder (:data:`LOGDIR_VARIABLE`), so that a job names its own log in its records
(:func:`job_log_path`) and the report points at it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["LOGDIR_VARIABLE", "RUN_START_VARIABLE", "attempt_logs", "earlier_attempts", "job_log_path",
           "killed_for_memory", "memory_attempts", "retry_memory_attempts", "slurm_logdir"]

LOGDIR_VARIABLE = "MEDSEG_SLURM_LOGDIR"  # the run's slurm-logdir, absolute, as the workflow tells its jobs
RUN_START_VARIABLE = "MEDSEG_SLURM_RUN_START"  # the Unix time the run started planning, as it tells its jobs
# SLURM's own lines for an attempt killed for memory, each at the start of a line: slurmstepd's oom_kill event (cgroup
# enforcement: "Detected 1 oom_kill event in StepId=...", older "Detected 1 oom-kill event(s) in step ..."), its kill of
# a job past its limit (JobAcctGather enforcement: "Job 42 exceeded memory limit (... > ...), being killed") and srun's
# "task 0: Out Of Memory". Other words for it do not count: the profile's show-failed-logs copies the rule's own log
# (medseg's lines on a case, torch's "CUDA out of memory") into SLURM's log of a failed attempt
_OOM = re.compile(r"^(?:slurmstepd(?:-[^:\s]+)?: error: (?:Detected \d+ oom[_-]kill event"
                  r"|(?:Job|Step) \S+ exceeded memory limit .*being killed)"
                  r"|srun: error: \S+: tasks? [0-9,-]+: Out Of Memory)", re.IGNORECASE | re.MULTILINE)
_TAIL_BYTES = 256 * 1024  # SLURM writes its lines as the job ends: the end of a long log holds them


def slurm_logdir(setting: str | os.PathLike | None, workdir: str | os.PathLike) -> Path:
    """The folder the SLURM plugin writes the jobs' logs to, as it chooses it: ``setting`` (``--slurm-logdir``)
    where absolute, else under ``workdir`` (the folder Snakemake runs in), and ``.snakemake/slurm_logs`` there
    where it is not set."""
    if setting:
        return Path(setting) if Path(setting).is_absolute() else Path(workdir, setting)
    return Path(workdir, ".snakemake", "slurm_logs")


def job_log_path(job: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    """SLURM's log of the running attempt of the workflow's ``job`` (``batch001.infer``):
    ``<slurm-logdir>/rule_infer/batch001/<$SLURM_JOB_ID>.log``; None outside a SLURM job, or where the workflow did
    not tell its jobs the folder (a local run, a job started by hand)."""
    environ = os.environ if environ is None else environ
    folder, job_id = environ.get(LOGDIR_VARIABLE), environ.get("SLURM_JOB_ID")
    if not job or not folder or not job_id:
        return None
    batch, _, rule = job.rpartition(".")
    if not batch or not rule:
        return None
    return str(Path(folder, f"rule_{rule}", batch, f"{job_id}.log"))


def attempt_logs(folder: str | os.PathLike, since: float) -> list[Path]:
    """The logs in ``folder`` (one job's: ``<slurm-logdir>/rule_infer/batch001``) of attempts started by a run that
    started at ``since`` (Unix time; a log changed since), by SLURM job id: its attempts in order. Empty where there
    is none or the folder cannot be read."""
    found = []
    try:
        entries = list(Path(folder).glob("*.log"))
    except OSError:
        return []
    for path in entries:
        try:
            if path.stat().st_mtime >= since:
                found.append(path)
        except OSError:
            continue
    return sorted(found, key=lambda path: (int(path.stem) if path.stem.isdigit() else 0, path.name))


def earlier_attempts(folder: str | os.PathLike, attempt: int, since: float | None = None,
                     job_id: str | None = None) -> list[Path]:
    """SLURM's logs of attempts 1 to ``attempt - 1`` of the job whose logs are in ``folder``, in order: asked by the
    run that submits it (``since``: the time the run started), its first ones since; asked from inside an attempt
    (``job_id``: its own SLURM job id, whose Snakemake process works its resources out again), the ones just before
    its own log, by job id, of those since ``since`` too (an earlier run's log of the same batch is none of this run's
    attempts). Both find the same logs where every attempt wrote one."""
    if attempt <= 1:
        return []
    logs = attempt_logs(folder, 0.0 if since is None else since)
    if job_id is not None and job_id.isdigit():
        before = [path for path in logs if path.stem.isdigit() and int(path.stem) < int(job_id)]
        return before[-(attempt - 1):]
    return logs[:attempt - 1]


def killed_for_memory(log: str | os.PathLike) -> bool:
    """Whether SLURM's log of an attempt says it was killed for memory (an ``oom_kill`` event, out of memory);
    False where the log cannot be read."""
    try:
        with open(log, "rb") as file:
            file.seek(0, os.SEEK_END)
            file.seek(max(0, file.tell() - _TAIL_BYTES))
            text = file.read().decode("utf-8", errors="replace")
    except OSError:
        return False
    return bool(_OOM.search(text))


def memory_attempts(logs: Sequence[str | os.PathLike], attempt: int) -> int:
    """What attempt ``attempt`` of a job multiplies its first attempt's memory by, from SLURM's logs of its earlier
    attempts (``logs``, in order; :func:`attempt_logs`): one more for each of the first ``attempt - 1`` that says it
    was killed for memory. A time-out, a node's failure, a batch script that failed before medseg started, a log not
    there: no evidence of an out-of-memory kill, and the memory stays."""
    return 1 + sum(killed_for_memory(log) for log in list(logs)[:max(0, attempt - 1)])


def retry_memory_attempts(folder: str | os.PathLike, attempt: int, fallback: int, since: float | None = None,
                          job_id: str | None = None) -> int:
    """What attempt ``attempt`` of the job whose SLURM logs are in ``folder`` multiplies its first attempt's memory by:
    :func:`memory_attempts` on its :func:`earlier_attempts` (``since``, ``job_id`` as there) where each earlier attempt
    has its log there, else ``fallback`` (the rule without logs: one more for each earlier attempt that did not note a
    time-out, medseg/cohort/time_outs.py). Logs not where the run looks (the plugin's array jobs write
    ``rule_infer/<array id>_<task>.log``; a log folder moved or cleaned) are no evidence that no attempt was killed
    for memory, and a retry kept at the memory that was killed fails alike."""
    if attempt <= 1:
        return 1
    logs = earlier_attempts(folder, attempt, since, job_id)
    if len(logs) < attempt - 1:
        return fallback
    return memory_attempts(logs, attempt)
