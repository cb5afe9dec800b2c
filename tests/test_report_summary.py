"""Cohort statistics, provenance and summary.json (medseg.report.summary): figures against numpy, models
pooled or told apart, training images, the report's date."""

from __future__ import annotations

import html as html_module
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from report_cases import (
    now,
    phantom,
    read_tsv,
    section,
    shifted,
    write_case,
    write_case_arrays,
    write_failure,
)

from medseg.errors import MedsegWarning
from medseg.report.build import build_report


def test_summary_statistics_match_numpy_over_the_metrics_files(built, cohort):
    summary = json.loads(built.summary.read_text())
    values = {"1": [], "2": []}
    hd95 = {"1": [], "2": []}
    for path in cohort.rglob("*_metrics.json"):
        for value, entry in json.loads(path.read_text())["labels"].items():
            values[value].append(entry["dice"])
            if entry["hd95_mm"] is not None:
                hd95[value].append(entry["hd95_mm"])
    for value in ("1", "2"):
        stats = summary["labels"][value]["dice"]
        data = np.array(values[value])
        assert stats["n"] == 8
        assert stats["mean"] == pytest.approx(data.mean())
        assert stats["median"] == pytest.approx(np.median(data))
        assert stats["std"] == pytest.approx(data.std(ddof=1))
        assert stats["min"] == pytest.approx(data.min())
        assert summary["labels"][value]["hd95_mm"]["n"] == len(hd95[value])
        assert summary["labels"][value]["hd95_mm"]["max"] == pytest.approx(max(hd95[value]))
    assert summary["labels"]["2"]["status_counts"] == {"empty_prediction": 1, "failed": 1, "no_reference": 1, "ok": 7}
    assert summary["labels"]["1"]["pred_volume_ml"]["n"] == 9  # the unreferenced case counts for volumes
    # reference volumes come only from the 8 scored cases: the difference pairs them case by case
    differences = [entry["pred_volume_ml"] - entry["ref_volume_ml"] for path in cohort.rglob("*_metrics.json")
                   for value, entry in json.loads(path.read_text())["labels"].items() if value == "1"]
    paired = summary["labels"]["1"]["volume_difference_ml"]
    assert summary["labels"]["1"]["ref_volume_ml"]["n"] == paired["n"] == len(differences) == 8
    assert paired["mean"] == pytest.approx(np.mean(differences)) and paired["min"] == pytest.approx(min(differences))
    # the page writes a negative difference with a typographic minus; the summary keeps a number
    assert paired["min"] < 0 and f'<td class="num">\u2212{-paired["min"]:.3f}</td>' in built.html.read_text("utf-8")


def test_per_label_status_counts_add_up_to_the_cases_alike_in_summary_table_and_page(built):
    """The case that failed before it was segmented was in no label's status counts: they added up to 9 of the 10
    cases, its cohort.tsv row had empty label statuses and the page's counts summed to 9 beside "failed 1". It is
    counted ``failed`` under every label, in summary.json, cohort.tsv and the page alike."""
    from collections import Counter

    summary = json.loads(built.summary.read_text())
    rows = read_tsv(built.table)
    page = built.html.read_text("utf-8")
    for value, prefix in (("1", "ball"), ("2", "box")):
        counts = summary["labels"][value]["status_counts"]
        assert sum(counts.values()) == summary["cases"]["total"] == len(rows) == 10
        assert counts["failed"] == summary["cases"]["failed"] == 1
        assert dict(Counter(row[f"{prefix}_status"] for row in rows)) == counts
    assert {row[f"{prefix}_status"] for row in rows if row["case_id"] == "crashed" for prefix in ("ball", "box")} == {
        "failed"}
    assert "empty prediction 1, failed 1, no reference 1, in both 7" in page  # 8 cases scored: "scored 7" misread


