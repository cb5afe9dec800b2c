"""Finding the DICOM series in a folder, splitting mixed ones, and choosing one — never silently.

A folder is scanned recursively; every file is read up to (not into) its pixel data. Files that are not
DICOM are skipped and listed; a file that starts like DICOM but cannot be parsed is an error, because it
may be a slice of the wanted series. Images are grouped by SeriesInstanceUID and a group is split when it
mixes orientations, image types, echoes or image sizes. Localizers (ImageType LOCALIZER, or a scout /
localizer / survey description) and non-image objects (SEG, RTSTRUCT, SR, ...) are never chosen on their own.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pydicom

from medseg.errors import DicomError, ImageReadError
from medseg.io.atomic import sha256_of
from medseg.io.dicom_frames import DicomFrame, _count, _floats, _frame_name, _frames, _image_type, _int
from medseg.io.dicom_geometry import (
    ORIENTATION_ATOL,
    GeometryProblem,
    SeriesGeometry,
    series_geometry,
)
from medseg.io.dicom_header import (
    _encoding_unlike_syntax,
    _pixels_cut_short,
    _read_header,
    not_dicom_text,
    transfer_syntax,
)
from medseg.io.dicom_messages import FileMessages
from medseg.io.dicom_text import read_undeclared_text, undeclared_text_note
from medseg.io.dicomdir import (
    DicomdirIndex,
    dicomdir_file_text,
    index_key,
    missing_text,
    none_present_text,
    read_dicomdir,
)
from medseg.io.files import files_under, is_dicom_file
from medseg.numbers import counted
from medseg.volume import slicer_segmentation_ending

__all__ = ["DicomFrame", "SeriesCandidate", "FolderScan", "scan_folder", "held_scan", "release_scan", "choose_series",
           "series_match",
           "transfer_syntax", "NON_IMAGE_MODALITIES", "series_text", "positional_key_note", "not_dicom_text"]

log = logging.getLogger(__name__)

NON_IMAGE_MODALITIES = {"SEG", "RTSTRUCT", "RTPLAN", "RTRECORD", "RTDOSE", "SR", "PR", "KO", "REG", "DOC", "FID",
                        "PLAN", "RWV", "AU", "ECG", "HD"}
LOCALIZER_WORDS = re.compile(r"locali[sz]er|scout|survey|topogram|surview|3[- ]?pl(ane)?[ _-]?loc|aahscout", re.I)


@dataclass
class SeriesCandidate:
    """One series (or one part of a series split for mixing images), and whether it can be one 3D volume."""

    uid: str
    number: int | None
    part: int | None  # 1-based part when the series was split, else None
    description: str
    modality: str
    frames: list[DicomFrame]
    datasets: dict[Path, pydicom.Dataset] = field(repr=False, default_factory=dict)
    image_type: tuple[str, ...] = ()
    localizer: bool = False
    problem: str | None = None  # why this cannot be one 3D volume
    geometry: SeriesGeometry | None = None
    flags: list[str] = field(default_factory=list)
    split_reason: str | None = None
    split_values: str | None = None  # what sets this part apart, e.g. "size 128×256"
    index: int = 0  # 1-based place in the folder's listing, the key of last resort
    number_shared: bool = False  # another series in the folder (another UID) has the same SeriesNumber
    unusable_files: int = 0  # files of a series none of whose images could be read (it has no frames then)

    @property
    def key(self) -> str:
        """How ``--series`` names this candidate: the number (else, or when another series in the folder has the
        same number, the UID, else ``#INDEX``), with ``-PART`` when the series was split. Keys are unique in a
        folder, so every key ``inspect`` lists can be given."""
        unique_number = self.number is not None and not self.number_shared
        base = str(self.number) if unique_number else (self.uid or f"#{self.index}")
        return base if self.part is None else f"{base}-{self.part}"

    @property
    def eligible(self) -> bool:
        return self.problem is None and not self.localizer

    @property
    def files(self) -> list[Path]:
        return sorted({frame.path for frame in self.frames})

    def label(self) -> str:
        text = series_name(self.key, self.number, self.uid)
        if self.description:
            text += f" '{self.description}'"
        count = (f"{counted(self.unusable_files, 'file')}, none usable" if not self.frames and self.unusable_files
                 else counted(len(self.frames), "image"))
        return f"{text} ({self.modality}, {count}, UID {self.uid or 'none'})"


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
                        "segments")
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
                    raise
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
                     "--reference)")
        if any(p.parent == folder and p.name == "model.json" for p, _ in skipped):  # a package where a study goes
            hint = (f"; it is a model package (model.json), not a DICOM study: `medseg models {folder}` describes it, "
                    f"and `-m {folder}` segments with it")
        raise DicomError(f"{folder}: no DICOM images found ({what}{extra}){hint}")
    if skipped and warn_skipped:
        names = ", ".join(str(path.relative_to(folder)) for path, _ in skipped[:5])
        log.warning("%s: skipped %s that %s not DICOM (%s%s)", folder, counted(len(skipped), "file"),
                    "is" if len(skipped) == 1 else "are", names,
                    ", ..." if len(skipped) > 5 else "")
    candidates = _group(images, messages)
    for index in dicomdirs:
        _judge_missing(folder, index, candidates)
    return FolderScan(folder, candidates, skipped, non_image, broken, dicomdirs)


def _judge_missing(folder: Path, index: DicomdirIndex, candidates: list[SeriesCandidate]) -> None:
    """Files the DICOMDIR ``index`` references that are not here: a series missing some of its images is refused
    (read without them, a stack a slice short at an end is a thinner volume, in silence); a series none of whose
    images are here, or files of no series, are warned about (the folder may have been given a part on purpose).
    Of a series read in parts (split by orientation, image type, echo or size), only the part a missing file belonged
    to is refused where the file's index record tells which (:func:`_parts_of_record`); where it does not, every
    part it may have belonged to is, and the message says why. A missing file that fits no part found belonged to a
    part none of whose images are here: warned about, the parts found left as they are."""
    unplaced = []
    partless: list[tuple[SeriesCandidate, object]] = []  # (a part of its series, a file of a part not found)
    known: dict = {}  # what _parts_of_record worked out of each part, once for all its series' files
    for uid, gone in index.missing.items():
        parts = [c for c in candidates if uid and c.uid == uid]
        if not parts:
            unplaced += gone
            continue
        if len(gone) == len(index.by_series[uid]):  # its images are here, under other names: the index is stale
            log.warning("%s: the DICOMDIR names no file of %s that is here (its folders renamed or moved since); "
                        "the series is read as it is, without the index's check", folder, parts[0].label())
            continue
        total = len(index.by_series[uid])
        owned: dict[int, list] = {id(c): [] for c in parts}
        unknown: list = []  # (file, the parts it may have belonged to)
        for file in gone:
            fits = _parts_of_record(index.described.get(file, {}), parts, known)
            if not fits:  # its record gives another orientation, size, image type or echo than every part found
                partless.append((parts[0], file))
            elif len(parts) == 1:
                unknown.append((file, fits))  # the series' one part found: refused as a series missing files is
            elif len(fits) == 1:
                owned[id(fits[0])].append(file)
            else:
                unknown.append((file, fits))
        for candidate in parts:
            mine = owned[id(candidate)]
            maybe = [file for file, fits in unknown if candidate in fits]
            if mine:
                _refuse(candidate, missing_text(mine, total, ", of this part of the series, as the index's records of "
                                                             "them tell"))
            if maybe and len(parts) == 1:
                _refuse(candidate, missing_text(maybe, total))
            elif maybe:
                _refuse(candidate, missing_text(maybe, total, ", and the index's records of them do not tell which "
                                                              "part of the series they were of (no orientation, size, "
                                                              "position or instance number that sets one apart), so "
                                                              "every part they may be of is refused"))
    if unplaced:
        names = ", ".join(str(p) for p in unplaced[:3]) + (", …" if len(unplaced) > 3 else "")
        log.warning("%s: %s the DICOMDIR references %s not here (%s), of no series found in the folder",
                    folder, counted(len(unplaced), "file"), "is" if len(unplaced) == 1 else "are", names)
    by_series: dict[str, list] = {}  # one warning a series (each names its own)
    for part, file in partless:
        by_series.setdefault(part.uid, []).append((part, file))
    for files in by_series.values():
        part = files[0][0]
        names = ", ".join(str(p) for _, p in files[:3]) + (", …" if len(files) > 3 else "")
        log.warning("%s: %s the DICOMDIR references %s not here (%s), of %s but of no part of it found in the "
                    "folder (their index records give another orientation, size, image type or echo); the parts "
                    "found are read as they are", folder, counted(len(files), "file"),
                    "is" if len(files) == 1 else "are", names,
                    f"series {part.number if part.number is not None else part.uid}")


def _refuse(candidate: SeriesCandidate, problem: str) -> None:
    candidate.problem = problem + (f"; and: {candidate.problem}" if candidate.problem else "")


def _parts_of_record(fields: dict, parts: list[SeriesCandidate], known: dict | None = None) -> list[SeriesCandidate]:
    """The parts of a series split in parts that a file its DICOMDIR references, not here, may have belonged to, by
    what the file's index record says (:func:`~medseg.io.dicomdir.record_fields`): its split key where given
    (orientation, size, image type, echo: the parts that agree), then its position (parts of one orientation) or its
    InstanceNumber: the one part whose stack holds it inside, where the parts' stacks (numbers) do not overlap
    (:func:`_one_run_holding`). Every part where the record tells nothing (an IMAGE record need give only its
    InstanceNumber); none where it fits no part found (a part none of whose images are here). A series none of whose
    images here could be read has no frames to compare with: every part, as where the record tells nothing.
    ``known``: what was worked out of the parts for another file of the series (each part's echoes, and the ends of
    its stack and of its numbers), which a file would otherwise work out again from every image of every part."""
    known = {} if known is None else known

    def of(candidate: SeriesCandidate, what: str, work):
        if (id(candidate), what) not in known:
            known[id(candidate), what] = work(candidate)
        return known[id(candidate), what]

    fits = list(parts)
    if not all(c.frames for c in fits):  # its files' frames unreadable (its problem says why): nothing to compare
        return fits
    if "orientation" in fields:
        fits = [c for c in fits if c.frames[0].geometry.orientation is not None and max(
            abs(a - b) for a, b in zip(c.frames[0].geometry.orientation, fields["orientation"])) <= ORIENTATION_ATOL]
    if "size" in fields:
        fits = [c for c in fits if (c.frames[0].geometry.rows, c.frames[0].geometry.columns) == fields["size"]]
    if "image_type" in fields:
        fits = [c for c in fits if c.image_type == fields["image_type"]]
    if "echo" in fields:
        fits = [c for c in fits if of(c, "echo", lambda c: {str(d.get("EchoNumbers")) for d in c.datasets.values()})
                == {fields["echo"]}]
    if len(fits) > 1 and "position" in fields and _one_orientation(fits):  # depths along one normal compare
        held = _one_run_holding({id(c): of(c, "depths", lambda c: _ends(_depths(c))) for c in fits},
                                _depth(fits[0], fields["position"]))
        if held is not None:
            return [c for c in fits if id(c) == held]
    if len(fits) > 1 and "instance" in fields:
        held = _one_run_holding({id(c): of(c, "numbers", lambda c: _ends([f.instance_number for f in c.frames]))
                                 for c in fits}, fields["instance"])
        if held is not None:
            return [c for c in fits if id(c) == held]
    return fits


def _ends(values: list) -> list:
    """The least and the greatest of ``values`` that are not None (none where there is none): all that
    :func:`_one_run_holding` reads of a run."""
    values = [v for v in values if v is not None]
    return [min(values), max(values)] if values else []


def _one_run_holding(runs: dict, value) -> int | None:
    """The key of the one run (a part's positions or instance numbers) that holds values on both sides of ``value``,
    where the runs' ranges do not overlap: a missing image inside one part's stack is that part's. None where the
    ranges overlap (interleaved numbers) or no run holds it so (an image beyond a part's end may be of either part
    beside it)."""
    ranges = {}
    for key, values in runs.items():
        values = [v for v in values if v is not None]
        if not values or value is None:
            return None
        ranges[key] = (min(values), max(values))
    spans = sorted(ranges.values())
    if any(later[0] <= earlier[1] for earlier, later in zip(spans, spans[1:])):
        return None
    holding = [key for key, (low, high) in ranges.items() if low < value < high]
    return holding[0] if len(holding) == 1 else None


def _one_orientation(parts: list[SeriesCandidate]) -> bool:
    orientations = [c.frames[0].geometry.orientation for c in parts]
    return None not in orientations and all(
        max(abs(a - b) for a, b in zip(o, orientations[0])) <= ORIENTATION_ATOL for o in orientations)


def _depths(candidate: SeriesCandidate) -> list[float | None]:
    return [_depth(candidate, frame.geometry.position) for frame in candidate.frames]


def _depth(candidate: SeriesCandidate, position) -> float | None:
    """Where ``position`` (LPS mm) lies along ``candidate``'s slice normal (None without an orientation)."""
    orientation = candidate.frames[0].geometry.orientation
    if orientation is None or position is None:
        return None
    (a, b, c), (d, e, f) = orientation[:3], orientation[3:]
    normal = (b * f - c * e, c * d - a * f, a * e - b * d)
    return sum(n * float(p) for n, p in zip(normal, position))


def series_name(key: str, number: int | None, uid: str | None) -> str:
    """How messages name a series: ``series KEY``; when the key is the UID (another series in the folder has the
    same number), by its number and part instead, so that a listing does not give the UID twice."""
    if uid and number is not None and (key == uid or key.startswith(f"{uid}-")):
        return f"series {number}{key[len(uid):]}"
    return f"series {key}"


def series_text(info: dict) -> str:
    """A DICOM input's series as ``medseg infer`` prints it and the report's card shows it, from the sidecar's
    ``input_info``: ``series 3 'T1 main'``, with the UID after it when the number alone is not its key."""
    key, number, uid = str(info["series_key"]), info.get("series_number"), info.get("series_uid")
    name = series_name(key, number, uid)
    text = f"{name} '{info.get('description', '')}'"
    return text if name == f"series {key}" else f"{text}, UID {uid}"


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
            raise DicomError(f"{folder}: --series is empty; pass a series number, UID or key from `medseg inspect`")
        matches = []
        for kind in ("key", "uid", "number"):  # a key first, then a UID, then a SeriesNumber
            matches = [c for c in candidates if series_match(wanted, c.key, c.uid, c.number) == kind]
            if matches:
                break
        if not matches:
            # neutral on where it was asked for: the --series option, or a sample sheet's series cell
            raise DicomError(f"{folder}: no series matches the series asked for, {wanted!r} (a key, number or UID "
                             f"`medseg inspect` lists); found {_listing(candidates)}")
        if len(matches) > 1:
            keys = [c.key for c in matches]
            by_uid = any(c.number_shared and c.uid for c in matches) or len(set(keys)) < len(keys)
            which = "UIDs" if by_uid else f"keys ({', '.join(keys)})"
            raise DicomError(f"{folder}: --series {wanted} is ambiguous, it matches {_listing(matches)}; "
                             f"pass one of their {which}")
        chosen = matches[0]
        if chosen.problem is not None:
            raise DicomError(f"{folder}: {chosen.label()} cannot be one 3D volume: {chosen.problem}")
        note = positional_key_note(scan, chosen) if kind == "key" else None
        return chosen, f"chosen with --series {wanted}" + (f" ({note})" if note else "")
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
    raise DicomError(f"{folder}: {len(eligible)} eligible series{_studies_text(eligible)}, choose one with --series "
                     f"(in a sample sheet: the series column){give}: {_listing(eligible, own if give else None)}")


def _studies_text(candidates: list[SeriesCandidate], shown: int = 3) -> str:
    """`` of 2 studies (2024-03-01 'MR knee', 2024-03-02 'CT head')`` where ``candidates`` belong to more than one
    study (StudyInstanceUID; a folder is read as one study, and a choice among series of several patients is no
    choice of a series), else empty. Each study is named by its date and description, with its UID's last
    components where these do not tell it apart; never by patient (a QA log is no place for a PatientID)."""
    def first(candidate: SeriesCandidate, keyword: str) -> str:
        dataset = next(iter(candidate.datasets.values()), None)
        return str(dataset.get(keyword, "") or "").strip() if dataset is not None else ""

    studies: dict[str, str] = {}  # UID → its date and description, in the listing's order
    for c in candidates:
        uid = first(c, "StudyInstanceUID")
        if uid and uid not in studies:
            date = first(c, "StudyDate")
            date = f"{date[:4]}-{date[4:6]}-{date[6:8]}" if re.fullmatch(r"\d{8}", date) else date
            description = first(c, "StudyDescription")
            studies[uid] = " ".join(filter(None, [date, repr(description) if description else ""]))
    if len(studies) < 2:
        return ""
    names = list(studies.values())
    for uid, name in studies.items():
        if not name or names.count(name) > 1:  # the UID's tail tells them apart
            studies[uid] = " ".join(filter(None, [name, "UID …" + ".".join(uid.split(".")[-2:])]))
    listed = ", ".join(list(studies.values())[:shown]) + (", …" if len(studies) > shown else "")
    return f" of {len(studies)} studies ({listed})"


def positional_key_note(scan: FolderScan, chosen: SeriesCandidate) -> str | None:
    """Where ``chosen``'s key is its place in the folder's listing (``#N``: a series with neither a UID nor a number
    of its own): a series added to the folder can move the key onto another series, which a sample sheet's series
    cell then names without a word. Says so, and names the series' own folder where it has one."""
    if not chosen.key.startswith("#"):
        return None
    moves = (f"{chosen.key} is this series' place in the folder's listing, as it has no UID or number of its own, "
             "and moves onto another series if one is added; ")
    if len(scan.candidates) == 1:  # an added series makes a folder without --series refuse to choose: not silent
        return moves + "it is the folder's only series: leave --series out"
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
SPLIT_KEY_NAMES = ("orientation", "image type", "echo", "size")  # the parts of a split key (see :func:`_key`)


def _split_values(key: tuple, names: list[str]) -> str:
    """What sets a part of a split series apart, in the words of its split key (see :func:`_key`)."""
    orientation, image_type, echo, size = key
    shown = {"orientation": "orientation " + ("?" if orientation is None else
                                              "\\".join(f"{v:.4g}" for v in orientation)),
             "image type": "image type " + ("\\".join(image_type) or "(none)"),
             "echo": f"echo {echo}",
             "size": "size ?" if size is None else f"size {size[0]}×{size[1]} (rows×columns)"}
    return ", ".join(shown[name] for name in names)


def _group(images: list[tuple[Path, pydicom.Dataset]], messages: FileMessages) -> list[SeriesCandidate]:
    by_uid: dict[tuple, list[tuple[Path, pydicom.Dataset]]] = {}
    for path, dataset in images:
        with messages.about(path):
            uid = str(dataset.get("SeriesInstanceUID", "") or "")
            # anonymised data may have lost the UID: fall back on what else tells series apart
            group = (uid,) if uid else ("", str(dataset.get("StudyInstanceUID", "")),
                                        str(dataset.get("SeriesNumber", "")), str(dataset.get("SeriesDescription", "")),
                                        str(dataset.get("Modality", "")))
        by_uid.setdefault(group, []).append((path, dataset))
    candidates: list[SeriesCandidate] = []
    for group, members in by_uid.items():
        uid = group[0]
        parts: dict[tuple, list[tuple[Path, pydicom.Dataset, DicomFrame]]] = {}
        problems: list[str] = []  # of the whole series
        left_out: list[tuple[pydicom.Dataset, str]] = []  # files whose geometry cannot be read, and why
        orientations: list[tuple[float, ...]] = []
        seen: dict[str, Path] = {}  # SOPInstanceUID -> the file that has it
        copies: list[tuple[Path, Path]] = []  # (copy, the file it copies)
        for path, dataset in sorted(members, key=lambda item: str(item[0])):
            with messages.about(path):
                sop = str(dataset.get("SOPInstanceUID", "") or "")
                if sop and sop in seen:
                    if sha256_of(path) == sha256_of(seen[sop]):  # a copy (a backup/ folder, a second export)
                        copies.append((path, seen[sop]))
                    else:
                        problems.append(f"{seen[sop].name} and {path.name} carry the same SOPInstanceUID {sop} but "
                                        "differ; remove the wrong one")
                    continue
                if sop:
                    seen[sop] = path
                try:
                    frames = _frames(path, dataset)
                except GeometryProblem as error:
                    left_out.append((dataset, f"{path.name}: {error}"))
                    frames = []
                for frame in frames:
                    key = _split_key(dataset, frame, orientations)
                    parts.setdefault(key, []).append((path, dataset, frame))
        if copies:
            more = (f"; {counted(len(copies) - 1, 'more file')} {'copies' if len(copies) == 2 else 'copy'} others of "
                    "the series") if len(copies) > 1 else ""
            log.warning("%s: a copy of %s (same SOPInstanceUID, same bytes)%s; each image used once", copies[0][0],
                        copies[0][1], more)
        unoriented = _leave_out_unoriented(parts)
        # what differs between the parts (after the unoriented images left): the split's reason
        split_names = [name for i, name in enumerate(SPLIT_KEY_NAMES) if len({key[i] for key in parts}) > 1]
        split_reason = ", ".join(split_names) or None
        ordered = sorted(parts.items(), key=lambda item: min(str(p) for p, _, _ in item[1]))
        # a file left out of a part is that part's problem, not what its absence does to the others' geometry;
        # it belongs to the parts whose split key agrees with what its header does give (a broken localizer
        # does not block the series it was acquired with)
        left_keys = [(_file_key(dataset, orientations), why) for dataset, why in left_out]
        unoriented = [(_file_key(dataset, orientations), why, positions) for dataset, why, positions in unoriented]
        for file_key, why, *_ in left_keys + unoriented:
            if parts and not any(_same_part(file_key, key) for key in parts):
                log.warning("%s; it belongs to no usable part of its series and is left out", why)
        placed = _place_unoriented(unoriented, parts)
        for index, (key, items) in enumerate(ordered):
            found = problems + [why for file_key, why in left_keys if _same_part(file_key, key)]
            candidate = _candidate(uid, items, index + 1 if len(ordered) > 1 else None, split_reason,
                                   _first_of(found))
            _judge_unoriented(candidate, *placed[key])
            if candidate.part is not None:
                candidate.split_values = _split_values(key, split_names)
            candidates.append(candidate)
        if not parts:
            _, first = members[0]
            candidate = SeriesCandidate(uid=uid, number=_int(first.get("SeriesNumber")), part=None,
                                        description=str(first.get("SeriesDescription", "")),
                                        modality=str(first.get("Modality", "")), frames=[],
                                        unusable_files=len(members),
                                        problem=_first_of(problems + [why for _, why in left_out]) or "no images")
            candidates.append(candidate)
    candidates.sort(key=lambda c: (c.number if c.number is not None else 1 << 30, c.uid, c.part or 0))
    uids_of_number: dict[int, set[str]] = {}
    for candidate in candidates:
        if candidate.number is not None:
            uids_of_number.setdefault(candidate.number, set()).add(candidate.uid)
    for index, candidate in enumerate(candidates, start=1):
        candidate.index = index
        candidate.number_shared = len(uids_of_number.get(candidate.number, ())) > 1
        if not candidate.uid:
            candidate.flags.append("no-series-uid")
    _mark_localizer_sets(candidates)
    return candidates


def _candidate(uid: str, items: list, part: int | None, split_reason: str | None,
               file_problem: str | None = None) -> SeriesCandidate:
    first = items[0][1]
    candidate = SeriesCandidate(
        uid=uid,
        number=_int(first.get("SeriesNumber")),
        part=part,
        description=str(first.get("SeriesDescription", "") or first.get("ProtocolName", "") or ""),
        modality=str(first.get("Modality", "")),
        frames=[frame for _, _, frame in items],
        datasets={path: dataset for path, dataset, _ in items},
        image_type=_image_type(first),
        split_reason=split_reason if part is not None else None,
    )
    candidate.localizer = "LOCALIZER" in candidate.image_type or bool(LOCALIZER_WORDS.search(candidate.description))
    if candidate.localizer:
        candidate.flags.append("localizer")
    if part is not None:
        # one word per reason: `inspect` joins the flags with commas ("split:orientation, image type" ran on)
        candidate.flags.append("split:" + "+".join(name.replace(" ", "-") for name in split_reason.split(", ")))
    candidate.problem = file_problem or _dataset_problem(candidate)
    if candidate.problem is None:
        try:
            candidate.geometry = series_geometry([frame.geometry for frame in candidate.frames])
            candidate.flags.extend(candidate.geometry.flags)
        except GeometryProblem as error:
            candidate.problem = str(error)
            if error.frames:
                candidate.problem += ": " + " and ".join(_frame_name(candidate.frames[i]) for i in error.frames)
            for word in ("missing slices", "uneven", "4D"):
                if word in str(error):
                    candidate.flags.append({"missing slices": "gaps", "uneven": "uneven", "4D": "4D"}[word])
    if not _is_hounsfield(candidate):
        candidate.flags.append("non-HU")
    if len({(frame.slope, frame.intercept) for frame in candidate.frames}) > 1:
        candidate.flags.append("per-slice-rescale")
    if any(str(d.get("PhotometricInterpretation", "")).strip().upper() == "MONOCHROME1"
           for d in candidate.datasets.values()):
        candidate.flags.append("monochrome1")  # read as stored, not inverted: said, never silent
    bits = {(str(d.get("BitsAllocated", "")), str(d.get("BitsStored", ""))) for d in candidate.datasets.values()}
    if len(bits) > len({allocated for allocated, _ in bits}):  # files of one BitsAllocated with other BitsStored
        candidate.flags.append("per-slice-bits")
    return candidate


# what every file of one series that states them must agree on: its coordinate system, its study and its kind.
# (Not BitsStored: some exports set it per slice to what that slice's values need, and each file is decoded by its
# own header.)
SERIES_CONSTANTS = ("FrameOfReferenceUID", "StudyInstanceUID", "Modality")


def _disagreement(candidate: SeriesCandidate) -> str | None:
    """Which of :data:`SERIES_CONSTANTS` the files of ``candidate`` do not agree on, naming the odd files."""
    from collections import Counter

    for keyword in SERIES_CONSTANTS:
        # a file without the attribute says nothing against the others (anonymisers drop some)
        values = {path: text for path, dataset in candidate.datasets.items()
                  if (text := str(dataset.get(keyword, "") or ""))}
        counts = Counter(values.values())
        if len(counts) < 2:
            continue
        common, count = counts.most_common(1)[0]
        odd = sorted(path for path, value in values.items() if value != common)
        more = f" and {len(odd) - 1} more" if len(odd) > 1 else ""
        return (f"its files disagree on {keyword} ({common} in {counted(count, 'file')}, {values[odd[0]]} in "
                f"{odd[0].name}{more}); they do not make one volume")
    return None


def _dataset_problem(candidate: SeriesCandidate) -> str | None:
    disagreement = _disagreement(candidate)
    if disagreement is not None:
        return disagreement
    for path, dataset in candidate.datasets.items():
        if "MOSAIC" in candidate.image_type or (0x0019, 0x100A) in dataset:
            return "Siemens mosaic (several slices tiled in each image): not supported, convert it with dcm2niix"
        if not any(k in dataset for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
            # (a file cut inside its header reads as a shorter header: where the cut lies cannot be told)
            return f"{path.name} has no pixel data (the file was cut short, or written without its pixels)"
        cut = _pixels_cut_short(path, dataset) or _encoding_unlike_syntax(path, dataset)
        if cut is not None:
            return cut
        try:
            samples = _count(dataset, "SamplesPerPixel", 1)
        except GeometryProblem as error:
            return f"{path.name}: {error}"
        if samples != 1:
            return _colour_problem(candidate, dataset)
    return None


def _colour_problem(candidate: SeriesCandidate, dataset: pydicom.Dataset) -> str:
    """A series with colour images: refused, naming the colour files when the series has grey-level ones too (a
    screenshot filed in the series): "colour images are not supported" alone left the user searching for them."""
    kind = str(dataset.get('PhotometricInterpretation'))
    colour = sorted(path for path, other in candidate.datasets.items()
                    if str(other.get("SamplesPerPixel", "") or "1").strip() != "1")
    grey = len(candidate.datasets) - len(colour)
    if not grey or not colour:
        return f"colour images ({kind}) are not supported"
    more = f" and {counted(len(colour) - 1, 'more file')}" if len(colour) > 1 else ""
    return (f"{colour[0].name}{more}: colour ({kind}) among {counted(grey, 'grey-level file')} of the series; colour "
            "images "
            f"are not supported (move {'it' if len(colour) == 1 else 'them'} out of the folder)")


def _is_hounsfield(candidate: SeriesCandidate) -> bool:
    if candidate.modality != "CT" or not candidate.datasets:
        return False
    dataset = next(iter(candidate.datasets.values()))
    rescale_type = str(dataset.get("RescaleType", "HU") or "HU").upper()
    if rescale_type != "HU":
        return False
    has_rescale = "RescaleIntercept" in dataset or "SharedFunctionalGroupsSequence" in dataset
    return has_rescale or _int(dataset.get("PixelRepresentation")) == 1


def _mark_localizer_sets(candidates: list[SeriesCandidate]) -> None:
    """A series split into three or more orientations of a few images each is a tri-planar localizer."""
    by_uid: dict[str, list[SeriesCandidate]] = {}
    for c in candidates:
        by_uid.setdefault(c.uid, []).append(c)
    for parts in by_uid.values():
        if len(parts) >= 3 and all(p.split_reason and "orientation" in p.split_reason for p in parts) \
                and all(len(p.frames) <= 5 for p in parts):
            for p in parts:
                if not p.localizer:
                    p.localizer = True
                    p.flags.append("localizer")


def _split_key(dataset: pydicom.Dataset, frame: DicomFrame, orientations: list[tuple[float, ...]]) -> tuple:
    """What splits a series: orientation (the first seen within the geometry's tolerance stands for all
    orientations near it, so values straddling a rounding boundary stay together), image type, echo, size."""
    geometry = frame.geometry
    return _key(dataset, geometry.orientation, (geometry.rows, geometry.columns), orientations, remember=True)


def _key(dataset: pydicom.Dataset, orientation, size, orientations: list[tuple[float, ...]], remember: bool) -> tuple:
    if orientation is not None:
        near = [o for o in orientations if max(abs(a - b) for a, b in zip(o, orientation)) <= ORIENTATION_ATOL]
        if near:
            orientation = near[0]
        elif remember:
            orientations.append(orientation)
    echo = dataset.get("EchoNumbers")
    return orientation, _image_type(dataset), str(echo) if echo is not None else None, size


def _file_key(dataset: pydicom.Dataset, orientations: list[tuple[float, ...]]) -> tuple:
    """The split key of a file whose geometry could not be read, as far as its header gives it (None where not)."""
    try:
        orientation = _floats(dataset.get("ImageOrientationPatient"), 6, "ImageOrientationPatient")
    except GeometryProblem:
        orientation = None
    size = (_int(dataset.get("Rows")), _int(dataset.get("Columns")))
    return _key(dataset, orientation, None if None in size else size, orientations, remember=False)


def _first_of(problems: list[str]) -> str | None:
    if not problems:
        return None
    return problems[0] + (f" (and {counted(len(problems) - 1, 'more file')})" if len(problems) > 1 else "")


def _leave_out_unoriented(parts: dict[tuple, list]) -> list[tuple]:
    """Take the images without ImageOrientationPatient out of a series whose other images have it, as (dataset,
    problem, positions of its frames): faulty files, not a part of their own (their absence was reported as
    missing slices in the rest, their own fault second). :func:`_place_unoriented` decides what they mean."""
    if all(key[0] is None for key in parts):
        return []
    named: dict[Path, tuple] = {}
    for key in [key for key in parts if key[0] is None]:
        for path, dataset, frame in parts.pop(key):
            entry = named.setdefault(path, (dataset, f"{path.name}: without ImageOrientationPatient (the series' "
                                                     "other images have it)", []))
            entry[2].append(frame.geometry.position)
    return list(named.values())


SPARE_ATOL_MM = 0.01  # an unoriented image this close to a slice of a part stands where that slice stands


def _place_unoriented(unoriented: list[tuple], parts: dict[tuple, list]) -> dict:
    """For each part key, ([spares], [problems]) among the images without orientation (file key, problem,
    positions) that may belong to it. An
    image standing where a slice of a part stands (a spare copy) is that part's spare only: left out with a
    warning. Any other (one a slice short at an end of the stack, or one of another acquisition) is the problem
    of every part it may belong to: a stack is not read one slice short without a word."""
    placed: dict[tuple, tuple[list, list]] = {key: ([], []) for key in parts}
    for file_key, why, positions in unoriented:
        candidates = [key for key in parts if _same_part(file_key, key)]
        home = [key for key in candidates
                if positions and all(p is not None and any(q is not None and max(abs(a - b) for a, b in zip(p, q))
                                                          <= SPARE_ATOL_MM
                                                          for q in (f.geometry.position for _, _, f in parts[key]))
                                     for p in positions)]
        if home:
            placed[home[0]][0].append(why)
        else:
            where = ("nor ImagePositionPatient" if not positions or any(p is None for p in positions)
                     else "and it stands on no slice of the stack")
            for key in candidates:
                placed[key][1].append(f"{why}, {where}")
    return placed


def _judge_unoriented(candidate: SeriesCandidate, spares: list[str], problems: list[str]) -> None:
    """Images without orientation placed with ``candidate`` (see :func:`_place_unoriented`): spares (each standing
    on one of its slices) are left out with a warning; problems make it unusable, named first."""
    if spares:
        log.warning("%s; left out of %s: it stands on a slice of it", _first_of(spares), candidate.label())
    if not problems:
        return
    without = f"; without them: {candidate.problem}" if candidate.problem else ""
    candidate.problem = _first_of(problems) + without
    if candidate.geometry is not None:
        candidate.flags = [f for f in candidate.flags if f not in candidate.geometry.flags]
    candidate.geometry = None
    # what their absence does to the geometry is not the series' own flag (as for any file left out)
    candidate.flags = [flag for flag in candidate.flags if flag not in ("gaps", "uneven", "4D")]


def _same_part(file_key: tuple, part_key: tuple) -> bool:
    return all(mine is None or mine == theirs for mine, theirs in zip(file_key, part_key))


