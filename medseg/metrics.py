"""Per-case, per-label overlap, surface distance and volume metrics.

Empty-mask policy (applied everywhere, and stated in reports; see :data:`EMPTY_MASK_POLICY`):

* reference and prediction both empty: Dice, HD95 and ASSD are NaN (undefined, written as JSON ``null``),
  status ``both_empty``;
* reference empty, prediction not: Dice 0, distances NaN, status ``false_positive``;
* prediction empty, reference not: Dice 0, distances NaN, status ``empty_prediction``;
* otherwise Dice (2·|P∩R| / (|P| + |R|) from exact voxel counts), HD95 and ASSD (MONAI's surface distances),
  status ``ok``.

Surfaces and distances (see :data:`SURFACE_DEFINITION`): a mask's surface is its foreground voxels with a
6-neighbour outside it (voxels on the volume's faces count as surface; an image one voxel thick along one axis
is scored in 2D, its surface being the contour with a 4-neighbour outside it); distances are between voxel
centres in mm, with the voxel size along each array axis taken from the affine's column norms (right for
oblique grids); on a sheared grid (a tilted CT gantry) they are measured between the voxel centres' world
positions instead, since per-axis voxel sizes would misstate them. HD95 is the larger
of the two directed 95th percentiles; ASSD is the mean of both directions' distances pooled. Volumes are
in ml: voxel count × the voxel's volume (:meth:`Volume.voxel_volume_ml`: the product of the voxel sizes as the
header holds them on a grid whose axes are at right angles, |det(affine)| on a sheared one) / 1000.

Prediction and reference must share a grid: same shape, and no voxel centre placed further apart by the two
affines than :func:`grid_tolerance_mm` (``GRID_TOLERANCE_MM``, or ``GRID_TOLERANCE_VOXELS`` of the smallest voxel
size when that is less: on a 5 µm grid 0.01 mm is two voxels); otherwise :class:`~medseg.errors.GeometryError`
and nothing is scored. A reference that holds the same voxel centres in another order (axes swapped or reversed, as
between two DICOM converters) is first re-indexed onto the prediction's grid, which moves no voxel and
interpolates nothing (:func:`reorder_onto_grid`); the record says so. A reference that is a box of the prediction's
voxel lattice (3D Slicer saves a segmentation cropped to its segments) is zero-padded onto it, cropped to the grid
where it reaches past it with label 0 in every voxel out there (refused where any is labelled)
(:func:`place_onto_grid`, :func:`sub_box_placement`); the record gives the box (``reference_sub_box``).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import os
from collections.abc import Mapping

import numpy as np

from medseg.errors import GeometryError, InputError
from medseg.volume import Volume, bottom_row_text, header_precision, singular_affine_text, volume_ml

__all__ = [
    "EMPTY_MASK_POLICY",
    "GRID_TOLERANCE_MM",
    "GRID_TOLERANCE_VOXELS",
    "METRICS_SCHEMA",
    "METRIC_KEYS",
    "SURFACE_DEFINITION",
    "both_empty_entry",
    "box_on_grid",
    "check_header_shape",
    "check_same_grid",
    "evaluate_volumes",
    "grid_displacement_mm",
    "grid_offset_mm",
    "grid_reordering",
    "grid_tolerance_mm",
    "jsonable",
    "metrics_json",
    "on_tilt_grid",
    "place_onto_grid",
    "reorder_onto_grid",
    "sub_box_placement",
]

log = logging.getLogger(__name__)

METRICS_SCHEMA = "medseg-metrics/1"
GRID_TOLERANCE_MM = 0.01
GRID_TOLERANCE_VOXELS = 0.1  # of the smallest voxel size, when that is the stricter bound
METRIC_KEYS = ("dice", "hd95_mm", "assd_mm", "pred_volume_ml", "ref_volume_ml", "false_positive_ml",
               "false_negative_ml")

EMPTY_MASK_POLICY = (
    "Both prediction and reference empty: Dice, HD95 and ASSD undefined (null), status both_empty, left out of "
    "their statistics (the volumes, 0 ml, count in the volume statistics). Reference empty but prediction not: "
    "Dice 0, distances undefined, status false_positive. Prediction empty but reference not: Dice 0, distances "
    "undefined, status empty_prediction."
)
SURFACE_DEFINITION = (
    "Surface: foreground voxels with a 6-neighbour outside the mask (voxels on the volume's faces count; an image "
    "one voxel thick along an axis is scored in 2D: its contour, pixels with a 4-neighbour outside). "
    "Distances between voxel centres in mm (voxel size from the affine's column norms; on a sheared grid, between "
    "the voxel centres' world positions). HD95: the larger of the "
    "two directed 95th percentiles of surface distances. ASSD: mean of the surface distances of both directions "
    "pooled. Volumes in ml."
)


def grid_displacement_mm(shape: tuple[int, ...], affine_a: np.ndarray, affine_b: np.ndarray) -> float:
    """Largest distance in mm between where the two affines place the same voxel centre of a grid of ``shape``.

    The displacement is affine in the voxel index, so its maximum over the grid is reached at a corner.
    """
    corners = np.array(np.meshgrid(*[[0, max(int(n) - 1, 0)] for n in shape[:3]], indexing="ij")).reshape(3, -1)
    corners = np.vstack([corners, np.ones(corners.shape[1])])
    moved = (np.asarray(affine_a, dtype=np.float64) - np.asarray(affine_b, dtype=np.float64)) @ corners
    return float(np.max(np.linalg.norm(moved[:3], axis=0)))


def grid_tolerance_mm(affine: np.ndarray) -> float:
    """How far (mm) two affines may place a voxel centre apart and still be one grid: ``GRID_TOLERANCE_MM``, or
    ``GRID_TOLERANCE_VOXELS`` of the grid's smallest voxel size when that is less (a fixed 0.01 mm would pass a
    grid shifted by two 5 µm voxels, and score it index by index)."""
    sizes = np.linalg.norm(np.asarray(affine, dtype=np.float64)[:3, :3], axis=0)
    sizes = sizes[np.isfinite(sizes) & (sizes > 0)]
    return float(min(GRID_TOLERANCE_MM, GRID_TOLERANCE_VOXELS * sizes.min())) if sizes.size else GRID_TOLERANCE_MM


def check_same_grid(a: Volume, b: Volume, tolerance_mm: float | None = None, outcome: str = "not scored") -> None:
    """Raise :class:`GeometryError` naming ``b`` unless ``a`` and ``b`` have the same shape and (nearly) the same
    affine (within ``tolerance_mm``, by default :func:`grid_tolerance_mm` of ``a``'s grid); the message ends with
    ``outcome``, what the caller then does not do."""
    if tolerance_mm is None:
        tolerance_mm = grid_tolerance_mm(a.affine)
    if a.shape != b.shape:
        reordered = _reordering(b.shape, b.affine, a.shape, a.affine)
        if reordered is not None:  # the same grid in another voxel order, but moved: the move is the problem
            raise GeometryError(
                f"{b.source}: its voxels are {a.source}'s grid in another axis order (shape {b.shape} against "
                f"{a.shape}), but placed up to {reordered[2]:.4g} mm away from where {a.source}'s are (tolerance "
                f"{tolerance_mm:.4g} mm); resample one onto the other's grid first; {outcome}")
        raise GeometryError(_shape_refusal(b.source, b.shape, b.affine, a.source, a.shape, a.affine, tolerance_mm,
                                           outcome))
    shift = grid_displacement_mm(a.shape, a.affine, b.affine)
    if not shift <= tolerance_mm:
        raise GeometryError(
            f"{b.source}: its affine places voxels up to {shift:.4g} mm away from where {a.source}'s does "
            f"(tolerance {tolerance_mm:.4g} mm); resample one onto the other's grid first; {outcome}"
        )


OVERHANG_VOXELS_FACTOR = 2
"""A reference box reaching past the prediction's grid is read (to tell whether its voxels out there are all 0) where
it holds at most this many times the grid's voxels (a margin of a quarter of the grid along each axis); a larger one
is refused from its header, its read charged nowhere."""

def check_header_shape(source, shape: tuple[int, ...], path, outcome: str = "not scored",
                       affine: np.ndarray | None = None) -> None:
    """:func:`check_same_grid`'s shape test of a label file against ``source``'s ``shape``, from the file's header,
    before its voxels are read: a reference declaring 1024³ voxels was read whole (tens of seconds, GBs of memory)
    to be refused as "shape … differs". A shape that is ``shape`` in another axis order passes (the reference may
    be re-indexed), as does a box of ``source``'s grid where ``affine`` (``source``'s) is given and the header places
    the box on its lattice (:func:`sub_box_placement`: it is zero-padded onto the grid; one reaching past the grid is
    cropped to it where its voxels there are all 0, which :func:`place_onto_grid` tells from them), a DICOM file, a
    folder, a header that cannot be read or a shape that is not one 3D volume (reading it names the problem)."""
    from pathlib import Path

    from medseg.errors import MedsegError
    from medseg.io.files import is_dicom_file
    from medseg.io.images import read_grid

    try:
        if not Path(path).is_file() or is_dicom_file(path):
            return
        declared, declared_affine = read_grid(path)
        declared = tuple(declared)
    except (MedsegError, OSError, ValueError):
        return
    if len(declared) != 3 or len(shape) != 3:  # not one volume (a 4D file of 2 time points): reading it says so
        return
    if sorted(declared) == sorted(tuple(shape)):
        return
    if affine is None:
        raise GeometryError(f"{path}: shape {declared} differs from {source}'s {tuple(shape)}; {outcome}")
    placed = sub_box_placement(declared, declared_affine, tuple(shape), affine, beyond=True)
    if isinstance(placed, tuple) and math.prod(declared) <= OVERHANG_VOXELS_FACTOR * math.prod(shape):
        return  # a box of the grid; one reaching past it is cropped where its voxels there are all 0 (read to tell)
    if isinstance(placed, tuple):  # past the grid and far larger than it: reading it whole is charged nowhere
        reach = sub_box_placement(declared, declared_affine, tuple(shape), affine)
        raise GeometryError(
            f"{path}: shape {declared} differs from {source}'s {tuple(shape)}: on its voxel lattice, but {reach}, "
            f"holding more than {OVERHANG_VOXELS_FACTOR} times that grid's voxels ({math.prod(declared)} against "
            f"{math.prod(shape)}): not read; {outcome}")
    raise GeometryError(_shape_refusal(path, declared, declared_affine, source, tuple(shape), affine,
                                       grid_tolerance_mm(affine), outcome))


def grid_reordering(shape: tuple[int, ...], affine: np.ndarray, target_shape: tuple[int, ...],
                    target_affine: np.ndarray, tolerance_mm: float | None = None
                    ) -> tuple[list[int], list[bool]] | None:
    """How a grid is re-indexed onto ``target``'s when both hold the same voxel centres in another order.

    Returns ``(axes, flips)``: target axis ``t`` is the grid's axis ``axes[t]``, reversed when ``flips[t]``
    (``numpy.transpose(array, axes)``, then a flip of those axes); ``None`` when the grids are not such a
    reordering of each other (other spacing, extent or position, a rotation that is not a reordering). The
    index change ``inv(affine) @ target_affine`` must round to a signed permutation, and the re-indexed
    grid must then place every voxel within ``tolerance_mm`` of the target's (default :func:`grid_tolerance_mm`).
    """
    if tolerance_mm is None:
        tolerance_mm = grid_tolerance_mm(target_affine)
    found = _reordering(shape, affine, target_shape, target_affine)
    if found is None or not found[2] <= tolerance_mm:
        return None
    return found[0], found[1]


def grid_offset_mm(shape: tuple[int, ...], affine: np.ndarray, target_shape: tuple[int, ...],
                   target_affine: np.ndarray) -> float | None:
    """How far (mm) a grid's voxel centres lie from ``target``'s, the grid re-indexed onto the target's where it
    holds the same voxels in another order; None where neither the shapes nor a re-indexing match (another shape)."""
    found = _reordering(shape, affine, target_shape, target_affine)
    if found is not None:
        return found[2]
    if tuple(int(n) for n in shape) != tuple(int(n) for n in target_shape):
        return None
    return grid_displacement_mm(target_shape, target_affine, affine)


def _index_map(affine: np.ndarray, target_affine: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The 4×4 change from a grid's voxel index to ``target_affine``'s, and its 3×3 part rounded, where that part is
    a signed permutation (the same voxel axes and sizes, in another order or direction) to within 1e-3; else None."""
    with np.errstate(all="ignore"):
        try:
            change = np.linalg.inv(np.asarray(target_affine, np.float64)) @ np.asarray(affine, np.float64)
        except np.linalg.LinAlgError:
            return None
    if change.shape != (4, 4) or not np.all(np.isfinite(change)):
        return None
    signed = np.rint(change[:3, :3])
    if np.abs(change[:3, :3] - signed).max() > 1e-3 or not np.all(np.abs(signed).sum(axis=0) == 1) \
            or not np.all(np.abs(signed).sum(axis=1) == 1):
        return None
    return change, signed


