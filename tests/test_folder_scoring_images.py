"""`medseg evaluate PRED_DIR REF_DIR -o OUT_DIR --images IMAGES_DIR`: each case's image (nnU-Net's
``case_0000.nii.gz``, or ``case.nii.gz``) is recorded in its metrics, so the report draws the labels over it; without
it, predictions of another tool (no sidecar) were drawn on a blank grid, "image not shown: unknown input"."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
from folder_cases import (
    folder_pairs,  # noqa: F401  (the folders fixture its tests take)
    labels,
    run,
    save,
)

from medseg.errors import MedsegWarning
from medseg.folder_scoring import score_folder


def _images(folders, tmp_path):
    pred, ref = folders
    images = tmp_path / "imagesTs"
    rng = np.random.default_rng(0)
    save(rng.normal(40, 20, (20, 20, 8)).astype(np.int16), images / "a_0000.nii.gz")  # nnU-Net's channel name
    save(rng.normal(40, 20, (20, 20, 8)).astype(np.int16), images / "b.nii.gz")
    predicted, reference = labels(1)
    save(predicted, pred / "d_seg.nii.gz")  # d has no image in the folder
    save(reference, ref / "d.nii.gz")
    return pred, ref, images


def _card(page: str, case: str) -> str:
    start = page.index(f'id="case-{case}"')
    end = page.find('<div class="case"', start)
    return page[start:end if end != -1 else len(page)]


def test_images_given_are_recorded_and_drawn_and_a_case_without_one_is_named(folders, tmp_path, caplog):
    pred, ref, images = _images(folders, tmp_path)
    out = tmp_path / "scores"
    with caplog.at_level(logging.WARNING, logger="medseg"):
        assert run(["evaluate", str(pred), str(ref), "-o", str(out), "--images", str(images)]) == 1  # c: other grid
    a = json.loads((out / "a_metrics.json").read_text())
    b = json.loads((out / "b_metrics.json").read_text())
    d = json.loads((out / "d_metrics.json").read_text())
    assert a["image"] == str((images / "a_0000.nii.gz").resolve())
    assert b["image"] == str((images / "b.nii.gz").resolve())
    assert "image" not in d
    assert [r.getMessage() for r in caplog.records if "image" in r.getMessage()] == [
        f"{images}: no image of 1 case (d_0000 or d with a NIfTI ending): d; its overlay shows the labels alone"]
    page = (out / "report.html").read_text()
    card_a = _card(page, "a")
    assert "slices of the input with the predicted labels and the reference" in card_a
    assert "image not shown" not in card_a
    assert f"input <code>{images.resolve() / 'a_0000.nii.gz'}</code>" in card_a
    card_d = _card(page, "d")
    assert "image not shown: unknown input" in card_d


def test_without_images_the_overlay_says_so_as_before(folders, tmp_path):
    pred, ref, _ = _images(folders, tmp_path)
    scores = score_folder(pred, ref, tmp_path / "scores")
    assert "image" not in json.loads((tmp_path / "scores" / "a_metrics.json").read_text())
    page = scores.report.html.read_text()
    assert "image not shown: unknown input" in _card(page, "a")


def test_images_with_one_pair_or_a_missing_folder_are_usage_errors(folders, tmp_path, capsys):
    pred, ref, images = _images(folders, tmp_path)
    assert run(["evaluate", str(pred / "a_seg.nii.gz"), str(ref / "a.nii.gz"), "--images", str(images)]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "medseg evaluate: error: --images is for two folders (each case's image, drawn under its labels in the "
        "report); for one pair, the report draws the image its sidecar records. Try 'medseg evaluate --help'.")
    assert run(["evaluate", str(pred), str(ref), "-o", str(tmp_path / "out"), "--images",
                str(tmp_path / "nowhere")]) == 2
    assert "nowhere' does not exist" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_failed_pairs_files_name_its_prediction_as_such_and_a_missed_case_no_empty_input(folders, tmp_path):
    """A folder's scoring records the prediction it was scoring as the failure's input: the page called it "input",
    which a reader takes for the scan, and gave a missed case an empty "input" box."""
    pred, ref = folders
    save(labels(0)[1], ref / "m.nii.gz")  # a reference without a prediction: missed
    with pytest.warns(MedsegWarning, match="1 reference without a prediction in "):
        scores = score_folder(pred, ref, tmp_path / "scores")
    page = scores.report.html.read_text()
    failed = page[page.index("<h2>Failed cases"):page.index("<h2>", page.index("<h2>Failed cases") + 4)]
    assert f"prediction <code>{pred / 'c_seg.nii.gz'}</code><br>reference <code>{ref / 'c.nii.gz'}</code>" in failed
    assert f'<td class="path">reference <code>{ref / "m.nii.gz"}</code></td>' in failed
    assert "input <code>" not in failed
    assert f"prediction <code>{pred / 'c_seg.nii.gz'}</code> · reference" in _card(page, "c")


def test_the_provenance_of_predictions_without_sidecars_says_so_not_that_none_was_segmented(folders, tmp_path):
    pred, ref = folders
    page = score_folder(pred, ref, tmp_path / "scores").report.html.read_text()
    provenance = page[page.index("<h2>Provenance"):]
    assert "No sidecar of medseg infer records how or when the cases were segmented (predictions of another " \
           "tool)." in provenance and "No case was segmented." not in provenance
    # the package versions' table had its head alone
    assert '<tr><th>package</th><th>versions used</th></tr><tr><td colspan="2" class="muted">no sidecar records ' \
           "them</td></tr>" in provenance


def test_a_folder_failure_record_says_its_input_is_the_prediction(folders, tmp_path):
    pred, ref = folders
    score_folder(pred, ref, tmp_path / "scores")
    record = json.loads((tmp_path / "scores" / "c_failed.json").read_text())
    assert record["input"] == record["prediction"] == str(pred / "c_seg.nii.gz")


def test_the_references_or_predictions_folder_as_images_is_a_usage_error(folders, tmp_path, capsys):
    """nnU-Net's labelsTs given for imagesTs: each case's label was recorded as its image and drawn as the grey scan
    under its own contours, with no warning and no flag."""
    pred, ref, _ = _images(folders, tmp_path)
    for folder, role in ((ref, "references"), (pred, "predictions")):
        out = tmp_path / f"out_{role}"
        assert run(["evaluate", str(pred), str(ref), "-o", str(out), "--images", str(folder)]) == 2
        assert capsys.readouterr().err.splitlines()[-1] == (
            f"medseg evaluate: error: {folder}: the {role} folder given as the images folder; give the folder of "
            "the cases' images (nnU-Net's imagesTs). Try 'medseg evaluate --help'.")
        assert not out.exists()


def test_an_image_that_is_a_link_loop_or_leads_nowhere_fails_no_case(folders, tmp_path, caplog):
    """A case whose image was a link loop failed its scoring ('RuntimeError: Symlink loop from …'), and one whose
    image led nowhere recorded the link's missing target and showed 'image not shown: unknown input'."""
    pred, ref, images = _images(folders, tmp_path)
    (images / "a_0000.nii.gz").unlink()
    (images / "a_0000.nii.gz").symlink_to("a_0000.nii.gz")  # a loop
    (images / "b.nii.gz").unlink()
    (images / "b.nii.gz").symlink_to(tmp_path / "moved" / "b.nii.gz")  # leads nowhere
    out = tmp_path / "scores"
    assert run(["evaluate", str(pred), str(ref), "-o", str(out), "--images", str(images)]) == 1  # c: other grid
    assert sorted(path.name for path in out.glob("*_failed.json")) == ["c_failed.json"]
    for case, name in (("a", "a_0000.nii.gz"), ("b", "b.nii.gz")):
        assert json.loads((out / f"{case}_metrics.json").read_text())["image"] == str(images / name)
        assert f"image not shown: {images / name} not found" in _card((out / "report.html").read_text(), case)


