"""Synthetic phantoms: labelled shapes in a noisy body, on a random (possibly oblique) grid.

Used to train the shipped ``phantom`` model, for the demo, and by the tests. Labels:
0 background, 1 ellipsoid (bright), 2 box (dark), 3 tube (medium, a cylinder across the slices).
Every draw is reproducible from its seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["PHANTOM_LABELS", "Phantom", "make_phantom", "random_affine", "rotation_matrix", "write_phantom"]

PHANTOM_LABELS = {0: "background", 1: "ellipsoid", 2: "box", 3: "tube"}


@dataclass
class Phantom:
    """A drawn phantom: its image, its labels (:data:`PHANTOM_LABELS`) and its grid."""

    image: np.ndarray  # float32 (X, Y, Z)
    labels: np.ndarray  # uint8 (X, Y, Z)
    affine: np.ndarray  # 4x4 voxel → RAS mm

    @property
    def missing(self) -> list[str]:
        """The structures a grid too small to draw them lacks (no voxel; below about 16 voxels per axis)."""
        return [name for value, name in PHANTOM_LABELS.items() if value and not bool((self.labels == value).any())]


def rotation_matrix(angles) -> np.ndarray:
    """Rotation by ``angles`` (radians) about x, then y, then z."""
    cx, cy, cz = np.cos(angles)
    sx, sy, sz = np.sin(angles)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def random_affine(rng: np.random.Generator, oblique: bool = True) -> np.ndarray:
    """A random voxel→world affine: axis permutation and flips, optional rotation, spacing 0.7–2.5 mm."""
    perm = rng.permutation(3)
    flips = rng.choice([-1.0, 1.0], size=3)
    base = np.eye(3)[:, perm] * flips
    if oblique:
        base = rotation_matrix(rng.uniform(-0.35, 0.35, size=3)) @ base
    spacing = rng.uniform(0.7, 2.5, size=3)
    affine = np.eye(4)
    affine[:3, :3] = base * spacing[None, :]
    affine[:3, 3] = rng.uniform(-120, 120, size=3)
    return affine


def make_phantom(
    shape: tuple[int, int, int] = (96, 96, 48),
    seed: int = 0,
    affine: np.ndarray | None = None,
    oblique: bool = True,
    noise: float = 0.08,
) -> Phantom:
    """Draw one phantom. Shapes are placed in voxel space so every slicing plane shows them. ``shape``: three
    sizes of at least 1 (:class:`~medseg.errors.InputError` otherwise); :attr:`Phantom.missing` names the structures
    a small grid lacks."""
    from medseg.errors import InputError

    rng = np.random.default_rng(seed)
    if len(tuple(shape)) != 3 or any(int(s) < 1 for s in shape):
        raise InputError(f"phantom shape {tuple(shape)}: give three sizes of 1 or more voxels")
    shape = tuple(int(s) for s in shape)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, s, dtype=np.float32) for s in shape], indexing="ij"))
    labels = np.zeros(shape, dtype=np.uint8)
    image = np.zeros(shape, dtype=np.float32)

    body = ((grid / rng.uniform(0.85, 0.97, size=(3, 1, 1, 1))) ** 2).sum(0) <= 1.0
    image[body] = 1.0

    # the three structures sit in different octants of the body; the tube, drawn last, may notch the ellipsoid or
    # the box (in about 6 % of the seeds at 40³), and labels and intensities agree where it does
    corners = rng.permutation([[-1, -1, 0], [1, 1, 0], [-1, 1, 0], [1, -1, 0]])[:3]
    centres = [np.array(c, dtype=np.float32) * rng.uniform(0.3, 0.42, size=3) for c in corners]
    for c in centres:
        c[2] = rng.uniform(-0.3, 0.3)

    radii = rng.uniform(0.18, 0.28, size=3)
    ellipsoid = (((grid - centres[0][:, None, None, None]) / radii[:, None, None, None]) ** 2).sum(0) <= 1.0
    half = rng.uniform(0.12, 0.22, size=3)
    box = np.all(np.abs(grid - centres[1][:, None, None, None]) <= half[:, None, None, None], axis=0)
    tube_r = rng.uniform(0.1, 0.16)
    tube_axis = int(rng.integers(0, 3))
    others = [a for a in range(3) if a != tube_axis]
    a, b = others
    tube = ((grid[a] - centres[2][a]) ** 2 + (grid[b] - centres[2][b]) ** 2) <= tube_r**2
    tube &= np.abs(grid[tube_axis] - centres[2][tube_axis]) <= rng.uniform(0.3, 0.6)

    for value, mask, level in ((1, ellipsoid, 1.9), (2, box, 0.45), (3, tube, 1.45)):
        mask &= body
        labels[mask] = value
        image[mask] = level * rng.uniform(0.93, 1.07)

    bias = 1.0 + 0.1 * np.tanh(grid[0] * rng.uniform(-1, 1) + grid[1] * rng.uniform(-1, 1))
    image = image * bias + rng.normal(0.0, noise, size=shape).astype(np.float32)
    image = (image * rng.uniform(50, 400) + rng.uniform(-50, 50)).astype(np.float32)
    if affine is None:
        affine = random_affine(rng, oblique=oblique)
    return Phantom(image=image, labels=labels, affine=np.asarray(affine, dtype=np.float64))


def write_phantom(
    image_path: Path | str,
    label_path: Path | str | None = None,
    shape: tuple[int, int, int] = (96, 96, 48),
    seed: int = 0,
    oblique: bool = True,
) -> Phantom:
    """Draw a phantom (:func:`make_phantom`) and write it (and its label) as NIfTI with sform and qform set
    (code 1). A ``shape`` that is not three sizes from 1 is an :class:`~medseg.errors.InputError`."""
    import nibabel as nib

    from medseg.io.nifti_write import save_nifti

    phantom = make_phantom(shape=shape, seed=seed, oblique=oblique)
    for path, array in ((image_path, phantom.image), (label_path, phantom.labels)):
        if path is None:
            continue
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        img = nib.Nifti1Image(array, phantom.affine)
        img.header.set_sform(phantom.affine, code=1)
        img.header.set_qform(phantom.affine, code=1)
        img.header.set_xyzt_units("mm", "sec")
        save_nifti(img, path)
    return phantom
