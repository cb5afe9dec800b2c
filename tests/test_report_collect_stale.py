"""Stale results (medseg.report.collect): metrics, a segmentation, an input or a reference that no longer match
the files they describe, and failures kept whatever the file times."""

from __future__ import annotations

import json
import os
import shutil

import nibabel as nib
import numpy as np
import pytest
from report_cases import (
    phantom,
    read_tsv,
    write_case,
    write_case_arrays,
    write_failure,
)

from medseg.io.atomic import sha256_of
from medseg.report.build import build_report


def test_a_failure_at_scoring_stays_failed_whatever_the_file_times(tmp_path):
    # a results folder copied without its times (scp -r): the sidecar ends up newer than the failure record
    write_case(tmp_path, "unscored", 2, "exact", reference=False)
    failure = write_failure(tmp_path, "unscored", stage="evaluate", error_type="GeometryError")
    sidecar = tmp_path / "cases" / "unscored" / "unscored_seg.json"
    past = sidecar.stat().st_mtime - 60
    os.utime(failure, (past, past))
    rows = {row["case_id"]: row for row in read_tsv(build_report(tmp_path, tmp_path / "r.html").table)}
    assert rows["unscored"]["status"] == "failed" and rows["unscored"]["failed_stage"] == "evaluate"


def test_metrics_of_an_earlier_medseg_beside_a_later_segmentation_are_stale(tmp_path):
    """Metrics written before they recorded the SHA-256 of the file they score, left beside the sidecar of a later
    run (a moved results folder segmented again without a reference keeps them), were shown as the new
    segmentation's figures; their predicted volumes tell them apart. Volumes an early sidecar rounded to 4 decimals
    still match."""
    root = tmp_path / "results"
    for seed, case_id in enumerate(("resegmented", "rounded")):
        folder = write_case(root, case_id, seed, "erode")
        sidecar_path, metrics_path = folder / f"{case_id}_seg.json", folder / f"{case_id}_metrics.json"
        sidecar, metrics = json.loads(sidecar_path.read_text()), json.loads(metrics_path.read_text())
        metrics.pop("prediction_sha256", None)  # as an earlier medseg wrote them
        if case_id == "resegmented":  # the sidecar of a later run, with the hash of the file it describes
            sidecar["segmentation_sha256"] = sha256_of(folder / f"{case_id}_seg.nii.gz")
            sidecar["label_volume_ml"]["1"] *= 1.2
        else:
            sidecar["label_volume_ml"] = {k: round(v, 4) for k, v in sidecar["label_volume_ml"].items()}
        sidecar_path.write_text(json.dumps(sidecar))
        metrics_path.write_text(json.dumps(metrics))
    rows = {row["case_id"]: row for row in read_tsv(build_report(root, tmp_path / "r" / "report.html",
                                                                 max_overlays=0).table)}
    assert rows["rounded"]["status"] == "scored" and float(rows["rounded"]["min_dice"]) > 0.5
    assert rows["resegmented"]["status"] == "failed" and rows["resegmented"]["min_dice"] == ""
    assert rows["resegmented"]["failed_stage"] == "stale" and rows["resegmented"]["error"].startswith(
        "resegmented_metrics.json scores another resegmented_seg.nii.gz than the one its sidecar describes (written "
        "by an earlier medseg, without the SHA-256 of the file it scored, its predicted volumes are not the "
        "sidecar's); score the segmentation again (medseg evaluate -o ... --overwrite) or remove "
        "resegmented_metrics.json")


