"""Find the per-case results under a results folder and read them into :class:`CaseResult` records.

A case is the ``<case_id>_seg.json`` sidecar, ``<case_id>_metrics.json`` and ``<case_id>_failed.json``
found in one folder (see the results-folder contract in the README). A case whose JSON cannot be read
becomes a failed case (stage ``report``), so nothing found is ever silently dropped.
"""

from __future__ import annotations

from pathlib import Path

from medseg.errors import InputError
from medseg.io.files import absolute_path, os_reason
from medseg.jsonfile import RESULT_BYTES, JsonFileError, read_json_object
from medseg.numbers import counted
from medseg.report.case_result import CaseResult, LabelResult, _exists, asked_series, label_key, resolve_path
from medseg.report.result_records import (
    _GIVE_READ_ACCESS,
    KINDS,
    METRIC_FIELDS,
    _hiding,
    _json_files,
    _metrics_notes,
    _number,
    _read_json,
    _shown,
    _sidecar_notes,
    _unlistable_folders,
)

__all__ = ["KINDS", "METRIC_FIELDS", "CaseResult", "LabelResult", "add_expected_cases", "asked_series",
           "check_sources", "collect_results", "label_key", "resolve_path"]


def collect_results(results_dir: Path | str, allow_empty: bool = False) -> list[CaseResult]:
    """Every case under ``results_dir`` (searched recursively), in a stable order. A folder without any
    results is an error unless ``allow_empty`` (a sample sheet then says which cases are missing)."""
    results_dir = absolute_path(results_dir)  # its files named as the sheet's are: a/../b as b
    if not results_dir.is_dir():
        raise InputError(f"{results_dir}: no such results folder")
    cases: dict[tuple[Path, str], CaseResult] = {}
    unreadable: set[Path] = set()
    found = 0
    for path in _json_files(results_dir):
        if path.name.startswith(".") or not path.is_file():
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
    _join_sidecars_beside_predictions(cases)
    for case in cases.values():
        _resolve_stale_failure(case)
        _check_segmentation(case)
    return sorted(cases.values(), key=lambda c: (c.case_id, str(c.folder)))


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


def _made_from_other_inputs(case: CaseResult, sample) -> str | None:
    """Why a case's results do not answer its sheet row (another image, series or reference than the row names),
    or None. A results folder must never show one series' segmentation under a row that names another."""
    import os

    sidecar = case.sidecar or {}
    made_from = sidecar.get("input")
    named = os.path.abspath(sample.image)
    if isinstance(made_from, str) and os.path.isabs(made_from) and named != made_from:
        return (f"the sample sheet names {named}, but the results were made from {made_from}; run the workflow "
                "again to redo the case")
    info = sidecar.get("input_info") or {}
    if sample.series is not None and isinstance(info, dict) and info and not _same_series(str(sample.series), info):
        return (f"the sample sheet names series {sample.series}, but the results were made from series "
                f"{info.get('series_key')} (UID {info.get('series_uid') or 'none'}); run the workflow again to redo "
                "the case")
    scored_against = (case.metrics or {}).get("reference")
    if sample.reference is None and case.metrics is not None:
        return (f"the sample sheet gives no reference, but the case has scores against {scored_against}; run the "
                "workflow again to remove them")
    if sample.reference is not None and isinstance(scored_against, str) and os.path.isabs(scored_against) \
            and os.path.abspath(sample.reference) != scored_against:
        return (f"the sample sheet names the reference {os.path.abspath(sample.reference)}, but the scores were made "
                f"against {scored_against}; run the workflow again to rescore the case")
    # the row's own files, away for a while (an unmounted share): the cohort keeps what was made from them
    scored = os.path.abspath(sample.reference) if sample.reference is not None and case.metrics is not None else None
    return _inputs_away(named, scored, _modalities(case.sidecar)) or _changed_since_made(case, sample)


def _modalities(sidecar: dict | None) -> int:
    """The modalities of the model a sidecar records having segmented with (its ``modalities``), or 1: a
    ``case_0000`` input of several is read with nnU-Net's channel files beside it, each of which counts where the
    input's signature, hash and availability are looked at (:func:`~medseg.cohort.records.path_signature`)."""
    names = (sidecar or {}).get("modalities")
    return len(names) if isinstance(names, list) and len(names) > 1 else 1


