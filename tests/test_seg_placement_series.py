"""A DICOM SEG reference beside a conversion of a series: a SEG of another series (or one re-exported under a new
UID) refused saying how to go on, one whose frame of reference differs warned of and recorded, a SEG given as the
prediction told to go second, and the series of a conversion read from its JSON (the series and its SEG made by
``seg_placement_cases.py``)."""
from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from seg_placement_cases import (
    NAMES,
    SHAPE,
    _main,
    seg_case,  # noqa: F401  (the case fixture its tests take)
)

from medseg.errors import InputError
from medseg.io.dicom import read_dicom_series
from medseg.io.seg_placement import read_seg_on_grid
from medseg.io.seg_reading import read_dicom_seg


@pytest.mark.parametrize("recorded_by", ["medseg convert", "dcm2niix"])
def test_a_seg_of_another_series_is_refused_beside_a_conversion_whose_sidecar_names_its_series(case, tmp_path, capsys,
                                                                                              recorded_by):
    """A SEG of another series on the same scanner coordinates (the other session of a decubitus pair) was placed by
    its geometry on a conversion of this series and scored (Dice 0.02 on the shared MR pair), where beside the
    series itself it is refused; the conversion's sidecar (medseg convert --sidecar's, dcm2niix's -ba n) names the
    series, and now so is it: by infer before any work, and by evaluate of a prediction made from that image."""
    import pydicom

    volume, expected, seg = case
    conversion = tmp_path / "conv.nii.gz"
    code, _, err = _main(["convert", str(tmp_path / "series"), str(conversion), "--sidecar"], capsys)
    assert code == 0, err
    uid = json.loads((tmp_path / "conv.json").read_text())["series_uid"]
    if recorded_by == "dcm2niix":
        (tmp_path / "conv.json").write_text(json.dumps({"SeriesDescription": "t1", "SeriesInstanceUID": uid}))
    hint = (f"segment the series it references (or a conversion of it); if series {uid} holds the same images, "
            f"re-exported under a new SeriesInstanceUID, move {tmp_path / 'conv.json'} aside: the SEG is then placed "
            "by its frames' own geometry, checked to lie on the grid")
    other = tmp_path / "other.dcm"
    dataset = pydicom.dcmread(seg)
    dataset.ReferencedSeriesSequence[0].SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    dataset.save_as(other)
    code, out, err = _main(["infer", str(conversion), "-m", "phantom", "--reference", str(other), "-o",
                            str(tmp_path / "out"), "--device", "cpu"], capsys)
    assert (code, out, err.strip().splitlines()[-1]) == (1, "", (
        f"medseg: error: {other}: a segmentation of series 1.2.826.0.1.3680043.8.498.1, not of {conversion} (series "
        f"{uid}, as its conversion's sidecar {tmp_path / 'conv.json'} records); nothing segmented or written: "
        f"{hint}"))
    assert not (tmp_path / "out").exists()
    prediction = tmp_path / "conv_seg.nii.gz"  # a prediction of the conversion, as medseg infer of it records it
    nib.save(nib.Nifti1Image(nib.load(conversion).get_fdata().astype(np.uint8) * 0, nib.load(conversion).affine),
             prediction)
    (tmp_path / "conv_seg.json").write_text(json.dumps({"input": str(conversion), "labels": NAMES}))
    code, out, err = _main(["evaluate", str(prediction), str(other)], capsys)
    assert (code, out, err.strip().splitlines()[-1]) == (1, "", (
        f"medseg: error: {other}: a segmentation of series 1.2.826.0.1.3680043.8.498.1, not of {prediction} (series "
        f"{uid}, as the sidecar {tmp_path / 'conv.json'} of its input records); not scored: {hint}"))
    code, out, err = _main(["evaluate", str(prediction), str(seg), "--json"], capsys)  # its own series' SEG scores
    assert code == 0, err
    assert {k: v["status"] for k, v in json.loads(out)["labels"].items()} == {"1": "empty_prediction",
                                                                           "2": "empty_prediction"}


