"""Multi-modal models (medseg.io.channels and the paths that use it): a package that declares its modalities, trained
on 4D NIfTI images or nnU-Net's channel files, run on a 4D file; the inputs of another channel count refused."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from conftest import run_cli, tiny_config

from medseg.errors import GeometryError, InputError, ModelPackageError, TrainingError
from medseg.package import load_package
from medseg.package_config import validate_config
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


def test_a_trained_package_segments_a_4d_file_onto_its_grid(modal_package, modal_sets, tmp_path, capsys):
    """`medseg infer` of a 4D file writes a 3D segmentation on the input's grid (its spatial affine, shape and
    header), labels from the package, and a sidecar naming the modalities."""
    package = load_package(modal_package)
    trained = package.config["training"]["train_case_ids"]
    held_out = next(f"case{n}" for n in range(4) if f"case{n}" not in trained)  # the validation case
    source = modal_sets["4d"][0] / f"{held_out}.nii.gz"
    code, _, err = run_cli(["infer", str(source), "--model", str(modal_package), "-o", str(tmp_path), "--device",
                            "cpu"], capsys)
    assert code == 0, err
    written, image = nib.load(tmp_path / f"{held_out}_seg.nii.gz"), nib.load(source)
    assert image.shape == (*SHAPE, 2) and written.shape == SHAPE
    assert np.array_equal(written.affine, image.affine)
    assert int(written.header["dim"][0]) == 3 and written.get_data_dtype() == np.uint8
    assert set(np.unique(np.asarray(written.dataobj)).tolist()) <= {0, 1, 2, 3}
    sidecar = json.loads((tmp_path / f"{held_out}_seg.json").read_text())
    assert sidecar["shape"] == list(SHAPE) and sidecar["modalities"] == MODALITIES
    assert sidecar["in_training_set"] is False and len(trained) == 3


def test_nnunet_channel_files_are_found_beside_case_0000(modal_package, modal_sets, tmp_path, capsys):
    """`medseg infer case_0000.nii.gz` reads the case's other channel files beside it (the same labels as its 4D
    file); a further channel's file given alone is refused, naming the file to give; one missing is named."""
    folder = modal_sets["nnunet"][0]
    args = ["--model", str(modal_package), "-o", str(tmp_path), "--device", "cpu"]
    assert run_cli(["infer", str(folder / "case2_0000.nii.gz"), *args, "-o", str(tmp_path / "files")], capsys)[0] == 0
    assert run_cli(["infer", str(modal_sets["4d"][0] / "case2.nii.gz"), *args], capsys)[0] == 0
    from_files = np.asarray(nib.load(tmp_path / "files" / "case2_seg.nii.gz").dataobj)
    assert np.array_equal(from_files, np.asarray(nib.load(tmp_path / "case2_seg.nii.gz").dataobj))
    sidecar = json.loads((tmp_path / "files" / "case2_seg.json").read_text())
    assert sidecar["input_info"]["channel_files"] == ["case2_0000.nii.gz", "case2_0001.nii.gz"]
    code, _, err = run_cli(["infer", str(folder / "case2_0001.nii.gz"), *args], capsys)
    assert code == 1 and err.splitlines()[-1] == (
        f"medseg: error: {folder / 'case2_0001.nii.gz'}: channel 1 of case case2 (nnU-Net's channel files); give "
        f"{folder / 'case2_0000.nii.gz'}: the case's other channel files are read beside it")
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "x_0000.nii.gz").write_bytes((folder / "case1_0000.nii.gz").read_bytes())
    code, _, err = run_cli(["infer", str(alone / "x_0000.nii.gz"), *args], capsys)
    assert code == 1 and err.splitlines()[-1].startswith(
        f"medseg: error: {alone / 'x_0000.nii.gz'}: a 3D image (one modality) ({alone / 'x_0001.nii.gz'} is not "
        f"there), and model tiny takes 2 modalities (t1, t2); give a 4D NIfTI")
    assert not list(alone.glob("*_seg*"))


