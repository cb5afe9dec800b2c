"""`medseg train`: train a U-Net and write a model package."""

from __future__ import annotations

from pathlib import Path

import click

from medseg.cli.options import GivenPath, device_form, escaped_line


@click.command("train")
@click.option("--images", required=True, type=GivenPath(file_okay=False, path_type=Path), help="Folder of images.")
@click.option("--labels", required=True, type=GivenPath(file_okay=False, path_type=Path),
              help="Folder of label images named as the images, or with a suffix: _label(s), _seg, _mask, _gt.")
@click.option("-c", "--config", "config_path", type=GivenPath(dir_okay=False, path_type=Path),
              help="Training config (JSON/YAML): model package fields plus a `training` section; see configs/train/. "
              "Default: a 2.5D U-Net (width 16, depth 4) for the label values found, named after the output folder, "
              "with a tile (and training patch) that holds every case's axial plane, at most 128 x 128 (with --resume, "
              "the checkpoint's tile).")
@click.option("-o", "--output", required=True, type=GivenPath(file_okay=False, path_type=Path),
              help="Model package folder to write.")
@click.option("--epochs", type=click.IntRange(1, 1_000_000), default=None, help="Override training.epochs.")
@click.option("--steps-per-epoch", type=click.IntRange(1), default=None,
              help="Override training.steps_per_epoch (e.g. a short trial run).")
# seeds below 2^31: each epoch draws with seed + epoch, which numpy and MONAI take below 2^32
@click.option("--seed", type=click.IntRange(0, 2**31 - 1), default=None,
              help="Override training.seed. Without training.split_seed in the config it also draws the validation "
                   "split, so figures of different seeds come from different validation cases.")
@click.option("--fold", type=click.IntRange(0), default=None,
              help="Override training.fold: validate on this block of the seeded split (cross-validation).")
@click.option("--device", default="cpu", show_default=True, metavar="cpu|cuda[:N]|auto|mps", callback=device_form,
              help="Compute device; a missing device is an error, never a fallback.")
@click.option("--threads", type=click.IntRange(1), default=None,
              help="CPU threads for torch (default: torch's own choice). The trained weights depend on it in their "
                   "last bits (two runs are identical only with the same seed and the same --threads).")
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint in the output folder.")
@click.option("--overwrite", is_flag=True, help="Replace an existing package in the output folder.")
def train(images, labels, config_path, output, epochs, steps_per_epoch, seed, fold, device, threads, resume,
          overwrite):
    """Train the classic 2D U-Net on labelled volumes and write a model package.

    \b
    $ medseg train --images imagesTr --labels labelsTr -c configs/train/hippocampus.json -o my_model
    $ medseg infer scan.nii.gz --model my_model
    """
    if resume and overwrite:
        raise click.UsageError("--resume continues the checkpoint and --overwrite starts again: choose one")
    from medseg.errors import TrainingError
    from medseg.io.files import exists

    for folder in (labels, images):  # before torch and MONAI are imported (seconds), as pairing would say it
        if not (exists(folder) and folder.is_dir()):  # exists: a folder on the way that cannot be searched is named
            raise TrainingError(f"{folder}: no such folder")
    if images.samefile(labels):  # the command line alone says it, as a file given as --images (exit 2)
        raise click.BadParameter(f"{labels} is also --images; put the label files in a folder of their own",
                                 param_hint="'--labels'")
    from medseg.io.folder_claim import claimed

    with claimed(output, "training run"):  # from the folder's check to its package: one run at a time
        return _train(images, labels, config_path, output, epochs, steps_per_epoch, seed, fold, device, threads,
                      resume, overwrite)


