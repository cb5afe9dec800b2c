"""The self-contained HTML page (medseg.report.html): escaping, units, headers and captions, compact forms for
many labels, folded cards, warnings and notes on the page."""

from __future__ import annotations

import base64
import html as html_module
import io
import json
import os
import re

import numpy as np
import pytest
from chromium_page import CHROMIUM, probe_page
from report_cases import (
    EVIL,
    perturb,
    phantom,
    read_tsv,
    section,
    write_case,
    write_case_arrays,
    write_failure,
    write_many_label_case,
)

from medseg.numbers import dice_text
from medseg.report.build import build_report


def test_html_is_self_contained_and_escaped(built):
    page = built.html.read_text(encoding="utf-8")
    assert "x&lt;b&gt;&amp;&quot;&#x27;y" in page
    assert EVIL not in page and "<b>&" not in page
    assert "out of memory &lt;in&gt; the &#x27;tiler&#x27;" in page
    # one script, the table's sorting, exactly as the policy's hash allows it; nothing linked
    from medseg.report.html_sort import SORT_SCRIPT_HASH, sort_script_tag

    assert page.lower().count("<script") == 1 and sort_script_tag() in page and "<link" not in page.lower()
    assert f"script-src '{SORT_SCRIPT_HASH}'" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//|file:)""", page)
    sources = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert len(sources) == page.count("<img")
    assert page.count('class="overlay"') == 9
    from PIL import Image

    for data in sources:
        image = Image.open(io.BytesIO(base64.b64decode(data)))
        image.load()
        assert image.format == "PNG" and min(image.size) > 50
    # worst first on the page too: the failed case's card, then the bad one
    cards = re.findall(r'<div class="case[^"]*" id="([^"]+)"><h3>#(\d+) ([^<]*?) <span', page)
    assert [int(rank) for _, rank, _ in cards] == list(range(1, 11))
    assert [name for _, _, name in cards[:2]] == ["crashed", "bad"]
    # each card's anchor is its case id, and every link inside the page has its target
    assert all(anchor == f"case-{name}" for anchor, _, name in cards if name.isidentifier())
    assert len({anchor for anchor, _, _ in cards}) == 10
    targets = set(re.findall(r' id="([^"]+)"', page))
    assert set(re.findall(r'href="#([^"]+)"', page)) <= targets
    for text in ("Summary per label", "Cases, worst first", "Distributions per label", "Failed cases (1)",
                 "How to read this report", "Provenance", "robust z", "tiny-test"):
        assert text in page


def test_every_head_of_the_page_words_a_unit_alike(built):
    """The case cards' tables said "HD95 mm", "pred ml", "FP ml" where the summary says "HD95 (mm)" and "false positive
    (ml)": one form, the unit in brackets, in every table of the page (the cards' heads stay short: longer ones took
    two lines, and 12 printed cards two more pages)."""
    page = built.html.read_text(encoding="utf-8")
    heads = {html_module.unescape(re.sub(r"<[^>]+>", "", head)).strip()
             for head in re.findall(r"<th[^>]*>(.*?)</th>", page)}
    assert not [head for head in heads if re.search(r"(?<!\()\b(mm|ml)\b(?!\))", head)]
    card = re.search(r'<table><caption class="sr">Labels of bad</caption><thead><tr>(.*?)</tr></thead>', page)
    assert re.findall(r'<th scope="col">([^<]*)</th>', card.group(1)) == [
        "label", "Dice", "HD95 (mm)", "ASSD (mm)", "pred (ml)", "ref (ml)", "FP (ml)", "FN (ml)", "status"]
    assert {"HD95 (mm)", "ASSD (mm)", "false positive (ml)", "false negative (ml)"} <= heads


def test_odd_values_are_shown_honestly(tmp_path):
    from medseg.numbers import dice_text

    assert [dice_text(d, 0.7) for d in (0.69996, 0.7, 0.70004, 0.85)] == ["0.69996", "0.700", "0.700", "0.850"]
    assert dice_text(0.6999999999, 0.7) == "0.6999999999" and dice_text(0.5) == "0.500"
    folder = write_case(tmp_path, "near", 0, "erode")
    metrics = json.loads((folder / "near_metrics.json").read_text())
    metrics["labels"]["1"]["dice"] = 0.69996
    metrics["labels"]["2"].update(dice=None, hd95_mm=None)  # status stays ok
    metrics["labels"]["1"]["status"] = metrics["labels"]["2"]["status"] = "ok"
    (folder / "near_metrics.json").write_text(json.dumps(metrics))
    fp = write_case(tmp_path, "fp", 1, "exact")
    metrics = json.loads((fp / "fp_metrics.json").read_text())
    metrics["labels"]["2"].update(status="false_positive", dice=0.0, pred_volume_ml=None)
    (fp / "fp_metrics.json").write_text(json.dumps(metrics))
    build_report(tmp_path, tmp_path / "r.html")
    page = (tmp_path / "r.html").read_text()
    assert "ball Dice 0.69996 &lt; 0.7" in page and ">0.69996</td>" in page
    assert "label 2: status ok but no dice, hd95_mm recorded (null or not finite)" in page
    assert "box: ? ml predicted, none in the reference" in page


