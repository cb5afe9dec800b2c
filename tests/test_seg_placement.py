"""A DICOM SEG placed by its own frames' geometry on the grid of an image converted from its series (a NIfTI on the
series' grid, in any voxel order), and refused, one line naming both files, where its frames are off that grid."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from dicom_factory import slice_positions, stored_values, write_series

from medseg.cli import main
from medseg.errors import InputError
from medseg.io.dicom import read_dicom_series
from medseg.io.seg_placement import read_seg_on_grid
from medseg.io.seg_reading import read_dicom_seg
from medseg.io.seg_writing import write_dicom_seg

SHAPE = (24, 20, 7)
NAMES = {0: "background", 1: "odd", 2: "corner"}
OBLIQUE = (0.0, 0.8, 0.6, 0.0, -0.6, 0.8)


def label_rule(values: np.ndarray) -> np.ndarray:
    """1 where the stored value is a multiple of 5, 2 in the low-index corner (an asymmetric region)."""
    labels = np.zeros(values.shape, np.uint8)
    labels[np.mod(values, 5) == 0] = 1
    labels[values < 120] = 2
    return labels


@pytest.fixture
def case(tmp_path):
    """A synthetic axial series (0.8 × 0.6 mm pixels, slices 2 mm apart), its SEG (labels 1 and 2) and the labels
    that SEG reads as on the series' own images (today's placement)."""
    values = stored_values(SHAPE, seed=23)
    write_series(tmp_path / "series", values, slice_positions(SHAPE[2], 2.0), seed=2)
    volume = read_dicom_series(tmp_path / "series")
    write_dicom_seg(label_rule(values), volume, tmp_path / "ref.dcm", NAMES, "test-model")
    expected = read_dicom_seg(tmp_path / "ref.dcm", volume, NAMES)
    assert np.array_equal(expected, label_rule(values)) and set(np.unique(expected)) == {0, 1, 2}
    return volume, expected, tmp_path / "ref.dcm"


def flipped(array: np.ndarray, affine: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """The same voxels with ``axis`` reversed, and the affine that keeps each in place."""
    change = np.eye(4)
    change[axis, axis] = -1
    change[axis, 3] = array.shape[axis] - 1
    return np.flip(array, axis), affine @ change


def swapped(array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same voxels with axes i and j exchanged."""
    change = np.eye(4)[[1, 0, 2, 3]]
    return np.transpose(array, (1, 0, 2)), affine @ change


def test_a_seg_placed_by_its_geometry_equals_its_placement_on_its_series_in_any_voxel_order(case):
    """On the series' own grid, and on the same voxels stored LPS instead of RAS (i and j reversed), slices in
    reverse order, and i and j exchanged: the labels read are those of the series' images, voxel for voxel."""
    volume, expected, seg = case
    placed = read_seg_on_grid(seg, volume.shape, volume.affine, "series.nii.gz", NAMES)
    assert placed.dtype == np.uint8 and np.array_equal(placed, expected)
    array, affine = expected, np.asarray(volume.affine, float)
    array, affine = flipped(*flipped(array, affine, 0), 1)  # LPS voxel order (as ITK writes a series)
    array, affine = flipped(array, affine, 2)  # slices in reverse order
    assert np.array_equal(read_seg_on_grid(seg, array.shape, affine, "lps.nii.gz", NAMES), array)
    array, affine = swapped(array, affine)
    assert array.shape == (20, 24, 7)
    assert np.array_equal(read_seg_on_grid(seg, array.shape, affine, "swapped.nii.gz", NAMES), array)


