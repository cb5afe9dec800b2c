"""SLURM's own logs of a cohort run's jobs: where each attempt's is, and what it says of why the attempt ended.

snakemake-executor-plugin-slurm (2.8) has each job write its output, and SLURM's own lines about it, to
``<slurm-logdir>/rule_<rule>/<wildcards>/<SLURM job id>.log`` (``rule_infer/batch001/4242001.log``); it keeps the
log of a failed job and deletes those of the jobs that succeeded. SLURM writes there why it ended an attempt: an
``oom_kill`` event (``slurmstepd: error: Detected 1 oom_kill event in StepId=4242001.batch. Some of the step tasks
have been OOM Killed.``) or ``*** JOB 4242001 ON node01 CANCELLED AT ... DUE TO TIME LIMIT ***``. That is the only
evidence of an out-of-memory kill that reaches the workflow: Snakemake gives a rule's resource functions the attempt
alone, so every retry asked for more memory, also after a time-out, a node's failure or a batch script that failed
before medseg started (:func:`memory_attempts`).

With ``--slurm-array-jobs`` the plugin submits the ready jobs of a rule as one array, whose tasks write
``<slurm-logdir>/rule_<rule>/<array id>_<task>.log`` (``rule_infer/4242001_3.log``: no folder of the job's wildcards,
whatever the plugin records; SLURM's ``%A_%a``), and a job retried alone (the only one of its rule ready) writes the
plain log beside the others. A task's number says nothing of which job it ran: its log does, in the command line of the
Snakemake process that ran the job (``--target-jobs infer:batch=batch003``; every task's log starts with the array's
first job's command, the one carrying ``--slurm-jobstep-array-execs``, then its own job's: :func:`array_task_job`).
A task whose batch script failed before Snakemake started logs no command: its number is looked up among the array's
commands, which that first command carries (the chunk's first task's own, the others' in its payload), in the log of
another task of its array; where none of them started, its log counts for no job but where Snakemake's log of the run
names it (the run's records of jobs that never started, :func:`attempt_logs`' ``tasks``).

The workflow tells its jobs the folder (:data:`LOGDIR_VARIABLE`), so that a job names its own log in its records
(:func:`job_log_path`) and the report points at it.
"""

from __future__ import annotations

import functools
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

__all__ = ["LOGDIR_VARIABLE", "RUN_START_VARIABLE", "array_task_job", "attempt_id", "attempt_logs",
           "earlier_attempts", "job_log_path", "killed_for_memory", "memory_attempts", "retry_memory_attempts",
           "slurm_logdir"]

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
_ARRAY_LOG = re.compile(r"([0-9]+)_([0-9]+)\.log")  # an array task's log: <array id>_<task>.log (SLURM's %A_%a)
# the job a Snakemake process runs, in its command line (Snakemake quotes a value holding a comma)
_TARGET = re.compile(r"--target-jobs\s+['\"]?([A-Za-z_][A-Za-z0-9_]*):batch=['\"]?([^'\"\s]+)")
_COMMAND_BYTES = 16 * 2**20  # how far into a task's log its job's command is looked for (the array's first command
# carries the other tasks' commands: about 1.5 kB a task, before its own)


def slurm_logdir(setting: str | os.PathLike | None, workdir: str | os.PathLike) -> Path:
    """The folder the SLURM plugin writes the jobs' logs to, as it chooses it: ``setting`` (``--slurm-logdir``)
    where absolute, else under ``workdir`` (the folder Snakemake runs in), and ``.snakemake/slurm_logs`` there
    where it is not set."""
    if setting:
        return Path(setting) if Path(setting).is_absolute() else Path(workdir, setting)
    return Path(workdir, ".snakemake", "slurm_logs")


def attempt_id(environ: Mapping[str, str] | None = None) -> str | None:
    """The running attempt's name among its job's SLURM logs: ``<array id>_<task>`` for a task of an array
    (``$SLURM_ARRAY_JOB_ID``, ``$SLURM_ARRAY_TASK_ID``), else ``$SLURM_JOB_ID``; None outside a SLURM job."""
    environ = os.environ if environ is None else environ
    array, task = environ.get("SLURM_ARRAY_JOB_ID"), environ.get("SLURM_ARRAY_TASK_ID")
    if array and task and array.isdigit() and task.isdigit():
        return f"{array}_{task}"
    return environ.get("SLURM_JOB_ID") or None


def job_log_path(job: str | None, environ: Mapping[str, str] | None = None) -> str | None:
    """SLURM's log of the running attempt of the workflow's ``job`` (``batch001.infer``):
    ``<slurm-logdir>/rule_infer/batch001/<$SLURM_JOB_ID>.log``, or for a task of an array
    ``<slurm-logdir>/rule_infer/<$SLURM_ARRAY_JOB_ID>_<$SLURM_ARRAY_TASK_ID>.log``; None outside a SLURM job, or where
    the workflow did not tell its jobs the folder (a local run, a job started by hand)."""
    environ = os.environ if environ is None else environ
    folder, attempt = environ.get(LOGDIR_VARIABLE), attempt_id(environ)
    if not job or not folder or not attempt:
        return None
    batch, _, rule = job.rpartition(".")
    if not batch or not rule:
        return None
    if "_" in attempt:
        return str(Path(folder, f"rule_{rule}", f"{attempt}.log"))
    return str(Path(folder, f"rule_{rule}", batch, f"{attempt}.log"))


