"""Whether a Snakemake command line only previews the workflow (a dry run, a listing, an unlock...).

A Snakefile is read, and its top-level code run, for every Snakemake command; Snakemake does not tell it
whether jobs will run. The workflow's clean-up of void job records must happen only when they will.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

__all__ = ["previewing"]

PREVIEW_OPTIONS = frozenset({
    "--dry-run", "--dryrun", "--touch", "--unlock", "--lint", "--list-rules", "--list", "--list-target-rules",
    "--summary", "--detailed-summary", "--dag", "--rulegraph", "--filegraph", "--d3dag", "--list-changes",
    "--list-input-changes", "--list-params-changes", "--list-code-changes", "--list-untracked", "--print-compilation",
    "--containerize", "--export-cwl", "--archive", "--cleanup-metadata", "--cleanup-shadow", "--delete-all-output",
    "--delete-temp-output", "--generate-unit-tests", "--list-conda-envs", "--conda-cleanup-envs", "--version",
    "--help", "--report", "--conda-cleanup-pkgs", "--conda-create-envs-only",
})
PREVIEW_SHORT = frozenset("ntlSDvh")  # -n, -t, -l, -S, -D, -v, -h, alone or in a cluster such as -np
PREVIEW_EXECUTORS = frozenset({"dryrun", "touch"})


def previewing(argv: Sequence[str]) -> bool:
    """True when ``argv`` (Snakemake's arguments) runs no job. Snakemake takes an unambiguous prefix of a long
    option for the option (``--dry-r``), so a prefix of a preview option is resolved as its parser resolves it."""
    for position, token in enumerate(argv):
        name, _, value = token.partition("=")
        name = _resolved(name)
        if name is None or name in PREVIEW_OPTIONS:
            return True
        if name in ("--executor", "-e"):
            chosen = value or (argv[position + 1] if position + 1 < len(argv) else "")
            if chosen in PREVIEW_EXECUTORS:
                return True
        if re.fullmatch(r"-[A-Za-z]+", token) and PREVIEW_SHORT & set(token[1:]):
            return True
    return False


def _resolved(name: str) -> str | None:
    """A long option as Snakemake's parser reads it: itself, or the one option it abbreviates; None for a prefix
    of a preview option that Snakemake refuses as ambiguous or unknown (it then runs nothing). Other tokens are
    returned as they are: only a preview option, or the executor, could make a run a preview."""
    if not name.startswith("--") or name in PREVIEW_OPTIONS or not any(
            option.startswith(name) for option in (*PREVIEW_OPTIONS, "--executor")):
        return name
    options = _snakemake_options()
    if options is None:
        return None  # cannot tell: taken as a preview, which changes nothing
    if name in options:
        return name
    found = [option for option in options if option.startswith(name)]
    return found[0] if len(found) == 1 else None


@functools.lru_cache(maxsize=1)
def _snakemake_options() -> frozenset[str] | None:
    try:
        from snakemake.cli import get_argument_parser
    except ImportError:
        return None
    return frozenset(s for action in get_argument_parser()._actions for s in action.option_strings
                     if s.startswith("--"))
