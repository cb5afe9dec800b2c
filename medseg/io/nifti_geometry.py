"""The geometry of an Analyze or NIfTI header: the voxel → world affine in mm as medseg reads it (:func:`affine_mm`:
the spatial unit, a header without orientation, an unusable sform, a 2D image's slice thickness; the header checked as
its file stores it, :func:`raw_header`), the notes it makes, and the qform written beside an sform
(:func:`qform_for`, a gantry tilt's sheared affine)."""

from __future__ import annotations

import math
from pathlib import Path

import nibabel as nib
import numpy as np

from medseg.errors import InputError, first_line
from medseg.io.image_shape import shape_3d
from medseg.io.nifti_files import _QUATERNION_ROUNDING, _uncompressed_gz
from medseg.volume import bottom_row_text

__all__ = ["affine_mm", "flat_axis", "flat_axis_filled", "is_sheared", "qfac_note", "qform_for", "quaternion_note",
           "raw_header", "tilt_qform"]

_UNIT_MM = {0: 1.0, 1: 1000.0, 2: 1.0, 3: 0.001}  # xyzt_units & 7: unknown (read as mm), metre, mm, micron
_NO_ORIENTATION = ("no orientation in the header ({why}): NIfTI method 1 assumed (x = i*pixdim1, y = j*pixdim2, "
                   "z = k*pixdim3, no flip); left and right may be swapped")


def affine_mm(image) -> tuple[np.ndarray, str | None]:
    """The voxel → world affine of a nibabel image in millimetres, and a note when the header gives no orientation
    (see :func:`_affine_mm`)."""
    affine, note, _ = _affine_mm(image)
    return affine, note


def _affine_mm(image) -> tuple[np.ndarray, str | None, str | None]:
    """The voxel → world affine of a nibabel image in millimetres, a note when the header gives no orientation, and
    one when a 2D image's slice thickness had to be assumed.

    nibabel's ``affine`` ignores the spatial unit of ``xyzt_units``: a file in microns or metres is scaled here
    to mm. A NIfTI file whose sform and qform codes are both 0 has no orientation; the NIfTI standard's method 1
    (x = i·pixdim[1], y = j·pixdim[2], z = k·pixdim[3], no flip) is used for it, not nibabel's Analyze-style
    fallback, which mirrors left and right; the note says so. An Analyze file without an SPM ``.mat`` states none
    either: it is read as nibabel and SPM read it (its outputs must overlay it in those tools), with a note.

    The header is checked as the file stores it (nibabel quietly repairs some fields on loading): an sform or qform
    code outside 0–4, a spatial unit NIfTI does not define, or a voxel size of zero, below zero or not finite in
    ``pixdim`` where the geometry is computed from it (qform or method 1) along an axis of more than one voxel
    (nibabel would read it as 1 mm) raise :class:`InputError` naming the file.

    An affine whose column for an axis of one voxel (a 2D image's slice) is zero places every voxel, but is singular:
    that column becomes the normal to the other two (right-handed), of the length the header's ``pixdim`` gives for
    the axis (1 mm, with the third note, where it gives none). Outputs still copy the header as stored.
    """
    header = image.header
    affine = np.asarray(image.affine, dtype=np.float64)
    note = thickness_note = None
    raw = raw_header(image)
    name = image.get_filename() or "image"
    if isinstance(header, nib.Nifti1Header):  # Nifti2Header too
        codes = {key: int(raw[key]) for key in ("sform_code", "qform_code")}
        for key, code in codes.items():
            if not 0 <= code <= 4:
                raise InputError(f"{name}: {key} {code} is not a NIfTI code (0-4); the header's orientation cannot "
                                 "be trusted")
        slope = float(raw["scl_slope"])
        if math.isinf(slope):  # nibabel reads the voxels unscaled, as if no slope were given
            raise InputError(f"{name}: scl_slope is {slope:g}: the scaling of the voxel values is unknown")
        unit = int(raw["xyzt_units"]) & 7
        if unit not in _UNIT_MM:
            raise InputError(f"{name}: xyzt_units gives the spatial unit code {unit}, which NIfTI does not define "
                             "(0 unknown, 1 m, 2 mm, 3 micron)")
        broken = _unusable_sform(header) if codes["sform_code"] and codes["qform_code"] else None
        if codes["sform_code"] == 0 and codes["qform_code"]:  # nibabel's affine: its qform, qfac repaired to 1
            affine = np.asarray(_qform(header, raw), dtype=np.float64)
        if broken is not None:  # as ITK does: a coded qform places the voxels where the sform cannot
            try:
                affine = np.asarray(_qform(header, raw), dtype=np.float64)
            except ValueError as error:  # quatern_b, c, d beyond a unit quaternion
                raise InputError(f"{name}: the header's sform is {broken} and its qform invalid (quatern_b, c, d are "
                                 f"not part of a unit quaternion: {first_line(error)}): nothing places the voxels"
                                 ) from error
            note = (f"the header's sform (code {codes['sform_code']}) is {broken}: the voxels are placed by its "
                    f"qform (code {codes['qform_code']}) instead; a tool that reads the sform cannot place the input, "
                    "nor its segmentation, which keeps the header")
        if codes["sform_code"] == 0 or broken is not None:
            _check_voxel_sizes(raw, image.shape, name)
        if codes["sform_code"] == 0 and codes["qform_code"] == 0:
            affine = np.diag([*(float(v) for v in header["pixdim"][1:4]), 1.0])
            note = _NO_ORIENTATION.format(why="sform and qform codes 0")
        scale = _UNIT_MM[unit]
        affine, thickness_note = _flat_axis_filled(affine, image, raw, scale)  # in the file's unit, as pixdim is
        if scale != 1.0:
            affine = np.diag([scale, scale, scale, 1.0]) @ affine
    else:
        if isinstance(header, nib.analyze.AnalyzeHeader) and not _has_spm_mat(image):
            # kept as nibabel and SPM read it (origin field, x mirrored), so that outputs overlay the input in the
            # tools that made it; but said, since the header does not state it
            _check_voxel_sizes(raw, image.shape, name)
            note = ("no orientation in the header (an Analyze file without an SPM .mat): read as nibabel and SPM "
                    "read it (the header's origin, x mirrored, the radiological convention); left and right may be "
                    "swapped")
        if bottom_row_text(affine) is not None:  # an SPM .mat holds all four rows; a NIfTI header only the top three
            raise InputError(f"{name}: {bottom_row_text(affine)} (from the SPM .mat beside it)")
        affine, thickness_note = _flat_axis_filled(affine, image, raw)
    return affine, note, thickness_note


