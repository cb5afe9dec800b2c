"""Training configs (medseg.train_config): reading a config file (JSON or YAML, its encodings and repeated keys),
checking it, the default config and tile made from the label files, the seeded validation split and folds, and the
forward pass's precision."""

from __future__ import annotations

import codecs
import json
import logging
import os
from pathlib import Path
from types import SimpleNamespace

import nibabel as nib
import numpy as np
import pytest
import torch
from training_factory import _exit_code, _train_cli, run, tiny_training_config

from medseg.device import native_bf16
from medseg.errors import TrainingError
from medseg.package import load_package
from medseg.training_cases import load_cases, pair_cases


def test_val_fraction_zero_validates_on_nothing():
    from medseg.train_config import split_cases
    from medseg.training_cases import TrainCase

    cases = [TrainCase(f"c{i}", Path("i"), Path("l")) for i in range(5)]
    train_, val = split_cases(cases, 0.0, seed=0)
    assert len(train_) == 5 and val == []
    assert [len(part) for part in split_cases(cases, 0.01, seed=0)] == [4, 1]  # a small fraction still holds one


def test_folds_of_one_seed_are_disjoint_and_fold_zero_is_the_plain_split():
    from medseg.train_config import split_cases
    from medseg.training_cases import TrainCase

    cases = [TrainCase(f"c{i}", Path(f"c{i}.nii.gz"), Path(f"c{i}.nii.gz")) for i in range(11)]
    order = np.random.default_rng(7).permutation(11)
    folds = [split_cases(cases, 0.2, 7, fold) for fold in range(5)]
    assert [c.case_id for c in folds[0][1]] == [f"c{i}" for i in sorted(order[:2])]
    for train_, val in folds:
        assert len(val) == 2 and len(train_) == 9 and not set(map(id, val)) & set(map(id, train_))
    validated = [c.case_id for _, val in folds for c in val]
    assert len(set(validated)) == 10  # 11 // 2 = 5 folds of two; one case is never validated
    with pytest.raises(TrainingError, match=r"training config: training.fold \(the training config\) must be in 0..4 "
                       r"\(11 cases, 2 validation cases per fold\)"):
        split_cases(cases, 0.2, 7, 5)


def test_unknown_training_precision_is_refused(tiny_set, tmp_path):
    with pytest.raises(TrainingError, match=r"training.precision: 'fp16' is not one of \['fp32', 'bf16', 'auto'\]"):
        run(tiny_training_config(precision="fp16"), *tiny_set, tmp_path / "model")
    assert not (tmp_path / "model").exists()


def test_a_gpu_that_only_emulates_bf16_is_not_taken_for_native(monkeypatch):
    """torch.cuda.is_bf16_supported() says yes on a GPU that emulates bf16 (a T4, compute capability 7.5), and
    asks the current GPU, not the one named: ``auto`` took emulated bf16 there and ``bf16`` went unwarned. Native
    bf16 is compute capability 8.0 on, of the device asked for."""
    from medseg.train_config import training_precision

    capability = {0: 9, 1: 7}  # an H100 beside a T4
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "_check_bf16_tensor_supported", lambda device: True, raising=False)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device=None: SimpleNamespace(
        major=capability[0 if device is None or torch.device(device).index is None else torch.device(device).index],
        minor=5))
    monkeypatch.setattr(torch.version, "hip", None)
    assert native_bf16("cuda:0") is True and native_bf16("cuda") is True
    assert native_bf16("cuda:1") is False
    assert training_precision("auto", "cuda:1") == ("fp32", "auto: cuda:1 has no native bf16")
    assert training_precision("auto", "cuda:0") == ("bf16", "auto: cuda:0 computes bf16 in hardware")


