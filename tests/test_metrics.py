"""The per-case metrics record (medseg.metrics) against independent computations (numpy, scipy distance
transforms) and known answers: Dice and volumes, the empty-mask policy, label counting, a caller's arrays checked."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from metric_cases import HIPPO_LABELS, independent_metrics, make_affine, reindexed, score
from scipy import ndimage as ndi

from medseg.errors import GeometryError, InputError, MedsegWarning
from medseg.io.label_images import read_reference
from medseg.metrics import evaluate_volumes, jsonable, metrics_json
from medseg.scoring import evaluate_files
from medseg.volume import Volume, volume_ml


# ---------------------------------------------------------------- perturbed real labels
def _perturb(label: np.ndarray, how: str) -> np.ndarray:
    cross = ndi.generate_binary_structure(3, 1)
    out = label.copy()
    if how == "dilate_anterior":
        grown = ndi.binary_dilation(label == 1, structure=cross, iterations=2)
        out[grown & (label == 0)] = 1
    elif how == "erode_posterior":
        kept = ndi.binary_erosion(label == 2, structure=cross)
        out[(label == 2) & ~kept] = 0
    elif how == "shift":
        out = np.roll(label, (2, -1, 1), axis=(0, 1, 2))
    elif how == "swap_and_shift":
        out = np.roll(np.where(label == 1, 2, np.where(label == 2, 1, 0)), 1, axis=2).astype(label.dtype)
    return out


@pytest.mark.shared_data
@pytest.mark.parametrize("how", ["dilate_anterior", "erode_posterior", "shift", "swap_and_shift"])
@pytest.mark.parametrize(
    "affine",
    [
        np.eye(4),
        make_affine((0.8, 1.25, 2.5)),
        make_affine((0.9, 1.1, 1.4), angles=(0.3, -0.2, 0.25), origin=(5, -7, 3)),
    ],
    ids=["iso", "anisotropic", "oblique"],
)
def test_perturbed_real_labels_match_independent(shared_data, how, affine):
    path = shared_data / "hippocampus" / "labels" / "hippocampus_004.nii.gz"
    ref = np.asanyarray(nib.load(path).dataobj).astype(np.int32)
    pred = _perturb(ref, how)
    result = score(pred, ref, affine, HIPPO_LABELS)
    assert sorted(result) == ["1", "2"]
    for value in (1, 2):
        expected = independent_metrics(pred, ref, value, affine)
        got = result[str(value)]
        assert got["status"] == "ok"
        assert got["name"] == HIPPO_LABELS[value]
        for key, want in expected.items():
            assert got[key] == pytest.approx(want, rel=1e-5, abs=1e-5), (how, value, key)
    if how == "shift":  # a shift keeps volumes and moves voxels: false positives equal false negatives
        assert result["1"]["pred_volume_ml"] == pytest.approx(result["1"]["ref_volume_ml"])
        assert result["1"]["false_positive_ml"] == pytest.approx(result["1"]["false_negative_ml"])
        assert result["1"]["dice"] < 0.9


# ---------------------------------------------------------------- synthetic shapes with known answers
def test_shifted_box_exact_dice_volumes_and_spacing_aware_distances():
    """A 20³ box and a copy shifted by 5 voxels along the 2 mm axis: Dice = 2·15/40 = 0.75 exactly."""
    spacing = (0.5, 1.0, 2.0)
    a = np.zeros((40, 40, 40), np.uint8)
    a[10:30, 10:30, 10:30] = 1
    b = np.roll(a, 5, axis=2)
    got = score(a, b, make_affine(spacing))["1"]
    voxel_ml = 0.5 * 1.0 * 2.0 / 1000
    assert got["dice"] == pytest.approx(0.75, abs=1e-6)
    assert got["pred_volume_ml"] == pytest.approx(8000 * voxel_ml)
    assert got["false_positive_ml"] == pytest.approx(5 * 400 * voxel_ml)
    assert got["hd95_mm"] == pytest.approx(10.0)  # the two end faces are 5 voxels × 2 mm apart
    expected = independent_metrics(a, b, 1, make_affine(spacing))
    assert got["assd_mm"] == pytest.approx(expected["assd_mm"], rel=1e-6)
    # the same shift along the 0.5 mm axis is four times shorter
    along_fine = score(a, np.roll(a, 5, axis=0), make_affine(spacing))["1"]
    assert along_fine["hd95_mm"] == pytest.approx(2.5)


def test_volumes_are_written_without_binary_noise():
    """174 voxels of 1 µl: 0.174 ml in the JSON, not 0.17400000000000002."""
    a = np.zeros((10, 10, 10), np.uint8)
    a.flat[:174] = 1
    b = np.zeros_like(a)
    b.flat[:100] = 1
    got = score(a, b, make_affine((1.0, 1.0, 1.0)))["1"]
    assert (got["pred_volume_ml"], got["ref_volume_ml"], got["false_positive_ml"]) == (0.174, 0.1, 0.074)
    assert '"pred_volume_ml": 0.174,' in metrics_json({"labels": {"1": got}})


def test_float32_header_sizes_read_as_written(tmp_path):
    """0.7 mm voxels are 0.699999988079071 mm as a header's float32: the JSON says 0.7 and 1.90218 ml, not
    1.90217993521; a size float32 holds exactly (0.48828125) stays exact."""
    a = np.zeros((12, 12, 6), np.uint8)
    a[1:10, 1:10, 1:5] = 1
    b = np.zeros_like(a)
    b[2:9, 1:10, 1:5] = 1
    nib.save(nib.Nifti1Image(a, np.diag([0.7, 0.7, 3.0, 1.0])), tmp_path / "pred.nii.gz")
    nib.save(nib.Nifti1Image(b, np.diag([0.7, 0.7, 3.0, 1.0])), tmp_path / "ref.nii.gz")
    record = evaluate_files(tmp_path / "pred.nii.gz", tmp_path / "ref.nii.gz")
    assert record["spacing_mm"] == [0.7, 0.7, 3.0]
    assert record["labels"]["1"]["pred_volume_ml"] == 0.47628  # 324 × 1.47 µl
    assert record["labels"]["1"]["ref_volume_ml"] == 0.37044  # 252 × 1.47 µl
    fine = evaluate_volumes(Volume(a, np.diag([0.48828125, 0.48828125, 3.0, 1.0]), source="p"),
                            Volume(b, np.diag([0.48828125, 0.48828125, 3.0, 1.0]), source="r"), {0: "bg", 1: "x"})
    assert fine["spacing_mm"] == [0.48828125, 0.48828125, 3.0]
    # an oblique grid stored as float32: its column norms are no float32 values (0.70000005), read to 7 digits
    oblique = make_affine((0.7, 0.7, 3.0), angles=(0.3, 0.2, 0.1)).astype(np.float32).astype(np.float64)
    tilted = evaluate_volumes(Volume(a, oblique, source="p"), Volume(b, oblique, source="r"), {0: "bg", 1: "x"})
    assert tilted["spacing_mm"] == [0.7, 0.7, 3.0] and tilted["labels"]["1"]["pred_volume_ml"] == 0.47628
    # one voxel more still counts on a large label (volumes keep 12 significant digits)
    assert volume_ml(12345678, 0.001) != volume_ml(12345677, 0.001)


def test_sheared_grid_volumes_read_the_same_from_a_float32_header():
    """A tilted DICOM series' grid (float64, 1.2 mm³ voxels) scored 1.374 ml in `medseg infer --reference`, and its
    segmentation's NIfTI (the same grid in a float32 sform, |det| 1.20000006 mm³) 1.37400007507 ml in `medseg
    evaluate`: the voxel volume is taken to float32's 7 significant digits, as a header holds it."""
    a = np.zeros((12, 12, 6), np.uint8)
    a[1:10, 1:10, 1:5] = 1
    b = np.zeros_like(a)
    b[2:9, 1:10, 1:5] = 1
    tilted = np.diag([-0.6, -0.8, 2.5, 1.0])
    tilted[1, 2] = -math.tan(math.radians(15)) * 2.5  # each slice shifted along y
    stored = tilted.astype(np.float32).astype(np.float64)
    assert abs(np.linalg.det(stored[:3, :3])) != 1.2
    volumes = [evaluate_volumes(Volume(a, affine, source="p"), Volume(b, affine, source="r"), {1: "x"})["labels"]["1"]
               for affine in (tilted, stored)]
    keys = ("pred_volume_ml", "ref_volume_ml", "false_positive_ml", "false_negative_ml")
    assert [volumes[0][key] for key in keys] == [volumes[1][key] for key in keys] == [0.3888, 0.3024, 0.0864, 0.0]


def test_a_single_slice_reference_of_another_thickness_is_noted(caplog):
    """One slice's voxel centres do not depend on its thickness, so the grids match; the reference's header would
    make its volumes 5× larger: said in a warning and in the record's notes, not passed over."""
    a = np.zeros((15, 15, 1), np.uint8)
    b = np.zeros_like(a)
    a[2:9, 3:12] = 1
    b[4:10, 3:11] = 1  # 48 pixels
    pred = Volume(a, np.diag([0.7, 0.7, 1.0, 1.0]), source="p")
    with pytest.warns(MedsegWarning, match=r"^r: its header gives the single slice a thickness of 5 mm .* as large\)$"):
        record = evaluate_volumes(pred, Volume(b, np.diag([0.7, 0.7, 5.0, 1.0]), source="r"), {0: "bg", 1: "x"})
    assert record["labels"]["1"]["ref_volume_ml"] == 48 * 0.49 / 1000  # the prediction's voxel size
    assert record["notes"] == ["reference: its header gives the single slice a thickness of 5 mm where the "
                               "prediction's gives 1 mm; its volumes are computed with the prediction's (its own "
                               "would make them 5× as large)"]
    assert "r: its header gives the single slice a thickness of 5 mm" in caplog.text
    same = evaluate_volumes(pred, Volume(b, np.diag([0.7, 0.7, 1.0, 1.0]), source="r"), {0: "bg", 1: "x"})
    assert "notes" not in same
    with warnings.catch_warnings():  # raised by an "error" filter: not computed at all, and its text says so
        warnings.simplefilter("error", MedsegWarning)
        with pytest.raises(MedsegWarning) as raised:
            evaluate_volumes(pred, Volume(b, np.diag([0.7, 0.7, 5.0, 1.0]), source="r"), {0: "bg", 1: "x"})
    assert str(raised.value) == ("r: its header gives the single slice a thickness of 5 mm where the prediction's "
                                 "gives 1 mm; not scored (MedsegWarning filtered into an error)")


# ---------------------------------------------------------------- the empty-mask policy
def test_empty_mask_policy_and_json_null(tmp_path):
    ref = np.zeros((16, 16, 16), np.uint8)
    pred = np.zeros_like(ref)
    ref[2:6, 2:6, 2:6] = 2  # label 2 only in the reference  -> empty prediction
    pred[9:12, 9:12, 9:12] = 3  # label 3 only in the prediction -> false positive
    labels = {0: "bg", 1: "absent", 2: "missed", 3: "extra"}
    result = evaluate_volumes(Volume(pred, np.eye(4)), Volume(ref, np.eye(4)), labels, case_id="empty")
    got = result["labels"]
    assert got["1"]["status"] == "both_empty"
    assert all(math.isnan(got["1"][k]) for k in ("dice", "hd95_mm", "assd_mm"))
    assert got["1"]["pred_volume_ml"] == got["1"]["ref_volume_ml"] == 0.0
    assert got["2"]["status"] == "empty_prediction"
    assert got["2"]["dice"] == 0.0 and math.isnan(got["2"]["hd95_mm"]) and math.isnan(got["2"]["assd_mm"])
    assert got["2"]["false_negative_ml"] == pytest.approx(64 / 1000)
    assert got["3"]["status"] == "false_positive"
    assert got["3"]["dice"] == 0.0 and math.isnan(got["3"]["hd95_mm"])
    assert got["3"]["false_positive_ml"] == pytest.approx(27 / 1000)
    text = metrics_json(result)

    def refuse(constant):
        raise AssertionError(f"non-standard JSON constant {constant}")

    parsed = json.loads(text, parse_constant=refuse)
    assert parsed["labels"]["1"]["dice"] is None and parsed["labels"]["2"]["hd95_mm"] is None
    assert parsed["labels"]["2"]["dice"] == 0.0
    assert "both_empty" in parsed["policy"]


def test_jsonable_replaces_nan_and_inf_and_numpy_scalars():
    out = jsonable({"a": [np.float32("nan"), float("inf"), np.int64(3)], "b": (1.5, None)})
    assert out == {"a": [None, None, 3], "b": [1.5, None]}
    assert type(out["a"][2]) is int


def test_no_warnings_leak_from_monai():
    a = np.zeros((24, 24, 24), np.uint8)
    a[4:14, 5:15, 6:16] = 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        score(np.roll(a, 2, axis=0), a, np.eye(4))
        score(np.zeros_like(a), a, np.eye(4))
    assert [str(w.message) for w in caught] == []


def test_the_record_says_when_it_was_computed_in_utc(monkeypatch):
    import datetime as dt

    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    a = np.zeros((8, 8, 8), np.uint8)
    a[2:5, 2:5, 2:5] = 1
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    record = evaluate_volumes(Volume(a, np.eye(4)), Volume(a, np.eye(4)), {1: "s"})
    created = dt.datetime.fromisoformat(record["created"])
    assert created.utcoffset() == dt.timedelta(0) and record["created"].endswith("+00:00")
    assert before <= created <= dt.datetime.now(dt.UTC)
    assert json.loads(metrics_json(record))["created"] == record["created"]


def test_source_date_epoch_dates_the_record_so_that_the_same_scoring_writes_the_same_bytes(monkeypatch):
    """The record's `created` was the time now whatever $SOURCE_DATE_EPOCH said (the reproducible-builds convention,
    which the QA report followed): scoring the same pair twice wrote two records differing in it alone."""
    a = np.zeros((8, 8, 8), np.uint8)
    a[2:5, 2:5, 2:5] = 1
    b = np.roll(a, 1, axis=0)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")
    first = evaluate_volumes(Volume(b, np.eye(4)), Volume(a, np.eye(4)), {1: "s"})
    second = evaluate_volumes(Volume(b, np.eye(4)), Volume(a, np.eye(4)), {1: "s"})
    assert first["created"] == "2026-01-01T00:00:00+00:00"
    assert metrics_json(first) == metrics_json(second)


def test_versions_are_those_of_the_running_modules(tmp_path):
    """A package's metadata can name another release than the module that runs (a stale or shadowing .dist-info on
    sys.path): the record names the numpy and scipy that computed the figures."""
    import scipy

    for name in ("numpy", "scipy"):
        meta = tmp_path / f"{name}-1.0.0.dist-info"
        meta.mkdir()
        (meta / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0.0\n")
    code = ("import json, numpy as np; from medseg.metrics import evaluate_volumes; from medseg.volume import Volume; "
            "a = np.zeros((8, 8, 8), np.uint8); a[2:5, 2:5, 2:5] = 1; "
            "print(json.dumps(evaluate_volumes(Volume(a, np.eye(4)), Volume(a, np.eye(4)), {1: 's'})['versions']))")
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), str(tmp_path)])}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    versions = json.loads(done.stdout)
    assert versions["numpy"] == np.__version__ != "1.0.0"
    assert versions["scipy"] == scipy.__version__ != "1.0.0"


def test_large_label_values_stay_apart(tmp_path):
    """Atlas ids beyond float32's exact range (2^24) and uint32 values beyond int32 are scored as themselves."""
    shape = (12, 12, 12)
    blob = np.zeros(shape, bool)
    blob[3:8, 3:8, 3:8] = True
    for name, value in (("a", 16777216), ("b", 16777217), ("c", 3_000_000_000), ("d", 4_000_000_000)):
        nib.save(nib.Nifti1Image(blob.astype(np.uint32) * np.uint32(value), np.eye(4)), tmp_path / f"{name}.nii.gz")
    result = evaluate_files(tmp_path / "b.nii.gz", tmp_path / "a.nii.gz")
    assert {k: v["status"] for k, v in result["labels"].items()} == {"16777216": "empty_prediction",
                                                                    "16777217": "false_positive"}
    result = evaluate_files(tmp_path / "c.nii.gz", tmp_path / "d.nii.gz")
    assert sorted(result["labels"]) == ["3000000000", "4000000000"]
    assert result["labels"]["3000000000"]["dice"] == 0.0
    same = evaluate_files(tmp_path / "d.nii.gz", tmp_path / "d.nii.gz")
    assert same["labels"]["4000000000"]["dice"] == 1.0
    # a float file is checked in float64: 1.00000001 is not label 1
    nib.save(nib.Nifti1Image(blob * 1.00000001, np.eye(4), dtype=np.float64), tmp_path / "near_one.nii.gz")
    with pytest.raises(InputError, match="near_one.nii.gz: not a label image"):
        read_reference(tmp_path / "near_one.nii.gz")
    nib.save(nib.Nifti1Image(blob * 2.0**60, np.eye(4), dtype=np.float64), tmp_path / "huge.nii.gz")
    with pytest.raises(InputError, match=r"huge.nii.gz: label value 1152921504606846976 is above 9007199254740992"):
        read_reference(tmp_path / "huge.nii.gz")
    nib.save(nib.Nifti1Image(blob.astype(np.int64) * (2**53 + 1), np.eye(4), dtype=np.int64), tmp_path / "odd.nii.gz")
    with pytest.raises(InputError, match=r"odd.nii.gz: label value 9007199254740993 is above 9007199254740992"):
        read_reference(tmp_path / "odd.nii.gz")
    # integer files keep their type (no float copy of a large label image)
    assert read_reference(tmp_path / "a.nii.gz").array.dtype == np.uint32
    # float files take the smallest type of their values (int64 for any: 3.5 GB where uint8 takes 2.0 GB)
    for value, dtype in ((3.0, np.uint8), (300.0, np.uint16), (3e9, np.uint32), (2.0**40, np.uint64)):
        nib.save(nib.Nifti1Image(blob * value, np.eye(4), dtype=np.float64), tmp_path / "float.nii.gz")
        read = read_reference(tmp_path / "float.nii.gz")
        assert read.array.dtype == dtype and read.array.max() == int(value)


def test_oblique_spacing_from_column_norms():
    affine = make_affine((0.8, 1.3, 2.2), angles=(0.5, -0.4, 0.9))
    volume = Volume(np.zeros((4, 4, 4)), affine)
    assert volume.spacing_mm == pytest.approx((0.8, 1.3, 2.2))
    assert volume.voxel_volume_ml == pytest.approx(0.8 * 1.3 * 2.2 / 1000)


def test_segment_case_writes_strict_metrics_json(make_package, tmp_path):
    """`medseg infer --reference` goes through segment_case: its metrics file is strict JSON (null, never NaN)
    and agrees with scoring the written segmentation again."""
    from medseg.inference import Segmenter
    from medseg.package import load_package
    from medseg.segment import segment_case

    affine = make_affine((1.0, 1.0, 2.0), origin=(3, 4, 5))
    rng = np.random.default_rng(1)
    image = rng.normal(size=(24, 24, 6)).astype(np.float32)
    ref = np.zeros((24, 24, 6), np.uint8)
    ref[5:12, 6:14, 1:4] = 1  # labels 2 and 3 absent from the reference
    nib.save(nib.Nifti1Image(image, affine), tmp_path / "img.nii.gz")
    nib.save(nib.Nifti1Image(ref, affine), tmp_path / "ref.nii.gz")
    segmenter = Segmenter(load_package(make_package()), device="cpu", batch_size=4)
    outputs = segment_case(tmp_path / "img.nii.gz", segmenter, out_dir=tmp_path / "out",
                           reference=tmp_path / "ref.nii.gz", case_id="c1")
    text = outputs.metrics.read_text()
    assert "NaN" not in text
    written = json.loads(text)
    again = evaluate_files(outputs.segmentation, tmp_path / "ref.nii.gz", {0: "background", 1: "ellipsoid",
                                                                          2: "box", 3: "tube"}, case_id="c1")
    assert written["labels"] == jsonable(again["labels"])
    assert written["case_id"] == "c1" and written["spacing_mm"] == [1.0, 1.0, 2.0]
    assert written["reference_reordered"] is False
    # the same reference stored in another voxel order gives the same scores, before any inference is wasted
    nib.save(nib.Nifti1Image(*reindexed(ref, affine)), tmp_path / "ref_reindexed.nii.gz")
    outputs = segment_case(tmp_path / "img.nii.gz", segmenter, out_dir=tmp_path / "out2",
                           reference=tmp_path / "ref_reindexed.nii.gz", case_id="c1")
    reindexed_record = json.loads(outputs.metrics.read_text())
    assert reindexed_record["reference_reordered"] is True
    assert reindexed_record["labels"] == written["labels"]


# ---------------------------------------------------------------- exact Dice; labels and arrays as a caller gives them
def test_dice_is_exact_from_the_voxel_counts():
    """14/20 shared is Dice 0.7 exactly; float32 masks (MONAI's compute_dice) gave 0.699999988 and a false
    "Dice below 0.7" flag."""
    ref = np.zeros((8, 8, 8), np.uint8)
    pred = np.zeros_like(ref)
    ref.reshape(-1)[:10] = 1
    pred.reshape(-1)[3:13] = 1
    entry = score(pred, ref, np.eye(4))["1"]
    assert entry["dice"] == 0.7 and entry["status"] == "ok"
    ref.reshape(-1)[:] = 0
    ref.reshape(-1)[:233] = 1  # 2·200 / (233 + 349) = 0.68728522..., not representable in float32 either
    pred.reshape(-1)[:] = 0
    pred.reshape(-1)[33:382] = 1
    assert score(pred, ref, np.eye(4))["1"]["dice"] == 2 * 200 / (233 + 349)


def test_label_values_given_as_text_are_scored_as_numbers():
    """Labels as JSON gives them (a sidecar's, model.json's: ``{"0": ..., "1": ...}``) were compared with the voxels
    as text: every label read both_empty (Dice NaN) and background was scored as a label."""
    a = np.zeros((20, 20, 20), np.uint8)
    a[5:15, 5:15, 5:15] = 1
    b = np.roll(a, 2, axis=0)
    as_text = score(a, b, np.eye(4), labels={"0": "background", "1": "structure"})
    assert list(as_text) == ["1"]
    assert as_text["1"]["status"] == "ok" and as_text["1"]["dice"] == pytest.approx(0.8)
    assert as_text == score(a, b, np.eye(4))


def test_labels_without_background_still_allow_its_zeros(tmp_path):
    """``evaluate_files(pred, ref, {1: "x"})``: a NIfTI's background voxels were refused as "label values [0] are not
    among the model's labels [1]" (a DICOM SEG prediction's were allowed); 0 is background whether named or not."""
    pred = np.zeros((12, 12, 12), np.uint8)
    pred[3:7, 3:7, 3:7] = 1
    ref = np.roll(pred, 1, axis=0)
    nib.save(nib.Nifti1Image(pred, np.eye(4)), tmp_path / "pred.nii.gz")
    nib.save(nib.Nifti1Image(ref, np.eye(4)), tmp_path / "ref.nii.gz")
    named = evaluate_files(tmp_path / "pred.nii.gz", tmp_path / "ref.nii.gz", {1: "x"})
    assert named["labels"]["1"]["dice"] == pytest.approx(0.75)
    assert named["labels"] == evaluate_files(tmp_path / "pred.nii.gz", tmp_path / "ref.nii.gz",
                                             {0: "bg", 1: "x"})["labels"]
    assert read_reference(tmp_path / "ref.nii.gz", {1: "x"}).array.max() == 1


@pytest.mark.parametrize("pred, affine, message", [
    (np.ones((6, 6), np.uint8), np.eye(4), r"the prediction: an array of shape \(6, 6\); give 3D label volumes"),
    (np.ones((6, 6, 2, 2), np.uint8), np.eye(4), r"an array of shape \(6, 6, 2, 2\)"),
    (np.ones((6, 6, 2), np.uint8), np.eye(3), r"the prediction: an affine of shape \(3, 3\); give the 4×4"),
])
def test_arrays_that_are_not_3d_label_volumes_are_one_medseg_error(pred, affine, message):
    """A 2D array or a 3×3 affine of a caller's failed in numpy ("cannot reshape array of size 8 into shape
    (3,newaxis)", "matmul: Input operand 1 has a mismatch")."""
    with pytest.raises(InputError, match=message):
        evaluate_volumes(Volume(pred, affine), Volume(np.ones((6, 6, 2), np.uint8), np.eye(4)), {1: "x"})


def test_an_affine_given_as_nested_lists_is_scored():
    a = np.zeros((10, 10, 10), np.uint8)
    a[2:6, 2:6, 2:6] = 1
    got = evaluate_volumes(Volume(a, np.eye(4).tolist()), Volume(np.roll(a, 1, axis=0), np.eye(4).tolist()), {1: "x"})
    assert got["labels"]["1"]["dice"] == pytest.approx(0.75) and got["spacing_mm"] == [1.0, 1.0, 1.0]


def _cube() -> np.ndarray:
    cube = np.zeros((8, 8, 8), np.uint8)
    cube[2:5, 2:5, 2:5] = 1
    return cube


@pytest.mark.parametrize("pred, message", [
    (_cube() * 0.5, "the prediction: not a label image (values must be non-negative integers; it holds 0.5), given as "
                    "the prediction"),
    (np.where(_cube() == 1, np.nan, 0.0), "the prediction: not a label image (values must be non-negative integers; "
                                          "it holds nan), given as the prediction"),
    (np.where(_cube() == 1, np.inf, 0.0), "the prediction: not a label image (values must be non-negative integers; "
                                          "it holds inf), given as the prediction"),
    (_cube().astype(np.int16) - 1, "the prediction: not a label image (values must be non-negative integers; it holds "
                                   "-1), given as the prediction"),
    (_cube().astype("U1"), "the prediction: voxels of type <U1; give label values (an integer array), given as the "
                          "prediction"),
    (nib.Nifti1Image(_cube(), np.eye(4)), "the prediction: a Nifti1Image in place of the voxel array; give the labels "
                                          "as an array (a nibabel image's: np.asarray(image.dataobj)), given as the "
                                          "prediction"),
    (np.zeros((0, 8, 8), np.uint8), "the prediction: an array of shape (0, 8, 8); give 3D label volumes (a 2D image as "
                                    "X×Y×1), given as the prediction"),
])
def test_arrays_that_hold_no_label_values_are_refused_as_a_file_of_them_is(pred, message):
    """From Python, fractional, NaN or negative voxels, text and a nibabel image in place of its array matched no label
    and scored Dice 0 (or both_empty), where a file of them is refused by its reader."""
    with pytest.raises(InputError) as raised:
        evaluate_volumes(Volume(pred, np.eye(4)), Volume(_cube(), np.eye(4)), {1: "x"})
    assert str(raised.value) == message


def test_an_array_or_a_nibabel_image_in_place_of_a_volume_is_an_input_error_naming_its_role():
    """segment_volume refused them in one line; evaluate_volumes failed on a missing attribute (AttributeError)."""
    cube = _cube()
    with pytest.raises(InputError) as raised:
        evaluate_volumes(cube, Volume(cube, np.eye(4)), {1: "x"})
    assert str(raised.value) == ("an ndarray given as the prediction; give a Volume(array, affine) (for a nibabel "
                                 "image, Volume(np.asarray(image.dataobj), image.affine))")
    with pytest.raises(InputError) as raised:
        evaluate_volumes(Volume(cube, np.eye(4)), nib.Nifti1Image(cube, np.eye(4)), {1: "x"})
    assert str(raised.value).startswith("a Nifti1Image given as the reference; give a Volume(array, affine)")


@pytest.mark.parametrize("affine, message", [
    (np.diag([1.0, 1.0, 0.0, 1.0]), "the reference: the affine is singular or not finite (rows 1 0 0 0; 0 1 0 0; "
                                    "0 0 0 0), given as the reference"),
    (np.diag([1.0, np.nan, 1.0, 1.0]), "the reference: the affine is singular or not finite (rows 1 0 0 0; 0 nan 0 0; "
                                       "0 0 1 0), given as the reference"),
    ([["a"] * 4] * 4, "the reference: the affine is not a 4×4 matrix of numbers (could not convert string to float: "
                      "'a'), given as the reference"),
    (np.diag([1.0, 1.0, 1.0, 2.0]), "the reference: the affine's bottom row is 0 0 0 2, not 0 0 0 1: a projective "
                                    "matrix, not a voxel-to-world affine, given as the reference"),
])
def test_an_affine_that_places_no_voxels_is_refused(affine, message):
    """A flat affine was scored with a voxel size of 0 mm (volumes of 0 ml), with numpy's warning on the console."""
    with pytest.raises(InputError) as raised:
        evaluate_volumes(Volume(_cube(), affine), Volume(_cube(), affine), {1: "x"})
    assert str(raised.value) == message.replace("reference", "prediction")  # the prediction is checked first
    with pytest.raises(InputError) as raised:
        evaluate_volumes(Volume(_cube(), np.eye(4)), Volume(_cube(), affine), {1: "x"})
    assert str(raised.value) == message


@pytest.mark.parametrize("labels, message", [
    ({"x": "a"}, "labels: 'x' is no label value; give whole numbers as the keys, as {1: 'liver'}"),
    ({1.5: "a"}, "labels: 1.5 is no label value; give whole numbers as the keys, as {1: 'liver'}"),
    ([1], "labels [1]: give a mapping of label values to names, as {1: 'liver'}"),
])
def test_labels_that_name_no_label_values_are_refused(labels, message):
    """A key 1.5 was scored as label 1; "x" and a list raised Python's ValueError and AttributeError."""
    with pytest.raises(InputError) as raised:
        evaluate_volumes(Volume(_cube(), np.eye(4)), Volume(_cube(), np.eye(4)), labels)
    assert str(raised.value) == message


def test_label_arrays_of_any_whole_number_type_score_alike():
    """Whole-valued floats (a label image's get_fdata), big-endian integers, booleans and nested lists are label
    values all the same."""
    ref = _cube()
    pred = np.roll(ref, 1, axis=0)
    expected = evaluate_volumes(Volume(pred, np.eye(4)), Volume(ref, np.eye(4)), {1: "x"})["labels"]
    assert expected["1"]["dice"] == pytest.approx(2 / 3)
    for given in (pred.astype(np.float64), pred.astype(">i2"), pred.astype(bool), pred.astype(np.float16),
                  pred.tolist()):
        assert evaluate_volumes(Volume(given, np.eye(4)), Volume(ref, np.eye(4)), {"1": "x"})["labels"] == expected


@pytest.mark.parametrize("shape", [(40, 36, 20), (40, 36, 1)])
def test_labels_counted_in_one_pass_score_as_counted_one_by_one(shape):
    """Small label values are counted for all labels in one pass over each array (a pass per label and per count
    took half of the time for 100 labels); the scores are those of counting each label on its own (uint64 arrays,
    which take that path), at the volume's faces, in one slice, and on a 2D image alike."""
    rng = np.random.default_rng(7)
    ref = np.zeros(shape, np.uint8)
    for value in range(1, 9):
        corner = [int(rng.integers(0, n)) for n in shape]
        size = [int(rng.integers(1, 9)) for _ in shape]
        ref[tuple(slice(c, c + s) for c, s in zip(corner, size))] = value
    ref[0, :5, :] = 9  # on the volume's faces
    pred = np.roll(ref, 1, axis=0)
    pred[pred == 3] = 0  # one label missed, one only predicted
    pred[-3:, -3:, :] = 10
    affine = np.diag([0.7, 1.3, 2.1, 1.0])
    labels = {value: f"l{value}" for value in range(11)}
    counted_once = evaluate_volumes(Volume(pred, affine), Volume(ref, affine), labels)
    one_by_one = evaluate_volumes(Volume(pred.astype(np.uint64), affine), Volume(ref.astype(np.uint64), affine), labels)
    from medseg.metrics import _LabelCounts

    assert _LabelCounts(pred, ref, list(labels)).fast
    assert not _LabelCounts(pred.astype(np.uint64), ref.astype(np.uint64), list(labels)).fast
    assert {entry["status"] for entry in counted_once["labels"].values()} >= {"ok", "false_positive"}
    assert json.dumps(counted_once["labels"], sort_keys=True) == json.dumps(one_by_one["labels"], sort_keys=True)


def test_arrays_of_no_file_on_other_grids_are_named_by_their_role():
    """From Python, a prediction and a reference of no file on other grids read "None: shape … differs from None's"."""
    blob = np.zeros((8, 8, 8), np.uint8)
    blob[2:5, 2:5, 2:5] = 1
    with pytest.raises(GeometryError) as info:
        evaluate_volumes(Volume(blob[:4], np.eye(4)), Volume(blob, np.eye(4)), {1: "x"})
    assert str(info.value) == ("the reference: shape (8, 8, 8) differs from the prediction's (4, 8, 8): on its voxel "
                               "lattice, but extends 4 voxels beyond its last i, and 9 of its labelled voxels lie "
                               "there, outside the grid; not scored")
    moved = np.eye(4)
    moved[0, 3] = 2.0
    with pytest.raises(GeometryError, match=r"^the reference: its affine places voxels up to 2 mm away from where "
                                            r"the prediction's does"):
        evaluate_volumes(Volume(blob, np.eye(4)), Volume(blob, moved), {1: "x"})


@pytest.mark.parametrize("order", ["C", "F"])
def test_counting_all_labels_at_once_takes_no_int64_copy_of_a_volume(order):
    """np.bincount casts what it counts to int64: a uint8 label volume counted whole took 8 bytes a voxel at the
    peak (9 for a Fortran-ordered one, whose ravel() is a copy), where counting label by label took 3. Counted a slab
    at a time, a bounded few MB; the counts are those of each label's own masks."""
    import tracemalloc

    shape = (256, 256, 96)
    ref = np.zeros(shape, np.uint8, order=order)
    for value in range(1, 6):
        ref[30 * value:30 * value + 6, 40:47, 10:15] = value
    pred = np.asarray(np.roll(ref, 1, axis=0), order=order)
    pred[200:204, 200:204, 80:84] = 6  # only predicted
    labels = {value: f"l{value}" for value in range(1, 8)}  # 7 in neither
    warm = np.zeros((6, 6, 6), np.uint8)
    warm[2:4, 2:4, 2:4] = 1
    evaluate_volumes(Volume(warm, np.eye(4)), Volume(warm, np.eye(4)), {1: "x"})  # imports outside the trace
    tracemalloc.start()
    try:
        record = evaluate_volumes(Volume(pred, np.eye(4)), Volume(ref, np.eye(4)), labels)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak / ref.size < 2, f"{peak / ref.size:.1f} bytes per voxel"
    for value in range(1, 8):
        p, r = pred == value, ref == value
        entry = record["labels"][str(value)]
        assert entry["pred_volume_ml"] == pytest.approx(p.sum() / 1000)
        assert entry["ref_volume_ml"] == pytest.approx(r.sum() / 1000)
        assert entry["false_positive_ml"] == pytest.approx((p & ~r).sum() / 1000)
    assert record["labels"]["1"]["dice"] == pytest.approx(2 * 5 * 35 / (2 * 6 * 35))
    assert [record["labels"][k]["status"] for k in ("6", "7")] == ["false_positive", "both_empty"]


def test_a_negative_label_value_is_empty_in_arrays_without_one():
    """Counted all at once, label -1 read the counts of the largest value (numpy's index -1) and failed on its box;
    counted by itself, it is empty in arrays that hold no negative value."""
    a = np.zeros((10, 10, 10), np.uint8)
    a[2:5, 2:5, 2:5] = 2
    got = evaluate_volumes(Volume(a, np.eye(4)), Volume(np.roll(a, 1, axis=0), np.eye(4)), {-1: "odd", 2: "x"})
    assert got["labels"]["-1"]["status"] == "both_empty" and got["labels"]["-1"]["pred_volume_ml"] == 0
    assert got["labels"]["2"]["dice"] == pytest.approx(2 / 3)


def test_the_metrics_benchmark_counts_no_first_call_on_one_side(monkeypatch, capsys):
    """benchmarks/metrics_speed.py: a first call's one-off cost (imports) is in neither figure, so even one repeat
    compares the two ways of counting (it had put seconds of imports into the one-pass figure)."""
    import re
    import time

    from conftest import benchmark_main

    import medseg.metrics

    real = medseg.metrics.evaluate_volumes
    calls = []

    def first_call_slow(*args, **kwargs):
        if not calls:
            time.sleep(1.0)
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(medseg.metrics, "evaluate_volumes", first_call_slow)
    monkeypatch.setattr("sys.argv", ["metrics_speed.py", "--shape", "40", "40", "30", "--labels", "3",
                                     "--repeats", "1"])
    benchmark_main("metrics_speed")()
    out = capsys.readouterr().out
    once = float(re.search(r"one pass for all labels: (\d+\.\d\d) s", out).group(1))
    each = float(re.search(r"label by label: +(\d+\.\d\d) s", out).group(1))
    assert once < 0.5 and each < 0.5
    assert "records identical: True" in out


@pytest.mark.parametrize("order", ["C", "F"])
def test_label_boxes_are_found_in_memory_order_and_are_scipys(order, monkeypatch):
    """find_objects walks an array in C order: across a Fortran-ordered one, as a NIfTI file is read, it took 1.5 s of
    512×512×300 voxels where the same memory walked as its transpose took 0.4 s. The boxes are scipy's either way."""
    from scipy import ndimage

    import medseg.metrics as metrics

    rng = np.random.default_rng(11)
    labels = np.zeros((23, 19, 17), np.uint8, order=order)
    for value in (1, 2, 5, 9):  # 3, 4, 6, 7 and 8 absent: None
        corner = [int(rng.integers(0, n - 1)) for n in labels.shape]
        labels[tuple(slice(c, c + int(rng.integers(1, 8))) for c in corner)] = value
    labels[0, -1, 0] = 9  # on the volume's faces
    walked = []
    real = ndimage.find_objects
    monkeypatch.setattr(ndimage, "find_objects", lambda a: walked.append(a.flags.c_contiguous) or real(a))
    boxes = metrics._label_boxes(labels)
    assert walked == [True]
    assert boxes == real(np.ascontiguousarray(labels))
    assert boxes[2] is None and boxes[8][0].start == 0 and boxes[8][1].stop == 19  # value 3 absent; 9 on the faces


def _random_labels(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A small random reference of labels 1–4 (boxes, some on the volume's faces, single voxels, speckle) and a
    prediction made from it (the same voxels for some labels, shifted, speckled, a label missed, one only predicted),
    sometimes one voxel thick along an axis, on an anisotropic grid."""
    rng = np.random.default_rng(seed)
    shape = [int(rng.integers(2, 15)) for _ in range(3)]
    if rng.random() < 0.25:
        shape[int(rng.integers(0, 3))] = 1
    ref = np.zeros(shape, np.uint8)
    for value in range(1, 5):
        kind = rng.integers(0, 4)
        if kind == 0:  # a box, touching the faces where its corner falls there
            corner = [int(rng.integers(0, n)) for n in shape]
            ref[tuple(slice(c, c + int(rng.integers(1, 6))) for c in corner)] = value
        elif kind == 1:  # a single voxel
            ref[tuple(int(rng.integers(0, n)) for n in shape)] = value
        elif kind == 2:  # speckle
            ref[rng.random(shape) < 0.08] = value
        # kind 3: absent from the reference
    pred = ref.copy()
    for value in range(1, 5):
        how = rng.integers(0, 5)
        mask = ref == value
        if how == 1:  # shifted along an axis (wrapping round)
            pred[mask] = 0
            pred[np.roll(mask, int(rng.integers(-2, 3)), axis=int(rng.integers(0, 3)))] = value
        elif how == 2:  # speckled boundary
            pred[(rng.random(shape) < 0.1) & ((pred == value) | (pred == 0))] = value
        elif how == 3:  # missed
            pred[mask] = 0
        elif how == 4 and not mask.any():  # only predicted
            pred[tuple(int(rng.integers(0, n)) for n in shape)] = value
        # how 0: the same voxels
    spacing = rng.choice([0.5, 0.7, 1.0, 2.5], size=3)
    return pred, ref, np.diag([*spacing, 1.0])


@pytest.mark.parametrize("seed", range(30))
def test_fortran_ordered_labels_score_as_label_by_label_in_c_order(seed):
    """The speed-ups of scoring a NIfTI volume as read (Fortran order: its values without a C-ordered copy, its boxes
    found in memory order, labels of identical masks given distance 0 without MONAI) change no figure: the record is
    the one of the path that counts, boxes and measures each label on its own (uint64 arrays in C order), on
    random labels touching the faces, single voxels, empty masks on either side and 2D images."""
    import medseg.metrics as metrics
    import medseg.surface_metrics as surface_metrics

    pred, ref, affine = _random_labels(seed)
    labels = {value: f"l{value}" for value in range(5)}
    fast = score(np.asfortranarray(pred), np.asfortranarray(ref), affine, labels)
    each = score(np.ascontiguousarray(pred, np.uint64), np.ascontiguousarray(ref, np.uint64), affine, labels)
    assert json.dumps(fast, sort_keys=True) == json.dumps(each, sort_keys=True)
    for value, entry in fast.items():
        if entry["status"] == "ok" and np.array_equal(pred == int(value), ref == int(value)):
            box = metrics._bounding_box(ref == int(value))
            assert (entry["hd95_mm"], entry["assd_mm"]) == surface_metrics._surface_metrics(
                pred, ref, int(value), box, np.diag(affine)[:3]) == (0.0, 0.0)


def test_labels_of_the_same_voxels_are_scored_without_surface_distances(monkeypatch):
    """A label whose predicted voxels are its reference's scores HD95 and ASSD 0, as MONAI's distances give them,
    without finding its edges (nor importing MONAI, seconds of an evaluate); the others are measured."""
    import medseg.metrics as metrics

    ref = np.zeros((12, 10, 8), np.uint8)
    ref[2:7, 3:8, 1:5], ref[0, 0, 0] = 1, 2  # label 2 on the volume's corner
    pred = ref.copy()
    pred[8:10, 2:4, 2:4] = 3
    ref[8:11, 2:4, 2:4] = 3
    measured = []
    real = metrics._surface_metrics
    monkeypatch.setattr(metrics, "_surface_metrics", lambda p, r, value, *rest: measured.append(value) or real(
        p, r, value, *rest))
    entries = score(pred, ref, np.diag([0.7, 0.7, 2.5, 1.0]), {0: "bg", 1: "a", 2: "b", 3: "c"})
    assert measured == [3]
    assert [(entries[v]["dice"], entries[v]["hd95_mm"], entries[v]["assd_mm"]) for v in "12"] == [(1.0, 0.0, 0.0)] * 2
    assert entries["3"]["hd95_mm"] == 0.7 and entries["3"]["status"] == "ok"


@pytest.mark.parametrize("seed", range(12))
def test_labels_are_counted_inside_their_boxes_where_these_are_small(seed):
    """Where the labels' boxes together hold fewer voxels than the volume, each is counted inside its boxes (np.bincount
    cast every voxel of a 512×512×300 CT to int64 for three organs in 5 % of it); the counts are numpy's either way,
    boxes on the faces, meeting or apart, a label in one array only, a stray voxel making a box span the volume."""
    from medseg.metrics import _LabelCounts

    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(20, 40)), int(rng.integers(20, 40)), int(rng.integers(5, 20)))
    pred, ref = np.zeros(shape, np.uint16), np.zeros(shape, np.uint16)
    for array in (pred, ref):
        for value in rng.choice(np.arange(1, 7), size=int(rng.integers(1, 6)), replace=False):
            corner = [int(rng.integers(0, n)) for n in shape]
            array[tuple(slice(c, c + int(rng.integers(1, 6))) for c in corner)] = value
    pred[rng.random(shape) < 0.002] = 2  # a few stray voxels of label 2
    if seed % 2:
        pred, ref = np.asfortranarray(pred), np.asfortranarray(ref)
    values = [-1, *range(1, 9)]  # (background is not scored)
    counted = _LabelCounts(pred, ref, values)
    assert counted.fast
    stray = bool(seed % 3 == 0)
    if stray:  # label 2 everywhere: the boxes hold more voxels than the volume, counted in one pass
        pred[rng.random(shape) < 0.2] = 2
        counted = _LabelCounts(pred, ref, values)
    assert counted.boxed is not stray
    for value in values:
        p, r = pred == value, ref == value
        expected = (int(p.sum()), int(r.sum()), int((p & r).sum()))
        assert counted.counts(value) == expected, value


def test_a_reference_box_with_one_voxel_outside_the_grid_says_one_voxel():
    """The record's note read "its 1 voxels outside the grid"."""
    from medseg.metrics import sub_box_note

    one = sub_box_note({"shape": [2, 2, 2], "offset_voxels": [-1, 0, 0], "voxels_outside_grid": 1})
    assert "; its 1 voxel outside the grid, all label 0, cropped off; " in one
    two = sub_box_note({"shape": [2, 2, 2], "offset_voxels": [-1, 0, 0], "voxels_outside_grid": 2})
    assert "; its 2 voxels outside the grid, all label 0, cropped off; " in two


@pytest.mark.parametrize("case_id, shown", [(7, "7 (int)"), (7.0, "7.0 (float)"), (True, "True (bool)"),
                                            (b"c1", "b'c1' (bytes)"), (Path("c1"), "PosixPath('c1') (PosixPath)")])
def test_a_case_id_that_is_not_text_is_refused_where_it_is_given(tmp_path, case_id, shown):
    """A case id of another type than str went into the record as it was: 7 was written as the number 7 (the
    report's cohort table then named the case after its file), a Path raised "Object of type PosixPath is not JSON
    serializable" only as the record was written. It is refused as evaluate_volumes and score_prediction are called,
    naming the value and its type, before any file is read; None is no case id (``null``) and a str subclass is
    written as plain text."""
    import numpy as np

    from medseg.scoring import score_prediction

    if isinstance(case_id, Path) and os.name == "nt":
        shown = shown.replace("PosixPath", "WindowsPath")
    volume = Volume(np.zeros((4, 4, 4), np.uint8), np.eye(4))
    with pytest.raises(InputError) as refused:
        evaluate_volumes(volume, volume, {1: "one"}, case_id=case_id)
    assert str(refused.value) == f"case_id {shown}: a case id is text; give a str, or None for none"
    with pytest.raises(InputError) as refused:  # before any file is read: these are not there
        score_prediction(tmp_path / "missing_seg.nii.gz", tmp_path / "missing.nii.gz", case_id)
    assert str(refused.value) == f"case_id {shown}: a case id is text; give a str, or None for none"
    assert evaluate_volumes(volume, volume, {1: "one"})["case_id"] is None
    written = evaluate_volumes(volume, volume, {1: "one"}, case_id=np.str_("c1"))["case_id"]
    assert (written, type(written)) == ("c1", str)
    assert json.loads(metrics_json(evaluate_volumes(volume, volume, {1: "one"}, case_id=None)))["case_id"] is None


def test_a_record_as_one_flat_row_per_label_for_a_table():
    """A notebook builds a table (a pandas DataFrame, a csv.DictWriter) of many cases from flat rows: the record's
    labels are a dict of dicts keyed by text, some of whose values are dicts again (false_positive_in_ml)."""
    from medseg.metrics import metrics_rows

    pred = np.zeros((12, 12, 6), np.uint8)
    ref = np.zeros_like(pred)
    pred[2:6, 2:6, 1:4], ref[2:6, 2:7, 1:4] = 1, 1
    pred[7:9, 7:9, 2:4], ref[7:9, 5:9, 2:4] = 2, 2
    pred[5, 2:4, 1] = 2  # label 2 where the reference has 1: the record's false_positive_in_ml, a dict
    record = evaluate_volumes(Volume(pred, np.eye(4)), Volume(ref, np.eye(4)), {0: "bg", 1: "a", 2: "b", 3: "c"},
                              case_id="s1")
    assert record["labels"]["2"]["false_positive_in_ml"] == {"1": 0.002}
    rows = metrics_rows(record)
    assert [(row["case_id"], row["label"], row["name"], row["status"]) for row in rows] == [
        ("s1", 1, "a", "ok"), ("s1", 2, "b", "ok"), ("s1", 3, "c", "both_empty")]
    for value, row in zip((1, 2), rows):
        p, r = pred == value, ref == value
        assert row["dice"] == pytest.approx(2 * (p & r).sum() / (p.sum() + r.sum()))
        assert row["pred_volume_ml"] == p.sum() / 1000 and row["ref_volume_ml"] == r.sum() / 1000
    assert math.isnan(rows[2]["dice"]) and math.isnan(rows[2]["hd95_mm"])  # NaN, as the record has it
    assert "false_positive_in_ml" not in rows[1]
    read_back = metrics_rows(json.loads(metrics_json(record)))  # a _metrics.json read back: null as None
    assert read_back[2]["dice"] is None and read_back[:2] == rows[:2]
    for row in rows:
        assert all(isinstance(value, (str, int, float)) for value in row.values()), row
        assert set(row) >= {"dice", "hd95_mm", "assd_mm", "pred_volume_ml", "ref_volume_ml"}
    with pytest.raises(InputError, match="not a medseg-metrics/1 record"):
        metrics_rows({"labels": []})


def test_a_record_whose_labels_are_not_label_values_with_their_metrics_is_an_input_error():
    """metrics_rows says it raises an InputError for what is no medseg-metrics/1 record: a label keyed by a name
    (another tool's JSON) failed as a bare ValueError, "invalid literal for int()", and a label without its metrics as
    an AttributeError of NoneType, neither saying which label of which case."""
    from medseg.metrics import metrics_rows

    with pytest.raises(InputError, match=r"^label 'liver' of case c1: not a medseg-metrics/1 record's label \(a label "
                                         r"value, a whole number, mapping to its metrics\)$"):
        metrics_rows({"case_id": "c1", "labels": {"1": {"dice": 1.0}, "liver": {"dice": 0.5}}})
    with pytest.raises(InputError, match=r"^label '2' of the metrics record: not a medseg-metrics/1 record's label"):
        metrics_rows({"labels": {"2": None}})


def test_a_record_of_no_labels_is_one_row_saying_so():
    """Two empty masks scored without label names hold no label: metrics_rows gave no row, and the case dropped out
    of a table of many cases without a word. It is one row, label 0 (background, the one label it holds), status
    no_labels, the figures None. Its label was None, which turned a table's label column into floats (1 -> 1.0, the
    no-label row NaN): the label is an int in every row, and the status alone tells the row apart."""
    from medseg.metrics import metrics_rows

    empty = np.zeros((8, 8, 4), np.uint8)
    record = evaluate_volumes(Volume(empty, np.eye(4)), Volume(empty, np.eye(4)), {0: "background"}, case_id="s2")
    assert record["labels"] == {}
    assert metrics_rows(record) == [{"case_id": "s2", "label": 0, "name": None, "dice": None, "hd95_mm": None,
                                     "assd_mm": None, "status": "no_labels"}]
    assert metrics_rows(json.loads(metrics_json(record))) == metrics_rows(record)  # a _metrics.json read back
    assert all(type(row["label"]) is int for row in metrics_rows(record))
    pandas = pytest.importorskip("pandas")
    pred, ref = np.zeros((8, 8, 4), np.uint8), np.zeros((8, 8, 4), np.uint8)
    pred[2:5, 2:5, 1:3] = ref[2:6, 2:5, 1:3] = 1
    scored = evaluate_volumes(Volume(pred, np.eye(4)), Volume(ref, np.eye(4)), {0: "bg", 1: "a"}, case_id="s1")
    table = pandas.DataFrame([row for one in (scored, record) for row in metrics_rows(one)])
    assert (str(table["label"].dtype), table["label"].tolist()) == ("int64", [1, 0])
    assert table.loc[table["status"] != "no_labels", "label"].tolist() == [1]
