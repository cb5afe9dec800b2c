"""Scoring a prediction (medseg.scoring): with what its sidecar says of how it was made, and two label files on one
grid (evaluate_files)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import warnings

import nibabel as nib
import numpy as np
import pytest
from conftest import _files, run_cli
from metric_cases import HIPPO_LABELS, independent_metrics

from medseg.errors import GeometryError, InputError, MedsegWarning, ModelMismatchError
from medseg.io.label_images import read_reference
from medseg.scoring import MadeBy, check_made_by, evaluate_files, prediction_sidecar, read_made_by, score_prediction
from medseg.synthetic import make_phantom, write_phantom

run = run_cli  # medseg ARGS in this process: (exit code, stdout, stderr)

SHAPE = (40, 40, 12)


@pytest.fixture
def pair(tmp_path):
    """A 'prediction' (the phantom's own label, so Dice is 1) and its reference, with a sidecar as infer writes."""
    prediction, reference = tmp_path / "case_seg.nii.gz", tmp_path / "case_label.nii.gz"
    write_phantom(tmp_path / "case.nii.gz", reference, shape=SHAPE, seed=4)
    shutil.copyfile(reference, prediction)
    sidecar = {"labels": {"0": "background", "1": "ellipsoid", "2": "box", "3": "tube"},
               "model": {"name": "phantom", "path": "/somewhere/phantom", "weights_sha256": "ab" * 32},
               "segmentation": str(prediction), "segmentation_sha256": hashlib.sha256(prediction.read_bytes())
               .hexdigest()}
    prediction_sidecar(prediction).write_text(json.dumps(sidecar))
    return prediction, reference


def test_the_sidecar_is_named_after_the_prediction(tmp_path):
    assert prediction_sidecar(tmp_path / "x_seg.nii.gz") == tmp_path / "x_seg.json"
    assert prediction_sidecar(tmp_path / "x_seg.dcm") == tmp_path / "x_seg.json"


def test_the_sidecars_record_is_read(pair):
    prediction, _ = pair
    made_by = read_made_by(prediction_sidecar(prediction))
    assert made_by.model == "phantom" and made_by.model_path == "/somewhere/phantom"
    assert made_by.labels == {0: "background", 1: "ellipsoid", 2: "box", 3: "tube"}
    assert made_by.segmentation == str(prediction) and len(made_by.segmentation_sha256) == 64
    assert read_made_by(prediction.with_name("none.json")) is None


@pytest.mark.parametrize("text, why", [
    ("[]", "holds a JSON list, not an object"),
    ('{"labels": "ellipsoid"}', "its 'labels' is not an object"),
    ('{"labels": {"one": "ellipsoid"}}', "invalid literal"),
    ("{", "not valid JSON: cut short, it ends at line 1, column 1 with 1 bracket unclosed"),
    ("[" * 100000 + "]" * 100000, "JSON nested too deeply"),  # json's RecursionError was a traceback
])
def test_a_sidecar_that_cannot_be_read_is_named_with_why(tmp_path, text, why):
    sidecar = tmp_path / "case_seg.json"
    sidecar.write_text(text)
    with pytest.raises(InputError, match=rf"^{sidecar}: not a readable sidecar \(.*{why}"):
        read_made_by(sidecar)


@pytest.mark.parametrize("error, why", [
    (PermissionError(13, "Permission denied"), "permission denied"),
    (OSError(5, "Input/output error"), "input/output error"),
])
def test_a_sidecar_the_os_refuses_is_named_once_with_the_reason_in_lower_case(tmp_path, monkeypatch, error, why):
    """As every other message words an OS error: not "([Errno 13] Permission denied: '<the sidecar again>')"."""
    import medseg.scoring

    sidecar = tmp_path / "case_seg.json"
    sidecar.write_text("{}")
    error.filename = str(sidecar)

    def refuse(*args, **kwargs):
        raise error

    monkeypatch.setattr(medseg.scoring, "read_json_object", refuse)
    with pytest.raises(InputError) as raised:
        read_made_by(sidecar)
    assert str(raised.value) == f"{sidecar}: not a readable sidecar ({why})"


def test_a_package_other_than_the_one_that_made_the_prediction_is_refused(pair, phantom_package, caplog):
    prediction, _ = pair
    made_by = read_made_by(prediction_sidecar(prediction))
    other = MadeBy(sidecar=made_by.sidecar, model="mine", model_path="/models/mine", labels=made_by.labels)
    # a package of one's own is named by the folder the sidecar records: its name alone is not found elsewhere
    with pytest.raises(ModelMismatchError, match=r"made by model 'mine' .*not 'phantom'; pass --model /models/mine"):
        check_made_by(prediction, other, phantom_package, "--model phantom")
    relabelled = MadeBy(sidecar=made_by.sidecar, model="phantom", labels={0: "background", 1: "ellipsoid"})
    with pytest.raises(ModelMismatchError, match=r"made with labels 1 ellipsoid \(its sidecar says so\), but --model "
                                                 r"x has 1 ellipsoid, 2 box, 3 tube"):
        check_made_by(prediction, relabelled, phantom_package, "--model x")
    # other weights of the same model and labels: scored, with a warning; what background is called does not count
    same = MadeBy(sidecar=made_by.sidecar, model="phantom", weights_sha256="ab" * 32,
                  labels={**phantom_package.labels, 0: "bg"})
    with caplog.at_level(logging.WARNING, logger="medseg"), pytest.warns(MedsegWarning, match="made by other weights"):
        check_made_by(prediction, same, phantom_package, "--model phantom")
    assert "made by other weights of model phantom (sha256 abababababab…" in caplog.text
    with warnings.catch_warnings():  # raised by an "error" filter: the case is not scored, and its text says so
        warnings.simplefilter("error", MedsegWarning)
        with pytest.raises(MedsegWarning) as raised:
            check_made_by(prediction, same, phantom_package, "--model phantom")
    assert str(raised.value) == (f"{prediction} was made by other weights of model phantom (sha256 abababababab…, "
                                 f"--model has {phantom_package.sha256[:12]}…); not scored (MedsegWarning "
                                 "filtered into an error)")


def test_scores_take_the_sidecars_label_names(pair, caplog):
    prediction, reference = pair
    with caplog.at_level(logging.WARNING, logger="medseg"):
        metrics = score_prediction(prediction, reference, "case")
    assert {value: entry["name"] for value, entry in metrics["labels"].items()} == {
        "1": "ellipsoid", "2": "box", "3": "tube"}
    assert [entry["dice"] for entry in metrics["labels"].values()] == [1.0, 1.0, 1.0]
    assert caplog.text == ""


def test_an_edited_prediction_is_scored_as_it_is_with_a_warning(pair, caplog):
    prediction, reference = pair
    image = nib.load(prediction)
    data = np.asarray(image.dataobj).copy()
    data[data == 3] = 0  # the tube erased by hand
    nib.save(nib.Nifti1Image(data, image.affine, image.header), prediction)
    with caplog.at_level(logging.WARNING, logger="medseg"), pytest.warns(MedsegWarning, match="changed after medseg"):
        metrics = score_prediction(prediction, reference, "case")
    assert metrics["labels"]["3"]["dice"] == 0.0 and metrics["labels"]["1"]["dice"] == 1.0
    assert "case_seg.nii.gz was changed after medseg infer wrote it" in caplog.text


def test_an_unreadable_sidecar_is_a_warning_unless_it_is_required(pair, caplog):
    prediction, reference = pair
    sidecar = prediction_sidecar(prediction)
    sidecar.write_text("[]")
    with caplog.at_level(logging.WARNING, logger="medseg"), pytest.warns(MedsegWarning, match="not a readable sidecar"):
        metrics = score_prediction(prediction, reference, "case")
    assert {entry["name"] for entry in metrics["labels"].values()} == {"label_1", "label_2", "label_3"}
    assert f"{sidecar}: not a readable sidecar (holds a JSON list, not an object): its label names" in caplog.text
    with pytest.raises(InputError, match=rf"^{sidecar}: not a readable sidecar"):
        score_prediction(prediction, reference, "case", sidecar_required=True)
    sidecar.write_text("{}")
    with pytest.raises(InputError, match=rf"^{sidecar}: names no labels"):
        score_prediction(prediction, reference, "case", sidecar_required=True)
    sidecar.unlink()
    named = rf"^{sidecar}: no such file \(the sidecar that names the labels of case_seg.nii.gz\)$"  # was ": missing;"
    with pytest.raises(InputError, match=named):
        score_prediction(prediction, reference, "case", sidecar_required=True)


# the pair's sidecar records other weights than the shipped phantom's: warned of, which this test does not look at
@pytest.mark.filterwarnings("ignore:.* was made by other weights of model phantom:medseg.errors.MedsegWarning")
def test_labels_keyed_by_text_and_a_package_by_name_are_taken(pair):
    """Label dicts as JSON gives them (keys as text) were refused as "values [0, 1, 2, 3] are not among the model's
    labels [0, 1, 2, 3]"; a package named by its shipped name failed on an attribute."""
    from medseg.scoring import evaluate_files

    prediction, reference = pair
    metrics = evaluate_files(prediction, reference, {"0": "background", "1": "ellipsoid", "2": "box", "3": "tube"})
    assert [entry["name"] for entry in metrics["labels"].values()] == ["ellipsoid", "box", "tube"]
    metrics = score_prediction(prediction, reference, "case", package="phantom")
    assert [entry["dice"] for entry in metrics["labels"].values()] == [1.0, 1.0, 1.0]



# the pair's sidecar records other weights than the shipped phantom's: warned of, which this test does not look at
@pytest.mark.filterwarnings("ignore:.* was made by other weights of model phantom:medseg.errors.MedsegWarning")
def test_a_package_given_as_any_pathlike_is_loaded_and_anything_else_is_named(pair):
    """score_prediction took a name or folder only as text or a pathlib.Path: another os.PathLike (an os.DirEntry),
    or an int, failed on "'int' object has no attribute 'labels'"."""
    from pathlib import Path

    import medseg
    from medseg.errors import ModelPackageError

    class Where:  # an os.PathLike that is not a pathlib.Path
        def __fspath__(self):
            return str(Path(medseg.__file__).parent / "models" / "phantom")

    prediction, reference = pair
    metrics = score_prediction(prediction, reference, "case", package=Where())
    assert [entry["dice"] for entry in metrics["labels"].values()] == [1.0, 1.0, 1.0]
    for given, kind in ((3, "an int"), (b"phantom", "a bytes")):
        with pytest.raises(ModelPackageError) as raised:
            score_prediction(prediction, reference, "case", package=given)
        assert str(raised.value) == (f"{kind} given as the model package; give a shipped model's name, a package "
                                     "folder or a loaded medseg.package.ModelPackage")


def test_a_prediction_and_reference_given_the_wrong_way_round_are_warned_about(pair, caplog):
    """The same Dice, but the labels unnamed and the predicted and reference volumes exchanged, without a word."""
    prediction, reference = pair
    with caplog.at_level(logging.WARNING, logger="medseg"), pytest.warns(MedsegWarning, match="are they swapped"):
        metrics = score_prediction(reference, prediction, "case")
    assert [entry["dice"] for entry in metrics["labels"].values()] == [1.0, 1.0, 1.0]
    assert caplog.text.count("WARNING") == 1
    assert (f"{prediction}, given as the reference, is a segmentation medseg infer made (its sidecar case_seg.json "
            f"says so), and the prediction {reference} has none: are they swapped? The prediction comes first"
            in caplog.text)
    caplog.clear()
    other = prediction.with_name("other_seg.nii.gz")  # a sidecar that describes another file: no warning
    shutil.copyfile(prediction, other)
    shutil.copyfile(prediction_sidecar(prediction), prediction_sidecar(other))
    with caplog.at_level(logging.WARNING, logger="medseg"):
        score_prediction(reference, other, "case")
    assert caplog.text == ""


def test_a_prediction_whose_sidecar_cannot_be_read_is_not_called_swapped(pair, caplog):
    """Its unreadable sidecar is warned about; the warning that the two look swapped said the prediction had none."""
    prediction, reference = pair
    other = prediction.with_name("other_seg.nii.gz")
    shutil.copyfile(prediction, other)
    prediction_sidecar(other).write_text("{")
    with caplog.at_level(logging.WARNING, logger="medseg"), pytest.warns(MedsegWarning, match="not a readable sidecar"):
        metrics = score_prediction(other, prediction, "case")
    assert [entry["dice"] for entry in metrics["labels"].values()] == [1.0, 1.0, 1.0]
    assert caplog.text.count("WARNING") == 1
    assert "other_seg.json: not a readable sidecar" in caplog.text and "swapped" not in caplog.text


@pytest.mark.parametrize("reference_type", [np.uint8, np.float32])
def test_the_values_of_labels_nothing_names_are_found_once_a_file(tmp_path, monkeypatch, reference_type):
    """Without a sidecar, the labels to score are the values present: each file's were found as it was read, and
    again to make the labels (0.5 s a file at 512×512×300). The scores are the same."""
    import medseg.io.label_images as label_images
    import medseg.label_values as label_values_module
    from medseg.scoring import evaluate_files

    reference = np.zeros((20, 18, 6), np.uint8)
    reference[3:12, 4:10, 1:5] = 1
    reference[14:18, 12:16, 2:4] = 4
    prediction = np.roll(reference, 1, axis=0)
    affine = np.diag([0.7, 0.8, 2.5, 1.0])
    nib.save(nib.Nifti1Image(prediction, affine), tmp_path / "case_seg.nii.gz")
    nib.save(nib.Nifti1Image(reference.astype(reference_type), affine), tmp_path / "case.nii.gz")
    arrays = []
    real = label_values_module.label_values

    def counted(array):
        arrays.append(np.shape(array))
        return real(array)

    monkeypatch.setattr(label_values_module, "label_values", counted)
    monkeypatch.setattr(label_images, "label_values", counted)
    metrics = evaluate_files(tmp_path / "case_seg.nii.gz", tmp_path / "case.nii.gz")
    assert arrays == [(20, 18, 6)] * 2  # one look at each file
    labels = metrics["labels"]
    assert {value: entry["name"] for value, entry in labels.items()} == {"1": "label_1", "4": "label_4"}
    dice = 2 * np.sum((prediction == 1) & (reference == 1)) / (np.sum(prediction == 1) + np.sum(reference == 1))
    assert labels["1"]["dice"] == pytest.approx(dice) and labels["1"]["dice"] < 1
    assert labels["4"]["ref_volume_ml"] == pytest.approx(16 * 2 * 0.7 * 0.8 * 2.5 / 1000)


# ---------------------------------------------------------------- evaluate_files: two label files on one grid
@pytest.mark.shared_data
def test_evaluate_files_on_real_label_and_a_shifted_copy(shared_data, tmp_path):
    path = shared_data / "hippocampus" / "labels" / "hippocampus_006.nii.gz"
    image = nib.load(path)
    ref = np.asanyarray(image.dataobj)
    pred_path = tmp_path / "pred.nii.gz"
    nib.save(nib.Nifti1Image(np.roll(ref, 1, axis=0).astype(np.uint8), image.affine), pred_path)
    result = evaluate_files(pred_path, path, HIPPO_LABELS, case_id="h6")
    assert result["schema"] == "medseg-metrics/1"
    assert result["case_id"] == "h6"
    assert result["spacing_mm"] == [1.0, 1.0, 1.0]
    for value in (1, 2):
        expected = independent_metrics(np.roll(ref, 1, axis=0), ref, value, image.affine)
        assert result["labels"][str(value)]["dice"] == pytest.approx(expected["dice"], rel=1e-6)
        assert result["labels"][str(value)]["hd95_mm"] == pytest.approx(expected["hd95_mm"], rel=1e-6)


def test_evaluate_files_refuses_other_grid_and_bad_labels(tmp_path):
    ref = np.zeros((12, 12, 12), np.uint8)
    ref[3:7, 3:7, 3:7] = 1
    nib.save(nib.Nifti1Image(ref, np.eye(4)), tmp_path / "ref.nii.gz")
    nib.save(nib.Nifti1Image(ref, np.diag([1.0, 1.0, 1.5, 1.0])), tmp_path / "other.nii.gz")
    with pytest.raises(GeometryError, match="not scored"):
        evaluate_files(tmp_path / "other.nii.gz", tmp_path / "ref.nii.gz")
    nib.save(nib.Nifti1Image(ref * 7, np.eye(4)), tmp_path / "seven.nii.gz")
    with pytest.raises(InputError, match=r"label values \[7\] are not among the model's labels \[0, 1\], given as "
                                         "the prediction$"):
        evaluate_files(tmp_path / "seven.nii.gz", tmp_path / "ref.nii.gz", {0: "bg", 1: "x"})
    with pytest.raises(InputError, match=r"seven.nii.gz: label values \[7\] are not among the model's labels \[0, 1\], "
                                         "given as the reference$"):
        evaluate_files(tmp_path / "ref.nii.gz", tmp_path / "seven.nii.gz", {0: "bg", 1: "x"})
    nib.save(nib.Nifti1Image(ref * 0.5, np.eye(4)), tmp_path / "half.nii.gz")
    with pytest.raises(InputError, match="not a label image"):
        read_reference(tmp_path / "half.nii.gz")
    # the message says which role the file had (an image given as the reference read as a bare "not a label image")
    with pytest.raises(InputError, match=r"half.nii.gz: not a label image \(values must be non-negative integers; "
                                         r"it holds 0.5\), given as the reference$"):
        evaluate_files(tmp_path / "ref.nii.gz", tmp_path / "half.nii.gz")
    with pytest.raises(InputError, match=r"half.nii.gz: .*, given as the prediction$"):
        evaluate_files(tmp_path / "half.nii.gz", tmp_path / "ref.nii.gz")
    # the values that are no labels are named: a label map off by float noise is told apart from an image
    noisy = (ref + 1e-7 * (ref > 0)).astype(np.float64)
    noisy[0, 0, 0] = -3.0
    nib.save(nib.Nifti1Image(noisy, np.eye(4)), tmp_path / "noisy.nii.gz")
    with pytest.raises(InputError, match=r"noisy.nii.gz: not a label image \(values must be non-negative integers; "
                                         r"it holds -3, 1.0000001\), given as the reference$"):
        evaluate_files(tmp_path / "ref.nii.gz", tmp_path / "noisy.nii.gz")
    # a value 1e-12 off a whole number is shown in full, not as the whole number it is not
    nib.save(nib.Nifti1Image(ref + 1e-12 * (ref == 1), np.eye(4)), tmp_path / "near.nii.gz")
    with pytest.raises(InputError, match=r"it holds 1.000000000001\), given as the reference$"):
        evaluate_files(tmp_path / "ref.nii.gz", tmp_path / "near.nii.gz")
    nib.save(nib.Nifti1Image(np.arange(64, dtype=np.float64).reshape(4, 4, 4) / 3, np.eye(4)), tmp_path / "ramp.nii.gz")
    with pytest.raises(InputError, match=r"it holds 0.333333333, 0.666666667, 1.33333333 … \(42 values\)\)"):
        read_reference(tmp_path / "ramp.nii.gz")
    # default label names are the values present in either image
    result = evaluate_files(tmp_path / "seven.nii.gz", tmp_path / "ref.nii.gz")
    assert {k: v["name"] for k, v in result["labels"].items()} == {"1": "label_1", "7": "label_7"}
    assert result["labels"]["1"]["status"] == "empty_prediction"
    assert result["labels"]["7"]["status"] == "false_positive"


def test_a_reference_on_another_grid_says_nothing_is_written(tmp_path, case, make_package, capsys):
    """The case stops before inference; the message said "not scored", as if only the scoring were skipped."""
    image = nib.load(case)
    moved = image.affine.copy()
    moved[0, 3] += 0.5
    nib.save(nib.Nifti1Image((image.get_fdata() > 0.5).astype(np.uint8), moved), tmp_path / "ref.nii.gz")
    out_dir = tmp_path / "out"
    code, _, err = run(["infer", str(case), "-m", str(make_package()), "-o", str(out_dir), "--reference",
                        str(tmp_path / "ref.nii.gz")], capsys)
    assert code == 1
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"medseg: error: {tmp_path / 'ref.nii.gz'}: its affine places voxels up to 0.5 mm away "
                           f"from where {case}'s does")
    assert line.endswith("; nothing segmented or written")
    assert not out_dir.exists() or _files(out_dir) == []


