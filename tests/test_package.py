import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import pytest
import torch

from medseg.errors import ModelPackageError
from medseg.package import load_package, shipped_models


def test_saved_package_round_trips(make_package):
    path = make_package()
    package = load_package(path)
    assert package.name == "tiny"
    assert package.labels == {0: "background", 1: "ellipsoid", 2: "box", 3: "tube"}
    assert len(package.sha256) == 64
    torch.manual_seed(3)
    net = package.build_network("cpu")
    after = torch.rand(4)
    assert not net.training
    with torch.inference_mode():
        assert net(torch.zeros(1, 1, 20, 20)).shape == (1, 4, 20, 20)
    torch.manual_seed(3)
    assert torch.equal(after, torch.rand(4))  # building it left the caller's random draws as they were


def test_shipped_models_load_with_checked_hash():
    names = shipped_models()
    assert "phantom" in names
    for name in names:
        package = load_package(name)
        assert package.labels[0] == "background"
        assert package.weights_path.stat().st_size < 10 * 2**20  # a few MB at most


def test_missing_package_names_the_shipped_ones(tmp_path):
    with pytest.raises(ModelPackageError, match="no such model folder or shipped model .*phantom"):
        load_package(tmp_path / "nope")


def test_a_shipped_name_mistyped_is_named_as_the_one_meant(tmp_path, monkeypatch):
    """`-m hipocampus` listed the shipped models but named none, where a mistyped command gets "Did you mean"."""
    monkeypatch.chdir(tmp_path)
    shipped = ", ".join(shipped_models())
    for typed, meant in (("hipocampus", "hippocampus"), ("phantoms", "phantom"), ("Phantom", "phantom")):
        with pytest.raises(ModelPackageError) as error:
            load_package(typed)
        assert str(error.value) == (f"{typed}: no such model folder or shipped model (the folder taken relative to "
                                    f"{tmp_path}; shipped: {shipped}); did you mean {meant}?")
    for unlike in ("my_model", "models/hippocampus2"):  # a name like none, or a path: no guess
        with pytest.raises(ModelPackageError) as error:
            load_package(unlike)
        assert "did you mean" not in str(error.value)


def test_a_missing_relative_model_path_names_the_folder_it_was_taken_from(tmp_path, monkeypatch):
    """A workflow's `model=my_model` said only "no such model folder": from which folder, a sheet's error says."""
    monkeypatch.chdir(tmp_path)
    for name in ("my_model", "models/my_model"):
        with pytest.raises(ModelPackageError) as error:
            load_package(name)
        assert str(error.value) == (f"{name}: no such model folder or shipped model (the folder taken relative to "
                                    f"{tmp_path}; shipped: {', '.join(shipped_models())})")
    with pytest.raises(ModelPackageError) as error:  # an absolute path needs no folder
        load_package(tmp_path / "nope")
    assert str(error.value) == f"{tmp_path / 'nope'}: no such model folder or shipped model (shipped: " \
                               f"{', '.join(shipped_models())})"


def test_folder_without_config(tmp_path):
    with pytest.raises(ModelPackageError, match="not a model package"):
        load_package(tmp_path)


def test_config_that_is_not_json(make_package):
    path = make_package()
    (path / "model.json").write_text("{not json")
    with pytest.raises(ModelPackageError, match="not valid JSON"):
        load_package(path)


def test_no_pickle_files_in_shipped_packages():
    from medseg.package import _models_root

    suffixes = {p.suffix for p in _models_root().rglob("*") if p.is_file()}
    assert not suffixes & {".pt", ".pth", ".pkl", ".ckpt", ".bin"}


@pytest.mark.parametrize("name", ["phantom", "hippocampus"])
def test_every_shipped_card_is_what_the_trainer_writes_for_its_config(name):
    """The phantom's card had drifted from its own training record (no split, patch or augmentation)."""
    from medseg.model_card import model_card

    package = load_package(name)
    assert (package.path / "MODEL_CARD.md").read_text() == model_card(package.config)


@pytest.mark.parametrize("name", ["phantom", "hippocampus"])
def test_a_card_names_the_version_sidecars_record(name):
    """A sidecar records the model's name, version and weights' SHA-256; its card named the model and the weights but
    not the version, so a reader holding a sidecar of version 1 could not tell that the card was that version's."""
    package = load_package(name)
    card = (package.path / "MODEL_CARD.md").read_text()
    assert package.config["version"] == "1"
    assert "\n- Version: 1 (recorded in each segmentation's sidecar as model.version)\n" in card


def test_the_shipped_hippocampus_codes_its_segments_as_anterior_and_posterior_hippocampus():
    codes = load_package("hippocampus").label_codes
    assert sorted(codes) == [1, 2]
    for value, side in ((1, ("255549009", "Anterior")), (2, ("255551008", "Posterior"))):
        assert codes[value]["category"] == {"scheme": "SCT", "value": "91723000", "meaning": "Anatomical Structure"}
        assert codes[value]["type"] == {"scheme": "SCT", "value": "5366008", "meaning": "Hippocampus"}
        assert (codes[value]["modifier"]["value"], codes[value]["modifier"]["meaning"]) == side
    assert load_package("phantom").label_codes == {}  # shapes: no anatomy to code (Tissue in a SEG)


