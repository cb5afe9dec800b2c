"""`medseg inspect`: the DICOM series in a folder, and which one would be used."""

from __future__ import annotations

import json
import re
from pathlib import Path

import click

from medseg.cli.options import GivenPath, escaped_line, output_columns
from medseg.one_line import padded, terminal_columns, wrapped

__all__ = ["inspect"]

COLUMNS = ("key", "number", "description", "modality", "patient_position", "images", "shape", "spacing_mm",
           "orientation", "flags", "uid", "status", "folder")


_HELP = """List the DICOM series under FOLDER (searched recursively) and which one would be used, and why.

Nothing is decoded: shapes, spacings and flags come from the headers. Flags: localizer, tilt, gaps,
uneven, 4D, non-HU (intensities are not Hounsfield units), per-slice-rescale (slices scaled by slopes of
their own), per-slice-bits (files stating different BitsStored), monochrome1 (read as stored, not inverted),
no-series-uid (an anonymised series, told apart by its key), lost-files (InstanceNumbers missing at its ends: files
lost, or numbering across a study whose other series are not here, which the numbers cannot tell apart; --json says
which), split:<why> (a series split because it mixes orientations, image types, echoes or
sizes; choose a part as NUMBER-PART).

The listing is a table, one row a series, where it fits the terminal's width (or COLUMNS); where it does not, each
series is a block of one field a line. Piped or redirected with COLUMNS unset, it stays a table. --json gives every
field, and more.

\b
$ medseg inspect study/
$ medseg inspect study/ --json > series.json
"""


