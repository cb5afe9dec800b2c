"""The report as a whole (medseg.report.build): its outputs and counts, which cases get an overlay, the
refusals that leave nothing behind, and the warnings about the cohort it reports on."""

from __future__ import annotations

import json
import re

import pytest
from chromium_page import CHROMIUM, page_width, probe_page
from report_cases import (
    flag_set,
    perturb,
    phantom,
    read_tsv,
    write_case,
    write_case_arrays,
    write_failure,
)

from medseg.errors import InputError, MedsegWarning, OutputExistsError
from medseg.report.build import build_report


def test_outputs_and_counts(built):
    assert built.html.is_file() and built.table.is_file() and built.summary.is_file()
    assert built.table.parent == built.html.parent
    summary = json.loads(built.summary.read_text())
    assert summary["schema"] == "medseg-summary/1"
    assert summary["cases"] == {"total": 10, "scored": 8, "no_reference": 1, "failed": 1, "flagged": 3, "empty": 0,
                                "in_training_set": 0}
    assert (built.cases, built.failed, built.flagged, built.overlays) == (10, 1, 3, 9)
    assert summary["flags"]["failed"] == {"cases": 1, "flags": 1}
    assert summary["flags"]["volume_outlier"]["cases"] == 1
    assert summary["provenance"]["models"] == [
        {"name": "tiny-test", "version": "3", "weights_sha256": "ab" * 32, "config_sha256": None,
         "settings_sha256": None, "cases": 9}]
    assert "both_empty" in summary["policy"]["empty_masks"]


def test_overlay_limit_keeps_the_worst(cohort, tmp_path):
    outputs = build_report(cohort, tmp_path / "r.html", max_overlays=2)
    page = outputs.html.read_text()
    assert outputs.overlays == 3 and page.count('class="overlay"') == 3
    rows = read_tsv(outputs.table)
    cards = page.split('<div class="case')[1:]
    names = [re.search(r"<h3>#\d+ (.*?) <span", card).group(1) for card in cards]
    drawn = [name for name, card in zip(names, cards) if 'class="overlay"' in card]
    # the failed case has no segmentation: the two worst with one are the bad case and the next; the case without
    # a reference has a budget of its own (the overlay is all a reader can check it by)
    assert drawn == [rows[1]["case_id"], rows[2]["case_id"], "noref_big"]
    assert page.count("only the 2 worst scored or failed cases get one") == 6
    assert json.loads(outputs.summary.read_text())["settings"]["overlays_drawn"] == 3
    none = build_report(cohort, tmp_path / "none.html", max_overlays=0, overwrite=True).html.read_text()
    assert 'class="overlay"' not in none and "only the 0 worst" not in none
    assert none.count("no overlay: none drawn (max_overlays=0)") == 9
    assert "<li><b>failed</b>: at stage " in none  # not "failed: failed at stage"


def test_without_references(tmp_path):
    for seed, how in enumerate(["exact", "erode", "shift", "exact", "exact"]):
        write_case(tmp_path, f"n{seed}", seed, how, reference=False)
    blank = tmp_path / "cases" / "n4" / "n4_seg.json"
    record = json.loads(blank.read_text())
    record["label_volume_ml"]["2"] = 0.0  # as if the box had been predicted empty
    blank.write_text(json.dumps(record))
    outputs = build_report(tmp_path, tmp_path / "report.html")
    summary = json.loads(outputs.summary.read_text())
    assert summary["cases"] == {"total": 5, "scored": 0, "no_reference": 5, "failed": 0, "flagged": 1, "empty": 0,
                                "in_training_set": 0}
    assert summary["labels"]["1"]["dice"]["n"] == 0 and summary["labels"]["1"]["dice"]["mean"] is None
    assert summary["labels"]["1"]["pred_volume_ml"]["n"] == 5
    rows = read_tsv(outputs.table)
    assert rows[0]["case_id"] == "n4" and flag_set(rows[0]) == {"empty_prediction(box)"}
    page = outputs.html.read_text()
    assert 'alt="Dice' not in page and 'alt="Predicted volume (ml) per label' in page
    assert page.count('class="overlay"') == 5


