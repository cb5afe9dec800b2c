"""The warnings a reading library gives while one file is read, told naming that file.

nibabel warns "Extension size is not a multiple of 16 bytes" and pydicom "Invalid value for VR IS: '4.0'" (it logs
the same text too) without saying which file they are reading; a batch of inputs then gave a warning no one could
place. Inside :func:`warnings_naming`, such warnings (and pydicom's and highdicom's logged warnings) are held, and
given again when the block ends, each once, as ``<file>: <message>``, of their own category and from their own code
location (a filter on the library's module or the category still applies). A message that names the file already is
given as it was.

Each block sets a filter, and a change of the filters empties Python's memory of the warnings it told once per
location: that memory is kept here instead (one read of a file, which reads its header three or four times, tells its
warning once). Under an "error" filter (``python -W error``), a held warning is raised as the read's
:class:`~medseg.errors.ImageReadError`, one line naming the file once (``<file>: <message> (a UserWarning, made an
error by the warnings filter)``, the warning its cause); a block that ends in its own error raises that error.
The filters and loggers are the process's: blocks in two threads take turns, and a warning another thread gives
meanwhile is shown as it was, not held (its filters are the block's "always" while the block lasts).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

__all__ = ["forget_told", "warnings_naming"]

LOGGING_LIBRARIES = ("pydicom", "highdicom")  # those that log their warnings as well as (or instead of) warning


class _Held(logging.Filter):
    """Holds a library's warning-level records from the reading thread instead of letting them through (errors, and
    another thread's records, pass)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []
        self.thread = threading.get_ident()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.WARNING or record.thread not in (self.thread, None):  # None: logThreads off
            return True
        self.records.append(record)
        return False


# warnings' filters and showwarning, and the loggers' filters, are the process's: reads in two threads (a caller's
# pool) take turns in the block, or each restored the other's state (its "always" filter and a finished read's
# recorder stayed, and later warnings vanished)
_LOCK = threading.RLock()


@contextlib.contextmanager
def warnings_naming(path: Path | str) -> Iterator[None]:
    """Within the block, a library's warnings are held; once it ends (also on an error), each distinct one is given
    again as ``<path>: <message>``: a warning of its category, from its code location, a logged one through its
    logger. One that names ``path`` already (a warning of medseg's own, or one an inner block named) is given as it
    was. Where the filters tell a warning once per location ("default"), a file's is told once however many blocks
    read it; where they make it an error, it is raised as an :class:`~medseg.errors.ImageReadError` naming the file
    once, and a block that ends in its own error raises that error. One thread's block at a time."""
    name = str(path)
    held = _Held()
    with _LOCK:
        loggers = _library_loggers()
        for logger in loggers:  # first, before a filter that drops repeats: the repeat is told once below
            logger.filters.insert(0, held)
        caught: list[warnings.WarningMessage] = []
        failed = False
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("always")
                warnings.showwarning = _holding(caught, warnings.showwarning)
                try:
                    yield
                except BaseException:
                    failed = True
                    raise
        finally:
            for logger in loggers:
                logger.removeFilter(held)
            _tell(name, held.records, caught, failed)


def _holding(caught: list[warnings.WarningMessage], shown):
    """A ``showwarning`` that holds the reading thread's warnings in ``caught`` and shows another thread's as
    ``shown`` (the one in place as the block began) does: a caller's thread segmenting while another reads gave its
    warning (medseg's own, naming its file) to the read, which named it after the file read, or failed as that
    file's error where warnings are errors."""
    thread = threading.get_ident()

    def showwarning(message, category, filename, lineno, file=None, line=None) -> None:
        if threading.get_ident() == thread:
            caught.append(warnings.WarningMessage(message, category, filename, lineno, file, line))
        else:
            shown(message, category, filename, lineno, file, line)

    return showwarning


