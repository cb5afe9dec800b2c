"""Series discovery, splitting and explicit choice (medseg/io/dicom_series.py): keys, localizers, skipped files,
copies and series passed over. All on synthetic series written with pydicom."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from conftest import run_cli
from dicom_factory import AXIAL, SAGITTAL, SHAPE, make_series, slice_positions

from medseg.cli import main
from medseg.cli.options import OPTION_NAMES
from medseg.errors import DicomError, ImageReadError, MedsegWarning
from medseg.io import read_image
from medseg.io.dicom import describe_folder, read_dicom_series
from medseg.io.dicom_series import scan_folder
from medseg.settings_named import named_as


def test_shuffled_single_series_is_chosen_with_reason(tmp_path):
    values, paths = make_series(tmp_path / "study" / "a" / "b", seed=4)
    volume = read_image(tmp_path / "study")  # found recursively
    np.testing.assert_array_equal(volume.array, values.astype(np.float32) - 1024.0)
    assert volume.info["selection"] == "the only eligible 3D series"
    assert volume.info["series_number"] == 3 and volume.info["modality"] == "CT"
    assert volume.info["files"] == SHAPE[2] and volume.header is None
    assert volume.source == tmp_path / "study" and len(volume.source_sha256) == 64
    assert volume.dicom.paths[0] != volume.dicom.paths[1] and set(volume.dicom.paths) == set(paths)
    # the hash is of the series' contents: read from its own folder, or from a renamed copy elsewhere, it is the
    # same (the report's duplicate_input check compares it)
    copy = tmp_path / "elsewhere" / "copy"
    copy.mkdir(parents=True)
    for k, path in enumerate(paths):
        shutil.copyfile(path, copy / f"img{k:04d}")
    assert read_image(tmp_path / "study" / "a" / "b").source_sha256 == volume.source_sha256
    assert read_image(copy).source_sha256 == volume.source_sha256


def test_a_choice_among_series_of_several_studies_says_so_naming_the_studies_not_the_patients(tmp_path, capsys):
    """A folder is read as one study: one holding two patients' series (an export of a whole worklist) was "2
    eligible series, choose one", as if they were series of one study; now it says how many studies, each named by
    its date and description (its UID's tail where these do not tell it apart), never by its PatientID or name,
    which medseg prints nowhere else (a QA log is no place for them)."""
    patient = {"PatientID": "P-17", "PatientName": "Doe^Jane"}
    make_series(tmp_path / "study" / "a", seed=1, series_number=3, description="t1", prefix="a",
                extra={"StudyInstanceUID": "1.2.826.0.1.3680043.8.498.71", "StudyDate": "20240301",
                       "StudyDescription": "MR knee", **patient})
    make_series(tmp_path / "study" / "b", seed=2, series_number=5, description="ct", prefix="b",
                extra={"StudyInstanceUID": "1.2.826.0.1.3680043.8.498.72", "StudyDate": "20240302",
                       "StudyDescription": "CT head", "PatientID": "P-18", "PatientName": "Roe^John"})
    make_series(tmp_path / "same" / "a", seed=1, series_number=3, description="t1", prefix="a",  # one date
                extra={"StudyInstanceUID": "1.2.826.0.1.3680043.8.498.71", **patient})
    make_series(tmp_path / "same" / "b", seed=2, series_number=5, description="ct", prefix="b",
                extra={"StudyInstanceUID": "1.2.826.0.1.3680043.8.498.72", **patient})
    make_series(tmp_path / "one" / "a", seed=1, series_number=3, description="t1", prefix="a")  # one study
    make_series(tmp_path / "one" / "b", seed=2, series_number=5, description="ct", prefix="b")
    with pytest.raises(DicomError) as info:
        read_dicom_series(tmp_path / "study")
    assert str(info.value).startswith(f"{tmp_path / 'study'}: 2 eligible series of 2 studies (2024-03-01 'MR knee', "
                                      "2024-03-02 'CT head'), choose one with series=... (in a sample sheet: the "
                                      "series column), or give the folder of one (listed with it): series 3 't1'")
    with pytest.raises(DicomError) as info:
        read_dicom_series(tmp_path / "same")
    assert str(info.value).startswith(f"{tmp_path / 'same'}: 2 eligible series of 2 studies (2024-01-01 UID …498.71, "
                                      "2024-01-01 UID …498.72), choose one with series=...")
    with pytest.raises(DicomError) as info:
        read_dicom_series(tmp_path / "one")
    assert str(info.value).startswith(f"{tmp_path / 'one'}: 2 eligible series, choose one with series=...")
    code, out, err = run_cli(["inspect", str(tmp_path / "study")], capsys)
    assert code == 0 and "would use: none: " in out
    assert "2 eligible series of 2 studies (2024-03-01 'MR knee', 2024-03-02 'CT head')" in out
    assert not [word for word in ("P-17", "P-18", "Doe", "Roe") if word in out + err]
    assert read_dicom_series(tmp_path / "study", series="5").info["series_number"] == 5  # chosen: read as before


def test_two_series_are_refused_and_listed_then_chosen_by_number_or_uid(tmp_path):
    make_series(tmp_path, seed=1, series_number=3, description="arterial", series_uid="1.2.3.3", prefix="a")
    values, _ = make_series(tmp_path, seed=2, series_number=5, description="venous", series_uid="1.2.3.5", prefix="v")
    with pytest.raises(DicomError) as info:
        read_dicom_series(tmp_path)
    message = str(info.value)
    assert "2 eligible series, choose one with series=..." in message and "\n" not in message
    assert "series 3 'arterial'" in message and "series 5 'venous'" in message and str(tmp_path) in message
    for choice in ("5", "1.2.3.5"):
        volume = read_dicom_series(tmp_path, series=choice)
        assert volume.info["series_uid"] == "1.2.3.5"
        np.testing.assert_array_equal(volume.array, values.astype(np.float32) - 1024.0)
    with pytest.raises(DicomError, match=r"no series matches the series asked for, '7' \(a key, number or UID `medseg "
                                         r"inspect` lists\); found series 3 'arterial'"):
        read_dicom_series(tmp_path, series="7")


def test_a_recorded_series_uid_is_matched_as_a_uid_only(tmp_path):
    """A sidecar's ``series_uid`` (a :class:`SeriesUID`) was matched as a --series value is, a key or a number first:
    one edited to ``5`` read series number 5. It matches a SeriesInstanceUID alone; the same text as a --series value
    still names series 5."""
    from medseg.io.dicom_series import SeriesUID

    make_series(tmp_path, seed=1, series_number=3, description="arterial", series_uid="1.2.3.3", prefix="a")
    make_series(tmp_path, seed=2, series_number=5, description="venous", series_uid="1.2.3.5", prefix="v")
    assert read_dicom_series(tmp_path, series=SeriesUID("1.2.3.5")).info["series_number"] == 5
    assert read_dicom_series(tmp_path, series="5").info["series_uid"] == "1.2.3.5"
    with pytest.raises(DicomError) as info:
        read_dicom_series(tmp_path, series=SeriesUID("5"))
    assert str(info.value).startswith(f"{tmp_path}: no series has the SeriesInstanceUID asked for, '5'; found "
                                      "series 3 'arterial'"), str(info.value)

def test_a_second_reading_does_not_claim_a_user_chose_the_series(tmp_path, caplog):
    """The report re-reads an input with the series UID its sidecar records; its log said "chosen with --series
    <UID>" for a sheet row that named no series."""
    make_series(tmp_path, seed=1, series_uid="1.2.3.3")
    with caplog.at_level("INFO"):
        read_dicom_series(tmp_path, series="1.2.3.3", warn_skipped=False)
    assert not [r for r in caplog.records if r.levelname != "DEBUG" and "--series" in r.getMessage()]
    caplog.clear()
    with caplog.at_level("INFO"):
        read_dicom_series(tmp_path, series="1.2.3.3")
    assert any("chosen with --series 1.2.3.3" in r.getMessage() for r in caplog.records)


def test_localizer_is_dropped(tmp_path):
    values, _ = make_series(tmp_path, seed=1, series_number=4)
    # a three-image localizer of its own series, and one labelled LOCALIZER
    for part, orientation in enumerate((AXIAL, SAGITTAL, (1.0, 0.0, 0.0, 0.0, 0.0, -1.0))):
        make_series(tmp_path / "loc", seed=10 + part, shape=(10, 8, 1), series_number=1, description="3 plane",
                    series_uid="1.2.9.1", orientation=orientation, prefix=f"l{part}")
    make_series(tmp_path / "scout", seed=20, shape=(10, 8, 2), series_number=2, description="scout",
                image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"))
    volume = read_dicom_series(tmp_path)
    assert volume.info["series_number"] == 4
    assert volume.info["selection"].startswith("the only eligible 3D series (4 others not eligible: series 1-1")
    np.testing.assert_array_equal(volume.array, values.astype(np.float32) - 1024.0)
    report = describe_folder(tmp_path)
    flags = {entry["key"]: entry["flags"] for entry in report["series"]}
    assert "localizer" in flags["2"] and all("localizer" in flags[f"1-{p}"] for p in (1, 2, 3))
    assert report["chosen"]["key"] == "4"


def test_mixed_orientations_are_split_and_addressed_by_part(tmp_path):
    make_series(tmp_path, seed=1, series_uid="1.2.7", prefix="ax")
    values, _ = make_series(tmp_path, seed=2, series_uid="1.2.7", orientation=SAGITTAL, prefix="sag")
    scan = scan_folder(tmp_path)
    assert sorted(c.key for c in scan.candidates) == ["3-1", "3-2"]
    assert all(c.split_reason == "orientation" for c in scan.candidates)
    with pytest.raises(DicomError, match="series='3' is ambiguous"):
        read_dicom_series(tmp_path, series="3")
    sagittal = next(c for c in scan.candidates if c.geometry.plane == "sagittal")
    volume = read_dicom_series(tmp_path, series=sagittal.key)
    assert volume.info["plane"] == "sagittal"
    np.testing.assert_array_equal(volume.array, values.astype(np.float32) - 1024.0)


def test_a_series_number_two_studies_share_is_no_key_every_listed_key_can_be_given(tmp_path, capsys):
    """A folder of two studies held two series numbered 3: `inspect` listed the key 3 twice and `--series 3` was
    refused as ambiguous, so a key the listing showed could not be used. Such series are keyed by their UIDs."""
    first, _ = make_series(tmp_path / "study1", seed=1, series_uid="1.2.40.1", prefix="a")
    second, _ = make_series(tmp_path / "study2", seed=2, series_uid="1.2.40.2", prefix="b")
    make_series(tmp_path / "study2", seed=3, series_number=5, prefix="c")
    assert [c.key for c in scan_folder(tmp_path).candidates] == ["1.2.40.1", "1.2.40.2", "5"]
    for key, values in (("1.2.40.1", first), ("1.2.40.2", second)):
        np.testing.assert_array_equal(read_dicom_series(tmp_path, series=key).array, values.astype(np.float32) - 1024)
    code, out, _ = run_cli(["inspect", str(tmp_path)], capsys)
    assert code == 0 and [line.split()[0] for line in out.splitlines()[1:4]] == ["1.2.40.1", "1.2.40.2", "5"]
    code, out, _ = run_cli(["convert", str(tmp_path), str(tmp_path / "two.nii.gz"), "--series", "1.2.40.2"], capsys)
    assert code == 0 and f"{tmp_path} -> {tmp_path / 'two.nii.gz'}: series 3 'synthetic', UID 1.2.40.2 10x8x6" in out
    # convert wrote two.nii.gz into the folder: skipped, and said so
    with pytest.warns(MedsegWarning, match=re.escape(f"{tmp_path}: skipped 1 file that is not DICOM (two.nii.gz)")), \
            pytest.raises(DicomError) as refused:
        read_dicom_series(tmp_path, series="3")
    assert str(refused.value) == (
        f"{tmp_path}: series='3' is ambiguous, it matches series 3 'synthetic' (CT, 6 images, UID 1.2.40.1) "
        "[eligible]; series 3 'synthetic' (CT, 6 images, UID 1.2.40.2) [eligible]; pass one of their UIDs")


def test_two_echoes_in_one_series_are_split(tmp_path):
    make_series(tmp_path, seed=1, series_uid="1.2.8", modality="MR", prefix="e1", extra={"EchoNumbers": 1})
    make_series(tmp_path, seed=2, series_uid="1.2.8", modality="MR", prefix="e2", extra={"EchoNumbers": 2})
    with pytest.raises(DicomError, match="2 eligible series"):
        read_dicom_series(tmp_path)
    assert {c.split_reason for c in scan_folder(tmp_path).candidates} == {"echo"}
    assert "non-HU" in read_dicom_series(tmp_path, series="3-2").info["flags"]


def test_a_split_for_two_reasons_is_one_flag_word(tmp_path, capsys):
    """A series split by orientation and echo was flagged "split:orientation, echo", which ran into the other flags
    of `inspect`'s comma-joined FLAGS column."""
    make_series(tmp_path, seed=1, series_uid="1.2.9", modality="MR", prefix="a", extra={"EchoNumbers": 1})
    make_series(tmp_path, seed=2, series_uid="1.2.9", modality="MR", prefix="s", orientation=SAGITTAL,
                extra={"EchoNumbers": 2})
    assert {c.split_reason for c in scan_folder(tmp_path).candidates} == {"orientation, echo"}
    flags = read_dicom_series(tmp_path, series="3-1").info["flags"]
    assert "split:orientation+echo" in flags
    code, out, _ = run_cli(["inspect", str(tmp_path)], capsys)
    assert code == 0 and "split:orientation+echo" in out and "split:orientation, echo" not in out


def test_non_dicom_files_are_skipped_and_listed(tmp_path, caplog):
    values, _ = make_series(tmp_path, seed=1)
    (tmp_path / "README.txt").write_text("scanner export\n")
    (tmp_path / "notes.bin").write_bytes(b"\x00" * 300)
    # a CD export's viewer page: pydicom, forced to parse it, warned "Expected implicit VR, but found explicit VR"
    (tmp_path / "index.html").write_text("<!DOCTYPE html>\n<html><body>viewer</body></html>\n")
    with caplog.at_level("WARNING"), pytest.warns(MedsegWarning) as caught:
        volume = read_dicom_series(tmp_path)
    np.testing.assert_array_equal(volume.array, values.astype(np.float32) - 1024.0)
    assert sorted(volume.info["skipped_files"]) == ["README.txt: not a DICOM file", "index.html: not a DICOM file",
                                                    "notes.bin: not a DICOM file"]
    said = [f"{tmp_path}: skipped 3 files that are not DICOM (README.txt, index.html, notes.bin)"]
    assert [r.getMessage() for r in caplog.records] == said
    assert [str(w.message) for w in caught] == said


def test_empty_folder_and_folder_without_dicom(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DicomError, match=r"empty: empty folder, no DICOM files$"):
        read_dicom_series(tmp_path / "empty")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("hello")
    with pytest.raises(DicomError, match=r"docs: no DICOM images found \(1 non-DICOM file\)"):
        read_dicom_series(tmp_path / "docs")


def test_a_model_package_given_as_a_study_is_named_as_one(tmp_path, capsys):
    """`medseg inspect my_model` (or a package given as infer's input): the line said only "no DICOM images found"."""
    package = tmp_path / "my_model"
    package.mkdir()
    for name in ("model.json", "weights.safetensors", "MODEL_CARD.md"):
        (package / name).write_text("{}")
    with pytest.raises(SystemExit) as info:
        main(["inspect", str(package)])
    assert info.value.code == 1
    assert capsys.readouterr().err == (
        f"medseg: error: {package}: no DICOM images found (3 non-DICOM files); it is a model package (model.json), "
        f"not a DICOM study: `medseg models {package}` describes it, and `medseg infer -m {package}` segments with "
        "it\n")
    # inspect has no -m: it said "`-m DIR` segments with it", another command's option with no command named;
    # a command with -m (a sheet's image in `medseg cohort infer`) names its -m, a Python caller its package argument
    from medseg.cli.options import COMMAND_OPTIONS
    from medseg.settings_named import named_as

    with named_as(COMMAND_OPTIONS["cohort infer"], "cohort infer"), pytest.raises(DicomError) as refused:
        read_dicom_series(package)
    assert str(refused.value).endswith(f"describes it, and `-m {package}` segments with it")
    with pytest.raises(DicomError) as refused:
        read_dicom_series(package)
    assert str(refused.value).endswith(f"describes it, and package={str(package)!r} segments with it")


def test_a_subfolder_that_cannot_be_listed_is_one_line_naming_it(tmp_path, monkeypatch, capsys):
    """A part of the folder that cannot be listed was passed over in silence (a series stored in part there read
    without those slices) or ended in a traceback. Here a subfolder nested past the system's path limit (4096 bytes),
    which no one, root included, can list by its full path."""
    import os

    make_series(tmp_path / "study", seed=1)
    monkeypatch.chdir(tmp_path / "study")
    for _ in range(18):  # 18 x 251 bytes: made one level at a time, relative to the folder before
        os.mkdir("d" * 250)
        os.chdir("d" * 250)
    Path("stray.txt").write_text("x")
    monkeypatch.chdir(tmp_path)
    study = re.escape(str(tmp_path / "study"))
    with pytest.raises(ImageReadError) as error:
        read_dicom_series(tmp_path / "study")
    message = str(error.value)
    assert re.fullmatch(rf"{study}: cannot list {study}(/d{{250}})+ \(file name too long\)", message)
    code, out, err = run_cli(["infer", str(tmp_path / "study"), "-o", str(tmp_path / "out")], capsys)
    assert code == 1 and err.strip().splitlines()[-1] == f"medseg: error: {message}" and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_mosaic_is_refused_with_a_reason(tmp_path):
    make_series(tmp_path, seed=1, modality="MR", image_type=("ORIGINAL", "PRIMARY", "M", "ND", "MOSAIC"))
    with pytest.raises(DicomError, match="Siemens mosaic .* not supported, convert it with dcm2niix"):
        read_dicom_series(tmp_path)


def _retag(paths, **changes) -> None:
    for index, path in enumerate(paths):
        dataset = pydicom.dcmread(path)
        for keyword, value in changes.items():
            value = value(index) if callable(value) else value
            if value is None:
                delattr(dataset, keyword)
            else:
                setattr(dataset, keyword, value)
        dataset.save_as(path)


def test_orientations_a_hair_apart_stay_one_series(tmp_path):
    values, paths = make_series(tmp_path, seed=2)
    # ±1e-6 around 0.0005, across the old 3-decimal rounding boundary; well inside the geometry tolerance
    _retag(paths, ImageOrientationPatient=lambda k: [1.0, 0.0005 + (-1) ** k * 1e-6, 0.0, 0.0, 1.0, 0.0])
    volume = read_dicom_series(tmp_path)
    assert volume.shape == values.shape


def test_a_series_without_series_uid_is_read(tmp_path):
    values, paths = make_series(tmp_path, seed=3)
    _retag(paths, SeriesInstanceUID=None)
    volume = read_dicom_series(tmp_path)
    assert volume.shape == values.shape and "no-series-uid" in volume.info["flags"]


def test_a_key_that_is_a_place_in_the_listing_is_warned_about(tmp_path, caplog):
    """Series with neither a UID nor a number are keyed #N, their place in the folder's listing: a series added to
    the folder moved a sample sheet's #2 onto another series without a word. Choosing one by such a key says so,
    and names the series' own folder; a key of its own (a number) says nothing."""
    _, first = make_series(tmp_path / "study" / "a", seed=3, shape=(16, 16, 4), description="first")
    _, second = make_series(tmp_path / "study" / "b", seed=4, shape=(16, 16, 4), description="second")
    _retag(first + second, SeriesInstanceUID=None, SeriesNumber=None)
    scan = scan_folder(tmp_path / "study")
    assert sorted(c.key for c in scan.candidates) == ["#1", "#2"]
    caplog.clear()
    with pytest.warns(MedsegWarning) as caught:
        volume = read_dicom_series(tmp_path / "study", "#2")
    note = ("#2 is this series' place in the folder's listing, as it has no UID or number of its own, and moves onto "
            f"another series if one is added; give its own folder, {tmp_path / 'study' / 'b'}, to name it for good")
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        f"{tmp_path / 'study'}: series='#2': {note}"] == [str(w.message) for w in caught]
    assert volume.info["description"] == "second" and note in volume.info["selection"]
    # the folder's only series: no folder of its own to name; without --series it is chosen, and a series added
    # later makes that refuse to choose (not silent)
    caplog.clear()
    with pytest.warns(MedsegWarning, match=r"it is the folder's only series: leave series=\.\.\. out$"):
        only = read_dicom_series(tmp_path / "study" / "a", "#1")
    # the warning names the setting as its caller gives it (it told a Python caller "series='#1': ... leave --series
    # out"), the record as medseg records a choice, whoever made it
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"][0].endswith(
        "moves onto another series if one is added; it is the folder's only series: leave series=... out")
    assert only.info["selection"].endswith("it is the folder's only series: leave --series out)")
    caplog.clear()
    with named_as(OPTION_NAMES), pytest.warns(MedsegWarning, match=r": --series #1: .* leave --series out$"):
        read_dicom_series(tmp_path / "study" / "a", "#1")
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"][0] == (
        f"{tmp_path / 'study' / 'a'}: --series #1: #1 is this series' place in the folder's listing, as it has no UID "
        "or number of its own, and moves onto another series if one is added; it is the folder's only series: leave "
        "--series out")
    make_series(tmp_path / "other", seed=5, shape=(16, 16, 4), series_number=7)
    caplog.clear()
    read_dicom_series(tmp_path / "other", "7")
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


