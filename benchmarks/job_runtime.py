"""The run time a cohort inference job takes, against the run time the workflow plans for it.

    python benchmarks/job_runtime.py [--model hippocampus] [--crops 20] [--slices 150] [--threads 1]

Measured in one run, each a whole ``medseg infer`` in a subprocess (interpreter start, imports, model load), on the
CPU with ``--threads`` torch threads, as a cluster job runs it:

* start: one synthetic crop of 35×50×35 voxels of 1 mm (the hippocampus crops' size);
* crops: ``--crops`` such crops and one more in one call; (crops - start) / ``--crops`` is a crop's own time;
* CT: one synthetic 512×512×``--slices`` phantom of 0.7×0.7×1.5 mm; (CT - start) / its million voxels is the time of
  a million voxels.

Each with its wall and CPU seconds (user and system, of the process and its children), and the minutes
``medseg.cohort.job_runtime.infer_minutes`` plans for a job of the same cases, with the ratio planned / measured (wall).
On a machine others keep busy the runs' wall times vary with the load (a crop's wall time, a difference of two runs,
can come out below zero): compare the CPU seconds, and the ratios of one run.
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
from medseg.cohort.job_runtime import infer_minutes
from medseg.package import load_package
from medseg.synthetic import make_phantom

REPO = Path(__file__).resolve().parents[1]
CROP = (35, 50, 35)


def timed_infer(inputs: list[Path], model: str, threads: int, out: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one ``medseg infer`` of ``inputs`` (this interpreter's medseg, the checkout's)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    clock = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    subprocess.run([sys.executable, "-m", "medseg", "infer", *map(str, inputs), "--model", model, "-o", str(out),
                    "--device", "cpu", "--threads", str(threads), "--overwrite"], check=True, capture_output=True,
                   env=env)
    wall = time.perf_counter() - clock
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def write(path: Path, shape: tuple[int, int, int], spacing_mm: tuple[float, float, float], seed: int) -> Path:
    phantom = make_phantom(shape, seed=seed, oblique=False)
    nib.save(nib.Nifti1Image(phantom.image, np.diag([*spacing_mm, 1.0])), str(path))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="hippocampus")
    parser.add_argument("--crops", type=int, default=20)
    parser.add_argument("--slices", type=int, default=150)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    package = load_package(args.model)
    with tempfile.TemporaryDirectory(prefix="medseg-runtime-") as folder:
        work = Path(folder)
        crops = [write(work / f"crop{index:03d}.nii.gz", CROP, (1.0, 1.0, 1.0), index)
                 for index in range(args.crops + 1)]
        ct = write(work / "ct.nii.gz", (512, 512, args.slices), (0.7, 0.7, 1.5), 3)
        runs = {"start": crops[:1], "crops": crops, "CT": [ct]}
        measured = {name: timed_infer(inputs, args.model, args.threads, work / name) for name, inputs in runs.items()}
        print(f"model {args.model}, {args.threads} thread(s), load average {os.getloadavg()[0]:.1f} at the end")
        for name, inputs in runs.items():
            wall, cpu = measured[name]
            planned = infer_minutes([input_grid(path) for path in inputs], package)
            print(f"{name:6s} {len(inputs):3d} input(s): wall {wall:7.1f} s, CPU {cpu:7.1f} s; planned {planned} min "
                  f"= {planned * 60 / wall:.1f} x the wall time")
        start_wall, start_cpu = measured["start"]
        crop_wall, crop_cpu = ((measured["crops"][k] - measured["start"][k]) / args.crops for k in (0, 1))
        mvoxels = input_grid(ct).grid_voxels / 1e6
        ct_wall, ct_cpu = ((measured["CT"][k] - measured["start"][k]) / mvoxels for k in (0, 1))
        print(f"a crop: wall {crop_wall:.2f} s, CPU {crop_cpu:.2f} s; a million voxels of the CT: wall "
              f"{ct_wall:.2f} s, CPU {ct_cpu:.2f} s; the start: wall {start_wall:.1f} s, CPU {start_cpu:.1f} s")


if __name__ == "__main__":
    main()
