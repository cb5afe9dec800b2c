"""A Decathlon / nnU-Net ``dataset.json`` beside the training folders (medseg.io.dataset_json): its label names,
training list and channels read for `medseg train`, and the ones medseg cannot take named in one line."""

from __future__ import annotations

import codecs
import json
import logging
import re
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from training_factory import _FEW_STEPS, _case_holding, _dataset_folder, _exit_code, _train_cli, tiny_training_config

from medseg.errors import InputError, MedsegWarning, TrainingError
from medseg.package import load_package
from medseg.synthetic import write_phantom
from medseg.training_cases import pair_cases


def test_the_advice_on_labels_no_training_case_holds_fits_where_they_were_declared(caplog):
    """The warning on declared labels that no training case holds said "leave such gaps out of the config" where the
    labels came from a dataset.json and there was no config, and where they were the files' own values (held by
    validation cases only). Each source now gets its own advice; a config is named."""
    from medseg.training_cases import LabelsFrom, check_label_presence

    config = {"labels": {"0": "background", "1": "ellipsoid", "2": "unused_2", "3": "box"}}

    def advice(labels_from, train=(1, 3)):
        caplog.clear()
        with caplog.at_level("WARNING"), pytest.warns(MedsegWarning) as told:
            check_label_presence(config, [_case_holding("t0", *train)], [_case_holding("v0", 1, 2, 3)], labels_from)
        assert [str(w.message) for w in told] == [caplog.records[0].getMessage()]  # a Python caller hears it too
        return caplog.records[0].getMessage().removeprefix(
            "label 2 'unused_2' appears in no training case: the network cannot learn it")

    assert advice(LabelsFrom("config", Path("cfg/brats.json"))) == (
        " (declared to keep the files' values? no need: a model's labels may skip values, so leave it out of "
        "cfg/brats.json and no output class is spent on it)")
    assert advice(LabelsFrom("dataset.json", Path("Task09/dataset.json"))) == (
        " (Task09/dataset.json declares it: to spend no output class on it, train with a config whose labels leave "
        "it out (train's config argument))")
    assert advice(LabelsFrom("files")) == (
        " (only validation cases hold it: another split, with training.seed or training.fold, may put a case that "
        "holds it among the training cases)")
    # above every value training holds: a structure these cases lack, not a gap; a dataset.json's, as any other
    untold = "labels 2 unused_2, 3 box are in no training case: the network cannot learn them"
    for labels_from, said in [(LabelsFrom("config", Path("cfg/brats.json")), ""), (
            LabelsFrom("dataset.json", Path("Task09/dataset.json")), " (Task09/dataset.json declares them: to spend "
            "no output class on them, train with a config whose labels leave them out (train's config argument))")]:
        caplog.clear()
        with caplog.at_level("WARNING"), pytest.warns(MedsegWarning) as told:
            check_label_presence(config, [_case_holding("t0", 1)], [_case_holding("v0", 1)], labels_from)
        assert caplog.records[0].getMessage() == untold + said
        assert [str(w.message) for w in told] == [untold + said]


def test_a_dataset_json_label_no_file_holds_is_warned_about_with_advice_for_a_dataset_json(tiny_set, tmp_path,
                                                                                              caplog):
    """Trained without -c, a dataset.json declaring a structure no file holds was told to "leave such gaps out of
    the config", a config the run did not have."""
    images, labels = _dataset_folder(tiny_set, tmp_path / "Task09",
                                     {"0": "background", "1": "Ellipsoid", "2": "Box", "3": "Tube", "4": "Cone"})
    out = tmp_path / "model"
    with caplog.at_level("WARNING"):
        assert _exit_code(_train_cli(images, labels, out, "--epochs", "1", *_FEW_STEPS)) == 0
    dataset = tmp_path / "Task09" / "dataset.json"
    assert (f"label 4 'Cone' appears in no training case: the network cannot learn it ({dataset} declares it: to "
            "spend no output class on it, train with -c and a config whose labels leave it out)"
            ) in [record.getMessage() for record in caplog.records]
    assert load_package(out).config["training"]["train_labels_absent"] == [4]


def test_the_card_names_the_dataset_folder_of_a_dataset_json_given_from_inside_it(tiny_set, tmp_path, monkeypatch):
    """`medseg train --images imagesTr --labels labelsTr` run in the dataset folder (as nnU-Net users work, and as
    the sample sheet recipe of the docs runs) found `dataset.json`, relative, whose folder has no name: the card
    said the data notes came "(from /dataset.json)", a file at the root of the file system."""
    from medseg.io.dataset_json import read_dataset_json

    _dataset_folder(tiny_set, tmp_path / "Dataset009_Phantoms", {"background": 0, "Ellipsoid": 1, "Box": 2,
                                                                  "Tube": 3})
    monkeypatch.chdir(tmp_path / "Dataset009_Phantoms")
    for given in ("dataset.json", "./dataset.json", "imagesTr/../dataset.json"):
        assert read_dataset_json(Path(given)).data["description"] == (
            "Phantoms: Synthetic shapes (from Dataset009_Phantoms/dataset.json)")
    monkeypatch.chdir(tmp_path)
    assert read_dataset_json(Path("Dataset009_Phantoms/dataset.json")).data["description"] == (
        "Phantoms: Synthetic shapes (from Dataset009_Phantoms/dataset.json)")


