"""The config a training run uses, worked out before any volume is read (medseg.training_setup)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO
from training_factory import _FEW_STEPS, _dataset_folder, _exit_code, _train_cli, tiny_training_config

from medseg.errors import TrainingError
from medseg.package import load_package
from medseg.synthetic import write_phantom
from medseg.training_cases import pair_cases
from medseg.training_setup import (
    background_misnamed,
    dataset_names_disagree,
    default_training_config,
    outcome_text,
    read_given_config,
    recipe_codes_copied,
    recipe_notes_copied,
    with_overrides,
)


def test_overrides_replace_training_settings_only():
    config = {"name": "m", "training": {"epochs": 5, "seed": 1}}
    assert with_overrides(config, {"epochs": 2}) == {"name": "m", "training": {"epochs": 2, "seed": 1}}
    assert config["training"]["epochs"] == 5  # the caller's config is left as it was
    assert with_overrides({"training": 3}, {"epochs": 2}) == {"training": 3}  # check_config names the problem


def test_a_wrong_value_in_a_config_file_is_told_though_an_override_replaces_it(tmp_path):
    path = tmp_path / "train.json"
    config = json.loads((REPO / "configs" / "train" / "phantom.json").read_text())
    config["training"]["epochs"] = 0
    path.write_text(json.dumps(config))
    with pytest.raises(TrainingError, match=rf"^{path}.*epochs"):
        read_given_config(path, {"epochs": 3})


@pytest.fixture
def folders(tmp_path):
    images, labels = tmp_path / "task" / "imagesTr", tmp_path / "task" / "labelsTr"
    for seed in (1, 2):
        write_phantom(images / f"case{seed}.nii.gz", labels / f"case{seed}.nii.gz", shape=(40, 40, 10), seed=seed)
    return images, labels


def test_a_default_config_takes_the_label_values_found_and_a_dataset_jsons_names(folders, tmp_path):
    images, labels = folders
    pairs = pair_cases(images, labels)
    told = []

    def tell(kind, text):
        told.append((kind, text))

    made = default_training_config(images, labels, tmp_path / "out", pairs, {"epochs": 2}, False, tell)
    assert made.config["name"] == "out" and made.config["training"]["epochs"] == 2
    assert made.config["labels"] == {"0": "background", "1": "label_1", "2": "label_2", "3": "label_3"}
    assert made.dataset_path is None and told == []
    dataset = images.parent / "dataset.json"
    dataset.write_text(json.dumps({"labels": {"background": 0, "ball": 1, "box": 2, "tube": 3}}))
    made = default_training_config(images, labels, tmp_path / "out", pairs, {}, False, tell)
    assert made.config["labels"] == {"0": "background", "1": "ball", "2": "box", "3": "tube"}
    assert made.dataset_path == dataset
    assert told == [("note", f"label names from {dataset}: 0 background, 1 ball, 2 box, 3 tube")]
    # a -c config naming them otherwise is told, the config's names being the model's
    config = {"labels": {"0": "background", "1": "ellipsoid", "2": "box", "3": "tube"}}
    assert dataset_names_disagree(images, labels, config, tmp_path / "c.json") == (
        f"{dataset} names labels 1 ball; the config {tmp_path / 'c.json'} names them 1 ellipsoid, and its names "
        "are the model's")
    assert dataset_names_disagree(images, labels, made.config, tmp_path / "c.json") is None
    # labels only the config declares (gaps filled to keep the files' values 1, 3, 7 as they are) name nothing
    # otherwise: no warning ("names labels 4 no label; the config names them 4 unused_4" was one)
    gaps = {"labels": {**made.config["labels"], "4": "unused_4", "5": "unused_5"}}
    assert dataset_names_disagree(images, labels, gaps, tmp_path / "c.json") is None
    # a label the dataset.json has and the config lacks still is one
    assert dataset_names_disagree(images, labels, {"labels": {"0": "background", "1": "ball", "2": "box"}},
                                  tmp_path / "c.json") == (
        f"{dataset} names labels 3 tube; the config {tmp_path / 'c.json'} names them 3 no label, and its names are "
        "the model's")
    dataset.write_text(json.dumps({"labels": {"background": 0, "ball": 1, "box": 2}}))
    with pytest.raises(TrainingError, match=rf"case\d.nii.gz: label value 3, which {dataset} does not declare"):
        default_training_config(images, labels, tmp_path / "out", pairs, {}, resume=False)


def test_a_label_files_header_warning_is_told_once_without_a_config(tmp_path, caplog):
    """Without -c the label files are read twice, for their values (the default config) and as the cases: a label
    whose header's sform and qform disagree was warned about twice, one line after the other."""
    import nibabel as nib
    from training_factory import write_set

    images, labels = write_set(tmp_path / "set")
    label = nib.load(labels / "case2.nii.gz")
    shifted = label.affine.copy()
    shifted[0, 3] += 3.0
    odd = nib.Nifti1Image(np.asarray(label.dataobj), label.affine)
    odd.set_qform(shifted, code=1)
    odd.set_sform(label.affine, code=2)
    nib.save(odd, labels / "case2.nii.gz")
    with caplog.at_level("WARNING", logger="medseg"):
        assert _exit_code([*_train_cli(images, labels, tmp_path / "model", "--epochs", "1"), *_FEW_STEPS]) == 0
    told = [r.getMessage() for r in caplog.records if "sform and qform disagree" in r.getMessage()]
    assert told == [f"{labels / 'case2.nii.gz'}: the header's sform and qform disagree, placing voxels up to 3 mm "
                    "apart: the sform is used (as nibabel does); a tool that reads the qform shows the input, and its "
                    "segmentation, elsewhere"]


