"""Finding the DICOM series in a folder, splitting mixed ones, and choosing one — never silently.

A folder is scanned recursively; every file is read up to (not into) its pixel data. Files that are not
DICOM are skipped and listed; a file that starts like DICOM but cannot be parsed is an error, because it
may be a slice of the wanted series. Images are grouped by SeriesInstanceUID and a group is split when it
mixes orientations, image types, echoes or image sizes. Localizers (ImageType LOCALIZER, or a scout /
localizer / survey description) and non-image objects (SEG, RTSTRUCT, SR, ...) are never chosen on their own.

Its parts are modules of their own: :mod:`medseg.io.dicom_header` (one file's header read; a file cut short or not
DICOM), :mod:`medseg.io.dicom_frames` (the 2D images of a file, with their geometry and rescale values),
:mod:`medseg.io.dicom_candidates` (the images grouped into series candidates, split, and judged) and
:mod:`medseg.io.dicomdir_missing` (the files a DICOMDIR references that are not here). The public names this module
listed before they moved there are still importable from here (``__all__``).
"""

from __future__ import annotations

import logging
import os
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pydicom

from medseg.caller_warnings import warning
from medseg.errors import DicomError, ImageReadError
from medseg.io.dicom_candidates import SeriesCandidate, _group, series_name
from medseg.io.dicom_frames import DicomFrame
from medseg.io.dicom_header import _read_header, not_dicom_text, transfer_syntax
from medseg.io.dicom_messages import FileMessages
from medseg.io.dicom_text import read_undeclared_text, undeclared_text_note
from medseg.io.dicomdir import (
    DicomdirIndex,
    dicomdir_file_text,
    index_key,
    none_present_text,
    read_dicomdir,
)
from medseg.io.dicomdir_missing import judge_missing
from medseg.io.files import exists, files_under, is_dicom_file
from medseg.numbers import counted
from medseg.settings_named import ANY, has_option, named_elsewhere, setting
from medseg.volume import slicer_segmentation_ending

__all__ = ["DicomFrame", "SeriesCandidate", "FolderScan", "scan_folder", "held_scan", "release_scan", "held_series",
           "choose_series",
           "series_match",
           "transfer_syntax", "NON_IMAGE_MODALITIES", "series_text", "positional_key_note", "not_dicom_text",
           "study_names", "study_value", "BROKEN_ADVICE"]

log = logging.getLogger(__name__)

# what to do about a DICOM file cut short or corrupt in a folder (medseg inspect lists it, and says infer and convert
# refuse the folder): its series cannot be told, so the folder is not read while it holds it
BROKEN_ADVICE = ("the folder is refused while it holds this file (a slice of any of its series): copy it again from "
                 "its source, or move it out of the folder to read the others")

NON_IMAGE_MODALITIES = {"SEG", "RTSTRUCT", "RTPLAN", "RTRECORD", "RTDOSE", "SR", "PR", "KO", "REG", "DOC", "FID",
                        "PLAN", "RWV", "AU", "ECG", "HD"}


@dataclass
class FolderScan:
    """Everything found under a folder."""

    folder: Path
    candidates: list[SeriesCandidate]
    skipped: list[tuple[Path, str]]  # files that are not DICOM images, and why
    non_image: list[tuple[Path, str]]  # DICOM objects that are not images (SEG, SR, ...)
    broken: list[tuple[Path, str]] = field(default_factory=list)  # DICOM files cut short or corrupt (keep_broken)
    dicomdirs: list[DicomdirIndex] = field(default_factory=list)  # the media indexes found (a CD or USB export's)

    def none_present(self) -> str | None:
        """The message for a folder holding a DICOMDIR whose referenced files are none of them here (its index
        copied without the images), else None."""
        gone = next((index for index in self.dicomdirs if index.none_present), None)
        return None if gone is None else none_present_text(self.folder, gone)


