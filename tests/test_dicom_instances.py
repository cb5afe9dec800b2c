"""A series that lost files at its ends (medseg/io/dicom_instances.py): its positions stay evenly spaced, so only its
InstanceNumbers (or a count its headers state) tell; reading it warns once, naming the folder and the numbers missing.
Numbering that legitimately starts elsewhere is not warned about."""

from __future__ import annotations

import logging
import warnings

import pydicom
import pytest
from dicom_factory import make_series

from medseg.errors import MedsegWarning
from medseg.io.dicom import read_dicom_series

_LOGGER = "medseg.io.dicom"


# what the warning adds for a series whose study has no other series here: the numbers cannot tell a loss of its first
# files from a scanner's count across the study
_ALONE = (", or the scanner numbered its images across the study, whose other series are not here (the numbers cannot "
          "tell the two apart)")


def _instance_warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and "InstanceNumber" in
            r.getMessage()]


def _renumber(paths, first: int, **tags) -> None:
    """Number the files (in slice order) from ``first``, and set ``tags`` on each."""
    for offset, path in enumerate(paths):
        dataset = pydicom.dcmread(path)
        dataset.InstanceNumber = first + offset
        for keyword, value in tags.items():
            setattr(dataset, keyword, value)
        dataset.save_as(path)


def test_a_series_that_lost_its_first_files_is_warned_about_once(tmp_path, caplog):
    """Before: 4 of 6 slices converted without a word (the positions of the 4 left are evenly spaced)."""
    _, paths = make_series(tmp_path)  # InstanceNumbers 1 to 6, in slice order
    paths[0].unlink()
    paths[1].unlink()
    with caplog.at_level(logging.WARNING, logger=_LOGGER), pytest.warns(MedsegWarning, match="missing"):
        volume = read_dicom_series(tmp_path)
    assert volume.array.shape[2] == 4
    assert _instance_warnings(caplog) == [
        f"{tmp_path}: series 3 'synthetic' (CT, 4 images, UID {volume.info['series_uid']}): InstanceNumbers 1-2 "
        f"missing (those here run 3 to 6): files of the series may have been lost, their slices left out of the "
        f"volume{_ALONE}; copy the series again from its source"]
    caplog.clear()  # a second reading of the input (the report's) does not warn again
    with caplog.at_level(logging.WARNING, logger=_LOGGER):
        read_dicom_series(tmp_path, warn_skipped=False)
    assert _instance_warnings(caplog) == []


def test_a_series_that_lost_its_last_file_is_told_by_its_stated_count(tmp_path, caplog):
    """The last file's loss leaves 1..N-1, numbered as a whole series is: ImagesInAcquisition tells it."""
    _, paths = make_series(tmp_path)
    _renumber(paths, 1, ImagesInAcquisition=6)
    paths[-1].unlink()
    with caplog.at_level(logging.WARNING, logger=_LOGGER), pytest.warns(MedsegWarning, match="missing"):
        volume = read_dicom_series(tmp_path)
    assert volume.array.shape[2] == 5
    assert _instance_warnings(caplog) == [
        f"{tmp_path}: series 3 'synthetic' (CT, 5 images, UID {volume.info['series_uid']}): InstanceNumber 6 "
        "missing (ImagesInAcquisition says 6 images, 5 here): files of the series may have been lost, their slices "
        "left out of the volume; copy the series again from its source"]


def test_the_lost_files_warning_reaches_a_python_caller_once_and_the_sidecar_records_it(tmp_path):
    """Before: logged alone, where the other warnings of the series' reading (MONOCHROME1, files skipped) are
    MedsegWarnings too: a notebook without logging configured heard nothing of the lost slices. The volume's info
    keeps it as ``lost_files_note``, which a case's card in the report shows."""
    from medseg.report.result_records import _input_notes

    _, paths = make_series(tmp_path)
    paths[0].unlink()
    with pytest.warns(MedsegWarning) as caught:
        volume = read_dicom_series(tmp_path)
    told = [str(w.message) for w in caught if "InstanceNumber" in str(w.message)]
    assert len(told) == 1 and told[0].startswith(f"{tmp_path}: series 3 'synthetic' (CT, 5 images, UID ")
    assert "InstanceNumber 1 missing (those here run 2 to 6)" in told[0]
    assert caught[0].filename == __file__
    assert volume.info["lost_files_note"] == (
        "InstanceNumber 1 missing (those here run 2 to 6): files of the series may have been lost, their slices left "
        f"out of the volume{_ALONE}; copy the series again from its source")
    assert f"input: {volume.info['lost_files_note']}" in _input_notes({"input_info": volume.info})
    with warnings.catch_warnings():
        warnings.simplefilter("error", MedsegWarning)  # a second reading (the report's) tells nothing again
        assert read_dicom_series(tmp_path, warn_skipped=False).array.shape[2] == 5
    whole = tmp_path / "whole"
    make_series(whole, seed=1)
    assert "lost_files_note" not in read_dicom_series(whole).info


