"""What the surface distances of a speckled prediction cost: ``evaluate_files`` with the distances chosen between
the k-d tree and a distance map (``medseg.surface_distance``), and with MONAI's ``get_surface_distance`` (its k-d
tree for every voxel) put back, in one run.

    python benchmarks/surface_distance_speed.py [--shape 208 208 158] [--holes 0.01] [--organs] [--repeats 1]

Writes a reference and a prediction (uint8, 0.7×0.7×2.5 mm) to a temporary folder: an ellipsoid filling the volume
but for two voxels each side, the prediction the same with ``--holes`` of its voxels knocked out at random (edges
deep inside the reference, where a k-d tree search slows); with ``--organs``, ``evaluate_speed.py``'s three
organ-like ellipsoids (shifted, resized, speckled inside the largest; 512×512×300 by default there). Scores them
(MONAI imported beforehand, not counted) both ways, checks that the records are identical, and prints the best of
``--repeats`` times of each, their ratio, and the peak memory of each way (tracemalloc's: numpy's arrays and scipy's
feature transform, in a run of its own).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from evaluate_speed import _ellipsoid, best_of, make_case


def speckled_case(shape: tuple[int, int, int], holes: float) -> tuple[np.ndarray, np.ndarray]:
    ref = _ellipsoid(shape, [n / 2 for n in shape], [n / 2 - 2 for n in shape]).astype(np.uint8)
    pred = ref.copy()
    pred[np.random.default_rng(0).random(shape) < holes] = 0
    return pred, ref


@contextmanager
def monai_distances():
    """MONAI's ``get_surface_distance`` for every direction, as scoring called it before, for the length of the
    block."""
    from monai.metrics.utils import get_surface_distance

    import medseg.surface_distance as surface_distance

    saved = surface_distance.directed_distances
    surface_distance.directed_distances = lambda query, target, spacing, budget: get_surface_distance(
        query, target, distance_metric="euclidean", spacing=spacing)
    try:
        yield
    finally:
        surface_distance.directed_distances = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", type=int, nargs=3, default=None)
    parser.add_argument("--holes", type=float, default=0.01, help="share of the prediction's voxels knocked out")
    parser.add_argument("--organs", action="store_true", help="evaluate_speed.py's organ-like labels instead")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    from medseg.shown_warnings import show_warnings

    show_warnings()  # medseg's warnings on stderr (its loggers write nothing in a script configuring no logging)

    import monai.metrics  # noqa: F401 - its import is not what is timed
    import nibabel as nib


    shape = tuple(args.shape or ((512, 512, 300) if args.organs else (208, 208, 158)))
    pred, ref = make_case(shape, False) if args.organs else speckled_case(shape, args.holes)
    labels = {0: "background", 1: "a", 2: "b", 3: "c"} if args.organs else {0: "background", 1: "a"}
    with tempfile.TemporaryDirectory() as folder:
        paths = [Path(folder, name) for name in ("case_seg.nii.gz", "case_label.nii.gz")]
        for array, path in zip((pred, ref), paths):
            nib.save(nib.Nifti1Image(array, np.diag([0.7, 0.7, 2.5, 1.0])), path)
        del pred, ref

        with monai_distances():
            before, record_before, memory_before = best_of(paths, labels, args.repeats)
        after, record_after, memory_after = best_of(paths, labels, args.repeats)
    same = json.dumps(record_after["labels"], sort_keys=True) == json.dumps(record_before["labels"], sort_keys=True)
    kind = "three organ-like labels" if args.organs else f"an ellipsoid, {args.holes:.0%} of its voxels knocked out"
    print(f"{'×'.join(map(str, shape))} voxels, {kind}, best of {args.repeats}")
    print(f"  evaluate_files, MONAI's k-d tree:  {before:.2f} s, peak memory +{memory_before / 2**20:.0f} MB")
    print(f"  evaluate_files, tree or map:       {after:.2f} s, peak memory +{memory_after / 2**20:.0f} MB")
    print(f"  ratio tree or map / MONAI's tree: {after / before:.2f}; records identical: {same}")
    for value, entry in record_after["labels"].items():
        print(f"    label {value}: HD95 {entry['hd95_mm']} mm, ASSD {entry['assd_mm']} mm")


if __name__ == "__main__":
    main()
