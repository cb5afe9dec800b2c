"""The cases training reads (medseg.training_cases): each read, checked on its image's grid (labels cropped to a box)
and brought into model space, the cases that cannot be trained on named in one run, the memory the set needs, and
the checks on which labels the training cases hold."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from training_factory import BAD, _bad_set, _case_holding, _write, run, tiny_training_config, weights

from medseg.errors import MedsegError, MedsegWarning, TrainingError
from medseg.package import load_package
from medseg.training_cases import load_cases, pair_cases


def test_gap_labels_are_named_in_one_warning_not_two_a_label(caplog):
    """Files labelled 1, 3, 7 trained as 0..7: the four gaps were warned about twice each (no training case, no
    validation case), eight lines; now one line names them all, and one more the labels in training but no
    validation case."""
    from medseg.training_cases import check_label_presence

    names = {1: "ellipsoid", 2: "unused_2", 3: "box", 4: "unused_4", 5: "unused_5", 6: "unused_6", 7: "tube"}
    config = {"labels": {"0": "background", **{str(k): v for k, v in names.items()}}}
    train_cases = [_case_holding("t0", 1, 3), _case_holding("t1", 3, 7)]
    with caplog.at_level("WARNING"), pytest.warns(MedsegWarning) as told:
        absent = check_label_presence(config, train_cases, [_case_holding("v0", 1)])
    assert [str(w.message) for w in told] == caplog.messages  # a Python caller hears each too
    assert absent == ([2, 4, 5, 6], [2, 3, 4, 5, 6, 7])
    assert [r.getMessage() for r in caplog.records] == [
        "labels 2 unused_2, 4 unused_4, 5 unused_5, 6 unused_6 are in no training case: the network cannot learn "
        "them (declared to keep the files' values? no need: a model's labels may skip values, so leave them out of "
        "the config and no output class is spent on them)",
        "labels 3 box, 7 tube are in training but in no validation case: their Dice counts only false positives (0 "
        "in a case where one is predicted, n/a where not)"]
    caplog.clear()
    # one gap, and one label in training only: each keeps its one-label line
    config["labels"] = {"0": "background", "1": "ellipsoid", "2": "unused_2", "3": "box"}
    with caplog.at_level("WARNING"), pytest.warns(MedsegWarning) as told:
        check_label_presence(config, [_case_holding("t0", 1, 3)], [_case_holding("v0", 1)])
    assert [str(w.message) for w in told] == caplog.messages
    assert [r.getMessage() for r in caplog.records] == [
        "label 2 'unused_2' appears in no training case: the network cannot learn it (declared to keep the files' "
        "values? no need: a model's labels may skip values, so leave it out of the config and no output class is "
        "spent on it)",
        "label 3 'box' appears in no validation case: its Dice counts only false positives (0 in a case where it is "
        "predicted, n/a where not)"]
    caplog.clear()
    # above every value the files hold: no gap, so no word on declaring it to keep the values
    with caplog.at_level("WARNING"), pytest.warns(MedsegWarning) as told:
        check_label_presence(config, [_case_holding("t0", 1)], [_case_holding("v0", 1)])
    assert [str(w.message) for w in told] == caplog.messages
    assert [r.getMessage() for r in caplog.records][0] == ("labels 2 unused_2, 3 box are in no training case: the "
                                                           "network cannot learn them")


def test_labels_are_checked_on_the_grid_as_scoring_checks_them(tmp_path):
    """Training compared affines entry by entry (1e-3): it refused a label stored in another voxel order (LPS vs RAS,
    as dcm2niix writes some series) that `medseg evaluate` and evaluate_model.py re-index and score, and one 0.002 mm
    off, while it took labels 0.02 mm off that scoring then refused. It now re-indexes and checks as scoring does."""
    images, labels = tmp_path / "images", tmp_path / "labels"
    image = np.random.default_rng(0).normal(size=(16, 16, 6)).astype(np.float32)
    label = np.zeros((16, 16, 6), np.uint8)
    label[4:8, 2:5, 1:4] = 1
    affine = np.diag([0.9, 1.1, 2.5, 1.0])
    affine[:3, 3] = [-7.0, 3.0, 11.0]
    images.mkdir()
    labels.mkdir()
    nib.save(nib.Nifti1Image(image, affine), str(images / "a.nii.gz"))
    flipped = affine.copy()  # the same voxel centres, stored with the first two axes reversed
    flipped[:3, 0] *= -1
    flipped[:3, 1] *= -1
    flipped[:3, 3] += affine[:3, 0] * 15 + affine[:3, 1] * 15
    nib.save(nib.Nifti1Image(label[::-1, ::-1].copy(), flipped), str(labels / "a.nii.gz"))
    shifted = affine.copy()
    shifted[0, 3] += 0.002
    nib.save(nib.Nifti1Image(image, affine), str(images / "b.nii.gz"))
    nib.save(nib.Nifti1Image(label, shifted), str(labels / "b.nii.gz"))
    config = tiny_training_config()  # RAS, as these grids are stored: model space is the image's voxel order
    loaded = {case.case_id: case for case in load_cases(pair_cases(images, labels), config)}
    for case in loaded.values():
        np.testing.assert_array_equal(case.label.numpy(), label)


def _cropped_labels(labels: Path, folder: Path, names: list[str], reversed_axis: str | None = None) -> Path:
    """A copy of the ``labels`` folder with the labels of ``names`` cropped to their foreground's box and a voxel more
    where the grid has room, the affine moved by whole voxels, as 3D Slicer saves a segmentation; the label of
    ``reversed_axis`` (a case name) also stored with its first axis reversed."""
    shutil.copytree(labels, folder)
    for name in names:
        stored = nib.load(folder / f"{name}.nii.gz")
        array = np.asarray(stored.dataobj)
        found = np.argwhere(array)
        start = np.maximum(found.min(axis=0) - 1, 0)
        stop = np.minimum(found.max(axis=0) + 2, array.shape)
        box = array[tuple(slice(a, b) for a, b in zip(start, stop))]
        affine = stored.affine.copy()
        affine[:3, 3] = (stored.affine @ [*start, 1])[:3]
        if name == reversed_axis:
            box = box[::-1]
            affine[:3, 3] += affine[:3, 0] * (box.shape[0] - 1)
            affine[:3, 0] *= -1
        assert box.shape != array.shape
        nib.save(nib.Nifti1Image(np.ascontiguousarray(box), affine), folder / f"{name}.nii.gz")
    return folder


def test_labels_cropped_to_a_box_of_their_images_grid_train_as_the_full_labels(tiny_set, tmp_path, capsys):
    """3D Slicer saves a segmentation cropped to its segments: scoring zero-pads such a box onto the image's grid, and
    training refused it as of another shape. It is now padded as scoring pads it, and trains the very same weights,
    scored the same on the validation cases' own grids; one line for all the padded cases, and the record names
    them. The default tile is sized from the images, not from the boxes."""
    from medseg.cli import main
    from medseg.train_config import default_tile
    from medseg.training_cases import padded_labels_text

    images, labels = tiny_set
    cropped = _cropped_labels(labels, tmp_path / "cropped", ["case0", "case2", "case3", "case5"],
                              reversed_axis="case3")
    config = tiny_training_config()
    config["preprocessing"]["spacing_mm"] = [1.2, 0.8, 2.1]  # validation then scores on the volumes' own grids
    run(config, images, labels, tmp_path / "full")
    run(config, images, cropped, tmp_path / "boxes")
    full, boxes = weights(tmp_path / "full"), weights(tmp_path / "boxes")
    assert full.keys() == boxes.keys() and all(torch.equal(full[k], boxes[k]) for k in full)
    record = load_package(tmp_path / "boxes").config["training"]
    expected = load_package(tmp_path / "full").config["training"]
    assert record["val_scored_on"] == "input grid" and record["val_dice"] == expected["val_dice"]
    assert record["labels_zero_padded"] == ["case0", "case2", "case3", "case5"]
    assert "labels_zero_padded" not in expected
    cases = load_cases(pair_cases(images, cropped), config)
    padded = {case.case_id: case for case in cases}
    for name in ("case0", "case3"):  # the box's first voxel on the image's grid, from the two affines
        box, image = nib.load(cropped / f"{name}.nii.gz"), nib.load(images / f"{name}.nii.gz")
        corners = np.array(np.meshgrid(*[[0, n - 1] for n in box.shape], [1], indexing="ij")).reshape(4, -1)
        first = np.rint(np.linalg.inv(image.affine) @ box.affine @ corners).min(axis=1)[:3]
        assert padded[name].label_box == {"shape": list(box.shape), "offset_voxels": first.astype(int).tolist()}
    assert padded["case1"].label_box is None
    for case in load_cases(pair_cases(images, labels), config):
        assert torch.equal(case.label, padded[case.case_id].label) and case.label.dtype == torch.uint8
    assert padded_labels_text(cases) == (
        "4 of 6 label images are boxes of their images' voxel grids (cropped, as 3D Slicer saves a segmentation), "
        "zero-padded onto them with background, nothing resampled: case0, case2, case3 … and 1 more")
    assert padded_labels_text(cases[:1]) == (
        "1 of 1 label image is a box of its image's voxel grid (cropped, as 3D Slicer saves a segmentation), "
        "zero-padded onto it with background, nothing resampled: case0")
    assert padded_labels_text(cases[1:2]) is None
    assert default_tile(pair_cases(images, cropped)) == default_tile(pair_cases(images, labels))
    path = tmp_path / "config.json"
    path.write_text(json.dumps(tiny_training_config(epochs=1)))
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--images", str(images), "--labels", str(cropped), "-c", str(path), "-o", str(tmp_path / "cli")])
    assert exit_info.value.code == 0
    told = [line for line in capsys.readouterr().err.splitlines() if "zero-padded" in line]
    assert told == [padded_labels_text(cases)]


def test_labels_cropped_to_boxes_are_logged_once_by_load_cases_and_told_once_by_the_cli(tiny_set, tmp_path,
                                                                                          capsys, caplog):
    """The one line telling of zero-padded label boxes was the CLI's own: a caller of ``load_cases`` (or of
    ``train`` after it) was told nothing. ``load_cases`` now logs it, at info level, once; ``medseg -v train``, which
    shows that record, does not echo it again."""
    from medseg.cli import main
    from medseg.training_cases import padded_labels_text

    images, labels = tiny_set
    cropped = _cropped_labels(labels, tmp_path / "cropped", ["case0", "case2"])
    config = tiny_training_config(epochs=1, steps_per_epoch=1)
    with caplog.at_level("INFO", logger="medseg.training_cases"):
        cases = load_cases(pair_cases(images, cropped), config)
    text = padded_labels_text(cases)
    assert text == ("2 of 6 label images are boxes of their images' voxel grids (cropped, as 3D Slicer saves a "
                    "segmentation), zero-padded onto them with background, nothing resampled: case0, case2")
    assert [r.getMessage() for r in caplog.records if r.name == "medseg.training_cases"] == [text]
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    capsys.readouterr()
    caplog.clear()
    with pytest.raises(SystemExit) as exit_info:  # -v: the logged line is shown, and not echoed besides
        main(["-v", "train", "--images", str(images), "--labels", str(cropped), "-c", str(path), "-o",
              str(tmp_path / "cli")])
    assert exit_info.value.code == 0
    assert [line for line in capsys.readouterr().err.splitlines() if "zero-padded" in line] == []
    assert [(r.levelname, r.getMessage()) for r in caplog.records if "zero-padded" in r.getMessage()] == [
        ("INFO", text)]


@pytest.mark.parametrize(("kind", "why"), [
    ("half a voxel off", "on its voxel lattice, but its first voxel at 2.5 along i (not a whole number of voxels)"),
    ("beyond the grid", "on its voxel lattice, but extends 2 voxels beyond its last k, and 12 of its labelled voxels "
                        "lie there, outside the grid"),
    ("other voxel sizes", None),
])
def test_a_label_that_is_no_box_of_its_images_grid_is_refused_in_the_words_of_scoring(tmp_path, kind, why):
    """A label of another shape that cannot be zero-padded onto its image's grid is refused as scoring refuses it
    (what differs, from where), with "not trained" for "not scored"."""
    from medseg.scoring import evaluate_files

    images, labels = tmp_path / "images", tmp_path / "labels"
    affine = np.diag([0.9, 1.1, 2.5, 1.0])
    affine[:3, 3] = [-7.0, 3.0, 11.0]
    image = np.random.default_rng(0).normal(size=(16, 16, 6)).astype(np.float32)
    label = np.zeros((16, 16, 6), np.uint8)
    label[4:8, 2:5, 1:4] = 1
    images.mkdir()
    labels.mkdir()
    nib.save(nib.Nifti1Image(image, affine), images / "a.nii.gz")
    nib.save(nib.Nifti1Image(label, affine), tmp_path / "on_grid.nii.gz")  # as a prediction, for scoring's words
    box, moved = label[2:10, 1:7, 1:5], affine.copy()
    moved[:3, 3] += affine[:3, :3] @ [2, 1, 1]
    if kind == "half a voxel off":
        moved[:3, 3] += affine[:3, 0] * 0.5
    elif kind == "beyond the grid":
        moved[:3, 3] += affine[:3, 2] * 3
    else:
        moved[2, 2] = 3.0
    nib.save(nib.Nifti1Image(box, moved), labels / "a.nii.gz")
    with pytest.raises(TrainingError) as info:
        load_cases(pair_cases(images, labels), tiny_training_config())
    sizes = "with voxels of (0.9, 1.1, 3) mm against (0.9, 1.1, 2.5) mm"
    head = f"{labels / 'a.nii.gz'}: shape (8, 6, 4) differs from {images / 'a.nii.gz'}'s (16, 16, 6)"
    resample = "" if kind == "beyond the grid" else "; resample one onto the other's grid first"
    assert str(info.value) == (f"{head}: {why}{resample}; not trained" if why else f"{head}, {sizes}; not trained")
    with pytest.raises(MedsegError) as scored:
        evaluate_files(tmp_path / "on_grid.nii.gz", labels / "a.nii.gz")
    assert str(scored.value) == str(info.value).replace(str(images / "a.nii.gz"), str(tmp_path / "on_grid.nii.gz")) \
        .replace("not trained", "not scored")


def test_a_label_box_reaching_past_its_images_grid_with_label_0_there_loads_as_the_label_on_the_grid(tmp_path):
    """A label that is a box of its image's lattice reaching 2 slices past the image's last k, label 0 in all of them,
    is cropped to the grid and zero-padded as scoring does: the very label tensor of the same labels written on the
    grid; the box (with the voxels cropped off) is what the package's record lists."""
    import torch

    from medseg.scoring import evaluate_files
    from medseg.training_cases import label_box_record, padded_labels_text

    images, labels, full = tmp_path / "images", tmp_path / "labels", tmp_path / "full"
    for folder in (images, labels, full):
        folder.mkdir()
    affine = np.diag([0.9, 1.1, 2.5, 1.0])
    affine[:3, 3] = [-7.0, 3.0, 11.0]
    nib.save(nib.Nifti1Image(np.random.default_rng(0).normal(size=(16, 16, 6)).astype(np.float32), affine),
             images / "a.nii.gz")
    box, moved = np.zeros((8, 6, 4), np.uint8), affine.copy()
    box[2:6, 1:4, 0:2] = 1  # its last 2 slices (past the image's grid) all 0
    moved[:3, 3] += affine[:3, :3] @ [2, 1, 4]
    nib.save(nib.Nifti1Image(box, moved), labels / "a.nii.gz")
    on_grid = np.zeros((16, 16, 6), np.uint8)
    on_grid[4:8, 2:5, 4:6] = 1
    nib.save(nib.Nifti1Image(on_grid, affine), full / "a.nii.gz")
    [cropped], [uncropped] = (load_cases(pair_cases(images, folder), tiny_training_config()) for folder in (labels,
                                                                                                             full))
    assert torch.equal(cropped.label, uncropped.label) and int(cropped.label.sum()) == 24
    assert cropped.label_box == {"shape": [8, 6, 4], "offset_voxels": [2, 1, 4], "voxels_outside_grid": 8 * 6 * 2}
    assert uncropped.label_box is None
    # padded onto the grid where the box does not reach, cropped where it reaches past: both said, both recorded
    assert cropped.label_padded_voxels == 16 * 16 * 6 - 8 * 6 * 2
    assert label_box_record([cropped, uncropped]) == {"labels_zero_padded": ["a"], "labels_cropped_to_grid": ["a"]}
    assert padded_labels_text([cropped]) == (
        "1 of 1 label image is a box of its image's voxel grid (cropped, as 3D Slicer saves a segmentation), "
        "zero-padded onto it with background, nothing resampled: a; 1 of 1 label image reaches past its image's "
        "voxel grid (its voxels out there all background), cropped to it, nothing resampled: a")
    assert evaluate_files(full / "a.nii.gz", labels / "a.nii.gz")["labels"]["1"]["dice"] == 1.0  # scoring agrees


