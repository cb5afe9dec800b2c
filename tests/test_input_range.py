"""Inputs unlike the volumes a package was trained on: segmented, but flagged in the sidecar and warned about
(medseg.input_range)."""

import json

import nibabel as nib
import numpy as np
from conftest import run_cli

from medseg.synthetic import make_phantom

run = run_cli  # medseg ARGS in this process: (exit code, stdout, stderr)


def test_input_unlike_the_training_volumes_is_segmented_but_flagged(tmp_path, capsys, caplog):
    """The shipped hippocampus package records its training crops' field of view (31–43 × 40–59 × 24–47 mm)."""
    rng = np.random.default_rng(0)
    like = tmp_path / "crop.nii.gz"  # an MSD-sized crop, 1 mm, with an MR's intensities (none negative)
    nib.save(nib.Nifti1Image(rng.uniform(0, 400, size=(36, 50, 36)).astype(np.float32), np.eye(4)), str(like))
    wide = tmp_path / "wide.nii.gz"  # 100 mm left-right: more than twice the largest training crop
    nib.save(nib.Nifti1Image(rng.uniform(0, 400, size=(100, 50, 36)).astype(np.float32), np.eye(4)), str(wide))
    code, _, err = run(["infer", str(like), str(wide), "--model", "hippocampus", "-o", str(tmp_path / "out"),
                        "--device", "cpu"], capsys)
    assert code == 0, err
    crop = json.loads((tmp_path / "out" / "crop_seg.json").read_text())["input_check"]
    percentiles = crop.pop("intensity_percentiles")
    assert crop == {"extent_mm": [36.0, 50.0, 36.0], "trained_extent_mm": {"min": [31.0, 40.0, 24.0],
                                                                           "max": [43.0, 59.0, 47.0]},
                    "tolerance": 2.0, "within_training_range": True, "outside": [], "reasons": [], "unknown": []}
    assert 3 < percentiles[0] < 5 and 395 < percentiles[1] < 397
    check = json.loads((tmp_path / "out" / "wide_seg.json").read_text())["input_check"]
    assert check["within_training_range"] is False and check["outside"] == ["x 100 mm against 31–43 mm trained"]
    assert (tmp_path / "out" / "wide_seg.nii.gz").is_file()  # still segmented: a warning, not a refusal
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(f"{wide}: field of view unlike the volumes model hippocampus was trained on: x 100 mm against" in w
               for w in warnings), warnings
    assert not any("crop.nii.gz" in w for w in warnings)


def test_one_slice_is_flagged_even_for_a_2d_package_without_context(tmp_path, capsys):
    """A single slice is unlike training even where each slice is segmented on its own: the z-score runs over the
    whole input, so a slice alone is normalised with other statistics (this slice of a phantom scored box Dice
    0.60 alone, 0.997 inside its volume). Both bounds hold along the slicing axis; a 2.5D package flags too."""
    phantom = make_phantom((96, 96, 40), seed=21)
    one = tmp_path / "one.nii.gz"
    nib.save(nib.Nifti1Image(phantom.image[:, :, 20:21], np.diag([1.0, 1.0, 1.5, 1.0])), str(one))
    code, _, err = run(["infer", str(one), "-m", "phantom", "-o", str(tmp_path / "p")], capsys)
    check = json.loads((tmp_path / "p" / "one_seg.json").read_text())["input_check"]
    assert code == 0 and check["extent_mm"] == [96.0, 96.0, 1.5] and check["within_training_range"] is False
    assert check["outside"] == ["z 1.5 mm against 58.83–279.36 mm trained"]
    wide = tmp_path / "wide.nii.gz"
    nib.save(nib.Nifti1Image(np.tile(phantom.image, (1, 1, 5)), np.diag([1.0, 1.0, 3.0, 1.0])), str(wide))
    code, _, err = run(["infer", str(wide), "-m", "phantom", "-o", str(tmp_path / "p")], capsys)
    check = json.loads((tmp_path / "p" / "wide_seg.json").read_text())["input_check"]
    assert code == 0 and check["within_training_range"] is False
    assert check["outside"] == ["z 600 mm against 58.83–279.36 mm trained"]

    coronal = tmp_path / "coronal.nii.gz"  # hippocampus: 2 context slices each side along y
    rng = np.random.default_rng(0)
    nib.save(nib.Nifti1Image(rng.uniform(0, 400, size=(36, 1, 36)).astype(np.float32), np.eye(4)), str(coronal))
    code, _, err = run(["infer", str(coronal), "-m", "hippocampus", "-o", str(tmp_path / "h")], capsys)
    check = json.loads((tmp_path / "h" / "coronal_seg.json").read_text())["input_check"]
    assert code == 0 and check["outside"] == ["y 1 mm against 40–59 mm trained"]


