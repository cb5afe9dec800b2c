"""The files of an Analyze or NIfTI image, before nibabel reads its voxels: opening them (:func:`load_image`, which
refuses a named pipe, a device, a missing or unreadable companion file and a corrupt dimension count, and reads a
``.nii.gz`` stored uncompressed or a mixed-case name), and the words for a file that is damaged or misnamed: cut
short (its header, or its gzip stream), a gzip stream that does not decode, gzip named without ``.gz``, a NIfTI
named otherwise, a header declaring more voxels than its file can hold."""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np

from medseg.errors import ImageReadError, first_line
from medseg.io.compression import unsupported_compression
from medseg.io.files import apple_double, check_present, check_readable
from medseg.io.free_space import DEFLATE_MAX_RATIO
from medseg.io.read_warnings import warnings_naming

try:  # Intel's ISA-L gzip: the same format and checks, about 3.4x as fast to decompress as zlib
    from isal import igzip as _gzip_reader
    from isal.isal_zlib import error as _isal_error
except ImportError:  # a platform without its wheels: the standard library's
    _gzip_reader, _isal_error = gzip, zlib.error
_GZIP_DAMAGE = (gzip.BadGzipFile, EOFError, zlib.error, _isal_error)  # a stream cut short or corrupt
_GZIP_ERRORS = (OSError, *_GZIP_DAMAGE)
# the one way a file cut short is told, wherever the cut falls (its header, its voxels, its gzip trailer)
_CUT_SHORT = "the file was cut short (an interrupted copy or download?)"
_GZIP_ENDS_EARLY = f"truncated image data (its gzip stream ends early); {_CUT_SHORT}"
# a gzip stream whose checksum or length does not match what it decodes to: bytes changed on the way
_DAMAGED = "the file was damaged (a bad copy, download or disk?): copy it again from its source"

__all__ = ["TRAINING_IMAGE", "check_regular_file", "check_voxels_fit", "cut_short_text", "dicom_named_as_nifti",
           "gzip_without_gz", "load_image", "nibabel_name"]


def _gzip_damage_text(error: BaseException) -> str:
    """What a damaged gzip stream is: one that ends before its end marker or inside its trailer (gzip's EOFError,
    "Compressed file ended before the end-of-stream marker was reached") was cut short, told as a cut header is;
    other damage (a wrong CRC-32 or length in its trailer, a stream that does not decode) is corrupt data, in the
    decompressor's words, and what to do about it (the decompressor's words alone said neither what happened to the
    file nor what to do)."""
    if isinstance(error, EOFError):
        return _GZIP_ENDS_EARLY
    return f"truncated or corrupt image data (gzip: {first_line(error)}); {_DAMAGED}"


def gzip_without_gz(path: Path) -> str | None:
    """The message for a gzip-compressed ``.nii`` / ``.hdr`` / ``.img`` (named without ``.gz``, which nibabel cannot
    tell the type of), for a file nibabel refused; None for any other file."""
    if path.name.lower().endswith((".nii", ".hdr", ".img")) and _starts_with(path, _GZIP_MAGIC):
        return f"{path}: a gzip-compressed file named without .gz; name it {path.name}.gz"
    return None


TRAINING_IMAGE = "training image"  # the role (read_nifti's) of an image read for training, which takes no DICOM
_TRAINING_TAKES = ("medseg trains on NIfTI, NRRD and MetaImage files, not on DICOM: convert the {}series it belongs to "
                   "with medseg convert and give the converted file in its place")


