"""Options shared by several commands, defined once."""

from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path

import click

from medseg.defaults import DEFAULT_BATCH_SIZE, DEFAULT_MODEL
from medseg.one_line import escaped_line  # re-exported: the commands write their lines with it

__all__ = [
    "GivenPath", "FiniteFloatRange", "given_model", "model_option", "device_form", "device_option", "precision_option",
    "batch_option", "overwrite_option", "threads_option", "series_option", "escaped_line", "error_line", "quiet",
    "file_output", "output_dir_option", "output_or_folder", "refuse_blocked_folder", "usage_errors", "invocation",
    "typed_option", "OPTION_NAMES", "ct_window_option", "output_columns", "COMMAND_OPTIONS", "COMMAND_ONLY",
    "IN_WORKFLOW", "name_options",
]


class GivenPath(click.Path):
    """A path argument or option that refuses an empty string: ``-o "$OUT"`` with ``OUT`` unset read as the current
    folder, and outputs were written there. ``folder_hint``: for a file-only path given a folder, what to do instead
    (click says only "is a directory"). Not ``readable`` unless asked: click's check made a path this user may not
    read a usage error (exit 2), where the library names an input it may not read (exit 1), and refused an output
    that is replaced, not read (``--overwrite`` of a file without read permission, a folder that takes files but
    cannot be listed)."""

    def __init__(self, *args, folder_hint: str | None = None, readable: bool = False, **kwargs):
        super().__init__(*args, readable=readable, **kwargs)
        self.folder_hint = folder_hint

    def convert(self, value, param, ctx):
        if isinstance(value, str) and not value:
            self.fail("an empty path (an unset shell variable?)", param, ctx)
        if self.folder_hint and not self.dir_okay and os.path.isdir(value):
            self.fail(f"{os.fsdecode(value)} is a folder; {self.folder_hint}", param, ctx)
        return super().convert(value, param, ctx)


class FiniteFloatRange(click.FloatRange):
    """A ``click.FloatRange`` that refuses NaN and infinities: NaN passes every bound (``--dice-threshold nan``
    crashed the report with a traceback; ``--overlap nan`` wrote ``NaN``, not JSON, into sidecars)."""

    def convert(self, value, param, ctx):
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return number


def given_model(ctx, param, value):
    """An empty --model is a usage error, as an empty path is (``-m "$MODEL"`` with the variable unset)."""
    if value is None:
        return value
    from medseg.package import empty_model_name, model_choices

    if empty_model_name(value):  # the library's test of it, with the command line's likely cause
        raise click.BadParameter(f"an empty model name (an unset shell variable?); {model_choices()}", ctx, param)
    return value


def _default_model(ctx, param, value):
    """Without --model, the shipped demo model's own folder: a package folder named ``phantom`` in the working folder
    (``medseg train -o phantom``) is taken only when named."""
    if ctx.get_parameter_source(param.name) is click.core.ParameterSource.DEFAULT:
        from medseg.package import shipped_package_path

        return str(shipped_package_path(DEFAULT_MODEL))
    return given_model(ctx, param, value)


model_option = click.option(
    "-m", "--model", default=DEFAULT_MODEL, show_default=True, metavar="NAME|DIR", callback=_default_model,
    help="Shipped model name (see `medseg models`) or a model package folder.",
)

def device_form(ctx, param, value):
    """A malformed --device is a usage error (exit 2) before any input is looked at."""
    from medseg.errors import DeviceError

    try:
        from medseg.device import check_device_spec

        return check_device_spec(value)
    except DeviceError as error:
        raise click.BadParameter(str(error).split(": ", 1)[1]) from error


device_option = click.option(
    "--device", default="auto", show_default=True, metavar="auto|cpu|cuda[:N]|mps", callback=device_form,
    help="Compute device. auto: the first CUDA GPU, else Apple MPS, else the CPU. The device used is always reported; "
         "a missing device is an error, never a fallback.",
)
precision_option = click.option(
    "--precision", default="auto", show_default=True, type=click.Choice(["auto", "fp32", "bf16", "fp16"]),
    help="Autocast precision. auto: fp16 on CUDA, fp32 on the CPU and MPS; fp16 needs CUDA; bf16 is opt-in (slower "
         "than fp32 where the hardware emulates it).",
)
batch_option = click.option(
    "--batch-size", default=DEFAULT_BATCH_SIZE, show_default=True, type=click.IntRange(1),
    help="Tiles per forward pass.",
)
overwrite_option = click.option("--overwrite", is_flag=True, help="Replace outputs that exist already.")
threads_option = click.option(
    "--threads", type=click.IntRange(1), default=None,
    help="CPU threads for torch (default: torch's own choice, at most a cgroup's CPU quota). Results do not depend "
         "on it; where others' work keeps every CPU busy, 1 may be faster (worth a try).",
)
series_option = click.option(
    "--series", default=None, metavar="KEY|NUMBER|UID",
    help="One DICOM folder as the input: which series to use, as a key from `medseg inspect` (3, 3-2, #1: "
         "quoted in a shell, '#1'), a SeriesNumber or a SeriesInstanceUID (default: the only series that "
         "qualifies; where several do, the run asks for this).",
)


