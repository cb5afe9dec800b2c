"""`medseg infer`: segment inputs with a model package."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import click

from medseg.cli.options import (
    FiniteFloatRange,
    GivenPath,
    batch_option,
    device_option,
    error_line,
    escaped_line,
    invocation,
    model_option,
    overwrite_option,
    precision_option,
    quiet,
    refuse_blocked_folder,
    series_option,
    stopped_by,
    threads_option,
    typed_option,
    usage_errors,
)

__all__ = ["infer"]


_HELP = """Segment NIfTI files (NRRD and MetaImage too, with the itk extra) or DICOM series folders.

Writes <stem>_seg.nii.gz (uint8 labels, uint16 beyond 255, on the input's exact grid) and <stem>_seg.json
(labels, model, hashes, versions, device, timings), and with --reference <stem>_metrics.json (Dice, HD95, ASSD,
volumes per label). A multi-modal model takes a 4D NIfTI of its modalities, or a case's nnU-Net channel files
given as case_0000.nii.gz (written as case_seg.nii.gz). The model is loaded once for all inputs; a failing input is
reported and the others carry on (exit code 1 if any failed), each failed input of a batch recorded in
<stem>_failed.json where its outputs would have gone, for medseg report to list (a later run that segments it
removes the record; a single input that fails writes nothing, nor, without -o, an input that is not there).

\b
$ medseg infer scan.nii.gz
# on a GPU:
$ medseg infer case1.nii.gz case2.nii.gz -o out --model hippocampus \\
    --device cuda
$ medseg infer dicom/study --series 3 --format dicom-seg
# 3D Slicer's NRRD (pip install 'medseg[itk]'):
$ medseg infer case.nrrd --reference case_label.seg.nrrd
"""


class _OutputFolder(GivenPath):
    """``-o``: a folder, kept as the command line typed it too (``ctx.meta[TYPED_OUTPUT]``), as a trailing / says
    that a folder is meant whatever its name (:func:`_output_folder`)."""

    def convert(self, value, param, ctx):
        if ctx is not None and isinstance(value, str):
            ctx.meta[TYPED_OUTPUT] = value
        return super().convert(value, param, ctx)


TYPED_OUTPUT = "medseg.infer.typed_output"


@click.command("infer", help=_HELP)
# not readable=True: the reader names an unreadable input (or reference) and the rest of the batch goes on
@click.argument("inputs", nargs=-1, required=True, type=GivenPath(readable=False, path_type=Path))
@model_option
@click.option("-o", "--output", "--output-dir", "output_dir", type=_OutputFolder(file_okay=False, path_type=Path),
              default=None, help="Folder for outputs, made if missing (default: beside each input).")
@click.option("--reference", "references", multiple=True, type=GivenPath(readable=False, path_type=Path),
              help="Reference label image (NIfTI, or a DICOM SEG: of a DICOM input, or of the series an input image "
              "was converted from, placed by its frames' own geometry); score the result (give one per input, in "
              "order; default: none, nothing scored).")
@device_option
@precision_option
@batch_option
@click.option("--overlap", type=FiniteFloatRange(0, 0.95), default=None,
              help="Overlap of neighbouring tiles, a fraction of the tile (default: the model's inference.overlap).")
@series_option
@threads_option
@click.option("--format", "output_format", type=click.Choice(["nifti", "dicom-seg"]), default="nifti",
              show_default=True, help="Segmentation file: NIfTI on the input grid, or (DICOM inputs) a DICOM SEG "
              "referencing the source series, written as <stem>_seg.dcm.")
@overwrite_option
def infer(inputs, model, output_dir, references, device, precision, batch_size, overlap, series, threads,
          output_format, overwrite):
    _refuse_split_path([str(path) for path in inputs])
    if references and len(references) != len(inputs):  # usage errors before torch is imported (seconds)
        given = "once" if len(references) == 1 else f"{len(references)} times"
        inputs_text = "1 input" if len(inputs) == 1 else f"{len(inputs)} inputs"
        raise click.UsageError(f"--reference was given {given} for {inputs_text}; give one per input, in the inputs' "
                               "order")
    if series is not None and len(inputs) > 1:
        raise click.UsageError("--series applies to one DICOM folder at a time")
    if output_dir is not None:
        _check_output_folder(click.get_current_context().meta.get(TYPED_OUTPUT, str(output_dir)), inputs[0],
                             output_format)
    from medseg.batch_outputs import (
        as_typed,
        check_batch_outputs,
        check_before_model,
        earlier_series_output,
        output_file_system,
        replaced_series,
    )
    from medseg.errors import DeviceError, MedsegError
    from medseg.io.atomic import placed_before_stop, results_unwritable
    from medseg.io.dicom_series import series_text
    from medseg.io.files import further_channels, unread_channels
    from medseg.numbers import counted
    from medseg.package import load_package, shipped_name_taken
    from medseg.segment import case_targets, segment_case

    # outputs that clash with each other or with an input (usage errors), before the model loads
    with usage_errors():
        check_batch_outputs(inputs, output_dir, bool(references), output_format, True, references)
    # what refuses an input without any model (a missing file, options for a folder, a series no DICOM SEG can be
    # made from), before the model loads: alone, the input's error; in a batch, told in its turn (the others go on),
    # and a batch of such inputs only loads no model
    refused: dict[str, MedsegError] = {}
    replacing: dict[str, str] = {}  # another series' segmentation that --overwrite replaces: told once it is
    for index, path in enumerate(inputs):
        try:
            replaced = check_before_model(path, references[index] if references else None, series, output_format,
                                          output_dir, overwrite)
            if replaced is not None:
                replacing[str(path)] = replaced
        except MedsegError as error:
            if len(inputs) == 1:
                raise
            refused[str(path)] = error
        except KeyboardInterrupt as stop:  # Ctrl-C or SIGTERM in a DICOM folder's scan (minutes for thousands of
            # files): told in one line, not click's bare "Aborted."; nothing is written before the model loads
            click.echo(escaped_line(_stopped_before_model(stop, path, index, len(inputs))), err=True)
            stop.told = True
            raise
    if refused and len(refused) == len(inputs):
        # no model loaded, but its case names all the same: case_0000 of a multi-modal model is case, whose outputs
        # placed later take case_failed.json away (a record case_0000_failed.json stayed beside them)
        modalities = _modalities_of(model, inputs)
        if modalities > 1:  # case_0000 and case both write case_*: a clash, as where the model loads (below)
            with usage_errors():
                check_batch_outputs(inputs, output_dir, bool(references), output_format, True, references, modalities)
        for index, (path, error) in enumerate(zip(inputs, refused.values())):
            click.echo(error_line(error), err=True)
            _record_failure(path, error, output_dir, references[index] if references else None, series,
                            output_format, overwrite, modalities)
        named = ", ".join(list(refused)[:3]) + (f" and {len(refused) - 3} more" if len(refused) > 3 else "")
        click.echo(escaped_line(f"medseg: {len(inputs)} of {counted(len(inputs), 'input')} failed ({named})"),
                   err=True)
        return 1
    silent = quiet()
    from medseg.segmenter_plan import SegmenterPlan

    # the model and the device before existing outputs: a mistyped --model is named, not hidden behind "exists
    # already" (which pushed towards --overwrite); the outputs are still checked before any input is read
    defaulted = click.get_current_context().get_parameter_source("model") is click.core.ParameterSource.DEFAULT
    try:  # the package's config and its weights' hash: a stop said only "Aborted."
        package = load_package(model)  # without --model, the shipped demo model's folder (model_option)
        _check_device(device, precision)
    except KeyboardInterrupt as stop:  # no input's outputs or failure record is written before the model loads
        click.echo(f"medseg: stopped{stopped_by(stop)} while the model was loaded: nothing was written", err=True)
        stop.told = True
        raise

    def loaded(segmenter) -> None:
        """Name the model and its device once it is loaded (after the first input that could be read)."""
        if silent:
            return
        click.echo(f"model {package.name} ({package.sha256[:12]}…) on {segmenter.device_choice}, "
                   f"precision {segmenter.precision}", err=True)
        if defaulted:
            click.echo(f"note: no --model given: {package.name} is the shipped demo model (synthetic shapes only); "
                       "name yours with --model (`medseg models` lists the shipped ones)", err=True)
        taken = shipped_name_taken(package, model)
        if taken is not None:
            click.echo(escaped_line(f"warning: {taken}"), err=True)

    # torch, MONAI and the weights (8 to 18 s on a busy machine) are loaded once the first input has been read: a
    # batch none of whose inputs can be read loads none of them
    segmenter = SegmenterPlan(package, device=device, precision=precision, batch_size=batch_size, overlap=overlap,
                              invocation=invocation(), threads=threads, on_ready=loaded)
    channels = further_channels(inputs)
    taken_as_channels = bool(channels) and package.n_modalities > 1 and not references
    if taken_as_channels:
        # nnU-Net's imagesTs given whole to a multi-modal model: each case is read from its _0000 file, its other
        # channel files beside it; given as inputs of their own, each was refused as one modality
        further = {Path(path) for path, _ in channels}
        inputs = [path for path in inputs if Path(path) not in further]
    if not overwrite or package.n_modalities > 1:
        # the clashes were refused above, but for a multi-modal model's names (case_0000 writes case_seg, as an input
        # case.nii.gz does); what is left is outputs that exist already
        with usage_errors():
            check_batch_outputs(inputs, output_dir, bool(references), output_format, overwrite, references,
                                package.n_modalities)
    if taken_as_channels:
        if not silent:
            first, zero = channels[0]
            click.echo(escaped_line(
                f"note: {len(channels)} input{'s are' if len(channels) > 1 else ' is'} further channel files of a "
                f"case given by its _0000 file ({first.name} of {zero.name}): each case is read from its _0000 file, "
                "with its channel files beside it"), err=True)
    elif not silent:
        if channels and package.n_modalities > 1:  # with --reference: each paired with its own, so each is refused
            first, zero = channels[0]
            are = "s are further channel files" if len(channels) > 1 else " is a further channel file"
            click.echo(escaped_line(
                f"warning: {len(channels)} input{are} of a case given by its _0000 file ({first.name} of "
                f"{zero.name}); each is refused, as model {package.name} reads a case's channel files beside its "
                "_0000 file: give only the _0000 files, each with its reference"), err=True)
        elif channels:  # nnU-Net's imagesTs of a multi-channel set, given whole: each channel segmented as a case
            first, zero = channels[0]
            click.echo(escaped_line(
                f"warning: {len(channels)} input{'s are' if len(channels) > 1 else ' is'} named as nnU-Net names a "
                f"case's further input channels ({first.name} beside {zero.name}); each is segmented as an image of "
                f"its own, as model {package.name} takes one image a case: give only the _0000 files to segment each "
                "case once"), err=True)
        unread = [] if package.n_modalities > 1 else unread_channels(inputs)
        if unread:  # case_0000 given alone: its case's other channels were left unread in silence
            zero, first = unread[0]
            click.echo(escaped_line(
                f"warning: {counted(len(unread), 'input')} {'are' if len(unread) > 1 else 'is'} the _0000 file of a "
                f"case of several channels as nnU-Net names them ({zero.name}, {first.name} beside it), and model "
                f"{package.name} takes one image a case: each is segmented from its _0000 file alone, its other "
                "channels unread"), err=True)
    failures = 0
    failed_inputs: list[Path] = []  # named on the batch's last line, as its error lines may have scrolled away

    def record(path: Path, reference: Path | None, error: BaseException, message: str | None = None) -> None:
        """A failed input of a batch gets its failure record; a single input's error line is its whole answer."""
        if len(inputs) > 1:
            _record_failure(path, error, output_dir, reference, series, output_format, overwrite,
                            package.n_modalities, message)

    full: dict[int, Path] = {}  # file systems that took no more outputs (full, over quota, read-only): their folder
    skipped = 0  # later inputs written on one of them, not segmented
    for index, path in enumerate(inputs):
        reference = references[index] if references else None
        if full and output_file_system(path, output_dir) in full:
            skipped += 1
            continue
        if str(path) in refused:  # refused before the model loaded
            failures += 1
            failed_inputs.append(path)
            click.echo(error_line(refused[str(path)]), err=True)
            record(path, reference, refused[str(path)])
            continue
        try:
            # a folder not checked before the model loaded (its scan not kept): the series an earlier run segmented
            # into its output names, to tell once its outputs are in place that --overwrite replaced another series'
            earlier = earlier_series_output(path, output_dir, output_format) \
                if overwrite and str(path) not in replacing and Path(path).is_dir() else None
            with _ProgressFactory(path, silent) as progress:
                outputs = segment_case(path, segmenter, out_dir=output_dir, overwrite=overwrite, series=series,
                                       reference=reference, progress=progress, output_format=output_format)
        except KeyboardInterrupt as stop:  # Ctrl-C or SIGTERM: what is done stands (each case's outputs are whole)
            if len(inputs) > 1:
                failed = f" ({failures} failed)" if failures else ""
                # a stop held while this case's outputs were placed acts once they are all in place: it is done
                placed = bool(placed_before_stop(stop))
                done, where = index + placed - skipped, "after" if placed else "at"
                by = stopped_by(stop)
                click.echo(escaped_line(f"medseg: stopped{by} {where} {path}: {done} of {len(inputs)} inputs done"
                                        f"{failed}, {len(inputs) - done} not written"), err=True)
                stop.told = True
            elif not placed_before_stop(stop):  # one input: named as a batch's is (its outputs placed: told "wrote")
                click.echo(escaped_line(f"medseg: stopped{stopped_by(stop)} at {path}: nothing was written"), err=True)
                stop.told = True
            raise
        except MedsegError as error:
            if len(inputs) == 1 or error is segmenter.error:  # the model or the device, not this input: every one's
                raise
            failures += 1
            failed_inputs.append(path)
            click.echo(error_line(error), err=True)
            if not results_unwritable(error):  # a folder that takes no outputs takes no record either
                record(path, reference, error)
            left = len(inputs) - index - 1
            if left and results_unwritable(error):
                # a full disk or quota, a read-only mount: every later input's outputs written on that file system
                # would be refused alike, each after its whole segmentation (minutes a case on a CPU); with -o that is
                # every input, beside the inputs every one in a folder on that file system
                device = output_file_system(path, output_dir)
                remaining = [output_file_system(p, output_dir) for p in inputs[index + 1:]]
                remaining = [d for d in remaining if d is None or d not in full]  # not skipped already
                later = [d for d in remaining if device is not None and d == device]
                folder = output_dir if output_dir is not None else as_typed(
                    case_targets(path, None, reference is not None, output_format)[0], path).parent
                if len(later) == len(remaining):
                    done = index + 1 - failures - skipped
                    click.echo(escaped_line(f"medseg: stopped after {path}: {folder} takes no more outputs; {done} of "
                                            f"{len(inputs)} inputs done, {failures} failed, {left + skipped} not "
                                            "segmented"), err=True)
                    return 1
                if later:  # the inputs in folders on other file systems go on
                    full[device] = folder
                    others = len(remaining) - len(later)
                    going = f"{others} on other file systems go on" if others > 1 else \
                        "1 on another file system goes on"
                    click.echo(escaped_line(f"medseg: {folder} takes no more outputs: {len(later)} later "
                                            f"input{'s' if len(later) > 1 else ''} written on its file system not "
                                            f"segmented; {going}"), err=True)
            continue
        except (RuntimeError, MemoryError) as error:  # an unexpected failure on one case must not stop the batch
            # one line (out of memory, a torch or MONAI refusal); where in the code it came from at -vv
            logging.getLogger("medseg").debug("%s: inference failed", path, exc_info=True)
            # Python's own MemoryError says nothing: the line read "inference failed ()"
            if error is segmenter.error:  # placing the network failed (torch's own error): every input's
                raise
            reason = str(error) or ("out of memory" if isinstance(error, MemoryError) else type(error).__name__)
            if len(inputs) == 1:
                raise DeviceError(f"{path}: inference failed ({reason})") from error
            failures += 1
            failed_inputs.append(path)
            click.echo(error_line(f"{path}: inference failed ({reason})"), err=True)
            record(path, reference, error, f"{path}: inference failed ({reason})")
            continue
        except Exception as error:  # a bug met by one case: report it, go on with the others
            if len(inputs) == 1 or error is segmenter.error:
                raise
            logging.getLogger("medseg").debug("%s failed", path, exc_info=True)
            failures += 1
            failed_inputs.append(path)
            line = f"{path}: unexpected failure ({type(error).__name__}: {error}); run it alone for the traceback"
            click.echo(error_line(line), err=True)
            record(path, reference, error, line)
            continue
        replaced = replacing.get(str(path)) or replaced_series(path, earlier, outputs.record.get("input_info"))
        if not silent and replaced:
            click.echo(escaped_line(f"warning: {replaced}"), err=True)
        if not silent:
            timing = outputs.record.get("timings_s", {})
            info = outputs.record.get("input_info") or {}
            used = f" ({series_text(info)})" if info.get("series_key") else ""
            written = outputs.segmentation if output_dir is not None else as_typed(outputs.segmentation, path)
            # a training image's Dice says little about new data: the line says so where the package can tell
            trained = "; one of the model's training images" if outputs.record.get("in_training_set") else ""
            click.echo(escaped_line(f"{path}{used} -> {written} ({sum(timing.values()):.1f} s{trained})"))
            if outputs.record.get("metrics"):
                for line in _dice_lines(outputs.record["metrics"]["labels"], outputs.metrics,
                                        outputs.record.get("labels_not_trained") or ()):
                    click.echo(line)
    if failures:
        unwritten = f", {skipped} not segmented (their outputs' file system took no more)" if skipped else ""
        named = ", ".join(str(path) for path in failed_inputs[:3])
        if len(failed_inputs) > 3:
            named += f" and {len(failed_inputs) - 3} more"
        click.echo(escaped_line(f"medseg: {failures} of {counted(len(inputs), 'input')} failed ({named}){unwritten}"),
                   err=True)
        return 1
    return 0


def _check_device(device: str, precision: str) -> None:
    """Refuse a device or precision this machine lacks (``--device cuda`` without CUDA, ``--precision fp16`` on a CPU)
    before any input is read, as every input's segmenting would meet it; ``auto``, ``cpu`` and a precision that is not
    fp16 are never refused, and are resolved only as the model loads (torch's import, over a second)."""
    if str(device).lower() in ("auto", "cpu") and str(precision).lower() != "fp16":
        return
    from medseg.device import resolve_device, resolve_precision

    resolve_precision(precision, resolve_device(device).device)


def _stopped_before_model(stop: KeyboardInterrupt, path: Path, index: int, total: int) -> str:
    """The one line of a run stopped (Ctrl-C, SIGTERM) while its inputs were checked before the model loaded: what
    was being read (a DICOM folder's headers: minutes for a study of thousands of files), how far the checks got, and
    that nothing was written (the checks write nothing; failure records come after them)."""
    by = stopped_by(stop)
    what = f"the DICOM folder {path} was scanned" if Path(path).is_dir() else f"{path} was checked"
    where = f" (input {index + 1} of {total})" if total > 1 else ""
    return f"medseg: stopped{by} while {what}{where}, before the model loaded: nothing was written"


def _modalities_of(model, inputs) -> int:
    """How many images a case gives ``model`` (the package's config only: no weights, no torch), which names a
    case's outputs and failure record (``case_0000`` is ``case`` for a model of several); 1 where no input is named
    as a case's first channel file (the count names nothing then) or the package cannot be read (its error is the
    next run's, which loads it)."""
    from medseg.errors import MedsegError
    from medseg.io.channels import case_name
    from medseg.package import load_package

    if not any(case_name(path, 2) is not None for path in inputs):
        return 1
    try:
        return load_package(model, check_hash=False, weights=False).n_modalities
    except MedsegError:
        return 1


def _record_failure(path: Path, error: BaseException, output_dir, reference, series, output_format: str,
                    overwrite: bool, modalities: int, message: str | None = None) -> None:
    """A failed input's failure record where its outputs would have gone
    (:func:`~medseg.failure_records.record_input_failure`), which ``medseg report`` lists; one that cannot be written
    is warned about, and the batch goes on. Without an output folder, an input that is not there (no file, folder
    or link: a typo, or a path with a space given unquoted, ``Übung 1/scan.nii.gz`` as two inputs) gets none: there
    is no folder of its own beside it, and a record would make one, or leave a file in the working folder that a
    later ``medseg report`` counts as a case; its error line says it."""
    import os

    from medseg.errors import MedsegError
    from medseg.failure_records import record_input_failure
    from medseg.io.files import os_reason

    if output_dir is None and not os.path.lexists(path):
        return
    try:
        record_input_failure(path, error, output_dir, reference, series, output_format, overwrite, modalities,
                             message)
    except (MedsegError, OSError) as problem:
        reason = str(problem) if isinstance(problem, MedsegError) else os_reason(problem)
        click.echo(escaped_line(f"warning: {path}: no failure record written ({reason})"), err=True)


def _refuse_split_path(inputs: list[str]) -> None:
    """A usage error where inputs that are not there, joined by spaces, name a path that is: a path with a space
    given without quotes (``medseg infer Übung 1/scan.nii.gz``), which was two missing inputs, or with --series,
    "--series applies to one DICOM folder at a time"."""
    import os

    from medseg.io.files import split_path

    split = split_path(inputs)
    if split is not None:
        words, joined = split
        # only the words that are not there (the first always): 1/scan.nii.gz may be a numbered folder's file too
        missing = [word for word in words if not os.path.lexists(word)]
        named = (f"{missing[0]} is" if len(missing) == 1 else
                 f"{', '.join(missing[:-1])} and {missing[-1]} are")
        raise click.UsageError(f"{named} not there, but {joined!r} is: give a path with spaces in quotes, "
                               f'"{joined}", as the shell makes one input of each word')


def _check_output_folder(typed: str, first_input: Path, output_format: str) -> None:
    """The -o folder as ``typed``, refused as a usage error where it is not there and named as an image or JSON file
    (``-o myseg.nii.gz``, a user naming the segmentation: a folder myseg.nii.gz was made, holding
    scan_seg.nii.gz); written with a trailing /, or there as a folder, it is the folder asked for. One under a file
    (``-o notes.txt/seg``), or through a link that leads nowhere or loops (``-o moved/seg``), is refused too: every
    input was segmented, then refused its outputs, one line each."""
    import os

    from medseg.volume import stem

    if not os.path.exists(typed):  # a file as -o is refused where the outputs are checked
        refuse_blocked_folder(typed_option("output_dir"), typed, typed)
    if not typed.endswith(("/", os.sep)) and not os.path.lexists(typed):
        # a folder name pasted with a space after it: shown by a file manager as the name without, which cd misses
        made = Path()
        for part in Path(typed).parts:
            made = made / part
            if not os.path.lexists(made) and part != part.strip(" \t"):
                raise click.UsageError(
                    f"{typed_option('output_dir')} {typed}: the folder name {part!r} begins or ends with a space "
                    f"(pasted?); name it without, or write {typed_option('output_dir')} \"{typed}/\" for a folder of "
                    "that name")  # quoted: copied as `-o Ergebnisse /`, the / is a second input
    name = os.path.basename(typed)
    if name and not os.path.lexists(typed) and (stem(name) != name or name.lower().endswith(".json")):
        ending = ".dcm" if output_format == "dicom-seg" else ".nii.gz"
        raise click.UsageError(
            f"{typed_option('output_dir')} {typed}: a folder for the outputs, which are named after each input "
            f"({first_input.name} writes {stem(first_input)}_seg{ending}); name a folder, or write {typed}/ for a "
            "folder of that name")


DICE_LINES_MAX = 10  # above this many labels a case's Dice is one line: 117 lines a case buried the batch's own


def _dice_lines(by_value: dict[str, dict], metrics_path: Path | None, never_learnt=()) -> list[str]:
    """A line per label's Dice (by label value, as the metrics JSON holds them), the labels ``never_learnt`` (the
    sidecar's ``labels_not_trained``: no training case held them) that are empty in both images on one line for all;
    for more than DICE_LINES_MAX labels one line: the mean and the lowest over the labels that have a Dice, the three
    lowest named, and where each label's Dice is (the metrics JSON)."""
    import math

    from medseg.numbers import dice_round_text, never_learnt_text, same_reason_groups

    def undefined(dice) -> bool:
        return dice is None or (isinstance(dice, float) and math.isnan(dice))

    labels = list(by_value.values())
    untrained = {str(value) for value in never_learnt}
    # a label no training case held (declared all the same) is empty in every case: a line each said so
    grouped = {value for value, label in by_value.items() if value in untrained and undefined(label["dice"])}
    expected = [by_value[value] for value in by_value if value in grouped]
    if len(labels) <= DICE_LINES_MAX:
        alone, together = same_reason_groups((label["name"], label["dice"], label.get("status"))
                                             for value, label in by_value.items() if value not in grouped)
        lines = [f"  Dice {name}: {text}" for name, text in alone]
        lines += [f"  Dice {', '.join(names)}: {text}" for names, text in together]  # the same reason once
        if expected:
            lines.append(f"  Dice {', '.join(label['name'] for label in expected)}: {never_learnt_text(len(expected))}")
        return lines
    scored = sorted((label for label in labels if not undefined(label["dice"])),
                    key=lambda label: label["dice"])
    parts = []
    if scored:
        mean = sum(label["dice"] for label in scored) / len(scored)
        lowest = ", ".join(f"{label['name']} {dice_round_text(label['dice'])}" for label in scored[:3])
        parts = [f"mean {dice_round_text(mean)}", f"lowest {lowest}"]
    if len(scored) < len(labels):
        parts.append(f"{len(labels) - len(scored)} n/a (both empty"
                     + (f"; {len(expected)} of them never learnt)" if expected else ")"))
    where = f"; each label's Dice in {metrics_path}" if metrics_path is not None else ""
    return [escaped_line(f"  Dice over {len(labels)} labels: {'; '.join(parts)}{where}")]


class _ProgressFactory:
    """A tqdm bar over slices on stderr when it is a terminal, created once the number of slices is known."""

    def __init__(self, path: Path, silent: bool) -> None:
        self.path = path
        self.silent = silent
        self.bar = None
        self.redirect = None
        self.ticker: threading.Thread | None = None

    def __enter__(self):
        return self

    def __call__(self, total: int):
        import sys

        # a log file or cron mail gets the one line per case; a program run with no stderr (pythonw) none
        if self.silent or sys.stderr is None or not sys.stderr.isatty():
            return None
        from tqdm import tqdm
        from tqdm.contrib.logging import logging_redirect_tqdm

        from medseg.settings_named import carried

        # log lines (-v) go above the bar instead of being glued to its end
        self.redirect = logging_redirect_tqdm()
        self.redirect.__enter__()
        # the name escaped as in every other line: a line break or an escape sequence in it would drive the terminal
        # "12/30 slices": tqdm's own form gave the count bare ("12/30"), the unit only in its rate
        self.bar = tqdm(total=total, desc=escaped_line(self.path.name), unit="slice", leave=False, dynamic_ncols=True,
                        bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} slices [{elapsed}<{remaining}, {rate_fmt}]")
        # tqdm redraws only on an update, which comes a forward pass of tiles at a time (seconds or more on a busy
        # CPU, for a large plane's tiles):
        # redrawn each second in between, its clock runs, where a frozen 00:00 read as a hang
        self.stopped = threading.Event()
        # in this command's context (its options' names), as every thread medseg starts (settings_named.carried)
        self.ticker = threading.Thread(target=carried(self._tick), name="medseg-progress", daemon=True)
        self.ticker.start()
        return self.bar.update

    def _tick(self) -> None:
        while not self.stopped.wait(1.0):
            self.bar.refresh()

    def __exit__(self, *exc) -> None:
        if self.ticker is not None:
            self.stopped.set()
            self.ticker.join()
        if self.bar is not None:
            self.bar.close()
        if self.redirect is not None:
            self.redirect.__exit__(None, None, None)
