"""A stop asked for by a signal (Ctrl-C, SIGTERM, SIGHUP), seen at the next safe point of a long loop.

The command line's signal handlers raise the interrupt where Python happens to be, and also record it here: one
raised while an import compiles a module can be dropped by a bare ``except:`` around that import in a library, and
one raised inside a weak-reference callback or a ``__del__`` is printed as "Exception ignored" and dropped; either
way the run went on to the end. Loops over slabs, training steps and cases, and the stages of a case, call
:func:`check`, which raises the recorded interrupt again. After a hangup, :func:`leave_hung_up_terminal` keeps the
stop's own lines from failing on the terminal that is gone.
"""

from __future__ import annotations

import contextlib
import errno
import os

__all__ = ["check", "clear", "leave_hung_up_terminal", "request"]

_requested: BaseException | None = None


def request(stop: BaseException) -> None:
    """Record ``stop`` (a :class:`KeyboardInterrupt`) for :func:`check` to raise."""
    global _requested
    _requested = stop


def clear() -> None:
    """Forget a recorded stop (once it has been handled)."""
    global _requested
    _requested = None


def check() -> None:
    """Raise the recorded stop, if any."""
    if _requested is not None:
        raise _requested


def leave_hung_up_terminal() -> None:
    """After a hangup (SIGHUP: the terminal or ssh session closed) the terminal is gone: writing to it fails (EIO), and
    a stop's own lines ("stopped at …: 3 of 40 inputs done", a cohort run's line) then ended the process in a traceback
    and exit code 1 (or Python's 120, for output it could not flush at exit) instead of 129. Standard output and error
    that are such a terminal write to /dev/null from here on; files, pipes and a terminal still there are kept."""
    for fd in (1, 2):
        try:
            os.tcgetpgrp(fd)  # a hung-up terminal answers every question with EIO
        except OSError as error:
            if error.errno == errno.EIO:
                with contextlib.suppress(OSError):
                    null = os.open(os.devnull, os.O_WRONLY)
                    os.dup2(null, fd)
                    os.close(null)
