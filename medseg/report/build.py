"""Build the cohort report: collect → check → flag → order → overlays → tables → page, written atomically."""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from medseg.allocator import release_free_memory
from medseg.caller_warnings import held_until_done, warning
from medseg.errors import InputError, MedsegError
from medseg.grid_match import GRID_TOLERANCE_MM, GRID_TOLERANCE_VOXELS
from medseg.io.atomic import atomic_paths, check_folders_writable, check_writable
from medseg.io.files import absolute_path, os_reason, path_argument
from medseg.metrics import EMPTY_MASK_POLICY, SURFACE_DEFINITION, jsonable
from medseg.numbers import counted
from medseg.report.case_result import CaseResult, label_key
from medseg.report.checks import check_segmentation, memory_text
from medseg.report.collect import collect_results
from medseg.report.expected_cases import add_expected_cases, cases_of_the_sheet, left_out_text
from medseg.report.figures import label_colours
from medseg.report.flags import DEFAULT_DICE_THRESHOLD, DEFAULT_OUTLIER_Z, Flag, flag_cases, flag_rules, worst_first
from medseg.report.html import ReportContent, render_page
from medseg.report.overlay_image import DEFAULT_CT_WINDOW, ct_window_hu
from medseg.report.stale_results import check_sources
from medseg.report.summary import models_text, summary_record
from medseg.report.table import cohort_rows, label_names, write_tsv
from medseg.settings_named import ANY, setting

__all__ = ["DEFAULT_MAX_OVERLAYS", "ReportOutputs", "build_report", "report_policy"]

log = logging.getLogger(__name__)

DEFAULT_MAX_OVERLAYS = 100


@dataclass
class ReportOutputs:
    """Where the report went, and what it found."""

    html: Path
    table: Path
    summary: Path
    cases: int
    failed: int
    flagged: int
    overlays: int
    seconds: float
    failures: list[tuple[str, str]] = field(default_factory=list)  # (case id, its one-line error), in case order
    training_images: int = 0  # cases whose input is one of the model's training images
    training_scored: int = 0  # those of them with scores
    left_out: list[str] = field(default_factory=list)  # folders of cases not in the sheet, not reported
    left_out_cases: list[str] = field(default_factory=list)  # those cases' ids
    failed_jobs: list = field(default_factory=list)  # the workflow's jobs that failed as a whole (FailedJob)


def report_policy() -> dict:
    """The written rules the report applies, as stated on the page and in ``summary.json``."""
    return {
        "empty_masks": EMPTY_MASK_POLICY,
        "surfaces": SURFACE_DEFINITION,
        "grids": (f"Prediction and reference are scored only on the same grid: same shape, and no voxel centre more "
                  f"than {GRID_TOLERANCE_MM} mm (or {GRID_TOLERANCE_VOXELS:g} of the smallest voxel size, if less) "
                  "apart between the two affines; otherwise the case fails, unscored. A reference holding the same "
                  "voxels in another order is re-indexed onto the prediction's grid, and one that is a box of it (3D "
                  "Slicer's cropped segmentation) zero-padded onto it; neither is resampled."),
    }