def array_task_job(log: str | os.PathLike) -> tuple[str, str] | None:
    """The workflow's job (rule, batch) that the array task whose SLURM log is ``log`` ran: the ``--target-jobs`` of
    the first command line in it that is not the array's own (the array's first job's, the one carrying
    ``--slurm-jobstep-array-execs``: a task's own job's command is named as soon as its first process starts);
    None where the log names none (a batch script that failed before Snakemake started) or cannot be read."""
    try:
        stat = os.stat(log)
    except OSError:
        return None
    return _array_task_job(str(log), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=4096)
def _array_task_job(log: str, mtime_ns: int, size: int) -> tuple[str, str] | None:
    read = 0
    try:
        with open(log, "rb") as file:
            for raw in file:
                read += len(raw)
                # the array's first command alone carries the others' (--slurm-jobstep-array-execs): any other is
                # the task's own job's (as the main process gave it, --executor slurm-jobstep, or its job's process)
                if b"--target-jobs" in raw and b"--slurm-jobstep-array-execs" not in raw:
                    found = _TARGET.search(raw.decode("utf-8", errors="replace"))
                    if found:
                        return found.group(1), found.group(2)
                if read > _COMMAND_BYTES:
                    break
    except OSError:
        return None
    return None


_SETTLED_NS = 2 * 10**9  # how long before its listing a folder's last change must be for the listing to be kept
_TASK_LISTINGS: dict[str, tuple[int, list[str]]] = {}  # a rule folder's array task logs, as of its change time
_TASK_JOBS: dict[str, tuple[str, str]] = {}  # an array task log's job, once it names one (a log is only appended to)


def _array_task_logs(rule_folder: Path) -> list[Path]:
    """The array tasks' logs in ``rule_folder`` (``<slurm-logdir>/rule_infer``), listed again only where the folder
    changed (a log added or removed changes its time): each job's retry and each job without a record looked its
    rule's folder through, which holds a folder a batch, a run's every such call listing them all again."""
    try:
        changed = os.stat(rule_folder).st_mtime_ns
    except OSError:
        return []
    cached = _TASK_LISTINGS.get(str(rule_folder))
    if cached is None or cached[0] != changed:
        try:
            with os.scandir(rule_folder) as entries:
                names = [entry.name for entry in entries if _ARRAY_LOG.fullmatch(entry.name)]
        except OSError:
            return []
        cached = (changed, names)
        # a folder's time has the clock's coarse ticks: a log added within the tick of this listing would leave the
        # time as it is, so a listing is kept only of a folder that changed a while before it
        if time.time_ns() - changed > _SETTLED_NS:
            _TASK_LISTINGS[str(rule_folder)] = cached
    return [rule_folder / name for name in cached[1]]


_PAYLOAD = re.compile(r"--slurm-jobstep-array-execs[= ]['\"]?([A-Za-z0-9+/=]+)")


def _array_jobs(log: Path) -> dict[int, tuple[str, str]]:
    """The jobs of the tasks of the array (one sbatch of it: tasks FIRST-LAST) whose task's log is ``log``, by task
    number, from the array's first command there (:func:`array_task_job`): its own ``--target-jobs`` is the job of
    the chunk's first task, and its ``--slurm-jobstep-array-execs`` (base64 JSON of each other task's command,
    zlib-compressed, hex-encoded) carries the others'. Empty where the log holds none (its task's batch script failed
    too), or it cannot be read or decoded."""
    try:
        stat = os.stat(log)
    except OSError:
        return {}
    return _array_jobs_of(str(log), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=1024)
def _array_jobs_of(log: str, mtime_ns: int, size: int) -> dict[int, tuple[str, str]]:
    import base64
    import binascii
    import json
    import zlib

    read = 0
    try:
        with open(log, "rb") as file:
            for raw in file:
                read += len(raw)
                if b"--slurm-jobstep-array-execs" in raw:
                    line = raw.decode("utf-8", errors="replace")
                    first, payload = _TARGET.search(line), _PAYLOAD.search(line)
                    if first is None or payload is None:
                        return {}
                    try:
                        execs = json.loads(base64.b64decode(payload.group(1)))
                        commands = {int(task): zlib.decompress(bytes.fromhex(text)).decode("utf-8", "replace")
                                    for task, text in execs.items()}
                    except (ValueError, TypeError, AttributeError, binascii.Error, zlib.error):
                        return {}
                    own = _ARRAY_LOG.fullmatch(Path(log).name)
                    start = min(commands) - 1 if commands else int(own.group(2)) if own else None
                    jobs = {} if start is None else {start: (first.group(1), first.group(2))}
                    for task, command in commands.items():
                        target = _TARGET.search(command)
                        if target is not None:
                            jobs[task] = (target.group(1), target.group(2))
                    return jobs
                if read > _COMMAND_BYTES:
                    break
    except OSError:
        return {}
    return {}


