"""NRRD and MetaImage files (``.nrrd``, ``.nhdr``, ``.mha``, ``.mhd``), read through SimpleITK (the ``itk`` extra).

3D Slicer saves volumes and label maps as NRRD, grand-challenge and nnU-Net data sets come as MetaImage. SimpleITK
reads both; its image is placed in LPS (ITK's world, DICOM's) by origin, spacing and direction, which are turned into
the RAS+ affine in mm every other reader of medseg gives (the first two rows negated). The voxels are given in the
axis order a NIfTI read gives (i, j, k: the file's fastest axis first), so that a volume saved by SimpleITK as
``.nrrd`` and as ``.nii.gz`` reads as the same array on the same affine.

Its parts are modules of their own: :mod:`medseg.io.itk_header` (the text header parsed without SimpleITK),
:mod:`medseg.io.itk_data_files` (the data files a detached header names, and the bytes they take) and
:mod:`medseg.io.itk_messages` (what SimpleITK and the libraries under it print and raise, in one line). The public
names this module listed before they moved there are still importable from here (``__all__``).
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

import numpy as np

from medseg.errors import ImageReadError, InputError
from medseg.io.files import check_present, check_readable, exists, not_there
from medseg.io.itk_data_files import (
    _data_files,
    _data_files_problem,
    _data_source,
    data_files_among,
    header_naming,
    itk_files_read,
    stored_bytes,
)
from medseg.io.itk_header import (
    _fields,
    _format,
    _header_length_error,
    _header_text,
    _no_orientation,
    header_sizes,
)
from medseg.io.itk_messages import _log_printed, _printed_reason, _reason, _says_failed, sitk_reading
from medseg.volume import Volume, singular_affine_text, slicer_segmentation_ending

__all__ = ["IMAGE_ENDINGS", "IMAGE_FILE_KINDS", "ITK_ENDINGS", "NIFTI_ENDINGS", "SLICER_SEGMENTATION",
           "data_files_among", "header_naming", "header_sizes", "is_itk_name", "is_slicer_scene",
           "is_slicer_segmentation", "itk_files_read", "read_itk_grid", "read_itk_image", "read_itk_region",
           "scene_images_text", "slicer_scene_images"]

log = logging.getLogger(__name__)

# the endings read through SimpleITK (in any letter case); a detached header (.nhdr, .mhd) names its data file
ITK_ENDINGS = (".nrrd", ".nhdr", ".mha", ".mhd")
# NIfTI files as nibabel reads them: gzip-, bzip2- or (where Python has zstd, medseg.io.compression) zstd-compressed
NIFTI_ENDINGS = (".nii", ".nii.gz", ".nii.bz2", ".nii.zst")
# the image files a folder of cases is searched for (a .nii.zst was left out as "not an image", where it is read when
# given as a file), and as messages name them
IMAGE_ENDINGS = (*NIFTI_ENDINGS, *ITK_ENDINGS)
IMAGE_FILE_KINDS = "/".join(IMAGE_ENDINGS)
# 3D Slicer's segmentation file as messages name it: case.seg.nrrd (or its detached header, case.seg.nhdr) is case's
# (medseg.volume.stem), a label image, never an image to segment
SLICER_SEGMENTATION = ".seg.nrrd"
_INSTALL = "pip install 'medseg[itk]'"
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])
_CUT_SHORT = "the file was cut short (an interrupted copy or download?)"


def is_itk_name(path: Path | str) -> bool:
    """Whether ``path`` is named as an NRRD or MetaImage file (:data:`ITK_ENDINGS`), which SimpleITK reads."""
    return Path(path).name.lower().endswith(ITK_ENDINGS)


def is_slicer_segmentation(path: Path | str) -> bool:
    """Whether ``path`` is named as 3D Slicer's segmentation file (``case.seg.nrrd``, or its detached header
    ``case.seg.nhdr``, in any letter case)."""
    return slicer_segmentation_ending(path) is not None


def slicer_scene_images(paths) -> list[Path]:
    """Among a folder's files ``paths``, the images saved beside a 3D Slicer segmentation of the same case
    (``case.nrrd``, or ``case.nii.gz``, beside ``case.seg.nrrd``, as Slicer saves a scene): in a folder of labels the
    ``.seg.nrrd`` is the case's label, and these are its image, not a second label of the case."""
    import unicodedata

    from medseg.volume import stem

    def case(path: Path) -> str:
        return unicodedata.normalize("NFC", stem(path))

    paths = [Path(p) for p in paths]
    segmented = {case(p) for p in paths if is_slicer_segmentation(p)}
    images = IMAGE_ENDINGS
    return sorted(p for p in paths if not is_slicer_segmentation(p) and p.name.lower().endswith(images)
                  and case(p) in segmented)