def test_the_same_weights_under_an_edited_model_json_are_another_model_in_the_provenance(tmp_path):
    """Cases segmented before and after a hand edit of model.json (labels swapped) were counted as one model."""
    for case, seed, config in (("before", 0, "c1" * 32), ("after", 1, "c2" * 32), ("again", 2, "c2" * 32)):
        write_case(tmp_path, case, seed, "exact")
        sidecar = tmp_path / "cases" / case / f"{case}_seg.json"
        record = json.loads(sidecar.read_text())
        record["model"]["config_sha256"] = config
        sidecar.write_text(json.dumps(record))
    with pytest.warns(MedsegWarning, match="the figures pool the cases of 2 models"):
        built = build_report(tmp_path, tmp_path / "r.html")
    models = json.loads(built.summary.read_text())["provenance"]["models"]
    assert [(m["config_sha256"], m["cases"]) for m in models] == [("c2" * 32, 2), ("c1" * 32, 1)]
    assert len({m["weights_sha256"] for m in models}) == 1
    page = (tmp_path / "r.html").read_text()
    # shortened, and marked so, with the whole hash on hover (twelve bare digits read as a whole hash)
    assert "<th>model.json SHA-256</th>" in page and f"<code title=\"{'c1' * 32}\">{'c1' * 6}…</code>" in page


def test_the_header_names_the_model_version_as_the_model_card_does(built, tmp_path):
    """The header said "model: tiny-test 3", which reads as a model of that name; the model card and medseg models
    say "version 3". A model without a recorded version is named alone."""
    page = built.html.read_text(encoding="utf-8")
    assert re.search(r'<p class="sub">.*<br>model: tiny-test version 3 · medseg ', page)
    write_case(tmp_path, "unversioned", 0, "exact")
    _set_model(tmp_path, "unversioned", None, "cd" * 32)
    page = build_report(tmp_path, tmp_path / "r.html").html.read_text(encoding="utf-8")
    assert re.search(r"<br>model: tiny-test · medseg ", page)


def _set_model(root: Path, case: str, version: str, weights: str) -> None:
    sidecar = root / "cases" / case / f"{case}_seg.json"
    record = json.loads(sidecar.read_text())
    record["model"]["version"], record["model"]["weights_sha256"] = version, weights
    sidecar.write_text(json.dumps(record))


def test_figures_pooled_over_two_model_versions_are_warned_about(tmp_path, caplog):
    """A folder holding cases of two versions of one model (a run stopped after the model was updated, reported by
    hand; results of two sites) had its Dice statistics and outlier flags pool them, the header only listing the
    versions: a mixed cohort read as one model's."""
    for case, seed, version in (("a", 0, "1"), ("b", 1, "2"), ("c", 2, "2")):
        write_case(tmp_path, case, seed, "exact")
        _set_model(tmp_path, case, version, version * 64)
    with caplog.at_level("WARNING"), pytest.warns(MedsegWarning, match="the figures pool the cases of 2 models"):
        built = build_report(tmp_path, tmp_path / "r.html")
    pooled = json.loads(built.summary.read_text())["pooled_models"]
    assert [(m["version"], m["cases"]) for m in pooled] == [("2", 2), ("1", 1)]
    assert ('<p class="warn"><b>The figures pool the cases of 2 models</b> (tiny-test version 2: 2 cases; tiny-test '
            "version 1: 1 case): the summary, plots and outlier flags below mix them; <code>cohort.tsv</code> names "
            "the model of each case (<code>model_version</code>, <code>model_weights_sha256</code>). Make one report "
            "per model.</p>") in (tmp_path / "r.html").read_text()
    assert (f"{tmp_path}: the figures pool the cases of 2 models (tiny-test version 2: 2 cases; tiny-test version 1: 1 "
            "case)") in caplog.text


def test_a_failed_case_of_another_model_is_not_pooled(tmp_path):
    """A case kept as stale from an earlier version (its row taken out of the sheet) is not in the figures: no
    warning, though the provenance lists both versions."""
    for case, seed, version in (("a", 0, "2"), ("b", 1, "2"), ("old", 2, "1")):
        write_case(tmp_path, case, seed, "exact")
        _set_model(tmp_path, case, version, version * 64)
    write_failure(tmp_path, "old", stage="read")
    built = build_report(tmp_path, tmp_path / "r.html")
    summary = json.loads(built.summary.read_text())
    assert summary["pooled_models"] == [] and len(summary["provenance"]["models"]) == 2
    assert "The figures pool" not in (tmp_path / "r.html").read_text()


