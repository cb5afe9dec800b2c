"""What medseg takes where nothing is given, one value for the library, the commands and the cohort workflow.

A module that imports nothing: the commands read these as they start, and the modules that use them
(:mod:`medseg.inference`, :mod:`medseg.package`) load torch or numpy, which ``medseg --help`` should not wait for.
The workflow's ``configs/cohort.yaml`` and its schema's defaults repeat them (YAML imports nothing); a test holds
them equal.
"""

from __future__ import annotations

__all__ = ["DEFAULT_BATCH_SIZE", "DEFAULT_MODEL"]

DEFAULT_BATCH_SIZE = 16  # tiles per forward pass where none is given (a rerun of a sidecar that records none too)
DEFAULT_MODEL = "phantom"  # the shipped model a command segments with where none is named
