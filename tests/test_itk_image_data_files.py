"""The data files of NRRD and MetaImage headers (medseg.io.itk_image): detached, gzipped, listed and patterned
data files are read, hashed and tracked, and the ones that cannot be are refused naming them."""

from __future__ import annotations

import re

import numpy as np
import pytest
from itk_factory import (
    _oblique,
    _values,
    simpleitk,  # noqa: F401  (the sitk fixture its tests take)
)

from medseg.errors import ImageReadError
from medseg.io.atomic import sha256_of
from medseg.io.images import read_grid, read_image
from tests.conftest import run_cli


@pytest.mark.parametrize("compress", ["gzip", "zlib"])
def test_a_mhd_whose_raw_is_there_gzipped_is_read_from_it_and_hashed_by_it(sitk, tmp_path, compress, monkeypatch):
    """``ElementDataFile = scan.raw`` where only ``scan.raw.gz`` is: MetaImage's library reads the ``.gz``,
    decompressed; medseg refused the image as missing its data file. It now reads it (no byte count of its own:
    a zlib stream smaller than the voxels is not "cut short"), and its hash and signature cover the ``.gz``; the
    folder's listing takes the ``.gz`` as part of the image."""
    import gzip
    import zlib

    from medseg.io.itk_image import data_files_among, itk_files_read
    from medseg.io.pairs import file_signature

    values = _values("int16")
    sitk.WriteImage(_oblique(sitk, values), str(tmp_path / "scan.mhd"))
    raw = (tmp_path / "scan.raw").read_bytes()
    (tmp_path / "scan.raw").unlink()
    gz = tmp_path / "scan.raw.gz"
    gz.write_bytes(gzip.compress(raw) if compress == "gzip" else zlib.compress(raw))
    assert itk_files_read(tmp_path / "scan.mhd") == [tmp_path / "scan.mhd", gz]
    assert data_files_among([tmp_path / "scan.mhd", gz]) == {gz}
    volume = read_image(tmp_path / "scan.mhd")
    assert np.array_equal(volume.array, values.transpose(2, 1, 0).astype(np.float32))
    assert volume.source_sha256 == sha256_of([tmp_path / "scan.mhd", gz])
    assert read_grid(tmp_path / "scan.mhd")[0] == values.shape[::-1]
    stats = [(tmp_path / "scan.mhd").stat(), gz.stat()]
    assert file_signature(tmp_path / "scan.mhd") == [[s.st_size, s.st_mtime_ns] for s in stats]
    if compress == "gzip":  # its trailer states the bytes it holds: not decompressed a second time to count them
        with monkeypatch.context() as patched:
            patched.setattr(zlib, "decompressobj", lambda *_: pytest.fail("decompressed to be counted"))
            assert np.array_equal(read_image(tmp_path / "scan.mhd").array,
                                  values.transpose(2, 1, 0).astype(np.float32))
    gz.write_bytes(raw)  # not compressed: the library's "Uncompress failed", and voxels it left unset
    with pytest.raises(ImageReadError, match=r"scan\.mhd: corrupt image data \(Uncompress failed\)"):
        read_image(tmp_path / "scan.mhd")


