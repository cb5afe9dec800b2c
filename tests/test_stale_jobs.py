"""Finished jobs whose records no longer hold, found while the workflow plans (medseg.cohort.stale_jobs)."""

from __future__ import annotations

import shutil

from cohort_cases import SMALL_IMAGES_SEGMENTED

from medseg.cohort import InferOptions, ResultsFolder, evaluate_cases, infer_cases, read_samples, write_job_record
from medseg.cohort.stale_jobs import VoidedJobs, unrecorded_message, void_stale_jobs, voided_message
from medseg.package import load_package
from medseg.synthetic import write_phantom

pytestmark = SMALL_IMAGES_SEGMENTED


def _two_cases(tmp_path):
    """Cases a and b (40x40x8 phantoms) on a sheet, the results folder to be, and the phantom model's options."""
    for name, seed in (("a", 1), ("b", 2)):
        write_phantom(tmp_path / f"{name}.nii.gz", shape=(40, 40, 8), seed=seed)
    (tmp_path / "samples.tsv").write_text("case_id\timage\na\ta.nii.gz\nb\tb.nii.gz\n")
    return (read_samples(tmp_path / "samples.tsv"), tmp_path / "results",
            InferOptions(model="phantom", device="cpu", batch_size=8))


def test_a_job_whose_case_lost_its_results_is_voided_unless_previewing(tmp_path):
    samples, results, options = _two_cases(tmp_path)
    package = load_package("phantom")
    record = results / "jobs" / "b0001.infer.json"
    write_job_record(record, infer_cases(samples, results, options))
    write_job_record(results / "jobs" / "b0001.evaluate.json", evaluate_cases(samples, results))  # nothing to score
    report = [results / name for name in ("report.html", "cohort.tsv", "summary.json")]
    for path in report:
        path.write_text("the earlier run's")
    memory = {"infer": 4000, "evaluate": 2000}
    batches = {"b0001": samples}
    assert void_stale_jobs(batches, results, package, options, memory, preview=False) == {
        "infer": VoidedJobs(), "evaluate": VoidedJobs()}
    assert record.exists() and all(path.exists() for path in report)

    # another tile overlap, every case there: made for other work alone takes the job's record and the whole report
    other = InferOptions(model="phantom", device="cpu", batch_size=8, overlap=0.5)
    void = void_stale_jobs(batches, results, package, other, memory, preview=False)
    assert void["infer"] == VoidedJobs(changed=["a", "b"], jobs=["b0001.infer"])
    assert not record.exists() and not any(path.exists() for path in report)
    write_job_record(record, infer_cases(samples, results, options))  # the record again: its cases, kept, are there
    for path in report:
        path.write_text("the earlier run's")

    shutil.rmtree(ResultsFolder(results).case_dir("b"))  # removed to redo the case
    void = void_stale_jobs(batches, results, package, options, memory, preview=True)
    assert void["infer"] == VoidedJobs(gone=["b"], jobs=["b0001.infer"])
    assert record.exists() and all(path.exists() for path in report)  # a preview changes nothing
    assert voided_message("infer", void["infer"], 4000, preview=True) == (
        "infer: results of b are missing: job b0001.infer will run again when the workflow runs (a preview changes "
        "nothing; Snakemake's list of jobs shows it only where Snakemake notices the change too)")
    assert voided_message("evaluate", void["evaluate"], 2000, preview=True) is None

    # another tile overlap: every case's results were made for other work (b's record says so, its folder gone)
    void = void_stale_jobs(batches, results, package, other, memory, preview=True)
    assert void["infer"].jobs == ["b0001.infer"] and record.exists() and all(path.exists() for path in report)
    void = void_stale_jobs(batches, results, package, other, memory, preview=False)
    assert void["infer"] == VoidedJobs(gone=["b"], changed=["a", "b"], jobs=["b0001.infer"])
    # the whole report goes, not only its page: a run stopped before its report left cohort.tsv and summary.json
    # describing the earlier run's cases (another overlap, another model version), with nothing to say so
    assert not record.exists() and not any(path.exists() for path in report)
    assert voided_message("infer", void["infer"], 4000, preview=False) == (
        "infer: results of b are missing; made for other inputs or settings: a, b: job b0001.infer will run again")


