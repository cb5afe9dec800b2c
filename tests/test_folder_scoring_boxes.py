"""References cropped to a box of the prediction's grid, scored in a folder (medseg.folder_scoring): as their
uncropped references score, their border read on the prediction's grid, a box reaching past the grid."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from folder_cases import AFFINE, labels, run, save


def test_a_reference_cropped_to_a_box_of_the_grid_is_scored_in_a_folder(tmp_path, capsys):
    """A 3D Slicer segmentation is saved cropped to its segments (the image's lattice, the origin moved by whole
    voxels): among full references, case b's scores as its uncropped reference would, and says so."""
    pred, ref, full = tmp_path / "pred", tmp_path / "labelsTs", tmp_path / "full"
    for case, shift in (("a", 1), ("b", 2)):
        predicted, reference = labels(shift)
        save(predicted, pred / f"{case}_seg.nii.gz")
        save(reference, full / f"{case}.nii.gz")
        if case == "b":  # the box [2:19, 3:19, 1:8]
            moved = AFFINE.copy()
            moved[:3, 3] = AFFINE[:3, :3] @ (2, 3, 1)
            save(reference[2:19, 3:19, 1:8], ref / "b.nii.gz", moved)
        else:
            save(reference, ref / "a.nii.gz")
    out, out_full = tmp_path / "scores", tmp_path / "scores_full"
    assert run(["evaluate", str(pred), str(ref), "-o", str(out)]) == 0
    assert "2 cases: 2 scored, 0 failed" in capsys.readouterr().out
    assert run(["evaluate", str(pred), str(full), "-o", str(out_full)]) == 0
    boxed, uncropped = (json.loads((folder / "b_metrics.json").read_text()) for folder in (out, out_full))
    assert boxed["labels"] == uncropped["labels"] and boxed["labels"]["1"]["dice"] < 1
    assert boxed["reference_sub_box"] == {"shape": [17, 16, 7], "offset_voxels": [2, 3, 1]}
    assert "reference_sub_box" not in json.loads((out / "a_metrics.json").read_text())
    rows = {row["case_id"]: row for row in csv.DictReader((out / "cohort.tsv").open(), delimiter="\t")}
    assert rows["b"]["status"] == "scored"
    assert "geometry" not in rows["b"]["flags"]  # the QA report takes the box as on the grid, and draws it
    assert "with the predicted labels and the reference" in (out / "report.html").read_text()
    assert float(rows["b"]["label_1_dice"]) == pytest.approx(boxed["labels"]["1"]["dice"], abs=1e-6)


@pytest.mark.parametrize(("reaches_face", "flags"), [(True, ""), (False, "touches_border(label_2)")])
def test_the_border_of_a_cropped_reference_is_read_on_the_predictions_grid(tmp_path, capsys, reaches_face, flags):
    """A structure the field of view cuts off touches a face of the grid in the reference too; a cropped reference's
    faces are not the grid's: a label reaching its box's last i, one voxel short of the grid's, is flagged."""
    ref = np.zeros((20, 20, 8), np.uint8)
    ref[3:12, 4:13, 2:6] = 1
    ref[15:20 if reaches_face else 19, 14:18, 3:7] = 2
    pred = ref.copy()
    pred[16:20, 14:17, 3:7] = 2  # on the grid's last i face
    save(pred, tmp_path / "pred" / "b_seg.nii.gz")
    moved = AFFINE.copy()
    moved[:3, 3] = AFFINE[:3, :3] @ (2, 3, 1)
    save(ref[2:20 if reaches_face else 19, 3:19, 1:8], tmp_path / "ref" / "b.nii.gz", moved)
    assert run(["evaluate", str(tmp_path / "pred"), str(tmp_path / "ref"), "-o", str(tmp_path / "out")]) == 0
    capsys.readouterr()
    row = next(csv.DictReader((tmp_path / "out" / "cohort.tsv").open(), delimiter="\t"))
    assert row["flags"] == flags


def test_a_reference_box_reaching_past_the_grid_is_cropped_where_label_0_lies_there_in_a_folder(tmp_path, capsys):
    """A box of the grid 3 voxels longer than it along i, label 0 in those voxels: scored as the labels on the grid,
    the report taking it as on the grid (no geometry flag, drawn, its label on the last face read there: no border
    flag). Case c's box labels 4 voxels out there: c alone fails, in one line counting them."""
    ref = np.zeros((20, 20, 8), np.uint8)
    ref[3:12, 4:13, 2:6] = 1
    ref[15:20, 14:18, 3:7] = 2  # on the grid's last i face, as the prediction
    moved = AFFINE.copy()
    moved[:3, 3] = AFFINE[:3, :3] @ (2, 3, 1)
    box = np.pad(ref[2:20, 3:19, 1:8], ((0, 3), (0, 0), (0, 0)))  # 3 voxels past the last i, all 0
    for case in "abc":
        save(ref, tmp_path / "pred" / f"{case}_seg.nii.gz")
    save(ref, tmp_path / "ref" / "a.nii.gz")
    save(box, tmp_path / "ref" / "b.nii.gz", moved)
    box[19:21, 5, 3:5] = 1  # 4 labelled voxels past the grid
    save(box, tmp_path / "ref" / "c.nii.gz", moved)
    out = tmp_path / "out"
    assert run(["evaluate", str(tmp_path / "pred"), str(tmp_path / "ref"), "-o", str(out)]) == 1
    assert "3 cases: 2 scored, 1 failed" in capsys.readouterr().out
    scored = json.loads((out / "b_metrics.json").read_text())
    assert scored["labels"] == json.loads((out / "a_metrics.json").read_text())["labels"]
    assert scored["labels"]["2"]["dice"] == 1.0
    assert scored["reference_sub_box"] == {"shape": [21, 16, 7], "offset_voxels": [2, 3, 1],
                                           "voxels_outside_grid": 3 * 16 * 7}
    rows = {row["case_id"]: row for row in csv.DictReader((out / "cohort.tsv").open(), delimiter="\t")}
    assert rows["b"]["status"] == "scored" and rows["b"]["flags"] == ""
    assert rows["c"]["status"] == "failed" and not (out / "c_metrics.json").exists()
    assert json.loads((out / "c_failed.json").read_text())["error"] == (
        f"{tmp_path / 'ref' / 'c.nii.gz'}: shape (21, 16, 7) differs from {tmp_path / 'pred' / 'c_seg.nii.gz'}'s "
        "(20, 20, 8): on its voxel lattice, but extends 3 voxels beyond its last i, and 4 of its labelled voxels lie "
        "there, outside the grid; not scored")
