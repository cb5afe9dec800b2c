"""What a forward pass of one slab's tiles holds at its peak on the CPU, against what ``medseg.tile_memory`` charges
for them (the check that refuses a package one of whose tiles the machine cannot hold).

    python benchmarks/tile_memory.py [--packages 14,64,5,512 1024,1,1,256 3,16,4,512] [--slices 4] [--batch-size 16]

Each package (CLASSES,WIDTH,DEPTH,TILE: a U-Net of random weights, one input channel, TILE² tiles) segments a random
TILE×TILE×``--slices`` model-space volume with :meth:`medseg.inference.Segmenter.predict`, in a process of its own,
its peak reset once the package is loaded (``/proc/self/clear_refs``); printed: the tiles a pass holds (the batch
size, at most a slab's slices), the peak resident memory beyond what the process held before, per tile, the charge of
one tile (``tile_pass_bytes``) and their ratio (the charge is meant as an upper bound: below 1), and the wall time.
Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _status_mb(key: str) -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(key)) / 1024


def one_package(spec: str, slices: int, batch_size: int) -> dict:
    """Segments one random volume with the package ``spec`` describes, in this process."""
    import torch

    from medseg.inference import Segmenter
    from medseg.network import UNet2D, UNetConfig
    from medseg.package import load_package, save_package
    from medseg.tile_memory import tile_pass_bytes

    classes, width, depth, tile = (int(v) for v in spec.split(","))
    architecture = {"in_channels": 1, "n_classes": classes, "base_width": width, "depth": depth, "dropout": 0.0,
                    "norm": "batch"}
    config = {"format": "medseg-model/1", "name": "bench", "version": "0",
              "architecture": {"type": "unet2d", **architecture},
              "labels": {str(value): f"label {value}" for value in range(classes)},
              "preprocessing": {"orientation": "RAS", "spacing_mm": None, "intensity": {"kind": "zscore"}},
              "inference": {"slice_axis": 2, "roi_size": [tile, tile], "overlap": 0.25, "context_slices": 0}}
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as folder:
        save_package(UNet2D(UNetConfig(**architecture)), config, Path(folder) / "bench")
        package = load_package(Path(folder) / "bench")
        segmenter = Segmenter(package, device="cpu", batch_size=batch_size)  # its weights read here
    image = torch.randn(1, tile, tile, slices)
    held = _status_mb("VmRSS")
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # the peak (VmHWM) starts again from here
    start = time.perf_counter()
    segmenter.predict(image)
    seconds = time.perf_counter() - start
    tiles = min(batch_size, segmenter.slab_slices((tile, tile)), slices)
    used = (_status_mb("VmHWM") - held) * 2**20
    charge = tile_pass_bytes(package.config["architecture"], 1, [tile, tile])
    return {"package": f"{classes} classes, width {width}, depth {depth}, {tile}² tiles", "tiles_a_pass": tiles,
            "peak_mib_a_tile": round(used / tiles / 2**20), "charge_mib_a_tile": round(charge / 2**20),
            "of_the_charge": round(used / tiles / charge, 2), "seconds": round(seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packages", nargs="+", default=["14,64,5,512", "1024,1,1,256", "3,16,4,512"])
    parser.add_argument("--slices", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()

    from medseg.shown_warnings import show_warnings

    show_warnings()  # medseg's warnings on stderr (its loggers write nothing in a script configuring no logging)
    if args.one:
        print(json.dumps(one_package(args.one, args.slices, args.batch_size), ensure_ascii=False))
        return
    for spec in args.packages:
        run = subprocess.run([sys.executable, __file__, "--one", spec, "--slices", str(args.slices), "--batch-size",
                              str(args.batch_size)], capture_output=True, text=True)
        sys.stderr.write(run.stderr)
        if run.returncode:
            sys.exit(f"{spec}: the package's process failed (exit code {run.returncode})")
        print(run.stdout.strip(), flush=True)


if __name__ == "__main__":
    main()
