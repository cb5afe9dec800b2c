"""The QA flags (medseg.report.flags): per-case rules, the cohort outlier rules, the worst-first order, and
training images judged apart from new cases."""

from __future__ import annotations

import html as html_module
import json
import re
import shutil

import nibabel as nib
import numpy as np
import pytest
from report_cases import (
    CROSS,
    EVIL,
    LABELS,
    flag_set,
    now,
    phantom,
    read_tsv,
    shifted,
    write_case,
    write_case_arrays,
    write_failure,
)
from scipy import ndimage as ndi

from medseg.metrics import evaluate_volumes, metrics_json
from medseg.report.build import build_report
from medseg.report.flags import robust_z
from medseg.volume import Volume


def test_worst_first_order_and_flags(built):
    rows = read_tsv(built.table)
    assert [row["rank"] for row in rows] == [str(i) for i in range(1, 11)]
    assert rows[0]["case_id"] == "crashed" and rows[0]["status"] == "failed"
    assert rows[0]["failed_stage"] == "infer" and rows[0]["error_type"] == "RuntimeError"
    assert flag_set(rows[0]) == {"failed"}
    assert rows[1]["case_id"] == "bad"
    # the ball moved 8 mm: HD95 7 mm above the median, but the scale is at least a voxel (2 mm here): z 3.5
    assert flag_set(rows[1]) == {"low_dice(ball)", "touches_border(ball)", "empty_prediction(box)"}
    assert float(rows[1]["box_dice"]) == 0.0 and rows[1]["box_status"] == "empty_prediction"
    assert rows[1]["box_hd95_mm"] == ""  # undefined: empty cell
    by_id = {row["case_id"]: row for row in rows}
    assert flag_set(by_id["noref_big"]) == {"volume_outlier(ball)"}
    assert by_id["noref_big"]["status"] == "no_reference" and by_id["noref_big"]["ball_dice"] == ""
    # flagged cases before clean ones, so a flagged case without a reference is not ranked below clean ones;
    # within each group by lowest Dice, cases without a Dice last
    flagged = [bool(row["flags"]) for row in rows[1:]]
    assert flagged == sorted(flagged, reverse=True) and by_id["noref_big"]["rank"] == str(1 + sum(flagged))
    for group in (True, False):
        dice = [float(row["min_dice"]) for row in rows[1:] if bool(row["flags"]) == group and row["min_dice"]]
        assert dice == sorted(dice)
    assert by_id[EVIL]["min_dice"] == "1" and flag_set(by_id[EVIL]) == set()


def test_a_label_no_training_case_held_is_not_flagged_empty_without_a_reference(tmp_path):
    """A model of labels 1, 3, 7 declares 2 and 4-6 to fill the gaps (as `medseg train` advises): no training case
    holds them, and their sidecar says so (labels_not_trained). Their empty prediction is expected, so a case
    without a reference is not flagged for it; a label the model did learn still is, and so is a package that does
    not record it. Before, every unreferenced case was flagged, four times."""
    named = {0: "background", 1: "ball", 2: "gap", 3: "box"}
    for case_id, seed in (("learnt", 0), ("older", 1)):
        image, labels, affine = phantom(seed)
        prediction = np.where(labels == 2, 3, labels).astype(np.uint8)  # ball 1, box 3, nothing of 2
        write_case_arrays(tmp_path, case_id, image, labels, prediction, affine, reference=False, labels_named=named)
    sidecar = tmp_path / "cases" / "learnt" / "learnt_seg.json"
    record = json.loads(sidecar.read_text())
    record["labels_not_trained"] = [2]
    sidecar.write_text(json.dumps(record))
    outputs = build_report(tmp_path, tmp_path / "report.html")
    rows = {row["case_id"]: row for row in read_tsv(outputs.table)}
    assert "empty_prediction" not in rows["learnt"]["flags"]
    assert flag_set(rows["older"]) >= {"empty_prediction(gap)"}  # no record: as before
    # a learnt label predicted empty is still flagged
    record["label_volume_ml"]["3"] = 0.0
    sidecar.write_text(json.dumps(record))
    again = build_report(tmp_path, tmp_path / "report.html", overwrite=True)
    rows = {row["case_id"]: row for row in read_tsv(again.table)}
    assert "empty_prediction(box)" in flag_set(rows["learnt"])
    assert "empty_prediction(gap)" not in rows["learnt"]["flags"]


