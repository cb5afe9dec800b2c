"""What the inference's memory guard charges for a volume's voxels: one table for the guard that checks a volume
before it is read (:func:`medseg.preprocess.grid_memory`) and for the memory the cohort workflow's inference jobs
ask for (:mod:`medseg.cohort.job_memory`), which must not import torch to plan."""

from __future__ import annotations

__all__ = ["COPY_BYTES_PER_VOXEL", "RESAMPLE_BYTES_PER_VOXEL", "SCORING_BYTES_PER_VOXEL", "charged_bytes"]

# transient bytes per voxel of resampling and of inverting, as measured (float32 grids and values): a guard
# against headers whose spacing makes a resampled volume of terabytes, not a memory model
RESAMPLE_BYTES_PER_VOXEL = 40
# the same for a model that keeps the voxel size: the image read in float32, its normalised copy, the labels
# (8.6 bytes per voxel measured on a 512×512×1500 CT, the interpreter and torch included)
COPY_BYTES_PER_VOXEL = 12
# scoring against a reference, once the inference's arrays are freed: the labels and the reference (2), two edge
# volumes of a label's box (2), a distance map (medseg.metrics' DISTANCE_MAP_BYTES_PER_VOXEL, 6) and the edge voxels'
# arrays beside it (int32 indices and float32 distances, 16 bytes a query edge voxel; the k-d tree of the other
# mask's edge voxels, scipy's, 43 bytes each). Peak resident memory beyond the process's own, the labels included
# (medseg.metrics.evaluate_volumes; benchmarks/README.md): a smooth prediction 6.6-8.4 bytes a voxel, one with 5 % of
# its voxels knocked out 14.4-23.0, random noise over the volume (half of it, every predicted voxel an edge, whose
# tree holds 21 bytes a voxel) 30.6-31.4 (55-68 before the edge voxels' arrays were slimmed, where 24 were charged).
# Masks that are both noise take more (49; a mask of 6/7 of the voxels, every one an edge, against another: 71)
SCORING_BYTES_PER_VOXEL = 32


def charged_bytes(input_voxels: int, model_voxels: int, resamples: bool, per_model_voxel: int = 0,
                  scoring: bool = False, channels: int = 1) -> int:
    """Bytes charged for a volume of ``input_voxels`` that is ``model_voxels`` in model space:
    :data:`RESAMPLE_BYTES_PER_VOXEL` for each voxel of both where the model resamples, else
    :data:`COPY_BYTES_PER_VOXEL` for each input voxel; plus ``per_model_voxel`` bytes for each model-space voxel
    (an ensemble over slicing axes: 8 bytes per class). ``scoring`` (``medseg infer --reference``): at least
    :data:`SCORING_BYTES_PER_VOXEL` for each input voxel, what scoring holds after the inference's arrays are
    freed. ``channels``: the modalities of a multi-modal input, each read, resampled and normalised: the reading and
    resampling charges count each voxel that many times (the labels, the ensemble and scoring are one volume)."""
    if resamples:
        needed = (int(model_voxels) + int(input_voxels)) * RESAMPLE_BYTES_PER_VOXEL * int(channels)  # Python ints
    else:
        needed = int(input_voxels) * COPY_BYTES_PER_VOXEL * int(channels)
    needed += int(model_voxels) * int(per_model_voxel)
    return max(needed, int(input_voxels) * SCORING_BYTES_PER_VOXEL) if scoring else needed
