"""Pairing a folder of predictions with a folder of references (medseg.folder_scoring.pair_predictions): by the
names medseg train and infer use, unpaired files named, a reference without a prediction a missed case, no pair
at all one error; images beside their segmentations and DICOM images among the references left out and said;
.nii.bz2 and .nii.zst references."""

from __future__ import annotations

import json
import logging

import nibabel as nib
import numpy as np
import pytest
from conftest import run_cli
from folder_cases import (
    folder_pairs,  # noqa: F401  (the folders fixture its tests take)
    labels,
    run,
    save,
)

from medseg.errors import InputError, MedsegWarning
from medseg.folder_scoring import pair_predictions


def test_unpaired_files_are_listed_and_a_missed_reference_is_a_failed_row(folders, tmp_path, caplog):
    pred, ref = folders
    (ref / "c.nii.gz").unlink()
    save(labels(0)[0], pred / "extra_seg.nii.gz")  # no reference: named, not scored
    save(labels(0)[1], ref / "d.nii.gz")  # no prediction: a missed case
    out = tmp_path / "scores"
    with caplog.at_level(logging.WARNING):
        assert run(["evaluate", str(pred), str(ref), "-o", str(out)]) == 1  # a missed case fails the run
    assert f"{pred}: 2 predictions without a reference in {ref}, not scored: c_seg.nii.gz, extra_seg.nii.gz" \
        in caplog.messages
    assert any(message.startswith(f"{ref}: 1 reference without a prediction") and message.endswith("d.nii.gz")
               for message in caplog.messages)
    assert not (out / "extra_metrics.json").exists() and not (out / "c_metrics.json").exists()
    failure = json.loads((out / "d_failed.json").read_text())
    assert failure["stage"] == "not_run" and failure["error_type"] == "MissingPrediction"
    assert failure["error"].startswith(f"{ref / 'd.nii.gz'}: no prediction for this reference in {pred}")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["cases"] == {**summary["cases"], "total": 3, "scored": 2, "failed": 1}


def test_a_link_that_leads_nowhere_fails_its_case_naming_the_link(folders, tmp_path, caplog):
    """A prediction or reference that is a link whose target moved (or a loop of links) was left out as "not a
    .nii/.nii.gz/… file" though its name ends in .nii.gz, its case "no prediction for this reference, a prediction is
    named a_seg.nii.gz" or a prediction "without a reference". It is its case's now, which fails naming the link."""
    pred, ref = folders
    (pred / "a_seg.nii.gz").unlink()
    (pred / "a_seg.nii.gz").symlink_to(tmp_path / "moved" / "a_seg.nii.gz")
    (ref / "b.nii.gz").unlink()
    (ref / "b.nii.gz").symlink_to("b.nii.gz")  # a loop
    out = tmp_path / "scores"
    with caplog.at_level(logging.WARNING):
        assert run(["evaluate", str(pred), str(ref), "-o", str(out)]) == 1
    assert not [m for m in caplog.messages if "left out" in m or "without a" in m]
    nowhere = "that leads nowhere (its target moved or deleted, or a loop of links)"
    for case, link, target in (("a", pred / "a_seg.nii.gz", tmp_path / "moved" / "a_seg.nii.gz"),
                               ("b", ref / "b.nii.gz", "b.nii.gz")):
        failure = json.loads((out / f"{case}_failed.json").read_text())
        assert (failure["stage"], failure["error"]) == ("evaluate", f"{link}: a link to {target} {nowhere}")
    assert sorted(p.name for p in out.glob("*.json")) == ["a_failed.json", "b_failed.json", "c_failed.json",
                                                          "summary.json"]  # c: its reference is 5 mm off


@pytest.mark.parametrize(("prediction", "reference"), [
    ("case.nii.gz", "case.nii.gz"),  # nnU-Net: the same name both sides
    ("case_seg.nii.gz", "case.nii.gz"),  # medseg infer's output
    ("case_0000_seg.nii.gz", "case.nii.gz"),  # medseg infer on imagesTs/case_0000.nii.gz
    ("case_seg.nii.gz", "case_gt.nii.gz"),  # a label suffix medseg train takes
    ("case.nii.gz", "case_seg.nii.gz"),
    ("case_seg.nii.gz", "case_seg.nii.gz"),  # medseg infer's output against labels named alike: case, not case_seg
])
def test_pairs_by_the_names_train_and_infer_use(tmp_path, prediction, reference):
    save(labels(0)[0], tmp_path / "p" / prediction)
    save(labels(0)[1], tmp_path / "r" / reference)
    (tmp_path / "p" / "dataset.json").write_text("{}")  # nnU-Net's, beside its predictions: not a case
    found = pair_predictions(tmp_path / "p", tmp_path / "r")
    assert found.pairs == [("case", tmp_path / "p" / prediction, tmp_path / "r" / reference)]
    assert found.unreferenced == [] and found.missed == []


