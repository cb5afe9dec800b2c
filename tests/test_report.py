"""The cohort report on synthetic results folders written in the contract layout, and in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

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

from medseg.report.build import build_report


@pytest.mark.parametrize("stored_as", ["int16", "float32"])
def test_the_overlay_holds_no_volume_of_its_image_or_masks(tmp_path, monkeypatch, stored_as):
    """The overlay of a 512×512×1000 CT whose labels span it held the union of the labels and the focus label's mask
    (with the temporaries that made them) and the crop of the image stored, as float32 and sorted for its window:
    about 12 bytes per voxel, 3 GB. The masks are made a block of slices at a time, the image is read a slab at a
    time, keeping the three planes drawn and, for the window, counts of its stored values (float voxels: of their
    bits, over two readings): under a byte per voxel here, and the same picture, byte for byte."""
    import tracemalloc

    from medseg.io.nifti import load_image
    from medseg.report import overlay

    shape = (160, 144, 128)
    i, j, k = np.indices(shape, sparse=True)
    labels = np.zeros(shape, np.uint8)
    labels[2:-2, 3:-3, 1:-1] = 1  # the crop box is the whole grid
    labels[30:60, 20:50, 10:40] = 2
    labels = np.asfortranarray(labels)  # as nibabel reads a label file: blocks go across the last axis
    reference = np.asfortranarray(np.roll(labels, 2, axis=1))
    stored = ((i * 7 + j * 3 + k * 11) % 900 - 300).astype(np.int16)
    affine = np.diag([-0.8, -0.8, 1.5, 1.0])
    if stored_as == "int16":
        image = nib.Nifti1Image(stored, affine)
        image.header.set_slope_inter(0.5, -1024.0)
    else:  # its window from the order of its values' bits, in two readings
        image = nib.Nifti1Image(stored * np.float32(0.37) - np.float32(1024.0), affine)
    path = tmp_path / "ct.nii.gz"
    nib.save(image, path)
    legend = [("1", "body"), ("2", "box")]
    whole = overlay.CaseArrays(labels, affine, nib.load(path).get_fdata(dtype=np.float32), reference)
    expected = overlay.render_overlay(whole, legend, "2", focus_faces=("k-",))

    monkeypatch.setattr(overlay, "_FOCUS_BLOCK_VOXELS", 144 * 128, raising=False)  # a slice at a time
    monkeypatch.setattr(overlay, "_IMAGE_SLAB_VOXELS", 160 * 144, raising=False)
    part = overlay.CaseArrays(labels, affine, overlay.ImageFile(path, load_image(path, mmap=False)), reference)
    overlay.render_overlay(part, legend, "1")  # the modules each step imports, loaded
    tracemalloc.start()
    try:
        drawn = overlay.render_overlay(part, legend, "2", focus_faces=("k-",))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert drawn == expected and part.notes == []
    # 21 bytes per voxel before (int16), 4.4 (float32); now the picture (1.5 MB) and the counts (float32: 2 MB)
    assert peak < labels.size + (2 << 20), f"{peak / labels.size:.2f} bytes per voxel"


def test_each_cases_volumes_are_freed_and_given_back_before_the_next_case_is_read(tmp_path, monkeypatch):
    """The medseg command keeps the memory it frees (its allocator's thresholds are raised for speed): the volumes of
    one case stayed resident in holes the next case's larger ones did not fit, and the report of three whole-body
    CTs peaked at 1.03 GB for 0.78 GB of arrays alive at once. After each case is checked and after its overlay, its
    volumes are gone and the free memory is given back."""
    import weakref

    from medseg.report import build, checks, overlay

    for index, how in enumerate(("erode", "shift", "dilate3")):
        write_case(tmp_path, f"c{index}", index, how)
    volumes, releases = [], []
    real_read, real_load = checks.read_segmentation, overlay.load_case_arrays

    def read(case, path, **kwargs):
        labels, affine, source = real_read(case, path, **kwargs)
        volumes.append(weakref.ref(labels))
        return labels, affine, source

    def load(case, *args, **kwargs):
        arrays = real_load(case, *args, **kwargs)
        volumes.extend(weakref.ref(array) for array in (arrays.prediction, arrays.reference))
        return arrays

    def release():
        releases.append((len(volumes), sum(volume() is not None for volume in volumes)))
        return True

    monkeypatch.setattr(checks, "read_segmentation", read)
    monkeypatch.setattr(overlay, "load_case_arrays", load)
    monkeypatch.setattr(build, "release_free_memory", release)
    built = build_report(tmp_path, tmp_path / "report.html")
    assert built.overlays == 3
    # volumes seen so far, and still alive, at each release: 3 checks (the segmentation), then 3 overlays (the
    # segmentation as read, then as drawn with the reference)
    assert releases == [(1, 0), (2, 0), (3, 0), (6, 0), (9, 0), (12, 0)]


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


def test_the_console_summary_counts_one_case_in_the_singular(tmp_path, capsys):
    """It read "1 cases (1 failed, …), 1 overlays"; the workflow's console line is matched in either number."""
    from medseg.cli import main

    empty = tmp_path / "results"
    empty.mkdir()
    sheet = tmp_path / "samples.tsv"
    sheet.write_text("case_id\timage\na\ta.nii.gz\n")
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(empty), "--sheet", str(sheet)])
    assert exit_info.value.code == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("1 case (1 failed, 1 flagged for review, failures included), 0 overlays in "), first
    assert '<p class="sub">1 case in <code>' in (empty / "report.html").read_text()  # the page said "1 cases"
    rules = (Path(__file__).resolve().parents[1] / "workflow" / "rules" / "cohort.smk").read_text()
    awk = re.search(r"awk '[^/]*/(.*?)/", rules).group(1).replace("\\\\", "\\")  # the shell's \( is awk's
    assert re.match(awk, first) and re.match(awk, "12 cases (0 failed")


