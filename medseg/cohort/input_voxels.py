"""The size of a cohort's inputs, read from their headers while the workflow plans: the voxels of each image and
their size in mm, from which the jobs' memory is planned (:mod:`medseg.cohort.job_memory`,
:mod:`medseg.cohort.report_memory`).

Planning reads every input of the sheet, in every Snakemake call, so this is kept cheap: a NIfTI header is read with
the standard library (no nibabel import: 0.1-0.2 s), and a DICOM folder's files are listed from its directory
entries with one ``stat`` of each (its size), without opening them (but for files smaller than the largest one's
pixels, whose headers say whether they are compressed: none in a series of one size), and the grid read from the
header of its largest file that has one. Measured on 200 folders of 300 files each (warm page cache, 2-core CPU, one
process): 0.19 s for all 60,000 files (0.07 s when the files were counted without their sizes, and the grid read
from the first header: a folder holding a small series and a large one, or a single frame beside a multi-frame file,
was counted 2.5 to 100 times under), where listing them with ``Path.rglob`` and ``is_file`` took 1.1-4 s.
"""

from __future__ import annotations

import bz2
import gzip
import logging
import math
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

# no nibabel: planning does not import it
from medseg.io.free_space import BZIP2_MAX_RATIO, DEFLATE_MAX_RATIO, ZSTD_MAX_RATIO
from medseg.io.read_warnings import warnings_naming

__all__ = ["InputGrid", "input_grid", "voxel_count"]

log = logging.getLogger(__name__)

# a DICOM slice spacing outside this range (mm) is not believed: SliceThickness is often missing, 0 or wrong
_SLICE_SPACING_MM = (0.01, 20.0)
# bytes a voxel takes by a NIfTI header's datatype code, as reading takes it (its bitpix, which nibabel does not read,
# may disagree); a code not here counts a byte
_DATATYPE_BYTES = {2: 1, 4: 2, 8: 4, 16: 4, 32: 8, 64: 8, 128: 3, 256: 1, 512: 2, 768: 4, 1024: 8, 1280: 8, 1536: 16,
                   1792: 16, 2048: 32, 2304: 4}


@dataclass(frozen=True)
class InputGrid:
    """An input image's voxel count (all its volumes: a 4D image of 4 modalities counts each voxel 4 times) and, when
    its header tells it, its voxel size (mm, three axes); ``channels``: the volumes beyond the first three axes;
    ``shape``: the voxels along each of its three axes where the header tells them (a DICOM folder's: its largest
    image's columns and rows, and its voxels over them), which the planned run time pads to the model's tiles (not
    compared: two grids of the same voxels and voxel size are the same size)."""

    voxels: int = 0
    spacing_mm: tuple[float, float, float] | None = None
    channels: int = 1
    shape: tuple[int, int, int] | None = field(default=None, compare=False)

    @property
    def grid_voxels(self) -> int:
        """The voxels of its 3D grid, each counted once (a segmentation of it holds as many)."""
        return self.voxels // max(self.channels, 1)

    @property
    def voxel_mm3(self) -> float | None:
        """The volume of one voxel (mm³), None when the header does not tell it."""
        return None if self.spacing_mm is None else math.prod(self.spacing_mm)


def input_grid(path: Path | str) -> InputGrid:
    """The grid of an input image from its header: a NIfTI file's shape and pixdim (an NRRD or MetaImage file's
    sizes and spacing), or a DICOM folder's voxels, every
    series of it counted, from the header of its largest file that has a grid (:func:`_dicom_folder_grid`), with that
    file's pixel spacing and slice spacing (SpacingBetweenSlices, else SliceThickness). No voxels when it cannot be
    read, or is no file or folder (a named pipe: its case fails in its own job)."""
    path = Path(path)
    try:
        if path.is_dir():
            return _dicom_folder_grid(path)
        if not path.is_file():  # a named pipe or a device: opened, it waited for a writer, and planning with it
            return InputGrid()
        if path.name.lower().endswith((".nrrd", ".nhdr", ".mha", ".mhd")):
            return _itk_grid(path)
        return _nifti_grid(path)
    except Exception as error:  # a missing or unreadable input fails its case; it is not the planning's to hold
        log.debug("%s: no voxel count (%s)", path, error)
        return InputGrid()


