"""HD95 and ASSD (medseg.surface_metrics) against known answers and brute-force distances: spheres, the volume's
faces, 2D images, sheared grids, edges found a slab at a time."""

from __future__ import annotations

import math

import numpy as np
import pytest
from metric_cases import ball, independent_metrics, make_affine, score
from scipy import ndimage as ndi

from medseg.metrics import evaluate_volumes
from medseg.volume import Volume


# ---------------------------------------------------------------- synthetic shapes with known answers
@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.6, 0.9, 1.5)])
@pytest.mark.parametrize(("radius", "distance"), [(10.0, 30.0), (8.0, 20.0)])
def test_two_disjoint_spheres_a_known_distance_apart(spacing, radius, distance):
    """Spheres of radius R, centres D apart: a surface point's distance to the other sphere is
    sqrt(D² + R² + 2DRt) − R with t uniform in [−1, 1] (Archimedes), so HD95 is at t = 0.9 and
    ASSD = D + R²/(3D) − R. The voxelised answer agrees within one voxel."""
    shape = (int(np.ceil((2 * radius + distance + 10) / spacing[0])),) + tuple(
        int(np.ceil((2 * radius + 10) / s)) for s in spacing[1:]
    )
    centre = np.array([5 + radius, 5 + radius, 5 + radius])
    a = ball(shape, spacing, centre, radius).astype(np.uint8)
    b = ball(shape, spacing, centre + [distance, 0, 0], radius).astype(np.uint8)
    affine = make_affine(spacing)
    got = score(a, b, affine)["1"]
    tolerance = max(spacing)
    assert got["dice"] == 0.0
    assert got["false_positive_ml"] == pytest.approx(got["pred_volume_ml"])
    assert got["hd95_mm"] == pytest.approx(math.sqrt(distance**2 + radius**2 + 1.8 * distance * radius) - radius,
                                           abs=tolerance)
    assert got["assd_mm"] == pytest.approx(distance + radius**2 / (3 * distance) - radius, abs=tolerance / 2)
    assert got["pred_volume_ml"] == pytest.approx(4 / 3 * math.pi * radius**3 / 1000, rel=0.03)
    expected = independent_metrics(a, b, 1, affine)
    assert got["hd95_mm"] == pytest.approx(expected["hd95_mm"], rel=1e-6)
    assert got["assd_mm"] == pytest.approx(expected["assd_mm"], rel=1e-6)


def test_concentric_spheres_distance_is_the_gap_in_mm():
    spacing = (0.7, 1.0, 2.0)
    shape = (80, 56, 28)
    centre = (28.0, 28.0, 28.0)
    inner = ball(shape, spacing, centre, 12.0).astype(np.uint8)
    outer = ball(shape, spacing, centre, 18.0).astype(np.uint8)
    got = score(inner, outer, make_affine(spacing, angles=(0.4, 0.1, -0.3), origin=(-50, 20, 10)))["1"]
    assert got["dice"] == pytest.approx(2 * 12**3 / (12**3 + 18**3), rel=0.03)
    assert got["hd95_mm"] == pytest.approx(6.0, abs=2.0)  # one 2 mm voxel along the coarse axis
    assert got["assd_mm"] == pytest.approx(6.0, abs=1.0)
    assert got["false_positive_ml"] == 0.0
    assert got["false_negative_ml"] == pytest.approx(got["ref_volume_ml"] - got["pred_volume_ml"])


def test_identical_masks_and_the_touching_volume_face():
    a = np.zeros((20, 20, 20), np.uint8)
    a[0:8, 3:12, 4:9] = 1  # on the face of the volume
    got = score(a, a.copy(), make_affine((1.2, 1.2, 3.0)))["1"]
    assert (got["dice"], got["hd95_mm"], got["assd_mm"]) == (1.0, 0.0, 0.0)
    assert got["false_positive_ml"] == got["false_negative_ml"] == 0.0
    b = np.roll(a, 1, axis=1)
    expected = independent_metrics(b, a, 1, make_affine((1.2, 1.2, 3.0)))
    got = score(b, a, make_affine((1.2, 1.2, 3.0)))["1"]
    assert got["hd95_mm"] == pytest.approx(expected["hd95_mm"], rel=1e-6)
    assert got["assd_mm"] == pytest.approx(expected["assd_mm"], rel=1e-6)


