"""Is an input like what the model was trained on? Its field of view in model space, its DICOM Modality and its
intensities.

A model package may record ``input_extent_mm``: the smallest and largest extent (voxels × spacing, per model-space
axis after the package's orientation and resampling) of the volumes it was trained on. An input whose extent lies
far outside that range — a whole-head MR given to a model trained on hippocampus crops — still gets segmented, but
its sidecar says so, the log warns, and the QA report flags the case, because such a result is not one the
model's validation figures speak for.

The same holds for an image of another kind: a package may declare ``dicom_modality`` (``MR``, ``CT``…), which a
DICOM series' Modality tag is compared with, and may record ``input_intensity``: the smallest and largest 1st and
99th intensity percentiles of its training images as read (DICOM rescaled). An input whose intensities are negative
where no training image's were (or the reverse), or whose 99th percentile lies outside half the smallest to twice the
largest trained (not compared for a package that z-scores its input: the scale does not change its segmentation),
is unlike them. A ``CT`` package expects Hounsfield units whether or not it records them: an input
with no intensity below 0 at its 1st percentile (an MR, or a CT stored without its rescale intercept) or above 3071
at its 99th is unlike them, unless its recorded training images were so too (organ crops may hold no air). A
package that records no intensities and declares no ``CT``: the input's intensities
are unknown, and ``within_training_range`` is null rather than true.
"""

from __future__ import annotations

import numpy as np

__all__ = ["HOUNSFIELD_MAX", "TOLERANCE", "check_extent", "check_intensity", "check_modality", "combine_checks",
           "extent_range", "intensity_percentiles", "intensity_range", "model_space_extent"]

TOLERANCE = 2.0  # an axis may be up to 2× larger than the largest training extent, or half the smallest

HOUNSFIELD_MAX = 3071.0  # the top of CT's 12-bit Hounsfield range (-1024 to 3071)
_PERCENTILES = (1.0, 99.0)
_SAMPLE_CHUNK = 1 << 18  # voxels gathered at a time (their indices: 8 MiB)
_SAMPLE_VOXELS = 1 << 21  # percentiles of every k-th voxel beyond 2 Mi voxels: 0.1 s where all took about 1 s

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


