"""The run time the cohort's inference jobs ask a cluster for, planned from the voxels of their batch's cases (headers
only; the figures measured with benchmarks/job_runtime.py)."""

from __future__ import annotations

import dataclasses

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
