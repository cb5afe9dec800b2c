"""The voxels of an Analyze or NIfTI image read into one array, bit for bit as nibabel reads them, with about one copy
of the volume at the peak (nibabel holds the stored or decompressed voxels beside the result): the whole volume as
float32 or float64 or as stored, a label image's integers, or a region of it (whole, or a slab at a time); a gzip
stream read to its end, where gzip checks it, and the bytes after the voxels a header declares counted."""

from __future__ import annotations

import contextlib
import gzip
import logging
import math
import os
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np

from medseg.errors import ImageReadError
from medseg.io.nifti_files import (
    _GZIP_DAMAGE,
    _GZIP_ERRORS,
    _declared_voxel_bytes,
    _gzip_damage_text,
    _gzip_reader,
    _stray_bytes_maybe,
    _uncompressed_gz,
)
from medseg.io.read_warnings import warnings_naming

__all__ = ["float_region_slabs", "read_float_region", "read_stored_labels", "scaled_float32", "stored_region_slabs"]

# the NIfTI reader's logger, whichever of its modules warns: its warnings are told as "WARNING medseg.io.nifti: ..."
log = logging.getLogger("medseg.io.nifti")

def _float32_may_merge(image, dtype: np.dtype) -> bool:
    """Whether reading ``image`` as float32 may make distinct stored values equal: float64 or wide integers, or
    values scaled by the header. Integers of 16 bits or less are exact in float32, and are not checked again."""
    wide = (dtype.kind == "f" and dtype.itemsize > 4) or (dtype.kind in "iu" and dtype.itemsize > 2)
    return wide or not _unscaled(image)


_DISTINCT_SPAN = 1 << 22  # whole numbers spanning at most this many are counted in a table, not sorted


def distinct_float32(array: np.ndarray) -> int:
    """How many distinct values ``array`` holds: float32, finite, of one sign and far from 0 beside its spread (as
    where float32 holds fewer than 65536 steps over its range). Counted on their bit patterns a block at a time, in a
    table of one byte per float32 step: no sorted copy of the volume (2.2 GB and 10 s for a 512×512×300 one)."""
    flat = np.ravel(array, order="K")
    bits = flat.view(np.int32)
    low, high = int(bits.min()), int(bits.max())
    if high - low > _DISTINCT_SPAN:  # not what the caller checks; counted all the same
        return int(np.unique(flat).size)
    seen = np.zeros(high - low + 1, bool)
    for start in range(0, bits.size, 1 << 22):
        seen[bits[start:start + (1 << 22)].astype(np.int64) - low] = True
    return int(np.count_nonzero(seen))


def _slab_distinct(slab: np.ndarray) -> np.ndarray:
    """The sorted distinct values of ``slab`` (stored voxels), in its dtype: whole numbers over a short span (an int32
    image, float64 ones offset by 1e9) in a table, others sorted."""
    flat = slab.reshape(-1)
    if flat.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            whole = bool(np.all(np.abs(flat) < 2.0**53)) and bool(np.all(flat == np.rint(flat)))
        if not whole:
            return np.unique(flat)
    elif flat.dtype.kind not in "iu" or flat.dtype.itemsize > 4:  # int64 / uint64: sorted (no overflow to mind)
        return np.unique(flat)
    values = flat.astype(np.int64)  # an int8's offsets from its lowest overflow int8
    low = int(values.min())
    if int(values.max()) - low > _DISTINCT_SPAN:
        return np.unique(flat)
    seen = np.zeros(int(values.max()) - low + 1, bool)
    seen[values - low] = True
    return (np.flatnonzero(seen) + low).astype(flat.dtype)


