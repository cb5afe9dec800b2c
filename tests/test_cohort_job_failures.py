"""Workflow jobs whose last attempt fails as a whole (medseg.cohort.run): a scoring job, an error medseg did not raise;
and how the report shows such a job (medseg.report.failed_jobs)."""

from __future__ import annotations

import csv
import html
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from cohort_cases import (
    MODEL,
    SMALL_IMAGES_SEGMENTED,
    broken_install,
    cohort_folder,  # noqa: F401  (the cohort fixture its tests take)
    half_erased,
    write_cohort_data,
)

from medseg.cohort import InferOptions, Sample, infer_cases, read_samples, write_job_record
from medseg.cohort.records import ResultsFolder

pytestmark = SMALL_IMAGES_SEGMENTED

REPO = Path(__file__).resolve().parents[1]


def _job(command: list[str], **options) -> subprocess.CompletedProcess:
    """``python -m medseg`` with ``command``, as a workflow job runs it."""
    return subprocess.run([sys.executable, "-m", "medseg", *command], capture_output=True, text=True, timeout=300,
                          cwd=REPO, **options)


def _sheet(folder: Path, data: Path, cases: tuple[str, ...], references: Path) -> Path:
    """A sheet of the cohort's ``cases`` whose references are in ``references`` (copied there)."""
    references.mkdir()
    rows = []
    for case in cases:
        (references / f"{case}_label.nii.gz").write_bytes((data / f"{case}_label.nii.gz").read_bytes())
        rows.append(f"{case}\t{data / f'{case}.nii.gz'}\t{references / f'{case}_label.nii.gz'}\n")
    sheet = folder / "own.tsv"
    sheet.write_text("case_id\timage\treference\n" + "".join(rows))
    return sheet


def test_a_scoring_job_that_fails_as_a_whole_on_its_last_attempt_records_its_cases(cohort, tmp_path):
    """A scoring job whose every attempt failed as a whole (here a broken SciPy install, whose RuntimeError medseg did
    not raise, as the job imports it for the first case it scores, b) left no job record, and the run no report. On
    its last attempt it records the cases it has not scored as failed at evaluate (b), naming the job, its error and
    its log; their segmentations are kept, and so are a's scores, made earlier against a reference replaced since,
    which the job's record names as kept (the report tells them from scores made by the run). A later run scores
    them again."""
    from medseg.cohort import evaluate_cases
    from medseg.cohort.check import failed_jobs

    sheet, results = cohort
    own = _sheet(tmp_path, sheet.parent, ("b", "a"), tmp_path / "labels")
    samples = read_samples(own)
    assert infer_cases(samples, results, InferOptions(MODEL)).count("ok") == 2
    assert evaluate_cases(samples[1:], results).count("ok") == 1
    half_erased(tmp_path / "labels" / "a_label.nii.gz")
    folder = ResultsFolder(results)
    scores, made = folder.metrics("a").read_bytes(), folder.segmentation("a").read_bytes()
    record, log = results / "jobs" / "batch001.evaluate.json", results / "logs" / "evaluate" / "batch001.log"
    log.parent.mkdir(parents=True)
    job = ["cohort", "evaluate", str(own), "-o", str(results), "--record", str(record), "--job-log", str(log)]
    broken = broken_install(tmp_path, "scipy")
    earlier = _job([*job, "--attempt", "2", "3"], env=broken)
    assert earlier.returncode == 1 and not record.exists(), earlier.stderr[-3000:]  # Snakemake tries it again
    assert not folder.failure("b").exists()
    last = _job([*job, "--attempt", "3", "3"], env=broken)
    assert last.returncode == 0, last.stderr[-3000:]
    line = "RuntimeError: this scipy install is broken"
    job_error = {"error": line, "error_type": "RuntimeError", "log": str(log), "slurm_log": None}
    written = json.loads(record.read_text())
    assert (written["stage"], written["counts"], written["job_error"]) == (
        "evaluate", {"ok": 1, "failed": 1, "skipped": 0, "reused": 1}, {**job_error, "kept_earlier": ["a"]})
    assert failed_jobs(results) == [("batch001.evaluate", written["job_error"])]
    assert folder.metrics("a").read_bytes() == scores and not folder.failure("a").exists()
    failure = json.loads(folder.failure("b").read_text())
    assert (failure["stage"], failure["error_type"], failure["error"]) == (
        "evaluate", "JobFailedError",
        f"{samples[0].image}: not scored: its job batch001.evaluate failed on its last attempt for a reason of the "
        f"whole job, not of this case: {line}; the job's log: {log}; a later run tries it again")
    assert failure["job"] == {"name": "batch001.evaluate", "stage": "evaluate", **job_error}
    assert folder.status("b", "evaluate")["job_failed"] is True
    assert folder.segmentation("a").read_bytes() == made and folder.status("a", "infer")["outcome"] == "ok"
    # SciPy put right: the next run scores both (the job-failed records are not finished ones; a's reference changed)
    again = _job(job[:5])
    assert again.returncode == 0, again.stderr[-3000:]
    assert "evaluate: 2 ok, 0 failed, 0 skipped (2 cases, 0 of them kept from earlier runs)" in again.stderr
    assert folder.metrics("b").is_file() and not folder.failure("b").exists()
    assert folder.metrics("a").read_bytes() != scores


