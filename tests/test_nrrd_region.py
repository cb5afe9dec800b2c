"""Regions of NRRD and MetaImage inputs (medseg.io.nrrd_region, read through medseg.io.itk_image.read_itk_region):
a box read from the file's bytes gives what reading it whole gives, and what is not read so falls back to
SimpleITK."""

from __future__ import annotations

import math

import numpy as np
import pytest
from itk_factory import (
    _oblique,
    simpleitk,  # noqa: F401  (the sitk fixture its tests take)
)

from medseg.errors import ImageReadError
from medseg.io.images import read_image


@pytest.mark.parametrize("ending, compressed", [(".nrrd", False), (".nrrd", True), (".nhdr", False), (".mha", False),
                                                (".mha", True), (".mhd", False)])
def test_the_overlay_reads_the_region_of_an_itk_input_and_draws_what_reading_it_whole_drew(sitk, tmp_path,
                                                                                          monkeypatch, ending,
                                                                                          compressed):
    """The report read an NRRD / MetaImage input whole (as float32, and hashed it) to draw three slices of the crop
    around the labels, where a NIfTI's crop alone is read. SimpleITK is now asked for the region drawn alone
    (MetaImage's library reads only its bytes), and the picture is the same, byte for byte."""
    import medseg.io.images as images
    from medseg.report.overlay import CaseArrays, ItkImageFile, render_overlay
    from medseg.report.overlay_image import _image_file

    rng = np.random.default_rng(3)
    stored = rng.integers(-1000, 2000, (30, 40, 36)).astype(np.int16)  # numpy's order: k, j, i
    image = _oblique(sitk, stored)
    path = tmp_path / f"ct{ending}"
    sitk.WriteImage(image, str(path), compressed)
    volume = read_image(path)
    labels = np.zeros(volume.shape, np.uint8)
    labels[14:22, 16:25, 12:19] = 1
    labels[18:21, 20:23, 14:16] = 2
    legend = [("1", "ball"), ("2", "box")]
    whole = CaseArrays(labels, volume.affine, volume.array)
    expected = [render_overlay(whole, legend, focus) for focus in ("1", "2", None)]

    def refused(*args, **kwargs):
        raise AssertionError("the whole image was read")

    sizes = []
    execute = sitk.ImageFileReader.Execute

    def recording(self):
        sizes.append(tuple(self.GetExtractSize()))
        return execute(self)

    monkeypatch.setattr(images, "read_image", refused)
    monkeypatch.setattr(sitk.ImageFileReader, "Execute", recording)
    lazy = _image_file(path, labels.shape)
    assert isinstance(lazy, ItkImageFile) and lazy.shape == (36, 40, 30)
    part = CaseArrays(labels, volume.affine, lazy)
    drawn = [render_overlay(part, legend, focus) for focus in ("1", "2", None)]
    assert drawn == expected and part.notes == []
    # MetaImage: SimpleITK asked for a region of the grid each time, never the whole of it (an extract size of 0s:
    # the whole image); NRRD, which teem reads whole for any part: its bytes read by medseg, SimpleITK never asked
    if ending in (".nrrd", ".nhdr"):
        assert sizes == []
    else:
        assert len(sizes) == 3 and all(0 < math.prod(size) < labels.size for size in sizes)


def test_an_itk_region_of_nan_voxels_is_read_whole_for_its_error(sitk, tmp_path):
    """A region holding NaN voxels is not drawn from: the whole reading refuses the file, and the overlay says so."""
    from medseg.io.itk_image import read_itk_region
    from medseg.report.overlay import CaseArrays, render_overlay
    from medseg.report.overlay_image import _image_file

    values = np.full((10, 12, 14), 5.0, np.float32)
    values[5, 6, 7] = np.nan
    path = tmp_path / "ct.mha"
    sitk.WriteImage(sitk.GetImageFromArray(values), str(path))
    assert read_itk_region(path, (slice(0, 4), slice(0, 4), slice(0, 4))).tolist() == \
        np.full((4, 4, 4), 5.0, np.float32).tolist()
    assert read_itk_region(path, (slice(6, 9), slice(5, 8), slice(4, 7))) is None
    labels = np.zeros((14, 12, 10), np.uint8)
    labels[6:9, 5:8, 4:7] = 1
    arrays = CaseArrays(labels, np.eye(4), _image_file(path, labels.shape))
    render_overlay(arrays, [("1", "a")], "1")
    assert arrays.image is None
    assert len(arrays.notes) == 1 and arrays.notes[0].startswith(f"image not shown: {path}: the image contains NaN")


