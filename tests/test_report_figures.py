"""Matplotlib figures off-screen (medseg.report.figures): fonts for any script, and none of the user's
matplotlib settings or backend."""

from __future__ import annotations

import os
import subprocess
import warnings
from pathlib import Path

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
