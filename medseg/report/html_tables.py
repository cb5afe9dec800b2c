"""The page's tables: the statistics per label, every case worst first, and the failed cases with their errors."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from medseg.numbers import dice_text, number_text, with_minus
from medseg.report.case_result import CaseResult, asked_series
from medseg.report.failed_jobs import SHOWN_JOBS, FailedJob, same_error_groups, shared_error
from medseg.report.flags import Flag
from medseg.report.html_parts import (
    _badge,
    _breakable,
    _caption,
    _column_heads,
    _dice,
    _grouped_badges,
    _num,
    _print_breakable,
    e,
    status_text,
)

if TYPE_CHECKING:
    from medseg.report.html import ReportContent

__all__ = ["COMPACT_COLUMNS", "ORDER_TEXT", "SORT_TEXT", "STAT_ROWS"]


STAT_ROWS = (("dice", "Dice", 3), ("hd95_mm", "HD95 (mm)", 2), ("assd_mm", "ASSD (mm)", 2),
             ("pred_volume_ml", "predicted volume (ml)", 3), ("ref_volume_ml", "reference volume (ml)", 3),
             ("volume_difference_ml", "predicted − reference (ml)", 3),
             ("false_positive_ml", "false positive (ml)", 3), ("false_negative_ml", "false negative (ml)", 3))


def _summary_section(content: ReportContent) -> str:
    labels = content.summary["labels"]
    if not labels:
        return "<h2>Summary</h2><p class=\"muted\">No case has a result to summarise.</p>"
    threshold = content.summary["settings"]["dice_threshold"]
    if content.compact:
        return _summary_compact(labels, threshold) + _foreground_mean(content.summary, threshold)
    rows = []
    # the label and the metric are the row's headers (th with scope), each label's rows a group of their own: a
    # screen reader names them with each value, as it names the column
    for value, stats in labels.items():
        first = True
        shown = [(key, title, digits) for key, title, digits in STAT_ROWS if stats[key]["n"]]
        rows.append("<tbody>")
        for key, title, digits in shown:
            s = stats[key]
            head = (f'<th class="rh" scope="rowgroup" rowspan="{len(shown)}">{_label_head(value, stats)}</th>'
                    if first else "")
            first = False
            cells = "".join(_dice(s[k], threshold) if key == "dice" and k != "std" else _num(s[k], digits)
                            for k in ("mean", "median", "std", "min", "max"))
            rows.append(f'<tr>{head}<th class="rh" scope="row">{e(title)}</th><td class="num">{s["n"]}</td>'
                        f"{cells}</tr>")
        rows.append("</tbody>")
    return ("<h2>Summary per label</h2><div class=\"wide\"><table>"
            + _caption("Statistics of each metric per label") + "<thead><tr>"
            + _column_heads("label", "metric", "n", "mean", "median", "std", "min", "max") + "</tr></thead>"
            + "".join(rows) + "</table></div>"
            '<p class="small muted">Statistics over the cases where the value is defined (n): predicted volumes over '
            "every segmented case, reference volumes and predicted − reference (paired, case by case) over the scored "
            "ones; see the empty-mask policy below. std is the sample standard deviation.</p>"
            + _foreground_mean(content.summary, threshold))


def _foreground_mean(summary: dict, threshold: float) -> str:
    """summary.json's ``foreground_mean`` (nnU-Net's figure of that name) under the label table, as `medseg
    evaluate` prints it: where two or more labels are summarised and one has a Dice."""
    overall = summary.get("foreground_mean") or {}
    labels = summary["labels"]
    if len(labels) < 2 or not overall.get("labels"):
        return ""
    without = overall.get("without_dice") or []
    counted_labels = f"{overall['labels']} of {len(labels)}" if without else f"the {overall['labels']}"
    named = ", ".join(f"{value} {(labels.get(value) or {}).get('name', '')}".strip() for value in without)
    left_out = (f"; {named} {'has' if len(without) == 1 else 'have'} no Dice and {'is' if len(without) == 1 else 'are'}"
                " left out, where nnU-Net's mean is NaN") if without else ""
    shown = dice_text(overall["dice"], threshold)
    return (f"<p>Mean over {e(counted_labels)} labels of their mean Dice: <b>{shown}</b>"
            f" ({e(_NNUNET)} <code>foreground_mean</code>{e(left_out)})</p>")


_NNUNET = "nnU-Net's"


def _dice_colours(threshold: float) -> str:
    """What the case table's Dice cell colours mean, with the threshold they are judged against."""
    return (f"A Dice cell is red below the Dice threshold {threshold:g}, amber where the label is flagged as far below "
            "the cases it is judged with (dice_outlier), green otherwise.")