# the library's settings (keyword arguments, a training config's keys) that each command gives as options: the
# library's messages name these while the command runs (medseg.settings_named), a Python caller's the arguments ("pass
# overwrite=True"); a setting a command has no option for is never named as another command's option
_SEGMENTING = {"device": "--device", "precision": "--precision", "batch_size": "--batch-size", "overlap": "--overlap",
               "threads": "--threads", "package": "-m"}
COMMAND_OPTIONS: dict[str, dict[str, str]] = {
    "infer": {**_SEGMENTING, "overwrite": "--overwrite", "series": "--series", "out_dir": "-o",
              "output_format": "--format", "reference": "--reference"},
    "train": {"overwrite": "--overwrite", "resume": "--resume", "device": "--device", "threads": "--threads",
              "out_dir": "-o", "config": "-c", "images_dir": "--images", "labels_dir": "--labels", "epochs": "--epochs",
              "steps_per_epoch": "--steps-per-epoch", "seed": "--seed", "fold": "--fold"},
    "evaluate": {"overwrite": "--overwrite", "package": "--model", "images_dir": "--images", "case_id": "--case-id",
                 "ct_window": "--ct-window"},
    "report": {"overwrite": "--overwrite", "max_overlays": "--max-overlays", "sheet": "--sheet",
               "dice_threshold": "--dice-threshold", "outlier_z": "--outlier-z", "ct_window": "--ct-window"},
    "convert": {"overwrite": "--overwrite", "series": "--series", "sidecar": "--sidecar"},
    "inspect": {"series": "--series"},
    "verify": {"input_path": "--input", "model": "--model", "rerun": "--rerun", "device": "--device",
               "threads": "--threads"},
    "synth": {"overwrite": "--overwrite", "seed": "--seed"},
    "models": {},
    "cohort infer": dict(_SEGMENTING),
    "cohort evaluate": {"threads": "--threads"},
    "cohort check": {},
}
# each command's options that give no setting a library message names (the form of its output, what it writes besides,
# a workflow job's bookkeeping): with COMMAND_OPTIONS they are every option of the command, each in one of the two
# (tests/test_settings_named.py), so that a new option is placed where messages name it or said to be the command's own
_JOB_OPTIONS = ("-o", "--case", "--memory-mb", "--final-memory-mb", "--attempt", "--time-limit", "--record", "--redo",
                "--in-run", "--job-log", "--stop-file", "--in-workflow")
COMMAND_ONLY: dict[str, tuple[str, ...]] = {
    "infer": (), "train": (), "convert": (), "verify": (),
    "evaluate": ("-o", "--output-dir", "--json"),  # the library is given -o as typed (given_as)
    "report": ("-o", "--output-dir", "--in-workflow"),
    "inspect": ("--json",),
    "synth": ("--label", "--shape", "--axis-aligned"),
    "models": ("--json",),
    "cohort infer": (*_JOB_OPTIONS, "--planned-sha256"),
    "cohort evaluate": _JOB_OPTIONS,
    "cohort check": ("--fail-on", "--record"),
}
# where a user gives a setting its command has no option for: a cohort step's in the sample sheet or the workflow
# config; the report of `medseg evaluate`'s two folders is built again by `medseg report`, which has the option
_SHEET = {"series": "the sample sheet's series column", "reference": "the sample sheet's reference column"}
ELSEWHERE: dict[str, dict[str, str]] = {
    "cohort infer": _SHEET, "cohort evaluate": {**_SHEET, "package": "model: {value} in the workflow config"},
    "evaluate": {"max_overlays": "`medseg report` of the output folder with --max-overlays {value} --overwrite"}}
# a cohort step run as a job of the workflow (--in-workflow, which the Snakefile gives): its user set these in the
# workflow config (or --config KEY=VALUE), or the rule's threads on Snakemake's command line, never the step's options
_CONFIG = "{key}: {{value}} in the workflow config"
IN_WORKFLOW: dict[str, dict[str, str]] = {
    "cohort infer": {**{name: _CONFIG.format(key=name) for name in ("device", "precision", "batch_size", "overlap",
                                                                    "threads")},
                     "package": _CONFIG.format(key="model")},
    "cohort evaluate": {"threads": "Snakemake's --set-threads evaluate={value}"},
    # the report rule's `medseg report` (its page's "no overlay: none drawn (max_overlays: 0 in the workflow config)")
    "report": {name: _CONFIG.format(key=name) for name in ("dice_threshold", "max_overlays", "ct_window")},
}
# each setting as an option, whichever command has it
OPTION_NAMES = {name: option for names in COMMAND_OPTIONS.values() for name, option in names.items()}