def test_a_label_no_training_case_held_is_flagged_where_it_is_predicted(tmp_path):
    """The other side of not flagging an untrained label's empty prediction: a model that predicts a label no
    training case held (labels_not_trained) found something it never learnt. Without a reference no flag said so;
    with one, only false_positive, as for any label."""
    named = {0: "background", 1: "ball", 2: "gap", 3: "box"}
    for case_id, seed, reference in (("bare", 0, False), ("scored", 1, True), ("older", 2, False)):
        image, labels, affine = phantom(seed)
        truth = np.where(labels == 2, 3, labels).astype(np.uint8)  # ball 1, box 3: no gap in the reference
        prediction = truth.copy()
        prediction[tuple(np.argwhere(labels == 1)[:40].T)] = 2  # part of the ball predicted as the gap
        write_case_arrays(tmp_path, case_id, image, truth, prediction, affine, reference=reference,
                          labels_named=named)
        if case_id != "older":  # an older sidecar, without the record: as before
            sidecar = tmp_path / "cases" / case_id / f"{case_id}_seg.json"
            record = json.loads(sidecar.read_text())
            record["labels_not_trained"] = [2]
            sidecar.write_text(json.dumps(record))
    outputs = build_report(tmp_path, tmp_path / "report.html")
    rows = {row["case_id"]: row for row in read_tsv(outputs.table)}
    assert "untrained_label(gap)" in flag_set(rows["bare"])
    assert {"untrained_label(gap)", "false_positive(gap)"} <= flag_set(rows["scored"])
    assert not any(flag.startswith("untrained_label") for flag in flag_set(rows["older"]))
    page = outputs.html.read_text()
    assert "gap: " in page and "ml predicted of a label no training case held" in page


def test_robust_z_and_the_outlier_rule():
    z = robust_z(np.array([1.0, 1.1, 0.9, 1.0, 1.05, 3.0]))
    # median 1.025, MAD 0.05 -> 0.6745 * (3 - 1.025) / 0.05
    assert z[-1] == pytest.approx(0.6745 * 1.975 / 0.05)
    assert abs(z[0]) < 1
    # MAD 0 (most values equal): the mean absolute deviation stands in, 1.2533·0.75
    assert robust_z(np.array([2.0, 2.0, 2.0, 5.0]))[-1] == pytest.approx(3.0 / (1.253314 * 0.75))
    assert robust_z(np.array([2.0, 2.0, 2.0, 2.0])) is None  # all equal: no outlier can be named
    # a floor on the scale (one voxel of HD95): 2 mm against a median of 1 mm is one voxel step, z 1
    assert robust_z(np.array([1.0] * 11 + [2.0]), min_scale=1.0)[-1] == 1.0


def test_false_positive_and_duplicate_id_flags(tmp_path):
    folder = write_case(tmp_path, "fp", 0, "exact")
    image, labels, affine = phantom(0)
    no_box = np.where(labels == 2, 0, labels).astype(np.uint8)  # the reference has no box, the prediction has
    seg = folder / "fp_seg.nii.gz"
    metrics = evaluate_volumes(Volume(np.asanyarray(nib.load(seg).dataobj), affine, source=seg),
                               Volume(no_box, affine, source="ref"), LABELS, case_id="fp")
    (folder / "fp_metrics.json").write_text(metrics_json(metrics))
    shutil.copytree(folder, tmp_path / "rerun" / "fp")  # the same case id in a second folder
    rows = read_tsv(build_report(tmp_path, tmp_path / "r.html").table)
    assert [row["case_id"] for row in rows] == ["fp", "fp"]
    for row in rows:
        assert flag_set(row) == {"false_positive(box)", "duplicate_id"}
        assert row["box_status"] == "false_positive" and float(row["box_dice"]) == 0.0
        assert row["ball_dice"] == "1"


def test_a_label_image_given_as_the_input_is_flagged(tmp_path):
    """Segmented from a label file (the sheet's image and reference columns swapped): infer's note becomes a flag."""
    folder = write_case(tmp_path, "swapped", 3, "exact")
    sidecar_path = folder / "swapped_seg.json"
    sidecar = json.loads(sidecar_path.read_text())
    note = "its voxels hold only the values 0, 1, 2 (a sample across the volume): a label image given as the input?"
    sidecar["input_info"] = {"label_like_note": note}
    sidecar_path.write_text(json.dumps(sidecar))
    write_case(tmp_path, "fine", 4, "exact")
    outputs = build_report(tmp_path, tmp_path / "report.html")
    rows = {row["case_id"]: row for row in read_tsv(outputs.table)}
    assert flag_set(rows["swapped"]) == {"label_like_input"} and flag_set(rows["fine"]) == set()
    assert f"input {note}" in html_module.unescape(outputs.html.read_text())


def test_input_unlike_the_training_volumes_is_flagged(tmp_path):
    folder = write_case(tmp_path, "wide", 3, "exact")
    sidecar_path = folder / "wide_seg.json"
    sidecar = json.loads(sidecar_path.read_text())
    sidecar["input_check"] = {"extent_mm": [100.0, 50.0, 36.0], "within_training_range": False,
                              "outside": ["x 100 mm against 31–43 mm trained"]}
    sidecar_path.write_text(json.dumps(sidecar))
    write_case(tmp_path, "fine", 4, "exact")
    outputs = build_report(tmp_path, tmp_path / "report.html")
    rows = {row["case_id"]: row for row in read_tsv(outputs.table)}
    assert flag_set(rows["wide"]) == {"unlike_training"} and flag_set(rows["fine"]) == set()
    html = outputs.html.read_text()
    assert "field of view unlike the model&#x27;s training volumes: x 100 mm against 31–43 mm trained" in html


