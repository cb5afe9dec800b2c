"""A model package's config, ``model.json``: its name and format, reading its bytes and its JSON (a key given twice
refused), and its checks against the shipped schema and for its internal consistency."""

from __future__ import annotations

import json
import math
import os
import re
import unicodedata
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

from medseg.errors import ModelPackageError
from medseg.json_schema import schema_validator
from medseg.label_map import MAX_LABEL_VALUE, label_map
from medseg.numbers import counted, values_text
from medseg.package_labels import _alike, _check_code_texts, _check_label_keys

__all__ = [
    "CONFIG_NAME",
    "DuplicateKeyError",
    "FORMAT",
    "MAX_CONFIG_BYTES",
    "bottleneck_cells",
    "load_schema",
    "meant_error",
    "non_finite_setting",
    "read_config_bytes",
    "unique_keys",
    "validate_config",
    "config_problems",
    "whole_numbers",
]


CONFIG_NAME = "model.json"
FORMAT = "medseg-model/1"  # model.json's "format": what this medseg reads and writes
# model.json's largest: its training record holds about 70 bytes per training case (ids and hashes), so 16 MiB is
# some 200,000 cases; a larger file (a 2 GB one) is not one, and was read whole into memory
MAX_CONFIG_BYTES = 16 << 20


@cache
def load_schema(name: str = "model") -> dict:
    """A JSON schema shipped in ``medseg/schemas`` (``model``: package configs, ``training``: training sections)."""
    return json.loads((resources.files("medseg") / "schemas" / f"{name}.schema.json").read_text())


def non_finite_setting(value, at: tuple[str, ...] = ()) -> tuple[str, float] | None:
    """The first number in ``value`` (a config's mappings and lists) that is NaN or infinite, with its dotted place:
    JSON and YAML readers take ``NaN`` / ``.inf``, and JSON Schema's ranges let NaN through (every comparison with
    it is false)."""
    if isinstance(value, float) and not math.isfinite(value):
        return ".".join(at) or "(top level)", value
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = non_finite_setting(item, (*at, str(key)))
        if found is not None:
            return found
    return None


def meant_error(error):
    """The error to show for a schema ``error``: for a value that fits none of several forms (``oneOf``/``anyOf``:
    "is not valid under any of the given schemas"), the error of the form it was meant as, recursively. A form is
    not meant where the value is not even of its type, or where a property it fixes (a ``kind``) differs; where
    every form differs only in that property, the error names the values it may take."""
    while error.validator in ("oneOf", "anyOf") and error.context:
        forms: dict[int, list] = {}
        for sub in error.context:
            forms.setdefault(sub.relative_schema_path[0], []).append(sub)
        fixed = [sub for subs in forms.values() for sub in subs
                 if sub.validator == "const" and len(sub.relative_path) == 1]
        meant = [subs for subs in forms.values()
                 if not any((sub.validator == "type" and not sub.relative_path) or sub in fixed for sub in subs)]
        if meant:  # the form the value got furthest into (a list of axes: into the list form's items)
            deepest = max(meant, key=lambda subs: (max(len(sub.relative_path) for sub in subs), not any(
                sub.validator in ("enum", "const") and not sub.relative_path for sub in subs)))
            error = sorted(deepest, key=lambda e: e.validator == "additionalProperties")[0]
            continue
        if fixed and len({tuple(sub.relative_path) for sub in fixed}) == 1:
            choices = ", ".join(repr(sub.validator_value) for sub in fixed)
            return _SchemaText(list(fixed[0].absolute_path), f"{fixed[0].instance!r} is not one of {choices}")
        types = [sub.validator_value for sub in error.context if sub.validator == "type" and not sub.relative_path]
        if len(types) == len(forms):  # of none of the forms' types
            shown = " or ".join(dict.fromkeys(repr(t) for t in types))
            return _SchemaText(list(error.absolute_path), f"{error.instance!r} is not of type {shown}")
        break
    return _SchemaText(list(error.absolute_path), error.message, error.validator)


@dataclass
class _SchemaText:
    """Where a schema error is and what it says (:func:`meant_error`)."""

    absolute_path: list
    message: str
    validator: str = ""


def validate_config(config: dict, where: str) -> None:
    """Check a model config against the schema and its internal consistency; the first problem is a
    :class:`~medseg.errors.ModelPackageError` (:func:`config_problems` lists them all)."""
    first = next(config_problems(config, where), None)
    if first is not None:
        raise ModelPackageError(first)


