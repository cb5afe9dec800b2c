"""Finding and reading case results (medseg.report.collect): records of the wrong shape, files that cannot be
read, the sample sheet's cases, notes of the sidecar and the metrics."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from report_cases import (
    now,
    read_tsv,
    write_case,
    write_failure,
)

from medseg.report.build import build_report


def test_a_results_folder_of_links_to_other_folders_is_read_through_them(tmp_path):
    """A folder gathering sites' results by links to their folders read as holding none ("no case results found"):
    links to folders were not followed. A folder reached twice (a second link to it, a loop) is read once."""
    write_case(tmp_path / "site_a", "a1", 0, "exact")
    write_case(tmp_path / "site_a", "a2", 1, "erode")
    write_case(tmp_path / "site_b", "b1", 2, "exact", reference=False)
    gathered = tmp_path / "gathered"
    gathered.mkdir()
    (gathered / "a").symlink_to(tmp_path / "site_a")
    (gathered / "b").symlink_to(tmp_path / "site_b" / "cases")
    (gathered / "a_again").symlink_to(tmp_path / "site_a" / "cases")  # site_a's cases once more
    (gathered / "loop").symlink_to(gathered)
    outputs = build_report(gathered, tmp_path / "out" / "report.html")
    summary = json.loads(outputs.summary.read_text())
    assert summary["cases"]["total"] == 3 and summary["cases"]["scored"] == 2
    assert summary["cases"]["no_reference"] == 1 and summary["cases"]["failed"] == 0
    assert sorted(row["case_id"] for row in read_tsv(outputs.table)) == ["a1", "a2", "b1"]


def test_records_of_the_wrong_shape_fail_the_case_not_the_report(tmp_path):
    """JSON that parses but is not a usable record becomes a failed case (stage report) naming the field."""
    edits = {
        "m_labels_list": ("metrics", lambda r: r.update(labels=[1, 2]), "field 'labels' is not an object"),
        "m_no_labels": ("metrics", lambda r: r.pop("labels"), "field 'labels' is not an object"),
        "m_label_key": ("metrics", lambda r: r["labels"].update({"²": {}}), "has the key '²', not a label value"),
        "m_dice_text": ("metrics", lambda r: r["labels"]["1"].update(dice="high"), "label 1: dice not a number"),
        "m_dice_high": ("metrics", lambda r: r["labels"]["1"].update(dice=1.7), "label 1: dice 1.7 is outside 0–1"),
        "m_negative": ("metrics", lambda r: r["labels"]["2"].update(hd95_mm=-2.0, ref_volume_ml=-0.1),
                       "label 2: hd95_mm, ref_volume_ml negative"),
        "m_spacing": ("metrics", lambda r: r.update(spacing_mm=[1, 2]), "field 'spacing_mm' is not three numbers"),
        "s_shape": ("seg", lambda r: r.update(shape=64), "field 'shape' is not three whole numbers"),
        "s_affine": ("seg", lambda r: r.update(affine=r["affine"][:3]), "field 'affine' is not a 4×4 matrix"),
        "s_model": ("seg", lambda r: r.update(model="phantom"), "field 'model' is not an object"),
        "s_labels": ("seg", lambda r: r.update(labels=None, label_volume_ml=[0.1]),
                     "field 'label_volume_ml' is not an object"),
        "s_trained": ("seg", lambda r: r.update(in_training_set="yes"),
                      "field 'in_training_set' is not true or false"),
    }
    write_case(tmp_path, "fine", 0, "exact")
    for seed, (case_id, (kind, edit, _)) in enumerate(edits.items(), start=1):
        path = write_case(tmp_path, case_id, seed, "exact") / f"{case_id}_{kind}.json"
        record = json.loads(path.read_text())
        edit(record)
        path.write_text(json.dumps(record))
    rows = {row["case_id"]: row for row in read_tsv(build_report(tmp_path, tmp_path / "r.html").table)}
    assert rows["fine"]["status"] == "scored"
    for case_id, (kind, _, problem) in edits.items():
        assert rows[case_id]["status"] == "failed" and rows[case_id]["failed_stage"] == "report", case_id
        assert rows[case_id]["error"] == f"{case_id}_{kind}.json: {problem}" or problem in rows[case_id]["error"]


def test_unreadable_and_stale_records(tmp_path):
    write_case(tmp_path, "ok", 0, "exact")
    write_case(tmp_path, "retried", 1, "exact")
    stale = write_failure(tmp_path, "retried")
    past = (tmp_path / "cases" / "retried" / "retried_seg.json").stat().st_mtime - 60
    os.utime(stale, (past, past))  # the failure is older than the successful retry
    broken = tmp_path / "cases" / "broken"
    broken.mkdir(parents=True)
    (broken / "broken_seg.json").write_text("{not json")
    rows = {row["case_id"]: row for row in read_tsv(build_report(tmp_path, tmp_path / "r.html").table)}
    assert rows["retried"]["status"] == "scored"
    assert rows["broken"]["status"] == "failed" and rows["broken"]["failed_stage"] == "report"
    assert "broken_seg.json: cannot read" in rows["broken"]["error"]
    assert rows["broken"]["error"].endswith("; remove it and run again to redo the case")
    assert "ignored retried_failed.json" in (tmp_path / "r.html").read_text()


def test_a_case_whose_folder_took_no_files_is_failed_with_its_status_records_error(tmp_path):
    """A cohort case whose folder took no files has a status record saying so (``blocked``): the report names that
    error for a case whose folder holds nothing, and for one whose folder holds an earlier run's results (not shown
    as this run's), at the stage the record names (a record of another outcome is not read so); a case without a
    folder is one not run."""
    from medseg.cohort.records import ResultsFolder
    from medseg.cohort.samples import Sample
    from medseg.report.collect import add_expected_cases, collect_results

    write_case(tmp_path, "held", 0, "exact")
    write_case(tmp_path, "scored", 1, "exact")
    (tmp_path / "cases" / "empty").mkdir()
    records = ResultsFolder(tmp_path)
    refused = "{}: this case's results folder takes no files (Permission denied); run again"
    for case, stage, failed_stage in (("empty", "infer", "infer"), ("gone", "infer", "infer"),
                                      ("held", "infer", "infer"), ("scored", "evaluate", "evaluate")):
        records.mark_finished(case, stage, "print", "failed", [], 0.0, refused.format(case),
                              {"failed_stage": failed_stage, "blocked": True})
    records.mark_finished("scored", "infer", "print", "ok", [], 0.0, "not an error", {"blocked": True})
    images = {"held": "inputs/0_image.nii.gz", "scored": "inputs/1_image.nii.gz"}
    samples = [Sample(case, tmp_path / images.get(case, f"{case}.nii.gz"),
                      tmp_path / images[case].replace("image", "label") if case in images else None)
               for case in ("empty", "gone", "held", "scored")]
    shown = {case.case_id: case.failure for case in add_expected_cases(collect_results(tmp_path), samples, tmp_path)}
    assert {case: failure and (failure["stage"], failure["error"], failure["error_type"])
            for case, failure in shown.items()} == {
        "empty": ("infer", refused.format("empty"), "OutputWriteError"),
        "gone": ("not_run", "in the sample sheet, but the results folder holds nothing for it (not run yet, or its "
                            "results were removed)", "MissingResult"),
        "held": ("infer", f"{refused.format('held')} (the results it holds are an earlier run's)", "OutputWriteError"),
        "scored": ("evaluate", f"{refused.format('scored')} (the results it holds are an earlier run's)",
                   "OutputWriteError")}


def test_the_sample_sheet_lists_cases_without_results_or_scores(tmp_path):
    write_case(tmp_path, "done", 0, "exact")
    write_case(tmp_path, "pending", 1, "exact", reference=False)
    write_case(tmp_path, "moved", 2, "exact")
    write_case(tmp_path, "rescored", 3, "exact")
    write_case(tmp_path, "removed", 4, "exact")  # its row was taken out of the sheet
    data = tmp_path / "data"
    data.mkdir()
    sheet = data / "samples.tsv"
    sheet.write_text("case_id\timage\treference\n"
                     "done\t../inputs/0_image.nii.gz\t../inputs/0_label.nii.gz\n"
                     "pending\t../inputs/1_image.nii.gz\tpending_label.nii.gz\n"
                     "never\tnever.nii.gz\n"
                     "blocked\tblocked.nii.gz\n"
                     "moved\t../inputs/0_image.nii.gz\t../inputs/2_label.nii.gz\n"
                     "rescored\t../inputs/3_image.nii.gz\t../inputs/0_label.nii.gz\n")
    (tmp_path / "cases" / "blocked").write_text("a file where the case folder should be\n")
    outputs = build_report(tmp_path, tmp_path / "r.html", sheet=sheet)
    rows = {row["case_id"]: row for row in read_tsv(outputs.table)}
    assert {case: (row["status"], row["failed_stage"]) for case, row in rows.items()} == {
        "done": ("scored", ""), "pending": ("failed", "not_scored"), "never": ("failed", "not_run"),
        "blocked": ("failed", "infer"), "moved": ("failed", "stale"), "rescored": ("failed", "stale")}
    # the results of a row taken out of the sheet are left on disk and out of the report (not failed: with
    # fail_on_failed_cases any they failed the run until their folder was deleted), and named once
    summary = json.loads(outputs.summary.read_text())
    assert summary["left_out"] == ["cases/removed/"]
    assert summary["cases"]["total"] == 6 and summary["cases"]["failed"] == 5
    said = ("1 case not in the sample sheet has results left out of the report: cases/removed/; delete the "
            "folder to tidy up.")
    assert said in outputs.html.read_text()
    assert "a file is in the place of this case's results folder" in rows["blocked"]["error"]
    assert rows["never"]["error"].startswith("in the sample sheet, but the results folder holds nothing for it")
    assert f"gives the reference {data / 'pending_label.nii.gz'}" in rows["pending"]["error"]
    # results made from another image (or scored against another reference) than the row names never pass as its
    assert rows["moved"]["error"] == (f"the sample sheet names {tmp_path / 'inputs' / '0_image.nii.gz'}, but the "
                                      f"results were made from {tmp_path / 'inputs' / '2_image.nii.gz'}; run the "
                                      "workflow again to redo the case")
    assert "but the scores were made against" in rows["rescored"]["error"]
    # a reference taken out of the sheet while the case keeps its scores; odd field types never crash the check
    sheet.write_text(sheet.read_text().replace("done\t../inputs/0_image.nii.gz\t../inputs/0_label.nii.gz",
                                               "done\t../inputs/0_image.nii.gz\t"))
    record = tmp_path / "cases" / "moved" / "moved_seg.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), "input": 123}))
    rows = {row["case_id"]: row for row in read_tsv(build_report(tmp_path, tmp_path / "r.html", sheet=sheet,
                                                                 overwrite=True).table)}
    assert rows["done"]["failed_stage"] == "stale" and "gives no reference, but the case has scores" in \
        rows["done"]["error"]
    assert rows["moved"]["failed_stage"] == "report"  # the wrong type, as the report names such fields
    assert (outputs.cases, outputs.failed) == (6, 5)
    # without the sheet, the same folder looks finished: none failed but the record broken above
    assert build_report(tmp_path, tmp_path / "r.html", overwrite=True).failed == 1


def test_a_sheet_over_an_empty_results_folder_reports_every_case_not_run(tmp_path):
    empty = tmp_path / "results"
    empty.mkdir()
    sheet = tmp_path / "samples.tsv"
    sheet.write_text("case_id\timage\treference\na\ta.nii.gz\ta_label.nii.gz\nb\tb.nii.gz\n")
    outputs = build_report(empty, empty / "report.html", sheet=sheet)
    assert (outputs.cases, outputs.failed) == (2, 2)
    rows = {row["case_id"]: row for row in read_tsv(outputs.table)}
    assert {case: (row["status"], row["failed_stage"], row["error_type"]) for case, row in rows.items()} == {
        "a": ("failed", "not_run", "MissingResult"), "b": ("failed", "not_run", "MissingResult")}
    summary = json.loads(outputs.summary.read_text())
    assert summary["cases"] == {"total": 2, "scored": 0, "no_reference": 0, "failed": 2, "flagged": 2,
                                "in_training_set": 0, "empty": 0}
    assert "not run yet" in outputs.html.read_text()


def test_a_case_that_failed_only_at_scoring_keeps_its_volumes_and_its_refused_reference_is_not_drawn(tmp_path):
    write_case(tmp_path, "refused", 4, "exact", reference=False)
    label = tmp_path / "inputs" / "4_label.nii.gz"
    (tmp_path / "cases" / "refused" / "refused_failed.json").write_text(json.dumps({
        "schema": "medseg-failure/1", "case_id": "refused", "input": str(tmp_path / "inputs" / "4_image.nii.gz"),
        "reference": str(label), "stage": "evaluate", "error_type": "InputError", "created": now(),
        "error": f"{label}: label values [5, 6] are not among the model's labels [0, 1, 2]"}))
    sidecar = json.loads((tmp_path / "cases" / "refused" / "refused_seg.json").read_text())
    outputs = build_report(tmp_path, tmp_path / "r.html", max_overlays=5)
    row = read_tsv(outputs.table)[0]
    assert (row["status"], row["failed_stage"]) == ("failed", "evaluate")
    volumes = {k: v for k, v in sidecar["label_volume_ml"].items() if k != "0"}
    assert [float(row[f"{name}_pred_volume_ml"]) for name in ("ball", "box")] == pytest.approx(
        [volumes["1"], volumes["2"]], rel=1e-5)
    assert row["ball_status"] == "not_scored" and row["ball_dice"] == ""
    page = outputs.html.read_text()
    assert "reference not shown: scoring refused 4_label.nii.gz (see the failure)" in page
    # the overlay's alternative text says what it draws (it named the refused reference)
    assert ('alt="overlay of refused: sagittal, coronal and axial slices of the input with the predicted labels; '
            "flagged: ") in page


def test_a_series_cell_is_matched_as_the_series_choice_reads_it():
    from medseg.report.expected_cases import _same_series

    info = {"series_key": "3-2", "series_number": 3, "series_uid": "1.2.840.5"}
    # a part of a split series: "3" alone is refused as ambiguous by the series choice, so it never made these
    assert [_same_series(cell, info) for cell in ("3-2", "1.2.840.5", "03", "3")] == [True, True, False, False]
    assert [_same_series(cell, info) for cell in ("4", "3-1", "1.2.840.6", "#1", "None")] == [False] * 5
    whole = {"series_key": "3", "series_number": 3, "series_uid": None}
    assert [_same_series(cell, whole) for cell in ("3", "03", "None")] == [True, True, False]


def test_a_case_id_too_long_for_a_file_name_is_reported_not_a_crash(tmp_path):
    """The report looked for ``<case_id>_seg.nii.gz`` and crashed (ENAMETOOLONG) on a 300-character case id."""
    folder = write_case(tmp_path, "long", 0, "erode")
    for name in ("long_seg.json", "long_metrics.json"):
        record = json.loads((folder / name).read_text())
        record["case_id"] = "x" * 300
        (folder / name).write_text(json.dumps(record))
    failed = write_failure(tmp_path, "lf")
    record = json.loads(failed.read_text())
    record["case_id"] = "y" * 300
    failed.write_text(json.dumps(record))
    rows = {row["case_id"]: row for row in read_tsv(build_report(tmp_path, tmp_path / "r.html").table)}
    assert rows["x" * 300]["status"] == "scored" and rows["x" * 300]["segmentation"].endswith("long_seg.nii.gz")
    assert rows["y" * 300]["status"] == "failed" and rows["y" * 300]["segmentation"] == ""


def test_json_nested_too_deeply_fails_its_case_not_the_report(tmp_path):
    write_case(tmp_path, "fine", 0, "exact")
    deep = tmp_path / "cases" / "deep"
    deep.mkdir(parents=True)
    (deep / "deep_metrics.json").write_text("[" * 100000 + "]" * 100000)
    rows = {row["case_id"]: row for row in read_tsv(build_report(tmp_path, tmp_path / "r.html").table)}
    assert rows["fine"]["status"] == "scored"
    assert rows["deep"]["status"] == "failed" and rows["deep"]["failed_stage"] == "report"
    # named from the results folder down: every case folder of a cohort holds files of the same names
    assert rows["deep"]["error"].startswith("cases/deep/deep_metrics.json: cannot read (JSON nested too deeply)")


def test_a_result_the_disk_fails_to_read_gives_the_reason_as_other_messages_do(tmp_path, monkeypatch):
    """A result file the disk failed to read was "cannot read ([Errno 5] Input/output error: '/…/c1_metrics.json')",
    the path twice and the reason as the OS words it; the other messages give the reason alone, in lower case."""
    import errno

    import medseg.report.result_records as result_records

    write_case(tmp_path / "results", "c1", 0, "exact")
    real = result_records.read_json_object

    def failing(path, *args, **kwargs):
        if path.name == "c1_metrics.json":
            raise OSError(errno.EIO, os.strerror(errno.EIO), str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(result_records, "read_json_object", failing)
    [row] = read_tsv(build_report(tmp_path / "results", tmp_path / "r.html").table)
    assert row["error"] == ("cases/c1/c1_metrics.json: cannot read (input/output error); remove it and run again to "
                            "redo the case")


def test_two_metrics_files_of_one_case_fail_it_naming_both(tmp_path):
    """A copied metrics file with the same case id silently replaced the case's own scores (the last one read)."""
    folder = write_case(tmp_path / "results", "c1", 0, "exact")
    other = write_case(tmp_path / "elsewhere", "c1", 1, "erode")
    shutil.copy(other / "c1_metrics.json", folder / "copy_metrics.json")
    rows = {row["case_id"]: row for row in read_tsv(build_report(tmp_path / "results", tmp_path / "r.html").table)}
    assert len(rows) == 1
    row = rows["c1"]
    assert row["status"] == "failed" and row["failed_stage"] == "report" and row["error_type"] == "DuplicateResult"
    assert row["error"].startswith("cases/c1/c1_metrics.json and copy_metrics.json both hold the metrics of case "
                                   "'c1'")
    # neither file's scores are the case's: no time it was scored (the first file read gave it one)
    assert row["scored_at"] == "" and row["segmented_at"] == ""


