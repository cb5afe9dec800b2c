"""Directed surface distances: the k-d tree's and the distance maps' values are MONAI's, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from monai.metrics.utils import get_surface_distance

import medseg.metrics as metrics
import medseg.surface_distance as surface_distance
import medseg.surface_metrics as surface_metrics
from medseg.surface_distance import MAP_BYTES_PER_VOXEL, directed_distances


def _ellipsoid(shape, centre, radii) -> np.ndarray:
    grid = np.ogrid[tuple(slice(0, n) for n in shape)]
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii)) <= 1


def _edges(mask: np.ndarray) -> np.ndarray:
    box = tuple(slice(0, n) for n in mask.shape)
    return surface_metrics._mask_edges(mask.astype(np.uint8), 1, box)


def _random_pair(rng, kind: str, shape) -> tuple[np.ndarray, np.ndarray]:
    centre, radii = [n / 2 for n in shape], [max(n / 2.5, 1) for n in shape]
    ref = _ellipsoid(shape, centre, radii)
    pred = _ellipsoid(shape, [c + rng.normal(0, 2) for c in centre], [r * rng.uniform(0.7, 1.2) for r in radii])
    if kind == "speckled":
        pred = ref & (rng.random(shape) >= rng.uniform(0.01, 0.2))
    elif kind == "border":
        pred[:2] = True
        ref[..., -1:] = True
    elif kind == "single":
        pred[:] = False
        pred[tuple(int(rng.integers(0, n)) for n in shape)] = True
    elif kind == "noise":
        pred, ref = rng.random(shape) < 0.3, rng.random(shape) < 0.3
    return pred, ref


@pytest.fixture
def maps_always(monkeypatch):
    """The tree's searches priced so high that a distance map is always the plan, the plan priced from a sample
    searched in one tree over all of the target, whatever the budget (these small volumes' surfaces are a large
    share of their voxels)."""
    monkeypatch.setattr(surface_distance, "SEARCH_COST", 1e9)
    monkeypatch.setattr(surface_distance, "TREE_SHARE", float("inf"))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("budget_share", [1.0, 0.3, 0.05], ids=["whole box", "slabs", "thin slabs"])
def test_maps_give_monai_distances_bit_for_bit(seed, budget_share, maps_always):
    """Random shapes (speckled, shifted, touching the faces, one voxel, noise; 3D and 2D; anisotropic voxels), the
    map over the whole box or in slabs with margins: every float32 distance is the one MONAI's k-d tree gives."""
    rng = np.random.default_rng(seed)
    for kind in ("speckled", "shifted", "border", "single", "noise"):
        flat = rng.random() < 0.3
        shape = (int(rng.integers(5, 70)), int(rng.integers(5, 70))) if flat else \
            tuple(int(rng.integers(4, 30)) for _ in range(3))
        spacing = [float(s) for s in rng.choice([0.3125, 0.7, 1.0, 2.5, 3.0], len(shape))]
        pred, ref = (_edges(mask) for mask in _random_pair(rng, kind, shape))
        budget = int(budget_share * MAP_BYTES_PER_VOXEL * pred.size)
        for query, target in ((pred, ref), (ref, pred)):
            expected = get_surface_distance(query, target, distance_metric="euclidean", spacing=spacing)
            found = directed_distances(query, target, spacing, budget)
            assert found.dtype == np.float32
            np.testing.assert_array_equal(found, expected, err_msg=f"{kind} {shape} {spacing}")