def config_problems(config: dict, where: str):
    """Every problem of a model config, each a line starting with ``where`` and naming the key, as
    :func:`validate_config` would raise it: a newer or another tool's format alone (nothing else of it can be read
    as a package's), else every schema error, else (the keys then being there) every consistency problem."""
    newer = _newer_format(config.get("format"))
    if newer is not None:  # before the schema: a later format may differ anywhere, and not only in its name
        yield (f"{where}: format {config['format']!r} is that of a newer medseg than this one "
               f"({_medseg_version()}, which reads {FORMAT}): upgrade medseg to use this package")
        return
    foreign = _foreign_text(config)
    if foreign is not None:  # before the schema, whose first error would be keys "written by a newer medseg"
        yield (f"{where}: {foreign}: another tool's model.json (TensorFlow.js writes one too), not a medseg model "
               "package")
        return
    texts = []
    for check in (lambda: _check_code_texts(config.get("label_codes"), where),
                  lambda: _check_label_keys(config.get("labels"), where)):
        try:
            check()
        except ModelPackageError as error:
            texts.append(str(error))
    yield from texts
    odd = non_finite_setting(config)
    if odd is not None:
        yield f"{where}: {odd[0]}: {odd[1]} is not a finite number"
    # a misspelt key is usually the cause of a "required" error beside it: name it first
    errors = sorted(schema_validator(load_schema()).iter_errors(config),
                    key=lambda e: (e.validator != "additionalProperties", [str(p) for p in e.path]))
    said = set()
    for error in errors:
        shown = meant_error(error)
        at = "/".join(str(p) for p in shown.absolute_path) or "(top level)"
        unknown = "" if shown.validator != "additionalProperties" else (
            f"; {_medseg_version()} knows no such key: misspelt, or written by a newer medseg (upgrade "
            "medseg to use it)")
        text = f"{where}: invalid model config at {at}: {shown.message}{unknown}"
        if text not in said:  # two forms of one value may be meant alike
            said.add(text)
            yield text
    if texts or odd is not None or errors:
        return  # the checks below read the keys the schema requires
    arch = config["architecture"]
    orientation = config["preprocessing"].get("orientation")
    if orientation is not None and sorted(orientation.translate(str.maketrans("LPI", "RAS"))) != ["A", "R", "S"]:
        yield (f"{where}: preprocessing/orientation {orientation!r} must name each axis once: one "
               "of R/L, one of A/P and one of S/I (RAS, LPS, ...)")
    window = config["preprocessing"].get("intensity", {})
    if window.get("kind") == "window" and not window["min"] < window["max"]:
        yield (f"{where}: preprocessing/intensity window min {window['min']} must be below its "
               f"max {window['max']}")
    weights_file = Path(config["weights"]["file"])
    if weights_file.is_absolute() or ".." in weights_file.parts:
        yield (f"{where}: weights/file {str(weights_file)!r} must name a file inside the package "
               "folder (a relative path without '..')")
    odd_key = next((k for k in config["labels"] if k != str(int(k))), None)
    if odd_key is not None:
        yield (f"{where}: labels key {odd_key!r} must be written {str(int(odd_key))!r} (sidecars, "
               "metrics and reports name label values without leading zeros)")
    names: dict[str, tuple[str, str]] = {}
    for key, name in sorted(config["labels"].items(), key=lambda kv: int(kv[0])):
        if not name.strip() or any(unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in name):
            yield (f"{where}: labels {key}: name {name!r} must be one line of text without "
                   "control characters, not blank")
        folded = unicodedata.normalize("NFC", name).strip().casefold()
        same = names.get(folded)
        if same is not None:
            yield (f"{where}: labels {same[0]} and {key} are {_alike(same[1], name)}; give each "
                   "label a name of its own (reports and DICOM SEG segments are matched by name)")
        names[folded] = (key, name)
    extent = config.get("input_extent_mm")
    if extent is not None and any(lo > hi for lo, hi in zip(extent["min"], extent["max"])):
        yield (f"{where}: input_extent_mm min {extent['min']} exceeds its max {extent['max']} "
               "on some axis")
    values = sorted(int(k) for k in config["labels"])
    if 0 not in values:
        yield (f"{where}: labels {values_text(values)} do not hold 0: declare the background as "
               "label 0 (class 0 of the network)")
    if values and values[-1] > MAX_LABEL_VALUE:
        yield (f"{where}: label value {values[-1]} is above {MAX_LABEL_VALUE}, the largest a "
               "segmentation (uint16) holds")
    if len(values) != arch["n_classes"]:
        yield (
            f"{where}: {counted(len(values), 'label')} ({values_text(values)}) for n_classes={arch['n_classes']}: the "
            "network has one output class per label (class k stands for the k-th smallest value)"
        )
    coded = sorted(int(k) for k in config.get("label_codes", {}))
    stray = [v for v in coded if v == 0 or v not in values]
    if stray:
        segmented = f"1..{len(values) - 1}" if label_map(values).identity else values_text(values[1:])
        yield (
            f"{where}: label_codes {stray} {'is not a' if len(stray) == 1 else 'are not'} segmented label"
            f"{'' if len(stray) == 1 else 's'} (labels {segmented}; background gets no segment)"
        )
    tile = config["inference"]["roi_size"]
    if arch.get("norm", "batch") == "instance" and bottleneck_cells(tile, arch.get("depth", 4)) <= 1:
        yield (
            f"{where}: inference.roi_size {list(tile)} leaves one cell at the bottom of a depth-{arch.get('depth', 4)} "
            f"U-Net, where instance norm is undefined; make a side larger than {2 ** arch.get('depth', 4)}"
        )
    context = config["inference"].get("context_slices", 0)
    modalities = config.get("modalities")
    if modalities is None and arch["in_channels"] != 2 * context + 1:
        yield (
            f"{where}: in_channels={arch['in_channels']} does not match context_slices={context} "
            f"(expected {2 * context + 1})"
        )
    if modalities is not None and arch["in_channels"] != len(modalities) * (2 * context + 1):
        yield (
            f"{where}: in_channels={arch['in_channels']} does not match "
            f"{counted(len(modalities), 'modality', 'modalities')} ({', '.join(modalities)}) with "
            f"context_slices={context} (expected {len(modalities)} × "
            f"{2 * context + 1} = {len(modalities) * (2 * context + 1)})"
        )


