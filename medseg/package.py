"""Model packages: a folder with ``model.json`` (architecture, labels, preprocessing, inference settings)
and ``weights.safetensors`` whose SHA-256 the config records and the loader checks. No pickle is ever
loaded. Shipped packages live in ``medseg/models/<name>/``; ``--model`` takes a name or a folder.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import logging
import os
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from functools import cache
from importlib import resources
from pathlib import Path

from medseg.errors import ModelPackageError
from medseg.io.atomic import atomic_paths, reading_folder, sha256_of
from medseg.io.files import absent_content, is_path, name_difference, not_regular, not_there, os_reason, type_text
from medseg.label_map import LabelMap, label_map
from medseg.package_config import (
    CONFIG_NAME,
    DuplicateKeyError,
    load_schema,
    read_config_bytes,
    unique_keys,
    validate_config,
    whole_numbers,
)
from medseg.package_training import (
    _as_applied,
    recorded_trained_with,
    swapped_names,
    trained_with,
    unfinished_text,
    unfinished_training,
)
from medseg.package_weights import (
    _COUNTERS,
    _DTYPE_NAMES,
    _NONFINITE_BITS,
    _file_identity,
    _held_below_length_field,
    _partial_copies,
    _short_of,
    _tensor_offsets,
    recorded_weights_sha256,
    state_mismatch,
)

__all__ = [
    "DEFAULT_MODEL",
    "ModelPackage",
    "empty_model_name",
    "load_package",
    "model_choices",
    "save_package",
    "shipped_models",
    "shipped_models_folder",
    "shipped_name_taken",
    "shipped_package_path",
]

log = logging.getLogger(__name__)

DEFAULT_MODEL = "phantom"


def _models_root() -> Path:
    return Path(str(resources.files("medseg") / "models"))


@dataclass
class ModelPackage:
    """A loaded and checked model package (the network itself is built by :meth:`build_network`)."""

    path: Path
    config: dict
    # every tensor's type and values checked where the package was loaded (:meth:`_check_values`): building the
    # network does not check them again
    values_checked: bool = dataclass_field(default=False, repr=False, compare=False)
    # the weights file as it was when its SHA-256 was checked (device, inode, size, modification time): building the
    # network later (a cohort builds it for the first case that needs it) checks again if it was replaced meanwhile
    checked_file: tuple | None = dataclass_field(default=None, repr=False, compare=False)
    # the SHA-256 of model.json as it was read: with the weights', what a sidecar names the model by (a hand edit of
    # labels or preprocessing, which the weights' hash cannot show, changes it)
    config_sha256: str | None = dataclass_field(default=None, compare=False)

    @property
    def name(self) -> str:
        """The model's name (``model.json``'s ``name``)."""
        return self.config["name"]

    @property
    def labels(self) -> dict[int, str]:
        """Label value → name, background included, by value."""
        return {int(k): v for k, v in sorted(self.config["labels"].items(), key=lambda kv: int(kv[0]))}

    @property
    def label_map(self) -> LabelMap:
        """Output class ↔ label value: class k is the k-th smallest declared value (the identity for labels
        0..N-1)."""
        return label_map(self.config["labels"])

    @property
    def label_codes(self) -> dict[int, dict]:
        """Label value → its DICOM SEG codes (``category``, ``type``, optional ``modifier``), for the labels that
        declare them."""
        return {int(k): v for k, v in self.config.get("label_codes", {}).items()}

    @property
    def modalities(self) -> list[str] | None:
        """The input modalities the model takes, in channel order (``model.json``'s ``modalities``); None for a
        model of one image per case (every package made before modalities could be declared)."""
        modalities = self.config.get("modalities")
        return list(modalities) if modalities is not None else None

    @property
    def n_modalities(self) -> int:
        """How many images (modalities) a case gives the model: 1 unless ``modalities`` declares more."""
        return len(self.config.get("modalities") or [None])

    @property
    def weights_path(self) -> Path:
        """The safetensors file of the weights."""
        return self.path / self.config["weights"]["file"]

    @property
    def sha256(self) -> str:
        """The weights file's SHA-256 as ``model.json`` records it (checked on loading unless asked not to)."""
        return self.config["weights"]["sha256"]

    @property
    def preprocessing(self) -> dict:
        """The ``preprocessing`` section: orientation, ``spacing_mm``, intensity normalisation."""
        return self.config["preprocessing"]

    @property
    def inference(self) -> dict:
        """The ``inference`` section, with the defaults of the fields it leaves out."""
        defaults = {"overlap": 0.25, "blend": "gaussian", "context_slices": 0, "flip_tta": []}
        return {**defaults, **self.config["inference"]}

    @property
    def settings_sha256(self) -> str:
        """The SHA-256 of what of ``model.json`` decides its segmentations, as inference applies it: architecture,
        labels (values and names), preprocessing and inference settings; not its name, version, description, label
        codes, training record or weights entry (the weights' hash is recorded apart). Cases made before and after
        new label codes or an edited training record carry the same one."""
        inference = {**self.inference, **{key: _as_applied(key, self.inference[key])
                                          for key in ("slice_axis", "flip_tta")}}
        applied = {"architecture": self.config["architecture"], "labels": self.config["labels"],
                   "preprocessing": _as_applied("preprocessing", self.preprocessing), "inference": inference}
        if self.modalities is not None:  # declared: the channel order decides the segmentation (none: as before)
            applied["modalities"] = self.modalities
        return hashlib.sha256(json.dumps(applied, sort_keys=True).encode()).hexdigest()

    def check_weights(self) -> None:
        """Refuse weights that are not the SHA-256 ``model.json`` records, or that do not fit its architecture
        (:meth:`check_weights_fit`)."""
        try:
            before = _file_identity(self.weights_path)
            actual = sha256_of(self.weights_path)
        except OSError as error:
            raise ModelPackageError(f"{self.weights_path}: cannot read ({os_reason(error)})") from error
        if actual != self.sha256:
            held = _held_below_length_field(self.weights_path)
            if held is not None:  # no header length to go by: as cut short, not as a mismatch
                what = "empty (0 bytes)" if held == 0 else (
                    f"cut short: {held} byte{'' if held == 1 else 's'}, fewer than the 8 of the header length a "
                    "safetensors file starts with")
                raise ModelPackageError(f"{self.weights_path}: {what} (an interrupted copy?); copy the package again")
            short = _short_of(self.weights_path)
            if short is not None:  # scp writes in place: a copy cut off leaves the first part of the file
                declared = f"the {short[1]:,}" if short[2] else f"at least the {short[1]:,}"
                raise ModelPackageError(f"{self.weights_path}: cut short: {short[0]:,} bytes of {declared} its header "
                                        "declares (an interrupted copy?); copy the package again")
            raise ModelPackageError(f"{self.weights_path}: SHA-256 {actual[:12]}… does not match {self.sha256[:12]}… "
                                    f"recorded in {CONFIG_NAME}; the file is corrupt or was replaced")
        self.check_weights_fit()
        self.checked_file = before

    def check_weights_fit(self) -> None:
        """Refuse a weights file whose tensors (names and shapes, read from its header) do not fit the architecture
        in ``model.json`` (a width or depth edited there after training), or hold what no trained network holds
        (:meth:`_check_values`). Checked where the package is loaded, without torch, so that a workflow refuses it
        while planning, not in every job."""
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(self.weights_path), framework="numpy") as weights:  # "pt" imports torch
                found = {key: tuple(weights.get_slice(key).get_shape()) for key in weights.keys()}
                self._check_shapes(found)
                self._check_values(weights)
        except ModelPackageError:
            raise
        except (SafetensorError, OSError, ValueError) as error:
            raise ModelPackageError(f"{self.weights_path}: unreadable safetensors file ({error})") from error

    def _check_values(self, weights) -> None:
        """Refuse tensors that are not floating point or hold NaN or infinite values, as :meth:`build_network`
        does, from an open numpy ``safe_open``; bf16 and float8 tensors, which numpy cannot hold, by their bit
        patterns. ``medseg models`` then says "checked" only of weights that ``medseg infer`` takes, and a workflow
        refuses them while planning."""
        import numpy as np

        offsets, unchecked = None, 0
        for key in weights.keys():
            if key.endswith(_COUNTERS):
                continue
            dtype = weights.get_slice(key).get_dtype()
            if not dtype.startswith(("F", "BF")):  # F16 … F64, the float8, float6 and float4 types, BF16
                raise ModelPackageError(self._not_float(key, _DTYPE_NAMES.get(dtype, dtype.lower())))
            if dtype in ("F16", "F32", "F64"):
                values = weights.get_tensor(key)
                if not np.isfinite(values).all():
                    raise ModelPackageError(self._not_finite(key, int((~np.isfinite(values)).sum())))
            elif dtype in _NONFINITE_BITS:  # read as raw bits (numpy has no such types)
                offsets = _tensor_offsets(self.weights_path) if offsets is None else offsets
                size, mask, nonfinite = _NONFINITE_BITS[dtype]
                start, end = offsets[key]
                bits = np.fromfile(self.weights_path, dtype="<u2" if size == 2 else "u1", count=(end - start) // size,
                                   offset=start)
                bad = int(((bits & mask) == nonfinite).sum())
                if bad:
                    raise ModelPackageError(self._not_finite(key, bad))
            else:  # float6, float4: no NaN or infinity to find by their bits here; torch checks them
                unchecked += 1
        self.values_checked = not unchecked

    def _not_float(self, key: str, dtype: str) -> str:
        return (f"{self.weights_path}: tensor {key} holds {dtype}, not floating-point numbers: these are not trained "
                "weights")

    def _not_finite(self, key: str, bad: int) -> str:
        return (f"{self.weights_path}: tensor {key} holds {bad} NaN or infinite value{'' if bad == 1 else 's'}: the "
                "weights are damaged (a diverged training run writes such weights)")

    def _check_shapes(self, found: dict[str, tuple]) -> None:
        from medseg.network_shapes import state_shapes

        expected = state_shapes(self.config["architecture"])  # without torch: a workflow's planning calls this
        # batch norm's step counters are not weights: torch fills in a missing one (weights exported without them)
        mismatch = state_mismatch({k: v for k, v in expected.items() if not k.endswith(_COUNTERS)},
                                  {k: v for k, v in found.items() if not k.endswith(_COUNTERS)})
        if mismatch:
            raise ModelPackageError(
                f"{self.weights_path}: weights do not match the architecture in {CONFIG_NAME} ({mismatch})")

    def build_network(self, device: str | None = None):
        """The U-Net with this package's weights, in eval mode, on ``device``; torch's random generator is left as it
        was."""
        import torch
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        from medseg.network import UNet2D, UNetConfig

        arch = UNetConfig(**{k: v for k, v in self.config["architecture"].items() if k != "type"})
        for attempt in range(3):
            try:
                state = load_file(str(self.weights_path), device="cpu")
            except (SafetensorError, OSError, ValueError) as error:
                raise ModelPackageError(f"{self.weights_path}: unreadable safetensors file ({error})") from error
            # looked at once the tensors are read: a file replaced or rewritten since its hash was checked (a
            # training run finishing into the folder), before or while they were read, is checked again and read
            # again, so that the sidecar's hash is that of the weights used
            if self.checked_file is None or _file_identity(self.weights_path) == self.checked_file:
                break
            if attempt == 2:
                raise ModelPackageError(f"{self.weights_path}: changed while it was read, three times; load the "
                                        "package once nothing writes to it")
            self.values_checked = False
            try:
                self.check_weights()
            except ModelPackageError as error:  # damage, or more likely a new package placed since it was loaded
                raise ModelPackageError(f"{error}; it changed since {self.path} was loaded (a new package written "
                                        "into the folder meanwhile?): run again to load the package as it is "
                                        "now") from error
        self._check_shapes({k: tuple(v.shape) for k, v in state.items()})
        for key, tensor in ([] if self.values_checked else state.items()):
            if key.endswith(_COUNTERS):
                continue
            if not tensor.is_floating_point():
                raise ModelPackageError(self._not_float(key, str(tensor.dtype)[6:]))
            finite = torch.isfinite(tensor.float())  # float8 types have no isfinite of their own
            if not bool(finite.all()):
                raise ModelPackageError(self._not_finite(key, int((~finite).sum())))
        with torch.random.fork_rng(devices=[]):  # its initial weights, replaced below, leave the caller's draws be
            net = UNet2D(arch)
        try:
            net.load_state_dict(state, strict=True)
        except RuntimeError as error:  # a step counter of another shape, say
            detail = str(error).strip().splitlines()[-1].strip() if str(error).strip() else type(error).__name__
            raise ModelPackageError(
                f"{self.weights_path}: weights do not match the architecture in {CONFIG_NAME} ({detail})"
            ) from error
        net.eval()
        if device is not None:
            net.to(device)
        return net


