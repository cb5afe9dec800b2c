"""Synthetic case results for the report's tests, in the contract layout (input and reference under
``inputs/``, segmentation, sidecar, metrics, failure records), and readers of what the report wrote."""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi

from medseg.io.atomic import sha256_of
from medseg.metrics import evaluate_volumes, metrics_json
from medseg.volume import Volume

LABELS = {0: "background", 1: "ball", 2: "box"}
EVIL = "x<b>&\"'y"
CROSS = ndi.generate_binary_structure(3, 1)


def phantom(seed: int, shape=(30, 34, 18), spacing=(1.0, 1.0, 2.0)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Image, labels (1 ball, 2 box, away from the faces) and affine."""
    rng = np.random.default_rng(seed)
    grid = np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing)], indexing="ij")
    radius = 6.0 + 0.3 * (seed % 3)
    labels = np.zeros(shape, np.uint8)
    labels[sum((g - c) ** 2 for g, c in zip(grid, (10.0, 12.0, 17.0))) <= radius**2] = 1
    labels[18:25, 20:28, 5:12] = 2
    image = (labels * 80.0 + rng.normal(0, 10, shape)).astype(np.float32)
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = (-20.0, 10.0, 5.0)
    return image, labels, affine


def shifted(array: np.ndarray, offset) -> np.ndarray:
    out = np.zeros_like(array)
    src = tuple(slice(max(-d, 0), n - max(d, 0)) for n, d in zip(array.shape, offset))
    dst = tuple(slice(max(d, 0), n - max(-d, 0)) for n, d in zip(array.shape, offset))
    out[dst] = array[src]
    return out


def perturb(labels: np.ndarray, how: str) -> np.ndarray:
    out = labels.copy()
    if how == "erode":
        out[(labels == 1) & ~ndi.binary_erosion(labels == 1, CROSS)] = 0
    elif how == "shift":
        out = shifted(labels, (1, 0, 0))
    elif how == "dilate3":
        out[ndi.binary_dilation(labels == 1, CROSS, iterations=3) & (labels == 0)] = 1
    elif how == "bad":  # box missed, ball pushed onto the i- face
        out = shifted(np.where(labels == 1, 1, 0).astype(np.uint8), (-8, 0, 0))
    return out


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def write_case(root: Path, case_id: str, seed: int, how: str, reference: bool = True) -> Path:
    image, labels, affine = phantom(seed)
    return write_case_arrays(root, case_id, image, labels, perturb(labels, how), affine, reference, name=str(seed))


def write_case_arrays(root: Path, case_id: str, image: np.ndarray, labels: np.ndarray, prediction: np.ndarray,
                      affine: np.ndarray, reference: bool = True, name: str | None = None,
                      labels_named: dict[int, str] | None = None) -> Path:
    """A case in the contract layout: input and reference under ``inputs/``, segmentation, sidecar, metrics."""
    name = name or case_id
    labels_named = labels_named or LABELS
    folder = root / "cases" / case_id
    folder.mkdir(parents=True)
    inputs = root / "inputs"
    inputs.mkdir(exist_ok=True)
    image_path, label_path = inputs / f"{name}_image.nii.gz", inputs / f"{name}_label.nii.gz"
    nib.save(nib.Nifti1Image(image, affine), image_path)
    nib.save(nib.Nifti1Image(labels, affine), label_path)
    seg_path = folder / f"{case_id}_seg.nii.gz"
    nib.save(nib.Nifti1Image(prediction, affine), seg_path)
    counts = np.bincount(prediction.ravel(), minlength=3)
    voxel_ml = float(np.prod(np.diag(affine)[:3])) / 1000
    sidecar = {
        "schema": "medseg-segmentation/1", "case_id": case_id, "input": str(image_path),
        "input_sha256": sha256_of(image_path),
        "segmentation": seg_path.name, "shape": list(image.shape), "affine": affine.tolist(),
        "labels": {str(k): v for k, v in labels_named.items()},
        "label_volume_ml": {str(k): float(counts[k]) * voxel_ml for k in labels_named},
        "model": {"name": "tiny-test", "version": "3", "weights_sha256": "ab" * 32},
        "device": "cpu", "versions": {"medseg": "0.1.0", "monai": "1.6.1", "torch": "2.13.0"},
        "timings_s": {}, "created": now(),
    }
    (folder / f"{case_id}_seg.json").write_text(json.dumps(sidecar))
    if reference:
        metrics = evaluate_volumes(Volume(prediction, affine, source=seg_path),
                                   Volume(labels, affine, source=label_path), labels_named, case_id=case_id)
        (folder / f"{case_id}_metrics.json").write_text(metrics_json(metrics))
    return folder


def write_failure(root: Path, case_id: str, stage: str = "infer", error_type: str = "RuntimeError") -> Path:
    folder = root / "cases" / case_id
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{case_id}_failed.json"
    path.write_text(json.dumps({
        "schema": "medseg-failure/1", "case_id": case_id, "input": f"/data/{case_id}.nii.gz", "reference": None,
        "stage": stage, "error": "out of memory <in> the 'tiler'", "error_type": error_type, "created": now(),
    }))
    return path


def read_tsv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def flag_set(row: dict) -> set[str]:
    return set(filter(None, row["flags"].split(";")))


def write_many_label_case(root: Path, case_id: str, count: int, eroded: tuple[int, ...],
                          emptied: tuple[int, ...] = (), reference: bool = True) -> None:
    """``count`` boxes of 7×7×9 voxels (labels 1..count) on a grid; the ``eroded`` labels lose their surface
    in the prediction (Dice 0.568), the ``emptied`` ones all their voxels (Dice 0, no HD95)."""
    shape, affine = (60, 60, 24), np.diag([1.0, 1.0, 2.0, 1.0])
    labels = np.zeros(shape, np.uint8)
    for k in range(1, count + 1):
        i, j = (k - 1) % 6, (k - 1) // 6
        labels[3 + 9 * i: 10 + 9 * i, 3 + 9 * j: 10 + 9 * j, 8:17] = k
    prediction = labels.copy()
    for k in eroded:
        prediction[(labels == k) & ~ndi.binary_erosion(labels == k)] = 0
    prediction[np.isin(labels, emptied)] = 0
    names = {0: "background", **{k: f"organ_{k:02d}" for k in range(1, count + 1)}}
    folder, inputs = root / "cases" / case_id, root / "inputs"
    folder.mkdir(parents=True)
    inputs.mkdir(exist_ok=True)
    image_path, label_path = inputs / f"{case_id}_image.nii.gz", inputs / f"{case_id}_label.nii.gz"
    nib.save(nib.Nifti1Image(labels.astype(np.float32) * 10, affine), image_path)
    nib.save(nib.Nifti1Image(labels, affine), label_path)
    seg_path = folder / f"{case_id}_seg.nii.gz"
    nib.save(nib.Nifti1Image(prediction, affine), seg_path)
    counts = np.bincount(prediction.ravel(), minlength=count + 1)
    (folder / f"{case_id}_seg.json").write_text(json.dumps({
        "schema": "medseg-segmentation/1", "case_id": case_id, "input": str(image_path),
        "input_sha256": sha256_of(image_path),
        "segmentation": seg_path.name, "shape": list(shape), "affine": affine.tolist(),
        "labels": {str(k): v for k, v in names.items()},
        "label_volume_ml": {str(k): float(counts[k]) * 0.002 for k in names},
        "model": {"name": "many", "version": "1", "weights_sha256": "cd" * 32}, "device": "cpu",
        "versions": {"medseg": "0.1.0"}, "timings_s": {}, "created": now(),
    }))
    if not reference:
        return
    metrics = evaluate_volumes(Volume(prediction, affine, source=seg_path), Volume(labels, affine, source=label_path),
                               names, case_id=case_id)
    (folder / f"{case_id}_metrics.json").write_text(metrics_json(metrics))


def section(page: str, heading: str) -> str:
    start = re.search(rf"<h2(?: [^>]*)?>{re.escape(heading)}", page).start()
    return page[start: page.index("<h2>", start + 4)]
