"""HD95 and ASSD of one label in a prediction and a reference, from the surface voxels of both.

A mask's surface is its voxels with a 6-neighbour outside it (4 in a 2D image), found a slab at a time as MONAI's
``get_mask_edges`` finds them; the distances from each mask's surface to the other's are
:mod:`medseg.surface_distance`'s (a k-d tree, or a distance map where that costs less), or on a sheared grid those
between the voxel centres' world positions; HD95 and ASSD are taken from them in float64.
:func:`medseg.metrics.evaluate_volumes` measures each label present in both masks through it.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["DISTANCE_MAP_BYTES_PER_VOXEL", "DISTANCE_MAP_MIN_BYTES", "EDGE_BLOCK", "WORLD_COMPACT_NODES",
           "WORLD_LEAF_SIZE"]


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
            columns = _plane_columns(np.delete(columns, squeeze, axis=1))
    edges = [_mask_edges(array, value, box, squeeze) for array in (pred, ref)]
    budget = max(DISTANCE_MAP_BYTES_PER_VOXEL * pred.size, DISTANCE_MAP_MIN_BYTES)
    if columns is None:
        distances = [directed_distances(a, b, spacing, budget) for a, b in (edges, edges[::-1])]
        del edges
        hd95, assd = _hd95_and_mean(*distances)
    else:
        both, split = _world_distances_joined(edges, columns, budget)
        del edges
        hd95, assd = _hd95_and_mean_of(both, split)
    if columns is None:  # MONAI's distances are float32: 7 significant digits are what they hold (√2 reads
        # 1.414214, not the float32 value's 1.4142135381698608); the world-space ones are float64
        hd95, assd = float(f"{hd95:.7g}"), float(f"{assd:.7g}")
    return hd95, assd


def _plane_columns(columns: np.ndarray) -> np.ndarray | None:
    """The 3×2 voxel-to-mm columns of a 2D image's two axes as a 2×2 matrix of the same distances (the ``R`` of their
    QR decomposition: ``|Q R x| = |R x|``), whose positions the k-d trees hold in the image's two dimensions (the
    3D positions did not fit them: a ValueError); None where the two axes are at right angles (a slice of a tilted
    series: the shear lay along the axis taken out), scored with their voxel sizes as an unsheared 2D image is."""
    axes = columns / np.linalg.norm(columns, axis=0)
    if abs(float(axes[:, 0] @ axes[:, 1])) <= 1e-4:  # as medseg.io.nifti_geometry.is_sheared tells a shear
        return None
    return np.linalg.qr(columns, mode="r")


def _hd95_and_mean(forward: np.ndarray, backward: np.ndarray) -> tuple[float, float]:
    """The larger of the two directions' 95th percentiles and the mean of all their distances, in float64: the values
    of ``np.percentile`` of each direction as float64 and of ``np.concatenate`` of both ``.mean()``, from one float64
    array of both (8 bytes a distance; float64 copies of each, their concatenation and the percentile's own copies
    took 32) (:func:`_hd95_and_mean_of`)."""
    both = np.empty(len(forward) + len(backward), dtype=np.float64)
    split = len(forward)
    both[:split], both[split:] = forward, backward
    return _hd95_and_mean_of(both, split)


def _hd95_and_mean_of(both: np.ndarray, split: int) -> tuple[float, float]:
    """:func:`_hd95_and_mean` of the float64 distances ``both``, a direction's before ``split`` and the other's from
    it: the mean taken first, then each direction's percentile partitioning its own part in place."""
    assd = float(both.mean())
    hd95 = max(float(np.percentile(both[:split], 95, overwrite_input=True)),
               float(np.percentile(both[split:], 95, overwrite_input=True)))
    return hd95, assd


EDGE_BLOCK = 1 << 24  # voxels of a box whose edges are found at a time
# the memory a label's distance map may hold (medseg.surface_distance), in bytes a voxel of the label volume: scoring
# holds 3-4 besides (the labels, two edge volumes of the box) and a cohort's scoring job is given 32 (a mask's edge
# voxels take 10 bytes each beside the map, int16 indices and float32 distances; the other mask's k-d tree 43-48 a
# point, at most half of this budget, over slabs of rows beyond it: medseg.voxel_charge)
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


def _world_distances(edges, columns: np.ndarray, budget_bytes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_world_distances_joined`'s two directions."""
    both, split = _world_distances_joined(edges, columns, budget_bytes)
    return both[:split], both[split:]


def _world_distances_joined(edges, columns: np.ndarray, budget_bytes: int | None = None) -> tuple[np.ndarray, int]:
    """Each edge voxel's distance (mm, float64) to the nearest edge voxel of the other mask, both ways, between world
    positions ``columns @ index`` (the crop's offset is common to both and cancels), in one array (HD95 and ASSD take
    both from it, :func:`_hd95_and_mean_of`), the first direction's before the place returned. The positions are
    ``np.argwhere(edges) @ columns.T``, made in place :data:`~medseg.surface_distance.CHUNK` voxels at a time (24
    bytes an edge voxel in the tree; argwhere's int64 indices beside them took 24-48 more), the query's a slab of
    rows at a time; each tree is searched a chunk at a time (the neighbours' int64 indices, which are not kept, took
    8 bytes a voxel searched). A tree over the other mask's edges beyond ``budget_bytes``
    (:class:`~medseg.surface_distance.NearestTarget`; None: no limit) is built over slabs of rows, one at a time
    (masks whose every voxel is an edge held 41 bytes a voxel of positions)."""
    from scipy.spatial import cKDTree

    from medseg.surface_distance import NearestTarget, search_threads

    counts = [int(np.count_nonzero(e)) for e in edges]
    both = np.empty(sum(counts), dtype=np.float64)
    parts = (both[:counts[0]], both[counts[0]:])
    # two voxels a row apart along axis 0 lie at least as far apart as the first column's part across the others
    others = columns[:, 1:]
    row_mm = float(np.linalg.norm(columns[:, 0] - others @ np.linalg.lstsq(others, columns[:, 0], rcond=None)[0]))
    budget = np.inf if budget_bytes is None else budget_bytes
    workers = search_threads()

    def positions(indices: np.ndarray) -> np.ndarray:
        # a single row would be a matrix-vector product (BLAS's gemv), whose last bit may differ from the
        # matrix product's (gemm) of the same row among others: rows are taken two at least
        if len(indices) == 1:
            return (np.concatenate([indices, indices]) @ columns.T)[:1]
        return indices @ columns.T

    for (query, target), found in zip(((edges[0], edges[1]), (edges[1], edges[0])), parts):
        nearest = NearestTarget(target, positions, lambda points: cKDTree(
            points, leafsize=WORLD_LEAF_SIZE, compact_nodes=WORLD_COMPACT_NODES), row_mm, budget, workers)
        nearest.query_mask(query, found)
        del nearest
    return both, counts[0]
