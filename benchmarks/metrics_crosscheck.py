"""medseg's per-case figures set beside those of independent libraries, on the pairs a scoring run recorded.

    python benchmarks/metrics_crosscheck.py SCORES [SCORES ...]

``SCORES`` is a ``<case>_metrics.json`` or a folder of them (``medseg evaluate PRED_DIR REF_DIR -o SCORES``); each
record names its prediction and reference, which are read again (NIfTI; a record of another format, of a reference
re-indexed or zero-padded onto the prediction's grid, or of a sheared grid is left out, with a line saying so). Each
label with voxels is scored again by every library that is installed — SimpleITK (its overlap filter, and the
``LabelContour`` + ``SignedMaurerDistanceMap`` surface recipe), MONAI, medpy and DeepMind's surface-distance
(``pip install SimpleITK medpy surface-distance``; none is a dependency of medseg: a library that is not installed
is named and skipped) —, and one line per library and figure gives how many labels were compared, how many differ
from medseg's by more than 1e-5 (relative, or absolute below 1), the largest difference and the mean difference
(medseg − library) and, for distances, the mean ratio medseg / library. The libraries' conventions are not all
medseg's: docs/metrics.md's *Against other libraries* says which, and how far apart they were on the hippocampus cases.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

TOLERANCE = 1e-5
NIFTI = (".nii", ".nii.gz")


def _records(paths: list[Path]) -> list[tuple[Path, dict]]:
    files = []
    for path in paths:
        files.extend(sorted(path.glob("*_metrics.json")) if path.is_dir() else [path])
    return [(file, json.loads(file.read_text(encoding="utf-8"))) for file in files]


def _left_out(record: dict) -> str | None:
    """Why a record's files cannot be set index by index beside each other here, or None."""
    for key in ("prediction", "reference"):
        name = str(record.get(key) or "")
        if not name.lower().endswith(NIFTI):
            return f"its {key} is not a NIfTI file ({name or 'none recorded'})"
        if not Path(name).is_file():
            return f"its {key} {name} is not there"
    if record.get("reference_reordered") or record.get("reference_sub_box"):
        return "its reference was re-indexed or zero-padded onto the prediction's grid"
    return None


def _read(path: str) -> tuple[np.ndarray, np.ndarray]:
    import nibabel as nib

    image = nib.load(path)
    return np.asarray(image.dataobj), np.asarray(image.affine, dtype=np.float64)


def _sheared(affine: np.ndarray) -> bool:
    columns = affine[:3, :3] / np.linalg.norm(affine[:3, :3], axis=0)
    return bool(np.abs(columns.T @ columns - np.eye(3)).max() > 1e-4)


def _sitk(pred: np.ndarray, ref: np.ndarray, spacing: list[float]) -> dict:
    import SimpleITK as sitk

    def image(mask):
        out = sitk.GetImageFromArray(mask.astype(np.uint8).transpose())  # SimpleITK's arrays are (z, y, x)
        out.SetSpacing(spacing)
        return out

    p, r = image(pred), image(ref)
    overlap = sitk.LabelOverlapMeasuresImageFilter()
    overlap.Execute(r, p)
    figures = {"dice": overlap.GetDiceCoefficient()}

    def directed(a, b):  # a's contour voxels' distances to b's nearest contour voxel centre
        contour_a = sitk.LabelContour(a, fullyConnected=False, backgroundValue=0)
        contour_b = sitk.LabelContour(b, fullyConnected=False, backgroundValue=0)
        distances = sitk.Abs(sitk.SignedMaurerDistanceMap(contour_b, insideIsPositive=False, squaredDistance=False,
                                                          useImageSpacing=True))
        return sitk.GetArrayFromImage(distances)[sitk.GetArrayFromImage(contour_a) > 0].astype(np.float64)

    forward, backward = directed(p, r), directed(r, p)
    if len(forward) and len(backward):  # a mask filling the volume has no contour in ITK's sense
        figures["hd95_mm"] = max(np.percentile(forward, 95), np.percentile(backward, 95))
        figures["assd_mm"] = float(np.concatenate([forward, backward]).mean())
    return figures