ORDER_TEXT = ("Failed cases first, then flagged cases before clean ones; within each, by the lowest Dice over labels "
              "(cases without a reference last), then by number of flags.")


# HD95 and ASSD have their own n: they are defined only where both masks have voxels, Dice also where one is empty
COMPACT_COLUMNS = (("dice", "Dice", ("n", "mean", "median", "min"), 3),
                   ("hd95_mm", "HD95 (mm)", ("n", "median", "max"), 2),
                   ("assd_mm", "ASSD (mm)", ("mean",), 2),
                   ("pred_volume_ml", "predicted (ml)", ("median",), 3),
                   ("ref_volume_ml", "reference (ml)", ("median",), 3),
                   ("volume_difference_ml", "pred − ref (ml)", ("mean",), 3))


def _summary_compact(labels: dict, threshold: float) -> str:
    groups = "".join(f'<th scope="colgroup" colspan="{len(keys)}">{e(title)}</th>'
                     for _, title, keys, _ in COMPACT_COLUMNS)
    heads = _column_heads(*(k for _, _, keys, _ in COMPACT_COLUMNS for k in keys))
    rows = []
    for value, stats in labels.items():
        cells = "".join(f'<td class="num">{stats[metric]["n"]}</td>' if k == "n" else
                        _dice(stats[metric][k], threshold) if metric == "dice" else _num(stats[metric][k], digits)
                        for metric, _, keys, digits in COMPACT_COLUMNS for k in keys)
        rows.append(f'<tr><th class="rh" scope="row">{_label_head(value, stats)}</th>{cells}</tr>')
    return (f"<h2>Summary per label ({len(labels)} labels)</h2>"
            f'<div class="wide"><table>{_caption("Statistics per label")}'
            f'<thead><tr><th scope="col" rowspan="2">label</th>{groups}</tr>'
            f"<tr>{heads}</tr></thead>"
            + "".join(rows) + "</table></div>"
            '<p class="small muted">One row per label; statistics over the cases where the value is defined (n: '
            "cases with a Dice, and cases with an HD95, where both masks have voxels, over which ASSD is taken too; "
            "predicted volumes over every segmented case, reference volumes and pred − ref, paired case by case, over "
            "the scored ones); see the empty-mask policy below. Every statistic of every metric "
            "(n, mean, median, std, min, max) is in <code>summary.json</code>.</p>")


def _label_head(value: str, stats: dict) -> str:
    status = ", ".join(f"{e(status_text(k))} {v}" for k, v in stats["status_counts"].items())
    return f'<b>{e(value)} {e(stats["name"])}</b><br><span class="small muted">{status}</span>'


