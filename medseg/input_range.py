"""Is an input like what the model was trained on? A field-of-view check in model space.

A model package may record ``input_extent_mm``: the smallest and largest extent (voxels × spacing, per model-space
axis after the package's orientation and resampling) of the volumes it was trained on. An input whose extent lies
far outside that range — a whole-head MR given to a model trained on hippocampus crops — still gets segmented, but
its sidecar says so, the log warns, and the QA report flags the case, because such a result is not one the
model's validation figures speak for.
"""

from __future__ import annotations

import numpy as np

__all__ = ["TOLERANCE", "model_space_extent", "extent_range", "check_extent"]

TOLERANCE = 2.0  # an axis may be up to 2× larger than the largest training extent, or half the smallest

_AXES = ("x", "y", "z")


def model_space_extent(image) -> list[float]:
    """Extent in mm per model-space axis of a channel-first MONAI MetaTensor ``(C, X, Y, Z)`` with its affine."""
    affine = np.asarray(image.affine, dtype=float)
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    return [round(float(n * s), 2) for n, s in zip(image.shape[1:4], spacing)]


def extent_range(extents: list[list[float]]) -> dict:
    """The package field: per-axis minimum and maximum of the training volumes' extents."""
    values = np.asarray(extents, dtype=float)
    return {"min": [round(float(v), 2) for v in values.min(0)], "max": [round(float(v), 2) for v in values.max(0)],
            "cases": len(values)}


def check_extent(extent: list[float], trained: dict, tolerance: float = TOLERANCE) -> dict:
    """The sidecar's ``input_check``: the input's extent against the training range, and which axes lie outside
    ``[min / tolerance, max · tolerance]``."""
    outside = []
    for axis, value, low, high in zip(_AXES, extent, trained["min"], trained["max"]):
        if value > high * tolerance or value < low / tolerance:
            outside.append(f"{axis} {value:g} mm against {low:g}–{high:g} mm trained")
    return {
        "extent_mm": [float(v) for v in extent],
        "trained_extent_mm": {"min": trained["min"], "max": trained["max"]},
        "tolerance": tolerance,
        "within_training_range": not outside,
        "outside": outside,
    }