def test_default_config_declares_the_labels_found(tiny_set):
    from medseg.package_config import validate_config
    from medseg.train_config import default_config
    from medseg.training_cases import label_values

    values = label_values(pair_cases(*tiny_set))
    assert list(values) == [0, 1, 2, 3] and values[3] == tiny_set[1] / "case0.nii.gz"
    config = default_config(values, name="my model")
    assert config["name"] == "my_model"
    assert config["labels"] == {"0": "background", "1": "label_1", "2": "label_2", "3": "label_3"}
    package_fields = {k: v for k, v in config.items() if k != "training"}
    validate_config({**package_fields, "weights": {"file": "w.safetensors", "sha256": "0" * 64}}, "default")
    # values that skip (BraTS's 0, 1, 2, 4; a 0/255 mask; FreeSurfer's) are declared as they are, one output class
    # each: they were refused with advice to recode the files or to declare the gaps as labels never learnt
    for found, expected in (([0, 2], [0, 2]), ([1, 2, 4], [0, 1, 2, 4]), ([0, 255], [0, 255]),
                            ([0, 2, 41, 17, 53], [0, 2, 17, 41, 53]), ([0], [0, 1])):
        config = default_config(found)
        assert [int(k) for k in config["labels"]] == expected, found
        assert config["architecture"]["n_classes"] == len(expected)
        package_fields = {k: v for k, v in config.items() if k != "training"}
        validate_config({**package_fields, "weights": {"file": "w.safetensors", "sha256": "0" * 64}}, "default")
    # the guards kept: scattered values by the hundred are an image among the labels; a value above 65535 is more
    # than a segmentation holds (named with the file that holds it)
    with pytest.raises(TrainingError) as info:
        default_config({v: Path("a.nii.gz") for v in range(0, 200, 2)}, where="lab")
    assert str(info.value) == (
        "a.nii.gz: label value 2; the label files in lab hold [0, 2, 4, 6, 8, 10, 12, 14, … (100 values)]; so many "
        "values suggest an image rather than labels (are images_dir=... and labels_dir=... swapped?); if these are "
        "labels, declare them in a config of your own (train's config argument)")
    with pytest.raises(TrainingError, match=r"^b.nii.gz: label value 70000 is above 65535, the largest a segmentation "
                                            r"\(uint16\) holds$"):
        default_config({0: Path("a.nii.gz"), 1: Path("a.nii.gz"), 70000: Path("b.nii.gz")}, where="lab")


def test_default_tile_holds_the_largest_model_space_plane(tmp_path):
    """Without -c the tile (and training patch) just holds the largest RAS plane, in steps of 16, within 32..128:
    small crops are not padded to 128 × 128, and the axes are the model's, not the file's."""
    from medseg.train_config import default_config, default_tile

    def write(name, shape, affine):
        for folder in ("images", "labels"):
            (tmp_path / folder).mkdir(exist_ok=True)
            nib.save(nib.Nifti1Image(np.zeros(shape, np.uint8), affine), str(tmp_path / folder / name))

    # stored (z, y, x): voxel axis 0 runs along S, so the RAS plane is 50 (x) × 35 (y)
    permuted = np.array([[0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]], float)
    write("a.nii.gz", (20, 35, 50), permuted)
    write("b.nii.gz", (40, 30, 8), np.diag([-1.0, -1, 1, 1]))  # LPS order: same axes
    cases = pair_cases(tmp_path / "images", tmp_path / "labels")
    assert default_tile(cases) == [64, 48]
    assert default_tile(cases, slice_axis=0) == [48, 32]  # y 35 -> 48, z 20 -> 32 (the smallest tile)
    write("c.nii.gz", (600, 100, 5), np.eye(4))
    assert default_tile(pair_cases(tmp_path / "images", tmp_path / "labels")) == [128, 112]
    assert default_config([0, 1], tile=[64, 48])["inference"]["roi_size"] == [64, 48]
    assert default_config([0, 1])["inference"]["roi_size"] == [128, 128]
    (tmp_path / "images" / "c.nii.gz").write_bytes(b"not a nifti")  # passed over: the checks of every case name it
    assert default_tile(pair_cases(tmp_path / "images", tmp_path / "labels")) == [64, 48]