def _train(images, labels, config_path, output, epochs, steps_per_epoch, seed, fold, device, threads, resume,
           overwrite):
    """`medseg train`, with its output folder claimed."""
    from medseg.checkpoint import (
        check_checkpoint_labels,
        check_output_folder,
        checkpoint_epoch,
        checkpoint_planned_epochs,
        checkpoint_stamp,
        checkpoint_tile,
    )
    from medseg.cli.options import quiet
    from medseg.device import resolve_device
    from medseg.errors import TrainingError
    from medseg.io.atomic import placed_before_stop
    from medseg.package import CONFIG_NAME, shipped_package_path
    from medseg.resources import physical_memory
    from medseg.step_memory import check_step_fits
    from medseg.train import train as run_training
    from medseg.train_config import (
        MAX_TRAINING_LABEL,
        check_config,
        default_config,
        default_tile,
        read_config,
        seeded_split,
        training_precision,
        validation_without_foreground,
    )
    from medseg.train_resume import check_resume, check_trained_on
    from medseg.training_cases import check_training_foreground, label_values, load_cases, pair_cases

    # everything that can be checked without reading a volume fails first: config, output folder, pairing (the
    # config first: a misspelt setting is told before an --overwrite that the corrected run would need anyway)
    overrides = {k: v for k, v in (("epochs", epochs), ("steps_per_epoch", steps_per_epoch), ("seed", seed),
                                   ("fold", fold)) if v is not None}
    if config_path is not None:
        config = read_config(config_path)
        check_config(config, str(config_path))  # as written: an override must not hide a wrong value in the file
        config = with_overrides(config, overrides)
        check_config(config, str(config_path))
    check_output_folder(output, overwrite=overwrite, resume=resume)
    pairs = pair_cases(images, labels)
    if config_path is not None and not quiet():
        _tell_dataset_names(images, labels, config, config_path)
    if config_path is None:
        from dataclasses import replace

        from medseg.checkpoint import started_without_names
        from medseg.errors import InputError
        from medseg.io.dataset_json import find_dataset_json, read_dataset_json

        tile = (checkpoint_tile(output) if resume else None) or default_tile(pairs)
        found = label_values(pairs)
        largest = max(found, default=0)
        # named with the file that holds it, not as the default config's (values with gaps are told below, with the
        # file of the first gap)
        # no gap below it (counted, not listed: a value of 2^40 would make a list of 2^40)
        if largest > MAX_TRAINING_LABEL and len(set(found) | {0}) == largest + 1:
            raise TrainingError(f"{found[largest]}: label value {largest} is above {MAX_TRAINING_LABEL}, the largest "
                                "medseg train supports (labels are kept as 8-bit values)")
        dataset_path = find_dataset_json(images, labels)  # a Decathlon / nnU-Net folder's label names and notes
        # a run started without it (before medseg read dataset.json files) goes on with its label_N names, whatever
        # the dataset.json says of them
        keep_label_n = resume and dataset_path is not None and started_without_names(output)
        dataset = None
        if dataset_path is not None:
            try:
                dataset = read_dataset_json(dataset_path)
            except InputError:
                if not keep_label_n:
                    raise
        if keep_label_n:
            notes = dataset is not None and bool(dataset.data)
            dataset = replace(dataset, names={}) if dataset is not None else None
            if not quiet():
                also = " (whose data notes go into the model card)" if notes else ""
                click.echo(f"warning: {output}: the checkpoint's run named its labels label_N; it goes on with those "
                           f"names, not {dataset_path}'s{also}; start again with --overwrite to use them", err=True)
        names = (dataset.names or None) if dataset is not None else None
        undeclared = sorted(set(found) - set(names or found))
        if undeclared:
            raise TrainingError(f"{found[undeclared[0]]}: label value {undeclared[0]}, which {dataset_path} does not "
                                f"declare (its labels {sorted(names)}); recode the label file or correct the "
                                "dataset.json")
        if resume:
            check_checkpoint_labels(output, found, names, dataset_path if names else None)
        # named after the folder: "-o ." is the current folder's name
        config = with_overrides(default_config(found, name=output.resolve().name or "model", where=str(labels),
                                               tile=tile, names=names,
                                               data=dataset.data if dataset is not None else None), overrides)
        check_config(config, "default config" if dataset is None else f"default config with {dataset_path}")
        if dataset is not None and names and not quiet():
            click.echo(f"label names{' and data notes' if dataset.data else ''} from {dataset_path}: "
                       + ", ".join(f"{v} {n}" for v, n in dataset.names.items()), err=True)
    where = str(config_path) if config_path is not None else "default config"
    fit, val, described = seeded_split(pairs, config["training"], where)  # a bad split setting fails before reading
    n_val = len(val)
    if resume:
        check_resume(output, config, [case.case_id for case in val], described,
                     [case.case_id for case in [*fit, *val]], epochs_given=epochs is not None)
        planned, asked = checkpoint_planned_epochs(output), int(check_config(config, where)["epochs"])
        if epochs is None and planned is not None and planned != asked:  # a plan changed without saying so
            config_text = where if config_path else "the default config"
            raise TrainingError(f"{output}: the checkpoint's run was planned for {planned} epoch"
                                f"{'s' if planned != 1 else ''}, and {config_text} asks for {asked}; give --epochs "
                                f"{planned} to finish it as planned, or --epochs {asked} to "
                                f"{'extend it' if asked > planned else 'end it sooner'}")
    choice = resolve_device(device)
    from medseg.resources import set_threads

    set_threads(threads)  # --threads, or no more than a cgroup's CPU quota allows
    # before the cases are read (minutes)
    settings = check_config(config, where)
    precision = training_precision(str(settings["precision"]), choice.device)[0]
    check_step_fits(config["architecture"], settings, choice.device, physical_memory(), precision, output, where)
    try:
        cases = load_cases(pairs, config)
    except KeyboardInterrupt:  # click says only "Aborted."
        kept = " (its checkpoint is as it was)" if resume else ""
        click.echo(escaped_line(f"{output}: stopped while the cases were read; nothing was written{kept}"), err=True)
        raise
    if resume:  # other files than the checkpoint's: refused before the run is announced
        check_trained_on(output, cases)
    check_training_foreground(fit)  # the split's cases, now read: refused before the run is announced
    silent = quiet()
    if not silent:
        used, why = training_precision(str(config["training"].get("precision", "fp32")), choice.device)
        click.echo(f"training on {len(cases) - n_val} case(s), validating on {n_val}, device {choice}, precision "
                   f"{used} ({why})", err=True)
        done = checkpoint_epoch(output) if resume else None
        if done is not None and done < asked:  # the only sign was the epoch numbers going on
            click.echo(f"resuming {output} from its checkpoint after epoch {done}, on to epoch {asked}", err=True)
        elif done is not None and not (output / CONFIG_NAME).is_file():  # stopped after its last epoch, no package
            click.echo(f"resuming {output}: its checkpoint has all {asked} epochs; nothing left to train, its package "
                       "is written", err=True)
        if n_val and (config.get("preprocessing") or {}).get("spacing_mm") and (done is None or done < asked):
            click.echo("validation Dice per epoch is scored in model space (resampled to preprocessing.spacing_mm); "
                       "the package's figures are the best epoch scored again on the volumes' own grids", err=True)
        if not n_val:
            zero = float(config["training"].get("val_fraction", 1)) == 0
            why = "training.val_fraction is 0" if zero else "fewer than two cases"
            click.echo(f"warning: no validation case ({why}): the last epoch becomes the package, and its validation "
                       "figures stay empty", err=True)
        shipped = shipped_package_path(str(config["name"]))
        if shipped is not None and output.resolve() != shipped.resolve():
            fix = ("set another name (and the data description and licence its model card will show) in a copy of "
                   "the config" if config_path is not None else "give -o a folder of another name")
            click.echo(f"warning: {where} names the package {config['name']!r}, as a model shipped with medseg: "
                       f"sidecars and reports name models by name and version; {fix}", err=True)

    label_names = {str(value): str(name) for value, name in config["labels"].items()}
    misnamed = [value for value, name in label_names.items() if value != "0" and name.strip().casefold() in
                ("background", "bg", "backgnd")]
    if misnamed:  # scored and reported as a structure: names swapped in the config (or in a dataset.json)?
        click.echo(f"warning: {where}: label {misnamed[0]} is named {label_names[misnamed[0]]!r}, but value 0 is "
                   f"the background (named {label_names.get('0')!r}): label {misnamed[0]} is trained, scored and "
                   "reported as a structure; are the names swapped?", err=True)

    model_space = {}  # epoch → validation mean Dice as the epoch lines show it

    def report(record: dict) -> None:
        model_space[record["epoch"]] = record.get("val_mean_dice")
        if silent:
            return
        line = f"epoch {record['epoch']:3d}  lr {record['lr']:.2e}  loss {record['loss']:.4f}"
        if "val_dice" in record:  # by name, as the model card and `medseg models` show them
            dice = "  ".join(f"{label_names.get(str(k), k)} {dice_text(v)}" for k, v in record["val_dice"].items())
            line += f"  val mean Dice {dice_text(record['val_mean_dice'])}  ({dice})"
        click.echo(line + f"  {record['seconds']:.0f}s", err=True)

    before = checkpoint_stamp(output)
    try:
        kept = []  # set when a finished run's intact package is kept (checked after the data)
        package = run_training(config, cases, output, resume=resume, on_epoch=report, device=choice.device,
                               on_kept=kept.append)
    except KeyboardInterrupt as stop:
        if any(path.name == CONFIG_NAME for path in placed_before_stop(stop)):  # held until the package was whole
            click.echo(escaped_line(f"{output}: stopped just after the model package was written; it is complete "
                                    f"(medseg infer --model {output} runs it)"), err=True)
            stop.told = True
            raise
        done = checkpoint_epoch(output)
        if done is not None and (resume or checkpoint_stamp(output) != before):
            again = "with --resume instead of --overwrite" if overwrite else "with --resume"
            earlier = ("; until it finishes, the package in the folder is the one written before it"
                       if (output / CONFIG_NAME).is_file() else "")
            click.echo(f"{output}: checkpoint after epoch {done} kept; run the same command {again} to continue"
                       f"{earlier}", err=True)
        elif done is not None:  # --overwrite stopped before its first epoch ended: the replaced run is untouched
            click.echo(f"{output}: stopped before this run's first checkpoint; the folder holds the run it was to "
                       "replace, as before", err=True)
        elif not (output / CONFIG_NAME).is_file():  # the folder made for the run is removed
            click.echo(escaped_line(f"{output}: stopped before the first epoch ended; nothing was written"),
                       err=True)
        raise
    t = package.config["training"]
    if kept:
        planned = int(t["epochs_run"])
        kept_as = ("kept with the config's label_codes written into it" if kept[0] else "kept as it was")
        click.echo(f"{output}: the run had finished its {planned} epoch{'s' if planned != 1 else ''} and its package "
                   f"is intact; nothing to train, the package is {kept_as} (give --epochs with more to extend it)",
                   err=True)
        return 0
    if t.get("val_mean_dice") is not None and validation_without_foreground(
            package.config["labels"], len(t.get("val_cases") or []), t.get("val_labels_absent")):
        which = f"last epoch {t['best_epoch']}; no validation case holds a foreground label"
    elif t.get("val_mean_dice") is None and t.get("val_cases"):
        which = f"epoch {t['best_epoch']}; no label could be scored in the {len(t['val_cases'])} validation case(s)"
    elif t.get("val_mean_dice") is None:
        which = f"epoch {t['best_epoch']}, not validated"
    else:
        which = f"best epoch {t['best_epoch']}, val mean Dice {dice_text(t['val_mean_dice'])}"
        if t.get("val_scored_on") == "input grid":  # the epochs' figures were in model space (resampled)
            which += " on the volumes' own grids"
            if model_space.get(t["best_epoch"]) is not None:
                which += f"; {dice_text(model_space[t['best_epoch']])} in model space, as its epoch line shows"
    if not quiet():  # -q: errors only, as for the other commands' "wrote" lines
        click.echo(escaped_line(f"wrote {output} ({which})"))
    return 0