def test_inputs_of_another_channel_count_are_refused_in_one_line(modal_package, modal_sets, tmp_path, capsys):
    """A 3D image, a 4D image of three channels or a DICOM folder given to a model of two modalities: one line naming
    the file and the counts, exit code 1, nothing written; in a batch the other inputs are segmented."""
    from dicom_factory import make_series

    image, _, affine = two_modalities(7)
    three = tmp_path / "three.nii.gz"
    nib.save(nib.Nifti1Image(np.concatenate([image, image[..., :1]], axis=-1), affine), three)
    flat = tmp_path / "flat.nii.gz"
    nib.save(nib.Nifti1Image(image[..., 0], affine), flat)
    dicom = tmp_path / "series"
    make_series(dicom)  # a real series: an empty folder is refused as one before the model loads
    good = modal_sets["4d"][0] / "case1.nii.gz"
    out = tmp_path / "out"
    code, _, err = run_cli(["infer", str(three), str(flat), str(dicom), str(good), "--model", str(modal_package),
                            "-o", str(out), "--device", "cpu"], capsys)
    errors = [line for line in err.splitlines() if "error" in line]
    assert code == 1
    assert errors[0] == (f"medseg: error: {three}: 3 channels (32×32×12×3), and model tiny takes 2 modalities "
                         "(t1, t2); give a 4D image of those 2, in that order")
    assert errors[1].startswith(f"medseg: error: {flat}: a 3D image (one modality), and model tiny takes 2 "
                                "modalities (t1, t2); give a 4D NIfTI holding them on its last axis (X×Y×Z×2")
    assert errors[2].startswith(f"medseg: error: {dicom}: a DICOM series is one modality, and model tiny takes 2 "
                                "modalities (t1, t2)")
    # each refused input's failure record, for the report to list
    assert sorted(path.name for path in out.iterdir()) == ["case1_seg.json", "case1_seg.nii.gz", "flat_failed.json",
                                                           "series_failed.json", "three_failed.json"]
    # the DICOM folder's scan, made before the model loaded for its reading, is not kept once the folder is refused
    # unread (it stayed for the life of the process, and a later check of the kept scans found it)
    from medseg.io.dicom_series import _HELD, _held_key

    assert _held_key(dicom) not in _HELD


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
        'them, as "modalities": ["channel0", "channel1"] with in_channels = 2 × (2 × context_slices + 1), or train '
        "with the default config, which declares them (medseg.training_setup.default_training_config)")

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


def test_segment_volume_takes_an_array_of_the_modalities(modal_package):
    """The Python API: segment_volume of a (X, Y, Z, C) Volume gives (X, Y, Z) labels; a 3D array is refused."""
    from medseg.inference import Segmenter
    from medseg.segment import segment_volume
    from medseg.volume import Volume

    image, _, affine = two_modalities(3)
    segmenter = Segmenter(modal_package, device="cpu")
    labels = segment_volume(Volume(image, affine), segmenter)
    assert labels.shape == SHAPE and labels.dtype == np.uint8
    with pytest.raises(InputError, match=r"the volume: an array of shape \(32, 32, 12\); model tiny takes 2 modalities "
                                         r"\(t1, t2\): give them as one array \(X, Y, Z, 2\), in that order"):
        segment_volume(Volume(image[..., 0], affine), segmenter)


def test_a_folder_of_channel_files_given_whole_segments_each_case_once(modal_package, modal_sets, tmp_path, capsys):
    """`medseg infer imagesTs/*` of nnU-Net's layout for a multi-modal model: each case once, from its _0000 file;
    the further channel files are not inputs of their own (each was refused as one modality)."""
    folder = modal_sets["nnunet"][0]
    inputs = sorted(str(path) for path in folder.iterdir())
    code, _, err = run_cli(["infer", *inputs, "--model", str(modal_package), "-o", str(tmp_path), "--device", "cpu"],
                           capsys)
    assert code == 0, err
    assert ("note: 4 inputs are further channel files of a case given by its _0000 file (case0_0001.nii.gz of "
            "case0_0000.nii.gz): each case is read from its _0000 file, with its channel files beside it"
            in err.splitlines())
    assert sorted(path.name for path in tmp_path.glob("*.nii.gz")) == [f"case{n}_seg.nii.gz" for n in range(4)]


def test_a_case_of_channel_files_is_named_after_its_case_and_no_other_input_takes_its_name(modal_package, tmp_path,
                                                                                        capsys):
    """nnU-Net's case_0000 read with its channel files wrote case_0000_seg.nii.gz, named after the file given; it is
    named after its case, case_seg.nii.gz (sidecar's case_id case), as nnU-Net names its predictions. Another input
    that would write the same names (a 4D case.nii.gz given with it) is refused before anything is read or written,
    with --overwrite too."""
    folder, out = tmp_path / "imagesTs", tmp_path / "out"
    folder.mkdir()
    image, _, affine = two_modalities(1)
    for channel in range(2):
        nib.save(nib.Nifti1Image(image[..., channel], affine), folder / f"case_{channel:04d}.nii.gz")
    nib.save(nib.Nifti1Image(image, affine), folder / "case.nii.gz")
    args = ["--model", str(modal_package), "--device", "cpu"]
    code, out_text, err = run_cli(["infer", str(folder / "case_0000.nii.gz"), *args, "-o", str(out)], capsys)
    assert code == 0, err
    assert out_text.startswith(f"{folder / 'case_0000.nii.gz'} -> {out / 'case_seg.nii.gz'} (")
    assert sorted(path.name for path in out.iterdir()) == ["case_seg.json", "case_seg.nii.gz"]
    sidecar = json.loads((out / "case_seg.json").read_text())
    assert (sidecar["case_id"], sidecar["segmentation"]) == ("case", "case_seg.nii.gz")
    both = [str(folder / "case_0000.nii.gz"), str(folder / "case.nii.gz")]
    for where, extra in (([], []), (["-o", str(tmp_path / "two")], ["--overwrite"])):
        code, _, err = run_cli(["infer", *both, *args, *where, *extra], capsys)
        into = tmp_path / "two" if where else folder
        assert code == 2 and err.splitlines() == [
            f"medseg infer: error: {both[0]} and {both[1]} would both be written to case_seg.nii.gz in {into}; segment "
            "them into different folders (-o). Try 'medseg infer --help'."]
    assert not (tmp_path / "two").exists() and not (folder / "case_seg.nii.gz").exists()