def test_every_case_that_cannot_be_trained_on_is_named_in_one_run(tmp_path):
    """Only the first bad case was named: a user fixed one file per run, each run reading the volumes again."""
    images, labels, _ = _bad_set(tmp_path, "shape mismatch")
    image = np.random.default_rng(1).normal(size=(16, 16, 6)).astype(np.float32)
    label = np.zeros((16, 16, 6), np.uint8)
    label[2:5, 2:5, 1:3] = 7
    _write(images / "b.nii.gz", image)
    _write(labels / "b.nii.gz", label)
    _write(images / "c.nii.gz", image)
    _write(labels / "c.nii.gz", (label > 0).astype(np.uint8))
    with pytest.raises(MedsegError) as info:
        load_cases(pair_cases(images, labels), tiny_training_config())
    assert str(info.value) == (
        f"2 of 3 cases cannot be trained on: {labels / 'a.nii.gz'}: shape (16, 16, 7) differs from "
        f"{images / 'a.nii.gz'}'s (16, 16, 6): on its voxel lattice, but extends 1 voxel beyond its last k, and 4 of "
        f"its labelled voxels lie there, outside the grid; not trained; {labels / 'b.nii.gz'}: label values [7] are "
        "not declared in the config's labels [0, 1, 2, 3]")