def _inputs_away(image: str | None, reference: str | None, modalities: int = 1) -> str | None:
    """Why a cohort's case is not shown while its ``image``, or the ``reference`` its scores were made against, is
    away (:func:`~medseg.cohort.records.unavailable`: an unmounted share, an archived file, a dataset's file dropped),
    or None: the cohort keeps what was made from them, and reuses it once they are back unchanged. Absolute paths, or
    None for a file not to be looked at. ``modalities``: those of the model that read the image (a channel file of
    nnU-Net's beside a ``case_0000`` image, dropped, is the input's being away, named)."""
    import os

    from medseg.cohort.records import input_files, unavailable
    from medseg.io.files import absent_content, missing_under
    from medseg.io.pairs import parts_not_here

    def missing(path) -> str:  # a dataset's file dropped since (datalad drop): said, with how to fetch it again
        if os.path.isdir(path):  # a DICOM series some of whose slices were dropped
            what = missing_under(path)
            return f" in part: {what}" if what else ""
        what = absent_content(path)
        if what is None and os.path.exists(path):  # a .hdr's .img, a .mhd's .raw dropped
            part = parts_not_here(path)
            return f" in part: {part}" if part else ""
        return f": {what}" if what else ""

    if image is not None and unavailable(image, modalities):
        away = next((str(file) for file in input_files(image, modalities) if unavailable(file)), image)
        what = f"the input {image}" if away == image else f"the input {image}'s channel file {os.path.basename(away)}"
        return (f"{what} is missing{missing(away)}; the results made from it earlier are kept in the results folder "
                "(not shown here), and reused if it comes back unchanged")
    if reference is not None and unavailable(reference):
        return (f"the reference {reference} is missing{missing(reference)}; the scores made against it earlier are "
                "kept in the results folder (not shown here), and reused if it comes back unchanged")
    return None


def _changed_files(role: str, path: str, modalities: int, recorded) -> str:
    """What changed of an input read from ``path``, as a message names it: ``input PATH``, or for nnU-Net's channel
    files of a ``case_0000`` input (a model of several ``modalities``) whose ``recorded`` signatures show that a
    further one changed, ``input PATH's channel file case_0001.nii.gz`` (those whose size or time differs now), so
    that the user looks at the file that changed rather than at the ``case_0000`` the row names."""

    from medseg.io.channels import channel_files
    from medseg.io.pairs import file_signature

    files = channel_files(path, modalities) if role == "input" else None
    if not files or not isinstance(recorded, list) or len(recorded) != len(files):
        return f"{role} {path}"
    changed = [file.name for file, then in zip(files, recorded) if file_signature(file) != then]
    if not changed or changed == [files[0].name]:
        return f"{role} {path}"
    return f"{role} {path}'s channel file{'s' if len(changed) > 1 else ''} {', '.join(changed)}"


def _changed_since_made(case: CaseResult, sample) -> str | None:
    """Why a case's results are older than the row's files now at the same paths (a file changed or replaced
    since: its size or modification time is not the one the cohort recorded when it made the results, and its
    content not the one the sidecar or metrics record having read), or None. Only a cohort's results folder records
    them (``status/<id>.<stage>.json``); the cohort redoes such a case, and keeps one only touched or copied."""
    import os

    from medseg.cohort.records import ResultsFolder, content_sha256, path_signature

    folder = ResultsFolder(case.results_dir)
    checks = [("infer", "image_signature", sample.image, "input", "segmented", "redo", sample.series,
               (case.sidecar or {}).get("input_sha256"), _modalities(case.sidecar))]
    if sample.reference is not None and case.metrics is not None:
        checks.append(("evaluate", "reference_signature", sample.reference, "reference", "scored", "rescore", None,
                       case.metrics.get("reference_sha256"), 1))
    for stage, key, path, role, made, again, series, made_sha256, modalities in checks:
        record = folder.status(case.case_id, stage)
        recorded = record.get(key) if record is not None and record.get("outcome") == "ok" else None
        if recorded is None or recorded == "missing":  # written before medseg recorded it, or made while away
            continue
        if path_signature(path, modalities) != recorded and not (
                isinstance(made_sha256, str) and content_sha256(path, series, modalities) == made_sha256):
            return (f"the {_changed_files(role, os.path.abspath(path), modalities, recorded)} was changed or "
                    f"replaced after the case was {made} (its size or modification time differs from the one "
                    f"recorded then, and its content from the one read then); run the workflow again to {again} the "
                    "case")
    return None