def _reordering(shape: tuple[int, ...], affine: np.ndarray, target_shape: tuple[int, ...],
                target_affine: np.ndarray) -> tuple[list[int], list[bool], float] | None:
    """:func:`grid_reordering`'s axes and flips with the distance (mm) by which the re-indexed grid misses the
    target's, whatever it is; ``None`` when the index change is no signed permutation matching the shapes."""
    if len(shape) != 3 or len(target_shape) != 3:
        return None
    shape, target_shape = tuple(int(n) for n in shape), tuple(int(n) for n in target_shape)
    found = _index_map(target_affine, affine)  # the target's voxel index -> the grid's
    if found is None:
        return None
    signed = found[1]
    axes = [int(np.flatnonzero(signed[:, t])[0]) for t in range(3)]
    if sorted(axes) != [0, 1, 2] or tuple(shape[a] for a in axes) != target_shape:
        return None
    flips = [bool(signed[axes[t], t] < 0) for t in range(3)]
    index_change = np.eye(4)  # re-indexed voxel index -> the grid's voxel index
    index_change[:3, :3] = signed
    for t in range(3):
        if flips[t]:
            index_change[axes[t], 3] = shape[axes[t]] - 1
    return axes, flips, grid_displacement_mm(target_shape, np.asarray(affine, np.float64) @ index_change, target_affine)