def test_an_input_of_another_modality_is_flagged_with_its_reasons(tmp_path):
    folder = write_case(tmp_path, "ct", 3, "exact")
    sidecar_path = folder / "ct_seg.json"
    sidecar = json.loads(sidecar_path.read_text())
    sidecar["input_check"] = {"extent_mm": [36.0, 50.0, 36.0], "within_training_range": False,
                              "reasons": ["modality", "intensity"],
                              "outside": ["DICOM Modality CT against MR trained",
                                          "intensity 1st percentile -1024, negative, where every training image's "
                                          "was at least 6"]}
    sidecar_path.write_text(json.dumps(sidecar))
    unknown = write_case(tmp_path, "unknown", 4, "exact")  # intensities the package cannot know: no flag
    sidecar = json.loads((unknown / "unknown_seg.json").read_text())
    sidecar["input_check"] = {"within_training_range": None, "reasons": [], "outside": [], "unknown": ["intensity"]}
    (unknown / "unknown_seg.json").write_text(json.dumps(sidecar))
    outputs = build_report(tmp_path, tmp_path / "report.html")
    rows = {row["case_id"]: row for row in read_tsv(outputs.table)}
    assert flag_set(rows["ct"]) == {"unlike_training"} and flag_set(rows["unknown"]) == set()
    html = html_module.unescape(outputs.html.read_text())
    assert ("unlike the model's training images: DICOM Modality CT against MR trained; intensity 1st percentile "
            "-1024, negative, where every training image's was at least 6") in html
    assert "field of view unlike" not in html


def test_a_far_island_is_a_distance_outlier_though_dice_stays_high(tmp_path):
    image, labels, affine = phantom(0, shape=(40, 34, 18))
    for index in range(6):
        prediction = labels.copy()
        if index == 5:
            prediction[34:38, 28:32, 1:3] = 1  # 32 voxels some 25 mm from the ball: 1 in 10 of its surface
        write_case_arrays(tmp_path, f"c{index}", image + index, labels, prediction, affine)  # six scans
    built = build_report(tmp_path, tmp_path / "report.html")
    rows = {row["case_id"]: row for row in read_tsv(built.table)}
    # the other five are identical (MAD 0): the mean absolute deviation stands in, and the scale is at least a
    # voxel; the island adds 7 % to the ball's volume, within a tenth of the median (the volume scale's floor)
    assert float(rows["c5"]["ball_dice"]) > 0.95
    assert flag_set(rows["c5"]) == {"distance_outlier(ball)"}
    assert rows["c5"]["rank"] == "1" and all(flag_set(rows[f"c{i}"]) == set() for i in range(5))


@pytest.mark.parametrize("rows_added, flagged", [
    (1, set()),  # +14 %: people differ by more; five near-identical volumes made it z 24
    (3, {"volume_outlier(box)", "volume_difference_outlier(box)", "dice_outlier(box)"}),  # +43 %: z 4.2 against a
    # scale of 10 %; its Dice of 0.82 against five near 1
])
def test_the_volume_outlier_scale_is_at_least_a_tenth_of_the_median(tmp_path, rows_added, flagged):
    """A small cohort's MAD can be far below the natural spread of volumes: five boxes within four voxels of each
    other (MAD 1.5 voxels) made a box 14 % larger a volume outlier at z 24."""
    image, labels, affine = phantom(0)
    for index in range(6):
        prediction = labels.copy()
        prediction[25, 20:20 + index, 5] = 2  # 392 to 396 voxels
        if index == 5:
            prediction[25:25 + rows_added, 20:28, 5:12] = 2  # 56 voxels a row
        write_case_arrays(tmp_path, f"c{index}", image + index, labels, prediction, affine)
    built = build_report(tmp_path, tmp_path / "report.html")
    rows = {row["case_id"]: row for row in read_tsv(built.table)}
    assert float(rows["c5"]["box_pred_volume_ml"]) == pytest.approx((392 + 56 * rows_added) * 2 / 1000)
    assert flag_set(rows["c5"]) == flagged and all(flag_set(rows[f"c{i}"]) == set() for i in range(5))
    assert "the scale is never below 10% of the median (within 35% of the median is never an outlier" in \
        built.html.read_text(encoding="utf-8")