def test_a_reference_of_another_shape_is_refused_from_its_header_unread(tmp_path, case, make_package, capsys,
                                                                        monkeypatch):
    """A reference declaring 1024³ voxels beside a small input was read whole (36 s, 2.5 GB) before its shape was
    compared; its header says enough."""
    import medseg.io.nifti as nifti

    shape = nib.load(case).shape
    # half a voxel off its lattice (a box on it reaching past the grid is read: its voxels there must all be 0)
    off = nib.load(case).affine @ np.array([[1, 0, 0, 0.5], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]])
    nib.save(nib.Nifti1Image(np.zeros((shape[0] + 1, *shape[1:]), np.uint8), off), tmp_path / "ref.nii.gz")
    read = []
    real_read_nifti = nifti.read_nifti
    monkeypatch.setattr(nifti, "read_nifti", lambda path, *a, **k: read.append(str(path)) or
                        real_read_nifti(path, *a, **k))
    out_dir = tmp_path / "out"
    code, _, err = run(["infer", str(case), "-m", str(make_package()), "-o", str(out_dir), "--reference",
                        str(tmp_path / "ref.nii.gz")], capsys)
    assert code == 1
    assert err.strip().splitlines()[-1] == (
        f"medseg: error: {tmp_path / 'ref.nii.gz'}: shape {(shape[0] + 1, *shape[1:])} differs from {case}'s "
        f"{tuple(shape)}: on its voxel lattice, but its first voxel at 0.5 along i (not a whole number of voxels); "
        "resample one onto the other's grid first; nothing segmented or written")
    assert str(tmp_path / "ref.nii.gz") not in read
    assert not out_dir.exists() or _files(out_dir) == []