def voxel_count(path: Path | str) -> int:
    """The voxels of an input image from its header (:func:`input_grid`); 0 when it cannot be read."""
    return input_grid(path).voxels


def _nifti_grid(path: Path) -> InputGrid:
    """The voxels and pixdim a NIfTI-1 or NIfTI-2 header declares (gzip-, bzip2- or zstd-compressed or not; zstd where
    Python has it, as nibabel reads it), read with the standard library: planning does not import nibabel (0.1-0.2 s
    of every Snakemake call). A single file that cannot
    hold the voxels its header declares (a corrupt header: 30000³ voxels in a few kB, which reading refuses) counts
    none: its batch's jobs asked for hundreds of TB of memory."""
    with path.open("rb") as file:
        magic = file.read(4)
    # gzip, bzip2 or zstd (a .nii.bz2, a .nii.zst, which nibabel reads too; a .nii.zst's voxels were counted as none,
    # and its job asked for the memory of an empty input): the most bytes of voxels a stored byte stands for
    # a zstd frame, or a skippable frame before it (0x184D2A50-5F: pzstd, zstd's parallel tool, writes one first)
    zstd = magic == b"\x28\xb5\x2f\xfd" or (magic[1:] == b"\x2a\x4d\x18" and b"\x50" <= magic[:1] <= b"\x5f")
    gzipped, bzipped = magic[:2] == b"\x1f\x8b", magic[:3] == b"BZh"
    ratio = DEFLATE_MAX_RATIO if gzipped else BZIP2_MAX_RATIO if bzipped else ZSTD_MAX_RATIO if zstd else None
    opener = gzip.open if gzipped else bz2.open if bzipped else _zstd_open() if zstd else open
    with opener(path, "rb") as file:
        header = file.read(540)
    for order in "<>":
        size = struct.unpack(f"{order}i", header[:4])[0]
        if size == 348:
            dims = struct.unpack(f"{order}8h", header[40:56])
            pixdim = struct.unpack(f"{order}8f", header[76:108])
            code, offset, single = struct.unpack(f"{order}h", header[70:72])[0], \
                struct.unpack(f"{order}f", header[108:112])[0], header[344:348] == b"n+1\0"
        elif size == 540:
            dims = struct.unpack(f"{order}8q", header[16:80])
            pixdim = struct.unpack(f"{order}8d", header[104:168])
            code, offset, single = struct.unpack(f"{order}h", header[12:14])[0], \
                struct.unpack(f"{order}q", header[168:176])[0], header[4:8] == b"n+2\0"
        else:
            continue
        if not 1 <= dims[0] <= 7:
            return InputGrid()
        voxels = int(math.prod(max(int(n), 1) for n in dims[1:1 + dims[0]]))
        if single:  # the voxels follow the header in this file (a .hdr's are in its .img)
            stored = os.stat(path).st_size
            room = stored * ratio if ratio is not None else stored - (offset if math.isfinite(offset) else 0)
            if voxels * _DATATYPE_BYTES.get(code, 1) > room:
                log.debug("%s: its header declares %d voxels, more than the file holds", path, voxels)
                return InputGrid()
        channels = int(math.prod(max(int(n), 1) for n in dims[4:1 + dims[0]])) if dims[0] > 3 else 1
        spacing = tuple(abs(float(v)) for v in pixdim[1:4])
        known = all(math.isfinite(v) and v > 0 for v in spacing)
        shape = tuple(max(int(n), 1) for n in (*dims[1:1 + min(dims[0], 3)], 1, 1)[:3])
        return InputGrid(voxels, spacing if known else None, channels, shape)
    return InputGrid()