def test_a_dataset_json_names_the_labels_and_the_data_of_a_run_without_a_config(tiny_set, tmp_path, capsys):
    """A Decathlon or nnU-Net folder trained without a config gave labels named label_1..label_3 and a card whose
    data and licence were "not stated", though its dataset.json says both."""
    images, labels = _dataset_folder(tiny_set, tmp_path / "Task09",
                                     {"0": "background", "1": "Ellipsoid", "2": "Box", "3": "Tube"})
    out = tmp_path / "model"
    assert _exit_code(_train_cli(images, labels, out, "--epochs", "1", *_FEW_STEPS)) == 0
    assert capsys.readouterr().err.splitlines()[0] == (
        f"label names and data notes from {tmp_path / 'Task09' / 'dataset.json'}: 0 background, 1 Ellipsoid, 2 Box, "
        "3 Tube")
    package = load_package(out)
    assert package.labels == {0: "background", 1: "Ellipsoid", 2: "Box", 3: "Tube"}
    card = (out / "MODEL_CARD.md").read_text()
    assert "## Data\nPhantoms: Synthetic shapes (from Task09/dataset.json)\n" in card
    assert "Licence / attribution: CC0; reference: medseg.synthetic\n" in card
    assert _exit_code(_train_cli(images, labels, out, "--epochs", "1", "--resume", *_FEW_STEPS)) == 0  # the same run
    assert "nothing to train, the package is kept as it was" in capsys.readouterr().err
    # renamed since: the dataset.json is named, not "other settings" of a config never given
    dataset = json.loads((tmp_path / "Task09" / "dataset.json").read_text())
    dataset["labels"] = {"background": 0, "ellipse": 1, "Box": 2, "Tube": 3}  # nnU-Net v2's form
    (tmp_path / "Task09" / "dataset.json").write_text(json.dumps(dataset))
    assert _exit_code(_train_cli(images, labels, out, "--epochs", "2", "--resume", *_FEW_STEPS)) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"medseg: error: {tmp_path / 'Task09' / 'dataset.json'}: names labels 1 ellipse, and the checkpoint in {out} "
        "was started with labels 1 Ellipsoid, 2 Box, 3 Tube; resume with the names it was started with, or start "
        "again with --overwrite")
    # a label value the dataset.json does not declare is named with its file
    (tmp_path / "Task09" / "dataset.json").write_text(json.dumps({**dataset, "labels": {"background": 0, "a": 1,
                                                                                        "b": 2}}))
    assert _exit_code(_train_cli(images, labels, tmp_path / "other", "--epochs", "1", *_FEW_STEPS)) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"medseg: error: {labels}") and err.endswith(
        f": label value 3, which {tmp_path / 'Task09' / 'dataset.json'} does not declare (its labels [0, 1, 2]); "
        "recode the label file or correct the dataset.json")
    assert not (tmp_path / "other").exists()
    # images and labels in folders of different parents: a dataset.json is not looked for
    assert _exit_code(_train_cli(images, tiny_set[1], tmp_path / "apart", "--epochs", "1", *_FEW_STEPS)) == 0
    assert load_package(tmp_path / "apart").labels[1] == "label_1"


@pytest.mark.parametrize("with_config", [False, True])
def test_a_run_reads_its_dataset_json_once(tiny_set, tmp_path, capsys, monkeypatch, config_file, with_config):
    """The dataset.json beside the folders was read for its training list, again for its names (and, with -c, twice
    more for the warning that they disagree): a file changed in between gave the list of one version and the names
    of another."""
    import medseg.io.dataset_json as dataset_json

    images, labels = _dataset_folder(tiny_set, tmp_path / "Task09", {"0": "background", "1": "Ellipse", "2": "Box",
                                                                     "3": "Tube"})
    reads = []
    real = dataset_json._read_capped
    monkeypatch.setattr(dataset_json, "_read_capped", lambda path: reads.append(path) or real(path))
    config = ("-c", str(config_file)) if with_config else ()
    # stopped by the missing GPU, after the dataset.json has been read for all its uses
    assert _exit_code(_train_cli(images, labels, tmp_path / "out", *config, "--device", "cuda")) == 1
    err = capsys.readouterr().err
    assert reads == [tmp_path / "Task09" / "dataset.json"]
    told = "names labels 1 Ellipse" if with_config else "label names and data notes from"
    assert err.count(told) == 1 and err.strip().splitlines()[-1].startswith("medseg: error: ")
    assert not (tmp_path / "out").exists()


def _decathlon_folder(folder: Path, listed: list[int], cases: list[int], **fields) -> tuple[Path, Path]:
    """A Decathlon task folder whose dataset.json lists cases ``listed`` (``training``) and whose folders hold
    ``cases`` (tiny phantoms)."""
    for seed in cases:
        write_phantom(folder / "imagesTr" / f"ph_{seed}.nii.gz", folder / "labelsTr" / f"ph_{seed}.nii.gz",
                      shape=(12, 12, 4), seed=seed, oblique=False)
    (folder / "dataset.json").write_text(json.dumps({
        "name": "Phantoms", "modality": {"0": "MRI"}, "labels": {"0": "background", "1": "a", "2": "b", "3": "c"},
        "numTraining": len(listed), "numTest": 0, "test": [],
        "training": [{"image": f"./imagesTr/ph_{i}.nii.gz", "label": f"./labelsTr/ph_{i}.nii.gz"} for i in listed],
        **fields}))
    return folder / "imagesTr", folder / "labelsTr"