@cache
def _warned_tile(config_path: Path, tile: tuple, patch: tuple) -> None:
    log.warning("%s: inference.roi_size %s differs from the %s patches its network was trained on (training."
                "settings.patch_size): the tiles it sees at inference are unlike its training ones, and Dice can "
                "fall far (0.91 to 0.74 on hippocampus planes); set roi_size to %s", config_path, list(tile),
                list(patch), list(patch))


def _warn_edited_since_training(config: dict, config_path: Path) -> None:
    """Warn, once per package, when ``model.json``'s labels, preprocessing or slicing are not those its weights were
    trained with (``training.trained_with``): the same weights then make other segmentations than the validation
    figures describe. Label names changed to new ones are a rename (a card's words), not told; names swapped among
    the labels are."""
    recorded = recorded_trained_with(config)
    if recorded is None:  # a package written before medseg recorded it, or not by medseg train
        return
    now = trained_with(config)
    changed = [key for key in ("preprocessing", "slice_axis", "context_slices")
               if _as_applied(key, recorded.get(key)) != _as_applied(key, now[key])]
    trained_labels, labels = recorded.get("labels"), now["labels"] or {}
    if isinstance(trained_labels, dict) and trained_labels != labels:
        if set(map(str, trained_labels)) != set(map(str, labels)) or swapped_names(trained_labels, labels):
            changed.append("labels")
    if changed:
        _warned_edit(config_path.resolve(), json.dumps({key: recorded.get(key) for key in changed}, sort_keys=True),
                     json.dumps({key: now[key] for key in changed}, sort_keys=True))