def test_names_that_are_not_valid_unicode_are_written_escaped(tmp_path):
    folder = write_case(tmp_path, "lone", 0, "exact")
    metrics = json.loads((folder / "lone_metrics.json").read_text())
    metrics["case_id"] = "c\ud800x"  # a lone surrogate, as Python makes from an undecodable file name
    (folder / "lone_metrics.json").write_text(json.dumps(metrics))
    sidecar = json.loads((folder / "lone_seg.json").read_text())
    sidecar["case_id"] = "c\ud800x"
    (folder / "lone_seg.json").write_text(json.dumps(sidecar))
    os.rename(os.fsencode(folder), os.fsencode(tmp_path / "cases") + b"/caf\xe9")  # not UTF-8
    outputs = build_report(tmp_path, tmp_path / "r.html")
    assert outputs.cases == 1
    assert "c\\ud800x" in (tmp_path / "r.html").read_text(encoding="utf-8")
    assert [row["case_id"] for row in read_tsv(outputs.table)] == ["c\\ud800x"]


def test_labels_no_training_case_held_are_not_said_to_be_named_in_the_flags(tmp_path):
    """A model of labels 1, 3, 7 declared as 0..7 has more than MANY_LABELS labels, so its cards are compact: the
    empty rows of a case without a reference are folded under a note that says the flags above name them. The
    labels no training case held (labels_not_trained) are not flagged when empty, so the note said of them what
    was not so ("5 labels predicted empty …: named in the flags above", with one flag)."""
    from medseg.report.figures import MANY_LABELS

    count = MANY_LABELS + 1
    write_many_label_case(tmp_path, "gaps", count, (), emptied=(2, 4, 5, 6, 7), reference=False)
    sidecar = tmp_path / "cases" / "gaps" / "gaps_seg.json"
    record = json.loads(sidecar.read_text())
    record["labels_not_trained"] = [2, 4, 5, 6]
    sidecar.write_text(json.dumps(record))
    page = build_report(tmp_path, tmp_path / "report.html").html.read_text(encoding="utf-8")
    card = page[page.index('id="case-gaps"'):]
    card = card[: card.index("back to the case table")]
    assert "<b>empty_prediction</b>: organ_07 predicted empty" in card
    assert ("1 label predicted empty with no reference to compare: named in the flags above; 4 labels that no "
            "training case held (never learnt), predicted empty as expected: organ_02, organ_04, organ_05, "
            "organ_06") in card
    assert "5 labels predicted empty" not in card


def test_many_labels_predicted_empty_without_a_reference_are_named_not_tabled(tmp_path):
    """A case without a reference from a partial field of view leaves most labels empty: each was a row of dashes
    in the card's "labels to look at" table (111 of 117 for a multi-organ model), the rows to look at lost among
    them. They are counted and named in the card's flag line, the words once ("predicted empty: organ_03, ...",
    where it was "organ_03 predicted empty; organ_04 predicted empty; ..."); cohort.tsv keeps each flag; their rows
    stay in the folded full table."""
    count = 20
    write_many_label_case(tmp_path, "partial", count, (), emptied=tuple(range(3, count + 1)), reference=False)
    write_many_label_case(tmp_path, "scored", count, (), emptied=(4,))
    page = build_report(tmp_path, tmp_path / "report.html").html.read_text(encoding="utf-8")
    card = page[page.index('id="case-partial"'):]
    card = card[: card.index("back to the case table")]
    names = ", ".join(f"organ_{k:02d}" for k in range(3, count + 1))
    assert f"<li><b>empty_prediction</b> ({count - 2} labels): predicted empty: {names}</li>" in card
    rows = (tmp_path / "cohort.tsv").read_text(encoding="utf-8").splitlines()
    row = next(line for line in rows if "\tpartial\t" in line)
    assert ";".join(f"empty_prediction(organ_{k:02d})" for k in range(3, count + 1)) in row  # each flag, as documented
    assert f"{count - 2} labels predicted empty with no reference to compare" in card
    assert "labels to look at" not in card and "no label flagged" not in card
    folded = card[card.index(f"<details><summary>all {count} labels</summary>"):]
    assert re.findall(r'<tr><th class="rh" scope="row">(\d+) organ', folded) == [str(k) for k in range(1, count + 1)]
    # with a reference, an empty label is still to look at
    scored = page[page.index('id="case-scored"'): page.index('id="case-partial"')]
    look = scored[scored.index("labels to look at (1):"): scored.index("<details>")]
    assert re.findall(r'<tr><th class="rh" scope="row">(\d+) organ', look) == ["4"]
    assert "with no reference to compare" not in scored


