"""A DICOM SEG's segments and a model's labels: the SegmentLabel a label's name is written as (and two labels
that would be one refused), a SEG's segments matched to the model's labels (by name, else by their coded type), and
the matched segments put into one label map (overlaps refused, disjoint segments of one label their union)."""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable
from pathlib import Path

import numpy as np

from medseg.errors import DicomError, InputError
from medseg.io.dicom_text import undeclared_text_note
from medseg.numbers import counted

__all__ = ["check_segment_labels", "pair_by_name"]

log = logging.getLogger(__name__)


def check_segment_labels(label_names: dict[int, str], source) -> None:
    """Refuse (:class:`DicomError`, naming ``source``) a model two of whose non-zero labels would be one SegmentLabel
    in a DICOM SEG; :func:`medseg.segment.segment_case` checks it before inference,
    :func:`~medseg.io.seg_writing.write_dicom_seg` again."""
    written: dict[str, str] = {}
    for value in sorted(int(v) for v in label_names if int(v) != 0):
        name = str(label_names[value])
        if written.setdefault(_segment_label(name), name) != name:
            raise DicomError(f"{source}: labels '{written[_segment_label(name)]}' and '{name}' of the model "
                             f"would both be segment '{_segment_label(name)}' in a DICOM SEG (64 characters at most, "
                             "a backslash written as /); rename one, or write NIfTI instead")


def _segment_label(name) -> str:
    """A label's name as a SEG's SegmentLabel holds it (DICOM's LO): no backslash (DICOM's value separator, read back
    as two values; written as /), no leading or trailing spaces (readers drop them), at most 64 characters, accents
    composed (NFC: "ä" one character, not a letter and its accent, as macOS may give it). Applied to the SEG's labels
    too (several values, as another writer's backslash reads, are joined), so that the model's names and the SEG's
    are compared alike."""
    if not isinstance(name, str) and hasattr(name, "__iter__"):
        name = "\\".join(str(part) for part in name)
    return unicodedata.normalize("NFC", str(name)).replace("\\", "/").strip()[:64].strip()


def tell_segment_names(seg, read, path: Path, warn: bool) -> None:
    """Say (``warn``: a warning, else at info level) where the SEG's segment labels, by which its segments are matched,
    were read from undeclared text."""
    labels = [(f"segment {int(item.SegmentNumber)}'s label", item.get("SegmentLabel"))
              for item in seg.get("SegmentSequence", [])]
    note = read and undeclared_text_note(labels, read.encoding)
    if note:
        log.log(logging.WARNING if warn else logging.INFO, "%s: %s", path, note)


