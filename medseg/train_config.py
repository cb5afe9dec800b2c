"""Training configs: the defaults (the training settings, and the config made from the label files when none is
given), reading a config file (JSON or YAML) and checking it, the seeded validation split its settings describe, and
the forward pass's precision."""

from __future__ import annotations

import codecs
import copy
import json
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from medseg.errors import InputError, TrainingError
from medseg.io.files import os_reason, path_argument, type_text, undecodable
from medseg.json_schema import schema_validator
from medseg.jsonfile import size_text
from medseg.label_map import MAX_LABEL_VALUE
from medseg.numbers import IMAGE_LIKE_VALUES, counted, image_among_labels, values_text
from medseg.package_config import (
    CONFIG_NAME,
    MAX_CONFIG_BYTES,
    bottleneck_cells,
    config_problems,
    load_schema,
    meant_error,
    non_finite_setting,
    unique_keys,
    whole_numbers,
)
from medseg.settings_named import ANY, has_option, setting

if TYPE_CHECKING:  # the cases' class imports torch; reading a config does not need it
    from medseg.training_cases import TrainCase

__all__ = [
    "DEFAULT_DESCRIPTION", "DEFAULT_PREPROCESSING", "DEFAULT_TILE", "DEFAULT_TRAINING", "MAX_TRAINING_CLASSES",
    "PROBLEMS_SHOWN", "RECIPES",
    "check_config", "default_config", "default_label_name", "default_tile", "default_training", "read_config",
    "seeded_split", "split_cases", "split_text", "tile_side", "training_precision", "validation_without_foreground",
    "problems_text",
]

log = logging.getLogger(__name__)

MAX_TRAINING_CLASSES = 256  # labels a training run takes: its class indices are kept as 8-bit values

# where the training recipes are: beside the package in its source tree, not in it, so a wheel install has none
RECIPES = "configs/train/ of medseg's source tree (a wheel install has none)"

DEFAULT_TRAINING = {
    "epochs": 20,
    "steps_per_epoch": 100,
    "batch_size": 16,
    "learning_rate": 1e-3,
    "weight_decay": 1e-4,
    "schedule": "cosine",  # cosine | constant | poly
    "warmup_epochs": 1,
    "patch_size": None,  # training crop (H, W); default: the inference roi_size
    "foreground_fraction": 0.7,
    "batch_dice": False,  # DiceCE's Dice over the whole batch instead of per slice
    # fp32 | bf16 (autocast of the forward pass; about 1.7x faster where the hardware has bf16, several times
    # slower where it is emulated) | auto (bf16 where the device computes it natively, else fp32)
    "precision": "fp32",
    "val_fraction": 0.2,
    "val_every": 1,
    "seed": 0,
    "split_seed": None,  # seed of the validation split; None: ``seed``
    "fold": 0,  # which block of the seeded order validates (cross-validation); 0: the plain split
    "ema_decay": None,  # e.g. 0.999: validate and ship an exponential moving average of the weights
    "augment": {
        "rotate_deg": 15.0,
        "scale": 0.15,
        "translate_px": 4,
        "flip_axes": [],
        "noise_std": 0.05,
        "intensity_scale": 0.1,
        "intensity_shift": 0.1,
        "gamma": [0.8, 1.25],
        "smooth_prob": 0.1,
        "prob": 0.8,
    },
}


def default_training() -> dict:
    """A copy of the default training settings."""
    return copy.deepcopy(DEFAULT_TRAINING)


DEFAULT_TILE = 128  # the default config's largest tile side; smaller planes get a tile that just holds them
_TILE_STEP = 16  # 2 ** depth of the default U-Net: tile sides are multiples of it
DEFAULT_PREPROCESSING = {"orientation": "RAS", "spacing_mm": None, "intensity": {"kind": "zscore"}}
DEFAULT_DESCRIPTION = "Trained with medseg train and its default config."


