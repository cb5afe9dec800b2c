"""Reading one DICOM series folder into a :class:`~medseg.volume.Volume`.

``read_dicom_series`` scans the folder (:mod:`medseg.io.dicom_series`), chooses a series explicitly or
refuses, orders the slices and builds the affine (:mod:`medseg.io.dicom_geometry`), decodes the pixels
(compressed transfer syntaxes go through pydicom's pylibjpeg / pyjpegls plugins) and applies each slice's
RescaleSlope / RescaleIntercept. ``describe_folder`` gives what ``medseg inspect`` shows.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from pydicom.uid import RLELossless

from medseg.array_order import fortran_order
from medseg.caller_warnings import warning
from medseg.errors import DicomError, ImageReadError, InputError, first_line
from medseg.io.dicom_instances import missing_instances_text
from medseg.io.dicom_messages import FileMessages
from medseg.io.dicom_series import (
    DicomFrame,
    FolderScan,
    SeriesCandidate,
    choose_series,
    positional_key_note,
    scan_folder,
    study_names,
    study_value,
    transfer_syntax,
)
from medseg.io.files import absolute_path
from medseg.io.nifti_geometry import qform_for
from medseg.io.nifti_write import save_nifti
from medseg.numbers import counted, gib_text
from medseg.resources import physical_memory
from medseg.settings_named import ANY, setting
from medseg.volume import Volume, header_precision

__all__ = ["DicomSource", "SeriesGrid", "read_dicom_series", "read_dicom_grid", "describe_folder", "convert_dicom",
           "volume_image", "series_sha256", "conversion_series_uid", "POLICY"]

log = logging.getLogger(__name__)

POLICY = {
    "slice_order": "projection of ImagePositionPatient on the slice normal",
    "slice_spacing": "mean position step between first and last slice (SliceThickness ignored)",
    "uneven_spacing": "refused (step off the median by >1% or 0.01 mm)",
    "missing_slices": "refused (a step close to a whole multiple of the others)",
    "gantry_tilt": "kept exactly with a sheared affine (sform), flagged 'tilt'",
    "4d_or_repeated_positions": "refused",
    "mosaic": "refused",
    "multi_frame_enhanced": "read from per-frame functional groups like single-frame slices",
    "intensity": "RescaleSlope/RescaleIntercept applied per slice, float32 (medseg convert stores int16 when every "
                 "value is a whole number within its range)",
    "non_dicom_files": "skipped and listed",
    "localizers_and_non_images": "never chosen automatically",
}


@dataclass(frozen=True)
class DicomSource:
    """The source images of a converted volume, in slice order k = 0, 1, ... (for DICOM SEG output)."""

    series_uid: str
    paths: tuple[Path, ...]  # file of slice k
    frames: tuple[int | None, ...]  # frame of slice k in a multi-frame file (0-based), None if single-frame
    # the files' headers as the series' reading read them (their pixel data dropped), by path, where it kept them
    # (``keep_headers``): a DICOM SEG made of the volume takes them, where it read every file's header again
    headers: dict[Path, pydicom.Dataset] | None = field(default=None, repr=False, compare=False)


def read_dicom_series(folder: Path | str, series: str | None = None, warn_skipped: bool = True,
                      check_grid: Callable[[tuple[int, ...], np.ndarray], None] | None = None,
                      keep_headers: bool = False) -> Volume:
    """Convert the chosen series under ``folder`` to a float32 volume with a voxel → RAS+ affine (``warn_skipped``:
    warn about files that are not DICOM, and log which series is used and why; False for a second reading of an
    input, as the report's, whose ``series`` is the one its sidecar records rather than a user's --series).
    ``check_grid(shape, affine)`` is called with the series' grid from its headers, before any pixel is decoded.
    ``keep_headers``: the volume's ``dicom.headers`` keeps the files' headers as read (for a DICOM SEG of it)."""
    folder = Path(folder)
    scan, candidate, reason, rejected = _chosen_series(folder, series, warn_skipped)
    if "per-slice-bits" in candidate.flags:  # legitimate in some exports (values beyond a file's own: flagged below)
        log.info("%s: the files of %s state different BitsStored; each is decoded by its own", folder,
                 candidate.label())
    if "monochrome1" in candidate.flags and warn_skipped:  # (not again on a second reading of the input)
        warning(log, "%s: %s is MONOCHROME1 (high values display dark): read as stored (rescaled), not inverted; "
                    "unless they are physical units (HU), a model trained on MONOCHROME2 images sees its contrast "
                    "reversed", folder, candidate.label())
    missing = missing_instances_text(candidate, scan.candidates)
    if missing is not None and warn_skipped:  # (not again on a second reading of the input)
        # evenly spaced without its first or last files: read a slice short, untold
        warning(log, "%s: %s: %s", folder, candidate.label(), missing)
    geometry = candidate.geometry
    if check_grid is not None:
        check_grid(tuple(int(n) for n in geometry.shape), np.asarray(geometry.affine, np.float64))
    _check_decoding_fits(folder, candidate)
    frames = [candidate.frames[index] for index in geometry.order]
    columns, rows, _ = geometry.shape
    array = None  # allocated once the first slice has decoded to the headers' Rows × Columns
    cache: dict[Path, np.ndarray] = {}
    beyond: dict[Path, str] = {}  # files whose values pydicom's masking to BitsStored changed
    with FileMessages(folder) as messages:
        for k, frame in enumerate(frames):
            with messages.about(frame.path):
                pixels = _pixels(frame.path, candidate.datasets[frame.path], cache, beyond)
            plane = _frame_plane(frame, pixels, candidate, (rows, columns))
            if array is None:
                array = _volume_array(folder, candidate.label(), geometry.shape)
                # a few planes gathered, then put in the volume together (one alone is written one voxel per slice
                # apart); allocated with the volume, once a slice has decoded to the headers' size
                count = max(1, min(_PLANES_AT_ONCE, _PLANE_BYTES // max(rows * columns * 4, 1)))
                planes = np.empty((count, rows, columns), dtype=np.float32)
            planes[k % len(planes)] = _rescaled(plane, frame)
            if frame.frame is None:  # a single-frame file is read once: what its pixels held in memory can go
                _forget_pixels(candidate.datasets[frame.path])
            if k % len(planes) == len(planes) - 1 or k == len(frames) - 1:
                _put_planes(array, planes[:k % len(planes) + 1], k - k % len(planes))
    if not np.all(np.isfinite(array)):
        raise DicomError(f"{folder}: {candidate.label()} has NaN or infinite voxel values")
    flags = list(candidate.flags)
    if beyond:
        path, note = next(iter(beyond.items()))
        others = f" (and {counted(len(beyond) - 1, 'more file')})" if len(beyond) > 1 else ""
        warning(log, "%s: %s: %s%s; read as pydicom reads them, masked to BitsStored: right if the high bits hold an "
                    "overlay (its tags may have been removed), wrong if the header understates the bits; compare "
                    "the intensities with the scanner's", folder, _relative(path, folder), note, others)
        flags.append("bits-beyond-stored")
    files = candidate.files
    info = _series_info(folder, scan, candidate, reason, series, rejected, flags)
    if missing is not None:  # in the sidecar, and on the case's card in the report (every input_info *_note)
        info["lost_files_note"] = missing
    digests = _file_digests(files)
    info["file_sha256"] = _digests_by_name(files, digests, folder)
    headers = None
    if keep_headers:
        headers = {frame.path: candidate.datasets[frame.path] for frame in frames}
        for dataset in headers.values():  # a multi-frame file's pixels too: the volume holds them now
            _forget_pixels(dataset)
    source = DicomSource(candidate.uid, tuple(f.path for f in frames), tuple(f.frame for f in frames), headers)
    return Volume(array=array, affine=geometry.affine, source=folder, header=None,
                  source_sha256=_combined(digests), info=info, dicom=source)


def _frame_plane(frame: DicomFrame, pixels: np.ndarray, candidate: SeriesCandidate, size: tuple[int, int]
                 ) -> np.ndarray:
    """The stored values of ``frame`` (rows × columns) in its file's decoded ``pixels``, refused where they are not
    of the headers' ``size``."""
    plane = pixels[frame.frame] if frame.frame is not None and pixels.ndim == 3 else pixels  # 1 frame: 2D
    if plane.shape != size:
        raise DicomError(f"{frame.path}: pixel data of shape {plane.shape}, expected {size}: "
                         f"{_header_and_pixels(candidate.datasets[frame.path])}")
    return plane


