"""The overlay's image read from the input (medseg.report.overlay): only the crop of a NIfTI file, only the
slices drawn of a DICOM series, the first channel of a multi-modal input, the contrast window, bad inputs noted."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from report_cases import (
    perturb,
    phantom,
    write_case,
    write_case_arrays,
)

from medseg.io.atomic import sha256_of
from medseg.report.build import build_report


def _crop_case(tmp_path: Path, layout: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, Path]:
    """Labels, affine, reference and the input file of an overlay case: CT-like int16 voxels with a slope and an
    intercept (float32 for ``middle``), labels in the middle of the grid, at its faces, on a permuted and flipped
    grid, or none."""
    image, labels, affine = phantom(3, shape=(60, 64, 40))
    reference = perturb(labels, "erode")
    if layout in ("middle", "permuted"):
        labels, reference = np.roll(labels, (20, 20, 10), (0, 1, 2)), np.roll(reference, (20, 20, 10), (0, 1, 2))
    elif layout == "edge":  # the crop is clipped at the low faces (the ball) and the high ones (a block)
        labels[50:, 30:40, 36:] = reference[50:, 30:40, 36:] = 2
    elif layout == "empty":
        labels, reference = np.zeros_like(labels), None
    if layout == "permuted":  # file axes (k, i, j), i and k reversed
        image, labels, reference = (np.ascontiguousarray(a.transpose(2, 0, 1)[::-1, ::-1]) for a in
                                    (image, labels, reference))
        affine = affine[:, [2, 0, 1, 3]]
        affine[:3, :2] *= -1
        affine[:3, 3] -= affine[:3, 0] * (image.shape[0] - 1) + affine[:3, 1] * (image.shape[1] - 1)
    path = tmp_path / ("input.nii" if layout == "permuted" else "input.nii.gz")
    if layout == "middle":
        nib.save(nib.Nifti1Image(image, affine), path)
    else:
        stored = nib.Nifti1Image(np.round(image * 4 - 100).astype(np.int16), affine)
        stored.header.set_slope_inter(0.25, 25.0)
        nib.save(stored, path)
    return labels, affine, reference, path


@pytest.mark.parametrize("layout", ["middle", "edge", "permuted", "empty"])
def test_the_overlay_reads_the_crop_of_a_nifti_input_and_draws_what_reading_it_whole_drew(tmp_path, monkeypatch,
                                                                                        layout):
    """A NIfTI input on the segmentation's grid was read whole as float32 (0.8 GB of a 512×512×800 CT) to draw
    three slices of the crop around the labels. Only the crop is read from the file now (a slab at a time), and the
    picture is the same, byte for byte."""
    from nibabel import fileslice
    from nibabel.arrayproxy import ArrayProxy

    import medseg.io.images as images
    from medseg.io.images import read_image
    from medseg.io.nifti import load_image
    from medseg.report.overlay import CaseArrays, ImageFile, render_overlay

    labels, affine, reference, path = _crop_case(tmp_path, layout)
    legend = [("1", "ball"), ("2", "box")]
    whole = CaseArrays(labels, affine, read_image(path).array, reference)
    expected = [render_overlay(whole, legend, focus) for focus in ("1", "2", None)]
    expected.append(render_overlay(whole, legend, "1", focus_faces=("i-",)))

    def refused(*args, **kwargs):
        raise AssertionError("the whole image was read")

    read, real_fileslice = [], fileslice.fileslice

    def sliced(fileobj, slicer, *args, **kwargs):
        read.append(slicer)
        return real_fileslice(fileobj, slicer, *args, **kwargs)

    monkeypatch.setattr(images, "read_image", refused)
    monkeypatch.setattr(ArrayProxy, "get_unscaled", refused)
    monkeypatch.setattr(ArrayProxy, "__array__", refused)
    monkeypatch.setattr(ArrayProxy, "_get_unscaled", refused)
    monkeypatch.setattr(fileslice, "fileslice", sliced)
    part = CaseArrays(labels, affine, ImageFile(path, load_image(path, mmap=False)), reference)
    drawn = [render_overlay(part, legend, focus) for focus in ("1", "2", None)]
    drawn.append(render_overlay(part, legend, "1", focus_faces=("i-",)))
    assert drawn == expected and part.notes == []
    sizes = [np.prod([len(range(*s.indices(n))) for s, n in zip(slicer, labels.shape)]) for slicer in read]
    # float voxels (the middle case) are read twice through the box: their window comes from two readings
    assert len(read) == (8 if layout == "middle" else 4) and max(sizes) < labels.size
    if layout == "middle":  # the crop around the labels: 51×46×25 voxels of 60×64×40
        assert sorted(set(sizes)) == [51 * 46 * 25]


def test_the_window_from_counts_of_stored_values_is_numpys_percentile_bit_for_bit(tmp_path):
    """The contrast window of an image stored as integers is found from counts of its stored values, scaled as the
    file says (a negative slope reverses their order), and that of float voxels from counts of their bits: the same
    numbers as ``np.percentile`` of the float32 voxels, which it held in a copy of the crop."""
    from medseg.io.nifti import load_image, scaled_float32
    from medseg.report.overlay_image import _FloatOrder, _percentiles_of_counts, _window, _WindowValues

    rng = np.random.default_rng(5)
    for n in (1, 2, 3, 7, 200, 5000):
        values = (rng.integers(-40, 40, n) * rng.uniform(0.01, 5)).astype(np.float32)
        distinct, counts = np.unique(values, return_counts=True)
        got = _percentiles_of_counts(distinct, counts, (0.5, 99.5))
        assert got.tobytes() == np.percentile(values, [0.5, 99.5]).tobytes()
        # float voxels: two readings of their slabs, counting the top and then the low 16 bits of sortable keys
        for spread in (1.0, 1e-30, 1e30):
            floats = (rng.normal(size=n) * spread).astype(np.float32)
            floats[rng.random(n) < 0.3] = floats[0]  # repeated values
            order = _FloatOrder()
            for reading in (order.first, order.second):
                for start in range(0, n, 37):
                    reading(floats[start:start + 37])
            assert order.percentiles((0.5, 99.5)).tobytes() == np.percentile(floats, [0.5, 99.5]).tobytes()
    for dtype, slope, inter in (("int16", 0.37, -1024.3), ("uint8", -2.5, 7.0), ("int8", 1.0, 0.0),
                                ("uint16", 0.001, 3.0), ("int32", 0.5, 1.0), ("float32", 1.0, 0.0)):
        stored = (rng.random((13, 11, 9)) * 250 - (0 if dtype.startswith("u") else 120)).astype(dtype)
        image = nib.Nifti1Image(stored, np.eye(4))
        image.header.set_slope_inter(slope, inter)
        nib.save(image, tmp_path / f"{dtype}.nii")
        loaded = load_image(tmp_path / f"{dtype}.nii", mmap=False)
        floats = loaded.get_fdata(dtype=np.float32)
        box = (slice(2, 12), slice(0, 11), slice(3, 8))
        window = _WindowValues()
        for start in range(3, 8, 2):  # slabs along the last axis
            window.add(stored[2:12, :, start:min(start + 2, 8)], floats[2:12, :, start:min(start + 2, 8)])
        if window.second_reading:
            for start in range(3, 8, 2):
                window.add_again(floats[2:12, :, start:min(start + 2, 8)])
        expected = np.percentile(floats[box], [0.5, 99.5])
        scaled = window.percentiles(lambda _, part, proxy=loaded.dataobj: scaled_float32(part, proxy))
        assert scaled == (expected[0], expected[1]), dtype
        assert _window(floats, list(box)) == (expected[0], expected[1]), dtype


def _dicom_series_case(tmp_path: Path, orientation=None):
    """A 44×40×40 int16 series whose two halves are rescaled differently, and a label of a few slices in its
    middle on its grid: (folder, grid, labels)."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    import pydicom
    from dicom_factory import AXIAL, slice_positions, stored_values, write_series

    from medseg.io.dicom import read_dicom_grid

    orientation = orientation or AXIAL
    folder = tmp_path / "series"
    paths = write_series(folder, stored_values((44, 40, 40), seed=3), slice_positions(40, 2.0, orientation=orientation),
                         orientation=orientation, slope=0.5, intercept=-1024.0)
    for path in paths[20:]:  # a second rescaling: the window counts stored values under each
        dataset = pydicom.dcmread(path)
        dataset.RescaleSlope, dataset.RescaleIntercept = 1.25, -1000.5
        dataset.save_as(path)
    grid = read_dicom_grid(folder)
    labels = np.zeros(grid.shape, np.uint8)
    labels[14:26, 12:24, 18:22] = 1
    labels[20:24, 16:20, 19:21] = 2
    return folder, grid, labels


