"""The package a resumed training run writes or keeps (medseg.train_resume): the label codes, names and notes it
carries, and a finished run's package kept where it is intact or made again where it was edited."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest
import torch
from training_factory import (
    _FEW_STEPS,
    _exit_code,
    _interrupted_in_second_epoch,
    _train_cli,
    run,
    run_stopped_after_first_epoch,
    tiny_training_config,
    weights,
)

from medseg.errors import MedsegWarning
from medseg.package import load_package


def test_label_codes_given_on_resume_go_into_the_package(tiny_set, tmp_path):
    """DICOM SEG codes do not change training: a run resumed with codes added is the same run, and its package
    carries them (and its card names them)."""
    config = tiny_training_config(epochs=2)
    run_stopped_after_first_epoch(config, *tiny_set, tmp_path / "model")
    tube = {"scheme": "SCT", "value": "260787004", "meaning": "Physical object"}
    coded = {**config, "label_codes": {"3": {"category": tube, "type": tube}}}
    package = run(coded, *tiny_set, tmp_path / "model", resume=True)
    assert package.config["training"]["epochs_run"] == 2
    assert package.label_codes == {3: {"category": tube, "type": tube}}
    assert "- DICOM SEG codes: 3 Physical object (SCT 260787004), category Physical object (SCT 260787004)\n" in (
        tmp_path / "model" / "MODEL_CARD.md").read_text()


def test_label_codes_reach_a_finished_package_and_survive_an_extension(tiny_set, tmp_path, capsys):
    """Codes added to the config of a finished run were ignored ("kept as it was"), and codes added by hand to a
    package (a run without -c has no other way) were dropped when the run was extended."""
    out = tmp_path / "model"
    config = tiny_training_config(epochs=1)
    plain, coded = tmp_path / "plain.json", tmp_path / "coded.json"
    plain.write_text(json.dumps(config))
    tube = {"scheme": "SCT", "value": "260787004", "meaning": "Physical object"}
    codes = {"3": {"category": tube, "type": tube}}
    coded.write_text(json.dumps({**config, "label_codes": codes}))
    assert _exit_code(_train_cli(*tiny_set, out, "-c", str(plain))) == 0
    trained = weights(out)
    capsys.readouterr()
    assert _exit_code(_train_cli(*tiny_set, out, "-c", str(coded), "--resume")) == 0
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"{out}: the run had finished its 1 epoch and its package is intact; nothing to train, the package is kept "
        "with the config's label_codes written into it (give --epochs with more to extend it)")
    package = load_package(out)
    assert package.config["label_codes"] == codes and package.label_codes[3]["type"] == tube
    assert "- DICOM SEG codes: 3 Physical object (SCT 260787004)" in (out / "MODEL_CARD.md").read_text()
    assert all(torch.equal(trained[k], weights(out)[k]) for k in trained)
    # a config without codes: the package's are kept, as they are, and through an extension
    assert _exit_code(_train_cli(*tiny_set, out, "-c", str(plain), "--resume")) == 0
    assert "kept as it was" in capsys.readouterr().err
    assert _exit_code(_train_cli(*tiny_set, out, "-c", str(plain), "--resume", "--epochs", "2")) == 0
    package = load_package(out)
    assert package.config["training"]["epochs_run"] == 2 and package.config["label_codes"] == codes
    assert "- DICOM SEG codes: 3 Physical object (SCT 260787004)" in (out / "MODEL_CARD.md").read_text()


def _plain_and_coded_configs(folder: Path, epochs: int) -> tuple[Path, Path, dict]:
    """Config files of the tiny config without and with codes for label 3 (and the code they give it)."""
    config = tiny_training_config(epochs=epochs)
    tube = {"scheme": "SCT", "value": "260787004", "meaning": "Physical object"}
    plain, coded = folder / "plain.json", folder / "coded.json"
    plain.write_text(json.dumps(config))
    coded.write_text(json.dumps({**config, "label_codes": {"3": {"category": tube, "type": tube}}}))
    return plain, coded, tube


def test_label_codes_carried_only_from_the_runs_own_package_and_only_when_valid(tiny_set, tmp_path, capsys,
                                                                                  monkeypatch, caplog):
    """A run replacing another (--overwrite) took the replaced package's codes; codes that no longer fit made a
    resume train every epoch and then fail; recoding a finished package rewrote a card the user had edited."""
    import logging

    out = tmp_path / "model"
    plain, coded, tube = _plain_and_coded_configs(tmp_path, epochs=2)
    config = json.loads(plain.read_text())
    assert _exit_code(_train_cli(*tiny_set, out, "-c", str(coded))) == 0
    # another run replaces it, is stopped, and resumed: the replaced package's codes are not its own
    assert _interrupted_in_second_epoch(_train_cli(*tiny_set, out, "-c", str(plain), "--overwrite", "--seed", "9"),
                                        monkeypatch) == 130
    with pytest.warns(MedsegWarning, match=r"holds an unfinished training run \(checkpoint after epoch 1 of 2\)"):
        assert load_package(out).label_codes  # until it finishes, the folder holds the replaced package
    assert _exit_code(_train_cli(*tiny_set, out, "-c", str(plain), "--seed", "9", "--resume")) == 0
    assert load_package(out).label_codes == {}
    assert "DICOM SEG codes" not in (out / "MODEL_CARD.md").read_text()
    # a finished run's own package given codes by hand (and its card edited): an extension stopped midway still
    # carries them when it is resumed
    package_json = json.loads((out / "model.json").read_text())
    package_json["label_codes"] = {"2": {"category": tube, "type": tube}}
    (out / "model.json").write_text(json.dumps(package_json))
    assert _interrupted_in_second_epoch(_train_cli(*tiny_set, out, "-c", str(plain), "--seed", "9", "--resume",
                                                   "--epochs", "4"), monkeypatch) == 130
    assert _exit_code(_train_cli(*tiny_set, out, "-c", str(plain), "--seed", "9", "--resume", "--epochs", "4")) == 0
    package = load_package(out)
    assert package.config["training"]["epochs_run"] == 4 and sorted(package.label_codes) == [2]
    # codes that do not fit (a meaning no SEG can hold, edited in by hand) are dropped before training, and the
    # package is made again from the checkpoint, with the codes the checkpoint carries
    package_json = json.loads((out / "model.json").read_text())
    package_json["label_codes"]["2"]["type"]["meaning"] = "R\u00f6hre"
    (out / "model.json").write_text(json.dumps(package_json))
    with caplog.at_level(logging.WARNING, logger="medseg.train_resume"):
        assert _exit_code(_train_cli(*tiny_set, out, "-c", str(plain), "--seed", "9", "--resume", "--epochs", "4")) == 0
    assert (f"{out / 'model.json'}: label_codes/2/type/meaning 'R\u00f6hre' must be printable ASCII without a "
            "backslash, and not start or end with a space: the DICOM SEG could not hold it; these label_codes are "
            "not kept") in caplog.text
    package = load_package(out)
    assert package.label_codes == {2: {"category": tube, "type": tube}}
    assert package.config["training"]["epochs_run"] == 4
    # a finished package given codes by a config keeps the rest of its (edited) card; an empty set changes nothing
    card = out / "MODEL_CARD.md"
    card.write_text(card.read_text() + "\n## Licence\nContract 42.\n")
    empty = tmp_path / "empty.json"
    empty.write_text(json.dumps({**config, "training": {**config["training"], "seed": 9, "epochs": 4},
                                 "label_codes": {}}))
    written = (out / "model.json").read_bytes()
    capsys.readouterr()
    assert _exit_code(_train_cli(*tiny_set, out, "-c", str(empty), "--resume")) == 0
    assert "kept as it was" in capsys.readouterr().err and (out / "model.json").read_bytes() == written
    recoding = tmp_path / "recoding.json"
    recoding.write_text(json.dumps({**config, "training": {**config["training"], "seed": 9, "epochs": 4},
                                    "label_codes": {"1": {"category": tube, "type": tube}}}))
    assert _exit_code(_train_cli(*tiny_set, out, "-c", str(recoding), "--resume")) == 0
    text = card.read_text()
    assert text.endswith("\n## Licence\nContract 42.\n")
    assert "- Labels: 0 background, 1 ellipsoid, 2 box, 3 tube\n- DICOM SEG codes: 1 Physical object" in text


def test_a_packages_codes_as_they_stand_are_the_runs_and_outlive_the_package(tiny_set, tmp_path, capsys, caplog):
    """Codes removed from a package by hand came back from the checkpoint (and were called the config's); codes a
    finished package was given later were lost, or came back stale, when the package was made again from the
    checkpoint."""
    import logging

    out = tmp_path / "model"
    config = tiny_training_config(epochs=1)
    tube = {"scheme": "SCT", "value": "260787004", "meaning": "Physical object"}
    files = {}
    for name, codes in (("plain", None), ("c3", {"3": {"category": tube, "type": tube}}),
                        ("c1", {"1": {"category": tube, "type": tube}})):
        files[name] = tmp_path / f"{name}.json"
        files[name].write_text(json.dumps(config if codes is None else {**config, "label_codes": codes}))

    def package_files_removed():
        for name in ("model.json", "weights.safetensors", "MODEL_CARD.md"):
            (out / name).unlink()

    assert _exit_code(_train_cli(*tiny_set, out, "-c", str(files["c3"]))) == 0
    package_json = json.loads((out / "model.json").read_text())
    del package_json["label_codes"]  # removed by hand: a config without codes keeps the package as it stands
    (out / "model.json").write_text(json.dumps(package_json))
    capsys.readouterr()
    assert _exit_code(_train_cli(*tiny_set, out, "-c", str(files["plain"]), "--resume")) == 0
    assert "the package is kept as it was" in capsys.readouterr().err
    assert load_package(out).label_codes == {}
    package_files_removed()  # and a package made again from the checkpoint has none either
    assert _exit_code(_train_cli(*tiny_set, out, "-c", str(files["plain"]), "--resume")) == 0
    assert load_package(out).label_codes == {}
    # codes given to the finished package by a config are the ones a package made again gets
    assert _exit_code(_train_cli(*tiny_set, out, "-c", str(files["c1"]), "--resume")) == 0
    package_files_removed()
    assert _exit_code(_train_cli(*tiny_set, out, "-c", str(files["plain"]), "--resume")) == 0
    assert sorted(load_package(out).label_codes) == [1]
    # and so are codes added by hand to a package of a run without a config
    bare = tmp_path / "bare"
    assert _exit_code(_train_cli(*tiny_set, bare, "--epochs", "1", *_FEW_STEPS)) == 0
    package_json = json.loads((bare / "model.json").read_text())
    package_json["label_codes"] = {"2": {"category": tube, "type": tube}}
    (bare / "model.json").write_text(json.dumps(package_json))
    assert _exit_code(_train_cli(*tiny_set, bare, "--epochs", "1", "--resume", *_FEW_STEPS)) == 0
    for name in ("model.json", "weights.safetensors", "MODEL_CARD.md"):
        (bare / name).unlink()
    assert _exit_code(_train_cli(*tiny_set, bare, "--epochs", "1", "--resume", *_FEW_STEPS)) == 0
    assert sorted(load_package(bare).label_codes) == [2]
    # the codes of a package this run does not continue (one it is replacing) are named when they are not kept
    with caplog.at_level(logging.WARNING, logger="medseg.train_resume"):
        assert _exit_code(_train_cli(*tiny_set, out, "-c", str(files["c3"]), "--overwrite", "--seed", "8")) == 0
        package_json = json.loads((out / "model.json").read_text())
        state = json.loads((out / ".checkpoint" / "last.json").read_text())
        state.pop("label_codes")  # as a checkpoint of an earlier medseg, in an extension stopped midway
        state.pop("package_sha256")
        (out / ".checkpoint" / "last.json").write_text(json.dumps(state))
        assert _exit_code(_train_cli(*tiny_set, out, "-c", str(files["plain"]), "--seed", "8", "--resume")) == 0
    assert (f"{out / 'model.json'}: the package in the folder is not the one this run's checkpoint last wrote (it "
            "is being replaced, extended or made again), and its label_codes, which differ from the checkpoint's, "
            "are not kept; give them in the config to keep them") in caplog.text
    # so are those of a package a run started with --overwrite replaces
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="medseg.train"):
        assert _exit_code(_train_cli(*tiny_set, out, "-c", str(files["c3"]), "--overwrite")) == 0
        assert _exit_code(_train_cli(*tiny_set, out, "-c", str(files["plain"]), "--overwrite")) == 0
    assert (f"{out / 'model.json'}: the package this run replaces has label_codes (for labels 3) that the config "
            "does not declare; they are not kept: give them in the config to keep them") in caplog.text
    assert load_package(out).label_codes == {}


def test_codes_reach_a_card_in_another_encoding_and_a_package_made_again_takes_the_checkpoints(tiny_set, tmp_path):
    """A card with a Latin-1 byte stopped the recoding with a UnicodeDecodeError traceback; a package whose weights
    were deleted gave its leftover model.json's codes to the package made again, not the checkpoint's."""
    out = tmp_path / "model"
    plain, coded, tube = _plain_and_coded_configs(tmp_path, epochs=1)
    assert _exit_code(_train_cli(*tiny_set, out, "-c", str(plain))) == 0
    card = out / "MODEL_CARD.md"
    card.write_bytes(card.read_bytes() + b"\nNotiz: f\xfcr 42\n")
    assert _exit_code(_train_cli(*tiny_set, out, "-c", str(coded), "--resume")) == 0
    assert card.read_bytes().endswith(b"\nNotiz: f\xfcr 42\n")
    assert b"- DICOM SEG codes: 3 Physical object (SCT 260787004)" in card.read_bytes()
    package_json = json.loads((out / "model.json").read_text())
    package_json["label_codes"] = {"1": {"category": tube, "type": tube}}
    (out / "model.json").write_text(json.dumps(package_json))
    (out / "weights.safetensors").unlink()
    assert _exit_code(_train_cli(*tiny_set, out, "-c", str(plain), "--resume")) == 0
    assert sorted(load_package(out).label_codes) == [3]


@pytest.mark.parametrize("settings", [None, ["edited"]])
def test_resuming_a_finished_run_whose_package_settings_record_was_edited_keeps_the_package(tiny_set, tmp_path,
                                                                                           settings):
    """A finished package's model.json whose training.settings (a free-form record, which loading does not check)
    was edited to null or a list: resuming the run stopped with an AttributeError's traceback."""
    out = tmp_path / "model"
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(tiny_training_config(epochs=1)))
    assert _exit_code(_train_cli(*tiny_set, out, "-c", str(config_file))) == 0
    package = json.loads((out / "model.json").read_text())
    package["training"]["settings"] = settings
    (out / "model.json").write_text(json.dumps(package, indent=2))
    assert _exit_code(_train_cli(*tiny_set, out, "-c", str(config_file), "--resume")) == 0
    assert load_package(out).config["training"]["settings"] == settings  # kept as it is: nothing left to train


