"""One entry point for inputs: a NIfTI file or a DICOM series folder."""

from __future__ import annotations

from pathlib import Path

from medseg.errors import ImageReadError
from medseg.io.nifti import read_nifti
from medseg.volume import Volume

__all__ = ["read_image"]


def read_image(path: Path | str, series: str | None = None) -> Volume:
    """Read a NIfTI file, or a DICOM folder (``series`` picks a series by UID or number)."""
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"{path}: no such file or folder")
    if path.is_dir():
        from medseg.io.dicom import read_dicom_series

        return read_dicom_series(path, series=series)
    if series is not None:
        raise ImageReadError(f"{path}: --series applies to DICOM folders only")
    return read_nifti(path)