def test_metrics_of_an_earlier_medseg_on_a_rounding_midpoint_are_not_stale(tmp_path):
    """An early sidecar rounded its volumes to 4 decimals: 63 voxels of 0.5 x 0.5 x 1 mm (0.01575 ml, scored so)
    were kept as 0.0158, 5e-5 apart plus the floats' error, and the case of one run was called stale."""
    affine = np.diag([0.5, 0.5, 1.0, 1.0])
    labels = np.zeros((20, 20, 10), np.uint8)
    labels.flat[:63] = 1
    labels.flat[100:300] = 2
    folder = write_case_arrays(tmp_path / "results", "early", np.zeros(labels.shape, np.float32), labels,
                               labels.copy(), affine)
    sidecar_path, metrics_path = folder / "early_seg.json", folder / "early_metrics.json"
    sidecar, metrics = json.loads(sidecar_path.read_text()), json.loads(metrics_path.read_text())
    metrics.pop("prediction_sha256", None)  # as an earlier medseg wrote them
    scored = {value: metrics["labels"][value]["pred_volume_ml"] for value in ("1", "2")}
    sidecar["label_volume_ml"] = {value: round(volume, 4) for value, volume in scored.items()}
    assert sidecar["label_volume_ml"]["1"] == 0.0158 and abs(scored["1"] - 0.0158) > 5e-5  # on the midpoint
    sidecar_path.write_text(json.dumps(sidecar))
    metrics_path.write_text(json.dumps(metrics))
    row = read_tsv(build_report(tmp_path / "results", tmp_path / "r" / "report.html", max_overlays=0).table)[0]
    assert row["status"] == "scored" and row["error"] == "" and float(row["min_dice"]) == 1.0


def test_a_segmentation_that_is_not_the_one_its_sidecar_and_metrics_describe_is_stale(tmp_path):
    """Each case's files must describe one segmentation: a segmentation changed after it was written, or metrics of
    an earlier segmentation beside a newer sidecar, make the case stale (its figures are not shown as its own);
    results that record no hashes (written before they did) are taken as they are."""
    root = tmp_path / "results"
    for seed, case_id in enumerate(("same", "edited", "rescored", "renamed", "unhashed")):
        folder = write_case(root, case_id, seed, "erode")
        if case_id == "unhashed":
            continue
        seg = folder / f"{case_id}_seg.nii.gz"
        sidecar_path, metrics_path = folder / f"{case_id}_seg.json", folder / f"{case_id}_metrics.json"
        sidecar, metrics = json.loads(sidecar_path.read_text()), json.loads(metrics_path.read_text())
        sidecar["segmentation_sha256"] = metrics["prediction_sha256"] = sha256_of(seg)
        if case_id == "rescored":  # the sidecar of a later run, the metrics of an earlier one
            metrics["prediction_sha256"] = "0" * 64
        if case_id == "renamed":  # the sidecar describes a DICOM SEG, the metrics score the NIfTI
            sidecar["segmentation"] = f"{case_id}_seg.dcm"
        sidecar_path.write_text(json.dumps(sidecar))
        metrics_path.write_text(json.dumps(metrics))
    edited = root / "cases" / "edited" / "edited_seg.nii.gz"
    image = nib.load(edited)
    nib.save(nib.Nifti1Image(np.zeros(image.shape, np.uint8), image.affine), edited)
    unhashed = root / "cases" / "unhashed" / "unhashed_seg.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros(image.shape, np.uint8), image.affine), unhashed)

    outputs = build_report(root, tmp_path / "report" / "report.html", max_overlays=0)
    rows = {row["case_id"]: row for row in read_tsv(outputs.table)}
    assert rows["same"]["status"] == "scored" and float(rows["same"]["min_dice"]) > 0.5
    assert rows["unhashed"]["status"] == "scored"
    for case_id in ("edited", "rescored", "renamed"):
        assert rows[case_id]["status"] == "failed" and rows[case_id]["min_dice"] == ""
        assert rows[case_id]["failed_stage"] == "stale" and rows[case_id]["error_type"] == "StaleResult"
    assert rows["edited"]["error"] == ("edited_seg.nii.gz is not the file its sidecar edited_seg.json describes "
                                       "(their SHA-256 differ: it was changed or replaced after medseg wrote it); "
                                       "segment the case again (a cohort redoes a case whose folder was removed)")
    assert rows["rescored"]["error"].startswith("rescored_metrics.json scores another rescored_seg.nii.gz than the "
                                                "one its sidecar describes")
    assert rows["renamed"]["error"].startswith("renamed_metrics.json scores renamed_seg.nii.gz, but the case's "
                                               "sidecar describes renamed_seg.dcm")
    summary = json.loads(outputs.summary.read_text())
    assert summary["cases"]["scored"] == 2 and summary["cases"]["failed"] == 3

    # a copied folder without its segmentation: the report falls back on the file the metrics name, in the
    # original folder, and that file is checked too (it was drawn and trusted, changed or not)
    copy = tmp_path / "copy"
    shutil.copytree(root / "cases" / "same", copy / "cases" / "same")
    (copy / "cases" / "same" / "same_seg.nii.gz").unlink()
    rows = {row["case_id"]: row for row in read_tsv(build_report(copy, tmp_path / "r2" / "r.html",
                                                                 max_overlays=0).table)}
    assert rows["same"]["status"] == "scored"
    original = root / "cases" / "same" / "same_seg.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros(image.shape, np.uint8), image.affine), original)
    rows = {row["case_id"]: row for row in read_tsv(build_report(copy, tmp_path / "r3" / "r.html",
                                                                 max_overlays=0).table)}
    assert rows["same"]["failed_stage"] == "stale" and rows["same"]["error"].startswith(
        f"{original} is not the file its sidecar same_seg.json describes")


