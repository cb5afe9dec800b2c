"""Scoring one prediction against its reference, with what the prediction's sidecar says of how it was made.

``medseg infer`` writes a sidecar beside each segmentation (``<name>_seg.json``): the model that made it (name,
folder, weights' SHA-256), its label names and the segmentation's own SHA-256. Scoring takes the label names from
there, refuses a model package that is not the one that made the prediction, and warns when the file scored is
not the one the sidecar describes (edited after it was written). ``medseg evaluate`` and the cohort's evaluate
step both score through :func:`score_prediction`; :func:`evaluate_files` reads and scores two label images
without the sidecar's label names or model check (a DICOM SEG is still placed on the series its sidecar names).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from medseg.caller_warnings import NOT_SCORED, warn, warning  # NOT_SCORED: how scoring's raised warnings end
from medseg.case_numbers import other_case_note
from medseg.errors import InputError, ModelMismatchError, first_line
from medseg.io.files import is_path, os_reason, path_argument, type_text
from medseg.io.label_images import prediction_sidecar
from medseg.jsonfile import RESULT_BYTES, JsonFileError, read_json_object
from medseg.settings_named import ANY, setting

if TYPE_CHECKING:
    from medseg.package import ModelPackage

__all__ = ["MadeBy", "check_folder_made_by", "check_made_by", "dataset_label_names", "evaluate_files", "made_by_of",
           "package_argument", "prediction_sidecar", "read_made_by", "score_pair", "score_prediction",
           "warn_if_dataset_names_differ"]

log = logging.getLogger("medseg")



@dataclass(frozen=True)
class MadeBy:
    """What a prediction's sidecar records of how it was made."""

    sidecar: Path
    model: str = ""  # the model's name
    model_path: str = ""  # the package folder it was loaded from
    weights_sha256: str = ""
    labels: dict[int, str] | None = None  # label value -> name, background included
    segmentation: str | None = None  # the file the sidecar describes, as written
    segmentation_sha256: str | None = None
    labels_not_trained: tuple[int, ...] = ()  # the values no training case of the model held (never learnt)


def read_made_by(sidecar: Path | str) -> MadeBy | None:
    """The sidecar's record of how its prediction was made; None when there is no sidecar. A sidecar that cannot be
    read, or whose fields are not of their kind, is an :class:`InputError` naming it."""
    sidecar = Path(sidecar)
    try:
        record = read_json_object(sidecar, RESULT_BYTES, "a prediction sidecar")
    except FileNotFoundError:
        return None
    except JsonFileError as error:  # too large, not JSON, not an object, a folder or a named pipe in its place
        raise InputError(f"{sidecar}: not a readable sidecar ({error.reason})") from error
    except OSError as error:  # no permission, a disk error: the OS's reason, not "[Errno 13] …: '<the same path>'"
        raise InputError(f"{sidecar}: not a readable sidecar ({os_reason(error)})") from error
    try:
        for key in ("labels", "model"):  # "'str' object has no attribute 'items'" said nothing of which
            if record.get(key) is not None and not isinstance(record[key], dict):
                raise ValueError(f"its {key!r} is not an object")
        labels = {int(value): str(name) for value, name in (record.get("labels") or {}).items()}
        model = record.get("model") or {}
        written = {key: record[key] for key in ("segmentation", "segmentation_sha256")
                   if isinstance(record.get(key), str)}
        untrained = record.get("labels_not_trained")  # as the QA report reads it: whole numbers only
        untrained = tuple(sorted({v for v in untrained if type(v) is int})) if isinstance(untrained, list) else ()
        return MadeBy(sidecar=sidecar, model=str(model.get("name") or ""), model_path=str(model.get("path") or ""),
                      weights_sha256=str(model.get("weights_sha256") or ""), labels=labels or None,
                      labels_not_trained=untrained, **written)
    except (ValueError, AttributeError, TypeError) as error:
        raise InputError(f"{sidecar}: not a readable sidecar ({first_line(error)})") from error