def test_more_than_three_cases_that_cannot_be_trained_on_are_each_listed(tmp_path, caplog):
    """The error names three; the rest were "… (2 more)", seen only run after run. Each is now a warning line, and
    the error holds them all (``problems``). Through the library it said "all 5 are listed above", where a program
    that has not configured logging shows no line above it: it says where they are."""
    images, labels, _ = _bad_set(tmp_path, "shape mismatch")
    image = np.random.default_rng(1).normal(size=(16, 16, 6)).astype(np.float32)
    for name in "bcde":
        _write(images / f"{name}.nii.gz", image)
        _write(labels / f"{name}.nii.gz", np.ones((16, 16, 8), np.uint8))  # labelled past the image's last k
    with caplog.at_level("WARNING"), pytest.raises(MedsegError) as info:
        load_cases(pair_cases(images, labels), tiny_training_config())
    assert str(info.value).startswith("5 of 5 cases cannot be trained on: ")
    assert str(info.value).endswith("; … (2 more; all 5 are in this error's problems, and logged as warnings by "
                                    "the medseg.training_cases logger)")
    listed = [m for m in caplog.messages if "extends" in m and m.endswith("; not trained")]
    assert [m.split(":")[0] for m in listed] == [str(labels / f"{name}.nii.gz") for name in "abcde"]
    assert list(info.value.problems) == listed
    assert info.value.case_count == 5


