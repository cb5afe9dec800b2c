"""The self-contained HTML page: inline CSS, images as base64 PNG, one script of its own (the case table's sorting,
allowed by its hash), no external resource.

Everything taken from the results (case ids, paths, label names, error messages) is HTML-escaped. The page's tables
are :mod:`~medseg.report.html_tables`, its case cards :mod:`~medseg.report.html_cards`, and the small parts they share
(escaped text, cells, badges) :mod:`~medseg.report.html_parts`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from medseg.numbers import counted, dice_text
from medseg.report.case_result import CaseResult
from medseg.report.failed_jobs import FailedJob
from medseg.report.figures import MANY_LABELS
from medseg.report.flags import MIN_CASES_FOR_OUTLIERS, Flag
from medseg.report.html_cards import _cases_section
from medseg.report.html_parts import _badge, _caption, _dice, _img, _print_breakable, e
from medseg.report.html_sort import SORT_SCRIPT_HASH, sort_script_tag
from medseg.report.html_tables import _failed_section, _jobs_section, _summary_section, _worst_table
from medseg.report.plots import Plot
from medseg.report.summary import model_text, models_text

__all__ = ["ReportContent", "render_page"]

# the page holds one script of its own (the case table's sorting, allowed by its SHA-256 alone) and needs nothing
# from outside it (inline CSS, images as data: URIs); the browser is told so, a second line of defence behind the
# escaping of every name: markup that slipped through (a case id ``<img src=x onerror=…>``, ``<script>…``) would run
# no script and fetch nothing
CONTENT_SECURITY_POLICY = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
                           f"script-src '{SORT_SCRIPT_HASH}'; base-uri 'none'; form-action 'none'")

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0;color:#1d1d1f;
background:#f5f5f7}
main{max-width:1320px;margin:0 auto;padding:18px 28px 60px}
h1{font-size:24px;margin:6px 0 2px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #d2d2d7;
padding-bottom:4px}h3{font-size:15px;margin:0 0 6px}h1,h2,h3{overflow-wrap:anywhere}
.sub{color:#555;margin:0 0 10px}.muted{color:#5f5f64}.small{font-size:12px}
.tiles{display:flex;gap:10px;flex-wrap:wrap;margin:10px 0}
.tile{background:#fff;border:1px solid #d2d2d7;border-radius:8px;padding:8px 14px;min-width:110px}
.tile b{display:block;font-size:22px}.tile.bad b{color:#d70015}
table{border-collapse:collapse;background:#fff;margin:6px 0}
th,td{border:1px solid #e0e0e5;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f0f0f3;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.low{background:#ffe1de}td.ok{background:#e4f6e8}td.odd{background:#ffefd1}td.na{color:#6e6e73}
.badge{display:inline-block;color:#fff;border-radius:4px;padding:0 6px;margin:1px 2px;font-size:12px;
white-space:nowrap}wbr.p{display:none}
.badge,td.low,td.ok,td.odd{-webkit-print-color-adjust:exact;print-color-adjust:exact}
.case h3 .badge{white-space:normal;max-width:100%}.case h3 wbr.p{display:inline}.legend{overflow-wrap:anywhere}
.plots{display:flex;flex-wrap:wrap;gap:10px;align-items:flex-start}
.plots img{background:#fff;border:1px solid #d2d2d7;border-radius:6px}
.case{background:#fff;border:1px solid #d2d2d7;border-radius:8px;padding:12px 14px;margin:12px 0}
.case.folded{padding:6px 14px;margin:6px 0}.case.folded>summary{color:#1d1d1f;margin:0;overflow-wrap:anywhere}
.case.flagged{border-left:6px solid #d70015}.case.failed{border-left:6px solid #8e0000}
.case ul{margin:4px 0 8px 18px;padding:0}.overlay{max-width:100%;display:block}
.ov{max-width:100%;min-width:0;overflow-x:auto}
.row{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start}.row>div{min-width:0;max-width:100%}
.legend span{display:inline-block;width:22px;height:0;border-top:3px solid;vertical-align:middle;margin:0 4px 0 10px;
box-shadow:0 0 0 1px #c7c7cc}
details>summary{cursor:pointer;color:#0b57d0;margin:4px 0}.plots img{max-width:100%}
.legend span.dash{border-top-style:dashed}
th button{font:inherit;color:inherit;background:none;border:0;padding:0;margin:0;text-align:inherit;cursor:pointer}
th button::after{content:"\\a0\\2195";content:"\\a0\\2195"/"";color:#6e6e73}
th[aria-sort=ascending] button::after{content:"\\a0\\2191";content:"\\a0\\2191"/"";color:inherit}
th[aria-sort=descending] button::after{content:"\\a0\\2193";content:"\\a0\\2193"/"";color:inherit}
code{font-size:12px;background:#f0f0f3;padding:0 3px;border-radius:3px;word-break:break-all}
dl.rules dt{font-weight:600;margin-top:4px}dl.rules dd{margin-left:18px;overflow-wrap:anywhere}
.wide{max-width:100%;overflow-x:auto}
.warn{background:#fff4e5;border:1px solid #f0a020;border-radius:6px;padding:6px 10px}
.case li,td.err{overflow-wrap:anywhere}td.err{min-width:16em}td.path{min-width:14em}
.id{overflow-wrap:anywhere;max-width:22em;min-width:8em}th.rh{background:#fff;font-weight:400}
caption.sr{position:absolute;width:1px;height:1px;margin:-1px;padding:0;overflow:hidden;clip-path:inset(50%);
white-space:nowrap}
@media (max-width:600px){table.stack thead{display:none}table.stack tr{display:block;border:1px solid #e0e0e5;
margin-bottom:6px}table.stack td,table.stack th{display:block;border:none;min-width:0}table.stack td[data-h]::before{
content:attr(data-h) ": ";color:#5f5f64}.ov .overlay{max-width:none}}
@media print{th button::after{content:none}.vd,.sort-help{display:none}
body{background:#fff}main{max-width:none;padding:0}p.back{display:none}
td .badge{white-space:normal}wbr.p{display:inline}td.err,td.path{min-width:10em}
.case{break-inside:auto}.case h3{break-after:avoid}
.case ul,.case .row,.case .ov,.case p,.case li{break-inside:avoid}tr{break-inside:avoid}
h2,h3,h2+p{break-after:avoid}h2+p{break-inside:avoid}thead{display:table-header-group}.wide{overflow:visible}code{word-break:normal;overflow-wrap:anywhere}}
"""