def test_default_tile_of_labels_cropped_to_boxes_is_their_images(tmp_path):
    """Labels cropped to a box of their image's grid (3D Slicer's segmentations) are zero-padded onto it, so the tile
    must hold the images' plane: sized from the boxes' headers, a 100 × 90 image with a 20 × 20 box got 32 × 32."""
    from medseg.train_config import default_tile

    affine = np.diag([0.8, 0.8, 2.5, 1.0])
    box_affine = affine.copy()
    box_affine[:3, 3] = affine[:3, :3] @ [10, 30, 2]  # the origin moved by whole voxels
    for folder in ("images", "labels"):
        (tmp_path / folder).mkdir()
    nib.save(nib.Nifti1Image(np.zeros((100, 90, 8), np.float32), affine), tmp_path / "images" / "a.nii.gz")
    nib.save(nib.Nifti1Image(np.ones((20, 20, 4), np.uint8), box_affine), tmp_path / "labels" / "a.nii.gz")
    assert default_tile(pair_cases(tmp_path / "images", tmp_path / "labels")) == [112, 96]


def test_default_tile_names_a_gzip_image_named_without_gz_as_the_readers_do(tmp_path):
    """Without -c the tile is sized from the headers (read_grid; the images', since a label may be a box of its
    image's grid): a gzip file named .nii said nibabel's "cannot read header (Cannot work out file type …)", where -c
    and `medseg infer` name the missing .gz. The tile passes such a file over, and the checks of every case name it,
    as they name the other cases' problems (the tile stopped at the first, so a run showed one broken file)."""
    from medseg.errors import ImageReadError
    from medseg.io.images import read_grid
    from medseg.io.nifti import read_nifti
    from medseg.train_config import default_tile

    for folder in ("images", "labels"):
        (tmp_path / folder).mkdir()
        nib.save(nib.Nifti1Image(np.zeros((20, 30, 8), np.uint8), np.eye(4)), tmp_path / folder / "case1.nii.gz")
    image = tmp_path / "images" / "case1.nii"
    (tmp_path / "images" / "case1.nii.gz").rename(image)
    message = rf"^{image}: a gzip-compressed file named without .gz; name it case1.nii.gz$"
    for reader in (read_grid, read_nifti):
        with pytest.raises(ImageReadError, match=message):
            reader(image)
    cases = pair_cases(tmp_path / "images", tmp_path / "labels")
    assert default_tile(cases) == [32, 32]  # no header read: the smallest tile
    with pytest.raises(ImageReadError, match=message):
        load_cases(cases, tiny_training_config())


BAD_CONFIGS = {
    "misspelt setting": (lambda c: c["training"].update(epoch=2),
                         "training: unknown setting(s) ('epoch' was unexpected)"),
    "misspelt augment": (lambda c: c["training"]["augment"].update(rotate_degg=90),
                         "training.augment: unknown setting(s) ('rotate_degg' was unexpected)"),
    "text for a number": (lambda c: c["training"].update(epochs="two"),
                          "training.epochs: 'two' is not of type 'integer'"),
    "fractional count": (lambda c: c["training"].update(epochs=2.7), "training.epochs: 2.7 is not of type 'integer'"),
    "one label name twice": (lambda c: c["labels"].update({"2": c["labels"]["1"]}),
                             "labels 1 and 2 are both named 'ellipsoid'; give each label a name of its own"),
    "gamma not a range": (lambda c: c["training"]["augment"].update(gamma=1.2),
                          "training.augment.gamma: 1.2 is not of type 'array', 'null'"),
    "short patch": (lambda c: c["training"].update(patch_size=[32]), "training.patch_size: [32] is too short"),
    "negative seed": (lambda c: c["training"].update(seed=-1), "training.seed: -1 is less than the minimum of 0"),
    "training not a mapping": (lambda c: c.update(training=[1, 2]), "training: [1, 2] is not of type 'object'"),
    "no preprocessing": (lambda c: c.pop("preprocessing"), "'preprocessing' is a required property"),
    "label key": (lambda c: c["labels"].update(one="x"), "invalid model config at labels"),
    "instance norm, small patch": (
        lambda c: (c["architecture"].update(norm="instance", depth=4), c["training"].update(patch_size=[16, 16]),
                   c["inference"].update(roi_size=[32, 32])),
        "training.patch_size [16, 16] leaves one cell at the bottom of a depth-4 U-Net, where instance norm is "
        "undefined; make a side larger than 16"),
    "batch norm, one slice per batch": (
        lambda c: (c["architecture"].update(depth=4), c["training"].update(batch_size=1, patch_size=[16, 16])),
        "training.patch_size [16, 16] leaves one cell at the bottom of a depth-4 U-Net, where batch norm with "
        "training.batch_size 1 is undefined"),
    "gamma the wrong way round": (lambda c: c["training"]["augment"].update(gamma=[1.5, 0.5]),
                                  "training.augment.gamma: [1.5, 0.5] gives its larger bound first; give [smallest, "
                                  "largest]"),
    "NaN learning rate": (lambda c: c["training"].update(learning_rate=float("nan")),
                          "training.learning_rate: nan is not a finite number"),
    "infinite noise": (lambda c: c["training"]["augment"].update(noise_std=float("inf")),
                       "training.augment.noise_std: inf is not a finite number"),
    "infinite gamma bound": (lambda c: c["training"]["augment"].update(gamma=[0.5, float("inf")]),
                             "training.augment.gamma.1: inf is not a finite number"),
    "NaN overlap": (lambda c: c["inference"].update(overlap=float("nan")), "inference.overlap: nan is not a finite "
                                                                            "number"),
    # training.data takes keys of any name (source, url), each a note of the card; a misspelt licence was one of them,
    # the card's licence line reading 'not stated' without a word
    "misspelt data licence": (lambda c: c["training"].update(data={"description": "phantoms", "licnese": "CC0"}),
                              "training.data.licnese: no 'licence' (or 'license') beside it, which the model card's "
                              "licence line reads (it would say 'not stated'): misspelt? (any other key is shown as "
                              "a note of its own)"),
    "misspelt data description": (lambda c: c["training"].update(data={"Description": "phantoms", "licence": "CC0"}),
                                  "training.data.Description: no 'description' beside it, which the model card's "
                                  "data line reads (it would say 'not stated'): misspelt?"),
    "more than 256 labels": (
        lambda c: (c["architecture"].update(n_classes=258), c.update(labels={str(v): f"l{v}" for v in range(258)})),
        "258 labels, more than the 256 medseg train supports (its class indices are kept as 8-bit values)"),
}