def test_a_report_against_the_sheet_names_the_models_of_its_own_cases_only(tmp_path):
    """The results of a row taken out of the sheet, made by an earlier version, stay on disk: a report against the
    sheet leaves them out, so its header and provenance named "version 2, version 1" where the only case of version
    1 was the removed row's. They are named once instead, as left out."""
    for case, seed, version in (("a", 0, "2"), ("b", 1, "2"), ("old", 2, "1")):
        write_case(tmp_path, case, seed, "exact")
        _set_model(tmp_path, case, version, version * 64)
    sheet = tmp_path / "data" / "samples.tsv"
    sheet.parent.mkdir()
    sheet.write_text("case_id\timage\treference\n"
                     "a\t../inputs/0_image.nii.gz\t../inputs/0_label.nii.gz\n"
                     "b\t../inputs/1_image.nii.gz\t../inputs/1_label.nii.gz\n")
    built = build_report(tmp_path, tmp_path / "r.html", sheet=sheet)
    summary = json.loads(built.summary.read_text())
    assert [model["version"] for model in summary["provenance"]["models"]] == ["2"]
    assert (built.cases, built.failed, summary["left_out"]) == (2, 0, ["cases/old/"])
    page = (tmp_path / "r.html").read_text()
    assert "version 1" not in page and "cases/old/; delete the folder to tidy up" in page


def _set_settings(root: Path, case: str, config: str, settings: str | None) -> None:
    sidecar = root / "cases" / case / f"{case}_seg.json"
    record = json.loads(sidecar.read_text())
    record["model"]["config_sha256"] = config
    if settings:
        record["model"]["settings_sha256"] = settings
    sidecar.write_text(json.dumps(record))


def test_the_same_weights_and_settings_under_another_model_json_are_not_pooled(tmp_path):
    """New label codes written into a finished package (train --resume), or an edited training record, change
    model.json's hash, not what makes the segmentations: a case made before and one after were told as figures
    pooling two models. A case of a sidecar without settings_sha256 (an earlier medseg) under the same model.json
    as a later one is of its model too."""
    for case, seed, config, settings in (("before", 0, "c1", "5a"), ("after", 1, "c2", "5a"), ("again", 2, "c2", "5a"),
                                         ("older", 3, "c1", None)):
        write_case(tmp_path, case, seed, "exact")
        _set_settings(tmp_path, case, config * 32, settings and settings * 32)
    built = build_report(tmp_path, tmp_path / "r.html")
    summary = json.loads(built.summary.read_text())
    assert summary["pooled_models"] == []
    assert [(m["config_sha256"], m["settings_sha256"], m["cases"]) for m in summary["provenance"]["models"]] == [
        ("c2" * 32, "5a" * 32, 2), ("c1" * 32, "5a" * 32, 1), ("c1" * 32, None, 1)]
    assert "The figures pool" not in (tmp_path / "r.html").read_text()


def test_the_same_weights_under_other_settings_are_pooled_models(tmp_path, caplog):
    """Preprocessing or inference settings edited in model.json make other segmentations from the same weights: still
    warned about, by the settings' hash; one model's two model.json (label codes) count once."""
    for case, seed, config, settings in (("a", 0, "c1", "5a"), ("b", 1, "c2", "5a"), ("c", 2, "c3", "6b")):
        write_case(tmp_path, case, seed, "exact")
        _set_settings(tmp_path, case, config * 32, settings * 32)
    with caplog.at_level("WARNING"), pytest.warns(MedsegWarning, match="the figures pool the cases of 2 models"):
        built = build_report(tmp_path, tmp_path / "r.html")
    pooled = json.loads(built.summary.read_text())["pooled_models"]
    assert [(m["config_sha256"], m["settings_sha256"], m["cases"]) for m in pooled] == [
        (None, "5a" * 32, 2), ("c3" * 32, "6b" * 32, 1)]
    # shortened hashes end in "…", as `medseg models` and the error lines write them
    assert (f"{tmp_path}: the figures pool the cases of 2 models (tiny-test version 3 (weights {'ab' * 6}…, "
            f"model.json settings {'5a' * 6}…): 2 cases; tiny-test version 3 (weights {'ab' * 6}…, model.json settings "
            f"{'6b' * 6}…): 1 case)") in caplog.text


