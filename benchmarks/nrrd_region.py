"""Time and peak memory of `medseg report` on one NRRD case, its overlay's region read from the file's bytes against
read through SimpleITK (teem reads an NRRD whole, in its stored type, for any part of it), in one run.

    python benchmarks/nrrd_region.py WORK [--shape 512 512 300] [--repeats 2]

Writes into WORK a CT-like int16 volume (a body-like disc, noise sigma 20, 0.8×0.8×1.5 mm) as a raw ``.nrrd``, a gzip
``.nrrd`` and a raw ``.nhdr`` with its data file, and for each a results folder with a NIfTI prediction (a ball of
64 mm across, about 79×79×43 voxels) and its sidecar; then runs `medseg report` on each in a fresh process, once as
medseg reads the region and once with the region read through SimpleITK, and prints the wall time, the peak RSS
and the ratios, whether the two overlays are the same, byte for byte, and the seconds of the region read alone.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

_CHILD = """
import sys
import medseg.io.itk_image as itk
if sys.argv[1] == "simpleitk":
    itk._nrrd_part = lambda *args: None
from medseg.cli import main
sys.argv = ["medseg", "report", sys.argv[2], "-o", sys.argv[3] + "/", "--max-overlays", "1", "--overwrite"]
try:
    main()
except SystemExit as stop:
    code = stop.code
# VmHWM: this program's peak (ru_maxrss keeps the forking parent's across exec)
peak = next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print("RSS", peak, file=sys.stderr)
sys.exit(code)
"""


def _write_case(work: Path, name: str, shape: tuple[int, int, int]) -> Path:
    """An image ``name`` (.nrrd raw, .gz.nrrd gzip, .nhdr raw) and a results folder with its prediction."""
    import SimpleITK as sitk

    from medseg.io.atomic import sha256_of
    from medseg.io.images import read_grid
    from medseg.io.itk_image import itk_files_read
    from medseg.io.nifti_write import write_labels
    from medseg.io.pairs import file_signature
    from medseg.segment import versions
    from medseg.volume import Volume

    spacing = (0.8, 0.8, 1.5)
    ending, compressed = {"raw": (".nrrd", False), "gzip": (".nrrd", True), "detached": (".nhdr", False)}[name]
    path = work / f"ct_{name}{ending}"
    if not path.exists():
        k, j, i = np.ogrid[: shape[2], : shape[1], : shape[0]]
        body = ((i - shape[0] / 2) ** 2 / (0.42 * shape[0]) ** 2 + (j - shape[1] / 2) ** 2 / (0.32 * shape[1]) ** 2) < 1
        stored = np.random.default_rng(0).normal(0, 20, (shape[2], shape[1], shape[0])).astype(np.float32)
        stored += np.where(np.broadcast_to(body, stored.shape), 1040.0, 24.0).astype(np.float32)
        image = sitk.GetImageFromArray(stored.astype(np.int16))
        del stored
        image.SetSpacing(spacing)
        sitk.WriteImage(image, str(path), compressed)
    grid_shape, affine = read_grid(path)
    centre = np.array(grid_shape) / 2
    x, y, z = (np.arange(n) for n in grid_shape)
    distance = ((x[:, None, None] - centre[0]) * spacing[0]) ** 2 + ((y[None, :, None] - centre[1]) * spacing[1]) ** 2
    labels = (distance + ((z[None, None, :] - centre[2]) * spacing[2]) ** 2 < 32.0 ** 2).astype(np.uint8)
    results = work / f"results_{name}"
    folder = results / "cases" / "ct"
    folder.mkdir(parents=True, exist_ok=True)
    like = Volume(labels, affine, source=path)
    write_labels(labels, like, folder / "ct_seg.nii.gz")
    counts = np.bincount(labels.ravel(), minlength=2)
    sidecar = {
        "schema": "medseg-segmentation/1", "case_id": "ct", "input": str(path),
        "input_sha256": sha256_of(itk_files_read(path)), "input_signature": file_signature(path),
        "segmentation": "ct_seg.nii.gz", "shape": list(grid_shape), "affine": affine.tolist(),
        "labels": {"0": "background", "1": "ball"},
        "label_voxels": {str(v): int(counts[v]) for v in (0, 1)},
        "label_volume_ml": {str(v): round(float(counts[v]) * float(np.prod(spacing)) / 1000, 4) for v in (0, 1)},
        "model": {"name": "nrrd-region-benchmark", "version": "0", "weights_sha256": None, "path": None},
        "device": "none", "versions": versions(), "timings_s": {},
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    (folder / "ct_seg.json").write_text(json.dumps(sidecar, indent=2) + "\n")
    return results


def _report(results: Path, out: Path, how: str) -> tuple[float, float]:
    """Wall seconds and peak RSS (GB) of `medseg report` in a fresh process; ``how``: "bytes" or "simpleitk"."""
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _CHILD, how, str(results), str(out)], env=env, capture_output=True,
                          text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"medseg report failed ({how}):\n{done.stderr}")
    rss = next(int(line.split()[1]) for line in done.stderr.splitlines() if line.startswith("RSS "))
    return wall, rss / 1024 ** 2


def _pictures(out: Path) -> list[str]:
    """The pictures of a report's page (embedded PNGs)."""
    import re

    return re.findall(r"data:image/png;base64,[A-Za-z0-9+/=]+", (out / "report.html").read_text())