def build_report(
    results_dir: Path | str,
    output: Path | str,
    dice_threshold: float = DEFAULT_DICE_THRESHOLD,
    outlier_z: float = DEFAULT_OUTLIER_Z,
    max_overlays: int = DEFAULT_MAX_OVERLAYS,
    overwrite: bool = False,
    sheet: Path | str | None = None,
    ct_window: str | None = None,
) -> ReportOutputs:
    """Write ``output`` (HTML) and, beside it, ``cohort.tsv`` and ``summary.json`` for the cases under
    ``results_dir``. Overlays are drawn for the ``max_overlays`` worst non-failed cases. With the cohort's
    sample ``sheet``, its cases that have no results, or a reference but no scores, are listed as failed.
    A CT in Hounsfield units is drawn in the window named ``ct_window`` (one of
    :data:`~medseg.report.overlay_image.CT_WINDOWS_HU`); None: the window the case's model declares (its sidecar's
    ``model.ct_window``, from model.json's ``report.ct_window``), else :data:`DEFAULT_CT_WINDOW`. A window chosen (or
    declared) but not used, for an image the report does not take for a CT, is said in one warning of the run (how
    many cases, the first few) and in a note on each such card.
    A results folder that is missing or holds no case results, or a setting out of range, is an
    :class:`~medseg.errors.InputError`, as is a file name a record gives that the file system encoding cannot hold
    (a C locale with Python's UTF-8 mode off), named; an output that exists, without ``overwrite``, an
    :class:`~medseg.errors.OutputExistsError`.

    A warning the caller's filters raise as an error (``warnings.simplefilter("error", MedsegWarning)``: a case drawn
    without its overlay, models pooled) is raised once the report is written, the first of them: the report of a
    cohort whose one case cannot be drawn is still made, that case without its overlay and saying why."""
    with held_until_done():  # a warning of one case, or of the folder, does not leave the cohort without its report
        try:
            return _build_report(results_dir, output, dice_threshold, outlier_z, max_overlays, overwrite, sheet,
                                 ct_window)
        except UnicodeEncodeError as error:  # a recorded file name a C locale cannot hold: raised bare, unnamed
            from medseg.io.files import unencodable_name

            said = unencodable_name(error)
            if said is None:
                raise
            raise InputError(said) from error