def test_a_hash_no_sidecar_recorded_is_unknown_not_a_shortened_none():
    """Two models of one name and version whose sidecars recorded no weights or model.json hash (an earlier medseg's)
    were told apart as "weights None…, model.json None…", the mark of a shortened hash put on "None"."""
    from medseg.report.summary import models_text

    models = [{"name": "m", "version": "1", "weights_sha256": "ab" * 32, "config_sha256": "c1" * 32, "cases": 2},
              {"name": "m", "version": "1", "weights_sha256": None, "config_sha256": None, "settings_sha256": None,
               "cases": 1}]
    assert models_text(models) == (f"m version 1 (weights {'ab' * 6}…, model.json {'c1' * 6}…): 2 cases; m version 1 "
                                   "(weights unknown, model.json unknown): 1 case")


def test_the_provenance_counts_the_precisions_and_overlaps_that_made_the_cases(tmp_path):
    """A cohort merged from an fp32 run and a bf16 run (whose labels differ in a few voxels), or run with another
    --overlap, read as one: the provenance named models, versions and devices only."""
    for case, seed, precision, overlap in (("a", 0, "fp32", 0.25), ("b", 1, "fp32", 0.25), ("c", 2, "bf16", 0.5)):
        write_case(tmp_path, case, seed, "exact")
        sidecar = tmp_path / "cases" / case / f"{case}_seg.json"
        record = json.loads(sidecar.read_text())
        record["precision"], record["inference"] = precision, {"overlap": overlap, "batch_size": 16}
        sidecar.write_text(json.dumps(record))
    built = build_report(tmp_path, tmp_path / "r.html")
    provenance = json.loads(built.summary.read_text())["provenance"]
    assert provenance["precisions"] == {"fp32": 2, "bf16": 1}
    assert provenance["overlaps"] == {"0.25": 2, "0.5": 1}
    assert "Precision: fp32 (2), bf16 (1). Tile overlap: 0.25 (2), 0.5 (1)." in (tmp_path / "r.html").read_text()


def test_a_paired_volume_difference_of_zero_reads_zero(tmp_path):
    """Differences of ml values keep their float noise: +0.09 and −0.09 ml averaged to −2.2e-16, shown as a value."""
    affine = np.diag([3.0, 3.0, 5.0, 1.0])
    for case_id, extra in (("a", 2), ("b", -2)):
        labels = np.zeros((10, 10, 6), np.uint8)
        labels.reshape(-1)[:50 if extra > 0 else 55] = 1
        prediction = np.zeros_like(labels)
        prediction.reshape(-1)[:(50 if extra > 0 else 55) + extra] = 1
        write_case_arrays(tmp_path, case_id, np.zeros(labels.shape, np.float32) + len(case_id), labels, prediction,
                          affine)
    built = build_report(tmp_path, tmp_path / "report.html")
    stats = json.loads(built.summary.read_text())["labels"]["1"]["volume_difference_ml"]
    assert stats["mean"] == 0.0 and stats["median"] == 0.0 and stats["max"] == 0.09 and stats["min"] == -0.09
    from medseg.report.summary import _without_float_residue, describe

    same = describe([0.3 - 0.2, 0.4 - 0.3])  # equal differences: the std is float noise (3.9e-17)
    assert _without_float_residue(same, [0.4])["std"] == 0.0
    row = section(built.html.read_text(encoding="utf-8"), "Summary per label").split("predicted − reference")[1]
    assert "e-16" not in row.split("</tr>")[0]


def test_the_time_span_of_segmentation_leaves_failure_records_out(tmp_path):
    write_case(tmp_path, "done", 0, "exact")
    sidecar = tmp_path / "cases" / "done" / "done_seg.json"
    record = json.loads(sidecar.read_text())
    record["created"] = "2026-01-01T10:00:00+00:00"
    sidecar.write_text(json.dumps(record))
    failure = write_failure(tmp_path, "late")
    record = json.loads(failure.read_text())
    record["created"] = "2026-01-01T12:00:00+00:00"
    failure.write_text(json.dumps(record))
    built = build_report(tmp_path, tmp_path / "report.html")
    provenance = json.loads(built.summary.read_text())["provenance"]
    assert provenance["created_first"] == provenance["created_last"] == "2026-01-01T10:00:00+00:00"