@cache
def _warned_edit(config_path: Path, trained: str, now: str) -> None:
    log.warning("%s: %s not what its weights were trained with (trained: %s): they will make other segmentations "
                "than its validation figures describe; put it back, or train again with it", config_path,
                _changed_text(json.loads(now)), trained)


def _changed_text(now: dict) -> str:
    parts = [f"{key} {json.dumps(value)}" for key, value in now.items()]
    return (parts[0] + " is") if len(parts) == 1 else (", ".join(parts) + " are")


def _warn_tile_unlike_training(config: dict, config_path: Path) -> None:
    """Warn, once per package, when a package's tile is not the patch size its network was trained on (a hand-edited
    roi_size)."""
    training = config.get("training")
    settings = training.get("settings") if isinstance(training, dict) else None
    patch = settings.get("patch_size") if isinstance(settings, dict) else None  # free-form: no schema checks it
    tile = config["inference"]["roi_size"]
    if (isinstance(patch, list) and len(patch) == 2 and all(isinstance(v, int) and not isinstance(v, bool)
                                                            for v in patch) and list(patch) != list(tile)):
        _warned_tile(config_path.resolve(), tuple(tile), tuple(patch))


def empty_model_name(name_or_path: str | os.PathLike) -> bool:
    """Whether ``name_or_path`` is an empty (or blank) model name, which names no package: ``Path("")`` is the
    current folder, and ``-m "$MODEL"`` with the variable unset gives one."""
    return not str(name_or_path).strip()


