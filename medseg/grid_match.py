"""Whether a label volume lies on another's grid, and putting it there without resampling.

Two grids are one where they have the same shape and no voxel centre lies further apart than
:func:`grid_tolerance_mm` (:func:`check_same_grid`, which refuses others in one line saying what differs). A label
volume holding the same voxel centres in another order (axes swapped or reversed) is re-indexed onto the grid
(:func:`reorder_onto_grid`), one that is a box of the grid's voxel lattice (3D Slicer's cropped segmentations) is
zero-padded onto it (:func:`place_onto_grid`, :func:`sub_box_placement`), and one on the unsheared grid ITK reads a
gantry-tilted series on is taken as the series' voxels (:func:`on_tilt_grid`); nothing is interpolated. Scoring
(:mod:`medseg.metrics`), inference with a reference, training and the QA report match their label files through it.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from medseg.errors import GeometryError
from medseg.numbers import counted
from medseg.volume import Volume

__all__ = [
    "GRID_TOLERANCE_MM",
    "GRID_TOLERANCE_VOXELS",
    "box_on_grid",
    "check_header_shape",
    "check_same_grid",
    "grid_displacement_mm",
    "grid_offset_mm",
    "grid_reordering",
    "grid_tolerance_mm",
    "on_tilt_grid",
    "place_onto_grid",
    "reorder_onto_grid",
    "sub_box_placement",
]

log = logging.getLogger(__name__)

GRID_TOLERANCE_MM = 0.01
GRID_TOLERANCE_VOXELS = 0.1  # of the smallest voxel size, when that is the stricter bound


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
            f"(tolerance {tolerance_mm:.4g} mm){_other_voxel_sizes(b.affine, a.affine)}; resample one onto the "
            f"other's grid first; {outcome}"
        )


def _other_voxel_sizes(affine: np.ndarray, target_affine: np.ndarray) -> str:
    """``, with voxels of (…) mm against (…) mm`` where the two grids' voxel sizes differ (a header's wrong slice
    thickness reads as a distance otherwise, as a shift would), else nothing."""
    mine, theirs = (np.linalg.norm(np.asarray(a, np.float64)[:3, :3], axis=0) for a in (affine, target_affine))
    if np.allclose(mine, theirs, rtol=1e-3):
        return ""
    return (f", with voxels of ({', '.join(f'{s:.4g}' for s in mine)}) mm against "
            f"({', '.join(f'{s:.4g}' for s in theirs)}) mm")


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
    shape, grid = tuple(int(n) for n in volume.shape[:3]), tuple(int(n) for n in target.shape[:3])
    if sorted(shape) == sorted(grid) and not any(start) and axes == [0, 1, 2] and not any(flips):
        # the target's shape in another order, from its first voxel on its own axes: no crop (a box that holds as
        # many voxels as the grid, only along other axes), but an array transposed before it was saved
        raise GeometryError(f"{volume.source}: shape {shape} is {target.source}'s {grid} in another order, on its "
                            "affine as it is: its voxel axes swapped (an array transposed before it was saved with "
                            "the image's affine?); save it in the image's axis order, or with an affine that says its "
                            f"own; {outcome}")
    array = np.transpose(np.asarray(volume.array), axes)
    if any(flips):
        array = np.flip(array, axis=[t for t in range(3) if flips[t]])
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
                 f"; its {counted(int(outside), 'voxel')} outside the grid, all 0, cropped off" if outside else "")
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


def _on_tilt_grid(volume: Volume, target: Volume, tolerance_mm: float) -> bool:
    """Whether ``volume`` holds ``target``'s voxels, ``target`` being a gantry-tilted series' grid (sheared) and
    ``volume`` on the grid ITK reads such a series on (:func:`~medseg.io.nifti_geometry.qform_for`): a label drawn in
    ITK-SNAP over a tilted series, or over medseg's NIfTI of it (whose qform is that grid), is saved so. Its voxels
    are the series' pixels, only placed without the tilt."""
    return volume.array.ndim == 3 and on_tilt_grid(volume.shape, volume.affine, target.shape, target.affine,
                                                   tolerance_mm)


def on_tilt_grid(shape: tuple[int, ...], affine: np.ndarray, target_shape: tuple[int, ...],
                 target_affine: np.ndarray, tolerance_mm: float) -> bool:
    """:func:`_on_tilt_grid` from shapes and affines (a header's): whether a grid of ``shape`` placed by ``affine``
    is the unsheared grid ITK reads the gantry-tilted ``target`` grid on, voxel for voxel."""
    from medseg.io.nifti_geometry import is_sheared, qform_for

    if tuple(shape) != tuple(target_shape) or not is_sheared(target_affine):
        return False
    untilted, code = qform_for(target_affine)
    return bool(code) and grid_displacement_mm(target_shape, affine, untilted) <= tolerance_mm
