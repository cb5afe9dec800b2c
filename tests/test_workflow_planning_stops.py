"""A Ctrl-C, SIGTERM or SIGHUP while Snakemake plans a cohort run, lists its jobs or runs its hooks: one line and
its exit code, in real Snakemake runs."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time

import pytest
from workflow_runs import (
    MODEL,
    SNAKEFILE,
    STOPS,
    kept_by_its_job,
    made_beforehand,
    sheet_of_own,
    snakemake_log,
    workflow_cohort,  # noqa: F401  (the cohort fixture its tests take)
)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes (POSIX)")
@pytest.mark.parametrize("stop", STOPS)
def test_a_ctrl_c_sigterm_or_sighup_while_the_run_is_planned_is_one_line_and_exit_130_143_or_129(tmp_path, stop):
    """A Ctrl-C while Snakemake read the Snakefile and planned the jobs ended in a KeyboardInterrupt traceback of
    whatever was running (30-90 lines; Snakemake catches Exception there, not KeyboardInterrupt); a SIGTERM ended the
    process at once, without a word (and with Snakemake's lock left, once it had taken it), and so did a SIGHUP. The
    line is in the run's Snakemake log too. The sheet is a named pipe here, so that the stop lands while planning reads
    it: once the pipe opens for writing, planning is waiting on it."""
    from medseg.cohort.planning_stop import PLANNING_STOPPED, planning_stopped_line

    sheet = tmp_path / "samples.tsv"
    os.mkfifo(sheet)
    command = [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--directory", str(tmp_path), "--cores", "1",
               "--config", f"model={MODEL}", f"samples={sheet}", f"results={tmp_path / 'results'}"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    writer = None
    try:
        deadline = time.monotonic() + 120
        while writer is None:
            try:
                writer = os.open(sheet, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as error:  # ENXIO: no reader yet
                assert error.errno == errno.ENXIO, error
                assert process.poll() is None and time.monotonic() < deadline, "planning never read the sheet"
                time.sleep(0.02)
        os.killpg(process.pid, stop)  # as a terminal (or SLURM) sends it, to Snakemake's process group
        out, err = process.communicate(timeout=120)
    finally:
        if writer is not None:
            os.close(writer)
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 128 + stop, err[-3000:]
    assert err.splitlines()[-1] == planning_stopped_line(stop)
    assert planning_stopped_line(signal.SIGINT) == PLANNING_STOPPED
    assert snakemake_log(tmp_path).splitlines()[-1] == planning_stopped_line(stop)
    assert "Traceback" not in out + err and "KeyboardInterrupt" not in out + err
    assert not list((tmp_path / ".snakemake" / "locks").glob("*")) and not (tmp_path / "results").exists()


@pytest.mark.skipif(sys.platform != "linux", reason="needs pipes whose size can be set (Linux)")
def test_a_ctrl_c_while_a_dry_run_lists_its_jobs_is_one_line_and_exit_130(cohort, tmp_path):
    """Snakemake runs no onstart in a dry run: the planning handler stayed, and its exit was taken by Snakemake's job
    loop (or its log writer) as a failed run (exit 1) or not at all (the listing went on, exit 0). Output goes to a
    4 KiB pipe read up to the job stats, which Snakemake prints once the jobs are planned: the listing then waits on
    the pipe, and the stop lands there."""
    import fcntl

    from medseg.cohort.planning_stop import PLANNING_STOPPED

    sheet = sheet_of_own(cohort, tmp_path, [f"case{i}" for i in range(20)])
    reader, writer = os.pipe()
    fcntl.fcntl(writer, fcntl.F_SETPIPE_SZ, 4096)
    command = [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--directory", str(tmp_path), "--cores", "1",
               "-n", "--config", f"model={MODEL}", f"samples={sheet}", f"results={tmp_path / 'results'}",
               "cases_per_job=1"]
    process = subprocess.Popen(command, stdout=writer, stderr=writer, start_new_session=True)
    os.close(writer)
    output = os.fdopen(reader, "r")
    try:
        seen = []
        for line in output:
            seen.append(line)
            if line.startswith("Job stats"):
                break
        assert seen and seen[-1].startswith("Job stats"), "".join(seen)[-3000:]
        time.sleep(0.5)  # the listing fills the pipe and waits on it
        os.killpg(process.pid, signal.SIGINT)
        rest = output.read()
        process.wait(timeout=120)
    finally:
        output.close()
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, rest[-3000:]
    assert rest.splitlines()[-1] == PLANNING_STOPPED
    assert "This was a dry-run" not in rest and "Traceback" not in rest
    assert not (tmp_path / "results").exists()


# Snakemake with a Ctrl-C (SIGINT) raised as it logs the planned jobs' stats: its scheduler is made, no job started
_STOP_AT_JOB_STATS = """
import signal, sys
import snakemake.api
import snakemake.dag
from snakemake.cli import main

stats = snakemake.dag.DAG.stats

def interrupted(self, *args, **kwargs):
    signal.raise_signal(signal.SIGINT)
    return stats(self, *args, **kwargs)

snakemake.dag.DAG.stats = interrupted
sys.argv = ["snakemake", *sys.argv[1:]]
main()
"""


def test_a_ctrl_c_after_the_jobs_are_planned_and_before_any_starts_is_one_line_and_exit_130(cohort, tmp_path):
    """Snakemake makes the jobs' scheduler before it logs their stats and runs onstart: a Ctrl-C there was taken for
    one Snakemake's job loop handles, and ended in a KeyboardInterrupt traceback; no job had started."""
    from medseg.cohort.planning_stop import PLANNING_STOPPED

    sheet = sheet_of_own(cohort, tmp_path, ["a"])
    command = [sys.executable, "-c", _STOP_AT_JOB_STATS, "-s", str(SNAKEFILE), "--directory", str(tmp_path),
               "--cores", "1", "--config", f"model={MODEL}", f"samples={sheet}",
               f"results={tmp_path / 'results'}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 130, done.stderr[-3000:]
    assert done.stderr.splitlines()[-1] == PLANNING_STOPPED
    assert "Traceback" not in done.stdout + done.stderr and "KeyboardInterrupt" not in done.stdout + done.stderr
    assert not list((tmp_path / ".snakemake" / "locks").glob("*")) and not (tmp_path / "results").exists()


# Snakemake started as a script starts it in its background (SIGINT ignored), with a Ctrl-C raised as it logs the
# planned jobs' stats and another once onstart gave the jobs their handlers
_CTRL_C_IGNORED = """
import signal, sys
import snakemake.api
import snakemake.dag
from snakemake.cli import main
from medseg.cohort import planning_stop

signal.signal(signal.SIGINT, signal.SIG_IGN)  # snakemake ... & in a shell that is not interactive
stats = snakemake.dag.DAG.stats
done = planning_stop.planning_done

def interrupted(self, *args, **kwargs):
    signal.raise_signal(signal.SIGINT)
    return stats(self, *args, **kwargs)

def then_interrupted(*args, **kwargs):
    done(*args, **kwargs)
    signal.raise_signal(signal.SIGINT)

snakemake.dag.DAG.stats = interrupted
planning_stop.planning_done = then_interrupted
sys.argv = ["snakemake", *sys.argv[1:]]
main()
"""


def test_a_run_started_with_ctrl_c_ignored_is_not_stopped_by_one(cohort, tmp_path):
    """A run that a script starts in its background (``snakemake ... &`` in a shell that is not interactive sets SIGINT
    to be ignored) had medseg's Ctrl-C handler set all the same: a Ctrl-C meant for the script's terminal stopped the
    run while it was planned (exit 130) or its jobs ran, where medseg's own commands leave an ignored SIGINT ignored,
    as they do SIGHUP under nohup. It stays ignored: the run goes on to its end (its case made beforehand in this
    process: its inference job keeps it, without torch's and MONAI's imports)."""
    sheet = sheet_of_own(cohort, tmp_path, ["a"])
    results = tmp_path / "results"
    made_beforehand(sheet, results)
    command = [sys.executable, "-c", _CTRL_C_IGNORED, "-s", str(SNAKEFILE), "--directory", str(tmp_path),
               "--cores", "1", "--config", f"model={MODEL}", f"samples={sheet}", f"results={results}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "stopped" not in done.stderr and "KeyboardInterrupt" not in done.stderr
    assert (results / "cases" / "a" / "a_seg.nii.gz").is_file() and (results / "cohort.tsv").is_file()
    assert kept_by_its_job(results)


# Snakemake with a SIGTERM raised as it makes the jobs' scheduler: it holds its lock, and no job has started
_TERM_AT_SCHEDULER = """
import signal, sys
import snakemake.api
import snakemake.workflow
from snakemake.cli import main

scheduler = snakemake.workflow.JobScheduler

def terminated(*args, **kwargs):
    signal.raise_signal(signal.SIGTERM)
    return scheduler(*args, **kwargs)

snakemake.workflow.JobScheduler = terminated
sys.argv = ["snakemake", *sys.argv[1:]]
main()
"""


def test_a_sigterm_once_snakemake_holds_its_lock_and_before_any_job_releases_the_lock(cohort, tmp_path):
    """A SIGTERM while the run was planned ended the process at once: once Snakemake had taken its lock (as it builds
    the jobs), the lock stayed, with no run record to tell that the run was gone, and the next run stopped until
    --unlock. It ends as a Ctrl-C there does: the line, exit code 143, the lock and the results folder given back."""
    from medseg.cohort.planning_stop import planning_stopped_line

    sheet = sheet_of_own(cohort, tmp_path, ["a"])
    command = [sys.executable, "-c", _TERM_AT_SCHEDULER, "-s", str(SNAKEFILE), "--directory", str(tmp_path),
               "--cores", "1", "--config", f"model={MODEL}", f"samples={sheet}", f"results={tmp_path / 'results'}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 143, done.stderr[-3000:]
    assert done.stderr.splitlines()[-1] == planning_stopped_line(signal.SIGTERM)
    assert not list((tmp_path / ".snakemake" / "locks").glob("*")) and not (tmp_path / ".results.lock").exists()
    assert not (tmp_path / "results").exists()


def test_a_sigterm_once_snakemake_has_made_its_scheduler_and_before_onstart_is_one_line_and_143(cohort, tmp_path):
    """Snakemake sets its own SIGTERM handler as it makes the jobs' scheduler, and medseg's comes back at onstart; a
    SIGTERM in between was Snakemake's: it started no job and ended as a failed run ("At least one job did not complete
    successfully", exit code 1). It ends as one a moment earlier does: the planning line and exit code 143."""
    from medseg.cohort.planning_stop import planning_stopped_line

    sheet = sheet_of_own(cohort, tmp_path, ["a"])
    after_the_scheduler = _TERM_AT_SCHEDULER.replace(
        "    signal.raise_signal(signal.SIGTERM)\n    return scheduler(*args, **kwargs)",
        "    made = scheduler(*args, **kwargs)\n    signal.raise_signal(signal.SIGTERM)\n    return made")
    assert after_the_scheduler != _TERM_AT_SCHEDULER
    command = [sys.executable, "-c", after_the_scheduler, "-s", str(SNAKEFILE), "--directory", str(tmp_path),
               "--cores", "1", "--config", f"model={MODEL}", f"samples={sheet}", f"results={tmp_path / 'results'}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 143, done.stderr[-3000:]
    assert done.stderr.splitlines()[-1] == planning_stopped_line(signal.SIGTERM)
    assert "Traceback" not in done.stderr and "did not complete successfully" not in done.stderr
    assert not list((tmp_path / ".snakemake" / "locks").glob("*")) and not (tmp_path / ".results.lock").exists()
    assert not list((tmp_path / ".snakemake" / "medseg-runs").glob("*"))
    assert not (tmp_path / "results").exists()


# Snakemake with a Ctrl-C raised as the workflow's hook onstart records the run, or as onsuccess forgets it
_CTRL_C_IN_A_HOOK = """
import signal, sys
import snakemake.api
from snakemake.cli import main
from medseg.cohort import snakelock

hooked = getattr(snakelock, sys.argv[1])

def interrupted(*args, **kwargs):
    signal.raise_signal(signal.SIGINT)
    return hooked(*args, **kwargs)

setattr(snakelock, sys.argv[1], interrupted)
sys.argv = ["snakemake", *sys.argv[2:]]
main()
"""


@pytest.mark.parametrize("hook", ["onstart", "onsuccess"])
def test_a_ctrl_c_in_the_runs_onstart_or_onsuccess_is_no_traceback(cohort, tmp_path, hook):
    """A Ctrl-C as onstart wrote the batch plan or the run record (after it gave Snakemake its Ctrl-C back) ended in a
    KeyboardInterrupt traceback, the run record left; one as onsuccess forgot it (every job done) ended in a traceback
    and exit code 1. In onstart, which starts no job, it is a stop while the run is planned: that line, exit code 130,
    nothing held left; in onsuccess the outcome is decided: the run ends as it would have, exit code 0. (The case is
    made beforehand in this process: the run's inference job keeps it, without torch's and MONAI's imports.)"""
    from medseg.cohort.planning_stop import PLANNING_STOPPED

    sheet = sheet_of_own(cohort, tmp_path, ["a"])
    results = tmp_path / "results"
    if hook == "onsuccess":
        made_beforehand(sheet, results)
    patched = "record_run" if hook == "onstart" else "forget_run"
    command = [sys.executable, "-c", _CTRL_C_IN_A_HOOK, patched, "-s", str(SNAKEFILE), "--directory", str(tmp_path),
               "--cores", "1", "--config", f"model={MODEL}", f"samples={sheet}", f"results={results}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert "Traceback" not in done.stderr and "KeyboardInterrupt" not in done.stderr, done.stderr[-3000:]
    if hook == "onstart":
        assert done.returncode == 130, done.stderr[-3000:]
        assert done.stderr.splitlines()[-1] == PLANNING_STOPPED
        assert not (results / "cases").exists()
    else:
        assert done.returncode == 0, done.stderr[-3000:]
        assert (results / "report.html").is_file() and kept_by_its_job(results)
    state = tmp_path / ".snakemake"
    assert not list((state / "locks").glob("*")) and not list((state / "medseg-runs").glob("*"))
    assert not (tmp_path / ".results.lock").exists()


def test_a_ctrl_c_while_a_dry_run_of_touch_lists_its_jobs_leaves_no_claim_file(cohort, tmp_path):
    """A dry run of --touch holds the results folder (a lock file beside it, given back at exit); a Ctrl-C while it
    listed its jobs ended it with os._exit, which runs no exit handler, and the lock file stayed."""
    from medseg.cohort.planning_stop import PLANNING_STOPPED

    sheet = sheet_of_own(cohort, tmp_path, ["a"])
    stop_at_listing = _STOP_AT_JOB_STATS.replace("snakemake.dag.DAG.stats", "JobScheduler.run").replace(
        "import snakemake.dag\n", "import snakemake.dag\nfrom snakemake.scheduling.job_scheduler import JobScheduler\n")
    command = [sys.executable, "-c", stop_at_listing, "-s", str(SNAKEFILE), "--directory", str(tmp_path),
               "--cores", "1", "-n", "--touch", "--config", f"model={MODEL}", f"samples={sheet}",
               f"results={tmp_path / 'results'}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 130, done.stderr[-3000:]
    assert done.stderr.splitlines()[-1] == PLANNING_STOPPED
    assert "Traceback" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [".snakemake"]  # no .results.lock, no results folder