def test_refusals_leave_nothing_behind(cohort, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="no case results found"):
        build_report(empty, empty / "report.html")
    assert list(empty.iterdir()) == []
    with pytest.raises(InputError, match="no such results folder"):
        build_report(tmp_path / "missing", tmp_path / "report.html")
    out = tmp_path / "out" / "report.html"
    out.parent.mkdir()
    (out.parent / "summary.json").write_text("{}")
    with pytest.raises(OutputExistsError, match="summary.json: output exists already"):
        build_report(cohort, out)
    assert sorted(p.name for p in out.parent.iterdir()) == ["summary.json"]
    build_report(cohort, out, overwrite=True)
    assert sorted(p.name for p in out.parent.iterdir()) == ["cohort.tsv", "report.html", "summary.json"]


def test_the_overlay_shows_the_flagged_label_and_the_page_wraps_long_paths(tmp_path):
    """A case flagged for one label's border contact was drawn through another label with a lower Dice, which
    hid the reason; a long path in an error or a flag pushed a 600 px page sideways (and shrank the print)."""
    from medseg.report.build import _focus_label
    from medseg.report.checks import check_segmentation
    from medseg.report.collect import collect_results
    from medseg.report.flags import flag_cases

    image, labels, affine = phantom(3)
    prediction = perturb(labels, "erode")  # the ball's Dice is the lower one
    prediction[0, 10:14, 15:18] = 2  # the box leaks onto the first i face
    write_case_arrays(tmp_path, "leaky", image, labels, prediction, affine)
    deep = "/".join(["hospital_radiology_department_archive"] * 6)
    failure = write_failure(tmp_path, "lost")
    record = json.loads(failure.read_text())
    record["error"] = f"/{deep}/lost_seg.nii.gz: cannot read"
    failure.write_text(json.dumps(record))
    cases = collect_results(tmp_path)
    leaky = next(case for case in cases if case.case_id == "leaky")
    flags = flag_cases([leaky], [check_segmentation(leaky)])[0]
    assert [flag.text for flag in flags] == ["low_dice(ball)", "touches_border(box)"]
    assert _focus_label(leaky, [f for f in flags if f.code == "touches_border"]) == "2"
    assert _focus_label(leaky, flags) == "1"  # among the flagged labels, the lowest Dice
    built = build_report(tmp_path, tmp_path / "report.html")
    if CHROMIUM is None:
        pytest.skip("chromium is not on PATH (Debian: apt-get install chromium)")
    assert page_width(built.html, tmp_path, 600) <= 600
    # on a phone the failures are stacked, their reason in view: in a table it sat off-screen to the right
    # (500 px: headless Chromium's narrowest window; the layout holds below 600)
    right = probe_page(built.html, tmp_path, 500, "document.querySelector('table.stack td.err')"
                       ".getBoundingClientRect().right - window.innerWidth")
    assert float(right) <= 0  # the old table: 69 px beyond the window
    # and an overlay keeps its own size, scrolling sideways in its box, not the page (shrunk to about 300 px, its
    # labels could not be read)
    shown = probe_page(built.html, tmp_path, 500, "(()=>{const i=document.querySelector('img.overlay');"
                       "return [i.getBoundingClientRect().width, i.naturalWidth, i.parentElement.scrollWidth > "
                       "i.parentElement.clientWidth, document.documentElement.scrollWidth].join(' ')})()")
    width, natural, scrolls, page = shown.split()
    assert float(width) == float(natural) > 500 and scrolls == "true" and int(page) <= 500
    assert page_width(built.html, tmp_path, 1400) <= 1400


