"""medseg.train on a tiny synthetic set: the package it writes and `medseg infer` runs, validation, devices and
precision, reproducibility, the moving average, the learning-rate schedule and the warnings of a run."""

from __future__ import annotations

import copy
import hashlib
import json
import re

import nibabel as nib
import numpy as np
import pytest
import torch
from conftest import set_tf32_settings, tf32, tf32_settings
from safetensors.torch import load_file
from training_factory import SHAPE, checkpoint_tensors, run, tiny_training_config, weights, write_set

from medseg.device import native_bf16
from medseg.errors import DeviceError, MedsegWarning, TrainingError
from medseg.package import load_package
from medseg.synthetic import write_phantom
from medseg.train import train
from medseg.training_cases import load_cases, pair_cases


def test_two_epochs_give_a_package_that_infer_runs(tiny_set, tmp_path):
    from medseg.inference import Segmenter
    from medseg.package import load_package
    from medseg.segment import segment_case

    epochs_seen = []
    run(tiny_training_config(), *tiny_set, tmp_path / "model", on_epoch=epochs_seen.append)
    assert [r["epoch"] for r in epochs_seen] == [1, 2]
    assert all(np.isfinite(r["loss"]) and 0.0 <= r["val_mean_dice"] <= 1.0 for r in epochs_seen)

    package = load_package(tmp_path / "model")  # checks schema and the weights' SHA-256
    assert package.labels == {0: "background", 1: "ellipsoid", 2: "box", 3: "tube"}
    training = package.config["training"]
    assert training["epochs_run"] == 2 and training["train_cases"] == 4
    assert training["val_cases"] == ["case2", "case3"]  # seeded split, recorded by name
    assert training["val_split"] == "a seeded 0.34 split, split seed 0"
    assert set(training["val_dice"]) == {"1", "2", "3"}
    card = (tmp_path / "model" / "MODEL_CARD.md").read_text()
    assert "medseg.synthetic phantoms" in card and "| ellipsoid |" in card
    # the libraries whose releases the weights rest on (MONAI's random augmentation, numpy's and torch's draws)
    import monai

    assert (training["torch"], training["monai"], training["numpy"]) == (torch.__version__, monai.__version__,
                                                                         np.__version__)
    assert f"torch {torch.__version__}, MONAI {monai.__version__}, numpy {np.__version__}" in " ".join(card.split())

    segmenter = Segmenter(package, device="cpu", precision="fp32", batch_size=8)
    outputs = segment_case(tiny_set[0] / "case2.nii.gz", segmenter, out_dir=tmp_path / "seg")
    seg = nib.load(outputs.segmentation)
    source = nib.load(tiny_set[0] / "case2.nii.gz")
    assert seg.shape == SHAPE and seg.get_data_dtype() == np.uint8
    np.testing.assert_allclose(seg.affine, source.affine, atol=1e-6)
    assert set(np.unique(np.asarray(seg.dataobj))) <= {0, 1, 2, 3}
    # the package lists its training images by content, so a training image is told from a new case
    train_ids = training["train_case_ids"]
    assert training["train_images_sha256"] == sorted(
        hashlib.sha256((tiny_set[0] / f"{case}.nii.gz").read_bytes()).hexdigest() for case in train_ids)
    # every case's image and label by content, validation cases too: what a retraining must read again
    def sha(path):
        return hashlib.sha256(path.read_bytes()).hexdigest()

    assert training["data_sha256"] == {f"case{i}": [sha(tiny_set[0] / f"case{i}.nii.gz"),
                                                    sha(tiny_set[1] / f"case{i}.nii.gz")] for i in range(6)}
    assert "every case's image and label SHA-256 under `training.data_sha256`" in " ".join(card.split())
    assert outputs.record["in_training_set"] is False  # case2 validated
    trained = segment_case(tiny_set[0] / f"{train_ids[0]}.nii.gz", segmenter, out_dir=tmp_path / "seg")
    assert trained.record["in_training_set"] is True
    assert json.loads(trained.sidecar.read_text())["in_training_set"] is True
    # what the weights were trained for, so that a hand edit of model.json is told where the package loads
    assert training["trained_with"] == {"labels": {"0": "background", "1": "ellipsoid", "2": "box", "3": "tube"},
                                        "preprocessing": package.preprocessing,
                                        "slice_axis": package.inference["slice_axis"],
                                        "context_slices": package.inference["context_slices"]}


