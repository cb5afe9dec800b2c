"""A reference put on the prediction's grid (medseg.grid_match): the tolerance, another voxel order re-indexed,
a box of the grid's lattice zero-padded; nothing resampled, anything else refused in one line."""

from __future__ import annotations

import json
import math

import nibabel as nib
import numpy as np
import pytest
from metric_cases import HIPPO_LABELS, ball, independent_metrics, make_affine, reindexed

from medseg.errors import GeometryError
from medseg.grid_match import check_same_grid, grid_displacement_mm, place_onto_grid, reorder_onto_grid
from medseg.io.label_images import read_reference
from medseg.metrics import evaluate_volumes, jsonable
from medseg.scoring import evaluate_files
from medseg.synthetic import rotation_matrix
from medseg.volume import Volume


# ---------------------------------------------------------------- grids
def test_different_shape_is_refused():
    a = Volume(np.zeros((10, 10, 10), np.int32), np.eye(4), source="pred.nii.gz")
    b = Volume(np.zeros((10, 10, 11), np.int32), np.eye(4), source="ref.nii.gz")
    with pytest.raises(GeometryError, match=r"ref.nii.gz: shape \(10, 10, 11\) differs .*not scored"):
        check_same_grid(a, b)
    b.array[0, 0, 10] = 1  # a box one voxel deeper than the prediction's grid, labelled there
    with pytest.raises(GeometryError, match=r"extends 1 voxel beyond its last k, and 1 of its labelled voxels lies "
                                            r"there, outside the grid; not scored$"):
        evaluate_volumes(a, b, {1: "x"})


@pytest.mark.parametrize(
    ("change", "refused"),
    [("shift_half_mm", True), ("flip_axis", True), ("rotate_0.1_degree", True), ("float32_noise", False)],
)
def test_affine_tolerance(change, refused):
    affine = make_affine((1.0, 1.0, 2.0), angles=(0.2, 0.0, 0.1), origin=(-100.0, 50.0, 20.0))
    other = affine.copy()
    if change == "shift_half_mm":
        other[0, 3] += 0.5
    elif change == "flip_axis":
        other[:3, 0] *= -1
        other[:3, 3] -= other[:3, 0] * 63
    elif change == "rotate_0.1_degree":
        other[:3, :3] = rotation_matrix((0, 0, math.radians(0.1))) @ affine[:3, :3]
    else:
        other = affine.astype(np.float32).astype(np.float64)
    a = Volume(np.zeros((64, 64, 32), np.int32), affine, source="pred")
    b = Volume(np.zeros((64, 64, 32), np.int32), other, source="ref")
    if refused:
        with pytest.raises(GeometryError, match="ref: its affine places voxels up to .* mm away"):
            check_same_grid(a, b)
    else:
        check_same_grid(a, b)
        assert grid_displacement_mm(a.shape, affine, other) < 1e-3


def test_a_label_transposed_before_it_was_saved_with_its_images_affine_is_refused(tmp_path):
    """A label array saved with its in-plane axes swapped (shape (95, 96, 10) on a (96, 95, 10) image, the image's own
    affine) was taken as a 3D Slicer box of the image's grid reaching one voxel past it, cropped and zero-padded:
    scored (Dice 0.08 where the untransposed label scores 1) and trained on as a box, without a word but "a box of its
    image's voxel grid (cropped, as 3D Slicer saves a segmentation)". A grid that is the target's shape in another
    order, from the target's own first voxel, is no crop: it is refused, naming the swap."""
    affine = make_affine((0.7, 0.7, 5.0))
    labels = np.zeros((96, 95, 10), np.uint8)
    labels[20:50, 10:30, 2:8] = 1
    swapped = np.ascontiguousarray(labels.transpose(1, 0, 2))
    with pytest.raises(GeometryError) as info:
        evaluate_volumes(Volume(labels, affine, source="scan_seg"), Volume(swapped, affine, source="ref"), {1: "x"})
    assert str(info.value) == (
        "ref: shape (95, 96, 10) is scan_seg's (96, 95, 10) in another order, on its affine as it is: its voxel axes "
        "swapped (an array transposed before it was saved with the image's affine?); save it in the image's axis "
        "order, or with an affine that says its own; not scored")
    with pytest.raises(GeometryError, match=r"in another order, on its affine as it is: .*; not trained$"):
        place_onto_grid(Volume(swapped, affine, source="ref"), Volume(labels, affine, source="scan"),
                        outcome="not trained")
    # a true box of the grid, from its first voxel, and one saved in another axis order with an affine that says so,
    # are placed as before
    box = place_onto_grid(Volume(labels[:60, :40], affine, source="ref"), Volume(labels, affine, source="scan"))
    assert np.array_equal(box.array, labels)
    reindexed_affine = affine[:, [1, 0, 2, 3]]
    reordered = place_onto_grid(Volume(swapped, reindexed_affine, source="ref"), Volume(labels, affine, source="scan"))
    assert np.array_equal(reordered.array, labels)


