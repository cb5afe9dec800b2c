"""The files an NRRD / MetaImage image is read from: the data files a detached header (``.nhdr``, ``.mhd``) names —
its one data file, or each file of a list (``LIST``) or of a pattern (``slice%03d.raw 1 10 1``), as MetaImage's
library and teem read them, or why medseg does not read such a list or pattern —, the header that names a data file,
and the bytes they take on disk (:func:`stored_bytes`: what a cohort's planning bounds a header's voxels by)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from medseg.io.itk_header import _HEADER_MOST_BYTES, _fields, _header_text

__all__ = ["data_files_among", "header_naming", "itk_files_read", "stored_bytes"]

def itk_files_read(path: Path | str) -> list[Path]:
    """The files an NRRD / MetaImage image is read from, header first: the header alone for an attached one, and
    the data files a detached header (``.nhdr``, ``.mhd``) names: its one data file, or each of a list or a pattern of
    files (``LIST``, ``slice%03d.raw 1 10 1``), so that the hash and the signature of the image cover every file its
    voxels are read from."""
    path = Path(path)
    files = [path]
    for name in _data_files(path):
        data = path.parent / name
        if data not in files:
            files.append(data)
    return files


def data_files_among(paths) -> set[Path]:
    """The data files that the detached headers (``.nhdr``, ``.mhd``) among ``paths`` name: the ``.raw`` beside
    each ``.mhd``, which a folder's listing passes over as part of its image, not as a file of another kind."""
    found: set[Path] = set()
    for path in paths:
        if Path(path).name.lower().endswith((".nhdr", ".mhd")):
            found.update(itk_files_read(path)[1:])
    return found


def header_naming(path: Path | str) -> Path | None:
    """The detached header (``.nhdr``, ``.mhd``) beside ``path`` that names it as its data file; None where none
    does (or the folder cannot be listed)."""
    path = Path(path)
    try:
        headers = [p for p in path.parent.iterdir() if p.name.lower().endswith((".nhdr", ".mhd")) and p.is_file()]
    except OSError:
        return None
    real = os.path.realpath(path)
    return next((h for h in sorted(headers) if any(os.path.realpath(d) == real for d in itk_files_read(h)[1:])),
                None)


def stored_bytes(path: Path | str) -> tuple[int, int] | None:
    """The bytes an NRRD / MetaImage file and the data files its header names take on disk, without SimpleITK, and
    the most bytes of voxels one of them can stand for (a cohort's planning bounds the voxels a header declares by
    their product): deflate's 1032 (gzip, zlib, and any uncompressed encoding), or bzip2's 45,900,000 (NRRD's
    ``bz2``: a block holds 900,000 bytes of its run-length code, 5 of which stand for a run of 255 bytes at most).
    None where they cannot be told (a list or pattern of files not parsed)."""
    from medseg.io.free_space import BZIP2_MAX_RATIO, DEFLATE_MAX_RATIO

    path = Path(path)
    fields = _fields(path)
    encoding = fields.get("encoding", "").lower()
    ratio = BZIP2_MAX_RATIO if "bz2" in encoding or "bzip2" in encoding else DEFLATE_MAX_RATIO
    files = _data_source(path)
    if files == []:
        return None
    try:
        return path.stat().st_size + sum((path.parent / name).stat().st_size for name in files or ()), ratio
    except OSError:
        return None


def _data_files(path: Path) -> list[str]:
    """The data files a detached header names (relative to its folder, in the order they hold the voxels): its one
    data file, each file of a list (``LIST``: the names on the lines after it) or of a pattern (``slice%03d.raw 1 10
    1``: ``slice001.raw`` to ``slice010.raw``); none for an attached header, or a list or pattern that cannot be
    parsed (left to SimpleITK) or that medseg refuses (:func:`_data_files_problem`)."""
    return _data_source(path) or []


_MOST_DATA_FILES = 1 << 20  # a pattern naming more files than this is not expanded (left to SimpleITK)


def _data_source(path: Path) -> list[str] | None:
    """:func:`_data_files`, or None where the voxels follow the header in its own file (an attached header); an empty
    list where that cannot be told (a header not parsed, a list or pattern of files that cannot be)."""
    found = _data_files_named(path)
    return found if found is None or isinstance(found, list) else []


def _data_files_problem(path: Path) -> str | None:
    """Why medseg does not read the list or pattern of data files a MetaImage header names, None for any other
    header: a pattern whose step is not positive (MetaImage's library divides by it, which ends the process with a
    floating point exception, or reads files without end), or a list or pattern of fewer files than the pieces the
    header's ``DimSize`` declares (the library leaves the voxels of the others unset, and reads the image all the
    same)."""
    found = _data_files_named(path)
    return found if isinstance(found, str) else None


def _data_files_named(path: Path) -> list[str] | str | None:
    """:func:`_data_source`, or the text of :func:`_data_files_problem`."""
    fields = _fields(path)
    if not fields:
        return []
    metaimage = "elementdatafile" in fields
    value = fields.get("elementdatafile") if metaimage else fields.get("datafile")
    if not value or value.upper() == "LOCAL":
        return None
    words = value.split()
    if words[0].upper() == "LIST":
        names = _listed_files(path)
        return _metaimage_list(fields, words, names) if metaimage and names else names
    if metaimage and "%" in value:
        return _metaimage_pattern(fields, words)
    if "%" in words[0]:
        if len(words) not in (4, 5):  # format, first, last, step (and a sub-dimension): teem says what is wrong
            return []
        try:
            first, last, step = (int(word) for word in words[1:4])
            numbers = range(first, last + (1 if step > 0 else -1), step) if step else range(0)
            if not 0 < len(numbers) <= _MOST_DATA_FILES:
                return []
            return [words[0] % number for number in numbers]
        except (TypeError, ValueError, OverflowError):  # not one integer conversion in the format
            return []
    if metaimage and not os.path.lexists(path.parent / value) and os.path.lexists(path.parent / f"{value}.gz"):
        # MetaImage's library reads scan.raw.gz, decompressed, where the scan.raw its header names is not there
        return [f"{value}.gz"]
    return [value]


