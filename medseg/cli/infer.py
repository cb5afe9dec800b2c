"""`medseg infer`: segment inputs with a model package."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import click

from medseg.cli.options import (
    FiniteFloatRange,
    GivenPath,
    batch_option,
    device_option,
    error_line,
    escaped_line,
    model_option,
    overwrite_option,
    precision_option,
    quiet,
    series_option,
    threads_option,
)


@click.command("infer")
# not readable=True: the reader names an unreadable input (or reference) and the rest of the batch goes on
@click.argument("inputs", nargs=-1, required=True, type=GivenPath(readable=False, path_type=Path))
@model_option
@click.option("-o", "--output-dir", type=GivenPath(file_okay=False, path_type=Path), default=None,
              help="Folder for outputs (default: beside each input).")
@click.option("--reference", "references", multiple=True, type=GivenPath(readable=False, path_type=Path),
              help="Reference label image (NIfTI, or a DICOM SEG of a DICOM input); score the result (give one "
              "per input, in order).")
@device_option
@precision_option
@batch_option
@click.option("--overlap", type=FiniteFloatRange(0, 0.95), default=None, help="Tile overlap (default: the model's).")
@series_option
@threads_option
@click.option("--format", "output_format", type=click.Choice(["nifti", "dicom-seg"]), default="nifti",
              show_default=True, help="Segmentation file: NIfTI on the input grid, or (DICOM inputs) a DICOM SEG "
              "referencing the source series, written as <stem>_seg.dcm.")
@overwrite_option
def infer(inputs, model, output_dir, references, device, precision, batch_size, overlap, series, threads,
          output_format, overwrite):
    """Segment NIfTI files or DICOM series folders.

    Writes <stem>_seg.nii.gz (uint8 labels, uint16 beyond 255, on the input's exact grid) and <stem>_seg.json
    (labels, model, hashes, versions, device, timings), and with --reference <stem>_metrics.json (Dice, HD95, ASSD,
    volumes per label). The model is loaded once for all inputs; a failing input is
    reported and the others carry on (exit code 1 if any failed).

    \b
    $ medseg infer scan.nii.gz
    $ medseg infer case1.nii.gz case2.nii.gz -o out --model hippocampus --device cuda   # on a GPU
    $ medseg infer dicom/study --series 3 --format dicom-seg
    """
    if references and len(references) != len(inputs):  # usage errors before torch is imported (seconds)
        raise click.UsageError(f"--reference was given {len(references)} time(s) for {len(inputs)} input(s); give "
                               "one per input, in the inputs' order")
    if series is not None and len(inputs) > 1:
        raise click.UsageError("--series applies to one DICOM folder at a time")
    from medseg.errors import DeviceError, MedsegError
    from medseg.inference import Segmenter
    from medseg.io.atomic import placed_before_stop
    from medseg.io.dicom_series import series_text
    from medseg.numbers import dice_round_text
    from medseg.package import load_package, shipped_name_taken
    from medseg.segment import segment_case

    # outputs that clash with each other or with an input (usage errors), before the model loads
    _check_outputs(inputs, output_dir, bool(references), output_format, True, references)
    if len(inputs) == 1:  # nothing else to do: a missing file, or options for a folder, before the model loads
        _check_exists(inputs[0], references[0] if references else None)
        _check_dicom_options(inputs[0], series, output_format)
    silent = quiet()
    from medseg.resources import set_threads

    set_threads(threads)  # --threads, or no more than a cgroup's CPU quota allows
    # the model and the device before existing outputs: a mistyped --model is named, not hidden behind "exists
    # already" (which pushed towards --overwrite); the outputs are still checked before any input is read
    defaulted = click.get_current_context().get_parameter_source("model") is click.core.ParameterSource.DEFAULT
    package = load_package(model)  # without --model, the shipped demo model's folder (model_option)
    segmenter = Segmenter(package, device=device, precision=precision, batch_size=batch_size, overlap=overlap)
    if not overwrite:
        _check_outputs(inputs, output_dir, bool(references), output_format, overwrite, references)
    if not silent:
        click.echo(f"model {package.name} ({package.sha256[:12]}) on {segmenter.device_choice}, "
                   f"precision {segmenter.precision}", err=True)
        if defaulted:
            click.echo(f"note: no --model given: {package.name} is the shipped demo model (synthetic shapes only); "
                       "name yours with --model (`medseg models` lists the shipped ones)", err=True)
        taken = shipped_name_taken(package, model)
        if taken is not None:
            click.echo(escaped_line(f"warning: {taken}"), err=True)
    failures = 0
    for index, path in enumerate(inputs):
        reference = references[index] if references else None
        try:
            with _ProgressFactory(path, silent) as progress:
                outputs = segment_case(path, segmenter, out_dir=output_dir, overwrite=overwrite, series=series,
                                       reference=reference, progress=progress, output_format=output_format)
        except KeyboardInterrupt as stop:  # Ctrl-C or SIGTERM: what is done stands (each case's outputs are whole)
            if len(inputs) > 1:
                failed = f" ({failures} failed)" if failures else ""
                # a stop held while this case's outputs were placed acts once they are all in place: it is done
                placed = bool(placed_before_stop(stop))
                done, where = index + placed, "after" if placed else "at"
                click.echo(escaped_line(f"medseg: stopped {where} {path}: {done} of {len(inputs)} inputs done"
                                        f"{failed}, {len(inputs) - done} not written"), err=True)
                stop.told = True
            raise
        except MedsegError as error:
            if len(inputs) == 1:
                raise
            failures += 1
            click.echo(error_line(error), err=True)
            continue
        except (RuntimeError, MemoryError) as error:  # an unexpected failure on one case must not stop the batch
            # one line (out of memory, a torch or MONAI refusal); where in the code it came from at -vv
            logging.getLogger("medseg").debug("%s: inference failed", path, exc_info=True)
            if len(inputs) == 1:
                raise DeviceError(f"{path}: inference failed ({error})") from error
            failures += 1
            click.echo(error_line(f"{path}: inference failed ({error})"), err=True)
            continue
        except Exception as error:  # a bug met by one case: report it, go on with the others
            if len(inputs) == 1:
                raise
            logging.getLogger("medseg").debug("%s failed", path, exc_info=True)
            failures += 1
            click.echo(error_line(f"{path}: unexpected failure ({type(error).__name__}: {error}); run it alone for "
                                  "the traceback"), err=True)
            continue
        if not silent:
            timing = outputs.record.get("timings_s", {})
            info = outputs.record.get("input_info") or {}
            used = f" ({series_text(info)})" if info.get("series_key") else ""
            written = outputs.segmentation if output_dir is not None else _as_typed(outputs.segmentation, path)
            # a training image's Dice says little about new data: the line says so where the package can tell
            trained = "; one of the model's training images" if outputs.record.get("in_training_set") else ""
            click.echo(escaped_line(f"{path}{used} -> {written} ({sum(timing.values()):.1f} s{trained})"))
            if outputs.record.get("metrics"):
                for label in outputs.record["metrics"]["labels"].values():
                    dice = label["dice"]
                    shown = "n/a (both empty)" if dice is None or (isinstance(dice, float) and math.isnan(dice)) \
                        else dice_round_text(dice)
                    click.echo(f"  Dice {label['name']}: {shown}")
    if failures:
        click.echo(f"medseg: {failures} of {len(inputs)} inputs failed", err=True)
        return 1
    return 0


def _as_typed(output: Path, input_path: Path | str) -> Path:
    """An output written beside its input, named through the input's folder as it was typed (``scans/a_seg.nii.gz``
    for ``scans/a.nii.gz``), where that folder is the one written in; otherwise (a ``..`` after a link, which the
    kernel and a shell may resolve differently) its full path."""
    import os

    folder = Path(input_path).parent
    if ".." in folder.parts:
        return output
    try:
        same = os.path.samefile(folder, output.parent)
    except OSError:
        return output
    return folder / output.name if same else output


def _check_outputs(inputs, output_dir, scored: bool, output_format: str, overwrite: bool, references=()) -> None:
    """Before any input is read: two inputs that would write the same names (a/scan.nii.gz, b/scan.nii.gz into one
    folder) and an output that would replace an input or a reference (scan.nii.gz beside scan_seg.nii.gz, both
    given) are usage errors, and (unless ``overwrite``) existing outputs of any input need --overwrite. Called
    with ``overwrite`` True before the model loads (the usage errors), then without it after (the model and device
    are named before "exists already")."""
    from medseg.errors import OutputExistsError, OutputWriteError
    from medseg.io.atomic import check_writable
    from medseg.segment import case_targets, superseded_outputs

    given = {_real(p): Path(p) for p in [*inputs, *references]}
    seen: dict[Path, Path] = {}
    existing: list[Path] = []
    removed: list[Path] = []
    orphans: list[Path] = []
    having = 0  # inputs with outputs
    for path in inputs:
        targets = case_targets(path, output_dir, scored, output_format)
        for target in targets:
            if _real(target) in given:
                what = "the reference" if _real(target) in {_real(r) for r in references} else "the input"
                raise click.UsageError(f"{path}: its output {target} would replace {what} "
                                       f"{given[_real(target)]}; write the outputs elsewhere (-o)")
        segmentation = _real(targets[0])
        if segmentation in seen:
            if _real(seen[segmentation]) == _real(path):
                raise click.UsageError(f"{path} is given twice; give each input once")
            if _one_image(seen[segmentation], path):
                raise click.UsageError(f"{seen[segmentation]} and {path} are the two files of one image; give it once")
            raise click.UsageError(f"{seen[segmentation]} and {path} would both be written to {segmentation.name} in "
                                   f"{segmentation.parent}; segment them into different folders (-o)")
        seen[segmentation] = path
        try:
            check_writable(targets, overwrite=True)  # names the file system cannot hold, folders in the way
        except OutputWriteError:
            if len(inputs) == 1:
                raise
            continue  # that input's own fault: it is refused in its turn, and the others carry on
        if not overwrite:  # the other format's segmentation or unscored metrics of an earlier run would go too
            earlier = superseded_outputs(path, output_dir, scored, output_format, keep=given)
            present = [t for t in targets if t.exists()] + [t for t in earlier if t.exists() or t.is_symlink()]
            # a segmentation without its sidecar: a run killed outright between placing the two
            alone = [targets[0]] if targets[0].exists() and not targets[1].exists() else []
            if output_dir is None:  # named as the success line names them: through the input's folder as typed
                present = [_as_typed(t, path) for t in present]
                earlier = [_as_typed(t, path) for t in earlier]
                alone = [_as_typed(t, path) for t in alone]
            orphans += alone
            existing += present
            removed += earlier
            having += bool(present)
    if existing:
        others = [t.name + (" (an earlier run's, which this run would remove)" if t in removed else "")
                  for t in existing[1:]]
        if len(others) > 3:
            others = others[:3] + [f"{len(others) - 3} more"]
        more = ""
        if others:
            listed = others[0] if len(others) == 1 else f"{', '.join(others[:-1])} and {others[-1]}"
            more = f"; {listed} exist{'s' if len(others) == 1 else ''} too"
        what = ("output of an earlier run exists, which this run would remove" if existing[0] in removed
                else "output exists already, without its sidecar (a run stopped outright before it finished leaves "
                     "it so)" if existing[0] in orphans else "output exists already")
        whole = ""
        if len(inputs) > 1:  # the check is made for all inputs before any is read: say that none was
            whole = f" (nothing was segmented: {having} of {len(inputs)} inputs have outputs)"
        raise OutputExistsError(f"{existing[0]}: {what}; pass --overwrite to replace it{more}{whole}")


def _real(path) -> Path:
    """``path`` with links followed as far as they lead (``Path.resolve`` raises on a loop of links in Python 3.11;
    such an input is named when its turn comes)."""
    import os

    return Path(os.path.realpath(path))


def _one_image(first: Path, second: Path) -> bool:
    """Whether two inputs are the header and the image file of one ``.hdr``/``.img`` pair (both give it)."""
    from medseg.errors import MedsegError
    from medseg.io.nifti import files_read

    if Path(first).is_dir() or Path(second).is_dir():
        return False
    try:
        return {_real(p) for p in files_read(first)} == {_real(p) for p in files_read(second)}
    except (MedsegError, OSError):
        return False  # one that cannot be read is named when its turn comes


def _check_exists(path: Path, reference: Path | None) -> None:
    from medseg.errors import ImageReadError
    from medseg.io.files import exists, not_there
    from medseg.segment import check_reference_exists

    if not (exists(path) or path.is_symlink()):
        raise ImageReadError(f"{path}: {not_there(path)}")
    if reference is not None:
        check_reference_exists(reference, path)


def _check_dicom_options(path: Path, series: str | None, output_format: str) -> None:
    """The options that need a DICOM folder, refused for a file as reading it would refuse them (in a batch, each
    input is refused on its own and the others carry on)."""
    from medseg.errors import ImageReadError, InputError

    if path.is_dir():
        return
    if series is not None:
        raise ImageReadError(f"{path}: --series applies to DICOM folders only")
    if output_format == "dicom-seg":
        raise InputError(f"{path}: --format dicom-seg needs a DICOM series folder as input")


class _ProgressFactory:
    """A tqdm bar over slices on stderr when it is a terminal, created once the number of slices is known."""

    def __init__(self, path: Path, silent: bool) -> None:
        self.path = path
        self.silent = silent
        self.bar = None
        self.redirect = None

    def __enter__(self):
        return self

    def __call__(self, total: int):
        import sys

        if self.silent or not sys.stderr.isatty():  # a log file or cron mail gets the one line per case
            return None
        from tqdm import tqdm
        from tqdm.contrib.logging import logging_redirect_tqdm

        # log lines (-v) go above the bar instead of being glued to its end
        self.redirect = logging_redirect_tqdm()
        self.redirect.__enter__()
        self.bar = tqdm(total=total, desc=self.path.name, unit="slice", leave=False, dynamic_ncols=True)
        return self.bar.update

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.redirect is not None:
            self.redirect.__exit__(None, None, None)