def _same_series(cell: str, info: dict) -> bool:
    """Whether a sheet's series cell names the series a sidecar records, read as the series choice reads it: a key
    or a UID as written, a whole number as the SeriesNumber (``03`` is series 3)."""
    import re

    from medseg.io.dicom_series import series_match

    key, number = info.get("series_key"), info.get("series_number")
    number = int(number) if isinstance(number, int) or str(number).lstrip("-").isdigit() else None
    found = series_match(cell, key, info.get("series_uid"), number)
    # a part of a split series: a bare number matches every part, which the series choice refuses as ambiguous
    return found is not None and not (found == "number" and re.fullmatch(r"-?\d+-\d+", str(key or "")))


def add_expected_cases(cases: list[CaseResult], samples, results_dir: Path | str) -> list[CaseResult]:
    """``cases`` with what a sample sheet expected and the results folder lacks, as failed cases: a sheet case
    without results (stage ``not_run``), and one with a reference but no scores (stage ``not_scored``); results
    that do not answer the sheet (made from other inputs, or of a case no longer in it) are ``stale``."""
    from medseg.cohort.records import ResultsFolder

    results_dir = absolute_path(results_dir)  # its files named as the sheet's are: a/../b as b
    records = ResultsFolder(results_dir)
    by_id = {case.case_id: case for case in cases}
    out = list(cases)
    unreadable: list[tuple[Path, str]] | None = None  # folders under the results this user may not list: looked for
    # once, where a case has no results
    listed = {sample.case_id for sample in samples}
    for case in cases:  # results of a row removed from the sheet: not the cohort's any more
        if case.case_id not in listed:
            folder = case.folder.relative_to(results_dir) if case.folder.is_relative_to(results_dir) else case.folder
            case.failure = {"schema": "medseg-failure/1", "case_id": case.case_id, "stage": "stale",
                            "input": (case.sidecar or case.failure or {}).get("input"), "reference": None,
                            "error": "not in the sample sheet (its row was removed after the run); its results are "
                                     f"kept in {folder}/: remove that folder to leave the case out of the report",
                            "error_type": "StaleResult"}
    for sample in samples:
        reference = str(sample.reference) if sample.reference is not None else None
        case = by_id.get(sample.case_id)
        if case is None:
            folder = results_dir / "cases" / sample.case_id
            # a file in its place; or a folder of its own that took no files, as the cohort step recorded it (not
            # tried here: a reviewer who may not write there reads the results too)
            refused = _refused_by_its_folder(records, sample.case_id, ("infer",)) if folder.is_dir() else None
            blocked = records.blocked_reason(sample.case_id, probe=False) or (refused and refused[1])
            error = blocked or ("in the sample sheet, but the results folder holds nothing for it (not run yet, or "
                                "its results were removed)")
            stage, error_type = ("infer", "OutputWriteError") if blocked else ("not_run", "MissingResult")
            if not blocked:
                if unreadable is None:
                    unreadable = _unlistable_folders(results_dir)
                hidden = _hiding(unreadable, folder, results_dir)
                if hidden is not None:  # its own folder, or one on its way, which the report could not look in
                    stage, error_type, error = "report", "UnreadableResult", hidden
                elif unreadable:  # another layout: which folder held it is not known
                    error = ("in the sample sheet, but the results this user may read hold nothing for it; "
                             + _hiding(unreadable[:1], unreadable[0][0], results_dir)
                             + (f" (and {counted(len(unreadable) - 1, 'other folder')})" if len(unreadable) > 1
                                else ""))
            out.append(CaseResult(case_id=sample.case_id, folder=folder, results_dir=results_dir, failure={
                "schema": "medseg-failure/1", "case_id": sample.case_id, "stage": stage,
                "input": str(sample.image), "reference": reference, "error": error, "error_type": error_type}))
        elif ((linked := records.linked_folder(sample.case_id) is not None) or case.failure is None) \
                and (refused := _refused_by_its_folder(records, sample.case_id)) is not None:
            # a link in the place of its folder: what the cohort said of it, not what the report read where it leads
            stage, error = refused
            held = "" if linked else " (the results it holds are an earlier run's)"
            case.failure = {"schema": "medseg-failure/1", "case_id": sample.case_id, "stage": stage,
                            "input": str(sample.image), "reference": reference, "error": f"{error}{held}",
                            "error_type": "OutputWriteError"}
        elif case.failure is None and (stale := _made_from_other_inputs(case, sample)):
            case.failure = {"schema": "medseg-failure/1", "case_id": sample.case_id, "stage": "stale",
                            "input": str(sample.image), "reference": reference, "error": stale,
                            "error_type": "StaleResult"}
        elif reference is not None and case.status == "no_reference":
            case.failure = {"schema": "medseg-failure/1", "case_id": sample.case_id, "stage": "not_scored",
                            "input": str(sample.image), "reference": reference,
                            "error": f"the sample sheet gives the reference {sample.reference}, but the case has "
                                     "no scores (the evaluate step has not run for it)",
                            "error_type": "MissingResult"}
    return sorted(out, key=lambda c: (c.case_id, str(c.folder)))


