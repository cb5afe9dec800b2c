"""What `medseg infer`'s progress bar costs: `segment_volume` with the bar drawn against without it.

The bar is told the slices of each forward pass (not each slab), drawn by tqdm as `medseg infer` draws it on a
terminal (here onto a terminal stand-in in memory). In one run, alternating the two so that a machine's changing load
falls on both alike, this times each repeat and prints the medians and their ratio (with ÷ without).

    python benchmarks/progress_overhead.py [IMAGE.nii.gz] [--model hippocampus] [--repeats 9] [--threads N]

Without IMAGE: a synthetic 512×512×30 phantom (0.8 mm, 2.5 mm slices) and the phantom model, many tiles a slice.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

from medseg.resources import wait_passively

wait_passively()  # as the medseg command does, before torch is imported

import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402

from medseg.cli.infer import _ProgressFactory  # noqa: E402
from medseg.inference import Segmenter  # noqa: E402
from medseg.resources import set_threads  # noqa: E402
from medseg.segment import segment_volume  # noqa: E402
from medseg.synthetic import make_phantom  # noqa: E402
from medseg.volume import Volume  # noqa: E402


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("image", nargs="?", type=Path, default=None)
    parser.add_argument("--model", default=None, help="default: hippocampus with an IMAGE, phantom without")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        set_threads(args.threads)
    if args.image is not None:
        loaded = nib.load(args.image)
        volume = Volume(np.asarray(loaded.dataobj, dtype=np.float32), loaded.affine)
        model = args.model or "hippocampus"
    else:
        volume = Volume(make_phantom((512, 512, 30), seed=3).image, np.diag([0.8, 0.8, 2.5, 1.0]))
        model = args.model or "phantom"
    segmenter = Segmenter(model, device="cpu")
    segment_volume(volume, segmenter)  # warm-up
    terminal = _Terminal()
    times: dict[str, list[float]] = {"without": [], "with": []}
    told: list[int] = []
    shown = {}

    def bar(total: int):
        callback = factory(total)
        shown["slices"] = total
        return lambda n: (told.append(n), callback(n))

    for _ in range(args.repeats):
        for kind in ("without", "with"):
            told.clear()
            start = time.perf_counter()
            if kind == "with":
                stderr, sys.stderr = sys.stderr, terminal
                try:
                    with _ProgressFactory(Path("case.nii.gz"), silent=False) as factory:
                        segment_volume(volume, segmenter, progress=bar)
                finally:
                    sys.stderr = stderr
                updates = len(told)
            else:
                segment_volume(volume, segmenter)
            times[kind].append(time.perf_counter() - start)
    without, with_bar = statistics.median(times["without"]), statistics.median(times["with"])
    print(f"model {model}, input {volume.shape}, {shown['slices']} slices to label, {segmenter.batch_size} tiles a "
          f"forward pass, {updates} progress updates a case")
    print(f"without the bar: median {without:.3f} s (min {min(times['without']):.3f}); with it: median "
          f"{with_bar:.3f} s (min {min(times['with']):.3f}); with ÷ without {with_bar / without:.3f} "
          f"({args.repeats} repeats each, alternating)")


if __name__ == "__main__":
    main()
