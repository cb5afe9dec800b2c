"""Make a small cohort of hippocampus "predictions" by perturbing the real labels, then build the QA report.

There is no trained hippocampus model in this script's loop: each prediction is a reference label
perturbed in a known way (eroded, dilated, shifted, boundary noise), one case is deliberately bad (the
posterior label blanked and the anterior one pushed onto the volume border), one case has no reference
(volumes and flags only) and one fails genuinely (its reference is on another grid, so scoring refuses
it). Outputs follow the results-folder contract (RESULTS/cases/<id>/<id>_seg.nii.gz, _seg.json,
_metrics.json or _failed.json), then `medseg report` runs on them and the timings are printed.

    $ python benchmarks/report_demo.py ../shared/data/hippocampus demo/report_cohort
    $ python benchmarks/report_demo.py ../shared/data/hippocampus /tmp/big --cases 200 --max-overlays 50
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi

from medseg.errors import MedsegError
from medseg.failure_records import failure_path, failure_record, write_failure_record
from medseg.io.atomic import atomic_paths
from medseg.io.label_images import read_reference
from medseg.io.nifti import read_nifti
from medseg.io.nifti_write import write_labels
from medseg.metrics import evaluate_volumes, metrics_json
from medseg.numbers import counted
from medseg.one_line import escaped_line
from medseg.report.build import build_report
from medseg.segment import versions
from medseg.shown_warnings import show_warnings
from medseg.volume import Volume

LABELS = {0: "background", 1: "anterior", 2: "posterior"}
CROSS = ndi.generate_binary_structure(3, 1)
# the perturbations cycled over the cases; the bad one, the unreferenced one and the failing one are extra
CYCLE = ("exact", "erode", "dilate", "shift", "noise", "erode_anterior", "dilate2", "shift_small")
BAD_AT, NO_REFERENCE_AT, FAILED_AT = 3, 6, 8


def shifted(array: np.ndarray, offset: tuple[int, int, int]) -> np.ndarray:
    """``array`` moved by ``offset`` voxels, zero-filled (no wrap-around)."""
    out = np.zeros_like(array)
    src, dst = [], []
    for n, d in zip(array.shape, offset):
        src.append(slice(max(-d, 0), n - max(d, 0)))
        dst.append(slice(max(d, 0), n - max(-d, 0)))
    out[tuple(dst)] = array[tuple(src)]
    return out


def perturb(label: np.ndarray, how: str, rng: np.random.Generator) -> np.ndarray:
    out = label.copy()
    if how == "erode":
        for value in (1, 2):
            out[(label == value) & ~ndi.binary_erosion(label == value, CROSS)] = 0
    elif how == "erode_anterior":
        out[(label == 1) & ~ndi.binary_erosion(label == 1, CROSS)] = 0
    elif how in ("dilate", "dilate2"):
        grown = ndi.binary_dilation(label == 1, CROSS, iterations=1 if how == "dilate" else 3)
        out[grown & (label == 0)] = 1
    elif how == "shift":
        out = shifted(label, (2, 0, 1))
    elif how == "shift_small":
        out = shifted(label, (0, 1, 0))
    elif how == "noise":
        edge = ndi.binary_dilation(label > 0, CROSS) & ~ndi.binary_erosion(label > 0, CROSS)
        flip = edge & (rng.random(label.shape) < 0.35)
        out[flip & (label > 0)] = 0
        out[flip & (label == 0)] = 1
    elif how == "bad":
        # the posterior hippocampus is missed entirely, the anterior one is pushed off the volume's i- face
        rows = np.flatnonzero((label == 1).any(axis=(1, 2)))
        out = shifted(np.where(label == 1, 1, 0).astype(label.dtype), (-(int(rows[0]) + 3), 0, 0))
    return out


def sidecar(case_id: str, image: Volume, prediction: np.ndarray, seg_name: str, how: str) -> dict:
    counts = np.bincount(prediction.ravel(), minlength=3)
    return {
        "schema": "medseg-segmentation/1",
        "case_id": case_id,
        "input": str(image.source),
        "input_sha256": image.source_sha256,
        "segmentation": seg_name,
        "shape": list(image.shape),
        "affine": image.affine.tolist(),
        "labels": {str(k): v for k, v in LABELS.items()},
        "label_voxels": {str(k): int(counts[k]) for k in LABELS},
        "label_volume_ml": {str(k): round(float(counts[k]) * image.voxel_volume_ml, 4) for k in LABELS},
        "model": {"name": "perturbed-reference-demo", "version": "0", "weights_sha256": None, "path": None},
        "device": "none",
        "versions": versions(),
        "timings_s": {},
        "demo_perturbation": how,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def write_case(out: Path, image_path: Path, label_path: Path, how: str, rng, with_reference: bool) -> None:
    case_id = image_path.name.removesuffix(".nii.gz")
    folder = out / "cases" / case_id
    seg, side, metrics_path = (folder / f"{case_id}{suffix}" for suffix in ("_seg.nii.gz", "_seg.json",
                                                                              "_metrics.json"))
    image = read_nifti(image_path)
    reference = read_reference(label_path, LABELS)
    prediction = perturb(reference.array.astype(np.uint8), how, rng).astype(np.uint8)
    targets = [seg, side] + ([metrics_path] if with_reference else [])
    metrics = None
    if with_reference:
        metrics = evaluate_volumes(Volume(prediction, image.affine, source=seg), reference, LABELS, case_id=case_id)
    with atomic_paths(targets, overwrite=True) as temps:
        write_labels(prediction, image, temps[0])
        temps[1].write_text(json.dumps(sidecar(case_id, image, prediction, seg.name, how), indent=2) + "\n")
        if metrics is not None:
            temps[2].write_text(metrics_json(metrics))


def write_failure(out: Path, image_path: Path, label_path: Path) -> None:
    """Score a prediction against another case's label exported at 1.5 mm (written beside the case's results): the
    grids differ, so scoring refuses it. (The label as it is would not do: the hippocampus crops all have identity
    affines, so one a few voxels larger is a box of the image's lattice reaching past it, which scoring zero-pads.)"""
    case_id = image_path.name.removesuffix(".nii.gz")
    image = read_nifti(image_path)
    label = nib.load(label_path)
    coarser = label.affine @ np.diag([1.5, 1.5, 1.5, 1.0])
    wrong_label = out / "cases" / case_id / f"{case_id}_other_grid_label.nii.gz"
    with atomic_paths([wrong_label], overwrite=True) as temps:
        nib.save(nib.Nifti1Image(np.asarray(label.dataobj, dtype=np.uint8), coarser), temps[0])
    try:
        evaluate_volumes(Volume(np.zeros(image.shape, np.uint8), image.affine, source=image_path),
                         read_reference(wrong_label, LABELS), LABELS, case_id=case_id)
    except MedsegError as error:
        # the record the cohort writes for a case that failed at scoring
        record = failure_record(case_id, "evaluate", error, image_path, wrong_label)
        write_failure_record(failure_path(out / "cases" / case_id, case_id), record)
        return
    raise SystemExit(escaped_line(f"{wrong_label} unexpectedly shares {image_path}'s grid; pick another pair"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("hippocampus", type=Path, help="folder with images/ and labels/")
    parser.add_argument("output", type=Path, help="results folder to create (cases/ and the report)")
    parser.add_argument("--cases", type=int, default=10, help="number of cases (at least 9)")
    parser.add_argument("--max-overlays", type=int, default=50)
    args = parser.parse_args(argv)
    show_warnings()  # medseg's warnings on stderr (its loggers write nothing in a script configuring no logging)
    for folder in (args.hippocampus / "images", args.hippocampus / "labels"):
        if not folder.is_dir():
            raise SystemExit(escaped_line(f"{folder}: no such folder (give a folder with images/ and labels/)"))
    labels = sorted((args.hippocampus / "labels").glob("*.nii.gz"))
    if len(labels) < max(args.cases, 9):
        wanted = max(args.cases, 9)
        raise SystemExit(escaped_line(f"{args.hippocampus}: need {wanted} labelled cases, found {len(labels)}"))
    rng = np.random.default_rng(0)
    clock = time.perf_counter()
    for index, label_path in enumerate(labels[: max(args.cases, 9)]):
        image_path = args.hippocampus / "images" / label_path.name
        if index == FAILED_AT:
            write_failure(args.output, image_path, labels[0])
            continue
        how = "bad" if index == BAD_AT else CYCLE[index % len(CYCLE)]
        write_case(args.output, image_path, label_path, how, rng, with_reference=index != NO_REFERENCE_AT)
    made = time.perf_counter() - clock
    outputs = build_report(args.output, args.output / "report.html", max_overlays=args.max_overlays, overwrite=True)
    print(f"cases written: {outputs.cases} in {made:.1f} s ({1000 * made / outputs.cases:.0f} ms per case)")
    print(f"report: {outputs.seconds:.1f} s for {counted(outputs.cases, 'case')} and "
          f"{counted(outputs.overlays, 'overlay')} ({1000 * outputs.seconds / outputs.cases:.0f} ms per case); "
          f"{outputs.failed} failed, "
          f"{outputs.flagged} flagged")
    print(f"wrote {outputs.html}, {outputs.table}, {outputs.summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