def test_frames_reaching_past_the_grid_are_cropped_where_empty_and_refused_where_labelled(case):
    """A grid of the series' first 20 columns: the SEG's frames reach 4 columns past it. Empty there, they are cropped;
    labelled there, the SEG is refused in one line."""
    volume, expected, seg = case
    empty_beyond = expected.copy()
    empty_beyond[20:] = 0
    write_dicom_seg(empty_beyond, volume, seg.with_name("cropped.dcm"), NAMES, "test-model")
    placed = read_seg_on_grid(seg.with_name("cropped.dcm"), (20, 20, 7), volume.affine, "crop.nii.gz", NAMES)
    assert np.array_equal(placed, expected[:20])
    outside = int(np.count_nonzero(expected[20:]))
    assert outside > 0
    with pytest.raises(InputError) as caught:
        read_seg_on_grid(seg, (20, 20, 7), volume.affine, "crop.nii.gz", NAMES)
    assert str(caught.value) == (f"{seg}: {outside} labelled pixels of its frames lie outside the grid of "
                                 "crop.nii.gz (shape (20, 20, 7)): not a segmentation of that image; not scored")


@pytest.mark.parametrize("kind", ["orientation", "spacing", "slice spacing", "off-lattice"])
def test_a_seg_off_the_grid_is_refused_in_one_line_naming_both_files(case, tmp_path, capsys, kind):
    """Frames whose rows run along no voxel axis, a grid of other pixel or slice spacing, a grid shifted by 0.3 of a
    voxel: `medseg evaluate` says which, naming the SEG and the prediction, exit 1, and writes nothing."""
    volume, expected, seg = case
    affine = np.asarray(volume.affine, float).copy()
    if kind == "orientation":  # the SEG of an oblique series against the axial grid
        write_series(tmp_path / "oblique", stored_values(SHAPE, seed=23), slice_positions(SHAPE[2], 2.0,
                     orientation=OBLIQUE), orientation=OBLIQUE, seed=2)
        oblique = read_dicom_series(tmp_path / "oblique")
        seg = tmp_path / "oblique.dcm"
        write_dicom_seg(expected, oblique, seg, NAMES, "test-model")
        pattern = (r"cannot be placed on the grid of \S+pred.nii.gz: the orientation of its frame 1, "
                   r"\[0, 0.8, 0.6, 0, -0.6, 0.8\] \(LPS\), does not run along the grid's voxel axes "
                   r"\(\[1, 0, 0\], \[0, 1, 0\], \[0, 0, 1\] in LPS\); score it against the DICOM series it "
                   r"segments, or an image converted from it without resampling; not scored")
    elif kind == "spacing":
        affine[:3, 0] *= 0.81 / 0.6  # columns 0.81 mm apart where the SEG's are 0.6 mm
        pattern = (r"cannot be placed on the grid of \S+pred.nii.gz: its pixel spacing \[0.8, 0.6\] mm \(rows, "
                   r"columns\) differs from the grid's voxel size along its columns, 0.81 mm \(spacing\); resample "
                   r"one onto the other's grid first; not scored")
    elif kind == "slice spacing":
        affine[:3, 2] *= 1.5  # slices 3 mm apart where the SEG's are 2 mm
        pattern = (r"cannot be placed on the grid of \S+pred.nii.gz: its spacing between slices, 2 mm, differs from "
                   r"the grid's voxel size across its frames, 3 mm \(spacing\); resample one onto the other's grid "
                   r"first; not scored")
    else:
        affine[:3, 3] += affine[:3, 1] * 0.3  # 0.3 of a row: 0.24 mm
        pattern = (r"cannot be placed on the grid of \S+pred.nii.gz: its frame 1 lies 0.24 mm off the grid's voxel "
                   r"centres \(off-lattice; tolerance 0.06 mm\): its first pixel, at \[[-\d., ]+\] \(LPS\), falls at "
                   r"voxel \[0, -0.3, \d\]; resample one onto the other's grid first; not scored")
    nib.save(nib.Nifti1Image(expected, affine), tmp_path / "pred.nii.gz")
    with pytest.raises(InputError, match=re.escape(str(seg)) + ": " + pattern + "$"):
        read_seg_on_grid(seg, SHAPE, affine, tmp_path / "pred.nii.gz", NAMES)
    code, _, err = _main(["evaluate", str(tmp_path / "pred.nii.gz"), str(seg), "-o", str(tmp_path / "m.json")],
                         capsys)
    assert code == 1 and not (tmp_path / "m.json").exists()
    assert re.fullmatch("medseg: error: " + re.escape(str(seg)) + ": " + pattern, err.strip().splitlines()[-1])


