"""Directed surface distances: each edge voxel's distance (mm) to the nearest edge voxel of the other mask.

The values are those of MONAI's ``get_surface_distance(..., distance_metric="euclidean", spacing=...)`` on the CPU:
the voxel indices as float64 times the voxel size, the nearest one found by scipy's k-d tree (leaf size 32), the
distances cast to float32. That search slows with how far a voxel lies from the other surface: a prediction
speckled with holes has edges deep inside the reference, each of whose searches visits the leaves of a whole cap of
the reference's surface (an ellipsoid of 200×200×150 voxels with 1 % of its voxels knocked out: 11 µs a voxel
there, 1-2 µs beside the surface; one of 480×400×320 took 433 s). Where the tree's cost, estimated from the
distances of a sample of the voxels, exceeds that of a distance map, the nearest edge voxel is taken from scipy's
feature transform (``distance_transform_edt(..., return_indices=True)``, exact, about 0.1 µs a voxel of the box)
instead, and its distance computed from the two indices as the tree computes it. Both find a nearest voxel; where
several lie at the same distance the two may take different ones, whose float64 distances can differ in the last bit
(2 % of a speckled case's, by at most 3e-14 mm). A float64 value that close to a float32 rounding boundary could
round the other way (a voxel size that is no float32 value, an oblique affine's, made such ties), so a voxel whose
distance lies within :data:`TIE_SLACK` of the box's extent of a boundary is looked up in the tree: the float32
values are the tree's.

The map holds :data:`MAP_BYTES_PER_VOXEL` bytes a voxel of the region it covers. Within ``budget_bytes`` it covers
the whole box; beyond, slabs of the box along its longest axis (in mm), each with a margin of neighbour slices: a
voxel whose nearest edge in the slab and its margin lies closer than the slab's ends is exact. Any other (deep inside
the other mask, beyond the margins) is taken from 2D feature transforms of the planes across the axis of the largest
voxel size (:data:`PLANE_BYTES_PER_VOXEL` bytes a voxel, within the budget): its nearest voxel in a plane is the one
nearest its row and column there, the planes visited outwards until they lie further than the nearest found; the
tree would search a whole cap of the other surface for each (about 1 ms: a 512×512×100 ellipsoid with 5 % of its
voxels knocked out took over 300 s that way, 12 s this way); the plan prices them so, and drops margins the planes make
needless. Values near a float32 rounding boundary go to the tree.

The tree holds at most :data:`TREE_SHARE` of the same budget (:class:`NearestTarget`): a target whose every voxel is
an edge (both masks noise, a lattice) made one of 37 bytes a voxel of the volume, beyond scoring's charge. Such a
target's distances come from the maps over slabs along axis 0, without a sampled plan (trees over so many voxels
cost more to build than the maps), the query's voxels found a slab of rows at a time; the few voxels left are
searched in trees over slabs of the target's rows, one at a time, and those whose value the slabs' trees might round
otherwise than one tree over all of it in that one.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["CHUNK", "MAP_BYTES_PER_VOXEL", "NearestTarget", "TREE_BYTES_PER_POINT", "TREE_SHARE", "directed_distances",
           "edge_indices", "index_dtype", "search_threads"]

# scipy's feature transform: an int32 index per axis of 3D (12), its int8 copy of the input (1) and the inverted
# edges given to it (1); tracemalloc counted 13 bytes a voxel of scipy's own
MAP_BYTES_PER_VOXEL = 14
LEAF_SIZE = 32  # MONAI's k-d tree's leaves
# a tree search's cost in voxels of the map, fitted to searches from edges 0-170 voxels away from the other surface
# (200×200×150 to 480×400×320 speckled ellipsoids, organ-like ones; 0.7×0.7×2.5 mm): about 5 beside the surface,
# growing with the square of the distance (the cap of the other surface whose leaves are visited), 0.3 per voxel²
SEARCH_COST = 5.0
SEARCH_COST_PER_AREA = 0.3
SAMPLE = 1000  # voxels whose distances estimate the tree's cost
MARGIN_SHARES = (1 / 8, 1 / 4, 3 / 8)  # margins tried: shares of the rows a map may hold, each side
DECIDED_SHARES = (0.9, 0.99, 1.0)  # and those that decide these shares of the sample
# another edge voxel as near as the one the map names may be the tree's, its float64 distance apart from the map's by
# the rounding of the voxels' coordinates in mm (a few 2^-53 of the largest coordinate): where a value within this
# share of the box's extent (and of the distance) of the map's rounds to another float32, the tree is asked
TIE_SLACK = 2.0 ** -46
# the planes' 2D feature transforms of the voxels no slab decides: two int16 indices a voxel
PLANE_BYTES_PER_VOXEL = 4
PLANE_LOOKUP_COST = 1.0  # a voxel's lookup in one plane, in voxels of map
# edge voxels searched, looked up or indexed at a time (a few tens of MB of temporaries, whatever the edges)
CHUNK = 1 << 17


def directed_distances(query: np.ndarray, target: np.ndarray, spacing_mm, budget_bytes: int) -> np.ndarray:
    """Distances (mm, float32) from each voxel of the boolean array ``query`` to the nearest voxel of ``target`` (the
    same shape), in ``np.argwhere(query)`` order, as MONAI's ``get_surface_distance(query, target, "euclidean",
    spacing_mm)`` gives them on the CPU; infinite where ``target`` holds none; none where ``query`` holds none (MONAI
    gives an infinite distance per voxel of ``target`` there; scoring asks only where both hold voxels).
    ``budget_bytes``: the memory a distance map may hold at once.

    The query's voxels are held as int16 indices (6 bytes each in 3D, of MONAI's 24 and its float64 copy's 24) and
    their distances as float32; coordinates in mm, the searches and the lookups go :data:`CHUNK` voxels at a time."""
    n_points = int(np.count_nonzero(query))
    if not target.any():
        return np.full(n_points, np.inf, dtype=np.float32)
    if not n_points:
        return np.zeros(0, dtype=np.float32)
    scale = np.asarray(spacing_mm, dtype=np.float64)
    nearest = _nearest_target(target, scale, budget_bytes)
    if nearest.whole:
        points = _Voxels(edge_indices(query))
        sample = points.held[::max(1, n_points // SAMPLE)]
        sample_distances = nearest.query_points(sample)
        plan = _cheapest_plan(target.shape, scale, budget_bytes, sample, sample_distances, n_points)
    else:  # a target too dense for one tree: its trees' building costs more than maps of the box (see _dense_plan),
        # whose slabs along axis 0 take the query's voxels a slab of rows at a time, as found
        points = _Voxels(query=query)
        plan = _dense_plan(target.shape, scale, budget_bytes)
    distances = np.full(n_points, np.nan, dtype=np.float32)  # NaN: not found yet (a distance is never NaN)
    if plan is not None:
        _from_maps(points, target, scale, plan, distances, budget_bytes)
    _search_left(points, target, scale, nearest, distances)
    return distances


def _nearest_target(target: np.ndarray, scale: np.ndarray, budget_bytes: int) -> NearestTarget:
    """The k-d trees of ``target``'s voxels in mm (:func:`_mm`), MONAI's (leaves of :data:`LEAF_SIZE`), within
    ``budget_bytes``."""
    from scipy.spatial import KDTree

    def positions(indices: np.ndarray) -> np.ndarray:
        indices *= scale
        return indices

    return NearestTarget(target, positions, lambda points: KDTree(points, leafsize=LEAF_SIZE), float(scale[0]),
                         budget_bytes, search_threads())


def edge_indices(mask: np.ndarray, dtype=None) -> np.ndarray:
    """``np.argwhere(mask)``, the same rows in the same order, as the narrowest of int16, int32 and int64 that holds
    every index of the grid (:func:`index_dtype`) or as ``dtype``, found a slab of about :data:`CHUNK` voxels at a
    time: numpy's own holds int64 indices twice over while it makes them (48 bytes a voxel found in 3D, against 6
    here; int32's 12 put masks whose every voxel is an edge beyond scoring's charge)."""
    if dtype is None:
        dtype = index_dtype(mask.shape)
    found = np.empty((int(np.count_nonzero(mask)), mask.ndim), dtype=dtype)
    if mask.ndim == 0 or not len(found):
        return found
    step = max(1, CHUNK // max(math.prod(mask.shape[1:]), 1))
    at = 0
    for start in range(0, mask.shape[0], step):
        index = np.nonzero(mask[start:start + step])
        count = len(index[0])
        found[at:at + count, 0] = index[0] + start
        for axis in range(1, mask.ndim):
            found[at:at + count, axis] = index[axis]
        at += count
    return found


def index_dtype(shape: tuple[int, ...]):
    """The narrowest signed integer type of int16, int32 and int64 that holds every index of a grid of ``shape``."""
    largest = max(shape, default=0)
    return next(t for t in (np.int16, np.int32, np.int64) if largest <= np.iinfo(t).max)


def _mm(points: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Voxel indices in mm as MONAI's k-d tree takes them: the indices as float64 times the voxel size."""
    return points.astype(np.float64) * scale


