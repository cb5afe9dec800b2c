"""Whether a Snakemake command line only previews the workflow (a dry run, a listing, an unlock...).

A Snakefile is read, and its top-level code run, for every Snakemake command; Snakemake does not tell it
whether jobs will run. The workflow's clean-up of void job records must happen only when they will.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

__all__ = ["previewing"]

PREVIEW_OPTIONS = frozenset({
    "--dry-run", "--dryrun", "--touch", "--unlock", "--lint", "--list-rules", "--list", "--list-target-rules",
    "--summary", "--detailed-summary", "--dag", "--rulegraph", "--filegraph", "--d3dag", "--list-changes",
    "--list-input-changes", "--list-params-changes", "--list-code-changes", "--list-untracked", "--print-compilation",
    "--containerize", "--export-cwl", "--archive", "--cleanup-metadata", "--cleanup-shadow", "--delete-all-output",
    "--delete-temp-output", "--generate-unit-tests", "--list-conda-envs", "--conda-cleanup-envs", "--version",
    "--help", "--report",
})
PREVIEW_SHORT = frozenset("ntlSDvh")  # -n, -t, -l, -S, -D, -v, -h, alone or in a cluster such as -np
PREVIEW_EXECUTORS = frozenset({"dryrun", "touch"})


def previewing(argv: Sequence[str]) -> bool:
    """True when ``argv`` (Snakemake's arguments) runs no job."""
    for position, token in enumerate(argv):
        name, _, value = token.partition("=")
        if name in PREVIEW_OPTIONS:
            return True
        if name in ("--executor", "-e"):
            chosen = value or (argv[position + 1] if position + 1 < len(argv) else "")
            if chosen in PREVIEW_EXECUTORS:
                return True
        if re.fullmatch(r"-[A-Za-z]+", token) and PREVIEW_SHORT & set(token[1:]):
            return True
    return False