def test_a_grid_of_another_voxel_size_is_refused_naming_both_sizes():
    """A label of the image's shape whose header gives other slices (3 mm where the scan has 5 mm, an export with the
    wrong slice thickness) was refused as placing its voxels "up to 30 mm away": read as a shift or a registration
    problem, not as the header's voxel size that it is."""
    affine = np.diag([0.7, 0.7, 5.0, 1.0])
    thinner = np.diag([0.7, 0.7, 3.0, 1.0])
    blob = np.zeros((20, 20, 16), np.uint8)
    with pytest.raises(GeometryError) as info:
        check_same_grid(Volume(blob, affine, source="scan"), Volume(blob, thinner, source="label"))
    assert str(info.value) == ("label: its affine places voxels up to 30 mm away from where scan's does (tolerance "
                               "0.01 mm), with voxels of (0.7, 0.7, 3) mm against (0.7, 0.7, 5) mm; resample one onto "
                               "the other's grid first; not scored")
    moved = affine.copy()
    moved[0, 3] = 2.0  # the same voxel size, moved: the distance alone says it
    with pytest.raises(GeometryError) as info:
        check_same_grid(Volume(blob, affine, source="scan"), Volume(blob, moved, source="label"))
    assert str(info.value) == ("label: its affine places voxels up to 2 mm away from where scan's does (tolerance "
                               "0.01 mm); resample one onto the other's grid first; not scored")


@pytest.mark.parametrize(("spacing", "angles"), [
    ((0.8, 1.0, 2.0), (0.3, -0.2, 0.1)),
    ((0.8, 1.0, 2.0), (0.0, 0.0, math.radians(45))),
    ((1.0, 1.0, 1.0), (0.0, 0.0, math.radians(225))),
    ((0.8, 0.8, 2.0), (0.0, math.radians(225), 0.0)),
])
def test_reference_in_another_voxel_order_is_scored_on_the_predictions_grid(tmp_path, spacing, angles):
    """Oblique grids, and grids rotated by 45° multiples, where the nearest world axis is a tie (nibabel's
    io_orientation then breaks the tie differently for the two grids)."""
    affine = make_affine(spacing, angles=angles, origin=(-40.0, 12.0, 7.0))
    shape = (20, 24, 12)
    ref = np.zeros(shape, np.uint8)
    ref[ball(shape, spacing, (7.0, 12.0, 11.0), 5.0)] = 1
    ref[ball(shape, spacing, (11.0, 8.0, 12.0), 3.0)] = 2
    pred = np.roll(ref, 1, axis=1)
    nib.save(nib.Nifti1Image(pred, affine), tmp_path / "pred.nii.gz")
    nib.save(nib.Nifti1Image(ref, affine), tmp_path / "ref.nii.gz")
    nib.save(nib.Nifti1Image(*reindexed(ref, affine)), tmp_path / "ref_other_order.nii.gz")
    same = evaluate_files(tmp_path / "pred.nii.gz", tmp_path / "ref.nii.gz", HIPPO_LABELS)
    other = evaluate_files(tmp_path / "pred.nii.gz", tmp_path / "ref_other_order.nii.gz", HIPPO_LABELS)
    assert same["reference_reordered"] is False and other["reference_reordered"] is True
    assert other["labels"] == same["labels"]
    for value in (1, 2):
        expected = independent_metrics(pred, ref, value, affine)
        assert other["labels"][str(value)]["dice"] == pytest.approx(expected["dice"])
        assert other["labels"][str(value)]["hd95_mm"] == pytest.approx(expected["hd95_mm"])
    # the re-indexed reference is voxel for voxel the original, on the prediction's affine
    moved = reorder_onto_grid(read_reference(tmp_path / "ref_other_order.nii.gz"),
                              Volume(pred, affine, source="pred"))
    np.testing.assert_array_equal(moved.array, ref)
    np.testing.assert_array_equal(moved.affine, affine)


