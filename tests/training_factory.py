"""Synthetic training sets, training configs and runs shared by the training tests (medseg.train and the modules
it uses, and `medseg train`)."""

from __future__ import annotations

import contextlib
import copy
import json
import re
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from conftest import tiny_config
from safetensors.torch import load_file

from medseg.synthetic import write_phantom
from medseg.train import train
from medseg.training_cases import TrainCase, load_cases, pair_cases

SHAPE = (32, 32, 12)


def tiny_training_config(**training) -> dict:
    """A 2.5D config small enough to train two epochs in about a second."""
    settings = {
        "epochs": 2, "steps_per_epoch": 3, "batch_size": 4, "learning_rate": 0.01, "schedule": "cosine",
        "warmup_epochs": 1, "val_fraction": 0.34, "split_seed": 0, "seed": 3,
        "augment": {"rotate_deg": 10, "scale": 0.1, "flip_axes": [0], "noise_std": 0.05, "prob": 0.8},
        "data": {"description": "medseg.synthetic phantoms", "licence": "generated"},
    }
    settings.update(training)
    config = tiny_config(training=settings)
    config["architecture"]["in_channels"] = 3
    config["inference"].update(context_slices=1, flip_tta=[0])
    return config


def checkpoint_tensors(out: Path) -> Path:
    """The checkpoint's tensors file, as its record names it (``last-<sha256 prefix>.safetensors``)."""
    named = out / ".checkpoint" / json.loads((out / ".checkpoint" / "last.json").read_text())["weights_file"]
    assert named.is_file() and re.fullmatch(r"last-[0-9a-f]{16}\.safetensors", named.name)
    return named


def write_set(folder: Path, count: int = 6, label_suffix: str = "") -> tuple[Path, Path]:
    for seed in range(count):
        write_phantom(folder / "images" / f"case{seed}.nii.gz", folder / "labels" / f"case{seed}{label_suffix}.nii.gz",
                      shape=SHAPE, seed=seed, oblique=False)
    return folder / "images", folder / "labels"


def run(config: dict, images: Path, labels: Path, out: Path, **kwargs):
    torch.set_num_threads(1)  # bit-identical results need the same reduction order in every run
    cases = load_cases(pair_cases(images, labels), config)
    return train(copy.deepcopy(config), cases, out, **kwargs)


def run_stopped_after_first_epoch(config: dict, images: Path, labels: Path, out: Path) -> None:
    """A training run killed once its first epoch's checkpoint is written."""
    class Killed(Exception):
        pass

    def kill_after_first(record: dict) -> None:
        if record["epoch"] == 1:
            raise Killed

    with pytest.raises(Killed):
        run(config, images, labels, out, on_epoch=kill_after_first)


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "weights.safetensors"))


def _case_holding(name: str, *values: int) -> TrainCase:
    """A case whose label tensor holds background and ``values`` (the presence check reads nothing else)."""
    label = torch.zeros(len(values) + 1, dtype=torch.uint8)
    label[1:] = torch.tensor(values, dtype=torch.uint8)
    return TrainCase(name, Path(f"{name}.nii.gz"), Path(f"{name}_seg.nii.gz"), label=label)


def _dataset_folder(tiny_set, folder: Path, labels) -> tuple[Path, Path]:
    """The tiny set as a Decathlon / nnU-Net dataset folder, with ``labels`` as its dataset.json's."""
    shutil.copytree(tiny_set[0], folder / "imagesTr")
    shutil.copytree(tiny_set[1], folder / "labelsTr")
    (folder / "dataset.json").write_text(json.dumps({
        "name": "Phantoms", "description": "Synthetic  shapes", "reference": "medseg.synthetic", "licence": "CC0",
        "modality": {"0": "MRI"}, "labels": labels}))
    return folder / "imagesTr", folder / "labelsTr"


def _write(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, np.eye(4)), str(path))