def test_equal_values_have_standard_deviation_zero():
    """numpy's mean of seven equal Dice values is off in the last bit, and their std came out 6e-17, not 0."""
    from medseg.report.summary import describe

    stats = describe([0.1 + 0.2] * 7 + [None])
    assert stats["std"] == 0.0 and stats["mean"] == stats["min"] == stats["max"] == 0.1 + 0.2 and stats["n"] == 7
    assert describe([0.5, 0.7])["std"] == pytest.approx(0.1414213562)


def test_averaged_statistics_carry_no_binary_residue():
    """The median of an even count averages two values, and a mean sums them: summary.json read 0.15000000000000002
    for the median of 0.1 and 0.2. A median that is one of the values is that value to the last bit."""
    from medseg.report.summary import describe

    assert np.median([0.1, 0.2]) != 0.15 and np.mean([0.1, 0.2]) != 0.15  # the residue this is about
    stats = describe([0.2, None, 0.1])
    assert stats["median"] == 0.15 and stats["mean"] == 0.15 and (stats["min"], stats["max"]) == (0.1, 0.2)
    odd = 0.1 + 0.2  # 0.30000000000000004: a value's own last bits are kept
    assert describe([0.1, odd, 0.9])["median"] == odd and describe([odd, odd, 0.1, 0.9])["median"] == odd
    assert describe([1 / 3, 2 / 3, 0.5, 0.25])["mean"] == pytest.approx(0.4375, abs=1e-15)
    close = describe([0.9999999999999998, 0.9999999999999999])  # rounded, their mean would read 1.0
    assert close["min"] <= close["mean"] <= close["max"] < 1.0 and close["min"] <= close["median"] <= close["max"]


def test_the_training_images_mean_dice_says_how_many_cases_it_covers(tmp_path):
    """The note's mean Dice per label read "on them" (all the training images) even when it covered fewer: a training
    image without a reference, or with the label empty in both masks (no Dice), is not in it. It now says how many."""
    from medseg.numbers import dice_text

    image, labels, affine = phantom(0)
    no_box = np.where(labels == 2, 0, labels).astype(np.uint8)
    for index in range(4):
        write_case_arrays(tmp_path, f"t{index}", image + index, labels, labels.copy(), affine)
    write_case_arrays(tmp_path, "t4", image + 4, no_box, no_box.copy(), affine)  # box empty in both: no Dice
    write_case_arrays(tmp_path, "t5", image + 5, labels, labels.copy(), affine, reference=False)
    moved = shifted(labels, (2, 0, 0))
    for index in range(3):
        write_case_arrays(tmp_path, f"n{index}", image + 20 + index, labels, moved, affine)
    write_case_arrays(tmp_path, "n3", image + 30, labels, moved, affine, reference=False)
    for sidecar in tmp_path.glob("cases/*/*_seg.json"):
        record = json.loads(sidecar.read_text())
        sidecar.write_text(json.dumps({**record, "in_training_set": record["case_id"].startswith("t")}))
    built = build_report(tmp_path, tmp_path / "r.html")
    known = json.loads(built.summary.read_text())["training_images"]
    assert (known["cases"], known["other_cases"]) == (6, 4)
    assert [known["dice"][v][g]["n"] for v in ("1", "2") for g in ("training", "other")] == [5, 3, 4, 3]
    other_ball, other_box = (dice_text(known["dice"][v]["other"]["mean"]) for v in ("1", "2"))
    text = re.sub(r"<[^>]+>", "", html_module.unescape(built.html.read_text(encoding="utf-8")))
    assert (f"Mean Dice: ball 1.000 on 5 of them, {other_ball} on 3 of the others; box 1.000 on 4 of them, "
            f"{other_box} on 3 of the others. ") in text