@pytest.mark.parametrize("layout", ["axial", "sagittal", "multi-frame"])
def test_the_overlay_decodes_only_the_slices_of_a_dicom_input_it_draws_and_draws_what_reading_it_whole_drew(
        tmp_path, monkeypatch, layout):
    """A DICOM input (a SEG's source series, or the input of a NIfTI prediction) was read whole as float32 to draw
    three slices of the crop around the labels: 1.2 GB for a 512×512×600 CT. Its files are now decoded one at a
    time, only those of the crop's slices, with no volume allocated, and the overlay is the same, byte for byte."""
    import highdicom as hd
    import pydicom
    from highdicom.legacy import LegacyConvertedEnhancedCTImage

    import medseg.io.dicom as dicom
    from medseg.io.dicom import read_dicom_grid, read_dicom_series
    from medseg.report.overlay import CaseArrays, SeriesImage, render_overlay

    sagittal = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
    folder, grid, labels = _dicom_series_case(tmp_path, sagittal if layout == "sagittal" else None)
    if layout == "multi-frame":  # one file of 40 frames, rescaled per frame
        enhanced = LegacyConvertedEnhancedCTImage([pydicom.dcmread(p) for p in grid.dicom.paths],
                                                  series_instance_uid=hd.UID(), series_number=9,
                                                  sop_instance_uid=hd.UID(), instance_number=1)
        folder = tmp_path / "multi"
        folder.mkdir()
        enhanced.save_as(folder / "ct.dcm")
        grid = read_dicom_grid(folder)
    names = [("1", "one"), ("2", "two")]
    whole = render_overlay(CaseArrays(labels, grid.affine, image=read_dicom_series(folder).array), names, "1")
    decode = pydicom.Dataset.pixel_array
    decoded = []

    def counted(dataset):
        decoded.append(int(dataset.InstanceNumber))
        return decode.fget(dataset)

    def no_volume(*args):
        raise AssertionError("the whole series allocated")

    monkeypatch.setattr(pydicom.Dataset, "pixel_array", property(counted))
    monkeypatch.setattr(dicom, "_volume_array", no_volume)
    arrays = CaseArrays(labels, grid.affine, image=SeriesImage(grid, None))
    assert render_overlay(arrays, names, "1") == whole and arrays.notes == []
    # the crop spans slices 10-29 of 40 (4 labelled and a 15 mm margin of 2 mm slices): each decoded once
    assert sorted(decoded) == ([1] if layout == "multi-frame" else list(range(11, 31)))


