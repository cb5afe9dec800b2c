"""Training the 2D U-Net on labelled volumes, slice by slice, into a model package.

Volumes are brought into model space with the package's own preprocessing, cut into 2D slices along the
package's slicing axis (with neighbouring slices as channels for 2.5D), augmented with MONAI transforms,
and fitted with DiceCE loss under a learning-rate schedule. Validation runs the whole held-out volumes
through :class:`medseg.inference.Segmenter` — the code path of ``medseg infer`` — and the checkpoint with
the best mean validation Dice becomes the package. Every epoch reseeds all random streams from
``seed + epoch``, so a run resumed from its last checkpoint continues exactly as an uninterrupted one.

This module holds the run itself (:func:`train`: its epochs and their steps, the learning-rate schedule, the moving
average of the weights, validation). The rest of training is in :mod:`medseg.train_config` (the defaults, reading
and checking a config, the seeded split), :mod:`medseg.training_cases` (pairing, reading and checking the cases),
:mod:`medseg.checkpoint` (the ``.checkpoint`` folder), :mod:`medseg.train_resume` (resuming a run) and
:mod:`medseg.model_card`.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medseg import stopping
from medseg.augment import SliceAugment
from medseg.caller_warnings import warning
from medseg.checkpoint import (
    check_output_folder,
    checkpoint_epoch,
    checkpoint_tile,
    load_checkpoint,
    record_codes,
    record_package,
    save_checkpoint,
)
from medseg.errors import InputError, TrainingError
from medseg.inference import Segmenter, context_stack, is_out_of_memory, slice_axes, without_tf32
from medseg.input_range import extent_range, intensity_range
from medseg.io.atomic import placed_before_stop, remove_empty_folders, remove_leftovers
from medseg.io.files import os_reason
from medseg.model_card import model_card
from medseg.numbers import counted, gib_text
from medseg.package import ModelPackage, save_package
from medseg.package_config import CONFIG_NAME, bottleneck_cells
from medseg.package_training import CHECKPOINT_DIR, trained_with
from medseg.settings_named import same_run_with, setting
from medseg.train_config import (
    check_config,
    default_config,
    default_tile,
    default_training,
    read_config,
    seeded_split,
    split_cases,
    tile_side,
    training_precision,
    validation_without_foreground,
)
from medseg.train_resume import (
    carried_codes,
    carried_notes,
    check_resume,
    check_same_data,
    config_given,
    finished_package,
    folder_codes,
    folder_config,
    resume_key,
    tell_other_notes,
    with_label_codes,
)
from medseg.training_cases import (
    LabelsFrom,
    TrainCase,
    check_case_list,
    check_label_presence,
    data_hashes,
    label_box_record,
    label_values,
    load_cases,
    pair_cases,
    progress_log,
)

__all__ = [
    "train", "learning_rate", "dice_per_label", "LabelsFrom",
    # the names `medseg.train` offered before training was split into modules, still importable from it
    "TrainCase", "check_config", "check_output_folder", "check_resume", "checkpoint_epoch", "checkpoint_tile",
    "default_config", "default_tile", "default_training", "label_values", "load_cases", "pair_cases", "read_config",
    "seeded_split", "split_cases",
]

log = logging.getLogger(__name__)


def train(
    config: dict,
    cases: list[TrainCase],
    out_dir: Path | str,
    resume: bool = False,
    on_epoch: Callable[[dict], None] | None = None,
    device: str = "cpu",
    val_cases: list[TrainCase] | None = None,
    on_kept: Callable[[bool], None] | None = None,
    overwrite: bool = False,
    labels_from: LabelsFrom | None = None,
) -> ModelPackage:
    """Train on ``cases`` (loaded with :func:`~medseg.training_cases.load_cases`) and write the best model package
    to ``out_dir``.

    ``config`` holds the package fields and a ``training`` section (defaults in ``DEFAULT_TRAINING``).
    Validation cases are ``val_cases`` or a seeded split of ``cases``. Resuming a run that has finished its epochs
    and whose package is intact (:func:`~medseg.train_resume.finished_package`) trains nothing and returns that
    package, after calling ``on_kept(recoded)``: as it was, or (``recoded`` True) with the config's ``label_codes``,
    which do not change training. A resumed or extended run whose config declares no ``label_codes`` keeps the
    package's. The run claims ``out_dir`` (:func:`medseg.io.folder_claim.claimed`): another process training into
    it is an :class:`~medseg.errors.OutputExistsError`. So is an ``out_dir`` that holds a package or an unfinished
    run, unless ``overwrite`` (start again) or ``resume``, and one that holds other files
    (:func:`~medseg.checkpoint.check_output_folder`, as ``medseg train`` checks it).

    Gradients are on for the run whatever the caller set (``torch.set_grad_enabled(False)``, an enclosing
    ``torch.inference_mode()``), and the caller's setting is in force again once it returns.

    The run seeds Python's, numpy's and torch's random generators (MONAI's ``set_determinism``) and sets cuDNN
    deterministic; their states and flags are put back as they were when it ends. Torch's flush-denormal mode,
    which has no getter, is left off (torch's default).

    ``device`` is ``medseg train``'s ``--device``: ``cpu``, ``cuda``, ``cuda:N``, ``mps`` or ``auto``; one that is not
    there is a :class:`~medseg.errors.DeviceError` before anything is written, never a fallback.

    ``labels_from`` (:class:`~medseg.training_cases.LabelsFrom`) says where the config's labels were declared (a
    config file, a dataset.json, the label files' values), for the advice on labels no training case holds; a
    config by default.
    """
    from medseg.device import resolve_device
    from medseg.io.files import path_argument, type_text
    from medseg.io.folder_claim import claimed

    if not isinstance(config, dict):  # a config file's path, where read_config reads one
        raise InputError(f"{type_text(config)} given as the config; give a dict (read_config(path) reads a "
                         "file, default_config(labels) makes one)")
    check_case_list(cases, "the cases")
    if val_cases is not None:
        check_case_list(val_cases, "the validation cases")
    out_dir = path_argument(out_dir, "the output folder")
    given = [*cases, *(val_cases or [])]
    unread = [case for case in given if case.image is None or case.label is None]
    if unread:  # pair_cases' cases given as they are: a TypeError about None, deep in torch, at the first slice
        raise InputError(f"{unread[0].image_path}: case {unread[0].case_id!r} is not read yet ({len(unread)} of the "
                         f"{counted(len(given), 'case')} given are not); give train the cases "
                         "load_cases(cases, config) returns, read and in model space")
    if not cases:
        raise TrainingError(f"{out_dir}: no cases given to train on")
    device = resolve_device(device).device  # "auto" and "cuda" as the device they name, torch's own errors before
    # gradients on for the run, whatever the caller set: a notebook's torch.set_grad_enabled(False) or a
    # `with torch.inference_mode():` around the call made its first step fail in torch's own RuntimeError
    with claimed(out_dir, "training run"), _random_state_kept(), torch.inference_mode(False), torch.enable_grad():
        check_output_folder(out_dir, overwrite=overwrite, resume=resume)  # a package is not replaced unasked
        return _train(config, cases, out_dir, resume, on_epoch, device, val_cases, on_kept, labels_from)


@contextlib.contextmanager
def _random_state_kept():
    """Puts the random generators' states (Python's, numpy's, torch's, CUDA's) and cuDNN's determinism flags back
    as they were: a caller's own draws are not changed by training's seeding."""
    import random

    saved = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    flags = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    try:
        yield
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])
        torch.set_rng_state(saved[2])
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = flags


def _train(config: dict, cases: list[TrainCase], out_dir: Path | str, resume: bool,
           on_epoch: Callable[[dict], None] | None, device: str, val_cases: list[TrainCase] | None,
           on_kept: Callable[[bool], None] | None, labels_from: LabelsFrom | None = None) -> ModelPackage:
    """:func:`train`, with ``out_dir`` claimed."""
    from monai.losses import DiceCELoss
    from monai.utils import set_determinism

    from medseg.device import native_bf16, slow_bf16_warning
    from medseg.network import UNet2D, UNetConfig
    from medseg.resources import physical_memory
    from medseg.step_memory import check_step_fits

    out_dir = Path(out_dir)
    made_here = [out_dir / CHECKPOINT_DIR] + ([] if out_dir.exists() else [out_dir])  # removed if nothing is saved
    settings = check_config(config)
    check_step_fits(config["architecture"], settings, device, physical_memory(),
                    training_precision(settings["precision"], device)[0], out_dir)
    # warm-up reaches the rate after its epochs (a one-epoch trial run is not warned about)
    if int(settings["warmup_epochs"]) >= int(settings["epochs"]) > 1:
        warning(log, "training.warmup_epochs %s of %s: the learning rate never reaches training.learning_rate %g",
                    settings["warmup_epochs"], counted(int(settings["epochs"]), "epoch"),
                    float(settings["learning_rate"]))
    seed = int(settings["seed"])
    package_config = {k: v for k, v in config.items() if k != "training"}
    package_config.setdefault("format", "medseg-model/1")
    package_config["weights"] = {"file": "weights.safetensors", "sha256": "0" * 64}
    if val_cases is None:
        train_cases, val_cases, val_split = seeded_split(cases, settings)
    else:
        train_cases = cases
        val_split = "chosen by the caller"
    if not train_cases:
        raise TrainingError("no training cases left after the validation split")
    # the network, the slice sampler and the first epoch: tens of seconds on hundreds of cases before its line
    validated = f", then validation on {counted(len(val_cases), 'case')}" if val_cases else ""
    if not (resume and checkpoint_epoch(out_dir) == int(settings["epochs"])):  # a finished run trains no epoch: its
        # package is kept, or written from the checkpoint, as the caller is told (this line promised epoch lines)
        progress_log.info("setting up training to epoch %d (each %s of %d patches%s; an epoch's line comes at its "
                          "end)", int(settings["epochs"]), counted(int(settings["steps_per_epoch"]), "step"),
                          int(settings["batch_size"]), validated)
    train_absent, val_absent = check_label_presence(config, train_cases, val_cases, labels_from)
    blind = validation_without_foreground(config["labels"], len(val_cases), val_absent)
    context = int(config["inference"].get("context_slices", 0))
    tile = tuple(int(v) for v in config["inference"]["roi_size"])
    patch = tuple(settings["patch_size"])  # the tile where the config asked for the default (check_config)
    labels = sorted(int(k) for k in config["labels"])
    if patch != tile:
        warning(log, "training patches %s differ from the inference tile %s: planes smaller than the tile will be "
                    "padded differently at inference than in training", list(patch), list(tile))
    depth = int(config["architecture"].get("depth", 4))
    _warn_if_larger_than_planes(patch, tile, [*train_cases, *val_cases], slice_axes(config["inference"]), depth)
    if bottleneck_cells(patch, depth) <= 1:  # batch norm over a batch (else refused by check_config): it trains, badly
        fits = max((d for d in range(1, depth) if bottleneck_cells(patch, d) > 1), default=1)
        warning(log, "training.patch_size %s leaves one cell at the bottom of a depth-%d U-Net: its deepest levels "
                    "see little but padding and it learns little; architecture.depth %d or less fits the patch",
                    list(patch), depth, fits)

    set_determinism(seed=seed)
    torch.manual_seed(seed)
    arch = {k: v for k, v in config["architecture"].items() if k != "type"}
    with _room_for(out_dir, device, "the network"):
        net: torch.nn.Module = UNet2D(UNetConfig(**arch)).to(device)
    optimizer = torch.optim.AdamW(net.parameters(), lr=float(settings["learning_rate"]),
                                  weight_decay=float(settings["weight_decay"]))
    # batch_dice: Dice pooled over the batch's slices, not averaged per slice (kinder to small structures)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True, batch=bool(settings.get("batch_dice", False)))
    axes = slice_axes(config["inference"])
    sampler = _SliceSampler(train_cases, axes, float(settings["foreground_fraction"]))
    views = {(c, axis): tuple(t.contiguous() for t in case.view(axis))
             for c, case in enumerate(train_cases) for axis in axes}
    precision = training_precision(settings.get("precision", "fp32"), device)[0]
    if settings.get("precision") == "bf16" and not native_bf16(device):  # auto took bf16 only where it is native
        warning(log, slow_bf16_warning(device, "training.precision bf16"))
    autocast = _training_autocast(precision, device)
    # with ema_decay, a moving average of the weights is what gets validated, selected and shipped
    with _room_for(out_dir, device, "the moving average of the weights"):
        ema = _EMA(net, float(settings["ema_decay"])) if settings.get("ema_decay") is not None else None
    shipped = net if ema is None else ema.net
    validator = Segmenter(ModelPackage(out_dir, package_config), device=device, precision="fp32",
                          batch_size=int(settings["batch_size"]), net=shipped, batch_setting="training.batch_size")

    val_ids = [c.case_id for c in val_cases]
    started_with = resume_key(package_config, settings)
    data = data_hashes([*train_cases, *val_cases])
    state: dict[str, Any] = {"epoch": 0, "best_dice": -1.0, "best_epoch": -1, "history": [], "val_cases": val_ids,
             "config": started_with, "data_sha256": data, "epochs_planned": [int(settings["epochs"])],
             "package_pending": True,  # until the package is written: a run stopped after its last epoch shows
             "label_codes": package_config.get("label_codes")}  # not training settings: outside the resume key
    best_state = None
    if not resume and not config.get("label_codes"):  # --overwrite: starting again, the codes of the run it
        # replaces are not this run's
        left = folder_codes(out_dir)
        if left:
            warning(log, "%s: the package this run replaces has label_codes (for labels %s) that the config does not "
                        "declare; they are not kept: give them in the config to keep them", out_dir / CONFIG_NAME,
                        ", ".join(sorted(left, key=int)))
    if resume:
        check_resume(out_dir, config, val_ids, val_split, [c.case_id for c in [*train_cases, *val_cases]])
        with _room_for(out_dir, device, "the checkpoint's weights and optimizer state", kept=True):
            state, best_state = load_checkpoint(out_dir, net, optimizer, None if ema is None else ema.net)
        if blind:  # a checkpoint written before blind validation chose no epoch may hold a 'best' one
            best_state, state["best_dice"], state["best_epoch"] = None, -1.0, -1
        check_same_data(out_dir, state.get("data_sha256"), data)
        if not config.get("label_codes"):  # the run's own codes: added to its package by hand, or carried before
            carried = carried_codes(out_dir, state, package_config)
            if carried:
                package_config["label_codes"] = carried
        kept = finished_package(out_dir, int(settings["epochs"]), names_kept=not config_given(config))
        if kept is not None:  # the same data, nothing left to train
            # the checkpoint's copy first: a record that cannot be written leaves the package untouched
            record_codes(out_dir, package_config.get("label_codes") or kept.config.get("label_codes"))
            package, recoded = with_label_codes(kept, package_config.get("label_codes"))
            tell_other_notes(kept, config)
            if on_kept is not None:
                on_kept(recoded)
            return package
        named = (folder_config(out_dir) or {}).get("name")
        if named and named != package_config.get("name") and config_given(config):
            warning(log, "%s: the package in the folder is named %r; this run writes it as %r, the name its config "
                        "gives (outputs made with the package name %r)", out_dir, named, package_config.get("name"),
                        named)
        if not config_given(config):  # named after its folder: the package's own name and label names are kept
            notes = carried_notes(out_dir, state, package_config)
            package_config.update(notes)
            state["package_notes"] = notes or None  # a later resume carries them from here
        state["data_sha256"] = data  # a checkpoint from before data fingerprints gets one from now on
        state["label_codes"] = package_config.get("label_codes")  # a later resume carries them from here
        state.pop("package_sha256", None)  # the run goes on: the package in the folder is no longer its last word
        state["package_pending"] = True
        state["config"] = started_with
        planned = state.setdefault("epochs_planned", [None])  # None: a checkpoint from before they were recorded
        if not planned or planned[-1] != int(settings["epochs"]):  # an extended run: its schedule changed midway
            planned.append(int(settings["epochs"]))
        if ema is not None:
            ema.updates = state["epoch"] * int(settings["steps_per_epoch"])
        log.info("resuming after epoch %d", state["epoch"])

    def validate(record: dict) -> None:
        nonlocal best_state
        record.update(_summaries(_validation_scores(validator, val_cases, labels)))
        if not blind and record["val_mean_dice"] is not None and record["val_mean_dice"] > state["best_dice"]:
            state["best_dice"] = record["val_mean_dice"]
            state["best_epoch"] = record["epoch"]
            best_state = {k: v.detach().cpu().clone() for k, v in shipped.state_dict().items()}

    started = time.perf_counter() - sum(h.get("seconds", 0.0) for h in state["history"])
    cpu_started = time.process_time() - sum(h.get("cpu_seconds", 0.0) for h in state["history"])
    for epoch in range(state["epoch"], int(settings["epochs"])):
        clock = time.perf_counter()
        cpu_clock = time.process_time()
        torch.manual_seed(seed + epoch)
        rng = np.random.default_rng(seed + epoch)
        augment = SliceAugment(patch, settings["augment"], seed + epoch)
        lr = learning_rate(settings, epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        try:
            # fp32 as the history records it: no TF32 in the forward or the backward pass (an Ampere or later GPU
            # runs float32 convolutions as TF32, a 10-bit mantissa, by torch's default), as inference's fp32
            with without_tf32() if precision == "fp32" else contextlib.nullcontext():
                losses = _train_epoch(net, optimizer, loss_fn, autocast, augment, sampler, views, rng, settings,
                                      context, device, ema, epoch)
        except TrainingError as error:  # a loss gone non-finite: named with the run it stopped
            raise TrainingError(f"{out_dir}: {error}") from error
        except (RuntimeError, MemoryError) as error:
            if is_out_of_memory(error):  # a GPU shared with other jobs, or a batch too large for it: one line
                raise TrainingError(_out_of_memory_text(out_dir, device, settings, patch, state["epoch"])) from None
            # torch's CPU allocator: "can't allocate memory"
            if not isinstance(error, MemoryError) and "can't allocate memory" not in str(error):
                raise
            raise TrainingError(_out_of_memory_text(out_dir, device, settings, patch, state["epoch"],
                                                    config["architecture"], precision)) from None
        record = {"epoch": epoch + 1, "lr": lr, "loss": float(np.mean(losses)),
                  "torch_threads": torch.get_num_threads(), "device": device, "precision": precision,
                  **_medseg_version()}  # a run resumed after an upgrade trained its epochs under two medsegs
        if val_cases and ((epoch + 1) % int(settings["val_every"]) == 0 or epoch + 1 == int(settings["epochs"])):
            validate(record)
        elif not val_cases:
            best_state = {k: v.detach().cpu().clone() for k, v in shipped.state_dict().items()}
            state["best_epoch"] = epoch + 1
        record["seconds"] = time.perf_counter() - clock
        record["cpu_seconds"] = time.process_time() - cpu_clock
        state["history"].append(record)
        state["epoch"] = epoch + 1
        try:
            save_checkpoint(out_dir, net, best_state, optimizer, state, None if ema is None else ema.net)
        except OSError as error:
            if epoch == 0:  # the first checkpoint: no folder of a run that saved nothing is left
                remove_empty_folders(made_here)
            resumable = (f"; the checkpoint after epoch {epoch} is kept: run {same_run_with('resume')} once it "
                         "can be written" if epoch else "")
            raise TrainingError(f"{out_dir / CHECKPOINT_DIR}: cannot write the checkpoint "
                                f"({os_reason(error)}){resumable}") from error
        if on_epoch is not None:
            on_epoch(record)

    if val_cases and state["history"] and "val_dice" not in state["history"][-1]:
        # resumed at an epoch that was not validated, with no more epochs to run: the last epoch is validated
        # as an uninterrupted run's would be
        validate(state["history"][-1])
        save_checkpoint(out_dir, net, best_state, optimizer, state, None if ema is None else ema.net)
        if on_epoch is not None:  # shown like any validated epoch (it was only in the record)
            on_epoch(state["history"][-1])
    net = shipped
    if best_state is None:  # validated, but no label could be scored in any case: ship the last epoch
        state["best_epoch"] = state["epoch"]
    else:
        net.load_state_dict(best_state)
    net.eval()
    best = next((h for h in state["history"] if h["epoch"] == state["best_epoch"]), state["history"][-1])
    scored_on = "model space"
    if val_cases and config["preprocessing"].get("spacing_mm") and best.get("val_dice") is not None:
        # a resampling package: the recorded figures are the shipped weights scored on the volumes' own grids
        best = {**best, **_summaries(_input_grid_scores(validator, val_cases, labels))}
        scored_on = "input grid"
    extents = [c.extent_mm for c in [*train_cases, *val_cases] if c.extent_mm is not None]
    if extents:  # what inputs the model has seen; `medseg infer` flags inputs far outside it
        package_config["input_extent_mm"] = extent_range(extents)
    cases_read = [*train_cases, *val_cases]
    intensities = [c.intensity_p1_p99 for c in cases_read if c.intensity_p1_p99 is not None]
    if intensities and len(intensities) == len(cases_read) and all(np.all(np.isfinite(p)) for p in intensities):
        # the training images' intensities as read: `medseg infer` flags an image of another kind (a CT given to an
        # MR model); a multi-channel set records none, and its inputs' intensities are unknown
        package_config["input_intensity"] = intensity_range(intensities)
    training_images = {}
    image_hashes = [c.sha256[0] for c in train_cases if c.sha256 is not None]
    if train_cases and len(image_hashes) == len(train_cases):  # a partial list would call some "new"
        # the training images by content: `medseg infer` and the report tell a training image from a new one
        training_images = {"train_images_sha256": sorted(set(image_hashes))}
    # every case's image and label by content (training and validation): the labels and the held-out cases shape the
    # weights and the figures as much as the training images, and a file re-drawn at the same path is not the one used
    data_record = {"data_sha256": data_hashes([*train_cases, *val_cases])} if [*train_cases, *val_cases] and all(
        c.sha256 is not None for c in [*train_cases, *val_cases]) else {}
    # label files that are boxes of their image's grid (3D Slicer's cropped segmentations), zero-padded onto it, or
    # that reached past it, cropped to it
    boxed = label_box_record([*train_cases, *val_cases])
    package_config["training"] = {
        "settings": settings,
        "train_cases": len(train_cases),
        "train_case_ids": [c.case_id for c in train_cases],
        **training_images,
        **data_record,
        **boxed,
        "val_cases": [c.case_id for c in val_cases],
        "val_split": val_split,
        "best_epoch": state["best_epoch"],
        "val_dice": best.get("val_dice"),
        "val_dice_median": best.get("val_dice_median"),
        "val_dice_min": best.get("val_dice_min"),
        "val_mean_dice": best.get("val_mean_dice"),
        "val_labels_absent": val_absent,
        # labels the network never saw: no segmentation can be expected to hold them (the QA report's empty_prediction)
        "train_labels_absent": train_absent,
        "val_scored_on": scored_on,
        "epochs_run": state["epoch"],
        # more than one entry: resumed with another --epochs, so the schedule changed midway and a fresh run of the
        # final settings would not reproduce these weights
        "epochs_planned": state.get("epochs_planned") or [int(settings["epochs"])],
        # each epoch's mean loss and learning rate (and mean validation Dice where validated), which the checkpoint
        # alone held: a run again with the same seed, threads and versions compares its losses with these, to the bit
        "history": [{"epoch": h["epoch"], "lr": h["lr"], "loss": h["loss"],
                     **({"val_mean_dice": h["val_mean_dice"]} if "val_mean_dice" in h else {})}
                    for h in state["history"] if {"epoch", "lr", "loss"} <= set(h)],
        "train_seconds": round(time.perf_counter() - started, 1),
        "train_cpu_seconds": round(time.process_time() - cpu_started, 1),
        # the threads of the last epoch trained: a package made again without training (--resume after it was
        # deleted) keeps the training's, as `sessions` does
        "torch_threads": state["history"][-1].get("torch_threads") if state["history"] else torch.get_num_threads(),
        "device": state["history"][-1].get("device") if state["history"] else device,
        "precision": state["history"][-1].get("precision") if state["history"] else precision,
        # a resumed run's epochs may have run with other threads or on another device (the weights depend on both)
        "sessions": _sessions(state["history"]),
        "torch": torch.__version__,
        # the random augmentation is MONAI's transforms, its draws numpy's and torch's: another release may draw
        # other values from the same seed, and so train other weights
        "monai": _monai_version(),
        "numpy": np.__version__,
        # the medseg whose preprocessing, slicing and inference made the validation figures (and a checkout's commit:
        # the version is one for every commit between releases)
        **_medseg_version(),
        **_medseg_sessions(state["history"]),
        "data": config.get("training", {}).get("data", {}),
        "trained_with": trained_with(package_config),  # a hand edit of these is told where the package loads
    }
    package_config.pop("weights")
    remove_leftovers(out_dir)  # of a package write killed outright (the run holds the folder)
    try:
        try:
            # the card made from the config as written: with its weights' SHA-256
            package = save_package(net, package_config, out_dir, extra_files={"MODEL_CARD.md": model_card})
        except KeyboardInterrupt as stop:  # a stop held while the package was placed: it is whole, and recorded so
            if any(path.name == CONFIG_NAME for path in placed_before_stop(stop)):
                # read back as written: loading it would warn of the run as unfinished, which it records done
                placed = json.loads((out_dir / CONFIG_NAME).read_text())
                record_package(out_dir, state, placed["weights"]["sha256"])
            raise
        record_package(out_dir, state, package.sha256)
    except OSError as error:
        # the last epoch's checkpoint was saved before the package: a resume writes the package without training
        raise TrainingError(f"{out_dir}: cannot write the model package ({os_reason(error)}); the checkpoint "
                            f"after epoch {state['epoch']} is kept: run {same_run_with('resume')} once it can be "
                            "written (it writes the package without training again)") from error
    return package


def _monai_version() -> str:
    import monai

    return monai.__version__


def _medseg_version() -> dict[str, str]:
    """``{"medseg": version, "medseg_commit": commit}`` for the training record (no commit for an installed copy)."""
    import medseg
    from medseg.checkout import source_commit

    commit = source_commit()
    return {"medseg": medseg.__version__, **({"medseg_commit": commit} if commit else {})}


def _medseg_sessions(history: list[dict]) -> dict[str, list[dict]]:
    """``{"medseg_sessions": [...]}``, runs of consecutive epochs trained by one medseg (version and commit; None: a
    checkpoint from before they were recorded), where any epoch was trained by another medseg than the one writing
    the package (a run resumed after an upgrade, a package written again by --resume); else empty."""
    keys = ("medseg", "medseg_commit")
    now = _medseg_version()
    out: list[dict] = []
    for record in history:
        who = {key: record.get(key) for key in keys}
        if out and {key: out[-1][key] for key in keys} == who:
            out[-1]["epochs"][1] = record["epoch"]
        else:
            out.append({"epochs": [record["epoch"], record["epoch"]], **who})
    if all({key: run[key] for key in keys} == {key: now.get(key) for key in keys} for run in out):
        return {}
    return {"medseg_sessions": out}


def _out_of_memory_text(out_dir: Path, device: str, settings: dict, patch, epochs_done: int,
                        architecture: dict | None = None, precision: str = "fp32") -> str:
    """The one line for a training step that ran out of memory (the GPU's, or with ``architecture`` the CPU's):
    what it held, and the ways on (the batch is the recipe's, so it is not changed behind the user's back, as
    inference does with its tiles)."""
    size = "×".join(map(str, patch))
    again = (f"; {setting('resume')} goes on after epoch {epochs_done}" if epochs_done else "")
    if architecture is not None:
        from medseg.step_memory import training_step_bytes

        needed = training_step_bytes(architecture, int(settings["batch_size"]), patch, precision)
        return (f"{out_dir}: out of memory in a training step of {settings['batch_size']} {size} patches (about "
                f"{gib_text(needed)} with a U-Net of width {architecture['base_width']} and depth "
                f"{architecture['depth']}); lower training.batch_size, training.patch_size or architecture.base_width, "
                f"or free memory{again}")
    from medseg.device import gpu_free_text

    free = gpu_free_text(device)
    return (f"{out_dir}: out of GPU memory on {device} in a training step of {settings['batch_size']} {size} "
            f"patches{free}; lower training.batch_size or training.patch_size, free GPU memory (other processes may "
            f"hold it), or train on the CPU ({setting('device', 'cpu')}){again}")


@contextlib.contextmanager
def _room_for(out_dir: Path, device: str, what: str, kept: bool = False):
    """Out of GPU memory while ``what`` is placed on ``device``, before any step (a GPU that other processes fill):
    one line, not torch's traceback (``kept``: the checkpoint being resumed is left as it is)."""
    try:
        yield
    except Exception as error:
        if not is_out_of_memory(error):
            raise
        from medseg.device import gpu_free_text

        again = f"; the checkpoint is kept: run {same_run_with('resume')} once there is room" if kept else ""
        raise TrainingError(f"{out_dir}: out of GPU memory on {device} placing {what} on it{gpu_free_text(device)}; "
                            "free GPU memory (other processes may hold it), or train on the CPU "
                            f"({setting('device', 'cpu')}){again}") from None


def _training_autocast(precision: str, device: str) -> Callable:
    """A context factory for the forward pass: bf16 autocast (weights and loss stay float32) or nothing.

    ``precision`` was checked by :func:`~medseg.train_config.check_config`.
    """
    if precision == "bf16":
        return lambda: torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext


def _warn_if_larger_than_planes(patch: tuple[int, ...], tile: tuple[int, ...], cases: list[TrainCase],
                                axes: list[int], depth: int) -> None:
    """Warn when the training patch or the inference tile is larger, on both sides, than every plane of the cases
    (in model space, along every slicing axis) needs (:func:`~medseg.train_config.tile_side`, as the default
    config's tiles are sized): each patch or tile is then mostly padding, which costs compute in every step and
    every inference and teaches nothing."""
    step = 2 ** depth
    largest = [0, 0]
    for case in cases:
        if case.label is None:
            continue
        for axis in axes:
            plane = [side for a, side in enumerate(case.label.shape) if a != axis]
            largest = [max(largest[k], plane[k]) for k in range(2)]
    if not all(largest):
        return
    fits = [tile_side(side, step) for side in largest]
    sizes = ([("training.patch_size and inference.roi_size", "each patch and tile", patch)] if patch == tile else
             [("training.patch_size", "each patch", patch), ("inference.roi_size", "each tile", tile)])
    for what, each, size in sizes:
        if all(size[k] > fits[k] for k in range(2)):
            warning(log, "%s %s: larger than every plane of the cases (at most %d × %d voxels in model space), so %s "
                        "is mostly padding, about %.1f× the compute of %s, which holds every plane", what,
                        list(size), *largest, each, size[0] * size[1] / (fits[0] * fits[1]), fits)


def learning_rate(settings: dict, epoch: int) -> float:
    """The learning rate of ``epoch`` (0-based) under the training settings' schedule.

    ``warmup_epochs`` ramp up linearly to ``learning_rate``; after them ``schedule`` decays it over the remaining
    epochs: ``cosine`` or ``poly`` (exponent 0.9), both towards zero one epoch past the last, or ``constant``.
    """
    base = float(settings["learning_rate"])
    epochs = int(settings["epochs"])
    warmup = int(settings.get("warmup_epochs", 0))
    if epoch < warmup:
        return base * (epoch + 1) / (warmup + 1)
    schedule = settings.get("schedule", "cosine")
    progress = (epoch - warmup) / max(1, epochs - warmup)
    if schedule == "constant":
        return base
    if schedule == "poly":
        return base * (1 - progress) ** 0.9
    if schedule == "cosine":
        return base * 0.5 * (1 + math.cos(math.pi * progress))
    raise TrainingError(f"unknown learning-rate schedule {schedule!r} (cosine, poly or constant)")


class _SliceSampler:
    """Draws (case, axis, slice) triples over the slicing axes, preferring slices with foreground."""

    def __init__(self, cases: list[TrainCase], axes: list[int], foreground_fraction: float) -> None:
        self.cases = cases
        self.fraction = foreground_fraction
        self.all, self.foreground = [], []
        for c, case in enumerate(cases):
            for axis in axes:
                labelled = torch.movedim(case.label, axis, 0).flatten(1).any(1).tolist()
                for s, has in enumerate(labelled):
                    self.all.append((c, axis, s))
                    if has:
                        self.foreground.append((c, axis, s))

    def draw(self, rng: np.random.Generator, n: int) -> list[tuple[int, int, int]]:
        picks = []
        for _ in range(n):
            pool = self.foreground if self.foreground and rng.random() < self.fraction else self.all
            picks.append(pool[int(rng.integers(len(pool)))])
        return picks


class _EMA:
    """An exponential moving average of a network's weights and batch-norm statistics, updated per step.

    The decay ramps up as ``(1 + n) / (10 + n)`` over the first updates so the random initial weights do not
    linger in the average.
    """

    def __init__(self, net: torch.nn.Module, decay: float) -> None:
        self.net = copy.deepcopy(net)
        self.net.eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.decay = decay
        self.updates = 0

    @torch.no_grad()
    def update(self, net: torch.nn.Module) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for ours, theirs in zip(self.net.state_dict().values(), net.state_dict().values()):
            if ours.is_floating_point():
                ours.lerp_(theirs, 1.0 - decay)
            else:  # e.g. batch norm's step counter
                ours.copy_(theirs)


def _train_epoch(net, optimizer, loss_fn, autocast, augment, sampler, views, rng, settings, context, device,
                 ema=None, epoch: int = 0):
    """One epoch of steps; returns the losses. MONAI metadata tracking is off meanwhile (2.5x faster transforms)."""
    from monai.data import get_track_meta, set_track_meta

    tracking = get_track_meta()
    set_track_meta(False)
    torch.set_flush_denormal(True)  # denormal floats in late-training gradients slow CPU arithmetic
    try:
        net.train()
        losses: list[float] = []
        for _ in range(int(settings["steps_per_epoch"])):
            stopping.check()  # a Ctrl-C or SIGTERM whose exception a callback swallowed
            slices, slice_labels = [], []
            for c, axis, s in sampler.draw(rng, int(settings["batch_size"])):
                image, label = views[c, axis]
                slices.append(context_stack(image, s, s + 1, context)[..., 0])
                slice_labels.append(label[..., s])
            images, targets = augment(slices, slice_labels, rng)
            images, targets = images.to(device), targets.to(device)
            optimizer.zero_grad(set_to_none=True)
            with autocast():
                logits = net(images)
            loss = loss_fn(logits.float(), targets)
            if not bool(torch.isfinite(loss)):
                kept = ("the checkpoint of the last finished epoch is kept" if epoch else "no epoch finished, "
                        "nothing was written")
                raise TrainingError(f"the loss became {float(loss.detach())} at step {len(losses) + 1} of epoch "
                                    f"{epoch + 1}; lower training.learning_rate or check the images' intensities "
                                    f"({kept})")
            loss.backward()
            optimizer.step()
            if ema is not None:
                ema.update(net)
            losses.append(float(loss.detach()))
        return losses
    finally:
        set_track_meta(tracking)
        torch.set_flush_denormal(False)  # torch's default (it has no getter to restore from)


def _sessions(history: list[dict]) -> list[dict]:
    """Runs of consecutive epochs with the same torch threads, device and precision (None: a checkpoint from before
    they were recorded)."""
    keys = ("torch_threads", "device", "precision")
    out: list[dict] = []
    for record in history:
        how = {key: record.get(key) for key in keys}
        if out and {key: out[-1][key] for key in keys} == how:
            out[-1]["epochs"][1] = record["epoch"]
        else:
            out.append({"epochs": [record["epoch"], record["epoch"]], **how})
    return out


def _summaries(scores: dict[int, list[float]]) -> dict:
    """Mean, median and minimum Dice per label, and the mean over labels; a label without figures is None, not
    NaN (valid JSON)."""
    per_label = {k: (float(np.mean(v)) if v else None) for k, v in scores.items()}
    scored = [v for v in per_label.values() if v is not None]
    return {
        "val_dice": {str(k): v for k, v in per_label.items()},
        "val_dice_median": {str(k): (float(np.median(v)) if v else None) for k, v in scores.items()},
        "val_dice_min": {str(k): (float(np.min(v)) if v else None) for k, v in scores.items()},
        "val_mean_dice": float(np.mean(scored)) if scored else None,
    }


def _input_grid_scores(segmenter: Segmenter, cases: list[TrainCase], labels: list[int]) -> dict[int, list[float]]:
    """As :func:`_validation_scores`, but each validation volume read from its file, segmented and mapped back onto
    its own grid as ``medseg infer`` does, and scored against its label file: what a user of a resampling package
    gets (model-space scores compare against a resampled label)."""
    from medseg.grid_match import place_onto_grid
    from medseg.io.nifti import read_nifti
    from medseg.preprocess import build_transforms, invert_labels, to_model_space
    from medseg.training_cases import read_case_image

    channels = segmenter.package.n_modalities
    transforms = build_transforms(segmenter.package.preprocessing, channels=channels)
    segmenter.net.eval()
    scores: dict[int, list[float]] = {v: [] for v in labels if v != 0}
    for case in cases:
        volume = read_case_image(case, segmenter.package.modalities or 1, hash_input=False)
        # placed as loading placed it: re-indexed, or a box of the image's grid zero-padded onto it
        reference = place_onto_grid(read_nifti(case.label_path, hash_input=False, labels=True), volume,
                                    log_box=False).array
        data = to_model_space(volume, transforms, release_voxels=True)  # read here: no copy kept
        predicted = segmenter.package.label_map.to_values(invert_labels(
            segmenter.predict(data["image"].as_tensor()), data, transforms, volume.shape, volume.source))
        for value, dice in dice_per_label(predicted, reference, list(scores)).items():
            if not math.isnan(dice):
                scores[value].append(dice)
    return scores


def _validation_scores(segmenter: Segmenter, cases: list[TrainCase], labels: list[int]) -> dict[int, list[float]]:
    """Per-case Dice per foreground label over whole validation volumes, under medseg's empty-mask policy (as
    ``medseg evaluate`` and ``benchmarks/evaluate_model.py`` score them): a case where both are empty has no figure,
    one where only the prediction holds the label scores 0 (false positives)."""
    segmenter.net.eval()
    scores: dict[int, list[float]] = {v: [] for v in labels if v != 0}
    for case in cases:
        pred = segmenter.predict(case.image).numpy()
        reference = case.label.numpy()  # class indices, as the prediction: scored by class, told by value
        classes = segmenter.package.label_map.classes_of(scores)
        for value, dice in zip(scores, dice_per_label(pred, reference, classes).values()):
            if not math.isnan(dice):
                scores[value].append(dice)
    segmenter.net.train()
    return scores


def dice_per_label(pred: np.ndarray, ref: np.ndarray, labels: list[int]) -> dict[int, float]:
    """Dice of each label value between two label arrays of one shape; NaN where the label is in neither."""
    out = {}
    for value in labels:
        p, r = pred == value, ref == value
        denom = int(p.sum()) + int(r.sum())
        out[value] = float("nan") if denom == 0 else 2.0 * int(np.logical_and(p, r).sum()) / denom
    return out