@pytest.mark.parametrize("change", ["shift_half_voxel", "other_spacing"])
def test_reordering_never_resamples(tmp_path, change):
    """A grid that is not a reordering of the prediction's (shifted, other spacing) is still refused."""
    affine = make_affine((1.0, 1.0, 2.0))
    ref = np.zeros((16, 16, 8), np.uint8)
    ref[4:10, 4:10, 2:6] = 1
    other, other_affine = reindexed(ref, affine)
    if change == "shift_half_voxel":
        other_affine[:3, 3] += (0.5, 0.0, 0.0)
    else:
        other_affine[:3, 2] *= 1.5
    pred = Volume(ref, affine, source="pred")
    moved = reorder_onto_grid(Volume(other, other_affine, source="ref"), pred)
    assert moved.shape == other.shape and "reordered" not in moved.info
    with pytest.raises(GeometryError) as error:
        evaluate_volumes(pred, Volume(other, other_affine, source="ref"), {1: "x"})
    if change == "shift_half_voxel":  # the move is named: it read "shape (8, 16, 16) differs", the wrong problem
        assert str(error.value) == ("ref: its voxels are pred's grid in another axis order (shape (8, 16, 16) against "
                                    "(16, 16, 8)), but placed up to 0.5 mm away from where pred's are (tolerance "
                                    "0.01 mm); resample one onto the other's grid first; not scored")
    else:
        assert str(error.value) == ("ref: shape (8, 16, 16) differs from pred's (16, 16, 8), with voxels of "
                                    "(2, 1, 1.5) mm against (1, 1, 2) mm; not scored")


# ---------------------------------------------------------------- a reference cropped to a box of the grid
def sub_box_case(tmp_path) -> tuple:
    """A prediction and its full reference on an oblique grid of anisotropic voxels, and the reference cropped to
    the box [4:22, 3:20, 2:15] (as 3D Slicer saves a segmentation: the same lattice, the origin moved by whole
    voxels), every label inside the box."""
    affine = make_affine((0.8, 1.1, 2.0), (0.3, -0.2, 0.1), (12.5, -40.0, 7.0))
    ref = np.zeros((30, 26, 20), np.uint8)
    ref[6:15, 5:14, 4:10] = 1
    ref[15:20, 12:18, 8:13] = 2
    pred = np.roll(ref, 1, axis=0)
    pred[16:19, 13:16, 12:14] = 0
    crop = np.eye(4)
    crop[:3, 3] = (4, 3, 2)
    nib.save(nib.Nifti1Image(pred, affine), tmp_path / "pred.nii.gz")
    nib.save(nib.Nifti1Image(ref, affine), tmp_path / "ref_full.nii.gz")
    return affine, ref, pred, ref[4:22, 3:20, 2:15], affine @ crop


