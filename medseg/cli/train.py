"""`medseg train`: train a U-Net and write a model package."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import click

from medseg.cli.options import GivenPath, device_form, escaped_line, refuse_blocked_folder, stopped_by, typed_option
from medseg.train_config import DEFAULT_TRAINING

__all__ = ["train"]


_HELP = """Train a slice-wise U-Net (2D, or 2.5D with neighbouring slices as channels) on labelled NIfTI volumes
and write a model package (model.json, weights.safetensors, MODEL_CARD.md) that `medseg infer --model` runs.

\b
$ medseg train --images imagesTr --labels labelsTr \\
    -c configs/train/hippocampus.json -o my_model
$ medseg infer scan.nii.gz --model my_model
"""


@click.command("train", help=_HELP)
# not readable=True: the library names a folder or config this user may not read (exit 1, not a usage error)
@click.option("--images", required=True, type=GivenPath(file_okay=False, readable=False, path_type=Path),
              help="Folder of images (.nii, .nii.gz; .nrrd, .nhdr, .mha, .mhd with the itk extra; directly in it; "
              "nnU-Net's _0000 suffix allowed). Multi-modal cases: 4D NIfTI images of the modalities on their last "
              "axis, or nnU-Net's channel files case_0000, case_0001 ….")
@click.option("--labels", required=True, type=GivenPath(file_okay=False, readable=False, path_type=Path),
              help="Folder of label images named as the images, or with a suffix: _label(s), _seg, _mask, _gt.")
@click.option("-c", "--config", "config_path", type=GivenPath(dir_okay=False, readable=False, path_type=Path),
              help="Training config (JSON/YAML): model package fields plus a `training` section; examples in "
              "configs/train/ of medseg's source tree (a wheel install has none). "
              "Default: a 2.5D U-Net (width 16, depth 4) for the label values found, named after the output folder, "
              "with a tile (and training patch) that holds every case's axial plane, at most 128 x 128 (with --resume, "
              "the checkpoint's tile).")
@click.option("-o", "--output", "--output-dir", "output", required=True,
              type=GivenPath(file_okay=False, path_type=Path), help="Model package folder to write.")
@click.option("--epochs", type=click.IntRange(1, 1_000_000), default=None,
              help=f"Override training.epochs (default: the config's, else {DEFAULT_TRAINING['epochs']}).")
@click.option("--steps-per-epoch", type=click.IntRange(1), default=None,
              help=f"Override training.steps_per_epoch (default: the config's, else "
                   f"{DEFAULT_TRAINING['steps_per_epoch']}); --epochs 1 --steps-per-epoch 5 is a trial run.")
# seeds below 2^31: each epoch draws with seed + epoch, which numpy and MONAI take below 2^32
@click.option("--seed", type=click.IntRange(0, 2**31 - 1), default=None,
              help=f"Override training.seed (default: the config's, else {DEFAULT_TRAINING['seed']}). Without "
                   "training.split_seed in the config it also draws the validation split, so figures of different "
                   "seeds come from different validation cases.")
@click.option("--fold", type=click.IntRange(0), default=None,
              help=f"Override training.fold (default: the config's, else {DEFAULT_TRAINING['fold']}): validate on "
                   "this block of the seeded split (cross-validation).")
@click.option("--device", default="cpu", show_default=True, metavar="cpu|cuda[:N]|auto|mps", callback=device_form,
              help="Compute device; a missing device is an error, never a fallback.")
@click.option("--threads", type=click.IntRange(1), default=None,
              help="CPU threads for torch (default: torch's own choice). The trained weights depend on it in their "
                   "last bits (two runs are identical only with the same seed and the same --threads).")
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint in the output folder.")
@click.option("--overwrite", is_flag=True, help="Replace an existing package in the output folder.")
def train(images, labels, config_path, output, epochs, steps_per_epoch, seed, fold, device, threads, resume,
          overwrite):
    if resume and overwrite:
        raise click.UsageError("--resume continues the checkpoint and --overwrite starts again: choose one")
    from medseg.errors import TrainingError
    from medseg.io.files import exists
    from medseg.io.itk_image import is_slicer_scene

    # before torch and MONAI are imported (seconds), as pairing would say it
    for folder, kind in ((labels, "labels"), (images, "images")):
        if not (exists(folder) and folder.is_dir()):  # exists: a folder on the way that cannot be searched is named
            raise TrainingError(f"{folder}: no such {kind} folder")
    if images.samefile(labels) and not is_slicer_scene(labels):  # the command line alone says it (exit 2)
        # a 3D Slicer scene is both: case.seg.nrrd, the label of case.nrrd beside it
        raise click.BadParameter(f"{labels} is also --images; put the label files in a folder of their own (one "
                                 "folder serves as both only as 3D Slicer saves a scene: case.seg.nrrd beside "
                                 "case.nrrd)", param_hint="'--labels'")
    refuse_blocked_folder(typed_option("output"), str(output), output)  # as infer's -o: before any case is read
    from medseg.io.folder_claim import claimed

    with claimed(output, "training run"):  # from the folder's check to its package: one run at a time
        return _train(images, labels, config_path, output, epochs, steps_per_epoch, seed, fold, device, threads,
                      resume, overwrite)


def _train(images, labels, config_path, output, epochs, steps_per_epoch, seed, fold, device, threads, resume,
           overwrite):
    """`medseg train`, with its output folder claimed."""
    from medseg.checkpoint import check_output_folder, checkpoint_epoch, checkpoint_stamp, checkpoint_val_dice
    from medseg.cli.options import quiet
    from medseg.device import resolve_device
    from medseg.errors import UntrainableCasesError
    from medseg.io.atomic import placed_before_stop
    from medseg.numbers import counted
    from medseg.package import shipped_package_path
    from medseg.package_config import CONFIG_NAME
    from medseg.resources import physical_memory
    from medseg.step_memory import check_step_fits
    from medseg.train import train as run_training
    from medseg.train_config import check_config, seeded_split, training_precision
    from medseg.train_resume import check_resume, check_trained_on
    from medseg.training_cases import (
        LabelsFrom,
        check_training_foreground,
        load_cases,
        padded_labels_text,
        pair_cases,
    )
    from medseg.training_setup import (
        background_misnamed,
        check_planned_epochs,
        dataset_modalities_disagree,
        dataset_names_disagree,
        default_training_config,
        outcome_text,
        read_given_config,
        recipe_codes_copied,
        recipe_notes_copied,
    )

    # everything that can be checked without reading a volume fails first: config, output folder, pairing (the
    # config first: a misspelt setting is told before an --overwrite that the corrected run would need anyway)
    overrides = {k: v for k, v in (("epochs", epochs), ("steps_per_epoch", steps_per_epoch), ("seed", seed),
                                   ("fold", fold)) if v is not None}
    if config_path is not None:
        config = read_given_config(config_path, overrides)
    check_output_folder(output, overwrite=overwrite, resume=resume)
    from medseg.io.dataset_json import find_dataset_json, load_document

    found = find_dataset_json(images, labels)
    dataset_json = load_document(found) if found is not None else None  # read once: training list, names, warning
    # its training list and file_ending (refused or warned of); with -c, an error about unpaired files names the
    # cases with undeclared label values too
    declared = [int(value) for value in config["labels"]] if config_path is not None else None
    pairs = pair_cases(images, labels, dataset_json=dataset_json, declared=declared)
    if config_path is not None and not quiet():
        disagree = dataset_names_disagree(images, labels, config, config_path, dataset_json)
        if disagree is not None:
            click.echo(f"warning: {disagree}", err=True)
        reordered = dataset_modalities_disagree(config, config_path, dataset_json)
        if reordered is not None:
            click.echo(escaped_line(f"warning: {reordered}"), err=True)
    if config_path is None:
        def tell(kind: str, text: str) -> None:  # as it arises: a check after it may fail
            if not quiet():
                click.echo(f"warning: {text}" if kind == "warning" else text, err=True)

        made = default_training_config(images, labels, output, pairs, overrides, resume, tell, dataset_json)
        config = made.config
        labels_from = (LabelsFrom("dataset.json", made.names_from) if made.names_from is not None
                       else LabelsFrom("files"))
    else:
        labels_from = LabelsFrom("config", config_path)
    where = str(config_path) if config_path is not None else "default config"
    fit, val, described = seeded_split(pairs, config["training"], where)  # a bad split setting fails before reading
    n_val = len(val)
    if resume:
        check_resume(output, config, [case.case_id for case in val], described,
                     [case.case_id for case in [*fit, *val]], epochs_given=epochs is not None)
        asked = int(check_config(config, where)["epochs"])
        check_planned_epochs(output, asked, where, epochs_given=epochs is not None, from_file=config_path is not None)
    choice = resolve_device(device)
    from medseg.resources import set_threads

    set_threads(threads)  # --threads, or no more than a cgroup's CPU quota allows
    # before the cases are read (minutes)
    settings = check_config(config, where)
    precision = training_precision(str(settings["precision"]), choice.device)[0]
    check_step_fits(config["architecture"], settings, choice.device, physical_memory(), precision, output, where)
    try:
        with progress_shown():  # the cases read (minutes for hundreds), without -v too
            cases = load_cases(pairs, config, where)
    except UntrainableCasesError as error:  # where the cases beyond the first three are, as this command shows them
        raise _untrainable_here(error) from None
    except KeyboardInterrupt as stop:  # told in this one line (not "Aborted.")
        kept = " (its checkpoint is as it was)" if resume else ""
        by = stopped_by(stop)
        click.echo(escaped_line(f"{output}: stopped{by} while the cases were read; nothing was written{kept}"),
                   err=True)
        stop.told = True
        raise
    if resume:  # other files than the checkpoint's: refused before the run is announced
        check_trained_on(output, cases)
    check_training_foreground(fit)  # the split's cases, now read: refused before the run is announced
    silent = quiet()
    if not silent:
        used, why = training_precision(str(config["training"].get("precision", "fp32")), choice.device)
        click.echo(f"training on {counted(len(cases) - n_val, 'case')}, validating on {n_val}, device {choice}, "
                   f"precision {used} ({why})", err=True)
        padded = padded_labels_text(cases)
        # 3D Slicer's cropped segmentations: one line for all of them, which load_cases logged where -v shows it
        if padded is not None and not logging.getLogger("medseg.training_cases").isEnabledFor(logging.INFO):
            click.echo(escaped_line(padded), err=True)
        done = checkpoint_epoch(output) if resume else None
        if done is not None and done < asked:  # the only sign was the epoch numbers going on
            click.echo(escaped_line(f"resuming {output} from its checkpoint after epoch {done}, on to epoch {asked}"),
                       err=True)
        elif done is not None and not (output / CONFIG_NAME).is_file():  # stopped after its last epoch, no package
            epochs = "the one epoch" if asked == 1 else f"all {asked} epochs"  # was "all 1 epochs"
            click.echo(escaped_line(f"resuming {output}: its checkpoint has {epochs}; nothing left to train, its "
                                    "package is written"), err=True)
        if n_val and (config.get("preprocessing") or {}).get("spacing_mm") and (done is None or done < asked):
            click.echo("validation Dice per epoch is scored in model space (resampled to preprocessing.spacing_mm); "
                       "the package's figures are the best epoch scored again on the volumes' own grids", err=True)
        if not n_val:
            zero = float(config["training"].get("val_fraction", 1)) == 0
            why = "training.val_fraction is 0" if zero else "fewer than two cases"
            click.echo(f"warning: no validation case ({why}): the last epoch becomes the package, and its validation "
                       "figures stay empty", err=True)
        shipped = shipped_package_path(str(config["name"]))
        from medseg.io.files import real_path

        if shipped is not None and real_path(output) != real_path(shipped):
            fix = ("set another name (and the data description and licence its model card will show) in a copy of "
                   "the config" if config_path is not None else "give -o a folder of another name")
            click.echo(f"warning: {where} names the package {config['name']!r}, as a model shipped with medseg: "
                       f"sidecars and reports name models by name and version; {fix}", err=True)
        copied = recipe_notes_copied(config, config_path, [case.sha256[0] for case in cases if case.sha256]) \
            if config_path is not None else None
        if copied is not None:  # a copy of a shipped config, its card texts unedited
            click.echo(f"warning: {copied}", err=True)
        codes_kept = recipe_codes_copied(config, config_path, [case.sha256[0] for case in cases if case.sha256]) \
            if config_path is not None else None
        if codes_kept is not None:  # a copy of a shipped config, its labels renamed and their codes left
            click.echo(escaped_line(f"warning: {codes_kept}"), err=True)

    misnamed = background_misnamed(config, where)
    if misnamed is not None and not silent:  # names swapped in the config (or a dataset.json)?
        click.echo(f"warning: {misnamed}", err=True)
    label_names = {str(value): str(name) for value, name in config["labels"].items()}

    # epoch → validation mean Dice as the epoch lines show it; a resumed run's earlier epochs from its checkpoint (its
    # best epoch may be one of them, or the run finished and only its package is written)
    model_space = checkpoint_val_dice(output) if resume else {}

    def report(record: dict) -> None:
        model_space[record["epoch"]] = record.get("val_mean_dice")
        if silent:
            return
        line = f"epoch {record['epoch']:3d}  lr {record['lr']:.2e}  loss {record['loss']:.4f}"
        if "val_dice" in record:  # by name, as the model card and `medseg models` show them
            dice = "  ".join(f"{label_names.get(str(k), k)} {_dice_text(v)}" for k, v in record["val_dice"].items())
            line += f"  val mean Dice {_dice_text(record['val_mean_dice'])}  ({dice})"
        click.echo(line + f"  {record['seconds']:.0f}s", err=True)

    before = checkpoint_stamp(output)
    try:
        kept = []  # set when a finished run's intact package is kept (checked after the data)
        with progress_shown():  # the first epoch starting
            package = run_training(config, cases, output, resume=resume, on_epoch=report, device=choice.device,
                                   on_kept=kept.append, overwrite=overwrite, labels_from=labels_from)
    except KeyboardInterrupt as stop:
        if any(path.name == CONFIG_NAME for path in placed_before_stop(stop)):  # held until the package was whole
            by = stopped_by(stop)
            click.echo(escaped_line(f"{output}: stopped{by} just after the model package was written; it is complete "
                                    f"(medseg infer --model {output} runs it)"), err=True)
            stop.told = True
            raise
        done = checkpoint_epoch(output)
        if done is not None and (resume or checkpoint_stamp(output) != before):
            again = "with --resume instead of --overwrite" if overwrite else "with --resume"
            earlier = ("; until it finishes, the package in the folder is the one written before it"
                       if (output / CONFIG_NAME).is_file() else "")
            by = stopped_by(stop)
            said = f"stopped{by}; " if by else ""  # a Ctrl-C's line as it was
            click.echo(escaped_line(f"{output}: {said}checkpoint after epoch {done} kept; run the same command {again} "
                                    f"to continue{earlier}"), err=True)
            stop.told = True
        elif done is not None:  # --overwrite stopped before its first epoch ended: the replaced run is untouched
            by = stopped_by(stop)
            click.echo(escaped_line(f"{output}: stopped{by} before this run's first checkpoint; the folder holds the "
                                    "run it was to replace, as before"), err=True)
            stop.told = True
        elif not (output / CONFIG_NAME).is_file():  # the folder made for the run is removed
            by = stopped_by(stop)
            click.echo(escaped_line(f"{output}: stopped{by} before the first epoch ended; nothing was written"),
                       err=True)
            stop.told = True
        raise
    t = package.config["training"]
    if kept:
        planned = int(t["epochs_run"])
        kept_as = ("kept with the config's label_codes written into it" if kept[0] else "kept as it was")
        click.echo(escaped_line(f"{output}: the run had finished its {planned} epoch{'s' if planned != 1 else ''} and "
                                f"its package is intact; nothing to train, the package is {kept_as} (give --epochs "
                                "with more to extend it)"), err=True)
        return 0
    which = outcome_text(package.config, model_space)
    if not quiet():  # -q: errors only, as for the other commands' "wrote" lines
        click.echo(escaped_line(f"wrote {output} ({which})"))
    return 0


def _untrainable_here(error):
    """``error`` (an :class:`~medseg.errors.UntrainableCasesError`) as this command says it: its warning lines list
    every case above the error, or -q hid them (the library's words, "in this error's problems", name nothing a
    command's user sees)."""
    from medseg.errors import UntrainableCasesError
    from medseg.training_cases import log, untrainable_text

    count = len(error.problems)
    rest = f"all {count} are listed above" if log.isEnabledFor(logging.WARNING) else \
        f"run without -q to list all {count}"
    said = UntrainableCasesError(untrainable_text(error.problems, error.case_count, rest))
    said.problems, said.case_count = error.problems, error.case_count
    return said


@contextlib.contextmanager
def progress_shown():
    """Training's progress lines (info records of :data:`~medseg.training_cases.PROGRESS_LOGGER`) shown on stderr
    as plain lines, as the command's own, where the log level hides info records (no -v); with -v the log shows
    them (once), with -q nothing does."""
    from medseg.cli.options import quiet
    from medseg.training_cases import PROGRESS_LOGGER

    logger = logging.getLogger(PROGRESS_LOGGER)
    if quiet() or logger.isEnabledFor(logging.INFO):
        yield
        return
    handler = _EchoHandler(logging.INFO)
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # its warnings, were there any, the handler shows too
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


class _EchoHandler(logging.Handler):
    """Log records as the command's own lines on stderr (a warning as ``warning: ...``)."""

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        click.echo(escaped_line(f"warning: {text}" if record.levelno >= logging.WARNING else text), err=True)


def _dice_text(value: float | None) -> str:
    from medseg.numbers import dice_round_text

    return "n/a" if value is None else dice_round_text(value)