def scan_folder(folder: Path | str, warn_skipped: bool = True, keep_broken: bool = False) -> FolderScan:
    """Read every file's header under ``folder`` and group the images into series candidates. Files that are not
    DICOM are logged as a warning unless ``warn_skipped`` is false (a caller that lists them itself). A broken DICOM
    file (its header cut short) is an error, as it may be a slice of any series; with ``keep_broken`` (a listing)
    it is recorded in ``broken`` instead, and a folder without images gives no candidates instead of an error."""
    folder = Path(folder)
    exists(folder)  # a path behind a folder this user may not search: named (Path.is_dir raised PermissionError)
    if not folder.is_dir():
        what = "no such folder" if not folder.exists() else "a file, not a folder of DICOM files"
        if folder.exists() and is_dicom_file(folder):  # a slice given for its series
            not_dicom = not_dicom_text(folder)
            if not_dicom is not None:  # a .dcm name is no proof: it was called "a DICOM file"
                raise ImageReadError(not_dicom)
            index = dicomdir_file_text(folder)
            if index is not None:
                raise ImageReadError(index)
            modality = str(_read_header(folder).get("Modality", "")).upper()
            if modality == "SEG":  # "give the folder of its series" pointed at the SEG's own folder
                what = ("a DICOM SEG (a segmentation), not a series of images; give the folder of the series it "
                        "segments (its labels as a label image, to train on: docs/training.md, 'A DICOM SEG as "
                        "training labels')")
            elif modality in NON_IMAGE_MODALITIES:
                what = f"a DICOM {modality} object, not a series of images"
            else:
                what = f"a DICOM file, not a folder of them; give the folder of its series ({folder.parent})"
        raise ImageReadError(f"{folder}: {what}")
    files = files_under(folder)
    if not files:
        raise DicomError(f"{folder}: empty folder, no DICOM files")
    held = _HELD.pop(_held_key(folder), None) if warn_skipped and not keep_broken else None
    if held is not None and held[0] == _signature(files):
        for record in held[2]:  # what its scan would have told, told now, as the folder is read
            logging.getLogger(record.name).handle(record)
        return held[1]
    with FileMessages(folder) as messages:
        return _scan(folder, files, messages, warn_skipped, keep_broken)


# scans made ahead of the reading (a DICOM SEG's series checked before the model loads), kept for it: by folder,
# (the files' signature, the scan, the log records its making held back); no more than _HELD_FILES_MAX files in all
_HELD: dict[str, tuple[list, FolderScan, list[logging.LogRecord]]] = {}
_HELD_FILES_MAX = 20_000


def _held_key(folder: Path) -> str:
    return os.path.abspath(folder)


def _signature(files: list[Path]) -> list | None:
    """The files' paths, sizes, modification times (ns) and inodes: a file added, removed or replaced shows."""
    try:
        return [(str(p), *((s := p.stat()).st_size, s.st_mtime_ns, s.st_ino)) for p in files]
    except OSError:
        return None