def test_a_place_key_asked_for_without_its_hash_says_to_quote_it(tmp_path, capsys):
    """``inspect`` lists a series with neither a UID nor a number as ``#1``; in a shell an unquoted ``#`` starts a
    comment (``--series #1`` is ``--series`` with no value), so a user types ``--series 1``, which matched nothing
    and said only that. It names the key and how to type it."""
    make_series(tmp_path / "study", seed=3, shape=(16, 16, 4), description="first")
    _retag(sorted((tmp_path / "study").iterdir()), SeriesInstanceUID=None, SeriesNumber=None)
    study = tmp_path / "study"
    with pytest.raises(DicomError) as raised:
        read_dicom_series(study, "1")
    assert str(raised.value) == (
        f"{study}: no series matches the series asked for, '1' (a key, number or UID `medseg inspect` lists); its "
        "key #1, its place in the listing, is written with the # (series='#1'); found series #1 'first' (CT, 4 "
        "images, UID none) [eligible]")
    code, _, err = run_cli(["convert", str(study), str(tmp_path / "x.nii.gz"), "--series", "1"], capsys)
    assert code == 1 and "--series '#1', where an unquoted # starts" in err and not (tmp_path / "x.nii.gz").exists()
    # a number that is no series' place says no more than before
    with pytest.raises(DicomError) as raised:
        read_dicom_series(study, "2")
    assert "#" not in str(raised.value).split("; found")[0]
    # the option's help, which names the key among the examples, writes it as a shell takes it
    for command in ("infer", "convert", "inspect"):
        code, out, _ = run_cli([command, "--help"], capsys)
        assert code == 0 and "'#1'" in " ".join(out.split()), command