def check_made_by(prediction: Path | str, made_by: MadeBy, package, given_as: str | None = None) -> None:
    """Refuses (:class:`ModelMismatchError`) a package that is not the model ``made_by`` records: another name, or
    the same name with other labels (a retrained "v2"; its values would be scored under the wrong names). Other
    weights of the same model and labels are scored, with a warning. ``given_as``: how the caller named the
    package (``--model hippocampus``), for the message; None: as the caller gives ``package``
    (:func:`medseg.settings_named.setting`)."""
    option = _option(given_as)
    if made_by.model and made_by.model != package.name:
        raise ModelMismatchError(f"{prediction} was made by model {made_by.model!r} (its sidecar says so), not "
                                 f"{package.name!r}; pass {_passed(given_as, _to_pass(made_by))} or leave {option} "
                                 "out")
    given_as = _given(given_as, package)
    if made_by.labels and _named(made_by.labels) != _named(package.labels):
        raise ModelMismatchError(f"{prediction} was made with labels {_labels_text(made_by.labels)} (its sidecar "
                                 f"says so), but {given_as} has {_labels_text(package.labels)}; pass the package "
                                 f"that made it, or leave {option} out")
    if made_by.weights_sha256 and made_by.weights_sha256 != package.sha256:
        warning(log, "%s was made by other weights of model %s (sha256 %s…, %s has %s…); its labels are the same, "
                    "so it is scored under them", prediction, package.name, made_by.weights_sha256[:12], option,
                    package.sha256[:12], raised="%s was made by other weights of model %s (sha256 %s…, %s has %s…); "
                    f"{NOT_SCORED}")


def _option(given_as: str | None) -> str:
    """The option that names a package, of ``given_as`` (``--model hippocampus`` -> ``--model``); None: the setting
    as the caller gives it (``package=...``, ``--model``)."""
    if given_as is None or not given_as.strip():
        return setting("package", ANY)
    return given_as.split()[0]


def _given(given_as: str | None, package) -> str:
    """How the caller gave ``package``: ``given_as``, else ``package='hippocampus'`` (``--model hippocampus``)."""
    return given_as if given_as is not None else setting("package", package.name)


def _passed(given_as: str | None, value: str) -> str:
    """The package ``value`` given as the caller gave the package: ``--model value``, ``package='value'``."""
    return setting("package", value) if given_as is None or not given_as.strip() else f"{_option(given_as)} {value}"


def _to_pass(made_by: MadeBy) -> str:
    """How to name the model ``made_by`` records: a shipped model by its name; a package of one's own by the folder
    the sidecar records (its name alone is not found from another folder)."""
    from medseg.package import shipped_models

    return made_by.model if made_by.model in shipped_models() else (made_by.model_path or made_by.model)


def check_folder_made_by(folder: Path | str, predictions: list[Path], package, given_as: str | None = None) -> None:
    """Refuses (:class:`ModelMismatchError`, one line) a package that made none of a folder's ``predictions``: where
    every one's sidecar names the same other model, or names the package's own model with labels other than the
    package's (a package of that name retrained with other labels), each case would fail alike. Folders of mixed or
    unnamed models, and sidecars that cannot be read, are left to each case's :func:`check_made_by`."""
    from medseg.package import ModelPackage

    if not isinstance(package, ModelPackage) or not predictions:  # a name or folder is loaded by each case
        return
    made: list[MadeBy] = []
    for prediction in predictions:
        try:
            made_by = read_made_by(prediction_sidecar(prediction))
        except InputError:  # each case says so as it is scored
            return
        if made_by is None or not made_by.model:
            return
        made.append(made_by)
    models = {made_by.model for made_by in made}
    option, first, passed = _option(given_as), made[0], _passed(given_as, _to_pass(made[0]))
    given_as = _given(given_as, package)
    whose = ("its prediction was", "its sidecar says") if len(made) == 1 else \
        (f"all {len(made)} of its predictions were", "their sidecars say")
    if models == {package.name}:
        if all(made_by.labels and _named(made_by.labels) != _named(package.labels) for made_by in made):
            them = "it" if len(made) == 1 else "them"
            raise ModelMismatchError(f"{folder}: {whose[0]} made by model {package.name!r} with other labels than "
                                     f"{given_as} has ({_labels_text(package.labels)}): {first.sidecar} records "
                                     f"{_labels_text(first.labels or {})} (a package of that name retrained with "
                                     f"other labels?); pass the package that made {them}, or leave {option} out")
        return
    if len(models) != 1:
        return
    raise ModelMismatchError(f"{folder}: {whose[0]} made by model {first.model!r} ({whose[1]} so), not "
                             f"{package.name!r}; pass {passed} or leave {option} out")


