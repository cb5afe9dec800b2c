"""A model package's label names and their DICOM codes (``model.json``'s ``labels`` and ``label_codes``): the checks
of them the schema's patterns cannot make, and the codes in one line of text."""

from __future__ import annotations

import re

from medseg.errors import ModelPackageError

__all__ = ["codes_text"]


def _check_label_keys(labels, where: str) -> None:
    """Refuse label keys that are negative numbers in words the schema's pattern cannot give (it calls them unknown
    keys): label values are whole numbers from 0 (background) up."""
    if not isinstance(labels, dict):
        return
    negative = [key for key in labels if isinstance(key, str) and re.fullmatch(r"\s*-[0-9]+\s*", key)]
    if negative:
        raise ModelPackageError(f"{where}: labels {', '.join(negative)}: label values are whole numbers from 0 "
                                "(background) up, not negative")


_CODE_TEXT = re.compile(r"[!-\[\]-~]([ -\[\]-~]*[!-\[\]-~])?")  # printable ASCII, no backslash, trimmed


def _alike(first: str, second: str) -> str:
    """How two label names that fold to one name are alike, with both shown: escaped where they differ in how an
    accent is composed (``'L\\xe4sion'`` and ``'La\\u0308sion'``), which reads the same otherwise."""
    if first == second:
        return f"both named {first!r}"
    if first.strip().casefold() == second.strip().casefold():
        return f"named alike (case and spaces aside): {first!r} and {second!r}"
    return f"named alike (case, spaces and how an accent is composed aside): {ascii(first)} and {ascii(second)}"


def _check_code_texts(codes, where: str) -> None:
    """The values and meanings of ``label_codes`` in words the schema's patterns cannot give: a number (YAML reads
    an unquoted ``0017`` as 15, ``1e5`` as a float) must be quoted; a backslash (DICOM's value separator), a control
    or non-ASCII character (the SEG may have the default character set) would make the SEG invalid."""
    if not isinstance(codes, dict):
        return
    for label, concepts in codes.items():
        for part, code in (concepts.items() if isinstance(concepts, dict) else ()):
            for field in ("value", "meaning"):
                text = code.get(field) if isinstance(code, dict) else None
                at = f"label_codes/{label}/{part}/{field}"
                if isinstance(text, (int, float)) and not isinstance(text, bool):
                    raise ModelPackageError(f"{where}: {at} is the number {text!r}: write it in quotes, as the text "
                                            "it is (a YAML or JSON number loses leading zeros and may be read in "
                                            "another base)")
                if isinstance(text, str) and text and not _CODE_TEXT.fullmatch(text):
                    raise ModelPackageError(f"{where}: {at} {text!r} must be printable ASCII without a backslash, "
                                            "and not start or end with a space: the DICOM SEG could not hold it")


def codes_text(label_codes: dict | None) -> str:
    """``label_codes`` in one line, label by label: ``1 Hippocampus (SCT 5366008), Anterior (SCT 255549009),
    category Anatomical Structure (SCT 91723000); 2 …`` (empty without codes)."""
    def shown(code: dict) -> str:
        return f"{code['meaning']} ({code['scheme']} {code['value']})"

    coded = sorted((int(k), v) for k, v in (label_codes or {}).items())
    return "; ".join(f"{value} {shown(c['type'])}{', ' + shown(c['modifier']) if c.get('modifier') else ''}, "
                     f"category {shown(c['category'])}" for value, c in coded)
