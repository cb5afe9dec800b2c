"""`medseg models`: the shipped packages listed, given packages described and checked (medseg.cli.models)."""

import hashlib
import json
import os

import pytest
from conftest import run_cli

run = run_cli  # medseg ARGS in this process: (exit code, stdout, stderr)


def test_models_lists_shipped_packages(capsys):
    code, out, _ = run(["models", "--json"], capsys)
    rows = json.loads(out)
    phantom = next(r for r in rows if r["name"] == "phantom")
    assert phantom["default"] and phantom["labels"]["2"] == "box" and phantom["label_codes"] == {}
    hippocampus = next(r for r in rows if r["name"] == "hippocampus")
    assert hippocampus["label_codes"]["2"]["modifier"]["meaning"] == "Posterior"
    code, out, _ = run(["models"], capsys)
    assert code == 0
    assert ("  DICOM SEG codes: 1 Hippocampus (SCT 5366008), Anterior (SCT 255549009), category Anatomical Structure "
            "(SCT 91723000); 2 Hippocampus (SCT 5366008), Posterior (SCT 255551008), category Anatomical Structure "
            "(SCT 91723000)\n") in out
    assert out.count("DICOM SEG codes") == 1  # the phantom's shapes have none


def test_models_describes_and_checks_given_packages(tmp_path, capsys):
    """A user's package could be checked or described only by running inference with it (`medseg models PATH` was a
    usage error). Given packages are described with their validation figures, their weights checked."""
    import shutil

    from medseg.package import load_package

    code, out, _ = run(["models", "hippocampus"], capsys)
    assert code == 0 and out.startswith("hippocampus: ") and "phantom" not in out
    shipped = load_package("hippocampus")
    assert f"  version 1; folder: {shipped.path}; weights SHA-256 {shipped.sha256[:12]}… checked\n" in out
    assert ("  validation (40 cases, a seeded 0.2 split, split seed 0; best epoch 40 of 45): mean Dice anterior "
            "0.8913, posterior 0.8783\n    median anterior 0.8993, posterior 0.8882\n    min anterior 0.7902, "
            "posterior 0.7861\n") in out
    copy = tmp_path / "mine"
    shutil.copytree(shipped.path, copy)
    weights = copy / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    code, out, err = run(["models", "--json", str(copy), "phantom"], capsys)
    # the damaged one is a row of its own (it was left out: a script saw one package where it gave two)
    assert code == 1 and [row["name"] for row in json.loads(out)] == [None, "phantom"]
    assert err.strip().startswith(f"medseg: error: {weights}: SHA-256 ")
    failed = json.loads(out)[0]
    assert failed["given"] == str(copy) and failed["error"].startswith(f"{weights}: SHA-256 ")
    assert f"medseg: error: {failed['error']}" == err.strip()
    row = json.loads(out)[1]
    # the shipped default, named or not (named, it read "default": false)
    assert row["weights_checked"] and row["default"] and row["training"]["val_cases"] is not None
    phantom = load_package("phantom")  # what a sidecar names the model by, and where it is, from anywhere
    config_sha256 = hashlib.sha256((phantom.path / "model.json").read_bytes()).hexdigest()
    assert (row["version"], row["weights_sha256"], row["config_sha256"]) == (
        phantom.config["version"], phantom.sha256, config_sha256)
    assert row["path"] == os.path.abspath(phantom.path) and len(row["config_sha256"]) == 64
    shutil.copy(shipped.weights_path, weights)  # whole again; its training record edited by hand
    config = json.loads((copy / "model.json").read_text())
    config["training"]["val_dice"]["2"] = "n/a"
    (copy / "model.json").write_text(json.dumps(config))
    code, out, _ = run(["models", str(copy)], capsys)
    assert code == 0 and "mean Dice anterior 0.8913, posterior n/a\n" in out
    config["architecture"]["base_width"] = 32  # its weights' hash still holds; their shapes no longer fit
    (copy / "model.json").write_text(json.dumps(config))
    code, out, err = run(["models", str(copy)], capsys)
    assert code == 1 and out == ""
    assert err.strip().startswith(f"medseg: error: {weights}: weights do not match the architecture in model.json "
                                  "(")