def _unusable_sform(header) -> str | None:
    """What makes a coded sform unusable ("zero in its voxel axes", "not finite"), or None: an exporter that sets
    sform_code without filling srow_x/y/z (their first three columns, the voxel axes; the fourth is the origin)."""
    sform = np.asarray(header.get_sform(), dtype=np.float64)
    if not np.all(np.isfinite(sform)):
        return "not finite"
    return "zero in its voxel axes" if not sform[:3, :3].any() else None


def _qform(header, raw, coded: bool = False):
    """``header``'s qform as the NIfTI reference library (nifti1_io: FSL, ITK, AFNI) reads it: a ``pixdim[0]``
    (qfac) stored as any negative value (``raw``: the header as stored) mirrors the k axis, as -1 does (nibabel
    repairs every value but 1 and -1 to 1 on loading, which would place such a file mirrored along k), and
    quatern_b, c, d a rounding beyond a unit quaternion are normalised (nibabel refuses them)."""
    if float(raw["pixdim"][0]) < 0 and float(header["pixdim"][0]) != -1:
        header = header.copy()
        header["pixdim"][0] = -1.0
    try:
        return header.get_qform(coded=coded)
    except ValueError:  # quatern_b, c, d beyond a unit quaternion: within a rounding, nifti1_io normalises them
        bcd = np.array([float(header[key]) for key in ("quatern_b", "quatern_c", "quatern_d")])
        if not 0.0 < float(bcd @ bcd) - 1.0 <= _QUATERNION_ROUNDING:
            raise
        header = header.copy()
        for key, value in zip(("quatern_b", "quatern_c", "quatern_d"), bcd / np.sqrt(bcd @ bcd)):
            header[key] = value
        return header.get_qform(coded=coded)


