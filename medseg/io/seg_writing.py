"""DICOM SEG output for DICOM inputs, written with highdicom and referencing the source series.

Slice k of the converted volume came from ``volume.dicom.paths[k]`` (frame ``volume.dicom.frames[k]``), and
its voxels ``array[:, :, k]`` are that image's pixels transposed (i = column, j = row). The SEG frame for a
source image is therefore ``labels[:, :, k].T``; highdicom copies the source image's position and
orientation into the frame, so the mask lands on the slice it was computed on, unmirrored.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np

from medseg.checkout import DIRTY
from medseg.errors import DicomError
from medseg.io.dicom_text import charset_terms
from medseg.io.seg_labels import _segment_label, check_segment_labels
from medseg.io.seg_sources import _decode_texts, _seg_texts, seg_sources
from medseg.numbers import counted
from medseg.volume import Volume

__all__ = ["software_versions", "write_dicom_seg"]

_LO_CHARACTERS = 64  # a value of SoftwareVersions (VR LO)

log = logging.getLogger(__name__)


def write_dicom_seg(labels: np.ndarray, volume: Volume, path: Path | str, label_names: dict[int, str],
                    algorithm: str = "medseg", algorithm_version: str = "0",
                    sources: dict[Path, object] | None = None, label_codes: dict[int, dict] | None = None,
                    algorithm_parameters: dict[str, str] | None = None,
                    versions: dict[str, str] | None = None) -> dict:
    """Write ``labels`` (on ``volume``'s grid) as a binary DICOM SEG, one segment per non-zero label; return its
    identifiers (SOP instance, series, study UIDs and series number) for the sidecar.

    ``label_codes``: label value → the coded concepts of its segment (``category``, ``type``, optional
    ``modifier``; each ``{"scheme", "value", "meaning"}``), as a model package's ``label_codes`` holds them; a label
    without codes is coded as SCT Tissue (category and type), which says nothing of what it is.
    ``algorithm_parameters``: written as the segments' AlgorithmParameters (``key=value`` joined by ``,``).
    ``versions``: the sidecar's ``versions`` record, written as SoftwareVersions (:func:`software_versions`); medseg's
    own version alone when not given.

    ``sources`` are the headers from :func:`seg_sources` (read here when not given). Not atomic on its own:
    use :func:`medseg.io.atomic.atomic_paths` around it.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes

    import medseg

    datasets = seg_sources(volume) if sources is None else sources
    source = volume.dicom
    if tuple(labels.shape) != volume.shape:
        raise ValueError(f"label shape {labels.shape} differs from the volume's {volume.shape}")  # a caller's slip
    values = sorted(int(v) for v in label_names if int(v) != 0)
    # the frames in their written type from the start: a uint16 stack of per-slice uint16 planes, then cast, held
    # 5 bytes per voxel at once (0.8 GB for a 512×512×600 series) where the SEG's frames take one
    dtype = np.uint8 if len(values) < 256 else np.uint16
    segment_of = np.zeros(max(values + [int(labels.max())]) + 1, dtype=dtype)
    for number, value in enumerate(values, start=1):
        segment_of[value] = number
    unknown = set(np.unique(labels).tolist()) - set(values) - {0}
    if unknown:
        raise ValueError(f"labels {sorted(unknown)} have no name in the model package")  # a caller's slip
    check_segment_labels(label_names, volume.source)

    files = list(datasets)
    multi_frame = any(frame is not None for frame in source.frames)
    columns, rows, slices = volume.shape
    if multi_frame:
        count = int(datasets[files[0]].NumberOfFrames)
        pixel_array = np.zeros((count, rows, columns), dtype=dtype)
        for k, frame in enumerate(source.frames):
            pixel_array[frame] = segment_of[labels[:, :, k].T]
        source_images = [datasets[files[0]]]
    else:
        pixel_array = np.empty((slices, rows, columns), dtype=dtype)
        for k in range(slices):
            pixel_array[k] = segment_of[labels[:, :, k].T]
        source_images = [datasets[p] for p in source.paths]

    identification = hd.AlgorithmIdentificationSequence(
        name=algorithm, family=codes.cid7162.ArtificialIntelligence, version=str(algorithm_version),
        parameters=algorithm_parameters or None,
    )
    coded = {int(value): codes_ for value, codes_ in (label_codes or {}).items()}
    descriptions = []
    for number, value in enumerate(values, start=1):
        concepts = coded.get(value, {})
        description = hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=_segment_label(label_names[value]),
            segmented_property_category=_concept(concepts["category"]) if concepts else codes.SCT.Tissue,
            segmented_property_type=_concept(concepts["type"]) if concepts else codes.SCT.Tissue,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=identification,
        )
        if concepts.get("modifier"):  # e.g. Hippocampus + Anterior: highdicom takes no modifier of its own; the
            # standard nests it in the type's code item (where DCMTK, OHIF and highdicom's own reader look for it)
            description.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [
                _concept(concepts["modifier"])]
        descriptions.append(description)
    _decode_texts(source_images[0])  # the one whose patient and study values highdicom copies
    terms = charset_terms(source_images[0])
    first = source_images[0]
    number = _seg_series_number(first.get("SeriesNumber"))
    try:
        with warnings.catch_warnings(record=True) as caught:  # highdicom's doubts about source values: logged
            warnings.simplefilter("always")
            seg = _segmentation(hd, source_images, pixel_array, descriptions, number, algorithm,
                                software_versions(versions or {"medseg": medseg.__version__}))
        for warning in caught:
            log.info("%s: %s", volume.source, " ".join(str(warning.message).split()))
    except (ValueError, TypeError, AttributeError, KeyError) as error:
        raise DicomError(f"{volume.source}: cannot make a DICOM SEG from this series "
                         f"({' '.join(str(error).split()) or type(error).__name__})") from error
    _date(seg, first, volume.source)
    if "ContentCreatorName" not in seg:  # Type 2 (Content Identification): highdicom leaves it out without a name;
        seg.ContentCreatorName = ""  # an automatic segmentation has no person to name, so it is there empty
    _set_charset(seg, terms, volume.source)
    _round_spacing(seg)
    seg.save_as(str(path))
    log.info("%s: DICOM SEG made with %s over %s", volume.source, counted(len(values), "segment"),
             counted(len(source_images), "source image"))  # (path is still the temporary name here)
    return {"sop_instance_uid": str(seg.SOPInstanceUID), "series_instance_uid": str(seg.SeriesInstanceUID),
            "study_instance_uid": str(seg.StudyInstanceUID), "series_number": int(seg.SeriesNumber),
            "segments": len(values)}


