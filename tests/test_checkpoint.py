"""The checkpoint of a training run (medseg.checkpoint): saved and loaded back, what a run may do with its output
folder (overwrite, links, folders it cannot write), and a checkpoint or package that cannot be written."""

from __future__ import annotations

import json
from pathlib import Path

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
    tiny_training_config,
)

from medseg.checkpoint import check_output_folder
from medseg.errors import MedsegWarning, TrainingError
from medseg.package import load_package


def test_a_checkpoint_that_cannot_be_written_says_the_last_one_is_kept(tiny_set, tmp_path, capsys, config_file,
                                                                       monkeypatch):
    """A full disk at the second checkpoint: the first is intact, and the line now says so and how to go on."""
    import errno

    import medseg.train

    saved = medseg.train.save_checkpoint
    calls = []

    def full(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return saved(*args, **kwargs)

    monkeypatch.setattr(medseg.train, "save_checkpoint", full)
    out = tmp_path / "model"
    assert _exit_code(_train_cli(*tiny_set, out, "-c", str(config_file))) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"medseg: error: {out / '.checkpoint'}: cannot write the checkpoint (no space left on device); the checkpoint "
        "after epoch 1 is kept: run the same command with --resume once it can be written")
    monkeypatch.setattr(medseg.train, "save_checkpoint", saved)
    assert _exit_code(_train_cli(*tiny_set, out, "-c", str(config_file), "--resume")) == 0


def test_a_package_that_cannot_be_written_says_the_checkpoint_is_kept_and_resume_writes_it(tiny_set, tmp_path, capsys,
                                                                                           config_file):
    """A full disk or quota once training has ended (here a file size limit, below the checkpoint already saved
    and above nothing else): the line named the file but not the way on, which is --resume, training nothing."""
    import resource

    import medseg.train
    from medseg.io.atomic import sha256_of

    out = tmp_path / "model"
    saved = medseg.train.save_package
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)

    def limited(*args, **kwargs):
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))  # Python ignores SIGXFSZ: writes fail with EFBIG
        try:
            return saved(*args, **kwargs)
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(medseg.train, "save_package", limited)
        assert _exit_code(_train_cli(*tiny_set, out, "-c", str(config_file), "--epochs", "1", *_FEW_STEPS)) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"medseg: error: {out}: cannot write the model package ({out / 'weights.safetensors'}: cannot write (file too "
        "large)); the checkpoint after epoch 1 is kept: run the same command with --resume once it can be written (it "
        "writes the package without training again)")
    assert sorted(p.name for p in out.iterdir()) == [".checkpoint"]  # no partial package
    assert _exit_code(_train_cli(*tiny_set, out, "-c", str(config_file), "--epochs", "1", "--resume",
                                 *_FEW_STEPS)) == 0
    captured = capsys.readouterr()
    # "its checkpoint has all 1 epochs" it said
    assert f"resuming {out}: its checkpoint has the one epoch; nothing left to train, its package is written" in \
        captured.out + captured.err
    # and no line announcing the epochs' set-up, whose epoch lines never came
    assert "setting up training" not in captured.err
    assert load_package(out).config["weights"]["sha256"] == sha256_of(out / "weights.safetensors")