def _segmented_and_reported(source: Path, package, tmp_path: Path, capsys) -> str:
    """``medseg infer`` of ``source`` into tmp_path/results, then ``medseg report`` of it into tmp_path/qa/ (both exit
    0); returns the page."""
    results = tmp_path / "results"
    assert run_cli(["infer", str(source), "--model", str(package), "-o", str(results), "--device", "cpu"],
                   capsys)[0] == 0
    code, _, err = run_cli(["report", str(results), "-o", str(tmp_path / "qa") + "/"], capsys)
    assert code == 0, err
    return (tmp_path / "qa" / "report.html").read_text()

def test_the_qa_report_draws_the_first_modality_and_says_so(modal_package, modal_sets, tmp_path, capsys):
    """A 4D input's segmentation is on its grid (no geometry flag for the 4D shape), and its overlay draws the first
    modality under the labels, said under the overlay."""
    page = _segmented_and_reported(modal_sets["4d"][0] / "case0.nii.gz", modal_package, tmp_path, capsys)
    assert "image: the first of the input&#x27;s 2 modalities (t1) is shown" in page
    assert "slices of the input with the predicted labels" in page
    assert "case0.nii.gz is not on the segmentation" not in page  # flagged so before (the shape of 4 axes)
    table = (tmp_path / "qa" / "cohort.tsv").read_text().splitlines()
    assert "geometry" not in table[1]