def test_a_one_slice_image_is_scored_on_its_contours():
    """A 5×5 square against a 5×6 rectangle at 0.5 mm: contour distances (square → rectangle: 3 of 16 contour
    pixels 0.5 mm off; rectangle → square: 5 of 18), so ASSD (3 + 5) × 0.5 / 34. Before, every pixel of a one-slice
    image lay on the volume's faces and counted as surface: ASSD 0.045 mm."""
    square = np.zeros((12, 12, 1), np.uint8)
    rectangle = np.zeros_like(square)
    square[2:7, 2:7] = 1
    rectangle[2:7, 2:8] = 1
    for axis in range(3):  # the single slice may lie along any axis
        a, b = np.moveaxis(square, 2, axis), np.moveaxis(rectangle, 2, axis)
        spacing = [0.5, 0.5, 0.5]
        spacing[axis] = 3.0
        entry = score(a, b, np.diag([*spacing, 1.0]))["1"]
        assert entry["assd_mm"] == pytest.approx((3 + 5) * 0.5 / 34, abs=1e-7)
        assert entry["hd95_mm"] == pytest.approx(0.5, abs=1e-7)
        assert entry["dice"] == 2 * 25 / 55


@pytest.mark.slow
def test_hd95_over_more_than_2_to_the_24_surface_distances():
    """torch.quantile refuses more than 2^24 values: MONAI's HD95 raised RuntimeError on large surfaces (two
    full 4100² slices: every voxel lies on a face)."""
    ref = np.ones((4100, 4100, 2), bool)
    pred = ref.copy()
    pred[0, 0, 0] = False
    entry = score(pred.astype(np.uint8), ref.astype(np.uint8), np.eye(4))["1"]
    assert entry["hd95_mm"] == 0.0 and entry["assd_mm"] == pytest.approx(1 / (2 * ref.sum() - 1), rel=1e-6)


@pytest.mark.parametrize("tilt_deg", [10, 30])
def test_surface_distances_on_a_sheared_grid_are_measured_in_world_space(tilt_deg):
    """A tilted gantry shears the grid; per-axis voxel sizes overstated HD95 by up to 15 %. Expected: each surface
    voxel's nearest surface voxel of the other mask between world positions (brute force)."""
    affine = np.diag([0.5, 0.5, 4.0, 1.0])
    affine[1, 2] = 4.0 * math.tan(math.radians(tilt_deg))  # each slice shifted along y
    shape = (64, 64, 24)
    index = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), axis=-1).astype(float)
    world = index @ affine[:3, :3].T
    ref = (np.linalg.norm(world - [16, 20, 48], axis=-1) <= 12).astype(np.uint8)
    pred = (np.linalg.norm(world - [16, 21.5, 50], axis=-1) <= 11).astype(np.uint8)
    result = score(pred, ref, affine)["1"]

    cross = ndi.generate_binary_structure(3, 1)
    surfaces = [m.astype(bool) & ~ndi.binary_erosion(m.astype(bool), structure=cross, border_value=0)
                for m in (pred, ref)]
    points = [world[s] for s in surfaces]
    ways = [np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)).min(axis=1)
            for a, b in ((points[0], points[1]), (points[1], points[0]))]
    assert result["hd95_mm"] == pytest.approx(max(np.percentile(w, 95) for w in ways), abs=1e-9)
    assert result["assd_mm"] == pytest.approx(np.concatenate(ways).mean(), abs=1e-9)
    assert result["dice"] == pytest.approx(independent_metrics(pred, ref, 1, affine)["dice"])


