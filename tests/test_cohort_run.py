"""Running a batch of cohort cases (medseg.cohort.run): segmenting and scoring, their records, the package a
job finds, outputs left unrecorded, and the plan of a run's jobs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from cohort_cases import (
    MODEL,
    SHAPE,
    SMALL_IMAGES_SEGMENTED,
    _run_ids,
    _sheet,
    cohort_folder,  # noqa: F401  (the cohort fixture its tests take)
)

from medseg.cohort import InferOptions, batches, evaluate_cases, infer_cases, read_samples
from medseg.cohort.records import FAILURE_SCHEMA, ResultsFolder
from medseg.errors import InputError
from medseg.synthetic import write_phantom

pytestmark = SMALL_IMAGES_SEGMENTED


def test_infer_records_failures_and_keeps_finished_cases(cohort):
    sheet, results = cohort
    samples = read_samples(sheet)
    options = InferOptions(model=MODEL, device="cpu", batch_size=8)
    summary = infer_cases(samples, results, options)
    outcomes = {c.case_id: (c.outcome, c.stage) for c in summary.cases}
    assert outcomes == {"a": ("ok", None), "b": ("ok", None), "c": ("ok", None), "bad": ("failed", "read"),
                        "gone": ("failed", "read")}
    assert summary.setup_s > 0
    folder = ResultsFolder(results)
    for case in ("a", "b", "c"):
        seg = nib.load(folder.segmentation(case))
        image = nib.load(sheet.parent / f"{case}.nii.gz")
        assert seg.shape == SHAPE
        np.testing.assert_array_equal(seg.affine, image.affine)
        assert json.loads(folder.sidecar(case).read_text())["case_id"] == case
        assert not folder.failure(case).exists()
    failure = json.loads(folder.failure("bad").read_text())
    assert failure["schema"] == FAILURE_SCHEMA
    assert failure["case_id"] == "bad"
    assert failure["stage"] == "read"
    assert failure["error_type"] == "ImageReadError"
    assert "truncated image data (its gzip stream ends early)" in failure["error"] and "\n" not in failure["error"]
    assert failure["input"] == str(sheet.parent / "bad.nii.gz")
    assert failure["reference"] == str(sheet.parent / "a_label.nii.gz")
    assert not folder.segmentation("bad").exists() and not folder.sidecar("bad").exists()
    gone = json.loads(folder.failure("gone").read_text())
    assert "no such file" in gone["error"] and gone["reference"] is None

    # again: nothing is redone and the model is not even loaded
    before = _run_ids(folder, "infer")
    again = infer_cases(samples, results, options)
    assert all(c.reused for c in again.cases) and again.setup_s == 0.0
    assert [c.outcome for c in again.cases] == ["ok", "ok", "ok", "failed", "failed"]
    assert _run_ids(folder, "infer") == before

    # a changed input, a repaired input and a case whose outputs went missing are redone; the others are kept
    image_b = sheet.parent / "b.nii.gz"
    image = nib.load(image_b)  # another image on the same grid, under the same name
    nib.save(nib.Nifti1Image(np.flip(np.asarray(image.dataobj), 0), image.affine, image.header), image_b)
    (sheet.parent / "bad.nii.gz").write_bytes((sheet.parent / "a.nii.gz").read_bytes())
    folder.segmentation("c").unlink()
    third = infer_cases(samples, results, options)
    assert {c.case_id: c.reused for c in third.cases} == {"a": True, "b": False, "c": False, "bad": False,
                                                          "gone": True}
    after = _run_ids(folder, "infer")
    assert after["a"] == before["a"] and after["gone"] == before["gone"]
    assert after["b"] != before["b"] and after["c"] != before["c"] and after["bad"] != before["bad"]
    assert folder.segmentation("bad").exists() and not folder.failure("bad").exists()


def test_a_job_that_finds_the_package_replaced_since_the_run_planned_refuses_it(cohort):
    """A model package replaced mid-run (a training run finishing into its folder): the jobs after it segmented
    their cases with the new weights, those before with the planned ones, and the run ended without a word, its
    report over two models. The workflow names the planned weights to its jobs; a job finding others refuses."""
    from medseg.errors import ModelPackageError
    from medseg.package import load_package

    sheet, results = cohort
    samples = [s for s in read_samples(sheet) if s.case_id == "a"]
    planned = "0123456789ab" + "0" * 52  # the weights planned with, since replaced
    options = InferOptions(model=MODEL, device="cpu", batch_size=8, planned_sha256=planned)
    found = load_package(MODEL).sha256
    with pytest.raises(ModelPackageError, match=rf"replaced since this workflow run planned its jobs \(weights "
                                                rf"SHA-256 0123456789ab… then, {found[:12]}… now\).*run the "
                                                "workflow again"):
        infer_cases(samples, results, options)
    assert not ResultsFolder(results).segmentation("a").exists()  # no case made with the package found
    summary = infer_cases(samples, results, replace(options, planned_sha256=found))  # the planned package: made
    assert [(c.case_id, c.outcome) for c in summary.cases] == [("a", "ok")]
    assert json.loads(ResultsFolder(results).sidecar("a").read_text())["model"]["weights_sha256"] == found


def test_planned_weights_left_over_in_a_shell_after_the_run_do_not_refuse_a_step_by_hand(cohort, capsys,
                                                                                          monkeypatch):
    """$MEDSEG_COHORT_WEIGHTS and $MEDSEG_COHORT_RUN kept in a shell after a workflow run (copied from a job's
    environment) refused every `medseg cohort infer` by hand once the package was retrained. They count only while
    the run they name holds the folder; a run under --nolock names none, and its jobs check the weights still."""
    from medseg.cli import main
    from medseg.io.folder_claim import claimed, holder_text

    sheet, results = cohort
    other = "0123456789ab" + "0" * 52  # the weights the ended run planned with
    monkeypatch.setenv("MEDSEG_COHORT_WEIGHTS", other)
    monkeypatch.setenv("MEDSEG_COHORT_RUN", "pid 4242 on login1")  # that run has ended: no claim names it
    command = ["cohort", "infer", str(sheet), "-o", str(results), "--case", "a", "--model", MODEL, "--device", "cpu"]
    with pytest.raises(SystemExit) as caught:
        main(command)
    assert caught.value.code == 0 and "a: ok" in capsys.readouterr().out
    monkeypatch.setenv("MEDSEG_COHORT_RUN", holder_text())  # a job of the run holding the folder: checked
    with claimed(results, "cohort run"), pytest.raises(SystemExit) as caught:
        main([*command[:6], "c", *command[7:]])
    assert caught.value.code == 1
    assert "replaced since this workflow run planned its jobs" in capsys.readouterr().err
    monkeypatch.setenv("MEDSEG_COHORT_RUN", "")  # a job of a run under --nolock: checked
    with pytest.raises(SystemExit) as caught:
        main([*command[:6], "c", *command[7:]])
    assert caught.value.code == 1
    assert "replaced since this workflow run planned its jobs" in capsys.readouterr().err
    assert not ResultsFolder(results).segmentation("c").exists()


def test_unrecorded_outputs_are_redone_not_trusted(cohort):
    """Outputs without a completion record (a run killed before writing it) are replaced, never reused."""
    sheet, results = cohort
    samples = [s for s in read_samples(sheet) if s.case_id == "a"]
    options = InferOptions(model=MODEL, device="cpu", batch_size=8)
    infer_cases(samples, results, options)
    folder = ResultsFolder(results)
    folder.status_path("a", "infer").unlink()
    folder.segmentation("a").write_bytes(b"half a file")
    import fnmatch

    from medseg.io.atomic import LEFTOVER_PATTERNS

    # what atomic_paths names a temporary file and a backup, left by a writer killed outright
    # (older names, and names after their target: in the shared status/ folder, the case's own records only)
    status = results / "status"
    leftovers = [folder.case_dir("a") / ".ms-0123abcd.part.nii.gz", folder.case_dir("a") / ".ms-89abcdef.prev",
                 folder.case_dir("a") / ".ms-0123abce.part.a_seg.nii.gz", status / ".ms-01234567.part.a.infer.json",
                 status / ".ms-01234568.prev.a.infer.json", status / ".ms-01234569.part.a.infer.started.json"]
    others = [status / ".ms-0123456a.part.b.infer.json", status / ".ms-0123456b.part.json"]  # another case's, live
    for partial in leftovers + others:
        assert any(fnmatch.fnmatch(partial.name, pattern) for pattern in LEFTOVER_PATTERNS)
        partial.write_bytes(b"left by a killed writer")
    summary = infer_cases(samples, results, options)
    assert [(c.outcome, c.reused) for c in summary.cases] == [("ok", False)]
    assert nib.load(folder.segmentation("a")).shape == SHAPE
    assert [partial.name for partial in leftovers if partial.exists()] == []
    assert all(partial.exists() for partial in others)
    assert folder.status("a", "infer")["outcome"] == "ok"


def test_a_kept_case_takes_the_leftovers_of_its_records_too(cohort):
    """A SIGKILL while a finished case's record was replaced left its backup in status/ until the hourly sweep."""
    sheet, results = cohort
    samples = [s for s in read_samples(sheet) if s.case_id == "a"]
    options = InferOptions(model=MODEL, device="cpu", batch_size=8)
    infer_cases(samples, results, options)
    status = results / "status"
    backup, theirs = status / ".ms-0123abcd.prev.a.infer.json", status / ".ms-0123abce.prev.b.infer.json"
    for path in (backup, theirs):
        path.write_text("{}")
    summary = infer_cases(samples, results, options)
    assert [(c.outcome, c.reused) for c in summary.cases] == [("ok", True)]
    assert not backup.exists() and theirs.exists()


