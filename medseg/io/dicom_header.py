"""One DICOM file's header, read up to (not into) its pixel data: a file that is not DICOM told from one cut short
or corrupt, pixel data cut short or stored otherwise than the file's transfer syntax says, and the transfer syntax
of a bare dataset (no file meta) set from the encoding it was read in."""

from __future__ import annotations

from pathlib import Path

import pydicom
from pydicom.dataset import FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from medseg.errors import ImageReadError, first_line
from medseg.io.files import os_reason

__all__ = ["not_dicom_text", "transfer_syntax"]

DEFER = "4 KB"
DICOMDIR_UID = "1.2.840.10008.1.3.10"  # pixel data and other large values are read only when needed


def _image_storage(dataset) -> bool:
    """Whether the file's SOP class is an image storage class (CT Image Storage, ...), by pydicom's UID names."""
    try:
        return "Image Storage" in str(dataset.SOPClassUID.name)
    except (AttributeError, KeyError, ValueError):
        return False


def _header_complete_without_pixels(path: Path, required: list[str]) -> bool:
    """Whether the header alone (read up to the pixel data) holds ``required``: then what is cut is the pixels."""
    try:
        header = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    except Exception:  # as broken as it looked
        return False
    return all(k in header for k in required)


def not_dicom_text(path: Path | str) -> str | None:
    """The error for a single file given where a DICOM series goes (or an image file) that is no DICOM file, or
    whose header is broken, though its name ends in ``.dcm``; None for a DICOM file whose header reads."""
    path = Path(path)
    try:
        dataset = _read_header(path)
    except ImageReadError as error:  # cut short or corrupt: its own words
        if not _short_text(path):
            return str(error)
        dataset = None  # a short text ("404 Not Found"), not a DICOM file cut short: that begins with binary bytes
    if dataset is None:
        return (f"{path}: not a DICOM file, though named {path.suffix or 'as one'} (no DICM marker after a 128-byte "
                "preamble, and no DICOM header without one)")
    return None