def test_the_sidecar_records_the_references_sha256_as_the_metrics_do(tmp_path, case, make_package, capsys):
    """The sidecar of `infer --reference` named the reference's path only: its SHA-256, which the metrics beside it
    record, is the sidecar's too (as `input_sha256` is the input's), so the sidecar alone says what it was scored
    against."""
    import hashlib

    label = make_phantom((40, 40, 8), seed=11).labels.astype(np.uint8)
    nib.save(nib.Nifti1Image(label, np.diag([1.0, 1.0, 2.0, 1.0])), str(tmp_path / "case_label.nii.gz"))
    code, _, err = run(["infer", str(case), "--model", str(make_package()), "-o", str(tmp_path / "out"),
                        "--reference", str(tmp_path / "case_label.nii.gz")], capsys)
    assert code == 0, err
    sidecar = json.loads((tmp_path / "out" / "case_seg.json").read_text())
    metrics = json.loads((tmp_path / "out" / "case_metrics.json").read_text())
    expected = hashlib.sha256((tmp_path / "case_label.nii.gz").read_bytes()).hexdigest()
    assert (sidecar["reference"], sidecar["reference_sha256"], metrics["reference_sha256"]) == (
        str(tmp_path / "case_label.nii.gz"), expected, expected)


def test_a_reference_cropped_to_a_box_of_the_input_is_scored_as_the_uncropped_one(tmp_path, case, make_package,
                                                                                   capsys):
    """`infer --reference` with 3D Slicer's segmentation cropped to its segments (the input's lattice, the origin
    moved by whole voxels): zero-padded onto the input's grid, the same figures as the uncropped label's."""
    from medseg.metrics import metrics_json
    from medseg.scoring import evaluate_files

    label = make_phantom((40, 40, 8), seed=11).labels.astype(np.uint8)
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    moved = affine.copy()
    moved[:3, 3] = affine[:3, :3] @ (5, 6, 1)
    nib.save(nib.Nifti1Image(label, affine), str(tmp_path / "case_full.nii.gz"))
    assert label[:5].max() == label[36:].max() == 0 and label[:, :6].max() == label[:, 36:].max() == 0
    nib.save(nib.Nifti1Image(label[5:36, 6:36, 1:], moved), str(tmp_path / "case_label.seg.nii.gz"))
    code, _, err = run(["infer", str(case), "--model", str(make_package()), "-o", str(tmp_path / "out"),
                        "--reference", str(tmp_path / "case_label.seg.nii.gz")], capsys)
    assert code == 0, err
    metrics = json.loads((tmp_path / "out" / "case_metrics.json").read_text())
    assert metrics["reference_sub_box"] == {"shape": [31, 30, 7], "offset_voxels": [5, 6, 1]}
    sidecar = json.loads((tmp_path / "out" / "case_seg.json").read_text())
    assert sidecar["reference_sub_box"] == metrics["reference_sub_box"]
    assert {entry["status"] for entry in metrics["labels"].values()} != {"both_empty"}
    uncropped = json.loads(metrics_json(evaluate_files(tmp_path / "out" / "case_seg.nii.gz",
                                                       tmp_path / "case_full.nii.gz", {1: "x", 2: "y", 3: "z"})))
    assert [metrics["labels"][key]["dice"] for key in ("1", "2", "3")] == [
        uncropped["labels"][key]["dice"] for key in ("1", "2", "3")]
    assert [metrics["labels"][key]["hd95_mm"] for key in ("1", "2", "3")] == [
        uncropped["labels"][key]["hd95_mm"] for key in ("1", "2", "3")]
    code, _, err = run(["report", str(tmp_path / "out")], capsys)  # no geometry flag: the box is on the grid
    assert code == 0, err
    assert "geometry" not in json.loads((tmp_path / "out" / "summary.json").read_text())["flags"]


