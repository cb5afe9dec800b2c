"""Shared by the tests of medseg.folder_scoring (`medseg evaluate PRED_DIR REF_DIR`): the command run for its exit
code, a reference of two labels with a prediction shifted by whole voxels, a label image saved on a grid, and the
``folders`` fixture (three cases as medseg infer and nnU-Net name them, one reference on another grid)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from medseg.cli import main

AFFINE = np.diag([0.8, 0.8, 2.0, 1.0])


def run(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    return exit_info.value.code


def labels(shift: int) -> tuple[np.ndarray, np.ndarray]:
    """A reference of two labels and a prediction shifted by ``shift`` voxels (Dice below 1 where shifted)."""
    ref = np.zeros((20, 20, 8), np.uint8)
    ref[3:12, 4:13, 2:6] = 1
    ref[14:18, 14:18, 3:7] = 2
    return np.roll(ref, shift, axis=0), ref


def save(array: np.ndarray, path, affine=AFFINE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, affine), path)


@pytest.fixture(name="folders")
def folder_pairs(tmp_path):
    """Three cases as medseg infer and nnU-Net name them; case c's reference is on another grid."""
    pred, ref = tmp_path / "pred", tmp_path / "labelsTs"
    for case, shift in (("a", 1), ("b", 2), ("c", 0)):
        predicted, reference = labels(shift)
        save(predicted, pred / f"{case}_seg.nii.gz")
        shifted = AFFINE.copy()
        shifted[0, 3] = 5.0 if case == "c" else 0.0  # c: 5 mm off
        save(reference, ref / f"{case}.nii.gz", shifted)
    return pred, ref