def put_segments(labels: np.ndarray, segments: dict[int, tuple[int, str]], slabs: Callable, path: Path,
                 label_names: dict[int, str], warn_missing: bool, named_in: str = "the model") -> None:
    """Write each segment (number → (label value, segment label), :func:`_segment_labels`) into ``labels`` from the
    blocks ``slabs(number)`` yields: ``(selector, mask)``, ``labels[selector]`` the block (basic slices, or lists of
    indices) and ``mask`` its voxels of that segment. Refused in one line: segments of two labels that overlap,
    segments of one label that overlap; disjoint segments of one label are their union (a warning:
    ``warn_missing``), and a label without a segment is warned of (``warn_missing``). ``named_in``: what names
    ``label_names``, as messages say (``the model``, or a dataset.json's path where its names paired the segments)."""
    indices = [np.arange(n) for n in labels.shape]
    drawn_by: dict[int, list[tuple[int, str]]] = {}
    for number, (value, name) in segments.items():
        clashes = same = 0
        first_clash = None  # (i, j, k, label) of the first voxel, in the array's order, that another label holds
        for selector, mask in slabs(number):
            basic = all(isinstance(part, slice) for part in selector)
            block = labels[selector]  # a view where basic
            under = block[mask]  # the voxels of this segment only
            clash = (under != 0) & (under != value)
            if clash.any():
                clashes += int(np.count_nonzero(clash))
                at = int(np.argmax(clash))
                where = np.unravel_index(int(np.flatnonzero(mask)[at]), mask.shape)
                found = (*(int(indices[t][selector[t]][where[t]]) for t in range(3)), int(under[at]))
                first_clash = found if first_clash is None else min(first_clash, found)
            same += int(np.count_nonzero(under == value))
            if not clashes and not same:
                block[mask] = value
                if not basic:
                    labels[selector] = block
        if clashes:
            other = drawn_by[first_clash[3]][0][1]
            raise InputError(f"{path}: segments '{other}' and '{name}' overlap in {counted(clashes, 'voxel')}; a "
                             "reference label map holds one label per voxel, so make them disjoint (e.g. the liver "
                             "without its tumour)")
        if same:  # two drawings of one structure (two readers'?): their union would be neither
            raise InputError(f"{path}: segments {_segment_list(drawn_by[value] + [(number, name)])} match one "
                             f"label of {named_in}, '{label_names[value]}', and overlap in {counted(same, 'voxel')}; "
                             "keep one of them in the reference")
        drawn_by.setdefault(value, []).append((number, name))
    for value, drawn in drawn_by.items():
        if len(drawn) > 1:  # parts or instances of one structure (lesion 1, lesion 2...), disjoint: their union
            log.log(logging.WARNING if warn_missing else logging.INFO, "%s: segments %s match one label of %s, "
                    "'%s', and do not overlap: read as that label, their union", path, _segment_list(drawn),
                    named_in, label_names[value])
    missing = [label_names[v] for v in sorted(label_names) if int(v) != 0 and v not in drawn_by]
    if missing and warn_missing:
        log.warning("%s: no segment for %s of %s: read as absent from this reference (Dice 0 where "
                    "predicted)", path, ", ".join(f"'{m}'" for m in missing), named_in)


_UNNAMED = re.compile(r"segment[\s_-]*\d*")  # a writer's stand-in for a name (Slicer's Segment_1): no name


def bare_name(name: str) -> str:
    """A name's letters and digits in one case: ``Left Kidney``, ``left_kidney`` and ``LEFT-KIDNEY`` alike."""
    return "".join(c for c in name.casefold() if c.isalnum())


def _name_matcher(by_name: dict[str, int]) -> Callable[[str], list[int]]:
    """The labels (SegmentLabel → value, as :func:`_segment_label` writes the names) a segment's label names: exactly,
    else regardless of case (all that fit, for the caller to refuse where several do), else regardless of spaces,
    ``_`` and ``-`` too where that singles one label out (``Left Kidney`` is nnU-Net's ``left_kidney``, as a 3D
    Slicer segmentation's names are compared; none where several fit). A SEG's segments are paired so with a model's
    labels and with a dataset.json's alike."""
    folded: dict[str, list[int]] = {}
    bare: dict[str, list[int]] = {}
    for name, value in by_name.items():
        folded.setdefault(name.casefold(), []).append(value)
        bare.setdefault(bare_name(name), []).append(value)

    def matches(label: str) -> list[int]:
        if label in by_name:
            return [by_name[label]]
        found = folded.get(label.casefold(), [])
        if not found and bare_name(label):
            fits = bare.get(bare_name(label), [])
            found = fits if len(fits) == 1 else []
        return list(found)

    return matches


