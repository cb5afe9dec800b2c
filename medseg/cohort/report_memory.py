"""The memory the cohort workflow's report job asks for, from what ``medseg report`` holds at once.

The report reads the cases one at a time (to check each segmentation, then to draw the worst ones' overlays), and
keeps every case's records and every overlay drawn until the page is written. Its peak is therefore the imported
libraries, plus a little per case and per overlay, plus the arrays of one case: the largest. Peak resident memory
measured with ``/usr/bin/time -v`` (synthetic phantoms, NIfTI, one thread):

===========================================  =========  =======================
cohort                                       overlays   peak RSS (MiB)
===========================================  =========  =======================
10 cases 48x48x16                            10         123
50 cases 48x48x16                            0 / 50     107 / 136
200 cases 48x48x16                           0/50/200   116 / 144 / 185
1 case 256x256x96 (6.3 M voxels)             0 / 1      107 / 192
1 case 384x384x128 (18.9 M voxels)           0 / 1      134 / 287
1 case 512x512x160 (41.9 M voxels)           0 / 1      178 / 423
200 cases 48x48x16 and one 512x512x160       50 / 201   194 / 438
===========================================  =========  =======================

so about 110 MB of libraries, 0.05 MB a case, 0.3 MB an overlay and 8-13 bytes a voxel of the largest case drawn
(1.7 bytes a voxel when it is only checked, not drawn). The figures below are two to five times those: an input that
is read whole as float32 (below) must fit, and a retry (killed for memory) only doubles the first attempt's memory.
On a cluster the job's allocation also holds the Snakemake process that runs it (the stand-in SLURM of the tests
measures about 390 MB for both at the peak of a 5-case cohort's report job, which asks 900 MB). Those peaks were
measured before the report learnt to read its inputs a slab at a time and to give freed memory back between cases;
since then three 512x512x300 int16 cases peak at 276 MB (about 2 bytes a voxel above the libraries: one case's
segmentation and reference as uint8). A DICOM SEG case of 512x512x600 (157 M voxels, the ``medseg infer --format
dicom-seg`` output of a synthetic CT series, one overlay) peaked at 1.64 GB when its source series was read whole as
float32 to place the SEG, at 1.15 GB when it was read whole only to draw it, and peaks at 317 MB (1.3 bytes a voxel
above the libraries) now that the overlay decodes only the files of the slices it draws and the SEG's segments are
put in the labels a slab at a time. What is still read whole, as float32, is the rare input whose part cannot be
read as reading it whole would (a DICOM series storing floats or more than 16 bits: 1.05 GB for that case, 6 bytes a
voxel; a NIfTI crop holding NaN or, cast to float32, one value only: a 512x512x600 int16 file read whole takes 5.7
bytes a voxel, and the case's two label arrays 2 more). The charge a voxel, 8 bytes (12 while every DICOM input was
read whole), covers those; for the last cohort above the job asks 1,300 MB (1,500 MB with max_overlays 200).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from medseg.cohort.input_voxels import voxel_count
from medseg.cohort.samples import Sample

__all__ = ["BASE_MB", "BYTES_PER_VOXEL", "PER_CASE_MB", "PER_OVERLAY_MB", "largest_voxels", "report_memory_mb"]

BASE_MB = 800  # Python and the libraries (measured: 110 MB), and on a cluster the Snakemake process running the job
PER_CASE_MB = 0.25  # a case's records, table row and summary entry (measured: 0.05 MB)
PER_OVERLAY_MB = 1.5  # a drawn overlay, as PNG and in the page (measured: 0.3 MB)
BYTES_PER_VOXEL = 8  # the largest case's arrays while checked and drawn (measured: 1.3-2 bytes; 6-8 when read whole)


def report_memory_mb(samples: Iterable[Sample], max_overlays: int, voxels: int | None = None) -> int:
    """The memory (MB) the report of ``samples`` asks for on its first attempt: :data:`BASE_MB`, plus
    :data:`PER_CASE_MB` a case, :data:`PER_OVERLAY_MB` an overlay it may draw (at most ``max_overlays`` scored cases
    and as many without a reference: two budgets), and :data:`BYTES_PER_VOXEL` a voxel of the largest case
    (``voxels``, by default read from the inputs' headers: :func:`largest_voxels`)."""
    samples = list(samples)
    scored = sum(sample.reference is not None for sample in samples)
    overlays = min(scored, max_overlays) + min(len(samples) - scored, max_overlays)
    if voxels is None:
        voxels = largest_voxels(samples)
    memory = BASE_MB + PER_CASE_MB * len(samples) + PER_OVERLAY_MB * overlays + BYTES_PER_VOXEL * voxels / 1e6
    return int(math.ceil(memory / 100) * 100)


def largest_voxels(samples: Iterable[Sample]) -> int:
    """The voxel count of the largest input among ``samples`` (its header only is read:
    :func:`medseg.cohort.input_voxels.voxel_count`); 0 when none can be read (those cases fail, and the report draws
    nothing of them)."""
    return max((voxel_count(sample.image) for sample in samples), default=0)