def test_an_input_or_reference_replaced_since_is_stale_outside_a_cohort(tmp_path, make_package):
    """`medseg infer -o out --reference …` then `medseg report out`: an input or a reference replaced at the same
    path by another of the same grid kept its old figures, unflagged, and the overlay drew the new image under the
    old segmentation. A file only given new times (touched, copied) keeps its figures: its content decides."""
    from medseg.inference import Segmenter
    from medseg.segment import segment_case

    segmenter = Segmenter(make_package())
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    for seed, case_id in enumerate("abcd"):
        image, labels, affine = phantom(seed)
        nib.save(nib.Nifti1Image(image, affine), data / f"{case_id}.nii.gz")
        nib.save(nib.Nifti1Image(labels, affine), data / f"{case_id}_label.nii.gz")
        segment_case(data / f"{case_id}.nii.gz", segmenter, out, reference=data / f"{case_id}_label.nii.gz")
    sidecar = json.loads((out / "a_seg.json").read_text())
    stat = (data / "a.nii.gz").stat()
    assert sidecar["input_signature"] == [stat.st_size, stat.st_mtime_ns]

    image = nib.load(data / "b.nii.gz")  # another image on the same grid, under the same name
    nib.save(nib.Nifti1Image(np.flip(np.asarray(image.dataobj), 0), image.affine, image.header), data / "b.nii.gz")
    label = nib.load(data / "c_label.nii.gz")  # a reference re-drawn: label 1 taken out
    blanked = np.where(np.asarray(label.dataobj) == 1, 0, np.asarray(label.dataobj)).astype(np.uint8)
    nib.save(nib.Nifti1Image(blanked, label.affine, label.header), data / "c_label.nii.gz")
    for name in ("d.nii.gz", "d_label.nii.gz"):  # the same bytes, other times
        os.utime(data / name, ns=(1_000_000_000, 1_000_000_000))

    rows = {row["case_id"]: row for row in read_tsv(build_report(out, tmp_path / "r" / "report.html",
                                                                 max_overlays=0).table)}
    assert [(rows[c]["status"], rows[c]["failed_stage"]) for c in "abcd"] == [
        ("scored", ""), ("failed", "stale"), ("failed", "stale"), ("scored", "")]
    assert rows["b"]["error"] == (
        f"the input {data / 'b.nii.gz'} was changed or replaced after the case was segmented (its SHA-256 is not "
        "the one recorded then); segment the case again (a cohort redoes such a case)")
    assert rows["c"]["error"].startswith(f"the reference {data / 'c_label.nii.gz'} was changed or replaced after the "
                                         "case was scored")
    assert rows["b"]["min_dice"] == rows["c"]["min_dice"] == ""


