"""The memory the cohort workflow's inference and scoring jobs ask for, planned from the largest input of their batch.

A job runs its batch's cases one at a time in one process, so its peak is the process's own (Python, torch, MONAI,
the model) plus the arrays of its largest case. On a cluster the job's allocation also holds the Snakemake process
that runs it (about 0.3 GB, see :mod:`medseg.cohort.report_memory`). The largest case is read from the inputs'
headers (:mod:`medseg.cohort.input_voxels`) and charged what the inference's memory guard charges it
(:mod:`medseg.voxel_charge`): asking for less, the guard would warn in every large case's log that the job may be
killed for memory. Peak resident memory measured with ``/usr/bin/time -v`` (``medseg cohort infer`` / ``evaluate``
of one case, CPU, 2 threads; the 2-core machine shared with other work; the last four rows from docs/infer.md's
*Memory* and ``benchmarks/README.md``, ``medseg infer`` and ``medseg evaluate``; evaluate scored phantom's
segmentations, hippocampus's took as much: 393 / 412 MB):

==============================================  ======  ============================  ==============
input                                           voxels  infer: phantom / hippocampus  evaluate
==============================================  ======  ============================  ==============
64³ NIfTI, 1 mm                                 0.26 M  541 / 466 MB                  395 MB
256×256×100 NIfTI, 0.9×0.9×1.5 mm               6.6 M   661 / 706 MB                  414 MB
the same as a DICOM series of 100 files         6.6 M   633 / 727 MB                  —
512×512×100 NIfTI, 0.7×0.7×1 mm                 26 M    771 MB                        469 MB
512×512×150 CT, 0.7×0.7×1.5 mm (docs/infer.md) 39 M    790 / 1,690 MB                —
512×512×120 CT, 0.8×0.8×1.5 mm (benchmarks)     31 M    940 (and scoring) / 1,850 MB  —
512×512×1000 CT, 0.8×0.8×1.5 mm (benchmarks)    262 M   3,040 MB (and scoring)        1,450 MB
512×512×600 DICOM series, its SEG (benchmarks)  157 M   2,020 MB (and scoring)        1,120-2,080 MB
==============================================  ======  ============================  ==============

So inference holds about 0.5 GB before any case and 6-10 bytes a voxel for a model that keeps the voxel size, about
16-25 bytes a voxel of input and model space together for one that resamples (the hippocampus figures above), 6-8
since MONAI's sampling grid is built a slab at a time, and the inference's slab beside them (about 0.5 GB at most: a
512×512×200 CT of 0.8×0.8×1.5 mm, 410×410×300 at 1 mm, 1,580 MB); the guard charges 12, and 12 with 64 a model-space
voxel of the slab (0.54 GB at most; 40 a voxel while the grid was built whole). Scoring
holds about 0.1-0.4 GB and 3-4 bytes a voxel, 11 where a DICOM SEG is placed on a source series read whole as
float32, and up to 6 more where a prediction speckled with holes takes a distance map (``medseg.surface_metrics``'
``DISTANCE_MAP_BYTES_PER_VOXEL``: 0.87 → 1.36 GB for 512×512×340 voxels, measured again), with about 55 bytes for each
edge voxel beside it (10 since they are int16 indices where the grid allows and float32 distances, and 43-48 for
each edge voxel of the other mask in its k-d tree, at most half of the map's budget): a prediction with 5 % of its
voxels knocked out (edges in 14 % of its box) took 628 MB for
512×512×100 voxels, 20 bytes a voxel (22 on 512×512×200) beyond the 95 MB ``medseg evaluate`` holds before any
case, where 12 were charged; 24 were then. A prediction of random noise (every predicted voxel an edge, the k-d tree of
its edge voxels 21 bytes a voxel) took 55-68 bytes a voxel; with the edge voxels' arrays slimmed (int32 indices,
float32 distances) 30.6-31.4, 23.2 with int16 indices, and 32 are charged
(:data:`medseg.voxel_charge.SCORING_BYTES_PER_VOXEL`); masks whose every voxel is an edge (both noise, a lattice)
21.5-29.0 since the other mask's k-d tree is built over slabs of rows beyond half of the map's budget (48.7-74.3
while it was built whole).
A retry (a job killed for memory) asks for twice, then three times the first attempt's memory.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from medseg.cohort.input_voxels import InputGrid
from medseg.tile_memory import package_tile_bytes
from medseg.voxel_charge import SCORING_BYTES_PER_VOXEL, charged_bytes

__all__ = ["CUDA_MB", "EVALUATE_BASE_MB", "EVALUATE_BYTES_PER_VOXEL", "INFER_BASE_MB", "evaluate_memory_mb",
           "infer_memory_mb", "model_voxels"]

INFER_BASE_MB = 1200  # Python, torch, MONAI and the model (measured: 0.47-0.55 GB), and the job's Snakemake process
CUDA_MB = 2000  # the CUDA libraries and context in host memory, with device=cuda (an allowance, not measured here)
EVALUATE_BASE_MB = 800  # Python and the libraries (measured: 0.4 GB), and the job's Snakemake process
# the labels, their edges (measured: 3-4), a distance map (6) and the edge voxels' arrays and k-d tree (a prediction
# of random noise: 23.2 in all; both masks noise or a lattice: 21.5-29.0)
EVALUATE_BYTES_PER_VOXEL = SCORING_BYTES_PER_VOXEL


def model_voxels(grid: InputGrid, preprocessing: Mapping) -> int:
    """The voxels ``grid`` takes in model space: its own where the model keeps the voxel size (``spacing_mm`` null),
    else its volume over the model's voxel (an axis whose spacing the model leaves counts as kept), or its own where
    the header tells no voxel size; the voxels of its 3D grid, each counted once (a 4D input's channels apart)."""
    wanted = [float(v or 0) for v in preprocessing.get("spacing_mm") or []]
    if not any(wanted) or grid.spacing_mm is None:
        return grid.grid_voxels
    scale = math.prod(have / want for have, want in zip(grid.spacing_mm, wanted) if want > 0)
    return int(math.ceil(grid.grid_voxels * scale))


def infer_memory_mb(grids: Iterable[InputGrid], package, device: str = "cpu") -> int:
    """The memory (MB) an inference job of the cases of ``grids`` (their inputs' headers) asks for on its first
    attempt: :data:`INFER_BASE_MB`, :data:`CUDA_MB` more on a CUDA ``device``, and what the memory guard charges the
    largest case for ``package`` (a :class:`medseg.package.ModelPackage`: its preprocessing, slicing axes and
    classes), with one forward pass of its tile off CUDA (:func:`medseg.tile_memory.package_tile_bytes`: what
    ``medseg infer`` checks the machine and the job's cgroup against), rounded up to 100 MB. A multi-modal model's
    input is charged for each of its modalities: a 4D input's channels, or the model's modalities for nnU-Net's
    ``case_0000`` file (its other channels beside it)."""
    preprocessing, inference = package.preprocessing, package.inference
    resamples = any(float(v or 0) for v in preprocessing.get("spacing_mm") or [])
    axes = inference["slice_axis"]
    # an ensemble over slicing axes sums float32 class probabilities over the whole volume: two of them
    ensemble = 8 * int(package.config["architecture"]["n_classes"]) if isinstance(axes, list) and len(axes) > 1 else 0
    modalities = int(getattr(package, "n_modalities", 1))
    charges = [charged_bytes(grid.grid_voxels, model_voxels(grid, preprocessing), resamples, ensemble,
                             channels=max(grid.channels, modalities)) for grid in grids]
    charge = max(charges, default=0)
    cuda = str(device).startswith("cuda")
    if charge and not cuda:  # one tile's forward pass beside the case, as `medseg infer` checks it on the CPU
        charge += package_tile_bytes(package)
    memory = INFER_BASE_MB + (CUDA_MB if cuda else 0) + charge / 1e6
    return int(math.ceil(memory / 100) * 100)


def evaluate_memory_mb(grids: Iterable[InputGrid]) -> int:
    """The memory (MB) a scoring job of the cases of ``grids`` (the inputs' headers of those with a reference) asks
    for on its first attempt: :data:`EVALUATE_BASE_MB` and :data:`EVALUATE_BYTES_PER_VOXEL` a voxel of the largest,
    rounded up to 100 MB."""
    voxels = max((grid.grid_voxels for grid in grids), default=0)  # the labels: a 4D input's grid, once
    memory = EVALUATE_BASE_MB + EVALUATE_BYTES_PER_VOXEL * voxels / 1e6
    return int(math.ceil(memory / 100) * 100)
