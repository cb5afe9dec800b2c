"""A cohort job whose every attempt ended before medseg recorded anything: its batch's record, written by the run.

A job that fails on its last attempt for a reason of the whole job records its cases as failed itself
(:mod:`medseg.cohort.run`), and one stopped at its time limit does too (:mod:`medseg.cohort.job_deadline`), so that
the report, which needs every batch's record, is made. An attempt that SLURM ends before medseg runs (the batch
script failed: a Python environment not on the node, a module load; a node's failure; a kill before the job's
Snakemake started it) leaves nothing: the batch had no record, the report was not made, and the run ended with
Snakemake's "At least one job did not complete successfully", its other cases in no report. The workflow's own
process, once the run has failed, records such a job in its place (:func:`record_unstarted_job`), with what is known:
its attempts and SLURM's log of the last (:mod:`medseg.cohort.slurm_logs`); then the report is made.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
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

__all__ = ["last_log_line", "record_unstarted_job"]

_TAIL_BYTES = 16 * 1024


def last_log_line(log: str | os.PathLike | None) -> str | None:
    """The last line of SLURM's log of an attempt that is not blank (SLURM's own line on why it ended, or the batch
    script's error), cut to 300 characters; None where there is none or the log cannot be read."""
    if log is None:
        return None
    try:
        with open(log, "rb") as file:
            file.seek(0, os.SEEK_END)
            file.seek(max(0, file.tell() - _TAIL_BYTES))
            lines = file.read().decode("utf-8", errors="replace").splitlines()
    except OSError:
        return None
    text = next((line.strip() for line in reversed(lines) if line.strip()), None)
    return None if text is None else text[:300]


def record_unstarted_job(samples: Sequence[Sample], results: str | os.PathLike, job: str,
                         slurm_logs: Sequence[str | os.PathLike], job_log: str | None = None,
                         options: InferOptions | None = None, package=None) -> JobSummary:
    """Record the workflow's ``job`` (``batch001.infer`` or ``batch001.evaluate``, on ``samples``) whose every attempt
    ended before medseg recorded anything (``slurm_logs``: SLURM's logs of its attempts, in order): its cases not
    finished earlier are recorded as failed for it (a case kept from an earlier run stays, as a job's own last attempt
    keeps it; ``options`` and ``package``, the run's inference settings and model, tell an inference job's), naming
    the job, its attempts and SLURM's log of the last with its last line; then the job's record
    (``RESULTS/jobs/<job>.json``, with ``job_error``) is written, so that the report can be made. A later run voids
    that record and runs the job again, as after any failed job. Returns the job's summary."""
    stage = job.rpartition(".")[2]
    if stage not in ("infer", "evaluate"):
        raise ValueError(f"{job}: not an inference or scoring job")
    folder = ResultsFolder(results)
    last = str(slurm_logs[-1]) if slurm_logs else None
    said = last_log_line(last)
    count = len(slurm_logs)
    # SLURM's own line on an out-of-memory kill (a model that does not fit the job's memory kills medseg before it
    # records anything): memory, not the batch script or the node
    killed = last is not None and killed_for_memory(last)
    error = JobFailedError(
        f"{'its one attempt' if count == 1 else f'every attempt ({count})' if count else 'every attempt'} ended "
        + ("before medseg recorded anything (SLURM killed the last for memory" if killed else
           "before medseg started or recorded anything (its batch script failed, or its node")
        + (f"; SLURM's log of the last attempt ends: {said}" if said else "") + ")")
    summary = JobSummary(stage=stage)
    failure = _JobFailure(stage, job, job_log, slurm_log=last)
    if stage == "infer":
        options = options if options is not None else InferOptions(model="")
        record_case = lambda sample, failed, kept: _job_failed_case(sample, folder, failed, kept, options,  # noqa: E731
                                                                    package)
    else:
        record_case = lambda sample, failed, kept: _job_failed_score(sample, folder, failed, kept)  # noqa: E731
    _job_failed(samples, folder, summary, error, failure, None, record_case)
    write_job_record(Path(results, "jobs", f"{job}.json"), summary)
    return summary