def test_evaluate_scores_cases_with_a_reference(cohort):
    sheet, results = cohort
    samples = read_samples(sheet)
    folder = ResultsFolder(results)
    with pytest.raises(InputError, match=r"cases a, b(, bad)? have not been segmented yet; run the infer step first"):
        evaluate_cases(samples, results)
    # one segmented, one not: the other is named before any is scored (a was scored, then the run stopped at b)
    infer_cases([s for s in samples if s.case_id == "a"], results, InferOptions(model=MODEL, device="cpu",
                                                                                  batch_size=8))
    with pytest.raises(InputError, match=r": cases? b(, bad)? ha(s|ve) not been segmented yet"):
        evaluate_cases(samples, results)
    assert not folder.metrics("a").exists()
    infer_cases(samples, results, InferOptions(model=MODEL, device="cpu", batch_size=8))
    summary = evaluate_cases(samples, results)
    assert {c.case_id: c.outcome for c in summary.cases} == {"a": "ok", "b": "ok", "bad": "skipped"}
    metrics = json.loads(folder.metrics("a").read_text())
    assert metrics["schema"] == "medseg-metrics/1" and metrics["case_id"] == "a"
    assert set(metrics["labels"]) == {"1", "2", "3"}
    assert metrics["labels"]["1"]["name"] == "ellipsoid"
    assert 0.0 <= metrics["labels"]["1"]["dice"] <= 1.0
    assert not folder.metrics("c").exists() and not folder.metrics("bad").exists()
    again = evaluate_cases(samples, results)
    assert all(c.reused for c in again.cases) and again.setup_s == 0.0

    # a reference on another grid fails at the evaluate stage; the segmentation stays
    write_phantom(sheet.parent / "other.nii.gz", sheet.parent / "b_label.nii.gz", shape=(40, 40, 12), seed=9)
    third = evaluate_cases(samples, results)
    assert {c.case_id: (c.outcome, c.reused) for c in third.cases} == {
        "a": ("ok", True), "b": ("failed", False), "bad": ("skipped", True)}
    failure = json.loads(folder.failure("b").read_text())
    assert failure["stage"] == "evaluate" and failure["error_type"] == "GeometryError"
    assert folder.segmentation("b").exists() and not folder.metrics("b").exists()


