"""The warnings a reading library gives while one file is read, told naming that file.

nibabel warns "Extension size is not a multiple of 16 bytes" and pydicom "Invalid value for VR IS: '4.0'" (it logs
the same text too) without saying which file they are reading; a batch of inputs then gave a warning no one could
place. Inside :func:`warnings_naming`, such warnings (and pydicom's and highdicom's logged warnings) are held, and
given again when the block ends, each once, as ``<file>: <message>``, of their own category and from their own code
location (a filter on the library's module or the category still applies). A message that names the file already is
given as it was.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

__all__ = ["warnings_naming"]

LOGGING_LIBRARIES = ("pydicom", "highdicom")  # those that log their warnings as well as (or instead of) warning


class _Held(logging.Filter):
    """Holds a library's warning-level records instead of letting them through (errors pass)."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.WARNING:
            return True
        self.records.append(record)
        return False


@contextlib.contextmanager
def warnings_naming(path: Path | str) -> Iterator[None]:
    """Within the block, a library's warnings are held; once it ends (also on an error), each distinct one is given
    again as ``<path>: <message>``: a warning of its category, from its code location, a logged one through its
    logger. One that names ``path`` already (a warning of medseg's own, or one an inner block named) is given as it
    was."""
    name = str(path)
    held = _Held()
    loggers = [logging.getLogger(library) for library in LOGGING_LIBRARIES]
    for logger in loggers:  # first, before a filter that drops repeats: the repeat is told once below
        logger.filters.insert(0, held)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:
        for logger in loggers:
            logger.removeFilter(held)
        told: set[str] = set()
        for record in held.records:
            text = _named(name, record.getMessage())
            if text not in told:
                told.add(text)
                logging.getLogger(record.name).warning("%s", text)
        for warning in caught:
            text = _named(name, str(warning.message))
            if text in told:  # pydicom logs and warns the same text: once
                continue
            told.add(text)
            warnings.warn_explicit(text, warning.category, warning.filename, warning.lineno,
                                   module=_module_of(warning.filename), registry=_REGISTRY)


_REGISTRY: dict = {}  # once per message and location where the filters say "default", as warnings.warn's own


def _named(name: str, message: str) -> str:
    text = " ".join(message.split())
    return text if name in text else f"{name}: {text}"


def _module_of(filename: str) -> str | None:
    """The name of the loaded module whose file is ``filename`` (``nibabel.nifti1``), as ``warnings.warn`` gives it
    to the filters; None (the file name's stem) where none is."""
    for module_name, module in list(sys.modules.items()):
        if getattr(module, "__file__", None) == filename:
            return module_name
    return None
