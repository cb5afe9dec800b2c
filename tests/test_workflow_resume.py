"""Workflow runs killed (SIGKILL, Ctrl-C, SIGTERM, SIGHUP) or whose workers are killed, resumed with only their
unfinished cases."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import pytest
from cohort_cases import SMALL_IMAGES_SEGMENTED
from workflow_runs import (
    MODEL,
    SHAPE,
    SNAKEFILE,
    STOPS,
    _records,
    snakemake,
    write_sheet,
)

from medseg.synthetic import write_phantom

pytestmark = SMALL_IMAGES_SEGMENTED


def _kill_mid_batch(tmp_path: Path, names: list[str], seed: int, kill) -> tuple[list[str], Path, int]:
    """One batch of ``names`` (96x96x48 phantoms) started by Snakemake in its own session; ``kill(pid)`` once the
    first case has finished. Returns the command (to run again), the results folder and the run's exit code (minus
    the signal's number for a run the signal ended)."""
    data = tmp_path / "data"
    data.mkdir()
    for offset, name in enumerate(names):
        write_phantom(data / f"{name}.nii.gz", None, shape=(96, 96, 48), seed=seed + offset)
    sheet = write_sheet(data, [(name, f"{name}.nii.gz", "") for name in names])
    results = tmp_path / "results"
    settings = [f"model={MODEL}", f"samples={sheet}", f"results={results}", f"cases_per_job={len(names)}",
                "threads=1"]
    command = [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--directory", str(tmp_path),
               "--cores", "1", "--config", *settings]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not list(_records(results / "status")):
            time.sleep(0.05)
    finally:
        kill(process.pid)
        process.wait()
    return command, results, process.returncode


def test_a_killed_run_resumes_with_only_its_unfinished_cases(tmp_path):
    """SIGKILL the whole process group mid-batch, run the same command again: finished cases are kept."""
    names = [f"k{i}" for i in range(4)]
    command, results, _ = _kill_mid_batch(tmp_path, names, 30, lambda pid: os.killpg(pid, signal.SIGKILL))
    status = results / "status"
    done_before = {p.name: json.loads(p.read_text())["run_id"] for p in _records(status)}
    assert 1 <= len(done_before) < len(names), "the kill did not land in the middle of the batch"
    assert not (results / "jobs" / "batch001.infer.json").exists()
    assert list((tmp_path / ".snakemake" / "locks").glob("*.lock")), "SIGKILL should leave Snakemake's lock"

    # while a step of the killed run still works in the folder (one started by hand here), the lock is kept and the
    # run stops in one line saying so, where Snakemake's LockException advised --unlock
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "-m", "medseg", "cohort", "infer"],
                              cwd=tmp_path)
    try:
        held = subprocess.run(command, capture_output=True, text=True, timeout=300)
    finally:
        worker.kill()
        worker.wait()
    assert held.returncode == 1
    assert f"was killed, and its medseg step (pid {worker.pid}) is still working in {tmp_path}; run the same command " \
           "again once it has ended" in held.stderr, held.stderr[-3000:]
    assert "LockException" not in held.stdout + held.stderr

    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "left by a run that was killed" in rerun.stderr
    done_after = {p.name: json.loads(p.read_text())["run_id"] for p in _records(status)}
    assert len(done_after) == len(names)
    assert {name: done_after[name] for name in done_before} == done_before  # finished cases were not redone
    job = json.loads((results / "jobs" / "batch001.infer.json").read_text())
    reused = {case["case_id"] for case in job["cases"] if case["reused"]}
    assert reused == {name.split(".")[0] for name in done_before}
    assert job["counts"]["ok"] == len(names)
    for name in names:
        assert nib.load(results / "cases" / name / f"{name}_seg.nii.gz").shape == (96, 96, 48)
    assert not list(results.rglob(".ms-*"))
    assert (results / "report.html").is_file()