def _build_report(results_dir: Path | str, output: Path | str, dice_threshold: float, outlier_z: float,
                  max_overlays: int, overwrite: bool, sheet: Path | str | None, ct_window: str | None) -> ReportOutputs:
    """:func:`build_report`'s work, its warnings held."""
    clock = time.perf_counter()
    if not 0 <= dice_threshold <= 1:  # NaN included
        raise InputError(f"Dice threshold {dice_threshold}: give a value from 0 to 1")
    if not 0 < outlier_z < float("inf"):
        raise InputError(f"outlier z {outlier_z}: give a finite value above 0")
    if int(max_overlays) < 0:
        raise InputError(f"max overlays {max_overlays}: give 0 or more")
    if ct_window is not None:
        ct_window_hu(ct_window)  # an unknown window name, refused before any case is read
    results_dir, output = path_argument(results_dir, "the results folder"), path_argument(output, "the report")
    table_path, summary_path = output.with_name("cohort.tsv"), output.with_name("summary.json")
    targets = [output, table_path, summary_path]
    check_writable(targets, overwrite)
    check_folders_writable(targets)  # a read-only results folder: said before every case is read and drawn

    samples = None
    if sheet is not None:
        from medseg.cohort.samples import read_samples

        samples = read_samples(sheet)
    cases = collect_results(results_dir, allow_empty=samples is not None)
    left_out: list[CaseResult] = []
    if samples is not None:  # the results of cases not in the sheet: named, not reported
        cases, left_out = cases_of_the_sheet(cases, samples)
        if not cases and left_out:  # a whole run that is not the sheet's: a wrong sheet, not every case failed
            _refuse_other_cases(sheet, samples, left_out, results_dir)
        cases = add_expected_cases(cases, samples, results_dir)
    check_sources(cases)  # an input or reference replaced since, in any results folder
    log.info("%s: %s", results_dir, counted(len(cases), "case"))
    checks = []
    for case in cases:
        checks.append(check_segmentation(case))
        release_free_memory()  # the volumes it read, given back before the next case's are read
    for case, check in zip(cases, checks):
        case.notes.extend(check.notes)
    flags = flag_cases(cases, checks, dice_threshold=dice_threshold, outlier_z=outlier_z)
    order = worst_first(cases, flags)
    label_order = _label_order(cases)
    colours = dict(zip([value for value, _ in label_order], label_colours([value for value, _ in label_order])))

    overlays, shown, notes = _overlays(cases, flags, order, label_order, max_overlays, ct_window, results_dir)
    settings = {"dice_threshold": dice_threshold, "outlier_z": outlier_z, "max_overlays": max_overlays,
                "overlays_drawn": len(overlays), "ct_window": ct_window or DEFAULT_CT_WINDOW,
                "ct_window_chosen": ct_window is not None,
                # the windows the cases' models declare, used where none was chosen (model name: window)
                "model_ct_windows": {} if ct_window is not None else _model_ct_windows(cases, results_dir)}
    rules = flag_rules(dice_threshold, outlier_z)
    folder = absolute_path(results_dir)  # as summary.json and the page name it: "." read later names no folder
    summary = jsonable(summary_record(folder, cases, flags, settings, rules, report_policy()))
    summary["label_conflicts"] = _label_conflicts(cases)
    if summary["label_conflicts"]:
        warning(log, "%s: label values name different labels in different cases (%s): per-label tables, plots and "
                    "outlier flags pool them by value; make one report per model", results_dir,
                    "; ".join(f"{value}: {' / '.join(names)}" for value, names in summary["label_conflicts"].items()))
    if summary["pooled_models"]:
        warning(log, "%s: the figures pool the cases of %d models (%s): make one report per model", results_dir,
                    len(summary["pooled_models"]), models_text(summary["pooled_models"]))
    summary["left_out"] = _left_out_names(left_out, cases, folder)
    summary["left_out_cases"] = sorted({case.case_id for case in left_out})  # a folder named once may hold several
    if left_out:  # the command says so after its count of cases
        log.debug("%s: %s", results_dir, left_out_text(summary["left_out"], len(summary["left_out_cases"])))
    summary["run_in_progress"] = _run_in_progress(results_dir)
    if summary["run_in_progress"]:
        warning(log, "%s: a cohort run is still writing to this folder (%s): this report shows its cases as they are "
                    "now; cases it has not segmented yet are missing, and those not scored yet are shown without "
                    "reference (with %s: as failed)", results_dir, summary["run_in_progress"], setting("sheet", ANY))
    from medseg.report.failed_jobs import failed_jobs, summary_entry

    jobs = failed_jobs(cases, folder)
    # the jobs that failed as a whole, as the page's "Jobs that failed" and the console name them (last: a new key)
    summary["failed_jobs"] = [summary_entry(job) for job in jobs]
    header, rows = cohort_rows(cases, flags, order, dice_threshold, jobs)

    from medseg.report.plots import distribution_plots

    flagged_labels = [{flag.value for flag in case_flags if flag.value is not None} for case_flags in flags]
    plots = distribution_plots(cases, flagged_labels, [value for value, _ in label_order], dice_threshold)
    page = render_page(ReportContent(
        results_dir=folder, cases=cases, flags=flags, order=order, summary=summary, label_order=label_order,
        plots=plots, overlays=overlays, overlay_shows=shown, overlay_notes=notes, label_colours=colours,
        failed_jobs=jobs,
    ))
    with atomic_paths(targets, overwrite=overwrite) as temps:
        temps[0].write_text(page, encoding="utf-8", errors="backslashreplace")  # undecodable file names
        write_tsv(header, rows, temps[1])
        temps[2].write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    counts = summary["cases"]
    seconds = time.perf_counter() - clock
    log.debug("wrote %s (%s, %.1f s)", output, counted(len(overlays), "overlay"), seconds)  # the command says so
    failures = [(case.case_id, str(case.failure.get("error") or case.failure.get("stage") or "failed"))
                for case in cases if case.failure is not None]
    return ReportOutputs(output, table_path, summary_path, counts["total"], counts["failed"], counts["flagged"],
                         len(overlays), seconds, failures, counts["in_training_set"],
                         sum(case.in_training_set is True and case.status == "scored" for case in cases),
                         summary["left_out"], summary["left_out_cases"], jobs)


def _refuse_other_cases(sheet: Path | str, samples, found: list[CaseResult], results_dir: Path) -> None:
    """Refuse a sample sheet none of whose cases has results in a results folder that holds those of ``found``, other
    cases: another cohort's sheet, or its ids renamed. Against it, every case of the sheet read as failed (not run),
    every result of the folder as left out, and the report exited 0."""
    from medseg.cohort.samples import some_names

    expected = [sample.case_id for sample in samples]
    held = sorted({case.case_id for case in found})
    raise InputError(
        f"{sheet}: none of its {counted(len(expected), 'case')} ({some_names(expected, 3)}) has results in "
        f"{results_dir}, which holds the results of {counted(len(held), 'other case')} ({some_names(held, 3)}): is "
        f"it the sample sheet of these results? Give the one they were made with ({setting('sheet', ANY)}), or none "
        "to report every case found")