def test_a_seg_of_a_series_since_re_exported_under_a_new_uid_is_refused_saying_how_to_go_on(case, tmp_path, capsys):
    """A series re-exported under a new SeriesInstanceUID (and new image UIDs), converted with its sidecar, is refused
    a SEG drawn on the old series, and so is the series itself; the line said nothing of how to go on. It now says:
    segment the series the SEG references, or, where the images are the same, have the SEG placed by its own geometry
    (the conversion's JSON moved aside; beside the series, a conversion without one), which then scores."""
    import shutil

    import pydicom
    from pydicom.uid import generate_uid

    volume, expected, seg = case
    new_uid = "1.2.826.0.1.3680043.8.498.77"
    shutil.copytree(tmp_path / "series", tmp_path / "again")
    for path in (tmp_path / "again").iterdir():  # re-exported: new series and image UIDs, the same pixels and places
        dataset = pydicom.dcmread(path)
        dataset.SeriesInstanceUID = new_uid
        dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        dataset.save_as(path)
    conversion, record = tmp_path / "again.nii.gz", tmp_path / "again.json"
    code, _, err = _main(["convert", str(tmp_path / "again"), str(conversion), "--sidecar"], capsys)
    assert code == 0, err
    old_uid = volume.dicom.series_uid
    hint = (f"segment the series it references (or a conversion of it); if series {new_uid} holds the same images, "
            f"re-exported under a new SeriesInstanceUID, move {record} aside: the SEG is then placed by its frames' "
            "own geometry, checked to lie on the grid")
    code, out, err = _main(["infer", str(conversion), "-m", "phantom", "--reference", str(seg), "-o",
                            str(tmp_path / "out"), "--device", "cpu"], capsys)
    assert (code, out, err.strip().splitlines()[-1]) == (1, "", (
        f"medseg: error: {seg}: a segmentation of series {old_uid}, not of {conversion} (series {new_uid}, as its "
        f"conversion's sidecar {record} records); nothing segmented or written: {hint}"))
    assert not (tmp_path / "out").exists()
    prediction = tmp_path / "again_seg.nii.gz"  # a prediction of the conversion, as medseg infer of it records it
    nib.save(nib.Nifti1Image(expected, nib.load(conversion).affine), prediction)
    (tmp_path / "again_seg.json").write_text(json.dumps({"input": str(conversion), "labels": NAMES}))
    code, out, err = _main(["evaluate", str(prediction), str(seg)], capsys)
    assert (code, out, err.strip().splitlines()[-1]) == (1, "", (
        f"medseg: error: {seg}: a segmentation of series {old_uid}, not of {prediction} (series {new_uid}, as the "
        f"sidecar {record} of its input records); not scored: {hint}"))
    record.rename(tmp_path / "again.json.aside")  # as the line says: placed by its geometry, and scored
    code, out, err = _main(["evaluate", str(prediction), str(seg), "--json"], capsys)
    assert code == 0, err
    assert {k: v["dice"] for k, v in json.loads(out)["labels"].items()} == {"1": 1.0, "2": 1.0}
    again = read_dicom_series(tmp_path / "again")
    with pytest.raises(InputError) as info:  # beside the series itself
        read_dicom_seg(seg, again, NAMES)
    assert str(info.value) == (
        f"{seg}: a segmentation of series {old_uid}, not of {tmp_path / 'again'} (series {new_uid}): segment the "
        f"series it references (or a conversion of it); if series {new_uid} holds the same images, re-exported under "
        f"a new SeriesInstanceUID, segment a conversion of {tmp_path / 'again'} with no JSON beside it that records "
        "the series (medseg convert without --sidecar): the SEG is placed on its grid by its frames' own geometry, "
        "checked to lie on it")
    code, _, err = _main(["convert", str(tmp_path / "again"), str(tmp_path / "plain.nii.gz")], capsys)
    assert code == 0, err
    assert not (tmp_path / "plain.json").exists()
    plain = nib.load(tmp_path / "plain.nii.gz")
    assert np.array_equal(read_seg_on_grid(seg, plain.shape, plain.affine, tmp_path / "plain.nii.gz", NAMES), expected)