def dicom_named_as_nifti(path: Path, segmentation: bool = False, role: str = "") -> str | None:
    """The message for a DICOM Part 10 file (the ``DICM`` marker after its 128-byte preamble) named as an Analyze or
    NIfTI file (``.nii``, ``.nii.gz``, ``.hdr``, ``.img``, any case), for a file nibabel refused: it was "not a NIfTI
    image", as if damaged. Its folder is what to give: the DICOM reader takes a series by its folder, whatever its
    files are named; one gzip-compressed under a ``.gz`` name is to be decompressed there first. Read as a
    ``segmentation`` (a prediction or reference), a series' folder is none: what makes it no DICOM SEG is said, as for
    a ``.dcm`` (a SEG itself is read by its .dcm name). Read as a :data:`TRAINING_IMAGE` (``role``), no folder will do
    either (training leaves DICOM folders out): the series is to be converted first. None for any other file."""
    from medseg.settings_named import ANY, setting

    name = path.name.lower()
    ending = next((ending for ending in _NIFTI_NAMES[::-1] if name.endswith(ending)), None)
    if ending is None:
        return None
    marked = _dicom_marker(path)
    if marked is None:
        return None
    if marked == "gzip":
        gzipped = (f"{path}: a gzip-compressed DICOM file (the DICM marker after its 128-byte preamble, once "
                   f"decompressed) named as a NIfTI image ({ending})")
        if role == TRAINING_IMAGE:
            return f"{gzipped}; {_TRAINING_TAKES.format('decompressed ')}"
        # the DICOM reader takes no compressed file: the folder alone would be "no DICOM images found"
        return (f"{path}: a gzip-compressed DICOM file (the DICM marker after its 128-byte preamble, once "
                f"decompressed) named as a NIfTI image ({ending}); DICOM is read by its series' folder, uncompressed: "
                f"decompress it into the folder of its series and give that folder, with {setting('series', ANY)} "
                "where it holds more than one")
    named = f"{path}: a DICOM file (the DICM marker after its 128-byte preamble) named as a NIfTI image ({ending})"
    if segmentation:
        from medseg.io.seg_reading import _not_a_seg

        reason = _not_a_seg(path)
        return f"{named}: {reason or 'a DICOM SEG; name it .dcm to have it read as one'}"
    if role == TRAINING_IMAGE:
        return f"{named}; {_TRAINING_TAKES.format('')}"
    return (f"{path}: a DICOM file (the DICM marker after its 128-byte preamble) named as a NIfTI image ({ending}); "
            f"DICOM is read by its series' folder: give {path.parent}, with {setting('series', ANY)} where it holds "
            "more than one")


def _dicom_marker(path: Path) -> str | None:
    """Where ``path`` holds the ``DICM`` marker after a 128-byte preamble: ``"file"`` (in its bytes as stored),
    ``"gzip"`` (once decompressed, under a ``.gz`` name), None for neither, for a file that cannot be read, and for a
    file that starts with an Analyze or NIfTI header (its size field 348 or 540), whose bytes 128 to 131 are a field
    of its own (NIfTI-1's cal_min) that may read ``DICM``; an ``.img`` beside its ``.hdr`` holds voxels, which may read
    anything. One read of the file's first 4 KiB: such a NIfTI file was taken for a DICOM file by the check made
    before the model loads, which read the whole image to have its error, and found none."""
    if path.name.lower().endswith((".img", ".img.gz")) and _pair_header(path) is not None:
        return None
    try:
        if not os.path.isfile(path):  # checked before opening: opening a named pipe waits for a writer
            return None
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except OSError:
        return None
    where = "file"
    if head[:2] == _GZIP_MAGIC and head[128:132] != b"DICM" and path.name.lower().endswith(".gz"):
        try:
            head, where = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 1024), "gzip"
        except zlib.error:
            return None
    if head[128:132] != b"DICM" or _nifti_kind(head[:4]) is not None:
        return None
    return where


def _stray_bytes_maybe(cause: BaseException | None) -> bool:
    """Whether ISA-L's gzip error may come from bytes after the end of the stream, which the standard library's
    reader tells apart (asked without keeping the error: its traceback holds the first read's voxels)."""
    return ((isinstance(cause, gzip.BadGzipFile) and str(cause).startswith("Not a gzipped file"))
            or type(cause) is EOFError)


_GZIP_MAGIC = b"\x1f\x8b"
_NIFTI_HEADER_SIZES = {348: nib.Nifti1Image, 540: nib.Nifti2Image}  # sizeof_hdr, the first 4 bytes of the header


def load_image(path: Path | str, mmap: bool | str = True):
    """``nib.load``, and a single-file NIfTI named ``.nii.gz`` that is not compressed read as what it is (nibabel
    takes the name's word and refuses it as "not a gzip file"; tools built on the NIfTI reference library read it).
    Such a file is read into memory, whatever ``mmap`` says. A ``.nii`` / ``.nii.gz`` name in mixed case (``.Nii``,
    ``.Nii.Gz``), from which nibabel would make up another name to open, is read from the file given. A named pipe or
    a device is refused (:func:`check_regular_file`). nibabel's warnings
    while the header is read name the file (:func:`~medseg.io.read_warnings.warnings_naming`)."""
    with warnings_naming(path):
        return _load_image(Path(path), mmap)


