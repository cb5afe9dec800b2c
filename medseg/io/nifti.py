"""Reading a NIfTI (or Analyze) image into a :class:`~medseg.volume.Volume` that keeps the input's geometry bit for
bit (:func:`read_nifti`), the files such a read hashes (:func:`files_read`), and the errors for voxels medseg does not
read (not grey levels, not finite).

Its parts are modules of their own: :mod:`medseg.io.nifti_files` (opening the files; the words for a damaged or
misnamed one), :mod:`medseg.io.nifti_geometry` (the affine in mm; the qform written beside an sform),
:mod:`medseg.io.nifti_voxels` (the voxels read at one copy), :mod:`medseg.io.image_shape` (the shape an image is read
as) and :mod:`medseg.io.nifti_write` (a segmentation written on its input's grid). The public names this module listed
before they moved there are still importable from here (``__all__``)."""

from __future__ import annotations

import gzip
import logging
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.spatialimages import HeaderDataError, HeaderTypeError

from medseg.errors import ImageReadError, InputError, MedsegError, first_line
from medseg.io.atomic import sha256_of
from medseg.io.files import check_readable, dicom_modality, exists, is_dicom_file, not_there
from medseg.io.image_shape import _not_one_volume_text, as_3d, channel_shape, shape_3d
from medseg.io.nifti_files import (
    _CUT_SHORT,
    _GZIP_DAMAGE,
    _GZIP_ENDS_EARLY,
    _GZIP_ERRORS,
    _NIFTI_NAMES,
    _declared_voxel_bytes,
    _gzip_cut_short,
    _gzip_damage_text,
    _gzip_reader,
    _header_cut_short,
    _magic_text,
    _nifti_name,
    _starts_a_nifti_header,
    _stray_bytes_maybe,
    _uncompressed_gz,
    check_voxels_fit,
    cut_short_text,
    dicom_named_as_nifti,
    gzip_without_gz,
    load_image,
)
from medseg.io.nifti_geometry import (
    _affine_mm,
    _disagreeing_qform,
    _unknown_thickness,
    affine_mm,
    is_sheared,
    qfac_note,
    qform_for,
    quaternion_note,
    raw_header,
    tilt_qform,
)
from medseg.io.nifti_voxels import (
    _all_finite,
    _CheckedStreams,
    _excess_voxel_bytes,
    _float32_may_merge,
    _read_float,
    _read_stored,
    _unscaled,
    distinct_float32,
    distinct_stored_values,
    float_region_slabs,
    read_float_region,
    read_stored_labels,
    scaled_float32,
    stored_region_slabs,
)
from medseg.io.nifti_write import labels_image, save_nifti, write_labels
from medseg.io.pairs import companion
from medseg.settings_named import ANY, setting
from medseg.volume import Volume, singular_affine_text

__all__ = ["affine_mm", "as_3d", "channel_shape",
           "shape_3d", "read_nifti", "files_read", "labels_image", "load_image", "write_labels",
           "is_sheared", "qform_for", "tilt_qform", "check_voxels_fit", "gzip_without_gz", "save_nifti",
           "read_float_region", "float_region_slabs", "scaled_float32", "stored_region_slabs", "read_stored_labels",
           "grey_level_problem", "cut_short_text"]

log = logging.getLogger(__name__)