def test_a_case_failed_at_scoring_whose_segmentation_changed_since_is_stale_and_its_volumes_not_pooled(tmp_path):
    """A case that failed at scoring keeps its sidecar's predicted volumes (its segmentation stands). Its
    segmentation cut short after medseg wrote it (which is why scoring failed) still gave the sidecar's volumes
    to the case table and to the cohort's volume statistics, though the file no longer holds that segmentation;
    it was not checked against the sidecar's SHA-256 as a scored case's is."""
    write_case(tmp_path, "kept", 1, "exact", reference=False)
    folder = write_case(tmp_path, "cut", 2, "exact", reference=False)
    segmentation, sidecar_path = folder / "cut_seg.nii.gz", folder / "cut_seg.json"
    sidecar = json.loads(sidecar_path.read_text())
    sidecar["segmentation_sha256"] = sha256_of(segmentation)
    sidecar_path.write_text(json.dumps(sidecar))
    segmentation.write_bytes(segmentation.read_bytes()[:300])  # an interrupted copy
    failure = write_failure(tmp_path, "cut", stage="evaluate", error_type="ImageReadError")
    record = json.loads(failure.read_text())
    record["error"] = f"{segmentation}: truncated image data (its gzip stream ends early)"
    failure.write_text(json.dumps(record))
    outputs = build_report(tmp_path, tmp_path / "r.html", max_overlays=0)
    rows = {row["case_id"]: row for row in read_tsv(outputs.table)}
    assert (rows["cut"]["status"], rows["cut"]["failed_stage"]) == ("failed", "stale")
    assert rows["cut"]["error"].startswith("cut_seg.nii.gz is not the file its sidecar cut_seg.json describes")
    assert rows["cut"]["ball_pred_volume_ml"] == "" and rows["cut"]["ball_status"] == "failed"
    kept = json.loads((tmp_path / "cases" / "kept" / "kept_seg.json").read_text())["label_volume_ml"]["1"]
    volume = json.loads(outputs.summary.read_text())["labels"]["1"]["pred_volume_ml"]
    assert (volume["n"], volume["mean"]) == (1, kept)
    assert "truncated image data" in outputs.html.read_text()  # scoring's own reason is kept as a note


def test_a_segmentation_this_user_may_not_read_says_so_not_that_it_is_stale(tmp_path, capsys):
    """A segmentation whose sidecar records its SHA-256 but which this user may not read made the case stale:
    "cannot read (permission denied); segment the case again", though the file is whole. The case fails at the
    report on the file it cannot read, named as the report's readers name it, with what to do; the overlay's
    warning words it so too (it was Python's "[Errno 13] Permission denied: '…'")."""

    from conftest import medseg_as_plain_user

    results = tmp_path / "results"
    folder = write_case(results, "locked", 1, "exact")
    segmentation = folder / "locked_seg.nii.gz"
    for name, key in (("locked_seg.json", "segmentation_sha256"), ("locked_metrics.json", "prediction_sha256")):
        record = json.loads((folder / name).read_text())
        record[key] = sha256_of(segmentation)
        (folder / name).write_text(json.dumps(record))
    segmentation.chmod(0)
    try:
        run = medseg_as_plain_user(["report", str(results), "--max-overlays", "1"], capsys)
    finally:
        segmentation.chmod(0o644)
    assert run.returncode == 0, run.stderr
    row = read_tsv(results / "cohort.tsv")[0]
    assert (row["status"], row["failed_stage"], row["error_type"], row["error"]) == (
        "failed", "report", "UnreadableResult",
        "cases/locked/locked_seg.nii.gz: cannot read (permission denied); give this user read access to it")
    assert run.stderr.strip().splitlines() == [
        f"warning: locked: no overlay ({segmentation}: cannot read (permission denied))"]