def with_overrides(config: dict, overrides: dict) -> dict:
    """``config`` with command-line overrides of its ``training`` section."""
    training = config.get("training", {})
    if not isinstance(training, dict):
        return config  # check_config names the problem
    return {**config, "training": {**training, **overrides}}


def dice_text(value: float | None) -> str:
    from medseg.numbers import dice_round_text

    return "n/a" if value is None else dice_round_text(value)


def _tell_dataset_names(images: Path, labels: Path, config: dict, config_path: Path) -> None:
    """A dataset.json beside the folders that names the labels otherwise than the config given with -c (whose names
    are the model's): one warning line, also where medseg could not train from the dataset.json itself (an
    ``ignore`` label the config would train as a class). Silent where they agree or where it names no labels: the
    config was asked for."""
    from medseg.io.dataset_json import declared_names, find_dataset_json, renamed_labels

    path = find_dataset_json(images, labels)
    declared = declared_names(path) if path is not None else None
    if not declared:
        return
    theirs, ours = renamed_labels(declared, {int(k): v for k, v in config["labels"].items()})
    if theirs:
        def shown(names: dict) -> str:
            return ", ".join(f"{value} {name}" for value, name in names.items())

        click.echo(f"warning: {path} names labels {shown(theirs)}; the config {config_path} names them {shown(ours)}, "
                   "and its names are the model's", err=True)
