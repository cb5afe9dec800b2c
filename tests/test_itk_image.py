"""NRRD and MetaImage inputs read through SimpleITK (medseg.io.itk_image): the same voxels and affine as the NIfTI
SimpleITK writes of the same image, and one-line refusals."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest
from itk_factory import (
    ITK_FORMATS,
    _oblique,
    _values,
    simpleitk,  # noqa: F401  (the sitk fixture its tests take)
)

from medseg.errors import ImageReadError, InputError
from medseg.io.images import read_grid, read_image


@pytest.mark.parametrize("dtype", ["int16", "uint8", "float32"])
@pytest.mark.parametrize("ending", ITK_FORMATS)
def test_itk_file_reads_as_the_nifti_simpleitk_writes(sitk, tmp_path, ending, dtype):
    image = _oblique(sitk, _values(dtype))
    sitk.WriteImage(image, str(tmp_path / f"scan{ending}"))
    sitk.WriteImage(image, str(tmp_path / "scan.nii.gz"))
    volume, nifti = read_image(tmp_path / f"scan{ending}"), read_image(tmp_path / "scan.nii.gz")
    assert volume.shape == nifti.shape == (11, 9, 6)
    assert volume.array.dtype == np.float32
    assert np.array_equal(volume.array, nifti.array)
    assert np.abs(volume.affine - nifti.affine).max() < 1e-6
    shape, affine = read_grid(tmp_path / f"scan{ending}")
    assert shape == (11, 9, 6) and np.array_equal(affine, volume.affine)
    # the affine is ITK's placement in LPS with x and y negated: checked against ITK itself, voxel by voxel
    for index in [(0, 0, 0), (10, 0, 0), (0, 8, 5), (3, 4, 2)]:
        lps = np.asarray(image.TransformIndexToPhysicalPoint(index))
        assert np.abs((volume.affine @ (*index, 1))[:3] - lps * (-1, -1, 1)).max() < 1e-9
    assert volume.array[3, 4, 2] == np.float32(sitk.GetArrayViewFromImage(image)[2, 4, 3])


def test_read_grid_reads_the_header_alone(sitk, tmp_path):
    """The header of a .mhd: its grid is read without a voxel (the memory guard needs none). A data file that holds
    half the voxels is named as cut short by the header's reading already, in the words reading the image uses (as
    a NIfTI file is: a corrupt header declaring terabytes beside a few kB was otherwise blamed on the memory)."""
    sitk.WriteImage(_oblique(sitk, _values("int16")), str(tmp_path / "scan.mhd"))
    shape, affine = read_grid(tmp_path / "scan.mhd")
    assert shape == (11, 9, 6) and affine[2, 3] == pytest.approx(7.0)
    raw = tmp_path / "scan.raw"
    raw.write_bytes(raw.read_bytes()[:300])
    for read in (read_grid, read_image):
        with pytest.raises(ImageReadError) as error:
            read(tmp_path / "scan.mhd")
        assert str(error.value) == (f"{tmp_path / 'scan.mhd'}: its data file scan.raw: truncated image data (300 of "
                                    "the 1188 bytes its header declares); the file was cut short (an interrupted copy "
                                    "or download?)")


def test_attached_file_cut_short_is_one_line(sitk, tmp_path):
    sitk.WriteImage(_oblique(sitk, _values("int16")), str(tmp_path / "scan.mha"))
    path = tmp_path / "scan.mha"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ImageReadError, match=r"scan\.mha: truncated image data \(1088 of the 1188 bytes its header "
                                             r"declares\); the file was cut short"):
        read_image(path)


def test_missing_data_file_is_named(sitk, tmp_path):
    sitk.WriteImage(_oblique(sitk, _values("int16")), str(tmp_path / "scan.nhdr"))
    data = [p for p in tmp_path.iterdir() if p.name != "scan.nhdr"]
    assert len(data) == 1
    data[0].unlink()
    for reader in (read_grid, read_image):
        with pytest.raises(ImageReadError) as error:
            reader(tmp_path / "scan.nhdr")
        assert str(error.value) == (f"{tmp_path / 'scan.nhdr'}: its data file {data[0].name}, which holds the voxels "
                                    "this header describes, is missing")


def test_multi_component_voxels_are_refused(sitk, tmp_path):
    sitk.WriteImage(sitk.Image([5, 6, 7], sitk.sitkVectorUInt8, 3), str(tmp_path / "rgb.nrrd"))
    for reader in (read_grid, read_image):
        with pytest.raises(InputError) as error:
            reader(tmp_path / "rgb.nrrd")
        assert str(error.value) == (f"{tmp_path / 'rgb.nrrd'}: RGB or other multi-value voxels (3 values per voxel, "
                                    "vector of 8-bit unsigned integer); medseg reads grey-level images (one number per "
                                    "voxel)")


def test_4d_file_of_several_volumes_is_refused_and_one_volume_read(sitk, tmp_path):
    four_d = sitk.GetImageFromArray(np.zeros((2, 5, 6, 7), np.float32), isVector=False)
    sitk.WriteImage(four_d, str(tmp_path / "series.mha"))
    assert read_grid(tmp_path / "series.mha")[0] == (7, 6, 5, 2)  # returned for the caller to compare
    with pytest.raises(InputError) as error:
        read_image(tmp_path / "series.mha")
    assert str(error.value).startswith(f"{tmp_path / 'series.mha'}: expected a 3D volume, got shape (7, 6, 5, 2): 2 "
                                       "volumes")
    one = sitk.GetImageFromArray(np.ones((1, 5, 6, 7), np.float32), isVector=False)
    sitk.WriteImage(one, str(tmp_path / "one.mha"))
    volume = read_image(tmp_path / "one.mha")
    assert volume.shape == (7, 6, 5) and volume.info["stored_shape"] == [7, 6, 5, 1]


def test_non_finite_voxels_are_refused(sitk, tmp_path):
    values = np.zeros((5, 6, 7), np.float32)
    values[1, 2, 3] = np.nan
    sitk.WriteImage(sitk.GetImageFromArray(values), str(tmp_path / "nan.nrrd"))
    with pytest.raises(InputError) as error:
        read_image(tmp_path / "nan.nrrd")
    assert str(error.value) == (f"{tmp_path / 'nan.nrrd'}: the image contains NaN or infinite voxels (1 NaN; the first "
                                "at voxel index (3, 2, 1))")


def test_not_an_nrrd_by_its_content(sitk, tmp_path):
    (tmp_path / "notes.nrrd").write_text("hello\n")
    (tmp_path / "empty.mha").write_bytes(b"")
    with pytest.raises(ImageReadError, match=r"notes\.nrrd: not a readable NRRD file \(SimpleITK finds no reader "
                                             r"for its content\)$"):
        read_image(tmp_path / "notes.nrrd")
    with pytest.raises(ImageReadError, match=r"empty\.mha: an empty file \(0 bytes\)$"):
        read_grid(tmp_path / "empty.mha")


def test_without_simpleitk_one_line_names_the_extra(tmp_path, monkeypatch):
    (tmp_path / "scan.nrrd").write_bytes(b"NRRD0004\ntype: short\ndimension: 3\nsizes: 2 2 2\nencoding: raw\n\n"
                                         + bytes(16))
    monkeypatch.setitem(sys.modules, "SimpleITK", None)  # import SimpleITK raises ImportError
    for reader in (read_grid, read_image):
        with pytest.raises(ImageReadError) as error:
            reader(tmp_path / "scan.nrrd")
        assert str(error.value) == (f"{tmp_path / 'scan.nrrd'}: reading NRRD files needs SimpleITK, which is not "
                                    "installed: pip install 'medseg[itk]' (or pip install SimpleITK)")


def test_compressed_files_cut_short_are_one_line(sitk, tmp_path, capfd):
    """A compressed .mha cut short was "File cannot be read …; Reason: No such file or directory", after two lines
    MetaImage's library printed itself; a gzip NRRD's message held teem's chain of "trouble" lines."""
    image = _oblique(sitk, _values("int16"))
    for name in ("scan.mha", "scan.nrrd"):
        sitk.WriteImage(image, str(tmp_path / name), True)
        data = (tmp_path / name).read_bytes()
        (tmp_path / name).write_bytes(data[:len(data) * 2 // 3])
    capfd.readouterr()
    with pytest.raises(ImageReadError) as error:
        read_image(tmp_path / "scan.mha")
    assert re.fullmatch(rf"{re.escape(str(tmp_path / 'scan.mha'))}: truncated compressed image data \(\d+ of the \d+ "
                        r"bytes its header declares\); the file was cut short \(an interrupted copy or download\?\)",
                        str(error.value))
    assert capfd.readouterr() == ("", "")  # nothing printed by the library
    with pytest.raises(ImageReadError) as error:
        read_image(tmp_path / "scan.nrrd")
    assert re.fullmatch(rf"{re.escape(str(tmp_path / 'scan.nrrd'))}: truncated or corrupt image data \(expected 1188 "
                        r"bytes but received \d+\)", str(error.value))


def test_an_nrrd_in_ras_space_is_placed_by_its_own_header(sitk, tmp_path):
    """A hand-written NRRD in RAS space (not LPS, as SimpleITK and Slicer write it): its space directions are the
    affine's columns and its origin the translation, exactly; the voxels run i fastest, as stored."""
    header = ("NRRD0004\ntype: short\ndimension: 3\nspace: right-anterior-superior\nsizes: 4 5 6\n"
              "space directions: (0,1.5,0) (-0.5,0,0) (0,0,2)\nkinds: domain domain domain\nendian: little\n"
              "encoding: raw\nspace origin: (10,20,30)\n\n")
    (tmp_path / "ras.nrrd").write_bytes(header.encode() + np.arange(120, dtype="<i2").tobytes())
    volume = read_image(tmp_path / "ras.nrrd")
    assert np.array_equal(volume.affine, [[0, -0.5, 0, 10], [1.5, 0, 0, 20], [0, 0, 2, 30], [0, 0, 0, 1]])
    assert volume.shape == (4, 5, 6)
    assert (volume.array[1, 0, 0], volume.array[0, 1, 0], volume.array[0, 0, 1]) == (1, 4, 20)


def test_an_nrrd_without_orientation_is_placed_as_itk_places_it_with_a_note(sitk, tmp_path, caplog):
    header = "NRRD0004\ntype: uchar\ndimension: 3\nsizes: 2 3 4\nspacings: 0.5 2 3\nencoding: raw\n\n"
    (tmp_path / "bare.nrrd").write_bytes(header.encode() + bytes(24))
    with caplog.at_level("WARNING"):
        volume = read_image(tmp_path / "bare.nrrd")
    assert np.array_equal(volume.affine, np.diag([-0.5, -2.0, 3.0, 1.0]))
    note = ("no orientation in the header (no space directions): placed as SimpleITK places it (the axes along L, P, "
            "S: x = -i*spacing, y = -j*spacing, z = k*spacing); left and right may be swapped")
    assert volume.info["orientation_note"] == note
    assert [r.getMessage() for r in caplog.records] == [f"{tmp_path / 'bare.nrrd'}: {note}"]
    sitk.WriteImage(_oblique(sitk, _values("uint8")), str(tmp_path / "placed.nrrd"))
    assert "orientation_note" not in read_image(tmp_path / "placed.nrrd").info
    sitk.WriteImage(_oblique(sitk, _values("uint8")), str(tmp_path / "placed.mha"))
    assert "orientation_note" not in read_image(tmp_path / "placed.mha").info


def test_a_data_file_this_user_may_not_read_is_named(sitk, tmp_path):
    from tests.conftest import as_plain_user

    sitk.WriteImage(_oblique(sitk, _values("int16")), str(tmp_path / "scan.mhd"))
    (tmp_path / "scan.raw").chmod(0)
    script = ("import sys\nfrom medseg.io.images import read_grid\n"
              "try:\n    read_grid(sys.argv[1])\nexcept OSError as error:\n    print(error)")
    run = as_plain_user([sys.executable, "-c", script, str(tmp_path / "scan.mhd")], timeout=60)
    assert run.stdout.strip() == f"{tmp_path / 'scan.mhd'}: cannot read its data file scan.raw (permission denied)"


@pytest.mark.parametrize("space", ["scanner-xyz", "3D-left-handed", "3D-right-handed", None])
def test_an_nrrd_in_a_space_of_no_anatomy_is_noted(sitk, tmp_path, caplog, space):
    """An NRRD whose space is not anatomical (scanner-xyz, 3D-right/left-handed, a space dimension alone): SimpleITK
    takes its x, y, z as L, P, S, as for LPS, which was read without a word (a left-handed space mirrored)."""
    line = f"space: {space}" if space else "space dimension: 3"
    header = (f"NRRD0004\ntype: short\ndimension: 3\n{line}\nsizes: 4 5 6\nspace directions: (1.5,0,0) (0,0.5,0) "
              "(0,0,2)\nkinds: domain domain domain\nendian: little\nencoding: raw\nspace origin: (10,20,30)\n\n")
    (tmp_path / "xyz.nrrd").write_bytes(header.encode() + np.arange(120, dtype="<i2").tobytes())
    with caplog.at_level("WARNING"):
        volume = read_image(tmp_path / "xyz.nrrd")
    assert np.array_equal(volume.affine, [[-1.5, 0, 0, -10], [0, -0.5, 0, -20], [0, 0, 2, 30], [0, 0, 0, 1]])
    what = f"space {space}" if space else "no space, a space dimension alone"
    note = (f"no anatomical orientation in the header ({what}): its x, y, z are taken as L, P, S, as SimpleITK "
            "places them; left and right may be swapped")
    assert volume.info["orientation_note"] == note
    assert [r.getMessage() for r in caplog.records] == [f"{tmp_path / 'xyz.nrrd'}: {note}"]
    for anatomical in ("left-posterior-superior", "RAS", "left-anterior-superior"):
        (tmp_path / "lps.nrrd").write_bytes(header.replace(line, f"space: {anatomical}").encode() + bytes(240))
        assert "orientation_note" not in read_image(tmp_path / "lps.nrrd").info
    flat = sitk.GetImageFromArray(np.zeros((9, 11), np.int16))  # ITK writes a 2D NRRD with space dimension 2
    sitk.WriteImage(flat, str(tmp_path / "flat.nrrd"))
    assert "orientation_note" not in read_image(tmp_path / "flat.nrrd").info


def test_metaimage_data_that_does_not_decompress_is_refused_and_nothing_printed(sitk, tmp_path, capfd):
    """A compressed .mha whose data is damaged (its size as declared): SimpleITK gave an image of whatever memory
    held, after MetaImage's library printed "Uncompress failed", and medseg segmented it. A header MetaImage cannot
    parse was four printed lines, then a reason about the voxel data."""
    sitk.WriteImage(_oblique(sitk, _values("int16")), str(tmp_path / "scan.mha"), True)
    data = (tmp_path / "scan.mha").read_bytes()
    start = data.index(b"ElementDataFile = LOCAL\n") + len(b"ElementDataFile = LOCAL\n")
    (tmp_path / "scan.mha").write_bytes(data[:start] + bytes(len(data) - start))
    header = b"ObjectType = Image\nNDims = 3\nDimSize = 2 2\nElementType = MET_SHORT\nElementDataFile = LOCAL\n"
    (tmp_path / "odd.mha").write_bytes(header + bytes(16))
    capfd.readouterr()
    with pytest.raises(ImageReadError) as error:
        read_image(tmp_path / "scan.mha")
    assert str(error.value) == (f"{tmp_path / 'scan.mha'}: corrupt image data (Uncompress failed); the file is "
                                "damaged (copy or download it again)")
    with pytest.raises(ImageReadError) as error:
        read_grid(tmp_path / "odd.mha")
    assert str(error.value) == (f"{tmp_path / 'odd.mha'}: not a readable MetaImage file (its header cannot be "
                                "parsed: ElementType required and not defined)")
    assert capfd.readouterr() == ("", "")  # nothing printed by the libraries beneath


def test_metaimage_reads_in_threads_keep_each_files_own_printed_lines(sitk, tmp_path):
    """The lines the libraries print are kept by taking over fd 2, which is the process's: reads in threads at once
    refused good files with another file's "Uncompress failed" (22 of 80 reads) and read the damaged one, and could
    leave the standard error pointing at a deleted capture file."""
    import os
    import threading

    sitk.WriteImage(_oblique(sitk, _values("int16")), str(tmp_path / "good.mha"), True)
    data = (tmp_path / "good.mha").read_bytes()
    start = data.index(b"ElementDataFile = LOCAL\n") + len(b"ElementDataFile = LOCAL\n")
    (tmp_path / "bad.mha").write_bytes(data[:start] + bytes(len(data) - start))
    stderr_before = os.fstat(2)
    outcomes: dict[str, list[str]] = {"good.mha": [], "bad.mha": []}

    def read(name):
        for _ in range(15):
            try:
                read_image(tmp_path / name)
                outcomes[name].append("read")
            except ImageReadError as error:
                outcomes[name].append(str(error).split(": ", 1)[1])

    threads = [threading.Thread(target=read, args=(name,)) for name in ("good.mha", "bad.mha", "good.mha")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes["good.mha"] == ["read"] * 30
    assert set(outcomes["bad.mha"]) == {"corrupt image data (Uncompress failed); the file is damaged (copy or "
                                        "download it again)"}
    assert len(outcomes["bad.mha"]) == 15
    stderr_after = os.fstat(2)
    assert (stderr_after.st_dev, stderr_after.st_ino) == (stderr_before.st_dev, stderr_before.st_ino)


def test_a_metaimage_of_text_voxels_is_read_not_refused_as_cut_short(sitk, tmp_path):
    """MetaImage's BinaryData = False (voxels written as text, as NRRD's encoding: ascii): its bytes were counted
    against the binary size and it was refused as "truncated image data (16 of the 32 bytes…)"."""
    header = ("ObjectType = Image\nNDims = 3\nBinaryData = False\nDimSize = 2 2 2\nElementSpacing = 1 1 2\n"
              "TransformMatrix = 1 0 0 0 1 0 0 0 1\nElementType = MET_FLOAT\nElementDataFile = LOCAL\n")
    (tmp_path / "text.mha").write_text(header + "0 1 2 3 4 5 6 7.5\n")
    volume = read_image(tmp_path / "text.mha")
    assert volume.shape == (2, 2, 2) and np.array_equal(volume.affine, np.diag([-1.0, -1.0, 2.0, 1.0]))
    assert (volume.array[1, 0, 0], volume.array[0, 1, 0], volume.array[1, 1, 1]) == (1, 2, 7.5)


@pytest.mark.skipif(not hasattr(__import__("os"), "mkfifo"), reason="no named pipes on this system")
def test_a_named_pipe_is_refused_not_waited_on(sitk, tmp_path):
    """A named pipe called scan.nrrd (or a .mhd's data file that is one): SimpleITK opened it and waited for a writer,
    for ever; a NIfTI-named one is refused. Run as a process with a time limit, so that a regression fails."""
    import os
    import subprocess

    os.mkfifo(tmp_path / "scan.nrrd")
    os.mkfifo(tmp_path / "data.raw")
    (tmp_path / "scan.mhd").write_text("ObjectType = Image\nNDims = 3\nDimSize = 2 2 2\nElementType = MET_SHORT\n"
                                       "ElementDataFile = data.raw\n")
    script = ("import sys\nfrom medseg.io.images import read_grid, read_image\n"
              "for path in sys.argv[1:]:\n    for reader in (read_grid, read_image):\n        try:\n"
              "            reader(path)\n        except OSError as error:\n            print(error)")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "scan.nrrd"), str(tmp_path / "scan.mhd")],
                          capture_output=True, text=True, timeout=60)
    refused = "not a regular file (a named pipe, socket or device); give the image file"
    assert done.stdout.splitlines() == 2 * [f"{tmp_path / 'scan.nrrd'}: {refused}"] + 2 * [
        f"{tmp_path / 'data.raw'}: {refused} (the data file of scan.mhd)"]


