"""The cohort report on synthetic results folders written in the contract layout, and in headless Chromium."""

from __future__ import annotations

import html as html_module
import json
import re
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from report_cases import (
    now,
    perturb,
    phantom,
    read_tsv,
    section,
    shifted,
    write_case,
    write_case_arrays,
    write_failure,
)

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
    assert "empty prediction 1, failed 1, no reference 1, scored 7" in page


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


def test_the_same_weights_under_an_edited_model_json_are_another_model_in_the_provenance(tmp_path):
    """Cases segmented before and after a hand edit of model.json (labels swapped) were counted as one model."""
    for case, seed, config in (("before", 0, "c1" * 32), ("after", 1, "c2" * 32), ("again", 2, "c2" * 32)):
        write_case(tmp_path, case, seed, "exact")
        sidecar = tmp_path / "cases" / case / f"{case}_seg.json"
        record = json.loads(sidecar.read_text())
        record["model"]["config_sha256"] = config
        sidecar.write_text(json.dumps(record))
    built = build_report(tmp_path, tmp_path / "r.html")
    models = json.loads(built.summary.read_text())["provenance"]["models"]
    assert [(m["config_sha256"], m["cases"]) for m in models] == [("c2" * 32, 2), ("c1" * 32, 1)]
    assert len({m["weights_sha256"] for m in models}) == 1
    page = (tmp_path / "r.html").read_text()
    # shortened, and marked so, with the whole hash on hover (twelve bare digits read as a whole hash)
    assert "<th>model.json SHA-256</th>" in page and f"<code title=\"{'c1' * 32}\">{'c1' * 6}…</code>" in page


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


def test_the_header_names_the_model_version_as_the_model_card_does(built, tmp_path):
    """The header said "model: tiny-test 3", which reads as a model of that name; the model card and medseg models
    say "version 3". A model without a recorded version is named alone."""
    page = built.html.read_text(encoding="utf-8")
    assert re.search(r'<p class="sub">.*<br>model: tiny-test version 3 · medseg ', page)
    write_case(tmp_path, "unversioned", 0, "exact")
    _set_model(tmp_path, "unversioned", None, "cd" * 32)
    page = build_report(tmp_path, tmp_path / "r.html").html.read_text(encoding="utf-8")
    assert re.search(r"<br>model: tiny-test · medseg ", page)


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
    with caplog.at_level("WARNING"):
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
    with caplog.at_level("WARNING"):
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
