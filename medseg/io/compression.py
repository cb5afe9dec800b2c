"""Compressions an image file may be named with, and which of them medseg reads.

A NIfTI file is read gzip- or bzip2-compressed (``.nii.gz``, ``.nii.bz2``), and zstd-compressed (``.nii.zst``) where
Python has zstd (``compression.zstd``, Python 3.14; the ``backports.zstd`` package before it), as nibabel reads it.
A file named with another compression (``.xz``, ``.lz4``, a ``.zip`` archive) is refused by its name, before it is
opened: nibabel's words for it were "Cannot work out file type", and for a ``.zst`` without zstd a traceback. Kept
free of nibabel, as a cohort's planning, which names such inputs, does not import it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

__all__ = ["READ_NAMES", "unsupported_compression", "zstd_available"]

# what medseg reads, as a message lists it
READ_NAMES = (".nii, .nii.gz, .nii.bz2, .nii.zst (with zstd), .hdr/.img (and .gz), .nrrd, .nhdr, .mha, .mhd, or a "
              "DICOM folder")

# compressions (and archives) named by their suffix: what they are, and the command that undoes them
_UNREAD = {".xz": ("xz", "xz -d"), ".lzma": ("LZMA", "xz -d"), ".zst": ("zstd", "zstd -d"), ".lz4": ("LZ4", "lz4 -d"),
           ".br": ("Brotli", "brotli -d"), ".lz": ("lzip", "lzip -d"), ".z": ("Unix compress", "uncompress"),
           ".zip": ("a ZIP archive", "unzip"), ".7z": ("a 7-Zip archive", "7z x"), ".rar": ("a RAR archive",
                                                                                         "unrar x")}


def zstd_available() -> bool:
    """Whether Python has zstd, through which nibabel reads a ``.nii.zst`` (without importing it)."""
    for name in ("compression.zstd", "backports.zstd"):
        try:
            if importlib.util.find_spec(name) is not None:
                return True
        except (ImportError, ValueError):  # its parent package is not there
            continue
    return False


def unsupported_compression(path: Path | str) -> str | None:
    """The one-line error for an image file named with a compression or archive suffix medseg does not read
    (``scan.nii.xz``; ``scan.nii.zst`` where Python has no zstd), naming what it reads; None for any other name, and
    for a folder (a DICOM series' folder, whatever its name, is read as one)."""
    name = Path(path).name
    suffix = next((s for s in _UNREAD if name.lower().endswith(s)), None)
    if suffix is None or (suffix == ".zst" and zstd_available()):
        return None
    if Path(path).is_dir():  # a DICOM folder named so (study.zip, unpacked in its place): read as any folder
        return None
    kind, command = _UNREAD[suffix]
    what = kind if kind.startswith("a ") else f"{kind}-compressed"
    reads = ("which this Python cannot read (it has no zstd: install the backports.zstd package, or use Python 3.14)"
             if suffix == ".zst" else "which medseg does not read")
    return f"{path}: {what} ({name[-len(suffix):]}), {reads}; undo it ({command} {name}) or give one of {READ_NAMES}"
