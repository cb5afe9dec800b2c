"""Text as one line of a log or terminal: a line break or other control character in it written escaped.

A file name may hold a line break (or a Unicode line separator) or a terminal escape; a message naming it would
split into lines that read as others, or drive the terminal. The command line and the warnings a script shows
(:mod:`medseg.shown_warnings`) write every message through :func:`escaped_line`. A table of such lines is padded by
the columns a terminal gives its cells (:func:`terminal_columns`, :func:`padded`), not by their characters, and
wrapped by them (:func:`wrapped`).
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["escaped_line", "padded", "terminal_columns", "wrapped"]

_SHOWN = {"\n": "\\n", "\r": "\\r"}


def _escaped(char: str) -> str:
    if char in _SHOWN:
        return _SHOWN[char]
    if unicodedata.category(char) in ("Cc", "Zl", "Zp") and char != "\t":
        code = ord(char)
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    return char


def escaped_line(text: str) -> str:
    """``text`` as one line: a line break in it (a file name may hold one, or a Unicode line separator) is written
    as ``\\n``, ``\\u2028`` and so on, as is any other control character but a tab (an escape in a name would
    drive the terminal)."""
    return text if text.isprintable() else "".join(map(_escaped, text))


def terminal_columns(text: str) -> int:
    """The terminal columns ``text`` (one line, :func:`escaped_line`) takes: an East Asian wide or full-width
    character two, a combining mark none, any other character one. A table padded by characters put every column
    after a name in Japanese, or with a combining accent, out of line with its header."""
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def padded(text: str, width: int) -> str:
    """``text`` padded with spaces to ``width`` terminal columns (:func:`terminal_columns`)."""
    return text + " " * (width - terminal_columns(text))


def wrapped(text: str, width: int, indent: int = 0) -> list[str]:
    """``text`` (one line, :func:`escaped_line`) as lines of at most ``width`` terminal columns
    (:func:`terminal_columns`), broken at its spaces, the lines after the first indented by ``indent`` spaces (at most
    half the width); a word longer than such a line (a UID, a path) is broken within it, its first part filling the
    line it starts on. Wrapped by characters (``textwrap``), a line of Japanese (two columns a character) ran past the
    terminal's edge."""
    width = max(1, width)
    indent = min(indent, width // 2)
    lines: list[str] = []
    line, pending = "", ""  # the line so far; the spaces after its last word, written only before another word
    for chunk in re.findall(r" +|[^ ]+", text):
        if chunk.startswith(" "):
            if line.strip():
                pending = chunk
            else:  # the first line's own leading spaces
                line += chunk
            continue
        size, before = terminal_columns(chunk), terminal_columns(line + pending)
        if line.strip() and before + size > width and (size <= width - indent or before >= width):
            lines.append(line)  # on a line of its own
            line = " " * indent
        else:
            line += pending
        pending = ""
        while chunk and terminal_columns(line) + terminal_columns(chunk) > width:
            cut = _fitting(chunk, width - terminal_columns(line))
            if cut == 0 and not line.strip():  # not one character fits beside the indent: one all the same
                cut = 1
            lines.append((line + chunk[:cut]).rstrip())
            line, chunk = " " * indent, chunk[cut:]
        line += chunk
    if line.strip() or not lines:
        lines.append(line)
    return lines


def _fitting(text: str, room: int) -> int:
    """How many of ``text``'s first characters fit in ``room`` terminal columns (a combining mark stays with the
    character before it)."""
    used = 0
    for index, character in enumerate(text):
        used += terminal_columns(character)
        if used > room:
            return index
    return len(text)
