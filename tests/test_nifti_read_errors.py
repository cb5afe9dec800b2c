"""NIfTI files `medseg infer` refuses, each in one line that says what is wrong: cut, damaged or
mislabelled gzip, impossible headers, named pipes, more than three dimensions (medseg.io.nifti)."""

import contextlib
import gzip
import json
import os
import threading
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import _files, run_cli

from medseg.synthetic import make_phantom
from medseg.volume import stem

run = run_cli  # medseg ARGS in this process: (exit code, stdout, stderr)


def test_not_an_image(tmp_path, make_package, capsys):
    bad = tmp_path / "notes.nii.gz"
    bad.write_text("this is not an image\n")
    code, _, err = run(["infer", str(bad), "--model", str(make_package()), "-o", str(tmp_path / "out")], capsys)
    assert code == 1
    line = err.strip().splitlines()[-1]
    assert line == (f"medseg: error: {bad}: not a NIfTI image (named .gz but not gzip-compressed, and not an "
                    "uncompressed NIfTI file either)")
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists() or _files(tmp_path / "out") == []


@pytest.mark.parametrize(("name", "start", "kind"), [
    ("slice.png", b"\x89PNG\r\n\x1a\n", "PNG"), ("photo.jpg", b"\xff\xd8\xff\xe0", "JPEG"),
    ("stack.tif", b"II*\x00", "TIFF"), ("scan.BMP", b"BM", "BMP"),
])
def test_a_picture_file_is_named_as_one(tmp_path, case, make_package, capsys, name, start, kind):
    """A 2D PNG, JPEG, TIFF or BMP given as an image was "not a NIfTI image (Cannot work out file type of ...)", in
    nibabel's words; it is named as what it is, with what medseg reads, and the other inputs carry on."""
    picture = tmp_path / name
    picture.write_bytes(start + bytes(200))
    code, _, err = run(["infer", str(picture), str(case), "--model", str(make_package()), "-o",
                        str(tmp_path / "out")], capsys)
    assert code == 1
    assert f"medseg: error: {picture}: a {kind} picture, not an image medseg reads (a NIfTI file, an NRRD or " \
           "MetaImage file, or a DICOM series folder); save it as NIfTI with its voxel size" in err.splitlines()
    assert _files(tmp_path / "out") == ["case_seg.json", "case_seg.nii.gz", f"{name}_failed.json"]


@pytest.mark.parametrize("name", ["scan.nii", "scan.nii.gz"])
def test_a_damaged_magic_string_is_named_as_a_corrupt_header(tmp_path, case, make_package, capsys, name):
    """A NIfTI-1 header whose magic string was damaged (its size field 348 still) was "not a NIfTI image (Cannot work
    out file type of …)", as of a text file never an image; reading its header alone (cohort planning, train's tile)
    "cannot read header (Cannot work out file type …)". Both name the damaged field now."""
    from medseg.io.images import read_grid

    raw = bytearray(gzip.decompress(case.read_bytes()))
    raw[344:348] = b"abcd"
    bad = tmp_path / name
    bad.write_bytes(gzip.compress(bytes(raw)) if name.endswith(".gz") else bytes(raw))
    expected = (f"{bad}: corrupt header: its magic string (bytes 344 to 347) is b'abcd', not NIfTI-1's 'n+1', though "
                "its size field says a NIfTI-1 header; the file was damaged, or written by a tool that does not follow "
                "NIfTI")
    code, _, err = run(["infer", str(bad), "--model", str(make_package()), "-o", str(tmp_path / "out")], capsys)
    assert code == 1 and err.strip().splitlines()[-1] == f"medseg: error: {expected}"
    with pytest.raises(Exception) as caught:
        read_grid(bad)
    assert str(caught.value) == expected
    assert not (tmp_path / "out").exists() or _files(tmp_path / "out") == []


def test_a_few_bytes_not_named_as_nifti_are_not_called_a_cut_header(tmp_path, make_package, capsys):
    """Three bytes of notes.txt were "truncated header (3 bytes, less than any NIfTI header); the file was cut short",
    which sent a user after an interrupted copy of a file that was never an image."""
    bad = tmp_path / "notes.txt"
    bad.write_text("hi\n")
    code, _, err = run(["infer", str(bad), "--model", str(make_package()), "-o", str(tmp_path / "out")], capsys)
    assert code == 1
    assert err.strip().splitlines()[-1] == (f"medseg: error: {bad}: not a NIfTI image (Cannot work out file type of "
                                            f"\"{bad}\")")


@pytest.mark.parametrize("name, keep, expected", [
    ("cut.nii", 200, "truncated header (200 of 348 bytes)"),
    ("cut.nii.gz", 300, "truncated header (300 of 348 bytes)"),
    ("two.nii", 2, "truncated header (2 bytes, less than any NIfTI header)"),
    ("empty.nii", 0, "an empty file (0 bytes)"),
    ("stub.nii.gz", -30, "a gzip file of 30 bytes that ends before any of its content"),
], ids=["nii", "nii.gz", "two bytes", "empty", "gzip cut in its first bytes"])
def test_a_file_cut_inside_its_header_is_named_so(tmp_path, case, make_package, capsys, name, keep, expected):
    """A NIfTI cut inside its header (an interrupted copy) was "not a NIfTI image (Cannot work out file type …)",
    which sends a user looking for a format problem. A negative ``keep``: the compressed file's first bytes (it was
    called "an empty file (0 bytes)")."""
    whole = Path(case).read_bytes()
    raw = gzip.decompress(whole) if whole[:2] == b"\x1f\x8b" else whole
    bad = tmp_path / name
    bad.write_bytes(gzip.compress(raw)[:-keep] if keep < 0 else
                    gzip.compress(raw[:keep]) if name.endswith(".gz") else raw[:keep])
    code, _, err = run(["infer", str(bad), "--model", str(make_package()), "-o", str(tmp_path / "out")], capsys)
    assert code == 1
    assert err.strip().splitlines()[-1] == (f"medseg: error: {bad}: {expected}; the file was cut short (an "
                                            "interrupted copy or download?)")
    assert not (tmp_path / "out").exists() or _files(tmp_path / "out") == []