def test_view_ensemble_in_bf16_trains_on_every_axis_and_infers(tiny_set, tmp_path, caplog):
    from medseg.inference import Segmenter
    from medseg.package import load_package
    from medseg.train import _SliceSampler

    config = tiny_training_config(precision="bf16", patch_size=[24, 24])
    config["inference"].update(slice_axis=[0, 2], flip_tta=[])
    cases = load_cases(pair_cases(*tiny_set), config)
    sampler = _SliceSampler(cases, [0, 2], 0.5)
    assert len(sampler.all) == sum(c.label.shape[0] + c.label.shape[2] for c in cases)
    drawn = sampler.draw(np.random.default_rng(0), 200)
    assert {axis for _, axis, _ in drawn} == {0, 2}
    assert all(s < cases[c].label.shape[axis] for c, axis, s in drawn)

    with caplog.at_level("WARNING", logger="medseg.train"), pytest.warns(MedsegWarning) as told:
        run(config, *tiny_set, tmp_path / "model")
    # 24-pixel patches against a 32-pixel inference tile: small planes would be padded differently
    assert "training patches [24, 24] differ from the inference tile [32, 32]" in caplog.text
    assert [str(w.message).startswith("training patches [24, 24] differ from the inference tile [32, 32]")
            for w in told if "training patches" in str(w.message)] == [True]
    emulated = ("training.precision bf16: this CPU has no AVX-512 BF16 or AMX, so bf16 runs emulated, several times "
                "slower than fp32; use fp32 (or auto)")
    assert (emulated in caplog.text) != native_bf16("cpu")
    with pytest.warns(MedsegWarning, match=r"inference\.roi_size \[32, 32\] differs from the \[24, 24\] patches"):
        package = load_package(tmp_path / "model")  # the package's tile, as its patches were set apart
    assert package.inference["slice_axis"] == [0, 2]
    assert package.config["training"]["settings"]["precision"] == "bf16"
    assert package.config["training"]["precision"] == "bf16"
    segmenter = Segmenter(package, device="cpu", precision="fp32")
    image = cases[0].image
    labels = segmenter.predict(image)
    assert labels.shape == image.shape[1:]
    assert segmenter.window_net.tiles >= image.shape[1] + image.shape[3]


def test_given_validation_cases_are_used_and_named_so_in_the_card(tiny_set, tmp_path):
    config = tiny_training_config(epochs=1)
    cases = load_cases(pair_cases(*tiny_set), config)
    held_out = [c for c in cases if c.case_id in ("case0", "case5")]
    rest = [c for c in cases if c not in held_out]
    package = train(copy.deepcopy(config), rest, tmp_path / "model", val_cases=held_out)
    training = package.config["training"]
    assert training["val_cases"] == ["case0", "case5"] and training["train_cases"] == 4
    assert training["val_split"] == "chosen by the caller"
    card = (tmp_path / "model" / "MODEL_CARD.md").read_text()
    assert "2 validation cases (chosen by the caller;" in card and "seeded" not in card
    assert (f"{training['train_seconds']} s wall, {training['train_cpu_seconds']} s process CPU time of training "
            "(reading the cases not counted) on cpu") in card
    # each paragraph and list item is one line of the raw text (no breaks mid-phrase for `cat` or a diff)
    lines = card.splitlines()
    training_paragraph = lines[lines.index("## Training") + 1]
    assert training_paragraph.startswith("4 training cases, 2 validation cases (chosen by the caller;")
    assert (f"torch {training['torch']}, MONAI {training['monai']}, numpy {training['numpy']}, "
            f"medseg {training['medseg']}") in training_paragraph
    assert training_paragraph.endswith(").")
    inference = package.config["inference"]
    assert (f"- Slicing axis {inference['slice_axis']}, tile {inference['roi_size']}, context slices 1, flip TTA [0]"
            in lines)
    assert lines[lines.index("## Training") + 2].startswith("Best epoch 1 by mean validation Dice")
    assert all(line == "" or line.startswith(("#", "-", "|", "Licence")) or line[0].isupper() or line[0].isdigit()
               for line in lines[lines.index("## Training"):]), lines


def test_validation_with_nothing_to_score_ships_the_last_epoch_and_writes_valid_json(tiny_set, tmp_path):
    # validation labels wiped and images blank: no validation case holds a label and the network predicts none
    # there, so no label has a Dice (medseg's empty-mask policy: both empty is undefined)
    config = tiny_training_config(epochs=2, steps_per_epoch=30)
    torch.set_num_threads(1)
    cases = load_cases(pair_cases(*tiny_set), config)
    for case in cases[:2]:
        case.label = torch.zeros_like(case.label)
        case.image = torch.zeros_like(case.image)
    with pytest.warns(MedsegWarning, match=r"^no validation case holds a foreground label \(2 cases\)"):
        train(copy.deepcopy(config), cases[2:], tmp_path / "model", val_cases=cases[:2])
    text = (tmp_path / "model" / "model.json").read_text()
    assert "NaN" not in text
    training = json.loads(text)["training"]
    assert training["val_dice"] == {"1": None, "2": None, "3": None} and training["val_mean_dice"] is None
    assert training["best_epoch"] == 2 and training["epochs_run"] == 2
    state = (tmp_path / "model" / ".checkpoint" / "last.json").read_text()
    assert "NaN" not in state
    assert [h["val_mean_dice"] for h in json.loads(state)["history"]] == [None, None]
    card = (tmp_path / "model" / "MODEL_CARD.md").read_text()
    assert "No label could be scored" in card and "last epoch (2)" in card and "Best epoch" not in card


