"""A DICOMDIR: the index a CD, DVD or USB export of DICOM holds at its root, naming the files it was written with.

The reader does not need it (it reads every file under a folder), but it tells what the export held: an index copied
without its images (only the DICOMDIR file), or an export copied in part (a series missing some of its slices, which
would be read without them), is told from it, where the folder alone would be "no DICOM images" or a thinner volume.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from medseg.numbers import counted

__all__ = ["DicomdirIndex", "read_dicomdir", "is_dicomdir", "dicomdir_file_text", "index_key", "missing_text",
           "none_present_text"]

log = logging.getLogger(__name__)

DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"  # Media Storage Directory Storage
SHOWN_MISSING = 3
# an ISO 9660 file name's version (IM000001;1) and the dot of a name without an extension (IM000001.), which a disc
# read without its Rock Ridge / Joliet names (mount -o norock,map=off, some ripping tools) shows, and no DICOMDIR holds
_ISO_VERSION = re.compile(r"\.?(;\d*)?$")


def index_key(relative: str) -> str:
    """A file's path relative to a DICOMDIR's folder (``/`` between its parts) as the index's file IDs are compared
    with it: in lower case (a CD's names are upper case, some systems copy them in lower case), each part without an
    ISO 9660 version (``;1``) or a trailing dot."""
    return "/".join(_ISO_VERSION.sub("", part) for part in relative.lower().split("/"))


def is_dicomdir(dataset) -> bool:
    """Whether a dataset read from a file is a DICOMDIR (its directory records, or its media storage class)."""
    meta = getattr(dataset, "file_meta", None)
    media = str(meta.get("MediaStorageSOPClassUID", "")) if meta is not None else ""
    return media == DICOMDIR_SOP_CLASS or "DirectoryRecordSequence" in dataset


def dicomdir_file_text(path: Path | str) -> str | None:
    """The message for a DICOMDIR file given where an image, a series' folder or a SEG goes (named as any DICOM file
    was: "the folder of its series", or "truncated" for want of a SOPClassUID, which a DICOMDIR has not); None for
    any other file."""
    import pydicom

    try:
        header = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["Modality"])
    except Exception:  # noqa: BLE001 - not DICOM, or damaged: the caller's own words
        return None
    if not is_dicomdir(header):
        return None
    return (f"{path}: a DICOMDIR, the index of a DICOM export (CD, DVD or USB), not an image; give its folder "
            f"({Path(path).parent}), which holds the images")


@dataclass
class DicomdirIndex:
    """The files a DICOMDIR references (relative to its folder, as written there), by the series they belong to
    (``""`` where no series record holds them), and which of them are not here."""

    path: Path
    images: int = 0  # IMAGE records (the rest: reports, structure sets, presentation states)
    files: int = 0  # every record naming a file
    by_series: dict[str, list[PurePosixPath]] = field(default_factory=dict)
    missing: dict[str, list[PurePosixPath]] = field(default_factory=dict)  # by series, those not found
    # what the index's record of each file not found says of the image (record_fields): which part of a series split
    # in parts (by orientation, size, image type, echo) it belonged to may be told from it
    described: dict[PurePosixPath, dict] = field(default_factory=dict)

    @property
    def missing_count(self) -> int:
        return sum(len(v) for v in self.missing.values())

    @property
    def none_present(self) -> bool:
        return self.files > 0 and self.missing_count == self.files


def read_dicomdir(path: Path | str, present: set[str] | None = None) -> DicomdirIndex | None:
    """The files the DICOMDIR ``path`` references, and which of them are not under its folder (``present``: the
    relative paths, as :func:`index_key` gives them, of the files there, listed anew where None). File names are
    compared as :func:`index_key` gives them: ignoring case and an ISO 9660 version (``;1``). None where it cannot be
    read as a DICOMDIR: it tells nothing then, and the folder is read as it is."""
    import pydicom

    path = Path(path)
    try:
        dataset = pydicom.dcmread(path, force=True)
        records = list(dataset.get("DirectoryRecordSequence") or [])
    except Exception as error:  # noqa: BLE001 - an index that does not read tells nothing; the images are read anyway
        log.debug("%s: not read as a DICOMDIR (%s)", path, error)
        return None
    if not records:
        return None
    series = _series_of(records)
    index = DicomdirIndex(path)
    records_of: dict[PurePosixPath, object] = {}  # read for what they say of an image only where it is not here
    for record, uid in zip(records, series):
        parts = record.get("ReferencedFileID")
        if parts is None or parts == "":
            continue
        parts = [parts] if isinstance(parts, str) else list(parts)
        relative = PurePosixPath(*[str(p).strip() for p in parts if str(p).strip()])
        if not relative.parts:
            continue
        index.files += 1
        if str(record.get("DirectoryRecordType", "")).strip().upper() == "IMAGE":
            index.images += 1
        index.by_series.setdefault(uid, []).append(relative)
        records_of[relative] = record
    if not index.files:
        return index
    if present is None:
        present = _present(path.parent)
    for uid, files in index.by_series.items():
        gone = [p for p in files if index_key(p.as_posix()) not in present]
        if gone:
            index.missing[uid] = gone
            index.described.update((p, record_fields(records_of[p])) for p in gone)
    return index


def record_fields(record) -> dict:
    """What a directory record says of its image, where it says it (an IMAGE record must give only its
    InstanceNumber; an exporter may add the image's own attributes): ``instance`` (InstanceNumber), ``orientation``
    (ImageOrientationPatient, 6 finite floats), ``position`` (ImagePositionPatient, 3 finite floats), ``size`` (Rows,
    Columns), ``image_type`` (ImageType, upper case), ``echo`` (EchoNumbers, as text). A value that does not read
    (pydicom's error for a malformed element, a NaN) is left out: the record then tells less of its part."""
    import math

    found: dict = {}

    def value(keyword: str):
        try:
            return record.get(keyword)
        except Exception:  # noqa: BLE001 - a malformed element (a US of 3 bytes: BytesLengthException) says nothing
            return None

    def floats(keyword: str, count: int):
        try:
            values = [float(v) for v in value(keyword)]
        except (TypeError, ValueError):
            return None
        return tuple(values) if len(values) == count and all(math.isfinite(v) for v in values) else None

    try:
        found["instance"] = int(str(value("InstanceNumber")).strip())
    except (TypeError, ValueError):
        pass
    for name, keyword, count in (("orientation", "ImageOrientationPatient", 6),
                                 ("position", "ImagePositionPatient", 3)):
        read = floats(keyword, count)
        if read is not None:
            found[name] = read
    try:
        rows, columns = int(value("Rows")), int(value("Columns"))
        if rows > 0 and columns > 0:
            found["size"] = (rows, columns)
    except (TypeError, ValueError):
        pass
    image_type = value("ImageType")
    if image_type:
        values = [image_type] if isinstance(image_type, (str, bytes)) else list(image_type)
        found["image_type"] = tuple(str(v).upper() for v in values)
    echo = value("EchoNumbers")
    if echo not in (None, ""):
        found["echo"] = str(echo)
    return found


def _present(folder: Path) -> set[str]:
    import os

    found = set()
    for root, _, names in os.walk(folder):
        for name in names:
            found.add(index_key(Path(root, name).relative_to(folder).as_posix()))
    return found


def _series_of(records) -> list[str]:
    """The SeriesInstanceUID of the series record above each record (``""`` where none is): by the records' offsets
    (each record's first child, then its siblings), as the standard links them; by their order where the offsets
    do not resolve (a DICOMDIR written without them lists each series' images after it)."""
    at = {getattr(r, "seq_item_tell", None): r for r in records}
    parent: dict[int, object] = {}
    for record in records:
        child = at.get(int(record.get("OffsetOfReferencedLowerLevelDirectoryEntity", 0) or 0) or None)
        seen = 0
        while child is not None and id(child) not in parent and seen < len(records):
            parent[id(child)] = record
            seen += 1
            child = at.get(int(child.get("OffsetOfTheNextDirectoryRecord", 0) or 0) or None)
    linked = None not in at and len(parent) > 0
    uids, current = [], ""
    for record in records:
        kind = str(record.get("DirectoryRecordType", "")).strip().upper()
        if kind == "SERIES":
            current = str(record.get("SeriesInstanceUID", "") or "")
        if kind in ("PATIENT", "STUDY"):
            current = ""
        if linked:
            uid, node = "", parent.get(id(record))
            while node is not None:
                if str(node.get("DirectoryRecordType", "")).strip().upper() == "SERIES":
                    uid = str(node.get("SeriesInstanceUID", "") or "")
                    break
                node = parent.get(id(node))
            uids.append(uid)
        else:
            uids.append(current)
    return uids


def _what(index: DicomdirIndex) -> str:
    others = index.files - index.images
    text = counted(index.images, "image") if index.images else counted(index.files, "file")
    return text + (f" and {counted(others, 'other file')}" if index.images and others else "")


def none_present_text(folder: Path, index: DicomdirIndex) -> str:
    """The message for a folder holding a DICOMDIR but none of the files it references."""
    where = "" if index.path.parent == folder else f" ({index.path})"
    return (f"{folder}: its DICOMDIR{where} references {_what(index)}, and none of them is here (the first: "
            f"{_first(index)}): the index was copied without the images; copy the export's whole folder, the DICOMDIR "
            "with the folders beside it, and give that folder")


def _first(index: DicomdirIndex) -> str:
    return str(next(p for files in index.by_series.values() for p in files))


def missing_text(files: list[PurePosixPath], total: int, whose: str = "") -> str:
    """The problem of a series some of whose images its DICOMDIR references are not here; ``whose``, said after the
    files, tells which part of a series read in parts they are of."""
    names = ", ".join(str(p) for p in files[:SHOWN_MISSING]) + (", …" if len(files) > SHOWN_MISSING else "")
    are = "is" if len(files) == 1 else "are"
    return (f"{len(files)} of the {total} files its DICOMDIR references {are} not here ({names}){whose}: the export "
            f"was copied in part, and the series would be read without {'it' if len(files) == 1 else 'them'}; copy "
            "it again")