def _load_image(path: Path, mmap: bool | str):
    path = Path(path)
    check_regular_file(path)
    compressed = unsupported_compression(path)
    if compressed is not None:  # .nii.xz: "Cannot work out file type"; .nii.zst without zstd: a traceback
        raise ImageReadError(compressed)
    check_present(path)  # a dataset's pointer file: "named .gz but not gzip-compressed" said nothing of the fix
    resource_fork = apple_double(path)
    if resource_fork is not None:  # "named .gz but not gzip-compressed" said nothing of what it is
        raise ImageReadError(f"{path}: {resource_fork}; leave the ._ files out")
    _check_companions(path)
    # nibabel misreads such a header, or reads it as empty; only a file that starts with the header is looked at
    # (an Analyze .img holds voxels, whose first bytes may read as anything)
    header_first = path.name.lower().endswith((".nii", ".nii.gz", ".hdr", ".hdr.gz"))
    header = path if header_first else _pair_header(path)  # an .img given: its .hdr (was nibabel's words)
    start = _header_start(header) if header is not None else None  # read once for both checks
    dimensions = _dimension_count_problem(start)
    if dimensions is not None:
        raise ImageReadError(f"{header}: {dimensions}")
    datatype = _datatype_problem(start)
    if datatype is not None:  # nibabel: "data code 99 not recognized", named as a header it could not read
        raise ImageReadError(f"{header}: {datatype}")
    if _uncompressed_gz(path):
        from io import BytesIO

        from nibabel.fileholders import FileHolder

        data = path.read_bytes()
        kind = _nifti_kind(data[:4])
        if kind is None:
            raise nib.filebasedimages.ImageFileError("named .gz but not gzip-compressed, and not an uncompressed NIfTI "
                                                     "file either")
        return _loaded(kind, lambda: {"image": FileHolder(filename=str(path), fileobj=BytesIO(data))}, False)
    if _named_otherwise_by_nibabel(path):  # .Nii, .Nii.Gz: nibabel would open case.nii, not the file given
        from nibabel.fileholders import FileHolder
        from nibabel.openers import ImageOpener

        with ImageOpener(nibabel_name(path), "rb") as handle:  # gzip or not by the name, whatever its letter case
            kind = _nifti_kind(handle.read(4))
        if kind is None:
            raise nib.filebasedimages.ImageFileError("named .nii but not a NIfTI-1 or NIfTI-2 file")
        return _loaded(kind, lambda: {"image": FileHolder(filename=nibabel_name(path))}, mmap)
    try:
        return nib.load(nibabel_name(path), mmap=mmap)
    except ValueError as error:
        if "should be positive" not in str(error):
            raise
        kind = _rounded_quaternion_kind(header)
        if kind is None:  # no rotation: the reader names it
            raise
        return kind.from_filename(nibabel_name(path), mmap=mmap)


_QUATERNION_ROUNDING = 1e-4  # how far quatern_b, c, d typed to 5 or 6 decimals take b² + c² + d² beyond 1


class _RoundedQuaternion:
    """A NIfTI header whose quatern_b, c, d lie a rounding beyond a unit quaternion (0.707107, 0.707107, 0: b² + c²
    + d² = 1.0000006): read as the NIfTI reference library (nifti1_io: FSL, ITK, AFNI) reads them, as the 180°
    rotation of (b, c, d) normalised. nibabel takes only float32's precision (3 eps) and refuses the rest."""

    def get_qform_quaternion(self):
        bcd = np.array([float(self._structarr[key]) for key in ("quatern_b", "quatern_c", "quatern_d")])
        excess = float(bcd @ bcd) - 1.0
        if 0.0 < excess <= _QUATERNION_ROUNDING:
            return np.r_[0.0, bcd / np.sqrt(bcd @ bcd)]
        return super().get_qform_quaternion()


_ROUNDED_KINDS: dict[type, type] = {}


def _rounded_kind(klass: type) -> type:
    """``klass`` (a nibabel NIfTI image class) reading its header as :class:`_RoundedQuaternion` does."""
    if klass not in _ROUNDED_KINDS:
        header_class = type(f"Rounded{klass.header_class.__name__}", (_RoundedQuaternion, klass.header_class), {})
        _ROUNDED_KINDS[klass] = type(f"Rounded{klass.__name__}", (klass,), {"header_class": header_class})
    return _ROUNDED_KINDS[klass]