def test_evaluate_scores_a_prediction_of_a_converted_series_against_its_seg(case, tmp_path, capsys):
    """A prediction on a conversion of the series (LPS voxel order, slices reversed) without a sidecar: the SEG is
    placed on its grid, each segment its segment number named by its SegmentLabel (it was label_N); with a sidecar
    whose input is that NIfTI (as medseg infer of it writes), under the sidecar's names. Dice from the known overlap:
    label 1 missed on one slice."""
    volume, expected, seg = case
    array, affine = flipped(*flipped(expected, np.asarray(volume.affine, float), 0), 1)
    array, affine = flipped(array, affine, 2)
    prediction = array.copy()
    prediction[:, :, 3][prediction[:, :, 3] == 1] = 0
    kept = int(np.count_nonzero(prediction == 1))
    total = int(np.count_nonzero(array == 1))
    dice = 2 * kept / (kept + total)
    nib.save(nib.Nifti1Image(prediction, affine), tmp_path / "conv_seg.nii.gz")
    code, out, err = _main(["evaluate", str(tmp_path / "conv_seg.nii.gz"), str(seg), "--json"], capsys)
    assert code == 0, err
    labels = json.loads(out)["labels"]
    assert {k: (v["name"], v["dice"]) for k, v in labels.items()} == {  # named by the SEG's SegmentLabel
        "1": ("odd", pytest.approx(dice, abs=1e-12)), "2": ("corner", 1.0)}
    assert labels["1"]["ref_volume_ml"] == pytest.approx(total * 0.8 * 0.6 * 2.0 / 1000)
    (tmp_path / "conv_seg.json").write_text(json.dumps({"input": str(tmp_path / "conv.nii.gz"), "labels": NAMES}))
    code, out, err = _main(["evaluate", str(tmp_path / "conv_seg.nii.gz"), str(seg), "--json"], capsys)
    assert code == 0, err
    labels = json.loads(out)["labels"]
    assert {k: (v["name"], v["dice"]) for k, v in labels.items()} == {
        "1": ("odd", pytest.approx(dice, abs=1e-12)), "2": ("corner", 1.0)}


def _main(args: list[str], capsys) -> tuple[int, str, str]:
    """``medseg ARGS``: exit code, stdout, stderr."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    printed = capsys.readouterr()
    return int(exit_info.value.code or 0), printed.out, printed.err


def _foreign_seg(path, sources, pixels, names, kind):
    """A SEG as another tool writes one (highdicom directly): masks (slices, rows, columns, segments), or a label map
    (slices, rows, columns) for ``kind`` LABELMAP."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    descriptions = [hd.seg.SegmentDescription(
        segment_number=n + 1, segment_label=name, segmented_property_category=codes.SCT.Tissue,
        segmented_property_type=codes.SCT.Tissue, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL)
        for n, name in enumerate(names)]
    hd.seg.Segmentation(
        source_images=sources, pixel_array=pixels, segmentation_type=getattr(hd.seg.SegmentationTypeValues, kind),
        segment_descriptions=descriptions, series_instance_uid=hd.UID(), series_number=99, sop_instance_uid=hd.UID(),
        instance_number=1, manufacturer="other", manufacturer_model_name="other", software_versions="1",
        device_serial_number="0").save_as(str(path))


