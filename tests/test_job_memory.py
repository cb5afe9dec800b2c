"""The memory the cohort's inference and scoring jobs ask for, planned from the largest input of their batch
(headers only; the figures follow the memory guard's charge, medseg/voxel_charge.py)."""

from __future__ import annotations

from types import SimpleNamespace

from medseg.cohort.input_voxels import InputGrid
from medseg.cohort.job_memory import evaluate_memory_mb, infer_memory_mb, model_voxels
from medseg.package import load_package

SMALL = InputGrid(48 * 48 * 16, (1.0, 1.0, 1.0))
CT = InputGrid(512 * 512 * 300, (0.7, 0.7, 1.0))  # 78.6 M voxels, 38.5 M at 1 mm


def test_inference_memory_is_the_base_and_the_guards_charge_of_the_largest_case():
    """Every inference job asked config mem_mb (4000 MB) whatever its volumes: three times what a batch of small
    phantoms takes, and less than a 512x512x300 CT with the hippocampus model is charged by the memory guard."""
    phantom, hippocampus = load_package("phantom"), load_package("hippocampus")
    # 1200 MB + 12 B x 36,864 voxels, rounded up to 100 MB
    assert infer_memory_mb([SMALL], phantom) == 1300
    # 1200 + 12 B x 78.6 M = 2144 MB; the largest case counts, not the sum
    assert infer_memory_mb([SMALL, CT, SMALL], phantom) == 2200
    # hippocampus resamples to 1 mm: 12 B x (78.6 M + 38.5 M model-space voxels) = 1406 MB, and the inference's
    # slab, 64 B x 8.4 M model-space voxels at most = 537 MB; + 1200 (40 B a voxel, 5900 MB, while MONAI's sampling
    # grid was built whole)
    assert model_voxels(CT, hippocampus.preprocessing) == 38_535_168
    assert infer_memory_mb([CT], hippocampus) == 3200
    # a header without a voxel size: model space taken as large as the input (12 B x 2 x 78.6 M + 537 MB)
    assert infer_memory_mb([InputGrid(CT.voxels, None)], hippocampus) == 3700
    # device cuda: 2000 MB more for the CUDA libraries in host memory; none readable: the base alone
    assert infer_memory_mb([CT], phantom, device="cuda:1") == 4200
    assert infer_memory_mb([CT], phantom, device="cpu") == infer_memory_mb([CT], phantom, device="auto") == 2200
    assert infer_memory_mb([InputGrid()], phantom) == infer_memory_mb([], phantom) == 1200


def test_an_ensemble_over_slicing_axes_is_charged_its_class_probabilities():
    package = SimpleNamespace(preprocessing={"spacing_mm": None},
                              inference={"slice_axis": [0, 1, 2], "roi_size": [96, 96]},
                              config={"architecture": {"n_classes": 4, "base_width": 1, "depth": 1, "in_channels": 1}})
    # 12 B + 8 B x 4 classes = 44 B a voxel: 1200 + 44 x 78.6 M = 4660 MB
    assert infer_memory_mb([CT], package) == 4700


def test_model_space_follows_the_models_spacing_on_the_axes_it_sets():
    grid = InputGrid(1000, (0.5, 0.5, 4.0))
    assert model_voxels(grid, {"spacing_mm": [1.0, 1.0, 1.0]}) == 1000
    assert model_voxels(grid, {"spacing_mm": [1.0, 1.0, 0]}) == 250  # the third axis kept
    assert model_voxels(grid, {"spacing_mm": None}) == 1000


def test_scoring_memory_is_the_base_and_32_bytes_a_voxel_of_the_largest_case():
    """12 bytes a voxel left a speckled prediction's scoring short: its edge voxels' arrays beside the distance
    map took 16-22 bytes a voxel; 24 left a prediction of random noise short (55-68 bytes a voxel, 30.6-31.4 since its
    edge voxels' arrays were slimmed)."""
    assert evaluate_memory_mb([SMALL]) == 900
    assert evaluate_memory_mb([SMALL, CT]) == 3400  # 800 + 32 B x 78.6 M = 3317 MB
    assert evaluate_memory_mb([]) == 800  # no case with a reference


