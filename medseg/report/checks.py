"""Checks that need the files themselves: does a label touch the volume's faces, is the segmentation on the
grid its sidecar recorded, and are the input image and the reference (as they are now) on the segmentation's
grid. Done for every case (headers only for the input and the reference), so flags never depend on which
cases get an overlay."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medseg.io.files import os_reason
from medseg.report.case_result import CaseResult

__all__ = ["SegmentationCheck", "border_voxels", "check_segmentation", "memory_shortage", "memory_text",
           "read_case_labels", "read_labels", "read_segmentation", "segmentation_header_problem"]

log = logging.getLogger(__name__)

FACE_NAMES = ("i-", "i+", "j-", "j+", "k-", "k+")


@dataclass
class SegmentationCheck:
    """Per-label voxel counts on the volume's faces, and geometry problems found."""

    path: Path | None
    shape: tuple[int, ...] | None = None
    border: dict[str, dict[str, int]] = field(default_factory=dict)  # label value -> {face: voxels}
    reference_border: dict[str, dict[str, int]] | None = None  # the same for the reference, when it was read
    geometry: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what was not checked, and why
    # a prediction DICOM SEG stating another FrameOfReferenceUID than its series' images, as reading it here found
    # ({"seg": its UID, "series": the images'}): flagged for a case without a metrics record to say so
    frame_of_reference_mismatch: dict | None = None


def memory_text(error: MemoryError, what: str = "it") -> str:
    """A file (``what``) left unread for want of memory, as the report's notes say it: ``there was too little memory
    to read it`` and numpy's words where it has any (``Unable to allocate 3.20 GiB for an array …``); it was said as
    the file's fault, "cannot read (…)", or "cannot read ()" for a bare MemoryError."""
    detail = " ".join(str(error).split())
    return f"there was too little memory to read {what}" + (f" ({detail})" if detail else "")


def memory_shortage(error: BaseException) -> MemoryError | None:
    """The MemoryError behind ``error``: itself, or the cause of a reader's error that words it (a DICOM SEG too
    large for the memory left is an ImageReadError saying so); None for any other error."""
    if isinstance(error, MemoryError):
        return error
    return error.__cause__ if isinstance(error.__cause__, MemoryError) else None