def pair_by_name(seg_names: dict[int, str], names: dict[int, str], path: Path, named_in,
                 strict: bool = True) -> dict[int, int]:
    """Segment number → label value for a SEG whose segments are read where nothing but ``names`` (a dataset.json's,
    ``named_in`` naming it) names the labels: each segment is the label its SegmentLabel names (``seg_names``, as
    :func:`medseg.io.seg_placement.seg_label_names` gives them), exactly or, where that singles one out, regardless of
    case, else of spaces, ``_`` and ``-`` too (``Left Kidney`` is nnU-Net's ``left_kidney``, as a 3D Slicer
    segmentation's names are compared); a segment that names no label, or names none (``Segment 1``), stays its
    segment number, and is refused (:class:`InputError`, one line) where ``names`` names that value otherwise: the
    two names of one value disagree, and scoring it under either would be a Dice of another structure. Not
    ``strict`` (a drawing of what was scored, whose names may have paired it by its codes): such a segment, and one
    whose name fits several labels, stay their segment numbers, unrefused."""
    by_name = {_segment_label(name): int(value) for value, name in names.items() if int(value) != 0}
    name_matches = _name_matcher(by_name)
    paired, kept = {}, []
    for number, label in sorted(seg_names.items()):
        if not number:
            continue
        label = _segment_label(label)
        matches = name_matches(label)
        if len(matches) > 1 and not strict:
            matches = []
        if len(matches) > 1:
            raise InputError(f"{path}: segment {number} '{label}' matches more than one label of {named_in} "
                             f"regardless of case ({', '.join(n for n in by_name if n.casefold() == label.casefold())})"
                             "; name the segment exactly as one of them")
        if matches:
            paired[number] = matches[0]
            if matches[0] != number:
                log.info("%s: segment %d '%s' read as label %d '%s' of %s (paired by name)", path, number, label,
                         matches[0], names[matches[0]], named_in)
            continue
        unnamed = not label or _UNNAMED.fullmatch(label.casefold()) is not None
        if strict and not unnamed and number in names and int(number) != 0:
            listed = ", ".join(f"{value} {name}" for value, name in sorted(names.items()) if int(value) != 0)
            raise InputError(f"{path}: segment {number} is labelled '{label}', but {named_in} names label value "
                             f"{number} '{names[number]}' (its labels: {listed}); the segments of a SEG are paired "
                             "with the labels by name: if they are one structure, rename the segment or the label so "
                             "that the names agree")
        paired[number] = number
        if unnamed and strict:
            kept.append((number, label))
    for number, label in kept:  # its number is a label another segment's name took: which structure is it?
        by = next(((other, _segment_label(seg_names[other])) for other, value in sorted(paired.items())
                   if value == number and other != number), None)
        if by is not None:
            shown = f"'{label}'" if label else "(its label empty)"
            raise InputError(f"{path}: segment {number} {shown} names no label and would be read as its number, "
                             f"{number}, but segment {by[0]} '{by[1]}' is that label by name ('{names[number]}' of "
                             f"{named_in}); the two would be scored as one structure: name segment {number} as the "
                             "label it is")
    return paired


def _segment_list(segments: list[tuple[int, str]]) -> str:
    """``1 'lesion a', 2 'lesion b' and 3 'lesion c'``: segments by number and label, as messages name them."""
    named = [f"{number} '{name}'" for number, name in segments]
    return ", ".join(named[:-1]) + " and " + named[-1] if len(named) > 1 else "".join(named)