def test_a_cohort_of_training_images_only_and_a_small_group_say_so(tmp_path, capsys):
    """Every case a training image: the note says all, gives no "others" figures and judges outliers among them.
    A group of fewer than 5 is not judged, and the note says which. A failed case's older sidecar says nothing."""
    image, labels, affine = phantom(0)
    for index in range(6):
        write_case_arrays(tmp_path, f"t{index}", image + index, labels, labels.copy(), affine)
    for sidecar in tmp_path.glob("cases/*/*_seg.json"):
        record = json.loads(sidecar.read_text())
        sidecar.write_text(json.dumps({**record, "in_training_set": True}))
    built = build_report(tmp_path, tmp_path / "r.html")
    text = re.sub(r"<[^>]+>", "", html_module.unescape(built.html.read_text(encoding="utf-8")))
    assert ("All of 6 cases are images the model was trained on (their SHA-256 is among the training images its "
            "package lists; marked training image below): their Dice overstates what it does on new data. Mean Dice: "
            "ball 1.000 on them; box 1.000 on them. Outliers are judged among them.") in text
    assert "on the others" not in text and "pools all cases" not in text

    write_case_arrays(tmp_path, "new", image + 9, labels, labels.copy(), affine)
    record = json.loads((tmp_path / "cases" / "new" / "new_seg.json").read_text())
    (tmp_path / "cases" / "new" / "new_seg.json").write_text(json.dumps({**record, "in_training_set": False}))
    # a case that failed at inference keeps an older run's sidecar, which claimed a training image: not counted
    stale = write_case_arrays(tmp_path, "stale", image + 11, labels, labels.copy(), affine)
    record = json.loads((stale / "stale_seg.json").read_text())
    (stale / "stale_seg.json").write_text(json.dumps({**record, "in_training_set": True}))
    (stale / "stale_metrics.json").unlink()
    (stale / "stale_failed.json").write_text(json.dumps({
        "schema": "medseg-failure/1", "case_id": "stale", "input": record["input"], "reference": None,
        "stage": "infer", "error": "out of memory", "error_type": "RuntimeError", "created": now()}))
    # a scored case whose sidecar does not tell (a DICOM series' input): among the others, as outliers are judged
    untold = write_case_arrays(tmp_path, "untold", image + 13, labels, labels.copy(), affine)
    record = json.loads((untold / "untold_seg.json").read_text())
    (untold / "untold_seg.json").write_text(json.dumps({**record, "in_training_set": None}))
    built = build_report(tmp_path, tmp_path / "r.html", overwrite=True)
    rows = {row["case_id"]: row for row in read_tsv(built.table)}
    assert rows["stale"]["status"] == "failed" and rows["stale"]["in_training_set"] == ""
    # the failed case is in neither group (it was counted among the others, whose images are not training images)
    known = json.loads(built.summary.read_text())["training_images"]
    assert (known["cases"], known["other_cases"], known["unknown_cases"]) == (6, 2, 1)
    assert known["dice"]["1"]["other"]["n"] == 2  # new and untold
    shutil.rmtree(untold)
    built = build_report(tmp_path, tmp_path / "r.html", overwrite=True)
    text = re.sub(r"<[^>]+>", "", html_module.unescape(built.html.read_text(encoding="utf-8")))
    assert ("6 of 8 cases are images the model was trained on (their SHA-256 is among the training images its "
            "package lists; marked training image below): their Dice overstates what it does on new data. 1 case "
            "that failed before its input was hashed is in neither group. Mean Dice") in text
    assert ("6 of 8 cases are images the model was trained on" in text and "Outliers of Dice, HD95 and volume "
            "difference are judged within each group (the others: fewer than 5 scored, not judged).") in text
    # and on the console, where a cohort run's line is all many readers see
    from medseg.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(tmp_path), "-o", f"{tmp_path / 'cli'}/"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.splitlines()[0].startswith(
        "8 cases (1 failed, 1 flagged for review, failures included; 6 are the model's training images, their Dice "
        "not its accuracy on new data), ")
    # training images that were not scored have no Dice to warn about (the line spoke of one when none was scored)
    for metrics in tmp_path.glob("cases/t*/*_metrics.json"):
        metrics.unlink()
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(tmp_path), "-o", f"{tmp_path / 'cli2'}/"])
    line = capsys.readouterr().out.splitlines()[0]
    assert exit_info.value.code == 0 and line.startswith("8 cases (1 failed, ")
    assert "6 are the model's training images)" in line and "Dice" not in line