@pytest.mark.parametrize(("first", "tags"), [(1, {}), (101, {}), (3, {"ImagesInAcquisition": 6})])
def test_numbering_of_its_own_is_not_warned_about(tmp_path, caplog, first, tags):
    """A whole series; one numbered on from an earlier one (101 to 106: more numbers before it than it has images,
    as a scanner numbering across a study gives, or the shared CT's 267 to 286); one whose stated count it holds."""
    _, paths = make_series(tmp_path)
    _renumber(paths, first, **tags)
    with caplog.at_level(logging.WARNING, logger=_LOGGER):
        assert read_dicom_series(tmp_path).array.shape[2] == 6
    assert _instance_warnings(caplog) == []


@pytest.mark.shared_data
def test_no_shared_series_is_warned_about(shared_data, caplog):
    """The real series (one numbered 267 to 286, an excerpt with no count stated) read without the warning."""
    folders = [shared_data / "dicom" / name for name in ("ct-seg/series", "ct-jpeg2000/series",
                                                          "mr-decubitus/HFS", "mr-decubitus/HFDL")]
    if not all(folder.is_dir() for folder in folders):
        pytest.skip("the shared DICOM series are absent")
    with caplog.at_level(logging.WARNING, logger=_LOGGER):
        for folder in folders:
            read_dicom_series(folder)
    assert _instance_warnings(caplog) == []


def test_inspect_flags_a_series_that_lost_files(tmp_path, capsys, monkeypatch):
    """`medseg inspect` lists such a series with the flag lost-files, and --json gives what is missing; a whole series
    has neither."""
    import json

    from conftest import run_cli

    _, paths = make_series(tmp_path / "lost", series_number=3)
    paths[0].unlink()
    make_series(tmp_path / "whole", seed=1, series_number=4, prefix="w")
    monkeypatch.delenv("COLUMNS", raising=False)
    code, out, _ = run_cli(["inspect", str(tmp_path), "--json"], capsys)
    entries = {entry["key"]: entry for entry in json.loads(out)["series"]}
    assert entries["3"]["missing_instances"] == (
        "InstanceNumber 1 missing (those here run 2 to 6): files of the series may have been lost, their slices left "
        "out of the volume; copy the series again from its source")
    assert entries["4"]["missing_instances"] is None
    code, out, _ = run_cli(["inspect", str(tmp_path)], capsys)
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:3]}
    flags = out.splitlines()[0].split().index("FLAGS") - 1  # the header's "SPACING (mm)" is two words
    assert (rows["3"][flags], rows["4"][flags]) == ("lost-files", "-")


