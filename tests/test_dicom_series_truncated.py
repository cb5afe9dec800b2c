"""DICOM files cut short or unreadable (medseg/io/dicom_series.py): each named, in one line, before any decoding."""

from __future__ import annotations

import json
import re

import numpy as np
import pydicom
import pytest
from conftest import run_cli
from dicom_factory import make_series, slice_positions, stored_values, write_series
from pydicom.uid import JPEG2000Lossless

from medseg.errors import DicomError, ImageReadError, MedsegWarning
from medseg.io.dicom import describe_folder, read_dicom_series
from medseg.io.dicom_series import BROKEN_ADVICE

_ADVICE = re.escape(BROKEN_ADVICE) + "$"  # what to do, after the file's problem


def test_truncated_header_names_the_file(tmp_path):
    _, paths = make_series(tmp_path, seed=1)
    data = paths[2].read_bytes()
    paths[2].write_bytes(data[:400])
    with pytest.raises(ImageReadError, match=rf"{paths[2].name}: truncated or (corrupt|incomplete) DICOM file"):
        read_dicom_series(tmp_path)


def test_truncated_pixel_data_names_the_file(tmp_path, capsys):
    """Pixel data small enough to be read with the header (4 KB or less) and cut short: `inspect` called the series
    usable, where `convert` and `infer` refused it."""
    _, paths = make_series(tmp_path, seed=1)
    data = paths[4].read_bytes()
    paths[4].write_bytes(data[:-50])
    problem = rf"{paths[4].name} is cut short \(its pixel data is declared as \d+ bytes; the file ends 50 bytes short"
    with pytest.raises(DicomError, match=f"cannot be one 3D volume: {problem}"):
        read_dicom_series(tmp_path)
    code, stdout, err = run_cli(["inspect", str(tmp_path)], capsys)
    assert code == 1 and stdout.splitlines()[-1] == "would use: none" and re.search(problem, err)


def test_deflated_series_is_read_not_called_cut_short(tmp_path):
    """A Deflated Explicit VR Little Endian file (the whole dataset zlib-compressed) is smaller than the pixel data
    it declares, whose offset counts the inflated stream: its series was refused as "cut short" though pydicom reads
    it whole."""
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    values, paths = make_series(tmp_path / "study", seed=3, shape=(64, 64, 4))  # 8 KB per slice: read deferred
    for path in paths:
        dataset = pydicom.dcmread(path)
        dataset.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
        dataset.save_as(path, enforce_file_format=True)
    assert all(path.stat().st_size < 8192 for path in paths)
    volume = read_dicom_series(tmp_path / "study")
    np.testing.assert_array_equal(volume.array, values.astype(np.float32) - 1024.0)
    assert describe_folder(tmp_path / "study")["series"][0]["problem"] is None


def test_large_pixel_data_cut_short_is_found_from_the_header(tmp_path, capsys):
    """Pixel data above pydicom's deferral size is not read with the header: a file cut inside it was listed as part
    of an eligible series by `inspect`, and only `convert` (decoding) found it. Its declared length and the file's
    size tell, without decoding; the series is not eligible, and another one in the same folder still is."""
    _, paths = make_series(tmp_path / "study" / "cut", seed=1, shape=(64, 64, 4), series_number=3)
    make_series(tmp_path / "study" / "whole", seed=2, shape=(64, 64, 4), series_number=5, prefix="w")
    paths[2].write_bytes(paths[2].read_bytes()[:-1000])
    problem = (f"{paths[2].name} is cut short (its pixel data is declared as 8192 bytes; the file ends 1000 bytes "
               "short of them)")
    code, stdout, _ = run_cli(["-q", "inspect", str(tmp_path / "study"), "--json"], capsys)
    report = json.loads(stdout)
    assert code == 0 and {entry["key"]: entry["problem"] for entry in report["series"]} == {"3": problem, "5": None}
    assert report["chosen"]["key"] == "5"
    code, _, err = run_cli(["convert", str(tmp_path / "study" / "cut"), str(tmp_path / "out.nii.gz")], capsys)
    assert code == 1 and err.endswith(f"cannot be one 3D volume: {problem}\n")
    assert not (tmp_path / "out.nii.gz").exists()
    # the cut series alone: `inspect` exited 0 with "would use: none" where convert and infer refuse the folder, so
    # `inspect DIR && infer DIR` went on; it is a failure, with its line on stderr
    code, stdout, err = run_cli(["inspect", str(tmp_path / "study" / "cut")], capsys)
    assert code == 1 and stdout.splitlines()[-1] == "would use: none"
    assert err.startswith("medseg: error: ") and problem in err and len(err.splitlines()) == 1


