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
from collections.abc import Callable
from pathlib import Path

from medseg.errors import InputError

__all__ = ["CHECKPOINT_RECORD_BYTES", "JsonFileError", "RECORD_BYTES", "RESULT_BYTES", "json_error_text",
           "read_json_object", "size_text"]

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


# what may follow a JSON text cut short: white space, or the zero bytes of a file allocated whole before its data
JSON_TRAILING = " \t\r\n\0"
# json's words (its JSONDecodeError's ``msg``) in medseg's
_JSON_WORDS = {
    "Expecting value": "a value was expected",
    "Expecting ',' delimiter": "a ',' or a closing bracket was expected",
    "Expecting ':' delimiter": "a ':' was expected after the key",
    "Expecting property name enclosed in double quotes": "a key in double quotes was expected",
    "Invalid control character at": "a control character (a tab or a line break) inside a string; write it as \\t "
                                    "or \\n",
    "Invalid \\escape": "an invalid backslash escape inside a string (a backslash, as a Windows path's, is written "
                        "\\\\)",
    "Invalid \\uXXXX escape": "an invalid \\u escape inside a string (four hex digits follow \\u)",
    "Extra data": "more text follows the JSON value (a stray bracket, or two JSON texts in one file)",
}


def json_error_text(error: json.JSONDecodeError) -> str:
    """What is wrong with a JSON text, from ``json``'s error, in medseg's words and without the file's name: cut
    short (the text ends, or turns to zero bytes, before its JSON does: an interrupted copy or save), else what
    was expected where: ``not valid JSON at line 4, column 17: a ',' or a closing bracket was expected``, which names
    the place as an editor does (json's own, "Expecting ',' delimiter: line 4 column 17 (char 63)", said nothing of
    a file cut short)."""
    doc, pos = error.doc, error.pos
    end = len(doc.rstrip(JSON_TRAILING))
    if pos >= end or error.msg.startswith("Unterminated string"):  # the scanner ran off the end of the text
        line = doc.count("\n", 0, end) + 1
        column = end - (doc.rfind("\n", 0, end) + 1)  # of its last character
        inside = "inside a string" if error.msg.startswith("Unterminated string") else None
        brackets = _open_brackets(doc[:end])
        if inside is None:
            inside = f"with {brackets} bracket{'s' if brackets != 1 else ''} unclosed" if brackets else "early"
        zeros = "; zero bytes follow it" if "\0" in doc[end:] else ""
        return (f"not valid JSON: cut short, it ends at line {line}, column {column} {inside}{zeros} (an interrupted "
                "copy or save, or a closing bracket or quote missing)")
    words = _JSON_WORDS.get(error.msg, error.msg)
    before = doc[:pos].rstrip(" \t\r\n")
    if doc[pos:pos + 1] in ("}", "]") and before.endswith(","):  # {"a": 1,} and [1,]: json expects more after it
        words = "a comma before a closing bracket (JSON allows no trailing comma)"
    elif error.msg.startswith("Expecting property name") and doc[pos:pos + 1] == "'":
        words = "a key in single quotes; JSON's keys are in double quotes"
    elif doc.startswith(("//", "/*"), pos) or (doc.startswith("#", pos) and not doc[doc.rfind("\n", 0, pos) + 1:pos]
                                                .strip()):  # a comment, as JSONC, JSON5 and YAML allow them (a # at
        # the start of its line: {"colour": #fff} is a value without its quotes)
        words = "a comment (JSON allows none: remove it)"
    elif pos == 0 and doc.startswith("\ufeff"):  # json's words: "Unexpected UTF-8 BOM (decode using utf-8-sig)"
        words = "a byte order mark (BOM) starts the file; save it as UTF-8 without one"
    return f"not valid JSON at line {error.lineno}, column {error.colno}: {words}"


