"""Preprocessing as `medseg infer` meets it: the memory guard before resampling, intensities and shapes it
refuses, a label image given as the input (medseg.preprocess)."""

import json
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from conftest import _files, run_cli

from medseg.synthetic import make_phantom

run = run_cli  # medseg ARGS in this process: (exit code, stdout, stderr)


def test_a_label_image_given_as_the_input_is_segmented_with_a_warning(tmp_path, case, make_package, capsys, caplog):
    """Swapped image and label folders: the label file was segmented like a scan, without a word."""
    labels = tmp_path / "labels.nii.gz"
    nib.save(nib.Nifti1Image(make_phantom((40, 40, 8), seed=11).labels.astype(np.uint8),
                             np.diag([1.0, 1.0, 2.0, 1.0])), str(labels))
    code, _, _ = run(["infer", str(labels), str(case), "-m", str(make_package()), "-o", str(tmp_path / "out")],
                     capsys)
    note = "its voxels hold only the values 0, 1, 2, 3 (a sample across the volume): a label image given as the input?"
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert code == 0 and warnings == [f"{labels}: {note}; segmented all the same"]
    assert json.loads((tmp_path / "out" / "labels_seg.json").read_text())["input_info"] == {"label_like_note": note}
    assert json.loads((tmp_path / "out" / "case_seg.json").read_text())["input_info"] == {}
    # a scan whose first face is air: a stride over the stored order (128 × 1024 × 1024, 2^20 voxels sampled: every
    # 128th) sampled that face alone. Scaled down (16 × 128 × 128, every 16th of the stored order: that face alone
    # too, as asserted), the same arithmetic without the 3.6 CPU-seconds of drawing 2^27 voxels
    from medseg.preprocess import label_like_note
    from medseg.volume import Volume

    scan = np.asfortranarray(np.random.default_rng(0).integers(0, 900, (16, 128, 128), dtype=np.int16))
    scan[0] = 0
    assert np.unique(scan.ravel(order="F")[::16]).tolist() == [0]  # what the stride over the stored order saw
    assert label_like_note(Volume(scan, np.eye(4), source=Path("scan.nii.gz")), sample=scan.size // 16) is None


def test_intensities_that_overflow_normalisation_are_refused(tmp_path, make_package, capsys):
    path = tmp_path / "huge.nii.gz"
    array = np.where(make_phantom((40, 40, 8), seed=3).image > 0.5, 3e38, -3e38).astype(np.float32)
    nib.save(nib.Nifti1Image(array, np.eye(4)), str(path))
    code, _, err = run(["infer", str(path), "--model", str(make_package()), "-o", str(tmp_path / "out")], capsys)
    assert code == 1
    assert err.strip().splitlines()[-1] == (f"medseg: error: {path}: preprocessing gave non-finite values "
                                            "(intensities up to 3e+38 overflow float32); rescale the image")
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- resampling size, transform failures, threads
def _nifti(path, shape, spacing, dtype="f4"):
    affine = np.diag([*spacing, 1.0])
    image = nib.Nifti1Image(np.random.default_rng(0).random(shape).astype(dtype), affine)
    image.set_sform(affine, 1)
    nib.save(image, path)
    return path


def test_a_resampling_larger_than_the_machine_is_refused_before_any_work(tmp_path, capsys):
    """32³ voxels whose header says 200 mm become 6201³ at the hippocampus model's 1 mm. Before: MONAI tried,
    and the message was "inference failed (applying transform <...Spacingd object at 0x...>)"."""
    good = _nifti(tmp_path / "good.nii.gz", (30, 40, 30), (1.0, 1.0, 1.0))
    huge = _nifti(tmp_path / "huge.nii.gz", (32, 32, 32), (200.0, 200.0, 200.0))
    code, _, err = run(["infer", str(huge), str(good), "-m", "hippocampus", "-o", str(tmp_path / "out"),
                        "--device", "cpu"], capsys)
    line = next(line for line in err.splitlines() if "huge.nii.gz" in line)
    assert code == 1 and line.startswith(f"medseg: error: {huge}: resampling its 32×32×32 voxels of 200 × 200 × 200 mm "
                                         "to the model's 1 × 1 × 1 mm gives 6201×6201×6201 voxels, about ")
    assert line.endswith("; check the voxel size in the header, and the model's spacing_mm")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good_seg.json", "good_seg.nii.gz",
                                                                    "huge_failed.json"]
    # a voxel size of 1e30 mm: the grid's integer shape wrapped around, and the check passed on it (exit 0, a
    # segmentation of nothing, a numpy warning)
    absurd = _nifti(tmp_path / "absurd.nii.gz", (32, 32, 32), (1e30, 1.0, 1.0))
    code, _, err = run(["infer", str(absurd), "-m", "hippocampus", "-o", str(tmp_path / "out2"), "--device", "cpu"],
                       capsys)
    assert code == 1 and err.strip().splitlines()[-1] == (
        f"medseg: error: {absurd}: resampling its 32×32×32 voxels of 1e+30 × 1 × 1 mm to the model's 1 × 1 × 1 mm "
        "gives about 3.28e+34 voxels, more than any machine's memory holds; check the voxel size in the header, and "
        "the model's spacing_mm")
    assert "RuntimeWarning" not in err and not (tmp_path / "out2").exists()


