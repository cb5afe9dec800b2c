"""Inputs in a DataLad / git-annex or Git LFS dataset: a file whose content was not fetched is named with what it
is and how to fetch it, in one line, and a present annexed file (a link into a read-only store) reads as any file.

The datasets are laid out in code as git-annex and Git LFS lay them out (neither tool is needed): a locked annexed
file is a link to ``.git/annex/objects/Xk/Mv/KEY/KEY`` (the content read-only, its folder too), a link that leads
nowhere where the content is not here; an unlocked one whose content is not here is a pointer file holding
``/annex/objects/KEY``; a Git LFS file not pulled is a pointer file of three lines (``annex_factory.py``). Their
commands, training and cohorts are tested in ``test_dataset_content_commands.py``, ``..._training.py`` and
``..._cohort.py``."""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from annex_factory import (
    ANNEX,
    LFS,
    POINTER,
    _annexed_series,
    annex,
    annex_pointer,
    annexed_dataset,  # noqa: F401  (the dataset fixture its tests take)
    lfs_pointer,
)
from conftest import run_cli

from medseg.errors import ImageReadError
from medseg.io import read_image


def test_each_kind_of_absent_content_is_named_with_how_to_fetch_it(dataset):
    from medseg.io.files import absent_content

    images = dataset / "images"
    present, dropped = annex(images / "case1.nii.gz", dataset), annex(images / "case2.nii.gz", dataset, False)
    pointer, lfs = annex_pointer(images / "case3.nii.gz"), lfs_pointer(images / "case4.nii.gz")
    assert absent_content(present) is None and absent_content(dataset / "labels" / "case1.nii.gz") is None
    assert absent_content(dropped) == f"{ANNEX}: fetch it with datalad get {dropped} (or git annex get)"
    assert absent_content(pointer) == f"{POINTER}: fetch it with datalad get {pointer} (or git annex get)"
    pull = f"git -C {dataset} lfs pull --include="  # annex() made the dataset's .git: its repository's root
    assert absent_content(lfs) == LFS.replace("git lfs pull", f"{pull}images/case4.nii.gz")
    spaced = dataset / "my scans"
    spaced.mkdir()
    (images / "case4.nii.gz").rename(spaced / "case4.nii.gz")
    assert absent_content(spaced / "case4.nii.gz") == LFS.replace("git lfs pull", f"{pull}'my scans/case4.nii.gz'")
    (dataset / "labels" / "case2.nii.gz").rename(spaced / "case2.nii.gz")
    annex(spaced / "case2.nii.gz", dataset, False)  # a path the shell must be given quoted
    quoted = f"'{spaced / 'case2.nii.gz'}'"
    assert absent_content(spaced / "case2.nii.gz").endswith(f"datalad get {quoted} (or git annex get)")
    outside = dataset / "gone.nii.gz"
    outside.symlink_to(dataset / "elsewhere" / "scan.nii.gz")  # a link that leads nowhere, but not git-annex's
    assert absent_content(outside) is None


def test_the_git_lfs_hint_names_the_path_to_pull_from_the_repository_root(dataset, tmp_path, monkeypatch, capsys):
    """'fetch it with git lfs pull' pulled every file of the repository. git-lfs takes --include=<paths>, patterns
    matched against paths from the repository's root: the hint gives the file's path from there, and runs it there
    (git -C) from a folder outside it; the whole pull where no repository holds the file or a path has a comma."""
    from medseg.io.files import absent_content

    (dataset / ".git").mkdir()  # the repository the dataset is
    spaced = dataset / "my scans"
    spaced.mkdir()
    pointer = lfs_pointer(dataset / "images" / "case4.nii.gz")
    (dataset / "labels" / "case3.nii.gz").rename(spaced / "case3.nii.gz")
    quoted = lfs_pointer(spaced / "case3.nii.gz")
    monkeypatch.chdir(dataset / "images")
    hint = "a Git LFS pointer file, not an image (its content was not pulled): fetch it with git lfs pull --include="
    assert absent_content(pointer) == f"{hint}images/case4.nii.gz"
    assert absent_content("case4.nii.gz") == f"{hint}images/case4.nii.gz"  # given from the current folder
    assert absent_content(quoted) == f"{hint}'my scans/case3.nii.gz'"
    monkeypatch.chdir(tmp_path)  # outside the repository: run there
    assert absent_content(pointer) == hint.replace("git lfs", f"git -C {dataset} lfs") + "images/case4.nii.gz"
    with pytest.raises(ImageReadError) as caught:
        read_image(pointer)
    assert str(caught.value) == f"{pointer}: {hint.replace('git lfs', f'git -C {dataset} lfs')}images/case4.nii.gz"
    (dataset / "images" / "case4.nii.gz").rename(dataset / "images" / "a,b.nii.gz")  # no pattern says it
    assert absent_content(dataset / "images" / "a,b.nii.gz") == LFS
    (dataset / ".git").rmdir()  # copied out of its repository
    assert absent_content(quoted) == LFS
    monkeypatch.chdir(dataset)
    (dataset / ".git").mkdir()
    lfs_pointer(dataset / "labels" / "case2.nii.gz")  # a set's absent files: their folders
    code, _, err = run_cli(["train", "--images", "images", "--labels", "labels", "-o", "model"], capsys)
    assert (code, err.strip()) == (1, "medseg: error: 2 files of the training set are Git LFS pointer files whose "
                                      "content is not present here (images/a,b.nii.gz, labels/case2.nii.gz): fetch "
                                      "them with git lfs pull --include=images,labels")


