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