def is_slicer_scene(folder: Path | str) -> bool:
    """Whether ``folder`` is saved as 3D Slicer saves a scene: a segmentation (``case.seg.nrrd``) beside the image of
    its case (``case.nrrd``), which makes one folder both the images and the labels of a training set; False where
    it cannot be listed."""
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return False
    return bool(slicer_scene_images(entries))


def scene_images_text(names: list[str]) -> str:
    """The warning's words for the images :func:`slicer_scene_images` left out of a folder of labels (their names)."""
    shown = ", ".join(names[:5]) + (" …" if len(names) > 5 else "")
    what = "1 image" if len(names) == 1 else f"{len(names)} images"
    return (f"left out {what} beside the 3D Slicer segmentation of {'its' if len(names) == 1 else 'their'} case (in a "
            f"folder of labels, case{SLICER_SEGMENTATION} is case's label, case.nrrd its image): {shown}")


def _simpleitk(path: Path):
    """The SimpleITK module, imported on first use; its absence is one line naming the file and the extra."""
    try:
        import SimpleITK
    except ImportError as error:
        raise ImageReadError(f"{path}: reading {_format(path)} files needs SimpleITK, which is not installed: "
                             f"{_INSTALL} (or pip install SimpleITK)") from error
    return SimpleITK


def read_itk_grid(path: Path | str) -> tuple[tuple[int, ...], np.ndarray]:
    """The shape (as :func:`medseg.io.image_shape.shape_3d` takes it; a 4D image of several volumes is returned, not
    refused) and RAS affine in mm of an NRRD / MetaImage file, from its header alone (no voxel is read). A data file
    that holds fewer bytes than the header declares is an :class:`ImageReadError` here already (30000³ voxels
    declared beside a data file of kB were otherwise taken at their word: "needs about 301749 GiB of memory")."""
    path = Path(path)
    reader = _header(path)
    _check_data_size(path, reader)
    return _shape(reader), _affine(reader)[0]