def test_a_label_map_seg_is_placed_and_overlapping_segments_are_refused_as_on_the_series(case, tmp_path):
    """Another tool's LABELMAP SEG (pixel values are segment numbers) placed on the grid with its rows reversed; two
    BINARY segments of two labels that overlap are refused as on the series, naming both."""
    import pydicom

    volume, _, _ = case
    sources = [pydicom.dcmread(p) for p in volume.dicom.paths]  # in slice order
    label_map = np.zeros((SHAPE[2], SHAPE[1], SHAPE[0]), np.uint8)  # (slices, rows, columns)
    label_map[:, 2:8, 3:9] = 1
    label_map[1:4, 12:16, :] = 2
    _foreign_seg(tmp_path / "labelmap.dcm", sources, label_map, ["odd", "corner"], "LABELMAP")
    expected, affine = flipped(label_map.transpose(2, 1, 0), np.asarray(volume.affine, float), 1)
    placed = read_seg_on_grid(tmp_path / "labelmap.dcm", SHAPE, affine, "rows_reversed.nii.gz", NAMES)
    assert np.array_equal(placed, expected) and int(np.count_nonzero(placed == 2)) == 3 * 4 * 24
    masks = np.zeros((SHAPE[2], SHAPE[1], SHAPE[0], 2), bool)
    masks[:, 0:10, :, 0] = True
    masks[:, 5:15, :, 1] = True  # rows 5-9 in both: 5 × 24 × 7 voxels
    _foreign_seg(tmp_path / "overlap.dcm", sources, masks, ["odd", "corner"], "BINARY")
    with pytest.raises(InputError, match=r"overlap\.dcm: segments 'odd' and 'corner' overlap in 840 voxels; a "
                                         r"reference label map holds one label per voxel"):
        read_seg_on_grid(tmp_path / "overlap.dcm", SHAPE, affine, "rows_reversed.nii.gz", NAMES)


def test_a_binary_seg_of_one_segment_named_in_the_shared_groups_is_placed(case, tmp_path):
    """highdicom writes a BINARY SEG of one segment with its SegmentIdentificationSequence in the shared functional
    groups, not per frame: its frames were all passed over, and the reference read as empty (Dice 0, in silence)."""
    import pydicom

    volume, _, _ = case
    sources = [pydicom.dcmread(p) for p in volume.dicom.paths]
    masks = np.zeros((SHAPE[2], SHAPE[1], SHAPE[0], 1), bool)  # (slices, rows, columns, segments)
    masks[2, 3:9, 4:15, 0] = True
    masks[5, 10:12, 0:2, 0] = True
    _foreign_seg(tmp_path / "one.dcm", sources, masks, ["odd"], "BINARY")
    shared = pydicom.dcmread(tmp_path / "one.dcm").SharedFunctionalGroupsSequence[0]
    assert int(shared.SegmentIdentificationSequence[0].ReferencedSegmentNumber) == 1
    expected = masks[..., 0].transpose(2, 1, 0).astype(np.uint8)
    assert np.array_equal(read_dicom_seg(tmp_path / "one.dcm", volume, NAMES), expected)  # on the series
    placed = read_seg_on_grid(tmp_path / "one.dcm", SHAPE, volume.affine, "series.nii.gz", NAMES)
    assert int(np.count_nonzero(placed)) == 6 * 11 + 2 * 2 and np.array_equal(placed, expected)