def _warn_if_changed(prediction: Path, made_by: MadeBy, scored_sha256: str | None) -> None:
    """Warns when the file scored (its SHA-256 as scoring read it) is not the segmentation its sidecar describes as
    written: an edited segmentation."""
    made, described = made_by.segmentation_sha256, made_by.segmentation
    if made is None or described is None or os.path.basename(described) != prediction.name:
        return  # the sidecar describes another file (or none)
    if scored_sha256 is None or scored_sha256 == made:
        return
    warning(log, "%s was changed after medseg infer wrote it (its SHA-256 is not the one its sidecar %s records): it "
                "is scored as it is now, under the label names and model the sidecar gives", prediction,
                made_by.sidecar.name,
                raised=f"%s was changed after medseg infer wrote it (its SHA-256 is not the one its sidecar %s "
                f"records); {NOT_SCORED}")


def made_by_of(prediction: Path | str, required: bool = False) -> MadeBy | None:
    """What the sidecar beside ``prediction`` records of how it was made. Where it is missing or cannot be read:
    an :class:`InputError` naming it when ``required`` (a cohort's own results), else None, with a warning for one
    that cannot be read (the labels then go unnamed and a package unchecked)."""
    prediction = Path(prediction)
    sidecar = prediction_sidecar(prediction)
    try:
        made_by = read_made_by(sidecar)
    except InputError as error:
        if required:
            raise
        warning(log, "%s: its label names and the model that made the prediction are not used", error,
                raised=f"%s; {NOT_SCORED}")
        return None
    if made_by is None and required:
        raise InputError(f"{sidecar}: no such file (the sidecar that names the labels of {prediction.name})")
    return made_by


_READ = object()  # score_prediction reads the sidecar itself


def _sidecar_record(prediction: Path | str, made_by: object, required: bool = False) -> MadeBy | None:
    """``made_by`` as :func:`score_prediction` is given it: the prediction's sidecar read (:func:`made_by_of`, with
    ``required``) where it is :data:`_READ`, a :class:`MadeBy` or None (no sidecar) as it is; anything else an
    :class:`InputError` naming its type, where it failed on an attribute deep in the scoring."""
    if made_by is _READ:
        return made_by_of(prediction, required)
    if made_by is None or isinstance(made_by, MadeBy):
        return made_by
    raise InputError(f"made_by: {type_text(made_by)} given; give a MadeBy (read_made_by's), or None for no sidecar")


def dataset_label_names(prediction: Path | str, reference: Path | str, warned: set | None = None,
                        tell_unusable: bool = True) -> tuple[dict[int, str], Path] | None:
    """Label names for a prediction no model names (no sidecar, no package): those of the Decathlon / nnU-Net
    ``dataset.json`` of the reference's dataset folder (``TaskXX/labelsTr/case.nii.gz`` → ``TaskXX/dataset.json``),
    else of one in the reference's own folder (a folder of test labels handed out with it), else of one in the
    prediction's folder (nnU-Net writes its dataset.json beside its predictions), with the file they come from. None
    where none is there or names any labels (a datalist names none). One that is there but whose names cannot be used
    (not readable, or nnU-Net's region-based labels) is named in a warning, unless it is in ``warned`` (the files
    warned about already, to which it is added: a folder of cases looks beside each case's reference), or unless
    ``tell_unusable`` is False (the labels are named otherwise)."""
    from medseg.io.dataset_json import NAME, named_as_given, names_for_scoring

    absolute = Path(reference).absolute()
    folders = ((absolute.parent.parent, reference), (absolute.parent, reference),
               (Path(prediction).absolute().parent, prediction))
    searched: dict[Path, Path | str] = {}
    for folder, given in folders:  # each folder once, in this order, named as the first to give it
        searched.setdefault(folder, given)
    for folder, given in searched.items():
        path = folder / NAME
        if os.path.isfile(path):  # False behind a folder that cannot be searched (Path.is_file raised there)
            names, reason = names_for_scoring(path)
            if names:
                return names, named_as_given(path, given)  # named as the files beside it are given
            if reason is not None and tell_unusable and (warned is None or path not in warned):
                # was passed over in silence: a region-based dataset's figures read as its regions'
                warning(log, "%s: %s; its label names are not used (the labels are named label_N)",
                        named_as_given(path, given), reason, raised=f"%s: %s; {NOT_SCORED}")
                if warned is not None:
                    warned.add(path)
    return None


