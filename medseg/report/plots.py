"""Per-label distribution plots of the cohort: box plots with every case drawn as a point."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medseg.report.case_result import CaseResult
from medseg.report.figures import MANY_LABELS, default_style, label_colour, label_colours, new_figure, png_bytes

__all__ = ["Plot", "distribution_plots"]

FLAGGED_COLOUR = "#d70015"


@dataclass
class Plot:
    """A figure of the report: its title, PNG bytes and a text alternative (what it shows, for the page's alt
    text: a reader who cannot see the picture learns the medians, the worst case and how many points are flagged)."""

    title: str
    png: bytes
    description: str = ""


def distribution_plots(
    cases: list[CaseResult],
    flagged: list[set[str]],
    label_order: list[str],
    dice_threshold: float | None = None,
) -> list[Plot]:
    """Dice, HD95, ASSD and predicted volume per label, and predicted against reference volume.

    ``flagged[i]`` holds the label values flagged in case ``i``; those points are drawn as red crosses, and
    the worst case of each label is named on the plot. With more than ``MANY_LABELS`` labels the plots widen
    with the label count, name only the worst case of the plot, and show the volume difference in percent of
    the reference per label instead of the scatter (whose legend and linear axes do not suit dozens of organs).
    Drawn with matplotlib's defaults, whatever the user's matplotlibrc says (:func:`default_style`).
    """
    with default_style():
        return _plots(cases, flagged, label_order, dice_threshold)


def _plots(cases: list[CaseResult], flagged: list[set[str]], label_order: list[str],
           dice_threshold: float | None) -> list[Plot]:
    from medseg.report.table import label_names

    series: dict[str, dict[str, list]] = {}
    names = label_names(cases)
    for index, case in enumerate(cases):
        for label in case.labels():
            for key in ("dice", "hd95_mm", "assd_mm", "pred_volume_ml", "volumes"):
                series.setdefault(key, {}).setdefault(label.value, [])
            bad = label.value in flagged[index]
            for key in ("dice", "hd95_mm", "assd_mm", "pred_volume_ml"):
                value = getattr(label, key)
                if value is not None:
                    series[key][label.value].append((value, bad, case.case_id))
            if label.pred_volume_ml is not None and label.ref_volume_ml is not None:
                series["volumes"][label.value].append((label.ref_volume_ml, label.pred_volume_ml, bad,
                                                       case.case_id))
    plain = dict(names)  # as the page writes them
    names = {value: name.replace("$", r"\$") for value, name in names.items()}  # no mathtext in label names
    values = [v for v in label_order if v in names]
    colour_of = dict(zip(label_order, label_colours(label_order)))  # by value: as the overlays and their legend
    colours = [colour_of.get(v, label_colour(position)) for position, v in enumerate(values)]
    plots = []
    specs = [
        ("dice", "Dice", "lowest", dice_threshold),
        ("hd95_mm", "HD95 (mm)", "highest", None),
        ("assd_mm", "ASSD (mm)", "highest", None),
        ("pred_volume_ml", "Predicted volume (ml)", None, None),
    ]
    for key, title, worst, threshold in specs:
        data = series.get(key, {})
        if any(data.get(v) for v in values):
            plots.append(Plot(title, _box_strip(title, [(names[v], data.get(v, [])) for v in values], worst,
                                                threshold, colours),
                              _describe_strip(key, title, [(plain[v], data.get(v, [])) for v in values], worst,
                                              threshold)))
    volumes = series.get("volumes", {})
    if len(values) > MANY_LABELS:
        title = "Volume difference (% of reference)"
        groups = [(names[v], [(100.0 * (pred - ref) / ref, bad, case_id) for ref, pred, bad, case_id
                              in volumes.get(v, []) if ref > 0]) for v in values]
        if any(points for _, points in groups):
            plots.append(Plot(title, _box_strip(title, groups, "farthest", 0.0, colours),
                              _describe_strip("volume_percent", title, [(plain[v], points) for v, (_, points)
                                                                        in zip(values, groups)], "farthest", 0.0)))
    elif any(volumes.get(v) for v in values):
        groups = [(plain[v], volumes.get(v, [])) for v in values]
        flagged_points = sum(bad for _, points in groups for _, _, bad, _ in points)
        plots.append(Plot("Predicted vs reference volume (ml)",
                          _volume_scatter([(names[v], volumes.get(v, [])) for v in values], colours),
                          "Predicted vs reference volume (ml): one point per scored case and label ("
                          + ", ".join(f"{name} {len(points)}" for name, points in groups if points)
                          + "); the dashed diagonal is where they are equal"
                          + (f"; {flagged_points} point{'s' if flagged_points != 1 else ''} of flagged labels drawn "
                             "as crosses" if flagged_points else "") + "."))
    return plots


def _box_strip(title: str, groups: list[tuple[str, list]], worst: str | None, threshold: float | None,
               colours: list[str] | None = None) -> bytes:
    """``worst``: which point of a label to name (``lowest``, ``highest``, ``farthest`` from ``threshold``);
    ``colours``: each group's (its label's colour; by default the palette's in order)."""
    colours = colours or [label_colour(position) for position in range(len(groups))]
    many = len(groups) > MANY_LABELS
    figure = new_figure(max(4.6, 1.0 + 0.26 * len(groups)), 4.2 if many else 3.0)
    axes = figure.add_subplot()
    rng = np.random.default_rng(0)
    positions = list(range(1, len(groups) + 1))
    data = [np.array([value for value, _, _ in points], dtype=float) for _, points in groups]
    non_empty = [(p, d) for p, d in zip(positions, data) if d.size]
    if non_empty:
        axes.boxplot([d for _, d in non_empty], positions=[p for p, _ in non_empty], widths=0.5, showfliers=False,
                     medianprops={"color": "#333333"})
    named = []  # (badness, position, value, case id) of each label's worst point
    for position, (_, points), values in zip(positions, groups, data):
        if not points:
            continue
        jitter = rng.uniform(-0.16, 0.16, size=len(points))
        bad = np.array([flagged for _, flagged, _ in points], dtype=bool)
        axes.scatter(position + jitter[~bad], values[~bad], s=16, c=colours[position - 1], edgecolors="#333333",
                     linewidths=0.4, zorder=3)
        axes.scatter(position + jitter[bad], values[bad], s=42, c=FLAGGED_COLOUR, marker="X", edgecolors="white",
                     linewidths=0.5, zorder=4)
        if worst is not None and len(points) > 1:
            badness = {"lowest": -values, "highest": values}.get(worst)
            badness = np.abs(values - (threshold or 0.0)) if badness is None else badness
            at = int(np.argmax(badness))
            named.append((float(badness[at]), position + jitter[at], values[at], points[at][2]))
    for _, x, y, case_id in (sorted(named)[-1:] if many else named):
        # a ring on the named point: beside a close neighbour (a flagged cross) the name read as the neighbour's
        axes.scatter([x], [y], s=110, facecolors="none", edgecolors="#222222", linewidths=0.9, zorder=5)
        axes.annotate(_short(case_id), (x, y), xytext=(8, 0), textcoords="offset points", fontsize=7, va="center",
                      parse_math=False)
    if threshold is not None:
        axes.axhline(threshold, color=FLAGGED_COLOUR if worst == "lowest" else "#888888", linestyle="--",
                     linewidth=0.8)
    axes.set_xlim(0.4, len(groups) + 0.9)
    axes.set_title(title, fontsize=10)
    axes.tick_params(axis="y", labelsize=8)
    axes.grid(axis="y", alpha=0.3)
    fit_tick_labels(figure, axes, positions, [name for name, _ in groups], many)
    return png_bytes(figure)