def test_a_seg_of_another_series_is_refused_beside_a_prediction_whose_series_moved(case, tmp_path, capsys):
    """Where the series a NIfTI prediction was made from has moved, its SEG reference is placed by its geometry; a
    SEG of another series on the same coordinates was scored so, where the sidecar names the series it was made
    from."""
    import pydicom

    volume, expected, seg = case
    nib.save(nib.Nifti1Image(expected, volume.affine), tmp_path / "case_seg.nii.gz")
    (tmp_path / "case_seg.json").write_text(json.dumps({
        "input": str(tmp_path / "series"), "labels": NAMES,
        "input_info": {"format": "dicom", "series_uid": volume.dicom.series_uid}}))
    other = tmp_path / "other.dcm"
    dataset = pydicom.dcmread(seg)
    dataset.ReferencedSeriesSequence[0].SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    dataset.save_as(other)
    (tmp_path / "series").rename(tmp_path / "moved")
    code, out, err = _main(["evaluate", str(tmp_path / "case_seg.nii.gz"), str(other)], capsys)
    assert (code, out, err.strip()) == (1, "", (
        f"medseg: error: {other}: a segmentation of series 1.2.826.0.1.3680043.8.498.1, not of "
        f"{tmp_path / 'case_seg.nii.gz'} (series {volume.dicom.series_uid}, as the prediction's sidecar records); "
        "not scored: segment the series it references (or a conversion of it)"))
    code, out, err = _main(["evaluate", str(tmp_path / "case_seg.nii.gz"), str(seg), "--json"], capsys)
    assert code == 0, err
    assert {k: v["dice"] for k, v in json.loads(out)["labels"].items()} == {"1": 1.0, "2": 1.0}


def test_a_seg_stating_another_frame_of_reference_than_its_series_is_warned_of(case, tmp_path, caplog):
    """A SEG whose FrameOfReferenceUID is not its source images' (DICOM has it share theirs) was read without a word;
    its frames lie on the images they reference, so it is still placed there, with a warning naming both UIDs."""
    import logging

    import pydicom

    volume, expected, seg = case
    other = tmp_path / "other_frame.dcm"
    dataset = pydicom.dcmread(seg)
    image_frame = str(dataset.FrameOfReferenceUID)
    dataset.FrameOfReferenceUID = "1.2.826.0.1.3680043.8.498.99"
    dataset.save_as(other)
    caplog.set_level(logging.INFO, logger="medseg")
    assert np.array_equal(read_dicom_seg(seg, volume, NAMES), expected)
    assert not [r for r in caplog.records if "FrameOfReferenceUID" in r.getMessage()]  # its own: no word
    assert np.array_equal(read_dicom_seg(other, volume, NAMES), expected)
    assert [(r.levelno, r.getMessage()) for r in caplog.records if "FrameOfReferenceUID" in r.getMessage()] == [(
        logging.WARNING, f"{other}: its FrameOfReferenceUID 1.2.826.0.1.3680043.8.498.99 is not that of the images of "
        f"{volume.source} ({image_frame}), which a SEG of them shares; its frames are placed on the images they "
        "reference, on which they lie: check that it segments this series")]


