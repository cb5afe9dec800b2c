"""`medseg models`: list the shipped model packages, or describe and check given ones."""

from __future__ import annotations

import json

import click

__all__ = ["models"]


def _given(ctx, param, values):
    from medseg.cli.options import given_model

    return tuple(given_model(ctx, param, value) for value in values)


_HELP = """List the shipped model packages with their labels; given packages (shipped names or package folders, such as
`medseg train` writes), describe those instead, with their validation figures, after checking their weights
against the SHA-256 their model.json records; a folder of packages (two or more of its folders hold one) is each
package in it, by name. A package that cannot be loaded is one error line (the others are listed; with --json it is
also a row with "name" null, "given" and "error") and the exit code is 1. A given package one of whose tiles needs
more memory than this machine has is warned about (medseg infer refuses it on this machine's CPU; --json gives the
charge as tile_pass_bytes).

\b
$ medseg models
$ medseg models models/my_model
$ medseg models shared_models/
"""


@click.command("models", help=_HELP)
@click.argument("packages", nargs=-1, metavar="[NAME_OR_FOLDER]...", callback=_given)
@click.option("--json", "as_json", is_flag=True,
              help="Print the packages as a JSON list (one object each) instead of text.")
def models(packages: tuple[str, ...], as_json: bool):
    import os

    from medseg.cli.options import error_line, escaped_line, quiet
    from medseg.errors import ModelPackageError
    from medseg.package import (
        DEFAULT_MODEL,
        load_package,
        packages_in_folder,
        shipped_models,
        shipped_name_taken,
        shipped_package_path,
    )
    from medseg.tile_memory import package_tile_bytes, tile_over_memory

    # a folder of packages (shared as it is): each package in it, as if given
    packages = tuple(found for name in packages for found in ([str(p) for p in packages_in_folder(name)] or [name]))
    rows, broken = [], 0
    for name in packages or shipped_models():
        try:  # listing the shipped ones: their own folders, not a folder of their name in the working folder
            package = load_package(name if packages else shipped_package_path(name), check_hash=bool(packages))
        except ModelPackageError as error:  # one damaged package: the others are still listed
            click.echo(error_line(error), err=True)
            broken += 1
            # in --json, a row of its own: a script checking the packages it gave sees which one failed and why
            rows.append({"name": None, "given": name, "error": str(error)})
            continue
        row = {
            "name": package.name,
            "default": package.path.resolve() == shipped_package_path(DEFAULT_MODEL).resolve(),
            "description": package.config.get("description", ""),
            "labels": {str(k): v for k, v in package.labels.items()},
            "label_codes": {str(k): v for k, v in package.label_codes.items()},
            "slice_axis": package.inference["slice_axis"],
            "version": package.config.get("version"),
            "weights_sha256": package.sha256,
            "config_sha256": package.config_sha256,
        }
        if package.modalities is not None:  # a multi-modal model: what each case must give it
            row["modalities"] = package.modalities
        if packages:
            row |= {"path": os.path.abspath(package.path), "weights_checked": True,
                    "training": _training_summary(package), "tile_pass_bytes": package_tile_bytes(package)}
            taken = shipped_name_taken(package, name)
            if taken is not None and not quiet():  # as `medseg infer` warns: where a package maker looks first
                click.echo(escaped_line(f"warning: {taken}"), err=True)
            # what infer refuses on this machine's CPU, though loading the package takes it: another machine or a
            # GPU may run it, so a warning
            over = tile_over_memory(package)
            if over is not None and not quiet():
                click.echo(escaped_line(f"warning: {over}; medseg infer refuses it on this machine's CPU"), err=True)
            if not quiet():
                card_note = _card_note(package)
                if card_note:
                    click.echo(escaped_line(f"warning: {card_note}"), err=True)
        rows.append(row)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return 1 if broken else 0
    for row in rows:
        if "error" not in row:  # told on stderr above
            click.echo("\n".join(escaped_line(line) for line in _describe(row).splitlines()))
    return 1 if broken else 0