def _dim_sizes(fields: dict[str, str]) -> list[int] | None:
    """A MetaImage header's ``DimSize``, as many as its ``NDims``; None where they cannot be parsed."""
    try:
        sizes = [int(word) for word in fields.get("dimsize", "").split()]
        dims = int(fields.get("ndims", len(sizes)))
    except ValueError:
        return None
    return sizes[:dims] if 0 < dims <= len(sizes) and all(n > 0 for n in sizes[:dims]) else None


def _atof(word: str) -> int:
    """A word as MetaImage's library reads a number of a pattern (C's ``atof``, then an ``int``): its leading decimal
    number, truncated; 0 where it starts with none."""
    match = re.match(r"\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", word)
    try:
        return int(float(match.group())) if match else 0
    except (ValueError, OverflowError):
        return 0


def _c_quotient(a: int, b: int) -> int:
    """``a / b`` as C divides integers (toward zero)."""
    quotient = abs(a) // abs(b)
    return quotient if (a < 0) == (b < 0) else -quotient


def _metaimage_pattern(fields: dict[str, str], words: list[str]) -> list[str] | str:
    """The files of a MetaImage ``ElementDataFile`` pattern, one per slice of the last axis, as MetaImage's library
    reads them: ``slice%03d.raw`` alone numbers them 1 to the slices' count, ``slice%03d.raw 5`` from 5, ``… 1 300``
    steps by (300 - 1) / slices, ``… 1 300 1`` by 1 (a name with spaces: the last three words are the numbers), and
    no more files than slices are read; or why medseg does not read it (:func:`_data_files_problem`); [] where it
    cannot be told (the library refuses such a pattern itself)."""
    sizes = _dim_sizes(fields)
    if sizes is None or sizes[-1] > _MOST_DATA_FILES:
        return []
    slices = sizes[-1]
    name, first, last, step = words[0], 1, slices, 1
    if len(words) >= 2:
        first = _atof(words[1])
        last = first + slices - 1
    if len(words) >= 3:
        last = _atof(words[2])
        step = _c_quotient(last - first, slices)
    if len(words) >= 4:
        step = _atof(words[3])
    if len(words) >= 5:  # a name with spaces: the last three words are the numbers, digits alone (else refused)
        if not all(word.isdigit() for word in words[-3:]):
            return []
        name, (first, last, step) = " ".join(words[:-3]), (int(word) for word in words[-3:])
    pattern = " ".join(words)
    if step <= 0 and len(words) == 3:
        return (f"its data file pattern '{pattern}' gives no step, and MetaImage's library takes (last - first) / "
                f"slices, {step}, for it (by 0 it ends the process); give the step: '{pattern} 1'")
    if step <= 0:
        return (f"its data file pattern '{pattern}' steps by {step}; MetaImage's library reads files numbered upward "
                "only (by 0 it ends the process)")
    numbers = range(first, last + 1, step)[:slices]  # the library reads no more files than slices
    if len(numbers) < slices:
        return (f"its data file pattern '{pattern}' names {len(numbers)} files for the {slices} slices its DimSize "
                "declares (one a slice); MetaImage's library would leave the voxels of the others unset")
    try:
        return [name % number for number in numbers]
    except (TypeError, ValueError, OverflowError):  # not one integer conversion in the format
        return []


def _metaimage_list(fields: dict[str, str], words: list[str], names: list[str]) -> list[str] | str:
    """The files of a MetaImage ``ElementDataFile = LIST [nD]`` MetaImage's library reads: the first of ``names``,
    one for each piece of ``n`` dimensions (the header's ``NDims`` less 1 by default) the ``DimSize`` declares; or why
    medseg does not read it (fewer names than pieces)."""
    sizes = _dim_sizes(fields)
    if sizes is None:
        return names
    piece = _atof(words[1]) if len(words) > 1 else 0
    if piece <= 0 or piece > len(sizes):  # as the library takes it: not given, or more than the image's
        piece = len(sizes) - 1
    pieces = int(np.prod(sizes[piece:], dtype=np.int64))
    if len(names) < pieces <= _MOST_DATA_FILES:
        return (f"its data file list names {len(names)} files for the {pieces} {piece}D pieces its DimSize declares "
                "(one a file); MetaImage's library would leave the voxels of the others unset")
    return names[:pieces]


def _listed_files(path: Path) -> list[str]:
    """The files of a ``LIST``, one name a line after it: the header's lines after its ``data file`` field (NRRD),
    or the file's lines after its ``ElementDataFile`` line, to its end (MetaImage)."""
    found = _header_text(path)
    if found is None:
        return []
    text, offset = found
    if text.startswith("NRRD"):
        lines = text.splitlines()
        at = next((n for n, line in enumerate(lines) if not line.startswith("#")
                   and line.partition(":")[0].strip().lower().replace(" ", "") == "datafile"), len(lines))
        names = lines[at + 1:]
    else:
        try:
            with open(path, "rb") as handle:
                handle.seek(offset)
                rest = handle.read(_HEADER_MOST_BYTES + 1)
        except OSError:
            return []
        if len(rest) > _HEADER_MOST_BYTES or b"\0" in rest:
            return []
        names = rest.decode("latin-1").splitlines()
    return [name.strip() for name in names if name.strip()]
