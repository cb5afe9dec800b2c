"""A model package's weights file (safetensors) as the package's checks read it: the SHA-256 its config records,
where each tensor's bytes lie, how a copy cut short or left unfinished shows, what tells the file replaced, and how
its tensors differ from an architecture's."""

from __future__ import annotations

import json
import re
from pathlib import Path

__all__ = ["recorded_weights_sha256", "state_mismatch"]


_COUNTERS = "num_batches_tracked"  # batch norm's step counters, which are not weights
_DTYPE_NAMES = {"I8": "int8", "I16": "int16", "I32": "int32", "I64": "int64", "U8": "uint8", "U16": "uint16",
                "U32": "uint32", "U64": "uint64", "BOOL": "bool", "C64": "complex64"}  # torch's names (build_network)
# NaN and infinities of the float types numpy cannot hold, by bit pattern: (bytes per value, mask, value)
_NONFINITE_BITS = {"BF16": (2, 0x7F80, 0x7F80), "F8_E5M2": (1, 0x7C, 0x7C), "F8_E4M3": (1, 0x7F, 0x7F),
                   "F8_E4M3FNUZ": (1, 0xFF, 0x80), "F8_E5M2FNUZ": (1, 0xFF, 0x80), "F8_E8M0": (1, 0xFF, 0xFF)}


def _tensor_offsets(path: Path) -> dict[str, tuple[int, int]]:
    """Where each tensor's bytes lie in a safetensors file (from the start of the file): an 8-byte header length,
    the JSON header, then the data its ``data_offsets`` place."""
    with open(path, "rb") as handle:
        length = int.from_bytes(handle.read(8), "little")
        header = json.loads(handle.read(length))
    base = 8 + length
    return {key: (base + entry["data_offsets"][0], base + entry["data_offsets"][1])
            for key, entry in header.items() if key != "__metadata__"}


# the longest header safetensors reads (its MAX_HEADER_SIZE): a longer length field is a corrupt one, not read
_HEADER_CAP = 100_000_000


def _short_of(path: Path) -> tuple[int, int, bool] | None:
    """``(bytes held, bytes declared, whether the whole length is known)`` of a safetensors file shorter than its
    own header says it is (a copy cut off): cut inside its header, only the header's own length is known (the file
    is at least that long); None for a file of its full length, or whose header cannot be read. A length field past
    safetensors' own cap is corrupt and not read (it could make a multi-GB "header")."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            field = handle.read(8)
            length = int.from_bytes(field, "little")
            if len(field) < 8 or not 2 <= length <= _HEADER_CAP:  # fewer than 8 bytes: _held_below_length_field
                return None
            if size < 8 + length:  # cut inside its own header
                return size, 8 + length, False
            header = json.loads(handle.read(length))
        declared = 8 + length + max((entry["data_offsets"][1] for key, entry in header.items()
                                     if key != "__metadata__"), default=0)
    except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError):
        return None
    return (size, declared, True) if isinstance(declared, int) and size < declared else None


def _held_below_length_field(path: Path) -> int | None:
    """The size of a weights file shorter than the 8-byte header length every safetensors file starts with (empty,
    or a copy cut off in its first bytes), else None."""
    try:
        size = path.stat().st_size
    except OSError:
        return None
    return size if size < 8 else None


# what copy and download tools leave of a file they have not finished: rsync (--partial-dir, --delay-updates, its
# hidden temporary name), browsers and download managers
_PARTIAL_NAMES = ("{}.part", "{}.partial", "{}.crdownload", "{}.download", "{}.tmp", ".~tmp~/{}", ".rsync-partial/{}")
_RSYNC_TEMP = re.compile(r"\.(.+)\.[A-Za-z0-9]{6}")


def _partial_copies(path: Path) -> str:
    """The unfinished copies of ``path`` that lie beside it, named (quoted, joined with "and"), or empty."""
    folder, name = path.parent, path.name
    found = [pattern.format(name) for pattern in _PARTIAL_NAMES if (folder / pattern.format(name)).exists()]
    try:
        found += sorted(entry.name for entry in folder.iterdir()
                        if (match := _RSYNC_TEMP.fullmatch(entry.name)) is not None and match.group(1) == name)
    except OSError:
        pass
    return " and ".join(repr(str(found_name)) for found_name in found)


def _other_weights(path: Path) -> list[str]:
    """The other ``.safetensors`` files beside ``path`` (a browser's "weights (1).safetensors", a rename, another
    letter case), by name, sorted; none when there are none."""
    try:
        return sorted(entry.name for entry in path.parent.iterdir()
                      if entry.name.lower().endswith(".safetensors") and not entry.name.startswith(".")
                      and entry.name != path.name and entry.is_file())
    except OSError:
        return []


def _file_identity(path: Path) -> tuple | None:
    """What tells a file replaced or rewritten: its device, inode, size and modification time (None: not there)."""
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns


def state_mismatch(expected: dict[str, tuple], found: dict[str, tuple]) -> str:
    """How a weights file's tensors (name → shape) differ from an architecture's, in words; empty when they fit."""
    def shape(dims: tuple) -> str:
        return "x".join(map(str, dims)) or "scalar"

    missing = [k for k in expected if k not in found]
    extra = [k for k in found if k not in expected]
    wrong = [k for k in expected if k in found and expected[k] != found[k]]
    parts = []
    if wrong:
        parts.append(f"{len(wrong)} tensor{'' if len(wrong) == 1 else 's'} of another shape, e.g. {wrong[0]}: "
                     f"{shape(found[wrong[0]])} in the file, {shape(expected[wrong[0]])} in the architecture")
    if missing:
        parts.append(f"{len(missing)} missing from the file, e.g. {missing[0]}")
    if extra:
        parts.append(f"{len(extra)} the architecture has no place for, e.g. {extra[0]}")
    return "; ".join(parts)


def recorded_weights_sha256(config: dict) -> str | None:
    """The weights' SHA-256 a config records, as loading takes it (capitals, as Get-FileHash writes them, lowered)."""
    weights = config.get("weights") if isinstance(config.get("weights"), dict) else {}
    return weights["sha256"].strip().lower() if isinstance(weights.get("sha256"), str) else None
