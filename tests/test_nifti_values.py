"""Voxel values a NIfTI read refuses, in one line (medseg.io.nifti): NaN or infinite voxels counted, intensities
float32 cannot hold (a scaled peak, float64 beyond float32's range or its precision)."""

import re

import nibabel as nib
import numpy as np
import pytest

from medseg.io.nifti import read_nifti


def test_nan_or_infinite_voxels_are_counted_and_the_first_is_named(tmp_path):
    """It said only "the image contains NaN or infinite voxels": in a large volume, no telling where."""
    from medseg.errors import InputError
    from medseg.io.nifti import read_nifti

    array = np.zeros((8, 9, 10), np.float32)
    array[5, 6, 7] = array[6, 0, 0] = np.nan
    array[2, 3, 4] = np.inf
    nib.save(nib.Nifti1Image(array, np.eye(4)), tmp_path / "bad.nii.gz")
    with pytest.raises(InputError) as error:
        read_nifti(tmp_path / "bad.nii.gz")
    assert str(error.value) == (f"{tmp_path / 'bad.nii.gz'}: the image contains NaN or infinite voxels (2 NaN, 1 "
                                "infinite; the first at voxel index (2, 3, 4))")


def test_the_overflow_message_gives_the_scaled_peak_once(tmp_path):
    """Before, the header's slope was applied twice: an int16 peak of 4485 with slope 1e36 read 4.48e+75."""
    from medseg.errors import InputError

    array = np.zeros((8, 8, 4), np.int16)
    array[0, 0, 0] = 4485
    image = nib.Nifti1Image(array, np.eye(4))
    image.header.set_slope_inter(1e36, 0.0)
    nib.save(image, tmp_path / "scaled.nii.gz")
    with pytest.raises(InputError, match=r"scaled.nii.gz: intensities up to 4.48e\+39 overflow float32"):
        read_nifti(tmp_path / "scaled.nii.gz")


def test_float64_intensities_beyond_float32_are_one_line(tmp_path):
    import warnings

    from medseg.errors import InputError

    nib.save(nib.Nifti1Image(np.full((8, 8, 4), 1e300), np.eye(4), dtype=np.float64), tmp_path / "big.nii.gz")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(InputError, match=r"big.nii.gz: intensities up to 1e\+300 overflow float32; rescale"):
            read_nifti(tmp_path / "big.nii.gz")
    assert [str(w.message) for w in caught] == []  # no numpy overflow warning on top of the one line


def test_float64_detail_float32_cannot_hold_is_not_called_a_blank_export(tmp_path):
    """A scan scaled by 1e-300, or lying around 1e9 with detail in the thousandths, reads as one value in float32:
    it was refused as "every voxel holds -0 (a blank or failed export?)"; a truly constant float64 image still is."""
    from medseg.errors import InputError
    from medseg.preprocess import check_not_constant

    detail = np.random.default_rng(0).random((8, 8, 4))
    for name, values, says in (("tiny", detail * 1e-300, r"\(all read as 0\)"),
                               ("far", 1e9 + 1e-3 * detail, r"\(a spread of 0.000\d+\), values float32 cannot tell "
                                                             r"apart \(all read as 1e\+09\); rescale the image")):
        nib.save(nib.Nifti1Image(values, np.eye(4), dtype=np.float64), tmp_path / f"{name}.nii.gz")
        with pytest.raises(InputError, match=f"{name}.nii.gz: its voxels range from .*{says}"):
            read_nifti(tmp_path / f"{name}.nii.gz")
    nib.save(nib.Nifti1Image(np.full((8, 8, 4), 7.0), np.eye(4), dtype=np.float64), tmp_path / "blank.nii.gz")
    with pytest.raises(InputError, match="every voxel holds 7: there is nothing to segment"):
        check_not_constant(read_nifti(tmp_path / "blank.nii.gz"))