def fit_tick_labels(figure, axes, positions: list[int], names: list[str], many: bool) -> None:
    """The labels' names under ``axes``: level where they fit side by side, else (many labels, or long names:
    ``autochthon_left`` beside ``autochthon_right`` ran into each other, and a long last name past the figure's
    edge) upright, shortened in the middle to 20 characters, the figure made taller for them; then laid out."""
    def upright() -> None:
        axes.set_xticks(positions, distinct_short_names(names, 20), fontsize=8, rotation=90)
        figure.set_size_inches(figure.get_size_inches()[0], max(figure.get_size_inches()[1], 4.2))
        figure.tight_layout()

    if many:
        upright()
        return
    axes.set_xticks(positions, names, fontsize=8, rotation=0)
    figure.tight_layout()
    renderer = figure.canvas.get_renderer()
    boxes = [label.get_window_extent(renderer) for label in axes.get_xticklabels()]
    width = figure.get_size_inches()[0] * figure.dpi
    if any(left.x1 + 2 > right.x0 for left, right in zip(boxes, boxes[1:])) or \
            any(box.x0 < 0 or box.x1 > width for box in boxes):
        upright()


def _value_text(key: str, value: float, threshold: float | None) -> str:
    from medseg.numbers import dice_text, number_text, with_minus

    if key == "dice":
        return dice_text(value, threshold)
    if key == "volume_percent":
        return with_minus(f"{value:+.1f} %")
    return with_minus(number_text(value, 3 if key == "pred_volume_ml" else 2))


