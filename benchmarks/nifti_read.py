"""Peak memory of medseg's NIfTI readers against the array they return, in one run.

    python benchmarks/nifti_read.py [--shape 512 512 300]

Writes a label image (uint8) and a CT-like image (int16, without and with scl_slope / scl_inter) as ``.nii.gz`` in a
temporary folder, then reads each through the readers that `medseg infer`, `medseg evaluate` and `medseg report` use,
printing the most memory traced during the read (tracemalloc: numpy's arrays and Python's buffers) as a multiple of
the array returned. One copy is 1.00; nibabel's own read of a ``.nii.gz`` holds two.
"""

from __future__ import annotations

import argparse
import struct
import tempfile
import time
import tracemalloc
from pathlib import Path

import nibabel as nib
import numpy as np


def _write_inputs(folder: Path, shape: tuple[int, int, int]) -> dict[str, Path]:
    from isal import igzip

    x, y, z = np.ogrid[: shape[0], : shape[1], : shape[2]]
    centre = np.array(shape) / 2
    labels = np.zeros(shape, np.uint8)
    labels[np.broadcast_to((x - centre[0]) ** 2 + (y - centre[1]) ** 2 < (0.3 * shape[0]) ** 2, shape)] = 1
    blob = (x - 0.4 * shape[0]) ** 2 + (y - 0.6 * shape[1]) ** 2 + 4 * (z - centre[2]) ** 2
    labels[blob < (0.12 * shape[0]) ** 2] = 2
    affine = np.diag([0.7, 0.7, 1.0, 1.0])
    paths = {"labels uint8": folder / "labels.nii.gz", "image int16": folder / "image.nii.gz",
             "image int16 scaled": folder / "scaled.nii.gz"}
    nib.save(nib.Nifti1Image(labels, affine), paths["labels uint8"])
    image = (np.random.default_rng(0).normal(0, 30, shape) + labels * 200.0 + 1000).astype(np.int16)
    nib.save(nib.Nifti1Image(image, affine), paths["image int16"])
    raw = bytearray(igzip.decompress(paths["image int16"].read_bytes()))
    raw[112:120] = struct.pack("<ff", 1.0, -1024.0)  # scl_slope, scl_inter: a CT's stored values
    paths["image int16 scaled"].write_bytes(igzip.compress(bytes(raw), compresslevel=1))
    return paths


def _traced(read, path: Path):
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        started = time.perf_counter()
        array = read(path)
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    return array, peak, seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=[512, 512, 300])
    args = parser.parse_args(argv)

    from medseg.shown_warnings import show_warnings

    show_warnings()  # medseg's warnings on stderr (its loggers write nothing in a script configuring no logging)
    from medseg.io.label_images import read_reference
    from medseg.io.nifti import read_nifti
    from medseg.report.checks import read_labels

    readers = {
        "read_image (infer), float32": lambda p: read_nifti(p, hash_input=False).array,
        "read_reference (evaluate)": lambda p: read_reference(p).array,
        "read_nifti(labels=True)": lambda p: read_nifti(p, hash_input=False, labels=True).array,
        "read_labels (report)": lambda p: read_labels(p)[0],
    }
    runs = [("labels uint8", "read_reference (evaluate)"), ("labels uint8", "read_labels (report)"),
            ("image int16", "read_image (infer), float32"), ("image int16", "read_nifti(labels=True)"),
            ("image int16 scaled", "read_image (infer), float32"), ("image int16 scaled", "read_nifti(labels=True)")]
    with tempfile.TemporaryDirectory() as folder:
        paths = _write_inputs(Path(folder), tuple(args.shape))
        read_nifti(paths["labels uint8"], hash_input=False)  # imports made before the counts
        print(f"{'file':20s} {'reader':28s} {'array':>18s} {'traced peak':>12s} {'copies':>7s} {'seconds':>8s}")
        for kind, reader in runs:
            array, peak, seconds = _traced(readers[reader], paths[kind])
            print(f"{kind:20s} {reader:28s} {array.nbytes / 1e6:7.1f} MB {str(array.dtype):>7s} "
                  f"{peak / 1e6:9.1f} MB {peak / array.nbytes:7.2f} {seconds:8.2f}")
            del array


if __name__ == "__main__":
    main()