def test_many_labels_get_one_summary_row_each_and_a_narrow_case_table(many_labels):
    count, built = many_labels
    page = built.html.read_text(encoding="utf-8").replace('<wbr class="p">', "")  # where a name may break printed
    summary = json.loads(built.summary.read_text())
    rows = section(page, "Summary per label").split("<tr>")[1:]
    assert len(rows) == 2 + count  # two header rows, then one row per label
    organ_03 = next(row for row in rows if "<b>3 organ_03</b>" in row)
    cells = re.findall(r'<td class="num">([^<]*)</td>', organ_03)
    dice = summary["labels"]["3"]["dice"]
    assert cells[:4] == ["4", f"{dice['mean']:.3f}", f"{dice['median']:.3f}", f"{dice['min']:.3f}"]
    assert dice["min"] == pytest.approx(0.568, abs=1e-3) and cells[3] == "0.568"

    table = section(page, "Cases, worst first")
    assert "Dice organ_" not in table and "vol organ_" not in table  # no column per label
    # ids break after their separators in a narrow column: m_<wbr>failed
    by_case = {re.search(r'href="#[^"]*">(.+?)</a>', row).group(1).replace("<wbr>", ""): row
               for row in re.split(r"<tr[ >]", table)[2:]}
    assert '">m_<wbr>failed</a>' in table
    assert list(by_case) == ["m_failed", "m1", "m2", "m0", "m3"]
    low = re.findall(r"<td[^>]*>([^<]*)</td>", by_case["m1"])
    mean = (count - 2 + 2 * dice["min"]) / count
    assert low[2:6] == ["0.568", "organ_03", f"{mean:.3f}", f"2 of {count}"]
    assert 'title="organ_03 Dice 0.568 &lt; 0.7; organ_11 Dice 0.568 &lt; 0.7">low_dice ×2</span>' in by_case["m1"]
    assert ">low_dice(organ_05)</span>" in by_case["m2"]  # one label: named, as in the long form


def test_many_labels_fold_each_case_table_and_widen_the_plots(many_labels):
    from PIL import Image

    count, built = many_labels
    page = built.html.read_text(encoding="utf-8")
    card = page[page.index('<h3>#2 m1 '):]
    card = card[: card.index('<div class="case')]
    look = card[card.index("labels to look at (2):"): card.index("<details>")]
    assert re.findall(r'<tr><th class="rh" scope="row">(\d+) organ', look) == ["3", "11"]
    folded = card[card.index(f"<details><summary>all {count} labels</summary>"): card.index("</details>")]
    assert re.findall(r'<tr><th class="rh" scope="row">(\d+) organ', folded) == [str(k) for k in range(1, count + 1)]
    assert "no label flagged or below Dice 0.7" in page[page.index('<h3>#4 m0 '):]
    assert f"Colours repeat: 10 colours for {count} labels." in page

    plots = section(page, "Distributions per label")
    titles = [alt.split(" per label, ")[0] for alt in re.findall(r'<img alt="([^"]+)"', plots)]
    assert titles == ["Dice", "HD95 (mm)", "ASSD (mm)", "Predicted volume (ml)", "Volume difference (% of reference)"]
    # the text alternative names the plot's worst point, not every label's
    dice_alt = re.findall(r'<img alt="([^"]+)"', plots)[0]
    assert dice_alt.startswith(f"Dice per label, one point per case over a box plot. {count} labels; lowest of all: ")
    widths = [Image.open(io.BytesIO(base64.b64decode(data))).size[0]
              for data in re.findall(r'src="data:image/png;base64,([^"]+)"', plots)]
    assert min(widths) > 4.6 * 80 * 1.2  # wider than the few-label plots, one box per label