def distinct_stored_values(image, cap: int) -> tuple[int | None, np.ndarray] | None:
    """How many distinct values a loaded image's file stores (None beyond ``cap``), and the lowest and highest of them
    scaled as ``np.asanyarray(image.dataobj)`` scales them (float64 for a scaled file). Read a slab at a time
    (:func:`stored_region_slabs`): about 2 MB of float64 voxels and ``cap`` values held at once, where reading them
    into one array and sorting it held four copies of the volume. None where the file cannot be read so."""
    from nibabel.volumeutils import apply_read_scaling

    proxy = image.dataobj
    if not (hasattr(proxy, "_shape") and hasattr(proxy, "slope") and hasattr(proxy, "inter")):
        return None
    region = tuple(slice(None) for _ in proxy._shape)
    seen, low, high = None, None, None
    for item in stored_region_slabs(image, region, voxels=1 << 18):
        if item is None:
            return None
        slab = item[1]
        if slab.size == 0:
            continue
        if seen is None and low is not None:  # beyond the cap: only the range is still wanted
            low, high = min(low, slab.min()), max(high, slab.max())
            continue
        values = _slab_distinct(slab)
        low = values[0] if low is None else min(low, values[0])
        high = values[-1] if high is None else max(high, values[-1])
        seen = values if seen is None else np.union1d(seen, values)
        if seen.size > cap:
            seen = None
    if low is None:
        return None
    ends = np.asanyarray(apply_read_scaling(np.array([low, high], dtype=np.dtype(proxy._dtype)),
                                            np.asanyarray(proxy.slope), np.asanyarray(proxy.inter)))
    return (None if seen is None else int(seen.size)), np.sort(ends)


def _excess_voxel_bytes(image, left: dict[str, int]) -> int:
    """How many bytes an Analyze / NIfTI image file holds after the voxels its header declares, 0 when they are all
    zero bytes (padding to a block size) or for other formats (MGH keeps tags there). ``left``: what was left of each
    gzip stream once the voxels were read (:meth:`_CheckedStreams.read_to_end`)."""
    import os

    if not isinstance(image, nib.AnalyzeImage):
        return 0
    name = image.file_map["image"].filename
    if name in left:
        return left[name]
    try:
        end = int(getattr(image.dataobj, "offset", 0)) + _declared_voxel_bytes(image)
        excess = os.path.getsize(name) - end
        if excess <= 0:
            return 0
        with open(name, "rb") as handle:  # read only when there is more: a file of the declared size is the norm
            handle.seek(end)
            while block := handle.read(_VOXEL_BLOCK_BYTES):
                if block.strip(b"\0"):
                    return excess
    except (OSError, TypeError):
        return 0
    return 0


class _CheckedStreams:
    """``image`` re-bound to decompressing handles of its own for its gzipped files, so that the one pass nibabel
    makes over the voxels goes on to the end of each stream (:meth:`read_to_end`), where gzip checks its checksum and
    length: nibabel stops once it has the voxels, so a damaged stream that still decodes, or a file cut inside its
    last bytes, would otherwise read as an image. Uncompressed files are left as nibabel opened them."""

    def __init__(self, image, reader=gzip):
        from nibabel.fileholders import FileHolder

        names = {key: holder.filename for key, holder in image.file_map.items()}
        # only files that are there: an Analyze image's file map names an SPM .mat whether or not it exists, and a
        # missing image file is nibabel's to report when it reads the voxels
        self.handles = {}
        try:
            for name in set(names.values()):
                if (name and str(name).lower().endswith((".gz", ".mgz")) and Path(name).is_file()
                        and not _uncompressed_gz(Path(name))):
                    self.handles[name] = reader.open(name, "rb")
        except BaseException:  # the handles opened before one that could not be (an .img.gz beside its .hdr.gz)
            self.close()
            raise
        self.image = image
        if self.handles:
            try:
                with warnings_naming(names.get("header") or names.get("image")):  # read again: as the first read
                    self.image = type(image).from_file_map(
                        {key: FileHolder(filename=name, fileobj=self.handles.get(name)) for key, name in names.items()},
                        mmap=False)
            except BaseException:
                self.close()
                raise

    def read_to_end(self) -> dict[str, int]:
        """Read each stream to its end; how many bytes were left in each, by file name (0 when they were all zero
        bytes: padding)."""
        left = {}
        for name, handle in self.handles.items():
            left[name], padding = 0, True
            try:
                while block := handle.read(_VOXEL_BLOCK_BYTES):
                    left[name] += len(block)
                    padding = padding and not block.strip(b"\0")
                if padding:
                    left[name] = 0
            except gzip.BadGzipFile as error:
                if str(error).startswith("Not a gzipped file"):  # bytes after the checked stream: gunzip skips them too
                    log.warning("%s: bytes after the end of the gzip stream ignored", name)
                    continue
                raise ImageReadError(f"{name}: {_gzip_damage_text(error)}") from error
            except _GZIP_ERRORS as error:
                raise ImageReadError(f"{name}: {_gzip_damage_text(error)}") from error

        return left

    def close(self) -> None:
        for handle in self.handles.values():
            handle.close()

    def __enter__(self) -> _CheckedStreams:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _read_float(image, dtype: np.dtype) -> np.ndarray:
    """``image.get_fdata(dtype=dtype)`` for float32 or float64, bit for bit, in one array: nibabel holds the stored
    voxels whole beside the result (and scales a stored int16 image in float64 before the cast to float32: a
    512×512×200 CT peaked at 802 MB read, 252 MB read whole then scaled block by block). The stored voxels are read
    a block at a time (:func:`_read_whole`) and scaled, as nibabel scales them, into the result."""
    proxy = image.dataobj
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64) or not _whole_readable(proxy):
        return image.get_fdata(dtype=dtype)
    slope, inter = _scaling(proxy, dtype)
    if np.dtype(proxy._dtype) == dtype and (float(slope), float(inter)) == (1.0, 0.0):
        return _read_whole(proxy)
    from nibabel.volumeutils import apply_read_scaling

    return _read_whole(proxy, dtype, lambda stored: apply_read_scaling(stored, slope, inter))