def _rescaled(plane: np.ndarray, frame: DicomFrame) -> np.ndarray:
    """A frame's stored values rescaled (RescaleSlope, RescaleIntercept) in float64, then made float32: the voxels
    of the volume."""
    return (plane.astype(np.float64) * frame.slope + frame.intercept).astype(np.float32)


@dataclass(frozen=True)
class SeriesGrid:
    """A DICOM series' grid read from its headers alone, no pixel decoded: what placing a DICOM SEG on the series
    needs (its shape, affine, source images in slice order, hash and description, as
    :func:`read_dicom_series` gives them for its volume, whose ``info`` may also flag bits beyond BitsStored, which
    only the pixels tell), without the voxels; :meth:`slices` decodes some of them."""

    shape: tuple[int, ...]
    affine: np.ndarray
    source: Path
    source_sha256: str
    info: dict
    dicom: DicomSource
    candidate: SeriesCandidate | None = field(default=None, repr=False, compare=False)  # the series' headers

    def scaling(self) -> list[tuple[float, float]]:
        """(RescaleSlope, RescaleIntercept) of each slice, in slice order."""
        return [(frame.slope, frame.intercept) for frame in self._frames()]

    def header_bits(self) -> int | None:
        """The most BitsAllocated of the series' files, from their headers; None where a file holds float pixel
        data or states no BitsAllocated (a number of bits its decoded values cannot be told by)."""
        bits = 0
        for path in self.candidate.files:
            dataset = self.candidate.datasets[path]
            if "PixelData" not in dataset or "FloatPixelData" in dataset or "DoubleFloatPixelData" in dataset:
                return None
            value = _header_int(dataset, "BitsAllocated", 0)
            if not value:
                return None
            bits = max(bits, value)
        return bits

    def slices(self, start: int, stop: int) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """Slices ``start`` to ``stop - 1`` of the volume :func:`read_dicom_series` reads, decoded one file at a
        time: ``(k, stored, voxels)``, the stored values and the float32 voxels (the same, bit for bit) of slice k,
        both indexed (column i, row j) as the volume is. The files' pixel data is not kept: a slice may be read
        again. Files that cannot be decoded raise as there (:class:`~medseg.errors.ImageReadError`,
        :class:`~medseg.errors.DicomError`); values beyond BitsStored, which that reading warns about, are logged at
        debug level only (the series was read whole when it was segmented)."""
        candidate, frames = self.candidate, self._frames()
        columns, rows = self.shape[0], self.shape[1]
        cache: dict[Path, np.ndarray] = {}
        beyond: dict[Path, str] = {}
        try:
            with FileMessages(self.source, report=False):
                for k in range(max(start, 0), min(stop, len(frames))):
                    frame = frames[k]
                    dataset = candidate.datasets[frame.path]
                    kept = dataset.get_item("PixelData", keep_deferred=True) if frame.path not in cache else None
                    try:
                        pixels = _pixels(frame.path, dataset, cache, beyond)
                    finally:
                        if kept is not None:  # the file's pixel data and pydicom's decoded copy go; the header stays
                            dataset["PixelData"] = kept
                    plane = _frame_plane(frame, pixels, candidate, (rows, columns))
                    yield k, plane.T, _rescaled(plane, frame).T
        finally:
            cache.clear()
        for path, note in beyond.items():
            log.debug("%s: %s", path, note)

    def _frames(self) -> list[DicomFrame]:
        if self.candidate is None:
            raise DicomError(f"{self.source}: the grid of a series was made without its headers")
        return [self.candidate.frames[index] for index in self.candidate.geometry.order]


