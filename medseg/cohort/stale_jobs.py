"""Finished jobs whose record no longer holds, found while the workflow plans.

A job record (``RESULTS/jobs/<batch>.<stage>.json``) vouches that its batch's cases are finished, and Snakemake
runs a job only when its record is missing. The record is void, and removed with the report that shows its
cases, when one of its cases:

* has lost its results (a case folder removed to redo the case);
* has results made for other work than the sheet and settings now ask for: another image or series, a replaced
  file, another model; for scores another reference. A results folder must never show one series' segmentation
  under a row that names another, and Snakemake's own change detection needs the metadata of the folder it ran
  in, which a run from another checkout or a copied results folder lacks;
* was given up with less memory than this run's jobs start with;
* failed on an input or reference this user could not read, which it can read now (giving read access changes
  neither the file's size nor its time);
* was not finished by its job, whose last attempt ran out of time (:mod:`medseg.cohort.job_deadline`).

The batch then runs again: its finished cases are kept, the others redone. The report goes too, since Snakemake
does not rerun a job for a missing intermediate file whose consumers are present: it is rebuilt after the batch.
For the same reason the report goes when a planned job has no record at all while the report is there: a folder
made by ``medseg cohort`` and ``medseg report`` by hand, or whose ``jobs/`` was removed, would otherwise be taken
as finished whatever its cases hold (another model's segmentations, missing cases); so would a new batch (a row
added) in a folder Snakemake last ran from another working folder. The job then runs and keeps what still holds.
Only a folder without any job record of the stage is warned about in a run: a new batch is Snakemake's own news
there. A preview removes nothing and says what the run will redo (Snakemake's list of jobs shows only what it
notices itself: the records are still there), new batches included: run from a working folder without the metadata
of the run that made the report (another member's checkout), Snakemake's preview said "Nothing to be done" for rows
added to the sheet, which the run then segmented.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from medseg.cohort.attempts import given_up_for_less_memory
from medseg.cohort.fingerprints import stale_cases
from medseg.cohort.records import ResultsFolder, readable_again
from medseg.cohort.run import InferOptions
from medseg.cohort.samples import Sample, some_names
from medseg.errors import OutputWriteError

__all__ = ["REPORT_FILES", "VoidedJobs", "new_jobs_message", "remove_report", "unrecorded_message", "void_stale_jobs",
           "voided_message"]

STAGES = ("infer", "evaluate")
# the report rule's outputs, report.html last: the one whose absence has Snakemake make the report again
REPORT_FILES = ("cohort.tsv", "summary.json", "report.html")


@dataclass
class VoidedJobs:
    """The jobs of one stage whose records were void, and why (case ids)."""

    gone: list[str] = field(default_factory=list)  # results missing
    changed: list[str] = field(default_factory=list)  # made for other inputs or settings
    retried: list[str] = field(default_factory=list)  # given up with less memory than the jobs now start with
    retried_memory_mb: list[int] = field(default_factory=list)  # what the jobs of those cases start with now
    readable: list[str] = field(default_factory=list)  # failed on a file this user could not read, readable now
    timed_out: list[str] = field(default_factory=list)  # not finished by a job whose last attempt ran out of time
    job_failed: list[str] = field(default_factory=list)  # not made by a job whose last attempt failed as a whole
    jobs: list[str] = field(default_factory=list)  # "<batch>.<stage>"
    unrecorded: list[str] = field(default_factory=list)  # "<batch>.<stage>" without a record while the report is there
    new: list[str] = field(default_factory=list)  # the same, beside records of other batches: rows added, say


def void_stale_jobs(batches: Mapping[str, Sequence[Sample]], results: Path | str, package, options: InferOptions,
                    memory_mb: Mapping[str, int | None | Mapping[str, int | None]], preview: bool
                    ) -> dict[str, VoidedJobs]:
    """Per stage, the finished jobs of ``batches`` whose records are void; unless ``preview``, their records and the
    report (``RESULTS/report.html``) are removed so that Snakemake runs them again. ``package`` is the loaded
    package ``options.model`` names (another one voids every job: its cases were made by another model).
    ``memory_mb``: for both stages (``infer``, ``evaluate``), the memory this run's jobs start with, one figure for
    every batch or one per batch (None where it cannot be told)."""
    folder = ResultsFolder(results)
    report_there = Path(results, "report.html").exists()
    # no job record of a stage at all beside a report: made by hand, or jobs/ removed (else a new batch: a row added,
    # another cases_per_job, which Snakemake lists itself)
    by_hand = {stage: report_there and not any(Path(results, "jobs").glob(f"*.{stage}.json")) for stage in STAGES}
    void = {stage: VoidedJobs() for stage in STAGES}  # one warning per stage for the whole cohort
    for batch, samples in batches.items():
        stale = stale_cases(samples, results, package, options)
        for stage in STAGES:
            record = Path(results) / "jobs" / f"{batch}.{stage}.json"
            if not record.exists():
                if report_there:  # Snakemake would not run the job while the report is there
                    if by_hand[stage]:
                        void[stage].unrecorded.append(f"{batch}.{stage}")
                    else:
                        void[stage].new.append(f"{batch}.{stage}")
                    if not preview:
                        remove_report(results)
                continue
            gone = [s.case_id for s in samples if (s.reference or stage == "infer")
                    and not folder.case_outputs_present(s.case_id, stage)]
            changed = stale[stage] + (stale["infer"] if stage == "evaluate" else [])
            memory = memory_mb[stage]
            memory = memory.get(batch) if isinstance(memory, Mapping) else memory
            retried = [c for c in given_up_for_less_memory(samples, results, stage, memory) if c not in changed]
            readable = [c for c in changed if any(readable_again(folder.status(c, s)) for s in STAGES)]
            timed_out = [s.case_id for s in samples if s.case_id not in changed and s.case_id not in gone
                         and (folder.status(s.case_id, stage) or {}).get("out_of_time")]
            job_failed = [s.case_id for s in samples if s.case_id not in changed and s.case_id not in gone
                          and (folder.status(s.case_id, stage) or {}).get("job_failed")]
            if gone or changed or retried or timed_out or job_failed:
                void[stage].gone += gone
                # stale for both stages: named once
                void[stage].changed += [c for c in dict.fromkeys(changed) if c not in readable]
                void[stage].readable += list(dict.fromkeys(readable))
                void[stage].retried += retried
                void[stage].timed_out += timed_out
                void[stage].job_failed += job_failed
                void[stage].retried_memory_mb += [memory] * bool(retried)
                void[stage].jobs.append(f"{batch}.{stage}")
                if not preview:
                    _remove(record)
                    remove_report(results)
    return void


def remove_report(results: Path | str) -> None:
    """Remove the report's files (``cohort.tsv``, ``summary.json``, then ``report.html``, whose absence has
    Snakemake make the report again), as a run plans to redo some of its cases: the table and the summary were left
    behind, so that a run stopped before its report (or a reader during the run) found them describing cases that
    were being made again, with another model or setting, and no sign that they were out of date."""
    for name in REPORT_FILES:
        _remove(Path(results, name))


def _remove(path: Path) -> None:
    """Remove a job record or the report so that Snakemake makes it again; one that this user may not remove (a
    folder of another user's, read-only to the group) is an :class:`OutputWriteError` naming it, not a traceback."""
    from medseg.io.atomic import reason_of

    try:
        path.unlink(missing_ok=True)
    except OSError as error:
        raise OutputWriteError(f"{path}: cannot remove this record of an earlier run, which must be made again "
                               f"({reason_of(error)}); give this user write access to its folder, or give another "
                               "results folder") from error


def voided_message(stage: str, void: VoidedJobs, memory_mb: int | None, preview: bool) -> str | None:
    """The warning that says which jobs of ``stage`` run again, and why; None when none does. ``memory_mb``: what
    the jobs start with, where ``void`` does not record it per job."""
    if not void.jobs:
        return None
    why = [f"results of {some_names(void.gone)} are missing"] if void.gone else []
    why += [f"made for other inputs or settings: {some_names(void.changed)}"] if void.changed else []
    why += ([f"failed on a file this user could not read, which it can read now: {some_names(void.readable)}"]
            if void.readable else [])
    figures = sorted(set(void.retried_memory_mb)) or [memory_mb]
    memory = f"{figures[0]} MB" if len(figures) == 1 else f"{figures[0]}-{figures[-1]} MB"
    why += ([f"{some_names(void.retried)} given up with less memory than this run's jobs start with ({memory})"]
            if void.retried else [])
    why += ([f"{some_names(void.timed_out)} not finished by the last run, whose job's last attempt ran out of time"]
            if void.timed_out else [])
    why += ([f"{some_names(void.job_failed)} not {'segmented' if stage == 'infer' else 'scored'} by the last run, "
             "whose job's last attempt failed for a reason of the whole job (its cases' failure records name it)"]
            if void.job_failed else [])
    jobs = f"job {void.jobs[0]}" if len(void.jobs) == 1 else f"jobs {some_names(void.jobs, 3)}"
    if preview:
        # Snakemake's own list of jobs shows it too where it notices the change itself (a changed input file or
        # setting is one of its job parameters), not where only medseg can (another model's weights, a run from
        # another working folder): neither is known here
        return (f"{stage}: {'; '.join(why)}: {jobs} will run again when the workflow runs (a preview changes nothing; "
                "Snakemake's list of jobs shows it only where Snakemake notices the change too)")
    return f"{stage}: {'; '.join(why)}: {jobs} will run again"


def unrecorded_message(void: Mapping[str, VoidedJobs], preview: bool) -> str | None:
    """The warning that says which jobs run although their cases may be there, because the report was there without
    their records; None when there were none."""
    jobs = [job for stage in STAGES for job in void[stage].unrecorded]
    if not jobs:
        return None
    named = f"job {jobs[0]} has" if len(jobs) == 1 else f"jobs {some_names(jobs, 3)} have"
    return (f"report: {named} no record (cases made outside this workflow, or jobs/ removed): "
            + ("they will run when the workflow runs, keeping the cases that still hold, and the report will be "
               "rebuilt (a preview changes nothing)" if preview else
               "they run, keeping the cases that still hold, and the report is rebuilt"))


def new_jobs_message(void: Mapping[str, VoidedJobs], preview: bool) -> str | None:
    """For a preview, the warning that says which jobs without a record beside the report will run (new batches:
    rows added to the sheet, another ``cases_per_job``), since the run removes the report for them and Snakemake's
    preview may not list them; None in a run (Snakemake lists them as it runs them) or when there are none."""
    jobs = [job for stage in STAGES for job in void[stage].new]
    if not preview or not jobs:
        return None
    named = f"job {jobs[0]} has" if len(jobs) == 1 else f"jobs {some_names(jobs, 3)} have"
    return (f"report: {named} no record yet (rows added to the sheet, or another cases_per_job): they will run when "
            "the workflow runs and the report will be rebuilt, whatever Snakemake lists here (a preview changes "
            "nothing)")