def test_a_label_no_validation_reference_holds_scores_its_false_positives_as_evaluate_does(tmp_path):
    """The recorded figures follow medseg's empty-mask policy, so `medseg infer --reference` (and
    benchmarks/evaluate_model.py) reproduce them; before, such a label was n/a while evaluate scored 0."""
    from medseg.cli import main

    images, labels = write_set(tmp_path / "data")
    for case in ("case0", "case1"):  # the validation cases: references without the ellipsoid, which they show
        label = nib.load(labels / f"{case}.nii.gz")
        array = np.asarray(label.dataobj).copy()
        array[array == 1] = 0
        nib.save(nib.Nifti1Image(array, label.affine, label.header), labels / f"{case}.nii.gz")
    config = tiny_training_config(epochs=2, steps_per_epoch=30)
    torch.set_num_threads(1)
    cases = load_cases(pair_cases(images, labels), config)
    with pytest.warns(MedsegWarning, match=r"^label 1 'ellipsoid' appears in no validation case: "):
        train(copy.deepcopy(config), cases[2:], tmp_path / "model", val_cases=cases[:2])
    training = json.loads((tmp_path / "model" / "model.json").read_text())["training"]
    assert training["val_labels_absent"] == [1]
    scored: dict[str, list[float]] = {"1": [], "2": [], "3": []}
    for case in ("case0", "case1"):
        with pytest.raises(SystemExit) as info:
            main(["-q", "infer", str(images / f"{case}.nii.gz"), "-m", str(tmp_path / "model"), "-o",
                  str(tmp_path / "out"), "--reference", str(labels / f"{case}.nii.gz"), "--device", "cpu"])
        assert info.value.code == 0
        metrics = json.loads((tmp_path / "out" / f"{case}_metrics.json").read_text())["labels"]
        for value, entry in metrics.items():
            if entry["dice"] is not None:
                scored[value].append(entry["dice"])
    expected = {k: (float(np.mean(v)) if v else None) for k, v in scored.items()}
    assert training["val_dice"] == pytest.approx(expected, abs=1e-12)
    assert scored["1"] and set(scored["1"]) == {0.0}  # predicted in the validation cases: false positives
    card = (tmp_path / "model" / "MODEL_CARD.md").read_text()
    assert "| ellipsoid * | 0.0000 | 0.0000 | 0.0000 |" in card and "\\* in no validation reference" in card


def test_training_labels_without_foreground_are_refused_and_missing_labels_named(tiny_set, tmp_path, caplog):
    config = tiny_training_config(epochs=1, steps_per_epoch=2)
    cases = load_cases(pair_cases(*tiny_set), config)
    for case in cases:
        case.label = torch.zeros_like(case.label)
    with pytest.raises(TrainingError, match=r"no training label image holds any foreground \(those of all 4 training "
                                            r"cases are background only\); there is nothing to learn"):
        train(copy.deepcopy(config), cases[2:], tmp_path / "model", val_cases=cases[:2])
    assert not (tmp_path / "model").exists()
    cases = load_cases(pair_cases(*tiny_set), config)
    for case in cases:
        case.label[case.label == 3] = 0
    with caplog.at_level("WARNING"), pytest.warns(MedsegWarning) as told:
        train(copy.deepcopy(config), cases[2:], tmp_path / "model", val_cases=cases[:2])
    messages = [r.getMessage() for r in caplog.records]
    assert "label 3 'tube' appears in no training case: the network cannot learn it" in messages
    assert [str(w.message) for w in told] == ["label 3 'tube' appears in no training case: the network cannot learn it"]
    # in no validation case either: the line above names it, a second line would only repeat it
    assert not [m for m in messages if "no validation case" in m]
    training = json.loads((tmp_path / "model" / "model.json").read_text())["training"]
    assert training["val_dice"]["3"] is None and training["val_dice"]["1"] is not None
    assert "| tube * | n/a | n/a | n/a |" in (tmp_path / "model" / "MODEL_CARD.md").read_text()
    assert sorted(training["train_case_ids"]) == sorted(c.case_id for c in cases[2:])


def test_a_label_no_training_case_holds_is_recorded_and_carried_into_the_sidecars(tiny_set, tmp_path):
    """A label declared to fill a gap (labels 1, 3, 7 trained as 0..7) is in no training case: the record lists it
    (train_labels_absent) and `medseg infer` copies it into each sidecar (labels_not_trained), where the QA report
    finds that its empty prediction is expected."""
    from medseg.cli import main

    config = tiny_training_config(epochs=1, steps_per_epoch=2)
    config["architecture"]["n_classes"] = 5
    config["labels"]["4"] = "gap"
    with pytest.warns(MedsegWarning, match=r"^label 4 'gap' appears in no training case: the network cannot learn it$"):
        run(config, *tiny_set, tmp_path / "model")
    training = json.loads((tmp_path / "model" / "model.json").read_text())["training"]
    assert training["train_labels_absent"] == [4] and training["val_labels_absent"] == [4]
    card = (tmp_path / "model" / "MODEL_CARD.md").read_text()
    assert "(see Training). In no training case, so never learnt: 4 gap.\n" in card
    with pytest.raises(SystemExit) as info:
        main(["-q", "infer", str(tiny_set[0] / "case5.nii.gz"), "-m", str(tmp_path / "model"), "-o",
              str(tmp_path / "out"), "--device", "cpu"])
    assert info.value.code == 0
    sidecar = json.loads((tmp_path / "out" / "case5_seg.json").read_text())
    assert sidecar["labels_not_trained"] == [4] and sidecar["labels"]["4"] == "gap"
    # a package that records none (the shipped ones) writes no such key
    from medseg.package import load_package
    from medseg.segment import labels_not_trained

    assert labels_not_trained(load_package("phantom")) == []