def default_tile(cases: list[TrainCase], preprocessing: dict | None = None, slice_axis: int = 2) -> list[int]:
    """The default config's tile (= training patch): each side the largest of the cases' model-space planes (after
    ``preprocessing``, the default config's unless given), rounded up to a multiple of 16 and kept within 32..128.

    Hippocampus crops of 35 × 50 voxels get a 48 × 64 tile instead of 128 × 128, which would spend ~5× the compute
    on padding in training and inference; a 512 × 512 CT keeps 128 × 128 tiles. Reads the images' headers only (a
    label may be a box of its image's grid, as 3D Slicer crops a segmentation, which training zero-pads onto it);
    one that cannot be read is passed over: the checks of every case name it, with the others' problems (stopping
    here named the first alone, so a run showed one broken file at a time).
    """
    from medseg.errors import ImageReadError, InputError
    from medseg.io.images import read_grid
    from medseg.preprocess import grid_model_shape

    pre = preprocessing or DEFAULT_PREPROCESSING
    largest = [0, 0]
    plane = [a for a in range(3) if a != slice_axis]
    for case in cases:
        try:
            shape, affine = read_grid(case.image_path)
        except (ImageReadError, InputError):
            continue
        model_shape = grid_model_shape(shape[:3], affine, pre)
        largest = [max(largest[k], model_shape[a]) for k, a in enumerate(plane)]
    return [min(DEFAULT_TILE, tile_side(side)) for side in largest]