@dataclass
class ReportContent:
    """Everything the page shows, computed by :func:`medseg.report.build.build_report`."""

    results_dir: Path
    cases: list[CaseResult]
    flags: list[list[Flag]]
    order: list[int]
    summary: dict
    label_order: list[tuple[str, str]]  # (value, name)
    plots: list[Plot] = field(default_factory=list)
    overlays: dict[int, bytes] = field(default_factory=dict)
    overlay_shows: dict[int, str] = field(default_factory=dict)  # what each overlay draws, for its alt text
    overlay_notes: dict[int, list[str]] = field(default_factory=dict)
    label_colours: dict[str, str] = field(default_factory=dict)
    failed_jobs: list[FailedJob] = field(default_factory=list)  # the workflow's jobs that failed as a whole

    @property
    def compact(self) -> bool:
        """With more than ``MANY_LABELS`` labels: one summary row per label, the case table's Dice reduced to
        the lowest and the mean, and each case's full label table folded away."""
        return len(self.label_order) > MANY_LABELS

    @cached_property
    def anchors(self) -> list[str]:
        """Each case card's fragment id, from its case id (``report.html#case-sub-01`` stays valid when the
        cohort grows or the order changes); characters outside ``[A-Za-z0-9._-]`` become ``_``, and a clash
        gets ``-2``, ``-3``, …"""
        taken: set[str] = set()
        anchors = []
        for case in self.cases:
            base = "case-" + re.sub(r"[^A-Za-z0-9._-]", "_", str(case.case_id))
            anchor, n = base, 1
            while anchor in taken:
                n += 1
                anchor = f"{base}-{n}"
            taken.add(anchor)
            anchors.append(anchor)
        return anchors