@pytest.mark.parametrize("notes", [{"licensor": "a hospital"}, {"descriptor": "T1-weighted"},
                                   {"description": "phantoms", "licensing_body": "an ethics board"}])
def test_data_notes_that_are_words_of_their_own_are_not_taken_for_misspellings(notes):
    """training.data takes notes of any name: 'licensor' or 'descriptor' (two letters from 'license' and
    'description', and words of their own) were refused as misspelt, configs that trained before."""
    from medseg.train_config import check_config

    config = tiny_training_config()
    config["training"]["data"] = dict(notes)
    assert check_config(config)["data"] == notes


@pytest.mark.parametrize("key", ["licnese", "Licence", "licens", "descripton", "Description", "discription"])
def test_data_keys_one_slip_from_description_or_licence_are_refused(key):
    from medseg.train_config import check_config

    config = tiny_training_config()
    config["training"]["data"] = {key: "x"}
    with pytest.raises(TrainingError, match=rf"training.data.{key}: no '(description|licence)"):
        check_config(config)


@pytest.mark.parametrize("kind", sorted(BAD_CONFIGS))
def test_cli_bad_config_fails_before_any_volume_is_read(tmp_path, capsys, kind):
    change, expected = BAD_CONFIGS[kind]
    config = tiny_training_config()
    change(config)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(config))
    images, labels = tmp_path / "images", tmp_path / "labels"
    for folder in (images, labels):  # unreadable volumes: reading them first would fail on them instead
        folder.mkdir()
        (folder / "a.nii.gz").write_bytes(b"not a volume")
    out = tmp_path / "model"
    assert _exit_code(_train_cli(images, labels, out, "-c", str(path))) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"medseg: error: {path}: ") and expected in err[0], err
    assert not out.exists()


def test_a_setting_given_twice_in_a_config_is_one_line(tmp_path, capsys):
    """JSON and YAML readers keep the last of two equal keys without a word: which one the run used was a guess."""
    images, labels = tmp_path / "images", tmp_path / "labels"
    for folder in (images, labels):
        folder.mkdir()
    for name, text, expected in (
            ("twice.json", '{"name": "a", "training": {"epochs": 2, "epochs": 3}}',
             "not valid JSON (the key 'epochs' is given twice)"),
            ("twice.yaml", "name: a\ntraining:\n  epochs: 2\n  epochs: 3\n",
             "not valid YAML at line 4, column 3: the key 'epochs' is given twice")):
        path = tmp_path / name
        path.write_text(text)
        assert _exit_code(_train_cli(images, labels, tmp_path / "model", "-c", str(path))) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith(f"medseg: error: {path}: {expected}"), err
        assert "line 4" in err[0] or name.endswith(".json")