def name_options(ctx: click.Context, command: str, in_workflow: bool = False) -> None:
    """The library's messages name the options of ``command`` (``cohort infer``) until ``ctx`` closes, the command
    that runs within it then ended (:data:`COMMAND_OPTIONS`); ``in_workflow``: a cohort step run as a job of the
    workflow, whose messages name the workflow's settings in place of the step's options (:data:`IN_WORKFLOW`)."""
    from medseg.settings_named import named_as

    config = IN_WORKFLOW.get(command, {}) if in_workflow else {}
    options = {name: option for name, option in COMMAND_OPTIONS.get(command, {}).items() if name not in config}
    ctx.with_resource(named_as(options, command, {**ELSEWHERE.get(command, {}), **config}))


def stopped_by(stop: BaseException) -> str:
    """How a stop's own line names its signal: " by SIGTERM" (a time limit, scancel or kill) or " by SIGHUP" (the
    terminal or ssh session closed), so that a batch job's log tells a scheduler's stop from a Ctrl-C, which is
    named by nothing ("")."""
    return {143: " by SIGTERM", 129: " by SIGHUP"}.get(getattr(stop, "code", None), "")


def output_columns() -> int | None:
    """The columns standard output's lines should fit: ``COLUMNS`` where it is set (a positive number), else the
    terminal's width where standard output is a terminal; None where it is piped or redirected (no limit: a listing
    keeps one line per row for ``grep`` and ``awk``)."""
    import sys

    given = os.environ.get("COLUMNS", "").strip()
    if given.isdigit() and int(given) > 0:
        return int(given)
    stream = sys.stdout
    try:
        if stream is None or not stream.isatty():
            return None
    except (AttributeError, ValueError):  # a stream without isatty, or closed
        return None
    try:  # standard output's own terminal (shutil asks sys.__stdout__'s, which a caller may have replaced)
        return os.get_terminal_size(stream.fileno()).columns or 80
    except (AttributeError, ValueError, OSError):  # a terminal that gives no size (a pty never sized): 80
        return 80


def error_line(message: object) -> str:
    """``medseg: error: <message>`` as one line (:func:`escaped_line`), so that each error stays one plain line of
    the log, as the others are."""
    return f"medseg: error: {escaped_line(str(message))}"


ARGS_KEY = "medseg.args"  # the arguments medseg's command line was given, in the click context's meta


def invocation() -> dict:
    """This run's command line, as medseg received it, and the folder it ran in, for sidecars: a result's own
    record of what made it (relative paths in it are relative to ``cwd``)."""
    return {"argv": ["medseg", *click.get_current_context().meta.get(ARGS_KEY, [])], "cwd": os.getcwd()}


def typed_option(*names: str) -> str:
    """How the command line named the option of the parameter ``names`` (``output``; ``output``, ``output_dir`` for
    a value that either gives): the last of its names typed (``--output``, ``-o``, ``--output=x``, ``-ox``), as click
    keeps the last value, so that a message about the value names the option the user wrote (it said ``-o`` to a
    user who had typed ``--output``). Where the command line is not at hand, all of the first one's names
    (``-o/--output``)."""
    ctx = click.get_current_context()
    params = [param for name in names for param in ctx.command.params if param.name == name]
    opts = [opt for param in params for opt in param.opts]
    args = ctx.meta.get(ARGS_KEY)
    typed = None
    for arg in args or ():
        if arg == "--":  # the rest are arguments
            break
        name = arg.split("=", 1)[0] if arg.startswith("--") else arg[:2]
        if name in opts:
            typed = name
    return typed or "/".join(params[0].opts if params else names)


def quiet(ctx: click.Context | None = None) -> bool:
    ctx = ctx or click.get_current_context()
    root = ctx.find_root()
    return bool(root.obj and root.obj.get("quiet"))


def output_dir_option(default_name: str):
    """``--output-dir DIR``: the folder ``-o`` may name, named as a folder whether or not it exists yet or ends in
    ``/`` (as ``infer`` and ``train`` take it); :func:`output_or_folder` joins it to ``-o``."""
    return click.option("--output-dir", "output_dir", default=None, metavar="DIR",
                        help=f"As -o DIR/: a folder, made if missing, for {default_name} (not with -o).")


