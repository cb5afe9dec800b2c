"""Atomic outputs: write to hidden temporary files beside the targets, rename when all are complete."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

from medseg.errors import OutputExistsError

__all__ = ["atomic_paths", "check_writable", "sha256_of"]


def _temp_name(target: Path) -> Path:
    # keep the full suffix (.nii.gz) so writers pick the right format from the name
    name = target.name
    suffix = ".nii.gz" if name.endswith(".nii.gz") else target.suffix
    return target.with_name(f".{name[: len(name) - len(suffix)]}.partial-{uuid.uuid4().hex[:8]}{suffix}")


def check_writable(targets: Sequence[Path], overwrite: bool) -> None:
    """Refuse when any target exists and ``overwrite`` is false."""
    if overwrite:
        return
    for target in targets:
        if Path(target).exists():
            raise OutputExistsError(f"{target}: output exists already; pass --overwrite to replace it")


@contextlib.contextmanager
def atomic_paths(targets: Sequence[Path | str], overwrite: bool = False) -> Iterator[list[Path]]:
    """Yield temporary paths for ``targets``; on success rename each onto its target.

    Nothing partial is ever visible under a target name: if the block raises, the temporary files are
    removed and the targets are left as they were.
    """
    targets = [Path(t) for t in targets]
    check_writable(targets, overwrite)
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
    temps = [_temp_name(t) for t in targets]
    try:
        yield temps
        for temp, target in zip(temps, targets):
            # some writers (safetensors) create private 0600 files: give every output the usual umask mode
            os.chmod(temp, _file_mode())
            os.replace(temp, target)
    finally:
        for temp in temps:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()


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