def test_the_card_and_medseg_models_name_the_modalities(modal_package, capsys):
    """The model card and `medseg models PKG` (and its --json) say which modalities a case gives, in order."""
    card = (modal_package / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert ("- Modalities: 2, in this order: t1, t2 (a case is a 4D NIfTI of them on its last axis, or nnU-Net's "
            "case_0000 … files; each normalised on its own)") in card.splitlines()
    code, out, _ = run_cli(["models", str(modal_package)], capsys)
    assert code == 0 and ("  modalities: t1, t2 (a case is a 4D NIfTI of them on its last axis, or nnU-Net's "
                          "case_0000 … files)") in out.splitlines()
    code, out, _ = run_cli(["models", "--json", str(modal_package), "hippocampus"], capsys)
    rows = json.loads(out)
    assert rows[0]["modalities"] == MODALITIES and "modalities" not in rows[1]  # the shipped ones: as before


def test_a_cohort_segments_4d_and_channel_file_cases_and_fails_a_3d_one_alone(modal_package, modal_sets, tmp_path,
                                                                                 capsys):
    """`medseg cohort infer` of a multi-modal model: a 4D case and a case of channel files are segmented on their
    grids, a 3D image's case fails in its own record (the counts named) and the others carry on."""
    four, files = modal_sets["4d"][0] / "case1.nii.gz", modal_sets["nnunet"][0] / "case1_0000.nii.gz"
    flat = tmp_path / "flat.nii.gz"
    image, _, affine = two_modalities(5)
    nib.save(nib.Nifti1Image(image[..., 0], affine), flat)
    sheet = tmp_path / "samples.tsv"
    sheet.write_text(f"case_id\timage\nfour\t{four}\nfiles\t{files}\nflat\t{flat}\n")
    results = tmp_path / "results"
    code, _, err = run_cli(["cohort", "infer", str(sheet), "-o", str(results), "--model", str(modal_package),
                            "--device", "cpu"], capsys)
    assert code == 0, err  # a failed case is recorded; `medseg cohort check` decides what fails the run
    for case, source in (("four", four), ("files", files)):
        written = nib.load(results / "cases" / case / f"{case}_seg.nii.gz")
        assert written.shape == SHAPE and np.array_equal(written.affine, nib.load(source).affine)
    failure = json.loads((results / "cases" / "flat" / "flat_failed.json").read_text())
    assert failure["error"].startswith(f"{flat}: a 3D image (one modality), and model tiny takes 2 modalities (t1, t2)")
    assert not (results / "cases" / "flat" / "flat_seg.nii.gz").exists()


def test_a_case_named_like_a_channel_file_stays_a_case(tmp_path):
    """Images a_0000 and a_0001 with labels a and a_0001: two cases of one image each, not one of two channels."""
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    image, label, affine = two_modalities(0)
    for name in ("a_0000", "a_0001"):
        nib.save(nib.Nifti1Image(image[..., 0], affine), images / f"{name}.nii.gz")
    for name in ("a", "a_0001"):
        nib.save(nib.Nifti1Image(label.astype(np.uint8), affine), labels / f"{name}.nii.gz")
    cases = pair_cases(images, labels)
    assert [(case.case_id, case.image_path.name, case.channel_paths) for case in cases] == [
        ("a", "a_0000.nii.gz", None), ("a_0001", "a_0001.nii.gz", None)]


def _report_rows(results: Path, out: Path, sheet: Path | None = None) -> dict[str, dict]:
    """The QA report's table of ``results`` (against ``sheet``, or without a sheet), by case id."""
    import csv

    from medseg.report import build_report

    built = build_report(results, out / "report.html", max_overlays=0, overwrite=True, sheet=sheet)
    with open(built.table, encoding="utf-8", newline="") as handle:
        return {row["case_id"]: row for row in csv.DictReader(handle, delimiter="\t")}


def test_every_channel_file_of_a_cohort_case_counts_as_its_input(modal_package, tmp_path):
    """A case of nnU-Net's channel files was tracked by its _0000 file alone: a case_0001 replaced since was not
    noticed (its old segmentation kept, and shown by the QA report), a case_0001 dropped was not 'away', and a
    case_0000 merely touched was segmented again. Each channel file now counts: a replaced one redoes its case (and
    only it) and the report without the sheet marks it stale; a dropped one keeps the case's results, said away."""
    import os

    from medseg.cohort import InferOptions, ResultsFolder, infer_cases, read_samples, stale_cases
    from medseg.io.atomic import sha256_of

    data = tmp_path / "data"
    data.mkdir()
    for seed, case in enumerate("ab"):
        image, _, affine = two_modalities(seed)
        for channel in range(2):
            nib.save(nib.Nifti1Image(image[..., channel], affine), data / f"{case}_{channel:04d}.nii.gz")
    sheet = tmp_path / "samples.tsv"
    sheet.write_text("case_id\timage\na\tdata/a_0000.nii.gz\nb\tdata/b_0000.nii.gz\n")
    samples, results = read_samples(sheet), tmp_path / "results"
    options = InferOptions(model=str(modal_package), device="cpu", batch_size=8)
    assert [case.outcome for case in infer_cases(samples, results, options).cases] == ["ok", "ok"]
    folder = ResultsFolder(results)
    files = [data / "a_0000.nii.gz", data / "a_0001.nii.gz"]
    sidecar = json.loads(folder.sidecar("a").read_text())
    assert sidecar["input_signature"] == [[f.stat().st_size, f.stat().st_mtime_ns] for f in files]
    assert sidecar["input_sha256"] == sha256_of(files)
    kept_b = folder.sidecar("b").read_bytes()

    image = two_modalities(7)[0]  # another scan's second modality, on a's grid, in a_0001's place
    nib.save(nib.Nifti1Image(image[..., 1], nib.load(files[0]).affine), files[1])
    assert stale_cases(samples, results, load_package(modal_package), options) == {"infer": ["a"], "evaluate": []}
    rows = _report_rows(results, tmp_path / "qa")
    assert (rows["a"]["status"], rows["a"]["failed_stage"]) == ("failed", "stale")
    # the file that changed is named, not the case_0000 the row names (which the user would find unchanged)
    assert rows["a"]["error"] == (f"the input {files[0]}'s channel file a_0001.nii.gz was changed or replaced after "
                                  "the case was segmented (its SHA-256 is not the one recorded then); segment the "
                                  "case again (a cohort redoes such a case)")
    assert rows["b"]["failed_stage"] == ""
    rows = _report_rows(results, tmp_path / "qa", sheet)  # as the workflow makes it
    assert (rows["a"]["failed_stage"], rows["b"]["failed_stage"]) == ("stale", "")
    assert rows["a"]["error"] == (f"the input {files[0]}'s channel file a_0001.nii.gz was changed or replaced after "
                                  "the case was segmented (its size or modification time differs from the one recorded "
                                  "then, and its content from the one read then); run the workflow again to redo the "
                                  "case")
    outcome = {case.case_id: case for case in infer_cases(samples, results, options).cases}
    assert (outcome["a"].outcome, outcome["a"].reused, outcome["b"].reused) == ("ok", False, True)
    assert json.loads(folder.sidecar("a").read_text())["input_sha256"] == sha256_of(files)
    assert folder.sidecar("b").read_bytes() == kept_b
    assert _report_rows(results, tmp_path / "qa")["a"]["failed_stage"] == ""

    os.utime(files[0], ns=(1_000_000_000, 1_000_000_000))  # touched: the same content keeps the case
    assert [case.reused for case in infer_cases(samples, results, options).cases] == [True, True]

    dropped = data / "b_0001.nii.gz"
    os.rename(dropped, tmp_path / "b_0001.nii.gz")  # a dropped channel file: the case's input is away
    outcome = {case.case_id: case for case in infer_cases(samples, results, options).cases}
    assert (outcome["b"].outcome, outcome["b"].stage, outcome["b"].reused) == ("failed", "read", False)
    assert outcome["b"].error == (f"{dropped}: no such file or folder; the results made from it earlier are kept, and "
                                  "reused if it comes back unchanged")
    assert folder.segmentation("b").is_file() and folder.sidecar("b").read_bytes() == kept_b
    for given in (None, sheet):
        row = _report_rows(results, tmp_path / "qa", given)["b"]
        assert (row["status"], row["failed_stage"], row["error"]) == (
            "failed", "stale", f"the input {data / 'b_0000.nii.gz'}'s channel file b_0001.nii.gz is missing; the "
                               "results made from it earlier are kept in the results folder (not shown here), and "
                               "reused if it comes back unchanged")
    os.rename(tmp_path / "b_0001.nii.gz", dropped)
    assert [case.reused for case in infer_cases(samples, results, options).cases] == [True, True]


def test_nifti_vector_layout_is_taken_as_a_4d_image_everywhere(modal_package, tmp_path, capsys, monkeypatch):
    """A 5D NIfTI of the modalities in NIfTI's vector layout (X, Y, Z, 1, C), as inference reads it: training counts
    its channels from the header, the memory guard refuses it from its header before reading, and the QA report
    finds it on its segmentation's grid and draws its first modality."""
    import medseg.memory_guard
    import medseg.preprocess
    from medseg.segment import _check_header_size
    from medseg.training_cases import case_channels

    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    for seed in range(2):
        image, label, affine = two_modalities(seed)
        vector = nib.Nifti1Image(image[:, :, :, None, :], affine)
        vector.header.set_intent("vector")
        nib.save(vector, images / f"case{seed}.nii.gz")
        nib.save(nib.Nifti1Image(label.astype(np.uint8), affine), labels / f"case{seed}.nii.gz")
    assert case_channels(pair_cases(images, labels)) == 2
    loaded = load_cases(pair_cases(images, labels), modal_config())
    assert tuple(loaded[0].image.shape) == (2, *loaded[0].label.shape)

    source = images / "case0.nii.gz"
    pre = load_package(modal_package).preprocessing
    with monkeypatch.context() as patched:
        patched.setattr(medseg.memory_guard, "physical_memory", lambda: 10**5)
        with pytest.raises(InputError, match=r"case0\.nii\.gz: segmenting its 32×32×12 voxels needs about"):
            _check_header_size(source, pre, channels=2)

    page = _segmented_and_reported(source, modal_package, tmp_path, capsys)
    assert "image: the first of the input&#x27;s 2 modalities (t1) is shown" in page
    assert "case0.nii.gz is not on the segmentation" not in page and "image not shown" not in page
    assert "geometry" not in (tmp_path / "qa" / "cohort.tsv").read_text().splitlines()[1]


def test_the_qa_report_leaves_out_a_4d_input_off_the_grid_from_its_header(modal_package, modal_sets, tmp_path, capsys,
                                                                          monkeypatch):
    """A multi-modal case whose 4D input was replaced by one on another grid: the overlay leaves it out from its
    header, unread (a 4 MB gzip file can declare gigabytes of voxels), and says so."""
    import medseg.report.overlay_arrays

    source = tmp_path / "case.nii.gz"
    source.write_bytes((modal_sets["4d"][0] / "case0.nii.gz").read_bytes())
    results = tmp_path / "results"
    assert run_cli(["infer", str(source), "--model", str(modal_package), "-o", str(results), "--device", "cpu"],
                   capsys)[0] == 0
    image, _, affine = two_modalities(0)
    nib.save(nib.Nifti1Image(np.concatenate([image, image], axis=2), affine), source)  # 32×32×24×2

    def unread(path):
        raise AssertionError(f"{path} read whole")

    monkeypatch.setattr(medseg.report.overlay_arrays, "read_image_channels", unread)
    code, _, err = run_cli(["report", str(results), "-o", str(tmp_path / "qa") + "/"], capsys)
    assert code == 0, err
    page = (tmp_path / "qa" / "report.html").read_text()
    assert "image not shown: case.nii.gz is not on the segmentation&#x27;s grid" in page


def test_nrrd_channel_files_are_read_and_a_single_nrrd_is_refused_saying_so(modal_package, tmp_path, capsys):
    """nnU-Net's channel files in NRRD are a case as NIfTI ones are (the same labels); one NRRD file given for all the
    modalities is refused in one line saying what is read."""
    sitk = pytest.importorskip("SimpleITK")
    from medseg.io.images import read_image

    image, _, affine = two_modalities(2)
    for channel in range(2):
        nib.save(nib.Nifti1Image(image[..., channel], affine), tmp_path / f"n_{channel:04d}.nii.gz")
        voxels = read_image(tmp_path / f"n_{channel:04d}.nii.gz").array
        written = sitk.GetImageFromArray(np.ascontiguousarray(voxels.transpose(2, 1, 0)))
        written.SetSpacing((1.5, 1.0, 2.0))
        sitk.WriteImage(written, str(tmp_path / f"n_{channel:04d}.nrrd"))
    out = tmp_path / "out"
    args = ["--model", str(modal_package), "-o", str(out), "--device", "cpu"]
    assert run_cli(["infer", str(tmp_path / "n_0000.nrrd"), *args], capsys)[0] == 0
    sidecar = json.loads((out / "n_seg.json").read_text())
    assert sidecar["input_info"]["channel_files"] == ["n_0000.nrrd", "n_0001.nrrd"]
    assert nib.load(out / "n_seg.nii.gz").shape == SHAPE
    single = tmp_path / "single.nrrd"
    single.write_bytes((tmp_path / "n_0000.nrrd").read_bytes())
    code, _, err = run_cli(["infer", str(single), *args], capsys)
    assert code == 1 and err.splitlines()[-1] == (
        f"medseg: error: {single}: the modalities of a case in one file are read from a 4D NIfTI file only; convert "
        "this one to NIfTI, or save each modality as nnU-Net's channel files (case_0000, case_0001 …, which may be "
        "NRRD or MetaImage) and give case_0000")
    assert not (out / "single_seg.nii.gz").exists()


def test_channel_files_given_with_references_are_warned_about_as_refused(modal_package, modal_sets, tmp_path, capsys):
    """`medseg infer case_0000 case_0001 --reference … --reference …` of a multi-modal model: the warning says the
    further channel file is refused (it is, in its own line), not that it is segmented as an image of its own."""
    folder, labels = modal_sets["nnunet"]
    reference = str(labels / "case1.nii.gz")
    code, _, err = run_cli(["infer", str(folder / "case1_0000.nii.gz"), str(folder / "case1_0001.nii.gz"),
                            "--reference", reference, "--reference", reference, "--model", str(modal_package),
                            "-o", str(tmp_path), "--device", "cpu"], capsys)
    assert code == 1
    assert ("warning: 1 input is a further channel file of a case given by its _0000 file (case1_0001.nii.gz of "
            "case1_0000.nii.gz); each is refused, as model tiny reads a case's channel files beside its _0000 file: "
            "give only the _0000 files, each with its reference") in err.splitlines()
    assert "segmented as an image of its own" not in err
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "case1_0001_failed.json", "case1_metrics.json", "case1_seg.json", "case1_seg.nii.gz"]