def test_a_job_without_a_record_beside_a_report_removes_the_report_unless_previewing(tmp_path):
    """A folder made by `medseg cohort` and `medseg report` by hand (or whose jobs/ was removed): Snakemake would take
    the report as finished and run none of the jobs, whatever model made the cases."""
    write_phantom(tmp_path / "a.nii.gz", shape=(40, 40, 8), seed=1)
    (tmp_path / "samples.tsv").write_text("case_id\timage\na\ta.nii.gz\n")
    samples = read_samples(tmp_path / "samples.tsv")
    results = tmp_path / "results"
    options = InferOptions(model="phantom", device="cpu", batch_size=8)
    infer_cases(samples, results, options)  # by hand: no job record
    report = results / "report.html"
    report.write_text("<html></html>")
    memory = {"infer": 4000, "evaluate": 2000}
    batches = {"b0001": samples, "b0002": []}

    void = void_stale_jobs(batches, results, load_package("phantom"), options, memory, preview=True)
    assert [void[stage].unrecorded for stage in ("infer", "evaluate")] == [["b0001.infer", "b0002.infer"],
                                                                           ["b0001.evaluate", "b0002.evaluate"]]
    assert [void[stage].jobs for stage in ("infer", "evaluate")] == [[], []]  # nothing voided: no record
    assert report.exists()
    assert unrecorded_message(void, preview=True) == (
        "report: jobs b0001.infer, b0002.infer, b0001.evaluate, … and 1 more (4) have no record (cases made outside "
        "this workflow, or jobs/ removed): they will run when the workflow runs, keeping the cases that still hold, "
        "and the report will be rebuilt (a preview changes nothing)")

    void = void_stale_jobs(batches, results, load_package("phantom"), options, memory, preview=False)
    assert not report.exists()
    assert unrecorded_message(void, preview=False).endswith(
        "they run, keeping the cases that still hold, and the report is rebuilt")

    # no report: a first run, or one resumed before its report; Snakemake runs the jobs without a record itself
    void = void_stale_jobs(batches, results, load_package("phantom"), options, memory, preview=False)
    assert [void[stage].unrecorded for stage in ("infer", "evaluate")] == [[], []]
    assert unrecorded_message(void, preview=False) is None


def _a_run_of_a_before_b_was_added(tmp_path, shape):
    """A sheet of cases a and b whose results folder holds a's inference and scoring jobs' records and a report, as
    a run before b's row was added left it: (a, b, results folder, its options, the report)."""
    for name, seed in (("a", 1), ("b", 2)):
        write_phantom(tmp_path / f"{name}.nii.gz", shape=shape, seed=seed)
    (tmp_path / "samples.tsv").write_text("case_id\timage\na\ta.nii.gz\nb\tb.nii.gz\n")
    a, b = read_samples(tmp_path / "samples.tsv")
    results = tmp_path / "results"
    options = InferOptions(model="phantom", device="cpu", batch_size=8)
    write_job_record(results / "jobs" / "b0001.infer.json", infer_cases([a], results, options))
    write_job_record(results / "jobs" / "b0001.evaluate.json", evaluate_cases([a], results))
    report = results / "report.html"
    report.write_text("<html></html>")
    return a, b, results, options, report


def test_a_new_batch_beside_recorded_ones_removes_the_report_without_a_warning(tmp_path):
    """A row added (a new batch) in a folder the workflow made: Snakemake lists the new job itself, so it is not
    told as a folder made by hand; the report still goes (from another working folder Snakemake would not run the
    job while it is there)."""
    first, added, results, options, report = _a_run_of_a_before_b_was_added(tmp_path, (40, 40, 8))
    batches = {"b0001": [first], "b0002": [added]}
    memory = {"infer": 4000, "evaluate": 2000}
    void = void_stale_jobs(batches, results, load_package("phantom"), options, memory, preview=True)
    assert unrecorded_message(void, preview=True) is None and report.exists()
    void = void_stale_jobs(batches, results, load_package("phantom"), options, memory, preview=False)
    assert unrecorded_message(void, preview=False) is None and not report.exists()