def test_an_inference_job_failing_with_an_error_medseg_did_not_raise_records_its_cases(cohort, tmp_path):
    """An inference job whose model could not be loaded for an error that is not medseg's (a broken install's
    RuntimeError, a MemoryError while torch and MONAI load: here a MONAI that fails as it is imported) left no job
    record on its last attempt, and the run no report. Its cases are recorded as failed with the error's type and
    message, as for a medseg error. (One type stands for all: the job takes any Exception alike; each process spent
    some 4 CPU-s importing torch.)"""
    error = "RuntimeError"
    sheet, results = cohort
    env = broken_install(tmp_path, "monai", error)
    record, log = results / "jobs" / "batch001.infer.json", results / "logs" / "infer" / "batch001.log"
    job = ["cohort", "infer", str(sheet), "-o", str(results), "--case", "a", "--case", "b", "--model", MODEL,
           "--device", "cpu", "--attempt", "3", "3", "--record", str(record), "--job-log", str(log)]
    done = _job(job, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    line = f"{error}: this monai install is broken"
    assert json.loads(record.read_text())["job_error"] == {"error": line, "error_type": error, "log": str(log),
                                                                  "slurm_log": None}
    folder = ResultsFolder(results)
    failure = json.loads(folder.failure("b").read_text())
    assert (failure["stage"], failure["error_type"]) == ("infer", "JobFailedError")
    assert f"not segmented: its job batch001.infer failed on its last attempt for a reason of the whole job, not of " \
           f"this case: {line}; the job's log: {log}" in failure["error"]
    assert f"{line}" in done.stderr and "Traceback" in done.stderr  # the log keeps where it was raised


def test_a_stop_while_the_model_loads_is_not_taken_for_the_jobs_failure(cohort, tmp_path):
    """A Ctrl-C (KeyboardInterrupt) on the last attempt stops the job as before: no record, no case recorded."""
    sheet, results = cohort
    env = broken_install(tmp_path, "monai", "KeyboardInterrupt")
    record = results / "jobs" / "batch001.infer.json"
    done = _job(["cohort", "infer", str(sheet), "-o", str(results), "--case", "a", "--model", MODEL, "--device", "cpu",
                 "--attempt", "3", "3", "--record", str(record)], env=env)
    assert done.returncode == 130, done.stderr[-3000:]
    assert not record.exists() and not ResultsFolder(results).failure("a").exists()


@pytest.fixture(scope="module")
def failed_job(tmp_path_factory) -> tuple[Path, Path, dict]:
    """A results folder whose job batch001.infer failed on its last attempt (--device cuda:7): a kept, segmented
    earlier on the CPU; b and c recorded as failed. Its job record is written. Made once for the tests that report
    on it, which write their reports elsewhere."""
    root = tmp_path_factory.mktemp("failed_job")
    data = write_cohort_data(root / "data", seeds=(1, 2, 3))
    results = root / "results"
    samples = [Sample(case, data / f"{case}.nii.gz", data / f"{case}_label.nii.gz" if case != "c" else None)
               for case in ("a", "b", "c")]
    options = InferOptions(model=MODEL, device="cpu", batch_size=8)
    assert [c.outcome for c in infer_cases(samples[:1], results, options).cases] == ["ok"]
    log = results / "logs" / "infer" / "batch001.log"
    failed = infer_cases(samples, results, replace(options, device="cuda:7", job="batch001.infer", job_log=str(log),
                                                   final_attempt=True))
    assert [(c.case_id, c.outcome, c.reused) for c in failed.cases] == [
        ("a", "ok", True), ("b", "failed", False), ("c", "failed", False)]
    assert failed.job_error["kept_earlier"] == ["a"]  # segmented with other settings: not this run's
    write_job_record(results / "jobs" / "batch001.infer.json", failed)
    return results, log, failed.job_error


@pytest.mark.skipif(__import__("torch").cuda.device_count() > 7, reason="needs a machine without an eighth GPU")
def test_the_report_shows_a_failed_jobs_error_once_with_the_cases_it_covered(failed_job, tmp_path):
    """The report repeated a failed job's error in every one of its cases' rows, and showed a case the job kept
    (segmented earlier with other settings) as ok like a case the run made. It names each failed job once: its error,
    its log, the cases it failed and those it kept; the failed cases' rows point to it."""
    from medseg.report import build_report

    results, log, job_error = failed_job
    build_report(results, tmp_path / "report.html", sheet=None, max_overlays=0)
    page = (tmp_path / "report.html").read_text()
    assert "'cuda:7'" in job_error["error"]  # a quote, which the page writes as an entity
    assert page.count(html.escape(job_error["error"])) == 1  # once, in the job's block
    block = page[page.index('<div id="jobs">'):page.index('<div id="failed">')]
    assert "<h2>Jobs that failed (1)</h2>" in block and 'id="job-batch001.infer"' in block
    assert f"<code>{log}</code>" in block
    assert 'failed: <a href="#case-b">b</a>, <a href="#case-c">c</a>' in block
    assert 'kept from an earlier run, not made by this one: <a href="#case-a">a</a>' in block
    failed = page[page.index('<div id="failed">'):page.index('<div id="worst">')]
    assert failed.count('its job <a href="#job-batch001.infer">batch001.infer</a> failed') == 2
    # summary.json and cohort.tsv account for the job as the page does: its error and log once, the cases it failed
    # and those it kept; each failed case's row names it (they did not: only the error text of each row said so)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["failed_jobs"] == [{"job": "batch001.infer", "stage": "infer", "error": job_error["error"],
                                       "error_type": "DeviceError", "log": str(log), "cases": ["b", "c"],
                                       "kept": ["a"], "slurm_log": None}]
    with open(tmp_path / "cohort.tsv", newline="") as handle:
        rows = {row["case_id"]: row for row in csv.DictReader(handle, delimiter="\t")}
    assert {case: (row["status"] == "failed", row["failed_job"]) for case, row in rows.items()} == {
        "a": (False, ""), "b": (True, "batch001.infer"), "c": (True, "batch001.infer")}
    worst = page[page.index('<div id="worst">'):page.index('<div id="plots">')]
    row = worst[worst.index('id="row-case-a"'):]
    assert ('kept from an earlier run; its job <a href="#job-batch001.infer">batch001.infer</a> failed'
            in row[:row.index("</tr>")])