def test_scores_the_report_does_not_take_give_no_column_of_the_row(tmp_path):
    """A case failed as a duplicate result lost its scored_at, but ``created`` (documented as segmented_at, else
    scored_at) still gave the first metrics file's time, and the hashes of the files those untaken scores were made
    from filled reference_sha256 and segmentation_sha256: none of them comes from scores the report does not take."""
    folder = write_case(tmp_path / "results", "c1", 0, "exact")
    other = write_case(tmp_path / "elsewhere", "c1", 1, "erode")
    for metrics in (folder / "c1_metrics.json", other / "c1_metrics.json"):
        record = json.loads(metrics.read_text())
        record.update(created="2026-12-01T08:00:00+00:00", prediction_sha256="cd" * 32, reference_sha256="ef" * 32)
        metrics.write_text(json.dumps(record))
    (folder / "c1_seg.json").unlink()  # no sidecar: only the metrics could give a time or a hash
    shutil.copy(other / "c1_metrics.json", folder / "copy_metrics.json")
    [row] = read_tsv(build_report(tmp_path / "results", tmp_path / "r.html").table)
    assert (row["status"], row["error_type"]) == ("failed", "DuplicateResult")
    assert [row[column] for column in ("created", "segmented_at", "scored_at", "segmentation_sha256",
                                       "reference_sha256")] == ["", "", "", "", ""]


