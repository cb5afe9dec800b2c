"""The run time the cohort's inference jobs ask a cluster for, planned from the voxels of their batch's cases (headers
only; the figures measured with benchmarks/job_runtime.py)."""

from __future__ import annotations

import dataclasses

import pytest

from medseg.cohort.input_voxels import InputGrid
from medseg.cohort.job_runtime import infer_minutes, model_passes
from medseg.package import load_package

CROP = InputGrid(35 * 50 * 35, (1.0, 1.0, 1.0))  # a hippocampus crop: 61,250 voxels
CT = InputGrid(512 * 512 * 300, (0.7, 0.7, 1.0))  # 78.6 M voxels, 38.5 M at 1 mm


def test_a_job_asks_for_its_start_its_cases_and_their_voxels():
    """Every inference job asked 10 min + 5 a case: a job of 50 hippocampus crops (about 2 min of work on a loaded
    CPU) asked for 260 min, 520 and 780 on a retry, which a partition with a shorter MaxTime refused."""
    hippocampus, phantom = load_package("hippocampus"), load_package("phantom")
    # 5 min + 50 x (3 s + 15 s x 0.061 M voxels) = 5 + 3.27 min, rounded up
    assert infer_minutes([CROP] * 50, hippocampus) == 9
    assert infer_minutes([CROP], hippocampus) == 6
    # a CT counts its input's voxels, more than the 38.5 M hippocampus resamples it to: 5 + (3 + 15 x 78.6) / 60
    assert infer_minutes([CT], hippocampus) == 25
    assert infer_minutes([CT], phantom) == 25
    # the sum of the cases, not the largest: two CTs and 50 crops, 5 + (2 x 1182.6 s + 195.9 s) / 60
    assert infer_minutes([CT, CT, *[CROP] * 50], hippocampus) == 48
    # an input whose header tells no voxels (missing, unreadable) fails as it is read: its case's seconds alone
    assert infer_minutes([InputGrid()], hippocampus) == 6
    assert infer_minutes([], hippocampus) == 5
    # a 4D input of 4 modalities counts each voxel of its grid four times: 5 + (3 + 15 x 4 x 78.6) / 60
    assert infer_minutes([InputGrid(CT.voxels * 4, (0.7, 0.7, 1.0), channels=4)], phantom) == 84


def test_minutes_per_case_is_the_users_own_figure():
    """config minutes_per_case, where given, asks 10 minutes and that a case, whatever the voxels."""
    hippocampus = load_package("hippocampus")
    assert infer_minutes([CROP] * 50, hippocampus, minutes_per_case=0.2) == 20
    assert infer_minutes([CROP] * 50, hippocampus, minutes_per_case=5) == 260
    assert infer_minutes([CT], hippocampus, minutes_per_case=1) == 11


def test_the_models_passes_over_a_voxel_scale_its_time():
    """Flips of test-time augmentation, an ensemble over slicing axes, a larger tile overlap and a wider network each
    take more time a voxel than the shipped models, with which it was measured."""
    hippocampus = load_package("hippocampus")
    assert model_passes(hippocampus) == model_passes(load_package("phantom")) == 1.0

    def changed(inference=None, width=None):
        config = {**hippocampus.config, "inference": {**hippocampus.config["inference"], **(inference or {})}}
        if width is not None:
            config["architecture"] = {**config["architecture"], "base_width": width}
        return dataclasses.replace(hippocampus, config=config)

    assert model_passes(changed({"flip_tta": [0, 1]})) == 3.0
    assert model_passes(changed({"slice_axis": [0, 1, 2], "flip_tta": [2]})) == 6.0
    assert model_passes(changed({"overlap": 0.5})) == 2.25  # (0.75 / 0.5)^2 as many tiles
    assert model_passes(hippocampus, overlap=0.5) == 2.25  # the run's --config overlap wins over the model's
    assert model_passes(hippocampus, overlap=0.0) == 1.0  # fewer tiles: no less time planned
    assert model_passes(changed(width=32)) == 4.0
    # 5 min + 50 x (3 s + 15 s x 3 passes x 0.061 M voxels)
    assert infer_minutes([CROP] * 50, changed({"flip_tta": [0, 1]})) == 5 + 5