def read_dicom_grid(folder: Path | str, series: str | None = None, warn_skipped: bool = True,
                    scan: FolderScan | None = None) -> SeriesGrid:
    """The grid of the series :func:`read_dicom_series` would read under ``folder`` (``series`` and ``warn_skipped``
    as there), from the files' headers: the series chosen, ordered and checked as one volume (orientation, spacing,
    slice positions) as that reading does, its pixels neither read nor decoded (evaluate against a SEG of a
    512×512×600 CT: 1.50 GB at the peak, 2.17 GB when the series was read whole). ``scan``: the folder's
    :func:`~medseg.io.dicom_series.scan_folder` where it was made already (its headers are not read again)."""
    folder = Path(folder)
    scan, candidate, reason, rejected = _chosen_series(folder, series, warn_skipped, scan)
    geometry = candidate.geometry
    frames = [candidate.frames[index] for index in geometry.order]
    info = _series_info(folder, scan, candidate, reason, series, rejected, list(candidate.flags))
    digests = _file_digests(candidate.files)
    info["file_sha256"] = _digests_by_name(candidate.files, digests, folder)
    return SeriesGrid(shape=tuple(int(n) for n in geometry.shape), affine=geometry.affine, source=folder,
                      source_sha256=_combined(digests), info=info,
                      dicom=DicomSource(candidate.uid, tuple(f.path for f in frames), tuple(f.frame for f in frames)),
                      candidate=candidate)


