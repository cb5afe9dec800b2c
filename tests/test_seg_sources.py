"""The source images of a DICOM SEG made fit for one before inference: faulty patient, study and character set
values, ISO 2022 IR 58, a plane not stated once, a missing slice thickness, frame of reference, series or study
UID, values that only some files state."""

from __future__ import annotations

import logging
import re

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest
from dicom_factory import slice_positions, stored_values, write_series
from seg_factory import NAMES, SHAPE, label_rule, retag, write_enhanced

from medseg.cli import main
from medseg.errors import DicomError, InputError, MedsegWarning
from medseg.io.dicom import read_dicom_series
from medseg.io.seg_reading import read_dicom_seg
from medseg.io.seg_sources import seg_sources
from medseg.io.seg_writing import write_dicom_seg
from medseg.volume import Volume


@pytest.mark.parametrize("layout", ["rounding noise per slice", "orientation per frame", "pixel measures per frame",
                                    "both per frame"])
def test_seg_from_sources_whose_plane_is_not_stated_once(tmp_path, layout):
    """Slices whose ImageOrientationPatient differ by rounding noise (read as one orientation) and an enhanced file
    that states its orientation or pixel measures per frame, as Philips' do: highdicom wants them shared and refused
    both, after the inference. Each frame still lands on its own source image and reads back as written."""
    values = stored_values(SHAPE, seed=13)
    if layout == "rounding noise per slice":
        paths = write_series(tmp_path / "dcm", values, slice_positions(SHAPE[2], 2.0), seed=3)
        for k, path in enumerate(paths):
            dataset = pydicom.dcmread(path)
            dataset.ImageOrientationPatient = [1.0, 3e-5 * (k % 2), 0.0, 0.0, 1.0 - 2e-5 * (k % 3), 0.0]
            dataset.save_as(path)
    else:
        write_enhanced(tmp_path / "dcm", values, tmp_path / "single")
        dataset = pydicom.dcmread(tmp_path / "dcm" / "ct.dcm")
        shared = dataset.SharedFunctionalGroupsSequence[0]
        moved = {"orientation per frame": ["PlaneOrientationSequence"],
                 "pixel measures per frame": ["PixelMeasuresSequence"]}.get(
            layout, ["PlaneOrientationSequence", "PixelMeasuresSequence"])
        for keyword in moved:
            for groups in dataset.PerFrameFunctionalGroupsSequence:
                setattr(groups, keyword, shared[keyword].value)
            delattr(shared, keyword)
        dataset.save_as(tmp_path / "dcm" / "ct.dcm")
    volume = read_dicom_series(tmp_path / "dcm")
    labels = label_rule(volume.array)
    write_dicom_seg(labels, volume, tmp_path / "seg.dcm", NAMES, "test-model")
    assert np.array_equal(read_dicom_seg(tmp_path / "seg.dcm", volume, NAMES), labels)
    seg = hd.seg.segread(tmp_path / "seg.dcm")
    sources = [(str(pydicom.dcmread(p).SOPInstanceUID), f) for p, f in zip(volume.dicom.paths, volume.dicom.frames)]
    if sources[0][1] is None:
        stack = seg.get_pixels_by_source_instance([uid for uid, _ in sources], combine_segments=True)
    else:
        stack = seg.get_pixels_by_source_frame(sources[0][0], [f + 1 for _, f in sources], combine_segments=True)
    assert np.array_equal(stack.transpose(2, 1, 0), labels)  # (slices, rows, columns) → (column, row, slice)


def test_seg_needs_a_dicom_input(tmp_path):
    volume = Volume(np.zeros((4, 4, 3), np.float32), np.eye(4), source=tmp_path / "x.nii.gz")
    with pytest.raises(InputError, match="x.nii.gz: DICOM SEG output needs a DICOM series input"):
        write_dicom_seg(np.zeros((4, 4, 3), np.uint8), volume, tmp_path / "seg.dcm", NAMES)


