"""Reading a NIfTI file's voxels into one array: the values, type (byte order included) and memory order that
nibabel's own read gives, with about one copy of the volume at the peak, not two."""

from __future__ import annotations

import gzip
import tracemalloc
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import medseg.io.nifti_voxels as nifti_voxels
from medseg.errors import ImageReadError
from medseg.io.nifti import read_nifti
from medseg.report.checks import read_labels

SHAPE = (13, 11, 7)  # 1001 voxels: blocks of 100 bytes end in a part block whatever the type
AFFINE = np.diag([0.75, 0.5, 2.5, 1.0])  # exact in the header's float32
KINDS = ["uint8", "int16", "int16 scaled", "float32", "big-endian int16", "big-endian int16 scaled",
         "big-endian float32"]


def _write(path: Path, kind: str) -> Path:
    """A small image of ``kind`` saved by nibabel; scaled ones store whole numbers that the header's slope and
    intercept scale (nibabel chooses them for the float values given)."""
    values = np.random.default_rng(5).integers(0, 40, SHAPE)
    header = nib.Nifti1Header(endianness=">" if kind.startswith("big-endian") else "<")
    if kind.endswith("scaled"):
        data, stored = values * 0.37 - 3.0, np.int16
    elif kind.endswith("float32"):
        data, stored = np.random.default_rng(6).normal(50.0, 20.0, SHAPE).astype(np.float32), np.float32
    else:
        stored = np.uint8 if kind == "uint8" else np.int16
        data = values.astype(stored) - (7 if stored is np.int16 else 0)  # negative values too in int16
    header.set_data_dtype(stored)
    nib.save(nib.Nifti1Image(data, AFFINE, header), path)
    return path


@pytest.fixture(params=[".nii", ".nii.gz"])
def suffix(request):
    return request.param


@pytest.mark.parametrize("kind", KINDS)
def test_the_voxels_read_are_nibabels_in_type_and_order(tmp_path, monkeypatch, kind, suffix):
    monkeypatch.setattr(nifti_voxels, "_VOXEL_BLOCK_BYTES", 100)  # many blocks, the last one part-filled
    path = _write(tmp_path / f"image{suffix}", kind)
    image = nib.load(path)
    assert image.get_data_dtype().byteorder == (">" if kind.startswith("big-endian") else "<" if
                                                image.get_data_dtype().itemsize > 1 else "|")
    scaled = (image.dataobj.slope, image.dataobj.inter) != (1.0, 0.0)
    assert scaled == kind.endswith("scaled")
    # the image read for inference: float32
    volume = read_nifti(path)
    expected = image.get_fdata(dtype=np.float32)
    assert volume.array.dtype == np.float32 and volume.array.flags.f_contiguous
    assert np.array_equal(volume.array, expected)
    assert np.array_equal(volume.affine, AFFINE)
    # a label image scored: stored integers as stored (byte order included), else float64
    labels = read_nifti(path, hash_input=False, labels=True).array
    integer = np.issubdtype(image.get_data_dtype(), np.integer) and not scaled
    expected = np.asarray(image.dataobj) if integer else image.get_fdata(dtype=np.float64)
    assert labels.dtype.str == expected.dtype.str and labels.flags.f_contiguous
    assert np.array_equal(labels, expected)
    # the report's label read: integers, float or scaled voxels rounded to int32
    report, affine = read_labels(path)
    stored = np.asanyarray(image.dataobj)
    expected = stored if np.issubdtype(stored.dtype, np.integer) else np.rint(stored).astype(np.int32)
    assert report.dtype.str == expected.dtype.str and np.array_equal(report, expected)
    assert np.array_equal(affine, AFFINE)


def test_a_stream_holding_fewer_voxels_than_its_header_declares_is_refused_as_nibabel_words_it(tmp_path):
    path = _write(tmp_path / "whole.nii.gz", "int16")
    short = tmp_path / "short.nii.gz"
    short.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-100]))  # an intact stream, 50 voxels short
    with pytest.raises(ImageReadError) as caught:
        read_nifti(short)
    assert str(caught.value) == (f"{short}: truncated or corrupt image data (Expected 2002 bytes, got 1902 bytes from "
                                 f"{short})")


