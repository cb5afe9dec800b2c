"""The source images' headers of a DICOM SEG, read and made fit for one before any inference is spent: the series
refused where no SEG can be made from it, the values highdicom copies into the SEG made valid (type 2 attributes,
character set, PatientSex, dates and times), one shared orientation, a slice thickness, the UIDs all files share."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from medseg.errors import DicomError, InputError
from medseg.io.dicom_messages import FileMessages
from medseg.io.dicom_text import TEXT_VRS, UTF8, charset_terms, read_undeclared_text, undeclared_text_note
from medseg.numbers import counted
from medseg.volume import Volume

__all__ = ["check_seg_source", "seg_sources"]

log = logging.getLogger(__name__)


def seg_sources(volume: Volume) -> dict[Path, object]:
    """The source images' headers, made fit for a SEG, checked before any inference is spent.

    Refuses (one line naming the series) what a SEG cannot be made from: no FrameOfReferenceUID, no
    SeriesInstanceUID (the SEG's reference to the series must name it), a series split across several multi-frame
    files, names in ISO 2022 IR 58 (which pydicom garbles). Type 2 patient and study attributes a source lacks are
    written empty, an invalid SpecificCharacterSet or PatientSex is dropped or normalised, a source without a
    StudyInstanceUID (anonymised) gives a warning (the SEG gets a study of its own), and so does one without a
    SliceThickness (the SEG states the slice spacing).
    """
    source = volume.dicom
    if source is None:
        raise InputError(f"{volume.source}: DICOM SEG output needs a DICOM series input, this is not one")
    files = list(dict.fromkeys(source.paths))
    _check_split(volume.source, source)
    kept = source.headers or {}  # as the series' reading read them (once, with the check before the model loads)
    with FileMessages(Path(volume.source), report=False):  # reported when the series was read
        datasets = {p: _source_header(p, kept.get(p)) for p in files}
        _check_headers(volume.source, datasets)
        reads = [read_undeclared_text(d) for d in datasets.values()]  # each file, before its values are read
        # Latin-1: pydicom's reading, which the series' reading told of
        read = next((r for r in reads if r is not None and r.encoding == UTF8), None)
        fits = [_fit_for_seg(d) for d in datasets.values()]
    if read:
        log.warning("%s: %s, for the DICOM SEG", volume.source, undeclared_text_note([(read.keyword, read.text)], UTF8))
    dropped = sorted({charset for charset, _ in fits if charset})
    if dropped:
        log.warning("%s: SpecificCharacterSet %s is not a DICOM term; the SEG is written in the default character "
                    "set, or in UTF-8 (ISO_IR 192) where its text is not ASCII", volume.source, ", ".join(dropped))
    blanked = sorted({value for _, values in fits for value in values})
    if blanked:
        log.warning("%s: %s not a valid DICOM date or time; written empty in the SEG", volume.source,
                    ", ".join(blanked) + (" is" if len(blanked) == 1 else " are"))
    for keyword in ("FrameOfReferenceUID", "StudyInstanceUID", "SeriesInstanceUID", "Modality"):
        # a value some files lack (the series reader accepts that; the files that state one agree): given to all,
        # as highdicom wants it in every source image
        stated = {str(d.get(keyword, "") or "") for d in datasets.values()} - {""}
        if len(stated) == 1:
            value = stated.pop()
            for dataset in datasets.values():
                if not str(dataset.get(keyword, "") or ""):
                    setattr(dataset, keyword, value)
    _share_orientation(list(datasets.values()), next((f for f in source.frames if f is not None), 0))
    thin = [d for d in map(_thickness_holder, datasets.values())
            if d is not None and not str(d.get("SliceThickness", "") or "").strip()]
    if thin:
        # DICOM's Type 2 allows it absent or empty; highdicom wants it: absent, the SEG was refused after the
        # inference; empty, it was written without one, and highdicom (medseg too) could not read that SEG back
        step = float(np.linalg.norm(np.asarray(volume.affine)[:3, 2]))
        for dataset in thin:
            dataset.SliceThickness = f"{step:.6g}"
        log.warning("%s: %d of the series' %s %s no SliceThickness; the DICOM SEG states the slice spacing, %.6g mm, "
                    "as its thickness", volume.source, len(thin), counted(len(datasets), "image"),
                    "states" if len(thin) == 1 else "state", step)
    first = datasets[files[0]]  # a value only some files lacked was given to all above: first lacks it, all do
    if not str(first.get("StudyInstanceUID", "") or ""):
        import highdicom as hd

        study = str(hd.UID())
        for dataset in datasets.values():
            dataset.StudyInstanceUID = study  # required in the SEG: a new study, since the source names none
        log.warning("%s: the source has no StudyInstanceUID (anonymised?): its DICOM SEG cannot be linked to the "
                    "series' study in an archive (the SEG gets a new StudyInstanceUID)", volume.source)
    return datasets


def _check_split(name, source) -> None:
    """Refuse a series split over several multi-frame files (``source``: a volume's or grid's ``dicom``)."""
    if any(frame is not None for frame in source.frames) and len(set(source.paths)) != 1:
        raise DicomError(f"{name}: DICOM SEG output from a series split over several multi-frame files "
                         "is not supported; write NIfTI instead")


def _check_headers(name, datasets: dict) -> None:
    """Refuse, from the source files' headers (``datasets``, by path in slice order), a series no DICOM SEG can be
    made from: names in ISO 2022 IR 58, which pydicom garbles; no FrameOfReferenceUID or no SeriesInstanceUID in any
    file (a value only some files state is given to all, :func:`seg_sources`)."""
    for path, dataset in datasets.items():
        copied = _seg_texts(_copied_to_seg(dataset)) if "ISO 2022 IR 58" in charset_terms(dataset) else []
        if not all(text.isascii() for text in copied):
            raise DicomError(f"{path}: SpecificCharacterSet ISO 2022 IR 58 (simplified Chinese with code "
                             "extensions) is read and written wrongly by pydicom, so its names would be garbled "
                             "in a DICOM SEG; write NIfTI instead")
    files = list(datasets)

    def lacking(keyword: str) -> str | None:
        """Where no file states ``keyword`` (nor one value that all are given), what the line says."""
        stated = {str(d.get(keyword, "") or "") for d in datasets.values()} - {""}
        if len(stated) == 1 or str(datasets[files[0]].get(keyword, "") or ""):
            return None
        return (f"{files[0]}: no {keyword}" if len(files) == 1
                else f"{name}: no {keyword} in any of its {len(files)} files")

    missing = lacking("FrameOfReferenceUID")
    if missing:
        raise DicomError(f"{missing}, so a DICOM SEG cannot be placed on this series; write NIfTI instead")
    missing = lacking("SeriesInstanceUID")
    if missing:  # the SEG's reference to its series must name it
        raise DicomError(f"{missing} (anonymised?), so a DICOM SEG cannot name the series it segments (DICOM "
                         "requires it); write NIfTI instead")


def check_seg_source(folder: Path | str, series: str | None = None) -> None:
    """Refuse, from the headers alone and before any model is loaded, the series under ``folder`` (``series`` chosen
    as reading it chooses) that no DICOM SEG can be made from, as :func:`seg_sources` refuses it once it is read: the
    same error, naming the same file or folder. What the series' reading and :func:`seg_sources` warn of is left to
    them (told once, as the input is read); its pixels are not decoded, and its headers are read once: the folder's
    scan is kept (:func:`~medseg.io.dicom_series.held_scan`) for the reading that follows, unless the series is
    refused. A folder whose scan could not be kept (more files than
    :data:`~medseg.io.dicom_series._HELD_FILES_MAX`, with the scans kept already) is not checked here: its reading
    checks it before the inference, and a scan made now would read every header twice (66 s more for 25,000 small
    files on a busy 2-core machine, where the reading's scan took 73 s)."""
    from medseg.io.dicom import read_dicom_grid
    from medseg.io.dicom_series import _fits_held, held_scan, release_scan

    if not _fits_held(Path(folder)):  # left to its reading, as medseg.batch_outputs.check_folder_input leaves it
        return
    # the headers read once: the scan is kept for the series' reading, which tells what scanning it warned of
    scan = held_scan(folder)
    medseg_log = logging.getLogger("medseg")
    level = medseg_log.level
    medseg_log.setLevel(logging.ERROR)  # the warnings of this look ahead are told when the series is read
    try:
        grid = read_dicom_grid(folder, series, warn_skipped=False, scan=scan)
        _check_split(grid.source, grid.dicom)
        _check_headers(grid.source, {path: grid.candidate.datasets[path] for path in dict.fromkeys(grid.dicom.paths)})
    except BaseException:
        release_scan(folder)  # refused: never read
        raise
    finally:
        medseg_log.setLevel(level)


def _thickness_holder(dataset):
    """Where a source image states its SliceThickness: an enhanced multi-frame image in its shared pixel measures
    (those highdicom gives the SEG; None where it states none), another in itself."""
    if "PerFrameFunctionalGroupsSequence" not in dataset:
        return dataset
    shared = dataset.get("SharedFunctionalGroupsSequence")
    measures = shared[0].get("PixelMeasuresSequence") if shared else None
    return measures[0] if measures else None


def _share_orientation(datasets: list, frame: int = 0) -> None:
    """Give the source headers the one orientation highdicom requires of a SEG's sources: single-frame images whose
    ImageOrientationPatient differ by rounding noise (the series reader took them as one orientation, within 1e-4)
    all get the first image's; a multi-frame image that states its orientation or pixel measures per frame (as
    Philips' enhanced MR does) gets those of ``frame`` (0-based: the first of the series' frames) as the shared ones.
    highdicom refused both after the inference ("Source images must have a shared orientation", "'Dataset' object
    has no attribute 'PixelMeasuresSequence'"); each frame keeps its own position."""
    import copy

    stated = [d for d in datasets if d.get("ImageOrientationPatient") is not None]
    if len(stated) > 1:
        orientation = [float(v) for v in stated[0].ImageOrientationPatient]
        for dataset in stated[1:]:
            if [float(v) for v in dataset.ImageOrientationPatient] != orientation:
                dataset.ImageOrientationPatient = orientation
    for dataset in datasets:
        shared = dataset.get("SharedFunctionalGroupsSequence")
        per_frame = dataset.get("PerFrameFunctionalGroupsSequence")
        for keyword in ("PlaneOrientationSequence", "PixelMeasuresSequence"):
            if not shared or not per_frame or shared[0].get(keyword):
                continue
            own = per_frame[min(frame, len(per_frame) - 1)].get(keyword)
            if own:
                setattr(shared[0], keyword, copy.deepcopy(own))
                for groups in per_frame:
                    if keyword in groups:
                        delattr(groups, keyword)


def _decode_texts(dataset) -> None:
    """Read every value of ``dataset`` (its sequences' items too) in the character set it was read with: the SEG
    states a character set of its own, and a value still held as bytes would be read in that one (a Korean name
    read as Latin-1)."""
    for _ in dataset.iterall():
        pass


def _copied_to_seg(dataset):
    """The attributes of ``dataset`` that highdicom copies into a SEG (its patient, study and specimen modules), as
    a dataset; all of ``dataset`` where highdicom cannot tell them (a SOP class it does not know)."""
    import highdicom as hd
    from pydicom.dataset import Dataset

    class _Copied(hd.SOPClass):
        def __init__(self):  # only the copying of a SOP instance, none of its attributes
            Dataset.__init__(self)

    copied = _Copied()
    try:
        copied.copy_patient_and_study_information(dataset)
        copied.copy_specimen_information(dataset)
    except (KeyError, ValueError, AttributeError):
        return dataset
    return copied


def _seg_texts(seg) -> Iterator[str]:
    """The values of the SEG's text elements (its sequences' too) as text: those its character set must hold."""
    for element in seg.iterall():
        if element.VR not in TEXT_VRS or element.value is None:
            continue
        several = element.VM > 1 and not isinstance(element.value, (str, bytes))
        values = list(element.value) if several else [element.value]
        for value in values:
            if value is not None and not isinstance(value, bytes):
                yield str(value)


def _source_header(path: Path, read=None):
    """A source image's header (``read``, where the series' reading kept it; else read here); SOP class / instance
    UIDs left empty by anonymisers come from the file meta."""
    import pydicom

    dataset = pydicom.dcmread(path, stop_before_pixels=True) if read is None else read
    meta = getattr(dataset, "file_meta", None)
    for keyword, meta_keyword in (("SOPClassUID", "MediaStorageSOPClassUID"),
                                  ("SOPInstanceUID", "MediaStorageSOPInstanceUID")):
        if not str(dataset.get(keyword, "") or "") and meta is not None and meta.get(meta_keyword):
            setattr(dataset, keyword, meta.get(meta_keyword))
    return dataset


# DICOM's own forms (PS3.5 table 6.2-1); pydicom also accepts the ACR-NEMA 2024.01.01 and 12:30:00, which a SEG
# must not carry
_DATE_TIME_FORMS = {
    "DA": re.compile(r"\d{8}"),
    "TM": re.compile(r"\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?"),
    "DT": re.compile(r"\d{4}(\d{2}(\d{2}(\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?)?)?)?([+-]\d{4})?"),
}


def _vm(tag) -> str | None:
    from pydicom.datadict import dictionary_VM

    try:
        return dictionary_VM(tag)
    except KeyError:  # a private or unknown element
        return None


_PATIENT_STUDY_TYPE2 = ("PatientID", "PatientName", "PatientBirthDate", "PatientSex", "AccessionNumber", "StudyID",
                        "StudyDate", "StudyTime", "ReferringPhysicianName")


# DICOM's character sets (PS3.3 C.12.1.1.2, tables C.12-2 to C.12-5) that pydicom reads and writes (not ISO_IR 203,
# which it does not know; ISO 2022 IR 58 only where the text is ASCII: see seg_sources): highdicom's own list lacks
# Korean (ISO 2022 IR 149; it names ISO 2022 IR 159 Korean)
_SINGLE_BYTE_SETS = {"100", "101", "109", "110", "144", "127", "126", "138", "148", "13", "166"}
_CHARSETS = {f"ISO_IR {n}" for n in _SINGLE_BYTE_SETS} | {"ISO_IR 192", "GB18030", "GBK"}
_G0_EXTENSIONS = {f"ISO 2022 IR {n}" for n in _SINGLE_BYTE_SETS | {"6"}}  # single-byte, with code extensions
_MULTI_BYTE_EXTENSIONS = {"ISO 2022 IR 87", "ISO 2022 IR 159", "ISO 2022 IR 149", "ISO 2022 IR 58"}


def _dicom_charset(terms: list[str]) -> list[str] | None:
    """A SpecificCharacterSet's terms as the SEG states them, or None where they are no DICOM character set. Code
    extensions after an empty first value (`\\ISO 2022 IR 87`, the usual Japanese and Korean form) start from the
    default repertoire, stated by its term (PS3.3 C.12.1.1.2)."""
    if len(terms) == 1:
        return terms if terms[0] in _CHARSETS | _G0_EXTENSIONS else None
    first = terms[0] or "ISO 2022 IR 6"
    if first in _G0_EXTENSIONS and all(t in _G0_EXTENSIONS | _MULTI_BYTE_EXTENSIONS for t in terms[1:]):
        return [first, *terms[1:]]
    return None


def _fit_for_seg(dataset) -> tuple[str | None, list[str]]:
    """Make the values highdicom copies into the SEG valid: absent type 2 attributes empty, a character set that
    is not a DICOM one dropped (the default repertoire, or UTF-8 where the SEG's text needs it: see
    :func:`~medseg.io.seg_writing._set_charset`), PatientSex as M, F, O or empty, a date or time that is
    not one in DICOM's form (``2024-01-01`` for a DA) empty. Returns the dropped character set and the emptied
    values (``StudyDate '2024-01-01'``), for one warning per series; before, highdicom refused the whole SEG
    without naming the attribute."""
    for keyword in _PATIENT_STUDY_TYPE2:
        if keyword not in dataset:
            setattr(dataset, keyword, "")
    dropped = None
    if "SpecificCharacterSet" in dataset:
        terms = charset_terms(dataset)
        fit = _dicom_charset(terms)
        if fit is None:
            dropped = "\\".join(terms) or None
            _decode_texts(dataset)  # in the set pydicom took the term for, before it is gone
            del dataset.SpecificCharacterSet
        elif fit != terms:
            dataset.SpecificCharacterSet = fit
    sex = str(dataset.get("PatientSex", "") or "").strip().upper()
    dataset.PatientSex = sex[:1] if sex[:1] in ("M", "F", "O") else ""
    blanked = []
    for element in dataset:
        form = _DATE_TIME_FORMS.get(element.VR)
        if form is None or element.value is None:
            continue
        values = [element.value] if isinstance(element.value, (str, bytes)) else list(element.value)
        texts = [v.decode("ascii", "replace") if isinstance(v, bytes) else str(v) for v in values]
        single = len(texts) > 1 and _vm(element.tag) == "1"  # several dates where DICOM allows one
        if single or any(text.strip() and not form.fullmatch(text.strip()) for text in texts):
            shown = "\\".join(texts)  # as DICOM writes several values
            blanked.append(f"{element.keyword or element.tag} '{shown}'")
            element.value = ""
    return dropped, blanked
