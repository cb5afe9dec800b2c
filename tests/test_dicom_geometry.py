"""Slice order, spacing, gaps, tilt and the affine of synthetic DICOM series, checked pixel by pixel against
the DICOM definition of where each pixel lies (and against dcm2niix)."""

from __future__ import annotations

import math
import subprocess

import nibabel as nib
import numpy as np
import pydicom
import pytest
from conftest import run_cli
from dicom_factory import (
    AXIAL,
    dcm2niix_path,
    make_series,
    slice_positions,
    stored_values,
    to_reference_grid,
    write_series,
)

from medseg.errors import DicomError
from medseg.io.dicom import read_dicom_series, volume_image
from medseg.io.dicom_geometry import FrameGeometry, GeometryProblem, series_geometry
from medseg.io.nifti import labels_image, read_nifti

SHAPE = (12, 9, 7)  # columns, rows, slices


def dicom_pixel_ras(ds: pydicom.Dataset, row: int, column: int) -> np.ndarray:
    """Where pixel (row, column) of ``ds`` lies, by DICOM PS3.3 C.7.6.2.1.1, in RAS+ mm."""
    position = np.asarray(ds.ImagePositionPatient, dtype=float)
    orientation = np.asarray(ds.ImageOrientationPatient, dtype=float)
    between_rows, between_columns = (float(v) for v in ds.PixelSpacing)
    lps = position + orientation[:3] * between_columns * column + orientation[3:] * between_rows * row
    return lps * np.array([-1.0, -1.0, 1.0])