def test_modality_and_intensity_lines():
    from medseg.input_range import check_intensity, check_modality, combine_checks

    assert check_modality("MR", "CT") == "DICOM Modality MR against CT trained"
    assert check_modality("mr", "MR") is None and check_modality(None, "CT") is None
    assert check_modality("MR", None) is None
    mr = {"p1": {"min": 6.0, "max": 26080.0}, "p99": {"min": 89.0, "max": 501100.0}}
    assert check_intensity([0.0, 1183.0], mr, "MR") == (True, [])  # another scanner's MR, another scale
    assert check_intensity([-1024.0, 405.0], mr, "MR") == (False, [
        "intensity 1st percentile -1024, negative, where every training image's was at least 6"])
    assert check_intensity([0.0, 2e6], mr, None) == (False, [
        "intensity 99th percentile 2e+06 against 89–501100 trained"])
    # a CT package expects Hounsfield units, recorded or not
    assert check_intensity([0.0, 1183.0], None, "CT") == (False, [
        "intensity 1st percentile 0, none below 0, where a CT model expects Hounsfield units (air -1000; an MR, or a "
        "CT stored without its rescale intercept?)"])
    assert check_intensity([-1024.0, 405.0], None, "CT") == (True, [])
    assert check_intensity([-3024.0, 4000.0], None, "CT")[1] == [
        "intensity 99th percentile 4000 above 3071, the top of Hounsfield units' 12-bit range"]
    ct = {"p1": {"min": -1024.0, "max": -900.0}, "p99": {"min": 300.0, "max": 1500.0}}
    assert check_intensity([0.0, 1183.0], ct, None) == (False, [
        "intensity 1st percentile 0, where every training image's was negative (at most -900)"])
    # a package that records nothing of them: unknown, not in range
    assert check_intensity([0.0, 1183.0], None, None) == (None, [])
    extent = {"extent_mm": [36.0, 50.0, 36.0], "within_training_range": True, "outside": []}
    check = combine_checks(extent, None, None)
    assert (check["within_training_range"], check["unknown"], check["reasons"]) == (None, ["intensity"], [])
    check = combine_checks(extent, "DICOM Modality CT against MR trained",
                           {"percentiles": [-1024.0, 405.0], "within": False, "outside": ["intensity x"]})
    assert check["within_training_range"] is False and check["reasons"] == ["modality", "intensity"]
    assert check["outside"] == ["DICOM Modality CT against MR trained", "intensity x"]
    assert check["intensity_percentiles"] == [-1024.0, 405.0]


def _mr_series(folder, seed=3):
    from dicom_factory import slice_positions, write_series

    values = np.random.default_rng(seed).integers(0, 900, size=(40, 50, 36)).astype(np.uint16)
    write_series(folder, values, slice_positions(36, 1.0), pixel_spacing=(1.0, 1.0), intercept=0.0, modality="MR")
    return folder


def test_an_mr_series_given_to_a_ct_model_is_flagged_by_modality_and_intensity(tmp_path, capsys, caplog,
                                                                                make_package):
    package = make_package("ctmodel", dicom_modality="CT")
    series = _mr_series(tmp_path / "brain")
    code, _, err = run(["infer", str(series), "--model", str(package), "-o", str(tmp_path / "out")], capsys)
    assert code == 0, err  # a warning, as for the field of view, not a refusal
    check = json.loads((tmp_path / "out" / "brain_seg.json").read_text())["input_check"]
    assert check["within_training_range"] is False and check["reasons"] == ["modality", "intensity"]
    assert check["outside"][0] == "DICOM Modality MR against CT trained"
    assert check["outside"][1].startswith("intensity 1st percentile 8, none below 0, where a CT model expects")
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(w.startswith(f"{series}: unlike the images model ctmodel was trained on: DICOM Modality MR against "
                            "CT trained; intensity 1st percentile 8") for w in warnings), warnings
    # and what to check, not only that the result is not covered
    assert any(w.endswith("figures: check that this is the kind of image the model card names (modality, intensities "
                          "as the scanner stores them), or use a model trained on such images") for w in warnings)


