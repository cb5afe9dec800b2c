"""The labels of a folder scored (medseg.folder_scoring): named by a dataset.json, or the values of the whole
folder; labels never learnt sharing one summary line; a --model that made none of the predictions, or has other
labels than their sidecars record, one usage error before anything is scored."""

from __future__ import annotations

import json

import numpy as np
from folder_cases import (
    folder_pairs,  # noqa: F401  (the folders fixture its tests take)
    labels,
    run,
    save,
)


def test_without_label_names_a_label_in_neither_file_of_a_case_is_recorded_as_absent_from_both(tmp_path, capsys):
    """No model, sidecar or dataset.json names the labels: each case was scored on the values its two files hold, so
    case c, with no label 2 in either file, had no label 2 at all and label 2's n was 2 of 3 cases, unsaid. The label
    set is now the values of the whole folder: c records label 2 as a named label absent from both is recorded
    (both_empty, Dice null, volumes 0), and the summary and its printed line say why n is 2 of 3."""
    pred, ref = tmp_path / "pred", tmp_path / "ref"
    for case, shift in (("a", 1), ("b", 2), ("c", 0)):
        predicted, reference = labels(shift)
        if case == "c":
            predicted[predicted == 2], reference[reference == 2] = 0, 0
        save(predicted, pred / f"{case}_seg.nii.gz")
        save(reference, ref / f"{case}.nii.gz")
    out = tmp_path / "scores"
    assert run(["evaluate", str(pred), str(ref), "-o", str(out)]) == 0
    c = json.loads((out / "c_metrics.json").read_text())
    assert list(c["labels"]) == ["1", "2"]
    assert c["labels"]["2"] == {"name": "label_2", "dice": None, "hd95_mm": None, "assd_mm": None,
                                "status": "both_empty", "pred_volume_ml": 0.0, "ref_volume_ml": 0.0,
                                "false_positive_ml": 0.0, "false_negative_ml": 0.0}
    single = tmp_path / "c.json"  # label 1 as one pair scores it
    assert run(["-q", "evaluate", str(pred / "c_seg.nii.gz"), str(ref / "c.nii.gz"), "-o", str(single)]) == 0
    assert json.loads(single.read_text())["labels"]["1"] == c["labels"]["1"]
    label_2 = json.loads((out / "summary.json").read_text())["labels"]["2"]
    assert label_2["status_counts"] == {"both_empty": 1, "ok": 2} and label_2["dice"]["n"] == 2
    lines = capsys.readouterr().out.splitlines()
    assert "  1 label_1: Dice mean 0.8889, median 0.8889, min 0.7778 (n 3)" in lines
    assert "  2 label_2: Dice mean 0.6250, median 0.6250, min 0.5000 (n 2 of 3 cases: 1 both empty)" in lines


