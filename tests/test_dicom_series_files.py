"""Files of a series that are left out or refused (medseg/io/dicom_series.py): files that disagree with their
series, spare images without orientation, unusable geometry, rescale and size elements, colour and bare files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from conftest import run_cli
from dicom_factory import SAGITTAL, SHAPE, _raw, make_series, slice_positions, stored_values, write_series
from pydicom.uid import ExplicitVRLittleEndian, RLELossless

from medseg.errors import DicomError, MedsegWarning
from medseg.io.dicom import describe_folder, read_dicom_series
from medseg.io.dicom_series import scan_folder


def _make_colour(path: Path) -> None:
    dataset = pydicom.dcmread(path)
    grey = (dataset.pixel_array.astype(np.int32) % 256).astype(np.uint8)
    dataset.SamplesPerPixel, dataset.PhotometricInterpretation, dataset.PlanarConfiguration = 3, "RGB", 0
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit, dataset.PixelRepresentation = 8, 8, 7, 0
    dataset.PixelData = np.stack([grey] * 3, axis=-1).tobytes()
    dataset.save_as(path, enforce_file_format=True)


def test_a_colour_file_in_a_grey_series_is_named(tmp_path, capsys):
    """One colour image (a screenshot filed in the series) refused the series as "colour images (RGB) are not
    supported", naming no file among the series' files; the colour file is named, and an all-colour series keeps its
    short message."""
    _, paths = make_series(tmp_path / "study", seed=2)
    _make_colour(paths[3])
    problem = (f"{paths[3].name}: colour (RGB) among {len(paths) - 1} grey-level files of the series; colour images "
               "are not supported (move it out of the folder)")
    assert describe_folder(tmp_path / "study")["series"][0]["problem"] == problem
    code, _, err = run_cli(["convert", str(tmp_path / "study"), str(tmp_path / "out.nii.gz")], capsys)
    assert code == 1 and err.endswith(f"cannot be one 3D volume: {problem}\n") and len(err.splitlines()) == 1
    assert not (tmp_path / "out.nii.gz").exists()
    for path in paths:
        if path != paths[3]:
            _make_colour(path)
    assert describe_folder(tmp_path / "study")["series"][0]["problem"] == "colour images (RGB) are not supported"


@pytest.mark.parametrize("written, stated", [(ExplicitVRLittleEndian, RLELossless),
                                             (RLELossless, ExplicitVRLittleEndian)],
                         ids=["plain-as-rle", "rle-as-plain"])
def test_pixel_data_stored_unlike_the_transfer_syntax_says_is_named_as_such(tmp_path, written, stated):
    """A file whose TransferSyntaxUID was rewritten without its pixel data (a faulty anonymiser or gateway) was
    "truncated or corrupt pixel data (Found unexpected tag (0000,0000) instead of (FFFE,E000)...)"."""
    values = stored_values((32, 24, 4), seed=9) + 1024
    paths = write_series(tmp_path, values, slice_positions(4, 2.0), transfer_syntax=written)
    data = paths[1].read_bytes()
    old, new = (f"{uid}\0".encode() for uid in (written, stated))  # both 19 characters: one padded UID for another
    assert len(old) == len(new) and data.count(old) == 1
    paths[1].write_bytes(data.replace(old, new))
    kind = ("is one of compressed pixel data, but its pixel data is stored uncompressed" if stated == RLELossless else
            "is one of uncompressed pixel data")
    with pytest.raises(DicomError, match=rf"cannot be one 3D volume: {paths[1].name}: .*\({stated.name}\) {kind}"
                                         r".*; the file's TransferSyntaxUID is wrong"):
        read_dicom_series(tmp_path)


def test_a_repeated_slice_is_refused(tmp_path):
    positions = slice_positions(SHAPE[2], 2.0)
    positions[3] = positions[2]
    _, paths = make_series(tmp_path, seed=1, positions=positions)
    with pytest.raises(DicomError, match=r"1 image repeats a slice position already taken \(first at "
                       r"[-0-9.]+ mm along the normal\): \S+ and \S+$") as error:
        read_dicom_series(tmp_path)
    named = str(error.value).rsplit(": ", 1)[1].split(" and ")
    assert sorted(named) == sorted((paths[2].name, paths[3].name))  # the two files at one position
    with pytest.raises(DicomError, match=r"series=\.\.\. is empty"):
        read_dicom_series(tmp_path, series=" ")


@pytest.mark.parametrize(("changes", "problem"), [
    ({"PixelSpacing": [0.0, 0.0]}, "PixelSpacing [0.0, 0.0] is not positive"),
    ({"RescaleSlope": "xxxxx"}, "RescaleSlope 'xxxxx' is not a number"),
    # a blank image the model segmented without a word (the phantom labelled 99.6 % of it)
    ({"RescaleSlope": "0"}, "RescaleSlope '0' is zero: every pixel would read as RescaleIntercept"),
])
def test_unusable_spacing_or_rescale_values_are_refused(tmp_path, capsys, changes, problem):
    _, paths = make_series(tmp_path / "dcm", seed=5)
    for path in paths:  # written raw: pydicom would refuse to store these values as numbers
        dataset = pydicom.dcmread(path)
        for keyword, value in changes.items():
            tag = pydicom.datadict.tag_for_keyword(keyword)
            text = "\\".join(str(v) for v in value) if isinstance(value, list) else value
            dataset[tag] = pydicom.DataElement(tag, "LO", text)
        dataset.save_as(path)
    code, _, err = run_cli(["convert", str(tmp_path / "dcm"), str(tmp_path / "out.nii.gz")], capsys)
    assert code == 1 and "Traceback" not in err
    assert problem in err.strip().splitlines()[-1]
    if "Rescale" in problem:  # every file is left out: the series is counted by its files, not as "0 images"
        assert f"{len(paths)} files, none usable" in err and "0 images" not in err
    assert not (tmp_path / "out.nii.gz").exists()


@pytest.mark.parametrize(("keyword", "raw", "problem"), [
    ("PixelSpacing", "0.8\\0.6x", "PixelSpacing '0.8\\0.6x' is not 2 numbers"),
    ("ImagePositionPatient", "-10\\-20", "ImagePositionPatient '-10\\-20' is not 3 numbers"),
    ("ImageOrientationPatient", "1\\0\\0\\0\\1\\nan", "ImageOrientationPatient '1\\0\\0\\0\\1\\nan' is not 6 numbers"),
    ("ImagePositionPatient", None, "1 of 6 images without ImagePositionPatient: no patient geometry"),
    # was a part of its own: "missing slices" in the rest first, the file's fault second
    ("ImageOrientationPatient", None, "without ImageOrientationPatient (the series' other images have it)"),
    ("PixelSpacing", "0.9\\0.6", "images with different pixel spacings"),
])
def test_a_file_with_unusable_geometry_is_named(tmp_path, capsys, keyword, raw, problem):
    """One file's geometry element is unreadable, absent or differs: the message names that element and file.
    Before, an unreadable value read as an absent one ("images without PixelSpacing"), and no file was named."""
    _, paths = make_series(tmp_path / "dcm", seed=6)
    target = sorted(paths)[3]
    dataset = pydicom.dcmread(target)
    tag = pydicom.datadict.tag_for_keyword(keyword)
    if raw is None:
        del dataset[tag]
    else:  # written raw: pydicom would refuse to store these values as numbers
        dataset[tag] = pydicom.DataElement(tag, "LO", raw)
    dataset.save_as(target)
    code, _, err = run_cli(["convert", str(tmp_path / "dcm"), str(tmp_path / "out.nii.gz")], capsys)
    line = err.strip().splitlines()[-1]
    assert code == 1 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert problem in line and target.name in line, line
    assert not (tmp_path / "out.nii.gz").exists()
    scan = scan_folder(tmp_path / "dcm")
    assert [c.flags for c in scan.candidates] == [[]]  # no flag taken from the other files' geometry


@pytest.mark.parametrize(("keyword", "vr", "value", "problem"), [
    ("Rows", "US", b"\x05\x00\x00\x00", "Rows '5\\0' is not a positive whole number"),
    ("Rows", "US", b"", "Rows is empty"),
    ("SamplesPerPixel", "US", b"\x01\x00\x01\x00", "SamplesPerPixel '1\\1' is not a positive whole number"),
    ("NumberOfFrames", "IS", b"one ", "NumberOfFrames 'one' is not a positive whole number"),
])
def test_malformed_size_elements_are_one_line_naming_the_file(tmp_path, capsys, keyword, vr, value, problem):
    """Before: a bare TypeError traceback from int(), or a "corrupt pixel data" that was a bad frame count."""
    _, paths = make_series(tmp_path / "dcm", seed=12)
    target = sorted(paths)[2]
    _raw(target, keyword, vr, value)
    for command in (["inspect", str(tmp_path / "dcm")], ["convert", str(tmp_path / "dcm"),
                                                        str(tmp_path / "out.nii.gz")]):
        code, out, err = run_cli(command, capsys)
        # inspect: a listing, and exit 1 with the line on stderr, since no series is usable (infer refuses it)
        assert code == 1 and "Traceback" not in err
        assert f"{target.name}: {problem}" in err.strip().splitlines()[-1]
        if command[0] == "inspect":
            assert f"{target.name}: {problem}" in out
    assert not (tmp_path / "out.nii.gz").exists()


def test_a_bare_dataset_without_file_meta_is_read(tmp_path):
    """Files without preamble and file meta (older scanners, PACS exports): read in the encoding they were written
    in, as dcm2niix does. Before: "truncated or corrupt pixel data (... no 'Transfer Syntax UID')"."""
    values, paths = make_series(tmp_path / "dcm", seed=14)
    for path in paths:
        dataset = pydicom.dcmread(path)
        del dataset.file_meta
        dataset.preamble = None
        pydicom.filewriter.dcmwrite(path, dataset, enforce_file_format=False, implicit_vr=True, little_endian=True)
        assert path.read_bytes()[128:132] != b"DICM"
    volume = read_dicom_series(tmp_path / "dcm")
    np.testing.assert_array_equal(volume.array, values.astype(np.float32) - 1024.0)
    assert volume.info["transfer_syntax"] == pydicom.uid.ImplicitVRLittleEndian


def test_a_single_valued_pixel_spacing_is_one_line(tmp_path, capsys):
    """Before the fix of this check: a DS scalar has no len(), and the whole folder gave a traceback."""
    _, paths = make_series(tmp_path / "dcm", seed=16)
    for path in paths:
        dataset = pydicom.dcmread(path)
        dataset.PixelSpacing = "0.7"
        dataset.save_as(path)
    code, out, err = run_cli(["inspect", str(tmp_path / "dcm")], capsys)
    assert code == 1 and "Traceback" not in err and "PixelSpacing '0.7' is not 2 numbers" in out  # none usable
    assert err.startswith("medseg: error: ") and len(err.strip().splitlines()) == 1


def test_a_broken_file_of_another_part_does_not_block_the_series(tmp_path, caplog):
    """A localizer sharing the series UID, whose ImagePositionPatient has two values, is left out with a warning
    naming it; the axial part is still used (it was, before files with unreadable geometry became problems)."""
    uid = pydicom.uid.generate_uid()
    values, _ = make_series(tmp_path / "dcm", seed=18, series_uid=uid)
    (localizer,) = write_series(tmp_path / "dcm", stored_values((SHAPE[0], SHAPE[1], 1), seed=19), [(0.0, 0.0, 0.0)],
                                series_uid=uid, prefix="loc", orientation=SAGITTAL,
                                image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"))
    dataset = pydicom.dcmread(localizer)
    dataset.ImagePositionPatient = [1.0, 2.0]
    dataset.save_as(localizer)
    with caplog.at_level("WARNING", logger="medseg"), pytest.warns(MedsegWarning) as caught:
        volume = read_dicom_series(tmp_path / "dcm")
    np.testing.assert_array_equal(volume.array, values.astype(np.float32) - 1024.0)
    assert [r.getMessage() for r in caplog.records if "left out" in r.getMessage()] == [
        "loc0000.dcm: ImagePositionPatient '1.0\\2.0' is not 3 numbers; it belongs to no usable part of its series "
        "and is left out"] == [str(w.message) for w in caught]
    # the same fault in a file of the axial part is that part's problem
    target = sorted((tmp_path / "dcm").glob("0*.dcm"))[2]
    dataset = pydicom.dcmread(target)
    dataset.ImagePositionPatient = [1.0, 2.0]
    dataset.save_as(target)
    with pytest.warns(MedsegWarning, match=r"^loc0000\.dcm: .* is left out$"), \
            pytest.raises(DicomError, match=rf"{target.name}: ImagePositionPatient '1.0\\2.0' is not 3 numbers"):
        read_dicom_series(tmp_path / "dcm")  # the localizer still told as left out, before the part is refused


def test_a_part_split_off_by_its_header_names_what_differs_and_its_files(tmp_path, capsys):
    """One file whose Rows is wrong splits the series by image size; the message said only "missing slices" for
    one part and "a single slice" for the other, naming neither the file nor the size."""
    _, paths = make_series(tmp_path / "dcm", seed=8)
    target = sorted(paths)[2]
    dataset = pydicom.dcmread(target)
    rows, columns = dataset.Rows, dataset.Columns
    dataset.Rows = rows // 2
    dataset.save_as(target)
    code, _, err = run_cli(["convert", str(tmp_path / "dcm"), str(tmp_path / "out.nii.gz")], capsys)
    line = err.strip().splitlines()[-1]
    assert code == 1 and "no series can be one 3D volume" in line
    assert f"[size {rows}×{columns} (rows×columns); missing slices" in line
    assert f"[size {rows // 2}×{columns} (rows×columns) in {target.name}; a single slice" in line
    assert not (tmp_path / "out.nii.gz").exists()


def _spare_without_orientation(source: Path, target: Path) -> None:
    """A copy of ``source`` under a new SOPInstanceUID, without ImageOrientationPatient."""
    spare = pydicom.dcmread(source)
    del spare.ImageOrientationPatient
    spare.SOPInstanceUID = pydicom.uid.generate_uid()
    spare.save_as(target)


def test_a_spare_image_without_orientation_beside_a_whole_stack_is_left_out(tmp_path, caplog):
    """A complete stack plus one extra file without ImageOrientationPatient was read before (the file split off);
    the file must not make the whole series unusable. Where such files outnumber the oriented ones, they are the
    series' problem."""
    values, paths = make_series(tmp_path / "dcm", seed=9)
    _spare_without_orientation(sorted(paths)[0], tmp_path / "dcm" / "spare.dcm")
    with caplog.at_level("WARNING", logger="medseg"), pytest.warns(MedsegWarning) as caught:
        volume = read_dicom_series(tmp_path / "dcm")
    assert volume.shape == values.shape
    assert ("spare.dcm: without ImageOrientationPatient (the series' other images have it); left out of series"
            in caplog.text) and "it stands on a slice of it" in caplog.text
    assert [str(w.message) for w in caught] == [r.getMessage() for r in caplog.records if "spare.dcm" in r.getMessage()]
    assert len(caught) == 1
    # the last slice by position without it (its position one step past the rest): the stack is not read a slice
    # short with a warning; refused, naming it first
    (tmp_path / "dcm" / "spare.dcm").unlink()
    last = max(paths, key=lambda p: float(pydicom.dcmread(p).ImagePositionPatient[2]))
    dataset = pydicom.dcmread(last)
    del dataset.ImageOrientationPatient
    dataset.save_as(last)
    with pytest.raises(DicomError, match=rf"cannot be one 3D volume: {last.name}: without ImageOrientationPatient "
                                         r"\(the series' other images have it\), and it stands on no slice of the "
                                         "stack"):
        read_dicom_series(tmp_path / "dcm")
    # most images without it: refused, naming them first
    for path in sorted(paths)[1:]:
        dataset = pydicom.dcmread(path)
        if "ImageOrientationPatient" in dataset:
            del dataset.ImageOrientationPatient
            dataset.save_as(path)
    with pytest.raises(DicomError, match=r"cannot be one 3D volume: .*without ImageOrientationPatient \(the series' "
                                         r"other images have it\), and it stands on no slice of the stack \(and \d+ "
                                         r"more files\)"):
        read_dicom_series(tmp_path / "dcm")