def test_a_run_killed_while_its_jobs_go_on_resumes_with_the_same_command(tmp_path):
    """SIGKILL Snakemake alone: its job goes on and writes its record after Snakemake is gone, so Snakemake's
    marker says the record is incomplete; the plain command stopped at IncompleteFilesException."""
    from medseg.cohort import snakelock

    names = [f"o{i}" for i in range(3)]
    # Snakemake only: its job is left running
    command, results, _ = _kill_mid_batch(tmp_path, names, 40, lambda pid: os.kill(pid, signal.SIGKILL))
    status = results / "status"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and snakelock.working_steps(tmp_path):
        time.sleep(0.1)
    record = results / "jobs" / "batch001.infer.json"
    assert record.is_file(), "the orphaned job should have finished its batch"
    done_before = {p.name: json.loads(p.read_text())["run_id"] for p in _records(status)}
    assert len(done_before) == len(names)

    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "IncompleteFilesException" not in rerun.stderr
    done_after = {p.name: json.loads(p.read_text())["run_id"] for p in _records(status)}
    assert done_after == done_before  # the batch ran again and kept every case
    assert {case["case_id"] for case in json.loads(record.read_text())["cases"] if case["reused"]} == set(names)
    assert (results / "report.html").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("stop", STOPS)
def test_a_run_stopped_with_ctrl_c_sigterm_or_sighup_leaves_nothing_behind_and_resumes(tmp_path, stop):
    """Ctrl-C (SIGINT to Snakemake and its jobs, as a terminal sends it) once the first case is finished: the run
    stops within seconds, its jobs say "Aborted.", and it leaves no Snakemake lock, no run record, no claim held on the
    results folder and no temporary file; the same command then finishes, keeping the finished cases and making the
    others. (Measured stopping at 0.5, 1, 2, 4, 6, 8 and 11 s into a 4-case run: stopped in 0.2-2 s each time, nothing
    left behind.) So does SIGTERM to them all (a SLURM time limit or scancel), with exit code 143, and SIGHUP (an ssh
    session closed under a run started without tmux or nohup; it ended Snakemake at once, leaving its lock, its run
    record and the claim on the results folder), with exit code 129."""
    said = {signal.SIGINT: "Aborted.", signal.SIGTERM: "Terminated."}.get(stop, "Hangup.")
    names = [f"i{i}" for i in range(3)]
    command, results, code = _kill_mid_batch(tmp_path, names, 50, lambda pid: os.killpg(pid, stop))
    assert code == 128 + stop
    status = results / "status"
    done_before = {p.name: json.loads(p.read_text())["run_id"] for p in _records(status)}
    assert 1 <= len(done_before) < len(names), "the stop did not land in the middle of the batch"
    state = tmp_path / ".snakemake"
    assert not list((state / "locks").glob("*.lock")) and not list((state / "medseg-runs").glob("*"))
    assert not [p for p in results.rglob(".*") if p.name != ".plan.json"]  # no writer's temporary file
    assert (results / "logs" / "infer" / "batch001.log").read_text().strip().endswith(said)
    for case in (results / "cases").iterdir():  # a case folder is finished, or holds nothing taken for finished
        assert (status / f"{case.name}.infer.json").is_file() or not list(case.glob("*_seg.json")), case

    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "another cohort run is writing" not in rerun.stderr and "LockException" not in rerun.stderr
    done_after = {p.name: json.loads(p.read_text())["run_id"] for p in _records(status)}
    assert len(done_after) == len(names)
    assert {name: done_after[name] for name in done_before} == done_before
    job = json.loads((results / "jobs" / "batch001.infer.json").read_text())  # the unfinished cases made, only they
    assert {case["case_id"] for case in job["cases"] if not case["reused"]} == set(names) - {
        name.split(".")[0] for name in done_before}
    assert (results / "report.html").is_file()