def test_label_names_come_from_the_datasets_json_as_for_one_pair(tmp_path, capsys):
    dataset = tmp_path / "Dataset004"
    save(labels(1)[0], tmp_path / "pred" / "case.nii.gz")
    save(labels(0)[1], dataset / "labelsTs" / "case.nii.gz")
    (dataset / "dataset.json").write_text(json.dumps({"labels": {"background": 0, "anterior": 1, "posterior": 2}}))
    out = tmp_path / "scores"
    assert run(["evaluate", str(tmp_path / "pred"), str(dataset / "labelsTs"), "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert f"label names from {dataset / 'dataset.json'}" in captured.err
    record = json.loads((out / "case_metrics.json").read_text())
    assert [entry["name"] for entry in record["labels"].values()] == ["anterior", "posterior"]
    assert "1 anterior: Dice mean" in captured.out


def test_a_dataset_json_in_the_references_folder_names_the_labels(tmp_path, capsys):
    """A folder of test labels handed out with its dataset.json in it: the folder's JSON files are passed over as
    cases, and the dataset.json was passed over for the names too (label_1, label_2, with no word), where one in the
    dataset folder above or beside the predictions was read. Its labels are all scored: one that neither file of a
    case holds is recorded as both empty, not left out of the record."""
    save(labels(1)[0], tmp_path / "pred" / "a_seg.nii.gz")
    save(labels(0)[1], tmp_path / "labelsTs" / "a.nii.gz")
    single = np.where(labels(0)[1] == 1, 1, 0).astype(np.uint8)  # b holds no label 2 on either side
    save(single, tmp_path / "pred" / "b_seg.nii.gz")
    save(single, tmp_path / "labelsTs" / "b.nii.gz")
    names = tmp_path / "labelsTs" / "dataset.json"
    names.write_text(json.dumps({"labels": {"background": 0, "anterior": 1, "posterior": 2}}))
    out = tmp_path / "scores"
    assert run(["evaluate", str(tmp_path / "pred"), str(tmp_path / "labelsTs"), "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert f"label names from {names}" in captured.err
    b = json.loads((out / "b_metrics.json").read_text())
    assert {value: (entry["name"], entry["status"]) for value, entry in b["labels"].items()} == {
        "1": ("anterior", "ok"), "2": ("posterior", "both_empty")}
    assert "2 posterior: Dice mean" in captured.out
    assert run(["evaluate", str(tmp_path / "pred" / "a_seg.nii.gz"), str(tmp_path / "labelsTs" / "a.nii.gz")]) == 0
    assert f"label names from {names}" in capsys.readouterr().err  # one pair alike


def test_a_model_that_made_none_of_the_predictions_is_one_usage_error(folders, tmp_path, capsys):
    """Every sidecar names one other model: each case failed alike (exit 1, a failure record and the same line per
    case) where one pair is a usage error (exit 2). Now one line up front, naming the model the sidecars name, and
    nothing written; a folder of mixed models keeps its per-case failures."""
    pred, ref = folders
    made = {"labels": {"0": "background", "1": "anterior", "2": "posterior"}, "model": {"name": "hippocampus"}}
    for case in ("a", "b", "c"):
        (pred / f"{case}_seg.json").write_text(json.dumps(made))
    out = tmp_path / "scores"
    assert run(["evaluate", str(pred), str(ref), "-o", str(out), "--model", "phantom"]) == 2
    err = capsys.readouterr().err
    assert (f"{pred}: all 3 of its predictions were made by model 'hippocampus' (their sidecars say so), not "
            "'phantom'; pass --model hippocampus or leave --model out") in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()
    (pred / "c_seg.json").write_text(json.dumps({**made, "model": {"name": "phantom"}}))  # mixed: per case
    assert run(["evaluate", str(pred), str(ref), "-o", str(out), "--model", "phantom"]) == 1
    assert sorted(p.name for p in out.glob("*_failed.json")) == ["a_failed.json", "b_failed.json", "c_failed.json"]
    assert "was made by model 'hippocampus'" in json.loads((out / "a_failed.json").read_text())["error"]


def test_a_model_of_the_sidecars_name_with_other_labels_is_one_usage_error(folders, tmp_path, capsys):
    """A package named as the sidecars name it but with other labels (retrained under the same name) failed every
    case alike, exit 1 with a failure record each. Now one usage line up front naming the model and a sidecar, and
    nothing written; where one sidecar records the package's own labels, each case keeps its own outcome."""
    pred, ref = folders
    made = {"labels": {"0": "background", "1": "liver", "2": "tumour"}, "model": {"name": "hippocampus"}}
    for case in ("a", "b", "c"):
        (pred / f"{case}_seg.json").write_text(json.dumps(made))
    out = tmp_path / "scores"
    assert run(["evaluate", str(pred), str(ref), "-o", str(out), "--model", "hippocampus"]) == 2
    err = capsys.readouterr().err
    assert (f"{pred}: all 3 of its predictions were made by model 'hippocampus' with other labels than --model "
            f"hippocampus has (1 anterior, 2 posterior): {pred / 'a_seg.json'} records 1 liver, 2 tumour (a package "
            "of that name retrained with other labels?); pass the package that made them, or leave --model out") in err
    assert len(err.strip().splitlines()) == 1 and not out.exists()
    (pred / "a_seg.json").write_text(json.dumps({**made, "labels": {"1": "anterior", "2": "posterior"}}))
    assert run(["-q", "evaluate", str(pred), str(ref), "-o", str(out), "--model", "hippocampus"]) == 1
    assert sorted(p.name for p in out.glob("*_failed.json")) == ["b_failed.json", "c_failed.json"]
    assert (out / "a_metrics.json").is_file()


def test_labels_never_learnt_without_a_dice_share_one_summary_line(tmp_path, capsys, make_package):
    """A model trained on files labelled 1, 3 as 0..4 never learnt 2 and 4: the summary gave each a line "no Dice
    (… both empty)". Those the package records (--model), or the sidecar of every case lists (labels_not_trained),
    now share one line; where one sidecar does not list them, each keeps its own."""
    names = {"0": "background", "1": "anterior", "2": "unused_2", "3": "posterior", "4": "unused_4"}
    pred, ref = tmp_path / "pred", tmp_path / "ref"
    for case, shift in (("a", 1), ("b", 2)):
        predicted, reference = (np.where(array == 2, 3, array).astype(np.uint8) for array in labels(shift))
        save(predicted, pred / f"{case}_seg.nii.gz")
        save(reference, ref / f"{case}.nii.gz")
        (pred / f"{case}_seg.json").write_text(json.dumps({
            "schema": "medseg-segmentation/1", "case_id": case, "segmentation": f"{case}_seg.nii.gz",
            "labels": names, "model": {"name": "gaps"}, "labels_not_trained": [2, 4]}))
    assert run(["evaluate", str(pred), str(ref), "-o", str(tmp_path / "scores")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line for line in lines if line.startswith("  ")][2:] == [
        "  2 unused_2, 4 unused_4: no Dice, never learnt (n 0 of 2 cases: 2 both empty)",
        "  mean over 2 of 4 labels: Dice 0.7292 (the mean of their means, nnU-Net's foreground_mean; 2 unused_2, "
        "4 unused_4 without a Dice left out, where nnU-Net's mean is NaN)"]
    assert [line[:14] for line in lines if line.startswith("  ")][:2] == ["  1 anterior: ", "  3 posterior:"]
    # one case's sidecar without the list: the folder's predictions do not all say so
    sidecar = json.loads((pred / "b_seg.json").read_text())
    del sidecar["labels_not_trained"]
    (pred / "b_seg.json").write_text(json.dumps(sidecar))
    assert run(["evaluate", str(pred), str(ref), "-o", str(tmp_path / "scores"), "--overwrite"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "  2 unused_2: no Dice (n 0 of 2 cases: 2 both empty)" in lines
    assert "  4 unused_4: no Dice (n 0 of 2 cases: 2 both empty)" in lines
    assert "never learnt" not in "\n".join(line for line in lines if line.startswith("  "))  # (a's line: its own)
    # the package given with --model records them: its word is taken
    for case in ("a", "b"):
        (pred / f"{case}_seg.json").unlink()
    package = make_package("gaps", labels=names, architecture={
        "type": "unet2d", "in_channels": 1, "n_classes": 5, "base_width": 4, "depth": 2, "dropout": 0.0,
        "norm": "batch"}, training={"train_labels_absent": [2, 4]})
    assert run(["evaluate", str(pred), str(ref), "-o", str(tmp_path / "scores"), "--overwrite", "-m",
                str(package)]) == 0
    assert "  2 unused_2, 4 unused_4: no Dice, never learnt (n 0 of 2 cases: 2 both empty)" in \
        capsys.readouterr().out.splitlines()


def test_a_cases_line_groups_the_labels_never_learnt_as_medseg_infer_does(tmp_path, capsys, make_package):
    """A case's Dice line said ``unused_2 n/a (both empty)`` for a label the model never learnt, where `medseg infer`
    groups them: ``unused_2, unused_4: n/a (both empty; never learnt: no training case held them)``. Now alike where
    the model is known: its sidecar's labels_not_trained, or the --model package's record; a label predicted keeps
    its own figure, and a sidecar that does not list them keeps each its own n/a."""
    names = {"0": "background", "1": "anterior", "2": "unused_2", "3": "posterior", "4": "unused_4"}
    pred, ref = tmp_path / "pred", tmp_path / "ref"
    for case, shift in (("a", 1), ("b", 2)):
        predicted, reference = (np.where(array == 2, 3, array).astype(np.uint8) for array in labels(shift))
        if case == "b":
            predicted[0, 0, 0] = 4  # b predicts a voxel of a label never learnt: its Dice 0 is its own
        save(predicted, pred / f"{case}_seg.nii.gz")
        save(reference, ref / f"{case}.nii.gz")
        (pred / f"{case}_seg.json").write_text(json.dumps({
            "schema": "medseg-segmentation/1", "case_id": case, "segmentation": f"{case}_seg.nii.gz",
            "labels": names, "model": {"name": "gaps"}, "labels_not_trained": [2, 4]}))
    grouped = "never learnt: no training case held"
    assert run(["evaluate", str(pred), str(ref), "-o", str(tmp_path / "scores")]) == 0
    lines = {line.split(":")[0]: line for line in capsys.readouterr().out.splitlines() if line[:3] in ("a: ", "b: ")}
    assert lines["a"].endswith(f"; unused_2, unused_4: n/a (both empty; {grouped} them)")
    assert lines["a"].startswith("a: Dice anterior ") and ", posterior " in lines["a"]
    assert "unused_2 n/a" not in lines["a"]
    assert lines["b"].endswith(f", unused_4 0.0000 (false positive: not in the reference); unused_2: n/a (both "
                               f"empty; {grouped} it)")
    # a sidecar that does not list them: each label's n/a as before
    sidecar = json.loads((pred / "a_seg.json").read_text())
    del sidecar["labels_not_trained"]
    (pred / "a_seg.json").write_text(json.dumps(sidecar))
    assert run(["evaluate", str(pred), str(ref), "-o", str(tmp_path / "scores"), "--overwrite"]) == 0
    out = capsys.readouterr().out
    a_line = next(line for line in out.splitlines() if line.startswith("a: "))
    assert "unused_2 n/a (both empty), " in a_line and a_line.endswith("unused_4 n/a (both empty)")
    assert grouped not in a_line
    # no sidecar, the package given with --model records them: its word is taken
    for case in ("a", "b"):
        (pred / f"{case}_seg.json").unlink()
    package = make_package("gaps", labels=names, architecture={
        "type": "unet2d", "in_channels": 1, "n_classes": 5, "base_width": 4, "depth": 2, "dropout": 0.0,
        "norm": "batch"}, training={"train_labels_absent": [2, 4]})
    assert run(["evaluate", str(pred), str(ref), "-o", str(tmp_path / "scores"), "--overwrite", "-m",
                str(package)]) == 0
    a_line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("a: "))
    assert a_line.endswith(f"; unused_2, unused_4: n/a (both empty; {grouped} them)")