def _chosen_series(folder: Path, series: str | None, warn_skipped: bool, scan: FolderScan | None = None
                   ) -> tuple[FolderScan, SeriesCandidate, str, list[SeriesCandidate]]:
    """The folder's scan (``scan``, where made already), the series chosen in it (and why), and the image series
    passed over as broken, with what the choice is worth telling (what its pixels are worth telling is
    :func:`read_dicom_series`'s)."""
    scan = scan if scan is not None else scan_folder(folder, warn_skipped=warn_skipped)
    candidate, reason = choose_series(scan, series)
    positional = positional_key_note(scan, candidate, setting("series", ANY)) if str(series).strip() == candidate.key \
        else None
    if positional and warn_skipped:
        warning(log, "%s: %s: %s", folder, setting("series", series), positional)
    rejected = [c for c in scan.candidates if c is not candidate and not c.localizer and c.problem is not None]
    if rejected and series is None:  # a series that would have been chosen had it not been broken: say so loudly
        warning(log, "%s: using %s; %d other image series could not be used: %s", folder, candidate.label(),
                    len(rejected), "; ".join(f"{c.label()}: {c.problem}" for c in rejected))
    elif warn_skipped:
        log.info("%s: using %s: %s", folder, candidate.label(), reason)
    else:
        log.debug("%s: reading %s again", folder, candidate.label())
    return scan, candidate, reason, rejected


def _series_info(folder: Path, scan: FolderScan, candidate: SeriesCandidate, reason: str, series: str | None,
                 rejected: list[SeriesCandidate], flags: list[str]) -> dict:
    """What a read series records of itself (a volume's ``info``)."""
    geometry = candidate.geometry
    files = candidate.files
    first = candidate.datasets[files[0]]
    info = {
        "format": "dicom",
        "series_uid": candidate.uid,
        "series_number": candidate.number,
        "series_key": candidate.key,
        "description": candidate.description,
        "modality": candidate.modality,
        "image_type": list(candidate.image_type),
        "patient_position": str(first.get("PatientPosition", "")) or None,
        "transfer_syntax": str(first.file_meta.get("TransferSyntaxUID", "")) if first.file_meta else None,
        "files": len(files),
        "slices": len(candidate.frames),
        "orientation": geometry.orientation,
        "plane": geometry.plane,
        "spacing_mm": [header_precision(v) for v in geometry.spacing_mm],
        "tilt_deg": geometry.tilt_deg,
        "flags": flags,
        "selection": reason,
        # image series of the folder that could not be one volume, passed over by an automatic choice: the broken
        # one may be the series wanted (the report shows them on the case's card)
        "passed_over": [f"{c.label()}: {c.problem}" for c in rejected] if series is None else [],
        "skipped_files": [f"{_relative(p, folder)}: {why}" for p, why in scan.skipped],
        "ignored_objects": [f"{_relative(p, folder)}: {why}" for p, why in scan.non_image],
        "policy": POLICY,
    }
    if candidate.copies:  # files skipped as copies of a file read: verify does not take one for that file renamed
        info["copy_files"] = {Path(_relative(copy, folder)).as_posix(): Path(_relative(original, folder)).as_posix()
                              for copy, original in sorted(candidate.copies.items())}
    return info


def convert_dicom(folder: Path | str, output: Path | str, series: str | None = None, overwrite: bool = False,
                  sidecar: bool = False) -> Volume:
    """Convert the chosen series under ``folder`` to a NIfTI file (and a JSON sidecar), atomically.

    Voxels are written as int16 when every value is a whole number in its range (no loss), else float32.
    """
    import json

    from medseg.io.atomic import atomic_paths, check_writable

    output = Path(output)
    if not output.name.lower().endswith((".nii", ".nii.gz")):  # ct.NII.GZ too, as every input is read
        raise InputError(f"{output}: the output must be a .nii or .nii.gz file")
    targets = [output] + ([_sidecar_path(output)] if sidecar else [])
    check_writable(targets, overwrite)
    # an earlier conversion's sidecar would describe another series than the file now under its name
    # (only when that conversion is the file replaced: t1.nii and t1.nii.gz share t1.json)
    twin = output.with_name(output.name[:-3] if output.name.lower().endswith(".gz") else output.name + ".gz")
    stale = overwrite and not sidecar and output.exists() and not twin.exists() and _own_sidecar(_sidecar_path(output))
    retire = [_sidecar_path(output)] if stale else []
    volume = read_dicom_series(folder, series=series)
    with atomic_paths(targets, overwrite=overwrite, retire=retire) as temps:
        save_nifti(volume_image(volume), temps[0])
        if sidecar:
            # the folder by its absolute path, as an infer sidecar's input is: read from elsewhere "dcm" names none
            record = {"source": str(absolute_path(volume.source)), "source_sha256": volume.source_sha256,
                      "shape": list(volume.shape),
                      "affine": volume.affine.tolist(), **volume.info}
            temps[1].write_text(json.dumps(record, indent=2) + "\n")
    log.info("%s: wrote %s", folder, output)
    return volume