def test_infer_with_a_reference_is_charged_for_scoring_once_the_inference_is_freed():
    """``medseg infer --reference`` scores after the inference's arrays are freed: at least 32 bytes an input voxel
    (a speckled prediction's scoring peaked at 16 a voxel beyond the process's own, where 12 were charged; a
    prediction of random noise at 30.6-31.4, where 24 were); a model that resamples is charged more for its inference
    already."""
    from medseg.voxel_charge import SCORING_BYTES_PER_VOXEL, charged_bytes

    assert SCORING_BYTES_PER_VOXEL == 32
    assert charged_bytes(1000, 1000, False) == 12_000
    assert charged_bytes(1000, 1000, False, scoring=True) == 32_000
    assert charged_bytes(1000, 1000, False, 32, scoring=True) == 44_000  # an ensemble's inference: more
    assert charged_bytes(1000, 250, True) == 31_000  # 12 B x 1250 + a slab of 64 B x 250
    assert charged_bytes(1000, 250, True, scoring=True) == 32_000  # scoring's 32 B x 1000 is the larger


def test_a_multi_modal_input_is_charged_for_each_modality_and_scored_once():
    """A 4D input of 4 modalities is read, resampled and normalised 4 times over: its inference charge is 4 volumes'
    (a model's case_0000 file too, its other channels beside it), its scoring (3D labels) one volume's."""
    package = SimpleNamespace(preprocessing={"spacing_mm": None}, inference={"slice_axis": 2, "roi_size": [96, 96]},
                              n_modalities=4,
                              config={"architecture": {"n_classes": 4, "base_width": 1, "depth": 1, "in_channels": 4}})
    four = InputGrid(4 * 256 * 256 * 100, (1.0, 1.0, 1.0), channels=4)  # 6.6 M voxels, 26.2 M values
    assert four.grid_voxels == 256 * 256 * 100 and model_voxels(four, package.preprocessing) == 6_553_600
    # 1200 MB + 12 B x 6.55 M voxels x 4 modalities = 1515 MB
    assert infer_memory_mb([four], package) == 1600
    assert infer_memory_mb([InputGrid(256 * 256 * 100, (1.0, 1.0, 1.0))], package) == 1600  # case_0000.nii.gz
    single = SimpleNamespace(**{**vars(package), "n_modalities": 1})
    assert infer_memory_mb([InputGrid(256 * 256 * 100, (1.0, 1.0, 1.0))], single) == 1300  # 1200 + 79 MB
    # scoring: 800 MB + 32 B x 6.55 M voxels of the 3D labels = 1010 MB, not 32 B x 26.2 M
    assert evaluate_memory_mb([four]) == 1100


def test_a_resampling_model_is_charged_at_least_its_measured_peak_and_no_longer_its_whole_grid():
    """``medseg infer -m hippocampus`` of a 512×512×200 CT at 0.8×0.8×1.5 mm (410×410×300 at 1 mm) peaked 1.16 GB
    beyond the 0.42 GB of imports and model once MONAI's sampling grid was built a slab at a time (1.96 GB before,
    charged 4.11 GB: 40 bytes a voxel); with fixed labels instead of the network, 6.3 bytes a voxel, and 6.8-8.0 for
    a downsampled, an upsampled and an LPS volume (benchmarks/README.md)."""
    import numpy as np

    from medseg.preprocess import grid_memory

    pre = load_package("hippocampus").preprocessing
    charge, model_shape = grid_memory((512, 512, 200), np.diag([0.8, 0.8, 1.5, 1.0]), pre)
    assert model_shape == (410, 410, 300)
    assert 1.16e9 < charge < 1.8e9  # 12 B x 102.9 M voxels + a slab of 537 MB
    for shape, spacing, measured in [((1024, 1024, 80), (0.4, 0.4, 1.0), 6.8),
                                     ((512, 512, 100), (-0.8, -0.8, 1.5), 7.0), ((200, 200, 60), (2.0, 2.0, 2.5), 8.0)]:
        charge, model_shape = grid_memory(shape, np.diag([*spacing, 1.0]), pre)
        voxels = int(np.prod(shape)) + int(np.prod(model_shape))
        assert charge > measured * voxels and charge >= 12 * voxels


