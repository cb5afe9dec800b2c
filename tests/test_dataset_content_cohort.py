"""Cohorts on a DataLad / git-annex or Git LFS dataset: sheet files whose content is not here are named, results made
from an input since dropped are kept as for any file that is away, the availability check stays cheap on folders where
nothing is missing, and a results folder inside a dataset is refused (datasets laid out by ``annex_factory.py``)."""

from __future__ import annotations

import json

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
from cohort_cases import SMALL_IMAGES_SEGMENTED

from medseg.synthetic import make_phantom

pytestmark = SMALL_IMAGES_SEGMENTED


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