def test_a_reference_box_reaching_past_the_input_is_cropped_where_label_0_lies_there(tmp_path, case, make_package,
                                                                                      capsys):
    """`infer --reference` with a box of the input's lattice reaching 3 voxels past its last i: cropped to the grid
    where its voxels out there are all 0 (the figures of the label written on the grid); with labelled voxels out
    there, one line counting them, exit 1, nothing written."""
    from medseg.scoring import evaluate_files

    label = make_phantom((40, 40, 8), seed=11).labels.astype(np.uint8)
    assert label[36:].max() == 0
    box = np.zeros((38, 30, 7), np.uint8)  # voxels 5..42 along i, the last 3 past the grid
    box[:35] = label[5:40, 6:36, 1:]
    moved = np.diag([1.0, 1.0, 2.0, 1.0])
    moved[:3, 3] = moved[:3, :3] @ (5, 6, 1)
    nib.save(nib.Nifti1Image(box, moved), str(tmp_path / "case_label.nii.gz"))
    on_grid = np.zeros_like(label)
    on_grid[5:40, 6:36, 1:] = box[:35]
    nib.save(nib.Nifti1Image(on_grid, np.diag([1.0, 1.0, 2.0, 1.0])), str(tmp_path / "case_full.nii.gz"))
    package = str(make_package())
    code, _, err = run(["infer", str(case), "--model", package, "-o", str(tmp_path / "out"),
                        "--reference", str(tmp_path / "case_label.nii.gz")], capsys)
    assert code == 0, err
    metrics = json.loads((tmp_path / "out" / "case_metrics.json").read_text())
    assert metrics["reference_sub_box"] == {"shape": [38, 30, 7], "offset_voxels": [5, 6, 1],
                                            "voxels_outside_grid": 3 * 30 * 7}
    full = evaluate_files(tmp_path / "out" / "case_seg.nii.gz", tmp_path / "case_full.nii.gz", {1: "x", 2: "y", 3: "z"})
    assert [metrics["labels"][k]["dice"] for k in "123"] == [full["labels"][k]["dice"] for k in "123"]
    box[36:38, 10, 3] = 1  # 2 labelled voxels past the last i
    nib.save(nib.Nifti1Image(box, moved), str(tmp_path / "case_label.nii.gz"))
    code, _, err = run(["infer", str(case), "--model", package, "-o", str(tmp_path / "out2"),
                        "--reference", str(tmp_path / "case_label.nii.gz")], capsys)
    assert code == 1
    assert err.strip().splitlines()[-1] == (
        f"medseg: error: {tmp_path / 'case_label.nii.gz'}: shape (38, 30, 7) differs from {case}'s (40, 40, 8): on its "
        "voxel lattice, but extends 3 voxels beyond its last i, and 2 of its labelled voxels lie there, outside the "
        "grid; nothing segmented or written")
    assert not (tmp_path / "out2").exists() or _files(tmp_path / "out2") == []


