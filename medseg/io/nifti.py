"""NIfTI reading and label writing that keeps the input's geometry bit for bit."""

from __future__ import annotations

import contextlib
import gzip
import logging
import math
import os
import warnings
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.spatialimages import HeaderDataError, HeaderTypeError

from medseg.errors import ImageReadError, InputError, first_line
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
    _nifti_name,
    _starts_a_nifti_header,
    _stray_bytes_maybe,
    _uncompressed_gz,
    check_voxels_fit,
    cut_short_text,
    gzip_without_gz,
    load_image,
    nibabel_name,
)
from medseg.io.nifti_geometry import (
    _affine_mm,
    _disagreeing_qform,
    _unknown_thickness,
    affine_mm,
    is_sheared,
    qform_for,
    raw_header,
    tilt_qform,
)
from medseg.io.pairs import companion
from medseg.volume import Volume, singular_affine_text

__all__ = ["affine_mm", "as_3d", "channel_shape",
           "shape_3d", "read_nifti", "files_read", "labels_image", "load_image", "write_labels",
           "is_sheared", "qform_for", "tilt_qform", "check_voxels_fit", "gzip_without_gz", "save_nifti",
           "read_float_region", "float_region_slabs", "scaled_float32", "stored_region_slabs", "read_stored_labels",
           "grey_level_problem", "cut_short_text"]

log = logging.getLogger(__name__)