def _folder_name(case: CaseResult, results_dir: Path) -> str:
    """A case's folder as the report names it: under the results folder, ``cases/<id>/``."""
    folder = absolute_path(case.folder)
    return f"{folder.relative_to(results_dir) if folder.is_relative_to(results_dir) else folder}/"


def _left_out_names(left_out: list[CaseResult], kept: list[CaseResult], results_dir: Path) -> list[str]:
    """The results of cases not in the sheet as the report names them, each once: a folder that holds no
    results of the sheet's cases (``cases/c03/``, to delete), else the case's files in it (``extra/c03_*``: one
    ``medseg infer -o`` folder, or the results folder itself, holding the sheet's cases too, was named once per
    case and to be deleted, the sheet's own results with it)."""
    kept_folders = {absolute_path(case.folder) for case in kept}
    names: list[str] = []
    for case in left_out:
        folder, name = absolute_path(case.folder), _folder_name(case, results_dir)
        if any(other == folder or other.is_relative_to(folder) for other in kept_folders):
            name = f"{'' if name == './' else name}{case.case_id}_*"
        if name not in names:
            names.append(name)
    return names


def _run_in_progress(results_dir: Path) -> str | None:
    """The process of a cohort run holding ``results_dir`` (its claim; ``pid 4242 on login1, user alice``), other
    than the run whose report step this is (``$MEDSEG_COHORT_RUN``, set by the Snakefile for its jobs); None when
    none does."""
    from medseg.io.folder_claim import held_by_another

    holder = held_by_another(results_dir)
    return holder if holder is not None and holder != os.environ.get("MEDSEG_COHORT_RUN") else None


def _label_order(cases: list[CaseResult]) -> list[tuple[str, str]]:
    return sorted(label_names(cases).items(), key=lambda kv: label_key(kv[0]))


def _label_conflicts(cases: list[CaseResult]) -> dict[str, list[str]]:
    """Label values that name different labels in different cases (results of two models in one folder)."""
    names: dict[str, set[str]] = {}
    for case in cases:
        for label in case.labels():
            if label.named:  # the label_N of a case scored without names says nothing
                names.setdefault(label.value, set()).add(label.name)
    return {value: sorted(found) for value, found in sorted(names.items(), key=lambda kv: label_key(kv[0]))
            if len(found) > 1}


def _focus_label(case: CaseResult, flags: list[Flag]) -> str | None:
    """The label to slice through: among the labels a flag names (or all, when none does; those flagged
    ``label_confusion`` where there are some), the lowest Dice, else the first; none when nothing singles one out
    (all labels). A case flagged for one label's border contact is
    shown through that label, even when another has the lower Dice. A label with no voxel in either mask (both empty,
    or predicted empty without a reference) is passed over: there is nothing of it to slice through."""
    # a label predicted in another's place is the finding to look at: not the other label, whose Dice it lowered
    flagged = {flag.value for flag in flags if flag.value is not None and flag.code == "label_confusion"} or \
        {flag.value for flag in flags if flag.value is not None}
    named = [label for label in case.labels() if label.value in flagged] or case.labels()
    labels = [label for label in named if not _voxelless(label)]
    scored = [label for label in labels if label.dice is not None]
    if scored:
        return min(scored, key=lambda label: label.dice).value
    return labels[0].value if flagged and labels else None


def _confused_with(case: CaseResult, flags: list[Flag], focus: str | None) -> str | None:
    """The reference's label that ``focus``, flagged ``label_confusion``, is predicted in most (its leak, or the
    label it swapped with), for the slices to go through those voxels; none without such a flag."""
    if focus is None or not any(flag.code == "label_confusion" and flag.value == focus for flag in flags):
        return None
    inside = next((label.false_positive_in_ml for label in case.labels() if label.value == focus), {})
    return max(inside, key=lambda other: inside[other]) if inside else None