def model_choices() -> str:
    """What to give as a model: ``give a shipped model's name (hippocampus, phantom) or a package folder``."""
    return f"give a shipped model's name ({', '.join(shipped_models()) or 'none shipped'}) or a package folder"


def load_package(name_or_path: str | Path, check_hash: bool = True) -> ModelPackage:
    """Load a model package by shipped name or folder path, validating config and weights hash."""
    if not is_path(name_or_path):  # None was taken as a model named "None"
        raise ModelPackageError(f"{type_text(name_or_path)} given as the model package; give a shipped model's "
                                "name or a package folder")
    if empty_model_name(name_or_path):
        raise ModelPackageError(f"an empty model name names no package: {model_choices()}")
    candidate = Path(name_or_path)
    shipped = _models_root() / str(name_or_path)
    is_name = "/" not in str(name_or_path) and (shipped / CONFIG_NAME).is_file()
    if candidate.is_dir() and (not is_name or (candidate / CONFIG_NAME).is_file()):
        path = candidate  # a package folder wins over a shipped name; a plain folder of that name does not
        # said, not silent, where a user named it (as text; the library's own folders come as paths)
        if is_name and isinstance(name_or_path, str):
            log.warning("%s: the package folder %s, not the shipped model of that name; give ./%s to say so, or "
                        "rename the folder", name_or_path, candidate.absolute(), name_or_path)
    elif is_name:
        path = shipped
        below = _held_below(candidate) if candidate.is_dir() and isinstance(name_or_path, str) else ""
        if below.startswith("; the package is one folder deeper"):  # unpacked one folder too deep: not what is run
            log.warning("%s: the shipped model of that name; the folder %s holds no %s, but a package one folder "
                        "deeper: give %s to use that one", name_or_path, candidate.absolute(), CONFIG_NAME,
                        below.rsplit("give ", 1)[1])
    elif candidate.exists():
        raise ModelPackageError(f"{candidate}: {_not_a_folder(candidate)}")
    elif candidate.is_symlink():
        raise ModelPackageError(f"{candidate}: a symbolic link that leads to nothing (or round in a loop), not a "
                                "model package folder")
    else:
        alike = _spelt_otherwise(candidate)
        if alike is not None:  # a folder copied from a Mac (its accents decomposed), or its letter case changed
            raise ModelPackageError(f"{name_or_path}: no such model folder, but {alike} differs from it only "
                                    f"{name_difference(candidate.name, alike.name)}: give the name as spelt there (tab "
                                    "completion writes it so), or rename the folder")
        names = ", ".join(shipped_models()) or "none"
        where = ""
        if not candidate.is_absolute():  # a workflow's or a script's working folder may not be the one meant
            try:
                where = f"the folder taken relative to {Path.cwd()}; "
            except OSError:  # a working folder since removed
                pass
        raise ModelPackageError(f"{name_or_path}: no such model folder or shipped model ({where}shipped: {names})")
    # model.json and the weights of one package: a training run placing a new one waits for this read to end
    # (read between its renames, the old model.json and the new weights were refused as a corrupt file)
    with reading_folder(path):
        return _read_package(path, check_hash)


