"""What the library only logged, a Python caller that configures no logging now hears too: a DICOM series passed
over, a file left out of training, a reference whose labels the dataset names otherwise, a prediction without a
reference. Each is a :class:`medseg.errors.MedsegWarning` placed at the caller's line, beside the same log line."""

import json
import logging
import warnings

import nibabel as nib
import numpy as np
import pytest
from dicom_factory import SHAPE, make_series, slice_positions

from medseg.errors import MedsegWarning


def _nifti(path, array, affine=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, np.eye(4) if affine is None else affine), str(path))
    return path


def test_a_broken_dicom_series_passed_over_is_warned_about(tmp_path, caplog):
    """A folder of two series, the one a slice short: the other is read, and the caller is told which and why."""
    from medseg.io.images import read_image

    make_series(tmp_path / "study", seed=7, series_number=4, description="thick recon")
    broken = slice_positions(SHAPE[2] + 1, 2.0)
    del broken[2]
    make_series(tmp_path / "study", seed=8, series_number=3, description="main", positions=broken, prefix="m")
    with pytest.warns(MedsegWarning) as caught, caplog.at_level(logging.WARNING, logger="medseg"):
        volume = read_image(tmp_path / "study")
    told = [str(w.message) for w in caught if issubclass(w.category, MedsegWarning)]
    assert len(told) == 1, told
    assert told[0].startswith(f"{tmp_path / 'study'}: using series 4 'thick recon' (CT, 6 images"), told
    assert "; 1 other image series could not be used: series 3 'main' (CT" in told[0] and "missing slices" in told[0]
    assert caught[0].filename == __file__  # the caller's line, not medseg's
    assert caplog.messages == told  # the log line the command shows, the same text
    assert volume.shape == SHAPE


def test_a_file_left_out_of_training_is_warned_about(tmp_path):
    from medseg.training_pairing import pair_cases

    images, labels = tmp_path / "imagesTr", tmp_path / "labelsTr"
    for name in ("a", "lonely"):
        _nifti(images / f"{name}.nii.gz", np.zeros((16, 16, 6), np.float32))
    _nifti(labels / "a.nii.gz", np.zeros((16, 16, 6), np.uint8))
    with pytest.warns(MedsegWarning) as caught:
        cases = pair_cases(images, labels, allow_unpaired=True)
    assert [case.case_id for case in cases] == ["a"]
    assert [str(w.message) for w in caught] == [
        f"{images}: left out 1 file without a counterpart of the same name: {images / 'lonely.nii.gz'}"]
    assert caught[0].filename == __file__


def test_scoring_warns_of_a_dataset_naming_labels_otherwise_and_of_a_prediction_without_reference(tmp_path):
    from medseg.folder_scoring import score_folder
    from medseg.package import load_package

    task = tmp_path / "Task09"
    labels = np.zeros((16, 16, 6), np.uint8)
    labels[4:10, 4:10, 1:4] = 1
    _nifti(task / "labelsTr" / "a.nii.gz", labels)
    (task / "dataset.json").write_text(json.dumps({"labels": {"0": "background", "1": "liver"}}))
    _nifti(tmp_path / "pred" / "a.nii.gz", labels)
    _nifti(tmp_path / "pred" / "b.nii.gz", labels)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MedsegWarning)
        result = score_folder(tmp_path / "pred", task / "labelsTr", out_dir=tmp_path / "out",
                              package=load_package("phantom"))
    told = [str(w.message) for w in caught if issubclass(w.category, MedsegWarning)]
    assert f"{tmp_path / 'pred'}: 1 prediction without a reference in {task / 'labelsTr'}, not scored: b.nii.gz" in told
    named = f"{task / 'dataset.json'} names labels 1 liver; the model phantom names them 1 ellipsoid"
    assert any(text.startswith(named) for text in told), told
    assert all(w.filename == __file__ for w in caught if issubclass(w.category, MedsegWarning))
    assert len(result.scored) == 1


def test_an_error_filter_stops_at_the_warning(tmp_path):
    """``simplefilter("error", MedsegWarning)``: a file left out of training stops the pairing, as a program asks."""
    from medseg.training_pairing import pair_cases

    images, labels = tmp_path / "imagesTr", tmp_path / "labelsTr"
    for name in ("a", "lonely"):
        _nifti(images / f"{name}.nii.gz", np.zeros((16, 16, 6), np.float32))
    _nifti(labels / "a.nii.gz", np.zeros((16, 16, 6), np.uint8))
    with warnings.catch_warnings():
        warnings.simplefilter("error", MedsegWarning)
        with pytest.raises(MedsegWarning, match="left out 1 file without a counterpart"):
            pair_cases(images, labels, allow_unpaired=True)