def test_a_package_replaced_by_a_stopped_save_stays_whole(make_package, monkeypatch):
    """Weights, config and card are one set: a stop while the new set is placed leaves the old package, not new
    weights under the old config (which then refused them as not the weights it records)."""
    from medseg.io import atomic
    from medseg.network import UNet2D, UNetConfig
    from medseg.package import save_package

    folder = make_package()
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    package = load_package(folder)
    torch.manual_seed(1)
    net = UNet2D(UNetConfig(**{k: v for k, v in package.config["architecture"].items() if k != "type"}))
    config = {k: v for k, v in package.config.items() if k != "weights"}
    placed = []
    real_replace = atomic.os.replace

    def stopped(source, target):
        if os.path.basename(target) == "model.json" and ".prev" not in os.path.basename(source):  # not restoring
            raise KeyboardInterrupt
        placed.append(target)
        return real_replace(source, target)

    monkeypatch.setattr(atomic.os, "replace", stopped)
    with pytest.raises(KeyboardInterrupt):
        save_package(net, config, folder, extra_files={"MODEL_CARD.md": "new card\n"})
    monkeypatch.undo()
    assert placed  # the new weights had been put in place before the stop
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert load_package(folder).sha256 == package.sha256


def test_weights_that_cannot_be_written_are_one_error_naming_them_and_the_old_package_stays(make_package):
    """A full disk or quota while the weights were written raised safetensors' own SafetensorError ("I/O error: No
    space left on device"), which `medseg train` showed as a traceback after the last epoch. Here a file size limit
    (EFBIG, which needs no full disk) refuses the weights as a full disk would."""
    import resource

    from medseg.errors import OutputWriteError
    from medseg.network import UNet2D, UNetConfig
    from medseg.package import save_package

    folder = make_package()
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    package = load_package(folder)
    net = UNet2D(UNetConfig(**{k: v for k, v in package.config["architecture"].items() if k != "type"}))
    config = {k: v for k, v in package.config.items() if k != "weights"}
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))  # Python ignores SIGXFSZ: the write fails with EFBIG
    try:
        with pytest.raises(OutputWriteError) as caught:
            save_package(net, config, folder, extra_files={"MODEL_CARD.md": "new card\n"})
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert str(caught.value) == f"{folder / 'weights.safetensors'}: cannot write (file too large)"
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # no temporary file left, nothing replaced


@pytest.mark.parametrize("text, kind", [("[]", "list"), ('"phantom"', "str"), ("null", "null"), ("3", "int")])
def test_a_config_that_is_not_an_object_is_named(make_package, text, kind):
    """A top-level list, string or null used to reach the schema check as a traceback (AttributeError)."""
    path = make_package()
    (path / "model.json").write_text(text)
    message = rf"model.json: a model config is a JSON object \({{...}}\), not {kind}$"
    with pytest.raises(ModelPackageError, match=message):
        load_package(path)


def test_a_deeply_nested_config_is_not_valid_json(make_package):
    path = make_package()
    (path / "model.json").write_text("[" * 100000 + "]" * 100000)
    with pytest.raises(ModelPackageError, match="model.json: not valid JSON"):
        load_package(path)


@pytest.mark.parametrize("unreadable", ["model.json", "weights.safetensors", "MODEL_CARD.md"])
def test_a_package_file_this_user_may_not_read_is_named_as_the_readers_name_one(make_package, tmp_path, unreadable,
                                                                                capsys):
    """A model.json or weights file without read permission was "cannot be read (Permission denied)", where the
    image readers say "cannot read (permission denied)"; a model card, in medseg models' warning, likewise."""
    import nibabel as nib
    import numpy as np
    from conftest import medseg_as_plain_user

    path = make_package()
    (path / "MODEL_CARD.md").write_text("# tiny\n")
    (path / unreadable).chmod(0)
    image = tmp_path / "x.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((24, 24, 4), np.float32), np.eye(4)), image)
    runs = [medseg_as_plain_user(["models", str(path)], capsys)]
    if unreadable != "MODEL_CARD.md":
        runs.append(medseg_as_plain_user(["infer", str(image), "--model", str(path), "-o", str(tmp_path / "out")],
                                         capsys))
    for run in runs:
        line = f"{path / unreadable}: cannot read (permission denied)"
        assert run.stderr.strip().splitlines() == ([f"warning: {line}"] if unreadable == "MODEL_CARD.md" else
                                                   [f"medseg: error: {line}"]), run.stderr
        assert run.returncode == (0 if unreadable == "MODEL_CARD.md" else 1)
    assert not (tmp_path / "out").exists()


