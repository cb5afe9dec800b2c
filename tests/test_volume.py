"""A volume's affine checked alike wherever it enters (medseg.volume): singular or not finite, in one text for the
reader, segment_volume and evaluate_volumes; tiny voxels, which are not singular; an SPM .mat whose bottom row is
not 0 0 0 1."""

import nibabel as nib
import numpy as np
import pytest

from medseg.errors import InputError
from medseg.io.nifti import read_nifti
from medseg.synthetic import make_phantom


def test_an_spm_mat_whose_bottom_row_is_not_0_0_0_1_is_refused(tmp_path):
    """An SPM .mat holds all four rows of its matrix: a bottom row other than 0 0 0 1 was ignored, the voxels placed
    by the top three rows alone, as Python's segment_volume and evaluate_volumes now refuse it too."""
    import scipy.io

    from medseg.io.images import read_grid

    nib.save(nib.Spm2AnalyzeImage(np.ones((8, 8, 4), np.float32), np.eye(4)), tmp_path / "spm.img")
    mat = np.eye(4)
    mat[3] = [0.0, 0.0, 0.1, 1.0]
    scipy.io.savemat(tmp_path / "spm.mat", {"mat": mat})
    for read in (read_nifti, read_grid):
        with pytest.raises(InputError, match=r"spm.img: the affine's bottom row is 0 0 0.1 [0-9.]+, not 0 0 0 1: a "
                                             r"projective matrix, not a voxel-to-world affine \(from the SPM .mat "
                                             r"beside it\)"):
            read(tmp_path / "spm.img")
    scipy.io.savemat(tmp_path / "spm.mat", {"mat": np.diag([2.0, 2.0, 2.0, 1.0])})  # a proper one is read
    assert np.allclose(np.abs(np.diag(read_nifti(tmp_path / "spm.img").affine)), [2, 2, 2, 1])


def test_tiny_voxels_are_no_singular_affine(tmp_path):
    """0.1 µm voxels (a determinant of 1e-12 mm³) were refused as "the affine is singular"; axes in one plane still
    are."""
    phantom = make_phantom((24, 20, 6), seed=3)
    nib.save(nib.Nifti1Image(phantom.image, np.diag([1e-4, 1e-4, 1e-4, 1.0])), str(tmp_path / "tiny.nii.gz"))
    np.testing.assert_allclose(np.diag(read_nifti(tmp_path / "tiny.nii.gz").affine)[:3], 1e-4)
    flat = np.eye(4)
    flat[:3, 2] = [1.0, 1.0, 1e-9]  # the third axis nearly along the first two's plane
    flat[:3, 0], flat[:3, 1] = [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]
    nib.save(nib.Nifti1Image(phantom.image, flat), str(tmp_path / "flat.nii.gz"))
    with pytest.raises(InputError, match="flat.nii.gz: the affine is singular or not finite"):
        read_nifti(tmp_path / "flat.nii.gz")


@pytest.mark.parametrize("affine, rows", [
    (np.diag([1.0, 1.0, 0.0, 1.0]), "1 0 0 0; 0 1 0 0; 0 0 0 0"),
    (np.diag([1.0, np.inf, 1.0, 1.0]), "1 0 0 0; 0 inf 0 0; 0 0 1 0"),
    ([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 1.0, 0.0], [0.0, 0.0, 1e-9, 0.0], [0.0, 0.0, 0.0, 1.0]],
     "1 0 1 0; 0 1 1 0; 0 0 1e-09 0"),
    (np.diag([1e-4, 1e-4, 1e-4, 1.0]), None),
])
def test_the_reader_segment_volume_and_evaluate_volumes_refuse_one_affine_in_one_text(tmp_path, phantom_segmenter,
                                                                                     affine, rows):
    """The singular-affine check is one function; each caller keeps its own name and tail on the same text."""
    from medseg.metrics import evaluate_volumes
    from medseg.segment import segment_volume
    from medseg.volume import Volume, singular_affine_text

    affine = np.asarray(affine, dtype=np.float64)
    fault = None if rows is None else f"the affine is singular or not finite (rows {rows})"
    assert singular_affine_text(affine) == fault
    if fault is None:
        return
    cube = np.zeros((6, 6, 4), np.uint8)
    cube[2:4, 2:4, 1:3] = 1
    with pytest.raises(InputError) as raised:
        segment_volume(Volume(cube.astype(np.float32), affine), phantom_segmenter)
    assert str(raised.value) == f"the volume: {fault}"
    with pytest.raises(InputError) as raised:
        evaluate_volumes(Volume(cube, affine), Volume(cube, np.eye(4)), {1: "x"})
    assert str(raised.value) == f"the prediction: {fault}, given as the prediction"
    if np.isfinite(affine).all():  # nibabel writes no infinite sform
        header = nib.Nifti1Header()
        header.set_data_shape(cube.shape)
        header.set_sform(affine, code=1)
        nib.save(nib.Nifti1Image(cube.astype(np.float32), None, header=header), str(tmp_path / "bad.nii.gz"))
        with pytest.raises(InputError) as raised:
            read_nifti(tmp_path / "bad.nii.gz")
        assert str(raised.value) == f"{tmp_path / 'bad.nii.gz'}: {fault}"


def test_a_volume_shown_in_a_notebook_is_its_grid_not_its_voxels(tmp_path):
    """A Volume as a notebook cell's value was numpy's print of its voxels, the affine's rows and a header object
    (4 KB for a 36×52×38 hippocampus crop); it is now its shape, type, voxel size, the affine's orientation and its
    source, on one line, as TorchIO shows an Image."""
    from medseg.io.images import read_image
    from medseg.volume import Volume

    phantom = make_phantom((20, 16, 6), seed=1)
    path = tmp_path / "case.nii.gz"
    nib.save(nib.Nifti1Image(phantom.image, np.diag([-0.5, 0.5, 2.0, 1.0])), str(path))
    assert repr(read_image(path)) == (f"Volume(shape=(20, 16, 6), dtype=float32, spacing_mm=(0.5, 0.5, 2.0), "
                                      f"orientation=LAS, source={str(path)!r})")
    array = np.zeros((4, 5, 3, 2), dtype=np.int16)
    assert repr(Volume(array, np.eye(4), channel_axis=True)) == (
        "Volume(shape=(4, 5, 3), channels=2, dtype=int16, spacing_mm=(1.0, 1.0, 1.0), orientation=RAS)")
    assert repr(Volume(np.zeros((3, 4)), None)) == "Volume(shape=(3, 4), dtype=float64, affine=None)"
