"""The cases a sample sheet expects, held against what the results folder holds (:func:`add_expected_cases`): a row
without results, or with a reference but no scores, results made from other inputs than the row names or changed
since, results of a row removed from the sheet, and a case whose folder the cohort found taking no files."""

from __future__ import annotations

from pathlib import Path

from medseg.io.files import absolute_path
from medseg.numbers import counted
from medseg.report.case_result import CaseResult
from medseg.report.result_records import _hiding, _unlistable_folders
from medseg.report.stale_results import _changed_files, _inputs_away, _modalities

__all__ = ["add_expected_cases", "cases_of_the_sheet", "left_out_text"]


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


def cases_of_the_sheet(cases: list[CaseResult], samples) -> tuple[list[CaseResult], list[CaseResult]]:
    """``cases`` split into those of the sample sheet and those left out: the results of rows taken out of it, which
    the cohort leaves on disk. A report against the sheet covers its cases only; those left out are named once (not
    failed, not in the figures, not among the models that made the cohort's results)."""
    listed = {sample.case_id for sample in samples}
    return ([case for case in cases if case.case_id in listed], [case for case in cases if case.case_id not in listed])


def add_expected_cases(cases: list[CaseResult], samples, results_dir: Path | str) -> list[CaseResult]:
    """``cases`` with what a sample sheet expected and the results folder lacks, as failed cases: a sheet case
    without results (stage ``not_run``), and one with a reference but no scores (stage ``not_scored``); results
    that do not answer the sheet (made from other inputs) are ``stale``. Results of a case not in the sheet are
    returned as they are: :func:`cases_of_the_sheet` leaves them out first."""
    from medseg.cohort.records import ResultsFolder

    results_dir = absolute_path(results_dir)  # its files named as the sheet's are: a/../b as b
    records = ResultsFolder(results_dir)
    by_id = {case.case_id: case for case in cases}
    out = list(cases)
    unreadable: list[tuple[Path, str]] | None = None  # folders under the results this user may not list: looked for
    # once, where a case has no results
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


def left_out_text(folders: list[str], cases: int) -> str:
    """The one sentence that names the results of the ``cases`` not in the sample sheet (``folders``: their
    folders under the results folder, or, in a folder the sheet's cases share, their files, ``extra/c03_*``; one
    folder may hold several such cases), which a report against the sheet leaves out. It counts the cases, not the
    names: "1 result of a case" was said of a folder holding two. "Not in", not "no longer in": whether a case was
    ever in the sheet, the report cannot know (its results record no sheet)."""
    from medseg.cohort.samples import some_names
    from medseg.numbers import counted

    if all(folder.endswith("/") for folder in folders):
        what = "the folder" if len(folders) == 1 else "the folders"
    else:  # files among them: not the folder that holds them, the sheet's cases' results too
        what = "them"
    return (f"{counted(cases, 'case')} not in the sample sheet {'has' if cases == 1 else 'have'} results left "
            f"out of the report: {some_names(folders)}; delete {what} to tidy up")


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