def test_a_dataset_jsons_training_list_is_the_training_set(tmp_path, caplog):
    """The Decathlon's dataset.json lists its training pairs; they were ignored: a stray copy in imagesTr/labelsTr
    ("case copy.nii.gz") was trained on in silence, a listed case missing on disk went unnamed, and numTraining was
    never compared."""
    from medseg.io.dataset_json import find_dataset_json

    images, labels = _decathlon_folder(tmp_path / "Task09_Ph", listed=[0, 1, 2], cases=[0, 1, 2])
    shutil.copy(images / "ph_0.nii.gz", images / "ph_0 copy.nii.gz")
    shutil.copy(labels / "ph_0.nii.gz", labels / "ph_0 copy.nii.gz")
    (images / "._ph_1.nii.gz").write_bytes(b"\x00\x05\x16\x07 macOS")  # passed over in silence, as before
    dataset = find_dataset_json(images, labels)
    assert dataset == tmp_path / "Task09_Ph" / "dataset.json"
    assert [c.case_id for c in pair_cases(images, labels)] == ["ph_0", "ph_0 copy", "ph_1", "ph_2"]  # by names
    with caplog.at_level(logging.WARNING, logger="medseg.training_cases"), pytest.warns(MedsegWarning) as told:
        cases = pair_cases(images, labels, dataset_json=dataset)
    assert [(c.case_id, c.image_path, c.label_path) for c in cases] == [
        (f"ph_{i}", images / f"ph_{i}.nii.gz", labels / f"ph_{i}.nii.gz") for i in range(3)]
    assert [str(w.message) for w in told] == [r.getMessage() for r in caplog.records] == [
        f"{dataset}: left out 2 files of {images} and {labels} that its training list does not name (trained on: the "
        "3 cases it lists): imagesTr/ph_0 copy.nii.gz, labelsTr/ph_0 copy.nii.gz"]
    # a listed case missing on disk is an error naming its files
    doc = json.loads(dataset.read_text())
    doc["training"].append({"image": "./imagesTr/ph_7.nii.gz", "label": "./labelsTr/ph_7.nii.gz"})
    dataset.write_text(json.dumps(doc))
    with pytest.raises(TrainingError) as error:
        pair_cases(images, labels, dataset_json=dataset)
    assert str(error.value) == (
        f"{dataset}: lists 2 training files that are not there: {images / 'ph_7.nii.gz'}, {labels / 'ph_7.nii.gz'}; "
        "restore them, or take their entries out of the dataset.json's training list")
    # numTraining that disagrees with the list is told; the list wins
    doc["training"].pop()
    doc["numTraining"] = 4
    dataset.write_text(json.dumps(doc))
    (images / "ph_0 copy.nii.gz").unlink()
    (labels / "ph_0 copy.nii.gz").unlink()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="medseg.training_cases"), pytest.warns(MedsegWarning) as told:
        assert len(pair_cases(images, labels, dataset_json=dataset)) == 3
    assert [str(w.message) for w in told] == [r.getMessage() for r in caplog.records] == [
        f"{dataset}: numTraining is 4, but its training list holds 3 pairs; training takes the 3 listed"]
    # without a list (nnU-Net v2), numTraining is compared with the pairs found by name
    dataset.write_text(json.dumps({key: value for key, value in doc.items() if key != "training"}))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="medseg.training_cases"), pytest.warns(MedsegWarning) as told:
        assert len(pair_cases(images, labels, dataset_json=dataset)) == 3
    assert [str(w.message) for w in told] == [r.getMessage() for r in caplog.records] == [
        f"{dataset}: numTraining is 4, but {images} and {labels} hold 3 cases; training takes the 3 found"]
    # nnU-Net v1 lists an image as case.nii.gz that is case_0000.nii.gz on disk
    for i in range(3):
        (images / f"ph_{i}.nii.gz").rename(images / f"ph_{i}_0000.nii.gz")
    doc["numTraining"] = 3
    dataset.write_text(json.dumps(doc))
    assert [(c.case_id, c.image_path.name) for c in pair_cases(images, labels, dataset_json=dataset)] == [
        (f"ph_{i}", f"ph_{i}_0000.nii.gz") for i in range(3)]
    # the listed files are looked for by name in the folders given: a folder of preprocessed images beside imagesTr
    shutil.copytree(images, images.parent / "imagesTr_n4")
    (images / "ph_2_0000.nii.gz").unlink()
    assert [c.image_path for c in pair_cases(images.parent / "imagesTr_n4", labels, dataset_json=dataset)] == [
        images.parent / "imagesTr_n4" / f"ph_{i}_0000.nii.gz" for i in range(3)]
    # an entry that is not an image and a label path
    dataset.write_text(json.dumps({**doc, "training": [{"image": "./imagesTr/ph_0.nii.gz"}]}))
    with pytest.raises(InputError, match=rf"^{re.escape(str(dataset))}: training entry 1 is not an image and a label "
                                         "path"):
        pair_cases(images, labels, dataset_json=dataset)


def test_a_training_list_naming_a_missing_case_stops_the_run_in_one_line(tmp_path, capsys):
    """medseg train on a Decathlon folder whose dataset.json lists a case not on disk trained on the others."""
    images, labels = _decathlon_folder(tmp_path / "Task09_Ph", listed=[0, 1, 2], cases=[0, 1])
    out = tmp_path / "model"
    assert _exit_code(_train_cli(images, labels, out, "--epochs", "1", *_FEW_STEPS)) == 1
    dataset = tmp_path / "Task09_Ph" / "dataset.json"
    assert capsys.readouterr().err.splitlines() == [
        f"medseg: error: {dataset}: lists 2 training files that are not there: {images / 'ph_2.nii.gz'}, "
        f"{labels / 'ph_2.nii.gz'}; restore them, or take their entries out of the dataset.json's training list"]
    assert not out.exists()


def test_an_nnunet_set_of_several_channels_trains_a_model_of_its_named_modalities(tiny_set, tmp_path, capsys):
    """nnU-Net v2's multi-channel layout (imagesTr/case_0000 and case_0001, labelsTr/case, a dataset.json with two
    channel_names) was refused ("medseg trains on one image per case"); it trains a model of those modalities, named
    by the dataset.json, each with its neighbouring slices."""
    folder = tmp_path / "Dataset002_Two"
    images, labels = folder / "imagesTr", folder / "labelsTr"
    images.mkdir(parents=True)
    shutil.copytree(tiny_set[1], labels)
    for path in sorted(tiny_set[0].iterdir())[:4]:
        for channel in ("0000", "0001"):
            shutil.copy(path, images / path.name.replace(".nii.gz", f"_{channel}.nii.gz"))
    for path in sorted(labels.iterdir())[4:]:
        path.unlink()
    (folder / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "T1", "1": "T2"}, "labels": {"background": 0, "a": 1, "b": 2, "c": 3},
        "numTraining": 4, "file_ending": ".nii.gz"}))
    out = tmp_path / "model"
    assert _exit_code(_train_cli(images, labels, out, "--epochs", "1", *_FEW_STEPS)) == 0
    assert (f"2 input modalities a case (T1, T2, named by {folder / 'dataset.json'}): each normalised on its own"
            in capsys.readouterr().err.splitlines())
    package = load_package(out)
    assert package.modalities == ["T1", "T2"] and package.n_modalities == 2
    assert package.config["architecture"]["in_channels"] == 6  # 2 modalities × 3 slices (context 1)