def test_a_config_declaring_the_dataset_json_channels_in_another_order_is_warned_about(tmp_path, capsys):
    """-c declaring t1, t2 where the dataset.json beside the folders gives channel 0 as T2 and 1 as T1: a warning
    naming both orders (the network takes channel k as the config's k-th modality); the same order, or other names,
    none."""
    from medseg.io.dataset_json import load_document
    from medseg.training_setup import dataset_modalities_disagree

    images, labels = write_modal_set(tmp_path / "set", "nnunet", count=2)
    dataset = tmp_path / "set" / "dataset.json"
    dataset.write_text(json.dumps({"channel_names": {"0": "T2", "1": "T1"}, "labels": {
        "background": 0, "ellipsoid": 1, "box": 2, "tube": 3}, "numTraining": 2, "file_ending": ".nii.gz"}))
    config = tmp_path / "config.json"
    config.write_text(json.dumps(modal_config(epochs=1, steps_per_epoch=1, val_fraction=0.5)))
    code, _, err = run_cli(["train", "--images", str(images), "--labels", str(labels), "-c", str(config), "-o",
                            str(tmp_path / "model"), "--threads", "1", "--device", "cpu"], capsys)
    assert code == 0, err
    assert (f"warning: {dataset} gives the channels in the order T2, T1; the config {config} declares the modalities "
            "t1, t2: channel k of each case is trained as the config's k-th modality; declare them in the files' "
            "order") in err.splitlines()
    for names in ({"0": "T1", "1": "T2"}, {"0": "flair", "1": "T1"}):
        dataset.write_text(json.dumps({"channel_names": names, "labels": {"background": 0, "a": 1}}))
        assert dataset_modalities_disagree(modal_config(), config, load_document(dataset)) is None