@pytest.mark.parametrize(("given", "inside"), [(".", True), ("../{name}", True), ("{name}/", False)])
def test_the_results_folder_is_recorded_absolute_as_the_cases_paths_are(cohort, tmp_path, monkeypatch, given, inside):
    """summary.json held the results folder as typed ("." from inside it), where every other path of it and of
    cohort.tsv is absolute: read later or elsewhere it named no folder, and the page's title named none either."""
    monkeypatch.chdir(cohort if inside else cohort.parent)
    build_report(given.format(name=cohort.name), tmp_path / "report.html", max_overlays=0)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["results_dir"] == str(cohort)
    page = (tmp_path / "report.html").read_text()
    assert f"<title>medseg QA report: {cohort.name}</title>" in page
    assert f" in <code>{html_module.escape(str(cohort))}</code>" in page


def test_source_date_epoch_makes_two_reports_of_the_same_results_byte_identical(cohort, tmp_path, monkeypatch,
                                                                                 caplog):
    """A QA team diffs reports: the generation time was the only difference between two reports of the same
    results. $SOURCE_DATE_EPOCH (the reproducible-builds convention) dates them; an unreadable value is named."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")
    for name in ("one", "two"):
        build_report(cohort, tmp_path / name / "report.html", dice_threshold=0.6, max_overlays=2)
    for file in ("report.html", "cohort.tsv", "summary.json"):
        assert (tmp_path / "one" / file).read_bytes() == (tmp_path / "two" / file).read_bytes(), file
    assert json.loads((tmp_path / "one" / "summary.json").read_text())["created"] == "2026-01-01T00:00:00+00:00"
    assert "2026-01-01T00:00:00+00:00" in (tmp_path / "one" / "report.html").read_text()
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with caplog.at_level("WARNING"):
        build_report(cohort, tmp_path / "three" / "report.html", dice_threshold=0.6, max_overlays=0)
    assert "SOURCE_DATE_EPOCH='yesterday' is not a whole number of seconds" in caplog.text
    created = json.loads((tmp_path / "three" / "summary.json").read_text())["created"]
    assert created.endswith("+00:00") and not created.startswith("2026-01-01T00:00:00")


@pytest.mark.parametrize("given", ["-1", "+5", "1_767_225_600", "١٧٦٧٢٢٥٦٠٠", "1.5", "1e9", "99999999999999999999"])
def test_a_source_date_epoch_that_is_not_plain_digits_is_named_and_the_report_dated_now(monkeypatch, caplog, given):
    """SOURCE_DATE_EPOCH is ASCII digits, as `date +%s` prints it: Python's int() also took a sign, digit separators
    and other scripts' digits, dating a report 1969 or from a value the convention calls malformed, silently."""
    import datetime as dt

    from medseg.report.summary import report_time

    monkeypatch.setenv("SOURCE_DATE_EPOCH", given)
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    with caplog.at_level("WARNING"):
        created = dt.datetime.fromisoformat(report_time())
    assert before <= created <= dt.datetime.now(dt.UTC)
    assert f"SOURCE_DATE_EPOCH={given!r} is not a whole number of seconds" in caplog.text
    monkeypatch.setenv("SOURCE_DATE_EPOCH", " 0 ")
    assert report_time() == "1970-01-01T00:00:00+00:00"


def _one_training_image(others: int) -> dict:
    dice = {"1": {"name": "ball", "training": {"n": 1, "mean": 0.9},
                  "other": {"n": others, "mean": 0.8 if others else None}}}
    return {"training_images": {"cases": 1, "other_cases": others, "unknown_cases": 0, "dice": dice}}