def assert_volume_matches_files(volume, paths) -> None:
    """Every file's pixels are one slice of the volume, unflipped, and every pixel sits where DICOM says."""
    columns, rows, slices = volume.shape
    seen = set()
    for path in paths:
        ds = pydicom.dcmread(path)
        expected = ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        matches = [k for k in range(slices) if np.array_equal(volume.array[:, :, k].T, expected.astype(np.float32))]
        assert len(matches) == 1, f"{path.name}: found in slices {matches}"
        k = matches[0]
        seen.add(k)
        for row, column in ((0, 0), (rows - 1, 0), (0, columns - 1), (rows // 2, columns // 3)):
            world = volume.affine @ np.array([column, row, k, 1.0])
            np.testing.assert_allclose(world[:3], dicom_pixel_ras(ds, row, column), atol=1e-6)
    assert seen == set(range(slices))


def rotation(axis, degrees: float) -> np.ndarray:
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    a = math.radians(degrees)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(a) * k + (1 - math.cos(a)) * k @ k


@pytest.mark.parametrize("orientation", [
    AXIAL,
    (0.0, 1.0, 0.0, 0.0, 0.0, -1.0),  # sagittal
    (1.0, 0.0, 0.0, 0.0, 0.0, -1.0),  # coronal
    (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0),  # axial, rows running right-to-left (a "RAS-like" DICOM)
    tuple(np.concatenate([rotation((1, 2, 3), 27) @ [1, 0, 0], rotation((1, 2, 3), 27) @ [0, 1, 0]])),  # oblique
], ids=["axial", "sagittal", "coronal", "flipped-axial", "oblique"])
def test_every_pixel_lies_where_dicom_says(tmp_path, orientation):
    values = stored_values(SHAPE)
    paths = write_series(tmp_path / "s", values, slice_positions(SHAPE[2], 2.5, orientation=orientation),
                         orientation=orientation, pixel_spacing=(0.8, 0.6), slope=2.0, intercept=-1024.0)
    volume = read_dicom_series(tmp_path / "s")
    assert volume.shape == SHAPE
    np.testing.assert_allclose(volume.spacing_mm, (0.6, 0.8, 2.5), atol=1e-9)
    assert volume.array.dtype == np.float32
    assert_volume_matches_files(volume, paths)
    np.testing.assert_array_equal(volume.array, values.astype(np.float32) * 2.0 - 1024.0)  # slices ascending
    assert volume.info["flags"] == []


def test_descending_positions_are_sorted_by_the_normal_not_by_instance_number(tmp_path):
    values = stored_values(SHAPE, seed=1)
    positions = slice_positions(SHAPE[2], -3.0)  # instance 1 is the highest slice
    paths = write_series(tmp_path / "s", values, positions)
    volume = read_dicom_series(tmp_path / "s")
    assert_volume_matches_files(volume, paths)
    np.testing.assert_array_equal(volume.array, values[:, :, ::-1].astype(np.float32) - 1024.0)
    assert volume.affine[2, 2] == pytest.approx(3.0)
    assert volume.affine[2, 3] == pytest.approx(30.0 - 3.0 * (SHAPE[2] - 1))


def test_spacing_comes_from_positions_not_slice_thickness(tmp_path):
    write_series(tmp_path / "s", stored_values(SHAPE), slice_positions(SHAPE[2], 1.25))  # SliceThickness is 99
    volume = read_dicom_series(tmp_path / "s")
    assert volume.spacing_mm[2] == pytest.approx(1.25, abs=1e-9)


def test_gap_is_refused_naming_the_missing_slices(tmp_path):
    values = stored_values((8, 8, 8))
    positions = slice_positions(8, 2.0)
    keep = [0, 1, 2, 4, 5, 6, 7]  # slice 3 missing
    paths = write_series(tmp_path / "s", values[:, :, keep], [positions[k] for k in keep])
    with pytest.raises(DicomError, match=r"missing slices: a step of 4\.000 mm .*\(1 slice missing") as info:
        read_dicom_series(tmp_path / "s")
    assert str(tmp_path / "s") in str(info.value) and "\n" not in str(info.value)
    # the files either side of the gap are named (the file names are shuffled: positions alone did not find them)
    assert str(info.value).endswith(f"gap): {paths[2].name} and {paths[3].name}")


def test_uneven_spacing_is_refused(tmp_path):
    values = stored_values((8, 8, 6))
    positions = [np.array([0.0, 0.0, z]) for z in (0.0, 2.0, 4.0, 6.7, 8.7, 10.7)]
    paths = write_series(tmp_path / "s", values, positions)
    with pytest.raises(DicomError, match="uneven slice spacing: steps from 2.000 to 2.700 mm") as info:
        read_dicom_series(tmp_path / "s")
    assert str(info.value).endswith(f"(positions 4.000 and 6.700 mm): {paths[2].name} and {paths[3].name}")


def test_a_slice_off_the_line_is_named(tmp_path):
    """Evenly spaced along the normal, but one slice shifted in its plane (a table shift): named by its file."""
    values = stored_values((8, 8, 6))
    positions = slice_positions(6, 2.0)
    positions[4] = positions[4] + np.array([1.5, 0.0, 0.0])
    paths = write_series(tmp_path / "s", values, positions)
    with pytest.raises(DicomError, match="slice positions do not lie on one line") as info:
        read_dicom_series(tmp_path / "s")
    assert str(info.value).endswith(f"(varying tilt or table shifts): {paths[4].name}")


def test_gantry_tilt_is_kept_exactly_with_a_sheared_affine(tmp_path):
    tilt = 15.0
    step = 2.0
    shift = (0.0, step * math.tan(math.radians(tilt)), 0.0)  # each slice moves along y (LPS) as z advances
    values = stored_values(SHAPE, seed=2)
    paths = write_series(tmp_path / "s", values, slice_positions(SHAPE[2], step, inplane_shift=shift),
                         extra={"GantryDetectorTilt": tilt})
    volume = read_dicom_series(tmp_path / "s")
    assert "tilt" in volume.info["flags"]
    assert volume.info["tilt_deg"] == pytest.approx(tilt, abs=1e-3)
    assert_volume_matches_files(volume, paths)
    # the third column is the true step between slice centres: not perpendicular to the slices
    np.testing.assert_allclose(volume.affine[:3, 2], [0.0, -shift[1], step], atol=1e-9)
    # written with the shear in the sform; the qform (which cannot shear) holds the grid ITK reads the series on:
    # the in-plane axes, the slices along their normal at the distance between slice centres. With qform code 0, as
    # before, ITK-based viewers refused the file ("ITK only supports orthonormal direction cosines")
    itk_grid = volume.affine.copy()
    itk_grid[:3, 2] = [0.0, 0.0, math.hypot(step, shift[1])]  # the normal here is +z (RAS); 2.0706 mm
    for image in (volume_image(volume), labels_image(np.zeros(SHAPE, np.uint8), volume)):
        np.testing.assert_allclose(image.header.get_sform(), volume.affine, atol=1e-5)
        assert image.header["sform_code"] == 1 and image.header["qform_code"] == 1
        np.testing.assert_allclose(image.header.get_qform(), itk_grid, atol=1e-5)
        np.testing.assert_allclose(nib.Nifti1Image.from_bytes(image.to_bytes()).affine, volume.affine, atol=1e-5)
        path = tmp_path / "tilted.nii.gz"
        nib.save(image, path)
        again = read_nifti(path)  # the sform, exactly, and no note that the two disagree: they do so on purpose
        np.testing.assert_allclose(again.affine, volume.affine, atol=1e-5)
        assert "qform_note" not in again.info


def test_a_reference_drawn_in_an_itk_viewer_over_a_tilted_series_is_scored(tmp_path):
    """ITK-SNAP or Slicer show a tilted series unsheared (slices along their normal) and save a label drawn over it
    on that grid: the same voxels as medseg's segmentation, placed without the tilt. It was refused as placed up
    to 2.7 mm away; it is scored on the segmentation's exact grid, with a note. Any other grid is still refused."""
    from medseg.errors import GeometryError
    from medseg.io.nifti import qform_for
    from medseg.metrics import evaluate_volumes
    from medseg.volume import Volume

    step, shift = 2.0, 2.0 * math.tan(math.radians(15.0))
    positions = slice_positions(SHAPE[2], step, inplane_shift=(0.0, shift, 0.0))
    write_series(tmp_path / "s", stored_values(SHAPE, seed=2), positions, extra={"GantryDetectorTilt": 15.0})
    volume = read_dicom_series(tmp_path / "s")
    labels = np.zeros(SHAPE, np.uint8)
    labels[3:9, 4:10, 2:6] = 1
    untilted, _ = qform_for(volume.affine)
    record = evaluate_volumes(Volume(labels, volume.affine, source="seg.nii.gz"),
                              Volume(labels.copy(), untilted, source="itksnap.nii.gz"), {1: "lesion"})
    assert record["labels"]["1"]["dice"] == 1.0 and record["labels"]["1"]["hd95_mm"] == 0.0
    assert any("ITK-SNAP" in note for note in record["notes"])
    moved = untilted.copy()
    moved[:3, 3] += [0.0, 0.0, 1.0]  # another grid: refused as before
    with pytest.raises(GeometryError, match="itksnap.nii.gz: its affine places voxels up to"):
        evaluate_volumes(Volume(labels, volume.affine, source="seg.nii.gz"),
                         Volume(labels.copy(), moved, source="itksnap.nii.gz"), {1: "lesion"})


def test_positions_rounded_to_hundredths_give_an_unsheared_grid_without_tilt():
    """An oblique MR stack of 60 × 0.625 mm slices whose positions are written to 0.01 mm. Before, the rounding
    noise's in-plane part stayed in the affine: a shear ITK refuses to read (and no qform), or a false "tilt"
    flag on an MR, in about two trials of five."""
    from medseg.io.nifti import is_sheared

    turn = rotation((1.0, 2.0, 3.0), 17.0)
    orientation = tuple(np.round(np.concatenate([turn[:, 0], turn[:, 1]]), 6))
    row, col = np.asarray(orientation[:3]), np.asarray(orientation[3:])
    normal = np.cross(row, col)
    rng = np.random.default_rng(0)
    for _ in range(100):
        origin = rng.uniform(-100, 100, 3)
        positions = [np.round(origin + k * 0.625 * normal, 2) for k in range(60)]
        frames = [FrameGeometry(tuple(p), orientation, (0.8, 0.6), 16, 16) for p in positions]
        geometry = series_geometry(frames)
        assert geometry.flags == [] and geometry.tilt_deg == 0.0
        assert not is_sheared(geometry.affine)
        lps = geometry.affine[:3, 3] * [-1, -1, 1], geometry.affine[:3, 2] * [-1, -1, 1]
        slice_origins = lps[0] + np.arange(60)[:, None] * lps[1]
        assert np.abs(slice_origins - np.array(positions)[geometry.order]).max() < 0.02  # within the rounding
    # a real tilt of a fraction of a degree is still one
    tilted = [FrameGeometry(tuple(np.round(k * 0.625 * normal + k * 0.625 * math.tan(math.radians(0.3)) * col, 2)),
                            orientation, (0.8, 0.6), 16, 16) for k in range(60)]
    geometry = series_geometry(tilted)
    assert geometry.flags == ["tilt"] and geometry.tilt_deg == pytest.approx(0.3, abs=0.02)


def test_four_d_series_is_refused(tmp_path):
    values = stored_values((6, 6, 8))
    positions = slice_positions(4, 2.0) * 2  # two time points at each of four positions
    write_series(tmp_path / "s", values, positions)
    with pytest.raises(DicomError, match=r"8 images at 4 positions \(2 per position\): a 4D series"):
        read_dicom_series(tmp_path / "s")


def test_geometry_without_positions_is_a_problem():
    frame = FrameGeometry(None, AXIAL, (1.0, 1.0), 4, 4)
    with pytest.raises(GeometryProblem, match="without ImagePositionPatient"):
        series_geometry([frame, frame])
    single = FrameGeometry((0.0, 0.0, 0.0), AXIAL, (1.0, 1.0), 4, 4)
    with pytest.raises(GeometryProblem, match="a single slice"):
        series_geometry([single])


@pytest.mark.skipif(dcm2niix_path() is None, reason="dcm2niix is not installed (pip install dcm2niix)")
@pytest.mark.parametrize("orientation", [
    (0.0, 1.0, 0.0, 0.0, 0.0, -1.0),
    tuple(np.concatenate([rotation((3, -1, 2), 20) @ [1, 0, 0], rotation((3, -1, 2), 20) @ [0, 1, 0]])),
], ids=["sagittal", "oblique"])
def test_synthetic_series_equals_dcm2niix(tmp_path, orientation):
    values = stored_values(SHAPE, seed=3)
    write_series(tmp_path / "s", values, slice_positions(SHAPE[2], 3.0, orientation=orientation),
                 orientation=orientation, pixel_spacing=(0.75, 0.5))
    out = tmp_path / "d2n"
    out.mkdir()
    subprocess.run([dcm2niix_path(), "-z", "n", "-b", "n", "-f", "ref", "-o", str(out), str(tmp_path / "s")],
                   check=True, capture_output=True)
    reference = nib.load(out / "ref.nii")
    volume = read_dicom_series(tmp_path / "s")
    ordered, affine_diff = to_reference_grid(volume.array, volume.affine, reference)
    assert affine_diff < 1e-4
    np.testing.assert_array_equal(ordered, reference.get_fdata(dtype=np.float32))


def test_a_first_file_with_another_pixel_spacing_is_the_one_named(tmp_path, capsys):
    """The odd image is named against the most common spacing, not against the first file: when the first file is
    the odd one, naming it and the next (a good one) sent the user to the wrong file. A second odd spacing is said
    as such ("the others" were not all at the common one)."""
    _, paths = make_series(tmp_path / "dcm", seed=6)
    first, second, third = sorted(paths)[:3]

    def convert_with(path, spacing):
        dataset = pydicom.dcmread(path)
        dataset.PixelSpacing = spacing
        dataset.save_as(path)
        code, _, err = run_cli(["convert", str(tmp_path / "dcm"), str(tmp_path / "out.nii.gz")], capsys)
        assert code == 1 and len(err.strip().splitlines()) == 1
        return err

    err = convert_with(first, [0.9, 0.6])
    assert (f"images with different pixel spacings: 1 of {len(paths)} at 0.9 × 0.6 mm (the others 0.8 × 0.6 mm); "
            f"the first such file: {first.name}") in err, err
    assert second.name not in err
    err = convert_with(third, [0.7, 0.6])
    assert (f"images with different pixel spacings: 2 of {len(paths)} off the most common 0.8 × 0.6 mm, at 2 other "
            f"spacings (the first at 0.9 × 0.6 mm); the first such file: {first.name}") in err, err
