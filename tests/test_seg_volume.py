"""A DICOM SEG prediction read back on the source series its sidecar records: scored and reviewed like a NIfTI
one, its source found (or named) where it lies now, a source changed since, the report's and evaluate's reading
from the series' headers."""

from __future__ import annotations

import json
import shutil

import nibabel as nib
import numpy as np
import pydicom
import pytest
from dicom_factory import slice_positions, stored_values, write_series
from seg_factory import NAMES, OBLIQUE, SHAPE, csv_rows, label_rule, run_main

from medseg.cli import main
from medseg.errors import InputError
from medseg.io.dicom import read_dicom_series
from medseg.io.seg_volume import read_seg_volume
from medseg.io.seg_writing import write_dicom_seg


def test_a_dicom_seg_result_is_scored_and_reviewed_like_a_nifti_one(tmp_path, capsys, tiny_package):
    """`evaluate` scores a DICOM SEG on its source series, and the QA report checks and draws it: the same Dice as
    the NIfTI output of the same input, and no geometry flag (it used to be 'cannot read')."""
    from medseg.report.build import build_report

    values = stored_values((40, 36, 6), seed=15) + 900
    write_series(tmp_path / "case8", values, slice_positions(6, -3.0), pixel_spacing=(1.1, 1.2))
    for folder, extra in (("nii", []), ("seg", ["--format", "dicom-seg"])):
        with pytest.raises(SystemExit) as exit_info:
            main(["-q", "infer", str(tmp_path / "case8"), "-o", str(tmp_path / folder), "--device", "cpu",
                  "--model", str(tiny_package.path), *extra])
        assert exit_info.value.code == 0
    nifti = nib.load(tmp_path / "nii" / "case8_seg.nii.gz")
    reference = np.asarray(nifti.dataobj).copy()
    reference[:, :, 2] = 0  # a reference that differs from the prediction on one slice
    nib.save(nib.Nifti1Image(reference, nifti.affine), tmp_path / "reference.nii.gz")
    scores = {}
    for name in ("nii/case8_seg.nii.gz", "seg/case8_seg.dcm"):
        with pytest.raises(SystemExit) as exit_info:  # -o as a folder: <case>_metrics.json in it
            main(["evaluate", str(tmp_path / name), str(tmp_path / "reference.nii.gz"), "--json",
                  "-o", str((tmp_path / name).parent)])
        assert exit_info.value.code == 0
        record = json.loads(capsys.readouterr().out)
        scores[name] = {k: v["dice"] for k, v in record["labels"].items()}
    assert scores["seg/case8_seg.dcm"] == scores["nii/case8_seg.nii.gz"]
    assert min(scores["nii/case8_seg.nii.gz"].values()) < 1.0
    outputs = build_report(tmp_path / "seg", tmp_path / "report" / "report.html", max_overlays=1)
    row = next(csv_rows(outputs.table))
    assert row["case_id"] == "case8" and "geometry" not in row["flags"] and outputs.overlays == 1
    page = outputs.html.read_text()
    assert "cannot read" not in page and "image not shown" not in page  # the source series is drawn under it