def test_the_note_on_one_training_image_says_one_case():
    """One case an image the model was trained on read "All of 1 cases are images the model was trained on",
    "1 of 3 cases are images" and "on them" for one case."""
    from medseg.report.html import _training_note

    alone = re.sub(r"<[^>]+>", "", _training_note(_one_training_image(0)))
    assert alone.startswith("The one case is an image the model was trained on (its SHA-256 is among the training "
                            "images its package lists; marked training image below): its Dice overstates what the "
                            "model does on new data. Mean Dice: ball 0.900 on it. With fewer than ")
    among = re.sub(r"<[^>]+>", "", _training_note(_one_training_image(2)))
    assert among.startswith("1 of 3 cases is an image the model was trained on (its SHA-256")
    assert "Mean Dice: ball 0.900 on it, 0.800 on the others. " in among and "cases are" not in among


def test_results_left_out_of_a_folder_the_sheets_cases_share_are_named_by_their_files_not_the_folder(tmp_path):
    """Results of cases no longer in the sheet were named by their folder, once per case, with "delete their folders
    to tidy up": for a folder that also holds results of the sheet's cases (one ``medseg infer -o`` folder, or the
    results folder itself) that named it twice and said to delete the sheet's own results. Such a folder's left-out
    cases are named by their files (``extra/old1_*``), a folder of left-out cases alone once, to delete."""
    for case, seed in (("a", 0), ("old1", 1), ("old2", 2), ("gone1", 3), ("gone2", 4)):
        write_case(tmp_path, case, seed, "exact")
    for case in ("a", "old1", "old2"):  # one flat folder, as medseg infer -o writes
        shutil.copytree(tmp_path / "cases" / case, tmp_path / "extra", dirs_exist_ok=True)
        shutil.rmtree(tmp_path / "cases" / case)
    for case in ("gone1", "gone2"):  # a folder of left-out results only
        shutil.copytree(tmp_path / "cases" / case, tmp_path / "cases" / "gone", dirs_exist_ok=True)
        shutil.rmtree(tmp_path / "cases" / case)
    sheet = tmp_path / "data" / "samples.tsv"
    sheet.parent.mkdir()
    sheet.write_text("case_id\timage\treference\na\t../inputs/0_image.nii.gz\t../inputs/0_label.nii.gz\n")
    built = build_report(tmp_path, tmp_path / "r.html", sheet=sheet)
    summary = json.loads(built.summary.read_text())
    assert (built.cases, built.failed) == (1, 0)
    assert summary["left_out"] == built.left_out == ["cases/gone/", "extra/old1_*", "extra/old2_*"]
    assert summary["left_out_cases"] == built.left_out_cases == ["gone1", "gone2", "old1", "old2"]
    assert ("4 cases not in the sample sheet have results left out of the report: cases/gone/, extra/old1_*, "
            "extra/old2_*; delete them to tidy up.") in (tmp_path / "r.html").read_text()
    # and counted among the totals at the top
    assert '<div class="tile"><b>4</b>left out (not in the sheet)</div>' in (tmp_path / "r.html").read_text()


@pytest.mark.parametrize("folders, cases, said", [
    (["cases/c03/"], 1, "1 case not in the sample sheet has results left out of the report: cases/c03/; "
                        "delete the folder to tidy up"),
    (["cases/gone/"], 2, "2 cases not in the sample sheet have results left out of the report: cases/gone/; "
                         "delete the folder to tidy up"),
    (["cases/c03/", "cases/c04/"], 2, "2 cases not in the sample sheet have results left out of the report: "
                                      "cases/c03/, cases/c04/; delete the folders to tidy up"),
    (["extra/c03_*"], 1, "1 case not in the sample sheet has results left out of the report: extra/c03_*; "
                         "delete them to tidy up"),
    (["cases/gone/", "extra/c03_*"], 3, "3 cases not in the sample sheet have results left out of the report: "
                                        "cases/gone/, extra/c03_*; delete them to tidy up"),
])
def test_the_left_out_sentence_counts_cases_not_names(folders, cases, said):
    """"3 results of cases … are left out" counted the names it gave, where a folder of left-out results named once
    holds several cases ("1 result of a case … is left out: cases/gone/" for two). It counts the cases."""
    from medseg.report.expected_cases import left_out_text

    assert left_out_text(folders, cases) == said