def test_no_pair_at_all_is_one_error_with_an_example_of_each(tmp_path):
    save(labels(0)[0], tmp_path / "p" / "scan1.nii.gz")
    save(labels(0)[1], tmp_path / "r" / "case1.nii.gz")
    with pytest.raises(InputError, match=r"no prediction has a reference of the same name .* \(1 prediction, 1 "
                                         r"reference; e.g. prediction 'scan1.nii.gz', reference 'case1.nii.gz'"):
        pair_predictions(tmp_path / "p", tmp_path / "r")


def test_inputs_beside_their_segmentations_are_left_out_and_said(tmp_path, caplog):
    """`medseg infer imagesTs/*.nii.gz` without -o writes case_0000_seg.nii.gz beside case_0000.nii.gz."""
    save(labels(0)[0], tmp_path / "imagesTs" / "case_0000_seg.nii.gz")
    save(np.full((20, 20, 8), 7, np.int16), tmp_path / "imagesTs" / "case_0000.nii.gz")
    save(labels(0)[1], tmp_path / "labelsTs" / "case.nii.gz")
    with caplog.at_level(logging.WARNING), pytest.warns(MedsegWarning, match="left out 1 image beside"):
        found = pair_predictions(tmp_path / "imagesTs", tmp_path / "labelsTs")
    assert found.pairs == [("case", tmp_path / "imagesTs" / "case_0000_seg.nii.gz",
                            tmp_path / "labelsTs" / "case.nii.gz")]
    assert caplog.messages == [f"{tmp_path / 'imagesTs'}: left out 1 image beside its segmentation "
                               "(<name>_seg.nii.gz, as medseg infer writes it): case_0000.nii.gz"]


def test_dicom_images_without_the_part_10_header_in_the_references_folder_are_no_references(folders, caplog):
    """A .dcm reference is taken for a DICOM SEG unless its header names another modality; the header was read
    without force, so CT images written without the 128-byte preamble and DICM marker (older exporters, some PACS
    dumps) could not be read, were taken for SEGs, and each became a missed case: a failure record each, exit 1."""
    import pydicom
    from pydicom.dataset import Dataset
    from pydicom.filebase import DicomFileLike
    from pydicom.filewriter import write_dataset

    pred, ref = folders
    for number in range(2):
        image = Dataset()
        image.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"  # CT Image Storage
        image.SOPInstanceUID = f"1.2.3.{number}"
        image.Modality = "CT"
        image.PatientName = "phantom"
        with open(ref / f"IM{number}.dcm", "wb") as handle:  # the data set alone: no preamble, no DICM, no meta
            file_like = DicomFileLike(handle)
            file_like.is_little_endian, file_like.is_implicit_VR = True, True
            write_dataset(file_like, image)
    with pytest.raises(pydicom.errors.InvalidDicomError):  # as such files are
        pydicom.dcmread(ref / "IM0.dcm", stop_before_pixels=True)
    with caplog.at_level(logging.WARNING, logger="medseg"), pytest.warns(MedsegWarning, match="left out 2 entries"):
        found = pair_predictions(pred, ref)
    assert [case for case, _, _ in found.pairs] == ["a", "b", "c"]
    assert found.missed == [] and found.unreferenced == []
    assert "left out 2 entries that are not .nii/.nii.gz/.nii.bz2/.nii.zst/" \
        ".nrrd/.nhdr/.mha/.mhd or .dcm (DICOM SEG) files " \
        "(subfolders are not searched): IM0.dcm, IM1.dcm" in caplog.text


def test_bz2_references_are_paired_and_scored_with_or_without_zstd(tmp_path, capsys):
    """.nii.bz2 files are cases of a folder whatever this Python has (the test of .nii.zst folders, which holds a
    .nii.bz2 case too, skips where Python has no zstd); a .nii.zst reference where it has none fails its own case, in
    one line, and the others are scored."""
    from medseg.io.compression import zstd_available

    pred, ref = tmp_path / "pred", tmp_path / "ref"
    pred.mkdir()
    ref.mkdir()
    labels = np.zeros((16, 16, 6), np.uint8)
    labels[4:9, 4:9, 2:4] = 1
    for case in ("a", "b"):
        nib.save(nib.Nifti1Image(labels, np.eye(4)), pred / f"{case}_seg.nii.gz")
    nib.save(nib.Nifti1Image(labels, np.eye(4)), ref / "a.nii.bz2")
    (ref / "b.nii.zst").write_bytes(b"\x28\xb5\x2f\xfd")  # named so; read only where Python has zstd
    assert [(case, r.name) for case, _, r in pair_predictions(pred, ref).pairs] == [("a", "a.nii.bz2"),
                                                                                   ("b", "b.nii.zst")]
    code, _, _ = run_cli(["evaluate", str(pred), str(ref), "-o", str(tmp_path / "out")], capsys)
    assert code == 1  # a case failed
    assert json.loads((tmp_path / "out" / "a_metrics.json").read_text())["labels"]["1"]["dice"] == 1.0
    failed = json.loads((tmp_path / "out" / "b_failed.json").read_text())
    assert failed["stage"] == "evaluate" and "\n" not in failed["error"]
    if not zstd_available():
        assert failed["error"].startswith(f"{ref / 'b.nii.zst'}: zstd-compressed (.zst), which this Python cannot "
                                          "read (it has no zstd")