def _loaded(kind: type, file_map, mmap: bool | str):
    """``kind.from_file_map(file_map())``, a quaternion within rounding of a unit one read as
    :class:`_RoundedQuaternion` reads it, as :func:`load_image` reads it from a file nibabel names itself (a NIfTI
    file named ``.nii.gz`` but stored uncompressed, or named in mixed case, was refused for it)."""
    try:
        return kind.from_file_map(file_map(), mmap=mmap)
    except ValueError as error:
        if "should be positive" not in str(error):
            raise
        try:
            return _rounded_kind(kind).from_file_map(file_map(), mmap=mmap)
        except ValueError:  # no rotation: the reader names it, in nibabel's words
            raise error from None


def _rounded_quaternion_kind(header_path: Path | None):
    """The nibabel image class of the NIfTI file whose header is at ``header_path``, reading a quaternion within
    rounding of a unit one as :class:`_RoundedQuaternion` does; None for other files, and for a quaternion further
    from a unit one (no rotation)."""
    from nibabel.openers import ImageOpener

    if header_path is None:
        return None
    with ImageOpener(nibabel_name(header_path), "rb") as handle:
        first = handle.read(4)
    kinds = {348: (nib.Nifti1Image, nib.Nifti1Pair), 540: (nib.Nifti2Image, nib.Nifti2Pair)}
    klass = kinds.get(int.from_bytes(first, "little")) or kinds.get(int.from_bytes(first, "big"))
    if klass is None:
        return None
    kind = _rounded_kind(klass[1] if header_path.name.lower().endswith((".hdr", ".hdr.gz")) else klass[0])
    with ImageOpener(nibabel_name(header_path), "rb") as handle:
        header = kind.header_class.from_fileobj(handle, check=False)
    bcd = np.array([float(header[key]) for key in ("quatern_b", "quatern_c", "quatern_d")])
    return kind if 0.0 < float(bcd @ bcd) - 1.0 <= _QUATERNION_ROUNDING else None


def nibabel_name(path: Path | str) -> str:
    """``path`` as nibabel is to take it: nibabel expands a leading ``~`` of a name (``~/x``, also ``./~/x``, which
    it shortens to that), so a folder named ``~`` that the shell left as it is (``-o '~/out/'``) was read and written
    in $HOME; such a name is given as an absolute path."""
    text = os.fspath(path)
    parts = Path(text).parts
    return os.path.abspath(text) if parts and parts[0].startswith("~") else text


def _nifti_kind(head: bytes):
    """The single-file NIfTI image class whose header starts with ``head`` (its sizeof_hdr, either byte order);
    None for any other start."""
    return (_NIFTI_HEADER_SIZES.get(int.from_bytes(head[:4], "little"))
            or _NIFTI_HEADER_SIZES.get(int.from_bytes(head[:4], "big")))


def _named_otherwise_by_nibabel(path: Path) -> bool:
    """A ``.nii`` / ``.nii.gz`` name in mixed letter case (``.Nii``, ``.Nii.Gz``), from which nibabel builds another
    file name (``.nii``) to open."""
    if not path.name.lower().endswith((".nii", ".nii.gz")):
        return False
    try:
        name = nibabel_name(path)
        return nib.Nifti1Image.filespec_to_file_map(name)["image"].filename != name
    except Exception:  # noqa: BLE001 - a name nibabel cannot parse: nib.load says what is wrong
        return False


_COMPANION_ROLES = {"image": "the data file", "header": "the header", "mat": "the SPM .mat file"}


def _pair_header(path: Path) -> Path | None:
    """The ``.hdr`` (``.hdr.gz``) of the ``.img`` (``.img.gz``) ``path``, as nibabel pairs them, where it is a file;
    None for any other name."""
    from nibabel.spm2analyze import Spm2AnalyzeImage

    if not path.name.lower().endswith((".img", ".img.gz")):
        return None
    try:
        holder = Spm2AnalyzeImage.filespec_to_file_map(str(nibabel_name(path)))["header"]
    except Exception:  # noqa: BLE001 - a name nibabel cannot pair: nib.load says what is wrong
        return None
    header = Path(holder.filename) if holder.filename else None
    return header if header is not None and header.is_file() else None