def test_a_dicom_input_rescaled_slice_by_slice_is_windowed_from_its_voxels_order_not_a_count_array_per_slice(
        tmp_path):
    """A PET series rescales every slice: the window's counts of stored values, one 512 KB array per rescaling of
    the slices drawn, took 157 MB for 300 slices (10 MB for these 20). Beyond a few rescalings the window is found
    from the float32 voxels' order instead, and the overlay is the one reading the series whole draws."""
    import tracemalloc

    import pydicom

    from medseg.io.dicom import read_dicom_grid, read_dicom_series
    from medseg.report.overlay import CaseArrays, SeriesImage, render_overlay

    folder, grid, labels = _dicom_series_case(tmp_path)
    for number, path in enumerate(grid.dicom.paths):
        dataset = pydicom.dcmread(path)
        dataset.RescaleSlope, dataset.RescaleIntercept = 0.5 + 0.01 * number, -3.0 * number
        dataset.save_as(path)
    grid = read_dicom_grid(folder)
    names = [("1", "one"), ("2", "two")]
    whole = render_overlay(CaseArrays(labels, grid.affine, image=read_dicom_series(folder).array), names, "1")
    arrays = CaseArrays(labels, grid.affine, image=SeriesImage(grid, None))
    tracemalloc.start()
    try:
        png = render_overlay(arrays, names, "1")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert png == whole and arrays.notes == []
    assert peak < 4e6, peak  # 10.8 MB when counted per rescaling


