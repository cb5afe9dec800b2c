"""The one entry point for inputs (medseg.io.images): a folder given to read_nifti worded as the other readers
word it, a DICOM folder whose headers the disk fails to read."""

import pytest

from medseg.errors import ImageReadError


def test_read_nifti_of_a_folder_is_worded_as_the_other_readers(tmp_path):
    """`read_nifti` of a folder said "is a folder, not a NIfTI file (DICOM folders need the DICOM reader)"; the other
    readers word it "a folder, not ..." and a reader of medseg's API needs the function that reads DICOM folders."""
    from medseg.errors import ImageReadError
    from medseg.io import read_nifti

    with pytest.raises(ImageReadError) as caught:
        read_nifti(tmp_path)
    assert str(caught.value) == f"{tmp_path}: a folder, not a NIfTI file (a DICOM series folder is read by read_image)"


def test_a_dicom_folder_whose_headers_the_disk_fails_to_read_gives_the_reason_alone(tmp_path, monkeypatch):
    """read_grid said "cannot read the DICOM headers ([Errno 5] Input/output error: '/…')", the OS's words with a
    path; the reason alone, in lower case, as every other message gives it."""
    import errno
    import os

    import medseg.io.dicom_series
    from medseg.io.images import read_grid

    def failing(folder, **kwargs):
        raise OSError(errno.EIO, os.strerror(errno.EIO), str(folder / "1.dcm"))

    monkeypatch.setattr(medseg.io.dicom_series, "scan_folder", failing)
    (tmp_path / "dcm").mkdir()
    with pytest.raises(ImageReadError) as caught:
        read_grid(tmp_path / "dcm")
    assert str(caught.value) == f"{tmp_path / 'dcm'}: cannot read the DICOM headers (input/output error)"


def test_a_nifti_files_grid_is_checked_from_the_header_its_voxels_are_read_with(tmp_path, monkeypatch):
    """``check_grid`` (the memory guard) is given a NIfTI file's grid from the header loaded for the read, before the
    voxels: one load of the header, where the guard's own reading of it was a second (and each geometry check
    opened the file again to read the header as stored)."""
    import nibabel as nib
    import numpy as np

    from medseg.errors import InputError
    from medseg.io.images import read_image

    affine = np.array([[0.0, 0.0, 2.5, -40.0], [-0.7, 0.0, 0.0, 30.0], [0.0, 0.7, 0.0, -10.0], [0.0, 0.0, 0.0, 1.0]])
    path = tmp_path / "ct.nii.gz"
    nib.save(nib.Nifti1Image(np.arange(12 * 10 * 4, dtype=np.int16).reshape(12, 10, 4), affine), str(path))
    loads, grids, real = [], [], nib.load
    monkeypatch.setattr(nib, "load", lambda name, *args, **kwargs: loads.append(str(name)) or real(name, *args,
                                                                                                    **kwargs))
    volume = read_image(path, check_grid=lambda shape, grid: grids.append((shape, grid)))
    assert loads == [str(path)] and len(grids) == 1
    assert grids[0][0] == volume.shape == (12, 10, 4) and np.array_equal(grids[0][1], volume.affine)

    def refuse(shape, grid):
        raise InputError(f"{path}: {shape} is too large")

    monkeypatch.setattr("medseg.io.nifti._read_float", lambda *args: pytest.fail("voxels read"))
    with pytest.raises(InputError, match=r"\(12, 10, 4\) is too large"):
        read_image(path, check_grid=refuse)