@pytest.mark.parametrize("labels", [
    {"0": "background", "1": "Left Kidney", "2": "right_kidney", "3": "Spleen"},  # the Decathlon's value -> name
    {"background": 0, "left-kidney": 1, "Right Kidney": 2, "spleen": 3},  # nnU-Net v2's name -> value
])
def test_label_names_joined_otherwise_are_no_other_labelling_convention(tmp_path, caplog, labels):
    """``left_kidney`` against a dataset.json's ``Left Kidney`` or ``left-kidney`` names one structure, but was warned
    about as another labelling convention (check that the reference uses the model's label values); a value named as
    another structure still is."""
    from medseg.scoring import warn_if_dataset_names_differ

    (tmp_path / "Task09" / "labelsTr").mkdir(parents=True)
    reference = tmp_path / "Task09" / "labelsTr" / "case.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 2), np.uint8), np.eye(4)), reference)
    (tmp_path / "Task09" / "dataset.json").write_text(json.dumps({"labels": labels}))
    model = {0: "background", 1: "left_kidney", 2: "right kidney", 3: "spleen"}
    with caplog.at_level(logging.WARNING, logger="medseg"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MedsegWarning)
        warn_if_dataset_names_differ(reference, model, "the model kidneys")
        assert caplog.messages == []
        warn_if_dataset_names_differ(reference, {**model, 1: "liver"}, "the model liver")
    assert [str(w.message) for w in caught] == caplog.messages  # each told to a Python caller too
    first = next(name for name, value in labels.items() if value == 1) if "background" in labels else labels["1"]
    assert caplog.messages == [f"{tmp_path / 'Task09' / 'dataset.json'} names labels 1 {first}; the model liver names "
                               "them 1 liver: each label is scored by its value under the model's name; check that "
                               "the reference uses the model's label values"]


