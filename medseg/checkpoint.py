"""The checkpoint a training run keeps in its output folder's ``.checkpoint``: its record (``last.json``) and the
tensors it names, saved (committed by the record's rename) and loaded back, what a run may do with a folder
(:func:`check_output_folder`), and what the record says of the run it belongs to (its epoch, plan, tile, labels)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from pathlib import Path

import torch

from medseg.errors import OutputExistsError, TrainingError, first_line
from medseg.io.atomic import atomic_paths, remove_leftovers, sha256_of
from medseg.io.files import not_there, os_reason
from medseg.jsonfile import CHECKPOINT_RECORD_BYTES, JsonFileError, read_json_object
from medseg.package_config import CONFIG_NAME
from medseg.package_training import CHECKPOINT_DIR, unfinished_text, unfinished_training
from medseg.settings_named import ANY, has_option, setting
from medseg.train_config import default_label_name

__all__ = [
    "CHECKPOINT_SCHEMA", "check_checkpoint_labels", "check_output_folder", "checkpoint_epoch",
    "checkpoint_planned_epochs", "checkpoint_stamp", "checkpoint_tile", "checkpoint_val_dice", "started_without_names",
    "check_weights_digest", "checkpoint_record_path", "checkpoint_tensors_path", "load_checkpoint",
    "read_checkpoint_json", "read_checkpoint_record", "record_codes", "record_package", "save_checkpoint"
]


def checkpoint_stamp(out_dir: Path | str) -> tuple[int, int] | None:
    """Identifies the checkpoint record now in ``out_dir`` (inode and modification time), or None: a run that
    replaces a package (--overwrite) keeps the old run's checkpoint until its own first epoch is saved over it."""
    try:
        status = checkpoint_record_path(out_dir).stat()
    except OSError:
        return None
    return status.st_ino, status.st_mtime_ns


def _started_config(out_dir: Path | str) -> dict | None:
    """The package config the checkpoint in ``out_dir`` was started with (its record's ``config``), or None when
    there is no readable record."""
    try:
        config = read_checkpoint_json(checkpoint_record_path(out_dir))["config"]
    except (OSError, ValueError, KeyError):  # a JsonFileError too
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
                                f"with {setting('overwrite')}")
        # the default config names labels label_N: this run was started with a config (or a dataset.json) of its own
        raise TrainingError(f"{out_dir}: the checkpoint was started with a config of its own or a dataset.json (labels "
                            f"{shown}); resume with "
                            + (f"{setting('config', ANY)} and that config" if has_option("config") else
                               "that config (train's config argument)")
                            + ", or with that dataset.json beside the images and labels folders")
    advice = f"resume with the files it was started with, or start again with {setting('overwrite')}"
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
    meta = checkpoint_record_path(out_dir)
    try:
        planned = read_checkpoint_json(meta)["epochs_planned"][-1]
    except (OSError, ValueError, KeyError, TypeError, IndexError):  # a JsonFileError too
        return None
    return planned if isinstance(planned, int) and not isinstance(planned, bool) else None


def checkpoint_epoch(out_dir: Path | str) -> int | None:
    """The last finished epoch of the checkpoint in ``out_dir``, or None when there is none (or it is unreadable)."""
    meta = checkpoint_record_path(out_dir)
    try:
        return int(read_checkpoint_json(meta)["epoch"])
    except (OSError, ValueError, KeyError, TypeError):  # a JsonFileError too
        return None


def checkpoint_val_dice(out_dir: Path | str) -> dict[int, float | None]:
    """Epoch → validation mean Dice, as scored during training (in model space where the package resamples), of the
    epochs the checkpoint in ``out_dir`` records; empty when there is none (or it is unreadable)."""
    try:
        history = read_checkpoint_json(checkpoint_record_path(out_dir))["history"]
        return {int(h["epoch"]): h.get("val_mean_dice") for h in history if isinstance(h, dict) and "epoch" in h}
    except (OSError, ValueError, KeyError, TypeError):  # a JsonFileError too
        return {}


_NOT_RESUMABLE = ("its checkpoint, written by an earlier medseg, does not record the settings its run was started "
                  "with, so it cannot be resumed")


def _records_its_settings(out_dir: Path) -> bool:
    """Whether ``out_dir``'s checkpoint can be offered to ``--resume``: it records the settings its run was started
    with (``config``), which an earlier medseg's did not (resuming refuses those); True without a readable record."""
    try:
        state = read_checkpoint_json(checkpoint_record_path(out_dir))
    except (OSError, ValueError):  # a JsonFileError too
        return True
    return "config" in state