def _zstd_open():
    """zstd's ``open`` as nibabel takes it (Python 3.14's ``compression.zstd``, else ``backports.zstd``); an
    ImportError without either (the case fails as bad input in its job, as the planning warned)."""
    try:
        from compression import zstd
    except ImportError:
        from backports import zstd
    return zstd.open


def _itk_grid(path: Path) -> InputGrid:
    """The voxels and voxel size an NRRD or MetaImage text header declares (parsed without SimpleITK); none where its
    files cannot hold them, even compressed (a corrupt header, as :func:`_nifti_grid` counts one)."""
    from medseg.io.itk_data_files import stored_bytes
    from medseg.io.itk_header import header_sizes

    found = header_sizes(path)
    if found is None:
        return InputGrid()
    sizes, spacing = found
    voxels = int(math.prod(max(n, 1) for n in sizes))
    stored = stored_bytes(path)  # a voxel takes a byte at least, which gzip or zlib shrink 1032 times at most
    if stored is not None and voxels > stored[0] * stored[1]:
        log.debug("%s: its header declares %d voxels, more than its files hold", path, voxels)
        return InputGrid()
    known = spacing is not None and len(spacing) >= 3 and all(math.isfinite(v) and v > 0 for v in spacing[:3])
    shape = tuple(max(n, 1) for n in (*sizes[:3], 1, 1)[:3])
    return InputGrid(voxels, tuple(spacing[:3]) if known else None, shape=shape)


def _files_under(folder: Path) -> list[tuple[int, str]]:
    """The size (bytes) and path of each file under ``folder`` (hidden ones left out, as the DICOM reader leaves
    them), from the directory entries and one ``stat`` of each file: ``os.scandir`` tells a file from a folder
    without one (but for a symbolic link), and nothing is opened."""
    files, folders = [], [os.fspath(folder)]
    while folders:
        with os.scandir(folders.pop()) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    folders.append(entry.path)
                    continue
                try:  # a link that loops raises here (the reader's Path.is_file passes over it): not the folder's end
                    if entry.is_file():
                        files.append((entry.stat().st_size, entry.path))
                except OSError:  # gone since listed, a broken or looping link: nothing to read
                    continue
    return files


# files whose header is tried for the grid, largest first: a folder whose largest files are not images (a report as
# PDF, a structure set, notes) still tells its grid; one whose 64 largest are not is planned without its voxels
_HEADERS_TRIED = 64

# transfer syntaxes whose pixels take BitsAllocated x SamplesPerPixel bits each in the file: implicit and explicit
# VR little endian, explicit VR big endian (a deflated or encapsulated one tells no voxels from bytes)
_UNCOMPRESSED = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2"}