def test_the_metric_tables_mark_their_row_and_column_headers(built, many_labels):
    """The summary's label and metric, a card's label, and the case table's case id were plain cells: a screen
    reader read "0.905" with its column ("mean") but not its row ("1 ball, Dice"). They are header cells with a scope
    now, each label's rows a group of their own; the case id keeps the look of a cell (class rh, as the others)."""
    page = built.html.read_text(encoding="utf-8")
    summary = section(page, "Summary per label")
    head = summary[summary.index("<thead>"): summary.index("</thead>")]
    assert re.findall(r'<th scope="col">([^<]*)</th>', head) == ["label", "metric", "n", "mean", "median", "std",
                                                                   "min", "max"]
    groups = re.findall(r"<tbody>(.*?)</tbody>", summary)
    assert len(groups) == 2 and groups[0].startswith('<tr><th class="rh" scope="rowgroup" rowspan="')
    assert '<b>1 ball</b>' in groups[0] and '<b>2 box</b>' in groups[1]
    for group in groups:
        rows = group.split("<tr>")[1:]
        assert rows and all(re.search(r'<th class="rh" scope="row">[^<]+</th><td class="num">\d+</td>', row)
                            for row in rows)
    card = page[page.index("<h3>#1 "):]
    table = card[card.index("<table>"): card.index("</table>")]
    assert re.findall(r'<th scope="col">([^<]*)</th>', table)[:2] == ["label", "Dice"]
    assert re.findall(r'<tr><th class="rh" scope="row">([^<]*)</th>', table) == ["1 ball", "2 box"]
    for text in (page, many_labels[1].html.read_text(encoding="utf-8")):
        cases = section(text, "Cases, worst first")
        rows = cases.split("<tr id=")[1:]
        assert rows and all(re.match(r'"row-[^"]+" data-rank="\d+"><td class="num">\d+</td>'
                                     r'<th class="rh id" scope="row"><a href="#', row) for row in rows)
        assert "<td class=\"id\">" not in cases


def test_the_failed_cases_table_names_its_rows_and_every_table_has_a_caption(built, tmp_path):
    """The failed cases' case id was a plain cell where the case table's is a row header; and no table had a caption,
    so a screen reader listing the page's tables read each as "table, 9 columns" (15 here, over 200 in a cohort's).
    Each table has a caption now, hidden on screen and paper (the heading above says as much)."""
    page = built.html.read_text(encoding="utf-8")
    failed = section(page, "Failed cases")
    assert re.findall(r'<tr><th class="rh id" scope="row"><a href="#([^"]+)">([^<]*)</a></th><td data-h="stage">',
                      failed) == [("case-crashed", "crashed")]
    assert 'class="id"' not in page
    captions = re.findall(r'<table[^>]*><caption class="sr">([^<]*)</caption>', page)
    assert len(captions) == page.count("<table") == 16
    assert captions[:4] == ["Mean and median Dice per label", "Statistics of each metric per label",
                            "Failed cases: stage, error and files",
                            "Every case, worst first: status, flags, Dice and predicted volume"]
    assert captions[-3:] == ["Models", "Package versions", "Report settings"]
    cases = [html_module.unescape(text.removeprefix("Labels of ")) for text in captions[4:-3]]
    assert sorted(cases) == sorted(["c00", "c01", "c02", "c03", "c04", "c05", "bad", EVIL, "noref_big"])
    if CHROMIUM is not None:  # the captions take no room; on a phone the failed case's id is a line of its block
        probe = ("[...document.querySelectorAll('caption')].filter(c=>c.getBoundingClientRect().height>1).length+':'+"
                 "getComputedStyle(document.querySelector('table.stack th')).display")
        assert probe_page(built.html, tmp_path, 390, probe) == "0:block"
        assert probe_page(built.html, tmp_path, 1400, probe) == "0:table-cell"


def test_few_labels_keep_the_long_forms(built):
    page = built.html.read_text(encoding="utf-8")
    assert ('<th data-sort="num" data-key="dice-1">Dice ball</th><th data-sort="num" data-key="dice-2">Dice box</th>'
            in section(page, "Cases, worst first"))
    assert page.count("<details>") == 0 and "Volume difference" not in page
    assert "Predicted vs reference volume (ml)" in page


