"""One entry point for inputs: a NIfTI file or a DICOM series folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medseg.errors import ImageReadError
from medseg.io.nifti import read_nifti
from medseg.volume import Volume

__all__ = ["read_grid", "read_image"]


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


def read_grid(path: Path | str, series: str | None = None) -> tuple[tuple[int, int, int], np.ndarray]:
    """The shape and affine an input would be read with, from headers only (no voxel data is read)."""
    path = Path(path)
    if not path.exists():
        raise ImageReadError(f"{path}: no such file or folder")
    if path.is_dir():
        from medseg.io.dicom_series import choose_series, scan_folder

        candidate, _ = choose_series(scan_folder(path), series)
        return tuple(int(n) for n in candidate.geometry.shape), np.asarray(candidate.geometry.affine, np.float64)
    import nibabel as nib

    try:
        image = nib.load(str(path))
        shape = tuple(int(n) for n in image.shape)
        affine = np.asarray(image.affine, dtype=np.float64)
    except Exception as error:  # any header nibabel cannot read
        raise ImageReadError(f"{path}: cannot read header ({error})") from error
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        raise ImageReadError(f"{path}: expected a 3D volume, got shape {shape}")
    return shape, affine
