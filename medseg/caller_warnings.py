"""Warnings to the program that called medseg: a ``warnings.warn`` of :class:`~medseg.errors.MedsegWarning` placed at
the caller's own line (the first outside the package), which a notebook shows and a program filters, where a log line
reached nothing until logging was configured."""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from types import FrameType

from medseg.errors import MedsegWarning

__all__ = ["NOTHING_WRITTEN", "NOT_SCORED", "warn", "warning", "held_until_done", "raised_outcome"]

# what a warning of scoring says in place of how the case is scored all the same, where the caller's filters raise it
NOT_SCORED = "not scored (MedsegWarning filtered into an error)"
# what it says instead where the scoring is segmenting's with a reference, which then writes nothing (raised_outcome)
NOTHING_WRITTEN = "nothing written (MedsegWarning filtered into an error)"

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_HELD: ContextVar[list[MedsegWarning] | None] = ContextVar("medseg_held_warnings", default=None)
# (what a raised warning's text ends with, what it ends with instead) within raised_outcome
_OUTCOME: ContextVar[tuple[str, str] | None] = ContextVar("medseg_raised_outcome", default=None)


def warn(message: str, log: logging.Logger | None = None, category: type[MedsegWarning] = MedsegWarning,
         raised: str | None = None) -> bool:
    """Warn the caller of ``message`` (one line, naming the file), and log it as a warning on ``log`` where given
    (where the command tells it otherwise, as nnU-Net's unread channel files of a whole batch, none is given): the
    ``medseg`` command shows the log line and leaves the warning untold, a Python caller gets both (but where it
    added :func:`medseg.shown_warnings.show_warnings`' handler, which leaves the log line to Python's warning).

    Where the program's filters turn the warning into an error (``warnings.simplefilter("error", MedsegWarning)``),
    it is raised before anything is logged, and with the text ``raised`` where given: ``message`` tells what is done
    all the same ("segmented all the same"), which an error stopping it makes untrue. Within :func:`held_until_done`,
    such an error is held, nothing logged, and False returned; True otherwise (told, and logged where ``log`` is
    given): what a caller that logs a warning once (a package's) marks as logged."""
    try:
        warnings.warn(message, category, stacklevel=_caller_level())
    except category as error:
        held = _HELD.get()
        if held is not None:  # raised once the work that tells it is done (held_until_done)
            held.append(error)
            return False
        if raised is None or str(error) != message:
            raise
        outcome = _OUTCOME.get()
        if outcome is not None and raised.endswith(outcome[0]):
            raised = raised[:-len(outcome[0])] + outcome[1]
        raise category(raised) from None
    if log is not None:  # marked: show_warnings' handler leaves it to Python's warnings, which show it
        log.warning("%s", message, extra={"medseg_warning": category.__name__})
    return True


def warning(log: logging.Logger, message: str, *args: object, raised: str | None = None) -> bool:
    """``log.warning(message, *args)`` that is also told to the caller as :func:`warn` tells it: a line of what the
    library logs (a DICOM series passed over, a label missing, a case left out) that a Python caller needs to hear
    where it has configured no logging. ``raised``: :func:`warn`'s, formatted with ``args`` as ``message`` is; what
    :func:`warn` returns."""
    return warn(message % args if args else message, log,
         raised=None if raised is None else raised % args if args else raised)


@contextmanager
def held_until_done() -> Iterator[None]:
    """A warning the program's filters raise as an error (``warnings.simplefilter("error", MedsegWarning)``) held
    while the block runs and the first raised once it has finished: for work whose outputs belong together (the
    cases scored and the report that names them), which a warning raised midway left half made. An error of the
    block itself is raised as it is, the held warnings dropped. Within another such block (a report that
    :func:`~medseg.folder_scoring.score_folder` makes), the outer one holds them: the first of all is raised once the
    outer block has finished."""
    if _HELD.get() is not None:
        yield
        return
    held: list[MedsegWarning] = []
    token = _HELD.set(held)
    try:
        yield
    finally:
        _HELD.reset(token)
    if held:
        raise held[0]


@contextmanager
def raised_outcome(said: str, instead: str) -> Iterator[None]:
    """Within the block, a warning the program's filters raise as an error whose ``raised`` text (:func:`warn`) ends
    with ``said`` ends with ``instead``: the outcome of the work that called the code which warns, where that code's
    own words are untrue (scoring's "not scored" where segmenting with a reference writes nothing at all)."""
    token = _OUTCOME.set((said, instead))
    try:
        yield
    finally:
        _OUTCOME.reset(token)


def _caller_level() -> int:
    """``warnings.warn``'s stacklevel, called in :func:`warn`, of the first frame outside medseg (1 where none is)
    whose module has a name: Python drops in silence a warning placed in code whose globals' ``__name__`` is None, as
    a Snakefile's (the cohort workflow's planning lost each warning medseg gave it)."""
    frame: FrameType | None = sys._getframe(1)  # warn's
    level = 1
    while frame is not None and (os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR)
                                 or ("__name__" in frame.f_globals and frame.f_globals["__name__"] is None)):
        frame = frame.f_back
        level += 1
    return level if frame is not None else 1
