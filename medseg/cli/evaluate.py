"""`medseg evaluate`: score a segmentation against a reference label image (NIfTI or DICOM SEG)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from medseg.cli.options import (
    GivenPath,
    ct_window_option,
    escaped_line,
    file_output,
    given_model,
    invocation,
    output_dir_option,
    output_or_folder,
    overwrite_option,
    quiet,
    refuse_blocked_folder,
    stopped_by,
    typed_option,
    usage_errors,
)

__all__ = ["evaluate", "format_table"]


_HELP = """Score the label image PREDICTION against REFERENCE: per-label Dice, HD95 and ASSD (mm), volumes and false
positive / negative volumes (ml).

Label names come from --model, else from the prediction's sidecar (<name>_seg.json, written by
`medseg infer`), else from the dataset.json of a Decathlon / nnU-Net dataset folder (the reference's, as
TaskXX/labelsTr/../dataset.json, else one beside the prediction, as nnU-Net writes), else label_N for every
value present; --model must be the model the sidecar names.

Both images must be label images on the same grid (same shape, affines within 0.01 mm, or a tenth of the
smallest voxel where that is less); a reference that holds the same voxels in another order (axes swapped or
reversed, as from another DICOM converter) is re-indexed onto the prediction's grid without resampling, and one
cropped to a box of that grid (as 3D Slicer saves a segmentation) is zero-padded onto it (a box reaching past
the grid is cropped to it where every voxel out there is 0). Otherwise nothing is scored and the exit code is 1.