def _all_finite(array: np.ndarray) -> bool:
    """``np.all(np.isfinite(array))`` a block of :data:`_VOXEL_BLOCK_BYTES` at a time: on the whole volume it makes a
    boolean one, a quarter of a float32 volume beside it (79 MB for a 512×512×300 CT)."""
    flat = array.reshape(-1, order="F" if array.flags.f_contiguous else "C")  # a view of a contiguous array
    step = max(1, _VOXEL_BLOCK_BYTES // array.itemsize)
    return all(bool(np.isfinite(flat[start:start + step]).all()) for start in range(0, flat.size, step))


def _read_stored(image) -> np.ndarray:
    """``np.asarray(image.dataobj)`` of an image without scaling (its stored values, in their stored type, byte order
    included), read into one array (:func:`_read_whole`)."""
    return _read_whole(image.dataobj) if _whole_readable(image.dataobj) else np.asarray(image.dataobj)


_VOXEL_BLOCK_BYTES = 1 << 20  # stored voxels read at a time by _read_whole: 1 MB


def _whole_readable(proxy) -> bool:
    """Whether :func:`_read_whole` reads ``proxy`` (nibabel's ArrayProxy, as NIfTI, Analyze and MGH images have)."""
    return (all(hasattr(proxy, name) for name in ("_shape", "_dtype", "_offset", "order", "_get_fileobj", "_lock",
                                                  "slope", "inter"))
            and proxy.order in ("F", "C"))


def _read_whole(proxy, dtype: np.dtype | None = None, convert=None) -> np.ndarray:
    """All the voxels of ``proxy`` (an image's ``dataobj``: :func:`_whole_readable`) in one array made up front, in
    the stored shape and memory order (Fortran for NIfTI), as nibabel reads them: with ``dtype`` None, the stored
    values in their stored type (byte order included), decompressed straight into the array; else ``convert(block)``
    of each block of stored values, cast into ``dtype``. nibabel reads a gzip stream whole into a buffer of its own
    before it makes the array (and ``readinto`` of a gzip file decompresses into a bytes object first): twice the
    volume at the peak, where this holds the array and one block of 1 MB. The file is read from its current
    position on (a stream already open, as :class:`_CheckedStreams` opens it for its checks, goes on from there);
    a file that ends early raises nibabel's OSError, a damaged stream the decompressor's error."""
    shape, stored = tuple(int(n) for n in proxy._shape), np.dtype(proxy._dtype)
    out = np.empty(shape, stored if dtype is None else dtype, order=proxy.order)
    flat = out.reshape(-1, order=proxy.order)  # a view: the array is contiguous in the file's order
    step = max(1, _VOXEL_BLOCK_BYTES // stored.itemsize)
    block = None if dtype is None else np.empty(min(step, flat.size), stored)
    total, done = flat.size * stored.itemsize, 0
    with _opened(proxy) as fileobj, proxy._lock:
        fileobj.seek(proxy._offset)
        for start in range(0, flat.size, step):
            count = min(step, flat.size - start)
            target = flat[start:start + count] if block is None else block[:count]
            memory = memoryview(target.view(np.uint8))
            got = 0
            while got < len(memory):
                read = fileobj.readinto(memory[got:])
                if not read:  # nibabel's words for it
                    raise OSError(f"Expected {total} bytes, got {done + got} bytes from "
                                  f"{getattr(fileobj, 'name', 'object')}\n - could the file be damaged?")
                got += read
            done += got
            if block is not None:
                flat[start:start + count] = convert(target)
    return out


def read_float_region(image, region: tuple[slice, ...]) -> np.ndarray | None:
    """The voxels of ``region`` (one slice per axis of the stored array) of a loaded image as float32, bit for bit
    as :func:`~medseg.io.nifti.read_nifti` reads them, reading only that part of the file (a gzip stream is decompressed
    up to the region's end, a block at a time, and not kept). None where the part cannot be read, or where its values
    are what :func:`~medseg.io.nifti.read_nifti` refuses or checks further (NaN or infinite; all one value after the
    cast to float32): reading the whole file names the problem."""
    proxy = image.dataobj
    if not (hasattr(proxy, "_get_unscaled") and hasattr(proxy, "slope") and hasattr(proxy, "inter")):
        return None
    try:
        with np.errstate(over="ignore", invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            part = _scaled(np.asanyarray(proxy._get_unscaled(tuple(region))), proxy, np.dtype(np.float32))
    except (*_GZIP_ERRORS, ValueError, OverflowError, TypeError):
        return None
    if not np.all(np.isfinite(part)):
        return None
    if part.size > 1 and _float32_may_merge(image, np.dtype(image.get_data_dtype())) and part.min() == part.max():
        return None
    return part


def stored_region_slabs(image, region: tuple[slice, ...], voxels: int = 1 << 22):
    """The stored voxels of ``region`` (one slice per axis of the stored array) of a loaded image, a slab at a time:
    yields ``(start, stored)`` for slabs of about ``voxels`` voxels along the stored array's slowest axis (the last
    for NIfTI's Fortran order), ``start`` counted from the region's start there. The file is opened once and read
    forward (a gzip stream is decompressed once, up to the region's end). Where the file cannot be read so, the last
    item yielded is None: the caller reads it as nibabel does, for its error or its values."""
    proxy = image.dataobj
    needed = ("_get_fileobj", "_shape", "_dtype", "_offset", "order", "_lock")
    if not all(hasattr(proxy, name) for name in needed) or len(region) != len(proxy._shape):
        yield None
        return
    from nibabel.fileslice import fileslice

    axis = len(region) - 1 if proxy.order == "F" else 0
    span = range(*region[axis].indices(proxy._shape[axis]))
    step = max(1, voxels // max(1, math.prod(len(range(*r.indices(n))) for a, (r, n) in
                                             enumerate(zip(region, proxy._shape)) if a != axis)))
    try:
        with _opened(proxy) as fileobj:
            for start in range(0, len(span), step):
                slab = list(region)
                slab[axis] = slice(span.start + start, span.start + min(start + step, len(span)))
                yield start, np.asanyarray(fileslice(fileobj, tuple(slab), proxy._shape, proxy._dtype, proxy._offset,
                                                     order=proxy.order, lock=proxy._lock))
    except (*_GZIP_ERRORS, ValueError, OverflowError, TypeError):
        yield None


def _opened(proxy):
    """The file of ``proxy`` opened for reading: a gzip-compressed file named ``.gz`` decompressed by ISA-L where it
    is installed (a 512×512×1000 int16 CT in 1.6 s instead of nibabel's 5.0 s), any other as nibabel opens it. Bytes
    after the end of the gzip stream, which ISA-L's reader refuses, fail the read: the caller reads the file as
    nibabel does. A stream opened already (a :class:`_CheckedStreams` handle) is read as it is, and left open."""
    file_like = getattr(proxy, "file_like", None)
    if (_gzip_reader is not gzip and isinstance(file_like, (str, os.PathLike))
            and str(file_like).lower().endswith(".gz")):
        return _gzip_reader.open(file_like, "rb")
    if hasattr(file_like, "readinto") and hasattr(file_like, "seek"):  # as nibabel's opener would use it
        return contextlib.nullcontext(file_like)
    return proxy._get_fileobj()


def float_region_slabs(image, region: tuple[slice, ...], voxels: int = 1 << 22):
    """:func:`read_float_region` a slab at a time: yields ``(start, stored, part)`` as :func:`stored_region_slabs`
    yields its slabs, with ``part`` the slab scaled into float32 bit for bit as :func:`~medseg.io.nifti.read_nifti`
    reads it. Where :func:`read_float_region` would return None, the last item yielded is None: the caller reads the
    whole image, for its error or its values."""
    proxy = image.dataobj
    if not (hasattr(proxy, "slope") and hasattr(proxy, "inter")):
        yield None
        return
    merge = _float32_may_merge(image, np.dtype(image.get_data_dtype()))
    low = high = None
    for item in stored_region_slabs(image, region, voxels):
        if item is None:
            yield None
            return
        start, stored = item
        try:
            part = scaled_float32(stored, proxy)
        except (ValueError, OverflowError, TypeError):
            yield None
            return
        if not np.all(np.isfinite(part)):
            yield None
            return
        if merge and part.size:
            low = part.min() if low is None else min(low, part.min())
            high = part.max() if high is None else max(high, part.max())
        yield start, stored, part
    if merge and math.prod(len(range(*r.indices(n))) for r, n in zip(region, proxy._shape)) > 1 and low == high:
        yield None


def read_stored_labels(image) -> np.ndarray | None:
    """The voxels of a gzip-compressed label image as integers, as ``np.asanyarray(image.dataobj)`` gives them (their
    stored type; float or scaled voxels rounded to int32 as ``np.rint(...).astype(np.int32)`` rounds them), read into
    one array (:func:`_read_whole`): nibabel holds the decompressed bytes and the array at once, twice the volume
    (0.63 GB more for a 1024×1024×300 label image). The gzip stream is read to its end, where gzip checks its
    checksum and length, as :func:`~medseg.io.nifti.read_nifti` reads it: a damaged stream is an :class:`ImageReadError`
    naming the file (nibabel stops once it has the voxels, and a stream that still decodes read as a label image, drawn
    wrong in silence). None where it is to be read as nibabel reads it: a file not compressed (mapped), or one that
    cannot be read so for another reason than a damaged stream (reading it whole names the problem)."""
    proxy = image.dataobj
    file_like = getattr(proxy, "file_like", None)
    if not (isinstance(file_like, (str, os.PathLike)) and str(file_like).lower().endswith(".gz")
            and _whole_readable(proxy)):
        return None
    try:
        return _checked_stored_labels(image, _gzip_reader)
    except ImageReadError as error:
        if _gzip_reader is gzip or not _stray_bytes_maybe(error.__cause__):
            raise
    # bytes after the end of the stream, which ISA-L's reader meets reading ahead: the standard library's tells them
    # from a damaged stream (as read_nifti reads such a file)
    return _checked_stored_labels(image, gzip)


def _checked_stored_labels(image, reader) -> np.ndarray | None:
    """:func:`read_stored_labels` with the gzip stream decompressed by ``reader`` and read to its end."""
    name = image.dataobj.file_like
    try:
        with _CheckedStreams(image, reader) as streams:
            array = _stored_labels(streams.image)
            if array is not None:
                streams.read_to_end()
            return array
    except ImageReadError:  # the stream's end, checked
        raise
    except _GZIP_DAMAGE as error:
        raise ImageReadError(f"{name}: {_gzip_damage_text(error)}") from error
    except (OSError, ValueError):  # reading it as nibabel does names the problem
        return None


def _stored_labels(image) -> np.ndarray | None:
    """:func:`read_stored_labels` of ``image`` as it is opened; a damaged gzip stream raises the decompressor's
    error."""
    proxy = image.dataobj
    if not _whole_readable(proxy):
        return None
    stored = np.dtype(proxy._dtype)
    try:
        if not _unscaled(image):
            from nibabel.volumeutils import apply_read_scaling

            slope, inter = np.asanyarray(proxy.slope), np.asanyarray(proxy.inter)  # as dataobj scales them
            return _read_whole(proxy, np.dtype(np.int32), lambda raw: _finite_rint(apply_read_scaling(raw, slope,
                                                                                                      inter)))
        if np.issubdtype(stored, np.integer):
            return _read_whole(proxy)
        return _read_whole(proxy, np.dtype(np.int32), _finite_rint)
    except _GZIP_DAMAGE:
        raise
    except (OSError, ValueError, OverflowError, TypeError):
        return None


def _finite_rint(values: np.ndarray) -> np.ndarray:
    """``np.rint(values)``; a ValueError where one is NaN or infinite, which no integer holds (read as nibabel reads
    it, the file's voxels are then refused with the count of such values)."""
    if not np.isfinite(values).all():
        raise ValueError("NaN or infinite voxels")
    return np.rint(values)


def scaled_float32(stored: np.ndarray, proxy) -> np.ndarray:
    """Stored values of ``proxy`` (an image's ``dataobj``) as :func:`~medseg.io.nifti.read_nifti` gives them: float32,
    bit for bit."""
    with np.errstate(over="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return _scaled(stored, proxy, np.dtype(np.float32))


def _scaled(raw: np.ndarray, proxy, dtype: np.dtype) -> np.ndarray:
    """``raw``, stored voxels of ``proxy``, scaled into ``dtype`` as nibabel's ``get_fdata`` scales them."""
    from nibabel.volumeutils import apply_read_scaling

    slope, inter = _scaling(proxy, dtype)
    if raw.dtype == dtype and (float(slope), float(inter)) == (1.0, 0.0):
        return np.asarray(raw)
    out = np.empty(raw.shape, dtype, order="F" if raw.flags.f_contiguous and not raw.flags.c_contiguous else "C")
    if raw.ndim == 0 or raw.size == 0:
        out[...] = apply_read_scaling(raw, slope, inter)
        return out
    # blocks of about 1 M voxels along the last axis longer than 1 (a 4D file of one volume ends in an axis of 1)
    axis = max((i for i, n in enumerate(raw.shape) if n > 1), default=raw.ndim - 1)
    step = max(1, (1 << 20) // max(1, raw.size // raw.shape[axis]))
    for start in range(0, raw.shape[axis], step):
        block = (slice(None),) * axis + (slice(start, start + step),)
        out[block] = apply_read_scaling(raw[block], slope, inter)
    return out


def _scaling(proxy, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """The slope and intercept of ``proxy`` as nibabel's ``ArrayProxy._get_scaled`` casts them for a read into
    ``dtype``, for the same arithmetic."""
    slope, inter = np.asanyarray(proxy.slope), np.asanyarray(proxy.inter)
    if np.can_cast(slope, dtype):
        slope = slope.astype(dtype)
    if np.can_cast(inter, dtype):
        inter = inter.astype(dtype)
    return slope, inter


def _unscaled(image) -> bool:
    """True when the file stores its voxel values as they are (no slope / intercept to apply)."""
    slope = getattr(image.dataobj, "slope", 1.0)
    inter = getattr(image.dataobj, "inter", 0.0)
    return (slope is None or float(slope) == 1.0) and (inter is None or float(inter) == 0.0)