@pytest.mark.parametrize("order", ["same", "reindexed"])
def test_a_reference_cropped_to_a_box_of_the_grid_scores_as_the_uncropped_one(tmp_path, order):
    """Zero-padded onto the prediction's grid, nothing resampled: the same Dice, HD95, ASSD and volumes to the last
    digit; the record says where the box lay (in the prediction's voxel axes) and of what shape it was."""
    affine, _, _, cropped, cropped_affine = sub_box_case(tmp_path)
    if order == "reindexed":  # axes swapped and reversed as well as cropped
        cropped, cropped_affine = reindexed(cropped, cropped_affine)
    nib.save(nib.Nifti1Image(cropped, cropped_affine), tmp_path / "ref_box.nii.gz")
    full = evaluate_files(tmp_path / "pred.nii.gz", tmp_path / "ref_full.nii.gz", HIPPO_LABELS)
    box = evaluate_files(tmp_path / "pred.nii.gz", tmp_path / "ref_box.nii.gz", HIPPO_LABELS)
    assert full["labels"]["1"]["status"] == full["labels"]["2"]["status"] == "ok"
    assert full["labels"]["1"]["dice"] < 1 and full["labels"]["2"]["hd95_mm"] > 0
    assert json.dumps(box["labels"], sort_keys=True) == json.dumps(full["labels"], sort_keys=True)
    assert box["reference_sub_box"] == {"shape": list(cropped.shape), "offset_voxels": [4, 3, 2]}
    assert box["reference_reordered"] is (order == "reindexed")
    shape = "×".join(str(n) for n in cropped.shape)
    assert box["notes"] == [f"reference: a box of {shape} voxels of the prediction's grid (as 3D Slicer crops a "
                            "segmentation), its first voxel at voxel (4, 3, 2); zero-padded onto the grid (label 0 "
                            "outside the box), nothing resampled"]
    assert "reference_sub_box" not in full and "notes" not in full


def test_an_nrrd_reference_cropped_by_simpleitk_scores_as_the_uncropped_one(tmp_path):
    """SimpleITK's RegionOfInterest keeps the physical origin of the box, as Slicer's cropped `.seg.nrrd` does."""
    sitk = pytest.importorskip("SimpleITK", reason="SimpleITK (medseg's itk extra) is not installed")
    _, ref, pred, _, _ = sub_box_case(tmp_path)

    def image(array):  # numpy's order in SimpleITK is (k, j, i)
        made = sitk.GetImageFromArray(np.ascontiguousarray(array.transpose(2, 1, 0)))
        made.SetSpacing((0.7, 1.3, 2.5))
        made.SetOrigin((12.5, -40.25, 7.0))
        made.SetDirection(tuple(rotation_matrix((0.3, -0.2, 0.0)).ravel()))
        return made

    sitk.WriteImage(image(pred), str(tmp_path / "case_seg.nii.gz"))
    sitk.WriteImage(image(ref), str(tmp_path / "case_full.nrrd"))
    cropped = sitk.RegionOfInterest(image(ref), [18, 17, 13], [4, 3, 2])
    sitk.WriteImage(cropped, str(tmp_path / "case.seg.nrrd"))
    full = evaluate_files(tmp_path / "case_seg.nii.gz", tmp_path / "case_full.nrrd", HIPPO_LABELS)
    box = evaluate_files(tmp_path / "case_seg.nii.gz", tmp_path / "case.seg.nrrd", HIPPO_LABELS)
    assert full["labels"]["1"]["dice"] < 1 and full["labels"]["2"]["status"] == "ok"
    assert json.dumps(box["labels"], sort_keys=True) == json.dumps(full["labels"], sort_keys=True)
    assert box["reference_sub_box"] == {"shape": [18, 17, 13], "offset_voxels": [4, 3, 2]}


