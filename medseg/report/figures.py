"""Matplotlib figures rendered off-screen (Agg canvas, no pyplot state) to PNG bytes."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator

__all__ = ["FALLBACK_FONTS", "LABEL_COLOURS", "MANY_LABELS", "default_style", "label_colour", "label_colours",
           "new_figure", "png_bytes"]

MANY_LABELS = 6  # above this many labels the report's tables and plots take their compact forms

# distinguishable on a grey image; no grey, no black, no red (red marks flagged cases in the plots); and apart for
# colour-blind readers: after the first two, each is the colour farthest (CIEDE2000) from the others, from the
# plots' red and from every grey of the image (labels 3, 9 and 10), in the protanopia, deuteranopia and tritanopia
# simulations (Machado 2009) as in normal vision, no darker than L* 40 (benchmarks/label_colours.py). Any two of the
# first three are 18 apart in all four visions, of the first four 14.5, of the first six 11, of all ten 9.2; no
# colour is within 11.3 of a grey. Label 3 was a pink (#ff2d95) that a deuteranope sees as a mid grey (3.8 from
# #979797), its contours lost in an MR image; it is now a magenta, the search's pick against the nine others among
# colours vivid in normal vision (CIELAB chroma 50 or more) (Okabe and Ito's palette, measured so, has two colours
# within 7.8 of a grey and two 10.9 apart).
# Before, to a protanope the green was 8.9 from the yellow and the orange 7.4 from the green; to a deuteranope the
# lime was 4.7 from the yellow and the indigo 4.3 from the purple; label 10 was white, a grey, and label 9's pale
# yellow 8.6 from a light grey to a tritanope.
LABEL_COLOURS = ("#00c7ff", "#ffcc00", "#c058a0", "#6673ff", "#d98d57", "#00ff95", "#6633ff", "#00a3d9",
                 "#b00890", "#388050")


def label_colour(position: int) -> str:
    """The colour of the ``position``-th label (0-based) of the palette."""
    return LABEL_COLOURS[position % len(LABEL_COLOURS)]


def label_colours(values: list[str]) -> list[str]:
    """The colour of each label value of a report, the same in its overlays, legend and plots, and from one report
    to the next: a whole value ``v`` takes the palette's ``v``-th colour (label 3 is label 3's colour whether or
    not label 2 is in the cohort), repeating after the tenth; where two of ``values`` would share a colour that the
    palette has enough colours to keep apart (labels 1 and 11), or a value is not a whole number, every label takes
    the colour of its place in ``values`` instead."""
    slots = []
    for value in values:
        try:
            number = int(str(value))
        except ValueError:
            number = 0
        slots.append(number - 1 if number > 0 else None)
    by_value = [None if slot is None else slot % len(LABEL_COLOURS) for slot in slots]
    # as many colours as the palette can give them (all different, or with more labels than colours all of them)
    enough = min(len(values), len(LABEL_COLOURS))
    if None not in by_value and len(set(by_value)) == enough:
        return [LABEL_COLOURS[slot] for slot in by_value]
    return [label_colour(position) for position in range(len(values))]


# fonts for the scripts matplotlib's DejaVu Sans lacks (Chinese, Japanese, Korean; Thai, Devanagari), used where
# installed (Debian's fonts-noto-cjk, fonts-wqy-zenhei, fonts-ipafont...); DejaVu Sans draws Latin, Greek, Cyrillic,
# Hebrew and Arabic
FALLBACK_FONTS = ("Noto Sans CJK JP", "Noto Sans CJK SC", "Noto Sans CJK TC", "Noto Sans CJK KR", "Source Han Sans",
                  "Source Han Sans JP", "Source Han Sans SC", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei",
                  "Droid Sans Fallback", "IPAexGothic", "IPAGothic", "TakaoGothic", "VL Gothic", "NanumGothic",
                  "UnDotum", "AR PL UMing CN", "Noto Sans Thai", "Noto Sans Devanagari")


@contextlib.contextmanager
def default_style() -> Iterator[None]:
    """Draw with matplotlib's default settings, not the user's matplotlibrc: ``text.usetex: True`` (a publication
    style) stopped the report where LaTeX is missing, and ``savefig.bbox: tight`` or a font size changed the figures.
    The user's settings are back afterwards. The installed ones of :data:`FALLBACK_FONTS` draw what DejaVu Sans
    cannot: label names and case ids in Chinese, Japanese or Korean were drawn as empty boxes (with a warning per
    character), though the system held a font for them."""
    import warnings

    matplotlib = _matplotlib()
    with matplotlib.rc_context(), warnings.catch_warnings():
        warnings.simplefilter("ignore", matplotlib.MatplotlibDeprecationWarning)
        matplotlib.rcdefaults()
        # font.family as a list: matplotlib falls back glyph by glyph through its families (not through the
        # fonts of one generic family such as sans-serif, of which it takes the first found)
        matplotlib.rcParams["font.family"] = [*matplotlib.rcParams["font.family"], *_installed_fallbacks()]
        yield


def _installed_fallbacks() -> list[str]:
    """The families of :data:`FALLBACK_FONTS` that matplotlib finds on this system."""
    from matplotlib import font_manager

    installed = {font.name for font in font_manager.fontManager.ttflist}
    return [name for name in FALLBACK_FONTS if name in installed]


def _matplotlib():
    """``import matplotlib``, also where $MPLBACKEND names a backend it does not know (``Qt4Agg``, gone since
    matplotlib 3.5, from an old shell profile), which failed the import and the report with it: medseg draws on its
    own Agg canvas and needs none. Imported without it then; the variable is left as it was."""
    import os
    import sys

    try:
        import matplotlib
    except ValueError:
        backend = os.environ.pop("MPLBACKEND", None)
        if backend is None:
            raise
        for name in [name for name in sys.modules if name.startswith("matplotlib.")]:  # half-made by the failure
            del sys.modules[name]
        try:
            import matplotlib
        finally:
            os.environ["MPLBACKEND"] = backend
    return matplotlib


def new_figure(width_in: float, height_in: float):
    """A figure bound to an Agg canvas (never touches pyplot or the user's backend)."""
    _matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width_in, height_in))
    FigureCanvasAgg(figure)
    return figure


def png_bytes(figure, dpi: int = 80) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, metadata={"Software": None})
    return buffer.getvalue()
