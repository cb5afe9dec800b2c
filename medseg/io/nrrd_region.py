"""A box of an NRRD file's voxels read from its bytes alone: SimpleITK (teem) reads an NRRD whole in its stored
type for any part of it, so the QA report held the whole volume to draw three slices of a crop.

The header's ``type``, ``sizes``, ``endian``, ``encoding``, ``line skip``, ``byte skip`` and ``data file`` say where
each voxel lies: in the file after an attached header, or in the one data file a detached header names. Raw data is
read a slice of the box at a time (its rows, from their offsets); gzip data is decompressed as a stream, the bytes
before and between the box's rows discarded, and to its declared end, so that a stream cut short or corrupt is not
drawn from where reading the whole file refuses it. Anything else (text or bzip2 encodings, a list or pattern of
data files, a type or shape that SimpleITK does not read as the header says) is not read here: the caller reads the
file through SimpleITK.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

__all__ = ["nrrd_dtype", "read_nrrd_region"]

# teem's names of NRRD's types (in any letter case); "block" is none numpy holds
_TYPES = {
    **dict.fromkeys(("signed char", "int8", "int8_t"), "i1"),
    **dict.fromkeys(("uchar", "unsigned char", "uint8", "uint8_t"), "u1"),
    **dict.fromkeys(("short", "short int", "signed short", "signed short int", "int16", "int16_t"), "i2"),
    **dict.fromkeys(("ushort", "unsigned short", "unsigned short int", "uint16", "uint16_t"), "u2"),
    **dict.fromkeys(("int", "signed int", "int32", "int32_t"), "i4"),
    **dict.fromkeys(("uint", "unsigned int", "uint32", "uint32_t"), "u4"),
    **dict.fromkeys(("longlong", "long long", "long long int", "signed long long", "signed long long int", "int64",
                     "int64_t"), "i8"),
    **dict.fromkeys(("ulonglong", "unsigned long long", "unsigned long long int", "uint64", "uint64_t"), "u8"),
    "float": "f4",
    "double": "f8",
}
_RAW, _GZIP = ("raw",), ("gzip", "gz")
_CHUNK = 1 << 20  # bytes of a gzip stream decompressed at a time where they are discarded


def nrrd_dtype(fields: dict[str, str]) -> np.dtype | None:
    """The numpy type (with its byte order) of an NRRD header's voxels (``fields`` as
    :func:`medseg.io.itk_header._fields` parses them); None where the type is not one of numpy's, or the byte order of
    a type of several bytes is not stated."""
    code = _TYPES.get(" ".join(fields.get("type", "").lower().split()))
    if code is None:
        return None
    if code[1] == "1":
        return np.dtype(code)
    endian = fields.get("endian", "").lower()
    if endian not in ("little", "big"):
        return None
    return np.dtype(("<" if endian == "little" else ">") + code)


def read_nrrd_region(fields: dict[str, str], data: Path, start: int, parts: list[range]) -> np.ndarray | None:
    """The voxels of the box ``parts`` (one range of step 1 per axis, i, j, k: the file's fastest axis first) of a
    3D NRRD whose header's ``fields`` are given and whose data begins at byte ``start`` of file ``data`` (after an
    attached header; 0 in a detached header's data file), as float32 in (i, j, k) order, as numpy converts the stored
    values; None where this reader does not read the file as SimpleITK does, or the data is short, unreadable or
    corrupt (the caller reads the whole file then, for its values or its error)."""
    dtype = nrrd_dtype(fields)
    encoding = fields.get("encoding", "").lower()
    try:
        sizes = [int(n) for n in fields.get("sizes", "").split()]
        line_skip = int(fields.get("lineskip", "0"))
        byte_skip = int(fields.get("byteskip", "0"))
    except ValueError:
        return None
    if dtype is None or encoding not in _RAW + _GZIP or fields.get("dimension") != "3" or len(sizes) != 3 \
            or min(sizes) < 1 or line_skip < 0 or byte_skip < -1 or (byte_skip == -1 and encoding in _GZIP):
        return None  # gzip with a byte skip of -1: teem takes the stream's last bytes, decompressing it all
    if len(parts) != 3 or any(p.step != 1 or len(p) == 0 or p.start < 0 or p.stop > n for p, n in zip(parts, sizes)):
        return None
    from medseg.io.nifti_files import _GZIP_DAMAGE

    try:
        with open(data, "rb") as handle:
            handle.seek(start)
            if not _skip_lines(handle, line_skip):
                return None
            if encoding in _RAW:
                return _raw_region(handle, dtype, sizes, byte_skip, parts)
            return _gzip_region(handle, dtype, sizes, byte_skip, parts)
    except (OSError, ValueError, *_GZIP_DAMAGE):  # unreadable, or a gzip stream cut short or corrupt
        return None


def _skip_lines(handle, count: int) -> bool:
    """Skip ``count`` lines of ``handle``, as teem does (``line skip``); False where they end otherwise than in LF or
    CR LF (teem ends a line at a lone CR too) or the file ends first."""
    for _ in range(count):
        line = handle.readline()
        if not line.endswith(b"\n") or b"\r" in line[:-2]:
            return False
    return True


def _box(parts: list[range]) -> np.ndarray:
    """The float32 box filled slice by slice: numpy's order, k, j, i."""
    return np.empty((len(parts[2]), len(parts[1]), len(parts[0])), np.float32)


def _rows(sizes: list[int], dtype: np.dtype, parts: list[range], k: int) -> tuple[int, int]:
    """The offset (from the voxels' first byte) and the length in bytes of the rows of slice ``k`` the box holds."""
    width, height = sizes[0], sizes[1]
    return (k * height + parts[1].start) * width * dtype.itemsize, len(parts[1]) * width * dtype.itemsize


def _fill(box: np.ndarray, index: int, rows: bytes, dtype: np.dtype, width: int, parts: list[range]) -> None:
    stored = np.frombuffer(rows, dtype=dtype).reshape(len(parts[1]), width)[:, parts[0].start:parts[0].stop]
    with np.errstate(over="ignore", invalid="ignore"):
        box[index] = stored  # as astype(float32): double beyond float32's range is infinite, as a whole read gives


def _raw_region(handle, dtype: np.dtype, sizes: list[int], byte_skip: int, parts: list[range]) -> np.ndarray | None:
    """:func:`read_nrrd_region` of raw data: each slice's rows read from their offset."""
    total = int(np.prod(sizes, dtype=np.int64)) * dtype.itemsize
    end = os.fstat(handle.fileno()).st_size
    first = end - total if byte_skip == -1 else handle.tell() + byte_skip  # -1: the data ends with the file
    if first < handle.tell() or first + total > end:
        return None
    box = _box(parts)
    for index, k in enumerate(parts[2]):
        offset, length = _rows(sizes, dtype, parts, k)
        handle.seek(first + offset)
        rows = handle.read(length)
        if len(rows) != length:
            return None
        _fill(box, index, rows, dtype, sizes[0], parts)
    return box.transpose(2, 1, 0)


def _gzip_region(handle, dtype: np.dtype, sizes: list[int], byte_skip: int, parts: list[range]) -> np.ndarray | None:
    """:func:`read_nrrd_region` of gzip data: the stream decompressed once, the box's rows kept, to the data's
    declared end (and the gzip trailer's check where the stream ends there)."""
    from medseg.io.nifti_files import _gzip_reader

    if handle.read(2) != b"\x1f\x8b":  # teem reads gzip streams alone
        return None
    handle.seek(-2, os.SEEK_CUR)
    total = int(np.prod(sizes, dtype=np.int64)) * dtype.itemsize
    box = _box(parts)
    with _gzip_reader.GzipFile(fileobj=handle, mode="rb") as stream:
        at = 0

        def skip_to(offset: int) -> bool:
            nonlocal at
            while at < offset:
                block = stream.read(min(_CHUNK, offset - at))
                if not block:
                    return False
                at += len(block)
            return True

        for index, k in enumerate(parts[2]):
            offset, length = _rows(sizes, dtype, parts, k)
            if not skip_to(byte_skip + offset):
                return None
            rows = _read_exactly(stream, length)
            if rows is None:
                return None
            at += length
            _fill(box, index, rows, dtype, sizes[0], parts)
        if not skip_to(byte_skip + total):  # a stream cut short after the box: a whole read refuses it
            return None
        stream.read(1)  # where the stream ends here, its trailer is checked (a corrupt one: teem's "read error")
    return box.transpose(2, 1, 0)


def _read_exactly(stream, length: int) -> bytes | None:
    chunks, left = [], length
    while left:
        block = stream.read(left)
        if not block:
            return None
        chunks.append(block)
        left -= len(block)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)
