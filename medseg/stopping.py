"""A stop asked for by a signal (Ctrl-C, SIGTERM, SIGHUP), seen at the next safe point of a long loop.

The command line's signal handlers raise the interrupt where Python happens to be, and also record it here: one
raised while an import compiles a module can be dropped by a bare ``except:`` around that import in a library, and
one raised inside a weak-reference callback or a ``__del__`` is printed as "Exception ignored" and dropped; either
way the run went on to the end. Loops over slabs, training steps and cases, and the stages of a case, call
:func:`check`, which raises the recorded interrupt again. After a hangup, :func:`leave_hung_up_terminal` keeps the
stop's own lines from failing on the terminal that is gone.

A stop can also be asked for by another process, through a file: a cohort workflow run that is stopped writes its
stop file (:func:`mark`), which its jobs look for between their cases (:func:`watch`, ``check(between=True)``). A
job that the signal never reached (started by Snakemake just as the stop landed, or running while the signal went
to Snakemake alone) ran its whole batch to the end while the run waited for it; it now ends after its current case.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
from collections.abc import Callable
from pathlib import Path

__all__ = ["Terminated", "check", "clear", "handle_stop_signals", "leave_hung_up_terminal", "mark", "marked",
           "on_stop_signal", "request", "stop_for", "stop_signals", "unmark", "watch"]

_requested: BaseException | None = None
_watched: tuple[Path, Callable[[int], BaseException]] | None = None  # a stop file and how its stop is raised


def request(stop: BaseException | None) -> None:
    """Record ``stop`` (a :class:`KeyboardInterrupt`) for :func:`check` to raise; None forgets a recorded one (handled
    by its catcher) and leaves the watched stop file as it is."""
    global _requested
    _requested = stop


def clear() -> None:
    """Forget a recorded stop (once it has been handled), and the stop file watched (:func:`watch`)."""
    global _requested, _watched
    _requested = _watched = None


def check(between: bool = False) -> None:
    """Raise the recorded stop, if any; ``between`` (between two cases of a batch: a file system call), also the stop
    that the watched stop file asks for (:func:`watch`)."""
    if _requested is not None:
        raise _requested
    if between and _watched is not None:
        path, make_stop = _watched
        signum = marked(path)
        if signum is not None:
            raise make_stop(signum)


def watch(path: str | os.PathLike | None, make_stop: Callable[[int], BaseException]) -> None:
    """Have ``check(between=True)`` raise ``make_stop(signum)`` once the stop file ``path`` exists (:func:`mark`:
    ``signum`` is the signal that stopped the process that wrote it); None or an empty path watches nothing."""
    global _watched
    _watched = (Path(path), make_stop) if path else None


def mark(path: str | os.PathLike, signum: int) -> None:
    """Write the stop file ``path`` (its folder made where missing), naming the signal ``signum`` that stopped this
    process, for the processes that :func:`watch` it. It may be called from a signal handler: an error is passed over
    (those processes then run on, as they did before there was a stop file)."""
    with contextlib.suppress(OSError):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(f"{int(signum)}\n", encoding="ascii")


def marked(path: str | os.PathLike) -> int | None:
    """The signal a stop file ``path`` names (SIGTERM for one that cannot be read whole: caught as it was written);
    None when there is none."""
    try:
        text = Path(path).read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        return None
    except OSError:
        return int(signal.SIGTERM)
    try:
        return int(text.strip())
    except ValueError:
        return int(signal.SIGTERM)


def unmark(path: str | os.PathLike) -> None:
    """Remove the stop file ``path`` (once the processes it stopped have ended), where there is one."""
    with contextlib.suppress(OSError):
        Path(path).unlink()


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


class Terminated(KeyboardInterrupt):
    """SIGTERM (kill, a scheduler's stop) or SIGHUP (the terminal or ssh session closed): handled like Ctrl-C, so
    that temporary files are removed and a training run keeps its checkpoint; exit code 128 + the signal's number
    (143, 129)."""

    def __init__(self, signum: int = 15, said: str = "Terminated."):
        super().__init__()
        self.code, self.said = 128 + int(signum), said


def stop_signals() -> tuple[int, ...]:
    """The signals a command stops on as on Ctrl-C: SIGINT, SIGTERM and, where the platform has it, SIGHUP."""
    return (signal.SIGINT, signal.SIGTERM, *((signal.SIGHUP,) if hasattr(signal, "SIGHUP") else ()))


def stop_for(signum: int) -> KeyboardInterrupt:
    """The exception a stop by the signal ``signum`` is raised as: :class:`KeyboardInterrupt` for Ctrl-C (SIGINT),
    :class:`Terminated` for the others (SIGTERM "Terminated.", exit code 143; SIGHUP "Hangup.", 129)."""
    if signum == signal.SIGINT:
        return KeyboardInterrupt()
    return Terminated(signum, "Terminated." if signum == signal.SIGTERM else "Hangup.")


def on_stop_signal(signum, frame) -> None:
    """The command line's handler of :func:`stop_signals`: raises :func:`stop_for` the signal where Python is, and
    records it (:func:`request`) for :func:`check` to raise again where that one was dropped."""
    if signum not in (signal.SIGINT, signal.SIGTERM):
        leave_hung_up_terminal()
    error = stop_for(signum)
    request(error)
    raise error


def handle_stop_signals() -> None:
    """Have SIGTERM and SIGHUP raise :class:`Terminated` and Ctrl-C :class:`KeyboardInterrupt`, as Python's own
    handler does (:func:`on_stop_signal`); in the main thread only. SIGHUP (an ssh session closed under a command) had
    killed the process at once, leaving its temporary files and a training run's last epochs; it is left alone where
    it is ignored (``nohup``), as SIGINT is. Cheap (nothing imported): the command line calls it before it imports
    anything else, so that a stop in its first tenth of a second is not a silent kill."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    signal.signal(signal.SIGTERM, on_stop_signal)
    if signal.getsignal(signal.SIGINT) in (signal.default_int_handler, on_stop_signal):  # not where it is ignored
        signal.signal(signal.SIGINT, on_stop_signal)
    if hasattr(signal, "SIGHUP") and signal.getsignal(signal.SIGHUP) in (signal.SIG_DFL, on_stop_signal):  # not nohup
        signal.signal(signal.SIGHUP, on_stop_signal)
