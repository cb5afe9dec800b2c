"""Training the 2D U-Net on labelled volumes, slice by slice, into a model package.

Volumes are brought into model space with the package's own preprocessing, cut into 2D slices along the
package's slicing axis (with neighbouring slices as channels for 2.5D), augmented with MONAI transforms,
and fitted with DiceCE loss under a learning-rate schedule. Validation runs the whole held-out volumes
through :class:`medseg.inference.Segmenter` — the code path of ``medseg infer`` — and the checkpoint with
the best mean validation Dice becomes the package. Every epoch reseeds all random streams from
``seed + epoch``, so a run resumed from its last checkpoint continues exactly as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import logging
import math
import os
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from medseg import stopping
from medseg.augment import SliceAugment
from medseg.errors import MedsegError, ModelPackageError, OutputExistsError, TrainingError
from medseg.inference import OUT_OF_MEMORY, Segmenter, context_stack, slice_axes
from medseg.input_range import extent_range, model_space_extent
from medseg.io.atomic import atomic_paths, placed_before_stop, remove_leftovers, sha256_of
from medseg.io.files import undecodable
from medseg.metrics import odd_values
from medseg.numbers import IMAGE_LIKE_VALUES, counted, dice_round_text, gib_text, values_text
from medseg.package import (
    CHECKPOINT_DIR,
    CONFIG_NAME,
    ModelPackage,
    bottleneck_cells,
    codes_text,
    load_package,
    load_schema,
    meant_error,
    non_finite_setting,
    save_package,
    unfinished_text,
    unfinished_training,
    validate_config,
    whole_numbers,
)
from medseg.volume import stem

__all__ = [
    "TrainCase",
    "pair_cases",
    "load_cases",
    "train",
    "split_cases",
    "seeded_split",
    "default_training",
    "default_config",
    "default_tile",
    "label_values",
    "read_config",
    "check_config",
    "check_output_folder",
    "check_resume",
    "checkpoint_epoch",
    "checkpoint_tile",
]

log = logging.getLogger(__name__)

MAX_TRAINING_LABEL = 255

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
    return copy.deepcopy(DEFAULT_TRAINING)


DEFAULT_TILE = 128  # the default config's largest tile side; smaller planes get a tile that just holds them
_TILE_STEP = 16  # 2 ** depth of the default U-Net: tile sides are multiples of it
_SMALLEST_TILE = 32  # two cells at the bottom of the default U-Net
DEFAULT_PREPROCESSING = {"orientation": "RAS", "spacing_mm": None, "intensity": {"kind": "zscore"}}


def default_tile(cases: list[TrainCase], preprocessing: dict | None = None, slice_axis: int = 2) -> list[int]:
    """The default config's tile (= training patch): each side the largest of the cases' model-space planes (after
    ``preprocessing``, the default config's unless given), rounded up to a multiple of 16 and kept within 32..128.

    Hippocampus crops of 35 × 50 voxels get a 48 × 64 tile instead of 128 × 128, which would spend ~5× the compute
    on padding in training and inference; a 512 × 512 CT keeps 128 × 128 tiles. Reads headers only.
    """
    from medseg.io.images import read_grid
    from medseg.preprocess import grid_model_shape

    pre = preprocessing or DEFAULT_PREPROCESSING
    largest = [0, 0]
    plane = [a for a in range(3) if a != slice_axis]
    for case in cases:
        shape, affine = read_grid(case.label_path)
        model_shape = grid_model_shape(shape[:3], affine, pre)
        largest = [max(largest[k], model_shape[a]) for k, a in enumerate(plane)]
    return [min(DEFAULT_TILE, max(_SMALLEST_TILE, -(-side // _TILE_STEP) * _TILE_STEP)) for side in largest]


def default_config(values: list[int] | dict[int, Path], name: str = "model", where: str = "labels",
                   tile: list[int] | None = None, names: dict[int, str] | None = None,
                   data: dict[str, str] | None = None) -> dict:
    """The config used when none is given: a small 2.5D U-Net for labels ``values`` (named ``label_N``, or as
    ``names`` has them: a dataset.json's, whose values may add labels no file holds), ``data`` the card's notes.

    Labels must run 0..N (the package format's rule); the training section holds :data:`DEFAULT_TRAINING`; the
    inference tile (and so the training patch) is ``tile`` (:func:`default_tile`), 128 × 128 without it.
    ``where`` (the labels folder) starts the error message; when ``values`` maps each value to a file holding it
    (:func:`label_values`), the file with the first value out of the run starts it instead.
    """
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "model"
    files = values if isinstance(values, dict) else {}
    values = sorted(set(int(v) for v in values) | {0} | set(names or {}))
    if values != list(range(len(values))):
        beyond = next(v for k, v in enumerate(values) if v != k)
        first = (f"{files[beyond]}: label value {beyond}; the label files in {where} hold" if beyond in files else
                 f"{where}: label values")
        advice = " (a 0/255 mask: 255 -> 1)" if values == [0, 255] else ""
        if len(values) > IMAGE_LIKE_VALUES:
            advice = _IMAGE_AMONG_LABELS
        raise TrainingError(
            f"{first} {values_text(values)}, which do not run 0..{len(values) - 1}; a model's labels must be 0..N-1 "
            f"(background 0), so recode the label files to consecutive values first{advice}"
        )
    return {
        "format": "medseg-model/1",
        "name": name,
        "version": "1",
        "description": DEFAULT_DESCRIPTION,
        "architecture": {"type": "unet2d", "in_channels": 3, "n_classes": max(len(values), 2), "base_width": 16,
                         "depth": 4, "dropout": 0.0, "norm": "batch"},
        "labels": {str(v): default_label_name(v, names) for v in range(max(len(values), 2))},
        "preprocessing": copy.deepcopy(DEFAULT_PREPROCESSING),
        "inference": {"slice_axis": 2, "roi_size": list(tile or [DEFAULT_TILE, DEFAULT_TILE]), "overlap": 0.25,
                      "blend": "gaussian", "context_slices": 1, "flip_tta": []},
        "training": {**default_training(), **({"data": dict(data)} if data else {})},
    }


def default_label_name(value: int, names: dict[int, str] | None = None) -> str:
    """A label's name in the default config: ``names``' (a dataset.json's), else background / ``label_N``."""
    if names and value in names:
        return names[value]
    return "background" if value == 0 else f"label_{value}"


def label_values(cases: list[TrainCase]) -> dict[int, Path]:
    """The label values found in the cases' label files, each with the first file holding it, in value order (for
    :func:`default_config`)."""
    from medseg.io.nifti import read_nifti

    found: dict[int, Path] = {}
    for case in cases:
        values = np.unique(read_nifti(case.label_path, hash_input=False, labels=True).array)
        if not np.all(values == np.round(values)) or values.min() < 0:
            hint = _IMAGE_AMONG_LABELS if len(values) > IMAGE_LIKE_VALUES else ""
            raise TrainingError(f"{case.label_path}: label values must be whole non-negative numbers, found "
                                f"{odd_values(values, negative=True)}{hint}")
        for value in values:
            found.setdefault(int(value), case.label_path)
    return dict(sorted(found.items()))


def read_config(path: Path | str) -> dict:
    """A training config (JSON or YAML): the model package fields plus a ``training`` section."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark (Windows editors write one) is no content
    except OSError as error:
        raise TrainingError(f"{path}: cannot read config ({error.strerror})") from error
    except UnicodeDecodeError as error:
        raise TrainingError(f"{path}: not UTF-8 text ({undecodable(error)}); save the config as UTF-8") from error
    try:
        if path.suffix in (".yaml", ".yml"):
            config = _string_keys(_yaml_load(text))
            for key in ("name", "version", "description"):  # version: 2 means "2" (a version 1.10 must be quoted)
                if isinstance(config, dict) and type(config.get(key)) is int:
                    config[key] = str(config[key])
        else:
            config = json.loads(text, object_pairs_hook=_json_pairs)
    except Exception as error:  # noqa: BLE001 - any parse error is a config error
        detail = " ".join(str(error).split())
        kind = "YAML" if path.suffix in (".yaml", ".yml") else "JSON"  # what it was parsed as (a .txt: JSON)
        raise TrainingError(f"{path}: not valid {kind} ({detail})") from error
    if not isinstance(config, dict):
        raise TrainingError(f"{path}: expected a mapping at the top level")
    if isinstance(config.get("weights"), dict):
        # a package's model.json: its training section (if any) is the record of a run, not settings for one, and
        # its weights another model's
        recorded = isinstance((config.get("training") or {}).get("settings"), dict)
        raise TrainingError(f"{path}: a model package's {CONFIG_NAME} (it names its weights"
                            f"{' and records its training' if recorded else ''}), not a training config; start from "
                            "one in configs/train/"
                            + (" (the package's settings are under training.settings)" if recorded else ""))
    if "training" not in config:  # every setting its default: said, since the run takes hours on them
        log.warning("%s: no training section: every setting not given on the command line takes its default (%d "
                    "epochs of %d steps, batch %d, learning rate %g; configs/train/ has examples)", path,
                    DEFAULT_TRAINING["epochs"],
                    DEFAULT_TRAINING["steps_per_epoch"], DEFAULT_TRAINING["batch_size"],
                    DEFAULT_TRAINING["learning_rate"])
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


def _json_pairs(pairs: list) -> dict:
    """A JSON object, refusing a key given twice (the reader keeps the last without a word)."""
    seen: dict = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"the key {key!r} is given twice")
        seen[key] = value
    return seen


def _string_keys(value):
    """Mapping keys as text, as JSON has them: YAML reads ``labels: {0: background}`` with whole-number keys."""
    if isinstance(value, dict):
        return {k if isinstance(k, str) else str(k): _string_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_string_keys(v) for v in value]
    return value


@dataclass
class TrainCase:
    case_id: str
    image_path: Path
    label_path: Path
    image: torch.Tensor | None = None  # (C, X, Y, Z) model space
    label: torch.Tensor | None = None  # (X, Y, Z) uint8, model space
    extent_mm: list[float] | None = None  # field of view per model-space axis (for the package's input range)
    sha256: tuple[str, str] | None = None  # of the image and label files, as read (a resumed run checks them)

    def view(self, axis: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Image ``(C, A, B, S)`` and label ``(A, B, S)`` turned so that model-space ``axis`` is last."""
        return torch.movedim(self.image, 1 + axis, -1), torch.movedim(self.label, axis, -1)


DEFAULT_DESCRIPTION = "Trained with medseg train and its default config."
_IMAGE_SUFFIXES = (".nii.gz", ".nii")
_IMAGE_AMONG_LABELS = "; so many values suggest an image rather than labels (are --images and --labels swapped?)"
_LABEL_SUFFIXES = ("_label", "_labels", "_seg", "_mask", "_gt")  # _gt: ACDC's ground truth


def _image_files(folder: Path) -> dict[str, Path]:
    """The NIfTI files directly in ``folder`` by case name; anything else there (a subfolder, a DICOM folder, another
    format) is left out with a warning naming it, never silently."""
    if not folder.is_dir():
        raise TrainingError(f"{folder}: no such folder")
    files: dict[str, Path] = {}
    left_out, broken, hidden = [], [], []
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):  # said where it looks like a case (not macOS's ._ companions, .DS_Store, …)
            if not path.name.startswith("._") and path.name.lower().endswith(_IMAGE_SUFFIXES):
                hidden.append(path.name)
            continue
        if path.is_symlink() and not path.exists():
            broken.append(path.name)
            continue
        if not path.is_file() or not path.name.lower().endswith(_IMAGE_SUFFIXES):  # .NII.GZ too
            left_out.append(path.name + ("/" if path.is_dir() else ""))
            continue
        _add_case(files, stem(path), path)
    if left_out:
        shown = ", ".join(left_out[:5]) + (" …" if len(left_out) > 5 else "")
        entries = ("1 entry that is not a .nii/.nii.gz file" if len(left_out) == 1
                   else f"{len(left_out)} entries that are not .nii/.nii.gz files")
        log.warning("%s: left out %s (subfolders are not searched): %s", folder, entries, shown)
    if hidden:
        shown = ", ".join(hidden[:5]) + (" …" if len(hidden) > 5 else "")
        log.warning("%s: left out %s (names starting with a dot are hidden): %s", folder,
                    counted(len(hidden), "hidden image file"), shown)
    if broken:
        shown = ", ".join(broken[:5]) + (" …" if len(broken) > 5 else "")
        links = "1 link that leads" if len(broken) == 1 else f"{len(broken)} links that lead"
        log.warning("%s: left out %s nowhere (moved or deleted targets, or a loop): %s", folder, links, shown)
    return files


def _add_case(files: dict[str, Path], name: str, path: Path) -> None:
    """Add ``path`` as case ``name``; two files for one case are an error, never a silent pick."""
    if name in files:
        raise TrainingError(f"{path}: case {name!r} has two files ({files[name].name} and {path.name}); "
                            "keep one of them")
    files[name] = path


def pair_cases(images_dir: Path | str, labels_dir: Path | str, allow_unpaired: bool = False) -> list[TrainCase]:
    """Pair images and labels by file name (a label may add ``_label(s)``, ``_seg``, ``_mask`` or ``_gt``; an image
    may add nnU-Net's channel suffix ``_0000``, as in ``imagesTr/case_0000.nii.gz`` with ``labelsTr/case.nii.gz``).

    Images without a label and labels without an image are an error naming them, unless ``allow_unpaired``.
    """
    with contextlib.suppress(OSError):
        if Path(images_dir).is_dir() and Path(images_dir).samefile(labels_dir):  # each image would be its own label
            raise TrainingError(f"{labels_dir}: given as both the images and the labels folder; put the label files "
                                "in a folder of their own")
    label_files = _image_files(Path(labels_dir))
    image_files = _image_files(Path(images_dir))

    def bare(name: str) -> str:
        return name[:-5] if name.endswith("_0000") else name

    # a label may name its case with a label suffix, when an image (with or without nnU-Net's _0000) has the name
    # without it; a name that is both an image's and, stripped, another image's goes to whichever is left free
    image_names = set(image_files) | {bare(name) for name in image_files}

    def stripped(name: str) -> str | None:
        for suffix in _LABEL_SUFFIXES:
            if name.endswith(suffix) and name[: -len(suffix)] in image_names:
                return name[: -len(suffix)]
        return None

    case_of = {name: stripped(name) for name in label_files if name not in image_names}  # only one reading
    taken = {case for case in case_of.values() if case is not None}
    for name in label_files:
        if name in image_names:  # its own name is an image's, unless another label has claimed that image
            case_of[name] = stripped(name) if name in taken and stripped(name) not in taken else name
    labels: dict[str, Path] = {}
    for name, path in label_files.items():
        _add_case(labels, case_of[name] or name, path)
    images: dict[str, Path] = {}
    for name, path in image_files.items():
        if name.endswith("_0000") and bare(name) in labels and name not in labels:
            name = bare(name)
        _add_case(images, name, path)
    paired = sorted(set(images) & set(labels))
    if not paired:
        example = (f"; e.g. image '{min(images)}', label '{min(labels)}'; a label may add "
                   f"{', '.join(_LABEL_SUFFIXES)} to its image's name, an image nnU-Net's _0000"
                   if images and labels else "")
        raise TrainingError(
            f"{images_dir}: no image has a label of the same name in {labels_dir} "
            f"({len(images)} images, {len(labels)} labels{example})"
        )
    unpaired = [images[n] for n in sorted(set(images) - set(labels))]
    unpaired += [labels[n] for n in sorted(set(labels) - set(images))]
    if unpaired and not allow_unpaired:
        shown = ", ".join(str(p) for p in unpaired[:5]) + (" …" if len(unpaired) > 5 else "")
        channels = [n for n in set(images) - set(labels) if re.fullmatch(r".+_\d{4}", n) and n[:-5] in paired
                    and stem(images[n[:-5]]).endswith("_0000")]  # beside a paired case_0000: its channel 1, 2…
        hint = (f"; {len(channels)} of them (e.g. {images[min(channels)].name}) "
                f"{'looks' if len(channels) == 1 else 'look'} like further input channels of a paired case (nnU-Net's "
                "_0001…), and medseg trains on one image per case" if channels else "")
        raise TrainingError(
            f"{unpaired[0]}: {len(unpaired)} file(s) have no counterpart of the same name "
            f"(images in {images_dir}, labels in {labels_dir}): {shown}{hint}"
            + _shape_mismatches([TrainCase(name, images[name], labels[name]) for name in paired])
        )
    return [TrainCase(name, images[name], labels[name]) for name in paired]


def _shape_mismatches(cases: list[TrainCase]) -> str:
    """"; besides, ..." naming the paired cases whose label (from the headers) is not on its image's grid: of
    another shape, or placed elsewhere; for the error about unpaired files: one run then shows both things to fix.
    A label in another voxel order (LPS beside RAS) is re-indexed, not named. Empty where none is, or a header
    cannot be read (reading the case names that)."""
    from medseg.io.images import read_grid
    from medseg.metrics import grid_offset_mm, grid_tolerance_mm

    shapes, placed = [], []
    for case in cases:
        try:
            (image, image_affine), (label, label_affine) = read_grid(case.image_path), read_grid(case.label_path)
        except (MedsegError, OSError, ValueError):
            continue
        image, label = tuple(image[:3]), tuple(label[:3])
        off = grid_offset_mm(label, label_affine, image, image_affine)
        if off is None:  # as reading the case would say: "shape … differs from its image's"
            shapes.append(f"{case.case_id} ({'×'.join(map(str, label))} against {'×'.join(map(str, image))})")
            continue
        if not off <= grid_tolerance_mm(image_affine):
            placed.append(f"{case.case_id} (up to {off:.3g} mm off)")
    text = ""
    for found, what in ((shapes, "a label of another shape than the image"),
                        (placed, "a label off the image's grid")):
        if found:
            shown = ", ".join(found[:3]) + (f" … and {len(found) - 3} more" if len(found) > 3 else "")
            text += f"; besides, {len(found)} paired case(s) have {what}: {shown}"
    return text


def load_cases(cases: list[TrainCase], config: dict) -> list[TrainCase]:
    """Read, check and bring every case into model space. A case that cannot be trained on does not stop the
    others' checks: every such case is named in one line (the error itself where there is one)."""
    from medseg.preprocess import build_transforms, physical_memory

    pre = config["preprocessing"]
    transforms = build_transforms(pre, with_label=True)
    declared = {int(k) for k in config["labels"]}
    axes = slice_axes(config["inference"])
    first: MedsegError | None = None
    problems: list[str] = []
    _check_cases_fit(cases, pre, physical_memory())
    for case in cases:
        try:
            _load_case(case, pre, transforms, declared, axes)
        except MedsegError as error:
            if isinstance(error.__cause__ or error.__context__, MemoryError):
                raise  # the machine is short of memory: the other cases would only be short of it too
            problems.append(str(error))
            if first is None:  # kept without its traceback, which would hold the case's volumes
                first = error.with_traceback(None)
                first.__cause__ = first.__context__ = None
    if len(problems) == 1:
        raise first
    if problems:
        shown = "; ".join(problems[:3])
        more = ""
        if len(problems) > 3:  # each on a line of its own, so that all can be fixed before the next run
            for problem in problems:
                log.warning("%s", problem)
            more = f"; … ({len(problems) - 3} more; all {len(problems)} are listed above)"
        raise TrainingError(f"{len(problems)} of {len(cases)} cases cannot be trained on: {shown}{more}")
    return cases


def _check_cases_fit(cases: list[TrainCase], pre: dict, memory: int | None) -> None:
    """Refuse, from the headers alone, a set of cases that training could not hold in memory: it keeps every case in
    model space (float32 image, uint8 label), and each volume may fit alone (six of 3 GiB on a 23 GiB machine) where
    all do not. A header that cannot be read counts nothing here: reading the case reports it."""
    import warnings

    from medseg.errors import ImageReadError, InputError
    from medseg.io.images import read_grid
    from medseg.preprocess import grid_memory, warn_over_cgroup

    if memory is None or not cases:
        return
    total = 0
    for case in cases:
        try:
            shape, affine = read_grid(case.image_path)
        except (ImageReadError, InputError):
            continue
        channels = math.prod(shape[3:]) if len(shape) > 3 else 1
        try:
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                alone, model_shape = grid_memory(shape[:3], affine, pre)
        except (ValueError, OverflowError):
            continue
        voxels = math.prod(model_shape)
        if voxels <= 0 or alone > memory:
            return  # a case that cannot fit even alone: its own check names it and its voxel size, in one line
        total += voxels * (4 * channels + 1)
    if total > memory:
        spacing = pre.get("spacing_mm")
        fix = (f"check preprocessing.spacing_mm ({spacing}) against the images' voxel sizes, or train on fewer "
               "cases" if spacing else "train on fewer or smaller cases")
        raise TrainingError(f"{cases[0].image_path.parent}: the {len(cases)} cases would hold about "
                            f"{total / 2**30:.1f} GiB in model space, more than this machine's {memory / 2**30:.1f} "
                            f"GiB of memory; {fix}")
    warn_over_cgroup(cases[0].image_path.parent, total, memory, f"training on its {len(cases)} cases")


def _load_case(case: TrainCase, pre: dict, transforms, declared: set[int], axes) -> None:
    """Read and check one case and bring it into model space (``case.image``, ``case.label``)."""
    from monai.data import MetaTensor

    from medseg.errors import GeometryError
    from medseg.io.nifti import read_nifti
    from medseg.metrics import check_same_grid, reorder_onto_grid
    from medseg.preprocess import (
        apply_transforms,
        check_finite,
        check_not_constant,
        check_resampling_size,
        check_slices_fit,
    )

    image = read_nifti(case.image_path)
    # what `medseg infer` refuses is refused here too: it could not reproduce figures measured on such a case
    check_not_constant(image, "nothing to learn from")
    # first: a nonsense voxel size gives the other check a nonsense shape; a cgroup is warned about for the whole set
    check_resampling_size(image, pre, doing=None)
    check_slices_fit(image, pre, axes)
    label = read_nifti(case.label_path, labels=True)
    case.sha256 = (image.source_sha256, label.source_sha256)
    # the same voxels stored in another order (LPS vs RAS, dcm2niix's reversed rows) are re-indexed, and the
    # grid is checked with the tolerance `medseg infer --reference` and evaluate_model.py score with
    label = reorder_onto_grid(label, image)
    if image.shape != label.shape:
        raise TrainingError(f"{case.label_path}: shape {label.shape} differs from its image's {image.shape}")
    try:
        check_same_grid(image, label, outcome="not trained")
    except GeometryError as error:
        raise TrainingError(str(error)) from error
    values = np.unique(label.array)
    if not np.all(values == np.round(values)):
        hint = _IMAGE_AMONG_LABELS if len(values) > IMAGE_LIKE_VALUES else ""
        raise TrainingError(f"{case.label_path}: label values are not whole numbers, found {odd_values(values)}{hint}")
    unknown = sorted(set(int(v) for v in values) - declared)
    if unknown:
        hint = _IMAGE_AMONG_LABELS if len(values) > IMAGE_LIKE_VALUES else ""
        raise TrainingError(f"{case.label_path}: label values {values_text(unknown)} are not declared in the "
                            f"config's labels {values_text(sorted(declared))}{hint}")
    affine = torch.from_numpy(image.affine)
    peak = float(np.abs(image.array).max())  # before the transforms, which may work on the array in place
    data = apply_transforms(transforms, {
        "image": MetaTensor(torch.from_numpy(image.array), affine=affine),
        "label": MetaTensor(torch.from_numpy(label.array.astype(np.float32)), affine=affine.clone()),
    }, case.image_path)
    check_finite(data["image"].as_tensor(), image, peak)
    case.extent_mm = model_space_extent(data["image"])
    case.image = data["image"].as_tensor().float().contiguous()
    case.label = data["label"].as_tensor()[0].round().to(torch.uint8).contiguous()


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
        raise TrainingError(f"{where}: training.fold (--fold) must be in 0..{folds - 1} "
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


def check_config(config: dict, where: str = "training config") -> dict:
    """Check a training config before any case is read; return its merged training settings.

    The package fields go through the package schema, the ``training`` section through
    ``schemas/training.schema.json`` (types, ranges, no unknown keys, so a misspelt setting is not silently
    ignored). Every problem is a :class:`TrainingError` starting with ``where`` (the config file).
    """
    import jsonschema

    if not isinstance(config, dict):
        raise TrainingError(f"{where}: expected a mapping at the top level")
    package_config = {k: v for k, v in config.items() if k != "training"}
    package_config.setdefault("format", "medseg-model/1")
    package_config["weights"] = {"file": "weights.safetensors", "sha256": "0" * 64}
    try:
        validate_config(package_config, where)
    except ModelPackageError as error:
        raise TrainingError(str(error)) from error
    training = config.get("training", {})
    odd = non_finite_setting(training, ("training",))
    if odd is not None:
        raise TrainingError(f"{where}: {odd[0]}: {odd[1]} is not a finite number")
    errors = sorted(jsonschema.Draft202012Validator(load_schema("training")).iter_errors(training),
                    key=lambda e: (e.validator != "additionalProperties", [str(p) for p in e.absolute_path]))
    if errors:
        first = meant_error(errors[0])
        at = ".".join(["training", *(str(p) for p in first.absolute_path)])
        message = first.message
        if first.validator == "additionalProperties":
            message = message.replace("Additional properties are not allowed", "unknown setting(s)")
        raise TrainingError(f"{where}: {at}: {message}")
    settings = {**default_training(), **training}
    settings["augment"] = {**DEFAULT_TRAINING["augment"], **training.get("augment", {})}
    gamma = settings["augment"].get("gamma")
    if gamma is not None and gamma[0] > gamma[1]:  # MONAI would draw from an empty range without a word
        raise TrainingError(f"{where}: training.augment.gamma: {gamma} gives its larger bound first; give "
                            "[smallest, largest]")
    largest = max(int(k) for k in config["labels"])
    if largest > MAX_TRAINING_LABEL:
        raise TrainingError(f"{where}: label value {largest} is above {MAX_TRAINING_LABEL}, the largest medseg train "
                            "supports (labels are kept as 8-bit values)")
    # the inference tile was checked with the package fields (validate_config); the training patch is checked here
    arch = config["architecture"]
    depth, norm = int(arch.get("depth", 4)), arch.get("norm", "batch")
    patch = list(settings.get("patch_size") or config["inference"]["roi_size"])
    if (norm == "instance" or (norm == "batch" and int(settings["batch_size"]) == 1)) and (
            bottleneck_cells(patch, depth) <= 1):
        why = "instance norm" if norm == "instance" else "batch norm with training.batch_size 1"
        raise TrainingError(f"{where}: training.patch_size {patch} leaves one cell at the bottom of a depth-{depth} "
                            f"U-Net, where {why} is undefined; make a side larger than {2 ** depth}")
    settings["patch_size"] = [int(v) for v in patch]  # the size used, also where the default (the tile) was asked
    return settings


def training_precision(asked: str, device: str) -> tuple[str, str]:
    """The forward pass's precision on ``device`` and why: ``auto`` is bf16 where the device computes bf16 in
    hardware (:func:`~medseg.device.native_bf16`), else fp32; ``fp32`` and ``bf16`` are taken as asked."""
    from medseg.device import native_bf16

    if asked != "auto":
        return asked, "configured"
    if native_bf16(device):
        return "bf16", f"auto: {device} computes bf16 in hardware"
    return "fp32", f"auto: {device} has no native bf16" if device != "cpu" else "auto: no AVX-512 BF16 or AMX"


def _training_autocast(precision: str, device: str) -> Callable:
    """A context factory for the forward pass: bf16 autocast (weights and loss stay float32) or nothing.

    ``precision`` was checked by :func:`check_config`.
    """
    if precision == "bf16":
        return lambda: torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
    return contextlib.nullcontext


def _learning_rate(settings: dict, epoch: int) -> float:
    base = float(settings["learning_rate"])
    epochs = int(settings["epochs"])
    warmup = int(settings.get("warmup_epochs", 0))
    if epoch < warmup:
        return base * (epoch + 1) / (warmup + 1)
    schedule = settings.get("schedule", "cosine")
    progress = (epoch - warmup) / max(1, epochs - warmup)
    if schedule == "constant":
        return base
    if schedule == "poly":
        return base * (1 - progress) ** 0.9
    if schedule == "cosine":
        return base * 0.5 * (1 + math.cos(math.pi * progress))
    raise TrainingError(f"unknown learning-rate schedule {schedule!r} (cosine, poly or constant)")


def _dice_per_label(pred: np.ndarray, ref: np.ndarray, labels: list[int]) -> dict[int, float]:
    out = {}
    for value in labels:
        p, r = pred == value, ref == value
        denom = int(p.sum()) + int(r.sum())
        out[value] = float("nan") if denom == 0 else 2.0 * int(np.logical_and(p, r).sum()) / denom
    return out


class _SliceSampler:
    """Draws (case, axis, slice) triples over the slicing axes, preferring slices with foreground."""

    def __init__(self, cases: list[TrainCase], axes: list[int], foreground_fraction: float) -> None:
        self.cases = cases
        self.fraction = foreground_fraction
        self.all, self.foreground = [], []
        for c, case in enumerate(cases):
            for axis in axes:
                labelled = torch.movedim(case.label, axis, 0).flatten(1).any(1).tolist()
                for s, has in enumerate(labelled):
                    self.all.append((c, axis, s))
                    if has:
                        self.foreground.append((c, axis, s))

    def draw(self, rng: np.random.Generator, n: int) -> list[tuple[int, int, int]]:
        picks = []
        for _ in range(n):
            pool = self.foreground if self.foreground and rng.random() < self.fraction else self.all
            picks.append(pool[int(rng.integers(len(pool)))])
        return picks


def checkpoint_stamp(out_dir: Path | str) -> tuple[int, int] | None:
    """Identifies the checkpoint record now in ``out_dir`` (inode and modification time), or None: a run that
    replaces a package (--overwrite) keeps the old run's checkpoint until its own first epoch is saved over it."""
    try:
        status = _checkpoint_meta(out_dir).stat()
    except OSError:
        return None
    return status.st_ino, status.st_mtime_ns


def _started_config(out_dir: Path | str) -> dict | None:
    """The package config the checkpoint in ``out_dir`` was started with (its record's ``config``), or None when
    there is no readable record."""
    try:
        config = json.loads(_checkpoint_meta(out_dir).read_text())["config"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return config if isinstance(config, dict) else None


def checkpoint_tile(out_dir: Path | str) -> list[int] | None:
    """The tile (``inference.roi_size``) the checkpoint in ``out_dir`` was started with, or None (no readable
    record): a run without a config resumes on its own tile, not on one sized anew from the data (which a run
    started before the default tile followed the planes had as 128 × 128, and which a replaced case may change)."""
    try:
        tile = (_started_config(out_dir) or {})["inference"]["roi_size"]
    except (KeyError, TypeError):
        return None
    if isinstance(tile, list) and len(tile) == 2 and all(isinstance(v, int) and v > 0 for v in tile):
        return tile
    return None


def started_without_names(out_dir: Path | str) -> bool:
    """Whether the checkpoint in ``out_dir`` was started by a default config that named its labels ``label_N`` (no
    dataset.json then: every run before medseg read them)."""
    try:
        labels = {int(v): str(name) for v, name in (_started_config(out_dir) or {})["labels"].items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        return False
    return all(name == default_label_name(v) for v, name in labels.items())


def check_checkpoint_labels(out_dir: Path | str, found: dict[int, Path], names: dict[int, str] | None = None,
                            names_from: Path | None = None) -> None:
    """A run without a config takes its labels from the label files, named as ``names`` (the dataset.json
    ``names_from``'s) has them: resuming it, labels named otherwise than the checkpoint's run named them, or a value it
    was not started with (or one no file holds any more) name the dataset.json or the label file, not "other
    settings" of a config the user never gave."""
    declared = names
    try:
        names = {int(v): str(name) for v, name in (_started_config(out_dir) or {})["labels"].items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        return  # no record to compare: check_resume says what is wrong with the checkpoint
    started, now = set(names), set(found) | {0} | set(declared or {})
    renamed = [v for v in sorted(started & now) if v != 0 and names[v] != default_label_name(v, declared)]
    if renamed:
        shown = ", ".join(f"{v} {names[v]}" for v in sorted(names) if v != 0)
        if declared:
            now_shown = ", ".join(f"{v} {default_label_name(v, declared)}" for v in renamed)
            raise TrainingError(f"{names_from}: names labels {now_shown}, and the checkpoint in {out_dir} was started "
                                f"with labels {shown}; resume with the names it was started with, or start again "
                                "with --overwrite")
        # the default config names labels label_N: this run was started with a config (or a dataset.json) of its own
        raise TrainingError(f"{out_dir}: the checkpoint was started with a config of its own or a dataset.json (labels "
                            f"{shown}); resume with -c and that config, or with that dataset.json beside the images "
                            "and labels folders")
    advice = "resume with the files it was started with, or start again with --overwrite"
    new, gone = sorted(now - started), sorted(started - now)
    if new:
        where = f"{found[new[0]]}: label value {new[0]}" if new[0] in found else \
            f"{names_from}: label {new[0]} '{default_label_name(new[0], declared)}'"
        raise TrainingError(f"{where}, which the checkpoint in {out_dir} was not trained with (its labels "
                            f"{sorted(started)}); {advice}")
    if gone:
        declares = f" and {names_from} does not declare" if names_from is not None else ""
        raise TrainingError(f"{out_dir}: the checkpoint was trained with label value {gone[0]}, which no label file "
                            f"holds{declares} now; {advice}")


def checkpoint_planned_epochs(out_dir: Path | str) -> int | None:
    """The epoch count the checkpoint's run in ``out_dir`` last planned (``training.epochs``, or ``--epochs``), or
    None (no readable record, or one from before plans were recorded)."""
    meta = _checkpoint_meta(out_dir)
    try:
        planned = json.loads(meta.read_text())["epochs_planned"][-1]
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None
    return planned if isinstance(planned, int) and not isinstance(planned, bool) else None


def checkpoint_epoch(out_dir: Path | str) -> int | None:
    """The last finished epoch of the checkpoint in ``out_dir``, or None when there is none (or it is unreadable)."""
    meta = _checkpoint_meta(out_dir)
    try:
        return int(json.loads(meta.read_text())["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def check_output_folder(out_dir: Path | str, overwrite: bool = False, resume: bool = False) -> None:
    """Refuse an output folder before any case is read: one that holds a package or an unfinished run that would be
    replaced without ``overwrite`` (or ``resume``), one that holds other files, or one that cannot be written.

    Creates nothing: a folder made to test writing is removed again.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise TrainingError(f"{out_dir}: exists and is not a folder")
    epoch = checkpoint_epoch(out_dir)
    # a first checkpoint never completed (a full disk, a kill): the folder without its record holds nothing to keep
    begun = not _checkpoint_meta(out_dir).exists() and (out_dir / CHECKPOINT_DIR).is_dir()
    if resume and epoch is None:
        if _checkpoint_meta(out_dir).is_file():  # a record that does not parse as one: say what is wrong with it
            _checkpoint_record(_checkpoint_meta(out_dir))
        again = "train again with --overwrite" if (out_dir / CONFIG_NAME).is_file() else "train without --resume"
        never = f"; its first checkpoint was never completed: {again}" if begun else ""
        raise TrainingError(f"{out_dir}: nothing to resume (no readable {CHECKPOINT_DIR}/last.json){never}")
    if out_dir.is_dir():
        entries = sorted(p.name for p in out_dir.iterdir())
        package = CONFIG_NAME in entries
        checkpoint = CHECKPOINT_DIR in entries and not begun
        if begun:
            entries = [name for name in entries if name != CHECKPOINT_DIR] or [CHECKPOINT_DIR]
        if checkpoint and not (out_dir / CHECKPOINT_DIR).is_dir():  # not even --overwrite could save a checkpoint
            raise TrainingError(f"{out_dir / CHECKPOINT_DIR}: a file is where training keeps its checkpoint folder; "
                                "move it away")
        if not (package or resume or overwrite) and epoch is not None:
            raise OutputExistsError(f"{out_dir}: holds an unfinished training run (checkpoint after epoch {epoch}); "
                                    "pass --resume to continue it or --overwrite to start again")
        if checkpoint and epoch is None and not overwrite:
            raise OutputExistsError(f"{out_dir}: holds a checkpoint whose record {CHECKPOINT_DIR}/last.json cannot "
                                    "be read; pass --overwrite to start again")
        unfinished = unfinished_training(out_dir) if package else None
        if unfinished is not None and not (overwrite or resume):  # an --overwrite run stopped before it finished
            raise OutputExistsError(f"{out_dir}: holds a model package and an unfinished training run that would "
                                    f"replace it ({unfinished_text(unfinished)}); pass --resume to finish that run "
                                    "or --overwrite to start again")
        if package and not (overwrite or resume):
            raise OutputExistsError(f"{out_dir}: holds a model package already; pass --overwrite or --resume")
        # a training folder (package or checkpoint) may hold the user's notes beside it; any other folder is refused
        if entries and not package and not (checkpoint and (resume or overwrite)) and entries != [CHECKPOINT_DIR]:
            shown = ", ".join(entries[:3]) + (" …" if len(entries) > 3 else "")
            raise TrainingError(f"{out_dir}: is not empty and holds no model package ({shown}); give a new or empty "
                                "folder")
    missing, existing = [], out_dir
    while not existing.exists():
        missing.append(existing)
        existing = existing.parent
    if not existing.is_dir():
        raise TrainingError(f"{out_dir}: cannot create the output folder ({existing} is not a folder)")
    created = []
    try:
        for folder in reversed(missing):
            folder.mkdir()
            created.append(folder)
        for folder in (out_dir, out_dir / CHECKPOINT_DIR):  # a kept checkpoint folder is written too, every epoch
            if folder == out_dir or folder.is_dir():
                handle, probe = tempfile.mkstemp(dir=folder, prefix=".medseg-write-test-")
                os.close(handle)
                os.unlink(probe)
    except OSError as error:
        where = out_dir / CHECKPOINT_DIR if Path(getattr(error, "filename", "") or "").parent.name == CHECKPOINT_DIR \
            else out_dir
        what = "cannot write the output folder here" if where == out_dir else "cannot write into the checkpoint folder"
        raise TrainingError(f"{where}: {what} ({error.strerror or error})") from error
    finally:
        for folder in reversed(created):
            with contextlib.suppress(OSError):
                folder.rmdir()


CHECKPOINT_SCHEMA = {  # what a resume reads from the checkpoint record (last.json)
    "type": "object",
    "required": ["epoch", "best_dice", "best_epoch", "history", "param_groups"],
    "properties": {
        "epoch": {"type": "integer", "minimum": 0}, "best_dice": {"type": "number"}, "best_epoch": {"type": "integer"},
        "history": {"type": "array", "items": {"type": "object", "required": ["epoch"],
                                               "properties": {"epoch": {"type": "integer", "minimum": 1}}}},
        "param_groups": {"type": "array", "minItems": 1, "items": {"type": "object"}},
        "epochs_planned": {"type": "array", "items": {"type": ["integer", "null"]}},
        "data_sha256": {"type": "object", "additionalProperties": {"type": "array"}},
        "val_cases": {"type": "array"}, "config": {"type": "object"},
        "weights_file": {"type": "string", "pattern": r"^last(-[0-9a-f]{16})?\.safetensors$"},
    },
}


def _checkpoint_meta(out_dir: Path) -> Path:
    """The checkpoint's record, ``last.json``."""
    return Path(out_dir) / CHECKPOINT_DIR / "last.json"


def _checkpoint_tensors(out_dir: Path, record: dict | None = None) -> Path:
    """The checkpoint's tensors, as its record (``record``, read here when not given) names them
    (``last-<sha256 prefix>.safetensors``; records before that: ``last.safetensors``)."""
    meta = _checkpoint_meta(out_dir)
    name = "last.safetensors"
    with contextlib.suppress(OSError, ValueError, AttributeError, TypeError):
        named = (record if record is not None else json.loads(meta.read_text())).get("weights_file")
        if isinstance(named, str) and re.fullmatch(CHECKPOINT_SCHEMA["properties"]["weights_file"]["pattern"], named):
            name = named
    return meta.parent / name


def _save_checkpoint(out_dir: Path, net, best_state, optimizer, state: dict, ema=None) -> None:
    from safetensors.torch import save

    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    if ema is not None:
        tensors.update({f"ema.{k}": v.detach().cpu().contiguous() for k, v in ema.state_dict().items()})
    if best_state is not None:
        tensors.update({f"best.{k}": v.detach().cpu().contiguous() for k, v in best_state.items()})
    opt = optimizer.state_dict()
    for index, entry in opt["state"].items():
        for key, value in entry.items():
            tensors[f"optim.{index}.{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
    state = dict(state, param_groups=opt["param_groups"])
    meta = _checkpoint_meta(out_dir)
    folder = meta.parent
    folder.mkdir(parents=True, exist_ok=True)
    remove_leftovers(folder)  # of a save killed outright (the run holds the folder)
    data = save(tensors)
    digest = hashlib.sha256(data).hexdigest()
    # The record commits the save in one rename: the tensors go first under a name of their own (their content's),
    # and the record that names them replaces the last one. A kill between the two leaves the last pair whole (it
    # used to replace last.safetensors and last.json in two renames, and a kill between them lost the run).
    weights = folder / f"last-{digest[:16]}.safetensors"
    last = _checkpoint_tensors(out_dir)
    with atomic_paths([weights], overwrite=True) as (temp,):
        temp.write_bytes(data)
    _fsync(weights)  # on disk before a record names them (a power loss must not leave a record of lost tensors)
    try:
        with atomic_paths([meta], overwrite=True) as (temp,):
            # the record vouches for the tensors: a damaged file that still parses would resume on wrong weights
            temp.write_text(json.dumps(dict(state, weights_sha256=digest, weights_file=weights.name), indent=1))
    except BaseException:
        if weights != last:  # tensors no record names (a full disk had no room for the record)
            with contextlib.suppress(OSError):
                weights.unlink()
        raise
    _fsync(folder)
    for old in folder.glob("last*.safetensors"):  # the pair it replaced (or an uncommitted save's tensors)
        if old.name != weights.name:
            with contextlib.suppress(OSError):
                old.unlink()


def _fsync(path: Path) -> None:
    """Flush a file, or a folder's entries, to the disk (where the file system allows it)."""
    with contextlib.suppress(OSError):
        handle = os.open(path, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)


def _remove_empty(folders: list[Path]) -> None:
    """Remove those of ``folders`` (deepest first) that are empty."""
    for folder in folders:
        with contextlib.suppress(OSError):
            folder.rmdir()


def _checkpoint_record(meta: Path) -> dict:
    """The checkpoint's JSON record, refused in one line when unreadable or without the fields a resume needs."""
    try:
        state = json.loads(meta.read_text())
    except (OSError, ValueError) as error:
        raise TrainingError(f"{meta}: unreadable checkpoint record ({error}); start again with --overwrite") from error
    import jsonschema

    # an integer here is a Python int: JSON Schema's integer also takes 3.0, which range() refuses
    whole = jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _, value: isinstance(value, int) and not isinstance(value, bool))
    validator = jsonschema.validators.extend(jsonschema.Draft202012Validator, type_checker=whole)(CHECKPOINT_SCHEMA)
    missing = [k for k in CHECKPOINT_SCHEMA["required"] if k not in state] if isinstance(state, dict) else []
    error = jsonschema.exceptions.best_match(validator.iter_errors(state))
    if missing or error is not None:
        what = (f"it lacks {', '.join(missing)}" if missing else
                f"malformed {'.'.join(str(p) for p in error.path) or 'record'}")
        raise TrainingError(f"{meta}: cannot resume from this checkpoint record ({what}); start again with "
                            "--overwrite")
    return state


def _check_weights_digest(weights: Path, recorded: str | None, record_name: str) -> None:
    """Refuse checkpoint weights whose SHA-256 is not the ``recorded`` one (None: a checkpoint from before it was
    recorded)."""
    if recorded is None:
        return
    try:
        digest = sha256_of(weights)
    except OSError as error:
        raise TrainingError(f"{weights}: cannot resume from this checkpoint ({error.strerror or error}); start "
                            "again with --overwrite") from error
    if recorded != digest:
        raise TrainingError(f"{weights}: damaged checkpoint (its SHA-256 is not the one {record_name} records); start "
                            "again with --overwrite")


def _load_checkpoint(out_dir: Path, net, optimizer, ema=None) -> tuple[dict, dict | None]:
    from safetensors.torch import load

    weights, meta = _checkpoint_tensors(out_dir), _checkpoint_meta(out_dir)
    from medseg.package import state_mismatch

    try:
        tensors = load(weights.read_bytes())
        model = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
        mismatch = state_mismatch({k: tuple(v.shape) for k, v in net.state_dict().items()},
                                  {k: tuple(v.shape) for k, v in model.items()})
        if mismatch:  # another architecture's weights: say which tensors differ, not torch's first line
            raise TrainingError(f"{weights}: cannot resume from this checkpoint: its weights are another "
                                f"architecture's ({mismatch}); start again with --overwrite, or resume with the "
                                "config it was trained with")
        net.load_state_dict(model)
    except TrainingError:
        raise
    except Exception as error:  # missing, corrupt (safetensors' own error type)
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise TrainingError(f"{weights}: cannot resume from this checkpoint ({first}); start again with "
                            "--overwrite") from error
    state = _checkpoint_record(meta)
    # the weights' SHA-256 was checked by check_resume, called just before on the claimed folder
    state.pop("weights_sha256", None)
    broken = next((k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())),
                  None)
    if broken is not None:
        raise TrainingError(f"{weights}: damaged checkpoint ({broken} holds NaN or infinite values); start again "
                            "with --overwrite")
    if ema is not None:
        ema_state = {k[4:]: v for k, v in tensors.items() if k.startswith("ema.")}
        ema.load_state_dict(ema_state or net.state_dict())
    best = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")} or None
    opt_state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            opt_state.setdefault(int(index), {})[name] = value
    try:
        optimizer.load_state_dict({"state": opt_state, "param_groups": state.pop("param_groups")})
    except (ValueError, KeyError, TypeError, RuntimeError) as error:  # another optimizer's or a damaged state
        raise TrainingError(f"{meta}: cannot resume from this checkpoint's optimizer state ({error}); start again "
                            "with --overwrite") from error
    return state, best


def train(
    config: dict,
    cases: list[TrainCase],
    out_dir: Path | str,
    resume: bool = False,
    on_epoch: Callable[[dict], None] | None = None,
    device: str = "cpu",
    val_cases: list[TrainCase] | None = None,
    on_kept: Callable[[bool], None] | None = None,
) -> ModelPackage:
    """Train on ``cases`` (loaded with :func:`load_cases`) and write the best model package to ``out_dir``.

    ``config`` holds the package fields and a ``training`` section (defaults in ``DEFAULT_TRAINING``).
    Validation cases are ``val_cases`` or a seeded split of ``cases``. Resuming a run that has finished its epochs
    and whose package is intact (:func:`finished_package`) trains nothing and returns that package, after calling
    ``on_kept(recoded)``: as it was, or (``recoded`` True) with the config's ``label_codes``, which do not change
    training. A resumed or extended run whose config declares no ``label_codes`` keeps the package's. The run
    claims ``out_dir`` (:func:`medseg.io.folder_claim.claimed`): another process training into it is an
    :class:`~medseg.errors.OutputExistsError`.
    """
    from medseg.io.folder_claim import claimed

    with claimed(out_dir, "training run"):
        return _train(config, cases, out_dir, resume, on_epoch, device, val_cases, on_kept)


def _train(config: dict, cases: list[TrainCase], out_dir: Path | str, resume: bool,
           on_epoch: Callable[[dict], None] | None, device: str, val_cases: list[TrainCase] | None,
           on_kept: Callable[[bool], None] | None) -> ModelPackage:
    """:func:`train`, with ``out_dir`` claimed."""
    from monai.losses import DiceCELoss
    from monai.utils import set_determinism

    from medseg.device import native_bf16, slow_bf16_warning
    from medseg.network import UNet2D, UNetConfig
    from medseg.resources import physical_memory
    from medseg.step_memory import check_step_fits

    out_dir = Path(out_dir)
    made_here = [out_dir / CHECKPOINT_DIR] + ([] if out_dir.exists() else [out_dir])  # removed if nothing is saved
    settings = check_config(config)
    check_step_fits(config["architecture"], settings, device, physical_memory(),
                    training_precision(settings["precision"], device)[0], out_dir)
    # warm-up reaches the rate after its epochs (a one-epoch trial run is not warned about)
    if int(settings["warmup_epochs"]) >= int(settings["epochs"]) > 1:
        log.warning("training.warmup_epochs %s of %s: the learning rate never reaches training.learning_rate %g",
                    settings["warmup_epochs"], counted(int(settings["epochs"]), "epoch"),
                    float(settings["learning_rate"]))
    seed = int(settings["seed"])
    package_config = {k: v for k, v in config.items() if k != "training"}
    package_config.setdefault("format", "medseg-model/1")
    package_config["weights"] = {"file": "weights.safetensors", "sha256": "0" * 64}
    if val_cases is None:
        train_cases, val_cases, val_split = seeded_split(cases, settings)
    else:
        train_cases = cases
        val_split = "chosen by the caller"
    if not train_cases:
        raise TrainingError("no training cases left after the validation split")
    val_absent = _check_label_presence(config, train_cases, val_cases)
    blind = validation_without_foreground(config["labels"], len(val_cases), val_absent)
    context = int(config["inference"].get("context_slices", 0))
    tile = tuple(int(v) for v in config["inference"]["roi_size"])
    patch = tuple(settings["patch_size"])  # the tile where the config asked for the default (check_config)
    labels = sorted(int(k) for k in config["labels"])
    if patch != tile:
        log.warning("training patches %s differ from the inference tile %s: planes smaller than the tile will be "
                    "padded differently at inference than in training", list(patch), list(tile))
    depth = int(config["architecture"].get("depth", 4))
    if bottleneck_cells(patch, depth) <= 1:  # batch norm over a batch (else refused by check_config): it trains, badly
        fits = max((d for d in range(1, depth) if bottleneck_cells(patch, d) > 1), default=1)
        log.warning("training.patch_size %s leaves one cell at the bottom of a depth-%d U-Net: its deepest levels "
                    "see little but padding and it learns little; architecture.depth %d or less fits the patch",
                    list(patch), depth, fits)

    set_determinism(seed=seed)
    torch.manual_seed(seed)
    arch = {k: v for k, v in config["architecture"].items() if k != "type"}
    net = UNet2D(UNetConfig(**arch)).to(device)
    optimizer = torch.optim.AdamW(net.parameters(), lr=float(settings["learning_rate"]),
                                  weight_decay=float(settings["weight_decay"]))
    # batch_dice: Dice pooled over the batch's slices, not averaged per slice (kinder to small structures)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True, batch=bool(settings.get("batch_dice", False)))
    axes = slice_axes(config["inference"])
    sampler = _SliceSampler(train_cases, axes, float(settings["foreground_fraction"]))
    views = {(c, axis): tuple(t.contiguous() for t in case.view(axis))
             for c, case in enumerate(train_cases) for axis in axes}
    precision = training_precision(settings.get("precision", "fp32"), device)[0]
    if settings.get("precision") == "bf16" and not native_bf16(device):  # auto took bf16 only where it is native
        log.warning(slow_bf16_warning(device, "training.precision"))
    autocast = _training_autocast(precision, device)
    # with ema_decay, a moving average of the weights is what gets validated, selected and shipped
    ema = _EMA(net, float(settings["ema_decay"])) if settings.get("ema_decay") is not None else None
    shipped = net if ema is None else ema.net
    validator = Segmenter(ModelPackage(out_dir, package_config), device=device, precision="fp32",
                          batch_size=int(settings["batch_size"]), net=shipped, batch_setting="training.batch_size")

    val_ids = [c.case_id for c in val_cases]
    started_with = _resume_key(package_config, settings)
    data = _data_hashes([*train_cases, *val_cases])
    state = {"epoch": 0, "best_dice": -1.0, "best_epoch": -1, "history": [], "val_cases": val_ids,
             "config": started_with, "data_sha256": data, "epochs_planned": [int(settings["epochs"])],
             "package_pending": True,  # until the package is written: a run stopped after its last epoch shows
             "label_codes": package_config.get("label_codes")}  # not training settings: outside the resume key
    best_state = None
    if not resume and not config.get("label_codes"):  # --overwrite: starting again, the codes of the run it
        # replaces are not this run's
        left = _folder_codes(out_dir)
        if left:
            log.warning("%s: the package this run replaces has label_codes (for labels %s) that the config does not "
                        "declare; they are not kept: give them in the config to keep them", out_dir / CONFIG_NAME,
                        ", ".join(sorted(left, key=int)))
    if resume:
        check_resume(out_dir, config, val_ids, val_split, [c.case_id for c in [*train_cases, *val_cases]])
        state, best_state = _load_checkpoint(out_dir, net, optimizer, None if ema is None else ema.net)
        if blind:  # a checkpoint written before blind validation chose no epoch may hold a 'best' one
            best_state, state["best_dice"], state["best_epoch"] = None, -1.0, -1
        _check_same_data(out_dir, state.get("data_sha256"), data)
        if not config.get("label_codes"):  # the run's own codes: added to its package by hand, or carried before
            carried = _carried_codes(out_dir, state, package_config)
            if carried:
                package_config["label_codes"] = carried
        kept = finished_package(out_dir, int(settings["epochs"]))
        if kept is not None:  # the same data, nothing left to train
            # the checkpoint's copy first: a record that cannot be written leaves the package untouched
            _record_codes(out_dir, package_config.get("label_codes") or kept.config.get("label_codes"))
            package, recoded = _recoded(kept, package_config.get("label_codes"))
            _tell_other_notes(kept, config)
            if on_kept is not None:
                on_kept(recoded)
            return package
        named = (_folder_config(out_dir) or {}).get("name")
        if named and named != package_config.get("name") and _config_given(config):
            log.warning("%s: the package in the folder is named %r; this run writes it as %r, the name its config "
                        "gives (outputs made with the package name %r)", out_dir, named, package_config.get("name"),
                        named)
        state["data_sha256"] = data  # a checkpoint from before data fingerprints gets one from now on
        state["label_codes"] = package_config.get("label_codes")  # a later resume carries them from here
        state.pop("package_sha256", None)  # the run goes on: the package in the folder is no longer its last word
        state["package_pending"] = True
        state["config"] = started_with
        planned = state.setdefault("epochs_planned", [None])  # None: a checkpoint from before they were recorded
        if not planned or planned[-1] != int(settings["epochs"]):  # an extended run: its schedule changed midway
            planned.append(int(settings["epochs"]))
        if ema is not None:
            ema.updates = state["epoch"] * int(settings["steps_per_epoch"])
        log.info("resuming after epoch %d", state["epoch"])

    def validate(record: dict) -> None:
        nonlocal best_state
        record.update(_summaries(_validation_scores(validator, val_cases, labels)))
        if not blind and record["val_mean_dice"] is not None and record["val_mean_dice"] > state["best_dice"]:
            state["best_dice"] = record["val_mean_dice"]
            state["best_epoch"] = record["epoch"]
            best_state = {k: v.detach().cpu().clone() for k, v in shipped.state_dict().items()}

    started = time.perf_counter() - sum(h.get("seconds", 0.0) for h in state["history"])
    cpu_started = time.process_time() - sum(h.get("cpu_seconds", 0.0) for h in state["history"])
    for epoch in range(state["epoch"], int(settings["epochs"])):
        clock = time.perf_counter()
        cpu_clock = time.process_time()
        torch.manual_seed(seed + epoch)
        rng = np.random.default_rng(seed + epoch)
        augment = SliceAugment(patch, settings["augment"], seed + epoch)
        lr = _learning_rate(settings, epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        try:
            losses = _train_epoch(net, optimizer, loss_fn, autocast, augment, sampler, views, rng, settings, context,
                                  device, ema, epoch)
        except TrainingError as error:  # a loss gone non-finite: named with the run it stopped
            raise TrainingError(f"{out_dir}: {error}") from error
        except OUT_OF_MEMORY:  # a GPU shared with other jobs, or a batch too large for it: one line
            raise TrainingError(_out_of_memory_text(out_dir, device, settings, patch, state["epoch"])) from None
        except (RuntimeError, MemoryError) as error:  # torch's CPU allocator: "can't allocate memory"
            if not isinstance(error, MemoryError) and "can't allocate memory" not in str(error):
                raise
            raise TrainingError(_out_of_memory_text(out_dir, device, settings, patch, state["epoch"],
                                                    config["architecture"], precision)) from None
        record = {"epoch": epoch + 1, "lr": lr, "loss": float(np.mean(losses)),
                  "torch_threads": torch.get_num_threads(), "device": device, "precision": precision}
        if val_cases and ((epoch + 1) % int(settings["val_every"]) == 0 or epoch + 1 == int(settings["epochs"])):
            validate(record)
        elif not val_cases:
            best_state = {k: v.detach().cpu().clone() for k, v in shipped.state_dict().items()}
            state["best_epoch"] = epoch + 1
        record["seconds"] = time.perf_counter() - clock
        record["cpu_seconds"] = time.process_time() - cpu_clock
        state["history"].append(record)
        state["epoch"] = epoch + 1
        try:
            _save_checkpoint(out_dir, net, best_state, optimizer, state, None if ema is None else ema.net)
        except OSError as error:
            if epoch == 0:  # the first checkpoint: no folder of a run that saved nothing is left
                _remove_empty(made_here)
            kept = (f"; the checkpoint after epoch {epoch} is kept: run the same command with --resume once it can "
                    "be written" if epoch else "")
            raise TrainingError(f"{out_dir / CHECKPOINT_DIR}: cannot write the checkpoint "
                                f"({error.strerror or error}){kept}") from error
        if on_epoch is not None:
            on_epoch(record)

    if val_cases and state["history"] and "val_dice" not in state["history"][-1]:
        # resumed at an epoch that was not validated, with no more epochs to run: the last epoch is validated
        # as an uninterrupted run's would be
        validate(state["history"][-1])
        _save_checkpoint(out_dir, net, best_state, optimizer, state, None if ema is None else ema.net)
        if on_epoch is not None:  # shown like any validated epoch (it was only in the record)
            on_epoch(state["history"][-1])
    net = shipped
    if best_state is None:  # validated, but no label could be scored in any case: ship the last epoch
        state["best_epoch"] = state["epoch"]
    else:
        net.load_state_dict(best_state)
    net.eval()
    best = next((h for h in state["history"] if h["epoch"] == state["best_epoch"]), state["history"][-1])
    scored_on = "model space"
    if val_cases and config["preprocessing"].get("spacing_mm") and best.get("val_dice") is not None:
        # a resampling package: the recorded figures are the shipped weights scored on the volumes' own grids
        best = {**best, **_summaries(_input_grid_scores(validator, val_cases, labels))}
        scored_on = "input grid"
    extents = [c.extent_mm for c in [*train_cases, *val_cases] if c.extent_mm is not None]
    if extents:  # what inputs the model has seen; `medseg infer` flags inputs far outside it
        package_config["input_extent_mm"] = extent_range(extents)
    package_config["training"] = {
        "settings": settings,
        "train_cases": len(train_cases),
        "train_case_ids": [c.case_id for c in train_cases],
        "val_cases": [c.case_id for c in val_cases],
        "val_split": val_split,
        "best_epoch": state["best_epoch"],
        "val_dice": best.get("val_dice"),
        "val_dice_median": best.get("val_dice_median"),
        "val_dice_min": best.get("val_dice_min"),
        "val_mean_dice": best.get("val_mean_dice"),
        "val_labels_absent": val_absent,
        "val_scored_on": scored_on,
        "epochs_run": state["epoch"],
        # more than one entry: resumed with another --epochs, so the schedule changed midway and a fresh run of the
        # final settings would not reproduce these weights
        "epochs_planned": state.get("epochs_planned") or [int(settings["epochs"])],
        "train_seconds": round(time.perf_counter() - started, 1),
        "train_cpu_seconds": round(time.process_time() - cpu_started, 1),
        # the threads of the last epoch trained: a package made again without training (--resume after it was
        # deleted) keeps the training's, as `sessions` does
        "torch_threads": state["history"][-1].get("torch_threads") if state["history"] else torch.get_num_threads(),
        "device": state["history"][-1].get("device") if state["history"] else device,
        "precision": state["history"][-1].get("precision") if state["history"] else precision,
        # a resumed run's epochs may have run with other threads or on another device (the weights depend on both)
        "sessions": _sessions(state["history"]),
        "torch": torch.__version__,
        "data": config.get("training", {}).get("data", {}),
    }
    package_config.pop("weights")
    card = model_card(package_config)
    remove_leftovers(out_dir)  # of a package write killed outright (the run holds the folder)
    try:
        try:
            package = save_package(net, package_config, out_dir, extra_files={"MODEL_CARD.md": card})
        except KeyboardInterrupt as stop:  # a stop held while the package was placed: it is whole, and recorded so
            if any(path.name == CONFIG_NAME for path in placed_before_stop(stop)):
                _record_package(out_dir, state, load_package(out_dir, check_hash=False).sha256)
            raise
        _record_package(out_dir, state, package.sha256)
    except OSError as error:
        raise TrainingError(f"{out_dir}: cannot write the model package ({error.strerror or error})") from error
    return package


def _record_package(out_dir: Path, state: dict, package_sha256: str) -> None:
    """The checkpoint says which package it made: a finished run resumed again has nothing left to do, and
    ``medseg infer`` does not warn of an unfinished run. With what this session changed even if it trained no epoch
    (a plan cut back to the epochs reached)."""
    meta = _checkpoint_meta(out_dir)
    kept = ("epochs_planned", "config", "data_sha256", "label_codes")
    record = {**json.loads(meta.read_text()), **{k: state[k] for k in kept if k in state},
              "package_sha256": package_sha256, "package_pending": False}
    with atomic_paths([meta], overwrite=True) as (temp,):
        temp.write_text(json.dumps(record, indent=1))


def _carried_codes(out_dir: Path, state: dict, package_config: dict) -> dict | None:
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
    package = _folder_config(out_dir) or {}
    weights = package.get("weights") if isinstance(package.get("weights"), dict) else {}
    found = package.get("label_codes") if isinstance(package.get("label_codes"), dict) else None
    found = found or None
    # the run's own package: the one its checkpoint last wrote, still whole (not one being made again)
    own = (state.get("package_sha256") is not None and state.get("package_sha256") == weights.get("sha256")
           and (out_dir / str(weights.get("file", "weights.safetensors"))).is_file())
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


def _folder_config(out_dir: Path) -> dict | None:
    """The package config in ``out_dir`` as its file holds it (not validated), if one is there and readable."""
    try:
        config = json.loads((Path(out_dir) / CONFIG_NAME).read_text())
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) else None


def _folder_codes(out_dir: Path) -> dict | None:
    """The ``label_codes`` of the package config in ``out_dir``, if one is there, readable and has some."""
    codes = (_folder_config(out_dir) or {}).get("label_codes")
    return codes if isinstance(codes, dict) and codes else None


def _record_codes(out_dir: Path, codes: dict | None) -> None:
    """Keep the checkpoint's record of the label codes in step with its finished package's (a package made again
    from the checkpoint gets these)."""
    meta = _checkpoint_meta(out_dir)
    record = json.loads(meta.read_text())
    if (record.get("label_codes") or None) != (codes or None):
        record["label_codes"] = codes or None
        with atomic_paths([meta], overwrite=True) as (temp,):
            temp.write_text(json.dumps(record, indent=1))


def _recoded(package: ModelPackage, codes: dict | None) -> tuple[ModelPackage, bool]:
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
    text = _card_with_codes(card.read_text(errors="surrogateescape"), config)
    if text is None:
        log.warning("%s: has no '- Labels:' line to put the codes after; the new label_codes are in %s only", card,
                    CONFIG_NAME)
    with atomic_paths([out_dir / CONFIG_NAME, *([card] if text is not None else [])], overwrite=True) as temps:
        temps[0].write_text(json.dumps(config, indent=2) + "\n")
        if text is not None:
            temps[1].write_text(text, errors="surrogateescape")
    log.info("%s: label_codes written into the finished package", out_dir)
    return ModelPackage(path=out_dir, config=config), True  # the weights, checked on loading, are unchanged


def _config_given(config: dict) -> bool:
    """Whether ``config`` is one given with ``-c``, not the default made for a run without one (which carries
    :data:`DEFAULT_DESCRIPTION`)."""
    return config.get("description") != DEFAULT_DESCRIPTION


def _tell_other_notes(package: ModelPackage, config: dict) -> None:
    """Warn when the config resuming a finished ``package`` describes it otherwise (its name, its description, its
    data notes): the package keeps its own, as its card may have been edited since."""
    def notes(of: dict) -> tuple:
        return of.get("name"), of.get("description"), (of.get("training") or {}).get("settings", {}).get("data")

    ours = notes(package.config)
    theirs = (config.get("name"), config.get("description"), (config.get("training") or {}).get("data"))
    if not _config_given(config):  # a run started with one, resumed without (its name is the folder's, which may
        theirs = (None, None, theirs[2])  # have moved): nothing said
    differ = [what for what, a, b in zip(("name", "description", "training.data"), ours, theirs)
              if b is not None and a != b]
    if differ:
        log.warning("%s: the finished package keeps its %s; the config gives other text, which resuming does not "
                    "write (edit %s and MODEL_CARD.md, or train again with --overwrite)", package.path,
                    " and ".join(differ), CONFIG_NAME)


def _card_with_codes(card: str, config: dict) -> str | None:
    """``card`` with its line on the DICOM SEG codes replaced, or put after its labels line (None for a card without
    one: it is left as it is)."""
    lines = [line for line in card.split("\n") if not line.startswith("- DICOM SEG codes:")]
    at = next((i for i, line in enumerate(lines) if line.startswith("- Labels:")), None)
    if at is None:
        return None
    lines.insert(at + 1, _codes_line(config).lstrip("\n"))
    return "\n".join(lines)


# model.json's keys that say what the weights are (its inference and preprocessing may be tuned by hand, and records
# of older versions hold other defaults for them)
_PACKAGE_MEANING = ("architecture", "labels")


def _out_of_memory_text(out_dir: Path, device: str, settings: dict, patch, epochs_done: int,
                        architecture: dict | None = None, precision: str = "fp32") -> str:
    """The one line for a training step that ran out of memory (the GPU's, or with ``architecture`` the CPU's):
    what it held, and the ways on (the batch is the recipe's, so it is not changed behind the user's back, as
    inference does with its tiles)."""
    size = "×".join(map(str, patch))
    again = (f"; --resume goes on after epoch {epochs_done}" if epochs_done else "")
    if architecture is not None:
        from medseg.step_memory import training_step_bytes

        needed = training_step_bytes(architecture, int(settings["batch_size"]), patch, precision)
        return (f"{out_dir}: out of memory in a training step of {settings['batch_size']} {size} patches (about "
                f"{gib_text(needed)} with a U-Net of width {architecture['base_width']} and depth "
                f"{architecture['depth']}); lower training.batch_size, training.patch_size or architecture.base_width, "
                f"or free memory{again}")
    from medseg.device import gpu_free_text

    free = gpu_free_text(device)
    return (f"{out_dir}: out of GPU memory on {device} in a training step of {settings['batch_size']} {size} "
            f"patches{free}; lower training.batch_size or training.patch_size, free GPU memory (other processes may "
            f"hold it), or train on the CPU (--device cpu){again}")


def finished_package(out_dir: Path | str, epochs: int) -> ModelPackage | None:
    """The package of a run in ``out_dir`` that has finished ``epochs`` epochs, where that package is intact (its
    config valid and as the run trained it, its weights matching their recorded SHA-256 and its architecture, its
    card present): resuming it has nothing to do. None otherwise: a package deleted, damaged, edited or replaced
    since is made again from the checkpoint."""
    out_dir = Path(out_dir)
    card = out_dir / "MODEL_CARD.md"
    if checkpoint_epoch(out_dir) != epochs or unfinished_training(out_dir):
        return None

    def remade(why: str) -> None:  # the run had written its package: a copy someone uses may be damaged too
        log.warning("%s: the finished run's package %s; it is made again from the checkpoint", out_dir, why)

    if not card.is_file() or not card.stat().st_size:
        return remade("has no model card (MODEL_CARD.md missing or empty)")
    try:
        record = json.loads(_checkpoint_meta(out_dir).read_text())
        made, started = record.get("package_sha256"), record.get("config") or {}
        package = load_package(out_dir, check_hash=False)  # its weights below, once an edit has been told
    except (OSError, ValueError, AttributeError, MedsegError) as error:
        return remade(f"cannot be read ({error})")
    # what the weights are, as the run trained them: a model.json edited since (another width, labels swapped) was
    # called intact and kept, and then failed to load, or named the labels wrongly (label_codes, which may be
    # edited by hand, are kept when it is made again)
    edited = [key for key in _PACKAGE_MEANING if key in started and package.config.get(key) != started[key]]
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


def validation_without_foreground(labels: dict, val_count: int, absent: list | None) -> bool:
    """Whether no validation case holds any of the foreground ``labels`` (``absent``: those none holds, as a
    training record's ``val_labels_absent``): every epoch then scores 0 (false positives) or n/a, so validation
    cannot choose one, and the last is shipped."""
    foreground = {int(k) for k in labels} - {0}
    return bool(val_count) and bool(foreground) and foreground <= {int(v) for v in absent or []}


def check_training_foreground(train_cases: list[TrainCase]) -> None:
    """Refuse training cases (loaded) none of whose labels holds any foreground: there is nothing to learn."""
    if not train_cases or any(case.label is None or bool(case.label.any()) for case in train_cases):
        return
    whose = ("that of the one training case is" if len(train_cases) == 1 else
             f"those of all {len(train_cases)} training cases are")
    raise TrainingError(f"{train_cases[0].label_path.parent}: no training label image holds any foreground "
                        f"({whose} background only); there is nothing to learn")


def _check_label_presence(config: dict, train_cases: list[TrainCase], val_cases: list[TrainCase]) -> list[int]:
    """Refuse training cases without any foreground; warn about a declared label that no training case holds (the
    network cannot learn it) or no validation case holds (its Dice only counts false positives; all of them: once,
    as validation then chooses no epoch). Returns the latter labels."""
    def present(cases):
        found: set[int] = set()
        for case in cases:
            if case.label is not None:
                found.update(int(v) for v in torch.unique(case.label).tolist())
        return found

    declared = {int(k): str(v) for k, v in config["labels"].items() if int(k) != 0}
    check_training_foreground(train_cases)
    in_training = present(train_cases)
    for value, name in declared.items():
        if value not in in_training:
            log.warning("label %d %r appears in no training case: the network cannot learn it", value, name)
    if not val_cases:
        return []
    in_validation = present(val_cases)
    absent = [value for value in declared if value not in in_validation]
    if validation_without_foreground(config["labels"], len(val_cases), absent):
        log.warning("no validation case holds a foreground label (%d case%s): their Dice can only count false "
                    "positives, so it chooses no epoch; the package holds the last epoch's weights", len(val_cases),
                    "" if len(val_cases) == 1 else "s")
        return absent
    for value in absent:
        log.warning("label %d %r appears in no validation case: its Dice counts only false positives (0 in a case "
                    "where it is predicted, n/a where not)", value, declared[value])
    return absent


def _check_same_data(out_dir: Path, recorded: dict | None, now: dict) -> None:
    """A resumed run must train on the files the checkpoint was trained on (same contents by SHA-256)."""
    if recorded is None or not now:  # a checkpoint from before data fingerprints: nothing to compare
        return
    changed = sorted(k for k in set(recorded) & set(now) if list(recorded[k]) != list(now[k]))
    added, removed = sorted(set(now) - set(recorded)), sorted(set(recorded) - set(now))
    if changed or added or removed:
        parts = [f"{what}: {', '.join(ids[:5])}{' …' if len(ids) > 5 else ''}"
                 for what, ids in (("changed", changed), ("added", added), ("removed", removed)) if ids]
        raise TrainingError(f"{out_dir}: the checkpoint was trained on other data ({'; '.join(parts)}); resume with "
                            "the files it was started with, or start again with --overwrite")


def check_trained_on(out_dir: Path | str, cases: list[TrainCase]) -> None:
    """Refuse when the checkpoint in ``out_dir`` was trained on other files than ``cases``: the SHA-256 of each image
    and label file, as training records them; those :func:`load_cases` took as it read them, else (cases only
    paired, not read) hashed here without reading the voxels."""
    from medseg.io.nifti import files_read

    recorded = _checkpoint_record(_checkpoint_meta(out_dir)).get("data_sha256")
    now = {c.case_id: list(c.sha256) if c.sha256 is not None else
           [sha256_of(files_read(c.image_path)), sha256_of(files_read(c.label_path))] for c in cases}
    _check_same_data(Path(out_dir), recorded, now)


def _data_hashes(cases: list[TrainCase]) -> dict[str, list[str]]:
    """Case id → [image SHA-256, label SHA-256], as the cases were read (what a checkpoint records)."""
    return {c.case_id: list(c.sha256) for c in cases if c.sha256 is not None}


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
    meta = _checkpoint_meta(out_dir)
    if not meta.is_file():
        raise TrainingError(f"{out_dir}: nothing to resume (no {CHECKPOINT_DIR}/last.json)")
    recorded = _checkpoint_record(meta)
    # damaged weights are told before the cases are read and the run announced
    _check_weights_digest(_checkpoint_tensors(out_dir, recorded), recorded.get("weights_sha256"), meta.name)
    done = recorded["epoch"]  # an int: _checkpoint_record checked it
    planned = checkpoint_planned_epochs(out_dir)
    if int(settings["epochs"]) < done:
        if planned is not None and planned > done:
            raise TrainingError(f"{out_dir}: the checkpoint has {done} finished epochs of the {planned} planned, more "
                                f"than the {settings['epochs']} asked for (--epochs / training.epochs); give --epochs "
                                f"{planned} to finish it as planned, or at least {done}")
        raise TrainingError(f"{out_dir}: the checkpoint has {done} finished epochs, more than the {settings['epochs']} "
                            "asked for (--epochs / training.epochs); ask for at least as many")
    trained_on = recorded.get("data_sha256")
    if case_ids is not None and isinstance(trained_on, dict) and set(trained_on) != set(case_ids):
        # an added or removed case also moves the seeded split: named as what it is, not as a split setting
        _check_same_data(out_dir, dict.fromkeys(trained_on, []), dict.fromkeys(case_ids, []))
    started_with = _resume_key(package_config, settings)
    changed = _differences(_patch_resolved(recorded.get("config", started_with)), started_with)
    before = recorded.get("config", {}).get("training", {})
    options = [f"--{key.replace('_', '-')} {before[key]}" for key in ("steps_per_epoch", "seed", "fold")
               if f"training.{key}" in changed and before.get(key) is not None]
    if options and not epochs_given and planned is not None and planned != int(settings["epochs"]):
        options.append(f"--epochs {planned}")  # else the command the hint gives is refused for its epoch count
    given = f" (give {' '.join(options)} as it was)" if options else ""
    if recorded.get("val_cases", val_ids) != val_ids:
        then = f"{split_text(before)} then, " if before else ""
        raise TrainingError(f"{out_dir}: the checkpoint was validated on other cases "
                            f"({then}{val_split or 'another split'} now); resume with the split settings it was "
                            f"started with{given}")
    if changed:
        shown = ", ".join(changed[:6]) + (" …" if len(changed) > 6 else "")
        raise TrainingError(f"{out_dir}: the checkpoint was started with other settings ({shown}); resume with the "
                            f"config it was started with{given} (only the epoch count may change), or start again "
                            "with --overwrite")


def _resume_key(package_config: dict, settings: dict) -> dict:
    """What a resumed run must share with the run it continues: everything but the epoch count, the package's name
    (a run without a config is named after its folder, which may since have been moved), data notes and the labels'
    DICOM SEG codes."""
    key = {k: v for k, v in package_config.items()
           if k not in ("weights", "name", "description", "version", "input_extent_mm", "label_codes")}
    key["training"] = {k: v for k, v in settings.items() if k not in ("epochs", "data")}
    return json.loads(json.dumps(key))


def _patch_resolved(key: dict) -> dict:
    """``key`` (a checkpoint's resume key) with a default ``training.patch_size`` (null: the inference tile) written
    out, as :func:`check_config` now writes it: a checkpoint from before then, started with the default, compares
    equal to the same run resumed."""
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


class _EMA:
    """An exponential moving average of a network's weights and batch-norm statistics, updated per step.

    The decay ramps up as ``(1 + n) / (10 + n)`` over the first updates so the random initial weights do not
    linger in the average.
    """

    def __init__(self, net: torch.nn.Module, decay: float) -> None:
        self.net = copy.deepcopy(net)
        self.net.eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.decay = decay
        self.updates = 0

    @torch.no_grad()
    def update(self, net: torch.nn.Module) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for ours, theirs in zip(self.net.state_dict().values(), net.state_dict().values()):
            if ours.is_floating_point():
                ours.lerp_(theirs, 1.0 - decay)
            else:  # e.g. batch norm's step counter
                ours.copy_(theirs)


def _train_epoch(net, optimizer, loss_fn, autocast, augment, sampler, views, rng, settings, context, device,
                 ema=None, epoch: int = 0):
    """One epoch of steps; returns the losses. MONAI metadata tracking is off meanwhile (2.5x faster transforms)."""
    from monai.data import get_track_meta, set_track_meta

    tracking = get_track_meta()
    set_track_meta(False)
    torch.set_flush_denormal(True)  # denormal floats in late-training gradients slow CPU arithmetic
    try:
        net.train()
        losses = []
        for _ in range(int(settings["steps_per_epoch"])):
            stopping.check()  # a Ctrl-C or SIGTERM whose exception a callback swallowed
            slices, slice_labels = [], []
            for c, axis, s in sampler.draw(rng, int(settings["batch_size"])):
                image, label = views[c, axis]
                slices.append(context_stack(image, s, s + 1, context)[..., 0])
                slice_labels.append(label[..., s])
            images, targets = augment(slices, slice_labels, rng)
            images, targets = images.to(device), targets.to(device)
            optimizer.zero_grad(set_to_none=True)
            with autocast():
                logits = net(images)
            loss = loss_fn(logits.float(), targets)
            if not bool(torch.isfinite(loss)):
                kept = ("the checkpoint of the last finished epoch is kept" if epoch else "no epoch finished, "
                        "nothing was written")
                raise TrainingError(f"the loss became {float(loss.detach())} at step {len(losses) + 1} of epoch "
                                    f"{epoch + 1}; lower training.learning_rate or check the images' intensities "
                                    f"({kept})")
            loss.backward()
            optimizer.step()
            if ema is not None:
                ema.update(net)
            losses.append(float(loss.detach()))
        return losses
    finally:
        set_track_meta(tracking)
        torch.set_flush_denormal(False)  # torch's default (it has no getter to restore from)


# the training settings the card's training sentence words itself (the others are listed as they are)
_CARD_SETTINGS = {"epochs", "steps_per_epoch", "batch_size", "patch_size", "learning_rate", "schedule", "warmup_epochs",
                  "batch_dice", "precision", "seed", "augment", "val_fraction", "split_seed", "data"}


def _other_settings(settings: dict) -> str:
    """The training settings the card's sentence does not word (weight decay, a moving average, …), as JSON."""
    rest = {key: value for key, value in settings.items() if key not in _CARD_SETTINGS}
    return f"; other settings {json.dumps(rest)}" if rest else ""


def _data_notes(data: dict) -> str:
    """A config's free-form data notes besides the description and the licence, one line each, for the card."""
    lines = [f"{key}: {value}" for key, value in data.items() if key not in ("description", "licence", "license")]
    return "".join(f"\n\n{line}" for line in lines)


def _precision_text(settings: dict, training: dict) -> str:
    """The forward pass's precision for the model card: ``auto`` with what it was on the training device."""
    asked, used = settings.get("precision", "fp32"), training.get("precision")
    return f"{used} (precision auto)" if asked == "auto" and used else asked


def _sessions(history: list[dict]) -> list[dict]:
    """Runs of consecutive epochs with the same torch threads, device and precision (None: a checkpoint from before
    they were recorded)."""
    keys = ("torch_threads", "device", "precision")
    out: list[dict] = []
    for record in history:
        how = {key: record.get(key) for key in keys}
        if out and {key: out[-1][key] for key in keys} == how:
            out[-1]["epochs"][1] = record["epoch"]
        else:
            out.append({"epochs": [record["epoch"], record["epoch"]], **how})
    return out


def _summaries(scores: dict[int, list[float]]) -> dict:
    """Mean, median and minimum Dice per label, and the mean over labels; a label without figures is None, not
    NaN (valid JSON)."""
    per_label = {k: (float(np.mean(v)) if v else None) for k, v in scores.items()}
    scored = [v for v in per_label.values() if v is not None]
    return {
        "val_dice": {str(k): v for k, v in per_label.items()},
        "val_dice_median": {str(k): (float(np.median(v)) if v else None) for k, v in scores.items()},
        "val_dice_min": {str(k): (float(np.min(v)) if v else None) for k, v in scores.items()},
        "val_mean_dice": float(np.mean(scored)) if scored else None,
    }


def _input_grid_scores(segmenter: Segmenter, cases: list[TrainCase], labels: list[int]) -> dict[int, list[float]]:
    """As :func:`_validation_scores`, but each validation volume read from its file, segmented and mapped back onto
    its own grid as ``medseg infer`` does, and scored against its label file: what a user of a resampling package
    gets (model-space scores compare against a resampled label)."""
    from medseg.io.nifti import read_nifti
    from medseg.metrics import reorder_onto_grid
    from medseg.preprocess import build_transforms, invert_labels, to_model_space

    transforms = build_transforms(segmenter.package.preprocessing)
    segmenter.net.eval()
    scores: dict[int, list[float]] = {v: [] for v in labels if v != 0}
    for case in cases:
        volume = read_nifti(case.image_path, hash_input=False)
        reference = reorder_onto_grid(read_nifti(case.label_path, hash_input=False, labels=True), volume).array
        data = to_model_space(volume, transforms)
        predicted = invert_labels(segmenter.predict(data["image"].as_tensor()), data, transforms, volume.shape,
                                  volume.source)
        for value, dice in _dice_per_label(predicted, reference, list(scores)).items():
            if not math.isnan(dice):
                scores[value].append(dice)
    return scores


def _validation_scores(segmenter: Segmenter, cases: list[TrainCase], labels: list[int]) -> dict[int, list[float]]:
    """Per-case Dice per foreground label over whole validation volumes, under medseg's empty-mask policy (as
    ``medseg evaluate`` and ``benchmarks/evaluate_model.py`` score them): a case where both are empty has no figure,
    one where only the prediction holds the label scores 0 (false positives)."""
    segmenter.net.eval()
    scores: dict[int, list[float]] = {v: [] for v in labels if v != 0}
    for case in cases:
        pred = segmenter.predict(case.image).numpy()
        reference = case.label.numpy()
        for value, dice in _dice_per_label(pred, reference, list(scores)).items():
            if not math.isnan(dice):
                scores[value].append(dice)
    segmenter.net.train()
    return scores


def _extent_line(extent: dict | None, validated: bool) -> str:
    """The fields of view the package has seen: the training cases' and, when there are any, the validation cases'
    (both are recorded, and ``extent['cases']`` counts them together)."""
    if not extent:
        return ""
    sizes = " × ".join(f"{low:g}–{high:g}" for low, high in zip(extent["min"], extent["max"]))
    cases = f"{extent.get('cases', '?')} training{' and validation' if validated else ''} cases"
    return (f"\n- Inputs: fields of view of {sizes} mm (model-space axes) across its {cases}; `medseg infer` warns "
            "about inputs outside half the smallest to twice the largest, and the QA report flags them "
            "(`unlike_training`)")


def _codes_line(config: dict) -> str:
    """The card's line on the codes a DICOM SEG gives each label's segment (none without ``label_codes``)."""
    text = codes_text(config.get("label_codes"))
    return f"\n- DICOM SEG codes: {text}" if text else ""


def model_card(config: dict) -> str:
    """A short markdown model card from a trained package config."""
    training = config.get("training", {})
    data = training.get("data", {})
    labels = ", ".join(f"{k} {v}" for k, v in config["labels"].items())
    dice = training.get("val_dice") or {}
    medians = training.get("val_dice_median") or {}
    minima = training.get("val_dice_min") or {}

    def cell(value) -> str:
        return "n/a" if value is None else dice_round_text(value)  # NaN reads n/a too

    absent = {str(v) for v in training.get("val_labels_absent") or []}
    rows = "\n".join(
        f"| {config['labels'].get(k, k)}{' *' if k in absent else ''} | {cell(v)} | {cell(medians.get(k))} | "
        f"{cell(minima.get(k))} |" for k, v in dice.items()
    )
    note = ("\n\n\\* in no validation reference: its Dice counts only false positives (0 in each case where it was "
            "predicted), as `medseg evaluate` scores it." if absent else "")
    table = f"| label | mean Dice | median | min |\n|---|---|---|---|\n{rows}{note}\n"
    settings = training.get("settings", {})
    split_seed = settings.get("seed") if settings.get("split_seed") is None else settings.get("split_seed")
    val_split = training.get("val_split") or f"a seeded {settings.get('val_fraction')} split, split seed {split_seed}"
    best = training.get("best_epoch")
    cases = (f"{counted(training.get('train_cases'), 'training case')}, "
             f"{counted(len(training.get('val_cases', [])), 'validation case')}")
    batch_dice = " with batch Dice" if settings.get("batch_dice") else ""
    if training.get("val_cases") and training.get("val_mean_dice") is None:
        selection = ("No label could be scored: no validation case holds a foreground label or has one predicted, so "
                     f"no Dice was measured and the package holds the weights of the last epoch ({best}).\n")
    elif validation_without_foreground(config["labels"], len(training.get("val_cases") or []),
                                       training.get("val_labels_absent")):
        selection = f"""No validation case holds a foreground label, so their Dice (false positives only) chose no \
epoch: the package holds the weights of the last epoch ({best}).

## Validation (whole volumes, false positives only)
{table}"""
    elif training.get("val_cases"):
        grid = ("each volume resampled into model space, segmented, mapped back onto its own grid and scored against "
                "its label file, as `medseg infer` does" if training.get("val_scored_on") == "input grid" else
                "same inference code as `medseg infer`")
        selection = f"""Best epoch {best} by mean validation Dice (checkpoint selection used the validation \
cases, so the figures below are slightly optimistic for unseen data). Per case, medseg's empty-mask policy: \
a label in neither the reference nor the prediction has no Dice; n/a: no validation case has one.

## Validation (whole volumes, {grid})
{table}"""
    else:
        selection = f"""No validation cases: the package holds the weights of the last epoch ({best}), and no \
accuracy figures were measured.
"""
    ids = ("the case ids are listed in `model.json` under `training.train_case_ids` and `training.val_cases`"
           if "train_case_ids" in training else
           "the validation case ids are listed in `model.json` under `training.val_cases`")
    planned = training.get("epochs_planned") or []
    if len(planned) == 2 and planned[0] is None:
        extended = (f"\nResumed from a checkpoint that did not record how many epochs it planned (then {planned[1]}): "
                    "had it planned another count, the learning-rate schedule changed midway.\n")
    elif len(planned) > 1:
        counts = ", then ".join("unknown" if n is None else str(n) for n in planned)
        extended = (f"\nResumed with another epoch count (planned {counts}): the learning-rate schedule changed "
                    "midway, so a fresh run of these settings would not give these weights.\n")
    else:
        extended = ""
    sessions = training.get("sessions") or []
    if len(sessions) > 1:
        precisions = {x.get("precision") for x in sessions}
        runs = "; ".join(
            f"epoch{'s' if a != b else ''} {a}{f'–{b}' if a != b else ''} on {d or 'an unrecorded device'} with "
            f"{counted(t, 'torch thread') if t else 'unrecorded torch threads'}"
            f"{'' if len(precisions) == 1 else ', ' + (p or 'unrecorded precision')}" for (a, b), t, d, p in
            ((x["epochs"], x["torch_threads"], x["device"], x.get("precision")) for x in sessions))
        how = "threads or devices" if len(precisions) == 1 else "threads, devices or precisions"
        depends = "in their last bits" if len(precisions) == 1 else "(on the precision, beyond their last bits)"
        extended += (f"\nTrained in {len(sessions)} sessions with different {how} ({runs}); the weights "
                     f"depend on them {depends}.\n")
    inputs = _extent_line(config.get("input_extent_mm"), bool(training.get("val_cases")))
    return f"""# Model card: {config['name']}

{config.get('description', '')}

- Labels: {labels}{_codes_line(config)}
- Architecture: 2D U-Net {json.dumps(config['architecture'])}
- Slicing axis {config['inference']['slice_axis']}, tile {config['inference']['roi_size']}, context slices \
{config['inference'].get('context_slices', 0)}, flip TTA {config['inference'].get('flip_tta', [])}
- Preprocessing: {json.dumps(config['preprocessing'])}{inputs}

## Data
{data.get('description', 'not stated')}

Licence / attribution: {data.get('licence') or data.get('license') or 'not stated'}{_data_notes(data)}

## Training
{cases} ({val_split}; \
{ids}); \
{counted(training.get('epochs_run'), 'epoch')} of {counted(settings.get('steps_per_epoch'), 'step')}, batch \
{settings.get('batch_size')}, training patch {settings.get('patch_size') or config['inference']['roi_size']}, \
learning rate {settings.get('learning_rate')} ({settings.get('schedule')}, \
{counted(settings.get('warmup_epochs'), 'warm-up epoch')}), DiceCE loss{batch_dice}, \
{_precision_text(settings, training)} forward pass, seed {settings.get('seed')}; \
augmentation {json.dumps(settings.get('augment', {}))}{_other_settings(settings)}; \
{training.get('train_seconds')} s wall, {training.get('train_cpu_seconds')} s process CPU time of training \
(reading the cases not counted) on \
{training.get('device')} ({counted(training.get('torch_threads'), 'torch thread')}, torch {training.get('torch')}).
{extended}{selection}"""
