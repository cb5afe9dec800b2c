"""A reference named for another case than its image or prediction (medseg.case_numbers): warned about, noted in
the metrics, scored all the same."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import run_cli

from medseg.case_numbers import other_case_note
from medseg.errors import MedsegWarning
from medseg.scoring import score_prediction
from medseg.synthetic import make_phantom

run = run_cli  # medseg ARGS in this process: (exit code, stdout, stderr)


@pytest.mark.parametrize(("image", "reference", "note"), [
    ("hippocampus_004.nii.gz", "hippocampus_006.nii.gz", "(006 in its name, 004 in the image's;"),
    ("sub-01_T1w.nii.gz", "sub-02_T1w_label.nii.gz", "(02 in its name, 01 in the image's;"),
    ("case3.nii", "case12.seg.nrrd", "(12 in its name, 3 in the image's;"),
    # the same case, however named
    ("hippocampus_004.nii.gz", "hippocampus_4.nii.gz", None),
    ("case001_0000.nii.gz", "case001.nii.gz", None),
    ("my_scan.nii.gz", "my_label.nii.gz", None),
    ("scan_v2.nii.gz", "label.nii.gz", None),
    ("T1_case3.nii.gz", "case3_label.nii.gz", None),
    # numbers that say what a file is, not whose: each was noted as another case's
    ("sub-01_ses-2_T2w.nii.gz", "sub-01_ses-2_run-1_desc-hippo_mask.nii.gz", None),
    ("sub-01_ses-2_T1w.nii.gz", "sub-01_ses-2_echo-2_desc-hippo_mask.nii.gz", None),
    ("sub-01_T1w.nii.gz", "sub-01_space-MNI152NLin2009cAsym_res-2_desc-hippo_mask.nii.gz", None),
    ("case_004_0000.nii.gz", "case_004_v2.nii.gz", None),
    ("case_004_0000.nii.gz", "case_004_rater1.nii.gz", None),
    ("patient_7_t1.nii.gz", "patient_7_seg_v3.nii.gz", None),
    ("hippocampus_004.nii.gz", "label_v2.nii.gz", None),
    ("hippocampus_004.nii", "Segmentation-label_1.nii", None),
    ("ct_003.nii.gz", "rib_left_12.nii.gz", None),
    # ... and the other case still noted through them
    ("sub-01_ses-2_T1w.nii.gz", "sub-01_ses-3_echo-2_desc-hippo_mask.nii.gz", "(3 in its name, 2 in the image's;"),
    ("sub-01_space-MNI152NLin2009cAsym_T1w.nii.gz", "sub-03_space-MNI152NLin2009cAsym_desc-hippo_dseg.nii.gz",
     "(03 in its name, 01 in the image's;"),
    ("sub-01_ses-2_run-1_T1w.nii.gz", "sub-01_ses-2_run-2_desc-hippo_mask.nii.gz", "(2 in its name, 1 in the image's;"),
    ("case_004_0000.nii.gz", "case_006_v2.nii.gz", "(006 in its name, 004, 0000 in the image's;"),
    ("img0001.nii.gz", "label0002.nii.gz", "(0002 in its name, 0001 in the image's;"),
    ("2_T2_FLAIR_20230101120000_3.nii.gz", "5_T2_FLAIR_20230101121500_5_label.nii.gz",
     "(5, 20230101121500, 5 in its name, 2, 20230101120000, 3 in the image's;"),
])
def test_names_whose_numbers_each_hold_one_the_other_lacks_are_noted(image, reference, note):
    found = other_case_note(Path(image), Path(reference))
    if note is None:
        assert found is None
    else:
        assert found == (f"named for another case than {image}? {note} a reference given out of order is scored all "
                         "the same)")


def test_a_dicom_series_or_seg_is_paired_by_uid_not_by_name(tmp_path):
    series = tmp_path / "3_t1_sag"
    series.mkdir()
    assert other_case_note(series, tmp_path / "1.2.840.113619.2.55.dcm") is None
    assert other_case_note(tmp_path / "case3.nii.gz", tmp_path / "1.2.840.5.dcm") is None


def _label_pair(folder: Path, image_name: str, reference_name: str) -> tuple[Path, Path]:
    phantom = make_phantom((24, 24, 6), seed=3)
    affine = np.eye(4)
    image, reference = folder / image_name, folder / reference_name
    nib.save(nib.Nifti1Image(phantom.labels.astype(np.uint8), affine), str(image))
    nib.save(nib.Nifti1Image(phantom.labels.astype(np.uint8), affine), str(reference))
    return image, reference


def test_evaluate_warns_and_notes_a_reference_of_another_case(tmp_path, capsys, caplog):
    prediction, reference = _label_pair(tmp_path, "hippocampus_004_seg.nii.gz", "hippocampus_006.nii.gz")
    with caplog.at_level(logging.WARNING, logger="medseg"), pytest.warns(MedsegWarning, match="named for another"):
        metrics = score_prediction(prediction, reference, case_id="hippocampus_004")
    note = ("named for another case than hippocampus_004_seg.nii.gz? (006 in its name, 004 in the prediction's; a "
            "reference given out of order is scored all the same)")
    assert metrics["notes"] == [f"reference: {note}"]
    assert metrics["labels"]["1"]["dice"] == 1.0  # scored all the same
    assert [r.getMessage() for r in caplog.records] == [f"{reference}, the reference given for {prediction}: {note}"]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="medseg"):
        code, _, err = run(["evaluate", str(prediction), str(reference)], capsys)
    assert code == 0, err
    assert [r.getMessage() for r in caplog.records] == [f"{reference}, the reference given for {prediction}: {note}"]
    # the right case: no warning, no note
    right = tmp_path / "hippocampus_004.nii.gz"
    right.write_bytes(reference.read_bytes())
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="medseg"):
        assert "notes" not in score_prediction(prediction, right, case_id="hippocampus_004")
    assert caplog.records == []


def test_infer_warns_and_notes_a_reference_of_another_case(tmp_path, make_package, capsys, caplog):
    image, reference = _label_pair(tmp_path, "case_004.nii.gz", "case_006_label.nii.gz")
    with caplog.at_level(logging.WARNING, logger="medseg"):
        code, _, err = run(["infer", str(image), "--model", str(make_package()), "-o", str(tmp_path / "out"),
                            "--reference", str(reference)], capsys)
    assert code == 0, err
    note = ("named for another case than case_004.nii.gz? (006 in its name, 004 in the image's; a reference given "
            "out of order is scored all the same)")
    assert f"{reference}, the reference given for {image}: {note}" in [r.getMessage() for r in caplog.records]
    metrics = json.loads((tmp_path / "out" / "case_004_metrics.json").read_text())
    assert metrics["notes"] == [f"reference: {note}"]


def test_a_prediction_named_after_its_case_id_is_compared_by_the_image_it_was_made_from(tmp_path, caplog):
    """The cohort names a prediction after the sheet's case id (results/cases/s1/s1_seg.nii.gz): its numbers say
    nothing of the reference's (patient_0017_label.nii.gz), and every case of such a sheet was noted as another's.
    ``named_for`` (the sheet's image) is compared instead."""
    image, reference = _label_pair(tmp_path, "patient_0017.nii.gz", "patient_0017_label.nii.gz")
    prediction = tmp_path / "s1_seg.nii.gz"
    prediction.write_bytes(image.read_bytes())
    with caplog.at_level(logging.WARNING, logger="medseg"):
        metrics = score_prediction(prediction, reference, case_id="s1", named_for=image)
    assert "notes" not in metrics and caplog.records == []
    other = tmp_path / "patient_0018_label.nii.gz"
    other.write_bytes(reference.read_bytes())
    with caplog.at_level(logging.WARNING, logger="medseg"), pytest.warns(MedsegWarning, match="named for another"):
        metrics = score_prediction(prediction, other, case_id="s1", named_for=image)
    assert metrics["notes"] == ["reference: named for another case than patient_0017.nii.gz? (0018 in its name, "
                                "0017 in the image's; a reference given out of order is scored all the same)"]
