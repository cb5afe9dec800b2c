"""The result records under a results folder: its ``<case_id>_seg.json`` sidecars, ``<case_id>_metrics.json`` and
``<case_id>_failed.json`` files (:data:`KINDS`) found (through links to folders too; a folder this user may not read
named, from the results folder down), each read as a record or why it cannot be used (unreadable, another schema, a
field of the wrong shape, a metric no computation gives), and what a reader of the page should know about a record
that can be (inputs passed over, the input's own notes, values missing)."""

from __future__ import annotations

import logging
import math
from pathlib import Path

from medseg.errors import InputError
from medseg.io.files import not_there, os_reason
from medseg.jsonfile import RESULT_BYTES, JsonFileError, read_json_object
from medseg.settings_named import ANY, setting

__all__ = ["INPUT_FLAGS", "KINDS", "METRIC_FIELDS"]

# the logger of the report's reading of the results folder: its warnings are told as "WARNING medseg.report.collect:"
log = logging.getLogger("medseg.report.collect")

# file suffix -> (kind, schema)
KINDS = {
    "_seg.json": ("sidecar", "medseg-segmentation/1"),
    "_metrics.json": ("metrics", "medseg-metrics/1"),
    "_failed.json": ("failure", "medseg-failure/1"),
}
METRIC_FIELDS = ("dice", "hd95_mm", "assd_mm", "pred_volume_ml", "ref_volume_ml", "false_positive_ml",
                 "false_negative_ml")


def _sidecar_notes(record: dict) -> list[str]:
    """What a reader of the page should know about a sidecar: inputs passed over, the input's own notes, a name
    like a training case's."""
    notes = [*_passed_over_notes(record), *_input_notes(record)]
    if isinstance(record.get("named_like_training_case"), str):
        notes.append(f"named like the model's training case {record['named_like_training_case']}, but not byte for "
                     "byte its file: if it is that image, its Dice overstates the model's accuracy on new data")
    return notes


def _passed_over_notes(sidecar: dict) -> list[str]:
    """A note per image series of a DICOM folder that could not be one volume and was passed over when the series
    was chosen automatically: the broken series may be the one the case was meant to be."""
    info = sidecar.get("input_info")
    passed = info.get("passed_over") if isinstance(info, dict) else None
    if not isinstance(passed, list):
        return []
    return [f"another image series of the input could not be used and was passed over: {item}; if it is the series "
            f"meant, repair it and name it ({setting('series', ANY)}; in a sample sheet, the series column)"
            for item in passed if isinstance(item, str)]


# DICOM series flags (``medseg inspect``) that change what the voxels mean or where they lie, told on a case's card
INPUT_FLAGS = {
    "tilt": "acquired with a gantry tilt (the slices are sheared; the segmentation is on that grid)",
    "monochrome1": "MONOCHROME1 (bright is low; values are read as stored, not reversed)",
    "bits-beyond-stored": "pixel values beyond the stored bits",
    "per-slice-rescale": "rescaled slice by slice",
    "per-slice-bits": "stored with other bit depths slice by slice",
    "no-series-uid": "without a SeriesInstanceUID",
}


def _input_notes(sidecar: dict) -> list[str]:
    """What the reader noted about the input (``input_info``'s ``*_note`` texts: a header's orientation, slice
    thickness or units taken on trust, and the like; and the DICOM series flags of :data:`INPUT_FLAGS`): they were in
    the sidecar and a job's log only, where a reviewer of the report does not look. The note of an input that looks
    like a label image is a flag of its own (``label_like_input``)."""
    info = sidecar.get("input_info")
    if not isinstance(info, dict):
        return []
    notes = [f"input: {text}" for key, text in info.items()
             if key.endswith("_note") and key != "label_like_note" and isinstance(text, str) and text]
    flags = info.get("flags") if isinstance(info.get("flags"), list) else []
    said = [INPUT_FLAGS[flag] for flag in flags if flag in INPUT_FLAGS]
    if said:
        notes.append(f"input: a DICOM series {'; '.join(said)} (medseg inspect lists its flags)")
    return notes


_GIVE_READ_ACCESS = "give this user read access to it"  # a result it may not read is whole: not to be removed
# a workflow run redoes the step whose output is missing (it keeps one it finds)
_REMOVE_AND_RUN_AGAIN = "remove it and run again to redo the case"