def test_detail_float32_merges_in_part_is_warned_about(tmp_path, caplog):
    """Whole values of 0-2249 around 1e9 (float64, or int16 with scl_inter 1e9) keep float32's steps of 64 there,
    35 values of 2250: they were segmented as that posterised image without a word (the fully merged case is
    refused, above). An image whose values float32 holds, or rounds without merging them, gets no note."""
    ramp = np.arange(2250, dtype=np.float64).reshape(15, 15, 10)
    nib.save(nib.Nifti1Image(1e9 + ramp, np.eye(4), dtype=np.float64), tmp_path / "offset.nii.gz")
    scaled = nib.Nifti1Image(ramp.astype(np.int16), np.eye(4), dtype=np.int16)
    scaled.header.set_slope_inter(1.0, 1e9)
    nib.save(scaled, tmp_path / "scaled.nii.gz")
    for name in ("offset", "scaled"):
        with caplog.at_level("WARNING"):
            volume = read_nifti(tmp_path / f"{name}.nii.gz")
        note = ("its 2,250 distinct voxel values, from 1000000000 to 1000002249, are 36 in float32, which the image "
                "is segmented in (steps of 64 at that magnitude): the model sees a coarser image than the file "
                "holds; subtract the offset (or rescale) for the full detail")
        assert len(np.unique(volume.array)) == 36
        assert volume.info == {"precision_note": note}
        assert f"{tmp_path / f'{name}.nii.gz'}: {note}" in caplog.text
    for name, values in (("plain", ramp), ("fine", ramp / 7.0 + 1e3), ("wide", ramp * 1e6)):
        nib.save(nib.Nifti1Image(values, np.eye(4), dtype=np.float64), tmp_path / f"{name}.nii.gz")
        assert read_nifti(tmp_path / f"{name}.nii.gz").info == {}


def test_detail_float32_keeps_in_thousands_of_levels_is_not_noted(tmp_path):
    """1e4 + U(0, 50) in float64 holds about a million distinct values, 51,201 in float32 (steps of 0.001): finer than
    a CT's 12 bits and than fp16 inference keeps; it was noted as a coarser image. Noted below 4,096 levels only."""
    rng = np.random.default_rng(0)
    nib.save(nib.Nifti1Image(1e4 + rng.uniform(0, 50, (64, 64, 64)), np.eye(4), dtype=np.float64),
             tmp_path / "fine.nii")
    volume = read_nifti(tmp_path / "fine.nii", hash_input=False)
    assert len(np.unique(volume.array)) > 4096 and volume.info == {}


def test_the_float32_precision_check_holds_no_copy_of_the_volume(tmp_path):
    """An image the check looks into was read again whole and its values sorted, twice: 5.7 times the float32 volume
    at the peak (a 512×512×300 float64 one: 1.7-2.2 GB and 10 s to read, against 0.36 GB and 0.3 s). Its distinct
    values are counted a slab at a time now, with the same note; past twice float32's count, it says "more than"."""
    import tracemalloc

    rng = np.random.default_rng(0)
    whole = 1e9 + rng.integers(0, 2250, (64, 64, 256)).astype(np.float64)
    nib.save(nib.Nifti1Image(whole, np.eye(4), dtype=np.float64), tmp_path / "offset.nii")
    nib.save(nib.Nifti1Image(1e9 + rng.uniform(0, 2e5, (64, 64, 256)), np.eye(4), dtype=np.float64),
             tmp_path / "fine.nii")
    notes = {}
    for name in ("offset", "fine"):
        tracemalloc.start()
        try:
            volume = read_nifti(tmp_path / f"{name}.nii", hash_input=False)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 4 * volume.array.nbytes, (name, peak / volume.array.nbytes)
        notes[name] = volume.info["precision_note"]
    assert notes["offset"].startswith("its 2,250 distinct voxel values, from 1000000000 to 1000002249, are 36 in "
                                      "float32, which the image is segmented in (steps of 64 at that magnitude)")
    assert re.match(r"its more than 65,536 distinct voxel values, from 1000000000 to 1000200000, "
                    r"are 3,126 in float32", notes["fine"]), notes["fine"]
    # stored as int8 with scl_inter 1e9: counted as np.unique counts them (an int8's offsets overflow int8)
    scaled = nib.Nifti1Image(np.arange(-100, 101, dtype=np.int8).repeat(40)[:8000].reshape(20, 20, 20), np.eye(4),
                             dtype=np.int8)
    scaled.header.set_slope_inter(1.0, 1e9)
    nib.save(scaled, tmp_path / "int8.nii")
    assert read_nifti(tmp_path / "int8.nii").info["precision_note"].startswith(
        "its 200 distinct voxel values, from 999999900 to 1000000099, are 5 in float32")