def test_a_case_that_failed_on_a_file_it_can_read_now_reruns_its_job_and_says_why(tmp_path):
    """A case failed on an image this user could not read (its record notes the file); once it can be read, its
    job runs again, and the line says so rather than "made for other inputs or settings"."""
    import json

    write_phantom(tmp_path / "a.nii.gz", shape=(40, 40, 8), seed=1)
    (tmp_path / "samples.tsv").write_text("case_id\timage\na\ta.nii.gz\n")
    samples = read_samples(tmp_path / "samples.tsv")
    results = tmp_path / "results"
    options = InferOptions(model="phantom", device="cpu", batch_size=8)
    write_job_record(results / "jobs" / "b0001.infer.json", infer_cases(samples, results, options))
    status = ResultsFolder(results).status_path("a", "infer")
    # as a run that could not read it recorded the case (root reads any file: the record is written here)
    status.write_text(json.dumps({**json.loads(status.read_text()), "outcome": "failed",
                                  "unreadable": str(tmp_path / "a.nii.gz")}))
    void = void_stale_jobs({"b0001": samples}, results, load_package("phantom"), options,
                           {"infer": 4000, "evaluate": 2000}, preview=False)
    assert void["infer"] == VoidedJobs(readable=["a"], jobs=["b0001.infer"])
    assert voided_message("infer", void["infer"], 4000, preview=False) == (
        "infer: failed on a file this user could not read, which it can read now: a: job b0001.infer will run again")


def test_a_preview_names_new_jobs_beside_a_report_that_the_run_will_make(tmp_path):
    """Rows added to the sheet of a folder whose last run was from another working folder (another member's
    checkout): Snakemake, without that run's metadata, previewed "Nothing to be done", and the run then segmented
    the new cases (planning removes the report for them). The preview now says so; a run leaves it to Snakemake."""
    from medseg.cohort.stale_jobs import new_jobs_message

    a, b, results, options, report = _a_run_of_a_before_b_was_added(tmp_path, (24, 24, 6))
    memory = {"infer": 4000, "evaluate": 2000}
    batches = {"b0001": [a], "b0002": [b]}  # b's row added since

    void = void_stale_jobs(batches, results, load_package("phantom"), options, memory, preview=True)
    assert [void[stage].new for stage in ("infer", "evaluate")] == [["b0002.infer"], ["b0002.evaluate"]]
    assert [void[stage].unrecorded for stage in ("infer", "evaluate")] == [[], []]
    assert report.exists()
    assert new_jobs_message(void, preview=True) == (
        "report: jobs b0002.infer, b0002.evaluate have no record yet (rows added to the sheet, or another "
        "cases_per_job): they will run when the workflow runs and the report will be rebuilt, whatever Snakemake "
        "lists here (a preview changes nothing)")
    void = void_stale_jobs(batches, results, load_package("phantom"), options, memory, preview=False)
    assert new_jobs_message(void, preview=False) is None and not report.exists()


def _two_cases_given_up_at_2000_mb(tmp_path):
    """Cases a and b segmented in batches b0001 and b0002, then recorded as given up with 2000 MB, as a case whose
    workers were killed twice records it: (batches, results folder, options)."""
    import json

    samples, results, options = _two_cases(tmp_path)
    batches = {"b0001": samples[:1], "b0002": samples[1:]}
    for batch, cases in batches.items():
        write_job_record(results / "jobs" / f"{batch}.infer.json", infer_cases(cases, results, options))
    folder = ResultsFolder(results)
    for case in ("a", "b"):
        status = folder.status_path(case, "infer")
        status.write_text(json.dumps({**json.loads(status.read_text()), "outcome": "failed",
                                      "worker_given_up_memory_mb": 2000}))
    return batches, results, options