def test_infer_dicom_seg_refuses_a_nifti_input(tmp_path, capsys, tiny_package):
    image = nib.Nifti1Image(np.zeros((8, 8, 4), np.float32), np.eye(4))
    nib.save(image, tmp_path / "scan.nii.gz")
    with pytest.raises(SystemExit) as exit_info:
        main(["-q", "infer", str(tmp_path / "scan.nii.gz"), "--device", "cpu", "--format", "dicom-seg",
              "--model", str(tiny_package.path)])
    assert exit_info.value.code == 1
    assert "--format dicom-seg needs a DICOM series folder" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scan.nii.gz"]
    # refused before the model is loaded (a model that does not exist is never reached), --series too
    for option in (["--format", "dicom-seg"], ["--series", "3"]):
        with pytest.raises(SystemExit) as exit_info:
            main(["-q", "infer", str(tmp_path / "scan.nii.gz"), *option, "--model", str(tmp_path / "no-model")])
        assert exit_info.value.code == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1] == f"medseg: error: {tmp_path / 'scan.nii.gz'}: " + (
            "--format dicom-seg needs a DICOM series folder as input" if option[0] == "--format"
            else "--series applies to DICOM folders only")


@pytest.mark.filterwarnings("ignore:Invalid value for VR CS")  # pydicom, on writing the faulty test value
@pytest.mark.parametrize("changes", [
    {"SpecificCharacterSet": ""},  # left empty by some exporters (the shared ct-seg series)
    {"SpecificCharacterSet": "ISO_IR_100"},  # not a DICOM term
    {"PatientID": None, "PatientBirthDate": None},  # type 2 attributes missing
    {"PatientSex": "Male"},
])
def test_seg_from_sources_with_faulty_patient_and_charset_values(tmp_path, changes):
    values = stored_values(SHAPE, seed=13)
    paths = write_series(tmp_path / "dcm", values, slice_positions(SHAPE[2], 2.0), seed=3)
    retag(paths, **changes)
    volume = read_dicom_series(tmp_path / "dcm")
    labels = label_rule(volume.array)
    write_dicom_seg(labels, volume, tmp_path / "seg.dcm", NAMES, "test-model")
    seg = pydicom.dcmread(tmp_path / "seg.dcm")
    source = pydicom.dcmread(paths[0])
    assert seg.StudyInstanceUID == source.StudyInstanceUID
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == source.SeriesInstanceUID
    assert seg.get("SpecificCharacterSet", "ISO_IR 100") in ("ISO_IR 100", "ISO_IR 192", "")
    assert seg.PatientSex == ("M" if changes.get("PatientSex") == "Male" else source.PatientSex)
    assert str(seg.get("PatientID", "")) == str(source.get("PatientID", ""))


def _ir58_series(folder, name: bytes):
    """A series in ISO 2022 IR 58 with ``name`` as its PatientName's bytes (pydicom cannot write that set right)."""
    paths = write_series(folder, stored_values(SHAPE, seed=13), slice_positions(SHAPE[2], 2.0), seed=3)
    for path in paths:
        dataset = pydicom.dcmread(path)
        dataset.SpecificCharacterSet = ["", "ISO 2022 IR 58"]
        dataset.add_new("PatientName", "PN", name)
        dataset.save_as(path)
    return paths


def test_seg_of_a_source_in_iso_2022_ir_58_with_chinese_names_is_refused_before_inference(tmp_path):
    """pydicom reads GB2312 after its escape sequence as '$)A王^小东' and writes it back without one: the SEG's names
    would be garbled. highdicom refused such a series too, after the inference, in words that named no file ("When
    SpecificCharacterSet is multi-valued, all encodings must use code extensions")."""
    paths = _ir58_series(tmp_path / "dcm", b"Wang^XiaoDong=\x1b$)A\xcd\xf5^\xd0\xa1\xb6\xab")
    volume = read_dicom_series(tmp_path / "dcm")
    with pytest.raises(DicomError) as error:
        seg_sources(volume)
    assert str(error.value) == (f"{paths[0]}: SpecificCharacterSet ISO 2022 IR 58 (simplified Chinese with code "
                                "extensions) is read and written wrongly by pydicom, so its names would be garbled in "
                                "a DICOM SEG; write NIfTI instead")