def test_resuming_a_finished_run_with_other_notes_says_they_are_not_written(tiny_set, tmp_path, caplog):
    """A corrected description or licence in the config of a finished run was dropped without a word (the package
    is kept, its card perhaps edited by hand)."""
    out = tmp_path / "model"
    config = tiny_training_config(epochs=1)
    first, fixed = tmp_path / "first.json", tmp_path / "fixed.json"
    first.write_text(json.dumps(config))
    config["training"]["data"] = {**config["training"]["data"], "licence": "CC-BY 4.0"}
    fixed.write_text(json.dumps(config))
    assert _exit_code(_train_cli(*tiny_set, out, "-c", str(first))) == 0
    caplog.clear()
    assert _exit_code(_train_cli(*tiny_set, out, "-c", str(first), "--resume")) == 0
    assert not [m for m in caplog.messages if "resuming does not write" in m]
    assert _exit_code(_train_cli(*tiny_set, out, "-c", str(fixed), "--resume")) == 0
    assert f"{out}: the finished package keeps its training.data; the config gives other text, which resuming does " \
           "not write (edit model.json and MODEL_CARD.md, or train again with --overwrite)" in caplog.messages
    assert "CC-BY 4.0" not in (out / "MODEL_CARD.md").read_text()
    config["name"] = "renamed"  # the name too: kept, and said so
    fixed.write_text(json.dumps(config))
    caplog.clear()
    assert _exit_code(_train_cli(*tiny_set, out, "-c", str(fixed), "--resume")) == 0
    assert any(m.startswith(f"{out}: the finished package keeps its name and training.data;") for m in caplog.messages)
    assert load_package(out).name == "tiny"
    caplog.clear()  # extended, the package takes the config's name: said so
    assert _exit_code(_train_cli(*tiny_set, out, "-c", str(fixed), "--resume", "--epochs", "2")) == 0
    assert (f"{out}: the package in the folder is named 'tiny'; this run writes it as 'renamed', the name its config "
            "gives (outputs made with the package name 'tiny')") in caplog.messages
    assert load_package(out).name == "renamed"