def package_argument(package: ModelPackage | str | os.PathLike | None) -> ModelPackage | None:
    """``package`` as a caller gives it to :func:`score_prediction` or
    :func:`~medseg.folder_scoring.score_folder`: a loaded :class:`~medseg.package.ModelPackage`, a shipped model's name
    or a package folder (loaded; any ``os.PathLike``, as :func:`~medseg.package.load_package` takes), or None; another
    type is a :class:`~medseg.errors.ModelPackageError` naming it."""
    if is_path(package):
        from medseg.package import load_package

        return load_package(package, check_hash=False)
    if package is not None:
        from medseg.package import ModelPackage

        if not isinstance(package, ModelPackage):  # failed on "'int' object has no attribute 'labels'"
            from medseg.errors import ModelPackageError

            raise ModelPackageError(f"{type_text(package)} given as the model package; give a shipped model's name, "
                                    "a package folder or a loaded medseg.package.ModelPackage")
    return package


def score_prediction(prediction: Path | str, reference: Path | str, case_id: str | None,
                     package: ModelPackage | str | os.PathLike | None = None,
                     given_as: str | None = None, sidecar_required: bool = False,
                     made_by: MadeBy | None | object = _READ, names: dict[int, str] | None = None,
                     names_from: Path | str | None = None, named_for: Path | str | None = None) -> dict:
    """The metrics record (schema medseg-metrics/1) of ``prediction`` against ``reference``.

    Label names (and the values that count) come from ``package`` (a :class:`~medseg.package.ModelPackage`, or the name
    or folder of one), else from the prediction's sidecar, else every value present is scored, named after ``names`` (a
    dataset.json's, :func:`dataset_label_names`, ``names_from`` its file; also the labels it declares that neither file
    holds; a DICOM SEG reference's segments are paired with them by name), else a DICOM SEG reference's SegmentLabel,
    else ``label_N``. A ``package`` must be the model the sidecar names
    (:func:`check_made_by`). The sidecar is read by :func:`made_by_of` (``sidecar_required`` as its ``required``),
    unless ``made_by`` gives what it read already. The DICOM codes of a DICOM SEG's segments come from ``package``, else
    from the sidecar. A ``package`` that did not make the prediction is a :class:`~medseg.errors.ModelMismatchError`;
    a file missing or unreadable an :class:`~medseg.errors.ImageReadError`, one that holds no label image an
    :class:`~medseg.errors.InputError`, two that share no grid a :class:`~medseg.errors.GeometryError`. A reference
    whose file name holds a number the prediction's lacks and the reverse is warned about and noted in the record
    (:func:`~medseg.case_numbers.other_case_note`); ``named_for``, the image the prediction was made from, is
    compared in its place where the prediction is named otherwise (a cohort's, after the sheet's case id). A
    ``case_id`` that is neither text nor None is an :class:`~medseg.errors.InputError` before any file is read
    (:func:`~medseg.metrics.checked_case_id`)."""
    from medseg.metrics import checked_case_id

    case_id = checked_case_id(case_id)
    prediction, reference = path_argument(prediction, "the prediction"), path_argument(reference, "the reference")
    package = package_argument(package)
    made_by = _sidecar_record(prediction, made_by, sidecar_required)
    labels = codes = None
    if package is not None:
        if made_by is not None:
            check_made_by(prediction, made_by, package, given_as)
        labels, codes = package.labels, package.label_codes or None  # none of its own: the sidecar's
    elif made_by is not None:
        labels = made_by.labels  # the label names of the model that made the prediction
    if sidecar_required and not labels:
        raise InputError(f"{prediction_sidecar(prediction)}: names no labels, so {prediction.name} cannot be scored "
                         "by name")
    metrics = evaluate_files(prediction, reference, labels, case_id=case_id, label_codes=codes,
                             names=None if labels else names, names_from=None if labels else names_from)
    if made_by is not None:
        _warn_if_changed(prediction, made_by, metrics.get("prediction_sha256"))
    else:
        _warn_if_swapped(prediction, Path(reference), metrics.get("reference_sha256"))
    if package is not None and made_by is None:  # no sidecar names the model: the package it was scored under,
        # whose CT window (model.json report.ct_window) the QA report draws the case in, as a sidecar's model's
        metrics["scored_with_model"] = {"name": package.name, "version": package.config.get("version"),
                                        "config_sha256": package.config_sha256} | (
            {"ct_window": package.report_ct_window} if package.report_ct_window else {})
    named = Path(named_for) if named_for is not None else prediction
    other_case = other_case_note(named, reference, role="prediction" if named_for is None else "image")
    if other_case is not None:  # nothing else tells a reference of another case on a shared grid
        warn(f"{reference}, the reference given for {named}: {other_case}", log,
             raised=f"{reference}, the reference given for {named}: " + other_case.replace(
                 "; a reference given out of order is scored all the same)", f"); {NOT_SCORED}"))
        metrics.setdefault("notes", []).append(f"reference: {other_case}")
    return metrics