def test_a_result_this_user_may_not_read_is_named_so_not_to_be_removed(tmp_path, monkeypatch):
    """A metrics file another user's umask left unreadable read "cannot read ([Errno 13] Permission denied: '/…');
    remove it and run again to redo the case": whole results to be thrown away for a permission. (Monkeypatched:
    chmod does not refuse root.)"""
    import errno
    import os

    folder = write_case(tmp_path / "results", "c1", 0, "exact")
    real = os.open

    def refused(path, *args, **kwargs):
        if os.path.basename(path) == "c1_metrics.json":
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", refused)
    [row] = read_tsv(build_report(tmp_path / "results", tmp_path / "r.html").table)
    assert (row["case_id"], row["status"], row["error_type"]) == ("c1", "failed", "UnreadableResult")
    assert row["error"] == "cases/c1/c1_metrics.json: cannot read (permission denied); give this user read access to it"
    assert (folder / "c1_metrics.json").is_file()


def test_an_unreadable_file_and_a_second_one_for_its_case_fail_on_the_unreadable_one(tmp_path):
    """When the first of two metrics files of a case could not be read, the case was failed as a duplicate whose
    first file "holds the metrics" it could not be read for."""
    folder = write_case(tmp_path / "results", "c1", 0, "exact")
    shutil.copy(folder / "c1_metrics.json", folder / "copy_metrics.json")
    (folder / "c1_metrics.json").write_text("{cut sh")
    rows = {row["case_id"]: row for row in read_tsv(build_report(tmp_path / "results", tmp_path / "r.html").table)}
    assert list(rows) == ["c1"]
    row = rows["c1"]
    assert row["status"] == "failed" and row["error_type"] == "UnreadableResult"
    assert row["error"].startswith("cases/c1/c1_metrics.json: cannot read (")
    assert row["error"].endswith("; remove it and run again to redo the case")
    assert "cases/c1/copy_metrics.json holds the metrics of case &#x27;c1&#x27; too" in (
        tmp_path / "r.html").read_text(encoding="utf-8")