def test_other_notes_of_a_resumed_finished_run_reach_a_python_caller_and_the_cli_once(tiny_set, tmp_path, capsys):
    """The notes a finished package keeps over its resuming config's were only logged: a notebook that configured no
    logging heard nothing. A Python caller gets a MedsegWarning at its own line; the command says it once."""
    import warnings

    from conftest import no_logging_configured
    from training_factory import run

    from medseg.errors import MedsegWarning

    out = tmp_path / "model"
    config = tiny_training_config(epochs=1)
    run(config, *tiny_set, out)
    config["description"] = "corrected"
    with pytest.warns(MedsegWarning) as caught:
        run(config, *tiny_set, out, resume=True)
    told = [str(w.message) for w in caught if "resuming does not write" in str(w.message)]
    assert told == [f"{out}: the finished package keeps its description; the config gives other text, which resuming "
                    "does not write (edit model.json and MODEL_CARD.md, or train again with overwrite=True)"]
    # the caller's line (training_factory's run, which calls train), not medseg's
    assert [Path(w.filename).name for w in caught if "resuming does not write" in str(w.message)] == [
        "training_factory.py"]
    config_file = tmp_path / "corrected.json"
    config_file.write_text(json.dumps(config))
    capsys.readouterr()
    with warnings.catch_warnings(), no_logging_configured():  # as the command runs: its own handler shows the line
        warnings.simplefilter("always", MedsegWarning)
        assert _exit_code(_train_cli(*tiny_set, out, "-c", str(config_file), "--resume")) == 0
    told = [line for line in capsys.readouterr().err.splitlines() if "resuming does not write" in line]
    assert told == [f"warning: {out}: the finished package keeps its description; the config gives other text, which "
                    "resuming does not write (edit model.json and MODEL_CARD.md, or train again with --overwrite)"]