def _voxelless(label) -> bool:
    """Whether a label has no voxel in the prediction nor in the reference, as its results record it."""
    return label.status == "both_empty" or (label.status == "no_reference" and label.pred_volume_ml == 0)


def _window_model(case: CaseResult) -> dict:
    """The record of the model whose CT window ``case`` is drawn in: its sidecar's ``model``, else, for a prediction
    without a sidecar scored under a package (``medseg evaluate --model``), its metrics' ``scored_with_model``."""
    model = (case.sidecar or {}).get("model")
    if isinstance(model, dict):
        return model
    scored_with = (case.metrics or {}).get("scored_with_model") if case.sidecar is None else None
    return scored_with if isinstance(scored_with, dict) else {}


def model_ct_window(case: CaseResult) -> str | None:
    """The CT window the model that made ``case`` declares (its sidecar's ``model.ct_window``, from model.json's
    ``report.ct_window``; for a prediction without a sidecar, the one of the package it was scored under, as its
    metrics record it), or None (none declared, or a name this version does not know)."""
    from medseg.report.overlay_image import CT_WINDOWS_HU

    window = _window_model(case).get("ct_window")
    return window if isinstance(window, str) and window in CT_WINDOWS_HU else None


def _model_ct_windows(cases: list[CaseResult], results_dir: Path) -> dict[str, str]:
    """Model name: the CT window it declares, for the cases' models that declare one; where packages of one name
    declare different windows (an edited model.json, another version), each as ``name (model.json <first 8 hex
    digits of its SHA-256>)``, as the first one's name alone was false for the others' cases. Windows this medseg
    does not know are warned of: one case's naming its record, several cases' naming ``results_dir``."""
    from medseg.report.overlay_image import CT_WINDOWS_HU

    declared: dict[str, dict[str, str]] = {}  # name: {model.json SHA-256: window}
    unknown: list[tuple] = []  # (case id, window named, whose record, its field, the record's path)
    for case in cases:
        window = model_ct_window(case)
        model = _window_model(case)
        named = model.get("ct_window")
        if window is None and named is not None:  # a later medseg's window, or an edit: said, not silently dropped
            unknown.append((case.case_id, named) + (("sidecar's", "model", case.paths.get("sidecar", case.case_id))
                                                    if case.sidecar is not None else
                                                    ("metrics'", "scored_with_model",
                                                     case.paths.get("metrics", case.case_id))))
        if window is not None:
            declared.setdefault(str(model.get("name") or "?"), {}).setdefault(str(model.get("config_sha256") or ""),
                                                                              window)
    if len(unknown) == 1:
        _, named, _, field, where = unknown[0]
        warning(log, "%s: %s.ct_window %r is not a CT window this medseg knows (%s): its case is drawn in the %s "
                     "window", where, field, named, ", ".join(CT_WINDOWS_HU), DEFAULT_CT_WINDOW)
    elif unknown:  # one line for a cohort written by a later medseg, not one a case
        ids = [case_id for case_id, *_ in unknown]
        names = ", ".join(dict.fromkeys(repr(named) for _, named, *_ in unknown))
        fields = " or ".join(dict.fromkeys(f"{whose} {field}.ct_window" for _, _, whose, field, _ in unknown))
        warning(log, "%s: %s name a CT window this medseg does not know (%s; it knows %s) in their %s: drawn in the "
                     "%s window: %s", results_dir, counted(len(ids), "case"), names, ", ".join(CT_WINDOWS_HU), fields,
                     DEFAULT_CT_WINDOW, ", ".join(ids[:5]) + (f", … {len(ids)} in all" if len(ids) > 5 else ""))
    found: dict[str, str] = {}
    for name, windows in declared.items():
        if len(set(windows.values())) == 1:
            found[name] = next(iter(windows.values()))
        else:
            found.update({f"{name} (model.json {config[:8]})": window for config, window in windows.items()})
    return found