def test_models_shows_a_hand_edited_training_record_s_figures_only_as_numbers(tmp_path, capsys):
    """A training record edited by hand was shown as it stood: "validation (None cases …): mean Dice ellipsoid great,
    7 2.5000" (text as a Dice, a label the package does not have). Figures that are no numbers are not recorded."""
    import shutil

    from medseg.package import shipped_package_path

    copy = tmp_path / "mine"
    shutil.copytree(shipped_package_path("phantom"), copy)
    config = json.loads((copy / "model.json").read_text())
    config["training"].update(val_dice={"1": "great", "7": 2.5, "2": 0.5}, val_dice_median={"1": True}, val_cases=5,
                              best_epoch="8", epochs_run=8)
    (copy / "model.json").write_text(json.dumps(config))
    code, out, _ = run(["models", str(copy)], capsys)
    assert code == 0
    assert ("  validation (cases not recorded, a seeded 0.15 split, split seed 0; best epoch not recorded of 8): mean "
            "Dice ellipsoid n/a, box 0.5000\n    median ellipsoid n/a\n") in out
    code, out, _ = run(["models", "--json", str(copy)], capsys)
    training = json.loads(out)[0]["training"]
    assert training["val_dice"] == {"1": None, "2": 0.5} and training["val_dice_median"] == {"1": None}
    assert training["val_cases"] is None and training["best_epoch"] is None and training["epochs_run"] == 8
    config["training"].update(val_dice={"7": 0.9}, epochs_run=[8], train_cases=34)  # no figure for its labels
    (copy / "model.json").write_text(json.dumps(config))
    code, out, _ = run(["models", str(copy)], capsys)
    assert code == 0 and "  training: epochs not recorded on 34 cases, no validation figures\n" in out
    config["training"].update(val_dice={"1": 0.9}, epochs_run=8.0, val_split=15)  # 8.0: a whole number still
    (copy / "model.json").write_text(json.dumps(config))
    code, out, _ = run(["models", str(copy)], capsys)
    assert code == 0 and "  validation (cases not recorded, split not recorded; best epoch not recorded of 8): " in out


def test_models_marks_the_labels_no_validation_reference_holds_as_the_card_does(tmp_path, capsys):
    """A label in no validation reference read "n/a" (or a Dice of false positives) with nothing said of why, where
    the model card marks it; a record's list that names no label of the package marks none."""
    import shutil

    from medseg.package import shipped_package_path

    copy = tmp_path / "mine"
    shutil.copytree(shipped_package_path("phantom"), copy)
    config = json.loads((copy / "model.json").read_text())
    config["training"].update(val_labels_absent=[2, 3], val_dice={"1": 0.9, "2": 0.0, "3": None},
                              val_dice_median={"1": 0.9, "2": 0.0, "3": None}, val_dice_min={"1": 0.8, "2": 0.0})
    (copy / "model.json").write_text(json.dumps(config))
    code, out, _ = run(["models", str(copy)], capsys)
    assert code == 0
    assert ("mean Dice ellipsoid 0.9000, box * 0.0000, tube * n/a\n    median ellipsoid 0.9000, box * 0.0000, tube * "
            "n/a\n    min ellipsoid 0.8000, box * 0.0000\n    * in no validation reference: its Dice counts only false "
            "positives (0 where the label was predicted, n/a where not)\n") in out
    code, out, _ = run(["models", "--json", str(copy)], capsys)
    assert json.loads(out)[0]["training"]["val_labels_absent"] == [2, 3]
    config["training"].update(val_labels_absent=[7, "x"])
    (copy / "model.json").write_text(json.dumps(config))
    code, out, _ = run(["models", str(copy)], capsys)
    assert code == 0 and "mean Dice ellipsoid 0.9000, box 0.0000, tube n/a\n" in out and " * " not in out
    code, out, _ = run(["models", "--json", str(copy)], capsys)
    assert json.loads(out)[0]["training"]["val_labels_absent"] == []