def test_a_flagged_case_without_reference_is_ranked_and_drawn_before_clean_ones(tmp_path):
    for seed in range(4):
        write_case(tmp_path, f"clean{seed}", seed, "exact")
    write_case(tmp_path, "noref_big", 20, "dilate3", reference=False)
    write_case(tmp_path, "noref_a", 21, "exact", reference=False)
    write_case(tmp_path, "noref_b", 22, "exact", reference=False)
    built = build_report(tmp_path, tmp_path / "report.html", max_overlays=1)
    rows = read_tsv(built.table)
    assert rows[0]["case_id"] == "noref_big" and flag_set(rows[0]) == {"volume_outlier(ball)"}
    page = built.html.read_text(encoding="utf-8")
    card = page[page.index("<h3>#1 noref_big "):]
    assert ('alt="overlay of noref_big: sagittal, coronal and axial slices of the input with the predicted labels, '
            'through label 1 ball; flagged: volume_outlier(ball)"') in card[: card.index('<div class="case')]
    assert "<td>in both</td>" in page and "<td>ok</td>" not in page  # a label's status, as a reader reads it


def test_a_wrong_reference_and_a_repeated_input_are_flagged(tmp_path):
    """A sheet row with another case's image and a reference that does not belong to it scored Dice 0.8 (above
    the threshold) and passed as clean: the paired volume difference and the repeated input now flag it."""
    for seed in range(6):
        image, labels, affine = phantom(seed)
        write_case_arrays(tmp_path, f"c{seed}", image, labels, labels.copy(), affine)
    image, labels, affine = phantom(0)  # c0's scan again
    wrong = labels.copy()
    wrong[ndi.binary_dilation(labels == 1, CROSS) & (labels == 0)] = 1  # a larger ball: not this scan's reference
    write_case_arrays(tmp_path, "wrong", image, wrong, labels.copy(), affine)
    built = build_report(tmp_path, tmp_path / "report.html")
    rows = {row["case_id"]: row for row in read_tsv(built.table)}
    assert float(rows["wrong"]["ball_dice"]) > 0.7
    assert flag_set(rows["wrong"]) == {"volume_difference_outlier(ball)", "dice_outlier(ball)", "duplicate_input"}
    assert flag_set(rows["c0"]) == {"duplicate_input"} and all(flag_set(rows[f"c{i}"]) == set() for i in range(1, 6))
    page = built.html.read_text(encoding="utf-8")
    metrics = json.loads((tmp_path / "cases" / "wrong" / "wrong_metrics.json").read_text())["labels"]["1"]
    percent = 100 * (metrics["pred_volume_ml"] - metrics["ref_volume_ml"]) / metrics["ref_volume_ml"]
    signed = f"{percent:+.1f}".replace("-", "\u2212")  # the report's minus sign
    assert percent < 0 and f"ball predicted − reference volume {signed} %, cohort median 0.0 %" in page
    assert "input identical to that of c0 (same SHA-256)" in page and "input identical to that of wrong" in page


def test_a_dice_far_below_the_cohorts_is_flagged_above_the_threshold(tmp_path):
    """A reference of another scan on the same grid, its structure of about the same size: Dice stayed above the
    threshold and the volumes within a few percent, and no flag said so. dice_outlier does, only above the threshold
    (below it low_dice says it)."""
    image, labels, affine = phantom(0)
    for index in range(6):
        prediction = labels.copy()
        prediction[25, 20:20 + index, 5] = 2  # Dice 1 for the ball, a hair below for the box
        write_case_arrays(tmp_path, f"c{index}", image + index, labels, prediction, affine)
    ball = shifted((labels == 1).astype(np.uint8), (2, 0, 0))  # the ball 2 mm off: same size, Dice about 0.75
    moved = np.where(ball == 1, 1, np.where(labels == 2, 2, 0)).astype(np.uint8)
    write_case_arrays(tmp_path, "other_ref", image + 10, moved, labels.copy(), affine)
    built = build_report(tmp_path, tmp_path / "report.html")
    rows = {row["case_id"]: row for row in read_tsv(built.table)}
    dice = float(rows["other_ref"]["ball_dice"])
    assert 0.7 < dice < 0.9 and flag_set(rows["other_ref"]) == {"dice_outlier(ball)"}
    assert all(flag_set(rows[f"c{i}"]) == set() for i in range(6))
    # below the threshold, low_dice alone says it
    below = build_report(tmp_path, tmp_path / "below.html", dice_threshold=0.8, overwrite=True)
    assert flag_set({r["case_id"]: r for r in read_tsv(below.table)}["other_ref"]) == {"low_dice(ball)"}
    # a cohort scored near 0.99 throughout: 0.97 is a dip of one scale (0.02), not an outlier
    from medseg.report.flags import MIN_DICE_SCALE, robust_z

    z = robust_z(np.array([0.99, 0.99, 0.991, 0.989, 0.99, 0.97]), MIN_DICE_SCALE)
    assert z[-1] == pytest.approx(-1.0) and robust_z(np.array([0.99, 0.99, 0.991, 0.989, 0.99, 0.97]))[-1] < -3.5
    page = html_module.unescape(built.html.read_text(encoding="utf-8"))
    assert f"ball Dice {dice:.3f}, cohort median 1.000 (robust z \u2212" in page