def read_nifti(path: Path | str, hash_input: bool = True, labels: bool = False, role: str = "",
               channels: bool = False, check_grid: Callable[[tuple[int, ...], np.ndarray], None] | None = None
               ) -> Volume:
    """Read a 3D NIfTI (or any 3D image nibabel reads) into a float32 :class:`Volume`.

    With ``labels`` the voxels keep their stored integer type when the file has no scaling (float64
    otherwise), so that label values beyond float32's exact range (2^24) are not merged.
    A 2D image is one slice; a 4D or 5D image holding a single volume is squeezed; other shapes are refused.
    The affine is in mm (:func:`affine_mm`). ``role`` (reference, prediction), when given, is named in the
    errors about the voxels' values, for a reader that takes two images of one kind. An NRRD or MetaImage file
    (``.nrrd``, ``.nhdr``, ``.mha``, ``.mhd``) is read through SimpleITK (:func:`medseg.io.itk_image.read_itk_image`).
    With ``channels`` a 4D NIfTI of several volumes on one grid, ``(X, Y, Z, C)`` (a Decathlon image of its
    modalities; ``(X, Y, Z, 1, C)`` too), is read as a :class:`Volume` of ``C`` channels (its array ``(X, Y, Z,
    C)``); a 3D image stays 3D (one channel). ``check_grid(shape, affine)`` (the memory guard) is called with the
    grid the header gives, before any voxel is read, where that grid is 3D and its affine places the voxels (else the
    read names what is wrong): the file is opened once for both.
    """
    from medseg.io.itk_image import is_itk_name

    if channels and is_itk_name(path):
        raise InputError(f"{path}: the modalities of a case in one file are read from a 4D NIfTI file only; convert "
                         "this one to NIfTI, or save each modality as nnU-Net's channel files (case_0000, case_0001 "
                         "…, which may be NRRD or MetaImage) and give case_0000")
    if is_itk_name(path):
        from medseg.io.itk_image import read_itk_image

        return read_itk_image(path, hash_input, labels, role)
    try:
        return _read_nifti(Path(path), hash_input, labels, _gzip_reader, role, channels, check_grid)
    except ImageReadError as error:
        if _gzip_reader is gzip or not _stray_bytes_maybe(error.__cause__):
            raise
    # bytes after the end of the gzip stream (gunzip reads such a file, with a warning): ISA-L's reader, reading
    # ahead, meets them before it has handed out the voxels; the standard library's hands the stream out first.
    # Fewer than 10 such bytes (a gzip header's length) read to ISA-L as a stream cut short: the standard library's
    # reader tells the two apart (a stream really cut short fails there too, with the same error)
    return _read_nifti(Path(path), hash_input, labels, gzip, role, channels, check_grid)


def _check_header_grid(image, shape: tuple[int, ...], check_grid: Callable[[tuple[int, ...], np.ndarray], None]
                       ) -> None:
    """``check_grid`` of the grid ``image``'s header gives (:func:`read_nifti`), before its voxels are read; an affine
    that cannot be made, or places no voxel, is left to the read, which refuses it after the voxels as before."""
    try:
        affine = _affine_mm(image)[0]
    except (MedsegError, ValueError, ArithmeticError, np.linalg.LinAlgError):
        return
    if singular_affine_text(affine) is None:
        check_grid(shape_3d(shape), affine)