def test_a_speckled_prediction_takes_the_map_and_scores_as_monai(monkeypatch):
    """A prediction with 2 % of its voxels knocked out has edges deep inside the reference: the distances come from
    the map (the tree's search is the slow one there), and HD95 and ASSD are those of MONAI's distances."""
    rng = np.random.default_rng(3)
    shape = (44, 40, 30)
    ref = _ellipsoid(shape, [n / 2 for n in shape], (20, 18, 13)).astype(np.uint8)
    pred = ref * (rng.random(shape) >= 0.02).astype(np.uint8)
    plans = []
    real = surface_distance._cheapest_plan
    monkeypatch.setattr(surface_distance, "_cheapest_plan", lambda *args: plans.append(real(*args)) or plans[-1])
    box = metrics._bounding_box((pred == 1) | (ref == 1))
    spacing = (0.7, 0.7, 2.5)
    hd95, assd = surface_metrics._surface_metrics(pred, ref, 1, box, spacing)

    edges = [surface_metrics._mask_edges(array, 1, box) for array in (pred, ref)]
    forward, backward = (np.asarray(get_surface_distance(a, b, distance_metric="euclidean", spacing=spacing),
                                    dtype=np.float64) for a, b in (edges, edges[::-1]))
    expected_hd95 = max(np.percentile(forward, 95), np.percentile(backward, 95))
    expected_assd = np.concatenate([forward, backward]).mean()
    assert (hd95, assd) == (float(f"{expected_hd95:.7g}"), float(f"{expected_assd:.7g}"))
    assert (hd95, assd) == (7.0, 0.9589132)  # holes up to 10 voxels of 0.7 mm deep in the reference
    assert plans[0] == (2, 29, 0)  # the speckled prediction's edges: one map over the box (its 29 rows of 2.5 mm)
    assert plans[1] is None  # the reference's edges lie beside the prediction's: the tree


def test_maps_stay_within_the_budget(monkeypatch, maps_always):
    """No map holds more than the budget: slabs along the axis longest in mm, each with its margins."""
    from scipy import ndimage

    regions = []
    real = ndimage.distance_transform_edt
    monkeypatch.setattr(ndimage, "distance_transform_edt",
                        lambda region, **kw: regions.append(region.shape) or real(region, **kw))
    rng = np.random.default_rng(0)
    shape = (30, 24, 40)
    pred, ref = (_edges(mask) for mask in _random_pair(rng, "speckled", shape))
    spacing = (0.8, 0.8, 1.5)  # the last axis: 60 mm
    budget = MAP_BYTES_PER_VOXEL * 30 * 24 * 12  # twelve rows of the last axis
    found = directed_distances(pred, ref, spacing, budget)
    np.testing.assert_array_equal(found, get_surface_distance(pred, ref, "euclidean", spacing))
    slabs = [region for region in regions if len(region) == 3]  # the rest: planes of the voxels no slab decides
    assert len(slabs) >= 4
    assert all(region[:2] == (30, 24) and region[2] <= 12 for region in slabs)
    assert all(region == (30, 24) for region in regions if len(region) == 2)


def test_empty_sides():
    """A target with no voxel: every distance infinite, as MONAI's; a query with none: no distances (MONAI's gives one
    infinite distance per target voxel; scoring never asks)."""
    some, none = np.zeros((4, 5, 6), bool), np.zeros((4, 5, 6), bool)
    some[1, 2, 3] = some[2, 2, 2] = True
    assert np.isinf(directed_distances(some, none, (1, 1, 1), 1 << 20)).tolist() == [True, True]
    assert directed_distances(none, some, (1, 1, 1), 1 << 20).shape == (0,)


def test_surfaces_side_by_side_keep_the_tree():
    """Organ-like surfaces a voxel or two apart: the tree's searches cost less than a map of the box."""
    shape = (60, 50, 40)
    ref = _edges(_ellipsoid(shape, (30, 25, 20), (25, 20, 15)))
    pred = _edges(_ellipsoid(shape, (31, 25, 21), (24, 21, 15)))
    points = np.argwhere(pred)
    scale = np.array([0.7, 0.7, 2.5])
    from scipy.spatial import KDTree

    near = KDTree(np.argwhere(ref) * scale).query(points * scale)[0]
    assert surface_distance._cheapest_plan(shape, scale, 1 << 30, points, near, len(points)) is None