def test_cli_refuses_output_folders_it_should_not_write(tiny_set, tmp_path, capsys, config_file):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    assert _exit_code(_train_cli(*tiny_set, busy, "-c", str(config_file), "--overwrite")) == 1
    err = capsys.readouterr().err.strip()
    assert err == (f"medseg: error: {busy}: is not empty and holds no model package (notes.txt); give a new or "
                   "empty folder")
    assert sorted(p.name for p in busy.iterdir()) == ["notes.txt"]

    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    assert _exit_code(_train_cli(*tiny_set, blocker / "model", "-c", str(config_file))) == 2
    err = capsys.readouterr().err.strip()
    # a usage error, worded as infer, evaluate and report word it (it read "cannot create the output folder (... is
    # not a folder)", then, exit 1, "cannot make this output folder: ... is a file, not a folder")
    assert err == (f"medseg train: error: -o {blocker / 'model'}: {blocker} is a file, not a folder; give a folder for "
                   "the outputs. Try 'medseg train --help'.")
    with pytest.raises(TrainingError, match=rf"^{blocker / 'model'}: cannot make this output folder: {blocker} is a "
                                            "file, not a folder$"):  # the library's own check says it so
        check_output_folder(blocker / "model")
    loop = tmp_path / "loop"
    loop.symlink_to("loop")  # making it said "cannot write the output folder here (file exists)"
    with pytest.raises(TrainingError) as caught:
        check_output_folder(loop / "model")
    assert str(caught.value) == (f"{loop / 'model'}: cannot make this output folder: {loop} is a link to loop that "
                                 "leads nowhere (its target moved or deleted, or a loop of links)")

    # a file where the checkpoint folder goes: --overwrite, as the first refusal advised, trained a whole epoch
    # before it failed to save it
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / ".checkpoint").write_text("x")
    for extra in ([], ["--overwrite"]):
        assert _exit_code(_train_cli(*tiny_set, stray, "-c", str(config_file), *extra)) == 1
        err = capsys.readouterr().err.strip()
        assert err == (f"medseg: error: {stray / '.checkpoint'}: a file is where training keeps its checkpoint "
                       "folder; move it away")
    assert sorted(p.name for p in stray.iterdir()) == [".checkpoint"]

    fresh = tmp_path / "new" / "deeper" / "model"
    assert _exit_code(_train_cli(*tiny_set, fresh, "-c", str(config_file), "--resume")) == 1
    assert "nothing to resume" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()  # the write test leaves no folder behind


def test_resume_into_a_folder_that_does_not_exist_says_so(tiny_set, tmp_path, capsys, config_file):
    """`--resume -o FOLDER` with no such folder said "no readable .checkpoint/last.json", as if a record were
    damaged."""
    missing = tmp_path / "missing"
    assert _exit_code(_train_cli(*tiny_set, missing, "-c", str(config_file), "--resume")) == 1
    assert capsys.readouterr().err == (f"medseg: error: {missing}: no such folder; nothing to resume: run without "
                                       "--resume to start training into it\n")
    assert not missing.exists()


def test_resume_into_a_folder_without_a_checkpoint_record_says_there_is_none(tiny_set, tmp_path, capsys,
                                                                              config_file):
    """`--resume -o FOLDER` into an empty folder, or one without a checkpoint record, said "no readable
    .checkpoint/last.json", as if a record were there and damaged."""
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _exit_code(_train_cli(*tiny_set, empty, "-c", str(config_file), "--resume")) == 1
    assert capsys.readouterr().err == (f"medseg: error: {empty}: nothing to resume (no checkpoint record "
                                       ".checkpoint/last.json in it); train without --resume, or give the folder of "
                                       "an interrupted run\n")
    assert list(empty.iterdir()) == []
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "notes.txt").write_text("x")
    assert _exit_code(_train_cli(*tiny_set, notes, "-c", str(config_file), "--resume")) == 1
    assert capsys.readouterr().err == (f"medseg: error: {notes}: nothing to resume (no checkpoint record "
                                       ".checkpoint/last.json in it); train without --resume into a new or empty "
                                       "folder, or give the folder of an interrupted run\n")
    # a record that is there but cannot be read as one is still named as such
    (empty / ".checkpoint" / "last.json").mkdir(parents=True)
    assert _exit_code(_train_cli(*tiny_set, empty, "-c", str(config_file), "--resume")) == 1
    assert capsys.readouterr().err.startswith(
        f"medseg: error: {empty / '.checkpoint' / 'last.json'}: unreadable checkpoint record (")


