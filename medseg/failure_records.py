"""Failure records: ``<case>_failed.json`` (schema ``medseg-failure/1``), what ``medseg report`` lists as a failed case.

The cohort workflow (:mod:`medseg.cohort.run`) and ``medseg evaluate`` over folders (:mod:`medseg.folder_scoring`)
write them alike: the case, its input (and reference; a DICOM row's series), the stage it failed at, the one-line error
and its type, the time and the medseg version. A record is placed with the case's earlier outputs retired in the same
step.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from medseg.errors import DicomError, GeometryError, ImageReadError, InputError

__all__ = ["FAILURE_SCHEMA", "FAILURE_SUFFIX", "READ_ERRORS", "failure_path", "failure_record", "failure_stage",
           "write_failure_record"]

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


def write_failure_record(path: Path | str, record: dict, retire: Sequence[Path | str] = ()) -> Path:
    """Place ``record`` at ``path`` whole (replacing an earlier one), ``retire`` (the case's earlier outputs: no
    results of a case that failed now stay beside its record) taken away in the same step; :class:`OutputWriteError`
    where it cannot be written."""
    from medseg.io.atomic import atomic_paths

    path = Path(path)
    with atomic_paths([path], overwrite=True, retire=list(retire)) as (temp,):
        temp.write_text(json.dumps(record, indent=2, allow_nan=False) + "\n")
    return path