def test_score_folder_takes_a_model_name_as_score_prediction_does(tmp_path):
    """``score_folder(..., package="phantom")``, as ``score_prediction`` takes it, failed deep in the scoring as
    "'str' object has no attribute 'config'"; another type is a ModelPackageError naming it."""
    from medseg.errors import ModelPackageError
    from medseg.folder_scoring import score_folder
    from medseg.metrics import metrics_rows

    labels = np.zeros((16, 16, 6), np.uint8)
    labels[4:10, 4:10, 1:4] = 1
    _nifti(tmp_path / "ref" / "a.nii.gz", labels)
    _nifti(tmp_path / "pred" / "a.nii.gz", labels)
    result = score_folder(tmp_path / "pred", tmp_path / "ref", out_dir=tmp_path / "out", package="phantom")
    ((case, path),) = result.scored
    record = json.loads(path.read_text())
    assert (case, [(row["name"], row["dice"]) for row in metrics_rows(record)][0]) == ("a", ("ellipsoid", 1.0))
    with pytest.raises(ModelPackageError, match=r"^an int given as the model package; give a shipped model's"):
        score_folder(tmp_path / "pred", tmp_path / "ref", out_dir=tmp_path / "out2", package=7)
    assert not (tmp_path / "out2").exists()


def test_a_warning_given_to_code_of_no_module_name_is_not_dropped():
    """Python drops in silence a warning placed in code whose ``__name__`` is None, as a Snakefile's: the cohort
    workflow's planning lost the dataset.json warning it had shown as a log line. It is placed further out."""
    from medseg.caller_warnings import warn

    code = compile("warn('x.nii.gz: told')", "Snakefile", "exec")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exec(code, {"__name__": None, "warn": warn})
    assert [(str(w.message), w.filename) for w in caught] == [("x.nii.gz: told", __file__)]


def test_a_package_folder_taken_for_the_shipped_model_of_its_name_is_warned_about(tmp_path, monkeypatch):
    """``Segmenter("phantom")`` in a folder holding a package folder named phantom (a model trained with
    ``-o phantom``) runs that one, not the shipped model: a notebook heard nothing of it."""
    import shutil

    from medseg.package import load_package

    shipped = load_package("phantom").path
    shutil.copytree(shipped, tmp_path / "phantom")
    monkeypatch.chdir(tmp_path)
    with pytest.warns(MedsegWarning) as caught:
        package = load_package("phantom")
    assert package.path.resolve() == (tmp_path / "phantom").resolve()
    assert [str(w.message) for w in caught] == [
        f"phantom: the package folder {tmp_path / 'phantom'}, not the shipped model of that name; give ./phantom to "
        "say so, or rename the folder"]
    assert caught[0].filename == __file__


def test_a_training_config_at_odds_with_itself_is_warned_about_before_training(tmp_path, tiny_set):
    """Patches smaller than the inference tile (planes padded otherwise at inference than in training): a log line a
    notebook never heard; as a MedsegWarning an "error" filter stops the run before its first step."""
    from training_factory import tiny_training_config

    from medseg.train import train
    from medseg.training_cases import load_cases, pair_cases

    config = tiny_training_config(patch_size=[24, 24])
    cases = load_cases(pair_cases(*tiny_set), config)
    with warnings.catch_warnings():
        warnings.simplefilter("error", MedsegWarning)
        with pytest.raises(MedsegWarning, match=r"^training patches \[24, 24\] differ from the inference tile "
                                                r"\[32, 32\]: planes smaller than the tile"):
            train(config, cases, tmp_path / "model")
    assert not (tmp_path / "model").exists(), sorted(p.name for p in (tmp_path / "model").iterdir())