def test_search_threads_follow_medsegs_threads_else_the_cgroup_quota(monkeypatch):
    """The tree's searches use the threads ``set_threads`` was given (``--threads``), torch or not, else the CPUs this
    process may use, no more than a cgroup's quota: 1.5 CPUs on an 8-CPU machine start 2 threads, not 8. Scoring sets
    them without importing torch (it imported torch only to hold the count, 1.9-2.5 s a job)."""
    import medseg.resources as resources

    monkeypatch.setattr(resources, "_threads", None)
    monkeypatch.setattr(resources, "usable_cpus", lambda: 8)
    monkeypatch.setattr(resources, "cgroup_cpus", lambda: resources.CgroupLimit(1.5, "/sys/fs/cgroup/cpu.max"))
    assert surface_distance.search_threads() == 2
    monkeypatch.setattr(resources, "cgroup_cpus", lambda: None)
    assert surface_distance.search_threads() == 8
    resources.set_threads(3, torch=False)
    assert surface_distance.search_threads() == 3
    resources.set_threads(None, torch=False)  # no --threads: those given before stay
    assert surface_distance.search_threads() == 3


def test_two_edges_at_one_distance_give_the_trees_float32(maps_always):
    """Two edge voxels five voxels away (5·s along an axis, and 4·s by 3·s) whose float64 distances differ in the last
    bits by the rounding of their coordinates, on either side of a float32 rounding boundary (a voxel size that is no
    float32 value, as an oblique affine's column norms are): the map named the one the tree does not, and its float32
    distance was one unit above MONAI's (24.910276 against 24.910275); such a voxel is now looked up in the tree."""
    spacing = [4.9820550918579105] * 2
    query, target = np.zeros((10, 13), bool), np.zeros((10, 13), bool)
    query[5, 7] = True
    target[0, 7] = target[1, 4] = True
    expected = get_surface_distance(query, target, distance_metric="euclidean", spacing=spacing)
    found = directed_distances(query, target, spacing, 1 << 20)
    assert found.tolist() == expected.tolist() == [24.910274505615234]