def test_the_compact_summary_counts_the_cases_with_an_hd95_apart(tmp_path):
    """HD95 and ASSD exist only where both masks have voxels: over three cases with label 2 missed in one, the Dice n
    read 3 above an HD95 median taken over 2."""
    from medseg.report.figures import MANY_LABELS

    for case_id, emptied in (("a", ()), ("b", (2,)), ("c", ())):
        write_many_label_case(tmp_path, case_id, MANY_LABELS + 1, eroded=(), emptied=emptied)
    built = build_report(tmp_path, tmp_path / "report.html")
    stats = json.loads(built.summary.read_text())["labels"]["2"]
    assert (stats["dice"]["n"], stats["hd95_mm"]["n"], stats["assd_mm"]["n"]) == (3, 2, 2)
    summary = section(built.html.read_text(encoding="utf-8"), "Summary per label")
    heads = re.findall(r"<th[^>]*>([^<]*)</th>", summary.split("</thead>")[0].split("</tr>")[1])
    assert heads[:7] == ["n", "mean", "median", "min", "n", "median", "max"]
    row = next(row for row in summary.split("<tr>") if "<b>2 organ_02</b>" in row)
    cells = re.findall(r'<td class="num">([^<]*)</td>', row)
    assert cells[0] == "3" and cells[4] == "2" and cells[5] == f"{stats['hd95_mm']['median']:.2f}"
    assert "cases with an HD95" in summary


def test_a_compact_card_with_every_label_to_look_at_shows_one_table_and_one_line_per_flag(tmp_path):
    write_many_label_case(tmp_path, "worn", 8, eroded=tuple(range(1, 9)))
    page = build_report(tmp_path, tmp_path / "report.html").html.read_text(encoding="utf-8")
    card = page[page.index('<h3>#1 worn '):]
    card = card[: card.index("<h2>")]
    assert "<details>" not in card and "labels to look at: all 8" in card
    assert card.count('<tr><th class="rh" scope="row">') == 8  # one table, each label once
    assert card.count("<li>") == 1 and "<li><b>low_dice</b> (8 labels): organ_01 Dice 0.568 &lt; 0.7; " in card


def test_cards_with_nothing_beyond_their_row_are_folded_to_one_line(tmp_path):
    """A 200-case report was 77,000 px long: every case had a card, and those without a flag or an overlay only
    repeated their table row. They are one line now, their Dice on it, opened on demand; flagged ones stay open."""
    for seed in range(6):
        write_case(tmp_path, f"c{seed}", seed, "exact")
    write_case(tmp_path, "bad", 6, "bad")
    built = build_report(tmp_path, tmp_path / "report.html", max_overlays=2)
    page = built.html.read_text(encoding="utf-8")
    folded = re.findall(r'<details class="case folded" id="([^"]+)"><summary><b>#(\d+) (\w+)</b>'
                        r'<span class="muted small">scored · Dice ball ([\d.]+); box ([\d.]+)</span>', page
                        .replace("</b> <span", "</b><span"))
    assert [int(rank) for _, rank, *_ in folded] == [3, 4, 5, 6, 7]  # 1: the flagged case, 2: a clean one drawn
    assert all(float(ball) == 1.0 and float(box) == 1.0 for *_, ball, box in folded)
    assert all(f'href="#{anchor}"' in page for anchor, *_ in folded)  # the case table still links to them
    assert page.count('<div class="case flagged"') == 1 and "<h3>#1 bad " in page  # flagged: open, with overlay
    assert page.count("<img") - page.count('class="plots"') >= 2
    assert "5 cases without a flag, an overlay or a note take one line each" in page
    # the alt text names the label the slices go through: the lowest Dice among the flagged labels (box, missed)
    assert ('alt="overlay of bad: sagittal, coronal and axial slices of the input with the predicted labels and the '
            "reference, through label 2 box; flagged: ") in page
    # inside the fold: the label table and the files, as in an open card
    body = page[page.index(f'id="{folded[0][0]}"'):]
    body = body[:body.index("</details>")]
    assert "<table" in body and "segmentation <code>" in body and "no overlay: only the 2 worst" in body