def test_a_case_given_up_with_less_memory_than_its_batch_now_starts_with_voids_that_batch_and_is_not_finished(
        tmp_path):
    """Each batch's jobs ask for their own memory (planned from their inputs): a case given up with 2000 MB is tried
    again in a batch that now starts with more, kept given up in one that does not, and the warning gives the memory
    of the batches that run again. The stop's count (finished_cases) applies the same test: it counted such a case as
    finished, while planning voided its batch for it: "2 of 2 cases finished" for a run that had still to try one."""
    from medseg.cohort import finished_cases

    batches, results, options = _two_cases_given_up_at_2000_mb(tmp_path)
    package = load_package("phantom")
    memory = {"infer": {"b0001": 2000, "b0002": 2600}, "evaluate": None}
    void = void_stale_jobs(batches, results, package, options, memory, preview=True)
    assert void["infer"] == VoidedJobs(retried=["b"], retried_memory_mb=[2600], jobs=["b0002.infer"])
    assert voided_message("infer", void["infer"], None, preview=False) == (
        "infer: b given up with less memory than this run's jobs start with (2600 MB): job b0002.infer will run "
        "again")
    # the same cases planning voids the batches of (one source for both): b is not finished, a is
    assert finished_cases(batches, results, package, options, memory_mb=memory) == (1, 0)
    assert finished_cases(batches, results, package, options) == (2, 0)  # memory not known: kept given up
    assert finished_cases(batches, results, package, options, memory_mb={"infer": 2600, "evaluate": None}) == (0, 0)
    memory["infer"]["b0001"] = 3000
    void = void_stale_jobs(batches, results, package, options, memory, preview=True)
    assert void["infer"].retried_memory_mb == [3000, 2600]
    assert "a, b given up with less memory than this run's jobs start with (2600-3000 MB)" in voided_message(
        "infer", void["infer"], None, preview=True)


def test_a_case_its_jobs_ran_out_of_time_on_voids_its_batch_and_is_made_again(tmp_path):
    """A case recorded as failed by a job's last attempt that ran out of time (medseg.cohort.job_deadline) is not a
    finished one: planning voids its batch's job, says why, and the job makes the case, keeping the finished one (the
    workflow run through SLURM that shows it end to end is a slow test, test_workflow_time_limit.py)."""
    import time
    from dataclasses import replace

    samples, results, options = _two_cases(tmp_path)
    record = results / "jobs" / "b0001.infer.json"
    write_job_record(record, infer_cases(samples[:1], results, options))
    write_job_record(record, infer_cases(samples, results, replace(options, deadline=time.time() - 1)))
    write_job_record(results / "jobs" / "b0001.evaluate.json", evaluate_cases(samples, results))  # nothing to score
    (results / "report.html").write_text("<html></html>")
    memory = {"infer": 4000, "evaluate": 2000}
    void = void_stale_jobs({"b0001": samples}, results, load_package("phantom"), options, memory, preview=False)
    assert void["infer"] == VoidedJobs(timed_out=["b"], jobs=["b0001.infer"])
    assert void["evaluate"] == VoidedJobs()
    assert not record.exists() and not (results / "report.html").exists()
    assert voided_message("infer", void["infer"], 4000, preview=False) == (
        "infer: b not finished by the last run, whose job's last attempt ran out of time: job b0001.infer will run "
        "again")
    again = infer_cases(samples, results, options)
    assert [(c.case_id, c.outcome, c.reused) for c in again.cases] == [("a", "ok", True), ("b", "ok", False)]


def test_a_case_whose_jobs_last_attempt_failed_as_a_whole_voids_its_batch_and_is_made_again(tmp_path):
    """A case recorded as failed by a job whose last attempt failed for a reason of the whole job (its model package
    not there) is not a finished one, nor one made for other work: planning voids its batch's job naming why, and the
    job makes the case, keeping the finished one."""
    from dataclasses import replace

    samples, results, options = _two_cases(tmp_path)
    record = results / "jobs" / "b0001.infer.json"
    write_job_record(record, infer_cases(samples[:1], results, options))
    failed = infer_cases(samples, results, replace(options, model=str(tmp_path / "gone"), job="b0001.infer",
                                                   final_attempt=True))
    assert [(c.case_id, c.outcome, c.stage) for c in failed.cases] == [
        ("a", "ok", None), ("b", "failed", "infer")]
    write_job_record(record, failed)
    (results / "report.html").write_text("<html></html>")
    memory = {"infer": 4000, "evaluate": 2000}
    void = void_stale_jobs({"b0001": samples}, results, load_package("phantom"), options, memory, preview=False)
    assert void["infer"] == VoidedJobs(job_failed=["b"], jobs=["b0001.infer"])
    assert not record.exists() and not (results / "report.html").exists()
    assert voided_message("infer", void["infer"], 4000, preview=False) == (
        "infer: b not segmented by the last run, whose job's last attempt failed for a reason of the whole job (its "
        "cases' failure records name it): job b0001.infer will run again")
    again = infer_cases(samples, results, options)
    assert [(c.case_id, c.outcome, c.reused) for c in again.cases] == [("a", "ok", True), ("b", "ok", False)]