def reorder_onto_grid(volume: Volume, target: Volume, tolerance_mm: float | None = None) -> Volume:
    """``volume`` re-indexed onto ``target``'s grid when that grid holds the same voxel centres in another order
    (or taken as ``target``'s voxels where it lies on the unsheared grid ITK reads a tilted ``target`` on:
    ``info["tilt_grid"]``, :func:`_on_tilt_grid`).

    Converters disagree on voxel order (dcm2niix reverses the rows of a DICOM series that medseg keeps), so
    the same label image can come on a grid whose axes are swapped or reversed; the array is then transposed
    and flipped (:func:`grid_reordering`): no voxel moves in space, nothing is interpolated. Anything else
    returns ``volume`` unchanged, for :func:`check_same_grid` to refuse.
    """
    if tolerance_mm is None:
        tolerance_mm = grid_tolerance_mm(target.affine)
    if volume.array.ndim != 3 or (volume.shape == target.shape and (
            grid_displacement_mm(target.shape, volume.affine, target.affine) <= tolerance_mm)):
        return volume
    if _on_tilt_grid(volume, target, tolerance_mm):
        log.info("%s: on the unsheared grid ITK reads the tilted %s on; its voxels taken as %s's", volume.source,
                 target.source, target.source)
        return Volume(volume.array, target.affine.copy(), source=volume.source, source_sha256=volume.source_sha256,
                      info={**volume.info, "tilt_grid": True})
    found = grid_reordering(volume.shape, volume.affine, target.shape, target.affine, tolerance_mm)
    if found is None:
        return volume
    axes, flips = found
    array = np.transpose(volume.array, axes)
    if any(flips):
        array = np.flip(array, axis=[t for t in range(3) if flips[t]])
    log.info("%s: voxels re-indexed onto %s's grid (axes %s, reversed %s); nothing resampled", volume.source,
             target.source, axes, flips)
    return Volume(np.ascontiguousarray(array), target.affine.copy(), source=volume.source,
                  source_sha256=volume.source_sha256, info={**volume.info, "reordered": True})


AXIS_NAMES = ("i", "j", "k")


def sub_box_placement(shape: tuple[int, ...], affine: np.ndarray, target_shape: tuple[int, ...],
                      target_affine: np.ndarray, tolerance_mm: float | None = None, *, beyond: bool = False
                      ) -> tuple[list[int], list[bool], list[int]] | str | None:
    """Where a grid lies in ``target``'s when it is a box of the target's voxel lattice (3D Slicer saves a
    segmentation cropped to its segments: the image's voxels, spacing and axes, the origin moved by whole voxels).

    Returns ``(axes, flips, start)``: the grid re-indexed as :func:`grid_reordering` says (target axis ``t`` is the
    grid's axis ``axes[t]``, reversed when ``flips[t]``) is the target's voxels ``start[t]`` to
    ``start[t] + shape[axes[t]] - 1`` along each target axis, every voxel centre within ``tolerance_mm`` (default
    :func:`grid_tolerance_mm` of the target's) of the target's. Where its voxel axes and sizes are the target's but
    it is no such box, returns what keeps it from being one, to follow "on the target's voxel lattice, but"
    ("its first voxel at 3.5 along i (not a whole number of voxels)", "extends 4 voxels beyond its last k"; axes named
    as the target's voxel axes i, j, k); ``None`` where they are not (other voxel sizes or axes).
    ``beyond=True`` also places a box that reaches past the target's grid (``start`` may then be negative, or a box
    end past the grid's): whether its voxels out there are all 0, which only its voxels tell, decides whether it is
    cropped to the grid (:func:`place_onto_grid`).
    """
    if len(shape) != 3 or len(target_shape) != 3:
        return None
    if tolerance_mm is None:
        tolerance_mm = grid_tolerance_mm(target_affine)
    shape, target_shape = tuple(int(n) for n in shape), tuple(int(n) for n in target_shape)
    found = _index_map(affine, target_affine)  # the grid's voxel index -> the target's
    if found is None:
        return None
    change, signed = found
    axes = [int(np.flatnonzero(signed[t])[0]) for t in range(3)]
    flips = [bool(signed[t, axes[t]] < 0) for t in range(3)]
    offset = change[:3, 3]
    whole = np.rint(offset)
    placed = np.eye(4)
    placed[:3, :3] = signed
    placed[:3, 3] = whole
    shift = grid_displacement_mm(shape, np.asarray(target_affine, np.float64) @ placed, affine)
    sizes = np.linalg.norm(np.asarray(target_affine, np.float64)[:3, :3], axis=0)
    extent = [shape[axes[t]] for t in range(3)]
    if not shift <= tolerance_mm:
        off = [t for t in range(3) if abs(offset[t] - whole[t]) * sizes[t] > tolerance_mm]
        if not off:
            return f"its voxels lie up to {shift:.4g} mm off its voxel centres (tolerance {tolerance_mm:.4g} mm)"
        starts = [offset[t] - (extent[t] - 1 if flips[t] else 0) for t in off]
        return ", ".join(
            f"its first voxel at {start:.4g} along {AXIS_NAMES[t]}" for t, start in zip(off, starts)
        ) + " (not a whole number of voxels)"
    start = [int(whole[t]) - (extent[t] - 1 if flips[t] else 0) for t in range(3)]
    if beyond:
        return axes, flips, start
    beyond = []
    for t in range(3):
        before, after = -start[t], start[t] + extent[t] - target_shape[t]
        if before > 0:
            beyond.append(f"{before} voxel{'s' if before != 1 else ''} before its first {AXIS_NAMES[t]}")
        if after > 0:
            beyond.append(f"{after} voxel{'s' if after != 1 else ''} beyond its last {AXIS_NAMES[t]}")
    if beyond:
        return f"extends {' and '.join(beyond)}"
    return axes, flips, start