def test_the_benchmarks_table_of_job_memory_shows_what_the_jobs_ask_for():
    """benchmarks/README.md's table of the cohort jobs' memory gave 1,800 MB for the hippocampus job of a 256×256×100
    NIfTI of 0.9×0.9×1.5 mm, its first attempt under the 40-byte charge; the jobs ask 1,900 MB since the charge of a
    resampling model became 12 bytes a voxel and the inference's slab."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "benchmarks" / "README.md").read_text(encoding="utf-8")
    phantom, hippocampus = load_package("phantom"), load_package("hippocampus")
    rows = {"64³ NIfTI, 1 mm": InputGrid(64 ** 3, (1.0, 1.0, 1.0)),
            "256×256×100 NIfTI, 0.9×0.9×1.5 mm": InputGrid(256 * 256 * 100, (0.9, 0.9, 1.5)),
            "the same as a DICOM series": InputGrid(256 * 256 * 100, (0.9, 0.9, 0.9)),  # slices taken as 0.9 mm
            "512×512×100 NIfTI, 0.7×0.7×1 mm": InputGrid(512 * 512 * 100, (0.7, 0.7, 1.0))}
    for start, grid in rows.items():
        row = next(line for line in text.splitlines() if line.startswith(f"| {start}"))
        asked = [int(v.replace(",", "")) for v in re.findall(r"[\d,]+", row.split("|")[4])]
        expected = [infer_memory_mb([grid], phantom), infer_memory_mb([grid], hippocampus)]
        assert asked == expected[:len(asked)], (start, asked, expected)
        evaluate = row.split("|")[6].strip()
        if evaluate != "—":
            assert int(evaluate.replace(",", "").split()[0]) == evaluate_memory_mb([grid]), (start, evaluate)


def test_the_cohort_config_comment_gives_what_the_inference_jobs_ask_for():
    """configs/cohort.yaml's comment on mem_mb said 5.9 GB for a 512×512×300 CT with hippocampus, the 40-byte charge's
    figure; the jobs ask 3.2 GB since the sampling grid is built a slab at a time."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "configs" / "cohort.yaml").read_text(encoding="utf-8")
    comment = " ".join(line.lstrip("# ") for line in text.splitlines() if line.startswith("#"))
    found = re.search(r"([\d.]+) GB for a 512x512x300 CT of 0\.7x0\.7x1 mm with phantom, ([\d.]+) GB with hippocampus",
                      comment)
    assert found, comment
    phantom, hippocampus = load_package("phantom"), load_package("hippocampus")
    assert [float(found[1]), float(found[2])] == [infer_memory_mb([CT], phantom) / 1000,
                                                    infer_memory_mb([CT], hippocampus) / 1000]


def test_a_resampling_multi_modal_input_is_charged_its_slab_for_each_modality():
    """``medseg infer`` of a 4D input of 4 modalities (256×256×60 at 0.7×0.7×2 mm) with a hippocampus-sized model of
    4 × 5 input channels held 0.77 GB beyond the process's own, and was charged 0.62 GB: the inference's slab stacks
    each modality's context planes, and was charged once."""
    import numpy as np

    from medseg.preprocess import grid_memory
    from medseg.voxel_charge import charged_bytes

    pre = load_package("hippocampus").preprocessing
    affine = np.diag([0.7, 0.7, 2.0, 1.0])
    one, model_shape = grid_memory((256, 256, 60), affine, pre)
    four, _ = grid_memory((256, 256, 60), affine, pre, channels=4)
    assert model_shape == (180, 180, 119)  # 179×179×119 from the NIfTI's float32 0.7
    model, voxels = 180 * 180 * 119, 256 * 256 * 60 + 180 * 180 * 119
    assert one == 12 * voxels + 64 * model
    assert four == 4 * (12 * voxels + 64 * model) and four > 0.77e9
    assert charged_bytes(1000, 250, True, channels=2) == 62_000  # 2 x (12 B x 1250 + a slab of 64 B x 250)


def test_an_inference_job_asks_for_the_memory_of_its_models_tile_pass_on_the_cpu(make_package):
    """`medseg infer` checks one tile's forward pass of a package against the machine and warns where the job's
    cgroup holds less: the job memory left it out, so that a package of many classes on large tiles (1024 on 512²,
    about 3.2 GB a tile) was given 1.3 GB for small cases, and every such job was warned of, killed and retried.
    On a GPU the tile is in the GPU's memory, not charged here."""
    from conftest import tiny_config

    from medseg.tile_memory import tile_pass_bytes

    config = tiny_config()
    config["architecture"] |= {"n_classes": 1024, "base_width": 1, "depth": 1, "norm": "none"}
    config["labels"] = {str(value): f"label {value}" for value in range(1024)}
    config["inference"] |= {"roi_size": [512, 512]}
    package = load_package(make_package("many", **{key: config[key] for key in ("architecture", "labels",
                                                                                 "inference")}))
    tile = tile_pass_bytes(config["architecture"], 1, (512, 512))
    assert 3.2e9 < tile < 3.3e9  # 12 B x 1024 classes x 512² and the rest
    assert infer_memory_mb([SMALL], package) == 4500  # 1200 + 0.44 + 3232 MB, rounded up
    assert infer_memory_mb([SMALL], package, device="cuda") == 3300  # 1200 + 2000 + 0.44
    assert infer_memory_mb([], package) == infer_memory_mb([InputGrid()], package) == 1200  # no readable case
