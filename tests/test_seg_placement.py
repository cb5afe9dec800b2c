"""A DICOM SEG placed by its own frames' geometry on the grid of an image converted from its series (a NIfTI on the
series' grid, in any voxel order), and refused, one line naming both files, where its frames are off that grid.
Its segments named by a dataset.json are tested in ``test_seg_placement_labels.py``, the series it must be of in
``test_seg_placement_series.py``."""

from __future__ import annotations

import json
import re

import nibabel as nib
import numpy as np
import pytest
from dicom_factory import slice_positions, stored_values, write_series
from seg_placement_cases import (
    NAMES,
    SHAPE,
    _foreign_seg,
    _main,
    seg_case,  # noqa: F401  (the case fixture its tests take)
)

from medseg.errors import InputError
from medseg.io.dicom import read_dicom_series
from medseg.io.seg_placement import read_seg_on_grid
from medseg.io.seg_reading import read_dicom_seg
from medseg.io.seg_writing import write_dicom_seg

OBLIQUE = (0.0, 0.8, 0.6, 0.0, -0.6, 0.8)


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


