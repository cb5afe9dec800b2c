"""Slice geometry of a DICOM series: order, spacing, gaps, tilt and the voxel → RAS+ affine.

Everything here works on headers only (no pixel decoding), so ``medseg inspect`` can describe a series
without reading its pixels. DICOM patient coordinates are LPS; the affine returned maps (i, j, k) =
(column, row, slice) indices to RAS+ millimetres, the NIfTI convention.

Policy (also in docs/dicom.md, *Geometry*):

- order: by the projection of ImagePositionPatient on the slice normal (row × column direction), never by
  InstanceNumber or file name;
- slice step: the mean position difference between the first and the last slice, as a vector (so the
  affine is exact also for a tilted gantry); SliceThickness is never used;
- uneven spacing (a step off the median by more than 1 % or 0.01 mm) and missing slices (a step close to a
  whole multiple of the median): refused with the positions named, because any single affine would misplace
  slices;
- gantry tilt (the step has a component inside the slice plane): handled exactly with a sheared affine
  (written in the NIfTI sform; the qform cannot hold a shear) and flagged ``tilt`` with its angle;
- several images at one position (4D, multi-echo left together, repeated acquisitions): refused;
- a single slice: refused (no slice spacing can be derived from positions).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from medseg.numbers import counted

__all__ = ["FrameGeometry", "SeriesGeometry", "GeometryProblem", "series_geometry", "LPS_TO_RAS", "axcodes",
           "ORIENTATION_ATOL"]

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
SPACING_RTOL = 0.01  # a step may differ from the median step by 1 % ...
SPACING_ATOL_MM = 0.01  # ... or 0.01 mm, whichever is larger
TILT_MIN_DEG = 0.01  # below this the in-plane part of the step is taken as rounding noise,
TILT_MIN_DRIFT_MM = 0.05  # and so is an in-plane drift this small over the whole stack (positions to 0.01 mm)
ORIENTATION_ATOL = 1e-4


class GeometryProblem(ValueError):
    """The slices cannot be one regular 3D grid (the message says why); internal to the DICOM reader.

    ``frames`` holds the indices of the frames at fault, when a few can be named (the reader names their files).
    """

    def __init__(self, message: str, frames: tuple[int, ...] = ()):
        super().__init__(message)
        self.frames = frames


@dataclass(frozen=True)
class FrameGeometry:
    """What the geometry needs from one 2D image (a file or one frame of a multi-frame file)."""

    position: tuple[float, float, float] | None  # ImagePositionPatient, LPS mm
    orientation: tuple[float, ...] | None  # ImageOrientationPatient: row direction, then column direction
    pixel_spacing: tuple[float, float] | None  # (between rows, between columns), mm
    rows: int
    columns: int


@dataclass
class SeriesGeometry:
    """A regular grid for a stack of frames."""

    order: list[int]  # frame indices, slice k = frames[order[k]]
    shape: tuple[int, int, int]  # (columns, rows, slices)
    affine: np.ndarray  # voxel (i, j, k) → RAS+ mm
    spacing_mm: tuple[float, float, float]
    tilt_deg: float = 0.0
    flags: list[str] = field(default_factory=list)

    @property
    def orientation(self) -> str:
        return "".join(axcodes(self.affine))

    @property
    def plane(self) -> str:
        return plane_name(self.affine)


def _first_differing(values: list) -> tuple[int, int]:
    """The first frame, and the first whose value differs from it."""
    return 0, next(i for i, value in enumerate(values) if value != values[0])


def _spacing_text(spacing) -> str:
    """A PixelSpacing (between rows, between columns) as ``0.8 × 0.6``."""
    return " × ".join(f"{float(v):g}" for v in spacing)


def series_geometry(frames: Sequence[FrameGeometry]) -> SeriesGeometry:
    """Order ``frames`` into slices and build the affine; raise :class:`GeometryProblem` when they cannot
    form one regular 3D grid."""
    if not frames:
        raise GeometryProblem("no images")
    fields = (("ImagePositionPatient", "position"), ("ImageOrientationPatient", "orientation"),
              ("PixelSpacing", "pixel_spacing"))
    missing = [name for name, attr in fields if any(getattr(f, attr) is None for f in frames)]
    if missing:
        lacking = [i for i, f in enumerate(frames) if any(getattr(f, attr) is None for _, attr in fields)]
        some = "images" if len(lacking) == len(frames) else f"{len(lacking)} of {len(frames)} images"
        raise GeometryProblem(f"{some} without {', '.join(missing)}: no patient geometry", frames=tuple(lacking[:2]))
    sizes = [(f.rows, f.columns) for f in frames]
    if len(set(sizes)) > 1:
        raise GeometryProblem(f"images of different sizes {sorted(set(sizes))}", frames=_first_differing(sizes))
    rows, columns = frames[0].rows, frames[0].columns
    orientations = np.array([f.orientation for f in frames], dtype=np.float64)
    if np.abs(orientations - orientations[0]).max() > ORIENTATION_ATOL:
        differing = np.abs(orientations - orientations[0]).max(axis=1) > ORIENTATION_ATOL
        raise GeometryProblem("images with different orientations", frames=(0, int(np.argmax(differing))))
    spacings = np.array([f.pixel_spacing for f in frames], dtype=np.float64)
    if np.any(spacings <= 0):
        bad = int(np.argmax(np.any(spacings <= 0, axis=1)))
        raise GeometryProblem(f"PixelSpacing {[float(v) for v in spacings[bad]]} is not positive: no patient geometry",
                              frames=(bad,))
    if np.abs(spacings - spacings[0]).max() > 1e-4:
        # name the images off the most common spacing (the first file may be the odd one)
        values, counts = np.unique(np.round(spacings, 4), axis=0, return_counts=True)
        common = values[int(np.argmax(counts))]
        odd = np.abs(spacings - common).max(axis=1) > 1e-4
        first = int(np.argmax(odd))
        others = len(np.unique(np.round(spacings[odd], 4), axis=0))  # spacings besides the common one
        at = (f"at {_spacing_text(spacings[first])} mm (the others {_spacing_text(common)} mm)" if others == 1 else
              f"off the most common {_spacing_text(common)} mm, at {others} other spacings (the first at "
              f"{_spacing_text(spacings[first])} mm)")
        raise GeometryProblem(f"images with different pixel spacings: {int(odd.sum())} of {len(frames)} {at}; "
                              "the first such file", frames=(first,))
    row_dir, col_dir = _unit(orientations[0][:3]), _unit(orientations[0][3:])
    if abs(float(row_dir @ col_dir)) > 1e-3:
        raise GeometryProblem("ImageOrientationPatient row and column directions are not orthogonal")
    normal = np.cross(row_dir, col_dir)
    positions = np.array([f.position for f in frames], dtype=np.float64)
    distance = positions @ normal
    order = sorted(range(len(frames)), key=lambda index: distance[index])
    positions, distance = positions[order], distance[order]
    n = len(frames)
    if n == 1:
        raise GeometryProblem("a single slice: no slice spacing can be derived from positions")
    steps = np.diff(distance)
    span = float(distance[-1] - distance[0])
    duplicate_tol = max(1e-3, 1e-4 * span)
    if np.any(steps <= duplicate_tol):
        unique = 1 + int(np.count_nonzero(steps > duplicate_tol))
        if n % unique == 0 and unique > 1:
            raise GeometryProblem(f"{n} images at {unique} positions ({n // unique} per position): a 4D series "
                                  "(time points, echoes or repeats), not one 3D volume")
        k = int(np.flatnonzero(steps <= duplicate_tol)[0])
        raise GeometryProblem(f"{counted(n - unique, 'image')} {'repeats' if n - unique == 1 else 'repeat'} a slice "
                              "position already taken "
                              f"(first at {distance[k]:.3f} mm along the normal)", frames=(order[k], order[k + 1]))
    median = float(np.median(steps))
    tol = max(SPACING_ATOL_MM, SPACING_RTOL * median)
    off = np.flatnonzero(np.abs(steps - median) > tol)
    if off.size:
        k = int(off[0])
        where = f"between slices {k} and {k + 1} (positions {distance[k]:.3f} and {distance[k + 1]:.3f} mm)"
        either_side = (order[k], order[k + 1])  # the images either side of the first odd step, named by the reader
        ratio = steps / median
        gaps = [int(i) for i in off if ratio[i] > 1.5 and abs(ratio[i] - round(ratio[i])) * median <= tol]
        if len(gaps) == off.size:
            missing_count = int(sum(round(ratio[i]) - 1 for i in gaps))
            raise GeometryProblem(f"missing slices: a step of {steps[k]:.3f} mm {where} where the others are "
                                  f"{median:.3f} mm ({counted(missing_count, 'slice')} missing in "
                                  f"{counted(len(gaps), 'gap')})",
                                  frames=either_side)
        raise GeometryProblem(f"uneven slice spacing: steps from {steps.min():.3f} to {steps.max():.3f} mm, "
                              f"first off-median step {steps[k]:.3f} mm {where}", frames=either_side)
    step_vec = (positions[-1] - positions[0]) / (n - 1)
    predicted = positions[0] + np.arange(n)[:, None] * step_vec
    off_line = np.abs(positions - predicted).max(axis=1)
    residual = float(off_line.max())
    if residual > tol:
        raise GeometryProblem(f"slice positions do not lie on one line: a slice is {residual:.3f} mm off "
                              "(varying tilt or table shifts)", frames=(order[int(np.argmax(off_line))],))
    along = float(step_vec @ normal)
    inplane = float(np.linalg.norm(step_vec - along * normal))
    tilt_deg = math.degrees(math.atan2(inplane, along))
    flags: list[str] = []
    if tilt_deg > TILT_MIN_DEG and inplane * (n - 1) > TILT_MIN_DRIFT_MM:
        flags.append("tilt")
    else:  # rounding noise in the positions: the stack runs along the normal (a sheared affine is not a grid
        tilt_deg = 0.0  # that ITK-based tools read, and its qform would be dropped)
        step_vec = along * normal
    row_spacing, col_spacing = float(spacings[0][0]), float(spacings[0][1])
    lps = np.eye(4)
    lps[:3, 0] = row_dir * col_spacing  # i runs along a row: next column
    lps[:3, 1] = col_dir * row_spacing  # j runs down a column: next row
    lps[:3, 2] = step_vec
    lps[:3, 3] = positions[0]
    affine = LPS_TO_RAS @ lps
    spacing = (col_spacing, row_spacing, float(np.linalg.norm(step_vec)))
    return SeriesGeometry(order=order, shape=(columns, rows, n), affine=affine, spacing_mm=spacing,
                          tilt_deg=round(tilt_deg, 4), flags=flags)


def axcodes(affine: np.ndarray) -> tuple[str, str, str]:
    """RAS+ axis codes of an affine's voxel axes, e.g. ('L', 'P', 'S') for a plain DICOM axial stack."""
    import nibabel as nib

    return tuple(str(c) for c in nib.aff2axcodes(affine))


def plane_name(affine: np.ndarray) -> str:
    """'axial', 'coronal', 'sagittal' or 'oblique', from the direction of the slice normal."""
    normal = np.cross(affine[:3, 0], affine[:3, 1])
    normal = np.abs(normal / np.linalg.norm(normal))
    axis = int(np.argmax(normal))
    if normal[axis] < math.cos(math.radians(1.0)):
        return "oblique"
    return ("sagittal", "coronal", "axial")[axis]


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    if norm < 1e-6:
        raise GeometryProblem("ImageOrientationPatient has a zero direction")
    return np.asarray(vector, dtype=np.float64) / norm