def _monai(pred: np.ndarray, ref: np.ndarray, spacing: list[float]) -> dict:
    import warnings

    import torch
    from monai.metrics import compute_average_surface_distance, compute_hausdorff_distance

    p, r = (torch.from_numpy(mask[None, None].astype(np.float32)) for mask in (pred, ref))
    with warnings.catch_warnings():  # MONAI 1.5+ warns of an argument it passes itself (always_return_as_numpy)
        warnings.simplefilter("ignore", FutureWarning)
        return {"hd95_mm": float(compute_hausdorff_distance(p, r, percentile=95, spacing=spacing)),
                "assd_mm": float(compute_average_surface_distance(p, r, symmetric=True, spacing=spacing))}


def _medpy(pred: np.ndarray, ref: np.ndarray, spacing: list[float]) -> dict:
    from medpy.metric import binary

    return {"dice": binary.dc(pred, ref), "hd95_mm": binary.hd95(pred, ref, spacing),
            "assd_mm": binary.assd(pred, ref, spacing)}


def _surface_distance(pred: np.ndarray, ref: np.ndarray, spacing: list[float]) -> dict:
    import surface_distance

    found = surface_distance.compute_surface_distances(ref, pred, spacing)
    to_pred, to_ref = surface_distance.compute_average_surface_distance(found)
    area_ref, area_pred = found["surfel_areas_gt"].sum(), found["surfel_areas_pred"].sum()
    return {"dice": surface_distance.compute_dice_coefficient(ref, pred),
            "hd95_mm": surface_distance.compute_robust_hausdorff(found, 95),
            "assd_mm": float((to_pred * area_ref + to_ref * area_pred) / (area_ref + area_pred))}


# (name, module to import, function, what it computes where that is not medseg's definition)
LIBRARIES = [
    ("SimpleITK", "SimpleITK", _sitk, "overlap filter; LabelContour + Maurer distance map, voxel centres"),
    ("MONAI", "monai", _monai, "compute_hausdorff_distance(percentile=95), compute_average_surface_distance"),
    ("medpy", "medpy", _medpy, "hd95 of both directions pooled; assd"),
    ("surface-distance", "surface_distance", _surface_distance,
     "surfels between voxel corners, area-weighted; robust Hausdorff 95"),
]


def _installed(module: str) -> bool:
    import importlib

    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def compare(paths: list[Path], out=sys.stdout) -> dict:
    """Score every label with voxels in both masks again with each installed library; print and return, per library
    and figure, the pairs (medseg, library)."""
    from stderr_line import stderr_line

    libraries = []
    for name, module, function, what in LIBRARIES:
        if _installed(module):
            libraries.append((name, function, what))
        else:
            print(f"{name}: not installed, skipped (pip install {name})", file=out)
    pairs: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for file, record in _records(paths):
        why = _left_out(record)
        if why is None:
            pred, affine = _read(record["prediction"])
            ref, _ = _read(record["reference"])
            why = "its grid is sheared (distances between world positions)" if _sheared(affine) else None
        if why is not None:
            stderr_line(f"{file}: left out: {why}")
            continue
        spacing = [float(s) for s in np.linalg.norm(affine[:3, :3], axis=0)]
        for value, entry in record["labels"].items():
            if entry.get("status") != "ok":  # Dice 0 or undefined by the empty-mask policy, and no distance
                continue
            p, r = pred == int(value), ref == int(value)
            for name, function, _ in libraries:
                for key, theirs in function(p, r, spacing).items():
                    if entry.get(key) is not None:
                        pairs.setdefault((name, key), []).append((float(entry[key]), float(theirs)))
    for name, _, what in libraries:
        print(f"{name} ({what}):", file=out)
        for key in ("dice", "hd95_mm", "assd_mm"):
            found = pairs.get((name, key))
            if not found:
                continue
            ours, theirs = (np.array(column) for column in zip(*found))
            difference = ours - theirs
            differ = int(np.sum(np.abs(difference) > TOLERANCE * np.maximum(1.0, np.abs(theirs))))
            line = (f"  {key}: {len(found)} labels, {differ} differ; largest |medseg - {name}| "
                    f"{np.abs(difference).max():.3g}, mean {difference.mean():+.3g}")
            if key != "dice" and np.all(theirs > 0):
                line += f"; medseg / {name} {np.mean(ours / theirs):.2f} on average"
            print(line, file=out)
    return pairs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scores", type=Path, nargs="+", help="a <case>_metrics.json or a folder of them")
    args = parser.parse_args(argv)
    from medseg.shown_warnings import show_warnings

    show_warnings()
    compare(args.scores)
    return 0


if __name__ == "__main__":
    sys.exit(main())
