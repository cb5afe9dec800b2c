"""Text as one line of a log or terminal: a line break or other control character in it written escaped.

A file name may hold a line break (or a Unicode line separator) or a terminal escape; a message naming it would
split into lines that read as others, or drive the terminal. The command line and the warnings a script shows
(:mod:`medseg.shown_warnings`) write every message through :func:`escaped_line`. A table of such lines is padded by
the columns a terminal gives its cells (:func:`terminal_columns`, :func:`padded`), not by their characters.
"""

from __future__ import annotations

import unicodedata

__all__ = ["escaped_line", "padded", "terminal_columns"]

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
