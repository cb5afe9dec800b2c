"""benchmarks/evaluate_model.py: the figures it prints are the package's own validation record, reached through the
code path of `medseg infer`; bad folders and options are one line and a non-zero exit."""

from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path

import pytest
import torch
from conftest import benchmark_main
from training_factory import tiny_training_config, write_set

from medseg.train import train
from medseg.training_cases import load_cases, pair_cases


@pytest.fixture(scope="module")
def evaluate():
    return benchmark_main("evaluate_model")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny package trained two epochs, with its data folders."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("evaluate")
    images, labels = write_set(root / "data")
    config = tiny_training_config()
    package = train(copy.deepcopy(config), load_cases(pair_cases(images, labels), config), root / "model")
    return package, images, labels


def _table(text: str) -> dict[str, tuple[int, float, float, float]]:
    rows = re.findall(r"^(\w+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$", text, flags=re.M)
    return {name: (int(n), float(mean), float(median), float(low)) for name, n, mean, median, low in rows}


def test_prints_the_packages_validation_figures(evaluate, trained, capsys):
    package, images, labels = trained
    assert evaluate([str(package.path), str(images), str(labels), "--threads", "1"]) == 0
    out = capsys.readouterr().out
    training = package.config["training"]
    assert f"{len(training['val_cases'])} cases from {images} (recorded validation split)" in out
    assert "precision fp32" in out
    table = _table(out)
    for value, name in package.labels.items():
        if value == 0:
            continue
        recorded = training["val_dice"][str(value)]
        if recorded is None:
            assert name not in table
            continue
        n, mean, median, low = table[name]
        assert mean == pytest.approx(recorded, abs=6e-5)  # printed with four decimals
        assert median == pytest.approx(training["val_dice_median"][str(value)], abs=6e-5)
        assert low == pytest.approx(training["val_dice_min"][str(value)], abs=6e-5)
    assert re.search(r"seconds per volume: [\d.]+ whole case, [\d.]+ inference \(torch threads 1\)", out)
    assert "training images" not in out  # the validation cases are none of them


def test_all_pairs_counts_upper_case_extensions(evaluate, trained, tmp_path, capsys):
    package, images, labels = trained
    shutil.copytree(images, tmp_path / "images")
    shutil.copytree(labels, tmp_path / "labels")
    for folder in ("images", "labels"):
        (tmp_path / folder / "case1.nii.gz").rename(tmp_path / folder / "case1.NII.GZ")
    assert evaluate([str(package.path), str(tmp_path / "images"), str(tmp_path / "labels"),
                     "--cases-from", "all"]) == 0
    out = capsys.readouterr().out
    assert "6 cases from" in out
    # every pair: the training images among them are counted, as their Dice is not the held-out figure
    assert ("note: 4 of these cases are the model's training images (their SHA-256 is in its package): the figures "
            "overstate its accuracy on new data; --cases-from model scores its held-out cases") in out