def qfac_note(image) -> str | None:
    """A note when the qform places the voxels of a NIfTI file whose ``pixdim[0]`` (qfac) is stored as a negative
    value other than -1: it is read as -1, as the NIfTI reference library reads it (:func:`_qform`), not as
    nibabel's 1."""
    header = image.header
    if not isinstance(header, nib.Nifti1Header):  # Nifti2Header too
        return None
    raw = raw_header(image)
    stated = float(raw["pixdim"][0])
    if not stated < 0 or stated == -1 or not int(raw["qform_code"]):
        return None
    if int(raw["sform_code"]) and _unusable_sform(header) is None:  # the sform places the voxels
        return None
    return (f"pixdim[0] (qfac) is {stated:g}, where NIfTI defines only 1 and -1: read as -1 (the k axis mirrored), "
            "as the NIfTI reference library (FSL, ITK, AFNI) reads a negative qfac; nibabel reads it as 1, which "
            "shows the input, and its segmentation, mirrored along k")


def quaternion_note(image) -> str | None:
    """A note when the qform places the voxels of a NIfTI file (no usable coded sform) and its quatern_b, c, d lie a
    rounding beyond a unit quaternion, beyond nibabel's tolerance: read normalised, as the NIfTI reference library
    reads them (:func:`_qform`)."""
    header = image.header
    if not isinstance(header, nib.Nifti1Header):  # Nifti2Header too
        return None
    raw = raw_header(image)
    if not int(raw["qform_code"]):
        return None
    coded_sform = bool(int(raw["sform_code"]))
    if coded_sform and _unusable_sform(header) is None:  # the sform places the voxels
        return None
    bcd = np.array([float(raw[key]) for key in ("quatern_b", "quatern_c", "quatern_d")])
    excess = float(bcd @ bcd) - 1.0
    if not abs(float(header.quaternion_threshold)) < excess <= _QUATERNION_ROUNDING:  # nibabel reads it as it is
        return None
    refused = "" if coded_sform else "; nibabel refuses the input, and its segmentation, which keeps the header"
    return (f"quatern_b, c, d lie {excess:.2g} beyond a unit quaternion (values rounded to a few decimals): read as "
            f"the NIfTI reference library (FSL, ITK, AFNI) reads them, normalised{refused}")


def raw_header(image):
    """``image``'s header as its file stores it, before nibabel's repairs (the loaded header when it cannot be
    read again, or for formats without one); nibabel's warnings as it reads name the file. Read once for each loaded
    image, and kept with it: a read's geometry checks ask for it ten times (each opened and decompressed the file)."""
    kept = getattr(image, _RAW_HEADER, None)
    if kept is not None:
        return kept
    raw = _read_raw_header(image)
    try:
        setattr(image, _RAW_HEADER, raw)
    except AttributeError:  # an image type that takes no attributes: read again each time
        pass
    return raw


_RAW_HEADER = "_medseg_raw_header"  # where raw_header keeps an image's header as stored


def _read_raw_header(image):
    """:func:`raw_header`, read from the file."""
    from nibabel.openers import ImageOpener

    from medseg.io.read_warnings import warnings_naming

    header = image.header
    if not isinstance(header, nib.analyze.AnalyzeHeader):
        return header
    holder = image.file_map.get("header") or image.file_map.get("image")
    try:
        # a .nii.gz stored uncompressed is opened as it is stored (ImageOpener goes by the name)
        opener = open if _uncompressed_gz(Path(holder.filename)) else ImageOpener
        with opener(holder.filename, "rb") as handle, warnings_naming(holder.filename):
            return type(header).from_fileobj(handle, check=False)
    except Exception:  # a header that reads once reads twice; this only guards odd file maps
        return header


def _check_voxel_sizes(raw, shape, name) -> None:
    sizes = shape_3d(tuple(int(n) for n in shape))
    for axis in range(3):
        size = float(raw["pixdim"][axis + 1])
        if sizes[axis] > 1 and not (np.isfinite(size) and size > 0):
            raise InputError(f"{name}: voxel size {size:g} along {'ijk'[axis]} (pixdim[{axis + 1}]) in the header; "
                             "the spacing of the voxels is unknown")


