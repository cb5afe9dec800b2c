"""A segmentation written as NIfTI on its input's grid: the input's own header copied (sform, qform, their codes,
units and pixdim exactly the input's; its free text and extensions left out), or an affine written as sform and
qform; saved under the name asked for, in any letter case."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from medseg.array_order import fortran_order
from medseg.io.nifti_files import nibabel_name
from medseg.io.nifti_geometry import qform_for
from medseg.volume import Volume

__all__ = ["labels_image", "save_nifti", "write_labels"]

def labels_image(labels: np.ndarray, like: Volume, top_label: int | None = None) -> nib.Nifti1Image:
    """A label image on ``like``'s grid; its display range (``cal_min``/``cal_max``) runs from 0 to ``top_label``
    (the model's highest label: every case of a model is coloured alike in a viewer), else to the highest present.

    When ``like`` came from a NIfTI file its header is copied, so sform, qform, their codes, units and
    pixdim are exactly the input's; its free text (``descrip``, ``aux_file``, ``db_name``) and extensions, which
    may name the patient or hold a whole DICOM header, are not; otherwise ``like.affine`` is written as both sform
    and qform (code 1, scanner; a gantry tilt's sheared affine gets the qform of :func:`qform_for`).
    """
    if tuple(labels.shape) != like.shape:
        raise ValueError(f"label shape {labels.shape} differs from the volume's {like.shape}")  # a caller's slip
    if like.header is not None:
        header = like.header.copy()
        klass = nib.Nifti2Image if isinstance(header, nib.Nifti2Header) else nib.Nifti1Image
        image = klass(labels, None, header=header)
        image.header["pixdim"] = header["pixdim"]  # as the input stores it: nibabel repairs a copy on the way
        image.header.set_data_dtype(labels.dtype)
        image.header.set_slope_inter(1.0, 0.0)
        image.header.set_intent("label", name="medseg")
        image.header["descrip"] = b"medseg segmentation"
        image.header["aux_file"] = b""
        if "db_name" in image.header:  # NIfTI-1's unused Analyze fields; NIfTI-2 has none
            image.header["db_name"] = b""
            image.header["data_type"] = b""
        image.header.extensions.clear()
        if image.header["dim"][0] > 3:
            image.header["dim"][0] = 3
    else:
        image = nib.Nifti1Image(labels, like.affine)
        image.header.set_sform(like.affine, code=1)
        image.header.set_qform(*qform_for(like.affine))  # a qform cannot hold a shear: a tilt's ITK grid
        image.header.set_xyzt_units("mm", "sec")
        image.header.set_intent("label", name="medseg")
        image.header["descrip"] = b"medseg segmentation"
    image.header["cal_min"] = 0
    image.header["cal_max"] = float(top_label if top_label is not None else labels.max() if labels.size else 0)
    return image


def save_nifti(image: nib.Nifti1Image, path: Path | str) -> None:
    """``nib.save``, to ``path`` exactly: nibabel saves a mixed-case name (``scan.Nii``) as another one (``scan.nii``),
    which left the name asked for missing (and an atomic write's temporary file behind). Compressed when the name
    ends in ``.gz``, in any letter case."""
    image.to_file_map(type(image).make_file_map({"image": nibabel_name(path)}))


def write_labels(labels: np.ndarray, like: Volume, path: Path | str, top_label: int | None = None) -> None:
    """Write ``labels`` on ``like``'s grid to ``path`` (not atomic: use :func:`~medseg.io.atomic.atomic_paths` around
    it)."""
    nib.save(labels_image(fortran_order(labels), like, top_label), nibabel_name(path))