def test_voxels_deeper_than_the_margins_come_from_the_planes_not_the_tree(monkeypatch, maps_always):
    """A speckled ellipsoid whose box is cut into slabs: its deepest edges lie further inside the reference than a
    slab's margins reach. They take the planes' 2D feature transforms; the tree is asked only for its sample (each
    of those searches visits a whole cap of the other surface: a 512×512×100 case took over 300 s, now 19 s)."""
    from scipy.spatial import KDTree

    searched = []
    real = KDTree.query
    monkeypatch.setattr(KDTree, "query", lambda self, x, *a, **kw: searched.append(len(x)) or real(self, x, *a, **kw))
    rng = np.random.default_rng(5)
    shape = (64, 64, 12)
    ref = _ellipsoid(shape, [n / 2 for n in shape], (30, 30, 5))
    pred, ref = _edges(ref & (rng.random(shape) >= 0.05)), _edges(ref)
    spacing = (0.7, 0.7, 2.5)  # slabs along the first axis; planes across the last
    plans = []
    real_plan = surface_distance._cheapest_plan
    monkeypatch.setattr(surface_distance, "_cheapest_plan", lambda *args: plans.append(real_plan(*args)) or plans[-1])
    budget = 6 * pred.size  # scoring's: 6 bytes a voxel, of 14 a map would hold
    found = directed_distances(pred, ref, spacing, budget)
    ours = list(searched)  # MONAI's own search follows
    np.testing.assert_array_equal(found, get_surface_distance(pred, ref, "euclidean", spacing))
    axis, step, margin = plans[0]
    assert axis == 0 and margin * 0.7 < found.max()  # some edges lie beyond the margins
    assert ours == [len(np.argwhere(pred)[::max(1, int(pred.sum()) // surface_distance.SAMPLE)])]


def test_the_plan_prices_the_planes_not_the_tree_for_voxels_beyond_the_margins(monkeypatch, maps_always):
    """With the planes within the budget, the voxels a slab leaves undecided cost a lookup per plane visited, not a
    tree search: the slabs drop their margins (27 rows each, none of margin, against 7 rows with 10 each side, which
    cover the box 3.9 times over: 512×512×200 speckled, 149 s → 32 s)."""
    from scipy.spatial import KDTree

    rng = np.random.default_rng(5)
    shape = (64, 64, 12)
    ref = _ellipsoid(shape, [n / 2 for n in shape], (30, 30, 5))
    pred, ref = _edges(ref & (rng.random(shape) >= 0.05)), _edges(ref)
    scale = np.array((0.7, 0.7, 2.5))
    points = np.argwhere(pred)
    sample = points[::len(points) // surface_distance.SAMPLE]
    near = KDTree(np.argwhere(ref) * scale).query(sample * scale)[0]
    assert surface_distance._cheapest_plan(shape, scale, 6 * pred.size, sample, near, len(points)) == (0, 27, 0)
    monkeypatch.setattr(surface_distance, "PLANE_BYTES_PER_VOXEL", 7)  # planes beyond the budget: the old plan
    assert surface_distance._cheapest_plan(shape, scale, 6 * pred.size, sample, near, len(points)) == (0, 7, 10)


def _traced_peak(function, *args):
    """``function(*args)`` and the peak of the memory numpy allocated meanwhile (tracemalloc), in bytes."""
    import tracemalloc

    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        result = function(*args)
        return result, tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def test_edge_indices_are_argwheres_rows_in_the_narrowest_type():
    """The query's voxels as int16 indices (int32 where an axis holds more than 32767 voxels), found a slab at a
    time: np.argwhere's rows, in its order."""
    rng = np.random.default_rng(0)
    for shape in ((37, 20, 11), (50, 61), (3, 1, 4), (2, 40000)):
        mask = rng.random(shape) < 0.4
        found = surface_distance.edge_indices(mask)
        assert found.dtype == (np.int32 if max(shape) > 32767 else np.int16)
        np.testing.assert_array_equal(found, np.argwhere(mask))
    assert surface_distance.edge_indices(np.zeros((4, 5, 6), bool)).shape == (0, 3)


@pytest.mark.parametrize("plan", ["tree", "maps"])
def test_noise_holds_about_16_bytes_a_query_voxel_beside_the_map(monkeypatch, plan):
    """A prediction of random noise (every voxel of it an edge) against an ellipsoid's surface: the query's voxels
    were int64 indices from np.argwhere (48 bytes each while it made them), float64 copies in mm (24, twice while
    made), float64 distances and per-slab copies (over 100 bytes an edge voxel at the peak, 62 bytes a voxel of
    the box in a 320×320×100 case); now int32 indices (12) and float32 distances (4), the rest a chunk at a time.
    The distances stay MONAI's."""
    monkeypatch.setattr(surface_distance, "CHUNK", 4096, raising=False)
    if plan == "tree":
        monkeypatch.setattr(surface_distance, "SEARCH_COST", 0.0)
        monkeypatch.setattr(surface_distance, "SEARCH_COST_PER_AREA", 0.0)
    else:
        monkeypatch.setattr(surface_distance, "SEARCH_COST", 1e9)
    rng = np.random.default_rng(1)
    shape = (64, 64, 40)
    query = _edges(rng.random(shape) < 0.5)
    target = _edges(_ellipsoid(shape, [n / 2 for n in shape], (28, 28, 17)))
    spacing = (0.7, 0.7, 2.5)
    budget = 6 * query.size
    found, peak = _traced_peak(directed_distances, query, target, spacing, budget)
    np.testing.assert_array_equal(found, get_surface_distance(query, target, "euclidean", spacing))
    n_query, n_target = int(query.sum()), int(target.sum())
    assert n_query > 60_000 and n_target < 15_000
    held = peak - 64 * n_target - (budget if plan == "maps" else 0)  # the tree's points and indices; the map
    assert held < 20 * n_query, (held / n_query, plan)


def test_the_figures_of_both_directions_are_the_float64_ones_in_a_third_of_the_memory():
    """HD95 (the larger direction's 95th percentile) and ASSD (the mean of both) from one float64 array, each
    direction's percentile partitioning its own part: bit for bit np.percentile's and np.concatenate(...).mean()'s
    values of the float64 distances, holding 8 bytes a distance beyond the float32 ones (float64 copies of each,
    their concatenation and the percentile's copies held 24 and more)."""
    rng = np.random.default_rng(2)
    forward = (rng.random(300_000) * 40).astype(np.float32)
    backward = np.round(rng.random(100_001) * 30, 1).astype(np.float32)  # ties
    old_forward, old_backward = forward.astype(np.float64), backward.astype(np.float64)
    expected = (max(float(np.percentile(old_forward, 95)), float(np.percentile(old_backward, 95))),
                float(np.concatenate([old_forward, old_backward]).mean()))
    del old_forward, old_backward
    (hd95, assd), peak = _traced_peak(surface_metrics._hd95_and_mean, forward, backward)
    assert (hd95, assd) == expected
    assert peak <= 8 * (len(forward) + len(backward)) + 65536


def test_scoring_a_noise_prediction_stays_within_what_the_guard_charges(monkeypatch):
    """A prediction of random noise over the volume (every predicted voxel an edge) against an ellipsoid: scoring's
    peak, the labels (2 bytes a voxel) and the tree's nodes (about 12 bytes a tree voxel, outside numpy's traced
    memory) included, within SCORING_BYTES_PER_VOXEL. It held 62 bytes a voxel of numpy arrays alone where 24 were
    charged; scaled down here (CHUNK, and no 128 MB floor under the map's budget) as on a 512×512×100 volume."""
    from medseg.voxel_charge import SCORING_BYTES_PER_VOXEL

    monkeypatch.setattr(surface_distance, "CHUNK", 4096, raising=False)
    monkeypatch.setattr(surface_metrics, "DISTANCE_MAP_MIN_BYTES", 0)
    rng = np.random.default_rng(4)
    shape = (112, 112, 64)
    ref = _ellipsoid(shape, [n / 2 for n in shape], (54, 54, 30)).astype(np.uint8)
    pred = (rng.random(shape) < 0.5).astype(np.uint8)
    box = tuple(slice(0, n) for n in shape)
    (hd95, assd), peak = _traced_peak(surface_metrics._surface_metrics, pred, ref, 1, box, (0.7, 0.7, 2.5))
    tree_nodes = 12 * int(surface_metrics._mask_edges(pred, 1, box).sum())
    assert (peak + tree_nodes + 2 * pred.size) / pred.size <= SCORING_BYTES_PER_VOXEL, peak / pred.size
    assert (hd95, assd) == (24.78023, 9.743754)  # as before, bit for bit


def test_scoring_a_noise_prediction_on_a_sheared_grid_stays_within_what_the_guard_charges(monkeypatch):
    """The world-space distances of a sheared grid (a tilted gantry): a prediction of random noise held np.argwhere's
    int64 indices beside their float64 world positions, and each tree search's int64 neighbour indices beside the
    distances, 45 bytes a voxel with the labels and the tree's nodes where 32 are charged (41.6 resident on
    320×320×100 voxels). Within the charge now, every distance the one scipy's default tree finds from
    ``np.argwhere(edges) @ columns.T``, bit for bit."""
    import math

    from scipy.spatial import cKDTree

    from medseg.voxel_charge import SCORING_BYTES_PER_VOXEL

    monkeypatch.setattr(surface_distance, "CHUNK", 4096)
    rng = np.random.default_rng(4)
    shape = (80, 80, 40)
    ref = _ellipsoid(shape, [n / 2 for n in shape], (38, 38, 18)).astype(np.uint8)
    pred = (rng.random(shape) < 0.5).astype(np.uint8)
    box = tuple(slice(0, n) for n in shape)
    columns = np.diag([0.7, 0.7, 2.5])
    columns[1, 2] = 2.5 * math.tan(math.radians(20))
    small = tuple(slice(0, 8) for _ in shape)  # scipy's first-call allocations, outside the peak
    surface_metrics._surface_metrics(pred[small], ref[small] | 1, 1, small, (0.7, 0.7, 2.5), columns)
    (hd95, assd), peak = _traced_peak(surface_metrics._surface_metrics, pred, ref, 1, box, (0.7, 0.7, 2.5), columns)
    tree_nodes = 12 * int(surface_metrics._mask_edges(pred, 1, box).sum())
    assert (peak + tree_nodes + 2 * pred.size) / pred.size <= SCORING_BYTES_PER_VOXEL, peak / pred.size
    edges = [surface_metrics._mask_edges(array, 1, box) for array in (pred, ref)]
    points = [np.argwhere(e) @ columns.T for e in edges]
    expected = (cKDTree(points[1]).query(points[0])[0], cKDTree(points[0]).query(points[1])[0])
    for ours, theirs in zip(surface_metrics._world_distances(edges, columns), expected):
        assert ours.dtype == np.float64
        np.testing.assert_array_equal(ours, theirs)
    assert (hd95, assd) == (max(np.percentile(expected[0], 95), np.percentile(expected[1], 95)),
                            np.concatenate(expected).mean())


@pytest.mark.parametrize(("kind", "tilt_deg", "expected"), [
    ("lattice", 0, (0.7, 0.1166657)),
    ("lattice", 20, (0.6999999999999957, 0.11666574360516106)),
    ("noise", 0, (0.7, 0.3644981)),
    ("noise", 20, (0.7000000000000028, 0.3644981238163112)),
])
def test_masks_whose_every_voxel_is_an_edge_are_scored_within_the_charge(monkeypatch, kind, tilt_deg, expected):
    """Both masks noise (half of the voxels, nearly all edges) or a lattice (6/7 of them, every one an edge), on an
    orthogonal and a sheared grid: the k-d tree of the other mask's edges held 37 bytes a voxel of the volume (a
    lattice scored 70 bytes a voxel resident where 32 are charged, noise 49). Its trees now hold at most the map's
    budget, over slabs of rows; on an orthogonal grid the distance maps decide every voxel and no tree is built. The
    peak of numpy's memory, the labels (2 bytes a voxel) and the largest tree's nodes (at most 14 bytes a point,
    outside numpy's traced memory) within SCORING_BYTES_PER_VOXEL; scaled down (CHUNK, and no 128 MB floor under the
    budget) as on a 512×512×100 volume. HD95 and ASSD those of one tree over all edges, bit for bit."""
    import math

    import scipy.spatial

    from medseg.voxel_charge import SCORING_BYTES_PER_VOXEL

    monkeypatch.setattr(surface_distance, "CHUNK", 4096)
    monkeypatch.setattr(surface_metrics, "DISTANCE_MAP_MIN_BYTES", 0)
    largest = [0]
    for name in ("KDTree", "cKDTree"):
        def counted(points, *args, _real=getattr(scipy.spatial, name), **options):
            largest[0] = max(largest[0], len(points))
            return _real(points, *args, **options)
        monkeypatch.setattr(scipy.spatial, name, counted)
    shape = (96, 96, 48)
    if kind == "lattice":
        i, j, k = np.ogrid[tuple(slice(0, n) for n in shape)]
        pred, ref = ((i + 2 * j + 3 * k) % 7 != 0).astype(np.uint8), ((i + 2 * j + 3 * k + 1) % 7 != 0).astype(np.uint8)
    else:
        rng = np.random.default_rng(5)
        pred, ref = (rng.random(shape) < 0.5).astype(np.uint8), (rng.random(shape) < 0.5).astype(np.uint8)
    columns = None
    if tilt_deg:
        columns = np.diag([0.7, 0.7, 2.5])
        columns[1, 2] = 2.5 * math.tan(math.radians(tilt_deg))
    box = tuple(slice(0, n) for n in shape)
    small = tuple(slice(0, 8) for _ in shape)  # scipy's first-call allocations, outside the peak
    surface_metrics._surface_metrics(pred[small], ref[small] | 1, 1, small, (0.7, 0.7, 2.5), columns)
    largest[0] = 0
    figures, peak = _traced_peak(surface_metrics._surface_metrics, pred, ref, 1, box, (0.7, 0.7, 2.5), columns)
    held = (peak + 14 * largest[0] + 2 * pred.size) / pred.size
    assert held <= SCORING_BYTES_PER_VOXEL, (held, largest[0])
    assert figures == expected


@pytest.mark.parametrize("seed", range(4))
def test_trees_over_slabs_of_rows_give_one_trees_distances_bit_for_bit(seed):
    """Targets whose tree does not fit the budget (TREE_SHARE of it): on an orthogonal grid the maps' plan without a
    sample, the voxels left searched in trees over slabs of rows, each reaching a halo beyond its own, and those
    beyond the halos in every slab that may hold a nearer voxel; on a sheared grid every voxel so. Random shapes,
    noise, a lattice, noise beside a box far from it, speckled ellipsoids; anisotropic voxels; budgets of a sixth
    and half of one tree, and none: every distance MONAI's (orthogonal) and one tree's over all of the target's
    world positions (sheared), bit for bit."""
    import math

    from scipy.spatial import cKDTree

    rng = np.random.default_rng(seed)
    for kind in ("noise", "lattice", "apart", "speckled"):
        shape = tuple(int(n) for n in rng.integers(8, 36, 3))
        if kind == "lattice":
            i, j, k = np.ogrid[tuple(slice(0, n) for n in shape)]
            pred, ref = (i + 2 * j + 3 * k) % 7 != 0, (i + 2 * j + 3 * k + 1) % 7 != 0
        elif kind == "apart":
            pred, ref = np.zeros(shape, bool), np.zeros(shape, bool)
            pred[:shape[0] // 3] = rng.random((shape[0] // 3, *shape[1:])) < 0.5
            ref[shape[0] // 2:, 2:-2, 1:-1] = True
        elif kind == "noise":
            pred, ref = rng.random(shape) < 0.5, rng.random(shape) < rng.uniform(0.2, 0.8)
        else:
            pred, ref = _random_pair(rng, "speckled", shape)
        edges = [_edges(pred), _edges(ref)]
        spacing = tuple(float(s) for s in rng.choice([0.7, 1.0, 2.5, 0.3125, 0.43], 3))
        for query, target in (edges, edges[::-1]):
            expected = get_surface_distance(query, target, distance_metric="euclidean", spacing=spacing)
            tree_bytes = surface_distance.TREE_BYTES_PER_POINT * int(target.sum()) / surface_distance.TREE_SHARE
            for budget in (int(tree_bytes / 6), int(tree_bytes / 2), 1 << 40):
                np.testing.assert_array_equal(directed_distances(query, target, spacing, budget), expected)
        columns = np.diag(spacing)
        columns[1, 2] = spacing[2] * math.tan(math.radians(rng.uniform(5, 30)))
        turn = rng.uniform(0, 1)
        columns = np.array([[math.cos(turn), -math.sin(turn), 0], [math.sin(turn), math.cos(turn), 0], [0, 0, 1]]
                           ) @ columns
        points = [np.argwhere(e) @ columns.T for e in edges]
        expected = (cKDTree(points[1], leafsize=64, compact_nodes=False).query(points[0])[0],
                    cKDTree(points[0], leafsize=64, compact_nodes=False).query(points[1])[0])
        smaller = min(int(e.sum()) for e in edges) * surface_distance.TREE_BYTES_PER_POINT
        for budget in (smaller // 3, smaller, None):
            for ours, theirs in zip(surface_metrics._world_distances(edges, columns, budget), expected):
                np.testing.assert_array_equal(ours, theirs)
