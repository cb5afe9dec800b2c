"""Inputs in a DataLad / git-annex or Git LFS dataset: a file whose content was not fetched is named with what it
is and how to fetch it, in one line, and a present annexed file (a link into a read-only store) reads as any file.

The datasets are laid out in code as git-annex and Git LFS lay them out (neither tool is needed): a locked annexed
file is a link to ``.git/annex/objects/Xk/Mv/KEY/KEY`` (the content read-only, its folder too), a link that leads
nowhere where the content is not here; an unlocked one whose content is not here is a pointer file holding
``/annex/objects/KEY``; a Git LFS file not pulled is a pointer file of three lines."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import run_cli

from medseg.errors import ImageReadError
from medseg.io import read_image
from medseg.synthetic import make_phantom

ANNEX = "a git-annex link whose content is not present here (not fetched, or dropped)"
POINTER = "a git-annex pointer file, not an image (an unlocked file whose content is not present here)"
LFS = "a Git LFS pointer file, not an image (its content was not pulled): fetch it with git lfs pull"


def _key(data: bytes, suffix: str = ".nii.gz") -> str:
    return f"SHA256E-s{len(data)}--{hashlib.sha256(data).hexdigest()}{suffix}"


def annex(path: Path, dataset: Path, present: bool = True) -> Path:
    """``path``'s content moved into ``dataset``'s git-annex store and ``path`` made the link to it (``present``
    false: the content dropped, the link leading nowhere)."""
    data = path.read_bytes()
    key = _key(data, "".join(path.suffixes))
    folder = dataset / ".git" / "annex" / "objects" / "Xk" / "Mv" / key
    path.unlink()
    path.symlink_to(os.path.relpath(folder / key, path.parent))
    if present:
        folder.mkdir(parents=True)
        (folder / key).write_bytes(data)
        (folder / key).chmod(0o444)
        folder.chmod(0o555)
    return path


def annex_pointer(path: Path) -> Path:
    """``path`` as an unlocked git-annex file whose content is not here: a pointer file."""
    path.write_text(f"/annex/objects/{_key(path.read_bytes())}\n")
    return path


def lfs_pointer(path: Path) -> Path:
    """``path`` as a Git LFS file whose content was not pulled."""
    data = path.read_bytes()
    path.write_text(f"version https://git-lfs.github.com/spec/v1\noid sha256:{hashlib.sha256(data).hexdigest()}\n"
                    f"size {len(data)}\n")
    return path


@pytest.fixture
def dataset(tmp_path):
    """A dataset folder with images/ and labels/ of three 40x40x8 phantoms (plain files, to be annexed)."""
    root = tmp_path / "ds"
    for folder in ("images", "labels"):
        (root / folder).mkdir(parents=True)
    for index in (1, 2, 3, 4):
        phantom = make_phantom((40, 40, 8), seed=index)
        affine = np.diag([1.0, 1.0, 2.0, 1.0])
        nib.save(nib.Nifti1Image(phantom.image, affine), str(root / "images" / f"case{index}.nii.gz"))
        nib.save(nib.Nifti1Image(phantom.labels.astype(np.uint8), affine), str(root / "labels" / f"case{index}.nii.gz"))
    return root


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


def test_infer_names_each_absent_input_and_reads_a_present_annexed_one(dataset, make_package, capsys, monkeypatch):
    """The absent ones were "a link to ../.git/annex/objects/… that leads nowhere" and, the pointer files, "not a NIfTI
    image (named .gz but not gzip-compressed …)"; the present one is segmented, its sidecar naming the path given."""
    images, labels = dataset / "images", dataset / "labels"
    annex(images / "case1.nii.gz", dataset)
    annex(labels / "case1.nii.gz", dataset)
    annex(images / "case2.nii.gz", dataset, present=False)
    annex_pointer(images / "case3.nii.gz")
    lfs_pointer(images / "case4.nii.gz")
    monkeypatch.chdir(dataset)
    references = [a for i in (1, 2, 3, 4) for a in ("--reference", f"labels/case{i}.nii.gz")]
    code, _, err = run_cli(["infer", *(f"images/case{i}.nii.gz" for i in (1, 2, 3, 4)), "-m", str(make_package()),
                            "-o", "out/", *references], capsys)
    assert code == 1
    assert [line for line in err.splitlines() if line.startswith("medseg: error:")] == [
        f"medseg: error: images/case2.nii.gz: {ANNEX}: fetch it with datalad get images/case2.nii.gz (or git annex "
        "get)",
        f"medseg: error: images/case3.nii.gz: {POINTER}: fetch it with datalad get images/case3.nii.gz (or git annex "
        "get)",
        f"medseg: error: images/case4.nii.gz: {LFS} --include=images/case4.nii.gz"]
    assert sorted(p.name for p in (dataset / "out").iterdir()) == ["case1_metrics.json", "case1_seg.json",
                                                                 "case1_seg.nii.gz"]
    sidecar = json.loads((dataset / "out" / "case1_seg.json").read_text())
    metrics = json.loads((dataset / "out" / "case1_metrics.json").read_text())
    assert sidecar["input"] == str(images / "case1.nii.gz")  # the link, not the object in .git/annex
    assert metrics["reference"] == str(labels / "case1.nii.gz")
    content = (images / "case1.nii.gz").resolve().read_bytes()
    assert sidecar["input_sha256"] == hashlib.sha256(content).hexdigest()


