"""`medseg train` (medseg.cli.train): what it trains and says, and the bad inputs, options and output folders it
refuses with one line and its exit code."""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from training_factory import (
    _FEW_STEPS,
    BAD,
    SHAPE,
    _bad_set,
    _exit_code,
    _train_cli,
    _write,
    tiny_training_config,
    weights,
    write_set,
)

from medseg.errors import MedsegError
from medseg.package import load_package
from medseg.synthetic import write_phantom
from medseg.training_cases import load_cases, pair_cases


@pytest.mark.parametrize(("unreadable", "mode", "problem"), [
    ("images", 0o311, "cannot read"), ("labels", 0o444, "cannot look at its files"),
    ("labels/case1.nii.gz", 0o000, "cannot read"), ("config.json", 0o000, "cannot read the training config")])
def test_a_folder_file_or_config_this_user_may_not_read_is_an_error_not_a_usage_error(tmp_path, unreadable, mode,
                                                                                       problem, capsys):
    """click's own check made a folder or config this user may not read a usage error (exit 2, "Try 'medseg train
    --help'"); without it, a folder that cannot be listed ended on a traceback and a label file that cannot be
    opened read as "cannot read header (Could not read file ...)". One line now, exit 1, and nothing written."""

    from conftest import medseg_as_plain_user

    images, labels = write_set(tmp_path, count=2)
    (tmp_path / "config.json").write_text(json.dumps(tiny_training_config()))
    (tmp_path / unreadable).chmod(mode)
    try:
        # without -c, the default config's label values are read from the label files' headers first
        config = ["-c", str(tmp_path / "config.json")] if unreadable == "config.json" else []
        run = medseg_as_plain_user(["train", "--images", str(images), "--labels", str(labels),
                                    *config, "-o", str(tmp_path / "model")], capsys)
    finally:
        (tmp_path / unreadable).chmod(0o755)
    assert (run.returncode, run.stderr.strip().splitlines()[-1]) == (
        1, f"medseg: error: {tmp_path / unreadable}: {problem} (permission denied)"), run.stderr
    assert not (tmp_path / "model").exists()


@pytest.mark.parametrize("mode", [0o000, 0o311])
def test_an_output_folder_this_user_may_not_read_is_one_line(tmp_path, mode, capsys):
    """Training must see what its output folder holds (a package, a checkpoint): one this user may not read was a
    usage error (exit 2) by click's own check, and a traceback without it. One line now, exit 1."""

    from conftest import medseg_as_plain_user

    images, labels = write_set(tmp_path, count=2)
    (tmp_path / "model").mkdir()
    (tmp_path / "model").chmod(mode)
    try:
        run = medseg_as_plain_user(["train", "--images", str(images), "--labels", str(labels),
                                    "-o", str(tmp_path / "model")], capsys)
    finally:
        (tmp_path / "model").chmod(0o755)
    assert (run.returncode, run.stderr.strip().splitlines()[-1]) == (
        1, f"medseg: error: {tmp_path / 'model'}: cannot read (permission denied)"), run.stderr
    assert list((tmp_path / "model").iterdir()) == []


def _set_with_blank_labels(folder, config_file, part: int):
    """A synthetic set in ``folder`` whose training (``part`` 0) or validation (1) cases, as the config's seeded
    split draws them, have background-only label files: (images, labels, those cases)."""
    from medseg.train_config import seeded_split

    images, labels = write_set(folder)
    config = json.loads(config_file.read_text())
    cases = seeded_split(pair_cases(images, labels), config["training"])[part]
    for case in cases:
        label = nib.load(case.label_path)
        nib.save(nib.Nifti1Image(np.zeros(label.shape, np.uint8), label.affine), str(case.label_path))
    return images, labels, cases