def _region_seconds(path: Path, shape: tuple[int, int, int], how: str, repeats: int) -> float:
    """Best of ``repeats`` seconds of :func:`~medseg.io.itk_image.read_itk_region` of a central box of 112×112×60
    voxels (about what the overlay of the ball reads), from the file's bytes or through SimpleITK."""
    import medseg.io.itk_image as itk
    from medseg.io import nifti  # noqa: F401  (imported by the report before; not timed)

    box = tuple(slice(max(0, n // 2 - m // 2), n // 2 + m // 2) for n, m in zip(shape, (112, 112, 60)))
    kept = itk._nrrd_part
    if how == "simpleitk":
        itk._nrrd_part = lambda *args: None
    try:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            itk.read_itk_region(path, box)
            times.append(time.perf_counter() - start)
    finally:
        itk._nrrd_part = kept
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("--shape", type=int, nargs=3, default=(512, 512, 300))
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)

    from medseg.shown_warnings import show_warnings

    show_warnings()  # medseg's warnings on stderr (its loggers write nothing in a script configuring no logging)
    args.work.mkdir(parents=True, exist_ok=True)
    for name in ("raw", "gzip", "detached"):
        results = _write_case(args.work, name, tuple(args.shape))
        figures = {}
        for how in ("simpleitk", "bytes"):
            runs = [_report(results, args.work / f"report_{name}_{how}", how) for _ in range(args.repeats)]
            figures[how] = (min(w for w, _ in runs), max(w for w, _ in runs), max(r for _, r in runs))
        pictures = [_pictures(args.work / f"report_{name}_{how}") for how in ("simpleitk", "bytes")]
        same = pictures[0] == pictures[1] and len(pictures[0]) > 0
        (a_low, a_high, a_rss), (b_low, b_high, b_rss) = figures["simpleitk"], figures["bytes"]
        path = next(args.work.glob(f"ct_{name}.n*"))
        region = {how: _region_seconds(path, tuple(args.shape), how, 3) for how in ("simpleitk", "bytes")}
        print(f"{name:9s} report: SimpleITK {a_low:.1f}-{a_high:.1f} s {a_rss:.2f} GB | bytes {b_low:.1f}-{b_high:.1f} "
              f"s {b_rss:.2f} GB | time x{b_low / a_low:.2f}, memory x{b_rss / a_rss:.2f}, pictures identical: {same}"
              f" || region read: SimpleITK {region['simpleitk']:.3f} s, bytes {region['bytes']:.3f} s "
              f"(x{region['bytes'] / region['simpleitk']:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
