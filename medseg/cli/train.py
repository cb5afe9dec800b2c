"""`medseg train`: train a U-Net and write a model package."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("train")
@click.option("--images", required=True, type=click.Path(file_okay=False, path_type=Path), help="Folder of images.")
@click.option("--labels", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder of label images with the same names.")
@click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Training config (JSON/YAML): model package fields plus a `training` section; see configs/train/. "
              "Default: a 2.5D U-Net (width 16, depth 4) for the label values found, named after the output folder.")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Model package folder to write.")
@click.option("--epochs", type=click.IntRange(1), default=None, help="Override training.epochs.")
@click.option("--seed", type=int, default=None, help="Override training.seed.")
@click.option("--fold", type=click.IntRange(0), default=None,
              help="Override training.fold: validate on this block of the seeded split (cross-validation).")
@click.option("--device", default="cpu", show_default=True, metavar="cpu|cuda[:N]|auto")
@click.option("--threads", type=click.IntRange(1), default=None,
              help="CPU threads for torch (default: torch's choice). On a busy shared machine 1 is often fastest.")
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint in the output folder.")
@click.option("--overwrite", is_flag=True, help="Replace an existing package in the output folder.")
def train(images, labels, config_path, output, epochs, seed, fold, device, threads, resume, overwrite):
    """Train the seed's 2D U-Net on labelled volumes and write a model package.

    \b
    $ medseg train --images imagesTr --labels labelsTr -c configs/train/hippocampus.json -o my_model
    $ medseg infer scan.nii.gz --model my_model
    """
    from medseg.cli.options import quiet
    from medseg.device import resolve_device
    from medseg.errors import OutputExistsError
    from medseg.package import CONFIG_NAME
    from medseg.train import default_config, label_values, load_cases, pair_cases, read_config, seeded_split
    from medseg.train import train as run_training

    if (output / CONFIG_NAME).exists() and not (overwrite or resume):
        raise OutputExistsError(f"{output}: holds a model package already; pass --overwrite or --resume")
    pairs = pair_cases(images, labels)
    if config_path is not None:
        config = read_config(config_path)
    else:
        config = default_config(label_values(pairs), name=output.name or "model")
    training = dict(config.get("training", {}))
    if epochs is not None:
        training["epochs"] = epochs
    if seed is not None:
        training["seed"] = seed
    if fold is not None:
        training["fold"] = fold
    config["training"] = training
    n_val = len(seeded_split(pairs, training)[1])  # a bad split setting fails before the cases are read
    choice = resolve_device(device)
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    cases = load_cases(pairs, config)
    silent = quiet()
    if not silent:
        click.echo(f"training on {len(cases) - n_val} case(s), validating on {n_val}, device {choice}", err=True)
        if not n_val:
            click.echo("warning: no validation case (fewer than two cases): the last epoch becomes the package, "
                       "and its validation figures stay empty", err=True)

    def report(record: dict) -> None:
        if silent:
            return
        line = f"epoch {record['epoch']:3d}  lr {record['lr']:.2e}  loss {record['loss']:.4f}"
        if "val_dice" in record:
            dice = "  ".join(f"{k}:{v:.4f}" for k, v in record["val_dice"].items())
            line += f"  val mean Dice {record['val_mean_dice']:.4f}  ({dice})"
        click.echo(line + f"  {record['seconds']:.0f}s", err=True)

    package = run_training(config, cases, output, resume=resume, on_epoch=report, device=choice.device)
    t = package.config["training"]
    if t.get("val_mean_dice") is None:
        click.echo(f"wrote {output} (epoch {t['best_epoch']}, not validated)")
    else:
        click.echo(f"wrote {output} (best epoch {t['best_epoch']}, val mean Dice {t['val_mean_dice']:.4f})")
    return 0