def test_models_names_the_labels_no_training_case_held_as_the_card_does(tmp_path, capsys):
    """Labels declared to fill a gap (train_labels_absent) were named as never learnt by the model card and the
    training run's warnings only: `medseg models` showed them among the labels, like any other. A record without the
    list (an older package), or one naming no label of the package, names none."""
    import shutil

    from medseg.package import shipped_package_path

    copy = tmp_path / "mine"
    shutil.copytree(shipped_package_path("phantom"), copy)
    code, out, _ = run(["models", str(copy)], capsys)
    assert code == 0 and "never learnt" not in out
    assert "train_labels_absent" not in json.loads(run(["models", "--json", str(copy)], capsys)[1])[0]["training"]
    config = json.loads((copy / "model.json").read_text())
    config["training"]["train_labels_absent"] = [2, 3]
    (copy / "model.json").write_text(json.dumps(config))
    code, out, _ = run(["models", str(copy)], capsys)
    assert code == 0 and "\n  in no training case, so never learnt: 2 box, 3 tube\n" in out
    code, out, _ = run(["models", "--json", str(copy)], capsys)
    assert json.loads(out)[0]["training"]["train_labels_absent"] == [2, 3]
    config["training"]["train_labels_absent"] = [9, "x"]
    (copy / "model.json").write_text(json.dumps(config))
    code, out, _ = run(["models", str(copy)], capsys)
    assert code == 0 and "never learnt" not in out


def test_one_damaged_shipped_package_does_not_hide_the_others(tmp_path, capsys, monkeypatch):
    import shutil

    import medseg.package

    shipped = medseg.package._models_root()
    root = tmp_path / "models"
    shutil.copytree(shipped / "phantom", root / "phantom")
    (root / "broken").mkdir(parents=True)
    (root / "broken" / "model.json").write_text("[]")
    monkeypatch.setattr(medseg.package, "_models_root", lambda: root)
    code, out, err = run(["models"], capsys)
    assert code == 1 and out.startswith("phantom (default): ")
    assert err.strip() == (f"medseg: error: {root / 'broken' / 'model.json'}: a model config is a JSON object "
                           "({...}), not list")


def test_models_warns_about_a_package_without_its_card(tmp_path, capsys):
    """A package shared without MODEL_CARD.md loses its data, licence and attribution notes without a word."""
    import shutil

    from medseg.package import shipped_package_path

    copy = tmp_path / "mine"
    shutil.copytree(shipped_package_path("phantom"), copy)
    code, _, err = run(["models", str(copy)], capsys)
    assert code == 0 and "MODEL_CARD" not in err
    (copy / "MODEL_CARD.md").unlink()
    code, out, err = run(["models", str(copy)], capsys)
    assert code == 0 and "phantom" in out
    assert err == (f"warning: {copy}: no MODEL_CARD.md, the card with the training data's description, licence and "
                   "attribution; medseg train writes one\n")


def test_models_warns_about_a_card_that_names_other_weights(tmp_path, capsys):
    """A package's weights replaced (or a card copied from another package) kept a card naming the old weights' SHA-256
    beside them: its data, licence and figures told of another model without a word."""
    import shutil

    from medseg.package import load_package, shipped_package_path

    copy = tmp_path / "mine"
    shutil.copytree(shipped_package_path("phantom"), copy)
    shutil.copy(shipped_package_path("hippocampus") / "MODEL_CARD.md", copy / "MODEL_CARD.md")
    theirs, ours = load_package("hippocampus").sha256, load_package(copy).sha256
    code, out, err = run(["models", str(copy)], capsys)
    assert code == 0 and "phantom" in out
    assert err == (f"warning: {copy / 'MODEL_CARD.md'}: describes the weights of SHA-256 {theirs[:12]}…, not those "
                   f"beside it ({ours[:12]}…): its data, licence and figures may be another model's; medseg train "
                   "writes the card with its weights\n")
    card = (shipped_package_path("phantom") / "MODEL_CARD.md").read_text()
    (copy / "MODEL_CARD.md").write_text(card.replace(ours, ours.upper()))  # its own, in capitals: the same
    assert run(["models", str(copy)], capsys)[2] == ""