def test_the_page_has_a_table_of_contents_and_names_stay_apart_on_plot_axes(built):
    from medseg.report.plots import _middle

    page = built.html.read_text(encoding="utf-8")
    nav = page[page.index("<nav"): page.index("</nav>")]
    anchors = re.findall(r'href="#([a-z]+)"', nav)
    assert anchors == ["summary", "failed", "worst", "plots", "cards", "method", "provenance"]
    # the failures come before the table of every case, and the count of them links there
    assert '<b>1</b><a href="#failed">failed</a>' in page
    assert all(f'<div id="{anchor}">' in page for anchor in anchors)
    # one per case card, to the case's own row (it went to the table's top: 200 rows up in a large cohort)
    backs = re.findall(r'<a href="#row-(case-[^"]+)">back to the case table</a>', page)
    assert len(backs) == 10 and all(page.count(f'<tr id="row-{anchor}" ') == 1 for anchor in backs)
    assert "flagged (failed included)" in page
    left, right = _middle("lung_lower_lobe_left_x", 20), _middle("lung_lower_lobe_right_x", 20)
    assert len(left) == len(right) == 20 and left != right and left.startswith("lung_lowe")


def test_case_anchors_are_the_case_ids_made_safe_and_unique(tmp_path):
    from medseg.report.collect import CaseResult
    from medseg.report.html import ReportContent

    ids = ["sub-01", "patient 1", "patient_1", "ü/x#1", "sub-01"]
    cases = [CaseResult(case_id=i, folder=tmp_path, results_dir=tmp_path) for i in ids]
    content = ReportContent(results_dir=tmp_path, cases=cases, flags=[[] for _ in ids], order=list(range(5)),
                            summary={}, label_order=[])
    assert content.anchors == ["case-sub-01", "case-patient_1", "case-patient_1-2", "case-__x_1", "case-sub-01-2"]


def test_a_cohort_where_every_case_failed_says_none_was_segmented(tmp_path):
    write_failure(tmp_path, "lost")
    page = build_report(tmp_path, tmp_path / "r.html").html.read_text(encoding="utf-8")
    assert "No case was segmented." in page and "between  and" not in page


def test_the_failed_cases_table_names_the_reference_where_the_case_has_one(tmp_path):
    """A case failing on its reference (missing, unreadable) showed only its input: the file at fault was not on
    the page."""
    write_case(tmp_path, "c0", 0, "exact")
    path = write_failure(tmp_path, "bad_ref", stage="evaluate", error_type="InputError")
    record = json.loads(path.read_text())
    record["reference"] = "/data/bad_ref_label.nii.gz"
    path.write_text(json.dumps(record))
    write_failure(tmp_path, "no_ref")
    page = build_report(tmp_path, tmp_path / "report.html").html.read_text(encoding="utf-8")
    table = page[page.index("<h2>Failed cases (2)</h2>"):]
    table = table[:table.index("</table>")]
    assert "<th>files</th>" in table
    assert ('<td class="path">input <code>/data/bad_ref.nii.gz</code><br>reference '
            '<code>/data/bad_ref_label.nii.gz</code></td>') in table
    assert '<td class="path">input <code>/data/no_ref.nii.gz</code></td>' in table


def test_the_three_warnings_above_the_summary_are_one_paragraph_each_as_before():
    """The in-progress, label-conflict and pooled-models warnings are built by one function, word for word as each
    was written out; a summary without their keys gets none."""
    from medseg.report.html import _conflict_note, _in_progress_note, _pooled_models_note

    summary = {"run_in_progress": "pid 12 on <host>", "label_conflicts": {"1": ["a<b", "ball"], "2": ["x", "y"]},
               "pooled_models": [{"name": "m&1", "version": "2", "cases": 2}, {"name": "m2", "cases": 1}]}
    assert _in_progress_note(summary) == (
        '<p class="warn"><b>A cohort run was still writing to this folder</b> (pid 12 on &lt;host&gt;) when this '
        "report was made: cases it had not segmented yet are missing, and those it had not scored yet are shown "
        "without reference (or as failed, against a sample sheet). Make the report again once the run has ended.</p>")
    assert _conflict_note(summary) == (
        '<p class="warn"><b>Label values mean different things in different cases</b> (1 = a&lt;b / ball; 2 = x / y): '
        "the tables, plots and outlier flags below pool cases by label value. Make one report per model.</p>")
    assert _pooled_models_note(summary) == (
        '<p class="warn"><b>The figures pool the cases of 2 models</b> (m&amp;1 version 2: 2 cases; m2: 1 case): '
        'the summary, '
        "plots and outlier flags below mix them; <code>cohort.tsv</code> names the model of each case "
        "(<code>model_version</code>, <code>model_weights_sha256</code>). Make one report per model.</p>")
    assert _in_progress_note({}) == _conflict_note({}) == _pooled_models_note({}) == ""


