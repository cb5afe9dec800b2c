"""Failure records: ``<case>_failed.json`` (schema ``medseg-failure/1``), what ``medseg report`` lists as a failed case.

The cohort workflow (:mod:`medseg.cohort.run`), ``medseg evaluate`` over folders (:mod:`medseg.folder_scoring`) and
a batch of ``medseg infer`` inputs write them alike: the case, its input (and reference; a DICOM row's series), the
stage it failed at, the one-line error and its type, the time and the medseg version. A case's outputs and its
failure record replace each other: a record is placed with the case's earlier outputs retired in the same step, and
a case segmented takes its failure record away as its outputs are placed (:func:`stale_failure`), so a folder never
holds both for one case.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

from medseg.errors import DicomError, GeometryError, ImageReadError, InputError, OutputExistsError

__all__ = ["FAILURE_SCHEMA", "FAILURE_SUFFIX", "READ_ERRORS", "failure_path", "failure_record", "failure_stage",
           "is_failure_record", "record_input_failure", "stale_failure", "write_failure_record"]

FAILURE_SCHEMA = "medseg-failure/1"
FAILURE_SUFFIX = "_failed.json"
# errors of a case's input itself (not of the model, the device or the outputs): stage ``read``
READ_ERRORS = (ImageReadError, DicomError, InputError, GeometryError)


def failure_path(folder: Path | str, case_id: str) -> Path:
    """Where a case's failure record goes: ``<folder>/<case_id>_failed.json``, beside its outputs."""
    return Path(folder) / f"{case_id}{FAILURE_SUFFIX}"


def failure_stage(error: BaseException) -> str:
    """``read`` for an error of the input itself (:data:`READ_ERRORS`: unreadable, not an image, a bad grid), else
    ``infer``."""
    return "read" if isinstance(error, READ_ERRORS) else "infer"


def failure_record(case_id: str, stage: str, error: BaseException, input_path: Path | str | None,
                   reference: Path | str | None, series: str | None = None, message: str | None = None,
                   error_type: str | None = None) -> dict:
    """The record of a case that failed at ``stage`` with ``error``: its one line (or ``message``, where the command
    words it otherwise), its type (or ``error_type``), the input and reference as absolute paths, ``series`` where a
    DICOM series was asked for, the time (UTC) and the medseg version that wrote it."""
    from medseg import __version__
    from medseg.cohort.records import now, one_line
    from medseg.io.files import absolute_path

    return {
        "schema": FAILURE_SCHEMA,
        "case_id": case_id,
        "input": str(absolute_path(input_path)) if input_path is not None else None,
        **({"series": str(series)} if series is not None else {}),
        "reference": str(absolute_path(reference)) if reference is not None else None,
        "stage": stage,
        "error": " ".join(message.split()) if message is not None else one_line(error),
        "error_type": error_type or type(error).__name__,
        "created": now(),
        "medseg_version": __version__,
    }


def write_failure_record(path: Path | str, record: dict,
                         retire: Sequence[Path | str] | Callable[[], Sequence[Path | str]] = ()) -> Path:
    """Place ``record`` at ``path`` whole (replacing an earlier one), ``retire`` (the case's earlier outputs: no
    results of a case that failed now stay beside its record) taken away in the same step; given as a function, it is
    asked again under the folder's lock as the record is placed (see :func:`~medseg.io.atomic.atomic_paths`), and an
    error it raises there places nothing. :class:`OutputWriteError` where it cannot be written."""
    from medseg.io.atomic import atomic_paths

    path = Path(path)
    with atomic_paths([path], overwrite=True, retire=retire if callable(retire) else list(retire)) as (temp,):
        temp.write_text(json.dumps(record, indent=2, allow_nan=False) + "\n")
    return path