def intensity_percentiles(array) -> list[float]:
    """The 1st and 99th percentiles of a one-channel image's finite voxels as read (every k-th voxel of a large one),
    rounded to 4 significant digits; an image without a finite voxel gives ``[nan, nan]``."""
    values = np.asarray(array)
    if values.size > _SAMPLE_VOXELS:  # every k-th voxel in C order, gathered without flattening a copy of the
        # volume (nibabel's arrays are Fortran-ordered: reshape(-1) copied them whole, 4 s for 512×512×300)
        step, chunk = -(-values.size // _SAMPLE_VOXELS), _SAMPLE_CHUNK * -(-values.size // _SAMPLE_VOXELS)
        flat = np.concatenate([values[np.unravel_index(np.arange(start, min(start + chunk, values.size), step),
                                                       values.shape)] for start in range(0, values.size, chunk)])
    else:
        flat = values.reshape(-1)
    flat = flat[np.isfinite(flat)] if flat.dtype.kind == "f" else flat
    if flat.size == 0:
        return [float("nan"), float("nan")]
    return [float(f"{v:.4g}") for v in np.percentile(flat, _PERCENTILES)]


def intensity_range(percentiles: list[list[float]]) -> dict:
    """The package field ``input_intensity``: the smallest and largest 1st and 99th percentiles of the training
    images (each from :func:`intensity_percentiles`)."""
    values = np.asarray(percentiles, dtype=float)
    return {"p1": {"min": float(values[:, 0].min()), "max": float(values[:, 0].max())},
            "p99": {"min": float(values[:, 1].min()), "max": float(values[:, 1].max())}, "cases": len(values)}


def check_modality(modality: str | None, trained: str | None) -> str | None:
    """A line saying that a DICOM series' Modality (``modality``) is not the package's ``dicom_modality``; None
    where they agree or either is unknown (a NIfTI input, a package that declares none)."""
    if not modality or not trained or modality.strip().upper() == trained.strip().upper():
        return None
    return f"DICOM Modality {modality.strip()} against {trained.strip()} trained"


def check_intensity(percentiles: list[float], trained: dict | None, modality: str | None,
                    tolerance: float = TOLERANCE, *, scale_free: bool = False) -> tuple[bool | None, list[str]]:
    """Whether an input's 1st and 99th intensity percentiles are like the training images' (the package's
    ``input_intensity`` ``trained``, its ``dicom_modality``), and a line for each way they are not; None (unknown)
    where the package records no intensities and expects no Hounsfield units, or the image has no finite voxel.
    ``scale_free``: the package z-scores its input, whose segmentation then does not change with the intensities'
    scale, so the 99th percentile is not compared with the training images' (an MR stored scaled to 0–1 is
    segmented voxel for voxel as it is)."""
    low, high = percentiles
    if not (np.isfinite(low) and np.isfinite(high)):
        return None, []
    lines = []
    if (modality or "").strip().upper() == "CT":  # Hounsfield units, where its training images do not say otherwise
        if low >= 0 and (not trained or trained["p1"]["max"] < 0):  # organ crops may hold no air
            lines.append(f"intensity 1st percentile {low:g}, none below 0, where a CT model expects Hounsfield units "
                         "(air -1000; an MR, or a CT stored without its rescale intercept?)")
        if high > HOUNSFIELD_MAX and (not trained or trained["p99"]["max"] <= HOUNSFIELD_MAX):
            lines.append(f"intensity 99th percentile {high:g} above {HOUNSFIELD_MAX:g}, the top of Hounsfield units' "
                         "12-bit range")
    if trained:
        p1, p99 = trained["p1"], trained["p99"]
        if low < 0 <= p1["min"]:
            lines.append(f"intensity 1st percentile {low:g}, negative, where every training image's was at least "
                         f"{p1['min']:g}")
        elif low >= 0 > p1["max"] and not any(line.startswith("intensity 1st") for line in lines):
            lines.append(f"intensity 1st percentile {low:g}, where every training image's was negative (at most "
                         f"{p1['max']:g})")
        top, bottom = p99["max"], p99["min"]
        if not scale_free and ((top > 0 and high > top * tolerance) or (bottom > 0 and high < bottom / tolerance)):
            lines.append(f"intensity 99th percentile {high:g} against {bottom:g}–{top:g} trained")
    elif (modality or "").strip().upper() != "CT":
        return None, []
    return not lines, lines


def combine_checks(extent: dict | None, modality_line: str | None, intensity: dict | None) -> dict:
    """The sidecar's ``input_check`` from the field-of-view check (:func:`check_extent`, None where the package
    records no extents), the Modality line and the intensity check (``{"percentiles", "within", "outside"}``, None
    where not made): ``within_training_range`` is false where any check found the input unlike the training images,
    null where none did but some could not be made (``unknown`` says which), true where all were made and passed;
    ``reasons`` names the checks that failed (``field_of_view``, ``modality``, ``intensity``) and ``outside`` has a
    line for each way the input is unlike them."""
    check = dict(extent) if extent else {}
    reasons, outside, unknown = [], list(check.get("outside", [])), []
    if extent is None:
        unknown.append("field_of_view")
    elif not extent["within_training_range"]:
        reasons.append("field_of_view")
    if modality_line:
        reasons.append("modality")
        outside.append(modality_line)
    if intensity is None or intensity.get("within") is None:
        unknown.append("intensity")
    elif not intensity["within"]:
        reasons.append("intensity")
        outside.extend(intensity["outside"])
    if intensity is not None:
        check["intensity_percentiles"] = intensity["percentiles"]
    check["within_training_range"] = False if reasons else (None if unknown else True)
    check["reasons"] = reasons
    check["outside"] = outside
    check["unknown"] = unknown
    return check
