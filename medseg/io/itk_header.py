"""The text header of an NRRD / MetaImage file, parsed without SimpleITK: where it ends (and the voxels start), its
fields, the sizes and voxel size it declares (:func:`header_sizes`: a cohort's planning reads every input's), and
whether it states an anatomical orientation. A header that does not end within
:data:`_HEADER_MOST_BYTES` is refused in one line."""

from __future__ import annotations

import re
from pathlib import Path

from medseg.errors import ImageReadError

__all__ = ["header_sizes"]

def _format(path: Path) -> str:
    return "NRRD" if path.name.lower().endswith((".nrrd", ".nhdr")) else "MetaImage"


# NRRD's anatomical spaces (teem's names and abbreviations, in any letter case), which SimpleITK turns into LPS
_ANATOMICAL_SPACES = {f"{name}{time}" for names in (("right-anterior-superior", "ras"),
                                                    ("left-anterior-superior", "las"),
                                                    ("left-posterior-superior", "lps"))
                      for name, time in ((names[0], ""), (names[0], "-time"), (names[1], ""), (names[1], "t"))}


def _no_orientation(path: Path) -> str | None:
    """A note where the header states no orientation (an NRRD without ``space directions``, a MetaImage without
    ``TransformMatrix``): SimpleITK then lays the axes along its own world's (LPS), as 3D Slicer and ITK-SNAP show
    the file, which may mirror it; the same where an NRRD's ``space`` is not an anatomical one (``scanner-xyz``,
    ``3D-right-handed``, ``3D-left-handed``, or a ``space dimension`` of 3 alone), whose axes SimpleITK takes as L,
    P, S as they are; None where it states one (or the header is not parsed). A 2D image's plane (``space
    dimension: 2``, as ITK writes every 2D NRRD) is not noted: its own note says how it is read."""
    fields = _fields(path)
    nrrd = "sizes" in fields
    if nrrd and "spacedirections" in fields and fields.get("space", "").lower() not in _ANATOMICAL_SPACES \
            and (fields.get("space") or fields.get("spacedimension") != "2"):
        space = f"space {fields['space']}" if fields.get("space") else "no space, a space dimension alone"
        return (f"no anatomical orientation in the header ({space}): its x, y, z are taken as L, P, S, as SimpleITK "
                "places them; left and right may be swapped")
    if not fields or ("spacedirections" if nrrd else "transformmatrix") in fields \
            or (not nrrd and ("rotation" in fields or "orientation" in fields)):
        return None
    missing = "no space directions" if nrrd else "no TransformMatrix"
    return (f"no orientation in the header ({missing}): placed as SimpleITK places it (the axes along L, P, S: "
            "x = -i*spacing, y = -j*spacing, z = k*spacing); left and right may be swapped")


_HEADER_CHUNK = 1 << 16  # a header is read in blocks of this many bytes, up to its end
# the longest text header parsed: 3D Slicer's segmentations write a dozen fields per segment (one of 3000 segments
# takes about 2 MB); a header that goes on beyond this is refused
_HEADER_MOST_BYTES = 16 << 20
_NRRD_END = re.compile(rb"\r?\n\r?\n")  # an empty line (lines may end in CR LF, as teem reads them)
# an NRRD header's data file field: a header holding one is detached, whatever its name (.nhdr, or .nrrd)
_NRRD_DATA_FILE = re.compile(rb"^data ?file[ \t]*:", re.MULTILINE | re.IGNORECASE)
_METAIMAGE_END = re.compile(rb"^[ \t]*ElementDataFile[ \t]*=[^\n]*(?:\n|\Z)", re.MULTILINE)


class _HeaderTooLong(Exception):
    """A text header that does not end within :data:`_HEADER_MOST_BYTES`."""