def test_a_dataset_json_is_named_as_the_folders_beside_it_are_given(folders, tmp_path, monkeypatch):
    """Folders given relative to the working folder had their files named so, and the dataset.json beside them by its
    absolute path, in the same line ("task/labelsTr/case1.nii.gz: label value 3, which /home/…/task/dataset.json does
    not declare"). It is now named as the folders are given; found through folders linked from elsewhere, by its
    absolute path (a place not given)."""
    from medseg.io.dataset_json import find_dataset_json

    images, labels = folders
    dataset = images.parent / "dataset.json"
    dataset.write_text(json.dumps({"labels": {"background": 0, "ball": 1, "box": 2}}))
    monkeypatch.chdir(tmp_path)
    relative = (Path("task") / "imagesTr", Path("task") / "labelsTr")
    assert find_dataset_json(*relative) == Path("task") / "dataset.json"
    assert find_dataset_json(images, labels) == dataset
    with pytest.raises(TrainingError) as info:
        default_training_config(*relative, tmp_path / "out", pair_cases(*relative), {}, resume=False)
    assert str(info.value).startswith(f"{Path('task') / 'labelsTr'}{os.sep}case")
    assert ": label value 3, which task/dataset.json does not declare (its labels [0, 1, 2])" in str(info.value)
    monkeypatch.chdir(labels)
    assert find_dataset_json(Path("..") / "imagesTr", Path("..") / "labelsTr") == Path("..") / "dataset.json"
    linked = tmp_path / "linked"
    linked.mkdir()
    (linked / "imagesTr").symlink_to(images)
    (linked / "labelsTr").symlink_to(labels)
    monkeypatch.chdir(tmp_path)
    assert find_dataset_json(Path("linked") / "imagesTr", Path("linked") / "labelsTr") == dataset


def test_a_label_named_like_the_background_is_warned_about():
    assert background_misnamed({"labels": {"0": "background", "1": "liver"}}, "c.json") is None
    assert background_misnamed({"labels": {"0": "liver", "1": " Background"}}, "c.json") == (
        "c.json: label 1 is named ' Background', but value 0 is the background (named 'liver'): label 1 is trained, "
        "scored and reported as a structure; are the names swapped?")