def test_yaml_merge_keys_and_keys_of_other_types_are_not_taken_for_repeats(tmp_path):
    """The repeated-key check must leave YAML's own ways alone: a merge (<<) whose keys the mapping overrides, and
    keys that are equal only as Python values (1, true, 1.0)."""
    from medseg.train_config import read_config

    path = tmp_path / "merge.yaml"
    path.write_text("name: m\nbase: &b {x: 1, y: 2}\nother: {<<: *b, y: 3}\nodd: {1: a, true: b, 1.0: c}\n")
    config = read_config(path)  # the last three are one key to Python, as PyYAML has always read them
    assert config["other"] == {"x": 1, "y": 3} and config["odd"] == {"1": "c"}


def test_a_config_that_is_not_utf8_is_one_line(tmp_path, capsys):
    images, labels = tmp_path / "images", tmp_path / "labels"
    for folder in (images, labels):
        folder.mkdir()
    # a UTF-8 byte order mark before a bad byte on line 1 counts in its column, as an editor shows the raw file
    for name, data in (("latin1.yaml", "name: caf\u00e9\n".encode("latin-1")),
                       ("utf8bom.yaml", b"\xef\xbb\xbfname: caf\xe9\n")):
        path = tmp_path / name
        path.write_bytes(data)
        assert _exit_code(_train_cli(images, labels, tmp_path / "model", "-c", str(path))) == 1
        err = capsys.readouterr().err.strip().splitlines()
        position = data.index(b"\xe9") if b"\xe9" in data else 0
        assert err == [f"medseg: error: {path}: not UTF-8 text (byte {data[position]:#04x} on line 1, column "
                       f"{position + 1}); save the config as UTF-8"]


@pytest.mark.parametrize("suffix", [".json", ".yaml"])
def test_a_utf16_config_is_read_with_its_byte_order_mark_and_named_without_it(tmp_path, suffix):
    """Windows PowerShell 5 writes UTF-16 (`... > config.yaml`): it was refused as "not UTF-8 text (byte 0xff on line
    1, column 1)", where a dataset.json in UTF-16 is read; without its byte order mark, as "not valid JSON"."""
    from medseg.errors import TrainingError
    from medseg.train_config import read_config

    text = ('{"name": "caf\u00e9", "labels": {"0": "background", "1": "x"}}' if suffix == ".json" else
            "name: caf\u00e9\nlabels: {0: background, 1: x}\n")
    for encoding in ("utf-16", "utf-16-be"):  # "utf-16" writes the mark, little-endian here
        path = tmp_path / f"config{suffix}"
        path.write_bytes((codecs.BOM_UTF16_BE if encoding == "utf-16-be" else b"") + text.encode(encoding))
        config = read_config(path)
        assert config["name"] == "caf\u00e9" and config["labels"] == {"0": "background", "1": "x"}
    path.write_bytes(text.encode("utf-16-le"))
    with pytest.raises(TrainingError) as raised:
        read_config(path)
    assert str(raised.value) == (f"{path}: holds NUL bytes, as UTF-16 text without a byte order mark does; save the "
                                 "config as UTF-8")
    # UTF-32's mark (little-endian: UTF-16's and two NULs) was read as UTF-16: "not valid YAML (unacceptable character
    # #x0000 …)" or "not valid JSON (Expecting value …)"
    for encoding in ("utf-32", "utf-32-be"):
        path.write_bytes((codecs.BOM_UTF32_BE if encoding == "utf-32-be" else b"") + text.encode(encoding))
        with pytest.raises(TrainingError) as raised:
            read_config(path)
        assert str(raised.value) == f"{path}: saved as UTF-32; save the config as UTF-8"


