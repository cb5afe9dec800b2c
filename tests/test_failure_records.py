"""Failure records (`<case>_failed.json`): the cohort workflow and `medseg evaluate` over folders write them alike,
with the medseg version that wrote them."""

import gzip
import json

import nibabel as nib
import numpy as np
from conftest import run_cli

from medseg import __version__
from medseg.synthetic import make_phantom

run = run_cli  # medseg ARGS in this process: (exit code, stdout, stderr)


def _record(path):
    return json.loads(path.read_text())



def test_every_writer_of_failure_records_records_the_medseg_version(tmp_path):
    """The cohort's records and evaluate's over folders are made by one function."""
    from medseg.cohort.records import ResultsFolder
    from medseg.errors import ImageReadError

    path = ResultsFolder(tmp_path).write_failure("c1", "read", ImageReadError("c1.nii.gz: not an image"),
                                                 tmp_path / "c1.nii.gz", None)
    record = _record(path)
    assert path == tmp_path / "cases" / "c1" / "c1_failed.json"
    assert (record["error"], record["error_type"], record["medseg_version"]) == (
        "c1.nii.gz: not an image", "ImageReadError", __version__)


def test_a_pair_that_fails_in_evaluate_over_folders_is_recorded_alike(tmp_path, capsys):
    pred, ref = tmp_path / "pred", tmp_path / "ref"
    pred.mkdir()
    ref.mkdir()
    phantom = make_phantom((40, 40, 8), seed=11)
    for name in ("a", "b"):
        nib.save(nib.Nifti1Image(phantom.labels, np.eye(4)), str(ref / f"{name}.nii.gz"))
    nib.save(nib.Nifti1Image(phantom.labels, np.eye(4)), str(pred / "a.nii.gz"))
    (pred / "b.nii.gz").write_bytes(gzip.compress(b"garbage" * 100))
    code, _, _ = run(["evaluate", str(pred), str(ref), "-o", str(tmp_path / "scores")], capsys)
    assert code == 1
    record = _record(tmp_path / "scores" / "b_failed.json")
    assert (record["input"], record["reference"], record["stage"], record["medseg_version"]) == (
        str(pred / "b.nii.gz"), str(ref / "b.nii.gz"), "evaluate", __version__)
    assert json.loads((tmp_path / "scores" / "summary.json").read_text())["cases"]["failed"] == 1