def test_a_checkpoint_folder_that_is_a_link_is_refused_and_its_target_left_alone(tiny_set, tmp_path, capsys,
                                                                                 config_file):
    """A package from elsewhere whose .checkpoint links to another folder: `medseg train -o PKG --overwrite` wrote
    its checkpoint there, replacing that folder's last.json and removing its last.safetensors."""
    import shutil

    from medseg.package import shipped_package_path

    package = tmp_path / "package"
    shutil.copytree(shipped_package_path("phantom"), package)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for name in ("last.json", "last.safetensors", "notes.txt"):
        (elsewhere / name).write_text("mine")
    (package / ".checkpoint").symlink_to(elsewhere)
    for extra in (["--overwrite"], ["--resume"]):
        assert _exit_code(_train_cli(*tiny_set, package, "-c", str(config_file), *extra)) == 1
        err = capsys.readouterr().err.strip()
        assert err == (f"medseg: error: {package / '.checkpoint'}: a link (to {elsewhere}); training writes its "
                       "checkpoint, and removes the one it replaces, in a folder of its own, not where a link points: "
                       "remove the link")
    assert {p.name: p.read_text() for p in elsewhere.iterdir()} == {name: "mine" for name in
                                                                     ("last.json", "last.safetensors", "notes.txt")}


def test_overwrite_starts_a_new_checkpoint_and_a_moved_default_run_resumes(tiny_set, tmp_path, capsys,
                                                                          config_file, monkeypatch):
    """After --overwrite an interrupted run pointed at the replaced run's checkpoint (whose --resume was then
    refused); a run without a config, named after its folder, could not be resumed once the folder was moved."""
    import shutil

    out = tmp_path / "model"
    args = _train_cli(*tiny_set, out, "-c", str(config_file))
    assert _exit_code(args + ["--epochs", "3"]) == 0
    capsys.readouterr()
    assert _interrupted_in_second_epoch(args + ["--overwrite", "--seed", "5"], monkeypatch) == 130
    assert (f"{out}: checkpoint after epoch 1 kept; run the same command with --resume instead of --overwrite to "
            "continue; until it finishes, the package in the folder is the one written before it"
            ) in capsys.readouterr().err
    state = json.loads((out / ".checkpoint" / "last.json").read_text())
    assert state["epoch"] == 1 and state["config"]["training"]["seed"] == 5
    # the package and the unfinished run that would replace it are both named, not the package alone
    assert _exit_code(args + ["--seed", "5"]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        f"medseg: error: {out}: holds a model package and an unfinished training run that would replace it "
        "(checkpoint after epoch 1 of 2); pass --resume to finish that run or --overwrite to start again"]
    import logging

    from medseg.package import load_package

    with _caught_warnings("medseg.package") as records, pytest.warns(MedsegWarning, match="holds an unfinished"):
        assert load_package(out).config["training"]["settings"]["seed"] != 5  # still the earlier run's
    assert [r.getMessage() for r in records if r.levelno == logging.WARNING] == [
        f"{out}: holds an unfinished training run (checkpoint after epoch 1 of 2) that will replace this package "
        "when it finishes; until then the package is the one written before it"]
    # `medseg models` said the package was "not the run's final weights": it is the earlier finished run's
    capsys.readouterr()
    assert _exit_code(["models", str(out)]) == 0
    shown = capsys.readouterr().out.splitlines()
    at = shown.index("  training: an unfinished run in this folder (checkpoint after epoch 1 of 2) will replace this "
                     "package when it finishes; the figures below are this package's")
    assert "best epoch" in shown[at + 1] and "of 3)" in shown[at + 1]  # the earlier run's 3 epochs
    assert _exit_code(args + ["--seed", "5", "--resume"]) == 0
    with _caught_warnings("medseg.package") as records:
        load_package(out)
    assert records == []  # finished: its checkpoint stays beside the package without a word
    # resumed again, a finished run has nothing to train: the package is not rewritten with this session's threads
    written = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    capsys.readouterr()
    assert _exit_code(args + ["--seed", "5", "--resume", "--threads", "2"]) == 0
    told = capsys.readouterr().err.strip().splitlines()
    assert told[-1] == (
        f"{out}: the run had finished its 2 epochs and its package is intact; nothing to train, the package is kept "
        "as it was (give --epochs with more to extend it)")
    assert not any(line.startswith("setting up training") for line in told)  # no epoch's line was to come
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == written
    torch.set_num_threads(1)
    # but the data are still checked, and a package deleted or damaged since is made again from the checkpoint
    label = nib.load(tiny_set[1] / "case4.nii.gz")
    changed = tmp_path / "changed"
    shutil.copytree(tiny_set[1], changed)
    nib.save(nib.Nifti1Image(np.zeros(label.shape, np.uint8), label.affine), changed / "case4.nii.gz")
    assert _exit_code(_train_cli(tiny_set[0], changed, out, "-c", str(config_file), "--seed", "5", "--resume")) == 1
    assert "the checkpoint was trained on other data (changed: case4)" in capsys.readouterr().err
    for damage in ("weights.safetensors", "MODEL_CARD.md"):
        (out / damage).unlink()
        assert _exit_code(args + ["--seed", "5", "--resume"]) == 0
        assert capsys.readouterr().out.startswith(f"wrote {out}")
        assert (out / "weights.safetensors").read_bytes() == written["weights.safetensors"]  # the same best epoch
        assert (out / "MODEL_CARD.md").is_file()
    # a config without training.epochs resumes on the default count (it read 0 there and rewrote the package)
    config = json.loads(config_file.read_text())
    del config["training"]["epochs"]
    config["training"].update(steps_per_epoch=1, batch_size=2, val_every=50)
    (tmp_path / "no_epochs.json").write_text(json.dumps(config))
    default_count = _train_cli(*tiny_set, tmp_path / "default_count", "-c", str(tmp_path / "no_epochs.json"))
    assert _exit_code(default_count) == 0
    capsys.readouterr()
    assert _exit_code(default_count + ["--resume"]) == 0
    assert f"{tmp_path / 'default_count'}: the run had finished its 20 epochs" in capsys.readouterr().err
    assert json.loads((out / "model.json").read_text())["training"]["settings"]["seed"] == 5

    # a run without -c is named after its folder (default_config(name=output.name)); moved, its name differs from
    # the checkpoint's, as here with a config that differs only in its name
    plain = tmp_path / "plain"
    assert _interrupted_in_second_epoch(_train_cli(*tiny_set, plain, "-c", str(config_file)), monkeypatch) == 130
    shutil.move(plain, tmp_path / "renamed")
    renamed = tmp_path / "renamed.json"
    renamed.write_text(json.dumps({**json.loads(config_file.read_text()), "name": "renamed"}))
    assert _exit_code(_train_cli(*tiny_set, tmp_path / "renamed", "-c", str(renamed), "--resume")) == 0
    package = json.loads((tmp_path / "renamed" / "model.json").read_text())
    assert package["name"] == "renamed" and package["training"]["epochs_run"] == 2