@pytest.mark.skipif(__import__("torch").cuda.device_count() > 7, reason="needs a machine without an eighth GPU")
def test_the_report_command_names_a_failed_job_once_on_the_console(failed_job, tmp_path, capsys):
    """`medseg report` printed the job's error once per case (``failed: b: …/b.nii.gz: not segmented: its job …``),
    which the workflow's check puts on the console: one line per job now, naming its cases."""
    from medseg.cli import main

    results, log, job_error = failed_job
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(results), "-o", str(tmp_path), "--max-overlays", "0"])
    assert exit_info.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("3 cases (2 failed, ")
    assert lines[1] == (f"failed job: batch001.infer: {job_error['error']} (its log: {log}); its cases b, c are "
                        "listed as failed, and a later run tries them again; a kept from an earlier run")
    assert lines[2].startswith("wrote "), lines


def test_a_results_folder_taking_no_records_names_the_jobs_own_os_error_not_about_the_folder(tmp_path):
    """Any OSError that failed the job was taken for the folder's own (a full disk) and left out of the one line; a
    library that cannot be loaded (an OSError of its own) hid the job's real cause."""
    import errno

    from medseg.cohort.records import ResultsFolder
    from medseg.cohort.run import _JobFailure, _no_records
    from medseg.errors import OutputWriteError

    folder = ResultsFolder(tmp_path / "results")
    job = _JobFailure("infer", "batch001.infer")
    full = OutputWriteError(f"{tmp_path}/x: cannot write (no space left on device)")
    full.__cause__ = OSError(errno.ENOSPC, "No space left on device")
    library = OSError(errno.ENOENT, "libtorch_cuda.so: cannot open shared object file")
    assert "the job's own error" not in str(_no_records(folder, job, full, full))
    assert "the job's own error" not in str(_no_records(folder, job, OSError(errno.ENOSPC, "full"), full))
    line = str(_no_records(folder, job, library, full))
    own = "FileNotFoundError: [Errno 2] libtorch_cuda.so: cannot open shared object file"
    assert f"(the job's own error: {own})" in line


