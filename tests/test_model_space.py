"""An image taken to model space and its labels brought back onto the input grid (medseg.preprocess): orientation
round trips lossless (labels not mirrored), resampled spacing inverted, a package without spatial preprocessing,
a 2D image across the model's slices."""

import nibabel as nib
import numpy as np
import pytest
import torch
from nifti_cases import KINDS, _affine, _write

from medseg.inference import Segmenter
from medseg.io.nifti import read_nifti
from medseg.package import load_package
from medseg.preprocess import build_transforms, invert_labels, to_model_space
from medseg.segment import segment_case
from medseg.synthetic import make_phantom


@pytest.mark.parametrize("kind", KINDS)
def test_orientation_round_trip_is_lossless(tmp_path, kind):
    """Labels pushed into model space and inverted come back voxel for voxel (no mirroring)."""
    phantom = make_phantom((30, 26, 10), seed=5)
    _write(tmp_path / "l.nii.gz", phantom.labels, _affine(kind), dtype=np.uint8)
    volume = read_nifti(tmp_path / "l.nii.gz")
    transforms = build_transforms({"orientation": "RAS", "spacing_mm": None, "intensity": {"kind": "none"}})
    data = to_model_space(volume, transforms)
    model_labels = data["image"][0].as_tensor().round().to(dtype=torch.uint8)
    back = invert_labels(model_labels, data, transforms, volume.shape)
    assert back.dtype == np.uint8
    assert np.array_equal(back, phantom.labels)
    # model space really is RAS: the affine's diagonal-dominant axes point to +R, +A, +S
    ras = np.asarray(data["image"].affine)[:3, :3]
    assert all(ras[np.argmax(np.abs(ras[:, i])), i] > 0 for i in range(3))


def test_spacing_resampling_inverts_onto_the_input_grid(tmp_path):
    phantom = make_phantom((80, 80, 10), seed=2)
    for value in (1, 2, 3):
        mask = (phantom.labels == value).astype(np.uint8)
        _write(tmp_path / "m.nii.gz", mask, _affine("anisotropic"), dtype=np.uint8)
        volume = read_nifti(tmp_path / "m.nii.gz")
        transforms = build_transforms({"orientation": "RAS", "spacing_mm": [1.0, 1.0, None],
                                       "intensity": {"kind": "none"}})
        data = to_model_space(volume, transforms)
        assert data["image"].shape[1:] == (40, 56, 10)  # 0.5 and 0.7 mm resampled to 1 mm, slices kept
        model_labels = data["image"][0].as_tensor().round().to(dtype=torch.uint8)
        back = invert_labels(model_labels, data, transforms, volume.shape)
        assert back.shape == volume.shape
        a, b = back == 1, mask == 1
        # structures of ~30 voxels per slice lose detail at the coarser grid, but move by at most half a coarse
        # voxel (1 mm / 0.5 mm and 1 mm / 0.7 mm input voxels); a mirrored or misplaced result moves far more
        assert 2 * (a & b).sum() / (a.sum() + b.sum()) > 0.85
        shift = np.abs(np.argwhere(a).mean(0) - np.argwhere(b).mean(0))
        assert np.all(shift <= np.array([1.0, 0.5 / 0.7, 0.1]) + 1e-6)


def test_a_2d_image_across_the_models_slices_is_refused(tmp_path, make_package):
    """A sagittal 2D image under a model that segments axial slices: each slice would be a one-voxel strip."""
    from medseg.errors import InputError

    segmenter = Segmenter(load_package(make_package()), device="cpu")  # slices across axis 2
    image = make_phantom((1, 40, 36), seed=4).image
    nib.save(nib.Nifti1Image(image, np.diag([3.0, 0.8, 0.8, 1.0])), tmp_path / "sagittal.nii.gz")
    with pytest.raises(InputError, match=r"sagittal.nii.gz: one voxel thick along model-space axis 0 .*1×40×36 in "
                                         r"model space\), but the model segments slices across axis 2"):
        segment_case(tmp_path / "sagittal.nii.gz", segmenter, out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_package_without_spatial_preprocessing_segments_on_the_input_grid_without_warnings(tmp_path):
    """orientation null and no spacing: nothing to invert (MONAI warned 'inverse has been called but no invertible
    transforms have been supplied' on every case); the labels are the network's, voxel for voxel."""
    import warnings

    from conftest import tiny_config

    from medseg.network import UNet2D, UNetConfig
    from medseg.package import save_package

    config = tiny_config()
    config["preprocessing"]["orientation"] = None
    torch.manual_seed(0)
    save_package(UNet2D(UNetConfig(**{k: v for k, v in config["architecture"].items() if k != "type"})), config,
                 tmp_path / "plain")
    image = nib.Nifti1Image(make_phantom((32, 30, 8), seed=2).image, _affine("lps"))
    nib.save(image, tmp_path / "lps.nii.gz")
    segmenter = Segmenter(load_package(tmp_path / "plain"), device="cpu")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outputs = segment_case(tmp_path / "lps.nii.gz", segmenter, out_dir=tmp_path / "out")
    assert not [w for w in caught if "inverse" in str(w.message)]
    expected = segmenter.predict(to_model_space(read_nifti(tmp_path / "lps.nii.gz"),
                                                build_transforms(config["preprocessing"]))["image"].as_tensor())
    written = nib.load(outputs.segmentation)
    assert np.array_equal(np.asarray(written.dataobj), expected.numpy()) and written.shape == (32, 30, 8)
    assert np.array_equal(written.affine, nib.load(tmp_path / "lps.nii.gz").affine)
