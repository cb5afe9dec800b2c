"""Shared by the metrics tests: an independent implementation of the metrics (numpy, scipy's distance
transform), synthetic shapes, grids and voxel orders, and two arrays scored on one grid."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from medseg.metrics import evaluate_volumes
from medseg.synthetic import rotation_matrix
from medseg.volume import Volume

HIPPO_LABELS = {0: "background", 1: "anterior", 2: "posterior"}


# ---------------------------------------------------------------- the independent reference implementation
def independent_metrics(pred: np.ndarray, ref: np.ndarray, value: int, affine: np.ndarray) -> dict:
    """Dice and volumes with numpy, HD95 and ASSD with scipy's Euclidean distance transform.

    Surface = foreground voxels with a 6-neighbour outside the mask (the faces of the array count as
    outside); HD95 = larger of the two directed 95th percentiles; ASSD = mean of both directions pooled.
    """
    p, r = pred == value, ref == value
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    voxel_ml = abs(np.linalg.det(affine[:3, :3])) / 1000
    inter = np.logical_and(p, r).sum()
    out = {
        "dice": 2 * inter / (p.sum() + r.sum()),
        "pred_volume_ml": p.sum() * voxel_ml,
        "ref_volume_ml": r.sum() * voxel_ml,
        "false_positive_ml": (p.sum() - inter) * voxel_ml,
        "false_negative_ml": (r.sum() - inter) * voxel_ml,
    }
    cross = ndi.generate_binary_structure(3, 1)
    surf_p = p & ~ndi.binary_erosion(p, structure=cross, border_value=0)
    surf_r = r & ~ndi.binary_erosion(r, structure=cross, border_value=0)
    to_r = ndi.distance_transform_edt(~surf_r, sampling=spacing)[surf_p]
    to_p = ndi.distance_transform_edt(~surf_p, sampling=spacing)[surf_r]
    out["hd95_mm"] = max(np.percentile(to_r, 95), np.percentile(to_p, 95))
    out["assd_mm"] = np.concatenate([to_r, to_p]).mean()
    return out


def make_affine(spacing, angles=(0.0, 0.0, 0.0), origin=(0.0, 0.0, 0.0)) -> np.ndarray:
    affine = np.eye(4)
    affine[:3, :3] = rotation_matrix(angles) * np.asarray(spacing, dtype=float)[None, :]
    affine[:3, 3] = origin
    return affine


def ball(shape, spacing, centre_mm, radius_mm) -> np.ndarray:
    grids = np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing)], indexing="ij")
    return sum((g - c) ** 2 for g, c in zip(grids, centre_mm)) <= radius_mm**2


def score(pred: np.ndarray, ref: np.ndarray, affine: np.ndarray, labels=None) -> dict:
    labels = labels or {0: "background", 1: "structure"}
    return evaluate_volumes(Volume(pred, affine, source="pred"), Volume(ref, affine, source="ref"), labels)["labels"]


def reindexed(array: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same voxels stored in another order: new axes (old 2 reversed, old 0, old 1), written out by hand.

    new[i, j, k] = old[j, k, n2 - 1 - i], so new voxel (i, j, k) lies where old voxel (j, k, n2 - 1 - i) does.
    """
    n2 = array.shape[2]
    new = np.flip(array.transpose(2, 0, 1), axis=0)
    index_change = np.array([[0, 1, 0, 0], [0, 0, 1, 0], [-1, 0, 0, n2 - 1], [0, 0, 0, 1]], dtype=float)
    return new, affine @ index_change
