"""The report's memory: what the cohort's report job asks for (its libraries, each case, the overlays it may draw
and the largest input's voxels; headers written in code, no voxel data read), and what the report holds as it
runs (no whole volume for an overlay, one case's volumes at a time, freed and given back)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from report_cases import write_case

from medseg.cohort import Sample
from medseg.cohort.report_memory import largest_voxels, report_memory_mb
from medseg.report.build import build_report


def _header_only_nifti(path: Path, shape: tuple[int, ...]) -> Path:
    """A NIfTI file whose header declares ``shape``, its voxels zeros on no disk space (a sparse file: only the header
    is read, and the file's size, which must hold them)."""
    header = nib.Nifti1Header()
    header.set_data_dtype(np.int16)
    header.set_data_shape(shape)
    with open(path, "wb") as file:
        file.write(header.binaryblock + b"\0" * 4)
        file.truncate(352 + 2 * int(np.prod(shape)))
    return path


def test_the_report_memory_grows_with_cases_overlays_and_the_largest_volume(tmp_path):
    """The report job asked 4000 MB whatever the cohort: too little for a cohort of large CTs with many overlays,
    where a retry killed for memory got 8000 and 12000, and twenty times what 200 small cases take (185 MiB)."""
    small = _header_only_nifti(tmp_path / "small.nii", (48, 48, 16))
    large = _header_only_nifti(tmp_path / "large.nii", (512, 512, 300))
    reference = tmp_path / "label.nii.gz"
    cases = [Sample(f"c{i}", small, reference if i < 60 else None) for i in range(100)]
    # 800 + 0.25 x 100 cases + 1.5 x (50 scored + 40 without a reference) overlays + 8 B x 36,864 voxels
    assert report_memory_mb(cases, max_overlays=50) == 1000
    assert report_memory_mb(cases, max_overlays=0) == 900
    # one large CT: 8 B x 78.6 M voxels = 629 MB more (1591 MB, rounded up to 100 MB)
    assert report_memory_mb([*cases, Sample("ct", large, reference)], max_overlays=50) == 1600
    assert report_memory_mb(cases, max_overlays=50, voxels=10**9) == 9000
    # 10 and 1000 small cases with the workflow's default max_overlays: 900 and 1300 MB
    assert report_memory_mb(cases[:10], max_overlays=50) == 900
    assert report_memory_mb(cases * 10, max_overlays=50) == 1300


def test_the_largest_input_is_the_one_counted(tmp_path):
    from dicom_factory import slice_positions, stored_values, write_series

    series = tmp_path / "dicom"
    write_series(series, stored_values((24, 20, 6)), slice_positions(6, 2.0))
    samples = [Sample("a", _header_only_nifti(tmp_path / "a.nii", (320, 256, 40))), Sample("dicom", series),
               Sample("gone", tmp_path / "gone.nii.gz")]
    assert largest_voxels(samples) == 320 * 256 * 40
    assert largest_voxels([]) == 0


@pytest.mark.parametrize("stored_as", ["int16", "float32"])
def test_the_overlay_holds_no_volume_of_its_image_or_masks(tmp_path, monkeypatch, stored_as):
    """The overlay of a 512×512×1000 CT whose labels span it held the union of the labels and the focus label's mask
    (with the temporaries that made them) and the crop of the image stored, as float32 and sorted for its window:
    about 12 bytes per voxel, 3 GB. The masks are made a block of slices at a time, the image is read a slab at a
    time, keeping the three planes drawn and, for the window, counts of its stored values (float voxels: of their
    bits, over two readings): under a byte per voxel here, and the same picture, byte for byte."""
    import tracemalloc

    from medseg.io.nifti import load_image
    from medseg.report import overlay, overlay_image

    shape = (160, 144, 128)
    i, j, k = np.indices(shape, sparse=True)
    labels = np.zeros(shape, np.uint8)
    labels[2:-2, 3:-3, 1:-1] = 1  # the crop box is the whole grid
    labels[30:60, 20:50, 10:40] = 2
    labels = np.asfortranarray(labels)  # as nibabel reads a label file: blocks go across the last axis
    reference = np.asfortranarray(np.roll(labels, 2, axis=1))
    stored = ((i * 7 + j * 3 + k * 11) % 900 - 300).astype(np.int16)
    affine = np.diag([-0.8, -0.8, 1.5, 1.0])
    if stored_as == "int16":
        image = nib.Nifti1Image(stored, affine)
        image.header.set_slope_inter(0.5, -1024.0)
    else:  # its window from the order of its values' bits, in two readings
        image = nib.Nifti1Image(stored * np.float32(0.37) - np.float32(1024.0), affine)
    path = tmp_path / "ct.nii.gz"
    nib.save(image, path)
    legend = [("1", "body"), ("2", "box")]
    whole = overlay.CaseArrays(labels, affine, nib.load(path).get_fdata(dtype=np.float32), reference)
    expected = overlay.render_overlay(whole, legend, "2", focus_faces=("k-",))

    monkeypatch.setattr(overlay, "_FOCUS_BLOCK_VOXELS", 144 * 128, raising=False)  # a slice at a time
    monkeypatch.setattr(overlay_image, "_IMAGE_SLAB_VOXELS", 160 * 144, raising=False)
    part = overlay.CaseArrays(labels, affine, overlay.ImageFile(path, load_image(path, mmap=False)), reference)
    overlay.render_overlay(part, legend, "1")  # the modules each step imports, loaded
    tracemalloc.start()
    try:
        drawn = overlay.render_overlay(part, legend, "2", focus_faces=("k-",))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert drawn == expected and part.notes == []
    # 21 bytes per voxel before (int16), 4.4 (float32); now the picture (1.5 MB) and the counts (float32: 2 MB)
    assert peak < labels.size + (2 << 20), f"{peak / labels.size:.2f} bytes per voxel"


def test_each_cases_volumes_are_freed_and_given_back_before_the_next_case_is_read(tmp_path, monkeypatch):
    """The medseg command keeps the memory it frees (its allocator's thresholds are raised for speed): the volumes of
    one case stayed resident in holes the next case's larger ones did not fit, and the report of three whole-body
    CTs peaked at 1.03 GB for 0.78 GB of arrays alive at once. After each case is checked and after its overlay, its
    volumes are gone and the free memory is given back."""
    import weakref

    from medseg.report import build, checks, overlay

    for index, how in enumerate(("erode", "shift", "dilate3")):
        write_case(tmp_path, f"c{index}", index, how)
    volumes, releases = [], []
    # every reading of a segmentation, the check's and the overlay's (read_segmentation), goes through this one
    real_read, real_load = checks._read_segmentation_with_info, overlay.load_case_arrays

    def read(case, path, **kwargs):
        labels, affine, source, info = real_read(case, path, **kwargs)
        volumes.append(weakref.ref(labels))
        return labels, affine, source, info

    def load(case, *args, **kwargs):
        arrays = real_load(case, *args, **kwargs)
        volumes.extend(weakref.ref(array) for array in (arrays.prediction, arrays.reference))
        return arrays

    def release():
        releases.append((len(volumes), sum(volume() is not None for volume in volumes)))
        return True

    monkeypatch.setattr(checks, "_read_segmentation_with_info", read)
    monkeypatch.setattr(overlay, "load_case_arrays", load)
    monkeypatch.setattr(build, "release_free_memory", release)
    built = build_report(tmp_path, tmp_path / "report.html")
    assert built.overlays == 3
    # volumes seen so far, and still alive, at each release: 3 checks (the segmentation), then 3 overlays (the
    # segmentation as read, then as drawn with the reference)
    assert releases == [(1, 0), (2, 0), (3, 0), (6, 0), (9, 0), (12, 0)]


def test_overlays_hold_one_cases_volumes_at_a_time(tmp_path, monkeypatch):
    """The previous case's image, segmentation and reference stayed referenced while the next case's were read:
    a report of two 512×512×800 CT cases peaked at 2.6 GB, one of them alone at 1.8 GB."""
    import weakref

    from medseg.report import overlay

    for seed in range(3):
        write_case(tmp_path, f"c{seed}", seed, "erode")
    loaded, alive_at_load = [], []
    real_load = overlay.load_case_arrays

    def load(case, *args, **kwargs):
        alive_at_load.append(sum(ref() is not None for ref in loaded))
        arrays = real_load(case, *args, **kwargs)
        loaded.append(weakref.ref(arrays))
        return arrays

    monkeypatch.setattr(overlay, "load_case_arrays", load)
    outputs = build_report(tmp_path, tmp_path / "r.html")
    assert outputs.overlays == 3 and alive_at_load == [0, 0, 0]
