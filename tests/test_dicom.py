"""Reading a DICOM series into a volume (medseg/io/dicom.py): decoding compressed and multi-frame data, per-slice
rescale, stored bits, photometric interpretation and the input info a sidecar records."""

from __future__ import annotations

import json
import re

import numpy as np
import pydicom
import pytest
from conftest import run_cli
from dicom_factory import SAGITTAL, SHAPE, _raw, make_series, slice_positions, stored_values, write_series
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless

from medseg.errors import ImageReadError, MedsegWarning
from medseg.io import read_image
from medseg.io.dicom import read_dicom_series


def test_monochrome1_is_flagged_and_warned_about(tmp_path, caplog, capsys):
    """MONOCHROME1 (high values display dark) is read as stored, not inverted: a model trained on MONOCHROME2 images
    then sees reversed contrast. That was silent; it is flagged (inspect, sidecar) and warned about."""
    values, _ = make_series(tmp_path / "study", seed=5, modality="MR",
                            extra={"PhotometricInterpretation": "MONOCHROME1"})
    with caplog.at_level("WARNING"), pytest.warns(MedsegWarning) as caught:
        volume = read_dicom_series(tmp_path / "study")
    np.testing.assert_array_equal(volume.array, values.astype(np.float32) - 1024.0)  # as stored
    assert "monochrome1" in volume.info["flags"]
    told = [r.getMessage() for r in caplog.records if "is MONOCHROME1" in r.getMessage()]
    assert len(told) == 1 and "not inverted" in told[0] and [str(w.message) for w in caught] == told
    code, stdout, _ = run_cli(["-q", "inspect", str(tmp_path / "study"), "--json"], capsys)
    assert code == 0 and "monochrome1" in json.loads(stdout)["series"][0]["flags"]
    make_series(tmp_path / "plain", seed=5, modality="MR")
    assert "monochrome1" not in read_dicom_series(tmp_path / "plain").info["flags"]


@pytest.mark.parametrize("plane_bytes", [1 << 24, 1])  # 16 planes put at a time (37 = 16 + 16 + 5), or one
def test_slices_put_in_the_volume_a_few_at_a_time_are_each_in_its_place(tmp_path, monkeypatch, plane_bytes):
    """The planes are gathered and put in the volume together (one at a time, every voxel was written a slice's
    width from the last: 17 ms per 512×512 plane): every slice lands where it belongs, a last group of fewer too,
    rescaled in float64 and then rounded to float32, as one plane at a time was."""
    import medseg.io.dicom as dicom_module

    monkeypatch.setattr(dicom_module, "_PLANE_BYTES", plane_bytes)
    values = stored_values((20, 13, 37), seed=3)
    write_series(tmp_path, values, slice_positions(37, 2.0), slope=0.37, intercept=-1024.3)
    volume = read_dicom_series(tmp_path)
    expected = (values.astype(np.float64) * 0.37 + -1024.3).astype(np.float32)
    assert volume.array.shape == (20, 13, 37) and volume.array.dtype == np.float32
    np.testing.assert_array_equal(volume.array, expected)


def test_a_series_too_large_for_memory_is_one_line_naming_the_folder(tmp_path, monkeypatch):
    import medseg.io.dicom as dicom_module

    write_series(tmp_path, stored_values((32, 24, 4)), slice_positions(4, 2.0))
    empty = np.empty

    def refuse(shape, *args, **kwargs):
        if tuple(shape) == (32, 24, 4):
            raise MemoryError("Unable to allocate")
        return empty(shape, *args, **kwargs)

    monkeypatch.setattr(dicom_module.np, "empty", refuse)
    with pytest.raises(ImageReadError, match=rf"^{re.escape(str(tmp_path))}: series 3 .*: its 32×24×4 voxels need "
                                             r"0\.0 GiB of memory as float32; the headers are corrupt or the series "
                                             "too large$"):
        read_dicom_series(tmp_path)


@pytest.mark.parametrize("syntax", [RLELossless, JPEGLSLossless, JPEG2000Lossless], ids=["rle", "jpeg-ls", "j2k"])
def test_compressed_transfer_syntaxes_decode_to_the_same_volume(tmp_path, syntax):
    shape = (64, 48, 4)  # the JPEG 2000 encoder needs a few resolution levels
    values = stored_values(shape, seed=5) + 1024  # non-negative, like a CT's stored values
    positions = slice_positions(shape[2], 2.0)
    write_series(tmp_path / "plain", values, positions)
    write_series(tmp_path / "packed", values, positions, transfer_syntax=syntax)
    assert pydicom.dcmread(next((tmp_path / "packed").iterdir())).file_meta.TransferSyntaxUID == syntax
    plain, packed = read_dicom_series(tmp_path / "plain"), read_dicom_series(tmp_path / "packed")
    np.testing.assert_array_equal(packed.array, plain.array)
    np.testing.assert_array_equal(packed.affine, plain.affine)
    assert packed.info["transfer_syntax"] == str(syntax)