def test_a_report_made_while_a_cohort_run_writes_says_so(tmp_path, caplog, monkeypatch):
    """A report made by hand while a workflow run held the results folder showed the cases segmented so far, those
    not yet scored as "no reference", without a word that the run was still going."""
    from medseg.io.folder_claim import claimed, holder_text

    results = tmp_path / "out"
    write_case(results, "c0", 0, "exact")
    monkeypatch.delenv("MEDSEG_COHORT_RUN", raising=False)
    with claimed(results, "cohort run"):  # the claim a workflow run holds on its results folder
        with caplog.at_level("WARNING", logger="medseg"), pytest.warns(MedsegWarning, match="is still writing"):
            built = build_report(results, tmp_path / "during" / "report.html")
        summary = json.loads(built.summary.read_text())
        assert summary["run_in_progress"] == holder_text()
        assert f"a cohort run is still writing to this folder ({holder_text()})" in caplog.text
        assert "<b>A cohort run was still writing to this folder</b>" in built.html.read_text(encoding="utf-8")
        # the run's own report step (the Snakefile names the run to its jobs): nothing to say
        monkeypatch.setenv("MEDSEG_COHORT_RUN", holder_text())
        own = build_report(results, tmp_path / "own" / "report.html")
        assert json.loads(own.summary.read_text())["run_in_progress"] is None
        assert "still writing" not in own.html.read_text(encoding="utf-8")
    monkeypatch.delenv("MEDSEG_COHORT_RUN")
    after = build_report(results, tmp_path / "after" / "report.html")
    assert json.loads(after.summary.read_text())["run_in_progress"] is None


def test_results_of_models_with_other_labels_are_said_to_be_pooled(tmp_path, caplog):
    """Two models' results in one folder were merged by label number without a word ("1 anterior/ellipsoid")."""
    write_case(tmp_path, "c0", 0, "exact")
    folder = write_case(tmp_path, "c1", 1, "exact")
    for path in (folder / "c1_seg.json", folder / "c1_metrics.json"):
        path.write_text(path.read_text().replace('"ball"', '"anterior"'))
    with caplog.at_level("WARNING", logger="medseg"), pytest.warns(MedsegWarning, match="name different labels"):
        built = build_report(tmp_path, tmp_path / "report.html")
    summary = json.loads(built.summary.read_text())
    assert summary["label_conflicts"] == {"1": ["anterior", "ball"]}
    assert "label values name different labels in different cases (1: anterior / ball)" in caplog.text
    page = built.html.read_text(encoding="utf-8")
    assert ('<p class="warn"><b>Label values mean different things in different cases</b> (1 = anterior / ball)'
            in page)
    # one model's results: nothing to say
    # one model's results, and a case scored without label names (label_1 ...): nothing to say
    write_case(tmp_path / "one", "c0", 0, "exact")
    unnamed = write_case(tmp_path / "one", "a1", 1, "exact")  # read first
    for path in (unnamed / "a1_seg.json", unnamed / "a1_metrics.json"):
        path.write_text(path.read_text().replace('"ball"', '"label_1"'))
    clean = build_report(tmp_path / "one", tmp_path / "one" / "report.html")
    assert clean.cases == 2 and json.loads(clean.summary.read_text())["label_conflicts"] == {}
    header = read_tsv(clean.table)[0].keys()
    assert "ball_dice" in header and "label_1_dice" not in header  # the columns keep the label's name
    assert json.loads(clean.summary.read_text())["labels"]["1"]["name"] == "ball"
    assert 'class="warn"' not in clean.html.read_text(encoding="utf-8")


@pytest.mark.parametrize("settings, message", [
    ({"dice_threshold": 2.0}, "Dice threshold 2.0: give a value from 0 to 1"),
    ({"dice_threshold": float("nan")}, "Dice threshold nan"),
    ({"outlier_z": 0.0}, "outlier z 0.0: give a finite value above 0"),
    ({"outlier_z": float("inf")}, "outlier z inf"),
    ({"max_overlays": -1}, "max overlays -1: give 0 or more"),
])
def test_report_settings_the_cli_refuses_are_refused_by_the_library(tmp_path, settings, message):
    """They made a misleading report when given from Python."""
    with pytest.raises(InputError, match=message):
        build_report(tmp_path, tmp_path / "report.html", **settings)


