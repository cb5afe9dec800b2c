"""The workflow's jobs whose last attempt failed for a reason of the whole job, as the report shows them: each job
once, with its error, its log and the cases it covered, instead of its error repeated in every case's row.

A case recorded as failed for its job's error names the job in its failure record (``job``: ``name``, ``stage``,
``error``, ``error_type``, ``log``; :mod:`medseg.cohort.run`). The job's own record (``RESULTS/jobs/<job>.json``,
``job_error``) names the cases it kept although the run did not make them (``kept_earlier``: segmented or scored by
an earlier run, for other settings, or where the job could not tell): the report tells those from cases this run
made, which it would otherwise show alike as ok.

Jobs that failed with the same error (``device: cuda`` where no node has CUDA fails every job alike) are one entry of
the page and one line of the console (:func:`same_error_groups`): the error once, the first few jobs named with their
count; each job keeps its own entry for its logs and cases.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from medseg.report.case_result import CaseResult

__all__ = ["FailedJob", "SHOWN_JOBS", "failed_jobs", "job_names_text", "same_error_groups", "shared_error",
           "summary_entry"]

SHOWN_JOBS = 3  # the jobs a group of jobs with one error names before its count


@dataclass
class FailedJob:
    """A job whose last attempt failed as a whole, and its cases (ids)."""

    name: str  # batch001.infer
    stage: str
    error: str  # its one line
    error_type: str
    log: str | None
    failed: list[str] = field(default_factory=list)  # recorded as failed for its error
    slurm_log: str | None = None  # SLURM's own log of its last attempt, where it ran under SLURM
    kept: list[str] = field(default_factory=list)  # kept from an earlier run, not made by this one

    @property
    def anchor(self) -> str:
        """Its block's fragment id on the page (``job-batch001.infer``)."""
        return "job-" + re.sub(r"[^A-Za-z0-9._-]", "_", self.name)


def _text(value) -> str:
    return value if isinstance(value, str) else ""


def failed_jobs(cases: Sequence[CaseResult], results_dir: Path | str) -> list[FailedJob]:
    """The failed jobs that ``cases`` (the report's) name in their failure records, and those the job records of
    ``results_dir`` name (the jobs the last run planned: :func:`medseg.cohort.check.failed_jobs`), with the cases of
    ``cases`` each kept; by name."""
    from medseg.cohort.check import failed_jobs as recorded_jobs

    jobs: dict[str, FailedJob] = {}
    for case in cases:
        job = (case.failure or {}).get("job")
        if not isinstance(job, dict) or not _text(job.get("name")):
            continue
        entry = jobs.setdefault(job["name"], FailedJob(job["name"], _text(job.get("stage")), _text(job.get("error")),
                                                       _text(job.get("error_type")), _text(job.get("log")) or None,
                                                       slurm_log=_text(job.get("slurm_log")) or None))
        entry.failed.append(case.case_id)
    present = {case.case_id for case in cases}
    for name, job_error in recorded_jobs(results_dir):
        entry = jobs.get(name)
        if entry is None:  # every case it covered kept, or finished earlier: the run's check names it still
            entry = jobs[name] = FailedJob(name, name.rpartition(".")[2], _text(job_error.get("error")),
                                           _text(job_error.get("error_type")), _text(job_error.get("log")) or None)
        entry.slurm_log = entry.slurm_log or _text(job_error.get("slurm_log")) or None
        kept = job_error.get("kept_earlier")
        entry.kept = [case for case in kept if case in present] if isinstance(kept, list) else []
    return sorted(jobs.values(), key=lambda job: job.name)


def same_error_groups(jobs: Sequence[FailedJob]) -> list[list[FailedJob]]:
    """``jobs`` in groups of those whose stage, error type and error text (:func:`shared_error`) are the same, in the
    order of each group's first job (a group of one where a job's error is its own)."""
    groups: dict[tuple[str, str, str], list[FailedJob]] = {}
    for job in jobs:
        groups.setdefault((job.stage, job.error_type, shared_error(job.error, job.slurm_log)), []).append(job)
    return list(groups.values())


def shared_error(error: str | None, slurm_log: str | None) -> str | None:
    """A job's ``error`` as jobs that failed alike share it: SLURM's log of its last attempt, which the error of a
    job stopped before medseg recorded anything names (the sheet not on the nodes), is "the job's own" (each job's
    line names it)."""
    return error.replace(slurm_log, "the job's own") if error and slurm_log else error


def job_names_text(names: Sequence[str], shown: int = SHOWN_JOBS) -> str:
    """The jobs of a group for a heading or a line: ``a.infer, b.infer``, or the first ``shown`` and the count:
    ``a.infer, b.infer, c.infer … (12 jobs)``."""
    return ", ".join(names[:shown]) + (f" … ({len(names)} jobs)" if len(names) > shown else "")


def summary_entry(job: FailedJob) -> dict:
    """A failed job as ``summary.json``'s ``failed_jobs`` lists it: ``job`` (``batch001.infer``), ``stage``,
    ``error`` (its one line), ``error_type``, ``log`` (null where not recorded), ``cases`` (the ids it recorded as
    failed), ``kept`` (those it kept from an earlier run, not made by this one) and ``slurm_log`` (SLURM's own log of
    its last attempt: null where it did not run under SLURM, or the run did not tell it the folder)."""
    return {"job": job.name, "stage": job.stage, "error": job.error, "error_type": job.error_type, "log": job.log,
            "cases": list(job.failed), "kept": list(job.kept), "slurm_log": job.slurm_log}
