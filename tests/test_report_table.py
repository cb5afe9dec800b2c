"""cohort.tsv (medseg.report.table): model versions per case, honest values, label columns, cells a spreadsheet
reads as text."""

from __future__ import annotations

import hashlib
import json
import re
import shutil

import nibabel as nib
import numpy as np
import pytest
from report_cases import (
    perturb,
    phantom,
    read_tsv,
    section,
    write_case,
    write_case_arrays,
    write_failure,
)

from medseg.errors import MedsegWarning
from medseg.report.build import build_report


def test_the_case_table_says_which_model_version_made_each_case(tmp_path):
    """A retrained model keeps its name: cohort.tsv named only that, so a case made by the old version (a row taken
    out of the sheet, kept as stale) or two results folders' tables could not be told apart by model."""
    for case, seed, version, weights in (("old", 0, "1", "aa" * 32), ("new", 1, "2", "bb" * 32),
                                         ("unversioned", 2, None, None)):
        write_case(tmp_path, case, seed, "exact")
        sidecar = tmp_path / "cases" / case / f"{case}_seg.json"
        record = json.loads(sidecar.read_text())
        record["model"]["version"], record["model"]["weights_sha256"] = version, weights
        sidecar.write_text(json.dumps(record))
    write_failure(tmp_path, "failed")
    with pytest.warns(MedsegWarning, match="the figures pool the cases of 3 models"):
        outputs = build_report(tmp_path, tmp_path / "r.html")
    header = outputs.table.read_text().splitlines()[0].split("\t")
    assert header[6:9] == ["model", "model_version", "model_weights_sha256"]
    rows = {row["case_id"]: row for row in read_tsv(outputs.table)}
    assert {case: (row["model"], row["model_version"], row["model_weights_sha256"]) for case, row in rows.items()} == {
        "old": ("tiny-test", "1", "aa" * 32), "new": ("tiny-test", "2", "bb" * 32),
        "unversioned": ("tiny-test", "", ""), "failed": ("", "", "")}


def test_a_case_that_failed_at_inference_names_no_model_of_the_earlier_sidecar_it_keeps(tmp_path):
    """A case run again with a new model version that failed at inference keeps the earlier run's sidecar: cohort.tsv
    named that run's model and version as the one that made the case, which made nothing."""
    folder = write_case(tmp_path, "again", 0, "exact")
    record = json.loads((folder / "again_seg.json").read_text())
    record["model"]["version"] = "1"
    (folder / "again_seg.json").write_text(json.dumps(record))
    (folder / "again_metrics.json").unlink()
    write_failure(tmp_path, "again")
    (row,) = read_tsv(build_report(tmp_path, tmp_path / "r.html").table)
    assert (row["status"], row["failed_stage"]) == ("failed", "infer")
    assert (row["model"], row["model_version"], row["model_weights_sha256"]) == ("", "", "")


def test_the_case_table_names_the_files_hashes_device_and_precision_each_case_was_made_with(tmp_path):
    """A QA database fed from cohort.tsv alone could not tie a row to the exact input, segmentation and reference
    files, nor to the device and precision that made it: the sidecar and metrics record them, the table did not."""
    folder = write_case(tmp_path, "made", 0, "exact")
    sidecar = folder / "made_seg.json"
    record = json.loads(sidecar.read_text())
    segmentation_sha256 = hashlib.sha256((folder / "made_seg.nii.gz").read_bytes()).hexdigest()
    record.update({"segmentation_sha256": segmentation_sha256, "device": "cuda:0", "precision": "fp16",
                   "created": "2026-12-07T10:00:00+00:00"})
    sidecar.write_text(json.dumps(record))
    metrics = json.loads((folder / "made_metrics.json").read_text())
    metrics["reference_sha256"] = "ef" * 32
    (folder / "made_metrics.json").write_text(json.dumps(metrics))
    write_failure(tmp_path, "failed")
    header, rows = read_tsv_header_and_rows(build_report(tmp_path, tmp_path / "r.html").table)
    columns = ["input_sha256", "segmentation_sha256", "reference_sha256", "device", "precision", "created"]
    assert header[header.index("reference") + 1:header.index("reference") + 7] == columns
    made = rows["made"]
    assert [made[column] for column in columns] == [
        record["input_sha256"], segmentation_sha256, metrics["reference_sha256"], "cuda:0", "fp16",
        "2026-12-07T10:00:00+00:00"]
    assert len(made["input_sha256"]) == 64
    assert [rows["failed"][column] for column in columns] == [""] * 6