def _card_note(package) -> str | None:
    """What is wrong with a package's model card (its data, licence and attribution notes), if anything: missing, or
    naming other weights than those beside it."""
    from medseg.errors import ModelPackageError
    from medseg.io.files import os_reason
    from medseg.model_card import CARD_NAME, card_weights_mismatch, read_card

    card = package.path / CARD_NAME
    try:
        text = read_card(card)
    except ModelPackageError as error:  # a named pipe, a link to a device, gigabytes: named, not read
        return str(error)
    except FileNotFoundError:
        return (f"{package.path}: no MODEL_CARD.md, the card with the training data's description, licence and "
                "attribution; medseg train writes one")
    except OSError as error:
        return f"{card}: cannot read ({os_reason(error)})"
    named = card_weights_mismatch(text, package.sha256)
    if named is None:
        return None
    return (f"{card}: describes the weights of SHA-256 {named[:12]}…, not those beside it ({package.sha256[:12]}…): "
            "its data, licence and figures may be another model's; medseg train writes the card with its weights")


def _training_summary(package) -> dict | None:
    """What a package's ``training`` record says of its validation, and whether its run is unfinished."""
    from medseg.package_training import unfinished_text, unfinished_training
    from medseg.training_record import recorded_figures

    training = package.config.get("training")
    unfinished = unfinished_training(package.path)
    if not isinstance(training, dict):
        return {"unfinished": unfinished_text(unfinished)} if unfinished else None
    summary = recorded_figures(training, package.config.get("labels") or {})  # a hand-edited record: checked
    if unfinished:
        summary["unfinished"] = unfinished_text(unfinished)
    return summary


def _describe(row: dict) -> str:
    from medseg.label_map import classes_note
    from medseg.numbers import counted, dice_round_text
    from medseg.package_labels import codes_text

    mark = " (default)" if row["default"] else ""
    labels = ", ".join(f"{k}={v}" for k, v in row["labels"].items()) + classes_note(row["labels"])
    lines = [f"{row['name']}{mark}: {row['description']}", f"  labels: {labels}"]
    if row.get("modalities"):
        lines.append(f"  modalities: {', '.join(row['modalities'])} (a case is a 4D NIfTI of them on its last axis, or "
                     "nnU-Net's case_0000 … files)")
    codes = codes_text(row["label_codes"])
    if codes:
        lines.append(f"  DICOM SEG codes: {codes}")
    if "path" not in row:
        return "\n".join(lines)
    version = f"version {row['version']}; " if row.get("version") is not None else ""
    lines.append(f"  {version}folder: {row['path']}; weights SHA-256 {row['weights_sha256'][:12]}… checked")
    training = row.get("training")
    if not training:
        lines.append("  training: not recorded (a package not made by `medseg train`)")
        return "\n".join(lines)
    if training.get("unfinished"):
        # a run's package is written when it finishes: the one here is an earlier finished run's, which stays until
        # the unfinished run finishes and replaces it
        lines.append(f"  training: an unfinished run in this folder ({training['unfinished']}) will replace this "
                     "package when it finishes; the figures below are this package's")

    def recorded(value, noun: str = "") -> str:  # a figure of the record (None: not recorded), counted as noun
        if value is None:
            return f"{noun}s not recorded" if noun else "not recorded"
        return counted(value, noun) if noun else str(value)

    untrained = training.get("train_labels_absent")
    if untrained:  # declared, but held by no training case: as the model card names them
        lines.append("  in no training case, so never learnt: "
                     + ", ".join(f"{v} {row['labels'].get(str(v), v)}" for v in untrained))
    dice = training.get("val_dice")
    if isinstance(dice, dict) and dice:
        names = row["labels"]
        absent = {str(v) for v in training.get("val_labels_absent") or []}  # marked as the model card marks them

        def per_label(values: dict) -> str:  # None: not recorded (checked by _training_summary)
            return ", ".join(f"{names.get(k, k)}{' *' if k in absent else ''} "
                             f"{'n/a' if v is None else dice_round_text(v)}" for k, v in values.items())

        best, run, split = training.get("best_epoch"), training.get("epochs_run"), training.get("val_split")
        lines.append(f"  validation ({recorded(training.get('val_cases'), 'case')}, "
                     f"{'split not recorded' if split is None else split}; best epoch {recorded(best)}"
                     f"{f' of {run}' if run is not None else ''}): mean Dice {per_label(dice)}")
        for what in ("median", "min"):
            values = training.get(f"val_dice_{what}")
            if isinstance(values, dict) and values:
                lines.append(f"    {what} {per_label(values)}")
        if absent:
            lines.append("    * in no validation reference: its Dice counts only false positives (0 where the label "
                         "was predicted, n/a where not)")
    elif "epochs_run" in training:
        lines.append(f"  training: {recorded(training['epochs_run'], 'epoch')} on "
                     f"{recorded(training.get('train_cases'), 'case')}, no validation figures")
    return "\n".join(lines)