def test_copies_of_the_same_images_are_ignored_with_a_warning(tmp_path, caplog):
    import shutil

    values, paths = make_series(tmp_path / "study", seed=4)
    shutil.copytree(tmp_path / "study", tmp_path / "study" / "backup")
    with caplog.at_level("WARNING", logger="medseg"), pytest.warns(MedsegWarning) as caught:
        volume = read_dicom_series(tmp_path / "study")
    assert volume.shape == values.shape
    copies = [r.getMessage() for r in caplog.records if "same SOPInstanceUID, same bytes" in r.getMessage()]
    study = tmp_path / "study"
    assert copies == [f"{study / 'backup' / '0000.dcm'}: a copy of {study / '0000.dcm'} (same SOPInstanceUID, same "
                      f"bytes); {len(paths) - 1} more files copy others of the series; each image used once"]
    assert [str(w.message) for w in caught] == copies
    # another file that claims an image's SOPInstanceUID is not taken for a copy
    impostor = pydicom.dcmread(paths[0])
    impostor.PixelData = bytes(len(impostor.PixelData))
    impostor.save_as(tmp_path / "study" / "00.dcm")
    with pytest.warns(MedsegWarning, match=re.escape(copies[0].split("; ")[0] + "; ")), \
            pytest.raises(DicomError, match="carry the same SOPInstanceUID .* but differ; remove the wrong one"):
        read_dicom_series(tmp_path / "study")  # the backup's copies are told before the impostor is refused