def test_seg_of_a_source_in_iso_2022_ir_58_with_ascii_names_keeps_that_set(tmp_path):
    _ir58_series(tmp_path / "dcm", b"Wang^XiaoDong")
    volume = read_dicom_series(tmp_path / "dcm")
    write_dicom_seg(label_rule(volume.array), volume, tmp_path / "seg.dcm", NAMES, "test-model")
    seg = pydicom.dcmread(tmp_path / "seg.dcm")
    assert seg.SpecificCharacterSet == ["ISO 2022 IR 6", "ISO 2022 IR 58"] and str(seg.PatientName) == "Wang^XiaoDong"


def test_seg_of_a_source_in_iso_2022_ir_58_with_chinese_text_the_seg_does_not_carry_is_written(tmp_path):
    """Only the values the SEG takes over (patient, study, specimen) are checked: a series whose InstitutionName or
    SeriesDescription is Chinese but whose patient and study text is ASCII was refused, though its SEG holds none of
    that text."""
    paths = _ir58_series(tmp_path / "dcm", b"Wang^XiaoDong")
    for path in paths:
        dataset = pydicom.dcmread(path)
        dataset.add_new("InstitutionName", "LO", b"\x1b$)A\xcd\xf5")
        dataset.add_new("SeriesDescription", "LO", b"\x1b$)A\xd0\xa1")
        dataset.save_as(path)
    volume = read_dicom_series(tmp_path / "dcm")
    write_dicom_seg(label_rule(volume.array), volume, tmp_path / "seg.dcm", NAMES, "test-model")
    seg = pydicom.dcmread(tmp_path / "seg.dcm")
    assert seg.SpecificCharacterSet == ["ISO 2022 IR 6", "ISO 2022 IR 58"] and str(seg.PatientName) == "Wang^XiaoDong"
    assert "InstitutionName" not in seg and seg.SeriesDescription == "medseg test-model"


@pytest.mark.parametrize("thickness", [None, ""])
def test_seg_from_sources_without_a_slice_thickness_reads_back(tmp_path, caplog, thickness):
    """SliceThickness is Type 2: absent, highdicom refused the SEG; empty, it wrote a SEG without one, which
    highdicom and medseg could not read back."""
    values = stored_values(SHAPE, seed=13)
    paths = write_series(tmp_path / "dcm", values, slice_positions(SHAPE[2], 2.5), seed=3)
    retag(paths, SliceThickness=thickness)
    volume = read_dicom_series(tmp_path / "dcm")
    labels = label_rule(volume.array)
    with caplog.at_level("WARNING", logger="medseg"):
        write_dicom_seg(labels, volume, tmp_path / "seg.dcm", NAMES, "test-model")
    warned = [r.getMessage() for r in caplog.records if "SliceThickness" in r.getMessage()]
    assert warned == [f"{tmp_path / 'dcm'}: {SHAPE[2]} of the series' {SHAPE[2]} images state no SliceThickness; "
                      "the DICOM SEG states the slice spacing, 2.5 mm, as its thickness"]
    seg = hd.seg.segread(tmp_path / "seg.dcm")
    assert float(seg.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].SliceThickness) == 2.5
    assert np.array_equal(read_dicom_seg(tmp_path / "seg.dcm", volume, NAMES), labels)


def test_seg_from_an_enhanced_source_without_a_slice_thickness_reads_back(tmp_path, caplog):
    """An enhanced multi-frame file whose pixel measures state no SliceThickness (Type 1C there) gave a SEG without
    one, which medseg could not read back ("Sequence does not have the required attributes for a Pixel Measures
    Sequence"); it gets the slice spacing, as single-frame sources do."""
    write_enhanced(tmp_path / "dcm", stored_values(SHAPE, seed=13), tmp_path / "single")
    dataset = pydicom.dcmread(tmp_path / "dcm" / "ct.dcm")
    del dataset.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].SliceThickness
    dataset.save_as(tmp_path / "dcm" / "ct.dcm")
    volume = read_dicom_series(tmp_path / "dcm")
    labels = label_rule(volume.array)
    with caplog.at_level("WARNING", logger="medseg"):
        write_dicom_seg(labels, volume, tmp_path / "seg.dcm", NAMES, "test-model")
    assert [r.getMessage() for r in caplog.records if "SliceThickness" in r.getMessage()] == [
        f"{tmp_path / 'dcm'}: 1 of the series' 1 image states no SliceThickness; the DICOM SEG states the slice "
        "spacing, 2 mm, as its thickness"]
    seg = hd.seg.segread(tmp_path / "seg.dcm")
    assert float(seg.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].SliceThickness) == 2.0
    assert np.array_equal(read_dicom_seg(tmp_path / "seg.dcm", volume, NAMES), labels)