def score_pair(prediction: Path | str, reference: Path | str, case_id: str, package=None,
               given_as: str | None = None, made_by=_READ,
               warned: set | None = None) -> tuple[dict, Path | None]:
    """The metrics record of ``prediction`` against ``reference`` as ``medseg evaluate`` makes it, for one pair and
    for each pair of two folders alike: :func:`score_prediction`, its label names from ``package``, else the
    prediction's sidecar, else a Decathlon / nnU-Net dataset.json (:func:`dataset_label_names`). Returns the record
    and the dataset.json the names came from (None where they did not); ``warned`` as :func:`dataset_label_names`
    takes it."""
    # an unreadable sidecar is warned about before the dataset.json is looked for
    made_by = _sidecar_record(prediction, made_by)
    names = source = None
    if package is None and (made_by is None or not made_by.labels):
        found = dataset_label_names(prediction, reference, warned)
        if found is not None:
            names, source = found
    else:
        _warn_if_dataset_names_differ(prediction, reference, package, made_by, warned)
    metrics = score_prediction(prediction, reference, case_id, package, given_as=given_as, made_by=made_by,
                               names=names, names_from=source)
    return metrics, source


def _warn_if_dataset_names_differ(prediction: Path | str, reference: Path | str, package, made_by,
                                  warned: set | None) -> None:
    """:func:`warn_if_dataset_names_differ` for labels named by the model: ``package``, else the sidecar ``made_by``
    read."""
    labels = package.labels if package is not None else made_by.labels
    whose = (f"the model {package.name}" if package is not None
             else f"the prediction's sidecar {made_by.sidecar.name}")
    warn_if_dataset_names_differ(reference, labels, whose, prediction, warned)


def warn_if_dataset_names_differ(reference: Path | str, labels: Mapping, whose: str,
                                 prediction: Path | str | None = None, warned: set | None = None,
                                 logged: set | None = None) -> None:
    """Warns where ``labels`` (value → name, as ``whose`` names them: "the model phantom") name the values of a
    Decathlon / nnU-Net dataset.json of the reference's dataset (as :func:`dataset_label_names` finds it; beside the
    ``prediction`` too, where given) otherwise, beyond letter case and how a name's words are joined (``left_kidney``,
    ``Left Kidney``): scoring goes by value, so the model's label 1 is
    scored against what the reference holds as 1, which may be another structure (another labelling convention).
    A value only the dataset.json names is compared only where its name is one of ``labels``' (nnU-Net's ``ignore``,
    or a structure the model does not segment, is no other convention). Once per file and names in ``warned``, where
    given (to which they are added once told: a warning an "error" filter raised is raised again for each case),
    while the file is unchanged: one edited since (its size or modification time) is warned about again. ``logged``,
    where given: told at each call (Python's filters deciding whether it is shown), its log line written once per
    file and names in that set (a process's: a command's batch of inputs logs it once, a notebook calling again hears
    it again, as a package's warnings at each load)."""
    from medseg.io.dataset_json import renamed_labels, same_label_name

    found = dataset_label_names(reference if prediction is None else prediction, reference, tell_unusable=False)
    if found is None:
        return
    declared, path = found
    named = {int(value): str(name) for value, name in labels.items()}
    # a value only the dataset.json names is another convention only where it names one of the model's structures
    # (the model's anterior as 3): nnU-Net's ignore label, or a structure the model does not segment, is none
    moved = {value: name for value, name in declared.items() if value in named
             or any(same_label_name(name, ours, separators_aside=True) for ours in named.values())}
    # spelt otherwise (left_kidney, Left Kidney) is one structure: the warning is for another labelling convention
    theirs, ours = renamed_labels(moved, {value: name for value, name in named.items() if value in declared},
                                  separators_aside=True)
    # the file as it is now (size, modification time): one edited since its warning says something else, and a
    # long-lived process (a notebook, a service) keeping ``warned`` hears of it again
    key = (path, _file_state(path), tuple(sorted(named.items())))
    if not theirs or (warned is not None and key in warned):
        return

    def shown(names: dict) -> str:
        return ", ".join(f"{value} {name}" for value, name in names.items())

    named_otherwise = f"{path} names labels {shown(theirs)}; {whose} names them {shown(ours)}"
    told = warn(f"{named_otherwise}: each label is scored by its value under the model's name; check that the "
                "reference uses the model's label values", None if logged is not None and key in logged else log,
                raised=f"{named_otherwise}: check that the reference uses the model's label values; {NOT_SCORED}")
    if told:  # once told: where an "error" filter raised it, each case of the batch is failed so
        for once in (warned, logged):
            if once is not None:
                once.add(key)