def test_a_speckled_prediction_on_a_sheared_grid_searches_trees_of_larger_leaves_with_the_same_distances(monkeypatch):
    """A prediction with holes on a tilted grid: its edges deep inside the reference made each world-space search
    visit a whole cap of the reference's surface (256×256×100 voxels, 5 % knocked out: over 100 s). The trees now
    have leaves of 64 points whose nodes keep their split bounds (4-5 times faster there); every distance, float64,
    is the one scipy's default tree finds, bit for bit, and so are HD95 and ASSD."""
    from scipy.spatial import cKDTree

    import medseg.surface_metrics as surface_metrics

    built = []
    real = cKDTree

    def recording(data, *args, **kwargs):
        built.append(kwargs)
        return real(data, *args, **kwargs)

    monkeypatch.setattr("scipy.spatial.cKDTree", recording)
    rng = np.random.default_rng(7)
    shape = (48, 44, 20)
    grid = np.ogrid[tuple(slice(0, n) for n in shape)]
    ref = (sum(((g - n / 2) / (n / 2 - 2)) ** 2 for g, n in zip(grid, shape)) <= 1).astype(np.uint8)
    pred = ref * (rng.random(shape) >= 0.05).astype(np.uint8)
    columns = np.diag([0.7, 0.7, 2.5])
    columns[1, 2] = 2.5 * math.tan(math.radians(20))
    box = tuple(slice(0, n) for n in shape)
    edges = [surface_metrics._mask_edges(array, 1, box) for array in (pred, ref)]
    found = surface_metrics._world_distances(edges, columns)
    assert built == [{"leafsize": 64, "compact_nodes": False}] * 2
    points = [np.argwhere(e) @ columns.T for e in edges]
    expected = (real(points[1]).query(points[0])[0], real(points[0]).query(points[1])[0])
    for ours, theirs in zip(found, expected):
        assert ours.dtype == np.float64
        np.testing.assert_array_equal(ours, theirs)
    hd95, assd = surface_metrics._surface_metrics(pred, ref, 1, box, (0.7, 0.7, 2.5), columns)
    assert (hd95, assd) == (max(np.percentile(expected[0], 95), np.percentile(expected[1], 95)),
                            np.concatenate(expected).mean())
    assert expected[0].max() > 10 * 0.7  # edges well inside the reference


def test_surface_distances_carry_no_float32_noise():
    """MONAI's edge distances are float32: a diagonal step of one voxel was written 1.4142135381698608 mm."""
    ref = np.zeros((12, 12, 12), np.uint8)
    ref[3:8, 3:8, 3:8] = 1
    pred = np.roll(np.roll(ref, 1, axis=0), 1, axis=1)  # one voxel off along two axes: √2 mm
    entry = score(pred, ref, np.eye(4))["1"]
    for key in ("hd95_mm", "assd_mm"):
        assert entry[key] == float(f"{entry[key]:.7g}") and len(repr(entry[key])) <= 9, entry
    assert entry["hd95_mm"] == pytest.approx(1.0621320, abs=1e-6)  # the 95th percentile between 1 and √2 mm
    from medseg.metrics import metrics_json

    text = metrics_json(evaluate_volumes(Volume(pred, np.eye(4)), Volume(ref, np.eye(4)), {1: "box"}))
    assert f'"hd95_mm": {entry["hd95_mm"]!r}' in text


