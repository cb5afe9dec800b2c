"""What scoring one label holds at its peak, against what the memory guard charges for it
(``medseg.voxel_charge.SCORING_BYTES_PER_VOXEL``).

    python benchmarks/scoring_memory.py [--shape 320 320 100] [--cases smooth speckled noise noise2 lattice] [--tilt 0]

Each case runs ``evaluate_volumes`` on a uint8 reference and prediction (0.7×0.7×2.5 mm; ``--tilt`` degrees of
gantry tilt shear the grid) in a process of its own, made before the peak is reset (``/proc/self/clear_refs``), and
prints the peak resident memory beyond what the process held with its two label arrays, in bytes a voxel with the
labels' 2 added (what the charge covers), its ratio to the charge, the wall time, HD95 and ASSD. Cases: ``smooth``
(an ellipsoid filling the volume but for two voxels each side, against the same shifted by two voxels and 5 %
smaller), ``speckled`` (5 % of the reference's voxels knocked out at random), ``noise`` (half of the volume's voxels
at random, every predicted voxel an edge), ``noise2`` (both masks noise) and ``lattice`` (both masks 6/7 of the
voxels, every one an edge). Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time

import numpy as np

CASES = ("smooth", "speckled", "noise", "noise2", "lattice")


def _ellipsoid(shape, centre, radii) -> np.ndarray:
    grid = np.ogrid[tuple(slice(0, n) for n in shape)]
    total = np.zeros(shape, np.float32)
    for g, c, r in zip(grid, centre, radii):
        total += (((g - c) / r) ** 2).astype(np.float32)
    return total <= 1


def make_case(kind: str, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(prediction, reference), uint8."""
    rng = np.random.default_rng(0)
    centre, radii = [n / 2 for n in shape], [n / 2 - 2 for n in shape]
    ref = _ellipsoid(shape, centre, radii)
    if kind == "smooth":
        pred = _ellipsoid(shape, [c + 2 for c in centre], [r * 0.95 for r in radii])
    elif kind == "speckled":
        pred = ref & (rng.random(shape, dtype=np.float32) >= 0.05)
    elif kind in ("noise", "noise2"):
        pred = rng.random(shape, dtype=np.float32) < 0.5
        if kind == "noise2":
            ref = rng.random(shape, dtype=np.float32) < 0.5
    else:  # every voxel but a lattice that touches each of the others: each a 6-neighbour of one left out
        i, j, k = np.ogrid[tuple(slice(0, n) for n in shape)]
        pred, ref = (i + 2 * j + 3 * k) % 7 != 0, (i + 2 * j + 3 * k + 1) % 7 != 0
    return pred.astype(np.uint8), ref.astype(np.uint8)


def _status_mb(key: str) -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(key)) / 1024


def one_case(kind: str, shape: tuple[int, ...], tilt_deg: float) -> dict:
    """Scores one case in this process; its peak beyond the labels."""
    import scipy.ndimage  # noqa: F401 - imported before the peak is reset, as a scoring process holds them
    import scipy.spatial  # noqa: F401

    from medseg.metrics import evaluate_volumes
    from medseg.volume import Volume

    pred, ref = make_case(kind, shape)
    affine = np.diag([0.7, 0.7, 2.5, 1.0])
    affine[1, 2] = 2.5 * math.tan(math.radians(tilt_deg))
    held = _status_mb("VmRSS")
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # the peak (VmHWM) starts again from here
    start = time.perf_counter()
    record = evaluate_volumes(Volume(pred, affine), Volume(ref, affine), {1: "label"})
    seconds = time.perf_counter() - start
    entry = record["labels"]["1"]
    per_voxel = (_status_mb("VmHWM") - held) * 2**20 / pred.size + 2  # the labels: 2 bytes a voxel
    return {"case": kind, "shape": "×".join(map(str, shape)), "tilt_deg": tilt_deg,
            "bytes_a_voxel": round(per_voxel, 1), "seconds": round(seconds, 2), "hd95_mm": entry["hd95_mm"],
            "assd_mm": entry["assd_mm"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=[320, 320, 100])
    parser.add_argument("--cases", nargs="+", choices=CASES, default=list(CASES))
    parser.add_argument("--tilt", type=float, default=0.0)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()

    from medseg.shown_warnings import show_warnings

    show_warnings()  # medseg's warnings on stderr (its loggers write nothing in a script configuring no logging)
    shape = tuple(args.shape)
    if args.one:
        print(json.dumps(one_case(args.one, shape, args.tilt), ensure_ascii=False))
        return
    from medseg.voxel_charge import SCORING_BYTES_PER_VOXEL

    for kind in args.cases:
        run = subprocess.run([sys.executable, __file__, "--one", kind, "--shape", *map(str, shape), "--tilt",
                              str(args.tilt)], capture_output=True, text=True, check=True)
        sys.stderr.write(run.stderr)  # the case's warnings from medseg (its scoring runs there)
        result = json.loads(run.stdout)
        result["of_the_charge"] = round(result["bytes_a_voxel"] / SCORING_BYTES_PER_VOXEL, 2)
        print(json.dumps(result, ensure_ascii=False), flush=True)


if __name__ == "__main__":
    main()