def test_cli_report(cohort, tmp_path, capsys):
    from medseg.cli import main

    out = tmp_path / "cli" / "report.html"
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(cohort), "-o", str(out), "--dice-threshold", "0.95", "--max-overlays", "0"])
    assert exit_info.value.code == 0
    captured = capsys.readouterr().out
    assert "10 cases (1 failed, " in captured and "0 overlays" in captured
    # which case failed and why, on the console: a cohort run's failure is not only in a log or the page
    lines = captured.splitlines()
    assert lines[1] == "failed: crashed: out of memory <in> the 'tiler'" and lines[2].startswith("wrote "), lines
    summary = json.loads((out.parent / "summary.json").read_text())
    assert summary["settings"]["dice_threshold"] == 0.95
    assert summary["flags"]["low_dice"]["cases"] >= 5  # eroded and shifted balls are under 0.95
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(cohort), "-o", str(out)])
    assert exit_info.value.code == 1
    assert "output exists already; pass --overwrite" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(cohort), "--dice-threshold", "2"])
    assert exit_info.value.code == 2


def test_cli_report_output_names(cohort, tmp_path, capsys):
    """-o names the HTML page: a table's or a record's name is refused (it would be overwritten by the page or
    by the tables written beside it), a folder gets report.html in it, and the tables are named in full."""
    from medseg.cli import main

    def run(*argv):
        with pytest.raises(SystemExit) as exit_info:
            main(["report", str(cohort), "--max-overlays", "0", *argv])
        return exit_info.value.code

    case_sidecar = next(cohort.rglob("c00_seg.json"))
    before = case_sidecar.read_bytes()
    for output in (tmp_path / "summary.json", tmp_path / "cohort.tsv", case_sidecar, tmp_path / "page"):
        assert run("-o", str(output), "--overwrite") == 2
        assert (f"-o {output}: give a file name ending in .html or .htm, or a folder (then report.html is written in "
                "it; a new folder's name ends with /)") in capsys.readouterr().err
    assert case_sidecar.read_bytes() == before and sorted(tmp_path.iterdir()) == []
    for folder, argv in ((tmp_path / "new", f"{tmp_path / 'new'}/"), (tmp_path, str(tmp_path))):
        assert run("-o", argv) == 0
        assert sorted(p.name for p in folder.iterdir()) == ["cohort.tsv", "report.html", "summary.json"]
        assert (f"wrote {folder / 'report.html'}, {folder / 'cohort.tsv'} and {folder / 'summary.json'}"
                in capsys.readouterr().out)
        if folder != tmp_path:
            shutil.rmtree(folder)


def test_overlays_hold_one_cases_volumes_at_a_time(tmp_path, monkeypatch):
    """The previous case's image, segmentation and reference stayed referenced while the next case's were read:
    a report of two 512×512×800 CT cases peaked at 2.6 GB, one of them alone at 1.8 GB."""
    import weakref

    from medseg.report import overlay

    for seed in range(3):
        write_case(tmp_path, f"c{seed}", seed, "erode")
    loaded, alive_at_load = [], []
    real_load = overlay.load_case_arrays

    def load(case, *args, **kwargs):
        alive_at_load.append(sum(ref() is not None for ref in loaded))
        arrays = real_load(case, *args, **kwargs)
        loaded.append(weakref.ref(arrays))
        return arrays

    monkeypatch.setattr(overlay, "load_case_arrays", load)
    outputs = build_report(tmp_path, tmp_path / "r.html")
    assert outputs.overlays == 3 and alive_at_load == [0, 0, 0]


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

    built = build_report(tmp_path, tmp_path / "report.html", dice_threshold=0.7)
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
    assert header[18:20] == ["'-x_dice", "'-x_hd95_mm"] and "'-x_status" in header
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


# a results folder without access at all, or with its files reachable but itself not listable
@pytest.mark.parametrize(("unreadable", "mode"), [("results", 0o000), ("results", 0o311), ("sheet", 0o000)])
def test_a_results_folder_or_sheet_this_user_may_not_read_is_an_error_not_a_usage_error(tmp_path, unreadable, mode):
    """click's own check made it a usage error (exit 2, "Try 'medseg report --help'"); a results folder that could
    not be listed read as one holding no results. It is the library's one line now, exit 1, and nothing is written."""
    import sys

    from conftest import as_plain_user

    results = tmp_path / "results"
    write_case(results, "case01", seed=1, how="good")
    sheet = tmp_path / "samples.tsv"
    sheet.write_text(f"case_id\timage\ncase01\t{results / 'case01.nii.gz'}\n")
    (results if unreadable == "results" else sheet).chmod(mode)
    try:
        run = as_plain_user([sys.executable, "-m", "medseg", "report", str(results), "--sheet", str(sheet),
                             "-o", str(tmp_path / "qa") + "/"])
    finally:
        results.chmod(0o755)
    assert (run.returncode, run.stderr.strip().splitlines()[-1]) == (1, "medseg: error: " + (
        f"{results}: cannot read (permission denied)" if unreadable == "results"
        else f"{sheet}: cannot read the sample sheet (permission denied)")), run.stderr
    assert not (tmp_path / "qa").exists()