def check_output_folder(out_dir: Path | str, overwrite: bool = False, resume: bool = False) -> None:
    """Refuse an output folder before any case is read: one that holds a package or an unfinished run that would be
    replaced without ``overwrite`` (or ``resume``), one that holds other files, or one that cannot be written.

    Creates nothing: a folder made to test writing is removed again.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise TrainingError(f"{out_dir}: exists and is not a folder")
    if out_dir.is_dir():  # what it holds decides what may be done there: a folder this user may not read is refused
        try:
            os.listdir(out_dir)
            os.stat(os.path.join(out_dir, "."))  # its files reachable (search permission)
        except PermissionError as error:
            raise TrainingError(f"{out_dir}: cannot read ({os_reason(error)})") from error
    linked = out_dir / CHECKPOINT_DIR
    if linked.is_symlink():  # a package from elsewhere: --overwrite replaced and removed files where it pointed
        raise TrainingError(f"{linked}: a link (to {os.readlink(linked)}); training writes its checkpoint, and "
                            "removes the one it replaces, in a folder of its own, not where a link points: remove "
                            "the link")
    epoch = checkpoint_epoch(out_dir)
    # a first checkpoint never completed (a full disk, a kill): the folder without its record holds nothing to keep
    begun = not checkpoint_record_path(out_dir).exists() and (out_dir / CHECKPOINT_DIR).is_dir()
    if resume and not out_dir.exists():  # no folder at all: the record was not unreadable, there is no run
        raise TrainingError(f"{out_dir}: no such folder; nothing to resume: run without {setting('resume')} to start "
                            "training into it")
    if resume and epoch is None:
        if checkpoint_record_path(out_dir).exists():  # a record that does not read as one: say what is wrong with it
            read_checkpoint_record(checkpoint_record_path(out_dir))
        # no record at all: nothing is damaged, there is no run here (it said "no readable last.json")
        if (out_dir / CONFIG_NAME).is_file():
            again = f"train again with {setting('overwrite')}"
        elif begun or not any(out_dir.iterdir()):
            again = f"train without {setting('resume')}"
        else:  # the user's other files: training without --resume refuses such a folder
            again = f"train without {setting('resume')} into a new or empty folder"
        way_on = f"its first checkpoint was never completed: {again}" if begun else \
            f"{again}, or give the folder of an interrupted run"
        raise TrainingError(f"{out_dir}: nothing to resume (no checkpoint record {CHECKPOINT_DIR}/last.json in it); "
                            f"{way_on}")
    if out_dir.is_dir():
        entries = sorted(p.name for p in out_dir.iterdir())
        package = CONFIG_NAME in entries
        checkpoint = CHECKPOINT_DIR in entries and not begun
        if begun:
            entries = [name for name in entries if name != CHECKPOINT_DIR] or [CHECKPOINT_DIR]
        resumable = _records_its_settings(out_dir)
        if checkpoint and not (out_dir / CHECKPOINT_DIR).is_dir():  # not even --overwrite could save a checkpoint
            raise TrainingError(f"{out_dir / CHECKPOINT_DIR}: a file is where training keeps its checkpoint folder; "
                                "move it away")
        if not (package or resume or overwrite) and epoch is not None:
            raise OutputExistsError(f"{out_dir}: holds an unfinished training run (checkpoint after epoch {epoch}); "
                                    + (f"pass {setting('resume')} to continue it or {setting('overwrite')} to start "
                                       "again" if resumable
                                       else f"pass {setting('overwrite')} to start again ({_NOT_RESUMABLE})"))
        if checkpoint and epoch is None and not overwrite:
            raise OutputExistsError(f"{out_dir}: holds a checkpoint whose record {CHECKPOINT_DIR}/last.json cannot "
                                    f"be read; pass {setting('overwrite')} to start again")
        unfinished = unfinished_training(out_dir) if package else None
        if unfinished is not None and not (overwrite or resume):  # an --overwrite run stopped before it finished
            raise OutputExistsError(f"{out_dir}: holds a model package and an unfinished training run that would "
                                    f"replace it ({unfinished_text(unfinished)}); "
                                    + (f"pass {setting('resume')} to finish that run or {setting('overwrite')} to "
                                       "start again" if resumable
                                       else f"pass {setting('overwrite')} to start again ({_NOT_RESUMABLE})"))
        if package and not (overwrite or resume):
            if CHECKPOINT_DIR not in entries:  # a package copied in, or its checkpoint deleted: --resume would say
                # there is nothing to resume
                raise OutputExistsError(f"{out_dir}: holds a model package already, and no checkpoint of its "
                                        f"training to resume; pass {setting('overwrite')} to replace it")
            raise OutputExistsError(f"{out_dir}: holds a model package already; "
                                    + (f"pass {setting('overwrite')} or {setting('resume')}" if resumable
                                       else f"pass {setting('overwrite')} ({_NOT_RESUMABLE})"))
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
        raise TrainingError(f"{out_dir}: cannot make this output folder: {existing} is a file, not a folder")
    link = next((folder for folder in missing if folder.is_symlink()), None)
    if link is not None:  # making it said "cannot write the output folder here (file exists)"
        raise TrainingError(f"{out_dir}: cannot make this output folder: {link} is {not_there(link)}")
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
        raise TrainingError(f"{where}: {what} ({os_reason(error)})") from error
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


def read_checkpoint_json(meta: Path) -> dict:
    """The checkpoint's record ``meta`` (``last.json``) as JSON, not checked further (:func:`read_checkpoint_record`
    checks it for a resume): a :class:`~medseg.jsonfile.JsonFileError` for a file that is not a JSON object of at
    most :data:`~medseg.jsonfile.CHECKPOINT_RECORD_BYTES`, ``OSError`` as reading raises it."""
    return read_json_object(meta, CHECKPOINT_RECORD_BYTES, "a checkpoint record")


def checkpoint_record_path(out_dir: Path) -> Path:
    """The checkpoint's record, ``last.json``."""
    return Path(out_dir) / CHECKPOINT_DIR / "last.json"