def test_a_spare_image_without_orientation_is_left_out_of_the_part_it_copies_only(tmp_path, caplog):
    """An axial and a sagittal stack under one UID plus a spare of an axial slice without orientation: the spare
    was reported against both parts (it may belong to either by its header)."""
    sagittal = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)
    _, paths = make_series(tmp_path / "dcm", seed=10)
    uid = str(pydicom.dcmread(paths[0]).SeriesInstanceUID)
    number = int(pydicom.dcmread(paths[0]).SeriesNumber)
    write_series(tmp_path / "dcm", stored_values((10, 8, 6), seed=11), slice_positions(6, 2.0, orientation=sagittal),
                 orientation=sagittal, series_uid=uid, series_number=number, prefix="sag")
    _spare_without_orientation(sorted(paths)[2], tmp_path / "dcm" / "spare.dcm")
    with caplog.at_level("WARNING", logger="medseg"), pytest.warns(MedsegWarning) as caught:
        scan = scan_folder(tmp_path / "dcm")
    assert [c.eligible for c in scan.candidates] == [True, True]
    assert caplog.text.count("spare.dcm: without ImageOrientationPatient") == 1
    assert [str(w.message).split(";")[0] for w in caught] == [
        "spare.dcm: without ImageOrientationPatient (the series' other images have it)"]