# archives a package travels in, by their first bytes (tar: "ustar" at byte 257); a compressed stream (gzip …) is
# one only where its name says tar (a scan.nii.gz is gzip too)
_ARCHIVE_MAGIC = ((b"PK\x03\x04", "zip"), (b"PK\x05\x06", "zip"), (b"7z\xbc\xaf\x27\x1c", "7z"),
                  (b"Rar!\x1a\x07", "rar"))
_ARCHIVE_SUFFIXES = (".tar.gz", ".tar.bz2", ".tar.xz", ".tar.zst", ".tgz", ".tar", ".zip", ".7z", ".rar")


def _archive_kind(path: Path) -> str | None:
    """What archive the file ``path`` is (``zip``, ``tar.gz`` …): by its name's suffix, else by its first bytes
    (a zip, 7z, rar or tar archive named otherwise); None for any other file."""
    suffix = next((s for s in _ARCHIVE_SUFFIXES if path.name.lower().endswith(s)), None)
    if suffix is not None:
        return suffix[1:]
    try:
        with open(path, "rb") as handle:
            head = handle.read(262)
    except OSError:
        return None
    kind = next((kind for magic, kind in _ARCHIVE_MAGIC if head.startswith(magic)), None)
    return "tar" if kind is None and head[257:262] == b"ustar" else kind