def _open_brackets(text: str) -> int:
    """How many brackets of ``text`` (a JSON text cut short) are open at its end, strings skipped."""
    depth, in_string, escaped = 0, False, False
    for character in text:
        if in_string:
            if escaped:
                escaped = False
            elif character == "\\":
                escaped = True
            elif character == '"':
                in_string = False
            continue
        if character == '"':
            in_string = True
        elif character in "{[":
            depth += 1
        elif character in "}]":
            depth = max(depth - 1, 0)
    return depth


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


def read_bounded(path: Path | str, max_bytes: int | None, *, not_file: Callable[[int], Exception],
                 too_large: Callable[[str], Exception]) -> bytes:
    """The bytes of the regular file ``path``, at most ``max_bytes`` of them (None: no cap), read without waiting on a
    named pipe (opened non-blocking, then refused) and without reading a device. Raises ``not_file(st_mode)`` for what
    is not a regular file and ``too_large(size_text)`` for a file over the cap (its size, or "more than …" where it
    grew while read); ``OSError`` as opening and reading raise it."""
    # non-blocking: a named pipe opens at once, to be refused below, instead of waiting for a writer
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise not_file(status.st_mode)
        if max_bytes is not None and status.st_size > max_bytes:
            raise too_large(size_text(status.st_size))
        handle = os.fdopen(fd, "rb")  # closes the descriptor from here on
    except BaseException:
        os.close(fd)
        raise
    with handle:
        data = handle.read(-1 if max_bytes is None else max_bytes + 1)
    if max_bytes is not None and len(data) > max_bytes:  # grown since its size was read
        raise too_large(f"more than {size_text(max_bytes)}")
    return data


def read_json_object(path: Path | str, max_bytes: int | None, what: str = "a medseg record") -> dict:
    """The JSON object in the file ``path``, read as UTF-8 (a byte order mark, which medseg never writes but an editor
    such as Windows Notepad may on saving the file, is passed over as model.json's and dataset.json's is), at most
    ``max_bytes`` of it (None: no cap; for records that grow with a cohort). ``what`` names the kind of file in the
    message of one too large (``a prediction sidecar``).

    Raises :class:`JsonFileError` for a file that is not a regular file (a folder, a named pipe: refused without
    waiting for a writer), too large, not UTF-8, not JSON, nested too deeply for ``json`` (its RecursionError), or
    whose top level is not an object; ``OSError`` as opening and reading raise it (``FileNotFoundError``,
    ``PermissionError``).
    """
    def not_file(mode: int) -> JsonFileError:
        kind = next((name for test, name in _KINDS if test(mode)), None)
        return JsonFileError(path, f"{kind}, not a file" if kind else "not a regular file")

    data = read_bounded(path, max_bytes, not_file=not_file, too_large=lambda size: JsonFileError(
        path, f"{size}, where {what} holds at most {size_text(max_bytes)}"))
    if not data.strip():  # json's words for it: "Expecting value: line 1 column 1 (char 0)"
        raise JsonFileError(path, "an empty file" if not data else "white space only")
    if not data.strip(b"\0"):  # its size written, its content never (a system that stopped as the file was saved)
        raise JsonFileError(path, f"{len(data)} NUL bytes only, its content never written")
    try:
        # utf-8-sig: a byte order mark is not JSON, but says the file is UTF-8 (json's words for it were "Unexpected
        # UTF-8 BOM (decode using utf-8-sig)")
        value = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as error:
        from medseg.io.files import undecodable

        raise JsonFileError(path, f"not UTF-8 text ({undecodable(error)})") from error
    except RecursionError as error:  # json's own error for brackets nested thousands deep
        raise JsonFileError(path, "JSON nested too deeply") from error
    except json.JSONDecodeError as error:  # was json's words alone: "Expecting ',' delimiter: line 1 column 8 …"
        raise JsonFileError(path, json_error_text(error)) from error
    except ValueError as error:  # an integer of more digits than int() converts
        raise JsonFileError(path, str(error)) from error
    if not isinstance(value, dict):
        raise JsonFileError(path, f"holds a JSON {_JSON_TYPES.get(type(value), type(value).__name__)}, not an "
                                  "object")
    return value