def test_the_training_sets_memory_check_charges_one_case_for_each_of_its_modalities(tmp_path, monkeypatch):
    """Whether one case fits alone was charged for one channel: a case of two modalities (a 4D image, or channel
    files) was charged half of what its own check charges, and a set of such cases too large even one at a time was
    refused for the set's total, not by the case's own check naming it and its voxels."""
    import medseg.memory_guard
    import medseg.preprocess
    from medseg.training_cases import _case_memory
    from medseg.voxel_charge import COPY_BYTES_PER_VOXEL

    voxels = int(np.prod(SHAPE))
    pre = modal_config()["preprocessing"]  # spacing_mm null: each voxel of each modality copied once
    for layout in ("4d", "nnunet"):
        cases = pair_cases(*write_modal_set(tmp_path / layout, layout, count=3))
        assert [_case_memory(case, pre) for case in cases] == [
            (voxels * COPY_BYTES_PER_VOXEL * 2, voxels * (4 * 2 + 1))] * 3
        # one case alone needs 24 bytes a voxel, more than the machine has; the three together are held in 27
        monkeypatch.setattr(medseg.memory_guard, "physical_memory", lambda: voxels * 20)
        with pytest.raises(TrainingError) as refused:
            load_cases(cases, modal_config())
        assert "would hold about" not in str(refused.value)
        assert str(refused.value).startswith("3 of 3 cases cannot be trained on: ")
        assert "segmenting its 32×32×12 voxels needs about" in str(refused.value)