def _worst_table(content: ReportContent) -> str:
    threshold = content.summary["settings"]["dice_threshold"]
    if content.compact:
        return _worst_table_compact(content, threshold)
    label_heads = "".join(f'<th data-sort="num" data-key="dice-{_key(value)}">Dice {_print_breakable(name)}</th>'
                          for value, name in content.label_order)
    volume_heads = "".join(f'<th data-sort="num" data-key="volume-{_key(value)}" data-first="desc">predicted '
                           f"{_print_breakable(name)} (ml)</th>" for value, name in content.label_order)
    rows = []
    for rank, index in enumerate(content.order, start=1):
        case = content.cases[index]
        by_value = {label.value: label for label in case.labels()}
        outliers = _dice_outlier_values(content.flags[index])
        dice_cells, volume_cells = [], []
        for value, _ in content.label_order:
            label = by_value.get(value)
            dice = label.dice if label else None
            if dice is None:
                status = label.status if label else ("failed" if case.status == "failed" else "")
                # a failed case sorts first by Dice, worst first; no Dice for another reason, last
                dice_cells.append(f'<td class="num na"{_failed_key(status)}>{e(status_text(status)) or "–"}</td>')
            else:
                css = "low" if dice < threshold else "odd" if value in outliers else "ok"
                dice_cells.append(f'<td class="num {css}" data-v="{dice!r}">{dice_text(dice, threshold)}</td>')
            volume_cells.append(_keyed_num(label.pred_volume_ml if label else None, 3))
        badges = "".join(_badge(flag) for flag in content.flags[index])
        rows.append(f'<tr id="row-{content.anchors[index]}" data-rank="{rank}"><td class="num">{rank}</td>'
                    f'<th class="rh id" scope="row"><a href="#{content.anchors[index]}">'
                    f'{_breakable(case.case_id)}</a></th>'
                    f"<td>{_status_cell(case, content)}</td>{_flags_cell(content.flags[index], badges)}"
                    f"{''.join(dice_cells)}"
                    f"{''.join(volume_cells)}{_volume_difference_cell(case)}</tr>")
    return (_CASES_HEADING +
            f'<p class="small muted">{ORDER_TEXT} {SORT_TEXT} Hover a flag for its reason. '
            f"{_dice_colours(threshold)}</p>"
            f"<div class=\"wide\">{_SORTABLE_TABLE}"
            f'{_caption("Every case, worst first: status, flags, Dice and predicted volume")}'
            f"<thead><tr>{_SORTED_HEADS}{label_heads}"
            f"{volume_heads}{_VOLUME_DIFFERENCE_HEAD}</tr></thead><tbody>" + "".join(rows) + "</tbody></table></div>")


# the case table's heading and the table, whose words "worst first" (and its caption's) the sorting script makes
# say the order in force (see medseg.report.html_sort); as written, and without script, worst first
_CASES_HEADING = '<h2 id="cases-order">Cases, worst first</h2>'
_SORTABLE_TABLE = '<table class="sortable" data-title="cases-order" data-order="worst first">'

# the heads every case table starts with, each a sort key (the rank restores the page's own order); ``data-key``
# names the column in the URL's fragment (#sort=flags-desc)
# (# marked as the order the table is written in: a screen reader says so before any click, and without script)
_SORTED_HEADS = ('<th data-sort="num" data-key="rank" data-name="rank" aria-sort="ascending">#</th>'
                 '<th data-sort="text" data-key="case">case</th><th data-sort="text" data-key="status">status</th>'
                 '<th data-sort="num" data-key="flags" data-first="desc">flags</th>')
# left out on paper (its column made a two-label case table wider than a portrait page: 774 px against 717), as is
# the sorting it serves; the summary and cohort.tsv have every label's volumes
_VOLUME_DIFFERENCE_HEAD = ('<th class="vd" data-sort="num" data-key="volume-difference" data-first="desc">largest '
                           "volume difference</th>")

# hidden until the sorting script shows it: without script (or on paper) the heads are no buttons to click
SORT_TEXT = ('<span class="sort-help" hidden>Click a column\'s head to sort by it, worst first for that column (the '
             "lowest Dice, the most flags, the largest volume difference), again for the other way; # restores this "
             "order. The page's address keeps the order: reload or share it.</span>")


def _key(value: str) -> str:
    """A label's value as it names its columns in the URL's fragment, of ``[A-Za-z0-9._-]`` only (the script ignores a
    fragment with any other), one key per value: a value of digits as it is (``dice-2``), any other ``_`` followed by
    the value with each character outside ``[A-Za-z0-9.-]`` (``_`` too) written ``_<hex code>_`` (``a b``:
    ``dice-_a_20_b``, ``a/b``: ``dice-_a_2f_b``; both were ``dice-a_b``, and a value ``difference`` took the volume
    difference column's key)."""
    value = str(value)
    if value.isascii() and value.isdigit():
        return value
    return "_" + re.sub(r"[^A-Za-z0-9.-]", lambda found: f"_{ord(found.group()):x}_", value)