def test_a_case_short_of_memory_stops_the_checks_at_once(tmp_path, monkeypatch):
    """Checking every case before naming the bad ones must not go on reading volumes once memory has run out."""
    import medseg.training_cases as training_cases
    from medseg.errors import InputError

    images, labels, _ = _bad_set(tmp_path, "shape mismatch")
    for name in ("b", "c"):
        shutil.copy(images / "a.nii.gz", images / f"{name}.nii.gz")
        shutil.copy(labels / "a.nii.gz", labels / f"{name}.nii.gz")
    calls = []

    def short_of_memory(case, *args):
        calls.append(case.case_id)
        try:
            raise MemoryError("no room")
        except MemoryError as error:
            raise InputError(f"{case.image_path}: preprocessing failed (MemoryError: no room)") from error

    monkeypatch.setattr(training_cases, "_load_case", short_of_memory)
    with pytest.raises(InputError, match="a.nii.gz: preprocessing failed"):
        load_cases(pair_cases(images, labels), tiny_training_config())
    assert calls == ["a"]


@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_inputs_fail_clearly(tmp_path, kind):
    images, labels, named = _bad_set(tmp_path, kind)
    with pytest.raises(MedsegError) as info:
        load_cases(pair_cases(images, labels), tiny_training_config())
    message = str(info.value)
    assert named in message and BAD[kind].format(labels=labels, images=images / "a.nii.gz") in message
    assert "\n" not in message


