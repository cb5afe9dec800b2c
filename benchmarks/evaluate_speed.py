"""What scoring a large CT costs, step by step: ``evaluate_files`` on two label NIfTI files with the scoring
speed-ups of 2026-12-06 and with the code paths they replaced, in one run.

    python benchmarks/evaluate_speed.py [--shape 512 512 300] [--tiny] [--repeats 2]

Writes a reference and a prediction (uint8, 0.7×0.7×2.5 mm) to a temporary folder: three organ-like ellipsoids
(200×150×120 voxels and two smaller), the prediction shifted, resized and speckled inside the largest; with
``--tiny``, three labels of a few voxels each, one near each end of the volume and a stray predicted voxel. Read
from NIfTI the arrays are in Fortran order, as in ``medseg evaluate``. Scores them (MONAI imported beforehand, not
counted) with the speed-ups, then with the replaced paths put back (``np.unique`` of the whole array for the label
values, ``find_objects`` walking the Fortran-ordered array, every voxel counted by ``np.bincount``), checks that
both records are identical, and prints the best of ``--repeats`` times of each, their ratio, the time of each step
(of a run with the speed-ups) and the peak memory of each way (tracemalloc's: numpy's arrays, in a run of its
own).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np


def _ellipsoid(shape, centre, radii) -> np.ndarray:
    grid = np.ogrid[tuple(slice(0, n) for n in shape)]
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii)) <= 1


def make_case(shape: tuple[int, int, int], tiny: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    ref, pred = np.zeros(shape, np.uint8), np.zeros(shape, np.uint8)
    x, y, z = (n / 2 for n in shape)
    if tiny:
        places = [(30, 40, 10), (shape[0] - 30, shape[1] - 40, shape[2] - 5), (x, y, z)]
        for value, (cx, cy, cz) in enumerate(places, 1):
            ref[_ellipsoid(shape, (cx, cy, cz), (3, 3, 2))] = value
            pred[_ellipsoid(shape, (cx + 1, cy, cz), (3, 2, 2))] = value
        pred[100, 100, 5] = 1  # a stray voxel of label 1
        return pred, ref
    organs = [((x, y, z), (100, 75, 60), (3, -2, 2), (-2, 2, -1)),
              ((x - 106, y + 124, z), (40, 30, 25), (2, 1, -1), (1, -1, 1)),
              ((x + 124, y - 106, z / 1.5), (20, 25, 15), (1, 0, 1), (1, -1, 0))]
    for value, (centre, radii, shift, grow) in enumerate(organs, 1):
        ref[_ellipsoid(shape, centre, radii)] = value
        pred[_ellipsoid(shape, [c + s for c, s in zip(centre, shift)], [r + g for r, g in zip(radii, grow)])] = value
    pred[(rng.random(shape) < 0.002) & (ref == 1)] = 1
    return pred, ref


@contextmanager
def replaced_paths():
    """The code paths the speed-ups replaced, put back for the length of the block."""
    from scipy import ndimage

    import medseg.io.label_images as label_images
    import medseg.label_values as label_values
    import medseg.metrics as metrics

    saved = (label_images.label_values, label_values.label_values, metrics._label_boxes,
             metrics._LabelCounts.BOXED_SHARE)
    label_images.label_values = label_values.label_values = np.unique
    metrics._label_boxes = ndimage.find_objects
    metrics._LabelCounts.BOXED_SHARE = -1.0  # never counted inside the boxes
    try:
        yield
    finally:
        (label_images.label_values, label_values.label_values, metrics._label_boxes,
         metrics._LabelCounts.BOXED_SHARE) = saved


def peak_memory(call) -> int:
    """The most bytes of Python and numpy memory (tracemalloc's count: arrays, not scipy's own C buffers) held at once
    while ``call()`` runs, above what was held before."""
    import tracemalloc

    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def step_times(pred_path: Path, ref_path: Path) -> dict[str, float]:
    """Seconds of each step of scoring with the speed-ups (reads, label values, counts and boxes, surfaces)."""
    import medseg.metrics as metrics
    import medseg.surface_metrics as surface_metrics
    from medseg.io.label_images import read_prediction, read_reference
    from medseg.label_values import label_values

    times = {}

    def timed(name, call):
        clock = time.perf_counter()
        result = call()
        times[name] = times.get(name, 0.0) + time.perf_counter() - clock
        return result

    pred = timed("read the prediction (with its values)", lambda: read_prediction(pred_path))
    ref = timed("read the reference (with its values)", lambda: read_reference(ref_path))
    values = timed("values present, both files", lambda: sorted(
        set(label_values(pred.array).tolist()) | set(label_values(ref.array).tolist()) - {0}))
    counted = timed("counts and boxes", lambda: metrics._LabelCounts(pred.array, ref.array, values))
    for value in values:
        timed("surface distances (edges, MONAI's distances)", lambda value=value: surface_metrics._surface_metrics(
            pred.array, ref.array, value, counted.box(value), pred.spacing_mm))
    return times


def best_of(paths: list[Path], labels: dict[int, str], repeats: int) -> tuple[float, dict, int]:
    """``evaluate_files`` of the two files: the best of ``repeats`` times, the record, and the peak memory of a further
    call."""
    from medseg.scoring import evaluate_files

    times, record = [], None
    for _ in range(repeats):
        clock = time.perf_counter()
        record = evaluate_files(*paths, labels)
        times.append(time.perf_counter() - clock)
    return min(times), record, peak_memory(lambda: evaluate_files(*paths, labels))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", type=int, nargs=3, default=[512, 512, 300])
    parser.add_argument("--tiny", action="store_true", help="three labels of a few voxels each")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    from medseg.shown_warnings import show_warnings

    show_warnings()  # medseg's warnings on stderr (its loggers write nothing in a script configuring no logging)

    import nibabel as nib

    from medseg.scoring import evaluate_files

    shape = tuple(args.shape)
    pred, ref = make_case(shape, args.tiny)
    labels = {0: "background", 1: "a", 2: "b", 3: "c"}
    with tempfile.TemporaryDirectory() as folder:
        paths = [Path(folder, name) for name in ("case_seg.nii.gz", "case_label.nii.gz")]
        for array, path in zip((pred, ref), paths):
            nib.save(nib.Nifti1Image(array, np.diag([0.7, 0.7, 2.5, 1.0])), path)
        del pred, ref
        evaluate_files(*paths, labels)  # the imports (MONAI's: seconds) before anything is timed

        with replaced_paths():
            before, record_before, memory_before = best_of(paths, labels, args.repeats)
        after, record_after, memory_after = best_of(paths, labels, args.repeats)
        steps = step_times(*paths)
    same = json.dumps(record_after["labels"], sort_keys=True) == json.dumps(record_before["labels"], sort_keys=True)
    kind = "three tiny labels" if args.tiny else "three organ-like labels"
    print(f"{'×'.join(map(str, shape))} voxels, {kind}, best of {args.repeats}")
    print(f"  evaluate_files, replaced paths: {before:.2f} s, peak memory +{memory_before / 2**20:.0f} MB")
    print(f"  evaluate_files, speed-ups:      {after:.2f} s, peak memory +{memory_after / 2**20:.0f} MB")
    print(f"  ratio speed-ups / replaced paths: {after / before:.2f}; records identical: {same}")
    for name, seconds in steps.items():
        print(f"    {name}: {seconds:.2f} s")


if __name__ == "__main__":
    main()