def tile_side(side: int, step: int = _TILE_STEP) -> int:
    """The smallest tile side that holds a plane side of ``side`` voxels in a U-Net whose levels halve it to a
    multiple of ``step`` (2 ** depth), keeping two cells at its bottom: 35 → 48, 10 → 32 at step 16."""
    return max(2 * step, -(-side // step) * step)


def default_config(values: list[int] | dict[int, Path], name: str = "model", where: str = "labels",
                   tile: list[int] | None = None, names: dict[int, str] | None = None,
                   data: dict[str, str] | None = None, modalities: list[str] | None = None) -> dict:
    """The config used when none is given: a small 2.5D U-Net for labels ``values`` (named ``label_N``, or as
    ``names`` has them: a dataset.json's, whose values may add labels no file holds), ``data`` the card's notes.
    ``modalities``: the input modalities of a multi-modal set, in channel order (the network then takes each with
    its neighbouring slices: ``in_channels`` = 3 × their number); None (or one): one image a case.

    Labels may skip values (BraTS's 0, 1, 2, 4; FreeSurfer's): the network gets one output class per value, class k
    the k-th smallest; more than :data:`~medseg.numbers.IMAGE_LIKE_VALUES` scattered values in the files (not
    counting those only ``names`` declares) are refused as an image put among the labels, and a value above 65535
    as more than a segmentation holds. The training section holds :data:`DEFAULT_TRAINING`; the inference tile (and
    so the training patch) is ``tile`` (:func:`default_tile`), 128 × 128 without it.
    ``where`` (the labels folder) starts the error message; when ``values`` maps each value to a file holding it
    (:func:`~medseg.training_cases.label_values`), the file holding the value told of starts it instead. Values so
    refused are a :class:`~medseg.errors.TrainingError`; ``values`` that are no list of whole numbers an
    :class:`~medseg.errors.InputError`.
    """
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "model"
    files = values if isinstance(values, dict) else {}
    held = sorted(set(_label_values(values)) | {0})  # what the files hold: the names may declare more
    values = sorted(set(held) | set(names or {}))
    if values[-1] > MAX_LABEL_VALUE:  # checked before the gaps are looked at (a value of 2^40 leaves 2^40 of them)
        first = f"{files[values[-1]]}: label" if values[-1] in files else f"{where}: label"
        raise TrainingError(f"{first} value {values[-1]} is above {MAX_LABEL_VALUE}, the largest a segmentation "
                            f"(uint16) holds{image_among_labels() if len(values) > IMAGE_LIKE_VALUES else ''}")
    if held != list(range(len(held))) and len(held) > IMAGE_LIKE_VALUES:
        # labels may skip values (class k is the k-th smallest), but so many scattered values in the files are an
        # image's; those a dataset.json names (``names``: FreeSurfer's hundred) are declared, not guessed at
        beyond = next(v for k, v in enumerate(held) if v != k)
        first = (f"{files[beyond]}: label value {beyond}; the label files in {where} hold" if beyond in files else
                 f"{where}: label values")
        own = (f"a config given with {setting('config', ANY)}" if has_option("config") else
               "a config of your own (train's config argument)")
        raise TrainingError(f"{first} {values_text(held)}{image_among_labels()}; if these are labels, declare them "
                            f"in {own}")
    if len(values) == 1:  # background only: one foreground label, as the network has two classes at least
        values.append(1)
    several = modalities if modalities is not None and len(modalities) > 1 else None  # their names, where several
    return {
        "format": "medseg-model/1",
        "name": name,
        "version": "1",
        "description": DEFAULT_DESCRIPTION,
        **({"modalities": list(several)} if several else {}),
        "architecture": {"type": "unet2d", "in_channels": 3 * (len(several) if several else 1),
                         "n_classes": len(values), "base_width": 16, "depth": 4, "dropout": 0.0, "norm": "batch"},
        # one output class per value, class k the k-th smallest (medseg.label_map): 0, 1, 2, 4 need no recoding
        "labels": {str(v): default_label_name(v, names) for v in values},
        "preprocessing": copy.deepcopy(DEFAULT_PREPROCESSING),
        "inference": {"slice_axis": 2, "roi_size": list(tile or [DEFAULT_TILE, DEFAULT_TILE]), "overlap": 0.25,
                      "blend": "gaussian", "context_slices": 1, "flip_tta": []},
        "training": {**default_training(), **({"data": dict(data)} if data else {})},
    }


def _label_values(values) -> list[int]:
    """``values`` (a list, set or array of label values, or a mapping keyed by them) as whole numbers; text ("abc",
    "0123", iterated character by character), None, a single number or a fractional value an :class:`InputError`."""
    from numbers import Integral, Real

    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise InputError(f"{type_text(values)} given as the label values; give a list of whole numbers, as "
                         "[0, 1, 2]")
    whole = []
    for value in values:
        if isinstance(value, Integral) and not isinstance(value, bool):
            whole.append(int(value))
        elif isinstance(value, Real) and not isinstance(value, bool) and float(value).is_integer():
            whole.append(int(value))  # np.unique of a float label array
        else:
            raise InputError(f"label value {value!r} ({type(value).__name__}); give whole numbers, as [0, 1, 2]")
    return whole


def default_label_name(value: int, names: dict[int, str] | None = None) -> str:
    """A label's name in the default config: ``names``' (a dataset.json's), else background / ``label_N``."""
    if names and value in names:
        return names[value]
    return "background" if value == 0 else f"label_{value}"


def read_config(path: Path | str) -> dict:
    """A training config (JSON or YAML): the model package fields plus a ``training`` section. A file that cannot
    be read, or is not valid JSON or YAML, is a :class:`~medseg.errors.TrainingError` naming it."""
    path = path_argument(path, "the training config")
    try:
        with open(path, "rb") as handle:  # a named pipe too (-c <(...)); one byte past the cap tells a larger file
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as error:
        raise TrainingError(f"{path}: cannot read the training config ({os_reason(error)})") from error
    if len(data) > MAX_CONFIG_BYTES:  # before decoding: a multi-GB file named config.json is not read whole
        raise TrainingError(f"{path}: more than {size_text(MAX_CONFIG_BYTES)}, where a training config holds at most "
                            f"{size_text(MAX_CONFIG_BYTES)} (as the package's {CONFIG_NAME} it becomes); not a "
                            "training config")
    # UTF-8 (a byte order mark, which Windows editors write, is no content), or UTF-16 with its byte order mark, as
    # a dataset.json is read: Windows PowerShell 5 writes `... > config.yaml` so, and Notepad's "Unicode"
    if data.startswith((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)):  # UTF-32-LE's mark starts as UTF-16-LE's does
        raise TrainingError(f"{path}: saved as UTF-32; save the config as UTF-8")
    wide = data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    if not wide and b"\0" in data[:4096]:  # UTF-16 without its mark: every other byte is NUL
        raise TrainingError(f"{path}: holds NUL bytes, as UTF-16 text without a byte order mark does; save the config "
                            "as UTF-8")
    try:
        text = data.decode("utf-16" if wide else "utf-8-sig")
    except UnicodeDecodeError as error:
        bom = len(codecs.BOM_UTF8) if data.startswith(codecs.BOM_UTF8) else 0
        raise TrainingError(f"{path}: not {'UTF-16' if wide else 'UTF-8'} text ({undecodable(error, bom)}); save the "
                            "config as UTF-8") from error
    try:
        if path.suffix in (".yaml", ".yml"):
            config = _string_keys(_yaml_load(text))
            for key in ("name", "version", "description"):  # version: 2 means "2" (a version 1.10 must be quoted)
                if isinstance(config, dict) and type(config.get(key)) is int:
                    config[key] = str(config[key])
        else:
            config = json.loads(text, object_pairs_hook=unique_keys)
    except json.JSONDecodeError as error:  # was json's words alone ("Expecting ',' delimiter: line 3 column 5 …")
        from medseg.jsonfile import json_error_text

        raise TrainingError(f"{path}: {json_error_text(error)}") from error
    except Exception as error:  # noqa: BLE001 - any parse error is a config error
        import yaml

        if isinstance(error, yaml.YAMLError):  # was PyYAML's words, folded: "(while parsing a flow sequence in
            from medseg.yamlfile import yaml_error_text  # "<unicode string>", line 3, column 11: … ^ expected …)"

            raise TrainingError(f"{path}: {yaml_error_text(error, text)}") from error
        detail = " ".join(str(error).split())
        kind = "YAML" if path.suffix in (".yaml", ".yml") else "JSON"  # what it was parsed as (a .txt: JSON)
        raise TrainingError(f"{path}: not valid {kind} ({detail})") from error
    if not isinstance(config, dict):
        raise TrainingError(f"{path}: expected a mapping at the top level")
    if isinstance(config.get("weights"), dict):
        # a package's model.json: its training section (if any) is the record of a run, not settings for one, and
        # its weights another model's
        training = config.get("training")
        recorded = isinstance(training, dict) and isinstance(training.get("settings"), dict)
        raise TrainingError(f"{path}: a model package's {CONFIG_NAME} (it names its weights"
                            f"{' and records its training' if recorded else ''}), not a training config; start from "
                            f"one in {RECIPES}"
                            + ("; the package's settings are under training.settings" if recorded else ""))
    if "training" not in config:  # every setting its default: said, since the run takes hours on them
        log.warning("%s: no training section: every setting not given on the command line takes its default (%d "
                    "epochs of %d steps, batch %d, learning rate %g; examples: %s)", path, DEFAULT_TRAINING["epochs"],
                    DEFAULT_TRAINING["steps_per_epoch"], DEFAULT_TRAINING["batch_size"],
                    DEFAULT_TRAINING["learning_rate"], RECIPES)
    # a count written 2.0 (YAML, a script's JSON) is 2: the model card and the network take it as a whole number
    config = whole_numbers(config, load_schema())
    if isinstance(config.get("training"), dict):
        config["training"] = whole_numbers(config["training"], load_schema("training"))
    return config


def _yaml_load(text: str):
    """YAML as a config's author means it: ``1e-3`` is a number (PyYAML's YAML 1.1 reads a float without a dot in
    its mantissa as text, and the learning rate was then refused as "not of type 'number'")."""
    import re

    import yaml

    class Loader(yaml.SafeLoader):
        yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}

        def construct_mapping(self, node, deep=False):  # a key given twice: PyYAML keeps the last without a word
            seen = set()
            for key_node, _ in node.value:  # the mapping's own keys, as written (a merge, <<, may be overridden)
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = (key_node.tag, key_node.value)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"the key {key_node.value!r} is given twice", key_node.start_mark)
                seen.add(key)
            return super().construct_mapping(node, deep=deep)

    Loader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$"),
                                 list("-+0123456789"))
    return yaml.load(text, Loader=Loader)  # noqa: S506 - a SafeLoader with one more resolver