def _refused_by_its_folder(records, case_id: str, stages: tuple[str, ...] = ("infer", "evaluate")
                           ) -> tuple[str, str] | None:
    """The stage and error of a cohort case whose last run found its folder taking no files (its status record of
    one of ``stages``, in :class:`~medseg.cohort.records.ResultsFolder` ``records``, says so: ``blocked``), or None.
    The results that folder may still hold were made by an earlier run, perhaps with another model or settings:
    they are not this run's."""
    for stage in stages:
        record = records.status(case_id, stage) or {}
        if record.get("blocked") and record.get("outcome") == "failed" and isinstance(record.get("error"), str):
            return str(record.get("failed_stage") or stage), record["error"]
    return None


def _resolve_stale_failure(case: CaseResult) -> None:
    """A failure record beside results of the same case: the newer wins. A case that failed after it was
    segmented (say, at stage evaluate) keeps its sidecar, for provenance and its overlay."""
    failure_path = case.paths.get("failure")
    others = [case.paths[kind] for kind in ("sidecar", "metrics") if kind in case.paths and getattr(case, kind)]
    if case.failure is None or failure_path is None or not others:
        return
    if case.failure.get("stage") == "evaluate" and case.metrics is None:
        return  # segmented, then failed at scoring: the sidecar stays for provenance (file times do not matter)
    newest = max(others, key=lambda p: p.stat().st_mtime)
    if newest.stat().st_mtime > failure_path.stat().st_mtime:
        case.notes.append(f"ignored {failure_path.name}: older than {newest.name}")
        case.failure = None
    elif case.metrics is not None:
        case.notes.append(f"ignored {case.paths['metrics'].name}: the case failed after it was written")
        case.metrics = None


