"""One entry point for inputs: a NIfTI file, an NRRD or MetaImage file (through SimpleITK), or a DICOM series folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from medseg.errors import ImageReadError, InputError, MedsegError
from medseg.io.files import check_readable, exists, not_there, os_reason, path_argument
from medseg.io.nifti import read_nifti
from medseg.settings_named import ANY, setting
from medseg.volume import Volume

__all__ = ["read_grid", "read_image"]


def read_image(path: Path | str, series: str | None = None, warn_skipped: bool = True,
               check_grid: Callable[[tuple[int, ...], np.ndarray], None] | None = None,
               keep_headers: bool = False) -> Volume:
    """Read a NIfTI file, an NRRD or MetaImage file (``.nrrd``, ``.nhdr``, ``.mha``, ``.mhd``; SimpleITK, the ``itk``
    extra), or a DICOM folder (``series`` picks a series by UID or number; ``warn_skipped``: warn
    about the folder's files that are not DICOM, as a second reading of an input need not). ``check_grid(shape,
    affine)`` is called with a DICOM series' grid from its headers, before any pixel is decoded, and with a NIfTI
    file's from its header, before its voxels are read (the memory guard; the file is opened once for both: an NRRD
    or MetaImage header is checked by the caller, through :func:`read_grid`). ``keep_headers``: a DICOM series'
    volume keeps its files' headers (``dicom.headers``), which a DICOM SEG of it takes.
    A path that is missing or holds no readable image is an :class:`~medseg.errors.ImageReadError`; an image that is
    not one 3D volume, holds NaN voxels or has a singular affine an :class:`~medseg.errors.InputError`; a DICOM folder
    that gives no one volume a :class:`~medseg.errors.DicomError`."""
    path = path_argument(path, "the image")
    if not exists(path):
        raise ImageReadError(f"{path}: {not_there(path)}")
    if path.is_dir():
        from medseg.io.dicom import read_dicom_series

        return read_dicom_series(path, series=series, warn_skipped=warn_skipped, check_grid=check_grid,
                                 keep_headers=keep_headers)
    if series is not None:
        raise ImageReadError(f"{path}: {setting('series', ANY)} applies to DICOM folders only")
    from medseg.io.itk_image import is_itk_name

    if is_itk_name(path):  # a NRRD or MetaImage header is checked by the caller, through read_grid
        return read_nifti(path)
    return read_nifti(path, check_grid=check_grid)


def read_grid(path: Path | str, series: str | None = None, warn_skipped: bool = True
              ) -> tuple[tuple[int, ...], np.ndarray]:
    """The shape and affine of an input, from headers only (no voxel data is read).

    The shape is the file's as :func:`read_image` takes it (a 2D image is one slice, a 4D or 5D image holding one
    volume counts as 3D), the affine in mm; unlike :func:`read_image` a shape that is
    not 3D is returned, not refused, for the caller to compare. Any file that cannot be read is an
    :class:`ImageReadError`, an affine that is not finite or places no voxel (as :func:`read_image` refuses it) an
    :class:`~medseg.errors.InputError`; a folder that holds no usable DICOM series, or not the ``series`` asked for, a
    :class:`~medseg.errors.DicomError`.
    """
    path = path_argument(path, "the image")
    if not path.exists():
        raise ImageReadError(f"{path}: {not_there(path)}")
    if path.is_dir():
        from medseg.io.dicom_series import choose_series, scan_folder

        try:
            candidate, _ = choose_series(scan_folder(path, warn_skipped=warn_skipped), series)
        except OSError as error:  # a file of the folder that cannot be opened
            raise ImageReadError(f"{path}: cannot read the DICOM headers ({os_reason(error)})") from error
        return tuple(int(n) for n in candidate.geometry.shape), np.asarray(candidate.geometry.affine, np.float64)
    from medseg.io.itk_image import is_itk_name, read_itk_grid

    if is_itk_name(path):  # NRRD / MetaImage: SimpleITK reads the header alone
        return read_itk_grid(path)
    import nibabel as nib

    from medseg.io.image_shape import shape_3d
    from medseg.io.nifti_files import (
        _magic_text,
        check_voxels_fit,
        cut_short_text,
        dicom_named_as_nifti,
        gzip_without_gz,
        load_image,
    )
    from medseg.io.nifti_geometry import affine_mm

    check_readable(path)  # as read_image says it, not as a header nibabel could not read
    try:
        image = load_image(path)
        check_voxels_fit(path, image)
        shape = tuple(int(n) for n in image.shape)
        affine = affine_mm(image)[0]
    except MedsegError:
        raise
    except Exception as error:  # any header nibabel cannot read
        misnamed = dicom_named_as_nifti(path) if isinstance(error, nib.filebasedimages.ImageFileError) else None
        misnamed = misnamed or (gzip_without_gz(path) if isinstance(error, nib.filebasedimages.ImageFileError)
                                else None)
        if misnamed is not None:  # as read_image says it
            raise ImageReadError(misnamed) from error
        cut = cut_short_text(path) if isinstance(error, nib.filebasedimages.ImageFileError) else None
        if cut is not None:  # as read_image says it (nibabel: "Empty file: '<the path>'")
            raise ImageReadError(cut) from error
        magic = _magic_text(path) if isinstance(error, nib.filebasedimages.ImageFileError) else None
        if magic is not None:  # as read_image says it
            raise ImageReadError(f"{path}: {magic}") from error
        raise ImageReadError(f"{path}: cannot read header ({error})") from error
    from medseg.volume import singular_affine_text

    unplaced = singular_affine_text(affine)
    if unplaced is not None:  # as read_image refuses it: placed on no grid, it met "SVD did not converge" later
        raise InputError(f"{path}: {unplaced}")
    return shape_3d(shape), affine