def _kill_worker_when_started(status: Path, case: str, attempt: int, deadline: float) -> None:
    """SIGKILL the `medseg cohort infer` process once it has started ``case`` for the ``attempt``-th time."""
    import psutil

    marker = status / f"{case}.infer.started.json"
    while time.monotonic() < deadline:
        try:
            record = json.loads(marker.read_text())
        except (OSError, ValueError):
            record = {}
        if record.get("attempts") == attempt:
            psutil.Process(record["pid"]).kill()
            return
        time.sleep(0.02)
    raise AssertionError(f"{case} was not started a {attempt}. time")


@pytest.mark.slow
@pytest.mark.parametrize("capped", [False, True], ids=["memory as asked", "memory capped by --resources"])
def test_a_case_that_kills_its_worker_ends_as_a_failure_and_the_rest_completes(tmp_path, capped):
    """A worker killed twice on the same case (as by a crash or the OOM killer): the job is retried with more memory,
    the case is recorded as failed on the last retry (so the run completes), and the other cases of its batch
    complete. Each attempt noted its job's memory; a later run with a larger mem_mb tries the case again. With
    Snakemake's --resources mem_mb capping the retries (1000, 2000, 2000 MB), the last retry did not know itself by
    its memory: it tried the case a third time and the run stopped without its report."""
    data = tmp_path / "data"
    data.mkdir()
    for seed, name in enumerate(("k0", "crash", "k2")):
        write_phantom(data / f"{name}.nii.gz", None, shape=(96, 96, 48), seed=60 + seed)
    sheet = write_sheet(data, [(name, f"{name}.nii.gz", "") for name in ("k0", "crash", "k2")])
    results = tmp_path / "results"
    settings = [f"model={MODEL}", f"samples={sheet}", f"results={results}", "cases_per_job=3", "mem_mb=1000"]
    command = [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--directory", str(tmp_path),
               "--cores", "1", *(["--resources", "mem_mb=2000"] if capped else []), "--config", *settings]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 400
        _kill_worker_when_started(results / "status", "crash", 1, deadline)
        _kill_worker_when_started(results / "status", "crash", 2, deadline)
        _, stderr = process.communicate(timeout=400)
    finally:
        process.kill()
    assert process.returncode == 0, stderr[-3000:]
    failure = json.loads((results / "cases" / "crash" / "crash_failed.json").read_text())
    assert (failure["stage"], failure["error_type"]) == ("infer", "WorkerDiedError")
    given_up = 2000 if capped else 3000
    assert "died 2 times" in failure["error"] and f"died with up to 2000 MB and was given up with {given_up} MB" in \
        failure["error"]
    job = json.loads((results / "jobs" / "batch001.infer.json").read_text())
    assert {c["case_id"]: (c["outcome"], c["reused"]) for c in job["cases"]} == {
        "k0": ("ok", True), "crash": ("failed", False), "k2": ("ok", False)}
    assert (results / "cases" / "k2" / "k2_seg.nii.gz").is_file()
    assert (results / "report.html").is_file()
    if capped:
        return
    # a mem_mb above what the case was offered (its last retry's 3000 MB): it is tried again (and, no longer
    # killed, segmented); the others are kept
    settings[-1] = "mem_mb=4000"
    rerun = subprocess.run(command[:-len(settings)] + settings, capture_output=True, text=True, timeout=400)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    job = json.loads((results / "jobs" / "batch001.infer.json").read_text())
    assert {c["case_id"]: (c["outcome"], c["reused"]) for c in job["cases"]} == {
        "k0": ("ok", True), "crash": ("ok", False), "k2": ("ok", True)}