@click.command("inspect", help=_HELP)
# not readable=True: checked by the reader, one line, exit 1 (click's own check is a usage error, exit 2)
@click.argument("folder", type=GivenPath(readable=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--series", default=None, metavar="KEY|NUMBER|UID",
              help="Check that this series would be usable, and say why not (exit 1 if it names none that is); a "
                   "key of the listing, a SeriesNumber or a SeriesInstanceUID (#1: quoted in a shell, '#1'; "
                   "default: none; the listing says which would be used).")
def inspect(folder, as_json, series):
    from medseg.io.dicom import describe_folder

    report = describe_folder(folder, series=series)
    # the listing is the answer; only a --series that names no usable series is a failure (exit 1)
    # (or a broken file, which infer would refuse the folder for, or no image at all, or no series that is not
    # refused for a problem of its own: a file cut short; several usable series, none chosen, are a choice to make)
    unusable = all(entry.get("problem") for entry in report["series"])
    failed = 1 if (series is not None or report["unreadable_files"] or unusable) \
        and report["chosen"]["key"] is None else 0
    if as_json:
        click.echo(json.dumps(report, indent=2))
        _tell_failure(folder, report, failed)
        return failed
    # header values (a SeriesDescription) and folder names are written with their control characters escaped: an
    # escape sequence in them drove the terminal (ESC ] 0; sets its title)
    # a folder of several studies (a worklist's export): each series' study, as the line asking to choose names them
    several = len({entry["study"] for entry in report["series"] if entry["study"]}) > 1
    columns = COLUMNS if not several else COLUMNS[:COLUMNS.index("uid")] + ("study",) + COLUMNS[COLUMNS.index("uid"):]
    rows = [[escaped_line(str(_cell(entry, column))) for column in columns] for entry in report["series"]]
    header = [column.upper().replace("_MM", " (mm)").replace("PATIENT_POSITION", "POSITION") for column in columns]
    # padded by the columns a terminal gives each cell, not its characters: a description in Japanese (two columns
    # a character) or with a combining accent (none) put every later column of its row out of line
    widths = [max(terminal_columns(v) for v in [h] + [r[i] for r in rows]) for i, h in enumerate(header)]
    # a table of 13 columns, a UID among them, is 200 to 330 columns wide: in a terminal narrower than that each row
    # wrapped onto the next and no column stood under its header; there, one field a line
    width = output_columns()
    if width is None or sum(widths) + 2 * (len(widths) - 1) <= width:
        click.echo("  ".join(padded(h, w) for h, w in zip(header, widths)).rstrip())
        for row in rows:
            click.echo("  ".join(padded(v, w) for v, w in zip(row, widths)).rstrip())
    else:
        labels = [h.lower() for h in header]
        indent = 2 + max(terminal_columns(label) for label in labels[1:]) + 2
        for number, row in enumerate(rows):
            if number:
                click.echo("")
            click.echo(_fitted(f"series {row[0]}", width))
            for label, value in zip(labels[1:], row[1:]):
                line = padded(f"  {label}", indent) + value
                if label == "uid" and terminal_columns(line) > width:
                    # broken where the width fell, a copied UID lost its digits to the line break: whole on the
                    # next line, as in the closing lines (indented where that fits)
                    click.echo(f"  {label}")
                    click.echo(f"  {value}" if 2 + terminal_columns(value) <= width else value)
                    continue
                click.echo(_fitted(line, width, indent))
    for kind in ("skipped_files", "ignored_objects", "unreadable_files"):
        if report[kind]:
            names = ", ".join(f"{item['path']} ({item['reason']})" for item in report[kind][:10])
            more = f" and {len(report[kind]) - 10} more" if len(report[kind]) > 10 else ""
            click.echo(_closing(escaped_line(f"{kind.replace('_', ' ')}: {names}{more}"), width))
    chosen = report["chosen"]
    if chosen["key"] is not None:
        click.echo(_closing(escaped_line(f"would use: series {chosen['key']} ({chosen['reason']})"), width))
    elif failed:  # its reason is the error line on stderr: told once (on both, a terminal showed the long line twice)
        click.echo("would use: none")
    else:  # none chosen, and no failure (several usable series: a choice to make): the reason is the answer
        click.echo(_closing(escaped_line(f"would use: none: {chosen['reason']}"), width))
    _tell_failure(folder, report, failed)
    return failed


def _fitted(line: str, width: int | None, indent: int = 2) -> str:
    """``line`` wrapped to ``width`` terminal columns (:func:`~medseg.one_line.wrapped`), its further lines indented
    by ``indent`` (a UID or path longer than a line is broken); unchanged where ``width`` is None (piped: one line an
    item, for grep)."""
    if width is None or terminal_columns(line) <= width:
        return line
    return "\n".join(wrapped(line, width, indent))


# a DICOM UID as the closing lines give it (``UID 1.2.826.0.1...``): digits and dots, a word of its own (not the
# tail of a file name such as ``CT.1.3.12...``, nor a folder of a path, as a PACS export names them by UID)
_UID = re.compile(r"(?<![\w./\\])[0-9]+(?:\.[0-9]+){3,}(?![\w./\\])")
# the punctuation that closes on a UID (``UID 1.2.826...)``, ``1.2.826...,``) stays on its line: alone on the next, a
# ``)`` started a line of its own
_CLOSING_MARKS = re.compile(r"[)\]},;:]+")


def _closing(line: str, width: int | None, indent: int = 2) -> str:
    """A closing line (the files passed over, the series that would be used) :func:`_fitted` to ``width``, each UID in
    it whole on a line of its own with the punctuation that closes on it (indented where that fits, else from the
    first column, over the width where it is longer): broken where the width fell, a copied UID lost its digits to the
    line break. Unchanged where it fits or ``width`` is None."""
    if width is None or terminal_columns(line) <= width or not _UID.search(line):
        return _fitted(line, width, indent)
    lines: list[str] = []
    start = 0
    for found in [*_UID.finditer(line), None]:
        text = line[start:found.start() if found is not None else len(line)]
        if text.strip():
            head = text.rstrip() if not lines else " " * indent + text.strip()
            lines.extend(wrapped(head, width, indent))
        if found is None:
            break
        marks = _CLOSING_MARKS.match(line, found.end())
        end = marks.end() if marks else found.end()
        uid = line[found.start():end]
        lines.append(" " * indent + uid if indent + terminal_columns(uid) <= width else uid)
        start = end
    return "\n".join(lines)


def _tell_failure(folder, report: dict, failed: int) -> None:
    """Exit 1 with its reason on stderr, in the one-line form of every other error (a script that keeps only stderr
    saw a bare exit 1), and there alone: the listing on stdout closes with ``would use: none``."""
    if failed:
        from medseg.cli.options import error_line

        reason = str(report["chosen"]["reason"])
        click.echo(error_line(reason if reason.startswith(str(folder)) else f"{folder}: {reason}"), err=True)


def _cell(entry: dict, column: str) -> str:
    value = entry[column] if column != "status" else ("eligible" if entry["eligible"] else entry["problem"] or
                                                       "not chosen automatically")
    if column == "shape" and value:
        return "x".join(str(v) for v in value)
    if column == "spacing_mm" and value:
        return "x".join(f"{v:.4g}" for v in value)
    if column == "flags":
        flags = [f"tilt({entry['tilt_deg']:.2f}deg)" if flag == "tilt" else flag for flag in value]
        return ",".join(flags + (["lost-files"] if entry.get("missing_instances") else [])) or "-"
    if value is None or value == "":
        return "-"
    return str(value)
