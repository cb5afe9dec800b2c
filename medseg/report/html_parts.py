"""The page's small parts: text escaped, numbers and Dice in table cells, images inline, flag badges and table
captions, shared by the page (:mod:`medseg.report.html`) and its tables and case cards."""

from __future__ import annotations

import base64
import html
import re

from medseg.numbers import dice_text, number_text, with_minus
from medseg.report.flags import Flag

__all__ = ["FLAG_COLOURS", "STATUS_TEXT", "e", "status_text"]


# white text on each at 4.5:1 or more (WCAG AA for small text)
FLAG_COLOURS = {
    "failed": "#8e0000", "empty_prediction": "#c8001a", "false_positive": "#c8001a", "low_dice": "#a33a00",
    "volume_outlier": "#7d3cb5", "distance_outlier": "#00696b", "touches_border": "#6b5a00", "geometry": "#1f3a93",
    "duplicate_id": "#555555", "unlike_training": "#7a4b00",
    "label_like_input": "#8e0000", "dice_outlier": "#a0005a", "volume_difference_outlier": "#5b3a8c",
    "duplicate_input": "#3d4f5c", "nothing_scored": "#a33a00", "untrained_label": "#c8001a",
    "frame_of_reference": "#1f3a93", "label_confusion": "#8a1f6e",
}


# a label's metrics status as a reader should read it: "ok" only meant that neither mask was empty, the label in both
# (not "scored": a label's counts read "empty prediction 1, scored 2" where all 3 cases were scored, its Dice 0 counted)
STATUS_TEXT = {"ok": "in both", "both_empty": "both empty", "false_positive": "false positive",
               "empty_prediction": "empty prediction", "no_reference": "no reference"}


def status_text(status: str) -> str:
    return STATUS_TEXT.get(status, status.replace("_", " "))


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # C0 and C1 controls but tab and line ends


def e(value) -> str:
    """HTML-escaped text; empty for ``None``. A control character (an escape sequence in a file name) is written as
    ``\\x1b``, as the command line writes it: raw, it drove a terminal that showed the file (``cat``, ``less -r``)."""
    if value is None:
        return ""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", html.escape(str(value), quote=True))


def _dice(value, threshold: float) -> str:
    return '<td class="num na">–</td>' if value is None else f'<td class="num">{dice_text(value, threshold)}</td>'


def _num(value, digits: int) -> str:
    """A table cell of :func:`number_text` (``digits`` decimals, or 3 significant digits where that reads 0), with
    a typographic minus (U+2212: as wide as the plus, and not a hyphen a line may break after); the JSON and TSV
    files keep ASCII."""
    if value is None:
        return '<td class="num na">–</td>'
    return f'<td class="num">{with_minus(number_text(value, digits))}</td>'


def _img(png: bytes, alt: str, css: str = "") -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img{css} alt="{e(alt)}" src="data:image/png;base64,{data}">'


def _badge(flag: Flag) -> str:
    colour = FLAG_COLOURS.get(flag.code, "#555555")
    return (f'<span class="badge" style="background:{colour}" title="{e(flag.message)}">'
            f"{_print_breakable(flag.text)}</span>")


def _print_breakable(text: str) -> str:
    """A flag's or a label's name, escaped, that may break where printed after its underscores and before a
    parenthesis (``volume_|difference_|outlier|(posterior)``, ``left_|hippocampus``): a flags column of badges on
    one line each, or a label's name in a column header, made the case table too wide for a portrait page, and the
    browser shrank every page to fit (to 83-86 %). On screen nothing changes: a wide table scrolls in its box, and a
    badge stays one line (the ``<wbr class="p">`` is not displayed there: Chrome breaks at one even in ``nowrap``)."""
    return re.sub(r"_", '_<wbr class="p">', e(text)).replace("(", '<wbr class="p">(')


def _breakable(case_id: str) -> str:
    """A case id, escaped, that a narrow column breaks after its separators (``hippocampus_|310``) before it breaks
    it anywhere (``hippocamp|us_310``)."""
    return re.sub(r"([_\-.])", r"\1<wbr>", e(case_id))


def _by_code(flags: list[Flag]) -> dict[str, list[Flag]]:
    grouped: dict[str, list[Flag]] = {}
    for flag in flags:
        grouped.setdefault(flag.code, []).append(flag)
    return grouped


def _reasons(members: list[Flag]) -> str:
    """The reasons of one code's flags joined; empty predictions that are each their label's name and the same words
    ("肝 predicted empty", "part 1 ü predicted empty", ...) give the words once and the names (``predicted empty: 肝,
    part 1 ü, ...``): 111 labels of a partial field of view made 111 reasons in one line. Reasons with figures (a
    Dice, a reference volume) stay whole, as do those of other codes: two Dice alike would join by chance."""
    if members[0].code != "empty_prediction":
        return "; ".join(flag.message for flag in members)
    tails = {flag.message[len(flag.label) + 1:] if flag.label and flag.message.startswith(f"{flag.label} ") else None
             for flag in members}
    if len(members) > 1 and len(tails) == 1 and None not in tails:
        return f"{tails.pop()}: {', '.join(str(flag.label) for flag in members)}"
    return "; ".join(flag.message for flag in members)


def _grouped_badges(flags: list[Flag]) -> str:
    """One badge per flag code, counting its labels; the title lists every reason."""
    badges = []
    for code, members in _by_code(flags).items():
        text = members[0].text if len(members) == 1 else f"{code} ×{len(members)}"
        title = _reasons(members)
        badges.append(f'<span class="badge" style="background:{FLAG_COLOURS.get(code, "#555555")}" '
                      f'title="{e(title)}">{_print_breakable(text)}</span>')
    return "".join(badges)


def _caption(text: str) -> str:
    """A table's name for a screen reader, which lists a page's tables by it; hidden on screen and paper, where the
    heading above the table says as much."""
    return f'<caption class="sr">{e(text)}</caption>'


def _column_heads(*names: str) -> str:
    return "".join(f'<th scope="col">{e(name)}</th>' for name in names)
