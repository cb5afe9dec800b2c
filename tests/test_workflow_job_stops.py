"""A stop while a cohort run's jobs run, in real Snakemake runs: one line and its exit code, the log's line, and
the jobs it did not reach; a run without hooks is refused."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from workflow_runs import (
    MODEL,
    SNAKEFILE,
    STOPS,
    _records,
    as_a_job_segments,
    sheet_of_own,
    snakemake,
    snakemake_log,
    workflow_cohort,  # noqa: F401  (the cohort fixture its tests take)
)


@contextlib.contextmanager
def _run_until_its_first_job(cohort, tmp_path, cases=("a",), script=None, options=(), config=()):
    """A cohort of one case (or ``cases``, one batch) run by Snakemake's command line (or by ``script``, which runs
    it) in a session of its own, its output in a console file, handed over (the process and that file) once its first
    job has started; killed on the way out if still running. ``options``: more of Snakemake's options (``-F``);
    ``config``: more settings (``overlap=0.5``)."""
    sheet = sheet_of_own(cohort, tmp_path, list(cases))
    results = tmp_path / "results"
    start = ["-m", "snakemake"] if script is None else ["-c", script]
    command = [sys.executable, *start, "-s", str(SNAKEFILE), "--directory", str(tmp_path), "--cores", "1", *options,
               "--config", f"model={MODEL}", f"samples={sheet}", f"results={results}",  # one batch (cases_per_job 10)
               *config]
    console = tmp_path.parent / f"{tmp_path.name}-console.txt"
    with open(console, "w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=output, start_new_session=True)
        try:
            deadline = time.monotonic() + 120
            while not (results / "logs" / "infer" / "batch001.log").exists():
                assert process.poll() is None and time.monotonic() < deadline, console.read_text()[-3000:]
                time.sleep(0.02)
            yield process, console
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.mark.parametrize("stop", STOPS)
def test_a_ctrl_c_sigterm_or_sighup_while_the_jobs_run_is_one_line_and_exit_130_143_or_129(cohort, tmp_path, stop):
    """Snakemake stops its jobs on a Ctrl-C and reports a failed run: its job error, "WorkflowError: At least one job
    did not complete successfully" and exit code 1, where a script expects 130 of an interrupt. A SIGTERM (a SLURM
    time limit or scancel, to every process of the job) ended so too, having waited for the running jobs, and had its
    job tried again ("Trying to restart job"); it is handled as a Ctrl-C is, with exit code 143. A SIGHUP (an ssh
    session closed) ended Snakemake at once, leaving its lock, run record and claim; it is handled so too, with exit
    code 129. The line is also the last of the run's Snakemake log, and no case's claim file is left. The stop (to the
    process group, as a terminal, SLURM or the shell of a closed session sends it) lands as the first job starts."""
    from medseg.cohort.planning_stop import run_stopped_line

    results = tmp_path / "results"
    with _run_until_its_first_job(cohort, tmp_path) as (process, console):
        # what a stop landing as a job took or gave back a case's claim leaves (the file, unlocked), which looked like
        # a crashed run's
        (results / "status").mkdir(parents=True, exist_ok=True)
        (results / "status" / ".b.lock").write_text("")
        os.killpg(process.pid, stop)
        process.wait(timeout=120)
    text = console.read_text()
    assert process.returncode == 128 + stop, text[-3000:]
    assert text.splitlines()[-1] == run_stopped_line(0, 1, stop)
    assert not list((results / "status").glob(".*.lock"))
    assert snakemake_log(tmp_path).splitlines()[-1] == run_stopped_line(0, 1, stop)
    assert "At least one job did not complete successfully" not in text and "Trying to restart job" not in text
    state = tmp_path / ".snakemake"  # the lock, the run record and the claim on the results folder given back
    assert not list((state / "locks").glob("*")) and not list((state / "medseg-runs").glob("*"))
    assert not (tmp_path / ".results.lock").exists()
    assert not (results / "jobs" / "batch001.infer.json").exists() and not (results / "report.html").exists()


@pytest.fixture(scope="module")
def made_a_and_b(cohort, tmp_path_factory) -> Path:
    """The results of one batch of cases a and b (cases_per_job 10), its jobs run in this process as the workflow
    runs them, once for the module's tests, which copy them."""
    from medseg.cohort import InferOptions, evaluate_cases, infer_cases, read_samples, write_job_record

    results = tmp_path_factory.mktemp("made") / "results"
    samples = read_samples(sheet_of_own(cohort, results.parent, ["a", "b"]))
    with as_a_job_segments():
        write_job_record(results / "jobs" / "batch001.infer.json", infer_cases(samples, results, InferOptions(MODEL)))
    write_job_record(results / "jobs" / "batch001.evaluate.json", evaluate_cases(samples, results))
    return results