def test_a_key_given_twice_in_model_json_is_refused(make_package):
    """json keeps the last of two equal keys in silence: a hand-edited config said one thing and did another."""
    path = make_package()
    text = (path / "model.json").read_text()
    (path / "model.json").write_text(text.replace('"name": "tiny"', '"name": "tiny", "name": "other"', 1))
    with pytest.raises(ModelPackageError, match="model.json: the key 'name' appears twice in one object"):
        load_package(path)


def test_an_empty_model_name_and_a_dangling_link_are_named(tmp_path):
    """``--model ""`` loaded the current folder (Path("") is "."); a link loop was "no such model folder"."""
    with pytest.raises(ModelPackageError, match=r"^an empty model name names no package: give a shipped model's name "
                                                r"\(hippocampus, phantom\) or a package folder$"):
        load_package("  ")
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    with pytest.raises(ModelPackageError, match=r"a: a symbolic link that leads to nothing \(or round in a loop\)"):
        load_package(tmp_path / "a")


def test_a_tile_unlike_the_training_patches_is_logged_once_and_warned_at_each_load(make_package, caplog):
    """Logged once in a process; told to a Python caller at each load, as its filters ask: a cache of medseg's own
    told it once in a process, and a notebook's cell run again under ``simplefilter("always")`` heard nothing."""
    import warnings

    from medseg.errors import MedsegWarning

    path = make_package()
    config = json.loads((path / "model.json").read_text())
    config["training"] = {"settings": {"patch_size": [48, 48]}}
    (path / "model.json").write_text(json.dumps(config))
    said = (f"{(path / 'model.json').resolve()}: inference.roi_size [32, 32] differs from the [48, 48] "
            "patches its network was trained on (training.settings.patch_size): the tiles it sees at "
            "inference are unlike its training ones, and Dice can fall far (0.91 to 0.74 on hippocampus "
            "planes); set roi_size to [48, 48]")
    with caplog.at_level("WARNING"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MedsegWarning)
        load_package(path)
        load_package(path)
    warned = [r.getMessage() for r in caplog.records if "differs from the" in r.getMessage()]
    assert warned == [said]
    assert [str(w.message) for w in caught] == [said, said]
    assert {w.filename for w in caught} == {__file__}
    with caplog.at_level("WARNING"):
        caplog.clear()
        load_package("hippocampus")
    assert not [r for r in caplog.records if "differs from the" in r.getMessage()]


def test_a_package_warning_held_and_raised_is_logged_at_the_next_load(make_package, caplog):
    """A tile warning an "error" filter raised once the held block ended was logged by nothing, yet marked logged:
    the next load, with the filter gone, wrote no log line of it in the whole process."""
    import warnings

    from medseg.caller_warnings import held_until_done
    from medseg.errors import MedsegWarning

    path = make_package()
    config = json.loads((path / "model.json").read_text())
    config["training"] = {"settings": {"patch_size": [40, 40]}}
    (path / "model.json").write_text(json.dumps(config))
    with caplog.at_level("WARNING"), pytest.raises(MedsegWarning, match="differs from the .40, 40. patches"):
        with warnings.catch_warnings(), held_until_done():
            warnings.simplefilter("error", MedsegWarning)
            load_package(path)
    assert not [r for r in caplog.records if "differs from the" in r.getMessage()]
    with caplog.at_level("WARNING"), pytest.warns(MedsegWarning, match="differs from the .40, 40. patches"):
        load_package(path)
    assert [r.getMessage().split(": ", 1)[0] for r in caplog.records if "differs from the" in r.getMessage()] == [
        str((path / "model.json").resolve())]


@pytest.mark.parametrize("settings", [{"patch_size": None}, "fast", {"patch_size": ["a", 2]}, {"patch_size": 40}])
def test_free_form_training_settings_do_not_break_loading(make_package, settings):
    path = make_package()
    config = json.loads((path / "model.json").read_text())
    config["training"] = {"settings": settings}
    (path / "model.json").write_text(json.dumps(config))
    assert load_package(path).name == "tiny"


@pytest.mark.parametrize("what", ["weights folder", "weights link", "weights gone", "config folder"])
def test_a_package_file_of_the_wrong_kind_is_named_as_such(tmp_path, what):
    """A folder or a dangling link in place of the weights read "weights file missing"; a folder in place of
    model.json "no model.json". Weights that are not there read "no such weights file", as a sample sheet, a results
    folder or a model that is not there read "no such ..." (it was "weights file missing")."""
    package = tmp_path / "pkg"
    shutil.copytree(load_package("phantom", check_hash=False).path, package)
    if what == "config folder":
        (package / "model.json").unlink()
        (package / "model.json").mkdir()
        message = f"{package / 'model.json'}: a folder, where a model package keeps its config file"
    else:
        weights = package / "weights.safetensors"
        weights.unlink()
        if what == "weights folder":
            weights.mkdir()
            message = f"{weights}: a folder, where the weights file should be"
        elif what == "weights gone":
            message = f"{weights}: no such weights file"
        else:
            weights.symlink_to(tmp_path / "moved.safetensors")
            message = (f"{weights}: no such weights file (a link to {tmp_path / 'moved.safetensors'} that leads "
                       "nowhere (its target moved or deleted, or a loop of links))")
    with pytest.raises(ModelPackageError) as caught:
        load_package(package)
    assert str(caught.value) == message