def output_or_folder(output: str | None, output_dir: str | None) -> str | None:
    """The ``-o`` value of a command that also takes ``--output-dir`` (:func:`output_dir_option`): the folder, written
    with a trailing ``/`` so that :func:`file_output` takes it for one (``--output-dir scores`` was refused as a file
    name without .json, under the name -o). Both given is a usage error (click kept the last in silence)."""
    if output_dir is None:
        return output
    if output is not None:
        raise click.UsageError(f"{typed_option('output')} {output} and --output-dir {output_dir}: give one of them")
    if not output_dir:
        raise click.UsageError("--output-dir: an empty path (an unset shell variable?)")
    return output_dir if output_dir.endswith((os.sep, "/")) else output_dir + os.sep


def file_output(option: str, value: str | None, default_name: str, suffixes: tuple[str, ...]) -> Path | None:
    """An ``-o`` value naming one file: a folder (existing, or written with a trailing ``/``) gets
    ``default_name`` inside it; a name without one of ``suffixes`` is a usage error (``-o cohort.tsv`` would
    otherwise become the HTML page, or a metrics file a sidecar). ``option``: the option as typed
    (:func:`typed_option`), for the messages."""
    if value is None:
        return None
    if not value:  # Path("") is the current folder: an unset shell variable wrote the outputs there
        raise click.UsageError(f"{option}: an empty path (an unset shell variable?)")
    path = Path(value)
    if value.endswith((os.sep, "/")) or os.path.isdir(path):  # Path.is_dir: a traceback for a folder out of reach
        path = path / default_name
    elif not path.name.lower().endswith(suffixes):
        raise click.UsageError(f"{option} {value}: give a file name ending in {' or '.join(suffixes)}, or a folder "
                               f"(then {default_name} is written in it; a new folder's name ends with /)")
    refuse_blocked_folder(option, value, path.parent)
    return path


def refuse_blocked_folder(option: str, value: str, folder: Path | str) -> None:
    """A usage error (exit 2, before any work) where ``folder``, the output folder of ``-o value``, cannot be made:
    a file in its place or above it, a link on its way that leads nowhere or loops, or a folder on its way whose files
    this user may not reach (:func:`~medseg.io.files.blocked_folder`), or a folder name on its way longer than the
    file system allows. Found when the outputs were written, it was
    exit 1 after the work (infer segmented each input, then refused its outputs), and an input's problem's exit code;
    infer, evaluate, report and train say it alike. ``option``: as typed (:func:`typed_option`)."""
    from medseg.io.atomic import MAX_NAME_BYTES
    from medseg.io.files import blocked_folder

    for part in Path(folder).parts:  # looking at it raised "File name too long" where the check was not made first
        size = len(os.fsencode(part))
        if size > MAX_NAME_BYTES:
            raise click.UsageError(f"{option} {value}: the folder name {part[:24]}… is too long ({size} bytes, at "
                                   f"most {MAX_NAME_BYTES}); shorten the output folder's name")
    if os.path.isdir(folder):
        return
    blocked = blocked_folder(folder)
    if blocked is None:
        return
    if blocked.endswith("a file, not a folder"):
        fix = "give a folder for the outputs"
    elif blocked.endswith("(permission denied)"):
        fix = "give a folder this user may write to"
    else:
        fix = "restore its target or remove the link, or give another folder for the outputs"
    raise click.UsageError(f"{option} {value}: {blocked}; {fix}")


@contextlib.contextmanager
def usage_errors():
    """The library's errors that mean the command line itself is wrong (a --model that did not make the
    prediction, inputs whose outputs clash) as click usage errors: one line, exit 2."""
    from medseg.errors import ConflictingInputsError, ModelMismatchError

    try:
        yield
    except (ConflictingInputsError, ModelMismatchError) as error:
        raise click.UsageError(str(error)) from error


def ct_window_option(function):
    """``--ct-window``: the window the report's overlays draw a CT in (Hounsfield units), for ``medseg report`` and
    ``medseg evaluate``'s report of two folders; None where not given (the model's, else soft-tissue)."""
    from medseg.report.overlay_image import CT_WINDOWS_HU, DEFAULT_CT_WINDOW

    return click.option(
        "--ct-window", type=click.Choice(list(CT_WINDOWS_HU)), default=None,
        help="The window a CT in Hounsfield units is drawn in on the report's overlays: soft-tissue W400 L40, bone "
             "W1800 L400, lung W1500 L-600, brain W80 L40 (an MR keeps its crop's percentiles; an image not taken "
             "for a CT is named in a warning). Default: the window the case's model declares (model.json "
             f"report.ct_window), else {DEFAULT_CT_WINDOW}.")(function)
