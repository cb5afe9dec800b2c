"""Inference speed: how close `medseg infer` comes to the network's own forward time.

On a synthetic 512x512xN phantom, in one run, this measures

* forward: the network alone (inference mode, same precision and batch size) over exactly as many tiles
  of the model's tile size as the sliding window evaluates for this volume;
* pipeline: `segment_case` in-process — read, MONAI preprocessing, sliding-window inference with gaussian
  blending, argmax, inversion to the input grid, atomic NIfTI + sidecar write (model already loaded);
* command: the whole `medseg infer` command in a subprocess (interpreter start, imports, model load included),
  with its peak RSS;
* whole-slice forward: the network on the whole planes it is given, i.e. without tiling, to show what tiling costs:
  the model-space planes along each slicing axis (for a package that resamples, not the input's 512x512 slices:
  the 512x512x150 phantom at 1 mm for `hippocampus` is 410 coronal planes of 410x374), each padded to the tile
  where it is smaller, once per flip of the test-time augmentation;
* the forward's FLOP/s as a fraction of a float32 matrix product measured in the same run.

    python benchmarks/infer_speed.py [--slices 32] [--model phantom] [--device cpu] [--batch-size 16] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from medseg.resources import wait_passively

# as the medseg command does, before torch is imported (its OpenMP runtime reads the policy when it is loaded): the
# in-process figures are the command's, whose threads wait passively unless the environment chose otherwise
wait_passively()

import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from stderr_line import stderr_line  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from medseg.allocator import tune_allocator  # noqa: E402
from medseg.errors import MedsegError  # noqa: E402
from medseg.inference import Segmenter  # noqa: E402
from medseg.one_line import escaped_line  # noqa: E402
from medseg.package import load_package  # noqa: E402
from medseg.preprocess import grid_model_shape  # noqa: E402
from medseg.resources import set_threads  # noqa: E402
from medseg.segment import segment_case  # noqa: E402
from medseg.settings_named import named_as  # noqa: E402
from medseg.shown_warnings import show_warnings  # noqa: E402
from medseg.synthetic import make_phantom  # noqa: E402

AFFINE = np.diag([0.8, 0.8, 2.5, 1.0])  # the phantom's voxels: 0.8 mm in plane, 2.5 mm slices


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_forward(segmenter: Segmenter, tiles: int, shape: tuple[int, int], repeats: int = 2) -> float:
    """Seconds for the bare network over ``tiles`` tiles of ``shape`` in batches (best of ``repeats``)."""
    channels = segmenter.package.config["architecture"]["in_channels"]
    batch = torch.randn(segmenter.batch_size, channels, *shape, device=segmenter.device)
    best = float("inf")
    with torch.inference_mode(), segmenter._autocast():
        segmenter.net(batch[:1])
        for _ in range(repeats):
            _sync(segmenter.device)
            start = time.perf_counter()
            left = tiles
            while left > 0:
                n = min(left, segmenter.batch_size)
                segmenter.net(batch[:n])
                left -= n
            _sync(segmenter.device)
            best = min(best, time.perf_counter() - start)
    return best


def whole_planes(segmenter: Segmenter, model_shape: tuple[int, ...]) -> list[tuple[int, tuple[int, int]]]:
    """(count, plane) of the whole planes the network would be given without tiling, one entry per slicing axis of
    the model-space volume ``model_shape``: as many planes as the axis is long (once more per flip of the
    test-time augmentation), each the other two axes padded to the tile where smaller, as the sliding window pads
    them."""
    planes = []
    for axis in segmenter.slice_axes:
        a, b = (int(n) for i, n in enumerate(model_shape) if i != axis)
        plane = (max(a, segmenter.roi_size[0]), max(b, segmenter.roi_size[1]))
        planes.append((int(model_shape[axis]) * (1 + len(segmenter.flips)), plane))
    return planes


def flops_per_tile(segmenter: Segmenter, shape: tuple[int, int]) -> float:
    channels = segmenter.package.config["architecture"]["in_channels"]
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        segmenter.net(torch.zeros(1, channels, *shape, device=segmenter.device))
    return float(counter.get_total_flops())


def matmul_flops_per_s(device: torch.device, n: int = 2048, repeats: int = 5) -> float:
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    torch.mm(a, b)
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        torch.mm(a, b)
    _sync(device)
    return 2 * n**3 * repeats / (time.perf_counter() - start)


def run_with_peak_rss(command: list[str]) -> float:
    """Run ``command``; return its peak resident memory in MB, sampled every 10 ms.

    (``RUSAGE_CHILDREN`` would also count the pages a forked child shares with this large process.)
    """
    import psutil

    child = subprocess.Popen(command)
    proc = psutil.Process(child.pid)
    peak = 0
    while child.poll() is None:
        try:
            peak = max(peak, proc.memory_info().rss)
        except psutil.NoSuchProcess:
            break
        time.sleep(0.01)
    if child.returncode != 0:
        raise SystemExit(escaped_line(f"{command[0]} exited with {child.returncode}"))
    return peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=32)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--model", default="phantom")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads, here and in the command (default: as `medseg infer` chooses them)")
    parser.add_argument("--repeats", type=int, default=2, help="Alternating runs of pipeline and forward.")
    parser.add_argument("--json", type=Path, default=None, help="Also write the figures here.")
    args = parser.parse_args()
    # medseg's messages name this script's options (--device tpu, a capped --threads), as medseg's commands name theirs
    with named_as({"device": "--device", "precision": "--precision", "threads": "--threads"}):
        _measure(args)


def _measure(args: argparse.Namespace) -> None:
    """The figures of the script's parsed ``args``, printed (and written to ``--json``)."""
    show_warnings()  # medseg's warnings on stderr (its loggers write nothing in a script configuring no logging)

    tuned = tune_allocator()  # as the medseg command does: the in-process figures are the command's
    set_threads(args.threads)  # and its threads (a cgroup's CPU quota caps them where none are given)
    try:
        package = load_package(args.model)
        segmenter = Segmenter(package, device=args.device, precision=args.precision, batch_size=args.batch_size)
    except MedsegError as error:  # no such model, a device not there: one line, as medseg's own commands
        stderr_line(f"error: {error}")
        sys.exit(1)
    work = Path(tempfile.mkdtemp(prefix="medseg-bench-"))
    phantom = make_phantom((args.size, args.size, args.slices), seed=3, oblique=False)
    image_path = work / "bench.nii.gz"
    nib.save(nib.Nifti1Image(phantom.image, AFFINE), str(image_path))

    # warm-up on a small volume so one-off costs (allocator, kernels) are not counted
    small = work / "warm.nii.gz"
    nib.save(nib.Nifti1Image(phantom.image[:128, :128, :4].copy(), AFFINE), str(small))
    quiet = logging.getLogger("medseg")
    level, quiet.level = quiet.level, logging.ERROR  # its small field of view is not the measurement's business
    try:
        segment_case(small, segmenter, out_dir=work / "warm", overwrite=True)
    finally:
        quiet.setLevel(level)

    # pipeline and forward alternate, best of --repeats each, so a busy spell on a shared machine does not
    # land on one side of the ratio only
    pipeline_s = forward_s = float("inf")
    roi = segmenter.roi_size  # a plane smaller than the tile is padded to it: the tiles are always this size
    for _ in range(args.repeats):
        start = time.perf_counter()
        run = segment_case(image_path, segmenter, out_dir=work / "out", overwrite=True)
        seconds = time.perf_counter() - start
        if seconds < pipeline_s:  # the stage timings printed are the best run's
            pipeline_s, outputs = seconds, run
        tiles = outputs.record["inference"]["tiles"]
        forward_s = min(forward_s, time_forward(segmenter, tiles, roi, repeats=1))
    # the planes the network sees in model space (resampled, turned), not the input's slices
    planes = whole_planes(segmenter, grid_model_shape(phantom.image.shape, AFFINE, package.preprocessing))
    whole_s = sum(time_forward(segmenter, count, plane, repeats=1) for count, plane in planes)
    flops = flops_per_tile(segmenter, roi) * tiles
    matmul = matmul_flops_per_s(segmenter.device)

    command = [sys.executable, "-m", "medseg", "-q", "infer", str(image_path), "-o", str(work / "cmd"),
               "--model", args.model, "--device", args.device, "--precision", args.precision,
               "--batch-size", str(args.batch_size)]
    if args.threads is not None:
        command += ["--threads", str(args.threads)]
    start = time.perf_counter()
    peak_rss_mb = run_with_peak_rss(command)
    command_s = time.perf_counter() - start
    shutil.rmtree(work, ignore_errors=True)  # the phantom and its outputs (about 30 MB at 512×512×32)

    figures = {
        "volume": [args.size, args.size, args.slices],
        "model": package.name,
        "device": str(segmenter.device_choice),
        "precision": segmenter.precision,
        "threads": torch.get_num_threads(),
        "allocator_tuned": tuned,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "tiles": tiles,
        "tile_size": list(roi),
        "forward_s": round(forward_s, 3),
        "pipeline_s": round(pipeline_s, 3),
        "pipeline_over_forward": round(pipeline_s / forward_s, 3),
        "command_s": round(command_s, 3),
        "command_over_forward": round(command_s / forward_s, 3),
        "whole_slice_planes": [[count, list(plane)] for count, plane in planes],
        "whole_slice_forward_s": round(whole_s, 3),
        "tiled_forward_over_whole_slice_forward": round(forward_s / whole_s, 3),
        "slices_per_s_pipeline": round(args.slices / pipeline_s, 2),
        "forward_gflop_per_s": round(flops / forward_s / 1e9, 2),
        "matmul_gflop_per_s": round(matmul / 1e9, 2),
        "forward_fraction_of_matmul": round(flops / forward_s / matmul, 3),
        "command_peak_rss_mb": round(peak_rss_mb, 1),
        "stage_timings_s": outputs.record["timings_s"],
    }
    for key, value in figures.items():
        print(f"{key:40s} {value}")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