def test_the_command_warns_once(tmp_path):
    """`medseg convert` of such a series says it once, as its warning line (a Python caller's MedsegWarning is not
    told a second time)."""
    import subprocess
    import sys

    _, paths = make_series(tmp_path / "series")
    paths[0].unlink()
    done = subprocess.run([sys.executable, "-m", "medseg", "convert", str(tmp_path / "series"),
                           str(tmp_path / "out.nii.gz")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    told = [line for line in done.stderr.splitlines() if "InstanceNumber" in line]
    assert len(told) == 1 and told[0].startswith(f"warning: {tmp_path / 'series'}: series 3 'synthetic' (CT, 5 images")
    assert told[0].endswith(": InstanceNumber 1 missing (those here run 2 to 6): files of the series may have been "
                            f"lost, their slices left out of the volume{_ALONE}; copy the series again from its "
                            "source")


@pytest.mark.parametrize("numbers", [[1, 3, 5, 7, 9, 11], [2, 4, 6, 8, 10, 12]])
@pytest.mark.parametrize("tags", [{}, {"ImagesInAcquisition": 12}])
def test_numbers_of_another_echo_between_the_slices_are_not_warned_about(tmp_path, caplog, numbers, tags):
    """One echo of a series numbered echo by echo (1, 3, 5 … or 2, 4, 6 …), its slices evenly spaced: the numbers
    missing between them are no slices of this stack (a slice lost inside leaves a gap, which is refused), so
    nothing was lost: it was warned of as five or six lost files."""
    _, paths = make_series(tmp_path)
    for number, path in zip(numbers, paths):
        dataset = pydicom.dcmread(path)
        dataset.InstanceNumber = number
        for keyword, value in tags.items():
            setattr(dataset, keyword, value)
        dataset.save_as(path)
    with caplog.at_level(logging.WARNING, logger=_LOGGER):
        assert read_dicom_series(tmp_path).array.shape[2] == 6
    assert _instance_warnings(caplog) == []


def test_zero_based_numbering_that_lost_its_last_file_names_the_number_lost(tmp_path, caplog):
    """Numbered from 0 (some vendors), 0 to 4 of a stated 6: InstanceNumber 5 is missing, not "5-6" (no file of the
    series is numbered 6)."""
    _, paths = make_series(tmp_path)
    _renumber(paths, 0, ImagesInAcquisition=6)
    paths[-1].unlink()
    with caplog.at_level(logging.WARNING, logger=_LOGGER), pytest.warns(MedsegWarning) as caught:
        read_dicom_series(tmp_path)
    told = _instance_warnings(caplog)
    assert [str(w.message) for w in caught] == told
    assert len(told) == 1 and told[0].split("): ", 1)[1] == (
        "InstanceNumber 5 missing (ImagesInAcquisition says 6 images, 5 here): files of the series may have been "
        "lost, their slices left out of the volume; copy the series again from its source")


@pytest.mark.parametrize("stated", [12, 18])
def test_a_count_over_several_series_of_one_acquisition_is_not_warned_about(tmp_path, caplog, stated):
    """Each echo saved as a series of its own, or a derived series (an ADC map of a DWI acquisition of 3 b-values),
    may state the images of the whole acquisition: 6 slices numbered 1 to 6 of a stated 12 or 18 were warned of as
    6 or 12 lost files. A stated count that is a whole multiple of the images here is such a count, not a loss."""
    _, paths = make_series(tmp_path)
    _renumber(paths, 1, ImagesInAcquisition=stated)
    with caplog.at_level(logging.WARNING, logger=_LOGGER):
        assert read_dicom_series(tmp_path).array.shape[2] == 6
    assert _instance_warnings(caplog) == []


def _numbered(folder, numbers, acquisitions=None, **kwargs):
    """A 6-slice series numbered ``numbers`` (in slice order), with ``acquisitions`` as AcquisitionNumbers."""
    _, paths = make_series(folder, **kwargs)
    for k, path in enumerate(paths):
        dataset = pydicom.dcmread(path)
        dataset.InstanceNumber = numbers[k]
        if acquisitions is not None:
            dataset.AcquisitionNumber = acquisitions[k]
        dataset.save_as(path)
    return paths


def test_realistic_numberings_of_whole_series_are_not_warned_about(tmp_path, caplog):
    """Whole series numbered as exports number them: from 0 (some vendors); restarting at 1 for a second acquisition
    of the stack (two AcquisitionNumbers); a localizer of three sagittal images numbered 1 to 3 in the axial series'
    own UID, the axial images 4 to 9 (a part of a split series); an enhanced multi-frame file numbered 2."""
    from dicom_factory import SAGITTAL, slice_positions, stored_values, write_series
    from highdicom.legacy import LegacyConvertedEnhancedCTImage

    _numbered(tmp_path / "zero", [0, 1, 2, 3, 4, 5])
    _numbered(tmp_path / "restart", [1, 2, 3, 1, 2, 3], acquisitions=[1, 1, 1, 2, 2, 2])
    uid = pydicom.uid.generate_uid()
    _numbered(tmp_path / "localizer", [4, 5, 6, 7, 8, 9], series_uid=uid)
    write_series(tmp_path / "localizer", stored_values((10, 8, 3)), slice_positions(3, 20.0, orientation=SAGITTAL),
                 orientation=SAGITTAL, series_uid=uid, prefix="loc", image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"))
    _, paths = make_series(tmp_path / "single")
    enhanced = LegacyConvertedEnhancedCTImage([pydicom.dcmread(p) for p in paths],
                                              series_instance_uid=pydicom.uid.generate_uid(), series_number=9,
                                              sop_instance_uid=pydicom.uid.generate_uid(), instance_number=2)
    (tmp_path / "multi").mkdir()
    enhanced.save_as(tmp_path / "multi" / "enhanced.dcm")
    with caplog.at_level(logging.WARNING, logger=_LOGGER):
        for name, series in (("zero", None), ("restart", None), ("localizer", "3-1"), ("multi", None)):
            assert read_dicom_series(tmp_path / name, series=series).array.shape[2] == 6, name
    assert _instance_warnings(caplog) == []


def test_a_series_alone_numbered_from_4_says_the_numbers_cannot_tell_a_loss(tmp_path, caplog, capsys, monkeypatch):
    """A series alone numbered 4 to 103 (here 4 to 9: the same case, cheaper), no count stated: lost first files, or
    a scanner numbering across the study whose other series are not here. The warning said only that files "may have
    been lost", and inspect's help that its flag lost-files means "files lost": both say now that the numbers cannot
    tell the two apart, and inspect --json gives the warning's words."""
    import json

    from conftest import run_cli

    _, paths = make_series(tmp_path / "s", series_number=3)
    _renumber(paths, 4)
    said = ("InstanceNumbers 1-3 missing (those here run 4 to 9): files of the series may have been lost, their "
            "slices left out of the volume, or the scanner numbered its images across the study, whose other series "
            "are not here (the numbers cannot tell the two apart); copy the series again from its source")
    with caplog.at_level(logging.WARNING, logger=_LOGGER), pytest.warns(MedsegWarning, match="cannot tell"):
        volume = read_dicom_series(tmp_path / "s")
    assert volume.array.shape[2] == 6
    assert [line.split(": ", 2)[2] for line in _instance_warnings(caplog)] == [said]
    monkeypatch.delenv("COLUMNS", raising=False)
    code, out, _ = run_cli(["inspect", str(tmp_path / "s"), "--json"], capsys)
    assert code == 0 and json.loads(out)["series"][0]["missing_instances"] == said
    code, out, _ = run_cli(["inspect", "--help"], capsys)
    assert "lost-files (InstanceNumbers missing at its ends: files lost, or numbering across a study whose other " \
           "series are not here, which the numbers cannot tell apart; --json says which)" in " ".join(out.split())


@pytest.mark.parametrize(("main_first", "warned"), [(4, False), (3, True)])
def test_numbering_across_the_study_is_told_by_the_studys_other_series(tmp_path, caplog, main_first, warned):
    """A scanner numbering across a study: a 3-image localizer 1 to 3, then the series 4 to 9. Its numbers start
    closer to 1 than it has images, so it was warned "InstanceNumbers 1-3 missing", though nothing was lost: the
    study's other series in the folder hold exactly those numbers, and none of its own. Numbered series by series
    (the localizer 1 to 3, the series from 1, its first two files lost: 3 to 8), the numbers overlap and the loss is
    still told."""
    _, localizer = make_series(tmp_path / "localizer", shape=(10, 8, 3), series_number=1, prefix="l",
                               description="localizer", image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"))
    _renumber(localizer, 1)
    _, paths = make_series(tmp_path / "series")
    _renumber(paths, main_first)
    with caplog.at_level(logging.WARNING, logger=_LOGGER), warnings.catch_warnings(record=True):
        warnings.simplefilter("always", MedsegWarning)
        volume = read_dicom_series(tmp_path, series="3")
    assert volume.array.shape[2] == 6
    if warned:
        assert [line.split(": ", 2)[2] for line in _instance_warnings(caplog)] == [
            "InstanceNumbers 1-2 missing (those here run 3 to 8): files of the series may have been lost, their "
            "slices left out of the volume; copy the series again from its source"]
    else:
        assert _instance_warnings(caplog) == []
    from medseg.io.dicom import describe_folder

    listed = {entry["key"]: entry["missing_instances"] for entry in describe_folder(tmp_path)["series"]}
    assert (listed["3"] is not None, listed["1"]) == (warned, None)  # inspect flags it as the reading warns


def test_a_series_of_no_stated_study_beside_other_series_is_not_said_to_be_alone(tmp_path, caplog):
    """Files that state no StudyInstanceUID (an anonymiser dropped it) cannot be told to be of the study of the
    folder's other series: a localizer numbered 1 to 3 beside the series 4 to 9 is no proof. The warning said the
    study's "other series are not here", where the localizer was; it says now that no study is stated to tell."""
    _, localizer = make_series(tmp_path / "localizer", shape=(10, 8, 3), series_number=1, prefix="l",
                               description="localizer", image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"))
    _, paths = make_series(tmp_path / "series")
    for first, files in ((1, localizer), (4, paths)):
        _renumber(files, first)
        for path in files:
            dataset = pydicom.dcmread(path)
            del dataset.StudyInstanceUID
            dataset.save_as(path)
    with caplog.at_level(logging.WARNING, logger=_LOGGER), warnings.catch_warnings(record=True):
        warnings.simplefilter("always", MedsegWarning)
        read_dicom_series(tmp_path, series="3")
    assert [line.split(": ", 2)[2] for line in _instance_warnings(caplog)] == [
        "InstanceNumbers 1-3 missing (those here run 4 to 9): files of the series may have been lost, their slices "
        "left out of the volume, or the scanner numbered its images across the study, which its files do not name "
        "(no StudyInstanceUID: the folder's other series cannot tell the two apart); copy the series again from its "
        "source"]