@pytest.mark.parametrize("name", ["cut.nii.gz", "cut.nii.gz.part"])
def test_a_gzip_file_cut_just_after_its_header_is_named_so(tmp_path, make_package, capsys, name):
    """Cut to its first 348 compressed bytes: a whole header, then too little for nibabel, which said "not a NIfTI
    image (Cannot work out file type …)". A partial download's name is not the problem to tell first."""
    whole = tmp_path / "whole.nii.gz"
    noise = np.random.default_rng(0).random((30, 30, 30), dtype=np.float32)  # does not compress: the header does
    nib.save(nib.Nifti1Image(noise, np.eye(4)), whole)
    bad = tmp_path / name
    bad.write_bytes(whole.read_bytes()[:348])
    code, _, err = run(["infer", str(bad), "--model", str(make_package()), "-o", str(tmp_path / "out")], capsys)
    assert code == 1
    assert err.strip().splitlines()[-1] == (f"medseg: error: {bad}: truncated image data (its gzip stream ends "
                                            "early); the file was cut short (an interrupted copy or download?)")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name, compressed, rename", [("scan.txt", True, "scan.txt.nii.gz"),
                                                      ("scan.dat", False, "scan.dat.nii"),
                                                      ("brain.nii.gz.1", True, "brain.nii.gz"),
                                                      ("brain.nii.bak", False, "brain.nii")])
def test_a_nifti_named_without_its_extension_is_told_to_be_renamed(tmp_path, case, make_package, capsys, name,
                                                                    compressed, rename):
    """It was "not a NIfTI image (Cannot work out file type …)" for a valid image under another name."""
    whole = Path(case).read_bytes()
    raw = gzip.decompress(whole) if whole[:2] == b"\x1f\x8b" else whole
    bad = tmp_path / name
    bad.write_bytes(gzip.compress(raw) if compressed else raw)
    code, _, err = run(["infer", str(bad), "--model", str(make_package()), "-o", str(tmp_path / "out")], capsys)
    assert code == 1
    assert err.strip().splitlines()[-1] == (f"medseg: error: {bad}: a NIfTI image by its header, but named without "
                                            f".nii or .nii.gz, which tells the reader its format; rename it {rename}")
    assert not (tmp_path / "out").exists()


def test_an_empty_gzip_file_is_named_so(tmp_path, make_package, capsys):
    bad = tmp_path / "empty.nii.gz"
    bad.write_bytes(gzip.compress(b""))
    code, _, err = run(["infer", str(bad), "--model", str(make_package()), "-o", str(tmp_path / "out")], capsys)
    assert code == 1 and err.strip().splitlines()[-1] == (
        f"medseg: error: {bad}: an empty file (gzip-compressed, no content); the file was cut short (an interrupted "
        "copy or download?)")


@pytest.mark.parametrize("count", [9, 0, -1, 8])
@pytest.mark.parametrize("name", ["odd.nii", "odd.nii.gz"])
def test_a_header_with_an_impossible_dimension_count_is_called_corrupt(tmp_path, case, make_package, capsys, count,
                                                                      name):
    """dim[0] outside 1..7: nibabel took the header for the other byte order and said "data code 4096 not
    recognized" (9, -1), or read an empty volume of shape (0,) (0)."""
    import struct

    whole = Path(case).read_bytes()
    raw = bytearray(gzip.decompress(whole) if whole[:2] == b"\x1f\x8b" else whole)
    raw[40:42] = struct.pack("<h", count)
    bad = tmp_path / name
    bad.write_bytes(gzip.compress(bytes(raw)) if name.endswith(".gz") else bytes(raw))
    code, _, err = run(["infer", str(bad), "--model", str(make_package()), "-o", str(tmp_path / "out")], capsys)
    assert code == 1 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == (f"medseg: error: {bad}: corrupt header (dim[0], its number of dimensions, "
                                            f"is {count}; NIfTI allows 1 to 7)")
    assert not (tmp_path / "out").exists() or _files(tmp_path / "out") == []


def test_an_impossible_dimension_count_is_named_in_every_header_kind_and_reader(tmp_path):
    """NIfTI-2 (dim[0] an int64 at byte 16) read as "declares 288230376151711744×… voxels", a big-endian header was
    read without a word, and the header-only reader (reports, training's pairing) said "cannot read header"."""
    import struct

    from medseg.errors import ImageReadError
    from medseg.io.images import read_grid
    from medseg.io.nifti import read_nifti

    data = np.zeros((4, 4, 4), np.float32)
    nib.save(nib.Nifti2Image(data, np.eye(4)), tmp_path / "two.nii")
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "little.nii")
    swapped = nib.load(tmp_path / "little.nii").header.as_byteswapped(">")
    nib.save(nib.Nifti1Image(data, np.eye(4), header=swapped), tmp_path / "big.nii")
    for name, place, form in (("two.nii", 16, "<q"), ("big.nii", 40, ">h"), ("little.nii", 40, "<h")):
        assert read_grid(tmp_path / name)[0] == (4, 4, 4)  # whole, each reads
        raw = bytearray((tmp_path / name).read_bytes())
        raw[place:place + struct.calcsize(form)] = struct.pack(form, 9)
        (tmp_path / f"odd_{name}").write_bytes(bytes(raw))
        for reader in (read_grid, read_nifti):
            with pytest.raises(ImageReadError, match=r"odd_\w+\.nii: corrupt header \(dim\[0\], its number of "
                                                     r"dimensions, is 9; NIfTI allows 1 to 7\)$"):
                reader(tmp_path / f"odd_{name}")