def test_surface_edges_are_found_a_slab_at_a_time(monkeypatch):
    """Surfaces were found on whole boolean volumes of the label's box (the masks, their union, MONAI's cropped and
    padded copies, the erosions): about 13 bytes per voxel of the box, so that scoring a large CT with a stray false
    positive far from its organ (the box then spans the volume) peaked at 3.9 GB where the inference held 2.3 GB.
    Now what is held at once is the two edge volumes (1 byte per voxel each) and one slab; the figures are the
    same as from whole volumes (brute force below)."""
    import tracemalloc

    import medseg.metrics as metrics
    import medseg.surface_metrics as surface_metrics

    monkeypatch.setattr(surface_metrics, "EDGE_BLOCK", 1 << 14)
    monkeypatch.setattr(metrics._LabelCounts, "BLOCK", 1 << 14)  # (its int64 slab counts are not at issue here)
    shape = (160, 160, 160)
    ref = np.zeros(shape, np.uint8)
    ref[2:6, 2:6, 2:6] = 1
    pred = ref.copy()
    pred[1:5, 2:6, 2:6] = 1
    pred[150:154, 151:155, 152:156] = 1  # a stray false positive in the far corner: the box is the whole volume
    score(pred[:8, :8, :8], ref[:8, :8, :8], np.eye(4))  # the imports (MONAI's) before memory is traced
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        entry = score(pred, ref, np.diag([0.8, 0.8, 1.5, 1.0]))["1"]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2.5 * ref.size, peak  # two edge volumes and a slab; the whole-volume masks took 5 B a voxel here

    cross = ndi.generate_binary_structure(3, 1)
    spacing = np.array([0.8, 0.8, 1.5])
    points = [np.argwhere(m.astype(bool) & ~ndi.binary_erosion(m.astype(bool), structure=cross)) * spacing
              for m in (pred, ref)]
    from scipy.spatial import cKDTree

    ways = [cKDTree(points[1]).query(points[0])[0], cKDTree(points[0]).query(points[1])[0]]
    assert entry["hd95_mm"] == pytest.approx(max(np.percentile(w, 95) for w in ways), rel=1e-6)
    assert entry["assd_mm"] == pytest.approx(np.concatenate(ways).mean(), rel=1e-6)
    assert entry["hd95_mm"] > 200  # the stray cube counts: about 253 mm from the reference


def _one_slice_pair() -> tuple[np.ndarray, np.ndarray]:
    pred = np.zeros((12, 10, 1), np.uint8)
    ref = np.zeros_like(pred)
    pred[3:8, 2:7, 0] = 1
    ref[4:9, 2:8, 0] = 1
    return pred, ref


def _surface(record: dict) -> tuple[float, float]:
    return record["labels"]["1"]["hd95_mm"], record["labels"]["1"]["assd_mm"]


def test_a_one_slice_image_on_a_tilted_grid_is_scored_as_on_its_own_two_axes():
    """A single slice of a gantry-tilted series keeps the series' sheared affine: scored in 2D, its 3D world positions
    were put into 2D trees ("could not broadcast input array from shape (18,3) into shape (18,2)", a traceback).
    The shear lies along the axis taken out: the slice scores as the same slice on an unsheared grid, bit for bit."""
    pred, ref = _one_slice_pair()
    tilt = math.radians(20)
    tilted = np.eye(4)
    tilted[:3, :3] = [[0.8, 0, 0], [0, 0.8, 3.0 * math.sin(tilt)], [0, 0, 3.0 * math.cos(tilt)]]
    square = np.diag([0.8, 0.8, 3.0, 1.0])
    scored = _surface(evaluate_volumes(Volume(pred, tilted), Volume(ref, tilted), {1: "a"}))
    assert scored == _surface(evaluate_volumes(Volume(pred, square), Volume(ref, square), {1: "a"}))
    assert scored == (0.8497056, 0.5744521)


def test_a_one_slice_image_sheared_in_its_own_plane_is_scored_between_world_positions():
    """Two in-plane axes not at right angles: distances between the edge voxels' world positions (brute force here)."""
    pred, ref = _one_slice_pair()
    affine = np.eye(4)
    affine[:3, :3] = [[0.8, 0.3, 0], [0, 0.8, 0], [0, 0, 3.0]]
    hd95, assd = _surface(evaluate_volumes(Volume(pred, affine), Volume(ref, affine), {1: "a"}))

    def world_edges(mask):
        padded = np.pad(mask[:, :, 0].astype(bool), 1)
        return np.argwhere((padded ^ ndi.binary_erosion(padded))[1:-1, 1:-1]) @ affine[:3, :2].T

    p, r = world_edges(pred), world_edges(ref)
    gaps = np.sqrt(((p[:, None] - r[None]) ** 2).sum(-1))
    forward, backward = gaps.min(1), gaps.min(0)
    assert hd95 == pytest.approx(max(np.percentile(forward, 95), np.percentile(backward, 95)), rel=1e-12)
    assert assd == pytest.approx(np.concatenate([forward, backward]).mean(), rel=1e-12)