def test_the_cli_says_a_run_without_validation_foreground_shipped_its_last_epoch(tmp_path, capsys, config_file):
    from medseg.cli import main

    images, labels, _ = _set_with_blank_labels(tmp_path / "data", config_file, part=1)
    out = tmp_path / "model"
    with pytest.raises(SystemExit) as info:
        main(["train", "--images", str(images), "--labels", str(labels), "-c", str(config_file), "-o", str(out),
              "--threads", "1"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == (
        f"wrote {out} (last epoch 2; no validation case holds a foreground label)")


def test_the_cli_refuses_background_only_training_labels_before_it_says_it_trains(tmp_path, capsys, config_file):
    images, labels, fit = _set_with_blank_labels(tmp_path / "data", config_file, part=0)
    out = tmp_path / "model"
    assert _exit_code(_train_cli(images, labels, out, "-c", str(config_file))) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"medseg: error: {labels}: no training label image holds any foreground (those of all {len(fit)} "
                   "training cases are background only); there is nothing to learn"]
    assert not out.exists()


def test_cli_fold_trains_on_another_block_and_says_so(tiny_set, tmp_path, capsys, config_file):
    from medseg.cli import main

    images, labels = tiny_set
    args = ["train", "--images", str(images), "--labels", str(labels), "-c", str(config_file), "--epochs", "1"]
    with pytest.raises(SystemExit) as info:
        main([*args, "-o", str(tmp_path / "f1"), "--fold", "1"])
    assert info.value.code == 0
    training = json.loads((tmp_path / "f1" / "model.json").read_text())["training"]
    assert training["val_cases"] == ["case4", "case5"] and training["train_cases"] == 4  # fold 0: case2, case3
    assert training["val_split"] == "a seeded 0.34 split, split seed 0, fold 1"
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main([*args, "-o", str(tmp_path / "f3"), "--fold", "3"])
    assert info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"medseg: error: {config_file}: training.fold (--fold) must be in 0..2 (6 cases, 2 validation "
                   "cases per fold), got 3"]
    assert not (tmp_path / "f3").exists()


def test_images_given_as_labels_are_named_in_a_short_line(tmp_path, capsys, config_file):
    """Images in the labels folder (swapped folders) used to list every value they hold, a 'line' of 10-25 kB, in
    train (with or without a config) and in scoring. The values are now cut short, and so many of them are named
    for what they suggest."""
    from medseg.cli import main
    from medseg.errors import InputError
    from medseg.io.label_images import read_reference

    images, labels = tmp_path / "images", tmp_path / "labels"
    counts = np.random.default_rng(1).integers(0, 3000, size=(16, 16, 6)).astype(np.int16)
    _write(images / "a.nii.gz", counts.astype(np.float32))
    _write(labels / "a.nii.gz", counts)
    for args in ([], ["-c", str(config_file)]):
        with pytest.raises(SystemExit):
            main(["train", "--images", str(images), "--labels", str(labels), "-o", str(tmp_path / "m"), *args])
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and len(err) < 600 and re.search(r", … \(1[12]\d\d values\)\]", err), err
        assert str(labels / "a.nii.gz") in err
        assert "an image rather than labels (are --images and --labels swapped?)" in err
    with pytest.raises(InputError) as info:
        read_reference(labels / "a.nii.gz", {0: "background", 1: "one"})
    unknown = len(set(np.unique(counts).tolist()) - {0, 1})
    assert len(str(info.value)) < 600 and f"… ({unknown} values)" in str(info.value)
    assert "an image given as the reference?" in str(info.value)


@pytest.mark.parametrize("kind", sorted(set(BAD) - {"one folder for both"}))
def test_cli_bad_inputs_exit_1_with_one_line(tmp_path, capsys, config_file, kind):
    from medseg.cli import main

    images, labels, named = _bad_set(tmp_path, kind)
    out = tmp_path / "model"
    with pytest.raises(SystemExit) as info:
        main(["train", "--images", str(images), "--labels", str(labels), "-c", str(config_file), "-o", str(out)])
    assert info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("medseg: error: ") and named in err[0]
    assert BAD[kind].format(labels=labels, images=images / "a.nii.gz") in err[0]
    assert not out.exists()