def test_a_report_that_cannot_be_written_where_asked_is_refused_before_the_cases_are_read(tmp_path, monkeypatch):
    """A report of results on a read-only mount (its default place) read and drew every case, then failed on its
    first write; a cohort's report takes a while. The output folder is tried first, as infer tries its own."""
    import medseg.report.build as build
    from medseg.errors import OutputWriteError

    write_case(tmp_path, "a", 0, "exact")
    (tmp_path / "taken").write_text("a file, not a folder")

    def not_reached(*args, **kwargs):
        raise AssertionError("the cases were read")

    monkeypatch.setattr(build, "collect_results", not_reached)
    with pytest.raises(OutputWriteError, match=r"taken[/\\]qa: cannot make this output folder: .*taken is a file"):
        build_report(tmp_path, tmp_path / "taken" / "qa" / "report.html")


def test_a_case_without_reference_is_not_shown_through_a_label_it_predicted_empty(tmp_path):
    """A case without a reference whose ball was predicted empty and whose box touches a face: the overlay was said
    to go 'through label 1 ball' (the first flagged label), which has no voxel to go through, and its slices went
    through the middle of everything instead of the box's border contact. A label with no voxel in either mask is
    passed over: the slices go through the box where it touches the border, and the alt text says so."""
    from medseg.report.build import _focus_label
    from medseg.report.checks import check_segmentation
    from medseg.report.collect import collect_results
    from medseg.report.flags import flag_cases

    image, labels, affine = phantom(3)
    prediction = labels.copy()
    prediction[prediction == 1] = 0  # the ball predicted empty
    prediction[0, 10:14, 15:18] = 2  # the box leaks onto the first i face
    write_case_arrays(tmp_path, "bare", image, labels, prediction, affine, reference=False)
    case = collect_results(tmp_path)[0]
    flags = flag_cases([case], [check_segmentation(case)])[0]
    assert [flag.text for flag in flags] == ["empty_prediction(ball)", "touches_border(box)"]
    assert _focus_label(case, flags) == "2"
    built = build_report(tmp_path, tmp_path / "report.html")
    html = built.html.read_text()
    alt = re.search(r'<img class="overlay" alt="([^"]*)"', html).group(1)
    assert "through label 2 box where it touches the border" in alt and "through label 1" not in alt


def test_a_file_name_the_file_system_encoding_cannot_hold_is_medsegs_error_naming_it(tmp_path):
    """In a C locale with Python's UTF-8 mode turned off, a sidecar naming its segmentation `Müller_seg.nii.gz`
    made ``build_report`` raise a bare UnicodeEncodeError ("'ascii' codec can't encode character ...", no file
    named; only the command line turned it into one line). It raises medseg's InputError (a ValueError still, as
    UnicodeEncodeError is), naming the file and how to run instead, and writes nothing."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    folder = write_case(tmp_path, "c1", 0, "exact")
    sidecar = json.loads((folder / "c1_seg.json").read_text())
    (folder / "c1_seg.json").write_text(json.dumps(sidecar | {"segmentation": "Müller_seg.nii.gz"}))
    (folder / "c1_seg.nii.gz").rename(folder / "Müller_seg.nii.gz")
    script = ("import sys\nfrom medseg.errors import InputError\nfrom medseg.report.build import build_report\n"
              "try:\n    build_report(sys.argv[1], sys.argv[1] + '/report.html', max_overlays=0)\n"
              "except InputError as error:\n"
              "    print(isinstance(error, ValueError), type(error.__cause__).__name__, ascii(str(error)))\n")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1],
                          env={**os.environ, "LC_ALL": "C", "PYTHONUTF8": "0"})
    assert done.returncode == 0, done.stderr[-2000:]
    shown = ascii(f"{folder / 'Müller_seg.nii.gz'}: the file name holds 'ü', which this system's file name encoding "
                  "(ascii) cannot hold; run medseg in a UTF-8 locale (LC_ALL=C.UTF-8) or with PYTHONUTF8=1")
    assert done.stdout.splitlines() == [f"True UnicodeEncodeError {shown}"]
    assert not (tmp_path / "report.html").exists() and not (tmp_path / "cohort.tsv").exists()