@pytest.mark.parametrize("edit", ["width", "labels"])
def test_a_finished_package_whose_model_json_was_edited_is_made_again_on_resume(tiny_set, tmp_path, caplog, edit):
    """Resume looked at the weights' hash and the card only: a model.json given another width (the weights no longer
    load) or swapped label names was called intact and kept."""
    out = tmp_path / "model"
    config_path = tmp_path / "tiny.json"
    config_path.write_text(json.dumps(tiny_training_config(epochs=1)))
    assert _exit_code(_train_cli(*tiny_set, out, "-c", str(config_path))) == 0
    original = json.loads((out / "model.json").read_text())
    edited = copy.deepcopy(original)
    if edit == "width":
        edited["architecture"]["base_width"] *= 2
    else:
        edited["labels"]["1"], edited["labels"]["2"] = edited["labels"]["2"], edited["labels"]["1"]
    (out / "model.json").write_text(json.dumps(edited))
    caplog.clear()
    assert _exit_code(_train_cli(*tiny_set, out, "-c", str(config_path), "--resume")) == 0
    what = "architecture is" if edit == "width" else "labels are"
    assert f"{out / 'model.json'}: its {what} no longer what this run trained; the package is made again from " \
           "the checkpoint" in caplog.messages
    assert json.loads((out / "model.json").read_text())[what.split()[0]] == original[what.split()[0]]
    load_package(out)  # whole again: its weights match its recorded hash
    if edit == "labels":
        return
    # a package damaged or taken apart since was made again without a word (a shared copy may be damaged too)
    weights = out / "weights.safetensors"
    whole = weights.read_bytes()
    for damage, says in ((lambda: weights.write_bytes(whole[:-1] + bytes([whole[-1] ^ 1])), "is damaged ("),
                         (weights.unlink, "cannot be read ("),
                         (lambda: (out / "MODEL_CARD.md").unlink(), "has no model card (MODEL_CARD.md missing")):
        damage()
        caplog.clear()
        assert _exit_code(_train_cli(*tiny_set, out, "-c", str(config_path), "--resume")) == 0
        assert any(m.startswith(f"{out}: the finished run's package {says}") and
                   m.endswith("; it is made again from the checkpoint") for m in caplog.messages), caplog.messages
        assert weights.read_bytes() == whole
    caplog.clear()  # intact: kept without a word
    assert _exit_code(_train_cli(*tiny_set, out, "-c", str(config_path), "--resume")) == 0
    assert not [m for m in caplog.messages if "made again" in m]