class _Held(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def held_scan(folder: Path | str) -> FolderScan:
    """:func:`scan_folder` of ``folder`` (a folder read ahead of its reading), kept for the next
    :func:`scan_folder` of that folder with ``warn_skipped`` and without ``keep_broken`` (that of
    :func:`~medseg.io.dicom.read_dicom_series`), which takes it where no file under the folder was added, removed or
    changed since, and tells then what scanning it logged: the series' headers are read once, and its warnings told
    once, as it is read. Raises as :func:`scan_folder`, its warnings untold. :func:`release_scan` drops a scan kept
    for a reading that will not come. One thread at a time (the ``medseg`` logger's records are held meanwhile)."""
    folder = Path(folder)
    medseg_log = logging.getLogger("medseg")
    holder, handlers, propagate = _Held(), medseg_log.handlers, medseg_log.propagate
    medseg_log.handlers, medseg_log.propagate = [holder], False  # held, not told (nor by a handler of its own)
    try:
        # taken before the headers are read: a file changed while they are shows as changed
        signature = _signature(files_under(folder)) if folder.is_dir() else None
        scan = scan_folder(folder)
    finally:
        medseg_log.handlers, medseg_log.propagate = handlers, propagate
    if signature is not None and sum(len(h[0]) for h in _HELD.values()) + len(signature) <= _HELD_FILES_MAX:
        _HELD[_held_key(folder)] = (signature, scan, holder.records)
    return scan


def release_scan(folder: Path | str) -> None:
    """Drop the scan :func:`held_scan` kept for ``folder``, where any."""
    _HELD.pop(_held_key(Path(folder)), None)


def held_series(folder: Path | str, series: str | None = None) -> SeriesCandidate | None:
    """The series :func:`choose_series` chooses under ``folder`` (``series`` as there), from a :func:`held_scan`
    kept for the folder's reading: a folder with no DICOM image, several series and no ``series``, or a ``series``
    that matches none raise as reading it raises, from the headers alone, before any model is loaded; a folder
    refused is not kept. None, with no header read, where the scan could not be kept (its files, with those of the
    scans kept already, more than :data:`_HELD_FILES_MAX`): its reading scans it then, once, where a scan made now
    would be made again (every header read twice)."""
    if not _fits_held(Path(folder)):
        return None
    scan = held_scan(folder)
    try:
        return choose_series(scan, series)[0]
    except BaseException:
        release_scan(folder)  # refused: never read
        raise


def _fits_held(folder: Path) -> bool:
    """Whether a :func:`held_scan` of ``folder`` would be kept: its files (listed, not read) and those of the other
    scans kept no more than :data:`_HELD_FILES_MAX`. Raises as :func:`~medseg.io.files.files_under` (a link that
    leads nowhere), as scanning it would."""
    key = _held_key(folder)
    kept = sum(len(held[0]) for name, held in _HELD.items() if name != key)
    return not folder.is_dir() or kept + len(files_under(folder)) <= _HELD_FILES_MAX


def _scan(folder: Path, files: list[Path], messages: FileMessages, warn_skipped: bool = True,
          keep_broken: bool = False) -> FolderScan:
    skipped: list[tuple[Path, str]] = []
    non_image: list[tuple[Path, str]] = []
    images: list[tuple[Path, pydicom.Dataset]] = []
    broken: list[tuple[Path, str]] = []
    dicomdirs: list[DicomdirIndex] = []
    for path in files:
        with messages.about(path):
            try:
                dataset = _read_header(path)
            except ImageReadError as error:
                if not keep_broken:
                    if str(error).startswith(f"{path}: cannot read ("):  # permission denied: its own words say it
                        raise
                    raise ImageReadError(f"{error}; {BROKEN_ADVICE}") from error
                messages.forget(path)  # the listing names the file as unreadable: the library's words add nothing
                broken.append((path, str(error).removeprefix(f"{path}: ")))
                continue
            if dataset is None:
                messages.forget(path)  # pydicom's words on an HTML viewer's page ("found explicit VR") add nothing
                skipped.append((path, "not a DICOM file"))
                continue
            modality = str(dataset.get("Modality", "")).upper()
            if "DirectoryRecordSequence" in dataset:
                non_image.append((path, "DICOMDIR index, not an image"))
                index = read_dicomdir(path, {index_key(p.relative_to(path.parent).as_posix()) for p in files
                                             if p.is_relative_to(path.parent)})
                if index is not None:
                    dicomdirs.append(index)
                continue
            if modality in NON_IMAGE_MODALITIES or "Rows" not in dataset:
                non_image.append((path, f"{modality or 'DICOM'} object, not an image"))
                continue
            images.append((path, dataset))
            read = read_undeclared_text(dataset)  # UTF-8 where its bytes are: before the description is read
            note = read and undeclared_text_note([(k, dataset.get(k)) for k in ("SeriesDescription", "ProtocolName")],
                                                 read.encoding)
            if note:  # the description shown and recorded: reported with pydicom's own notes, once per folder
                messages.note(note)
    if not images and keep_broken and (non_image or broken):  # something DICOM to list (a SEG alone, a cut file)
        return FolderScan(folder, [], skipped, non_image, broken, dicomdirs)
    if not images:  # the error counts the skipped files: no warning line before it
        gone = FolderScan(folder, [], skipped, non_image, broken, dicomdirs).none_present()
        if gone is not None:  # was "no DICOM images found (1 non-image DICOM object(s))"
            raise DicomError(gone)
        parts = ([counted(len(skipped), "non-DICOM file")] if skipped else []) + (
            [counted(len(non_image), "non-image DICOM object")] if non_image else [])
        what, extra = " and ".join(parts) or "no files", ""
        from medseg.io.itk_image import NIFTI_ENDINGS

        # the ending the folder's NIfTI files have most (a folder of .nii.bz2 or .nii.zst cases had no hint)
        endings = (*NIFTI_ENDINGS, ".hdr", ".img", ".mgz")
        nifti = [next(e for e in endings if p.name.lower().endswith(e)) for p, _ in skipped
                 if p.name.lower().endswith(endings)]
        itk = [p for p, _ in skipped if p.name.lower().endswith((".nrrd", ".nhdr", ".mha", ".mhd"))]
        kind, ending = (("NIfTI", max(dict.fromkeys(nifti), key=nifti.count)) if nifti
                        else ("image", Path(itk[0].name).suffix if itk else ""))
        hint = (f"; a folder is read as one DICOM study: give {kind} files one by one, e.g. {folder}/*{ending}"
                if nifti or itk else "")
        segmentations = sorted({ending for ending in map(slicer_segmentation_ending, itk) if ending})
        if segmentations:  # 3D Slicer's segmentations: no images
            hint += (f" (not its {'/'.join(segmentations)} files, 3D Slicer's segmentations: one may be given as "
                     f"{setting('reference', ANY)})")
        if any(p.parent == folder and p.name == "model.json" for p, _ in skipped):  # a package where a study goes
            hint = (f"; it is a model package (model.json), not a DICOM study: `medseg models {folder}` describes it, "
                    f"and {_with_package(folder)} segments with it")
        raise DicomError(f"{folder}: no DICOM images found ({what}{extra}){hint}")
    if skipped and warn_skipped:
        names = ", ".join(str(path.relative_to(folder)) for path, _ in skipped[:5])
        warning(log, "%s: skipped %s that %s not DICOM (%s%s)", folder, counted(len(skipped), "file"),
                    "is" if len(skipped) == 1 else "are", names,
                    ", ..." if len(skipped) > 5 else "")
    candidates = _group(images, messages)
    for index in dicomdirs:
        judge_missing(folder, index, candidates)
    return FolderScan(folder, candidates, skipped, non_image, broken, dicomdirs)


def series_text(info: dict) -> str:
    """A DICOM input's series as ``medseg infer`` prints it and the report's card shows it, from the sidecar's
    ``input_info``: ``series 3 'T1 main'``, with the UID after it when the number alone is not its key."""
    key, number, uid = str(info["series_key"]), info.get("series_number"), info.get("series_uid")
    name = series_name(key, number, uid)
    text = f"{name} '{info.get('description', '')}'"
    return text if name == f"series {key}" else f"{text}, UID {uid}"


class SeriesUID(str):
    """A series asked for by its SeriesInstanceUID alone (a sidecar's ``series_uid``): matched as a UID only, never
    as a key or a SeriesNumber (a UID edited to ``5`` would otherwise pick series number 5)."""

    __slots__ = ()


def series_match(wanted: str, key: str | None, uid: str | None, number: int | None) -> str | None:
    """How ``wanted`` (a --series value or a sheet's series cell) names a series with this key, UID and number:
    ``"key"``, ``"uid"``, ``"number"`` (a whole number, ``03`` too, as the SeriesNumber), or None."""
    if key is not None and wanted == str(key):
        return "key"
    if uid and wanted == str(uid):
        return "uid"
    if number is not None and re.fullmatch(r"-?\d+", wanted) and int(wanted) == int(number):
        return "number"
    return None


def choose_series(scan: FolderScan, series: str | None = None) -> tuple[SeriesCandidate, str]:
    """The candidate to convert and why; refuses (listing the candidates) rather than guessing."""
    folder, candidates = scan.folder, scan.candidates
    if series is not None:
        wanted = str(series).strip()
        if not wanted:
            raise DicomError(f"{folder}: {setting('series', ANY)} is empty; pass a series number, UID or key from "
                             "`medseg inspect`")
        if isinstance(series, SeriesUID):  # its UID alone (one sharing its number with another has it as its key)
            kind, matches = "uid", [c for c in candidates if c.uid and wanted == str(c.uid)]
        else:
            matches = []
            for kind in ("key", "uid", "number"):  # a key first, then a UID, then a SeriesNumber
                matches = [c for c in candidates if series_match(wanted, c.key, c.uid, c.number) == kind]
                if matches:
                    break
        if not matches:
            # neutral on where it was asked for: the --series option, or a sample sheet's series cell
            if isinstance(series, SeriesUID):
                raise DicomError(f"{folder}: no series has the SeriesInstanceUID asked for, {wanted!r}; found "
                                 f"{_listing(candidates)}")
            hint = _hash_key_hint(wanted, candidates)
            raise DicomError(f"{folder}: no series matches the series asked for, {wanted!r} (a key, number or UID "
                             f"`medseg inspect` lists){hint}; found {_listing(candidates)}")
        if len(matches) > 1:
            keys = [c.key for c in matches]
            by_uid = any(c.number_shared and c.uid for c in matches) or len(set(keys)) < len(keys)
            which = "UIDs" if by_uid else f"keys ({', '.join(keys)})"
            raise DicomError(f"{folder}: {setting('series', wanted)} is ambiguous, it matches {_listing(matches)}; "
                             f"pass one of their {which}")
        chosen = matches[0]
        if chosen.problem is not None:
            raise DicomError(f"{folder}: {chosen.label()} cannot be one 3D volume: {chosen.problem}")
        note = positional_key_note(scan, chosen) if kind == "key" else None
        return chosen, f"chosen with --series {wanted}" + (f" ({note})" if note else "")  # a record's, whoever made it
    eligible = [c for c in candidates if c.eligible]
    if len(eligible) == 1:
        others = len(candidates) - 1
        why = "the only eligible 3D series"
        if others:
            listed = _listing([c for c in candidates if c is not eligible[0]])
            why += f" ({others} {'other' if others == 1 else 'others'} not eligible: {listed})"
        return eligible[0], why
    if not eligible:
        images = [c for c in candidates if not c.localizer]
        if len(images) == 1:
            raise DicomError(f"{folder}: {images[0].label()} cannot be one 3D volume: {images[0].problem}")
        raise DicomError(f"{folder}: no series can be one 3D volume: {_listing(candidates)}")
    own = {id(c): _own_folder(scan, c) for c in eligible}
    give = ", or give the folder of one (listed with it)" if all(own.values()) else ""
    sheet = "" if named_elsewhere("series") else " (in a sample sheet: the series column)"
    raise DicomError(f"{folder}: {len(eligible)} eligible series{_studies_text(eligible)}, choose one with "
                     f"{setting('series', ANY)}{sheet}{give}: "
                     f"{_listing(eligible, own if give else None)}")


def _hash_key_hint(wanted: str, candidates: Sequence[SeriesCandidate]) -> str:
    """Where ``wanted`` is a place key without its ``#`` (``1`` for ``#1``): how to write the key. ``inspect`` lists
    it as ``#1``, which a shell takes for the start of a comment unless quoted (``--series #1`` gives no value)."""
    key = f"#{wanted}"
    if not any(c.key == key for c in candidates):
        return ""
    if not has_option("series"):  # a Python caller's string, a sample sheet's cell: no shell in between
        return f"; its key {key}, its place in the listing, is written with the # ({setting('series', key)})"
    return (f"; its key {key}, its place in the listing, is written with the # (quoted in a shell, "
            f"{setting('series', shlex.quote(key))}, where an unquoted # starts a comment)")


def _with_package(folder: Path) -> str:
    """Segmenting with the package ``folder``: ``package='folder'`` for a Python caller, the command's option where it
    has one (``-m folder``), where its user gives it otherwise (a cohort step's workflow config), else ``medseg infer
    -m folder``: a command without ``-m`` (inspect, convert) named another command's option without its command."""
    if has_option("package") is False and not named_elsewhere("package"):
        return f"`medseg infer -m {folder}`"
    given = setting("package", str(folder))
    return f"`{given}`" if has_option("package") else given


def _studies_text(candidates: list[SeriesCandidate], shown: int = 3) -> str:
    """`` of 2 studies (2024-03-01 'MR knee', 2024-03-02 'CT head')`` where ``candidates`` belong to more than one
    study (StudyInstanceUID; a folder is read as one study, and a choice among series of several patients is no
    choice of a series), else empty. Each study is named as :func:`study_names` names it."""
    studies = study_names(candidates)
    if len(studies) < 2:
        return ""
    listed = ", ".join(list(studies.values())[:shown]) + (", …" if len(studies) > shown else "")
    return f" of {len(studies)} studies ({listed})"


def study_names(candidates: list[SeriesCandidate]) -> dict[str, str]:
    """StudyInstanceUID → the study's name in medseg's lines, in the candidates' order: its date and description,
    with its UID's last components where these do not tell it apart from another of ``candidates``' studies; never
    by patient (a QA log is no place for a PatientID). Candidates whose files state no StudyInstanceUID are left
    out."""
    studies: dict[str, str] = {}
    for c in candidates:
        uid = study_value(c, "StudyInstanceUID")
        if uid and uid not in studies:
            date = study_value(c, "StudyDate")
            date = f"{date[:4]}-{date[4:6]}-{date[6:8]}" if re.fullmatch(r"\d{8}", date) else date
            description = study_value(c, "StudyDescription")
            studies[uid] = " ".join(filter(None, [date, repr(description) if description else ""]))
    names = list(studies.values())
    for uid, name in studies.items():
        if not name or names.count(name) > 1:  # the UID's tail tells them apart
            studies[uid] = " ".join(filter(None, [name, "UID …" + ".".join(uid.split(".")[-2:])]))
    return studies


def study_value(candidate: SeriesCandidate, keyword: str) -> str:
    """A study attribute of a series (StudyInstanceUID, StudyDate, StudyDescription) as its first file states it,
    stripped; empty where it states none."""
    dataset = next(iter(candidate.datasets.values()), None)
    return str(dataset.get(keyword, "") or "").strip() if dataset is not None else ""


def positional_key_note(scan: FolderScan, chosen: SeriesCandidate, series_named: str = "--series") -> str | None:
    """Where ``chosen``'s key is its place in the folder's listing (``#N``: a series with neither a UID nor a number
    of its own): a series added to the folder can move the key onto another series, which a sample sheet's series
    cell then names without a word. Says so, and names the series' own folder where it has one (``series_named``:
    the setting as the note's reader gives it; a sidecar's record says ``--series``, whoever made it)."""
    if not chosen.key.startswith("#"):
        return None
    moves = (f"{chosen.key} is this series' place in the folder's listing, as it has no UID or number of its own, "
             "and moves onto another series if one is added; ")
    if len(scan.candidates) == 1:  # an added series makes a folder without --series refuse to choose: not silent
        return moves + f"it is the folder's only series: leave {series_named} out"
    own = _own_folder(scan, chosen)
    return moves + (f"give its own folder, {own}, to name it for good" if own else "keep it in a folder of its own")


def _own_folder(scan: FolderScan, candidate: SeriesCandidate) -> Path | None:
    """The folder under the scanned one that holds ``candidate``'s files and no other series' (as a CD or USB
    export's DICOM/ST000001/SE000001 does), which names it without --series; None where there is none."""
    if not candidate.files:
        return None
    own = Path(os.path.commonpath([str(p.parent) for p in candidate.files]))
    others = {frame.path.parent for c in scan.candidates if c is not candidate for frame in c.frames}  # their folders
    alone = own != scan.folder and not any(p.is_relative_to(own) for p in others)
    return own if alone else None


def _listing(candidates: Sequence[SeriesCandidate], folders: dict[int, Path | None] | None = None) -> str:
    """The candidates as messages list them; ``folders``: each one's own folder by ``id``, shown in its brackets."""
    parts = []
    for c in candidates:
        why = c.problem or ("localizer" if c.localizer else "eligible")
        if folders and folders.get(id(c)):
            why += f"; folder {folders[id(c)]}"
        if c.split_values:  # a part of a few files is often one file whose header is wrong: name them
            files = c.files
            named = f" in {', '.join(p.name for p in files)}" if len(files) <= SHOWN_PART_FILES else ""
            why = f"{c.split_values}{named}; {why}"
        parts.append(f"{c.label()} [{why}]")
    return "; ".join(parts)


SHOWN_PART_FILES = 3