def _shape_refusal(source, shape, affine, target_source, target_shape, target_affine, tolerance_mm: float,
                   outcome: str) -> str:
    """The one line refusing a grid of another shape than the target's: what differs, where it is on the target's
    lattice (:func:`sub_box_placement`)."""
    shape, target_shape = tuple(int(n) for n in shape), tuple(int(n) for n in target_shape)
    found = sub_box_placement(shape, affine, target_shape, target_affine, tolerance_mm)
    head = f"{source}: shape {shape} differs from {target_source}'s {target_shape}"
    if isinstance(found, str):
        return f"{head}: on its voxel lattice, but {found}; resample one onto the other's grid first; {outcome}"
    if found is None:
        mine, theirs = (np.linalg.norm(np.asarray(a, np.float64)[:3, :3], axis=0) for a in (affine, target_affine))
        if np.allclose(np.sort(mine), np.sort(theirs), rtol=1e-3):
            return f"{head}, on other voxel axes; {outcome}"
        sizes = ", ".join(f"{s:.4g}" for s in mine)
        target_sizes = ", ".join(f"{s:.4g}" for s in theirs)
        return f"{head}, with voxels of ({sizes}) mm against ({target_sizes}) mm; {outcome}"
    return f"{head}; {outcome}"


def box_on_grid(start, box_shape: tuple[int, ...], grid_shape: tuple[int, ...]
                ) -> tuple[tuple[slice, ...], tuple[slice, ...]]:
    """The part of a box whose first voxel is at index ``start`` of a grid (negative where the box starts before it)
    that lies on the grid: ``(part, region)``, the slices of the box's array and of the grid's voxels it covers
    (empty where the box misses the grid)."""
    low = [max(0, -int(s)) for s in start]
    high = [max(lo, min(int(n), int(g) - int(s))) for lo, n, g, s in zip(low, box_shape, grid_shape, start)]
    part = tuple(slice(lo, hi) for lo, hi in zip(low, high))
    region = tuple(slice(int(s) + lo, int(s) + hi) for s, lo, hi in zip(start, low, high))
    return part, region


def place_onto_grid(volume: Volume, target: Volume, tolerance_mm: float | None = None, *,
                    log_box: bool = True, outcome: str = "not scored") -> Volume:
    """``volume`` on ``target``'s grid without resampling: re-indexed (:func:`reorder_onto_grid`), or, where it is a
    box of ``target``'s voxel lattice (:func:`sub_box_placement`; a 3D Slicer segmentation cropped to its segments),
    zero-padded to it (label 0 outside the box, in the smallest unsigned integer type holding its labels;
    ``info["sub_box"]`` gives the box's shape and its first voxel's index on ``target``'s grid). A box reaching past
    ``target``'s grid is cropped to it where every voxel out there is 0 (``info["sub_box"]["voxels_outside_grid"]``
    counts them), and refused as a :class:`~medseg.errors.GeometryError` ending in ``outcome`` where any is labelled.
    Anything else returns ``volume`` as it came, for :func:`check_same_grid` to refuse.
    ``log_box=False`` leaves the padding unlogged, for a caller that tells of many cases' boxes in one line
    (training)."""
    moved = reorder_onto_grid(volume, target, tolerance_mm)
    if moved is not volume or volume.array.ndim != 3 or volume.shape == target.shape:
        return moved
    found = sub_box_placement(volume.shape, volume.affine, target.shape, target.affine, tolerance_mm, beyond=True)
    if not isinstance(found, tuple):
        return volume
    axes, flips, start = found
    array = np.transpose(np.asarray(volume.array), axes)
    if any(flips):
        array = np.flip(array, axis=[t for t in range(3) if flips[t]])
    grid = tuple(int(n) for n in target.shape[:3])
    part, region = box_on_grid(start, array.shape, grid)
    inside = array[part]
    outside = array.size - inside.size
    if outside:  # a box reaching past the grid: its voxels out there must all be 0, or nothing there could be scored
        labelled = int(np.count_nonzero(array)) - int(np.count_nonzero(inside))
        if labelled:
            reach = sub_box_placement(volume.shape, volume.affine, target.shape, target.affine, tolerance_mm)
            head = f"{volume.source}: shape {tuple(volume.shape)} differs from {target.source}'s {grid}"
            raise GeometryError(f"{head}: on its voxel lattice, but {reach}, and {labelled} of its labelled voxels "
                                f"{'lie' if labelled != 1 else 'lies'} there, outside the grid; {outcome}")
        array = inside
    dtype = _padding_type(array)
    padded = np.zeros(grid, dtype=dtype)
    padded[region] = array
    if dtype != array.dtype and not np.array_equal(padded[region], array):  # not whole label values after all
        padded = np.zeros(grid, dtype=array.dtype)
        padded[region] = array
    box = {"shape": [int(n) for n in volume.shape], "offset_voxels": [int(s) for s in start]}
    if outside:
        box["voxels_outside_grid"] = int(outside)
    if log_box:
        log.info("%s: a box of %s's grid (shape %s, first voxel at %s%s); zero-padded onto it, nothing resampled",
                 volume.source, target.source, volume.shape, tuple(start),
                 f"; its {outside} voxels outside the grid, all 0, cropped off" if outside else "")
    info = {**volume.info, "sub_box": box}
    if axes != [0, 1, 2] or any(flips):
        info["reordered"] = True
    return Volume(padded, target.affine.copy(), source=volume.source, source_sha256=volume.source_sha256, info=info)


def _padding_type(array: np.ndarray) -> np.dtype:
    """The type a box of label values is zero-padded in: the smallest unsigned integer holding its largest value
    where its type is wider (a caller's float64 box of 0.4 MB padded as float64 onto 512×512×600 voxels took 1.26 GB
    where uint8 takes 157 MB); its own type where it holds negative, non-finite or no values."""
    if array.dtype.kind not in "fiu" or not array.size:
        return array.dtype
    low, high = array.min(), array.max()
    if not (np.isfinite(low) and np.isfinite(high)) or low < 0 or high > np.iinfo(np.uint64).max:
        return array.dtype
    narrow = np.min_scalar_type(int(high))
    return narrow if array.dtype.kind == "f" or narrow.itemsize < array.dtype.itemsize else array.dtype


TILT_GRID_NOTE = ("on the unsheared grid ITK-based tools (ITK-SNAP, 3D Slicer) read a gantry-tilted series on, "
                  "slices stacked along their normal: the same voxels as the segmentation's, which keeps the tilt's "
                  "exact placement, and scored on it")


def _on_tilt_grid(volume: Volume, target: Volume, tolerance_mm: float) -> bool:
    """Whether ``volume`` holds ``target``'s voxels, ``target`` being a gantry-tilted series' grid (sheared) and
    ``volume`` on the grid ITK reads such a series on (:func:`~medseg.io.nifti.qform_for`): a label drawn in
    ITK-SNAP over a tilted series, or over medseg's NIfTI of it (whose qform is that grid), is saved so. Its voxels
    are the series' pixels, only placed without the tilt."""
    return volume.array.ndim == 3 and on_tilt_grid(volume.shape, volume.affine, target.shape, target.affine,
                                                   tolerance_mm)