def _given_up_at_2000_mb(tmp_path: Path):
    """Case a given up for killing its workers with 2000 MB, by a first run (b segmented here beforehand, as by an
    earlier run: the run's inference job then gives a up without importing torch and MONAI). Returns the runner of
    Snakemake in ``tmp_path`` (exit code 0 asserted) and a's inference outcome's reader."""
    from medseg.cohort import InferOptions, ResultsFolder, infer_cases, read_samples
    from medseg.cohort.fingerprints import infer_fingerprint
    from medseg.package import load_package

    data = tmp_path / "data"
    data.mkdir()
    for name, seed in (("a", 31), ("b", 32)):
        write_phantom(data / f"{name}.nii.gz", None, shape=SHAPE, seed=seed)
    sheet = write_sheet(data, [("a", "a.nii.gz", ""), ("b", "b.nii.gz", "")])
    results = tmp_path / "results"
    folder = ResultsFolder(results)
    sample, other = read_samples(sheet)
    options = InferOptions(model=MODEL, device="auto", precision="auto")
    assert infer_cases([other], results, options).count("ok") == 1
    print_ = infer_fingerprint(sample, load_package(MODEL), options)
    for attempt in (1, 2):  # as two workers killed with 2000 MB noted themselves
        folder.mark_started("a", "infer", print_, attempt, 2000)

    def run(*args: str) -> subprocess.CompletedProcess:
        done = snakemake(tmp_path, "--cores", "1", *args, samples=sheet, results=results, mem_mb=1000)
        assert done.returncode == 0, done.stderr[-3000:]
        return done

    def outcome() -> str:
        return folder.status("a", "infer")["outcome"]

    run()
    assert outcome() == "failed" and folder.status("a", "infer")["worker_given_up_memory_mb"] == 2000
    assert "setup (imports, model) 0.0 s" in (results / "logs" / "infer" / "batch001.log").read_text()
    return run, outcome


def test_a_larger_set_resources_memory_tries_a_given_up_case_again(tmp_path):
    """A case given up for killing its workers with 2000 MB: a rerun with --set-resources infer:mem_mb=3000 tries it
    again. That changes no job parameter, so Snakemake kept the finished batch and the case was never tried (the
    README said it would be). (As much memory as before, a cap by --resources and an expression of the attempt are
    the slow test below.)"""
    run, outcome = _given_up_at_2000_mb(tmp_path)
    results = tmp_path / "results"
    more = run("--set-resources", "infer:mem_mb=3000")
    assert "infer: a given up with less memory than this run's jobs start with (3000 MB): job batch001.infer will " \
           "run again" in more.stderr
    assert outcome() == "ok" and (results / "cases" / "a" / "a_seg.nii.gz").is_file()
    job = json.loads((results / "jobs" / "batch001.infer.json").read_text())
    assert {c["case_id"]: (c["outcome"], c["reused"]) for c in job["cases"]} == {"a": ("ok", False), "b": ("ok", True)}


@pytest.mark.slow  # in-process by default: test_stale_jobs.py's
# test_a_case_given_up_with_less_memory_than_its_batch_now_starts_with_voids_that_batch_and_is_not_finished (a batch
# starting with the memory the case was given up with keeps it given up; the preview's words) and
# test_cohort_settings.py's test_resource_settings_are_read_through_snakemakes_public_names (a --resources cap and
# an expression of the attempt followed)
def test_as_much_set_resources_memory_as_before_or_capped_keeps_a_given_up_case_given_up(tmp_path):
    """As much memory as the case was given up with keeps it given up, and nothing runs; so does more memory capped
    by --resources to as much; an expression of the attempt is worked out, and the preview names the job it will
    run again."""
    run, outcome = _given_up_at_2000_mb(tmp_path)
    again = run("--set-resources", "infer:mem_mb=2000")
    assert "Nothing to be done" in again.stderr and outcome() == "failed"
    # what the jobs will start with: --resources caps it; an expression of the attempt is worked out
    capped = run("-n", "--set-resources", "infer:mem_mb=3000", "--resources", "mem_mb=2000")
    assert "given up" not in capped.stdout + capped.stderr and "Nothing to be done" in capped.stdout
    preview = run("-n", "--set-resources", "infer:mem_mb=1500*(attempt+1)")
    assert "a given up with less memory than this run's jobs start with (3000 MB): job batch001.infer will run " \
           "again when the workflow runs" in preview.stdout + preview.stderr and outcome() == "failed"