def volume_image(volume: Volume) -> nib.Nifti1Image:
    """A NIfTI image of ``volume``: its affine as sform and qform (code 1, scanner; for a gantry tilt's sheared
    affine, the qform is the grid ITK reads the series on: :func:`~medseg.io.nifti_geometry.qform_for`), int16 when
    lossless."""
    array = volume.array
    lossless = array.size and np.all(array == np.rint(array)) and array.min() >= -32768 and array.max() <= 32767
    # in NIfTI's order on disk: nibabel writes a C-ordered volume one slice at a time, each gathered a slice's width
    # apart (medseg.array_order)
    data = fortran_order(array, np.int16 if lossless else np.float32)
    image = nib.Nifti1Image(data, volume.affine)
    image.header.set_sform(volume.affine, code=1)
    image.header.set_qform(*qform_for(volume.affine))  # no shear in a qform: a tilt's ITK grid
    image.header.set_xyzt_units("mm", "sec")
    return image


def _own_sidecar(path: Path) -> bool:
    """Is ``path`` a sidecar ``medseg convert --sidecar`` wrote (a JSON object with its source and source hash)?"""
    from medseg.jsonfile import RESULT_BYTES, read_json_object

    try:
        record = read_json_object(path, RESULT_BYTES, "a convert sidecar")
    except (OSError, ValueError):  # a JsonFileError too
        return False
    return {"source", "source_sha256", "series_uid"} <= set(record)


def conversion_series_uid(image: Path | str) -> tuple[str, Path] | None:
    """The SeriesInstanceUID of the DICOM series the image file ``image`` was converted from, and the JSON beside it
    that records it (its name with ``.json`` for the image's ending): ``medseg convert --sidecar``'s (``series_uid``)
    or dcm2niix's (``SeriesInstanceUID``, which it writes with ``-ba n``); None where there is no such record, or it
    cannot be read."""
    from medseg.io.itk_image import IMAGE_ENDINGS
    from medseg.jsonfile import RESULT_BYTES, read_json_object

    image = Path(image)
    ending = next((e for e in IMAGE_ENDINGS if image.name.lower().endswith(e)), None)
    if ending is None:
        return None
    record_path = image.with_name(image.name[: -len(ending)] + ".json")
    try:
        if not record_path.is_file():
            return None
        record = read_json_object(record_path, RESULT_BYTES, "a conversion's sidecar")
    except (OSError, ValueError):  # a JsonFileError too: a record that says nothing usable checks nothing
        return None
    uid = record.get("series_uid") if _own_sidecar(record_path) else record.get("SeriesInstanceUID")
    return (uid.strip(), record_path) if isinstance(uid, str) and uid.strip() else None


def _sidecar_path(output: Path) -> Path:
    name = output.name
    stem = name[: -len(".nii.gz")] if name.lower().endswith(".nii.gz") else name[: -len(".nii")]
    return output.with_name(stem + ".json")


def describe_folder(folder: Path | str, series: str | None = None) -> dict:
    """What ``medseg inspect`` reports: every candidate series, what was skipped, and the choice (or why none)."""
    folder = Path(folder)
    # skipped and broken files are listed in the report itself: one broken file does not hide the rest
    scan = scan_folder(folder, warn_skipped=False, keep_broken=True)
    if scan.broken:  # as infer and convert read the folder: one of its slices may be the broken file
        first, why = scan.broken[0]
        which = "this file" if len(scan.broken) == 1 else f"these {len(scan.broken)} files"
        choice = {"key": None, "uid": None, "reason": f"{first}: {why}; infer and convert refuse the folder while it "
                                                      f"holds {which}"}
    elif not scan.candidates:
        choice = {"key": None, "uid": None, "reason": scan.none_present() or f"{folder}: no DICOM images found"}
    else:
        try:
            chosen, reason = choose_series(scan, series)
            choice = {"key": chosen.key, "uid": chosen.uid, "reason": reason}
        except DicomError as error:
            choice = {"key": None, "uid": None, "reason": str(error)}
    studies = study_names(scan.candidates)
    return {
        "folder": str(absolute_path(folder)),  # its files' paths are relative to it
        "series": [_describe(c, folder, studies, scan.candidates) for c in scan.candidates],
        "skipped_files": [{"path": _relative(p, folder), "reason": why} for p, why in scan.skipped],
        "ignored_objects": [{"path": _relative(p, folder), "reason": why} for p, why in scan.non_image],
        "unreadable_files": [{"path": _relative(p, folder), "reason": why} for p, why in scan.broken],
        "chosen": choice,
    }


