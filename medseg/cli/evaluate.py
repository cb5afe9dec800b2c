"""`medseg evaluate`: score a segmentation against a reference label image (NIfTI or DICOM SEG)."""

from __future__ import annotations

import re
from pathlib import Path

import click

from medseg.cli.options import (
    GivenPath,
    escaped_line,
    file_output,
    given_model,
    overwrite_option,
    quiet,
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
reversed, as from another DICOM converter) is re-indexed onto the prediction's grid without resampling.
Otherwise nothing is scored and the exit code is 1.

Either file may be a DICOM SEG (.dcm, or a file with
the DICM marker): it is placed frame by frame on the DICOM series the prediction's sidecar records, its
segments matched to the labels by name, else by their DICOM codes (the --model's, else the sidecar's).

Empty masks: both empty gives Dice and distances null
(both_empty); a prediction where the reference is empty gives Dice 0 (false_positive); an empty
prediction gives Dice 0 (empty_prediction); distances are null whenever one mask is empty.

\b
$ medseg evaluate out/case1_seg.nii.gz labels/case1.nii.gz
$ medseg evaluate out/case1_seg.nii.gz labels/case1.nii.gz -o out/case1_metrics.json --model hippocampus
"""


_ONE_FILE = ("evaluate scores one prediction file against one reference file; for folders of cases (nnU-Net's "
             "predictions and labelsTr), run it per file with -o into a folder, or use the cohort workflow")


@click.command("evaluate", help=_HELP)
@click.argument("prediction", type=GivenPath(dir_okay=False, readable=False, path_type=Path, folder_hint=_ONE_FILE))
@click.argument("reference", type=GivenPath(dir_okay=False, readable=False, path_type=Path, folder_hint=_ONE_FILE))
@click.option("-o", "--output", default=None, metavar="FILE.json|DIR",
              help="Write the metrics JSON (schema medseg-metrics/1) here, atomically: a .json file, or a folder "
                   "(one that exists, or a new one named with a trailing /, as scores/): <case>_metrics.json in it.")
@click.option("-m", "--model", default=None, metavar="NAME|DIR", callback=given_model,
              help="Take label names (and the allowed label values) from this model package. "
                   "Default: the names in the prediction's sidecar, else those of a Decathlon / nnU-Net dataset.json "
                   "(see above), else every value present in either image, named label_N.")
@click.option("--case-id", default=None, metavar="ID",
              help="Case identifier to record (default: PREDICTION's name without _seg).")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics JSON on stdout instead of a table.")
@overwrite_option
def evaluate(prediction, reference, output, model, case_id, as_json, overwrite):
    from medseg.io.atomic import atomic_paths, check_writable
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
    safe = re.sub(r'[/\\:*?"<>|\x00-\x1f]', "_", case_id).lstrip(".") or "case"
    output = file_output("-o", output, f"{safe}_metrics.json", (".json",))
    if output is not None:
        inputs = {"the prediction": prediction, "the reference": reference,
                  "the prediction's sidecar (written by medseg infer)": sidecar}
        taken = [name for name, path in inputs.items() if output.resolve() == path.resolve()]
        if taken:
            raise click.UsageError(f"-o {output}: that is {taken[0]}; give the metrics a .json path of their own")
        check_writable([output], overwrite)
    from medseg.scoring import dataset_label_names, made_by_of, score_prediction

    made_by = made_by_of(prediction)  # an unreadable sidecar is warned about before --model is looked for
    package = names = None
    if model is not None:
        from medseg.package import load_package

        package = load_package(model, check_hash=False)
    elif made_by is None or not made_by.labels:  # no model names them: a Decathlon / nnU-Net dataset.json may
        found = dataset_label_names(prediction, reference)
        names = found[0] if found is not None else None
    from medseg.resources import set_threads

    set_threads(None)  # MONAI's metrics run on torch: no more threads than a cgroup's CPU quota allows
    with usage_errors():  # the wrong --model for this prediction
        metrics = score_prediction(prediction, reference, case_id, package, given_as=f"--model {model}",
                                   made_by=made_by, names=names)
    if names is not None and not quiet():  # once scored: a prediction that cannot be read is told alone
        click.echo(escaped_line(f"label names from {found[1]}"), err=True)
    text = metrics_json(metrics)
    if output is not None:
        with atomic_paths([output], overwrite=overwrite) as temps:
            temps[0].write_text(text)
    if as_json:
        click.echo(text, nl=False)
    elif not quiet():
        click.echo("\n".join(map(escaped_line, format_table(metrics).splitlines())))
        if output is not None:
            click.echo(escaped_line(f"wrote {output}"))
    return 0


def _same_file(first: Path, second: Path) -> bool:
    try:
        return first.resolve() == second.resolve() or first.samefile(second)
    except OSError:  # one of them does not exist: the reader names it
        return False


def format_table(metrics: dict) -> str:
    """The per-label metrics as an aligned text table ('-' where a value is undefined)."""
    import math

    from medseg.numbers import dice_round_text, number_text

    def show(value, digits):
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "-"
        return dice_round_text(value) if digits is None else number_text(value, digits)

    spacing = " x ".join(f"{s:.4g}" for s in metrics["spacing_mm"])
    header = ("label", "dice", "hd95_mm", "assd_mm", "pred_ml", "ref_ml", "fp_ml", "fn_ml", "status")
    rows = [header]
    for value, entry in metrics["labels"].items():
        rows.append((
            f"{value} {entry['name']}", show(entry["dice"], None), show(entry["hd95_mm"], 2), show(entry["assd_mm"], 2),
            show(entry["pred_volume_ml"], 3), show(entry["ref_volume_ml"], 3), show(entry["false_positive_ml"], 3),
            show(entry["false_negative_ml"], 3), entry["status"],
        ))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    reordered = "; reference re-indexed onto the prediction's voxel order" if metrics.get("reference_reordered") else ""
    from medseg.cli.options import escaped_line

    # escaped here, not by the caller: a line break in a case id would split the table's first line in two
    lines = [escaped_line(f"case {metrics['case_id']} (voxel {spacing} mm{reordered})")]
    lines += ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    if len(rows) == 1:
        lines.append("(no foreground label in either image, and no --model to name the expected ones: "
                     "nothing to score)")
    return "\n".join(lines)