def test_a_series_without_frame_of_reference_fails_before_inference(tmp_path, capsys, tiny_package):
    values = stored_values(SHAPE, seed=14)
    paths = write_series(tmp_path / "dcm", values, slice_positions(SHAPE[2], 2.0), seed=4)
    retag(paths, FrameOfReferenceUID=None)
    with pytest.raises(SystemExit) as info:
        main(["-q", "infer", str(tmp_path / "dcm"), "--device", "cpu", "--format", "dicom-seg",
              "--model", str(tiny_package.path), "-o", str(tmp_path / "out")])
    assert info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("medseg: error: ")
    # the whole series lacks it: the folder is named, not its first file
    assert f"{tmp_path / 'dcm'}: no FrameOfReferenceUID in any of its {SHAPE[2]} files, so a DICOM SEG cannot be " \
           "placed" in err[-1]
    assert not (tmp_path / "out").exists()


def test_seg_from_a_source_without_a_series_uid_is_refused(tmp_path):
    """The SEG's ReferencedSeriesSequence must name the series (Type 1): it was written empty, with a warning."""
    values = stored_values(SHAPE, seed=15)
    paths = write_series(tmp_path / "dcm", values, slice_positions(SHAPE[2], 2.0), seed=6)
    retag(paths, SeriesInstanceUID=None)
    volume = read_dicom_series(tmp_path / "dcm")
    folder = re.escape(str(tmp_path / "dcm"))
    with pytest.raises(DicomError, match=rf"^{folder}: no SeriesInstanceUID in any of its {SHAPE[2]} files "
                                         r"\(anonymised\?\), so a DICOM SEG cannot name the "
                                         r"series it segments \(DICOM requires it\); write NIfTI instead$"):
        write_dicom_seg(label_rule(volume.array), volume, tmp_path / "seg.dcm", NAMES, "test-model")
    assert not (tmp_path / "seg.dcm").exists()