@pytest.mark.parametrize("channels, declared", [(["0000"], {"0": "T1", "1": "T2"}),
                                                 (["0000", "0001"], {"0": "MRI"})])
def test_a_dataset_json_naming_other_channels_than_the_cases_have_is_refused(tiny_set, tmp_path, capsys, channels,
                                                                             declared):
    """A dataset.json of two channel_names beside an imagesTr of _0000 files only (the _0001 files not copied) trained
    a model of one image a case without a word, as one of one channel beside cases of two trained a model of
    channel0 and channel1; nnU-Net refuses both sets. One line names a case, both counts and the dataset.json."""
    folder = tmp_path / "Dataset003_Channels"
    images, labels = folder / "imagesTr", folder / "labelsTr"
    images.mkdir(parents=True)
    shutil.copytree(tiny_set[1], labels)
    for path in sorted(tiny_set[0].iterdir()):
        for channel in channels:
            shutil.copy(path, images / path.name.replace(".nii.gz", f"_{channel}.nii.gz"))
    (folder / "dataset.json").write_text(json.dumps({"channel_names": declared, "labels": {
        "background": 0, "a": 1, "b": 2, "c": 3}, "file_ending": ".nii.gz"}))
    out = tmp_path / "model"
    assert _exit_code(_train_cli(images, labels, out, "--epochs", "1", *_FEW_STEPS)) == 1
    first = images / sorted(tiny_set[0].iterdir())[0].name.replace(".nii.gz", "_0000.nii.gz")
    found = "one channel (a 3D image)" if len(channels) == 1 else "2 channels"
    names = "2 modalities (T1, T2)" if len(declared) == 2 else "1 modality (MRI)"
    # the files it names: "case_0000 … case_0001"; for one, "case_0000 alone" (it said "case_0000 … case_0000")
    files = "case_0000 … case_0001" if len(declared) == 2 else "case_0000 alone"
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"medseg: error: {first}: {found}, but {folder / 'dataset.json'} names {names} in its channel_names; give "
        f"each case's channel files as it names them ({files}), or correct its channel_names; give -c with a config "
        "to train without it")
    assert not out.exists()
    # a Python caller's train always takes a config: it was told to "give config=... with a config"
    from medseg.training_pairing import pair_cases
    from medseg.training_setup import default_training_config

    with pytest.raises(TrainingError) as refused:
        default_training_config(images, labels, out, pair_cases(images, labels), {}, False)
    assert str(refused.value).endswith("or correct its channel_names; train with a config of your own (train's config "
                                       "argument) to do without it")


# a Python caller's train takes a config argument, always: it was told to "give config=... with a config"
OR_CONFIG = "; train with a config of your own that declares the labels (train's config argument) to do without it"


@pytest.mark.parametrize("labels, message", [
    ({"background": 0, "tumour": [1, 2], "core": 2}, "label 'tumour' is a region of values [1, 2] (nnU-Net's "
                                                    f"region-based training); medseg trains one label per value"
                                                    f"{OR_CONFIG}"),
    # values may skip (BraTS's 0/1/2/4, taken as they are), but 0 is the background every label file holds
    ({"1": "a", "2": "b", "4": "c"},
     "label values [1, 2, 4] do not hold 0 (background), as a model's labels must; declare label 0 (background) in "
     f"the dataset.json{OR_CONFIG}"),
    ({"1": "a", "2": "b"}, "label values [1, 2] do not hold 0 (background), as a model's labels must; declare "
                           f"label 0 (background) in the dataset.json{OR_CONFIG}"),
    # a negative value was told as labels without 0 (0 among them), one above 65535 as a value the labels folder held
    ({"background": 0, "a": 1, "b": -3}, "label value -3 'b' is negative; label values are whole numbers from 0 "
                                         f"(background) up{OR_CONFIG}"),
    ({"background": 0, "a": 1, "b": 70000}, "label value 70000 'b' is above 65535, the largest a segmentation "
                                            f"(uint16) holds{OR_CONFIG}"),
    ({"background": 0, "a": 1, "b": 1}, "label value 1 is named twice ('a', 'b')"),
    ({"0": "background", "1": " "}, "label 1 has no name (got ' ')"),
    ({"background": 0, "a": 1.5}, "label 'a' has the value 1.5, not a whole number"),
    ({"background": 0, "a": 1, "ignore": 2}, "label 2 'ignore' is nnU-Net's ignore label (voxels without "
                                             f"annotation), which medseg would train as a class; recode those voxels"
                                             f"{OR_CONFIG}"),
    ({"0": "background", "\u00b2": "a"}, "label key '\u00b2' is not a label value (the labels map values to names, "
                                         "or names to values as nnU-Net v2 does)"),
    # a value for a name among names for values: it blamed label '0' ("has the value 'background'")
    ({"0": "background", "1": 5, "2": "b"}, "label 1 is named 5, not a text (the labels map values to names, or "
                                            "names to values as nnU-Net v2 does)"),
    # nnU-Net v2's form with quoted values: a quoted value that is no whole number is named
    ({"background": "0", "a": "one"}, "label 'a' has the value 'one', not a whole number"),
    ({"background": "0", "a": "1.5"}, "label 'a' has the value '1.5', not a whole number"),
])
def test_a_dataset_json_medseg_cannot_take_is_refused_in_one_line(tmp_path, labels, message):
    from medseg.errors import InputError
    from medseg.io.dataset_json import read_dataset_json

    path = tmp_path / "dataset.json"
    path.write_text(json.dumps({"labels": labels}))
    with pytest.raises(InputError) as info:
        read_dataset_json(path)
    assert str(info.value) == f"{path}: {message}"


