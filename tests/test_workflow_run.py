"""The Snakefile run for real by Snakemake on a small synthetic cohort with a corrupt and a missing case.

Checks the outputs of every case, the failure records, the QA report, that a second run does nothing, runs
through Snakemake's API, runs whose cases all fail, that the jobs run the medseg beside the Snakefile, and that
profiles/slurm runs the cohort through the SLURM executor plugin (against stand-in SLURM commands,
``tests/fake_slurm.py``).
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from html import escape
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from workflow_runs import (
    MODEL,
    REPO,
    SHAPE,
    SNAKEFILE,
    kept_by_its_job,
    sheet_of_own,
    snakemake,
    workflow_cohort,  # noqa: F401  (the cohort fixture its tests take)
    write_sheet,
)

from medseg.synthetic import write_phantom


@pytest.fixture(scope="module")
def finished(cohort) -> tuple[Path, Path, subprocess.CompletedProcess]:
    """The cohort run once, as a user would, without --keep-going."""
    folder, sheet = cohort
    results = folder / "results"
    run = snakemake(folder, "--cores", "2", samples=sheet, results=results, cases_per_job=3)
    return folder, results, run


def test_the_run_completes_despite_bad_cases(finished):
    folder, results, run = finished
    assert run.returncode == 0, run.stderr[-3000:]
    assert "steps (100%) done" in run.stderr
    # what became of the cases is on the console, not only in the report's log
    assert "5 cases (2 failed, " in run.stdout + run.stderr and f"wrote {results / 'report.html'}" in run.stdout
    failed = [line for line in run.stdout.splitlines() if line.startswith("failed: ")]
    assert [line.split(":")[1] for line in failed] == [" bad", " gone"], failed
    assert "truncated image data (its gzip stream ends early); the file was cut short" in failed[0]
    assert str(folder / "data" / "bad.nii.gz") in failed[0]
    # the demo model is named as such (a sheet of real scans run without model= got synthetic-shape labels)
    demo = "model phantom: the shipped demo model (synthetic shapes only), the default of configs/cohort.yaml"
    assert (demo in run.stderr) == (MODEL == "phantom")
    data = folder / "data"
    for case in ("a", "b", "c"):
        seg = nib.load(results / "cases" / case / f"{case}_seg.nii.gz")
        image = nib.load(data / f"{case}.nii.gz")
        assert seg.shape == SHAPE
        np.testing.assert_array_equal(seg.affine, image.affine)
        assert seg.get_data_dtype() == np.uint8
        sidecar = json.loads((results / "cases" / case / f"{case}_seg.json").read_text())
        assert sidecar["case_id"] == case and sidecar["input"] == str(data / f"{case}.nii.gz")
    for case in ("a", "b"):
        metrics = json.loads((results / "cases" / case / f"{case}_metrics.json").read_text())
        assert metrics["case_id"] == case and metrics["reference"] == str(data / f"{case}_label.nii.gz")
        assert [entry["name"] for entry in metrics["labels"].values()] == ["ellipsoid", "box", "tube"]
        dice = metrics["labels"]["1"]["dice"]
        assert dice is not None and 0.0 <= dice <= 1.0
        if MODEL == "phantom":  # the shipped model finds the ellipsoid even on these small grids (0.92-0.96)
            assert dice > 0.85
    assert not (results / "cases" / "c" / "c_metrics.json").exists()
    # every rule leaves its log and benchmark
    assert sorted(p.name for p in (results / "logs" / "infer").iterdir()) == ["batch001.log", "batch002.log"]
    assert sorted(p.name for p in (results / "benchmarks" / "evaluate").iterdir()) == ["batch001.tsv",
                                                                                        "batch002.tsv"]
    assert (results / "logs" / "report.log").is_file() and (results / "benchmarks" / "report.tsv").is_file()
    job = json.loads((results / "jobs" / "batch001.infer.json").read_text())
    assert [case["case_id"] for case in job["cases"]] == ["a", "b", "c"]
    assert job["counts"] == {"ok": 3, "failed": 0, "skipped": 0, "reused": 0}


def test_a_row_taken_out_reruns_its_own_job_only(finished):
    """Jobs were cut by position: a row taken out moved every later case into another job, and every later job ran
    again (on SLURM, resubmitted) only to find its cases done."""
    folder, results, _ = finished
    sheet = folder / "data" / "samples.tsv"
    text = sheet.read_text()
    try:
        sheet.write_text("".join(line for line in text.splitlines(keepends=True) if not line.startswith("a\t")))
        run = snakemake(folder, "-n", "--cores", "2", samples=sheet, results=results, cases_per_job=3)
        assert run.returncode == 0, run.stderr[-3000:]
        planned = set(re.findall(r"batch=(\w+)", run.stdout + run.stderr))
        assert planned == {"batch001"}, planned  # [a, b, c] is now [b, c]; [bad, gone] stays as it was
    finally:
        sheet.write_text(text)


def test_a_job_a_cluster_starts_finds_the_jobs_its_run_planned(finished, tmp_path):
    """A job on a cluster reads the Snakefile again while other jobs write their records: jobs planned from the
    records it found were other jobs (batch001 unknown once batch002's record was there), and Snakemake crashed."""
    import shutil

    folder, results, _ = finished
    copy = tmp_path / "results"
    shutil.copytree(results, copy)
    (copy / "jobs" / "batch001.infer.json").unlink()  # batch001 still running, batch002 done
    (copy / "jobs" / "batch001.evaluate.json").unlink()
    run = snakemake(folder, "-n", "-p", "--mode", "remote", "--target-jobs", "infer:batch=batch001", "--cores", "1",
                    samples=folder / "data" / "samples.tsv", results=copy, cases_per_job=3)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "--case a --case b --case c" in run.stdout + run.stderr


def test_bad_cases_end_as_failure_records(finished):
    folder, results, _ = finished
    bad = json.loads((results / "cases" / "bad" / "bad_failed.json").read_text())
    assert bad["schema"] == "medseg-failure/1"
    assert (bad["case_id"], bad["stage"], bad["error_type"]) == ("bad", "read", "ImageReadError")
    assert bad["input"] == str(folder / "data" / "bad.nii.gz")
    assert bad["reference"] == str(folder / "data" / "b_label.nii.gz")
    assert "truncated image data (its gzip stream ends early); the file was cut short" in bad["error"]
    gone = json.loads((results / "cases" / "gone" / "gone_failed.json").read_text())
    assert gone["stage"] == "read" and gone["reference"] is None and "no such file" in gone["error"]
    assert sorted(p.name for p in (results / "cases" / "bad").iterdir()) == ["bad_failed.json"]
    job = json.loads((results / "jobs" / "batch002.infer.json").read_text())
    assert job["counts"] == {"ok": 0, "failed": 2, "skipped": 0, "reused": 0}


def test_the_report_shows_every_case_and_the_failures(finished):
    _, results, _ = finished
    with open(results / "cohort.tsv", newline="") as handle:
        rows = {row["case_id"]: row for row in csv.DictReader(handle, delimiter="\t")}
    assert set(rows) == {"a", "b", "c", "bad", "gone"}
    assert {case: rows[case]["status"] for case in rows} == {
        "a": "scored", "b": "scored", "c": "no_reference", "bad": "failed", "gone": "failed"}
    assert rows["bad"]["failed_stage"] == "read" and "truncated" in rows["bad"]["error"]
    # when each case was segmented and when scored, each in its own column: `created` held the segmentation's time,
    # else the scoring's, and a reader could not tell which (kept as it was, for older readers)
    for case in ("a", "b", "c"):
        sidecar = json.loads((results / "cases" / case / f"{case}_seg.json").read_text())
        scored = results / "cases" / case / f"{case}_metrics.json"
        assert rows[case]["segmented_at"] == sidecar["created"] == rows[case]["created"]
        assert rows[case]["scored_at"] == (json.loads(scored.read_text())["created"] if case != "c" else "")
    assert [rows[case][column] for case in ("bad", "gone") for column in ("segmented_at", "scored_at")] == [""] * 4
    summary = json.loads((results / "summary.json").read_text())
    assert {k: summary["cases"][k] for k in ("total", "scored", "no_reference", "failed")} == {
        "total": 5, "scored": 2, "no_reference": 1, "failed": 2}
    html = (results / "report.html").read_text()
    assert "truncated image data (its gzip stream ends early); the file was cut short" in html and "gone.nii.gz" in html


def _documented_results() -> list[re.Pattern]:
    """The files of docs/cohorts.md's results tree (its section "Results folder"), as patterns of paths under
    RESULTS: ``<id>`` any case id, ``<batch>`` a batch (``batch001``), ``<stage>`` a job's (``infer``, ``evaluate``),
    a folder (``RESULTS/logs/``) everything under it; a line's later names (``, cohort.tsv``) in its first's folder."""
    from documents import read, section

    tree = section(read("docs/cohorts.md"), "Results folder").split("```")[1]
    placeholders = {"<id>": "[^/]+", "<batch>": r"batch\d+", "<stage>": "(infer|evaluate)"}
    patterns = []
    for line in tree.splitlines():
        if not line.startswith("RESULTS/"):
            continue
        names = re.split(r"\s{2,}", line)[0].split(", ")
        folder = names[0].rpartition("/")[0] + "/"
        for name in names:
            path = (name if name.startswith("RESULTS/") else folder + name).removeprefix("RESULTS/")
            text = re.escape(path)
            for placeholder, pattern in placeholders.items():
                text = text.replace(re.escape(placeholder), pattern)
            patterns.append(re.compile(text + (".+" if path.endswith("/") else "")))
    return patterns


def test_every_file_a_run_writes_is_in_the_documented_results_tree(finished):
    """docs/cohorts.md's tree of the results folder left out jobs/cohort.check.json, which the run's last step
    writes (and Snakemake tracks): every file a run leaves is now in it."""
    _, results, run = finished
    patterns = _documented_results()
    written = sorted(str(path.relative_to(results)) for path in results.rglob("*") if not path.is_dir())
    assert "jobs/cohort.check.json" in written, run.stderr[-3000:]
    assert [path for path in written if not any(pattern.fullmatch(path) for pattern in patterns)] == []


def test_a_second_run_does_nothing(finished):
    folder, results, _ = finished
    status = {p.name: p.read_text() for p in (results / "status").iterdir()}
    run = snakemake(folder, "--cores", "2", samples=folder / "data" / "samples.tsv", results=results,
                    cases_per_job=3)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Nothing to be done" in run.stderr
    assert {p.name: p.read_text() for p in (results / "status").iterdir()} == status
    # the same sheet named another way (relative to the working folder, through ..): every job ran again
    for named in ("data/samples.tsv", "data/../data/samples.tsv"):
        run = snakemake(folder, "-n", "--cores", "2", samples=named, results=results, cases_per_job=3)
        assert run.returncode == 0 and "Nothing to be done" in run.stderr + run.stdout, (named, run.stderr[-3000:])


# the workflow run through Snakemake's Python API by a program with its own SIGINT and SIGTERM handlers: argv is
# SNAKEFILE WORKDIR MODE KEY=VALUE..., MODE dryrun, run, no_hooks (a run with the setting no_hooks) or no_cores (a run
# the API refuses once the Snakefile is read: no cores given); it says on its last line whether each handler is its own
# again (no_cores: after it raised SIGINT and SIGTERM, and on a line of its own which of them its handler received)
_THROUGH_THE_API = """
import signal, sys
from pathlib import Path

from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, ExecutionSettings, OutputSettings, ResourceSettings

snakefile, workdir, mode, *settings = sys.argv[1:]

received = []

def callers(number, frame):
    received.append(int(number))

signal.signal(signal.SIGINT, callers)
signal.signal(signal.SIGTERM, callers)
config = {key: int(value) if value.isdigit() else value for key, value in (text.split("=", 1) for text in settings)}
try:
    with SnakemakeApi(OutputSettings()) as api:
        resources = ResourceSettings() if mode == "no_cores" else ResourceSettings(cores=1)
        workflow = api.workflow(resource_settings=resources, snakefile=Path(snakefile),
                                config_settings=ConfigSettings(config=config), workdir=Path(workdir))
        if mode == "dryrun":
            workflow.dag().execute_workflow(executor="dryrun")
        else:
            workflow.dag().execute_workflow(execution_settings=ExecutionSettings(no_hooks=mode == "no_hooks"))
except SystemExit as stop:
    print(f"exit {stop.code}", file=sys.stderr)
except Exception as error:
    print(f"raised {type(error).__name__}", file=sys.stderr)
if mode == "no_cores":
    signal.raise_signal(signal.SIGINT)
    signal.raise_signal(signal.SIGTERM)
print("handlers", *(signal.getsignal(number) is callers for number in (signal.SIGINT, signal.SIGTERM)),
      file=sys.stderr)
if mode == "no_cores":
    print("received", *received, file=sys.stderr)
"""


def _through_the_api(workdir: Path, mode: str, **config) -> subprocess.CompletedProcess:
    settings = [f"{key}={value}" for key, value in {"model": MODEL, **config}.items()]
    return subprocess.run([sys.executable, "-c", _THROUGH_THE_API, str(SNAKEFILE), str(workdir), mode, *settings],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("way_out", ["dry run", "nothing to do", "refused setting"])
def test_a_run_through_snakemakes_api_that_reaches_no_hook_gives_the_callers_handlers_back(finished, tmp_path,
                                                                                          way_out):
    """A dry run and a run with nothing to do run no hook, and a setting refused while planning ends the run before
    any: the planning SIGINT handler stayed in the program that ran the workflow through Snakemake's API (a Ctrl-C
    there called sys.exit), and so did Snakemake's SIGTERM handler of the finished run (it swallowed the next one)."""
    folder, results, run = finished
    assert run.returncode == 0, run.stderr[-3000:]
    sheet = folder / "data" / "samples.tsv"
    if way_out == "nothing to do":
        done = _through_the_api(folder, "run", samples=sheet, results=results, cases_per_job=3)
        assert "Nothing to be done" in done.stderr, done.stderr[-3000:]
    elif way_out == "dry run":
        done = _through_the_api(tmp_path, "dryrun", samples=sheet, results=tmp_path / "results")
        assert "This was a dry-run" in done.stderr, done.stderr[-3000:]
    else:
        done = _through_the_api(tmp_path, "run", samples=sheet, results=tmp_path / "results", cases_per_job=0)
        assert "exit medseg: error: config cases_per_job" in done.stderr, done.stderr[-3000:]
    assert done.stderr.splitlines()[-1] == "handlers True True", done.stderr[-3000:]


# a dry run through Snakemake's Python API, with a Ctrl-C raised as its job loop lists the first job; the program says
# what reached it, whether its own code after the run ran, and whether its handlers are its own again
_API_STOP_AT_LISTING = """
import signal, sys
from pathlib import Path

import snakemake.api
from snakemake.api import SnakemakeApi
from snakemake.scheduling.job_scheduler import JobScheduler
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

snakefile, workdir, *settings = sys.argv[1:]
run = JobScheduler.run

def interrupted(self, *args, **kwargs):
    signal.raise_signal(signal.SIGINT)
    return run(self, *args, **kwargs)

def callers(number, frame):
    pass

JobScheduler.run = interrupted
signal.signal(signal.SIGINT, callers)
config = dict(text.split("=", 1) for text in settings)
try:
    with SnakemakeApi(OutputSettings()) as api:
        workflow = api.workflow(resource_settings=ResourceSettings(cores=1), snakefile=Path(snakefile),
                                config_settings=ConfigSettings(config=config), workdir=Path(workdir))
        workflow.dag().execute_workflow(executor="dryrun")
    print("returned", file=sys.stderr)
except SystemExit as stop:
    print(f"exit {stop.code}", file=sys.stderr)
print("handlers", signal.getsignal(signal.SIGINT) is callers, file=sys.stderr)
"""


def test_a_ctrl_c_while_a_dry_run_through_snakemakes_api_lists_its_jobs_does_not_end_the_program(cohort, tmp_path):
    """A Ctrl-C while a dry run listed its jobs ended the process with os._exit: right for Snakemake's command line,
    whose process ends with the run, but a program running the workflow through Snakemake's API (a notebook's kernel
    among them) was ended too, its own clean-up skipped. It gets the line and SystemExit(130), as for a stop anywhere
    else while the run is planned, and its handler back."""
    from medseg.cohort.planning_stop import PLANNING_STOPPED

    sheet = sheet_of_own(cohort, tmp_path, ["a"])
    done = subprocess.run([sys.executable, "-c", _API_STOP_AT_LISTING, str(SNAKEFILE), str(tmp_path),
                           f"model={MODEL}", f"samples={sheet}", f"results={tmp_path / 'results'}"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stderr.splitlines()
    assert PLANNING_STOPPED in lines and lines[-2:] == ["exit 130", "handlers True"], done.stderr[-3000:]
    assert "Traceback" not in done.stderr and not (tmp_path / "results").exists()


def test_a_stop_after_snakemakes_api_refused_the_run_goes_to_the_callers_handlers(cohort, tmp_path):
    """Snakemake's API refuses a run (here: no cores given) after it has read the Snakefile, before the run: the
    planning handler stayed in the program, whose next Ctrl-C or SIGTERM, wherever it came, was told as "stopped while
    the cohort run was being planned" and raised SystemExit. They go to the program's own handlers."""
    sheet = sheet_of_own(cohort, tmp_path, ["a"])
    done = _through_the_api(tmp_path, "no_cores", samples=sheet, results=tmp_path / "results")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.splitlines()[-3:] == ["raised ApiError", "handlers True True",
                                             f"received {int(signal.SIGINT)} {int(signal.SIGTERM)}"], \
        done.stderr[-3000:]
    assert "stopped while the cohort run was being planned" not in done.stderr


def test_no_hooks_in_the_settings_of_snakemakes_api_is_refused_before_any_job(cohort, tmp_path):
    """--no-hooks was refused on the command line only: the same setting given through Snakemake's Python API (which
    no command line carries) ran the cohort's jobs without the run's set-up and end (no batch plan, no run record,
    a Ctrl-C not told)."""
    from medseg.cohort import NO_HOOKS_REFUSED

    sheet = sheet_of_own(cohort, tmp_path, ["a"])
    results = tmp_path / "results"
    refused = _through_the_api(tmp_path, "no_hooks", samples=sheet, results=results)
    assert refused.stderr.splitlines()[-3:] == [NO_HOOKS_REFUSED, "exit 2", "handlers True True"], \
        refused.stderr[-3000:]
    assert "localrule infer" not in refused.stderr and not list(results.glob("jobs/*.json"))
    assert not list(results.glob("cases/*")) and not list((tmp_path / ".snakemake" / "locks").glob("*"))


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
def test_a_job_that_fails_for_the_whole_run_shows_why_on_the_console(tmp_path):
    """A problem of the whole run (here: device=cuda without a GPU) fails each job; its one line was only in
    RESULTS/logs/infer/<batch>.log, the console showing Snakemake's CalledProcessError. The workflow profile now
    prints a failed job's log. Its last attempt failed too, leaving no job record, and the run made no report: the
    user had nothing to read. It now records its cases as failed, naming the job, its error and its log, so that the
    report is made, and the run's check fails naming them."""
    data = tmp_path / "data"
    data.mkdir()
    write_phantom(data / "a.nii.gz", None, shape=SHAPE, seed=3)
    sheet = write_sheet(data, [("a", "a.nii.gz", "")])
    results = tmp_path / "results"
    run = snakemake(tmp_path, "--cores", "1", samples=sheet, results=results, device="cuda")
    assert run.returncode == 1
    # the job names the workflow config's key the user set, not its own option (--device cuda, which the user never
    # typed and cannot give the workflow)
    error = ("device: cuda in the workflow config: CUDA is not available on this machine: this torch ("
             f"{__import__('torch').__version__}) is a build without CUDA; install a CUDA build of torch, or use "
             "device: cpu or auto in the workflow config")
    assert f"medseg: error: {error}" in run.stdout + run.stderr
    log = results / "logs" / "infer" / "batch001.log"
    assert (f"medseg: error: {results}: job batch001.infer failed on its last attempt for a reason of the whole job: "
            f"{error} (its log: {log}); its cases are listed as failed in {results / 'report.html'}, and a later run "
            "tries them again") in run.stderr, run.stderr[-3000:]
    assert (results / "report.html").is_file()
    with open(results / "cohort.tsv", newline="") as handle:
        (row,) = csv.DictReader(handle, delimiter="\t")
    assert (row["case_id"], row["status"], row["failed_stage"], row["error_type"]) == (
        "a", "failed", "infer", "JobFailedError")
    assert row["error"] == (f"{data / 'a.nii.gz'}: not segmented: its job batch001.infer failed on its last attempt "
                            f"for a reason of the whole job, not of this case: {error}; the job's log: {log}; a later "
                            "run tries it again")
    # the table's row names its job, in a column of its own at the end (readers by position keep theirs), and the
    # summary lists the job as the page and the console do: they did not, so a reader of summary.json saw one failed
    # case and not why
    with open(results / "cohort.tsv", newline="") as handle:
        header = next(csv.reader(handle, delimiter="\t"))
    assert header[-4:] == ["failed_job", "segmented_at", "scored_at", "kept_by_failed_job"]
    assert (row["failed_job"], row["kept_by_failed_job"]) == ("batch001.infer", "")
    summary = json.loads((results / "summary.json").read_text())
    assert list(summary)[-1] == "failed_jobs"
    assert summary["failed_jobs"] == [{"job": "batch001.infer", "stage": "infer", "error": error,
                                       "error_type": "DeviceError", "log": str(log), "cases": ["a"], "kept": [],
                                       "slurm_log": None}]


def test_a_scoring_job_that_fails_as_a_whole_leaves_a_report_that_names_it(tmp_path):
    """A scoring job whose every attempt failed as a whole (here a broken SciPy install, whose RuntimeError medseg did
    not raise, as the job imports it for b, the first case it scores) left no job record, and the run no report. Its
    last attempt records b (not scored yet) as failed and keeps a's scores, made earlier against a reference replaced
    since (which the report shows as stale); the report is made, naming the job once with the case it failed and the
    one it kept, and the run's check fails naming the job.
    (The cases are segmented, and a scored, beforehand in this process: the run's inference job keeps them.)"""
    from cohort_cases import broken_install, half_erased

    from medseg.cohort import InferOptions, evaluate_cases, infer_cases, read_samples

    data, labels = tmp_path / "data", tmp_path / "data" / "labels"
    labels.mkdir(parents=True)
    for name, seed in (("a", 3), ("b", 4)):
        write_phantom(data / f"{name}.nii.gz", labels / f"{name}_label.nii.gz", shape=SHAPE, seed=seed)
    sheet = write_sheet(data, [("b", "b.nii.gz", "labels/b_label.nii.gz"), ("a", "a.nii.gz", "labels/a_label.nii.gz")])
    results = tmp_path / "results"
    samples = read_samples(sheet)
    assert infer_cases(samples, results, InferOptions(MODEL)).count("ok") == 2
    assert evaluate_cases(samples[1:], results).count("ok") == 1
    half_erased(labels / "a_label.nii.gz")
    settings = [f"{key}={value}" for key, value in
                {"model": MODEL, "samples": sheet, "results": results, "max_overlays": 0}.items()]
    command = [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--directory", str(tmp_path), "--cores", "1",
               "--config", *settings]
    run = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO,
                         env=broken_install(tmp_path, "scipy"))
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-3000:]
    assert kept_by_its_job(results)
    line = "RuntimeError: this scipy install is broken"
    log = results / "logs" / "evaluate" / "batch001.log"
    assert (f"medseg: error: {results}: job batch001.evaluate failed on its last attempt for a reason of the whole "
            f"job: {line} (its log: {log}); its cases are listed as failed in {results / 'report.html'}, and a later "
            "run tries them again") in run.stderr, run.stderr[-3000:]
    with open(results / "cohort.tsv", newline="") as handle:
        rows = {row["case_id"]: row for row in csv.DictReader(handle, delimiter="\t")}
    assert [(rows[case]["status"], rows[case]["failed_stage"], rows[case]["error_type"]) for case in "ab"] == [
        ("failed", "stale", "StaleResult"), ("failed", "evaluate", "JobFailedError")]
    page = (results / "report.html").read_text()
    assert page.count(escape(line)) == 1 and "<h2>Jobs that failed (1)</h2>" in page
    assert ('failed: <a href="#case-b">b</a><br>kept from an earlier run, not made by this one: '
            '<a href="#case-a">a</a>') in page
    # the case the job kept is named in cohort.tsv too, in a column of its own after the others (only summary.json's
    # failed_jobs[].kept and the page named it)
    with open(results / "cohort.tsv", newline="") as handle:
        header = next(csv.reader(handle, delimiter="\t"))
    assert header[-4:] == ["failed_job", "segmented_at", "scored_at", "kept_by_failed_job"]
    assert [(rows[case]["failed_job"], rows[case]["kept_by_failed_job"]) for case in "ab"] == [
        ("", "batch001.evaluate"), ("batch001.evaluate", "")]
    assert json.loads((results / "summary.json").read_text())["failed_jobs"][0]["kept"] == ["a"]
    # the report job names the workflow config's key its user set (max_overlays: 0), not `medseg report`'s option
    assert set(re.findall(r"no overlay: [^<]*", page)) == {"no overlay: none drawn (max_overlays: 0 in the workflow "
                                                            "config)"}


def test_an_image_this_user_may_not_read_fails_its_case_not_the_run(tmp_path):
    """medseg recorded the case as failed and went on, but Snakemake then hashed the job's small inputs to record it
    ("Error recording metadata for finished job ([Errno 13] Permission denied: ...)") and the run failed, with no
    report. The workflow profile turns Snakemake's input hashing off (medseg tells changed inputs itself)."""
    from conftest import as_plain_user

    data = tmp_path / "data"
    data.mkdir()
    for name, seed in (("a", 3), ("b", 4)):
        write_phantom(data / f"{name}.nii.gz", None, shape=SHAPE, seed=seed)
    sheet = write_sheet(data, [("a", "a.nii.gz", ""), ("b", "b.nii.gz", "")])
    (data / "b.nii.gz").chmod(0)
    settings = [f"{key}={value}" for key, value in {"model": MODEL, "samples": sheet,
                                                     "results": tmp_path / "results"}.items()]
    command = [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--directory", str(tmp_path), "--cores", "1",
               "--config", *settings]
    run = as_plain_user(command, timeout=300)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    with open(tmp_path / "results" / "cohort.tsv", newline="") as handle:
        rows = {row["case_id"]: row for row in csv.DictReader(handle, delimiter="\t")}
    assert (rows["a"]["status"], rows["b"]["status"]) == ("no_reference", "failed")
    assert rows["b"]["error"] == f"{data / 'b.nii.gz'}: cannot read (permission denied)"


def test_an_image_in_a_folder_this_user_may_not_search_reads_alike_with_or_without_earlier_results(tmp_path):
    """Two images in a folder this user may not search: a segmented by an earlier run, b not. The run's console and
    cohort.tsv said a's input "cannot be read (permission denied)" and b's "cannot look at it (permission denied: a
    folder on its way cannot be searched)", one problem in two wordings that depended on earlier results. Both now
    say "cannot read (permission denied: a folder on its way cannot be searched)"."""
    from conftest import as_plain_user

    from medseg.cohort import InferOptions, infer_cases, read_samples

    data, locked = tmp_path / "data", tmp_path / "data" / "locked"
    locked.mkdir(parents=True)
    for name, seed in (("a", 3), ("b", 4)):
        write_phantom(locked / f"{name}.nii.gz", None, shape=SHAPE, seed=seed)
    write_phantom(data / "c.nii.gz", None, shape=SHAPE, seed=5)
    sheet = write_sheet(data, [("a", "locked/a.nii.gz", ""), ("b", "locked/b.nii.gz", ""), ("c", "c.nii.gz", "")])
    results = tmp_path / "results"
    assert infer_cases(read_samples(sheet)[:1], results, InferOptions(MODEL)).count("ok") == 1
    settings = [f"{key}={value}" for key, value in {"model": MODEL, "samples": sheet, "results": results,
                                                     "max_overlays": 0}.items()]
    command = [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--directory", str(tmp_path), "--cores", "1",
               "--config", *settings]
    locked.chmod(0)
    try:
        run = as_plain_user(command, timeout=300)
    finally:
        locked.chmod(0o755)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    reason = "cannot read (permission denied: a folder on its way cannot be searched)"
    with open(results / "cohort.tsv", newline="") as handle:
        rows = {row["case_id"]: row for row in csv.DictReader(handle, delimiter="\t")}
    assert [(rows[case]["status"], rows[case]["failed_stage"]) for case in "abc"] == [
        ("failed", "stale"), ("failed", "read"), ("no_reference", "")]
    assert rows["a"]["error"] == (f"the input {locked / 'a.nii.gz'}: {reason}; the results made from it earlier are "
                                  "kept in the results folder (not shown here), and reused if it comes back unchanged")
    assert rows["b"]["error"] == f"{locked / 'b.nii.gz'}: {reason}"
    failed = [line for line in run.stdout.splitlines() if line.startswith("failed: ")]
    assert failed == [f"failed: a: {rows['a']['error']}", f"failed: b: {rows['b']['error']}"]


def test_a_run_whose_every_case_failed_exits_with_an_error_and_keeps_its_report(tmp_path):
    """Every case failed and the run exited 0 ("4 of 4 steps (100%) done"): a scheduler or CI job saw success. (The
    cases' failures are recorded beforehand, in this process, as the run's inference job records them: the job keeps
    them without importing torch and MONAI.)"""
    from medseg.cohort import InferOptions, infer_cases, read_samples

    data = tmp_path / "data"
    data.mkdir()
    (data / "x.nii.gz").write_bytes(b"\x1f\x8b" + b"\x00" * 40)
    sheet = write_sheet(data, [("x", "x.nii.gz", ""), ("y", "missing.nii.gz", "")])
    results = tmp_path / "results"
    assert infer_cases(read_samples(sheet), results, InferOptions(MODEL)).count("failed") == 2
    run = snakemake(tmp_path, "--cores", "2", samples=sheet, results=results)
    assert run.returncode == 1, run.stderr[-3000:]
    assert kept_by_its_job(results)
    assert (f"medseg: error: {results}: every case failed (fail_on_failed_cases: all); their errors are in "
            f"{results / 'report.html'} and cohort.tsv") in run.stderr
    assert (results / "report.html").is_file() and (results / "cohort.tsv").is_file()
    assert not (results / "jobs" / "cohort.check.json").exists()
    again = snakemake(tmp_path, "--cores", "2", samples=sheet, results=results)  # still failed: still an error
    assert again.returncode == 1 and "every case failed" in again.stderr
    lenient = snakemake(tmp_path, "--cores", "2", samples=sheet, results=results, fail_on_failed_cases="never")
    assert lenient.returncode == 0, lenient.stderr[-3000:]
    assert json.loads((results / "jobs" / "cohort.check.json").read_text())["failed"] == 2
    # a value of fail_on_failed_cases other than all, any or never is refused: test_workflow_planning.py's
    # test_bad_settings_are_refused_by_the_check_planning_runs_first


def test_the_slurm_profile_runs_the_cohort_through_the_executor(finished, tmp_path, monkeypatch):
    """profiles/slurm through snakemake-executor-plugin-slurm, against stand-in SLURM commands that run each job
    here and kill it as SLURM would (tests/fake_slurm.py). A job killed for memory used to run its command twice
    more in the same allocation (a rule's retries: applied in the job's own Snakemake), telling medseg twice and
    three times the memory; and the count of failed cases, printed by the report job, went to its SLURM log. The five
    cases run as one batch (one inference and one scoring job): each SLURM job runs two Snakemake processes, the
    job's and its step's, and a second batch of each rule added four of them and an inference job's imports."""
    import importlib.util

    import fake_slurm

    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        pytest.skip("the SLURM executor plugin is not installed (pip install -e '.[workflow]')")
    if sys.platform != "linux":
        pytest.skip("the stand-in SLURM commands read /proc to enforce --mem, as SLURM's cgroup does")
    folder, local, _ = finished
    state = fake_slurm.put_first(monkeypatch, tmp_path)
    # more than their first 1300 MB and 900 MB, planned from the small inputs (the report's retry, by the profile's
    # retries: 1, had as much again)
    monkeypatch.setenv("FAKE_SLURM_NEEDS", "rule_infer_wildcards_batch001=2000,rule_report=1500")
    results = tmp_path / "results"
    run = snakemake(tmp_path, "--profile", str(REPO / "profiles" / "slurm"), "--default-resources",
                    "slurm_account=lab42", "slurm_partition=cpu", "runtime=30", "mem_mb=2000",
                    "--slurm-logdir", str(tmp_path / "slurm-logs"), "--slurm-init-seconds-before-status-checks", "1",
                    samples=folder / "data" / "samples.tsv", results=results, cases_per_job=5)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "SLURM status is: 'OUT_OF_MEMORY'" in run.stderr
    # the count line and the failures reach the console (check_failures runs where Snakemake runs)
    assert "5 cases (2 failed, " in run.stdout
    assert [line.split(":")[1] for line in run.stdout.splitlines() if line.startswith("failed: ")] == [" bad", " gone"]
    # the same segmentations as the local run
    for case in ("a", "b", "c"):
        name = f"cases/{case}/{case}_seg.nii.gz"
        assert (results / name).read_bytes() == (local / name).read_bytes(), name
    submitted = [json.loads(line) for line in (state / "sbatch.jsonl").read_text().splitlines()]

    def option(entry: dict, name: str) -> str:
        args = entry["args"]
        return args[args.index(name) + 1]

    asked = sorted((option(s, "--comment"), option(s, "--mem"), option(s, "-t")) for s in submitted)
    # each job's memory planned from its small inputs (medseg/cohort/job_memory.py): 1200 MB + 12 B a voxel for
    # inference, 800 MB + 32 B a voxel for scoring
    # and 3 min + 2 s a case + 15 s a million voxels for scoring (medseg/cohort/job_runtime.py)
    assert asked == [("rule_evaluate_wildcards_batch001", "900", "4"),
                     ("rule_infer_wildcards_batch001", "1300", "6"),  # planned from the small inputs' voxels
                     ("rule_infer_wildcards_batch001", "2600", "12"),  # the retry: twice the memory and time
                     ("rule_report", "1800", "120"),  # the retry: twice the memory and time
                     ("rule_report", "900", "60")]  # 5 small cases (medseg/cohort/report_memory.py)
    for entry in submitted:
        assert option(entry, "-A") == "lab42" and option(entry, "-p") == "cpu", entry["args"]
        assert {"--no-requeue", "--export=ALL", "--cpus-per-task=1"} <= set(entry["args"]), entry["args"]
    jobs = {file.stem: json.loads(file.read_text()) for file in (state / "jobs").glob("*.json")}
    assert sorted(job["state"] for job in jobs.values()) == ["COMPLETED"] * 3 + ["OUT_OF_MEMORY"] * 2
    # each job ran its command once, in the environment the run set for its jobs
    steps = [json.loads(line) for line in (state / "srun.jsonl").read_text().splitlines()]
    ran = [step["job_id"] for step in steps]
    # (a job killed for memory may die before its step starts: its Snakemake alone may pass the 150 MB mark)
    assert len(ran) == len(set(ran)) and {j for j, job in jobs.items() if job["state"] == "COMPLETED"} <= set(ran)
    assert set(ran) <= set(jobs)
    holder = {step["env"]["MEDSEG_COHORT_RUN"] for step in steps}
    assert len(holder) == 1 and holder.pop().startswith("pid ")
    from medseg.package import load_package

    # and the weights it planned with, which a job finding another package refuses
    assert {step["env"]["MEDSEG_COHORT_WEIGHTS"] for step in steps} == {load_package(MODEL).sha256}
    assert all(step["env"]["MEDSEG_REDO_INFER"] == step["env"]["MEDSEG_REDO_EVALUATE"] == "" for step in steps)
    # and its executor: a job of the SLURM executor stops its last attempt at its own runtime where SLURM does not
    # give its end (one of a local run inside an allocation does not: medseg/cohort/job_deadline.py)
    assert {step["env"]["MEDSEG_COHORT_EXECUTOR"] for step in steps} == {"slurm"}
    # the retried job was told its memory and attempt; no case was given up
    assert "--memory-mb 2600 --final-memory-mb 3900 --attempt 2 3 " in run.stderr
    assert json.loads((results / "status" / "a.infer.json").read_text())["outcome"] == "ok"
    # the SLURM logs of the jobs killed for memory are kept, those of the jobs that succeeded are not
    killed = sorted(job_id for job_id, job in jobs.items() if job["state"] == "OUT_OF_MEMORY")
    logs = sorted(p.relative_to(tmp_path / "slurm-logs") for p in (tmp_path / "slurm-logs").rglob("*.log"))
    assert sorted(p.stem for p in logs) == killed and sorted(p.parts[0] for p in logs) == ["rule_infer", "rule_report"]
    assert Path("rule_infer", "batch001") in [p.parent for p in logs]
    assert sorted(p.name for p in (results / "logs" / "infer").iterdir()) == ["batch001.log"]


def test_the_cohort_benchmark_without_snakemake_says_so_before_it_starts(tmp_path, monkeypatch):
    """benchmarks/cohort_speed.py where snakemake is not installed: one line saying so, before the phantoms and the
    minutes of single-case runs (it had failed only at the workflow, after them)."""
    import importlib.util

    from conftest import benchmark_main

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "snakemake" else find_spec(
        name, *a))
    monkeypatch.setattr("sys.argv", ["cohort_speed.py", "--count", "2", "--workdir", str(tmp_path / "work")])
    with pytest.raises(SystemExit) as exit_info:
        benchmark_main("cohort_speed")()
    assert "snakemake is not installed" in str(exit_info.value.code)
    assert not (tmp_path / "work").exists()


@pytest.mark.parametrize("folder", [None, "checkout 12:30"], ids=["checkout", "path-separator"])
def test_the_jobs_run_the_medseg_beside_the_snakefile(tmp_path, folder):
    """The planning imports the medseg beside the Snakefile (Snakemake puts its folder first on the path), but a job
    ran `python -m medseg` in the working folder, importing whichever medseg the environment has: run with -s or
    --directory from another folder, the jobs of a wheel install or of another checkout's editable install ran other
    code than the run was planned with, and nothing said so. Here the environment's medseg is a stand-in that leaves
    a mark and fails, as does one in the working folder. A checkout whose path holds PYTHONPATH's separator (``:``, a
    folder named after a time) was split there, and its jobs ran the stand-in again. The case is segmented here
    beforehand (this process has torch and MONAI imported): each of the run's four jobs still runs medseg, its
    inference job keeping the case, without an inference job's imports per parameter."""
    from medseg.cohort import InferOptions, infer_cases, read_samples

    snakefile = SNAKEFILE
    if folder is not None:  # a copy of what the workflow reads, in a folder of that name
        checkout = tmp_path / folder
        for name in ("medseg", "workflow", "configs"):
            shutil.copytree(REPO / name, checkout / name, ignore=shutil.ignore_patterns("__pycache__"))
        snakefile = shutil.copy2(SNAKEFILE, checkout / "Snakefile")
    stand_in = tmp_path / "elsewhere" / "medseg"
    stand_in.mkdir(parents=True)
    mark = tmp_path / "stand-in-ran"
    (stand_in / "__init__.py").write_text('__version__ = "0.0.0"\n')
    (stand_in / "__main__.py").write_text(f"import pathlib, sys\npathlib.Path({str(mark)!r}).touch()\nsys.exit(3)\n")
    # and one in the working folder (another checkout run with -s): python -m put it before PYTHONPATH
    shutil.copytree(stand_in, tmp_path / "medseg")
    data = tmp_path / "data"
    data.mkdir()
    write_phantom(data / "a.nii.gz", None, shape=SHAPE, seed=3)
    sheet = write_sheet(data, [("a", "a.nii.gz", "")])
    results = tmp_path / "results"
    assert infer_cases(read_samples(sheet), results, InferOptions(MODEL)).count("ok") == 1
    settings = [f"{key}={value}" for key, value in {"model": MODEL, "samples": sheet, "results": results}.items()]
    command = [sys.executable, "-m", "snakemake", "-s", str(snakefile), "--directory", str(tmp_path), "--cores", "1",
               "--config", *settings]
    environment = {**os.environ, "PYTHONPATH": str(stand_in.parent)}
    run = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO, env=environment)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert not mark.exists()
    # medseg's own jobs ran (the stand-in writes no log): the inference job found the case made by this medseg, the
    # report job wrote the table
    log = (results / "logs" / "infer" / "batch001.log").read_text()
    assert "(1 case, kept from an earlier run); setup (imports, model) 0.0 s" in log, log[-3000:]
    with open(results / "cohort.tsv", newline="") as handle:
        assert [(row["case_id"], row["status"]) for row in csv.DictReader(handle, delimiter="\t")] == [
            ("a", "no_reference")]
