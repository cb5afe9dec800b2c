"""Multi-modal models (medseg.io.channels and the paths that use it): a package that declares its modalities, trained
on 4D NIfTI images or nnU-Net's channel files, run on a 4D file; the inputs of another channel count refused."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from conftest import tiny_config

from medseg.errors import GeometryError, ModelPackageError, TrainingError
from medseg.package import load_package, validate_config
from medseg.synthetic import make_phantom
from medseg.training_cases import load_cases, pair_cases

SHAPE = (32, 32, 12)
MODALITIES = ["t1", "t2"]


def two_modalities(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A phantom's image as modality 0, a flipped, shifted and scaled copy as modality 1 (another intensity range:
    each is normalised on its own), its labels and its affine."""
    phantom = make_phantom(shape=SHAPE, seed=seed, oblique=False)
    second = 1000.0 + 300.0 * phantom.image[::-1] + np.random.default_rng(seed).normal(0, 5, SHAPE)
    return np.stack([phantom.image, second.astype(np.float32)], axis=-1), phantom.labels, phantom.affine


def write_modal_set(folder: Path, layout: str, count: int = 4) -> tuple[Path, Path]:
    """``count`` cases of two modalities: ``4d`` as images/case<N>.nii.gz (X, Y, Z, 2), ``nnunet`` as
    images/case<N>_0000.nii.gz and case<N>_0001.nii.gz; labels/case<N>.nii.gz."""
    images, labels = folder / "images", folder / "labels"
    images.mkdir(parents=True)
    labels.mkdir(parents=True)
    for seed in range(count):
        image, label, affine = two_modalities(seed)
        if layout == "4d":
            nib.save(nib.Nifti1Image(image, affine), images / f"case{seed}.nii.gz")
        else:
            for channel in range(image.shape[-1]):
                nib.save(nib.Nifti1Image(image[..., channel], affine), images / f"case{seed}_{channel:04d}.nii.gz")
        nib.save(nib.Nifti1Image(label.astype(np.uint8), affine), labels / f"case{seed}.nii.gz")
    return images, labels


def modal_config(**training) -> dict:
    """A tiny 2.5D config of two modalities: 2 × 3 input channels."""
    settings = {"epochs": 2, "steps_per_epoch": 3, "batch_size": 4, "learning_rate": 0.01, "warmup_epochs": 1,
                "val_fraction": 0.25, "split_seed": 0, "seed": 3, **training}
    config = tiny_config(training=settings, modalities=list(MODALITIES))
    config["architecture"]["in_channels"] = 6
    config["inference"]["context_slices"] = 1
    return config