def test_an_unknown_datatype_code_is_named_in_every_header_kind_and_reader(tmp_path, case, make_package, capsys):
    """A datatype code NIfTI does not define (99) was "cannot read header (data code 99 not recognized)", nibabel's
    words; it is called a corrupt header, with the code and the codes NIfTI has. The other inputs carry on."""
    import struct

    from medseg.errors import ImageReadError
    from medseg.io.images import read_grid
    from medseg.io.nifti import read_nifti

    data = np.zeros((4, 4, 4), np.int16)
    nib.save(nib.Nifti2Image(data, np.eye(4)), tmp_path / "two.nii")
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "little.nii")
    swapped = nib.load(tmp_path / "little.nii").header.as_byteswapped(">")
    nib.save(nib.Nifti1Image(data, np.eye(4), header=swapped), tmp_path / "big.nii")
    said = ("corrupt header: its datatype code 99 is not one NIfTI defines (those of images and labels: 2 uint8, "
            "4 int16, 8 int32, 16 float32, 64 float64, 256 int8, 512 uint16, 768 uint32); the file was damaged, or "
            "written by a tool that does not follow NIfTI")
    bad = []
    for name, place, form in (("two.nii", 12, "<h"), ("big.nii", 70, ">h"), ("little.nii", 70, "<h")):
        raw = bytearray((tmp_path / name).read_bytes())
        raw[place:place + 2] = struct.pack(form, 99)
        bad.append(tmp_path / f"odd_{name}.gz")
        bad[-1].write_bytes(gzip.compress(bytes(raw)))
        for reader in (read_grid, read_nifti):
            with pytest.raises(ImageReadError) as caught:
                reader(bad[-1])
            assert str(caught.value) == f"{bad[-1]}: {said}"
    code, out, err = run(["infer", str(bad[0]), str(case), "--model", str(make_package()), "-o", str(tmp_path / "out")],
                         capsys)
    assert code == 1 and f"medseg: error: {bad[0]}: {said}\n" in err and "Traceback" not in err
    assert _files(tmp_path / "out") == [Path(case).name.replace(".nii.gz", "_seg.json"),
                                        Path(case).name.replace(".nii.gz", "_seg.nii.gz"), "odd_two_failed.json"]


@pytest.mark.parametrize("ending, said", [
    (".nii.xz", "xz-compressed (.xz), which medseg does not read; undo it (xz -d scan.nii.xz)"),
    (".nii.zst", "zstd-compressed (.zst), which this Python cannot read (it has no zstd: install the backports.zstd "
                 "package, or use Python 3.14); undo it (zstd -d scan.nii.zst)"),
    (".nii.ZIP", "a ZIP archive (.ZIP), which medseg does not read; undo it (unzip scan.nii.ZIP)"),
])
def test_an_image_in_a_compression_medseg_does_not_read_fails_alone_naming_what_it_reads(
        tmp_path, case, make_package, capsys, monkeypatch, ending, said):
    """A .nii.zst without zstd ended the whole batch in nibabel's TripWireError traceback; a .nii.xz was "not a NIfTI
    image (Cannot work out file type …)". Each is one line naming what medseg reads; the other inputs carry on."""
    import lzma

    from medseg.errors import ImageReadError
    from medseg.io import compression
    from medseg.io.images import read_grid

    monkeypatch.setattr(compression, "zstd_available", lambda: False)  # as here; where it is, nibabel reads .zst
    bad = tmp_path / f"scan{ending}"
    bad.write_bytes(lzma.compress(gzip.decompress(Path(case).read_bytes())))  # its content is never looked at
    expected = (f"{bad}: {said} or give one of .nii, .nii.gz, .nii.bz2, .nii.zst (with zstd), .hdr/.img (and .gz), "
                ".nrrd, .nhdr, .mha, .mhd, or a DICOM folder")
    code, _, err = run(["infer", str(bad), str(case), "--model", str(make_package()), "-o", str(tmp_path / "out")],
                       capsys)
    assert code == 1 and f"medseg: error: {expected}\n" in err and "Traceback" not in err
    assert err.rstrip().endswith(f"medseg: 1 of 2 inputs failed ({bad})")
    assert _files(tmp_path / "out") == sorted(["case_seg.json", "case_seg.nii.gz", f"{stem(bad)}_failed.json"])
    with pytest.raises(ImageReadError) as caught:  # the header-only reader (the report, training's pairing)
        read_grid(bad)
    assert str(caught.value) == expected


@contextlib.contextmanager
def writers_after(seconds: float, *pipes: Path):
    """Named pipes that a reader waiting on them for ``seconds`` is let go from (a writer opens and closes each, and
    again every ``seconds``): a regression that waits for a writer then fails, where it would hang. Yields the list of
    the pipes found waited on."""
    waited: list[Path] = []
    stop = threading.Event()

    def let_go():
        while not stop.wait(seconds):
            for pipe in pipes:
                try:
                    os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))
                except OSError:  # ENXIO: no reader waits on it
                    continue
                waited.append(pipe)

    watchdog = threading.Thread(target=let_go, daemon=True)
    watchdog.start()
    try:
        yield waited
    finally:
        stop.set()
        watchdog.join()


