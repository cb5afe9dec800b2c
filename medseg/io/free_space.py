"""Free space for a case's outputs, checked before it is segmented.

Writing the outputs is the last step of a case: a full disk used to be found only then, after minutes of inference
(the up-front check that a file can be made in the folder passes on an almost full disk, as an empty file takes no
space). :func:`check_free_space` refuses a case whose outputs cannot fit, from a lower bound of their size, so it
never refuses outputs that would fit: a NIfTI segmentation's voxels compressed as far as gzip's deflate can compress
anything (1032 to 1; medseg's segmentations compress 35-60 to 1, an empty one at gzip level 1 229 to 1), and 1 KiB
per JSON file (a sidecar is 3-4 KB). A DICOM SEG holds frames only where a segment is found, so only its JSON files
count.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from pathlib import Path

from medseg.errors import OutputWriteError

__all__ = ["BZIP2_MAX_RATIO", "DEFLATE_MAX_RATIO", "JSON_MIN_BYTES", "ZSTD_MAX_RATIO", "check_free_space",
           "free_bytes", "least_output_bytes"]

DEFLATE_MAX_RATIO = 1032  # deflate's best: a 258-byte match in about 2 bits, whatever the compression level
# bzip2's most: a block codes at most 900,000 bytes of its first run-length pass, in which 5 bytes stand for a run of
# at most 255 (bzip2 ends a run there), and takes more than a byte
BZIP2_MAX_RATIO = 900_000 // 5 * 255
# zstd's most: a block holds at most 128 KiB, and none takes fewer than 4 bytes (an RLE block: its 3-byte header and
# the byte repeated)
ZSTD_MAX_RATIO = (128 << 10) // 4
JSON_MIN_BYTES = 1024  # a sidecar or metrics file is never smaller (a sidecar is 3-4 KB)


def free_bytes(folder: Path | str) -> tuple[Path, int] | None:
    """The nearest existing folder at or above ``folder`` (where missing ones will be made) and the bytes this process
    may still write on its file system: ``f_bavail`` blocks, or ``f_bfree`` for root, who may use the blocks kept
    back for it (on Windows, what ``shutil.disk_usage`` gives). None where that cannot be told: no folder to look at,
    ``statvfs`` refused, or a file system that reports no size at all (some network and FUSE file systems report
    zero blocks)."""
    path = Path(os.path.abspath(folder))
    for candidate in (path, *path.parents):
        try:
            if not hasattr(os, "statvfs"):
                import shutil

                return candidate, int(shutil.disk_usage(candidate).free)
            status = os.statvfs(candidate)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except (OSError, ValueError):  # no permission to look, a name the file system cannot hold
            return None
        if status.f_blocks == 0 or status.f_frsize == 0:
            return None
        blocks = status.f_bfree if hasattr(os, "geteuid") and os.geteuid() == 0 else status.f_bavail
        return candidate, int(blocks) * int(status.f_frsize)
    return None


def least_output_bytes(voxels: int, bytes_per_voxel: int, output_format: str, json_files: int) -> int:
    """A lower bound of the bytes a case's outputs take: the segmentation (``nifti``: its voxels gzip-compressed as
    far as deflate goes; ``dicom-seg``: nothing, its frames depend on what is found) and ``json_files`` JSON files."""
    segmentation = -(-voxels * bytes_per_voxel // DEFLATE_MAX_RATIO) if output_format == "nifti" else 0
    return segmentation + json_files * JSON_MIN_BYTES


def check_free_space(targets: Sequence[Path | str], shape: Sequence[int], bytes_per_voxel: int,
                     output_format: str = "nifti") -> None:
    """Refuse (:class:`OutputWriteError`, raised from an ``ENOSPC`` error: a batch stops writing on that file system
    as on a full disk) when the file system of ``targets`` (a case's segmentation first, then its JSON files) has
    less free space than their lower bound (:func:`least_output_bytes`) for a segmentation of ``shape``. Nothing is
    said where there is room, or where the free space cannot be told."""
    targets = [Path(t) for t in targets]
    found = free_bytes(targets[0].parent)
    if found is None:
        return
    folder, free = found
    voxels = 1
    for size in shape:
        voxels *= int(size)
    needed = least_output_bytes(voxels, bytes_per_voxel, output_format, len(targets) - 1)
    if free >= needed:
        return
    what = f"{targets[0].name} and {len(targets) - 1} JSON file{'s' if len(targets) > 2 else ''}"
    raise OutputWriteError(f"{targets[0].parent}: no room for {what}: {free:,} bytes free on its file system, at "
                           f"least {needed:,} needed; nothing segmented: free some space, or write the outputs "
                           "elsewhere") \
        from OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(folder))  # the folder it was measured on
