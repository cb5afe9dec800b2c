"""The run time (minutes) the cohort workflow's inference jobs ask a cluster for, planned from their batch's voxels.

A job's time is its start (the job's own Snakemake process, which reads the Snakefile and the sheet's headers again,
then medseg's imports and the model's load) and, for each case, reading, resampling, the tiled network and writing,
which grow with the case's voxels. Measured as a cluster job runs it, ``medseg infer --threads 1 --device cpu`` in a
subprocess, on the 2-core machine shared with other work (a load average of 9-10, 14 at the end of the last run); CPU
seconds are the process's user and system time, wall seconds what a job waits for; the crops are 21 of the real
hippocampus crops:

=======================================================  ============  ===========  ====================
run                                                      voxels        CPU seconds  wall seconds
=======================================================  ============  ===========  ====================
start and one crop (``hippocampus``)                     71 k          4.9          22.0
start and 21 crops (``hippocampus``)                     1.35 M        9.0          39.5
512×512×150 phantom, 0.7×0.7×1.5 mm (``hippocampus``)    39.3 M        135.5        533.4
the same (``phantom``, which keeps the voxel size)       39.3 M        88.1         585.3
=======================================================  ============  ===========  ====================

so about 0.2 CPU seconds a crop, and 3.3 (``hippocampus``) and 2.1 (``phantom``) CPU seconds a million voxels beyond
the start; the wall time was four to seven times the CPU time on that loaded machine, 13.0 and 14.3 s a million
voxels. ``benchmarks/job_runtime.py --crops 4 --slices 8`` (synthetic crops, a load average of 14) took 55 s to
start, and 7.4 CPU and 29 wall seconds a million voxels of a thin 512×512×8 volume (hippocampus's coronal planes of
12 voxels, padded to its tiles). A job is planned at :data:`SECONDS_PER_MVOXEL` a million voxels and
:data:`SECONDS_PER_CASE` a case, and :data:`START_MINUTES` to start: about the wall time on a CPU as loaded as that
(4.5 times the CPU time), and the start several times over; a retry's twice and three times that is the margin. A GPU
job is planned as a CPU job (an upper bound: reading and writing stay on the CPU). Each voxel is counted in the
model's space where the model resamples (:func:`medseg.cohort.job_memory.model_voxels`), each plane the model slices
padded to its tile where the volume is thinner than that (:func:`tiled_voxels`: the 512×512×8 slab, its voxels alone
planned at 15 s a million for the 29 it took, is planned at 37), or the input's where that has more, and once more
for each pass the model makes over it (each flip of its test-time augmentation, each slicing axis of an ensemble), in
proportion to the tiles its overlap makes (the shipped models': 0.25) and to its width squared (theirs: 16). A
retried job (out of time or memory) asks for twice, then three times as much.

A scoring job (:func:`evaluate_minutes`) reads each case's prediction and reference and computes Dice, the surface
distances and volumes, which grow with the voxels and with the edges of a prediction: the surface distances take
most of its time where the prediction is far from its reference. Measured with ``benchmarks/evaluate_runtime.py``
(each case as ``medseg cohort evaluate`` scores it, one thread, in a fresh interpreter; the same loaded 2-core
machine, load average 9-14), predictions made from the reference with a share of their voxels set to a random label:

=====================================================  ===============  ========================  ====================
cases                                                  noise            CPU s a million voxels    wall s (load)
=====================================================  ===============  ========================  ====================
20 real hippocampus crops (labels of the shared data)  5 / 30 / 100 %   0.45 / 0.55 / 0.73        0.8 / 4.7 / 3.4
512×512×150 synthetic CT labels, 0.7×0.7×1.5 mm        5 %              0.68                      2.1 (9)
512×512×40, the same                                   30 / 100 %       0.82 / 1.71               4.1 (11) / 13.2 (14)
=====================================================  ===============  ========================  ====================

and about 1 CPU second (3-5 s of wall time) to start, 0.2 s a crop. A job is planned at
:data:`EVALUATE_START_MINUTES` to start (its Snakemake process too), :data:`EVALUATE_SECONDS_PER_CASE` a case and
:data:`EVALUATE_SECONDS_PER_MVOXEL` a million voxels of each case with a reference: the rate of inference, 9 times
the CPU time of a prediction of pure noise, the worst measured, and above its wall time at a load average of 14
(3-4 times that of a prediction with 30 % noise). Before, every scoring job asked for 30 min (60, 90 on a retry),
less than a batch of ten CTs of noisy predictions takes (10 × 78.6 M voxels × 1.7 CPU s: 22 min of CPU alone).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from medseg.cohort.input_voxels import InputGrid
from medseg.cohort.job_memory import model_voxels

__all__ = ["BF16_CPU_FACTOR", "EVALUATE_SECONDS_PER_CASE", "EVALUATE_SECONDS_PER_MVOXEL", "EVALUATE_START_MINUTES",
           "SECONDS_PER_CASE", "SECONDS_PER_MVOXEL", "START_MINUTES", "evaluate_minutes", "infer_minutes",
           "model_passes", "tiled_voxels"]

START_MINUTES = 5  # a job's Snakemake process and medseg's imports and model load (22 s measured under load)
SECONDS_PER_CASE = 3  # reading, writing and recording a case, beside its voxels (a crop: 0.2 CPU s, 0.9 s under load)
SECONDS_PER_MVOXEL = 15  # a million voxels of a case, each pass (measured: 2.1-3.3 CPU s, 13-14 s under load)
# bf16 on a CPU without AVX-512 BF16 or AMX is emulated: a 128×128×64 phantom took 130 s instead of 7.7 s in fp32 (one
# torch thread, an AVX2-only CPU; docs/infer.md, Devices and precision). Planning cannot see the node's CPU: it plans
# for that
BF16_CPU_FACTOR = 17
# a scoring job (medseg cohort evaluate): its start (the job's Snakemake process, scipy's imports: no torch) and, a
# case, reading both label images and the Dice, surface distances and volumes of each label (evaluate_minutes)
EVALUATE_START_MINUTES = 3
EVALUATE_SECONDS_PER_CASE = 2
EVALUATE_SECONDS_PER_MVOXEL = 15  # a prediction of random noise: 1.7 CPU s, 13 s under load (module docstring)
_MEASURED_OVERLAP = 0.25  # the shipped models' tile overlap, with which the figures above were measured
_MEASURED_WIDTH = 16  # and their networks' base width


def model_passes(package, overlap: float | None = None) -> float:
    """How many times the measured models' work ``package`` (a :class:`medseg.model_package.ModelPackage`) does on
    a voxel: once for each flip of its test-time augmentation and the unflipped pass, for each slicing axis, times
    its tiles over those of the measured overlap (``overlap``: the run's, else the model's own) and its network's
    width squared over theirs."""
    inference = package.inference
    axes = inference["slice_axis"]
    passes = (1 + len(set(inference.get("flip_tta") or []))) * (len(axes) if isinstance(axes, list) else 1)
    overlap = float(inference["overlap"] if overlap is None else overlap)
    tiles = ((1 - _MEASURED_OVERLAP) / (1 - min(overlap, 0.95))) ** 2
    width = float(package.config["architecture"].get("base_width", _MEASURED_WIDTH)) / _MEASURED_WIDTH
    return passes * max(tiles, 1.0) * max(width, 1.0) ** 2


def tiled_voxels(grid: InputGrid, package) -> int:
    """The voxels of ``grid``'s 3D grid the network of ``package`` sees in model space, each plane it slices padded
    to the model's tile: a volume thinner than a tile along a plane's axis (a slab of a few slices) is padded to it,
    so that ``hippocampus``'s coronal planes of a 512×512×8 volume of 0.7×0.7×1.5 mm, 12 voxels high, were tiles of
    40: 5.2 M voxels seen for 2.1 M of input, and 7.4 CPU seconds a million input voxels against 3.3 for a thicker
    volume. The header's axes are taken as the model's (as an axial scan is stored; the image is oriented only as it
    is read): a slab stored across another axis may be planned with other planes, and its retry has twice the time.
    Of an ensemble's slicing axes, the most padded counts (:func:`model_passes` counts each axis). A volume at least
    a tile wide each way counts its model-space voxels (:func:`medseg.cohort.job_memory.model_voxels`), as does one
    whose header tells no shape."""
    preprocessing = package.preprocessing
    voxels = model_voxels(grid, preprocessing)
    tile = [int(v) for v in package.inference.get("roi_size") or []]
    axes = package.inference["slice_axis"]
    if grid.shape is None or len(tile) != 2 or min(tile) < 1:
        return voxels
    wanted = [float(v or 0) for v in preprocessing.get("spacing_mm") or []] + [0.0] * 3
    have = grid.spacing_mm or (0.0, 0.0, 0.0)
    shape = [int(math.ceil(n * have[axis] / wanted[axis])) if have[axis] > 0 and wanted[axis] > 0 else n
             for axis, n in enumerate(grid.shape)]
    padded = 0
    for axis in {int(a) for a in (axes if isinstance(axes, list) else [axes])}:
        first, second = (a for a in range(3) if a != axis)
        padded = max(padded, max(shape[first], tile[0]) * max(shape[second], tile[1]) * shape[axis])
    return max(voxels, padded)


def infer_minutes(grids: Sequence[InputGrid], package, minutes_per_case: float | None = None,
                  overlap: float | None = None, precision: str = "auto", device: str = "cpu") -> int:
    """The run time (whole minutes) an inference job of the cases of ``grids`` (their inputs' headers) asks for on
    its first attempt: with ``minutes_per_case`` (the config's, where given) 10 minutes and that a case, as before it
    was planned; else :data:`START_MINUTES`, :data:`SECONDS_PER_CASE` a case and :data:`SECONDS_PER_MVOXEL` a million
    voxels of each case (the larger of its input and model space, its planes padded to the model's tiles:
    :func:`tiled_voxels`; all its channels) times :func:`model_passes`, and :data:`BF16_CPU_FACTOR` times that
    where ``precision`` is bf16 on a ``device`` other than CUDA (``auto`` included: a job without a GPU runs on the
    CPU), rounded up. An input whose header tells no voxels (missing, unreadable: its case fails as it is read) counts
    its case's seconds alone."""
    if minutes_per_case is not None:
        return int(10 + minutes_per_case * len(grids))
    modalities = int(getattr(package, "n_modalities", 1))
    voxels = sum(max(grid.grid_voxels, tiled_voxels(grid, package)) * max(grid.channels, modalities)
                 for grid in grids)
    emulated = str(precision) == "bf16" and not str(device).startswith("cuda")
    per_mvoxel = SECONDS_PER_MVOXEL * model_passes(package, overlap) * (BF16_CPU_FACTOR if emulated else 1)
    seconds = SECONDS_PER_CASE * len(grids) + per_mvoxel * voxels / 1e6
    return int(math.ceil(START_MINUTES + seconds / 60))


def evaluate_minutes(grids: Sequence[InputGrid]) -> int:
    """The run time (whole minutes) a scoring job asks for on its first attempt, from the inputs' headers of its
    batch's cases with a reference (``grids``; the labels lie on the input's grid): :data:`EVALUATE_START_MINUTES`,
    :data:`EVALUATE_SECONDS_PER_CASE` a case and :data:`EVALUATE_SECONDS_PER_MVOXEL` a million voxels of each case's
    grid (a 4D input's channels once: the labels are 3D), rounded up. A prediction far from its reference, every
    voxel of it an edge, is what the rate is set for (the surface distances take most of the time)."""
    voxels = sum(grid.grid_voxels for grid in grids)
    seconds = EVALUATE_SECONDS_PER_CASE * len(grids) + EVALUATE_SECONDS_PER_MVOXEL * voxels / 1e6
    return int(math.ceil(EVALUATE_START_MINUTES + seconds / 60))