def test_flags_match_labels_by_value_when_two_share_a_name(tmp_path):
    """A model may call two labels alike (left and right "hippocampus"). Flags were matched to labels by name: one
    label's Dice below the threshold hid the other's dice_outlier, and the overlay's border faces went by name."""
    same = {0: "background", 1: "part", 2: "part"}
    image, labels, affine = phantom(0)
    for index in range(6):
        prediction = labels.copy()
        prediction[25, 20:20 + index, 5] = 2
        write_case_arrays(tmp_path, f"c{index}", image + index, labels, prediction, affine, labels_named=same)
    ball = shifted((labels == 1).astype(np.uint8), (2, 0, 0))  # value 1: Dice about 0.75, above the threshold
    box = shifted((labels == 2).astype(np.uint8), (3, 0, 0))  # value 2: Dice about 0.57, below it
    prediction = np.where(ball == 1, 1, np.where(box == 1, 2, 0)).astype(np.uint8)
    write_case_arrays(tmp_path, "odd", image + 10, labels, prediction, affine, labels_named=same)
    built = build_report(tmp_path, tmp_path / "report.html")
    rows = {row["case_id"]: row for row in read_tsv(built.table)}
    metrics = json.loads((tmp_path / "cases" / "odd" / "odd_metrics.json").read_text())["labels"]
    assert 0.7 < metrics["1"]["dice"] < 0.9 and metrics["2"]["dice"] < 0.7
    assert flag_set(rows["odd"]) == {"dice_outlier(1_part)", "low_dice(2_part)"}  # as the columns tell them apart
    assert {"1_part_dice", "2_part_dice"} <= set(rows["odd"])
    from medseg.report.checks import check_segmentation
    from medseg.report.collect import collect_results
    from medseg.report.flags import flag_cases

    cases = collect_results(tmp_path)
    flags = flag_cases(cases, [check_segmentation(case) for case in cases])
    odd = next(found for case, found in zip(cases, flags) if case.case_id == "odd")
    assert {(flag.code, flag.value) for flag in odd} == {("dice_outlier", "1"), ("low_dice", "2")}


def test_a_repeated_input_is_flagged_when_the_wrong_reference_failed_scoring(tmp_path):
    """A sheet row with c0's image and another case's reference on another grid fails at scoring: it was not
    compared for duplicate_input, though its sidecar records the input it segmented. A case that failed before
    segmenting keeps no claim on its (older) sidecar's input."""
    for seed in range(3):
        image, labels, affine = phantom(seed)
        write_case_arrays(tmp_path, f"c{seed}", image, labels, labels.copy(), affine)
    image, labels, _ = phantom(0)
    for case_id, stage in (("wrong", "evaluate"), ("older", "infer")):
        write_case_arrays(tmp_path, case_id, image, labels, labels.copy(), phantom(0)[2], reference=False,
                          name=f"{case_id}_input")
        write_failure(tmp_path, case_id, stage=stage, error_type="GeometryError")
    built = build_report(tmp_path, tmp_path / "r.html")
    rows = {row["case_id"]: row for row in read_tsv(built.table)}
    assert rows["wrong"]["status"] == rows["older"]["status"] == "failed"
    assert flag_set(rows["wrong"]) == {"failed", "geometry", "duplicate_input"}
    assert flag_set(rows["older"]) == {"failed", "geometry"}
    assert flag_set(rows["c0"]) == {"duplicate_input"}
    page = built.html.read_text(encoding="utf-8")
    assert "input identical to that of wrong (same SHA-256)" in page and "that of older" not in page


def test_two_stacks_of_one_dicom_file_are_not_duplicate_inputs(tmp_path):
    """A DICOM input's digest covers its series' files: two stacks split out of one multi-frame file share it."""
    image, labels, affine = phantom(1)
    for case_id, key in (("part_a", "9-1"), ("part_b", "9-2"), ("again", "9-1")):
        folder = write_case_arrays(tmp_path, case_id, image, labels, labels.copy(), affine, name="same")
        sidecar = folder / f"{case_id}_seg.json"
        record = json.loads(sidecar.read_text())
        record["input_info"] = {"format": "dicom", "series_key": key}
        sidecar.write_text(json.dumps(record))
    rows = {row["case_id"]: row for row in read_tsv(build_report(tmp_path, tmp_path / "r.html").table)}
    assert flag_set(rows["part_b"]) == set()
    assert flag_set(rows["part_a"]) == flag_set(rows["again"]) == {"duplicate_input"}