def test_the_git_lfs_hint_of_a_pointer_reached_through_a_linked_folder_names_its_own_repository(dataset, tmp_path,
                                                                                                 monkeypatch):
    """A pointer reached through a linked folder (project/data → the dataset's images) got the whole `git lfs pull`
    (no repository above the link) or, where the project is a repository of its own, `--include=data/case4.nii.gz`,
    a path of the wrong repository. The path is now taken from the repository the pointer lives in."""
    from medseg.io.files import absent_content

    (dataset / ".git").mkdir()
    lfs_pointer(dataset / "images" / "case4.nii.gz")
    project = tmp_path / "project"
    project.mkdir()
    (project / "data").symlink_to(dataset / "images")
    monkeypatch.chdir(project)
    hint = "a Git LFS pointer file, not an image (its content was not pulled): fetch it with "
    expected = f"{hint}git -C {os.path.realpath(dataset)} lfs pull --include=images/case4.nii.gz"
    assert absent_content(Path("data") / "case4.nii.gz") == expected
    (project / ".git").mkdir()  # the project a repository of its own: still the dataset's
    assert absent_content(Path("data") / "case4.nii.gz") == expected
    assert absent_content(project / "data" / "case4.nii.gz") == expected
    monkeypatch.chdir(project / "data")  # in the dataset's repository through the link: no -C
    assert absent_content("case4.nii.gz") == f"{hint}git lfs pull --include=images/case4.nii.gz"


def test_an_absent_pointer_file_is_refused_by_the_reader_itself(dataset):
    path = annex_pointer(dataset / "images" / "case1.nii.gz")
    with pytest.raises(ImageReadError) as caught:
        read_image(path)
    assert str(caught.value) == f"{path}: {POINTER}: fetch it with datalad get {path} (or git annex get)"


def test_a_dicom_series_fetched_in_part_is_refused_naming_what_is_absent(tmp_path, capsys):
    """Its last three slices not fetched, the series was read as 9 slices, exit 0: the links that lead nowhere were
    passed over as no files at all (and slices absent inside it were 'missing slices: a step of 6 mm …')."""
    study, paths = _annexed_series(tmp_path)
    assert read_image(study).array.shape == (16, 16, 12)  # all present: read through the links
    for path in paths[-3:]:
        path.resolve().unlink()
    names = ", ".join(sorted(path.name for path in paths[-3:]))
    expected = (f"{study}: 3 of its files are git-annex links whose content is not present here ({names}): fetch them "
                f"with datalad get {study} (or git annex get)")
    with pytest.raises(ImageReadError) as caught:
        read_image(study)
    assert str(caught.value) == expected
    code, _, err = run_cli(["inspect", str(study)], capsys)
    assert (code, err.strip()) == (1, f"medseg: error: {expected}")
    paths[0].unlink()
    paths[0].write_text("/annex/objects/SHA256E-s3134--0123.dcm\n")  # an unlocked file, not fetched: 'cut short'
    with pytest.raises(ImageReadError, match=r": 4 of its files are git-annex links and git-annex pointer files "):
        read_image(study)


def test_a_link_that_leads_nowhere_in_a_dicom_series_is_named_as_a_missing_file(tmp_path, capsys):
    """A link that is not git-annex's and leads nowhere (its target moved) was passed over in silence: the series,
    its last slice such a link, was read as 11 slices, exit 0. Now it is named, with its target, as a missing file,
    after the folder's absent annexed files where there are both."""
    from dicom_factory import slice_positions, stored_values, write_series

    study = tmp_path / "study"
    paths = write_series(study, stored_values((16, 16, 12)), slice_positions(12, 2.0))
    last = paths[-1]
    last.unlink()
    last.symlink_to(tmp_path / "moved" / last.name)
    expected = (f"{study}: 1 of its files is a link that leads nowhere ({last.name} -> {tmp_path / 'moved' / last.name}"
                ": its target moved or deleted, or a loop of links), a missing file: restore its target or remove it")
    with pytest.raises(ImageReadError) as caught:
        read_image(study)
    assert str(caught.value) == expected
    code, _, err = run_cli(["inspect", str(study)], capsys)
    assert (code, err.strip()) == (1, f"medseg: error: {expected}")
    annex(paths[0], tmp_path, present=False)
    with pytest.raises(ImageReadError) as caught:
        read_image(study)
    assert str(caught.value) == (
        f"{study}: 1 of its files is a git-annex link whose content is not present here ({paths[0].name}): fetch it "
        f"with datalad get {study} (or git annex get); 1 of its files is a link that leads nowhere ({last.name} -> "
        f"{tmp_path / 'moved' / last.name}: its target moved or deleted, or a loop of links), a missing file: restore "
        "its target or remove it")


