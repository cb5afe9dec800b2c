"""Resuming a training run from its checkpoint (medseg.train_resume): it continues exactly, the checks that it goes on
with the same data, validation cases and settings, and the hints on how to resume."""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil

import nibabel as nib
import numpy as np
import pytest
import torch
from training_factory import (
    _FEW_STEPS,
    _caught_warnings,
    _exit_code,
    _interrupted_copy,
    _interrupted_in_second_epoch,
    _train_cli,
    checkpoint_tensors,
    run,
    run_stopped_after_first_epoch,
    tiny_training_config,
    weights,
)

from medseg.errors import TrainingError
from medseg.package import load_package
from medseg.train import train
from medseg.training_cases import load_cases, pair_cases


# the resumed run warns that no validation case holds a foreground label: the case this test sets up, not its check
@pytest.mark.filterwarnings("ignore:no validation case holds a foreground label:medseg.errors.MedsegWarning")
def test_a_checkpoint_that_chose_a_best_epoch_without_foreground_ships_the_last_when_resumed(tiny_set, tmp_path,
                                                                                            monkeypatch):
    """A run started before validation without foreground chose no epoch kept its 'best' one when resumed, and
    shipped it labelled as the last."""
    import medseg.train as training
    from medseg.package import load_package

    torch.set_num_threads(1)
    config = tiny_training_config(epochs=2, steps_per_epoch=2)
    cases = load_cases(pair_cases(*tiny_set), config)
    for case in cases[:2]:
        case.label = torch.zeros_like(case.label)
    real = training.check_label_presence
    monkeypatch.setattr(training, "check_label_presence", lambda *args: ([], []))  # as before: every epoch a candidate
    train(copy.deepcopy(config), cases[2:], tmp_path / "model", val_cases=cases[:2])
    monkeypatch.setattr(training, "check_label_presence", real)
    longer = copy.deepcopy(config)
    longer["training"]["epochs"] = 4
    train(longer, cases[2:], tmp_path / "model", val_cases=cases[:2], resume=True)
    shipped = load_package(tmp_path / "model")
    assert shipped.config["training"]["best_epoch"] == 4
    from safetensors.torch import load_file

    saved = load_file(str(checkpoint_tensors(tmp_path / "model")))
    weights = shipped.build_network().state_dict()
    assert all(torch.equal(weights[k].cpu(), saved[f"model.{k}"]) for k in weights)  # the last epoch's own


def test_resume_refuses_another_validation_split(tiny_set, tmp_path):
    run(tiny_training_config(epochs=1), *tiny_set, tmp_path / "model")
    with pytest.raises(TrainingError, match=r"checkpoint was validated on other cases \(a seeded 0.34 split, split "
                                            r"seed 0 then, a seeded 0.34 split, split seed 0, fold 1 now\)"):
        run(tiny_training_config(epochs=2, fold=1), *tiny_set, tmp_path / "model", resume=True)
    with pytest.raises(TrainingError, match="training config: training.fold: 1.5 is not of type 'integer'"):
        run(tiny_training_config(fold=1.5), *tiny_set, tmp_path / "other")
    assert not (tmp_path / "other").exists()
    package = run(tiny_training_config(epochs=2), *tiny_set, tmp_path / "model", resume=True)  # same split: fine
    assert package.config["training"]["epochs_run"] == 2


@pytest.mark.parametrize("extra", [{}, {"ema_decay": 0.9}], ids=["plain", "ema"])
def test_resume_continues_exactly(tiny_set, tmp_path, extra):
    config = tiny_training_config(**extra)
    run(config, *tiny_set, tmp_path / "whole")
    run_stopped_after_first_epoch(config, *tiny_set, tmp_path / "resumed")
    assert not (tmp_path / "resumed" / "weights.safetensors").exists()
    assert (tmp_path / "resumed" / ".checkpoint" / "last.json").is_file()
    run(config, *tiny_set, tmp_path / "resumed", resume=True)

    whole, resumed = weights(tmp_path / "whole"), weights(tmp_path / "resumed")
    assert all(torch.equal(whole[k], resumed[k]) for k in whole)
    history = [json.loads((tmp_path / d / ".checkpoint" / "last.json").read_text())["history"]
               for d in ("whole", "resumed")]
    assert [h["loss"] for h in history[0]] == [h["loss"] for h in history[1]]


