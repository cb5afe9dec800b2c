"""Cohorts: a sample sheet of cases run into a results folder, case by case, resumably (see the Snakefile).

:mod:`~medseg.cohort.samples` reads and checks the sheet, :mod:`~medseg.cohort.records` knows the results
folder and which case is finished, :mod:`~medseg.cohort.run` runs a batch of cases
(what its results were made for: :mod:`~medseg.cohort.fingerprints`; its attempts: :mod:`~medseg.cohort.attempts`;
the jobs a run planned: :mod:`~medseg.cohort.batch_plan`),
:mod:`~medseg.cohort.stale_jobs` finds the finished jobs a run must redo, :mod:`~medseg.cohort.shared_folder`
keeps a folder several users run into usable by each.
"""

from medseg.cohort.attempts import given_up_for_less_memory
from medseg.cohort.batch_plan import read_batch_plan, write_batch_plan
from medseg.cohort.fingerprints import FinishedCases, finished_cases, package_modalities, stale_cases
from medseg.cohort.forced_runs import forget_forced_run, redo_for_job, redo_values, stopped_forced_run
from medseg.cohort.invocation import (
    NO_HOOKS_REFUSED,
    claims_results,
    config_profile,
    dropped_profile_config,
    forced_jobs,
    hooks_skipped,
    hooks_skipped_by,
    previewing,
    repeated_config,
    writes_results,
)
from medseg.cohort.records import ResultsFolder
from medseg.cohort.run import (
    CaseOutcome,
    InferOptions,
    JobSummary,
    evaluate_cases,
    infer_cases,
    write_job_record,
)
from medseg.cohort.samples import Sample, batches, read_sample_rows, read_samples, samples_from_rows, some_names
from medseg.cohort.shared_folder import (
    adopt_unwritable_files,
    check_results_writable,
    check_snakemake_folder,
    future_dated_files,
    reset_times,
)
from medseg.cohort.stale_jobs import (
    VoidedJobs,
    new_jobs_message,
    remove_report,
    unrecorded_message,
    void_stale_jobs,
    voided_message,
)

__all__ = [
    "NO_HOOKS_REFUSED",
    "adopt_unwritable_files",
    "check_results_writable",
    "check_snakemake_folder",
    "future_dated_files",
    "remove_report",
    "reset_times",
    "CaseOutcome",
    "InferOptions",
    "JobSummary",
    "ResultsFolder",
    "Sample",
    "batches",
    "claims_results",
    "FinishedCases",
    "finished_cases",
    "config_profile",
    "dropped_profile_config",
    "forced_jobs",
    "forget_forced_run",
    "redo_for_job",
    "redo_values",
    "evaluate_cases",
    "given_up_for_less_memory",
    "hooks_skipped",
    "hooks_skipped_by",
    "infer_cases",
    "package_modalities",
    "previewing",
    "repeated_config",
    "read_batch_plan",
    "read_sample_rows",
    "read_samples",
    "samples_from_rows",
    "some_names",
    "stopped_forced_run",
    "stale_cases",
    "VoidedJobs",
    "new_jobs_message",
    "unrecorded_message",
    "void_stale_jobs",
    "voided_message",
    "write_batch_plan",
    "write_job_record",
    "writes_results",
]
