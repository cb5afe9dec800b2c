"""Matplotlib figures off-screen (medseg.report.figures): fonts for any script, and none of the user's
matplotlib settings or backend."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import warnings
from pathlib import Path

import numpy as np
from conftest import REPO
from report_cases import (
    perturb,
    phantom,
    write_case,
    write_case_arrays,
)

from medseg.report.build import build_report


def _font_of(path: Path, family: str, characters: str) -> Path:
    """A TrueType font named ``family`` whose glyphs for ``characters`` are squares (made with fontTools, which
    matplotlib requires)."""
    from fontTools.fontBuilder import FontBuilder
    from fontTools.pens.ttGlyphPen import TTGlyphPen

    def square():
        pen = TTGlyphPen(None)
        for point in ((100, 0), (100, 700), (800, 700), (800, 0)):
            (pen.lineTo if point != (100, 0) else pen.moveTo)(point)
        pen.closePath()
        return pen.glyph()

    glyphs = {ord(c): f"uni{ord(c):04X}" for c in characters}
    names = [".notdef", *glyphs.values()]
    builder = FontBuilder(1000, isTTF=True)
    builder.setupGlyphOrder(names)
    builder.setupCharacterMap(glyphs)
    builder.setupGlyf({name: square() for name in names})
    builder.setupHorizontalMetrics({name: (900, 100) for name in names})
    builder.setupHorizontalHeader(ascent=800, descent=-200)
    builder.setupNameTable({"familyName": family, "styleName": "Regular"})
    builder.setupOS2()
    builder.setupPost()
    builder.save(str(path))
    return path


def test_cjk_label_names_and_case_ids_are_drawn_on_the_plots_with_an_installed_cjk_font(tmp_path, monkeypatch):
    """The plots drew with DejaVu Sans alone, which has no Chinese, Japanese or Korean: a label named '肝臓' was two
    empty boxes on every plot (and a warning per character from medseg report), even where the system has Noto Sans
    CJK. An installed font of those the figures fall back on draws them."""
    from matplotlib import font_manager

    from medseg.report.figures import FALLBACK_FONTS

    font = _font_of(tmp_path / "cjk.ttf", "Noto Sans CJK JP", "肝臓症例")
    assert "Noto Sans CJK JP" in FALLBACK_FONTS
    monkeypatch.setattr(font_manager.fontManager, "ttflist", list(font_manager.fontManager.ttflist))  # restored after
    font_manager.fontManager.addfont(str(font))
    names = {0: "background", 1: "肝臓", 2: "box"}
    for case_id, seed, how in (("症例1", 0, "exact"), ("症例2", 1, "erode")):
        image, labels, affine = phantom(seed)
        write_case_arrays(tmp_path, case_id, image, labels, perturb(labels, how), affine, name=str(seed),
                          labels_named=names)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outputs = build_report(tmp_path, tmp_path / "r.html")
    assert outputs.cases == 2 and outputs.failed == 0
    assert [str(w.message) for w in caught if "missing from font" in str(w.message)] == []


def test_the_plots_do_not_take_the_users_matplotlib_settings(tmp_path, monkeypatch):
    """The plots took the user's matplotlibrc: `text.usetex: True` (a publication style) stopped the report with
    "latex could not be found" (with LaTeX, a case name's underscore failed), `savefig.bbox: tight` changed the
    figures' size. They are drawn with matplotlib's defaults, and the user's settings are left as they were."""
    import matplotlib

    from medseg.report.plots import distribution_plots

    for case_id, seed, how in (("case_1", 0, "exact"), ("case_2", 1, "erode")):
        write_case(tmp_path, case_id, seed, how)
    from medseg.report.collect import collect_results

    cases = collect_results(tmp_path)
    plain = [plot.png for plot in distribution_plots(cases, [set(), set()], ["1", "2"], 0.7)]
    with matplotlib.rc_context({"text.usetex": True, "savefig.bbox": "tight", "font.size": 20}):
        styled = [plot.png for plot in distribution_plots(cases, [set(), set()], ["1", "2"], 0.7)]
        assert matplotlib.rcParams["text.usetex"] is True
    assert styled == plain


def test_a_matplotlib_backend_matplotlib_does_not_know_does_not_stop_the_plots():
    """$MPLBACKEND=Qt4Agg (gone since matplotlib 3.5; an old shell profile) failed `import matplotlib`, and the report
    with a traceback; medseg draws on its own Agg canvas. The variable is left as it was."""
    import sys

    code = ("import os\nfrom medseg.report.figures import new_figure, png_bytes\n"
            "figure = new_figure(2, 2)\nfigure.add_subplot().plot([1, 2])\n"
            "print(png_bytes(figure)[:4] == b'\\x89PNG', os.environ['MPLBACKEND'])\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "MPLBACKEND": "Qt4Agg"}, cwd=Path(__file__).resolve().parents[1])
    assert (done.returncode, done.stdout) == (0, "True Qt4Agg\n"), done.stderr


def _colours():
    """``benchmarks/label_colours.py``: the colour-vision simulations (Machado 2009) and CIEDE2000 the palette was
    chosen with, and that script's search."""
    spec = importlib.util.spec_from_file_location("label_colours", REPO / "benchmarks" / "label_colours.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ciede2000_gives_the_published_differences():
    """Sharma, Wu & Dalal (2005), Table 1: pairs across the hue wrap, near the achromatic axis and at large
    differences, to four decimals."""
    colours = _colours()
    pairs = [((50, 2.6772, -79.7751), (50, 0, -82.7485), 2.0425), ((50, 0, 0), (50, -1, 2), 2.3669),
             ((50, 2.49, -0.001), (50, -2.49, 0.0009), 7.1792), ((50, 2.49, -0.001), (50, -2.49, 0.0011), 7.2195),
             ((50, 2.5, 0), (50, 0, -2.5), 4.3065), ((50, 2.5, 0), (73, 25, -18), 27.1492),
             ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
             ((2.0776, 0.0795, -1.135), (0.9033, -0.0636, -0.5514), 0.9082)]
    first, second, expected = (np.array(column, float) for column in zip(*pairs))
    assert np.round(colours.delta_e_2000(first, second), 4).tolist() == expected.tolist()
    assert np.round(colours.delta_e_2000(second, first), 4).tolist() == expected.tolist()  # symmetric
    # a grey is the same grey in every vision (each simulation keeps white), and white is L* 100
    for vision in colours.COLOUR_VISIONS.values():
        assert np.allclose(colours.lab(["#808080", "#ffffff"], vision), [[53.585, 0, 0], [100, 0, 0]], atol=0.02)
    # the search's nearest grey (of the two greys bracketing a colour's L*) is the nearest of all 256
    from medseg.report.figures import LABEL_COLOURS

    for name, vision in colours.COLOUR_VISIONS.items():
        nearest = colours._grey_differences(colours.lab(LABEL_COLOURS, vision), colours.lab(colours.GREYS, vision))
        every = [colours.delta_e_2000(colours.lab([colour], vision)[0], colours.lab(colours.GREYS, vision)).min()
                 for colour in LABEL_COLOURS]
        assert np.allclose(nearest, every, rtol=0, atol=1e-12), name


def test_the_label_colours_stay_apart_for_colour_blind_readers():
    """The fourth label's green was the second's yellow to a protanope (CIEDE2000 8.9; 16.7 to a deuteranope), the
    fifth's orange the fourth's green (7.4), and two of the ten 4.3 apart: contours a colour-blind reader (one man in
    twelve) could not tell apart. The first two colours stay; the others were chosen for the protanopia,
    deuteranopia and tritanopia simulations, bright enough on a grey image and away from the plots' red."""
    from medseg.report.figures import LABEL_COLOURS
    from medseg.report.plots import FLAGGED_COLOUR

    colours = _colours()
    assert LABEL_COLOURS[:2] == ("#00c7ff", "#ffcc00")
    assert colours.least_difference(LABEL_COLOURS[:3])[0] > 18
    assert colours.least_difference(LABEL_COLOURS[:4])[0] > 14
    assert colours.least_difference(LABEL_COLOURS[:6])[0] > 11
    assert colours.least_difference(LABEL_COLOURS)[0] > 9
    assert min(colours.least_difference((colour, FLAGGED_COLOUR))[0] for colour in LABEL_COLOURS) > 15


def test_labels_9_and_10_are_no_grey_to_colour_blind_readers():
    """Label 10 was white, a grey of every MR or CT image behind the contours (CIEDE2000 0), and label 9's pale yellow
    8.6 from a light grey to a tritanope. Both are now the colours farthest from the greys and the other labels in
    the four visions, no darker than L* 40 (benchmarks/label_colours.py's search), 12 or more from any grey and any
    other label."""
    from medseg.report.figures import LABEL_COLOURS
    from medseg.report.plots import FLAGGED_COLOUR

    colours = _colours()
    before = [colours.grey_difference(colour)[0] for colour in colours.PREVIOUS_COLOURS[8:]]
    assert np.round(before, 1).tolist() == [8.6, 0.0]
    greys = [colours.grey_difference(colour)[0] for colour in LABEL_COLOURS]
    assert min(greys[8:]) > 12
    for position in (8, 9):
        others = [colour for colour in LABEL_COLOURS if colour != LABEL_COLOURS[position]]
        assert min(colours.least_difference((LABEL_COLOURS[position], other))[0] for other in others) > 12
    # not dark (a contour on a dark image): as light as the darkest of labels 1-8 (label 7's indigo, L* 41.9)
    assert colours.lab(LABEL_COLOURS[8:], colours.COLOUR_VISIONS["normal"])[:, 0].min() > 40
    # the script's search, from labels 1-8 as they were then (label 3 the pink, chosen again since against all
    # nine others), picks them again
    then = (*LABEL_COLOURS[:2], colours.PREVIOUS_COLOURS[2], *LABEL_COLOURS[3:8])
    assert colours.search(then, 2, avoid=(FLAGGED_COLOUR,)) == list(LABEL_COLOURS[8:])


def test_label_3_is_no_grey_to_a_deuteranope():
    """Label 3 was a pink (#ff2d95) that a deuteranope sees as the mid grey of an MR image (CIEDE2000 3.8 from
    #979797): its contours vanished into the image, and its points read as another label's. It is now the colour the
    script's search picks against the nine others, the greys and the plots' red among colours vivid in normal vision
    (CIELAB chroma 50 or more: the farthest of all, #9878a0, is a muted lavender faint on an MR): no label colour is
    within 11 of a grey in any of the four visions, and label 3 is 11 or more from every other label."""
    from medseg.report.figures import LABEL_COLOURS
    from medseg.report.plots import FLAGGED_COLOUR

    colours = _colours()
    assert round(colours.grey_difference(colours.PREVIOUS_COLOURS[2])[0], 1) == 3.8
    greys = [colours.grey_difference(colour)[0] for colour in LABEL_COLOURS]
    assert min(greys) > 11, greys
    others = [colour for position, colour in enumerate(LABEL_COLOURS) if position != 2]
    assert min(colours.least_difference((LABEL_COLOURS[2], other))[0] for other in others) > 11
    assert colours.search(others, 1, avoid=(FLAGGED_COLOUR,), min_chroma=50) == [LABEL_COLOURS[2]]
    normal = colours.lab([LABEL_COLOURS[2]], colours.COLOUR_VISIONS["normal"])[0]
    assert np.hypot(normal[1], normal[2]) > 50


def test_a_labels_colour_follows_its_value_not_its_place_among_the_labels():
    """A report of labels 1 and 3 drew label 3 in label 2's colour (colours went by place in the report's label list),
    so the same structure changed colour from one report to the next. Whole label values take the palette's colour
    of that value (1 the first, 3 the third; 11 the first again); labels that are not whole numbers, or whose values
    would share a colour where the palette has enough, go by place."""
    from medseg.report.figures import LABEL_COLOURS, label_colours

    assert label_colours(["1", "3"]) == [LABEL_COLOURS[0], LABEL_COLOURS[2]]
    assert label_colours(["3"]) == [LABEL_COLOURS[2]]
    assert label_colours(["2", "1"]) == [LABEL_COLOURS[1], LABEL_COLOURS[0]]
    assert label_colours(["1", "11"]) == [LABEL_COLOURS[0], LABEL_COLOURS[1]]  # by place: 11 would be 1's colour
    assert label_colours(["a", "b"]) == list(LABEL_COLOURS[:2])
    many = [str(value) for value in range(1, 13)]
    assert label_colours(many) == [LABEL_COLOURS[i % 10] for i in range(12)]
