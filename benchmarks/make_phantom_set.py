"""Write a set of synthetic phantoms (images/ and labels/) for training or benchmarks.

    python benchmarks/make_phantom_set.py OUT_DIR [--count 40] [--first-seed 1000]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from medseg.shown_warnings import show_warnings
from medseg.synthetic import write_phantom


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--first-seed", type=int, default=1000)
    args = parser.parse_args()
    show_warnings()  # medseg's warnings on stderr (its loggers write nothing in a script configuring no logging)
    for i in range(args.count):
        seed = args.first_seed + i
        rng = np.random.default_rng(seed)
        shape = tuple(int(v) for v in rng.integers(64, 129, size=3))
        name = f"phantom_{seed}.nii.gz"
        write_phantom(args.out_dir / "images" / name, args.out_dir / "labels" / name, shape=shape, seed=seed)
    print(f"wrote {args.count} phantoms to {args.out_dir}")


if __name__ == "__main__":
    main()