def _failed_key(status: str) -> str:
    """The sort key of a Dice cell without a Dice: a failed case's sorts before every Dice (worst first), any other
    (no reference, both empty) has none and sorts last."""
    return ' data-v="-1"' if status == "failed" else ' data-v=""'


def _keyed_num(value, digits: int) -> str:
    """:func:`_num`'s cell with its full value as the sort key (none: sorted last)."""
    cell = _num(value, digits)
    return cell.replace("<td ", f'<td data-v="{"" if value is None else repr(float(value))}" ', 1)


def _flags_cell(flags: list[Flag], badges: str) -> str:
    """The flag badges, sorted by their number (a failed case's ``failed`` among them)."""
    return f'<td data-v="{len(flags)}">{badges}</td>'


def _volume_difference_cell(case: CaseResult) -> str:
    """The label whose predicted volume is farthest from its reference's, in percent of the reference (a label
    predicted where the reference has none: its volume, sorted above any percentage); sorted by its size."""
    worst = None  # (size, text)
    for label in case.labels():
        pred, ref = label.pred_volume_ml, label.ref_volume_ml
        if pred is None or ref is None or (pred == 0 and ref == 0):
            continue
        if ref > 0:
            percent = 100.0 * (pred - ref) / ref
            entry = (abs(percent), f"{'+' if percent > 0 else ''}{with_minus(f'{percent:.1f}')} %", label.name)
        else:
            entry = (float("inf"), f"+{number_text(pred, 3)} ml, none in the reference", label.name)
        if worst is None or entry[0] > worst[0]:
            worst = entry
    if worst is None:
        return '<td class="num na vd" data-v="">–</td>'
    key = "Infinity" if worst[0] == float("inf") else repr(worst[0])
    return (f'<td class="num vd" data-v="{key}">{worst[1]}<br><span class="small muted">{_print_breakable(worst[2])}'
            "</span></td>")


def _dice_outlier_values(flags: list[Flag]) -> set[str | None]:
    """The label values whose Dice is flagged as far below the cases it is judged with (amber cells)."""
    return {flag.value for flag in flags if flag.code == "dice_outlier"}


def _status_cell(case: CaseResult, content: ReportContent | None = None) -> str:
    """A case's status, whether its input is one of the model's training images, and whether a job of the run that
    failed as a whole kept it from an earlier run (shown as ok, it read as made by this run)."""
    tag = '<br><span class="small muted">training image</span>' if case.in_training_set else ""
    kept = next((job for job in (content.failed_jobs if content is not None else ()) if case.case_id in job.kept),
                None)
    if kept is not None:
        tag += (f'<br><span class="small muted">kept from an earlier run; its job <a href="#{e(kept.anchor)}">'
                f"{e(kept.name)}</a> failed</span>")
    return f"{e(case.status.replace('_', ' '))}{tag}"


