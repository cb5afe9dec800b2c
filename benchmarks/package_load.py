"""What loading a model package costs: its weights' SHA-256, and the check of their types and values (NaN,
infinities) that lets ``medseg models`` and a workflow's planning refuse damaged weights without torch.

    python benchmarks/package_load.py [--width 96] [--depth 5] [--repeats 3]

Writes a package of random weights of that U-Net size to a temporary folder (width 96, depth 5: about 1.1 GB) and
prints the best of ``--repeats`` loads (the file in the page cache) with every check, with the SHA-256 only, and
without either, and the ratios measured in this one run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def best(step, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        clock = time.perf_counter()
        step()
        times.append(time.perf_counter() - clock)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=96)
    parser.add_argument("--depth", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from medseg.shown_warnings import show_warnings

    show_warnings()  # medseg's warnings on stderr (its loggers write nothing in a script configuring no logging)

    import torch

    from medseg.network import UNet2D, UNetConfig
    from medseg.package import ModelPackage, load_package, save_package

    arch = {"type": "unet2d", "in_channels": 1, "n_classes": 4, "base_width": args.width, "depth": args.depth,
            "dropout": 0.0, "norm": "batch"}
    config = {
        "format": "medseg-model/1", "name": "load-benchmark", "version": "0", "description": "random weights",
        "architecture": arch, "labels": {"0": "background", "1": "a", "2": "b", "3": "c"},
        "preprocessing": {"orientation": "RAS", "spacing_mm": None, "intensity": {"kind": "zscore"}},
        "inference": {"slice_axis": 2, "roi_size": [64, 64], "overlap": 0.25, "blend": "gaussian",
                      "context_slices": 0},
    }
    with tempfile.TemporaryDirectory() as folder:
        torch.manual_seed(0)
        net = UNet2D(UNetConfig(**{k: v for k, v in arch.items() if k != "type"}))
        package = save_package(net, config, Path(folder) / "package")
        del net
        size_gb = package.weights_path.stat().st_size / 1e9
        load_package(package.path)  # into the page cache
        full = best(lambda: load_package(package.path), args.repeats)
        check_values = ModelPackage._check_values
        ModelPackage._check_values = lambda self, weights: None
        try:
            hashed = best(lambda: load_package(package.path), args.repeats)
        finally:
            ModelPackage._check_values = check_values
        bare = best(lambda: load_package(package.path, check_hash=False), args.repeats)
    print(f"weights file: {size_gb:.2f} GB (width {args.width}, depth {args.depth})")
    print(f"load, every check:   {full:.2f} s ({size_gb / full:.2f} GB/s)")
    print(f"load, SHA-256 only:  {hashed:.2f} s")
    print(f"load, no file check: {bare:.3f} s (config and header)")
    print(f"value check: {full - hashed:.2f} s, {(full - hashed) / size_gb:.2f} s per GB; "
          f"load with it / without it: {full / hashed:.2f}")


if __name__ == "__main__":
    main()
