"""Resuming a training run from its checkpoint: the checks that it goes on with the same data, validation cases
and settings (only the epoch count may change), a finished run's package kept where it is intact
(:func:`finished_package`), and the ``label_codes`` a resumed run carries into its package."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from medseg.checkpoint import (
    check_weights_digest,
    checkpoint_epoch,
    checkpoint_planned_epochs,
    checkpoint_record_path,
    checkpoint_tensors_path,
    read_checkpoint_json,
    read_checkpoint_record,
)
from medseg.errors import MedsegError, ModelPackageError, TrainingError
from medseg.io.atomic import atomic_paths, sha256_of
from medseg.io.files import os_reason
from medseg.model_card import card_with_codes
from medseg.package import ModelPackage, load_package
from medseg.package_config import CONFIG_NAME, read_config_bytes, validate_config
from medseg.package_training import CHECKPOINT_DIR, recorded_trained_with, swapped_names, unfinished_training
from medseg.package_weights import recorded_weights_sha256
from medseg.settings_named import ANY, has_option, setting
from medseg.train_config import DEFAULT_DESCRIPTION, check_config, split_text
from medseg.training_cases import TrainCase

__all__ = [
    "check_resume", "check_trained_on", "finished_package", "carried_codes", "carried_notes", "check_same_data",
    "config_given", "folder_codes", "folder_config", "resume_key", "tell_other_notes", "trained_labels",
    "with_label_codes"
]

log = logging.getLogger(__name__)


def check_resume(out_dir: Path | str, config: dict, val_ids: list[str], val_split: str = "",
                 case_ids: list[str] | None = None, epochs_given: bool = True) -> None:
    """Refuse to resume the checkpoint in ``out_dir`` with other cases (``case_ids``, all of them, when given), other
    validation cases or other settings than it was started with (only the epoch count may change); call before
    reading the cases to fail early. ``epochs_given``: whether the epoch count was asked for (``--epochs``); when
    not, and the config's differs from the run's plan, a refusal's hint names the plan's too, so that following it
    is not refused again for the epoch count."""
    out_dir = Path(out_dir)
    settings = check_config(config)
    package_config = {k: v for k, v in config.items() if k != "training"}
    package_config.setdefault("format", "medseg-model/1")
    meta = checkpoint_record_path(out_dir)
    if not meta.is_file():
        raise TrainingError(f"{out_dir}: nothing to resume (no checkpoint record {CHECKPOINT_DIR}/last.json in it)")
    recorded = read_checkpoint_record(meta)
    if "config" not in recorded:  # an earlier medseg's: nothing to compare this run's settings with
        raise TrainingError(f"{meta}: the checkpoint does not record the settings its run was started with (written "
                            "by an earlier medseg), so resuming cannot check that this run continues it; start "
                            f"again with {setting('overwrite')}")
    # damaged weights are told before the cases are read and the run announced
    check_weights_digest(checkpoint_tensors_path(out_dir, recorded), recorded.get("weights_sha256"), meta.name)
    done = recorded["epoch"]  # an int: read_checkpoint_record checked it
    planned = checkpoint_planned_epochs(out_dir)
    if int(settings["epochs"]) < done:
        if planned is not None and planned > done:
            raise TrainingError(f"{out_dir}: the checkpoint has {done} finished epochs of the {planned} planned, more "
                                f"than the {settings['epochs']} asked for ({_epochs_asked()}); give "
                                f"{setting('epochs', planned, python=EPOCHS)} to finish it as planned, or at least "
                                f"{done}")
        raise TrainingError(f"{out_dir}: the checkpoint has {done} finished epochs, more than the {settings['epochs']} "
                            f"asked for ({_epochs_asked()}); ask for at least as many")
    trained_on = recorded.get("data_sha256")
    if case_ids is not None and isinstance(trained_on, dict) and set(trained_on) != set(case_ids):
        # an added or removed case also moves the seeded split: named as what it is, not as a split setting
        check_same_data(out_dir, dict.fromkeys(trained_on, []), dict.fromkeys(case_ids, []))
    started_with = resume_key(package_config, settings)
    changed = _differences(_patch_resolved(recorded["config"]), started_with)
    before = recorded["config"].get("training", {})
    options = [setting(key, before[key], python=f"training.{key}: {{value}}") for key in
               ("steps_per_epoch", "seed", "fold") if f"training.{key}" in changed and before.get(key) is not None]
    if options and not epochs_given and planned is not None and planned != int(settings["epochs"]):
        # else the command the hint gives is refused for its epoch count
        options.append(setting("epochs", planned, python="training.epochs: {value}"))
    shown = " ".join(options) if has_option("epochs") else ", ".join(options)
    given = f" (give {shown} as it was)" if options else ""
    if recorded.get("val_cases", val_ids) != val_ids:
        then = f"{split_text(before)} then, " if before else ""
        raise TrainingError(f"{out_dir}: the checkpoint was validated on other cases "
                            f"({then}{val_split or 'another split'} now); resume with the split settings it was "
                            f"started with{given}")
    if changed:
        shown = ", ".join(changed[:6]) + (" …" if len(changed) > 6 else "")
        raise TrainingError(f"{out_dir}: the checkpoint was started with other settings ({shown}); resume with the "
                            f"config it was started with{given} (only the epoch count may change), or start again "
                            f"with {setting('overwrite')}")


def resume_key(package_config: dict, settings: dict) -> dict:
    """What a resumed run must share with the run it continues: everything but the epoch count, the package's name
    (a run without a config is named after its folder, which may since have been moved), data notes and the labels'
    DICOM SEG codes."""
    key = {k: v for k, v in package_config.items()
           if k not in ("weights", "name", "description", "version", "input_extent_mm", "input_intensity",
                        "label_codes")}
    key["training"] = {k: v for k, v in settings.items() if k not in ("epochs", "data")}
    return json.loads(json.dumps(key))


def _patch_resolved(key: dict) -> dict:
    """``key`` (a checkpoint's resume key) with a default ``training.patch_size`` (null: the inference tile) written
    out, as :func:`~medseg.train_config.check_config` now writes it: a checkpoint from before then, started with the
    default, compares equal to the same run resumed."""
    if not isinstance(key, dict) or not isinstance(key.get("inference"), dict):
        return key
    training, tile = key.get("training"), key["inference"].get("roi_size")
    if isinstance(training, dict) and training.get("patch_size") is None and isinstance(tile, list):
        training["patch_size"] = list(tile)
    return key


def _differences(before, after, at: str = "") -> list[str]:
    """Dotted paths where two JSON-like values differ."""
    if isinstance(before, dict) and isinstance(after, dict):
        found = []
        for key in sorted(set(before) | set(after), key=str):
            path = f"{at}.{key}" if at else str(key)
            if key not in before or key not in after:
                found.append(path)
            else:
                found += _differences(before[key], after[key], path)
        return found
    return [] if before == after else [at or "(top level)"]


def check_same_data(out_dir: Path, recorded: dict | None, now: dict) -> None:
    """A resumed run must train on the files the checkpoint was trained on (same contents by SHA-256)."""
    if recorded is None or not now:  # a checkpoint from before data fingerprints: nothing to compare
        return
    changed = sorted(k for k in set(recorded) & set(now) if list(recorded[k]) != list(now[k]))
    added, removed = sorted(set(now) - set(recorded)), sorted(set(recorded) - set(now))
    if changed or added or removed:
        parts = [f"{what}: {', '.join(ids[:5])}{' …' if len(ids) > 5 else ''}"
                 for what, ids in (("changed", changed), ("added", added), ("removed", removed)) if ids]
        raise TrainingError(f"{out_dir}: the checkpoint was trained on other data ({'; '.join(parts)}); resume with "
                            f"the files it was started with, or start again with {setting('overwrite')}")


def check_trained_on(out_dir: Path | str, cases: list[TrainCase]) -> None:
    """Refuse when the checkpoint in ``out_dir`` was trained on other files than ``cases``: the SHA-256 of each image
    and label file, as training records them; those :func:`~medseg.training_cases.load_cases` took as it read them,
    else (cases only paired, not read) hashed here without reading the voxels."""
    from medseg.io.nifti import files_read

    recorded = read_checkpoint_record(checkpoint_record_path(out_dir)).get("data_sha256")
    now = {c.case_id: list(c.sha256) if c.sha256 is not None else
           [sha256_of(files_read(c.image_path)), sha256_of(files_read(c.label_path))] for c in cases}
    check_same_data(Path(out_dir), recorded, now)


def _os_error_words(error: OSError) -> str:
    """An OS error as the other messages word it: the failing file once, then the OS's reason in lower case."""
    return f"{error.filename}: {os_reason(error)}" if error.filename else os_reason(error)


def finished_package(out_dir: Path | str, epochs: int, names_kept: bool = False) -> ModelPackage | None:
    """The package of a run in ``out_dir`` that has finished ``epochs`` epochs, where that package is intact (its
    config valid and as the run trained it, its weights matching their recorded SHA-256 and its architecture, its
    card present): resuming it has nothing to do. None otherwise: a package deleted, damaged, edited or replaced
    since is made again from the checkpoint. ``names_kept``: a run without a config, which keeps the package's label
    names (:func:`carried_notes`): only the labels' values must be the run's."""
    out_dir = Path(out_dir)
    card = out_dir / "MODEL_CARD.md"
    if checkpoint_epoch(out_dir) != epochs or unfinished_training(out_dir):
        return None

    def remade(why: str) -> None:  # the run had written its package: a copy someone uses may be damaged too
        log.warning("%s: the finished run's package %s; it is made again from the checkpoint", out_dir, why)

    if not card.is_file() or not card.stat().st_size:
        return remade("has no model card (MODEL_CARD.md missing or empty)")
    try:
        record = read_checkpoint_json(checkpoint_record_path(out_dir))
        made, started = record.get("package_sha256"), record.get("config") or {}
        package = load_package(out_dir, check_hash=False)  # its weights below, once an edit has been told
    except (OSError, ValueError, AttributeError, MedsegError) as error:
        if isinstance(error, OSError) and not isinstance(error, MedsegError):  # "[Errno 13] …: '/path'" otherwise
            return remade(f"cannot be read ({_os_error_words(error)})")
        return remade(f"cannot be read ({error})")
    # what the weights are, as the run trained them: a model.json edited since (another width, labels swapped) was
    # called intact and kept, and then failed to load, or named the labels wrongly (label_codes, which may be
    # edited by hand, are kept when it is made again)
    def meaning(config: dict, key: str):
        value = config.get(key)
        if key == "labels" and names_kept and isinstance(value, dict):  # renamed: kept; names swapped: edited
            return sorted(value), bool(swapped_names(trained_labels(package.config) or {}, value))
        return value

    edited = [key for key in _PACKAGE_MEANING
              if key in started and meaning(package.config, key) != meaning(started, key)]
    if edited:
        log.warning("%s: its %s no longer what this run trained; the package is made again from the checkpoint",
                    out_dir / CONFIG_NAME, " and ".join(edited) + (" are" if edited != ["architecture"] else " is"))
        return None
    if made is None:  # a checkpoint from before the package's SHA-256 was recorded: nothing to compare with
        return None
    if made != package.sha256:
        return remade(f"holds other weights than it wrote (SHA-256 {package.sha256[:12]}…, written {made[:12]}…)")
    try:
        package.check_weights()  # their SHA-256, and their shapes against its architecture
    except MedsegError as error:
        return remade(f"is damaged ({error})")
    return package


# model.json's keys that say what the weights are (its inference and preprocessing may be tuned by hand, and records
# of older versions hold other defaults for them)
_PACKAGE_MEANING = ("architecture", "labels")


def carried_codes(out_dir: Path, state: dict, package_config: dict) -> dict | None:
    """The ``label_codes`` a resumed run whose config declares none keeps. The package in ``out_dir`` is the word
    when it is this run's own (the checkpoint records its weights): its codes as they stand, none included (codes
    added or removed by hand, the way for a run without a config). Otherwise (no package, one being made again, one
    an ``--overwrite`` run is replacing) the codes the checkpoint carries. Codes that do not fit this run's labels are
    dropped with a warning, before training; codes of a package this run does not continue are named if not kept."""
    def fitting(codes, source: str) -> bool:
        try:
            validate_config({**package_config, "label_codes": codes}, source)
        except ModelPackageError as error:
            log.warning("%s; these label_codes are not kept", error)
            return False
        return True

    path = out_dir / CONFIG_NAME
    package = folder_config(out_dir) or {}
    found = package.get("label_codes") if isinstance(package.get("label_codes"), dict) else None
    found = found or None
    own = _own_package(out_dir, state, package)
    if own and (not found or fitting(found, str(path))):
        return found
    codes = state.get("label_codes") or None
    if codes and not fitting(codes, f"{out_dir}: the checkpoint"):
        codes = None
    if found and not own and codes != found:
        log.warning("%s: the package in the folder is not the one this run's checkpoint last wrote (it is being "
                    "replaced, extended or made again), and its label_codes, which differ from the checkpoint's, are "
                    "not kept; give them in the config to keep them", path)
    if codes:
        log.info("%s: label_codes kept from the checkpoint (the config declares none)", out_dir)
    return codes


def _own_package(out_dir: Path, state: dict, package: dict) -> bool:
    """Whether ``package`` (the config in ``out_dir``) is the run's own: the one its checkpoint (``state``) last
    wrote, still whole (not one being made again)."""
    weights = package.get("weights") if isinstance(package.get("weights"), dict) else {}
    return (state.get("package_sha256") is not None and state.get("package_sha256") == recorded_weights_sha256(package)
            and (out_dir / str(weights.get("file", "weights.safetensors"))).is_file())


# the package's fields a run without a config keeps when resumed: named by hand in model.json (the way for a run
# without a config), or after a folder since moved
_NOTES = ("name", "version", "description")


def carried_notes(out_dir: Path, state: dict, package_config: dict) -> dict:
    """The ``name``, ``version``, ``description`` and ``labels`` (their names: the values are the run's) a resumed
    run without a config writes its package with, where they are not ``package_config``'s (the default config's,
    named after the folder). As :func:`carried_codes` takes codes: the package in ``out_dir`` is the word when it is
    the run's own; otherwise the ones the checkpoint carries (``package_notes``, recorded by the session that kept
    them). Labels are kept only with the run's values; a field that does not fit the package config is not kept,
    with a warning. Fields of a package this run does not continue are named, with the value written instead."""
    path = out_dir / CONFIG_NAME
    package = folder_config(out_dir) or {}
    found = {key: package[key] for key in _NOTES if key in package}
    labels = package.get("labels")
    if isinstance(labels, dict) and set(labels) == {str(v) for v in package_config["labels"]}:
        swapped = swapped_names(trained_labels(package) or {}, labels)
        if swapped:  # the same weights would read as other labels: a swap is not a rename
            log.warning("%s: label %s carry the names other labels were trained with; its label names are not "
                        "kept", path, ", ".join(swapped))
        else:
            found["labels"] = labels
    if not _own_package(out_dir, state, package):
        recorded = state.get("package_notes") if isinstance(state.get("package_notes"), dict) else {}
        carried = {k: v for k, v in recorded.items() if k in _NOTES}
        if isinstance(recorded.get("labels"), dict) and set(recorded["labels"]) == set(package_config["labels"]):
            carried["labels"] = recorded["labels"]
        written = {**package_config, **carried}
        reverted = [f"{key} {found[key]!r} -> {written.get(key)!r}" for key in _NOTES
                    if key in found and found[key] != written.get(key)]
        reverted += [f"label {value} {name!r} -> {written['labels'].get(value)!r}"
                     for value, name in found.get("labels", {}).items() if name != written["labels"].get(value)]
        if reverted:
            log.warning("%s: the package in the folder is not the one this run's checkpoint last wrote (it is being "
                        "replaced or made again); its names are not kept: %s (edit %s and MODEL_CARD.md after the run "
                        "to keep them)", path, ", ".join(reverted), CONFIG_NAME)
        found, source = carried, f"{out_dir}: the checkpoint"
    else:
        source = str(path)
    kept = {}
    for key, value in found.items():
        if value == package_config.get(key):
            continue
        try:
            validate_config({**package_config, key: value}, source)
        except ModelPackageError as error:
            log.warning("%s; %s not kept", error, "its label names are" if key == "labels" else f"its {key} is")
            continue
        kept[key] = value
    if kept:
        log.info("%s: %s kept from %s (a run without a config)", out_dir,
                 ", ".join("label names" if key == "labels" else key for key in kept), source)
    return kept


def trained_labels(config: dict) -> dict | None:
    """The label names a package's weights were trained with (``training.trained_with``), if it records them."""
    labels = (recorded_trained_with(config) or {}).get("labels")
    return labels if isinstance(labels, dict) else None


def folder_config(out_dir: Path) -> dict | None:
    """The package config in ``out_dir`` as its file holds it (not validated), if one is there and readable."""
    path = Path(out_dir) / CONFIG_NAME
    if not path.is_file():  # a named pipe in its place would wait for a writer
        return None
    try:
        # as load_package reads it
        config = json.loads(read_config_bytes(path).decode("utf-8-sig"))
    except (OSError, ValueError, RecursionError):  # a ModelPackageError (too large) too; RecursionError: json's
        return None  # own error for brackets nested thousands deep
    return config if isinstance(config, dict) else None


def folder_codes(out_dir: Path) -> dict | None:
    """The ``label_codes`` of the package config in ``out_dir``, if one is there, readable and has some."""
    codes = (folder_config(out_dir) or {}).get("label_codes")
    return codes if isinstance(codes, dict) and codes else None


def with_label_codes(package: ModelPackage, codes: dict | None) -> tuple[ModelPackage, bool]:
    """The finished ``package``, its ``label_codes`` (and the card's line on them) rewritten to ``codes`` where they
    differ (codes do not change training, so a finished run takes new ones without training); True when rewritten.
    The rest of the card is kept as it is (it may have been edited)."""
    out_dir = package.path
    if not codes or package.config.get("label_codes") == codes:
        return package, False
    config = {**package.config, "label_codes": codes}
    validate_config(config, str(out_dir / CONFIG_NAME))
    card = out_dir / "MODEL_CARD.md"
    # the card as bytes the user may have written in another encoding: kept as they are
    text = card_with_codes(card.read_text(errors="surrogateescape"), config)
    if text is None:
        log.warning("%s: has no '- Labels:' line to put the codes after; the new label_codes are in %s only", card,
                    CONFIG_NAME)
    with atomic_paths([out_dir / CONFIG_NAME, *([card] if text is not None else [])], overwrite=True) as temps:
        temps[0].write_text(json.dumps(config, indent=2) + "\n")
        if text is not None:
            temps[1].write_text(text, errors="surrogateescape")
    log.info("%s: label_codes written into the finished package", out_dir)
    # the weights, checked on loading, are unchanged
    return ModelPackage(path=out_dir, config=config, config_sha256=sha256_of(out_dir / CONFIG_NAME)), True


def config_given(config: dict) -> bool:
    """Whether ``config`` is one given with ``-c``, not the default made for a run without one (which carries
    :data:`~medseg.train_config.DEFAULT_DESCRIPTION`)."""
    return config.get("description") != DEFAULT_DESCRIPTION


def tell_other_notes(package: ModelPackage, config: dict) -> None:
    """Warn (a :class:`~medseg.errors.MedsegWarning` and a log line) when the config resuming a finished ``package``
    describes it otherwise (its name, its description, its data notes): the package keeps its own, as its card may
    have been edited since."""
    def notes(of: dict) -> tuple:
        training = of.get("training") if isinstance(of.get("training"), dict) else {}
        settings = training.get("settings") if isinstance(training.get("settings"), dict) else {}  # a record, free-form
        return of.get("name"), of.get("description"), settings.get("data")

    ours = notes(package.config)
    theirs = (config.get("name"), config.get("description"), (config.get("training") or {}).get("data"))
    if not config_given(config):  # a run started with one, resumed without (its name is the folder's, which may
        theirs = (None, None, theirs[2])  # have moved): nothing said
    differ = [what for what, a, b in zip(("name", "description", "training.data"), ours, theirs)
              if b is not None and a != b]
    if differ:  # told to a Python caller too (a MedsegWarning), which a notebook without logging configured hears
        from medseg.caller_warnings import warning

        warning(log, "%s: the finished package keeps its %s; the config gives other text, which resuming does not "
                     "write (edit %s and MODEL_CARD.md, or train again with %s)", package.path, " and ".join(differ),
                CONFIG_NAME, setting("overwrite"))


EPOCHS = "training.epochs: {value} in the config"  # the epoch count, as a Python caller gives it


def _epochs_asked() -> str:
    """Where the epoch count a run asks for is given: ``--epochs / training.epochs`` on the command line, the
    config's ``training.epochs`` for a Python caller."""
    epochs = setting("epochs", ANY, python="training.epochs")
    return epochs if epochs == "training.epochs" else f"{epochs} / training.epochs"
