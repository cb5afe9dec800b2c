"""Which package a `--model` name finds: shipped names not hidden by folders or other packages, archives and
empty names refused (medseg.package)."""

import json
import logging

import pytest
from conftest import _files, run_cli

from medseg.errors import MedsegWarning
from medseg.synthetic import write_phantom

run = run_cli  # medseg ARGS in this process: (exit code, stdout, stderr)


def test_unknown_model(case, capsys):
    code, _, err = run(["infer", str(case), "--model", "no-such-model"], capsys)
    assert code == 1 and "no such model folder or shipped model" in err and "phantom" in err


def test_a_plain_folder_named_like_a_shipped_model_does_not_hide_it(tmp_path, monkeypatch, caplog):
    import shutil

    from medseg.package import load_package

    shipped = load_package("phantom").path
    (tmp_path / "phantom").mkdir()  # e.g. a data folder of the same name in the working folder
    monkeypatch.chdir(tmp_path)
    assert load_package("phantom").path == shipped
    # a package folder of that name is what the user means: it wins over the shipped one, and says so
    shutil.rmtree(tmp_path / "phantom")
    shutil.copytree(shipped, tmp_path / "phantom")
    with caplog.at_level(logging.WARNING), pytest.warns(MedsegWarning, match=r"^phantom: the package folder "):
        assert load_package("phantom").path.resolve() == (tmp_path / "phantom").resolve()
    assert (f"phantom: the package folder {tmp_path / 'phantom'}, not the shipped model of that name; give ./phantom "
            "to say so, or rename the folder") in caplog.text
    caplog.clear()
    assert load_package("./phantom").path.resolve() == (tmp_path / "phantom").resolve() and not caplog.text


def test_a_trained_package_named_like_the_default_does_not_replace_it(tmp_path, monkeypatch, capsys):
    """`medseg train -o phantom` in the working folder: `medseg infer` without --model took it and called it "the
    shipped demo model", and `medseg models` listed it as the default."""
    import shutil

    from medseg.package import load_package

    shipped = load_package("phantom").path
    shutil.copytree(load_package("hippocampus").path, tmp_path / "phantom")
    write_phantom(tmp_path / "p.nii.gz", tmp_path / "p_label.nii.gz", shape=(48, 48, 12), seed=3)
    monkeypatch.chdir(tmp_path)
    code, _, err = run(["infer", "p.nii.gz", "-o", "out"], capsys)
    assert code == 0, err
    sidecar = json.loads((tmp_path / "out" / "p_seg.json").read_text())
    assert sidecar["model"]["path"] == str(shipped) and sidecar["labels"]["2"] == "box"
    code, out, _ = run(["models", "--json"], capsys)
    rows = {row["name"]: row for row in json.loads(out)}
    assert rows["phantom"]["default"] and rows["phantom"]["labels"]["2"] == "box"
    code, out, _ = run(["models", "--json", "phantom"], capsys)  # named: the folder, which is no default
    assert [(row["name"], row["default"]) for row in json.loads(out)] == [("hippocampus", False)]
    code, out, _ = run(["models", "--json", str(shipped)], capsys)  # the shipped one given by its folder is
    assert [(row["name"], row["default"]) for row in json.loads(out)] == [("phantom", True)]
    code, out, _ = run(["models", "phantom"], capsys)
    assert out.startswith("hippocampus: ")