def _check_companions(path: Path) -> None:
    """The other files of a ``.hdr``/``.img`` pair, as nibabel names them, checked before nibabel opens any: a
    named pipe as the ``.img`` of a ``.hdr`` (or the ``.hdr`` of an ``.img``, or an SPM ``.mat``, which nibabel
    opens when it is there) waited for a writer for ever. A ``.mat`` that is a folder is passed over, as nibabel
    passes it over."""
    from nibabel.spm2analyze import Spm2AnalyzeImage

    name = path.name.lower()
    bare = next((name[: -len(s)] for s in Spm2AnalyzeImage._compressed_suffixes if name.endswith(s)), name)
    if not bare.endswith((".hdr", ".img")):
        return
    given = Path(nibabel_name(path))
    try:
        file_map = Spm2AnalyzeImage.filespec_to_file_map(str(given))
    except Exception:  # noqa: BLE001 - a name nibabel cannot pair: nib.load says what is wrong
        return
    for role, holder in file_map.items():
        other = Path(holder.filename) if holder.filename else None
        if other is None or other == given:
            continue
        # a dataset's file whose content is not here: an .img was "missing", and an SPM .mat (a link that leads
        # nowhere) passed over as absent, the image read with the header's orientation instead of the .mat's
        check_present(other)
        if role != "mat" or _special_file(other):
            check_regular_file(other, of=f"{_COMPANION_ROLES[role]} of {path}")
        if role != "mat":
            check_readable(other, f"{path}: cannot read {_COMPANION_ROLES[role]} {other.name}")


def _special_file(path: Path) -> bool:
    """A named pipe, a socket or a device (not a folder, not a file)."""
    import stat

    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode)


def check_regular_file(path: Path, of: str | None = None) -> None:
    """Refuse what is there but is no file (a named pipe, a socket, a device): reading a pipe waits for a writer
    that may never come, and a device is no image. ``of``: what ``path`` is to the image given (the data file of a
    header)."""
    try:
        regular = path.is_file()
    except OSError:
        return  # what is wrong with it is said on opening
    if not regular and path.exists():
        what = "a folder, not a file" if path.is_dir() else "not a regular file (a named pipe, socket or device)"
        raise ImageReadError(f"{path}: {what}; give the image file" + (f" ({of})" if of is not None else ""))


def _uncompressed_gz(path: Path) -> bool:
    """A file named ``.nii.gz`` whose first bytes are not gzip's."""
    if not path.name.lower().endswith(".nii.gz") or not path.is_file():  # not opened: a named pipe would block
        return False
    try:
        with open(path, "rb") as file:
            head = file.read(2)
    except OSError:
        return False  # nibabel names what is wrong with it
    return len(head) == 2 and head != _GZIP_MAGIC


def check_voxels_fit(path: Path | str, image) -> None:
    """Refuse an Analyze / NIfTI image whose data file cannot hold the voxels its header declares: a corrupt shape
    (4000×4000×4000 in a 600-byte file) was blamed on the machine's memory. An uncompressed file must reach the
    header's offset plus the voxels; a gzip-compressed one cannot expand beyond deflate's ratio."""
    if not isinstance(image, nib.analyze.AnalyzeImage):
        return
    data = Path(image.file_map["image"].filename or path)
    try:
        size = data.stat().st_size
        declared = _declared_voxel_bytes(image)
        offset = int(getattr(image.dataobj, "offset", 0))  # where nibabel reads the voxels from
    except (OSError, ValueError, TypeError, OverflowError):
        return  # a missing data file or an unreadable field: the read names it
    shape = "×".join(str(int(n)) for n in image.header.get_data_shape())
    what = f"its header declares {shape} voxels of {np.dtype(image.header.get_data_dtype())} ({_bytes(declared)})"
    if _starts_with(data, _GZIP_MAGIC):
        if declared > size * DEFLATE_MAX_RATIO:
            raise ImageReadError(f"{path}: {what}, more than a gzip file of {size} bytes can hold; {_CUT_SHORT}, or "
                                 "its header is corrupt")
    elif data.name.lower().endswith((".bz2", ".zst")):  # other compressions nibabel reads: no bound to hold it to
        return
    elif offset + declared > size:
        raise ImageReadError(f"{path}: {what} from byte {offset}, but {'the file' if data == Path(path) else data.name}"
                             f" holds {size} bytes; {_CUT_SHORT}, or its header is corrupt")