def test_enhanced_multi_frame_equals_the_single_frame_series(tmp_path):
    from highdicom.legacy import LegacyConvertedEnhancedCTImage

    values, paths = make_series(tmp_path / "single", seed=6, orientation=SAGITTAL, slope=0.5, intercept=-100.0)
    legacy = [pydicom.dcmread(p) for p in paths]
    enhanced = LegacyConvertedEnhancedCTImage(legacy, series_instance_uid=pydicom.uid.generate_uid(),
                                              series_number=9, sop_instance_uid=pydicom.uid.generate_uid(),
                                              instance_number=1)
    (tmp_path / "multi").mkdir()
    enhanced.save_as(tmp_path / "multi" / "enhanced.dcm")
    single, multi = read_dicom_series(tmp_path / "single"), read_dicom_series(tmp_path / "multi")
    assert multi.info["files"] == 1 and multi.info["slices"] == SHAPE[2]
    np.testing.assert_allclose(multi.affine, single.affine, atol=1e-9)
    np.testing.assert_array_equal(multi.array, single.array)
    np.testing.assert_array_equal(multi.array, values.astype(np.float32) * 0.5 - 100.0)
    assert all(frame is not None for frame in multi.dicom.frames)


def test_readme_names_every_key_of_a_dicom_inputs_info(tmp_path):
    """A DICOM input's sidecar `input_info` holds the series' description the reader made; the README named a few of
    its keys (flags, passed_over) and left the others for the reader to guess. Its DICOM page names every one."""
    from documents import read

    readme = read("docs/dicom.md")
    write_series(tmp_path, stored_values(SHAPE), slice_positions(SHAPE[2], 2.5))
    info = read_image(tmp_path).info
    assert [key for key in info if f"`{key}`" not in readme] == []


def test_rescale_may_differ_per_slice(tmp_path):
    values = stored_values(SHAPE, seed=8)
    positions = slice_positions(SHAPE[2], 2.0)
    for k in range(SHAPE[2]):  # e.g. PET: each slice has its own slope
        write_series(tmp_path, values[:, :, k:k + 1], positions[k:k + 1], series_uid="1.2.6", slope=0.25 * (k + 1),
                     intercept=float(k), prefix=f"s{k}")
    volume = read_dicom_series(tmp_path)
    expected = values * (0.25 * (np.arange(SHAPE[2]) + 1)) + np.arange(SHAPE[2])
    np.testing.assert_array_equal(volume.array, expected.astype(np.float32))
    assert "per-slice-rescale" in volume.info["flags"]


def test_enhanced_files_of_one_frame_each_are_read(tmp_path):
    """Before, pydicom's 2D array of a one-frame file was indexed as if 3D: "pixel data of shape (6,)"."""
    from highdicom.legacy import LegacyConvertedEnhancedCTImage

    values, paths = make_series(tmp_path / "single", seed=11, slope=0.5, intercept=-100.0)
    uid = pydicom.uid.generate_uid()
    (tmp_path / "enhanced").mkdir()
    for number, path in enumerate(paths, start=1):
        enhanced = LegacyConvertedEnhancedCTImage([pydicom.dcmread(path)], series_instance_uid=uid, series_number=9,
                                                  sop_instance_uid=pydicom.uid.generate_uid(), instance_number=number)
        enhanced.save_as(tmp_path / "enhanced" / f"{number:02d}.dcm")
    single, enhanced = read_dicom_series(tmp_path / "single"), read_dicom_series(tmp_path / "enhanced")
    assert enhanced.info["files"] == enhanced.info["slices"] == SHAPE[2]
    np.testing.assert_allclose(enhanced.affine, single.affine, atol=1e-9)
    np.testing.assert_array_equal(enhanced.array, values.astype(np.float32) * 0.5 - 100.0)


def test_a_transfer_syntax_without_decoder_is_named(tmp_path, capsys):
    _, paths = make_series(tmp_path / "dcm", seed=15)
    for path in paths:
        dataset = pydicom.dcmread(path)
        dataset.file_meta.TransferSyntaxUID = pydicom.uid.MPEG2MPML
        dataset.PixelData = pydicom.encaps.encapsulate([dataset.PixelData])
        dataset.save_as(path)
    code, _, err = run_cli(["convert", str(tmp_path / "dcm"), str(tmp_path / "out.nii.gz")], capsys)
    assert code == 1 and "Traceback" not in err
    assert re.search(r"\d{4}\.dcm: cannot decode MPEG2 Main Profile / Main Level pixel data \(", err)
    assert "corrupt" not in err and not (tmp_path / "out.nii.gz").exists()