def test_a_channel_file_is_named_in_one_place_as_nnunet_names_it():
    """The name of a case's channel file was built three times (the siblings looked for, the files a case of a model
    of several modalities reads, training's missing file): one helper names it, of the first file's ending."""
    from medseg.io.channels import channel_file

    assert channel_file(Path("/d/case_0000.nii.gz"), 2) == Path("/d/case_0002.nii.gz")
    assert channel_file("/d/BRATS_001_0000.nrrd", 13) == Path("/d/BRATS_001_0013.nrrd")
    assert channel_file(Path("a.b_0000.NII.GZ"), 1) == Path("a.b_0001.NII.GZ")
    # a case's one image, and a name of another channel number, are the case's name whole
    assert channel_file(Path("/d/case.nii.gz"), 1) == Path("/d/case_0001.nii.gz")
    assert channel_file(Path("/d/x_0005.nii.gz"), 1) == Path("/d/x_0005_0001.nii.gz")


def test_an_earlier_runs_segmentation_among_the_inputs_is_named_as_one(tmp_path):
    """`medseg infer imagesTs/*.nii.gz` run again after a run that wrote its outputs beside the inputs (the
    default) is given case_seg.nii.gz too: it was refused as 'a 3D image (one modality)', which points at the wrong
    fix. It is named as medseg's own segmentation, with the input to give; a 3D image without such a sidecar is
    refused as before."""
    from medseg.io.channels import read_channels

    image, label, affine = two_modalities(0)
    nib.save(nib.Nifti1Image(image[..., 0], affine), tmp_path / "case_0000.nii.gz")
    seg = tmp_path / "case_seg.nii.gz"
    nib.save(nib.Nifti1Image(label.astype(np.uint8), affine), seg)
    with pytest.raises(InputError) as plain:
        read_channels(seg, MODALITIES, "tiny")
    assert str(plain.value).startswith(f"{seg}: a 3D image (one modality), and model tiny takes 2 modalities")
    (tmp_path / "case_seg.json").write_text(json.dumps({
        "schema": "medseg-segmentation/1", "input": str(tmp_path / "case_0000.nii.gz"),
        "segmentation": "case_seg.nii.gz"}))
    with pytest.raises(InputError) as named:
        read_channels(seg, MODALITIES, "tiny")
    assert str(named.value) == (f"{seg}: a segmentation medseg wrote (its sidecar case_seg.json beside it), not an "
                                f"image of a case; give the image it was made from, {tmp_path / 'case_0000.nii.gz'}")


def test_one_modality_is_counted_in_the_singular_in_the_in_channels_error():
    """``in_channels=4 does not match 1 modalities (t1)``: the count in the singular where it is one."""
    config = modal_config()
    config.pop("training")
    config["weights"] = {"file": "weights.safetensors", "sha256": "0" * 64}
    config["modalities"] = ["t1"]
    config["architecture"]["in_channels"] = 4
    with pytest.raises(ModelPackageError) as info:
        validate_config(config, "m/model.json")
    assert str(info.value) == ("m/model.json: in_channels=4 does not match 1 modality (t1) with context_slices=1 "
                               "(expected 1 × 3 = 3)")
    from medseg.io.channels import modalities_text

    assert (modalities_text(["t1"]), modalities_text(["t1", "t2"])) == ("1 modality (t1)", "2 modalities (t1, t2)")


