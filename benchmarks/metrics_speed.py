"""What scoring many labels costs: ``evaluate_volumes`` counting all labels in one pass over each array against
counting them label by label (the path that uint64 arrays and atlas ids beyond 65535 take, and all took before).

    python benchmarks/metrics_speed.py [--shape 512 512 200] [--labels 100] [--repeats 2]

Makes a reference of ``--labels`` boxes (30×30×20 voxels, 0.8×0.8×1.5 mm) and a prediction shifted by one voxel,
scores them both ways (the same uint8 arrays; label by label forced with the one-pass limit set below every
value), checks that both give the same record, and prints the best of ``--repeats`` times of each and their ratio,
measured in this one run.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", type=int, nargs=3, default=[512, 512, 200])
    parser.add_argument("--labels", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    from medseg.shown_warnings import show_warnings

    show_warnings()  # medseg's warnings on stderr (its loggers write nothing in a script configuring no logging)

    from medseg.metrics import evaluate_volumes
    from medseg.volume import Volume

    rng = np.random.default_rng(0)
    shape = tuple(args.shape)
    ref = np.zeros(shape, np.uint8 if args.labels < 256 else np.uint16)
    for value in range(1, args.labels + 1):
        centre = [int(rng.integers(15, max(n - 15, 16))) for n in shape]
        ref[tuple(slice(max(c - h, 0), c + h) for c, h in zip(centre, (15, 15, 10)))] = value
    pred = np.roll(ref, 1, axis=0)
    affine = np.diag([0.8, 0.8, 1.5, 1.0])
    labels = {value: f"label_{value}" for value in range(args.labels + 1)}

    def timed(p: np.ndarray, r: np.ndarray) -> tuple[float, dict]:
        times, record = [], None
        for _ in range(args.repeats):
            clock = time.perf_counter()
            record = evaluate_volumes(Volume(p, affine), Volume(r, affine), labels)
            times.append(time.perf_counter() - clock)
        return min(times), record

    from medseg.metrics import _LabelCounts

    # the first call imports what scoring needs (seconds): not to be counted on the side that happens to go first
    small = np.zeros((8, 8, 8), np.uint8)
    small[2:5, 2:5, 2:5] = 1
    evaluate_volumes(Volume(small, affine), Volume(np.roll(small, 1, axis=0), affine), {0: "background", 1: "a"})
    once, record = timed(pred, ref)
    defaults = _LabelCounts.__init__.__defaults__
    _LabelCounts.__init__.__defaults__ = (-1,)  # no value is within the one-pass limit: label by label
    try:
        each, record_each = timed(pred, ref)
    finally:
        _LabelCounts.__init__.__defaults__ = defaults
    same = json.dumps(record["labels"], sort_keys=True) == json.dumps(record_each["labels"], sort_keys=True)
    print(f"{'×'.join(map(str, shape))} voxels, {args.labels} labels, best of {args.repeats}")
    print(f"  one pass for all labels: {once:.2f} s")
    print(f"  label by label:          {each:.2f} s")
    print(f"  ratio one pass / label by label: {once / each:.2f}; records identical: {same}")


if __name__ == "__main__":
    main()
