"""A stop asked for by a signal (Ctrl-C, SIGTERM), seen at the next safe point of a long loop.

The command line's signal handlers raise the interrupt where Python happens to be, and also record it here: one
raised while an import compiles a module can be dropped by a bare ``except:`` around that import in a library, and
one raised inside a weak-reference callback or a ``__del__`` is printed as "Exception ignored" and dropped; either
way the run went on to the end. Loops over slabs, training steps and cases, and the stages of a case, call
:func:`check`, which raises the recorded interrupt again.
"""

from __future__ import annotations

__all__ = ["check", "clear", "request"]

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
