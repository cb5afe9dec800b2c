"""zstd-compressed NIfTI (``.nii.zst``), which nibabel reads where Python has zstd (``compression.zstd``, or the
``backports.zstd`` package that ``pip install pyzstd`` brings): a case read from one is segmented and scored exactly
as from its ``.nii.gz``, and folders of cases hold them as cases (they were left out as "not a .nii/.nii.gz file")."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from conftest import run_cli

from medseg.io.compression import zstd_available
from medseg.synthetic import make_phantom

pytestmark = pytest.mark.skipif(not zstd_available(), reason="no zstd for nibabel (Python 3.14's compression.zstd, "
                                                             "or backports.zstd: pip install pyzstd brings it)")
SHAPE = (32, 32, 12)


def _case(folder, name: str, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """The phantom's image as ``name``.nii.gz and ``name``.nii.zst, its labels as ``name``_label.nii.gz / .nii.zst
    (an oblique affine: the geometry must survive the reading)."""
    phantom = make_phantom(shape=SHAPE, seed=seed, oblique=True)
    for ending in (".nii.gz", ".nii.zst"):
        nib.save(nib.Nifti1Image(phantom.image.astype(np.float32), phantom.affine), folder / f"{name}{ending}")
        nib.save(nib.Nifti1Image(phantom.labels.astype(np.uint8), phantom.affine), folder / f"{name}_label{ending}")
    return phantom.image, phantom.affine


def test_a_zst_input_is_segmented_as_its_gz_and_named_as_it(tmp_path, make_package, capsys):
    _, affine = _case(tmp_path, "case")
    package = make_package()
    outputs = {}
    for ending in (".nii.gz", ".nii.zst"):
        out = tmp_path / ending.replace(".", "_")
        code, _, err = run_cli(["infer", str(tmp_path / f"case{ending}"), "-m", str(package), "-o", str(out),
                                "--device", "cpu", "--threads", "1"], capsys)
        assert code == 0, err
        assert sorted(p.name for p in out.iterdir()) == ["case_seg.json", "case_seg.nii.gz"]  # not case.nii_seg…
        outputs[ending] = nib.load(out / "case_seg.nii.gz")
        assert json.loads((out / "case_seg.json").read_text())["input"].endswith(f"case{ending}")
    gz, zst = outputs[".nii.gz"], outputs[".nii.zst"]
    assert zst.shape == gz.shape == SHAPE
    np.testing.assert_array_equal(zst.affine, nib.load(tmp_path / "case.nii.zst").affine)  # the input's, as stored
    np.testing.assert_allclose(zst.affine, affine, atol=1e-4)
    np.testing.assert_array_equal(zst.affine, gz.affine)
    np.testing.assert_array_equal(np.asarray(zst.dataobj), np.asarray(gz.dataobj))
    assert zst.get_data_dtype() == np.uint8


def test_a_zst_reference_scores_as_its_gz(tmp_path, capsys):
    _case(tmp_path, "case")
    prediction = tmp_path / "pred.nii.gz"
    labels = np.asarray(nib.load(tmp_path / "case_label.nii.gz").dataobj).copy()
    labels[tuple(np.argwhere(labels == 1)[::2].T)] = 0  # a prediction that misses half of label 1: Dice 2/3
    nib.save(nib.Nifti1Image(labels, nib.load(tmp_path / "case_label.nii.gz").affine), prediction)
    scores = {}
    for ending in (".nii.gz", ".nii.zst"):
        code, out, err = run_cli(["evaluate", str(prediction), str(tmp_path / f"case_label{ending}"), "--json"],
                                 capsys)
        assert code == 0, err
        scores[ending] = json.loads(out)
    assert scores[".nii.zst"]["labels"] == scores[".nii.gz"]["labels"]
    assert scores[".nii.zst"]["labels"]["1"]["dice"] == pytest.approx(2 / 3, abs=0.01)


def test_folders_of_zst_cases_are_paired(tmp_path, capsys):
    """`medseg evaluate PRED_DIR REF_DIR` and `medseg train --images --labels` list .nii.zst (and .nii.bz2) files as
    cases: they were left out ("no .nii/.nii.gz/.nrrd/.nhdr/.mha/.mhd file in it")."""
    from medseg.folder_scoring import pair_predictions
    from medseg.training_cases import pair_cases

    images, labels, predictions = tmp_path / "images", tmp_path / "labels", tmp_path / "pred"
    for folder in (images, labels, predictions):
        folder.mkdir()
    phantom = make_phantom(shape=SHAPE, seed=1, oblique=False)
    for case, ending in (("a", ".nii.zst"), ("b", ".nii.bz2")):
        nib.save(nib.Nifti1Image(phantom.image.astype(np.float32), phantom.affine), images / f"{case}{ending}")
        nib.save(nib.Nifti1Image(phantom.labels.astype(np.uint8), phantom.affine), labels / f"{case}{ending}")
        nib.save(nib.Nifti1Image(phantom.labels.astype(np.uint8), phantom.affine), predictions / f"{case}_seg.nii.gz")
    pairs = pair_predictions(predictions, labels)
    assert [(case, pred.name, ref.name) for case, pred, ref in pairs.pairs] == [
        ("a", "a_seg.nii.gz", "a.nii.zst"), ("b", "b_seg.nii.gz", "b.nii.bz2")]
    cases = pair_cases(images, labels)
    assert [(case.image_path.name, case.label_path.name) for case in cases] == [("a.nii.zst", "a.nii.zst"),
                                                                      ("b.nii.bz2", "b.nii.bz2")]
    code, _, err = run_cli(["evaluate", str(predictions), str(labels), "-o", str(tmp_path / "scores")], capsys)
    assert code == 0, err
    scored = json.loads((tmp_path / "scores" / "a_metrics.json").read_text())
    assert scored["reference"].endswith("a.nii.zst") and scored["labels"]["1"]["dice"] == 1.0


def test_cohort_planning_counts_a_zst_inputs_voxels(tmp_path):
    """Planning reads each input's grid from its header for the jobs' memory: a .nii.zst counted none (its job asked
    for the memory of an empty input)."""
    from medseg.cohort.input_voxels import input_grid

    _case(tmp_path, "case")
    gz, zst = input_grid(tmp_path / "case.nii.gz"), input_grid(tmp_path / "case.nii.zst")
    assert zst.voxels == gz.voxels == int(np.prod(SHAPE))
    assert zst.spacing_mm == gz.spacing_mm and zst.spacing_mm is not None


def test_cohort_planning_counts_a_zst_written_by_pzstd(tmp_path):
    """pzstd (zstd's parallel tool) starts its files with a skippable frame (magic 0x184D2A50), which nibabel's zstd
    reads past: planning took such a .nii.zst for an uncompressed file and counted its voxels as none."""
    from medseg.cohort.input_voxels import input_grid

    _case(tmp_path, "case")
    stream = (tmp_path / "case.nii.zst").read_bytes()
    skippable = (0x184D2A50).to_bytes(4, "little") + (4).to_bytes(4, "little") + len(stream).to_bytes(4, "little")
    (tmp_path / "pzstd.nii.zst").write_bytes(skippable + stream)
    assert nib.load(tmp_path / "pzstd.nii.zst").shape == SHAPE  # read as its .nii.zst is
    grid = input_grid(tmp_path / "pzstd.nii.zst")
    assert grid.voxels == int(np.prod(SHAPE)) and grid.spacing_mm == input_grid(tmp_path / "case.nii.gz").spacing_mm
