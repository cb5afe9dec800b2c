"""A case's arrays for its overlay (:class:`CaseArrays`): its segmentation, and its input image and reference where
they can be found and share its grid (:func:`load_case_arrays`); where not, a note says why the layer is left out."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medseg.report.case_result import CaseResult
from medseg.report.overlay_image import (
    ImageFile,
    ItkImageFile,
    SeriesImage,
    _channel_grid,
    _four_dimensional,
    _header_on_grid,
    _image_file,
    read_image_channels,
)

__all__ = ["CaseArrays", "image_modality", "load_case_arrays"]

# the overlay's logger, whichever of its modules logs: its lines are told as "DEBUG medseg.report.overlay: ..."
log = logging.getLogger("medseg.report.overlay")


@dataclass
class CaseArrays:
    """A case's label arrays (and image, when it could be read) on one grid."""

    prediction: np.ndarray
    affine: np.ndarray
    image: np.ndarray | ImageFile | ItkImageFile | SeriesImage | None = None
    reference: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)  # why the image or the reference is not shown, or how it is
    # once drawn: the 0.5th and 99.5th percentiles of the image's crop (None: no image drawn), and whether they made
    # it a CT in Hounsfield units, drawn in the CT window
    image_percentiles: tuple[float, float] | None = None
    drawn_as_ct: bool | None = None
    # the image's modality where a record says it (the DICOM series' Modality, as the sidecar records the input's, or
    # the JSON dcm2niix writes beside its NIfTI: "CT", "MR"); None where nothing says
    modality: str | None = None
    path: Path | None = None  # the segmentation's file, which the overlay's errors name

    def shown(self) -> str:
        """What an overlay of these arrays draws, for its alternative text."""
        return (f"slices of {'the input' if self.image is not None else 'the grid (no image)'} with the predicted "
                f"labels{' and the reference' if self.reference is not None else ''}")


def load_case_arrays(case: CaseResult, tolerance_mm: float | None = None) -> CaseArrays | None:
    """Read the segmentation, and the input image and reference when they can be found and share its grid (a
    reference holding the same voxels in another order is re-indexed, as scoring does). Grid problems are
    flagged by :func:`medseg.report.checks.check_segmentation` for every case; here they only leave a layer out."""
    from medseg.errors import GeometryError, MedsegError
    from medseg.grid_match import grid_displacement_mm, grid_tolerance_mm, place_onto_grid, reorder_onto_grid
    from medseg.io.dicom import SeriesGrid, read_dicom_grid
    from medseg.io.files import os_reason
    from medseg.io.images import read_image
    from medseg.report.checks import memory_text, read_case_labels, read_segmentation
    from medseg.volume import Volume

    path = case.segmentation_path()
    if path is None:
        return None
    prediction, affine, source = read_segmentation(case, path)
    arrays = CaseArrays(prediction=prediction, affine=affine, path=path)
    if tolerance_mm is None:
        tolerance_mm = grid_tolerance_mm(affine)

    def same_grid(shape, other_affine) -> bool:
        return tuple(shape) == prediction.shape and grid_displacement_mm(shape, affine, other_affine) <= tolerance_mm

    image_path = case.image_path()  # the sidecar's input, else the image --images gave
    arrays.modality = image_modality(case, image_path)
    modalities = (case.sidecar or {}).get("modalities")
    if isinstance(modalities, list) and len(modalities) > 1 and image_path is not None:
        # a multi-modal model's input: its first modality is drawn (a 4D file's first channel, or nnU-Net's _0000)
        arrays.notes.append(f"image: the first of the input's {len(modalities)} modalities ({modalities[0]}) is "
                            "shown")
    if source is not None:  # a DICOM SEG: its source series, whose headers placed it, is the image
        arrays.image = SeriesImage(source, case.input_series()) if isinstance(source, SeriesGrid) else source.array
    elif image_path is None:
        recorded = case.recorded_input()  # the sidecar's, or the image a folder's scoring was given
        arrays.notes.append(f"image not shown: {recorded} not found" if recorded else "image not shown: unknown input")
    elif image_path.is_file() and _four_dimensional(image_path, modalities) and not _header_on_grid(
            image_path, lambda shape, other_affine: same_grid(_channel_grid(shape), other_affine)):
        # told from its header, as a 3D input's is: a sidecar naming another 4D image was read whole to be left out
        arrays.notes.append(f"image not shown: {image_path.name} is not on the segmentation's grid")
    elif image_path.is_file() and _four_dimensional(image_path, modalities) and (
            lazy := _image_file(image_path, prediction.shape, first_channel=True)) is not None:
        arrays.image = lazy  # its first channel read where drawn
    elif image_path.is_file() and _four_dimensional(image_path, modalities):  # read whole; its first channel drawn
        try:
            volume = read_image_channels(image_path)
        except MedsegError as error:
            arrays.notes.append(f"image not shown: {error}")
        else:
            if same_grid(volume.shape, volume.affine):
                arrays.image = np.ascontiguousarray(volume.array[..., 0])
            else:
                arrays.notes.append(f"image not shown: {image_path.name} is not on the segmentation's grid")
    elif image_path.is_file() and not _header_on_grid(image_path, same_grid):
        # told from its header, before its voxels are read: a sidecar naming another image (a 4 MB gzip file can
        # declare 16 GiB of float32 voxels) had it read whole, to be left out
        arrays.notes.append(f"image not shown: {image_path.name} is not on the segmentation's grid")
    elif image_path.is_file() and (lazy := _image_file(image_path, prediction.shape)) is not None:
        arrays.image = lazy  # read where drawn
    elif image_path.is_dir():  # a DICOM series: placed by its headers, its files decoded where drawn
        try:
            grid = read_dicom_grid(image_path, case.input_series(), warn_skipped=False)
        except MedsegError as error:
            arrays.notes.append(f"image not shown: {error}")
        else:
            if same_grid(grid.shape, grid.affine):
                arrays.image = SeriesImage(grid, case.input_series())
            else:
                arrays.notes.append(f"image not shown: {image_path.name} is not on the segmentation's grid")
    else:
        try:
            volume = read_image(image_path, case.input_series() if image_path.is_dir() else None, warn_skipped=False)
        except MedsegError as error:
            arrays.notes.append(f"image not shown: {error}")
        else:
            if same_grid(volume.shape, volume.affine):
                arrays.image = volume.array
            else:
                arrays.notes.append(f"image not shown: {image_path.name} is not on the segmentation's grid")
    reference_path = case.reference_path()
    failure = case.failure or {}
    refused = failure.get("stage") == "evaluate" and failure.get("error_type") != "WorkerDiedError"
    if reference_path is not None and refused:
        # scoring refused this reference (labels the model does not have, another grid): drawing it in the
        # model's colours would present it as comparable
        arrays.notes.append(f"reference not shown: scoring refused {reference_path.name} (see the failure)")
    elif reference_path is not None:
        try:
            reference, reference_affine = read_case_labels(case, reference_path, (prediction.shape, affine, path))
        except Exception as error:  # an unreadable reference is reported on the page, never raised
            log.debug("%s: reference not shown", reference_path, exc_info=True)  # where in the code, at -vv
            why = f"cannot read ({os_reason(error)})" if isinstance(error, OSError) and error.strerror else \
                memory_text(error) if isinstance(error, MemoryError) else error
            arrays.notes.append(f"reference not shown: {reference_path.name}: {why}")
        else:
            # a box of the grid (3D Slicer's cropped segmentation) zero-padded where scoring did so; a reference
            # cropped since it was scored is not drawn as the one scored
            box = (case.metrics or {}).get("reference_sub_box")
            place = place_onto_grid if isinstance(box, dict) and list(box.get("shape") or ()) == list(
                np.shape(reference)) else reorder_onto_grid
            try:
                moved = place(Volume(reference, reference_affine, source=reference_path),
                              Volume(prediction, affine, source=path), tolerance_mm)
            except GeometryError:  # a box reaching past the grid that now labels voxels out there
                moved = None
            if moved is not None and same_grid(moved.shape, moved.affine):
                arrays.reference = moved.array
            else:
                arrays.notes.append(f"reference not shown: {reference_path.name} is not on the segmentation's grid")
    elif case.metrics is not None and case.named_reference() is not None:  # a duplicate's: none it was scored with
        arrays.notes.append(f"reference not shown: {case.metrics.get('reference')} not found")
    return arrays