def test_a_single_slice_case_says_its_volumes_rest_on_the_header(tmp_path):
    """The volume in ml of a one-slice image is its area times the header's slice thickness, which nothing in the
    image confirms; the page did not say so."""
    image, labels, affine = phantom(0)
    write_case_arrays(tmp_path, "flat", image[:, :, 8:9], labels[:, :, 8:9], labels[:, :, 8:9].copy(), affine)
    write_case(tmp_path, "thick", 1, "exact")
    page = build_report(tmp_path, tmp_path / "report.html").html.read_text(encoding="utf-8")
    note = "a single slice along file axis k: its volumes (ml) rest on the header&#x27;s voxel size there (2 mm)"
    assert page.count(note) == 1  # on the one-slice case's card only


def test_a_report_without_overlays_has_no_overlay_legend(tmp_path):
    write_failure(tmp_path, "a")
    write_failure(tmp_path, "b")
    page = build_report(tmp_path, tmp_path / "r.html").html.read_text()
    assert "<img" not in page and "solid line just inside a label" not in page
    write_case(tmp_path, "c", 0, "erode")
    page = build_report(tmp_path, tmp_path / "second" / "r.html").html.read_text()
    assert "<img" in page and "solid line just inside a label" in page


def test_control_characters_of_names_and_errors_are_written_escaped(tmp_path):
    """A file name holding an escape sequence (``\x1b[2J``) reached report.html raw: the browser shows nothing of
    it, but a terminal that printed the file (``cat``, ``less -r``) ran it. It is written as the CLI writes it."""
    path = write_failure(tmp_path, "esc")
    record = json.loads(path.read_text())
    record["input"] = "/data/esc\x1b[2J\x9b.nii.gz"
    record["error"] = "/data/esc\x1b[2J.nii.gz: cannot read\x07 (truncated)"
    path.write_text(json.dumps(record))
    write_case(tmp_path, "plain", 0, "exact")
    page = build_report(tmp_path, tmp_path / "r.html").html.read_bytes()
    assert not any(byte in page for byte in (b"\x1b", b"\x07", "\x9b".encode()))
    assert b"esc\\x1b[2J.nii.gz: cannot read\\x07 (truncated)" in page


def test_the_case_table_says_the_dice_threshold_its_red_cells_are_below(tmp_path):
    """The case table's note said only "red below the Dice threshold": a reader of a report made with
    ``--dice-threshold 0.85`` had to find the number in the flag rules or the settings at the page's foot."""
    write_case(tmp_path, "a", 1, "erode")
    write_case(tmp_path, "b", 2, "exact")
    page = build_report(tmp_path, tmp_path / "r.html", dice_threshold=0.85, max_overlays=0).html.read_text()
    assert "A Dice cell is red below the Dice threshold 0.85," in section(page, "Cases, worst first")


def test_a_labels_status_counts_do_not_call_the_cases_with_both_masks_the_scored_ones(tmp_path):
    """Under each label the page counted status ``ok`` as "scored 2" where all 3 cases were scored (the top of the page
    said so): the case whose prediction missed the label was scored too, its Dice 0 in the label's mean. ``ok`` is
    the label in both masks, and reads so, as in ``summary.json``'s ``status_counts``."""
    for seed in range(2):
        write_case(tmp_path, f"c{seed}", seed, "exact")
    image, labels, affine = phantom(2)
    write_case_arrays(tmp_path, "missed", image, labels, np.where(labels == 2, 0, labels).astype(labels.dtype), affine)
    built = build_report(tmp_path, tmp_path / "r.html")
    summary = json.loads(built.summary.read_text())
    assert summary["cases"]["scored"] == 3
    assert summary["labels"]["2"]["status_counts"] == {"empty_prediction": 1, "ok": 2}
    assert summary["labels"]["2"]["dice"]["n"] == 3
    page = built.html.read_text(encoding="utf-8")
    assert "empty prediction 1, in both 2</span>" in page and "scored 2</span>" not in page
    assert '<span class="small muted">in both 3</span>' in page  # label 1: every case
    # a card's label rows alike (their last cell; the case table's status cell says the case was scored)
    assert "<td>in both</td></tr>" in page and "<td>scored</td></tr>" not in page