def _not_a_folder(path: Path) -> str:
    """What to say of a file given as a package: a file of a package folder, an archive to unpack (naming the
    folder beside it of the archive's name, where that holds a package), or any other file."""
    if path.is_file() and (path.parent / CONFIG_NAME).is_file():
        return f"a file of the model package {path.parent}; give that folder, not a file in it"
    kind = _archive_kind(path) if path.is_file() else None
    if kind is None:
        return f"a model package is a folder holding {CONFIG_NAME}, not a file"
    stem = path.name[:len(path.name) - len(kind) - 1]
    if path.name.lower().endswith("." + kind) and stem and (path.with_name(stem) / CONFIG_NAME).is_file():
        return (f"a {kind} archive, not a model package folder; {path.with_name(stem)}, beside it, holds one: give "
                "that folder")
    return f"a {kind} archive, not a model package folder: unpack it first and give the folder that holds {CONFIG_NAME}"


def _spelt_otherwise(path: Path) -> Path | None:
    """The folder beside ``path`` (which is not there) whose name differs from its name only in letter case or in
    how an accent is composed (``é`` as one character, or as ``e`` and its accent, as macOS writes names), if
    one."""
    folded = unicodedata.normalize("NFC", path.name).casefold()
    try:
        return next((entry for entry in sorted(path.parent.iterdir())
                     if unicodedata.normalize("NFC", entry.name).casefold() == folded and entry.is_dir()), None)
    except OSError:
        return None


def _held_below(folder: Path) -> str:
    """Where the package given as ``folder`` (without a ``model.json``) may be instead, as the end of an error: one
    folder deeper (an archive unpacked into a folder of its own name: ``pkg/pkg/model.json``), in several of its
    folders (a folder of packages), or in an archive inside it; empty when none. A Mac's ``__MACOSX`` and hidden
    folders are not looked in."""
    try:
        entries = sorted(folder.iterdir())
        packages = [entry for entry in entries if not entry.name.startswith(".") and entry.name != "__MACOSX"
                    and entry.is_dir() and (entry / CONFIG_NAME).is_file()]
        archives = [entry for entry in entries if not entry.name.startswith(".") and entry.is_file()
                    and entry.name.lower().endswith(_ARCHIVE_SUFFIXES)]
    except OSError:
        return ""
    if len(packages) == 1:
        return f"; the package is one folder deeper: give {packages[0]}"
    if packages:
        shown = ", ".join(entry.name for entry in packages[:5]) + (", …" if len(packages) > 5 else "")
        return f"; {len(packages)} of its folders hold packages ({shown}): give one of them"
    if archives:
        return f"; it holds {archives[0].name}, an archive: unpack it and give the folder that holds {CONFIG_NAME}"
    return ""