def test_evaluate_names_an_absent_reference_and_writes_nothing(dataset, capsys):
    labels = dataset / "labels"
    annex(labels / "case1.nii.gz", dataset, present=False)
    code, _, err = run_cli(["evaluate", str(labels / "case2.nii.gz"), str(labels / "case1.nii.gz"), "-o",
                            str(dataset / "e.json")], capsys)
    assert (code, err.strip()) == (1, f"medseg: error: {labels / 'case1.nii.gz'}: {ANNEX}: fetch it with datalad get "
                                      f"{labels / 'case1.nii.gz'} (or git annex get)")
    lfs_pointer(labels / "case3.nii.gz")
    code, _, err = run_cli(["evaluate", str(labels / "case3.nii.gz"), str(labels / "case2.nii.gz"), "-o",
                            str(dataset / "e.json")], capsys)
    assert (code, err.strip()) == (1, f"medseg: error: {labels / 'case3.nii.gz'}: {LFS}")
    assert not (dataset / "e.json").exists()


def test_an_absent_pointer_file_is_refused_by_the_reader_itself(dataset):
    path = annex_pointer(dataset / "images" / "case1.nii.gz")
    with pytest.raises(ImageReadError) as caught:
        read_image(path)
    assert str(caught.value) == f"{path}: {POINTER}: fetch it with datalad get {path} (or git annex get)"


def _annexed_series(tmp_path) -> tuple[Path, list[Path]]:
    """A 12-slice DICOM series in a dataset, every file annexed; its paths in slice order."""
    from dicom_factory import slice_positions, stored_values, write_series

    paths = write_series(tmp_path / "ds" / "study", stored_values((16, 16, 12)), slice_positions(12, 2.0))
    return tmp_path / "ds" / "study", [annex(path, tmp_path / "ds") for path in paths]


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


