"""A 3D array copied into the other memory order a band of planes at a time (medseg.array_order): the same values,
dtype and shape, in the order asked for; an array already in it is returned as it is."""

import numpy as np
import pytest

from medseg.array_order import _copied, c_order, fortran_order


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64])
@pytest.mark.parametrize("band_bytes", [1, 40, 1 << 19])
def test_copies_in_bands_hold_the_same_values(dtype, band_bytes):
    rng = np.random.default_rng(1)
    values = rng.normal(0, 100, (5, 7, 3)).astype(dtype)  # bands that do not divide the middle axis
    for order, source in (("F", np.ascontiguousarray(values)), ("C", np.asfortranarray(values))):
        out = _copied(source, order, band_bytes)
        assert out.flags.f_contiguous if order == "F" else out.flags.c_contiguous
        assert out.dtype == dtype and out.shape == values.shape
        assert out.tobytes(order="A") == np.array(values, order=order).tobytes(order="A")


def test_an_array_in_the_order_is_itself_and_others_are_copied():
    c = np.zeros((4, 5, 6), np.float32)
    f = np.asfortranarray(c)
    assert c_order(c) is c and fortran_order(f) is f
    assert not np.may_share_memory(c_order(f), f) and not np.may_share_memory(fortran_order(c), c)
    strided = np.arange(4 * 10 * 6, dtype=np.int16).reshape(4, 10, 6)[:, ::2, :]  # neither order
    assert np.array_equal(c_order(strided), strided) and c_order(strided).flags.c_contiguous
    flat = np.arange(12.0)[::2]  # not 3D: numpy's own copy
    assert c_order(flat).flags.c_contiguous and np.array_equal(c_order(flat), flat)


def test_a_fortran_ordered_input_goes_into_model_space_through_the_banded_copy(monkeypatch):
    """A NIfTI's voxels come in Fortran order; the C-ordered copy MONAI's transforms take is made a band of planes at
    a time (np.ascontiguousarray of a 512×512×300 CT took 1.4-2.1 s of CPU, 0.2 s so), with the same values."""
    import medseg.array_order as array_order
    from medseg.preprocess import _transform_input
    from medseg.volume import Volume

    copies = []
    banded = array_order._copied
    monkeypatch.setattr(array_order, "_copied", lambda *a, **k: copies.append(a[1]) or banded(*a, **k))
    voxels = np.asfortranarray(np.random.default_rng(2).normal(0, 1, (9, 8, 7)).astype(np.float32))
    volume = Volume(voxels.copy(order="F"), np.eye(4), source="x.nii.gz")
    image = _transform_input(volume, release_voxels=True)["image"]
    assert copies == ["C"]
    assert image.is_contiguous() and np.array_equal(image.numpy(), voxels)
    assert not volume.array.any()  # handed over: a placeholder of zeros


@pytest.mark.parametrize("offset, dtype", [(0.0, np.int16), (0.5, np.float32)])
def test_a_converted_series_is_handed_to_nibabel_in_its_order(offset, dtype):
    """``medseg convert``: a DICOM series' C-ordered volume goes to nibabel in Fortran order, cast as it is copied
    (nibabel wrote it one slice at a time, each gathered a slice's width apart: 4.3-4.9 s of CPU for the whole
    command on a 300-file 512² CT, 3.2-3.5 s so, the file the same byte for byte)."""
    from medseg.io.dicom import volume_image
    from medseg.volume import Volume

    values = np.ascontiguousarray(np.random.default_rng(3).integers(-1024, 3000, (11, 9, 5)).astype(np.float32))
    image = volume_image(Volume(values + offset, np.eye(4), source="series"))
    data = np.asarray(image.dataobj)
    assert data.flags.f_contiguous and data.dtype == dtype
    assert np.array_equal(data, (values + offset).astype(dtype))
