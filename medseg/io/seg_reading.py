"""A DICOM SEG read as labels on the grid of the DICOM series it segments, frame by referenced source image (or
frame), so nothing is resampled: the file opened and refused in one line where it is no SEG of labels (not DICOM,
truncated, another kind of object, FRACTIONAL), every frame checked to come from this series and to lie on the
source image it references, and each segment read a slab of slices at a time."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from medseg.errors import ImageReadError, InputError
from medseg.io.dicom_messages import FileMessages
from medseg.io.dicom_text import read_undeclared_text
from medseg.io.files import os_reason
from medseg.io.read_warnings import warnings_naming
from medseg.io.seg_labels import _segment_labels, put_segments, tell_segment_names
from medseg.io.seg_sources import _source_header
from medseg.label_map import values_dtype
from medseg.numbers import counted
from medseg.volume import Volume

if TYPE_CHECKING:
    from medseg.io.dicom import SeriesGrid

__all__ = ["check_is_seg", "check_referenced_series", "read_dicom_seg", "read_dicom_seg_with_info", "referenced_series"]

log = logging.getLogger(__name__)

_POSITION_TOLERANCE_MM = 0.01  # least tolerance of a SEG frame's position against its source image's


def check_referenced_series(seg, path: Path | str, series_uid: str | None, subject, recorded_by: str | None = None,
                            outcome: str = "", record: Path | str | None = None) -> None:
    """Refuse the SEG ``path`` (read as ``seg``) where the series it references (its Common Instance Reference
    module: ReferencedSeriesSequence for series of its own study, StudiesContainingOtherReferencedInstancesSequence
    for those of others) are all other than ``series_uid``, that of ``subject``: the DICOM series itself
    (``recorded_by`` None), else an image made from it, whose series ``recorded_by`` records (``its conversion's
    sidecar x.json``; ``record``: that conversion's JSON, where one records it); ``outcome``: what is not done. The
    message says how to go on: segment the series the SEG references; where ``series_uid`` may be that series'
    images re-exported under a new SeriesInstanceUID, have the SEG placed by its frames' own geometry, as it is
    where nothing records the series (the conversion's JSON moved aside, or a conversion without one). A SEG that
    references no series, or an unknown ``series_uid``, is not refused."""
    referenced = referenced_series(seg)
    if not (series_uid and referenced and series_uid not in referenced):
        return
    recorded = f", as {recorded_by} records" if recorded_by else ""
    outcome = f"; {outcome}" if outcome else ""
    same = f"if series {series_uid} holds the same images, re-exported under a new SeriesInstanceUID"
    if recorded_by is None:  # the series itself: a conversion of it without a record is placed by its geometry
        hint = (f"; {same}, segment a conversion of {subject} with no JSON beside it that records the series (medseg "
                "convert without --sidecar): the SEG is placed on its grid by its frames' own geometry, checked to "
                "lie on it")
    elif record is not None:
        hint = (f"; {same}, move {record} aside: the SEG is then placed by its frames' own geometry, checked to lie "
                "on the grid")
    else:  # the sidecar of the prediction itself: nothing to move aside
        hint = ""
    raise InputError(f"{path}: a segmentation of series {', '.join(sorted(referenced))}, not of {subject} (series "
                     f"{series_uid}{recorded}){outcome}: segment the series it references (or a conversion of it)"
                     f"{hint}")


def referenced_series(seg) -> set[str]:
    """The SeriesInstanceUIDs of the series the DICOM SEG ``seg`` (a dataset, or a header read with the two
    sequences) references: its ReferencedSeriesSequence (series of its own study) and the series each item of its
    StudiesContainingOtherReferencedInstancesSequence lists (series of other studies); empty where it lists none."""
    referenced = {str(item.get("SeriesInstanceUID", "") or "").strip() for item in _referenced_series_items(seg)}
    referenced.discard("")
    return referenced


def _referenced_series_items(seg) -> list:
    """The items of the series the SEG ``seg`` references, each with its SeriesInstanceUID and the images it lists
    (ReferencedInstanceSequence): those of its own study's (ReferencedSeriesSequence), then those of other studies'
    (StudiesContainingOtherReferencedInstancesSequence). The one place that reads the two lists."""
    items = list(seg.get("ReferencedSeriesSequence") or [])
    for study in seg.get("StudiesContainingOtherReferencedInstancesSequence") or []:
        items.extend(study.get("ReferencedSeriesSequence") or [])
    return items


def open_seg(path: Path):
    """A DICOM SEG of labels (BINARY or LABELMAP) as highdicom reads it, with how its undeclared text was read
    (:func:`~medseg.io.dicom_text.read_undeclared_text`); refused in one line naming the file: no such file, not a
    SEG, truncated, a FRACTIONAL SEG (probabilities, not labels); one too large for the memory left an
    :class:`~medseg.errors.ImageReadError` saying so. pydicom's and highdicom's warnings as it is read name the file
    (:func:`~medseg.io.read_warnings.warnings_naming`)."""
    with warnings_naming(path):
        return _open_seg(Path(path))


def _open_seg(path: Path):
    import highdicom as hd
    import pydicom

    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:  # before its frames are read: a whole-slide SEG may hold gigabytes of them
        organisation = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["DimensionOrganizationType"])
    except Exception:  # noqa: BLE001 - the reading that follows names what is wrong with the file
        organisation = None
    tiled = organisation is not None and _tiled_reason(organisation)
    if tiled:
        raise InputError(f"{path}: {tiled}")
    try:
        dataset = pydicom.dcmread(path)
        # its segment labels are matched by name: UTF-8 bytes under no character set read as such (before highdicom
        # reads them, in Latin-1 alone), as the series and the SEG writer read them
        read = read_undeclared_text(dataset)
        seg = hd.seg.Segmentation.from_dataset(dataset, copy=False)
    except MemoryError as error:  # not the file's fault: was "cannot read this DICOM SEG (MemoryError)"
        detail = " ".join(str(error).split())
        raise ImageReadError(f"{path}: there was too little memory to read this DICOM SEG"
                             + (f" ({detail})" if detail else "") + "; free memory, or read it on a larger machine") \
            from error
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
    of :func:`~medseg.io.seg_writing.write_dicom_seg`, frame by referenced source image (or frame), so nothing is
    resampled. Also reads another tool's SEG given as a reference (BINARY or LABELMAP).

    Segments are matched to ``label_names`` by their label, regardless of case, else of spaces, ``_`` and ``-`` too,
    where that singles one out (:func:`~medseg.io.seg_labels._name_matcher`); a segment no name fits is matched by
    its coded type and type modifier to the one label of ``label_codes`` (a package's: label value → ``category``,
    ``type``, optional ``modifier``) that has them. Refused with :class:`InputError`
    naming the file: a SEG of another series or of images outside this one, a segment that neither names nor codes
    fit, a FRACTIONAL SEG (not labels), segments of different labels that overlap (a label map holds one label per
    voxel), segments of one label that overlap (two drawings of it: their union would be neither), a frame that does
    not lie on the source image it references. Disjoint segments of one label (its parts, or instances such as
    lesions) are read as that label, with a warning. A label without a segment
    is read as absent, with a warning; a segment whose name fits one coded label and whose codes another is matched by
    its name, with a warning; a SEG made from only some of the series' images is read as empty on the others, with a
    warning (these warnings: ``warn_missing``; not on a second reading, as the report's).
    """
    return read_dicom_seg_with_info(path, volume, label_names, warn_missing, label_codes)[0]


def read_dicom_seg_with_info(path: Path | str, volume: Volume | SeriesGrid, label_names: dict[int, str],
                             warn_missing: bool = True, label_codes: dict | None = None) -> tuple[np.ndarray, dict]:
    """:func:`read_dicom_seg`, with what a record of the scoring keeps of the reading (as a
    :class:`~medseg.volume.Volume`'s ``info``): where the SEG states another FrameOfReferenceUID than its series'
    images, ``frame_of_reference_mismatch`` (``{"seg": its UID, "series": the images'}``) and
    ``frame_of_reference_note``, the warning's words; empty otherwise."""
    path = Path(path)
    label_names = {int(value): str(name) for value, name in label_names.items()}
    source = volume.dicom
    if source is None:
        raise InputError(f"{path}: a DICOM SEG is placed frame by frame on the DICOM series it segments, and the "
                         f"image segmented, {volume.source}, is not a DICOM series (a conversion of one, as to NIfTI, "
                         "no longer has the images its frames reference): segment the series' own folder to score "
                         "against this SEG")
    seg, read = open_seg(path)
    check_referenced_series(seg, path, source.series_uid, volume.source)
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
        are = "is" if len(foreign) == 1 else "are"
        raise InputError(f"{path}: segments {counted(len(foreign), 'image')} that {are} not in {volume.source}"
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
    # after the checks that refuse a SEG of other images, whose refusal this warning would only precede
    info = _tell_frame_of_reference(seg, headers[source.paths[0]], path, volume.source, warn_missing)
    labels = np.zeros(volume.shape, dtype=values_dtype(max(label_names, default=0)))  # as the segmentation is written

    def slabs(number: int):
        # the segment's frames are put in the labels a slab of slices at a time, never stacked on the whole grid
        for part, mask in _segment_slabs(seg, number, slices, options, path, volume.source):
            contiguous = part == list(range(part[0], part[-1] + 1))
            yield (slice(None), slice(None), slice(part[0], part[-1] + 1) if contiguous else part), mask

    put_segments(labels, segments, slabs, path, label_names, warn_missing)
    return labels, info


def _tell_frame_of_reference(seg, header, path: Path, source, warn: bool) -> dict:
    """Warn (``warn``; else at info level) where the SEG states another FrameOfReferenceUID than the images of its
    series (whose files agree on one): DICOM has a SEG share its source images' frame of reference. Its frames are
    still placed on the images they reference, on which they are checked to lie; the mismatch was not told. Returns
    what a metrics record keeps of it (see :func:`read_dicom_seg_with_info`): a log is not what a QA team reads."""
    seg_frame = str(seg.get("FrameOfReferenceUID", "")).strip()
    image_frame = str(header.get("FrameOfReferenceUID", "")).strip()
    if not (seg_frame and image_frame and seg_frame != image_frame):
        return {}
    note = (f"its FrameOfReferenceUID {seg_frame} is not that of the images of {source} ({image_frame}), which a SEG "
            "of them shares; its frames are placed on the images they reference, on which they lie: check that it "
            "segments this series")
    log.log(logging.WARNING if warn else logging.INFO, "%s: %s", path, note)
    return {"frame_of_reference_mismatch": {"seg": seg_frame, "series": image_frame},
            "frame_of_reference_note": note}


def _tell_coverage(seg, slices: list[tuple[str, int | None]], frame_sources: list[tuple[str, int | None]], path: Path,
                   source, warn: bool) -> None:
    """Warn (``warn``; told at info level on a second reading) where a SEG references only some of the series'
    images: the others have no frames, so they are read as empty, as the standard has it. The images a SEG was made
    from are those its ReferencedSeriesSequence lists, or for a series of another study its
    StudiesContainingOtherReferencedInstancesSequence (a frame left out as empty still counts); a SEG that lists none
    says nothing of what it covers, and is not warned about. Nor is one that lists only the images its frames lie on,
    as dcmqi writes them by default (slices outside a label's extent left out, and not listed): it cannot tell a SEG
    made from the whole series from one made from part of it (told at info level). ``frame_sources``: the SEG's
    :func:`_frame_sources`, as the caller walked them."""
    listed = {str(item.ReferencedSOPInstanceUID) for series in _referenced_series_items(seg)
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
    from medseg.io.dicomdir import is_dicomdir

    if is_dicomdir(header):  # it has no SOPClassUID: it was called a file cut short
        return "a DICOMDIR, the index of a DICOM export (CD, DVD or USB), not a DICOM SEG (a segmentation)"
    modality = str(header.get("Modality", "")).upper()
    if modality and modality != "SEG":
        return f"a DICOM {modality} object, not a DICOM SEG (a segmentation)"
    if "SOPClassUID" not in header:  # every DICOM object has one: the file ends before it
        return "truncated or incomplete DICOM file (it ends before its SOPClassUID)"
    return _tiled_reason(header)


_TILED = ("TILED_FULL", "TILED_SPARSE")  # DimensionOrganizationType of a whole-slide (microscopy) image's tiles


def _tiled_reason(header) -> str | None:
    """Why a tiled SEG (frames that are tiles of a whole-slide microscopy image's pixel matrix, placed in slide
    coordinates, not slices of a series in patient space) is not read; None for any other. highdicom refused a
    TILED_FULL one for a missing TotalPixelMatrixOriginSequence, which said nothing of the kind of SEG it is."""
    organisation = str(header.get("DimensionOrganizationType", "") or "").strip().upper()
    if organisation not in _TILED:
        return None
    return (f"a tiled DICOM SEG (DimensionOrganizationType {organisation}, as of a whole-slide microscopy image): "
            "tiled (microscopy) SEGs are not supported; medseg reads SEGs of a series' slices (CT, MR, PET)")


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
                         f"header gives: {counted(frames, 'frame')} of {seg.Rows}×{seg.Columns}, "
                         f"{counted(bits, 'bit')} per pixel)")


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