def test_a_package_config_without_training_record_is_no_training_config(tiny_set, tmp_path, capsys, caplog):
    """An inference-only model.json (no training record) trained from scratch on the defaults, its weights block
    dropped without a word; a config without a training section now says it takes the defaults."""
    package = load_package("phantom").config
    package.pop("training", None)
    path = tmp_path / "inference_only.json"
    path.write_text(json.dumps(package))
    assert _exit_code(_train_cli(*tiny_set, tmp_path / "model", "-c", str(path))) == 1
    assert capsys.readouterr().err.strip() == (
        f"medseg: error: {path}: a model package's model.json (it names its weights), not a training config; start "
        "from one in configs/train/ of medseg's source tree (a wheel install has none)")
    from medseg.train_config import read_config

    bare = tiny_training_config()
    del bare["training"]
    path.write_text(json.dumps(bare))
    with caplog.at_level("WARNING"):
        read_config(path)
    assert f"{path}: no training section: every setting not given on the command line takes its default (20 " \
           "epochs of 100 steps, batch 16, learning rate 0.001; examples: configs/train/ of medseg's source tree (a " \
           "wheel install has none))" in caplog.messages


@pytest.mark.parametrize("training", [[1, 2], "notes", 3])
def test_a_package_config_whose_training_is_no_mapping_is_still_no_training_config(tmp_path, training):
    """A model.json (its weights named) whose training entry is a list, a text or a number was an AttributeError's
    traceback where the file is named as a package's config."""
    from medseg.train_config import read_config

    path = tmp_path / "model.json"
    path.write_text(json.dumps({"weights": {"file": "weights.safetensors"}, "training": training}))
    with pytest.raises(TrainingError) as raised:
        read_config(path)
    assert str(raised.value) == (f"{path}: a model package's model.json (it names its weights), not a training "
                                 "config; start from one in configs/train/ of medseg's source tree (a wheel install "
                                 "has none)")


def test_a_config_saved_with_a_byte_order_mark_is_read(tmp_path):
    from medseg.train_config import read_config

    for suffix in (".json", ".yaml"):
        path = tmp_path / f"bom{suffix}"
        path.write_text(json.dumps(tiny_training_config()), encoding="utf-8-sig")
        assert read_config(path)["training"]["epochs"] == 2