def render_page(content: ReportContent) -> str:
    """The whole HTML document."""
    summary = content.summary
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>medseg QA report: {e(content.results_dir.name)}</title>",
        f"<style>{CSS}</style></head><body><main>",
        _header(content),
    ]
    # the failures with their errors before the table of every case: a QA reader looks for them first (below the
    # table and the plots they sat 7000 px down a 200-case page)
    sections = [("summary", "summary", _summary_section(content)),
                ("jobs", "jobs that failed", _jobs_section(content)),
                ("failed", "failed cases", _failed_section(content)),
                ("worst", "cases, worst first", _worst_table(content)),
                ("plots", "distributions", _plots_section(content)), ("cards", "case cards", _cases_section(content)),
                ("method", "how to read it", _method_section(summary)),
                ("provenance", "provenance", _provenance_section(summary))]
    shown = [(anchor, title, html_) for anchor, title, html_ in sections if html_]
    # a table of contents: the plots sit below a table of every case, the cards below those (200 cases: 70 000 px)
    parts.append('<nav class="small">' + " · ".join(f'<a href="#{a}">{e(t)}</a>' for a, t, _ in shown) + "</nav>")
    parts += [f'<div id="{anchor}">{html_}</div>' for anchor, _, html_ in shown]
    parts.append(f"</main>{sort_script_tag()}</body></html>")
    return "\n".join(parts) + "\n"


def _header(content: ReportContent) -> str:
    summary = content.summary
    counts = summary["cases"]
    prov = summary["provenance"]
    models = ", ".join(e(model_text(m)) for m in prov["models"]) or "unknown"
    versions = ", ".join(f"{e(k)} {e('/'.join(v))}" for k, v in prov["versions"].items()
                         if k in ("medseg", "monai", "torch"))
    tiles = [("cases", counts["total"], False), ("scored", counts["scored"], False),
             ("without reference", counts["no_reference"], False), ("failed", counts["failed"], counts["failed"] > 0),
             ("flagged (failed included)", counts["flagged"], counts["flagged"] > 0),
             # summaries written before it was counted lack it
             ("predicted empty", counts.get("empty", 0), counts.get("empty", 0) > 0)]
    left_out = len(summary.get("left_out_cases") or [])
    if left_out:  # results of cases taken out of the sample sheet, named below
        tiles.append(("left out (not in the sheet)", left_out, False))
    tile_html = "".join(
        f'<div class="tile{" bad" if bad else ""}"><b>{n}</b>'
        + (f'<a href="#failed">{e(name)}</a>' if name == "failed" and n else e(name)) + "</div>"
        for name, n, bad in tiles)
    flag_counts = " ".join(
        f'{_badge(Flag(code, content.summary["flag_rules"].get(code, "")))}&thinsp;×{count["cases"]}'
        for code, count in summary["flags"].items()
    ) or '<span class="muted">no flags</span>'
    return (
        f"<h1>medseg QA report</h1>"
        f'<p class="sub">{counted(counts["total"], "case")} in <code>{e(content.results_dir)}</code> · generated '
        f'{e(summary["created"])} by medseg {e(summary["medseg_version"])}<br>'
        f'model: {models} · {versions or "versions unknown"} · device: '
        f'{e(", ".join(prov["devices"]) or "unknown")}</p>'
        f'{_in_progress_note(summary)}{_left_out_note(summary)}'
        f'<div class="tiles">{tile_html}</div>{_dice_totals(content)}<p>Flags (cases): {flag_counts}</p>'
        f"{_conflict_note(summary)}"
        f"{_pooled_models_note(summary)}"
        f"{_training_note(summary)}"
    )


# a label's statuses whose cases have no Dice, as the line under the header's Dice table names them
_NO_DICE = (("failed", "failed"), ("not_scored", "failed at scoring"), ("no_reference", "without reference"),
            ("both_empty", "empty in both masks"))