def _read_json(path: Path, schema: str, shown: str) -> tuple[dict | None, str | None, str | None]:
    """The record in ``path``, or why it cannot be used, naming the file as ``shown``, with what a case failed on it
    is to add to that as its advice (None: what to do is said already). A link that leads nowhere, a named pipe or
    the like is such a record too: it was passed over in silence, its case scored without it or not listed."""
    if path.is_symlink() and not path.exists():  # named with where it leads, not "no such file or directory"
        return None, f"{shown}: {not_there(path)}", f"restore its target, or {_REMOVE_AND_RUN_AGAIN}"
    try:
        record = read_json_object(path, RESULT_BYTES, "a medseg result record")
    except PermissionError:  # the file is whole: what to do is to let this user read it, not to remove it
        return None, f"{shown}: cannot read (permission denied); {_GIVE_READ_ACCESS}", None
    except JsonFileError as error:  # too large, not JSON, nested too deeply, not an object, not a file
        return None, f"{shown}: cannot read ({error.reason})", _REMOVE_AND_RUN_AGAIN
    except OSError as error:  # the reason alone: "[Errno 5] Input/output error: '/…'" named the file again
        return None, f"{shown}: cannot read ({os_reason(error)})", _REMOVE_AND_RUN_AGAIN
    found = record.get("schema")
    if found is not None and found != schema:
        return None, f"{shown}: schema {found!r}, expected {schema!r}", _REMOVE_AND_RUN_AGAIN
    problem = _structure_problem(record, schema)
    if problem is not None:
        return None, f"{shown}: {problem}", _REMOVE_AND_RUN_AGAIN
    return record, None, None


def _metrics_notes(record: dict) -> list[str]:
    """What a reader of the page should know about a metrics record: a re-indexed reference, missing values. The
    note of a DICOM SEG of another frame of reference than its series' images is a flag of its own
    (``frame_of_reference``), which the card shows: not told twice."""
    notes = []
    if record.get("reference_reordered"):
        notes.append("scored against a reference holding the same voxels in another order, re-indexed onto the "
                     "segmentation's grid (no resampling)")
    flagged = tuple(f"{role}: its FrameOfReferenceUID {mismatch.get('seg')} is not that of the images of "
                    for role in ("prediction", "reference")
                    if isinstance(mismatch := record.get(f"{role}_frame_of_reference_mismatch"), dict))
    if isinstance(record.get("notes"), list):  # a hand-edited record may hold anything there
        notes.extend(str(note) for note in record["notes"] if not (flagged and str(note).startswith(flagged)))
    for value, entry in record["labels"].items():
        missing = [key for key in ("dice", "hd95_mm", "assd_mm") if _number(entry.get(key)) is None]
        if entry.get("status", "ok") == "ok" and missing:
            notes.append(f"label {value}: status ok but no {', '.join(missing)} recorded (null or not finite)")
    return notes


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _structure_problem(record: dict, schema: str) -> str | None:
    """What makes a record that parses unusable for the report (a field of the wrong shape), or None."""
    def label_map(key: str, values_are_objects: bool) -> str | None:
        value = record.get(key)
        if value is None and not (key == "labels" and schema == "medseg-metrics/1"):
            return None
        if not isinstance(value, dict):
            return f"field '{key}' is not an object"
        for label, entry in value.items():
            if not (isinstance(label, str) and label.isascii() and label.isdigit()):
                return f"field '{key}' has the key {label!r}, not a label value"
            if values_are_objects and not isinstance(entry, dict):
                return f"field '{key}' entry {label} is not an object"
        return None

    if schema == "medseg-metrics/1":
        problem = label_map("labels", values_are_objects=True)
        if problem:
            return problem
        for label, entry in record["labels"].items():
            odd = [k for k in METRIC_FIELDS if entry.get(k) is not None and not _is_number(entry[k])]
            if odd:
                return f"label {label}: {', '.join(odd)} not a number"
            out = _out_of_range(entry)
            if out:
                return f"label {label}: {out}"
        spacing = record.get("spacing_mm")
        if spacing is not None and not (isinstance(spacing, list) and len(spacing) == 3
                                         and all(_is_number(v) for v in spacing)):
            return "field 'spacing_mm' is not three numbers"
    elif schema == "medseg-segmentation/1":
        problem = label_map("labels", values_are_objects=False) or label_map("label_volume_ml", False)
        if problem:
            return problem
        shape, affine = record.get("shape"), record.get("affine")
        if shape is not None and not (isinstance(shape, list) and len(shape) == 3
                                      and all(isinstance(n, int) and not isinstance(n, bool) for n in shape)):
            return "field 'shape' is not three whole numbers"
        if affine is not None and not (isinstance(affine, list) and len(affine) == 4 and all(
                isinstance(row, list) and len(row) == 4 and all(_is_number(v) for v in row) for row in affine)):
            return "field 'affine' is not a 4×4 matrix of numbers"
        for key in ("model", "input_check", "input_info"):
            if record.get(key) is not None and not isinstance(record[key], dict):
                return f"field '{key}' is not an object"
        if record.get("in_training_set") is not None and not isinstance(record["in_training_set"], bool):
            return "field 'in_training_set' is not true or false"
    for key in ("input", "reference", "prediction", "segmentation"):  # paths the report reads and compares
        if record.get(key) is not None and not isinstance(record[key], str):
            return f"field '{key}' is not a path"
    return None