@pytest.mark.parametrize("labels, warned", [
    ({"background": 0, "Anterior": 1, "Posterior": 2, "ignore": 3}, None),  # nnU-Net's ignore label
    ({"0": "background", "1": "anterior", "2": "posterior", "3": "tail"}, None),  # a structure the model lacks
    ({"background": 0, "tail": 1, "anterior": 2, "posterior": 3}, "1 tail, 2 anterior, 3 posterior; the model "
     "hippocampus names them 1 anterior, 2 posterior, 3 no label"),
    ({"0": "background", "3": "anterior", "4": "posterior"}, "3 anterior, 4 posterior; the model hippocampus names "
     "them 3 no label, 4 no label"),  # the model's structures under other values
])
def test_a_label_only_the_dataset_json_names_is_another_convention_only_where_it_is_the_models(tmp_path, caplog,
                                                                                                 labels, warned):
    """nnU-Net's ``ignore`` label (or a structure the model does not segment) beside the model's own labels, under the
    model's values, was warned about as another labelling convention ("3 ignore; the model names them 3 no label:
    check that the reference uses the model's label values"); it is none. The model's structures under other values
    still are."""
    from medseg.scoring import warn_if_dataset_names_differ

    (tmp_path / "Dataset004_Hippocampus" / "labelsTr").mkdir(parents=True)
    reference = tmp_path / "Dataset004_Hippocampus" / "labelsTr" / "case.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 2), np.uint8), np.eye(4)), reference)
    (tmp_path / "Dataset004_Hippocampus" / "dataset.json").write_text(json.dumps({"labels": labels}))
    with caplog.at_level(logging.WARNING, logger="medseg"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MedsegWarning)
        warn_if_dataset_names_differ(reference, HIPPO_LABELS, "the model hippocampus")
    assert [str(w.message) for w in caught] == caplog.messages  # each told to a Python caller too
    assert caplog.messages == ([] if warned is None else [
        f"{tmp_path / 'Dataset004_Hippocampus' / 'dataset.json'} names labels {warned}: each label is scored by its "
        "value under the model's name; check that the reference uses the model's label values"])