@pytest.mark.skipif(__import__("torch").cuda.device_count() > 7, reason="needs a machine without an eighth GPU")
def test_a_failed_job_under_slurm_names_slurms_own_log_in_its_records_and_the_report(tmp_path, monkeypatch):
    """Under SLURM a failed job's records, summary.json's failed_jobs and the report named the rule log alone, which
    each attempt rewrites, not SLURM's own log of the attempt (<slurm-logdir>/rule_infer/<batch>/<job id>.log, where
    SLURM writes its oom_kill or DUE TO TIME LIMIT line), which the console named. The job finds it from the folder the
    workflow tells it and $SLURM_JOB_ID, and every record of the job names it."""
    from medseg.report import build_report

    data = write_cohort_data(tmp_path / "data", seeds=(4,))
    results = tmp_path / "results"
    slurm_logs = tmp_path / "slurm-logs"
    monkeypatch.setenv("MEDSEG_SLURM_LOGDIR", str(slurm_logs))
    monkeypatch.setenv("SLURM_JOB_ID", "4242009")
    log = results / "logs" / "infer" / "batch001.log"
    failed = infer_cases([Sample("a", data / "a.nii.gz", data / "a_label.nii.gz")], results,
                         InferOptions(model=MODEL, device="cuda:7", job="batch001.infer", job_log=str(log),
                                      final_attempt=True))
    slurm_log = str(slurm_logs / "rule_infer" / "batch001" / "4242009.log")
    assert failed.job_error["slurm_log"] == slurm_log and failed.job_error["log"] == str(log)
    write_job_record(results / "jobs" / "batch001.infer.json", failed)
    failure = json.loads(ResultsFolder(results).failure("a").read_text())
    assert failure["job"]["slurm_log"] == slurm_log
    assert f"; the job's log: {log}; SLURM's log of the attempt: {slurm_log}; " in failure["error"]
    build_report(results, tmp_path / "report.html", sheet=None, max_overlays=0)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["failed_jobs"][0]["slurm_log"] == slurm_log and summary["failed_jobs"][0]["cases"] == ["a"]
    page = (tmp_path / "report.html").read_text()
    block = page[page.index('<div id="jobs">'):page.index('<div id="failed">')]
    assert f"SLURM log <code>{slurm_log}</code>" in block
    # outside SLURM there is none, and summary.json says so (null)
    monkeypatch.delenv("SLURM_JOB_ID")
    again = infer_cases([Sample("a", data / "a.nii.gz", data / "a_label.nii.gz")], tmp_path / "local",
                        InferOptions(model=MODEL, device="cuda:7", job="batch001.infer", final_attempt=True))
    assert again.job_error["slurm_log"] is None