def test_metrics_notes_are_shown_and_notes_of_another_type_are_ignored(tmp_path):
    """A metrics record's notes (volumes resting on an assumed slice thickness) reach the case's card; a `notes`
    that is no list (a hand-edited record) ended the report in a traceback."""
    for case_id, notes in (("listed", ["prediction: slice thickness unknown"]), ("odd", 5)):
        folder = write_case(tmp_path, case_id, 0 if case_id == "listed" else 1, "exact")
        record = json.loads((folder / f"{case_id}_metrics.json").read_text())
        record["notes"] = notes
        (folder / f"{case_id}_metrics.json").write_text(json.dumps(record))
    outputs = build_report(tmp_path, tmp_path / "r.html")
    assert {row["status"] for row in read_tsv(outputs.table)} == {"scored"}
    assert "prediction: slice thickness unknown" in outputs.html.read_text(encoding="utf-8")


def test_what_the_reader_noted_about_an_input_is_on_its_card(tmp_path):
    """The sidecar's notes on an input (an orientation or slice thickness taken on trust) and DICOM flags that change
    what the voxels mean (gantry tilt, MONOCHROME1) were in the sidecar and a job's log only; the QA report's
    reviewer did not see them. A flag that says nothing of the kind (non-HU: every MR) is not repeated."""
    from medseg.report.collect import collect_results

    folder = write_case(tmp_path, "noted", 0, "exact")
    sidecar = folder / "noted_seg.json"
    record = json.loads(sidecar.read_text())
    record["input_info"] = {"orientation_note": "no sform or qform: the orientation was assumed", "flags":
                            ["tilt", "non-HU", "monochrome1"], "label_like_note": "told by its own flag", "x_note": 5}
    sidecar.write_text(json.dumps(record))
    write_case(tmp_path, "plain", 1, "exact")
    cases = {case.case_id: case for case in collect_results(tmp_path)}
    assert cases["noted"].notes == [
        "input: no sform or qform: the orientation was assumed",
        "input: a DICOM series acquired with a gantry tilt (the slices are sheared; the segmentation is on that grid); "
        "MONOCHROME1 (bright is low; values are read as stored, not reversed) (medseg inspect lists its flags)"]
    assert cases["plain"].notes == []
    page = build_report(tmp_path, tmp_path / "r.html").html.read_text(encoding="utf-8")
    assert "input: no sform or qform: the orientation was assumed" in page and "gantry tilt" in page