def _date(seg, source, where: str) -> None:
    """Date ``seg`` with one instant, now, in Series (General Series' SeriesDate / SeriesTime, Type 3, which highdicom
    does not write: an archive's or a viewer's series list showed the SEG without a date), Content and
    InstanceCreation date and time, which highdicom wrote from separate clock readings. DICOM dates and times are
    local unless TimezoneOffsetFromUTC says otherwise, for every date and time of the instance: where ``source``
    states an offset, the SEG is dated in it and states it (its study's dates, copied from the source, are in it;
    dated in this machine's time zone, a SEG made on a UTC server of a +0900 series read as made 9 hours early,
    before its source); else in this machine's local time, without an offset."""
    import datetime as dt
    import re

    now = dt.datetime.now(dt.UTC)
    offset = str(source.get("TimezoneOffsetFromUTC", "") or "").strip()
    found = re.fullmatch(r"([+-])(\d\d)(\d\d)", offset)
    minutes = (-1 if found[1] == "-" else 1) * (60 * int(found[2]) + int(found[3])) if found else None
    # within DICOM's range for it, -1200 to +1400: -1400 or +1430 names no time zone
    if minutes is not None and int(found[3]) < 60 and -12 * 60 <= minutes <= 14 * 60:
        local = now.astimezone(dt.timezone(dt.timedelta(minutes=minutes)))
        seg.TimezoneOffsetFromUTC = offset
    else:
        if offset:
            log.info("%s: TimezoneOffsetFromUTC %r is not +HHMM or -HHMM within -1200 to +1400: the DICOM SEG is "
                     "dated in local time", where, offset)
        local = now.astimezone()
    date, time_ = local.strftime("%Y%m%d"), local.strftime("%H%M%S.%f")
    for kind in ("Series", "Content", "InstanceCreation"):
        setattr(seg, f"{kind}Date", date)
        setattr(seg, f"{kind}Time", time_)


def _holds(text: str, encodings: list[str]) -> bool:
    """Whether a character set (its Python encodings, as pydicom names them) holds every character of ``text``;
    the default repertoire is ASCII (pydicom's ``iso8859`` for it would write Latin-1)."""
    import codecs

    from pydicom.charset import custom_encoders

    codecs_ = ["ascii" if e == "iso8859" else e for e in encodings]

    def encodes(character: str, codec: str) -> bool:
        # pydicom's own encoders where it has them: ISO_IR 13 (its shift_jis) is JIS X 0201, half-width katakana
        # beyond ASCII, where Python's shift_jis encodes kanji too; ISO 2022 IR 159 (iso2022_jp_2) is JIS X 0212 alone
        encoder = custom_encoders.get(codec)
        try:
            encoder(character, errors="strict") if encoder else codecs.encode(character, codec)
        except (UnicodeError, LookupError):
            return False
        return True

    return all(any(encodes(c, codec) for codec in codecs_) for c in set(text) if not c.isascii())


