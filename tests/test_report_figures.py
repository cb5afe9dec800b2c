"""Matplotlib figures off-screen (medseg.report.figures): fonts for any script, and none of the user's
matplotlib settings or backend."""

from __future__ import annotations

import itertools
import os
import subprocess
import warnings
from pathlib import Path

import numpy as np
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


# Machado, Oliveira & Fernandes (2009) at full severity, on linear RGB: how protanopes, deuteranopes and tritanopes
# see a colour (the simulations colour-vision tools such as Chromium's DevTools and colorspacious use)
COLOUR_VISIONS = {
    "normal": np.eye(3),
    "protanopia": np.array([[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216],
                            [-0.003882, -0.048116, 1.051998]]),
    "deuteranopia": np.array([[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413],
                              [-0.011820, 0.042940, 0.968881]]),
    "tritanopia": np.array([[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602],
                            [0.004733, 0.691367, 0.303900]]),
}


def _lab(hex_colour: str, vision: np.ndarray) -> np.ndarray:
    """CIELAB (D65) of a colour as seen with ``vision``."""
    srgb = np.array([int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)])
    linear = np.clip(vision @ np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4), 0, 1)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ linear
    f = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(f > 216 / 24389, np.cbrt(f), (24389 / 27 * f + 16) / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def _delta_e_2000(lab1: np.ndarray, lab2: np.ndarray) -> float:
    """CIEDE2000 colour difference (Sharma, Wu & Dalal 2005)."""
    (l1, a1, b1), (l2, a2, b2) = lab1, lab2
    c_mean = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(c_mean ** 7 / (c_mean ** 7 + 25 ** 7)))
    a1, a2 = (1 + g) * a1, (1 + g) * a2
    c1, c2 = np.hypot(a1, b1), np.hypot(a2, b2)
    h1, h2 = np.degrees(np.arctan2(b1, a1)) % 360, np.degrees(np.arctan2(b2, a2)) % 360
    dh = 0.0 if c1 * c2 == 0 else (h2 - h1 + 180) % 360 - 180
    d_l, d_c, d_h = l2 - l1, c2 - c1, 2 * np.sqrt(c1 * c2) * np.sin(np.radians(dh / 2))
    l_mean, c_mean = (l1 + l2) / 2, (c1 + c2) / 2
    h_mean = h1 + h2 if c1 * c2 == 0 else ((h1 + h2) / 2 if abs(h1 - h2) <= 180 else (h1 + h2 + 360) / 2)
    t = (1 - 0.17 * np.cos(np.radians(h_mean - 30)) + 0.24 * np.cos(np.radians(2 * h_mean))
         + 0.32 * np.cos(np.radians(3 * h_mean + 6)) - 0.20 * np.cos(np.radians(4 * h_mean - 63)))
    s_l = 1 + 0.015 * (l_mean - 50) ** 2 / np.sqrt(20 + (l_mean - 50) ** 2)
    s_c, s_h = 1 + 0.045 * c_mean, 1 + 0.015 * c_mean * t
    r_t = (-np.sin(np.radians(60 * np.exp(-(((h_mean - 275) / 25) ** 2))))
           * 2 * np.sqrt(c_mean ** 7 / (c_mean ** 7 + 25 ** 7)))
    return float(np.sqrt((d_l / s_l) ** 2 + (d_c / s_c) ** 2 + (d_h / s_h) ** 2 + r_t * (d_c / s_c) * (d_h / s_h)))


def _least_difference(colours) -> float:
    """The smallest CIEDE2000 difference between two of ``colours`` in any of the colour visions."""
    return min(_delta_e_2000(_lab(a, vision), _lab(b, vision)) for vision in COLOUR_VISIONS.values()
               for a, b in itertools.combinations(colours, 2))


def test_the_label_colours_stay_apart_for_colour_blind_readers():
    """The fourth label's green was the second's yellow to a protanope (CIEDE2000 8.9; 16.7 to a deuteranope), the
    fifth's orange the fourth's green (7.4), and two of the ten 4.3 apart: contours a colour-blind reader (one man in
    twelve) could not tell apart. The first three colours stay; the others were chosen for the protanopia,
    deuteranopia and tritanopia simulations, bright enough on a grey image and away from the plots' red."""
    from medseg.report.figures import LABEL_COLOURS
    from medseg.report.plots import FLAGGED_COLOUR

    assert LABEL_COLOURS[:3] == ("#00c7ff", "#ffcc00", "#ff2d95")
    assert _least_difference(LABEL_COLOURS[:3]) > 26
    assert _least_difference(LABEL_COLOURS[:4]) > 14
    assert _least_difference(LABEL_COLOURS[:6]) > 11
    assert _least_difference(LABEL_COLOURS) > 8
    assert min(_least_difference((colour, FLAGGED_COLOUR)) for colour in LABEL_COLOURS) > 15