def test_threads_of_every_session_are_recorded_and_bad_records_are_one_line(tiny_set, tmp_path, capsys,
                                                                           config_file, monkeypatch):
    """The record kept only the last session's thread count, though the weights depend on it; a checkpoint record
    without its fields was a KeyError traceback; a malformed --device is a usage error (exit 2)."""
    images, labels, out, args = _interrupted_copy(tiny_set, tmp_path, config_file, monkeypatch)
    args = [a for a in args if a not in ("--threads", "1")] + ["--threads", "2"]
    assert _exit_code(args + ["--resume"]) == 0
    training = json.loads((out / "model.json").read_text())["training"]
    assert training["sessions"] == [{"epochs": [1, 1], "torch_threads": 1, "device": "cpu", "precision": "fp32"},
                                    {"epochs": [2, 2], "torch_threads": 2, "device": "cpu", "precision": "fp32"}]
    assert ("Trained in 2 sessions with different threads or devices (epoch 1 on cpu with 1 torch thread; epoch 2 "
            "on cpu with 2 torch threads); the weights depend on them beyond their last bits") in \
        (out / "MODEL_CARD.md").read_text()
    torch.set_num_threads(1)

    images, labels, out, args = _interrupted_copy(tiny_set, tmp_path / "again", config_file, monkeypatch)
    record = out / ".checkpoint" / "last.json"
    record.write_text('{"epoch": 1}')
    capsys.readouterr()
    assert _exit_code(args + ["--resume"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"medseg: error: {record}: cannot resume from this checkpoint record (it lacks best_dice, "
                   "best_epoch, history, param_groups); start again with --overwrite"]
    assert _exit_code(args + ["--device", "gpu"]) == 2
    capsys.readouterr()
    record.write_text(json.dumps({"epoch": 1, "best_dice": 0.5, "best_epoch": 1, "history": [],
                                  "param_groups": None}))
    assert _exit_code(args + ["--resume"]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        f"medseg: error: {record}: cannot resume from this checkpoint record (malformed param_groups); start again "
        "with --overwrite"]
    for field, value, where in (("history", [1], "history.0"), ("history", [{}], "history.0"),
                                ("epochs_planned", 5, "epochs_planned"), ("epoch", -1, "epoch"),
                                ("epoch", 1.0, "epoch")):
        record.write_text(json.dumps({"epoch": 1, "best_dice": 0.5, "best_epoch": 1, "history": [],
                                      "param_groups": [{"lr": 0.1}], field: value}))
        assert _exit_code(args + ["--resume"]) == 1
        assert capsys.readouterr().err.strip().splitlines() == [
            f"medseg: error: {record}: cannot resume from this checkpoint record (malformed {where}); start again "
            "with --overwrite"]


def test_an_overwrite_stopped_in_its_first_epoch_leaves_the_replaced_run_as_it_was(tiny_set, tmp_path, capsys,
                                                                                    config_file, monkeypatch):
    """It deleted the replaced run's checkpoint at once, so a Ctrl-C in the first epoch lost it (the package could
    no longer be extended); now its first saved epoch replaces it."""
    import medseg.train as training
    from medseg.package import load_package

    out = tmp_path / "model"
    args = _train_cli(*tiny_set, out, "-c", str(config_file))
    assert _exit_code(args + ["--epochs", "3"]) == 0
    kept = {p.name: p.read_bytes() for p in (out / ".checkpoint").iterdir()}
    capsys.readouterr()

    def interrupted(*epoch_args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "_train_epoch", interrupted)
    assert _exit_code(args + ["--overwrite", "--seed", "5"]) == 130
    assert capsys.readouterr().err.endswith(
        f"{out}: stopped before this run's first checkpoint; the folder holds the run it was to replace, as before\n")
    assert {p.name: p.read_bytes() for p in (out / ".checkpoint").iterdir()} == kept
    assert load_package(out).config["training"]["epochs_run"] == 3


def test_the_stop_lines_of_a_run_escape_a_line_break_in_the_folder_name(tiny_set, tmp_path, capsys, config_file,
                                                                         monkeypatch):
    """"checkpoint after epoch N kept" and "stopped before this run's first checkpoint" wrote the folder name as it
    was, so a line break in it split the stop's one line in two; the other stop lines escape it."""
    import medseg.train as training

    out = tmp_path / "mo\ndel"
    args = _train_cli(*tiny_set, out, "-c", str(config_file))
    assert _interrupted_in_second_epoch(args + ["--epochs", "2"], monkeypatch) == 130
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == (f"{tmp_path}/mo\\ndel: checkpoint after epoch 1 kept; run the same command with "
                                    "--resume to continue")
    assert _exit_code(args + ["--epochs", "2", "--resume"]) == 0
    capsys.readouterr()

    def interrupted(*epoch_args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "_train_epoch", interrupted)
    assert _exit_code(args + ["--overwrite", "--seed", "5"]) == 130
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"{tmp_path}/mo\\ndel: stopped before this run's first checkpoint; the folder holds the run it was to "
        "replace, as before")