@pytest.mark.parametrize(("move", "problem"), [
    ((0.5, 0.0, 0.0), "on its voxel lattice, but its first voxel at 4.5 along i (not a whole number of voxels)"),
])
def test_a_box_off_the_lattice_is_refused_saying_how(tmp_path, move, problem, monkeypatch):
    """A fractional offset is refused in one line saying what differs, from the headers (nothing read); so is another
    voxel size. (A box reaching past the grid is told from its voxels: below.)"""
    import medseg.io.nifti as nifti

    _, _, _, cropped, cropped_affine = sub_box_case(tmp_path)
    index = np.eye(4)
    index[:3, 3] = move
    nib.save(nib.Nifti1Image(cropped, cropped_affine @ index), tmp_path / "ref_box.nii.gz")
    read = []
    real_read_nifti = nifti.read_nifti
    monkeypatch.setattr(nifti, "read_nifti", lambda path, *a, **k: read.append(str(path)) or
                        real_read_nifti(path, *a, **k))
    pred = tmp_path / "pred.nii.gz"
    with pytest.raises(GeometryError) as error:
        evaluate_files(pred, tmp_path / "ref_box.nii.gz", HIPPO_LABELS)
    assert str(error.value) == (f"{tmp_path / 'ref_box.nii.gz'}: shape (18, 17, 13) differs from {pred}'s (30, 26, 20)"
                                f": {problem.format(pred=pred)}; resample one onto the other's grid first; not scored")
    assert read == []
    with pytest.raises(GeometryError) as error:  # the same from arrays, as the reader gives them
        evaluate_volumes(Volume(np.zeros((30, 26, 20), np.uint8), cropped_affine @ np.linalg.inv(
            np.array([[1, 0, 0, 4], [0, 1, 0, 3], [0, 0, 1, 2], [0, 0, 0, 1.0]])), source="pred"),
                         Volume(cropped, cropped_affine @ index, source="ref"), HIPPO_LABELS)
    assert str(error.value) == (f"ref: shape (18, 17, 13) differs from pred's (30, 26, 20): "
                                f"{problem.format(pred='pred')}; resample one onto the other's grid first; not scored")
    other_size = cropped_affine.copy()
    other_size[:3, 2] *= 1.5
    nib.save(nib.Nifti1Image(cropped, other_size), tmp_path / "ref_box.nii.gz")
    with pytest.raises(GeometryError) as error:
        evaluate_files(pred, tmp_path / "ref_box.nii.gz", HIPPO_LABELS)
    assert str(error.value) == (f"{tmp_path / 'ref_box.nii.gz'}: shape (18, 17, 13) differs from {pred}'s "
                                "(30, 26, 20), with voxels of (0.8, 1.1, 3) mm against (0.8, 1.1, 2) mm; not scored")