def test_scoring_a_folder_fails_the_case_whose_reference_is_absent_and_scores_the_others(dataset, tmp_path, capsys):
    """The absent reference was left out as 'an entry that is not a .nii/.nii.gz file' and its prediction counted as
    one 'without a reference', not as a failed case."""
    labels, predictions = dataset / "labels", tmp_path / "pred"
    predictions.mkdir()
    for index in (1, 2, 3):
        (predictions / f"case{index}.nii.gz").write_bytes((labels / f"case{index}.nii.gz").read_bytes())
    (labels / "case4.nii.gz").unlink()
    annex(labels / "case1.nii.gz", dataset)
    annex(labels / "case2.nii.gz", dataset, present=False)
    code, out, err = run_cli(["evaluate", str(predictions), str(labels), "-o", str(tmp_path / "scores")], capsys)
    assert code == 1 and "warning" not in err
    gone = labels / "case2.nii.gz"
    absent = f"{gone}: {ANNEX}: fetch it with datalad get {gone} (or git annex get)"
    assert f"case2: failed: {absent}" in (out + err).splitlines()
    record = json.loads((tmp_path / "scores" / "case2_failed.json").read_text())
    assert record["error"] == absent
    for index in (1, 3):  # a present annexed reference scores as any file: the prediction is a copy of it
        metrics = json.loads((tmp_path / "scores" / f"case{index}_metrics.json").read_text())
        assert metrics["reference"] == str(labels / f"case{index}.nii.gz")
        assert [label["dice"] for label in metrics["labels"].values()] == [1.0, 1.0, 1.0]


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


def test_annexed_outputs_are_refused_saying_to_unlock_them(dataset, make_package, capsys, monkeypatch):
    """An annexed output was 'a link to …/.git/annex/objects/…/KEY is in the place of this output; remove the link
    (… which would change KEY there …)', one output per run; in a dataset the fix is to unlock them."""
    monkeypatch.chdir(dataset)
    package = str(make_package())
    assert run_cli(["infer", "images/case1.nii.gz", "-m", package, "-o", "derivatives/"], capsys)[0] == 0
    outputs = [Path("derivatives", name) for name in ("case1_seg.nii.gz", "case1_seg.json")]
    before = [annex(output, dataset).resolve().read_bytes() for output in outputs]
    code, _, err = run_cli(["infer", "images/case1.nii.gz", "-m", package, "-o", "derivatives/"], capsys)
    assert (code, err.strip()) == (1, "medseg: error: derivatives/case1_seg.nii.gz: an annexed file of a DataLad / "
                                      "git-annex dataset (a link into its read-only store) is in the place of this "
                                      "output (and 1 more of its outputs); unlock it first (datalad unlock "
                                      "derivatives/case1_seg.nii.gz derivatives/case1_seg.json, or git annex unlock) "
                                      "and rerun with --overwrite (medseg neither writes through a link nor replaces "
                                      "it with a file)")
    assert [output.resolve().read_bytes() for output in outputs] == before and all(map(Path.is_symlink, outputs))
    for output in outputs:  # datalad unlock: the link becomes a writable copy of its content
        content = output.resolve().read_bytes()
        output.unlink()
        output.write_bytes(content)
    code, _, _ = run_cli(["infer", "images/case1.nii.gz", "-m", package, "-o", "derivatives/", "--overwrite"], capsys)
    assert code == 0 and json.loads(outputs[1].read_text())["input"] == str(dataset / "images" / "case1.nii.gz")
    outputs[1].unlink()
    outputs[1].symlink_to("../.git/annex/objects/Xk/Mv/SHA256E-s3--0a.json/SHA256E-s3--0a.json")  # content dropped
    code, _, err = run_cli(["infer", "images/case1.nii.gz", "-m", package, "-o", "derivatives/", "--overwrite"],
                           capsys)
    assert (code, err.strip()) == (1, "medseg: error: derivatives/case1_seg.json: an annexed file of a DataLad / "
                                      "git-annex dataset is in the place of this output, its content not all present "
                                      "here; fetch and unlock it (datalad get derivatives/case1_seg.json, then datalad "
                                      "unlock) and rerun with --overwrite, or remove it (git rm) (medseg neither "
                                      "writes through a link nor replaces it with a file)")