def test_yaml_errors_are_one_line(tmp_path, capsys, tiny_set):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\n  bad: [1\n")
    assert _exit_code(_train_cli(*tiny_set, tmp_path / "m", "-c", str(bad))) == 1
    err = capsys.readouterr().err.strip().splitlines()
    # in medseg's words, as a JSON config's (PyYAML's were "mapping values are not allowed here in "<unicode
    # string>", line 2, column 6: bad: [1 ^")
    assert err == [f"medseg: error: {bad}: not valid YAML at line 2, column 6: a mapping ('key: value') where a "
                   "value was expected: a value holding ': ' is written in quotes, and a key indented deeper than the "
                   "key above it, which has its value, belongs to no mapping"]
    bad.write_text("name: x\ntraining:\n  epochs: 2\n  augment: [flip, rotate\n")
    assert _exit_code(_train_cli(*tiny_set, tmp_path / "m", "-c", str(bad))) == 1
    assert capsys.readouterr().err.strip() == (
        f"medseg: error: {bad}: not valid YAML: cut short, it ends at line 4, column 24 with the '[' opened at line 4, "
        "column 12 unclosed (an interrupted copy or save, or a closing bracket or quote missing)")
    assert not (tmp_path / "m").exists()


def test_a_yaml_config_is_read_as_its_author_means_it(tmp_path):
    """Whole-number label keys (a TypeError traceback from the schema check), 1e-3 (text for PyYAML's YAML 1.1) and
    a version written as a number read as the same config in JSON."""
    import yaml

    from medseg.train_config import check_config, read_config

    config = tiny_training_config()
    text = yaml.safe_dump({**config, "labels": {int(k): v for k, v in config["labels"].items()}, "version": 2})
    text = text.replace(f"learning_rate: {config['training']['learning_rate']}", "learning_rate: 1e-3")
    assert "learning_rate: 1e-3" in text and "\n  0: background" in text
    path = tmp_path / "config.yaml"
    path.write_text(text)
    read = read_config(path)
    assert read["labels"] == config["labels"] and read["version"] == "2"
    assert read["training"]["learning_rate"] == 0.001
    assert check_config(read, str(path))["learning_rate"] == 0.001


def test_label_values_that_skip_train_as_they_are():
    """An organ set labelled 1, 3, 7 (no config, no dataset.json) was refused with advice to recode the files; its
    labels are now 0, 1, 3, 7, four output classes, and the references scored later keep their values too."""
    from medseg.train_config import default_config

    config = default_config({0: Path("a.nii.gz"), 1: Path("a.nii.gz"), 3: Path("a.nii.gz"), 7: Path("a.nii.gz")},
                            where="labelsTr")
    assert config["labels"] == {"0": "background", "1": "label_1", "3": "label_3", "7": "label_7"}
    assert config["architecture"]["n_classes"] == 4


def test_whole_number_floats_in_a_config_file_are_counts(tmp_path, config_file):
    """A config written with 2.0 (YAML, a script's JSON) made a card reading "2.0 steps" and, for the U-Net's depth,
    a TypeError traceback."""
    from medseg.train_config import read_config

    config = json.loads(config_file.read_text())
    config["architecture"]["depth"] = 2.0
    config["inference"]["roi_size"] = [32.0, 32.0]
    config["training"].update(steps_per_epoch=3.0, patch_size=[32.0, 32.0], learning_rate=1.0)
    (tmp_path / "floats.json").write_text(json.dumps(config))
    read = read_config(tmp_path / "floats.json")
    assert read["architecture"]["depth"] == 2 and isinstance(read["architecture"]["depth"], int)
    assert read["inference"]["roi_size"] == [32, 32] and all(isinstance(v, int) for v in read["inference"]["roi_size"])
    training = read["training"]
    assert isinstance(training["steps_per_epoch"], int) and all(isinstance(v, int) for v in training["patch_size"])
    assert isinstance(training["learning_rate"], float)  # a number that may be fractional stays as written


def test_the_short_hippocampus_recipe_is_the_shipped_one_shortened_with_a_moving_average():
    """configs/train/hippocampus-short.json differs from the shipped recipe only in its name, description, epoch
    count and moving average: the same split (so its figures are on the same 40 cases), network and augmentation."""
    from medseg.train_config import check_config, read_config

    folder = Path(__file__).parents[1] / "configs" / "train"
    shipped, short = read_config(folder / "hippocampus.json"), read_config(folder / "hippocampus-short.json")
    assert check_config(short)["epochs"] == 20 and short["training"]["ema_decay"] == 0.999
    assert short["name"] == "hippocampus-short" and "within 20 minutes" in short["description"]
    for config in (shipped, short):
        for key in ("name", "description"):
            config.pop(key)
        for key in ("epochs", "ema_decay"):
            config["training"].pop(key, None)
    assert short == shipped


def test_tile_side_holds_the_plane_with_two_cells_at_the_bottom():
    from medseg.train_config import tile_side

    assert [tile_side(side) for side in (10, 32, 35, 48, 49)] == [32, 32, 48, 48, 64]
    assert [tile_side(side, 4) for side in (3, 8, 9)] == [8, 8, 12]


def test_a_training_config_or_dataset_json_larger_than_its_cap_is_not_read_whole(tmp_path, monkeypatch, caplog):
    """A training config and a dataset.json were read whole (``read_bytes``): a multi-GB file of that name filled
    memory before it was refused. Each is read to one byte past its cap now, and refused by its size; a config from
    a named pipe (``-c <(...)``) is still read."""
    import medseg.io.dataset_json as dataset_json
    import medseg.train_config as train_config
    from medseg.io.dataset_json import declared_names, read_dataset_json

    monkeypatch.setattr(train_config, "MAX_CONFIG_BYTES", 4096)
    monkeypatch.setattr(dataset_json, "MAX_DATASET_JSON_BYTES", 4096)
    read = []
    real_open = open

    def counting_open(path, mode="r", *args, **kwargs):  # what each read asks for
        handle = real_open(path, mode, *args, **kwargs)
        real_read = handle.read
        handle.read = lambda size=-1: read.append(size) or real_read(size)
        return handle
    big = tmp_path / "config.json"
    big.write_text(json.dumps({"name": "x", "pad": "y" * 8000}))
    monkeypatch.setattr("builtins.open", counting_open)
    with pytest.raises(TrainingError) as raised:
        train_config.read_config(big)
    assert str(raised.value) == (f"{big}: more than 4 kB, where a training config holds at most 4 kB (as the "
                                 "package's model.json it becomes); not a training config")
    assert read == [4097]
    labels = {"0": "background", "1": "a"}
    dataset = tmp_path / "dataset.json"
    dataset.write_text(json.dumps({"labels": labels, "training": [{"image": "x" * 100}] * 60}))
    read.clear()
    with caplog.at_level(logging.WARNING, logger="medseg.io.dataset_json"):
        assert read_dataset_json(dataset) is None
        assert declared_names(dataset) is None
    assert read == [4097, 4097]
    assert [record.getMessage() for record in caplog.records] == [
        f"{dataset}: not read (more than 4 kB, where a dataset.json holds at most 4 kB); its training list and label "
        "names are not used (the cases are paired by file name; labels are named label_N)"]
    dataset.write_text(json.dumps({"labels": labels}))  # under the cap: read as before
    assert read_dataset_json(dataset).names == {0: "background", 1: "a"}
    if hasattr(os, "mkfifo"):  # a named pipe of that name is passed over, not waited on for a writer
        piped = tmp_path / "piped" / "dataset.json"
        piped.parent.mkdir()
        os.mkfifo(piped)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="medseg.io.dataset_json"):
            assert read_dataset_json(piped) is None and declared_names(piped) is None
        assert [record.getMessage() for record in caplog.records] == [
            f"{piped}: not read (not a regular file); its training list and label names are not used (the cases are "
            "paired by file name; labels are named label_N)"]
    if hasattr(os, "mkfifo"):  # -c <(...): a pipe is a config file too
        monkeypatch.setattr("builtins.open", real_open)
        pipe = tmp_path / "config-pipe.json"
        os.mkfifo(pipe)
        import threading
        writer = threading.Thread(target=lambda: pipe.write_text(json.dumps({"name": "piped"})))
        writer.start()
        assert train_config.read_config(pipe)["name"] == "piped"
        writer.join(5)