def test_a_dataset_json_edited_since_its_warning_is_warned_about_again(tmp_path, caplog):
    """The files warned about were kept by path and labels, for the whole process (medseg.segment keeps one set): a
    notebook or service was never warned again once the dataset.json was edited, though it now says something else.
    The file's size and modification time are now part of what was warned about; the same file is still told once."""
    from medseg.scoring import warn_if_dataset_names_differ

    (tmp_path / "Task09" / "labelsTr").mkdir(parents=True)
    reference = tmp_path / "Task09" / "labelsTr" / "case.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 2), np.uint8), np.eye(4)), reference)
    names = tmp_path / "Task09" / "dataset.json"
    names.write_text(json.dumps({"labels": {"0": "background", "1": "liver", "2": "spleen"}}))
    warned: set = set()
    with caplog.at_level(logging.WARNING, logger="medseg"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MedsegWarning)
        for _ in range(2):  # a batch: once
            warn_if_dataset_names_differ(reference, HIPPO_LABELS, "the model hippocampus", warned=warned)
        assert len(caplog.messages) == 1 and caplog.messages[0].startswith(f"{names} names labels 1 liver, 2 spleen;")
        names.write_text(json.dumps({"labels": {"0": "background", "1": "kidney", "2": "spleen"}}))
        os.utime(names, ns=(names.stat().st_atime_ns, names.stat().st_mtime_ns + 10**9))  # a second later
        warn_if_dataset_names_differ(reference, HIPPO_LABELS, "the model hippocampus", warned=warned)
        warn_if_dataset_names_differ(reference, HIPPO_LABELS, "the model hippocampus", warned=warned)
    assert len(caplog.messages) == 2 and caplog.messages[1].startswith(f"{names} names labels 1 kidney, 2 spleen;")
    assert [str(w.message) for w in caught] == caplog.messages  # each told to a Python caller too