def test_a_single_valued_image_type_is_one_value(tmp_path):
    _, paths = make_series(tmp_path, seed=6)
    _retag(paths, ImageType="LOCALIZER")
    from medseg.io.dicom_series import scan_folder

    (candidate,) = scan_folder(tmp_path).candidates
    assert candidate.image_type == ("LOCALIZER",) and candidate.localizer


def test_infer_names_the_series_and_warns_about_a_broken_one(tmp_path, capsys, caplog):
    make_series(tmp_path / "study", seed=7, series_number=4, description="thick recon")
    broken = slice_positions(SHAPE[2] + 1, 2.0)
    del broken[2]  # a slice missing in the middle
    make_series(tmp_path / "study", seed=8, series_number=3, description="main", positions=broken, prefix="m")
    with caplog.at_level("WARNING", logger="medseg"):
        code, out, err = run_cli(["infer", str(tmp_path / "study"), "--model", "phantom", "-o", str(tmp_path / "out"),
                                  "--device", "cpu"], capsys)
    assert code == 0, err
    assert "(series 4 'thick recon') ->" in out
    assert any("1 other image series could not be used: series 3 'main'" in r.getMessage() and "missing slices"
               in r.getMessage() for r in caplog.records)


def test_a_broken_series_passed_over_is_recorded_and_shown_in_the_report(tmp_path, capsys):
    """A cohort's QA reader sees the report, not the job's log: a series passed over because it cannot be one
    volume (it may be the one wanted) is recorded in the sidecar and shown on the case's card."""
    import json

    make_series(tmp_path / "study", seed=7, series_number=4, description="thick recon")
    broken = slice_positions(SHAPE[2] + 1, 2.0)
    del broken[2]
    make_series(tmp_path / "study", seed=8, series_number=3, description="main", positions=broken, prefix="m")
    with pytest.warns(MedsegWarning) as caught:
        volume = read_dicom_series(tmp_path / "study")
    (passed,) = volume.info["passed_over"]
    assert passed.startswith("series 3 'main'") and "missing slices" in passed
    assert [str(w.message) for w in caught] == [
        f"{tmp_path / 'study'}: using series 4 'thick recon' (CT, 6 images, UID {volume.info['series_uid']}); 1 other "
        f"image series could not be used: {passed}"]
    assert read_dicom_series(tmp_path / "study", "4").info["passed_over"] == []  # chosen by the user: no note
    code, _, err = run_cli(["infer", str(tmp_path / "study"), "--model", "phantom", "-o", str(tmp_path / "out"),
                            "--device", "cpu"], capsys)
    assert code == 0, err
    sidecar = json.loads((tmp_path / "out" / "study_seg.json").read_text())
    assert sidecar["input_info"]["passed_over"] == [passed]
    code, _, err = run_cli(["report", str(tmp_path / "out")], capsys)
    assert code == 0, err
    import html

    page = html.unescape((tmp_path / "out" / "report.html").read_text())
    assert f"another image series of the input could not be used and was passed over: {passed}" in page


