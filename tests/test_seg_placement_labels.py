"""A DICOM SEG reference's segments named and paired on the grid of an image converted from its series: by a
dataset.json's label names (not by segment number), segments sharing a label or a name, a folder of SEG references,
and the report's overlay of a SEG reference paired by name (the series and its SEG made by
``seg_placement_cases.py``)."""
from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from seg_placement_cases import (
    SHAPE,
    _foreign_seg,
    _main,
    seg_case,  # noqa: F401  (the case fixture its tests take)
)

from medseg.io.seg_writing import write_dicom_seg


def test_a_seg_reference_names_the_labels_a_dataset_json_leaves_unnamed(case, tmp_path, capsys, caplog):
    """A prediction without a sidecar beside a dataset.json that names label 1 alone: label 1 takes the dataset.json's
    name (the SEG's segment 1, 'odd', is that name regardless of case), label 2 the SEG's SegmentLabel (it was
    label_2), and the warning says so."""
    volume, expected, seg = case
    (tmp_path / "pred").mkdir()
    nib.save(nib.Nifti1Image(expected, volume.affine), tmp_path / "pred" / "case.nii.gz")
    (tmp_path / "pred" / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "Odd": 1}}))
    code, out, err = _main(["evaluate", str(tmp_path / "pred" / "case.nii.gz"), str(seg), "--json"], capsys)
    assert code == 0, err
    labels = json.loads(out)["labels"]
    assert {k: (v["name"], v["dice"]) for k, v in labels.items()} == {"1": ("Odd", 1.0), "2": ("corner", 1.0)}
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        f"{tmp_path / 'pred' / 'case.nii.gz'}, {seg}: label values [2] are not among the labels the dataset.json "
        "names (1 Odd); scored under the reference's segment labels (2 corner)"]


def test_segments_sharing_a_label_are_each_their_own_number_where_nothing_names_the_labels(case, tmp_path, capsys,
                                                                                           caplog):
    """Two lesions drawn as two segments both labelled 'Lesion', scored without a model or sidecar: they were matched
    by name to one of them (both read as label 2, label 1 warned of as 'no segment … of the model'). Each is its
    segment number, named apart in the record."""
    import pydicom

    volume, _, _ = case
    sources = [pydicom.dcmread(p) for p in volume.dicom.paths]
    masks = np.zeros((SHAPE[2], SHAPE[1], SHAPE[0], 3), bool)  # (slices, rows, columns, segments)
    masks[:, 0:4, :, 0] = True
    masks[:, 8:12, :, 1] = True
    masks[:, 14:16, :, 2] = True
    _foreign_seg(tmp_path / "lesions.dcm", sources, masks, ["Lesion", "Lesion", "lesion"], "BINARY")
    expected = (masks.astype(np.uint8) * [1, 2, 3]).sum(axis=3).transpose(2, 1, 0)
    nib.save(nib.Nifti1Image(expected.astype(np.uint8), volume.affine), tmp_path / "pred.nii.gz")
    code, out, err = _main(["evaluate", str(tmp_path / "pred.nii.gz"), str(tmp_path / "lesions.dcm"), "--json"],
                           capsys)
    assert code == 0, err
    labels = json.loads(out)["labels"]
    assert {k: (v["name"], v["dice"]) for k, v in labels.items()} == {
        "1": ("Lesion (segment 1)", 1.0), "2": ("Lesion (segment 2)", 1.0), "3": ("lesion (segment 3)", 1.0)}
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == []


def test_a_seg_reference_whose_segment_a_dataset_json_names_otherwise_is_refused(case, tmp_path, capsys):
    """The dataset.json names value 1 'liver', the SEG's segment 1 is 'odd': scored silently as liver (values were
    the keys), a Dice of another structure. Refused in one line naming the file, the segment, both names and the
    way on; nothing written."""
    volume, expected, seg = case
    (tmp_path / "pred").mkdir()
    nib.save(nib.Nifti1Image(expected, volume.affine), tmp_path / "pred" / "case.nii.gz")
    names = tmp_path / "pred" / "dataset.json"
    names.write_text(json.dumps({"labels": {"background": 0, "liver": 1, "corner": 2}}))
    out_path = tmp_path / "m.json"
    code, out, err = _main(["evaluate", str(tmp_path / "pred" / "case.nii.gz"), str(seg), "-o", str(out_path)],
                           capsys)
    assert (code, out) == (1, "") and not out_path.exists()
    assert err.splitlines() == [
        f"medseg: error: {seg}: segment 1 is labelled 'odd', but {names} names label value 1 'liver' (its labels: "
        "1 liver, 2 corner); the segments of a SEG are paired with the labels by name: if they are one structure, "
        "rename the segment or the label so that the names agree"]


