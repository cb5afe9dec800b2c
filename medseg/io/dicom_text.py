"""DICOM text in files that state no character set: read as UTF-8 where its bytes are, as Latin-1 otherwise.

DICOM's default repertoire (no SpecificCharacterSet, an empty one, or ISO_IR 6 alone) is ASCII. pydicom reads text
bytes outside it as Latin-1 without a word: 'Müller' from byte 0xFC, but 'MÃ¼ller' from UTF-8 bytes. Latin-1 text
outside ASCII is next to never valid UTF-8, so a file whose text bytes are all valid UTF-8 is read as UTF-8. The
series reader (the description recorded and shown) and the DICOM SEG writer (the text copied into the SEG) read such
files by this one rule.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

__all__ = ["LATIN1", "TEXT_VRS", "UTF8", "UndeclaredText", "charset_terms", "read_undeclared_text", "states_no_charset",
           "undeclared_text_note"]

TEXT_VRS = ("SH", "LO", "ST", "LT", "UT", "UC", "PN")  # the VRs whose characters SpecificCharacterSet governs
UTF8, LATIN1 = "UTF-8", "Latin-1 (ISO_IR 100)"
# PerFrameFunctionalGroupsSequence: an item per frame (thousands in a SEG or an enhanced image) of positions, UIDs and
# codes; its text is left to pydicom, as parsing it to look cost a SEG reference a byte a voxel that stayed held
_PER_FRAME_GROUPS = 0x52009230
_READ_SO = "_medseg_undeclared_text"  # a dataset's attribute: how read_undeclared_text read its text


class UndeclaredText(NamedTuple):
    """How a file's text outside ASCII under no character set was read, and the first such value (keyword, text)."""

    encoding: str  # UTF8 or LATIN1
    keyword: str
    text: str


def charset_terms(dataset) -> list[str]:
    """The terms of ``dataset``'s SpecificCharacterSet, as a list (none where it states none)."""
    value = dataset.get("SpecificCharacterSet")
    return [str(value)] if isinstance(value, str) else [str(term) for term in value or []]


def states_no_charset(dataset) -> bool:
    """Whether ``dataset`` leaves its text in DICOM's default repertoire (ASCII): no SpecificCharacterSet, an empty
    one, or ISO_IR 6 alone."""
    return all(term.strip() in ("", "ISO_IR 6") for term in charset_terms(dataset))


def read_undeclared_text(dataset) -> UndeclaredText | None:
    """Where ``dataset`` states no character set but holds text bytes outside ASCII, read them all (its sequences'
    items too, but for the per-frame functional groups) as UTF-8 where all are valid UTF-8, else leave them to
    pydicom's Latin-1. Returns how they were read and the first such value; None where a character set is stated or
    all text is ASCII. To be called before the dataset's text values are read (pydicom decodes a value once, when it
    is first read). A dataset read so before gives the same answer again (a DICOM SEG's sources are the headers the
    series' reading read: their text already converted, a second look found none to tell of, and the SEG's warning
    that its names were read as UTF-8 was lost)."""
    read = getattr(dataset, _READ_SO, False)
    if read is False:
        read = _read_undeclared_text(dataset)
        setattr(dataset, _READ_SO, read)
    return read


def _read_undeclared_text(dataset) -> UndeclaredText | None:
    """:func:`read_undeclared_text` done."""
    from pydicom.charset import convert_encodings
    from pydicom.datadict import keyword_for_tag
    from pydicom.dataelem import convert_raw_data_element

    if not states_no_charset(dataset):
        return None
    found = list(_raw_texts(dataset))
    odd = [raw for _, raw in found if not raw.value.isascii()]
    if not odd:
        return None
    keyword = keyword_for_tag(odd[0].tag) or str(odd[0].tag)
    if not all(_is_utf8(raw.value) for raw in odd):
        return UndeclaredText(LATIN1, keyword, odd[0].value.decode("latin-1").rstrip(" "))
    for holder, raw in found:
        holder[raw.tag] = convert_raw_data_element(raw, encoding=convert_encodings(["ISO_IR 192"]), ds=holder)
    return UndeclaredText(UTF8, keyword, odd[0].value.decode().rstrip(" "))


def undeclared_text_note(values: list[tuple[str, object]], encoding: str = LATIN1) -> str | None:
    """One line on the first of ``values`` (what, value as read) that holds characters outside ASCII, saying how a
    file that states no character set had it read (``encoding``: see :func:`read_undeclared_text`); None where all
    are ASCII."""
    for what, value in values:
        text = "\\".join(str(part) for part in value) if isinstance(value, (list, tuple)) else str(value or "")
        if not text.isascii():
            how = "UTF-8, which its bytes are" if encoding == UTF8 else encoding
            return (f"{what} '{text}' holds characters outside ASCII, but no SpecificCharacterSet is stated (DICOM's "
                    f"default is ASCII): read as {how}")
    return None


def _is_utf8(value: bytes) -> bool:
    """Whether ``value`` is valid UTF-8."""
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _raw_texts(dataset) -> Iterator[tuple[object, object]]:
    """(dataset, element) for the text elements of ``dataset`` (its sequences' items too, but for the per-frame
    functional groups) not read yet: their bytes."""
    from pydicom.datadict import dictionary_VR
    from pydicom.dataelem import RawDataElement

    for tag in list(dataset.keys()):
        if tag == _PER_FRAME_GROUPS:
            continue
        element = dataset.get_item(tag, keep_deferred=True)  # a deferred value (the pixels) stays unread
        vr = element.VR
        if vr is None:  # implicit VR: the dictionary's
            try:
                vr = dictionary_VR(tag)
            except KeyError:
                continue
        if vr == "SQ":
            for item in dataset[tag].value or []:
                yield from _raw_texts(item)
        elif vr in TEXT_VRS and isinstance(element, RawDataElement) and element.value:
            yield dataset, element
