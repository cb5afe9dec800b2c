"""The workflow's jobs that failed as a whole as the report and the run's last line name them
(medseg.report.failed_jobs): jobs that failed with one error are one entry, each job's logs kept."""

from __future__ import annotations

import html
import json
from pathlib import Path

import pytest

SAID = "device: cuda in the workflow config: CUDA is not available on this machine"


def _failed_jobs_folder(root: Path, errors: dict[str, str]) -> Path:
    """A results folder whose job ``<case>.infer`` failed as a whole with ``errors[case]`` and recorded its one case
    as failed, as the last attempt of a job under SLURM writes them (records written here, no run)."""
    (root / "jobs").mkdir(parents=True)
    for case, error in errors.items():
        job = {"name": f"{case}.infer", "stage": "infer", "error": error, "error_type": "DeviceError",
               "log": str(root / "logs" / "infer" / f"{case}.log"),
               "slurm_log": str(root / "slurm" / "rule_infer" / case / f"40{len(case)}{ord(case[0])}.log")}
        folder = root / "cases" / case
        folder.mkdir(parents=True)
        (folder / f"{case}_failed.json").write_text(json.dumps({
            "schema": "medseg-failure/1", "case_id": case, "input": f"/data/{case}.nii.gz", "reference": None,
            "stage": "infer", "error": f"/data/{case}.nii.gz: not segmented: its job {case}.infer failed: {error}",
            "error_type": "JobFailedError", "created": "2026-12-07T10:00:00+00:00", "job": job}))
        (root / "jobs" / f"{case}.infer.json").write_text(json.dumps({
            "schema": "medseg-cohort-job/1", "cases": [case],
            "job_error": {key: job[key] for key in ("error", "error_type", "log", "slurm_log")}
            | {"kept_earlier": []}}))
    return root


@pytest.fixture
def same_error(tmp_path) -> Path:
    """Five jobs (a–e) that failed with one error, and f with another."""
    return _failed_jobs_folder(tmp_path / "results",
                               {**{case: SAID for case in "abcde"}, "f": "RuntimeError: this torch is broken"})


def test_jobs_that_failed_with_one_error_are_one_entry_naming_them_each_logs_kept(same_error, tmp_path):
    """Every job failing for device: cuda on nodes without CUDA was its own entry under Jobs that failed, the same
    error repeated in each: the jobs whose error is the same are one entry, naming the first few and their count, the
    error once; each job keeps its anchor (its failed cases link to it), its log and SLURM's log of its attempt."""
    from medseg.report.build import build_report

    outputs = build_report(same_error, tmp_path / "report.html", max_overlays=0)
    page = outputs.html.read_text()
    block = page[page.index('<div id="jobs">'):page.index('<div id="failed">')]
    assert "<h2>Jobs that failed (6)</h2>" in block
    assert block.count(html.escape(SAID)) == 1 and block.count("RuntimeError: this torch is broken") == 1
    assert "<h3>5 jobs: a.infer, b.infer, c.infer …</h3>" in block and "<h3>f.infer</h3>" in block
    for case in "abcdef":
        entry = block[block.index(f'id="job-{case}.infer"'):]
        entry = entry[:entry.index("</li>" if case != "f" else "</div>")]
        slurm_log = same_error / "slurm" / "rule_infer" / case / f"401{ord(case)}.log"
        assert f"SLURM log <code>{slurm_log}</code>" in entry
        assert f"log <code>{same_error / 'logs' / 'infer' / f'{case}.log'}</code>" in entry
        assert f'failed: <a href="#case-{case}">{case}</a>' in entry
    failed = page[page.index('<div id="failed">'):page.index('<div id="worst">')]
    assert failed.count('its job <a href="#job-a.infer">a.infer</a> failed') == 1
    # summary.json keeps one entry per job, each with its logs
    jobs = json.loads(outputs.summary.read_text())["failed_jobs"]
    assert [(job["job"], job["cases"]) for job in jobs] == [(f"{case}.infer", [case]) for case in "abcdef"]


def test_the_report_command_names_jobs_that_failed_with_one_error_in_one_line(same_error, tmp_path, capsys):
    """`medseg report` printed one line per failed job, the same error in each."""
    from medseg.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(same_error), "-o", str(tmp_path / "report.html"), "--max-overlays", "0"])
    assert exit_info.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == (f"failed jobs: a.infer, b.infer, c.infer … (5 jobs), each: {SAID} (the first's log: "
                        f"{same_error / 'logs' / 'infer' / 'a.log'}; each job's logs are under Jobs that failed in "
                        f"{tmp_path / 'report.html'}); their cases a, b, c, d, e are listed as failed, and a later "
                        "run tries them again")
    assert lines[2] == (f"failed job: f.infer: RuntimeError: this torch is broken (its log: "
                        f"{same_error / 'logs' / 'infer' / 'f.log'}); its case f is listed as failed, and a later run "
                        "tries it again")
    assert lines[3].startswith("wrote ") and len(lines) == 4