def test_a_dicom_study_that_is_a_dataset_is_read_without_its_repository(tmp_path, caplog):
    """A dataset holding one study keeps its repository beside the slices: '.git/config' was warned about as a file
    that is not DICOM, every slice as 'a copy of .git/annex/objects/…', and the study's SHA-256 (the sidecar's
    input_sha256, which the cohort compares) changed with every commit."""
    import logging

    from dicom_factory import slice_positions, stored_values, write_series

    from medseg.io.atomic import sha256_of

    study = tmp_path / "study"  # the dataset's root: its repository, store of contents included, in the study
    for path in write_series(study, stored_values((16, 16, 12)), slice_positions(12, 2.0)):
        annex(path, study)
    repository = study / ".git"
    (study / ".gitattributes").write_text("* annex.backend=SHA256E\n")
    (study / ".datalad").mkdir()
    (study / ".datalad" / "config").write_text('[datalad "dataset"]\n\tid = 0\n')
    (repository / "config").write_text("[core]\n")
    with caplog.at_level(logging.WARNING):
        assert read_image(study).array.shape == (16, 16, 12)
    assert [record.message for record in caplog.records if record.levelno >= logging.WARNING] == []
    before = sha256_of(study)
    (repository / "index").write_bytes(b"a commit later")
    assert sha256_of(study) == before


def test_an_analyze_pair_names_its_companion_whose_content_is_not_here(tmp_path):
    """An absent .img was 'its image file … is missing'; an absent SPM .mat (a link that leads nowhere) was passed
    over as no .mat at all, and the image read with its header's orientation instead of the .mat's."""
    from scipy.io import savemat

    dataset = tmp_path / "ds"
    dataset.mkdir()
    hdr = dataset / "spm.hdr"
    nib.save(nib.AnalyzeImage(np.arange(512, dtype=np.float32).reshape(8, 8, 8), np.eye(4)), str(hdr))
    matrix = np.array([[0, 0, 2.0, -5], [0, 1.5, 0, 3], [1.0, 0, 0, 7], [0, 0, 0, 1]])
    savemat(dataset / "spm.mat", {"M": matrix})  # its orientation, which the header does not hold
    with_mat = read_image(hdr).affine
    annex(dataset / "spm.mat", dataset, present=False)
    with pytest.raises(ImageReadError) as caught:
        read_image(hdr)
    mat = dataset / "spm.mat"
    assert str(caught.value) == f"{mat}: {ANNEX}: fetch it with datalad get {mat} (or git annex get)"
    (dataset / "spm.mat").unlink()
    assert not np.allclose(read_image(hdr).affine, with_mat)  # what an absent .mat would have been read as
    annex(dataset / "spm.img", dataset, present=False)
    with pytest.raises(ImageReadError) as caught:
        read_image(hdr)
    img = dataset / "spm.img"
    assert str(caught.value) == f"{img}: {ANNEX}: fetch it with datalad get {img} (or git annex get)"


def test_a_model_package_whose_files_were_not_fetched_says_so(make_package):
    """A package kept with Git LFS (as model hubs keep weights) and cloned without 'git lfs pull' was 'SHA-256 …
    does not match … recorded in model.json; the file is corrupt or was replaced'."""
    from medseg.errors import ModelPackageError
    from medseg.package import load_package

    package = make_package()
    weights = package / "weights.safetensors"
    lfs_pointer(weights)
    with pytest.raises(ModelPackageError) as caught:
        load_package(package)
    assert str(caught.value) == (f"{weights}: a Git LFS pointer file, not a weights file (its content was not "
                                 "pulled): fetch it with git lfs pull")
    config = package / "model.json"
    annex_pointer(config)
    with pytest.raises(ModelPackageError) as caught:
        load_package(package)
    assert str(caught.value) == (f"{config}: a git-annex pointer file, not a model.json (an unlocked file whose "
                                 f"content is not present here): fetch it with datalad get {config} (or git annex get)")