def test_cli_an_image_whose_sform_is_not_finite_is_one_line_without_a_config(tmp_path, capsys):
    """Without --config the default tile is read from the images' headers: an image whose sform holds NaN (qform code
    0) ended the run in a traceback ("numpy.linalg.LinAlgError: SVD did not converge"); it is refused as reading
    the image refuses it."""
    import struct

    from medseg.cli import main

    images, labels, _ = _bad_set(tmp_path, "unpaired")
    (images / "lonely.nii.gz").unlink()
    image = nib.Nifti1Image(np.zeros((16, 16, 6), np.float32), np.eye(4))
    image.set_qform(None, code=0)
    image.set_sform(np.eye(4), code=1)
    image.header["vox_offset"] = 352  # the voxels after the header and its 4 extension bytes
    raw = bytearray(image.header.binaryblock + b"\0" * 4 + np.zeros((16, 16, 6), np.float32).tobytes())
    struct.pack_into("<f", raw, 280, np.nan)  # srow_x[0]
    (images / "a.nii.gz").unlink()
    bad = images / "a.nii"
    bad.write_bytes(bytes(raw))
    out = tmp_path / "model"
    with pytest.raises(SystemExit) as info:
        main(["train", "--images", str(images), "--labels", str(labels), "-o", str(out), "--epochs", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 1 and not any("Traceback" in line for line in err)
    assert err[-1] == f"medseg: error: {bad}: the affine is singular or not finite (rows nan 0 0 0; 0 1 0 0; 0 0 1 0)"
    assert not out.exists()


def test_cli_one_folder_for_images_and_labels_is_a_usage_error(tmp_path, capsys, config_file):
    """The command line alone says it (exit 2, as a file given as --images); it exited 1, as bad data does."""
    from medseg.cli import main

    images, labels, _ = _bad_set(tmp_path, "one folder for both")
    with pytest.raises(SystemExit) as info:
        main(["train", "--images", str(images), "--labels", str(labels), "-c", str(config_file), "-o",
              str(tmp_path / "model")])
    assert info.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(
        f"medseg train: error: Invalid value for '--labels': {labels} is also --images; put the label files in a "
        "folder of their own")
    assert not (tmp_path / "model").exists()


def test_cli_trains_refuses_to_overwrite_and_resumes(tiny_set, tmp_path, capsys, config_file):
    from medseg.cli import main
    from medseg.package import load_package

    torch.set_num_threads(1)
    out = tmp_path / "model"
    args = ["train", "--images", str(tiny_set[0]), "--labels", str(tiny_set[1]), "-c", str(config_file), "-o", str(out),
            "--threads", "1"]
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 0
    captured = capsys.readouterr()
    assert "epoch   2" in captured.err and "val mean Dice" in captured.err
    # the labels by name, as the model card shows them (not "1:0.8711  2:…")
    assert re.search(r"val mean Dice \d\.\d+  \(ellipsoid \d\.\d+  box \d\.\d+  tube \d\.\d+\)", captured.err)
    assert "as a model shipped with medseg" not in captured.err and "word for word" not in captured.err
    assert captured.out.startswith(f"wrote {out}")
    assert load_package(out).config["training"]["epochs_run"] == 2
    first = weights(out)

    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 1
    assert "pass --overwrite or --resume" in capsys.readouterr().err

    with pytest.raises(SystemExit) as info:  # nothing left to do: the package is rewritten unchanged
        main(args + ["--resume"])
    assert info.value.code == 0
    again = weights(out)
    assert all(torch.equal(first[k], again[k]) for k in first)


def test_cli_trains_without_a_config_on_a_tile_that_fits_the_planes(tiny_set, tmp_path, capsys):
    """`medseg train` without -c: the default 2.5D U-Net, named after its folder, on 32 × 32 tiles for 32 × 32
    planes (not 128 × 128), and `medseg infer` runs the package."""
    out = tmp_path / "my model"
    assert _exit_code(_train_cli(*tiny_set, out, "--epochs", "1", *_FEW_STEPS)) == 0
    config = json.loads((out / "model.json").read_text())
    assert config["name"] == "my_model" and config["inference"]["roi_size"] == [32, 32]
    assert config["training"]["settings"]["patch_size"] == [32, 32] and config["architecture"]["in_channels"] == 3
    assert "training patch [32, 32]" in (out / "MODEL_CARD.md").read_text()
    capsys.readouterr()
    assert _exit_code(["infer", str(tiny_set[0] / "case0.nii.gz"), "-m", str(out), "-o", str(tmp_path / "seg")]) == 0
    assert nib.load(str(tmp_path / "seg" / "case0_seg.nii.gz")).shape == SHAPE

    # --resume keeps the checkpoint's tile: a case replaced by one with larger planes is named as changed data
    # (it was blamed on "other settings (inference.roi_size)"), and a run started when the default tile was
    # 128 x 128 still resumes
    images, labels = tmp_path / "images", tmp_path / "labels"
    shutil.copytree(tiny_set[0], images)
    shutil.copytree(tiny_set[1], labels)
    write_phantom(images / "case1.nii.gz", labels / "case1.nii.gz", shape=(60, 40, 12), seed=1, oblique=False)
    assert _exit_code(_train_cli(images, labels, out, "--epochs", "1", "--resume", *_FEW_STEPS)) == 1
    assert "the checkpoint was trained on other data (changed: case1)" in capsys.readouterr().err
    # a label file with a value the run was not started with is named (it was blamed on "other settings
    # (architecture.n_classes, labels.4)" of a config the user never gave); so is a value no file holds any more
    write_phantom(images / "case1.nii.gz", labels / "case1.nii.gz", shape=SHAPE, seed=1, oblique=False)
    label = nib.load(labels / "case2.nii.gz")
    array = np.asarray(label.dataobj).copy()
    array[0, 0, 0] = 4
    nib.save(nib.Nifti1Image(array, label.affine), labels / "case2.nii.gz")
    assert _exit_code(_train_cli(images, labels, out, "--epochs", "1", "--resume", *_FEW_STEPS)) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"medseg: error: {labels / 'case2.nii.gz'}: label value 4, which the checkpoint in {out} was not trained "
        "with (its labels [0, 1, 2, 3]); resume with the files it was started with, or start again with --overwrite")
    for case in labels.iterdir():
        label = nib.load(case)
        nib.save(nib.Nifti1Image(np.minimum(np.asarray(label.dataobj), 2), label.affine), case)
    assert _exit_code(_train_cli(images, labels, out, "--epochs", "1", "--resume", *_FEW_STEPS)) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"medseg: error: {out}: the checkpoint was trained with label value 3, which no label file holds now; resume "
        "with the files it was started with, or start again with --overwrite")
    record = out / ".checkpoint" / "last.json"
    state = json.loads(record.read_text())
    state["config"]["inference"]["roi_size"] = [128, 128]
    state["config"]["training"]["patch_size"] = None  # as records of that time had it (the default)
    record.write_text(json.dumps(state))
    assert _exit_code(_train_cli(*tiny_set, out, "--epochs", "1", "--resume", *_FEW_STEPS)) == 0
    assert "the run had finished its 1 epoch and its package is intact; nothing to train" in capsys.readouterr().err