def test_validation_without_any_foreground_chooses_no_epoch(tiny_set, tmp_path, caplog):
    """Validation cases whose labels hold no foreground score each epoch 0 (a false positive) or n/a: the first
    epoch used to win every tie and was shipped as 'best'. Such a validation cannot choose, so the last epoch is
    shipped, told once (not once per label), and the card and the record say so."""
    config = tiny_training_config(epochs=3, steps_per_epoch=2)
    cases = load_cases(pair_cases(*tiny_set), config)
    for case in cases[:2]:
        case.label = torch.zeros_like(case.label)
    with caplog.at_level("WARNING"), pytest.warns(MedsegWarning) as told:
        train(copy.deepcopy(config), cases[2:], tmp_path / "model", val_cases=cases[:2])
    messages = [r.getMessage() for r in caplog.records if "validation case" in r.getMessage()]
    assert messages == ["no validation case holds a foreground label (2 cases): their Dice can only count false "
                        "positives, so it chooses no epoch; the package holds the last epoch's weights"]
    assert [str(w.message) for w in told] == messages
    training = json.loads((tmp_path / "model" / "model.json").read_text())["training"]
    assert training["best_epoch"] == 3 and training["val_labels_absent"] == [1, 2, 3]
    card = (tmp_path / "model" / "MODEL_CARD.md").read_text()
    assert ("No validation case holds a foreground label, so their Dice (false positives only) chose no epoch: the "
            "package holds the weights of the last epoch (3).") in " ".join(card.split())


@pytest.mark.parametrize(("device", "message"), [
    ("gpu", "device='gpu': expected auto, cpu, cuda, cuda:N or mps"),
    ("cuda", "device='cuda': CUDA is not available on this machine"),
])
def test_a_device_that_is_not_there_is_refused_before_anything_is_written(tiny_set, tmp_path, monkeypatch, device,
                                                                          message):
    """From Python, as with ``medseg train --device``: torch's own error (an AssertionError that torch has no CUDA,
    a RuntimeError listing its device types) came from deep in training before."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceError) as raised:
        run(tiny_training_config(epochs=1, steps_per_epoch=1), *tiny_set, tmp_path / "model", device=device)
    assert str(raised.value).startswith(message)
    assert list(tmp_path.iterdir()) == []


def test_auto_trains_on_the_device_it_finds_and_records_it(tiny_set, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    package = run(tiny_training_config(epochs=1, steps_per_epoch=1), *tiny_set, tmp_path / "model", device="auto")
    assert package.config["training"]["device"] == "cpu"


def test_auto_precision_is_bf16_only_where_the_hardware_has_it(tiny_set, tmp_path, caplog, monkeypatch, capsys):
    """bf16 autocast on a CPU without AVX-512 BF16 or AMX is emulated: a training step of the shipped recipe took
    11x as long as in float32 on an AVX2 CPU. ``auto`` takes bf16 only where it is native, and the package and its
    card say what it was."""
    import medseg.device
    from medseg.train_config import training_precision

    monkeypatch.setattr(medseg.device, "native_bf16", lambda device: True)  # as on a CPU with AVX-512 BF16
    assert training_precision("auto", "cpu") == ("bf16", "auto: cpu computes bf16 in hardware")
    assert training_precision("bf16", "cpu") == ("bf16", "configured")
    monkeypatch.setattr(medseg.device, "native_bf16", lambda device: False)  # as on an AVX2-only CPU
    assert training_precision("auto", "cpu") == ("fp32", "auto: no AVX-512 BF16 or AMX")
    assert training_precision("auto", "mps") == ("fp32", "auto: mps has no native bf16")
    assert training_precision("fp32", "cpu") == ("fp32", "configured")
    with caplog.at_level("WARNING", logger="medseg.train"), pytest.warns(MedsegWarning) as told:
        run(tiny_training_config(precision="bf16", epochs=1), *tiny_set, tmp_path / "warned")  # emulated: kept, warned
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        "training.precision bf16: this CPU has no AVX-512 BF16 or AMX, so bf16 runs emulated, several times slower "
        "than fp32; use fp32 (or auto)"] == [str(w.message) for w in told]
    monkeypatch.undo()

    assert native_bf16("mps") is False
    run(tiny_training_config(precision="auto", epochs=1), *tiny_set, tmp_path / "model")
    package = load_package(tmp_path / "model")
    used = "bf16" if native_bf16("cpu") else "fp32"
    training = package.config["training"]
    assert training["settings"]["precision"] == "auto" and training["precision"] == used
    assert training["sessions"] == [{"epochs": [1, 1], "torch_threads": torch.get_num_threads(), "device": "cpu",
                                     "precision": used}]
    card = " ".join((tmp_path / "model" / "MODEL_CARD.md").read_text().split())
    assert f"{used} (precision auto) forward pass" in card


def test_package_records_each_epochs_loss_for_a_rerun_to_compare(tiny_set, tmp_path):
    """The loss and learning rate of every epoch were in the checkpoint alone, which a shipped package leaves out: an
    auditor retraining with the same seed had no first epoch's loss to compare. model.json's training record and the
    card now hold them."""
    epochs_seen = []
    run(tiny_training_config(), *tiny_set, tmp_path / "model", on_epoch=epochs_seen.append)
    history = load_package(tmp_path / "model").config["training"]["history"]
    assert history == [{"epoch": r["epoch"], "lr": r["lr"], "loss": r["loss"], "val_mean_dice": r["val_mean_dice"]}
                       for r in epochs_seen]
    card = (tmp_path / "model" / "MODEL_CARD.md").read_text(encoding="utf-8")
    losses = ", ".join(f"{r['epoch']} {r['loss']:.4f}" for r in epochs_seen)
    assert card.endswith("\n## Training loss per epoch\nMean over its steps (`training.history` in `model.json` holds "
                         "each to the last bit, for a run of the same seed, threads and versions to compare its own "
                         f"with): {losses}.\n")


def test_same_seed_gives_bit_identical_weights(tiny_set, tmp_path):
    config = tiny_training_config(epochs=1)
    run(config, *tiny_set, tmp_path / "a")
    run(config, *tiny_set, tmp_path / "b")
    run(tiny_training_config(epochs=1, seed=4), *tiny_set, tmp_path / "c")
    a, b, c = weights(tmp_path / "a"), weights(tmp_path / "b"), weights(tmp_path / "c")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)  # the seed matters, so the check above means something
    history = [load_package(tmp_path / name).config["training"]["history"] for name in "ab"]
    assert history[0] == history[1] and history[0][0]["loss"] > 0  # a rerun's first loss to the last bit


def test_training_leaves_the_callers_random_generators_and_cudnn_flags_as_they_were(tiny_set, tmp_path):
    """Training's seeding (MONAI's set_determinism) reseeded the caller's generators and left cuDNN deterministic."""
    import random

    random.seed(11)
    np.random.seed(11)
    torch.manual_seed(11)
    expected = random.random(), float(np.random.random()), float(torch.rand(1))
    random.seed(11)
    np.random.seed(11)
    torch.manual_seed(11)
    flags = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = False, True
    try:
        run(tiny_training_config(epochs=1, steps_per_epoch=1), *tiny_set, tmp_path / "m")
        assert (random.random(), float(np.random.random()), float(torch.rand(1))) == expected
        assert (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark) == (False, True)
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = flags


