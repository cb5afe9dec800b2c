"""Labels predicted where the reference has another label: each label's false positives inside the reference's
other labels are recorded (``false_positive_in_ml``), and the report flags ``label_confusion`` where they are a
tenth or more of the prediction or of that other label, saying "swapped" where two labels took each other's place.
A left/right swap read only as two low Dice values and distance outliers, and a leak into a neighbour as a distance
outlier, with nothing naming the structure the voxels belong to."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
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
        "that label's reference volume, and, where the two share a boundary in the reference, 4 voxels or more deep "
        "past it on average: a left/right swap (said as swapped where each took the other's place) or a leak into a "
        "neighbour, not a shared boundary placed a voxel or three off")


def _halves(shift: int) -> tuple[np.ndarray, np.ndarray]:
    """A bar of two labels of one structure (anterior 1, posterior 2: 20×10×10 voxels each, 100 faces between them),
    and a prediction whose boundary between them lies ``shift`` voxels into the posterior."""
    ref = np.zeros((48, 14, 14), np.uint8)
    ref[4:24, 2:12, 2:12] = 1
    ref[24:44, 2:12, 2:12] = 2
    pred = ref.copy()
    pred[24:24 + shift, 2:12, 2:12] = 1
    return pred, ref


def test_the_depth_of_a_label_in_another_beyond_their_shared_boundary_is_recorded():
    pred, ref = _halves(3)
    labels = evaluate_volumes(Volume(pred, AFFINE), Volume(ref, AFFINE), {1: "anterior", 2: "posterior"})["labels"]
    assert labels["1"]["false_positive_in_ml"] == {"2": 0.6}  # 300 voxels: 15 % of the posterior
    assert labels["1"]["false_positive_in_layers"] == {"2": 3.0}  # 300 voxels over the 100 faces they share
    swapped = np.where(_reference() == 1, 2, np.where(_reference() == 2, 1, _reference())).astype(np.uint8)
    labels = evaluate_volumes(Volume(swapped, AFFINE), Volume(_reference(), AFFINE),
                              {1: "left", 2: "right", 3: "middle"})["labels"]
    assert labels["1"]["false_positive_in_layers"] == {"2": None}  # they share no boundary in the reference


def test_a_boundary_between_two_labels_placed_a_few_voxels_off_is_not_a_confusion(tmp_path):
    for case, shift in (("shifted", 3), ("leak", 8)):  # 15 % of the posterior 3 voxels deep; 40 % 8 deep
        pred, ref = _halves(shift)
        save(pred, tmp_path / "pred" / f"{case}.nii.gz", AFFINE)
        save(ref, tmp_path / "labelsTs" / f"{case}.nii.gz", AFFINE)
    (tmp_path / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "anterior": 1, "posterior": 2}}))
    scores = score_folder(tmp_path / "pred", tmp_path / "labelsTs", tmp_path / "scores")
    with open(scores.report.table, newline="") as handle:
        flags = {row["case_id"]: row["flags"] for row in csv.DictReader(handle, delimiter="\t")}
    assert "label_confusion" not in flags["shifted"]
    assert "label_confusion(anterior)" in flags["leak"]
    assert ("<b>label_confusion</b>: anterior: 1.6 ml (29 % of its prediction, 40 % of the reference&#x27;s "
            "posterior, 8 voxels deep past their boundary) where the reference has posterior") in \
        scores.report.html.read_text()


@pytest.mark.shared_data
def test_the_hippocampus_cases_whose_boundary_lies_off_are_not_flagged(shared_data, tmp_path):
    """The shipped model's two cases whose anterior/posterior boundary lies furthest from the reference's (20 % and
    18 % of a label, 2.8 and 3.1 voxels deep) were flagged label_confusion, as 5 of the 200 were."""
    from medseg.cli import main

    cases = ("hippocampus_164", "hippocampus_358")
    images = [str(shared_data / "hippocampus" / "images" / f"{case}.nii.gz") for case in cases]
    for case in cases:
        (tmp_path / "labelsTs").mkdir(exist_ok=True)
        (tmp_path / "labelsTs" / f"{case}.nii.gz").symlink_to(shared_data / "hippocampus" / "labels" / f"{case}.nii.gz")
    with pytest.raises(SystemExit) as info:
        main(["-q", "infer", *images, "--model", "hippocampus", "-o", str(tmp_path / "pred"), "--device", "cpu"])
    assert info.value.code == 0
    scores = score_folder(tmp_path / "pred", tmp_path / "labelsTs", tmp_path / "scores")
    layers = [json.loads((tmp_path / "scores" / f"{case}_metrics.json").read_text())["labels"][label][
        "false_positive_in_layers"] for case, label in zip(cases, ("1", "2"))]
    assert layers == [{"2": 2.77}, {"1": 3.13}]
    with open(scores.report.table, newline="") as handle:
        assert [row["flags"] for row in csv.DictReader(handle, delimiter="\t") if "label_confusion" in row["flags"]] \
            == []


def test_the_overlay_of_a_leak_goes_through_the_label_that_leaked_where_it_did(tmp_path, monkeypatch):
    """The leak's overlay went through right, the label whose Dice the leak lowered most, at right's middle; it goes
    through middle where the reference has right, the voxels the flag is about."""
    import re

    import medseg.report.overlay as overlay

    centres = []
    focus = overlay._focus
    monkeypatch.setattr(overlay, "_focus", lambda masks: centres.append(focus(masks)) or centres[-1])
    scores = _cohort(tmp_path)
    page = scores.report.html.read_text()
    alts = dict(re.findall(r'alt="overlay of (\w+): ([^"]*)"', page))
    assert "through label 3 middle where the reference has right;" in alts["leak"]
    assert "through label 1 left where the reference has right;" in alts["swap"]  # lowest Dice of the two
    leak = [centre for centre in centres if 26 <= centre[0] < 29]  # middle's voxels in right: i 26-28
    assert len(leak) == 1 and 5 <= leak[0][1] < 25 and 2 <= leak[0][2] < 8


def test_a_swap_of_atlas_ids_too_large_to_pair_in_one_number_is_counted():
    ref = _reference().astype(np.uint32)
    ref[ref == 1] = 4_000_000_000
    swapped = np.where(ref == 4_000_000_000, 2, np.where(ref == 2, 4_000_000_000, ref)).astype(np.uint32)
    labels = evaluate_volumes(Volume(swapped, AFFINE), Volume(ref, AFFINE),
                              {4_000_000_000: "left", 2: "right", 3: "middle"})["labels"]
    assert labels["4000000000"]["false_positive_in_ml"] == {"2": 2.4}
    assert labels["2"]["false_positive_in_ml"] == {"4000000000": 2.4}
    assert labels["2"]["false_positive_in_layers"] == {"4000000000": None}
