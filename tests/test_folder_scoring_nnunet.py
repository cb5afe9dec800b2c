"""`medseg evaluate PRED_DIR REF_DIR` against nnU-Net's own evaluation (nnunetv2.evaluation.evaluate_predictions,
its rules written out here: nnU-Net is not a dependency): each label's mean Dice over the cases, empty masks
counted as nnU-Net counts them, and the mean over the labels, its summary.json's ``foreground_mean``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import run_cli
from folder_cases import labels, save


def _nnunet_dice(ref: np.ndarray, pred: np.ndarray, value: int) -> float:
    """nnU-Net v2's per-case Dice: NaN where neither mask holds the label, else 2·TP / (2·TP + FP + FN)."""
    tp = int(np.sum((ref == value) & (pred == value)))
    fp = int(np.sum((ref != value) & (pred == value)))
    fn = int(np.sum((ref == value) & (pred != value)))
    return float("nan") if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)


def _dataset(tmp_path):
    """Four cases of nnU-Net's folders (predictions named as medseg infer names those of imagesTs/case_0000.nii.gz,
    without sidecars): label 2 predicted well, not predicted, predicted where the reference has none, and absent
    from both; label 1 shifted by a voxel or two."""
    pred_dir, ref_dir = tmp_path / "pred", tmp_path / "Dataset004_Test" / "labelsTr"
    arrays = {}
    for number, shift in enumerate((1, 2, 1, 0)):
        case = f"case_{number:03d}"
        pred, ref = labels(shift)
        pred = pred.copy()
        pred[pred == 2] = 0  # label 2 was shifted with label 1: put it back in place, Dice 1
        pred[ref == 2] = 2
        if number == 1:
            pred[pred == 2] = 0  # empty prediction: Dice 0 in both tools
        if number == 2:
            ref[ref == 2] = 0  # false positive: Dice 0 in both tools
        if number == 3:
            pred[pred == 2] = ref[ref == 2] = 0  # both empty: NaN, left out of the label's mean in both
        save(pred, pred_dir / f"{case}_0000_seg.nii.gz")
        save(ref, ref_dir / f"{case}.nii.gz")
        arrays[case] = pred, ref
    (ref_dir.parent / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "MRI"}, "labels": {"background": 0, "front": 1, "back": 2}, "numTraining": 4,
        "file_ending": ".nii.gz"}))
    return pred_dir, ref_dir, arrays


def test_label_means_and_the_mean_over_labels_are_nnunets_summary_figures(tmp_path, capsys):
    """summary.json gave each label's mean Dice but no mean over the labels, the figure nnU-Net's summary.json
    reports as ``foreground_mean`` and papers quote: a reader comparing the two tools had to work it out."""
    pred_dir, ref_dir, arrays = _dataset(tmp_path)
    out = tmp_path / "scores"
    code, stdout, _ = run_cli(["evaluate", str(pred_dir), str(ref_dir), "-o", str(out)], capsys)
    assert code == 0
    per_label = {value: [_nnunet_dice(ref, pred, value) for pred, ref in arrays.values()] for value in (1, 2)}
    assert np.isnan(per_label[2][3]) and per_label[2][1] == per_label[2][2] == 0.0
    means = {value: float(np.nanmean(dice)) for value, dice in per_label.items()}
    summary = json.loads((out / "summary.json").read_text())
    for value in (1, 2):
        assert summary["labels"][str(value)]["dice"]["mean"] == pytest.approx(means[value], abs=1e-14)
    assert summary["labels"]["2"]["dice"]["n"] == 3  # the both-empty case is left out, as nanmean leaves it
    assert summary["foreground_mean"]["dice"] == pytest.approx(np.mean(list(means.values())), abs=1e-14)
    assert summary["foreground_mean"]["labels"] == 2 and summary["foreground_mean"]["without_dice"] == []
    expected = f"{np.mean(list(means.values())):.4f}"
    assert f"  mean over the 2 labels: Dice {expected} (the mean of their means, nnU-Net's foreground_mean)" in \
        stdout.splitlines()