def _disagreeing_qform(image, shape: tuple[int, ...]) -> str | None:
    """A note when a NIfTI header's sform and qform (both coded) place the voxels in different places: the sform is
    used, as nibabel does; a tool that takes the qform shows the input, and the segmentation that copies its header,
    somewhere else in the world."""
    from medseg.grid_match import grid_displacement_mm, grid_tolerance_mm

    header = image.header
    if not isinstance(header, nib.Nifti1Header):  # Nifti2Header too
        return None
    sform, sform_code = header.get_sform(coded=True)
    try:
        with np.errstate(invalid="ignore", over="ignore"):  # a NaN or infinite pixdim: told below, not by numpy
            qform, qform_code = _qform(header, raw_header(image), coded=True)
    except ValueError as error:  # quatern_b, c, d beyond a unit quaternion: only the sform places the voxels
        if not sform_code or not int(raw_header(image)["qform_code"]):
            return None
        return (f"the header's qform is invalid ({first_line(error)}: quatern_b, c, d are not part of a unit "
                "quaternion): the sform is used (as nibabel does); a tool that reads the qform may refuse the input "
                "and its segmentation, or place them elsewhere")
    if not sform_code or not qform_code or _unusable_sform(header) is not None:  # the qform was used (_affine_mm)
        return None
    if not np.isfinite(qform).all():  # a NaN or infinite pixdim or qoffset: the distance below was NaN, no note
        return ("the header's qform is not finite (a voxel size in pixdim or a qoffset is NaN or infinite): the "
                "sform is used (as nibabel does); a tool that reads the qform may refuse the input and its "
                "segmentation, or place them elsewhere")
    if tilt_qform(image):  # a tilted series' file, as medseg writes it: the qform is ITK's grid for it, on purpose
        return None
    scale = _UNIT_MM.get(int(raw_header(image)["xyzt_units"]) & 7, 1.0)
    shift = grid_displacement_mm(shape, sform, qform) * scale
    if not shift > grid_tolerance_mm(np.diag([scale, scale, scale, 1.0]) @ sform):
        return None
    return (f"the header's sform and qform disagree, placing voxels up to {shift:.3g} mm apart: the sform is used "
            "(as nibabel does); a tool that reads the qform shows the input, and its segmentation, elsewhere")


def _unknown_thickness(image, shape: tuple[int, ...]) -> str | None:
    """A note when an axis of one voxel (a 2D image's slice) has a size of 0 in ``pixdim`` where the geometry is
    computed from it: nibabel then takes 1 mm, and only the volumes in ml depend on that (larger axes are refused
    by :func:`_check_voxel_sizes`)."""
    header = image.header
    if isinstance(header, nib.Nifti1Header):  # Nifti2Header too
        from_pixdim = int(raw_header(image)["sform_code"]) == 0 or _unusable_sform(header) is not None
    else:
        from_pixdim = isinstance(header, nib.analyze.AnalyzeHeader) and not _has_spm_mat(image)
    if not from_pixdim:
        return None
    raw = raw_header(image)
    for axis, size in enumerate(shape[:3]):
        pixdim = float(raw["pixdim"][axis + 1])
        if size == 1 and pixdim == 0:  # nibabel reads a negative size as its magnitude; NaN or inf is refused
            return (f"slice thickness unknown (pixdim[{axis + 1}] {pixdim:g} along {'ijk'[axis]}, an axis of one "
                    "voxel): 1 mm assumed; the volumes in ml rest on it")
    return None


def _flat_axis_filled(affine: np.ndarray, image, raw, unit_mm: float = 1.0) -> tuple[np.ndarray, str | None]:
    """``affine`` (in a unit of ``unit_mm`` mm, as pixdim) with a zero column for an axis of one voxel of ``image``
    (``raw``: its header as stored)
    filled (see :func:`_affine_mm`), and a note when its length is assumed; any other affine as it is. pixdim is
    taken whether or not the stored dimensions reach the axis: a 2D file's prediction is written with three, and both
    must read alike (nibabel writes 1 there, a file stating nothing holds 0)."""
    axis = flat_axis(affine, image.shape)
    if axis is None:
        return affine, None
    try:
        stated = abs(float(raw["pixdim"][axis + 1]))
    except (KeyError, ValueError, IndexError, TypeError):  # a format without pixdim
        stated = 0.0
    filled = flat_axis_filled(affine, axis, stated if np.isfinite(stated) and stated > 0 else 1.0 / unit_mm)
    if np.isfinite(stated) and stated > 0:
        return filled, None
    return filled, (f"slice thickness unknown (the affine's column for {'ijk'[axis]} is zero, an axis of one voxel, "
                    f"and pixdim[{axis + 1}] gives none): 1 mm assumed; the volumes in ml rest on it")