def test_ema_package_ships_the_moving_average(tiny_set, tmp_path):
    from medseg.train import _EMA

    run(tiny_training_config(epochs=1, val_fraction=0.0, ema_decay=0.5), *tiny_set, tmp_path / "ema")
    shipped = weights(tmp_path / "ema")
    checkpoint = load_file(str(checkpoint_tensors(tmp_path / "ema")))
    # without validation the last epoch is shipped: the averaged weights, not the raw ones
    assert all(torch.equal(shipped[k], checkpoint[f"ema.{k}"]) for k in shipped)
    assert not all(torch.equal(shipped[k], checkpoint[f"model.{k}"]) for k in shipped)

    # the average itself: decay ramps (1+n)/(10+n) up to its setting, integer buffers are copied
    source = torch.nn.BatchNorm1d(2)
    ema = _EMA(source, 0.5)
    with torch.no_grad():
        source.weight.fill_(3.0)
        source.num_batches_tracked.fill_(7)
    ema.update(source)  # n = 1: decay min(0.5, 2/11) = 2/11
    expected = 1.0 + (3.0 - 1.0) * (1 - 2 / 11)
    torch.testing.assert_close(ema.net.weight, torch.full((2,), expected))
    assert int(ema.net.num_batches_tracked) == 7
    ema.update(source)  # n = 2: decay 3/12
    torch.testing.assert_close(ema.net.weight, torch.full((2,), expected + (3.0 - expected) * (1 - 3 / 12)))


def test_bad_ema_decay_is_a_training_error(tiny_set, tmp_path):
    with pytest.raises(TrainingError, match="training.ema_decay: 1.0 is greater than or equal to the maximum of 1"):
        run(tiny_training_config(ema_decay=1.0), *tiny_set, tmp_path / "model")


def test_unknown_schedule_is_a_training_error(tiny_set, tmp_path):
    with pytest.raises(TrainingError, match=r"training.schedule: 'exp' is not one of \['cosine', 'poly', 'constant'\]"):
        run(tiny_training_config(schedule="exp"), *tiny_set, tmp_path / "model")


def test_package_files_are_readable_like_any_other_output(tiny_set, tmp_path):
    import os
    import stat

    mask = os.umask(0o022)
    os.umask(mask)
    run(tiny_training_config(epochs=1), *tiny_set, tmp_path / "model")
    for name in ("weights.safetensors", "model.json", "MODEL_CARD.md"):  # safetensors alone would write 0600
        assert stat.S_IMODE((tmp_path / "model" / name).stat().st_mode) == 0o666 & ~mask, name


def test_package_records_the_intensities_it_was_trained_on(tiny_set, tmp_path):
    """Each training and validation image's 1st and 99th percentiles as read: `medseg infer` compares an input's."""
    from medseg.package import load_package

    run(tiny_training_config(epochs=1), *tiny_set, tmp_path / "model")
    percentiles = np.array([np.percentile(np.asarray(nib.load(path).dataobj, dtype=float), [1, 99])
                            for path in sorted(tiny_set[0].iterdir())])
    recorded = load_package(tmp_path / "model").config["input_intensity"]
    assert recorded["cases"] == 6
    np.testing.assert_allclose([recorded["p1"]["min"], recorded["p1"]["max"]],
                               [percentiles[:, 0].min(), percentiles[:, 0].max()], rtol=1e-3)
    np.testing.assert_allclose([recorded["p99"]["min"], recorded["p99"]["max"]],
                               [percentiles[:, 1].min(), percentiles[:, 1].max()], rtol=1e-3)
    lines = (tmp_path / "model" / "MODEL_CARD.md").read_text().splitlines()
    assert any(line.startswith("- Intensities: 1st percentile ") for line in lines), lines


