"""The results folder and its records (medseg.cohort.records): content hashes, unreadable records, cases/ as a
link, cases left since the report and a stopped run's left claims."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from medseg.cohort.records import ResultsFolder
from medseg.errors import MedsegWarning

# why a file in a folder this user may not search cannot be read, as every line of medseg words it
SEARCH_DENIED = "permission denied: a folder on its way cannot be searched"


def test_cases_left_since_the_report_are_those_whose_folder_went_after_it(tmp_path):
    """A row taken out of the sheet, then its folder removed: the report must be rebuilt (Snakemake saw nothing to
    do). A folder moved elsewhere in the results keeps the case in the rebuilt report: asked once, not forever."""
    import os

    results = tmp_path / "results"
    for case in ("a", "b", "c"):
        (results / "cases" / case).mkdir(parents=True)
    (results / "cohort.tsv").write_text("rank\tcase_id\tstatus\n1\ta\tscored\n2\tb\tfailed\n3\tc\tfailed\n")
    (results / "report.html").write_text("<html></html>")
    folder = ResultsFolder(results)

    def age(path: Path, seconds: float) -> None:
        when = (results / "report.html").stat().st_mtime + seconds
        os.utime(path, (when, when))

    for path in (results, results / "cases"):
        age(path, -10)
    assert folder.left_since_report(["a"]) == []  # nothing removed since the report
    (results / "cases" / "b").rmdir()
    (results / "old").mkdir()
    (results / "cases" / "c").rename(results / "old" / "c")
    age(results / "cases", 10)
    assert folder.left_since_report(["a"]) == ["b", "c"]
    assert folder.left_since_report(["a", "b"]) == ["c"]  # b is a sheet case: its own rerun redoes it
    age(results / "report.html", 20)  # the rebuilt report (c still in it, found in old/)
    assert folder.left_since_report(["a"]) == []
    # a report against the sheet leaves the results of rows taken out of it out of its table, and names them in
    # summary.json: their folder removed, it is rebuilt too (the note naming them went with it)
    (results / "cohort.tsv").write_text("rank\tcase_id\tstatus\n1\ta\tscored\n")
    (results / "summary.json").write_text('{"left_out": ["cases/d/"]}\n')
    (results / "cases" / "d").mkdir()
    age(results / "report.html", 30)
    assert folder.left_since_report(["a"]) == []
    (results / "cases" / "d").rmdir()
    age(results / "cases", 40)
    assert folder.left_since_report(["a"]) == ["d"]
    (results / "report.html").unlink()
    assert folder.left_since_report(["a"]) == []  # no report: it is built anyway


def test_a_dicom_folder_is_hashed_as_its_series_was_read(tmp_path):
    """A DICOM folder's content, for a cohort to tell one only copied from one changed: the SHA-256 its sidecar
    records (the series' files, whatever the other files of the folder)."""
    from dicom_factory import slice_positions, stored_values, write_series

    from medseg.cohort.records import content_sha256
    from medseg.io.images import read_image

    folder = tmp_path / "dicom"
    write_series(folder, stored_values((8, 6, 4), seed=1), slice_positions(4, 2.0), series_number=3)
    write_series(folder, stored_values((8, 6, 4), seed=2), slice_positions(4, 2.0), series_number=4, prefix="b")
    (folder / "notes.txt").write_text("not DICOM\n")
    with pytest.warns(MedsegWarning, match=r"^.*: skipped 1 file that is not DICOM \(notes\.txt\)$"):
        read = read_image(folder, series="3").source_sha256
    assert content_sha256(folder, "3") == read != content_sha256(folder, "4")
    assert content_sha256(folder) is None  # two series and none named: no series to read, nothing kept by it
    assert content_sha256(tmp_path / "gone") is None


def test_a_status_record_nested_too_deeply_is_unreadable_not_a_traceback(tmp_path):
    """A completion record of brackets nested thousands deep (a damaged or hostile file) raised json's RecursionError
    through the planner and the report; it reads as any other unreadable record: absent, so its case is made again."""
    folder = ResultsFolder(tmp_path / "results")
    path = folder.status_path("a", "infer")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("[" * 100000 + "]" * 100000)
    assert folder.status("a", "infer") is None


def test_a_cases_folder_that_is_a_link_is_named_for_every_case(tmp_path):
    """cases/ itself as a link (also one that leads nowhere) is the link each case is refused for."""
    results = tmp_path / "results"
    results.mkdir()
    (results / "cases").symlink_to(tmp_path / "gone")
    assert ResultsFolder(results).blocked_reason("a", probe=False) == (
        f"{results / 'cases'}: a link to {tmp_path / 'gone'} that leads nowhere is in the place of the results' cases/ "
        "folder; a cohort writes its cases' files, and removes those it replaces, inside the results folder, not "
        "where a link leads: put the folder itself in place of the link, or remove the link")


@pytest.mark.skipif(sys.platform == "win32", reason="no claims (flock) on Windows")
def test_a_stopped_runs_left_case_claims_are_removed_and_held_ones_kept(tmp_path):
    """A stop that lands as a job takes or gives back a case's claim leaves ``status/.<id>.lock``, which looked like
    a crashed run's: the stopped run removes those no process holds, and keeps a claim a step still holds (another
    open file description's flock: a step started by hand) and the folder's other hidden files."""
    from medseg.io.folder_claim import claimed

    folder = ResultsFolder(tmp_path / "results")
    status = tmp_path / "results" / "status"
    status.mkdir(parents=True)
    (status / ".a.lock").write_text("")  # made, never locked: the stop landed in between
    (status / ".b.lock").write_text("pid 4242 on login1, user alice\n")  # its lock released, not removed
    (status / ".ms-0123.part.a.infer.json").write_text("{")  # a writer's partial file: not a claim
    with claimed(status / "c", "cohort run on case c"):
        assert (status / ".c.lock").is_file()
        assert folder.remove_left_claims() == [status / ".a.lock", status / ".b.lock"]
        assert (status / ".c.lock").is_file()  # held: kept
    assert sorted(p.name for p in status.iterdir()) == [".ms-0123.part.a.infer.json"]
    assert folder.remove_left_claims() == []
    assert ResultsFolder(tmp_path / "none").remove_left_claims() == []  # no status folder: nothing


def test_a_multichannel_input_this_user_may_not_look_at_is_away_not_an_error(tmp_path):
    """nnU-Net's channel files of a ``case_0000`` input (a model of two modalities) are listed by input_files before
    unavailable's own guard: a folder this user may not search, or a channel file that is a link into one, is told as
    an input away that cannot be read (its case fails alone), not a PermissionError failing the whole job."""
    import nibabel as nib
    import numpy as np
    from conftest import plain_user

    from medseg.cohort.records import away_text, input_files, unavailable

    image = nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.eye(4))
    locked, linked = tmp_path / "locked", tmp_path / "linked"
    locked.mkdir()
    linked.mkdir()
    for index in range(2):
        nib.save(image, locked / f"case_{index:04d}.nii.gz")
    nib.save(image, linked / "case_0000.nii.gz")
    (linked / "case_0001.nii.gz").symlink_to(locked / "case_0001.nii.gz")
    locked.chmod(0)
    try:
        with plain_user():
            first = locked / "case_0000.nii.gz"
            assert input_files(first, 2) == [first]  # its siblings cannot be listed: the input alone
            assert unavailable(first, 2) is True
            assert away_text(first, modalities=2) == f"{first}: cannot read ({SEARCH_DENIED})"
            files = input_files(linked / "case_0000.nii.gz", 2)
            assert files == [linked / "case_0000.nii.gz", linked / "case_0001.nii.gz"]
            assert unavailable(files[0], 2) is True
            assert away_text(files[0], modalities=2) == f"{files[1]}: cannot read ({SEARCH_DENIED})"
    finally:
        locked.chmod(0o755)