def test_the_runs_last_line_names_the_jobs_that_failed_with_its_error(same_error, tmp_path):
    """The run's last line named the first job and 'as did 5 other jobs', which read as five other errors: it names
    the jobs that failed with the first job's error, and counts the others and their errors."""
    from medseg.cohort.check import check_failures
    from medseg.errors import CohortFailedError

    summary = same_error / "summary.json"
    summary.write_text(json.dumps({"cases": {"total": 6, "failed": 6}}))
    with pytest.raises(CohortFailedError) as error:
        check_failures(summary, "all")
    first = same_error / "logs" / "infer" / "a.log"
    slurm_log = same_error / "slurm" / "rule_infer" / "a" / f"401{ord('a')}.log"
    assert str(error.value) == (
        f"{same_error}: jobs a.infer, b.infer, c.infer … (5 jobs) failed on their last attempt for a reason of the "
        f"whole job, each: {SAID} (a.infer's log: {first}) (SLURM's log of a.infer's last attempt: {slurm_log}), as "
        f"did 1 other job for another error; their cases are listed as failed in {same_error / 'report.html'}, with "
        "each job's logs, and a later run tries them again")
    two = _failed_jobs_folder(tmp_path / "two", {"a": SAID, "b": SAID})
    (two / "summary.json").write_text(json.dumps({"cases": {"total": 2, "failed": 2}}))
    with pytest.raises(CohortFailedError, match=r": jobs a\.infer, b\.infer failed on their last attempt for a reason "
                                                rf"of the whole job, each: {SAID} \(a\.infer's log: .*\); their cases"):
        check_failures(two / "summary.json", "all")


def test_the_runs_last_line_groups_jobs_by_stage_as_the_report_does(same_error):
    """The report makes one entry of jobs whose stage, error type and error are the same; the run's last line grouped
    by error alone, so an inference job and a scoring job that failed alike were 'jobs a.infer, b.evaluate …, each'
    there but two entries on the page. A scoring job is counted among the others, as the page shows it."""
    from medseg.cohort.check import check_failures
    from medseg.errors import CohortFailedError

    (same_error / "jobs" / "b.infer.json").rename(same_error / "jobs" / "b.evaluate.json")
    summary = same_error / "summary.json"
    summary.write_text(json.dumps({"cases": {"total": 6, "failed": 6}}))
    with pytest.raises(CohortFailedError) as error:
        check_failures(summary, "all")
    assert (f": jobs a.infer, c.infer, d.infer … (4 jobs) failed on their last attempt for a reason of the whole job, "
            f"each: {SAID} (a.infer's log: ") in str(error.value)
    assert ", as did 2 other jobs for 2 other errors; their cases" in str(error.value)


def test_jobs_whose_errors_differ_only_by_their_own_slurm_log_are_one_entry(tmp_path, capsys):
    """A job whose every attempt stopped with medseg's error before it recorded anything (the sheet not on the nodes)
    is recorded with that error and SLURM's log of its last attempt in its text, which differs from job to job: such
    jobs, failing alike, were an entry and a console line each, the error repeated. They are one entry; the error is
    shown once with the log left to each job's own line."""
    from medseg.cli import main
    from medseg.cohort.check import check_failures
    from medseg.errors import CohortFailedError

    said = "every attempt (3) ended before medseg recorded anything, the last with medseg's error: /shared/s.tsv: gone"
    results = _failed_jobs_folder(tmp_path / "results", {case: said for case in "abc"})
    for path in [*(results / "jobs").glob("*.json"), *(results / "cases").glob("*/*_failed.json")]:
        record = json.loads(path.read_text())
        job = record.get("job") or record["job_error"]
        job["error"] = f"{said} (SLURM's log of the last attempt: {job['slurm_log']})"
        if "job" in record:
            record["error"] = record["error"].replace(f": {said}", f": {job['error']}")
        path.write_text(json.dumps(record))
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(results), "--max-overlays", "0"])
    assert exit_info.value.code == 0
    shared = f"{said} (SLURM's log of the last attempt: the job's own)"
    assert capsys.readouterr().out.splitlines()[1].startswith(f"failed jobs: a.infer, b.infer, c.infer, each: {shared}")
    page = (results / "report.html").read_text()
    block = page[page.index('<div id="jobs">'):page.index('<div id="failed">')]
    assert "<h3>3 jobs: a.infer, b.infer, c.infer</h3>" in block and block.count(html.escape(shared)) == 1
    assert all(f"SLURM log <code>{results / 'slurm' / 'rule_infer' / case / f'401{ord(case)}.log'}</code>" in block
               for case in "abc")
    (results / "summary.json").write_text(json.dumps({"cases": {"total": 3, "failed": 3}}))
    with pytest.raises(CohortFailedError, match=r": jobs a\.infer, b\.infer, c\.infer failed on their last attempt "
                                                r"for a reason of the whole job, each: .* \(a\.infer's log: .*; their"):
        check_failures(results / "summary.json", "all")


