"""Whether a cohort run succeeded as a whole: its failed cases against the ``fail_on_failed_cases`` setting.

Each case that fails gets its failure record and the others carry on, so the workflow's own exit status says only
that every step ran. The last step reads the report's ``summary.json`` and fails the run (exit 1, the report kept)
when every case failed (``all``, the default), when any did (``any``), or never (``never``). A job whose last attempt
failed for a reason of the whole job (the model, the device: its job record's ``job_error``; its cases are among the
failed ones) fails the run under ``all`` and ``any`` alike, naming the job, its error and its log.
"""

from __future__ import annotations

from pathlib import Path

from medseg.errors import CohortFailedError, InputError
from medseg.io.files import os_reason
from medseg.jsonfile import RESULT_BYTES, JsonFileError, read_json_object
from medseg.numbers import counted

__all__ = ["FAIL_ON", "check_failures", "failed_jobs"]

FAIL_ON = ("all", "any", "never")


def check_failures(summary_path: Path | str, fail_on: str = "all") -> dict:
    """The failed and total case counts of a cohort's ``summary.json``; a :class:`CohortFailedError` when they meet
    ``fail_on`` (one of :data:`FAIL_ON`)."""
    summary_path = Path(summary_path)
    if fail_on not in FAIL_ON:
        raise InputError(f"fail_on_failed_cases: {fail_on!r} is not one of {', '.join(FAIL_ON)}")
    try:
        summary = read_json_object(summary_path, RESULT_BYTES, "a cohort summary")
    except JsonFileError as error:  # too large, not JSON, not an object, a folder in its place
        raise InputError(f"{summary_path}: not a readable cohort summary ({error.reason})") from error
    except PermissionError as error:  # there, but not for this user: building the report is no remedy
        raise InputError(f"{summary_path}: cannot read the cohort summary ({os_reason(error)})") from error
    except OSError as error:
        raise InputError(f"{summary_path}: cannot read the cohort summary ({os_reason(error)}); build the "
                         "report first") from error
    try:
        cases = summary["cases"]
        failed, total = int(cases["failed"]), int(cases["total"])
    except (KeyError, TypeError, ValueError) as error:  # ValueError: int() of a text
        raise InputError(f"{summary_path}: not a cohort summary (it lacks cases.failed and cases.total as "
                         "numbers)") from error
    if not 0 <= failed <= total:
        raise InputError(f"{summary_path}: {failed} failed of {counted(total, 'case')}; not a consistent cohort "
                         "summary")
    counts = {"failed": failed, "total": total, "fail_on": fail_on}
    jobs = failed_jobs(summary_path.parent) if fail_on != "never" else []
    if jobs:
        raise CohortFailedError(_failed_jobs_text(summary_path, jobs))
    if failed and (fail_on == "any" or (fail_on == "all" and failed == total)):
        which = "every case" if failed == total else f"{failed} of {counted(total, 'case')}"
        raise CohortFailedError(f"{summary_path.parent}: {which} failed (fail_on_failed_cases: {fail_on}); their "
                                f"errors are in {_page(summary_path)} and cohort.tsv")
    return counts


def _failed_jobs_text(summary_path: Path, jobs: list[tuple[str, dict]]) -> str:
    """The run's last line for its ``jobs`` that failed as a whole (:func:`failed_jobs`): the first job's error and
    logs, the jobs that failed with that same error (``device: cuda`` on nodes without CUDA fails every job alike:
    the first few named, and their count), and how many others failed for other errors."""
    from medseg.report.failed_jobs import job_names_text, shared_error

    def error_of(job: str, job_error: dict) -> tuple:  # the report's groups: stage (batch001.infer's), type, text
        return job.rpartition(".")[2], job_error.get("error_type"), shared_error(job_error.get("error"),
                                                                                 job_error.get("slurm_log"))

    name, job_error = jobs[0]
    same = [other for other, other_error in jobs if error_of(other, other_error) == error_of(name, job_error)]
    whose = "its" if len(same) == 1 else f"{name}'s"  # the logs are the first job's
    log = f" ({whose} log: {job_error['log']})" if job_error.get("log") else ""
    if job_error.get("slurm_log"):
        log += f" (SLURM's log of {whose} last attempt: {job_error['slurm_log']})"
    rest = {error_of(other, other_error) for other, other_error in jobs if other not in same}
    others = len(jobs) - len(same)
    others_text = (f", as did {counted(others, 'other job')} for "
                   f"{'another error' if len(rest) == 1 else f'{len(rest)} other errors'}" if others else "")
    who = (f"job {name} failed on its last attempt for a reason of the whole job:" if len(same) == 1 else
           f"jobs {job_names_text(same)} failed on their last attempt for a reason of the whole job, each:")
    each_log = ", with each job's logs" if len(jobs) > 1 else ""
    said = job_error.get("error") if len(same) == 1 else error_of(name, job_error)[2]  # each job's SLURM log its own
    return (f"{summary_path.parent}: {who} {said}{log}{others_text}; "
            f"{'its' if len(jobs) == 1 else 'their'} cases are listed as failed in {_page(summary_path)}{each_log}, "
            "and a later run tries them again")


def _page(summary_path: Path) -> Path:
    """The report page beside ``summary_path``: report.html, or the page `medseg report -o` named."""
    pages = sorted(summary_path.parent.glob("*.htm*"))
    return pages[0] if len(pages) == 1 else summary_path.parent / "report.html"


def failed_jobs(results: Path | str) -> list[tuple[str, dict]]:
    """The workflow's jobs in ``results/jobs/`` whose last attempt failed for a reason of the whole job, their cases
    recorded as failed (:func:`medseg.cohort.run.infer_cases`): (the job, as ``batch001.infer``, and its record's
    ``job_error``: ``error``, ``error_type``, ``log``), by name. A record that cannot be read is passed over, and so is
    one of a job the last run did not plan (its cases left the sheet, or were cut into other jobs: kept in
    ``jobs/``, its cases in no report)."""
    from medseg.cohort.batch_plan import planned_jobs

    planned = planned_jobs(results)
    found = []
    for path in sorted(Path(results, "jobs").glob("*.json")):
        if path.name.startswith("."):
            continue
        if planned is not None and path.name.removesuffix(".json").rpartition(".")[0] not in planned:
            continue
        try:
            record = read_json_object(path, RESULT_BYTES, "a cohort job record")
        except (OSError, ValueError):  # a JsonFileError too
            continue
        job_error = record.get("job_error")
        if record.get("schema") == "medseg-cohort-job/1" and isinstance(job_error, dict):
            found.append((path.name.removesuffix(".json"), job_error))
    return found