def test_a_dicom_input_file_of_the_slices_drawn_that_cannot_be_decoded_leaves_the_image_out_with_a_note(
        tmp_path, monkeypatch):
    import pydicom

    from medseg.report.overlay import CaseArrays, SeriesImage, render_overlay

    folder, grid, labels = _dicom_series_case(tmp_path)
    path = grid.dicom.paths[20]
    decode = pydicom.Dataset.pixel_array

    def broken(dataset):  # a codestream its headers do not tell from a sound one
        if int(dataset.InstanceNumber) == 21:
            raise ValueError("the JPEG 2000 codestream ended early")
        return decode.fget(dataset)

    monkeypatch.setattr(pydicom.Dataset, "pixel_array", property(broken))
    arrays = CaseArrays(labels, grid.affine, image=SeriesImage(grid, None))
    png = render_overlay(arrays, [("1", "one"), ("2", "two")], "1")
    assert png.startswith(b"\x89PNG") and arrays.image is None
    assert arrays.notes == [f"image not shown: {path}: truncated or corrupt pixel data (the JPEG 2000 codestream "
                            "ended early)"]


def test_gzip_label_files_and_inputs_are_decompressed_by_isal(tmp_path, monkeypatch):
    """nibabel decompresses with Python's gzip module: 5.0 s of a 512×512×1000 CT's overlay, and 0.6 s for each of
    its label volumes, read three times per case. ISA-L's reader (medseg's for every other NIfTI read) takes a third
    of that; the report's reads go through it, to the same values and picture."""
    pytest.importorskip("isal")
    from nibabel.arrayproxy import ArrayProxy

    from medseg.io.nifti import load_image
    from medseg.report.checks import read_labels
    from medseg.report.overlay import CaseArrays, ImageFile, render_overlay

    labels, affine, reference, path = _crop_case(tmp_path, "edge")
    nib.save(nib.Nifti1Image(labels, affine), tmp_path / "seg.nii.gz")
    legend = [("1", "ball"), ("2", "box")]
    expected = render_overlay(CaseArrays(labels, affine, nib.load(path).get_fdata(dtype=np.float32), reference),
                              legend, "2")
    part = CaseArrays(labels, affine, ImageFile(path, load_image(path, mmap=False)), reference)

    def refused(self):
        raise AssertionError("opened by nibabel")

    monkeypatch.setattr(ArrayProxy, "_get_fileobj", refused)
    assert np.array_equal(read_labels(tmp_path / "seg.nii.gz")[0], labels)
    assert render_overlay(part, legend, "2") == expected and part.notes == []


def test_the_overlay_of_a_case_reads_its_nifti_input_where_drawn_and_notes_a_bad_one(tmp_path):
    """The report's overlay of a case is the one drawn from the whole input; an input whose crop holds a NaN (the
    file changed since the run) is read whole, for its error, and left out with a note, as before."""
    from medseg.io.images import read_image
    from medseg.report.collect import collect_results
    from medseg.report.overlay import CaseArrays, ImageFile, load_case_arrays, render_overlay

    write_case(tmp_path, "c", 0, "erode")
    arrays = load_case_arrays(collect_results(tmp_path)[0])
    assert isinstance(arrays.image, ImageFile) and arrays.notes == []
    whole = CaseArrays(arrays.prediction, arrays.affine, read_image(arrays.image.path).array, arrays.reference)
    assert render_overlay(arrays, [("1", "ball"), ("2", "box")], "1") == render_overlay(
        whole, [("1", "ball"), ("2", "box")], "1")
    image, _, affine = phantom(0)
    image[10, 12, 8] = np.nan
    nib.save(nib.Nifti1Image(image, affine), arrays.image.path)
    built = build_report(tmp_path, tmp_path / "report.html")
    page = built.html.read_text(encoding="utf-8")
    assert "image not shown: " in page
    assert "NaN or infinite voxels (1 NaN; the first at voxel index (10, 12, 8))" in page
    assert "slices of the grid (no image) with the predicted labels and the reference" in page