@pytest.mark.parametrize("labels", [{"0": "background", "2": "b"},
                                    {"0": "background", "1": "NCR", "2": "ED", "4": "ET"},
                                    {str(v): f"l{v}" for v in (0, 2, 4, 6, 8, 9)}])
def test_a_dataset_json_whose_values_skip_is_taken_as_it_is(tmp_path, labels):
    """BraTS's 0, 1, 2, 4 were refused with advice to recode the files or declare the gaps as labels; a model's labels
    may now skip values, so the dataset.json's names are taken as they are."""
    from medseg.io.dataset_json import read_dataset_json

    path = tmp_path / "dataset.json"
    path.write_text(json.dumps({"labels": labels}))
    assert read_dataset_json(path).names == {int(k): v for k, v in labels.items()}


def test_names_that_differ_only_in_case_or_accent_composition_are_no_renaming():
    """A dataset.json written on macOS may give "Läsion" as "a" and its accent; the config's "läsion" is the same
    name, not a renaming to warn about (the warning showed two names that read the same)."""
    from medseg.io.dataset_json import renamed_labels

    declared = {0: "background", 1: "La\u0308sion", 2: "edema"}
    assert renamed_labels(declared, {0: "bg", 1: "l\u00e4sion ", 2: "Edema"}) == ({}, {})
    assert renamed_labels(declared, {0: "bg", 1: "Lasion", 2: "edema"}) == ({1: "La\u0308sion"}, {1: "Lasion"})


def test_a_dataset_json_without_names_is_passed_over_with_a_warning(tmp_path, caplog):
    """A datalist, a file with a BOM or a broken one stopped training that ran before dataset.json files were read;
    several channels are refused, numbers as nnU-Net v2 names are names."""
    import logging

    from medseg.io.dataset_json import read_dataset_json

    path = tmp_path / "dataset.json"
    with caplog.at_level(logging.WARNING, logger="medseg.io.dataset_json"):
        for text in (json.dumps({"training": [{"image": "a", "label": "b"}]}), json.dumps({"labels": {}}),
                     json.dumps({"labels": ["background", "a"]}), "{not json"):
            path.write_text(text)
            assert read_dataset_json(path) is None
    assert caplog.text.count(f"{path}: no \"labels\" mapping of label values and names; labels are named label_N") == 3
    assert f"{path}: not read (not valid JSON at line 1, column 2: a key in double quotes was expected)" in caplog.text
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"labels": {"0": "background", "1": "a"}}).encode())
    assert read_dataset_json(path).names == {0: "background", 1: "a"}
    path.write_text(json.dumps({"labels": {"0": 0, "1": 1}}))  # names that are numbers, in nnU-Net v2's form
    assert read_dataset_json(path).names == {0: "0", 1: "1"}
    # nnU-Net v2's form with the values quoted: "label key 'background' is not a label value"
    path.write_text(json.dumps({"labels": {"background": "0", "Anterior": "1", "Posterior": "2"}}))
    assert read_dataset_json(path).names == {0: "background", 1: "Anterior", 2: "Posterior"}
    path.write_text(json.dumps({"labels": {"background": 0, "Anterior": "1", "Posterior": 2}}))
    assert read_dataset_json(path).names == {0: "background", 1: "Anterior", 2: "Posterior"}
    # nnU-Net v2's channel names (the Decathlon's "modality"), in channel order: the modalities of a multi-modal set
    path.write_text(json.dumps({"labels": {"0": "background", "1": "a"}, "channel_names": {"1": "ADC", "0": "T2"}}))
    assert read_dataset_json(path).modalities == ["T2", "ADC"]
    path.write_text(json.dumps({"labels": {"0": "background", "1": "a"}, "modality": {"0": "FLAIR", "1": "T1w"}}))
    assert read_dataset_json(path).modalities == ["FLAIR", "T1w"]


def test_a_dataset_json_in_utf16_gives_its_names_and_one_in_another_encoding_is_named_so(tmp_path, caplog):
    """A dataset.json written by Windows PowerShell 5 (`python make.py > dataset.json`: UTF-16 with its byte order
    mark) or saved as Notepad's "Unicode" was passed over with a warning quoting Python's codec ("'utf-8' codec can't
    decode byte 0xff in position 0"), and the package's labels named label_1, label_2; one in cp1252 is named so,
    with the byte's line and column."""
    import logging

    from medseg.io.dataset_json import declared_names, read_dataset_json

    path = tmp_path / "dataset.json"
    text = json.dumps({"labels": {"0": "background", "1": "Ellipsoïd"}, "licence": "CC0"}, ensure_ascii=False,
                      indent=1).replace("\n", "\r\n")
    for encoding in ("utf-16", "utf-16-be"):
        path.write_bytes(text.encode(encoding) if encoding == "utf-16" else b"\xfe\xff" + text.encode(encoding))
        assert read_dataset_json(path).names == {0: "background", 1: "Ellipsoïd"}
        assert declared_names(path) == {0: "background", 1: "Ellipsoïd"}
    with caplog.at_level(logging.WARNING, logger="medseg.io.dataset_json"):
        path.write_bytes(text.encode("cp1252"))
        assert read_dataset_json(path) is None
        path.write_bytes(b"\xef\xbb\xbf" + text.encode("cp1252"))  # a UTF-8 byte order mark on cp1252 text
        assert read_dataset_json(path) is None
    assert [record.getMessage() for record in caplog.records] == [
        f"{path}: not read (not UTF-8 text: byte 0xef on line 4, column 16; save it as UTF-8); its training list and "
        "label names are not used (the cases are paired by file name; labels are named label_N)"] * 2
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="medseg.io.dataset_json"):
        for encoding in ("utf-32", "utf-32-be"):  # UTF-32-LE's mark starts as UTF-16-LE's: it was read as UTF-16
            path.write_bytes(text.encode(encoding) if encoding == "utf-32" else b"\0\0\xfe\xff" + text.encode(encoding))
            assert read_dataset_json(path) is None
    assert [record.getMessage() for record in caplog.records] == [
        f"{path}: not read (saved as UTF-32; save it as UTF-8); its training list and label names are not used (the "
        "cases are paired by file name; labels are named label_N)"] * 2