def test_negative_amounts_in_flags_use_a_typographic_minus():
    """Signed figures in flag messages read as the tables do (U+2212); a label name keeps its hyphen."""
    from medseg.report.flags import _amount, _signed

    assert _amount(-12.34, "%") == "\u221212.3 %" and _amount(12.34, "%") == "+12.3 %"
    assert _amount(-0.01, "%") == "0.0 %" and _amount(0.8123, "") == "0.812"  # a Dice: no unit
    assert _amount(-0.5, "mm") == "\u22120.5 mm" and _signed(-3.14) == "\u22123.1" and _signed(2.0) == "+2.0"
    assert _amount(-2.5e-05, "mm") == "\u22122.5e-05 mm"  # the exponent keeps its sign
    # a flagged z never reads as sitting on the limit (|z| > 3.5 flags)
    assert _signed(-3.516, 3.5) == "\u22123.52" and _signed(4.04, 3.5) == "+4.0"
    assert _signed(3.5000004, 3.5) == "+3.500000"  # six decimals at most


def test_metrics_without_any_label_are_flagged_nothing_scored(tmp_path):
    """A metrics file of no labels (evaluate without --model on two empty images) counted as a clean scored case."""
    folder = write_case(tmp_path, "empty", 0, "exact")
    metrics = json.loads((folder / "empty_metrics.json").read_text())
    metrics["labels"] = {}
    (folder / "empty_metrics.json").write_text(json.dumps(metrics))
    write_case(tmp_path, "fine", 1, "exact")
    outputs = build_report(tmp_path, tmp_path / "r.html")
    rows = {row["case_id"]: row for row in read_tsv(outputs.table)}
    assert flag_set(rows["empty"]) == {"nothing_scored"} and flag_set(rows["fine"]) == set()
    assert rows["empty"]["status"] == "scored" and rows["empty"]["min_dice"] == ""
    assert "nothing_scored" in outputs.html.read_text()


def test_a_seg_reference_of_another_frame_of_reference_is_flagged_naming_both_uids(tmp_path):
    """A metrics record whose DICOM SEG reference states another FrameOfReferenceUID than its series' images
    (``reference_frame_of_reference_mismatch``) was a clean case in the table, its note on the card alone: it is now
    flagged, the flag naming both UIDs."""
    folder = write_case(tmp_path, "other_frame", 0, "exact")
    metrics = json.loads((folder / "other_frame_metrics.json").read_text())
    metrics["reference_frame_of_reference_mismatch"] = {"seg": "1.2.826.0.1.3680043.8.498.99",
                                                        "series": "1.2.826.0.1.3680043.8.498.2"}
    (folder / "other_frame_metrics.json").write_text(json.dumps(metrics))
    write_case(tmp_path, "fine", 1, "exact")
    outputs = build_report(tmp_path, tmp_path / "r.html", max_overlays=0)
    rows = {row["case_id"]: row for row in read_tsv(outputs.table)}
    assert flag_set(rows["other_frame"]) == {"frame_of_reference"} and flag_set(rows["fine"]) == set()
    assert ("the reference SEG&#x27;s FrameOfReferenceUID 1.2.826.0.1.3680043.8.498.99 is not that of its series&#x27; "
            "images (1.2.826.0.1.3680043.8.498.2): check that it segments this series") in outputs.html.read_text()
    summary = json.loads(outputs.summary.read_text())
    assert summary["flags"]["frame_of_reference"] == {"cases": 1, "flags": 1}


def test_a_prediction_and_reference_both_of_another_frame_of_reference_are_one_flag_naming_both(tmp_path):
    """Where both DICOM SEGs state another FrameOfReferenceUID than their series' images, the case had two
    frame_of_reference flags: ``frame_of_reference;frame_of_reference`` in cohort.tsv, which says neither which
    is which nor anything the second adds, and n_flags and summary.json's count doubled. It is one flag whose
    reason names each SEG's UID; the rule names the prediction's record key too."""
    folder = write_case(tmp_path, "both", 0, "exact")
    metrics = json.loads((folder / "both_metrics.json").read_text())
    metrics["prediction_frame_of_reference_mismatch"] = {"seg": "1.2.826.0.1.3680043.8.498.98",
                                                         "series": "1.2.826.0.1.3680043.8.498.2"}
    metrics["reference_frame_of_reference_mismatch"] = {"seg": "1.2.826.0.1.3680043.8.498.99",
                                                        "series": "1.2.826.0.1.3680043.8.498.2"}
    (folder / "both_metrics.json").write_text(json.dumps(metrics))
    outputs = build_report(tmp_path, tmp_path / "r.html", max_overlays=0)
    (row,) = read_tsv(outputs.table)
    assert (row["flags"], row["n_flags"]) == ("frame_of_reference", "1")
    summary = json.loads(outputs.summary.read_text())
    assert summary["flags"]["frame_of_reference"] == {"cases": 1, "flags": 1}
    assert "prediction_frame_of_reference_mismatch" in summary["flag_rules"]["frame_of_reference"]
    assert html_module.escape(
        "the reference SEG's FrameOfReferenceUID 1.2.826.0.1.3680043.8.498.99 and the prediction SEG's "
        "1.2.826.0.1.3680043.8.498.98 are not that of their series' images (1.2.826.0.1.3680043.8.498.2): check that "
        "they segment this series") in outputs.html.read_text()