def _dice_totals(content: ReportContent) -> str:
    """Each label's mean and median Dice at the top, with how many of the cases they count and why the others are not
    in them (failed, without reference, empty in both masks): the summary table below gives them among every
    metric's figures, where a QA reader looking for the cohort's result did not see that a failed case is left out.
    With many labels, one line: the mean of the labels' means and where each label's figures are."""
    summary = content.summary
    labels = summary["labels"]
    if not labels:
        return ""
    threshold = summary["settings"]["dice_threshold"]
    total = summary["cases"]["total"]
    empty = sum(stats["status_counts"].get("empty_prediction", 0) for stats in labels.values())
    zero = (" An empty prediction counts as Dice 0, and so does a label predicted where the reference has none."
            if empty or any(stats["status_counts"].get("false_positive") for stats in labels.values()) else "")
    if content.compact:
        overall = summary.get("foreground_mean") or {}
        if overall.get("dice") is None:
            return ""
        return (f'<p>Dice, the mean over {overall["labels"]} labels of their means: '
                f'<b>{dice_text(overall["dice"], threshold)}</b> (each label\'s mean and median, and the cases they '
                f'count, in the summary below; failed cases are in none of them).{zero}</p>')
    rows = []
    for value, stats in labels.items():
        dice = stats["dice"]
        if not dice["n"]:
            cells = '<td class="num na">–</td><td class="num na">–</td>'
        else:
            cells = _dice(dice["mean"], threshold) + _dice(dice["median"], threshold)
        counts = stats["status_counts"]
        left = [f"{counts[status]} {words}" for status, words in _NO_DICE if counts.get(status)]
        named = sum(counts.values())
        if named < total:  # cases whose model has no such label (two models' results)
            left.append(f"{total - named} without this label")
        rows.append(f'<tr><th class="rh" scope="row">{e(value)} {_print_breakable(stats["name"])}</th>{cells}'
                    f'<td class="num">{dice["n"]} of {total}</td><td>{e(", ".join(left)) or "none"}</td></tr>')
    return ('<div class="wide"><table class="totals">' + _caption("Mean and median Dice per label")
            + "<thead><tr><th>label</th><th>mean Dice</th><th>median Dice</th><th>cases with a Dice</th>"
            "<th>not in these figures</th></tr></thead>" + "".join(rows) + "</table></div>"
            f'<p class="small muted">Over the cases with a Dice: a failed case, one without reference and a label '
            f"empty in both masks have none.{zero}</p>")


def _training_note(summary: dict) -> str:
    """A warning when some cases are images the model was trained on: their Dice is not the model's accuracy."""
    known = summary.get("training_images")
    if not known:
        return ""

    others = known["other_cases"]

    def mean(stats: dict, cases: int, whom: str) -> str:
        """The mean Dice and whose it is: ``on 5 of them`` where fewer of the group have a Dice (not scored, or the
        label empty in both masks) than the group holds."""
        dice = "–" if stats["mean"] is None else dice_text(stats["mean"])
        return f"{dice} on {whom}" if stats["n"] >= cases else f"{dice} on {stats['n']} of {whom}"

    one = known["cases"] == 1  # "1 of 3 cases is an image …, its Dice"; "All of 1 cases are" read one alone
    per_label = "; ".join(
        f"{e(entry['name'])} {mean(entry['training'], known['cases'], 'it' if one else 'them')}"
        + (f", {mean(entry['other'], others, 'the others')}" if entry["other"]["n"] else "")
        for entry in known["dice"].values() if entry["training"]["n"])
    scored = {group: max((entry[group]["n"] for entry in known["dice"].values()), default=0)
              for group in ("training", "other")}  # outliers need that many values of a label in a group
    if not others:
        outliers = ("Outliers are judged among them. " if scored["training"] >= MIN_CASES_FOR_OUTLIERS else
                    f"With fewer than {MIN_CASES_FOR_OUTLIERS} scored, no outlier is judged. ")
    else:
        small = [name for name, group in (("the training images", "training"), ("the others", "other"))
                 if scored[group] < MIN_CASES_FOR_OUTLIERS]
        outliers = ("Outliers of Dice, HD95 and volume difference are judged within each group"
                    + (f" ({' and '.join(small)}: fewer than {MIN_CASES_FOR_OUTLIERS} scored, not judged)" if small
                       else "") + ". ")
    unknown = known.get("unknown_cases", 0)
    total = known["cases"] + others + unknown
    untold = (f"{counted(unknown, 'case')} that failed before {'its' if unknown == 1 else 'their'} input was "
              f"hashed {'is' if unknown == 1 else 'are'} in neither group. ") if unknown else ""
    if not one:
        head = (f'{"All" if not others and not unknown else known["cases"]} of {total} cases are images the model was '
                "trained on</b> (their SHA-256 is among the training images its package lists; marked <i>training "
                "image</i> below): their Dice overstates what it does on new data.")
    else:
        head = (f'{"The one case is" if total == 1 else f"1 of {total} cases is"} an image the model was trained '
                "on</b> (its SHA-256 is among the training images its package lists; marked <i>training image</i> "
                "below): its Dice overstates what the model does on new data.")
    return (f'<p class="warn"><b>{head} ' + untold
            + (f"Mean Dice: {per_label}. " if per_label else "") + outliers
            + ("The summary below pools all cases." if others else "") + "</p>")