def _worst_table_compact(content: ReportContent, threshold: float) -> str:
    rows = []
    for rank, index in enumerate(content.order, start=1):
        case = content.cases[index]
        scored = [label for label in case.labels() if label.dice is not None]
        if scored:
            low = min(scored, key=lambda label: label.dice)
            outliers = _dice_outlier_values(content.flags[index])
            css = "low" if low.dice < threshold else "odd" if low.value in outliers else "ok"
            below = sum(label.dice < threshold for label in scored)
            mean = sum(label.dice for label in scored) / len(scored)
            cells = (f'<td class="num {css}" data-v="{low.dice!r}">{dice_text(low.dice, threshold)}</td>'
                     f"<td>{_print_breakable(low.name)}</td>"
                     f'<td class="num" data-v="{mean!r}">{dice_text(mean)}</td>'
                     f'<td class="num" data-v="{below}">{below} of {len(scored)}</td>')
        else:
            key = _failed_key("failed" if case.status == "failed" else "")
            cells = (f'<td class="num na"{key}>–</td><td></td><td class="num na"{key}>–</td>'
                     '<td class="num na" data-v="">–</td>')
        rows.append(f'<tr id="row-{content.anchors[index]}" data-rank="{rank}"><td class="num">{rank}</td>'
                    f'<th class="rh id" scope="row"><a href="#{content.anchors[index]}">'
                    f'{_breakable(case.case_id)}</a></th>'
                    f"<td>{_status_cell(case, content)}</td>"
                    f"{_flags_cell(content.flags[index], _grouped_badges(content.flags[index]))}"
                    f"{cells}{_volume_difference_cell(case)}</tr>")
    return (_CASES_HEADING +
            f'<p class="small muted">{ORDER_TEXT} With {len(content.label_order)} labels, each case\'s Dice per label '
            "is on its card (follow the "
            "case's link) and in <code>cohort.tsv</code>; the mean is over the labels that have a Dice. Hover a flag "
            f"for its reasons. {SORT_TEXT} {_dice_colours(threshold)}</p>"
            f"<div class=\"wide\">{_SORTABLE_TABLE}"
            f'{_caption("Every case, worst first: status, flags, lowest and mean Dice")}'
            f'<thead><tr>{_SORTED_HEADS}<th data-sort="num" data-key="lowest-dice">lowest Dice</th>'
            '<th data-sort="text" data-key="lowest-dice-label">label</th>'
            '<th data-sort="num" data-key="mean-dice">mean Dice</th>'
            f'<th data-sort="num" data-key="labels-below" data-first="desc">labels with Dice &lt; '
            f"{threshold:g}</th>{_VOLUME_DIFFERENCE_HEAD}</tr></thead><tbody>"
            + "".join(rows) + "</tbody></table></div>")


def _failed_section(content: ReportContent) -> str:
    failed = [i for i in content.order if content.cases[i].status == "failed"]
    if not failed:
        return ""
    rows = []
    jobs = {job.name: job for job in content.failed_jobs}
    for index in failed:
        case = content.cases[index]
        failure = case.failure or {}
        job = jobs.get(((failure.get("job") or {}) if isinstance(failure.get("job"), dict) else {}).get("name"))
        # a case failed for its job's error: the error is shown once, in the job's block (it filled every row)
        error = (f'its job <a href="#{e(job.anchor)}">{e(job.name)}</a> failed on its last attempt for a reason of '
                 "the whole job (its error is under Jobs that failed); a later run tries it again"
                 if job is not None else e(failure.get("error")))
        rows.append(f'<tr><th class="rh id" scope="row"><a href="#{content.anchors[index]}">'
                    f"{_breakable(case.case_id)}</a></th>"
                    f'<td data-h="stage">{e(failure.get("stage"))}</td>'
                    f'<td data-h="error type">{e(failure.get("error_type"))}</td>'
                    f'<td class="err">{error}</td>'
                    f'<td class="path">{_failure_files(failure, case.failed_prediction is not None)}</td></tr>')
    # on a phone each failure is a block of lines (as a table, the reason was off-screen to the right)
    return (f"<h2>Failed cases ({len(failed)})</h2><div class=\"wide\"><table class=\"stack\">"
            + _caption("Failed cases: stage, error and files") + "<thead><tr><th>case</th><th>stage</th>"
            "<th>error type</th><th>error</th><th>files</th></tr></thead>" + "".join(rows)
            + "</table></div>")


FOLDED_AFTER = SHOWN_JOBS + 2  # a group of more jobs than this shows the first SHOWN_JOBS' lines, the rest folded
SHOWN_ERRORS = 10  # Jobs that failed shows this many entries (one an error) before folding more than two others