def test_a_file_named_relative_absolute_or_through_a_link_is_hashed_once(tmp_path, monkeypatch):
    """The kept hashes were keyed by the path as given: a file named ``a.nii.gz`` and then by its absolute path (a
    sidecar's recorded input, then ``verify --input a.nii.gz``; a sheet's relative row and a sidecar's absolute
    one) was read and hashed twice. They are keyed by the resolved path, links followed: a link and the file it leads
    to are one file, hashed once; a link pointed at another file since resolves to that one, hashed on its own."""
    import os

    import nibabel as nib
    import numpy as np

    import medseg.cohort.records as records
    import medseg.io.atomic as atomic

    for seed, name in ((1, "a.nii.gz"), (2, "b.nii.gz")):
        values = np.random.default_rng(seed).integers(0, 100, (6, 5, 4)).astype(np.int16)
        nib.save(nib.Nifti1Image(values, np.eye(4)), str(tmp_path / name))
    (tmp_path / "sub").mkdir()
    os.symlink(tmp_path / "a.nii.gz", tmp_path / "sub" / "link.nii.gz")
    records._content_sha256.cache_clear()
    real_sha256_of, hashed = atomic.sha256_of, []

    def counted(path):
        if not isinstance(path, list):  # a list of one file is hashed as that file, through here
            hashed.append(os.path.realpath(path))
        return real_sha256_of(path)

    monkeypatch.setattr(atomic, "sha256_of", counted)
    monkeypatch.chdir(tmp_path)
    found = {records.content_sha256(given) for given in ("a.nii.gz", tmp_path / "a.nii.gz", "sub/../a.nii.gz",
                                                         "sub/link.nii.gz", tmp_path / "sub" / "link.nii.gz")}
    assert found == {real_sha256_of(tmp_path / "a.nii.gz")}
    assert hashed == [str(tmp_path / "a.nii.gz")]
    (tmp_path / "sub" / "link.nii.gz").unlink()
    os.symlink(tmp_path / "b.nii.gz", tmp_path / "sub" / "link.nii.gz")
    assert records.content_sha256("sub/link.nii.gz") == real_sha256_of(tmp_path / "b.nii.gz")
    assert hashed == [str(tmp_path / "a.nii.gz"), str(tmp_path / "b.nii.gz")]