def flat_axis(affine: np.ndarray, shape) -> int | None:
    """The axis of one voxel (a 2D image's slice) whose column of ``affine`` is zero while the other two span a
    plane, which the normal to them places (:func:`flat_axis_filled`); None for any other affine."""
    columns = np.asarray(affine, dtype=np.float64)[:3, :3]
    shape = shape_3d(tuple(shape))
    if len(shape) != 3 or not np.all(np.isfinite(columns)):
        return None
    flat = [axis for axis in range(3) if not np.any(columns[:, axis])]
    if len(flat) != 1 or shape[flat[0]] != 1:
        return None
    axis = flat[0]
    normal = np.cross(columns[:, (axis + 1) % 3], columns[:, (axis + 2) % 3])
    return axis if float(np.linalg.norm(normal)) >= 1e-12 else None


def flat_axis_filled(affine: np.ndarray, axis: int, length: float) -> np.ndarray:
    """``affine`` with its zero column ``axis`` (:func:`flat_axis`) the normal to the other two (right-handed), of
    ``length``."""
    columns = np.asarray(affine, dtype=np.float64)[:3, :3]
    normal = np.cross(columns[:, (axis + 1) % 3], columns[:, (axis + 2) % 3])
    filled = np.array(affine, dtype=np.float64)
    filled[:3, axis] = normal / float(np.linalg.norm(normal)) * length
    return filled


def _has_spm_mat(image) -> bool:
    holder = image.file_map.get("mat")
    return bool(holder is not None and holder.filename and Path(holder.filename).is_file())


def qform_for(affine: np.ndarray) -> tuple[np.ndarray, int]:
    """The qform and its code written beside ``affine`` as the sform: the affine itself (code 1, scanner) where it
    has no shear. A gantry-tilted series' affine steps across slices off their normal, which a qform cannot hold:
    its qform is then the grid ITK reads such a DICOM series on — the in-plane axes as they are, the slices stacked
    along their normal at the distance between slice centres — so that ITK-based viewers (ITK-SNAP, 3D Slicer),
    which refuse a file whose only placement is sheared, open it and overlay it on the series as they show it; the
    sform keeps the exact placement, which nibabel, FSL and medseg use. Any other shear: code 0 (no qform)."""
    affine = np.asarray(affine, dtype=np.float64)
    if not is_sheared(affine):
        return affine, 1
    row, column, step = (affine[:3, k] for k in range(3))
    if abs(row @ column) > 1e-4 * np.linalg.norm(row) * np.linalg.norm(column):
        return affine, 0
    normal = np.cross(row, column)
    normal *= np.sign(normal @ step) * np.linalg.norm(step) / np.linalg.norm(normal)
    unsheared = affine.copy()
    unsheared[:3, 2] = normal
    return unsheared, 1


def tilt_qform(image) -> bool:
    """Whether a NIfTI header's qform is the one :func:`qform_for` writes beside its sheared sform (the two then
    disagree on purpose)."""
    header = image.header
    sform, sform_code = header.get_sform(coded=True)
    if not sform_code or not is_sheared(sform):
        return False
    expected, code = qform_for(sform)
    try:
        qform, qform_code = _qform(header, raw_header(image), coded=True)
    except ValueError:
        return False
    return bool(code and qform_code and np.allclose(qform, expected, atol=1e-4))


def is_sheared(affine: np.ndarray, tol: float = 1e-4) -> bool:
    """True when the affine's voxel axes are not orthogonal (a qform cannot represent it)."""
    axes = np.asarray(affine, dtype=np.float64)[:3, :3]
    axes = axes / np.linalg.norm(axes, axis=0)
    return bool(np.abs(axes.T @ axes - np.eye(3)).max() > tol)