def test_a_reference_beside_a_seg_prediction_is_checked_from_its_header_before_it_is_read(tmp_path, capsys,
                                                                                         tiny_package):
    """With a DICOM SEG prediction the reference's header was not checked (only a NIfTI prediction's grid is known
    from a header): a reference on another grid was refused only once read whole, and one whose voxel data are cut
    short was refused for that, not for its grid. It is now checked from its header once the SEG is placed, with the
    words a NIfTI prediction gets, its data unread."""
    values = stored_values((40, 36, 6), seed=15) + 900
    write_series(tmp_path / "case8", values, slice_positions(6, -3.0), pixel_spacing=(1.1, 1.2))
    assert run_main(["-q", "infer", str(tmp_path / "case8"), "-o", str(tmp_path / "seg"), "--device", "cpu",
                     "--model", str(tiny_package.path), "--format", "dicom-seg"]) == 0
    series = read_dicom_series(tmp_path / "case8")
    (tmp_path / "nii").mkdir()  # a NIfTI prediction on the series' grid, for the words a NIfTI one gets
    labels = np.random.default_rng(0).integers(0, 3, series.shape).astype(np.uint8)  # half its gzip holds the header
    nib.save(nib.Nifti1Image(labels, series.affine), tmp_path / "nii" / "case8_seg.nii.gz")
    other = series.affine.copy()
    other[:3, 2] *= 1.5  # slices 4.5 mm apart where the series' are 3 mm: another grid
    reference = tmp_path / "reference.nii.gz"
    nib.save(nib.Nifti1Image(labels[:, :, :4].copy(), other), reference)
    expected = (f"{reference}: shape (40, 36, 4) differs from {{pred}}'s (40, 36, 6), with voxels of (1.2, 1.1, 4.5) "
                "mm against (1.2, 1.1, 3) mm; not scored")
    capsys.readouterr()
    for name in ("nii/case8_seg.nii.gz", "seg/case8_seg.dcm"):
        assert run_main(["evaluate", str(tmp_path / name), str(reference)]) == 1
        assert capsys.readouterr().err.strip().splitlines() == [
            "medseg: error: " + expected.format(pred=tmp_path / name)]
    whole = reference.read_bytes()
    reference.write_bytes(whole[:len(whole) // 2])  # its header, and a part of its voxels: unreadable as a volume
    for name in ("nii/case8_seg.nii.gz", "seg/case8_seg.dcm"):
        assert run_main(["evaluate", str(tmp_path / name), str(reference), "-o", str(tmp_path / "scores.json")]) == 1
        assert capsys.readouterr().err.strip().splitlines() == [
            "medseg: error: " + expected.format(pred=tmp_path / name)]
        assert not (tmp_path / "scores.json").exists()
    # `infer --reference` checks the header before any work, whatever the output's format
    assert run_main(["infer", str(tmp_path / "case8"), "-o", str(tmp_path / "again"), "--device", "cpu", "--model",
                     str(tiny_package.path), "--format", "dicom-seg", "--reference", str(reference)]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == "medseg: error: " + expected.format(
        pred=tmp_path / "case8").replace("not scored", "nothing segmented or written")
    assert not (tmp_path / "again").exists()


def test_a_seg_scored_on_a_series_changed_since_says_so(tmp_path, capsys, caplog, tiny_package):
    """A DICOM SEG is placed on its source series as the series is when it is scored; a series edited after the
    prediction was made (a file re-exported, one added) was used in silence. Now a warning and a note in the
    metrics say so; the score itself stands (the frames are placed by the images they reference)."""
    values = stored_values((40, 36, 6), seed=19) + 900
    write_series(tmp_path / "case9", values, slice_positions(6, -3.0))
    with pytest.raises(SystemExit) as exit_info:
        main(["-q", "infer", str(tmp_path / "case9"), "-o", str(tmp_path / "out"), "--device", "cpu",
              "--model", str(tiny_package.path), "--format", "dicom-seg"])
    assert exit_info.value.code == 0
    seg = tmp_path / "out" / "case9_seg.dcm"
    reference = read_seg_volume(seg, json.loads((tmp_path / "out" / "case9_seg.json").read_text()))
    nib.save(nib.Nifti1Image(reference.array.astype(np.uint8), reference.affine), tmp_path / "ref.nii.gz")

    def score() -> tuple[dict, str]:
        caplog.clear()
        with pytest.raises(SystemExit) as exit_info:
            main(["evaluate", str(seg), str(tmp_path / "ref.nii.gz"), "--json", "--overwrite",
                  "-o", str(tmp_path / "m.json")])
        assert exit_info.value.code == 0
        capsys.readouterr()
        return json.loads((tmp_path / "m.json").read_text()), caplog.text

    record, err = score()
    assert "notes" not in record and "not as it was" not in err
    first = sorted((tmp_path / "case9").iterdir())[0]
    dataset = pydicom.dcmread(first)
    dataset.PatientName = "Re^Exported"
    dataset.save_as(first)
    changed, err = score()
    note = (f"the source series {tmp_path / 'case9'} is not as it was when the prediction was made (its SHA-256 "
            "differs from the sidecar's input_sha256: files changed, added or removed since); placed on the series "
            "as it is now")
    assert f"{seg}: {note}" in err
    assert changed["notes"] == [f"prediction: {note}"]
    assert {k: v["dice"] for k, v in changed["labels"].items()} == {k: v["dice"] for k, v in record["labels"].items()}


def test_a_seg_finds_its_source_from_an_old_relative_sidecar_or_says_what_is_missing(tmp_path, monkeypatch):
    values = stored_values(SHAPE, seed=17)
    write_series(tmp_path / "study" / "series", values, slice_positions(SHAPE[2], 2.0), seed=1)
    volume = read_dicom_series(tmp_path / "study" / "series")
    (tmp_path / "study" / "out").mkdir()
    seg = tmp_path / "study" / "out" / "series_seg.dcm"
    write_dicom_seg(label_rule(volume.array), volume, seg, NAMES, "test-model")
    sidecar = {"input": "series", "labels": {str(k): v for k, v in NAMES.items()}}  # relative to study/, the run's
    monkeypatch.chdir(tmp_path)
    assert np.array_equal(read_seg_volume(seg, sidecar).array, label_rule(volume.array))
    with pytest.raises(InputError, match=r"series_seg.dcm: its source series gone \(recorded in its sidecar\) is not "
                                         r"found \(moved or renamed since the prediction was made\?\); the SEG is "
                                         r"scored on the source images it references: put the series back there, or "
                                         r"write the folder where it lies now as the sidecar's \"input\"$"):
        read_seg_volume(seg, {**sidecar, "input": "gone"})
    # the way out the message gives: the series moved, the sidecar's input set to where it lies now
    (tmp_path / "study" / "series").rename(tmp_path / "moved")
    assert np.array_equal(read_seg_volume(seg, {**sidecar, "input": str(tmp_path / "moved")}).array,
                          label_rule(volume.array))


def test_a_seg_prediction_whose_sidecar_records_a_converted_image_says_to_fix_the_sidecar(tmp_path, capsys):
    """A SEG prediction whose sidecar's "input" names a conversion of its series (its folder written there by hand,
    as the moved-series error invites) was told to segment the series' own folder "to score against this SEG": it is
    the sidecar's input that is to be the series' folder; exit 1, nothing written."""
    values = stored_values(SHAPE, seed=19)
    write_series(tmp_path / "series", values, slice_positions(SHAPE[2], 2.0), seed=1)
    volume = read_dicom_series(tmp_path / "series")
    labels = label_rule(volume.array)
    write_dicom_seg(labels, volume, tmp_path / "case_seg.dcm", NAMES, "test-model")
    nib.save(nib.Nifti1Image(volume.array, volume.affine), tmp_path / "series.nii.gz")
    nib.save(nib.Nifti1Image(labels, volume.affine), tmp_path / "ref.nii.gz")
    sidecar = {"input": str(tmp_path / "series.nii.gz"), "labels": {str(k): v for k, v in NAMES.items()}}
    (tmp_path / "case_seg.json").write_text(json.dumps(sidecar))
    capsys.readouterr()
    code = run_main(["evaluate", str(tmp_path / "case_seg.dcm"), str(tmp_path / "ref.nii.gz"), "-o",
                     str(tmp_path / "m.json")])
    assert code == 1 and not (tmp_path / "m.json").exists()
    assert capsys.readouterr().err.strip() == (
        f"medseg: error: {tmp_path / 'case_seg.dcm'}: its sidecar's \"input\", {tmp_path / 'series.nii.gz'}, is "
        "not a DICOM series: a DICOM SEG is placed frame by frame on the images of the series it segments (a "
        "conversion of it, as to NIfTI, no longer has them); write that series' folder as the sidecar's \"input\"")
    # the way out it gives
    (tmp_path / "case_seg.json").write_text(json.dumps({**sidecar, "input": str(tmp_path / "series")}))
    assert run_main(["evaluate", str(tmp_path / "case_seg.dcm"), str(tmp_path / "ref.nii.gz"), "-o",
                     str(tmp_path / "m.json")]) == 0
    assert {k: v["dice"] for k, v in json.loads((tmp_path / "m.json").read_text())["labels"].items()} == {
        "1": 1.0, "2": 1.0}


def test_the_cohort_table_names_the_series_each_row_segmented(tmp_path, tiny_package):
    """Two rows segmenting two series of one folder are told apart in cohort.tsv, not only on the HTML cards."""
    from medseg.report.build import build_report

    values = stored_values((32, 30, 5), seed=18) + 900
    write_series(tmp_path / "study", values, slice_positions(5, 3.0), series_number=3, series_uid="1.2.3.3", seed=1)
    write_series(tmp_path / "study", values, slice_positions(5, 3.0), series_number=4, series_uid="1.2.3.4", seed=2,
                 prefix="b")
    from medseg.cohort import InferOptions, infer_cases, read_samples

    sheet = tmp_path / "samples.tsv"
    sheet.write_text("case_id\timage\tseries\ns3\tstudy\t3\ns4\tstudy\t4\n")
    summary = infer_cases(read_samples(sheet), tmp_path / "results",
                          InferOptions(model=str(tiny_package.path), device="cpu"))
    assert [c.outcome for c in summary.cases] == ["ok", "ok"]
    outputs = build_report(tmp_path / "results", tmp_path / "results" / "report.html", max_overlays=0)
    rows = {row["case_id"]: (row["series"], row["series_uid"]) for row in csv_rows(outputs.table)}
    assert rows == {"s3": ("3", "1.2.3.3"), "s4": ("4", "1.2.3.4")}


def test_a_seg_is_placed_on_its_source_series_from_the_headers_without_decoding_pixels(tmp_path, monkeypatch,
                                                                                      capsys):
    """evaluate, with a DICOM SEG as the reference or the prediction, and the report's reading of a SEG reference
    place its frames on the source series by the series' headers alone: the series was read whole, as float32, only
    to place them (evaluate against a SEG of a 512×512×600 CT peaked at 2.17 GB, 1.50 GB now). No source image's
    pixels are decoded now, and the labels and scores are those placed on the series read whole."""
    from types import SimpleNamespace

    from medseg.report.checks import read_case_labels

    write_series(tmp_path / "series", stored_values(SHAPE, seed=4), slice_positions(SHAPE[2], 1.5, orientation=OBLIQUE),
                 orientation=OBLIQUE, pixel_spacing=(0.9, 0.7))
    volume = read_dicom_series(tmp_path / "series")
    labels = label_rule(volume.array)
    assert set(np.unique(labels)) == {0, 1, 2}
    write_dicom_seg(labels, volume, tmp_path / "ref.dcm", NAMES)
    prediction = labels.copy()
    prediction[:, :, 3] = 0  # a slice missed
    nib.save(nib.Nifti1Image(prediction, volume.affine), tmp_path / "case_seg.nii.gz")
    sidecar = {"input": str(tmp_path / "series"), "labels": {str(k): v for k, v in NAMES.items()},
               "input_sha256": volume.source_sha256}
    for name in ("case_seg.json", "ref.json"):  # ref.json: the SEG scored as the prediction
        (tmp_path / name).write_text(json.dumps(sidecar))
    decode = pydicom.Dataset.pixel_array

    def source_pixels(dataset):
        if str(dataset.get("Modality", "")) != "SEG":
            raise AssertionError(f"pixels of source image {dataset.get('SOPInstanceUID')} decoded")
        return decode.fget(dataset)

    monkeypatch.setattr(pydicom.Dataset, "pixel_array", property(source_pixels))
    expected = {}
    for value in (1, 2):
        ours, theirs = prediction == value, labels == value
        expected[str(value)] = 2 * int(np.sum(ours & theirs)) / int(np.sum(ours) + np.sum(theirs))
    assert expected["1"] < 1.0
    for pair in (("case_seg.nii.gz", "ref.dcm"), ("ref.dcm", "case_seg.nii.gz")):
        with pytest.raises(SystemExit) as exit_info:
            main(["evaluate", *(str(tmp_path / p) for p in pair), "--json"])
        assert exit_info.value.code == 0
        scores = json.loads(capsys.readouterr().out)["labels"]
        assert {k: v["dice"] for k, v in scores.items()} == pytest.approx(expected)
    placed = read_seg_volume(tmp_path / "ref.dcm", sidecar)
    assert np.array_equal(placed.array, labels) and np.array_equal(placed.affine, volume.affine)
    assert "source_note" not in placed.info
    case = SimpleNamespace(sidecar=sidecar, input_path=lambda: tmp_path / "series")
    array, affine = read_case_labels(case, tmp_path / "ref.dcm")
    assert np.array_equal(array, labels) and np.array_equal(affine, volume.affine)


def test_the_report_checks_a_seg_prediction_from_its_source_headers_and_reads_the_pixels_only_to_draw(
        tmp_path, monkeypatch, tiny_package):
    """The QA report's check of every case (border contact, grid against the sidecar) placed a DICOM SEG prediction
    on its source series read whole, voxels and all, then dropped them: only an overlay needs the image. A case
    left undrawn now decodes no pixel of its source, and is checked alike; one drawn decodes the files it draws."""
    from medseg.report.build import build_report

    values = stored_values((40, 36, 6), seed=21) + 900
    write_series(tmp_path / "case10", values, slice_positions(6, -3.0), pixel_spacing=(1.1, 1.2))
    with pytest.raises(SystemExit) as exit_info:
        main(["-q", "infer", str(tmp_path / "case10"), "-o", str(tmp_path / "seg"), "--device", "cpu",
              "--model", str(tiny_package.path), "--format", "dicom-seg"])
    assert exit_info.value.code == 0
    import medseg.io.dicom

    def no_volume(*args):
        raise AssertionError("the source series read whole")

    # drawn from the slices' files alone: the series is never allocated whole (it was read whole as float32)
    monkeypatch.setattr(medseg.io.dicom, "_volume_array", no_volume)
    drawn = build_report(tmp_path / "seg", tmp_path / "drawn" / "report.html", max_overlays=1)
    assert drawn.overlays == 1 and "image not shown" not in drawn.html.read_text()
    decode = pydicom.Dataset.pixel_array
    decoded = []

    def source_pixels(dataset):
        if str(dataset.get("Modality", "")) != "SEG":
            decoded.append(str(dataset.get("SOPInstanceUID")))
        return decode.fget(dataset)

    monkeypatch.setattr(pydicom.Dataset, "pixel_array", property(source_pixels))
    outputs = build_report(tmp_path / "seg", tmp_path / "report" / "report.html", max_overlays=0)
    assert decoded == [] and outputs.overlays == 0
    row, before = next(csv_rows(outputs.table)), next(csv_rows(drawn.table))
    assert row["case_id"] == "case10" and row["flags"] == before["flags"] and "geometry" not in row["flags"]
    assert "cannot read" not in outputs.html.read_text()


def test_a_folder_of_predictions_scores_its_dicom_segs_as_one_pair_does(tmp_path, capsys, caplog, tiny_package):
    """`evaluate PRED_DIR REF_DIR` takes medseg infer's <case>_seg.dcm, placed on its series by its sidecar, with the
    numbers one pair gives; a case with a NIfTI and a SEG prediction fails on its own, naming both."""
    values = stored_values((40, 36, 6), seed=16) + 900
    write_series(tmp_path / "case9", values, slice_positions(6, 3.0), pixel_spacing=(1.1, 1.2))
    pred = tmp_path / "pred"
    assert run_main(["-q", "infer", str(tmp_path / "case9"), "-o", str(pred), "--device", "cpu",
                     "--model", str(tiny_package.path), "--format", "dicom-seg"]) == 0
    predicted = read_seg_volume(pred / "case9_seg.dcm", json.loads((pred / "case9_seg.json").read_text()))
    reference = predicted.array.copy()
    reference[:, :, 3] = 0  # Dice below 1
    refs = tmp_path / "refs"
    refs.mkdir()
    for case in ("case9", "case10"):
        nib.save(nib.Nifti1Image(reference, predicted.affine), refs / f"{case}.nii.gz")
    shutil.copyfile(pred / "case9_seg.dcm", pred / "case10_seg.dcm")
    shutil.copyfile(refs / "case9.nii.gz", pred / "case10_seg.nii.gz")
    (pred / "case9").mkdir()  # the DICOM folder medseg infer without -o writes its SEG beside: no warning
    out = tmp_path / "scores"
    capsys.readouterr()
    with caplog.at_level("WARNING"):
        assert run_main(["evaluate", str(pred), str(refs), "-o", str(out)]) == 1  # case10 failed
    assert not [m for m in caplog.messages if "left out" in m]
    assert run_main(["evaluate", str(pred / "case9_seg.dcm"), str(refs / "case9.nii.gz"), "-o",
                     str(tmp_path / "single.json")]) == 0
    folder_record, single_record = (json.loads(p.read_text()) for p in (out / "case9_metrics.json",
                                                                         tmp_path / "single.json"))
    assert folder_record["labels"] == single_record["labels"]
    assert folder_record["prediction"] == single_record["prediction"] == str(pred / "case9_seg.dcm")
    assert 0 < folder_record["labels"]["1"]["dice"] < 1
    assert not (out / "case10_metrics.json").exists()
    failure = json.loads((out / "case10_failed.json").read_text())
    assert failure["stage"] == "evaluate" and failure["error_type"] == "ConflictingInputsError"
    assert failure["error"] == (f"{pred / 'case10_seg.dcm'}: case 'case10' has two predictions, case10_seg.nii.gz "
                                f"and case10_seg.dcm (a DICOM SEG); neither is scored: move the one not to score out "
                                f"of {pred}")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["cases"] == {**summary["cases"], "total": 2, "scored": 1, "failed": 1}
    row = next(row for row in csv_rows(out / "cohort.tsv") if row["case_id"] == "case9")
    assert row["status"] == "scored" and "geometry" not in row["flags"]
    page = (out / "report.html").read_text()  # drawn on its series, which the sidecar beside the SEG names
    assert "cannot read" not in page and "no overlay" not in page and "image not shown" not in page