def test_dataset_json_of_linked_folders_and_of_runs_started_without_one(tiny_set, tmp_path, capsys):
    """Folders linked from elsewhere took the dataset.json of where the links led, or none; a run started before
    dataset.json files were read could not be resumed beside one; a label the dataset.json dropped was blamed on
    the label files."""
    from medseg.io.dataset_json import find_dataset_json

    store = tmp_path / "store"
    _dataset_folder(tiny_set, store, {"0": "background", "1": "x", "2": "y", "3": "z"})
    task = tmp_path / "Task01"
    task.mkdir()
    (task / "imagesTr").symlink_to(store / "imagesTr")
    (task / "labelsTr").symlink_to(store / "labelsTr")
    (task / "dataset.json").write_text(json.dumps({"labels": {"0": "background", "1": "a", "2": "b", "3": "c"}}))
    assert find_dataset_json(task / "imagesTr", task / "labelsTr") == task / "dataset.json"
    (task / "dataset.json").unlink()
    assert find_dataset_json(task / "imagesTr", task / "labelsTr") == store / "dataset.json"
    # a run started without a dataset.json goes on with its names when one is put beside its folders
    plain = tmp_path / "Plain"
    shutil.copytree(tiny_set[0], plain / "imagesTr")
    shutil.copytree(tiny_set[1], plain / "labelsTr")
    out = tmp_path / "model"
    assert _exit_code(_train_cli(plain / "imagesTr", plain / "labelsTr", out, "--epochs", "1", *_FEW_STEPS)) == 0
    (plain / "dataset.json").write_text(json.dumps({"labels": {"0": "background", "1": "a", "2": "b", "3": "c"}}))
    capsys.readouterr()
    assert _exit_code(_train_cli(plain / "imagesTr", plain / "labelsTr", out, "--epochs", "2", "--resume",
                                 *_FEW_STEPS)) == 0
    assert (f"warning: {out}: the checkpoint's run named its labels label_N; it goes on with those names, not "
            f"{plain / 'dataset.json'}'s; start again with --overwrite to use them") in capsys.readouterr().err
    assert load_package(out).labels[1] == "label_1" and load_package(out).config["training"]["epochs_run"] == 2
    # even one medseg would refuse (here: values with a gap), and quietly with -q
    (plain / "dataset.json").write_text(json.dumps({"labels": {"0": "background", "1": "a", "3": "c"}}))
    assert _exit_code(["-q", *_train_cli(plain / "imagesTr", plain / "labelsTr", out, "--epochs", "3",
                                         "--resume", *_FEW_STEPS)]) == 0
    assert capsys.readouterr().err == ""
    assert load_package(out).labels[3] == "label_3" and load_package(out).config["training"]["epochs_run"] == 3
    # a declared label no file holds, dropped from the dataset.json since, is the dataset.json's doing
    declared = {"0": "background", "1": "a", "2": "b", "3": "c", "4": "d"}
    (plain / "dataset.json").write_text(json.dumps({"labels": declared}))
    assert _exit_code(_train_cli(plain / "imagesTr", plain / "labelsTr", tmp_path / "m4", "--epochs", "1",
                                 *_FEW_STEPS)) == 0
    (plain / "dataset.json").write_text(json.dumps({"labels": {k: v for k, v in declared.items() if k != "4"}}))
    capsys.readouterr()
    assert _exit_code(_train_cli(plain / "imagesTr", plain / "labelsTr", tmp_path / "m4", "--epochs", "2",
                                 "--resume", *_FEW_STEPS)) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"medseg: error: {tmp_path / 'm4'}: the checkpoint was trained with label value 4, which no label file holds "
        f"and {plain / 'dataset.json'} does not declare now; resume with the files it was started with, or start "
        "again with --overwrite")
    # the label_N run's warning comes before an error found after it (a label value its run never had)
    first = sorted((plain / "labelsTr").iterdir())[0]
    image = nib.load(first)
    data = np.asarray(image.dataobj).copy()
    data[0, 0, 0] = 5
    nib.save(nib.Nifti1Image(data, image.affine, image.header), first)
    capsys.readouterr()
    assert _exit_code(_train_cli(plain / "imagesTr", plain / "labelsTr", out, "--epochs", "4", "--resume",
                                 *_FEW_STEPS)) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith(f"warning: {out}: the checkpoint's run named its labels label_N")
    assert lines[-1].startswith(f"medseg: error: {first}: label value 5")


@pytest.mark.parametrize(("content", "reason"), [
    (b'{"training": [', "not valid JSON: cut short, it ends at line 1, column 14 with 2 brackets unclosed (an "
                        "interrupted copy or save, or a closing bracket or quote missing)"),
    (codecs.BOM_UTF32_LE + '{"labels": {}}'.encode("utf-32-le"), "saved as UTF-32; save it as UTF-8"),
])
def test_an_unreadable_dataset_json_with_c_is_one_warning_naming_what_goes_unused(tmp_path, capsys, caplog, content,
                                                                                 reason):
    """With -c, a dataset.json beside the folders that cannot be read was passed over in silence, its training list
    with it (the cases were paired by file name, a stray copy trained on): one warning names it and what goes
    unused. Without -c it says so too (it said only that the labels are named label_N)."""
    images, labels = _decathlon_folder(tmp_path / "Task09_Ph", listed=[0, 1], cases=[0, 1, 2])
    dataset = tmp_path / "Task09_Ph" / "dataset.json"
    dataset.write_bytes(content)
    config = tmp_path / "config.json"
    config.write_text(json.dumps(tiny_training_config(epochs=1)))
    out = tmp_path / "model"
    assert _exit_code(_train_cli(images, labels, out, "-c", str(config), *_FEW_STEPS)) == 0
    expected = (f"warning: {dataset}: not read ({reason}); its training list and label names are not used (the "
                f"cases are paired by file name; the labels are named as {config} names them)")
    err = capsys.readouterr().err
    assert err.count(f"{dataset}: not read") == 1 and expected in err.splitlines()
    with caplog.at_level(logging.WARNING, logger="medseg"):
        assert _exit_code(_train_cli(images, labels, tmp_path / "plain", *_FEW_STEPS, "--epochs", "1")) == 0
    told = [message for message in caplog.messages if f"{dataset}: not read" in message]
    assert told == [f"{dataset}: not read ({reason}); its training list and label names are not used (the cases are "
                    "paired by file name; labels are named label_N)"]