def test_cli_single_case_trains_without_validation_and_says_so(tmp_path, capsys, config_file):
    from medseg.cli import main
    from medseg.package import load_package

    torch.set_num_threads(1)
    images, labels = write_set(tmp_path, count=1)
    out = tmp_path / "model"
    with pytest.raises(SystemExit) as info:
        main(["train", "--images", str(images), "--labels", str(labels), "-c", str(config_file), "-o", str(out)])
    assert info.value.code == 0
    captured = capsys.readouterr()
    precision = json.loads(config_file.read_text())["training"].get("precision", "fp32")
    assert (f"training on 1 case, validating on 0, device cpu (requested), precision {precision} (configured)"
            in captured.err)
    assert "warning: no validation case" in captured.err
    assert captured.out.strip() == f"wrote {out} (epoch 2, not validated)"
    training = load_package(out).config["training"]
    assert training["val_cases"] == [] and training["best_epoch"] == 2
    card = (out / "MODEL_CARD.md").read_text()
    assert "No validation cases: the package holds the weights of the last epoch (2)" in card
    assert "by mean validation Dice" not in card
    assert "no validation split (too few cases to split)" in card and "a seeded" not in card


def test_a_package_written_to_the_current_folder_is_named_after_it(tiny_set, tmp_path, monkeypatch):
    """`-o .` without a config named the package "model" ("." has no name), not after the folder as promised."""
    folder = tmp_path / "hippo-v2"
    folder.mkdir()
    monkeypatch.chdir(folder)
    assert _exit_code(_train_cli(*tiny_set, Path("."), "--epochs", "1", "--steps-per-epoch", "2")) == 0
    assert json.loads((folder / "model.json").read_text())["name"] == "hippo-v2"


def test_a_negative_seed_on_the_command_line_is_a_usage_error(tiny_set, tmp_path, capsys, config_file):
    """It was refused as "<config>: training.seed: -1 is less than the minimum of 0", blaming the config file."""
    assert _exit_code(_train_cli(*tiny_set, tmp_path / "model", "-c", str(config_file), "--seed", "-1")) == 2
    err = capsys.readouterr().err
    assert "Invalid value for '--seed': -1 is not in the range 0<=x<=2147483647" in err and str(config_file) not in err
    # a seed that numpy and MONAI cannot take with the epoch added: refused before training, not at epoch 2 (where
    # it raised OverflowError on every --resume)
    assert _exit_code(_train_cli(*tiny_set, tmp_path / "model", "-c", str(config_file), "--seed", str(2**63 - 1))) == 2
    assert "is not in the range 0<=x<=2147483647" in capsys.readouterr().err
    too_big = tmp_path / "seed.json"
    too_big.write_text(json.dumps(tiny_training_config(seed=2**70)))
    assert _exit_code(_train_cli(*tiny_set, tmp_path / "model", "-c", str(too_big))) == 1
    assert capsys.readouterr().err.strip() == (f"medseg: error: {too_big}: training.seed: {2**70} is greater than the "
                                               "maximum of 2147483647")
    assert not (tmp_path / "model").exists()
    # an epoch count beyond the config's range is the option's fault, not the config file's
    assert _exit_code(_train_cli(*tiny_set, tmp_path / "model", "-c", str(config_file), "--epochs", "2000000")) == 2
    assert "Invalid value for '--epochs': 2000000 is not in the range 1<=x<=1000000" in capsys.readouterr().err
    assert _exit_code(_train_cli(*tiny_set, tmp_path / "model", "-c", str(config_file), "--seed", str(2**31 - 1),
                                 "--epochs", "2", "--steps-per-epoch", "1")) == 0


