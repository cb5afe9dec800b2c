"""Label images as medseg.io.label_images reads them: a header's scaling that makes a label's values fractional,
or other than the model's, is named with the refusal."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from medseg.errors import InputError
from medseg.io.label_images import read_reference


def _scaled_label(path, stored: np.ndarray, slope: float, inter: float) -> None:
    """A label file whose integer voxels ``stored`` are scaled by its header's scl_slope / scl_inter."""
    image = nib.Nifti1Image(stored, np.eye(4))
    image.header["scl_slope"], image.header["scl_inter"] = slope, inter
    nib.save(image, path)


def test_a_label_made_fractional_by_its_header_scaling_names_the_scaling(tmp_path):
    """A uint8 label whose header's scl_slope is 1.0000001 was refused for values 1.00000012, 2.00000024 without a
    word about the scaling: its stored voxels are whole."""
    blob = np.zeros((8, 8, 8), np.uint8)
    blob[2:4, 2:4, 2:4], blob[5:7, 5:7, 5:7] = 1, 2
    _scaled_label(tmp_path / "slope.nii.gz", blob, 1.0000001, 0.0)
    with pytest.raises(InputError, match=rf"^{tmp_path / 'slope.nii.gz'}: not a label image \(values must be "
                                         r"non-negative integers; it holds 1.00000012, 2.00000024\), given as the "
                                         r"reference: the header's scl_slope 1.0000001 \(scl_inter 0\) scales the "
                                         r"stored whole values; set slope 1 and intercept 0$"):
        read_reference(tmp_path / "slope.nii.gz")
    _scaled_label(tmp_path / "shifted.nii.gz", blob, 1.0, -1.0)  # the intercept makes the background -1
    with pytest.raises(InputError, match=r"it holds -1\), given as the reference: the header's scl_slope 1 "
                                         r"\(scl_inter -1\) scales the stored whole values; set slope 1 and "
                                         r"intercept 0$"):
        read_reference(tmp_path / "shifted.nii.gz")
    # negative as stored: the scaling is not the cause, and is not named
    _scaled_label(tmp_path / "negative.nii.gz", blob.astype(np.int16) - 1, 1.5, 0.0)
    with pytest.raises(InputError, match=r"it holds -1.5, 1.5\), given as the reference$"):
        read_reference(tmp_path / "negative.nii.gz")


def test_a_label_scaled_to_values_not_the_models_names_the_scaling(tmp_path):
    """A uint8 label whose header's scl_slope is 2 (a header copied from an MR image) reads 0, 2, 4: whole values, but
    4 is no label of the model's, and the refusal named the value without the header's scaling that made it."""
    blob = np.zeros((8, 8, 8), np.uint8)
    blob[2:4, 2:4, 2:4], blob[5:7, 5:7, 5:7] = 1, 2
    labels = {0: "background", 1: "a", 2: "b"}
    _scaled_label(tmp_path / "doubled.nii.gz", blob, 2.0, 0.0)
    with pytest.raises(InputError, match=r"doubled.nii.gz: label values \[4\] are not among the model's labels "
                                         r"\[0, 1, 2\], given as the reference: the header's scl_slope 2 \(scl_inter "
                                         r"0\) scales the stored whole values; set slope 1 and intercept 0$"):
        read_reference(tmp_path / "doubled.nii.gz", labels)
    _scaled_label(tmp_path / "four.nii.gz", blob * 2, 1.0, 0.0)  # stored so: no scaling to name
    with pytest.raises(InputError, match=r"four.nii.gz: label values \[4\] are not among the model's labels "
                                         r"\[0, 1, 2\], given as the reference$"):
        read_reference(tmp_path / "four.nii.gz", labels)