def test_an_nrrd_header_of_crlf_lines_is_parsed(sitk, tmp_path, caplog):
    """An NRRD whose lines end in CR LF (a header edited on Windows), which SimpleITK reads: its header was not
    found, so a file without space directions was placed without the note, and a cut one went unchecked."""
    header = "NRRD0004\r\ntype: short\r\ndimension: 3\r\nsizes: 4 5 6\r\nspacings: 1 1 2\r\nendian: little\r\n" \
             "encoding: raw\r\n\r\n"
    (tmp_path / "crlf.nrrd").write_bytes(header.encode() + np.arange(120, dtype="<i2").tobytes())
    with caplog.at_level("WARNING"):
        volume = read_image(tmp_path / "crlf.nrrd")
    assert volume.array[0, 0, 1] == 20 and np.array_equal(volume.affine, np.diag([-1.0, -1.0, 2.0, 1.0]))
    assert volume.info["orientation_note"].startswith("no orientation in the header (no space directions)")
    (tmp_path / "crlf.nrrd").write_bytes(header.encode() + np.arange(100, dtype="<i2").tobytes())
    with pytest.raises(ImageReadError, match=r"crlf\.nrrd: truncated image data \(200 of the 240 bytes its header "):
        read_image(tmp_path / "crlf.nrrd")