@pytest.mark.parametrize("training, model_space, text", [
    ({"best_epoch": 7, "val_mean_dice": 0.91234, "val_cases": ["a"]}, {}, "best epoch 7, val mean Dice 0.9123"),
    ({"best_epoch": 7, "val_mean_dice": 0.91234, "val_cases": ["a"], "val_scored_on": "input grid"}, {7: 0.9},
     "best epoch 7, val mean Dice 0.9123 on the volumes' own grids; 0.9000 in model space, as its epoch line shows"),
    ({"best_epoch": 3, "val_mean_dice": None, "val_cases": ["a", "b"]}, {},
     "epoch 3; no label could be scored in the 2 validation cases"),
    ({"best_epoch": 3, "val_mean_dice": None, "val_cases": ["a"]}, {},
     "epoch 3; no label could be scored in the 1 validation case"),
    ({"best_epoch": 3, "val_mean_dice": None, "val_cases": []}, {}, "epoch 3, not validated"),
    ({"best_epoch": 3, "val_mean_dice": 0.0, "val_cases": ["a"], "val_labels_absent": [1]}, {},
     "last epoch 3; no validation case holds a foreground label"),
])
def test_the_outcome_names_the_epoch_kept_and_its_figure(training, model_space, text):
    assert outcome_text({"labels": {"0": "background", "1": "x"}, "training": training}, model_space) == text


def test_the_training_recipes_are_pointed_to_where_they_are(capsys):
    """`medseg train --help`, the refusal of a package's model.json and the warning of a config without a training
    section said "see configs/train/", which an installed wheel has none of (it holds the package alone): they name
    the folder of medseg's source tree, which holds the recipes and is not package data."""
    import tomllib

    from medseg.cli import main
    from medseg.train_config import RECIPES

    assert RECIPES == "configs/train/ of medseg's source tree (a wheel install has none)"
    assert sorted(path.name for path in (REPO / RECIPES.split()[0]).glob("*.json")) == [
        "hippocampus-short.json", "hippocampus.json", "phantom.json"]
    package_data = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert list(package_data) == ["medseg"] and not any("configs" in each for each in package_data["medseg"])
    with pytest.raises(SystemExit) as info:
        main(["train", "--help"])
    assert info.value.code == 0
    assert f"examples in {RECIPES}." in " ".join(capsys.readouterr().out.split())


def test_a_config_carrying_a_shipped_recipes_card_texts_is_warned_about(tmp_path, monkeypatch):
    """configs/train/hippocampus-short.json with only its name edited, on one's own data, wrote a model card
    describing the shipped run ("200 of its labelled T1-weighted MR crops", "shortened to 20 epochs"), without a
    word: only shipped model names were checked."""
    import medseg

    short = json.loads((REPO / "configs" / "train" / "hippocampus-short.json").read_text())
    path = tmp_path / "mine.json"
    tail = ("the model card will carry them as they are, describing that recipe's run and data, not this one's; edit "
            "them in the config")
    assert recipe_notes_copied({**short, "name": "mine"}, path, ["0" * 64]) == (
        f"{path}: its description, training.data description and training.data licence are word for word those of "
        f"configs/train/hippocampus-short.json: {tail}")
    # the data notes alone, as the shipped model (and both hippocampus configs) have them
    full = json.loads((REPO / "configs" / "train" / "hippocampus.json").read_text())
    assert recipe_notes_copied({**full, "name": "mine", "description": "my own"}, path, []) == (
        f"{path}: its training.data description and training.data licence are word for word those of the shipped "
        f"model hippocampus: {tail}")
    # an installed medseg has no configs/train/: the shipped models' configs are compared
    monkeypatch.setattr(medseg, "__file__", str(tmp_path / "site-packages" / "medseg" / "__init__.py"))
    assert recipe_notes_copied({**short, "name": "mine"}, path, []) == (
        f"{path}: its training.data description and training.data licence are word for word those of the shipped "
        f"model hippocampus: {tail}")
    monkeypatch.undo()
    # the recipe file itself, as it comes
    given = REPO / "configs" / "train" / "phantom.json"
    phantom = json.loads(given.read_text())
    assert recipe_notes_copied(phantom, given, []) == (
        f"{given}: a recipe that comes with medseg: its description, training.data description and training.data "
        "licence describe the run and data it was made for, and the model card will carry them as they are; for a "
        "run on other data, edit them in a copy of the config")
    # edited texts, or the data the shipped model was trained on (its notes are this run's): nothing to say
    edited = {**phantom, "description": "mine", "training": {**phantom["training"], "data": {"description": "mine"}}}
    assert recipe_notes_copied(edited, path, []) is None
    # the licence alone: another task of the same collection has it too
    licensed = {**edited, "training": {**edited["training"], "data": {"description": "mine",
                                                                       "licence": full["training"]["data"]["licence"]}}}
    assert recipe_notes_copied(licensed, path, []) is None
    assert recipe_notes_copied({**edited, "description": full["description"]}, path, []) == (
        f"{path}: its description is word for word that of the shipped model hippocampus: {tail}")
    shipped = json.loads((REPO / "medseg" / "models" / "hippocampus" / "model.json").read_text())
    one_of_its_images = shipped["training"]["train_images_sha256"][0]
    assert recipe_notes_copied({**short, "name": "mine"}, path, ["0" * 64, one_of_its_images]) is None