def test_a_named_pipe_fails_alone_instead_of_waiting_for_a_writer(tmp_path, case, make_package, capsys):
    """Opening a named pipe waits until something writes to it: as an input it held the whole batch (and a cohort
    job) for ever; as a reference, the scoring. A writer lets a waiting reader go after 30 s, so that a regression
    fails, not hangs."""

    pipe = tmp_path / "pipe.nii.gz"
    os.mkfifo(pipe)
    reference = tmp_path / "reference"  # no suffix: looked at for the DICOM marker
    os.mkfifo(reference)
    package = str(make_package())
    refused = "not a regular file (a named pipe, socket or device); give the image file"

    with writers_after(30, pipe, reference) as waited:
        code, _, err = run(["infer", str(pipe), str(case), "--model", package, "-o", str(tmp_path / "out")], capsys)
        assert code == 1
        assert f"medseg: error: {pipe}: {refused}" in err.splitlines()
        assert _files(tmp_path / "out") == ["case_seg.json", "case_seg.nii.gz", "pipe_failed.json"]
        code, _, err = run(["evaluate", str(tmp_path / "out" / "case_seg.nii.gz"), str(reference), "-o",
                            str(tmp_path / "m.json")], capsys)
        assert code == 1 and err.strip().splitlines()[-1] == f"medseg: error: {reference}: {refused}"
        assert not (tmp_path / "m.json").exists()
    assert waited == []


def test_the_header_checks_do_not_open_a_named_pipe(tmp_path):
    """What looks at a NIfTI header's first bytes (to tell a header cut short) opened a named pipe and waited for a
    writer: files_read, which hashes a reference or a cohort's input, hung there after load_image had refused it.
    Each is run in a thread with a time limit; a regression is released by writing nothing to the pipe."""
    import threading

    from medseg.errors import ImageReadError
    from medseg.io import nifti, nifti_files

    pipe = tmp_path / "pipe.nii.gz"
    os.mkfifo(pipe)
    refused = "not a regular file (a named pipe, socket or device); give the image file"
    outcomes: dict[str, object] = {}

    def files_read():
        try:
            nifti.files_read(pipe)
        except ImageReadError as error:
            outcomes["files_read"] = str(error)

    checks = {"files_read": files_read,
              "header_start": lambda: outcomes.update(header_start=nifti_files._header_start(pipe)),
              "gzip_cut_short": lambda: outcomes.update(gzip_cut_short=nifti_files._gzip_cut_short(pipe))}
    for name, check in checks.items():
        thread = threading.Thread(target=check, daemon=True)
        thread.start()
        thread.join(5)
        if thread.is_alive():  # it waits in open(): a writer that closes at once lets it go
            os.close(os.open(pipe, os.O_WRONLY | os.O_NONBLOCK))
            thread.join(5)
            outcomes[name] = "waited for a writer"
    assert outcomes == {"files_read": f"{pipe}: {refused}", "header_start": None, "gzip_cut_short": False}


def test_a_named_pipe_beside_a_header_is_refused(tmp_path, case, make_package, capsys):
    """Only the path given was checked: a ``.hdr`` whose ``.img`` is a named pipe waited for ever, as did an
    ``.img`` whose ``.hdr`` is one, or an Analyze image's SPM ``.mat`` (which nibabel opens when it is there)."""

    for name in ("data", "header"):
        nib.save(nib.Nifti1Pair(np.zeros((4, 4, 4), np.float32), np.eye(4)), tmp_path / f"{name}.hdr")
    nib.save(nib.AnalyzeImage(np.zeros((4, 4, 4), np.float32), np.eye(4)), tmp_path / "spm.hdr")
    for fifo in ("data.img", "header.hdr", "spm.mat"):
        (tmp_path / fifo).unlink(missing_ok=True)
        os.mkfifo(tmp_path / fifo)
    fifos = [tmp_path / fifo for fifo in ("data.img", "header.hdr", "spm.mat")]
    with writers_after(30, *fifos) as waited:
        code, _, err = run(["infer", str(tmp_path / "data.hdr"), str(tmp_path / "header.img"),
                            str(tmp_path / "spm.hdr"), str(case), "--model", str(make_package()), "-o",
                            str(tmp_path / "out")], capsys)
    assert waited == []
    assert code == 1
    refused = "not a regular file (a named pipe, socket or device); give the image file"
    assert [line for line in err.splitlines() if line.startswith("medseg: error: ")] == [
        f"medseg: error: {tmp_path / 'data.img'}: {refused} (the data file of {tmp_path / 'data.hdr'})",
        f"medseg: error: {tmp_path / 'header.hdr'}: {refused} (the header of {tmp_path / 'header.img'})",
        f"medseg: error: {tmp_path / 'spm.mat'}: {refused} (the SPM .mat file of {tmp_path / 'spm.hdr'})"]
    assert _files(tmp_path / "out") == ["case_seg.json", "case_seg.nii.gz", "data_failed.json", "header_failed.json",
                                        "spm_failed.json"]


def test_a_folder_named_like_an_spm_mat_is_passed_over_as_nibabel_passes_it(tmp_path):
    from medseg.io.nifti import load_image

    nib.save(nib.AnalyzeImage(np.arange(64, dtype=np.float32).reshape(4, 4, 4), np.eye(4)), tmp_path / "spm.hdr")
    (tmp_path / "spm.mat").mkdir()
    assert np.asarray(load_image(tmp_path / "spm.hdr").dataobj).sum() == 2016
    (tmp_path / "spm.img").rename(tmp_path / "img")
    (tmp_path / "spm.img").mkdir()
    with pytest.raises(OSError, match=rf"^{tmp_path / 'spm.img'}: a folder, not a file; give the image file \(the "
                                      rf"data file of {tmp_path / 'spm.hdr'}\)$"):
        load_image(tmp_path / "spm.hdr")


