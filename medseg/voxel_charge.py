"""What the inference's memory guard charges for a volume's voxels: one table for the guard that checks a volume
before it is read (:func:`medseg.preprocess.grid_memory`) and for the memory the cohort workflow's inference jobs
ask for (:mod:`medseg.cohort.job_memory`), which must not import torch to plan."""

from __future__ import annotations

__all__ = ["COPY_BYTES_PER_VOXEL", "RESAMPLE_BYTES_PER_VOXEL", "SCORING_BYTES_PER_VOXEL", "SLAB_BYTES_PER_VOXEL",
           "SLAB_VOXELS", "charged_bytes"]

# bytes per voxel of the input and of model space where the model resamples: the input read in float32 and its
# C-ordered copy, the model-space image, the labels and their float32 copy while they are inverted, the inverted
# labels; the sampling grid is built a slab at a time (medseg.slab_resample). Measured 6.3-8.0 beyond the process's
# own with the inference's slab set aside (512×512×200 at 0.8×0.8×1.5 mm to 1 mm, downsampled, upsampled, LPS); 40
# while the grid was built whole (19 measured)
RESAMPLE_BYTES_PER_VOXEL = 12
# the inference's slab (its context planes, logits, count map and labels) for each model-space voxel in it, and the
# model-space voxels a slab holds at most (medseg.inference: 16 M logits, 2 classes or more): about 0.5 GB at most,
# 0.5 GB measured beside a 410×410×300 model-space image with the hippocampus model
SLAB_BYTES_PER_VOXEL = 64
SLAB_VOXELS = 1 << 23
# the same for a model that keeps the voxel size: the image read in float32, its normalised copy, the labels
# (8.6 bytes per voxel measured on a 512×512×1500 CT, the interpreter and torch included)
COPY_BYTES_PER_VOXEL = 12
# scoring against a reference, once the inference's arrays are freed: the labels and the reference (2), two edge
# volumes of a label's box (2), a distance map (medseg.surface_metrics' DISTANCE_MAP_BYTES_PER_VOXEL, 6) and the edge
# voxels' arrays beside it (int16 indices and float32 distances, 10 bytes a query edge voxel; the k-d tree of the other
# mask's edge voxels, scipy's, 43-48 bytes each, at most half of the map's budget, over slabs of rows beyond it).
# Peak resident memory beyond the process's own, the labels included (medseg.metrics.evaluate_volumes;
# benchmarks/README.md, 320×320×100): a smooth prediction 6.6-8.4 bytes a voxel, one with 5 % of its voxels knocked
# out 14.4-23.0, random noise over the volume (half of it, every predicted voxel an edge) 23.2 (55-68 before the edge
# voxels' arrays were slimmed, where 24 were charged; 30.6-31.4 with int32 indices), both masks noise 21.7 and a
# mask of 6/7 of the voxels, every one an edge, against another 25.8-29.0 (26.9 on a sheared grid; 48.7 and 70.2
# while the other mask's tree was built whole)
SCORING_BYTES_PER_VOXEL = 32


def charged_bytes(input_voxels: int, model_voxels: int, resamples: bool, per_model_voxel: int = 0,
                  scoring: bool = False, channels: int = 1) -> int:
    """Bytes charged for a volume of ``input_voxels`` that is ``model_voxels`` in model space:
    :data:`RESAMPLE_BYTES_PER_VOXEL` for each voxel of both where the model resamples, and the inference's slab
    (:data:`SLAB_BYTES_PER_VOXEL` for each model-space voxel, :data:`SLAB_VOXELS` of them at most), else
    :data:`COPY_BYTES_PER_VOXEL` for each input voxel; plus ``per_model_voxel`` bytes for each model-space voxel
    (an ensemble over slicing axes: 8 bytes per class). ``scoring`` (``medseg infer --reference``): at least
    :data:`SCORING_BYTES_PER_VOXEL` for each input voxel, what scoring holds after the inference's arrays are
    freed. ``channels``: the modalities of a multi-modal input, each read, resampled, normalised and stacked into
    the inference's slab: the reading, resampling and slab charges count each voxel that many times (the labels,
    the ensemble and scoring are one volume)."""
    if resamples:
        needed = (int(model_voxels) + int(input_voxels)) * RESAMPLE_BYTES_PER_VOXEL * int(channels)  # Python ints
        # the inference's slab, its context planes once per modality: a 4D input of 4 modalities (256×256×60 at
        # 0.7×0.7×2 mm, 179×179×119 at 1 mm) held 0.77 GB beyond the process's own where 0.62 GB was charged with
        # one slab; 2 modalities 0.38 GB
        needed += min(int(model_voxels), SLAB_VOXELS) * SLAB_BYTES_PER_VOXEL * int(channels)
    else:
        needed = int(input_voxels) * COPY_BYTES_PER_VOXEL * int(channels)
    needed += int(model_voxels) * int(per_model_voxel)
    return max(needed, int(input_voxels) * SCORING_BYTES_PER_VOXEL) if scoring else needed