def test_a_subfolder_this_user_may_not_read_is_warned_about_not_passed_over(tmp_path, capsys):
    """A folder under the results that could not be listed (another user's case folder) was passed over in silence,
    its cases missing from the report with no word of why: it is named in a warning now; the others are reported."""

    from conftest import medseg_as_plain_user

    results = tmp_path / "results"
    write_case(results / "site1", "case01", seed=1, how="good")
    write_case(results / "site2", "case02", seed=2, how="good")
    (results / "site2").chmod(0)
    try:
        run = medseg_as_plain_user(["report", str(results), "--max-overlays", "0"], capsys)
    finally:
        (results / "site2").chmod(0o755)
    assert run.returncode == 0, run.stderr
    assert run.stderr.strip().splitlines() == [f"warning: {results / 'site2'}: cannot read (permission denied); the "
                                               "results in it, if any, are left out of the report"]
    assert [row["case_id"] for row in read_tsv(results / "cohort.tsv")] == ["case01"]


@pytest.mark.parametrize("layout", ["cases", "sites"])
def test_a_sheet_case_whose_folder_this_user_may_not_read_says_so_on_its_row(tmp_path, layout, capsys):
    """With --sheet, a case whose folder could not be listed was warned about, and its row said "in the sample sheet,
    but the results folder holds nothing for it (not run yet, or its results were removed)": the row names the
    folder it cannot read now (its own, in a cohort's layout; in another, the folders that may hold it)."""

    from conftest import medseg_as_plain_user

    results = tmp_path / "results"
    roots = {"case01": results, "case02": results} if layout == "cases" else {
        "case01": results / "site1", "case02": results / "site2"}
    for seed, (case_id, root) in enumerate(roots.items(), start=1):
        write_case(root, case_id, seed=seed, how="good")
    sheet = tmp_path / "samples.tsv"
    sheet.write_text("case_id\timage\n" + "".join(f"{case_id}\t{root / 'inputs' / f'{seed}_image.nii.gz'}\n"
                                                  for seed, (case_id, root) in enumerate(roots.items(), start=1)))
    locked = results / "cases" / "case02" if layout == "cases" else results / "site2"
    locked.chmod(0)
    try:
        run = medseg_as_plain_user(["report", str(results), "--sheet", str(sheet),
                                    "--max-overlays", "0"], capsys)
    finally:
        locked.chmod(0o755)
    assert run.returncode == 0, run.stderr
    shown = locked.relative_to(results)
    rows = {row["case_id"]: row for row in read_tsv(results / "cohort.tsv")}
    assert (rows["case02"]["status"], rows["case02"]["failed_stage"], rows["case02"]["error"]) == (
        ("failed", "report", f"{shown}: cannot read (permission denied); give this user read access to it")
        if layout == "cases" else
        ("failed", "not_run", "in the sample sheet, but the results this user may read hold nothing for it; "
                              f"{shown}: cannot read (permission denied); give this user read access to it"))
    assert rows["case01"]["failed_stage"] != "report"