@pytest.mark.parametrize("kind", [nib.Nifti1Image, nib.Nifti2Image])
def test_an_uncompressed_file_named_nii_gz_is_read_as_what_it_is(tmp_path, case, make_package, capsys, caplog, kind):
    """A NIfTI file named .nii.gz but stored uncompressed (a renamed or mislabelled export) was refused as "not a
    gzip file", though tools built on the NIfTI reference library read it; it is read, with a note."""
    import hashlib

    package = str(make_package())
    stored = nib.load(str(case))
    plain = tmp_path / "plain" / "case.nii.gz"
    plain.parent.mkdir()
    nib.save(kind(np.asanyarray(stored.dataobj), stored.affine, stored.header if kind is nib.Nifti1Image else None),
             str(tmp_path / "plain.nii"))
    (tmp_path / "plain.nii").rename(plain)
    label = tmp_path / "plain" / "label.nii.gz"  # the reference may be so too
    phantom = make_phantom((40, 40, 8), seed=11)  # the fixture's
    label.write_bytes(nib.Nifti1Image(phantom.labels, stored.affine).to_bytes())
    assert plain.read_bytes()[:2] != b"\x1f\x8b" and label.read_bytes()[:2] != b"\x1f\x8b"

    assert run(["infer", str(case), "--model", package, "-o", str(tmp_path / "a")], capsys)[0] == 0
    code, _, err = run(["infer", str(plain), "--model", package, "-o", str(tmp_path / "b")], capsys)
    assert code == 0, err
    note = "not gzip-compressed despite its .gz name: read as an uncompressed NIfTI file"
    assert f"{plain}: {note}" in caplog.text
    sidecar = json.loads((tmp_path / "b" / "case_seg.json").read_text())
    assert sidecar["input_info"] == {"compression_note": note}
    assert sidecar["input_sha256"] == hashlib.sha256(plain.read_bytes()).hexdigest()
    expected = nib.load(str(tmp_path / "a" / "case_seg.nii.gz"))
    written = nib.load(str(tmp_path / "b" / "case_seg.nii.gz"))
    assert (tmp_path / "b" / "case_seg.nii.gz").read_bytes()[:2] == b"\x1f\x8b"  # the output is what its name says
    assert np.array_equal(written.affine, expected.affine)
    assert np.array_equal(np.asanyarray(written.dataobj), np.asanyarray(expected.dataobj))
    # its header is checked as stored, as a .nii's is (it was read again through gzip, which failed, and nibabel's
    # repaired header passed: a zero voxel size became 1 mm)
    import struct

    from medseg.io.nifti import read_nifti

    zero = tmp_path / "zero.nii"
    data = bytearray(gzip.decompress(case.read_bytes()))
    data[252:256] = struct.pack("<hh", 0, 0)  # qform and sform codes 0: the geometry comes from pixdim
    data[80:84] = struct.pack("<f", 0.0)  # pixdim[1]
    zero.write_bytes(data)
    (tmp_path / "zero_plain.nii.gz").write_bytes(data)
    messages = []
    for path in (zero, tmp_path / "zero_plain.nii.gz"):
        with pytest.raises(Exception) as error:
            read_nifti(path)
        messages.append(str(error.value).replace(str(path), "FILE"))
    assert messages[0] == messages[1] and "voxel size" in messages[0]
    # a reference stored so is read as well, and scores as its compressed copy
    scores = []
    for reference in (label, tmp_path / "label.nii.gz"):
        if reference.name == "label.nii.gz" and reference.parent == tmp_path:
            reference.write_bytes(gzip.compress(label.read_bytes()))
        code, out, err = run(["evaluate", str(tmp_path / "b" / "case_seg.nii.gz"), str(reference), "--json",
                              "-o", str(tmp_path / f"m{len(scores)}.json")], capsys)
        assert code == 0, err
        scores.append({k: v["dice"] for k, v in json.loads(out)["labels"].items()})
    assert scores[0] == scores[1] and set(scores[0]) == {"1", "2", "3"}  # an untrained model: the values do not count