def test_mixed_case_extensions_are_read_from_the_file_given(tmp_path):
    """nibabel builds the file name it opens from the name's extension, lower-cased where its letters mix:
    case1.Nii.Gz was opened as case1.nii.Gz ("[Errno 2] No such file"), in training as in inference."""
    from medseg.io.images import read_grid
    from medseg.io.nifti import read_nifti
    from medseg.training_cases import label_values

    array = np.zeros((6, 7, 5), np.uint8)
    array[2:4, 2:5, 1:3], array[0, 0, 0] = 1, 2
    affine = np.diag([0.9, 1.1, 2.5, 1.0])
    for folder in ("images", "labels"):
        (tmp_path / folder).mkdir()
    names = ["a.Nii.Gz", "b.Nii", "c.nii.Gz", "d.NII", "e.nii.gz"]
    for name in names:
        for folder in ("images", "labels"):
            nib.save(nib.Nifti1Image(array, affine), tmp_path / folder / name.lower())
            (tmp_path / folder / name.lower()).rename(tmp_path / folder / name)
    for name in names:
        path = tmp_path / "labels" / name
        volume = read_nifti(path, labels=True)
        assert np.array_equal(volume.array, array) and np.allclose(volume.affine, affine)
        assert volume.source_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
        shape, grid_affine = read_grid(path)
        assert shape == (6, 7, 5) and np.allclose(grid_affine, affine)
    cases = pair_cases(tmp_path / "images", tmp_path / "labels")
    assert [case.case_id for case in cases] == ["a", "b", "c", "d", "e"]
    assert list(label_values(cases)) == [0, 1, 2]
    # a gzip file so named is still told to add .gz
    gz = tmp_path / "f.Nii"
    gz.write_bytes((tmp_path / "labels" / "a.Nii.Gz").read_bytes())
    with pytest.raises(MedsegError, match=rf"^{gz}: a gzip-compressed file named without .gz; name it f.Nii.gz$"):
        read_nifti(gz)