def _header_text(path: Path) -> tuple[str, int] | None:
    """The text header of an NRRD / MetaImage file and the byte offset at which its voxels start (for an attached
    header; the file's size for a detached one, whose voxels are in their own file); None where it cannot be told
    (no end found before the file's end or a NUL byte). The header is read a block at a time up to its end (NRRD:
    an empty line, or the end of a detached header's file: a ``.nhdr``, or a ``.nrrd`` naming a ``data file``, as
    teem tells one; MetaImage: the ``ElementDataFile`` line), whatever its length: :class:`_HeaderTooLong` where it
    does not end within :data:`_HEADER_MOST_BYTES`."""
    if not path.is_file():
        return None
    detached = path.name.lower().endswith(".nhdr")
    raw = b""
    try:
        with open(path, "rb") as handle:
            while True:
                block = handle.read(_HEADER_CHUNK)
                at = max(0, raw.rfind(b"\n"))  # the search goes on from the last line read, which may go on here
                raw += block
                if raw.startswith(b"NRRD"):
                    found = _NRRD_END.search(raw, max(0, at - 1))
                    if found is not None:
                        return raw[:found.start()].decode("latin-1"), found.end()
                    if not block:  # a detached header (one naming its data file) may end with its file
                        detached = detached or _NRRD_DATA_FILE.search(raw) is not None
                        return (raw.decode("latin-1"), len(raw)) if detached else None
                else:
                    found = _METAIMAGE_END.search(raw, at)
                    # a line cut by the block's end goes on in the next one
                    if found is not None and (found.group().endswith(b"\n") or not block):
                        return raw[:found.end()].decode("latin-1"), found.end()
                    if not block:
                        return None
                if b"\0" in raw[at:]:  # binary bytes before a text header's end: not one
                    return None
                if len(raw) >= _HEADER_MOST_BYTES:
                    raise _HeaderTooLong
    except OSError:
        return None


def _header_length_error(path: Path) -> ImageReadError | None:
    """The error for a header that goes on beyond :data:`_HEADER_MOST_BYTES`, None for any other."""
    try:
        _header_text(path)
    except _HeaderTooLong:
        end = "no empty line" if _format(path) == "NRRD" else "no ElementDataFile line"
        kind = "an NRRD" if _format(path) == "NRRD" else "a MetaImage"
        return ImageReadError(f"{path}: its text header does not end within its first "
                              f"{_HEADER_MOST_BYTES / (1 << 20):g} MB ({end}); not {kind} header medseg reads")
    return None


def _fields(path: Path) -> dict[str, str]:
    """The header's fields, keys in lower case without spaces (NRRD's ``data file`` and ``datafile`` alike); none
    where the header cannot be parsed (reading the file with :func:`~medseg.io.itk_image._header` says why)."""
    try:
        found = _header_text(path)
    except _HeaderTooLong:
        return {}
    if found is None:
        return {}
    separator = ":" if found[0].startswith("NRRD") else "="
    fields = {}
    for line in found[0].splitlines():
        if line.startswith("#") or separator not in line:
            continue
        key, _, value = line.partition(separator)
        if separator == ":" and value.startswith("="):  # NRRD's key/value pairs (key:=value): not a field
            continue
        fields[key.strip().lower().replace(" ", "")] = value.strip()
    return fields


def header_sizes(path: Path | str) -> tuple[tuple[int, ...], tuple[float, ...] | None] | None:
    """The sizes of an NRRD / MetaImage file's axes and its voxel size in mm (None where the header does not tell
    it), parsed from its text header without SimpleITK (a cohort's planning reads every input's); None where the
    header cannot be parsed."""
    path = Path(path)
    fields = _fields(path)
    try:
        if "dimsize" in fields:  # MetaImage
            sizes = tuple(int(n) for n in fields["dimsize"].split())
            spacing = fields.get("elementspacing") or fields.get("elementsize")
            return sizes, tuple(abs(float(v)) for v in spacing.split()) if spacing else None
        if "sizes" in fields:  # NRRD: a direction vector's length is its axis' spacing ("none" for a non-space axis)
            sizes = tuple(int(n) for n in fields["sizes"].split())
            if "spacedirections" in fields:
                vectors = re.findall(r"\(([^)]*)\)", fields["spacedirections"])
                spacing = tuple(sum(float(v) ** 2 for v in vector.split(",")) ** 0.5 for vector in vectors)
            else:
                spacing = tuple(abs(float(v)) for v in fields.get("spacings", "").split() if v.lower() != "nan")
            return sizes, spacing or None
    except ValueError:
        return None
    return None