def test_truncated_gzip_leaves_nothing_behind(tmp_path, case, make_package, capsys):
    truncated = tmp_path / "trunc.nii.gz"
    truncated.write_bytes(case.read_bytes()[: len(case.read_bytes()) // 2])
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code, _, err = run(["infer", str(truncated), "--model", str(make_package()), "-o", str(out_dir)], capsys)
    assert code == 1
    assert f"{truncated}: truncated image data (its gzip stream ends early); the file was cut short" in err
    assert _files(out_dir) == []  # no output, no hidden partial file


@pytest.mark.parametrize("damage", ["checksum", "length", "cut trailer"])
def test_a_damaged_gzip_stream_is_refused_though_its_voxels_decode(tmp_path, case, make_package, capsys, damage):
    """nibabel stops reading once it has the voxels: before, a wrong CRC-32 (a flipped bit the deflate stream
    decodes) or a file cut inside its 8-byte gzip trailer was segmented with exit 0. A wrong checksum or length was
    then said in gzip's words alone ("CRC check failed 3028949232 != 3027572976", "Incorrect length of data
    produced"), which told neither that the file was damaged nor what to do."""
    data = bytearray(case.read_bytes())
    if damage == "checksum":
        data[-8] ^= 0x01  # the CRC-32 of the uncompressed data
    elif damage == "length":
        data[-4] ^= 0x01  # the uncompressed length, modulo 2**32
    else:
        data = data[:-4]  # the uncompressed length is gone
    bad = tmp_path / "damaged.nii.gz"
    bad.write_bytes(bytes(data))
    assert nib.load(bad).get_fdata().shape == (40, 40, 8)  # nibabel itself reads it
    out_dir = tmp_path / "out"
    code, _, err = run(["infer", str(bad), "--model", str(make_package()), "-o", str(out_dir)], capsys)
    assert code == 1
    line = err.strip().splitlines()[-1]
    damaged = "the file was damaged (a bad copy, download or disk?): copy it again from its source"
    if damage != "cut trailer":  # in gzip's words (ISA-L's are the same), then medseg's
        words = "CRC check failed" if damage == "checksum" else "Incorrect length of data produced"
        assert line.startswith(f"medseg: error: {bad}: truncated or corrupt image data (gzip: {words}")
        assert line.endswith(f"); {damaged}")
    else:
        assert line == (f"medseg: error: {bad}: truncated image data (its gzip stream ends early); the file was cut "
                        "short (an interrupted copy or download?)")
    assert not out_dir.exists() or _files(out_dir) == []


def test_not_3d_is_refused(tmp_path, make_package, capsys, monkeypatch):
    """A 4D image of several volumes (an fMRI run, a multi-channel MSD case) is refused from its header (it was read
    in full first), saying what the extra axes hold; it said "medseg reads one volume per file", which multi-modal
    models no longer bear out."""
    import medseg.io.nifti

    def read_voxels(*args, **kwargs):
        raise AssertionError("voxels read")

    monkeypatch.setattr(medseg.io.nifti, "_read_float", read_voxels)
    path = tmp_path / "four_d.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 4, 3), np.float32), np.eye(4)), str(path))
    code, _, err = run(["infer", str(path), "--model", str(make_package())], capsys)
    assert code == 1 and err.strip().splitlines()[-1] == (
        f"medseg: error: {path}: expected a 3D volume, got shape (8, 8, 4, 3): 3 volumes (time points or channels); "
        "a label image, or the input of a model of one image a case, is one volume per file (a model declaring that "
        "many modalities takes a 4D NIfTI's volumes as its channels), so save the one meant as a file of its own")
    five = tmp_path / "five_d.nii"
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 4, 2, 3), np.float32), np.eye(4)), str(five))
    code, _, err = run(["infer", str(five), "--model", str(make_package())], capsys)
    assert code == 1 and err.strip().splitlines()[-1] == (
        f"medseg: error: {five}: expected a 3D volume, got shape (8, 8, 4, 2, 3): 6 volumes (time points or "
        "channels); a label image, or the input of a model of one image a case, is one volume per file (a model "
        "declaring that many modalities takes a 4D NIfTI's volumes as its channels), so save the one meant as a "
        "file of its own")


def _corrupt_files(folder, case):
    """NIfTI files whose header or voxel type nibabel cannot turn into a grey-level volume."""
    import struct

    good = folder / "good.nii"
    nib.save(nib.load(str(case)), str(good))
    raw = good.read_bytes()

    def patched(name, offset, fmt, *values):
        data = bytearray(raw)
        struct.pack_into(fmt, data, offset, *values)
        (folder / name).write_bytes(bytes(data))
        return folder / name

    rgb = np.zeros((4, 5, 6), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    nib.save(nib.Nifti1Image(rgb, np.eye(4)), str(folder / "rgb.nii.gz"))
    nib.save(nib.Nifti1Image(np.ones((4, 5, 6), np.complex64), np.eye(4)), str(folder / "complex.nii.gz"))
    header = nib.Nifti1Header()
    header.set_data_shape((4, 5, 6))
    header.set_sform(np.diag([0.0, 1.0, 1.0, 1.0]), code=1)  # a zero voxel axis, no qform to fall back on
    nib.save(nib.Nifti1Image(np.ones((4, 5, 6), np.float32), None, header=header), str(folder / "flat.nii.gz"))
    return {
        patched("dtype.nii", 70, "<h", 9999): "corrupt header: its datatype code 9999 is not one NIfTI defines",
        patched("negdim.nii", 42, "<h", -5): "corrupt header (negative dimension in shape (-5, 40, 8))",
        folder / "rgb.nii.gz": "RGB or other multi-value voxels",
        folder / "complex.nii.gz": "complex voxels (complex64)",
        folder / "flat.nii.gz": "the affine is singular or not finite (rows 0 0 0 0; 0 1 0 0; 0 0 1 0)",
    }


def test_corrupt_headers_and_voxel_types_are_one_line_and_the_batch_goes_on(tmp_path, case, make_package, capsys):
    bad = _corrupt_files(tmp_path, case)
    out_dir = tmp_path / "out"
    code, _, err = run(["infer", *map(str, bad), str(case), "--model", str(make_package()), "-o", str(out_dir)],
                       capsys)
    assert code == 1 and "Traceback" not in err and "nibabel" not in err
    lines = [line for line in err.splitlines() if line.startswith("medseg: error:")]
    assert len(lines) == len(bad)
    for line, (path, problem) in zip(lines, bad.items()):
        assert line.startswith(f"medseg: error: {path}: {problem}")
    # the last line names the failed inputs (the first three), as their error lines may have scrolled away
    first = ", ".join(str(path) for path in list(bad)[:3])
    assert err.strip().splitlines()[-1] == (f"medseg: {len(bad)} of {len(bad) + 1} inputs failed ({first} and "
                                            f"{len(bad) - 3} more)")
    records = [f"{stem(path)}_failed.json" for path in bad]  # one per failed input, for the report to list
    assert _files(out_dir) == sorted(["case_seg.json", "case_seg.nii.gz", *records])


def test_a_header_declaring_more_voxels_than_its_file_holds_is_called_corrupt(tmp_path, capsys):
    """A header promising 2000³ voxels in a file that cannot hold them (a corrupt header, a file cut short) was
    blamed on the machine's memory ("segmenting its 2000×2000×2000 voxels needs about 89 GiB"): uncompressed, or
    gzip-compressed beyond deflate's ratio. A bzip2 file (which nibabel reads) is not held to either bound, and its
    outputs are named without .nii.bz2 (small_seg.nii.gz, not small.nii.bz2_seg.nii.gz)."""
    import bz2

    image = nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), np.eye(4))
    image.header.set_data_shape((2000, 2000, 2000))
    image.header["vox_offset"] = 352
    header = image.header.binaryblock + b"\0" * 4
    reference = tmp_path / "reference.nii.gz"
    phantom = make_phantom((24, 24, 8), seed=3)
    nib.save(nib.Nifti1Image(phantom.image, phantom.affine), tmp_path / "small.nii")
    nib.save(nib.Nifti1Image(phantom.labels, phantom.affine), reference)
    cut, packed = tmp_path / "cut.nii", tmp_path / "packed.nii.gz"
    cut.write_bytes(header + b"\0" * 256)
    packed.write_bytes(gzip.compress(header + b"\0" * 10**6))
    cut_short = "the file was cut short (an interrupted copy or download?), or its header is corrupt"
    for given, says in ((cut, f"from byte 352, but the file holds 608 bytes; {cut_short}"),
                        (packed, f"more than a gzip file of {packed.stat().st_size} bytes can hold; {cut_short}")):
        for command in (["infer", str(given), "-o", str(tmp_path / "out"), "--device", "cpu"],
                        ["evaluate", str(given), str(reference)]):
            code, _, err = run(command, capsys)
            assert code == 1 and err.strip().splitlines()[-1] == (
                f"medseg: error: {given}: its header declares 2000×2000×2000 voxels of float32 (32 GB), {says}"
                if given == packed else
                f"medseg: error: {given}: its header declares 2000×2000×2000 voxels of float32 (32 GB) {says}"), err
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
    # bzip2: read as before (it was refused as cut short)
    compressed = tmp_path / "small.nii.bz2"
    compressed.write_bytes(bz2.compress((tmp_path / "small.nii").read_bytes()))
    code, _, err = run(["infer", str(compressed), "-o", str(tmp_path / "out"), "--device", "cpu"], capsys)
    assert code == 0 and (tmp_path / "out" / "small_seg.nii.gz").is_file(), err