@pytest.mark.parametrize(("training", "given"), [({"image": "a.nii.gz"}, "a dict"), (7, "an int"), ("x", "a str")])
def test_a_training_entry_that_is_not_a_list_is_named_with_its_article(tmp_path, training, given):
    """The error read '"training" is dict, not a list of image and label paths': the type's name without its
    article, as the other errors about a value of the wrong type give it."""
    from medseg.io.dataset_json import training_list

    path = tmp_path / "dataset.json"
    path.write_text(json.dumps({"labels": {"0": "background", "1": "a"}, "training": training}))
    with pytest.raises(InputError) as raised:
        training_list(path)
    assert str(raised.value).startswith(f'{path}: "training" is {given}, not a list of image and label paths (')


def test_an_nnunet_folder_of_real_cases_trains_segments_and_scores_as_it_is(shared_data, tmp_path, monkeypatch,
                                                                            capsys):
    """nnU-Net v2's layout of real hippocampus crops (imagesTr/case_0000.nii.gz, labelsTr/case.nii.gz, imagesTs,
    labelsTs, a dataset.json of channel_names, labels as name: value, file_ending), worked in from its folder as the
    docs' "Coming from nnU-Net" table does: paired by name, labels named by the dataset.json, the card naming the
    dataset's folder, the predictions named after their _0000 inputs and scored against case.nii.gz by case."""
    from conftest import _files, run_cli

    cases = sorted(path.name for path in (shared_data / "hippocampus" / "labels").glob("*.nii.gz"))[:6]
    folder = tmp_path / "Dataset004_Hippocampus"
    for index, name in enumerate(cases):
        split, case = ("Tr" if index < 4 else "Ts"), name.removesuffix(".nii.gz")
        for kind, to in (("images", f"{case}_0000.nii.gz"), ("labels", name)):
            (folder / f"{kind}{split}").mkdir(parents=True, exist_ok=True)
            shutil.copy(shared_data / "hippocampus" / kind / name, folder / f"{kind}{split}" / to)
    (folder / "dataset.json").write_text(json.dumps({
        "name": "Hippocampus", "channel_names": {"0": "MRI"}, "labels": {"background": 0, "Anterior": 1,
                                                                         "Posterior": 2},
        "numTraining": 4, "file_ending": ".nii.gz"}))
    monkeypatch.chdir(folder)
    code, _, err = run_cli(["train", "--images", "imagesTr", "--labels", "labelsTr", "-o", "../model", "--epochs", "1",
                            "--threads", "1", *_FEW_STEPS], capsys)
    assert code == 0, err
    assert err.splitlines()[0] == "label names and data notes from dataset.json: 0 background, 1 Anterior, 2 Posterior"
    assert load_package(tmp_path / "model").labels == {0: "background", 1: "Anterior", 2: "Posterior"}
    assert "## Data\nHippocampus (from Dataset004_Hippocampus/dataset.json)\n" in (
        tmp_path / "model" / "MODEL_CARD.md").read_text()
    tests = sorted(str(path.relative_to(folder)) for path in (folder / "imagesTs").glob("*_0000.nii.gz"))
    code, _, err = run_cli(["infer", *tests, "-m", "../model", "-o", "../pred"], capsys)
    assert code == 0, err
    test_cases = [name.removesuffix(".nii.gz") for name in cases[4:]]
    assert _files(tmp_path / "pred") == sorted(f"{case}_0000_seg.{ending}" for case in test_cases
                                               for ending in ("json", "nii.gz"))
    code, out, err = run_cli(["evaluate", "../pred", "labelsTs", "-o", "../scores", "--images", "imagesTs"], capsys)
    assert code == 0, err
    rows = [line.split("\t") for line in (tmp_path / "scores" / "cohort.tsv").read_text().splitlines()]
    header = rows[0]
    assert sorted(row[header.index("case_id")] for row in rows[1:]) == test_cases
    assert {"Anterior_dice", "Posterior_dice"} <= set(header)
    assert [row[header.index("status")] for row in rows[1:]] == ["scored", "scored"]


@pytest.mark.parametrize(("ending", "told"), [
    (None, None), (".nii.gz", None), (".NII.GZ", None),
    (".nrrd", "warning"), (".mha", "warning"), (".nii", "warning"),
    # compressed NIfTI that training's folders are searched for too: refused as "cannot read" before
    (".nii.bz2", "warning"), (".nii.zst", "warning"),
    (".png", "error"), (".tif", "error"), (5, "error"), ("nii.gz", "error"),
])
def test_an_nnunet_file_ending_is_read_and_one_medseg_does_not_write_is_told(tmp_path, ending, told):
    """nnU-Net v2's file_ending (the images' format, and its predictions') was not read: medseg's segmentations are
    .nii.gz whatever it says. .nii.gz is taken in silence; a format medseg reads but does not write is a one-line
    warning; one it cannot read, or a value that is no file ending, a one-line error naming the file."""
    from medseg.io.dataset_json import file_ending_note

    path = tmp_path / "dataset.json"
    document = {"labels": {"background": 0, "a": 1}, "channel_names": {"0": "MRI"}}
    if ending is not None:
        document["file_ending"] = ending
    path.write_text(json.dumps(document))
    if told == "error":
        with pytest.raises(InputError) as error:
            file_ending_note(path)
        message = str(error.value)
        assert message.startswith(f"{path}: file_ending ") and "\n" not in message
        if ending == ".png":
            assert message == (f'{path}: file_ending ".png" names images medseg cannot read or write (it reads '
                               '.nii, .nii.gz, .nii.bz2, .nii.zst, .nrrd, .nhdr, .mha, .mhd; it writes .nii.gz); '
                               'convert the images and labels to NIfTI and set file_ending to ".nii.gz"')
        return
    note = file_ending_note(path)
    if told is None:
        assert note is None
    else:
        assert note == (f'{path}: file_ending "{ending}": the images are read as they are, but medseg writes its '
                        f'segmentations as NIfTI (.nii.gz), not {ending}; convert them where a tool expects {ending}')