def read_tsv_header_and_rows(path):
    return path.read_text(encoding="utf-8").splitlines()[0].split("\t"), {row["case_id"]: row for row in read_tsv(path)}


# the tiny case's field of view is far from the phantom model's training volumes, warned of as it is segmented: not
# what this test looks at
@pytest.mark.filterwarnings("ignore:.*field of view unlike the volumes model phantom:medseg.errors.MedsegWarning")
def test_values_near_the_threshold_and_tiny_volumes_stay_honest_everywhere(tmp_path):
    """A Dice just below the threshold is never rounded onto it (summary rows, cohort.tsv), and labels of a few
    nanolitres (20 µm voxels) are neither written as 0 ml in the sidecar nor flagged as empty predictions.
    Before: the summary showed 0.700 and the TSV 0.7 beside a low_dice flag; the sidecar rounded volumes to
    4 decimals, so every label of such an image read as empty."""
    from medseg.inference import Segmenter
    from medseg.package import load_package
    from medseg.segment import segment_case
    from medseg.synthetic import make_phantom

    for case_id, dice in (("near_a", 0.69996), ("near_b", 0.6999996)):
        folder = write_case(tmp_path, case_id, 0, "exact")
        metrics = json.loads((folder / f"{case_id}_metrics.json").read_text())
        metrics["labels"]["1"]["dice"] = dice
        (folder / f"{case_id}_metrics.json").write_text(json.dumps(metrics))
    phantom = make_phantom((40, 36, 12), seed=3)
    tiny = tmp_path / "inputs" / "tiny.nii.gz"
    nib.save(nib.Nifti1Image(phantom.image, np.diag([0.01, 0.01, 0.02, 1.0])), tiny)
    outputs = segment_case(tiny, Segmenter(load_package("phantom"), device="cpu"), out_dir=tmp_path / "cases" / "tiny")
    sidecar = json.loads(outputs.sidecar.read_text())
    voxel_ml = 0.01 * 0.01 * 0.02 / 1000  # to float32 precision: the header stores the affine so
    for value, count in sidecar["label_voxels"].items():
        assert count > 0 and sidecar["label_volume_ml"][value] == pytest.approx(count * voxel_ml, rel=1e-6)
        assert round(count * voxel_ml, 4) == 0  # what the sidecar used to hold

    with pytest.warns(MedsegWarning) as told:  # the phantom model's labels beside the test model's, pooled
        built = build_report(tmp_path, tmp_path / "report.html", dice_threshold=0.7)
    assert [str(w.message).split(": ")[1] for w in told] == [
        "label values name different labels in different cases (1", "the figures pool the cases of 2 models (tiny-test "
        "version 3"]
    rows = {row["case_id"]: row for row in read_tsv(built.table)}
    assert rows["near_a"]["ball_dice"] == rows["near_a"]["min_dice"] == "0.69996"
    assert rows["near_b"]["ball_dice"] == "0.6999996" and "low_dice(ball)" in rows["near_b"]["flags"]
    assert "empty_prediction" not in rows["tiny"]["flags"]
    page = built.html.read_text(encoding="utf-8")
    dice_row = section(page, "Summary per label").split("<tr>")[2]  # label 1's first row: Dice
    mean, std = (0.69996 + 0.6999996) / 2, np.std([0.69996, 0.6999996], ddof=1)
    assert mean < 0.7 and f"{mean:.3f}" == "0.700"  # what the row used to show
    assert re.findall(r'<td class="num">([^<]*)</td>', dice_row)[1:] == ["0.69998", "0.69998", f"{std:.3g}",
                                                                         "0.69996", "0.6999996"]
    card = page[page.index('<h3>#'):]
    card = card[card.index(" tiny "):]
    volume = sidecar["label_volume_ml"]["1"]
    assert f'<td class="num">{volume:.3g}</td>' in card[: card.index("</table>")]


def test_a_tiny_dice_is_not_written_as_zero():
    from medseg.report.table import _dice

    assert [_dice(v, 0.7) for v in (4e-7, 0.0, 1.0, None, 0.5, 0.123456789, 0.6999996, 0.99999996, 1e-12)] == [
        "0.0000004", "0", "1", None, "0.5", "0.123457", "0.6999996", "0.99999996", "1e-12"]