@pytest.mark.parametrize("field, place, value, said", [
    ("datatype", 70, 99, "corrupt header: its datatype code 99 is not one NIfTI defines (those of images and labels: "
                         "2 uint8, 4 int16, 8 int32, 16 float32, 64 float64, 256 int8, 512 uint16, 768 uint32); the "
                         "file was damaged, or written by a tool that does not follow NIfTI"),
    ("dim[0]", 40, 9, "corrupt header (dim[0], its number of dimensions, is 9; NIfTI allows 1 to 7)"),
])
@pytest.mark.parametrize("kind", [nib.AnalyzeImage, nib.Nifti1Pair])
def test_the_img_of_a_pair_whose_header_is_corrupt_names_its_header(tmp_path, capfd, kind, field, place, value, said):
    """An Analyze / NIfTI pair given by its .img: the header checks looked only at a file given as .hdr, and the .img
    was refused in nibabel's words ("cannot read header (data code 99 not recognized)", with nibabel's own line
    "data code 99 not recognized; not attempting fix" printed before it). The header, the file at fault, is named."""
    import struct

    from medseg.errors import ImageReadError
    from medseg.io.images import read_grid
    from medseg.io.nifti import read_nifti

    nib.save(kind(np.zeros((4, 4, 4), np.int16), np.eye(4)), tmp_path / "scan.img")
    header = tmp_path / "scan.hdr"
    raw = bytearray(header.read_bytes())
    raw[place:place + 2] = struct.pack("<h", value)
    header.write_bytes(bytes(raw))
    capfd.readouterr()
    for reader in (read_grid, read_nifti):
        with pytest.raises(ImageReadError) as caught:
            reader(tmp_path / "scan.img")
        assert str(caught.value) == f"{header}: {said}"
    assert capfd.readouterr() == ("", "")


@pytest.mark.parametrize("name", ["slice.nii.gz", "slice.nii", "slice.NII.GZ"])
def test_a_dicom_file_named_as_nifti_is_named_as_dicom(tmp_path, capsys, name):
    """A DICOM file renamed ``.nii.gz`` or ``.nii`` was "not a NIfTI image (named .gz but not gzip-compressed, and not
    an uncompressed NIfTI file either)" (or nibabel's "Cannot work out file type"): its DICM marker tells what it is,
    and its folder is what to give, as the DICOM reader takes it there (the misnamed file among the series)."""
    from dicom_factory import make_series

    from medseg.errors import ImageReadError
    from medseg.io.images import read_grid, read_image

    _, paths = make_series(tmp_path / "series")
    misnamed = paths[0].with_name(name)
    paths[0].rename(misnamed)
    ending = ".nii" if name.lower().endswith(".nii") else ".nii.gz"
    line = (f"{misnamed}: a DICOM file (the DICM marker after its 128-byte preamble) named as a NIfTI image "
            f"({ending}); DICOM is read by its series' folder: give {misnamed.parent}, with series=... where it "
            "holds more than one")
    assert ".dcm" not in line  # a .dcm given on its own is refused too: renaming it is no way to have it read
    for reader in (read_image, read_grid):
        with pytest.raises(ImageReadError) as raised:
            reader(misnamed)
        assert str(raised.value) == line
    code, out, err = run(["infer", str(misnamed), "-o", str(tmp_path / "out")], capsys)
    # refused before the model loads (no "model phantom ... on cpu" line), as a file named .dcm is
    told = "medseg: error: " + line.replace("series=...", "--series")
    assert (code, out, err.strip().splitlines()) == (1, "", [told])
    assert not (tmp_path / "out").exists()
    assert read_image(misnamed.parent).array.shape == (10, 8, 6)  # the folder given, the file is one of its slices