def test_missing_pixel_data_names_the_file(tmp_path):
    _, paths = make_series(tmp_path, seed=1)
    ds = pydicom.dcmread(paths[1])
    del ds.PixelData
    ds.save_as(paths[1])
    with pytest.raises(DicomError, match=rf"cannot be one 3D volume: {paths[1].name} has no pixel data \(the file was "
                                         r"cut short, or written without its pixels\)"):
        read_dicom_series(tmp_path)


def test_a_file_cut_just_before_its_pixel_data_says_it_may_be_cut_short(tmp_path):
    """A copy interrupted at the pixel data element: the header is whole, the pixels are missing."""
    _, paths = make_series(tmp_path, seed=1)
    data = paths[2].read_bytes()
    paths[2].write_bytes(data[:data.index(b"\xe0\x7f\x10\x00")])  # up to (7FE0,0010) Pixel Data
    with pytest.raises(DicomError, match=rf"{paths[2].name} has no pixel data \(the file was cut short"):
        read_dicom_series(tmp_path)


def test_an_unreadable_file_is_one_line(tmp_path, capsys):
    """Permission denied on one file of the folder: named, one line, exit 1 (before: a traceback). Root reads
    everything, so as root the command runs with the file-access capabilities dropped."""
    import subprocess

    from conftest import medseg_as_plain_user

    _, paths = make_series(tmp_path / "dcm", seed=13)
    target = sorted(paths)[1]
    target.chmod(0)

    def medseg(*args: str) -> subprocess.CompletedProcess:
        return medseg_as_plain_user(list(args), capsys)

    run = medseg("convert", str(tmp_path / "dcm"), str(tmp_path / "out.nii.gz"))
    assert run.returncode == 1, run.stderr
    assert run.stderr.strip().splitlines() == [f"medseg: error: {target}: cannot read (permission denied)"]
    # inspect lists the folder all the same, the file among the unreadable ones, and says infer would refuse it
    run = medseg("inspect", str(tmp_path / "dcm"))
    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [f"medseg: error: {target}: cannot read (permission denied); infer and "
                                               "convert refuse the folder while it holds this file"]
    assert f"unreadable files: {target.name} (cannot read (permission denied))" in run.stdout
    assert run.stdout.strip().splitlines()[-1] == "would use: none"  # the reason: on stderr, once
    assert "CT" in run.stdout.splitlines()[1]  # the series of the other files is listed


@pytest.mark.parametrize("mode", [0o000, 0o311])  # no access at all; its files reachable, itself not listable
def test_a_folder_this_user_may_not_read_is_one_line_not_a_usage_error(tmp_path, mode, capsys):
    """click's own check made it a usage error (exit 2, "Path ... is not readable. Try 'medseg inspect --help'"),
    though the reader names it; and the reader said "dcm: cannot list dcm (Permission denied)". Exit 1 now, the
    reader's line, as for a file of the folder, and nothing written."""

    from conftest import medseg_as_plain_user

    make_series(tmp_path / "dcm", seed=13)
    (tmp_path / "dcm").chmod(mode)
    try:
        runs = [medseg_as_plain_user(command, capsys) for command in (
            ["inspect", str(tmp_path / "dcm")], ["convert", str(tmp_path / "dcm"), str(tmp_path / "out.nii.gz")])]
    finally:
        (tmp_path / "dcm").chmod(0o755)
    for run in runs:
        assert (run.returncode, run.stderr.strip().splitlines()) == (
            1, [f"medseg: error: {tmp_path / 'dcm'}: cannot read (permission denied)"]), run.stderr
    assert not (tmp_path / "out.nii.gz").exists()


def test_a_file_cut_inside_its_pixel_data_is_named_as_such(tmp_path):
    """pydicom gives up on the whole file; the header before the pixels is complete, so the pixels are the problem
    (the message said 'no SOPClassUID, SeriesInstanceUID')."""
    from medseg.errors import ImageReadError
    from medseg.io.dicom import read_dicom_series

    for anonymised in (False, True):  # an anonymised header has no SeriesInstanceUID at all
        folder = tmp_path / f"dcm{int(anonymised)}"
        paths = write_series(folder, stored_values((64, 64, 3), seed=1), slice_positions(3, 2.0),
                             transfer_syntax=JPEG2000Lossless)  # encapsulated: the cut loses the sequence delimiter
        if anonymised:
            for path in paths:
                dataset = pydicom.dcmread(path)
                del dataset.SeriesInstanceUID
                dataset.save_as(path)
        data = paths[1].read_bytes()
        paths[1].write_bytes(data[:-30])
        with pytest.raises(ImageReadError, match=rf"^{paths[1]}: truncated DICOM file \(it ends inside an element "
                                                 r"after its image header, most likely in the pixel data\); "
                                                 + _ADVICE):
            read_dicom_series(folder)