def test_a_package_half_replaced_by_a_killed_run_says_to_resume(tiny_set, tmp_path, capsys, config_file,
                                                               monkeypatch):
    """An --overwrite run killed outright (no signal to hold) between placing its weights and its model.json leaves
    new weights under the old config: loading it said only "the file is corrupt or was replaced", after a warning
    that the package was the one written before; it names the run that --resume finishes."""
    from medseg.errors import ModelPackageError
    from medseg.io import atomic

    out = tmp_path / "model"
    args = _train_cli(*tiny_set, out, "-c", str(config_file), *_FEW_STEPS)
    assert _exit_code(args) == 0
    real = atomic._put_in_place

    def killed_after_weights(temps, targets, retire):
        if any(target.name == "model.json" for target in targets):
            os.replace(temps[0], targets[0])  # the weights, then the process is gone: nothing undone
            raise KeyboardInterrupt
        real(temps, targets, retire)

    monkeypatch.setattr(atomic, "_put_in_place", killed_after_weights)
    assert _exit_code(args + ["--overwrite", "--seed", "1"]) == 130
    monkeypatch.setattr(atomic, "_put_in_place", real)
    capsys.readouterr()
    with pytest.raises(ModelPackageError) as info:
        load_package(out)
    assert "does not match" in str(info.value)
    assert str(info.value).endswith(f"{out} holds a training run (all 2 epochs done, stopped before it wrote its "
                                    "package) that may have been stopped while it replaced this package: "
                                    "medseg.train.train with the same arguments and resume=True writes the package "
                                    "whole")
    assert _exit_code(args + ["--seed", "1", "--resume"]) == 0
    assert load_package(out).config["training"]["settings"]["seed"] == 1


def test_cli_interrupted_run_says_how_to_resume_and_refuses_changed_settings(tiny_set, tmp_path, capsys,
                                                                             config_file, monkeypatch):
    out = tmp_path / "model"
    args = _train_cli(*tiny_set, out, "-c", str(config_file))
    assert _interrupted_in_second_epoch(args, monkeypatch) == 130
    err = capsys.readouterr().err
    assert err.endswith(f"{out}: checkpoint after epoch 1 kept; run the same command with --resume to continue\n")
    assert not (out / "model.json").exists()

    assert _exit_code(args) == 1  # a plain rerun would start over silently: it is told about the checkpoint
    assert (f"{out}: holds an unfinished training run (checkpoint after epoch 1); pass --resume to continue it or "
            "--overwrite to start again") in capsys.readouterr().err

    for change, named in ((lambda c: c["architecture"].update(base_width=8), "architecture.base_width"),
                          (lambda c: c["training"].update(learning_rate=0.5), "training.learning_rate")):
        config = tiny_training_config()
        change(config)
        other = tmp_path / "other.json"
        other.write_text(json.dumps(config))
        assert _exit_code(_train_cli(*tiny_set, out, "-c", str(other), "--resume")) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"the checkpoint was started with other settings ({named})" in err[0]
    assert _exit_code(_train_cli(*tiny_set, out, "-c", str(config_file), "--resume", "--seed", "9")) == 1
    assert "other settings (training.seed)" in capsys.readouterr().err

    # the default patch (the tile) given explicitly is the same setting, also for a checkpoint from before the size
    # was written out (null in its record); the package records the size used
    record = out / ".checkpoint" / "last.json"
    state = json.loads(record.read_text())
    assert state["config"]["training"]["patch_size"] == state["config"]["inference"]["roi_size"]
    state["config"]["training"]["patch_size"] = None
    record.write_text(json.dumps(state))
    explicit = tiny_training_config(patch_size=tiny_training_config()["inference"]["roi_size"])
    (tmp_path / "explicit.json").write_text(json.dumps(explicit))
    assert _exit_code(_train_cli(*tiny_set, out, "-c", str(tmp_path / "explicit.json"), "--resume")) == 0
    training = json.loads((out / "model.json").read_text())["training"]
    assert training["epochs_run"] == 2 and training["settings"]["patch_size"] == explicit["inference"]["roi_size"]