def checkpoint_tensors_path(out_dir: Path, record: dict | None = None) -> Path:
    """The checkpoint's tensors, as its record (``record``, read here when not given) names them
    (``last-<sha256 prefix>.safetensors``; records before that: ``last.safetensors``)."""
    meta = checkpoint_record_path(out_dir)
    name = "last.safetensors"
    with contextlib.suppress(OSError, ValueError, AttributeError, TypeError):  # a JsonFileError too
        named = (record if record is not None else read_checkpoint_json(meta)).get("weights_file")
        if isinstance(named, str) and re.fullmatch(CHECKPOINT_SCHEMA["properties"]["weights_file"]["pattern"], named):
            name = named
    return meta.parent / name


def save_checkpoint(out_dir: Path, net: torch.nn.Module, best_state: dict | None, optimizer: torch.optim.Optimizer,
                    state: dict, ema=None) -> None:
    """Save the network, its moving average, the best weights so far and the optimizer's state as one safetensors
    file, and commit it with the rename of its record (``state`` with the weights' SHA-256 and file name)."""
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
    meta = checkpoint_record_path(out_dir)
    folder = meta.parent
    folder.mkdir(parents=True, exist_ok=True)
    remove_leftovers(folder)  # of a save killed outright (the run holds the folder)
    data = save(tensors)
    digest = hashlib.sha256(data).hexdigest()
    # The record commits the save in one rename: the tensors go first under a name of their own (their content's),
    # and the record that names them replaces the last one. A kill between the two leaves the last pair whole (it
    # used to replace last.safetensors and last.json in two renames, and a kill between them lost the run).
    weights = folder / f"last-{digest[:16]}.safetensors"
    last = checkpoint_tensors_path(out_dir)
    with atomic_paths([weights], overwrite=True) as (temp,):
        temp.write_bytes(data)
    # atomic_paths flushed them to the disk before a record names them (a power loss must not leave a record of
    # lost tensors), and flushes the folder's entries after the record
    try:
        with atomic_paths([meta], overwrite=True) as (temp,):
            # the record vouches for the tensors: a damaged file that still parses would resume on wrong weights
            temp.write_text(json.dumps(dict(state, weights_sha256=digest, weights_file=weights.name), indent=1))
    except BaseException:
        if weights != last:  # tensors no record names (a full disk had no room for the record)
            with contextlib.suppress(OSError):
                weights.unlink()
        raise
    for old in folder.glob("last*.safetensors"):  # the pair it replaced (or an uncommitted save's tensors)
        if old.name != weights.name:
            with contextlib.suppress(OSError):
                old.unlink()


def read_checkpoint_record(meta: Path) -> dict:
    """The checkpoint's JSON record, refused in one line when unreadable or without the fields a resume needs."""
    try:
        state = read_checkpoint_json(meta)
    except (OSError, JsonFileError) as error:
        # the OS's reason alone, as every message words it: not "[Errno 13] Permission denied: '<the same path>'"
        why = error.reason if isinstance(error, JsonFileError) else os_reason(error)
        raise TrainingError(f"{meta}: unreadable checkpoint record ({why}); start again with "
                            f"{setting('overwrite')}") from error
    import jsonschema

    # an integer here is a Python int: JSON Schema's integer also takes 3.0, which range() refuses
    whole = jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _, value: isinstance(value, int) and not isinstance(value, bool))
    validator = jsonschema.validators.extend(jsonschema.Draft202012Validator, type_checker=whole)(CHECKPOINT_SCHEMA)
    missing = [k for k in CHECKPOINT_SCHEMA["required"] if k not in state]
    error = jsonschema.exceptions.best_match(validator.iter_errors(state))
    if missing or error is not None:
        what = (f"it lacks {', '.join(missing)}" if missing else
                f"malformed {'.'.join(str(p) for p in error.path) or 'record'}")
        raise TrainingError(f"{meta}: cannot resume from this checkpoint record ({what}); start again with "
                            f"{setting('overwrite')}")
    return state


