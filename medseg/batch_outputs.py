"""The outputs a batch of ``medseg infer`` inputs will write, checked before any input is read.

Two inputs that would write the same files, an output that would replace an input or a reference, and (unless
overwriting) outputs that exist already are refused for the whole batch at once; options that need a DICOM folder
are refused for a file, as reading it would refuse them, and so is a DICOM file given as the input (one file of a
series, a SEG, a DICOMDIR), and a folder that is no DICOM study or whose series cannot be chosen.
:func:`check_before_model` gathers an input's checks that
need no model, so that an input they refuse costs no model load (a batch of such inputs loads none).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from medseg.errors import ConflictingInputsError, OutputExistsError
from medseg.settings_named import ANY, setting

if TYPE_CHECKING:
    from medseg.io.dicom_candidates import SeriesCandidate

__all__ = ["as_typed", "check_batch_outputs", "check_before_model", "check_dicom_file_input", "check_dicom_options",
           "check_folder_input", "check_input_exists", "check_series_output", "earlier_series_output",
           "output_file_system", "replaced_series"]


def as_typed(output: Path, input_path: Path | str) -> Path:
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


def output_file_system(input_path: Path | str, output_dir: Path | str | None) -> int | None:
    """The file system (its device number) an input's outputs are written on: that of their folder, or of the nearest
    folder above it that exists (where the missing ones will be made); None where none can be looked at. A batch whose
    outputs one file system refuses as a whole (full, over quota, read-only) segments no more inputs written there."""
    import os

    from medseg.segment import output_paths

    try:
        folder = Path(output_dir) if output_dir is not None else output_paths(input_path)[0].parent
        folder = Path(os.path.abspath(folder))
    except (OSError, ValueError):
        return None
    for candidate in (folder, *folder.parents):
        try:
            return os.stat(candidate).st_dev
        except (FileNotFoundError, NotADirectoryError):
            continue
        except (OSError, ValueError):  # no permission to look, a name the file system cannot hold
            return None
    return None


def check_batch_outputs(inputs, output_dir, scored: bool, output_format: str, overwrite: bool, references=(),
                        modalities: int = 1) -> None:
    """Before any input is read: two inputs that would write the same names (a/scan.nii.gz, b/scan.nii.gz into one
    folder) and an output that would replace an input or a reference (scan.nii.gz beside scan_seg.nii.gz, both
    given) are :class:`ConflictingInputsError`, as is a model given as an input (``-m`` forgotten), and (unless
    ``overwrite``) existing outputs of any input are an
    :class:`OutputExistsError` naming them. ``medseg infer`` calls it with ``overwrite`` True before the model loads
    (the clashes), then without it after (the model and device are named before "exists already"). ``modalities``:
    the model's; for several, nnU-Net's ``case_0000`` writes ``case_seg.nii.gz``
    (:func:`~medseg.io.channels.case_name`), which another input ``case.nii.gz`` would write too."""
    from medseg.errors import OutputWriteError
    from medseg.io.atomic import check_writable
    from medseg.io.channels import case_name
    from medseg.segment import case_targets, superseded_outputs

    inputs, references = [Path(p) for p in inputs], [Path(p) for p in references]  # an iterator is read once
    for path in inputs:
        _check_not_a_model(path)
        _check_not_a_segmentation(path)
    given = {_real(p): Path(p) for p in [*inputs, *references]}
    folded = {_folded(real): p for real, p in given.items()}
    seen: dict[tuple[Path, str], Path] = {}
    existing: list[Path] = []
    removed: list[Path] = []
    orphans: list[Path] = []
    having = 0  # inputs with outputs
    for path in inputs:
        targets = case_targets(path, output_dir, scored, output_format, case_name(path, modalities))
        for target in targets:
            replaced = given.get(_real(target))
            if replaced is None and _folded(_real(target)) in folded:  # spelt otherwise in letter case or accent
                other = folded[_folded(_real(target))]
                # one file only on a disk that holds the two spellings as one (macOS's, Windows's): on Linux's,
                # Scan_seg.nii.gz is written beside a reference SCAN_seg.nii.gz and replaces nothing
                replaced = other if _same_file(target, other) else None
            if replaced is not None:
                what = "the reference" if replaced in references else "the input"
                raise ConflictingInputsError(f"{path}: its output {target} would replace {what} "
                                             f"{replaced}; write the outputs elsewhere ({setting('out_dir', ANY)})")
        segmentation = _real(targets[0])
        key = _folded(segmentation)
        if key in seen:
            first = seen[key]
            if _real(first) == _real(path):
                raise ConflictingInputsError(f"{path} is given twice; give each input once")
            if _one_image(first, path):
                raise ConflictingInputsError(f"{first} and {path} are the two files of one image; give it once")
            _check_scene(first, path)
            names = _real(case_targets(first, output_dir, scored, output_format,
                                       case_name(first, modalities))[0]).name
            if names != segmentation.name:  # Scan_seg and scan_seg: one file on macOS's and Windows's disks
                from medseg.io.files import name_difference

                names = f"{names} and {segmentation.name}, names that differ only " \
                        f"{name_difference(names, segmentation.name)} (one file on a macOS or Windows disk),"
            raise ConflictingInputsError(f"{first} and {path} would both be written to {names} in "
                                         f"{segmentation.parent}; segment them into different folders "
                                         f"({setting('out_dir', ANY)})")
        seen[key] = path
        try:
            check_writable(targets, overwrite=True)  # names the file system cannot hold, folders in the way
        except OutputWriteError:
            if len(inputs) == 1:
                raise
            continue  # that input's own fault: it is refused in its turn, and the others carry on
        if not overwrite:  # the other format's segmentation or unscored metrics of an earlier run would go too
            earlier = superseded_outputs(path, output_dir, scored, output_format, case_name(path, modalities),
                                         keep=given)
            present = [t for t in targets if t.exists()] + [t for t in earlier if t.exists() or t.is_symlink()]
            # a segmentation without its sidecar: a run killed outright between placing the two
            alone = [targets[0]] if targets[0].exists() and not targets[1].exists() else []
            if output_dir is None:  # named as the success line names them: through the input's folder as typed
                present = [as_typed(t, path) for t in present]
                earlier = [as_typed(t, path) for t in earlier]
                alone = [as_typed(t, path) for t in alone]
            orphans += alone
            existing += present
            removed += earlier
            having += bool(present)
    # after the clashes: scene/* of a 3D Slicer scene saved with a detached segmentation (a.nrrd, a.seg.nhdr,
    # a.seg.raw.gz) is told that a.seg.nhdr is a segmentation, not to give that header alone
    _check_data_files_given(inputs)
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
            have = "has" if having == 1 else "have"
            whole = f" (nothing was segmented: {having} of {len(inputs)} inputs {have} outputs)"
        raise OutputExistsError(f"{existing[0]}: {what}; pass {setting('overwrite')} to replace it{more}{whole}")


def _check_not_a_model(path: Path) -> None:
    """A model given where an input goes (``medseg infer scan.nii.gz hippocampus``, ``-m`` forgotten) as a
    :class:`ConflictingInputsError`: a shipped model's name that is no file or folder here, or a model package folder.
    Told in its turn, the other inputs were segmented with the default demo model first, and a package folder was
    read as a DICOM study ("no DICOM images found")."""
    from medseg.package import CONFIG_NAME, shipped_models

    if os.path.lexists(path):
        if os.path.isdir(path) and os.path.isfile(path / CONFIG_NAME):  # (Path.is_dir raises on EACCES)
            raise ConflictingInputsError(f"{path}: a model package (it holds {CONFIG_NAME}), not an input: give a "
                                         f"model with {setting('package', ANY)} ({setting('package', str(path))})")
        return
    if len(path.parts) == 1 and path.name in shipped_models():
        raise ConflictingInputsError(f"{path}: no such file or folder, but the name of a shipped model: give a model "
                                     f"with {setting('package', ANY)} ({setting('package', path.name)})")


def _check_not_a_segmentation(path: Path) -> None:
    """A segmentation ``medseg infer`` wrote (its sidecar names it) given as an input, as a
    :class:`ConflictingInputsError`: ``medseg infer scans/*.nii.gz`` run again takes the earlier run's
    ``case_seg.nii.gz`` too. It was refused as an output replacing an input, advising ``-o``, with which each
    segmentation was segmented as an image (``case_seg_seg.nii.gz``)."""
    from medseg.errors import InputError
    from medseg.io.label_images import prediction_sidecar
    from medseg.scoring import read_made_by

    if not os.path.isfile(path):  # (Path.is_file raises where a folder on the way cannot be searched)
        return
    sidecar = prediction_sidecar(path)
    try:
        made_by = read_made_by(sidecar)
    except InputError:  # not medseg's record: the input is read, and a label image is warned about then
        return
    if made_by is not None and made_by.segmentation == path.name:
        raise ConflictingInputsError(f"{path}: a segmentation medseg infer wrote (its sidecar {sidecar.name} says "
                                     "so), not an image to segment: give the images alone (a wildcard such as "
                                     "*.nii.gz takes an earlier run's outputs too; to segment it all the same, give "
                                     "a copy of it without its sidecar)")


def _real(path) -> Path:
    """``path`` with links followed as far as they lead (``Path.resolve`` raises on a loop of links in Python 3.11;
    such an input is named when its turn comes)."""
    import os

    return Path(os.path.realpath(path))


def _folded(path: Path) -> tuple[Path, str]:
    """``path``'s folder and its name without letter case or Unicode composition: macOS's (APFS, HFS+) and Windows's
    disks hold ``Scan_seg.nii.gz`` and ``scan_seg.nii.gz``, or ``é`` as one character and as ``e`` and its accent,
    as one file."""
    import unicodedata

    return path.parent, unicodedata.normalize("NFC", path.name).casefold()


def _same_file(first: Path, second: Path) -> bool:
    """Whether ``first`` and ``second`` name one file that exists (on a macOS disk, ``Scan_seg.nii.gz`` and
    ``SCAN_seg.nii.gz``)."""
    import os

    try:
        return os.path.samefile(first, second)
    except OSError:  # one of them is not there: nothing is replaced
        return False


def _check_data_files_given(inputs: list[Path]) -> None:
    """A detached NRRD / MetaImage header (``.nhdr``, ``.mhd``) given with a data file it names (``scan.mhd
    scan.raw``, or a slice of a list of them, as ``dir/*`` gives them) is one image given twice:
    :class:`ConflictingInputsError` (the data file was read as an image of its own, and failed as "not a NIfTI
    image")."""
    from medseg.errors import ConflictingInputsError
    from medseg.io.itk_image import itk_files_read

    headers = [p for p in inputs if p.name.lower().endswith((".nhdr", ".mhd")) and not p.is_dir()]
    if not headers:
        return
    data: dict[Path, tuple[Path, int]] = {}  # a data file: its header, and how many data files that names
    for header in headers:
        files = itk_files_read(header)[1:]
        data.update((_real(d), (header, len(files))) for d in files)
    for path in inputs:
        header, count = data.get(_real(path), (None, 0))
        if header is None or _real(header) == _real(path):
            continue
        if count == 1:
            raise ConflictingInputsError(f"{header} and {path} are the two files of one image ({path.name} holds the "
                                         f"voxels {header.name} describes); give the header alone")
        # a list or pattern of data files (data file: LIST, slice%03d.raw 1 300 1): each holds a part
        raise ConflictingInputsError(f"{header} and {path} are files of one image ({path.name} holds part of the "
                                     f"voxels {header.name} describes, one of its {count} data files); give the "
                                     "header alone")


def _check_scene(first: Path, second: Path) -> None:
    """Two inputs of one case name, one of them 3D Slicer's segmentation (``case.nrrd`` and ``case.seg.nrrd``, as
    ``scene/*`` gives a saved scene): :class:`ConflictingInputsError` saying that the ``.seg.nrrd`` is no image to
    segment (it was "two inputs written to one name")."""
    from medseg.io.itk_image import is_slicer_segmentation

    if is_slicer_segmentation(first) == is_slicer_segmentation(second):
        return
    segmentation, image = (first, second) if is_slicer_segmentation(first) else (second, first)
    raise ConflictingInputsError(f"{segmentation} is a 3D Slicer segmentation (of {image.name}, given with it), not "
                                 f"an image to segment: give the images alone (a segmentation may be given as "
                                 f"{setting('reference', str(segmentation))})")


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


def check_input_exists(path: Path | str, reference: Path | str | None) -> None:
    """An input that is not there (a link to nothing counts as there: reading it names the problem), or a reference
    given for it that is not there, as an :class:`ImageReadError` naming it."""
    from medseg.errors import ImageReadError
    from medseg.io.files import exists, not_there
    from medseg.segment import check_reference_exists

    path = Path(path)
    if not (exists(path) or path.is_symlink()):
        raise ImageReadError(f"{path}: {not_there(path)}")
    if reference is not None:
        check_reference_exists(reference, path)


def check_dicom_options(path: Path | str, series: str | None, output_format: str) -> None:
    """The options that need a DICOM folder, refused for a file as reading it would refuse them (in a batch, each
    input is refused on its own and the others carry on)."""
    path = Path(path)
    from medseg.errors import ImageReadError, InputError

    if path.is_dir():
        return
    if series is not None:
        raise ImageReadError(f"{path}: {setting('series', ANY)} applies to DICOM folders only")
    if output_format == "dicom-seg":
        raise InputError(f"{path}: {setting('output_format', 'dicom-seg')} needs a DICOM series folder as input")


def check_dicom_file_input(path: Path | str) -> None:
    """A DICOM file given as the input (a file of a series, a DICOM SEG, a DICOMDIR, an SR or other non-image object:
    ``.dcm``, or the ``DICM`` marker under a name nibabel knows nothing of or under a NIfTI name) as the error reading
    it raises, which says what it is and what to give instead. Reading such a file fails before any voxel: nibabel
    takes no image type from such a name. A name nibabel reads by (``.mgh`` say) is left to its reading."""
    from medseg.io.files import is_dicom_file
    from medseg.io.nifti_files import dicom_named_as_nifti

    path = Path(path)
    if path.is_dir():
        return
    # a DICOM file renamed .nii.gz: nibabel's name, and still the DICOM file's line (its reading refuses it so)
    if (not is_dicom_file(path) or _nibabel_name(path)) and dicom_named_as_nifti(path) is None:
        return
    from medseg.io.images import read_image

    read_image(path)  # raises: the line it has for such a file


def _nibabel_name(path: Path) -> bool:
    """Whether ``path``'s name ends as one of nibabel's image types (compressed or not), which nibabel reads by."""
    from nibabel.imageclasses import all_image_classes

    name = path.name.lower()
    for compressed in (".gz", ".bz2", ".zst"):
        name = name.removesuffix(compressed)
    return any(name.endswith(ending) for image_class in all_image_classes for ending in image_class.valid_exts)


def check_folder_input(path: Path | str, series: str | None) -> SeriesCandidate | None:
    """A folder given as an input, read as one DICOM study, refused where reading it would refuse it from its files'
    headers (:func:`~medseg.io.dicom_series.held_series`): a folder holding no DICOM image (nnU-Net's ``imagesTs/``
    given as ``nnUNetv2_predict -i`` takes it, a folder of ``.mhd``/``.raw`` pairs; its error says to give its files,
    ``imagesTs/*.nii.gz``), several series and no ``series``, or a ``series`` that matches none. Each came after torch,
    MONAI and the model had loaded (8 to 18 s on a busy 2-core machine). The headers are read once: the scan is kept
    for the folder's reading. Returns the series chosen (None for a file, and for a folder whose scan could not be
    kept, with the scans of a batch's folders checked before it: its reading then reads its headers, once, and
    refuses it in its turn)."""
    folder = Path(path)
    if not folder.is_dir():
        return None
    from medseg.io.dicom_series import held_series

    return held_series(folder, series)


def check_series_output(path: Path | str, chosen: SeriesCandidate, output_dir: Path | str | None,
                        output_format: str, overwrite: bool) -> str | None:
    """Another series of the DICOM folder ``path`` segmented into this run's output names by an earlier run (its
    sidecar says so: ``medseg infer study --series 3 -o out``, then ``--series 4 -o out``, as a loop over a study's
    series does): an :class:`OutputExistsError` naming both series and how to keep both (a folder of its own for
    each), before the model loads; ``overwrite``: the earlier series is replaced, and the warning naming it is
    returned, to be told once this run's outputs are in place (a run that fails replaces nothing); else None. The same
    series segmented again, and a sidecar whose segmentation is gone, are left to the check of existing outputs
    (:func:`earlier_series_output`)."""
    earlier = earlier_series_output(path, output_dir, output_format)
    if earlier is None or _same_series(earlier[1], chosen):
        return None
    segmentation, info = earlier
    texts = _series_texts(info, chosen)
    if overwrite:  # told once this run's outputs are in place: a run that fails replaces nothing
        return _replaced_text(path, segmentation, *texts)
    own = setting("out_dir", str(segmentation.parent / f"series_{chosen.key}"))
    raise OutputExistsError(f"{segmentation}: holds {texts[0]} of {path}, segmented by an earlier run; this run's "
                            f"{texts[1]} would take its name: give each series its own output folder ({own}), or "
                            f"pass {setting('overwrite')} to replace it")


def earlier_series_output(path: Path | str, output_dir: Path | str | None,
                          output_format: str) -> tuple[Path, dict] | None:
    """The segmentation at this run's output names of the DICOM folder ``path`` and the ``input_info`` of the series
    its sidecar says an earlier run segmented from that folder; None where there is none (no sidecar, one that cannot
    be read, of another input or not of a DICOM series, or a sidecar whose segmentation is gone). A sidecar's
    "segmentation" that is no file name (edited: empty, a path) is read as the usual name."""
    from medseg.jsonfile import RESULT_BYTES, read_json_object
    from medseg.segment import case_targets

    segmentation, sidecar = case_targets(path, output_dir, False, output_format)[:2]
    try:
        record = read_json_object(sidecar, RESULT_BYTES, "a prediction sidecar")
    except (OSError, ValueError):  # none, or not readable: the check of existing outputs names it
        return None
    info = record.get("input_info")
    if record.get("schema") != "medseg-segmentation/1" or not isinstance(info, dict) or info.get("format") != "dicom" \
            or not isinstance(record.get("input"), str) or not info.get("series_key"):
        return None
    try:
        if os.path.realpath(record["input"]) != os.path.realpath(path):  # another folder's: an output that exists
            return None
    except ValueError:  # no path (a NUL in it: a damaged sidecar): no input of this run's
        return None
    named = record.get("segmentation")
    if isinstance(named, str) and named not in ("", ".", "..") and Path(named).name == named:
        segmentation = segmentation.with_name(named)  # the earlier run's own file (study_seg.dcm, say)
    if not os.path.lexists(segmentation):  # its sidecar alone: no other series' segmentation to replace
        return None
    return (as_typed(segmentation, path) if output_dir is None else segmentation), info


def replaced_series(path: Path | str, earlier: tuple[Path, dict] | None, info: dict | None) -> str | None:
    """The warning that ``--overwrite`` replaced ``earlier`` (:func:`earlier_series_output`, looked up before the
    input was segmented) with another series of the DICOM folder ``path``, the one this run read (its sidecar's
    ``input_info``); None where it is the same series, or nothing was replaced. A folder whose scan could not be kept
    before the model loaded (:func:`check_folder_input`) was not checked by :func:`check_series_output`, and its
    replacement was not told."""
    if earlier is None or not isinstance(info, dict) or not info.get("series_key"):
        return None
    chosen = _read_series(info)
    if _same_series(earlier[1], chosen):
        return None
    return _replaced_text(path, earlier[0], *_series_texts(earlier[1], chosen))


def _read_series(info: dict):
    """The series a sidecar's ``input_info`` records, as :func:`_same_series` compares a chosen candidate."""
    from types import SimpleNamespace

    key, uid, number = str(info["series_key"]), info.get("series_uid"), info.get("series_number")
    base = uid if uid and (key == uid or key.startswith(f"{uid}-")) else str(number)
    part = key[len(base) + 1:] if key.startswith(f"{base}-") else None
    return SimpleNamespace(key=key, number=number, uid=uid, description=info.get("description") or "",
                           part=part or None)


def _series_texts(info: dict, chosen) -> tuple[str, str]:
    """The earlier run's series (its ``input_info``) and this run's ``chosen`` as a line names them; by their UIDs
    too where their number and description are the same (a study exported again)."""
    from medseg.io.dicom_series import series_text

    earlier = series_text(info)
    this = series_text({"series_key": chosen.key, "series_number": chosen.number, "series_uid": chosen.uid,
                        "description": chosen.description})
    plain = earlier.split(", UID ")[0]
    if plain == this.split(", UID ")[0]:
        earlier, this = f"{plain}, UID {info.get('series_uid') or 'none'}", f"{plain}, UID {chosen.uid or 'none'}"
    return earlier, this


def _replaced_text(path: Path | str, segmentation: Path, earlier: str, this: str) -> str:
    return (f"{segmentation}: held {earlier} of {path}, segmented by an earlier run; {setting('overwrite')} replaced "
            f"it with {this}")


def _check_unscanned_series_output(path: Path | str, series: str, output_dir: Path | str | None,
                                   output_format: str) -> None:
    """A DICOM folder whose scan could not be kept before the model loads (:func:`check_folder_input`): where the
    segmentation at its output names holds a series of it that ``series`` cannot name (not its key, UID or number, so
    that the series read will be another), an :class:`OutputExistsError` naming that series and how to keep both, as
    :func:`check_series_output` refuses it; it was the plain "output exists already", whose ``--overwrite`` replaced
    the other series' segmentation. A ``series`` that may name it is left to the check of existing outputs."""
    from medseg.io.dicom_series import series_match, series_text

    wanted = str(series).strip()
    earlier = earlier_series_output(path, output_dir, output_format) if wanted and Path(path).is_dir() else None
    if earlier is None:
        return
    segmentation, info = earlier
    try:
        if series_match(wanted, str(info["series_key"]), info.get("series_uid"), info.get("series_number")) is not None:
            return
    except (TypeError, ValueError):  # an edited sidecar's series number: left to the check of existing outputs
        return
    own = setting("out_dir", str(segmentation.parent / f"series_{wanted}"))
    raise OutputExistsError(f"{segmentation}: holds {series_text(info)} of {path}, segmented by an earlier run; this "
                            f"run's {setting('series', wanted)} would take its name: give each series its own output "
                            f"folder ({own}), or pass {setting('overwrite')} to replace it")


def _check_unscanned_unnamed_series_output(path: Path | str, output_dir: Path | str | None,
                                           output_format: str) -> None:
    """A DICOM folder whose scan could not be kept before the model loads (:func:`check_folder_input`), given with no
    series, where the segmentation at its output names holds a series of it that an earlier run chose by name (its
    sidecar's ``selection``; a folder of several series, or one asked for): an :class:`OutputExistsError` naming that
    series and what to do, as :func:`check_series_output` refuses another series; it was the plain "output exists
    already", whose ``--overwrite`` scanned the folder (minutes for a whole study) and then replaced that series'
    segmentation with another's, or refused to choose one. A segmentation of the series chosen as the folder's only
    one is left to the check of existing outputs: this run most likely reads it again."""
    from medseg.io.dicom_series import series_text

    earlier = earlier_series_output(path, output_dir, output_format) if Path(path).is_dir() else None
    if earlier is None:
        return
    segmentation, info = earlier
    selection = info.get("selection")
    if not (isinstance(selection, str) and selection.startswith("chosen with ")):
        return
    own = setting("out_dir", str(segmentation.parent / "series_<key>"))
    chosen = selection.split(" (")[0]  # its positional key's note left out
    raise OutputExistsError(f"{segmentation}: holds {series_text(info)} of {path}, segmented by an earlier run "
                            f"({chosen}); this run names no series, and the one it reads, unless it is that one, would "
                            f"take its name: choose it with {setting('series', ANY)} and give each series its own "
                            f"output folder ({own}), or pass {setting('overwrite')} to replace it")


def _same_series(info: dict, chosen: SeriesCandidate) -> bool:
    """Whether the series a sidecar's ``input_info`` records is ``chosen``: by UID and part where both have a UID (a
    key turns from the number to the UID once another series of the folder shares its number), else by key."""
    key, uid = str(info["series_key"]), info.get("series_uid")
    if not (uid and chosen.uid):
        return key == chosen.key
    base = uid if key == uid or key.startswith(f"{uid}-") else str(info.get("series_number"))
    if key != base and not key.startswith(f"{base}-"):  # a key of another form: compared as it is
        return key == chosen.key
    part = key[len(base) + 1:] or None  # "3-2", "1.2.3-2": the second part of a split series
    return uid == chosen.uid and part == (None if chosen.part is None else str(chosen.part))


def check_before_model(path: Path | str, reference: Path | str | None, series: str | None, output_format: str,
                       output_dir: Path | str | None = None, overwrite: bool = False) -> str | None:
    """What refuses an input without any model: the input or its reference missing (:func:`check_input_exists`),
    a DICOM file given as the input (:func:`check_dicom_file_input`), a folder that is no DICOM study or whose series
    cannot be chosen (:func:`check_folder_input`) and one whose chosen series would take the name of another series'
    segmentation (:func:`check_series_output`, with ``output_dir`` and ``overwrite`` as the outputs are written),
    options that need a DICOM folder given for a
    file (:func:`check_dicom_options`), and with ``output_format``
    ``dicom-seg`` a series no DICOM SEG can be made from (:func:`~medseg.io.seg_sources.check_seg_source`: no
    SeriesInstanceUID or FrameOfReferenceUID, and what else reading it for the SEG refuses), each as the error
    segmenting it would raise, after the model had loaded (seconds: torch, the network, the device). Returns the
    warning to tell once the input's outputs are in place (another series' segmentation replaced, with
    ``overwrite``), else None."""
    check_input_exists(path, reference)
    check_dicom_file_input(path)
    check_dicom_options(path, series, output_format)
    chosen = check_folder_input(path, series)
    replacing = None
    if chosen is None and series is not None and not overwrite:
        _check_unscanned_series_output(path, series, output_dir, output_format)
    elif chosen is None and not overwrite:
        _check_unscanned_unnamed_series_output(path, output_dir, output_format)
    if chosen is not None:
        from medseg.io.dicom_series import release_scan

        try:
            replacing = check_series_output(path, chosen, output_dir, output_format, overwrite)
        except BaseException:
            release_scan(path)  # refused: never read
            raise
    if output_format == "dicom-seg":
        from medseg.io.seg_sources import check_seg_source

        check_seg_source(path, series)
    return replacing