def _read_package(path: Path, check_hash: bool) -> ModelPackage:
    """:func:`load_package` of the package folder ``path``: its config read and checked, its weights checked."""
    config_path = path / CONFIG_NAME
    absent = absent_content(config_path, f"a {CONFIG_NAME}")  # a package in a DataLad or Git LFS repository
    if absent is not None:
        raise ModelPackageError(f"{config_path}: {absent}")
    try:
        if config_path.is_dir():
            raise ModelPackageError(f"{config_path}: a folder, where a model package keeps its config file")
        if config_path.exists() and not config_path.is_file():  # a named pipe would wait for a writer
            raise ModelPackageError(f"{config_path}: {not_regular(config_path)}, where a model package keeps its "
                                    "config file")
        if not config_path.is_file():
            link = f": {not_there(config_path)}" if config_path.is_symlink() else ""
            unfinished = None if link else unfinished_training(path)
            if unfinished is not None:  # a first run, stopped: said so, not only that a file is missing
                raise ModelPackageError(f"{path}: not a model package yet: it holds an unfinished training run "
                                        f"({unfinished_text(unfinished)}); medseg train --resume with the same "
                                        "command finishes it")
            raise ModelPackageError(f"{path}: not a model package (no {CONFIG_NAME}{link}){_held_below(path)}")
        raw = read_config_bytes(config_path)
        short = _cut_short(raw)
        if short is not None:  # the first thing a copy cut off leaves: said so, not "saved as UTF-16"
            raise ModelPackageError(f"{config_path}: {short}; copy the package again")
        wide = next((name for bom, name in ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
                                            (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16"))
                     if raw.startswith(bom)), None)
        if wide is None and b"\0" in raw[:4]:  # no byte order mark, but "{" stored in two or four bytes
            wide = "UTF-16 or UTF-32"
        if wide is not None:  # UTF-16: Windows PowerShell 5's default encoding
            raise ModelPackageError(f"{config_path}: saved as {wide}; save it as UTF-8")
        # utf-8-sig: a byte order mark (Windows Notepad writes one) is not JSON, but says the file is UTF-8
        config = json.loads(raw.decode("utf-8-sig"), object_pairs_hook=unique_keys)
    except DuplicateKeyError as error:
        raise ModelPackageError(f"{config_path}: the key {error.key!r} appears twice in one object; JSON readers "
                                "keep only one of them, so say it once") from error
    except json.JSONDecodeError as error:
        if error.pos >= len(error.doc.rstrip(_TRAILING)):  # the text ended (or turned to zero bytes) mid-object
            raise ModelPackageError(f"{config_path}: not valid JSON: it ends before its JSON does ({error}): cut "
                                    "short by an interrupted copy, or a closing bracket is missing") from error
        raise ModelPackageError(f"{config_path}: not valid JSON ({error})") from error
    except (UnicodeDecodeError, RecursionError) as error:
        raise ModelPackageError(f"{config_path}: not valid JSON ({error})") from error
    except OSError as error:
        raise ModelPackageError(f"{config_path}: cannot read ({os_reason(error)})") from error
    if not isinstance(config, dict):
        raise ModelPackageError(f"{config_path}: a model config is a JSON object ({{...}}), not "
                                f"{type(config).__name__ if config is not None else 'null'}")
    config = whole_numbers(config, load_schema())  # a hand-written depth of 2.0 is 2, not a TypeError
    if recorded_weights_sha256(config) is not None:  # Get-FileHash writes capitals
        config["weights"]["sha256"] = recorded_weights_sha256(config)
    validate_config(config, str(config_path))
    package = ModelPackage(path=path, config=config, config_sha256=hashlib.sha256(raw).hexdigest())
    _warn_tile_unlike_training(config, config_path)
    _warn_edited_since_training(config, config_path)
    unfinished = unfinished_training(path)
    absent = absent_content(package.weights_path, "a weights file")  # an LFS pointer was "corrupt or replaced"
    if absent is not None:
        raise ModelPackageError(f"{package.weights_path}: {absent}")
    try:
        if package.weights_path.is_dir():
            raise ModelPackageError(f"{package.weights_path}: a folder, where the weights file should be")
        if package.weights_path.exists() and not package.weights_path.is_file():  # /dev/zero would be hashed for ever
            raise ModelPackageError(f"{package.weights_path}: {not_regular(package.weights_path)}, where the weights "
                                    "file should be")
        if not package.weights_path.is_file():
            link = f" ({not_there(package.weights_path)})" if package.weights_path.is_symlink() else ""
            partial = "" if link else _partial_copies(package.weights_path)
            if partial:  # rsync --partial, a browser's download, a copy tool's temporary file
                partial = f"; {partial} beside it: a copy or download that did not finish; copy the package again"
            raise ModelPackageError(f"{package.weights_path}: no such weights file{link}{partial}")
    except OSError as error:
        raise ModelPackageError(f"{package.weights_path}: cannot read ({os_reason(error)})") from error
    if check_hash:
        try:
            package.check_weights()
        except ModelPackageError as error:
            if unfinished is None or unfinished[0] < unfinished[1]:
                raise
            # a run killed outright (SIGKILL, power loss) while it replaced the package: its new weights may lie
            # under the old model.json; the checkpoint holds the run whole
            raise ModelPackageError(f"{error}; {path} holds a training run ({unfinished_text(unfinished)}) that may "
                                    "have been stopped while it replaced this package: medseg train --resume with "
                                    "the same command writes the package whole") from error
    if unfinished is not None:
        log.warning("%s: holds an unfinished training run (%s) that will replace this package when it finishes; "
                    "until then the package is the one written before it", path, unfinished_text(unfinished))
    return package


_TRAILING = " \t\r\n\0"  # what follows a JSON text cut short: white space, or the zero bytes of a file allocated whole


def _cut_short(raw: bytes) -> str | None:
    """What an interrupted copy or write left of a ``model.json`` whose bytes are ``raw``: nothing, or zero bytes only
    (a copy that allocates the file whole, a crash before the data reached the disk). None for any other content."""
    if not raw.strip():
        return f"{'empty' if not raw else 'blank (white space only)'}, as a copy cut off before its data leaves it"
    if not raw.strip(b"\0"):
        return f"{len(raw):,} zero bytes and nothing else, as a copy cut off before its data leaves it"
    return None


def shipped_models_folder() -> Path:
    """The folder that holds the model packages shipped inside medseg (one subfolder each)."""
    return _models_root()


def shipped_models() -> list[str]:
    """Names of the model packages shipped inside medseg."""
    root = _models_root()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / CONFIG_NAME).is_file())