def test_package_records_the_field_of_view_it_was_trained_on(tiny_set, tmp_path):
    from medseg.package import load_package

    run(tiny_training_config(epochs=1), *tiny_set, tmp_path / "model")
    extents = []
    for path in sorted(tiny_set[0].iterdir()):  # axis-aligned, no resampling: RAS orientation permutes the axes
        image = nib.load(path)
        extent = np.zeros(3)
        for axis in range(3):
            column = image.affine[:3, axis]
            extent[np.argmax(np.abs(column))] = np.linalg.norm(column) * image.shape[axis]
        extents.append(extent)
    recorded = load_package(tmp_path / "model").config["input_extent_mm"]
    assert recorded["cases"] == 6
    np.testing.assert_allclose(recorded["min"], np.min(extents, 0), atol=0.01)
    np.testing.assert_allclose(recorded["max"], np.max(extents, 0), atol=0.01)
    lines = (tmp_path / "model" / "MODEL_CARD.md").read_text().splitlines()
    sizes = " × ".join(f"{low:g}–{high:g}" for low, high in zip(recorded["min"], recorded["max"]))
    # 4 training and 2 validation cases: the fields of view are of both, and the card says so
    assert (f"- Inputs: fields of view of {sizes} mm (model-space axes) across its 6 training and validation cases; "
            "`medseg infer` warns about inputs outside half the smallest to twice the largest, and the QA report "
            "flags them (`unlike_training`)") in lines


def test_a_resampling_package_records_the_dice_users_get_on_the_input_grid(tmp_path):
    """With spacing_mm the recorded validation figures are those of `medseg infer` on the files' own grids (scored
    against the label files), not those against labels resampled into model space."""
    from medseg.inference import Segmenter
    from medseg.package import load_package
    from medseg.segment import segment_case

    images, labels = tmp_path / "images", tmp_path / "labels"
    for seed in range(4):
        write_phantom(images / f"case{seed}.nii.gz", labels / f"case{seed}.nii.gz", shape=(36, 30, 10), seed=seed,
                      oblique=True)
    config = tiny_training_config(epochs=2, steps_per_epoch=6, val_fraction=0.5)
    config["preprocessing"]["spacing_mm"] = [1.3, 1.3, 2.1]
    run(config, images, labels, tmp_path / "model")
    training = json.loads((tmp_path / "model" / "model.json").read_text())["training"]
    assert training["val_scored_on"] == "input grid"
    segmenter = Segmenter(load_package(tmp_path / "model"), device="cpu")
    dice = {"1": [], "2": [], "3": []}
    for case in training["val_cases"]:
        outputs = segment_case(images / f"{case}.nii.gz", segmenter, out_dir=tmp_path / "infer",
                               reference=labels / f"{case}.nii.gz")
        for value, entry in outputs.record["metrics"]["labels"].items():
            if entry["dice"] is not None and entry["status"] != "false_positive":
                dice[value].append(entry["dice"])
    for value, scores in dice.items():
        if scores:
            assert training["val_dice"][value] == pytest.approx(float(np.mean(scores)), abs=1e-9)
    assert "mapped back onto its own grid" in (tmp_path / "model" / "MODEL_CARD.md").read_text()


def test_a_unet_too_deep_for_its_patch_is_warned_about(tiny_set, tmp_path, caplog):
    """Depth 6 on 16-pixel patches (padded to 64, one cell at the bottom) trained without a word and reached a Dice
    of 0.1; with batch norm over a batch it is not refused, but said."""
    config = tiny_training_config(epochs=1, steps_per_epoch=1, patch_size=[16, 16])
    config["architecture"]["depth"] = 6
    with caplog.at_level("WARNING"), pytest.warns(MedsegWarning) as told:
        run(config, *tiny_set, tmp_path / "deep")
    said = ("training.patch_size [16, 16] leaves one cell at the bottom of a depth-6 U-Net: its deepest levels see "
            "little but padding and it learns little; architecture.depth 3 or less fits the patch")
    assert said in caplog.messages and said in [str(w.message) for w in told]
    caplog.clear()
    with caplog.at_level("WARNING"):
        run(tiny_training_config(epochs=1, steps_per_epoch=1), *tiny_set, tmp_path / "fits")
    assert not [m for m in caplog.messages if "one cell at the bottom" in m]


@pytest.mark.parametrize("schedule, rates", [
    ("cosine", [0.5, 1.0, 0.75, 0.25]),
    ("poly", [0.5, 1.0, (1 - 1 / 3) ** 0.9, (1 - 2 / 3) ** 0.9]),
    ("constant", [0.5, 1.0, 1.0, 1.0]),
])
def test_learning_rate_warms_up_then_follows_the_schedule(schedule, rates):
    from medseg.train import learning_rate

    settings = {"learning_rate": 1.0, "epochs": 4, "warmup_epochs": 1, "schedule": schedule}
    assert [learning_rate(settings, epoch) for epoch in range(4)] == pytest.approx(rates)