def test_the_header_gives_the_run_totals_and_each_labels_dice_with_the_cases_it_counts(tmp_path):
    """A QA lead opening a cohort's page read the cases, scored, failed and flagged counts at the top, but not how many
    cases were predicted empty, and each label's mean Dice only in the summary table below, without saying that the
    failed cases are not in it. The top now counts the empty predictions and gives each label's mean and median Dice
    with the cases they include and why the others are left out; summary.json counts them as ``cases.empty``."""
    for seed, (case_id, how) in enumerate((("good", "erode"), ("shifted", "shift"), ("blank", None))):
        image, truth, affine = phantom(seed)  # three scans (one scan thrice is flagged duplicate_input)
        prediction = np.zeros_like(truth) if how is None else perturb(truth, how)
        write_case_arrays(tmp_path, case_id, image, truth, prediction, affine)
    write_failure(tmp_path, "broken")
    built = build_report(tmp_path, tmp_path / "report.html", max_overlays=0, dice_threshold=0.5)
    summary = json.loads(built.summary.read_text())
    assert summary["cases"] == {"total": 4, "scored": 3, "no_reference": 0, "failed": 1, "flagged": 2,
                                     "in_training_set": 0, "empty": 1}
    page = built.html.read_text(encoding="utf-8")
    top = page[:page.index('<nav class="small">')]
    tiles = dict((name, int(n)) for n, name in re.findall(r'<div class="tile[^"]*"><b>(\d+)</b>(?:<a [^>]*>)?([^<]+)',
                                                           top))
    assert tiles == {"cases": 4, "scored": 3, "without reference": 0, "failed": 1, "flagged (failed included)": 2,
                     "predicted empty": 1}
    totals = re.search(r'<table class="totals">.*?</table>', top, re.S).group(0)
    rows = [[html_module.unescape(re.sub(r"<[^>]+>", "", cell)) for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>",
                                                                                      row)]
            for row in re.findall(r"<tr>(.*?)</tr>", totals)]
    dice = {value: summary["labels"][value]["dice"] for value in ("1", "2")}
    assert rows[0] == ["label", "mean Dice", "median Dice", "cases with a Dice", "not in these figures"]
    for row, value in zip(rows[1:], ("1", "2")):
        assert row[0] == f"{value} {summary['labels'][value]['name']}"
        assert row[1:4] == [dice_text(dice[value]["mean"], 0.5), dice_text(dice[value]["median"], 0.5), "3 of 4"]
        assert row[4] == "1 failed"
    assert "An empty prediction counts as Dice 0" in top
    # the same figures as the summary table below
    assert dice["1"]["n"] == 3 and dice["1"]["min"] == 0.0


def test_with_many_labels_the_top_gives_one_dice_line(many_labels):
    """With more than MANY_LABELS labels a table of every label's Dice at the top would push the flags and warnings a
    screen down: one line gives the mean of the labels' means (summary.json's foreground_mean) and says where each
    label's figures are, and that failed cases are in none."""
    count, built = many_labels
    page = built.html.read_text(encoding="utf-8")
    summary = json.loads(built.summary.read_text())
    top = page[:page.index('<nav class="small">')]
    overall = summary["foreground_mean"]
    assert overall["labels"] == count and 'class="totals"' not in top
    assert (f"Dice, the mean over {count} labels of their means: <b>{dice_text(overall['dice'], 0.7)}</b>"
            in top)
    assert "failed cases are in none of them" in top


def test_the_case_tables_sort_keys_are_unique_for_labels_that_differ_outside_their_characters(tmp_path):
    """A label's columns are named in the URL's fragment by its value, with characters outside ``[A-Za-z0-9._-]``
    replaced: the values ``a b`` and ``a/b`` both gave ``dice-a_b`` (and a label ``difference`` the volume
    difference column's key), so a restored order sorted by the first of them. Every key is now unique and of those
    characters; a label value of digits keeps its own (``dice-1``)."""
    from medseg.report.case_result import CaseResult
    from medseg.report.html import ReportContent
    from medseg.report.html_tables import _worst_table

    values = ["1", "a b", "a/b", "a_b", "a_20_b", "difference"]  # six: the full table
    labels = {value: {"name": f"n{i}", "status": "ok", "dice": 0.5, "pred_volume_ml": 1.0}
              for i, value in enumerate(values)}
    case = CaseResult("c", tmp_path, tmp_path, metrics={"labels": labels})
    content = ReportContent(tmp_path, [case], [[]], [0], {"settings": {"dice_threshold": 0.7}},
                            [(value, labels[value]["name"]) for value in values])
    keys = re.findall(r'data-key="([^"]*)"', _worst_table(content))
    assert len(keys) == len(set(keys)) == 4 + 2 * len(values) + 1
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", key) for key in keys)
    assert "dice-1" in keys and "volume-1" in keys and keys.count("volume-difference") == 1