def test_an_image_without_orientation_or_position_says_both(tmp_path):
    """Such an image can stand on no slice; the message said only that the orientation was missing, so a user
    could not tell why one spare image was left out and another refused."""
    _, paths = make_series(tmp_path / "dcm", seed=12)
    _spare_without_orientation(sorted(paths)[0], tmp_path / "dcm" / "spare.dcm")
    spare = pydicom.dcmread(tmp_path / "dcm" / "spare.dcm")
    del spare.ImagePositionPatient
    spare.save_as(tmp_path / "dcm" / "spare.dcm")
    with pytest.raises(DicomError, match=r"spare.dcm: without ImageOrientationPatient \(the series' other images have "
                                         r"it\), nor ImagePositionPatient"):
        read_dicom_series(tmp_path / "dcm")


@pytest.mark.parametrize(("keyword", "value"), [
    ("FrameOfReferenceUID", "1.2.826.0.1.99"),  # another coordinate system: its position means something else
    ("StudyInstanceUID", "1.2.826.0.1.98"),
    ("Modality", "MR"),
])
def test_a_file_that_disagrees_with_its_series_is_named(tmp_path, capsys, keyword, value):
    """One file of a series in another frame of reference, study or modality was stacked with the others without
    a word."""
    _, paths = make_series(tmp_path / "dcm", seed=6)
    odd = sorted(paths)[2]
    dataset = pydicom.dcmread(odd)
    common = str(dataset.get(keyword))
    setattr(dataset, keyword, value)
    dataset.save_as(odd)
    code, _, err = run_cli(["convert", str(tmp_path / "dcm"), str(tmp_path / "out.nii.gz")], capsys)
    assert code == 1
    assert err.strip().splitlines()[-1].endswith(
        f"its files disagree on {keyword} ({common} in {len(paths) - 1} files, {value} in {odd.name}); they do "
        "not make one volume")
    assert not (tmp_path / "out.nii.gz").exists()


def test_bits_stored_per_slice_and_an_attribute_some_files_lack_are_no_disagreement(tmp_path, caplog):
    """Some CT exports set BitsStored per slice to what its values need (each file is decoded by its own header),
    and anonymisers drop attributes from some files: neither is a series whose files disagree."""
    values, paths = make_series(tmp_path / "dcm", seed=6)
    for index, path in enumerate(sorted(paths)):
        dataset = pydicom.dcmread(path)
        dataset.BitsStored, dataset.HighBit = 12 + index % 2, 11 + index % 2
        if index == 3:
            del dataset.FrameOfReferenceUID
        dataset.save_as(path)
    volume = read_dicom_series(tmp_path / "dcm")
    assert volume.array.shape[2] == len(paths)
    # flagged, not warned about: a file whose header states fewer bits than its values use is refused (below)
    assert "per-slice-bits" in volume.info["flags"]
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