def test_dice_per_label_counts_each_value_and_gives_nan_where_neither_holds_it():
    from medseg.train import dice_per_label

    pred = np.array([0, 1, 1, 2, 2, 0])
    ref = np.array([0, 1, 2, 2, 2, 0])
    scores = dice_per_label(pred, ref, [1, 2, 3])
    assert scores[1] == pytest.approx(2 * 1 / 3)
    assert scores[2] == pytest.approx(2 * 2 / 5)
    assert np.isnan(scores[3])


def test_cases_without_a_file_hash_give_no_list_of_training_images(tiny_set, tmp_path):
    """API callers may pass cases built without their files' SHA-256. A partial list would call the unhashed
    training images new ones, so the package then lists none (the card says nothing of it) and `medseg infer`
    records nothing rather than False (not one of them)."""
    from medseg.package import load_package

    config = tiny_training_config()
    torch.set_num_threads(1)
    cases = load_cases(pair_cases(*tiny_set), config)
    unhashed = next(c for c in cases if c.case_id == "case0")  # a training case of the seeded split
    unhashed.sha256 = None
    train(copy.deepcopy(config), cases, tmp_path / "model")
    package = load_package(tmp_path / "model")
    training = package.config["training"]
    assert "case0" in training["train_case_ids"] and "train_images_sha256" not in training
    assert "train_images_sha256" not in (tmp_path / "model" / "MODEL_CARD.md").read_text()
    assert "data_sha256" not in training  # nor a partial list of the cases' files

    from medseg.inference import Segmenter
    from medseg.segment import segment_case

    segmenter = Segmenter(package, device="cpu", precision="fp32", batch_size=8)
    outputs = segment_case(tiny_set[0] / "case1.nii.gz", segmenter, out_dir=tmp_path / "seg")
    assert "in_training_set" not in outputs.record and "in_training_set" not in json.loads(outputs.sidecar.read_text())


def test_a_patch_and_tile_larger_than_every_plane_are_warned_about(tiny_set, tmp_path, caplog):
    """A 512 × 512 patch on 32 × 32 planes trained without a word, each step ~250× the compute it needed."""
    config = tiny_training_config(epochs=1, steps_per_epoch=1, patch_size=[96, 80])
    config["inference"]["roi_size"] = [96, 80]
    with caplog.at_level("WARNING", logger="medseg"), pytest.warns(MedsegWarning) as told:
        run(config, *tiny_set, tmp_path / "both")
    warned = [r.getMessage() for r in caplog.records if "larger than every plane" in r.getMessage()]
    assert [str(w.message) for w in told] == warned
    assert warned == ["training.patch_size and inference.roi_size [96, 80]: larger than every plane of the cases "
                      "(at most 32 × 32 voxels in model space), so each patch and tile is mostly padding, about 7.5× "
                      "the compute of [32, 32], which holds every plane"]
    caplog.clear()
    config = tiny_training_config(epochs=1, steps_per_epoch=1, patch_size=[64, 48])  # tile [32, 32] holds them
    with caplog.at_level("WARNING", logger="medseg"), pytest.warns(MedsegWarning) as told:
        run(config, *tiny_set, tmp_path / "patch")
    warned = [r.getMessage() for r in caplog.records if "larger than every plane" in r.getMessage()]
    assert [str(w.message) for w in told if "larger than every plane" in str(w.message)] == warned
    assert [str(w.message).split(":")[0] for w in told if "larger than every plane" not in str(w.message)] == [
        "training patches [64, 48] differ from the inference tile [32, 32]"]
    assert len(warned) == 1 and warned[0].startswith("training.patch_size [64, 48]: larger than every plane")
    assert "about 3.0× the compute of [32, 32]" in warned[0]
    caplog.clear()
    with caplog.at_level("WARNING", logger="medseg"):
        run(tiny_training_config(epochs=1, steps_per_epoch=1), *tiny_set, tmp_path / "fits")
    assert not [r for r in caplog.records if "larger than every plane" in r.getMessage()]


def test_a_blank_label_image_among_others_is_named_in_a_warning(tmp_path, caplog):
    """One all-background label file (a blank export) trained without a word."""
    images, labels = write_set(tmp_path / "set")
    image = nib.load(labels / "case1.nii.gz")  # a training case of the seeded split
    nib.save(nib.Nifti1Image(np.zeros(image.shape, np.uint8), image.affine), labels / "case1.nii.gz")
    with caplog.at_level("WARNING", logger="medseg"), pytest.warns(MedsegWarning) as told:
        run(tiny_training_config(epochs=1, steps_per_epoch=1), images, labels, tmp_path / "model")
    warned = [r.getMessage() for r in caplog.records if "background only" in r.getMessage()]
    assert [str(w.message) for w in told] == warned
    assert warned == [f"{labels / 'case1.nii.gz'}: holds background only (no label value above 0): trained on as a "
                      "case without the structure; a blank export?"]


