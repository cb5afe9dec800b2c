"""DICOM SEG output for DICOM inputs, written with highdicom and referencing the source series.

Slice k of the converted volume came from ``volume.dicom.paths[k]`` (frame ``volume.dicom.frames[k]``), and
its voxels ``array[:, :, k]`` are that image's pixels transposed (i = column, j = row). The SEG frame for a
source image is therefore ``labels[:, :, k].T``; highdicom copies the source image's position and
orientation into the frame, so the mask lands on the slice it was computed on, unmirrored.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from medseg.errors import DicomError, InputError
from medseg.io.dicom_text import (
    charset_terms,
)
from medseg.io.seg_labels import _segment_label, check_segment_labels
from medseg.io.seg_reading import check_is_seg, read_dicom_seg
from medseg.io.seg_sources import _decode_texts, _seg_texts, seg_sources
from medseg.volume import Volume

if TYPE_CHECKING:
    from medseg.io.dicom import SeriesGrid

__all__ = ["check_is_seg", "check_segment_labels", "find_recorded_source", "read_dicom_seg", "read_seg_volume",
           "read_seg_with_grid", "read_seg_with_source", "recorded_series", "seg_sources", "write_dicom_seg"]

log = logging.getLogger(__name__)


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