def test_a_label_without_any_dice_is_left_out_of_the_mean_over_labels_and_named(tmp_path, capsys):
    """nnU-Net's foreground_mean is NaN where one label is absent from every case (its mean is NaN): medseg's is
    over the labels that have a Dice, and says which it leaves out."""
    pred_dir, ref_dir, arrays = _dataset(tmp_path)
    dataset = ref_dir.parent / "dataset.json"
    dataset.write_text(json.dumps({"labels": {"background": 0, "front": 1, "back": 2, "side": 3}}))
    out = tmp_path / "scores"
    code, stdout, _ = run_cli(["evaluate", str(pred_dir), str(ref_dir), "-o", str(out)], capsys)
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    means = [summary["labels"][value]["dice"]["mean"] for value in ("1", "2")]
    assert summary["labels"]["3"]["dice"]["mean"] is None
    assert summary["foreground_mean"] == {"dice": pytest.approx(np.mean(means), abs=1e-14), "labels": 2,
                                          "without_dice": ["3"]}
    assert any(line.startswith("  mean over 2 of 3 labels: Dice ") and line.endswith(
        "(the mean of their means, nnU-Net's foreground_mean; 3 side without a Dice left out, where nnU-Net's mean "
        "is NaN)") for line in stdout.splitlines())


def test_a_missed_case_names_the_channel_named_prediction_medseg_infer_writes(tmp_path, capsys):
    """The predictions of `medseg infer imagesTs/*_0000.nii.gz` are `case_0000_seg.nii.gz`; a reference without
    one said a prediction is named case.nii.gz, case_seg.nii.gz or case_seg.dcm, never the name infer gives."""
    pred_dir, ref_dir, _ = _dataset(tmp_path)
    (pred_dir / "case_003_0000_seg.nii.gz").unlink()
    code, stdout, _ = run_cli(["evaluate", str(pred_dir), str(ref_dir), "-o", str(tmp_path / "scores")], capsys)
    assert code == 1
    assert (f"failed case_003: {ref_dir / 'case_003.nii.gz'}: no prediction for this reference in {pred_dir} (a "
            "missed case; a prediction is named case_003.nii.gz, case_003_seg.nii.gz, case_003_0000_seg.nii.gz "
            "(medseg infer's of case_003_0000.nii.gz) or case_003_seg.dcm)") in stdout.splitlines()


def test_the_report_page_gives_the_mean_over_labels_as_summary_json_does(tmp_path, capsys):
    """summary.json and the printed lines gave nnU-Net's foreground_mean; the page, where a reader compares tools
    too, did not. It is under the label table, with the labels it leaves out."""
    pred_dir, ref_dir, _ = _dataset(tmp_path)
    out = tmp_path / "scores"
    assert run_cli(["evaluate", str(pred_dir), str(ref_dir), "-o", str(out)], capsys)[0] == 0
    summary = json.loads((out / "summary.json").read_text())
    page = (out / "report.html").read_text(encoding="utf-8")
    shown = f"{summary['foreground_mean']['dice']:.3f}"
    assert (f"<p>Mean over the 2 labels of their mean Dice: <b>{shown}</b> (nnU-Net&#x27;s "
            "<code>foreground_mean</code>)</p>") in page
    (ref_dir.parent / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "front": 1, "back": 2,
                                                                         "side": 3}}))
    assert run_cli(["evaluate", str(pred_dir), str(ref_dir), "-o", str(tmp_path / "four"), "--overwrite"],
                   capsys)[0] == 0
    page = (tmp_path / "four" / "report.html").read_text(encoding="utf-8")
    assert (f"<p>Mean over 2 of 3 labels of their mean Dice: <b>{shown}</b> (nnU-Net&#x27;s "
            "<code>foreground_mean</code>; 3 side has no Dice and is left out, where nnU-Net&#x27;s mean is NaN)</p>"
            ) in page