@pytest.mark.parametrize(("options", "config"), [pytest.param((), ("overlap=0.5",), id="another-setting"),
                                                  pytest.param(("-F",), (), id="forced")])
def test_a_stopped_run_counts_only_the_cases_made_for_its_own_settings_as_finished(cohort, made_a_and_b, tmp_path,
                                                                                   options, config):
    """A run with another setting (the tile overlap), or forced (``-F``), makes every case again; stopped as its
    first job started, its line said "2 of 2 cases finished (kept)", counting the results the earlier run had made
    (still in the folder, but to be made again), so the line told a user that nothing was left to do. It counts the
    cases made for the stopped run's own work: none here. (The earlier run is the batch's jobs run in this process,
    as the workflow runs them, once for both parameters, each copying its results: a Snakemake run of its own per
    parameter took three more processes, two importing torch, MONAI or matplotlib.)"""
    import shutil

    from medseg.cohort.planning_stop import run_stopped_line

    results = tmp_path / "results"
    shutil.copytree(made_a_and_b, results)
    assert len(_records(results / "status")) == 2
    with _run_until_its_first_job(cohort, tmp_path, ("a", "b"), options=options, config=config) as (process, console):
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=120)
    text = console.read_text()
    assert process.returncode == 130, text[-3000:]
    assert text.splitlines()[-1] == run_stopped_line(0, 2), text[-3000:]


@pytest.mark.skipif(not hasattr(signal, "SIGHUP") or sys.platform != "linux", reason="a Linux pseudo-terminal")
def test_a_hangup_whose_terminal_is_gone_stops_the_run_and_leaves_its_line_in_the_log(cohort, tmp_path):
    """An ssh session closed under a run started without tmux or nohup: the terminal is gone (its writes fail with
    EIO) when the SIGHUP comes to the run's process group. Snakemake died at once, leaving its lock, its run record and
    the claim on the results folder. The run stops as on SIGTERM, exit code 129, and its line, which no terminal shows
    now, is the last of the run's Snakemake log; nothing partial is taken for finished."""
    import pty

    from medseg.cohort.planning_stop import run_stopped_line

    sheet = sheet_of_own(cohort, tmp_path, ["a", "b"])
    results = tmp_path / "results"
    command = [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--directory", str(tmp_path), "--cores", "1",
               "--config", f"model={MODEL}", f"samples={sheet}", f"results={results}"]
    try:
        master, terminal = pty.openpty()
    except OSError as error:
        pytest.skip(f"no pseudo-terminal here ({error})")
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=terminal, stderr=terminal,
                               start_new_session=True)
    os.close(terminal)
    seen = b""
    try:
        os.set_blocking(master, False)
        deadline = time.monotonic() + 120
        while not (results / "logs" / "infer" / "batch001.log").exists():  # the first job has started
            assert process.poll() is None and time.monotonic() < deadline, seen.decode(errors="replace")[-3000:]
            with contextlib.suppress(BlockingIOError):
                seen += os.read(master, 65536)  # read, so that Snakemake's output never waits on the terminal
            time.sleep(0.02)
    finally:
        os.close(master)  # the session is gone (the terminal's reads and writes fail with EIO) ...
    try:
        os.killpg(process.pid, signal.SIGHUP)  # ... and its shell hangs up the run's process group
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    log = snakemake_log(tmp_path)
    assert process.returncode == 129, log[-3000:]
    assert log.splitlines()[-1] == run_stopped_line(0, 2, signal.SIGHUP)
    assert "Traceback" not in log
    state = tmp_path / ".snakemake"  # the lock, the run record and the claim on the results folder given back
    assert not list((state / "locks").glob("*")) and not list((state / "medseg-runs").glob("*"))
    assert not (tmp_path / ".results.lock").exists()
    assert not (results / "jobs" / "batch001.infer.json").exists() and not (results / "report.html").exists()


def test_a_second_ctrl_c_while_the_run_stops_waits_for_the_way_out(cohort, tmp_path):
    """A Ctrl-C to Snakemake alone (``kill -INT PID``) reaches its local job through the run's stop file only, and
    Snakemake waits for the job to see it; a second Ctrl-C meanwhile (an impatient user) cut that wait short with three
    chained tracebacks (KeyboardInterrupt, then "Cannot close a running event loop"), where the run ends as after one:
    the line, exit code 130."""
    from medseg.cohort.planning_stop import run_stopped_line

    with _run_until_its_first_job(cohort, tmp_path) as (process, console):
        os.kill(process.pid, signal.SIGINT)  # Snakemake alone: it waits for its job (about 3 s: the imports)
        time.sleep(0.5)
        assert process.poll() is None, console.read_text()[-3000:]
        os.kill(process.pid, signal.SIGINT)
        process.wait(timeout=120)
    text = console.read_text()
    assert process.returncode == 130, text[-3000:]
    assert "Traceback" not in text and "KeyboardInterrupt" not in text
    assert text.splitlines()[-1] == run_stopped_line(0, 1)  # the job saw the stop file before its case
    assert not list((tmp_path / ".snakemake" / "locks").glob("*")) and not (tmp_path / ".results.lock").exists()