def _out_of_range(entry: dict) -> str | None:
    """A metric no computation gives (a Dice outside 0–1, a negative distance or volume), as from an edited file."""
    dice = _number(entry.get("dice"))
    if dice is not None and not 0.0 <= dice <= 1.0:
        return f"dice {dice:g} is outside 0–1"
    negative = [k for k in METRIC_FIELDS[1:] if (_number(entry.get(k)) or 0.0) < 0.0]
    return f"{', '.join(negative)} negative" if negative else None


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _json_files(results_dir: Path) -> list[Path]:
    """The ``*.json`` files under ``results_dir``, sorted, through links to folders too (a folder gathering the
    results of several sites by links to them; ``Path.rglob`` does not follow them, and such a folder read as
    holding no results). A folder reached twice (a link to a folder also reached another way, a loop of links) is
    read once."""
    import os

    def refuse(error: OSError) -> None:  # os.walk passed over a folder it could not list in silence
        if error.filename == os.fspath(results_dir):
            raise InputError(f"{results_dir}: cannot read ({os_reason(error)})") from error
        log.warning("%s: cannot read (%s); the results in it, if any, are left out of the report", error.filename,
                    os_reason(error))

    found: list[Path] = []
    seen: set[str] = set()
    for folder, subfolders, files in os.walk(results_dir, followlinks=True, onerror=refuse):
        real = os.path.realpath(folder)
        if real in seen:
            subfolders[:] = []
            continue
        seen.add(real)
        subfolders.sort()  # the same folder kept, run after run, where two ways lead to it
        for name in subfolders:  # named as a record, it was passed over in silence (its case scored without it)
            if name.endswith(tuple(KINDS)):
                log.warning("%s: a folder, though named as a result record: no record of its case is read from "
                            "it (the results in it, if any, are)", Path(folder) / name)
        named = [Path(folder) / name for name in files if name.endswith(".json")]
        entered = _not_entered(folder, named)
        if entered is not None:  # listed but not entered (chmod -R 644): its files crashed the report
            refuse(entered)
            continue
        found.extend(named)
    return sorted(found)


def _not_entered(folder: str, named: list[Path]) -> PermissionError | None:
    """The error, naming ``folder``, where this user may list ``folder`` but not open the result files ``named`` in it
    (read without search permission); else None (a file gone meanwhile is passed over where it is read)."""
    import os

    if not named:
        return None
    try:
        os.stat(named[0])
    except PermissionError as error:
        error.filename = folder
        return error
    except OSError:
        pass
    return None


def _unlistable_folders(results_dir: Path) -> list[tuple[Path, str]]:
    """The folders under ``results_dir`` that cannot be listed (another user's case folder), with the OS's reason:
    what :func:`~medseg.report.collect.collect_results` warned about and left out."""
    import os

    found: list[tuple[Path, str]] = []
    seen: set[str] = set()

    def note(error: OSError) -> None:
        if error.filename and error.filename != os.fspath(results_dir):
            found.append((Path(error.filename), os_reason(error)))

    for folder, subfolders, files in os.walk(results_dir, followlinks=True, onerror=note):
        real = os.path.realpath(folder)  # a loop of links is walked once, as _json_files walks it
        if real in seen:
            subfolders[:] = []
        seen.add(real)
        entered = _not_entered(folder, [Path(folder) / name for name in files if name.endswith(".json")])
        if entered is not None:  # listed but not entered: left out as _json_files leaves it
            note(entered)
    return sorted(found)


def _hiding(unreadable: list[tuple[Path, str]], folder: Path, results_dir: Path) -> str | None:
    """The readers' line for the folder of ``unreadable`` that is ``folder`` or holds it, or None."""
    for path, reason in unreadable:
        if folder == path or folder.is_relative_to(path):
            return f"{_shown(path, results_dir)}: cannot read ({reason}); {_GIVE_READ_ACCESS}"
    return None


def _shown(path: Path, results_dir: Path) -> str:
    """``path`` as a report names it: relative to the results folder (a cohort's case folders hold files of the
    same names), absolute when it lies outside."""
    try:
        return str(path.relative_to(results_dir))
    except ValueError:
        return str(path)
