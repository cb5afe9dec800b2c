"""Argument types the benchmark scripts share (``type=`` of argparse): a value that is not one is a usage error.

The scripts run as ``python benchmarks/<name>.py``, which puts this folder on ``sys.path``: they ``import
argument_types``.
"""

from __future__ import annotations

import argparse

__all__ = ["positive"]


def positive(text: str) -> int:
    """A whole number from 1 (``--threads 4``, ``--batch-size 16``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return value