def test_a_folder_of_packages_lists_each_package_in_it(tmp_path, capsys, make_package):
    """`medseg models shared/`, a folder holding packages m_a and m_b, was refused ("2 of its folders hold packages
    (m_a, m_b): give one of them"): a user sharing a folder of packages had to name each. Each package one folder
    down is now described and checked as if given (a damaged one is its error line, the others listed); a folder
    holding one package one folder deeper (unpacked into a folder of its name) keeps its error naming it."""
    import shutil

    for name in ("m_b", "m_a"):
        make_package(name)
    shared = tmp_path / "shared"
    shared.mkdir()
    for name in ("m_b", "m_a"):
        shutil.move(tmp_path / name, shared / name)
    (shared / "notes").mkdir()  # no package: not listed
    code, out, err = run(["models", str(shared)], capsys)
    assert code == 0
    no_card = ": no MODEL_CARD.md, the card with the training data's description, licence and attribution; medseg " \
        "train writes one"
    assert err.splitlines() == [f"warning: {shared / name}{no_card}" for name in ("m_a", "m_b")]
    assert [line.split(":")[0] for line in out.splitlines() if not line.startswith(" ")] == ["m_a", "m_b"]
    assert f"folder: {shared / 'm_a'}; weights SHA-256 " in out and f"folder: {shared / 'm_b'}; weights SHA-256 " in out
    code, out, _ = run(["models", "--json", str(shared), "phantom"], capsys)
    assert code == 0 and [row["name"] for row in json.loads(out)] == ["m_a", "m_b", "phantom"]
    weights = shared / "m_b" / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + bytes([weights.read_bytes()[-1] ^ 1]))
    code, out, err = run(["models", str(shared)], capsys)
    assert code == 1 and out.startswith("m_a: ") and "m_b" not in out
    told = [line for line in err.splitlines() if "MODEL_CARD" not in line]
    assert len(told) == 1 and told[0].startswith(f"medseg: error: {weights}: SHA-256 ")
    shutil.rmtree(shared / "m_b")  # one package one folder deeper: where it is, as before
    code, out, err = run(["models", str(shared)], capsys)
    assert code == 1 and out == ""
    assert err.strip().endswith(f"; the package is one folder deeper: give {shared / 'm_a'}")


def _card_warning(tmp_path, capsys, make_card):
    """`medseg models` of a phantom copy whose MODEL_CARD.md ``make_card`` made: (exit code, stderr), the read given
    10 s (a named pipe waited for a writer: the command hung)."""
    import shutil
    import threading

    from medseg.package import shipped_package_path

    copy = tmp_path / "mine"
    shutil.copytree(shipped_package_path("phantom"), copy)
    card = copy / "MODEL_CARD.md"
    card.unlink()
    make_card(card)
    outcome = []
    thread = threading.Thread(target=lambda: outcome.append(run(["models", str(copy)], capsys)), daemon=True)
    thread.start()
    thread.join(10)
    waited = thread.is_alive()
    if waited:  # let the old read end: a writer that closes at once
        os.close(os.open(card, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(10)
    assert not waited, "the card's read waited for a writer"
    code, out, err = outcome[0]
    assert "phantom" in out
    return code, err, card


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_a_card_that_is_a_named_pipe_is_named_without_waiting(tmp_path, capsys):
    """A package from elsewhere whose MODEL_CARD.md is a named pipe hung `medseg models PKG` for ever."""
    code, err, card = _card_warning(tmp_path, capsys, os.mkfifo)
    assert code == 0
    assert err == f"warning: {card}: not a regular file (a named pipe), where a package keeps its model card\n"


def test_a_card_that_is_a_link_to_a_device_is_not_read(tmp_path, capsys):
    """A MODEL_CARD.md linked to /dev/zero was read until the machine's memory ran out."""
    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero")
    code, err, card = _card_warning(tmp_path, capsys, lambda card: card.symlink_to("/dev/zero"))
    assert code == 0
    assert err == (f"warning: {card}: a link to /dev/zero, not a regular file (a character device), where a package "
                   "keeps its model card\n")


def test_a_card_larger_than_any_card_is_not_read(tmp_path, capsys):
    """A card of gigabytes was read whole into memory (64 MiB here, sparse: nothing of it is written)."""
    def sparse(card):
        with open(card, "wb") as handle:
            handle.truncate(64 << 20)
    code, err, card = _card_warning(tmp_path, capsys, sparse)
    assert code == 0
    assert err == (f"warning: {card}: 64 MiB, where a model card holds at most 16 MiB; not a package's model card, "
                   "not read\n")
