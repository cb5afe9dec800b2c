"""Shared by the tests of the NIfTI reader and of the segmentation written on its input's grid: affines of several
kinds (oblique, LPS, anisotropic, permuted), a NIfTI written with its sform and qform codes, an oblique image placed
by its sform alone, and a case segmented with its labels and sidecar read back."""

import json
import warnings

import nibabel as nib
import numpy as np

from medseg.errors import MedsegWarning
from medseg.inference import Segmenter
from medseg.segment import segment_case
from medseg.synthetic import rotation_matrix


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


def _segment(path, package, out):
    """``path`` segmented into ``out``: the labels and the sidecar. The synthetic images are unlike the hippocampus
    model's MR in intensity, which these geometry tests do not test: that warning is left out (it is logged still)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*: unlike the images model hippocampus was trained on: ",
                                category=MedsegWarning)
        outputs = segment_case(path, Segmenter(package, device="cpu"), out_dir=out)
    return np.asarray(nib.load(str(outputs.segmentation)).dataobj), json.loads(outputs.sidecar.read_text())


def _oblique_image(array):
    image = nib.Nifti1Image(array, _affine("oblique"))
    image.header.set_sform(_affine("oblique"), code=2)
    image.header.set_qform(None, code=0)
    return image
