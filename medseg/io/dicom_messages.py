"""pydicom's warnings while a DICOM folder is read, reported once per kind of message with the files concerned.

pydicom warns about values it reads (``Invalid value for VR IS: '4.0'``), character sets and padding without
saying which file it is reading, and often both logs and warns the same text; a 300-slice series can give 300
such lines. While a :class:`FileMessages` is open, those warnings and log records are collected instead, each
tagged with the file being read (:meth:`FileMessages.about`). On closing, each kind of message (the same text
up to the quoted values) is logged once, naming the folder, how many files, and the first of them.
"""

from __future__ import annotations

import logging
import re
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["FileMessages"]

log = logging.getLogger(__name__)

LIBRARIES = ("pydicom",)
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_SEE_ALSO = re.compile(r"\s*Please see <[^>]*>[^.]*\.")  # pydicom's pointer to the standard's VR table
SHOWN_FILES = 3


@dataclass
class _Kind:
    text: str  # the first message of this kind
    files: list[Path | None] = field(default_factory=list)
    texts: set[str] = field(default_factory=set)


class FileMessages:
    """Collects library warnings while ``folder`` is read; logs each kind once when closed (also on error).

    With ``report=False`` nothing is logged: for files read again after their messages were reported (the headers
    a DICOM SEG is made from or checked against), so that a series does not warn twice about the same values.
    """

    def __init__(self, folder: Path, report: bool = True):
        self.folder = Path(folder)
        self.report = report
        self.current: Path | None = None
        self.kinds: dict[str, _Kind] = {}
        self._catch = None
        self._filter = _Collect(self)

    def __enter__(self) -> FileMessages:
        self._catch = warnings.catch_warnings()
        self._previous = warnings.showwarning
        self._catch.__enter__()
        for name in LIBRARIES:  # every time, not once per code location: each file is counted
            warnings.filterwarnings("always", module=rf"{name}(\.|$)")
        warnings.showwarning = self._warning
        for name in LIBRARIES:  # first, before any filter the command line added (it would drop repeats)
            logging.getLogger(name).filters.insert(0, self._filter)
        return self

    def __exit__(self, *exc) -> None:
        for name in LIBRARIES:
            logging.getLogger(name).removeFilter(self._filter)
        self._catch.__exit__(*exc)
        self._report()

    @contextmanager
    def about(self, path: Path):
        """Messages raised inside the block concern ``path``; when the block ends in an error naming the file as
        broken (:class:`~medseg.errors.ImageReadError`), they are forgotten: that error says it in one line."""
        from medseg.errors import ImageReadError

        previous, self.current = self.current, path
        try:
            yield
        except ImageReadError:
            self.forget(path)
            raise
        finally:
            self.current = previous

    def forget(self, path: Path) -> None:
        """Drop what was collected about ``path`` (a file reported broken by its own error)."""
        for key, kind in list(self.kinds.items()):
            if path in kind.files:
                kind.files.remove(path)
                if not kind.files:
                    del self.kinds[key]

    def note(self, message: str) -> None:
        text = " ".join(_SEE_ALSO.sub("", str(message)).split())
        kind = self.kinds.setdefault(_QUOTED.sub("'…'", text), _Kind(text))
        kind.texts.add(text)
        if self.current not in kind.files:
            kind.files.append(self.current)

    def _warning(self, message, category, filename, lineno, file=None, line=None) -> None:
        if any(part in LIBRARIES for part in Path(str(filename)).parts):
            self.note(message)
        else:  # another library's warning (a deprecation, say): shown as it would have been
            self._previous(message, category, filename, lineno, file, line)

    def _report(self) -> None:
        if not self.report:
            return
        for kind in self.kinds.values():
            named = sorted(self._name(path) for path in kind.files if path is not None)
            where = ""
            if named:
                shown = ", ".join(named[:SHOWN_FILES]) + (", ..." if len(named) > SHOWN_FILES else "")
                where = f" (in {len(named)} files: {shown})" if len(named) > 1 else f" (in {shown})"
            values = f"; {len(kind.texts)} different values" if len(kind.texts) > 1 else ""
            log.warning("%s: %s%s%s", self.folder, kind.text, where, values)

    def _name(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.folder))
        except ValueError:
            return str(path)


class _Collect(logging.Filter):
    """Takes a library's warning-level records into the collector instead of letting them through."""

    def __init__(self, messages: FileMessages):
        super().__init__()
        self.messages = messages

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or record.levelno >= logging.ERROR:
            return True
        self.messages.note(record.getMessage())
        return False