def test_a_seg_stating_another_frame_of_reference_is_recorded_in_the_metrics_and_on_the_report_card(case, tmp_path,
                                                                                                      capsys):
    """The FrameOfReferenceUID mismatch of a SEG reference was only logged; a QA team reads the metrics JSON and the
    QA report. The record names both UIDs and notes it, and the case's card shows it once (its flag, not the note
    again beneath it); a SEG sharing its series' frame of reference adds neither."""
    import html

    import pydicom

    from medseg.report.build import build_report

    volume, expected, seg = case
    other = tmp_path / "other_frame.dcm"
    dataset = pydicom.dcmread(seg)
    image_frame = str(dataset.FrameOfReferenceUID)
    dataset.FrameOfReferenceUID = "1.2.826.0.1.3680043.8.498.99"
    dataset.save_as(other)
    folder = tmp_path / "results" / "cases" / "c1"
    folder.mkdir(parents=True)
    prediction = folder / "c1_seg.nii.gz"
    nib.save(nib.Nifti1Image(expected, volume.affine), prediction)
    (folder / "c1_seg.json").write_text(json.dumps({
        "schema": "medseg-segmentation/1", "case_id": "c1", "input": str(tmp_path / "series"),
        "input_sha256": volume.source_sha256, "segmentation": prediction.name, "shape": list(SHAPE),
        "affine": volume.affine.tolist(), "labels": NAMES,
        "input_info": {"format": "dicom", "series_uid": volume.dicom.series_uid}}))
    note = (f"reference: its FrameOfReferenceUID 1.2.826.0.1.3680043.8.498.99 is not that of the images of "
            f"{tmp_path / 'series'} ({image_frame}), which a SEG of them shares; its frames are placed on the images "
            "they reference, on which they lie: check that it segments this series")
    code, out, err = _main(["evaluate", str(prediction), str(seg), "--json"], capsys)
    assert code == 0, err
    assert "frame_of_reference" not in out and "notes" not in json.loads(out)  # its own series' frame: nothing
    code, _, err = _main(["evaluate", str(prediction), str(other), "-o", str(folder / "c1_metrics.json")], capsys)
    assert code == 0, err
    record = json.loads((folder / "c1_metrics.json").read_text())
    assert record["reference_frame_of_reference_mismatch"] == {"seg": "1.2.826.0.1.3680043.8.498.99",
                                                               "series": image_frame}
    assert record["notes"] == [note]
    assert {k: v["dice"] for k, v in record["labels"].items()} == {"1": 1.0, "2": 1.0}  # still scored on its images
    page = build_report(tmp_path / "results", tmp_path / "r.html", max_overlays=0).html.read_text(encoding="utf-8")
    # on the card once: as its frame_of_reference flag, not again as the note beneath it
    assert "<b>frame_of_reference</b>: " + html.escape(
        f"the reference SEG's FrameOfReferenceUID 1.2.826.0.1.3680043.8.498.99 is not that of its series' images "
        f"({image_frame})") in page
    assert html.escape(note) not in page


def test_a_seg_without_a_sidecar_given_as_the_prediction_is_told_to_go_second(case, tmp_path, capsys):
    """Another tool's SEG given as the prediction was refused for its missing sidecar alone, which medseg infer
    writes and no other tool does; the line now says that as the reference it needs none, and so it scores."""
    volume, expected, seg = case
    code, _, err = _main(["convert", str(tmp_path / "series"), str(tmp_path / "conv.nii.gz")], capsys)
    assert code == 0, err
    labels = tmp_path / "labels.nii.gz"
    nib.save(nib.Nifti1Image(expected, nib.load(tmp_path / "conv.nii.gz").affine), labels)
    code, out, err = _main(["evaluate", str(seg), str(labels)], capsys)
    assert (code, out, err.strip().splitlines()[-1]) == (1, "", (
        f"medseg: error: {seg}: a DICOM SEG prediction is scored on its source series, named by the sidecar "
        f"{tmp_path / 'ref.json'} of the prediction, which cannot be read (no such file or directory); a DICOM SEG "
        "that medseg infer did not write has none: give it as the reference (the second file), which needs none (Dice, "
        "HD95 and ASSD are the same either way; the predicted and reference volumes, and the false-positive and "
        "false-negative ones, change places)"))
    code, out, err = _main(["evaluate", str(labels), str(seg), "--json"], capsys)
    assert code == 0, err
    assert {k: v["dice"] for k, v in json.loads(out)["labels"].items()} == {"1": 1.0, "2": 1.0}