def test_a_seg_reference_is_paired_with_a_dataset_json_by_name_not_by_segment_number(case, tmp_path, capsys):
    """The dataset.json numbers the labels otherwise than the SEG its segments (value 1 'corner', value 2 'ODD'): each
    segment is read as the label its name gives (regardless of case), not as its segment number: Dice 1.0 each."""
    volume, expected, seg = case
    swapped_values = np.where(expected == 1, 2, np.where(expected == 2, 1, 0)).astype(np.uint8)
    (tmp_path / "pred").mkdir()
    nib.save(nib.Nifti1Image(swapped_values, volume.affine), tmp_path / "pred" / "case.nii.gz")
    (tmp_path / "pred" / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "corner": 1, "ODD": 2}}))
    code, out, err = _main(["evaluate", str(tmp_path / "pred" / "case.nii.gz"), str(seg), "--json"], capsys)
    assert code == 0, err
    labels = json.loads(out)["labels"]
    assert {k: (v["name"], v["dice"]) for k, v in labels.items()} == {"1": ("corner", 1.0), "2": ("ODD", 1.0)}
    assert labels["2"]["ref_volume_ml"] == pytest.approx(
        np.count_nonzero(expected == 1) * float(np.prod(volume.spacing_mm)) / 1000)


def test_a_folder_of_seg_references_fails_the_case_whose_segment_the_dataset_json_names_otherwise(case, tmp_path,
                                                                                                   capsys):
    """Two folders beside a dataset.json: the case whose SEG names segment 1 otherwise than the dataset.json names
    value 1 fails, with its failure record; the other carries on, scored by name (Dice 1.0)."""
    volume, expected, seg = case
    for folder in ("pred", "ref"):
        (tmp_path / folder).mkdir()
    for name in ("a", "b"):
        nib.save(nib.Nifti1Image(expected, volume.affine), tmp_path / "pred" / f"{name}.nii.gz")
    (tmp_path / "pred" / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "odd": 1, "corner": 2}}))
    seg.rename(tmp_path / "ref" / "a.dcm")
    write_dicom_seg(expected, volume, tmp_path / "ref" / "b.dcm", {0: "background", 1: "liver", 2: "corner"},
                    "test-model")
    code, _, err = _main(["evaluate", str(tmp_path / "pred"), str(tmp_path / "ref"), "-o", str(tmp_path / "out")],
                         capsys)
    assert code == 1
    scored = json.loads((tmp_path / "out" / "a_metrics.json").read_text())["labels"]
    assert {k: (v["name"], v["dice"]) for k, v in scored.items()} == {"1": ("odd", 1.0), "2": ("corner", 1.0)}
    assert not (tmp_path / "out" / "b_metrics.json").exists()
    failure = json.loads((tmp_path / "out" / "b_failed.json").read_text())
    assert failure["error"] == (
        f"{tmp_path / 'ref' / 'b.dcm'}: segment 1 is labelled 'liver', but {tmp_path / 'pred' / 'dataset.json'} "
        "names label value 1 'odd' (its labels: 1 odd, 2 corner); the segments of a SEG are paired with the labels by "
        "name: if they are one structure, rename the segment or the label so that the names agree")


def test_the_report_draws_a_seg_reference_paired_by_name_as_it_was_scored(case, tmp_path):
    """A case scored beside a dataset.json that numbers the labels otherwise than the SEG its segments: the report's
    overlay and border check read the SEG by segment number (its 'odd' drawn as the prediction's 1, 'corner'), not as
    scored. They pair its segments with the names the case's metrics record gives, as scoring did; a segment no name
    of the record pairs (one scoring paired by its codes) is drawn as its segment number, as before."""
    from medseg.report.checks import read_case_labels
    from medseg.report.collect import CaseResult

    volume, expected, seg = case
    grid = (SHAPE, volume.affine, tmp_path / "case.nii.gz")
    scored = {"labels": {"1": {"name": "corner", "dice": 1.0}, "2": {"name": "ODD", "dice": 1.0}}}
    labels, _ = read_case_labels(CaseResult("case", tmp_path, tmp_path, metrics=scored), seg, grid)
    assert np.array_equal(labels, np.where(expected == 1, 2, np.where(expected == 2, 1, 0)))
    by_number = {"labels": {"1": {"name": "odd"}, "2": {"name": "corner"}}}  # the SEG's own names: as before
    labels, _ = read_case_labels(CaseResult("case", tmp_path, tmp_path, metrics=by_number), seg, grid)
    assert np.array_equal(labels, expected)
    by_codes = {"labels": {"1": {"name": "liver"}, "2": {"name": "corner"}}}
    labels, _ = read_case_labels(CaseResult("case", tmp_path, tmp_path, metrics=by_codes), seg, grid)
    assert np.array_equal(labels, expected)