def _hand_nrrd(path, stored: np.ndarray, type_name: str, encoding: str = "raw", endian: str = "little",
               detached: bool = False, line_skip: int = 0, byte_skip: int = 0, space: str = "left-posterior-superior"):
    """``stored`` (numpy's order: k, j, i) written as an NRRD by hand, its header giving ``type_name``, ``endian``,
    ``encoding`` (raw or gzip), line and byte skips (``byte_skip`` -1: junk before the data, which ends the file),
    attached or in a data file beside it; on an oblique grid."""
    import gzip

    data = stored.astype(stored.dtype.newbyteorder("<" if endian == "little" else ">")).tobytes()
    skipped = b"skipped line\r\n" * line_skip + (b"junk" if byte_skip == -1 else b"\x00" * byte_skip)
    body = skipped + data
    if encoding == "gzip":  # the byte skip is of the decompressed stream (as teem takes it), the lines of the file's
        body = b"skipped line\r\n" * line_skip + gzip.compress(b"\x00" * byte_skip + data, 6)
    k, j, i = stored.shape
    header = (f"NRRD0004\ntype: {type_name}\ndimension: 3\nsizes: {i} {j} {k}\nspace: {space}\n"
              "space directions: (0.7,0.1,0) (-0.2,1.3,0.05) (0,0.3,2.5)\nspace origin: (12.5,-40.25,7)\n"
              f"encoding: {encoding}\nendian: {endian}\n")
    header += f"line skip: {line_skip}\n" if line_skip else ""
    header += f"byte skip: {byte_skip}\n" if byte_skip else ""
    if detached:
        (path.parent / f"{path.stem}.data").write_bytes(body)
        path.write_text(header + f"data file: {path.stem}.data\n")
    else:
        path.write_bytes(header.encode() + b"\n" + body)
    return path


@pytest.mark.parametrize("type_name, dtype", [("short", "int16"), ("uchar", "uint8"), ("float", "float32"),
                                              ("double", "float64"), ("int", "int32"), ("unsigned short", "uint16"),
                                              ("int64", "int64")])
@pytest.mark.parametrize("encoding", ["raw", "gzip"])
def test_an_nrrd_region_is_read_from_its_bytes_as_a_whole_read_gives_it(sitk, tmp_path, monkeypatch, type_name,
                                                                        dtype, encoding):
    """SimpleITK (teem) reads an NRRD whole, in its stored type, for any part of it: the report held a whole
    512×512×300 int16 volume to draw three slices of a crop. Raw and gzip data, attached or in a data file, is now
    read from the file's bytes, the box alone kept: bit for bit what reading the file whole gives, over types, byte
    orders, line and byte skips and boxes at the grid's corners, SimpleITK never asked for the voxels."""
    from medseg.io.itk_image import read_itk_region

    rng = np.random.default_rng(11)
    if dtype.startswith("float"):
        stored = rng.normal(0, 1e3, (7, 9, 11)).astype(dtype)  # float64: digits beyond float32's, rounded alike
    else:
        info = np.iinfo(dtype)
        stored = rng.integers(max(info.min, -2**40), min(info.max, 2**40), (7, 9, 11), dtype=dtype)
    boxes = [(slice(0, 11), slice(0, 9), slice(0, 7)), (slice(3, 8), slice(2, 9), slice(1, 4)),
             (slice(10, 11), slice(0, 1), slice(6, 7)), (slice(0, 2), slice(4, 5), slice(0, 7))]
    layouts = [dict(), dict(detached=True), dict(endian="big", line_skip=2, byte_skip=5),
               dict(detached=True, line_skip=1, byte_skip=3)]
    if encoding == "raw":
        layouts.append(dict(byte_skip=-1, line_skip=1))
    expected = {}
    for number, layout in enumerate(layouts):
        path = _hand_nrrd(tmp_path / f"scan{number}.{'nhdr' if layout.get('detached') else 'nrrd'}", stored,
                          type_name, encoding, **layout)
        whole = read_image(path).array
        assert whole.shape == (11, 9, 7)
        expected[path] = whole
    asked = []
    monkeypatch.setattr(sitk.ImageFileReader, "Execute", lambda self: asked.append(self) or None)
    for path, whole in expected.items():
        for box in boxes:
            part = read_itk_region(path, box)
            assert part is not None and part.dtype == np.float32
            assert part.shape == whole[box].shape and np.array_equal(part, whole[box]), (path.name, box)
    assert asked == []