def test_an_error_filter_on_a_warning_of_the_report_leaves_the_scores_folder_whole(tmp_path):
    """``score_folder`` warns of a case without an image only once its cases are scored: an "error" filter raised it
    there, and left the cases' metrics without the report, cohort.tsv and summary.json that name them. The report
    is made first; the warning is raised after it, as the caller's filter asks."""
    from medseg.folder_scoring import score_folder

    labels = np.zeros((16, 16, 6), np.uint8)
    labels[4:10, 4:10, 1:4] = 1
    for case in ("a", "b"):
        _nifti(tmp_path / "ref" / f"{case}.nii.gz", labels)
        _nifti(tmp_path / "pred" / f"{case}.nii.gz", labels)
    _nifti(tmp_path / "img" / "a_0000.nii.gz", labels.astype(np.float32))
    out = tmp_path / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("error", MedsegWarning)
        with pytest.raises(MedsegWarning, match=r"img: no image of 1 case \(b_0000 or b with a NIfTI ending\): b; its "
                                                r"overlay shows the labels alone$"):
            score_folder(tmp_path / "pred", tmp_path / "ref", out_dir=out, images_dir=tmp_path / "img",
                         package="phantom")
    assert sorted(p.name for p in out.iterdir()) == ["a_metrics.json", "b_metrics.json", "cohort.tsv", "report.html",
                                                     "summary.json"]
    assert json.loads((out / "summary.json").read_text())["cases"]["scored"] == 2


def test_an_error_filter_on_a_warning_of_earlier_results_leaves_the_scores_folder_whole(tmp_path):
    """An earlier run's result in the output folder is warned of after the cases are scored: raised there, the
    report of the scored cases was never made."""
    from medseg.folder_scoring import score_folder

    labels = np.zeros((16, 16, 6), np.uint8)
    labels[4:10, 4:10, 1:4] = 1
    _nifti(tmp_path / "ref" / "a.nii.gz", labels)
    _nifti(tmp_path / "pred" / "a.nii.gz", labels)
    out = tmp_path / "out"
    out.mkdir()
    (out / "old_failed.json").write_text("{}")
    with warnings.catch_warnings():
        warnings.simplefilter("error", MedsegWarning)
        with pytest.raises(MedsegWarning, match=r"1 result file not of these predictions \(an earlier run's\?\) is in "
                                                r"the report and its figures: old_failed.json"):
            score_folder(tmp_path / "pred", tmp_path / "ref", out_dir=out, package="phantom")
    assert {"a_metrics.json", "report.html", "cohort.tsv", "summary.json"} <= {p.name for p in out.iterdir()}


def _edited_prediction(tmp_path):
    """A prediction whose sidecar records another SHA-256 than the file's (edited since medseg infer wrote it), and
    its reference: scoring warns of it, and scores it as it is now."""
    labels = np.zeros((16, 16, 6), np.uint8)
    labels[4:10, 4:10, 1:4] = 1
    reference = _nifti(tmp_path / "ref" / "a.nii.gz", labels)
    prediction = _nifti(tmp_path / "pred" / "a_seg.nii.gz", labels)
    (tmp_path / "pred" / "a_seg.json").write_text(json.dumps({
        "schema": "medseg-segmentation/1", "case_id": "a", "segmentation": "a_seg.nii.gz",
        "segmentation_sha256": "0" * 64, "labels": {"0": "background", "1": "ball"},
        "model": {"name": "tiny-test", "weights_sha256": "ab" * 32}}))
    return prediction, reference


def test_a_case_failed_by_an_error_filter_is_recorded_as_not_scored(tmp_path):
    """Under ``simplefilter("error", MedsegWarning)`` a warning of one case fails that case: its failure record kept
    the warning's words, "it is scored as it is now", of a case that was not scored. It says what happened."""
    from medseg.folder_scoring import score_folder
    from medseg.scoring import score_prediction

    prediction, reference = _edited_prediction(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MedsegWarning)
        scored = score_prediction(prediction, reference, case_id="a")
    assert scored["labels"]["1"]["dice"] == 1.0
    assert [str(w.message) for w in caught] == [
        f"{prediction} was changed after medseg infer wrote it (its SHA-256 is not the one its sidecar a_seg.json "
        "records): it is scored as it is now, under the label names and model the sidecar gives"]
    said = (f"{prediction} was changed after medseg infer wrote it (its SHA-256 is not the one its sidecar a_seg.json "
            "records); not scored (MedsegWarning filtered into an error)")
    with warnings.catch_warnings():
        warnings.simplefilter("error", MedsegWarning)
        with pytest.raises(MedsegWarning) as raised:
            score_prediction(prediction, reference, case_id="a")
        result = score_folder(tmp_path / "pred", tmp_path / "ref", out_dir=tmp_path / "out")
    assert str(raised.value) == said
    failed = [(case, error) for case, error, _ in result.failed]
    assert (result.scored, failed) == ([], [("a", f"MedsegWarning: {said}")])
    record = json.loads((tmp_path / "out" / "a_failed.json").read_text())
    assert (record["error"], record["error_type"]) == (f"MedsegWarning: {said}", "MedsegWarning")
    assert not (tmp_path / "out" / "a_metrics.json").exists()