def test_resume_beside_a_stray_file_an_unreadable_record_and_epoch_counts(tiny_set, tmp_path, capsys,
                                                                         monkeypatch):
    """An interrupted run resumes with the user's notes in its folder; an unreadable checkpoint record is never
    silently replaced; fewer epochs than the checkpoint has are refused; an epoch that was not validated is
    validated before it ships."""

    config = tiny_training_config(epochs=3, val_every=2)
    path = tmp_path / "ve2.json"
    path.write_text(json.dumps(config))
    out = tmp_path / "model"
    args = _train_cli(*tiny_set, out, "-c", str(path))
    assert _interrupted_in_second_epoch(args, monkeypatch) == 130
    (out / "notes.txt").write_text("mine")
    record = out / ".checkpoint" / "last.json"
    kept = record.read_text()
    record.write_text("{")
    capsys.readouterr()
    assert _exit_code(args + ["--epochs", "1"]) == 1
    assert capsys.readouterr().err.strip() == (f"medseg: error: {out}: holds a checkpoint whose record "
                                               ".checkpoint/last.json cannot be read; pass --overwrite to start again")
    assert record.read_text() == "{"
    record.write_text(kept)

    capsys.readouterr()
    assert _exit_code(args + ["--resume", "--epochs", "1"]) == 0  # epoch 1 (val_every 2) was not validated
    shown = [line for line in capsys.readouterr().err.splitlines() if line.startswith("epoch")]
    assert len(shown) == 1 and shown[0].startswith("epoch   1") and "val mean Dice" in shown[0]  # on screen too
    package = json.loads((out / "model.json").read_text())["training"]
    assert package["epochs_run"] == 1 and package["best_epoch"] == 1
    assert set(package["val_dice"]) == {"1", "2", "3"} and package["val_mean_dice"] is not None
    assert (out / "notes.txt").read_text() == "mine"
    capsys.readouterr()
    # the config's 3 epochs against the plan of 1: not changed unasked (the learning rate schedule would change)
    assert _exit_code(args + ["--resume"]) == 1
    assert capsys.readouterr().err.strip() == (
        f"medseg: error: {out}: the checkpoint's run was planned for 1 epoch, and {path} asks for 3; give --epochs 1 "
        "to finish it as planned, or --epochs 3 to extend it")
    assert _exit_code(args + ["--resume", "--epochs", "3"]) == 0  # on to the config's 3 epochs
    assert json.loads((out / "model.json").read_text())["training"]["epochs_run"] == 3
    capsys.readouterr()
    assert _exit_code(args + ["--resume", "--epochs", "2"]) == 1
    assert capsys.readouterr().err.strip() == (
        f"medseg: error: {out}: the checkpoint has 3 finished epochs, more than the 2 asked for (--epochs / "
        "training.epochs); ask for at least as many")


def test_resume_hints_name_every_option_the_refused_command_needs(tiny_set, tmp_path, capsys, monkeypatch):
    """A run planned for 4 epochs and stopped after epoch 2, resumed with a config of 3 epochs and other steps per
    epoch: the hint named only --steps-per-epoch, and the command it gave was then refused for its epoch count; one
    for fewer epochs than the plan said "extend it"; one for fewer than were done did not name the plan."""
    config = tiny_training_config(epochs=4)
    path = tmp_path / "plan4.json"
    path.write_text(json.dumps(config))
    out = tmp_path / "model"
    assert _interrupted_in_second_epoch(_train_cli(*tiny_set, out, "-c", str(path)), monkeypatch, epoch=3) == 130
    steps = config["training"]["steps_per_epoch"]
    other = tmp_path / "other.json"
    other.write_text(json.dumps(tiny_training_config(epochs=3, steps_per_epoch=steps + 1)))
    args = _train_cli(*tiny_set, out, "-c", str(other), "--resume")
    capsys.readouterr()
    assert _exit_code(args) == 1
    assert capsys.readouterr().err.strip() == (
        f"medseg: error: {out}: the checkpoint was started with other settings (training.steps_per_epoch); resume "
        f"with the config it was started with (give --steps-per-epoch {steps} --epochs 4 as it was) (only the epoch "
        "count may change), or start again with --overwrite")
    assert _exit_code(args + ["--epochs", "3"]) == 1  # the epoch count asked for: not overridden by the hint
    assert f"(give --steps-per-epoch {steps} as it was)" in capsys.readouterr().err
    assert _exit_code(args + ["--steps-per-epoch", str(steps)]) == 1
    assert capsys.readouterr().err.strip() == (
        f"medseg: error: {out}: the checkpoint's run was planned for 4 epochs, and {other} asks for 3; give --epochs 4 "
        "to finish it as planned, or --epochs 3 to end it sooner")
    assert _exit_code(args + ["--steps-per-epoch", str(steps), "--epochs", "1"]) == 1
    assert capsys.readouterr().err.strip() == (
        f"medseg: error: {out}: the checkpoint has 2 finished epochs of the 4 planned, more than the 1 asked for "
        "(--epochs / training.epochs); give --epochs 4 to finish it as planned, or at least 2")
    # a first run stopped: the folder is named as one, not only as "not a model package (no model.json)"
    from medseg.errors import ModelPackageError
    from medseg.package import load_package

    with pytest.raises(ModelPackageError) as refused:
        load_package(out)
    assert str(refused.value) == (f"{out}: not a model package yet: it holds an unfinished training run (checkpoint "
                                  "after epoch 2 of 4); medseg.train.train with the same arguments and resume=True "
                                  "finishes it")
    capsys.readouterr()
    assert _exit_code(args + ["--steps-per-epoch", str(steps), "--epochs", "4"]) == 0  # what the hints said
    assert json.loads((out / "model.json").read_text())["training"]["epochs_run"] == 4
    # and the resumed run says so (the epoch numbers going on were the only sign)
    assert f"resuming {out} from its checkpoint after epoch 2, on to epoch 4" in capsys.readouterr().err.splitlines()