def test_a_config_keeping_a_shipped_recipes_label_codes_under_other_label_names_is_warned_about(tmp_path):
    """configs/train/hippocampus.json copied for a liver model, its labels renamed 1 liver, 2 tumour as the README
    says, its label_codes left: the package was written without a word, and its model card, `medseg models` and
    every DICOM SEG it writes coded the liver as Hippocampus, Anterior (the card's and licence texts are checked for
    such copies, the codes were not)."""
    recipe = json.loads((REPO / "configs" / "train" / "hippocampus.json").read_text())
    path = tmp_path / "liver.json"
    liver = {**recipe, "name": "liver", "labels": {"0": "background", "1": "liver", "2": "tumour"}}
    assert recipe_codes_copied(liver, path, ["0" * 64]) == (
        f"{path}: its label_codes for labels 1 liver and 2 tumour are word for word those the shipped model "
        "hippocampus gives its labels 1 anterior (Hippocampus, Anterior) and 2 posterior (Hippocampus, Posterior): "
        "the model card, `medseg models` and every DICOM SEG the package writes would code these labels as those "
        "structures; give them their own codes in the config, or leave label_codes out (a label without codes is "
        "coded SCT Tissue)")
    # one label renamed, the other kept as the recipe names it (letter case and spaces aside)
    one = {**liver, "labels": {"0": "background", "1": "liver", "2": " Posterior"}}
    assert recipe_codes_copied(one, path, []).startswith(
        f"{path}: its label_codes for label 1 liver are word for word those the shipped model hippocampus gives its "
        "label 1 anterior (Hippocampus, Anterior): ")
    # the recipe's own names, codes of one's own, no codes, or the shipped model's own data: nothing to say
    assert recipe_codes_copied({**recipe, "name": "mine"}, path, []) is None
    own = {"1": {"category": {"scheme": "SCT", "value": "91723000", "meaning": "Anatomical Structure"},
                 "type": {"scheme": "SCT", "value": "10200004", "meaning": "Liver"}}}
    assert recipe_codes_copied({**liver, "label_codes": own}, path, []) is None
    assert recipe_codes_copied({key: value for key, value in liver.items() if key != "label_codes"}, path, []) is None
    shipped = json.loads((REPO / "medseg" / "models" / "hippocampus" / "model.json").read_text())
    one_of_its_images = shipped["training"]["train_images_sha256"][0]
    assert recipe_codes_copied(liver, path, [one_of_its_images]) is None