@pytest.mark.parametrize("damage", ["cut", "short stream", "empty"])
def test_a_mhd_read_from_a_cut_short_raw_gz_is_refused_naming_it(sitk, tmp_path, damage):
    """A ``scan.raw.gz`` read for the ``scan.raw`` its ``.mhd`` names, cut short (or holding fewer bytes than the
    header declares): MetaImage's library read it without a word, the voxels beyond its end left unset (an empty
    ``.gz`` gave an image of whatever memory held). It is now refused as a ``.raw`` cut short is, naming the ``.gz``
    and the decompressed byte count."""
    import gzip

    values = _values("int16")
    sitk.WriteImage(_oblique(sitk, values), str(tmp_path / "scan.mhd"))
    raw = (tmp_path / "scan.raw").read_bytes()
    (tmp_path / "scan.raw").unlink()
    data = {"cut": gzip.compress(raw)[:200], "short stream": gzip.compress(raw[:len(raw) // 2]), "empty": b""}[damage]
    (tmp_path / "scan.raw.gz").write_bytes(data)
    size = {"cut": None, "short stream": len(raw) // 2, "empty": 0}[damage]
    with pytest.raises(ImageReadError) as error:
        read_image(tmp_path / "scan.mhd")
    text = str(error.value)
    assert text.startswith(f"{tmp_path / 'scan.mhd'}: its data file scan.raw.gz: truncated image data (")
    assert text.endswith(f" of the {len(raw)} bytes its header declares, decompressed); the file was cut short (an "
                         "interrupted copy or download?)")
    if size is not None:
        assert f"({size} of the {len(raw)} bytes" in text


def test_a_detached_header_given_with_its_data_file_is_refused_before_any_work(sitk, tmp_path, capsys):
    """`medseg infer dir/*` of a folder of .mhd + .raw: each .raw was segmented as an image of its own and failed
    ("not a NIfTI image"), exit 1 after the others; it is the image given twice, as a .hdr/.img pair given whole."""
    from medseg.batch_outputs import check_batch_outputs
    from medseg.errors import ConflictingInputsError

    for name in ("a.mhd", "b.nhdr"):
        sitk.WriteImage(_oblique(sitk, _values("int16")), str(tmp_path / name))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mhd", "a.raw", "b.nhdr", "b.raw"]
    code, _, err = run_cli(["infer", *(str(p) for p in sorted(tmp_path.iterdir())), "-m", "phantom", "-o",
                            str(tmp_path / "out")], capsys)
    assert code == 2
    assert (f"{tmp_path / 'a.mhd'} and {tmp_path / 'a.raw'} are the two files of one image (a.raw holds the voxels "
            "a.mhd describes); give the header alone") in err
    assert not (tmp_path / "out").exists()
    with pytest.raises(ConflictingInputsError) as error:  # in either order
        check_batch_outputs([tmp_path / "b.raw", tmp_path / "b.nhdr"], tmp_path / "out", False, "nifti", True)
    assert str(error.value) == (f"{tmp_path / 'b.nhdr'} and {tmp_path / 'b.raw'} are the two files of one image "
                                "(b.raw holds the voxels b.nhdr describes); give the header alone")
    check_batch_outputs([tmp_path / "a.mhd", tmp_path / "b.nhdr"], tmp_path / "out", False, "nifti", True)


def test_a_data_file_given_alone_names_its_header(sitk, tmp_path):
    """A .mhd's .raw given as the image (its header not given): it was "not a NIfTI image (Cannot work out file
    type …)"."""
    sitk.WriteImage(_oblique(sitk, _values("int16")), str(tmp_path / "scan.mhd"))
    (tmp_path / "other.raw").write_bytes(bytes(64))
    with pytest.raises(ImageReadError) as error:
        read_image(tmp_path / "scan.raw")
    assert str(error.value) == (f"{tmp_path / 'scan.raw'}: the data file of scan.mhd beside it (the voxels that "
                                "header describes), not an image of its own; give scan.mhd")
    with pytest.raises(ImageReadError, match=r"other\.raw: not a NIfTI image \("):  # no header names it
        read_image(tmp_path / "other.raw")


_NRRD_SLICES = ("NRRD0004\ntype: short\ndimension: 3\nsizes: 5 4 3\nspace: left-posterior-superior\n"
                "space directions: (1,0,0) (0,1,0) (0,0,2)\nspace origin: (0,0,0)\nencoding: raw\nendian: little\n")
_MHD_SLICES = ("ObjectType = Image\nNDims = 3\nDimSize = 5 4 3\nElementSpacing = 1 1 2\nTransformMatrix = 1 0 0 0 1 0 "
               "0 0 1\nElementType = MET_SHORT\nElementByteOrderMSB = False\n")


def _slice_files(folder, names) -> np.ndarray:
    """Three int16 slices of 4×5 voxels (numpy's order: k, j, i), one file each."""
    values = np.arange(60, dtype=np.int16).reshape(3, 4, 5) * 7 - 100
    for k, name in enumerate(names):
        (folder / name).write_bytes(values[k].astype("<i2").tobytes())
    return values


@pytest.mark.parametrize("header, text, names", [
    ("list.nhdr", _NRRD_SLICES + "data file: LIST 2\ns0.raw\ns1.raw\ns2.raw\n", ["s0.raw", "s1.raw", "s2.raw"]),
    ("pattern.nhdr", _NRRD_SLICES + "data file: p%02d.raw 1 3 1 2\n", ["p01.raw", "p02.raw", "p03.raw"]),
    ("down.nhdr", _NRRD_SLICES + "data file: p%02d.raw 3 1 -1 2\n", ["p03.raw", "p02.raw", "p01.raw"]),
    ("list.mhd", _MHD_SLICES + "ElementDataFile = LIST 2D\ns0.raw\ns1.raw\ns2.raw\n", ["s0.raw", "s1.raw", "s2.raw"]),
    ("pattern.mhd", _MHD_SLICES + "ElementDataFile = p%02d.raw 1 3 1\n", ["p01.raw", "p02.raw", "p03.raw"]),
])
def test_a_header_naming_a_list_or_pattern_of_data_files_is_read_and_tracked_by_all_of_them(sitk, tmp_path, header,
                                                                                              text, names):
    """A ``data file: LIST`` / pattern NRRD and an ``ElementDataFile = LIST`` / pattern MetaImage were refused as
    "truncated image data (0 of the 120 bytes its header declares)" (the header's own bytes taken as the voxels),
    and their slices were not part of the hash nor of the signature: a slice rewritten left the outputs current.
    Every data file is read, hashed, signed and checked now."""
    import os

    from medseg.io.itk_image import itk_files_read
    from medseg.io.pairs import file_signature, image_files

    values = _slice_files(tmp_path, names)
    path = tmp_path / header
    path.write_text(text)
    volume = read_image(path)
    assert np.array_equal(volume.array, values.transpose(2, 1, 0).astype(np.float32))
    assert itk_files_read(path) == [path] + [tmp_path / name for name in names]
    assert image_files(path) == itk_files_read(path)
    assert volume.source_sha256 == sha256_of(itk_files_read(path))
    signature = file_signature(path)
    assert len(signature) == 4
    # the middle slice rewritten (same size, another time): the image's hash and signature change
    middle = tmp_path / names[1]
    middle.write_bytes(np.full(20, 5, "<i2").tobytes())
    os.utime(middle, ns=(10**18, 10**18))
    assert file_signature(path) != signature and read_image(path).source_sha256 != volume.source_sha256
    # a slice cut short, or missing, is named
    middle.write_bytes(b"\0" * 30)
    with pytest.raises(ImageReadError, match=re.escape(f"{path}: its data file {names[1]}: truncated image data "
                                                       "(30 of the 40 bytes its header declares)")):
        read_image(path)
    middle.unlink()
    with pytest.raises(ImageReadError, match=re.escape(f"{path}: its data file {names[1]}, which holds the voxels "
                                                       "this header describes, is missing")):
        read_image(path)


@pytest.mark.parametrize("field", ["data file: scan.raw", "datafile: LIST 3\nscan.raw"])
def test_a_detached_header_named_nrrd_without_an_empty_line_is_tracked_by_its_data_file(sitk, tmp_path, field):
    """teem reads a ``.nrrd`` naming a ``data file`` as a detached header, which ends with its file (no empty line).
    Only a ``.nhdr`` was taken as one: such a ``.nrrd``'s header was not parsed, its data file neither hashed nor
    signed (a rewritten ``.raw`` left the outputs current) and its absence was teem's words, not medseg's."""
    import os

    from medseg.io.itk_image import itk_files_read
    from medseg.io.pairs import file_signature, image_files

    values = np.arange(60, dtype=np.int16).reshape(3, 4, 5) * 7 - 100
    raw = tmp_path / "scan.raw"
    raw.write_bytes(values.astype("<i2").tobytes())
    path = tmp_path / "scan.nrrd"
    path.write_text(_NRRD_SLICES + field + "\n")
    volume = read_image(path)
    assert np.array_equal(volume.array, values.transpose(2, 1, 0).astype(np.float32))
    assert itk_files_read(path) == image_files(path) == [path, raw]
    assert volume.source_sha256 == sha256_of([path, raw])
    signature = file_signature(path)
    raw.write_bytes(np.full(60, 5, "<i2").tobytes())
    os.utime(raw, ns=(10**18, 10**18))
    assert file_signature(path) != signature
    raw.unlink()
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    assert str(info.value) == (f"{path}: its data file scan.raw, which holds the voxels this header describes, is "
                               "missing")


def test_a_header_given_with_a_slice_of_its_list_of_data_files_is_refused_in_fitting_words(sitk, tmp_path):
    """``medseg infer dir/*`` of a ``data file: LIST`` header and its slices said the header and the first slice
    "are the two files of one image (s0.raw holds the voxels list.nhdr describes)": it holds a third of them."""
    from medseg.batch_outputs import check_batch_outputs
    from medseg.errors import ConflictingInputsError

    _slice_files(tmp_path, ["s0.raw", "s1.raw", "s2.raw"])
    (tmp_path / "list.nhdr").write_text(_NRRD_SLICES + "data file: LIST\ns0.raw\ns1.raw\ns2.raw\n")
    with pytest.raises(ConflictingInputsError) as error:
        check_batch_outputs(sorted(tmp_path.iterdir()), tmp_path / "out", False, "nifti", True)
    assert str(error.value) == (f"{tmp_path / 'list.nhdr'} and {tmp_path / 's0.raw'} are files of one image (s0.raw "
                                "holds part of the voxels list.nhdr describes, one of its 3 data files); give the "
                                "header alone")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("pattern, numbers", [
    ("p%d.raw", [1, 2, 3]),  # MetaImage's library numbers the files 1 to the slices' count
    ("p%d.raw 2", [2, 3, 4]),  # from the first number given
    ("p%d.raw 1 7", [1, 3, 5]),  # by (last - first) / slices
    ("p%d.raw 1 9 1", [1, 2, 3]),  # no more files than slices are read
])
def test_a_metaimage_pattern_is_read_as_metaimages_library_numbers_its_files(sitk, tmp_path, pattern, numbers):
    """A MetaImage pattern of fewer than four words was refused as "its data file p%d.raw, which holds the voxels this
    header describes, is missing"; SimpleITK reads it, with MetaImage's defaults."""
    from medseg.io.itk_image import itk_files_read

    names = [f"p{n}.raw" for n in numbers]
    values = _slice_files(tmp_path, names)
    path = tmp_path / "scan.mhd"
    path.write_text(_MHD_SLICES + f"ElementDataFile = {pattern}\n")
    assert np.array_equal(read_image(path).array, values.transpose(2, 1, 0).astype(np.float32))
    assert itk_files_read(path) == [path] + [tmp_path / name for name in names]


@pytest.mark.parametrize("field, names, reason", [
    ("p%d.raw 1 3", ["p1.raw", "p2.raw", "p3.raw"], "its data file pattern 'p%d.raw 1 3' gives no step, and "
     "MetaImage's library takes (last - first) / slices, 0, for it (by 0 it ends the process); give the step: "
     "'p%d.raw 1 3 1'"),
    ("p%d.raw 1 3 0", ["p1.raw", "p2.raw", "p3.raw"], "its data file pattern 'p%d.raw 1 3 0' steps by 0; "
     "MetaImage's library reads files numbered upward only (by 0 it ends the process)"),
    ("p%d.raw 3 1 -1", ["p1.raw", "p2.raw", "p3.raw"], "its data file pattern 'p%d.raw 3 1 -1' steps by -1; "
     "MetaImage's library reads files numbered upward only (by 0 it ends the process)"),
    ("p%d.raw 1 2 1", ["p1.raw", "p2.raw", "p3.raw"], "its data file pattern 'p%d.raw 1 2 1' names 2 files for the 3 "
     "slices its DimSize declares (one a slice); MetaImage's library would leave the voxels of the others unset"),
    ("LIST\ns0.raw\ns1.raw", ["s0.raw", "s1.raw", "s2.raw"], "its data file list names 2 files for the 3 2D pieces "
     "its DimSize declares (one a file); MetaImage's library would leave the voxels of the others unset"),
])
def test_a_metaimage_pattern_its_library_cannot_read_is_refused_before_simpleitk(sitk, tmp_path, monkeypatch, field,
                                                                                 names, reason):
    """A step of 0 (given, or MetaImage's own (last - first) / slices) ended the process with a floating point
    exception inside SimpleITK, a whole batch with it; fewer files than slices were read as an image whose other
    voxels were whatever the memory held. Each is refused in one line, before SimpleITK reads the header."""

    def refused(*args):
        raise AssertionError("SimpleITK was asked to read it")

    _slice_files(tmp_path, names)
    path = tmp_path / "scan.mhd"
    path.write_text(_MHD_SLICES + f"ElementDataFile = {field}\n")
    monkeypatch.setattr(sitk.ImageFileReader, "ReadImageInformation", refused)
    monkeypatch.setattr(sitk.ImageFileReader, "Execute", refused)
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    assert str(info.value) == f"{path}: {reason}"


def test_an_nrrd_pattern_without_its_three_numbers_is_refused_in_teems_words(sitk, tmp_path):
    """teem reads a pattern with its first, last and step alone; without them it was "its data file p%d.raw, which
    holds the voxels this header describes, is missing", of files that were there."""
    _slice_files(tmp_path, ["p1.raw", "p2.raw", "p3.raw"])
    path = tmp_path / "scan.nhdr"
    path.write_text(_NRRD_SLICES + "data file: p%d.raw\n")
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    assert str(info.value) == (f"{path}: not a readable NRRD file (couldn't parse three ints (min, max, step) after "
                               "data filename template)")


def test_the_overlay_reads_a_metaimage_pattern_of_files_whole(sitk, tmp_path):
    """Asked for a part of a MetaImage pattern of a step of 2 (``p%d.raw 1 5 2``: p1, p3, p5), MetaImage's library
    read its third slice from p3, the second slice's file: the overlay drew another slice than the one shown whole.
    Such an image is read whole now."""
    from medseg.io.itk_image import read_itk_region
    from medseg.report.overlay import ItkImageFile

    values = _slice_files(tmp_path, ["p1.raw", "p3.raw", "p5.raw"])
    path = tmp_path / "scan.mhd"
    path.write_text(_MHD_SLICES + "ElementDataFile = p%d.raw 1 5 2\n")
    whole = read_image(path).array
    assert np.array_equal(whole, values.transpose(2, 1, 0).astype(np.float32))
    region = (slice(0, 5), slice(0, 4), slice(2, 3))
    assert read_itk_region(path, region) is None
    assert np.array_equal(ItkImageFile(path, whole.shape).read(region), whole[region])