def test_an_input_off_the_segmentations_grid_is_told_from_its_header_not_read(tmp_path, monkeypatch):
    """A sidecar naming another image (a 4 MB gzip file declaring 2048×2048×1024 voxels: 16 GiB as float32) had it
    read whole by the report, 4.3 GB of memory before the 6 GB limit of the run stopped it, to be left out as off
    the segmentation's grid."""
    import medseg.io.images as images
    from medseg.report.collect import collect_results
    from medseg.report.overlay import load_case_arrays

    folder = write_case(tmp_path, "big", 0, "exact")
    other = tmp_path / "inputs" / "other.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((48, 40, 9), np.float32), np.eye(4)), other)
    sidecar = json.loads((folder / "big_seg.json").read_text())
    sidecar["input"] = str(other)
    for key in ("input_sha256", "input_signature"):  # results written before these fields: taken as they are
        sidecar.pop(key, None)
    (folder / "big_seg.json").write_text(json.dumps(sidecar))
    read = []
    real_read_image = images.read_image
    monkeypatch.setattr(images, "read_image", lambda path, *a, **k: read.append(path) or real_read_image(path, *a, **k))
    arrays = load_case_arrays(collect_results(tmp_path)[0])
    assert arrays.image is None and arrays.reference is not None
    assert arrays.notes == ["image not shown: other.nii.gz is not on the segmentation's grid"]
    assert other not in read
    # the input on the grid is read and drawn as before
    write_case(tmp_path / "fine", "fine", 0, "exact")
    arrays = load_case_arrays(collect_results(tmp_path / "fine")[0])
    assert arrays.image is not None and arrays.notes == []


@pytest.mark.parametrize("layout", ["4d", "vector"])
def test_a_multi_modal_cases_overlay_reads_its_first_channel_only(tmp_path, layout):
    """A multi-modal model's 4D input was read whole (143 MB as float32 for a BraTS case) to draw its first channel:
    only that channel's voxels are read now, the crop drawn, and the overlay is the one drawn from the whole file,
    byte for byte; int16 voxels with a slope and an intercept, in NIfTI's vector layout (X, Y, Z, 1, C) too."""
    import tracemalloc

    from medseg.io.nifti import read_nifti
    from medseg.report.collect import collect_results
    from medseg.report.overlay import ImageFile, load_case_arrays, render_overlay

    image, labels, affine = phantom(4, shape=(96, 96, 40))
    channels = np.stack([image, -image, image * 2.0, image + 500.0], axis=-1).round().astype(np.int16)
    if layout == "vector":
        channels = channels[:, :, :, None, :]
    folder = write_case_arrays(tmp_path, "m", image, labels, perturb(labels, "erode"), affine)
    source = tmp_path / "inputs" / "m_image.nii.gz"
    stored = nib.Nifti1Image(channels, affine)
    stored.header.set_slope_inter(0.5, -3.0)
    nib.save(stored, source)
    sidecar = json.loads((folder / "m_seg.json").read_text())
    sidecar.update(input_sha256=sha256_of(source), modalities=["flair", "t1", "t1gd", "t2"])
    (folder / "m_seg.json").write_text(json.dumps(sidecar))
    legend = [("1", "ball"), ("2", "box")]

    case = collect_results(tmp_path)[0]

    def traced(draw) -> tuple[bytes, int]:
        tracemalloc.start()
        try:
            return draw(), tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    def as_before() -> bytes:  # the input read whole, its first channel drawn
        arrays = load_case_arrays(case)
        whole = read_nifti(source, hash_input=False, channels=True).array
        arrays.image = np.ascontiguousarray(whole[..., 0])
        del whole
        return render_overlay(arrays, legend, "1")

    arrays = load_case_arrays(case)
    assert isinstance(arrays.image, ImageFile) and arrays.image.shape == labels.shape
    assert arrays.notes == ["image: the first of the input's 4 modalities (flair) is shown"]
    expected, peak_before = traced(as_before)
    picture, peak = traced(lambda: render_overlay(load_case_arrays(case), legend, "1"))
    assert picture == expected
    assert peak < 0.6 * peak_before, (peak, peak_before)
