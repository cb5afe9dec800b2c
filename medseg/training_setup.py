"""The configuration a training run uses, worked out before any volume is read.

``medseg train`` takes its config from a file (``-c``), with the command line's overrides of its ``training``
section, or builds a default one from the label files: the label values found, their names from a Decathlon /
nnU-Net ``dataset.json`` beside the folders, and a tile that holds every case's plane. What the run should be told
(names taken from a dataset.json, names that disagree with the config's, a label named like the background) is
text for the caller to show (returned, or handed to a ``tell`` callback as it arises); errors are raised.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from medseg.errors import InputError, TrainingError
from medseg.io.files import real_path
from medseg.numbers import counted
from medseg.settings_named import ANY, has_option, setting
from medseg.train_resume import EPOCHS

if TYPE_CHECKING:
    from medseg.io.dataset_json import DatasetDocument

__all__ = ["DefaultConfig", "with_overrides", "read_given_config", "default_training_config",
           "dataset_names_disagree", "background_misnamed", "check_planned_epochs", "outcome_text",
           "recipe_notes_copied", "recipe_codes_copied"]


@dataclass
class DefaultConfig:
    """A default config, and the dataset.json its label names (and data notes) come from (``dataset_path``: the one
    beside the folders; ``names_from``: that file where it declared the labels, else None)."""

    config: dict
    dataset_path: Path | None = None
    names_from: Path | None = None


def _logged(kind: str, text: str) -> None:
    logging.getLogger("medseg").log(logging.WARNING if kind == "warning" else logging.INFO, "%s", text)


def with_overrides(config: dict, overrides: dict) -> dict:
    """``config`` with command-line overrides of its ``training`` section."""
    training = config.get("training", {})
    if not isinstance(training, dict):
        return config  # check_config names the problem
    return {**config, "training": {**training, **overrides}}


def read_given_config(path: Path, overrides: dict) -> dict:
    """The training config in ``path`` with ``overrides``, checked as written and again with them (an override must
    not hide a wrong value in the file)."""
    from medseg.train_config import check_config, read_config

    config = read_config(path)
    check_config(config, str(path))
    config = with_overrides(config, overrides)
    check_config(config, str(path))
    return config


def _own_config() -> str:
    """Training with a config of one's own: ``-c`` on the command line; a Python caller's train always takes a config
    (it was told to "give config=... with a config")."""
    if has_option("config"):
        return f"give {setting('config', ANY)} with a config to train without it"
    return "train with a config of your own (train's config argument) to do without it"


def default_training_config(images: Path | str, labels: Path | str, output: Path | str, pairs: list, overrides: dict,
                            resume: bool, tell: Callable[[str, str], None] = _logged,
                            dataset_json: DatasetDocument | None = None) -> DefaultConfig:
    """The config of a run without ``-c``: a U-Net for the label values the files of ``pairs`` hold, named after
    ``output``, with label names from a dataset.json beside the folders where there is one (``dataset_json``: that
    file as the run read it already, else looked for and read here). A resumed run keeps its checkpoint's tile and
    the names its run started with. ``tell(kind, text)`` (kind ``warning`` or ``note``) is called as each thing to
    tell arises, before a later check may fail (logged by default)."""
    from medseg.checkpoint import check_checkpoint_labels, checkpoint_tile, started_without_names
    from medseg.io.channels import modality_names
    from medseg.io.dataset_json import find_dataset_json, read_dataset_json
    from medseg.train_config import MAX_TRAINING_CLASSES, check_config, default_config, default_tile
    from medseg.training_cases import case_channels, label_values

    images, labels, output = Path(images), Path(labels), Path(output)
    tile = (checkpoint_tile(output) if resume else None) or default_tile(pairs)
    found = label_values(pairs)
    held = len(set(found) | {0})
    # values 0..N-1 past the count, named with the file that holds the first one past it (scattered values are told
    # by the default config: an image put among the labels, or a value above what a segmentation holds)
    if held > MAX_TRAINING_CLASSES and max(found) + 1 == held:
        beyond = sorted(set(found) | {0})[MAX_TRAINING_CLASSES]
        raise TrainingError(f"{found[beyond]}: label value {beyond} makes {held} labels, more than the "
                            f"{MAX_TRAINING_CLASSES} medseg train supports (its class indices are kept as 8-bit "
                            "values)")
    made = DefaultConfig(config={}, dataset_path=dataset_json.path if dataset_json is not None
                         else find_dataset_json(images, labels))
    dataset_path = made.dataset_path
    # a run started without it (before medseg read dataset.json files) goes on with its label_N names, whatever the
    # dataset.json says of them
    keep_label_n = resume and dataset_path is not None and started_without_names(output)
    dataset = None
    if dataset_path is not None:
        try:
            dataset = read_dataset_json(dataset_json if dataset_json is not None else dataset_path)
        except InputError:
            if not keep_label_n:
                raise
    if keep_label_n:
        notes = dataset is not None and bool(dataset.data)
        dataset = replace(dataset, names={}) if dataset is not None else None
        also = " (whose data notes go into the model card)" if notes else ""
        tell("warning", f"{output}: the checkpoint's run named its labels label_N; it goes on with those names, not "
                        f"{dataset_path}'s{also}; start again with {setting('overwrite')} to use them")
    names = (dataset.names or None) if dataset is not None else None
    undeclared = sorted(set(found) - set(names or found))
    if undeclared:
        raise TrainingError(f"{found[undeclared[0]]}: label value {undeclared[0]}, which {dataset_path} does not "
                            f"declare (its labels {sorted(names)}); recode the label file or correct the dataset.json")
    if resume:
        check_checkpoint_labels(output, found, names, dataset_path if names else None)
    # a multi-modal set: its channel count from the files (nnU-Net's channel files, a 4D image's last axis), their
    # names from the dataset.json where it gives as many (channel_names, modality), else channel0, channel1…
    channels = case_channels(pairs)
    if dataset is not None and dataset.modalities and len(dataset.modalities) != channels:
        # the _0001 files not copied, or a dataset.json of another set: the model would take other inputs than the
        # dataset.json says (nnU-Net refuses such a set)
        from medseg.io.channels import modalities_text
        from medseg.training_cases import channels_text

        key, named = dataset.modalities_key, len(dataset.modalities)
        files = "case_0000 alone" if named == 1 else f"case_0000 … case_{named - 1:04d}"
        raise TrainingError(f"{pairs[0].image_path}: {channels_text(channels)}, but {dataset_path} names "
                            f"{modalities_text(dataset.modalities)} in its {key}; give each case's channel files as "
                            f"it names them ({files}), or correct its {key}; {_own_config()}")
    modalities = modality_names(dataset.modalities if dataset is not None else None, channels) \
        if channels > 1 else None
    if modalities is not None:
        named = f", named by {dataset_path}" if dataset is not None and len(dataset.modalities) == channels else ""
        tell("note", f"{channels} input modalities a case ({', '.join(modalities)}{named}): each normalised on its "
                     "own")
    # named after the folder: "-o ." is the current folder's name
    made.config = with_overrides(default_config(found, name=real_path(output).name or "model", where=str(labels),
                                                tile=tile, names=names,
                                                data=dataset.data if dataset is not None else None,
                                                modalities=modalities), overrides)
    check_config(made.config, "default config" if dataset is None else f"default config with {dataset_path}")
    if dataset is not None and names:
        made.names_from = dataset_path
        tell("note", f"label names{' and data notes' if dataset.data else ''} from {dataset_path}: "
             + ", ".join(f"{v} {n}" for v, n in dataset.names.items()))
    return made


def dataset_names_disagree(images: Path, labels: Path, config: dict, config_path: Path,
                           dataset_json: DatasetDocument | None = None) -> str | None:
    """A warning where a dataset.json beside the folders (``dataset_json``: as the run read it already, else looked
    for and read here) names the labels otherwise than the config given with -c (whose names are the model's), also
    where medseg could not train from the dataset.json itself (an ``ignore`` label the config would train as a
    class), or where it cannot be read (neither its training list nor its names are used). None where they agree or
    where it names no labels: the config was asked for. A label only the config declares is no disagreement (one
    no file holds, told by training)."""
    from medseg.io.dataset_json import declared_names, find_dataset_json, load_document, not_used, renamed_labels

    if dataset_json is None:
        path = find_dataset_json(images, labels)
        if path is None:
            return None
        dataset_json = load_document(path)
    path = dataset_json.path
    if dataset_json.reason is not None:  # its training list went unused in silence too
        return not_used(path, dataset_json.reason, f"the labels are named as {config_path} names them")
    declared = declared_names(dataset_json)
    if not declared:
        return None
    # a label only the config declares names nothing otherwise (a structure the files lack, or a gap declared),
    # which training tells of where no file holds it
    named = {int(k): v for k, v in config["labels"].items() if int(k) in declared or int(k) == 0}
    theirs, ours = renamed_labels(declared, named)
    if not theirs:
        return None

    def shown(names: dict) -> str:
        return ", ".join(f"{value} {name}" for value, name in names.items())

    return (f"{path} names labels {shown(theirs)}; the config {config_path} names them {shown(ours)}, and its names "
            "are the model's")


def dataset_modalities_disagree(config: dict, config_path: Path, dataset_json: DatasetDocument | None) -> str | None:
    """A warning where the config given with -c declares the modalities a dataset.json beside the folders names too,
    but in another order: the network takes channel k (``case_0000``, ``case_0001`` …, or a 4D image's k-th volume)
    as the config's k-th modality, and a case stacked by the config's names at inference would be given it in
    another order. None where they agree, differ in more than their order, or either names none."""
    from medseg.io.dataset_json import channel_names

    declared = config.get("modalities")
    if not declared or dataset_json is None or dataset_json.reason is not None:
        return None
    theirs = channel_names(dataset_json.document)
    if len(theirs) != len(declared) or [n.casefold() for n in theirs] == [n.casefold() for n in declared]:
        return None
    if sorted(n.casefold() for n in theirs) != sorted(n.casefold() for n in declared):
        return None  # other names: nothing tells which is which
    return (f"{dataset_json.path} gives the channels in the order {', '.join(theirs)}; the config {config_path} "
            f"declares the modalities {', '.join(declared)}: channel k of each case is trained as the config's k-th "
            "modality; declare them in the files' order")


def background_misnamed(config: dict, where: str) -> str | None:
    """A warning where a foreground label is named like the background (names swapped in the config, or in a
    dataset.json): it is trained, scored and reported as a structure."""
    label_names = {str(value): str(name) for value, name in config["labels"].items()}
    misnamed = [value for value, name in label_names.items() if value != "0" and name.strip().casefold() in
                ("background", "bg", "backgnd")]
    if not misnamed:
        return None
    return (f"{where}: label {misnamed[0]} is named {label_names[misnamed[0]]!r}, but value 0 is the background "
            f"(named {label_names.get('0')!r}): label {misnamed[0]} is trained, scored and reported as a structure; "
            "are the names swapped?")


def _card_texts(config: dict) -> dict[str, str]:
    """The texts of a config that its model card shows as they are, by where they sit, whitespace collapsed."""
    training = config.get("training") if isinstance(config.get("training"), dict) else {}
    data = training.get("data") if isinstance(training.get("data"), dict) else {}
    texts = {"description": config.get("description"), "training.data description": data.get("description"),
             "training.data licence": data.get("licence") or data.get("license")}
    return {field: " ".join(text.split()) for field, text in texts.items() if isinstance(text, str) and text.strip()}


def _shipped_recipes() -> list[tuple[str, Path, dict]]:
    """(name, file, config) of the recipes that come with medseg: the shipped model packages' configs (an installed
    medseg has them; their texts are those of the configs they were trained with), then the configs in
    ``configs/train/`` of the source tree medseg runs from (a checkout: an installed medseg has none)."""
    import json

    import medseg
    from medseg.package import shipped_models, shipped_package_path
    from medseg.package_config import CONFIG_NAME

    files = [(f"the shipped model {name}", shipped_package_path(name) / CONFIG_NAME) for name in shipped_models()]
    root = Path(medseg.__file__).resolve().parents[1]
    folder = root / "configs" / "train"
    if (root / "pyproject.toml").is_file() and folder.is_dir():
        files += [(f"configs/train/{path.name}", path) for path in sorted(folder.glob("*.json"))]
    recipes = []
    for name, path in files:
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        if isinstance(config, dict):
            recipes.append((name, path, config))
    return recipes


def recipe_notes_copied(config: dict, config_path: Path, images_sha256: list[str]) -> str | None:
    """A warning where the description, or the data description or licence (``training.data``), of the config in
    ``config_path`` is word for word that of a recipe that comes with medseg (:func:`_shipped_recipes`): the model
    card would describe that recipe's run and data. None where none is, or where the run trains on that data (one of
    ``images_sha256``, the run's images, is among the training images of a shipped model with those data notes). A
    licence alone is no sign of a copy (another task of the same data collection has the same one)."""
    texts = _card_texts(config)
    recipes = [(name, path, _card_texts(recipe), recipe) for name, path, recipe in _shipped_recipes()]
    data_fields = ("training.data description", "training.data licence")
    ours = [texts.get(field) for field in data_fields]
    for _, _, theirs, recipe in recipes:
        recorded = (recipe.get("training") or {}).get("train_images_sha256") or []
        same_notes = any(ours) and ours == [theirs.get(field) for field in data_fields]
        if same_notes and not set(recorded).isdisjoint(images_sha256):
            return None  # the shipped model's own data: its notes are this run's
    left, parts = dict(texts), []
    while True:  # the recipe that shares the most texts first (the one copied), then any other
        name, shared = max(((name, [f for f, text in left.items() if theirs.get(f) == text])
                            for name, _, theirs, _ in recipes), key=lambda pair: len(pair[1]), default=(None, []))
        if not shared or shared == ["training.data licence"]:
            break
        parts.append(f"{_listed(shared)} {'is word for word that' if len(shared) == 1 else 'are word for word those'} "
                     f"of {name}")
        left = {f: text for f, text in left.items() if f not in shared}
    if not parts:
        return None
    if any(_same_file(config_path, path) for _, path, _, _ in recipes):  # given as it comes, not a copy
        return (f"{config_path}: a recipe that comes with medseg: its {_listed(list(texts))} "
                f"{'describes' if len(texts) == 1 else 'describe'} the run and "
                "data it was made for, and the model card will carry them as they are; for a run on other data, edit "
                "them in a copy of the config")
    return (f"{config_path}: its {'; its '.join(parts)}: the model card will carry them as they are, describing that "
            "recipe's run and data, not this one's; edit them in the config")


def recipe_codes_copied(config: dict, config_path: Path, images_sha256: list[str]) -> str | None:
    """A warning where the config's ``label_codes`` give a label the very DICOM codes that a recipe that comes with
    medseg (:func:`_shipped_recipes`) gives its label of the same value under another name: labels renamed in a copy
    of the recipe, its codes left, so the package's model card, ``medseg models`` and DICOM SEGs would code the new
    structure as the recipe's (a liver as Hippocampus, Anterior). None where there is no such label, or where the run
    trains on the data of a shipped model with those codes (one of ``images_sha256`` among its training images)."""
    codes, labels = config.get("label_codes"), config.get("labels")
    if not isinstance(codes, dict) or not codes or not isinstance(labels, dict):
        return None
    names = {str(value): str(name) for value, name in labels.items()}
    for recipe_name, _, recipe in _shipped_recipes():
        theirs = recipe.get("label_codes") if isinstance(recipe.get("label_codes"), dict) else {}
        their_names = {str(value): str(name) for value, name in (recipe.get("labels") or {}).items()}
        renamed = sorted((str(value) for value, code in codes.items()
                          if str(value) in names and str(value) in their_names and theirs.get(str(value)) == code
                          and _name_key(names[str(value)]) != _name_key(their_names[str(value)])), key=int)
        if not renamed:
            continue
        recorded = (recipe.get("training") or {}).get("train_images_sha256") or []
        if not set(recorded).isdisjoint(images_sha256):
            return None  # the shipped model's own data: a label renamed, the structure the same
        plural = "s" if len(renamed) > 1 else ""
        ours = _listed([f"{value} {names[value]}" for value in renamed])
        coded = _listed([f"{value} {their_names[value]} ({_code_words(theirs[value])})" for value in renamed])
        return (f"{config_path}: its label_codes for label{plural} {ours} are word for word those {recipe_name} gives "
                f"its label{plural} {coded}: the model card, `medseg models` and every DICOM SEG the package writes "
                f"would code {'these labels as those structures' if plural else 'this label as that structure'}; give "
                f"{'them their' if plural else 'it its'} own codes in the config, or leave label_codes out (a label "
                "without codes is coded SCT Tissue)")
    return None


def _name_key(name: str) -> str:
    """A label name as names are compared: letter case, surrounding spaces and how an accent is composed aside."""
    import unicodedata

    return unicodedata.normalize("NFC", name).strip().casefold()


def _code_words(code) -> str:
    """A label's codes as their meanings: the type, and its modifier where there is one."""
    if not isinstance(code, dict):
        return str(code)
    parts = [part.get("meaning") for part in (code.get("type"), code.get("modifier")) if isinstance(part, dict)]
    return ", ".join(str(part) for part in parts if part) or "codes"


def _same_file(a: Path, b: Path) -> bool:
    try:
        return Path(a).samefile(b)
    except OSError:
        return False


def _listed(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def check_planned_epochs(output: Path, asked: int, where: str, epochs_given: bool, from_file: bool) -> None:
    """A resumed run whose config asks for another epoch count than its checkpoint's run planned, without
    ``--epochs`` saying so, is refused: the learning-rate schedule would change midway unasked."""
    from medseg.checkpoint import checkpoint_planned_epochs

    planned = checkpoint_planned_epochs(output)
    if epochs_given or planned is None or planned == asked:
        return
    config_text = where if from_file else "the default config"
    raise TrainingError(f"{output}: the checkpoint's run was planned for {planned} epoch{'s' if planned != 1 else ''}, "
                        f"and {config_text} asks for {asked}; give {setting('epochs', planned, python=EPOCHS)} to "
                        f"finish it as planned, or {setting('epochs', asked, python=EPOCHS)} to "
                        f"{'extend it' if asked > planned else 'end it sooner'}")


def outcome_text(package_config: dict, model_space: dict) -> str:
    """Which epoch a finished run's package holds, and its validation figure, as one phrase; ``model_space``: the
    epochs' validation mean Dice as scored during training (in model space where the package resamples)."""
    from medseg.numbers import dice_round_text
    from medseg.train_config import validation_without_foreground

    def dice(value: float | None) -> str:
        return "n/a" if value is None else dice_round_text(value)

    t = package_config["training"]
    if t.get("val_mean_dice") is not None and validation_without_foreground(
            package_config["labels"], len(t.get("val_cases") or []), t.get("val_labels_absent")):
        return f"last epoch {t['best_epoch']}; no validation case holds a foreground label"
    if t.get("val_mean_dice") is None and t.get("val_cases"):
        scored_in = counted(len(t["val_cases"]), "validation case")
        return f"epoch {t['best_epoch']}; no label could be scored in the {scored_in}"
    if t.get("val_mean_dice") is None:
        return f"epoch {t['best_epoch']}, not validated"
    which = f"best epoch {t['best_epoch']}, val mean Dice {dice(t['val_mean_dice'])}"
    if t.get("val_scored_on") == "input grid":  # the epochs' figures were in model space (resampled)
        which += " on the volumes' own grids"
        if model_space.get(t["best_epoch"]) is not None:
            which += f"; {dice(model_space[t['best_epoch']])} in model space, as its epoch line shows"
    return which