def _named_by_hand(out: Path) -> None:
    """Name the package in ``out`` by hand, as a run without a config is named: its fields, not its label values."""
    config = json.loads((out / "model.json").read_text())
    config.update(name="liver", version="3", description="Livers of the tiny set.")
    config["labels"]["1"] = "liver"
    (out / "model.json").write_text(json.dumps(config, indent=2))


def _names(out: Path) -> tuple:
    config = json.loads((out / "model.json").read_text())
    return config["name"], config["version"], config["description"], config["labels"]["1"]


def test_a_run_without_a_config_keeps_its_package_names_when_resumed(tiny_set, tmp_path, caplog, monkeypatch):
    """A run without -c resumed (extended, or its folder moved) wrote its package back as the folder's name, version
    1 and labels label_N: the names given in model.json by hand were lost without a word."""
    out = tmp_path / "model"
    assert _exit_code(_train_cli(*tiny_set, out, "--epochs", "1", *_FEW_STEPS)) == 0
    _named_by_hand(out)
    hand = ("liver", "3", "Livers of the tiny set.", "liver")
    assert _exit_code(_train_cli(*tiny_set, out, "--resume", "--epochs", "2", *_FEW_STEPS)) == 0  # extended
    assert _names(out) == hand
    card = (out / "MODEL_CARD.md").read_text()
    assert card.startswith("# Model card: liver\n\nLivers of the tiny set.\n") and "1 liver, 2 label_2" in card
    caplog.clear()  # finished: kept as it is (its label names are not "labels no longer what this run trained")
    assert _exit_code(_train_cli(*tiny_set, out, "--resume", "--epochs", "2", *_FEW_STEPS)) == 0
    assert not [m for m in caplog.messages if "made again" in m or "not kept" in m]
    assert (out / "MODEL_CARD.md").read_text() == card
    moved = tmp_path / "moved"
    out.rename(moved)  # a moved folder's package is not renamed after the folder
    assert _interrupted_in_second_epoch(_train_cli(*tiny_set, moved, "--resume", "--epochs", "4", *_FEW_STEPS),
                                        monkeypatch) == 130  # stopped in epoch 4: the package of epoch 2 is left
    caplog.clear()  # the checkpoint no longer names that package: the names it carries are kept
    assert _exit_code(_train_cli(*tiny_set, moved, "--resume", "--epochs", "4", *_FEW_STEPS)) == 0
    assert json.loads((moved / "model.json").read_text())["training"]["epochs_run"] == 4
    assert _names(moved) == hand
    assert not [m for m in caplog.messages if "not kept" in m]


