"""Find the per-case results under a results folder and read them into :class:`CaseResult` records.

A case is the ``<case_id>_seg.json`` sidecar, ``<case_id>_metrics.json`` and ``<case_id>_failed.json``
found in one folder (see the results-folder contract in docs/cohorts.md). A case whose JSON cannot be read
becomes a failed case (stage ``report``), so nothing found is ever silently dropped.

Its parts are modules of their own: :mod:`medseg.report.result_records` (the result files under the folder found,
each read and checked, and the notes it gives), :mod:`medseg.report.case_result` (the case and label records),
:mod:`medseg.report.stale_results` (results that no longer describe their case) and
:mod:`medseg.report.expected_cases` (the cases a sample sheet expects). The public names this module listed before
they moved there are still importable from here (``__all__``).
"""

from __future__ import annotations

from pathlib import Path

from medseg.errors import InputError
from medseg.io.files import absolute_path
from medseg.jsonfile import RESULT_BYTES, JsonFileError, read_json_object
from medseg.report.case_result import CaseResult, LabelResult, _exists, asked_series, label_key, resolve_path
from medseg.report.expected_cases import add_expected_cases
from medseg.report.result_records import (
    KINDS,
    METRIC_FIELDS,
    _json_files,
    _metrics_notes,
    _read_json,
    _shown,
    _sidecar_notes,
)
from medseg.report.stale_results import _check_segmentation, _resolve_stale_failure, check_sources

__all__ = ["KINDS", "METRIC_FIELDS", "CaseResult", "LabelResult", "add_expected_cases", "asked_series",
           "check_sources", "collect_results", "label_key", "resolve_path"]


def collect_results(results_dir: Path | str, allow_empty: bool = False) -> list[CaseResult]:
    """Every case under ``results_dir`` (searched recursively), in a stable order. A folder without any
    results is an error unless ``allow_empty`` (a sample sheet then says which cases are missing)."""
    results_dir = absolute_path(results_dir)  # its files named as the sheet's are: a/../b as b
    from medseg.io.files import exists

    exists(results_dir)  # behind a folder this user may not search: named (Path.is_dir raised PermissionError)
    if not results_dir.is_dir():
        from medseg.io.files import not_there

        missing = "no such results folder"
        raise InputError(f"{results_dir}: {missing if results_dir.exists() else not_there(results_dir, missing)}")
    cases: dict[tuple[Path, str], CaseResult] = {}
    unreadable: set[Path] = set()
    found = 0
    for path in _json_files(results_dir):
        if path.name.startswith("."):
            continue
        suffix = next((s for s in KINDS if path.name.endswith(s)), None)
        if suffix is None:
            continue
        found += 1
        kind, schema = KINDS[suffix]
        name_id = path.name[: -len(suffix)]
        record, problem, advice = _read_json(path, schema, _shown(path, results_dir))
        case_id = name_id
        if record is not None and isinstance(record.get("case_id"), str) and record["case_id"]:
            case_id = record["case_id"]
        key = (path.parent, case_id)
        case = cases.setdefault(key, CaseResult(case_id=case_id, folder=path.parent, results_dir=results_dir))
        if problem is not None:
            unreadable.add(path)
            case.notes.append(problem)
            case.failure = case.failure or {
                "schema": "medseg-failure/1", "case_id": case_id, "stage": "report",
                "error": problem if advice is None else f"{problem}; {advice}", "error_type": "UnreadableResult",
            }
            case.paths[kind] = path
            continue
        if kind in case.paths and case.paths[kind] in unreadable:  # the case fails on the unreadable one already
            case.notes.append(f"{_shown(path, results_dir)} holds the {kind} of case {case_id!r} too")
            continue
        if kind in case.paths:  # two files of one folder claim to be this case's (a copied or renamed file)
            problem = (f"{_shown(case.paths[kind], results_dir)} and {path.name} both hold the {kind} of case "
                       f"{case_id!r}; keep the one that belongs to this case and remove the other, then run again")
            case.notes.append(problem)
            case.failure = {"schema": "medseg-failure/1", "case_id": case_id, "stage": "report", "error": problem,
                            "error_type": "DuplicateResult"}
            continue
        setattr(case, kind, record)
        case.paths[kind] = path
        if kind == "metrics":
            case.notes.extend(_metrics_notes(record))
        if kind == "sidecar":
            case.notes.extend(_sidecar_notes(record))
    if not found and not allow_empty:
        raise InputError(
            f"{results_dir}: no case results found (looked for *_seg.json, *_metrics.json and *_failed.json)"
        )
    _join_missed_cases_to_their_failures(cases, results_dir)
    _join_sidecars_beside_predictions(cases)
    for case in cases.values():
        _resolve_stale_failure(case)
        _check_segmentation(case)
    return sorted(cases.values(), key=lambda c: (c.case_id, str(c.folder)))


