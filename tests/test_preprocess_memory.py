"""The memory-saving steps of preprocessing and inversion give exactly the values MONAI's own steps give."""

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, NormalizeIntensityd

from medseg.preprocess import (
    InPlaceZScore,
    _all_finite,
    build_transforms,
    invert_labels,
    to_model_space,
    without_voxels,
)
from medseg.segment import _label_counts
from medseg.synthetic import make_phantom, rotation_matrix
from medseg.volume import Volume

PRE = {"orientation": "RAS", "spacing_mm": [1.0, 1.0, 1.0], "intensity": {"kind": "zscore"}}


def _volume(order: str = "F") -> Volume:
    rng = np.random.default_rng(0)
    image = np.asarray(rng.normal(300.0, 200.0, size=(30, 26, 12)), dtype=np.float32, order=order)
    affine = np.eye(4)
    affine[:3, :3] = rotation_matrix([0.3, -0.2, 0.5]) @ np.array([[0, 0, -1.2], [0, 0.9, 0], [3.0, 0, 0]])
    affine[:3, 3] = [-12.25, 33.5, 7.125]
    return Volume(image, affine, source="synthetic")


def _images():
    rng = np.random.default_rng(2)
    c = torch.from_numpy(_volume("C").array.copy())[None]
    yield "C order", c
    yield "Fortran strides", torch.from_numpy(_volume("F").array)[None]
    yield "permuted view", c.permute(0, 3, 1, 2)
    ct = rng.integers(-1024, 3000, (20, 18, 9), dtype=np.int16)
    yield "from int16", torch.from_numpy(ct.astype(np.float32))[None]
    yield "two channels", torch.from_numpy(rng.normal(5.0, 3.0, (2, 12, 10, 6)).astype(np.float32))
    yield "large values", torch.from_numpy(rng.normal(1e30, 1e29, (10, 10, 4)).astype(np.float32))[None]
    yield "constant", torch.full((1, 6, 5, 4), -3.5)


@pytest.mark.parametrize("name", [name for name, _ in _images()])
def test_in_place_zscore_is_monai_bit_for_bit(name):
    image = dict(_images())[name]
    expected = NormalizeIntensityd(keys="image", channel_wise=True)({"image": image.clone()})["image"]
    contiguous = image.is_contiguous()
    result = InPlaceZScore(channel_wise=True)(image)
    assert torch.equal(torch.as_tensor(result), torch.as_tensor(expected))
    if contiguous:
        assert result.data_ptr() == image.data_ptr()  # written into the image: no copy


def test_in_place_zscore_of_a_constant_image_divides_by_one():
    image = torch.full((1, 4, 4, 4), 7.0)
    assert torch.equal(torch.as_tensor(InPlaceZScore(channel_wise=True)(image)), torch.zeros((1, 4, 4, 4)))


@pytest.mark.parametrize("order", ["F", "C"])
def test_released_voxels_give_the_same_model_space_image(order):
    transforms = build_transforms(PRE)
    kept, released = _volume(order), _volume(order)
    expected = to_model_space(kept, transforms)["image"]
    data = to_model_space(released, transforms, release_voxels=True)
    assert torch.equal(data["image"].as_tensor(), expected.as_tensor())
    assert np.array_equal(np.asarray(data["image"].affine), np.asarray(expected.affine))
    # the volume keeps its grid but no voxels
    assert released.shape == kept.shape and released.array.dtype == np.float32
    assert released.array.strides == (0, 0, 0) and not released.array.flags.writeable


def test_monai_compose_and_stepwise_application_agree():
    """to_model_space (one step at a time, in-place z-score) against one call of MONAI's own Compose with MONAI's
    NormalizeIntensityd."""
    from medseg.preprocess import InPlaceZScored

    volume = _volume()
    transforms = build_transforms(PRE)
    image = MetaTensor(torch.from_numpy(np.ascontiguousarray(volume.array)), affine=torch.from_numpy(volume.affine))
    monai_own = [NormalizeIntensityd(keys="image", channel_wise=True) if isinstance(t, InPlaceZScored) else t
                 for t in transforms.transforms]
    assert any(isinstance(t, InPlaceZScored) for t in transforms.transforms)
    expected = Compose(monai_own)({"image": image})["image"]
    data = to_model_space(volume, transforms)
    assert torch.equal(data["image"].as_tensor(), expected.as_tensor())
    assert [op["class"] for op in data["image"].applied_operations] == [
        op["class"] for op in expected.applied_operations]


def test_inverting_without_the_model_space_voxels_gives_the_same_labels():
    phantom = make_phantom((30, 26, 12), seed=4)
    volume = _volume()
    volume.array = np.asfortranarray(phantom.image)
    transforms = build_transforms(PRE)
    data = to_model_space(volume, transforms)
    model_labels = (data["image"][0].as_tensor() > 0.5).to(torch.uint8)
    expected = invert_labels(model_labels, data, transforms, volume.shape)
    stub = without_voxels(data)
    assert stub["image"].numel() == 0
    assert np.array_equal(invert_labels(model_labels, stub, transforms, volume.shape), expected)


def test_finite_check_looks_at_every_block():
    image = torch.zeros((1, 64, 8, 8))
    assert _all_finite(image, block_voxels=100)
    for bad in (float("nan"), float("inf"), -float("inf")):
        image[0, 63, 7, 7] = bad
        assert not _all_finite(image, block_voxels=100)
        assert not _all_finite(MetaTensor(image), block_voxels=100)
        image[0, 63, 7, 7] = 0.0