def test_a_case_that_failed_only_at_scoring_keeps_the_flags_of_its_segmentation(tmp_path):
    """Its segmentation stands (volumes, duplicate_input), yet it showed only `failed`: an input unlike the
    model's training volumes, an empty label or a label on the border went unflagged until the failure record was
    removed."""
    folder = write_case(tmp_path, "refused", 4, "bad", reference=False)  # box missed, ball on the i- face
    sidecar = json.loads((folder / "refused_seg.json").read_text())
    sidecar["input_check"] = {"within_training_range": False, "outside": ["z 3 mm against 58.83-279.36 mm"]}
    (folder / "refused_seg.json").write_text(json.dumps(sidecar))
    label = tmp_path / "inputs" / "4_label.nii.gz"
    (folder / "refused_failed.json").write_text(json.dumps({
        "schema": "medseg-failure/1", "case_id": "refused", "input": str(tmp_path / "inputs" / "4_image.nii.gz"),
        "reference": str(label), "stage": "evaluate", "error_type": "InputError", "created": now(),
        "error": f"{label}: label values [5, 6] are not among the model's labels [0, 1, 2]"}))
    row = read_tsv(build_report(tmp_path, tmp_path / "r.html").table)[0]
    assert row["status"] == "failed" and row["failed_stage"] == "evaluate"
    assert flag_set(row) == {"failed", "unlike_training", "empty_prediction(box)", "touches_border(ball)"}


def test_training_images_are_told_apart_from_new_cases(tmp_path):
    """A cohort holding the model's training images (a 200-case hippocampus cohort held the shipped model's 160): their
    higher Dice raised the cohort's median, so ordinary held-out cases were flagged as dice_outlier, and nothing said
    that the summary's Dice was partly the training set's. The report now marks training images, gives the Dice of
    both groups, and judges accuracy outliers within each group."""
    image, labels, affine = phantom(0)
    ball = shifted((labels == 1).astype(np.uint8), (2, 0, 0))  # the ball 2 mm off: Dice about 0.75
    moved = np.where(ball == 1, 1, np.where(labels == 2, 2, 0)).astype(np.uint8)
    inside = np.argwhere(labels == 1)
    for index in range(8):  # training images, segmented almost exactly (a few ball voxels missed)
        prediction = labels.copy()
        prediction[tuple(inside[:2 * index].T)] = 0
        write_case_arrays(tmp_path, f"train{index}", image + index, labels, prediction, affine)
    for index in range(5):  # new cases, all about as good as each other
        write_case_arrays(tmp_path, f"new{index}", image + 20 + index, moved, labels.copy(), affine)

    def mark(known: bool) -> None:
        for sidecar in tmp_path.glob("cases/*/*_seg.json"):
            record = json.loads(sidecar.read_text())
            if known:
                record["in_training_set"] = record["case_id"].startswith("train")
            else:
                record.pop("in_training_set", None)
            sidecar.write_text(json.dumps(record))

    mark(known=False)  # a package that lists no training images: one pool, as before
    pooled = build_report(tmp_path, tmp_path / "pooled.html")
    rows = {row["case_id"]: row for row in read_tsv(pooled.table)}
    assert all(flag_set(rows[f"new{i}"]) == {"dice_outlier(ball)"} for i in range(5))
    assert all(rows[name]["in_training_set"] == "" for name in rows)
    page = pooled.html.read_text(encoding="utf-8")
    assert "images the model was trained on</b>" not in page and "training image</span>" not in page
    assert page.count('<td class="num odd"') == 5  # the flagged Dice cells are amber, not green

    mark(known=True)
    built = build_report(tmp_path, tmp_path / "report.html", overwrite=True)
    rows = {row["case_id"]: row for row in read_tsv(built.table)}
    assert all(flag_set(row) == set() for row in rows.values())  # each group judged against its own median
    assert {name: row["in_training_set"] for name, row in rows.items()} == {
        **{f"train{i}": "true" for i in range(8)}, **{f"new{i}": "false" for i in range(5)}}
    summary = json.loads(built.summary.read_text())
    assert summary["cases"]["in_training_set"] == 8
    known = summary["training_images"]
    assert (known["cases"], known["other_cases"]) == (8, 5)
    ball_dice = known["dice"]["1"]
    assert ball_dice["name"] == "ball" and ball_dice["training"]["n"] == 8 and ball_dice["other"]["n"] == 5
    new_dice = float(rows["new0"]["ball_dice"])
    train_dice = [float(rows[f"train{i}"]["ball_dice"]) for i in range(8)]
    assert ball_dice["training"]["mean"] == pytest.approx(np.mean(train_dice), abs=1e-6)
    assert ball_dice["other"]["mean"] == pytest.approx(new_dice)
    page = html_module.unescape(built.html.read_text(encoding="utf-8"))
    text = re.sub(r"<[^>]+>", "", page)
    assert (f"8 of 13 cases are images the model was trained on (their SHA-256 is among the training images its "
            f"package lists; marked training image below): their Dice overstates what it does on new data. Mean "
            f"Dice: ball {np.mean(train_dice):.3f} on them, {new_dice:.3f} on the others; box ") in text
    assert "Outliers of Dice, HD95 and volume difference are judged within each group." in text
    assert page.count('<span class="small muted">training image</span>') == 8  # in the case table
    assert page.count(" · training image</span>") == 8  # on the cards
    assert '<td class="num odd"' not in page