def test_cli_warns_about_a_shipped_recipes_label_codes_kept_under_other_names(tiny_set, tmp_path, capsys):
    """The warning of the test above, where `medseg train` tells its other warnings about a copied recipe."""
    recipe = json.loads((REPO / "configs" / "train" / "hippocampus.json").read_text())
    config = tiny_training_config(epochs=1)
    config["label_codes"] = recipe["label_codes"]
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(config))
    out = tmp_path / "model"
    assert _exit_code([*_train_cli(*tiny_set, out, "-c", str(path)), *_FEW_STEPS]) == 0
    err = capsys.readouterr().err
    assert (f"warning: {path}: its label_codes for labels 1 ellipsoid and 2 box are word for word those the shipped "
            "model hippocampus gives its labels 1 anterior (Hippocampus, Anterior) and 2 posterior (Hippocampus, "
            "Posterior): ") in err
    assert load_package(out).config["label_codes"] == recipe["label_codes"]  # told, not changed


def test_a_config_that_names_the_labels_otherwise_than_the_dataset_json_is_told(tiny_set, tmp_path, capsys,
                                                                                config_file):
    """With -c the config's labels win, and a dataset.json beside the folders was passed over in silence: a user
    whose config names label 1 what the dataset calls label 2 trained a model that names them wrongly. Names that
    differ from the dataset.json's (beyond letter case) are now told in one line; nothing is said where they agree,
    or where the dataset.json cannot be read (the config is what the user asked for)."""
    images, labels = _dataset_folder(tiny_set, tmp_path / "Task09",
                                     {"0": "background", "1": "Box", "2": "Ellipsoid", "3": "Tube"})
    dataset = tmp_path / "Task09" / "dataset.json"
    args = ["-c", str(config_file), "--epochs", "1"]
    assert _exit_code(_train_cli(images, labels, tmp_path / "m1", *args)) == 0
    told = [line for line in capsys.readouterr().err.splitlines() if "dataset.json" in line]
    assert told == [f"warning: {dataset} names labels 1 Box, 2 Ellipsoid; the config {config_file} names them "
                    "1 ellipsoid, 2 box, and its names are the model's"]
    assert load_package(tmp_path / "m1").labels == {0: "background", 1: "ellipsoid", 2: "box", 3: "tube"}
    dataset.write_text(json.dumps({"labels": {"bg": 0, "ELLIPSOID": 1, "Box": 2, "tube": 3}}))  # background's
    assert _exit_code(_train_cli(images, labels, tmp_path / "m2", *args)) == 0  # name does not count
    assert "dataset.json" not in capsys.readouterr().err
    # a dataset.json medseg could not train from itself is still compared: its 'ignore' voxels would become tubes
    dataset.write_text(json.dumps({"labels": {"0": "background", "1": "ellipsoid", "2": "box", "3": "ignore"}}))
    assert _exit_code(_train_cli(images, labels, tmp_path / "m4", *args)) == 0
    assert [line for line in capsys.readouterr().err.splitlines() if "dataset.json" in line] == [
        f"warning: {dataset} names labels 3 ignore; the config {config_file} names them 3 tube, and its names are "
        "the model's"]
    dataset.write_text("{not json")  # was passed over in silence, its training list with it
    assert _exit_code(_train_cli(images, labels, tmp_path / "m3", *args)) == 0
    assert [line for line in capsys.readouterr().err.splitlines() if "dataset.json" in line] == [
        f"warning: {dataset}: not read (not valid JSON at line 1, column 2: a key in double quotes was expected); "
        "its training list and label names are not used (the cases are paired by file name; the labels are named as "
        f"{config_file} names them)"]