def test_a_config_of_one_modality_is_counted_in_the_singular_where_the_cases_have_more_channels(tmp_path):
    """``declares 1 modalities (t1); give images of 1 channels``: the training check of the cases' channels against
    the modalities a config declares counts one in the singular too."""
    from medseg.training_cases import TrainCase, check_case_channels

    image = tmp_path / "case.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 3, 2), np.float32), np.eye(4)), image)
    case = TrainCase(case_id="case", image_path=image, label_path=image, image=None, label=None, extent_mm=None,
                     sha256=None, label_box=None, channel_paths=None)
    with pytest.raises(TrainingError) as info:
        check_case_channels([case], {"modalities": ["t1"]})
    assert str(info.value) == (f"{image}: 2 channels, but the config declares 1 modality (t1); give images of 1 "
                               "channel, or declare the modalities they hold")


def test_dicom_folders_numbered_as_channels_are_series_of_their_own(modal_package, make_package, tmp_path, capsys):
    """DICOM series folders numbered ``series_0000/``, ``series_0001/`` are two series, not a case's channel files
    (nnU-Net's channels are image files): a model of two modalities dropped series_0001 from the batch with a note
    that it was read beside series_0000 (it was not: series_0000 was refused, and series_0001 got no failure record);
    a model of one image a case segmented both but warned to give only the _0000 one."""
    from dicom_factory import make_series

    folders = [tmp_path / "series_0000", tmp_path / "series_0001"]
    for seed, folder in enumerate(folders):
        make_series(folder, seed=seed)
    out = tmp_path / "out"
    code, _, err = run_cli(["infer", *map(str, folders), "--model", str(modal_package), "-o", str(out), "--device",
                            "cpu"], capsys)
    assert code == 1
    assert [line.split(": ")[2] for line in err.splitlines() if line.startswith("medseg: error:")] == [
        str(folder) for folder in folders]
    assert "further channel" not in err
    from medseg.io.channels import further_channel_text

    assert further_channel_text(folders[1]) is None  # a sample sheet's row of it: not told to give series_0000
    # one failure record each (series_0000's named as a multi-modal model names a case_0000 input's outputs)
    assert sorted(path.name for path in out.iterdir()) == ["series_0001_failed.json", "series_failed.json"]
    code, _, err = run_cli(["infer", *map(str, folders), "--model", str(make_package()), "-o", str(tmp_path / "one")],
                           capsys)
    assert code == 0, err
    assert [line for line in err.splitlines() if line.startswith("warning:") and "channel" in line] == []
    assert sorted(path.name for path in (tmp_path / "one").glob("*.nii.gz")) == ["series_0000_seg.nii.gz",
                                                                                 "series_0001_seg.nii.gz"]


def test_a_case_this_user_may_not_look_at_fails_alone_in_one_line_in_a_fresh_cohort(modal_package, tmp_path):
    """A case whose channel files lie in a folder this user may not search, in a results folder without earlier
    results for it (so nothing is kept while it is away): the case failed alone, as it should, but its line was
    Python's "PermissionError: [Errno 13] Permission denied: '…/a_0000.nii.gz'" (segment_case asked Path.is_dir). It
    says the file cannot be looked at, as `medseg infer` says it; the other case is segmented."""
    from conftest import plain_user

    from medseg.cohort import InferOptions, infer_cases, read_samples

    locked, data = tmp_path / "locked", tmp_path / "data"
    for seed, (case, folder) in enumerate((("a", locked), ("b", data))):
        folder.mkdir()
        image, _, affine = two_modalities(seed)
        for channel in range(2):
            nib.save(nib.Nifti1Image(image[..., channel], affine), folder / f"{case}_{channel:04d}.nii.gz")
    sheet = tmp_path / "samples.tsv"
    sheet.write_text("case_id\timage\na\tlocked/a_0000.nii.gz\nb\tdata/b_0000.nii.gz\n")
    samples = read_samples(sheet)
    locked.chmod(0)
    try:
        with plain_user():
            done = infer_cases(samples, tmp_path / "results", InferOptions(model=str(modal_package), device="cpu",
                                                                            batch_size=8))
    finally:
        locked.chmod(0o755)
    assert [(case.case_id, case.outcome, case.error) for case in done.cases] == [
        ("a", "failed", f"{locked / 'a_0000.nii.gz'}: cannot read (permission denied: a folder on its way "
                        "cannot be searched)"),
        ("b", "ok", None)]