def _short_text(path: Path) -> bool:
    """Whether ``path`` is shorter than the 132 bytes that begin a DICOM file and is text (UTF-8, no NUL byte): a
    DICOM file cut short begins with its preamble or, bare, with a tag, both holding NUL bytes."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(132)
        head.decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    return 0 < len(head) < 132 and b"\0" not in head


def _read_header(path: Path) -> pydicom.Dataset | None:
    """The dataset with large values deferred; None when the file is not DICOM; errors when it is broken."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(132)
    except OSError as error:
        raise ImageReadError(f"{path}: cannot read ({os_reason(error)})") from error
    has_magic = len(head) == 132 and head[128:132] == b"DICM"
    # an interrupted copy: left out, the volume lost a slice (a hidden file, as macOS's ._IM0001.dcm, is no slice)
    if len(head) < 132 and path.suffix.lower() == ".dcm" and not path.name.startswith("."):
        raise ImageReadError(f"{path}: truncated DICOM file ({len(head)} bytes, shorter than the 132 that begin one)")
    try:
        dataset = pydicom.dcmread(path, defer_size=DEFER, force=not has_magic)
    except InvalidDicomError:
        return None
    except Exception as error:  # pydicom raises many kinds on garbage; a DICM file that fails is broken
        if has_magic:
            raise ImageReadError(f"{path}: truncated or corrupt DICOM file ({first_line(error)})") from error
        return None
    if not has_magic and not ("SOPClassUID" in dataset and "SeriesInstanceUID" in dataset):
        return None  # force-parsing anything gives a dataset; without these it was not DICOM
    meta = getattr(dataset, "file_meta", None)
    if meta is not None and str(meta.get("MediaStorageSOPClassUID", "")) == DICOMDIR_UID:
        return dataset  # a media index, listed as a non-image object
    # an image without SeriesInstanceUID (anonymised) is grouped by study, number and description; without it
    # and without pixel data too, the header was cut short
    pixels = any(k in dataset for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"))
    required = [k for k in ("SOPClassUID", "SeriesInstanceUID") if k not in dataset
                and (k == "SOPClassUID" or not pixels)]
    if has_magic and not pixels and "Rows" not in dataset and _image_storage(dataset):
        # an image without its image header: cut short (a whole file of this class always has both)
        raise ImageReadError(f"{path}: truncated or incomplete DICOM file ({dataset.SOPClassUID.name} without Rows "
                             "or pixel data)")
    if required:
        # pydicom gives up on the whole file, not only the pixels: the header is whole when it reaches the image
        # pixel module (group 0028, just before the pixels; an anonymised header never has the series UID)
        if _header_complete_without_pixels(path, ["SOPClassUID", "Rows", "Columns", "BitsAllocated"]):
            raise ImageReadError(f"{path}: truncated DICOM file (it ends inside an element after its image header, "
                                 "most likely in the pixel data)")
        raise ImageReadError(f"{path}: truncated or incomplete DICOM file (no {', '.join(required)})")
    if meta is None or "TransferSyntaxUID" not in meta:  # a bare dataset (no preamble or file meta, as older
        _set_transfer_syntax(dataset)  # scanners and PACS exports write): its encoding is the one it was read in
    return dataset


def _pixels_cut_short(path: Path, dataset: pydicom.Dataset) -> str | None:
    """A file cut short inside its (deferred, not yet read) pixel data passed as a whole image until it was decoded:
    ``inspect`` called its series eligible and ``convert`` then failed. The header says how long the pixels are and
    where they start; the file's size says whether they are all there (encapsulated pixel data has no length)."""
    if "PixelData" not in dataset:
        return None
    raw = dataset.get_item("PixelData", keep_deferred=True)
    start, length = getattr(raw, "value_tell", None), getattr(raw, "length", None)
    value = getattr(raw, "value", b"")
    if isinstance(value, bytes) and length not in (None, 0xFFFFFFFF) and len(value) < length:
        # small pixel data is read with the header (not deferred), and pydicom keeps what it found of it
        return (f"{path.name} is cut short (its pixel data is declared as {length} bytes; the file ends "
                f"{length - len(value)} bytes short of them)")
    if value is not None or start is None or length in (None, 0xFFFFFFFF):
        return None  # read already (pydicom read it whole), or of undefined length
    syntax = transfer_syntax(dataset)
    if syntax is not None and syntax.is_deflated:
        return None  # its offsets count the inflated stream, not the file's bytes: a cut shows when it is inflated
    try:
        size = path.stat().st_size
    except OSError:
        return None  # it is read again when decoded, and named then
    if size >= start + length:
        return None
    return (f"{path.name} is cut short (its pixel data is declared as {length} bytes; the file ends "
            f"{start + length - size} bytes short of them)")


def transfer_syntax(dataset: pydicom.Dataset):
    """The file's TransferSyntaxUID (a pydicom ``UID``), or None where its file meta names none."""
    meta = getattr(dataset, "file_meta", None)
    return meta.get("TransferSyntaxUID") if meta is not None else None


def _encoding_unlike_syntax(path: Path, dataset: pydicom.Dataset) -> str | None:
    """Pixel data stored otherwise than the file's transfer syntax says: uncompressed pixels (a defined length) under
    a compressed syntax were decoded as a codestream and reported as corrupt, which they are not."""
    syntax = transfer_syntax(dataset)
    if syntax is None or not syntax.is_transfer_syntax or "PixelData" not in dataset:
        return None
    raw = dataset.get_item("PixelData", keep_deferred=True)
    undefined = getattr(raw, "is_undefined_length", None)
    if undefined is None:
        undefined = getattr(raw, "length", None) == 0xFFFFFFFF
    if syntax.is_encapsulated and not undefined:
        return (f"{path.name}: its transfer syntax ({syntax.name}) is one of compressed pixel data, but its pixel data "
                "is stored uncompressed; the file's TransferSyntaxUID is wrong")
    if not syntax.is_encapsulated and undefined:
        return (f"{path.name}: its pixel data is compressed (encapsulated), but its transfer syntax ({syntax.name}) is "
                "one of uncompressed pixel data; the file's TransferSyntaxUID is wrong")
    return None


def _set_transfer_syntax(dataset: pydicom.Dataset) -> None:
    implicit, little = dataset.original_encoding
    if implicit is None or little is None:
        return
    meta = getattr(dataset, "file_meta", None) or FileMetaDataset()
    meta.TransferSyntaxUID = (ImplicitVRLittleEndian if implicit else
                              ExplicitVRLittleEndian if little else ExplicitVRBigEndian)
    dataset.file_meta = meta