def _string_keys(value):
    """Mapping keys as text, as JSON has them: YAML reads ``labels: {0: background}`` with whole-number keys."""
    if isinstance(value, dict):
        return {k if isinstance(k, str) else str(k): _string_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_string_keys(v) for v in value]
    return value


def split_cases(
    cases: list[TrainCase], val_fraction: float, seed: int, fold: int = 0, where: str = "training config"
) -> tuple[list[TrainCase], list[TrainCase]]:
    """A seeded random split; at least one validation case when there are two or more cases (none when
    ``val_fraction`` is 0).

    The seeded order of the cases is cut into blocks of the validation size; ``fold`` picks the block that
    validates, so folds 0, 1, … of one seed are disjoint (cross-validation) and fold 0 is the plain split.
    """
    order = np.random.default_rng(seed).permutation(len(cases))
    n_val = int(round(len(cases) * val_fraction))
    if len(cases) >= 2 and val_fraction > 0:
        n_val = min(max(n_val, 1), len(cases) - 1)
    else:
        n_val = 0
    folds = len(cases) // n_val if n_val else 1
    if not 0 <= fold < folds:
        raise TrainingError(f"{where}: training.fold ({setting('fold', ANY, python='the training config')}) must be "
                            f"in 0..{folds - 1} "
                            f"({counted(len(cases), 'case')}, {counted(n_val, 'validation case')} per fold), got "
                            f"{fold}")
    chosen = set(order[fold * n_val:(fold + 1) * n_val].tolist())
    val = [case for i, case in enumerate(cases) if i in chosen]
    train_ = [case for i, case in enumerate(cases) if i not in chosen]
    return train_, val