def image_modality(case: CaseResult, image_path) -> str | None:
    """The modality of the image an overlay draws, where a record says it: the DICOM Modality of the series the case
    was segmented from (its sidecar's ``input_info.modality``), else, for a NIfTI image, the ``Modality`` of the JSON
    dcm2niix writes beside it (``<name>.json``, BIDS), or the ``modality`` ``medseg convert --sidecar`` records there.
    None where neither does, or for a DICOM SEG's source series."""
    if image_path is None:
        return None
    if image_path == case.input_path():
        modality = ((case.sidecar or {}).get("input_info") or {}).get("modality")
        if isinstance(modality, str) and modality.strip():
            return modality.strip().upper()
    name = image_path.name
    stem = name[:-7] if name.lower().endswith(".nii.gz") else name[:-4] if name.lower().endswith(".nii") else None
    if stem is None:
        return None
    return _dcm2niix_modality(image_path.with_name(stem + ".json"))


def _dcm2niix_modality(path) -> str | None:
    """The ``Modality`` of a dcm2niix JSON, or the ``modality`` of the record ``medseg convert --sidecar`` writes under
    the same name (its series' DICOM Modality, as an infer sidecar's ``input_info`` holds it; its ``source``,
    ``source_sha256`` and ``series_uid`` tell it apart). None: no such file, no such key, or a value that is no DICOM
    code string (16 characters at most: upper-case letters, digits, space, underscore). dcm2niix writes one key a
    line, and its text values as the DICOM header holds them: a line break in an address, a trailing backslash
    (``"Br38f\\"`` written ``"Br38f\"``, which escapes the closing quote) make some files that no JSON reader reads
    (TotalSegmentator's example CT's); the key is then read from its own line, as it is from a file nested deeper than
    the JSON reader goes (a crafted one: RecursionError, which cost the case its overlay)."""
    import json
    import re

    if not os.path.isfile(path):  # none (a named pipe would not end a read)
        return None
    try:
        with open(path, "rb") as file:
            text = file.read(1 << 20).decode("utf-8", errors="replace")
    except OSError:  # none, or not one to read: nothing is said by it
        return None
    try:
        record = json.loads(text, strict=False)
    except (ValueError, RecursionError):
        found = re.search(r'^\s*"Modality"\s*:\s*"([A-Za-z]{1,16})"\s*,?\s*$', text, re.MULTILINE)
        modality = found.group(1) if found else None
    else:
        own = isinstance(record, dict) and {"source", "source_sha256", "series_uid"} <= set(record)
        modality = record.get("modality" if own else "Modality") if isinstance(record, dict) else None
    if not isinstance(modality, str):
        return None
    modality = modality.strip().upper()
    return modality if re.fullmatch(r"[A-Z0-9_ ]{1,16}", modality) else None
