"""The ``medseg`` command line: a thin layer over the library.

Subcommands are imported only when called, so ``medseg --help`` answers without importing torch.
Errors raised by the library (:class:`medseg.errors.MedsegError`) become one line on stderr and exit
code 1; usage errors exit 2 (click's convention). Each command's help is a string given as ``help=``, not its
function's docstring, which ``python -OO`` strips (the commands' help then showed their options alone).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import os
import sys
import threading
import warnings

import click

from medseg import __version__, stopping
from medseg.cli.options import ARGS_KEY

__all__ = ["main", "cli"]

WINDOWS = os.name == "nt"  # where the shell leaves wildcards to the program (see _wildcards_expanded)

# command name -> (module, attribute, one-line help)
COMMANDS = {
    "infer": ("medseg.cli.infer", "infer", "Segment image files or DICOM folders with a model package."),
    "models": ("medseg.cli.models", "models", "List the shipped model packages and their labels."),
    "synth": ("medseg.cli.synth", "synth", "Write a synthetic phantom volume (and its label) as NIfTI."),
    "train": ("medseg.cli.train", "train", "Train a U-Net on labelled volumes and write a model package."),
    "evaluate": ("medseg.cli.evaluate", "evaluate", "Score a segmentation against a reference label image."),
    "report": ("medseg.cli.report", "report", "Build the cohort tables and HTML QA report from case results."),
    "convert": ("medseg.cli.convert", "convert", "Convert a DICOM series folder to NIfTI."),
    "inspect": ("medseg.cli.inspect", "inspect", "List the DICOM series in a folder and which would be used."),
    "verify": ("medseg.cli.verify", "verify", "Check a segmentation's sidecar against its input, model and output."),
    "cohort": ("medseg.cli.cohort", "cohort", "Run a sample sheet's cases into a results folder, resumably."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name, (module, _, _) in COMMANDS.items() if importlib.util.find_spec(module) is not None]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        try:
            return getattr(importlib.import_module(module), attr)
        except ModuleNotFoundError as error:
            if error.name == module:
                return None
            raise

    def resolve_command(self, ctx: click.Context, args: list[str]):
        name = args[0] if args else ""
        if name and not name.startswith("-") and name not in COMMANDS:
            import difflib

            close = difflib.get_close_matches(name, list(COMMANDS), n=1)
            group = None if close else self._group_of(ctx, name)
            if close:
                hint = f" Did you mean '{close[0]}'?"
            elif group is not None:  # `medseg check`: a subcommand of cohort's
                hint = f" Did you mean 'medseg {group} {name}'?"
            else:
                hint = f" Commands: {', '.join(COMMANDS)}."
            raise click.UsageError(f"No such command '{name}'.{hint}", ctx)
        return super().resolve_command(ctx, args)

    def _group_of(self, ctx: click.Context, name: str) -> str | None:
        """The command whose subcommand ``name`` is (``cohort`` for ``check``), if one is."""
        for group_name in self.list_commands(ctx):
            group = self.get_command(ctx, group_name)
            if isinstance(group, click.Group) and name in group.list_commands(ctx):
                return group_name
        return None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


_MEDSEG_HELP = """Segment medical volumes in batch with slice-wise 2D U-Nets, and check the results.

\b
$ medseg infer scan.nii.gz        # writes scan_seg.nii.gz + scan_seg.json
$ medseg infer a.nii.gz b.nii.gz -o out --model hippocampus
$ medseg models                   # the shipped models and their labels
$ medseg synth demo.nii.gz --label demo_label.nii.gz    # a phantom to try