def test_train_tells_the_file_ending_of_its_dataset_json(tiny_set, tmp_path, capsys, caplog):
    """`medseg train` on an nnU-Net folder whose dataset.json says .png stops in one line before anything is written;
    one that says .nrrd trains, with the warning that its segmentations are .nii.gz."""
    images, labels = _dataset_folder(tiny_set, tmp_path / "Dataset009", {"0": "background", "1": "Ellipsoid",
                                                                          "2": "Box", "3": "Tube"})
    dataset = tmp_path / "Dataset009" / "dataset.json"
    document = json.loads(dataset.read_text())
    dataset.write_text(json.dumps({**document, "file_ending": ".png"}))
    out = tmp_path / "model"
    assert _exit_code(_train_cli(images, labels, out, "--epochs", "1", *_FEW_STEPS)) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [f'medseg: error: {dataset}: file_ending ".png" names images medseg cannot read or '
                                'write (it reads .nii, .nii.gz, .nii.bz2, .nii.zst, .nrrd, .nhdr, .mha, .mhd; it '
                                'writes .nii.gz); '
                                'convert the images and labels to NIfTI and set file_ending to ".nii.gz"']
    assert not out.exists()
    dataset.write_text(json.dumps({**document, "file_ending": ".nrrd"}))
    # the pairing's log line, which the command writes as "warning: ..." (here the test's log capture takes it)
    with caplog.at_level(logging.WARNING, logger="medseg.training_cases"):
        assert _exit_code(_train_cli(images, labels, out, "--epochs", "1", *_FEW_STEPS)) == 0
    warnings = [r.getMessage() for r in caplog.records if "file_ending" in r.getMessage()]
    assert warnings == [f'{dataset}: file_ending ".nrrd": the images are read as they are, but medseg '
                        'writes its segmentations as NIfTI (.nii.gz), not .nrrd; convert them where a tool expects '
                        '.nrrd']
    assert "file_ending" not in capsys.readouterr().err  # told once: the command's own echo of it is gone
    assert load_package(out).labels[1] == "Ellipsoid"


def test_pairing_refuses_or_warns_of_the_file_ending_as_train_does(tiny_set, tmp_path, caplog):
    """The file_ending check was the command line's alone: a Python caller pairing an nnU-Net folder whose dataset.json
    says .png paired its files without a word, and one that says .nrrd was not told its segmentations are .nii.gz.
    pair_cases, given the dataset.json, refuses and warns as `medseg train` does (one MedsegWarning, one log line)."""
    import warnings

    from medseg.errors import MedsegWarning

    images, labels = _dataset_folder(tiny_set, tmp_path / "Dataset009", {"0": "background", "1": "Ellipsoid",
                                                                          "2": "Box", "3": "Tube"})
    dataset = tmp_path / "Dataset009" / "dataset.json"
    document = json.loads(dataset.read_text())
    dataset.write_text(json.dumps({**document, "file_ending": ".png"}))
    with pytest.raises(InputError) as raised:
        pair_cases(images, labels, dataset_json=dataset)
    assert str(raised.value) == (f'{dataset}: file_ending ".png" names images medseg cannot read or write (it reads '
                                 '.nii, .nii.gz, .nii.bz2, .nii.zst, .nrrd, .nhdr, .mha, .mhd; it writes .nii.gz); '
                                 'convert the images and labels to NIfTI and set file_ending to ".nii.gz"')
    told = (f'{dataset}: file_ending ".nrrd": the images are read as they are, but medseg writes its segmentations as '
            'NIfTI (.nii.gz), not .nrrd; convert them where a tool expects .nrrd')
    dataset.write_text(json.dumps({**document, "file_ending": ".nrrd"}))
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING,
                                                                         logger="medseg.training_cases"):
        warnings.simplefilter("always")
        assert len(pair_cases(images, labels, dataset_json=dataset)) == 6
    assert [(w.category, str(w.message), Path(w.filename).name) for w in caught] == [
        (MedsegWarning, told, "test_dataset_json.py")]  # placed at the caller's line
    assert [r.getMessage() for r in caplog.records] == [told]
    dataset.write_text(json.dumps({**document, "file_ending": ".nii.gz"}))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pair_cases(images, labels, dataset_json=dataset)
    assert [str(w.message) for w in caught] == []


def test_the_command_says_the_file_ending_warning_once_on_its_stderr(tiny_set, tmp_path):
    """`medseg train` shows the pairing's warning as its own line, once: the in-process test above sees it in the log
    capture, which takes the record before the command's handler; here the command runs as its user runs it."""
    import subprocess
    import sys

    images, labels = _dataset_folder(tiny_set, tmp_path / "Dataset009", {"0": "background", "1": "Ellipsoid",
                                                                          "2": "Box", "3": "Tube"})
    dataset = tmp_path / "Dataset009" / "dataset.json"
    dataset.write_text(json.dumps({**json.loads(dataset.read_text()), "file_ending": ".nrrd"}))
    done = subprocess.run([sys.executable, "-m", "medseg", *_train_cli(images, labels, tmp_path / "out", "--epochs",
                                                                       "1", *_FEW_STEPS)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert [line for line in done.stderr.splitlines() if "file_ending" in line] == [
        f'warning: {dataset}: file_ending ".nrrd": the images are read as they are, but medseg writes its '
        'segmentations as NIfTI (.nii.gz), not .nrrd; convert them where a tool expects .nrrd']