def _describe_strip(key: str, title: str, groups: list[tuple[str, list]], worst: str | None,
                    threshold: float | None) -> str:
    """The text alternative of a box plot: per label its number of cases, median and worst point with its case (with
    more than ``MANY_LABELS`` labels, only the plot's worst point), how many points are flagged, and the line drawn."""
    worst_text = {"lowest": "lowest", "highest": "highest", "farthest": f"farthest from {threshold or 0:g}"}.get(worst)

    def badness(value: float) -> float:
        return {"lowest": -value, "highest": value}.get(worst, abs(value - (threshold or 0.0)))

    parts, worst_points = [], []
    for name, points in groups:
        if not points:
            continue
        values = np.array([value for value, _, _ in points], dtype=float)
        text = f"{name}: {len(points)} case{'s' if len(points) != 1 else ''}, median " + _value_text(
            key, float(np.median(values)), threshold)
        if worst_text is not None:
            value, _, case_id = max(points, key=lambda point: badness(point[0]))
            worst_points.append((badness(value), name, value, case_id))
            text += f", {worst_text} {_value_text(key, value, threshold)} ({case_id})"
        parts.append(text)
    if len(groups) > MANY_LABELS:
        parts = [f"{len(parts)} labels"]
        if worst_points:
            _, name, value, case_id = max(worst_points, key=lambda point: point[0])
            parts.append(f"{worst_text} of all: {_value_text(key, value, threshold)} ({case_id}, {name})")
    flagged = sum(bad for _, points in groups for _, bad, _ in points)
    line = {"dice": f"; dashed red line: the Dice threshold {threshold:g}" if threshold is not None else "",
            "volume_percent": "; dashed line: no difference"}.get(key, "")
    return (f"{title} per label, one point per case over a box plot. " + "; ".join(parts)
            + (f"; {flagged} point{'s' if flagged != 1 else ''} of flagged labels drawn as red crosses" if flagged
               else "") + line + ".")


def _volume_scatter(groups: list[tuple[str, list]], colours: list[str] | None = None) -> bytes:
    """Predicted against reference volume, one point per scored case and label; the legend beside the plot area
    (inside it, in a corner, it hid the points there), the figure wider by as much."""
    colours = colours or [label_colour(position) for position in range(len(groups))]
    figure = new_figure(5.4, 3.0)
    axes = figure.add_subplot()
    top = 0.0
    for position, (name, points) in enumerate(groups):
        if not points:
            continue
        ref = np.array([r for r, _, _, _ in points])
        pred = np.array([p for _, p, _, _ in points])
        bad = np.array([flagged for _, _, flagged, _ in points], dtype=bool)
        axes.scatter(ref[~bad], pred[~bad], s=16, c=colours[position], edgecolors="#333333", linewidths=0.4,
                     label=name, zorder=3)
        axes.scatter(ref[bad], pred[bad], s=42, c=colours[position], marker="X", edgecolors=FLAGGED_COLOUR,
                     linewidths=1.0, zorder=4)
        top = max(top, float(ref.max()), float(pred.max()))
    top = top * 1.05 or 1.0
    axes.plot([0, top], [0, top], color="#888888", linewidth=0.8, linestyle="--")
    axes.set_xlim(0, top)
    axes.set_ylim(0, top)
    axes.set_xlabel("reference (ml)", fontsize=8)
    axes.set_ylabel("predicted (ml)", fontsize=8)
    axes.tick_params(labelsize=8)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
    axes.set_title("Predicted vs reference volume", fontsize=10)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    return png_bytes(figure)


def _short(text: str, limit: int = 22) -> str:
    # a name from a file name that is not UTF-8 holds lone surrogates, which matplotlib cannot draw: escaped, as the
    # page and cohort.tsv write it
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def distinct_short_names(names: list[str], limit: int) -> list[str]:
    """``names`` shortened in the middle to ``limit`` characters (:func:`_middle`), and where two would then read
    alike (``autochthonous_back_muscle_left_side_paravertebral`` and ``…_right_…``, both
    ``autochthon…vertebral``), as their first 6 characters and the rest from where they differ:
    ``autoch…left_side_par``, ``autoch…right_side_pa``."""
    middles = [_middle(name, limit) for name in names]
    short = list(middles)
    for index, name in enumerate(names):
        alike = [other for other, text in zip(names, middles) if text == middles[index] and other != name]
        if not alike:
            continue
        common = min(len(_common_prefix(name, other)) for other in alike)
        head = name[:6]
        if common > len(head):
            short[index] = (head + "…" + name[common:])[:limit]
    return short


def _common_prefix(a: str, b: str) -> str:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


def _middle(text: str, limit: int) -> str:
    """Shortened in the middle: names that differ at their ends (``lung_lower_lobe_left/right``) stay apart."""
    if len(text) <= limit:
        return text
    keep = limit - 1
    return text[: (keep + 1) // 2] + "…" + text[len(text) - keep // 2:]