def shipped_package_path(name: str) -> Path | None:
    """The folder of the model shipped under ``name``, or None when no shipped model has that name."""
    return _models_root() / name if name in shipped_models() else None


def shipped_name_taken(package: ModelPackage, given: str | Path) -> str | None:
    """A warning when ``package`` (given as ``given``) calls itself by a shipped model's name but holds other weights,
    or the same weights under an edited ``model.json`` (labels renamed, other preprocessing): sidecars and reports
    name models by name. None for the shipped model, a copy of it, or a folder given by the bare name
    (:func:`load_package` warned about that already)."""
    shipped = shipped_package_path(package.name)
    if shipped is None or shipped.resolve() == package.path.resolve() or str(given) == package.name:
        return None
    original = load_package(shipped, check_hash=False)
    if original.sha256 == package.sha256 and _settings(original.config) == _settings(package.config):
        return None
    what = "other weights" if original.sha256 != package.sha256 else "its weights under an edited model.json"
    return (f"{package.path} calls itself {package.name!r}, as a model shipped with medseg, but is another package "
            f"({what}): outputs name it by that name (the sidecar also records its folder and the SHA-256 of its "
            "weights and model.json)")


def _settings(config: dict) -> dict:
    """What of a config makes its segmentations or names them: all but its notes (description, version, training
    record), its weights entry (their hash is compared apart) and the extent it warns outside of."""
    return {key: value for key, value in config.items()
            if key not in ("description", "version", "training", "weights", "input_extent_mm")}


def save_package(net, config: dict, out_dir: Path | str,
                 extra_files: dict[str, str | Callable[[dict], str]] | None = None) -> ModelPackage:
    """Write ``net``'s weights and ``config`` (weights entry filled in) as a package in ``out_dir``.

    ``extra_files`` maps file names (e.g. ``MODEL_CARD.md``) to text written beside the config, or to a function
    that makes the text from the config as written (its weights' SHA-256 filled in); written as UTF-8 whatever the
    locale (Windows' cp1252, a C locale), as ``medseg models`` reads the card.
    """
    from safetensors.torch import save

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    weights_name = "weights.safetensors"
    state = {k: v.detach().to("cpu").contiguous() for k, v in net.state_dict().items()}
    config = dict(config)
    names = [weights_name, CONFIG_NAME, *(extra_files or {})]
    # one set: weights, config and card are placed together (a stop between them left new weights under the old
    # config, which then refused them as not the weights it records)
    with atomic_paths([out_dir / n for n in names], overwrite=True) as temps:
        # serialised here and written by Python: a full disk or quota is an OSError naming the file, where
        # safetensors' own writer raised its SafetensorError ("I/O error: No space left on device") as a traceback
        temps[0].write_bytes(save(state))
        config["weights"] = {"file": weights_name, "sha256": sha256_of(temps[0])}
        validate_config(config, str(out_dir / CONFIG_NAME))
        temps[1].write_text(json.dumps(config, indent=2) + "\n")
        for temp, text in zip(temps[2:], (extra_files or {}).values()):
            temp.write_text(text(config) if callable(text) else text, encoding="utf-8")
    return ModelPackage(path=out_dir, config=config, config_sha256=sha256_of(out_dir / CONFIG_NAME))