def test_volume_differences_of_training_images_and_new_cases_are_judged_apart(tmp_path):
    """As Dice: new cases segmented alike but less well than the training images (here 1-voxel over-segmentation)
    were volume_difference_outliers beside them; judged among their own kind they are not."""
    image, labels, affine = phantom(0)
    inside = np.argwhere(labels == 1)
    for index in range(8):
        prediction = labels.copy()
        prediction[tuple(inside[:2 * index].T)] = 0
        write_case_arrays(tmp_path, f"train{index}", image + index, labels, prediction, affine)
    grown = labels.copy()
    grown[ndi.binary_dilation(labels == 1, CROSS) & (labels == 0)] = 1
    for index in range(5):
        write_case_arrays(tmp_path, f"new{index}", image + 20 + index, labels, grown, affine)

    def flags(known: bool) -> dict[str, set[str]]:
        for sidecar in tmp_path.glob("cases/*/*_seg.json"):
            record = json.loads(sidecar.read_text())
            record.pop("in_training_set", None)
            if known:
                record["in_training_set"] = record["case_id"].startswith("train")
            sidecar.write_text(json.dumps(record))
        built = build_report(tmp_path, tmp_path / "r.html", overwrite=True)
        return {row["case_id"]: flag_set(row) for row in read_tsv(built.table)}

    pooled = flags(known=False)
    assert all("volume_difference_outlier(ball)" in pooled[f"new{i}"] for i in range(5)), pooled
    assert all("dice_outlier(ball)" in pooled[f"new{i}"] for i in range(5))
    apart = flags(known=True)
    # the predicted volume is the anatomy's size, pooled whatever the group: it stays an outlier
    assert all(found <= {"volume_outlier(ball)"} for found in apart.values()), apart
    assert all(apart[f"new{i}"] == {"volume_outlier(ball)"} for i in range(5))


def test_a_seg_of_another_frame_of_reference_is_told_once_on_its_card(tmp_path):
    """A case whose prediction SEG states another FrameOfReferenceUID than its series' images said so twice on its
    card: its frame_of_reference flag, and the metrics' note of it beneath (as a label-like input's note, a flag of
    its own, is not). The flag tells it; the card's other notes stay."""
    folder = write_case(tmp_path, "other_frame", 0, "exact")
    metrics = json.loads((folder / "other_frame_metrics.json").read_text())
    metrics["prediction_frame_of_reference_mismatch"] = {"seg": "1.2.826.0.1.3680043.8.498.98",
                                                         "series": "1.2.826.0.1.3680043.8.498.2"}
    metrics["notes"] = ["prediction: its FrameOfReferenceUID 1.2.826.0.1.3680043.8.498.98 is not that of the images "
                        "of /data/case (1.2.826.0.1.3680043.8.498.2), which a SEG of them shares; its frames are "
                        "placed on the images they reference, on which they lie: check that it segments this series",
                        "reference: a note of another kind"]
    (folder / "other_frame_metrics.json").write_text(json.dumps(metrics))
    page = build_report(tmp_path, tmp_path / "r.html", max_overlays=0).html.read_text()
    assert page.count("FrameOfReferenceUID 1.2.826.0.1.3680043.8.498.98 is not that of") == 3  # table, card badge, flag
    assert "is not that of the images of /data/case" not in page and "reference: a note of another kind" in page


def test_the_unlike_training_rule_names_every_check_it_flags():
    """The rule the report prints for unlike_training spoke of the field of view alone, while a case is flagged for
    a DICOM Modality or intensities unlike the training images' too."""
    from medseg.report.flags import flag_rules

    rule = flag_rules()["unlike_training"]
    assert "field of view" in rule and "DICOM Modality" in rule and "dicom_modality" in rule
    assert "intensities" in rule and "Hounsfield units" in rule