Either file may be a DICOM SEG (.dcm, or a file with
the DICM marker): it is placed frame by frame on the DICOM series the prediction's sidecar records, or, for a
prediction made from an image file (dcm2niix's NIfTI of the series), without a sidecar, or whose recorded series
has since moved or been deleted (a NIfTI prediction keeps its grid), by its frames' own position, orientation and
spacing on the prediction's grid (refused where they are off its voxel lattice); its segments matched to the
labels by name, else by their DICOM codes (the --model's, else the sidecar's).

Empty masks: both empty gives Dice and distances null
(both_empty); a prediction where the reference is empty gives Dice 0 (false_positive); an empty
prediction gives Dice 0 (empty_prediction); distances are null whenever one mask is empty.

Two folders (PREDICTION_DIR REFERENCE_DIR -o OUT_DIR): the .nii/.nii.gz files (.nii.bz2, .nii.zst too; .nrrd,
.nhdr, .mha, .mhd with the itk extra; 3D Slicer's case.seg.nrrd or case.seg.nhdr is case case; and predictions'
case_seg.dcm, references' DICOM SEGs case.dcm or case_seg.dcm, or stored under their UID, which pair with the
prediction made from the series they reference) are paired by name (case.nii.gz or case_seg.nii.gz with
case.nii.gz, or case_label, _seg, _mask, _gt), each pair scored as above into
OUT_DIR/<case>_metrics.json, and OUT_DIR gets the QA report of them (report.html, cohort.tsv, summary.json, as
`medseg report` writes them). A pair that cannot be scored gets OUT_DIR/<case>_failed.json and the others carry on;
a reference without a prediction is a missed case (failed, stage not_run); a prediction without a reference is
named in a warning and not scored; a case with both case_seg.nii.gz and case_seg.dcm fails, naming both. The exit
code is 1 if any case failed or was missed.

\b
$ medseg evaluate out/case1_seg.nii.gz labels/case1.nii.gz
$ medseg evaluate out/case1_seg.nii.gz labels/case1.nii.gz \\
    -o out/case1_metrics.json --model hippocampus
$ medseg evaluate nnunet_out/ Task04_Hippocampus/labelsTs/ -o scores/ \\
    --images Task04_Hippocampus/imagesTs/
$ medseg evaluate ct_out/ ct_labels/ -o scores/ --images ct_images/ \\
    --ct-window bone
"""


@click.command("evaluate", help=_HELP)
@click.argument("prediction", type=GivenPath(readable=False, path_type=Path))
@click.argument("reference", type=GivenPath(readable=False, path_type=Path))
@click.option("-o", "--output", "output", default=None, metavar="FILE.json|DIR",
              help="Write the metrics JSON (schema medseg-metrics/1) here, atomically: a .json file, or a folder "
                   "(one that exists, or a new one named with a trailing /, as scores/): <case>_metrics.json in it. "
                   "Two folders: the folder for every case's record and the report (required).")
@output_dir_option("<case>_metrics.json, or with two folders every case's record and the report")
@click.option("-m", "--model", default=None, metavar="NAME|DIR", callback=given_model,
              help="Take label names (and the allowed label values) from this model package. "
                   "Default: the names in the prediction's sidecar, else those of a Decathlon / nnU-Net dataset.json "
                   "(see above), else every value present in either image, named label_N.")
@click.option("--case-id", default=None, metavar="ID",
              help="Case identifier to record (default: PREDICTION's name without _seg; one pair only).")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics JSON on stdout instead of a table (one pair "
                                                       "only).")
@click.option("--images", default=None, metavar="DIR", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Two folders: the cases' images (nnU-Net's imagesTs: case_0000.nii.gz or case.nii.gz), recorded "
                   "in each case's metrics so that the report draws its labels over the image (predictions without "
                   "a sidecar are drawn on a blank grid otherwise; default: none).")
@ct_window_option
@overwrite_option
def evaluate(prediction, reference, output, output_dir, model, case_id, as_json, overwrite, images, ct_window):
    output = output_or_folder(output, output_dir)
    # os.path.isdir: a path behind a folder that cannot be searched is not taken for a folder (Path.is_dir raised
    # PermissionError); reading it then names it in one line
    if os.path.isdir(prediction) or os.path.isdir(reference):
        return _evaluate_folders(prediction, reference, output, model, case_id, as_json, overwrite, images, ct_window)
    if ct_window is not None:
        raise click.UsageError("--ct-window is for two folders (the window of their report's overlays); one pair "
                               "is scored without a report: give it to `medseg report` on the folder of its results")
    if images is not None:
        raise click.UsageError("--images is for two folders (each case's image, drawn under its labels in the "
                               "report); for one pair, the report draws the image its sidecar records")
    from medseg.io.atomic import atomic_paths, check_writable
    from medseg.io.files import real_path
    from medseg.metrics import metrics_json
    from medseg.scoring import prediction_sidecar
    from medseg.volume import stem

    if _same_file(prediction, reference):  # a copy-paste slip that scored as perfect
        raise click.UsageError(f"{prediction} is given as both the prediction and the reference; give the reference "
                               "labels as the second file")
    sidecar = prediction_sidecar(prediction)  # written by `medseg infer` beside its output
    if case_id is None:
        case_id = stem(prediction).removesuffix("_seg")
    elif not case_id.strip():
        raise click.BadParameter("an empty case id names nothing; give one, or leave --case-id out",
                                 param_hint="'--case-id'")
    # a folder as -o: the file goes in it, not below it, is not hidden (--case-id ../x gave .._x_metrics.json), and
    # has a name Windows can hold (on NTFS "a:b_metrics.json" is a hidden stream "b_metrics.json" of a file "a")
    from medseg.folder_scoring import case_file_name

    safe = case_file_name(case_id)
    given_as = typed_option("output", "output_dir")  # -o, --output or --output-dir, for the messages
    output = file_output(given_as, output, f"{safe}_metrics.json", (".json",))
    if output is not None:
        inputs = {"the prediction": prediction, "the reference": reference,
                  "the prediction's sidecar (written by medseg infer)": sidecar}
        taken = [name for name, path in inputs.items() if real_path(output) == real_path(path)]
        if taken:
            raise click.UsageError(f"{given_as} {output}: that is {taken[0]}; give the metrics a .json path of their "
                                   "own")
        check_writable([output], overwrite)
    from medseg.scoring import made_by_of, score_pair

    made_by = made_by_of(prediction)  # an unreadable sidecar is warned about before --model is looked for
    package = None
    if model is not None:
        from medseg.package import load_package

        package = load_package(model, check_hash=False)
    with usage_errors():  # the wrong --model for this prediction
        metrics, names_from = score_pair(prediction, reference, case_id, package, given_as=f"--model {model}",
                                         made_by=made_by)
    if names_from is not None and not quiet():  # once scored: a prediction that cannot be read is told alone
        click.echo(escaped_line(f"label names from {names_from}"), err=True)
    metrics["invocation"] = invocation()  # what made the record, as sidecars record theirs
    text = metrics_json(metrics)
    if output is not None:
        with atomic_paths([output], overwrite=overwrite) as temps:
            temps[0].write_text(text)
    if as_json:
        click.echo(text, nl=False)
    elif not quiet():
        # the labels the model never learnt, as a folder's scoring takes them: the package's record, else the sidecar's
        if package is not None:
            from medseg.segment import labels_not_trained

            never_learnt = tuple(labels_not_trained(package))
        else:
            never_learnt = made_by.labels_not_trained if made_by is not None else ()
        click.echo("\n".join(map(escaped_line, format_table(metrics, never_learnt).splitlines())))
        if output is not None:
            click.echo(escaped_line(f"wrote {output}"))
    return 0


def _evaluate_folders(predictions: Path, references: Path, output, model, case_id, as_json, overwrite,
                      images: Path | None = None, ct_window: str | None = None) -> int:
    """Two folders: every pair scored into ``output``, with the report of them and a short summary."""
    from medseg.io.files import exists

    if not (os.path.isdir(predictions) and os.path.isdir(references)):
        folder, other = (predictions, references) if os.path.isdir(predictions) else (references, predictions)
        what = "is a file" if exists(other) else "does not exist"  # behind a folder it may not search: named
        raise click.UsageError(f"{folder} is a folder and {other} {what}: give two files (a prediction and its "
                               "reference) or two folders (predictions and references)")
    if case_id is not None or as_json:
        raise click.UsageError(f"{'--case-id' if case_id is not None else '--json'} is for one pair of files; two "
                               "folders are scored into -o OUT_DIR, one <case>_metrics.json each")
    if output is None:
        raise click.UsageError("two folders are scored into a folder: give -o OUT_DIR")
    given_as = typed_option("output", "output_dir")
    if not output:
        raise click.UsageError(f"{given_as}: an empty path (an unset shell variable?)")
    if output.lower().endswith(".json"):
        raise click.UsageError(f"{given_as} {output}: two folders are scored into a folder (one <case>_metrics.json "
                               "each and the report); give a folder")
    if os.path.exists(output) and not os.path.isdir(output):  # as infer, train and report refuse a file as -o
        raise click.UsageError(f"{given_as} {output}: a file, not a folder; two folders are scored into a folder (one "
                               "<case>_metrics.json each and the report): give a folder")
    refuse_blocked_folder(given_as, output, output)  # a file or a link leading nowhere on its way: as infer says it
    from medseg.folder_scoring import score_folder

    package = None
    if model is not None:
        from medseg.package import load_package

        package = load_package(model, check_hash=False)
    shown = not quiet()

    def tell(case: str, metrics, error, never_learnt) -> None:
        if not shown:
            return
        if error is not None:
            click.echo(escaped_line(f"{case}: failed: {error}"), err=True)
        else:
            click.echo(escaped_line(f"{case}: {_dice_line(metrics, never_learnt)}"))

    try:
        with usage_errors():  # the wrong --model, two cases writing one file
            result = score_folder(predictions, references, Path(output), package, given_as=f"--model {model}",
                                  overwrite=overwrite, on_case=tell, invocation=invocation(), images_dir=images,
                                  ct_window=ct_window)
    except KeyboardInterrupt as stop:  # Ctrl-C or SIGTERM: one line (click said only "Aborted."), exit 130 (143)
        if not hasattr(stop, "cases_total"):  # before any case (the pairing, the checks): nothing written
            raise
        click.echo(escaped_line(_stopped_line(stop, Path(output), overwrite)), err=True)
        raise click.exceptions.Exit(getattr(stop, "code", 130)) from stop
    if shown:
        for source in result.names_from:
            click.echo(escaped_line(f"label names from {source}"), err=True)
        for line in _summary_lines(result):
            click.echo(escaped_line(line))
    # a case the report counts as failed after it was scored (stale: its input changed since it was segmented) is
    # among the failed, named by its line; an earlier run's records in the folder are not this run's (warned of)
    return 1 if result.failed else 0


def _stopped_line(stop: KeyboardInterrupt, output: Path, overwrite: bool) -> str:
    """The one line of a folder's scoring a Ctrl-C or SIGTERM stopped: the cases' records written (kept), the report
    not made, and how to finish."""
    from medseg.numbers import counted

    by = stopped_by(stop)
    if not stop.records_kept:  # stopped in its first case: no record to keep, nor one a rerun must replace
        cases = "its one case was" if stop.cases_total == 1 else f"any of its {stop.cases_total} cases was"
        return f"medseg: stopped{by} before {cases} scored: nothing was written; run the same command again"
    again = "the same command again" if overwrite else "it again with --overwrite"
    return (f"medseg: stopped{by} after {len(stop.records_kept)} of {counted(stop.cases_total, 'case')}: their "
            f"records in {output} are kept; the report was not made: run {again} to finish")


def _dice_line(metrics: dict, never_learnt=()) -> str:
    """``Dice anterior 0.8912, posterior 0.0000 (false positive: not in the reference)``: one case's Dice per label,
    saying where the empty-mask policy set it, as `medseg infer`'s lines do; the labels ``never_learnt`` (no training
    case of the model held them) that are empty in both images named together at the end, as `medseg infer` groups
    them: ``; unused_2, unused_4: n/a (both empty; never learnt: no training case held them)``."""
    from medseg.numbers import never_learnt_text, same_reason_groups

    untrained = {str(value) for value in never_learnt}
    grouped = [entry["name"] for value, entry in metrics["labels"].items()
               if value in untrained and entry.get("status") == "both_empty"]
    # labels predicted empty (or false positives) together: the reason once, after the others
    alone, together = same_reason_groups(
        (entry["name"], entry["dice"], entry.get("status")) for value, entry in metrics["labels"].items()
        if not (value in untrained and entry.get("status") == "both_empty"))
    line = "; ".join([", ".join(f"{name} {text}" for name, text in alone)] * bool(alone)
                     + [f"{', '.join(names)}: {text}" for names, text in together])
    if grouped:
        line += ("; " if line else "") + f"{', '.join(grouped)}: {never_learnt_text(len(grouped))}"
    return "Dice " + line if line else "no label to score"


def _summary_lines(result) -> list[str]:
    """The folder's summary: cases scored, failed and missed, and per label the Dice statistics."""
    from medseg.numbers import counted, dice_round_text

    cases = result.summary["cases"]
    lines = [f"{counted(cases['total'], 'case')}: {cases['scored']} scored, {cases['failed']} failed"
             + (f" ({len(result.missed)} missed: no prediction)" if result.missed else "")
             + (f"; {counted(len(result.unreferenced), 'prediction')} without a reference not scored"
                if result.unreferenced else "")]
    # labels never learnt without a Dice (declared, but in no training case): one line for those
    # whose cases are counted alike, not a line each
    never_learnt: dict[str, list[str]] = {}
    for value, entry in result.summary["labels"].items():
        dice = entry.get("dice") or {}
        if dice.get("n"):
            lines.append(f"  {value} {entry['name']}: Dice mean {dice_round_text(dice['mean'])}, median "
                         f"{dice_round_text(dice['median'])}, min {dice_round_text(dice['min'])} "
                         f"({_label_n(dice['n'], entry, cases['total'])})")
        elif value in result.never_learnt:
            never_learnt.setdefault(_label_n(0, entry, cases['total']), []).append(f"{value} {entry['name']}")
        else:
            lines.append(f"  {value} {entry['name']}: no Dice ({_label_n(0, entry, cases['total'])})")
    lines += [f"  {', '.join(named)}: no Dice, never learnt ({counts})" for counts, named in never_learnt.items()]
    lines += _foreground_mean_lines(result.summary)
    trained = cases.get("in_training_set") or 0
    if trained:  # a training image's Dice says little about new data, as `medseg infer` says of each
        lines.append(f"  {trained} of the cases {'is one' if trained == 1 else 'are'} of the model's training images: "
                     "their Dice overstates accuracy on new data (summary.json's training_images gives both groups)")
    # a case that failed as it was scored gets its line; the missed ones (no prediction: hundreds where a few
    # predictions meet a whole labelsTs/) are named, the first three, in one line after the first's full error
    missed = set(result.missed)
    lines += [f"failed {case}: {error}" for case, error, _ in result.failed
              if case not in missed or "no prediction for this reference" not in error]
    unmade = [(case, error) for case, error, _ in result.failed
              if case in missed and "no prediction for this reference" in error]
    if unmade:
        lines.append(f"failed {unmade[0][0]}: {unmade[0][1]}")
    if len(unmade) > 1:
        rest = [case for case, _ in unmade[1:]]
        lines.append(f"failed: {counted(len(rest), 'more missed case')} (no prediction), as the first: "
                     f"{', '.join(rest[:3])}{', …' if len(rest) > 3 else ''} (a failure record each in "
                     f"{result.out_dir}; cohort.tsv lists them all)")
    report = result.report
    stale = len(result.stale)  # failed, each with its metrics file (no failure record)
    lines.append(f"wrote {result.out_dir} ({counted(len(result.scored) + stale, 'metrics file')}, "
                 f"{counted(len(result.failed) - stale, 'failure record')}, {report.html.name}, {report.table.name}, "
                 f"{report.summary.name})")
    return lines


