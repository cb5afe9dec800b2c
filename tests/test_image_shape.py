"""The shape an image is read as (medseg.io.image_shape): a 2D image as one slice, a 5D image holding one volume
as 3D."""

import nibabel as nib
import numpy as np
from nifti_cases import _segment

from medseg.package import load_package
from medseg.synthetic import make_phantom


def test_a_2d_image_is_one_slice_and_a_5d_image_with_one_volume_is_3d(tmp_path, make_package):
    package = load_package(make_package())
    image = make_phantom((40, 36, 1), seed=4).image
    affine = np.diag([0.8, 0.8, 3.0, 1.0])
    nib.save(nib.Nifti1Image(image, affine), tmp_path / "slice3d.nii.gz")
    nib.save(nib.Nifti1Image(image[:, :, 0], affine), tmp_path / "slice2d.nii.gz")
    nib.save(nib.Nifti1Image(image[..., None, None], affine), tmp_path / "five_d.nii.gz")
    reference, _ = _segment(tmp_path / "slice3d.nii.gz", package, tmp_path / "a")
    for name in ("slice2d", "five_d"):
        labels, sidecar = _segment(tmp_path / f"{name}.nii.gz", package, tmp_path / name)
        np.testing.assert_array_equal(labels.reshape(reference.shape), reference)
        assert sidecar["shape"] == [40, 36, 1]
        assert sidecar["input_info"]["stored_shape"] == {"slice2d": [40, 36], "five_d": [40, 36, 1, 1, 1]}[name]
        assert np.allclose(nib.load(tmp_path / name / f"{name}_seg.nii.gz").affine, affine)