def _jobs_section(content: ReportContent) -> str:
    """The workflow's jobs whose last attempt failed as a whole (:mod:`medseg.report.failed_jobs`): each job's error
    and log once, the cases it recorded as failed and those it kept from an earlier run."""
    if not content.failed_jobs:
        return ""
    anchors: dict[str, str] = {}
    for index, case in enumerate(content.cases):
        anchors.setdefault(case.case_id, content.anchors[index])

    def linked(cases: list[str]) -> str:
        return ", ".join(f'<a href="#{anchors[case]}">{_breakable(case)}</a>' if case in anchors else e(case)
                         for case in cases)

    def own(job: FailedJob) -> list[str]:  # what is a job's own: its logs and its cases
        lines = [f"log <code>{e(job.log)}</code>"] if job.log else []
        if job.slurm_log:
            lines.append(f"SLURM log <code>{e(job.slurm_log)}</code>")
        if job.failed:
            lines.append(f"failed: {linked(job.failed)}")
        if job.kept:
            lines.append(f"kept from an earlier run, not made by this one: {linked(job.kept)}")
        return lines

    def each(members: list[FailedJob]) -> str:  # a line each: its name, logs and cases, where its cases' rows link
        return "".join(f'<li id="{e(member.anchor)}"><b>{e(member.name)}</b>: ' + "; ".join(own(member)) + "</li>"
                       for member in members)

    blocks = []
    groups = same_error_groups(content.failed_jobs)
    for group in groups:
        job = group[0]
        said = job.error if len(group) == 1 else shared_error(job.error, job.slurm_log)  # each job's log on its line
        lines = [f"stage {e(job.stage)}; error type <code>{e(job.error_type)}</code>",
                 f'<span class="err">{e(said)}</span>']
        if len(group) == 1:
            blocks.append(f'<div class="job" id="{e(job.anchor)}"><h3>{e(job.name)}</h3><p>'
                          + "<br>".join(lines + own(job)) + "</p></div>")
            continue
        # jobs that failed with one error (device: cuda on every node without CUDA): the error once, each job's own
        # logs and cases on its own line; past the first few, those lines folded (300 jobs were a wall of 300
        # lines), each keeping its anchor there: a browser opens the fold it is in
        names = ", ".join(member.name for member in group[:SHOWN_JOBS]) + (" …" if len(group) > SHOWN_JOBS else "")
        listed = f"<ul>{each(group)}</ul>"
        if len(group) > FOLDED_AFTER:
            more = len(group) - SHOWN_JOBS
            lines.append("every job with its logs: summary.json's failed_jobs (each case's job: cohort.tsv's "
                         "failed_job)")
            listed = (f"<ul>{each(group[:SHOWN_JOBS])}</ul><details><summary>… and {more} more jobs with this "
                      f"error: their logs and cases</summary><ul>{each(group[SHOWN_JOBS:])}</ul></details>")
        blocks.append(f'<div class="job"><h3>{len(group)} jobs: {e(names)}</h3><p>' + "<br>".join(lines)
                      + f"</p>{listed}</div>")
    if len(blocks) > SHOWN_ERRORS + 2:  # jobs each failing its own way: the first entries, the others folded
        jobs = sum(len(group) for group in groups[SHOWN_ERRORS:])
        blocks[SHOWN_ERRORS:] = [f"<details><summary>… and {len(blocks) - SHOWN_ERRORS} more errors ({jobs} jobs): "
                                 "their entries</summary>" + "".join(blocks[SHOWN_ERRORS:]) + "</details>"]
    return (f"<h2>Jobs that failed ({len(content.failed_jobs)})</h2>"
            '<p class="small muted">A job of the workflow whose last attempt failed for a reason of the whole job, not '
            "of one case: its error is shown once here (once for the jobs that failed with the same error). Its cases "
            "that were not finished are listed as failed, and a later run tries them again; a case it kept was made "
            "by an earlier run (for other settings, or where the job could not tell), not by this one.</p>"
            + "".join(blocks))


def _failure_files(failure: dict, prediction: bool = False) -> str:
    """The input (``prediction``: the prediction a folder's scoring failed on, which its record gives as its input),
    where it has one, and the reference where the case has one (a missing or unreadable reference is the file the
    error is about)."""
    what = "prediction" if prediction else "input"
    files = [f"{what} <code>{e(failure.get('input'))}</code>{e(asked_series(failure))}"] if failure.get("input") \
        else []
    if failure.get("reference"):
        files.append(f"reference <code>{e(failure['reference'])}</code>")
    return "<br>".join(files)