def test_label_names_swapped_by_hand_are_not_kept_by_a_resumed_run(tiny_set, tmp_path, caplog):
    """Names swapped between two labels were carried into the package a resume wrote, and recorded as what it was
    trained with: the wrong labels were then never warned about again. A finished run's package so swapped is made
    again."""
    out = tmp_path / "model"
    assert _exit_code(_train_cli(*tiny_set, out, "--epochs", "1", *_FEW_STEPS)) == 0
    config = json.loads((out / "model.json").read_text())
    trained = dict(config["labels"])
    config["labels"]["1"], config["labels"]["2"] = trained["2"], trained["1"]
    (out / "model.json").write_text(json.dumps(config, indent=2))
    caplog.clear()
    assert _exit_code(_train_cli(*tiny_set, out, "--resume", "--epochs", "1", *_FEW_STEPS)) == 0  # finished
    assert any("is made again from the checkpoint" in m for m in caplog.messages)
    assert json.loads((out / "model.json").read_text())["labels"] == trained
    (out / "model.json").write_text(json.dumps(config, indent=2))  # swapped again, then extended
    caplog.clear()
    assert _exit_code(_train_cli(*tiny_set, out, "--resume", "--epochs", "2", *_FEW_STEPS)) == 0
    assert f"{out / 'model.json'}: label 1, 2 carry the names other labels were trained with; its label names are " \
           "not kept" in caplog.messages
    written = json.loads((out / "model.json").read_text())
    assert written["labels"] == trained and written["training"]["trained_with"]["labels"] == trained


