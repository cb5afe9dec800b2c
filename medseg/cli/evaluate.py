"""`medseg evaluate`: score a segmentation against a reference label image (NIfTI or DICOM SEG)."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from medseg.cli.options import GivenPath, escaped_line, file_output, given_model, overwrite_option, quiet


@click.command("evaluate")
@click.argument("prediction", type=GivenPath(dir_okay=False, path_type=Path))
@click.argument("reference", type=GivenPath(dir_okay=False, path_type=Path))
@click.option("-o", "--output", default=None, metavar="FILE.json|DIR",
              help="Write the metrics JSON (schema medseg-metrics/1) here, atomically: a .json file, or a folder "
                   "(one that exists, or a new one named with a trailing /, as scores/): <case>_metrics.json in it.")
@click.option("-m", "--model", default=None, metavar="NAME|DIR", callback=given_model,
              help="Take label names (and the allowed label values) from this model package. "
                   "Default: the names in the prediction's sidecar, else every value present in either image, "
                   "named label_N.")
@click.option("--case-id", default=None, help="Case identifier to record (default: PREDICTION's name without _seg).")
@click.option("--json", "as_json", is_flag=True, help="Print the metrics JSON on stdout instead of a table.")
@overwrite_option
def evaluate(prediction, reference, output, model, case_id, as_json, overwrite):
    """Per-label Dice, HD95 and ASSD (mm), volumes and false positive / negative volumes (ml).

    Label names come from --model, else from the prediction's sidecar (<name>_seg.json, written by
    `medseg infer`), else label_N for every value present; --model must be the model the sidecar names.
    Both images must be label images on the same grid (same shape, affines within 0.01 mm, or a tenth of the
    smallest voxel where that is less); a reference that holds the same voxels in another order (axes swapped or
    reversed, as from another DICOM converter) is re-indexed onto the prediction's grid without resampling.
    Otherwise nothing is scored and the exit code is 1. Either file may be a DICOM SEG (.dcm, or a file with
    the DICM marker): it is placed frame by frame on the DICOM series the prediction's sidecar records, its
    segments matched to the labels by name, else by their DICOM codes (the --model's, else the sidecar's). Empty
    masks: both empty gives Dice and distances null
    (both_empty); a prediction where the reference is empty gives Dice 0 (false_positive); an empty
    prediction gives Dice 0 (empty_prediction); distances are null whenever one mask is empty.

    \b
    $ medseg evaluate out/case1_seg.nii.gz labels/case1.nii.gz
    $ medseg evaluate out/case1_seg.nii.gz labels/case1.nii.gz -o out/case1_metrics.json --model hippocampus
    """
    from medseg.io.atomic import atomic_paths, check_writable
    from medseg.metrics import evaluate_files, metrics_json
    from medseg.volume import stem

    if _same_file(prediction, reference):  # a copy-paste slip that scored as perfect
        raise click.UsageError(f"{prediction} is given as both the prediction and the reference; give the reference "
                               "labels as the second file")
    sidecar = prediction.with_name(f"{stem(prediction)}.json")  # written by `medseg infer` beside its output
    if case_id is None:
        case_id = stem(prediction).removesuffix("_seg")
    elif not case_id.strip():
        raise click.BadParameter("an empty case id names nothing; give one, or leave --case-id out",
                                 param_hint="'--case-id'")
    # a folder as -o: the file goes in it, not below it, and is not hidden (--case-id ../x gave .._x_metrics.json)
    safe = case_id.replace("/", "_").replace("\\", "_").lstrip(".") or "case"
    output = file_output("-o", output, f"{safe}_metrics.json", (".json",))
    if output is not None:
        inputs = {"the prediction": prediction, "the reference": reference,
                  "the prediction's sidecar (written by medseg infer)": sidecar}
        taken = [name for name, path in inputs.items() if output.resolve() == path.resolve()]
        if taken:
            raise click.UsageError(f"-o {output}: that is {taken[0]}; give the metrics a .json path of their own")
        check_writable([output], overwrite)
    labels = codes = None
    made_by = _sidecar_model(sidecar)
    if model is not None:
        from medseg.package import load_package

        package = load_package(model, check_hash=False)
        if made_by is not None and made_by["name"] and made_by["name"] != package.name:
            # a shipped model by its name; a package of one's own by the folder the sidecar records (its name alone
            # is not found from another folder)
            pass_it = made_by["name"] if _shipped(made_by["name"]) else (made_by["path"] or made_by["name"])
            raise click.UsageError(f"{prediction} was made by model {made_by['name']!r} (its sidecar says so), not "
                                   f"{package.name!r}; pass --model {pass_it} or leave --model out")
        if made_by is not None and made_by["labels"] and _named(made_by["labels"]) != _named(package.labels):
            # one name, two packages (a retrained "v2" with other labels): the values would be scored under the
            # wrong names
            raise click.UsageError(f"{prediction} was made with labels {_labels_text(made_by['labels'])} (its "
                                   f"sidecar says so), but --model {model} has {_labels_text(package.labels)}; pass "
                                   "the package that made it, or leave --model out")
        if made_by is not None and made_by["weights_sha256"] and made_by["weights_sha256"] != package.sha256:
            logging.getLogger("medseg").warning(
                "%s was made by other weights of model %s (sha256 %s…, --model has %s…); its labels are the same, "
                "so it is scored under them", prediction, package.name, made_by["weights_sha256"][:12],
                package.sha256[:12])
        labels, codes = package.labels, package.label_codes or None  # none of its own: the sidecar's
    elif made_by is not None and made_by["labels"]:
        labels = made_by["labels"]  # the label names of the model that made the prediction
    from medseg.resources import set_threads

    set_threads(None)  # MONAI's metrics run on torch: no more threads than a cgroup's CPU quota allows
    metrics = evaluate_files(prediction, reference, labels, case_id=case_id, label_codes=codes)
    if made_by is not None:
        _warn_if_changed(prediction, sidecar, made_by, metrics.get("prediction_sha256"))
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


def _sidecar_model(sidecar: Path) -> dict | None:
    """The model name and label names recorded in a prediction's sidecar, and the segmentation it describes (name
    and SHA-256), or None when it is absent or unreadable (said in a warning: the labels then go unnamed and
    --model unchecked)."""
    import json

    try:
        text = sidecar.read_text()
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        return _unread(sidecar, error)
    try:
        record = json.loads(text)
        if not isinstance(record, dict):
            raise ValueError(f"holds a JSON {type(record).__name__}, not an object")
        for key in ("labels", "model"):  # "'str' object has no attribute 'items'" said nothing of which
            if record.get(key) is not None and not isinstance(record[key], dict):
                raise ValueError(f"its {key!r} is not an object")
        labels = {int(value): str(name) for value, name in (record.get("labels") or {}).items()}
        model = record.get("model") or {}
        made = {key: record.get(key) for key in ("segmentation", "segmentation_sha256")}
        return {"name": str(model.get("name") or ""), "labels": labels,
                "weights_sha256": str(model.get("weights_sha256") or ""), "path": str(model.get("path") or ""),
                **{key: value for key, value in made.items() if isinstance(value, str)}}
    except (ValueError, AttributeError, TypeError) as error:
        return _unread(sidecar, error)


def _warn_if_changed(prediction: Path, sidecar: Path, made_by: dict, scored_sha256: str | None) -> None:
    """Warns when the file scored (its SHA-256 as scoring read it) is not the segmentation its sidecar describes as
    written: an edited segmentation."""
    import os

    made, described = made_by.get("segmentation_sha256"), made_by.get("segmentation")
    if made is None or described is None or os.path.basename(described) != prediction.name:
        return  # the sidecar describes another file (or none)
    if scored_sha256 is not None and scored_sha256 != made:
        logging.getLogger("medseg").warning(
            "%s was changed after medseg infer wrote it (its SHA-256 is not the one its sidecar %s records): it is "
            "scored as it is now, under the label names and model the sidecar gives", prediction, sidecar.name)


def _unread(sidecar: Path, error: Exception) -> None:
    from medseg.errors import first_line

    logging.getLogger("medseg").warning(
        "%s: not a readable sidecar (%s): its label names and the model that made the prediction are not used",
        sidecar, first_line(error))
    return None


def _shipped(name: str) -> bool:
    from medseg.package import shipped_models

    return name in shipped_models()


def _named(labels: dict) -> dict[int, str]:
    """The labels that count: what background is called does not."""
    return {int(value): str(name) for value, name in labels.items() if int(value) != 0}


def _labels_text(labels: dict) -> str:
    return ", ".join(f"{value} {name}" for value, name in sorted(_named(labels).items()))


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