def test_label_counts_in_blocks_equal_bincount():
    labels = np.random.default_rng(1).integers(0, 5, size=(17, 13, 11), dtype=np.uint8)
    for view in (labels, labels.transpose(2, 0, 1)):
        assert np.array_equal(_label_counts(view, 3, block=100), np.bincount(view.ravel(), minlength=3))
    assert np.array_equal(_label_counts(np.zeros((0, 4, 4), np.uint8), 4), np.zeros(4, np.int64))


def test_label_counts_cast_a_cache_sized_block_at_a_time():
    """bincount's int64 cast of each block stays within the cache (64 Ki voxels, 512 KB): blocks of 4 Mi voxels
    (32 MB) took twice the CPU on a 512×512×300 segmentation (0.5 s, 0.23 s now)."""
    import tracemalloc

    labels = np.zeros((128, 128, 64), np.uint8)  # 1 Mi voxels
    labels[10:20] = 2
    tracemalloc.start()
    try:
        counts = _label_counts(labels, 3)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert counts.tolist() == [labels.size - 10 * 128 * 64, 0, 10 * 128 * 64]
    assert peak < 1 << 20


@pytest.mark.parametrize("dtype, slope, inter", [
    ("int16", 0.5, -1024.3), ("int16", 1.0, 0.0), ("uint8", 2.0, 0.0), ("uint16", 1.0, 0.0), ("int32", 1e-3, 7.0),
    ("float32", 3.0, 1.0), ("float64", 1.0, 0.0), ("float32", 1.0, 0.0),
])
def test_scaled_reading_is_nibabel_bit_for_bit(tmp_path, dtype, slope, inter):
    import nibabel as nib

    from medseg.io.nifti import load_image, read_float_region, read_nifti

    stored = (np.random.default_rng(0).random((21, 17, 9)) * 3000).astype(dtype)
    image = nib.Nifti1Image(stored, np.eye(4))
    image.header.set_slope_inter(slope, inter)
    nib.save(image, tmp_path / "x.nii.gz")
    expected = nib.load(tmp_path / "x.nii.gz").get_fdata(dtype=np.float32)
    array = read_nifti(tmp_path / "x.nii.gz").array
    assert array.dtype == np.float32 and array.flags.f_contiguous == expected.flags.f_contiguous
    np.testing.assert_array_equal(array, expected)
    region = (slice(3, 20), slice(0, 17), slice(8, 9))  # a part, as the report's overlay reads it
    part = read_float_region(load_image(tmp_path / "x.nii.gz", mmap=False), region)
    assert part.dtype == np.float32 and part.tobytes() == array[region].tobytes()


@pytest.mark.parametrize("name", ["ct.nii", "ct.nii.gz"])
def test_a_region_is_read_without_the_rest_of_the_image(tmp_path, name):
    """The report's overlay reads the crop it draws: a 40×40×30 crop of a 256×256×128 int16 CT (16 MiB stored, 32
    MiB as float32) is read in well under a MiB."""
    import tracemalloc

    import nibabel as nib

    from medseg.io.nifti import load_image, read_float_region

    stored = (np.random.default_rng(0).random((256, 256, 128)) * 3000).astype(np.int16)
    image = nib.Nifti1Image(stored, np.eye(4))
    image.header.set_slope_inter(0.5, -1024.0)
    nib.save(image, tmp_path / name)
    loaded = load_image(tmp_path / name, mmap=False)
    region = (slice(100, 140), slice(30, 70), slice(90, 120))
    tracemalloc.start()
    try:
        part = read_float_region(loaded, region)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    np.testing.assert_array_equal(part, (stored[region] * np.float32(0.5) + np.float32(-1024.0)))
    assert peak < 1 << 20, f"{peak / 2**20:.1f} MiB"


def test_a_scaled_int16_image_is_read_without_a_float64_copy(tmp_path):
    """nibabel scales in float64 before casting: 16 bytes per voxel at the peak (2 stored, 8, 4, and 2 read);
    block by block, 8."""
    import tracemalloc

    import nibabel as nib

    from medseg.io.nifti import read_nifti

    stored = (np.random.default_rng(0).random((256, 256, 128)) * 3000).astype(np.int16)
    image = nib.Nifti1Image(stored, np.eye(4))
    image.header.set_slope_inter(0.5, -1024.0)
    nib.save(image, tmp_path / "ct.nii")
    tracemalloc.start()
    try:
        volume = read_nifti(tmp_path / "ct.nii")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert volume.array.dtype == np.float32
    assert peak / stored.size < 10, f"{peak / stored.size:.1f} bytes per voxel"


@pytest.mark.parametrize("pre", [PRE, {"orientation": "RAS", "spacing_mm": None, "intensity": {"kind": "zscore"}}])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_volume_kept_keeps_its_values(pre, dtype):
    """A C-ordered array on a RAS grid (a caller's own, in memory) was the tensor the in-place z-score wrote into:
    to_model_space left the caller's image normalised."""
    phantom = make_phantom((30, 26, 12), seed=4, affine=np.diag([1.0, 1.0, 1.0, 1.0]))
    array = np.ascontiguousarray(phantom.image, dtype=dtype)
    before = array.copy()
    volume = Volume(array, phantom.affine)
    data = to_model_space(volume, build_transforms(pre))
    assert volume.array is array and np.array_equal(array, before)
    image = data["image"].as_tensor()
    assert abs(float(image.mean())) < 1e-4 and float(image.std()) == pytest.approx(1.0, abs=1e-3)