Each command's --help gives its options and examples.
"""


class _KeptWarnings(logging.Handler):
    """The warnings logged while it is attached, kept to be told on standard error."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _show_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    """``--version``: the version (first line, as click's own option wrote it), the git commit where medseg runs from
    a checkout, and the folder of the shipped models with their names, without importing torch."""
    if not value or ctx.resilient_parsing:
        return
    from medseg.checkout import source_commit
    from medseg.cli.options import escaped_line
    from medseg.package import shipped_models, shipped_models_folder

    lines = [f"medseg, version {__version__}"]  # not from package metadata: a source tree has none
    # eager, --version runs before cli() sets up the log output: git's failing to say whether the checkout has
    # uncommitted changes is told here, or the commit would read as that commit's own files without a word
    told = _KeptWarnings()
    checkout_log = logging.getLogger("medseg.checkout")
    checkout_log.addHandler(told)
    try:
        commit = source_commit()
    finally:
        checkout_log.removeHandler(told)
    for message in told.messages:
        click.echo(escaped_line(f"warning: {message}"), err=True)
    if commit is not None:
        lines.append(f"commit {commit}")
    names = ", ".join(shipped_models()) or "none"
    lines.append(f"shipped models: {os.fspath(shipped_models_folder())} ({names})")
    click.echo("\n".join(map(escaped_line, lines)))
    ctx.exit(0)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]}, help=_MEDSEG_HELP)
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_show_version,
              help="Show the version, the commit of a source checkout and where the shipped models are; then exit.")
@click.option("-v", "--verbose", count=True,
              help="More log output: -v info, -vv debug (default: warnings and results only).")
@click.option("-q", "--quiet", is_flag=True,
              help="Errors only: no progress, warning or result lines (listings and --json output still print).")
def cli(verbose: int, quiet: bool) -> None:
    from medseg.cli.options import name_options

    ctx = click.get_current_context()
    if ctx.invoked_subcommand is not None:  # the library's messages name this command's options while it runs
        name_options(ctx, ctx.invoked_subcommand)
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    # a logged warning reads as the commands' own ("warning: ..."); -vv names the logger of every record
    formatter = _OneLineFormatter("%(levelname)s %(name)s: %(message)s", plain_warnings=level != logging.DEBUG)
    handler = logging.StreamHandler()
    handler.setFormatter(formatter)
    # -vv: medseg's own debug lines; the libraries underneath stay at INFO (matplotlib's and pylibjpeg's debug
    # output was 36 of 39 lines)
    root_level = logging.INFO if level == logging.DEBUG else level
    logging.basicConfig(level=root_level, handlers=[handler])
    for each in logging.getLogger().handlers:  # main() run again: basicConfig kept the first call's handler
        if isinstance(each.formatter, _OneLineFormatter):
            each.setFormatter(formatter)
    logging.getLogger().setLevel(root_level)  # basicConfig sets it on its first call only: main() may run again
    # (NOTSET otherwise: medseg's loggers follow the root's level, as a program calling main() more than once expects)
    logging.getLogger("medseg").setLevel(logging.DEBUG if level == logging.DEBUG else logging.NOTSET)
    if verbose < 2:  # nibabel logs header faults that medseg reports itself, in one line naming the file
        logging.getLogger("nibabel").setLevel(logging.CRITICAL)
    warnings.showwarning = _warning_as_one_line  # library warnings (pydicom, highdicom): one log line each
    from medseg.errors import MedsegWarning

    # medseg's own warnings are the log lines above: a Python caller's warning only, which an "error" filter
    # (python -W error, PYTHONWARNINGS=error) raised as well, failing each case the command had warned about
    warnings.filterwarnings("ignore", category=MedsegWarning)
    from medseg.io.read_warnings import forget_told

    forget_told()  # a file's warning told once per command, a second main() in one process too
    for name in ("pydicom", "highdicom"):
        library = logging.getLogger(name)
        if not any(isinstance(f, _OncePerMessage) for f in library.filters):
            library.addFilter(_OncePerMessage())
    ctx = click.get_current_context()
    ctx.ensure_object(dict)
    ctx.obj["quiet"] = quiet
    ctx.obj["verbose"] = verbose


class _OneLineFormatter(logging.Formatter):
    """Log messages as one line each, as errors are: a line break or control character in a file name is written
    escaped (a traceback, at -vv, stays as it is). With ``plain_warnings``, a warning is ``warning: <message>``, as
    the commands write their own (a library's read ``WARNING medseg.io.nifti: ...`` beside them); other records,
    and every record without it, are ``<LEVEL> <logger>: <message>``."""

    def __init__(self, fmt: str, plain_warnings: bool = False) -> None:
        super().__init__(fmt)
        self.plain_warnings = plain_warnings

    def formatMessage(self, record: logging.LogRecord) -> str:
        from medseg.cli.options import escaped_line

        escaped = escaped_line(record.message)
        if self.plain_warnings and record.levelno == logging.WARNING:
            return f"warning: {escaped}"
        if escaped != record.message:  # a copy: other handlers of the record see it as logged
            record = logging.makeLogRecord({**record.__dict__, "message": escaped})
        return super().formatMessage(record)


_WARNED: set[str] = set()  # library messages already shown, whitespace-normalised


def _warning_as_one_line(message, category, filename, lineno, file=None, line=None) -> None:
    from medseg.errors import MedsegWarning

    if issubclass(category, MedsegWarning):  # medseg's own, to a Python caller: logged too, or the command tells it
        return
    key = " ".join(str(message).split())
    if key not in _WARNED:  # a decoder may warn once per slice: once is enough
        _WARNED.add(key)
        logging.getLogger("py.warnings").warning("%s: %s", category.__name__, key)


class _OncePerMessage(logging.Filter):
    """Lets a library's log message through once; pydicom both logs and warns many messages (warn_and_log),
    which would otherwise show twice."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR:
            return True
        key = " ".join(record.getMessage().split())
        if key in _WARNED:
            return False
        _WARNED.add(key)
        return True


_Terminated = stopping.Terminated  # SIGTERM or SIGHUP, as Ctrl-C is KeyboardInterrupt
_stop_signals = stopping.stop_signals
stop_for = stopping.stop_for


def _stop_on_sigterm() -> None:
    """SIGTERM and SIGHUP raise :class:`~medseg.stopping.Terminated` and Ctrl-C :class:`KeyboardInterrupt`, as
    Python's own handler does; all are also recorded in :mod:`medseg.stopping`, so that one dropped in a weak-reference
    callback or a ``__del__`` is raised again at the next slab, training step or case
    (:func:`~medseg.stopping.handle_stop_signals`)."""
    stopping.handle_stop_signals()


def _usage_error_line(error: click.UsageError, args: list[str]) -> str:
    """A usage error as one line, as every other error is (click's own form is the usage block, a blank line and
    the error): ``medseg infer: error: <click's message>. Try 'medseg infer --help'.`` Click's parser raises some
    errors (an option missing its value) without a context: the command is then the one ``args`` name."""
    from medseg.cli.options import escaped_line
    from medseg.io.files import split_path

    path = error.ctx.command_path if error.ctx is not None else _named_command(args)
    message = error.format_message()
    split = split_path(list(args)) if message.startswith("Got unexpected extra argument") else None
    if split is not None:  # `medseg inspect MR Studie`: a path with a space, given unquoted
        message = message.rstrip(".") + f"; {split[1]!r} is there: give a path with spaces in quotes, \"{split[1]}\""
    stop = "" if message.endswith((".", "?", "!")) else "."  # "Did you mean 'infer'?" ends a sentence too
    return f"{path}: error: " + escaped_line(f"{message}{stop} Try '{path} --help'.")


def _named_command(args: list[str]) -> str:
    """``medseg``, ``medseg infer`` or ``medseg cohort infer``: the (sub)command ``args`` call, as far as they name
    one."""
    words, group = ["medseg"], cli
    for arg in args:
        command = group.get_command(None, arg) if arg in group.list_commands(None) else None  # type: ignore[arg-type]
        if command is None:
            continue
        words.append(arg)
        if not isinstance(command, click.Group):
            break
        group = command
    return " ".join(words)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: library errors → one line and exit 1; usage errors → one line and exit 2. Run as the
    console command (``argv`` None: ``medseg``, and ``python -m medseg`` as the cohort workflow's jobs run it), torch's
    OpenMP threads wait passively unless the environment chose otherwise (:func:`medseg.resources.wait_passively`),
    and a Ctrl-C or SIGTERM that comes once the outcome is decided (the interpreter takes about a second to tear torch
    and MONAI down) is ignored: it turned a finished run into a silent exit 130."""
    closed = None
    try:
        if argv is None:  # the console command's process (not a caller's, whose allocator is its own business)
            from medseg.allocator import tune_allocator
            from medseg.resources import wait_passively

            wait_passively()  # torch's OpenMP threads sleep, not spin, while they wait; before torch is imported
            tune_allocator()
            closed = _stand_in_for_closed_stdout()
            _null_for_closed_stderr()
            _escape_unprintable_output()
            stopping.check()  # a stop the early handler (medseg.__main__) recorded, where an import dropped it
        with contextlib.nullcontext() if argv is None else _output_settings_kept():
            code = _run(argv)
    except KeyboardInterrupt as stop:  # a stop before the command's own handling of it (imports, its first 0.1 s)
        _say(stop.said if isinstance(stop, _Terminated) else "Aborted.")
        code = stop.code if isinstance(stop, _Terminated) else 130
    if argv is None:
        import signal

        if closed is not None and closed.written:
            from medseg.cli.options import error_line
            from medseg.numbers import counted

            with contextlib.suppress(OSError):
                lost = counted(closed.lines, "line")
                click.echo(error_line(f"standard output is closed (>&-): {lost} of output lost (any files written are "
                                      "whole); to discard the output, redirect it to /dev/null"),
                           err=True)
            code = code or 1

        if threading.current_thread() is threading.main_thread():
            for number in _stop_signals():
                signal.signal(number, signal.SIG_IGN)
    sys.exit(code)


_SET_UP_LOGGERS = ("", "medseg", "nibabel", "pydicom", "highdicom")  # those cli() sets a level, filter or handler on


@contextlib.contextmanager
def _output_settings_kept():
    """What :func:`cli` sets up for the command's output, put back as the block ends: Python's warning display
    (``warnings.showwarning``) and filters, the set of library messages shown once (``_WARNED``), the levels, filters
    and handlers of the loggers it sets, and the formatters of the root logger's handlers. For ``main(ARGS)`` called
    from a program (or a test): left as the command set them, the caller's own warnings went into medseg's log,
    nibabel's logger stayed silenced, and a later ``main()`` in that process kept quiet about a message an earlier one
    had shown. The console command's process (``argv`` None) keeps them to its exit, which its teardown's warnings are
    shown by."""
    shown, warned = warnings.showwarning, set(_WARNED)
    loggers = [logging.getLogger(name) for name in _SET_UP_LOGGERS]
    saved = [(log.level, log.filters[:], log.handlers[:]) for log in loggers]
    # cli() gives a one-line handler already on the root logger (an earlier main() of the process's, kept to its exit)
    # this command's formatter: a later main(["-vv", ...]) left the process's warnings reading "WARNING medseg.x: ..."
    formatters = [(handler, handler.formatter) for handler in logging.getLogger().handlers]
    try:
        with warnings.catch_warnings():  # the filters: cli() leaves medseg's own warnings to its log lines
            yield
    finally:
        warnings.showwarning = shown
        _WARNED.clear()
        _WARNED.update(warned)
        for log, (level, filters, handlers) in zip(loggers, saved):
            log.setLevel(level)
            log.filters[:] = filters
            for handler in log.handlers[:]:
                if handler not in handlers:  # basicConfig's, on a root logger that had none: on the caller's stderr
                    log.removeHandler(handler)
        for handler, formatter in formatters:
            handler.setFormatter(formatter)


class _ClosedStdout:
    """Standard output where the shell closed it (``medseg infer scan.nii.gz >&-``; Python then has none): what the
    command writes there is counted, not written, so that its loss is told and the exit code says it. The command
    went on silently and exited 0, its result lines (Dice, the models list, evaluate's scores) lost."""

    encoding = "utf-8"
    errors = "backslashreplace"

    def __init__(self) -> None:
        self.written = False
        self.lines = 0

    def write(self, text: str) -> int:
        if not isinstance(text, str):  # click asks whether it takes bytes by writing b""
            raise TypeError("a text stream")
        self.written = self.written or bool(text)
        self.lines += text.count("\n")
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def writable(self) -> bool:
        return True


def _stand_in_for_closed_stdout() -> _ClosedStdout | None:
    """A :class:`_ClosedStdout` as ``sys.stdout`` where file descriptor 1 is closed; /dev/null then holds descriptor
    1, so that no output file opened later gets it (and with it what a library or a child process writes to it)."""
    if sys.stdout is not None:
        return None
    _null_on_closed(1)
    sys.stdout = _ClosedStdout()
    return sys.stdout


def _null_for_closed_stderr() -> None:
    """Standard error where the shell closed it (``medseg infer scan.nii.gz 2>&-``): written to /dev/null, as with
    ``2>/dev/null``. The errors and warnings are lost, the exit code still tells a failure (1, usage errors 2), and a
    run that succeeds exits 0: there is no other stream to tell the loss on (standard output holds the results). Python
    has no ``sys.stderr`` then: infer's check for a terminal to draw its progress bar on failed at the first slice,
    silently, exit 1 and nothing written; and the first file the command opened took descriptor 2, the one a library's
    own messages are written to."""
    if sys.stderr is not None:
        return
    _null_on_closed(2)
    with contextlib.suppress(OSError):
        sys.stderr = open(2, "w", errors="backslashreplace", closefd=False)  # noqa: SIM115 - the process's own stream


def _null_on_closed(fd: int) -> None:
    """/dev/null on file descriptor ``fd`` (1 or 2) where it is closed, so that no file opened later takes it."""
    try:
        os.fstat(fd)
    except OSError:
        with contextlib.suppress(OSError):
            null = os.open(os.devnull, os.O_WRONLY)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)


def _escape_unprintable_output() -> None:
    """Result lines name files: one whose name is not UTF-8 (copied from a Latin-1 system) under a UTF-8 locale such
    as en_US.UTF-8, or any name the locale's encoding cannot hold (a Japanese name under a Latin-1 locale), ended the
    command in a UnicodeEncodeError traceback after its first case. stdout writes such characters escaped
    (``\\udcfc``, ``\\u5c71``), as Python's stderr does."""
    stream = sys.stdout
    if getattr(stream, "errors", None) == "strict" and hasattr(stream, "reconfigure"):
        with contextlib.suppress(Exception):  # a stream replaced by the caller's own kind: left as it is
            stream.reconfigure(errors="backslashreplace")


def _run(argv: list[str] | None) -> int:
    """The command's exit code, its errors told on stderr."""
    import signal

    from medseg import stopping

    main_thread = threading.current_thread() is threading.main_thread()
    before = {number: signal.getsignal(number) for number in _stop_signals()} if main_thread else {}
    levels = {logger: logger.level for logger in (logging.getLogger(), logging.getLogger("medseg"))}
    stopping.clear()
    _stop_on_sigterm()
    try:
        return _outcome(argv)  # the library's messages name the command's options while it runs (cli names them)
    finally:
        for logger, level in levels.items():  # a caller's log levels back (-q or -vv set them for this command)
            logger.setLevel(level)
        # a caller that runs commands in its own process gets its handlers back, and no stop of this run is raised
        # in its later work (a stop told, or never seen because the run had finished)
        for number, handler in before.items():
            if handler is not None:
                signal.signal(number, handler)
        stopping.clear()


def _tell_placed(stop: KeyboardInterrupt) -> bool:
    """Whether the stop has been told in a line of its own: the command's (it marks the stop ``told``: a batch's
    "stopped at", a training run's checkpoint kept), or else the outputs the stop was held back for while they were
    placed, written whole though the command stopped, told here."""
    from medseg.cli.options import escaped_line, stopped_by
    from medseg.io.atomic import placed_before_stop

    if getattr(stop, "told", False):
        return True
    placed = placed_before_stop(stop)
    if placed:
        by = stopped_by(stop)
        click.echo(escaped_line(f"medseg: stopped{by} once its outputs were whole: wrote "
                                f"{', '.join(map(str, placed))}"), err=True)
    return bool(placed)


def _say(line: str) -> None:
    """The stop's last line on stderr, where there still is one (after a hangup the terminal may be gone)."""
    with contextlib.suppress(OSError):
        click.echo(line, err=True)


def _stop_being_told(error: BaseException) -> KeyboardInterrupt | None:
    """The stop (Ctrl-C, SIGTERM, SIGHUP) that ``error`` was raised while handling, where it was: a command that
    tells how far it got when stopped cannot write that line once a hangup has taken its terminal (EIO)."""
    seen: set[int] = set()
    cause = error.__context__
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return cause
        seen.add(id(cause))
        cause = cause.__context__
    return None


def _mapping_refused(error: ImportError) -> bool:
    """Whether the dynamic loader could not map a compiled module's library into memory: under a tight limit
    (``ulimit -v``) importing torch fails so ("libtorch_cpu.so: failed to map segment from shared object"), not
    with a MemoryError."""
    return "failed to map segment" in str(error)


def _wildcards_expanded(args: list[str]) -> list[str]:
    """The command line with its wildcards expanded, sorted, for Windows, whose shells (cmd, PowerShell) hand
    ``scans\\*.nii.gz`` to the program as typed: click's own ``main`` expands them there (``**`` at any depth, as
    here), and :func:`main` does not call it. A pattern that matches nothing is kept, as the shells keep it (then
    named as missing), and so is a name that is there as written (``scan[1].nii.gz`` is that file, not
    ``scan1.nii.gz``)."""
    import glob
    import re

    expanded = []
    for arg in args:
        pattern = re.search(r"[*?[]", arg) is not None and not os.path.lexists(arg)
        expanded += (sorted(glob.glob(arg, recursive=True)) if pattern else []) or [arg]
    return expanded


def _writing_stdout(error: OSError) -> bool:
    """Whether ``error`` was raised writing the command's own output (``click.echo`` on stdout), not by its work."""
    trace = error.__traceback__
    while trace is not None and trace.tb_next is not None:
        trace = trace.tb_next
    if trace is None:
        return False
    frame = trace.tb_frame
    if frame.f_globals.get("__name__") != "click.utils" or frame.f_code.co_name != "echo":
        return False
    written = frame.f_locals.get("file")
    if written is sys.stdout:
        return True
    # where stdout's encoding is ASCII, click writes through a text stream of its own over stdout's bytes
    try:
        return written is not None and written.fileno() == sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # a stream of no file (a caller's StringIO)
        return False


def _outcome(argv: list[str] | None) -> int:
    from medseg.cli.options import error_line
    from medseg.errors import MedsegError

    try:
        # invoked here rather than through cli.main, which writes an empty line on stderr when it meets a Ctrl-C;
        # what else it does is done here: shell completion (_MEDSEG_COMPLETE; it exits), a closed stdout pipe below
        cli._main_shell_completion({}, "medseg", None)
        args = list(sys.argv[1:] if argv is None else argv)
        if argv is None and WINDOWS:
            args = _wildcards_expanded(args)
        with cli.make_context("medseg", list(args)) as context:
            context.meta[ARGS_KEY] = args  # as given, for sidecars (options.invocation)
            code = cli.invoke(context)
    except click.exceptions.Abort as error:  # click's own (a prompt's Ctrl-C)
        if isinstance(error.__cause__, _Terminated):
            _say(error.__cause__.said)
            return error.__cause__.code
        click.echo("Aborted.", err=True)
        return 130
    except click.exceptions.NoArgsIsHelpError as error:  # `medseg` or `medseg cohort` alone: the help, as it is
        error.show()
        return error.exit_code
    except click.ClickException as error:
        if isinstance(error, click.NoSuchOption) and error.option_name in ("-q", "-v", "-vv", "--quiet", "--verbose"):
            name = error.option_name
            error.message += f" ({name} is an option of medseg itself: medseg {name} COMMAND …)"
        if isinstance(error, click.UsageError):
            click.echo(_usage_error_line(error, sys.argv[1:] if argv is None else argv), err=True)
        else:
            click.echo(error_line(error.format_message()), err=True)
        return error.exit_code
    except click.exceptions.Exit as error:
        return error.exit_code
    except MedsegError as error:
        click.echo(error_line(error), err=True)
        return 1
    except (MemoryError, ImportError) as error:  # under a memory limit (ulimit -v, a batch system's h_vmem)
        if isinstance(error, ImportError) and not _mapping_refused(error):
            raise
        detail = f": {error}" if str(error) and isinstance(error, MemoryError) else ""
        click.echo(error_line(f"out of memory{detail} (the machine's memory or a limit such as ulimit -v refused an "
                              "allocation)"), err=True)
        return 1
    except UnicodeEncodeError as error:
        from medseg.io.files import unencodable_name

        said = unencodable_name(error)
        if said is None:
            raise
        click.echo(error_line(said), err=True)
        return 1
    # a stop is one line: the command's own where it tells how far it got (a second, "Aborted.", "Terminated." or
    # "Hangup.", said nothing more; the exit code tells the signal), else that word alone
    except _Terminated as stop:
        told = False
        with contextlib.suppress(OSError):  # a hangup's terminal is gone: the exit code tells
            told = _tell_placed(stop)
        if not told:
            _say(stop.said)
        return stop.code
    except KeyboardInterrupt as stop:
        if not _tell_placed(stop):
            click.echo("Aborted.", err=True)
        return 130
    except OSError as error:
        import errno

        from medseg.io.files import os_reason

        stop = _stop_being_told(error)
        if stop is not None:  # a stop's own lines (a batch's "stopped at"), after a hangup on a terminal now gone
            _say(stop.said if isinstance(stop, _Terminated) else "Aborted.")
            return stop.code if isinstance(stop, _Terminated) else 130
        if error.errno != errno.EPIPE:
            if not _writing_stdout(error):
                raise
            # stdout on a full disk or a failing device (`> /dev/full`): one line, as for any other output
            click.echo(error_line(f"cannot write to standard output ({os_reason(error)})"), err=True)
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - what it still holds is not flushed on the way out
            return 1
        # the reader of stdout went away (`medseg models | head -1`): quietly, as click's own main does
        devnull = open(os.devnull, "w")  # noqa: SIM115 - stays open: the interpreter flushes stdout on its way out
        sys.stdout = sys.stderr = devnull
        return 1
    return code if isinstance(code, int) else 0