def _search_left(points: _Voxels, target: np.ndarray, scale: np.ndarray, nearest: NearestTarget,
                 distances: np.ndarray) -> None:
    """The trees' distances of the voxels not found yet (NaN in ``distances``). Trees over slabs of the target's
    rows find the same float32 values as one over all of it wherever the voxels a value may come from (those as near
    as the one found, within :data:`TIE_SLACK`) round alike; any other is asked of one tree over all of the target,
    built for it alone (a voxel size whose distances lie that near a float32 rounding boundary)."""
    from scipy.spatial import KDTree

    if nearest.whole:  # :data:`CHUNK` voxels at a time
        for start in range(0, len(distances), CHUNK):
            left = np.flatnonzero(np.isnan(distances[start:start + CHUNK])) + start
            if left.size:
                distances[left] = nearest.query_points(points.at(left))
        return
    left = np.flatnonzero(np.isnan(distances))  # a few: the maps decided the rest
    if not left.size:
        return
    found = nearest.query_points(points.at(left))
    distances[left] = found
    extent_mm = float(np.sum(np.asarray(target.shape) * scale))
    unsure = left[~_rounds_alike(found, TIE_SLACK * (extent_mm + found)) & np.isfinite(found)]
    if unsure.size:
        tree = KDTree(_target_mm(target, scale), leafsize=LEAF_SIZE)
        for start in range(0, len(unsure), CHUNK):
            part = unsure[start:start + CHUNK]
            distances[part] = tree.query(_mm(points.at(part), scale), workers=search_threads())[0]