def read_itk_image(path: Path | str, hash_input: bool = True, labels: bool = False, role: str = "") -> Volume:
    """Read a 3D NRRD / MetaImage file into a :class:`Volume`: float32 voxels, or with ``labels`` the stored
    integer type (float64 for float files), as :func:`medseg.io.nifti.read_nifti` gives them. A 2D image is one
    slice (1 mm thick, noted in ``info``), a 4D image holding one volume is squeezed; several volumes, and voxels of
    more than one value (RGB, vectors), are refused in one line. ``role`` is named in the errors about the voxels'
    values."""
    from medseg.io.image_shape import _not_one_volume_text, as_3d, shape_3d
    from medseg.io.nifti import non_finite_error

    path = Path(path)
    reader = _header(path)
    sitk = _simpleitk(path)
    stored_shape = tuple(int(n) for n in reader.GetSize())
    shape = shape_3d(stored_shape)
    if len(shape) != 3:  # on the header: a 4D series is not read (it can be many GB) to be refused
        raise InputError(_not_one_volume_text(path, stored_shape))
    affine, thickness_note = _affine(reader)
    if singular_affine_text(affine) is not None:
        raise InputError(f"{path}: {singular_affine_text(affine)}")
    _check_data_size(path, reader)
    with sitk_reading(sitk, reader) as printed:
        try:
            image, failure = reader.Execute(), None
        except RuntimeError as error:
            failure = error
        except MemoryError as error:
            raise ImageReadError(f"{path}: the header's shape {stored_shape} does not fit in memory; the header is "
                                 "corrupt or the image too large") from error
    if failure is not None:
        raise ImageReadError(f"{path}: truncated or corrupt image data ({_reason(failure, printed.text)})") \
            from failure
    if _says_failed(printed.text):  # MetaImage's library prints "Uncompress failed" and gives what it has
        raise ImageReadError(f"{path}: corrupt image data ({_printed_reason(printed.text)}); the file is damaged "
                             "(copy or download it again)")
    _log_printed(path, printed.text)
    view = sitk.GetArrayViewFromImage(image)  # numpy's order: the slowest axis first
    dtype = view.dtype
    if dtype.kind not in "biuf":
        raise InputError(f"{path}: {'complex' if dtype.kind == 'c' else 'non-numeric'} voxels ({dtype}); medseg "
                         "reads grey-level images (one number per voxel)")
    as_stored = labels and dtype.kind in "biu"
    out_dtype = dtype if as_stored else np.dtype(np.float64 if labels else np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        array = view.astype(out_dtype.newbyteorder("="), copy=True)
    del view, image
    array = as_3d(array.transpose(tuple(reversed(range(array.ndim)))))  # i, j, k as NIfTI reads: a view
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        if dtype.kind == "f" and out_dtype.itemsize < dtype.itemsize:
            raise InputError(f"{path}: intensities overflow float32 or are not finite; rescale the image")
        raise non_finite_error(path, array, role)
    info: dict = {"reader": f"SimpleITK {_version(sitk)}"}
    if tuple(array.shape) != stored_shape:
        info["stored_shape"] = list(stored_shape)
    orientation_note = _no_orientation(path)
    if orientation_note:
        log.warning("%s: %s", path, orientation_note)
        info["orientation_note"] = orientation_note
    if thickness_note:
        log.warning("%s: %s", path, thickness_note)
        info["thickness_note"] = thickness_note
    names = segment_names(reader) if is_slicer_segmentation(path) else {}
    if names:
        info["segment_names"] = {str(value): name for value, name in sorted(names.items())}
    if hash_input:
        from medseg.io.atomic import sha256_of

        sha256 = sha256_of(itk_files_read(path))
    return Volume(array=array, affine=affine, source=path, header=None,
                  source_sha256=sha256 if hash_input else None, info=info)


def read_itk_region(path: Path | str, region: tuple[slice, ...]) -> np.ndarray | None:
    """The float32 voxels of ``region`` (one slice per axis of the i, j, k array :func:`read_itk_image` gives) of an
    NRRD / MetaImage file, bit for bit as :func:`read_itk_image` reads them. An NRRD of raw or gzip data (attached, or
    in one data file) is read from its bytes (:mod:`medseg.io.nrrd_region`: teem reads an NRRD whole in its stored
    type for any part of it); otherwise SimpleITK is asked for that part alone (``SetExtractIndex`` /
    ``SetExtractSize``): MetaImage's library reads only the part's bytes (a compressed file is decompressed as it is
    read, not kept), teem reads the other NRRDs whole and ITK keeps the part, which spares the float32 copy of the
    whole. The header is checked as :func:`read_itk_image` checks it (its errors
    raised). None where the part is not known to be what a whole reading gives: voxels not integers or floats, NaN
    or infinite ones (as float32), what the libraries printed saying that something failed, a region that is not a
    box of the grid, a MetaImage of a list or pattern of data files; the caller reads the whole file then, for its
    values or its error."""
    from medseg.io.image_shape import shape_3d

    path = Path(path)
    reader = _header(path)
    sitk = _simpleitk(path)
    stored = tuple(int(n) for n in reader.GetSize())
    shape = shape_3d(stored)
    if len(shape) != 3 or len(region) != 3:
        return None
    if _format(path) == "MetaImage" and len(_data_files(path)) > 1:
        # MetaImage's library reads a part of a list or pattern of files otherwise than the whole: a pattern's
        # slices from the wrong files where its step is not 1
        return None
    parts = [range(*part.indices(n)) for part, n in zip(region, shape)]
    if any(part.step != 1 or len(part) == 0 for part in parts):
        return None
    index = [part.start for part in parts][:len(stored)] + [0] * (len(stored) - 3)
    size = [len(part) for part in parts][:len(stored)] + [1] * (len(stored) - 3)
    _check_data_size(path, reader)
    if _format(path) == "NRRD":  # teem reads an NRRD whole for any part of it: its bytes are read here
        part = _nrrd_part(path, reader, parts)
        if part is not None:
            return part if np.isfinite(part).all() else None
    reader.SetExtractIndex(index)
    reader.SetExtractSize(size)
    with sitk_reading(sitk, reader) as printed:
        try:
            image = reader.Execute()
        except (RuntimeError, MemoryError):
            image = None
    if image is None or _says_failed(printed.text):
        return None
    view = sitk.GetArrayViewFromImage(image)
    if view.dtype.kind not in "biuf":
        return None
    with np.errstate(over="ignore", invalid="ignore"):
        part = view.astype(np.dtype(np.float32), copy=True)
    del view, image
    part = part.transpose(tuple(reversed(range(part.ndim)))).reshape([len(p) for p in parts])
    if not np.isfinite(part).all():
        return None
    return part


def _nrrd_part(path: Path, reader, parts: list[range]) -> np.ndarray | None:
    """The float32 voxels of the box ``parts`` of an NRRD file, read from its bytes
    (:func:`medseg.io.nrrd_region.read_nrrd_region`: raw or gzip data, attached or in one data file); None where they
    are not read there, or where the header does not describe the image SimpleITK reads (its shape, its voxels'
    type)."""
    from medseg.io.nrrd_region import nrrd_dtype, read_nrrd_region

    fields = _fields(path)
    dtype = nrrd_dtype(fields)
    if dtype is None or int(reader.GetDimension()) != 3 or _stored_dtype(path, reader) != dtype.newbyteorder("="):
        return None
    try:
        declared = [int(n) for n in fields.get("sizes", "").split()]
    except ValueError:  # teem reads "4.0" or "4x" as 4 (sscanf): its shape is SimpleITK's to tell
        return None
    if [int(n) for n in reader.GetSize()] != declared:
        return None
    source = _data_source(path)
    if source is None:  # the voxels follow the header
        data, start = path, _header_text(path)[1]
    elif len(source) == 1 and len(fields.get("datafile", "").split()) == 1:  # one data file, not a list or pattern
        data, start = path.parent / source[0], 0
    else:
        return None
    return read_nrrd_region(fields, data, start, parts)


def _stored_dtype(path: Path, reader) -> np.dtype | None:
    """The numpy type (native byte order) SimpleITK gives the voxels of ``reader``'s image; None where it makes no
    image of its dimension."""
    sitk = _simpleitk(path)
    try:
        return np.dtype(sitk.GetArrayViewFromImage(sitk.Image([1] * int(reader.GetDimension()),
                                                              reader.GetPixelID())).dtype)
    except (RuntimeError, TypeError, ValueError):
        return None


def segment_names(reader) -> dict[int, str]:
    """The names a 3D Slicer segmentation (``.seg.nrrd``) gives its segments, by label value, from its header's
    ``Segment<N>_Name`` and ``Segment<N>_LabelValue`` (``N + 1`` where a Slicer before 4.11 wrote none); names Slicer
    made up itself (``Segment_1``: ``Segment<N>_NameAutoGenerated`` 1) are left out."""
    keys = set(reader.GetMetaDataKeys())
    names: dict[int, str] = {}
    for key in sorted(keys):
        match = re.fullmatch(r"Segment(\d+)_Name", key)
        if match is None:
            continue
        auto, value_key = f"Segment{match[1]}_NameAutoGenerated", f"Segment{match[1]}_LabelValue"
        if auto in keys and reader.GetMetaData(auto).strip() == "1":
            continue
        try:
            value = int(reader.GetMetaData(value_key)) if value_key in keys else int(match[1]) + 1
        except ValueError:
            continue
        names[value] = reader.GetMetaData(key).strip()
    return names


def _header(path: Path):
    """A SimpleITK reader with ``path``'s header read (no voxels), refused in one line where it cannot be: missing,
    not a regular file (a named pipe, which SimpleITK would wait on), not readable, empty, not a file of its format,
    a data file that is missing, voxels of several values."""
    if not exists(path):
        raise ImageReadError(f"{path}: {not_there(path, 'no such file')}")
    if path.is_dir():
        raise ImageReadError(f"{path}: a folder, not an image file")
    from medseg.io.nifti_files import check_regular_file

    check_regular_file(path)  # a named pipe: SimpleITK would wait for a writer that may never come
    check_readable(path)
    if path.is_file() and path.stat().st_size == 0:
        raise ImageReadError(f"{path}: an empty file (0 bytes)")
    too_long = _header_length_error(path)
    if too_long is not None:
        raise too_long
    problem = _data_files_problem(path)
    if problem is not None:
        raise ImageReadError(f"{path}: {problem}")
    sitk = _simpleitk(path)
    for name in _data_files(path):
        data = path.parent / name
        # a dataset's data file whose content is not here (a .mhd's .raw not fetched) was "missing", or a pointer file
        # read as the voxels
        check_present(data)
        if not exists(data):
            raise ImageReadError(f"{path}: its data file {name}, which holds the voxels this header describes, is "
                                 "missing")
        check_regular_file(data, f"the data file of {path.name}")
        check_readable(data, f"{path}: cannot read its data file {name}")
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    with sitk_reading(sitk, reader) as printed:
        try:
            reader.ReadImageInformation()
            failure = None
        except RuntimeError as error:
            failure = error
    if failure is not None:
        raise ImageReadError(f"{path}: not a readable {_format(path)} file "
                             f"({_reason(failure, printed.text, header=True)})") from failure
    _log_printed(path, printed.text)
    components = int(reader.GetNumberOfComponents())
    if components > 1 and is_slicer_segmentation(path):
        raise InputError(f"{path}: a 3D Slicer segmentation of {components} layers (overlapping segments), not one "
                         "label map; export it from Slicer as a labelmap volume (Segmentations: Export to files, "
                         "or Export visible segments to binary labelmap) and give that")
    if components > 1:
        raise InputError(f"{path}: RGB or other multi-value voxels ({components} values per voxel, "
                         f"{sitk.GetPixelIDValueAsString(reader.GetPixelID())}); medseg reads grey-level images (one "
                         "number per voxel)")
    return reader


def _shape(reader) -> tuple[int, ...]:
    from medseg.io.image_shape import shape_3d

    return shape_3d(tuple(int(n) for n in reader.GetSize()))


def _affine(reader) -> tuple[np.ndarray, str | None]:
    """The RAS affine in mm of a SimpleITK reader's header (ITK places voxels in LPS: origin + direction ·
    spacing · index), and a note where a 2D image's slice thickness had to be assumed (1 mm)."""
    dimension = int(reader.GetDimension())
    spacing = np.asarray(reader.GetSpacing(), dtype=np.float64)
    origin = np.asarray(reader.GetOrigin(), dtype=np.float64)
    direction = np.asarray(reader.GetDirection(), dtype=np.float64).reshape(dimension, dimension)
    columns, offset, note = np.eye(3), np.zeros(3), None
    n = min(dimension, 3)
    columns[:n, :n] = direction[:n, :n] * spacing[:n]
    offset[:n] = origin[:n]
    if dimension < 3:
        note = "a 2D image: read as one slice, 1 mm thick (the file gives no thickness)"
    affine = np.eye(4)
    affine[:3, :3] = _LPS_TO_RAS @ columns
    affine[:3, 3] = _LPS_TO_RAS @ offset
    return affine, note


def _version(sitk) -> str:
    try:
        return str(sitk.__version__)
    except AttributeError:
        return "?"


def _decompressed_size(path: Path, most: int) -> int | None:
    """The bytes the gzip or zlib stream of ``path`` decompresses to, counted up to ``most`` a block at a time; None
    where it is no such stream, or cannot be read (SimpleITK's read then says what is wrong). A gzip file whose
    trailer states ``most`` bytes (modulo 2**32, as gzip writes it) is taken at its word, without decompressing it
    twice: one cut short ends in other bytes."""
    import zlib

    size = 0
    try:
        with open(path, "rb") as handle:
            if handle.read(2) == b"\x1f\x8b" and handle.seek(0, os.SEEK_END) >= 18:  # gzip's header and trailer
                handle.seek(-4, os.SEEK_END)
                if int.from_bytes(handle.read(4), "little") == most % 2**32:
                    return most
            handle.seek(0)
            stream = zlib.decompressobj(32 + zlib.MAX_WBITS)  # 32: a gzip or a zlib header, as the data has
            while size < most and not stream.eof:
                block = stream.unconsumed_tail or handle.read(1 << 20)
                if not block:
                    break
                size += len(stream.decompress(block, min(most - size, 1 << 24)))
    except (OSError, zlib.error):
        return None
    return size


def _check_compressed_size(path: Path, reader) -> None:
    """Refuse a compressed file (or data file) whose header declares more voxels than its bytes could expand to
    (:func:`~medseg.io.itk_data_files.stored_bytes`): 4000³ voxels declared beside 5 kB of gzip were taken at their
    word ("needs about 715 GiB of memory"), where a raw file holding as few bytes is called cut short."""
    stored, held = _stored_dtype(path, reader), stored_bytes(path)
    if stored is None or held is None:
        return
    sizes = [int(n) for n in reader.GetSize()]
    declared = int(np.prod(sizes, dtype=np.int64)) * stored.itemsize
    if declared > held[0] * held[1]:
        raise ImageReadError(f"{path}: its header declares {'×'.join(map(str, sizes))} voxels of {stored} ({declared} "
                             f"bytes), more than its {held[0]} bytes on disk can hold compressed; {_CUT_SHORT}, or "
                             "its header is corrupt")


def _check_data_size(path: Path, reader) -> None:
    """Refuse, before SimpleITK reads it, an uncompressed binary file (or data file) that holds fewer bytes than its
    header declares: SimpleITK's own words for that are a missing file ("No such file or directory") or a count of
    things. Voxels written as text (NRRD's ``encoding: ascii``, MetaImage's ``BinaryData = False``) have no such
    count."""
    fields = _fields(path)
    if not fields:
        return
    compressed = None  # the bytes of a compressed MetaImage's data, as its header states them
    if _header_text(path)[0].startswith("NRRD"):
        encoding, skips = fields.get("encoding", "").lower(), any(k in fields for k in ("lineskip", "byteskip"))
        if encoding in ("gzip", "gz", "bzip2", "bz2") and not skips:
            _check_compressed_size(path, reader)
        if encoding != "raw" or skips:
            return
    elif fields.get("headersize", "0") not in ("0", ""):
        return
    elif not fields.get("binarydata", "true").lower().startswith("t"):  # voxels written as text: no byte count
        return
    elif fields.get("compresseddata", "false").lower() == "true":  # ITK writes CompressedDataSize
        if not fields.get("compresseddatasize", "").isdigit():
            return
        compressed = int(fields["compresseddatasize"])
        _check_compressed_size(path, reader)
    files = _data_source(path)
    if files == []:  # a list or pattern of files that cannot be parsed
        return
    gzipped = compressed is None and files == [f"{fields.get('elementdatafile')}.gz"]  # read decompressed
    if compressed is not None:
        declared = compressed
    else:
        stored = _stored_dtype(path, reader)  # the bytes of one voxel, as numpy holds the pixel type
        if stored is None:  # a dimension SimpleITK makes no image of: its read tells
            return
        item = stored.itemsize
        declared = int(np.prod([int(n) for n in reader.GetSize()], dtype=np.int64)) * item
    if gzipped:  # the library reads what the stream holds, and leaves the voxels beyond it unset, without a word
        data = path.parent / files[0]
        size = _decompressed_size(data, declared)
        if size is not None and size < declared:
            raise ImageReadError(f"{path}: its data file {data.name}: truncated image data ({size} of the {declared} "
                                 f"bytes its header declares, decompressed); {_CUT_SHORT}")
        return
    if files is None:  # the voxels follow the header
        parts = [(path, _header_text(path)[1], declared)]
    elif compressed is None and declared % len(files) == 0:  # a list or pattern: each file holds its share
        parts = [(path.parent / name, 0, declared // len(files)) for name in files]
    elif len(files) == 1:
        parts = [(path.parent / files[0], 0, declared)]
    else:
        return
    what = "compressed image data" if compressed is not None else "image data"
    for data, offset, share in parts:
        try:
            size = data.stat().st_size - offset
        except OSError:
            return
        if size < share:
            where = "" if data == path else f"its data file {data.name}: "
            raise ImageReadError(f"{path}: {where}truncated {what} ({max(size, 0)} of the {share} bytes its header "
                                 f"declares); {_CUT_SHORT}")