def test_a_case_failed_at_scoring_in_a_scores_folder_of_its_own_is_drawn_from_its_prediction(tmp_path):
    """``medseg evaluate PRED_DIR REF_DIR -o SCORES`` writes a case's failure record apart from its prediction and
    sidecar. The report joined the sidecar (its volumes showed) but looked for the segmentation only beside the
    failure record: the card said "segmentation file not found" (a ``geometry`` flag) and had no overlay, though
    the failure names the prediction and the file is there."""
    folder = write_case(tmp_path / "run", "moved", 4, "erode", reference=False)
    segmentation = folder / "moved_seg.nii.gz"
    label = tmp_path / "run" / "inputs" / "4_label.nii.gz"
    scores = tmp_path / "run" / "scores"
    scores.mkdir()
    (scores / "moved_failed.json").write_text(json.dumps({
        "schema": "medseg-failure/1", "case_id": "moved", "input": str(segmentation), "reference": str(label),
        "stage": "evaluate", "error_type": "GeometryError", "created": now(),
        "error": f"{label}: its affine places voxels up to 7.5 mm away from where {segmentation}'s does"}))
    outputs = build_report(tmp_path / "run", tmp_path / "r.html", max_overlays=5)
    row = read_tsv(outputs.table)[0]
    assert (row["case_id"], row["status"], row["failed_stage"]) == ("moved", "failed", "evaluate")
    assert row["segmentation"] == str(segmentation)
    page = outputs.html.read_text()
    assert "segmentation file not found" not in page
    assert 'alt="overlay of moved: sagittal, coronal and axial slices of the input with the predicted labels' in page