def test_a_cohort_names_sheet_files_whose_content_is_not_here(dataset):
    """A dataset cloned and not fetched stopped the workflow with 'none of the 4 images exists (paths in a sample
    sheet are relative to the sheet's folder …)'; an input dropped after its case was made was 'missing' in the
    report. The note the workflow adds to its lines on missing files, and the report's line, say what they are."""
    from types import SimpleNamespace

    from medseg.cohort.records import not_fetched
    from medseg.report.expected_cases import _made_from_other_inputs

    images = [annex(dataset / "images" / f"case{i}.nii.gz", dataset, present=False) for i in (1, 2, 3, 4)]
    assert not_fetched([images[0], None, dataset / "labels" / "case1.nii.gz"]) == (
        f"; among them, 1 file is a git-annex link whose content is not present here ({images[0]}): fetch it with "
        f"datalad get {images[0]} (or git annex get)")
    assert not_fetched(images) == (
        f"; among them, 4 files are git-annex links whose content is not present here ({images[0]}, {images[1]}, "
        f"{images[2]}, ...): fetch them with datalad get {dataset / 'images'} (or git annex get)")
    assert not_fetched([dataset / "labels" / "case1.nii.gz", dataset / "nowhere.nii.gz"]) == ""
    study, paths = _annexed_series(dataset / "dicom")  # a DICOM folder not fetched: its files named
    for path in paths:
        path.resolve().unlink()
    assert not_fetched([study]).startswith("; among them, 12 files are git-annex links whose content is not present "
                                           f"here ({paths[0].parent / '0000.dcm'}, ")
    assert not_fetched([study]).endswith(f"...): fetch them with datalad get {study} (or git annex get)")
    case = SimpleNamespace(sidecar={"input": str(images[0])}, metrics=None)
    sample = SimpleNamespace(image=images[0], series=None, reference=None)
    assert _made_from_other_inputs(case, sample) == (
        f"the input {images[0]} is missing: {ANNEX}: fetch it with datalad get {images[0]} (or git annex get); the "
        "results made from it earlier are kept in the results folder (not shown here), and reused if it comes back "
        "unchanged")


def test_a_cohorts_dicom_series_whose_slices_were_dropped_keeps_its_results_as_a_dropped_nifti_does(tmp_path):
    """Some slices of a DICOM series input dropped (``datalad drop``) after its case was made: the next run deleted
    the case's segmentation and wrote a failure record, where a dropped NIfTI input keeps its results, reused once it
    is fetched again. The series is now away as the NIfTI file is: its results kept, the report's line and the case's
    say which files are not here and how to fetch them, and once fetched the case is reused, not redone."""
    from types import SimpleNamespace

    from medseg.cohort import InferOptions, infer_cases, read_samples
    from medseg.cohort.records import ResultsFolder, unavailable
    from medseg.report.expected_cases import _made_from_other_inputs

    study, paths = _annexed_series(tmp_path)
    (tmp_path / "ds" / "samples.tsv").write_text("case_id\timage\nd\tstudy\n")
    samples = read_samples(tmp_path / "ds" / "samples.tsv")
    options = InferOptions(model="phantom", device="cpu", batch_size=8)
    results = tmp_path / "results"
    assert [(c.outcome, c.reused) for c in infer_cases(samples, results, options).cases] == [("ok", False)]
    folder = ResultsFolder(results)
    run_id = json.loads(folder.status_path("d", "infer").read_text())["run_id"]
    dropped = {}
    for path in paths[-3:]:
        content = path.resolve()
        dropped[content] = content.read_bytes()
        content.parent.chmod(0o755)
        content.unlink()
    names = ", ".join(sorted(path.name for path in paths[-3:]))
    absent = (f"3 of its files are git-annex links whose content is not present here ({names}): fetch them with "
              f"datalad get {study} (or git annex get)")
    assert unavailable(study)
    case = infer_cases(samples, results, options).cases[0]
    assert (case.outcome, case.stage, case.reused) == ("failed", "read", False)
    assert case.error == (f"{study}: {absent}; the results made from it earlier are kept, and reused if it comes back "
                          "unchanged")
    assert folder.segmentation("d").is_file() and folder.sidecar("d").is_file()
    assert not folder.failure("d").exists()
    sidecar = json.loads(folder.sidecar("d").read_text())
    assert _made_from_other_inputs(SimpleNamespace(sidecar=sidecar, metrics=None), samples[0]) == (
        f"the input {study} is missing in part: {absent}; the results made from it earlier are kept in the results "
        "folder (not shown here), and reused if it comes back unchanged")
    for content, data in dropped.items():  # fetched again: the same content
        content.write_bytes(data)
    assert not unavailable(study)
    assert [(c.outcome, c.reused) for c in infer_cases(samples, results, options).cases] == [("ok", True)]
    assert json.loads(folder.status_path("d", "infer").read_text())["run_id"] == run_id


