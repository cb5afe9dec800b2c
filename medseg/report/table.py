"""``cohort.tsv``: one row per case, worst first, with per-label metric columns."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from pathlib import Path

from medseg.numbers import dice_text
from medseg.report.case_result import CaseResult, LabelResult
from medseg.report.failed_jobs import FailedJob
from medseg.report.flags import Flag
from medseg.report.result_records import METRIC_FIELDS

__all__ = ["CASE_COLUMNS", "LAST_COLUMNS", "cohort_rows", "label_columns", "label_names", "write_tsv"]

CASE_COLUMNS = ("rank", "case_id", "status", "n_flags", "flags", "min_dice", "model", "model_version",
                "model_weights_sha256", "in_training_set", "input", "series", "series_uid", "segmentation", "reference",
                "input_sha256", "segmentation_sha256", "reference_sha256", "device", "precision", "created",
                "failed_stage", "error_type", "error")
# after the label columns, so that a reader of the columns by position keeps its own: the job whose last attempt
# failed as a whole and failed the case (``batch001.infer``; summary.json's ``failed_jobs`` holds its error and log),
# when the case was segmented and when scored (``created`` is the one, else the other: kept for older readers), and
# the job whose last attempt failed as a whole and kept the case from an earlier run (summary.json's
# ``failed_jobs[].kept``: shown as the others are, it read as made by this run)
LAST_COLUMNS = ("failed_job", "segmented_at", "scored_at", "kept_by_failed_job")


def label_names(cases: list[CaseResult]) -> dict[str, str]:
    """Label value -> name, the first found; a name only where some case has one, not the ``label_N`` of a case
    scored without names (it renamed every column and the tables' rows)."""
    found: dict[str, LabelResult] = {}
    for case in cases:
        for label in case.labels():
            if label.value not in found or (label.named and not found[label.value].named):
                found[label.value] = label
    return {value: label.name for value, label in found.items()}


def label_columns(cases: list[CaseResult]) -> dict[str, str]:
    """Label value -> column prefix: the label's name (accents composed) with characters other than letters and
    digits of any script, ``-`` and ``_`` replaced by ``_`` (``<value>_<name>`` when two labels would share a
    prefix). A name in another script keeps its letters: ``肝`` is ``肝_dice``, not ``_`` and then ``1___dice``."""
    names = label_names(cases)
    prefixes = {value: re.sub(r"[^\w-]", "_", unicodedata.normalize("NFC", name)) or f"label_{value}"
                for value, name in names.items()}
    taken = list(prefixes.values())

    def clashes(prefix: str) -> bool:  # a label named "min" would write its Dice into the case's min_dice
        return taken.count(prefix) > 1 or any(f"{prefix}_{key}" in CASE_COLUMNS for key in (*METRIC_FIELDS, "status"))

    columns = {value: (f"{value}_{prefix}" if clashes(prefix) else prefix) for value, prefix in
               sorted(prefixes.items(), key=lambda kv: int(kv[0]) if kv[0].isdigit() else 1 << 30)}
    used: set[str] = set()
    for value, prefix in columns.items():  # a renamed prefix may meet another label's name ("1_a_b")
        if prefix in used or any(f"{prefix}_{key}" in CASE_COLUMNS for key in (*METRIC_FIELDS, "status")):
            columns[value] = prefix = f"label_{value}"
        used.add(prefix)
    return columns


def cohort_rows(cases: list[CaseResult], flags: list[list[Flag]], order: list[int],
                dice_threshold: float | None = None, failed_jobs: Sequence[FailedJob] = ()
                ) -> tuple[list[str], list[dict]]:
    """Header and rows (dicts) of the cohort table, in ``order``. Dice values are text to 6 decimals, or to as
    many more as it takes to stay on their side of ``dice_threshold`` (0.6999996 is not written 0.7).
    ``failed_jobs``: the workflow's jobs that failed as a whole (:func:`medseg.report.failed_jobs.failed_jobs`), whose
    kept cases name them in ``kept_by_failed_job`` (joined by ``;`` where two jobs kept a case)."""
    prefixes = label_columns(cases)
    kept_by: dict[str, list[str]] = {}  # a batch's inference and scoring jobs may both have kept a case
    for job in failed_jobs:
        for case_id in job.kept:
            kept_by.setdefault(case_id, []).append(job.name)
    header = list(CASE_COLUMNS)
    for prefix in prefixes.values():
        header += [f"{prefix}_{key}" for key in METRIC_FIELDS] + [f"{prefix}_status"]
    header += LAST_COLUMNS
    rows = []
    for rank, index in enumerate(order, start=1):
        case = cases[index]
        failure = case.failure or {}
        info = (case.sidecar or {}).get("input_info") or {}
        segmentation = case.segmentation_path()
        # a case that failed before scoring may keep an earlier run's sidecar, whose model is not the one that failed
        # (a stale case's outputs are that run's: its model made them)
        describes = not case.failed_before_scoring or failure.get("stage") == "stale"
        made = case.model if describes else {}
        sidecar = (case.sidecar or {}) if describes else {}
        metrics = case.metrics or {}
        # its scores, where the report takes them: not a failed case's (two files claiming to be its metrics, scores
        # an earlier run left), but a stale case's, which are that run's as its segmentation is
        scores = metrics if case.failure is None or failure.get("stage") == "stale" else {}
        row = {
            "rank": rank,
            "case_id": case.case_id,
            "status": case.status,
            "n_flags": len(flags[index]),
            "flags": ";".join(flag.text for flag in flags[index]),
            "min_dice": _dice(case.min_dice(), dice_threshold),
            "model": made.get("name"),
            # a retrained model keeps its name: which version made the case (one kept from an earlier run, or another
            # results folder's row)
            "model_version": made.get("version"),
            "model_weights_sha256": made.get("weights_sha256"),
            # true: one of the model's training images (its Dice overstates accuracy on new data); empty: not known
            "in_training_set": {True: "true", False: "false"}.get(case.in_training_set),
            "input": (case.sidecar or {}).get("input") or failure.get("input"),
            # a DICOM input: which series of the folder (two rows may segment two series of one study)
            "series": info.get("series_key") or failure.get("series"),  # a failed case: the series asked for
            "series_uid": info.get("series_uid"),
            "segmentation": str(segmentation) if segmentation else None,
            # the reference it was scored against, where the report takes its scores; a failed case's, the one its
            # failure record names (as the page names it)
            "reference": case.named_reference(),
            # the files by their SHA-256, the device and precision, and when it was made: a row ties to its files
            "input_sha256": sidecar.get("input_sha256"),
            # not from scores the report does not take (scored_at's rule): their files may not be the case's now
            "segmentation_sha256": sidecar.get("segmentation_sha256") or scores.get("prediction_sha256"),
            "reference_sha256": scores.get("reference_sha256"),
            "device": sidecar.get("device"),
            "precision": sidecar.get("precision"),
            "created": sidecar.get("created") or scores.get("created"),  # segmented_at, else scored_at
            "failed_stage": failure.get("stage"),
            "error_type": failure.get("error_type"),
            "error": failure.get("error"),
            "failed_job": _job_name(failure),
            "segmented_at": sidecar.get("created"),  # as the model columns: not an earlier run's, for a failed case
            "scored_at": scores.get("created"),
            "kept_by_failed_job": ";".join(kept_by.get(case.case_id, [])) or None,
        }
        for label in case.labels():
            prefix = prefixes[label.value]
            for key in METRIC_FIELDS:
                value = getattr(label, key)
                row[f"{prefix}_{key}"] = _dice(value, dice_threshold) if key == "dice" else value
            row[f"{prefix}_status"] = label.status
        if case.failed_before_scoring:  # no label of its own: each label's status says why, as summary.json counts it
            row.update({f"{prefix}_status": "failed" for prefix in prefixes.values()})
        rows.append(row)
    return header, rows


def _job_name(failure: dict) -> str | None:
    """The workflow job a failure record says failed the case as a whole (its ``job``'s ``name``), else None."""
    job = failure.get("job")
    name = job.get("name") if isinstance(job, dict) else None
    return name if isinstance(name, str) and name else None


def write_tsv(header: list[str], rows: list[dict], path: Path) -> None:
    """Tab-separated, one header line; empty cells where a value is undefined; floats to 6 significant digits;
    tabs, line breaks and other control characters inside text become spaces; a cell holding a double quote is
    quoted as CSV quotes it (in quotes, its own quotes doubled), so that pandas, R and spreadsheets read it back
    as written. A text cell that a spreadsheet would take as a formula (one beginning with ``=``, ``+``, ``-`` or
    ``@``: a file named ``=HYPERLINK(...).nii.gz``, an error quoting it) gets a leading ``'``, which spreadsheets
    read as "text follows"; numbers are written as they are. Header cells too: a label named ``-x`` heads its
    columns ``'-x_dice`` and so on."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow([_cell(column) for column in header])
    for row in rows:
        writer.writerow([_cell(row.get(column)) for column in header])
    Path(path).write_text(buffer.getvalue(), encoding="utf-8", errors="backslashreplace")


def _dice(value: float | None, threshold: float | None) -> str | None:
    """Up to six decimals (trailing zeros dropped), more near the threshold; a tiny non-zero Dice is not 0."""
    if value is None:
        return None
    text = dice_text(value, threshold, digits=6)  # a tiny Dice gets the decimals it needs: never 0 or 1 unless so
    return text.rstrip("0").rstrip(".") if "." in text and "e" not in text else text


_FORMULA_START = ("=", "+", "-", "@")


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    text = re.sub(r"[\x00-\x1f\x7f\u2028\u2029]+", " ", str(value))
    if text.startswith(_FORMULA_START) and not isinstance(value, int) and not _is_number(text):
        return "'" + text  # a formula in a spreadsheet (=HYPERLINK, =cmd|...): kept as text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