def test_the_resume_lines_of_a_run_escape_a_line_break_in_the_folder_name(tiny_set, tmp_path, capsys, config_file,
                                                                           monkeypatch):
    """"resuming <folder> from its checkpoint…" and "<folder>: the run had finished its N epochs…" wrote the folder
    name as it was, so a line break in it split the line in two."""
    out = tmp_path / "mo\ndel"
    shown = f"{tmp_path}/mo\\ndel"
    args = _train_cli(*tiny_set, out, "-c", str(config_file), "--epochs", "2")
    assert _interrupted_in_second_epoch(args, monkeypatch) == 130
    capsys.readouterr()
    assert _exit_code(args + ["--resume"]) == 0
    assert f"resuming {shown} from its checkpoint after epoch 1, on to epoch 2" in capsys.readouterr().err.splitlines()
    assert _exit_code(args + ["--resume"]) == 0
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"{shown}: the run had finished its 2 epochs and its package is intact; nothing to train, the package is kept "
        "as it was (give --epochs with more to extend it)")
    (out / "model.json").unlink()  # the package to write again from the finished checkpoint
    assert _exit_code(args + ["--resume"]) == 0
    assert (f"resuming {shown}: its checkpoint has all 2 epochs; nothing left to train, its package is written"
            in capsys.readouterr().err.splitlines())


