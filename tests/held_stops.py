"""A Ctrl-C that arrives while a set of outputs is put in place (and is held until the set is whole)."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator


@contextlib.contextmanager
def ctrl_c_while_placing(monkeypatch, name: str) -> Iterator[None]:
    """Within the block, SIGINT is sent to this process while the set of outputs holding a file called ``name`` is
    placed, with Python's own Ctrl-C handler installed (as on a terminal)."""
    from medseg.io import atomic

    real = atomic._put_in_place

    def placing(temps, targets, retire):
        if any(target.name == name for target in targets):
            os.kill(os.getpid(), signal.SIGINT)  # held until the set is in place
        real(temps, targets, retire)

    monkeypatch.setattr(atomic, "_put_in_place", placing)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