def test_an_image_file_cut_inside_its_header_is_named_truncated(tmp_path):
    """Cut before its image header (Rows, Columns...), a CT file read as a non-image object, and the folder was
    reported as 'no files and 1 non-image DICOM object(s)'."""
    from medseg.errors import ImageReadError
    from medseg.io.dicom import read_dicom_series

    paths = write_series(tmp_path / "dcm", stored_values((16, 14, 3), seed=1), slice_positions(3, 2.0))
    data = paths[1].read_bytes()
    paths[1].write_bytes(data[:data.index(b"\x28\x00\x10\x00")])  # up to (0028,0010) Rows
    with pytest.raises(ImageReadError, match=rf"^{paths[1]}: truncated or incomplete DICOM file \(CT Image Storage "
                                             r"without Rows or pixel data\); " + _ADVICE):
        read_dicom_series(tmp_path / "dcm")


def test_infer_and_convert_say_what_to_do_about_a_broken_slice_as_inspect_does(tmp_path, make_package, capsys):
    """A slice cut inside its header: inspect said "infer and convert refuse the folder while it holds this file",
    while infer's and convert's own error named the file and its problem alone, without what to do."""
    paths = write_series(tmp_path / "dcm", stored_values((16, 14, 3), seed=1), slice_positions(3, 2.0))
    data = paths[1].read_bytes()
    paths[1].write_bytes(data[:data.index(b"\x28\x00\x10\x00")])  # up to (0028,0010) Rows
    problem = f"{paths[1]}: truncated or incomplete DICOM file (CT Image Storage without Rows or pixel data)"
    code, stdout, err = run_cli(["inspect", str(tmp_path / "dcm")], capsys)
    assert code == 1 and stdout.splitlines()[-1] == "would use: none"
    assert err == f"medseg: error: {problem}; infer and convert refuse the folder while it holds this file\n"
    for argv in (["infer", str(tmp_path / "dcm"), "--model", str(make_package()), "-o", str(tmp_path / "out")],
                 ["convert", str(tmp_path / "dcm"), str(tmp_path / "out.nii.gz")]):
        code, _, err = run_cli(argv, capsys)
        assert code == 1 and err.splitlines()[-1] == (
            f"medseg: error: {problem}; the folder is refused while it holds this file (a slice of any of its series): "
            "copy it again from its source, or move it out of the folder to read the others")
    assert not (tmp_path / "out.nii.gz").exists() and not list(tmp_path.glob("out/*.nii.gz"))


@pytest.mark.parametrize("size", [0, 100])
def test_a_dcm_file_shorter_than_a_preamble_is_truncated_not_skipped(tmp_path, size):
    """An empty .dcm (an interrupted copy) was skipped as not DICOM with a warning: the volume lost a slice, and a
    gap at the end of the stack cannot be told."""
    from medseg.errors import ImageReadError
    from medseg.io.dicom import read_dicom_series

    paths = write_series(tmp_path / "dcm", stored_values((16, 14, 3), seed=1), slice_positions(3, 2.0))
    last = sorted(paths)[-1]
    last.write_bytes(last.read_bytes()[:size])
    with pytest.raises(ImageReadError, match=rf"^{last}: truncated DICOM file \({size} bytes, shorter than the 132 "
                                             r"that begin one\); " + _ADVICE):
        read_dicom_series(tmp_path / "dcm")
    (tmp_path / "dcm" / "empty.txt").write_bytes(b"")  # an empty file of another name is still not DICOM
    (tmp_path / "dcm" / "._IM1.dcm").write_bytes(b"\x00\x05\x16\x07")  # macOS's resource fork of a copied file
    last.unlink()
    with pytest.warns(MedsegWarning) as caught:
        volume = read_dicom_series(tmp_path / "dcm")
    assert sorted(volume.info["skipped_files"]) == ["._IM1.dcm: not a DICOM file", "empty.txt: not a DICOM file"]
    assert [str(w.message) for w in caught] == [
        f"{tmp_path / 'dcm'}: skipped 2 files that are not DICOM (._IM1.dcm, empty.txt)"]