def test_a_cohorts_availability_check_does_not_word_the_files_of_a_folder_where_none_is_missing(tmp_path,
                                                                                                  monkeypatch):
    """The cohort asks whether each DICOM folder of its sheet is away every time the workflow is read: that walked
    every file as the message naming the absent ones does (several system calls and a look at each), 0.42 s for a
    folder of 30,000 slices. A folder where nothing is missing is now told by one walk of its entries' types and
    sizes; the files are looked at one by one only where some may be missing, and the answer is the message's."""
    import medseg.io.files as files
    from medseg.cohort.records import unavailable
    from medseg.io.files import missing_under

    study = tmp_path / "ds" / "study"
    (study / "sub").mkdir(parents=True)
    for index in range(3):
        (study / f"IM{index}").write_bytes(b"\0" * 2048)
    (study / "sub" / "small").write_bytes(b"not a pointer")  # a small file: looked at, as a pointer file would be
    (study / ".gitattributes").write_text("* annex.largefiles=anything\n")
    (study / "elsewhere").symlink_to(tmp_path)  # a link to a folder: not walked
    (study / ".git" / "annex" / "objects").mkdir(parents=True)  # a repository's own: never a slice
    (study / ".git" / "annex" / "objects" / "gone").symlink_to(tmp_path / "nowhere")
    (study / "linked").symlink_to(study / "IM0")  # a link to present content
    walked = []
    real_walk = files._walk
    monkeypatch.setattr(files, "_walk", lambda folder: walked.append(folder) or real_walk(folder))
    assert (unavailable(study), missing_under(study), walked) == (False, None, [])  # no file-by-file walk
    walked.clear()
    cases = {
        "a link leading nowhere": lambda: (study / "sub" / "IM9").symlink_to(tmp_path / "moved"),
        "a dropped annexed file": lambda: annex(study / "IM1", tmp_path / "ds", present=False),
        "an unlocked file not fetched": lambda: annex_pointer(study / "IM2"),
        "a Git LFS pointer": lambda: (study / "sub" / "lfs").write_bytes(
            b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"0" * 64 + b"\nsize 2048\n"),
    }
    for what, make in cases.items():
        make()
        assert missing_under(study) is not None, what
        assert unavailable(study), what
    assert walked  # where some are missing, the walk that words them answers


def test_a_dicom_folder_whose_files_are_all_here_is_told_so_without_looking_at_each_as_a_datasets(tmp_path,
                                                                                                     monkeypatch):
    """Whether a cohort's DICOM folder input has files not here is asked of every such input each time the workflow
    is planned (twice: as an image, then before its reference): each file was looked at for a dataset's pointer or
    link, 5 to 6 system calls a file (0.76 s a look for 200 folders of 300 files, against 0.02 s before the question
    was asked; 0.16 s now). A folder whose files are all there (links that lead somewhere, files larger than a
    pointer file) is now told from one ``stat`` a file; one that may hold such a file is looked at as before."""
    import medseg.io.files as files
    from medseg.cohort.records import unavailable

    study, paths = _annexed_series(tmp_path)
    walked = []
    walk = files._walk
    monkeypatch.setattr(files, "_walk", lambda folder: walked.append(folder) or walk(folder))
    assert (files.missing_under(study), unavailable(study), walked) == (None, False, [])
    paths[3].resolve().unlink()  # dropped: looked at, and named
    assert files.missing_under(study).startswith(f"1 of its files is a git-annex link whose content is not present "
                                                 f"here ({paths[3].name})")
    assert walked == [study]
    walked.clear()
    paths[3].unlink()
    paths[3].write_text("a note\n")  # a small file: read, and not a pointer
    assert (files.missing_under(study), walked) == (None, [])