def test_two_frames_of_one_segment_on_one_slice_are_refused_in_one_line(case, tmp_path, capsys):
    """Two frames of one segment stating one position (a malformed SEG) ended in a KeyError's traceback where their
    pixels overlap: refused in one line naming the frames and the slice, exit 1."""
    import pydicom

    volume, expected, _ = case
    sources = [pydicom.dcmread(p) for p in volume.dicom.paths]
    masks = np.zeros((SHAPE[2], SHAPE[1], SHAPE[0], 1), bool)
    masks[2:4, 3:9, 4:15, 0] = True  # one box on slices 2 and 3
    _foreign_seg(tmp_path / "one.dcm", sources, masks, ["odd"], "BINARY")
    dataset = pydicom.dcmread(tmp_path / "one.dcm")
    frames = dataset.PerFrameFunctionalGroupsSequence
    first = frames[0].PlanePositionSequence[0].ImagePositionPatient
    frames[1].PlanePositionSequence[0].ImagePositionPatient = first
    dataset.save_as(tmp_path / "twice.dcm")
    k = int(round((np.linalg.inv(volume.affine) @ [-first[0], -first[1], first[2], 1.0])[2]))
    assert k in (2, 3)
    nib.save(nib.Nifti1Image(expected, volume.affine), tmp_path / "pred.nii.gz")
    code, out, err = _main(["evaluate", str(tmp_path / "pred.nii.gz"), str(tmp_path / "twice.dcm"), "--json"], capsys)
    assert (code, out) == (1, "")
    assert err.strip() == (f"medseg: error: {tmp_path / 'twice.dcm'}: its frames 1 and 2 of segment 1 fall on one "
                           f"slice of the grid of {tmp_path / 'pred.nii.gz'} (k = {k}): a SEG has one frame per "
                           "segment and position; not scored")


def test_a_spacing_between_slices_stated_per_frame_is_checked_as_a_shared_one(case, tmp_path):
    """A SEG of 2 mm slices on a grid of 1 mm slices lies on its lattice, every other slice: refused by its spacing
    between slices, where the shared functional groups state it, and also where each frame does (it was then placed,
    every other slice of the grid left empty)."""
    import pydicom

    volume, _, seg = case
    affine = np.asarray(volume.affine, float).copy()
    affine[:3, 2] *= 0.5  # slices 1 mm apart, the SEG's 2 mm apart: its frames on every other one
    grid = (SHAPE[0], SHAPE[1], 2 * SHAPE[2])
    pattern = (r"cannot be placed on the grid of fine.nii.gz: its spacing between slices, 2 mm, differs from the "
               r"grid's voxel size across its frames, 1 mm \(spacing\); resample one onto the other's grid first; "
               r"not scored$")
    with pytest.raises(InputError, match=re.escape(str(seg)) + ": " + pattern):
        read_seg_on_grid(seg, grid, affine, "fine.nii.gz", NAMES)
    dataset = pydicom.dcmread(seg)
    measures = dataset.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence
    del dataset.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence
    for frame in dataset.PerFrameFunctionalGroupsSequence:
        frame.PixelMeasuresSequence = measures
    dataset.save_as(tmp_path / "per_frame.dcm")
    assert float(pydicom.dcmread(tmp_path / "per_frame.dcm").PerFrameFunctionalGroupsSequence[0]
                 .PixelMeasuresSequence[0].SpacingBetweenSlices) == 2.0
    with pytest.raises(InputError, match=re.escape(str(tmp_path / "per_frame.dcm")) + ": " + pattern):
        read_seg_on_grid(tmp_path / "per_frame.dcm", grid, affine, "fine.nii.gz", NAMES)


def test_an_oblique_frame_off_the_lattice_along_its_normal_is_refused_at_a_readable_voxel(tmp_path):
    """An oblique series' SEG on its grid moved 0.3 mm along the slice normal only: refused as off-lattice, the voxel
    its first pixel falls at written without float noise (it read `[-3.55271e-15, 0, 3.85]`)."""
    write_series(tmp_path / "series", stored_values(SHAPE, seed=23), slice_positions(SHAPE[2], 2.0,
                 orientation=OBLIQUE), orientation=OBLIQUE, seed=2)
    volume = read_dicom_series(tmp_path / "series")
    labels = np.zeros(volume.shape, np.uint8)
    labels[3:9, 4:10, 2:5] = 1
    write_dicom_seg(labels, volume, tmp_path / "ref.dcm", NAMES, "test-model")
    assert np.array_equal(read_seg_on_grid(tmp_path / "ref.dcm", SHAPE, volume.affine, "oblique.nii.gz", NAMES),
                          labels)
    affine = np.asarray(volume.affine, float).copy()
    affine[:3, 3] += affine[:3, 2] / np.linalg.norm(affine[:3, 2]) * 0.3  # along the normal alone
    with pytest.raises(InputError) as caught:
        read_seg_on_grid(tmp_path / "ref.dcm", SHAPE, affine, "oblique.nii.gz", NAMES)
    assert re.fullmatch(r"\S+ref\.dcm: cannot be placed on the grid of oblique\.nii\.gz: its frame 1 lies 0\.3 mm off "
                        r"the grid's voxel centres \(off-lattice; tolerance 0\.06 mm\): its first pixel, at "
                        r"\[[-\d., ]+\] \(LPS\), falls at voxel \[0, 0, 3\.85\]; resample one onto the other's grid "
                        r"first; not scored", str(caught.value)), str(caught.value)