def test_what_infer_refuses_is_refused_before_training(tmp_path, capsys):
    """A 2D image across the model's slices trained on one-voxel strips and recorded figures `medseg infer` could
    not reproduce (it refuses the file); a wrong voxel size asked for 50 GB and ended in a traceback."""
    config = tiny_training_config(epochs=1, steps_per_epoch=1)
    images, labels = write_set(tmp_path / "flat", count=3)
    for folder in (images, labels):
        image = nib.load(folder / "case1.nii.gz")
        nib.save(nib.Nifti1Image(np.asarray(image.dataobj)[:, :, 5:6], image.affine), folder / "case1.nii.gz")
    with pytest.raises(MedsegError, match=rf"^{images / 'case1.nii.gz'}: one voxel thick along model-space axis 0 "):
        load_cases(pair_cases(images, labels), config)

    config = tiny_training_config(epochs=1, steps_per_epoch=1)
    config["preprocessing"]["spacing_mm"] = [1.0, 1.0, 1.0]
    images, labels = write_set(tmp_path / "huge", count=3)
    for folder in (images, labels):
        image = nib.load(folder / "case2.nii.gz")
        nib.save(nib.Nifti1Image(np.asarray(image.dataobj), np.diag([500.0, 500.0, 500.0, 1.0])),
                 folder / "case2.nii.gz")
    path = tmp_path / "huge.json"
    path.write_text(json.dumps(config))
    assert _exit_code(_train_cli(images, labels, tmp_path / "model", "-c", str(path))) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"medseg: error: {images / 'case2.nii.gz'}: resampling its 32×32×12 voxels of "
                              "500 × 500 × 500 mm") and "check the voxel size in the header" in err[-1]
    assert not any("Traceback" in line for line in err) and not (tmp_path / "model").exists()

    # a blank export: `medseg infer` refuses it, and normalised it is the same input everywhere for its labels
    images, labels = write_set(tmp_path / "blank", count=3)
    image = nib.load(images / "case0.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros(image.shape, np.float32), image.affine), images / "case0.nii.gz")
    with pytest.raises(MedsegError, match=rf"^{images / 'case0.nii.gz'}: every voxel holds 0: nothing to learn "
                                          r"from \(a blank or failed export\?\)$"):
        load_cases(pair_cases(images, labels), tiny_training_config())


def test_broken_files_of_several_cases_are_named_in_one_run_without_a_config(tmp_path, capsys):
    """Without -c, the default config's tile (from the images' headers) and labels (from the label files) were read
    first, and stopped at the first file that could not be read: a set with three files cut short by a download
    showed one of them a run. The checks of every case name all three in one line, and nothing is written."""
    images, labels = write_set(tmp_path / "set", count=4)
    (images / "case0.nii.gz").write_bytes(b"")
    cut = images / "case1.nii.gz"
    cut.write_bytes(cut.read_bytes()[:10])  # its gzip header alone
    (labels / "case2.nii.gz").write_bytes(b"")
    out = tmp_path / "model"
    assert _exit_code(_train_cli(images, labels, out, "--epochs", "1")) == 1
    short = "the file was cut short (an interrupted copy or download?)"
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"medseg: error: 3 of 4 cases cannot be trained on: {images / 'case0.nii.gz'}: an empty file (0 bytes); "
        f"{short}; {cut}: a gzip file of 10 bytes that ends before any of its content; {short}; "
        f"{labels / 'case2.nii.gz'}: an empty file (0 bytes); {short}")
    assert not out.exists()