@pytest.mark.parametrize("oom", ["CUDA out of memory. Tried to allocate 2.00 MiB", "MPS backend out of memory"],
                         ids=["cuda", "mps"])
def test_out_of_gpu_memory_resuming_keeps_the_checkpoint_and_says_so(tiny_set, tmp_path, monkeypatch, oom):
    """The optimizer's moments placed on a full GPU at --resume: that was "cannot resume from this checkpoint's
    optimizer state (CUDA out of memory ...); start again with --overwrite", advice that throws the run away. The
    checkpoint is intact: the line says so, and the run resumes from it once there is room."""
    from medseg.checkpoint import checkpoint_epoch

    config = tiny_training_config(epochs=2)
    out = tmp_path / "model"
    run_stopped_after_first_epoch(config, *tiny_set, out)
    real = torch.optim.AdamW.load_state_dict

    def full_gpu(self, state):  # Apple MPS raises a plain RuntimeError, which was "start again with --overwrite"
        raise torch.OutOfMemoryError(oom) if oom.startswith("CUDA") else RuntimeError(oom)

    monkeypatch.setattr(torch.optim.AdamW, "load_state_dict", full_gpu)
    with pytest.raises(TrainingError) as error:
        run(config, *tiny_set, out, resume=True)
    assert str(error.value) == (
        f"{out}: out of GPU memory on cpu placing the checkpoint's weights and optimizer state on it; free GPU "
        "memory (other processes may hold it), or train on the CPU (device='cpu'); the checkpoint is kept: run the "
        "same call with resume=True once there is room")
    assert checkpoint_epoch(out) == 1
    monkeypatch.setattr(torch.optim.AdamW, "load_state_dict", real)
    package = run(config, *tiny_set, out, resume=True)
    assert package.config["training"]["epochs_run"] == 2


def test_a_checkpoint_without_its_settings_is_refused_on_resuming(tiny_set, tmp_path, capsys, config_file,
                                                                  monkeypatch):
    """A checkpoint of an earlier medseg that did not record its run's settings (nor its split and data) was resumed
    with any settings, seed or cases, and the package recorded this run's settings for epochs trained otherwise."""
    images, labels, out, args = _interrupted_copy(tiny_set, tmp_path, config_file, monkeypatch)
    record = out / ".checkpoint" / "last.json"
    state = json.loads(record.read_text())
    for key in ("config", "val_cases", "data_sha256", "epochs_planned"):  # as medseg wrote it before 2026-11-25
        state.pop(key)
    record.write_text(json.dumps(state))
    before = sorted(p.name for p in out.rglob("*"))
    capsys.readouterr()
    assert _exit_code(args + ["--resume", "--seed", "7"]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        f"medseg: error: {record}: the checkpoint does not record the settings its run was started with (written by "
        "an earlier medseg), so resuming cannot check that this run continues it; start again with --overwrite"]
    assert sorted(p.name for p in out.rglob("*")) == before and not (out / "model.json").exists()
    # nor is --resume offered for it: the folder's refusal says what can be done
    assert _exit_code(args) == 1
    err = capsys.readouterr().err
    assert "pass --overwrite to start again (its checkpoint, written by an earlier medseg, does not record the " \
           "settings its run was started with, so it cannot be resumed)" in err and "--resume" not in err, err