@pytest.mark.skipif(not hasattr(os, "mkfifo") or not Path("/dev/zero").exists(), reason="needs mkfifo and /dev/zero")
@pytest.mark.parametrize("name", ["weights.safetensors", "model.json"])
def test_a_package_file_that_is_not_a_regular_file_is_named_as_such(tmp_path, name):
    """A weights file or model.json that is a link to /dev/zero was "a link to /dev/zero that leads nowhere (its target
    moved or deleted …)", and one that is a named pipe "missing" (the config's: "not a model package (no
    model.json)")."""
    package = tmp_path / "pkg"
    shutil.copytree(load_package("phantom", check_hash=False).path, package)
    where = "where the weights file should be" if name.startswith("weights") else \
        "where a model package keeps its config file"
    (package / name).unlink()
    (package / name).symlink_to("/dev/zero")
    with pytest.raises(ModelPackageError) as caught:
        load_package(package)
    assert str(caught.value) == (f"{package / name}: a link to /dev/zero, not a regular file (a character device), "
                                 f"{where}")
    (package / name).unlink()
    os.mkfifo(package / name)
    with pytest.raises(ModelPackageError) as caught:
        load_package(package)  # not opened: a named pipe would wait for a writer
    assert str(caught.value) == f"{package / name}: not a regular file (a named pipe), {where}"


def test_a_model_json_with_a_byte_order_mark_loads(make_package):
    """Saved by Windows Notepad: "not valid JSON (Unexpected UTF-8 BOM …)"."""
    path = make_package()
    config = (path / "model.json").read_bytes()
    (path / "model.json").write_bytes(b"\xef\xbb\xbf" + config)
    assert load_package(path).name == "tiny"


def test_model_json_as_windows_tools_write_it_loads_or_is_named(make_package):
    """PowerShell's Get-FileHash writes the hash in capitals (refused as not a SHA-256); Windows PowerShell 5 saves
    UTF-16 ("not valid JSON ('utf-8' codec can't decode byte 0xff …)")."""
    path = make_package()
    config = json.loads((path / "model.json").read_text())
    sha = config["weights"]["sha256"]
    config["weights"]["sha256"] = sha.upper()
    (path / "model.json").write_text(json.dumps(config))
    package = load_package(path)
    assert package.sha256 == sha
    assert package.config_sha256 == hashlib.sha256((path / "model.json").read_bytes()).hexdigest()
    for encoding, named in (("utf-16", "UTF-16"), ("utf-32", "UTF-32"), ("utf-16-le", "UTF-16 or UTF-32")):
        (path / "model.json").write_text(json.dumps(config), encoding=encoding)  # utf-16-le: no byte order mark
        with pytest.raises(ModelPackageError) as info:
            load_package(path)
        assert str(info.value) == f"{path / 'model.json'}: saved as {named}; save it as UTF-8"


def _edits_told(path, caplog) -> list[str]:
    """What loading ``path`` tells of a model.json edited since training: its log lines, which are also the
    MedsegWarnings given to the caller (asserted)."""
    import warnings

    from medseg.errors import MedsegWarning

    caplog.clear()
    with caplog.at_level("WARNING", logger="medseg"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MedsegWarning)
        load_package(path)
    logged = [r.getMessage() for r in caplog.records if "trained with" in r.getMessage()]
    assert [str(w.message) for w in caught if issubclass(w.category, MedsegWarning)] == logged
    return logged


def test_a_model_json_edited_since_training_is_warned_about(make_package, caplog):
    """Label names swapped, or another voxel size, by hand in model.json: the same weights then made other labels
    (the anterior Dice reported as the posterior's) or fell from 0.99 to 0.8 Dice, without a word."""
    from medseg.package_training import trained_with

    path = make_package()
    config = json.loads((path / "model.json").read_text())
    config["training"] = {"trained_with": trained_with(config)}  # as medseg train records it

    def loaded_with(**edits) -> list[str]:
        edited = json.loads(json.dumps(config))
        for key, value in edits.items():
            edited[key] = value
        (path / "model.json").write_text(json.dumps(edited))
        return _edits_told(path, caplog)

    assert loaded_with() == []
    labels = config["labels"]
    assert loaded_with(labels={**labels, "1": "liver"}) == []  # a new name: a rename, the card's word
    swapped = {**labels, "1": labels["2"], "2": labels["1"]}
    now, then = json.dumps(swapped, sort_keys=True), json.dumps({"labels": labels}, sort_keys=True)
    assert loaded_with(labels=swapped) == [
        f"{(path / 'model.json').resolve()}: labels {now} is not what its weights were trained with (trained: "
        f"{then}): they will make other segmentations than its validation figures describe; put it back, or train "
        "again with it"]
    # one label given another's name, beside a new one; the background's name given to label 1
    assert len(loaded_with(labels={**labels, "1": labels["2"], "2": "tumour"})) == 1
    assert len(loaded_with(labels={**labels, "0": "bg", "1": labels["0"]})) == 1
    spaced = {**config["preprocessing"], "spacing_mm": [3.0, 3.0, 3.0]}
    warned = loaded_with(preprocessing=spaced)
    assert len(warned) == 1
    assert f"preprocessing {json.dumps(spaced, sort_keys=True)} is not what its weights were trained" in warned[0]
    del config["training"]  # a package not written by medseg train: nothing to compare with
    assert loaded_with(labels=swapped) == []


