"""DICOMDIR exports (medseg/io/dicomdir.py): read through their files, copied without images or in part, renamed,
or given where an image is wanted."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from conftest import run_cli
from dicom_factory import make_series

from medseg.errors import DicomError, ImageReadError, InputError
from medseg.io import read_image
from medseg.io.dicom import read_dicom_series
from medseg.io.dicom_series import scan_folder


def test_a_dicomdir_file_set_is_read_through_its_files(tmp_path):
    from pydicom.fileset import FileSet

    values, paths = make_series(tmp_path / "export", seed=9)
    file_set = FileSet()
    for path in paths:
        file_set.add(pydicom.dcmread(path))
    file_set.write(tmp_path / "media")  # DICOMDIR plus files without extensions in nested folders
    volume = read_dicom_series(tmp_path / "media")
    np.testing.assert_array_equal(volume.array, values.astype(np.float32) - 1024.0)
    assert volume.info["ignored_objects"] == ["DICOMDIR: DICOMDIR index, not an image"]


def _export(tmp_path, series=1) -> Path:
    """A CD / USB export as pydicom writes one: a DICOMDIR at its root, each series' files (named without an
    extension) in a folder of their own; series ``k`` has ``6 + k`` images, number ``3 + k``, description ``desc k``."""
    from pydicom.fileset import FileSet

    file_set = FileSet()
    for k in range(series):
        _, paths = make_series(tmp_path / "written" / str(k), seed=k, shape=(10, 8, 6 + k), series_number=3 + k,
                               description=f"desc {k}")
        for path in paths:
            file_set.add(pydicom.dcmread(path))
    file_set.write(tmp_path / "media")
    return tmp_path / "media"


def test_a_dicomdir_copied_without_its_images_says_so(tmp_path, capsys):
    """Only the DICOMDIR of an export copied: was "no DICOM images found (1 non-image DICOM object(s))"."""
    media = _export(tmp_path, series=2)
    (tmp_path / "index").mkdir()
    shutil.copy(media / "DICOMDIR", tmp_path / "index" / "DICOMDIR")
    expected = (f"{tmp_path / 'index'}: its DICOMDIR references 13 images, and none of them is here (the first: "
                "PT000000/ST000000/SE000000/IM000000): the index was copied without the images; copy the export's "
                "whole folder, the DICOMDIR with the folders beside it, and give that folder")
    with pytest.raises(DicomError) as error:
        read_dicom_series(tmp_path / "index")
    assert str(error.value) == expected
    code, out, err = run_cli(["inspect", str(tmp_path / "index")], capsys)
    assert code == 1 and err == f"medseg: error: {expected}\n"
    assert f"would use: none: {expected}" in out


def test_an_export_of_several_series_lists_each_with_the_folder_to_give(tmp_path):
    media = _export(tmp_path, series=2)
    with pytest.raises(DicomError) as error:
        read_dicom_series(media)
    message = str(error.value)
    assert message.startswith(f"{media}: 2 eligible series, choose one with --series (in a sample sheet: the series "
                              "column), or give the folder of one (listed with it): series 3 'desc 0' (CT, 6 images")
    folders = re.findall(r"; folder (\S+)\]", message)
    assert folders == [str(media / "PT000000" / "ST000000" / f"SE00000{k}") for k in range(2)]
    assert [read_dicom_series(folder).array.shape for folder in folders] == [(10, 8, 6), (10, 8, 7)]
    assert read_dicom_series(media, series="4").array.shape == (10, 8, 7)
    shutil.rmtree(media / "PT000000" / "ST000000" / "SE000001")  # one series left: it is read from the root
    assert read_dicom_series(media).array.shape == (10, 8, 6)


def test_several_series_in_one_folder_are_listed_without_a_folder(tmp_path):
    make_series(tmp_path, seed=1, series_number=3, prefix="a")
    make_series(tmp_path, seed=2, series_number=4, prefix="b")
    with pytest.raises(DicomError, match=r"choose one with --series \(in a sample sheet: the series column\): "
                       ) as error:
        read_dicom_series(tmp_path)
    assert "folder" not in str(error.value).split("column): ")[1]


def test_a_series_of_an_export_copied_in_part_is_refused(tmp_path):
    """A slice the DICOMDIR lists is not here: the series was read a slice thinner, in silence."""
    media = _export(tmp_path, series=2)
    (media / "PT000000" / "ST000000" / "SE000001" / "IM000006").unlink()
    scan = scan_folder(media)
    problems = {c.number: c.problem for c in scan.candidates}
    assert problems == {3: None, 4: "1 of the 7 files its DICOMDIR references are not here "
                                    "(PT000000/ST000000/SE000001/IM000006): the export was copied in part, and the "
                                    "series would be read without them; copy it again"}
    with pytest.raises(DicomError, match=r"series 4 'desc 1' \(CT, 6 images, .*\) cannot be one 3D volume: 1 of "):
        read_dicom_series(media, series="4")
    volume = read_dicom_series(media)  # the whole series is chosen, and the other named as not eligible
    assert volume.array.shape == (10, 8, 6) and "1 other(s) not eligible: series 4" in volume.info["selection"]


@pytest.mark.parametrize("ending", [";1", ".;1", "."])
def test_an_export_copied_in_part_from_a_disc_showing_iso_names_is_refused(tmp_path, caplog, ending):
    """A disc read without its Rock Ridge / Joliet names shows each file as ``IM000001;1`` (``IM000001.;1``), which no
    DICOMDIR holds: every series was called renamed since, with a warning, and one copied in part was read a slice
    thinner."""
    media = _export(tmp_path, series=2)
    for path in [p for p in media.rglob("*") if p.is_file() and p.name != "DICOMDIR"]:
        path.rename(path.with_name(path.name.lower() + ending))
    (media / "PT000000" / "ST000000" / "SE000001" / f"im000006{ending}").unlink()
    with caplog.at_level("WARNING", logger="medseg.io.dicom_series"):
        problems = {c.number: c.problem for c in scan_folder(media).candidates}
    assert problems == {3: None, 4: "1 of the 7 files its DICOMDIR references are not here "
                                    "(PT000000/ST000000/SE000001/IM000006): the export was copied in part, and the "
                                    "series would be read without them; copy it again"}
    assert "renamed" not in caplog.text


def test_a_dicomdir_whose_folders_were_renamed_does_not_refuse_the_series(tmp_path, caplog):
    """An index that names none of a series' files as they are now (its folders renamed since) tells nothing of
    what is missing: the series is read, with a warning."""
    media = _export(tmp_path)
    (media / "PT000000").rename(media / "patient")
    with caplog.at_level("WARNING", logger="medseg.io.dicom_series"):
        assert read_dicom_series(media).array.shape == (10, 8, 6)
    assert "the DICOMDIR names no file of series 3 'desc 0' (CT, 6 images" in caplog.text


def test_a_dicomdir_file_given_for_an_image_or_a_seg_is_named_as_an_index(tmp_path, capsys):
    media = _export(tmp_path)
    index = media / "DICOMDIR"
    said = f"{index}: a DICOMDIR, the index of a DICOM export (CD, DVD or USB), not an image; give its folder ({media})"
    with pytest.raises(ImageReadError) as error:
        read_image(index)
    assert str(error.value) == said + ", which holds the images"
    with pytest.raises(ImageReadError) as error:
        scan_folder(index)
    assert str(error.value) == said + ", which holds the images"
    from medseg.io.dicom_seg import check_is_seg

    with pytest.raises(InputError) as error:  # was "truncated or incomplete DICOM file (it ends before …)"
        check_is_seg(index)
    assert str(error.value) == (f"{index}: a DICOMDIR, the index of a DICOM export (CD, DVD or USB), not a DICOM SEG "
                                "(a segmentation)")