def test_resuming_checks_the_data_and_the_checkpoint_file(tiny_set, tmp_path, capsys, config_file, monkeypatch):
    """A corrupt checkpoint is one line; a checkpoint trained on other files is refused, naming the cases; --resume
    with --overwrite is a usage error; extending a finished run is recorded in model.json and the card."""
    images, labels, out, args = _interrupted_copy(tiny_set, tmp_path, config_file, monkeypatch)
    checkpoint = checkpoint_tensors(out)
    kept = checkpoint.read_bytes()
    checkpoint.write_bytes(b"junk")
    capsys.readouterr()
    assert _exit_code(args + ["--resume"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    # told before the cases are read and the run announced
    assert err == [f"medseg: error: {checkpoint}: damaged checkpoint (its SHA-256 is not the one last.json records); "
                   "start again with --overwrite"]
    record = out / ".checkpoint" / "last.json"
    with_digest = record.read_text()
    record.write_text(json.dumps({k: v for k, v in json.loads(with_digest).items() if k != "weights_sha256"}))
    assert _exit_code(args + ["--resume"]) == 1  # without a recorded digest: found when the file is read
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"medseg: error: {checkpoint}: cannot resume from this checkpoint (") and \
        err[-1].endswith("); start again with --overwrite") and not any("Traceback" in line for line in err)
    record.write_text(with_digest)
    # damaged where the file still parses (a bad sector, a faulty copy): it resumed on the damaged weights and
    # shipped them (NaN weights, a package whose hash vouched for them, an all-background segmentation)
    import struct

    size = struct.unpack("<Q", kept[:8])[0]
    start, end = json.loads(kept[8:8 + size])["model.up.0.weight"]["data_offsets"]
    damaged = bytearray(kept)
    damaged[8 + size + start: 8 + size + end] = b"\xff" * (end - start)  # NaN in float32
    checkpoint.write_bytes(bytes(damaged))
    assert _exit_code(args + ["--resume"]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"medseg: error: {checkpoint}: damaged checkpoint (its SHA-256 is not the one last.json records); start "
        "again with --overwrite")
    record = out / ".checkpoint" / "last.json"
    kept_record = record.read_text()
    record.write_text(json.dumps({k: v for k, v in json.loads(kept_record).items() if k != "weights_sha256"}))
    assert _exit_code(args + ["--resume"]) == 1  # a checkpoint from before the hash was recorded: NaN is found
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"medseg: error: {checkpoint}: damaged checkpoint (model.up.0.weight holds NaN or infinite values); start "
        "again with --overwrite")
    assert not (out / "model.json").exists()
    record.write_text(kept_record)
    checkpoint.write_bytes(kept)
    label = nib.load(labels / "case4.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros(label.shape, np.uint8), label.affine), labels / "case4.nii.gz")
    assert _exit_code(args + ["--resume"]) == 1
    # the error alone: it came after the run's first line ("training on 4 cases, …"), as if training had begun
    assert capsys.readouterr().err.strip().splitlines() == [
        f"medseg: error: {out}: the checkpoint was trained on other data (changed: case4); resume with the files it "
        "was started with, or start again with --overwrite"]
    (labels / "case4.nii.gz").write_bytes((tiny_set[1] / "case4.nii.gz").read_bytes())
    # a case added or taken away is named as such; it was blamed on the split settings, since it moves the split
    import shutil

    for folder in (images, labels):
        shutil.copy(folder / "case4.nii.gz", folder / "case9.nii.gz")
    assert _exit_code(args + ["--resume"]) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"medseg: error: {out}: the checkpoint was trained on other data (added: case9); resume with the files it "
        "was started with, or start again with --overwrite")
    for folder in (images, labels):
        (folder / "case9.nii.gz").unlink()
    aside = tmp_path / "aside"
    aside.mkdir()
    for folder, name in ((images, "i.nii.gz"), (labels, "l.nii.gz")):
        shutil.move(folder / "case0.nii.gz", aside / name)
    assert _exit_code(args + ["--resume"]) == 1
    assert "the checkpoint was trained on other data (removed: case0)" in capsys.readouterr().err
    for folder, name in ((images, "i.nii.gz"), (labels, "l.nii.gz")):
        shutil.move(aside / name, folder / "case0.nii.gz")
    assert _exit_code(args + ["--resume", "--overwrite"]) == 2
    assert "--resume continues the checkpoint and --overwrite starts again: choose one" in capsys.readouterr().err
    assert _exit_code(args + ["--resume"]) == 0
    assert json.loads((out / "model.json").read_text())["training"]["epochs_planned"] == [2]
    assert _exit_code(args + ["--resume", "--epochs", "3"]) == 0
    training = json.loads((out / "model.json").read_text())["training"]
    assert training["epochs_planned"] == [2, 3] and training["epochs_run"] == 3
    assert "Resumed with another epoch count (planned 2, then 3)" in (out / "MODEL_CARD.md").read_text()