def _describe(candidate: SeriesCandidate, root: Path, studies: dict[str, str],
              others: list[SeriesCandidate]) -> dict:
    """One series as ``inspect`` lists it; ``folder``: the folder that holds its files, relative to ``root`` (``.``
    for ``root`` itself), so that a row can be found on disk (two series may share a number and a description);
    ``study``: its study as messages name it (``studies``, :func:`~medseg.io.dicom_series.study_names`), so that a
    series of a folder of several studies is told by its study, as the message asking to choose one names them;
    ``others``: the folder's series, whose numbering tells that of ``candidate``'s study (``missing_instances``)."""
    import os

    geometry = candidate.geometry
    files = candidate.files
    common = Path(os.path.commonpath([str(path.parent) for path in files])) if files else root
    return {
        "key": candidate.key,
        "uid": candidate.uid,
        "number": candidate.number,
        "folder": _relative(common, root) if common != root else ".",
        "description": candidate.description,
        "modality": candidate.modality,
        "patient_position": _patient_position(candidate),
        "study_uid": study_value(candidate, "StudyInstanceUID") or None,
        "study_date": study_value(candidate, "StudyDate") or None,
        "study_description": study_value(candidate, "StudyDescription") or None,
        "study": studies.get(study_value(candidate, "StudyInstanceUID")),
        "images": len(candidate.frames),
        "files": len(candidate.files),
        "shape": list(geometry.shape) if geometry else None,
        "spacing_mm": [header_precision(v) for v in geometry.spacing_mm] if geometry else None,
        "orientation": geometry.orientation if geometry else None,
        "plane": geometry.plane if geometry else None,
        "tilt_deg": geometry.tilt_deg if geometry else None,
        "flags": list(candidate.flags),
        # InstanceNumbers that say files were lost at the ends (read with a warning; inspect flags it lost-files)
        "missing_instances": missing_instances_text(candidate, others),
        "eligible": candidate.eligible,
        "problem": candidate.problem,
    }


def _patient_position(candidate: SeriesCandidate) -> str | None:
    first = next(iter(candidate.datasets.values()), None)
    return (str(first.get("PatientPosition", "") or "") or None) if first is not None else None


def _pixels(path: Path, dataset: pydicom.Dataset, cache: dict[Path, np.ndarray], notes: dict[Path, str]
            ) -> np.ndarray:
    if path in cache:
        return cache[path]
    try:
        pixels = dataset.pixel_array
    except Exception as error:  # decoders raise many kinds: missing plugin, truncated data, bad codestream
        message = first_line(error)
        if any(word in message.lower() for word in ("plugin", "decoder", "not supported", "unable to decode")):
            syntax = transfer_syntax(dataset)
            what = f"{syntax.name} " if syntax is not None else ""
            raise ImageReadError(f"{path}: cannot decode {what}pixel data ({message})") from error
        raise ImageReadError(f"{path}: truncated or corrupt pixel data ({message})") from error
    beyond = _bits_beyond_stored(dataset, pixels)
    if beyond is not None:
        notes[path] = beyond
    cache.clear()  # one multi-frame file at a time is enough
    cache[path] = pixels
    return pixels


def _forget_pixels(dataset: pydicom.Dataset) -> None:
    """Drop a read file's pixel data from its dataset, and pydicom's decoded array cached with it: kept in every
    file's dataset until the whole series was read, they held twice the stored pixels (a 512×512×600 int16 series
    peaked at 1.94 GB while read, where the float32 volume takes 0.63 GB)."""
    for keyword in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
        if keyword in dataset:
            delattr(dataset, keyword)  # (pydicom resets its cached array with the element)


_PLANES_AT_ONCE = 16  # planes put in the volume together (fewer where 16 would take more than _PLANE_BYTES)
_PLANE_BYTES = 1 << 24


