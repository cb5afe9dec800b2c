"""The size of a cohort's inputs read from their headers while the workflow plans (no voxel data is read)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medseg.cohort.input_voxels import InputGrid, input_grid, voxel_count


def _header_only_nifti(path: Path, shape: tuple[int, ...], zooms: tuple[float, ...] | None = None) -> Path:
    """A NIfTI file whose header declares ``shape``, its voxels zeros on no disk space (a sparse file: only the header
    is read, and the file's size, which must hold them)."""
    header = nib.Nifti1Header()
    header.set_data_dtype(np.int16)
    header.set_data_shape(shape)
    if zooms is not None:
        header.set_zooms(zooms)
    with open(path, "wb") as file:
        file.write(header.binaryblock + b"\0" * 4)
        file.truncate(352 + 2 * int(np.prod(shape)))
    return path


def test_voxels_are_read_from_headers_and_unreadable_inputs_count_none(tmp_path):
    from dicom_factory import slice_positions, stored_values, write_series

    assert voxel_count(_header_only_nifti(tmp_path / "a.nii", (320, 256, 40))) == 320 * 256 * 40
    assert voxel_count(_header_only_nifti(tmp_path / "t.nii", (64, 64, 10, 3))) == 64 * 64 * 10 * 3
    series = tmp_path / "dicom"
    write_series(series, stored_values((24, 20, 6)), slice_positions(6, 2.0))
    (series / "notes.txt").write_text("not DICOM")  # skipped for the header; its bytes counted (an upper bound)
    # uncompressed, 16 bits a pixel: the folder's bytes over 2, the headers' bytes with them (tiny images: 2x over)
    assert voxel_count(series) == sum(p.stat().st_size for p in series.iterdir()) // 2 > 20 * 24 * 6
    (tmp_path / "bad.nii.gz").write_bytes(b"not a nifti")
    assert voxel_count(tmp_path / "bad.nii.gz") == 0
    assert voxel_count(tmp_path / "gone.nii.gz") == 0


def test_nifti_headers_of_either_version_byte_order_and_compression_are_read(tmp_path):
    """The voxel count and voxel size are read without nibabel (planning does not import it): NIfTI-1 and NIfTI-2,
    gzipped or not, either byte order."""
    import gzip

    for index, (kind, order, gzipped) in enumerate([(nib.Nifti1Header, "<", False), (nib.Nifti2Header, "<", True),
                                                    (nib.Nifti1Header, ">", True), (nib.Nifti2Header, ">", False)]):
        header = kind(endianness=order)
        header.set_data_shape((7, 5, 3))
        header.set_zooms((0.5, 2.0, 3.0))
        block = header.binaryblock + b"\0" * (4 + 105 * 4)  # the header, and the float32 voxels it declares
        path = tmp_path / f"v{index}.nii{'.gz' if gzipped else ''}"
        path.write_bytes(gzip.compress(block) if gzipped else block)
        assert nib.load(path).shape == (7, 5, 3)
        assert voxel_count(path) == 105, (kind.__name__, order, gzipped)
        assert input_grid(path) == InputGrid(105, (0.5, 2.0, 3.0)), (kind.__name__, order, gzipped)


def test_a_4d_image_counts_its_channels_apart(tmp_path):
    """A 4D image of modalities (X, Y, Z, C): all its values counted, and its channels, so that its grid's voxels are
    known (a 3D image is one channel)."""
    for shape, channels in (((7, 5, 3, 4), 4), ((7, 5, 3), 1), ((7, 5, 3, 1, 2), 2)):
        header = nib.Nifti1Header()
        header.set_data_shape(shape)
        header.set_zooms((0.5, 2.0, 3.0) + (1.0,) * (len(shape) - 3))
        path = tmp_path / f"c{channels}_{len(shape)}.nii"
        path.write_bytes(header.binaryblock + b"\0" * (4 + 105 * channels * header.get_data_dtype().itemsize))
        assert input_grid(path) == InputGrid(105 * channels, (0.5, 2.0, 3.0), channels)
        assert input_grid(path).grid_voxels == 105


def test_a_named_pipe_given_as_an_input_counts_no_voxels_without_waiting(tmp_path):
    """Its header was read while planning: a named pipe given as an image waited for a writer, and the cohort's
    planning with it (its case fails in its own job, as any unreadable input)."""
    import os
    import subprocess
    import sys

    pipe = tmp_path / "pipe.nii.gz"
    os.mkfifo(pipe)
    code = f"from medseg.cohort.input_voxels import voxel_count\nprint(voxel_count({str(pipe)!r}))"
    counted = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30,
                             cwd=Path(__file__).resolve().parents[1])
    assert (counted.returncode, counted.stdout) == (0, "0\n"), counted.stderr