def test_a_package_calling_itself_by_a_shipped_name_is_warned_about(tmp_path, case, make_package, capsys):
    """A copy of phantom renamed "hippocampus" in its model.json ran as "model hippocampus" without a word."""
    mine = make_package("hippocampus")
    code, _, err = run(["infer", str(case), "--model", str(mine), "-o", str(tmp_path / "out")], capsys)
    assert code == 0
    assert (f"warning: {mine} calls itself 'hippocampus', as a model shipped with medseg, but is another package "
            "(other weights): outputs name it by that name (the sidecar also records its folder and the SHA-256 of "
            "its weights and model.json)") in err
    code, _, err = run(["infer", str(case), "--model", "phantom", "-o", str(tmp_path / "out2")], capsys)
    assert code == 0 and "calls itself" not in err
    import shutil

    from medseg.package import shipped_package_path

    copy = tmp_path / "copied" / "phantom"  # the shipped package copied to shared storage: the same weights
    shutil.copytree(shipped_package_path("phantom"), copy)
    code, _, err = run(["infer", str(case), "--model", str(copy), "-o", str(tmp_path / "out3")], capsys)
    assert code == 0 and "calls itself" not in err
    # the copy with two label names swapped by hand: the same weights, but other labels under the shipped name
    config = json.loads((copy / "model.json").read_text())
    config["labels"]["1"], config["labels"]["2"] = config["labels"]["2"], config["labels"]["1"]
    (copy / "model.json").write_text(json.dumps(config, indent=2))
    code, _, err = run(["infer", str(case), "--model", str(copy), "-o", str(tmp_path / "out4")], capsys)
    assert code == 0
    assert f"warning: {copy} calls itself 'phantom', as a model shipped with medseg, but is another package (its " \
           "weights under an edited model.json)" in err
    code, out, err = run(["models", str(copy)], capsys)  # where a package maker looks first
    assert code == 0 and "(its weights under an edited model.json)" in err


def test_an_empty_model_name_is_a_usage_error(tmp_path, case, capsys):
    """`-m "$MODEL"` with the variable unset exited 1, as bad data does; an empty path is a usage error (exit 2)."""
    code, out, err = run(["infer", str(case), "-m", "", "-o", str(tmp_path / "out")], capsys)
    assert (code, out) == (2, "")
    assert ("Invalid value for '-m' / '--model': an empty model name (an unset shell variable?); give a shipped "
            "model's name (hippocampus, phantom) or a package folder.") in err
    assert not (tmp_path / "out").exists()
    code, out, err = run(["evaluate", str(case), str(case), "-m", " "], capsys)  # evaluate's --model too
    assert (code, out) == (2, "") and "Invalid value for '-m' / '--model': an empty model name" in err
    code, out, err = run(["models", "hippocampus", ""], capsys)  # and models' names
    assert (code, out) == (2, "") and "an empty model name" in err


def test_a_package_archive_given_to_infer_is_one_line_and_no_output(tmp_path, case, make_package, capsys):
    import zipfile

    path = make_package()
    with zipfile.ZipFile(tmp_path / "lab-model.zip", "w") as archive:
        archive.write(path / "model.json", "lab-model/model.json")
    out = tmp_path / "out"
    code, _, err = run(["infer", str(case), "--model", str(tmp_path / "lab-model.zip"), "-o", str(out)], capsys)
    assert code == 1
    assert err == (f"medseg: error: {tmp_path / 'lab-model.zip'}: a zip archive, not a model package folder: unpack "
                   "it first and give the folder that holds model.json\n")
    assert not out.exists() or _files(out) == []


def test_a_package_one_folder_deep_in_a_folder_named_like_a_shipped_model_is_told(tmp_path, monkeypatch, caplog):
    """hippocampus.zip unpacked into a folder of its own name: --model hippocampus ran the shipped model in
    silence, though the user's hippocampus package lay one folder deeper."""
    import shutil

    from medseg.package import load_package

    shipped = load_package("phantom").path
    shutil.copytree(shipped, tmp_path / "phantom" / "phantom")
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.WARNING), pytest.warns(MedsegWarning, match=r"^phantom: the shipped model of "):
        assert load_package("phantom").path == shipped
    assert (f"phantom: the shipped model of that name; the folder {tmp_path / 'phantom'} holds no model.json, but a "
            "package one folder deeper: give phantom/phantom to use that one") in caplog.text
    caplog.clear()
    shutil.rmtree(tmp_path / "phantom" / "phantom")
    with caplog.at_level(logging.WARNING):
        assert load_package("phantom").path == shipped
    assert not caplog.text
