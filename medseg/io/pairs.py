"""Which files hold one image: a single NIfTI file, an Analyze / NIfTI pair's header and image (and an SPM
``.mat``), or a detached NRRD / MetaImage header (``.nhdr``, ``.mhd``) and the data file it names."""

from __future__ import annotations

from pathlib import Path

__all__ = ["companion", "file_signature", "image_files"]

_COMPANION = {"hdr": "img", "img": "hdr", "HDR": "IMG", "IMG": "HDR"}


def companion(path: Path | str) -> Path | None:
    """The other file of an Analyze / NIfTI pair: ``a.hdr`` for ``a.img``, ``a.img.gz`` for ``a.hdr.gz`` (whether or
    not it exists); None for a file of another kind."""
    path = Path(path)
    name = path.name
    base = name[:-3] if name.lower().endswith(".gz") else name
    stem, dot, ext = base.rpartition(".")
    return path.with_name(f"{stem}.{_COMPANION[ext]}{name[len(base):]}") if dot and ext in _COMPANION else None


def image_files(path: Path | str) -> list[Path]:
    """The files whose content is the image ``path`` names, header first: ``path`` itself, and for a ``.hdr`` /
    ``.img`` (optionally ``.gz``) its companion and an SPM ``.mat`` beside it when they exist, for a ``.nhdr`` /
    ``.mhd`` (any NRRD / MetaImage header naming data files) the data files it names that exist (each of a list or a
    pattern of files). A change in any of them changes the image, so content hashes and signatures cover them
    all."""
    path = Path(path)
    other = companion(path)
    if other is None:
        from medseg.io.itk_image import is_itk_name, itk_files_read

        if is_itk_name(path):  # a detached header's voxels are in the data files (a .raw, a list of them) it names
            return [p for p in itk_files_read(path) if p == path or p.is_file()]
        return [path]
    name = path.name
    base = name[:-3] if name.lower().endswith(".gz") else name
    stem, _, ext = base.rpartition(".")
    header, image = (path, other) if ext.lower() == "hdr" else (other, path)
    mats = (path.with_name(f"{stem}.mat"), path.with_name(f"{stem}.mat{name[len(base):]}"))  # nibabel: .mat(.gz)
    return [p for p in dict.fromkeys((header, image, *mats)) if p == path or p.is_file()]


def file_signature(path: Path | str) -> list | None:
    """What tells cheaply that the image at ``path`` was changed or replaced: the size and modification time (ns) of
    its file, ``[size, mtime_ns]``, or of each of :func:`image_files` for a pair. None for a folder (a DICOM series)
    or a file that cannot be looked at."""
    path = Path(path)
    try:
        if path.is_dir():
            return None
        stats = [p.stat() for p in image_files(path)]
    except OSError:
        return None
    if len(stats) == 1:
        return [stats[0].st_size, stats[0].st_mtime_ns]
    return [[stat.st_size, stat.st_mtime_ns] for stat in stats]  # a header / image pair: a change in either