def _bad_set(tmp_path: Path, kind: str) -> tuple[Path, Path, str]:
    """A small folder pair with one defect; returns the folders and the file the message must name."""
    images, labels = tmp_path / "images", tmp_path / "labels"
    image = np.random.default_rng(0).normal(size=(16, 16, 6)).astype(np.float32)
    label = np.zeros((16, 16, 6), np.uint8)
    label[4:8, 4:8, 2:4] = 1
    _write(images / "a.nii.gz", image)
    _write(labels / "a.nii.gz", label)
    if kind == "no pairs":
        (labels / "a.nii.gz").rename(labels / "b.nii.gz")
        return images, labels, str(images)
    if kind == "unpaired":
        _write(images / "lonely.nii.gz", image)
        return images, labels, "lonely.nii.gz"
    if kind == "undeclared label":
        label[0, 0, 0] = 7
        _write(labels / "a.nii.gz", label)
        return images, labels, str(labels / "a.nii.gz")
    if kind == "fractional label":
        fractional = label.astype(np.float32)
        fractional[0, 0, 0] = 1.5
        _write(labels / "a.nii.gz", fractional)
        return images, labels, str(labels / "a.nii.gz")
    if kind == "shape mismatch":  # one slice more than its image, labelled there (a box of the grid is zero-padded,
        # one reaching past it cropped where its voxels out there are all 0)
        beyond = np.pad(label, ((0, 0), (0, 0), (0, 1)))
        beyond[4:6, 4:6, -1] = 1
        _write(labels / "a.nii.gz", beyond)
        return images, labels, str(labels / "a.nii.gz")
    if kind == "grid scaled":  # a label tool that rounded the spacing: voxels drift up to 0.03 mm over the grid
        nib.save(nib.Nifti1Image(label, np.diag([1.002, 1.0, 1.0, 1.0])), str(labels / "a.nii.gz"))
        return images, labels, str(labels / "a.nii.gz")
    if kind == "one folder for both":  # each image was its own label: "label values are not whole numbers"
        _write(images / "a_seg.nii.gz", label)
        return images, images, str(images)
    if kind == "overflowing intensities":  # finite as stored, infinite once normalised
        _write(images / "a.nii.gz", np.where(image > 0, 3e38, -3e38).astype(np.float32))
        return images, labels, str(images / "a.nii.gz")
    raise AssertionError(kind)


BAD = {
    "no pairs": ("no image has a label of the same name in {labels} (1 image, 1 label; e.g. image 'a', label 'b'; "
                 "a label may add _label, _labels, _seg, _mask, _gt to its image's name, an image nnU-Net's _0000)"),
    "unpaired": "1 file has no counterpart of the same name",
    "undeclared label": "label values [7] are not declared",
    "fractional label": "label values are not whole numbers, found 1.5",
    "shape mismatch": ("shape (16, 16, 7) differs from {images}'s (16, 16, 6): on its voxel lattice, but extends 1 "
                       "voxel beyond its last k, and 4 of its labelled voxels lie there, outside the grid; not "
                       "trained"),
    "grid scaled": "its affine places voxels up to 0.03 mm away from where",
    "one folder for both": ("given as both the images and the labels folder; put the label files in a folder of "
                            "their own"),
    "overflowing intensities": "preprocessing gave non-finite values (intensities up to 3e+38 overflow float32)",
}


_FEW_STEPS = ("--steps-per-epoch", "2")  # the runs of tests that check messages, not learning


def _train_cli(images: Path, labels: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--images", str(images), "--labels", str(labels), "-o", str(out), "--threads", "1", *extra]


def _exit_code(args: list[str]) -> int:
    from medseg.cli import main

    with pytest.raises(SystemExit) as info:
        main(args)
    return info.value.code


def _interrupted_in_second_epoch(args: list[str], monkeypatch, epoch: int = 2) -> int:
    """Run `medseg train` with a Ctrl-C during epoch 2 (after epoch 1's checkpoint), or during ``epoch``; returns the
    exit code."""
    import medseg.train as training

    torch.set_num_threads(1)
    real_epoch, calls = training._train_epoch, []

    def interrupted(*epoch_args, **kwargs):
        calls.append(1)
        if len(calls) == epoch:
            raise KeyboardInterrupt
        return real_epoch(*epoch_args, **kwargs)

    monkeypatch.setattr(training, "_train_epoch", interrupted)
    try:
        return _exit_code(args)
    finally:
        monkeypatch.setattr(training, "_train_epoch", real_epoch)


def _interrupted_copy(tiny_set, tmp_path, config_file, monkeypatch):
    """A copy of the tiny set and a CLI run on it interrupted in its second epoch: (images, labels, out, args)."""
    import shutil

    images, labels = tmp_path / "images", tmp_path / "labels"
    shutil.copytree(tiny_set[0], images)
    shutil.copytree(tiny_set[1], labels)
    out = tmp_path / "model"
    args = _train_cli(images, labels, out, "-c", str(config_file))
    assert _interrupted_in_second_epoch(args, monkeypatch) == 130
    return images, labels, out, args


@contextlib.contextmanager
def _caught_warnings(name):
    import logging

    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)