@pytest.mark.parametrize("case", ["gzip cut short after the box", "gzip corrupt trailer", "ascii", "bzip2 named",
                                  "raw file short"])
def test_an_nrrd_region_not_read_from_its_bytes_falls_back_to_simpleitk(sitk, tmp_path, monkeypatch, case):
    """Where the bytes are not read here (another encoding) or do not hold what the header declares (a gzip stream cut
    short or corrupt beyond the box, which a whole read refuses), the region is not drawn from them: SimpleITK is
    asked (and says what is wrong), and the overlay reads the file whole, for its values or its error."""
    import gzip

    from medseg.io.itk_image import read_itk_region

    stored = np.arange(7 * 9 * 11, dtype=np.int16).reshape(7, 9, 11)
    path = tmp_path / "scan.nrrd"
    box = (slice(1, 3), slice(1, 3), slice(0, 2))
    if case.startswith("gzip"):
        _hand_nrrd(path, stored, "short", "gzip")
        header, _, body = path.read_bytes().partition(b"\n\n")
        if case == "gzip cut short after the box":
            body = gzip.compress(stored.tobytes()[:-300])
        else:
            body = body[:-8] + bytes(b ^ 0xFF for b in body[-8:-4]) + body[-4:]
        path.write_bytes(header + b"\n\n" + body)
        with pytest.raises(ImageReadError):
            read_image(path)
    elif case == "ascii":
        header = _hand_nrrd(path, stored, "short").read_bytes().partition(b"\n\n")[0].replace(b"raw", b"ascii")
        path.write_bytes(header + b"\n\n" + " ".join(str(v) for v in stored.ravel()).encode())
    elif case == "bzip2 named":
        _hand_nrrd(path, stored, "short", "gzip")
        path.write_bytes(path.read_bytes().replace(b"encoding: gzip", b"encoding: bz2"))
    else:
        _hand_nrrd(path, stored, "short", byte_skip=4)  # no size check before SimpleITK: its read tells
        path.write_bytes(path.read_bytes()[:-10])
    asked = []
    execute = sitk.ImageFileReader.Execute

    def recording(self):
        asked.append(tuple(self.GetExtractSize()))
        return execute(self)

    monkeypatch.setattr(sitk.ImageFileReader, "Execute", recording)
    try:
        part = read_itk_region(path, box)
    except ImageReadError:
        part = "refused"
    assert asked == [(2, 2, 2)] or part == "refused"
    if case == "ascii":
        assert np.array_equal(part, stored.transpose(2, 1, 0)[box].astype(np.float32))
    elif case != "bzip2 named":
        assert part is None or part == "refused"


@pytest.mark.parametrize("size", ["7.0", "7x"])
def test_an_nrrd_whose_sizes_teem_reads_past_a_non_digit_has_its_region_read_through_simpleitk(sitk, tmp_path, size):
    """teem reads a size written "7.0" or "7x" as 7, and SimpleITK reads the file; the region read from its bytes
    parsed the sizes as Python integers and ended the report in "ValueError: invalid literal for int()". Such a
    header's region is now read through SimpleITK, as the whole file is: the same values."""
    from medseg.io.itk_image import read_itk_region
    from medseg.report.overlay import ItkImageFile

    stored = np.arange(7 * 9 * 11, dtype=np.int16).reshape(7, 9, 11)
    path = _hand_nrrd(tmp_path / "scan.nrrd", stored, "short")
    path.write_bytes(path.read_bytes().replace(b"sizes: 11 9 7\n", f"sizes: 11 9 {size}\n".encode(), 1))
    whole = read_image(path).array
    assert whole.shape == (11, 9, 7)
    box = (slice(2, 6), slice(0, 9), slice(5, 7))
    part = read_itk_region(path, box)
    assert part is not None and np.array_equal(part, whole[box])
    assert np.array_equal(ItkImageFile(path, whole.shape).read(box), stored.transpose(2, 1, 0)[box])