@pytest.mark.parametrize(("shape", "spacing"), [((30, 40, 30), (1.0, 1.0, 1.0)), ((37, 21, 9), (0.7, 1.3, 3.1)),
                                                ((64, 64, 1), (0.5, 0.5, 5.0)), ((72, 104, 12), (0.5, 0.5, 3.0))])
@pytest.mark.parametrize("turn", ["flips", "oblique"])
def test_the_model_space_shape_is_known_before_resampling(tmp_path, shape, spacing, turn):
    """Exactly, also for an oblique anisotropic grid: it had been one voxel off per axis there (37×53×37 predicted,
    36×52×37 made), and it sizes the memory guard and the check that a 2D image lies in the model's plane."""
    from scipy.spatial.transform import Rotation

    from medseg.io import read_image
    from medseg.package import load_package
    from medseg.preprocess import build_transforms, model_space_shape, to_model_space

    package = load_package("hippocampus")
    rotations = {"flips": [np.diag([1.0, 1.0, 1.0]), np.diag([-1.0, 1.0, -1.0])],
                 "oblique": [Rotation.from_euler("xz", [20, 20], degrees=True).as_matrix(),
                             Rotation.from_euler("yx", [-35, 50], degrees=True).as_matrix()]}[turn]
    for n, rotation in enumerate(rotations):
        affine = np.eye(4)
        affine[:3, :3] = rotation * spacing
        affine[:3, 3] = (-12.5, 30.0, 7.25)
        path = tmp_path / f"v{n}.nii.gz"
        nib.save(nib.Nifti1Image(np.random.default_rng(n).random(shape, np.float32), affine), path)
        volume = read_image(path)
        actual = tuple(to_model_space(volume, build_transforms(package.preprocessing))["image"].shape[1:])
        assert model_space_shape(volume, package.preprocessing) == actual


def test_a_failing_transform_is_named_with_its_cause(tmp_path):
    from monai.transforms import Compose, EnsureChannelFirstd, Lambdad

    from medseg.errors import InputError
    from medseg.io import read_image
    from medseg.preprocess import to_model_space

    def refuse(image):
        raise RuntimeError("can't allocate memory: you tried to allocate 119394788832 bytes")

    volume = read_image(_nifti(tmp_path / "v.nii.gz", (8, 8, 8), (1.0, 1.0, 1.0)))
    transforms = Compose([EnsureChannelFirstd(keys="image", channel_dim="no_channel"), Lambdad("image", refuse)])
    with pytest.raises(InputError) as info:
        to_model_space(volume, transforms)
    assert str(info.value) == (f"{tmp_path / 'v.nii.gz'}: preprocessing failed in Lambdad (RuntimeError: can't "
                               "allocate memory: you tried to allocate 119394788832 bytes)")


def test_an_empty_volume_names_its_shape(tmp_path, capsys):
    path = tmp_path / "empty.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((10, 10, 0), "f4"), np.eye(4)), path)
    code, _, err = run(["infer", str(path), "-o", str(tmp_path / "out"), "--device", "cpu"], capsys)
    assert code == 1 and err.strip().splitlines()[-1] == f"medseg: error: {path}: empty volume of shape (10, 10, 0)"


def test_the_size_guard_counts_without_overflow(tmp_path):
    """1e6 mm voxels make 31 000 001³ voxels: int64 products wrapped round and let it through to MONAI."""
    from medseg.errors import InputError
    from medseg.io import read_image
    from medseg.package import load_package
    from medseg.preprocess import check_resampling_size

    volume = read_image(_nifti(tmp_path / "v.nii.gz", (32, 32, 32), (1e6, 1e6, 1e6)))
    with pytest.raises(InputError, match="gives 31000001×31000001×31000001 voxels"):
        check_resampling_size(volume, load_package("hippocampus").preprocessing)


