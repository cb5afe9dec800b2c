"""Files and folders as they are found: listing a folder, naming what is not there or cannot be read."""

from __future__ import annotations

import os
from pathlib import Path

from medseg.errors import ImageReadError

__all__ = ["files_under", "not_there", "undecodable"]


def undecodable(error: UnicodeDecodeError) -> str:
    """Where a text file stops being the encoding it was read as: ``byte 0xe9 at position 7``."""
    return f"byte {error.object[error.start]:#04x} at position {error.start}"


def not_there(path: Path | str, what: str = "no such file or folder") -> str:
    """Why ``path``, which does not exist, is not there: ``what``, or, for a link, where it leads (a link whose target
    was moved or deleted, or a loop of links, was said to be no file at all, beside the link the user can see)."""
    path = Path(path)
    if path.is_symlink():
        try:
            target = os.readlink(path)
        except OSError:
            return what
        return f"a link to {target} that leads nowhere (its target moved or deleted, or a loop of links)"
    return what


def files_under(folder: Path | str) -> list[Path]:
    """Every file under ``folder``, sorted: links to files are followed, links to folders are not (as
    ``Path.rglob``). A subfolder that cannot be listed or an entry that cannot be looked at (no permission) is an
    :class:`ImageReadError` naming it: ``rglob`` passes over the first in silence, so a series stored in part in such
    a folder would be read without those slices, and raises a bare ``PermissionError`` for the second."""
    folder = Path(folder)

    def refuse(error: OSError) -> None:
        raise ImageReadError(f"{folder}: cannot list {error.filename} ({error.strerror or error})") from error

    files: list[Path] = []
    for root, _, names in os.walk(folder, onerror=refuse):
        for name in names:
            path = Path(root, name)
            try:
                if path.is_file():
                    files.append(path)
            except OSError as error:
                raise ImageReadError(f"{folder}: cannot look at {path} ({error.strerror or error})") from error
    return sorted(files)