@pytest.mark.parametrize("quiet", [False, True])
def test_more_than_three_cases_that_cannot_be_trained_on_are_listed_unless_q_hides_them(tmp_path, capsys, caplog,
                                                                                        quiet):
    """The error ended "(2 more; all 5 are listed above)" under -q too, where no line was listed: -q hides the
    warning lines that list them. Without -q each is a warning line above the error; with -q the error says how to
    see them all."""
    images, labels = write_set(tmp_path / "set", count=5)
    for seed in range(5):
        (images / f"case{seed}.nii.gz").write_bytes(b"")
    out = tmp_path / "model"
    args = _train_cli(images, labels, out, "--epochs", "1")
    assert _exit_code(["-q", *args] if quiet else args) == 1
    err = capsys.readouterr().err.splitlines()
    empty = "an empty file (0 bytes); the file was cut short (an interrupted copy or download?)"
    listed = [f"{images / f'case{seed}.nii.gz'}: {empty}" for seed in range(5)]
    warned = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]  # "warning: …"
    assert warned == ([] if quiet else listed)
    rest = "run without -q to list all 5" if quiet else "all 5 are listed above"
    assert err[-1] == ("medseg: error: 5 of 5 cases cannot be trained on: "
                       + "; ".join(f"{images / f'case{seed}.nii.gz'}: {empty}" for seed in range(3))
                       + f"; … (2 more; {rest})")
    assert not out.exists()


def test_images_wholly_outside_the_configs_intensity_window_are_refused(tmp_path):
    """A CT config's window (-160..240 HU) copied for images whose values lie all above it: every voxel became 1, and
    the network trained on blank inputs without a word, its package of no use."""
    images, labels = write_set(tmp_path, count=2)
    config = tiny_training_config()
    config["preprocessing"]["intensity"] = {"kind": "window", "min": -1000, "max": -800}
    with pytest.raises(MedsegError) as info:
        load_cases(pair_cases(images, labels), config)
    said = []
    for name in ("case0.nii.gz", "case1.nii.gz"):
        array = np.asarray(nib.load(images / name).dataobj)
        said.append(f"{images / name}: every voxel lies above the intensity window -1000..-800 of "
                    f"preprocessing.intensity (its values run {float(array.min()):.4g} to {float(array.max()):.4g}), "
                    "so all of them become one value: nothing to learn from (a window meant for other images, or a "
                    "wrong scaling in the header?)")
    assert str(info.value) == "2 of 2 cases cannot be trained on: " + "; ".join(said)


def test_a_package_named_like_a_shipped_model_is_warned_about(tiny_set, tmp_path, capsys):
    """Training on one's own data with the shipped hippocampus config made a package named and versioned like the
    shipped model: sidecars and reports could not tell them apart."""
    from medseg.cli import main

    config = tiny_training_config(epochs=1)
    config["name"] = "phantom"
    path = tmp_path / "phantom-like.json"
    path.write_text(json.dumps(config))
    out = tmp_path / "mine"
    with pytest.raises(SystemExit) as info:
        main(["train", "--images", str(tiny_set[0]), "--labels", str(tiny_set[1]), "-c", str(path), "-o", str(out),
              "--threads", "1"])
    assert info.value.code == 0
    assert (f"warning: {path} names the package 'phantom', as a model shipped with medseg: sidecars and reports "
            "name models by name and version") in capsys.readouterr().err


def test_steps_per_epoch_is_set_on_the_command_line_with_or_without_a_config(tiny_set, config_file, tmp_path,
                                                                              capsys):
    """Before, a short trial run needed a whole package config written out for its training.steps_per_epoch (a
    config holding only a training section is refused)."""
    quick = tmp_path / "quick"
    assert _exit_code(_train_cli(*tiny_set, quick, "--epochs", "1", "--steps-per-epoch", "2")) == 0
    settings = load_package(quick).config["training"]["settings"]
    assert settings["steps_per_epoch"] == 2 and settings["epochs"] == 1
    assert "1 epoch of 2 steps" in (quick / "MODEL_CARD.md").read_text()
    configured = tmp_path / "configured"
    assert _exit_code(_train_cli(*tiny_set, configured, "-c", str(config_file), "--steps-per-epoch", "3")) == 0
    assert load_package(configured).config["training"]["settings"]["steps_per_epoch"] == 3
    capsys.readouterr()
    # resumed without it, the run is refused, and told what it was started with
    assert _exit_code(_train_cli(*tiny_set, quick, "--epochs", "2", "--resume")) == 1
    assert "(training.steps_per_epoch); resume with the config it was started with (give --steps-per-epoch 2 as it " \
        "was)" in capsys.readouterr().err
    assert _exit_code(_train_cli(*tiny_set, quick, "--epochs", "2", "--steps-per-epoch", "2", "--resume")) == 0
    assert load_package(quick).config["training"]["epochs_run"] == 2
    # a seed or fold that drew the validation cases: refused as a split, and told what to give
    assert _exit_code(_train_cli(*tiny_set, quick, "--epochs", "3", "--steps-per-epoch", "2", "--seed", "5",
                                 "--resume")) == 1
    assert "resume with the split settings it was started with (give --seed 0 as it was)" in capsys.readouterr().err
    assert _exit_code(_train_cli(*tiny_set, tmp_path / "none", "--steps-per-epoch", "0")) == 2
    assert "--steps-per-epoch" in capsys.readouterr().err