def test_a_cohorts_nifti_input_dropped_to_a_pointer_file_keeps_its_results_as_its_dicom_slices_do(dataset):
    """An unlocked git-annex file dropped is a pointer file in its place (an adjusted branch, as on Windows): a DICOM
    series of such slices kept its case's results, but a NIfTI input so dropped had its segmentation deleted and a
    failure record written, as an input changed. It is away as a dropped link is: its results kept, the case's line
    and the report's saying what is in its place and how to fetch it, reused once fetched again."""
    from types import SimpleNamespace

    from medseg.cohort import InferOptions, infer_cases, read_samples
    from medseg.cohort.records import ResultsFolder, unavailable
    from medseg.report.expected_cases import _made_from_other_inputs

    image = dataset / "images" / "case1.nii.gz"
    (dataset / "samples.tsv").write_text("case_id\timage\na\timages/case1.nii.gz\n")
    samples = read_samples(dataset / "samples.tsv")
    options = InferOptions(model="phantom", device="cpu", batch_size=8)
    results = dataset / "results"
    assert [(c.outcome, c.reused) for c in infer_cases(samples, results, options).cases] == [("ok", False)]
    folder = ResultsFolder(results)
    run_id = json.loads(folder.status_path("a", "infer").read_text())["run_id"]
    data = image.read_bytes()
    for pointer, said in ((annex_pointer, f"{POINTER}: fetch it with datalad get {image} (or git annex get)"),
                          (lfs_pointer, LFS)):
        pointer(image)
        assert unavailable(image)
        case = infer_cases(samples, results, options).cases[0]
        assert (case.outcome, case.stage, case.reused) == ("failed", "read", False)
        assert case.error == (f"{image}: {said}; the results made from it earlier are kept, and reused if it comes "
                              "back unchanged")
        assert folder.segmentation("a").is_file() and not folder.failure("a").exists()
        sidecar = json.loads(folder.sidecar("a").read_text())
        assert _made_from_other_inputs(SimpleNamespace(sidecar=sidecar, metrics=None), samples[0]) == (
            f"the input {image} is missing: {said}; the results made from it earlier are kept in the results folder "
            "(not shown here), and reused if it comes back unchanged")
        image.write_bytes(data)  # fetched again: the same content
    assert not unavailable(image)
    assert [(c.outcome, c.reused) for c in infer_cases(samples, results, options).cases] == [("ok", True)]
    assert json.loads(folder.status_path("a", "infer").read_text())["run_id"] == run_id


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


def test_a_results_folder_saved_into_a_dataset_is_refused_before_any_job(tmp_path):
    """A cohort's results saved with datalad save are links into the store: each job that rewrote one failed on it
    (retried, then given up), naming one file and saying to rerun with --overwrite, which the workflow has not."""
    from medseg.cohort.settings import check_results_folder
    from medseg.errors import InputError

    results = tmp_path / "ds" / "results"
    (results / "cases" / "a").mkdir(parents=True)
    (results / "status").mkdir()
    check_results_folder(results)  # empty: nothing to say
    for path in (results / "cases" / "a" / "a_seg.nii.gz", results / "status" / "a.infer.json", results / "x.tsv"):
        path.write_bytes(path.name.encode())
        annex(path, tmp_path / "ds")
    with pytest.raises(InputError) as caught:
        check_results_folder(results)
    assert str(caught.value) == (
        f"{results}: the results folder holds 3 annexed files of a DataLad / git-annex dataset (links into its "
        "read-only store, as datalad save leaves them: cases/a/a_seg.nii.gz, status/a.infer.json, x.tsv), which a run "
        f"replaces; unlock them first (datalad unlock {results}, or git annex unlock), or run the workflow with "
        "datalad run --output on the results folder")


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