def seeded_split(cases: list[TrainCase], training: dict, where: str = "training config"
                 ) -> tuple[list[TrainCase], list[TrainCase], str]:
    """Training cases, validation cases and a description, from a ``training`` section's split settings
    (errors start with ``where``, the config file)."""
    settings = {**default_training(), **training}
    split_seed = int(settings["seed"] if settings.get("split_seed") is None else settings["split_seed"])
    fold = settings.get("fold") or 0
    if not isinstance(fold, int) or isinstance(fold, bool):
        raise TrainingError(f"{where}: training.fold must be a whole number, got {fold!r}")
    train_, val = split_cases(cases, float(settings["val_fraction"]), split_seed, fold, where)
    if not val:  # val_fraction 0, or a single case: nothing was split off
        why = "training.val_fraction 0" if float(settings["val_fraction"]) == 0 else "too few cases to split"
        return train_, val, f"no validation split ({why})"
    return train_, val, split_text(settings)


def split_text(training: dict) -> str:
    """How a ``training`` section's split settings describe its seeded split."""
    settings = {**default_training(), **training}
    split_seed = int(settings["seed"] if settings.get("split_seed") is None else settings["split_seed"])
    fold = settings.get("fold") or 0
    return f"a seeded {settings['val_fraction']} split, split seed {split_seed}" + (f", fold {fold}" if fold else "")


def _one_slip(typed: str, name: str) -> bool:
    """Whether ``typed`` is ``name`` or one slip from it: a letter wrong, missing or extra, or two neighbours
    swapped."""
    if typed == name:
        return True
    if len(typed) == len(name):
        wrong = [i for i, (a, b) in enumerate(zip(typed, name)) if a != b]
        return len(wrong) == 1 or (len(wrong) == 2 and wrong[1] == wrong[0] + 1
                                   and typed[wrong[0]] == name[wrong[1]] and typed[wrong[1]] == name[wrong[0]])
    shorter, longer = sorted((typed, name), key=len)
    return len(longer) - len(shorter) == 1 and any(longer[:i] + longer[i + 1:] == shorter for i in range(len(longer)))


def _misspelt_data_notes(data: dict) -> list[str]:
    """The keys of ``training.data`` that look like a misspelt ``description`` or ``licence`` where that key is absent
    (``licnese``, ``Description``): any key is a note the model card shows, so the card said 'not stated' for the
    licence given under such a key, without a word."""
    wanted = {"description": ("'description'", "data"), "licence": ("'licence' (or 'license')", "licence"),
              "license": ("'licence' (or 'license')", "licence")}
    found = []
    for key in data:
        if key in wanted:
            continue
        # one slip from the key (a letter wrong, missing, extra or two swapped; any case): difflib's closeness took
        # notes that are words of their own ('licensor', 'descriptor'), refusing configs that trained before
        near = [name for name in wanted if _one_slip(str(key).lower(), name)][:1]
        if not near or any(k in data for k in (("licence", "license") if near[0] != "description" else
                                                ("description",))):
            continue
        named, line = wanted[near[0]]
        found.append(f"training.data.{key}: no {named} beside it, which the model card's {line} line reads (it "
                     "would say 'not stated'): misspelt? (any other key is shown as a note of its own)")
    return found