def test_many_jobs_that_failed_with_one_error_show_the_first_few_and_fold_the_rest_each_still_found(tmp_path):
    """300 jobs failing with one error (device: cuda on nodes without CUDA) were one entry, but it listed a line per
    job: a wall of 300 lines. The entry shows the first few jobs' lines and folds the others into "… and N more
    jobs", each keeping its line and its anchor there (its cases' rows link to it; a browser opens the fold it is
    in); summary.json and cohort.tsv name every job."""
    from medseg.report.build import build_report
    from medseg.report.failed_jobs import SHOWN_JOBS

    cases = [f"c{number:02d}" for number in range(12)]
    results = _failed_jobs_folder(tmp_path / "results", dict.fromkeys(cases, SAID))
    outputs = build_report(results, tmp_path / "report.html", max_overlays=0)
    page = outputs.html.read_text()
    block = page[page.index('<div id="jobs">'):page.index('<div id="failed">')]
    shown, folded = block.split("<details", 1)
    assert shown.count("<li ") == SHOWN_JOBS == 3 and folded.count("<li ") == 9
    assert "<summary>… and 9 more jobs with this error: their logs and cases</summary>" in folded
    for case in cases:  # every job's line once, with its anchor, its log and its case
        assert block.count(f'id="job-{case}.infer"') == 1
        assert f"log <code>{results / 'logs' / 'infer' / f'{case}.log'}</code>" in block
        assert f'failed: <a href="#case-{case}">{case}</a>' in block
    assert "every job with its logs: summary.json's failed_jobs" in block
    assert [job["job"] for job in json.loads(outputs.summary.read_text())["failed_jobs"]] == [
        f"{case}.infer" for case in cases]


def test_the_report_command_folds_failed_jobs_of_many_errors_after_the_first_few(tmp_path, capsys):
    """Jobs that failed each with its own error were a console line each: 300 of them a wall. The first few are
    told; then one line counts the others and says where each is listed."""
    from medseg.cli import main

    cases = [f"c{number:02d}" for number in range(8)]
    results = _failed_jobs_folder(tmp_path / "results", {case: f"RuntimeError: broken {case}" for case in cases})
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(results), "--max-overlays", "0"])
    assert exit_info.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":", 2)[1].strip() for line in lines[1:6]] == [f"{case}.infer" for case in cases[:5]]
    assert lines[6] == (f"… and 3 more failed jobs (3 other errors): each with its error and logs under Jobs that "
                        f"failed in {results / 'report.html'} and in {results / 'summary.json'}")
    assert lines[7].startswith("wrote ") and len(lines) == 8


def test_many_jobs_each_failed_its_own_way_show_the_first_entries_and_fold_the_rest(tmp_path):
    """Jobs that failed each with an error of its own are an entry each: 300 of them were 300 entries. The page shows
    the first ten and folds the others under one "… and N more errors", each entry keeping its anchor."""
    from medseg.report.build import build_report

    cases = [f"c{number:02d}" for number in range(14)]
    errors = {case: f"RuntimeError: broken {case}" for case in cases[:13]} | {"c13": "RuntimeError: broken c12"}
    results = _failed_jobs_folder(tmp_path / "results", errors)
    page = build_report(results, tmp_path / "report.html", max_overlays=0).html.read_text()
    block = page[page.index('<div id="jobs">'):page.index('<div id="failed">')]
    shown, folded = block.split("<details", 1)
    assert shown.count('<div class="job"') == 10 and folded.count('<div class="job"') == 3
    assert "<summary>… and 3 more errors (4 jobs): their entries</summary>" in folded
    assert all(block.count(f'id="job-{case}.infer"') == 1 for case in cases)
    assert "<h3>2 jobs: c12.infer, c13.infer</h3>" in folded