def test_a_model_that_keeps_the_voxel_size_is_not_charged_for_resampling():
    """A 512×512×1500 CT and a model without spacing_mm: the guard charged 40 bytes a voxel twice over (31 GiB, as if
    resampling) and refused it on a 24 GiB machine, where it needs about 3.4 GB."""
    from medseg.memory_guard import physical_memory
    from medseg.package import load_package
    from medseg.preprocess import check_resampling_size
    from medseg.volume import Volume
    from medseg.voxel_charge import COPY_BYTES_PER_VOXEL

    shape = (512, 512, 1500)
    if (physical_memory() or 0) < math.prod(shape) * COPY_BYTES_PER_VOXEL:
        pytest.skip("this machine has less memory than such a CT needs")
    volume = Volume(np.broadcast_to(np.float32(0), shape), np.diag([0.7, 0.7, 0.5, 1.0]), source="ct.nii.gz")
    check_resampling_size(volume, load_package("phantom").preprocessing)  # no error


def test_infer_with_a_reference_is_refused_where_its_scoring_would_not_fit(tmp_path, capsys, monkeypatch):
    """With --reference the guard charges what scoring holds after the inference (32 bytes a voxel, a noisy
    prediction's edges, their k-d tree and distance map), not the inference's 12: a 1000³ header on a machine of 16
    GB is refused from its header, before anything is read; without a reference it passes the guard."""
    import medseg.memory_guard
    import medseg.preprocess
    from medseg.preprocess import check_grid_size

    monkeypatch.setattr(medseg.memory_guard, "physical_memory", lambda: 16 * 10**9)
    shape, affine = (1000, 1000, 1000), np.eye(4)
    check_grid_size("ct.nii", shape, affine, {"spacing_mm": None})  # 12 GB: no error
    path = tmp_path / "ct.nii"
    image = nib.Nifti1Image(np.zeros((2, 2, 2), np.uint8), np.eye(4))
    image.header.set_data_shape(shape)
    image.header["vox_offset"] = 352
    with open(path, "wb") as file:
        file.write(image.header.binaryblock + b"\0" * 4)
        file.truncate(352 + 1000**3)
    reference = tmp_path / "ct_label.nii"
    reference.write_bytes(path.read_bytes()[:352])
    code, _, err = run(["infer", str(path), "--reference", str(reference), "-o", str(tmp_path / "out"),
                        "--device", "cpu"], capsys)
    line = err.strip().splitlines()[-1]
    assert code == 1 and line.startswith(f"medseg: error: {path}: segmenting its 1000×1000×1000 voxels needs about "
                                         "30 GiB of memory (this machine has 15 GiB)"), line
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_the_size_guard_reads_the_header_first(tmp_path, capsys):
    """A header promising 2000³ voxels is refused for its size, from the header, before its voxels are read (a
    sparse file: it holds them, as zeros, on no disk space); the message says what is needed and does not speak of
    resampling (a file that cannot hold them: the next test)."""
    from medseg.memory_guard import physical_memory
    from medseg.voxel_charge import COPY_BYTES_PER_VOXEL

    path = tmp_path / "huge.nii"
    image = nib.Nifti1Image(np.zeros((2, 2, 2), np.float32), np.eye(4))
    image.header.set_data_shape((2000, 2000, 2000))
    image.header["vox_offset"] = 352
    header = image.header.binaryblock + b"\0" * 4
    with open(path, "wb") as file:
        file.write(header)
        file.truncate(352 + 2000**3 * 4)
    memory = physical_memory()
    if memory is None or memory > 2000**3 * COPY_BYTES_PER_VOXEL:
        pytest.skip("this machine would hold it")
    code, _, err = run(["infer", str(path), "-o", str(tmp_path / "out"), "--device", "cpu"], capsys)
    line = err.strip().splitlines()[-1]
    assert code == 1 and line.startswith(f"medseg: error: {path}: segmenting its 2000×2000×2000 voxels needs about "
                                         f"{2000**3 * COPY_BYTES_PER_VOXEL / 2**30:.0f} GiB of memory (this machine "
                                         "has "), line
    assert "resampling" not in line and "model's" not in line
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


@pytest.mark.parametrize("value", [0.0, 7.5])
def test_a_constant_image_is_refused(tmp_path, make_package, capsys, value):
    """Before, an all-zero (blank export) or constant image was segmented, all of it as one label, exit 0."""
    path = tmp_path / "blank.nii.gz"
    nib.save(nib.Nifti1Image(np.full((40, 40, 8), value, np.float32), np.eye(4)), path)
    code, _, err = run(["infer", str(path), "--model", str(make_package()), "-o", str(tmp_path / "out")], capsys)
    assert code == 1
    assert err.strip().splitlines()[-1] == (f"medseg: error: {path}: every voxel holds {value:g}: there is nothing "
                                            "to segment (a blank or failed export?)")
    assert not (tmp_path / "out").exists() or _files(tmp_path / "out") == []


