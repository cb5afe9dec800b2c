"""Outputs lie exactly on the input grid: shape, sform/qform and codes reproduced; labels not mirrored."""

import nibabel as nib
import numpy as np
import pytest
import torch

from medseg.inference import Segmenter
from medseg.io.nifti import read_nifti
from medseg.package import load_package
from medseg.preprocess import build_transforms, invert_labels, to_model_space
from medseg.segment import segment_case
from medseg.synthetic import make_phantom, rotation_matrix


def _affine(kind: str) -> np.ndarray:
    affine = np.eye(4)
    if kind == "oblique":
        affine[:3, :3] = rotation_matrix([0.3, -0.2, 0.5]) * [0.9, 1.1, 1.3]
        affine[:3, 3] = [-12.25, 33.5, 7.125]
    elif kind == "lps":  # voxel axes run towards L, P, S: what DICOM-derived NIfTIs often hold
        affine[:3, :3] = np.diag([-0.8, -0.8, 2.5])
        affine[:3, 3] = [100.0, 120.0, -40.0]
    elif kind == "anisotropic":
        affine[:3, :3] = np.diag([0.5, 0.7, 4.0])
    elif kind == "permuted":  # sagittal-like storage: voxel axis 0 runs along S
        affine[:3, :3] = np.array([[0, 0, -1.2], [0, 0.9, 0], [3.0, 0, 0]])
    return affine


KINDS = ["oblique", "lps", "anisotropic", "permuted"]


def _write(path, array, affine, sform_code=1, qform_code=1, dtype=np.float32):
    image = nib.Nifti1Image(array.astype(dtype), affine)
    image.header.set_sform(affine if sform_code else None, code=sform_code)
    image.header.set_qform(affine, code=qform_code)
    nib.save(image, str(path))
    return nib.load(str(path))


@pytest.mark.parametrize("kind", KINDS)
def test_output_reproduces_input_geometry_exactly(tmp_path, make_package, kind):
    phantom = make_phantom((40, 36, 12), seed=3)
    source = _write(tmp_path / f"{kind}.nii.gz", phantom.image, _affine(kind), sform_code=2, qform_code=1)
    package = load_package(make_package())
    outputs = segment_case(tmp_path / f"{kind}.nii.gz", Segmenter(package, device="cpu"), out_dir=tmp_path / "out")
    result = nib.load(str(outputs.segmentation))
    assert result.shape == source.shape
    assert result.get_data_dtype() == np.uint8
    assert np.array_equal(result.get_sform(), source.get_sform())
    assert np.array_equal(result.get_qform(), source.get_qform())
    assert int(result.header["sform_code"]) == 2 and int(result.header["qform_code"]) == 1
    assert np.array_equal(result.header["pixdim"][1:4], source.header["pixdim"][1:4])


def test_qform_only_input_keeps_sform_unset(tmp_path, make_package):
    phantom = make_phantom((24, 24, 8), seed=1)
    source = _write(tmp_path / "q.nii", phantom.image, _affine("oblique"), sform_code=0, qform_code=1)
    outputs = segment_case(tmp_path / "q.nii", Segmenter(load_package(make_package()), device="cpu"))
    result = nib.load(str(outputs.segmentation))
    assert outputs.segmentation == tmp_path / "q_seg.nii.gz"
    assert int(result.header["sform_code"]) == 0 and int(result.header["qform_code"]) == 1
    assert np.array_equal(result.get_qform(), source.get_qform())
    assert np.allclose(result.affine, source.affine, atol=1e-6)


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