def test_a_config_with_a_shipped_recipes_card_texts_is_warned_about_and_trains(tiny_set, tmp_path, capsys):
    """A copy of a shipped config with only its name edited wrote a model card describing the shipped run and its
    data, without a word; it is told in one line, and the run goes on."""
    from medseg.cli import main

    phantom = json.loads((Path(__file__).parents[1] / "configs" / "train" / "phantom.json").read_text())
    config = tiny_training_config(epochs=1, data=phantom["training"]["data"])
    config.update(name="mine", description=phantom["description"])
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(config))
    out = tmp_path / "mine"
    with pytest.raises(SystemExit) as info:
        main(["train", "--images", str(tiny_set[0]), "--labels", str(tiny_set[1]), "-c", str(path), "-o", str(out),
              "--threads", "1", *_FEW_STEPS])
    assert info.value.code == 0
    assert (f"warning: {path}: its description, training.data description and training.data licence are word for "
            "word those of the shipped model phantom: the model card will carry them as they are, describing that "
            "recipe's run and data, not this one's; edit them in the config\n") in capsys.readouterr().err
    assert phantom["training"]["data"]["description"] in (out / "MODEL_CARD.md").read_text()


def test_a_wrong_value_in_the_config_is_refused_when_the_command_line_overrides_it(tiny_set, tmp_path, capsys):
    """`--epochs 1` replaced the config's `"epochs": "5"` before the config was checked: the run went on, and the
    same file failed later, on a run without the option (or a --resume)."""
    from medseg.cli import main

    config = tiny_training_config(epochs="5")
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(config))
    with pytest.raises(SystemExit) as info:
        main(["train", "--images", str(tiny_set[0]), "--labels", str(tiny_set[1]), "-c", str(path), "-o",
              str(tmp_path / "m"), "--epochs", "1", "--steps-per-epoch", "1"])
    assert info.value.code == 1
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(
        f"medseg: error: {path}: training.epochs: '5' is not of type 'integer'")
    assert not (tmp_path / "m").exists()


def test_a_changed_plan_under_the_default_config_reads_as_a_sentence(tiny_set, tmp_path, capsys):
    """Resuming a one-epoch run of the default config without --epochs: "and the default config asks for N", not
    "and default config asks for N"."""
    out = tmp_path / "model"
    assert _exit_code(_train_cli(*tiny_set, out, "--epochs", "1", "--steps-per-epoch", "1")) == 0
    capsys.readouterr()
    assert _exit_code(_train_cli(*tiny_set, out, "--resume", "--steps-per-epoch", "1")) == 1
    assert re.fullmatch(rf"medseg: error: {re.escape(str(out))}: the checkpoint's run was planned for 1 epoch, and the "
                        r"default config asks for \d+; give --epochs 1 to finish it as planned, or --epochs \d+ to "
                        r"extend it", capsys.readouterr().err.strip())


def test_a_label_named_background_that_is_not_0_is_warned_about(tiny_set, tmp_path, capsys):
    """Names given the wrong way round (0 "thing", 1 "background") trained without a word; label 1 is scored and
    reported as a structure."""
    config = tiny_training_config(epochs=1, steps_per_epoch=1)
    config["labels"] = {"0": "thing", "1": "background", "2": "box", "3": "tube"}
    path = tmp_path / "swapped.json"
    path.write_text(json.dumps(config))
    assert _exit_code(_train_cli(*tiny_set, tmp_path / "model", "-c", str(path))) == 0
    assert (f"warning: {path}: label 1 is named 'background', but value 0 is the background (named 'thing'): label 1 "
            "is trained, scored and reported as a structure; are the names swapped?") in capsys.readouterr().err
    # -q: errors only, as for every other warning
    assert _exit_code(["-q", *_train_cli(*tiny_set, tmp_path / "quiet", "-c", str(path))]) == 0
    assert capsys.readouterr().err == ""
    path.write_text(json.dumps(tiny_training_config(epochs=1, steps_per_epoch=1)))  # background 0: no word
    assert _exit_code(_train_cli(*tiny_set, tmp_path / "plain", "-c", str(path))) == 0
    assert "are the names swapped?" not in capsys.readouterr().err