def on_tilt_grid(shape: tuple[int, ...], affine: np.ndarray, target_shape: tuple[int, ...],
                 target_affine: np.ndarray, tolerance_mm: float) -> bool:
    """:func:`_on_tilt_grid` from shapes and affines (a header's): whether a grid of ``shape`` placed by ``affine``
    is the unsheared grid ITK reads the gantry-tilted ``target`` grid on, voxel for voxel."""
    from medseg.io.nifti import is_sheared, qform_for

    if tuple(shape) != tuple(target_shape) or not is_sheared(target_affine):
        return False
    untilted, code = qform_for(target_affine)
    return bool(code) and grid_displacement_mm(target_shape, affine, untilted) <= tolerance_mm


def _bounding_box(mask: np.ndarray, margin: int = 1) -> tuple[slice, ...]:
    """Slices of the foreground's bounding box grown by ``margin`` voxels (clipped to the array)."""
    box = []
    for axis in range(mask.ndim):
        other = tuple(i for i in range(mask.ndim) if i != axis)
        hits = np.flatnonzero(mask.any(axis=other))
        box.append(slice(max(int(hits[0]) - margin, 0), min(int(hits[-1]) + margin + 1, mask.shape[axis])))
    return tuple(box)


def _surface_metrics(pred: np.ndarray, ref: np.ndarray, value: int, box: tuple[slice, ...],
                     spacing_mm: tuple[float, ...], sheared: np.ndarray | None = None) -> tuple[float, float]:
    """HD95 and ASSD of label ``value`` in two label arrays, both present in ``box`` (a box around its voxels in
    both, grown by a voxel where the array allows): MONAI's surface edges (:func:`_mask_edges`) and edge-to-edge
    distances (``get_surface_distance``'s, as ``get_edge_surface_distance`` calls it, from a k-d tree or where that
    costs more from a distance map of at most ``DISTANCE_MAP_BYTES_PER_VOXEL`` bytes a voxel of the labels:
    :func:`medseg.surface_distance.directed_distances`), with the percentile and the mean taken in float64
    (``torch.quantile``, which MONAI's HD95 uses, refuses more than 2^24 distances). An image one voxel thick
    along one axis (a 2D image) is scored in 2D, on the contours in the other two axes: in 3D all of its voxels
    would lie on its faces and count as surface.

    ``sheared``: the 3×3 voxel-to-mm matrix of a sheared grid, whose voxel axes are not orthogonal; the same
    edges' distances are then measured between their world positions (nearest neighbours in a k-d tree), which
    per-axis voxel sizes would misstate (by 15 % at a 30° gantry tilt)."""
    from medseg.surface_distance import directed_distances

    spacing = [float(s) for s in spacing_mm]
    columns = None if sheared is None else np.asarray(sheared, dtype=np.float64)
    flat = [axis for axis, n in enumerate(pred[box].shape) if n == 1]
    squeeze = flat[0] if len(flat) == 1 and pred.ndim == 3 else None
    if squeeze is not None:
        spacing.pop(squeeze)
        if columns is not None:
            columns = np.delete(columns, squeeze, axis=1)
    edges = [_mask_edges(array, value, box, squeeze) for array in (pred, ref)]
    if columns is None:
        budget = max(DISTANCE_MAP_BYTES_PER_VOXEL * pred.size, DISTANCE_MAP_MIN_BYTES)
        distances = [directed_distances(a, b, spacing, budget) for a, b in (edges, edges[::-1])]
    else:
        distances = _world_distances(edges, columns)
    del edges
    hd95, assd = _hd95_and_mean(*distances)
    if columns is None:  # MONAI's distances are float32: 7 significant digits are what they hold (√2 reads
        # 1.414214, not the float32 value's 1.4142135381698608); the world-space ones are float64
        hd95, assd = float(f"{hd95:.7g}"), float(f"{assd:.7g}")
    return hd95, assd


def _hd95_and_mean(forward: np.ndarray, backward: np.ndarray) -> tuple[float, float]:
    """The larger of the two directions' 95th percentiles and the mean of all their distances, in float64: the values
    of ``np.percentile`` of each direction as float64 and of ``np.concatenate`` of both ``.mean()``, from one float64
    array of both (8 bytes a distance; float64 copies of each, their concatenation and the percentile's own copies
    took 32), the mean taken first, then each direction's percentile partitioning its own part in place."""
    both = np.empty(len(forward) + len(backward), dtype=np.float64)
    split = len(forward)
    both[:split], both[split:] = forward, backward
    assd = float(both.mean())
    hd95 = max(float(np.percentile(both[:split], 95, overwrite_input=True)),
               float(np.percentile(both[split:], 95, overwrite_input=True)))
    return hd95, assd


EDGE_BLOCK = 1 << 24  # voxels of a box whose edges are found at a time
# the memory a label's distance map may hold (medseg.surface_distance), in bytes a voxel of the label volume: scoring
# holds 3-4 besides (the labels, two edge volumes of the box) and a cohort's scoring job is given 32 (a mask's edge
# voxels take 16 bytes each beside the map, the other mask's in a k-d tree 43: medseg.voxel_charge)
# (medseg.cohort.job_memory); at least DISTANCE_MAP_MIN_BYTES (within the 0.4 GB its base allows beyond what the
# libraries take)
DISTANCE_MAP_BYTES_PER_VOXEL = 6
DISTANCE_MAP_MIN_BYTES = 1 << 27


