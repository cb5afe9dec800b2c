"""A cohort job whose every attempt ended before medseg recorded anything: its batch's record, written by the run.

A job that fails on its last attempt for a reason of the whole job records its cases as failed itself
(:mod:`medseg.cohort.run`), and one stopped at its time limit does too (:mod:`medseg.cohort.job_deadline`), so that
the report, which needs every batch's record, is made. An attempt that SLURM ends before medseg runs (the batch
script failed: a Python environment not on the node, a module load; a node's failure; a kill before the job's
Snakemake started it) leaves nothing: the batch had no record, the report was not made, and the run ended with
Snakemake's "At least one job did not complete successfully", its other cases in no report. The workflow's own
process, once the run has failed, records such a job in its place (:func:`record_unstarted_job`), with what is known:
its attempts and SLURM's log of the last (:mod:`medseg.cohort.slurm_logs`), and medseg's own error where the last
attempt started medseg and it stopped with its ``medseg: error:`` line before it wrote a record (an error the job's
last attempt does not record itself: the job's Snakemake process, whose planning failed on the node, in SLURM's log;
the command's, in the rule's log): "ended before medseg started" would name the batch script or the node instead;
then the report is made.

An attempt that sbatch refused (an account or partition it does not know, a time limit past the partition's, a
submission limit of the QOS) ran nowhere and left no log. snakemake-executor-plugin-slurm (2.8) reports it as the
job's failure, with sbatch's own message, in Snakemake's log (``Error in rule infer:`` / ``message: SLURM sbatch
failed. The error message was '...'`` / ``output: RESULTS/jobs/batch001.infer.json``): :func:`refused_submissions`
reads it there, and such a job is recorded as failed with that message.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from medseg.cohort.records import ResultsFolder
from medseg.cohort.run import (
    InferOptions,
    JobSummary,
    _job_failed,
    _job_failed_case,
    _job_failed_score,
    _JobFailure,
    write_job_record,
)
from medseg.cohort.samples import Sample
from medseg.cohort.slurm_logs import killed_for_memory
from medseg.errors import JobFailedError

__all__ = ["ERROR_TYPE_LINE", "failed_array_tasks", "last_log_line", "medseg_error_line", "medseg_error_type",
           "record_unstarted_job", "refused_submissions"]

_TAIL_BYTES = 16 * 1024
# the plugin's report of a job sbatch refused, as Snakemake logs the job's error: the rule, sbatch's message (one
# job's; an array's names the array's sbatch error, logged before it), then the job's details, its output among them
_REFUSED = re.compile(r"^Error in rule [A-Za-z_][A-Za-z0-9_]*:\n\s+message: SLURM sbatch failed\. The error message "
                      r"was '(.*?)'\.\n\s+sbatch call:.*?^\s+output: ([^\n]*)", re.DOTALL | re.MULTILINE)
_REFUSED_ARRAY = re.compile(r"SLURM sbatch failed for array job submission \(tasks ([0-9]+-[0-9]+)\)\. The error "
                            r"message was '(.*?)'\.\n", re.DOTALL)
_ARRAY_PART = re.compile(r"^Error in rule [A-Za-z_][A-Za-z0-9_]*:\n\s+message: Part of failed array sbatch "
                         r"submission \(tasks ([0-9]+-[0-9]+)\).*?^\s+output: ([^\n]*)", re.DOTALL | re.MULTILINE)
_RECORD = re.compile(r"(?:^|[\s,/])jobs/([^/\s,]+\.(?:infer|evaluate))\.json(?=$|[\s,])")
_MESSAGE_CHARS = 300
# the one line medseg's CLI (``medseg cohort infer: error:`` for a usage error), and the workflow's planning in a job's
# own Snakemake process, end with on an error
_MEDSEG_ERROR = re.compile(r"^medseg(?: [a-z]+)*: error: (.*)$")
# what a workflow job (and the workflow's planning on a node) says on the line before its error's line: the error's
# type, which the line itself does not name (medseg/cli/cohort.py)
ERROR_TYPE_LINE = "medseg: error type: "
_ERROR_TYPE = re.compile(r"^medseg: error type: ([A-Za-z_][A-Za-z0-9_]*)$")


def _snakemake_text(snakemake_log: str | os.PathLike | Sequence[str | os.PathLike] | None) -> str:
    """The text of Snakemake's log of the run (or its logs, as Snakemake gives ``onerror`` them); empty where there
    is none or none can be read."""
    if snakemake_log is None:
        return ""
    if isinstance(snakemake_log, (str, os.PathLike)):
        snakemake_log = [snakemake_log]
    text = ""
    for path in snakemake_log:
        try:
            with open(path, encoding="utf-8", errors="replace") as file:
                text += file.read()
        except OSError:
            continue
    return text


_ERROR_BLOCK = re.compile(r"^Error in rule [A-Za-z_][A-Za-z0-9_]*:$", re.MULTILINE)
_OUTPUT = re.compile(r"^\s+output: ([^\n]*)$", re.MULTILINE)
_EXTERNAL_TASK = re.compile(r"^\s+external_jobid: ([0-9]+_[0-9]+)\s*$", re.MULTILINE)


def failed_array_tasks(snakemake_log: str | os.PathLike | Sequence[str | os.PathLike] | None
                       ) -> Mapping[str, tuple[str, str]]:
    """The workflow's job (rule, batch: ``("infer", "batch001")``) of each array task whose failure Snakemake's log of
    the run (``snakemake_log``, as for :func:`refused_submissions`) reports, by the task's SLURM id
    (``4242001_3``): the plugin's error names it (``external_jobid``), and Snakemake the job's record as its output.
    A task whose batch script failed before Snakemake started leaves a log that names no job; where every task of
    its array did so, no log names one (:func:`medseg.cohort.slurm_logs.attempt_logs`). Empty where none is named."""
    text = _snakemake_text(snakemake_log)
    found: dict[str, tuple[str, str]] = {}
    starts = [match.start() for match in _ERROR_BLOCK.finditer(text)]
    for start, end in zip(starts, [*starts[1:], len(text)]):
        block = text[start:end]
        task, output = _EXTERNAL_TASK.search(block), _OUTPUT.search(block)
        if task is None or output is None:
            continue
        records = _RECORD.findall(output.group(1))
        if len(records) == 1:
            batch, _, stage = records[0].rpartition(".")
            found[task.group(1)] = (stage, batch)
    return found


def _one_line(text: str) -> str:
    line = " ".join(part.strip() for part in text.splitlines() if part.strip())
    return line if len(line) <= _MESSAGE_CHARS else line[:_MESSAGE_CHARS - 1] + "…"


def refused_submissions(snakemake_log: str | os.PathLike | Sequence[str | os.PathLike] | None
                        ) -> Mapping[str, list[str]]:
    """The inference and scoring jobs (``batch001.infer``) whose submission sbatch refused, as Snakemake's log of the
    run (``snakemake_log``; or its logs, as Snakemake gives ``onerror`` them) tells: each job's sbatch messages, one
    an attempt it refused, in order (lines joined, cut to 300 characters). Empty where the log names none or cannot
    be read."""
    text = _snakemake_text(snakemake_log)
    found: dict[str, list[str]] = {}
    events = [(match.start(), match.group(2), match.group(1)) for match in _REFUSED.finditer(text)]
    arrays: dict[str, list[tuple[int, str]]] = {}
    for match in _REFUSED_ARRAY.finditer(text):
        arrays.setdefault(match.group(1), []).append((match.start(), match.group(2)))
    for match in _ARRAY_PART.finditer(text):
        said = [message for start, message in arrays.get(match.group(1), []) if start < match.start()]
        events.append((match.start(), match.group(2), said[-1] if said else "an array's sbatch failed"))
    for _, output, message in sorted(events):
        for job in _RECORD.findall(output):
            found.setdefault(job, []).append(_one_line(message))
    return found


def _cut(line: str, log: str | os.PathLike, named: str | None) -> str:
    """A log's ``line`` as a record copies it: at most 300 characters of it, a cut marked, naming the log that holds
    it whole (``named``, else ``log``'s path): the record read as if the message ended where it was cut."""
    if len(line) <= _MESSAGE_CHARS:
        return line
    return f"{line[:_MESSAGE_CHARS - 1]}… (cut; the whole line in {named or os.fspath(log)})"


def last_log_line(log: str | os.PathLike | None, named: str | None = None) -> str | None:
    """The last line of SLURM's log of an attempt that is not blank (SLURM's own line on why it ended, or the batch
    script's error), cut to 300 characters, the cut marked: ``… (cut; the whole line in LOG)``, LOG the log's path
    or ``named`` (``SLURM's log of the last attempt``, where the message names it); None where there is none or the
    log cannot be read."""
    lines = _log_tail(log)
    if lines is None:
        return None
    text = next((line.strip() for line in reversed(lines) if line.strip()), None)
    return None if text is None else _cut(text, log, named)


def _log_tail(log: str | os.PathLike | None) -> list[str] | None:
    """The lines of the end of ``log``; None where there is no log or it cannot be read."""
    if log is None:
        return None
    try:
        with open(log, "rb") as file:
            file.seek(0, os.SEEK_END)
            file.seek(max(0, file.tell() - _TAIL_BYTES))
            return file.read().decode("utf-8", errors="replace").splitlines()
    except OSError:
        return None


def medseg_error_line(log: str | os.PathLike | None, named: str | None = None) -> str | None:
    """medseg's own error in a log of an attempt (SLURM's, which holds the job's Snakemake process, whose planning
    ends with it; or the rule's, which holds medseg's command): the message of its last ``medseg: error:`` line (or
    a command's usage error, ``medseg cohort infer: error:``), cut to 300 characters as :func:`last_log_line` cuts
    it; None where there is none or the log cannot be read."""
    lines = _log_tail(log)
    if lines is None:
        return None
    said = next((match for line in reversed(lines) if (match := _MEDSEG_ERROR.match(line.strip()))), None)
    return None if said is None else _cut(said.group(1), log, named)


def medseg_error_type(log: str | os.PathLike | None) -> str | None:
    """The type of the error whose line :func:`medseg_error_line` reads in ``log``, where the line before it names it
    (:data:`ERROR_TYPE_LINE`, as a workflow job says it: ``DeviceError``); None where it does not (a command of an
    older medseg, a usage error), or there is no such line or log."""
    lines = _log_tail(log)
    if lines is None:
        return None
    stripped = [line.strip() for line in lines]
    last = next((index for index in range(len(stripped) - 1, -1, -1) if _MEDSEG_ERROR.match(stripped[index])), None)
    typed = _ERROR_TYPE.match(stripped[last - 1]) if last else None
    return None if typed is None else typed.group(1)


def _last_attempts_rule_log(job_log: str | None, slurm_logs: Sequence[str | os.PathLike],
                            since: float | None) -> str | None:
    """The rule's log (``job_log``), which each attempt's medseg command writes anew, where the last attempt wrote
    it: changed after the attempt before it ended (its SLURM log's last change) and after the run started
    (``since``), which alone tells an earlier run's log (kept beside a failed job) where no earlier attempt left a
    log. None otherwise: an earlier attempt's or run's, or none, or one whose age nothing tells."""
    if job_log is None or not slurm_logs:
        return None
    try:
        changed = os.stat(job_log).st_mtime
        before = os.stat(slurm_logs[-2]).st_mtime if len(slurm_logs) > 1 else None
    except OSError:
        return None
    bounds = [bound for bound in (before, since) if bound is not None]
    return job_log if bounds and changed >= max(bounds) else None


def record_unstarted_job(samples: Sequence[Sample], results: str | os.PathLike, job: str,
                         slurm_logs: Sequence[str | os.PathLike], job_log: str | None = None,
                         options: InferOptions | None = None, package=None,
                         refused: Sequence[str] = (), since: float | None = None) -> JobSummary:
    """Record the workflow's ``job`` (``batch001.infer`` or ``batch001.evaluate``, on ``samples``) whose every attempt
    ended before medseg recorded anything (``slurm_logs``: SLURM's logs of its attempts, in order): its cases not
    finished earlier are recorded as failed for it (a case kept from an earlier run stays, as a job's own last attempt
    keeps it; ``options`` and ``package``, the run's inference settings and model, tell an inference job's), naming
    the job, its attempts and SLURM's log of the last with its last line; then the job's record
    (``RESULTS/jobs/<job>.json``, with ``job_error``) is written, so that the report can be made. A later run voids
    that record and runs the job again, as after any failed job. ``refused``: sbatch's messages on the attempts it
    refused (:func:`refused_submissions`), which left no log; the error names the last. ``since``: when the run started
    (Unix time): the rule's log, where it holds medseg's error, counts only if changed since. Returns the job's
    summary."""
    stage = job.rpartition(".")[2]
    if stage not in ("infer", "evaluate"):
        raise ValueError(f"{job}: not an inference or scoring job")
    folder = ResultsFolder(results)
    last = str(slurm_logs[-1]) if slurm_logs else None
    # a line cut to fit names the log that holds it whole as the error names it (one error for jobs that failed alike)
    slurm_named = f"SLURM's log of the last attempt{' that ran' if refused else ''}"
    said = last_log_line(last, slurm_named)
    count = len(slurm_logs)
    # SLURM's own line on an out-of-memory kill (a model that does not fit the job's memory kills medseg before it
    # records anything): memory, not the batch script or the node
    killed = last is not None and killed_for_memory(last)
    # medseg's own error, where the last attempt started medseg (or the job's Snakemake process, whose planning
    # failed): SLURM's log holds the latter's line, the rule's log the former's
    rule_log = _last_attempts_rule_log(job_log, slurm_logs, since)
    own = None if killed else (medseg_error_line(last, slurm_named) or medseg_error_line(rule_log, "the job's log"))
    # its type, where the log says it: the type the job's own record names for the same cause (a DeviceError)
    own_type = None if own is None else medseg_error_type(last if medseg_error_line(last) else rule_log)
    if refused and not slurm_logs:  # it never ran: sbatch's own words
        count = len(refused)
        error = JobFailedError(f"{'its one attempt was' if count == 1 else f'every attempt ({count}) was'} refused "
                               f"by sbatch, and never ran: {refused[-1]}")
    elif own is not None:
        count += len(refused)
        # the last attempt's error alone is known: an earlier one may have ended otherwise, or never run
        error = JobFailedError(
            ("its one attempt ended with medseg's error before medseg recorded anything" if count == 1 else
             f"every attempt ({count}) ended before medseg recorded anything, the last{' that ran' if refused else ''} "
             "with medseg's error")
            + f": {own} (SLURM's log of the last attempt{' that ran' if refused else ''}: {last}"
            + (f"; sbatch refused {len(refused)} of them: {refused[-1]}" if refused else "") + ")")
    else:
        count += len(refused)
        error = JobFailedError(
            f"{'its one attempt' if count == 1 else f'every attempt ({count})' if count else 'every attempt'} ended "
            + ("before medseg recorded anything (SLURM killed the last for memory" if killed else
               "before medseg started or recorded anything (its batch script failed, or its node")
            # where sbatch refused some, the last attempt may be one that left no log: the log is the last that ran's
            + (f"; SLURM's log of the last attempt{' that ran' if refused else ''} ends: {said}" if said else "")
            + (f"; sbatch refused {len(refused)} of them: {refused[-1]}" if refused else "") + ")")
    summary = JobSummary(stage=stage)
    failure = _JobFailure(stage, job, job_log, error_type=own_type or "", slurm_log=last)
    if stage == "infer":
        options = options if options is not None else InferOptions(model="")
        record_case = lambda sample, failed, kept: _job_failed_case(sample, folder, failed, kept, options,  # noqa: E731
                                                                    package)
    else:
        record_case = lambda sample, failed, kept: _job_failed_score(sample, folder, failed, kept)  # noqa: E731
    _job_failed(samples, folder, summary, error, failure, None, record_case)
    write_job_record(Path(results, "jobs", f"{job}.json"), summary)
    return summary