def test_a_sheet_or_dataset_json_whose_content_is_not_here_says_so(dataset, caplog):
    """A sample sheet left as a Git LFS pointer was 'header lacks the column(s) case_id, image (is it tab-separated?);
    found version https://git-lfs…'; a dataset.json not fetched beside the training folders was passed over without
    a word (a link that leads nowhere), or 'not read (Expecting value: line 1 column 1 (char 0))'."""
    import logging

    from medseg.cohort.samples import read_sample_rows
    from medseg.errors import InputError
    from medseg.io.dataset_json import find_dataset_json, read_dataset_json

    sheet = dataset / "samples.tsv"
    sheet.write_text("case_id\timage\ncase1\timages/case1.nii.gz\n")
    lfs_pointer(sheet)
    with pytest.raises(InputError) as caught:
        read_sample_rows(sheet)
    assert str(caught.value) == (f"{sheet}: a Git LFS pointer file, not a sample sheet (its content was not pulled): "
                                 "fetch it with git lfs pull")
    described = dataset / "dataset.json"
    described.write_text('{"labels": {"background": 0, "a": 1, "b": 2, "c": 3}}')
    annex(described, dataset, present=False)
    assert find_dataset_json(dataset / "images", dataset / "labels") == described
    with caplog.at_level(logging.WARNING):
        assert read_dataset_json(described) is None
    assert [record.message for record in caplog.records] == [
        f"{described}: not read ({ANNEX}: fetch it with datalad get {described} (or git annex get)); its training "
        "list and label names are not used (the cases are paired by file name; labels are named label_N)"]


@pytest.mark.parametrize("header", ["scan.mhd", "scan.nhdr"])
@pytest.mark.parametrize("kind", ["annex link", "lfs pointer"])
def test_a_detached_headers_data_file_whose_content_is_not_here_is_named(tmp_path, header, kind):
    """A .mhd or .nhdr whose data file was not fetched was 'its data file scan.raw, which holds the voxels this header
    describes, is missing' (a git-annex link that leads nowhere), which said nothing of the fix; the header is read
    (it is here), its data file named with how to fetch it, as an Analyze pair's .img is."""
    sitk = pytest.importorskip("SimpleITK", reason="NRRD / MetaImage need the itk extra")
    dataset = tmp_path / "ds"
    dataset.mkdir()
    image = sitk.GetImageFromArray(np.arange(4 * 6 * 5, dtype=np.uint8).reshape(4, 6, 5))
    sitk.WriteImage(image, str(dataset / header))
    data = dataset / "scan.raw"
    assert data.is_file()  # the data file each header names
    if kind == "annex link":
        annex(data, dataset, present=False)
        expected = f"{data}: {ANNEX}: fetch it with datalad get {data} (or git annex get)"
    else:
        lfs_pointer(data)
        expected = f"{data}: {LFS}"
    with pytest.raises(ImageReadError) as caught:
        read_image(dataset / header)
    assert str(caught.value) == expected


def test_an_image_read_from_several_data_files_names_those_not_here_together(tmp_path):
    """A .mhd whose voxels are in a list of files, two of them dropped: both named, with how to fetch them; an SPM
    .mat dropped beside a pair is named as the pair's other file is."""
    from medseg.io.pairs import parts_not_here

    dataset = tmp_path / "ds"
    dataset.mkdir()
    for index in range(3):
        (dataset / f"s{index}.raw").write_bytes(bytes(range(256)) * 40)
    (dataset / "scan.mhd").write_text("ObjectType = Image\nNDims = 3\nDimSize = 80 128 3\nElementType = MET_UCHAR\n"
                                      "ElementDataFile = LIST\ns0.raw\ns1.raw\ns2.raw\n")
    assert parts_not_here(dataset / "scan.mhd") is None
    annex(dataset / "s0.raw", dataset, present=False)
    annex(dataset / "s2.raw", dataset, present=False)
    assert parts_not_here(dataset / "scan.mhd") == (
        "2 of the files it is read from are git-annex links whose content is not present here (s0.raw, s2.raw): "
        f"fetch them with datalad get {dataset / 's0.raw'} {dataset / 's2.raw'} (or git annex get)")
    nib.save(nib.AnalyzeImage(np.zeros((4, 4, 4), np.float32), np.eye(4)), str(dataset / "spm.hdr"))
    assert parts_not_here(dataset / "spm.hdr") is None  # no .mat: none is read
    (dataset / "spm.mat").write_bytes(b"\0" * 2048)
    annex(dataset / "spm.mat", dataset, present=False)
    mat = dataset / "spm.mat"
    assert parts_not_here(dataset / "spm.img") == (
        f"its SPM .mat spm.mat is {ANNEX}: fetch it with datalad get {mat} (or git annex get)")