@pytest.mark.parametrize(("low", "high", "side"), [(1000, 2000, "below"), (-500, -200, "above")])
def test_an_image_wholly_outside_the_models_intensity_window_is_refused(tmp_path, make_package, capsys, low, high,
                                                                          side):
    """An MR (values 20..400) given to a model of a CT window above or below them: clipped to the window, every voxel
    became one value, the same input everywhere, and it was segmented as if it said something, exit 0."""
    path = tmp_path / "mr.nii.gz"
    values = np.random.default_rng(0).uniform(20, 400, (40, 40, 8)).astype(np.float32)
    nib.save(nib.Nifti1Image(values, np.eye(4)), path)
    package = make_package(preprocessing={"orientation": "RAS", "spacing_mm": None,
                                          "intensity": {"kind": "window", "min": low, "max": high}})
    code, _, err = run(["infer", str(path), "--model", str(package), "-o", str(tmp_path / "out")], capsys)
    assert code == 1
    lowest, highest = float(values.min()), float(values.max())
    assert err.strip().splitlines()[-1] == (
        f"medseg: error: {path}: every voxel lies {side} the intensity window {low}..{high} of "
        f"preprocessing.intensity (its values run {lowest:.4g} to {highest:.4g}), so all of them become one value: "
        "there is nothing to segment (a window meant for other images, or a wrong scaling in the header?)")
    assert not (tmp_path / "out").exists() or _files(tmp_path / "out") == []


def test_a_volume_made_one_voxel_thick_by_its_voxel_size_says_so(tmp_path, capsys):
    """Before, a 36x52x38 volume of 0.01 mm voxels was refused as 'one voxel thick ... give a volume', which it is."""
    path = tmp_path / "tiny.nii.gz"
    nib.save(nib.Nifti1Image(make_phantom((36, 52, 38), seed=3).image, np.diag([0.01, 0.01, 0.01, 1.0])), path)
    code, _, err = run(["infer", str(path), "--model", "hippocampus", "-o", str(tmp_path / "out")], capsys)
    assert code == 1
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"medseg: error: {path}: its 36×52×38 voxels of 0.01 × 0.01 × 0.01 mm")
    assert last.endswith("give a thicker volume, or check the voxel size in the header")


def test_the_memory_guard_counts_an_ensemble_over_axes(tmp_path, case, make_package, capsys, monkeypatch):
    """An ensemble over slicing axes holds two float32 class-probability volumes (8 bytes per class and voxel); the
    guard charged it like one axis (12 bytes per voxel) and let through volumes that then ran out of memory."""
    import medseg.memory_guard
    import medseg.preprocess
    from tests.conftest import tiny_config

    voxels = 40 * 40 * 8
    monkeypatch.setattr(medseg.memory_guard, "physical_memory", lambda: voxels * 20)  # a machine of 20 bytes a voxel
    one_axis = make_package("one")
    code, _, err = run(["infer", str(case), "-m", str(one_axis), "-o", str(tmp_path / "a"), "--device", "cpu"], capsys)
    assert code == 0, err
    inference = {**tiny_config()["inference"], "slice_axis": [0, 1, 2]}
    ensemble = make_package("views", inference=inference)
    code, _, err = run(["infer", str(case), "-m", str(ensemble), "-o", str(tmp_path / "b"), "--device", "cpu"], capsys)
    assert code == 1 and err.strip().splitlines()[-1].startswith(
        f"medseg: error: {case}: segmenting its 40×40×8 voxels needs about ")
    assert not (tmp_path / "b" / "case_seg.nii.gz").exists()


def test_the_memory_guard_refuses_a_dicom_series_from_its_headers(tmp_path, make_package, capsys, monkeypatch):
    """A DICOM series was decoded whole, its float32 volume allocated, before the memory guard refused it (a NIfTI
    is refused from its header): the guard now takes the series' grid from its headers, and no pixel is decoded."""
    from dicom_factory import slice_positions, stored_values, write_series

    import medseg.io.dicom
    import medseg.memory_guard
    import medseg.preprocess

    def no_decoding(*args, **kwargs):
        raise AssertionError("pixel data decoded")

    series = tmp_path / "series"
    write_series(series, stored_values((24, 20, 4)), slice_positions(4, 2.0))
    monkeypatch.setattr(medseg.memory_guard, "physical_memory", lambda: 24 * 20 * 4 * 5)  # 5 bytes a voxel
    monkeypatch.setattr(medseg.io.dicom, "_pixels", no_decoding)
    code, _, err = run(["infer", str(series), "-m", str(make_package()), "-o", str(tmp_path / "out"), "--device",
                        "cpu"], capsys)
    assert code == 1 and err.strip().splitlines()[-1].startswith(
        f"medseg: error: {series}: segmenting its 24×20×4 voxels needs about "), err
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