def test_every_problem_of_a_config_is_named_in_one_run():
    """n_classes was named, and once fixed, in_channels: one run per mistake. Each problem names its key."""
    from medseg.train_config import check_config

    config = tiny_training_config()
    config["architecture"].update(n_classes=5, in_channels=2)
    with pytest.raises(TrainingError) as info:
        check_config(config, "my.json")
    assert str(info.value) == (
        "my.json: 2 problems: (1) 4 labels ([0, 1, 2, 3]) for n_classes=5: the network has one output class per label "
        "(class k stands for the k-th smallest value); (2) in_channels=2 does not match context_slices=1 (expected 3)")
    config["architecture"]["in_channels"] = "three"  # errors of the schema: every one, of both sections
    config["training"]["batch_size"] = 0
    with pytest.raises(TrainingError) as info:
        check_config(config, "my.json")
    assert str(info.value) == (
        "my.json: 2 problems: (1) invalid model config at architecture/in_channels: 'three' is not of type 'integer'; "
        "(2) training.batch_size: 0 is less than the minimum of 1")


def test_a_config_with_hundreds_of_problems_names_the_first_ones_in_a_line_of_bounded_length():
    """299 blank label names made one line of 19,540 characters, every problem of a mistake made 299 times."""
    from medseg.train_config import PROBLEMS_SHOWN, check_config

    config = tiny_training_config()
    config["labels"] = {"0": "background", **{str(value): "" for value in range(1, 300)}}
    config["architecture"]["n_classes"] = 300
    with pytest.raises(TrainingError) as info:
        check_config(config, "my.json")
    text = str(info.value)
    assert text.startswith("my.json: 299 problems: (1) invalid model config at labels/1: '' should be non-empty; ")
    assert text.count("should be non-empty") == PROBLEMS_SHOWN == 10
    assert text.endswith(f"({PROBLEMS_SHOWN}) invalid model config at labels/{sorted(map(str, range(1, 300)))[9]}: "
                         f"'' should be non-empty; … and 289 more (the first {PROBLEMS_SHOWN} shown)")
    assert "\n" not in text and len(text) < 1000