def is_failure_record(path: Path | str) -> bool:
    """Whether ``path`` holds a medseg failure record (schema ``medseg-failure/1``, or ``medseg-failure/N`` of another
    medseg version: that case's record too, which this one replaces and a segmented case takes away): False where it
    is not there, cannot be read, is not JSON, or is another file of that name (a user's notes, an input named so)."""
    import re

    from medseg.jsonfile import RESULT_BYTES, read_json_object

    try:
        record = read_json_object(path, RESULT_BYTES, "a medseg result record")
    except (OSError, ValueError):  # none, unreadable, not JSON (a JsonFileError too)
        return False
    schema = record.get("schema")
    return isinstance(schema, str) and re.fullmatch(r"medseg-failure/[0-9]+", schema) is not None


def stale_failure(folder: Path | str, case_id: str) -> list[Path]:
    """The case's failure record in ``folder`` (``[path]``), which its outputs now placed there supersede; ``[]``
    where there is none, or the file is not a medseg failure record (a user's file of that name is left alone), or is
    a link (medseg writes none, and removes none in an output's place: the user's, whatever it leads to)."""
    path = failure_path(folder, case_id)
    return [path] if not path.is_symlink() and is_failure_record(path) else []


def record_input_failure(input_path: Path | str, error: BaseException, out_dir: Path | str | None = None,
                         reference: Path | str | None = None, series: str | None = None, output_format: str = "nifti",
                         overwrite: bool = False, modalities: int = 1, message: str | None = None) -> Path | None:
    """Record an input of a ``medseg infer`` batch that failed with ``error`` (``message``: its line as the command
    words it) where its outputs would have gone (``out_dir``, else beside the input): ``<case>_failed.json``, named
    as its segmentation would have been (:func:`~medseg.segment.case_targets`), stage :func:`failure_stage`. The
    case's outputs of an earlier run go as the record is placed when ``overwrite`` (this run was to replace them),
    but for a link or a folder in the place of one, which medseg never replaces (the case may have failed on it);
    without ``overwrite``, where any exists (written since the batch checked that none did), the case has results and
    no record is written (None). Both are looked at again under the folder's lock as the record is placed, where a run
    segmenting the case takes its record away: a record and the case's outputs never stand side by side.
    :class:`~medseg.errors.OutputWriteError` where the record cannot be written, and
    :class:`~medseg.errors.OutputExistsError` where a file there is no medseg failure record (a user's, an input
    named so): never replaced."""
    from medseg.io.channels import case_name
    from medseg.segment import case_targets, superseded_outputs

    name = case_name(input_path, modalities)
    scored = reference is not None
    targets = case_targets(input_path, out_dir, scored, output_format, name)
    keep = [input_path, *([reference] if reference is not None else [])]
    sidecar = targets[1]
    case_id = sidecar.name[:-len("_seg.json")]
    path = failure_path(sidecar.parent, case_id)

    def earlier_outputs() -> list[Path]:
        """The case's files the record replaces, as they are now: looked at again under the folder's lock as the
        record is placed, where another run may have placed the case's outputs (or a file of that name) since."""
        if (path.exists() or path.is_symlink()) and not path.is_dir() and not is_failure_record(path):
            # a file of the user's (their notes, another tool's record, an input named so) is never replaced by a
            # record, with --overwrite or without: it is no output of medseg's (a folder there is told as any output's)
            raise OutputExistsError(f"{path}: a file of that name is there that is not a medseg failure record; it is "
                                    "left as it is")
        earlier = [*targets, *superseded_outputs(input_path, out_dir, scored, output_format, name, keep=keep)]
        existing = [found for found in earlier if found.exists() or found.is_symlink()]
        if existing and not overwrite:
            raise _CaseHasResults
        return [found for found in existing if found.is_file() and not found.is_symlink()]

    record = failure_record(case_id, failure_stage(error), error, input_path, reference, series, message)
    try:
        return write_failure_record(path, record, retire=earlier_outputs)
    except _CaseHasResults:
        return None


class _CaseHasResults(Exception):
    """The case's outputs are there and the run may not replace them: no record (:func:`record_input_failure`)."""