def test_modalities_reordered_in_model_json_since_training_are_warned_about(make_package, caplog):
    """A multi-modal package whose model.json had its modalities swapped by hand (["T2", "T1"] for ["T1", "T2"])
    loaded without a word, though the network takes channel 0 as T1 still: its users then stacked T2 first, and the
    segmentations fell apart. A swap (a name another channel was trained with) is told, as swapped labels are; a
    rename to new names is not."""
    from medseg.package_training import trained_with

    path = make_package(modalities=["T1", "T2"], architecture={
        "type": "unet2d", "in_channels": 2, "n_classes": 4, "base_width": 4, "depth": 2, "dropout": 0.0,
        "norm": "batch"})
    config = json.loads((path / "model.json").read_text())
    config["training"] = {"trained_with": trained_with(config)}  # as medseg train records it
    assert config["training"]["trained_with"]["modalities"] == ["T1", "T2"]

    def loaded_with(modalities) -> list[str]:
        (path / "model.json").write_text(json.dumps({**config, "modalities": modalities}))
        return _edits_told(path, caplog)

    assert loaded_with(["T1", "T2"]) == [] and loaded_with(["T1w", "T2w"]) == []
    assert loaded_with(["T2", "T1"]) == [
        f'{(path / "model.json").resolve()}: modalities ["T2", "T1"] is not what its weights were trained with '
        '(trained: {"modalities": ["T1", "T2"]}): they will make other segmentations than its validation figures '
        "describe; put it back, or train again with it"]
    assert len(loaded_with(["FLAIR", "T1"])) == 1  # channel 1's name given to channel 0


def test_defaults_written_out_in_model_json_are_not_told_as_edits(make_package, caplog):
    """Writing out a default (``"nonzero": false``, ``"orientation": null``, ``context_slices`` 0) or one slicing axis
    as a list changes nothing the weights see, yet was warned about as "not what its weights were trained with"."""
    from medseg.package_training import trained_with

    path = make_package()
    config = json.loads((path / "model.json").read_text())
    config["preprocessing"] = {"spacing_mm": [1.0, 1.0, 1.0], "intensity": {"kind": "zscore"}}
    config["inference"]["slice_axis"] = 2
    config["inference"].pop("context_slices", None)
    config["training"] = {"trained_with": trained_with(config)}

    def warned_with(preprocessing, inference) -> list[str]:
        edited = json.loads(json.dumps(config))
        edited["preprocessing"], edited["inference"] = preprocessing, {**edited["inference"], **inference}
        (path / "model.json").write_text(json.dumps(edited))
        return _edits_told(path, caplog)

    written_out = {"orientation": None, "spacing_mm": [1, 1, 1], "intensity": {"kind": "zscore", "nonzero": False}}
    assert warned_with(written_out, {"slice_axis": [2], "context_slices": 0}) == []
    # what the weights do see is still told
    assert len(warned_with({**written_out, "intensity": {"kind": "zscore", "nonzero": True}}, {})) == 1
    assert len(warned_with({**written_out, "orientation": "LPS"}, {})) == 1
    assert len(warned_with(written_out, {"slice_axis": [1]})) == 1


def test_the_package_load_benchmark_prints_its_figures(monkeypatch, capsys):
    """benchmarks/package_load.py on a small network: the lines and the ratio it prints."""
    import re

    from conftest import benchmark_main

    monkeypatch.setattr("sys.argv", ["package_load.py", "--width", "4", "--depth", "2", "--repeats", "1"])
    benchmark_main("package_load")()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "weights file: 0.00 GB (width 4, depth 2)"
    assert [line.split(":")[0] for line in lines[1:4]] == ["load, every check", "load, SHA-256 only",
                                                            "load, no file check"]
    assert re.fullmatch(r"value check: -?\d+\.\d\d s, -?\d+\.\d\d s per GB; load with it / without it: \d+\.\d\d",
                        lines[4])


