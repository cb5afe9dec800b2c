"""One JSON object read from a file: the records medseg writes and reads back (prediction sidecars, metrics, cohort
and checkpoint records, ``medseg convert`` sidecars).

Such a file may be damaged, replaced by hand or by another program, or be something else of the same name: it is
read only when it is a regular file no larger than its kind's cap (a multi-GB file named ``*_seg.json`` was read
whole into memory, a named pipe in its place waited for a writer), as UTF-8 JSON whose top level is an object. What
is wrong is one :class:`JsonFileError` naming the file; each caller turns it into what it does with a record it
cannot use (a case made again, a resume refused, a sidecar warned about).
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from medseg.errors import InputError

__all__ = ["CHECKPOINT_RECORD_BYTES", "JsonFileError", "RECORD_BYTES", "RESULT_BYTES", "read_json_object",
           "size_text"]

# Caps on what is read into memory. A cohort's bookkeeping (completion, attempt, failure, forced-run and lock
# records) holds a few fixed fields: some hundred bytes.
RECORD_BYTES = 1 << 20
# A prediction's sidecar or metrics, or a convert sidecar: a few kB, but a sidecar copies the model's labels and
# DICOM codes, which a model config (itself capped at 16 MiB) may hold thousands of.
RESULT_BYTES = 32 << 20
# A training checkpoint's record: the package config it was started with (16 MiB at most), a SHA-256 pair per
# training case (some 200 bytes) and a line per epoch.
CHECKPOINT_RECORD_BYTES = 64 << 20


class JsonFileError(InputError):
    """A file that does not hold the JSON object it should: too large, not a regular file, not UTF-8, not JSON,
    nested too deeply, or a JSON value other than an object. ``reason`` is the message without the file's name, for
    callers that name the file their own way."""

    def __init__(self, path: Path | str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason


def size_text(size: int) -> str:
    """A byte count as a message gives it: ``512 bytes``, ``3 kB``, ``40 MiB``, ``2.5 GiB``."""
    if size < 1 << 10:
        return f"{size} bytes"
    if size < 1 << 20:
        return f"{size / (1 << 10):.0f} kB"
    if size < 1 << 30:
        return f"{size / (1 << 20):.0f} MiB"
    return f"{size / (1 << 30):.1f} GiB"


_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
_JSON_TYPES = {list: "list", str: "string", int: "number", float: "number", bool: "boolean", type(None): "null"}


def read_json_object(path: Path | str, max_bytes: int | None, what: str = "a medseg record") -> dict:
    """The JSON object in the file ``path``, read as UTF-8 (no byte order mark: medseg writes none), at most
    ``max_bytes`` of it (None: no cap; for records that grow with a cohort). ``what`` names the kind of file in the
    message of one too large (``a prediction sidecar``).

    Raises :class:`JsonFileError` for a file that is not a regular file (a folder, a named pipe: refused without
    waiting for a writer), too large, not UTF-8, not JSON, nested too deeply for ``json`` (its RecursionError), or
    whose top level is not an object; ``OSError`` as opening and reading raise it (``FileNotFoundError``,
    ``PermissionError``).
    """
    # non-blocking: a named pipe opens at once, to be refused below, instead of waiting for a writer
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            kind = next((name for test, name in _KINDS if test(status.st_mode)), None)
            raise JsonFileError(path, f"{kind}, not a file" if kind else "not a regular file")
        if max_bytes is not None and status.st_size > max_bytes:
            raise JsonFileError(path, f"{size_text(status.st_size)}, where {what} holds at most "
                                      f"{size_text(max_bytes)}")
        handle = os.fdopen(fd, "rb")  # closes the descriptor from here on
    except BaseException:
        os.close(fd)
        raise
    with handle:
        data = handle.read(-1 if max_bytes is None else max_bytes + 1)
    if max_bytes is not None and len(data) > max_bytes:  # grown since its size was read
        raise JsonFileError(path, f"more than {size_text(max_bytes)}, where {what} holds at most "
                                  f"{size_text(max_bytes)}")
    if not data.strip():  # json's words for it: "Expecting value: line 1 column 1 (char 0)"
        raise JsonFileError(path, "an empty file" if not data else "white space only")
    if not data.strip(b"\0"):  # its size written, its content never (a system that stopped as the file was saved)
        raise JsonFileError(path, f"{len(data)} NUL bytes only, its content never written")
    try:
        value = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as error:
        from medseg.io.files import undecodable

        raise JsonFileError(path, f"not UTF-8 text ({undecodable(error)})") from error
    except RecursionError as error:  # json's own error for brackets nested thousands deep
        raise JsonFileError(path, "JSON nested too deeply") from error
    except ValueError as error:  # JSONDecodeError, and an integer of more digits than int() converts
        raise JsonFileError(path, str(error)) from error
    if not isinstance(value, dict):
        raise JsonFileError(path, f"holds a JSON {_JSON_TYPES.get(type(value), type(value).__name__)}, not an "
                                  "object")
    return value