def test_segments_a_dataset_json_pairs_with_one_label_are_told_as_matching_its_label_not_the_models(case, tmp_path,
                                                                                                    capsys, caplog):
    """The SEG's segments 1 'left_kidney' and 2 'Left Kidney' (its parts) are both the dataset.json's label 1
    'left_kidney' by name (no model, no sidecar): read as their union, with a warning that they 'match one label
    of the model', where there was none. The warning names the dataset.json (as the refusal does where they
    overlap)."""
    volume, expected, _ = case
    (tmp_path / "pred").mkdir()
    nib.save(nib.Nifti1Image((expected > 0).astype(np.uint8), volume.affine), tmp_path / "pred" / "case.nii.gz")
    names = tmp_path / "pred" / "dataset.json"
    names.write_text(json.dumps({"labels": {"background": 0, "left_kidney": 1, "corner": 2}}))
    write_dicom_seg(expected, volume, tmp_path / "two.dcm", {0: "background", 1: "left_kidney", 2: "Left Kidney"},
                    "test-model")
    code, out, err = _main(["evaluate", str(tmp_path / "pred" / "case.nii.gz"), str(tmp_path / "two.dcm"), "--json"],
                           capsys)
    assert code == 0, err
    labels = json.loads(out)["labels"]
    assert (labels["1"]["name"], labels["1"]["dice"]) == ("left_kidney", 1.0)
    assert [r.getMessage() for r in caplog.records if "match one label" in r.getMessage()] == [
        f"{tmp_path / 'two.dcm'}: segments 1 'left_kidney' and 2 'Left Kidney' match one label of {names}, "
        "'left_kidney', and do not overlap: read as that label, their union"]
    import pydicom
    from seg_factory import foreign_seg

    masks = np.zeros((SHAPE[2], SHAPE[1], SHAPE[0], 2), bool)  # (slices, rows, columns, segments)
    masks[:, 0:8, :, 0] = True
    masks[:, 5:12, :, 1] = True  # rows 5-7 in both
    foreign_seg(tmp_path / "overlap.dcm", [pydicom.dcmread(p) for p in volume.dicom.paths], masks,
                ["left_kidney", "Left Kidney"])
    code, out, err = _main(["evaluate", str(tmp_path / "pred" / "case.nii.gz"), str(tmp_path / "overlap.dcm"),
                            "--json"], capsys)
    assert (code, out) == (1, "") and err.splitlines() == [
        f"medseg: error: {tmp_path / 'overlap.dcm'}: segments 1 'left_kidney' and 2 'Left Kidney' match one label of "
        f"{names}, 'left_kidney', and overlap in {3 * SHAPE[0] * SHAPE[2]} voxels; keep one of them in the "
        "reference"]


def test_segments_of_one_name_are_paired_with_a_dataset_jsons_label_by_their_segment_labels(case, tmp_path, capsys,
                                                                                          caplog):
    """Two lesions drawn as segments 'Lesion' and 'Lesion', a dataset.json naming 1 'lesion': the segments, named
    apart as 'Lesion (segment 1)' and 'Lesion (segment 2)' for scoring where nothing names them, were paired under
    those names and refused ("segment 1 is labelled 'Lesion (segment 1)'", a label the SEG does not hold), where
    a model's 'lesion' reads them as their union. They are paired by their SegmentLabels: one label, their union."""
    volume, expected, _ = case
    (tmp_path / "pred").mkdir()
    nib.save(nib.Nifti1Image((expected > 0).astype(np.uint8), volume.affine), tmp_path / "pred" / "case.nii.gz")
    names = tmp_path / "pred" / "dataset.json"
    names.write_text(json.dumps({"labels": {"background": 0, "lesion": 1}}))
    write_dicom_seg(expected, volume, tmp_path / "two.dcm", {0: "background", 1: "Lesion", 2: "Lesion"}, "test-model")
    code, out, err = _main(["evaluate", str(tmp_path / "pred" / "case.nii.gz"), str(tmp_path / "two.dcm"), "--json"],
                           capsys)
    assert code == 0, err
    assert {k: (v["name"], v["dice"]) for k, v in json.loads(out)["labels"].items()} == {"1": ("lesion", 1.0)}
    assert [r.getMessage() for r in caplog.records if "match one label" in r.getMessage()] == [
        f"{tmp_path / 'two.dcm'}: segments 1 'Lesion' and 2 'Lesion' match one label of {names}, 'lesion', and do "
        "not overlap: read as that label, their union"]