# the image left without its label is left out of the pairs with a MedsegWarning: the error after it is this test's
@pytest.mark.filterwarnings("ignore:.* left out 1 file without a counterpart:medseg.errors.MedsegWarning")
def test_a_missing_label_names_the_labels_folder(evaluate, trained, tmp_path, capsys):
    package, images, labels = trained
    shutil.copytree(labels, tmp_path / "labels")
    missing = package.config["training"]["val_cases"][0]
    (tmp_path / "labels" / f"{missing}.nii.gz").unlink()
    assert evaluate([str(package.path), str(images), str(tmp_path / "labels")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {tmp_path / 'labels'}: 1 validation case missing, e.g. {missing} (no label;")
    assert err.rstrip().endswith("--cases-from all scores every pair in the folders instead)")
    assert "\n" not in err


@pytest.mark.parametrize("edited", ["case2", 5, ["case2", 3]])
def test_hand_edited_val_cases_name_the_field_and_what_it_takes(evaluate, trained, tmp_path, capsys, edited):
    """model.json's training.val_cases edited into a text was read letter by letter: "1 validation case(s) missing,
    e.g. 0"; a number was a TypeError traceback."""
    import json

    package, images, labels = trained
    copied = shutil.copytree(package.path, tmp_path / "model")
    config = json.loads((copied / "model.json").read_text())
    config["training"]["val_cases"] = edited
    (copied / "model.json").write_text(json.dumps(config))
    assert evaluate([str(copied), str(images), str(labels)]) == 1
    captured = capsys.readouterr()
    assert captured.err == (f"error: {copied / 'model.json'}: training.val_cases is {json.dumps(edited)}, not a list "
                            'of case ids (texts, as medseg train writes it: ["case3", "case7"]); correct it, or use '
                            "--cases-from all\n")
    assert captured.out == ""


def test_a_corrupt_image_is_one_line(evaluate, trained, tmp_path, capsys):
    package, images, labels = trained
    shutil.copytree(images, tmp_path / "images")
    bad = tmp_path / "images" / f"{package.config['training']['val_cases'][0]}.nii.gz"
    bad.write_bytes(bad.read_bytes()[:200])
    assert evaluate([str(package.path), str(tmp_path / "images"), str(labels)]) == 1
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith(f"error: {bad}: ") and "\n" not in err
    # the other cases are still scored (one bad case stopped the whole run), and the figures say one is left out
    n_val = len(package.config["training"]["val_cases"])
    assert f"{n_val} cases (1 failed, not in the figures) from" in captured.out
    assert {n for n, *_ in _table(captured.out).values()} == {n_val - 1}


@pytest.mark.parametrize("option, line", [
    (["--device", "tpu"], "error: --device tpu: expected auto, cpu, cuda, cuda:N or mps"),
    (["--precision", "fp16"], "error: --precision fp16 needs a CUDA device (got cpu); use bf16 or fp32")])
def test_a_device_or_precision_it_cannot_use_names_the_scripts_option(evaluate, trained, option, line, capsys):
    """The script's --device and --precision reach medseg's Segmenter, whose messages name a Python caller's keyword
    arguments (device='tpu'): a reader of the script was told of an argument it has no way to give."""
    package, images, labels = trained
    assert evaluate([str(package.path), str(images), str(labels), *option]) == 1
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", f"{line}\n")


@pytest.mark.parametrize("option", [["--batch-size", "0"], ["--threads", "-2"], ["--threads", "two"]])
def test_bad_numbers_are_usage_errors(evaluate, trained, option, capsys):
    package, images, labels = trained
    with pytest.raises(SystemExit) as info:
        evaluate([str(package.path), str(images), str(labels), *option])
    assert info.value.code == 2
    assert f"argument {option[0]}: " in capsys.readouterr().err


# slow: 40 real volumes through the shipped model, over a minute of CPU (80 s user time); the property it checks
# on them (the printed figures are the package's validation record) is checked in the default run on a tiny
# trained package (test_prints_the_packages_validation_figures), the shipped model on a validation case by
# test_hippocampus_model.py
@pytest.mark.slow
@pytest.mark.shared_data
def test_shipped_hippocampus_figures_are_reproduced(evaluate, shared_data, capsys):
    data = shared_data / "hippocampus"
    assert evaluate(["hippocampus", str(data / "images"), str(data / "labels"), "--threads", "2"]) == 0
    table = _table(capsys.readouterr().out)
    assert table["anterior"] == (40, 0.8913, 0.8993, 0.7902)
    assert table["posterior"] == (40, 0.8783, 0.8882, 0.7861)


@pytest.mark.shared_data
def test_shipped_hippocampus_records_its_split(shared_data):
    """The training and validation ids the package records are its config's seeded split of the 200 cases (the
    training ids were added to the package after it was trained, from that split)."""
    from medseg.package import load_package
    from medseg.train_config import read_config, seeded_split

    data = shared_data / "hippocampus"
    training = load_package("hippocampus").config["training"]
    config = read_config(Path(__file__).parents[1] / "configs" / "train" / "hippocampus.json")
    fit, val, described = seeded_split(pair_cases(data / "images", data / "labels"), config["training"])
    assert training["train_case_ids"] == [c.case_id for c in fit] and len(fit) == training["train_cases"] == 160
    assert training["val_cases"] == [c.case_id for c in val] and described == training["val_split"]
    assert training["sessions"] == [{"epochs": [1, 45], "torch_threads": 2, "device": "cpu", "precision": "bf16"}]
    assert training["precision"] == "bf16" == training["settings"]["precision"]


def test_one_validation_case_is_counted_in_the_singular(evaluate, trained, tmp_path, capsys):
    """A package whose recorded validation split is one case printed "1 cases from …", and a training image among
    them "note: 1 of these cases are the model's training images (their SHA-256 …)"."""
    import json

    package, images, labels = trained
    copied = shutil.copytree(package.path, tmp_path / "model")
    config = json.loads((copied / "model.json").read_text())
    config["training"]["val_cases"] = [config["training"]["train_case_ids"][0]]  # one of its training images
    (copied / "model.json").write_text(json.dumps(config))
    assert evaluate([str(copied), str(images), str(labels), "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert f", 1 case from {images} (recorded validation split)" in out
    assert ("note: the one case is one of the model's training images (its SHA-256 is in its package): the figures "
            "overstate its accuracy on new data; --cases-from model scores its held-out cases") in out