def test_the_evaluate_job_imports_no_torch_and_its_threads_decide_the_searches(tmp_path):
    """The workflow's evaluate job (``cohort evaluate ... --threads 1``) imported torch only to hold its thread count,
    which the surface distances' searches followed (1.9-2.5 s a job); they now follow medseg's own count."""
    data = tmp_path / "data"
    data.mkdir()
    write_phantom(data / "a.nii.gz", data / "a_label.nii.gz", shape=SHAPE, seed=1)
    sheet = _sheet(data, "case_id\timage\treference\na\ta.nii.gz\ta_label.nii.gz\n")
    results = tmp_path / "results"
    infer_cases(read_samples(sheet), results, InferOptions(model=MODEL, device="cpu", batch_size=8))
    script = (
        "import runpy, sys, scipy.spatial\n"
        "workers = []\n"
        "query = scipy.spatial.KDTree.query\n"
        "def counted(tree, *args, **kwargs):\n"
        "    workers.append(kwargs.get('workers'))\n"
        "    return query(tree, *args, **kwargs)\n"
        "scipy.spatial.KDTree.query = counted\n"
        "sys.argv = ['medseg'] + sys.argv[1:]\n"
        "try:\n"
        "    runpy.run_module('medseg', run_name='__main__')\n"
        "except SystemExit as stop:\n"
        "    print('exit', stop.code)\n"
        "print('torch' in sys.modules, 'monai' in sys.modules, sorted(set(workers)))\n"
    )
    run = subprocess.run([sys.executable, "-c", script, "-q", "cohort", "evaluate", str(sheet), "-o", str(results),
                          "--threads", "1"], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert run.stdout.splitlines()[-2:] == ["exit 0", "False False [1]"], run.stderr
    assert json.loads(ResultsFolder(results).metrics("a").read_text())["labels"]["1"]["dice"] > 0.5


def test_a_sidecar_that_cannot_be_read_fails_its_case_at_scoring_naming_it(cohort):
    sheet, results = cohort
    samples = [s for s in read_samples(sheet) if s.case_id in ("a", "b")]
    folder = ResultsFolder(results)
    infer_cases(samples, results, InferOptions(model=MODEL, device="cpu", batch_size=8))
    folder.sidecar("b").write_text("[]")  # it had failed with "list indices must be integers or slices, not str"
    summary = evaluate_cases(samples, results)
    assert {c.case_id: c.outcome for c in summary.cases} == {"a": "ok", "b": "failed"}
    failure = json.loads(folder.failure("b").read_text())
    assert failure["stage"] == "evaluate" and failure["error_type"] == "InputError"
    assert failure["error"] == f"{folder.sidecar('b')}: not a readable sidecar (holds a JSON list, not an object)"
    assert not folder.metrics("b").exists() and folder.metrics("a").exists()


def test_label_codes_added_to_a_model_do_not_redo_its_nifti_segmentations(cohort, tmp_path):
    """DICOM SEG codes change no NIfTI result: a model given ``label_codes`` keeps the cohort's segmentations; a
    renamed label (which sidecars, metrics and the report show) redoes them."""
    import shutil

    from medseg.package import load_package

    sheet, results = cohort
    samples = [s for s in read_samples(sheet) if s.case_id == "a"]
    model = tmp_path / "model"
    shutil.copytree(load_package(MODEL).path, model)
    summary = infer_cases(samples, results, InferOptions(model=str(model), device="cpu"))
    assert [(c.outcome, c.reused) for c in summary.cases] == [("ok", False)]
    config = json.loads((model / "model.json").read_text())
    anatomy = {"scheme": "SCT", "value": "91723000", "meaning": "Anatomical Structure"}
    config["label_codes"] = {"1": {"category": anatomy, "type": anatomy}}
    (model / "model.json").write_text(json.dumps(config))
    summary = infer_cases(samples, results, InferOptions(model=str(model), device="cpu"))
    assert [(c.outcome, c.reused) for c in summary.cases] == [("ok", True)]
    config["labels"]["1"] += " renamed"
    (model / "model.json").write_text(json.dumps(config))
    summary = infer_cases(samples, results, InferOptions(model=str(model), device="cpu"))
    assert [(c.outcome, c.reused) for c in summary.cases] == [("ok", False)]


def test_a_changed_model_json_redoes_the_cases(cohort, tmp_path):
    import shutil

    from medseg.package import load_package

    sheet, results = cohort
    samples = [s for s in read_samples(sheet) if s.case_id == "a"]
    model = tmp_path / "model"
    shutil.copytree(load_package(MODEL).path, model)
    infer_cases(samples, results, InferOptions(model=str(model), device="cpu", batch_size=8))
    config = json.loads((model / "model.json").read_text())
    config["labels"]["1"] = "lesion"  # same weights, another label name: the sidecar must say so
    (model / "model.json").write_text(json.dumps(config))
    summary = infer_cases(samples, results, InferOptions(model=str(model), device="cpu", batch_size=8))
    assert [(c.outcome, c.reused) for c in summary.cases] == [("ok", False)]
    assert json.loads(ResultsFolder(results).sidecar("a").read_text())["labels"]["1"] == "lesion"


def test_a_reference_taken_out_of_the_sheet_takes_its_scores_along(cohort):
    sheet, results = cohort
    folder = ResultsFolder(results)
    write_phantom(sheet.parent / "other.nii.gz", sheet.parent / "small_label.nii.gz", shape=(40, 40, 12), seed=9)
    text = sheet.read_text().replace("b\tb.nii.gz\tb_label.nii.gz", "b\tb.nii.gz\tsmall_label.nii.gz")
    sheet.write_text(text)
    samples = [s for s in read_samples(sheet) if s.case_id in ("a", "b")]
    infer_cases(samples, results, InferOptions(model=MODEL, device="cpu", batch_size=8))
    evaluate_cases(samples, results)
    assert folder.metrics("a").exists() and json.loads(folder.failure("b").read_text())["stage"] == "evaluate"

    sheet.write_text(text.replace("a_label.nii.gz", "").replace("small_label.nii.gz", ""))
    samples = [s for s in read_samples(sheet) if s.case_id in ("a", "b")]
    summary = evaluate_cases(samples, results)
    assert summary.cases == []
    for case in ("a", "b"):
        assert not folder.metrics(case).exists() and not folder.failure(case).exists()
        assert folder.status(case, "evaluate") is None
        assert folder.segmentation(case).exists() and folder.status(case, "infer")["outcome"] == "ok"


def test_a_stopped_run_does_not_count_as_a_crash(cohort, monkeypatch):
    import medseg.segment

    sheet, results = cohort
    samples = [s for s in read_samples(sheet) if s.case_id == "a"]
    options = InferOptions(model=MODEL, device="cpu", batch_size=8)
    folder = ResultsFolder(results)

    def stopped(*args, **kwargs):  # Ctrl-C, or the SIGTERM of a scheduler (raised as SystemExit by the CLI)
        raise KeyboardInterrupt

    monkeypatch.setattr(medseg.segment, "segment_case", stopped)
    for _ in range(3):
        with pytest.raises(KeyboardInterrupt):
            infer_cases(samples, results, options)
        assert not folder.started_path("a", "infer").exists()
    monkeypatch.undo()
    summary = infer_cases(samples, results, options)
    assert [(c.outcome, c.reused) for c in summary.cases] == [("ok", False)]


def test_a_package_calling_itself_by_a_shipped_name_is_warned_about_by_cohort_infer(cohort, make_package, caplog):
    """`medseg infer` and the workflow's planning warned; `medseg cohort infer` run by hand did not."""
    sheet, results = cohort
    mine = make_package("hippocampus")
    with caplog.at_level("WARNING", logger="medseg"):
        infer_cases(read_samples(sheet)[:1], results, InferOptions(model=str(mine), device="cpu"))
    assert [r.getMessage() for r in caplog.records if "calls itself" in r.getMessage()] == [
        f"{mine} calls itself 'hippocampus', as a model shipped with medseg, but is another package (other weights): "
        "outputs name it by that name (the sidecar also records its folder and the SHA-256 of its weights and "
        "model.json)"]
    caplog.clear()
    with caplog.at_level("WARNING", logger="medseg"):  # the shipped model itself: no warning
        infer_cases(read_samples(sheet)[:1], results, InferOptions(model="phantom", device="cpu"))
    assert not [r for r in caplog.records if "calls itself" in r.getMessage()]


def test_the_plan_of_a_run_is_read_back_with_the_same_cases_per_job_only(tmp_path):
    from medseg.cohort import read_batch_plan, write_batch_plan

    lines = "".join(f"c{i}\tc{i}.nii.gz\n" for i in range(5))
    samples = read_samples(_sheet(tmp_path, "case_id\timage\n" + lines))
    results = tmp_path / "results"
    assert read_batch_plan(results, 2) is None
    planned = batches(samples, 2)
    write_batch_plan(results, 2, planned)
    plan = read_batch_plan(results, 2)
    assert plan == {"batch001": ["c0", "c1"], "batch002": ["c2", "c3"], "batch003": ["c4"]}
    assert batches(samples, 2, plan) == planned  # a job a cluster starts finds the same jobs
    assert read_batch_plan(results, 3) is None  # another cases_per_job: cut anew (a larger one regroups too)
    # a job whose cases all left the sheet stays in the plan, empty: its name is not given to a new job
    fewer = batches(samples[:4], 2, plan)
    write_batch_plan(results, 2, fewer, plan)
    assert read_batch_plan(results, 2) == {"batch001": ["c0", "c1"], "batch002": ["c2", "c3"], "batch003": []}
    assert batches(samples[:4], 2, read_batch_plan(results, 2)) == fewer
    more = read_samples(_sheet(tmp_path, "case_id\timage\nc0\ta\nc1\tb\nc2\tc\nc3\td\nn\te\n"))
    assert list(batches(more, 2, read_batch_plan(results, 2))) == ["batch001", "batch002", "batch004"]
    (results / "jobs" / ".plan.json").write_text("{not json")
    assert read_batch_plan(results, 2) is None


def test_both_jobs_end_with_their_times_in_milliseconds(monkeypatch):
    """infer_cases and evaluate_cases set a summary's times through one method: the setup's seconds and those since
    the job's clock reading, to the millisecond."""
    import time

    from medseg.cohort.run import JobSummary

    monkeypatch.setattr(time, "perf_counter", lambda: 12.3456789)
    summary = JobSummary("evaluate")
    assert summary.timed(1.23456, 2.0) is summary
    assert (summary.setup_s, summary.total_s) == (1.235, 10.346)


def test_a_stop_that_acts_as_the_attempt_note_is_placed_takes_the_note_back(tmp_path, monkeypatch):
    """A SIGTERM held back while the note was renamed into place (and its folder flushed) acted once it was there:
    the note stayed, and the next run counted the stop as a crash of the case."""
    from medseg.cohort.attempts import _attempt

    folder = ResultsFolder(tmp_path / "results")
    real = ResultsFolder.mark_started

    def placed_then_stopped(self, *args, **kwargs):
        real(self, *args, **kwargs)
        raise KeyboardInterrupt  # as atomic_paths raises a held stop once the set is in place

    monkeypatch.setattr(ResultsFolder, "mark_started", placed_then_stopped)
    with pytest.raises(KeyboardInterrupt), _attempt(folder, "a", "infer", "print", 0, None):
        pytest.fail("the block must not run")
    assert not folder.started_path("a", "infer").exists()


def test_a_job_whose_inputs_cannot_be_read_records_them_without_building_the_network(cohort, monkeypatch):
    """A case is read before the network is built: a job whose every input cannot be read (a copy cut short) records
    each case as failed at read, with every field of its records, without building the network (MONAI's import and
    the weights: seconds a job); the device and precision its records name are resolved by torch alone."""
    import medseg.inference

    sheet, results = cohort
    bad = sheet.parent / "bad.nii.gz"
    only_bad = sheet.parent / "only_bad.tsv"
    only_bad.write_text(f"case_id\timage\nbad\t{bad}\n")
    monkeypatch.setattr(medseg.inference.Segmenter, "__init__", lambda *args, **kwargs: pytest.fail("network built"))
    summary = infer_cases(read_samples(only_bad), results, InferOptions(MODEL, "cpu"))
    assert [(case.case_id, case.outcome, case.stage) for case in summary.cases] == [("bad", "failed", "read")]
    record = json.loads((results / "cases" / "bad" / "bad_failed.json").read_text())
    assert (record["schema"], record["stage"], record["error_type"], record["input"]) == (
        FAILURE_SCHEMA, "read", "ImageReadError", str(bad))
    status = ResultsFolder(results).status("bad", "infer")
    assert status["outcome"] == "failed" and status["failed_stage"] == "read" and len(status["also_made_for"]) >= 1


def test_a_job_asked_for_a_device_that_is_not_there_fails_before_monai_is_imported(cohort):
    """A job with ``--device cuda`` on a machine without CUDA (a whole run's problem, which each of a job's attempts
    meets) imported torch and MONAI, about 4 CPU-s, before it said so: the device is now looked for first (torch
    alone), and no case is recorded as failed."""
    sheet, results = cohort
    script = ("import sys\n"
              "from medseg.cohort import InferOptions, infer_cases, read_samples\n"
              "from medseg.errors import DeviceError\n"
              "try:\n"
              f"    infer_cases(read_samples({str(sheet)!r}), {str(results)!r}, InferOptions({MODEL!r}, 'cuda'))\n"
              "except DeviceError as error:\n"
              "    print(error)\n"
              "print('monai imported:', 'monai' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": ""})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines()[0].startswith("device='cuda': CUDA is not available on this machine")
    assert done.stdout.splitlines()[-1] == "monai imported: False"
    assert not list(results.glob("cases/*/*_failed.json"))


def test_a_tile_too_big_for_the_machine_stops_the_job_before_the_case_s_earlier_results_go(cohort, monkeypatch):
    """The network is built once a case's input is read, after the case's earlier results were cleared: a package one
    of whose tiles the machine cannot hold (the job's problem, not the case's) must be refused before they go, as it
    was when the network was built first, and no case is recorded as failed."""
    import medseg.resources
    from medseg.errors import ModelPackageError

    sheet, results = cohort
    folder = ResultsFolder(results)
    earlier = folder.segmentation("a")
    earlier.parent.mkdir(parents=True, exist_ok=True)
    earlier.write_bytes(b"an earlier segmentation")
    monkeypatch.setattr(medseg.resources, "physical_memory", lambda: 1 << 20)
    with pytest.raises(ModelPackageError, match=r"model\.json: one forward pass .* more than this machine"):
        infer_cases(read_samples(sheet), results, InferOptions(MODEL, "cpu"))
    assert earlier.read_bytes() == b"an earlier segmentation"
    assert not list(results.glob("cases/*/*_failed.json"))
