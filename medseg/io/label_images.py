"""Reading the label images that are scored: a reference or a prediction, as a label NIfTI or a DICOM SEG.

A label image holds whole non-negative values (and only the model's labels, when they are known). A DICOM SEG is
placed frame by frame on the DICOM series the prediction was made from, which the prediction's sidecar (written by
``medseg infer``) records; a SEG reference of a prediction made from an image file (a conversion of the series) is
placed by its own frames' geometry on the prediction's grid.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from medseg.errors import InputError
from medseg.io.files import check_readable, is_dicom_file, not_there, os_reason
from medseg.io.seg_labels import bare_name
from medseg.label_values import label_values
from medseg.numbers import IMAGE_LIKE_VALUES, odd_values, values_text
from medseg.settings_named import ANY, setting
from medseg.volume import Volume, stem

__all__ = ["MAX_LABEL", "header_scaling_note", "prediction_sidecar", "read_prediction", "read_prediction_values",
           "made_from_series", "read_reference", "read_reference_values", "read_seg_on_prediction_grid",
           "read_seg_reference", "series_gone"]

log = logging.getLogger(__name__)

MAX_LABEL = 2**53  # float64 holds every integer up to here exactly


def read_reference(path: Path | str, labels: dict[int, str] | None = None, role: str = "reference") -> Volume:
    """Read a label image; values must be whole non-negative numbers (and among ``labels`` when given, with 0, the
    background, allowed whether ``labels`` names it or not). ``role``
    (reference, prediction) is named when the file is not a label image: an image given as the reference.

    Integer files keep their stored type (values exact at any size); others are checked in float64.
    """
    return read_reference_values(path, labels, role)[0]


def read_reference_values(path: Path | str, labels: dict[int, str] | None = None,
                          role: str = "reference") -> tuple[Volume, np.ndarray]:
    """:func:`read_reference`, with the distinct values the label image holds (sorted, as
    :func:`~medseg.label_values.label_values` finds them while checking them): a caller that needs them (the labels
    to score where nothing names them) does not look for them again (0.5 s for 512×512×300 voxels)."""
    from medseg.io.files import exists
    from medseg.io.nifti import read_nifti

    if exists(path) and Path(path).is_dir():  # read_nifti would point to the DICOM reader: it reads images
        raise InputError(f"{path}: a folder, not a label image file (NIfTI, or a DICOM SEG), given as the {role}")
    volume = read_nifti(path, hash_input=False, labels=True, role=role)
    values = label_values(volume.array)  # np.unique's, without its copy of the volume in C order
    if np.any((values < 0) | (values != np.round(values))):
        raise InputError(f"{path}: not a label image (values must be non-negative integers; it holds "
                         f"{odd_values(values, negative=True)}), given as the {role}{header_scaling_note(volume)}")
    if values.max() > MAX_LABEL:
        raise InputError(f"{path}: label value {int(values.max())} is above {MAX_LABEL} (2^53), the largest medseg "
                         "can tell apart from its neighbours")
    if labels is None and len(values) > IMAGE_LIKE_VALUES:
        log.warning("%s: holds %d distinct values, each scored as a label: an image given as the %s? (%s names "
                    "the labels it may hold)", path, len(values), role, setting("package", ANY))
    if labels is not None:
        labels = {int(value): name for value, name in labels.items()}  # JSON gives the keys as text
        unknown = sorted({int(v) for v in values} - set(labels) - {0})  # background, named or not (as a SEG's)
        if unknown:
            guess = f" (an image given as the {role}?)" if len(values) > IMAGE_LIKE_VALUES else ""
            raise InputError(f"{path}: label values {values_text(unknown)} are not among the model's labels "
                             f"{values_text(sorted(labels))}, given as the {role}{guess}{header_scaling_note(volume)}")
        _check_segment_names(path, volume, labels, values)
    if volume.array.dtype.kind == "f":  # the smallest type holding its values, as an integer file stores them
        # (int64 for any: 105 million voxels peaked at 3.5 GB while scored, 2.0 GB as uint8)
        volume.array = volume.array.astype(np.min_scalar_type(int(values.max())))
    return volume, values


def _check_segment_names(path: Path | str, volume: Volume, labels: dict[int, str], values: np.ndarray,
                         whose: str = "the model's") -> None:
    """Warn where a 3D Slicer segmentation names a segment otherwise than the model names the label of its value
    (``Liver`` with value 1, the model's 1 being ``spleen``): it is scored by value, as every label image is, and
    Slicer numbers segments in the order they were made, not as the model does. Letter case, spaces and ``_`` aside;
    names Slicer made up (``Segment_1``) are not compared. ``whose``: where ``labels`` come from, for the message."""
    named = {int(value): name for value, name in (volume.info or {}).get("segment_names", {}).items()}
    present = {int(v) for v in values}
    differ = [(value, name, labels[value]) for value, name in sorted(named.items())
              if value in labels and value in present and bare_name(name) != bare_name(labels[value])]
    if differ:
        shown = ", ".join(f"{value}: {name!r} scored as {model!r}" for value, name, model in differ[:5])
        more = f" and {len(differ) - 5} more" if len(differ) > 5 else ""
        log.warning("%s: its segments are named otherwise than %s labels of the same values (%s%s); labels are "
                    "scored by value: if these are other structures, export the segmentation with %s values (Slicer: "
                    "Export to files, with a color table that names them)", path, whose, shown, more, whose)


def header_scaling_note(volume: Volume) -> str:
    """``": the header's scl_slope … (scl_inter …) scales the stored whole values; …"`` for a label image whose
    values are not whole (or below 0) only through its header's scaling: integer voxels, whole and non-negative as
    stored; empty otherwise. Said after the message that refuses its values."""
    header = volume.header  # as the file stores it (a NIfTI one; None for DICOM)
    try:
        stored_kind = np.dtype(header.get_data_dtype()).kind
        slope, inter = float(header["scl_slope"]), float(header["scl_inter"])
    except (AttributeError, TypeError, ValueError, KeyError):  # no header, or one without these fields (Analyze)
        return ""
    slope = 1.0 if slope == 0 or not np.isfinite(slope) else slope  # NIfTI: 0 (and nibabel: NaN) is no scaling
    inter = 0.0 if not np.isfinite(inter) else inter
    if stored_kind not in "biu" or (slope == 1.0 and inter == 0.0):
        return ""
    values = label_values(volume.array).astype(np.float64)
    if np.any(np.round((values - inter) / slope) < 0):  # negative as stored: the scaling is not the whole cause
        return ""
    return (f": the header's scl_slope {_header_number(slope)} (scl_inter {_header_number(inter)}) scales the stored "
            "whole values; set slope 1 and intercept 0")


def _header_number(value: float) -> str:
    """A header's float32 field as written: 1.0000001, 0, 1e+30."""
    text = str(np.float32(value))
    return text[:-2] if text.endswith(".0") else text


def _existing_file(path: Path | str) -> Path:
    """``path``, refused in one line unless it is a file this user may read (a DICOM SEG is read after its sidecar,
    whose absence would otherwise be blamed)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: {not_there(path, 'no such file') if not path.exists() else 'not a file'}")
    check_readable(path)
    return path


def prediction_sidecar(prediction: Path | str) -> Path:
    """The sidecar ``medseg infer`` writes beside ``prediction`` (``case_seg.nii.gz`` -> ``case_seg.json``)."""
    prediction = Path(prediction)
    return prediction.with_name(f"{stem(prediction)}.json")


def _prediction_sidecar(pred_path: Path, subject: Path, what: str, absent: str = "") -> dict:
    """The sidecar ``medseg infer`` wrote beside a prediction, which names the DICOM series ``subject`` (a DICOM
    SEG: ``what``) is placed on; ``absent`` is added to the error where there is no such file."""
    from medseg.jsonfile import RESULT_BYTES, JsonFileError, read_json_object

    sidecar_path = prediction_sidecar(pred_path)
    try:
        return read_json_object(sidecar_path, RESULT_BYTES, "a prediction sidecar")
    except (OSError, JsonFileError) as error:
        # not "[Errno 2] …: '/the/same/path'"
        why = error.reason if isinstance(error, JsonFileError) else os_reason(error)
        hint = absent if isinstance(error, FileNotFoundError) else ""
        raise InputError(f"{subject}: {what} is scored on its source series, named by the sidecar "
                         f"{sidecar_path} of the prediction, which cannot be read ({why}){hint}") from error


def read_seg_reference(path: Path | str, pred_path: Path | str, labels: dict[int, str] | None = None,
                       label_codes: dict | None = None, grid: Volume | None = None,
                       names: dict[int, str] | None = None, names_from=None) -> Volume:
    """A reference that is a DICOM SEG (another tool's, or a reader's). Where the prediction's sidecar records that it
    was made from a DICOM series, the SEG is placed frame by frame on that series' images, as its frames reference
    them; otherwise (a prediction made from a conversion of the series, dcm2niix's NIfTI, one without a sidecar, or
    a label image whose series has since moved or been deleted: not a DICOM SEG prediction, which needs its series)
    it is placed by its own frames' geometry on ``grid``, the prediction's voxel grid
    (:func:`~medseg.io.seg_placement.read_seg_on_grid`). The label names come from ``labels`` when given, else the
    sidecar, else the SEG's segments (each its segment number); segments are matched to them by name, regardless of
    case where that singles one out, else by their codes: ``label_codes`` when given (a model package's, with its
    ``labels``), else those the sidecar records (not when ``labels`` name the labels otherwise). Where nothing but
    ``names`` (a dataset.json's, ``names_from`` its file) names them, each segment is the label its name gives, else
    its segment number (:func:`~medseg.io.seg_labels.pair_by_name`: refused where the two name one value otherwise)."""
    from medseg.io.seg_volume import read_seg_volume

    path = _existing_file(path)
    sidecar_path = prediction_sidecar(Path(pred_path))
    if grid is None or os.path.lexists(sidecar_path):
        sidecar = _prediction_sidecar(Path(pred_path), path, "a DICOM SEG reference")
    else:  # no sidecar: the prediction's grid is all there is to place it on
        sidecar = {}
    if labels:
        def named(names: dict) -> dict[str, str]:
            return {str(k): str(v) for k, v in names.items() if int(k) != 0}  # what background is called does not count

        if named(labels) != named(sidecar.get("labels") or {}):
            sidecar = {**sidecar, "label_codes": {}}  # the sidecar's codes are of its own labels
        sidecar = {**sidecar, "labels": {str(k): v for k, v in labels.items()}}
    if label_codes is not None:
        sidecar = {**sidecar, "label_codes": {str(k): v for k, v in label_codes.items()}}
    if grid is None or (made_from_series(sidecar) and (is_dicom_file(pred_path) or not series_gone(path, sidecar))):
        # a second reading of the case's input (its headers: the frames are placed by them): its skipped files and
        # series choice were told when it was segmented. A DICOM SEG prediction needs its series: refused without it
        return read_seg_volume(path, sidecar, warn_skipped=False)
    return read_seg_on_prediction_grid(path, grid.shape, grid.affine, grid.source, sidecar, names=names,
                                       names_from=names_from)


def series_gone(path: Path | str, sidecar: dict, source_path: Path | str | None = None) -> bool:
    """Whether the DICOM series a prediction's sidecar records (``source_path``, where it lies now, when given) is
    not found for the DICOM SEG reference ``path``: moved or deleted since the prediction was made. Its SEG
    reference is then placed by its frames' own geometry on the prediction's grid, which is the series' grid."""
    from medseg.io.seg_volume import find_recorded_source, recorded_series

    recorded = sidecar.get("input")
    if not recorded or recorded_series(sidecar) is None:
        return False
    if source_path is not None:
        return not os.path.exists(source_path)
    return find_recorded_source(path, str(recorded)) is None


def made_from_series(sidecar: dict) -> bool:
    """Whether a prediction's sidecar records a DICOM series as its input (a folder, or the series it was read as),
    on whose images a DICOM SEG of that series is placed; not an image file (a NIfTI, an NRRD)."""
    from medseg.io.seg_volume import recorded_series

    recorded = sidecar.get("input")
    return bool(recorded) and (recorded_series(sidecar) is not None or Path(str(recorded)).is_dir())


def read_seg_on_prediction_grid(path: Path, shape: tuple[int, ...], affine: np.ndarray, source, sidecar: dict,
                                warn_missing: bool = True, source_path: Path | str | None = None,
                                names: dict[int, str] | None = None, names_from=None, strict: bool = True) -> Volume:
    """A DICOM SEG reference placed by its own frames' geometry on the voxel grid ``shape`` / ``affine`` of
    ``source`` (the prediction), its labels those ``sidecar`` records (else the SEG's segments, each its segment
    number, named by its SegmentLabel: the volume's ``seg_label_names``) and codes those it records;
    ``warn_missing`` as for :func:`~medseg.io.seg_reading.read_dicom_seg`. Where
    the sidecar records a DICOM series not found (:func:`series_gone`; ``source_path``: where it lies now), the
    volume's ``source_note`` says which placement was used (the record's notes). Where the sidecar names no labels
    and ``names`` (a dataset.json's, ``names_from`` its file) do, each segment is the label of ``names`` its
    SegmentLabel gives, else its segment number (:func:`~medseg.io.seg_labels.pair_by_name`, ``strict`` as there)."""
    from medseg.io.seg_labels import pair_by_name
    from medseg.io.seg_placement import named_apart, read_seg_on_grid, seg_label_names

    labels = {int(k): str(v) for k, v in (sidecar.get("labels") or {}).items()}
    named_by_seg = not labels
    values = None
    named_in = "the model"
    if named_by_seg:
        segment_labels = seg_label_names(path, apart=False)  # as written: paired with the names so
        segment_names = named_apart(segment_labels)
        values = {number: number for number in segment_names if number}
        labels = dict(segment_names)
        if names:  # the dataset.json's names and the SEG's: paired by name, refused where they disagree
            names = {int(k): str(v) for k, v in names.items()}
            named_in = str(names_from or "the dataset.json")
            values = pair_by_name(segment_labels, names, path, named_in, strict)
            labels = {0: "background", **{value: names.get(value) or segment_names[number]
                                          for number, value in values.items()}}
        log.log(logging.INFO if warn_missing else logging.DEBUG, "%s: no labels named for the prediction: each "
                "segment is read as %s (%s)", path, "the label its name gives, else its segment number" if names
                else "its segment number", ", ".join(f"{number} {segment_names[number]}"
                                                     + (f" as {value}" if value != number else "")
                                                     for number, value in sorted(values.items())))
    series = _recorded_series_uid(sidecar, source_path)
    array = read_seg_on_grid(path, shape, affine, source, labels, warn_missing=warn_missing,
                             label_codes=sidecar.get("label_codes"), by_number=named_by_seg, segment_values=values,
                             named_in=named_in, series=series and series[:2], series_record=series and series[2])
    info = {"dicom_seg_placed_on": str(source)}
    if named_by_seg:  # what names the labels where nothing else does (the record's, the report's)
        info["seg_label_names"] = {str(values[number]): name for number, name in sorted(segment_names.items())
                                   if number}
    if series_gone(path, sidecar, source_path):
        # which placement was used, in the record's notes: not the one on the series the sidecar records
        info["source_note"] = (f"its source series {sidecar['input']} (recorded in the prediction's sidecar) is not "
                               f"found (moved or deleted since); placed by its frames' own geometry on the voxel grid "
                               f"of {source}")
        log.log(logging.INFO if warn_missing else logging.DEBUG, "%s: %s", path, info["source_note"])
    return Volume(array=array, affine=np.asarray(affine, dtype=np.float64).copy(), source=Path(path), info=info)


def _recorded_series_uid(sidecar: dict, source_path: Path | str | None = None
                         ) -> tuple[str, str, Path | None] | None:
    """The SeriesInstanceUID of the DICOM series a prediction was made from, what records it and the conversion's
    JSON that does (else None): its sidecar's (a series, since moved or deleted), else that of the sidecar of the
    image file it was made from (a conversion of the series: ``medseg convert --sidecar``'s, dcm2niix's);
    ``source_path``: where that input lies now."""
    from medseg.io.dicom import conversion_series_uid

    info = sidecar.get("input_info")
    uid = info.get("series_uid") if isinstance(info, dict) else None
    if isinstance(uid, str) and uid.strip():
        return uid.strip(), "the prediction's sidecar", None
    recorded = source_path or sidecar.get("input")
    if not recorded or os.path.isdir(recorded):
        return None
    found = conversion_series_uid(recorded)
    return found and (found[0], f"the sidecar {found[1]} of its input", found[1])


def read_prediction(path: Path | str, labels: dict[int, str] | None = None) -> Volume:
    """A segmentation to score: a label NIfTI (see :func:`read_reference`), or a DICOM SEG of ``medseg infer``
    placed on the source series its sidecar records."""
    return read_prediction_values(path, labels)[0]


def read_prediction_values(path: Path | str,
                           labels: dict[int, str] | None = None) -> tuple[Volume, np.ndarray | None]:
    """:func:`read_prediction`, with the distinct values the segmentation holds where reading it found them (a label
    NIfTI's, as :func:`read_reference_values` gives them; a DICOM SEG's with ``labels``), else None."""
    path = Path(path)
    if not is_dicom_file(path):
        return read_reference_values(path, labels, role="prediction")
    from medseg.io.seg_reading import check_is_seg
    from medseg.io.seg_volume import read_seg_volume

    _existing_file(path)  # before its sidecar, whose absence would be blamed instead
    check_is_seg(path)  # so is a CT image given as the prediction
    # another tool's SEG (a reader's, another model's) has no sidecar: as the reference it needs none
    volume = read_seg_volume(path, _prediction_sidecar(
        path, path, "a DICOM SEG prediction", absent="; a DICOM SEG that medseg infer did not write has none: give it "
        "as the reference (the second file), which needs none (Dice, HD95 and ASSD are the same either way; the "
        "predicted and reference volumes, and the false-positive and false-negative ones, change places)"),
        warn_skipped=False)
    values = None
    if labels is not None:
        labels = {int(value): name for value, name in labels.items()}  # JSON gives the keys as text
        values = label_values(volume.array)
        unknown = sorted(set(values.tolist()) - set(labels) - {0})
        if unknown:
            raise InputError(f"{path}: label values {values_text(unknown)} are not among the model's labels "
                             f"{values_text(sorted(labels))}, given as the prediction")
    return volume, values