def test_a_checkpoint_from_before_data_fingerprints_gets_one_on_resuming(tiny_set, tmp_path, capsys, config_file,
                                                                         monkeypatch):
    images, labels, out, args = _interrupted_copy(tiny_set, tmp_path, config_file, monkeypatch)
    record = out / ".checkpoint" / "last.json"
    state = json.loads(record.read_text())
    for key in ("data_sha256", "epochs_planned"):  # as an older medseg wrote it
        state.pop(key)
    record.write_text(json.dumps(state))
    assert _exit_code(args + ["--resume", "--epochs", "3"]) == 0
    training = json.loads((out / "model.json").read_text())["training"]
    assert training["epochs_planned"] == [None, 3]
    assert "Resumed from a checkpoint that did not record how many epochs it planned (then 3)" in \
        (out / "MODEL_CARD.md").read_text()
    label = nib.load(labels / "case4.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros(label.shape, np.uint8), label.affine), labels / "case4.nii.gz")
    capsys.readouterr()
    assert _exit_code(args + ["--resume", "--epochs", "4"]) == 1
    assert "the checkpoint was trained on other data (changed: case4)" in capsys.readouterr().err


def test_a_stopped_run_finished_at_the_epoch_it_reached_is_finished(tiny_set, tmp_path, capsys, config_file,
                                                                    monkeypatch):
    """`--resume --epochs 1` of a run planned for 4 and stopped after epoch 1 wrote the package, but the checkpoint
    kept its plan of 4: every load then warned of an unfinished run that would replace the package. A package made
    again without training recorded that session's threads as the training's."""
    from medseg.package import load_package

    out = tmp_path / "model"
    args = _train_cli(*tiny_set, out, "-c", str(config_file))
    assert _interrupted_in_second_epoch(args + ["--epochs", "4"], monkeypatch) == 130
    capsys.readouterr()
    assert _exit_code(args + ["--resume", "--epochs", "1"]) == 0
    assert json.loads((out / ".checkpoint" / "last.json").read_text())["epochs_planned"] == [4, 1]
    with _caught_warnings("medseg.package") as records:
        load_package(out)
    assert records == []
    (out / "weights.safetensors").unlink()
    assert _exit_code(args + ["--resume", "--epochs", "1", "--threads", "2"]) == 0
    training = json.loads((out / "model.json").read_text())["training"]
    assert training["torch_threads"] == 1 and training["sessions"][-1]["torch_threads"] == 1
    torch.set_num_threads(1)


def test_a_run_started_with_a_config_and_resumed_without_one_is_told_to_give_it(tiny_set, tmp_path, capsys,
                                                                                config_file):
    """Its labels are the config's, not the files': a difference was blamed on the label files."""
    out = tmp_path / "model"
    assert _exit_code(_train_cli(*tiny_set, out, "-c", str(config_file), "--epochs", "1")) == 0
    labels = tmp_path / "labels"
    shutil.copytree(tiny_set[1], labels)
    for case in labels.iterdir():
        label = nib.load(case)
        nib.save(nib.Nifti1Image(np.minimum(np.asarray(label.dataobj), 2), label.affine), case)
    capsys.readouterr()
    assert _exit_code(_train_cli(tiny_set[0], labels, out, "--epochs", "2", "--resume")) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"medseg: error: {out}: the checkpoint was started with a config of its own or a dataset.json (labels 1 "
        "ellipsoid, 2 box, 3 tube); resume with -c and that config, or with that dataset.json beside the images and "
        "labels folders")
    # a Python caller's train always takes a config: it was told to "resume with config=... and that config"
    from medseg.checkpoint import check_checkpoint_labels
    from medseg.errors import TrainingError

    with pytest.raises(TrainingError) as refused:
        check_checkpoint_labels(out, {1: labels / "a.nii.gz", 2: labels / "a.nii.gz"})
    assert str(refused.value) == (
        f"{out}: the checkpoint was started with a config of its own or a dataset.json (labels 1 ellipsoid, 2 box, 3 "
        "tube); resume with that config (train's config argument), or with that dataset.json beside the images and "
        "labels folders")


