"""medseg's warnings while Snakemake plans a cohort (a package folder taken for a shipped model's name, a kept lock).

The library's loggers have a NullHandler, so a program that configures no logging hears nothing from them; the
workflow is such a program, and its planning shows them as Python's last-resort handler did: the bare message, on
stderr, warnings and errors only.
"""

from __future__ import annotations

import logging
import sys

__all__ = ["show_planning_warnings"]


class _PlanningWarnings(logging.StreamHandler):
    """The handler :func:`show_planning_warnings` adds (one, however often the Snakefile is read in a process)."""


def show_planning_warnings() -> None:
    """Give the ``medseg`` loggers a handler writing their warnings to stderr, unless the process has configured
    logging itself (a program running the workflow through Snakemake's API, whose root handler takes them)."""
    medseg_log = logging.getLogger("medseg")
    if logging.getLogger().handlers or any(isinstance(h, _PlanningWarnings) for h in medseg_log.handlers):
        return
    handler = _PlanningWarnings(sys.stderr)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("%(message)s"))
    medseg_log.addHandler(handler)
