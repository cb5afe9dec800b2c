"""The page's case cards, worst first: each case's flags, labels, overlay, notes and files; a card with nothing to
look at beyond its row of the case table is one line."""

from __future__ import annotations

from typing import TYPE_CHECKING

from medseg.numbers import dice_text
from medseg.report.case_result import LabelResult
from medseg.report.flags import Flag
from medseg.report.html_parts import (
    _badge,
    _by_code,
    _caption,
    _column_heads,
    _dice,
    _grouped_badges,
    _img,
    _num,
    _print_breakable,
    _reasons,
    e,
    status_text,
)

if TYPE_CHECKING:
    from medseg.report.html import ReportContent

__all__ = ["TO_LOOK_AT"]


TO_LOOK_AT = ("false_positive", "empty_prediction")  # label statuses shown unfolded on a compact case card


def _legend(content: ReportContent) -> str:
    from medseg.report.overlay_image import DEFAULT_CT_WINDOW, ct_window_text

    settings = content.summary.get("settings", {})
    window = settings.get("ct_window", DEFAULT_CT_WINDOW)
    # the windows the models declare, used for their cases where the report chose none
    declared = "".join(f"; the cases of model {e(model)} in its {e(ct_window_text(name))} (its model.json's "
                       "report.ct_window)" for model, name in (settings.get("model_ct_windows") or {}).items())
    items = "".join(f'<span style="border-color:{content.label_colours.get(v, "#888")}"></span>{e(name)}'
                    for v, name in content.label_order)
    distinct = len({content.label_colours.get(v) for v, _ in content.label_order})
    repeat = (f" Colours repeat: {distinct} colours for {len(content.label_order)} labels."
              if distinct < len(content.label_order) else "")
    return (f'<p class="legend small">{items} &nbsp;·&nbsp; solid line just inside a label: prediction; dashed '
            "line just outside: reference; shaded in the label's colour where they disagree (solid shade: predicted "
            f"only; striped: reference only).{repeat} Three slices through the worst label (the voxel nearest its "
            "centre; for a border flag, nearest the centre of its voxels on the faces it touches), each titled "
            "with the slice number in the file; radiological convention: coronal and axial panels show the patient's "
            "right on the image's left (seen from the front and from the feet), the sagittal one anterior on the "
            "left (facing left, as 3D Slicer, ITK-SNAP and OHIF show it), superior and anterior up, as the white "
            "letters at each edge say (read from the file's affine; "
            "for an oblique one, its nearest axes) — with voxels drawn to scale in mm (scale bar; one scale for the "
            "three panels, but where that would make one wider or higher than 512 pixels each panel has its own, "
            "as its bar says; a panel under 60 pixels on a side is stretched, as its title says). Grey scale: a CT "
            "in Hounsfield units (a CT by its record, the DICOM Modality or dcm2niix's JSON; else air or gas in the "
            "crop) in a "
            f"{e(ct_window_text(window))}{declared}; any other image from the 0.5th to the 99.5th "
            "percentile of its crop.</p>")


def _cases_section(content: ReportContent) -> str:
    cards = [_legend(content)] if content.overlays else []  # the legend explains overlays: none, no legend
    folded = sum(_folded(content, index) for index in content.order)
    if folded:
        cards.append(f'<p class="small">{folded} case{"s" if folded != 1 else ""} without a flag, an overlay or a '
                     "note take one line each (their Dice, as in the case table); open one for its labels and files."
                     "</p>")
    for rank, index in enumerate(content.order, start=1):
        cards.append(_case_card(content, rank, index))
    return "<h2>Cases</h2>" + "".join(cards)