def test_resuming_a_run_stopped_after_its_last_epoch_says_so(tiny_set, tmp_path, capsys, config_file, monkeypatch):
    """Killed between its last checkpoint and its package: --resume wrote the package without a line before it."""
    import medseg.train as training

    out = tmp_path / "model"
    args = _train_cli(*tiny_set, out, "-c", str(config_file))

    def stopped(*_args, **_kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patched:
        patched.setattr(training, "save_package", stopped)
        assert _exit_code(args) == 130
    capsys.readouterr()
    assert _exit_code(args + ["--resume"]) == 0
    captured = capsys.readouterr()
    assert f"resuming {out}: its checkpoint has all 2 epochs; nothing left to train, its package is written" in \
        captured.err
    assert captured.out.startswith(f"wrote {out} (best epoch ")


def test_a_finished_package_unreadable_by_the_os_names_the_file_once_with_the_reason(tmp_path, monkeypatch,
                                                                                      caplog):
    """The warning that a finished run's package cannot be read names the failing file once and gives the OS's
    reason in lower case, as every other message does, not Python's "[Errno 13] Permission denied: '/path'"."""
    import medseg.train_resume as resume

    (tmp_path / "MODEL_CARD.md").write_text("# card\n")
    config = tmp_path / "model.json"
    monkeypatch.setattr(resume, "checkpoint_epoch", lambda out_dir: 2)
    monkeypatch.setattr(resume, "unfinished_training", lambda out_dir: False)
    monkeypatch.setattr(resume, "read_checkpoint_json", lambda path: {})

    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(config))

    monkeypatch.setattr(resume, "load_package", refused)
    with caplog.at_level(logging.WARNING, logger="medseg"):
        assert resume.finished_package(tmp_path, 2) is None
    assert caplog.messages == [f"{tmp_path}: the finished run's package cannot be read ({config}: permission denied);"
                               " it is made again from the checkpoint"]


def test_a_run_resumed_under_another_medseg_records_which_medseg_trained_which_epochs(tiny_set, tmp_path,
                                                                                        monkeypatch):
    """The training record named only the medseg that wrote the package: a run begun under one medseg and resumed
    after an upgrade (or a package written again by --resume after it was deleted, without training) claimed every
    epoch, and the best epoch's validation figures, for the medseg that finished it. The epochs each medseg trained
    are recorded where more than one did, and the card says so; a run of one medseg records nothing more."""
    import medseg
    from medseg import train as train_module
    from medseg.checkout import commit_text
    from medseg.model_card import model_card

    config = tiny_training_config(epochs=2)
    now = train_module._medseg_version()
    with monkeypatch.context() as patched:
        patched.setattr(medseg, "__version__", "0.0.1")
        patched.setattr("medseg.checkout.source_commit", lambda: None)
        run_stopped_after_first_epoch(config, *tiny_set, tmp_path / "model")
    training = run(config, *tiny_set, tmp_path / "model", resume=True).config["training"]
    assert {key: training.get(key) for key in ("medseg", "medseg_commit")} == {
        "medseg": now["medseg"], "medseg_commit": now.get("medseg_commit")}
    assert training["medseg_sessions"] == [{"epochs": [1, 1], "medseg": "0.0.1", "medseg_commit": None},
                                           {"epochs": [2, 2], "medseg": now["medseg"],
                                            "medseg_commit": now.get("medseg_commit")}]
    card = " ".join(model_card(load_package(tmp_path / "model").config).split())
    commit = now.get("medseg_commit")
    made_by = f"medseg {now['medseg']}" + (f" at commit {commit_text(commit)}" if commit else "")
    assert (f"torch {training['torch']}, MONAI {training['monai']}, numpy {training['numpy']}, {made_by}; epoch 1 by "
            f"medseg 0.0.1, epoch 2 by {made_by}).") in card
    assert "medseg_sessions" not in run(config, *tiny_set, tmp_path / "whole").config["training"]