def _check_segmentation(case: CaseResult) -> None:
    """A case's files must describe one segmentation: the file the sidecar describes, unchanged since (its SHA-256),
    and metrics that score that file. Otherwise the case is stale: its volumes and scores are not shown as its own.
    Results written before sidecars and metrics recorded the hash are taken as they are."""
    import os

    from medseg.io.atomic import sha256_of

    if case.sidecar is None or (case.failure is not None and not case.failed_at_scoring):
        return  # a case that failed only at scoring shows its segmentation's volumes: that file must be the sidecar's
    described, made = case.sidecar.get("segmentation"), case.sidecar.get("segmentation_sha256")
    path = case.segmentation_path()  # the file the report reads: in the case's folder, or where the metrics say
    metrics = case.metrics or {}
    scored, read = metrics.get("prediction"), metrics.get("prediction_sha256")
    metrics_name = case.paths["metrics"].name if "metrics" in case.paths else None
    why = None
    if isinstance(made, str) and path is not None:
        try:
            found = sha256_of(path)
        except PermissionError:  # the file may be whole: what to do is to let this user read it, not to redo it
            if case.failure is not None:  # failed at scoring: scoring's reason is told
                case.notes.append(f"scoring failed too: {case.failure.get('error')}")
            case.failure = {"schema": "medseg-failure/1", "case_id": case.case_id, "stage": "report",
                            "input": case.sidecar.get("input"), "reference": metrics.get("reference"),
                            "error": f"{_shown(path, case.results_dir)}: cannot read (permission denied); "
                                     f"{_GIVE_READ_ACCESS}", "error_type": "UnreadableResult"}
            case.metrics = None
            return
        except OSError as error:
            found, why = None, f"{path.name}: cannot read ({os_reason(error)})"
        if found is not None and found != made:
            shown = path.name if path.parent == case.folder else str(path)
            why = (f"{shown} is not the file its sidecar {case.paths['sidecar'].name} describes (their SHA-256 "
                   "differ: it was changed or replaced after medseg wrote it)")
    if why is None and isinstance(described, str) and isinstance(scored, str) \
            and os.path.basename(scored) != os.path.basename(described):
        why = f"{metrics_name} scores {os.path.basename(scored)}, but the case's sidecar describes {described}"
    if why is None and isinstance(made, str) and isinstance(read, str) and made != read:
        why = (f"{metrics_name} scores another {described} than the one its sidecar describes (their SHA-256 differ: "
               "the segmentation was written again after it was scored)")
    again = "segment the case again (a cohort redoes a case whose folder was removed)"
    if why is None and case.metrics is not None and read is None and _volumes_differ(metrics, case.sidecar):
        why = (f"{metrics_name} scores another {described} than the one its sidecar describes (written by an earlier "
               "medseg, without the SHA-256 of the file it scored, its predicted volumes are not the sidecar's)")
        again = f"score the segmentation again (medseg evaluate -o ... --overwrite) or remove {metrics_name}"
    if why is None:
        return
    if case.metrics is not None:
        case.notes.append(f"ignored {metrics_name}: it does not score the case's segmentation")
    reference = metrics.get("reference")
    if case.failure is not None:  # failed at scoring: scoring's reason is told, the file's change decides the stage
        case.notes.append(f"scoring failed too: {case.failure.get('error')}")
        reference = case.failure.get("reference")
    case.failure = {"schema": "medseg-failure/1", "case_id": case.case_id, "stage": "stale",
                    "input": case.sidecar.get("input"), "reference": reference,
                    "error": f"{why}; {again}",
                    "error_type": "StaleResult"}
    case.metrics = None


def _volumes_differ(metrics: dict, sidecar: dict) -> bool:
    """Whether metrics score other labels than the sidecar's segmentation holds: a label's predicted volume unlike
    the sidecar's (to the 4 decimals early sidecars kept), for records that do not name the scored file's SHA-256."""
    volumes, labels = sidecar.get("label_volume_ml"), metrics.get("labels")
    if not isinstance(volumes, dict) or not isinstance(labels, dict):
        return False
    for value, entry in labels.items():
        scored, described = _number(entry.get("pred_volume_ml")), _number(volumes.get(value))
        # half a unit of the 4th decimal, and a hair over it: a volume on a rounding midpoint (63 voxels of
        # 0.00025 ml: 0.01575, kept as 0.0158) differs by 5e-5 plus the floats' own error
        if scored is not None and described is not None and abs(scored - described) > max(5e-5, 1e-6 * scored) * (
                1 + 1e-9):
            return True
    return False


def check_sources(cases: list[CaseResult]) -> None:
    """Mark ``stale`` each case whose input or reference changed since (:func:`_check_sources`). Run after
    :func:`add_expected_cases`, whose message for a cohort's case (checked against ``status/``) comes first."""
    for case in cases:
        _check_sources(case)


