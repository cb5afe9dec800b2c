"""The jobs a workflow run planned (``jobs/.plan.json``): its batches of cases, kept by the next run, and each case's
row as planned, for a job to tell a row of the sample sheet edited since."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from medseg.cohort.samples import Sample
from medseg.jsonfile import read_json_object

__all__ = ["PLAN_SCHEMA", "changed_since_planned", "planned_jobs", "read_batch_plan", "write_batch_plan"]


PLAN_SCHEMA = "medseg-cohort-plan/1"


def _plan_path(results: Path | str) -> Path:
    return Path(results, "jobs", ".plan.json")


def write_batch_plan(results: Path | str, cases_per_job: int, jobs: dict[str, Sequence[Sample]],
                     earlier: dict[str, list[str]] | None = None) -> None:
    """Record the jobs a run planned (job name → case ids; written as the run starts, not by a preview): a job a
    cluster starts reads the Snakefile again and must find the same jobs, and the next run keeps them
    (:func:`read_batch_plan`). The ``earlier`` plan's jobs whose cases all left the sheet stay listed, empty: their
    names are not given to new jobs (a job record of that name may be there still). The run holds the results
    folder's claim as it writes it."""
    from medseg.io.atomic import atomic_paths, remove_leftovers_of

    gone = {name: [] for name in (earlier or {}) if name not in jobs}
    remove_leftovers_of(_plan_path(results).parent, [_plan_path(results).name])  # of a run killed while writing it
    record = {"schema": PLAN_SCHEMA, "cases_per_job": cases_per_job,
              "jobs": {**{name: [sample.case_id for sample in samples] for name, samples in jobs.items()}, **gone},
              # each case's row as planned, for its job to tell a row edited since (changed_since_planned)
              "rows": {sample.case_id: _planned_row(sample) for samples in jobs.values() for sample in samples}}
    with atomic_paths([_plan_path(results)], overwrite=True) as (temp,):
        temp.write_text(json.dumps(record, indent=1) + "\n")


def read_batch_plan(results: Path | str, cases_per_job: int) -> dict[str, list[str]] | None:
    """The jobs the last run on ``results`` planned with this ``cases_per_job`` (for
    :func:`~medseg.cohort.samples.batches` to keep them); None when there is none, it cannot be read, or it was made
    with another ``cases_per_job`` (the cases are then cut into jobs anew)."""
    try:
        record = read_json_object(_plan_path(results), None)  # not capped: a row for every case of the cohort
        if record.get("schema") != PLAN_SCHEMA or record.get("cases_per_job") != cases_per_job:
            return None
        return {str(name): [str(case_id) for case_id in case_ids] for name, case_ids in record["jobs"].items()}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def planned_jobs(results: Path | str) -> set[str] | None:
    """The jobs (batch names) with cases in the last run's plan on ``results``, whatever its ``cases_per_job``: not a
    job whose cases all left the sheet, listed empty, nor one of an earlier cut into jobs. None where there is no plan
    that can be read (steps run by hand)."""
    try:
        jobs = read_json_object(_plan_path(results), None).get("jobs")  # not capped: as read_batch_plan
    except (OSError, ValueError):  # a JsonFileError too
        return None
    if not isinstance(jobs, dict):
        return None
    return {str(name) for name, case_ids in jobs.items() if case_ids}


def changed_since_planned(results: Path | str, samples: Sequence[Sample]) -> list[str]:
    """The case ids of ``samples`` whose row (image, reference, series) is not the one the run's plan recorded: the
    sheet edited since the run planned its jobs, which then run the row as it is now. None where the plan cannot be
    read or records no rows (written by an earlier medseg), or does not list the case."""
    try:
        rows = read_json_object(_plan_path(results), None).get("rows")  # not capped: as read_batch_plan
    except (OSError, ValueError):  # a JsonFileError too
        return []
    if not isinstance(rows, dict):
        return []
    return [sample.case_id for sample in samples
            if sample.case_id in rows and rows[sample.case_id] != _planned_row(sample)]


def _planned_row(sample: Sample) -> list[str | None]:
    return [str(sample.image), None if sample.reference is None else str(sample.reference), sample.series]
