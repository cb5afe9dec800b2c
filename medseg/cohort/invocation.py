"""Whether a Snakemake command line only previews the workflow (a dry run, a listing, an unlock...).

A Snakefile is read, and its top-level code run, for every Snakemake command; Snakemake does not tell it
whether jobs will run. The workflow's clean-up of void job records must happen only when they will.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from pathlib import Path

__all__ = ["NO_HOOKS_REFUSED", "claims_results", "config_profile", "dropped_profile_config", "forced_jobs",
           "hooks_skipped", "hooks_skipped_by", "previewing", "profile_retries", "repeated_config", "runtime_enforced",
           "writes_results"]

PREVIEW_OPTIONS = frozenset({
    "--dry-run", "--dryrun", "--touch", "--unlock", "--lint", "--list-rules", "--list", "--list-target-rules",
    "--summary", "--detailed-summary", "--dag", "--rulegraph", "--filegraph", "--d3dag", "--list-changes",
    "--list-input-changes", "--list-params-changes", "--list-code-changes", "--list-untracked", "--print-compilation",
    "--containerize", "--export-cwl", "--archive", "--cleanup-metadata", "--cleanup-shadow", "--delete-all-output",
    "--delete-temp-output", "--generate-unit-tests", "--list-conda-envs", "--conda-cleanup-envs", "--version",
    "--help", "--report", "--conda-create-envs-only", "--container-cleanup-images",
})
PREVIEW_SHORT = frozenset("ntlSDvh")  # -n, -t, -l, -S, -D, -v, -h, alone or in a cluster such as -np
PREVIEW_EXECUTORS = frozenset({"dryrun", "touch"})
RUNS_ANYWAY = "--report-after-run"  # with it, --report runs the workflow first
# previews that still change the results folder (the parser's names for them)
WRITING_PREVIEWS = ("touch", "delete_all_output", "delete_temp_output", "cleanup_metadata", "cleanup_shadow")


def previewing(argv: Sequence[str]) -> bool:
    """True when ``argv`` (Snakemake's arguments) runs no job. A long option is read as Snakemake's parser reads
    it: by any of its names (``--lu`` is ``--list-untracked``) or an unambiguous prefix (``--dry-r``); a token it
    would refuse (ambiguous, unknown) runs nothing either. Options a profile sets (``dry-run: true`` in a
    ``--profile``'s or ``$SNAKEMAKE_PROFILE``'s config.yaml) count as on the command line."""
    return _previewing_argv(argv) or _profile_previews(argv)


NO_HOOKS_REFUSED = ("medseg: error: --no-hooks: the cohort workflow's run is set up and ended in its hooks "
                    "(onstart writes the batch plan its jobs read and the record that lets a killed run's lock be "
                    "released; onsuccess and onerror clear that record, and tell a Ctrl-C); run without --no-hooks")


def hooks_skipped(argv: Sequence[str]) -> bool:
    """Whether ``argv`` (Snakemake's arguments) runs jobs with ``--no-hooks`` (on the command line or in a profile),
    which the workflow refuses (:data:`NO_HOOKS_REFUSED`): its runs kept no batch plan and no run record, and a
    Ctrl-C ended them as failed runs. A preview runs no hook anyway, and is let through. Snakemake gives
    ``--no-hooks`` to the job processes it spawns itself: only its main process asks."""
    if previewing(argv):
        return False
    parsed = _parsed(tuple(argv))
    return bool(getattr(parsed[1], "no_hooks", False)) if parsed is not None else "--no-hooks" in argv


def hooks_skipped_by(execution_settings: object, executor_plugin: object = None) -> bool:
    """Whether Snakemake's ``ExecutionSettings`` (``workflow.execution_settings``, as a run is executed) skip the hooks
    (``no_hooks``) of a run that executes jobs: the same refusal as :func:`hooks_skipped`, for a program that runs the
    workflow through Snakemake's Python API, whose settings no command line carries (and which it sets only once the
    Snakefile is read). A dry run or ``--touch`` (``executor_plugin``'s ``dryrun_exec``, ``touch_exec``) is let
    through, as on the command line. False where the settings do not say (a Snakemake that names them otherwise)."""
    if getattr(execution_settings, "no_hooks", False) is not True:
        return False
    common = getattr(executor_plugin, "common_settings", None)
    return not (getattr(common, "dryrun_exec", False) or getattr(common, "touch_exec", False))


_AS_SNAKEMAKE_READ = object()  # repeated_config's config_args when not told: argv is the command line Snakemake read


def repeated_config(argv: Sequence[str], config_args: Sequence[str] | None | object = _AS_SNAKEMAKE_READ
                    ) -> str | None:
    """The error for a command line (Snakemake's arguments) that gives ``--config`` (``-C``) more than once and so
    loses settings: Snakemake keeps the last one's alone and drops the others' without a word, so ``--config
    samples=... results=... --config device=cuda`` ran the example sheet, and ``--config device=cuda --config
    samples=...`` ran on the CPU (a dry run showed the same). Only the keys the last one does not set again are
    dropped: an empty ``--config``, or one whose keys the last repeats, loses nothing and is let through.
    ``config_args``: the ``--config`` settings Snakemake ran with (``workflow.config_settings.config_args``); where
    they are not the last ``--config`` of ``argv``, ``argv`` is not the command line Snakemake read (a program
    running the workflow through its Python API, with options of its own) and nothing is said. None as well when
    nothing is dropped, or when Snakemake cannot read the command line (it then refuses it itself)."""
    import contextlib
    import io

    try:
        from snakemake.cli import get_argument_parser
    except ImportError:
        return None
    parser = get_argument_parser()  # without profiles: a profile's config is not a second --config
    given: list[list[str]] = []
    for action in parser._actions:
        if action.dest == "config":
            class Noted(type(action)):
                def __call__(self, parser, namespace, values, option_string=None):
                    given.append([str(value) for value in values or []])
                    super().__call__(parser, namespace, values, option_string)

            action.__class__ = Noted
    try:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            parser.parse_args(list(argv))
    except (Exception, SystemExit):
        return None
    if len(given) < 2:
        return None
    if config_args is not _AS_SNAKEMAKE_READ and (
            None if config_args is None else [str(value) for value in config_args]) != given[-1]:
        return None
    kept = {value.partition("=")[0] for value in given[-1]}
    dropped = [value for values in given[:-1] for value in values if value.partition("=")[0] not in kept]
    if not dropped:
        return None
    return (f"--config given {len(given)} times: Snakemake keeps the last one's settings alone "
            f"({' '.join(given[-1]) or 'none'}) and drops the others' ({' '.join(dropped)}); give every KEY=VALUE "
            "after one --config")


def dropped_profile_config(argv: Sequence[str], config_args: Sequence[str] | None | object = _AS_SNAKEMAKE_READ
                           ) -> str | None:
    """The warning for a profile's ``config:`` settings (a ``--profile``'s, ``$SNAKEMAKE_PROFILE``'s or the workflow
    profile's) that a ``--config`` on the command line (``argv``, Snakemake's arguments) drops: Snakemake keeps one
    ``--config``, the command line's, so a copy of the SLURM profile setting ``device=cuda`` ran on the CPU once
    ``--config samples=...`` was given, without a word. Only the keys the command line does not set again count.
    ``config_args`` as for :func:`repeated_config`. None when nothing is dropped, or Snakemake cannot be asked."""
    import contextlib
    import io

    parsed = _parsed(tuple(argv))
    if parsed is None:
        return None
    parser, args = parsed
    if getattr(args, "config", None) is None:  # no --config anywhere
        return None
    given = [str(value) for value in args.config]
    if config_args is not _AS_SNAKEMAKE_READ and (
            None if config_args is None else [str(value) for value in config_args]) != given:
        return None
    try:  # the profiles' own settings: the same parser, reading them, without the command line
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            profiles = [str(value) for value in getattr(parser.parse_args([]), "config", None) or []]
    except (Exception, SystemExit):
        return None
    kept = {value.partition("=")[0] for value in given}
    dropped = [value for value in profiles if value.partition("=")[0] not in kept]
    if not dropped:
        return None
    return (f"profile config {' '.join(dropped)}: dropped, as a --config on the command line replaces a profile's "
            f"config: whole (Snakemake keeps one); give {'it' if len(dropped) == 1 else 'them'} among the command "
            "line's --config settings too")


def config_profile(argv: Sequence[str], config_args: Sequence[str] | None | object = _AS_SNAKEMAKE_READ
                   ) -> str | None:
    """The profile file (a ``--profile``'s, ``$SNAKEMAKE_PROFILE``'s or the workflow profile's ``config.yaml``) whose
    ``config:`` gave the run its ``--config`` settings, where ``argv`` (Snakemake's arguments) types no ``--config``:
    Snakemake reads a profile's ``config:`` as a ``--config`` (the last profile's whole), and the workflow, given the
    settings alone, named a refused one ``--config KEY=VALUE``, which the user never typed. ``config_args`` as for
    :func:`repeated_config`: where they are not the profile's, ``argv`` is not the command line Snakemake read. None
    where the command line gives ``--config``, no profile sets ``config:``, or Snakemake cannot be asked."""
    import contextlib
    import io
    import os

    parsed = _parsed(tuple(argv))
    if parsed is None or getattr(parsed[1], "config", None) is None:
        return None
    parser, args = parsed
    try:  # Snakemake's parser without profiles: a --config typed on the command line
        from snakemake.cli import get_argument_parser

        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            if getattr(get_argument_parser().parse_args(list(argv)), "config", None) is not None:
                return None
        sources = parser.get_source_to_settings_dict()  # configargparse's public record of where each value came from
    except (Exception, SystemExit):
        return None
    given = [str(value) for value in args.config]
    if config_args is not _AS_SNAKEMAKE_READ and (
            None if config_args is None else [str(value) for value in config_args]) != given:
        return None
    for source, settings in sources.items():
        kind, _, path = str(source).partition("|")
        if kind == "config_file" and "config" in settings:  # the profile whose config: counted (one: the last's)
            start = _start_folder(tuple(argv))
            if not os.path.isabs(path) and not os.path.exists(path) and start is not None:
                path = os.path.join(start, path)
            return os.path.abspath(path)
    return None


def claims_results(argv: Sequence[str]) -> bool:
    """Whether a Snakemake command must hold the results folder (one writer at a time): a run, or a preview that
    changes the folder (:func:`writes_results`); not one with ``--nolock`` (the user's call, as for Snakemake's own
    lock), on the command line or in a profile."""
    if not (not previewing(argv) or writes_results(argv)):
        return False
    parsed = _parsed(tuple(argv))
    return not (getattr(parsed[1], "nolock", False) if parsed is not None else "--nolock" in argv)


def writes_results(argv: Sequence[str]) -> bool:
    """Whether a command that runs no job still changes the results folder (``--touch``, ``--delete-all-output``,
    ``--delete-temp-output``, ``--cleanup-metadata``, ``--cleanup-shadow``, the touch executor), set on the command
    line or in a profile: it must not go on while a run writes there. False when Snakemake cannot be asked."""
    parsed = _parsed(tuple(argv))
    if parsed is None:
        return False
    args = parsed[1]
    if any(getattr(args, dest, None) for dest in WRITING_PREVIEWS):
        return True
    return str(getattr(args, "executor", "") or "") == "touch"


def runtime_enforced(argv: Sequence[str]) -> bool:
    """Whether the executor ``argv`` (Snakemake's arguments, a profile's ``executor:`` counted) runs the jobs through a
    scheduler that is given each job's ``runtime`` (``sbatch -t``): any executor but the ones that run the jobs on
    this machine (``local``, Snakemake's default, and the previews ``dryrun`` and ``touch``: the plugins whose
    ``local_exec`` is set). A preview (``-n``) with a cluster executor counts as that executor, whose run it
    previews. False where Snakemake cannot read the command line (a program running the workflow through its API:
    its executor is not known while the workflow is planned)."""
    parsed = _parsed(tuple(argv))
    if parsed is None:
        return False
    name = str(getattr(parsed[1], "executor", None) or "local")
    if name == "local" or name in PREVIEW_EXECUTORS:
        return False
    try:
        from snakemake_interface_executor_plugins.registry import ExecutorPluginRegistry

        return not ExecutorPluginRegistry().get_plugin(name).common_settings.local_exec
    except Exception:  # a plugin not installed (Snakemake refuses the run then) or an interface renamed
        return True


def profile_retries(argv: Sequence[str]) -> int:
    """The ``--retries`` of ``argv`` (Snakemake's arguments, a profile's ``retries:`` counted): how many times a failed
    job of a rule that sets no ``retries:`` of its own (the report) is submitted again. 0 where Snakemake cannot
    read the command line."""
    parsed = _parsed(tuple(argv))
    try:
        return max(0, int(getattr(parsed[1], "retries", 0) or 0)) if parsed is not None else 0
    except (TypeError, ValueError):
        return 0


def forced_jobs(argv: Sequence[str], stages: Sequence[str] = ("infer", "evaluate")) -> dict[str, list[str] | None]:
    """The workflow's jobs Snakemake is told to run again although they are finished, by stage: every job of every
    stage with ``-F`` / ``--forceall`` (None: all batches); with ``-R`` / ``--forcerun``, a stage named by its rule
    (all its batches) or the batches whose job records (``jobs/<batch>.<stage>.json``) are named, as also with
    ``-f`` / ``--force`` and such records as targets; on the command line or in a profile. Snakemake then runs those
    jobs, and the jobs must make their cases again rather than keep them. Empty when Snakemake cannot be asked."""
    parsed = _parsed(tuple(argv))
    if parsed is None:
        return {}
    args = parsed[1]
    if getattr(args, "forceall", False):
        return dict.fromkeys(stages)
    named = {str(name) for name in (getattr(args, "forcerun", None) or ())}
    if getattr(args, "force", False):
        named |= {str(name) for name in (getattr(args, "targets", None) or ())}
    forced: dict[str, list[str] | None] = {}
    for stage in stages:
        if stage in named:
            forced[stage] = None
            continue
        batches = sorted({Path(name).name[:-len(f".{stage}.json")] for name in named
                          if Path(name).name.endswith(f".{stage}.json")} - {""})
        if batches:
            forced[stage] = batches
    return forced


def _parsed(argv: tuple[str, ...]):
    """Snakemake's own reading of ``argv``, with the profiles it reads: (parser, namespace), or None when Snakemake
    cannot be imported or refuses the command line (it then runs nothing). Read once per command line and profile
    setting (the Snakefile asks several questions of it)."""
    import os

    return _parsed_with(argv, os.environ.get("SNAKEMAKE_PROFILE"))


@functools.lru_cache(maxsize=8)
def _parsed_with(argv: tuple[str, ...], profile_setting: str | None):
    import contextlib
    import io

    try:
        from snakemake.cli import parse_args
    except ImportError:
        return None
    folders = [None]
    start = _start_folder(argv)
    if start is not None:
        folders.append(start)
    for folder in folders:
        try:  # it says which profile it uses on stderr: the run itself says so too
            with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()), \
                    (contextlib.nullcontext() if folder is None else contextlib.chdir(folder)):
                return parse_args(list(argv))
        except (Exception, SystemExit):
            continue
    return None


def _start_folder(argv: tuple[str, ...]) -> str | None:
    """The folder Snakemake was started in, where ``argv`` moved it elsewhere (``--directory``/``-d``): Snakemake
    reads a relative ``--profile`` (and other paths) from there before it moves, and the workflow is read after.
    Python keeps no note of it: the shell's ``$PWD``, which a move inside the process leaves as it is, where the
    relative ``--directory`` given leads from it to the current folder. None where nothing says (no ``--directory``)
    and where nothing ties ``$PWD`` to it: a process that starts Snakemake in another folder (``subprocess`` with
    ``cwd=``, a job launcher) passes its shell's ``$PWD`` on, and with an absolute ``--directory`` any ``$PWD`` would
    pass, lending another checkout's profile of the same name."""
    import os

    directory = None
    for position, token in enumerate(argv):
        name, equals, value = token.partition("=")
        if token.startswith("--"):
            if "--directory" in (_names(name) or ()):
                directory = value if equals else argv[position + 1] if position + 1 < len(argv) else None
        elif token.startswith("-d"):
            directory = token[2:] or (argv[position + 1] if position + 1 < len(argv) else None)
    start = os.environ.get("PWD")
    if directory is None or os.path.isabs(directory) or not start or not os.path.isabs(start):
        return None
    try:
        here = Path.cwd().resolve()
        if Path(start).resolve() == here or Path(start, directory).resolve() != here:
            return None
    except OSError:
        return None
    return start


def _profile_previews(argv: Sequence[str]) -> bool:
    """Whether Snakemake's own parser, with the profiles it reads, finds a preview option or executor set: a
    profile's settings never appear in ``argv``. False when Snakemake cannot be asked (then ``argv`` alone says)."""
    parsed = _parsed(tuple(argv))
    if parsed is None:  # a command line Snakemake refuses runs nothing; the argv reading said so
        return False
    parser, args = parsed
    for action in parser._actions:
        if not set(action.option_strings) & PREVIEW_OPTIONS or action.dest in ("help", "version"):
            continue
        value = getattr(args, action.dest, action.default)
        if value not in (action.default, None, False) and not (
                action.dest == "report" and getattr(args, "report_after_run", False)):
            return True
    return str(getattr(args, "executor", "") or "") in PREVIEW_EXECUTORS


def _previewing_argv(argv: Sequence[str]) -> bool:
    found: set[str] = set()
    for position, token in enumerate(argv):
        name, _, value = token.partition("=")
        names = _names(name)
        if names is None:
            return True
        found |= names
        if names & {"--executor", "-e"}:
            chosen = value or (argv[position + 1] if position + 1 < len(argv) else "")
            if chosen in PREVIEW_EXECUTORS:
                return True
        if re.fullmatch(r"-[A-Za-z]\S*", token):
            short = _short_names(token)
            if short is None or short[0] & (PREVIEW_OPTIONS | {f"-{letter}" for letter in PREVIEW_SHORT}):
                return True
            found |= short[0]
            if "--executor" in short[0]:  # -e dryrun, -edryrun
                chosen = short[1] or (argv[position + 1] if position + 1 < len(argv) else "")
                if chosen in PREVIEW_EXECUTORS:
                    return True
    previews = found & PREVIEW_OPTIONS
    if RUNS_ANYWAY in found:
        previews -= {"--report"}
    return bool(previews)


def _names(name: str) -> frozenset[str] | None:
    """Every name of the option a command-line token ``name`` stands for (the token itself for anything but a long
    option, or when Snakemake cannot be asked); None for a long option Snakemake refuses (it then runs nothing)."""
    if not name.startswith("--"):
        return frozenset({name})
    options = _snakemake_options()
    if options is None:  # cannot ask the parser: the name as written, a prefix of a preview option as a preview
        if name not in PREVIEW_OPTIONS and any(option.startswith(name) for option in PREVIEW_OPTIONS):
            return None
        return frozenset({name})
    if name in options:
        return options[name]
    found = {options[option] for option in options if option.startswith(name)}
    return next(iter(found)) if len(found) == 1 else None


def _short_names(token: str) -> tuple[frozenset[str], str] | None:
    """The names of the short options in a cluster as Snakemake's parser reads it, and the value attached to the
    last: letters up to the first option that takes a value, whose value the rest is (``-np`` is -n and -p,
    ``-call`` is ``--cores all``). None for a letter Snakemake does not know (it then runs nothing). Without the
    parser, every letter counts."""
    options = _snakemake_short_options()
    if options is None:
        return frozenset(f"-{letter}" for letter in token[1:] if letter.isalpha()), ""
    names: set[str] = set()
    for position, letter in enumerate(token[1:], start=2):
        if f"-{letter}" not in options:
            return None
        option_names, takes_value = options[f"-{letter}"]
        names |= option_names
        if takes_value:
            return frozenset(names), token[position:].removeprefix("=")
    return frozenset(names), ""


@functools.lru_cache(maxsize=1)
def _snakemake_actions() -> dict[str, tuple[frozenset[str], bool]] | None:
    """Each option name of Snakemake's parser: every name of its action, and whether it takes a value (None when
    Snakemake cannot be imported)."""
    try:
        from snakemake.cli import get_argument_parser
    except ImportError:
        return None
    options = {}
    for action in get_argument_parser()._actions:
        names = frozenset(action.option_strings)
        options.update({s: (names, action.nargs != 0) for s in names})
    return options


@functools.lru_cache(maxsize=1)
def _snakemake_short_options() -> dict[str, tuple[frozenset[str], bool]] | None:
    actions = _snakemake_actions()
    return None if actions is None else {s: v for s, v in actions.items() if re.fullmatch(r"-[A-Za-z]", s)}


@functools.lru_cache(maxsize=1)
def _snakemake_options() -> dict[str, frozenset[str]] | None:
    actions = _snakemake_actions()
    return None if actions is None else {s: v[0] for s, v in actions.items() if s.startswith("--")}