@pytest.mark.parametrize("header", ["scan.hdr", "scan.mhd", "scan.nhdr"])
def test_a_cohorts_image_whose_data_file_alone_was_dropped_keeps_its_results_as_a_dropped_nifti_does(tmp_path,
                                                                                                     header):
    """The .img of an Analyze / NIfTI pair, or the .raw(.gz) a .mhd / .nhdr names, dropped (``datalad drop``) after
    its case was made, its header still here: the next run deleted the case's segmentation and wrote a failure
    record, where a dropped NIfTI file keeps its results. The image is now away as such a file is: its results kept,
    the case's line and the report's naming the absent data file and how to fetch it, reused once fetched again."""
    from types import SimpleNamespace

    from medseg.cohort import InferOptions, infer_cases, read_samples
    from medseg.cohort.records import ResultsFolder, not_fetched, unavailable
    from medseg.report.expected_cases import _made_from_other_inputs

    dataset = tmp_path / "ds"
    dataset.mkdir()
    phantom = make_phantom((40, 40, 8), seed=1)
    if header.endswith(".hdr"):
        nib.save(nib.Nifti1Pair(phantom.image, np.diag([1.0, 1.0, 2.0, 1.0])), str(dataset / header))
        data, role = dataset / "scan.img", "its image file"
    else:
        sitk = pytest.importorskip("SimpleITK", reason="NRRD / MetaImage need the itk extra")
        image = sitk.GetImageFromArray(phantom.image.transpose(2, 1, 0))  # x, y, z as the pair's
        image.SetSpacing((1.0, 1.0, 2.0))
        sitk.WriteImage(image, str(dataset / header), header.endswith(".nhdr"))
        data, role = dataset / ("scan.raw.gz" if header.endswith(".nhdr") else "scan.raw"), "its data file"
    assert data.is_file()
    annex(data, dataset)  # a locked annexed file, its content here
    image = dataset / header
    (dataset / "samples.tsv").write_text(f"case_id\timage\na\t{header}\n")
    samples = read_samples(dataset / "samples.tsv")
    options = InferOptions(model="phantom", device="cpu", batch_size=8)
    results = tmp_path / "results"
    assert [(c.outcome, c.reused) for c in infer_cases(samples, results, options).cases] == [("ok", False)]
    folder = ResultsFolder(results)
    run_id = json.loads(folder.status_path("a", "infer").read_text())["run_id"]
    content = data.resolve()
    kept = content.read_bytes()
    content.parent.chmod(0o755)
    content.unlink()  # dropped: the link leads nowhere
    said = f"{role} {data.name} is {ANNEX}: fetch it with datalad get {data} (or git annex get)"
    assert unavailable(image)
    assert not_fetched([image]) == (f"; among them, 1 file is a git-annex link whose content is not present here "
                                    f"({data}): fetch it with datalad get {data} (or git annex get)")
    case = infer_cases(samples, results, options).cases[0]
    assert (case.outcome, case.stage, case.reused) == ("failed", "read", False)
    assert case.error == (f"{image}: {said}; the results made from it earlier are kept, and reused if it comes back "
                          "unchanged")
    assert folder.segmentation("a").is_file() and folder.sidecar("a").is_file()
    assert not folder.failure("a").exists()
    sidecar = json.loads(folder.sidecar("a").read_text())
    assert _made_from_other_inputs(SimpleNamespace(sidecar=sidecar, metrics=None), samples[0]) == (
        f"the input {image} is missing in part: {said}; the results made from it earlier are kept in the results "
        "folder (not shown here), and reused if it comes back unchanged")
    content.write_bytes(kept)  # fetched again: the same content
    assert not unavailable(image)
    assert [(c.outcome, c.reused) for c in infer_cases(samples, results, options).cases] == [("ok", True)]
    assert json.loads(folder.status_path("a", "infer").read_text())["run_id"] == run_id


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
