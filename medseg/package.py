"""Model packages: a folder with ``model.json`` (architecture, labels, preprocessing, inference settings)
and ``weights.safetensors`` whose SHA-256 the config records and the loader checks. No pickle is ever
loaded. Shipped packages live in ``medseg/models/<name>/``; ``--model`` takes a name or a folder.

The loaded package is :class:`~medseg.model_package.ModelPackage`; ``model.json``'s checks are
:mod:`medseg.package_config` (its labels' :mod:`medseg.package_labels`), the weights file's
:mod:`medseg.package_weights`, and its training record's :mod:`medseg.package_training`.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import logging
import os
import re
import unicodedata
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from medseg.caller_warnings import warn, warning
from medseg.defaults import DEFAULT_MODEL  # in __all__ here, as before: the default model
from medseg.errors import ImageReadError, ModelPackageError
from medseg.io.atomic import atomic_paths, reading_folder, sha256_of
from medseg.io.files import (
    absent_content,
    exists,
    is_path,
    name_difference,
    not_regular,
    not_there,
    os_reason,
    type_text,
)
from medseg.model_package import ModelPackage
from medseg.package_config import (  # model.json's names, importable from here as before the split
    CONFIG_NAME,
    FORMAT,
    MAX_CONFIG_BYTES,
    DuplicateKeyError,
    bottleneck_cells,
    load_schema,
    meant_error,
    non_finite_setting,
    read_config_bytes,
    unique_keys,
    validate_config,
    whole_numbers,
)
from medseg.package_labels import codes_text
from medseg.package_training import (
    CHECKPOINT_DIR,
    _as_applied,
    recorded_trained_with,
    swapped_modalities,
    swapped_names,
    trained_with,
    unfinished_text,
    unfinished_training,
)
from medseg.package_weights import _other_weights, _partial_copies, recorded_weights_sha256, state_mismatch

# the names of model.json's checks, the weights file and the training record are those of package_config,
# package_labels, package_weights and package_training, kept here for the code that imported them from medseg.package
__all__ = [
    "CHECKPOINT_DIR",
    "CONFIG_NAME",
    "DEFAULT_MODEL",
    "FORMAT",
    "MAX_CONFIG_BYTES",
    "DuplicateKeyError",
    "ModelPackage",
    "bottleneck_cells",
    "codes_text",
    "empty_model_name",
    "load_package",
    "load_schema",
    "meant_error",
    "model_choices",
    "non_finite_setting",
    "packages_in_folder",
    "read_config_bytes",
    "recorded_trained_with",
    "recorded_weights_sha256",
    "save_package",
    "shipped_models",
    "shipped_models_folder",
    "shipped_name_taken",
    "shipped_package_path",
    "state_mismatch",
    "swapped_names",
    "trained_with",
    "unfinished_text",
    "unfinished_training",
    "unique_keys",
    "validate_config",
    "whole_numbers",
]

log = logging.getLogger(__name__)


def _models_root() -> Path:
    return Path(str(resources.files("medseg") / "models"))


_LOGGED: set[tuple] = set()  # the package warnings logged in this process: (what, its model.json, its values)


def _told_each_load(key: tuple, message: str) -> None:
    """``message`` told to the caller at each load (Python's filters decide whether it is shown: by default once per
    line of the caller's and text; under ``"always"`` each time, as a notebook's cell run again), and logged once in
    a process for ``key`` (a command, or a cohort's planning, loading the package again does not say it again).
    Kept in a cache of its own, the warning was told once in a process whatever the filters asked."""
    if warn(message, None if key in _LOGGED else log):  # not where an "error" filter raised or held it: not logged
        _LOGGED.add(key)


def _warned_tile(config_path: Path, tile: tuple, patch: tuple) -> None:
    _told_each_load(("tile", config_path, tile, patch), f"{config_path}: inference.roi_size {list(tile)} differs from "
                    f"the {list(patch)} patches its network was trained on (training.settings.patch_size): the tiles "
                    "it sees at inference are unlike its training ones, and Dice can fall far (0.91 to 0.74 on "
                    f"hippocampus planes); set roi_size to {list(patch)}")


def _warn_edited_since_training(config: dict, config_path: Path) -> None:
    """Warn, at each load (logged once per package), when ``model.json``'s labels, preprocessing or slicing are not
    those its weights were trained with (``training.trained_with``): the same weights then make other segmentations
    than the validation figures describe. Label names changed to new ones are a rename (a card's words), not told;
    names swapped among the labels are."""
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
    if swapped_modalities(recorded.get("modalities"), config.get("modalities")):
        changed.append("modalities")
    if changed:
        _warned_edit(config_path.resolve(), json.dumps({key: recorded.get(key) for key in changed}, sort_keys=True),
                     json.dumps({key: now.get(key) for key in changed}, sort_keys=True))


def _warned_edit(config_path: Path, trained: str, now: str) -> None:
    _told_each_load(("edit", config_path, trained, now), f"{config_path}: {_changed_text(json.loads(now))} not what "
                    f"its weights were trained with (trained: {trained}): they will make other segmentations than its "
                    "validation figures describe; put it back, or train again with it")


def _changed_text(now: dict) -> str:
    parts = [f"{key} {json.dumps(value)}" for key, value in now.items()]
    return (parts[0] + " is") if len(parts) == 1 else (", ".join(parts) + " are")


def _warn_tile_unlike_training(config: dict, config_path: Path) -> None:
    """Warn, at each load (logged once per package), when a package's tile is not the patch size its network was
    trained on (a hand-edited roi_size)."""
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


def _meant_shipped(candidate: Path) -> str:
    """``; did you mean hippocampus?`` for a plain name one typo from a shipped model's (``hipocampus``), as click
    names a mistyped command; empty for a path or a name like none of them."""
    if len(candidate.parts) != 1:
        return ""
    import difflib

    close = difflib.get_close_matches(candidate.name, shipped_models(), n=1, cutoff=0.8)
    return f"; did you mean {close[0]}?" if close else ""


def load_package(name_or_path: str | os.PathLike, check_hash: bool = True, *, weights: bool = True) -> ModelPackage:
    """Load a model package by shipped name or folder path, validating config and weights hash; anything that is
    not such a package (no such model, a config or weights that fail their checks) is a
    :class:`~medseg.errors.ModelPackageError` naming the file. ``weights=False``: its config alone, read and
    checked, its weights file not looked at (and no warning of the package told): what names a case's files."""
    if not is_path(name_or_path):  # None was taken as a model named "None"
        raise ModelPackageError(f"{type_text(name_or_path)} given as the model package; give a shipped model's "
                                "name or a package folder")
    if empty_model_name(name_or_path):
        raise ModelPackageError(f"an empty model name names no package: {model_choices()}")
    candidate = Path(name_or_path)
    try:
        exists(candidate)  # behind a folder this user may not search: named (Path.is_dir raised PermissionError)
    except ImageReadError as error:
        raise ModelPackageError(str(error)) from error
    shipped = _models_root() / str(name_or_path)
    is_name = "/" not in str(name_or_path) and (shipped / CONFIG_NAME).is_file()
    if candidate.is_dir() and (not is_name or (candidate / CONFIG_NAME).is_file()):
        path = candidate  # a package folder wins over a shipped name; a plain folder of that name does not
        # said, not silent, where a user named it (as text; the library's own folders come as paths)
        if is_name and isinstance(name_or_path, str):
            warning(log, "%s: the package folder %s, not the shipped model of that name; give ./%s to say so, or "
                        "rename the folder", name_or_path, candidate.absolute(), name_or_path)
    elif is_name:
        path = shipped
        below = _held_below(candidate) if candidate.is_dir() and isinstance(name_or_path, str) else ""
        if below.startswith("; the package is one folder deeper"):  # unpacked one folder too deep: not what is run
            warning(log, "%s: the shipped model of that name; the folder %s holds no %s, but a package one folder "
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
        raise ModelPackageError(f"{name_or_path}: no such model folder or shipped model ({where}shipped: {names})"
                                f"{_meant_shipped(candidate)}")
    # model.json and the weights of one package: a training run placing a new one waits for this read to end
    # (read between its renames, the old model.json and the new weights were refused as a corrupt file)
    with reading_folder(path):
        return _read_package(path, check_hash, weights)


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


_CONFIG_RENAMED = re.compile(r"model\b[^/]*\.json(\.txt)?", re.IGNORECASE)


def _is_package_config(path: Path, most_bytes: int = 16 << 20) -> bool:
    """Whether ``path`` (named like a ``model.json`` saved under another name) holds a package's config: a JSON
    object with its ``labels`` and ``preprocessing``. Another tool's files are named so too (Hugging Face's
    ``model.safetensors.index.json``, ``model.onnx.json``): renamed to ``model.json``, they are no package."""
    try:
        if not path.is_file() or path.stat().st_size > most_bytes:
            return False
        config = json.loads(path.read_bytes().decode("utf-8-sig"))  # Notepad's "Save as" may write a byte order mark
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and {"labels", "preprocessing"} <= config.keys()


def _held_below(folder: Path) -> str:
    """Where the package given as ``folder`` (without a ``model.json``) may be instead, as the end of an error: one
    folder deeper (an archive unpacked into a folder of its own name: ``pkg/pkg/model.json``), in several of its
    folders (a folder of packages), or in an archive inside it; empty when none. A Mac's ``__MACOSX`` and hidden
    folders are not looked in."""
    try:
        entries = sorted(folder.iterdir())
        packages = _packages_among(entries)
        archives = [entry for entry in entries if not entry.name.startswith(".") and entry.is_file()
                    and entry.name.lower().endswith(_ARCHIVE_SUFFIXES)]
        # the config under another name: "model (1).json" (a second download), "Model.json", "model.json.txt"
        renamed = [entry for entry in entries if _CONFIG_RENAMED.fullmatch(entry.name) and _is_package_config(entry)]
    except OSError:
        return ""
    if len(renamed) == 1:
        return f"; it holds {renamed[0].name!r}: renamed on the way? rename it to {CONFIG_NAME!r}"
    if renamed:  # a second download beside the first: which one is meant is the user's to tell
        shown = ", ".join(repr(entry.name) for entry in renamed[:3]) + (", …" if len(renamed) > 3 else "")
        return f"; it holds {shown}: renamed on the way? rename the one meant to {CONFIG_NAME!r}"
    if len(packages) == 1:
        return f"; the package is one folder deeper: give {packages[0]}"
    if packages:
        shown = ", ".join(entry.name for entry in packages[:5]) + (", …" if len(packages) > 5 else "")
        return f"; {len(packages)} of its folders hold packages ({shown}): give one of them"
    if archives:
        return f"; it holds {archives[0].name}, an archive: unpack it and give the folder that holds {CONFIG_NAME}"
    return ""


def _packages_among(entries: list[Path]) -> list[Path]:
    """The folders among ``entries`` that hold a ``model.json`` (a Mac's ``__MACOSX`` and hidden folders left out)."""
    return [entry for entry in entries if not entry.name.startswith(".") and entry.name != "__MACOSX"
            and entry.is_dir() and (entry / CONFIG_NAME).is_file()]


def packages_in_folder(given: str | os.PathLike) -> list[Path]:
    """The packages of a folder of packages: where ``given`` is a folder that is no package itself (no
    ``model.json``) nor a shipped model's name, and two or more of its folders hold one (a folder of packages shared
    as it is), those folders, sorted by name; empty otherwise (one package one folder deeper is an archive unpacked
    into a folder of its name: :func:`load_package` names it)."""
    folder = Path(given)
    if not is_path(given) or not os.path.isdir(folder) or os.path.lexists(folder / CONFIG_NAME):
        return []
    if "/" not in str(given) and (_models_root() / str(given) / CONFIG_NAME).is_file():  # the shipped one is meant
        return []
    try:
        packages = _packages_among(sorted(folder.iterdir()))
    except OSError:  # loading it says why
        return []
    return packages if len(packages) > 1 else []


def _read_package(path: Path, check_hash: bool, weights: bool = True) -> ModelPackage:
    """:func:`load_package` of the package folder ``path``: its config read and checked, its weights checked (unless
    not ``weights``)."""
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
                                        f"({unfinished_text(unfinished)}); {_resumed()} finishes it")
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
    except json.JSONDecodeError as error:  # cut short (or turned to zero bytes) mid-object, or where it goes wrong
        from medseg.jsonfile import json_error_text

        raise ModelPackageError(f"{config_path}: {json_error_text(error)}") from error
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
    if not weights:
        return package
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
            elif not link and (others := _other_weights(package.weights_path)):  # "weights (1).safetensors"
                shown = ", ".join(map(repr, others[:3])) + (", …" if len(others) > 3 else "")
                which = "it" if len(others) == 1 else "the one meant"  # two downloads: the user knows which
                partial = (f"; the folder holds {shown}: renamed on the way? rename {which} to "
                           f"{package.weights_path.name!r}, as model.json's weights.file names it (its SHA-256 is "
                           "checked on loading)")
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
                                    f"have been stopped while it replaced this package: {_resumed()} writes the "
                                    "package whole") from error
    if unfinished is not None:
        warning(log, "%s: holds an unfinished training run (%s) that will replace this package when it finishes; "
                    "until then the package is the one written before it", path, unfinished_text(unfinished))
    return package


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
    record), its weights entry (their hash is compared apart) and the field of view, intensities and DICOM
    Modality it warns outside of."""
    return {key: value for key, value in config.items()
            if key not in ("description", "version", "training", "weights", "input_extent_mm", "input_intensity",
                           "dicom_modality")}


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


def _resumed() -> str:
    """The training run that made a package, resumed, as this message's reader runs it: ``medseg train``'s own
    command with ``--resume``, ``medseg train --resume`` from another command, a Python caller's call of
    :func:`medseg.train.train` with ``resume=True``."""
    from medseg.settings_named import has_option, same_run_with

    given = has_option("resume")
    if given is None:
        return "medseg.train.train with the same arguments and resume=True"
    return same_run_with("resume") if given else "medseg train --resume with the same command"
