"""medseg's warnings on stderr for a program that configures no logging: a script, the cohort workflow's planning.

The library's loggers have a NullHandler, so a program importing medseg hears nothing it did not ask for; one that
configures no logging then hears none of medseg's warnings either (Python's last-resort handler printed them before).
Such a program calls :func:`show_warnings` at its start to hear them again, as one line each; a program that has
configured logging (its root logger has a handler) is left as it is: its own handler takes them.
"""

from __future__ import annotations

import logging
import sys
import warnings

from medseg.errors import MedsegWarning
from medseg.one_line import escaped_line

__all__ = ["show_warnings"]


class _ShownWarnings(logging.StreamHandler):
    """The handler :func:`show_warnings` adds to the ``medseg`` logger (one, however often it is called). A record
    that is also a ``warnings.warn`` (:func:`medseg.caller_warnings.warn`) is left to Python, which shows it (or not,
    where the program filters its category) as :func:`_one_line_showwarning` writes it: told here too, a script
    heard it twice."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not hasattr(record, "medseg_warning") and bool(super().filter(record))


class _LevelFirst(logging.Formatter):
    """``warning: <message>`` (``error: ...`` and so on), as the ``medseg`` command and the scripts write their own;
    one line however the message reads (a line break or terminal escape in a file name written escaped, as the
    ``medseg`` command writes it)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {escaped_line(record.message)}"


class _Bare(logging.Formatter):
    """The bare message (the workflow's planning), one line as :class:`_LevelFirst`'s."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return escaped_line(record.message)


def show_warnings(*, labelled: bool = True) -> bool:
    """Give the ``medseg`` logger a handler writing its warnings and errors to stderr, one line each (control
    characters in the message escaped, as :func:`medseg.one_line.escaped_line` writes them): the message
    after its level (``warning: ...``) where ``labelled``, the bare message otherwise (the workflow's planning, as it
    always read); a :class:`~medseg.errors.MedsegWarning` Python shows is written so too, in place of Python's two
    lines (``warnings.showwarning`` wraps the one in place; ``warnings.catch_warnings`` puts it back on leaving).
    Nothing where the process has configured logging itself (the root logger has a handler, as under
    ``logging.basicConfig``, pytest or a program running the workflow through Snakemake's API; the ``medseg`` logger
    has one of the program's; or ``logging.lastResort`` is None: the program wants nothing shown of logging it did not
    configure), or where an earlier call added the handler. True when this call added it.

    For a program's entry point (it changes logging for the whole process), not for a library call."""
    medseg_log = logging.getLogger("medseg")
    if logging.getLogger().handlers or logging.lastResort is None or _own_handlers(medseg_log):
        return False
    handler = _ShownWarnings(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(_LevelFirst() if labelled else _Bare())
    medseg_log.addHandler(handler)
    if not getattr(warnings.showwarning, "_medseg_one_line", False):
        warnings.showwarning = _one_line_showwarning(warnings.showwarning, labelled, handler.stream)
    return True


def _one_line_showwarning(shown, labelled: bool, stream):
    """A ``warnings.showwarning`` that writes a :class:`~medseg.errors.MedsegWarning` Python shows as the handler's
    lines read, on the handler's ``stream``: ``warning: <message>`` (the bare message where not ``labelled``), one
    line, where Python's own wrote
    ``<file>:<line>: MedsegWarning: <message>`` and the caller's line of code under it; other warnings go to
    ``shown``, the one in place. Python's filters still decide whether a warning is shown, raised or dropped."""

    def showwarning(message, category, filename, lineno, file=None, line=None) -> None:
        if not issubclass(category, MedsegWarning):
            shown(message, category, filename, lineno, file, line)
            return
        text = escaped_line(str(message))
        try:
            (file if file is not None else stream).write(f"warning: {text}\n" if labelled else f"{text}\n")
        except (OSError, AttributeError):  # no stderr (pythonw), or a closed one: as Python's own drops it
            pass

    showwarning._medseg_one_line = True  # type: ignore[attr-defined]
    return showwarning


def _own_handlers(medseg_log: logging.Logger) -> bool:
    """Whether the ``medseg`` logger has a handler but medseg's own NullHandler: the one an earlier call added, or
    the program's (which takes the warnings already: another would show each twice)."""
    return any(not isinstance(h, logging.NullHandler) for h in medseg_log.handlers)