@pytest.mark.parametrize("frames", ["", "0"])
def test_an_empty_or_zero_frame_count_on_single_frame_files_is_one_frame(tmp_path, frames):
    """Such files exist; pydicom assumes one frame, and so does medseg."""
    values, paths = make_series(tmp_path / "dcm", seed=17)
    for path in paths:
        _raw(path, "NumberOfFrames", "IS", frames.encode().ljust(2 if frames else 0))
    volume = read_dicom_series(tmp_path / "dcm")
    np.testing.assert_array_equal(volume.array, values.astype(np.float32) - 1024.0)


def test_a_header_that_does_not_fit_its_pixel_data_says_which_values_it_holds(tmp_path, capsys):
    """A 16-bit image whose header says 8 bits reads as two frames; the message only said the shape was not the
    expected one. It now names the header values that size the pixel data, and the data's length."""
    _, paths = make_series(tmp_path / "dcm", seed=7)
    target = sorted(paths)[2]
    dataset = pydicom.dcmread(target)
    length = len(dataset.PixelData)
    dataset.BitsAllocated, dataset.BitsStored, dataset.HighBit = 8, 8, 7
    dataset.save_as(target)
    code, _, err = run_cli(["convert", str(tmp_path / "dcm"), str(tmp_path / "out.nii.gz")], capsys)
    rows, columns = dataset.Rows, dataset.Columns
    assert code == 1 and err.strip().splitlines()[-1] == (
        f"medseg: error: {target}: pixel data of shape (2, {rows}, {columns}), expected ({rows}, {columns}): its "
        f"header (Rows {rows}, Columns {columns}, BitsAllocated 8, SamplesPerPixel 1, NumberOfFrames absent) does "
        f"not fit its {length} bytes of pixel data")
    assert not (tmp_path / "out.nii.gz").exists()


@pytest.mark.parametrize("signed", [False, True])
def test_values_beyond_the_stated_bits_stored_are_flagged_unless_an_overlay_is_declared(tmp_path, signed, caplog):
    """pydicom keeps a value's low BitsStored bits: 5000 under BitsStored 12 was read as 904, with no word. That is
    right for an overlay in the high bits (whose tags an anonymiser may have removed) and wrong for a header that
    understates the bits, so it is read as pydicom reads it, warned about and flagged; a declared overlay is what
    the masking is for, and high bits that are zero or the sign extended are the usual padding (no word)."""
    values, paths = make_series(tmp_path / "dcm", seed=7)
    target = sorted(paths)[2]
    dataset = pydicom.dcmread(target)
    dataset.PixelRepresentation = int(signed)
    plane = dataset.pixel_array.astype(np.int16 if signed else np.uint16)
    plane[0, 0] = 5000
    dataset.PixelData = plane.tobytes()
    dataset.BitsStored, dataset.HighBit = 12, 11
    dataset.save_as(target)
    decoded = 904  # 5000 - 4096: bit 12 dropped; below 2048 the signed reading is the same
    with pytest.warns(MedsegWarning) as caught:
        volume = read_dicom_series(tmp_path / "dcm")
    assert volume.array[0, 0, paths.index(target)] == decoded - 1024  # masked (rescale intercept -1024)
    assert "bits-beyond-stored" in volume.info["flags"]
    said = (f"{target.name}: values beyond its BitsStored (12): 5000 read as {decoded} (1 values); read as pydicom "
            "reads them, masked to BitsStored: right if the high bits hold an overlay")
    assert said in caplog.text
    assert [str(w.message).startswith(f"{tmp_path / 'dcm'}: {said}") for w in caught] == [True]
    caplog.clear()
    dataset.add_new(0x60000102, "US", 12)  # OverlayBitPosition: the overlay is bit 12
    dataset.save_as(target)
    volume = read_dicom_series(tmp_path / "dcm")
    assert "bits-beyond-stored" not in volume.info["flags"] and "BitsStored" not in caplog.text


def test_signed_values_with_zero_high_bits_are_no_alarm(tmp_path, caplog):
    """DICOM leaves the bits above BitsStored undefined: -2000 stored in 12 bits with zero high bits (0x0830) is as
    valid as the sign-extended 0xF830, and reads as -2000 either way."""
    values, paths = make_series(tmp_path / "dcm", seed=8)
    for path in paths:
        dataset = pydicom.dcmread(path)
        dataset.PixelRepresentation = 1
        plane = np.clip(dataset.pixel_array.astype(np.int32) - 1000, -2048, 2047)
        plane[0, 0] = -2000
        dataset.PixelData = (plane & 0xFFF).astype(np.uint16).tobytes()  # zero high bits
        dataset.BitsStored, dataset.HighBit = 12, 11
        dataset.save_as(path)
    volume = read_dicom_series(tmp_path / "dcm")
    assert volume.array[0, 0, 0] == -2000 - 1024
    assert "bits-beyond-stored" not in volume.info["flags"] and "BitsStored" not in caplog.text
