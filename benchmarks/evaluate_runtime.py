"""The run time a cohort scoring job takes, against the run time the workflow plans for it.

    python benchmarks/evaluate_runtime.py [--hippocampus DIR] [--cases 20] [--slices 150] [--noise 0.05]

Measured in one run, each in a fresh interpreter as ``medseg cohort evaluate`` scores its cases (interpreter start,
imports, reading, Dice, surface distances, volumes, writing), with one thread, as a cluster job runs it:

* start: one case of the real hippocampus crops (``--hippocampus``: a folder with ``images/`` and ``labels/``, the
  shared data's), its label as the reference and a noisy copy as the prediction;
* crops: ``--cases`` such cases and that one in one call; (crops - start) / their million voxels is a million voxels'
  time on the crops;
* CT: one synthetic 512×512×``--slices`` label volume of 0.7×0.7×1.5 mm (three organ-like ellipsoids) against a noisy
  prediction; (CT - start) / its million voxels is a million voxels' time on a large volume.

The prediction of each case is its reference with ``--noise`` of its voxels set to a random label (0 included):
every such voxel an edge, which is what makes the surface distances cost (a clean prediction costs far less).
Each with its wall and CPU seconds (user and system, of the process and its children), and the minutes
``medseg.cohort.job_runtime.evaluate_minutes`` plans for a job of the same cases, with the ratio planned / measured
(wall). On a machine others keep busy the wall times vary with the load: compare the CPU seconds, and the ratios of
one run.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

from medseg.cohort.input_voxels import input_grid
from medseg.cohort.job_runtime import evaluate_minutes

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "hippocampus"


# what a scoring job runs for each case (medseg.cohort.run._evaluate_one), on one thread, in a fresh interpreter
_SCORE = """
import sys
from pathlib import Path
from medseg.metrics import metrics_json
from medseg.resources import set_threads
from medseg.scoring import score_prediction
set_threads(1, torch=False)
predictions, references, out = map(Path, sys.argv[1:])
out.mkdir(exist_ok=True)
for reference in sorted(references.iterdir()):
    case = reference.name.split(".")[0]
    metrics = score_prediction(predictions / reference.name, reference, case)
    (out / f"{case}_metrics.json").write_text(metrics_json(metrics))
"""


def timed_evaluate(predictions: Path, references: Path, out: Path) -> tuple[float, float]:
    """Wall and CPU seconds of scoring each pair of two folders in one fresh interpreter, as a scoring job does
    (this interpreter's medseg, the checkout's)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    clock = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    subprocess.run([sys.executable, "-c", _SCORE, str(predictions), str(references), str(out)], check=True,
                   capture_output=True, env=env)
    wall = time.perf_counter() - clock
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def noisy(labels: np.ndarray, share: float, seed: int) -> np.ndarray:
    """``labels`` with ``share`` of its voxels set to a random label value (0 included)."""
    rng = np.random.default_rng(seed)
    values = np.unique(labels)
    out = labels.copy()
    hit = rng.random(labels.shape) < share
    out[hit] = rng.choice(values, size=int(hit.sum())).astype(labels.dtype)
    return out


def _ellipsoid(shape, centre, radii) -> np.ndarray:
    grid = np.ogrid[tuple(slice(0, n) for n in shape)]
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii)) <= 1


def ct_labels(slices: int) -> np.ndarray:
    """Three organ-like ellipsoids in a 512×512×``slices`` uint8 volume."""
    shape = (512, 512, slices)
    labels = np.zeros(shape, np.uint8)
    x, y, z = (n / 2 for n in shape)
    for value, (centre, radii) in enumerate([((x, y, z), (100, 75, z * 0.8)), ((x - 106, y + 124, z), (40, 30, z / 2)),
                                             ((x + 124, y - 106, z), (20, 25, z / 3))], 1):
        labels[_ellipsoid(shape, centre, radii)] = value
    return labels


def pair(folder: Path, name: str, labels: np.ndarray, affine: np.ndarray, share: float, seed: int) -> None:
    (folder / "ref").mkdir(parents=True, exist_ok=True)
    (folder / "pred").mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(labels, affine), str(folder / "ref" / name))
    nib.save(nib.Nifti1Image(noisy(labels, share, seed), affine), str(folder / "pred" / name))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hippocampus", type=Path, default=SHARED)
    parser.add_argument("--cases", type=int, default=20)
    parser.add_argument("--slices", type=int, default=150)
    parser.add_argument("--noise", type=float, default=0.05)
    args = parser.parse_args()
    labels = sorted((args.hippocampus / "labels").glob("*.nii.gz"))[: args.cases + 1]
    if len(labels) < args.cases + 1:
        sys.exit(f"{args.hippocampus / 'labels'}: {len(labels)} label files, {args.cases + 1} needed")
    with tempfile.TemporaryDirectory(prefix="medseg-eval-runtime-") as folder:
        work = Path(folder)
        for index, path in enumerate(labels):
            image = nib.load(str(path))
            data = np.asarray(image.dataobj).astype(np.uint8)
            for run in ("start", "crops")[(index > 0):]:
                pair(work / run, path.name, data, image.affine, args.noise, index)
        pair(work / "ct", "ct.nii.gz", ct_labels(args.slices), np.diag([0.7, 0.7, 1.5, 1.0]), args.noise, 99)
        measured = {run: timed_evaluate(work / run / "pred", work / run / "ref", work / f"{run}-out")
                    for run in ("start", "crops", "ct")}
        print(f"noise {args.noise:.0%} of the voxels, 1 thread, load average {os.getloadavg()[0]:.1f} at the end")
        mvoxels = {}
        for run, (wall, cpu) in measured.items():
            grids = [input_grid(p) for p in sorted((work / run / "ref").iterdir())]
            mvoxels[run] = sum(g.grid_voxels for g in grids) / 1e6
            planned = evaluate_minutes(grids)
            print(f"{run:6s} {len(grids):3d} case(s), {mvoxels[run]:7.2f} M voxels: wall {wall:7.1f} s, CPU "
                  f"{cpu:7.1f} s; planned {planned} min = {planned * 60 / wall:.1f} x the wall time")
        for run in ("crops", "ct"):
            extra = mvoxels[run] - mvoxels["start"]
            wall, cpu = ((measured[run][k] - measured["start"][k]) / extra for k in (0, 1))
            print(f"a million voxels ({run}): wall {wall:.2f} s, CPU {cpu:.2f} s")


if __name__ == "__main__":
    main()
