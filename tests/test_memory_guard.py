"""The memory guard's model-space shape, computed in numpy before torch is imported, held to MONAI's own."""

import subprocess
import sys

import numpy as np
import pytest

from medseg.memory_guard import grid_model_shape


def _monai_shape(shape, affine, pre):
    """The model-space shape MONAI's own functions give a grid (those its Spacing transform calls), after the
    orientation (nibabel's, as the guard turns the grid)."""
    from monai.data.utils import AFFINE_TOL, affine_to_spacing, compute_shape_offset, zoom_affine

    turned_shape = grid_model_shape(shape, affine, {"orientation": pre["orientation"]})
    turned = affine
    if pre["orientation"]:
        import nibabel as nib

        target = nib.orientations.axcodes2ornt(tuple(pre["orientation"]), labels=(("L", "R"), ("P", "A"), ("I", "S")))
        turn = nib.orientations.ornt_transform(nib.io_orientation(affine), target)
        turned = affine @ nib.orientations.inv_ornt_aff(turn, shape)
    wanted = np.array([float(v) for v in pre["spacing_mm"]])
    original = affine_to_spacing(turned, 3, np.float64)
    wanted = np.where(np.abs(original - wanted) <= AFFINE_TOL, original, wanted)
    out, _ = compute_shape_offset(turned_shape, turned, zoom_affine(turned, wanted, diagonal=False), scale_extent=False)
    return tuple(int(n) for n in out)


def _grids(count: int, seed: int):
    """Seeded grids: rotated, flipped, anisotropic, a few sheared, with a translation; shapes of 1 to 40 voxels."""
    rng = np.random.default_rng(seed)
    for index in range(count):
        rotation, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        spacing = rng.choice([0.4, 0.7, 1.0, 1.0005, 2.5, 4.8], size=3)
        linear = rotation @ np.diag(spacing * rng.choice([-1.0, 1.0], size=3))
        if index % 4 == 3:  # a sheared grid
            linear = linear @ np.array([[1.0, 0.2, 0.0], [0.0, 1.0, 0.1], [0.0, 0.0, 1.0]])
        affine = np.eye(4)
        affine[:3, :3], affine[:3, 3] = linear, rng.normal(scale=50, size=3)
        yield tuple(int(n) for n in rng.integers(1, 40, size=3)), affine


@pytest.mark.parametrize("pre", [
    {"orientation": "RAS", "spacing_mm": [1.0, 1.0, 1.0]},
    {"orientation": "LPS", "spacing_mm": [0.8, 1.0, 3.0]},
    {"orientation": None, "spacing_mm": [1.5, 0.0, 1.0]},  # 0: the axis' spacing kept
    {"orientation": "RAS", "spacing_mm": [1.0, 1.0, 1.0005]},  # within MONAI's tolerance of a 1 mm axis: kept
])
def test_the_model_space_shape_is_monais_to_the_voxel(pre):
    for shape, affine in _grids(40, seed=3):
        assert grid_model_shape(shape, affine, pre) == _monai_shape(shape, affine, pre), (shape, affine.tolist())


def test_the_guard_on_a_header_imports_neither_torch_nor_monai(tmp_path):
    """An input is read, and its header's grid charged against memory, before the network loads: the guard's
    model-space shape needs no MONAI (its import is torch's: over 2 CPU-s for an input that then cannot be read)."""
    code = ("import sys\nimport numpy as np\nfrom medseg.memory_guard import check_grid_size, grid_memory\n"
            "pre = {'orientation': 'RAS', 'spacing_mm': [1.0, 1.0, 1.0]}\n"
            "check_grid_size('ct.nii.gz', (512, 512, 300), np.diag([0.7, 0.7, 2.5, 1.0]), pre)\n"
            "print(grid_memory((512, 512, 300), np.diag([0.7, 0.7, 2.5, 1.0]), pre)[1])\n"
            "print([name for name in ('torch', 'monai') if name in sys.modules])\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.splitlines() == ["(359, 359, 748)", "[]"], result.stderr
