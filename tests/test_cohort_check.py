"""Whether a cohort run succeeded as a whole (medseg.cohort.check and `medseg cohort check`)."""

from __future__ import annotations

import json

import pytest


def test_the_cohort_check_counts_failures_against_its_setting(tmp_path):
    from medseg.cohort.check import check_failures
    from medseg.errors import CohortFailedError, InputError

    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"cases": {"total": 4, "failed": 1}}))
    assert check_failures(summary, "all") == {"failed": 1, "total": 4, "fail_on": "all"}
    assert check_failures(summary, "never")["failed"] == 1
    with pytest.raises(CohortFailedError, match=r": 1 of 4 cases failed \(fail_on_failed_cases: any\)"):
        check_failures(summary, "any")
    summary.write_text(json.dumps({"cases": {"total": 4, "failed": 4}}))
    with pytest.raises(CohortFailedError, match=r": every case failed \(fail_on_failed_cases: all\); their errors are "
                                                rf"in {tmp_path / 'report.html'} and cohort.tsv$"):
        check_failures(summary, "all")
    (tmp_path / "qa.html").write_text("")  # the page `medseg report -o` named: the message names it
    with pytest.raises(CohortFailedError, match=rf"their errors are in {tmp_path / 'qa.html'} and cohort.tsv$"):
        check_failures(summary, "all")
    summary.write_text(json.dumps({"cases": {"total": 4, "failed": 0}}))
    assert check_failures(summary, "any")["failed"] == 0
    summary.write_text("{")
    with pytest.raises(InputError, match="not a readable cohort summary"):
        check_failures(summary)
    summary.write_text(json.dumps({"cases": {"total": 2}}))
    with pytest.raises(InputError, match=r"not a cohort summary \(it lacks cases.failed and cases.total as numbers\)"):
        check_failures(summary)
    summary.write_text(json.dumps({"cases": {"total": 2, "failed": 5}}))
    with pytest.raises(InputError, match="5 failed of 2 cases; not a consistent cohort summary"):
        check_failures(summary)
    with pytest.raises(InputError, match=r"nowhere.json: cannot read the cohort summary \(no such file or directory\); "
                                         "build the report first"):
        check_failures(tmp_path / "nowhere.json")
    from medseg.cli.cohort import check
    from medseg.cohort.check import FAIL_ON

    assert tuple(next(p for p in check.params if p.name == "fail_on").type.choices) == FAIL_ON


def test_a_job_that_failed_as_a_whole_counts_only_while_the_run_plans_it(tmp_path):
    """The record of a job whose last attempt failed for a reason of the whole job stays in RESULTS/jobs/ once its
    cases have left the sheet (or cases_per_job cut the cases into other jobs): every later run failed naming it, its
    cases in no report, until the user removed the file by hand. Only the jobs the run planned count."""
    from medseg.cohort import read_samples, write_batch_plan
    from medseg.cohort.check import check_failures, failed_jobs
    from medseg.errors import CohortFailedError

    (tmp_path / "samples.tsv").write_text("case_id\timage\na\ta.nii.gz\nb\tb.nii.gz\n")
    a, b = read_samples(tmp_path / "samples.tsv")
    results = tmp_path / "results"
    (results / "jobs").mkdir(parents=True)
    job_error = {"error": "--device cuda: CUDA is not available on this machine", "error_type": "DeviceError",
                 "log": None}
    for name in ("a.infer", "b.infer"):
        (results / "jobs" / f"{name}.json").write_text(json.dumps({"schema": "medseg-cohort-job/1",
                                                                   "job_error": job_error}))
    summary = results / "summary.json"
    summary.write_text(json.dumps({"cases": {"total": 1, "failed": 0}}))
    # without a plan (jobs run by hand with --record): every record counts
    assert [name for name, _ in failed_jobs(results)] == ["a.infer", "b.infer"]
    write_batch_plan(results, 1, {"a": [a], "b": [b]})
    with pytest.raises(CohortFailedError, match=r"jobs a\.infer, b\.infer failed on their last .*machine; their"):
        check_failures(summary, "all")
    write_batch_plan(results, 1, {"a": [a]}, earlier={"a": ["a"], "b": ["b"]})  # b left the sheet: its job empty
    with pytest.raises(CohortFailedError, match=r"job a\.infer failed on its last attempt .*machine; its cases"):
        check_failures(summary, "all")
    (results / "jobs" / "a.infer.json").write_text(json.dumps({"schema": "medseg-cohort-job/1"}))  # made again
    assert failed_jobs(results) == []
    assert check_failures(summary, "all") == {"failed": 0, "total": 1, "fail_on": "all"}
    write_batch_plan(results, 2, {"batch001": [a, b]})  # another cases_per_job: jobs a and b are no more
    (results / "jobs" / "a.infer.json").write_text(json.dumps({"schema": "medseg-cohort-job/1",
                                                               "job_error": job_error}))
    assert failed_jobs(results) == []