def _put_planes(array: np.ndarray, planes: np.ndarray, start: int, columns_at_once: int = 128,
                rows_at_once: int | None = None) -> None:
    """``array[:, :, start + n] = planes[n].T`` for each of ``planes`` (rows × columns each), a tile of columns and
    rows at a time: written one plane at a time, every voxel lands one slice's width from the last; together, each
    tile's voxels land in runs (a 512×512×180 uncompressed series is read 1.1× to 1.8× faster, the more so the busier
    the machine's memory; see benchmarks/README.md). A band of all the rows of 64 columns spanned 39 MB of a
    512×512×300 volume, a new page at nearly every run; a tile of 8 rows spans a few pages per column, and the planes
    of such a series went in in about half the CPU time (0.75 s, 0.38 s). A tile holds as many voxels whatever the
    group (16 Ki: 8 rows of 16 planes, 128 rows of one): tiles of 8 rows of the one plane of a larger group
    (2048² or more) took a Python step per 1 Ki voxels, slower than the bands of all rows they replaced."""
    if rows_at_once is None:
        rows_at_once = max(8, 8 * _PLANES_AT_ONCE // len(planes))
    for first in range(0, array.shape[0], columns_at_once):
        band = slice(first, first + columns_at_once)
        for row in range(0, array.shape[1], rows_at_once):
            rows = slice(row, row + rows_at_once)
            array[band, rows, start:start + len(planes)] = planes[:, rows, band].transpose(2, 1, 0)


def _volume_array(folder: Path, label: str, shape: tuple[int, ...]) -> np.ndarray:
    """The float32 volume of a series, allocated once its first slice has been decoded: headers claiming 65535 ×
    65535 pixels over a few kB of pixel data had the whole volume (128 GiB) allocated before the short pixel data
    was found, and the error read "inference failed (Unable to allocate ...)"."""
    try:
        return np.empty(shape, dtype=np.float32)
    except MemoryError as error:
        gib = float(np.prod(shape, dtype=np.float64)) * 4 / 2**30
        raise ImageReadError(f"{folder}: {label}: its {'×'.join(map(str, shape))} voxels need {gib:.1f} GiB of "
                             "memory as float32; the headers are corrupt or the series too large") from error


def _check_decoding_fits(folder: Path, candidate: SeriesCandidate) -> None:
    """Refuse, before any pixel is decoded, a compressed series whose headers need more memory than the machine has
    (the float32 volume and the largest file's decoded pixels): a decoder allocates what Rows × Columns × frames say
    before it finds the data short, so a 1 kB RLE file claiming 40000 × 40000 pixels took 3.5 GB, and 65535 ×
    65535 over a few files could take the machine's memory. (Uncompressed pixel data is measured against its header
    before anything is allocated.)"""
    compressed = [path for path in candidate.files if _compressed(candidate.datasets[path])]
    for path in compressed:
        _check_rle_length(path, candidate.datasets[path])
    memory = physical_memory()
    if not compressed or memory is None:
        return
    volume = math.prod(candidate.geometry.shape) * 4
    decoded = max(_decoded_bytes(candidate.datasets[path]) for path in compressed)
    if volume + decoded <= memory:
        return
    raise ImageReadError(f"{folder}: {candidate.label()}: its {'×'.join(map(str, candidate.geometry.shape))} voxels "
                         f"({gib_text(volume)} as float32) and the decoded pixel data of its largest compressed file "
                         f"({gib_text(decoded)}) need more memory than this machine has ({gib_text(memory)}); the "
                         "headers are corrupt or the series too large")


# RLE (PackBits) decodes at most 128 bytes from 2: a file's pixel data cannot hold more than 64 times its length
_RLE_MOST_PER_BYTE = 64


def _check_rle_length(path: Path, dataset: pydicom.Dataset) -> None:
    """Refuse an RLE file whose header declares more pixels than its data can hold (as a gzip NIfTI is held to
    deflate's ratio): the decoder would allocate them all before it found the data short."""
    if transfer_syntax(dataset) != RLELossless or "PixelData" not in dataset:
        return
    declared, held = _decoded_bytes(dataset), len(dataset.PixelData)
    if declared > _RLE_MOST_PER_BYTE * held:
        frames = _header_int(dataset, "NumberOfFrames", 1)
        raise ImageReadError(f"{path}: its header declares {counted(frames, 'frame')} of {dataset.get('Rows')}×"
                             f"{dataset.get('Columns')} pixels ({gib_text(declared)} decoded), more than RLE data of "
                             f"{held} bytes can hold; the header is corrupt or the file cut short")


def _decoded_bytes(dataset: pydicom.Dataset) -> int:
    """The bytes a decoder allocates for a file's pixel data, from its header (0 where a size is not a number)."""
    sizes = [_header_int(dataset, keyword, default) for keyword, default in
             (("Rows", 0), ("Columns", 0), ("NumberOfFrames", 1), ("SamplesPerPixel", 1))]
    return math.prod(sizes) * -(-_header_int(dataset, "BitsAllocated", 16) // 8)


def _header_int(dataset: pydicom.Dataset, keyword: str, default: int) -> int:
    try:
        value = int(dataset.get(keyword) or default)
    except (TypeError, ValueError):
        return default
    return max(value, 0)


def _bits_beyond_stored(dataset: pydicom.Dataset, pixels: np.ndarray) -> str | None:
    """What pydicom's masking to BitsStored changed in a file's uncompressed values (5000 under BitsStored 12 reads
    as 904), or None. The unused high bits are undefined in DICOM: zero or a copy of the sign bit are the usual
    padding and change nothing; other bits are either an overlay there (a retired use of them; an anonymiser may
    have removed its 60xx tags), which the masking is right to drop, or values the header understates."""
    syntax = transfer_syntax(dataset)
    try:
        allocated, stored = int(dataset.BitsAllocated), int(dataset.BitsStored)
        little = (syntax is not None and syntax.is_transfer_syntax and not syntax.is_encapsulated
                  and syntax.is_little_endian)
    except (AttributeError, TypeError, ValueError):
        return None
    if not little or allocated not in (8, 16, 32) or not 0 < stored < allocated or "PixelData" not in dataset:
        return None
    if any(tag.group & 0xFF01 == 0x6000 and tag.element == 0x0102 for tag in dataset.keys()):
        return None  # OverlayBitPosition: an overlay declared in the high bits
    signed = int(dataset.get("PixelRepresentation", 0) or 0) == 1
    count = min(pixels.size, len(dataset.PixelData) // (allocated // 8))
    words = np.frombuffer(dataset.PixelData, dtype=f"<u{allocated // 8}", count=count)
    raw = words.view(f"<i{allocated // 8}") if signed else words
    decoded = pixels.reshape(-1)[:count]
    changed = ((words >> stored) != 0) & (raw != decoded)  # neither zero padding nor the sign extended
    if not changed.any():
        return None
    first = int(np.flatnonzero(changed)[0])
    return (f"values beyond its BitsStored ({stored}): {int(raw[first])} read as {int(decoded[first])} "
            f"({int(np.count_nonzero(changed))} values)")


def _header_and_pixels(dataset: pydicom.Dataset) -> str:
    """The header values that size the pixel data, and its length: a wrong BitsAllocated read 16-bit pixels as
    two frames, and the message said only that the shape was unexpected."""
    values = ", ".join(f"{keyword} {dataset.get(keyword, 'absent')}" for keyword in
                       ("Rows", "Columns", "BitsAllocated", "SamplesPerPixel", "NumberOfFrames"))
    length = len(dataset.PixelData) if "PixelData" in dataset and not _compressed(dataset) else None
    stored = f"its {length} bytes of" if length is not None else "its"
    return f"its header ({values}) does not fit {stored} pixel data"


def _compressed(dataset: pydicom.Dataset) -> bool:
    syntax = transfer_syntax(dataset)
    try:
        return bool(syntax is not None and syntax.is_compressed)
    except ValueError:  # a private or unknown transfer syntax: its length says nothing certain
        return True


def series_sha256(folder: Path | str, series: str | None = None) -> str:
    """The SHA-256 :func:`read_dicom_series` records for the series it would read under ``folder`` (its
    ``source_sha256``), from the files' headers and bytes, without decoding pixels."""
    candidate, _ = choose_series(scan_folder(Path(folder), warn_skipped=False), series)
    return _hash_files(candidate.files)


def _hash_files(files: list[Path]) -> str:
    """SHA-256 of the series' file contents, whatever their names and the folder given: the same series read from
    its own folder, a parent or a copy hashes the same (the report's duplicate_input check compares these)."""
    return _combined(_file_digests(files))


def _file_digests(files: list[Path]) -> list[bytes]:
    """Each file's SHA-256 (the digest ``sha256sum`` prints in hex), in the order of ``files``."""
    digests = []
    for path in files:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        digests.append(digest.digest())
    return digests


def _combined(digests: list[bytes]) -> str:
    """The series' SHA-256: of its files' digests, sorted, so that names and order do not count."""
    return hashlib.sha256(b"".join(sorted(digests))).hexdigest()


def _digests_by_name(files: list[Path], digests: list[bytes], folder: Path) -> dict[str, str]:
    """The sidecar's ``input_info.file_sha256``: each file, by its path relative to ``folder`` with ``/``, and its
    SHA-256 in hex, so a changed series is told file by file and checked with any checksum tool."""
    return {Path(_relative(path, folder)).as_posix(): digest.hex() for path, digest in zip(files, digests)}


def _relative(path: Path, folder: Path) -> str:
    try:
        return str(path.relative_to(folder))
    except ValueError:
        return str(path)