def test_frames_of_two_orientations_crossing_on_the_grid_are_refused_in_one_line(tmp_path):
    """A SEG whose second frame states its own orientation (coronal, where the others are axial) crosses the first
    on the grid: a KeyError's traceback where both label their common voxels; refused in one line."""
    import pydicom
    from pydicom.dataset import Dataset

    write_series(tmp_path / "series", stored_values((20, 20, 20), seed=3), slice_positions(20, 1.0),
                 pixel_spacing=(1.0, 1.0), seed=2)
    volume = read_dicom_series(tmp_path / "series")
    labels = np.zeros(volume.shape, np.uint8)
    labels[5:15, 5:15, 8:12] = 1
    write_dicom_seg(labels, volume, tmp_path / "ref.dcm", NAMES, "test-model")
    dataset = pydicom.dcmread(tmp_path / "ref.dcm")
    second = dataset.PerFrameFunctionalGroupsSequence[1]
    orientation = Dataset()
    orientation.ImageOrientationPatient = [1, 0, 0, 0, 0, 1]  # coronal: rows along z
    second.PlaneOrientationSequence = pydicom.Sequence([orientation])
    ras = volume.affine @ [0, 10, 0, 1]  # the plane j = 10, across the labelled box
    second.PlanePositionSequence[0].ImagePositionPatient = [-ras[0], -ras[1], ras[2]]
    dataset.save_as(tmp_path / "crossing.dcm")
    with pytest.raises(InputError) as caught:
        read_seg_on_grid(tmp_path / "crossing.dcm", volume.shape, volume.affine, "pred.nii.gz", NAMES)
    assert str(caught.value) == (f"{tmp_path / 'crossing.dcm'}: cannot be placed on the grid of pred.nii.gz: its "
                                 "frames are not parallel (frame 1 a slice across the grid's k axis, frame 2 across "
                                 "its j axis); not scored")


