"""Multi-modal models: what one, two and four modalities of the same volume cost through `medseg infer`'s path,
and what the memory guard charges for them against what the process held.

    python benchmarks/multimodal.py [--shape 192 192 40] [--modalities 1 2 4] [--resample] [--threads N]

One synthetic phantom (0.8×0.8×2.5 mm, RAS) gives every modality: modality 0 is its image, modality k a flipped,
rescaled and offset copy with its own noise (each is normalised on its own, as a model of several modalities does).
For each count C a package is written with random, seeded weights of the shipped `phantom` model's architecture
(width 16, depth 3, 96×96 tiles, axial, no context slices) taking C modalities (`in_channels` C; C = 1: a package
that declares no modalities, as every single-image model, given a 3D file), and each case runs `segment_case`, the
function `medseg infer` calls, once per layout: a 4D NIfTI of the C modalities (X×Y×Z×C) and nnU-Net's channel
files `case_0000` … (given `case_0000.nii.gz`). Each run is a process of its own (Linux: ``/proc``), which loads the
package, runs a batch of tiles through the network (its activations for a batch, the same whatever the
volume, are then held already), resets its peak (``/proc/self/clear_refs``) and segments the case
with the allocator tuned as the `medseg` command tunes it; it prints the stage times of the sidecar (read,
preprocess, inference), the peak resident memory beyond what it held before the case (`VmHWM`), and what the guard
charges the case before it is read (`medseg.preprocess.grid_memory` with the modalities, as `segment_case` asks
it). Ratios are to the one-modality run of the same invocation. ``--resample`` gives the packages
``spacing_mm`` [1, 1, 1] (the resampling charge, slabs included).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

AFFINE = np.diag([0.8, 0.8, 2.5, 1.0])


def modality_images(shape: tuple[int, ...], count: int) -> list[np.ndarray]:
    """``count`` float32 modalities of one phantom: its image, then copies flipped along another axis, scaled and
    offset (another intensity range each), with noise of their own."""
    from medseg.synthetic import make_phantom

    image = make_phantom(shape, seed=3, oblique=False).image.astype(np.float32)
    rng = np.random.default_rng(0)
    images = [image]
    for k in range(1, count):
        copy = np.flip(image, axis=(k - 1) % 3) * (1.0 + k) + 200.0 * k
        images.append((copy + rng.normal(0, 0.05 * k, shape)).astype(np.float32))
    return images


def write_package(folder: Path, modalities: int, resample: bool) -> Path:
    """A package of the phantom model's architecture and settings taking ``modalities`` images a case (random,
    seeded weights: the figures measured do not depend on what the network has learnt)."""
    import torch

    from medseg.network import UNet2D, UNetConfig
    from medseg.package import load_package, save_package

    config = json.loads(json.dumps(load_package("phantom").config))
    for key in ("training", "weights", "input_extent_mm"):
        config.pop(key, None)
    config["name"] = f"bench-{modalities}-modalities"
    config["architecture"]["in_channels"] = modalities
    if modalities > 1:
        config["modalities"] = [f"m{k}" for k in range(modalities)]
    if resample:
        config["preprocessing"]["spacing_mm"] = [1.0, 1.0, 1.0]
    torch.manual_seed(0)
    net = UNet2D(UNetConfig(**{k: v for k, v in config["architecture"].items() if k != "type"}))
    save_package(net, config, folder)
    return folder


def _status_mb(key: str) -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(key)) / 1024


def one_run(package_dir: Path, input_path: Path, out_dir: Path, threads: int | None) -> dict:
    """Segments one case in this process as `medseg infer` does; its stage times and peak beyond what it held."""
    import nibabel as nib
    import torch

    from medseg.allocator import tune_allocator
    from medseg.inference import Segmenter
    from medseg.package import load_package
    from medseg.preprocess import grid_memory
    from medseg.resources import set_threads
    from medseg.segment import segment_case

    tune_allocator()
    set_threads(threads)
    package = load_package(package_dir)
    segmenter = Segmenter(package, device="cpu", precision="fp32", batch_size=16)
    roi = segmenter.roi_size
    with torch.inference_mode():  # a batch of tiles: the network's one-off costs and its activations (the same
        # whatever the volume) are not the case's, which the guard charges a voxel
        segmenter.net(torch.zeros(segmenter.batch_size, package.config["architecture"]["in_channels"], *roi))
    shape = nib.load(str(input_path)).shape[:3]
    charged, model_shape = grid_memory(shape, AFFINE, package.preprocessing, channels=package.n_modalities)
    held = _status_mb("VmRSS")
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # the peak (VmHWM) starts again from here
    start = time.perf_counter()
    outputs = segment_case(input_path, segmenter, out_dir=out_dir, overwrite=True)
    seconds = time.perf_counter() - start
    peak = _status_mb("VmHWM") - held
    timings = outputs.record["timings_s"]
    return {"read_s": timings["read_s"], "preprocess_s": timings["preprocess_s"],
            "inference_s": timings["inference_s"], "case_s": round(seconds, 3),
            "tiles": outputs.record["inference"]["tiles"], "model_shape": list(model_shape),
            "peak_mb": round(peak, 1), "charged_mb": round(charged / 2**20, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=[192, 192, 40])
    parser.add_argument("--modalities", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--resample", action="store_true", help="packages with spacing_mm [1, 1, 1]")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (default: as `medseg infer` chooses them)")
    parser.add_argument("--json", type=Path, default=None, help="Also write the figures here.")
    parser.add_argument("--one", nargs=3, help=argparse.SUPPRESS)  # package, input, output folder
    args = parser.parse_args()

    from medseg.shown_warnings import show_warnings

    show_warnings()  # medseg's warnings on stderr (its loggers write nothing in a script configuring no logging)
    if args.one:
        from medseg.settings_named import named_as

        package_dir, input_path, out_dir = map(Path, args.one)
        with named_as({"threads": "--threads"}):  # medseg's warning names this script's option (a capped --threads)
            print(json.dumps(one_run(package_dir, input_path, out_dir, args.threads)))
        return

    import nibabel as nib

    shape = tuple(args.shape)
    counts = sorted(set(args.modalities))
    work = Path(tempfile.mkdtemp(prefix="medseg-bench-multimodal-"))
    images = modality_images(shape, max(counts))
    rows = []
    for count in counts:
        package_dir = write_package(work / f"package{count}", count, args.resample)
        layouts = {}
        if count == 1:
            layouts["3d"] = work / "one.nii.gz"
            nib.save(nib.Nifti1Image(images[0], AFFINE), str(layouts["3d"]))
        else:
            layouts["4d"] = work / f"four_d_{count}.nii.gz"
            nib.save(nib.Nifti1Image(np.stack(images[:count], axis=-1), AFFINE), str(layouts["4d"]))
            folder = work / f"channels{count}"
            folder.mkdir()
            for k in range(count):
                nib.save(nib.Nifti1Image(images[k], AFFINE), str(folder / f"case_{k:04d}.nii.gz"))
            layouts["channel files"] = folder / "case_0000.nii.gz"
        for layout, input_path in layouts.items():
            command = [sys.executable, __file__, "--one", str(package_dir), str(input_path),
                       str(work / f"out-{count}-{layout.replace(' ', '_')}")]
            if args.threads is not None:
                command += ["--threads", str(args.threads)]
            run = subprocess.run(command, capture_output=True, text=True)
            if run.returncode != 0:
                raise SystemExit(f"{layout}, {count} modalities: {run.stderr.strip().splitlines()[-1:]}")
            sys.stderr.write(run.stderr)  # the run's warnings from medseg (its segmentation runs there)
            rows.append({"modalities": count, "layout": layout, **json.loads(run.stdout.strip().splitlines()[-1])})
    base = next(row for row in rows if row["modalities"] == min(counts))
    voxels = math.prod(shape)
    print(f"volume {'×'.join(map(str, shape))} ({voxels / 1e6:.2f} M voxels a modality), model space "
          f"{'×'.join(map(str, base['model_shape']))}, {'resampled to 1 mm' if args.resample else 'no resampling'}")
    header = ("modalities", "layout", "read_s", "preprocess_s", "inference_s", "tiles", "peak_mb", "charged_mb",
              "peak/charge", "read×", "preprocess×", "inference×", "peak×")
    print("  ".join(f"{h:>13s}" for h in header))
    for row in rows:
        row["peak_over_charge"] = round(row["peak_mb"] / row["charged_mb"], 2)
        for key in ("read_s", "preprocess_s", "inference_s", "peak_mb"):
            row[f"{key}_over_one"] = round(row[key] / base[key], 2) if base[key] else None
        values = (row["modalities"], row["layout"], row["read_s"], row["preprocess_s"], row["inference_s"],
                  row["tiles"], row["peak_mb"], row["charged_mb"], row["peak_over_charge"], row["read_s_over_one"],
                  row["preprocess_s_over_one"], row["inference_s_over_one"], row["peak_mb_over_one"])
        print("  ".join(f"{v!s:>13s}" for v in values), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"shape": list(shape), "resample": args.resample, "rows": rows}, indent=2)
                             + "\n")
    import shutil

    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