def test_a_set_that_cannot_fit_in_memory_is_refused_before_any_case_is_read(tiny_set, monkeypatch):
    """Each volume was checked alone against the machine's memory, but training holds every case: six volumes of
    3 GiB each on a 23 GiB machine read on for minutes. The headers now tell what the set will need, to the byte; a
    case too large even alone is left to its own check, which names it and its voxel size."""
    import copy

    import medseg.memory_guard as memory_guard
    import medseg.preprocess as preprocess
    from medseg.training_cases import load_cases, pair_cases

    config = tiny_training_config()
    one = load_cases(pair_cases(*tiny_set)[:1], config)[0]
    per_case = one.image.nbytes + one.label.nbytes  # what training holds of a case
    many = [copy.copy(case) for case in pair_cases(*tiny_set) * 4]  # 24 cases: together more than one resampling
    held = per_case * len(many)
    read = []
    real = preprocess.apply_transforms
    monkeypatch.setattr(preprocess, "apply_transforms", lambda *a, **k: read.append(1) or real(*a, **k))
    monkeypatch.setattr(memory_guard, "physical_memory", lambda: held - 1)
    with pytest.raises(TrainingError) as error:
        load_cases(many, config)
    assert str(error.value) == (f"{tiny_set[0]}: the {len(many)} cases would hold about {held / 2**30:.1f} GiB in "
                                f"model space, more than this machine's {(held - 1) / 2**30:.1f} GiB of memory; train "
                                "on fewer or smaller cases")
    assert read == []  # refused from the headers: no case read
    monkeypatch.setattr(memory_guard, "physical_memory", lambda: held)  # exactly enough: read on
    assert len(load_cases(many, config)) == len(many) and len(read) == len(many)


