"""DICOM SEG output for DICOM inputs, written with highdicom and referencing the source series.

Slice k of the converted volume came from ``volume.dicom.paths[k]`` (frame ``volume.dicom.frames[k]``), and
its voxels ``array[:, :, k]`` are that image's pixels transposed (i = column, j = row). The SEG frame for a
source image is therefore ``labels[:, :, k].T``; highdicom copies the source image's position and
orientation into the frame, so the mask lands on the slice it was computed on, unmirrored.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from medseg.errors import DicomError, InputError
from medseg.io.dicom_messages import FileMessages
from medseg.io.dicom_text import (
    charset_terms,
    read_undeclared_text,
)
from medseg.io.files import os_reason
from medseg.io.seg_labels import _segment_label, _segment_labels, check_segment_labels, put_segments, tell_segment_names
from medseg.io.seg_sources import _decode_texts, _seg_texts, _source_header, seg_sources
from medseg.label_map import values_dtype
from medseg.volume import Volume

if TYPE_CHECKING:
    from medseg.io.dicom import SeriesGrid

__all__ = ["check_is_seg", "check_segment_labels", "find_recorded_source", "read_dicom_seg", "read_seg_volume",
           "read_seg_with_grid", "read_seg_with_source", "recorded_series", "seg_sources", "write_dicom_seg"]

log = logging.getLogger(__name__)

_POSITION_TOLERANCE_MM = 0.01  # least tolerance of a SEG frame's position against its source image's


def write_dicom_seg(labels: np.ndarray, volume: Volume, path: Path | str, label_names: dict[int, str],
                    algorithm: str = "medseg", algorithm_version: str = "0",
                    sources: dict[Path, object] | None = None, label_codes: dict[int, dict] | None = None) -> dict:
    """Write ``labels`` (on ``volume``'s grid) as a binary DICOM SEG, one segment per non-zero label; return its
    identifiers (SOP instance, series, study UIDs and series number) for the sidecar.

    ``label_codes``: label value → the coded concepts of its segment (``category``, ``type``, optional
    ``modifier``; each ``{"scheme", "value", "meaning"}``), as a model package's ``label_codes`` holds them; a label
    without codes is coded as SCT Tissue (category and type), which says nothing of what it is.

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
        name=algorithm, family=codes.cid7162.ArtificialIntelligence, version=str(algorithm_version)
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
            seg = _segmentation(hd, source_images, pixel_array, descriptions, number, algorithm, medseg.__version__)
        for warning in caught:
            log.info("%s: %s", volume.source, " ".join(str(warning.message).split()))
    except (ValueError, TypeError, AttributeError, KeyError) as error:
        raise DicomError(f"{volume.source}: cannot make a DICOM SEG from this series "
                         f"({' '.join(str(error).split()) or type(error).__name__})") from error
    _set_charset(seg, terms, volume.source)
    _round_spacing(seg)
    seg.save_as(str(path))
    log.info("%s: DICOM SEG made with %d segments over %d source images", volume.source, len(values),
             len(source_images))  # (path is still the temporary name here)
    return {"sop_instance_uid": str(seg.SOPInstanceUID), "series_instance_uid": str(seg.SeriesInstanceUID),
            "study_instance_uid": str(seg.StudyInstanceUID), "series_number": int(seg.SeriesNumber),
            "segments": len(values)}


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


def open_seg(path: Path):
    """A DICOM SEG of labels (BINARY or LABELMAP) as highdicom reads it, with how its undeclared text was read
    (:func:`~medseg.io.dicom_text.read_undeclared_text`); refused in one line naming the file: no such file, not a
    SEG, truncated, a FRACTIONAL SEG (probabilities, not labels)."""
    import highdicom as hd
    import pydicom

    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        dataset = pydicom.dcmread(path)
        # its segment labels are matched by name: UTF-8 bytes under no character set read as such (before highdicom
        # reads them, in Latin-1 alone), as the series and the SEG writer read them
        read = read_undeclared_text(dataset)
        seg = hd.seg.Segmentation.from_dataset(dataset, copy=False)
    except Exception as error:  # not a SEG, truncated, unreadable: one line
        raise InputError(f"{path}: {_unread_seg(path, error)}") from error
    _check_pixel_length(seg, path)
    kind = str(seg.get("SegmentationType", "BINARY"))
    if kind == "FRACTIONAL":
        fraction = str(seg.get("SegmentationFractionalType", "")).lower() or "fractions"
        raise InputError(f"{path}: a FRACTIONAL SEG ({fraction} per voxel), not labels: make it a BINARY SEG or a "
                         "label image at the threshold you mean")
    return seg, read


def read_dicom_seg(path: Path | str, volume: Volume | SeriesGrid, label_names: dict[int, str],
                   warn_missing: bool = True, label_codes: dict | None = None) -> np.ndarray:
    """The labels of a DICOM SEG on the grid of ``volume``, the source series it was made from (read with
    :func:`medseg.io.images.read_image`, or its grid alone: :func:`medseg.io.dicom.read_dicom_grid`): the inverse
    of :func:`write_dicom_seg`, frame by referenced source image (or frame), so nothing is resampled. Also reads
    another tool's SEG given as a reference (BINARY or LABELMAP).

    Segments are matched to ``label_names`` by their label, regardless of case where that singles one out; a segment
    no name fits is matched by its coded type and type modifier to the one label of ``label_codes`` (a package's:
    label value → ``category``, ``type``, optional ``modifier``) that has them. Refused with :class:`InputError`
    naming the file: a SEG of another series or of images outside this one, a segment that neither names nor codes
    fit, a FRACTIONAL SEG (not labels), segments of different labels that overlap (a label map holds one label per
    voxel), segments of one label that overlap (two drawings of it: their union would be neither), a frame that does
    not lie on the source image it references. Disjoint segments of one label (its parts, or instances such as
    lesions) are read as that label, with a warning. A label without a segment
    is read as absent, with a warning; a segment whose name fits one coded label and whose codes another is matched by
    its name, with a warning; a SEG made from only some of the series' images is read as empty on the others, with a
    warning (these warnings: ``warn_missing``; not on a second reading, as the report's).
    """

    path = Path(path)
    label_names = {int(value): str(name) for value, name in label_names.items()}
    source = volume.dicom
    if source is None:
        raise InputError(f"{path}: a DICOM SEG is placed frame by frame on the DICOM series it segments, and the "
                         f"image segmented, {volume.source}, is not a DICOM series (a conversion of one, as to NIfTI, "
                         "no longer has the images its frames reference): segment the series' own folder to score "
                         "against this SEG")
    seg, read = open_seg(path)
    referenced = {str(item.SeriesInstanceUID) for item in seg.get("ReferencedSeriesSequence", [])}
    if source.series_uid and referenced and source.series_uid not in referenced:
        raise InputError(f"{path}: a segmentation of series {', '.join(sorted(referenced))}, not of "
                         f"{volume.source} (series {source.series_uid})")
    with FileMessages(Path(volume.source), report=False):  # reported when the series was read
        headers = {p: _source_header(p) for p in dict.fromkeys(source.paths)}  # one read per file
    slices = [(str(headers[p].SOPInstanceUID), None if f is None else f + 1)
              for p, f in zip(source.paths, source.frames)]
    # every frame must come from an image of this series (part): a SEG of other images would read as empty, since
    # source images without frames are empty ones (an anonymised series has no UID to compare; the parts of a
    # split series share theirs)
    images = set(slices)
    frame_sources = _frame_sources(seg)  # every frame's reference, walked once (a SEG may hold thousands of frames)
    foreign = sorted({ref for ref in map(_single_frame(images), frame_sources) if ref not in images}, key=str)
    if foreign:
        shown = ", ".join(f"{u}" + (f" frame {f}" if f else "") for u, f in foreign[:3])
        raise InputError(f"{path}: segments {len(foreign)} image(s) that are not in {volume.source}"
                         f"{_series_words(volume)}: {shown}{' …' if len(foreign) > 3 else ''}")
    _tell_coverage(seg, slices, frame_sources, path, volume.source, warn_missing)
    # after the images: a SEG of other images is named as such, not by its segments the model lacks
    tell_segment_names(seg, read, path, warn_missing)  # its segments are matched by these names
    segments = _segment_labels(seg, label_names, path, label_codes, warn=warn_missing)
    geometry = {ref: _source_geometry(headers[p], ref[1]) for p, ref in zip(source.paths, slices)}
    options = {"combine_segments": False, "assert_missing_frames_are_empty": True}
    if _frames_on_their_sources(seg, geometry, path):
        # a SEG from another tool may not state that its frames keep the source images' geometry (highdicom then
        # refuses to index it by source image): they were checked to lie on them, frame by frame
        options["ignore_spatial_locations"] = True
    labels = np.zeros(volume.shape, dtype=values_dtype(max(label_names, default=0)))  # as the segmentation is written

    def slabs(number: int):
        # the segment's frames are put in the labels a slab of slices at a time, never stacked on the whole grid
        for part, mask in _segment_slabs(seg, number, slices, options, path, volume.source):
            contiguous = part == list(range(part[0], part[-1] + 1))
            yield (slice(None), slice(None), slice(part[0], part[-1] + 1) if contiguous else part), mask

    put_segments(labels, segments, slabs, path, label_names, warn_missing)
    return labels


def _tell_coverage(seg, slices: list[tuple[str, int | None]], frame_sources: list[tuple[str, int | None]], path: Path,
                   source, warn: bool) -> None:
    """Warn (``warn``; told at info level on a second reading) where a SEG references only some of the series'
    images: the others have no frames, so they are read as empty, as the standard has it. The images a SEG was made
    from are those its ReferencedSeriesSequence lists (a frame left out as empty still counts); a SEG that lists none
    says nothing of what it covers, and is not warned about. Nor is one that lists only the images its frames lie on,
    as dcmqi writes them by default (slices outside a label's extent left out, and not listed): it cannot tell a SEG
    made from the whole series from one made from part of it (told at info level). ``frame_sources``: the SEG's
    :func:`_frame_sources`, as the caller walked them."""
    listed = {str(item.ReferencedSOPInstanceUID) for series in seg.get("ReferencedSeriesSequence", [])
              for item in series.get("ReferencedInstanceSequence", [])}
    if not listed:
        return
    framed = {uid for uid, _ in frame_sources}
    lists_inputs = bool(listed - framed)  # it lists an image it has no frame on: its writer lists what it was given
    listed |= framed
    covered = sum(uid in listed for uid, _ in slices)
    if covered < len(slices):
        log.log(logging.WARNING if warn and lists_inputs else logging.INFO, "%s: covers %d of the %d images of %s; "
                "the others are read as empty (a label predicted there counts as a false positive)", path, covered,
                len(slices), source)


_SLICES_AT_ONCE = 32  # source slices whose frames are stacked at once (32 of 512×512: 8 MB)


def _segment_slabs(seg, number: int, slices: list[tuple[str, int | None]], options: dict, path: Path, source
                   ) -> Iterator[tuple[list[int], np.ndarray]]:
    """Segment ``number`` on the source grid a slab of slices at a time: ``(ks, mask)``, the mask of slices ``ks``
    (ascending; column i, row j, slice), slice k holding the frame that references ``slices[k]`` (one call per
    source file: single-frame images together, the frames of each multi-frame file together). Stacked on the whole
    grid, one segment of a 512×512×600 CT took 157 MB beside the labels."""
    if all(frame is None for _, frame in slices):
        groups = {None: list(range(len(slices)))}
    else:
        groups = {}
        for k, (uid, _) in enumerate(slices):
            groups.setdefault(uid, []).append(k)
    for uid, ks in groups.items():
        for start in range(0, len(ks), _SLICES_AT_ONCE):  # the frames stacked a slab at a time, not all at once
            part = ks[start:start + _SLICES_AT_ONCE]
            try:
                if uid is None:
                    stack = seg.get_pixels_by_source_instance([slices[k][0] for k in part], segment_numbers=[number],
                                                              **options)
                else:
                    stack = seg.get_pixels_by_source_frame(uid, [slices[k][1] for k in part],
                                                           segment_numbers=[number], **options)
            except (ValueError, KeyError, IndexError, AttributeError, RuntimeError) as error:
                raise InputError(f"{path}: its frames do not match the images of {source} ({_error_text(error)})"
                                 ) from error
            # (slices, rows, columns, 1) → (i = column, j = row, k = slice)
            yield part, np.asarray(stack[..., 0]).transpose(2, 1, 0) > 0


def check_is_seg(path: Path | str) -> None:
    """Refuse, naming the file, a ``.dcm`` given as a segmentation that is not a DICOM SEG: not DICOM, cut inside its
    header, or another kind of object (a CT image given as the prediction was blamed on its missing sidecar)."""
    reason = _not_a_seg(Path(path))
    if reason is not None:
        raise InputError(f"{path}: {reason}")


def _unread_seg(path: Path, error: Exception) -> str:
    """Why a file given as a DICOM SEG could not be read as one (pydicom's "Use force=True to force reading" and "No
    tag to read at file position 7D0" named neither problem), else the reader's own words."""
    return _not_a_seg(path) or f"cannot read this DICOM SEG ({_error_text(error)})"


def _not_a_seg(path: Path) -> str | None:
    """What makes ``path`` no DICOM SEG: not DICOM, cut inside its header, or another kind of DICOM object; None when
    its header is a SEG's (or says no modality)."""
    import pydicom

    try:
        with open(path, "rb") as handle:
            head = handle.read(132)
    except OSError as reason:
        return f"cannot read ({os_reason(reason)})"
    if len(head) < 132 or head[128:132] != b"DICM":
        return "not a DICOM file (no DICM marker after the 128-byte preamble)"
    try:
        header = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception as reason:  # noqa: BLE001 - pydicom raises many kinds on a file cut inside its header
        return f"truncated or corrupt DICOM file ({_error_text(reason)})"
    modality = str(header.get("Modality", "")).upper()
    if modality and modality != "SEG":
        return f"a DICOM {modality} object, not a DICOM SEG (a segmentation)"
    if "SOPClassUID" not in header:  # every DICOM object has one: the file ends before it
        return "truncated or incomplete DICOM file (it ends before its SOPClassUID)"
    return None


def _check_pixel_length(seg, path: Path) -> None:
    """Refuse a SEG whose native pixel data is shorter than its header says (a file cut short): read as it is, its
    frames "did not match the images" of the series, or its segments were refused first."""
    data = seg.get("PixelData")
    syntax = getattr(getattr(seg, "file_meta", None), "TransferSyntaxUID", None)
    if data is None or syntax is None or syntax.is_compressed:
        return
    try:
        frames = int(seg.get("NumberOfFrames", 1) or 1)
        bits = int(seg.BitsAllocated)
        needed = (int(seg.Rows) * int(seg.Columns) * frames * bits + 7) // 8
    except (AttributeError, TypeError, ValueError):
        return  # the reading that follows names what is missing
    if len(data) < needed:
        raise InputError(f"{path}: truncated DICOM SEG (its pixel data holds {len(data)} of the {needed} bytes its "
                         f"header gives: {frames} frames of {seg.Rows}×{seg.Columns}, {bits} bit(s) per pixel)")


def _error_text(error: Exception) -> str:
    """One line for a library error; a missing DICOM attribute (a KeyError of its tag) is named."""
    from pydicom.datadict import keyword_for_tag
    from pydicom.tag import BaseTag

    text = " ".join(str(error).split()) or type(error).__name__
    if isinstance(error, KeyError) and error.args and isinstance(error.args[0], BaseTag):
        tag = error.args[0]
        text = f"it lacks {keyword_for_tag(tag) or 'the attribute'} {tag}"
    return text


def _source_geometry(header, frame: int | None) -> dict | None:
    """Rows, columns, pixel spacing, orientation and position of a source image (``frame``: 1-based frame of a
    multi-frame file, from its functional groups); None where the header does not state them all."""
    if frame is None:
        values = {key: header.get(key) for key in ("PixelSpacing", "ImageOrientationPatient", "ImagePositionPatient")}
        values = {k: [float(x) for x in v] if v is not None else None for k, v in values.items()}
    else:
        per_frame = header.get("PerFrameFunctionalGroupsSequence") or []
        if frame > len(per_frame):
            return None
        shared = (header.get("SharedFunctionalGroupsSequence") or [{}])[0]
        values = _plane_geometry(per_frame[frame - 1], shared)
    if any(v is None for v in values.values()) or "Rows" not in header or "Columns" not in header:
        return None
    return {"size": [int(header.Rows), int(header.Columns)], **values}


def _frames_on_their_sources(seg, geometry: dict, path: Path) -> bool:
    """Does every frame of ``seg`` lie on the source image (or frame) it references (``geometry`` by (SOP instance
    UID, frame number or None), from :func:`_source_geometry`): the same rows and columns, pixel spacing and
    orientation, and a position within a tenth of the smallest pixel spacing (at least 0.01 mm)? True when every
    frame states its geometry and agrees; an InputError naming the first frame that does not; False when a frame
    or its source states none (highdicom's own rule then applies)."""
    shared = (seg.get("SharedFunctionalGroupsSequence") or [{}])[0]
    for index, groups in enumerate(seg.get("PerFrameFunctionalGroupsSequence", [])):
        refs = [item for derivation in groups.get("DerivationImageSequence", [])
                for item in derivation.get("SourceImageSequence", [])]
        mine = {"size": [int(seg.Rows), int(seg.Columns)], **_plane_geometry(groups, shared)}
        if not refs or any(v is None for v in mine.values()):
            return False
        frame = refs[0].get("ReferencedFrameNumber")
        uid = str(refs[0].ReferencedSOPInstanceUID)
        theirs = geometry.get(_single_frame(geometry)((uid, int(frame) if frame is not None else None)))
        if theirs is None:
            return False
        position_tolerance = max(_POSITION_TOLERANCE_MM, 0.1 * min(theirs["PixelSpacing"]))
        for key, what, tolerance in (("size", "size", 0.0), ("PixelSpacing", "pixel spacing", 1e-4),
                                     ("ImageOrientationPatient", "orientation", 1e-4),
                                     ("ImagePositionPatient", "position", position_tolerance)):
            a, b = np.asarray(mine[key], float), np.asarray(theirs[key], float)
            if a.shape != b.shape or np.max(np.abs(a - b)) > tolerance:
                raise InputError(f"{path}: frame {index + 1} does not lie on the source image it references "
                                 f"({what} {_numbers(mine[key])} against {_numbers(theirs[key])}): it is not a "
                                 "segmentation of these images' pixels")
    return True


def _series_words(volume: Volume) -> str:
    """`` (series UID)``, or for a part of a split series `` (series 3-2, one part of series UID split by
    orientation)``: the other parts share the UID, so the UID alone does not say which images are meant."""
    uid = volume.dicom.series_uid if volume.dicom is not None else ""
    info = volume.info or {}
    split = next((flag.split(":", 1)[1] for flag in info.get("flags", []) if str(flag).startswith("split:")), None)
    if split and info.get("series_key"):
        return (f" (series {info['series_key']}, one part of series {uid or 'without a UID'} split by "
                f"{split.replace('+', ', ')})")
    return f" (series {uid})" if uid else ""


def _single_frame(images) -> Callable:
    """A SEG frame's source reference as the series keys it: frame 1 of a single-frame image, which some writers
    name, is that image (``images``: the series' (UID, frame or None) keys)."""
    def key(ref: tuple[str, int | None]) -> tuple[str, int | None]:
        return (ref[0], None) if ref[1] == 1 and (ref[0], None) in images else ref
    return key


def _numbers(values) -> str:
    return "[" + ", ".join(f"{float(v):g}" for v in values) + "]"


def _plane_geometry(groups, shared) -> dict:
    """Pixel spacing, orientation and position of one frame of a multi-frame object (a SEG, an enhanced image),
    from its own functional groups, else the shared ones; None for what neither states."""
    return {"PixelSpacing": _functional(groups, shared, "PixelMeasuresSequence", "PixelSpacing"),
            "ImageOrientationPatient": _functional(groups, shared, "PlaneOrientationSequence",
                                                   "ImageOrientationPatient"),
            "ImagePositionPatient": _functional(groups, shared, "PlanePositionSequence", "ImagePositionPatient")}


def _functional(groups, shared, sequence: str, keyword: str):
    """A frame's value from its own functional groups, else the shared ones; None when neither states it."""
    for source in (groups, shared):
        items = source.get(sequence) if hasattr(source, "get") else None
        if items and keyword in items[0]:
            return [float(v) for v in items[0].get(keyword)]
    return None


def _frame_sources(seg) -> list[tuple[str, int | None]]:
    """(referenced SOP instance UID, frame number or None) of each SEG frame."""
    found = []
    for groups in seg.get("PerFrameFunctionalGroupsSequence", []):
        for derivation in groups.get("DerivationImageSequence", []):
            for item in derivation.get("SourceImageSequence", []):
                frame = item.get("ReferencedFrameNumber")
                found.append((str(item.ReferencedSOPInstanceUID), int(frame) if frame is not None else None))
    return found


def recorded_series(sidecar: dict) -> str | None:
    """The DICOM series a sidecar says its case was segmented from: its UID, or its key when the UID does not
    single it out (the parts of a split series share one; an anonymised series has none). Two series may share
    a number, so the key alone is not enough either."""
    info = sidecar.get("input_info") or {}
    split = any(str(flag).startswith("split:") for flag in info.get("flags") or [])
    series = info.get("series_key") if split or not info.get("series_uid") else info.get("series_uid")
    return str(series) if series else None


def find_recorded_source(path: Path | str, recorded: str) -> Path | None:
    """Where the input a sidecar records (``recorded``) lies for the DICOM SEG ``path``; None where it is not found.
    A relative path (sidecars before medseg recorded absolute ones) was relative to the folder the run started in:
    tried from here, from the SEG's folder and from the folder above it."""
    path = Path(path)
    candidates = [Path(recorded)] if Path(recorded).is_absolute() else [
        Path(recorded), path.parent / recorded, path.parent.parent / recorded]
    return next((c for c in candidates if c.exists()), None)


def read_seg_volume(path: Path | str, sidecar: dict, source_path: Path | str | None = None, warn_skipped: bool = True,
                    warn_missing: bool = True) -> Volume:
    """A DICOM SEG written by ``medseg infer`` as a label :class:`Volume` on its source series' grid: the source
    is the input its sidecar records (or ``source_path``, where it lies now), in the series it records. Only the
    source's headers are read (:func:`medseg.io.dicom.read_dicom_grid`): its pixels are not needed to place the
    frames. ``warn_skipped`` and ``warn_missing`` as for :func:`read_seg_with_source`."""
    return read_seg_with_grid(path, sidecar, source_path, warn_skipped, warn_missing)[0]


def read_seg_with_grid(path: Path | str, sidecar: dict, source_path: Path | str | None = None,
                       warn_skipped: bool = True, warn_missing: bool = True) -> tuple[Volume, SeriesGrid | Volume]:
    """As :func:`read_seg_volume`, with the source series' grid that placed it
    (:class:`~medseg.io.dicom.SeriesGrid`, whose :meth:`~medseg.io.dicom.SeriesGrid.slices` decode some of its
    voxels; a source that is no DICOM folder is read whole, to be refused as before)."""
    return _read_seg(path, sidecar, source_path, warn_missing, lambda where, series: _source_grid(
        where, series, warn_skipped))


def read_seg_with_source(path: Path | str, sidecar: dict, source_path: Path | str | None = None,
                         warn_skipped: bool = True, warn_missing: bool = True) -> tuple[Volume, Volume]:
    """As :func:`read_seg_volume`, with the source series' volume, voxels and all (for a caller that shows the
    image: it is read once; ``warn_skipped`` as for :func:`medseg.io.images.read_image`, ``warn_missing`` as for
    :func:`read_dicom_seg`). Segments are matched to the sidecar's labels by name, else by the ``label_codes`` it
    records."""
    from medseg.io.images import read_image

    return _read_seg(path, sidecar, source_path, warn_missing, lambda where, series: read_image(
        where, series=series, warn_skipped=warn_skipped))


def _source_grid(path: Path, series: str | None, warn_skipped: bool):
    """The grid of a SEG's source series from its headers; what is not a DICOM folder is read as before, to be
    refused as before (a missing path, a NIfTI file)."""
    from medseg.io.dicom import read_dicom_grid
    from medseg.io.images import read_image

    if Path(path).is_dir():
        return read_dicom_grid(path, series=series, warn_skipped=warn_skipped)
    return read_image(path, series=series, warn_skipped=warn_skipped)


def _read_seg(path: Path | str, sidecar: dict, source_path: Path | str | None, warn_missing: bool,
              read_source: Callable) -> tuple[Volume, Volume | SeriesGrid]:
    """A SEG placed on its source series, read by ``read_source(path, series)`` (its volume, or its grid alone),
    with what that gave."""
    path = Path(path)
    recorded = sidecar.get("input")
    labels = {int(k): str(v) for k, v in (sidecar.get("labels") or {}).items()}
    if not (source_path or recorded) or not labels:
        raise InputError(f"{path}: a DICOM SEG is placed on its source series, which its sidecar must name (with the "
                         "labels); none found")
    if source_path is None:
        source_path = find_recorded_source(path, recorded)
        if source_path is None:
            raise InputError(f"{path}: its source series {recorded} (recorded in its sidecar) is not found (moved or "
                             "renamed since the prediction was made?); the SEG is scored on the source images it "
                             "references: put the series back there, or write the folder where it lies now as the "
                             "sidecar's \"input\"")
    source = read_source(source_path, recorded_series(sidecar))
    if source.dicom is None:  # read_dicom_seg's words would tell to segment the series: its sidecar is what is wrong
        raise InputError(f"{path}: its sidecar's \"input\", {source_path}, is not a DICOM series: a DICOM SEG is "
                         "placed frame by frame on the images of the series it segments (a conversion of it, as to "
                         "NIfTI, no longer has them); write that series' folder as the sidecar's \"input\"")
    array = read_dicom_seg(path, source, labels, warn_missing=warn_missing, label_codes=sidecar.get("label_codes"))
    info = {"dicom_seg_source": str(source_path)}
    made_from = sidecar.get("input_sha256")
    if isinstance(made_from, str) and made_from and source.source_sha256 and made_from != source.source_sha256:
        # the frames are placed by the images they reference, which were found: the geometry holds, the pixels may not
        info["source_note"] = (f"the source series {source_path} is not as it was when the prediction was made (its "
                               "SHA-256 differs from the sidecar's input_sha256: files changed, added or removed "
                               "since); placed on the series as it is now")
        log.log(logging.WARNING if warn_missing else logging.INFO, "%s: %s", path, info["source_note"])
    labels_volume = Volume(array=array, affine=source.affine, source=Path(path), info=info)
    return labels_volume, source


def _segmentation(hd, source_images, pixel_array, descriptions, number, algorithm, version):
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
        software_versions=f"medseg {version}",
        device_serial_number="0",
        series_description=f"medseg {algorithm}"[:64],
        omit_empty_frames=True,
        specific_character_set=None,  # stated afterwards, when the SEG's text is known: _set_charset
    )
