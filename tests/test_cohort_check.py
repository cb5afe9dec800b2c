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