def test_a_training_set_over_the_cgroup_limit_is_warned_about(tiny_set, monkeypatch, caplog):
    """Within the machine's memory, over the process's cgroup limit: trained on (not refused), with a warning
    naming the limit's file."""
    import medseg.memory_guard as memory_guard
    from medseg.resources import CgroupLimit
    from medseg.training_cases import load_cases, pair_cases

    limit = Path("/sys/fs/cgroup/memory.max")
    monkeypatch.setattr(memory_guard, "cgroup_limit", lambda: CgroupLimit(2**20, limit))
    cases = pair_cases(*tiny_set)
    with caplog.at_level("WARNING", logger="medseg.preprocess"):
        assert len(load_cases(cases, tiny_training_config())) == len(cases)
    told = [m for m in caplog.messages if f"training on its {len(cases)} cases needs up to about " in m]
    assert len(told) == 1 and told[0].startswith(f"{tiny_set[0]}: ") and f"its cgroup allows ({limit})" in told[0]
    assert [m for m in caplog.messages if "cgroup" in m] == told  # once for the set, not once per case


def test_a_label_made_fractional_by_its_header_scaling_names_the_scaling(tmp_path):
    """A uint8 label whose header's scl_slope is 1.0000001 was refused for values 1.00000012, … without a word about
    the scaling (its stored voxels are whole): with -c (the cases read) and without (the label values found)."""
    from medseg.training_cases import label_values

    images, labels = tmp_path / "images", tmp_path / "labels"
    _write(images / "a.nii.gz", np.random.default_rng(0).normal(size=(16, 16, 6)).astype(np.float32))
    labels.mkdir()
    label = np.zeros((16, 16, 6), np.uint8)
    label[4:8, 4:8, 2:4], label[9:12, 9:12, 2:4] = 1, 2
    scaled = nib.Nifti1Image(label, np.eye(4))
    scaled.header["scl_slope"], scaled.header["scl_inter"] = 1.0000001, 0.0
    nib.save(scaled, labels / "a.nii.gz")
    note = (": the header's scl_slope 1.0000001 (scl_inter 0) scales the stored whole values; set slope 1 and "
            "intercept 0")
    with pytest.raises(TrainingError) as error:
        label_values(pair_cases(images, labels))
    assert str(error.value) == (f"{labels / 'a.nii.gz'}: label values must be whole non-negative numbers, found "
                                f"1.00000012, 2.00000024{note}")
    with pytest.raises(TrainingError) as error:
        load_cases(pair_cases(images, labels), tiny_training_config())
    assert str(error.value) == (f"{labels / 'a.nii.gz'}: label values are not whole numbers, found 1.00000012, "
                                f"2.00000024{note}")


def test_every_problem_of_a_case_is_named_in_one_run(tmp_path):
    """A label off its image's grid was named alone; its undeclared values showed only once its grid was fixed,
    one more run reading every volume again."""
    images, labels = tmp_path / "images", tmp_path / "labels"
    image = np.random.default_rng(1).normal(size=(16, 16, 6)).astype(np.float32)
    label = np.zeros((16, 16, 6), np.uint8)
    label[2:5, 2:5, 1:3] = 9
    _write(images / "a.nii.gz", image)
    labels.mkdir()
    nib.save(nib.Nifti1Image(label, np.diag([1.0, 1.0, 2.0, 1.0])), labels / "a.nii.gz")  # slices twice as thick
    _write(images / "b.nii.gz", image)
    _write(labels / "b.nii.gz", (label > 0).astype(np.uint8))
    with pytest.raises(TrainingError) as info:
        load_cases(pair_cases(images, labels), tiny_training_config())
    message = str(info.value)
    assert message.startswith(f"{labels / 'a.nii.gz'}: its affine places voxels up to 5 mm away from where "
                              f"{images / 'a.nii.gz'}'s does")
    assert message.endswith(f"; not trained; {labels / 'a.nii.gz'}: label values [9] are not declared in the "
                            "config's labels [0, 1, 2, 3]")
    assert "\n" not in message