def _bytes(count: int) -> str:
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if count >= scale:
            return f"{count / scale:.3g} {unit}"
    return f"{count} bytes"


def _declared_voxel_bytes(image) -> int:
    """How many bytes of voxels an Analyze / NIfTI header declares."""
    header = image.header
    return int(np.prod(header.get_data_shape(), dtype=np.int64)) * np.dtype(header.get_data_dtype()).itemsize


_HEADER_SIZES = (348, 540)  # NIfTI-1 (and Analyze), NIfTI-2: the header's first field states its size


def _header_start(path: Path) -> tuple[bytes, int, bool] | None:
    """The first bytes of ``path``'s header, decompressed where it is gzip-compressed (as much as decompresses of a
    stream that may itself be cut short): (bytes, bytes stored on disk read, whether a gzip stream ended). None for
    what is not a regular file: it is not opened (a named pipe would wait for a writer)."""
    if not _regular(path):
        return None
    try:
        with open(path, "rb") as handle:
            raw = handle.read(1 << 16)
    except OSError:
        return None
    stored, ended = len(raw), False
    if raw[:2] == b"\x1f\x8b":
        try:
            stream = zlib.decompressobj(16 + zlib.MAX_WBITS)
            raw, ended = stream.decompress(raw, 1024), stream.eof
        except zlib.error:
            return None
    return raw, stored, ended


def _regular(path: Path) -> bool:
    """Whether ``path`` is a regular file (or a link to one), checked before it is opened to look at its bytes."""
    try:
        return path.is_file()
    except OSError:
        return False


def _dimension_count_problem(start: tuple[bytes, int, bool] | None) -> str | None:
    """"corrupt header (dim[0] … is 9 …)" where a NIfTI header (``start``: its first bytes, :func:`_header_start`)
    states a number of dimensions outside 1..7 in either byte order; None otherwise. nibabel takes such a header for
    the other byte order and reports what it then misreads ("data code 4096 not recognized"), or an empty shape for
    0."""
    if start is None:
        return None
    raw = start[0]
    for order in ("little", "big"):
        size = int.from_bytes(raw[:4], order)
        place, width = {348: (40, 2), 540: (16, 8)}.get(size, (None, None))
        if place is None or len(raw) < place + width:
            continue
        counts = [int.from_bytes(raw[place:place + width], either, signed=True) for either in ("little", "big")]
        if not any(1 <= count <= 7 for count in counts):
            return (f"corrupt header (dim[0], its number of dimensions, is {counts[0 if order == 'little' else 1]}; "
                    "NIfTI allows 1 to 7)")
    return None


# the datatype codes NIfTI defines for grey levels and labels, as a message lists them
_DATATYPES_SHOWN = "2 uint8, 4 int16, 8 int32, 16 float32, 64 float64, 256 int8, 512 uint16, 768 uint32"


def _datatype_problem(start: tuple[bytes, int, bool] | None) -> str | None:
    """"corrupt header: its datatype code 99 is …" where a NIfTI (or Analyze) header (``start``: its first bytes,
    :func:`_header_start`) states a datatype code that nibabel does not know, in the byte order its size field is
    read in; None otherwise."""
    if start is None:
        return None
    raw = start[0]
    for order in ("little", "big"):
        place = {348: 70, 540: 12}.get(int.from_bytes(raw[:4], order))
        if place is None or len(raw) < place + 2:
            continue
        code = int.from_bytes(raw[place:place + 2], order, signed=True)
        if code not in nib.nifti1.data_type_codes.value_set("code"):
            return (f"corrupt header: its datatype code {code} is not one NIfTI defines (those of images and labels: "
                    f"{_DATATYPES_SHOWN}); the file was damaged, or written by a tool that does not follow NIfTI")
        return None
    return None


def cut_short_text(path: Path | str) -> str | None:
    """The error for a file whose NIfTI or Analyze header is empty or ends before its stated size (an interrupted copy),
    None where it is whole or no such header (:func:`_header_cut_short`)."""
    cut = _header_cut_short(Path(path))
    return None if cut is None else f"{path}: {cut}; {_CUT_SHORT}"


