"""DICOM SEG references in a folder of references (medseg.folder_scoring): stored under their UIDs and paired with
the prediction whose sidecar records the series each segments; not fetched from their dataset; a second reference
of a case; a SEG prediction without its sidecar; no pair at all."""

from __future__ import annotations

import json
import re
import shutil

import nibabel as nib
import numpy as np
import pydicom
import pytest
from dicom_factory import slice_positions, stored_values, write_series
from seg_factory import label_rule, run_main

from medseg.errors import InputError
from medseg.folder_scoring import pair_predictions
from medseg.io.dicom import read_dicom_series
from medseg.io.seg_writing import write_dicom_seg


def _case_from_series(tmp_path, case: str, seed: int, pred):
    """A series, the prediction medseg infer would write of it (on the series' grid, with the sidecar naming the
    series and the labels) and a reference differing from it on one slice."""
    values = stored_values((40, 36, 6), seed=seed) + 900
    write_series(tmp_path / case, values, slice_positions(6, 3.0), pixel_spacing=(1.1, 1.2))
    volume = read_dicom_series(tmp_path / case)
    predicted = label_rule(np.asarray(volume.array)).astype(np.uint8)
    pred.mkdir(exist_ok=True)
    nib.save(nib.Nifti1Image(predicted, volume.affine), pred / f"{case}_seg.nii.gz")
    (pred / f"{case}_seg.json").write_text(json.dumps({
        "schema": "medseg-segmentation/1", "case_id": case, "input": str(tmp_path / case),
        "input_info": {"format": "dicom", "series_uid": volume.dicom.series_uid},
        "segmentation": f"{case}_seg.nii.gz", "labels": {"0": "background", "1": "odd", "2": "corner"}}))
    reference = predicted.copy()
    reference[:, :, 2] = 0
    return volume, reference


# the references folder's non-DICOM entry is left out with a MedsegWarning, which this test does not look at
@pytest.mark.filterwarnings("ignore:.* left out 1 entry that is not :medseg.errors.MedsegWarning")
def test_seg_references_named_by_their_uid_are_paired_by_the_series_they_segment(tmp_path, caplog):
    """Archives store a SEG under its SOP Instance UID, without .dcm: one pair scored it (known by its DICM marker),
    a folder of references left it out ("no .nii/.nii.gz … or .dcm (DICOM SEG) file in it"). Now such a file is
    known by content (Part 10, SEG SOP Class) and paired, as one pair is scored, with the prediction whose sidecar
    records the series it segments: the records of the pair alone. One of a series no prediction was made from is a
    missed case saying so; a CT image named by its UID is no reference."""
    pred, refs = tmp_path / "pred", tmp_path / "refs"
    refs.mkdir()
    uids = {}
    for case, seed in (("case1", 16), ("case2", 17), ("case3", 18)):
        volume, reference = _case_from_series(tmp_path, case, seed, pred)
        write_dicom_seg(reference, volume, refs / "x.dcm", {0: "background", 1: "ODD", 2: "corner"})
        uids[case] = str(pydicom.dcmread(refs / "x.dcm", stop_before_pixels=True).SOPInstanceUID)
        (refs / "x.dcm").rename(refs / uids[case])
    series3 = read_dicom_series(tmp_path / "case3").dicom.series_uid
    for name in ("case3_seg.nii.gz", "case3_seg.json"):
        (pred / name).unlink()  # case3 not segmented: its SEG is a missed case
    image = next((tmp_path / "case1").iterdir())
    shutil.copy(image, refs / str(pydicom.dcmread(image, stop_before_pixels=True).SOPInstanceUID))  # no reference
    out = tmp_path / "scores"
    with caplog.at_level("WARNING"):
        assert run_main(["evaluate", str(pred), str(refs), "-o", str(out)]) == 1  # the missed case
    assert sorted(p.name for p in out.glob("*.json") if p.name != "summary.json") == [
        f"{uids['case3']}_failed.json", "case1_metrics.json", "case2_metrics.json"]
    for case in ("case1", "case2"):
        assert run_main(["-q", "evaluate", str(pred / f"{case}_seg.nii.gz"), str(refs / uids[case]), "-o",
                         str(tmp_path / f"{case}.json")]) == 0
        single, folder = (json.loads(p.read_text()) for p in (tmp_path / f"{case}.json", out / f"{case}_metrics.json"))
        assert folder["case_id"] == case
        assert folder["labels"] == single["labels"] and folder["reference_sha256"] == single["reference_sha256"]
        assert 0 < folder["labels"]["1"]["dice"] < 1
    failure = json.loads((out / f"{uids['case3']}_failed.json").read_text())
    assert failure["stage"] == "not_run" and failure["error"] == (
        f"{refs / uids['case3']}: no prediction for this reference in {pred} (a missed case; a prediction is one made "
        f"from series {series3}, the series this DICOM SEG segments, as its sidecar records it)")
    assert "(subfolders are not searched): " + image_uid(image) in caplog.text
    # two predictions made from one series: which one the SEG scores is not for medseg to guess
    shutil.copy(pred / "case1_seg.nii.gz", pred / "again_seg.nii.gz")
    shutil.copy(pred / "case1_seg.json", pred / "again_seg.json")
    with pytest.raises(InputError, match=re.escape(
            f"{refs / uids['case1']}: a DICOM SEG of series {read_dicom_series(tmp_path / 'case1').dicom.series_uid}, "
            "from which 2 predictions were made (again_seg.nii.gz, case1_seg.nii.gz, as their sidecars record); keep "
            "one of them, or name the SEG after its case")):
        pair_predictions(pred, refs)