def test_the_phantom_package_lists_the_images_its_set_script_writes(tmp_path, monkeypatch, phantom_package):
    """The shipped phantom model's training images by content: benchmarks/make_phantom_set.py writes them byte for
    byte again (phantoms 1000 and 1001 were trained on, 1002 held out), so `medseg infer` tells them apart."""
    import hashlib
    import sys

    from conftest import benchmark_main

    monkeypatch.setattr(sys, "argv", ["make_phantom_set.py", str(tmp_path), "--count", "3"])
    benchmark_main("make_phantom_set")()
    training = phantom_package.config["training"]
    listed = set(training["train_images_sha256"])
    assert len(listed) == training["train_cases"] == 34
    found = {seed: hashlib.sha256((tmp_path / "images" / f"phantom_{seed}.nii.gz").read_bytes()).hexdigest() in listed
             for seed in (1000, 1001, 1002)}
    assert found == {1000: True, 1001: True, 1002: False}
    assert "phantom_1002" in training["val_cases"]


def test_a_package_replaced_while_it_is_loaded_is_read_whole(make_package):
    """A training run replacing a package places its files one rename after another, holding the folder's
    exclusive lock (as every set is placed). A load that starts between the renames of the weights and of
    model.json waits for the set and reads the new package whole; it had read the old model.json with the new
    weights and refused them as a corrupt file."""
    import threading
    import time

    fcntl = pytest.importorskip("fcntl")
    old = make_package("tiny")
    new = make_package("wider", architecture={"type": "unet2d", "in_channels": 1, "n_classes": 4, "base_width": 8,
                                              "depth": 2, "dropout": 0.0, "norm": "batch"})
    new_sha = load_package(new).sha256
    assert new_sha != load_package(old).sha256
    loaded, failed = [], []

    def load():
        try:
            loaded.append(load_package(old))
        except ModelPackageError as error:
            failed.append(str(error))

    handle = os.open(old, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)  # the writer's lock while it places its set
        os.replace(new / "weights.safetensors", old / "weights.safetensors")
        reader = threading.Thread(target=load)
        reader.start()
        time.sleep(0.5)  # the load has begun, between the two renames
        os.replace(new / "model.json", old / "model.json")
    finally:
        os.close(handle)
    reader.join(timeout=30)
    assert not failed
    assert [package.sha256 for package in loaded] == [new_sha]
    assert loaded[0].config["architecture"]["base_width"] == 8
    os.replace(make_package("other") / "weights.safetensors", old / "weights.safetensors")  # once more, after it
    with pytest.raises(ModelPackageError, match="does not match .*; it changed since .* was loaded .*run again"):
        loaded[0].build_network("cpu")  # weights model.json as read does not record: said so, not called corrupt


@pytest.mark.parametrize("name", ["metrics_speed", "package_load", "train_step", "cohort_planning", "infer_speed"])
def test_a_benchmarks_help_says_what_it_measures_in_a_whole_sentence(name, monkeypatch, capsys):
    """``--help`` gives the script's first paragraph (three of them were cut off at the docstring's first line)."""
    from conftest import benchmark_main

    monkeypatch.setattr("sys.argv", [f"{name}.py", "--help"])
    main = benchmark_main(name)
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"]) if name == "cohort_planning" else main()
    assert exit_info.value.code == 0
    text = capsys.readouterr().out.split("\n\n")[1]  # the usage, the description, the options
    assert " ".join(text.split()).endswith(".")


def test_a_card_is_written_as_utf8_whatever_the_locale(tmp_path):
    """The model card was written in the locale's encoding: under a C locale without UTF-8 mode (ASCII) a label
    named `Ellipsoïd` ended `medseg train` in a UnicodeEncodeError traceback, with no package written; under Windows'
    cp1252 a name outside it did, and one inside it was written in bytes `medseg models` read as `�`."""
    import subprocess
    import sys

    from conftest import tiny_config

    card = "# Model card: tiny\n\n- Labels: 0 background, 1 Ellipsoïd, 2 box, 3 tube → 1.5 µm³ – ≥ 0.9\n"
    script = f"""
import json, sys, torch
from medseg.network import UNet2D, UNetConfig
from medseg.package import save_package
config = json.loads(sys.argv[2])
net = UNet2D(UNetConfig(**{{k: v for k, v in config["architecture"].items() if k != "type"}}))
save_package(net, config, sys.argv[1], extra_files={{"MODEL_CARD.md": {card!a}}})
"""
    config = tiny_config()
    config["labels"]["1"] = "Ellipsoïd"
    env = {**os.environ, "LC_ALL": "C", "PYTHONUTF8": "0", "PYTHONIOENCODING": "utf-8"}
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "tiny"), json.dumps(config)],
                          capture_output=True, text=True, env=env)
    assert (done.returncode, done.stderr) == (0, "")
    assert (tmp_path / "tiny" / "MODEL_CARD.md").read_bytes() == card.encode("utf-8")
    assert load_package(tmp_path / "tiny").labels[1] == "Ellipsoïd"


