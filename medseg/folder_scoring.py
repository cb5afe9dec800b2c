"""Scoring a folder of predictions against a folder of reference labels (``medseg evaluate PRED_DIR REF_DIR``).

Files are paired by name, as ``medseg train`` pairs images and labels (:func:`pair_predictions`); each pair is scored
by :func:`medseg.scoring.score_pair`, the code ``medseg evaluate`` runs on one pair, and written as
``<case>_metrics.json``, or, where it fails, ``<case>_failed.json`` (schema ``medseg-failure/1``, stage
``evaluate``) while the others carry on. A reference without a prediction is a missed case: a failure record at
stage ``not_run``. The cohort table and summary (``cohort.tsv``, ``summary.json``) and the QA page beside them are
those ``medseg report`` writes for a results folder, made by it from these records.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from medseg.caller_warnings import held_until_done, warning
from medseg.errors import ConflictingInputsError, ImageReadError, InputError
from medseg.io.files import (
    absent_content,
    absent_files,
    absolute_path,
    is_dicom_file,
    part10_seg_series,
    path_argument,
)
from medseg.io.itk_image import (
    IMAGE_ENDINGS,
    IMAGE_FILE_KINDS,
    data_files_among,
    scene_images_text,
    slicer_scene_images,
)
from medseg.numbers import counted
from medseg.volume import stem

if TYPE_CHECKING:
    from medseg.package import ModelPackage

__all__ = ["FolderPairs", "FolderScores", "case_file_name", "pair_predictions", "score_folder"]

log = logging.getLogger(__name__)

_NIFTI = IMAGE_ENDINGS  # NIfTI (.nii.zst too), NRRD and MetaImage through SimpleITK (the itk extra)
_PREDICTION_SUFFIX = "_seg"  # medseg infer writes <stem>_seg.nii.gz
_SEG = "_seg.dcm"  # medseg infer --format dicom-seg writes <stem>_seg.dcm, placed on its series by its sidecar
_DICOM = ".dcm"  # a reference DICOM SEG (a reader's, another tool's): <case>.dcm or <case>_seg.dcm
_LABEL_SUFFIXES = ("_label", "_labels", "_seg", "_mask", "_gt")  # as medseg train pairs labels
_CHANNEL = "_0000"  # nnU-Net's channel suffix: medseg infer on imagesTs/case_0000.nii.gz writes case_0000_seg
REPORT_NAMES = ("report.html", "cohort.tsv", "summary.json")
_UID = re.compile(r"[0-9]+(\.[0-9]+)+")  # a DICOM UID, as archives name a file by its SOP Instance UID


@dataclass
class FolderPairs:
    """Predictions and references paired by case name."""

    pairs: list[tuple[str, Path, Path]]  # (case id, prediction, reference), by case id
    unreferenced: list[Path] = field(default_factory=list)  # predictions without a reference: not scored
    missed: list[tuple[str, Path]] = field(default_factory=list)  # (case id, reference) without a prediction
    # case id -> (NIfTI, DICOM SEG): a case with a prediction in each format, refused (its pair holds the NIfTI)
    doubled: dict[str, tuple[Path, Path]] = field(default_factory=dict)


@dataclass
class FolderScores:
    """What :func:`score_folder` wrote and found."""

    out_dir: Path
    scored: list[tuple[str, Path]]  # (case id, metrics file)
    # (case id, one-line error, failure record): scoring failed, or missed; or a case scored that the report counts
    # as failed (``stale``: its input or segmentation changed since medseg infer recorded it), with its metrics file
    failed: list[tuple[str, str, Path]]
    unreferenced: list[Path]
    missed: list[str]  # case ids of references without a prediction (also among ``failed``)
    report: object  # medseg.report.build.ReportOutputs
    summary: dict  # summary.json as written
    names_from: list[Path] = field(default_factory=list)  # the dataset.json files label names came from
    # label values the model never learnt (no training case held them): the package's record, else those the
    # sidecar of every scored case lists (labels_not_trained)
    never_learnt: list[str] = field(default_factory=list)
    # case ids scored (a metrics file each) that the report counts as failed: their input or segmentation changed
    # since medseg infer recorded it; among ``failed``, not ``scored``, as summary.json counts them
    stale: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        """One short line: the folder, the cases counted as the command's closing line counts them, and the report;
        the dataclass's repr held the whole summary record and the report's fields (11.6 KB for two cases)."""
        html = getattr(self.report, "html", None)
        return (f"FolderScores(out_dir={str(self.out_dir)!r}, scored={len(self.scored)}, failed={len(self.failed)}, "
                f"unreferenced={len(self.unreferenced)}, missed={len(self.missed)}, "
                f"report={None if html is None else str(html)!r})")


def case_file_name(case_id: str) -> str:
    """A case id as a file-name stem in one folder: characters a file name cannot hold (on Windows too) as ``_``,
    leading dots dropped, as ``medseg evaluate -o DIR`` names ``<case>_metrics.json``."""
    return re.sub(r'[/\\:*?"<>|\x00-\x1f]', "_", case_id).lstrip(".") or "case"


def _nifti_files(folder: Path, what: str, segs: str | None = None
                 ) -> tuple[dict[str, Path], dict[str, tuple[Path, Path]]]:
    """The NIfTI files directly in ``folder`` by name without extension (composed Unicode, so a name written on a
    Mac meets its counterpart), and the DICOM SEGs whose names end in ``segs`` too: ``_seg.dcm``, as ``medseg infer
    --format dicom-seg`` writes them, or ``.dcm``, any SEG (a ``.dcm`` file whose header names another modality, a
    CT image, is no SEG and left out), and with ``segs`` ``.dcm`` a file without a known ending that is a Part 10
    DICOM SEG by its header (archives store a SEG under its SOP Instance UID). Other files are not searched: JSON
    files (sidecars, nnU-Net's dataset.json and plans) are passed over in silence, anything else is named in one
    warning (a DICOM folder beside its SEG, the
    input it was made from, is left out in silence). A name with both a NIfTI file and a SEG is returned apart,
    as (NIfTI, SEG) too (the NIfTI file stands for it among the files)."""
    try:
        entries = sorted(folder.iterdir())
    except FileNotFoundError as error:
        raise InputError(f"{folder}: no such {what} folder") from error
    except OSError as error:
        from medseg.io.files import os_reason

        raise InputError(f"{folder}: cannot read the {what} folder ({os_reason(error)})") from error
    files: dict[str, Path] = {}
    seg_files: dict[str, Path] = {}
    left_out: list[Path] = []
    data_files = data_files_among(entries)  # a .mhd's .raw: part of its image
    # 3D Slicer's scene, case.nrrd beside case.seg.nrrd: the segmentation is the case's prediction or reference
    beside = set(slicer_scene_images(entries))
    scene_images = []
    for path in entries:
        if path.name.startswith(".") or path in data_files:
            continue
        if path in beside and (path.is_file() or absent_content(path)):
            scene_images.append(path.name)
            continue
        lower = path.name.lower()
        # a reference SEG stored under its SOP Instance UID, as archives store files, has no .dcm: known by content
        # (one of a dataset whose content is not here is known by its name: a UID, digits and dots)
        unnamed_seg = segs == _DICOM and not lower.endswith((*_NIFTI, _DICOM, ".json")) and \
            path.name not in REPORT_NAMES and (part10_seg_series(path) is not None or (
                _UID.fullmatch(path.name) is not None and absent_content(path) is not None))
        # a reference .dcm may be an image of a series (a prediction's _seg.dcm is medseg's own: scoring checks it);
        # a dataset's file whose content is not here, or a link that leads nowhere (its target moved, or a loop), is
        # its case's, which fails naming it (left out, its counterpart was "without a reference" or "missed")
        if unnamed_seg or (lower.endswith(_NIFTI) or (segs and lower.endswith(segs))) and \
                (path.is_file() or _leads_nowhere(path) or absent_content(path)) and \
                (segs != _DICOM or lower.endswith(_NIFTI) or _is_seg(path)):
            kind = files if lower.endswith(_NIFTI) else seg_files
            name = unicodedata.normalize("NFC", stem(path))
            if name in kind:
                raise InputError(f"{path}: case {name!r} has two files in {folder} ({kind[name].name} and "
                                 f"{path.name}); keep one of them")
            kind[name] = path
        elif not lower.endswith(".json") and path.name not in REPORT_NAMES:  # a report made in it
            left_out.append(path)
    # medseg infer without -o writes case_seg.dcm beside the DICOM folder case/ it was made from
    left_out = [p for p in left_out if not (p.is_dir() and any(
        unicodedata.normalize("NFC", p.name) + suffix in seg_files for suffix in ("", _PREDICTION_SUFFIX)))]
    if scene_images:
        warning(log, "%s: %s", folder, scene_images_text(scene_images))
    if left_out:
        names = [p.name + ("/" if p.is_dir() else "") for p in left_out]
        shown = ", ".join(names[:5]) + (" …" if len(names) > 5 else "")
        kinds = _kinds(segs)
        not_read = (f"1 entry that is not a {kinds} file" if len(names) == 1
                    else f"{len(names)} entries that are not {kinds} files")
        warning(log, "%s: left out %s (subfolders are not searched): %s", folder, not_read, shown)
    both = {name: (files[name], path) for name, path in seg_files.items() if name in files}
    return files | {name: path for name, path in seg_files.items() if name not in both}, both


def _leads_nowhere(path: Path) -> bool:
    """Whether ``path`` is a symbolic link whose target is not there (moved or deleted, or a loop of links)."""
    try:
        return path.is_symlink() and not os.path.exists(path)
    except OSError:
        return False


def _kinds(segs: str | None) -> str:
    """The files a folder is searched for, in words."""
    if segs is None:
        return IMAGE_FILE_KINDS
    return {_SEG: f"{IMAGE_FILE_KINDS} or _seg.dcm", _DICOM: f"{IMAGE_FILE_KINDS} or .dcm (DICOM SEG)"}.get(
        segs, IMAGE_FILE_KINDS)


def _is_seg(path: Path) -> bool:
    """Whether a ``.dcm`` file may be a DICOM SEG: one whose header names another modality (an image of a series, also
    one written without the Part 10 preamble) is not; one that cannot be read is taken as one, for its case to fail
    naming the reason."""
    from medseg.io.files import dicom_modality

    return dicom_modality(path) in (None, "SEG")


def pair_predictions(pred_dir: Path | str, ref_dir: Path | str) -> FolderPairs:
    """Pair the NIfTI files (and DICOM SEGs, ``case_seg.dcm``) of ``pred_dir`` with the NIfTI files and DICOM SEGs
    (``case.dcm``, ``case_seg.dcm``; each placed, as it is scored, on the series the prediction's sidecar records, or by
    its own geometry on a label image prediction not made from a series) of
    ``ref_dir`` by name. A prediction's case is its name
    without ``_seg`` (``medseg infer``'s ``case_seg.nii.gz``) and, where that meets a reference, without nnU-Net's
    ``_0000``; a reference's is its name, or without ``_label(s)``, ``_seg``, ``_mask`` or ``_gt`` where that meets
    a prediction (the suffixes ``medseg train`` takes). nnU-Net's predictions and labelsTs both name ``case.nii.gz``.
    A SEG reference whose name meets no prediction (one named by its UID) is paired by content
    (:func:`_pair_by_series`).
    Two files of one case in a folder, or no pair at all, are an :class:`InputError` naming them; a NIfTI prediction
    and a SEG of one case are not, but its pair is listed in :attr:`FolderPairs.doubled` (:func:`score_folder` fails
    it)."""
    pred_dir, ref_dir = Path(path_argument(pred_dir, "the predictions folder")), \
        Path(path_argument(ref_dir, "the references folder"))
    with contextlib.suppress(OSError):
        if pred_dir.is_dir() and pred_dir.samefile(ref_dir):  # each file would be scored against itself: Dice 1
            raise ConflictingInputsError(f"{ref_dir}: given as both the predictions and the references folder; give "
                                         "the reference labels' folder as the second")
    predictions, doubled = _nifti_files(pred_dir, "predictions", segs=_SEG)
    references, doubled_references = _nifti_files(ref_dir, "references", segs=_DICOM)
    for name, (nifti, seg) in doubled_references.items():  # as two references of one case are
        raise InputError(f"{seg}: case {name!r} has two references in {ref_dir} ({nifti.name} and {seg.name}, a DICOM "
                         "SEG); keep one of them")
    # medseg infer without -o writes case_seg.nii.gz beside its input case.nii.gz: the input is no prediction
    inputs = sorted(name for name in predictions if f"{name}{_PREDICTION_SUFFIX}" in predictions)
    if inputs:
        warning(log, "%s: left out %s beside %s segmentation (<name>_seg.nii.gz, as medseg infer writes it): %s",
                    pred_dir, counted(len(inputs), "image"), "its" if len(inputs) == 1 else "their",
                    _shown([predictions[name] for name in inputs]))
        predictions = {name: path for name, path in predictions.items() if name not in inputs}
    for folder, found, what in ((pred_dir, predictions, "prediction"), (ref_dir, references, "reference")):
        if not found:
            raise InputError(f"{folder}: no {_kinds(_SEG if what == 'prediction' else _DICOM)} file in it (no "
                             f"{what} to pair)")

    def case_of_reference(name: str, wanted: set[str]) -> str:
        if name in wanted:
            return name
        for suffix in _LABEL_SUFFIXES:
            if name.endswith(suffix) and name[: -len(suffix)] in wanted:
                return name[: -len(suffix)]
        return name

    def case_of_prediction(name: str, given: set[str]) -> str:
        # case_seg meets a reference case_seg(.dcm) as case: the reference's _seg is a label suffix
        if name.endswith(_PREDICTION_SUFFIX) and (name not in given or name[: -len(_PREDICTION_SUFFIX)] in given):
            name = name[: -len(_PREDICTION_SUFFIX)]
        if name.endswith(_CHANNEL) and name not in given and name[: -len(_CHANNEL)] in given:
            name = name[: -len(_CHANNEL)]
        return name

    # the references' case names, with and without a label suffix: a prediction may meet either
    bare_references = set(references) | {name[: -len(s)] for name in references for s in _LABEL_SUFFIXES
                                         if name.endswith(s)}
    by_case: dict[str, Path] = {}
    doubled_cases: dict[str, tuple[Path, Path]] = {}
    for name, path in predictions.items():
        case = case_of_prediction(name, bare_references)
        if case in by_case:
            raise InputError(f"{path}: case {case!r} has two predictions in {pred_dir} ({by_case[case].name} and "
                             f"{path.name}); keep one of them")
        by_case[case] = path
        if name in doubled:
            doubled_cases[case] = doubled[name]
    ref_by_case: dict[str, Path] = {}
    for name, path in references.items():
        case = case_of_reference(name, set(by_case))
        if case in ref_by_case:
            raise InputError(f"{path}: case {case!r} has two references in {ref_dir} ({ref_by_case[case].name} and "
                             f"{path.name}); keep one of them")
        ref_by_case[case] = path
    _pair_by_series(by_case, ref_by_case)
    paired = sorted(set(by_case) & set(ref_by_case))
    if not paired:
        by_series = fetch = ""
        segs = [path for path in ref_by_case.values() if _seg_by_content(path)]
        # SEGs not fetched (datalad get not run) have no header to pair them by: that is what to say of them
        absent = sorted(path for path in segs if absent_content(path) is not None)
        if segs:  # the SEGs were looked for by content too
            unmade = sum(_made_from(path) is None for path in by_case.values())
            by_series = "; a DICOM SEG reference is also paired with the prediction whose sidecar records the " \
                "series it segments, " + (f"and {unmade} of the predictions {'has' if unmade == 1 else 'have'} no "
                                          "sidecar that records a DICOM series (made by another tool, or from a "
                                          "NIfTI image)" if unmade else "which its header names" if absent else
                                          "and no prediction's sidecar records one of theirs")
        if absent:
            fetch = f"; {len(absent)} of the references {'is' if len(absent) == 1 else 'are'} " + \
                absent_files(absent, [ref_dir], [Path(path.name) for path in absent])
        raise InputError(f"{pred_dir}: no prediction has a reference of the same name in {ref_dir} "
                         f"({counted(len(by_case), 'prediction')}, {counted(len(ref_by_case), 'reference')}; e.g. "
                         f"prediction '{by_case[min(by_case)].name}', reference '{ref_by_case[min(ref_by_case)].name}'"
                         f"; a prediction may add _seg to the reference's name, a reference "
                         f"{', '.join(_LABEL_SUFFIXES)}{by_series}){fetch}")
    return FolderPairs(
        pairs=[(case, by_case[case], ref_by_case[case]) for case in paired],
        unreferenced=[by_case[case] for case in sorted(set(by_case) - set(ref_by_case))],
        missed=[(case, ref_by_case[case]) for case in sorted(set(ref_by_case) - set(by_case))],
        doubled=doubled_cases,
    )


def _seg_by_content(reference: Path) -> bool:
    """Whether ``reference`` is a DICOM SEG, which is paired by the series its header names where its name meets no
    prediction: a DICOM file, or one named by a UID (digits and dots) whose content may not be here to tell."""
    return is_dicom_file(reference) or _UID.fullmatch(reference.name) is not None


def _made_from(prediction: Path) -> str | None:
    """The SeriesInstanceUID of the DICOM series ``prediction`` was made from, as the sidecar ``medseg infer`` wrote
    beside it records it; None without a (readable) sidecar, or for an input that was no DICOM series."""
    from medseg.io.label_images import prediction_sidecar
    from medseg.jsonfile import RESULT_BYTES, JsonFileError, read_json_object

    try:
        sidecar = read_json_object(prediction_sidecar(prediction), RESULT_BYTES, "a prediction sidecar")
    except (OSError, JsonFileError):  # scoring the case names it where that matters
        return None
    info = sidecar.get("input_info")
    uid = info.get("series_uid") if isinstance(info, dict) else None
    return str(uid) if uid else None


def _pair_by_series(by_case: dict[str, Path], ref_by_case: dict[str, Path]) -> None:
    """Pair the DICOM SEG references whose name meets no prediction (archives name a SEG by its SOP Instance UID) by
    content, as one pair is scored: each to the prediction, among those without a reference, whose sidecar records
    the series the SEG segments (:func:`~medseg.io.files.part10_seg_series`: its ReferencedSeriesSequence, and for
    series of other studies its StudiesContainingOtherReferencedInstancesSequence); ``ref_by_case`` is changed in
    place. A SEG of the series of two such predictions is an :class:`InputError`, as two predictions of one case are;
    so is one of the series of a prediction that has its reference already (by name, or an earlier SEG), as two
    references of one case are (matched against predictions without a reference only, it was a missed case)."""
    lone = {name: path for name, path in ref_by_case.items() if name not in by_case and is_dicom_file(path)}
    if not lone or not by_case:
        return
    made_from: dict[str, list[str]] = {}  # series UID -> the cases of the predictions made from it
    for case in sorted(by_case):
        uid = _made_from(by_case[case])
        if uid is not None:
            made_from.setdefault(uid, []).append(case)
    for name, path in sorted(lone.items()):
        series = sorted(part10_seg_series(path) or ())
        cases = sorted({case for uid in series for case in made_from.get(uid, ())})
        free = [case for case in cases if case not in ref_by_case]
        if len(free) > 1:
            raise InputError(f"{path}: a DICOM SEG of series {', '.join(series)}, from which {len(free)} predictions "
                             f"were made ({', '.join(by_case[case].name for case in free)}, as their sidecars "
                             "record); keep one of them, or name the SEG after its case")
        if free:
            ref_by_case[free[0]] = ref_by_case.pop(name)
        elif cases:
            case = cases[0]
            raise InputError(f"{path}: case {case!r} has two references in {path.parent} ({ref_by_case[case].name} "
                             f"and {path.name}, a DICOM SEG of series {', '.join(series)}, which "
                             f"{by_case[case].name} was made from, as its sidecar records); keep one of them")


def _shown(paths: list, limit: int = 5) -> str:
    names = [p.name if isinstance(p, Path) else str(p) for p in paths]
    return ", ".join(names[:limit]) + (f" … ({len(names)} in all)" if len(names) > limit else "")


def _four_argument(on_case):
    """``on_case`` as :func:`score_folder` calls it, with ``never_learnt`` as a fourth argument; a callback that takes
    only the three of earlier versions (case, metrics, error) is given those three."""
    if on_case is None:
        return None
    import inspect

    try:
        inspect.signature(on_case).bind(None, None, None, None)
    except TypeError:  # cannot take a fourth argument: an earlier version's callback
        try:
            inspect.signature(on_case).bind(None, None, None)
        except TypeError:
            return on_case  # neither: calling it says what is wrong with it
        return lambda case, metrics, error, never_learnt: on_case(case, metrics, error)
    except ValueError:  # no signature to read (some builtins): called as documented
        return on_case
    return on_case


def score_folder(pred_dir: Path | str, ref_dir: Path | str, out_dir: Path | str,
                 package: ModelPackage | str | os.PathLike | None = None,
                 given_as: str | None = None, overwrite: bool = False,
                 on_case: Callable[[str, dict | None, str | None, tuple[int, ...]], object] | Callable[
                     [str, dict | None, str | None], object] | None = None,
                 invocation: dict | None = None, images_dir: Path | str | None = None,
                 ct_window: str | None = None) -> FolderScores:
    """Score every prediction of ``pred_dir`` against its reference in ``ref_dir`` (:func:`pair_predictions`) and
    write, in ``out_dir`` (made if missing), ``<case>_metrics.json`` per scored case, ``<case>_failed.json`` per case
    that failed or was missed, and the report of them (``report.html``, ``cohort.tsv``, ``summary.json``).

    Each case is scored as ``medseg evaluate`` scores one pair (:func:`medseg.scoring.score_pair`; ``package`` and
    ``given_as`` as there), except that the cases scored without label names share one label set, the values of all
    of them (a value neither file of a case holds is recorded there as absent from both). An error in one case is
    recorded in its failure record and the others carry on; a
    case's metrics and failure record replace each other. ``invocation`` (the command line and its folder) is
    recorded in each metrics file, as sidecars record theirs. Predictions without a reference are named in a warning
    and not scored. Existing outputs are refused before anything is scored unless ``overwrite``; two pairs whose
    outputs would share a name, or ``out_dir`` being the references folder, are a :class:`ConflictingInputsError`.
    ``package`` is a loaded :class:`~medseg.package.ModelPackage`, a shipped model's name or a package folder.
    ``on_case(case_id, metrics_or_None, error_line_or_None, never_learnt)`` is called after each case scored or failed,
    but not for a missed case (a reference without a prediction): the warning that lists them tells those at once;
    ``never_learnt`` is the label values the model that made the case never learnt (no training case held them): the
    ``package``'s record, else its sidecar's ``labels_not_trained`` (empty where neither says, and for a failure).
    A callback written for the three arguments of earlier versions, ``on_case(case_id, metrics, error)``, is still
    called with those three. ``images_dir``, a folder of the cases' images (nnU-Net's ``imagesTs``: ``<case>_0000``
    or ``<case>`` with a NIfTI ending), records each scored case's image in its metrics (``image``), which the report
    draws its labels over; a case without one there is named in a warning. ``ct_window`` is the report's
    (:func:`~medseg.report.build.build_report`): checked before anything is scored.

    A Ctrl-C or SIGTERM (``KeyboardInterrupt``) goes through carrying what the caller tells of it: ``records_kept``,
    the metrics files and failure records written whole before it (they stay; the report is not made), and
    ``cases_total``."""
    from medseg.errors import OutputWriteError
    from medseg.io.atomic import check_writable, remove_empty_folders

    if ct_window is not None:
        from medseg.report.overlay_image import ct_window_hu

        ct_window_hu(ct_window)  # an unknown name, refused before any case is scored
    from medseg.scoring import package_argument

    package = package_argument(package)  # a model's name loaded, as score_prediction loads it: once for all cases
    out_dir = Path(path_argument(out_dir, "the output folder"))
    found = pair_predictions(pred_dir, ref_dir)
    with contextlib.suppress(OSError):
        if out_dir.is_dir() and out_dir.samefile(ref_dir):
            raise ConflictingInputsError(f"{out_dir}: the references folder given as the output folder; give the "
                                         "metrics a folder of their own")
    for folder, role in ((ref_dir, "references"), (pred_dir, "predictions")):
        with contextlib.suppress(OSError):
            # labelsTs for imagesTs: each label was drawn as its own scan
            if images_dir is not None and Path(images_dir).samefile(folder):
                raise ConflictingInputsError(f"{images_dir}: the {role} folder given as the images folder; give the "
                                             "folder of the cases' images (nnU-Net's imagesTs)")
    images = _nifti_files(Path(images_dir), "images")[0] if images_dir is not None else None
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputWriteError(f"{out_dir}: not a folder (the output folder of a folder of predictions)")
    names = {case: case_file_name(case) for case, _, _ in found.pairs} | \
        {case: case_file_name(case) for case, _ in found.missed}
    seen: dict[str, str] = {}
    for case, name in names.items():
        if name.casefold() in seen:  # a case-insensitive disk holds the two as one file
            raise ConflictingInputsError(f"{out_dir}: cases {seen[name.casefold()]!r} and {case!r} would both write "
                                         f"{name}_metrics.json; rename one of them")
        seen[name.casefold()] = case
    metrics_path = {case: out_dir / f"{name}_metrics.json" for case, name in names.items()}
    failure_path = {case: out_dir / f"{name}_failed.json" for case, name in names.items()}
    targets = [*metrics_path.values(), *failure_path.values(), *(out_dir / name for name in REPORT_NAMES)]
    from medseg.scoring import check_folder_made_by

    # a --model that made none of the predictions: one usage error, not a failure record per case
    check_folder_made_by(pred_dir, [prediction for case, prediction, _ in found.pairs if case not in found.doubled],
                         package, given_as)
    _check_not_swapped(pred_dir, ref_dir, [(p, r) for case, p, r in found.pairs if case not in found.doubled])
    check_writable(targets, overwrite)  # before anything is scored: nothing of an earlier run replaced unasked
    if found.unreferenced:
        warning(log, "%s: %s without a reference in %s, not scored: %s", pred_dir,
                    counted(len(found.unreferenced), "prediction"), ref_dir, _shown(found.unreferenced))
    if found.missed:
        warning(log, "%s: %s without a prediction in %s, counted as missed cases (failed, stage not_run): %s",
                    ref_dir, counted(len(found.missed), "reference"), pred_dir, _shown([p for _, p in found.missed]))
    # the folders made for the results go again, where left empty, if the run stops (a full disk at the first case)
    made = [f for f in (out_dir, *out_dir.parents) if not f.exists() and not f.is_symlink()]
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        from medseg.io.files import link_nowhere, os_reason

        remove_empty_folders(made)
        # "(not a directory)" named no file, "(file exists)" a link leading nowhere: said as the other commands say it
        file = next((f for f in out_dir.parents if f.exists() and not f.is_dir()), None)
        if file is not None:
            raise OutputWriteError(f"{out_dir}: cannot make this output folder: {file} is a file, not a "
                                   "folder") from error
        link = next((f for f in (out_dir, *out_dir.parents) if f.is_symlink() and not f.exists()), None)
        if link is not None:
            raise OutputWriteError(f"{out_dir}: cannot make this output folder: {link} is "
                                   f"{link_nowhere(link)}") from error
        raise OutputWriteError(f"{out_dir}: cannot make the output folder ({os_reason(error)})") from error
    scored: list[tuple[str, Path]] = []
    failed: list[tuple[str, str, Path]] = []
    try:
        return _score_into(found, pred_dir, ref_dir, out_dir, targets, metrics_path, failure_path, package, given_as,
                           invocation, _four_argument(on_case), scored, failed, (images_dir, images), ct_window)
    except KeyboardInterrupt as stop:  # what is written stands (each file whole); the caller tells how far it got
        from medseg.io.atomic import placed_before_stop

        kept = [path for _, path in scored] + [path for _, _, path in failed]
        kept += [path for path in placed_before_stop(stop) if path not in kept]  # held back while it was placed
        stop.records_kept = tuple(kept)
        stop.cases_total = len(found.pairs) + len(found.missed)
        remove_empty_folders(made)
        raise
    except BaseException:
        remove_empty_folders(made)
        raise


def _check_not_swapped(pred_dir, ref_dir, pairs: list[tuple[Path, Path]]) -> None:
    """The two folders given the wrong way round as a :class:`ConflictingInputsError`: every reference a segmentation
    medseg infer wrote (its sidecar names it) and no prediction with a sidecar. Each case was scored with the
    predicted and reference volumes (and false positives and negatives) exchanged, a warning each, and a reference
    without a prediction passed over as a prediction without a reference. A reference changed since medseg infer
    wrote it (its SHA-256 not the one its sidecar records: corrected by a reader) is a reference, and scored as one."""
    from medseg.io.atomic import sha256_of
    from medseg.io.label_images import prediction_sidecar
    from medseg.scoring import read_made_by

    if not pairs or any(os.path.lexists(prediction_sidecar(prediction)) for prediction, _ in pairs):
        return
    written = []
    for _, reference in pairs:
        sidecar = prediction_sidecar(reference)
        try:
            made_by = read_made_by(sidecar)
        except InputError:  # not medseg's record
            return
        if made_by is None or made_by.segmentation != reference.name:
            return
        written.append((reference, made_by))
    sidecars = []
    for reference, made_by in written:  # hashed only where every reference has medseg's sidecar
        if made_by.segmentation_sha256 is not None:
            try:
                if sha256_of(reference) != made_by.segmentation_sha256:
                    return  # corrected since: the reader's reference, not medseg's segmentation
            except OSError:  # named when its case is read
                return
        sidecars.append(made_by.sidecar.name)
    shown = ", ".join(sidecars[:3]) + (f" and {len(sidecars) - 3} more" if len(sidecars) > 3 else "")
    raise ConflictingInputsError(f"{ref_dir}: given as the references folder, it holds segmentations medseg infer "
                                 f"wrote (their sidecars say so: {shown}), and the predictions folder {pred_dir} "
                                 "none: are the two folders swapped? The predictions come first")


def _score_into(found: FolderPairs, pred_dir, ref_dir, out_dir: Path, targets: list[Path],
                metrics_path: dict[str, Path], failure_path: dict[str, Path], package, given_as: str | None,
                invocation: dict | None, on_case, scored: list[tuple[str, Path]],
                failed: list[tuple[str, str, Path]], images: tuple = (None, None),
                ct_window: str | None = None) -> FolderScores:
    """:func:`score_folder`'s work once ``out_dir`` is there: each pair scored, the missed cases recorded, the
    report made; ``scored`` and ``failed`` (empty) grow as the cases are written; ``images`` is the images folder
    and its files by name (``(None, None)`` without one)."""
    from medseg.cohort.records import one_line
    from medseg.failure_records import failure_record, write_failure_record
    from medseg.io.atomic import atomic_paths, results_unwritable
    from medseg.io.label_images import prediction_sidecar
    from medseg.metrics import metrics_json
    from medseg.scoring import made_by_of, score_pair

    def record_failure(case: str, stage: str, error: BaseException, prediction: Path | None, reference: Path,
                       error_type: str | None = None, tell: bool = True, predictions: Path | None = None) -> None:
        path = failure_path[case]
        # its input is what was scored
        record = failure_record(case, stage, error, prediction, reference, error_type=error_type)
        if prediction is not None:  # said so, for the report: a cohort's failure records give the image as input
            record["prediction"] = record["input"]
        if predictions is not None:  # a missed case: the folder its prediction was looked for in, where the report
            record["predictions"] = str(predictions)  # finds medseg infer's failure record of it, the one case
        # the metrics of an earlier run go as the record is placed: no figures of a case that failed now
        write_failure_record(path, record, retire=[metrics_path[case]])
        failed.append((case, one_line(error), path))
        if on_case is not None and tell:
            on_case(case, None, one_line(error), ())

    names_from: list[Path] = []
    imageless: list[str] = []  # the cases scored whose image is not in the images folder
    told: set = set()  # the dataset.json warnings given (a file whose names cannot be used, or differ): once each
    unnamed: dict[str, dict] = {}  # case -> metrics of a case scored without label names: the values present
    untrained: list[set[int]] = []  # per case scored, the labels its sidecar says were never learnt
    package_untrained = None  # the labels the --model package records as never learnt: its word over the sidecars'
    if package is not None:
        from medseg.segment import labels_not_trained

        package_untrained = tuple(labels_not_trained(package))
    for case, prediction, reference in found.pairs:
        if case in found.doubled:  # which one the user means to score is theirs to say
            nifti, seg = found.doubled[case]
            record_failure(case, "evaluate", ConflictingInputsError(
                f"{seg}: case {case!r} has two predictions, {nifti.name} and {seg.name} (a DICOM SEG); neither is "
                f"scored: move the one not to score out of {seg.parent}"), nifti, reference)
            continue
        sidecar = prediction_sidecar(prediction)
        if is_dicom_file(reference) and is_dicom_file(prediction) and not os.path.lexists(sidecar):
            # one pair's words name no case; a SEG prediction has no grid of its own to place a SEG reference on (a
            # label image prediction without a sidecar has: the reference is placed on it by its frames' geometry)
            record_failure(case, "evaluate", InputError(
                f"{prediction}: case {case!r} cannot be scored: it and its reference {reference.name} are DICOM SEGs, "
                "placed on the DICOM series the prediction was made from, and no sidecar beside the prediction "
                f"({sidecar.name}, which medseg infer writes) names that series; put the sidecar back beside it"),
                prediction, reference)
            continue
        try:
            made_by = made_by_of(prediction)
            metrics, source = score_pair(prediction, reference, case, package, given_as=given_as, made_by=made_by,
                                         warned=told)
            if invocation is not None:
                metrics["invocation"] = invocation
            if images[1] is not None:
                image = images[1].get(f"{unicodedata.normalize('NFC', case)}_0000") or images[1].get(
                    unicodedata.normalize("NFC", case))
                if image is not None:  # as written, links kept (one that loops failed the case's scoring)
                    metrics["image"] = str(absolute_path(image))
                else:
                    imageless.append(case)
            with atomic_paths([metrics_path[case]], overwrite=True, retire=[failure_path[case]]) as (temp,):
                temp.write_text(metrics_json(metrics))
        except Exception as error:  # any error in one case is recorded, the others carry on
            if results_unwritable(error):
                raise
            log.debug("%s: not scored", case, exc_info=True)
            record_failure(case, "evaluate", error, prediction, reference)
            continue
        scored.append((case, metrics_path[case]))
        sidecar_untrained = tuple(made_by.labels_not_trained) if made_by is not None else ()
        untrained.append(set(sidecar_untrained))
        if package is None and (made_by is None or not made_by.labels) and source is None:
            unnamed[case] = metrics
        if source is not None and source not in names_from:
            names_from.append(source)
        if on_case is not None:  # the package's word on the labels never learnt, else the sidecar's
            on_case(case, metrics, None, package_untrained if package_untrained is not None else sidecar_untrained)
    with held_until_done():  # a warning an "error" filter raises: once the report of the cases scored is made
        _complete_unnamed_labels(unnamed, metrics_path, failure_path)
        if imageless:
            warning(log, "%s: no image of %s (%s with a NIfTI ending): %s; %s the labels alone", images[0],
                        counted(len(imageless), "case"), f"{imageless[0]}_0000 or {imageless[0]}", _shown(imageless),
                        "its overlay shows" if len(imageless) == 1 else "their overlays show")
        for case, reference in found.missed:
            absent = absent_content(reference, "a DICOM SEG") if _seg_by_content(reference) else None
            if absent is not None:  # a SEG whose name meets no prediction is paired by what its header says
                record_failure(case, "evaluate", ImageReadError(
                    f"{reference}: {absent}; a DICOM SEG reference whose name meets no prediction in {pred_dir} is "
                    "paired with the prediction made from the series it segments, which its header says"), None,
                    reference)
                continue
            series = sorted(part10_seg_series(reference) or ()) if is_dicom_file(reference) else []
            made_from = f"made from series {', '.join(series)}, the series this DICOM SEG segments, as its sidecar " \
                "records it"
            if series and not reference.name.lower().endswith(_DICOM):  # named by its UID: paired by content only
                named = f"a prediction is one {made_from}"
            else:
                named = f"a prediction is named {case}.nii.gz, {case}_seg.nii.gz, {case}_0000_seg.nii.gz (medseg " \
                    f"infer's of {case}_0000.nii.gz) or {case}_seg.dcm" + (f", or is one {made_from}" if series else "")
            record_failure(case, "not_run", InputError(
                f"{reference}: no prediction for this reference in {pred_dir}{_infer_failure(pred_dir, case)} (a "
                f"missed case; {named})"), None, reference,
                "MissingPrediction", tell=False, predictions=absolute_path(pred_dir))  # the warning above names all
        ours = {path.name for path in targets}
        others = sorted(path.name for pattern in ("*_metrics.json", "*_failed.json")
                        for path in out_dir.glob(pattern) if path.name not in ours)
        if others:  # the report takes every result in the folder: an earlier run's cases would pass for this one's
            warning(log, "%s: %s not of these predictions (an earlier run's?) %s in the report and its figures: %s; "
                        "remove them, or give a folder of its own", out_dir, counted(len(others), "result file"),
                        "is" if len(others) == 1 else "are", _shown(others))
        from medseg.report.build import build_report

        report = build_report(out_dir, out_dir / REPORT_NAMES[0], overwrite=True, ct_window=ct_window)
    from medseg.jsonfile import RESULT_BYTES, read_json_object

    summary = read_json_object(report.summary, RESULT_BYTES, "a summary")
    # a case scored that the report counts as failed (stale: changed since it was segmented) is failed, as summary.json
    # counts it; the report's failures of other cases (an earlier run's records in the folder, warned of) are not
    written = dict(scored)
    stale = [(case, error) for case, error in getattr(report, "failures", []) if case in written]
    failed += [(case, error, written[case]) for case, error in stale]
    scored = [(case, path) for case, path in scored if case not in dict(stale)]
    if package_untrained is not None:
        never_learnt = set(package_untrained)
    else:
        never_learnt = set.intersection(*untrained) if untrained else set()
    return FolderScores(out_dir, scored, failed, found.unreferenced, [case for case, _ in found.missed], report,
                        summary, names_from, [str(value) for value in sorted(never_learnt)],
                        [case for case, _ in stale])




def _infer_failure(pred_dir: Path, case: str) -> str:
    """Why ``medseg infer`` made no prediction of ``case`` where its failure record in ``pred_dir`` says so (``:
    medseg infer failed on it (RECORD: ERROR)``), else nothing: the scores' own report then gives a missed case's
    cause, which was only beside the predictions."""
    from medseg.jsonfile import RESULT_BYTES, JsonFileError, read_json_object

    for name in (f"{case}_failed.json", f"{case}_0000_failed.json"):
        path = pred_dir / name
        try:
            record = read_json_object(path, RESULT_BYTES, "a medseg failure record")
        except (JsonFileError, OSError):
            continue
        error = record.get("error")
        if record.get("schema") == "medseg-failure/1" and record.get("stage") not in ("evaluate", "not_run") \
                and isinstance(error, str) and error:
            return f": medseg infer failed on it ({path}: {error})"
    return ""


def _complete_unnamed_labels(unnamed: dict[str, dict], metrics_path: dict[str, Path],
                             failure_path: dict[str, Path]) -> None:
    """The label set of the cases scored without label names (no model, sidecar or dataset.json names them) is the
    label values of all of them: a value that neither file of one case holds, but another case's does, is added to
    that case's record as absent from both (:func:`medseg.metrics.both_empty_entry`, as a named label absent from
    both is recorded), and its metrics file written again. Left out, each label's n in the report fell short of the
    cases without a word."""
    from medseg.io.atomic import atomic_paths
    from medseg.metrics import both_empty_entry, metrics_json

    values = sorted({int(value) for metrics in unnamed.values() for value in metrics["labels"]})
    for case, metrics in unnamed.items():
        absent = [value for value in values if str(value) not in metrics["labels"]]
        if not absent:
            continue
        entries = metrics["labels"] | {str(value): both_empty_entry(f"label_{value}") for value in absent}
        metrics["labels"] = {str(value): entries[str(value)] for value in sorted(map(int, entries))}
        log.info("%s: label values %s are in no file of this case but in others: recorded as absent from both",
                 case, ", ".join(map(str, absent)))
        with atomic_paths([metrics_path[case]], overwrite=True, retire=[failure_path[case]]) as (temp,):
            temp.write_text(metrics_json(metrics))
