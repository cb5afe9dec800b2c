"""`medseg evaluate PRED_DIR REF_DIR -o OUT_DIR` (medseg.folder_scoring): one record per case, failures and missed
cases on their rows, the report, summary and printed lines of them, existing outputs, a full disk, a Ctrl-C. Its
pairing is tested in test_folder_scoring_pairing.py (DICOM SEG references: test_folder_scoring_seg.py), its labels
and models in test_folder_scoring_labels.py, cropped references in test_folder_scoring_boxes.py and its usage
errors in test_folder_scoring_options.py, over folder_cases.py."""

from __future__ import annotations

import csv
import json
import logging

import numpy as np
import pytest
from conftest import run_cli
from folder_cases import (
    AFFINE,
    folder_pairs,  # noqa: F401  (the folders fixture its tests take)
    labels,
    run,
    save,
)


def test_a_folder_of_three_pairs_with_one_broken_scores_two_as_single_mode_does(folders, tmp_path, capsys):
    pred, ref = folders
    out = tmp_path / "scores"
    assert run(["evaluate", str(pred), str(ref), "-o", str(out)]) == 1
    captured = capsys.readouterr()
    assert sorted(p.name for p in out.glob("*_metrics.json")) == ["a_metrics.json", "b_metrics.json"]
    assert sorted(p.name for p in out.glob("*_failed.json")) == ["c_failed.json"]
    for case in ("a", "b"):  # the numbers one pair at a time gives
        single = tmp_path / "single" / f"{case}.json"
        assert run(["evaluate", str(pred / f"{case}_seg.nii.gz"), str(ref / f"{case}.nii.gz"), "-o", str(single)]) == 0
        folder_record, single_record = (json.loads(p.read_text()) for p in (out / f"{case}_metrics.json", single))
        assert folder_record["schema"] == "medseg-metrics/1"
        assert folder_record["labels"] == single_record["labels"]
    a = json.loads((out / "a_metrics.json").read_text())
    assert a["labels"]["1"]["dice"] == pytest.approx(2 * 8 * 9 * 4 / (2 * 9 * 9 * 4))  # one-voxel shift of 9
    rows = {row["case_id"]: row for row in csv.DictReader((out / "cohort.tsv").open(), delimiter="\t")}
    assert rows["c"]["status"] == "failed" and rows["c"]["failed_stage"] == "evaluate"
    assert str(ref / "c.nii.gz") in rows["c"]["error"] and "not scored" in rows["c"]["error"]
    assert rows["c"]["error_type"] == "GeometryError"
    assert float(rows["a"]["label_1_dice"]) == pytest.approx(a["labels"]["1"]["dice"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["cases"]["total"] == 3 and summary["cases"]["scored"] == 2 and summary["cases"]["failed"] == 1
    dice = summary["labels"]["1"]["dice"]
    b = json.loads((out / "b_metrics.json").read_text())
    assert dice["n"] == 2 and dice["min"] == b["labels"]["1"]["dice"]
    assert dice["mean"] == pytest.approx((a["labels"]["1"]["dice"] + b["labels"]["1"]["dice"]) / 2)
    assert (out / "report.html").is_file()
    assert "3 cases: 2 scored, 1 failed" in captured.out
    assert f"failed c: {ref / 'c.nii.gz'}" in captured.out
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temporary left behind


def test_a_folder_of_one_case_is_summed_up_as_one_case(tmp_path, capsys):
    """The summary line of a folder holding a single pair read "1 cases: 1 scored, 0 failed"."""
    pred, ref = tmp_path / "pred", tmp_path / "ref"
    predicted, reference = labels(1)
    save(predicted, pred / "a_seg.nii.gz")
    save(reference, ref / "a.nii.gz")
    assert run(["evaluate", str(pred), str(ref), "-o", str(tmp_path / "scores")]) == 0
    out = capsys.readouterr().out
    assert "1 case: 1 scored, 0 failed" in out
    assert "1 cases" not in out


def test_existing_outputs_are_refused_before_scoring_and_overwrite_replaces_a_case_that_now_fails(folders, tmp_path,
                                                                                                  capsys):
    pred, ref = folders
    out = tmp_path / "scores"
    assert run(["evaluate", str(pred), str(ref), "-o", str(out)]) == 1
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    capsys.readouterr()
    assert run(["evaluate", str(pred), str(ref), "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "exists" in err[0] and "--overwrite" in err[0]
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before  # nothing touched
    (pred / "a_seg.nii.gz").write_bytes(b"not an image")  # a now fails: its earlier metrics go
    save(labels(0)[1], ref / "c.nii.gz")  # c is scored now: its failure record goes
    assert run(["evaluate", str(pred), str(ref), "-o", str(out), "--overwrite"]) == 1
    assert sorted(p.name for p in out.glob("*.json") if p.name != "summary.json") == [
        "a_failed.json", "b_metrics.json", "c_metrics.json"]
    failure = json.loads((out / "a_failed.json").read_text())
    assert failure["error"].startswith(str(pred / "a_seg.nii.gz"))
    assert json.loads((out / "c_metrics.json").read_text())["labels"]["1"]["dice"] == 1.0


def test_the_output_folder_opens_in_medseg_report(folders, tmp_path):
    pred, ref = folders
    out = tmp_path / "scores"
    assert run(["evaluate", str(pred), str(ref), "-o", str(out)]) == 1
    assert run(["report", str(out), "-o", str(tmp_path / "again" / "report.html")]) == 0
    rows = list(csv.DictReader((tmp_path / "again" / "cohort.tsv").open(), delimiter="\t"))
    assert sorted((row["case_id"], row["status"]) for row in rows) == [("a", "scored"), ("b", "scored"),
                                                                       ("c", "failed")]


def test_one_folder_as_both_and_results_of_other_cases_in_the_output_folder(folders, tmp_path, capsys, caplog):
    pred, ref = folders
    assert run(["evaluate", str(ref), str(ref), "-o", str(tmp_path / "out")]) == 2  # each scored against itself
    assert "given as both the predictions and the references folder" in capsys.readouterr().err
    out = tmp_path / "out"
    out.mkdir()
    (out / "old_metrics.json").write_text("{}")
    with caplog.at_level(logging.WARNING):
        assert run(["evaluate", str(pred), str(ref), "-o", str(out)]) == 1
    assert (f"{out}: 1 result file not of these predictions (an earlier run's?) is in the report and its figures: "
            "old_metrics.json; remove them, or give a folder of its own") in caplog.messages


def test_a_separate_output_folder_still_shows_the_model_and_its_training_images(folders, tmp_path, capsys):
    """Scored into a folder of their own (the README's `-o scores/`), the cases' rows had no model and the summary
    counted 0 of the model's training images, however many there were (17 of 20 hippocampus cases segmented by the
    shipped model): the sidecars stay beside the predictions. The report takes the sidecar beside the prediction a
    metrics record names, where it describes that file."""
    pred, ref = folders
    save(labels(0)[1], ref / "c.nii.gz")  # c on the reference's grid again: three scored cases
    for case, trained in (("a", True), ("b", False)):
        (pred / f"{case}_seg.json").write_text(json.dumps({
            "schema": "medseg-segmentation/1", "case_id": case, "segmentation": f"{case}_seg.nii.gz",
            "labels": {"0": "background", "1": "anterior", "2": "posterior"},
            "model": {"name": "hippo-test", "version": "2", "weights_sha256": "ab" * 32},
            "in_training_set": trained}))
    (pred / "c_seg.json").write_text(json.dumps({  # the sidecar of another file: not c's
        "schema": "medseg-segmentation/1", "case_id": "c", "segmentation": "other_seg.nii.gz",
        "labels": {"0": "background", "1": "anterior", "2": "posterior"}, "model": {"name": "elsewhere"},
        "in_training_set": True}))
    out = tmp_path / "scores"
    assert run(["evaluate", str(pred), str(ref), "-o", str(out)]) == 0
    rows = {row["case_id"]: row for row in csv.DictReader((out / "cohort.tsv").open(), delimiter="\t")}
    assert {case: (row["model"], row["in_training_set"]) for case, row in rows.items()} == {
        "a": ("hippo-test", "true"), "b": ("hippo-test", "false"), "c": ("", "")}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["cases"]["in_training_set"] == 1 and summary["cases"]["scored"] == 3
    # the printed summary says so too, as `medseg infer` says it of each training image (it was silent)
    assert ("  1 of the cases is one of the model's training images: their Dice overstates accuracy on new data "
            "(summary.json's training_images gives both groups)") in capsys.readouterr().out.splitlines()
    assert not list(out.glob("*_seg.json"))  # read where they are, not copied
    (pred / "c_seg.json").write_text(json.dumps({"labels": ["background", "anterior", "posterior"]}))  # another tool's
    assert run(["evaluate", str(pred), str(ref), "-o", str(out), "--overwrite"]) == 0
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "c_seg.json" not in page  # no note of a file that is no sidecar of medseg's
    rows = {row["case_id"]: row for row in csv.DictReader((out / "cohort.tsv").open(), delimiter="\t")}
    assert rows["c"]["model"] == "" and rows["a"]["model"] == "hippo-test"


def test_scores_written_beside_channel_named_predictions_are_one_case_each(tmp_path):
    """`medseg infer imagesTs/case_0000.nii.gz -o pred/` writes case_0000_seg.nii.gz and its sidecar (case
    case_0000); two folders pair it with labelsTs/case.nii.gz as case `case`. Scored into PRED_DIR (the README's way to
    keep the model and training images in the report), the report read them as two cases: `case` scored without its
    model, `case_0000` segmented but not scored, and counted 2 cases for 1. One that failed at scoring likewise."""
    pred, ref = tmp_path / "pred", tmp_path / "labelsTs"
    for case, shift in (("a", 1), ("b", 0)):
        save(labels(shift)[0], pred / f"{case}_0000_seg.nii.gz")
        (pred / f"{case}_0000_seg.json").write_text(json.dumps({
            "schema": "medseg-segmentation/1", "case_id": f"{case}_0000", "segmentation": f"{case}_0000_seg.nii.gz",
            "labels": {"0": "background", "1": "anterior", "2": "posterior"},
            "model": {"name": "hippo-test", "version": "2", "weights_sha256": "ab" * 32},
            "in_training_set": case == "a"}))
    save(labels(0)[1], ref / "a.nii.gz")
    off = AFFINE.copy()
    off[0, 3] = 5.0  # b's reference on another grid: b fails at scoring
    save(labels(0)[1], ref / "b.nii.gz", off)
    assert run(["evaluate", str(pred), str(ref), "-o", str(pred)]) == 1
    rows = {row["case_id"]: row for row in csv.DictReader((pred / "cohort.tsv").open(), delimiter="\t")}
    assert {case: (row["status"], row["model"]) for case, row in rows.items()} == {
        "a": ("scored", "hippo-test"), "b": ("failed", "hippo-test")}
    assert rows["a"]["in_training_set"] == "true"
    summary = json.loads((pred / "summary.json").read_text())
    assert summary["cases"] == {**summary["cases"], "total": 2, "scored": 1, "failed": 1, "no_reference": 0,
                                "in_training_set": 1}


def test_a_full_disk_stops_the_run_in_one_line_and_leaves_no_empty_output_folder(folders, tmp_path, monkeypatch,
                                                                                 capsys):
    """A disk that takes no more stops the run at the first case's record, one line, exit 1; the output folder the run
    made (and its parents) was left behind empty, where errors that concern the whole run write nothing."""
    import errno

    import medseg.metrics

    pred, ref = folders

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(medseg.metrics, "metrics_json", full)
    out = tmp_path / "new" / "scores"
    assert run(["-q", "evaluate", str(pred), str(ref), "-o", str(out)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"medseg: error: {out}") and err[0].endswith(
        ": cannot write (no space left on device)")
    assert not (tmp_path / "new").exists()
    kept = tmp_path / "kept"
    kept.mkdir()
    assert run(["-q", "evaluate", str(pred), str(ref), "-o", str(kept)]) == 1
    assert kept.is_dir() and not list(kept.iterdir())  # a folder that was there stays


def test_the_closing_line_counts_one_metrics_file_and_one_failure_record_in_the_singular(folders, tmp_path, capsys):
    """It said "1 metrics files, 1 failure records"."""
    pred, ref = folders
    (pred / "b_seg.nii.gz").unlink()  # a: scored; b: missed; c: its reference on another grid, failed
    out = tmp_path / "scores"
    assert run(["evaluate", str(pred), str(ref), "-o", str(out)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == f"wrote {out} (1 metrics file, 2 failure records, report.html, cohort.tsv, summary.json)"


def test_many_missed_references_are_one_warning_and_two_summary_lines_not_three_lines_each(folders, tmp_path,
                                                                                         capsys):
    """Six predictions against a whole labelsTs/ of 200 printed each of the 194 missed cases three times: the
    warning, a progress line on stderr and a summary line on stdout (388 lines beside it)."""
    pred, ref = folders
    for case in ("d", "e", "f", "g", "h"):  # references without a prediction: missed cases
        save(labels(0)[1], ref / f"{case}.nii.gz")
    out = tmp_path / "scores"
    code, stdout, stderr = run_cli(["evaluate", str(pred), str(ref), "-o", str(out)], capsys)
    assert code == 1
    assert sorted(p.name for p in out.glob("*_failed.json")) == [f"{case}_failed.json" for case in "cdefgh"]
    assert [line for line in stderr.splitlines() if ": failed: " in line] == [
        line for line in stderr.splitlines() if line.startswith("c: failed: ")]  # c failed scoring: told; none missed
    failed = [line for line in stdout.splitlines() if line.startswith("failed")]
    assert len(failed) == 3
    assert failed[0].startswith(f"failed c: {ref / 'c.nii.gz'}")
    assert failed[1].startswith(f"failed d: {ref / 'd.nii.gz'}: no prediction for this reference in {pred} (a missed "
                                "case; a prediction is named d.nii.gz, d_seg.nii.gz, d_0000_seg.nii.gz (medseg infer's "
                                "of d_0000.nii.gz) or d_seg.dcm)")
    assert failed[2] == (f"failed: 4 more missed cases (no prediction), as the first: e, f, g, … (a failure record "
                         f"each in {out}; cohort.tsv lists them all)")
    assert stdout.splitlines()[0] == "a: Dice label_1 0.8889, label_2 0.7500"


@pytest.mark.parametrize("overwrite", [False, True], ids=["first run", "with --overwrite"])
def test_a_ctrl_c_says_how_many_records_are_kept_and_that_the_report_was_not_made(folders, tmp_path, capsys,
                                                                                   monkeypatch, overwrite):
    """A Ctrl-C while a folder was scored said only click's "Aborted.": nothing told that the cases scored stand,
    nor that the report is missing, nor that a rerun needs --overwrite (their records are outputs it refuses)."""
    import medseg.scoring

    pred, ref = folders
    out = tmp_path / "scores"
    real = medseg.scoring.score_pair
    calls = []

    def stopped_at_the_third(*args, **kwargs):
        calls.append(args[2])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(medseg.scoring, "score_pair", stopped_at_the_third)
    code, stdout, stderr = run_cli(["evaluate", str(pred), str(ref), "-o", str(out),
                                    *(["--overwrite"] if overwrite else [])], capsys)
    again = "the same command again" if overwrite else "it again with --overwrite"
    assert (code, stderr) == (130, f"medseg: stopped after 2 of 3 cases: their records in {out} are kept; the report "
                                   f"was not made: run {again} to finish\n")
    assert [line.split(":")[0] for line in stdout.splitlines()] == ["a", "b"]  # each case's Dice line, as it ended
    assert sorted(p.name for p in out.iterdir()) == ["a_metrics.json", "b_metrics.json"]
    monkeypatch.setattr(medseg.scoring, "score_pair", real)
    assert run(["evaluate", str(pred), str(ref), "-o", str(out), "--overwrite"]) == 1  # c fails on its grid, as before
    assert {p.name for p in out.iterdir()} == {"a_metrics.json", "b_metrics.json", "c_failed.json", "report.html",
                                                "cohort.tsv", "summary.json"}


def test_a_stop_in_the_first_case_says_nothing_was_written_and_names_a_sigterm(folders, tmp_path, capsys, monkeypatch):
    """Stopped while its first case was scored, the line read "stopped after 0 of 3 cases: their records in <out> are
    kept; … run it again with --overwrite to finish": no record was written, the folder it made was removed, and a
    rerun needs no --overwrite."""
    import signal

    import medseg.scoring
    from medseg.cli import stop_for

    pred, ref = folders
    out = tmp_path / "scores"

    def stopped(*args, **kwargs):
        raise stop_for(signal.SIGTERM)

    monkeypatch.setattr(medseg.scoring, "score_pair", stopped)
    code, stdout, stderr = run_cli(["evaluate", str(pred), str(ref), "-o", str(out)], capsys)
    assert (code, stderr) == (143, "medseg: stopped by SIGTERM before any of its 3 cases was scored: nothing was "
                                   "written; run the same command again\n")
    assert stdout == ""
    assert not out.exists()


def test_a_cases_dice_line_says_where_the_empty_mask_policy_set_its_dice(tmp_path, capsys):
    """A folder's line per case read "Dice label_1 0.0000, label_2 0.0000, label_3 n/a", where `medseg infer` says
    why: a Dice of 0 for a label missing from the reference (a false positive) or from the prediction looked like a
    missed overlap, and n/a gave no reason. It says so as infer's lines do."""
    import numpy as np

    pred_dir, ref_dir = tmp_path / "pred", tmp_path / "ref"
    pred_dir.mkdir()
    ref_dir.mkdir()
    pred, ref = np.zeros((10, 10, 6), np.uint8), np.zeros((10, 10, 6), np.uint8)
    ref[1:4, 1:4, 1:3] = 1  # label 1: not predicted
    pred[5:8, 5:8, 1:3] = 2  # label 2: not in the reference
    pred[1:3, 6:9, 3:5] = ref[1:3, 6:9, 3:5] = 4  # label 4: 12 voxels in both
    ref[1, 6:9, 3:5] = 0  # ... of which 6 in the reference too: Dice 2·6 / 18
    save(pred, pred_dir / "a_seg.nii.gz")
    save(ref, ref_dir / "a.nii.gz")
    other = np.zeros((10, 10, 6), np.uint8)
    other[2:5, 2:5, 2:4] = 3  # label 3 in another case only: both empty in case a
    save(other, pred_dir / "b_seg.nii.gz")
    save(other, ref_dir / "b.nii.gz")
    code, stdout, _ = run_cli(["evaluate", str(pred_dir), str(ref_dir), "-o", str(tmp_path / "scores")], capsys)
    assert code == 0
    assert stdout.splitlines()[:2] == [
        "a: Dice label_1 0.0000 (empty prediction: not predicted), label_2 0.0000 (false positive: not in the "
        "reference), label_4 0.6667", "b: Dice label_3 1.0000"]
    code, stdout, _ = run_cli(["evaluate", str(pred_dir), str(ref_dir), "-o", str(tmp_path / "named"), "--model",
                               "phantom"], capsys)  # its labels 1, 2, 3: the 4 of case a is not among them
    assert code == 1
    assert stdout.splitlines()[0] == ("b: Dice ellipsoid n/a (both empty), box n/a (both empty), tube 1.0000")


def test_a_callback_of_three_arguments_as_before_is_still_called_so(folders, tmp_path):
    from medseg.folder_scoring import score_folder

    pred, ref = folders
    three, four = [], []
    score_folder(pred, ref, tmp_path / "three", on_case=lambda case, metrics, error: three.append((case, error)))
    score_folder(pred, ref, tmp_path / "four",
                 on_case=lambda case, metrics, error, never_learnt: four.append((case, error, tuple(never_learnt))))
    assert [(case, error is None) for case, error in sorted(three)] == [("a", True), ("b", True), ("c", False)]
    assert [(case, error is None, learnt) for case, error, learnt in sorted(four)] == \
        [("a", True, ()), ("b", True, ()), ("c", False, ())]
    assert (tmp_path / "three" / "report.html").is_file()  # the run went to its end


def test_an_empty_prediction_says_why_once_for_all_its_labels(tmp_path, capsys):
    """A case predicted empty (a blank or unusual scan) read "Dice anterior 0.0000 (empty prediction: not predicted),
    posterior 0.0000 (empty prediction: not predicted)": the same words once per label. Labels with the same reason
    are named together and the reason said once, as the labels never learnt are; a label with figures stays apart."""
    import numpy as np

    pred_dir, ref_dir = tmp_path / "pred", tmp_path / "ref"
    pred_dir.mkdir()
    ref_dir.mkdir()
    ref = np.zeros((10, 10, 6), np.uint8)
    ref[1:4, 1:4, 1:3], ref[5:8, 5:8, 1:3], ref[1:3, 6:9, 3:5] = 1, 2, 3
    save(np.zeros_like(ref), pred_dir / "a_seg.nii.gz")  # nothing predicted
    save(ref, ref_dir / "a.nii.gz")
    pred = np.where(ref == 3, 3, 0).astype(np.uint8)  # label 3 alone predicted
    pred[8, 1:3, 1] = 4  # and a label the reference does not hold
    save(pred, pred_dir / "b_seg.nii.gz")
    save(ref, ref_dir / "b.nii.gz")
    code, stdout, _ = run_cli(["evaluate", str(pred_dir), str(ref_dir), "-o", str(tmp_path / "scores")], capsys)
    assert code == 0
    assert stdout.splitlines()[:2] == [
        "a: Dice label_1, label_2, label_3: 0.0000 (empty prediction: not predicted)",
        "b: Dice label_3 1.0000, label_4 0.0000 (false positive: not in the reference); label_1, label_2: 0.0000 "
        "(empty prediction: not predicted)"]


def test_infer_lines_say_an_empty_predictions_reason_once():
    """`medseg infer --reference`'s lines, one per label, grouped as `medseg evaluate`'s line groups them."""
    from medseg.cli.infer import _dice_lines

    labels = {"1": {"name": "anterior", "dice": 0.0, "status": "empty_prediction"},
              "2": {"name": "posterior", "dice": 0.0, "status": "empty_prediction"}}
    assert _dice_lines(labels, None) == ["  Dice anterior, posterior: 0.0000 (empty prediction: not predicted)"]
    labels["2"] = {"name": "posterior", "dice": 0.9, "status": "ok"}
    assert _dice_lines(labels, None) == ["  Dice anterior: 0.0000 (empty prediction: not predicted)",
                                         "  Dice posterior: 0.9000"]


def test_a_case_infer_failed_on_and_evaluate_then_missed_is_one_case_with_both_reasons(tmp_path):
    """`medseg infer` over images, one of them truncated, then `medseg evaluate --images` of its predictions into a
    folder of their own: infer wrote the truncated case's failure record beside the predictions, evaluate one of a
    missed case among the scores, and a report over both folders showed the case twice (both flagged
    ``duplicate_id``, three cases of two). It is one case, failed at reading its image, the missed scoring a note."""
    images, ref = tmp_path / "imagesTs", tmp_path / "labelsTs"
    for case in ("a", "b"):
        save(np.random.default_rng(0).normal(100, 20, (20, 20, 8)).astype(np.float32), images / f"{case}.nii.gz")
        save(labels(0)[1], ref / f"{case}.nii.gz")
    whole = (images / "b.nii.gz").read_bytes()
    (images / "b.nii.gz").write_bytes(whole[: len(whole) // 2])  # an interrupted copy
    pred, scores = tmp_path / "pred", tmp_path / "scores"
    assert run(["infer", str(images / "a.nii.gz"), str(images / "b.nii.gz"), "-m", "phantom", "-o", str(pred)]) == 1
    assert json.loads((pred / "b_failed.json").read_text())["stage"] == "read"
    assert run(["evaluate", str(pred), str(ref), "-o", str(scores), "--images", str(images)]) == 1
    missed = json.loads((scores / "b_failed.json").read_text())
    assert missed["error_type"] == "MissingPrediction" and missed["predictions"] == str(pred)
    # the scores' own report says why there is no prediction: infer's record beside the predictions says so
    assert f"no prediction for this reference in {pred}: medseg infer failed on it ({pred / 'b_failed.json'}: " \
        f"{images / 'b.nii.gz'}: truncated image data" in missed["error"]
    assert run(["report", str(tmp_path), "-o", str(tmp_path / "report.html")]) == 0
    rows = list(csv.DictReader((tmp_path / "cohort.tsv").open(), delimiter="\t"))
    assert [(row["case_id"], row["status"]) for row in rows] == [("b", "failed"), ("a", "scored")]
    assert "duplicate_id" not in rows[0]["flags"] and "truncated" in rows[0]["error"]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["cases"]["total"] == 2 and summary["cases"]["failed"] == 1
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "no prediction for this reference" in page  # the scoring's word is kept, as a note of the case


def test_the_folder_scores_show_as_one_short_line(folders, tmp_path):
    """score_folder's result, a notebook cell's value, showed the whole summary.json record with its report's
    fields: 11.6 KB for two cases, the counts a reader looks for deep inside. It shows as the command's closing line
    counts, with its folder and report; the lists and the summary stay on the object."""
    from medseg.folder_scoring import score_folder

    pred, ref = folders
    scores = score_folder(pred, ref, tmp_path / "scores")
    assert repr(scores) == (f"FolderScores(out_dir='{tmp_path / 'scores'}', scored=2, failed=1, unreferenced=0, "
                            f"missed=0, report='{tmp_path / 'scores' / 'report.html'}')")
    assert [case for case, _ in scores.scored] == ["a", "b"] and scores.summary["cases"]["failed"] == 1


def _segmented_then_b_replaced(tmp_path, tiny_package):
    """Cases a and b segmented with their references, then b's input replaced: (images, predictions, references)."""
    images, pred, ref = tmp_path / "images", tmp_path / "pred", tmp_path / "ref"
    rng = np.random.default_rng(3)
    for case in ("a", "b"):
        save((rng.random((20, 20, 8)) * 100).astype(np.float32), images / f"{case}.nii.gz")
        assert run(["-q", "infer", str(images / f"{case}.nii.gz"), "-o", str(pred), "--device", "cpu",
                    "--model", str(tiny_package.path)]) == 0
        save(labels(0)[1], ref / f"{case}.nii.gz")
    save((rng.random((20, 20, 8)) * 100).astype(np.float32), images / "b.nii.gz")  # b's input replaced
    return images, pred, ref


def test_a_case_whose_input_changed_since_it_was_segmented_is_named_and_fails_the_run(tmp_path, capsys,
                                                                                        tiny_package):
    """The report counts such a case as failed (stale); the command printed its Dice, then "2 cases: 1 scored,
    1 failed" without naming it or saying why, and exited 0, where any failed case is exit 1."""
    images, pred, ref = _segmented_then_b_replaced(tmp_path, tiny_package)
    capsys.readouterr()
    out = tmp_path / "scores"
    assert run(["evaluate", str(pred), str(ref), "-o", str(out)]) == 1
    printed = capsys.readouterr().out
    assert "2 cases: 1 scored, 1 failed" in printed
    failed = [line for line in printed.splitlines() if line.startswith("failed ")]
    assert len(failed) == 1 and failed[0].startswith(f"failed b: the input {images / 'b.nii.gz'} was changed")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["cases"]["failed"] == 1


def test_the_folder_scores_count_a_case_whose_input_changed_as_failed_as_the_command_does(tmp_path, tiny_package):
    """score_folder's result listed such a case among ``scored`` and not among ``failed`` (``scored=2, failed=0``),
    where summary.json and the command's closing line count it failed (``1 scored, 1 failed``). It is among
    ``failed`` with its metrics file, and named in ``stale``."""
    from medseg.folder_scoring import score_folder

    images, pred, ref = _segmented_then_b_replaced(tmp_path, tiny_package)
    out = tmp_path / "scores"
    scores = score_folder(pred, ref, out)
    assert [case for case, _ in scores.scored] == ["a"] and scores.stale == ["b"]
    ((case, error, record),) = scores.failed
    assert case == "b" and error.startswith(f"the input {images / 'b.nii.gz'} was changed") and \
        record == out / "b_metrics.json"
    assert (scores.summary["cases"]["scored"], scores.summary["cases"]["failed"]) == (1, 1)
    assert "scored=1, failed=1," in repr(scores)


def test_an_earlier_runs_failure_in_the_output_folder_does_not_fail_this_run(folders, tmp_path, capsys, caplog):
    """The report takes every record in the folder (a warning names an earlier run's); its failures were printed as
    this run's ("failed c: ...") and failed a run whose every case was scored, with exit 1."""
    pred, ref = folders
    out = tmp_path / "scores"
    assert run(["evaluate", str(pred), str(ref), "-o", str(out)]) == 1  # c fails: c_failed.json
    for folder in (pred, ref):
        next(folder.glob("c*")).unlink()
    capsys.readouterr()
    with caplog.at_level(logging.WARNING):
        assert run(["evaluate", str(pred), str(ref), "-o", str(out), "--overwrite"]) == 0
    printed = capsys.readouterr().out
    assert [line for line in printed.splitlines() if line.startswith("failed")] == [], printed
    assert any(message.endswith("is in the report and its figures: c_failed.json; remove them, or give a folder of "
                                "its own") for message in caplog.messages), caplog.messages