def test_a_seg_referencing_its_series_in_another_study_is_not_refused_as_of_another_series(case, tmp_path, capsys):
    """A SEG lists the series of its own study in ReferencedSeriesSequence and those of other studies in
    StudiesContainingOtherReferencedInstancesSequence; one whose source series is of another study (and which also
    references a series of its own) was refused as a segmentation of that other series, beside the series itself and
    beside a conversion whose sidecar names it. A SEG listing only other series is still refused, in either list."""
    import pydicom
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    volume, expected, seg = case
    code, _, err = _main(["convert", str(tmp_path / "series"), str(tmp_path / "conv.nii.gz"), "--sidecar"], capsys)
    assert code == 0, err
    conversion = nib.load(tmp_path / "conv.nii.gz")
    uid = volume.dicom.series_uid

    def referencing(name: str, own: str, other: str) -> Path:
        dataset = pydicom.dcmread(seg)
        images = dataset.ReferencedSeriesSequence[0].ReferencedInstanceSequence  # moved to the other study's list
        study, series, registered = Dataset(), Dataset(), Dataset()
        registered.ReferencedSOPClassUID = images[0].ReferencedSOPClassUID
        registered.ReferencedSOPInstanceUID = "1.2.826.0.1.3680043.8.498.301"  # an image of its own study's series
        dataset.ReferencedSeriesSequence[0].ReferencedInstanceSequence = Sequence([registered])
        dataset.ReferencedSeriesSequence[0].SeriesInstanceUID = own
        study.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.300"
        series.SeriesInstanceUID = other
        series.ReferencedInstanceSequence = images
        study.ReferencedSeriesSequence = Sequence([series])
        dataset.StudiesContainingOtherReferencedInstancesSequence = Sequence([study])
        dataset.save_as(tmp_path / name)
        return tmp_path / name

    elsewhere = referencing("elsewhere.dcm", "1.2.826.0.1.3680043.8.498.1", uid)
    assert np.array_equal(read_dicom_seg(elsewhere, volume, NAMES), expected)
    placed = read_seg_on_grid(elsewhere, conversion.shape, conversion.affine, tmp_path / "conv.nii.gz", NAMES,
                              series=(uid, "its conversion's sidecar"))
    assert np.array_equal(placed, expected)
    foreign = referencing("foreign.dcm", "1.2.826.0.1.3680043.8.498.1", "1.2.826.0.1.3680043.8.498.2")
    with pytest.raises(InputError) as info:
        read_dicom_seg(foreign, volume, NAMES)
    assert str(info.value) == (f"{foreign}: a segmentation of series 1.2.826.0.1.3680043.8.498.1, "
                               f"1.2.826.0.1.3680043.8.498.2, not of {volume.source} (series {uid}): segment the "
                               f"series it references (or a conversion of it); if series {uid} holds the same "
                               f"images, re-exported under a new SeriesInstanceUID, segment a conversion of "
                               f"{volume.source} with no JSON beside it that records the series (medseg convert "
                               "without --sidecar): the SEG is placed on its grid by its frames' own geometry, "
                               "checked to lie on it")
    with pytest.raises(InputError) as info:
        read_seg_on_grid(foreign, conversion.shape, conversion.affine, tmp_path / "conv.nii.gz", NAMES,
                         series=(uid, "its conversion's sidecar"))
    assert str(info.value) == (f"{foreign}: a segmentation of series 1.2.826.0.1.3680043.8.498.1, "
                               f"1.2.826.0.1.3680043.8.498.2, not of {tmp_path / 'conv.nii.gz'} (series {uid}, as its "
                               "conversion's sidecar records); not scored: segment the series it references (or a "
                               "conversion of it)")


@pytest.mark.parametrize("name", ["conv.nii.gz", "conv.nii.bz2", "conv.NRRD"])
def test_the_series_of_a_conversion_is_read_from_its_json_whatever_the_images_ending(tmp_path, name):
    """The image endings were a list of their own, without .nii.bz2 and .nii.zst, which medseg reads: a conversion
    so compressed went unchecked against a SEG of another series."""
    from medseg.io.dicom import conversion_series_uid

    (tmp_path / name).write_bytes(b"")
    (tmp_path / "conv.json").write_text(json.dumps({"SeriesInstanceUID": " 1.2.826.0.1.3680043.8.498.7 "}))
    assert conversion_series_uid(tmp_path / name) == ("1.2.826.0.1.3680043.8.498.7", tmp_path / "conv.json")
    (tmp_path / "conv.json").write_text(json.dumps({"SeriesDescription": "t1"}))  # dcm2niix's -ba y: no UID
    assert conversion_series_uid(tmp_path / name) is None