def _set_charset(seg, terms: list[str], source) -> None:
    """State the SEG's character set: its source images' (``terms``; none: the default repertoire, ASCII) where that
    set holds all of the SEG's text, UTF-8 (ISO_IR 192) where it does not. Two cases need it: medseg's own text (a
    label named `Läsion` or `肝臓` under the default repertoire or ISO_IR 100: pydicom wrote `??` for it, and the SEG
    then matched no label of the model when read back), and a source whose character set was dropped as no DICOM
    term, whose values pydicom read in the set it took that term for (`UTF-8`): they were written as Latin-1 bytes
    under no SpecificCharacterSet, which a PACS shows as `MÃ¼ller` or `M?ller`. The values are checked character by
    character (:func:`_holds`), not with pydicom's encode_string, which warned of "replacement characters" that were
    never written."""
    from pydicom.charset import convert_encodings

    odd = sorted({text for text in _seg_texts(seg) if not text.isascii()})
    chosen: list[str] | None = terms or None
    if odd:
        try:
            encodings = convert_encodings(terms) if terms else ["ascii"]
        except LookupError:
            encodings = []
        unheld = [text for text in odd if not encodings or not _holds(text, encodings)]
        if unheld:
            chosen = ["ISO_IR 192"]
            log.info("%s: the DICOM SEG is written in UTF-8 (ISO_IR 192): its character set %s cannot hold %s", source,
                     "\\".join(terms) or "(default)", ", ".join(repr(text) for text in unheld[:5])
                     + (" …" if len(unheld) > 5 else ""))
    if chosen:
        seg.SpecificCharacterSet = chosen[0] if len(chosen) == 1 else list(chosen)
    elif "SpecificCharacterSet" in seg:
        del seg.SpecificCharacterSet


def _seg_series_number(source_number) -> int:
    """The SEG's SeriesNumber: its source's + 1000 (0 for a source without one), held within 1 to 2147483647 (DICOM's
    IS holds at most 2**31 - 1, and highdicom takes no number below 1)."""
    return min(max(int(source_number or 0) + 1000, 1), 2**31 - 1)


def _round_spacing(seg) -> None:
    """highdicom derives SpacingBetweenSlices from the frames' positions in floating point: 0.99999999999999 for
    slices 1 mm apart. A value within 1e-9 mm of a whole micrometre is written as that micrometre (the positions of
    the frames stay as they are); any other is left alone."""
    for group in seg.get("SharedFunctionalGroupsSequence", []):
        for measures in group.get("PixelMeasuresSequence", []):
            if measures.get("SpacingBetweenSlices") is None:
                continue
            value = float(measures.SpacingBetweenSlices)
            if abs(value - round(value, 3)) < 1e-9:
                measures.SpacingBetweenSlices = round(value, 3)


def _concept(code: dict):
    """A coded concept from a model package's ``{"scheme", "value", "meaning"}``."""
    from highdicom.sr import CodedConcept

    return CodedConcept(value=str(code["value"]), scheme_designator=str(code["scheme"]), meaning=str(code["meaning"]))


def software_versions(versions: dict[str, str]) -> list[str]:
    """A SEG's SoftwareVersions from a sidecar's ``versions`` record: ``medseg <version>``, ``torch <version>``,
    ``MONAI <version>`` and ``medseg commit <commit>`` (those it records, in that order), each value within the 64
    characters of DICOM's LO. A commit too long for it (a SHA-256 repository's 64 digits) keeps its leading digits and
    its ``-dirty``; the sidecar keeps it in full."""
    values = [f"{name} {versions[key]}"[:_LO_CHARACTERS] for key, name in
              (("medseg", "medseg"), ("torch", "torch"), ("monai", "MONAI")) if versions.get(key)]
    commit = versions.get("medseg_commit")
    if commit:
        prefix, dirty = "medseg commit ", DIRTY if commit.endswith(DIRTY) else ""
        digits = commit.removesuffix(dirty)[:_LO_CHARACTERS - len(prefix) - len(dirty)]
        values.append(f"{prefix}{digits}{dirty}")
    return values


def _segmentation(hd, source_images, pixel_array, descriptions, number, algorithm, versions: list[str]):
    return hd.seg.Segmentation(
        source_images=source_images,
        pixel_array=pixel_array,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=number,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="medseg",
        manufacturer_model_name=algorithm[:64],
        # a list: pydicom takes a list for a multi-valued element, a tuple for one value of the wrong type (it logged
        # "A value of type 'tuple' cannot be assigned to a tag with VR LO" for every SEG, naming no file)
        software_versions=list(versions) if len(versions) > 1 else versions[0],
        device_serial_number="0",
        series_description=f"medseg {algorithm}"[:64],
        omit_empty_frames=True,
        specific_character_set=None,  # stated afterwards, when the SEG's text is known: _set_charset
    )
