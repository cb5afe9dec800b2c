"""What reading a DICOM SEG costs: ``read_dicom_seg`` of a SEG of many segments onto its source series, against
reading that series.

    python benchmarks/dicom_seg_read.py [--shape 512 512 300] [--segments 10] [--repeats 2]

Writes an uncompressed int16 CT series of ``--shape`` voxels (0.7×0.7×1.5 mm; the tests' DICOM factory,
``tests/dicom_factory.py``) to a temporary folder, reads it (``read_dicom_series``), draws ``--segments`` boxes of
labels on its grid (organ-sized: a fifth of each extent, so that most slices hold frames of several segments) and
writes them as a DICOM SEG (``write_dicom_seg``, what ``medseg infer --format dicom-seg`` writes). Then times, best of
``--repeats``: reading the series, reading the SEG onto the series already read, and onto the series' grid from its
headers alone (``read_dicom_grid``, the path ``medseg evaluate`` takes for a SEG reference), checks that the labels
read back are those written, and prints the times and the ratios to the series' read measured in this one run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from argument_types import positive


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=positive, nargs=3, default=[512, 512, 300])
    parser.add_argument("--segments", type=positive, default=10)
    parser.add_argument("--repeats", type=positive, default=2)
    args = parser.parse_args(argv)

    from medseg.shown_warnings import show_warnings

    show_warnings()  # medseg's warnings on stderr (its loggers write nothing in a script configuring no logging)

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from dicom_factory import slice_positions, stored_values, write_series

    from medseg.io.dicom import read_dicom_grid, read_dicom_series
    from medseg.io.seg_reading import read_dicom_seg
    from medseg.io.seg_writing import write_dicom_seg

    shape = tuple(args.shape)
    names = {0: "background", **{value: f"organ {value}" for value in range(1, args.segments + 1)}}
    rng = np.random.default_rng(0)

    def best(call) -> tuple[float, object]:
        times, result = [], None
        for _ in range(args.repeats):
            clock = time.perf_counter()
            result = call()
            times.append(time.perf_counter() - clock)
        return min(times), result

    with tempfile.TemporaryDirectory() as scratch:
        folder, seg_path = Path(scratch) / "series", Path(scratch) / "seg.dcm"
        clock = time.perf_counter()
        write_series(folder, stored_values(shape), slice_positions(shape[2], 1.5), pixel_spacing=(0.7, 0.7))
        written_s = time.perf_counter() - clock
        series_s, volume = best(lambda: read_dicom_series(folder))
        labels = np.zeros(volume.shape, np.uint8)
        half = [max(n // 10, 1) for n in volume.shape]
        for value in range(1, args.segments + 1):
            centre = [int(rng.integers(h, max(n - h, h + 1))) for n, h in zip(volume.shape, half)]
            labels[tuple(slice(c - h, c + h) for c, h in zip(centre, half))] = value
        clock = time.perf_counter()
        write_dicom_seg(labels, volume, seg_path, names, "benchmark")
        seg_written_s = time.perf_counter() - clock
        frames = int(sum(np.count_nonzero((labels == value).any(axis=(0, 1))) for value in range(1, args.segments + 1)))
        seg_s, back = best(lambda: read_dicom_seg(seg_path, volume, names))
        grid_s, grid = best(lambda: read_dicom_grid(folder))
        seg_grid_s, back_grid = best(lambda: read_dicom_seg(seg_path, grid, names))
        same = bool(np.array_equal(back, labels) and np.array_equal(back_grid, labels))

    print(f"series {shape[0]}×{shape[1]}×{shape[2]} int16, {args.segments} segments, {frames} frames; "
          f"best of {args.repeats}")
    print(f"  writing the series (setup)         {written_s:7.2f} s")
    print(f"  writing the SEG (setup)            {seg_written_s:7.2f} s")
    print(f"  reading the series                 {series_s:7.2f} s")
    print(f"  reading the SEG, series read       {seg_s:7.2f} s   ÷ series read {seg_s / series_s:.2f}")
    print(f"  the series' grid from its headers  {grid_s:7.2f} s")
    print(f"  reading the SEG onto that grid     {seg_grid_s:7.2f} s   ÷ series read {seg_grid_s / series_s:.2f}")
    print(f"  labels read back identical: {'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
