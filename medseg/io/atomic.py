"""Atomic outputs: write to hidden temporary files beside the targets, rename when all are complete."""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import os
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

from medseg.errors import MedsegError, OutputExistsError, OutputWriteError

__all__ = ["atomic_paths", "check_writable", "sha256_of"]


def _temp_name(target: Path) -> Path:
    # keep the full suffix (.nii.gz) so writers pick the right format from the name
    name = target.name
    suffix = ".nii.gz" if name.endswith(".nii.gz") else target.suffix
    return target.with_name(f".{name[: len(name) - len(suffix)]}.partial-{uuid.uuid4().hex[:8]}{suffix}")


def check_writable(targets: Sequence[Path], overwrite: bool) -> None:
    """Refuse when any target exists and ``overwrite`` is false, or is a folder (never replaced)."""
    for target in targets:
        target = Path(target)
        if target.is_dir():
            raise OutputWriteError(f"{target}: a folder is in the place of this output; move it away")
        if not overwrite and (target.exists() or target.is_symlink()):
            raise OutputExistsError(f"{target}: output exists already; pass --overwrite to replace it")


@contextlib.contextmanager
def atomic_paths(targets: Sequence[Path | str], overwrite: bool = False) -> Iterator[list[Path]]:
    """Yield temporary paths for ``targets``; on success put each onto its target, all or none.

    Nothing partial is ever visible under a target name: if the block raises, the temporary files are
    removed and the targets are left as they were; if putting one output in place fails, those already
    put in place are taken back and replaced targets restored. An ``OSError`` while writing (no
    permission, disk full) becomes :class:`OutputWriteError` naming the output.
    """
    targets = [Path(t) for t in targets]
    check_writable(targets, overwrite)
    for target in targets:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise OutputWriteError(f"{target.parent}: cannot create the output folder ({_reason(error)})") from error
    temps = [_temp_name(t) for t in targets]
    try:
        try:
            yield temps
            mode = _file_mode()
            for temp in temps:
                # some writers (safetensors) create private 0600 files: give every output the usual umask mode
                os.chmod(temp, mode)
        except OSError as error:
            if isinstance(error, MedsegError):
                raise
            raise OutputWriteError(f"{_which(error, targets, temps)}: cannot write ({_reason(error)})") from error
        _put_in_place(temps, targets)
    finally:
        for temp in temps:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()


def _put_in_place(temps: list[Path], targets: list[Path]) -> None:
    """Rename every temp onto its target; on a failure undo the renames done so far (old targets come back)."""
    backups: list[tuple[Path, Path]] = []  # (target, its previous file moved aside)
    placed: list[Path] = []
    try:
        for temp, target in zip(temps, targets):
            if target.is_dir() and not target.is_symlink():  # never move a folder aside
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(target))
            if target.exists() or target.is_symlink():
                backup = target.with_name(f".{target.name}.previous-{uuid.uuid4().hex[:8]}")
                os.replace(target, backup)
                backups.append((target, backup))
            os.replace(temp, target)
            placed.append(target)
    except OSError as error:
        for target in placed:
            with contextlib.suppress(OSError):
                target.unlink()
        for target, backup in backups:
            with contextlib.suppress(OSError):
                os.replace(backup, target)
        failed = targets[len(placed)]
        raise OutputWriteError(f"{failed}: cannot put the output in place ({_reason(error)}); "
                               "no output of this set was changed") from error
    for _, backup in backups:
        with contextlib.suppress(OSError):
            backup.unlink()


def _which(error: OSError, targets: list[Path], temps: list[Path]) -> Path:
    """The output an OSError was about (by its temp file's name), else the outputs' folder."""
    name = str(error.filename or "")
    for temp, target in zip(temps, targets):
        if name and Path(name).name == temp.name:
            return target
    return targets[0].parent if targets else Path(name or ".")


def _reason(error: OSError) -> str:
    return error.strerror or str(error) or type(error).__name__


@functools.cache
def _file_mode() -> int:
    """The mode a plain ``open()`` gives a new file under this process's umask (read once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def sha256_of(path: Path | str) -> str:
    """SHA-256 of a file, or of a folder's files (sorted relative paths and contents)."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode())
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
