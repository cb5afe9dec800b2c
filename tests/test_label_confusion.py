"""Labels predicted where the reference has another label: each label's false positives inside the reference's
other labels are recorded (``false_positive_in_ml``), and the report flags ``label_confusion`` where they are a
tenth or more of the prediction or of that other label, saying "swapped" where two labels took each other's place.
A left/right swap read only as two low Dice values and distance outliers, and a leak into a neighbour as a distance
outlier, with nothing naming the structure the voxels belong to."""

from __future__ import annotations

import csv
import json

import numpy as np
from folder_cases import save

from medseg.folder_scoring import score_folder
from medseg.metrics import evaluate_volumes
from medseg.volume import Volume

AFFINE = np.diag([1.0, 1.0, 2.0, 1.0])  # voxels of 2 µl


def _reference() -> np.ndarray:
    ref = np.zeros((40, 30, 10), np.uint8)
    ref[4:14, 5:25, 2:8] = 1  # left, 1200 voxels
    ref[26:36, 5:25, 2:8] = 2  # right, 1200 voxels
    ref[15:25, 5:25, 2:8] = 3  # middle, 1200 voxels, touching neither
    return ref


def test_a_swap_records_each_labels_volume_in_the_other():
    ref = _reference()
    pred = np.where(ref == 1, 2, np.where(ref == 2, 1, ref)).astype(np.uint8)
    labels = evaluate_volumes(Volume(pred, AFFINE), Volume(ref, AFFINE), {1: "left", 2: "right", 3: "middle"})["labels"]
    assert labels["1"]["false_positive_in_ml"] == {"2": 2.4}
    assert labels["2"]["false_positive_in_ml"] == {"1": 2.4}
    assert "false_positive_in_ml" not in labels["3"]  # no voxel of it in another label


def test_a_leak_is_counted_in_the_label_it_enters_and_background_is_not_a_label():
    ref = _reference()
    pred = ref.copy()
    pred[25:29, 5:25, 2:8] = 3  # middle leaks 3 voxels deep into right (and one column of background)
    pred[0:2, 0:2, 0:2] = 3  # and a speck in the background
    labels = evaluate_volumes(Volume(pred, AFFINE), Volume(ref, AFFINE), {1: "left", 2: "right", 3: "middle"})["labels"]
    assert labels["3"]["false_positive_in_ml"] == {"2": 0.72}  # 3×20×6 voxels
    # the column of background it crossed (0.24 ml) and the speck (0.016 ml) are false positives only
    assert labels["3"]["false_positive_ml"] == 0.976


def _cohort(tmp_path):
    ref = _reference()
    cases = {
        "swap": np.where(ref == 1, 2, np.where(ref == 2, 1, ref)),
        "leak": np.where((ref == 2) & (np.arange(40)[:, None, None] < 29), 3, ref),  # 3 of 10 columns: 30 % of right
        # a rim: 60 voxels of right, 5 % of it and of middle's prediction
        "rim": np.where((ref == 2) & (np.arange(40)[:, None, None] == 26) & (np.arange(30)[None, :, None] < 15), 3,
                        ref),
    }
    for name in ("a", "b", "c"):
        cases[name] = ref
    for case, pred in cases.items():
        save(pred.astype(np.uint8), tmp_path / "pred" / f"{case}.nii.gz", AFFINE)
        save(ref, tmp_path / "labelsTs" / f"{case}.nii.gz", AFFINE)
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "left": 1, "right": 2,
                                                                   "middle": 3}}))
    return score_folder(tmp_path / "pred", tmp_path / "labelsTs", tmp_path / "scores")


def test_the_report_flags_a_swap_and_a_leak_and_not_a_rim(tmp_path):
    scores = _cohort(tmp_path)
    with open(scores.report.table, newline="") as handle:
        flags = {row["case_id"]: row["flags"] for row in csv.DictReader(handle, delimiter="\t")}
    assert "label_confusion(left)" in flags["swap"] and "label_confusion(right)" in flags["swap"]
    assert "label_confusion(middle)" in flags["leak"]
    assert "label_confusion" not in flags["rim"] and "label_confusion" not in flags["a"]
    page = scores.report.html.read_text()
    assert ("<b>label_confusion</b>: left: 2.4 ml (100 % of its prediction, 100 % of the reference&#x27;s right) "
            "where the reference has right, and right where it has left: swapped") in page
    assert ("<b>label_confusion</b>: middle: 0.72 ml (23 % of its prediction, 30 % of the reference&#x27;s right) "
            "where the reference has right") in page
    summary = json.loads(scores.report.summary.read_text())
    assert summary["flags"]["label_confusion"] == {"cases": 2, "flags": 3}
    assert "label_confusion" in summary["flag_rules"]


def test_the_rule_is_stated_as_the_flag_is_raised():
    from medseg.report.flags import flag_rules

    assert flag_rules()["label_confusion"] == (
        "a label is predicted where the reference has another label, for 10% or more of its predicted volume or of "
        "that label's reference volume: a left/right swap (said as swapped where each took the other's place), a "
        "leak into a neighbour, or the boundary between two labels of one structure placed elsewhere")