def _check_sources(case: CaseResult) -> None:
    """A case whose input or reference was changed or replaced at the same path since it was segmented or scored
    is stale: its figures are not those of the file there now (and its overlay would draw the new image under the
    old segmentation). The sidecar and the metrics record each file's size and modification time
    (``input_signature``, ``reference_signature``) and SHA-256; a file whose signature differs now is hashed, and
    its content decides (a copy with new times is the same file), unless a cohort's record of the stage holds the
    file's size and time now: the cohort hashed it at those and kept the case, so it is not hashed on every report.
    A DICOM folder, a missing file and results written before the signatures were recorded are taken as they are (a
    cohort checks those against ``status/``)."""
    import os

    from medseg.cohort.records import content_sha256
    from medseg.io.pairs import input_signature

    if case.failure is not None or case.sidecar is None:
        return
    metrics = case.metrics or {}
    away = _away_from_cohort(case)
    if away is not None:  # as the report with the cohort's sheet says it
        case.failure = {"schema": "medseg-failure/1", "case_id": case.case_id, "stage": "stale",
                        "input": case.sidecar.get("input"), "reference": metrics.get("reference"), "error": away,
                        "error_type": "StaleResult"}
        return
    # an input of nnU-Net's channel files (a multi-modal model's case_0000): each of them counts
    checks = [("input", case.sidecar, "segmented", "segment the case again", "infer", "image_signature",
               _modalities(case.sidecar)),
              ("reference", metrics, "scored", "score the case again", "evaluate", "reference_signature", 1)]
    for role, record, made, again, stage, key, modalities in checks:
        path, recorded, made_sha256 = record.get(role), record.get(f"{role}_signature"), record.get(f"{role}_sha256")
        if not isinstance(path, str) or not os.path.isabs(path) or recorded is None or not isinstance(made_sha256, str):
            continue
        now = input_signature(path, modalities)
        if now is None or now == recorded or _kept_by_cohort(case, stage, key, now):
            continue
        # hashed as it was then: a DICOM SEG reference's file, an image's files as reading it reads them; None
        # where unreadable now (the overlay and the geometry check say so)
        found = content_sha256(path, modalities=modalities)
        if found is None or found == made_sha256:
            continue
        why = (f"the {_changed_files(role, path, modalities, recorded)} was changed or replaced after the case "
               f"was {made} (its SHA-256 is not the one recorded then); {again} (a cohort redoes such a case)")
        if case.metrics is not None:
            case.notes.append(f"ignored {case.paths['metrics'].name}: its {role} is not the file there now")
        case.failure = {"schema": "medseg-failure/1", "case_id": case.case_id, "stage": "stale",
                        "input": case.sidecar.get("input"), "reference": metrics.get("reference"), "error": why,
                        "error_type": "StaleResult"}
        case.metrics = None
        return


def _away_from_cohort(case: CaseResult) -> str | None:
    """For a cohort's case (its results folder's record of the case's segmentation), why it is not shown while the
    input its sidecar names, or the reference its metrics name, is away (:func:`_inputs_away`), as the report with
    the cohort's sheet says it (the workflow passes it): without the sheet such a case was shown as scored. Results
    that ``medseg infer`` or ``evaluate`` wrote outside a cohort are taken as they are: their input may be archived
    once they are made, and nothing keeps them apart from others."""
    import os

    from medseg.cohort.records import ResultsFolder, unavailable

    records = ResultsFolder(case.results_dir)

    def made(stage: str, path) -> str | None:  # the file, where the cohort's record of the stage is of a finished one
        record = records.status(case.case_id, stage)
        return path if record is not None and record.get("outcome") == "ok" else None

    image, reference = ((path if isinstance(path, str) and os.path.isabs(path) else None)
                        for path in ((case.sidecar or {}).get("input"), (case.metrics or {}).get("reference")))
    modalities = _modalities(case.sidecar)
    if image is None or not (unavailable(image, modalities) or unavailable(reference)):  # all here: no record read
        return None
    image = made("infer", image)
    return None if image is None else _inputs_away(image, reference and made("evaluate", reference), modalities)


def _kept_by_cohort(case: CaseResult, stage: str, key: str, signature: list) -> bool:
    """Whether a cohort's finished record of the case's stage holds ``signature`` (a file's size and time now) as
    its file's: the cohort made the results from the file so, or found its content the one they were made from and
    kept them (a file touched or copied since; the sidecar and metrics keep the times they were written with)."""
    from medseg.cohort.records import ResultsFolder

    status = ResultsFolder(case.results_dir).status(case.case_id, stage)
    return status is not None and status.get("outcome") == "ok" and status.get(key) == signature