@pytest.mark.parametrize("content, said", [
    (b"", "empty, as a copy cut off before its data leaves it; copy the package again"),
    (b"\n  \n", "blank (white space only), as a copy cut off before its data leaves it; copy the package again"),
    (b"\0" * 794, "794 zero bytes and nothing else, as a copy cut off before its data leaves it; copy the package "
                  "again"),
])
def test_a_model_json_an_interrupted_copy_left_empty_or_zeroed_is_named_so(make_package, content, said):
    """A copy cut off (scp, a crash before the data reached the disk) leaves model.json empty or zero bytes: that
    read as "not valid JSON (Expecting value: line 1 column 1 (char 0))", and the zeros as "saved as UTF-16 or
    UTF-32; save it as UTF-8"."""
    path = make_package()
    (path / "model.json").write_bytes(content)
    with pytest.raises(ModelPackageError) as info:
        load_package(path)
    assert str(info.value) == f"{path / 'model.json'}: {said}"


@pytest.mark.parametrize("tail", [b"", b"\0" * 300, b"\n"])
def test_a_model_json_cut_short_is_named_so(make_package, tail):
    """A model.json cut off mid-object (then nothing, zero bytes or a line end) says that it ends early; JSON wrong
    elsewhere keeps its plain message."""
    path = make_package()
    text = (path / "model.json").read_bytes()
    (path / "model.json").write_bytes(text[:400] + tail)
    with pytest.raises(ModelPackageError) as info:
        load_package(path)
    kept = text[:400].rstrip()  # where the JSON ends: its last character's line and column
    line, column = kept.count(b"\n") + 1, len(kept) - (kept.rfind(b"\n") + 1)
    assert re.fullmatch(re.escape(f"{path / 'model.json'}: not valid JSON: cut short, it ends at line {line}, column "
                                  f"{column} ") + r"(inside a string|with \d brackets? unclosed)"
                        + re.escape("; zero bytes follow it" if tail.startswith(b"\0") else "")
                        + re.escape(" (an interrupted copy or save, or a closing bracket or quote missing)"),
                        str(info.value))
    (path / "model.json").write_bytes(b"{,}" + text)
    with pytest.raises(ModelPackageError) as info:
        load_package(path)
    assert str(info.value) == (f"{path / 'model.json'}: not valid JSON at line 1, column 2: a key in double quotes was "
                               "expected")


def test_an_archive_or_a_file_given_as_a_package_says_what_to_give(make_package, tmp_path):
    """A package downloaded as a zip or tarball and given as it came (--model pkg.zip), or a file of a package
    (--model pkg/model.json), said only "a model package is a folder holding model.json, not a file"."""
    import tarfile
    import zipfile

    path = make_package()
    with zipfile.ZipFile(tmp_path / "tiny.zip", "w") as archive:
        archive.write(path / "model.json", "tiny/model.json")
    with tarfile.open(tmp_path / "tiny-v2.tar.gz", "w:gz") as archive:
        archive.add(path, "tiny")
    shutil.copy(tmp_path / "tiny.zip", tmp_path / "download")  # a zip saved without its suffix
    (tmp_path / "scan.nii.gz").write_bytes(b"\x1f\x8b" + bytes(30))  # gzip, but no archive
    said = {
        "tiny.zip": f"a zip archive, not a model package folder; {tmp_path / 'tiny'}, beside it, holds one: give "
                    "that folder",
        "tiny-v2.tar.gz": "a tar.gz archive, not a model package folder: unpack it first and give the folder that "
                          "holds model.json",
        "download": "a zip archive, not a model package folder: unpack it first and give the folder that holds "
                    "model.json",
        "scan.nii.gz": "a model package is a folder holding model.json, not a file",
        "tiny/model.json": f"a file of the model package {path}; give that folder, not a file in it",
        "tiny/weights.safetensors": f"a file of the model package {path}; give that folder, not a file in it",
    }
    for given, message in said.items():
        with pytest.raises(ModelPackageError) as info:
            load_package(tmp_path / given)
        assert str(info.value) == f"{tmp_path / given}: {message}", given


def test_a_package_one_folder_deeper_or_in_an_archive_inside_is_named(make_package, tmp_path):
    """An archive unpacked into a folder of its own name (pkg/pkg/model.json, with a Mac's __MACOSX beside it), a
    folder of packages, or a folder holding the archive still packed: all said only "not a model package (no
    model.json)"."""
    import shutil as shell

    package = make_package()
    top = tmp_path / "download"
    (top / "__MACOSX" / "tiny").mkdir(parents=True)
    (top / "__MACOSX" / "tiny" / "model.json").write_bytes(b"\x00\x05\x16\x07")  # AppleDouble, not a package
    shell.copytree(package, top / "tiny")
    several = tmp_path / "models"
    for name in ("b", "a"):
        shell.copytree(package, several / name)
    packed = tmp_path / "packed"
    packed.mkdir()
    (packed / "tiny.tar.gz").write_bytes(b"\x1f\x8b")
    (tmp_path / "empty").mkdir()
    said = {top: f"; the package is one folder deeper: give {top / 'tiny'}",
            several: "; 2 of its folders hold packages (a, b): give one of them",
            packed: "; it holds tiny.tar.gz, an archive: unpack it and give the folder that holds model.json",
            tmp_path / "empty": ""}
    for given, end in said.items():
        with pytest.raises(ModelPackageError) as info:
            load_package(given)
        assert str(info.value) == f"{given}: not a model package (no model.json){end}"