@pytest.mark.parametrize(("move", "offset", "inside"), [
    ((0.0, 0.0, 6.0), [4, 3, 8], (18, 17, 12)),  # 1 voxel beyond the last k
    ((-5.0, 0.0, -4.0), [-1, 3, -2], (17, 17, 11)),  # 1 before the first i, 2 before the first k
])
def test_a_box_reaching_past_the_grid_is_cropped_where_label_0_lies_there(tmp_path, move, offset, inside):
    """A box of the lattice reaching past the prediction's grid whose voxels out there are all 0 is cropped to the
    grid and zero-padded: the same figures as the same labels written on the grid; the record counts the voxels
    cropped off. One labelled voxel out there and it is refused in one line counting them."""
    affine, _, _, cropped, cropped_affine = sub_box_case(tmp_path)
    index = np.eye(4)
    index[:3, 3] = move
    nib.save(nib.Nifti1Image(cropped, cropped_affine @ index), tmp_path / "ref_box.nii.gz")
    on_grid = np.zeros((30, 26, 20), np.uint8)  # the box's voxels that lie on the grid, written there by hand
    low = [max(0, -o) for o in offset]
    part = cropped[tuple(slice(lo, lo + n) for lo, n in zip(low, inside))]
    on_grid[tuple(slice(o + lo, o + lo + n) for o, lo, n in zip(offset, low, inside))] = part
    assert np.count_nonzero(part) == np.count_nonzero(cropped)  # nothing labelled was cropped off
    nib.save(nib.Nifti1Image(on_grid, affine), tmp_path / "ref_on_grid.nii.gz")
    pred = tmp_path / "pred.nii.gz"
    box = evaluate_files(pred, tmp_path / "ref_box.nii.gz", HIPPO_LABELS)
    full = evaluate_files(pred, tmp_path / "ref_on_grid.nii.gz", HIPPO_LABELS)
    assert full["labels"]["1"]["ref_volume_ml"] > 0 and full["labels"]["2"]["ref_volume_ml"] > 0
    assert json.dumps(box["labels"], sort_keys=True) == json.dumps(full["labels"], sort_keys=True)
    outside = 18 * 17 * 13 - math.prod(inside)
    assert box["reference_sub_box"] == {"shape": [18, 17, 13], "offset_voxels": offset,
                                        "voxels_outside_grid": outside}
    assert f"its {outside} voxels outside the grid, all label 0, cropped off; zero-padded" in box["notes"][0]
    labelled = cropped.copy()  # two labelled voxels in the part of the box past the grid
    corner = tuple(0 if o < 0 else n - 1 for o, n in zip(offset, cropped.shape))
    labelled[corner] = 1
    labelled[corner[0], corner[1] - 1, corner[2]] = 2
    nib.save(nib.Nifti1Image(labelled, cropped_affine @ index), tmp_path / "ref_box.nii.gz")
    reach = ("extends 1 voxel beyond its last k" if offset[2] > 0 else
             "extends 1 voxel before its first i and 2 voxels before its first k")
    with pytest.raises(GeometryError) as error:
        evaluate_files(pred, tmp_path / "ref_box.nii.gz", HIPPO_LABELS)
    assert str(error.value) == (f"{tmp_path / 'ref_box.nii.gz'}: shape (18, 17, 13) differs from {pred}'s (30, 26, 20)"
                                f": on its voxel lattice, but {reach}, and 2 of its labelled voxels lie there, outside "
                                "the grid; not scored")


def test_a_box_past_the_grid_holding_over_twice_its_voxels_is_refused_unread(tmp_path, monkeypatch):
    """A box of the lattice that reaches past the grid is read to tell whether its voxels out there are all 0; one
    holding over twice the grid's voxels (a 640³ reference of a 40³ prediction was read whole: 352 MB, charged
    nowhere) is refused from its header, nothing read. One with a margin (34×30×22 around 30×26×20) is read."""
    import medseg.io.nifti as nifti

    affine, _, _, _, _ = sub_box_case(tmp_path)
    margin = np.zeros((34, 30, 22), np.uint8)  # 2 voxels past the grid each side: 22 440 voxels against 15 600
    index = np.eye(4)
    index[:3, 3] = (-2, -2, -1)
    nib.save(nib.Nifti1Image(margin, affine @ index), tmp_path / "ref_margin.nii.gz")
    pred = tmp_path / "pred.nii.gz"
    scores = evaluate_files(pred, tmp_path / "ref_margin.nii.gz", HIPPO_LABELS)
    assert scores["reference_sub_box"]["voxels_outside_grid"] == 22440 - 15600
    wide = np.zeros((64, 26, 20), np.uint8)  # 34 voxels past the last i: 33 280 voxels, over twice 15 600
    index[:3, 3] = (0, 0, 0)
    nib.save(nib.Nifti1Image(wide, affine @ index), tmp_path / "ref_wide.nii.gz")
    read = []
    real_read_nifti = nifti.read_nifti
    monkeypatch.setattr(nifti, "read_nifti", lambda path, *a, **k: read.append(str(path)) or
                        real_read_nifti(path, *a, **k))
    with pytest.raises(GeometryError) as error:
        evaluate_files(pred, tmp_path / "ref_wide.nii.gz", HIPPO_LABELS)
    assert str(error.value) == (
        f"{tmp_path / 'ref_wide.nii.gz'}: shape (64, 26, 20) differs from {pred}'s (30, 26, 20): on its voxel "
        "lattice, but extends 34 voxels beyond its last i, holding more than 2 times that grid's voxels (33280 "
        "against 15600): not read; not scored")
    assert str(tmp_path / "ref_wide.nii.gz") not in read


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int32])
def test_a_wide_box_is_padded_in_the_smallest_label_type(tmp_path, dtype):
    """A caller's float64 box of 0.4 MB was padded as float64 onto the prediction's grid (1.26 GB for 512×512×600
    voxels where uint8 takes 157 MB): padded in the smallest unsigned type holding its labels, the scores unchanged;
    a box of fractional values keeps its own type."""
    affine, ref, pred, cropped, cropped_affine = sub_box_case(tmp_path)
    placed = place_onto_grid(Volume(cropped.astype(dtype), cropped_affine, source="ref"),
                             Volume(pred, affine, source="pred"))
    assert placed.array.dtype == np.uint8 and placed.info["sub_box"]["offset_voxels"] == [4, 3, 2]
    assert np.array_equal(placed.array, ref)
    scores = evaluate_volumes(Volume(pred, affine), Volume(cropped.astype(dtype), cropped_affine), HIPPO_LABELS)
    full = evaluate_volumes(Volume(pred, affine), Volume(ref, affine), HIPPO_LABELS)
    assert json.dumps(jsonable(scores["labels"]), sort_keys=True) == json.dumps(jsonable(full["labels"]),
                                                                                 sort_keys=True)
    big = place_onto_grid(Volume(cropped.astype(dtype) * 300, cropped_affine), Volume(pred, affine))
    assert big.array.dtype == np.uint16 and int(big.array.max()) == 600
    fractional = place_onto_grid(Volume(cropped * 0.5, cropped_affine), Volume(pred, affine))
    assert fractional.array.dtype == np.float64 and float(fractional.array.max()) == 1.0


