"""A reading library's warnings while medseg reads a file name that file (medseg.io.read_warnings)."""

from __future__ import annotations

import gzip
import struct
import warnings

import nibabel as nib
import numpy as np
import pytest
from conftest import run_program

from medseg.io.images import read_grid, read_image
from medseg.io.read_warnings import warnings_naming

EXTENSION_TEXT = ("Extension size is not a multiple of 16 bytes; Assuming size is correct and hoping for the best")


def odd_extension_nifti(path):
    """A real ``.nii`` whose one extension's size field says 24 bytes (not a multiple of 16, as a writer that forgot
    the padding gives it), and a labelled box in it; nibabel reads it with a warning."""
    data = np.zeros((8, 8, 4), np.uint8)
    data[2:6, 2:6, 1:3] = 1
    image = nib.Nifti1Image(data, np.eye(4))
    image.header.extensions.append(nib.nifti1.Nifti1Extension(0, b"x" * 24))  # 32 bytes with its own 8
    nib.save(image, path.with_suffix(".nii") if path.name.endswith(".gz") else path)
    raw = bytearray((path.with_suffix(".nii") if path.name.endswith(".gz") else path).read_bytes())
    assert struct.unpack("<i", raw[352:356]) == (32,)
    raw[352:356] = struct.pack("<i", 24)
    path.write_bytes(gzip.compress(bytes(raw)) if path.name.endswith(".gz") else bytes(raw))
    return data


def test_evaluate_names_the_file_nibabel_warns_about(tmp_path, capsys):
    """`medseg evaluate odd.nii ref.nii` said "warning: UserWarning: Extension size is not a multiple of 16 bytes; …"
    without saying which of the two files it was about: the line names the file, once."""
    odd, reference = tmp_path / "odd.nii", tmp_path / "reference.nii.gz"
    data = odd_extension_nifti(odd)
    nib.save(nib.Nifti1Image(data, np.eye(4)), reference)
    run = run_program(["evaluate", str(odd), str(reference)], capsys)
    assert run.returncode == 0, run.stderr
    warned = [line for line in run.stderr.splitlines() if "Extension size" in line]
    assert warned == [f"warning: UserWarning: {odd}: {EXTENSION_TEXT}"], run.stderr
    assert "1 label_1  1.0000" in run.stdout


@pytest.mark.parametrize("name", ["odd.nii", "odd.nii.gz"])
def test_a_reads_warning_keeps_its_category_and_location_and_names_the_file(tmp_path, name):
    odd = tmp_path / name
    odd_extension_nifti(odd)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        shape, _ = read_grid(odd)
        volume = read_image(odd)
    assert shape == (8, 8, 4) and int(volume.array.sum()) == 32
    assert {(w.category, str(w.message)) for w in caught} == {(UserWarning, f"{odd}: {EXTENSION_TEXT}")}
    assert all(w.filename == nib.nifti1.__file__ for w in caught)


def test_a_filter_on_the_library_still_silences_its_warning(tmp_path):
    odd = tmp_path / "odd.nii"
    odd_extension_nifti(odd)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.filterwarnings("ignore", category=UserWarning, module=r"nibabel\.nifti1$")
        read_grid(odd)
    assert caught == []


def test_a_warning_that_names_the_file_already_is_not_named_twice(tmp_path):
    odd = tmp_path / "odd.nii"
    odd_extension_nifti(odd)
    with pytest.warns(UserWarning) as caught, warnings_naming(odd), warnings_naming(odd):
        read_grid(odd)
    assert [str(w.message) for w in caught] == [f"{odd}: {EXTENSION_TEXT}"]


@pytest.mark.filterwarnings("ignore:Unknown encoding")  # pydicom, on writing the faulty test value
def test_evaluate_names_the_dicom_seg_pydicom_warns_about_once(tmp_path, capsys):
    """A DICOM SEG whose character set pydicom does not know: pydicom logs and warns "Unknown encoding 'ISO_IR 999'
    - using default encoding instead" as it reads it, and `medseg evaluate pred.nii.gz seg.dcm` said so without
    saying which file; the line names the SEG, once (logged and warned alike)."""
    from dicom_factory import _raw, slice_positions, stored_values, write_series
    from seg_factory import NAMES, SHAPE, label_rule

    from medseg.io.dicom import read_dicom_series, volume_image
    from medseg.io.seg_writing import write_dicom_seg

    write_series(tmp_path / "series", stored_values(SHAPE, seed=14), slice_positions(SHAPE[2], -3.0), seed=2)
    volume = read_dicom_series(tmp_path / "series")
    labels = label_rule(volume.array)
    seg, prediction = tmp_path / "seg.dcm", tmp_path / "pred.nii.gz"
    write_dicom_seg(labels, volume, seg, NAMES, "test-model")
    _raw(seg, "SpecificCharacterSet", "CS", b"ISO_IR 999")
    nib.save(nib.Nifti1Image(labels.astype(np.uint8), volume_image(volume).affine), prediction)
    run = run_program(["evaluate", str(prediction), str(seg)], capsys)
    assert run.returncode == 0, run.stderr
    warned = [line for line in run.stderr.splitlines() if "Unknown encoding" in line]
    assert warned == [f"warning: {seg}: Unknown encoding 'ISO_IR 999' - using default encoding instead"], run.stderr
    assert "1 odd     1.0000" in run.stdout and "2 corner  1.0000" in run.stdout