# Snakemake with a SIGTERM raised just as its local executor has queued a job's thread, before the job's process
# exists (the signal never reaches the job): the moment a stop lands as Snakemake starts a job
_TERM_AS_A_JOB_STARTS = """
import concurrent.futures, signal, sys
import snakemake.api
from snakemake.cli import main

submit = concurrent.futures.ThreadPoolExecutor.submit

def submitted_then_terminated(self, *args, **kwargs):
    future = submit(self, *args, **kwargs)
    if sys._getframe(1).f_code.co_name == "run_single_job":  # the local executor's: the first job, infer
        signal.raise_signal(signal.SIGTERM)
    return future

concurrent.futures.ThreadPoolExecutor.submit = submitted_then_terminated
sys.argv = ["snakemake", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize("to", ["snakemake alone", "a job as it starts"])
def test_a_job_the_stop_did_not_reach_ends_after_its_current_case(cohort, tmp_path, to):
    """A SIGTERM to Snakemake alone (``kill PID`` from another shell), or one that lands as Snakemake starts a local
    job (before the job's process exists), never reaches the job: it ran its whole batch to the end (a 4-case batch of
    1 s cases: 14 s from the signal to the run's end, measured), and the stopped run waited for it. The run writes its
    stop file, which the job reads between its cases: here, before its first (0 of 3 cases; 1.4 s measured; after it on
    a loaded machine, seen once), with the job's log ending as after the signal itself, and the stop file is gone with
    the run."""
    from medseg.cohort.planning_stop import run_stopped_line

    results = tmp_path / "results"
    clock = None
    if to == "snakemake alone":
        with _run_until_its_first_job(cohort, tmp_path, ("a", "b", "c")) as (process, console):
            os.kill(process.pid, signal.SIGTERM)
            clock = time.monotonic()
            process.wait(timeout=120)
    else:
        sheet = sheet_of_own(cohort, tmp_path, ["a", "b", "c"])
        command = [sys.executable, "-c", _TERM_AS_A_JOB_STARTS, "-s", str(SNAKEFILE), "--directory", str(tmp_path),
                   "--cores", "1", "--config", f"model={MODEL}", f"samples={sheet}", f"results={results}"]
        console = tmp_path.parent / f"{tmp_path.name}-console.txt"
        with open(console, "w") as output:
            process = subprocess.run(command, stdout=output, stderr=output, timeout=120)
    text = console.read_text()
    assert process.returncode == 143, text[-3000:]
    # before its first case, as a rule; on a loaded machine the job can reach its first case (its imports done) before
    # the run, its signal handled, writes the stop file: then it ends after that case, never going on to the next
    made = ["a.infer.json"] if text.splitlines()[-1] == run_stopped_line(0, 3, signal.SIGTERM, unscored=1) else []
    assert text.splitlines()[-1] == run_stopped_line(0, 3, signal.SIGTERM, unscored=len(made)), text[-3000:]
    assert "Traceback" not in text
    assert (results / "logs" / "infer" / "batch001.log").read_text().splitlines()[-1] == "Terminated."
    assert sorted(path.name for path in _records(results / "status")) == made
    assert not (results / "jobs" / "batch001.infer.json").exists()
    state = tmp_path / ".snakemake"
    assert not list((state / "medseg-runs").glob("*")) and not list((state / "locks").glob("*"))
    if clock is not None:
        assert time.monotonic() - clock < 60


def test_a_run_without_hooks_is_refused_in_one_line_before_any_work(cohort, tmp_path):
    """--no-hooks skipped onstart: the run wrote no batch plan (a cluster job planned its batches again) and no run
    record (the lock of such a run, killed, was never released), and a Ctrl-C ended it as a failed run. It is a
    usage error (a dry run with it, where no hook runs anyway, is not: test_invocation)."""
    from medseg.cohort import NO_HOOKS_REFUSED

    sheet = sheet_of_own(cohort, tmp_path, ["a"])
    refused = snakemake(tmp_path, "--cores", "1", "--no-hooks", samples=sheet, results=tmp_path / "results")
    assert refused.returncode == 2, refused.stderr[-3000:]
    assert refused.stderr.strip().splitlines()[-1] == NO_HOOKS_REFUSED
    assert "Traceback" not in refused.stderr
    assert not (tmp_path / "results").exists() and not (tmp_path / ".results.lock").exists()
    assert not list((tmp_path / ".snakemake" / "locks").glob("*"))