def check_weights_digest(weights: Path, recorded: str | None, record_name: str) -> None:
    """Refuse checkpoint weights whose SHA-256 is not the ``recorded`` one (None: a checkpoint from before it was
    recorded)."""
    if recorded is None:
        return
    try:
        digest = sha256_of(weights)
    except OSError as error:
        raise TrainingError(f"{weights}: cannot resume from this checkpoint ({os_reason(error)}); start "
                            f"again with {setting('overwrite')}") from error
    if recorded != digest:
        raise TrainingError(f"{weights}: damaged checkpoint (its SHA-256 is not the one {record_name} records); start "
                            f"again with {setting('overwrite')}")


def load_checkpoint(out_dir: Path, net: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    ema=None) -> tuple[dict, dict | None]:
    """Load the last checkpoint into ``net``, ``optimizer`` (and ``ema``): its record (the run's state) and the best
    weights so far, or None; a checkpoint of another architecture or a damaged one is a :class:`TrainingError`."""
    from safetensors.torch import load

    from medseg.inference import is_out_of_memory

    weights, meta = checkpoint_tensors_path(out_dir), checkpoint_record_path(out_dir)
    from medseg.package_weights import state_mismatch

    try:
        tensors = load(weights.read_bytes())
        model = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
        mismatch = state_mismatch({k: tuple(v.shape) for k, v in net.state_dict().items()},
                                  {k: tuple(v.shape) for k, v in model.items()})
        if mismatch:  # another architecture's weights: say which tensors differ, not torch's first line
            raise TrainingError(f"{weights}: cannot resume from this checkpoint: its weights are another "
                                f"architecture's ({mismatch}); start again with {setting('overwrite')}, or resume "
                                "with the config it was trained with")
        net.load_state_dict(model)
    except TrainingError:
        raise
    except Exception as error:  # missing, corrupt (safetensors' own error type)
        if is_out_of_memory(error):  # out of GPU memory is no damage: the caller names it
            raise
        first = first_line(error)
        raise TrainingError(f"{weights}: cannot resume from this checkpoint ({first}); start again with "
                            f"{setting('overwrite')}") from error
    state = read_checkpoint_record(meta)
    # the weights' SHA-256 was checked by check_resume, called just before on the claimed folder
    state.pop("weights_sha256", None)
    broken = next((k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())),
                  None)
    if broken is not None:
        raise TrainingError(f"{weights}: damaged checkpoint ({broken} holds NaN or infinite values); start again "
                            f"with {setting('overwrite')}")
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
        if is_out_of_memory(error):  # its moments placed on a full GPU: no damage, the caller names it
            raise
        raise TrainingError(f"{meta}: cannot resume from this checkpoint's optimizer state ({error}); start again "
                            f"with {setting('overwrite')}") from error
    return state, best


def record_package(out_dir: Path, state: dict, package_sha256: str) -> None:
    """The checkpoint says which package it made: a finished run resumed again has nothing left to do, and
    ``medseg infer`` does not warn of an unfinished run. With what this session changed even if it trained no epoch
    (a plan cut back to the epochs reached)."""
    meta = checkpoint_record_path(out_dir)
    kept = ("epochs_planned", "config", "data_sha256", "label_codes", "package_notes")
    record = {**read_checkpoint_json(meta), **{k: state[k] for k in kept if k in state},
              "package_sha256": package_sha256, "package_pending": False}
    with atomic_paths([meta], overwrite=True) as (temp,):
        temp.write_text(json.dumps(record, indent=1))


def record_codes(out_dir: Path, codes: dict | None) -> None:
    """Keep the checkpoint's record of the label codes in step with its finished package's (a package made again
    from the checkpoint gets these)."""
    meta = checkpoint_record_path(out_dir)
    record = read_checkpoint_json(meta)
    if (record.get("label_codes") or None) != (codes or None):
        record["label_codes"] = codes or None
        with atomic_paths([meta], overwrite=True) as (temp,):
            temp.write_text(json.dumps(record, indent=1))