def _tell(name: str, records: list[logging.LogRecord], caught: list[warnings.WarningMessage], failed: bool) -> None:
    told: set[str] = set()
    for record in records:
        text = _named(name, record.getMessage())
        if text not in told:
            told.add(text)
            logging.getLogger(record.name).warning("%s", text)
    for warning in caught:
        text = _named(name, str(warning.message))
        if text in told:  # pydicom logs and warns the same text: once
            continue
        told.add(text)
        module = _module_of(warning.filename)
        if _told_before(text, warning.category, warning.filename, warning.lineno, module):
            continue
        try:
            warnings.warn_explicit(text, warning.category, warning.filename, warning.lineno, module=module)
        except Warning as error:
            if not failed:  # an "error" filter: the warning is the read's error, one line naming the file once
                from medseg.errors import ImageReadError

                raise ImageReadError(f"{text} (a {warning.category.__name__}, made an error by the warnings "
                                     "filter)") from error
            # the read ended in its own error (one line naming the file), which a warning must not replace


_TOLD: dict = {"filters": None, "keys": set()}  # what was told, as long as the filters are these


def forget_told() -> None:
    """Forget which warnings were told once (as a change of the filters does): each ``medseg`` command, also a
    second ``main()`` in one process, tells a file's warning again."""
    with _LOCK:
        _TOLD["filters"], _TOLD["keys"] = None, set()


def _told_before(text: str, category: type[Warning], filename: str, lineno: int, module: str | None) -> bool:
    """Whether the filters tell this warning once (per location, module or process) and it was told: Python's own
    memory of it is emptied each time a block sets its filter."""
    filters = (warnings.filters, tuple(warnings.filters))
    if _TOLD["filters"] is None or _TOLD["filters"][0] is not filters[0] or _TOLD["filters"][1] != filters[1]:
        _TOLD["filters"], _TOLD["keys"] = filters, set()
    action = _action(text, category, module or _stem(filename), lineno)
    key = {"once": (text, category), "module": (text, category, module or filename)}.get(
        action, (text, category, filename, lineno))
    if action not in ("default", "module", "once"):
        return False
    if key in _TOLD["keys"]:
        return True
    _TOLD["keys"].add(key)
    return False


def _action(text: str, category: type[Warning], module: str, lineno: int) -> str:
    """The action the filters give this warning, as ``warnings.warn_explicit`` finds it."""
    for action, message, kind, module_pattern, line in warnings.filters:
        if ((message is None or message.match(text)) and issubclass(category, kind)
                and (module_pattern is None or module_pattern.match(module)) and (line == 0 or lineno == line)):
            return action
    return warnings.defaultaction


def _stem(filename: str) -> str:
    module = filename or "<unknown>"
    return module[:-3] if module[-3:].lower() == ".py" else module


def _named(name: str, message: str) -> str:
    text = " ".join(message.split())
    return text if name in text else f"{name}: {text}"


_LOGGERS: dict = {"count": -1, "loggers": []}


def _library_loggers() -> list[logging.Logger]:
    """The libraries' loggers and their modules' (highdicom logs through ``highdicom.seg.sop`` and the like, whose
    records a filter on ``highdicom`` never sees), looked for again when loggers were added."""
    known = logging.root.manager.loggerDict
    if _LOGGERS["count"] != len(known):
        names = [each for each, logger in list(known.items()) if isinstance(logger, logging.Logger)
                 and each.split(".")[0] in LOGGING_LIBRARIES]
        _LOGGERS["loggers"] = [logging.getLogger(each) for each in dict.fromkeys([*LOGGING_LIBRARIES, *names])]
        _LOGGERS["count"] = len(known)
    return _LOGGERS["loggers"]


_MODULES: dict[str, str] = {}  # file → module name, found once: a scan of sys.modules (3,000 with torch) per
# warning cost more than the header read it named


def _module_of(filename: str) -> str | None:
    """The name of the loaded module whose file is ``filename`` (``nibabel.nifti1``), as ``warnings.warn`` gives it
    to the filters; None (the file name's stem) where none is."""
    if filename in _MODULES:
        return _MODULES[filename]
    for module_name, module in list(sys.modules.items()):
        if getattr(module, "__file__", None) == filename:
            _MODULES[filename] = module_name
            return module_name
    return None