def _target_mm(target: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """The tree's points: :func:`_mm` of ``np.argwhere(target)`` (24 bytes a voxel, which the tree keeps), the
    indices found as float64 and scaled in place, :data:`CHUNK` voxels at a time."""
    coordinates = edge_indices(target, np.float64)
    for start in range(0, len(coordinates), CHUNK):
        coordinates[start:start + CHUNK] *= scale
    return coordinates


class _Voxels:
    """The query's voxels, in ``np.argwhere`` order: ``held`` (their indices, :func:`edge_indices`), or found from the
    boolean array ``query`` a slab of rows along axis 0 at a time (:data:`CHUNK` voxels or so; 6 bytes a voxel of
    the query not held: a mask whose every voxel is an edge held 5 bytes a voxel of the volume so)."""

    def __init__(self, held: np.ndarray | None = None, query: np.ndarray | None = None):
        self.held, self.query = held, query
        if query is not None:
            self.dtype = index_dtype(query.shape)
            self.before = np.concatenate([[0], np.cumsum([np.count_nonzero(query[row])
                                                          for row in range(query.shape[0])])])

    def between(self, axis: int, start: int, stop: int):
        """``(places, indices)`` of the voxels whose index along ``axis`` lies from ``start`` to ``stop``, a chunk
        at a time (``axis`` 0 where they are not held)."""
        if self.held is not None:
            for first in range(0, len(self.held), CHUNK):
                row = self.held[first:first + CHUNK, axis].astype(np.int64)
                chosen = np.flatnonzero((row >= start) & (row < stop)) + first
                if chosen.size:
                    yield chosen, self.held[chosen]
            return
        # (axis 0: _dense_plan's)
        step = max(1, CHUNK // max(math.prod(self.query.shape[1:]), 1))
        stop = min(stop, self.query.shape[0])
        for low in range(start, stop, step):
            high = min(stop, low + step)
            indices = edge_indices(self.query[low:high], self.dtype)
            if len(indices):
                indices[:, 0] += low
                yield np.arange(self.before[low], self.before[high]), indices

    def at(self, places: np.ndarray) -> np.ndarray:
        """The indices of the voxels at ``places`` (ascending) of ``np.argwhere`` order."""
        if self.held is not None:
            return self.held[places]
        found = np.empty((len(places), self.query.ndim), dtype=self.dtype)
        rows = np.searchsorted(self.before, places, side="right") - 1
        for row in np.unique(rows):
            mine = np.flatnonzero(rows == row)
            local = edge_indices(self.query[row:row + 1], self.dtype)[places[mine] - self.before[row]]
            local[:, 0] = row
            found[mine] = local
        return found


def _dense_plan(shape: tuple[int, ...], scale: np.ndarray, budget_bytes: int) -> tuple[int, int, int] | None:
    """The maps' plan where the target's voxels are too many for one tree within ``budget_bytes``
    (:class:`NearestTarget`: a sixteenth of the volume at scoring's 6 bytes a voxel): the whole box
    where its map fits, else slabs along axis 0 (the query's voxels found a slab at a time, in order) with margins
    of the first of :data:`MARGIN_SHARES` of the rows a map may hold (the voxels beyond them from the planes); None
    where no row's map fits. Building the trees over the slabs of so many voxels costs more than the maps: a noise
    mask's 1.4 million took 5 s, 6 million voxels of map 1-2 s."""
    axis = 0
    rows, per_row = shape[axis], math.prod(shape) // max(shape[axis], 1)
    fit = int(budget_bytes // (MAP_BYTES_PER_VOXEL * max(per_row, 1)))
    if fit >= rows:
        return axis, rows, 0
    if fit < 1:
        return None
    margin = int(fit * MARGIN_SHARES[0]) if fit >= 3 else 0
    return axis, fit - 2 * margin, margin


def search_threads() -> int:
    """Threads for the tree's searches: medseg's (:func:`medseg.resources.cpu_threads`: ``--threads``, else the CPUs
    this process may run on, no more than its cgroup's CPU quota, rounded up). Imports no torch."""
    from medseg.resources import cpu_threads

    return cpu_threads()


def _search_cost(distances: np.ndarray, voxel_mm: float) -> np.ndarray:
    return SEARCH_COST + SEARCH_COST_PER_AREA * (distances / voxel_mm) ** 2


def _cheapest_plan(shape: tuple[int, ...], scale: np.ndarray, budget_bytes: int, sample: np.ndarray,
                   sample_distances: np.ndarray, n_points: int) -> tuple[int, int, int] | None:
    """``(axis, step, margin)`` of the distance maps whose estimated cost is the lowest and below the tree's (slabs of
    ``step`` rows along ``axis`` with ``margin`` rows each side; the whole box: one slab, margin 0), or None where the
    tree costs least. The costs are in voxels of map: the voxels the maps cover, and the tree's searches (all, or
    those of the voxels a slab's map leaves undecided) estimated from ``sample``'s distances. The slabs cut the axis
    longest in mm: a margin of a row there reaches furthest for the memory it takes."""
    voxel_mm = float(scale.min())
    per_point = _search_cost(sample_distances, voxel_mm)
    best, plan = float(per_point.mean()) * n_points, None
    axis = int(np.argmax(np.asarray(shape) * scale))
    rows, per_row, row_mm = shape[axis], math.prod(shape) // shape[axis], float(scale[axis])
    fit = int(budget_bytes // (MAP_BYTES_PER_VOXEL * per_row))
    if fit >= rows:
        candidates = {(rows, 0)}
    else:
        margins = {0} | {int(fit * share) for share in MARGIN_SHARES}
        margins |= {int(math.ceil(float(np.quantile(sample_distances, share)) / row_mm)) + 1
                    for share in DECIDED_SHARES}
        candidates = {(fit - 2 * margin, margin) for margin in margins if margin >= 0 and fit - 2 * margin >= 1}
    planes_fit = _planes_fit(shape, budget_bytes)
    plane_mm = float(scale.max())
    for step, margin in sorted(candidates):
        covered = sum(min(start + step + margin, rows) - max(start - margin, 0) for start in range(0, rows, step))
        left = ~_decided(sample[:, axis], sample_distances, step, margin, rows, row_mm)
        left_cost = float(per_point[left].sum()) * n_points / len(sample)
        if planes_fit and left.any():  # the planes' transforms, then a lookup per plane visited
            lookups = float((2 * sample_distances[left] / plane_mm + 1).sum()) * n_points / len(sample)
            left_cost = min(left_cost, math.prod(shape) + PLANE_LOOKUP_COST * lookups)
        cost = covered * per_row + left_cost
        if cost < best:
            best, plan = cost, (axis, step, margin)
    return plan


def _decided(index: np.ndarray, distances: np.ndarray, step: int, margin: int, rows: int, row_mm: float) -> np.ndarray:
    """Whether a voxel at row ``index`` whose nearest target lies ``distances`` away is decided by its slab's map:
    nearer than any row outside the slab and its margins."""
    index = np.asarray(index, dtype=np.int64)
    start = index // step * step
    low, high = np.maximum(start - margin, 0), np.minimum(start + step + margin, rows)
    below = np.where(low > 0, (index - low + 1) * row_mm, np.inf)
    above = np.where(high < rows, (high - index) * row_mm, np.inf)
    return distances < np.minimum(below, above)


def _rounds_alike(distances: np.ndarray, slack: np.ndarray) -> np.ndarray:
    """Whether every value within ``slack`` of each of ``distances`` rounds to the same float32 (0: the voxel itself,
    exactly 0 in the tree too)."""
    return (distances == 0) | ((distances - slack).astype(np.float32) == (distances + slack).astype(np.float32))


def _from_maps(points: _Voxels, target: np.ndarray, scale: np.ndarray, plan: tuple[int, int, int],
               distances: np.ndarray, budget_bytes: int) -> None:
    """:func:`directed_distances` from scipy's feature transform of ``target`` over slabs of ``plan``, the voxels
    no slab decides from its planes' 2D feature transforms (:func:`_from_planes`, where their
    :data:`PLANE_BYTES_PER_VOXEL` fit ``budget_bytes``), into ``distances``; those left (NaN) are the tree's. The
    voxels (``points``: the query's) are taken :data:`CHUNK` at a time."""
    from scipy.ndimage import distance_transform_edt

    axis, step, margin = plan
    rows = target.shape[axis]
    extent_mm = float(np.sum(np.asarray(target.shape) * scale))
    for start in range(0, rows, step):
        low, high = max(start - margin, 0), min(start + step + margin, rows)
        region = target[(slice(None),) * axis + (slice(low, high),)]
        if not region.any():  # no target voxel here: the feature transform would name none (left to the tree)
            continue
        nearest = None
        for chosen, inside in points.between(axis, start, start + step):
            if nearest is None:
                nearest = distance_transform_edt(~region, sampling=scale, return_distances=False,
                                                 return_indices=True)
            local = inside.T.copy()
            local[axis] -= low
            found = nearest[(slice(None), *local)].T  # (n, ndim) indices in the region
            found[:, axis] += low
            # as the tree measures it: both voxels' indices scaled to mm, then their difference
            offset = _mm(inside, scale) - _mm(found, scale)
            near = np.sqrt(np.einsum("ij,ij->i", offset, offset))
            decided = _decided(inside[:, axis], near, step, margin, rows, float(scale[axis])) & _rounds_alike(
                near, TIE_SLACK * (extent_mm + near))
            distances[chosen[decided]] = near[decided]
        del nearest
    if not _planes_fit(target.shape, budget_bytes) or not np.isnan(distances).any():
        return
    planes = _plane_transforms(target, scale)
    for first in range(0, len(distances), CHUNK):
        left = np.flatnonzero(np.isnan(distances[first:first + CHUNK])) + first
        if not left.size:
            continue
        near = _from_planes(points.at(left), planes, scale)
        alike = np.isfinite(near) & _rounds_alike(near, TIE_SLACK * (extent_mm + near))
        distances[left[alike]] = near[alike]


def _planes_fit(shape: tuple[int, ...], budget_bytes: int) -> bool:
    """Whether the planes' 2D feature transforms (:func:`_from_planes`) fit ``budget_bytes``."""
    return PLANE_BYTES_PER_VOXEL * math.prod(shape) <= budget_bytes and max(shape) <= np.iinfo(np.int16).max


def _plane_transforms(target: np.ndarray, scale: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """The planes across the axis of the largest voxel size, each with scipy's 2D feature transform of ``target``
    there (int16, :data:`PLANE_BYTES_PER_VOXEL` bytes a voxel): ``(axis, nearest, filled)``, ``filled`` whether a
    plane holds a target voxel."""
    from scipy.ndimage import distance_transform_edt

    axis = int(np.argmax(scale))
    across = [a for a in range(target.ndim) if a != axis]
    planes = np.moveaxis(target, axis, 0)
    rows = planes.shape[0]
    filled = planes.reshape(rows, -1).any(axis=1)
    nearest = np.zeros((rows, len(across)) + planes.shape[1:], dtype=np.int16)
    for row in np.flatnonzero(filled):
        nearest[row] = distance_transform_edt(~planes[row], sampling=scale[across], return_distances=False,
                                              return_indices=True)
    return axis, nearest, filled


def _from_planes(points: np.ndarray, planes: tuple[int, np.ndarray, np.ndarray], scale: np.ndarray) -> np.ndarray:
    """Distances (mm, float64, measured as the tree measures them) from ``points`` to the nearest voxel of the
    target whose :func:`_plane_transforms` are ``planes``: a point's nearest voxel in a plane is the one nearest its
    own row and column there, and the planes are visited outwards from the point's until they lie further than the
    nearest found. The voxels a slab leaves undecided (deep inside the other mask, beyond its margins) cost a tree
    search of a whole cap of the other surface each (about 1 ms); here a few dozen lookups."""
    axis, nearest, filled = planes
    ndim = points.shape[1]
    across = [a for a in range(ndim) if a != axis]
    rows = len(filled)
    where = _mm(points, scale)
    row_mm = float(scale[axis])
    best = np.full(len(points), np.inf)
    active = np.arange(len(points))
    for step in range(rows):
        # a plane ``step`` rows away lies at least step × row_mm away (the slack: the rounding of the distances)
        active = active[best[active] >= step * row_mm * (1 - 2.0 ** -40)]
        if not active.size:
            break
        for sign in ((1,) if step == 0 else (1, -1)):
            row = points[active, axis].astype(np.int64) + sign * step
            chosen = (row >= 0) & (row < rows)
            chosen[chosen] = filled[row[chosen]]
            ids, row = active[chosen], row[chosen]
            found = np.empty((len(ids), ndim), dtype=np.int64)
            found[:, axis] = row
            inside = tuple(points[ids, a] for a in across)
            for k, a in enumerate(across):
                found[:, a] = nearest[(row, k, *inside)]
            offset = where[ids] - _mm(found, scale)
            near = np.sqrt(np.einsum("ij,ij->i", offset, offset))
            better = near < best[ids]
            best[ids[better]] = near[better]
    return best


# a k-d tree's bytes a point at its peak, its points' float64 positions included: scipy's KDTree (leaves of 32) holds
# 19-22 bytes a point besides the positions' 24 while it builds, cKDTree (leaves of 64, nodes not compact) 16
TREE_BYTES_PER_POINT = 48
# the share of the budget a tree may hold (the map's, beside which the whole tree is searched; on a sheared grid both
# directions' float64 distances beside it: a lattice held 32.1 bytes a voxel with trees of the whole budget)
TREE_SHARE = 0.5
# the rows the slabs' trees reach beyond their own, each side: up to this share of the points a tree may hold
HALO_SHARE = 1 / 4
# a row further along axis 0 lies at least this share of the rows' least distance away (the rounding of the bound)
ROW_SLACK = 1 - 2.0 ** -30


class NearestTarget:
    """The distances (float64, as a k-d tree over all of them measures them) from points to the nearest voxel of the
    boolean array ``target``, from k-d trees of the voxels' positions within :data:`TREE_SHARE` of ``budget_bytes``
    (:data:`TREE_BYTES_PER_POINT` a voxel): one tree over all of them where it fits, as scoring always built, else
    trees over slabs of rows along axis 0, each reaching a halo of rows beyond its own (up to :data:`HALO_SHARE` of
    the points a tree may hold each side), built one at a time: a mask whose every voxel is an edge (noise, a
    lattice) made a tree of 37 bytes a voxel of the volume. A point whose nearest in its slab's tree lies closer than
    any row outside the tree's rows is decided there; any other is searched in the trees of every slab that may
    hold a nearer voxel. Each tree finds the nearest of its voxels, the smallest of the distances it measures; where
    several voxels lie at the same distance the whole tree and a slab's may find ones whose distances differ in the
    last bit.

    ``positions``: float64 voxel indices (n, ndim) to positions in mm, in place (a block of :data:`CHUNK` rows at a
    time, the same values whatever the block); ``make_tree``: the tree of an array of positions; ``row_mm``: the
    least distance (mm) between two voxels a row apart along axis 0."""

    def __init__(self, target: np.ndarray, positions, make_tree, row_mm: float, budget_bytes: int, workers: int):
        self.target, self.positions, self.make_tree = target, positions, make_tree
        self.row_mm, self.workers = float(row_mm) * ROW_SLACK, workers
        self.rows = target.shape[0] if target.ndim else 0
        per_row = np.fromiter((np.count_nonzero(target[row]) for row in range(self.rows)), dtype=np.int64,
                              count=self.rows)
        self.count = np.concatenate([[0], np.cumsum(per_row)])
        fit = max(1.0, budget_bytes * TREE_SHARE / TREE_BYTES_PER_POINT)  # an infinite budget: one tree
        self.tree = self._tree(0, self.rows) if self.count[-1] <= fit else None
        self.slabs = [] if self.tree is not None else _tree_slabs(self.count, int(fit))

    @property
    def whole(self) -> bool:
        """Whether one tree holds all of the target's voxels."""
        return self.tree is not None

    def _tree(self, low: int, high: int):
        """The tree of the target's voxels in rows ``low`` to ``high`` (None where they hold none)."""
        points = edge_indices(self.target[low:high], np.float64)
        if not len(points):
            return None
        points[:, 0] += low
        for start in range(0, len(points), CHUNK):
            points[start:start + CHUNK] = self.positions(points[start:start + CHUNK])
        return self.make_tree(points)

    def _search(self, tree, indices: np.ndarray, bound: float = np.inf) -> np.ndarray:
        """``tree``'s distances of the voxels at ``indices`` (None: no tree, infinite)."""
        if tree is None:
            return np.full(len(indices), np.inf)
        return tree.query(self.positions(indices.astype(np.float64)), workers=self.workers,
                          distance_upper_bound=bound)[0]

    def query_points(self, points: np.ndarray) -> np.ndarray:
        """The distances of the voxels at the integer indices ``points`` (n, ndim), sorted by their index along axis
        0 (as ``np.argwhere`` gives them, or a part of those)."""
        found = np.empty(len(points), dtype=np.float64)
        if self.tree is not None:
            for start in range(0, len(points), CHUNK):
                found[start:start + CHUNK] = self._search(self.tree, points[start:start + CHUNK])
            return found
        rows = points[:, 0]
        self._query(lambda low, high: (int(np.searchsorted(rows, low)), points[np.searchsorted(rows, low):
                                                                               np.searchsorted(rows, high)]),
                    found)
        return found

    def query_mask(self, query: np.ndarray, found: np.ndarray) -> None:
        """The distances of the voxels of the boolean array ``query`` (of the target's shape) into ``found``, in
        ``np.argwhere(query)`` order, their indices found a slab of rows at a time."""
        if self.tree is not None:
            step = max(1, CHUNK // max(math.prod(query.shape[1:]), 1))
            at = 0
            for low in range(0, query.shape[0], step):
                indices = edge_indices(query[low:low + step], index_dtype(query.shape))
                indices[:, 0] += low
                found[at:at + len(indices)] = self._search(self.tree, indices)
                at += len(indices)
            return
        before = np.concatenate([[0], np.cumsum([np.count_nonzero(query[row]) for row in range(query.shape[0])])])

        def slab(low: int, high: int) -> tuple[int, np.ndarray]:
            indices = edge_indices(query[low:high], index_dtype(query.shape))
            indices[:, 0] += low
            return int(before[low]), indices

        self._query(slab, found)

    def _query(self, slab, found: np.ndarray) -> None:
        """The slabs' searches: ``slab(low, high)`` gives the first place in ``found`` and the indices of the query's
        voxels in rows ``low`` to ``high``."""
        undecided, where = [], []
        for low, high, reach_low, reach_high in self.slabs:
            at, indices = slab(low, high)
            if not len(indices):
                continue
            tree = self._tree(reach_low, reach_high)
            for start in range(0, len(indices), CHUNK):
                part = indices[start:start + CHUNK]
                near = self._search(tree, part)
                found[at + start:at + start + len(part)] = near
                row = part[:, 0].astype(np.int64)
                below = np.where(reach_low > 0, (row - reach_low + 1) * self.row_mm, np.inf)
                above = np.where(reach_high < self.rows, (reach_high - row) * self.row_mm, np.inf)
                left = np.flatnonzero(near >= np.minimum(below, above))
                undecided.append(part[left])
                where.append(at + start + left)
            del tree
        if not sum(len(w) for w in where):
            return
        indices, where = np.concatenate(undecided), np.concatenate(where)
        row = indices[:, 0].astype(np.int64)
        for low, high, _, _ in self.slabs:  # the slabs' own rows: every row once
            gap = np.maximum(np.maximum(low - row, row - high + 1), 0) * self.row_mm
            chosen = np.flatnonzero(gap <= found[where])
            if not chosen.size or self.count[high] == self.count[low]:
                continue
            tree = self._tree(low, high)
            for start in range(0, len(chosen), CHUNK):
                part = chosen[start:start + CHUNK]
                best = found[where[part]]
                bound = float(best.max()) * (1 + 2.0 ** -40)
                near = self._search(tree, indices[part], bound if np.isfinite(bound) else np.inf)
                found[where[part]] = np.minimum(best, near)
            del tree


def _tree_slabs(count: np.ndarray, fit: int) -> list[tuple[int, int, int, int]]:
    """Slabs of rows ``(low, high, reach_low, reach_high)`` whose own rows hold up to half of ``fit`` voxels (a row
    at least) and reach rows beyond each side holding up to :data:`HALO_SHARE` of it; ``count``: the voxels before
    each row."""
    rows = len(count) - 1
    halo = int(fit * HALO_SHARE)
    slabs, low = [], 0
    while low < rows:
        high = max(low + 1, int(np.searchsorted(count, count[low] + fit // 2, side="right")) - 1)
        high = min(high, rows)
        reach_low = min(low, int(np.searchsorted(count, count[low] - halo, side="left")))
        reach_high = max(high, int(np.searchsorted(count, count[high] + halo, side="right")) - 1)
        slabs.append((low, high, reach_low, min(reach_high, rows)))
        low = high
    return slabs