def test_an_overwrite_run_stopped_after_its_last_epoch_but_before_its_package_is_named(tiny_set, tmp_path, capsys,
                                                                                        config_file, monkeypatch):
    """All epochs done, stopped before the package was written (a Ctrl-C during the final scoring): the folder holds
    the earlier package and a finished checkpoint. Loading it used to say nothing and training into it named only
    the package; both now name the run, and --resume writes its package."""
    import logging

    import medseg.train as training
    from medseg.package import load_package

    out = tmp_path / "model"
    args = _train_cli(*tiny_set, out, "-c", str(config_file), "--epochs", "1")
    assert _exit_code(args) == 0
    before = load_package(out).sha256

    def stopped(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "save_package", stopped)
    assert _exit_code(args + ["--overwrite", "--seed", "5"]) == 130
    monkeypatch.undo()
    capsys.readouterr()
    with _caught_warnings("medseg.package") as records, pytest.warns(MedsegWarning, match="holds an unfinished"):
        assert load_package(out).sha256 == before  # the earlier package, whole
    assert [r.getMessage() for r in records if r.levelno == logging.WARNING] == [
        f"{out}: holds an unfinished training run (its one epoch done, stopped before it wrote its package) that "
        "will replace this package when it finishes; until then the package is the one written before it"]
    assert _exit_code(args + ["--seed", "5"]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        f"medseg: error: {out}: holds a model package and an unfinished training run that would replace it (its one "
        "epoch done, stopped before it wrote its package); pass --resume to finish that run or --overwrite to start "
        "again"]
    assert _exit_code(args + ["--seed", "5", "--resume"]) == 0
    with _caught_warnings("medseg.package") as records:
        package = load_package(out)
    assert records == [] and package.sha256 != before
    assert package.config["training"]["settings"]["seed"] == 5


def test_sessions_split_where_the_precision_changed():
    """A run resumed on a machine where auto took another precision: the weights depend on it, so it is a session of
    its own (before, sessions were split by threads and device only)."""
    from medseg.train import _sessions

    history = [{"epoch": 1, "torch_threads": 2, "device": "cpu", "precision": "bf16"},
               {"epoch": 2, "torch_threads": 2, "device": "cpu", "precision": "bf16"},
               {"epoch": 3, "torch_threads": 2, "device": "cpu", "precision": "fp32"},
               {"epoch": 4, "torch_threads": 2, "device": "cpu"}]  # a checkpoint from before precision was recorded
    assert _sessions(history) == [
        {"epochs": [1, 2], "torch_threads": 2, "device": "cpu", "precision": "bf16"},
        {"epochs": [3, 3], "torch_threads": 2, "device": "cpu", "precision": "fp32"},
        {"epochs": [4, 4], "torch_threads": 2, "device": "cpu", "precision": None}]


def test_a_checkpoint_of_another_architecture_names_the_tensors_that_differ(tiny_set, tmp_path):
    """torch's first line ("Error(s) in loading state_dict for UNet2D:") said nothing about what differed."""
    from medseg.checkpoint import load_checkpoint
    from medseg.network import UNet2D, UNetConfig

    config = tiny_training_config(epochs=1)
    run(config, *tiny_set, tmp_path / "model")
    arch = {k: v for k, v in config["architecture"].items() if k != "type"}
    net = UNet2D(UNetConfig(**{**arch, "base_width": 8}))
    with pytest.raises(TrainingError, match=r"last-[0-9a-f]{16}.safetensors: cannot resume from this checkpoint: its "
                                            r"weights are another architecture's \(\d+ tensors of another shape, "
                                            r"e.g. \S+: 4x3x3x3 in the file, 8x3x3x3 in the architecture\)"):
        load_checkpoint(tmp_path / "model", net, torch.optim.Adam(net.parameters()))