def read_nifti(path: Path | str, hash_input: bool = True, labels: bool = False, role: str = "",
               channels: bool = False) -> Volume:
    """Read a 3D NIfTI (or any 3D image nibabel reads) into a float32 :class:`Volume`.

    With ``labels`` the voxels keep their stored integer type when the file has no scaling (float64
    otherwise), so that label values beyond float32's exact range (2^24) are not merged.
    A 2D image is one slice; a 4D or 5D image holding a single volume is squeezed; other shapes are refused.
    The affine is in mm (:func:`affine_mm`). ``role`` (reference, prediction), when given, is named in the
    errors about the voxels' values, for a reader that takes two images of one kind. An NRRD or MetaImage file
    (``.nrrd``, ``.nhdr``, ``.mha``, ``.mhd``) is read through SimpleITK (:func:`medseg.io.itk_image.read_itk_image`).
    With ``channels`` a 4D NIfTI of several volumes on one grid, ``(X, Y, Z, C)`` (a Decathlon image of its
    modalities; ``(X, Y, Z, 1, C)`` too), is read as a :class:`Volume` of ``C`` channels (its array ``(X, Y, Z,
    C)``); a 3D image stays 3D (one channel).
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
        return _read_nifti(Path(path), hash_input, labels, _gzip_reader, role, channels)
    except ImageReadError as error:
        if _gzip_reader is gzip or not _stray_bytes_maybe(error.__cause__):
            raise
    # bytes after the end of the gzip stream (gunzip reads such a file, with a warning): ISA-L's reader, reading
    # ahead, meets them before it has handed out the voxels; the standard library's hands the stream out first.
    # Fewer than 10 such bytes (a gzip header's length) read to ISA-L as a stream cut short: the standard library's
    # reader tells the two apart (a stream really cut short fails there too, with the same error)
    return _read_nifti(Path(path), hash_input, labels, gzip, role, channels)


def _read_nifti(path: Path, hash_input: bool, labels: bool, reader, role: str = "", channels: bool = False
                ) -> Volume:
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
            from medseg.io.dicom_series import NON_IMAGE_MODALITIES

            modality = dicom_modality(path)  # None for a damaged header: the plain advice stands
            if modality == "SEG":  # the advice for an image file would point at the SEG's own folder
                raise ImageReadError(f"{path}: a DICOM SEG (a segmentation), not an image to segment; give the folder "
                                     "of the series it segments as the input, and the SEG as its reference") from error
            if modality in NON_IMAGE_MODALITIES:
                raise ImageReadError(f"{path}: a DICOM {modality} object, not an image") from error
            raise ImageReadError(f"{path}: a DICOM file, not a NIfTI image; give the folder of its series "
                                 f"({path.parent}), with --series (in a sample sheet: the series column) where it "
                                 "holds more than one") from error
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
    if _uncompressed_gz(path):
        note = "not gzip-compressed despite its .gz name: read as an uncompressed NIfTI file"
        log.warning("%s: %s", path, note)
        info["compression_note"] = note
    if tuple(array.shape) != shape:  # a 2D image, a 4D / 5D one holding one volume, a 5D one of channels
        info["stored_shape"] = list(shape)
    if orientation_note:
        log.warning("%s: %s", path, orientation_note)
        info["orientation_note"] = orientation_note
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
    header = raw_header(image) if isinstance(image, (nib.Nifti1Pair, nib.Nifti2Pair)) else None
    return Volume(
        array=array,
        affine=affine,
        source=path,
        header=header,
        source_sha256=sha256_of(_files_read(image)) if hash_input else None,
        info=info,
        channel_axis=array.ndim == 4,
    )


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


def _float32_may_merge(image, dtype: np.dtype) -> bool:
    """Whether reading ``image`` as float32 may make distinct stored values equal: float64 or wide integers, or
    values scaled by the header. Integers of 16 bits or less are exact in float32, and are not checked again."""
    wide = (dtype.kind == "f" and dtype.itemsize > 4) or (dtype.kind in "iu" and dtype.itemsize > 2)
    return wide or not _unscaled(image)


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


def labels_image(labels: np.ndarray, like: Volume, top_label: int | None = None) -> nib.Nifti1Image:
    """A label image on ``like``'s grid; its display range (``cal_min``/``cal_max``) runs from 0 to ``top_label``
    (the model's highest label: every case of a model is coloured alike in a viewer), else to the highest present.

    When ``like`` came from a NIfTI file its header is copied, so sform, qform, their codes, units and
    pixdim are exactly the input's; its free text (``descrip``, ``aux_file``, ``db_name``) and extensions, which
    may name the patient or hold a whole DICOM header, are not; otherwise ``like.affine`` is written as both sform
    and qform (code 1, scanner; a gantry tilt's sheared affine gets the qform of :func:`qform_for`).
    """
    if tuple(labels.shape) != like.shape:
        raise ValueError(f"label shape {labels.shape} differs from the volume's {like.shape}")  # a caller's slip
    if like.header is not None:
        header = like.header.copy()
        klass = nib.Nifti2Image if isinstance(header, nib.Nifti2Header) else nib.Nifti1Image
        image = klass(labels, None, header=header)
        image.header["pixdim"] = header["pixdim"]  # as the input stores it: nibabel repairs a copy on the way
        image.header.set_data_dtype(labels.dtype)
        image.header.set_slope_inter(1.0, 0.0)
        image.header.set_intent("label", name="medseg")
        image.header["descrip"] = b"medseg segmentation"
        image.header["aux_file"] = b""
        if "db_name" in image.header:  # NIfTI-1's unused Analyze fields; NIfTI-2 has none
            image.header["db_name"] = b""
            image.header["data_type"] = b""
        image.header.extensions.clear()
        if image.header["dim"][0] > 3:
            image.header["dim"][0] = 3
    else:
        image = nib.Nifti1Image(labels, like.affine)
        image.header.set_sform(like.affine, code=1)
        image.header.set_qform(*qform_for(like.affine))  # a qform cannot hold a shear: a tilt's ITK grid
        image.header.set_xyzt_units("mm", "sec")
        image.header.set_intent("label", name="medseg")
        image.header["descrip"] = b"medseg segmentation"
    image.header["cal_min"] = 0
    image.header["cal_max"] = float(top_label if top_label is not None else labels.max() if labels.size else 0)
    return image


def save_nifti(image: nib.Nifti1Image, path: Path | str) -> None:
    """``nib.save``, to ``path`` exactly: nibabel saves a mixed-case name (``scan.Nii``) as another one (``scan.nii``),
    which left the name asked for missing (and an atomic write's temporary file behind). Compressed when the name
    ends in ``.gz``, in any letter case."""
    image.to_file_map(type(image).make_file_map({"image": nibabel_name(path)}))


def write_labels(labels: np.ndarray, like: Volume, path: Path | str, top_label: int | None = None) -> None:
    """Write ``labels`` on ``like``'s grid to ``path`` (not atomic: use :func:`atomic_paths` around it)."""
    nib.save(labels_image(labels, like, top_label), nibabel_name(path))


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
    as :func:`read_nifti` reads them, reading only that part of the file (a gzip stream is decompressed up to the
    region's end, a block at a time, and not kept). None where the part cannot be read, or where its values are
    what :func:`read_nifti` refuses or checks further (NaN or infinite; all one value after the cast to float32):
    reading the whole file names the problem."""
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
    yields its slabs, with ``part`` the slab scaled into float32 bit for bit as :func:`read_nifti` reads it. Where
    :func:`read_float_region` would return None, the last item yielded is None: the caller reads the whole image,
    for its error or its values."""
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
    checksum and length, as :func:`read_nifti` reads it: a damaged stream is an :class:`ImageReadError` naming the
    file (nibabel stops once it has the voxels, and a stream that still decodes read as a label image, drawn wrong in
    silence). None where it is to be read as nibabel reads it: a file not compressed (mapped), or one that cannot
    be read so for another reason than a damaged stream (reading it whole names the problem)."""
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
    """Stored values of ``proxy`` (an image's ``dataobj``) as :func:`read_nifti` gives them: float32, bit for bit."""
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