def _file_state(path: Path) -> tuple[int, int] | None:
    """``path``'s size and modification time (ns), which change when it is edited; None where it cannot be looked at."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return status.st_size, status.st_mtime_ns


def _warn_if_swapped(prediction: Path, reference: Path, scored_sha256: str | None = None) -> None:
    """Warns when the reference is a segmentation ``medseg infer`` wrote (its sidecar describes it) and the prediction
    has no sidecar: the two given the wrong way round, which scores the same Dice under unnamed labels, with the
    predicted and reference volumes (and false positives and negatives) exchanged. A prediction whose sidecar is
    there but cannot be read (warned about as it was read) is medseg's own, not a swapped reference; a reference
    changed since medseg infer wrote it (``scored_sha256``, as scoring read it, not its sidecar's: corrected by a
    reader) is a reference."""
    if os.path.lexists(prediction_sidecar(prediction)):
        return
    try:
        made_by = read_made_by(prediction_sidecar(reference))
    except InputError:
        return
    if made_by is None or made_by.segmentation is None or os.path.basename(made_by.segmentation) != reference.name:
        return
    if None not in (scored_sha256, made_by.segmentation_sha256) and scored_sha256 != made_by.segmentation_sha256:
        return
    warning(log, "%s, given as the reference, is a segmentation medseg infer made (its sidecar %s says so), and the "
                "prediction %s has none: are they swapped? The prediction comes first", reference,
                made_by.sidecar.name, prediction)


def evaluate_files(
    pred_path: Path | str,
    ref_path: Path | str,
    labels: dict[int, str] | None = None,
    case_id: str | None = None,
    label_codes: dict | None = None,
    names: dict[int, str] | None = None,
    names_from: Path | str | None = None,
) -> dict:
    """Read two label images and score them; labels default to the values present, named ``label_N``, or after
    ``names`` (a dataset.json's: the values it declares are scored whether present or not; a value present that it
    does not declare is warned about and named ``label_N``), else, for a DICOM SEG reference, after its segments'
    SegmentLabel (each segment scored as its segment number; with ``names``, as the label of ``names`` its
    SegmentLabel gives, else its segment number, and refused where ``names`` names that value otherwise:
    :func:`~medseg.io.seg_labels.pair_by_name`, ``names_from`` the file named in that refusal).

    A prediction written as a DICOM SEG (``<stem>_seg.dcm``) is placed on its source series, which its sidecar
    (``<stem>_seg.json`` beside it) names; so is a reference that is a DICOM SEG of that series
    (:func:`~medseg.io.label_images.read_seg_reference`; ``label_codes``, a model package's, match its segments
    where no name does), and a SEG reference of a prediction made from an image file (dcm2niix's NIfTI of the
    series) or without a sidecar is placed by its frames' own geometry on the prediction's grid. A file missing or
    unreadable is an :class:`~medseg.errors.ImageReadError`, one that holds no label image an
    :class:`~medseg.errors.InputError`, two that share no grid a :class:`~medseg.errors.GeometryError`."""
    from medseg.errors import MedsegError
    from medseg.grid_match import check_header_shape
    from medseg.io.atomic import sha256_of
    from medseg.io.files import is_dicom_file
    from medseg.io.images import read_grid
    from medseg.io.label_images import read_prediction_values, read_reference_values, read_seg_reference
    from medseg.io.nifti import files_read
    from medseg.io.pairs import file_signature
    from medseg.label_values import label_values
    from medseg.metrics import evaluate_volumes
    from medseg.numbers import values_text

    pred_path, ref_path = path_argument(pred_path, "the prediction"), path_argument(ref_path, "the reference")
    if labels is not None:
        labels = {int(value): str(name) for value, name in labels.items()}  # JSON gives the keys as text
    if Path(pred_path).is_file() and not is_dicom_file(pred_path):  # both shapes from the headers, before the reads
        try:
            pred_shape, pred_affine = read_grid(pred_path)
        except (MedsegError, OSError, ValueError):  # reading it names the problem
            pred_shape = None
        if pred_shape is not None:
            check_header_shape(pred_path, pred_shape, ref_path, affine=pred_affine)
    # each with the values it holds where reading it found them: not looked for again below (0.5 s a file)
    pred, pred_values = read_prediction_values(pred_path, labels)
    pred.source_sha256 = sha256_of(pred_path)
    if is_dicom_file(pred_path):  # a DICOM SEG's grid is its source series', known once it is placed: the
        # reference's header is checked against it before the reference's voxels are read, as beside a NIfTI one
        check_header_shape(pred_path, pred.shape[:3], ref_path, affine=pred.affine)
    reference_signature = file_signature(ref_path)  # before the read: see medseg.report.stale_results
    if is_dicom_file(ref_path):
        ref, ref_values = read_seg_reference(ref_path, pred_path, labels, label_codes, grid=pred,
                                             names=None if labels is not None else names, names_from=names_from), None
        ref.source_sha256 = sha256_of(ref_path)
    else:
        ref, ref_values = read_reference_values(ref_path, labels)
        ref.source_sha256 = sha256_of(files_read(ref_path))  # both files of a header / image pair
        if labels is None and names:  # a 3D Slicer segmentation's segment names against the dataset.json's
            from medseg.io.label_images import _check_segment_names

            _check_segment_names(ref_path, ref, {int(k): str(v) for k, v in names.items()}, ref_values,
                                 whose="the dataset.json's")
    if labels is None:
        present = {int(value) for volume, values in ((pred, pred_values), (ref, ref_values))
                   for value in (label_values(volume.array) if values is None else values).tolist()} | {0}
        names = {int(value): str(name) for value, name in (names or {}).items()}
        # a DICOM SEG reference read with no labels named: each segment its segment number, named by its SegmentLabel
        segment_names = {int(value): str(name) for value, name in (ref.info or {}).get("seg_label_names", {}).items()}
        undeclared = sorted(int(v) for v in present - set(names) - {0})
        if names and undeclared:
            by_segment = [v for v in undeclared if v in segment_names]
            shown = _labels_text({v: segment_names[v] for v in by_segment})
            how = ("scored as label_N" if not by_segment else f"scored under the reference's segment labels ({shown})"
                   if len(by_segment) == len(undeclared) else
                   f"scored under the reference's segment labels ({shown}), the others as label_N")
            undeclared_text = (f"{pred_path}, {ref_path}: label values {values_text(undeclared)} are not among the "
                               f"labels the dataset.json names ({_labels_text(names)})")
            warn(f"{undeclared_text}; {how}", log, raised=f"{undeclared_text}; {NOT_SCORED}")
        labels = {int(v): names.get(int(v)) or segment_names.get(int(v)) or f"label_{int(v)}"
                  for v in sorted(present | set(names))}
        ignore = [value for value, name in names.items() if value and name.strip().casefold() == "ignore"]
        if ignore:  # nnU-Net leaves those voxels out of every label's figures
            warning(log, "%s: label %d 'ignore' is nnU-Net's ignore label (voxels without annotation); medseg scores "
                        "it as a label, and a prediction of another label in its voxels counts as a false positive, "
                        "where nnU-Net's evaluation leaves those voxels out", ref_path, ignore[0],
                    raised=f"%s: label %d 'ignore' is nnU-Net's ignore label (voxels without annotation), which medseg "
                    f"scores as a label where nnU-Net's evaluation leaves its voxels out; {NOT_SCORED}")
    metrics = evaluate_volumes(pred, ref, labels, case_id=case_id)
    metrics["reference_signature"] = reference_signature
    return metrics


def _named(labels: dict) -> dict[int, str]:
    """The labels that count: what background is called does not."""
    return {int(value): str(name) for value, name in labels.items() if int(value) != 0}


def _labels_text(labels: dict) -> str:
    return ", ".join(f"{value} {name}" for value, name in sorted(_named(labels).items()))