@pytest.mark.parametrize("renamed", ["model (1).json", "Model.json", "model.json.txt"])
def test_a_config_file_under_another_name_is_named(make_package, renamed):
    """A browser's second download ("model (1).json"), a copy through a case-insensitive disk ("Model.json"),
    Notepad's "Save as" ("model.json.txt"): the package's config lay in its folder under another name, and loading
    said only "not a model package (no model.json)". The file is named, with the name it needs."""
    path = make_package()
    (path / "model.json").rename(path / renamed)
    with pytest.raises(ModelPackageError) as info:
        load_package(path)
    assert str(info.value) == (f"{path}: not a model package (no model.json); it holds {renamed!r}: renamed on the "
                               "way? rename it to 'model.json'")


def test_a_package_folder_spelt_otherwise_is_named(make_package, tmp_path, monkeypatch):
    """A package folder copied from a Mac keeps its accents decomposed (e and a combining accent), which a name
    typed on Linux does not match; one renamed in letter case neither: both said "no such model folder" alone."""
    import unicodedata

    path = make_package()
    mac = tmp_path / unicodedata.normalize("NFD", "Modèle")
    path.rename(mac)
    monkeypatch.chdir(tmp_path)
    for given, alike, how in ((unicodedata.normalize("NFC", "Modèle"), mac.name,
                               "in how an accent is composed, as one character or as a letter and its accent"),
                              (str(tmp_path / "MODÈLE"), str(mac), "in letter case and in how an accent is composed")):
        with pytest.raises(ModelPackageError) as info:
            load_package(given)
        assert str(info.value) == (f"{given}: no such model folder, but {alike} differs from it only {how}: give the "
                                   "name as spelt there (tab completion writes it so), or rename the folder")
    assert load_package(mac.name).name == "tiny"


def test_the_names_medseg_package_made_public_before_its_split_are_still_its_own():
    """medseg.package was split into package_config, package_labels, package_weights, package_training and
    model_package; the 31 names its __all__ held are still importable from it (21 were dropped, so code doing
    ``from medseg.package import CHECKPOINT_DIR`` raised ImportError), as the same objects the new modules hold."""
    import importlib

    import medseg.package

    before_split = {
        "medseg.package_config": ["CONFIG_NAME", "FORMAT", "MAX_CONFIG_BYTES", "DuplicateKeyError", "bottleneck_cells",
                                  "load_schema", "meant_error", "non_finite_setting", "read_config_bytes",
                                  "unique_keys", "validate_config", "whole_numbers"],
        "medseg.package_labels": ["codes_text"],
        "medseg.package_training": ["CHECKPOINT_DIR", "recorded_trained_with", "swapped_names", "trained_with",
                                    "unfinished_text", "unfinished_training"],
        "medseg.package_weights": ["recorded_weights_sha256", "state_mismatch"],
        "medseg.model_package": ["ModelPackage"],
        "medseg.package": ["DEFAULT_MODEL", "empty_model_name", "load_package", "model_choices", "save_package",
                           "shipped_models", "shipped_models_folder", "shipped_name_taken", "shipped_package_path"],
    }
    assert sum(map(len, before_split.values())) == 31
    for module_name, names in before_split.items():
        module = importlib.import_module(module_name)
        for name in names:
            assert name in medseg.package.__all__, name
            assert getattr(medseg.package, name, None) is getattr(module, name), name


def test_another_tools_json_named_like_model_json_is_not_taken_for_a_renamed_config(make_package, tmp_path):
    """A Hugging Face model folder given as the package holds ``model.safetensors.index.json``: its name matches a
    renamed ``model.json``, and loading told the user to rename that index to ``model.json``, which makes no
    package. Only a file holding a package's config is named; two copies of one ("model (1).json", "model (2).json")
    are both named, not passed over in silence."""
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": {}}))
    (folder / "model.onnx.json").write_text("not JSON")
    (folder / "config.json").write_text("{}")
    with pytest.raises(ModelPackageError) as info:
        load_package(folder)
    assert str(info.value) == f"{folder}: not a model package (no model.json)"
    path = make_package()
    (path / "model.json").rename(path / "model (1).json")
    shutil.copy(path / "model (1).json", path / "model (2).json")
    with pytest.raises(ModelPackageError) as info:
        load_package(path)
    assert str(info.value) == (f"{path}: not a model package (no model.json); it holds 'model (1).json', "
                               "'model (2).json': renamed on the way? rename the one meant to 'model.json'")
    (path / "model (2).json").unlink()
    (path / "model (1).json").rename(path / "model.json.txt")
    (path / "model.json.txt").write_bytes(b"\xef\xbb\xbf" + (path / "model.json.txt").read_bytes())  # Notepad's mark
    with pytest.raises(ModelPackageError) as info:
        load_package(path)
    assert str(info.value).endswith("; it holds 'model.json.txt': renamed on the way? rename it to 'model.json'")