def test_a_ct_series_given_to_the_mr_hippocampus_model_is_flagged(tmp_path, capsys):
    from dicom_factory import slice_positions, write_series

    values = np.random.default_rng(4).integers(0, 1500, size=(36, 50, 36)).astype(np.uint16)  # -1024..475 HU
    write_series(tmp_path / "ct", values, slice_positions(36, 1.0), pixel_spacing=(1.0, 1.0))
    code, _, err = run(["infer", str(tmp_path / "ct"), "-m", "hippocampus", "-o", str(tmp_path / "out")], capsys)
    assert code == 0, err
    check = json.loads((tmp_path / "out" / "ct_seg.json").read_text())["input_check"]
    assert check["within_training_range"] is False and check["reasons"] == ["modality", "intensity"]
    assert check["outside"][0] == "DICOM Modality CT against MR trained"
    assert check["outside"][1].startswith("intensity 1st percentile -1")


def test_a_package_without_recorded_intensities_leaves_them_unknown(tmp_path, capsys, make_package):
    """A package made before `medseg train` recorded intensities: its inputs are not called in range."""
    package = make_package("old", input_extent_mm={"min": [10.0, 10.0, 10.0], "max": [100.0, 100.0, 100.0]})
    image = tmp_path / "case.nii.gz"
    nib.save(nib.Nifti1Image(np.random.default_rng(0).random((40, 40, 30)).astype(np.float32), np.eye(4)), str(image))
    code, _, err = run(["infer", str(image), "--model", str(package), "-o", str(tmp_path / "out")], capsys)
    assert code == 0, err
    check = json.loads((tmp_path / "out" / "case_seg.json").read_text())["input_check"]
    assert check["within_training_range"] is None and check["unknown"] == ["intensity"]
    assert check["reasons"] == [] and check["outside"] == []


def test_real_series_of_the_wrong_kind_are_flagged(shared_data, tmp_path, capsys, make_package):
    """The Prisma T1 series given to a CT model, and the TotalSegmentator CT series given to an MR model with the
    hippocampus package's recorded intensities (the shipped one takes 5 minutes on a 512² series): both were
    segmented with within_training_range true."""
    package = make_package("ctmodel", dicom_modality="CT")
    mr = shared_data / "dicom" / "mr-decubitus" / "HFS"
    code, _, err = run(["infer", str(mr), "--model", str(package), "-o", str(tmp_path / "mr")], capsys)
    assert code == 0, err
    check = json.loads(next((tmp_path / "mr").glob("*_seg.json")).read_text())["input_check"]
    assert check["within_training_range"] is False and check["reasons"] == ["modality", "intensity"]
    assert check["intensity_percentiles"][0] == 0
    ct = shared_data / "dicom" / "ct-jpeg2000" / "series"
    from medseg.package import load_package

    shipped = load_package("hippocampus").config
    mr_package = make_package("mrmodel", dicom_modality=shipped["dicom_modality"],
                              input_intensity=shipped["input_intensity"])
    code, _, err = run(["infer", str(ct), "--model", str(mr_package), "-o", str(tmp_path / "ct")], capsys)
    assert code == 0, err
    check = json.loads(next((tmp_path / "ct").glob("*_seg.json")).read_text())["input_check"]
    assert check["within_training_range"] is False
    assert check["reasons"] == ["modality", "intensity"] and check["unknown"] == ["field_of_view"]
    assert "DICOM Modality CT against MR trained" in check["outside"]
    assert check["intensity_percentiles"][0] == -1024