def test_a_made_by_of_another_type_is_named(pair):
    """``score_prediction(..., made_by=...)`` takes the sidecar's record (a MadeBy) or None; another value failed deep
    in the scoring on "'str' object has no attribute 'labels'"."""
    prediction, reference = pair
    with pytest.raises(InputError, match=r"^made_by: a str given; give a MadeBy \(read_made_by's\), or None for no "
                                         r"sidecar$"):
        score_prediction(prediction, reference, "case", made_by="case_seg.json")
    assert score_prediction(prediction, reference, "case", made_by=None)["labels"]["1"]["name"] == "label_1"


def test_a_dataset_json_whose_names_differ_fails_each_case_under_an_error_filter(tmp_path):
    """``warned`` keeps a batch from hearing of one dataset.json twice. It took the file in before the warning was
    given, so where an "error" filter raised it (``score_folder`` failing the case as not scored), the batch's next
    cases, under the same names, were scored in silence: one case of the folder failed, the others scored."""
    from medseg.scoring import warn_if_dataset_names_differ

    (tmp_path / "Task09" / "labelsTs").mkdir(parents=True)
    reference = tmp_path / "Task09" / "labelsTs" / "case.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 2), np.uint8), np.eye(4)), reference)
    names = tmp_path / "Task09" / "dataset.json"
    names.write_text(json.dumps({"labels": {"0": "background", "1": "liver", "2": "spleen"}}))
    said = (f"{names} names labels 1 liver, 2 spleen; the model hippocampus names them 1 anterior, 2 posterior: check "
            "that the reference uses the model's label values; not scored (MedsegWarning filtered into an error)")
    warned: set = set()
    with warnings.catch_warnings():
        warnings.simplefilter("error", MedsegWarning)
        for _ in range(2):  # each case of the batch, as score_folder scores them
            with pytest.raises(MedsegWarning) as raised:
                warn_if_dataset_names_differ(reference, HIPPO_LABELS, "the model hippocampus", warned=warned)
            assert str(raised.value) == said
    with warnings.catch_warnings(record=True) as caught:  # told at last: once for the batch, as before
        warnings.simplefilter("always", MedsegWarning)
        for _ in range(2):
            warn_if_dataset_names_differ(reference, HIPPO_LABELS, "the model hippocampus", warned=warned)
    assert len(caught) == 1 and str(caught[0].message).startswith(f"{names} names labels 1 liver, 2 spleen;")