# the first bytes of the 2D picture formats a scan is sometimes exported to (a screenshot, a slice saved by a viewer)
_PICTURES = ((b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"),
             (b"GIF8", "GIF"), (b"BM", "BMP"))


def _picture_kind(path: Path) -> str | None:
    """``PNG``, ``JPEG``, ``TIFF``, ``GIF`` or ``BMP`` for a file named so (``.png``, ``.jpg``…) that starts as one;
    else None (a NIfTI file may start with any bytes the BMP marker among them)."""
    if not path.name.lower().endswith((".png", ".jpg", ".jpeg", ".tif", ".tiff", ".gif", ".bmp")):
        return None
    try:
        with open(path, "rb") as stream:
            start = stream.read(8)
    except OSError:
        return None
    return next((kind for magic, kind in _PICTURES if start.startswith(magic)), None)


def _read_nifti(path: Path, hash_input: bool, labels: bool, reader, role: str = "", channels: bool = False,
                check_grid: Callable[[tuple[int, ...], np.ndarray], None] | None = None) -> Volume:
    """:func:`read_nifti`, with gzip streams decompressed by ``reader`` (a module with gzip's ``open``)."""
    if not exists(path):
        raise ImageReadError(f"{path}: {not_there(path, 'no such file')}")
    if path.is_dir():
        raise ImageReadError(f"{path}: a folder, not a NIfTI file (a DICOM series folder is read by read_image)")
    check_readable(path)
    try:
        # read into memory, not mapped: a mapped file rewritten while it is in use (a re-export, a second run) ends
        # the process with a bus error instead of an error naming it
        image = load_image(path, mmap=False)
        check_voxels_fit(path, image)
        try:
            streams = _CheckedStreams(image, reader)
        except _GZIP_DAMAGE as error:  # the header was read: the decompressor found the damage reading ahead
            raise ImageReadError(f"{path}: {_gzip_damage_text(error)}") from error
    except ImageReadError:  # a pipe or device, named as such (not as an unreadable header)
        raise
    except nib.filebasedimages.ImageFileError as error:
        if is_dicom_file(path):  # one file of a series (or a DICOM SEG): the DICOM reader takes the series' folder
            from medseg.io.dicom_series import NON_IMAGE_MODALITIES, not_dicom_text
            from medseg.io.dicomdir import dicomdir_file_text

            not_dicom = not_dicom_text(path)
            if not_dicom is not None:  # a .dcm name is no proof: it was called "a DICOM file, not a NIfTI image"
                raise ImageReadError(not_dicom) from error
            index = dicomdir_file_text(path)
            if index is not None:  # "give the folder of its series" said nothing of what it is
                raise ImageReadError(index) from error
            modality = dicom_modality(path)  # None for a damaged header: the plain advice stands
            if modality == "SEG":  # the advice for an image file would point at the SEG's own folder
                raise ImageReadError(f"{path}: a DICOM SEG (a segmentation), not an image to segment; give the folder "
                                     "of the series it segments as the input, and the SEG as its reference") from error
            if modality in NON_IMAGE_MODALITIES:
                raise ImageReadError(f"{path}: a DICOM {modality} object, not an image") from error
            raise ImageReadError(f"{path}: a DICOM file, not a NIfTI image; give the folder of its series "
                                 f"({path.parent}), with {setting('series', ANY)} (in a sample sheet: the series "
                                 "column) where it holds more than one") from error
        dicom = dicom_named_as_nifti(path, segmentation=labels, role=role)
        if dicom is not None:  # a DICOM file renamed .nii.gz was "not a NIfTI image": said as what it is
            raise ImageReadError(dicom) from error
        if path.name.lower().endswith((".img", ".img.gz")):  # half of a pair: the header says how to read the voxels
            header = companion(path)
            if header is not None and not exists(header):
                raise ImageReadError(f"{path}: the voxels of an Analyze or NIfTI pair without its header "
                                     f"{header.name}, which says how to read them; give the .hdr, with the .img beside "
                                     "it") from error
        misnamed = gzip_without_gz(path)
        if misnamed is not None:
            raise ImageReadError(misnamed) from error
        cut = cut_short_text(path)
        if cut is not None:
            raise ImageReadError(cut) from error
        nifti = _starts_a_nifti_header(path)
        if nifti and _gzip_cut_short(path):  # a whole header, then too little data for nibabel to tell the file's type
            raise ImageReadError(f"{path}: {_GZIP_ENDS_EARLY}") from error
        if nifti and not path.name.lower().endswith(_NIFTI_NAMES):
            raise ImageReadError(f"{path}: a NIfTI image by its header, but named without .nii or .nii.gz, which "
                                 f"tells the reader its format; rename it {_nifti_name(path)}") from error
        from medseg.io.itk_image import header_naming

        header = header_naming(path)
        if header is not None:  # a .mhd's .raw, given as the image (dir/* gives both)
            raise ImageReadError(f"{path}: the data file of {header.name} beside it (the voxels that header "
                                 f"describes), not an image of its own; give {header.name}") from error
        picture = _picture_kind(path)
        if picture is not None:  # nibabel's "Cannot work out file type of ..." said nothing of what to do
            raise ImageReadError(f"{path}: a {picture} picture, not an image medseg reads (a NIfTI file, an NRRD or "
                                 "MetaImage file, or a DICOM series folder); save it as NIfTI with its voxel size"
                                 ) from error
        magic = _magic_text(path)
        if magic is not None:
            raise ImageReadError(f"{path}: {magic}") from error
        raise ImageReadError(f"{path}: not a NIfTI image ({first_line(error)})") from error
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile, ValueError, OverflowError,
            HeaderDataError, HeaderTypeError) as error:
        if "should be positive" in str(error):  # nibabel's word for a qform that is no rotation (sform not coded)
            raise ImageReadError(f"{path}: invalid qform in the header (quatern_b, c, d are not part of a unit "
                                 f"quaternion: {first_line(error)}), and no sform to place the voxels by") from error
        raise ImageReadError(f"{path}: cannot read header ({first_line(error)})") from error
    with streams:
        image = streams.image
        voxels = Path(image.file_map["image"].filename or path) if "image" in image.file_map else path
        if voxels != path and not exists(voxels):  # nibabel's "[Errno 2]" read as truncated data
            raise ImageReadError(f"{path}: its image file {voxels.name}, which holds the voxels of this Analyze or "
                                 "NIfTI pair, is missing")
        try:
            dtype = np.dtype(image.get_data_dtype())
            shape = tuple(int(n) for n in image.shape)
        except (TypeError, ValueError, HeaderDataError) as error:
            raise ImageReadError(f"{path}: corrupt header ({first_line(error)})") from error
        if isinstance(image, nib.Nifti1Image):  # one file (NIfTI-2 too): the voxels follow the header
            # the offset nibabel reads the voxels from (its loaded header says 0: it is set anew on writing)
            offset, header_bytes = float(getattr(image.dataobj, "offset", 0)), image.header.single_vox_offset
            if offset < header_bytes:  # nibabel reads the voxels from there: the header's bytes become voxels
                raise ImageReadError(f"{path}: corrupt header (vox_offset {offset:g} points into the header, which "
                                     f"takes the first {header_bytes} bytes of the file)")
        problem = grey_level_problem(path, dtype)
        if problem is not None:
            raise InputError(problem)
        if any(n < 0 for n in shape):
            raise ImageReadError(f"{path}: corrupt header (negative dimension in shape {shape})")
        if 0 in shape:  # checked on the header: nibabel returns such data flattened, as shape (0,)
            raise InputError(f"{path}: empty volume of shape {shape}")
        if len(shape_3d(shape)) != 3 and not (channels and len(channel_shape(shape)) == 4):
            # on the header: a 4D series is not read (it can be many GB) to be refused
            raise InputError(_not_one_volume_text(path, shape))
        if check_grid is not None:
            _check_header_grid(image, shape, check_grid)
        as_stored = labels and dtype.kind in "biu" and _unscaled(image)
        out_dtype = dtype if as_stored else np.dtype(np.float64 if labels else np.float32)
        try:
            with np.errstate(over="ignore", invalid="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # an overflowing cast is refused below, in one line
                array = _read_stored(image) if as_stored else _read_float(image, out_dtype)
        except MemoryError as error:
            gib = float(np.prod(shape, dtype=np.float64)) * out_dtype.itemsize / 2**30
            raise ImageReadError(f"{path}: the header's shape {shape} needs {gib:.1f} GiB of memory as {out_dtype}; "
                                 "the header is corrupt or the image too large") from error
        except (*_GZIP_ERRORS, ValueError, OverflowError, TypeError) as error:
            if isinstance(error, _GZIP_DAMAGE) and streams.handles:
                raise ImageReadError(f"{path}: {_gzip_damage_text(error)}") from error
            raise ImageReadError(f"{path}: truncated or corrupt image data ({first_line(error)})") from error
        excess = _excess_voxel_bytes(image, streams.read_to_end())
    info = {}
    if excess:  # not zeros (padding to a block size is left alone)
        declared = _declared_voxel_bytes(image)
        if excess % declared == 0:  # whole volumes more: voxels of another type or shape than the header says
            raise ImageReadError(f"{path}: corrupt header: the file holds {excess // declared + 1} times the voxel "
                                 f"data its header declares ({declared} bytes for shape {shape} of {dtype}); its "
                                 "datatype or dimensions are wrong")
        note = f"{excess} bytes after the voxels the header declares ignored"
        log.warning("%s: %s", path, note)
        info["trailing_bytes_note"] = note
    array = array.reshape(channel_shape(array.shape)) if channels else as_3d(array)
    if array.ndim != 3 and not (channels and array.ndim == 4):
        raise InputError(_not_one_volume_text(path, tuple(array.shape)))
    if min(array.shape) < 1:
        raise InputError(f"{path}: empty volume of shape {tuple(array.shape)}")
    affine, orientation_note, flat_note = _affine_mm(image)
    if singular_affine_text(affine) is not None:
        raise InputError(f"{path}: {singular_affine_text(affine)}")
    if array.dtype.kind == "f" and not _all_finite(array):
        stored = np.asanyarray(load_image(path, mmap=False).dataobj)  # the checked streams are closed
        if stored.dtype.kind == "f" and np.all(np.isfinite(stored)) and not as_stored:
            peak = float(np.abs(stored).max())  # dataobj's values are already scaled by the header's slope
            raise InputError(f"{path}: intensities up to {peak:.3g} overflow float32; rescale the image")
        raise non_finite_error(path, array, role)
    if (not as_stored and array.size > 1 and _float32_may_merge(image, dtype)
            and float(array.min()) == float(array.max())):  # constant as read: was it before the cast to float32?
        stored = np.asanyarray(load_image(path, mmap=False).dataobj)  # scaled by the header, in its own precision
        low, high = float(stored.min()), float(stored.max())
        if low != high:  # not a blank export (refused as one later): detail below float32's range or precision
            raise InputError(f"{path}: its voxels range from {low:.6g} to {high:.6g} (a spread of {high - low:.3g}), "
                             f"values float32 cannot tell apart (all read as {float(array.flat[0]):g}); rescale the "
                             "image")
    if not as_stored and array.size > 1 and _float32_may_merge(image, dtype):
        merged_note = _float32_merge_note(path, array)
        if merged_note:
            log.warning("%s: %s", path, merged_note)
            info["precision_note"] = merged_note
    if _uncompressed_gz(path):
        note = "not gzip-compressed despite its .gz name: read as an uncompressed NIfTI file"
        log.warning("%s: %s", path, note)
        info["compression_note"] = note
    if tuple(array.shape) != shape:  # a 2D image, a 4D / 5D one holding one volume, a 5D one of channels
        info["stored_shape"] = list(shape)
    if orientation_note:
        log.warning("%s: %s", path, orientation_note)
        info["orientation_note"] = orientation_note
    rounded_note = quaternion_note(image)
    if rounded_note:
        log.warning("%s: %s", path, rounded_note)
        info["quaternion_note"] = rounded_note
    mirrored_note = qfac_note(image)
    if mirrored_note:
        log.warning("%s: %s", path, mirrored_note)
        info["qfac_note"] = mirrored_note
    qform_note = _disagreeing_qform(image, array.shape[:3])
    if qform_note:
        log.warning("%s: %s", path, qform_note)
        info["qform_note"] = qform_note
    unit = {1: "metre", 3: "micron"}.get(int(raw_header(image)["xyzt_units"]) & 7) \
        if isinstance(image.header, nib.Nifti1Header) else None  # the units _affine_mm scaled to mm
    if unit is not None:
        info["units_note"] = (f"the file's spatial unit is the {unit} (xyzt_units): the affine, spacing and volumes "
                              f"recorded here are in mm; the segmentation keeps the file's header, in {unit}s")
    thickness_note = _unknown_thickness(image, array.shape[:3]) or flat_note
    if thickness_note:
        log.warning("%s: %s", path, thickness_note)
        info["thickness_note"] = thickness_note
    # Nifti1Pair / Nifti2Pair include the single-file images: their header as stored (codes, units, pixdim) is
    # what outputs copy
    # (a copy: the one kept with the image is read by its checks)
    header = raw_header(image).copy() if isinstance(image, (nib.Nifti1Pair, nib.Nifti2Pair)) else None
    return Volume(
        array=array,
        affine=affine,
        source=path,
        header=header,
        source_sha256=sha256_of(_files_read(image)) if hash_input else None,
        info=info,
        channel_axis=array.ndim == 4,
    )


# float32 keeping this many levels or more over the image's range (12 bits, a CT's) is as fine as a model can use
# (fp16 inference keeps 11): an image of finer detail it merges (1e4 + U(0, 50) in float64) is not noted
_FINE_ENOUGH = 4096


def _float32_merge_note(path: Path, array: np.ndarray) -> str | None:
    """A note when reading the voxels as float32 merged most of their distinct stored values: values far larger than
    their spread (x + 1e9 in float64 or int32, or an scl_inter of 1e9) keep only float32's coarse steps there, and the
    model sees a posterised image. Looked into only where float32 holds fewer than 65536 steps over the range read,
    and noted only where it keeps fewer than 4,096 distinct values (``_FINE_ENOUGH``),
    so an ordinary image costs two passes over its voxels; one looked into is read again a slab at a time, its
    distinct values counted without a sorted copy of the volume (:func:`distinct_stored_values`)."""
    low, high = float(array.min()), float(array.max())
    step = float(np.spacing(np.float32(max(abs(low), abs(high)))))
    if not low < high or (high - low) / step >= 2**16:
        return None
    kept = distinct_float32(array)
    if kept >= _FINE_ENOUGH:
        return None
    cap = max(2 * kept, 1 << 16)  # past it, the note's count is "more than" it
    counted = distinct_stored_values(load_image(path, mmap=False), cap)
    if counted is None:  # not readable a slab at a time: as nibabel reads it, whole
        stored = np.asanyarray(load_image(path, mmap=False).dataobj)  # scaled by the header, in its own precision
        counted = int(np.unique(stored).size), np.array([stored.min(), stored.max()])
    held, ends = counted
    if held is not None and kept * 2 > held:
        return None
    values = f"{held:,}" if held is not None else f"more than {cap:,}"
    return (f"its {values} distinct voxel values, from {float(ends[0]):.10g} to {float(ends[-1]):.10g}, "
            f"are {kept:,} in float32, which the image is segmented in (steps of {step:g} at that magnitude): the "
            "model sees a coarser image than the file holds; subtract the offset (or rescale) for the full detail")


def files_read(path: Path | str) -> list[Path]:
    """The files reading the image at ``path`` reads (see :func:`_files_read`), from its header alone: what
    :func:`read_nifti`'s ``source_sha256`` hashes."""
    from medseg.io.itk_image import is_itk_name, itk_files_read

    if is_itk_name(path):
        return itk_files_read(path)
    try:
        return _files_read(load_image(path))
    except ImageReadError:  # load_image's own one line: a named pipe or device, a corrupt header's dimensions
        raise
    except Exception as error:  # noqa: BLE001 - a damaged header or gzip stream (zlib.error, EOFError...) is one line
        cut = _header_cut_short(Path(path))  # told as read_nifti tells it
        if cut is not None:
            raise ImageReadError(f"{path}: {cut}; {_CUT_SHORT}") from error
        raise ImageReadError(f"{path}: cannot read ({' '.join(str(error).split()) or type(error).__name__})") \
            from error


def _files_read(image) -> list[Path]:
    """The files ``image`` was read from, header first: one for a single-file image; a pair's header and image, and
    the ``.mat`` of an SPM Analyze image when there is one (a ``.mat`` beside a NIfTI pair is not read)."""
    files: list[Path] = []
    for key in ("header", "image", "mat"):
        holder = image.file_map.get(key)
        name = Path(holder.filename) if holder is not None and holder.filename else None
        if name is not None and name not in files and (key != "mat" or name.is_file()):
            files.append(name)
    return files


def grey_level_problem(path: Path | str, dtype: np.dtype) -> str | None:
    """The error for an image whose voxels are not one number each (complex, RGB), None where they are."""
    if dtype.kind in "biuf":
        return None
    kind = "RGB or other multi-value" if dtype.fields else "complex" if dtype.kind == "c" else "non-numeric"
    stored = dtype
    if dtype.fields:  # numpy's record type, [('R', 'u1'), ('G', 'u1'), ('B', 'u1')], in words as the ITK reader's
        types = sorted({str(dtype.fields[name][0].base) for name in dtype.names})
        stored = f"{len(dtype.names)} values per voxel, {', '.join(dtype.names)} of {' and '.join(types)}"
    return f"{path}: {kind} voxels ({stored}); medseg reads grey-level images (one number per voxel)"


def non_finite_error(path: Path, array: np.ndarray, role: str | None = None) -> InputError:
    """The error for an image of NaN or infinite voxels: how many of each, and the first one's index."""
    bad = ~np.isfinite(array)
    nan = int(np.isnan(array).sum())
    kinds = ", ".join(f"{n} {what}" for n, what in ((nan, "NaN"), (int(bad.sum()) - nan, "infinite")) if n)
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    given = f", given as the {role}" if role else ""
    return InputError(f"{path}: the image contains NaN or infinite voxels ({kinds}; the first at voxel index "
                      f"{first}){given}")