def _traced_peak(read) -> tuple[np.ndarray, int]:
    """What ``read()`` returns and the most memory traced while it ran, above what was traced before."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        result = read()
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    return result, peak


@pytest.mark.parametrize("stored", [np.uint8, np.int16])
def test_a_compressed_label_image_is_read_at_one_copy_of_its_voxels(tmp_path, stored):
    """nibabel decompressed a .nii.gz into a buffer of its own before making the array: a 512×512×300 uint8 label
    image peaked at 157 MB read for scoring, twice its 79 MB; 80 MB read into the array a block at a time."""
    labels = np.zeros((256, 256, 128), stored)  # 8.4 MB as uint8, 16.8 MB as int16
    labels[40:200, 50:220, 10:100] = 1
    labels[100:150, 90:140, 20:60] = 2
    path = tmp_path / "labels.nii.gz"
    nib.save(nib.Nifti1Image(labels, AFFINE), path)
    read_nifti(path, hash_input=False, labels=True)  # imports made before the count
    for read in (lambda: read_nifti(path, hash_input=False, labels=True).array, lambda: read_labels(path)[0]):
        array, peak = _traced_peak(read)
        assert array.dtype == stored and np.array_equal(array, labels)
        assert peak < 1.3 * labels.nbytes, (peak, labels.nbytes)


@pytest.mark.parametrize("scaled", [False, True])
def test_an_image_read_as_float32_takes_the_result_and_one_block(tmp_path, monkeypatch, scaled):
    """An int16 CT read for inference held its stored voxels whole beside the float32 result, and the check for NaN
    made a boolean volume: a 512×512×300 CT peaked at 472 MB (489 MB with scl_slope set) for its 315 MB result;
    394 MB once read a block at a time, 315 MB with the check made a block at a time too. (Blocks of 64 kB: the
    volume here is 12 MB, where a block's few temporary arrays would count.)"""
    monkeypatch.setattr(nifti_voxels, "_VOXEL_BLOCK_BYTES", 1 << 16)
    ct = np.random.default_rng(1).integers(-1024, 1500, (192, 192, 80)).astype(np.int16)  # 11.8 MB as float32
    image = nib.Nifti1Image(ct * 0.5 + 7.0 if scaled else ct, AFFINE)
    image.header.set_data_dtype(np.int16)
    path = tmp_path / "ct.nii.gz"
    nib.save(image, path)
    assert (nib.load(path).dataobj.slope != 1.0) == scaled
    read_nifti(path, hash_input=False)  # imports made before the count
    array, peak = _traced_peak(lambda: read_nifti(path, hash_input=False).array)
    assert np.array_equal(array, nib.load(path).get_fdata(dtype=np.float32))
    assert peak < 1.2 * array.nbytes, (peak, array.nbytes)


def test_nan_voxels_are_found_in_any_block(tmp_path, monkeypatch):
    monkeypatch.setattr(nifti_voxels, "_VOXEL_BLOCK_BYTES", 100)
    values = np.random.default_rng(2).normal(0.0, 1.0, SHAPE).astype(np.float32)
    values[12, 10, 6] = np.nan  # the last voxel of the last block
    nib.save(nib.Nifti1Image(values, AFFINE), tmp_path / "nan.nii.gz")
    with pytest.raises(Exception, match=r"the image contains NaN or infinite voxels \(1 NaN; the first at voxel "
                                        r"index \(12, 10, 6\)\)"):
        read_nifti(tmp_path / "nan.nii.gz")


def test_the_benchmark_prints_each_readers_peak_as_copies_of_its_array(capsys):
    from conftest import benchmark_main

    benchmark_main("nifti_read")(["--shape", "32", "24", "16"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:2] == ["file", "reader"] and len(lines) == 7
    assert [line.split()[-5] for line in lines[1:]] == ["uint8", "uint8", "float32", "int16", "float32", "float64"]
    assert all(float(line.split()[-2]) >= 1.0 for line in lines[1:])  # copies: at least the array itself