def _dicom_folder_grid(folder: Path) -> InputGrid:
    """The voxels of every file under ``folder``, from the header of its largest file that has a grey-level grid
    (colour images, which the reader refuses, take 24 bits a pixel and tell no pixel spacing: they count): the folder's
    bytes over the bits a stored pixel of that file takes where it is stored uncompressed (an upper bound for files
    that store theirs uncompressed with at least as many bits; a file smaller than that file's pixels, which may
    store its own compressed, is counted from its header where it does: a series mixing JPEG 2000 or RLE slices with
    uncompressed ones was counted at 0.06-0.8 of its voxels), else that file's voxels times the number of files
    (an upper bound where no file holds more voxels than the largest)."""
    files = sorted(_files_under(folder), reverse=True)
    if not files:
        return InputGrid()
    import pydicom

    colour: list[int] = []  # sizes of the colour images tried before the grid's file (a screenshot, a dose report)
    for tried, (size, path) in enumerate(files[:_HEADERS_TRIED]):
        try:
            with warnings_naming(path):  # pydicom's words as it reads (an unknown character set) name the file
                header = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=[
                    "Rows", "Columns", "NumberOfFrames", "SamplesPerPixel", "BitsAllocated", "PixelSpacing",
                    "SpacingBetweenSlices", "SliceThickness"])
                _take_values(header)
        except Exception:  # not a DICOM file (a DICOMDIR's neighbour, a note): the next one
            continue
        rows, columns = int(header.get("Rows", 0) or 0), int(header.get("Columns", 0) or 0)
        if not (rows and columns):  # no image (a structure set, a report): the next one
            continue
        if int(header.get("SamplesPerPixel", 1) or 1) > 1:  # colour, which the reader refuses: its bits a pixel (24)
            colour.append(size)  # are no bound of a grey-level series' (16), and it has no pixel spacing: the next
            continue
        voxels = rows * columns * max(int(header.get("NumberOfFrames", 1) or 1), 1)
        bits = int(header.get("BitsAllocated", 0) or 0) * max(int(header.get("SamplesPerPixel", 1) or 1), 1)
        syntax = str(getattr(getattr(header, "file_meta", None), "TransferSyntaxUID", "") or "")
        if syntax in _UNCOMPRESSED and bits > 0:
            # the larger files tried before it hold no image (their bytes are no voxels), or one in colour; a file
            # smaller than this one's pixels holds a smaller image, or compressed pixels (a series mixing JPEG 2000
            # or RLE slices with uncompressed ones), whose bytes tell too few voxels: its header tells them
            pixel_bytes = voxels * bits // 8
            image_bytes = sum(colour)
            for other_size, other in files[tried:]:
                stored = _compressed_voxels(other) if other_size < pixel_bytes else None
                image_bytes += other_size if stored is None else max(other_size, -(-stored * bits // 8))
            voxels = max(image_bytes * 8 // bits, voxels)
        else:
            voxels *= len(files) - tried + len(colour)
        return InputGrid(voxels, _dicom_spacing(header), shape=(columns, rows, max(voxels // (rows * columns), 1)))
    return InputGrid()


def _take_values(header) -> None:
    """Each of the header's values, made from its bytes now: pydicom does it when a value is asked for, and warns
    then (``Invalid value for VR IS: '1.0'``), which after the read's block named no file."""
    for _ in header:  # a Dataset yields its elements made
        pass


def _compressed_voxels(path: str) -> int | None:
    """The voxels of a DICOM file whose pixels are stored compressed (encapsulated or deflated), from its header;
    None where they are stored uncompressed (its bytes bound them) or it is no DICOM image."""
    import pydicom

    try:
        with warnings_naming(path):
            header = pydicom.dcmread(path, stop_before_pixels=True,
                                     specific_tags=["Rows", "Columns", "NumberOfFrames"])
            _take_values(header)
    except Exception:  # not a DICOM file: its bytes count, as they did
        return None
    syntax = str(getattr(getattr(header, "file_meta", None), "TransferSyntaxUID", "") or "")
    if not syntax or syntax in _UNCOMPRESSED:
        return None
    try:
        return int(header.get("Rows", 0) or 0) * int(header.get("Columns", 0) or 0) * max(
            int(header.get("NumberOfFrames", 1) or 1), 1)
    except (TypeError, ValueError):
        return None


def _dicom_spacing(header) -> tuple[float, float, float] | None:
    """Pixel spacing and slice spacing (mm) of a DICOM header; None when the pixel spacing is not told. A slice
    spacing that is missing or out of belief is taken as the larger pixel spacing."""
    try:
        rows_mm, columns_mm = (float(v) for v in header.get("PixelSpacing") or ())
    except (TypeError, ValueError):
        return None
    if not all(math.isfinite(v) and v > 0 for v in (rows_mm, columns_mm)):
        return None
    low, high = _SLICE_SPACING_MM
    for keyword in ("SpacingBetweenSlices", "SliceThickness"):
        try:
            slice_mm = abs(float(header.get(keyword)))
        except (TypeError, ValueError):
            continue
        if low <= slice_mm <= high:
            return rows_mm, columns_mm, slice_mm
    return rows_mm, columns_mm, max(rows_mm, columns_mm)