def _no_model(monkeypatch):
    """Make loading a model package fail the test: the checks that need none come before it."""
    import medseg.package

    def load_package(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(medseg.package, "load_package", load_package)


def test_a_series_no_seg_can_be_made_from_is_refused_before_the_model_loads(tmp_path, capsys, monkeypatch):
    """A series without SeriesInstanceUID was refused, with its right line, only after the model had loaded (7 s of
    an 18 s wait on a loaded machine went to torch and the network)."""
    paths = write_series(tmp_path / "dcm", stored_values(SHAPE, seed=15), slice_positions(SHAPE[2], 2.0), seed=6)
    retag(paths, SeriesInstanceUID=None)
    _no_model(monkeypatch)
    with pytest.raises(SystemExit) as info:
        main(["infer", str(tmp_path / "dcm"), "--format", "dicom-seg", "-o", str(tmp_path / "out")])
    assert info.value.code == 1
    assert capsys.readouterr().err.splitlines() == [
        f"medseg: error: {tmp_path / 'dcm'}: no SeriesInstanceUID in any of its {SHAPE[2]} files (anonymised?), so a "
        "DICOM SEG cannot name the series it segments (DICOM requires it); write NIfTI instead"]
    assert not (tmp_path / "out").exists()


def test_a_series_no_seg_can_be_made_from_is_refused_without_importing_torch(tmp_path):
    """The refusal came after torch and MONAI were imported (5 of its 7-10 s); in a fresh interpreter, neither is."""
    import subprocess
    import sys

    paths = write_series(tmp_path / "dcm", stored_values(SHAPE, seed=15), slice_positions(SHAPE[2], 2.0), seed=6)
    retag(paths, SeriesInstanceUID=None)
    args = ["infer", str(tmp_path / "dcm"), "--format", "dicom-seg", "-o", str(tmp_path / "out")]
    code = (f"import sys\nfrom medseg.cli import main\ntry:\n    main({args!r})\nexcept SystemExit as e:\n"
            "    code = e.code\nassert code == 1, code\n"
            "assert 'torch' not in sys.modules and 'monai' not in sys.modules\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "no SeriesInstanceUID in any of its" in result.stderr and not (tmp_path / "out").exists()


def test_a_batch_whose_every_input_is_refused_without_a_model_loads_none(tmp_path, capsys, monkeypatch):
    """Each input named in its turn, the batch's count line, and no model loaded; no output but each input's failure
    record."""
    paths = write_series(tmp_path / "dcm", stored_values(SHAPE, seed=14), slice_positions(SHAPE[2], 2.0), seed=4)
    retag(paths, FrameOfReferenceUID=None)
    scan = tmp_path / "scan.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.eye(4)), scan)
    gone = tmp_path / "gone"
    _no_model(monkeypatch)
    with pytest.raises(SystemExit) as info:
        main(["infer", str(tmp_path / "dcm"), str(scan), str(gone), "--format", "dicom-seg",
              "-o", str(tmp_path / "out")])
    assert info.value.code == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 4 and err[0].startswith(f"medseg: error: {tmp_path / 'dcm'}: no FrameOfReferenceUID in any "
                                               f"of its {SHAPE[2]} files, so a DICOM SEG cannot be placed")
    assert err[1:] == [f"medseg: error: {scan}: --format dicom-seg needs a DICOM series folder as input",
                       f"medseg: error: {gone}: no such file or folder",
                       f"medseg: 3 of 3 inputs failed ({tmp_path / 'dcm'}, {scan}, {gone})"]
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["dcm_failed.json", "gone_failed.json",
                                                                         "scan_failed.json"]


def test_the_look_ahead_refuses_what_the_read_refuses_and_only_that(tmp_path):
    """:func:`check_seg_source`, from the headers before any model, says what :func:`seg_sources` says of the series
    read: a UID no file states is refused in the same words; one some files state is given to all, not refused."""
    from medseg.io.seg_sources import check_seg_source

    values = stored_values(SHAPE, seed=15)
    some = write_series(tmp_path / "some", values, slice_positions(SHAPE[2], 2.0), seed=6)
    retag(some[:2], FrameOfReferenceUID=None)  # (a SeriesInstanceUID some lack makes two series)
    check_seg_source(tmp_path / "some")
    seg_sources(read_dicom_series(tmp_path / "some"))
    for keyword in ("FrameOfReferenceUID", "SeriesInstanceUID"):
        retag(write_series(tmp_path / keyword, values, slice_positions(SHAPE[2], 2.0), seed=6), **{keyword: None})
        with pytest.raises(DicomError) as ahead:
            check_seg_source(tmp_path / keyword)
        with pytest.raises(DicomError) as read:
            seg_sources(read_dicom_series(tmp_path / keyword))
        assert str(ahead.value) == str(read.value)
        assert str(ahead.value).startswith(f"{tmp_path / keyword}: no {keyword} in any of its {SHAPE[2]} files")


def test_in_a_batch_an_input_refused_before_the_model_loads_leaves_the_others_going(tmp_path, capsys, tiny_package):
    for name, strip in (("anon", True), ("good", False)):
        paths = write_series(tmp_path / name, stored_values(SHAPE, seed=15), slice_positions(SHAPE[2], 2.0), seed=6)
        if strip:
            retag(paths, SeriesInstanceUID=None)
    with pytest.raises(SystemExit) as info:
        main(["-q", "infer", str(tmp_path / "anon"), str(tmp_path / "good"), "--format", "dicom-seg", "--device",
              "cpu", "--model", str(tiny_package.path), "-o", str(tmp_path / "out")])
    assert info.value.code == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"medseg: error: {tmp_path / 'anon'}: no SeriesInstanceUID in any of its")
    assert err[-1] == f"medseg: 1 of 2 inputs failed ({tmp_path / 'anon'})"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["anon_failed.json", "good_seg.dcm", "good_seg.json"]


def test_seg_from_a_source_without_a_study_uid(tmp_path, caplog):
    values = stored_values(SHAPE, seed=15)
    paths = write_series(tmp_path / "dcm", values, slice_positions(SHAPE[2], 2.0), seed=6)
    retag(paths, StudyInstanceUID=None)
    volume = read_dicom_series(tmp_path / "dcm")
    with caplog.at_level("WARNING", logger="medseg"):
        write_dicom_seg(label_rule(volume.array), volume, tmp_path / "seg.dcm", NAMES, "test-model")
    seg = pydicom.dcmread(tmp_path / "seg.dcm")
    assert len(str(seg.StudyInstanceUID)) > 10  # required: a new study, since the source names none
    assert any("cannot be linked" in r.getMessage() and "new StudyInstanceUID" in r.getMessage()
               for r in caplog.records)
    assert {str(f.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID)
            for f in seg.PerFrameFunctionalGroupsSequence} <= {str(pydicom.dcmread(p).SOPInstanceUID) for p in paths}


def test_an_unknown_character_set_is_reported_once_per_series(tmp_path, caplog):
    values = stored_values(SHAPE, seed=16)
    paths = write_series(tmp_path / "dcm", values, slice_positions(SHAPE[2], 2.0), seed=7)
    retag(paths, SpecificCharacterSet="ISO_IR_100")
    volume = read_dicom_series(tmp_path / "dcm")
    with caplog.at_level("WARNING", logger="medseg"):
        write_dicom_seg(label_rule(volume.array), volume, tmp_path / "seg.dcm", NAMES, "test-model")
    warned = [r.getMessage() for r in caplog.records if "SpecificCharacterSet" in r.getMessage()]
    assert len(warned) == 1 and "ISO_IR_100 is not a DICOM term" in warned[0]


@pytest.mark.parametrize(("date", "time"), [(b"2024-01-01", b"12:30:00"), (b"2024.01.01", b"12:30:00 "),
                                            (b"20240101\\20240102", b"12:30:00")])
def test_a_date_not_in_dicom_form_is_emptied_with_a_warning(tmp_path, caplog, date, time):
    """StudyDate '2024-01-01' (a common non-conformant export), the ACR-NEMA '2024.01.01' that pydicom accepts,
    two dates where DICOM allows one. Before: "cannot make a DICOM SEG from this series (Unable to convert
    '2024-01-01' to 'DA' object)" after the inference, naming no attribute; or an invalid date in the SEG."""
    from pydicom.dataelem import RawDataElement

    values = stored_values(SHAPE, seed=17)
    paths = write_series(tmp_path / "dcm", values, slice_positions(SHAPE[2], 2.0), seed=8)
    for path in paths:
        dataset = pydicom.dcmread(path)
        for keyword, raw in (("StudyDate", date), ("StudyTime", time)):
            tag = pydicom.tag.Tag(pydicom.datadict.tag_for_keyword(keyword))
            dataset[tag] = RawDataElement(tag, pydicom.datadict.dictionary_VR(tag), len(raw), raw, 0, False, True)
        dataset.save_as(path)
    volume = read_dicom_series(tmp_path / "dcm")
    with caplog.at_level("WARNING", logger="medseg"):
        write_dicom_seg(label_rule(volume.array), volume, tmp_path / "seg.dcm", NAMES, "test-model")
    seg = pydicom.dcmread(tmp_path / "seg.dcm")
    assert seg.StudyDate == "" and seg.StudyTime == ""
    assert seg.StudyInstanceUID == pydicom.dcmread(paths[0]).StudyInstanceUID
    warned = [r.getMessage() for r in caplog.records if "date or time" in r.getMessage()]
    shown = date.decode()
    assert warned == [f"{tmp_path / 'dcm'}: StudyDate '{shown}', StudyTime '12:30:00' are not a valid DICOM date "
                      "or time; written empty in the SEG"]


def test_a_seg_from_a_series_where_some_files_lack_an_attribute_takes_the_others_value(tmp_path):
    """The series reader accepts a UID some files lack; the SEG then failed after inference, in highdicom, with a
    raw error (or, for the first file, made up a new study)."""
    values = stored_values(SHAPE, seed=15)
    paths = write_series(tmp_path / "dcm", values, slice_positions(SHAPE[2], 2.0), seed=6)
    study = str(pydicom.dcmread(paths[1]).StudyInstanceUID)
    for index, keyword in ((0, "StudyInstanceUID"), (2, "FrameOfReferenceUID")):
        dataset = pydicom.dcmread(paths[index])
        delattr(dataset, keyword)
        dataset.save_as(paths[index])
    volume = read_dicom_series(tmp_path / "dcm")
    write_dicom_seg(label_rule(volume.array), volume, tmp_path / "seg.dcm", NAMES, "test-model")
    seg = pydicom.dcmread(tmp_path / "seg.dcm")
    assert str(seg.StudyInstanceUID) == study


def _counted_header_reads(monkeypatch) -> list:
    """Each DICOM header read while scanning a folder, by path."""
    import medseg.io.dicom_series as dicom_series

    reads, read_header = [], dicom_series._read_header

    def counting(path, *args, **kwargs):
        reads.append(path)
        return read_header(path, *args, **kwargs)

    monkeypatch.setattr(dicom_series, "_read_header", counting)
    return reads


def test_a_series_checked_for_a_seg_has_its_headers_read_once(tmp_path, monkeypatch, caplog):
    """The check before the model loads read every header, and the series' reading read them all again (600 files:
    0.7-1.7 s more for every valid series); the scan is kept for the reading, which tells its warnings once."""
    from medseg.io.seg_sources import check_seg_source

    write_series(tmp_path / "dcm", stored_values(SHAPE, seed=15), slice_positions(SHAPE[2], 2.0), seed=6)
    (tmp_path / "dcm" / "notes.txt").write_text("not an image\n")
    reads = _counted_header_reads(monkeypatch)
    own = logging.Handler()  # a program's handler on medseg's logger itself hears each warning once too
    own.emit = lambda record: heard.append(record.getMessage())
    heard: list[str] = []
    logging.getLogger("medseg").addHandler(own)
    try:
        with caplog.at_level(logging.INFO, logger="medseg"), pytest.warns(MedsegWarning) as caught:
            check_seg_source(tmp_path / "dcm")
            assert [r.getMessage() for r in caplog.records] == [] and heard == []  # told as the series is read
            volume = read_dicom_series(tmp_path / "dcm")
    finally:
        logging.getLogger("medseg").removeHandler(own)
    assert len(reads) == SHAPE[2] + 1 and volume.shape == SHAPE  # the slices and the text file, once each
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert skipped == [f"{tmp_path / 'dcm'}: skipped 1 file that is not DICOM (notes.txt)"]
    assert [line for line in heard if "skipped" in line] == skipped == [str(w.message) for w in caught]
    reads.clear()
    with pytest.warns(MedsegWarning, match="skipped 1 file that is not DICOM"):
        read_dicom_series(tmp_path / "dcm")  # a later reading reads them again: the kept scan served one reading
    assert len(reads) == SHAPE[2] + 1


def test_a_series_changed_after_its_check_is_read_again(tmp_path, monkeypatch):
    """A file replaced between the check and the reading (a batch's earlier cases took hours) is read as it is now."""
    from medseg.io.seg_sources import check_seg_source

    paths = write_series(tmp_path / "dcm", stored_values(SHAPE, seed=15), slice_positions(SHAPE[2], 2.0), seed=6)
    check_seg_source(tmp_path / "dcm")
    values = stored_values(SHAPE, seed=3)
    write_series(tmp_path / "other", values, slice_positions(SHAPE[2], 2.0), seed=6)
    (tmp_path / "other" / paths[0].name).replace(paths[0])
    reads = _counted_header_reads(monkeypatch)
    with pytest.warns(MedsegWarning, match=r": using series .*; 1 other image series could not be used: "):
        volume = read_dicom_series(tmp_path / "dcm")
    assert len(reads) == SHAPE[2]
    # the file now is another series' (its own UID): the kept scan would have read it as the first slice
    assert volume.info["files"] == SHAPE[2] - 1 and len(volume.info["passed_over"]) == 1


def test_a_series_refused_for_a_seg_keeps_no_scan(tmp_path):
    """A series refused is never read: its scan is not kept."""
    from medseg.io import dicom_series
    from medseg.io.seg_sources import check_seg_source

    paths = write_series(tmp_path / "dcm", stored_values(SHAPE, seed=15), slice_positions(SHAPE[2], 2.0), seed=6)
    retag(paths, SeriesInstanceUID=None)
    with pytest.raises(DicomError, match="no SeriesInstanceUID in any of its"):
        check_seg_source(tmp_path / "dcm")
    assert str(tmp_path / "dcm") not in dicom_series._HELD


def test_a_seg_output_reads_each_source_header_once(tmp_path, monkeypatch, tiny_package):
    """`infer --format dicom-seg` of a series read every file's header again for the SEG (seg_sources), after the
    check before the model loads and the series' reading had shared one reading of them: twice per file."""
    from collections import Counter
    from pathlib import Path

    paths = write_series(tmp_path / "dcm", stored_values(SHAPE, seed=15), slice_positions(SHAPE[2], 2.0), seed=6)
    reads, dcmread = Counter(), pydicom.dcmread

    def counting(source, *args, **kwargs):
        reads[Path(str(source))] += 1
        return dcmread(source, *args, **kwargs)

    monkeypatch.setattr(pydicom, "dcmread", counting)
    with pytest.raises(SystemExit) as exit_info:
        main(["-q", "infer", str(tmp_path / "dcm"), "-o", str(tmp_path / "out"), "--format", "dicom-seg",
              "--device", "cpu", "--model", str(tiny_package.path)])
    assert exit_info.value.code == 0
    assert [reads[path] for path in paths] == [1] * SHAPE[2]
    monkeypatch.setattr(pydicom, "dcmread", dcmread)
    seg, first = pydicom.dcmread(tmp_path / "out" / "dcm_seg.dcm"), pydicom.dcmread(paths[0])
    assert (seg.PatientName, seg.StudyInstanceUID, seg.FrameOfReferenceUID) == (
        first.PatientName, first.StudyInstanceUID, first.FrameOfReferenceUID)
    instances = seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence
    referenced = {str(item.ReferencedSOPInstanceUID) for item in instances}
    assert referenced == {str(pydicom.dcmread(path).SOPInstanceUID) for path in paths}


def test_a_seg_of_headers_kept_from_the_reading_still_tells_its_names_were_read_as_utf8(tmp_path, caplog,
                                                                                       tiny_package):
    """The SEG's sources are the headers the series' reading read: their UTF-8 text under no character set was
    converted then, so the SEG's own look found none, and its warning (README: "a warning names the first such
    value") was lost, the SEG's names right but not told how they were read."""
    paths = write_series(tmp_path / "dcm", stored_values(SHAPE, seed=15), slice_positions(SHAPE[2], 2.0), seed=6)
    for path in paths:
        dataset = pydicom.dcmread(path)
        if "SpecificCharacterSet" in dataset:
            del dataset.SpecificCharacterSet
        dataset.add_new("StudyDescription", "LO", "Schädel".encode())
        dataset.add_new("PatientName", "PN", "Müller^Jürgen".encode())
        dataset.save_as(path)
    with pytest.raises(SystemExit) as exit_info:
        main(["infer", str(tmp_path / "dcm"), "-o", str(tmp_path / "out"), "--format", "dicom-seg", "--device", "cpu",
              "--model", str(tiny_package.path)])
    assert exit_info.value.code == 0
    told = (f"{tmp_path / 'dcm'}: StudyDescription 'Schädel' holds characters outside ASCII, but no "
            "SpecificCharacterSet is stated (DICOM's default is ASCII): read as UTF-8, which its bytes are, for the "
            "DICOM SEG")
    assert [r.getMessage() for r in caplog.records if r.name == "medseg.io.seg_sources"].count(told) == 1
    seg = pydicom.dcmread(tmp_path / "out" / "dcm_seg.dcm")
    assert (seg.SpecificCharacterSet, str(seg.PatientName), str(seg.StudyDescription)) == (
        "ISO_IR 192", "Müller^Jürgen", "Schädel")
