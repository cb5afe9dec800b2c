"""Which files hold one image: a single NIfTI file, or an Analyze / NIfTI pair's header and image (and an SPM
``.mat``)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["image_files"]

_COMPANION = {"hdr": "img", "img": "hdr", "HDR": "IMG", "IMG": "HDR"}


def image_files(path: Path | str) -> list[Path]:
    """The files whose content is the image ``path`` names, header first: ``path`` itself, and for a ``.hdr`` /
    ``.img`` (optionally ``.gz``) its companion and an SPM ``.mat`` beside it when they exist. A change in any of
    them changes the image, so content hashes and signatures cover them all."""
    path = Path(path)
    name = path.name
    compressed = name.lower().endswith(".gz")
    base = name[:-3] if compressed else name
    stem, dot, ext = base.rpartition(".")
    if not dot or ext not in _COMPANION:
        return [path]
    companion = path.with_name(f"{stem}.{_COMPANION[ext]}{name[len(base):]}")
    header, image = (path, companion) if ext.lower() == "hdr" else (companion, path)
    mats = (path.with_name(f"{stem}.mat"), path.with_name(f"{stem}.mat{name[len(base):]}"))  # nibabel: .mat(.gz)
    return [p for p in dict.fromkeys((header, image, *mats)) if p == path or p.is_file()]