def test_a_first_checkpoint_that_cannot_be_written_leaves_no_folder_and_no_stale_refusal(tiny_set, tmp_path,
                                                                                         config_file, capsys):
    """A full disk (here: a file-size limit) at the first checkpoint left an empty .checkpoint folder, and the rerun
    was refused: "holds a checkpoint whose record .checkpoint/last.json cannot be read; pass --overwrite"."""
    import resource
    import signal
    import subprocess
    import sys

    out = tmp_path / "model"

    def small_files():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    run = subprocess.run([sys.executable, "-m", "medseg", *_train_cli(*tiny_set, out, "-c", str(config_file),
                                                                       "--epochs", "1", *_FEW_STEPS)],
                         capture_output=True, text=True, preexec_fn=small_files,
                         cwd=Path(__file__).resolve().parents[1])
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1].startswith(
        f"medseg: error: {out / '.checkpoint'}: cannot write the checkpoint (")
    assert not out.exists()
    # a folder left so by an older version, or by a kill: its first checkpoint's tensors, a temporary file, no record
    (out / ".checkpoint").mkdir(parents=True)
    (out / ".checkpoint" / "last.safetensors").write_bytes(b"x" * 10)
    (out / ".checkpoint" / ".ms-0a1b2c3d.part.json").write_text("{")
    capsys.readouterr()
    assert _exit_code(_train_cli(*tiny_set, out, "-c", str(config_file), "--epochs", "1", "--resume",
                                 *_FEW_STEPS)) == 1
    assert capsys.readouterr().err.strip().endswith(
        f"{out}: nothing to resume (no checkpoint record .checkpoint/last.json in it); its first checkpoint was never "
        "completed: train without --resume")
    assert _exit_code(_train_cli(*tiny_set, out, "-c", str(config_file), "--epochs", "1", *_FEW_STEPS)) == 0
    assert sorted(p.name for p in (out / ".checkpoint").iterdir()) == [checkpoint_tensors(out).name, "last.json"]
    load_package(out)
    # beside a package, the way on is --overwrite (training without --resume is refused there)
    for name in [p.name for p in (out / ".checkpoint").iterdir()]:
        (out / ".checkpoint" / name).unlink()
    capsys.readouterr()
    assert _exit_code(_train_cli(*tiny_set, out, "-c", str(config_file), "--resume", *_FEW_STEPS)) == 1
    assert capsys.readouterr().err.strip().endswith("its first checkpoint was never completed: train again with "
                                                    "--overwrite")


def test_a_save_killed_between_its_tensors_and_its_record_resumes_from_the_last_whole_pair(tiny_set, tmp_path,
                                                                                           config_file, capsys):
    """The tensors and the record were replaced in two renames: killed between them, the new tensors sat beside the
    old record and the run was lost ("damaged checkpoint"). The record now commits a save: the tensors of a save it
    never named are left over, and the last pair resumes. A record of before (last.safetensors) still resumes."""
    out = tmp_path / "model"
    args = _train_cli(*tiny_set, out, "-c", str(config_file), *_FEW_STEPS)
    assert _exit_code([*args, "--epochs", "1"]) == 0
    tensors = checkpoint_tensors(out)
    record = json.loads((out / ".checkpoint" / "last.json").read_text())
    # as an earlier version wrote it
    tensors.rename(out / ".checkpoint" / "last.safetensors")
    del record["weights_file"]
    (out / ".checkpoint" / "last.json").write_text(json.dumps(record))
    # and a next save killed after its tensors were placed
    (out / ".checkpoint" / "last-0123456789abcdef.safetensors").write_bytes(b"the next epoch's, never recorded")
    capsys.readouterr()
    assert _exit_code([*args, "--epochs", "2", "--resume"]) == 0
    err = capsys.readouterr().err
    assert "epoch   2 " in err and "epoch   1 " not in err  # resumed after epoch 1
    assert sorted(p.name for p in (out / ".checkpoint").iterdir()) == [checkpoint_tensors(out).name, "last.json"]
    assert load_package(out).config["training"]["epochs_run"] == 2