def test_a_case_without_its_overlay_under_an_error_filter_leaves_the_report_written(tmp_path):
    """``build_report`` warns of a case whose overlay cannot be drawn and goes on; an "error" filter raised the
    warning there, and the caller's whole report was never written. Like ``score_folder``'s, the report is made
    first, the case without its overlay and saying why, and the warning raised once it is written."""
    from report_cases import phantom, write_case_arrays

    from medseg.report.build import build_report

    image, labels, affine = phantom(0)
    folder = write_case_arrays(tmp_path / "results", "nan", image, labels, labels, affine)
    with_nan = labels.astype(np.float32)
    with_nan[0, 0, 0] = np.nan
    nib.save(nib.Nifti1Image(with_nan, affine), folder / "nan_seg.nii.gz")
    out = tmp_path / "report"
    out.mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("error", MedsegWarning)
        with pytest.raises(MedsegWarning, match=r"^nan: no overlay \(.*nan_seg\.nii\.gz: the image contains NaN or "
                                                r"infinite voxels \(1 NaN; the first at voxel index \(0, 0, 0\)\)\)$"):
            build_report(tmp_path / "results", out / "r.html")
    assert sorted(p.name for p in out.iterdir()) == ["cohort.tsv", "r.html", "summary.json"]
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["cases"]["total"], summary["settings"]["overlays_drawn"]) == (1, 0)
    assert "no overlay: " in (out / "r.html").read_text()


def test_a_warning_of_the_pairing_under_an_error_filter_stops_before_anything_is_scored(tmp_path):
    """The pairing's warnings (a prediction without a reference) are given before any case is scored: raised by an
    "error" filter, nothing is written, as MedsegWarning's docstring and docs/python-api.md say (they said every
    warning of ``score_folder`` was raised once the report was written)."""
    from medseg.folder_scoring import score_folder

    labels = np.zeros((8, 8, 4), np.uint8)
    labels[2:5, 2:5, 1:3] = 1
    for name in ("pred/a.nii.gz", "pred/b.nii.gz", "ref/a.nii.gz"):
        _nifti(tmp_path / name, labels)
    with warnings.catch_warnings():
        warnings.simplefilter("error", MedsegWarning)
        with pytest.raises(MedsegWarning, match=r"^.*pred: 1 prediction without a reference in .*ref, not scored: "
                                                r"b\.nii\.gz$"):
            score_folder(tmp_path / "pred", tmp_path / "ref", out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("keep", ["both", "log lines", "warnings"])
def test_a_configured_program_keeps_one_of_the_two_as_docs_python_api_says(tmp_path, keep):
    """A program with a handler of its own (``logging.basicConfig()``) hears a routed warning twice, as its log line
    and as Python's warning; docs/python-api.md's two ways keep one: an "ignore" filter of the category (the log line
    alone, as the command does), or a handler filter on the records marked ``medseg_warning`` (the warning alone)."""
    import io

    from conftest import no_logging_configured

    from medseg.scoring import score_prediction

    labels = np.zeros((8, 8, 4), np.uint8)
    labels[2:5, 2:5, 1:3] = 1
    prediction = _nifti(tmp_path / "pred" / "sub-01.nii.gz", labels)
    reference = _nifti(tmp_path / "ref" / "sub-02.nii.gz", labels)
    stream = io.StringIO()
    with no_logging_configured(), warnings.catch_warnings(record=True) as told:
        warnings.simplefilter("ignore" if keep == "log lines" else "always", MedsegWarning)
        handler = logging.StreamHandler(stream)
        if keep == "warnings":
            handler.addFilter(lambda record: not hasattr(record, "medseg_warning"))
        logging.getLogger().addHandler(handler)
        score_prediction(prediction, reference, "sub-01")
    said = f"{reference}, the reference given for {prediction}: named for another case"
    logged = [line for line in stream.getvalue().splitlines() if line.startswith(said)]
    warned = [str(w.message) for w in told if issubclass(w.category, MedsegWarning)]
    assert (len(logged), len(warned)) == {"both": (1, 1), "log lines": (1, 0), "warnings": (0, 1)}[keep]
    assert all(text.startswith(said) for text in warned)
