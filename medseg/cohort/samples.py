"""Sample sheets: a TSV that lists a cohort's cases.

Columns (a header line is required, in any order; other columns are allowed and ignored, except one that looks
like a misspelt or miscapitalised column of these, which is refused; a name that holds one of these and more,
``series_id`` or ``reference_old``, is a column of its own; without a ``reference`` column, one named as other tools
name it (``label``, ``mask``, ``ref``, ``gt``, ``ground_truth``, ``seg``, …) whose cells name files is refused
too):

* ``case_id`` — names the case's outputs; ASCII letters, digits, ``.``, ``_`` and ``-``, starting with a letter or a
  digit; unique in the sheet, also ignoring letter case (case folders must not collide on macOS or Windows); no
  Windows device name (``NUL``, ``con.1``) and no final dot, which Windows cannot hold as folder names;
* ``image`` — a NIfTI file or a DICOM series folder;
* ``reference`` — optional: a label image on the image's grid (or a DICOM SEG of the image's series) to score the
  segmentation against (empty cell: no reference);
* ``series`` — optional: which DICOM series of the folder to use (UID or number).

Relative paths are relative to the folder that holds the sheet (so a sheet moves with its data); ``~`` is
expanded; absolute paths are used as they are. Backslashes separate folders where no file is named with them (a
sheet written on Windows); accented letters are matched composed or decomposed, as the disk holds them; a Windows
drive path is read where WSL mounts its drive (``C:\\scans`` as ``/mnt/c/scans``), under WSL, where that is there;
otherwise a Windows drive or network path is refused. Blank lines and lines starting with ``#`` are skipped.
A missing image is not an error here: the case ends as a recorded failure when it is run; but a cell written without
its file's extension (``case01`` where ``case01.nii.gz`` is) is refused with its line and the file(s) it may mean.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import difflib
import os
import platform
import re
import sys
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath

from medseg.errors import InputError
from medseg.io.files import absent_content, absolute_path, apple_double, os_reason, undecodable

__all__ = ["CASE_ID_PATTERN", "COLUMNS", "Sample", "batches", "read_sample_rows", "read_samples", "samples_from_rows",
           "some_names"]

CASE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
COLUMNS = ("case_id", "image", "reference", "series")
REQUIRED = ("case_id", "image")
# what other tools call the reference column (header names folded as _folded does)
REFERENCE_NAMES = frozenset({"label", "labels", "mask", "masks", "ref", "refs", "gt", "ground_truth", "groundtruth",
                             "seg"})


@dataclass(frozen=True)
class Sample:
    """One row of a sample sheet, with its paths made absolute."""

    case_id: str
    image: Path
    reference: Path | None = None
    series: str | None = None
    line: int = 0  # line of the sheet it came from, for messages


def read_sample_rows(path: Path | str) -> list[dict[str, str]]:
    """The sheet's rows as dicts of non-empty cells (strings, stripped), checked for shape only."""
    path = Path(path)
    absent = absent_content(path, "a sample sheet")  # its header was "lacks the column(s) …; found version https…"
    if absent is not None:
        raise InputError(f"{path}: {absent}")
    try:
        data = path.read_bytes()
    except FileNotFoundError as error:
        where = ""
        if not path.is_absolute():  # a --configfile's samples: is not taken from the config file's folder
            with contextlib.suppress(OSError):  # a working folder since removed
                where = f" (a relative path, taken from the folder {Path.cwd()})"
        raise InputError(f"{path}: no such sample sheet{where}") from error
    except OSError as error:
        from medseg.cohort.records import cannot_look_at

        # behind a folder this user may not search: said as for the images there, not as the file's own permission
        reason = cannot_look_at(path) if isinstance(error, PermissionError) else None
        raise InputError(f"{path}: cannot read the sample sheet ({reason or os_reason(error)})") from error
    # UTF-8 (a byte order mark allowed), or UTF-16 with its byte order mark: a spreadsheet's "Unicode text" export,
    # tab-separated as the sheet is
    encoding = "utf-16" if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) else "utf-8-sig"
    if encoding != "utf-16" and b"\x00" in data[:4096]:  # UTF-16 without its mark: every other byte is NUL
        raise InputError(f"{path}: the sample sheet holds NUL bytes, as UTF-16 text without a byte order mark does; "
                         "save it as UTF-8 text")
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as error:
        what = "UTF-16" if encoding == "utf-16" else "UTF-8"
        bom = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
        raise InputError(f"{path}: the sample sheet is not {what} text ({undecodable(error, bom)}); save it as UTF-8 "
                         "text") from error
    lines = [(number, line) for number, line in enumerate(text.splitlines(), start=1)
             if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise InputError(f"{path}: the sample sheet is empty (expected a header line: case_id, image, reference)")
    header_number, header_line = lines[0]
    header = [cell.strip() for cell in next(csv.reader([header_line], delimiter="\t"))]
    while len(header) > 1 and not header[-1]:
        header.pop()  # trailing tabs, as on the rows
    if "" in header:
        raise InputError(f"{path}:{header_number}: column {header.index('') + 1} of the header has no name")
    missing = [column for column in REQUIRED if column not in header]
    if missing:
        hint = " (is it tab-separated?)" if len(header) == 1 else ""
        for number, line in enumerate(text.splitlines()[:header_number - 1], start=1):
            cells = [cell.strip() for cell in line.lstrip().lstrip("#").split("\t")]
            if line.lstrip().startswith("#") and all(column in cells for column in REQUIRED):
                # a header written as a comment (#case_id, as some tools write it) is skipped as one
                hint = f" (line {number} is the header, read as a comment: remove its '#')"
                break
        raise InputError(f"{path}:{header_number}: header lacks the column{'s' if len(missing) > 1 else ''} "
                         f"{', '.join(missing)}{hint}; "
                         f"found {', '.join(header)}")
    duplicated = sorted({c for c in header if header.count(c) > 1})
    if duplicated:
        columns = (f"columns {', '.join(duplicated)} appear" if len(duplicated) > 1
                   else f"column {duplicated[0]} appears")
        raise InputError(f"{path}:{header_number}: {columns} twice in the header")
    misnamed = _misnamed_column(header)
    if misnamed:
        raise InputError(f"{path}:{header_number}: column {misnamed[0]!r} of the header is not one medseg reads; "
                         f"did you mean {misnamed[1]!r}? (its cells would be ignored: rename the column)")
    rows = []
    for number, line in lines[1:]:
        cells = next(csv.reader([line], delimiter="\t"))
        while len(cells) > len(header) and not cells[-1].strip():
            cells.pop()  # trailing tabs (a spreadsheet's export): empty cells beyond the header say nothing
        if len(cells) > len(header):
            raise InputError(f"{path}:{number}: {len(cells)} cells but the header has {len(header)} columns")
        if len(header) > 1 and len(cells) == 1 and len(cells[0].split()) > 1:
            # an editor that turned the tabs into spaces: read as a case_id and an empty image cell
            raise InputError(f"{path}:{number}: the line has no tab between its cells (is it tab-separated?); the "
                             f"header has {len(header)} columns")
        row = {column: cell.strip() for column, cell in zip(header, cells) if cell.strip()}
        row["_line"] = str(number)
        rows.append(row)
    if not rows:
        raise InputError(f"{path}: the sample sheet has a header but no cases")
    named = _reference_named_otherwise(header, rows, path.parent)
    if named:
        raise InputError(f"{path}:{header_number}: column {named!r} of the header is not one medseg reads, and its "
                         "cells name files: if they are the cases' reference labels, name the column 'reference' (as "
                         "named, they would be ignored and every case run unscored); if they are other files (brain "
                         "masks, say), give the column a name of its own (brain_mask)")
    return rows


def _misnamed_column(header: list[str]) -> tuple[str, str] | None:
    """A header column that is a known column absent from the header, misspelt or in other letter case
    (``Reference``, ``refernce``, ``Series``), and that column; None if there is none. Other columns are ignored,
    so a misspelt optional one would drop its cells without a word: every case run without its reference."""
    absent = [column for column in COLUMNS if column not in header]
    for name in header:
        if name in COLUMNS:
            continue
        folded = _folded(name)
        # a known column's name and more (reference_old, reference2, series_id, seriesuid) names a column of its own
        others = [column for column in absent if not _names_more_than(folded, column)]
        match = difflib.get_close_matches(folded, others, n=1, cutoff=0.8)
        if match:
            return name, match[0]
    return None


def _folded(name: str) -> str:
    """A header name in lower case, its runs of spaces, underscores and hyphens one underscore (``Ground Truth``:
    ``ground_truth``)."""
    return re.sub(r"[\s_-]+", "_", name.lower()).strip("_")


# the image files' endings medseg.volume.stem knows, which a cell of a reference column named otherwise ends with
_IMAGE_FILE_ENDINGS = (".nii", ".nii.gz", ".nii.bz2", ".nii.zst", ".nrrd", ".nhdr", ".mha", ".mhd", ".dcm", ".hdr",
                       ".hdr.gz", ".img", ".img.gz", ".mgz", ".mgh")


def _reference_named_otherwise(header: list[str], rows: list[dict[str, str]], base: Path) -> str | None:
    """A header column named as other tools name the reference (``label``, ``mask``, ``gt``, ``ground_truth``,
    ``seg``: :data:`REFERENCE_NAMES`) whose cells name files, in a sheet without a ``reference`` column; None if there
    is none. Read as another column, its cells were ignored: every case ran unscored, without a word. A column of
    that name whose cells name no file (a diagnosis ``label``: ``AD``, ``CN``, ``AD/MCI``, ``n/a``) is another column,
    as is a name that holds one and more (``label_notes``). ``base``: the sheet's folder."""
    if "reference" in header:
        return None
    for name in header:
        if _folded(name) in REFERENCE_NAMES and any(_names_a_file(row.get(name, ""), base) for row in rows):
            return name
    return None


def _names_a_file(cell: str, base: Path) -> bool:
    """Whether a sheet cell reads as a path: an image file's extension (:data:`_IMAGE_FILE_ENDINGS`: FreeSurfer's
    ``aseg.mgz`` or an Analyze ``.hdr`` too), an absolute path (``/``, ``~``, a
    drive), one starting ``./`` or ``../``, or, for other text with a ``/`` or ``\\`` in it, a name that is there
    relative to ``base``: a diagnosis written ``AD/MCI``, or a missing value ``n/a``, is no file."""
    if cell.lower().endswith(_IMAGE_FILE_ENDINGS):
        return True
    if "/" not in cell and "\\" not in cell:
        return False
    if re.match(r"(?:[/\\~]|[A-Za-z]:[\\/]|\.{1,2}[\\/])", cell):
        return True
    return os.path.lexists(base / cell.replace("\\", "/"))


def _names_more_than(folded: str, column: str) -> bool:
    """Whether ``folded`` (a header name in lower case) holds ``column`` and more than one letter besides it
    (``reference_old``, ``series_uid``, ``reference2``; not ``references``)."""
    if column not in folded:
        return False
    rest = folded.replace(column, "", 1).strip("_")
    return bool(rest) and not (len(rest) == 1 and rest.isalpha())


def _resolve(value: str, base: Path) -> Path:
    """Lexically normalised (a/../b -> b), symbolic links kept as written; except where ``..`` follows a link to a
    folder elsewhere (``scans/../labels/a.nii.gz`` with ``scans`` a link): the shell and ``medseg infer`` open the
    file beside the link's target, and so does the cohort (the lexical name scored another site's reference)."""
    return absolute_path(base / Path(value).expanduser())


_WINDOWS_ABSOLUTE = re.compile(r"^(?:[A-Za-z]:[\\/]|\\\\)")  # C:\..., C:/..., \\server\share


def _sheet_path(value: str, base: Path, at: str, column: str) -> Path:
    """A path cell, found as :func:`_located` finds it. A cell without a file's extension (``case01``) that is not
    there, where a file of that name with an image file's extension is (``case01.nii.gz``), is an
    :class:`InputError` naming the line, the cell and that file: not taken for it in silence, nor left to fail as
    "no such file or folder" when its case runs."""
    path = _located(value, base, at, column)
    if not value.lower().endswith(_IMAGE_FILE_ENDINGS) and not value.endswith(("/", "\\")):
        _refuse_without_ending(value, path, at, column)
    return path


def _refuse_without_ending(value: str, path: Path, at: str, column: str) -> None:
    """Refuse the cell ``value`` (found as ``path``), written without its file's extension; a cell that is there (a
    DICOM folder) or that has no such file beside it passes (looked up once per cell without an extension)."""
    if os.path.lexists(path):
        return
    try:
        names = os.listdir(path.parent)
    except OSError:  # no folder to look in: the case ends as a recorded failure when it is run
        return
    prefix = path.name + "."
    endings = sorted(name[len(path.name):] for name in names
                     if name.startswith(prefix) and name[len(path.name):].lower() in _IMAGE_FILE_ENDINGS)
    if endings:
        named = [value + ending for ending in endings]
        there = f"{named[0]} is" if len(named) == 1 else f"{' and '.join(named)} are"
        raise InputError(f"{at}: the {column} {value} is not there, but {there}: did you mean {' or '.join(named)}? "
                         "Give the file's whole name, with its extension")


def _located(value: str, base: Path, at: str, column: str) -> Path:
    """A path cell, resolved by :func:`_resolve`. A sheet written on Windows separates folders with backslashes
    (``data\\case01.nii.gz``): where no file is named so, with its backslashes, the path is read with them as
    ``/``. A name whose accented letters are composed otherwise than on disk (``é`` as one character or as ``e`` and
    its accent: macOS writes file names so) is found in the form the disk holds. A Windows drive or network path
    (``C:\\scans\\a.nii.gz``) that is not there is no path on this machine: an :class:`InputError` naming the line,
    at once (as a missing file it failed only when its case ran). A name this system cannot encode as a file name
    (``é`` where the file system encoding is ASCII: a C locale with Python's UTF-8 mode turned off) is refused."""
    if not value.isascii():
        try:
            os.fsencode(value)
        except UnicodeEncodeError as error:  # it ended the cohort in a traceback at the first look at the file
            raise InputError(f"{at}: the {column} {value} holds {value[error.start]!r}, which file names cannot hold "
                             f"in this system's encoding ({sys.getfilesystemencoding()}); run medseg in a UTF-8 "
                             "locale (LC_ALL=C.UTF-8) or with PYTHONUTF8=1") from error
    path = _resolve(value, base)
    if value.isascii() and (os.sep == "\\" or not ("\\" in value or _WINDOWS_ABSOLUTE.match(value))):
        return path  # (a plain path is not looked up: planning a cohort stats each of its images once)
    if os.path.lexists(path):
        return path
    if os.sep != "\\" and _WINDOWS_ABSOLUTE.match(value):
        mounted = _wsl_mounted(value)
        if mounted is not None and os.path.lexists(mounted):
            return _resolve(str(mounted), base)  # C:\\scans\\..\\x.nii.gz as /mnt/c/x.nii.gz
        where = f", and {mounted}, where WSL mounts that drive, is not there either" if mounted else ""
        raise InputError(f"{at}: the {column} {value} is a Windows path{where}; give its path on this machine "
                         "(relative to the sheet's folder, or absolute)")
    text = value.replace("\\", "/") if os.sep != "\\" else value
    for form in ("NFC", "NFD"):  # é typed as one character, or as e and its accent (macOS file names)
        other = unicodedata.normalize(form, text)
        if other != text and os.path.lexists(_resolve(other, base)):
            return _resolve(other, base)
    return _resolve(text, base)


WSL_DRIVES = Path("/mnt")  # where WSL mounts the Windows drives (its automount root's default)
_DRIVE_PATH = re.compile(r"^([A-Za-z]):[\\/]+(.*)$", re.DOTALL)


def _on_wsl() -> bool:
    """Whether this is Linux under Windows (WSL 1 or 2: their kernels' release names say "microsoft")."""
    return "microsoft" in platform.uname().release.lower()


def _wsl_mounted(value: str) -> Path | None:
    """Where WSL mounts the Windows drive path ``value`` (``C:\\scans\\a.nii.gz``: ``/mnt/c/scans/a.nii.gz``); None
    for a network path, or off WSL."""
    drive = _DRIVE_PATH.match(value)
    if drive is None or not _on_wsl():
        return None
    return WSL_DRIVES / drive[1].lower() / drive[2].replace("\\", "/")


_WINDOWS_DEVICES = re.compile(r"(?i)^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])$")


def _windows_unsafe(case_id: str) -> str | None:
    """Why Windows cannot hold a folder named ``case_id`` (a device name, ``NUL`` or ``con.1`` alike: the part before
    the first dot counts; a name ending in a dot, which Windows drops), or None."""
    if _WINDOWS_DEVICES.match(case_id.split(".", 1)[0]):
        return "is a Windows device name"
    if case_id.endswith("."):
        return "ends in a dot, which Windows drops from a name"
    return None


def samples_from_rows(rows: list[dict[str, str]], base: Path | str, where: str = "sample sheet") -> list[Sample]:
    """Check the rows' values and make :class:`Sample` records; relative paths are taken from ``base``."""
    base = Path(os.path.abspath(base))
    samples: list[Sample] = []
    seen: dict[str, int] = {}
    for row in rows:
        line = int(row.get("_line", 0))
        at = f"{where}:{line}" if line else where
        for column in REQUIRED:
            if not row.get(column):
                raise InputError(f"{at}: the {column} cell is empty")
        for column in ("image", "reference"):  # a sheet made with find or Path.glob lists macOS's ._ files too
            cell = row.get(column) or ""
            if PurePath(cell.replace("\\", "/")).name.startswith("._"):
                note = apple_double(_sheet_path(cell, base, at, column))
                if note is not None:
                    raise InputError(f"{at}: {column} {cell}: {note}; take its row out of the sheet (find … ! -name "
                                     "'._*' lists no such files)")
        case_id = row["case_id"]
        if not re.match(CASE_ID_PATTERN, case_id):
            raise InputError(f"{at}: case_id {case_id!r} must be 1-128 ASCII letters (A-Z, a-z), digits, '.', '_' "
                             f"or '-', starting with a letter or digit")
        unsafe = _windows_unsafe(case_id)
        if unsafe:
            raise InputError(f"{at}: case_id {case_id!r} {unsafe}: results named after it cannot be copied to a "
                             "Windows share or disk; rename the case")
        key = case_id.lower()
        if key in seen:
            raise InputError(f"{at}: case_id {case_id!r} repeats line {seen[key]} (case_ids must be unique, "
                             f"ignoring letter case)")
        seen[key] = line
        reference = row.get("reference")
        image = _sheet_path(row["image"], base, at, "image")
        if row.get("series") and image.is_file():
            raise InputError(f"{at}: a series ({row['series']}) is given for {image}, a file; the series column is "
                             "for DICOM folders only")
        samples.append(Sample(
            case_id=case_id,
            image=image,
            reference=_sheet_path(reference, base, at, "reference") if reference else None,
            series=row.get("series") or None,
            line=line,
        ))
    return samples


def read_samples(path: Path | str) -> list[Sample]:
    """Read and check a sample sheet; paths in it are relative to its folder."""
    path = Path(path)
    return samples_from_rows(read_sample_rows(path), path.parent, where=str(path))


def batches(samples: list[Sample], cases_per_job: int,
            earlier: dict[str, list[str]] | None = None) -> dict[str, list[Sample]]:
    """Split ``samples`` (in sheet order) into jobs of ``cases_per_job`` cases.

    A job of one case is named after the case; larger jobs are named ``batch001``, ``batch002``, ... ``earlier``:
    the jobs an earlier run on the same results folder planned with this ``cases_per_job`` (name → case ids,
    :func:`~medseg.cohort.run.read_batch_plan`). They keep their names and those of their cases still in the sheet,
    and the other cases fill new jobs numbered after every earlier one: cut by position alone, a row taken out of the
    sheet or added moved every later case into another job, and a workflow ran all those jobs again only to find
    their cases done.
    """
    if cases_per_job < 1:
        raise InputError(f"cases_per_job must be at least 1, got {cases_per_job}")
    if cases_per_job == 1:
        return {sample.case_id: [sample] for sample in samples}
    by_id = {sample.case_id: sample for sample in samples}
    kept: dict[str, list[Sample]] = {}
    for name, case_ids in sorted((earlier or {}).items(), key=lambda item: _batch_number(item[0]) or 0):
        if _batch_number(name) is None or len(case_ids) > cases_per_job:  # another cases_per_job made it
            continue
        cases = [by_id.pop(case_id) for case_id in case_ids if case_id in by_id]  # the earlier job's order
        if cases:
            kept[name] = cases
    rest = [sample for sample in samples if sample.case_id in by_id]
    chunks = [rest[i:i + cases_per_job] for i in range(0, len(rest), cases_per_job)]
    # after every earlier job, kept or not: a new job of an earlier one's name would take that job's record
    first = max((_batch_number(name) or 0 for name in (earlier or {})), default=0) + 1
    width = max(3, len(str(first + len(chunks) - 1)), *(len(name) - len("batch") for name in kept))
    jobs = kept | {f"batch{number:0{width}d}": chunk for number, chunk in enumerate(chunks, start=first)}
    return dict(sorted(jobs.items(), key=lambda item: _batch_number(item[0])))


def _batch_number(name: str) -> int | None:
    """The number of a job named ``batch<digits>``; None for another name (a one-case job's)."""
    match = re.fullmatch(r"batch(\d+)", name)
    return int(match.group(1)) if match else None


def some_names(names: Sequence[str], limit: int = 10) -> str:
    """``a, b, c``; past ``limit`` names, the first ones and how many more: ``a, b, … and 190 more (200)``."""
    if len(names) <= limit:
        return ", ".join(names)
    return f"{', '.join(names[:limit])}, … and {len(names) - limit} more ({len(names)})"