def test_a_case_folder_this_user_may_list_but_not_enter_is_left_out_with_a_warning(tmp_path, capsys):
    """A case folder with read but no search permission (``chmod -R 644 results``): its files could be listed but not
    opened, and the report crashed on them with a PermissionError traceback, exit 1, writing nothing. It is left out
    with the warning an unlistable folder gets, and the other cases are reported."""

    from conftest import medseg_as_plain_user

    results = tmp_path / "results"
    folder = write_case(results, "locked", 1, "exact")
    write_case(results, "open", 1, "exact")
    folder.chmod(0o644)
    try:
        run = medseg_as_plain_user(["report", str(results), "--max-overlays", "0"], capsys)
    finally:
        folder.chmod(0o755)
    assert run.returncode == 0, run.stderr
    assert run.stderr.strip().splitlines() == [
        f"warning: {folder}: cannot read (permission denied); the results in it, if any, are left out of the report"]
    assert [row["case_id"] for row in read_tsv(results / "cohort.tsv")] == ["open"]


def test_a_sheet_case_whose_folder_this_user_may_list_but_not_enter_says_so_on_its_row(tmp_path, capsys):
    """With --sheet, such a case's row said it was not run yet, or its results removed: it names its folder."""

    from conftest import medseg_as_plain_user

    results = tmp_path / "results"
    folder = write_case(results, "locked", 1, "exact")
    write_case(results, "open", 1, "exact")
    sheet = tmp_path / "samples.tsv"
    sheet.write_text("case_id\timage\nlocked\tlocked.nii.gz\nopen\topen.nii.gz\n")
    folder.chmod(0o644)
    try:
        run = medseg_as_plain_user(["report", str(results), "--sheet", str(sheet),
                                    "--max-overlays", "0"], capsys)
    finally:
        folder.chmod(0o755)
    assert run.returncode == 0, run.stderr
    rows = {row["case_id"]: row for row in read_tsv(results / "cohort.tsv")}
    assert (rows["locked"]["status"], rows["locked"]["failed_stage"], rows["locked"]["error"]) == (
        "failed", "report", "cases/locked: cannot read (permission denied); give this user read access to it")


def test_a_segmentation_deleted_beside_its_sidecar_and_metrics_is_a_failed_case(tmp_path):
    """A case whose segmentation was deleted (its sidecar and metrics left) was listed as scored, or without a
    reference as `no_reference`, with a `geometry` flag, not failed: `cohort check --fail-on any` let it through,
    while a segmentation cut short failed (stale). It fails at stage `report`, its error naming the missing file;
    its scores (of a file that is gone) are in no figure."""
    from medseg.cohort.check import check_failures
    from medseg.errors import CohortFailedError

    for seed, case_id in enumerate(("kept", "scored", "unscored")):
        write_case(tmp_path, case_id, seed, "exact", reference=case_id != "unscored")
    for case_id in ("scored", "unscored"):
        (tmp_path / "cases" / case_id / f"{case_id}_seg.nii.gz").unlink()
    outputs = build_report(tmp_path, tmp_path / "report.html", max_overlays=0)
    rows = {row["case_id"]: row for row in read_tsv(outputs.table)}
    assert rows["kept"]["status"] == "scored"
    for case_id in ("scored", "unscored"):
        row = rows[case_id]
        assert (row["status"], row["flags"], row["failed_stage"], row["error_type"], row["min_dice"]) == (
            "failed", "failed", "report", "MissingResult", "")
        assert row["error"].startswith(f"cases/{case_id}/{case_id}_seg.nii.gz: no such file: the segmentation its "
                                       f"sidecar {case_id}_seg.json describes was deleted or moved; segment the case "
                                       "again (a cohort's next run redoes it; outside a cohort: medseg infer ")
    summary = json.loads(outputs.summary.read_text())
    assert summary["cases"]["total"] == 3 and summary["cases"]["failed"] == 2 and summary["cases"]["scored"] == 1
    assert summary["cases"]["no_reference"] == 0 and summary["labels"]["1"]["dice"]["n"] == 1
    page = outputs.html.read_text()
    assert "cases/scored/scored_seg.nii.gz: no such file: the segmentation its sidecar" in page
    assert "segmentation file not found" not in page
    assert check_failures(outputs.summary, "all")["failed"] == 2
    with pytest.raises(CohortFailedError, match=r": 2 of 3 cases failed \(fail_on_failed_cases: any\)"):
        check_failures(outputs.summary, "any")