def test_a_thin_volumes_planes_are_padded_to_the_models_tiles(tmp_path):
    """hippocampus slices coronal planes in tiles of 40×40 at 1 mm: a 512×512×8 volume of 0.7×0.7×1.5 mm has planes
    12 voxels high, padded to 40, and took 7.4 CPU seconds a million voxels against 3.3 for a thick one (29 and 13
    wall seconds under load). Counted by its voxels alone, a job of 50 such slabs asked 34 min for about 52 min of
    work at that load."""
    import nibabel as nib
    import numpy as np

    from medseg.cohort.input_voxels import input_grid
    from medseg.cohort.job_runtime import tiled_voxels

    hippocampus, phantom = load_package("hippocampus"), load_package("phantom")
    path = tmp_path / "slab.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((512, 512, 8), np.int16), np.diag([0.7, 0.7, 1.5, 1.0])), str(path))
    slab = input_grid(path)
    assert slab.voxels == 512 * 512 * 8 and slab.spacing_mm == pytest.approx((0.7, 0.7, 1.5))
    assert slab.shape == (512, 512, 8)
    # 359×359×12 voxels at 1 mm, sliced along its axis 1: 359 planes of 359×12, padded to 359×40
    assert tiled_voxels(slab, hippocampus) == 359 * 40 * 359 == 5_155_240
    # 5 min + 50 x (3 s + 15 s x 5.16 M voxels)
    assert infer_minutes([slab] * 50, hippocampus) == 72
    # phantom keeps the voxel size and slices along axis 2: 8 planes of 512×512, no padding; an ensemble over its
    # three axes counts the most padded (512 planes of 512×96), each axis once more (model_passes)
    assert tiled_voxels(slab, phantom) == 512 * 512 * 8
    ensemble = dataclasses.replace(phantom, config={**phantom.config, "inference": {
        **phantom.config["inference"], "slice_axis": [0, 1, 2]}})
    assert tiled_voxels(slab, ensemble) == 512 * 96 * 512
    # a volume at least a tile wide each way, and a header that tells no shape, count their model-space voxels
    assert tiled_voxels(CT, hippocampus) == 38_535_168
    assert tiled_voxels(InputGrid(512 * 512 * 300, (0.7, 0.7, 1.0), shape=(512, 512, 300)), hippocampus) >= 38_535_168
    # the crops (35×50×35, planes padded to 40×40): 50 of them still ask for 9 min
    crop = InputGrid(CROP.voxels, CROP.spacing_mm, shape=(35, 50, 35))
    assert tiled_voxels(crop, hippocampus) == 40 * 50 * 40
    assert infer_minutes([crop] * 50, hippocampus) == 9


def test_bf16_on_the_cpu_is_planned_as_emulated():
    """bf16 on a CPU without AVX-512 BF16 or AMX is emulated, 17 times fp32's time (a phantom: 130 s against 7.7 s):
    planned as fp32 (15 s a million voxels), the 3.3 CPU seconds a million voxels of fp32 became about 56, more than
    even the last retry's 45 planned: every attempt ran out of time, leaving no job record and no report. The node's
    CPU is not known while planning."""
    hippocampus = load_package("hippocampus")
    assert infer_minutes([CT] * 10, hippocampus) == 203
    # 5 min + 10 x (3 s + 17 x 15 s x 78.6 M voxels)
    assert infer_minutes([CT] * 10, hippocampus, precision="bf16", device="cpu") == 3348
    assert infer_minutes([CT], hippocampus, precision="bf16", device="auto") == 340
    # on a GPU, and in fp32, as before
    assert infer_minutes([CT], hippocampus, precision="bf16", device="cuda:0") == 25
    assert infer_minutes([CT], hippocampus, precision="fp32", device="cpu") == 25
    assert infer_minutes([CROP] * 50, hippocampus, precision="bf16", minutes_per_case=0.2) == 20  # the user's figure


def test_a_scoring_job_asks_for_its_start_its_cases_and_their_voxels():
    """Every scoring job asked 30 min (60 and 90 on a retry) whatever its cases: a CT cohort's batches of noisy
    predictions could outrun it, a batch of crops waited in the queue for time it never used. Planned now from the
    voxels of its cases with a reference, for a prediction whose every voxel may be an edge."""
    from medseg.cohort.job_runtime import evaluate_minutes

    # 3 min + 50 x (2 s + 15 s x 0.061 M voxels)
    assert evaluate_minutes([CROP] * 50) == 6
    # 3 min + 2 s + 15 s x 78.6 M voxels
    assert evaluate_minutes([CT]) == 23
    assert evaluate_minutes([CT] * 10) == 200
    assert evaluate_minutes([]) == 3  # no case with a reference: the job's start
    # a 4D input's grid counts once (the labels are 3D)
    assert evaluate_minutes([InputGrid(CT.voxels * 4, (0.7, 0.7, 1.0), channels=4)]) == 23