def _header_cut_short(path: Path) -> str | None:
    """"truncated header (N of 348 bytes)" where ``path`` (gzip-compressed or not) starts a NIfTI or Analyze header
    that ends before its stated size; None otherwise (nibabel's own words then stand)."""
    start = _header_start(path)
    if start is None:
        return None
    raw, stored, ended = start
    if stored >= 2 and not raw and _starts_with(path, b"\x1f\x8b"):
        return ("an empty file (gzip-compressed, no content)" if ended else
                f"a gzip file of {stored} bytes that ends before any of its content")
    if not raw:
        return "an empty file (0 bytes)"
    if len(raw) < 4:  # too few bytes to tell a header by: a NIfTI by its name only (a 3-byte notes.txt is no NIfTI)
        named = any(part in path.name.lower() for part in (".nii", ".hdr", ".img"))
        return f"truncated header ({len(raw)} bytes, less than any NIfTI header)" if named else None
    stated = next((size for order in ("little", "big") if (size := int.from_bytes(raw[:4], order)) in _HEADER_SIZES),
                  None)
    if stated is None or len(raw) >= stated:
        return None
    return f"truncated header ({len(raw)} of {stated} bytes)"


_NIFTI_NAMES = (".nii", ".nii.gz", ".hdr", ".hdr.gz", ".img", ".img.gz")


def _starts_a_nifti_header(path: Path) -> bool:
    """Whether ``path`` (gzip-compressed or not) starts with a whole single-file NIfTI-1 or NIfTI-2 header, by its
    size field and magic string (not the header of an .hdr/.img pair)."""
    start = _header_start(path)
    if start is None:
        return False
    raw = start[0]
    return any(int.from_bytes(raw[:4], order) == 348 and raw[344:347] == b"n+1"
               or int.from_bytes(raw[:4], order) == 540 and raw[4:7] == b"n+2" for order in ("little", "big"))


def _magic_text(path: Path) -> str | None:
    """What is wrong with the header of a file named ``.nii`` / ``.nii.gz`` that begins as a NIfTI-1 header does
    (its size field 348) but whose magic string is not ``n+1`` (nor ``ni1``, a pair's): a damaged header, where
    nibabel said "Cannot work out file type", as of a file that was never an image. None for any other file."""
    start = _header_start(path) if path.name.lower().endswith((".nii", ".nii.gz")) else None
    if start is None or len(start[0]) < 348:
        return None
    raw = start[0]
    if not any(int.from_bytes(raw[:4], order) == 348 for order in ("little", "big")) or \
            raw[344:348] in (b"n+1\0", b"ni1\0"):
        return None
    return (f"corrupt header: its magic string (bytes 344 to 347) is {bytes(raw[344:348])!r}, not NIfTI-1's 'n+1', "
            "though its size field says a NIfTI-1 header; the file was damaged, or written by a tool that does not "
            "follow NIfTI")


def _nifti_name(path: Path) -> str:
    """The name a NIfTI file named otherwise should have: ``brain.nii.gz`` for ``brain.nii.gz.1`` (a repeated
    download), ``scan.nii`` for ``scan.nii.bak``, else the whole name with ``.nii`` or ``.nii.gz`` added."""
    extension = ".nii.gz" if _starts_with(path, b"\x1f\x8b") else ".nii"
    at = path.name.lower().find(".nii")
    return (path.name[:at] if at > 0 else path.name) + extension


def _gzip_cut_short(path: Path) -> bool:
    """Whether ``path`` is gzip-compressed and its (first) stream ends before its end marker: a file cut short.
    Decompresses the whole file, keeping none of it (only on the way to an error)."""
    if not _starts_with(path, b"\x1f\x8b"):  # False for what is not a regular file: it is not opened
        return False
    stream = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        with open(path, "rb") as handle:
            while not stream.eof and (chunk := handle.read(1 << 20)):
                stream.decompress(chunk, 1 << 20)
                while stream.unconsumed_tail and not stream.eof:
                    stream.decompress(stream.unconsumed_tail, 1 << 20)
    except (OSError, zlib.error):
        return False
    return not stream.eof


def _starts_with(path: Path, magic: bytes) -> bool:
    if not _regular(path):  # not opened: a named pipe would wait for a writer
        return False
    try:
        with open(path, "rb") as handle:
            return handle.read(len(magic)) == magic
    except OSError:
        return False