def _join_missed_cases_to_their_failures(cases: dict[tuple[Path, str], CaseResult], results_dir: Path) -> None:
    """A case ``medseg evaluate PRED_DIR REF_DIR -o OUT_DIR`` counted as missed (no prediction in PRED_DIR, its
    failure record naming that folder as ``predictions``) where ``medseg infer`` failed on it (its failure record in
    PRED_DIR) is that one case, failed as infer's record says; the scoring's record is a note of it. Reported over
    both folders, it was two cases of one id, each flagged ``duplicate_id``."""
    import os

    by_folder = {(os.path.realpath(folder), case_id): (folder, case_id) for folder, case_id in cases}
    for key, case in list(cases.items()):
        failure = case.failure or {}
        predictions = failure.get("predictions")
        if failure.get("error_type") != "MissingPrediction" or not isinstance(predictions, str) \
                or case.metrics is not None or case.sidecar is not None:
            continue
        other = cases.get(by_folder.get((os.path.realpath(predictions), case.case_id)))
        if other is None or other is case or other.failure is None or other.metrics is not None \
                or other.failure.get("stage") in ("evaluate", "not_run") or "failure" not in case.paths:
            continue
        other.notes.append(f"{_shown(case.paths['failure'], results_dir)}: not scored either: {failure.get('error')}")
        del cases[key]


def _join_sidecars_beside_predictions(cases: dict[tuple[Path, str], CaseResult]) -> None:
    """A case scored (or failed at scoring) apart from the sidecar of its prediction takes that sidecar: the one
    beside the prediction its metrics (or failure record) name, where it describes that file. Scores written into a
    folder of their own (``medseg evaluate PRED_DIR REF_DIR -o OUT_DIR``, ``medseg evaluate PRED REF -o scores/``)
    then show the model that made the prediction and whether its input is one of the model's training images (they
    read as no model and "0 in the training set", however many were); scores written beside predictions under
    another case name (``case_metrics.json`` beside ``case_0000_seg.json``, as two folders are paired) are one case,
    not a scored case and a segmented one. A sidecar that cannot be read is a note; the scores stand."""
    import os

    from medseg.io.label_images import prediction_sidecar

    held = {os.path.realpath(case.paths["sidecar"]): key for key, case in cases.items()
            if case.sidecar is not None and "sidecar" in case.paths}
    for key, case in list(cases.items()):
        if key not in cases:
            continue
        prediction = _scored_prediction(case)
        if prediction is None:
            continue
        try:
            path = prediction_sidecar(prediction)
            other_key = held.get(os.path.realpath(path))
        except (OSError, ValueError):
            continue
        if other_key is not None:  # in the results folder, read as a case of its own
            other = cases.get(other_key)
            if other is None or other is case or other.metrics is not None or other.failure is not None \
                    or not _describes(other.sidecar, prediction):
                continue
            case.sidecar, case.paths["sidecar"] = other.sidecar, other.paths["sidecar"]
            case.notes.extend(other.notes)
            del cases[other_key]
            continue
        if not _exists(path, file=True):
            continue
        try:
            found = read_json_object(path, RESULT_BYTES, "a medseg result record").get("schema")
        except (JsonFileError, OSError):
            continue
        if found != KINDS["_seg.json"][1]:
            continue  # another tool's JSON beside its prediction (a BIDS sidecar): no model of medseg's to show
        record, problem, _ = _read_json(path, KINDS["_seg.json"][1], str(path))
        if problem is not None:
            case.notes.append(f"{problem}: the model that made the prediction is not shown")
            continue
        if _describes(record, prediction):
            case.sidecar = record
            case.paths["sidecar"] = path
            case.notes.extend(_sidecar_notes(record))


def _scored_prediction(case: CaseResult) -> Path | None:
    """The prediction a case without a sidecar was scored from (its metrics), or failed to be scored from (a failure
    record of stage ``evaluate``), as it exists now; None otherwise."""
    if case.sidecar is not None or "sidecar" in case.paths:
        return None
    if case.metrics is not None and case.failure is None:
        recorded = case.metrics.get("prediction")
    elif case.metrics is None and case.failure is not None and case.failure.get("stage") == "evaluate":
        recorded = case.failure.get("input")
    else:
        return None
    return resolve_path(recorded, case) if isinstance(recorded, str) else None


def _describes(sidecar: dict | None, prediction: Path) -> bool:
    """Whether ``sidecar`` is that of ``prediction``: the segmentation it describes has its name."""
    described = (sidecar or {}).get("segmentation")
    return isinstance(described, str) and Path(described).name == prediction.name
