"""Training on a DataLad / git-annex or Git LFS dataset: `medseg train` refuses a set whose files, data files or
dataset.json were not fetched, naming every absent file in one line (datasets laid out by ``annex_factory.py``)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from annex_factory import (
    annex,
    annex_pointer,
    annexed_dataset,  # noqa: F401  (the dataset fixture its tests take)
)
from conftest import run_cli

from medseg.synthetic import make_phantom


def test_train_refuses_a_set_with_absent_files_naming_them_all_in_one_line(dataset, capsys, monkeypatch):
    """An absent label stopped the run alone, one per run ('labels/case2.nii.gz: a link … that leads nowhere');
    an absent image was left out with a warning and its label called one 'with no counterpart of the same name'."""
    annex(dataset / "images" / "case1.nii.gz", dataset)  # present: no problem
    annex(dataset / "images" / "case3.nii.gz", dataset, present=False)
    annex(dataset / "labels" / "case2.nii.gz", dataset, present=False)
    annex_pointer(dataset / "labels" / "case4.nii.gz")
    monkeypatch.chdir(dataset)
    code, _, err = run_cli(["train", "--images", "images", "--labels", "labels", "-o", "model", "--epochs", "1"],
                           capsys)
    assert (code, err.strip()) == (1, "medseg: error: 3 files of the training set are git-annex links and git-annex "
                                      "pointer files whose content is not present here (images/case3.nii.gz, "
                                      "labels/case2.nii.gz, labels/case4.nii.gz): fetch them with datalad get images "
                                      "labels (or git annex get)")
    assert not (dataset / "model").exists()


def test_train_refuses_a_dataset_json_whose_content_is_not_here_as_its_absent_files(dataset, capsys, monkeypatch):
    """A dataset.json beside the training folders that was not fetched was only warned about as one that cannot be
    read, and the run went on without its training list and label names (label_N), exit 0: now it is refused in the
    one line that names the set's absent files, with how to fetch it."""
    described = dataset / "dataset.json"
    described.write_text('{"labels": {"background": 0, "a": 1, "b": 2, "c": 3}}')
    annex(described, dataset, present=False)
    annex(dataset / "labels" / "case2.nii.gz", dataset, present=False)
    monkeypatch.chdir(dataset)
    argv = ["train", "--images", "images", "--labels", "labels", "-o", "model", "--epochs", "1"]
    code, _, err = run_cli(argv, capsys)
    assert (code, err.strip()) == (1, "medseg: error: 2 files of the training set are git-annex links whose content "
                                      "is not present here (labels/case2.nii.gz, dataset.json): fetch them with "
                                      "datalad get labels dataset.json (or git annex get)")  # named as given
    assert not (dataset / "model").exists()
    (dataset / "labels" / "case2.nii.gz").unlink()  # fetched: the dataset.json alone
    nib.save(nib.Nifti1Image(make_phantom((40, 40, 8), seed=2).labels.astype(np.uint8),
                             np.diag([1.0, 1.0, 2.0, 1.0])), str(dataset / "labels" / "case2.nii.gz"))
    code, _, err = run_cli(argv, capsys)
    assert (code, err.strip()) == (1, "medseg: error: 1 file of the training set is a git-annex link whose content is "
                                      "not present here (dataset.json): fetch it with datalad get dataset.json (or git "
                                      "annex get)")
    assert not (dataset / "model").exists()


def test_train_refuses_a_dataset_json_that_is_a_link_leading_nowhere_as_a_missing_file(dataset, capsys, monkeypatch):
    """A dataset.json beside the training folders that is a link leading nowhere, not git-annex's (its target moved),
    was passed over in silence: trained by file name with label_N names, exit 0. It is now refused as missing, in one
    line naming the link and where it leads, as an absent annexed one is; nothing is written."""
    from medseg.io.dataset_json import find_dataset_json
    from medseg.training_cases import pair_cases

    described = dataset / "dataset.json"
    described.symlink_to("../moved/dataset.json")
    assert find_dataset_json(dataset / "images", dataset / "labels") == described
    monkeypatch.chdir(dataset)
    code, _, err = run_cli(["train", "--images", "images", "--labels", "labels", "-o", "model", "--epochs", "1"],
                           capsys)
    assert (code, err.strip()) == (1, "medseg: error: dataset.json: a link to ../moved/dataset.json that leads "
                                      "nowhere (its target moved or deleted, or a loop of links); it gives the "
                                      "training folders' training list and label names: restore its target, or "
                                      "remove the link to pair the cases by file name")
    assert not (dataset / "model").exists()
    described.unlink()  # removed: paired by file name, as without one
    assert find_dataset_json(dataset / "images", dataset / "labels") is None
    assert len(pair_cases(dataset / "images", dataset / "labels")) == 4


def test_train_names_every_absent_data_file_of_metaimage_cases_in_one_line(tmp_path, capsys, monkeypatch):
    """The .raw of a .mhd case was not among the files checked before training: each absent one stopped the run
    alone, naming only itself (labels/case3.raw here, then images/case2.raw on the next run)."""
    sitk = pytest.importorskip("SimpleITK", reason="MetaImage needs the itk extra")
    dataset = tmp_path / "ds"
    for folder in ("images", "labels"):
        (dataset / folder).mkdir(parents=True)
    for index in (1, 2, 3):
        phantom = make_phantom((24, 24, 6), seed=index)
        sitk.WriteImage(sitk.GetImageFromArray(phantom.image), str(dataset / "images" / f"case{index}.mhd"))
        sitk.WriteImage(sitk.GetImageFromArray(phantom.labels.astype(np.uint8)),
                        str(dataset / "labels" / f"case{index}.mhd"))
    annex(dataset / "images" / "case2.raw", dataset, present=False)
    annex(dataset / "labels" / "case3.raw", dataset, present=False)
    monkeypatch.chdir(dataset)
    code, _, err = run_cli(["train", "--images", "images", "--labels", "labels", "-o", "model", "--epochs", "1"],
                           capsys)
    assert (code, err.strip()) == (1, "medseg: error: 2 files of the training set are git-annex links whose content "
                                      "is not present here (images/case2.raw, labels/case3.raw): fetch them with "
                                      "datalad get images labels (or git annex get)")
    assert not (dataset / "model").exists()