def test_a_label_named_like_a_case_column_gets_its_value_as_prefix(tmp_path):
    """A label named ``min`` wrote its Dice into the case's ``min_dice`` column."""
    image, labels, affine = phantom(0)
    write_case_arrays(tmp_path, "c", image, labels, perturb(labels, "erode"), affine,
                      labels_named={0: "background", 1: "min", 2: "error"})  # error_dice clashes with nothing
    outputs = build_report(tmp_path, tmp_path / "r.html")
    header = outputs.table.read_text().splitlines()[0].split("\t")
    assert len(header) == len(set(header))
    assert {"1_min_dice", "1_min_status", "error_dice", "error_status", "min_dice", "error"} <= set(header)
    (row,) = read_tsv(outputs.table)
    assert float(row["min_dice"]) == min(float(row["1_min_dice"]), float(row["error_dice"])) < 1


def test_a_label_name_that_a_spreadsheet_would_run_as_a_formula_heads_its_columns_as_text(tmp_path):
    """A label named ``-x`` (a model.json's name) headed its columns ``-x_dice`` ...: the header row escaped the
    leading ``'`` that the text cells get, and a spreadsheet read the column names as formulas (#NAME?)."""
    image, labels, affine = phantom(0)
    write_case_arrays(tmp_path, "c", image, labels, perturb(labels, "erode"), affine,
                      labels_named={0: "background", 1: "-x", 2: "=cmd"})
    outputs = build_report(tmp_path, tmp_path / "r.html")
    header = outputs.table.read_text().splitlines()[0].split("\t")
    assert header[:3] == ["rank", "case_id", "status"]
    first = header.index("error") + 1  # the label columns follow the case's
    assert header[first:first + 2] == ["'-x_dice", "'-x_hd95_mm"] and "'-x_status" in header
    assert "_cmd_dice" in header  # "=" is not a column name's character: the name's prefix has none to escape
    assert not [cell for cell in header if cell.startswith(("=", "+", "-", "@"))]
    (row,) = read_tsv(outputs.table)
    assert 0 < float(row["'-x_dice"]) < 1 and float(row["_cmd_dice"]) == 1


def test_tsv_cells_with_quotes_and_control_characters_read_back(tmp_path):
    from medseg.report.table import write_tsv

    header = ["case_id", "error"]
    rows = [{"case_id": '"quoted" start', "error": 'a\x00b\u2028c "d"'}, {"case_id": "plain", "error": None}]
    write_tsv(header, rows, tmp_path / "t.tsv")
    assert read_tsv(tmp_path / "t.tsv") == [{"case_id": '"quoted" start', "error": 'a b c "d"'},
                                            {"case_id": "plain", "error": ""}]
    assert (tmp_path / "t.tsv").read_text().splitlines()[2] == "plain\t"  # plain cells stay unquoted


def test_tsv_text_cells_that_a_spreadsheet_would_run_as_formulas_stay_text(tmp_path):
    """A case id, path or error beginning with =, +, - or @ (a file named =HYPERLINK(...).nii.gz) was written as it
    is, and a spreadsheet opening cohort.tsv ran it as a formula; numbers keep their sign."""
    from medseg.report.table import write_tsv

    header = ["case_id", "input", "error", "rank", "volume"]
    rows = [{"case_id": '=HYPERLINK("http://x","y")', "input": "+cmd|' /C calc'!A0", "error": "@SUM(1+1)",
             "rank": -3, "volume": -0.5},
            {"case_id": "-x", "input": "/data/=a.nii.gz", "error": "-1.5", "rank": 1, "volume": 2.0}]
    write_tsv(header, rows, tmp_path / "t.tsv")
    assert read_tsv(tmp_path / "t.tsv") == [
        {"case_id": "'=HYPERLINK(\"http://x\",\"y\")", "input": "'+cmd|' /C calc'!A0", "error": "'@SUM(1+1)",
         "rank": "-3", "volume": "-0.5"},
        {"case_id": "'-x", "input": "/data/=a.nii.gz", "error": "-1.5", "rank": "1", "volume": "2"}]


def test_label_columns_stay_unique_after_renaming():
    from medseg.report.collect import LabelResult
    from medseg.report.table import label_columns

    class Case:
        def __init__(self, names):
            self.names = names

        def labels(self):
            return [LabelResult(v, n, "ok") for v, n in self.names.items()]

    columns = label_columns([Case({"1": "a b", "2": "a/b", "3": "1_a_b"})])
    assert len(set(columns.values())) == 3 and columns == {"1": "1_a_b", "2": "2_a_b", "3": "label_3"}


