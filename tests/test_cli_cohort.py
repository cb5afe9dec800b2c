"""`medseg cohort` (medseg.cli.cohort): its infer, evaluate and check steps run from the command line, their
checks before any case runs, stops, and a step by hand beside a workflow run."""

from __future__ import annotations

import json
import logging
import os
import pwd
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from cohort_cases import (
    MODEL,
    _sheet,
    cohort_folder,  # noqa: F401  (the cohort fixture its tests take)
)

from medseg.cohort import batches, read_samples
from medseg.cohort.records import ResultsFolder
from medseg.synthetic import write_phantom


@pytest.mark.parametrize(("step", "unreadable", "mode", "problem"), [
    ("infer", "samples.tsv", 0o000, "cannot read the sample sheet"),
    ("evaluate", "results", 0o444, "cannot look at its files"),  # listable, but its files out of reach
    ("check", "results/summary.json", 0o000, "cannot read the cohort summary")])
def test_a_sheet_results_folder_or_summary_this_user_may_not_read_is_an_error_not_a_usage_error(tmp_path, step,
                                                                                                 unreadable, mode,
                                                                                                 problem, capsys):
    """click's own check made a sheet or results folder this user may not read a usage error (exit 2, "Try 'medseg
    cohort infer --help'"); without it, a results folder whose files it may not reach ended on a traceback, and a
    summary it may not read said to build the report first. One line now, exit 1, and nothing written."""

    from conftest import medseg_as_plain_user

    write_phantom(tmp_path / "a.nii.gz", tmp_path / "a_label.nii.gz", shape=(16, 16, 4), seed=1)
    _sheet(tmp_path, "case_id\timage\treference\na\ta.nii.gz\ta_label.nii.gz\n")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "summary.json").write_text(json.dumps({"cases": {"total": 1, "failed": 0}}))
    (tmp_path / unreadable).chmod(mode)
    arguments = [str(tmp_path / "results")] if step == "check" else [str(tmp_path / "samples.tsv"), "-o",
                                                                     str(tmp_path / "results")]
    try:
        run = medseg_as_plain_user(["cohort", step, *arguments], capsys)
    finally:
        (tmp_path / unreadable).chmod(0o755)
    assert (run.returncode, run.stderr.strip().splitlines()[-1]) == (
        1, f"medseg: error: {tmp_path / unreadable}: {problem} (permission denied)"), run.stderr
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["summary.json"]


def test_the_last_retry_is_told_by_the_attempt_else_by_the_memory():
    """`cohort infer|evaluate` run by hand may give --final-memory-mb; the Snakefile gives --attempt N M, which holds
    where --resources caps the retries' memory (the memory then never reaches the final figure)."""
    from medseg.cli.cohort import _final_attempt

    assert [_final_attempt(None, 6000, 6000), _final_attempt(None, 4000, 6000), _final_attempt(None, 6000, None)] \
        == [True, False, False]
    assert [_final_attempt((3, 3), 4000, 6000), _final_attempt((2, 3), 6000, 6000)] == [True, False]


def test_cli_refuses_unknown_cases(cohort, capsys):
    from medseg.cli import main

    sheet, results = cohort
    with pytest.raises(SystemExit) as caught:
        main(["cohort", "infer", str(sheet), "-o", str(results), "--case", "a", "--case", "zz"])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert f"not in {sheet}: zz" in err
    assert not results.exists()


def test_cli_runs_a_sheet_and_writes_its_record(cohort, capsys):
    from medseg.cli import main

    sheet, results = cohort
    record = results / "jobs" / "x.infer.json"
    with pytest.raises(SystemExit) as caught:
        main(["cohort", "infer", str(sheet), "-o", str(results), "--model", MODEL, "--device", "cpu",
              "--case", "bad", "--case", "c", "--record", str(record)])
    assert caught.value.code == 0
    captured = capsys.readouterr()
    assert "bad: failed" in captured.out and "c: ok" in captured.out
    assert "bad" not in captured.err  # the failure is reported once, not again as a log line
    job = json.loads(record.read_text())
    assert job["schema"] == "medseg-cohort-job/1" and job["counts"]["failed"] == 1 and job["counts"]["ok"] == 1
    sidecar = json.loads(next((results / "cases" / "c").glob("*_seg.json")).read_text())
    assert sidecar["invocation"] == {"argv": ["medseg", "cohort", "infer", str(sheet), "-o", str(results), "--model",
                                              MODEL, "--device", "cpu", "--case", "bad", "--case", "c", "--record",
                                              str(record)], "cwd": os.getcwd()}
    with pytest.raises(SystemExit) as caught:  # -q: only errors, and a failed case is one
        main(["-q", "cohort", "infer", str(sheet), "-o", str(results), "--model", MODEL, "--device", "cpu",
              "--case", "bad", "--case", "c"])
    assert caught.value.code == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("bad: failed (kept from an earlier run): read: ") and "c:" not in captured.out
    assert captured.err == ""