def test_an_mr_of_another_scale_is_not_flagged_by_a_zscore_model(shared_data, tmp_path, capsys):
    """The hippocampus package z-scores its input, so a training MR stored scaled to 0–1 is segmented voxel for voxel
    as it is; it was flagged for its 99th percentile (0.3466 against 89–501100 trained)."""
    source = shared_data / "hippocampus" / "images" / "hippocampus_004.nii.gz"
    image = nib.load(str(source))
    values = np.asarray(image.dataobj, dtype=np.float32)
    unit = tmp_path / "unit.nii.gz"
    nib.save(nib.Nifti1Image(values / values.max(), image.affine), str(unit))
    code, _, err = run(["infer", str(source), str(unit), "-m", "hippocampus", "-o", str(tmp_path / "out"),
                        "--device", "cpu"], capsys)
    assert code == 0, err
    as_is = np.asarray(nib.load(str(tmp_path / "out" / "hippocampus_004_seg.nii.gz")).dataobj)
    scaled = np.asarray(nib.load(str(tmp_path / "out" / "unit_seg.nii.gz")).dataobj)
    assert np.array_equal(as_is, scaled) and (as_is > 0).sum() > 3000
    check = json.loads((tmp_path / "out" / "unit_seg.json").read_text())["input_check"]
    assert check["intensity_percentiles"] == [0.01587, 0.3466]
    assert (check["within_training_range"], check["reasons"], check["outside"]) == (True, [], [])
    assert "unlike" not in err


def test_the_99th_percentile_rule_is_left_out_for_a_scale_free_normalisation():
    from medseg.input_range import check_intensity

    mr = {"p1": {"min": 6.0, "max": 26080.0}, "p99": {"min": 89.0, "max": 501100.0}}
    assert check_intensity([0.01587, 0.3466], mr, "MR", scale_free=True) == (True, [])
    assert check_intensity([0.0, 2e6], mr, "MR", scale_free=True) == (True, [])
    assert check_intensity([-1024.0, 405.0], mr, "MR", scale_free=True)[0] is False  # a CT's negative HU still
    assert check_intensity([0.01587, 0.3466], mr, "MR")[0] is False  # a window package sees the scale


def test_a_ct_package_trained_on_organ_crops_does_not_flag_a_crop_like_its_own(shared_data, tmp_path, capsys,
                                                                               make_package):
    """A 64² crop inside the TotalSegmentator CT's abdomen (20 slices) holds no voxel below 0 HU at its 1st percentile
    (33): a CT package whose recorded training crops were all like it (1st percentiles 20 to 60) flagged it as 'an
    MR, or a CT stored without its rescale intercept', as it would its own training images."""
    from medseg.input_range import check_intensity
    from medseg.io.dicom import read_dicom_series

    values = np.asarray(read_dicom_series(shared_data / "dicom" / "ct-jpeg2000" / "series").array)
    crop = tmp_path / "crop.nii.gz"
    nib.save(nib.Nifti1Image(np.ascontiguousarray(values[112:176, 240:304, :]).astype(np.float32), np.eye(4)),
             str(crop))
    crops = {"p1": {"min": 20.0, "max": 60.0}, "p99": {"min": 100.0, "max": 300.0}, "cases": 30}
    package = make_package("organ", dicom_modality="CT", input_intensity=crops)
    code, _, err = run(["infer", str(crop), "--model", str(package), "-o", str(tmp_path / "out")], capsys)
    assert code == 0, err
    check = json.loads((tmp_path / "out" / "crop_seg.json").read_text())["input_check"]
    assert check["intensity_percentiles"] == [33.0, 137.0]
    assert check["reasons"] == [] and check["outside"] == [] and "unlike" not in err
    # with no intensities recorded, Hounsfield units are all a CT package knows: the crop is flagged
    assert check_intensity([33.0, 137.0], None, "CT")[0] is False
    # and where its training images all held air, a crop without is unlike them
    assert check_intensity([33.0, 137.0], {**crops, "p1": {"min": -1024.0, "max": -900.0}}, "CT") == (False, [
        "intensity 1st percentile 33, none below 0, where a CT model expects Hounsfield units (air -1000; an MR, or "
        "a CT stored without its rescale intercept?)"])


def test_percentiles_of_a_large_nifti_array_do_not_copy_it():
    """nibabel's arrays are Fortran-ordered: flattening one to sample every k-th voxel copied the whole volume
    (4 s for 512×512×300 float32, against 0.09 s for the same voxels C-ordered). The sample is the same voxels."""
    import tracemalloc

    from medseg.input_range import intensity_percentiles

    values = np.random.default_rng(0).normal(size=(512, 512, 80)).astype(np.float32)  # 80 MiB, 20 Mi voxels
    fortran = np.asfortranarray(values)
    tracemalloc.start()
    percentiles = intensity_percentiles(fortran)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert percentiles == intensity_percentiles(values)  # every k-th voxel in C order, whatever the layout
    assert peak < values.nbytes / 2, peak