def test_a_sidecars_input_that_moved_is_drawn_from_the_image_given(tmp_path):
    """Predictions of `medseg infer` scored where their inputs now lie in an images folder (copied to another
    machine, or sorted into nnU-Net's imagesTs/): their sidecars name the input where it was, and the report drew
    them on a blank grid, 'image not shown: …/in/c1.nii.gz not found', over the image --images gave and the metrics
    recorded. The sidecar's input is drawn where it is found; else the image given."""
    import shutil

    from medseg.synthetic import make_phantom

    phantom = make_phantom((40, 40, 8), seed=11)
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    save(phantom.image, tmp_path / "in" / "c1.nii.gz", affine)
    save(phantom.labels, tmp_path / "ref" / "c1.nii.gz", affine)
    assert run(["infer", str(tmp_path / "in" / "c1.nii.gz"), "-m", "phantom", "--device", "cpu",
                "-o", str(tmp_path / "pred")]) == 0
    images = tmp_path / "imagesTs"
    images.mkdir()
    shutil.move(tmp_path / "in" / "c1.nii.gz", images / "c1.nii.gz")
    out = tmp_path / "scores"
    assert run(["evaluate", str(tmp_path / "pred"), str(tmp_path / "ref"), "-o", str(out), "--images",
                str(images)]) == 0
    assert json.loads((out / "c1_metrics.json").read_text())["image"] == str((images / "c1.nii.gz").resolve())
    card = _card((out / "report.html").read_text(), "c1")
    assert "image not shown" not in card
    assert "slices of the input with the predicted labels and the reference" in card
    assert "input image c1.nii.gz is not on the segmentation" not in card