def test_a_results_folder_given_with_dot_dot_names_its_files_by_their_normalised_path(tmp_path, monkeypatch):
    """`medseg report ../run/../results` wrote `/…/run/../run/../results/cases/a1/a1_seg.nii.gz` into cohort.tsv,
    where the input and the reference beside it are absolute and normalised (as the sample sheet resolves them). A
    `..` after a link to a folder is read as the shell reads it (beside the link's target), as the sheet reads it."""
    results = tmp_path / "site" / "results"
    write_case(results, "a1", 0, "exact")
    (tmp_path / "run").mkdir()
    monkeypatch.chdir(tmp_path / "run")
    seg = str(results / "cases" / "a1" / "a1_seg.nii.gz")
    out = build_report("../run/../site/results", tmp_path / "r.html")
    row = read_tsv(out.table)[0]
    assert (row["segmentation"], row["input"]) == (seg, str(results / "inputs" / "0_image.nii.gz"))
    # the same through a link: site/deep/link -> site/deep/there/folder, so link/../../../results is site/results
    folder = tmp_path / "site" / "deep" / "there" / "folder"
    folder.mkdir(parents=True)
    (tmp_path / "run" / "link").symlink_to(folder)
    out = build_report("link/../../../results", tmp_path / "r.html", overwrite=True)
    assert read_tsv(out.table)[0]["segmentation"] == seg


def test_a_record_that_is_a_link_leading_nowhere_fails_its_case_and_a_folder_so_named_is_warned_of(tmp_path,
                                                                                                    caplog):
    """A ``*_metrics.json`` that is a link whose target moved, or a loop of links, was passed over in silence: its case
    was listed as not scored, as if never evaluated. It fails its case naming the link now, as other unreadable
    records do; a folder named as a record is warned of, by name."""
    import logging

    results = tmp_path / "results"
    for case in ("c1", "c2", "c3"):
        folder = write_case(results, case, 0, "exact")
    moved, loop = results / "cases" / "c2" / "c2_metrics.json", results / "cases" / "c3" / "c3_metrics.json"
    moved.unlink()
    moved.symlink_to(tmp_path / "elsewhere" / "c2_metrics.json")
    loop.unlink()
    loop.symlink_to("c3_metrics.json")
    (folder / "c4_metrics.json").mkdir()
    with caplog.at_level(logging.WARNING, logger="medseg"):
        rows = {row["case_id"]: row for row in read_tsv(build_report(results, tmp_path / "r.html").table)}
    assert sorted(rows) == ["c1", "c2", "c3"]
    assert rows["c1"]["status"] == "scored"
    nowhere = ("that leads nowhere (its target moved or deleted, or a loop of links); restore its target, or remove "
               "it and run again to redo the case")
    for case, target in (("c2", tmp_path / "elsewhere" / "c2_metrics.json"), ("c3", "c3_metrics.json")):
        assert (rows[case]["status"], rows[case]["error_type"]) == ("failed", "UnreadableResult")
        assert rows[case]["error"] == f"cases/{case}/{case}_metrics.json: a link to {target} {nowhere}"
    assert [m for m in caplog.messages if "c4_metrics.json" in m] == [
        f"{folder / 'c4_metrics.json'}: a folder, though named as a result record: no record of its case is read from "
        "it (the results in it, if any, are)"]


@pytest.mark.parametrize("outside", ["../elsewhere", "ABSOLUTE"])
def test_a_records_case_id_naming_a_path_is_not_read_as_its_segmentation(tmp_path, outside):
    """A case's records name its id (``case_id``); the report looked for the segmentation as ``<case_id>_seg.nii.gz``
    in the case's folder, so a crafted or damaged record whose id was ``../elsewhere`` (or an absolute path) had it
    hash and draw a file outside the case's folder as that case's segmentation. Such an id names no file."""
    from medseg.report.collect import collect_results

    folder = write_case(tmp_path / "results", "a", 0, "identity")
    found = folder.parent / "elsewhere_seg.nii.gz"  # beside the case's folder, not in it
    shutil.move(folder / "a_seg.nii.gz", found)
    case_id = str(tmp_path / "results" / "cases" / "elsewhere") if outside == "ABSOLUTE" else outside
    for name in ("a_seg.json", "a_metrics.json"):
        record = json.loads((folder / name).read_text())
        record["case_id"] = case_id
        (folder / name).write_text(json.dumps(record))
    (case,) = [case for case in collect_results(tmp_path / "results") if case.case_id == case_id]
    assert case.folder == folder
    assert case.segmentation_path() is None