def test_a_seg_reference_of_a_prediction_whose_series_moved_is_placed_on_the_prediction_grid(case, tmp_path, capsys,
                                                                                              caplog):
    """A NIfTI prediction whose sidecar records the DICOM series it was made from, since moved away: its SEG reference
    was refused ("not found (moved or renamed …)") although the prediction's grid is the series' own. It is placed by
    its frames' geometry on that grid, the record's notes saying so; the same Dice as on the series."""
    volume, expected, seg = case
    prediction = expected.copy()
    prediction[:, :, 3][prediction[:, :, 3] == 1] = 0
    kept, total = int(np.count_nonzero(prediction == 1)), int(np.count_nonzero(expected == 1))
    nib.save(nib.Nifti1Image(prediction, volume.affine), tmp_path / "case_seg.nii.gz")
    (tmp_path / "case_seg.json").write_text(json.dumps({
        "input": str(tmp_path / "series"), "labels": NAMES,
        "input_info": {"format": "dicom", "series_uid": volume.dicom.series_uid}}))
    args = ["evaluate", str(tmp_path / "case_seg.nii.gz"), str(seg), "--json"]
    code, out, err = _main(args, capsys)
    assert code == 0, err
    on_series = json.loads(out)
    assert "notes" not in on_series
    write_dicom_seg(prediction, volume, tmp_path / "dcm_seg.dcm", NAMES, "test-model")  # a SEG prediction
    (tmp_path / "dcm_seg.json").write_text((tmp_path / "case_seg.json").read_text())
    (tmp_path / "series").rename(tmp_path / "moved")
    code, out, err = _main(["-v", *args], capsys)
    assert code == 0, err
    record = json.loads(out)
    assert {k: (v["name"], v["dice"]) for k, v in record["labels"].items()} == {
        "1": ("odd", pytest.approx(2 * kept / (kept + total), abs=1e-12)), "2": ("corner", 1.0)}
    assert record["labels"] == on_series["labels"]
    note = (f"its source series {tmp_path / 'series'} (recorded in the prediction's sidecar) is not found (moved or "
            f"deleted since); placed by its frames' own geometry on the voxel grid of {tmp_path / 'case_seg.nii.gz'}")
    assert record["notes"] == [f"reference: {note}"]
    assert [(r.levelname, r.getMessage()) for r in caplog.records if "not found" in r.getMessage()] == [
        ("INFO", f"{seg}: {note}")]
    # the report's overlay and border check read it alike
    from medseg.report.checks import read_case_labels
    from medseg.report.collect import CaseResult

    result = CaseResult("case", tmp_path, tmp_path, sidecar=json.loads((tmp_path / "case_seg.json").read_text()))
    labels, placed_affine = read_case_labels(result, seg, (SHAPE, volume.affine, tmp_path / "case_seg.nii.gz"))
    assert np.array_equal(labels, expected) and np.allclose(placed_affine, volume.affine)
    # a DICOM SEG prediction is placed on its series: without it, refused as before, exit 1
    code, out, err = _main(["evaluate", str(tmp_path / "dcm_seg.dcm"), str(seg), "--json"], capsys)
    assert (code, out) == (1, "")
    assert err.strip() == (f"medseg: error: {tmp_path / 'dcm_seg.dcm'}: its source series {tmp_path / 'series'} "
                           "(recorded in its sidecar) is not found (moved or renamed since the prediction was made?); "
                           "the SEG is scored on the source images it references: put the series back there, or "
                           "write the folder where it lies now as the sidecar's \"input\"")


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


@pytest.mark.parametrize("thickness", [2.0, 1.0])
def test_frames_on_every_other_slice_of_a_finer_grid_are_warned_of_where_thicker_than_its_slices(case, tmp_path,
                                                                                                 caplog, thickness):
    """A SEG of 2 mm slices stating no spacing between slices, on a grid of 1 mm slices: its frames fall on every
    other slice, and were placed there in silence. Where it states a slice thickness above the grid's 1 mm (an
    annotation of a coarser series?) one warning names the file; placed as before, no refusal. A thickness of 1 mm
    (frames left out where empty) says nothing."""
    import pydicom

    volume, expected, seg = case
    dataset = pydicom.dcmread(seg)
    measures = dataset.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
    del measures.SpacingBetweenSlices
    measures.SliceThickness = thickness
    dataset.save_as(tmp_path / "coarse.dcm")
    affine = np.asarray(volume.affine, float).copy()
    affine[:3, 2] *= 0.5  # slices 1 mm apart, the SEG's frames 2 mm apart
    grid = (SHAPE[0], SHAPE[1], 2 * SHAPE[2])
    with caplog.at_level("INFO"):
        placed = read_seg_on_grid(tmp_path / "coarse.dcm", grid, affine, "fine.nii.gz", NAMES)
    assert np.array_equal(placed[:, :, 0::2], expected) and not placed[:, :, 1::2].any()
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    if thickness == 1.0:
        assert warned == []
        return
    assert warned == [f"{tmp_path / 'coarse.dcm'}: its frames lie on one slice in 2 of the grid of fine.nii.gz (k = 0 "
                      "to 12) and state a slice thickness of 2 mm, more than the grid's 1 mm between slices, with no "
                      "spacing between slices: an annotation of a coarser series? The slices between are read as "
                      "background"]


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
