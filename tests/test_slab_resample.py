"""Resampling a slab of output planes at a time gives MONAI's values bit for bit, with no whole-volume grid."""

import numpy as np
import pytest
import torch
from monai.networks.layers import AffineTransform

import medseg.slab_resample
from medseg.preprocess import build_transforms, invert_labels, to_model_space, without_voxels
from medseg.slab_resample import SlabAffineTransform, slab_resampling
from medseg.synthetic import rotation_matrix
from medseg.volume import Volume

PRE = {"orientation": "RAS", "spacing_mm": [1.0, 1.0, 1.0], "intensity": {"kind": "zscore"}}


def _theta() -> torch.Tensor:
    theta = torch.eye(4, dtype=torch.float32)
    theta[:3, :3] = torch.from_numpy(rotation_matrix([0.2, -0.3, 0.4]) @ np.diag([0.7, 1.3, 0.9])).float()
    theta[:3, 3] = torch.tensor([1.5, -2.25, 0.75])
    return theta


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
@pytest.mark.parametrize("padding_mode", ["border", "zeros"])
@pytest.mark.parametrize("align_corners", [False, True])
def test_slabs_are_monai_bit_for_bit(mode, padding_mode, align_corners, monkeypatch):
    src = torch.from_numpy(np.random.default_rng(0).normal(0.0, 1.0, (1, 1, 17, 13, 11)).astype(np.float32))
    options = {"normalized": False, "mode": mode, "padding_mode": padding_mode, "align_corners": align_corners,
               "reverse_indexing": True}
    expected = AffineTransform(**options)(src, theta=_theta(), spatial_size=(23, 19, 14))
    monkeypatch.setattr(SlabAffineTransform, "slab_voxels", 1000)  # 4 planes of 19×14 a slab: 6 slabs
    result = SlabAffineTransform(**options)(src, theta=_theta(), spatial_size=(23, 19, 14))
    assert result.shape == (1, 1, 23, 19, 14) and torch.equal(result, expected)


def _volume() -> Volume:
    rng = np.random.default_rng(1)
    image = np.asarray(rng.normal(300.0, 200.0, size=(40, 34, 14)), dtype=np.float32, order="F")
    affine = np.eye(4)
    affine[:3, :3] = rotation_matrix([0.3, -0.2, 0.5]) @ np.array([[0, 0, -1.6], [0, 0.8, 0], [2.5, 0, 0]])
    affine[:3, 3] = [-12.25, 33.5, 7.125]
    return Volume(image, affine, source="synthetic")


def _model_space_and_back(slab_voxels: int, monkeypatch) -> tuple[torch.Tensor, np.ndarray, list[int]]:
    """The model-space image, random model-space labels inverted onto the input grid, and the voxels of each
    sampling grid made, with ``slab_voxels`` a slab."""
    monkeypatch.setattr(SlabAffineTransform, "slab_voxels", slab_voxels)
    grids: list[int] = []
    grid_sample = torch.nn.functional.grid_sample

    def counted(input, grid, *args, **kwargs):
        grids.append(int(np.prod(grid.shape[1:-1])))
        return grid_sample(input, grid, *args, **kwargs)

    monkeypatch.setattr(torch.nn.functional, "grid_sample", counted)
    volume, transforms = _volume(), build_transforms(PRE)
    data = to_model_space(volume, transforms, release_voxels=True)
    image = data["image"].as_tensor().clone()
    labels = torch.from_numpy(np.random.default_rng(2).integers(0, 3, image.shape[1:], dtype=np.uint8))
    inverted = invert_labels(labels, without_voxels(data), transforms, volume.shape, volume.source)
    return image, inverted, grids


def test_model_space_and_inverted_labels_are_monai_bit_for_bit_a_slab_of_grid_at_a_time(monkeypatch):
    """Before, ``Spacing`` and its inversion built the sampling grid of the whole output (28 bytes a voxel at once,
    1.4 GB for a 512×512×200 CT at 1 mm): a slab is now made at a time, and every value is the same."""
    image, inverted, grids = _model_space_and_back(1 << 62, monkeypatch)  # one slab: MONAI's own pass
    model_voxels, input_voxels = int(np.prod(image.shape[1:])), 40 * 34 * 14
    assert grids == [model_voxels, input_voxels]
    slab_image, slab_inverted, slab_grids = _model_space_and_back(6000, monkeypatch)
    assert len(slab_grids) > 10 and max(slab_grids) <= 6000 and sum(slab_grids) == model_voxels + input_voxels
    assert torch.equal(slab_image, image)
    assert slab_inverted.dtype == np.uint8 and np.array_equal(slab_inverted, inverted)
    assert set(np.unique(inverted)) == {0, 1, 2}


def test_the_swap_is_undone_after_use_and_after_an_error():
    from monai.transforms.spatial import functional

    with slab_resampling(), slab_resampling():
        assert functional.AffineTransform is SlabAffineTransform
    assert functional.AffineTransform is AffineTransform
    with pytest.raises(RuntimeError), slab_resampling():
        raise RuntimeError("a transform failed")
    assert functional.AffineTransform is AffineTransform
    assert medseg.slab_resample.SLAB_VOXELS == SlabAffineTransform.slab_voxels


@pytest.mark.parametrize("spatial_size", [(1, 40, 30), (30, 1, 40), (40, 30, 1), (1, 1, 1200)])
def test_an_output_one_voxel_thick_is_monai_bit_for_bit(spatial_size, monkeypatch):
    """A coronal 2D image of 1100×1×1000 voxels (a model that segments coronal slices takes it) was inverted onto
    its grid with an IndexError: the coordinates of an axis one voxel long were a scalar, not an axis."""
    src = torch.from_numpy(np.random.default_rng(3).normal(0.0, 1.0, (1, 2, 9, 7, 8)).astype(np.float32))
    options = {"normalized": False, "mode": "bilinear", "padding_mode": "border", "align_corners": False,
               "reverse_indexing": True}
    expected = AffineTransform(**options)(src, theta=_theta(), spatial_size=spatial_size)
    monkeypatch.setattr(SlabAffineTransform, "slab_voxels", 100)
    result = SlabAffineTransform(**options)(src, theta=_theta(), spatial_size=spatial_size)
    assert result.shape == (1, 2, *spatial_size) and torch.equal(result, expected)