def test_package_names_that_do_not_fit_a_package_are_not_kept(tmp_path, caplog):
    """A name the package schema refuses (edited by hand) is not carried into the package a resumed run writes: it
    would fail as the run ends. Label names are kept only with the run's label values."""
    from medseg.train_config import default_config
    from medseg.train_resume import carried_notes

    package_config = {k: v for k, v in default_config([0, 1, 2], name="model").items() if k != "training"}
    package_config["weights"] = {"file": "weights.safetensors", "sha256": "0" * 64}  # as the run holds it
    (tmp_path / "weights.safetensors").write_bytes(b"weights")
    folder = {**package_config, "name": "my liver", "version": "3", "labels": {"0": "background", "1": "liver"},
              "weights": {"file": "weights.safetensors", "sha256": "a" * 64}}
    (tmp_path / "model.json").write_text(json.dumps(folder))
    state = {"package_sha256": "a" * 64}  # the run's own package
    assert carried_notes(tmp_path, state, package_config) == {"version": "3"}
    assert [m for m in caplog.messages if "not kept" in m] == [
        f"{tmp_path / 'model.json'}: invalid model config at name: 'my liver' does not match '^[A-Za-z0-9_.-]+$'; "
        "its name is not kept"]


def test_a_replaced_package_s_names_are_named_when_not_kept(tiny_set, tmp_path, caplog, monkeypatch):
    """The names of a package that an --overwrite run (stopped, then resumed) replaces are not its own: each one
    written otherwise is named, with the value written instead."""
    out = tmp_path / "model"
    assert _exit_code(_train_cli(*tiny_set, out, "--epochs", "1", *_FEW_STEPS)) == 0
    _named_by_hand(out)
    assert _interrupted_in_second_epoch(_train_cli(*tiny_set, out, "--overwrite", "--epochs", "2", *_FEW_STEPS),
                                        monkeypatch) == 130
    caplog.clear()
    assert _exit_code(_train_cli(*tiny_set, out, "--resume", "--epochs", "2", *_FEW_STEPS)) == 0
    assert (f"{out / 'model.json'}: the package in the folder is not the one this run's checkpoint last wrote (it is "
            "being replaced or made again); its names are not kept: name 'liver' -> 'model', version '3' -> '1', "
            "description 'Livers of the tiny set.' -> 'Trained with medseg train and its default config.', label 1 "
            "'liver' -> 'label_1' (edit model.json and MODEL_CARD.md after the run to keep them)") in caplog.messages
    assert _names(out) == ("model", "1", "Trained with medseg train and its default config.", "label_1")


@pytest.mark.parametrize("place", ["deep", "fifo"])
def test_a_broken_model_json_in_the_output_folder_is_no_package_to_carry_codes_from(tmp_path, place):
    """``--overwrite`` and ``--resume`` read the package config already in the output folder for its label codes and
    name: brackets nested thousands deep raised json's RecursionError (a traceback), and a named pipe in its place
    waited for a writer."""
    import threading

    from medseg.train_resume import folder_codes, folder_config

    config = tmp_path / "model.json"
    if place == "deep":
        config.write_text("[" * 100000 + "]" * 100000)
    else:
        os.mkfifo(config)
    found = []

    def read():
        try:
            found.append((folder_config(tmp_path), folder_codes(tmp_path)))
        except BaseException as error:  # told by the assertion below
            found.append(error)
    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(5)
    if thread.is_alive():  # let the old read go on: a writer that closes at once
        os.close(os.open(config, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(5)
        raise AssertionError("the read waited for a writer")
    assert found == [(None, None)]