def _mask_edges(labels: np.ndarray, value: int, box: tuple[slice, ...], squeeze: int | None = None,
                block: int | None = None) -> np.ndarray:
    """The surface voxels of ``labels[box] == value`` (``squeeze``: an axis of one voxel taken out, for a 2D
    image): those with a 6-neighbour (4 in 2D) outside the mask, the outside of the box counting as outside, as
    MONAI's ``get_mask_edges`` finds them (scipy's binary erosion, then the mask's voxels the erosion removed).
    The box holds every voxel of the mask with a voxel to spare where the array allows, so its outside holds none
    of the mask and the edges are MONAI's; they are found a slab of about ``block`` voxels at a time, with one slice
    of the next slab on each side (``block``: ``EDGE_BLOCK``): the mask, its erosion and MONAI's copies of both,
    cropped and padded, were whole boolean volumes of the box (about 13 bytes per voxel of the box: in a
    512×512×1000 CT whose box spanned most of the volume, more than the inference itself held)."""
    from scipy.ndimage import binary_erosion

    region = labels[box]
    if squeeze is not None:
        region = region.squeeze(squeeze)
    edges = np.empty(region.shape, dtype=bool)
    depth = region.shape[0]
    step = max(1, (block or EDGE_BLOCK) // max(math.prod(region.shape[1:]), 1))
    for start in range(0, depth, step):
        stop = min(depth, start + step)
        low, high = max(start - 1, 0), min(stop + 1, depth)  # a neighbour slice each side, where there is one
        mask = region[low:high] == value
        # scipy's default structure (the cross: 6-neighbours in 3D, 4 in 2D) and border (outside: not the mask);
        # a neighbour slice's own erosion is wrong (its far side is cut), and it is dropped
        edge = mask ^ binary_erosion(mask)
        edges[start:stop] = edge[start - low:stop - low]
    return edges


# the world-space k-d trees of a sheared grid: leaves of 64 points and nodes not shrunk to their points' bounds search
# 4-5 times faster than scipy's defaults (16, shrunk) from the edges of a speckled prediction deep inside the
# reference (192×192×80 voxels, 5 % knocked out, 20° tilt: 13.9 s → 2.8 s), and find the same nearest distances
WORLD_LEAF_SIZE = 64
WORLD_COMPACT_NODES = False


def _world_distances(edges, columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each edge voxel's distance (mm, float64) to the nearest edge voxel of the other mask, both ways, between world
    positions ``columns @ index`` (the crop's offset is common to both and cancels). The positions are
    ``np.argwhere(edges) @ columns.T``, made in place :data:`~medseg.surface_distance.CHUNK` voxels at a time (24
    bytes an edge voxel; argwhere's int64 indices beside them took 24-48 more), and each tree is searched a chunk at
    a time (the neighbours' int64 indices, which are not kept, took 8 bytes a voxel searched)."""
    from scipy.spatial import cKDTree

    from medseg import surface_distance
    from medseg.surface_distance import search_threads

    points = [_world_points(e, columns) for e in edges]
    workers = search_threads()
    found = []
    for query, target in ((points[0], points[1]), (points[1], points[0])):
        tree = cKDTree(target, leafsize=WORLD_LEAF_SIZE, compact_nodes=WORLD_COMPACT_NODES)
        distances = np.empty(len(query), dtype=np.float64)
        for start in range(0, len(query), surface_distance.CHUNK):
            chunk = slice(start, start + surface_distance.CHUNK)
            distances[chunk] = tree.query(query[chunk], workers=workers)[0]
        del tree
        found.append(distances)
    return found[0], found[1]


def _world_points(edges: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """``np.argwhere(edges) @ columns.T`` (float64 world positions less the grid's origin), the same values, made in
    place :data:`~medseg.surface_distance.CHUNK` rows at a time from the indices found as float64."""
    from medseg import surface_distance

    points = surface_distance.edge_indices(edges, np.float64)
    for start in range(0, len(points), surface_distance.CHUNK):
        chunk = slice(start, start + surface_distance.CHUNK)
        points[chunk] = points[chunk] @ columns.T
    return points


def sub_box_note(box: dict) -> str:
    """What a record says of a reference placed from a box of the prediction's grid (``reference_sub_box``)."""
    shape = "×".join(str(n) for n in box["shape"])
    offset = ", ".join(str(n) for n in box["offset_voxels"])
    outside = box.get("voxels_outside_grid")
    cropped = (f"; its {outside} voxels outside the grid, all label 0, cropped off" if isinstance(outside, int)
               and outside else "")
    return (f"a box of {shape} voxels of the prediction's grid (as 3D Slicer crops a segmentation), its first voxel "
            f"at voxel ({offset}){cropped}; zero-padded onto the grid (label 0 outside the box), nothing resampled")


def both_empty_entry(name: str) -> dict:
    """A label's metrics where neither the prediction nor the reference holds a voxel of it (status ``both_empty``:
    Dice and distances NaN, every volume 0), as :func:`evaluate_volumes` records it."""
    nan = float("nan")
    return {"name": name, "dice": nan, "hd95_mm": nan, "assd_mm": nan, "status": "both_empty",
            "pred_volume_ml": 0.0, "ref_volume_ml": 0.0, "false_positive_ml": 0.0, "false_negative_ml": 0.0}


def evaluate_volumes(pred: Volume, ref: Volume, labels: dict[int, str], case_id: str | None = None) -> dict:
    """Metrics of ``pred`` against ``ref`` for every non-background label in ``labels``.

    ``labels`` maps label values to names; keys may be text, as a sidecar's or ``model.json``'s JSON gives them
    (``{"1": "anterior"}``). Returns a ``medseg-metrics/1`` record; undefined values are ``float('nan')`` (use
    :func:`metrics_json` to write it, which turns them into ``null``).
    """
    labels = _label_names(labels)
    pred, ref = _label_volume(pred, "prediction"), _label_volume(ref, "reference")
    # the reference is named first, as `medseg infer --reference` names it; arrays of no file by their role
    named_pred, named_ref = (volume if volume.source is not None else dataclasses.replace(volume, source=f"the {role}")
                             for volume, role in ((pred, "prediction"), (ref, "reference")))
    ref = dataclasses.replace(place_onto_grid(named_ref, named_pred), source=ref.source)
    check_same_grid(named_pred, ref if ref.source is not None else dataclasses.replace(ref, source="the reference"))
    from medseg.io.nifti import is_sheared

    spacing = pred.spacing_mm
    sheared = pred.affine[:3, :3] if is_sheared(pred.affine) else None
    voxel_ml = pred.voxel_volume_ml
    pred_array, ref_array = np.asarray(pred.array), np.asarray(ref.array)
    counted = _LabelCounts(pred_array, ref_array, [value for value in labels if value != 0])
    results = {}
    for value, name in sorted(labels.items()):
        if value == 0:
            continue
        n_p, n_r, tp = counted.counts(value)
        if n_p == 0 and n_r == 0:
            results[str(value)] = both_empty_entry(name)
            continue
        entry = {"name": name}
        nan = float("nan")
        if n_r == 0:
            entry.update(dice=0.0, hd95_mm=nan, assd_mm=nan, status="false_positive")
        elif n_p == 0:
            entry.update(dice=0.0, hd95_mm=nan, assd_mm=nan, status="empty_prediction")
        else:
            # the same voxels (every one of either mask in both): each surface voxel is on the other's surface, every
            # distance 0, as MONAI's would give them, without finding the edges or importing MONAI
            hd95, assd = (0.0, 0.0) if n_p == n_r == tp else _surface_metrics(
                pred_array, ref_array, value, counted.box(value), spacing, sheared)
            # Dice from the exact voxel counts (float32 masks, as in MONAI's compute_dice, put 14/20 below 0.7)
            entry.update(dice=2.0 * tp / (n_p + n_r), hd95_mm=hd95, assd_mm=assd, status="ok")
        entry.update(
            pred_volume_ml=volume_ml(n_p, voxel_ml),
            ref_volume_ml=volume_ml(n_r, voxel_ml),
            false_positive_ml=volume_ml(n_p - tp, voxel_ml),
            false_negative_ml=volume_ml(n_r - tp, voxel_ml),
        )
        results[str(value)] = entry
    record = {
        "schema": METRICS_SCHEMA,
        "case_id": case_id,
        "prediction": os.path.abspath(pred.source) if pred.source is not None else None,
        # the file scored: the report matches it against the segmentation its sidecar describes
        "prediction_sha256": pred.source_sha256,
        "reference": os.path.abspath(ref.source) if ref.source is not None else None,
        # the reference file scored against: a label re-drawn later at the same path is not the one scored
        "reference_sha256": ref.source_sha256,
        "reference_reordered": bool(ref.info.get("reordered", False)),
        "spacing_mm": [header_precision(s) for s in spacing],
        "policy": EMPTY_MASK_POLICY,
        # what computed the figures (medseg's code on numpy and scipy; nothing of MONAI): a record rescored months
        # later with another release can be told apart
        "versions": _metric_versions(),
        "labels": results,
    }
    # a voxel size the file does not give (a single slice without a thickness): the volumes rest on what was assumed;
    # a DICOM SEG placed on a source series that changed since the prediction was made
    notes = [f"{role}: {volume.info[key]}" for role, volume in (("prediction", pred), ("reference", ref))
             for key in ("thickness_note", "source_note") if isinstance(volume.info.get(key), str)]
    if ref.info.get("tilt_grid"):
        notes.append(f"reference: {TILT_GRID_NOTE}")
    box = ref.info.get("sub_box")
    if isinstance(box, dict):
        record["reference_sub_box"] = box
        notes.append(f"reference: {sub_box_note(box)}")
    other_thickness = _flat_thickness_differs(pred, ref)
    if other_thickness is not None:
        log.warning("%s: %s", ref.source, other_thickness)
        notes.append(f"reference: {other_thickness}")
    if notes:
        record["notes"] = notes
    return record


class _LabelCounts:
    """Each label's voxel counts in a prediction and a reference (and where they agree), and the box around both of
    its masks, from one pass over each array for all labels at once where the label values are small (a pass per
    label and per count took half of the time for 100 labels); per label otherwise (atlas ids beyond 65535).

    The boxes are found first (scipy's find_objects, a pass over each array); where the labels' boxes together hold
    fewer voxels than the volume (organs in a CT: 512×512×300 voxels, three labels in 5 % of them), each label is
    counted inside its boxes, which hold all of its voxels, instead of in the whole volume (np.bincount casts every
    voxel to int64: 1.1 of 1.6 s there)."""

    BLOCK = 1 << 20  # voxels counted at a time
    BOXED_SHARE = 1.0  # counted inside the boxes where these together hold up to this share of the volume's voxels

    def __init__(self, pred: np.ndarray, ref: np.ndarray, values: list[int], most: int = 65535):
        self.pred, self.ref = pred, ref
        top = max([0, *values])
        # (np.bincount takes no uint64; a uint64 file of small values is counted per label)
        self.fast = top <= most and all(a.dtype.kind == "i" or (a.dtype.kind == "u" and a.dtype.itemsize <= 4)
                                        for a in (pred, ref))
        highest = 0
        for a in (pred, ref) if self.fast else ():  # each array's extremes read once (a whole-volume pass each)
            high = int(a.max(initial=0))
            self.fast = self.fast and high <= most and (a.dtype.kind == "u" or int(a.min(initial=0)) >= 0)
            highest = max(highest, high)
        if not self.fast:
            return
        self.pred_boxes, self.ref_boxes = _label_boxes(pred), _label_boxes(ref)
        wanted = sorted({value for value in values if value > 0})
        self.boxed = sum(math.prod(s.stop - s.start for s in box) for value in wanted
                         for box in (self._box_of(self.pred_boxes, value), self._box_of(self.ref_boxes, value))
                         if box is not None) <= self.BOXED_SHARE * pred.size
        if self.boxed:
            self.counted = {value: self._count_in_boxes(value) for value in wanted}
            return
        size = max(top, highest) + 1
        self.n_pred, self.n_ref, self.n_both = (np.zeros(size, dtype=np.int64) for _ in range(3))
        # a slab at a time: np.bincount casts what it counts to int64, 8 bytes a voxel (840 MB for 105 million uint8
        # voxels, where a label's masks took 3 bytes a voxel), and a Fortran-ordered array's ravel() is a copy
        for p, r in _slabs(pred, ref, self.BLOCK):
            order = "F" if p.flags.f_contiguous and not p.flags.c_contiguous else "C"  # one order for both
            p, r = p.ravel(order=order), r.ravel(order=order)
            self.n_pred += np.bincount(p, minlength=size)
            self.n_ref += np.bincount(r, minlength=size)
            self.n_both += np.bincount(p[(p == r) & (p != 0)], minlength=size)

    @staticmethod
    def _box_of(boxes: list, value: int) -> tuple[slice, ...] | None:
        """find_objects' box of ``value`` (None where the array holds none)."""
        return boxes[value - 1] if 0 < value <= len(boxes) else None

    def _count_in_boxes(self, value: int) -> tuple[int, int, int]:
        """:meth:`counts` of ``value`` inside its boxes (each holds all of its voxels in its array; the voxels in both
        lie where the boxes meet), a slab at a time (a box may span the volume: a stray voxel far from the organ)."""
        found = []
        for array, box in ((self.pred, self._box_of(self.pred_boxes, value)),
                           (self.ref, self._box_of(self.ref_boxes, value))):
            found.append(0 if box is None else sum(int(np.count_nonzero(p == value))
                                                   for p, _ in _slabs(array[box], array[box], self.BLOCK)))
        both = 0
        p_box, r_box = self._box_of(self.pred_boxes, value), self._box_of(self.ref_boxes, value)
        if p_box is not None and r_box is not None:
            meet = tuple(slice(max(a.start, b.start), min(a.stop, b.stop)) for a, b in zip(p_box, r_box))
            if all(s.start < s.stop for s in meet):
                both = sum(int(np.count_nonzero((p == value) & (r == value)))
                           for p, r in _slabs(self.pred[meet], self.ref[meet], self.BLOCK))
        return found[0], found[1], both

    def counts(self, value: int) -> tuple[int, int, int]:
        """Voxels of ``value`` in the prediction, in the reference, and in both."""
        if self.fast and self.boxed:
            return self.counted[value] if value in self.counted else self._count_in_boxes(value)
        if self.fast:
            if value < 0:  # none in arrays counted so (and n_pred[-1] is the largest value's count)
                return 0, 0, 0
            return int(self.n_pred[value]), int(self.n_ref[value]), int(self.n_both[value])
        p, r = self.pred == value, self.ref == value
        return int(p.sum()), int(r.sum()), int(np.logical_and(p, r).sum())

    def box(self, value: int) -> tuple[slice, ...]:
        """The box around ``value``'s voxels in both arrays (present in both), grown by a voxel: cropping to it
        changes no surface (the faces of the volume stay faces, and an axis of more than one voxel stays so)."""
        if not self.fast:
            return _bounding_box((self.pred == value) | (self.ref == value))
        boxes = [self.pred_boxes[value - 1], self.ref_boxes[value - 1]]
        return tuple(slice(max(min(a.start, b.start) - 1, 0), min(max(a.stop, b.stop) + 1, n))
                     for a, b, n in zip(*boxes, self.pred.shape))


def _label_boxes(labels: np.ndarray) -> list[tuple[slice, ...] | None]:
    """``scipy.ndimage.find_objects(labels)``: each value's box (None for a value not there), found in the order the
    voxels lie in memory: find_objects walks an array in C order, and across a Fortran-ordered one (as a NIfTI file
    is read) it took 1.5 s of 512×512×300 voxels where its transpose, the same memory, took 0.4 s."""
    from scipy import ndimage

    if labels.flags.f_contiguous and not labels.flags.c_contiguous:
        return [None if box is None else box[::-1] for box in ndimage.find_objects(labels.T)]
    return ndimage.find_objects(labels)


def _slabs(a: np.ndarray, b: np.ndarray, block: int):
    """Matching slabs of two arrays of one shape, of about ``block`` voxels each, cut across the axis that varies
    slowest in ``a``'s memory (so that a slab of ``a`` is a view; the longest axis where that one has a single
    voxel)."""
    axis = a.ndim - 1 if a.flags.f_contiguous and not a.flags.c_contiguous else 0
    if a.shape[axis] == 1:
        axis = int(np.argmax(a.shape))
    per_index = max(a.size // max(a.shape[axis], 1), 1)
    step = max(block // per_index, 1)
    for start in range(0, a.shape[axis], step):
        cut = (slice(None),) * axis + (slice(start, start + step),)
        yield a[cut], b[cut]


def _metric_versions() -> dict[str, str]:
    """The versions of medseg and of the libraries its metrics rest on (numpy; scipy's erosion for the surface edges,
    its k-d tree and feature transform for their distances; MONAI, whose values they are, takes no part), read from
    the installed packages' metadata (nothing imported) once per process: each look-up scans every folder of
    ``sys.path`` (11–26 ms a case, a tenth of scoring a hippocampus cohort)."""
    return dict(_installed_metric_versions())


@functools.cache
def _installed_metric_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    import medseg
    from medseg.checkout import source_commit

    commit = source_commit()  # a checkout's commit: the version number is one for every commit between releases
    found = {"medseg": medseg.__version__, **({"medseg_commit": commit} if commit else {})}
    for name in ("numpy", "scipy"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def _label_volume(volume: Volume, role: str) -> Volume:
    """``volume`` checked as a 3D array of label values (whole numbers from 0) with a finite, invertible 4×4 affine (a
    caller's arrays are not read from files, whose reader checks them: fractional or NaN voxels, or text, matched no
    label and scored 0 or NaN), the array and the affine as numpy arrays (nested lists will do)."""
    name = volume.source if volume.source is not None else f"the {role}"
    array = np.asarray(volume.array)
    if array.ndim == 0 and array.dtype.kind == "O":  # a nibabel image, or None, in place of the array
        raise InputError(f"{name}: a {type(volume.array).__name__} in place of the voxel array; give the labels as an "
                         f"array (a nibabel image's: np.asarray(image.dataobj)), given as the {role}")
    if array.ndim != 3 or not array.size:
        raise InputError(f"{name}: an array of shape {array.shape}; give 3D label volumes (a 2D image as X×Y×1), "
                         f"given as the {role}")
    if array.dtype.kind not in "biuf":  # text, objects (a nibabel image in place of its array), complex numbers
        raise InputError(f"{name}: voxels of type {array.dtype}; give label values (an integer array), given as the "
                         f"{role}")
    _check_label_values(array, name, role)
    if np.shape(volume.affine) != (4, 4):
        raise InputError(f"{name}: an affine of shape {np.shape(volume.affine)}; give the 4×4 voxel-to-RAS+ (mm) "
                         f"matrix, given as the {role}")
    try:
        affine = np.asarray(volume.affine, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise InputError(f"{name}: the affine is not a 4×4 matrix of numbers ({error}), given as the {role}") from None
    if singular_affine_text(affine) is not None:  # measured as segment_volume and the NIfTI reader measure it
        raise InputError(f"{name}: {singular_affine_text(affine)}, given as the {role}")
    if bottom_row_text(affine) is not None:
        raise InputError(f"{name}: {bottom_row_text(affine)}, given as the {role}")
    if array is volume.array and affine is volume.affine:
        return volume
    return dataclasses.replace(volume, array=array, affine=affine)


def _label_names(labels) -> dict[int, str]:
    """``labels`` with whole-number keys ("1" compared with voxels matched none)."""
    if not isinstance(labels, Mapping):
        raise InputError(f"labels {labels!r}: give a mapping of label values to names, as {{1: 'liver'}}")
    named = {}
    for value, name in labels.items():
        try:
            number = int(value)
        except (TypeError, ValueError):
            number = None
        fraction = isinstance(value, (float, np.floating)) and not float(value).is_integer()
        if number is None or fraction or isinstance(value, bool):
            raise InputError(f"labels: {value!r} is no label value; give whole numbers as the keys, as {{1: 'liver'}}")
        named[number] = str(name)
    return named


def _check_label_values(array: np.ndarray, name, role: str) -> None:
    """Label values are whole numbers from 0, as :func:`medseg.io.label_images.read_reference` requires of a file."""
    from medseg.label_values import label_values
    from medseg.numbers import odd_values

    if array.dtype.kind in "bu" or not array.size:
        return
    if array.dtype.kind == "i":
        whole = array.min() >= 0
    else:  # a slab at a time: the rounded copy of a whole float64 volume took as much memory again
        with np.errstate(invalid="ignore"):
            whole = all(bool(np.all(slab >= 0) and np.all(slab == np.round(slab)) and np.isfinite(slab).all())
                        for slab, _ in _slabs(array, array, 1 << 22))
    if not whole:
        raise InputError(f"{name}: not a label image (values must be non-negative integers; it holds "
                         f"{odd_values(label_values(array), negative=True)}), given as the {role}")


def _flat_thickness_differs(pred: Volume, ref: Volume) -> str | None:
    """What the reference's header says of a single slice's thickness where it differs from the prediction's.

    One slice's voxel centres do not depend on its thickness, so the grid check passes either way; the volumes are
    computed with the prediction's voxel size, and the reference's own header would give others."""
    text = None
    for axis, size in enumerate(pred.shape[:3]):
        if size != 1:
            continue
        mine, theirs = (float(np.linalg.norm(np.asarray(v.affine, dtype=np.float64)[:3, axis])) for v in (pred, ref))
        if not math.isclose(mine, theirs, rel_tol=1e-3):
            text = (f"its header gives the single slice a thickness of {theirs:.4g} mm where the prediction's gives "
                    f"{mine:.4g} mm; its volumes are computed with the prediction's (its own would make them "
                    f"{theirs / mine:.3g}× as large)" if mine > 0 else None)
    return text


def jsonable(value):
    """``value`` with every NaN or infinite float replaced by ``None`` (JSON ``null``), recursively."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def metrics_json(metrics: dict) -> str:
    """A metrics record as strict JSON text (NaN as ``null``), ending with a newline."""
    return json.dumps(jsonable(metrics), indent=2, allow_nan=False) + "\n"