def test_a_record_that_cannot_be_written_is_refused_before_any_case_runs(cohort, capsys):
    """--record where no file can be made failed the job only after every case had been segmented."""
    from medseg.cli import main

    sheet, results = cohort
    blocker = results.parent / "blocker"
    blocker.write_text("a file where the record's folder would go")
    with pytest.raises(SystemExit) as caught:
        main(["cohort", "infer", str(sheet), "-o", str(results), "--model", MODEL, "--device", "cpu",
              "--case", "c", "--record", str(blocker / "jobs" / "x.infer.json")])
    assert caught.value.code == 1
    assert capsys.readouterr().err.startswith("medseg: error: ")
    assert not (results / "cases" / "c").exists()


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="cuda:7 must be missing")
def test_a_workflow_jobs_error_names_its_type_in_its_log(cohort, capsys):
    """A workflow job's attempt that ends with medseg's error before it records anything leaves its one line in the
    job's log, which the run copies into the job's record where no attempt recorded it; the line has no type, so the
    record named JobFailedError where the job's own record names DeviceError for the same cause. A workflow job
    (--in-workflow) says the type on the line before; a command run by hand does not."""
    from medseg.cli import main

    sheet, results = cohort
    command = ["cohort", "infer", str(sheet), "-o", str(results), "--model", MODEL, "--device", "cuda:7", "--case",
               "c", "--attempt", "1", "3"]
    for in_workflow in (True, False):
        with pytest.raises(SystemExit) as caught:
            main([*command, "--in-workflow"] if in_workflow else command)
        assert caught.value.code == 1
        lines = capsys.readouterr().err.strip().splitlines()
        assert lines[-1].startswith("medseg: error: ") and "cuda:7" in lines[-1]
        assert (lines[-2:-1] == ["medseg: error type: DeviceError"]) is in_workflow, lines


