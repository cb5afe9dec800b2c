"""DICOM text in files that state no character set (medseg/io/dicom_text.py): UTF-8 where its bytes are,
Latin-1 otherwise."""

from __future__ import annotations

import pytest
from dicom_factory import SHAPE, _raw, make_series

from medseg.io.dicom import read_dicom_series


@pytest.mark.parametrize(("charset", "warned"), [(None, True), ("", True), ("ISO_IR 6", True),
                                                ("ISO_IR 100", False)])
def test_a_description_outside_ascii_without_a_character_set_is_read_as_latin1_with_a_warning(tmp_path, caplog,
                                                                                            charset, warned):
    """DICOM's default repertoire is ASCII; pydicom reads bytes outside it as Latin-1 without a word. Bytes that are
    not valid UTF-8 (0xFC alone) keep that reading (Latin-1 is what such files mostly hold), told once per folder,
    naming the files."""
    _, paths = make_series(tmp_path / "dcm", seed=3)
    for path in paths:
        _raw(path, "SeriesDescription", "LO", b"T1 M\xfcller")
        if charset is not None:
            _raw(path, "SpecificCharacterSet", "CS", charset.encode())
    with caplog.at_level("WARNING"):
        volume = read_dicom_series(tmp_path / "dcm")
    assert volume.info["description"] == "T1 Müller"
    told = [r.getMessage() for r in caplog.records if "outside ASCII" in r.getMessage()]
    names = ", ".join(f"{k:04d}.dcm" for k in range(3))
    assert told == ([f"{tmp_path / 'dcm'}: SeriesDescription 'T1 Müller' holds characters outside ASCII, but no "
                     "SpecificCharacterSet is stated (DICOM's default is ASCII): read as Latin-1 (ISO_IR 100) "
                     f"(in {SHAPE[2]} files: {names}, ...)"] if warned else [])


@pytest.mark.parametrize("charset", [None, "", "ISO_IR 6"])
def test_a_utf8_description_without_a_character_set_is_read_as_utf8_as_the_seg_writer_reads_it(tmp_path, caplog,
                                                                                              charset):
    """UTF-8 bytes under no SpecificCharacterSet were read as Latin-1 by the series reader ('T1 MÃ¼ller' recorded in
    the sidecar and shown in the report) while the DICOM SEG writer read them as UTF-8: both follow one rule now,
    UTF-8 where all the file's text bytes outside ASCII are valid UTF-8, told once per folder."""
    _, paths = make_series(tmp_path / "dcm", seed=3)
    for path in paths:
        _raw(path, "SeriesDescription", "LO", "T1 Müller".encode())
        _raw(path, "ProtocolName", "LO", "Kopf/Hals Straße".encode())
        if charset is not None:
            _raw(path, "SpecificCharacterSet", "CS", charset.encode())
    with caplog.at_level("WARNING"):
        volume = read_dicom_series(tmp_path / "dcm")
    assert volume.info["description"] == "T1 Müller"
    told = [r.getMessage() for r in caplog.records if "outside ASCII" in r.getMessage()]
    names = ", ".join(f"{k:04d}.dcm" for k in range(3))
    assert told == [f"{tmp_path / 'dcm'}: SeriesDescription 'T1 Müller' holds characters outside ASCII, but no "
                    "SpecificCharacterSet is stated (DICOM's default is ASCII): read as UTF-8, which its bytes are "
                    f"(in {SHAPE[2]} files: {names}, ...)"]


def test_a_file_whose_text_is_not_all_utf8_is_read_as_latin1_whole(tmp_path):
    """One rule per file: a description in UTF-8 next to a name in Latin-1 (0xE9 alone) is not UTF-8 text, and the
    whole file keeps pydicom's Latin-1 reading (no value of it is read in another set than its neighbours)."""
    _, paths = make_series(tmp_path / "dcm", seed=3)
    for path in paths:
        _raw(path, "SeriesDescription", "LO", "T1 Müller".encode())
        _raw(path, "PatientName", "PN", b"Ren\xe9")
    volume = read_dicom_series(tmp_path / "dcm")
    assert volume.info["description"] == "T1 MÃ¼ller"