def test_a_deleted_segmentation_gets_no_overlay_note_and_takes_no_overlay_place(tmp_path):
    """The failed case's error names the missing segmentation: its card said it again ("no overlay: segmentation
    file not found"), and it took one of the ``max_overlays`` places of the worst cases from a case that has one."""
    for seed, case_id in enumerate(("kept", "gone")):
        write_case(tmp_path, case_id, seed, "exact")
    (tmp_path / "cases" / "gone" / "gone_seg.nii.gz").unlink()
    outputs = build_report(tmp_path, tmp_path / "report.html", max_overlays=1)
    page = outputs.html.read_text()
    assert "cases/gone/gone_seg.nii.gz: no such file" in page
    assert "segmentation file not found" not in page and "no overlay: only the 1 worst" not in page
    assert {row["case_id"]: row["status"] for row in read_tsv(outputs.table)} == {"kept": "scored", "gone": "failed"}


def test_the_advice_for_a_deleted_segmentation_is_the_command_that_makes_the_case_again(tmp_path):
    """A deleted segmentation's advice was `medseg infer --overwrite`: run so, a case scored against a reference
    loses its scores (infer scores only with --reference), and the default model segments it. The advice is the
    command with the input, the folder, the model (a shipped one by its name), the DICOM series and format, and the
    reference it was scored against, as recorded; quoted for a shell."""
    import shlex

    from medseg.package import shipped_package_path

    model = tmp_path / "my models" / "liver"
    for seed, case_id in enumerate(("scored", "unscored", "shipped")):
        folder = write_case(tmp_path, case_id, seed, "exact", reference=case_id != "unscored")
        sidecar = json.loads((folder / f"{case_id}_seg.json").read_text())
        if case_id == "scored":
            sidecar["model"]["path"] = str(model)
        elif case_id == "shipped":
            sidecar["model"] |= {"name": "phantom", "path": str(shipped_package_path("phantom"))}
        else:  # a DICOM series' case, its segmentation a DICOM SEG, by a model whose folder is not recorded
            sidecar |= {"input_info": {"series_uid": "1.2.840.99", "series_key": "3"},
                        "segmentation": "unscored_seg.dcm"}
        (folder / f"{case_id}_seg.json").write_text(json.dumps(sidecar))
        (folder / f"{case_id}_seg.nii.gz").unlink()
    outputs = build_report(tmp_path, tmp_path / "report.html", max_overlays=0)
    errors = {row["case_id"]: row["error"] for row in read_tsv(outputs.table)}
    for case_id, options in (("scored", f"--model {shlex.quote(str(model))} --reference "
                                        f"{tmp_path / 'inputs' / '0_label.nii.gz'}"),
                             ("unscored", "--model tiny-test --series 1.2.840.99 --format dicom-seg"),
                             ("shipped", f"--model phantom --reference {tmp_path / 'inputs' / '2_label.nii.gz'}")):
        image = tmp_path / "inputs" / f"{('scored', 'unscored', 'shipped').index(case_id)}_image.nii.gz"
        assert errors[case_id].endswith(
            f"segment the case again (a cohort's next run redoes it; outside a cohort: medseg infer {image} -o "
            f"{tmp_path / 'cases' / case_id} {options} --overwrite)"), errors[case_id]