def _foreign_text(config: dict) -> str | None:
    """What tells ``config`` another tool's ``model.json``, or None: a ``format`` that names no medseg package format
    (TensorFlow.js's ``layers-model``), or keys but no ``format`` and none of a package's."""
    value = config.get("format")
    if isinstance(value, str) and not value.strip().startswith("medseg-model/"):  # medseg-model/1.x: the schema's
        return f"format {value!r}, not {FORMAT}"
    if config and "format" not in config and not {"architecture", "labels", "preprocessing", "inference",
                                                  "weights"} & set(config):
        shown = ", ".join(sorted(map(str, config))[:4]) + (", …" if len(config) > 4 else "")
        return f"none of a medseg package's keys (it holds {shown})"
    return None


def _newer_format(value) -> tuple[int, ...] | None:
    """The version of a package format later than :data:`FORMAT` that ``value`` (a config's ``format``) names
    (``medseg-model/2``, or a later revision ``medseg-model/1.1``), as numbers (``(1, 1)``), else None
    (``medseg-model/1.0`` is this one's, written otherwise: no newer medseg's)."""
    match = re.fullmatch(r"medseg-model/([0-9]{1,9})(?:\.([0-9]{1,9}))?", value.strip()) if isinstance(value, str) \
        else None
    if match is None:
        return None
    version = (int(match.group(1)), int(match.group(2) or 0))
    return version if version > (int(FORMAT.rsplit("/", 1)[1]), 0) else None


def _medseg_version() -> str:
    from medseg import __version__

    return f"medseg {__version__}"


def bottleneck_cells(size: tuple[int, ...] | list[int], depth: int) -> int:
    """Spatial elements per channel at the U-Net's bottom for a ``size`` input (padded to a multiple of
    ``2**depth``, then halved ``depth`` times). Instance norm needs more than one; so does batch norm with one
    slice per batch. Here, not in :mod:`medseg.network`, so that checking a package (a cohort's planning) does not
    import torch."""
    cells = 1
    for side in size:
        cells *= -(-int(side) // 2**int(depth))
    return cells


class DuplicateKeyError(ValueError):
    """A JSON object that gives one key twice (:func:`unique_keys`)."""

    def __init__(self, key: str):
        super().__init__(f"the key {key!r} is given twice")
        self.key = key


def unique_keys(pairs: list[tuple[str, object]]) -> dict:
    """A JSON object's pairs as a dict (``json.loads``' ``object_pairs_hook``), refusing a key given twice (``json``
    would keep the last in silence) with a :class:`DuplicateKeyError`."""
    seen: dict = {}
    for key, value in pairs:
        if key in seen:
            raise DuplicateKeyError(key)
        seen[key] = value
    return seen


def read_config_bytes(config_path: Path) -> bytes:
    """A package's ``model.json`` as bytes, at most :data:`MAX_CONFIG_BYTES` of them: a larger file is a
    :class:`ModelPackageError` before it is read into memory. ``OSError`` as opening and reading raise it."""
    with open(config_path, "rb") as handle:
        raw = handle.read(MAX_CONFIG_BYTES + 1)
        if len(raw) > MAX_CONFIG_BYTES:
            size = os.fstat(handle.fileno()).st_size
            held = f"{size / (1 << 20):,.0f} MiB" if size > MAX_CONFIG_BYTES else "more than 16 MiB"
            raise ModelPackageError(f"{config_path}: {held}, where a model config holds at most 16 MiB (its training "
                                    "record some 70 bytes a training case); not a model package's config")
    return raw


def whole_numbers(value, schema: dict):
    """``value`` with whole-number floats made ints wherever ``schema`` asks for an integer."""
    types = schema.get("type")
    types = [types] if isinstance(types, str) else list(types or [])
    if isinstance(value, float) and "integer" in types and value.is_integer():
        return int(value)
    if isinstance(value, dict) and isinstance(schema.get("properties"), dict):
        return {k: whole_numbers(v, schema["properties"].get(k, {})) for k, v in value.items()}
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [whole_numbers(v, schema["items"]) for v in value]
    return value