def _segment_labels(seg, label_names: dict[int, str], path: Path, label_codes: dict | None = None,
                    warn: bool = True) -> dict[int, tuple[int, str]]:
    """Segment number → (label value, segment label), matched by name: exactly, else regardless of case where that
    singles one model label out, else regardless of spaces, ``_`` and ``-`` too where that does
    (:func:`_name_matcher`, as :func:`pair_by_name` pairs them with a dataset.json's), else by the segment's codes
    (see :func:`~medseg.io.seg_reading.read_dicom_seg`). A LABELMAP SEG's segment 0 (its background) is no segment to
    match. A name matched to a coded label whose segment's codes are another label's is warned of (``warn``; told at
    info level on a second reading)."""
    by_name = {_segment_label(name): int(value) for value, name in label_names.items() if int(value) != 0}
    name_matches = _name_matcher(by_name)
    known = {int(value): str(name) for value, name in label_names.items()}
    by_codes: dict[tuple, list[int]] = {}
    coded = set()
    for value, concepts in (label_codes or {}).items():
        if int(value) in known and int(value) != 0 and concepts.get("type"):
            by_codes.setdefault(_identity(concepts), []).append(int(value))
            coded.add(int(value))
    segments = {}
    for item in seg.SegmentSequence:
        number, label = int(item.SegmentNumber), _segment_label(item.get("SegmentLabel", ""))
        if number == 0:
            continue
        matches = name_matches(label)
        if len(matches) > 1:
            raise InputError(f"{path}: segment {number} '{label}' matches more than one label of the model regardless "
                             f"of case ({', '.join(n for n in by_name if n.casefold() == label.casefold())}); name "
                             "the segment exactly as one of them")
        identity, described = _segment_identity(item)
        coded_as = by_codes.get(identity, []) if identity else []
        if matches:
            # (an uncoded label's own segments are coded Tissue, which another label may be coded as: no warning)
            if coded_as and matches[0] not in coded_as and (matches[0] in coded or identity != _TISSUE):
                log.log(logging.WARNING if warn else logging.INFO,
                        "%s: segment %d '%s' is coded %s, which are the codes of label '%s'; matched by its name to "
                        "'%s'", path, number, label, described, known[coded_as[0]], known[matches[0]])
        elif not by_codes:
            raise InputError(f"{path}: segment {number} '{label}' is not a label of the model ({', '.join(by_name)})"
                             f"{_rename_hint(number, known)}")
        elif len(coded_as) == 1:
            matches = coded_as
            log.info("%s: segment %d '%s' matched to label '%s' by its codes (%s)", path, number, label,
                     known[coded_as[0]], described)
        else:
            fit = (f"fit more than one ({', '.join(known[v] for v in coded_as)}); name the segment as one of them"
                   if coded_as else "fit none of them")
            raise InputError(f"{path}: segment {number} '{label}' is not a label of the model ({', '.join(by_name)}), "
                             f"and its codes ({described or 'none'}) {fit}")
        segments[number] = (matches[0], label)
    return segments


def _rename_hint(number: int, known: dict[int, str]) -> str:
    """How to go on where a segment matches no label: its name pairs it, not its number (the model's label of that
    value is named, where it has one)."""
    same = f" (its label {number} is '{known[number]}')" if number and number in known else ""
    return (f"; a SEG's segments are paired with the model's labels by name, not by number{same}: rename the segment "
            "as the label it is, or leave the segments the model has no label for out of the SEG")


_TISSUE = (("SCT", "85756007"), ())  # what write_dicom_seg codes a label without codes as


def _identity(concepts: dict) -> tuple:
    """What a label's codes say it is: its type and type modifier as (scheme, value) pairs; the category, which
    writers choose differently for the same structure, is left out."""
    modifier = concepts.get("modifier")
    return (_key(concepts["type"]), (_key(modifier),) if modifier else ())


def _key(code: dict) -> tuple[str, str]:
    return str(code["scheme"]).strip(), str(code["value"]).strip()


def _segment_identity(item) -> tuple[tuple | None, str]:
    """A SEG segment's type and type modifiers as :func:`_identity` gives a label's, and the same in words; the
    modifiers are read where the standard puts them (in the type's code item) or on the segment item, where older
    writers put them. (None, "") for a segment without a type."""
    types = item.get("SegmentedPropertyTypeCodeSequence") or []
    if not types:
        return None, ""
    kind = types[0]
    modifiers = list(kind.get("SegmentedPropertyTypeModifierCodeSequence") or []) or list(
        item.get("SegmentedPropertyTypeModifierCodeSequence") or [])
    concepts = [_code_of(c) for c in [kind, *modifiers]]
    described = ", ".join(f"{c['meaning']} ({c['scheme']} {c['value']})" for c in concepts)
    return (_key(concepts[0]), tuple(sorted(_key(c) for c in concepts[1:]))), described


def _code_of(item) -> dict:
    value = item.get("CodeValue") or item.get("LongCodeValue") or item.get("URNCodeValue") or ""
    return {"scheme": str(item.get("CodingSchemeDesignator", "")), "value": str(value),
            "meaning": str(item.get("CodeMeaning", ""))}