def _case_ct_window(case: CaseResult, ct_window: str | None) -> tuple[str, str | None]:
    """The window ``case``'s CT is drawn in, and who chose it: ``ct_window`` (``"chosen"``), else its model's
    (``"model"``), else the default (None: nobody chose it, and nothing is said where it is not used)."""
    if ct_window is not None:
        return ct_window, "chosen"
    declared = model_ct_window(case)
    return (declared, "model") if declared is not None else (DEFAULT_CT_WINDOW, None)


def _unused_window_note(window: str, chooser: str, why: str) -> str:
    """The note on a case whose image was not drawn in the CT window chosen (or its model's) for the report, ``why``
    as :func:`_unused_window_reason` words it."""
    whose = "chosen for the report" if chooser == "chosen" else "its model declares (model.json report.ct_window)"
    return (f"CT window not used: the {window} window {whose} is for a CT in Hounsfield units, and this image is not "
            f"taken for one ({why}); drawn from its crop's percentiles")


def _unused_window_reason(percentiles: tuple[float, float], modality: str | None = None) -> str:
    """Why an image whose crop has these 0.5th and 99.5th ``percentiles`` (and whose record gives this ``modality``,
    where one does) is not taken for a CT."""
    from medseg.numbers import number_text

    low, high = percentiles
    # only the test that failed (:func:`~medseg.report.overlay_image.taken_for_ct`): naming both read as if both had
    why = []
    if modality is not None and modality != "CT":
        why.append(f"its modality is {modality}, as its record says")
    elif modality is not None and low < -3100.0:
        why.append(f"its crop's 0.5th percentile {number_text(low, 1)} is below -3100: not Hounsfield units")
    elif modality is None and not -3100.0 <= low <= -500.0:
        why.append(f"its crop's 0.5th percentile {number_text(low, 1)} is not from -3100 to -500, as air or gas makes "
                   "it: an MR, or a CT crop without air")
    if high > 4000.0 and (modality is None or modality == "CT"):
        why.append(f"its crop's 99.5th percentile {number_text(high, 1)} is above 4000: not Hounsfield units, or metal "
                   "in the crop")
    return "; ".join(why)