def _task_job(path: Path, array_jobs: Callable[[str], Mapping[int, tuple[str, str]]] | None = None
              ) -> tuple[str, str] | None:
    """:func:`array_task_job`, kept once found: a task's log names its job for good. A log that names none (its batch
    script failed before Snakemake started) is matched through ``array_jobs`` (array id → its tasks' jobs,
    :func:`_array_jobs` of a log of its array): the job its task number ran."""
    job = _TASK_JOBS.get(str(path))
    if job is None:
        job = array_task_job(path)
        named = _ARRAY_LOG.fullmatch(path.name)
        if job is None and named is not None and array_jobs is not None:
            job = array_jobs(named.group(1)).get(int(named.group(2)))
        if job is not None:
            _TASK_JOBS[str(path)] = job
    return job


def _log_order(path: Path) -> tuple[int, int]:
    """A log's place among a job's attempts: by SLURM job id, an array task's by its array's id and its number."""
    array = _ARRAY_LOG.fullmatch(path.name)
    if array:
        return int(array.group(1)), int(array.group(2))
    return (int(path.stem), 0) if path.stem.isdigit() else (0, 0)


def attempt_logs(folder: str | os.PathLike, since: float,
                 tasks: Mapping[str, tuple[str, str]] | None = None) -> list[Path]:
    """The logs of one job's attempts started by a run that started at ``since`` (Unix time; a log changed since), by
    SLURM job id: its attempts in order. ``folder`` is the job's (``<slurm-logdir>/rule_infer/batch001``): its logs,
    and those of the array tasks in the rule's folder above it (``rule_infer/4242001_3.log``) that ran this job
    (:func:`array_task_job`; a task whose batch script failed before Snakemake started, whose log names no job, by its
    number among its array's commands in another task's log, else by ``tasks``: ``<array id>_<task>`` → (rule,
    batch), as Snakemake's log of the run names each failed task's job, :func:`~medseg.cohort.unstarted_jobs.
    failed_array_tasks`). Empty where there is none or the folders cannot be read."""
    folder = Path(folder)
    found = []
    try:
        entries = list(folder.glob("*.log"))
    except OSError:
        entries = []
    job = (folder.parent.name.removeprefix("rule_"), folder.name)
    listed = _array_task_logs(folder.parent)
    arrays: dict[str, Mapping[int, tuple[str, str]]] = {}

    def array_jobs(array: str) -> Mapping[int, tuple[str, str]]:
        """The jobs of ``array``'s tasks, from the first of its tasks' logs that carries its commands (once a call)."""
        if array not in arrays:
            logs = (path for path in listed if path.name.startswith(f"{array}_"))
            found = next((jobs for path in logs if (jobs := _array_jobs(path))), {})
            told = {int(name.partition("_")[2]): job for name, job in (tasks or {}).items()
                    if name.partition("_")[0] == array and name.partition("_")[2].isdigit()}
            arrays[array] = {**told, **found}
        return arrays[array]

    tasks = [path for path in listed if _task_job(path, array_jobs) == job]
    for path in entries + tasks:
        try:
            if path.stat().st_mtime < since:
                continue
        except OSError:
            continue
        found.append(path)
    return sorted(found, key=lambda path: (_log_order(path), path.name))


def earlier_attempts(folder: str | os.PathLike, attempt: int, since: float | None = None,
                     job_id: str | None = None) -> list[Path]:
    """SLURM's logs of attempts 1 to ``attempt - 1`` of the job whose logs are in ``folder``, in order: asked by the
    run that submits it (``since``: the time the run started), its first ones since; asked from inside an attempt
    (``job_id``: its own SLURM job id, whose Snakemake process works its resources out again), the ones just before
    its own log, by job id, of those since ``since`` too (an earlier run's log of the same batch is none of this run's
    attempts; ``job_id`` is ``<array id>_<task>`` inside a task of an array: :func:`attempt_id`). Both find the same
    logs where every attempt wrote one."""
    if attempt <= 1:
        return []
    logs = attempt_logs(folder, 0.0 if since is None else since)
    own = Path(f"{job_id}.log") if job_id is not None else None
    if own is not None and _log_order(own) != (0, 0):
        before = [path for path in logs if (0, 0) < _log_order(path) < _log_order(own)]
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
    time-out, medseg/cohort/time_outs.py). Logs not where the run looks (a log folder moved or cleaned; the log of an
    array's task whose batch script failed before Snakemake started, as did every other task of its array: no log
    names its job) are no evidence that no attempt was killed for memory, and a retry kept at the memory that was
    killed fails alike."""
    if attempt <= 1:
        return 1
    logs = earlier_attempts(folder, attempt, since, job_id)
    if len(logs) < attempt - 1:
        return fallback
    return memory_attempts(logs, attempt)