def test_a_seg_by_uid_of_a_series_of_another_study_is_paired_by_that_series(tmp_path):
    """A SEG lists the series of its own study in ReferencedSeriesSequence and those of other studies in
    StudiesContainingOtherReferencedInstancesSequence, which pairing by series did not read (the check that a SEG
    segments its series reads both): a SEG stored under its UID whose series is of another study was a missed case,
    its prediction without a reference. It is paired now, and scored as the pair alone; a second such SEG of that
    series is that case's second reference, refused."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    pred, refs = tmp_path / "pred", tmp_path / "refs"
    refs.mkdir()
    volume, reference = _case_from_series(tmp_path, "case1", 16, pred)
    write_dicom_seg(reference, volume, refs / "x.dcm", {0: "background", 1: "odd", 2: "corner"})
    dataset = pydicom.dcmread(refs / "x.dcm")
    study = Dataset()
    study.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.300"  # the series' study, not the SEG's
    study.ReferencedSeriesSequence = dataset.ReferencedSeriesSequence
    dataset.StudiesContainingOtherReferencedInstancesSequence = Sequence([study])
    del dataset.ReferencedSeriesSequence
    uid = str(dataset.SOPInstanceUID)
    dataset.save_as(refs / uid)
    (refs / "x.dcm").unlink()
    out = tmp_path / "scores"
    assert run_main(["-q", "evaluate", str(pred), str(refs), "-o", str(out)]) == 0
    assert sorted(p.name for p in out.glob("*.json") if p.name != "summary.json") == ["case1_metrics.json"]
    assert run_main(["-q", "evaluate", str(pred / "case1_seg.nii.gz"), str(refs / uid), "-o",
                     str(tmp_path / "one.json")]) == 0
    single, folder = (json.loads(p.read_text()) for p in (tmp_path / "one.json", out / "case1_metrics.json"))
    assert folder["labels"] == single["labels"] and 0 < folder["labels"]["1"]["dice"] < 1
    shutil.copy(refs / uid, refs / "1.2.826.0.1.3680043.8.498.301")
    with pytest.raises(InputError) as caught:
        pair_predictions(pred, refs)
    assert str(caught.value) == (
        f"{refs / '1.2.826.0.1.3680043.8.498.301'}: case 'case1' has two references in {refs} ({uid} and "
        f"1.2.826.0.1.3680043.8.498.301, a DICOM SEG of series {volume.dicom.series_uid}, which case1_seg.nii.gz was "
        "made from, as its sidecar records); keep one of them")


def test_a_seg_reference_of_a_dataset_not_fetched_fails_its_case_saying_how_to_fetch_it(tmp_path, caplog):
    """A SEG reference stored under its UID in a DataLad / git-annex dataset and not fetched (a link that leads
    nowhere) was left out as "not a … file", its prediction "without a reference", the case in no figure; one named
    .dcm was a missed case ("no prediction for this reference"). Either now fails, naming the file and how to fetch
    it; the reference that is here is scored."""
    pred, refs = tmp_path / "pred", tmp_path / "ds" / "refs"
    refs.mkdir(parents=True)
    volume, reference = _case_from_series(tmp_path, "case1", 16, pred)
    write_dicom_seg(reference, volume, refs / "x.dcm", {0: "background", 1: "odd", 2: "corner"})
    (refs / "x.dcm").rename(refs / image_uid(refs / "x.dcm"))
    _case_from_series(tmp_path, "case2", 17, pred)
    dropped = "1.2.826.0.1.3680043.10.511.3.1234"
    key = "SHA256E-s100--" + "0" * 64
    for name in (dropped, "case3.dcm"):  # git-annex links whose content is not here
        (refs / name).symlink_to(f"../.git/annex/objects/Xk/Mv/{key}/{key}")
    out = tmp_path / "scores"
    with caplog.at_level("WARNING"):
        assert run_main(["-q", "evaluate", str(pred), str(refs), "-o", str(out)]) == 1
    assert sorted(p.name for p in out.glob("*.json") if p.name != "summary.json") == [
        f"{dropped}_failed.json", "case1_metrics.json", "case3_failed.json"]
    assert "left out" not in caplog.text
    for name, case in ((dropped, dropped), ("case3.dcm", "case3")):
        failure = json.loads((out / f"{case}_failed.json").read_text())
        assert failure["stage"] == "evaluate" and failure["error_type"] == "ImageReadError"
        assert failure["error"] == (
            f"{refs / name}: a git-annex link whose content is not present here (not fetched, or dropped): fetch it "
            f"with datalad get {refs / name} (or git annex get); a DICOM SEG reference whose name meets no prediction "
            f"in {pred} is paired with the prediction made from the series it segments, which its header says")


def test_no_pair_with_seg_references_says_that_they_are_paired_by_series_too(tmp_path):
    """Predictions without sidecars (another tool's) and SEG references named by their UID: the error said only how
    names pair; it now says that a SEG is paired by the series a prediction's sidecar records, and how many have
    none."""
    pred, refs = tmp_path / "pred", tmp_path / "refs"
    refs.mkdir()
    volume, reference = _case_from_series(tmp_path, "case1", 16, pred)
    write_dicom_seg(reference, volume, refs / "x.dcm", {0: "background", 1: "odd", 2: "corner"})
    uid = image_uid(refs / "x.dcm")
    (refs / "x.dcm").rename(refs / uid)
    (pred / "case1_seg.json").unlink()
    with pytest.raises(InputError) as caught:
        pair_predictions(pred, refs)
    assert str(caught.value) == (
        f"{pred}: no prediction has a reference of the same name in {refs} (1 prediction, 1 reference; e.g. "
        f"prediction 'case1_seg.nii.gz', reference '{uid}'; a prediction may add _seg to the reference's name, a "
        "reference _label, _labels, _seg, _mask, _gt; a DICOM SEG reference is also paired with the prediction whose "
        "sidecar records the series it segments, and 1 of the predictions has no sidecar that records a DICOM series "
        "(made by another tool, or from a NIfTI image))")


def _folders_refused(pred, refs, expected: str, tmp_path, capsys) -> None:
    """Pairing ``pred`` with ``refs`` is refused with ``expected``, and so is ``medseg evaluate PRED REFS``: exit 1, the
    line on stderr, no output folder."""
    with pytest.raises(InputError) as caught:
        pair_predictions(pred, refs)
    assert str(caught.value) == expected
    out = tmp_path / "scores"
    assert run_main(["-q", "evaluate", str(pred), str(refs), "-o", str(out)]) == 1
    assert not out.exists() and capsys.readouterr().err.strip() == f"medseg: error: {expected}"


def test_a_seg_by_uid_of_the_series_of_a_case_that_has_its_reference_is_its_second_reference(tmp_path, capsys):
    """A SEG stored under its UID beside case1.dcm, both of the series case1 was made from, was a missed case ("no
    prediction for this reference … a prediction is one made from series …", while one was): it was only matched
    against predictions without a reference, and the check for two references never ran. It is now, as any two
    references of one case are, one error before anything is scored; so is one beside a NIfTI reference."""
    pred, refs = tmp_path / "pred", tmp_path / "refs"
    refs.mkdir()
    volume, reference = _case_from_series(tmp_path, "case1", 16, pred)
    write_dicom_seg(reference, volume, refs / "case1.dcm", {0: "background", 1: "odd", 2: "corner"})
    write_dicom_seg(reference, volume, refs / "x.dcm", {0: "background", 1: "odd", 2: "corner"})
    uid = image_uid(refs / "x.dcm")
    (refs / "x.dcm").rename(refs / uid)
    _case_from_series(tmp_path, "case2", 17, pred)
    shutil.copy(pred / "case2_seg.nii.gz", refs / "case2.nii.gz")
    series = volume.dicom.series_uid
    expected = (f"{refs / uid}: case 'case1' has two references in {refs} (case1.dcm and {uid}, a DICOM SEG of series "
                f"{series}, which case1_seg.nii.gz was made from, as its sidecar records); keep one of them")
    _folders_refused(pred, refs, expected, tmp_path, capsys)
    (refs / "case1.dcm").unlink()
    shutil.copy(pred / "case1_seg.nii.gz", refs / "case1.nii.gz")  # a NIfTI reference of the case: the same
    with pytest.raises(InputError) as caught:
        pair_predictions(pred, refs)
    assert str(caught.value) == expected.replace("(case1.dcm and", "(case1.nii.gz and")


def test_a_seg_prediction_without_its_sidecar_against_a_seg_is_not_told_to_take_a_nifti_reference(tmp_path):
    """A prediction written as a DICOM SEG (case_seg.dcm) without its sidecar, against a SEG reference, was told to
    "put the sidecar back beside it, or give the case a label image (NIfTI) as its reference": the second fails too,
    as the prediction itself is placed on the series the sidecar names. Only the sidecar is named as the fix."""
    pred, refs = tmp_path / "pred", tmp_path / "refs"
    refs.mkdir()
    volume, reference = _case_from_series(tmp_path, "case1", 16, pred)
    names = {0: "background", 1: "odd", 2: "corner"}
    write_dicom_seg(reference, volume, refs / "case1.dcm", names)
    predicted = np.asarray(nib.load(pred / "case1_seg.nii.gz").dataobj)
    for name in ("case1_seg.nii.gz", "case1_seg.json"):
        (pred / name).unlink()
    write_dicom_seg(predicted, volume, pred / "case1_seg.dcm", names)
    _case_from_series(tmp_path, "case2", 17, pred)
    shutil.copy(pred / "case2_seg.nii.gz", refs / "case2.nii.gz")
    out = tmp_path / "scores"
    assert run_main(["-q", "evaluate", str(pred), str(refs), "-o", str(out)]) == 1
    assert sorted(p.name for p in out.glob("case*.json")) == ["case1_failed.json", "case2_metrics.json"]
    failure = json.loads((out / "case1_failed.json").read_text())
    assert failure["stage"] == "evaluate" and failure["error"] == (
        f"{pred / 'case1_seg.dcm'}: case 'case1' cannot be scored: it and its reference case1.dcm are DICOM SEGs, "
        "placed on the DICOM series the prediction was made from, and no sidecar beside the prediction "
        "(case1_seg.json, which medseg infer writes) names that series; put the sidecar back beside it")


def test_no_pair_with_seg_references_not_fetched_says_that_their_content_is_not_here(tmp_path, capsys):
    """A dataset whose SEG references, stored under their UIDs, were none of them fetched (datalad get not run): each
    such SEG fails its own case where another pairs, but with none here nothing paired, and the one error gave only
    the naming rules, not a word of the content that was missing. It now names them and how to fetch them."""
    pred, refs = tmp_path / "pred", tmp_path / "ds" / "refs"
    refs.mkdir(parents=True)
    _case_from_series(tmp_path, "case1", 16, pred)
    _case_from_series(tmp_path, "case2", 17, pred)
    key = "SHA256E-s100--" + "0" * 64
    uids = ["1.2.826.0.1.3680043.10.511.3.1111", "1.2.826.0.1.3680043.10.511.3.2222"]
    for uid in uids:  # git-annex links whose content is not here
        (refs / uid).symlink_to(f"../.git/annex/objects/Xk/Mv/{key}/{key}")
    expected = (
        f"{pred}: no prediction has a reference of the same name in {refs} (2 predictions, 2 references; e.g. "
        f"prediction 'case1_seg.nii.gz', reference '{uids[0]}'; a prediction may add _seg to the reference's name, a "
        "reference _label, _labels, _seg, _mask, _gt; a DICOM SEG reference is also paired with the prediction whose "
        "sidecar records the series it segments, which its header names); 2 of the references are git-annex links "
        f"whose content is not present here ({uids[0]}, {uids[1]}): fetch them with datalad get {refs} (or git annex "
        "get)")
    _folders_refused(pred, refs, expected, tmp_path, capsys)


def image_uid(path) -> str:
    return str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)