def _foreground_mean_lines(summary: dict) -> list[str]:
    """The mean over the labels of their mean Dice (summary.json's ``foreground_mean``), the figure nnU-Net's
    summary.json calls ``foreground_mean``: where two or more labels are scored, and one of them has a Dice."""
    from medseg.numbers import dice_round_text

    overall = summary.get("foreground_mean") or {}
    labels = summary.get("labels") or {}
    if len(labels) < 2 or not overall.get("labels"):
        return []
    without = overall.get("without_dice") or []
    counted_labels = f"{overall['labels']} of {len(labels)}" if without else f"the {overall['labels']}"
    named = ", ".join(f"{value} {(labels.get(value) or {}).get('name', '')}".strip() for value in without)
    note = f"; {named} without a Dice left out, where nnU-Net's mean is NaN" if without else ""
    return [f"  mean over {counted_labels} labels: Dice {dice_round_text(overall['dice'])} (the mean of their means, "
            f"nnU-Net's foreground_mean{note})"]


_WITH_DICE = ("ok", "false_positive", "empty_prediction")  # the statuses whose Dice is a number (0 for the two)


def _label_n(n: int, entry: dict, total: int) -> str:
    """``n 2 of 3 cases: 1 both empty``: how many cases a label's Dice figures are over and, where not all, why the
    others are not among them (both empty, failed, or a case whose record has no such label)."""
    if n == total:
        return f"n {n}"
    from medseg.report.html_parts import status_text

    counts = entry.get("status_counts") or {}
    why = [f"{count} {status_text(status)}" for status, count in counts.items()
           if status not in _WITH_DICE and count]
    without = total - sum(counts.values())
    if without > 0:
        why.append(f"{without} without this label")
    from medseg.numbers import counted

    return f"n {n} of {counted(total, 'case')}" + (f": {', '.join(why)}" if why else "")