def test_one_dicom_file_given_to_infer_is_told_to_give_its_folder(tmp_path, capsys):
    """Before: "…/0001.dcm: not a NIfTI image (Cannot work out file type of …)", as if the file were broken."""
    _, paths = make_series(tmp_path / "series")
    bare = tmp_path / "IM0001"  # from an archive: no suffix, the DICM marker only
    shutil.copyfile(paths[0], bare)
    for given in (paths[0], bare):
        code, out, err = run_cli(["infer", str(given), "-o", str(tmp_path / "out")], capsys)
        assert (code, out) == (1, "") and err.strip().splitlines()[-1] == (
            f"medseg: error: {given}: a DICOM file, not a NIfTI image; give the folder of its series ({given.parent}), "
            "with --series (in a sample sheet: the series column) where it holds more than one")
    assert not (tmp_path / "out").exists()
    # a SEG (or another non-image object) given as the input: the series' folder is not the advice for it
    for modality, problem in (("SEG", "a DICOM SEG (a segmentation), not an image to segment; give the folder of the "
                                      "series it segments as the input, and the SEG as its reference"),
                              ("RTSTRUCT", "a DICOM RTSTRUCT object, not an image")):
        other = tmp_path / f"{modality.lower()}.dcm"
        dataset = pydicom.dcmread(paths[0])
        dataset.Modality = modality
        dataset.save_as(other)
        code, out, err = run_cli(["infer", str(other), "-o", str(tmp_path / "out")], capsys)
        assert (code, out, err.strip().splitlines()[-1]) == (1, "", f"medseg: error: {other}: {problem}")
    assert not (tmp_path / "out").exists()


