"""Which files hold one image: a single NIfTI file, an Analyze / NIfTI pair's header and image (and an SPM
``.mat``), or a detached NRRD / MetaImage header (``.nhdr``, ``.mhd``) and the data file it names."""

from __future__ import annotations

import os
from pathlib import Path

from medseg.io.files import absent_content, absent_files

__all__ = ["companion", "file_signature", "image_files", "image_parts", "input_signature", "parts_not_here"]

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


def _parts(path: Path) -> list[tuple[str, str, Path]]:
    """The other files the image at ``path`` is read from, whether or not they exist, each with what it is to the
    image and what its content is (for a pointer file in its place): a pair's other file (``its image file``, ``its
    header``), an SPM ``.mat`` that is there or a link, a detached header's data files (``its data file``)."""
    other = companion(path)
    if other is None:
        from medseg.io.itk_image import is_itk_name, itk_files_read

        if not is_itk_name(path):
            return []
        return [("its data file", "the voxels", data) for data in itk_files_read(path)[1:]]
    name = path.name
    base = name[:-3] if name.lower().endswith(".gz") else name
    stem, _, ext = base.rpartition(".")
    parts = [("its image file", "the voxels", other) if ext.lower() == "hdr" else ("its header", "a header", other)]
    for mat in dict.fromkeys((path.with_name(f"{stem}.mat"), path.with_name(f"{stem}.mat{name[len(base):]}"))):
        if os.path.lexists(mat):  # an SPM .mat is optional: only one in its place is read
            parts.append(("its SPM .mat", "an orientation matrix", mat))
    return parts


def image_parts(path: Path | str) -> list[Path]:
    """The other files the image at ``path`` is read from, whether or not they are here: a pair's other file, an SPM
    ``.mat`` in its place, the data files a detached header names (none for a single-file image)."""
    return [part for _, _, part in _parts(Path(path))]


def parts_not_here(path: Path | str) -> str | None:
    """What to say of the files the image at ``path`` is read from besides ``path`` itself whose content is not here
    (:func:`~medseg.io.files.absent_content`: a DataLad / git-annex or Git LFS dataset's file dropped or not
    fetched): a pair's ``.img`` (or ``.hdr``), an SPM ``.mat``, the data files a ``.nhdr`` / ``.mhd`` names, without
    ``path``'s name: ``its data file scan.raw is a git-annex link whose content is not present here (…): fetch it with
    datalad get …``. None where all of them are here (or missing outright: reading the image says so)."""
    path = Path(path)
    absent = [(role, what, part) for role, what, part in _parts(path)
              if absent_content(part, what) is not None]
    if not absent:
        return None
    if len(absent) == 1:
        role, what, part = absent[0]
        return f"{role} {part.name} is {absent_content(part, what)}"
    files = [part for _, _, part in absent]
    fetch = files if len(files) <= 3 else sorted({part.parent for part in files})
    shown = [Path(os.path.relpath(part, path.parent)) for part in files]
    return f"{len(files)} of the files it is read from are {absent_files(files, fetch, shown)}"


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


def folder_signatures(folder: Path | str) -> dict[str, tuple[int, int]]:
    """Size and modification time (ns) of each file under ``folder`` (a DICOM series folder, walked as its reading
    walks it), by real path: taken before the read, so that :func:`changed_files` tells a file of the series
    rewritten while it was read. Files that cannot be looked at are left out."""
    found = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            try:
                stat = os.stat(path)
            except OSError:
                continue
            found[os.path.realpath(path)] = (stat.st_size, stat.st_mtime_ns)
    return found


def changed_files(before: dict[str, tuple[int, int]], paths) -> list[Path]:
    """Those of ``paths`` (the files a read used) whose size or modification time is not what :func:`folder_signatures`
    found before the read, or that were not there then (in their order, each once)."""
    changed = []
    for path in dict.fromkeys(Path(p) for p in paths):
        try:
            stat = os.stat(path)
            now = (stat.st_size, stat.st_mtime_ns)
        except OSError:
            now = None
        if now is None or before.get(os.path.realpath(path)) != now:
            changed.append(path)
    return changed


def input_signature(path: Path | str, modalities: int = 1) -> list | None:
    """:func:`file_signature` of an input as a model of ``modalities`` modalities reads it: for nnU-Net's channel
    files (``case_0000`` given, :func:`~medseg.io.channels.channel_files`), that of each channel file in order (None
    for one not there), so that a ``case_0001`` replaced since shows; else the file's own, as for any input."""
    from medseg.io.channels import channel_files

    files = channel_files(path, modalities)
    if files is None:
        return file_signature(path)
    return [file_signature(file) for file in files]