def test_label_columns_keep_the_letters_of_any_script():
    """A multi-organ model's names in Chinese or with umlauts were all underscores: 肝 and 脾 both `_`, written
    `1___dice` and `3___dice`, and 'part 1 ü' and 'part 1 ä' both `part_1__`, told apart only by their values."""
    from medseg.report.collect import LabelResult
    from medseg.report.table import label_columns

    class Case:
        def labels(self):
            names = {"1": "肝", "2": "part 1 ü", "3": "脾", "4": "part 1 ä", "5": "u\u0308ber", "6": "?"}
            return [LabelResult(v, n, "ok") for v, n in names.items()]

    assert label_columns([Case()]) == {"1": "肝", "2": "part_1_ü", "3": "脾", "4": "part_1_ä", "5": "über", "6": "_"}


def test_the_case_table_says_when_each_case_was_segmented_and_when_scored(tmp_path):
    """`created` holds the segmentation's time, else the scoring's: a prediction scored without a sidecar showed its
    scoring time there, as a segmentation time would show. `segmented_at` and `scored_at` say which: the sidecar's
    time and the metrics' own, each empty where that record is not the case's (no sidecar; a case that failed at
    inference, which keeps an earlier run's sidecar)."""
    times = {"made": ("2026-12-07T10:00:00+00:00", "2026-12-07T11:30:00+00:00"),
             "unsided": (None, "2026-12-07T12:00:00+00:00")}
    for case, (segmented, scored) in times.items():
        folder = write_case(tmp_path, case, 0, "exact")
        sidecar, metrics = folder / f"{case}_seg.json", folder / f"{case}_metrics.json"
        if segmented is None:
            sidecar.unlink()  # a prediction scored as it was given (medseg evaluate), without a sidecar
        else:
            sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), "created": segmented}))
        metrics.write_text(json.dumps({**json.loads(metrics.read_text()), "created": scored}))
    folder = write_case(tmp_path, "again", 1, "exact")
    (folder / "again_metrics.json").unlink()
    write_failure(tmp_path, "again")  # failed at inference: the earlier run's sidecar is not this run's
    header, rows = read_tsv_header_and_rows(build_report(tmp_path, tmp_path / "r.html").table)
    assert header[-3:] == ["segmented_at", "scored_at", "kept_by_failed_job"]
    assert {case: (row["created"], row["segmented_at"], row["scored_at"]) for case, row in rows.items()} == {
        "made": ("2026-12-07T10:00:00+00:00", "2026-12-07T10:00:00+00:00", "2026-12-07T11:30:00+00:00"),
        "unsided": ("2026-12-07T12:00:00+00:00", "", "2026-12-07T12:00:00+00:00"),
        "again": ("", "", "")}



def test_the_documented_columns_are_the_header_the_report_writes(tmp_path):
    """docs/report.md lists cohort.tsv's columns in prose, and each new last column (failed_job, segmented_at,
    scored_at, kept_by_failed_job) was added to the code and the page by hand: the header a report writes is the
    documented columns in their order, a label's columns as ``<label>_dice`` and so on, the last ones after them."""
    from documents import read

    from medseg.report.result_records import METRIC_FIELDS
    from medseg.report.table import CASE_COLUMNS, LAST_COLUMNS

    write_case(tmp_path, "c1", 0, "exact")
    header, _ = read_tsv_header_and_rows(build_report(tmp_path, tmp_path / "r.html").table)
    per_label = [*METRIC_FIELDS, "status"]
    first_label = header[len(CASE_COLUMNS):len(CASE_COLUMNS) + len(per_label)]
    prefix = first_label[0].removesuffix("_dice")
    assert header[:len(CASE_COLUMNS)] == list(CASE_COLUMNS) and header[-len(LAST_COLUMNS):] == list(LAST_COLUMNS)
    assert first_label == [f"{prefix}_{key}" for key in per_label]
    text = read("docs/report.md")
    text = " ".join(text[text.index("`cohort.tsv`: one row per case"):text.index("A Dice is shown to three")].split())
    documented = [*CASE_COLUMNS, *(f"<label>_{key}" for key in per_label), *LAST_COLUMNS]
    places, position = [], 0
    for column in documented:
        found = text.find(f"`{column}`", position)
        assert found >= 0, f"{column} not documented after {places[-1][0] if places else 'the start'}"
        places.append((column, found))
        position = found
    assert text.index("After the label columns") < dict(places)["failed_job"]
    assert header[-4:] == ["failed_job", "segmented_at", "scored_at", "kept_by_failed_job"]