def check_config(config: dict, where: str = "training config") -> dict:
    """Check a training config before any case is read; return its merged training settings.

    The package fields go through the package schema, the ``training`` section through
    ``schemas/training.schema.json`` (types, ranges, no unknown keys, so a misspelt setting is not silently
    ignored). The problems are one :class:`TrainingError` starting with ``where`` (the config file): every schema
    error of both sections, each naming its key, or, where there is none, every problem between keys
    (:func:`problems_text`).
    """
    if not isinstance(config, dict):
        raise TrainingError(f"{where}: expected a mapping at the top level")
    package_config = {k: v for k, v in config.items() if k != "training"}
    package_config.setdefault("format", "medseg-model/1")
    package_config["weights"] = {"file": "weights.safetensors", "sha256": "0" * 64}
    # every problem at once, each naming its key: a config fixed one line a run took as many runs as it had mistakes
    problems = list(config_problems(package_config, where))
    training = config.get("training", {})
    training_problems = []
    odd = non_finite_setting(training, ("training",))
    if odd is not None:
        training_problems.append(f"{where}: {odd[0]}: {odd[1]} is not a finite number")
    errors = sorted(schema_validator(load_schema("training")).iter_errors(training),
                    key=lambda e: (e.validator != "additionalProperties", [str(p) for p in e.absolute_path]))
    for error in errors:
        shown = meant_error(error)
        at = ".".join(["training", *(str(p) for p in shown.absolute_path)])
        message = shown.message
        if shown.validator == "additionalProperties":
            message = message.replace("Additional properties are not allowed", "unknown setting(s)")
        if f"{where}: {at}: {message}" not in training_problems:
            training_problems.append(f"{where}: {at}: {message}")
    problems += training_problems
    patch = None
    if not training_problems:  # the settings below are then of the schema's types
        settings = {**default_training(), **training}
        settings["augment"] = {**DEFAULT_TRAINING["augment"], **training.get("augment", {})}
        gamma = settings["augment"].get("gamma")
        if gamma is not None and gamma[0] > gamma[1]:  # MONAI would draw from an empty range without a word
            problems.append(f"{where}: training.augment.gamma: {gamma} gives its larger bound first; give "
                            "[smallest, largest]")
        problems += [f"{where}: {problem}" for problem in _misspelt_data_notes(training.get("data") or {})]
        if not problems:  # the package fields too
            if len(config["labels"]) > MAX_TRAINING_CLASSES:
                problems.append(f"{where}: {len(config['labels'])} labels, more than the {MAX_TRAINING_CLASSES} "
                                "medseg train supports (its class indices are kept as 8-bit values)")
            # the inference tile was checked with the package fields; the training patch is checked here
            arch = config["architecture"]
            depth, norm = int(arch.get("depth", 4)), arch.get("norm", "batch")
            patch = list(settings.get("patch_size") or config["inference"]["roi_size"])
            if (norm == "instance" or (norm == "batch" and int(settings["batch_size"]) == 1)) and (
                    bottleneck_cells(patch, depth) <= 1):
                why = "instance norm" if norm == "instance" else "batch norm with training.batch_size 1"
                problems.append(f"{where}: training.patch_size {patch} leaves one cell at the bottom of a "
                                f"depth-{depth} U-Net, where {why} is undefined; make a side larger than {2 ** depth}")
    if problems:
        raise TrainingError(problems_text(problems, where))
    settings["patch_size"] = [int(v) for v in patch]  # the size used, also where the default (the tile) was asked
    return settings


PROBLEMS_SHOWN = 10  # a mistake made once a label (300 blank names) would otherwise make a line of 20,000 characters


def problems_text(problems: list[str], where: str) -> str:
    """One error line for the ``problems`` of the config ``where`` names (each starting with ``where``): the problem
    itself where there is one, else their count and each without the repeated ``where``, the first
    :data:`PROBLEMS_SHOWN` of them where there are more."""
    if len(problems) == 1:
        return problems[0]
    prefix = f"{where}: "
    parts = [problem[len(prefix):] if problem.startswith(prefix) else problem for problem in problems]
    shown = "; ".join(f"({n}) {part}" for n, part in enumerate(parts[:PROBLEMS_SHOWN], 1))
    more = (f"; … and {len(parts) - PROBLEMS_SHOWN} more (the first {PROBLEMS_SHOWN} shown)"
            if len(parts) > PROBLEMS_SHOWN else "")
    return f"{where}: {len(problems)} problems: {shown}{more}"


def validation_without_foreground(labels: dict, val_count: int, absent: list | None) -> bool:
    """Whether no validation case holds any of the foreground ``labels`` (``absent``: those none holds, as a
    training record's ``val_labels_absent``): every epoch then scores 0 (false positives) or n/a, so validation
    cannot choose one, and the last is shipped."""
    foreground = {int(k) for k in labels} - {0}
    return bool(val_count) and bool(foreground) and foreground <= {int(v) for v in absent or []}


def training_precision(asked: str, device: str) -> tuple[str, str]:
    """The forward pass's precision on ``device`` and why: ``auto`` is bf16 where the device computes bf16 in
    hardware (:func:`~medseg.device.native_bf16`), else fp32; ``fp32`` and ``bf16`` are taken as asked."""
    from medseg.device import native_bf16

    if asked != "auto":
        return asked, "configured"
    if native_bf16(device):
        return "bf16", f"auto: {device} computes bf16 in hardware"
    return "fp32", f"auto: {device} has no native bf16" if device != "cpu" else "auto: no AVX-512 BF16 or AMX"