def _in_progress_note(summary: dict) -> str:
    """A warning when a cohort run was still writing to the results folder as the report was made."""
    holder = summary.get("run_in_progress")
    if not holder:
        return ""
    return _warning("A cohort run was still writing to this folder", e(holder),
                    " when this report was made: cases it had not segmented yet are missing, and those it had not "
                    "scored yet are shown without reference (or as failed, against a sample sheet). Make the report "
                    "again once the run has ended.")


def _left_out_note(summary: dict) -> str:
    """A note naming the results of cases not in the sample sheet, which the report leaves out."""
    from medseg.report.expected_cases import left_out_text

    folders = summary.get("left_out") or []
    return f'<p>{e(left_out_text(folders, len(summary.get("left_out_cases") or [])))}.</p>' if folders else ""


def _conflict_note(summary: dict) -> str:
    """A warning when one label value names different labels in different cases (two models' results)."""
    conflicts = summary.get("label_conflicts") or {}
    if not conflicts:
        return ""
    pairs = "; ".join(f"{e(value)} = {e(' / '.join(names))}" for value, names in conflicts.items())
    return _warning("Label values mean different things in different cases", pairs,
                    ": the tables, plots and outlier flags below pool cases by label value. Make one report per model.")


def _pooled_models_note(summary: dict) -> str:
    """A warning when the figures pool cases that different models (or versions of one) made."""
    pooled = summary.get("pooled_models") or []
    if not pooled:
        return ""
    return _warning(f"The figures pool the cases of {len(pooled)} models", e(models_text(pooled)),
                    ": the summary, plots and outlier flags below mix them; <code>cohort.tsv</code> names the model of "
                    "each case (<code>model_version</code>, <code>model_weights_sha256</code>). Make one report per "
                    "model.")


def _warning(headline: str, detail: str, rest: str) -> str:
    """A warning paragraph above the summary: ``headline`` in bold, then ``(detail)`` and ``rest`` (all HTML, the
    caller's values already escaped)."""
    return f'<p class="warn"><b>{headline}</b> ({detail}){rest}</p>'


def _plots_section(content: ReportContent) -> str:
    if not content.plots:
        return ""
    images = "".join(_img(plot.png, plot.description or plot.title) for plot in content.plots)
    named = ("the worst case of each plot is named; the volume plot shows (predicted − reference) / reference "
             "per label" if content.compact else "the worst case of each label is named")
    return ("<h2>Distributions per label</h2>"
            '<p class="small muted">One point per case; red crosses are cases flagged for that label; '
            f"{named}. Dashed red line: the Dice threshold.</p>"
            f'<div class="plots">{images}</div>')


def _method_section(summary: dict) -> str:
    policy = summary["policy"]
    rules = "".join(f"<dt>{e(code)}</dt><dd>{e(rule)}</dd>" for code, rule in summary["flag_rules"].items())
    return ("<h2>How to read this report</h2>"
            f"<p><b>Empty masks.</b> {e(policy['empty_masks'])}</p>"
            f"<p><b>Surface distances and volumes.</b> {e(policy['surfaces'])}</p>"
            f"<p><b>Grids.</b> {e(policy['grids'])}</p>"
            f'<p><b>Flags.</b></p><dl class="rules">{rules}</dl>')