def read_labels(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A label image's integer array and affine (in mm, as medseg reads every NIfTI), without converting it to
    float."""
    import nibabel as nib

    from medseg.errors import ImageReadError, InputError
    from medseg.io.image_shape import as_3d
    from medseg.io.itk_image import is_itk_name
    from medseg.io.nifti import grey_level_problem, non_finite_error
    from medseg.io.nifti_files import check_voxels_fit, cut_short_text, load_image
    from medseg.io.nifti_geometry import affine_mm
    from medseg.io.nifti_voxels import read_stored_labels
    from medseg.volume import singular_affine_text

    if is_itk_name(path):  # NRRD / MetaImage: SimpleITK reads it in its stored integer type
        from medseg.io.itk_image import read_itk_image

        volume = read_itk_image(path, hash_input=False, labels=True)
        array = volume.array
        return (array if np.issubdtype(array.dtype, np.integer) else np.rint(array).astype(np.int32)), volume.affine
    if path.is_file():  # a file this user may not open: the OS's reason, where nibabel said "Could not read file: …"
        with open(path, "rb"):
            pass
    try:
        image = load_image(path)
    except nib.filebasedimages.ImageFileError as error:
        cut = cut_short_text(path)  # empty, or a header cut short: as reading the image says it
        if cut is not None:
            raise ImageReadError(cut) from error
        raise
    # refused as scoring refuses them, in its words: a header declaring more voxels than the file holds (read, they
    # were terabytes to allocate), complex or RGB voxels, NaN or infinite ones (cast to integers as anything), an
    # affine that places no voxel (drawing it met "SVD did not converge")
    check_voxels_fit(path, image)
    problem = grey_level_problem(path, np.dtype(image.get_data_dtype()))
    if problem is not None:
        raise InputError(problem)
    affine = affine_mm(image)[0]
    unplaced = singular_affine_text(affine)
    if unplaced is not None:
        raise InputError(f"{path}: {unplaced}")
    array = read_stored_labels(image)  # a gzip-compressed file: one copy of its voxels at a time, not two
    array = as_3d(array if array is not None else np.asanyarray(image.dataobj))
    if not np.issubdtype(array.dtype, np.integer):
        if not np.isfinite(array).all():
            raise non_finite_error(path, array)
        array = np.rint(array).astype(np.int32)
    return array, affine


def read_case_labels(case: CaseResult, path: Path, grid: tuple | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A case's label image (its reference) as :func:`read_labels` gives it; a DICOM SEG (another tool's
    reference) placed as scoring placed it: on the source series the case's sidecar records, or, for a case not
    segmented from a DICOM series (a conversion of it), or whose series has since moved (a NIfTI segmentation: its
    grid is the series'), by its frames' own geometry on ``grid``, the segmentation's ``(shape, affine, source)``;
    where the sidecar names no labels, its segments paired by name with those the case's metrics record names (a
    dataset.json's or a --model's, as scoring paired them; a segment no name pairs, as one scoring paired by its
    codes, drawn as its segment number, as before)."""
    from medseg.io.files import is_dicom_file

    if not is_dicom_file(path):
        return read_labels(path)
    from medseg.io.label_images import made_from_series, read_seg_on_prediction_grid, series_gone
    from medseg.io.seg_volume import read_seg_volume

    sidecar = case.sidecar or {}
    if grid is not None and (not made_from_series(sidecar) or (
            not is_dicom_file(grid[2]) and series_gone(path, sidecar, case.input_path()))):
        volume = read_seg_on_prediction_grid(path, *grid, sidecar, warn_missing=False, source_path=case.input_path(),
                                             names=None if sidecar.get("labels") else _scored_names(case),
                                             names_from="the case's metrics record", strict=False)
        return volume.array, volume.affine

    # a second reading: scoring warned about what the reference lacks, in its own log (the source's headers place it)
    volume = read_seg_volume(path, case.sidecar or {}, case.input_path(), warn_skipped=False, warn_missing=False)
    return volume.array, volume.affine


def _scored_names(case: CaseResult) -> dict[int, str] | None:
    """Label value → name as the case's metrics record names the labels scored; None where it names none."""
    names = {}
    for value, entry in ((case.metrics or {}).get("labels") or {}).items():
        if isinstance(entry, dict) and isinstance(entry.get("name"), str) and str(value).isdigit():
            names[int(value)] = entry["name"]
    return names or None


def read_segmentation(case: CaseResult, path: Path, with_source: bool = True):
    """A case's segmentation as (labels, affine, source): a NIfTI as :func:`read_labels` reads it (source None), a
    DICOM SEG placed on the source series its sidecar records (found where it lies now) from that series' headers,
    with the series' grid (:class:`~medseg.io.dicom.SeriesGrid`, ``with_source``: an overlay decodes the files it
    draws from it; else None)."""
    labels, affine, source, _ = _read_segmentation_with_info(case, path)
    return labels, affine, source if with_source else None


def _read_segmentation_with_info(case: CaseResult, path: Path):
    """:func:`read_segmentation`'s (labels, affine, source) and what reading a DICOM SEG found (its volume's
    ``info``: ``frame_of_reference_mismatch`` and so on; empty for a label image)."""
    if path.suffix.lower() == ".dcm":
        from medseg.io.seg_volume import read_seg_with_grid

        sidecar = case.sidecar if case.sidecar is not None else _sidecar_beside(path)
        # the report reads inputs again: their skipped files were named when the case was segmented; what the SEG
        # itself is warned of, once per case (the grid check and the overlay each read it)
        volume, source = read_seg_with_grid(path, sidecar or {}, case.input_path(), warn_skipped=False,
                                            warn_missing=not case.segmentation_told)
        case.segmentation_told = True
        return volume.array, volume.affine, source, dict(volume.info or {})
    return (*read_labels(path), None, {})


def _sidecar_beside(path: Path) -> dict:
    """The sidecar ``medseg infer`` wrote beside a DICOM SEG, which places it on its series, for a case whose results
    folder holds its metrics only (``medseg evaluate PRED_DIR REF_DIR -o OUT_DIR``); empty where it cannot be read
    (reading the SEG then says what it lacks)."""
    from medseg.io.label_images import prediction_sidecar
    from medseg.jsonfile import RESULT_BYTES, JsonFileError, read_json_object

    try:
        return read_json_object(prediction_sidecar(path), RESULT_BYTES, "a prediction sidecar")
    except (OSError, JsonFileError):
        return {}


def _scored_as_box(metrics: dict | None, shape, affine, reference_shape, reference_affine,
                   tolerance_mm: float | None = None) -> bool:
    """Whether the metrics scored the reference as a box of the prediction's grid (``reference_sub_box``, 3D Slicer's
    cropped segmentation) and the two headers still place it there (then the prediction has more voxels)."""
    from medseg.grid_match import sub_box_placement

    box = (metrics or {}).get("reference_sub_box")
    if not isinstance(box, dict) or list(box.get("shape") or ()) != [int(n) for n in reference_shape]:
        return False
    # a box reaching past the grid was scored cropped to it (its voxels out there all 0, as scoring checked)
    placed = sub_box_placement(reference_shape, reference_affine, shape, affine, tolerance_mm, beyond=True)
    return isinstance(placed, tuple) and list(placed[2]) == list(box.get("offset_voxels") or ())


def segmentation_header_problem(case: CaseResult, path: Path) -> str | None:
    """Why a NIfTI segmentation is left unread, told from its header: a shape other than the input's its sidecar
    records, or, for a prediction only metrics name, more voxels than its reference's header declares (a file
    replaced afterwards; a 4 MB gzip file can declare 16 GiB of voxels, which the report would read whole only to
    flag). None where the header agrees, or cannot be read (reading the file names the problem)."""
    from medseg.errors import MedsegError
    from medseg.io.images import read_grid

    if path.suffix.lower() == ".dcm":  # a DICOM SEG is placed on its source series as it is read
        return None
    try:
        shape, affine = read_grid(path)
    except (MedsegError, OSError, ValueError, ArithmeticError):
        return None
    recorded = (case.sidecar or {}).get("shape")
    if recorded is not None:
        if list(recorded) != list(shape):
            return (f"segmentation shape {tuple(shape)} differs from the input's {tuple(recorded)} recorded in the "
                    "sidecar (not read)")
        return None
    reference = case.reference_path() if case.metrics is not None else None
    if reference is None or not reference.is_file():
        return None
    try:
        reference_shape, reference_affine = read_grid(reference)
    except (MedsegError, OSError, ValueError, ArithmeticError):
        return None
    if _scored_as_box(case.metrics, shape, affine, reference_shape, reference_affine):
        return None
    if math.prod(shape) > math.prod(reference_shape):  # the same voxels in another order have as many
        return (f"{path.name}: shape {tuple(shape)}, more voxels than its reference {reference.name} "
                f"{tuple(reference_shape)} (not read)")
    return None


def border_voxels(labels: np.ndarray) -> dict[str, dict[str, int]]:
    """For every non-zero label, how many of its voxels lie on each face of the volume."""
    out: dict[str, dict[str, int]] = {}
    faces = [labels[0], labels[-1], labels[:, 0], labels[:, -1], labels[:, :, 0], labels[:, :, -1]]
    for name, face in zip(FACE_NAMES, faces):
        values, counts = np.unique(face, return_counts=True)
        for value, count in zip(values.tolist(), counts.tolist()):
            if value != 0:
                out.setdefault(str(value), {})[name] = int(count)
    return out


def check_segmentation(case: CaseResult, tolerance_mm: float | None = None) -> SegmentationCheck:
    """Read a case's segmentation (if any) and check its border contact and its grid against the sidecar (within
    ``tolerance_mm``, by default scoring's :func:`medseg.grid_match.grid_tolerance_mm` of its grid)."""
    from medseg.grid_match import grid_displacement_mm, grid_tolerance_mm

    if case.status == "failed" and not case.failed_at_scoring:  # no segmentation of this run to check
        return SegmentationCheck(path=None)
    path = case.segmentation_path()
    if path is None:
        return SegmentationCheck(path=None, geometry=["segmentation file not found"])
    problem = segmentation_header_problem(case, path)
    if problem is not None:  # told from its header, its voxels left unread
        return SegmentationCheck(path=path, geometry=[problem])
    try:
        labels, affine, _, info = _read_segmentation_with_info(case, path)  # its grid places a DICOM SEG
    except Exception as error:  # any unreadable file is reported on the page, never raised
        short = memory_shortage(error)
        if short is not None:  # not the file's fault: not checked, no geometry flag; the next case is read
            log.debug("%s: not checked", path, exc_info=True)
            return SegmentationCheck(path=path, notes=[f"{path.name}: not checked: {memory_text(short)}"])
        log.debug("%s: cannot read", path, exc_info=True)  # where in the code, at -vv
        # an OS error as every message words it: its reason alone, in lower case
        why = os_reason(error) if isinstance(error, OSError) and error.strerror else error
        return SegmentationCheck(path=path, geometry=[f"{path.name}: cannot read ({why})"])
    mismatch = info.get("frame_of_reference_mismatch")
    check = SegmentationCheck(path=path, shape=tuple(labels.shape),
                              frame_of_reference_mismatch=dict(mismatch) if isinstance(mismatch, dict) else None)
    if labels.ndim != 3:
        check.geometry.append(f"{path.name}: not a 3D image (shape {labels.shape})")
        return check
    check.border = border_voxels(labels)
    if tolerance_mm is None:
        tolerance_mm = grid_tolerance_mm(affine)
    sidecar = case.sidecar or {}
    if sidecar.get("shape") is not None and list(sidecar["shape"]) != list(labels.shape):
        check.geometry.append(f"segmentation shape {tuple(labels.shape)} differs from the input's "
                              f"{tuple(sidecar['shape'])} recorded in the sidecar")
    elif sidecar.get("affine") is not None:
        shift = grid_displacement_mm(labels.shape, np.asarray(sidecar["affine"], dtype=float), affine)
        if not shift <= tolerance_mm:
            check.geometry.append(f"segmentation affine moves voxels up to {shift:.3g} mm from the input's")
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    thin = [axis for axis, n in enumerate(labels.shape) if n == 1]
    if thin:  # nothing in the image measures that axis: the header's voxel size is the whole thickness
        check.notes.append(f"a single slice along file axis {'ijk'[thin[0]]}: its volumes (ml) rest on the "
                           f"header's voxel size there ({spacing[thin[0]]:.4g} mm)")
    recorded = (case.metrics or {}).get("spacing_mm")
    if recorded is not None and not np.allclose(recorded, spacing, atol=1e-3):
        check.geometry.append(f"metrics were computed with voxel size {recorded}, the file has {spacing.round(4)}")
    _check_input_and_reference(case, check, affine, tolerance_mm)
    return check


def _check_input_and_reference(case: CaseResult, check: SegmentationCheck, affine: np.ndarray,
                               tolerance_mm: float) -> None:
    """Is the input image, as it is now, on the segmentation's grid; and the reference (allowing the same voxels
    in another order, which scoring re-indexes)?"""
    from medseg.errors import MedsegError
    from medseg.grid_match import grid_displacement_mm, grid_reordering, on_tilt_grid, sub_box_placement
    from medseg.io.files import is_dicom_file
    from medseg.io.images import read_grid

    shape = tuple(check.shape)
    image_path = case.image_path()
    if image_path is not None:
        try:
            image_shape, image_affine = read_grid(image_path, case.input_series() if image_path.is_dir() else None,
                                                  warn_skipped=False)
        except MedsegError as error:
            check.notes.append(f"input image not checked: {error}")
        else:
            if (case.sidecar or {}).get("modalities"):  # a 4D (or 5D vector) input of a multi-modal model
                from medseg.io.image_shape import channel_shape

                grid = channel_shape(image_shape)
                image_shape = tuple(grid[:3]) if len(grid) == 4 else image_shape
            if image_shape != shape or not grid_displacement_mm(shape, affine, image_affine) <= tolerance_mm:
                check.geometry.append(f"input image {image_path.name} is not on the segmentation's grid (shape "
                                      f"{image_shape} vs {shape}); was it replaced after inference?")
    reference_path = case.reference_path()
    if reference_path is not None and case.metrics is not None and is_dicom_file(reference_path):
        # a DICOM SEG reference lies on the source images it references, as scoring placed it: no grid to compare
        if check.border:
            check.reference_border = _reference_border(case, reference_path, (0, 1, 2), (False, False, False), check,
                                                       grid=(shape, affine, case.segmentation_path()))
    elif reference_path is not None and case.metrics is not None:
        try:
            reference_shape, reference_affine = read_grid(reference_path)
        except MedsegError as error:
            check.notes.append(f"reference not checked: {error}")
        else:
            # the same grid is the identity reordering; the same voxels in another order are scored re-indexed
            found = grid_reordering(reference_shape, reference_affine, shape, affine, tolerance_mm)
            if found is None and on_tilt_grid(reference_shape, reference_affine, shape, affine, tolerance_mm):
                found = ((0, 1, 2), (False, False, False))  # a tilted series' ITK grid: scored on the same voxels
            box = None
            if found is None and _scored_as_box(case.metrics, shape, affine, reference_shape, reference_affine,
                                                tolerance_mm):  # a box of the grid (3D Slicer's cropped
                # segmentation), which scoring zero-padded onto the grid; a file now cropped that was not is flagged
                placed = sub_box_placement(reference_shape, reference_affine, shape, affine, tolerance_mm,
                                           beyond=True)
                found, box = (placed[0], placed[1]), placed[2]
            if found is None:
                check.geometry.append(f"reference {reference_path.name} is not on the segmentation's grid")
            elif check.border:  # read in full only when the prediction touches a face (it may then be flagged)
                check.reference_border = _reference_border(case, reference_path, *found, check, box, shape)


def _reference_border(case: CaseResult, path: Path, axes: tuple[int, ...], flips: tuple[bool, ...],
                      check: SegmentationCheck, start: list[int] | None = None,
                      shape: tuple[int, ...] | None = None, grid: tuple | None = None
                      ) -> dict[str, dict[str, int]] | None:
    """The reference's voxels on each face of the segmentation's grid (a structure the field of view cuts off
    touches a face in both): read in full, re-indexed as scoring does (and, a box of the grid, its first voxel at
    ``start`` of a grid of ``shape``, cropped to the grid and zero-padded onto it; a DICOM SEG of a case not made
    from its series placed on ``grid``, as :func:`read_case_labels` does)."""
    try:
        labels, _ = read_case_labels(case, path, grid)
    except Exception as error:  # reported on the page, never raised
        log.debug("%s: reference border not checked", path, exc_info=True)  # where in the code, at -vv
        short = memory_shortage(error)
        why = f"{path.name}: {memory_text(short)}" if short is not None else error
        check.notes.append(f"reference border not checked: {why}")
        return None
    labels = np.transpose(labels, axes)
    if any(flips):
        labels = np.flip(labels, axis=[t for t in range(3) if flips[t]])
    if start is not None and shape is not None:  # a box reaching past the grid was scored cropped to it
        from medseg.grid_match import box_on_grid

        part, region = box_on_grid(start, labels.shape, shape)
        padded = np.zeros(shape, dtype=labels.dtype)
        padded[region] = labels[part]
        labels = padded
    return border_voxels(labels)