@pytest.fixture(scope="module")
def modal_sets(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    root = tmp_path_factory.mktemp("modal_sets")
    return {layout: write_modal_set(root / layout, layout) for layout in ("4d", "nnunet")}


@pytest.fixture(scope="module")
def modal_package(modal_sets, tmp_path_factory) -> Path:
    """`medseg train` of two epochs on the 4D set, with a config that declares the modalities."""
    from medseg.cli import main

    folder = tmp_path_factory.mktemp("modal_package")
    config = folder / "config.json"
    config.write_text(json.dumps(modal_config()))
    images, labels = modal_sets["4d"]
    torch.set_num_threads(1)
    with pytest.raises(SystemExit) as info:
        main(["train", "--images", str(images), "--labels", str(labels), "-c", str(config), "-o",
              str(folder / "model"), "--threads", "1", "--device", "cpu"])
    assert info.value.code == 0
    return folder / "model"


def test_both_layouts_give_the_same_model_space_images_each_modality_normalised_alone(modal_sets):
    """A 4D image and nnU-Net's channel files of the same voxels are the same case: the same model-space tensors, each
    channel z-scored on its own (modality 1's range of about 1000 is not modality 0's)."""
    loaded = {layout: load_cases(pair_cases(*modal_sets[layout]), modal_config()) for layout in modal_sets}
    four, files = loaded["4d"], loaded["nnunet"]
    assert [case.case_id for case in four] == [case.case_id for case in files] == ["case0", "case1", "case2", "case3"]
    for a, b in zip(four, files):
        assert a.image.shape == (2, *a.label.shape) and torch.equal(a.label, b.label)  # RAS: axes turned
        assert torch.allclose(a.image, b.image, atol=1e-6)
        for channel in a.image:
            assert abs(float(channel.mean())) < 1e-4 and abs(float(channel.std(unbiased=False)) - 1) < 1e-3
    assert [path.name for path in files[0].channel_paths] == ["case0_0000.nii.gz", "case0_0001.nii.gz"]


def test_two_epochs_give_a_package_of_the_modalities(modal_package):
    """`medseg train` of two epochs on 4D images gives a loadable package that declares the modalities, and records
    the training images by the hashes of their files."""
    package = load_package(modal_package)
    assert package.modalities == MODALITIES and package.n_modalities == 2
    assert package.config["architecture"]["in_channels"] == 6 and package.config["training"]["settings"]["epochs"] == 2
    assert len(package.config["training"]["train_images_sha256"]) == 3


def test_training_refuses_cases_of_mismatched_channels(modal_sets, tmp_path):
    """A case of other channels than the rest, a missing channel file, a channel file on another grid, and a config
    whose modalities are not the images': each one line naming the file."""
    images, labels = write_modal_set(tmp_path / "mixed", "4d", count=3)
    image, _, affine = two_modalities(1)
    nib.save(nib.Nifti1Image(np.concatenate([image, image[..., :1]], axis=-1), affine), images / "case1.nii.gz")
    with pytest.raises(TrainingError) as info:
        load_cases(pair_cases(images, labels), modal_config())
    assert str(info.value) == (f"{images / 'case1.nii.gz'}: 3 channels, where {images / 'case0.nii.gz'} has 2 "
                               "channels; every case needs the same modalities, in the same order")
    nib.save(nib.Nifti1Image(image, affine), images / "case1.nii.gz")
    one = tiny_config(training=modal_config()["training"])
    with pytest.raises(TrainingError) as info:
        load_cases(pair_cases(images, labels), one, "cfg.json")
    assert str(info.value) == (
        f"{images / 'case0.nii.gz'}: 2 channels (modalities), but cfg.json declares none (one image a case); declare "
        "them, as \"modalities\": [channel0, channel1] with in_channels = 2 × (2 × context_slices + 1), or train "
        "without -c")

    files, file_labels = write_modal_set(tmp_path / "files", "nnunet", count=3)
    (files / "case2_0001.nii.gz").unlink()
    with pytest.raises(TrainingError) as info:
        pair_cases(files, file_labels)
    assert str(info.value) == (f"{files / 'case2_0001.nii.gz'}: not there, where case 'case0' has 2 channel files "
                               "(_0000 … _0001); every case needs one file per input channel (modality), numbered "
                               "alike")
    moved = np.eye(4)
    moved[:3, 3] = 5.0
    first = nib.load(files / "case2_0000.nii.gz")
    nib.save(nib.Nifti1Image(image[..., 1], moved @ first.affine), files / "case2_0001.nii.gz")
    with pytest.raises(TrainingError, match=r"case2_0001\.nii\.gz: channel 1 \(t2\) lies on another grid than "
                                            r"case2_0000\.nii\.gz \(channel 0\): its voxels are placed up to 8\.66 mm "
                                            "apart"):
        load_cases(pair_cases(files, file_labels), modal_config())


def test_a_package_checks_in_channels_against_its_modalities(tmp_path):
    """in_channels must be modalities × (2 × context_slices + 1): one line naming the config; the shipped models
    declare no modalities and segment as before (their settings hash is the one recorded before modalities)."""
    config = modal_config()
    config.pop("training")
    config["weights"] = {"file": "weights.safetensors", "sha256": "0" * 64}
    validate_config(config, "m/model.json")
    config["architecture"]["in_channels"] = 3
    with pytest.raises(ModelPackageError) as info:
        validate_config(config, "m/model.json")
    assert str(info.value) == ("m/model.json: in_channels=3 does not match 2 modalities (t1, t2) with "
                               "context_slices=1 (expected 2 × 3 = 6)")
    config["architecture"]["in_channels"] = 6
    config["modalities"] = ["t1", "t1"]
    with pytest.raises(ModelPackageError, match="invalid model config at modalities"):
        validate_config(config, "m/model.json")
    hippocampus = load_package("hippocampus")
    assert hippocampus.modalities is None and hippocampus.n_modalities == 1
    assert hippocampus.settings_sha256 == "a87e25e9158114c4f4320d584cd729026115ac5fc7c1dda589f4f46b695b46c6"


def test_channel_files_on_another_grid_are_a_geometry_error(tmp_path):
    from medseg.io.channels import read_channel_files

    image, _, affine = two_modalities(0)
    nib.save(nib.Nifti1Image(image[..., 0], affine), tmp_path / "a_0000.nii.gz")
    nib.save(nib.Nifti1Image(image[:, :, :10, 1], affine), tmp_path / "a_0001.nii.gz")
    with pytest.raises(GeometryError) as info:
        read_channel_files([tmp_path / "a_0000.nii.gz", tmp_path / "a_0001.nii.gz"], names=MODALITIES)
    assert str(info.value) == (f"{tmp_path / 'a_0001.nii.gz'}: channel 1 (t2) has 32×32×10 voxels, where "
                               "a_0000.nii.gz (channel 0) has 32×32×12; a case's channels must lie on one grid "
                               "(register and resample them onto one first)")