def test_a_case_two_failed_jobs_kept_names_both(tmp_path):
    """The inference and the scoring job of one batch can both fail as a whole and each keep a case from an earlier
    run (summary.json lists it in both jobs' ``kept``): kept_by_failed_job named the job read last alone."""
    write_case(tmp_path, "a", 0, "exact")
    write_case(tmp_path, "b", 1, "exact")
    (tmp_path / "jobs").mkdir()
    for stage in ("infer", "evaluate"):
        (tmp_path / "jobs" / f"batch001.{stage}.json").write_text(json.dumps({
            "schema": "medseg-cohort-job/1", "cases": [],
            "job_error": {"error": f"{stage} broke", "error_type": "RuntimeError", "log": None,
                          "kept_earlier": ["a", "b"] if stage == "infer" else ["a"]}}))
    outputs = build_report(tmp_path, tmp_path / "r.html")
    rows = {row["case_id"]: row for row in read_tsv(outputs.table)}
    assert [job["kept"] for job in json.loads(outputs.summary.read_text())["failed_jobs"]] == [["a"], ["a", "b"]]
    assert {case: row["kept_by_failed_job"] for case, row in rows.items()} == {
        "a": "batch001.evaluate;batch001.infer", "b": "batch001.infer"}


def test_a_case_failed_as_a_duplicate_names_no_reference_it_was_not_scored_against(tmp_path):
    """Two metrics files of one case id in a folder fail the case (DuplicateResult), and its row dropped the columns
    of the scores the report does not take (scored_at, created, the hashes), but kept ``reference`` from the first
    file read: a reference the case was not scored against as the report shows it. A failed case's row names the
    reference its failure record names (the one it failed to be scored against), here none."""
    results = tmp_path / "results"
    folder = write_case(results, "c1", 0, "exact")
    other = write_case(tmp_path / "elsewhere", "c1", 1, "erode")
    for metrics, reference in ((folder / "c1_metrics.json", "/data/first_label.nii.gz"),
                               (other / "c1_metrics.json", "/data/second_label.nii.gz")):
        record = json.loads(metrics.read_text())
        record["reference"] = reference
        metrics.write_text(json.dumps(record))
    shutil.copy(other / "c1_metrics.json", folder / "copy_metrics.json")
    # beside it, a case failed at scoring (its failure record names its reference) and a scored one
    record = json.loads(write_failure(results, "c2", stage="evaluate").read_text())
    record["reference"] = "/data/c2_label.nii.gz"
    (results / "cases" / "c2" / "c2_failed.json").write_text(json.dumps(record))
    write_case(results, "c3", 2, "exact")
    rows = {row["case_id"]: row for row in read_tsv(build_report(results, tmp_path / "r.html").table)}
    assert (rows["c1"]["status"], rows["c1"]["error_type"]) == ("failed", "DuplicateResult")
    assert (rows["c1"]["reference"], rows["c1"]["reference_sha256"], rows["c1"]["scored_at"]) == ("", "", "")
    assert rows["c2"]["reference"] == "/data/c2_label.nii.gz"
    scored = json.loads((results / "cases" / "c3" / "c3_metrics.json").read_text())["reference"]
    assert scored and rows["c3"]["reference"] == scored


def test_the_page_names_no_reference_the_case_table_leaves_out_of_a_duplicate(tmp_path):
    """cohort.tsv left out the reference of a case failed as a duplicate (two files claiming to be its metrics), but
    the case's entry on the page still named the first file's ('reference /data/first_label.nii.gz'): the two said
    otherwise of one case. The page names the reference the table names: none here, a scored case's its own."""
    results = tmp_path / "results"
    folder = write_case(results, "c1", 0, "exact")
    record = json.loads((folder / "c1_metrics.json").read_text())
    (folder / "c1_metrics.json").write_text(json.dumps(record | {"reference": "/data/first_label.nii.gz"}))
    (folder / "copy_metrics.json").write_text(json.dumps(record | {"reference": "/data/second_label.nii.gz"}))
    write_case(results, "c3", 2, "exact")
    outputs = build_report(results, tmp_path / "r.html", max_overlays=0)
    rows = {row["case_id"]: row for row in read_tsv(outputs.table)}
    assert (rows["c1"]["error_type"], rows["c1"]["reference"]) == ("DuplicateResult", "")
    page = outputs.html.read_text()
    assert "first_label" not in page and "second_label" not in page
    assert f"reference <code>{rows['c3']['reference']}</code>" in page