def _case_card(content: ReportContent, rank: int, index: int) -> str:
    case = content.cases[index]
    flags = content.flags[index]
    threshold = content.summary["settings"]["dice_threshold"]
    css = "case failed" if case.status == "failed" else ("case flagged" if flags else "case")
    badges = _grouped_badges(flags) if content.compact else "".join(_badge(f) for f in flags)
    trained = " · training image" if case.in_training_set else ""
    head = (f'<h3>#{rank} {e(case.case_id)} <span class="muted small">{e(case.status.replace("_", " "))}{trained}'
            f"</span> {badges}</h3>")
    body = []
    if flags and content.compact:  # one line per flag code, its reasons joined (31 labels on a face: one line)
        body.append("<ul>" + "".join(
            f"<li><b>{e(code)}</b>{f' ({len(members)} labels)' if len(members) > 1 else ''}: "
            f"{e(_reasons(members))}</li>" for code, members in _by_code(flags).items())
            + "</ul>")
    elif flags:
        body.append("<ul>" + "".join(f"<li><b>{e(f.code)}</b>: {e(f.message)}</li>" for f in flags) + "</ul>")
    row = []  # the metrics table and the overlay side by side (they wrap on narrow windows)
    labels = case.labels()
    if labels and content.compact:
        flagged = {flag.value for flag in flags if flag.value is not None}
        bare = {label.value for label in labels if _bare_empty(label, flags)}
        look = [label for label in labels if label.value not in bare and (
                label.value in flagged or label.status in TO_LOOK_AT
                or (label.dice is not None and label.dice < threshold))]
        folded = (f"<details><summary>all {len(labels)} labels</summary>"
                  f"{_label_table(labels, threshold, f'All labels of {case.case_id}')}"
                  "</details>")
        note = _bare_note(labels, bare, case.labels_not_trained)
        if len(look) == len(labels):  # nothing to fold away
            row.append(f'<div><p class="small">labels to look at: all {len(labels)}</p>'
                       f"{_label_table(labels, threshold, f'Labels of {case.case_id}')}</div>")
        elif look:
            row.append(f'<div><p class="small">labels to look at ({len(look)}):</p>'
                       f"{_label_table(look, threshold, f'Labels to look at of {case.case_id}')}"
                       f"{note}{folded}</div>")
        elif bare:
            row.append(f"<div>{note}{folded}</div>")
        else:
            row.append(f'<div><p class="small">no label flagged or below Dice {threshold:g}</p>{folded}</div>')
    elif labels:
        row.append(_label_table(labels, threshold, f"Labels of {case.case_id}"))
    if index in content.overlays:
        drawn = content.overlay_shows.get(index, "slices with the predicted labels")
        why = f"; flagged: {', '.join(dict.fromkeys(flag.text for flag in flags))}" if flags else ""
        # on a phone the overlay keeps its own size and scrolls sideways: shrunk to the screen its labels and
        # contours could not be read
        image = _img(content.overlays[index], f"overlay of {case.case_id}: sagittal, coronal and axial {drawn}{why}",
                     ' class="overlay"')
        row.append(f'<div class="ov">{image}</div>')
    if row:
        body.append(f'<div class="row">{"".join(row)}</div>')
    for note in content.overlay_notes.get(index, []) + case.notes:
        body.append(f'<p class="small muted">{e(note)}</p>')
    paths = [("input", case.input_label()),
             ("prediction", None if case.segmentation_path() else case.failed_prediction),
             ("segmentation", case.segmentation_path()),
             ("reference", case.named_reference())]  # as cohort.tsv names it
    body.append('<p class="small">' + " · ".join(f"{name} <code>{e(path)}</code>" for name, path in paths if path)
                + "</p>")
    # back to the case's own row (the table's top, 200 rows up, lost one's place in a large cohort)
    body.append(f'<p class="small back"><a href="#row-{content.anchors[index]}">back to the case table</a></p>')
    if _folded(content, index):  # nothing to look at beyond the table's row: one line, opened on demand
        dice = "; ".join(f"{e(label.name)} {dice_text(label.dice, threshold)}" for label in labels
                         if label.dice is not None)
        shown = f" · Dice {dice}" if dice and len(labels) <= 4 else (
            f" · lowest Dice {dice_text(case.min_dice(), threshold)}" if dice else "")
        summary = (f"<b>#{rank} {e(case.case_id)}</b> <span class=\"muted small\">"
                   f"{e(case.status.replace('_', ' '))}{trained}{shown}</span>")
        return (f'<details class="case folded" id="{content.anchors[index]}"><summary>{summary}</summary>'
                f'{"".join(body)}</details>')
    return f'<div class="{css}" id="{content.anchors[index]}">{head}{"".join(body)}</div>'


def _bare_note(labels, bare: set[str], untrained: set[str]) -> str:
    """The note under a compact card's table of the labels predicted empty with no reference (``bare``), whose rows
    are folded away: those flagged for it are named in the flags above; those no training case held (``untrained``,
    never learnt) are flagged for nothing, so they are named here."""
    if not bare:
        return ""
    flagged = [label for label in labels if label.value in bare and label.value not in untrained]
    never = [label for label in labels if label.value in bare and label.value in untrained]
    parts = []
    if flagged:
        parts.append(f'{len(flagged)} label{"s" if len(flagged) != 1 else ""} predicted empty with no reference to '
                     "compare: named in the flags above")
    if never:
        names = ", ".join(label.name for label in never[:8]) + (", …" if len(never) > 8 else "")
        parts.append(f'{len(never)} label{"s" if len(never) != 1 else ""} that no training case held (never learnt), '
                     f"predicted empty as expected: {names}")
    return f'<p class="small">{e("; ".join(parts))}, their rows only in the folded table</p>'


def _bare_empty(label, flags: list[Flag]) -> bool:
    """A label predicted empty with no reference, flagged for nothing else: its row in a card's table is all dashes
    (a partial field of view leaves most of a 100-organ model's labels so; their flag line names them)."""
    return (label.status in ("no_reference", "not_scored") and label.pred_volume_ml == 0
            and all(flag.code == "empty_prediction" for flag in flags if flag.value == label.value))


def _folded(content: ReportContent, index: int) -> bool:
    """A card with nothing beyond its table row to look at (not failed, no flag, no overlay, no note) is one line."""
    case = content.cases[index]
    return (case.status != "failed" and not content.flags[index] and index not in content.overlays
            and not case.notes)


def _label_table(labels: list[LabelResult], threshold: float, caption: str) -> str:
    rows = "".join(
        f'<tr><th class="rh" scope="row">{e(label.value)} {_print_breakable(label.name)}</th>'
        f"{_dice(label.dice, threshold)}"
        f"{_num(label.hd95_mm, 2)}"
        f"{_num(label.assd_mm, 2)}{_num(label.pred_volume_ml, 3)}{_num(label.ref_volume_ml, 3)}"
        f"{_num(label.false_positive_ml, 3)}{_num(label.false_negative_ml, 3)}"
        f"<td>{e(status_text(label.status))}</td></tr>"
        for label in labels
    )
    return ('<div class="wide"><table>' + _caption(caption) + "<thead><tr>"
            # short, as they were: a head of two lines makes every card taller, and a printed report longer
            + _column_heads("label", "Dice", "HD95 (mm)", "ASSD (mm)", "pred (ml)", "ref (ml)", "FP (ml)", "FN (ml)",
                            "status")
            + "</tr></thead>" + rows + "</table></div>")