def test_reading_the_cases_tells_its_progress_at_most_every_few_seconds(tiny_set, monkeypatch, caplog):
    """Reading 200 cases took half a minute under load before the first line of output."""
    import medseg.training_cases as training_cases

    images, labels = tiny_set
    clock = iter(range(0, 1000, 3))  # each look at the clock 3 s after the one before
    monkeypatch.setattr(training_cases, "_clock", lambda: float(next(clock)))
    with caplog.at_level("INFO", logger=training_cases.PROGRESS_LOGGER):
        load_cases(pair_cases(images, labels), tiny_training_config())
    told = [r.getMessage() for r in caplog.records if r.name == training_cases.PROGRESS_LOGGER]
    # started at 0 s; case 1 starts at 6 s, 6 s after the start (told; the next wait 10 s), case 5 at 18 s; done at 21
    assert told == ["reading 6 cases: 1 read (6 s)", "reading 6 cases: 5 read (18 s)", "read 6 cases in 21 s"]


def test_a_quick_read_of_the_cases_tells_nothing(tiny_set, caplog):
    """A bad case's error stays one line, and a small set's run is not told of seconds."""
    import medseg.training_cases as training_cases

    images, labels = tiny_set
    with caplog.at_level("INFO", logger=training_cases.PROGRESS_LOGGER):
        load_cases(pair_cases(images, labels), tiny_training_config())
    told = [r.getMessage() for r in caplog.records if r.name == training_cases.PROGRESS_LOGGER]
    assert told == []


def test_a_long_read_of_the_cases_tells_its_progress_less_often_as_it_goes(tiny_set, monkeypatch, caplog):
    """A line every 5 s made 333 lines of a 33-minute read (1000 cases at 2 s each, a slow machine's CT): the wait
    after each line doubles, from 5 s to at most a minute: 36 lines."""
    import medseg.training_cases as training_cases

    images, labels = tiny_set
    cases = pair_cases(images, labels)[:1] * 1000  # each read in 2 s (the clock), none read for real
    clock = iter(range(0, 10_000, 2))
    monkeypatch.setattr(training_cases, "_clock", lambda: float(next(clock)))
    monkeypatch.setattr(training_cases, "_load_case", lambda *args, **kwargs: None)
    with caplog.at_level("INFO", logger=training_cases.PROGRESS_LOGGER):
        load_cases(cases, tiny_training_config())
    told = [r.getMessage() for r in caplog.records if r.name == training_cases.PROGRESS_LOGGER]
    seconds = [int(line.rsplit("(", 1)[1].split(" ")[0]) for line in told[:-1]]
    # 6 s, then waits of 10, 20, 40 and 60 s: 6, 16, 36, 76, 136, 196, ... (the clock's 2 s steps)
    assert seconds[:6] == [6, 16, 36, 76, 136, 196]
    assert all(later - earlier == 60 for earlier, later in zip(seconds[4:], seconds[5:]))
    assert len(told) == 37 and told[-1] == "read 1000 cases in 2002 s"  # 36 lines, and the end


def test_a_label_larger_than_its_image_is_told_as_cropped_to_the_grid_not_as_zero_padded(tmp_path):
    """An image cropped after it was labelled (its last 2 slices cut off, the affine kept): the label, 2 slices longer
    on the same lattice and background there, trains as the label cut to the image's grid. Nothing of it is padded,
    so the line and the record say it was cropped to the grid, not zero-padded (a box of the grid, as 3D Slicer
    saves a segmentation), which is what they said."""
    from medseg.training_cases import label_box_record, padded_labels_text

    images, labels = tmp_path / "images", tmp_path / "labels"
    image = np.random.default_rng(0).normal(size=(16, 16, 8)).astype(np.float32)
    label = np.zeros((16, 16, 8), np.uint8)
    label[4:8, 4:8, 2:4] = 1
    for name in ("a", "b"):
        _write(images / f"{name}.nii.gz", image[:, :, :6] if name == "a" else image)
        _write(labels / f"{name}.nii.gz", label)
    cases = load_cases(pair_cases(images, labels), tiny_training_config())
    assert [case.label_box for case in cases] == [
        {"shape": [16, 16, 8], "offset_voxels": [0, 0, 0], "voxels_outside_grid": 16 * 16 * 2}, None]
    assert int(cases[0].label.sum()) == 32
    assert padded_labels_text(cases) == (
        "1 of 2 label images reaches past its image's voxel grid (its voxels out there all background), cropped to "
        "it, nothing resampled: a")
    assert label_box_record(cases) == {"labels_cropped_to_grid": ["a"]}