def test_a_gzipped_dicom_file_named_nii_gz_is_named_as_dicom(tmp_path, capsys):
    """A DICOM file gzip-compressed and named ``.nii.gz`` was "not a NIfTI image (Cannot work out file type ...)" from
    read_image and "cannot read header (...)" from read_grid: its DICM marker, once decompressed, tells what it is,
    and the DICOM reader takes no compressed file, so it is to be decompressed into its series' folder. Refused
    before the model loads; a NIfTI file whose bytes 128 to 131 (cal_min) happen to read DICM is read as it is."""
    import struct

    from dicom_factory import make_series

    from medseg.errors import ImageReadError
    from medseg.io.images import read_grid, read_image

    _, paths = make_series(tmp_path / "series")
    misnamed = tmp_path / "gz" / "slice.nii.gz"
    misnamed.parent.mkdir()
    misnamed.write_bytes(gzip.compress(paths[0].read_bytes()))
    line = (f"{misnamed}: a gzip-compressed DICOM file (the DICM marker after its 128-byte preamble, once "
            "decompressed) named as a NIfTI image (.nii.gz); DICOM is read by its series' folder, uncompressed: "
            "decompress it into the folder of its series and give that folder, with series=... where it holds more "
            "than one")
    for reader in (read_image, read_grid):
        with pytest.raises(ImageReadError) as raised:
            reader(misnamed)
        assert str(raised.value) == line
    code, out, err = run_cli(["infer", str(misnamed), "-o", str(tmp_path / "out")], capsys)
    assert (code, out, err.strip().splitlines()) == (1, "", ["medseg: error: " + line.replace("series=...",
                                                                                              "--series")])
    assert not (tmp_path / "out").exists()
    image = nib.Nifti1Image(np.arange(24, dtype=np.float32).reshape(2, 3, 4), np.eye(4))
    image.header["cal_min"] = struct.unpack("<f", b"DICM")[0]
    for name in ("cal.nii", "cal.nii.gz"):
        nib.save(image, tmp_path / name)
        assert read_image(tmp_path / name).array.shape == (2, 3, 4)


@pytest.mark.parametrize("name", ["cal.nii", "cal.nii.gz"])
def test_a_nifti_whose_cal_min_reads_dicm_is_no_dicom_file_and_is_read_once(tmp_path, name):
    """A NIfTI file whose bytes 128 to 131 (cal_min) read ``DICM`` was taken for a DICOM file named as NIfTI by the
    check made before the model loads, which then read the whole image to have its error (there was none: the image
    was read again to be segmented). Its header tells it apart, and the check reads no voxel: an image whose voxels
    are cut short passes it (its reading refuses it), where the check refused it for reading them."""
    import struct

    from medseg.batch_outputs import check_dicom_file_input
    from medseg.errors import ImageReadError
    from medseg.io.images import read_image
    from medseg.io.nifti_files import dicom_named_as_nifti

    image = nib.Nifti1Image(np.arange(4096, dtype=np.float32).reshape(16, 16, 16), np.eye(4))
    image.header["cal_min"] = struct.unpack("<f", b"DICM")[0]
    nib.save(image, tmp_path / "whole.nii")
    whole = (tmp_path / "whole.nii").read_bytes()
    cut = whole[:len(whole) // 2]  # the header whole, half the voxels
    path = tmp_path / name
    path.write_bytes(gzip.compress(cut) if name.endswith(".gz") else cut)
    assert (gzip.decompress(path.read_bytes()) if name.endswith(".gz") else path.read_bytes())[128:132] == b"DICM"
    assert dicom_named_as_nifti(path) is None
    assert check_dicom_file_input(path) is None
    with pytest.raises(ImageReadError, match="cut short|truncated"):
        read_image(path)


@pytest.mark.parametrize("given_as", ["reference", "prediction"])
def test_a_dicom_image_named_as_nifti_given_as_a_segmentation_is_no_segmentation(tmp_path, capsys, given_as):
    """`medseg evaluate` of a CT slice renamed ``ref.nii.gz`` told its user to give the slice's folder "with series=...
    (a keyword argument of medseg's Python functions; medseg evaluate has no option for it)": a series folder is no
    reference, and evaluate refuses a folder beside a file. Named .dcm, the same file is "a DICOM CT object, not a
    DICOM SEG (a segmentation)"; named .nii.gz it is told so too."""
    from dicom_factory import make_series

    _, paths = make_series(tmp_path / "series")
    misnamed = tmp_path / "seg.nii.gz"
    misnamed.write_bytes(paths[0].read_bytes())
    labels = tmp_path / "labels.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((10, 8, 6), np.uint8), np.eye(4)), str(labels))
    pair = [str(labels), str(misnamed)] if given_as == "reference" else [str(misnamed), str(labels)]
    code, out, err = run_cli(["evaluate", *pair, "-o", str(tmp_path / "scores") + "/"], capsys)
    assert (code, out, err.strip().splitlines()) == (1, "", [
        f"medseg: error: {misnamed}: a DICOM file (the DICM marker after its 128-byte preamble) named as a NIfTI "
        "image (.nii.gz): a DICOM CT object, not a DICOM SEG (a segmentation)"])