def test_a_header_without_a_voxel_size_gives_none(tmp_path):
    path = _header_only_nifti(tmp_path / "a.nii", (4, 4, 4))
    block = bytearray(path.read_bytes())
    block[80:84] = np.float32(0).tobytes()  # pixdim[1] = 0
    path.write_bytes(bytes(block))
    assert input_grid(path) == InputGrid(64, None)
    assert input_grid(path).voxel_mm3 is None
    assert input_grid(_header_only_nifti(tmp_path / "b.nii", (4, 4, 4), (0.5, 0.5, 2.0))).voxel_mm3 == 0.5


def test_a_dicom_folder_is_counted_from_its_entries_and_one_header(tmp_path):
    """Every file under the folder counts (subfolders too, hidden files not), and the grid comes from one header
    (the largest file's): the folder's bytes over the bytes a pixel takes (uncompressed), pixel spacing, then
    SpacingBetweenSlices, else SliceThickness when believable, else the larger pixel spacing (the factory writes a
    SliceThickness of 99 mm)."""
    from dicom_factory import slice_positions, stored_values, write_series

    series = tmp_path / "study"
    write_series(series / "a", stored_values((24, 20, 3)), slice_positions(3, 2.0), pixel_spacing=(0.8, 0.6))
    write_series(series / "b" / "c", stored_values((24, 20, 2)), slice_positions(2, 2.0), pixel_spacing=(0.8, 0.6))
    (series / ".DS_Store").write_bytes(b"hidden" * 1000)
    counted = sum(p.stat().st_size for p in series.rglob("*.dcm"))
    assert input_grid(series) == InputGrid(counted // 2, (0.8, 0.6, 0.8))
    assert counted // 2 >= 20 * 24 * 5
    thick = tmp_path / "thick"
    write_series(thick, stored_values((24, 20, 2)), slice_positions(2, 2.0), extra={"SliceThickness": 2.5})
    assert input_grid(thick).spacing_mm == (0.8, 0.6, 2.5)
    spaced = tmp_path / "spaced"
    write_series(spaced, stored_values((24, 20, 2)), slice_positions(2, 2.0),
                 extra={"SliceThickness": 2.5, "SpacingBetweenSlices": 2.0})
    assert input_grid(spaced).spacing_mm == (0.8, 0.6, 2.0)
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.txt").write_text("not DICOM")
    assert input_grid(notes) == InputGrid(0, None)
    (tmp_path / "empty").mkdir()
    assert input_grid(tmp_path / "empty") == InputGrid(0, None)


def _series_voxels(folder: Path) -> int:
    """The voxels the DICOM files under ``folder`` hold, read from every header (what planning must not undercount)."""
    import pydicom

    return sum(int(ds.Rows) * int(ds.Columns) * int(ds.get("NumberOfFrames", 1) or 1)
               for ds in (pydicom.dcmread(p, stop_before_pixels=True) for p in folder.rglob("*.dcm")))


def test_a_folder_whose_series_differ_in_size_is_not_counted_under(tmp_path):
    """The grid read from one header was multiplied by the number of files: a 16x16 series listed before a 64x64
    one in the same folder was counted 16 times under. Read from the largest file, and bounded by the folder's
    bytes over the bytes a stored pixel takes (uncompressed), the count is at least the folder's voxels."""
    from dicom_factory import slice_positions, stored_values, write_series

    folder = tmp_path / "study"  # the small series' files listed first: the folder's own before its subfolder's
    write_series(folder, stored_values((16, 16, 10)), slice_positions(10, 2.0), pixel_spacing=(2.0, 2.0))
    write_series(folder / "large", stored_values((64, 64, 10)), slice_positions(10, 2.0), pixel_spacing=(0.5, 0.5))
    real = _series_voxels(folder)
    assert real == 10 * 16 * 16 + 10 * 64 * 64
    grid = input_grid(folder)
    assert real <= grid.voxels <= 1.5 * real
    assert grid.spacing_mm == (0.5, 0.5, 0.5)  # the largest file's
    (folder / "export.zip").write_bytes(b"PK" * 50_000)  # larger than any image, and no DICOM: its bytes do not count
    assert input_grid(folder) == grid


def test_a_multi_frame_file_beside_single_frames_is_counted_whole_and_not_once_per_file(tmp_path):
    """A single-frame screenshot read first beside an enhanced multi-frame image was counted as frames = 1 for every
    file (here 6 times under); the multi-frame header times the number of files would be 26 times over."""
    import pydicom
    from dicom_factory import slice_positions, stored_values, write_series

    folder = tmp_path / "study"
    write_series(folder, stored_values((32, 32, 30)), slice_positions(30, 2.0), prefix="a")
    [single] = write_series(tmp_path / "one", stored_values((64, 64, 1)), slice_positions(1, 2.0))
    frames = pydicom.dcmread(single)
    frames.NumberOfFrames = 40
    frames.PixelData = stored_values((64, 64, 40)).transpose(2, 1, 0).tobytes()
    (folder / "enhanced").mkdir()  # listed after the single frames
    frames.save_as(folder / "enhanced" / "frames.dcm", enforce_file_format=True)
    real = _series_voxels(folder)
    assert real == 30 * 32 * 32 + 40 * 64 * 64
    assert real <= input_grid(folder).voxels <= 1.5 * real


def test_a_compressed_folder_is_counted_from_its_largest_file_times_its_files(tmp_path):
    """Compressed pixels tell no voxels from bytes: the largest file's grid times the number of files."""
    from dicom_factory import slice_positions, stored_values, write_series
    from pydicom.uid import RLELossless

    folder = tmp_path / "rle"  # RLE: pydicom's own encoder
    write_series(folder / "a", stored_values((16, 16, 4)), slice_positions(4, 2.0), transfer_syntax=RLELossless)
    write_series(folder / "b", stored_values((48, 40, 3)), slice_positions(3, 2.0), transfer_syntax=RLELossless)
    assert input_grid(folder).voxels == 7 * 48 * 40


def test_a_series_mixing_compressed_and_uncompressed_slices_is_not_counted_under(tmp_path):
    """A series whose largest file stores its pixels uncompressed was counted as the folder's bytes over 2: its RLE
    slices, a few hundred bytes each, counted a few hundred voxels where they hold 48x40 (one uncompressed slice
    beside 19 RLE ones: 0.06 of its voxels). A file smaller than the largest one's pixels has its header read."""
    from dicom_factory import slice_positions, write_series
    from pydicom.uid import RLELossless

    values = np.indices((48, 40, 20))[0].astype(np.int16) // 8  # flat regions, as a CT's: RLE shrinks them
    positions = slice_positions(20, 2.0)
    for uncompressed in (1, 10):
        folder = tmp_path / f"mixed{uncompressed}"
        write_series(folder, values[:, :, :uncompressed], positions[:uncompressed], series_uid="1.2.3.4", prefix="u")
        compressed = write_series(folder, values[:, :, uncompressed:], positions[uncompressed:], series_uid="1.2.3.4",
                                  prefix="c", transfer_syntax=RLELossless)
        assert all(path.stat().st_size < 48 * 40 for path in compressed)  # their bytes tell under half their voxels
        real = _series_voxels(folder)
        assert real == 20 * 48 * 40
        assert real <= input_grid(folder).voxels <= 1.2 * real


def test_links_in_a_dicom_folder_are_followed_to_files_and_a_looping_one_is_passed_over(tmp_path):
    """Links to files count their target's bytes; a broken link and a link that loops are passed over, as the
    reader passes over them. The looping link raised while listing, and the whole folder counted no voxels."""
    import os

    from dicom_factory import slice_positions, stored_values, write_series

    source = tmp_path / "source"
    write_series(source, stored_values((24, 20, 6)), slice_positions(6, 2.0))
    expected = input_grid(source)
    assert expected.voxels > 0
    links = tmp_path / "links"
    links.mkdir()
    for path in source.iterdir():
        (links / path.name).symlink_to(path)
    assert input_grid(links) == expected
    (links / "broken").symlink_to(tmp_path / "nothing")
    os.symlink("loop", links / "loop")  # a link to itself
    (links / "empty.dcm").write_bytes(b"")
    assert input_grid(links) == expected


def test_a_colour_screenshot_larger_than_the_slices_does_not_give_the_grid(tmp_path):
    """A colour image filed with a series (a dose report, a screenshot: the reader refuses colour) was the largest
    file, so its header gave the grid: 24 bits a pixel counted the 16-bit slices' bytes 1.5 times under (below the
    series' own voxels here), and, without a pixel spacing, no voxel size. Its bytes still count."""
    import numpy as np
    import pydicom
    from dicom_factory import slice_positions, stored_values, write_series

    folder = tmp_path / "study"
    write_series(folder, stored_values((64, 64, 10)), slice_positions(10, 2.0), pixel_spacing=(0.8, 0.6))
    [single] = write_series(tmp_path / "one", stored_values((96, 96, 1)), slice_positions(1, 2.0))
    screenshot = pydicom.dcmread(single)
    screenshot.SamplesPerPixel, screenshot.PhotometricInterpretation, screenshot.PlanarConfiguration = 3, "RGB", 0
    screenshot.BitsAllocated, screenshot.BitsStored, screenshot.HighBit, screenshot.PixelRepresentation = 8, 8, 7, 0
    screenshot.PixelData = np.zeros((96, 96, 3), np.uint8).tobytes()
    del screenshot.PixelSpacing
    screenshot.save_as(folder / "dose_report.dcm", enforce_file_format=True)
    assert max(folder.iterdir(), key=lambda p: p.stat().st_size).name == "dose_report.dcm"
    grid = input_grid(folder)
    assert grid.voxels == sum(p.stat().st_size for p in folder.iterdir()) // 2 > 64 * 64 * 10 + 96 * 96
    assert grid.spacing_mm == (0.8, 0.6, 0.8)


def test_a_header_declaring_more_voxels_than_its_file_can_hold_counts_none(tmp_path):
    """A corrupt NIfTI header declaring 30000³ voxels in a file of a few kB (uncompressed, or gzip-compressed beyond
    deflate's 1032:1) made its batch's jobs ask for 324 TB of memory (mem_mb=324001200): the whole batch waited on
    or was refused by a scheduler, for a case reading refuses at once. Such an input counts no voxels, as an
    unreadable one does; a file that holds its voxels (here sparse: zeros on no disk space) counts them all."""
    import gzip

    header = nib.Nifti1Header()
    header.set_data_dtype(np.float32)
    header.set_data_shape((30000, 30000, 30000))
    block = header.binaryblock + b"\0" * 4
    (tmp_path / "raw.nii").write_bytes(block + b"\0" * 4096)
    (tmp_path / "packed.nii.gz").write_bytes(gzip.compress(block + b"\0" * 10**5))
    assert voxel_count(tmp_path / "raw.nii") == 0
    assert voxel_count(tmp_path / "packed.nii.gz") == 0
    header.set_data_shape((1000, 1000, 100))
    with open(tmp_path / "whole.nii", "wb") as file:
        file.write(header.binaryblock + b"\0" * 4)
        file.truncate(352 + 1000 * 1000 * 100 * 4)
    assert voxel_count(tmp_path / "whole.nii") == 10**8
    # gzip-compressed zeros: 2 MB declared, 2 kB on disk, within deflate's ratio
    header.set_data_shape((100, 100, 50))
    (tmp_path / "zeros.nii.gz").write_bytes(gzip.compress(header.binaryblock + b"\0" * (4 + 100 * 100 * 50 * 4)))
    assert voxel_count(tmp_path / "zeros.nii.gz") == 100 * 100 * 50


def test_an_nrrd_or_metaimage_header_declaring_more_voxels_than_its_files_can_hold_counts_none(tmp_path):
    """As a NIfTI file: an NRRD or MetaImage header declaring 30000³ voxels beside a data file of 1 kB (that no
    compression the readers take for these files can expand to them) made its batch ask for hundreds of TB."""
    (tmp_path / "scan.raw").write_bytes(bytes(1000))
    for name, header in (("scan.nhdr", "NRRD0004\ntype: uchar\ndimension: 3\nsizes: {0} {0} {0}\nencoding: raw\n"
                                       "data file: scan.raw\n\n"),
                         ("scan.mhd", "ObjectType = Image\nNDims = 3\nDimSize = {0} {0} {0}\nElementType = MET_UCHAR\n"
                                      "ElementDataFile = scan.raw\n")):
        (tmp_path / name).write_text(header.format(10))
        assert voxel_count(tmp_path / name) == 1000
        (tmp_path / name).write_text(header.format(30000))
        assert voxel_count(tmp_path / name) == 0
    (tmp_path / "attached.nrrd").write_bytes(b"NRRD0004\ntype: uchar\ndimension: 3\nsizes: 30000 30000 30000\n"
                                             b"encoding: gzip\n\n" + bytes(100))
    assert voxel_count(tmp_path / "attached.nrrd") == 0


def test_a_nifti_file_whose_bitpix_disagrees_with_its_datatype_counts_its_voxels(tmp_path):
    """Reading takes a voxel's bytes from the header's datatype, not its bitpix (which some writers leave wrong): an
    uncompressed uint8 file whose bitpix says 64 reads whole, and its planning counted it as holding too little for
    its voxels (0 voxels: its job asked for the least memory)."""
    import struct

    header = nib.Nifti1Header()
    header.set_data_dtype(np.uint8)
    header.set_data_shape((64, 64, 40))
    block = bytearray(header.binaryblock)
    block[72:74] = struct.pack("<h", 64)  # bitpix 64 for a datatype of 8 bits
    (tmp_path / "wrong_bitpix.nii").write_bytes(bytes(block) + b"\0" * (4 + 64 * 64 * 40))
    assert nib.load(tmp_path / "wrong_bitpix.nii").get_fdata().shape == (64, 64, 40)
    assert voxel_count(tmp_path / "wrong_bitpix.nii") == 64 * 64 * 40
    # the datatype's own bytes still bound it: the same voxels declared as float64 do not fit
    header.set_data_dtype(np.float64)
    (tmp_path / "short.nii").write_bytes(header.binaryblock + b"\0" * (4 + 64 * 64 * 40))
    assert voxel_count(tmp_path / "short.nii") == 0


def test_a_bzip2_nrrd_is_bounded_by_bzip2s_own_ratio(tmp_path):
    """NRRD's bz2 encoding was left unbounded: a corrupt header declaring 30000³ voxels beside 100 bytes still made its
    batch ask for hundreds of TB. It is bounded by bzip2's most (45,900,000 bytes a stored byte), not deflate's 1032,
    which real bzip2 files of zeros pass by far (8 MB in well under 8 kB)."""
    import bz2

    head = "NRRD0004\ntype: uchar\ndimension: 3\nsizes: {0} {0} {0}\nencoding: bz2\n\n"
    (tmp_path / "corrupt.nrrd").write_bytes(head.format(30000).encode() + bz2.compress(bytes(10**4)))
    assert voxel_count(tmp_path / "corrupt.nrrd") == 0
    packed = bz2.compress(bytes(200 ** 3), 9)
    assert 200 ** 3 > 1032 * (len(packed) + 100)  # beyond deflate's bound
    (tmp_path / "zeros.nrrd").write_bytes(head.format(200).encode() + packed)
    assert voxel_count(tmp_path / "zeros.nrrd") == 200 ** 3


def test_a_bzip2_nifti_counts_its_voxels(tmp_path):
    """nibabel reads a .nii.bz2, and medseg with it; planning read its header as if uncompressed and counted 0 voxels
    (its job asked for the least memory). Its header is read through bzip2, and the file bounded by bzip2's ratio."""
    import bz2

    header = nib.Nifti1Header()
    header.set_data_dtype(np.int16)
    header.set_data_shape((200, 200, 100))
    header.set_zooms((0.5, 0.5, 2.0))
    (tmp_path / "scan.nii.bz2").write_bytes(bz2.compress(header.binaryblock + b"\0" * (4 + 2 * 200 * 200 * 100)))
    assert nib.load(tmp_path / "scan.nii.bz2").shape == (200, 200, 100)
    assert input_grid(tmp_path / "scan.nii.bz2") == InputGrid(200 * 200 * 100, (0.5, 0.5, 2.0))
    header.set_data_shape((30000, 30000, 30000))
    (tmp_path / "corrupt.nii.bz2").write_bytes(bz2.compress(header.binaryblock + b"\0" * 10**4))
    assert voxel_count(tmp_path / "corrupt.nii.bz2") == 0


def test_the_grids_shape_is_read_from_each_kind_of_header(tmp_path):
    """The voxels along each axis, which the planned run time pads to a model's tiles (medseg/cohort/job_runtime.py):
    a NIfTI file's first three dimensions (a 2D one's third is 1), an NRRD's sizes, a DICOM folder's largest image's
    columns and rows and its voxels over them; not compared (two grids of as many voxels are as large)."""
    from dicom_factory import slice_positions, stored_values, write_series

    for shape, grid in (((7, 5, 3, 4), (7, 5, 3)), ((7, 5), (7, 5, 1))):
        header = nib.Nifti1Header()
        header.set_data_shape(shape)
        path = tmp_path / f"s{len(shape)}.nii"
        path.write_bytes(header.binaryblock + b"\0" * (4 + 4 * 420))
        assert input_grid(path).shape == grid
    (tmp_path / "a.nrrd").write_bytes(b"NRRD0004\ntype: uchar\ndimension: 3\nsizes: 6 4 2\nencoding: raw\n\n"
                                      + bytes(48))
    assert input_grid(tmp_path / "a.nrrd").shape == (6, 4, 2)
    write_series(tmp_path / "series", stored_values((24, 20, 3)), slice_positions(3, 2.0))
    series = input_grid(tmp_path / "series")
    assert sorted(series.shape[:2]) == [20, 24] and series.shape[2] == series.voxels // (24 * 20) >= 3
    assert InputGrid(8, (1.0, 1.0, 1.0), shape=(2, 2, 2)) == InputGrid(8, (1.0, 1.0, 1.0), shape=(8, 1, 1))


@pytest.mark.filterwarnings("ignore:Unknown encoding")  # pydicom, on writing the faulty test value
def test_pydicom_s_warnings_while_planning_reads_a_header_name_the_file(tmp_path, caplog):
    """Planning reads a DICOM folder's largest header for its grid; pydicom logs and warns "Unknown encoding 'ISO_IR
    999' - using default encoding instead" of a file whose character set it does not know, without naming it. The
    warning and the log record now name the file read."""
    import logging
    import warnings

    from dicom_factory import SHAPE, _raw, make_series

    _, paths = make_series(tmp_path / "series", seed=0)
    for path in paths:
        _raw(path, "SpecificCharacterSet", "CS", b"ISO_IR 999")
    caplog.set_level(logging.WARNING, logger="pydicom")
    caplog.clear()  # pydicom's words as the test wrote the files
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        grid = input_grid(tmp_path / "series")
    assert grid.voxels >= SHAPE[0] * SHAPE[1] * SHAPE[2]  # an upper bound, from the files' sizes
    told = {str(w.message) for w in caught} | {r.getMessage() for r in caplog.records if r.name == "pydicom"}
    assert len(told) == 1 and told.pop() in {f"{path}: Unknown encoding 'ISO_IR 999' - using default encoding instead"
                                             for path in paths}


def test_pydicom_s_warnings_about_a_value_planning_takes_name_the_file(tmp_path, caplog):
    """pydicom reads a header's values when they are asked for, not when the file is read: a number of frames of
    ``'1.0'`` (``IS`` holds integers) was warned about ("Invalid value for VR IS: '1.0'") as planning took it, after
    the block that names the file had ended, and so named no file."""
    import logging
    import warnings

    from dicom_factory import SHAPE, _raw, make_series

    _, paths = make_series(tmp_path / "series", seed=0)
    for path in paths:
        _raw(path, "NumberOfFrames", "IS", b"1.0 ")
    caplog.set_level(logging.WARNING, logger="pydicom")
    caplog.clear()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        grid = input_grid(tmp_path / "series")
    assert grid.voxels >= SHAPE[0] * SHAPE[1] * SHAPE[2]
    told = {str(w.message) for w in caught} | {r.getMessage() for r in caplog.records if r.name == "pydicom"}
    assert any("Invalid value for VR IS: '1.0'" in text for text in told), told
    assert all(any(text.startswith(f"{path}: ") for path in paths) for text in told), told