def test_a_dicom_file_given_to_infer_is_refused_before_the_model_loads(tmp_path, capsys, monkeypatch):
    """One file of a series, a SEG, another non-image object or a DICOMDIR given as the input was refused in its
    right line only after torch and the model had loaded (18-19 s on a loaded 2-core machine, 3 s without); the
    DICOMDIR given with --format dicom-seg was "--format dicom-seg needs a DICOM series folder", which did not say
    that its folder is the one to give."""
    from pydicom.fileset import FileSet

    import medseg.package

    def load_package(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(medseg.package, "load_package", load_package)
    _, paths = make_series(tmp_path / "series")
    bare = tmp_path / "IM0001"  # no suffix, the DICM marker only
    shutil.copyfile(paths[0], bare)
    seg = tmp_path / "seg"
    dataset = pydicom.dcmread(paths[0])
    dataset.Modality = "SEG"
    dataset.save_as(seg)
    file_set = FileSet()
    for path in paths:
        file_set.add(pydicom.dcmread(path))
    file_set.write(tmp_path / "media")
    index = tmp_path / "media" / "DICOMDIR"
    said = {bare: f"a DICOM file, not a NIfTI image; give the folder of its series ({tmp_path}), with --series (in a "
                  "sample sheet: the series column) where it holds more than one",
            seg: "a DICOM SEG (a segmentation), not an image to segment; give the folder of the series it segments as "
                 "the input, and the SEG as its reference",
            index: f"a DICOMDIR, the index of a DICOM export (CD, DVD or USB), not an image; give its folder "
                   f"({tmp_path / 'media'}), which holds the images"}
    for given, problem in said.items():
        for options in ([], ["--format", "dicom-seg"]):
            code, out, err = run_cli(["infer", str(given), "-o", str(tmp_path / "out"), *options], capsys)
            assert (code, out, err.strip().splitlines()) == (1, "", [f"medseg: error: {given}: {problem}"])
    assert not (tmp_path / "out").exists()  # one input: its error line is its whole answer
    # a batch of them: each in its turn, and still no model; each gets its failure record, as any failed input of a
    # batch does, and nothing else is written
    code, out, err = run_cli(["infer", str(bare), str(seg), "-o", str(tmp_path / "out")], capsys)
    assert (code, out) == (1, "") and err.strip().splitlines() == [
        f"medseg: error: {bare}: {said[bare]}", f"medseg: error: {seg}: {said[seg]}",
        f"medseg: 2 of 2 inputs failed ({bare}, {seg})"]
    records = {path.name: json.loads(path.read_text()) for path in (tmp_path / "out").iterdir()}
    assert {name: (record["stage"], record["error"]) for name, record in records.items()} == {
        "IM0001_failed.json": ("read", f"{bare}: {said[bare]}"), "seg_failed.json": ("read", f"{seg}: {said[seg]}")}


@pytest.mark.parametrize(("names", "ending"), [(["a.nii.bz2", "b.nii.bz2", "c.nii.gz"], ".nii.bz2"),
                                               (["a.nii.zst"], ".nii.zst"), (["a.nii", "b.nii"], ".nii"),
                                               (["a.nii.gz", "b.nii"], ".nii.gz")])
def test_a_folder_of_nifti_files_is_told_to_be_given_file_by_file_with_their_ending(tmp_path, names, ending):
    """A folder of .nii.bz2 or .nii.zst cases given as a DICOM study had no hint, and one of .nii files was told
    'e.g. folder/*.nii.gz', which names none of them: the hint names the ending the folder's files have most."""
    for name in names:
        (tmp_path / name).write_bytes(b"\0" * 352)
    with pytest.raises(DicomError) as error:
        scan_folder(tmp_path)
    counted = "1 non-DICOM file" if len(names) == 1 else f"{len(names)} non-DICOM files"
    assert str(error.value) == (f"{tmp_path}: no DICOM images found ({counted}); a folder is read as one DICOM "
                                f"study: give NIfTI files one by one, e.g. {tmp_path}/*{ending}")


def test_planes_put_in_tiles_land_on_their_slices():
    """:func:`medseg.io.dicom._put_planes` writes ``array[:, :, start + n] = planes[n].T`` a tile of columns and
    rows at a time; tiles that do not divide the plane, and a last group of fewer planes, land exactly."""
    from medseg.io.dicom import _put_planes

    rng = np.random.default_rng(4)
    columns, rows, slices = 21, 13, 7
    planes = rng.normal(size=(slices, rows, columns)).astype(np.float32)
    array = np.full((columns, rows, slices), np.nan, np.float32)
    _put_planes(array, planes[:4], 0, columns_at_once=5, rows_at_once=3)
    _put_planes(array, planes[4:], 4, columns_at_once=5, rows_at_once=3)
    assert np.array_equal(array, planes.transpose(2, 1, 0))


class _Recorded(np.ndarray):
    """An array that notes the shape of each block assigned into it."""

    def __setitem__(self, key, value):
        self.blocks.append(np.shape(value))
        super().__setitem__(key, value)


@pytest.mark.parametrize("group, rows_at_once", [(1, 128), (2, 64), (4, 32), (16, 8)])
def test_a_tile_holds_as_many_voxels_whatever_the_group(group, rows_at_once):
    """A group of fewer planes (planes of more than 1 MiB as float32) is put in tiles of more rows, 16 Ki voxels each:
    tiles of 8 rows of one 3000×2500 plane took 79 ms of CPU a plane, against 64 ms in bands of all rows (and 41 ms
    in tiles of 128 rows)."""
    from medseg.io.dicom import _put_planes

    columns, rows = 256, 512
    planes = np.random.default_rng(5).normal(size=(group, rows, columns)).astype(np.float32)
    array = np.zeros((columns, rows, group), np.float32).view(_Recorded)
    array.blocks = []
    _put_planes(array, planes, 0)
    assert set(array.blocks) == {(128, rows_at_once, group)}
    assert len(array.blocks) == (columns // 128) * (rows // rows_at_once)
    assert np.array_equal(np.asarray(array), planes.transpose(2, 1, 0))


def test_a_series_records_each_files_sha256_and_its_hash_is_theirs_combined(tmp_path):
    """A sidecar of a DICOM input held one SHA-256 of the series, of its files' digests: no checksum tool gives it,
    and a series that changed could not be told file by file. ``file_sha256`` names each file read (relative to the
    folder given) with its own SHA-256, which ``sha256sum`` gives, and the series' hash is theirs combined."""
    import hashlib

    _, paths = make_series(tmp_path / "study" / "a", seed=2)
    volume = read_image(tmp_path / "study")
    digests = {path.relative_to(tmp_path / "study").as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
               for path in paths}
    assert volume.info["file_sha256"] == digests and len(digests) == SHAPE[2]
    combined = b"".join(sorted(bytes.fromhex(digest) for digest in digests.values()))
    assert volume.source_sha256 == hashlib.sha256(combined).hexdigest()
    from medseg.io.dicom import read_dicom_grid
    assert read_dicom_grid(tmp_path / "study").info["file_sha256"] == digests
