"""Which cases a workflow run makes again: replaced inputs, removed results, dropped references, a changed series
or settings, an edited sheet, folders made by hand, dates ahead of the clock and forced runs."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from cohort_cases import SMALL_IMAGES_SEGMENTED
from conftest import run_cli
from workflow_runs import (
    MODEL,
    SHAPE,
    _records,
    kept_by_its_job,
    made_beforehand,
    snakemake,
    write_sheet,
)

from medseg.synthetic import write_phantom

pytestmark = SMALL_IMAGES_SEGMENTED


def _two_labelled_cases(tmp_path: Path, seed: int) -> tuple[Path, Path, Path]:
    """Cases a and b (phantoms of seeds ``seed`` and ``seed + 1``) with their references in ``tmp_path/data``, their
    sheet, and the results folder to run them into."""
    data = tmp_path / "data"
    data.mkdir()
    for name, offset in (("a", 0), ("b", 1)):
        write_phantom(data / f"{name}.nii.gz", data / f"{name}_label.nii.gz", shape=SHAPE, seed=seed + offset)
    sheet = write_sheet(data, [("a", "a.nii.gz", "a_label.nii.gz"), ("b", "b.nii.gz", "b_label.nii.gz")])
    return data, sheet, tmp_path / "results"


def _previews_change_nothing(workdir: Path, sheet: Path, results: Path, previews: list[tuple[str, ...]],
                             **config) -> None:
    """Each of ``previews`` (Snakemake's options), run on a results folder some of whose jobs will run again, leaves
    every file of it as it was and says so."""
    kept = sorted(p.relative_to(results) for p in results.rglob("*") if p.is_file())
    for preview in previews:
        run = snakemake(workdir, *preview, "--cores", "2", samples=sheet, results=results, **config)
        assert run.returncode == 0, run.stderr[-3000:]
        assert sorted(p.relative_to(results) for p in results.rglob("*") if p.is_file()) == kept, preview
        assert "a preview changes nothing" in run.stderr + run.stdout, preview


@pytest.mark.slow(reason="three Snakemake runs; which command lines are previews, these among them, is "
                         "test_invocation.py's test_previewing and test_a_preview_set_in_a_profile_is_one, and a "
                         "preview's leaving the folder as it was test_reruns_follow_replaced_inputs_removed_results_"
                         "and_dropped_references' (-n)")
def test_other_previews_change_nothing_either(tmp_path):
    """An unlock, a summary and a dry run a profile asks for (dry-run: true in its config.yaml) are previews too:
    before, they removed the record of a batch to run again and the report."""
    data, sheet, results = _two_labelled_cases(tmp_path, seed=61)
    made_beforehand(sheet, results)
    run = snakemake(tmp_path, "--cores", "2", samples=sheet, results=results, cases_per_job=2)
    assert run.returncode == 0, run.stderr[-3000:]
    import shutil

    shutil.rmtree(results / "cases" / "b")  # its batch runs again
    dry_profile = tmp_path / "dry_profile"
    dry_profile.mkdir()
    (dry_profile / "config.yaml").write_text("dry-run: true\n")
    _previews_change_nothing(tmp_path, sheet, results, [("--unlock",), ("--summary",), ("--profile", str(dry_profile))],
                             cases_per_job=2)
    assert (results / "jobs" / "batch001.infer.json").is_file() and (results / "report.html").is_file()


def test_reruns_follow_replaced_inputs_removed_results_and_dropped_references(tmp_path):
    """One batch of three cases: a's image replaced and b's results removed are both made again by one run, which
    keeps c (each had a run of its own, importing torch and MONAI once more). The cases are segmented beforehand, in
    this process, and the first run keeps them."""
    data = tmp_path / "data"
    data.mkdir()
    for name, seed in (("a", 21), ("b", 22), ("c", 24), ("other", 23)):
        write_phantom(data / f"{name}.nii.gz", data / f"{name}_label.nii.gz", shape=SHAPE, seed=seed)
    sheet = write_sheet(data, [("a", "a.nii.gz", "a_label.nii.gz"), ("b", "b.nii.gz", "b_label.nii.gz"),
                               ("c", "c.nii.gz", "c_label.nii.gz")])
    results = tmp_path / "results"

    def run_ids() -> dict[str, str]:
        return {p.name.split(".")[0]: json.loads(p.read_text())["run_id"]
                for p in _records(results / "status")}

    def rerun() -> None:
        run = snakemake(tmp_path, "--cores", "2", samples=sheet, results=results, cases_per_job=3)
        assert run.returncode == 0, run.stderr[-3000:]

    first = made_beforehand(sheet, results)  # the first run's inference job keeps them
    rerun()
    assert kept_by_its_job(results) and run_ids() == first
    dice_before = json.loads((results / "cases" / "a" / "a_metrics.json").read_text())["labels"]["1"]["dice"]
    # an image and its reference replaced by another pair with older modification times (mv, rsync -a, a backup)
    image = data / "a.nii.gz"
    old = image.stat().st_mtime - 3600
    (data / "other.nii.gz").replace(image)
    (data / "other_label.nii.gz").replace(data / "a_label.nii.gz")
    for path in (image, data / "a_label.nii.gz"):
        os.utime(path, (old, old))
    # and a case's results removed by hand: both cases are redone, the other kept
    import shutil

    shutil.rmtree(results / "cases" / "b")
    # a preview changes nothing: before, a dry run already removed the batch's record and the report (the other
    # previews, an unlock among them: test_other_previews_change_nothing_either, slow)
    _previews_change_nothing(tmp_path, sheet, results, [("-n",)], cases_per_job=3)
    rerun()
    third = run_ids()
    assert third["a"] != first["a"] and third["b"] != first["b"] and third["c"] == first["c"]
    sidecar = json.loads((results / "cases" / "a" / "a_seg.json").read_text())
    from medseg.io.atomic import sha256_of

    assert sidecar["input_sha256"] == sha256_of(image)
    assert json.loads((results / "cases" / "a" / "a_metrics.json").read_text())["labels"]["1"]["dice"] != dice_before
    assert (results / "cases" / "b" / "b_seg.nii.gz").is_file()
    # a case's scores removed by hand: rescored, nothing segmented again
    (results / "cases" / "a" / "a_metrics.json").unlink()
    rerun()
    assert (results / "cases" / "a" / "a_metrics.json").is_file() and run_ids() == third
    # references taken out of the sheet: their scores go, and the report says so, nothing segmented again; and, in
    # the same run, a row taken out of the sheet: its results stay on disk, out of the report (they were listed as
    # failed, stale, failing a run with fail_on_failed_cases any) and named once, on the console too; once the
    # folder is removed, as the report advises, the report is rebuilt without the note (it said "Nothing to be done"
    # and kept it)
    write_sheet(data, [("a", "a.nii.gz", ""), ("c", "c.nii.gz", "")])
    run = snakemake(tmp_path, "--cores", "2", samples=sheet, results=results, cases_per_job=3,
                    fail_on_failed_cases="any")
    assert run.returncode == 0, run.stderr[-3000:]
    assert not list(results.glob("cases/[ac]/*_metrics.json"))
    assert {case: run_ids()[case] for case in "ac"} == {case: third[case] for case in "ac"}
    assert ("1 case not in the sample sheet has results left out of the report: cases/b/; delete the folder to "
            "tidy up" in run.stderr + run.stdout)

    def statuses() -> dict[str, str]:
        with open(results / "cohort.tsv", newline="") as handle:
            return {row["case_id"]: row["status"] for row in csv.DictReader(handle, delimiter="\t")}

    assert statuses() == {"a": "no_reference", "c": "no_reference"}
    assert json.loads((results / "summary.json").read_text())["left_out"] == ["cases/b/"]
    shutil.rmtree(results / "cases" / "b")
    run = snakemake(tmp_path, "-n", "--cores", "2", samples=sheet, results=results, cases_per_job=3)
    assert "report: b not in the sample sheet, and its folder under cases/ removed: the report will be " \
           "rebuilt when the workflow runs (a preview changes nothing)" in run.stderr + run.stdout
    assert (results / "report.html").is_file()
    run = snakemake(tmp_path, "--cores", "2", samples=sheet, results=results, cases_per_job=3)
    assert run.returncode == 0, run.stderr[-3000:]
    assert ("report: b not in the sample sheet, and its folder under cases/ removed: the report will be rebuilt"
            in run.stderr + run.stdout)
    assert statuses() == {"a": "no_reference", "c": "no_reference"}
    assert json.loads((results / "summary.json").read_text())["left_out"] == []
    run = snakemake(tmp_path, "--cores", "2", samples=sheet, results=results, cases_per_job=3)
    assert "no longer in the sample sheet" not in run.stderr + run.stdout
    assert "not in the sample sheet" not in run.stderr + run.stdout
    assert "Nothing to be done" in run.stderr + run.stdout


def test_a_changed_series_choice_reruns_its_case_and_a_series_for_a_file_is_refused(tmp_path):
    sys.path.insert(0, str(Path(__file__).parent))
    from dicom_factory import slice_positions, write_series

    study = tmp_path / "data" / "study"
    for number, seed in ((3, 1), (4, 2)):
        values = (np.random.default_rng(seed).integers(0, 60, (32, 32, 6)) + 1000).astype(np.int16)
        write_series(study, values, slice_positions(6, 2.0), series_number=number, prefix=f"s{number}_")
    write_phantom(tmp_path / "data" / "n.nii.gz", shape=SHAPE, seed=5)
    results = tmp_path / "results"

    def sheet(series: str, nifti_series: str = "") -> Path:
        path = tmp_path / "data" / "samples.tsv"
        path.write_text(f"case_id\timage\treference\tseries\nd\tstudy\t\t{series}\nn\tn.nii.gz\t\t{nifti_series}\n")
        return path

    def run(series: str) -> dict:
        done = snakemake(tmp_path, "--cores", "2", samples=sheet(series), results=results, cases_per_job=2)
        assert done.returncode == 0, done.stderr[-3000:]
        return {case: json.loads((results / "status" / f"{case}.infer.json").read_text())["run_id"]
                for case in ("d", "n")}

    made_beforehand(sheet("3"), results)  # segmented here beforehand: the first run's inference job keeps them
    first = run("3")
    assert kept_by_its_job(results)
    assert json.loads((results / "cases" / "d" / "d_seg.json").read_text())["input_info"]["series_key"] == "3"
    second = run("4")  # only the sheet's series cell changed
    assert second["d"] != first["d"] and second["n"] == first["n"]
    assert json.loads((results / "cases" / "d" / "d_seg.json").read_text())["input_info"]["series_key"] == "4"
    refused = snakemake(tmp_path, "-n", samples=sheet("4", nifti_series="2"), results=results)
    assert refused.returncode != 0
    assert (f"samples.tsv:3: a series (2) is given for {tmp_path / 'data' / 'n.nii.gz'}, a file; the series column "
            "is for DICOM folders only") in refused.stdout + refused.stderr
    # a series the folder does not hold fails the case alone; its record, table row and report say which was asked
    # for (they showed the folder only, without a sidecar to name the series)
    run("7")
    failure = json.loads((results / "cases" / "d" / "d_failed.json").read_text())
    assert failure["series"] == "7" and "no series matches the series asked for, '7'" in failure["error"]
    with open(results / "cohort.tsv", newline="") as table:
        row = next(r for r in csv.DictReader(table, delimiter="\t") if r["case_id"] == "d")
    assert (row["status"], row["series"], row["series_uid"]) == ("failed", "7", "")
    assert f"input <code>{study}</code> (series 7 asked for)" in (results / "report.html").read_text()


@pytest.fixture(scope="module")
def four_batches(tmp_path_factory) -> tuple[Path, Path, Path]:
    """Cases a to d (references beside them), one a batch, run once by the workflow for the tests that preview it
    with other settings (a preview changes nothing, which they check): its working folder, sheet and results folder.
    (The cases are segmented beforehand, in this process: the run's four inference jobs keep them.)"""
    workdir = tmp_path_factory.mktemp("four_batches")
    data = workdir / "data"
    data.mkdir()
    rows = []
    for index, name in enumerate("abcd"):
        write_phantom(data / f"{name}.nii.gz", data / f"{name}_label.nii.gz", shape=SHAPE, seed=40 + index)
        rows.append((name, f"{name}.nii.gz", f"{name}_label.nii.gz"))
    sheet = write_sheet(data, rows)
    results = workdir / "results"
    made_beforehand(sheet, results)
    run = snakemake(workdir, "--cores", "2", samples=sheet, results=results, cases_per_job=1)
    assert run.returncode == 0, run.stderr[-3000:]
    return workdir, sheet, results


def test_a_settings_change_over_many_batches_is_told_once_per_stage(four_batches):
    """A new setting voids every batch: the preview and the run said so once per batch and stage (40 warnings, 400
    case ids for a 200-case cohort); now once per stage, the ids and jobs cut short."""
    workdir, sheet, results = four_batches
    assert all(kept_by_its_job(results, batch) for batch in "abcd")
    preview = snakemake(workdir, "-n", samples=sheet, results=results, cases_per_job=1, overlap=0.5)
    assert preview.returncode == 0, preview.stderr[-3000:]
    told = [line for line in (preview.stderr + preview.stdout).splitlines() if "will run again" in line]
    # one case per job: each batch is named after its case
    assert told == [f"{stage}: made for other inputs or settings: a, b, c, d: jobs a.{stage}, b.{stage}, "
                    f"c.{stage}, … and 1 more (4) will run again when the workflow runs (a preview changes nothing; "
                    "Snakemake's list of jobs shows it only where Snakemake notices the change too)"
                    for stage in ("infer", "evaluate")]
    # the overlap is one of the jobs' parameters: Snakemake lists them too (the warning had said they were not)
    assert all(f"{rule}:\n" in preview.stdout + preview.stderr for rule in ("rule infer", "rule evaluate"))
    # a preview changes nothing (8 batches, the check, and the plan the run recorded as it started)
    assert len(list((results / "jobs").glob("*.json"))) == 10 and (results / "jobs" / ".plan.json").is_file()


def test_a_sheet_edited_between_runs_from_another_folder_is_followed(tmp_path):
    """Snakemake's change detection lives in the .snakemake metadata of the folder it ran in. A run from another
    folder (a second checkout, a copied results folder) must still redo a case whose sheet row now names another
    image, instead of reporting the old image's segmentation under it."""
    data, sheet, results = _two_labelled_cases(tmp_path, seed=31)
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    made_beforehand(sheet, results)  # the cases segmented here beforehand: the first run keeps them
    run = snakemake(tmp_path / "first", "--cores", "2", samples=sheet, results=results, cases_per_job=2)
    assert run.returncode == 0, run.stderr[-3000:]
    assert kept_by_its_job(results)
    write_sheet(data, [("a", "b.nii.gz", "b_label.nii.gz"), ("b", "b.nii.gz", "b_label.nii.gz")])
    # a preview from there says what the run will redo (it said "Nothing to be done"), and changes nothing
    preview = snakemake(tmp_path / "second", "-n", "--cores", "2", samples=sheet, results=results, cases_per_job=2)
    assert preview.returncode == 0, preview.stderr[-3000:]
    assert ("made for other inputs or settings: a: job batch001.infer will run again when the workflow runs (a "
            "preview changes nothing; ") in preview.stderr + preview.stdout
    assert (results / "jobs" / "batch001.infer.json").is_file() and (results / "report.html").is_file()
    run = snakemake(tmp_path / "second", "--cores", "2", samples=sheet, results=results, cases_per_job=2)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "made for other inputs or settings: a: job batch001.infer will run again" in run.stderr
    sidecar = json.loads((results / "cases" / "a" / "a_seg.json").read_text())
    assert sidecar["input"] == str(data / "b.nii.gz")
    metrics = json.loads((results / "cases" / "a" / "a_metrics.json").read_text())
    assert metrics["reference"] == str(data / "b_label.nii.gz")


@pytest.mark.slow(reason="two Snakemake runs; that a reference taken out of the sheet voids the case's scores "
                         "whatever folder the run starts from (medseg's own records, not Snakemake's) is "
                         "test_cohort_run_stale.py's test_a_kept_case_is_not_planned_again_but_its_scores_follow_the_"
                         "sheet, and a run from another folder following an edited sheet "
                         "test_a_sheet_edited_between_runs_from_another_folder_is_followed")
def test_a_reference_taken_out_of_the_sheet_between_runs_from_another_folder_is_followed(tmp_path):
    """A reference taken out of the sheet, and the next run started from another folder: its scores go."""
    data, sheet, results = _two_labelled_cases(tmp_path, seed=31)
    (tmp_path / "first").mkdir()
    (tmp_path / "third").mkdir()
    made_beforehand(sheet, results)
    run = snakemake(tmp_path / "first", "--cores", "2", samples=sheet, results=results, cases_per_job=2)
    assert run.returncode == 0, run.stderr[-3000:]
    assert (results / "cases" / "a" / "a_metrics.json").exists()
    write_sheet(data, [("a", "a.nii.gz", ""), ("b", "b.nii.gz", "b_label.nii.gz")])
    run = snakemake(tmp_path / "third", "--cores", "2", samples=sheet, results=results, cases_per_job=2)
    assert run.returncode == 0, run.stderr[-3000:]
    assert not (results / "cases" / "a" / "a_metrics.json").exists()
    assert (results / "cases" / "b" / "b_metrics.json").exists()


def test_a_folder_made_by_hand_is_finished_by_the_workflow_not_taken_as_done(tmp_path, capsys):
    """`medseg cohort infer` for one case and `medseg report` by hand, then the workflow: its report and no job
    records had made Snakemake run nothing (exit 1, "every case failed"): the other case is now segmented and
    both are scored. (The commands by hand run in this process: what they leave is the same, without two more
    processes importing torch, MONAI and matplotlib.)"""
    data, sheet, results = _two_labelled_cases(tmp_path, seed=41)
    code, _, err = run_cli(["cohort", "infer", str(sheet), "-o", str(results), "--case", "a", "--model", MODEL,
                            "--device", "auto"], capsys)
    assert code == 0, err[-3000:]
    code, _, err = run_cli(["report", str(results)], capsys)
    assert code == 0, err[-3000:]
    assert not (results / "cases" / "b").exists() and not (results / "jobs").exists()

    preview = snakemake(tmp_path, "-n", "--cores", "2", samples=sheet, results=results, cases_per_job=2)
    assert preview.returncode == 0, preview.stderr[-3000:]
    assert ("jobs batch001.infer, batch001.evaluate have no record (cases made outside this workflow, or jobs/ "
            "removed): they will run when the workflow runs") in preview.stderr + preview.stdout
    assert (results / "report.html").is_file()  # a preview changes nothing
    run = snakemake(tmp_path, "--cores", "2", samples=sheet, results=results, cases_per_job=2)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "have no record (cases made outside this workflow, or jobs/ removed): they run" in run.stderr
    for case in ("a", "b"):
        assert (results / "cases" / case / f"{case}_seg.nii.gz").is_file()
        assert (results / "cases" / case / f"{case}_metrics.json").is_file()
    log = (results / "logs" / "infer" / "batch001.log").read_text()
    assert "kept from an earlier run" in log  # a's segmentation still held: not made again
    rows = list(csv.DictReader((results / "cohort.tsv").open(), delimiter="\t"))
    assert sorted(row["case_id"] for row in rows) == ["a", "b"]
    assert {row["status"] for row in rows} == {"scored"}


def test_inputs_and_records_dated_ahead_of_the_clock_do_not_fail_the_run(tmp_path):
    """Snakemake fails a job whose record is older than one of its inputs ("clock skew"): an image, a reference or a
    model file dated in the future (copied with its times from a machine whose clock is ahead) failed every job
    reading it, three attempts each, and the run, again on every run until that time came; so did a job record
    dated so. Inputs are no longer declared to Snakemake (their path, size and time are job parameters), and
    planning sets records dated ahead to now."""
    from medseg.cohort import InferOptions, evaluate_cases, infer_cases, read_samples, write_job_record

    data, sheet, results = _two_labelled_cases(tmp_path, seed=45)
    samples = read_samples(sheet)
    write_job_record(results / "jobs" / "batch001.infer.json", infer_cases(samples, results, InferOptions(MODEL)))
    write_job_record(results / "jobs" / "batch001.evaluate.json", evaluate_cases(samples, results))
    for name in ("report.html", "cohort.tsv", "summary.json", "jobs/cohort.check.json"):  # as the report made them
        (results / name).write_text("made")
    ahead = time.time() + 7200
    for path in (data / "a.nii.gz", data / "b_label.nii.gz"):
        os.utime(path, (ahead, ahead))
    preview = snakemake(tmp_path, "-n", "--cores", "2", samples=sheet, results=results, cases_per_job=2)
    assert preview.returncode == 0, preview.stderr[-3000:]
    assert "Nothing to be done" in preview.stdout + preview.stderr  # was: infer and evaluate, to fail on the clock

    record = results / "jobs" / "batch001.infer.json"
    os.utime(record, (ahead, ahead))
    preview = snakemake(tmp_path, "-n", "--cores", "2", samples=sheet, results=results, cases_per_job=2)
    assert preview.returncode == 0, preview.stderr[-3000:]
    assert (f"{results}: 1 file dated ahead of the clock (jobs/batch001.infer.json 2.0 h; machines whose clocks "
            "differ, or copied with their times from one whose clock is ahead): they will be set to now when the "
            "workflow runs (a preview changes nothing)") in preview.stdout + preview.stderr
    assert record.stat().st_mtime == ahead


def _made_by_an_earlier_run(tmp_path: Path, seed: int):
    """Cases a and b (``_two_labelled_cases``), one batch, segmented and scored in this process with their job
    records, as by an earlier run (its report made by the next: a run of their own imported torch and MONAI twice
    more); a runner of the workflow on them (``cases_per_job=2``) that returns its output and a reader of the cases'
    run ids at a stage; and the folders."""
    from medseg.cohort import InferOptions, evaluate_cases, infer_cases, read_samples, write_job_record

    data, sheet, results = _two_labelled_cases(tmp_path, seed=seed)

    def run(*args: str, **config) -> str:
        done = snakemake(tmp_path, "--cores", "2", *args, samples=sheet, results=results, cases_per_job=2, **config)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout + done.stderr

    def run_ids(stage: str, cases: str = "ab") -> list[str]:
        return [json.loads((results / "status" / f"{case}.{stage}.json").read_text())["run_id"] for case in cases]

    samples = read_samples(sheet)
    write_job_record(results / "jobs" / "batch001.infer.json", infer_cases(samples, results, InferOptions(MODEL)))
    write_job_record(results / "jobs" / "batch001.evaluate.json", evaluate_cases(samples, results))
    return data, sheet, results, run, run_ids


def test_a_forced_run_makes_the_cases_again(tmp_path):
    """-F ran every job, and every job kept every case ("kept from an earlier run"): nothing was made again, though
    forcing is how a user asks for that (after a medseg upgrade, say). Now -F remakes every case, --forcerun of a
    scoring job's record rescoring only, and a plain run afterwards has nothing to do. (The cases that are there
    before are made in this process, as the workflow's jobs make them.)"""
    data, sheet, results, run, run_ids = _made_by_an_earlier_run(tmp_path, seed=51)
    made, scored = run_ids("infer"), run_ids("evaluate")
    # a forced run stopped before it finished (its token kept), then the command without -F: told, and kept
    from medseg.cohort import redo_values

    redo_values(results, {"infer": None})
    stopped = "a forced run (infer: every case) stopped before it finished: the cases it had not reached are still"
    assert stopped in run() and stopped in run("-n") and (results / "jobs" / ".forced.json").exists()
    forced = run("-F")
    assert stopped not in forced
    assert "forced (infer): every case is segmented again, not kept from earlier runs" in forced
    assert "forced (evaluate): every case is scored again, not kept from earlier runs" in forced
    assert not (results / "jobs" / ".forced.json").exists()  # the forced run succeeded
    assert re.search(r"skipped \(\d+ cases, 0 of them kept from earlier runs\)",
                     (results / "logs" / "infer" / "batch001.log").read_text())
    assert all(old != new for old, new in zip(made + scored, run_ids("infer") + run_ids("evaluate")))
    nothing = run()
    assert "Nothing to be done" in nothing and stopped not in nothing
    made, scored = run_ids("infer"), run_ids("evaluate")
    # a job forced by its record (--forcerun evaluate, by the rule, is test_invocation.py's test_forced_jobs): its
    # batch's cases, here every case, are scored again, and its cases alone (test_a_job_forced_by_its_record_makes_
    # only_its_batchs_cases_again, slow, has a batch beside it)
    forced = run("--forcerun", str(results / "jobs" / "batch001.evaluate.json"))
    assert "forced (evaluate): the cases of batch001 are scored again, not kept from earlier runs" in forced
    assert run_ids("infer") == made
    assert all(old != new for old, new in zip(scored, run_ids("evaluate")))


@pytest.mark.slow(reason="two Snakemake runs, one segmenting again; which batches --forcerun of a job record forces "
                         "and that their cases alone are made again: test_invocation.py's test_forced_jobs and "
                         "test_a_forced_runs_token_is_kept_until_it_succeeds_and_tells_only_its_batches, "
                         "test_forced_runs.py's test_a_forced_run_makes_every_case_again_once")
def test_a_job_forced_by_its_record_makes_only_its_batchs_cases_again(tmp_path):
    """One job forced by its record: only its batch's cases are made again, though another job runs beside it (a
    new batch size reruns every inference job, which keeps its cases)."""
    from medseg.cohort import InferOptions, infer_cases, read_samples

    data, sheet, results, run, run_ids = _made_by_an_earlier_run(tmp_path, seed=51)
    for record in (results / "jobs").glob("batch001.*.json"):  # its jobs run, keeping the cases: Snakemake then
        record.unlink()  # holds their settings, and reruns the inference job for a new batch size
    write_sheet(data, [("a", "a.nii.gz", "a_label.nii.gz"), ("b", "b.nii.gz", "b_label.nii.gz"),
                       ("c", "b.nii.gz", "")])
    infer_cases(read_samples(sheet)[2:], results, InferOptions(MODEL))  # c made as before; its job keeps it
    run()
    assert "(1 case, kept from an earlier run)" in (results / "logs" / "infer" / "batch002.log").read_text()
    made = run_ids("infer", "abc")
    out = run("--forcerun", str(results / "jobs" / "batch002.infer.json"), batch_size=8)
    assert "forced (infer): the cases of batch002 are segmented again" in out
    assert run_ids("infer", "abc")[:2] == made[:2] and run_ids("infer", "abc")[2] != made[2]
    log = (results / "logs" / "infer" / "batch001.log").read_text()
    assert re.search(r"skipped \(\d+ cases, 2 of them kept from earlier runs\)", log)  # it ran


def test_a_changed_ct_window_redraws_the_report_and_nothing_else(four_batches):
    """ct_window is one of the report step's parameters: a finished cohort previewed with another window lists the
    report (and the check after it) to run again, for that reason, and no inference or scoring job."""
    workdir, sheet, results = four_batches
    assert json.loads((results / "summary.json").read_text())["settings"]["ct_window"] == "soft-tissue"

    def preview(**settings) -> subprocess.CompletedProcess:
        return snakemake(workdir, "-n", samples=sheet, results=results, cases_per_job=1, **settings)

    same = preview()
    assert same.returncode == 0 and "rule report:" not in same.stdout + same.stderr, same.stdout[-2000:]
    # soft-tissue, the default before (an old config's, or a cohort finished then): a choice, not the null default,
    # so the report alone is drawn again once (docs/cohorts.md)
    old = preview(ct_window="soft-tissue")
    told = old.stdout + old.stderr
    assert old.returncode == 0 and "params have changed since last execution:\n        report" in told, told[-3000:]
    assert "rule infer:" not in told and "rule evaluate:" not in told
    bone = preview(ct_window="bone")
    told = bone.stdout + bone.stderr
    assert bone.returncode == 0, told[-3000:]
    assert "rule report:" in told and "params have changed since last execution:\n        report" in told
    assert "rule infer:" not in told and "rule evaluate:" not in told