def _provenance_section(summary: dict) -> str:
    prov = summary["provenance"]
    models = "".join(
        f"<tr><td>{e(m['name'])}</td><td>{e(m['version'])}</td><td><code>{e(m['weights_sha256'])}</code></td>"
        # shortened for the page's width, and marked so ("…", the whole hash on hover), as medseg's lines shorten a
        # hash: twelve bare digits read as the whole hash, which then matched no sidecar's config_sha256
        + (f"<td><code title=\"{e(m['config_sha256'])}\">{e(m['config_sha256'][:12])}…</code></td>"
           if m.get("config_sha256") else "<td><code>–</code></td>")
        + f'<td class="num">{m["cases"]}</td></tr>' for m in prov["models"]
    ) or '<tr><td colspan="5" class="muted">no sidecar records a model</td></tr>'
    versions = "".join(f"<tr><td>{e(k)}</td><td>{e(', '.join(v))}</td></tr>" for k, v in prov["versions"].items()
                       ) or '<tr><td colspan="2" class="muted">no sidecar records them</td></tr>'  # not a bare head
    # a mapping (the CT windows the models declare) as "model: window", not Python's repr of it
    settings = "".join(f"<tr><td>{e(k)}</td><td>{e(_setting_text(k, v, summary['settings']))}</td></tr>"
                       for k, v in summary["settings"].items())
    devices = ", ".join(f"{e(d)} ({n})" for d, n in prov["devices"].items()) or "unknown"
    # summaries written before these were recorded lack them
    precisions = ", ".join(f"{e(p)} ({n})" for p, n in (prov.get("precisions") or {}).items()) or "unknown"
    overlaps = ", ".join(f"{e(o)} ({n})" for o, n in (prov.get("overlaps") or {}).items()) or "unknown"
    # predictions of another tool, scored by a folder's evaluation: segmented, but no sidecar says how or when
    scored = (summary.get("cases") or {}).get("scored") or 0
    span = (f"Cases segmented between {e(prov['created_first'])} and {e(prov['created_last'])}."
            if prov["created_first"] else "No sidecar of medseg infer records how or when the cases were segmented "
            "(predictions of another tool)." if scored else "No case was segmented.")
    # each table scrolls in its own box: a weights hash and a 40-character medseg_commit made the page scroll
    # sideways on a phone (519 px at 390 and at 500)
    return ("<h2>Provenance</h2><div class=\"wide\"><table>" + _caption("Models")
            + "<tr><th>model</th><th>version</th><th>weights SHA-256</th><th>model.json SHA-256</th><th>cases</th></tr>"
            f"{models}</table></div><div class=\"wide\"><table>{_caption('Package versions')}"
            "<tr><th>package</th><th>versions used</th></tr>"
            f"{versions}</table></div>"
            f"<p>Devices: {devices}. Precision: {precisions}. Tile overlap: {overlaps}. {span} "
            f"Report generated {e(summary['created'])} by medseg "
            f"{e(summary['medseg_version'])}.</p>"
            f"<div class=\"wide\"><table>{_caption('Report settings')}<tr><th>report setting</th><th>value</th></tr>"
            f"{settings}</table></div>")


def _setting_text(key: str, value, settings: dict) -> str:
    """A report setting as its table shows it, in words: a mapping as ``model: window, …`` (``none`` when empty), a
    yes or no for a truth value (``ct_window_chosen`` read ``False`` beside ``ct_window soft-tissue``, as if that
    window had been chosen), and the CT window said to be the default where none was chosen."""
    if isinstance(value, dict):
        return ", ".join(f"{name}: {item}" for name, item in value.items()) or "none"
    if key == "ct_window" and settings.get("ct_window_chosen") is False:
        return (f"{value} (the default, for the cases whose model declares none: none chosen)"
                if settings.get("model_ct_windows") else f"{value} (the default: none chosen, and no model declares "
                "one)")
    if key == "ct_window_chosen" and value is False:
        return "no (none chosen)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "none" if value is None else str(value)