@pytest.mark.skipif(os.name == "nt", reason="'\\' parts a path on Windows: no case is so named there")
def test_a_posix_case_named_with_a_backslash_finds_its_segmentation_by_its_own_name(tmp_path):
    """The guard that keeps a record's ``case_id`` from naming a file outside the case's folder refused any id
    holding ``\\``: a POSIX case named ``scan\\006`` (a legal name there) whose sidecar and metrics both fail to
    locate its segmentation had none found, though ``scan\\006_seg.nii.gz`` lies in its folder."""
    from medseg.report.collect import collect_results

    case_id = "scan\\006"
    folder = write_case(tmp_path / "results", case_id, 0, "identity")
    for name, key in ((f"{case_id}_seg.json", "segmentation"), (f"{case_id}_metrics.json", "prediction")):
        record = json.loads((folder / name).read_text())
        record[key] = str(tmp_path / "moved_seg.nii.gz") if key == "prediction" else "moved_seg.nii.gz"
        (folder / name).write_text(json.dumps(record))
    (case,) = collect_results(tmp_path / "results")
    assert case.case_id == case_id and case.segmentation_path() == folder / f"{case_id}_seg.nii.gz"


def test_results_of_cases_not_in_the_sheet_are_not_said_to_be_no_longer_in_it(tmp_path):
    """The report cannot know whether a case was ever in the sheet: results of a case that is not were said to be
    "no longer in the sample sheet", though it never was."""
    write_case(tmp_path, "a1", 0, "exact")
    write_case(tmp_path, "other", 1, "exact")
    sheet = tmp_path / "samples.tsv"
    sheet.write_text("case_id\timage\treference\na1\tinputs/0_image.nii.gz\tinputs/0_label.nii.gz\n")
    outputs = build_report(tmp_path, tmp_path / "r.html", sheet=sheet, max_overlays=0)
    said = ("1 case not in the sample sheet has results left out of the report: cases/other/; delete the folder to "
            "tidy up.")
    page = outputs.html.read_text()
    assert said in page and "no longer" not in page
    assert json.loads(outputs.summary.read_text())["left_out_cases"] == ["other"]


def test_a_sheet_none_of_whose_cases_has_results_in_a_folder_of_other_cases_is_an_error(tmp_path, capsys):
    """`medseg report RESULTS --sheet S` with a sheet of other case ids (another cohort's, or ids renamed) exited 0
    with every case failed (not run) and every result "no longer in the sample sheet": a wrong sheet, not a cohort of
    failed cases. It is an error naming the sheet and the first ids on each side; nothing is written."""
    from conftest import run_cli

    for seed in range(5):
        write_failure(tmp_path, f"case{seed:02d}")  # records of a cohort, cheap to write
    sheet = tmp_path / "other.tsv"
    sheet.write_text("case_id\timage\n" + "".join(f"hip{n:03d}\tinputs/{n}.nii.gz\n" for n in range(5)))
    code, out, err = run_cli(["report", str(tmp_path), "--sheet", str(sheet)], capsys)
    assert (code, out) == (1, "")
    assert err == (f"medseg: error: {sheet}: none of its 5 cases (hip000, hip001, hip002, … and 2 more (5)) has "
                   f"results in {tmp_path}, which holds the results of 5 other cases (case00, case01, case02, … and 2 "
                   "more (5)): is it the sample sheet of these results? Give the one they were made with (--sheet), "
                   "or none to report every case found\n")
    assert not (tmp_path / "report.html").exists() and not (tmp_path / "summary.json").exists()
    # a sheet of which one case has results: the others are failed (not run), those not in it left out, as before
    sheet.write_text("case_id\timage\ncase00\tinputs/0.nii.gz\nnew01\tinputs/1.nii.gz\n")
    outputs = build_report(tmp_path, tmp_path / "r.html", sheet=sheet, max_overlays=0)
    assert {row["case_id"]: row["failed_stage"] for row in read_tsv(outputs.table)} == {"case00": "infer",
                                                                                        "new01": "not_run"}
    # an empty results folder against a sheet: every case not run, no error (a cohort not run yet)
    (tmp_path / "empty").mkdir()
    outputs = build_report(tmp_path / "empty", tmp_path / "empty" / "r.html", sheet=sheet, max_overlays=0)
    assert [row["failed_stage"] for row in read_tsv(outputs.table)] == ["not_run", "not_run"]