def test_sigterm_stops_the_cli_without_counting_a_crash(tmp_path):
    """A scheduler's SIGTERM (scancel, a time limit) mid-case: exit 143, the attempt is not counted."""
    import signal
    import time

    data = tmp_path / "data"
    data.mkdir()
    write_phantom(data / "big.nii.gz", None, shape=(256, 256, 96), seed=5)
    sheet = _sheet(data, "case_id\timage\nbig\tbig.nii.gz\n")
    results = tmp_path / "results"
    started = ResultsFolder(results).started_path("big", "infer")
    process = subprocess.Popen([sys.executable, "-m", "medseg", "cohort", "infer", str(sheet), "-o", str(results),
                                "--model", MODEL, "--device", "cpu", "--threads", "1"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not started.exists() and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.02)
    assert started.exists(), "the case never started"
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143, err[-2000:]
    assert not started.exists()
    assert ResultsFolder(results).status("big", "infer") is None and not list(results.rglob(".ms-*"))


def test_an_attempt_beyond_its_last_is_a_usage_error(cohort, capsys):
    """--attempt 3 2 was taken (exit 0), though N of at most M."""
    from medseg.cli import main

    sheet, results = cohort
    for command in ("infer", "evaluate"):
        with pytest.raises(SystemExit) as caught:
            main(["cohort", command, str(sheet), "-o", str(results), "--attempt", "3", "2"])
        assert caught.value.code == 2
        assert "Invalid value for '--attempt': attempt 3 of at most 2: N is at most M" in capsys.readouterr().err
    assert not results.exists()


@pytest.mark.parametrize("command", ["infer", "evaluate"])
def test_both_jobs_check_their_memory_attempt_and_record_before_anything_runs(tmp_path, capsys, command):
    """infer and evaluate share their job options and checks, in one order: the memory, the attempt, the record."""
    from medseg.cli import main

    sheet, results = tmp_path / "samples.tsv", tmp_path / "results"  # neither read: the checks come first
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the record's folder would go")
    record = ["--record", str(blocker / "jobs" / "x.json")]
    usage = f"medseg cohort {command}: error: {{}}. Try 'medseg cohort {command} --help'.\n"
    for options, code, message in (
            (["--final-memory-mb", "9000", "--attempt", "3", "2", *record], 2,
             usage.format("--final-memory-mb needs --memory-mb (the memory this job has)")),
            (["--memory-mb", "3000", "--attempt", "3", "2", *record], 2,
             usage.format("Invalid value for '--attempt': attempt 3 of at most 2: N is at most M")),
            (["--memory-mb", "3000", "--attempt", "2", "2", *record], 1, None)):
        with pytest.raises(SystemExit) as caught:
            main(["cohort", command, str(sheet), "-o", str(results), *options])
        assert caught.value.code == code
        err = capsys.readouterr().err
        if message is not None:
            assert err == message
        else:  # the record's place, named in one line
            assert err.startswith("medseg: error: ") and str(blocker) in err and len(err.splitlines()) == 1
    assert not results.exists() and not sheet.exists()


def test_a_step_by_hand_is_refused_while_a_workflow_run_holds_the_folder_and_its_jobs_go_on(cohort, capsys,
                                                                                           monkeypatch):
    """`medseg cohort infer` by hand beside a Snakemake run had replaced a case the run had just made and removed its
    fresh scores; the run's own jobs ($MEDSEG_COHORT_RUN, set by the Snakefile) go on."""
    from medseg.cli import main

    sheet, results = cohort
    monkeypatch.delenv("MEDSEG_COHORT_RUN", raising=False)
    holder = subprocess.Popen(  # the workflow's planning holds the results folder for the whole run
        [sys.executable, "-c", "import sys; from medseg.io.folder_claim import claimed\n"
         f"with claimed({str(results)!r}, 'cohort run'):\n"
         "    print('held', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1])
    try:
        assert holder.stdout.readline() == "held\n"
        for step in (["infer", "--model", MODEL, "--device", "cpu"], ["evaluate"]):
            with pytest.raises(SystemExit) as caught:
                main(["cohort", step[0], str(sheet), "-o", str(results), "--case", "c", *step[1:]])
            assert caught.value.code == 1
            assert capsys.readouterr().err == (
                f"medseg: error: {results}: another cohort run is writing to this folder (pid {holder.pid} on "
                f"{socket.gethostname()}, user {pwd.getpwuid(os.geteuid()).pw_name}, per "
                f"{results.parent / '.results.lock'}); wait for it to end or give another folder\n")
        assert not (results / "cases").exists()
        monkeypatch.setenv("MEDSEG_COHORT_RUN", "1")  # not the run's own: a job names the process holding the folder
        with pytest.raises(SystemExit) as caught:
            main(["cohort", "evaluate", str(sheet), "-o", str(results), "--case", "c"])
        assert caught.value.code == 1 and "another cohort run is writing to this folder" in capsys.readouterr().err
        monkeypatch.setenv("MEDSEG_COHORT_RUN", f"pid {holder.pid} on {socket.gethostname()}, user "  # one of its jobs
                           f"{pwd.getpwuid(os.geteuid()).pw_name}")
        with pytest.raises(SystemExit) as caught:
            main(["cohort", "infer", str(sheet), "-o", str(results), "--case", "c", "--model", MODEL, "--device",
                  "cpu"])
        assert caught.value.code == 0
        assert (results / "cases" / "c" / "c_seg.nii.gz").is_file()
    finally:
        holder.communicate("")


def test_a_job_skips_a_case_taken_out_of_the_sheet_since_its_run_planned(cohort, capsys, monkeypatch):
    """The sheet edited during a run: a job planned before the edit failed on its --case (exit 2, retried, the run
    ended without a report). By hand, a case not in the sheet is still a usage error."""
    from medseg.cli import main
    from medseg.io.folder_claim import claimed, holder_text

    sheet, results = cohort
    monkeypatch.setenv("MEDSEG_COHORT_RUN", holder_text())  # this process holds the folder, as the run's planning
    with claimed(results, "cohort run"), pytest.raises(SystemExit) as caught:
        main(["cohort", "infer", str(sheet), "-o", str(results), "--case", "gone2", "--case", "c", "--model", MODEL,
              "--device", "cpu"])
    assert caught.value.code == 0
    captured = capsys.readouterr()
    assert captured.err.startswith(
        f"warning: {sheet}: gone2 no longer in the sheet (edited since this run planned its jobs): skipped; the next "
        "run plans from the sheet as it is\n")
    assert "c: ok" in captured.out and not (results / "cases" / "gone2").exists()
    monkeypatch.delenv("MEDSEG_COHORT_RUN")
    with pytest.raises(SystemExit) as caught:
        main(["cohort", "infer", str(sheet), "-o", str(results), "--case", "gone2", "--model", MODEL])
    assert caught.value.code == 2
    assert f"not in {sheet}: gone2" in capsys.readouterr().err


def test_a_job_names_every_case_taken_out_of_the_sheet_and_every_row_changed_since_its_run_planned(cohort, capsys,
                                                                                                  monkeypatch):
    """The sheet edited during a run, one case taken out and another's row changed: the job's warning named only the
    case taken out, and the other was segmented from its new image without a word."""
    from medseg.cli import main
    from medseg.cohort import write_batch_plan
    from medseg.cohort.batch_plan import changed_since_planned
    from medseg.io.folder_claim import claimed, holder_text

    sheet, results = cohort
    monkeypatch.setenv("MEDSEG_COHORT_RUN", holder_text())  # this process holds the folder, as the run's planning
    with claimed(results, "cohort run"):
        write_batch_plan(results, 5, batches(read_samples(sheet), 5))  # as the run starts (onstart)
        sheet.write_text("case_id\timage\treference\na\ta.nii.gz\nc\tb.nii.gz\nbad\tbad.nii.gz\ta_label.nii.gz\n"
                         "gone\tgone.nii.gz\n")  # b taken out; c's image and a's reference changed
        assert changed_since_planned(results, read_samples(sheet)) == ["a", "c"]
        for cases, told in ((["b", "c"], "b no longer in the sheet, the row of c changed (edited since this run "
                                         "planned its jobs): b skipped, c run as the sheet has it now"),
                            (["a", "bad", "c"], "the rows of a, c changed (edited since this run planned its jobs): "
                                                "run as the sheet has them now")):
            with pytest.raises(SystemExit) as caught:
                main(["cohort", "infer", str(sheet), "-o", str(results), *[f"--case={case}" for case in cases],
                      "--model", MODEL, "--device", "cpu", "--threads", "1"])
            assert caught.value.code == 0
            assert capsys.readouterr().err.startswith(
                f"warning: {sheet}: {told}; the next run plans from the sheet as it is\n")
    sidecar = json.loads((results / "cases" / "c" / "c_seg.json").read_text())
    assert Path(sidecar["input"]).name == "b.nii.gz" and not (results / "cases" / "b").exists()
    (results / "jobs" / ".plan.json").write_text(json.dumps({"schema": "medseg-cohort-plan/1", "cases_per_job": 5,
                                                             "jobs": {"batch001": ["a", "c"]}}))
    assert changed_since_planned(results, read_samples(sheet)) == []  # a plan of an earlier medseg: no rows


def test_the_count_line_puts_the_kept_cases_among_all_cases(capsys):
    """Cases kept from earlier runs are ok, failed or skipped ones: the line read "3 ok, 0 failed, 0 skipped (2 of
    them kept from earlier runs)", two of none."""
    from medseg.cli import cli
    from medseg.cli.cohort import _report
    from medseg.cohort.run import CaseOutcome, JobSummary

    summary = JobSummary("infer", [CaseOutcome("a", "ok", True, 0.0), CaseOutcome("b", "ok", True, 0.0),
                                   CaseOutcome("c", "failed", False, 1.0)])
    with cli.make_context("medseg", ["models"]) as context, context:
        _report(summary, None)
    assert capsys.readouterr().err.startswith(
        "infer: 2 ok, 1 failed, 0 skipped (3 cases, 2 of them kept from earlier runs); ")
    # one case: "(1 cases, 1 of them kept from earlier runs)" said evaluate's line of a sheet with one reference
    with cli.make_context("medseg", ["models"]) as context, context:
        _report(JobSummary("evaluate", [CaseOutcome("a", "ok", True, 0.0)]), None)
    assert capsys.readouterr().err.startswith("evaluate: 1 ok, 0 failed, 0 skipped (1 case, kept from an earlier run)")


def test_with_v_each_case_is_told_once(tmp_path, capsys, caplog):
    """The workflow's jobs run `medseg -v cohort infer|evaluate`: each case's line came twice in their logs, the
    command's ("a: ok (0.8 s)") and the library's log line saying the same ("INFO medseg.cohort.run: a: segmented in
    0.83 s"), and as often for a case kept from an earlier run ("a: finished earlier (ok), kept"); the report job's
    "wrote" line too."""
    from medseg.cli import main

    write_phantom(tmp_path / "a.nii.gz", tmp_path / "a_label.nii.gz", shape=(16, 16, 4), seed=1)
    sheet = _sheet(tmp_path, "case_id\timage\treference\na\ta.nii.gz\ta_label.nii.gz\n")
    told = []
    for step in ("infer", "evaluate", "infer", "evaluate"):  # then again: the case kept
        options = ["--model", MODEL, "--device", "cpu"] if step == "infer" else []
        with pytest.raises(SystemExit) as caught:
            main(["-v", "cohort", step, str(sheet), "-o", str(tmp_path / "results"), "--threads", "1", *options])
        assert caught.value.code == 0
        logged = [record.getMessage() for record in caplog.records if record.levelno >= logging.INFO]  # as -v shows
        caplog.clear()
        told.append([line for line in capsys.readouterr().out.splitlines() + logged if "a: " in line])
    assert [len(lines) for lines in told] == [1, 1, 1, 1], told
    assert [line.split(" (")[0] for lines in told for line in lines] == ["a: ok"] * 4
    # the report job: "wrote report.html, cohort.tsv and summary.json" beside "wrote report.html (1 overlays, 0.4 s)"
    with pytest.raises(SystemExit) as caught:
        main(["-v", "report", str(tmp_path / "results"), "--max-overlays", "0"])
    assert caught.value.code == 0
    logged = [record.getMessage() for record in caplog.records if record.levelno >= logging.INFO]
    assert [line for line in capsys.readouterr().out.splitlines() + logged if line.startswith("wrote ")] == [
        f"wrote {tmp_path / 'results' / 'report.html'}, {tmp_path / 'results' / 'cohort.tsv'} and "
        f"{tmp_path / 'results' / 'summary.json'}"]




def test_the_count_lines_of_a_run_of_one_case_say_one_case(cohort, capsys):
    """``cohort infer`` and ``cohort evaluate`` of one case read "(1 cases, 0 of them kept from earlier runs)"."""
    from medseg.cli import main

    sheet, results = cohort
    told = []
    for step in ("infer", "evaluate"):
        options = ["--model", MODEL, "--device", "cpu"] if step == "infer" else []
        with pytest.raises(SystemExit) as caught:
            main(["cohort", step, str(sheet), "-o", str(results), "--case", "a", *options])
        assert caught.value.code == 0
        told.append(capsys.readouterr().err.splitlines()[-1].split("; setup")[0])
    assert told == ["infer: 1 ok, 0 failed, 0 skipped (1 case, none kept from earlier runs)",
                    "evaluate: 1 ok, 0 failed, 0 skipped (1 case, none kept from earlier runs)"]


@pytest.mark.parametrize(("stage", "kept", "said"), [
    ("infer", [False, False], "(2 cases, 0 of them kept from earlier runs)"),
    ("evaluate", [True], "(1 case, kept from an earlier run)"),
    ("evaluate", [False], "(1 case, none kept from earlier runs)")])
def test_the_count_line_counts_one_case_as_one(capsys, stage, kept, said):
    from medseg.cli import cli
    from medseg.cli.cohort import _report
    from medseg.cohort.run import CaseOutcome, JobSummary

    summary = JobSummary(stage, [CaseOutcome(f"c{n}", "ok", reused, 0.0) for n, reused in enumerate(kept)])
    with cli.make_context("medseg", ["models"]) as context, context:
        _report(summary, None)
    assert capsys.readouterr().err.startswith(f"{stage}: {len(kept)} ok, 0 failed, 0 skipped {said}; ")
