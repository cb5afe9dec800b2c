"""Per-case, per-label overlap, surface distance and volume metrics.

Empty-mask policy (applied everywhere, and stated in reports):

* reference and prediction both empty: Dice, HD95 and ASSD are NaN (undefined), status ``both_empty``;
* reference empty, prediction not: Dice 0, distances NaN, status ``false_positive``;
* prediction empty, reference not: Dice 0, distances NaN, status ``empty_prediction``;
* otherwise status ``ok``.

Distances are in mm (the grid's spacing), volumes in ml. Prediction and reference must share a grid:
same shape, affines equal within ``GRID_TOLERANCE_MM``; otherwise nothing is scored.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from medseg.errors import GeometryError, InputError
from medseg.volume import Volume

__all__ = ["GRID_TOLERANCE_MM", "check_same_grid", "read_reference", "evaluate_volumes", "evaluate_files"]

GRID_TOLERANCE_MM = 1e-3


def read_reference(path: Path | str, labels: dict[int, str] | None = None) -> Volume:
    """Read a label image; values must be whole numbers (and declared in ``labels`` when given)."""
    from medseg.io.nifti import read_nifti

    volume = read_nifti(path)
    values = np.unique(volume.array)
    if not np.all(values == np.round(values)) or values.min() < 0:
        raise InputError(f"{path}: not a label image (values must be non-negative integers)")
    if labels is not None:
        unknown = sorted(set(int(v) for v in values) - set(labels))
        if unknown:
            raise InputError(f"{path}: label values {unknown} are not among the model's labels {sorted(labels)}")
    volume.array = volume.array.astype(np.int32)
    return volume


def check_same_grid(a: Volume, b: Volume, tolerance_mm: float = GRID_TOLERANCE_MM) -> None:
    """Raise :class:`GeometryError` unless ``a`` and ``b`` have the same shape and affine."""
    if a.shape != b.shape:
        raise GeometryError(f"{b.source}: shape {b.shape} differs from {a.source}'s {a.shape}; not scored")
    diff = float(np.max(np.abs(a.affine - b.affine)))
    if diff > tolerance_mm:
        raise GeometryError(
            f"{b.source}: affine differs from {a.source}'s by up to {diff:.4g} mm (tolerance {tolerance_mm} mm); "
            "not scored"
        )


def _nan_to_none(value: float) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def evaluate_volumes(pred: Volume, ref: Volume, labels: dict[int, str], case_id: str | None = None) -> dict:
    """Metrics of ``pred`` against ``ref`` for every non-background label in ``labels``."""
    import torch
    from monai.metrics import compute_average_surface_distance, compute_dice, compute_hausdorff_distance

    check_same_grid(ref, pred)
    spacing = pred.spacing_mm
    voxel_ml = pred.voxel_volume_ml
    results = {}
    for value, name in labels.items():
        if value == 0:
            continue
        p = np.asarray(pred.array) == value
        r = np.asarray(ref.array) == value
        n_p, n_r = int(p.sum()), int(r.sum())
        tp = int(np.logical_and(p, r).sum())
        entry = {
            "name": name,
            "pred_volume_ml": n_p * voxel_ml,
            "ref_volume_ml": n_r * voxel_ml,
            "false_positive_ml": (n_p - tp) * voxel_ml,
            "false_negative_ml": (n_r - tp) * voxel_ml,
        }
        if n_p == 0 and n_r == 0:
            entry.update(dice=float("nan"), hd95_mm=float("nan"), assd_mm=float("nan"), status="both_empty")
        elif n_r == 0:
            entry.update(dice=0.0, hd95_mm=float("nan"), assd_mm=float("nan"), status="false_positive")
        elif n_p == 0:
            entry.update(dice=0.0, hd95_mm=float("nan"), assd_mm=float("nan"), status="empty_prediction")
        else:
            tp_ = torch.from_numpy(p)[None, None]
            tr_ = torch.from_numpy(r)[None, None]
            entry["dice"] = float(compute_dice(tp_, tr_, include_background=True)[0, 0])
            spacing_ = list(spacing)
            hd95 = compute_hausdorff_distance(tp_, tr_, include_background=True, percentile=95, spacing=spacing_)
            assd = compute_average_surface_distance(tp_, tr_, include_background=True, symmetric=True, spacing=spacing_)
            entry["hd95_mm"] = float(hd95[0, 0])
            entry["assd_mm"] = float(assd[0, 0])
            entry["status"] = "ok"
        results[str(value)] = entry
    return {
        "schema": "medseg-metrics/1",
        "case_id": case_id,
        "prediction": str(pred.source),
        "reference": str(ref.source),
        "spacing_mm": list(spacing),
        "labels": results,
    }


def evaluate_files(pred_path: Path | str, ref_path: Path | str, labels: dict[int, str] | None = None,
                   case_id: str | None = None) -> dict:
    """Read two label images and score them; labels default to the values present, named ``label_N``."""
    pred = read_reference(pred_path)
    ref = read_reference(ref_path)
    if labels is None:
        values = sorted(set(np.unique(pred.array)) | set(np.unique(ref.array)) | {0})
        labels = {int(v): f"label_{int(v)}" for v in values}
    return evaluate_volumes(pred, ref, labels, case_id=case_id)