@pytest.mark.parametrize("threads", [1, 2])
def test_simpleitk_reads_with_medseg_threads(sitk, tmp_path, monkeypatch, threads):
    """``--threads 1`` held torch and medseg's own work to one thread, while SimpleITK's reader and the filters it
    makes (decompression, the cast) started one per core of the machine; the reads now run with medseg's count,
    and ITK's global default is put back afterwards."""
    from medseg import resources

    sitk.WriteImage(_oblique(sitk, _values("int16")), str(tmp_path / "scan.nrrd"), True)
    monkeypatch.setattr(resources, "_threads", threads)
    seen = []
    for name in ("ReadImageInformation", "Execute"):
        original = getattr(sitk.ImageFileReader, name)

        def recording(self, *args, original=original, name=name):
            seen.append((name, self.GetNumberOfThreads(), sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()))
            return original(self, *args)

        monkeypatch.setattr(sitk.ImageFileReader, name, recording)
    before = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(7)
    try:
        volume = read_image(tmp_path / "scan.nrrd")
        after = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(before)
    assert volume.shape == (11, 9, 6)
    assert ("ReadImageInformation", threads, threads) in seen and ("Execute", threads, threads) in seen
    assert all(entry[1:] == (threads, threads) for entry in seen)
    assert after == 7