def test_cli_says_which_grid_the_final_dice_is_scored_on(tmp_path, capsys):
    """A resampling package's epoch lines give model-space Dice and its last line the Dice on the volumes' own grids
    (what the package records); the two differ, and the last line did not say why."""
    images, labels = tmp_path / "images", tmp_path / "labels"
    for seed in range(3):
        write_phantom(images / f"case{seed}.nii.gz", labels / f"case{seed}.nii.gz", shape=(36, 30, 10), seed=seed,
                      oblique=True)
    config = tiny_training_config(epochs=1, steps_per_epoch=2)
    config["preprocessing"]["spacing_mm"] = [1.3, 1.3, 2.1]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    out = tmp_path / "model"
    assert _exit_code(_train_cli(images, labels, out, "-c", str(path))) == 0
    dice = load_package(out).config["training"]["val_mean_dice"]
    captured = capsys.readouterr()
    epoch_line = next(line for line in captured.err.splitlines() if line.startswith("epoch   1"))
    in_model_space = re.search(r"val mean Dice (\S+)", epoch_line).group(1)
    assert captured.out.strip() == (f"wrote {out} (best epoch 1, val mean Dice {dice:.4f} on the volumes' own grids; "
                                    f"{in_model_space} in model space, as its epoch line shows)")
    assert ("validation Dice per epoch is scored in model space (resampled to preprocessing.spacing_mm); the "
            "package's figures are the best epoch scored again on the volumes' own grids") in captured.err

    # a --resume of the finished run that only writes its package again ends with the same line (it had no model-space
    # figure: the epoch lines it takes it from were of the earlier session)
    (out / "model.json").unlink()
    assert _exit_code(_train_cli(images, labels, out, "-c", str(path), "--resume")) == 0
    assert capsys.readouterr().out == captured.out


def test_a_misspelt_setting_is_told_before_the_folder_needs_overwrite(tiny_set, tmp_path, capsys):
    """Before: the folder's 'pass --overwrite' came first, and the misspelling only after adding --overwrite."""
    config = tiny_training_config()
    config["training"]["epoch"] = config["training"].pop("epochs")
    path = tmp_path / "typo.json"
    path.write_text(json.dumps(config))
    out = tmp_path / "model"
    out.mkdir()
    (out / "model.json").write_text("{}")
    assert _exit_code(_train_cli(*tiny_set, out, "-c", str(path))) == 1
    err = capsys.readouterr().err
    assert err.strip() == f"medseg: error: {path}: training: unknown setting(s) ('epoch' was unexpected)", err


def test_a_float_image_among_the_labels_is_named_as_one(tmp_path, capsys):
    """A float MR image in the labels folder was refused as "label values must be whole non-negative numbers",
    without the hint an integer image gets."""
    from medseg.cli import main

    images, labels = tmp_path / "images", tmp_path / "labels"
    scan = np.random.default_rng(2).normal(100, 20, size=(16, 16, 6)).astype(np.float32)
    _write(images / "a.nii.gz", scan)
    _write(labels / "a.nii.gz", scan)
    with pytest.raises(SystemExit):
        main(["train", "--images", str(images), "--labels", str(labels), "-o", str(tmp_path / "m")])
    err = capsys.readouterr().err.strip()
    assert "label values must be whole non-negative numbers" in err
    assert err.endswith("so many values suggest an image rather than labels (are --images and --labels swapped?)")