def test_the_grid_tolerance_scales_down_with_tiny_voxels():
    """On a 5 µm grid a fixed 0.01 mm passed a reference two voxels off and scored it index by index (Dice 0.93
    for the same physical box)."""
    from medseg.grid_match import grid_tolerance_mm

    affine = np.diag([0.005, 0.005, 0.005, 1.0])
    shifted = affine.copy()
    shifted[0, 3] = 0.0099  # 1.98 voxels
    pred = np.zeros((60, 60, 20), np.uint8)
    pred[10:40, 10:40, 5:15] = 1
    ref = np.zeros_like(pred)
    ref[8:38, 10:40, 5:15] = 1  # the same box in world space, on the shifted grid
    assert grid_tolerance_mm(affine) == pytest.approx(0.0005) and grid_tolerance_mm(np.eye(4)) == 0.01
    with pytest.raises(GeometryError, match=r"ref: its affine places voxels up to 0.0099 mm away from where pred's "
                                            r"does \(tolerance 0.0005 mm\)"):
        evaluate_volumes(Volume(pred, affine, source="pred"), Volume(ref, shifted, source="ref"), {1: "box"})
    float_noise = affine + 1e-9  # what a float32 header round trip leaves is still one grid
    assert evaluate_volumes(Volume(pred, affine, source="pred"), Volume(pred, float_noise, source="ref"),
                            {1: "box"})["labels"]["1"]["dice"] == 1.0


def test_the_part_of_a_box_on_the_grid_is_one_pair_of_slices():
    """A box's part on the grid, for scoring's placement and the QA report's border read alike: a box 2 voxels
    before the grid's first i and 3 past its last k, one inside it, and one that misses it."""
    from medseg.grid_match import box_on_grid

    assert box_on_grid([-2, 1, 5], (6, 4, 8), (10, 10, 10)) == (
        (slice(2, 6), slice(0, 4), slice(0, 5)), (slice(0, 4), slice(1, 5), slice(5, 10)))
    assert box_on_grid([1, 2, 3], (4, 4, 4), (10, 10, 10)) == (
        (slice(0, 4),) * 3, (slice(1, 5), slice(2, 6), slice(3, 7)))
    part, region = box_on_grid([-9, 0, 0], (4, 4, 4), (10, 10, 10))
    grid = np.zeros((10, 10, 10))
    assert np.ones((4, 4, 4))[part].size == 0 and grid[region].size == 0