@pytest.mark.parametrize("ending", [".nrrd", ".nhdr", ".mhd"])
def test_a_header_over_64_kb_is_parsed_for_medsegs_checks(sitk, tmp_path, ending):
    """3D Slicer's segmentations write a dozen fields per segment: headers of more than 64 KB. Only their first 64 KB
    were parsed: a .mhd's data file (named last) went untracked and unchecked, an .nrrd's sizes unknown to a cohort's
    planning. The header is read to its end now."""
    from medseg.io.itk_image import header_sizes, itk_files_read

    image = sitk.GetImageFromArray(np.arange(60, dtype=np.int16).reshape(3, 4, 5))
    image.SetSpacing((0.5, 0.75, 2.0))
    for n in range(2000):
        image.SetMetaData(f"Segment{n}_Extent", "0 4 0 3 0 2 " * 4)
    path = tmp_path / f"big{ending}"
    sitk.WriteImage(image, str(path))
    assert path.stat().st_size > 100_000
    assert header_sizes(path) == ((5, 4, 3), (0.5, 0.75, 2.0))
    if ending == ".nrrd":
        return
    raw = tmp_path / "big.raw"
    assert itk_files_read(path) == [path, raw]
    raw.write_bytes(b"\0" * 10)
    with pytest.raises(ImageReadError, match=re.escape(f"{path}: its data file big.raw: truncated image data (10 of "
                                                       "the 120 bytes its header declares)")):
        read_image(path)


@pytest.mark.parametrize("ending", [".nrrd", ".mha"])
def test_a_header_that_does_not_end_is_refused_in_one_line(sitk, tmp_path, monkeypatch, ending):
    from medseg.io import itk_header

    monkeypatch.setattr(itk_header, "_HEADER_MOST_BYTES", 1 << 18)
    path = tmp_path / f"scan{ending}"
    if ending == ".nrrd":
        path.write_text("NRRD0004\ntype: short\ndimension: 3\nsizes: 5 4 3\n" + "# a comment\n" * 30_000)
        end = "no empty line"
    else:
        path.write_text("ObjectType = Image\nNDims = 3\n" + "Comment = a comment\n" * 20_000)
        end = "no ElementDataFile line"
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    assert str(info.value) == (f"{path}: its text header does not end within its first 0.25 MB ({end}); not "
                               f"{'an NRRD' if ending == '.nrrd' else 'a MetaImage'} header medseg reads")