def test_the_cli_tells_the_cases_read_and_the_first_epoch_starting(tiny_set, tmp_path, capsys, caplog, config_file,
                                                                    monkeypatch):
    """Half a minute reading 200 cases, and seconds more before the first epoch's line, passed without a word."""
    import medseg.training_cases as training_cases

    monkeypatch.setattr(training_cases, "PROGRESS_SECONDS", 0.0)  # a slow read: a line for every case after the first
    assert _exit_code(_train_cli(*tiny_set, tmp_path / "m", "-c", str(config_file), "--epochs", "1",
                                 *_FEW_STEPS)) == 0
    err = capsys.readouterr().err.splitlines()
    reading = next(n for n, line in enumerate(err) if line.startswith("reading 6 cases: 1 read ("))
    assert [re.sub(r"\d+ s", "N s", line) for line in err if line.startswith("read")] == [
        "reading 6 cases: 1 read (N s)", "reading 6 cases: 2 read (N s)", "reading 6 cases: 3 read (N s)",
        "reading 6 cases: 4 read (N s)", "reading 6 cases: 5 read (N s)", "read 6 cases in N s"]
    starting = next(n for n, line in enumerate(err) if line.startswith("setting up training to epoch 1 ("))
    assert err[starting] == ("setting up training to epoch 1 (each 2 steps of 4 patches, then validation on 2 cases; "
                             "an epoch's line comes at its end)")
    assert reading < err.index(next(line for line in err if line.startswith("training on 4 cases"))) < starting
    assert starting < err.index(next(line for line in err if line.startswith("epoch   1 ")))
    assert _exit_code(["-q", *_train_cli(*tiny_set, tmp_path / "q", "-c", str(config_file), "--epochs", "1",
                                         *_FEW_STEPS)]) == 0
    assert capsys.readouterr().err == ""
    caplog.clear()
    assert _exit_code(["-v", *_train_cli(*tiny_set, tmp_path / "v", "-c", str(config_file), "--epochs", "1",
                                         *_FEW_STEPS)]) == 0
    # -v: the log's own records show them, and they are not echoed besides
    assert not [line for line in capsys.readouterr().err.splitlines() if line.startswith(("reading ", "setting up "))]
    told = [r.getMessage() for r in caplog.records if r.name == "medseg.training_progress"]
    assert told[0].startswith("reading 6 cases: 1 read (") and told[5].startswith("read 6 cases in ")
    assert told[6].startswith("setting up training to epoch 1 (") and len(told) == 7


@pytest.mark.parametrize("layout", ["channel files", "4D image"])
def test_a_dicom_file_named_as_a_multichannel_training_image_is_told_to_be_converted(tmp_path, layout):
    """A DICOM file named case0_0000.nii.gz among a case's channel files (or as a case's 4D image of its modalities)
    was read without the training role, and told to give its folder "with series=..." as an input of `medseg infer`
    is: training leaves DICOM folders out. It gets the training advice, as a one-channel training image does."""
    from dicom_factory import make_series

    from medseg.training_cases import read_case_image

    images, labels = write_set(tmp_path / "set", count=1)
    _, paths = make_series(tmp_path / "series")
    first = images / ("case0_0000.nii.gz" if layout == "channel files" else "case0.nii.gz")
    if layout == "channel files":
        (images / "case0.nii.gz").rename(images / "case0_0001.nii.gz")
    else:
        (images / "case0.nii.gz").unlink()
    first.write_bytes(paths[0].read_bytes())
    case = pair_cases(images, labels)[0]
    assert len(case.channel_paths or []) == (2 if layout == "channel files" else 0)
    with pytest.raises(MedsegError) as raised:
        read_case_image(case, ["T1", "T2"])
    assert str(raised.value) == (
        f"{first}: a DICOM file (the DICM marker after its 128-byte preamble) named as a NIfTI image (.nii.gz); medseg "
        "trains on NIfTI, NRRD and MetaImage files, not on DICOM: convert the series it belongs to with medseg "
        "convert and give the converted file in its place")


@pytest.mark.parametrize("gzipped", [False, True])
def test_a_dicom_file_named_as_a_training_image_is_told_to_be_converted(tmp_path, capsys, gzipped):
    """A DICOM file renamed case0.nii.gz among the training images was told to give its folder "with series=... (a
    keyword argument of medseg's Python functions; medseg train has no option for it)": training leaves DICOM
    folders out, so that advice could not be followed. It says what training takes and how to get there."""
    import gzip

    from dicom_factory import make_series

    images, labels = write_set(tmp_path / "set", count=3)
    _, paths = make_series(tmp_path / "series")
    misnamed = images / "case0.nii.gz"
    misnamed.write_bytes(gzip.compress(paths[0].read_bytes()) if gzipped else paths[0].read_bytes())
    what = ("a gzip-compressed DICOM file (the DICM marker after its 128-byte preamble, once decompressed)"
            if gzipped else "a DICOM file (the DICM marker after its 128-byte preamble)")
    line = (f"{misnamed}: {what} named as a NIfTI image (.nii.gz); medseg trains on NIfTI, NRRD and MetaImage files, "
            f"not on DICOM: convert the {'decompressed ' if gzipped else ''}series it belongs to with medseg convert "
            "and give the converted file in its place")
    with pytest.raises(MedsegError) as raised:
        load_cases(pair_cases(images, labels), tiny_training_config())
    assert str(raised.value) == line
    out = tmp_path / "model"
    assert _exit_code(_train_cli(images, labels, out, "--epochs", "1")) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"medseg: error: {line}" and "series" not in err[-1].split("(.nii.gz)")[1].replace(
        "series it belongs", "")
    assert not out.exists()