def _overlays(cases, flags, order, label_order, max_overlays, ct_window: str | None, results_dir: Path
              ) -> tuple[dict[int, bytes], dict[int, str], dict[int, list[str]]]:
    from medseg.report.checks import segmentation_header_problem
    from medseg.report.overlay import load_case_arrays, render_overlay

    overlays: dict[int, bytes] = {}
    shown: dict[int, str] = {}  # what each overlay draws (the image and the reference may be left out)
    notes: dict[int, list[str]] = {}
    # cases without a reference rank after the scored ones, and the overlay is all a reader can check them by:
    # they have a budget of their own
    given = {False: 0, True: 0}
    unused: list[tuple[str, str, str, str]] = []  # (case id, window, who chose it, why): a CT window not used
    for index in order:
        case = cases[index]
        # nothing to draw: a case failed before a sidecar, or whose segmentation is gone (its error says so; a note
        # "no overlay: segmentation file not found" said it again, and it took a worst case's place)
        missing = (case.failure or {}).get("error_type") == "MissingResult"
        if case.status == "failed" and (case.sidecar is None or missing):
            continue
        unscored = case.status == "no_reference"
        if given[unscored] >= max_overlays:
            kind = "cases without a reference" if unscored else "scored or failed cases"
            notes.setdefault(index, []).append(
                f"no overlay: only the {max_overlays} worst {kind} get one ({setting('max_overlays', ANY)})"
                if max_overlays else f"no overlay: none drawn ({setting('max_overlays', 0)})")
            continue
        path = case.segmentation_path()
        problem = segmentation_header_problem(case, path) if path is not None else None
        if problem is not None:  # off its grid: flagged, and left unread
            notes.setdefault(index, []).append(f"no overlay: {problem}")
            continue
        arrays = None
        try:
            arrays = load_case_arrays(case)
            if arrays is None:
                notes.setdefault(index, []).append("no overlay: segmentation file not found")
                continue
            try:
                focus = _focus_label(case, flags[index])
                # a border contact is the reason to look: the slices go through it, not through the label's middle
                faces = next((flag.faces for flag in flags[index] if flag.code == "touches_border"
                              and flag.value == focus), ())
                within = _confused_with(case, flags[index], focus)  # the slices through its voxels in that label
                window, chooser = _case_ct_window(case, ct_window)
                overlays[index] = render_overlay(arrays, label_order, focus, focus_faces=faces, focus_within=within,
                                                 ct_window=window)
                percentiles = arrays.image_percentiles  # set with drawn_as_ct, as the image was drawn
                if chooser is not None and arrays.drawn_as_ct is False and percentiles is not None:  # said, never
                    why = _unused_window_reason(percentiles, arrays.modality)  # silently left out
                    note = _unused_window_note(window, chooser, why)
                    unused.append((case.case_id, window, chooser, why))
                    arrays.notes.append(note)
                # which label the slices go through, for the alt text (a sighted reader sees it in the legend's
                # colours and the contours)
                through = next((f"{value} {name}" for value, name in label_order if value == focus), None)
                where = " where it touches the border" if faces else next(
                    (f" where the reference has {name}" for value, name in label_order if value == within), "")
                shown[index] = arrays.shown() + (f", through label {through}{where}" if through else "")
                given[unscored] += 1
            finally:  # drawing reads the image, and may leave it out with a note
                notes.setdefault(index, []).extend(arrays.notes)
        except Exception as error:  # one unreadable case must not stop the cohort's report
            log.debug("%s: no overlay", case.case_id, exc_info=True)  # where in the code, at -vv
            # medseg's own errors are worded for the reader (the file and its problem), an OS error on a file as
            # medseg's readers word it ("[Errno 13] Permission denied: '…'" was Python's); another's name helps find it
            told = error if isinstance(error, MedsegError) else (
                f"{error.filename}: cannot read ({os_reason(error)})" if isinstance(error, OSError) and error.filename
                and error.strerror else memory_text(error, "its files") if isinstance(error, MemoryError)
                else f"{type(error).__name__}: {error}")
            warning(log, "%s: no overlay (%s)", case.case_id, told)
            notes.setdefault(index, []).append(f"no overlay: {told}")
        finally:  # this case's volumes released, and their memory given back, before the next case's are read
            arrays = None
            release_free_memory()
    if unused:
        warning(log, "%s: %s", results_dir, _unused_window_line(unused))
    return overlays, shown, notes


def _unused_window_line(unused: list[tuple[str, str, str, str]]) -> str:
    """The one warning of a run for the cases whose image was not drawn in the CT window chosen (or their model's):
    how many, the first few, and why for the first (each card's note says why for its own). A line per case made a
    screenful of the same words for an MR cohort given a window."""
    from medseg.numbers import counted

    ids = [case_id for case_id, _, _, _ in unused]
    shown = ", ".join(ids[:5]) + (f", … {len(ids)} in all" if len(ids) > 5 else "")
    windows = {(window, chooser) for _, window, chooser, _ in unused}
    if len(windows) == 1:
        window, chooser = next(iter(windows))
        whose = (f"the {window} window chosen for the report" if chooser == "chosen"
                 else f"the {window} window {'its model declares' if len(ids) == 1 else 'their model declares'} "
                 "(model.json report.ct_window)")
    else:  # only models' windows differ: a window chosen is the one window of every case
        counts: dict[str, int] = {}
        for _, window, _, _ in unused:
            counts[window] = counts.get(window, 0) + 1
        whose = ("the windows their models declare (model.json report.ct_window: "
                 + ", ".join(f"{window} {count}" for window, count in counts.items()) + ")")
    first, why = unused[0][0], unused[0][3]
    if len(ids) == 1:
        return (f"CT window not used for 1 case ({first}): {whose} is for a CT in Hounsfield units, and its image is "
                f"not taken for one ({why}); drawn from its crop's percentiles")
    return (f"CT window not used for {counted(len(ids), 'case')} ({shown}): {whose} "
            f"{'is' if len(windows) == 1 else 'are'} for a CT in Hounsfield units, and their images are not taken for "
            f"one ({first}: {why}; each case's card says why); drawn from their crops' percentiles")
