"""The distribution plots (medseg.report.plots): text alternatives, names that cannot be drawn, the worst point
ringed."""

from __future__ import annotations

import html as html_module
import json
import re

from report_cases import (
    read_tsv,
    section,
    write_case,
)

from medseg.report.build import build_report


def test_a_name_that_is_not_valid_unicode_can_be_named_on_a_plot(tmp_path):
    """A case whose file name is not UTF-8 (copied from a Latin-1 system) is the worst of two on a plot: matplotlib
    cannot draw a lone surrogate, and the report stopped with a traceback. The plot names it escaped."""
    for case_id, seed, how in (("good", 0, "exact"), ("M\udcfcller", 1, "erode")):
        write_case(tmp_path, case_id, seed, how)
    outputs = build_report(tmp_path, tmp_path / "r.html")
    assert outputs.cases == 2 and outputs.failed == 0
    assert sorted(row["case_id"] for row in read_tsv(outputs.table)) == ["M\\udcfcller", "good"]


def test_plots_have_text_alternatives_that_say_what_they_show(built):
    """A plot's alternative text was its title alone ("Dice"): a reader who cannot see the picture learnt nothing of
    it. It now gives per label the number of cases, the median and the worst point with its case, and the flagged
    points."""
    from medseg.numbers import dice_text

    page = built.html.read_text(encoding="utf-8")
    summary = json.loads(built.summary.read_text())
    rows = read_tsv(built.table)
    alts = [html_module.unescape(alt) for alt in re.findall(r'<img alt="([^"]+)"', section(page, "Distributions"))]
    dice = next(alt for alt in alts if alt.startswith("Dice per label"))
    for value, name in (("1", "ball"), ("2", "box")):
        stats = summary["labels"][value]["dice"]
        lowest = min((row for row in rows if row[f"{name}_dice"]), key=lambda row: float(row[f"{name}_dice"]))
        assert (f"{name}: {stats['n']} cases, median {dice_text(stats['median'], 0.6)}, lowest "
                f"{dice_text(stats['min'], 0.6)} ({lowest['case_id']})") in dice
    flagged = re.search(r"; (\d+) points? of flagged labels drawn as red crosses; dashed red line: the Dice "
                        r"threshold 0.6\.$", dice)
    # a point per scored label a case's flags name: bad's ball (low Dice, border) and box (empty prediction)
    points = sum(1 for row in rows for name in ("ball", "box")
                 if row[f"{name}_dice"] and re.search(rf"\({re.escape(name)}\)", row["flags"]))
    assert flagged and int(flagged.group(1)) == points == 2
    hd95 = next(alt for alt in alts if alt.startswith("HD95 (mm) per label"))
    assert f"ball: {summary['labels']['1']['hd95_mm']['n']} cases, median " in hd95 and ", highest " in hd95
    volumes = next(alt for alt in alts if alt.startswith("Predicted vs reference volume (ml): one point per scored"))
    assert f"(ball {summary['labels']['1']['ref_volume_ml']['n']}, box " in volumes


def test_the_worst_point_named_on_a_plot_is_ringed(monkeypatch):
    """The name of a label's worst case sat beside its point, which read as the name of a flagged cross just to its
    right (HD95 of 200 hippocampus cases). The named point now carries a ring."""
    import medseg.report.plots as plots

    drawn = []
    monkeypatch.setattr(plots, "png_bytes", lambda figure: drawn.append(figure) or b"")
    points = [(1.0, False, "a"), (3.9, False, "worst"), (3.7, True, "flagged")]
    plots._box_strip("HD95 (mm)", [("posterior", points)], "highest", None)
    axes = drawn[0].axes[0]
    rings = [c for c in axes.collections if len(c.get_offsets()) == 1 and not len(c.get_facecolors())]
    assert len(rings) == 1 and rings[0].get_offsets()[0][1] == 3.9
    named = [t for t in axes.texts if t.get_text() == "worst"]
    assert len(named) == 1 and tuple(named[0].xy) == tuple(rings[0].get_offsets()[0])


def test_the_volume_scatter_legend_lies_outside_the_plot_area(monkeypatch):
    """The scatter's legend sat in the plot's upper left corner, over the points there (a case predicted at twice
    its reference volume, or any cohort of small volumes); it now lies beside the axes, covering none of them."""
    import medseg.report.plots as plots

    drawn = []
    monkeypatch.setattr(plots, "png_bytes", lambda figure: drawn.append(figure) or b"")
    # points in every corner of the plot area, the upper left one where the legend was
    groups = [("anterior", [(0.1, 2.0, False, "a"), (2.0, 0.1, False, "b"), (2.0, 2.0, True, "c")]),
              ("posterior", [(0.1, 1.9, False, "d"), (0.1, 0.1, False, "e")])]
    plots._volume_scatter(groups)
    figure = drawn[0]
    axes = figure.axes[0]
    renderer = figure.canvas.get_renderer()
    legend = axes.get_legend()
    assert [text.get_text() for text in legend.get_texts()] == ["anterior", "posterior"]
    box, area = legend.get_window_extent(renderer), axes.get_window_extent(renderer)
    assert not box.overlaps(area), (box, area)
    # and within the figure, not cut off by its edge
    whole = figure.bbox
    assert whole.x0 <= box.x0 and box.x1 <= whole.x1 and whole.y0 <= box.y0 and box.y1 <= whole.y1