def test_the_library_replaces_a_package_only_when_asked(tiny_set, tmp_path):
    """`train(config, cases, out)` run again (a notebook cell run twice) replaced the package in ``out`` without a
    word, and wrote into a folder of other files: only `medseg train` checked the folder."""
    from medseg.errors import OutputExistsError

    out = tmp_path / "model"
    run(tiny_training_config(epochs=1, steps_per_epoch=1), *tiny_set, out)
    weights = (out / "weights.safetensors").read_bytes()
    with pytest.raises(OutputExistsError, match=f"^{re.escape(str(out))}: holds a model package already"):
        run(tiny_training_config(epochs=1, steps_per_epoch=1, seed=9), *tiny_set, out)
    assert (out / "weights.safetensors").read_bytes() == weights
    package = run(tiny_training_config(epochs=1, steps_per_epoch=1, seed=9), *tiny_set, out, overwrite=True)
    assert package.config["training"]["settings"]["seed"] == 9
    assert (out / "weights.safetensors").read_bytes() != weights
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("mine")
    with pytest.raises(TrainingError, match="notes: is not empty and holds no model package"):
        run(tiny_training_config(epochs=1, steps_per_epoch=1), *tiny_set, tmp_path / "notes")
    assert sorted(p.name for p in (tmp_path / "notes").iterdir()) == ["todo.txt"]


def test_torchs_default_dtype_float64_trains_the_weights_float32_trains(tiny_set, tmp_path):
    """A notebook at `torch.set_default_dtype(torch.float64)` could not train: the first step failed in torch's own
    RuntimeError ("Input type (torch.FloatTensor) and weight type (torch.DoubleTensor) should be the same"). It now
    trains the weights of a process left at float32, to the last bit, and leaves the default as it was set."""
    config = tiny_training_config(epochs=1, steps_per_epoch=1)
    run(config, *tiny_set, tmp_path / "single")
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        run(config, *tiny_set, tmp_path / "double")
        assert torch.get_default_dtype() == torch.float64
    finally:
        torch.set_default_dtype(previous)
    single, double = weights(tmp_path / "single"), weights(tmp_path / "double")
    assert {t.dtype for t in double.values() if t.is_floating_point()} == {torch.float32}
    assert single.keys() == double.keys() and all(torch.equal(single[k], double[k]) for k in single)


@pytest.mark.parametrize("switched_off", ["set_grad_enabled(False)", "inference_mode()"])
def test_a_notebook_with_gradients_switched_off_trains_the_weights_it_would_with_them_on(tiny_set, tmp_path,
                                                                                         switched_off):
    """`torch.set_grad_enabled(False)` run earlier in a notebook (for inference), or a `with torch.inference_mode():`
    around the call, made the first training step fail in torch's own RuntimeError ("element 0 of tensors does not
    require grad and does not have a grad_fn"), not a medseg error. Training switches gradients on for itself, trains
    the weights it trains with them on, and leaves the caller's setting as it was."""
    import contextlib

    config = tiny_training_config(epochs=1, steps_per_epoch=1)
    run(config, *tiny_set, tmp_path / "on")
    if switched_off == "inference_mode()":
        context = torch.inference_mode()
    else:
        context = contextlib.ExitStack()
        torch.set_grad_enabled(False)
    try:
        with context:
            run(config, *tiny_set, tmp_path / "off")
            assert not torch.is_grad_enabled()
    finally:
        torch.set_grad_enabled(True)
    on, off = weights(tmp_path / "on"), weights(tmp_path / "off")
    assert on.keys() == off.keys() and all(torch.equal(on[k], off[k]) for k in on)



def test_fp32_training_steps_run_without_tf32_and_put_the_flags_back(tiny_set, tmp_path):
    """A training run recorded as fp32 (its history's ``precision``) is float32 throughout, as inference's is: cuDNN's
    TF32 convolutions (torch's default, a 10-bit mantissa on an Ampere or later GPU) are off in its forward and
    backward passes, and the caller's flags are as they were afterwards."""
    seen, backward = set(), []

    def record(*_):
        seen.add(tf32_settings())

    def forward(module, _, output):  # each convolution's forward pass, and its backward pass through its output
        if isinstance(module, torch.nn.Conv2d):
            record()
            if output.requires_grad:
                output.register_hook(record)
                backward.append(module)

    before = tf32_settings()
    set_tf32_settings(tf32(True))
    hooks = [torch.nn.modules.module.register_module_forward_hook(forward)]
    try:
        run(tiny_training_config(precision="fp32", epochs=1), *tiny_set, tmp_path / "model")
        assert backward and seen == {tf32(False)}
        assert tf32_settings() == tf32(True)
    finally:
        for hook in hooks:
            hook.remove()
        set_tf32_settings(before)


def test_cases_paired_but_not_read_or_none_at_all_are_refused_before_anything_is_written(tmp_path):
    """The cases pair_cases returns, given to train without load_cases (a step of the documented example left out),
    failed deep in torch with a TypeError about None; no case at all was 'no training cases left after the
    validation split'. Each is one line now, before the output folder is made."""
    from medseg.errors import InputError

    for seed in range(2):
        write_phantom(tmp_path / "images" / f"p{seed}.nii.gz", tmp_path / "labels" / f"p{seed}.nii.gz",
                      shape=(16, 16, 6), seed=seed)
    cases, out = pair_cases(tmp_path / "images", tmp_path / "labels"), tmp_path / "model"
    with pytest.raises(InputError) as error:
        train(tiny_training_config(), cases, out)
    assert str(error.value) == (
        f"{tmp_path / 'images' / 'p0.nii.gz'}: case 'p0' is not read yet (2 of the 2 cases given are not); give "
        "train the cases load_cases(cases, config) returns, read and in model space")
    with pytest.raises(TrainingError) as error:
        train(tiny_training_config(), [], out)
    assert str(error.value) == f"{out}: no cases given to train on"
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["images", "labels"]
