"""A benchmark script's own line on stderr (an error, a warning, progress), one line however the text reads.

A file name may hold a line break or a terminal escape; written raw, a line naming it would split into lines that
read as others, or drive the terminal. The scripts write their lines through :func:`stderr_line`, escaped as the
``medseg`` command and medseg's warnings write theirs (:func:`medseg.one_line.escaped_line`). The scripts run as
``python benchmarks/<name>.py``, which puts this folder on ``sys.path``: they ``import stderr_line``.
"""

from __future__ import annotations

import sys

from medseg.one_line import escaped_line

__all__ = ["stderr_line"]


def stderr_line(text: str, *, flush: bool = False) -> None:
    """Write ``text`` to stderr as one line (control characters in it escaped: ``\\n``, ``\\x1b``)."""
    print(escaped_line(text), file=sys.stderr, flush=flush)