def _same_file(first: Path, second: Path) -> bool:
    from medseg.io.files import real_path

    try:
        return real_path(first) == real_path(second) or first.samefile(second)
    except OSError:  # one of them does not exist: the reader names it
        return False


def format_table(metrics: dict, never_learnt=()) -> str:
    """The per-label metrics as an aligned text table ('-' where a value is undefined). The labels ``never_learnt``
    (no training case of the model held them) that are empty in both images get one line under it, not a row each,
    as a folder's lines and `medseg infer` group them: ``2 unused_2, 4 unused_4: n/a (both empty; never learnt: no
    training case held them)``."""
    import math

    from medseg.numbers import dice_round_text, never_learnt_text, number_text

    def show(value, digits):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "-"
        return dice_round_text(value) if digits is None else number_text(value, digits)

    spacing = " x ".join(f"{s:.4g}" for s in metrics["spacing_mm"])
    header = ("label", "dice", "hd95_mm", "assd_mm", "pred_ml", "ref_ml", "fp_ml", "fn_ml", "status")
    rows = [header]
    untrained = {str(value) for value in never_learnt}
    grouped = [f"{value} {entry['name']}" for value, entry in metrics["labels"].items()
               if value in untrained and entry["status"] == "both_empty"]
    for value, entry in metrics["labels"].items():
        if value in untrained and entry["status"] == "both_empty":
            continue
        rows.append((
            f"{value} {entry['name']}", show(entry["dice"], None), show(entry["hd95_mm"], 2), show(entry["assd_mm"], 2),
            show(entry["pred_volume_ml"], 3), show(entry["ref_volume_ml"], 3), show(entry["false_positive_ml"], 3),
            show(entry["false_negative_ml"], 3), entry["status"],
        ))
    from medseg.one_line import padded, terminal_columns

    # padded by terminal columns, not characters: a label named in Japanese or with a combining accent
    widths = [max(terminal_columns(row[i]) for row in rows) for i in range(len(header))]
    reordered = "; reference re-indexed onto the prediction's voxel order" if metrics.get("reference_reordered") else ""
    box = metrics.get("reference_sub_box")
    if isinstance(box, dict):  # a reference cropped to a box of the grid (3D Slicer's segmentations)
        reordered += (f"; reference a box of {'×'.join(str(n) for n in box['shape'])} voxels at voxel "
                      f"({', '.join(str(n) for n in box['offset_voxels'])}), "
                      f"{'cropped to the grid and ' if box.get('voxels_outside_grid') else ''}zero-padded")
    from medseg.cli.options import escaped_line

    # escaped here, not by the caller: a line break in a case id would split the table's first line in two
    lines = [escaped_line(f"case {metrics['case_id']} (voxel {spacing} mm{reordered})")]
    if len(rows) > 1 or not grouped:
        lines += ["  ".join(padded(cell, width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    if grouped:
        lines.append(f"{', '.join(grouped)}: {never_learnt_text(len(grouped))}")
    elif len(rows) == 1:
        lines.append("(no foreground label in either image, and no --model to name the expected ones: "
                     "nothing to score)")
    return "\n".join(lines)