def test_a_packages_model_json_or_a_malformed_checkpoint_record_is_named_as_such(tiny_set, tmp_path, capsys,
                                                                                 config_file):
    """`-c <package>/model.json` listed twenty "unknown settings" (its training record); a checkpoint record that
    parses but holds {"epoch": "x"} was "nothing to resume (no readable .checkpoint/last.json)"."""
    from medseg.package import load_package

    model_json = load_package("phantom", check_hash=False).path / "model.json"
    assert _exit_code(_train_cli(*tiny_set, tmp_path / "a", "-c", str(model_json))) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"medseg: error: {model_json}: a model package's model.json (it names its weights and records its training), "
        "not a training config; start from one in configs/train/ of medseg's source tree (a wheel install has none); "
        "the package's settings are under training.settings")
    out = tmp_path / "b"
    (out / ".checkpoint").mkdir(parents=True)
    (out / ".checkpoint" / "last.json").write_text('{"epoch": "x"}')
    assert _exit_code(_train_cli(*tiny_set, out, "-c", str(config_file), "--resume")) == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"medseg: error: {out / '.checkpoint' / 'last.json'}: cannot resume from this checkpoint record (it lacks "
        "best_dice, best_epoch, history, param_groups); start again with --overwrite")


def test_a_checkpoint_record_that_cannot_be_written_leaves_no_tensors_behind(tiny_set, tmp_path, config_file,
                                                                             monkeypatch):
    """The tensors are placed first, then the record that names them: a full disk at the record left a
    checkpoint-sized file no record names (and, at the first checkpoint, the folder the README says goes)."""
    import errno

    import medseg.checkpoint

    real = medseg.checkpoint.atomic_paths

    def no_room_for_the_record(targets, *args, **kwargs):
        if any(Path(t).name == "last.json" for t in targets):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(targets, *args, **kwargs)

    monkeypatch.setattr(medseg.checkpoint, "atomic_paths", no_room_for_the_record)
    out = tmp_path / "model"
    assert _exit_code(_train_cli(*tiny_set, out, "-c", str(config_file), "--epochs", "1", *_FEW_STEPS)) == 1
    assert not out.exists()


def test_a_checkpoint_folder_that_cannot_be_written_is_refused_before_training(tiny_set, tmp_path, capsys,
                                                                               config_file, monkeypatch):
    """An immutable .checkpoint folder was found only after an epoch had been trained."""
    import errno
    import tempfile

    out = tmp_path / "model"
    assert _exit_code(_train_cli(*tiny_set, out, "-c", str(config_file), "--epochs", "1")) == 0
    made = tempfile.mkstemp

    def refused(*args, dir=None, **kwargs):
        if dir is not None and Path(dir).name == ".checkpoint":
            raise PermissionError(errno.EPERM, "Operation not permitted", str(Path(dir) / ".medseg-write-test-x"))
        return made(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkstemp", refused)
    capsys.readouterr()
    assert _exit_code(_train_cli(*tiny_set, out, "-c", str(config_file), "--epochs", "2", "--resume")) == 1
    err = capsys.readouterr().err
    assert err.strip() == (f"medseg: error: {out / '.checkpoint'}: cannot write into the checkpoint folder (operation "
                           "not permitted)")
    assert "epoch   2" not in err


def test_a_package_without_a_checkpoint_is_not_offered_to_resume(make_package):
    """A package copied in (a shipped one, a colleague's) or whose checkpoint was deleted: training into it said
    'pass --overwrite or --resume', and --resume then said there was nothing to resume."""
    from medseg.errors import OutputExistsError
    from medseg.settings_named import named_as

    package = make_package()
    with named_as({"overwrite": "--overwrite", "resume": "--resume"}), pytest.raises(OutputExistsError) as refused:
        check_output_folder(package)
    assert str(refused.value) == (f"{package}: holds a model package already, and no checkpoint of its training to "
                                  "resume; pass --overwrite to replace it")
