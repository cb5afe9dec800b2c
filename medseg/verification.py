"""Checking a segmentation's sidecar against the files it names: does this output come from this input and model?

A sidecar (``<stem>_seg.json``, schema ``medseg-segmentation/1``) records the SHA-256 of the segmentation, of the
input's content (as medseg hashes it: both files of a header / image pair, a DICOM series' files) and of the model's
weights and settings. :func:`verify_sidecar` hashes the files as they are now and compares, and with ``rerun``
segments the input again with the recorded settings and counts the voxels whose label differs.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from medseg.errors import InputError
from medseg.io.files import plain_name
from medseg.settings_named import ANY, setting

__all__ = ["Check", "Verification", "find_sidecars", "verify_sidecar"]

log = logging.getLogger(__name__)

SIDECAR_SCHEMA = "medseg-segmentation/1"


@dataclass
class Check:
    """One comparison: ``what`` was checked (``segmentation``, ``input``, ``model``, ``versions``, ``rerun``),
    ``ok`` whether it matched the record (None: not checked, ``text`` says why), ``text`` one line saying what was
    found; ``compared`` False where a failed check could not compare at all (a file not there or unreadable, a model
    that cannot be loaded, a rerun that could not run), True where it compared and found a difference."""

    what: str
    ok: bool | None
    text: str
    compared: bool = True


@dataclass
class Verification:
    """The checks of one sidecar, in order; ``differing_voxels`` where the input was segmented again."""

    sidecar: Path
    checks: list[Check] = field(default_factory=list)
    differing_voxels: int | None = None

    @property
    def ok(self) -> bool:
        """Whether no check failed (those not run do not count)."""
        return all(check.ok is not False for check in self.checks)

    @property
    def failed(self) -> list[str]:
        """What failed, in order."""
        return [check.what for check in self.checks if check.ok is False]

    @property
    def differs(self) -> bool:
        """Whether a check compared a file with the record and found it differs (the files changed)."""
        return any(check.ok is False and check.compared for check in self.checks)

    @property
    def segmentation_checked(self) -> bool:
        """Whether the segmentation file was compared with a recorded SHA-256 (a sidecar of medseg before 2026-12-02
        records none: its other checks may all match while the segmentation file was not checked)."""
        return any(check.what == "segmentation" and check.ok is not None for check in self.checks)


def _file_changes(folder: Path, recorded: dict, series: str | None, copies: dict | None = None):
    """The recorded files of a DICOM series (``input_info.file_sha256``) against ``folder`` now: the names of those
    that changed and of those not there, the renamed ones as ``(recorded, now)`` (a file not there whose digest is
    that of a file the series holds now and does not record), the series' files now that it does not record, and
    whether the series can be read now (its files listed); and the names of the recorded files there whose reading
    fails (permission denied, an I/O error): not compared. ``copies`` (``input_info.copy_files``): the files the
    folder held when it was segmented, skipped as copies of a recorded one; such a file read now in place of its
    recorded one, gone since, is no rename: that one is told not there, its copy named (``02.dcm: its copy
    02_copy.dcm read in its place (the folder held both when segmented)``)."""
    changed, gone, unread, kept = [], [], [], set()
    for name, digest in recorded.items():
        path = _recorded_file(folder, str(name))
        if path is None:
            gone.append(str(name))
            continue
        kept.add(os.path.realpath(path))
        found = _digest(path)
        if found is None:
            unread.append(str(name))
        elif found != digest:
            changed.append(str(name))
    now = _series_files(folder, series)
    added = [(path, name) for path, name in now or () if os.path.realpath(path) not in kept]
    renamed = []
    if gone and added:  # a file renamed keeps its bytes: its digest names it
        copies = {str(copy): str(original) for copy, original in (copies or {}).items()}
        by_digest: dict[str, list[str]] = {}
        in_place: dict[str, str] = {}  # a recorded file gone -> its copy, there when segmented, read now
        for path, name in added:
            copied = next((original for copy, original in copies.items() if _same_name(copy, name)), None)
            if copied is None:
                by_digest.setdefault(_digest(path), []).append(name)
            elif copied in gone and _digest(path) == recorded[copied]:
                in_place.setdefault(copied, name)
        for name in list(gone):
            if name in in_place:
                gone[gone.index(name)] = (f"{name}: its copy {in_place[name]} read in its place (the folder held both "
                                          "when segmented)")
            elif by_digest.get(recorded[name]):
                renamed.append((name, by_digest[recorded[name]].pop(0)))
                gone.remove(name)
        taken = {new for _, new in renamed} | set(in_place.values())
        added = [(path, name) for path, name in added if name not in taken]
    return changed, gone, renamed, [name for _, name in added], now is not None, unread


def _same_name(recorded: str, name: str) -> bool:
    """Whether ``name``, a file's path relative to the folder checked, is the one a sidecar records relative to the
    folder segmented (``a/0003.dcm``, ``0003.dcm`` in a copy of the series' own folder: as :func:`_recorded_file`
    finds it)."""
    return recorded == name or recorded.endswith(f"/{name}")


def _digest(path: Path) -> str | None:
    """The SHA-256 of the file ``path``; None where reading it fails (permission denied, an I/O error)."""
    from medseg.io.atomic import sha256_of

    try:
        return sha256_of(path)
    except OSError:
        return None


def _listed(names: list[str], what: str, shown: int = 3) -> str:
    """``2 changed (a.dcm, b.dcm)``: how many, and the first ``shown`` of them and how many more."""
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return f"{len(names)} {what} ({', '.join(names[:shown])}{more})"


def _renamed(pairs: list[tuple[str, str]]) -> list[str]:
    return [f"{old} → {new}" for old, new in pairs]


def _changed_files(folder: Path, info: dict, series: str | None = None,
                   recorded_sha256: str | None = None) -> tuple[str, bool]:
    """For a DICOM series whose sidecar names its files' digests (``input_info.file_sha256``): which of them changed,
    are not there now or were renamed (recognised by their digest), and which files the series holds now that it does
    not record (``: of its 35 recorded files, 1 changed (a.dcm), 1 renamed (b.dcm → c.dcm); 1 file added
    (d.dcm)``): the first three of each, and how many more. Where none differs, the recorded ``input_sha256`` is not
    that of the recorded files (``recorded_sha256``), or the recorded ``series_uid`` not theirs: a hand edit. With
    whether a difference was found (a file changed, gone, renamed or added, or the sidecar edited)."""
    from medseg.io.dicom_series import SeriesUID

    recorded = info.get("file_sha256")
    if not isinstance(recorded, dict) or not recorded or not folder.is_dir():
        return "", False
    changed, gone, renamed, added, readable, unread = _file_changes(folder, recorded, series, info.get("copy_files"))
    parts = [_listed(names, what) for names, what in ((changed, "changed"), (gone, "not there"),
                                                     (_renamed(renamed), "renamed"), (unread, "not readable"))
             if names]
    text = (f": of its {len(recorded)} recorded files, " + ", ".join(parts) if parts else
            f": its {len(recorded)} recorded files are as they were")
    if added:
        return text + "; " + _listed(added, "file added" if len(added) == 1 else "files added"), True
    if not parts and readable and recorded_sha256 != _combined_sha256(recorded.values()):
        return text + (" and the series holds no other: the sidecar's input_sha256 is not that of the files it "
                       f"records; {_EDITED}"), True
    if not parts and isinstance(series, SeriesUID) and not _holds_uid(folder, series):
        return text + f", and none is of the series_uid the sidecar records; {_EDITED}", True
    if not parts:
        return text + ": files were added to the series", True  # none found now (the series cannot be read): unnamed
    return text, bool(changed or gone or renamed)  # files not readable alone: not compared


def _nifti_bytes_differ(source: Path, recorded_sha256: str) -> tuple[str, bool]:
    """For an input that cannot be read as an image now: where it is a NIfTI (``.nii``, ``.nii.gz``: one file, whose
    bytes are what ``input_sha256`` hashes) whose bytes are not the recorded ones (cut short, overwritten), what to
    add to its line and True: the file changed; else ``""`` and False (its bytes as recorded, a reading warning made
    an error; another format, whose hash may take more files than this one: not compared)."""
    from medseg.io.atomic import sha256_of

    if not source.name.lower().endswith((".nii", ".nii.gz")):
        return "", False
    try:
        found = sha256_of(source)
    except OSError:
        return "", False
    if found == recorded_sha256:
        return "", False
    return (f"; SHA-256 {_short(found)}, the sidecar records {_short(recorded_sha256)}: not the input segmented",
            True)


def _holds_uid(folder: Path, uid: str) -> bool:
    """Whether a series in ``folder`` has the SeriesInstanceUID ``uid``."""
    from medseg.errors import MedsegError
    from medseg.io.dicom_series import scan_folder

    try:
        return any(candidate.uid == uid for candidate in scan_folder(folder, warn_skipped=False).candidates)
    except (MedsegError, OSError):
        return True  # cannot tell: not said to be edited


def _matching_series(folder: Path, info: dict, series: str | None, recorded_sha256: str) -> tuple[bool, str]:
    """For a DICOM series that matches its recorded ``input_sha256``: whether the sidecar's per-file digests
    (``input_info.file_sha256``) agree with it, and what to add to the input's line: the files whose recorded digest
    is not theirs (a hand edit of the sidecar, which the series' SHA-256 alone does not show), or the files renamed
    since (the same bytes under another name: the input is as segmented)."""
    from medseg.io.atomic import sha256_of

    recorded = info.get("file_sha256")
    if not isinstance(recorded, dict) or not recorded or not folder.is_dir():
        return True, ""
    if _combined_sha256(recorded.values()) != recorded_sha256:
        wrong = []
        for name, digest in recorded.items():
            path = _recorded_file(folder, str(name))
            if path is None or sha256_of(path) != digest:
                wrong.append(str(name) if path is None else f"{name} recorded as {_short(digest)}, its SHA-256 "
                             f"{_short(sha256_of(path))}")
        named = f" ({'; '.join(wrong[:3])}{f' and {len(wrong) - 3} more' if len(wrong) > 3 else ''})" if wrong else ""
        return False, (f"; but the sidecar's input_info.file_sha256 is not that of the series' files{named}; "
                       f"{_EDITED}")
    if all(_recorded_file(folder, str(name)) is not None for name in recorded):
        return True, ""
    _, gone, renamed, _, _, _ = _file_changes(folder, recorded, series, info.get("copy_files"))
    told = [_listed(_renamed(renamed), "file renamed" if len(renamed) == 1 else "files renamed")] if renamed else []
    if gone:  # its bytes read from a copy the folder held (the series' SHA-256 matches): not there, the copy named
        told.append(_listed(gone, "recorded file not there" if len(gone) == 1 else "recorded files not there"))
    return True, "".join(f"; {text}" for text in told)


def _unread_reason(source: Path, series: str | None) -> str | None:
    """Why the input ``source``, which is there, cannot be hashed as medseg hashes it: the reader's one line (a
    folder that no longer holds the recorded series, its files replaced by another export; an image's header refused,
    or its reading warning made an error by ``python -W error``); None where no reason is found (said apart)."""
    from medseg.errors import MedsegError
    from medseg.io.dicom_series import choose_series, scan_folder
    from medseg.io.files import is_dicom_file
    from medseg.io.nifti import files_read

    try:
        if source.is_dir():
            choose_series(scan_folder(source, warn_skipped=False), series)
        elif not is_dicom_file(source):
            files_read(source)  # the header alone, as the hash reads it
    except MedsegError as error:
        return str(error)
    except OSError:
        return None
    return None


def _combined_sha256(digests) -> str | None:
    """A series' SHA-256 from its files' (hex), as medseg combines them (:func:`medseg.io.dicom.series_sha256`)."""
    from medseg.io.dicom import _combined

    try:
        return _combined([bytes.fromhex(str(digest)) for digest in digests])
    except ValueError:
        return None


def _series_files(folder: Path, series: str | None) -> list[tuple[Path, str]] | None:
    """The files of the series ``folder`` holds now, as the input check hashed them, each with its path relative to
    ``folder`` (``/`` between folders), sorted by it; None where the folder holds no such series now."""
    from medseg.errors import MedsegError
    from medseg.io.dicom_series import choose_series, scan_folder

    try:
        candidate, _ = choose_series(scan_folder(folder, warn_skipped=False), series)
    except (MedsegError, OSError):
        return None
    found = []
    for path in candidate.files:
        try:
            name = Path(path).relative_to(folder).as_posix()
        except ValueError:
            name = str(path)
        found.append((Path(path), name))
    return sorted(found, key=lambda each: each[1])


def _recorded_file(folder: Path, name: str) -> Path | None:
    """A file a sidecar names relative to the folder segmented (``a/0003.dcm`` of a study folder), in ``folder``: at
    that path, else at its end (``0003.dcm``), as in a copy of the series' own folder given with ``--input``."""
    parts = PurePosixPath(name).parts
    for start in range(len(parts)):
        path = folder.joinpath(*parts[start:])
        if path.is_file():
            return path
    return None


def _naming(path, text: str) -> str:
    """``text`` as a check's line naming ``path`` once: ``<path>: <text>``, or ``text`` with the name it gives taken
    out where it names the file itself (a reader's error: ``seg.nii.gz: truncated header ...``); ``text`` as it is
    where it begins with a file in the folder ``path`` (``pkg/model.json: not valid JSON``), which names it. A file
    ``path`` named again within the text (nibabel's own words, which the reader's error wraps: ``Cannot work out file
    type of "bad.nii"``, ``got 6400 bytes from cut.nii.gz``) is taken out there; a name that a sentence may hold as a
    word (no ``.`` and no folder: a DICOM slice ``its``, a file ``image``) only where it is quoted, so that ``give the
    folder of its series`` keeps its words."""
    name = str(path)
    for lead in (f"{name}: ", f"{os.path.abspath(name)}: "):
        text = text.replace(f": {lead}", ": ", 1) if f": {lead}" in text else text
        if text.startswith(lead):
            text = text[len(lead):]
    if text.startswith(tuple(os.path.join(folder, "") for folder in (name, os.path.abspath(name)))):
        return text
    if os.path.isfile(name):  # a file named again within, as nibabel's own message does: the line names it already
        for form in dict.fromkeys((name, os.path.abspath(name), os.path.realpath(name))):
            quote = "[\"']" if _word_like(form) else "[\"']?"
            text = re.sub(rf"\s+(?:of|from|in)\s+({quote}){re.escape(form)}\1(?=[\s),;]|$)", "", text)
    return f"{name}: {text}"


def _word_like(name: str) -> bool:
    """Whether the path ``name`` could be a word of a sentence (``its``, ``image``, ``IM0001``): no ``.`` and no
    folder in it, as a file medseg names in its messages may have (``scan.nii.gz``, ``out/scan``) and a word has not."""
    return "." not in name and not any(separator in name for separator in (os.sep, os.altsep) if separator)


def _short(sha256: str | None) -> str:
    return f"{sha256[:12]}…" if isinstance(sha256, str) else "none recorded"


SIDECAR_ENDING = "_seg.json"


def find_sidecars(folder: Path | str) -> list[Path]:
    """The segmentation sidecars (``*_seg.json``, hidden files and folders aside: a checkout's ``.venv``, ``.git``,
    ``.snakemake``) in ``folder`` and under it, sorted: a batch's
    output folder, or a cohort's results folder (``cases/<id>/<id>_seg.json``). Links to folders are followed, each
    folder read once. A folder here that cannot be listed is an :class:`~medseg.errors.InputError` naming it (a
    sidecar in it would go unchecked), and so is ``folder`` holding none."""
    from medseg.io.files import os_reason

    folder = Path(folder)

    def refuse(error: OSError) -> None:  # os.walk passes over a folder it cannot list, in silence
        where = error.filename if error.filename is not None else folder
        raise InputError(f"{where}: cannot read ({os_reason(error)}); the sidecars in it cannot be checked") from error

    found: list[Path] = []
    seen: set[str] = set()
    for where, subfolders, files in os.walk(folder, followlinks=True, onerror=refuse):
        real = os.path.realpath(where)
        if real in seen:  # a link to a folder reached another way, or a loop of links
            subfolders[:] = []
            continue
        seen.add(real)
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        found += [Path(where) / name for name in files
                  if name.endswith(SIDECAR_ENDING) and not name.startswith(".")]
    if not found:
        raise InputError(f"{folder}: no sidecar found in this folder or under it (looked for *{SIDECAR_ENDING}, the "
                         "sidecars medseg infer writes)")
    return sorted(found)


def read_sidecar(path: Path | str) -> dict:
    """The sidecar at ``path``; one that is not there (said so, not that it cannot be read), not a file, not JSON or
    not a segmentation sidecar (a metrics record given in its place) is an :class:`~medseg.errors.InputError` naming
    the file."""
    from medseg.jsonfile import RESULT_BYTES, read_json_object

    path = Path(path)
    try:
        record = read_json_object(path, RESULT_BYTES, "a segmentation sidecar")
    except FileNotFoundError:  # a mistyped path is no sidecar that cannot be read: said not to exist
        from medseg.io.files import not_there

        expected = "no such file or folder (give a sidecar, the _seg.json medseg infer wrote, or a folder of them)"
        raise InputError(f"{path}: {not_there(path, expected)}") from None
    except OSError as error:
        raise InputError(f"{path}: cannot read the sidecar ({error.strerror or error})") from None
    schema = record.get("schema")
    if schema != SIDECAR_SCHEMA:
        raise InputError(f"{path}: not a segmentation sidecar (schema {schema!r}, not {SIDECAR_SCHEMA!r}); give the "
                         "_seg.json that medseg infer wrote beside the segmentation")
    # segmentation_sha256 may be left out: medseg recorded it from 2026-12-02 on (its earlier sidecars are checked)
    for key in ("segmentation", "input", "input_sha256", "model"):
        if key not in record:
            raise InputError(f"{path}: the sidecar has no {key!r}; it was not written whole by medseg infer")
    _check_fields(path, record)
    return record


_EDITED = "the sidecar was edited or damaged since medseg infer wrote it"
_SHA256 = re.compile(r"[0-9a-f]{64}")
_NOT_SHA256 = "not a SHA-256 in hex (64 of 0-9 and a-f)"
# each field verify reads, and the JSON type it must have (None: it may be null or left out)
_FIELDS = (("segmentation", str, False), ("segmentation_sha256", "sha256", False), ("input", str, False),
           ("input_sha256", "sha256", False), ("model", dict, False), ("input_info", dict, True),
           ("modalities", list, True), ("versions", dict, True), ("platform", dict, True), ("inference", dict, True))


def _check_fields(path: Path, record: dict) -> None:
    """Refuse a sidecar whose fields verify reads are not of the types medseg infer writes (a hand edit, a damaged
    copy) in one line naming the field, as ``the segmentation`` or ``input_info.file_sha256`` naming a file outside
    the folder they are read in (``../x``, an absolute path): such a file is never opened."""
    for key, kind, optional in _FIELDS:
        value = record.get(key)
        if (optional and value is None) or (key == "segmentation_sha256" and key not in record):
            continue
        if kind == "sha256":
            if not isinstance(value, str) or not _SHA256.fullmatch(value):
                raise InputError(f"{path}: {key} is {_json_kind(value, True)}, {_NOT_SHA256}; {_EDITED}")
        elif not isinstance(value, kind):
            wanted = {str: "a file name" if key == "segmentation" else "a path", dict: "an object", list: "a list"}
            raise InputError(f"{path}: {key} is {_json_kind(value)}, not {wanted[kind]}; {_EDITED}")
    for key, optional in (("weights_sha256", False), ("settings_sha256", True)):
        value = record["model"].get(key)
        if not (optional and value is None) and (not isinstance(value, str) or not _SHA256.fullmatch(value)):
            raise InputError(f"{path}: model.{key} is {_json_kind(value, True)}, {_NOT_SHA256}; {_EDITED}")
    name = record["segmentation"]
    if not plain_name(name):
        raise InputError(f"{path}: segmentation is {name!r}, not the name of a file beside the sidecar; {_EDITED}")
    copies = (record.get("input_info") or {}).get("copy_files")  # compared by name only: never opened
    if copies is not None and not isinstance(copies, dict):
        raise InputError(f"{path}: input_info.copy_files is {_json_kind(copies)}, not an object; {_EDITED}")
    for copy, original in (copies or {}).items():
        if not _inside(copy) or (isinstance(original, str) and not _inside(original)):
            shown = original if _inside(copy) else copy
            raise InputError(f"{path}: input_info.copy_files names {shown!r}, not a file in the series folder; "
                             f"{_EDITED}")
        if not isinstance(original, str):  # the entry's value, not its name, is what was edited
            raise InputError(f"{path}: input_info.copy_files gives {copy!r} {_json_kind(original)}, not the name of "
                             f"a file in the series folder; {_EDITED}")
    channels = (record.get("input_info") or {}).get("channel_sha256")
    if channels is not None and not isinstance(channels, dict):
        raise InputError(f"{path}: input_info.channel_sha256 is {_json_kind(channels)}, not an object; {_EDITED}")
    for name, digest in (channels or {}).items():  # compared by their place in the channel order: never opened
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise InputError(f"{path}: input_info.channel_sha256 gives {name!r} {_json_kind(digest, True)}, "
                             f"{_NOT_SHA256}; {_EDITED}")
    digests = (record.get("input_info") or {}).get("file_sha256")
    if digests is None:
        return
    if not isinstance(digests, dict):
        raise InputError(f"{path}: input_info.file_sha256 is {_json_kind(digests)}, not an object; {_EDITED}")
    for entry, digest in digests.items():
        if not _inside(entry):
            raise InputError(f"{path}: input_info.file_sha256 names {entry!r}, not a file in the series folder; "
                             f"{_EDITED}")
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
            raise InputError(f"{path}: input_info.file_sha256 gives {entry!r} {_json_kind(digest, True)}, "
                             f"{_NOT_SHA256}; {_EDITED}")


def _json_kind(value, shown: bool = False) -> str:
    """What a JSON value is, in words (``a list``, ``null``); a string itself where ``shown``, a long one by its
    start and length (``'ABCDEF012345…' (64 characters)``)."""
    if value is None:
        return "null"
    if shown and isinstance(value, str):
        return repr(value) if len(value) <= 24 else f"{value[:12]!r}… ({len(value)} characters)"
    kinds = ((bool, "true or false"), (str, "a string"), ((int, float), "a number"), (list, "a list"),
             (dict, "an object"))
    return next(text for kind, text in kinds if isinstance(value, kind))


def _inside(name: str) -> bool:
    """Whether ``name`` is a path relative to a folder and within it, as medseg records a series' files
    (``a/0003.dcm``): no absolute path or ``..``; on Windows no drive or ``\\`` either."""
    parts = name.split("/")
    return all(plain_name(part) for part in parts)


# the warnings told within the verify_sidecar call running in this thread (None outside one)
_TOLD: ContextVar[set[str] | None] = ContextVar("medseg_verify_told", default=None)


class _FirstOfEachWarning(logging.Handler):
    """In place of the ``medseg`` logger's handlers (``handlers``, and with ``propagate`` the root logger's): hands
    them each record but a warning told already within the :func:`_each_warning_once` block of its thread."""

    def __init__(self, handlers: list[logging.Handler], propagate: bool) -> None:
        super().__init__()
        self.handlers, self.propagate = list(handlers), propagate

    def emit(self, record: logging.LogRecord) -> None:
        told = _TOLD.get()
        if told is not None and record.levelno == logging.WARNING:
            if record.getMessage() in told:
                return
            told.add(record.getMessage())
        for handler in self.handlers + (logging.getLogger().handlers if self.propagate else []):
            if record.levelno >= handler.level:
                handler.handle(record)


_FORWARDING: dict = {"blocks": 0, "kept": None}  # the blocks open in all threads; the logger's handlers they replaced
_FORWARDING_LOCK = threading.Lock()


@contextmanager
def _each_warning_once() -> Iterator[None]:
    """Within the block, each distinct warning of medseg's loggers is told once: verify looks at an input more than
    once (its hash, the files that changed, a rerun's reading), and each look's reading told its warnings again (a
    series' copy of a file, three times). The ``medseg`` logger's handlers are replaced while any thread is in such a
    block; each thread's block keeps its own warnings told."""
    medseg_log = logging.getLogger("medseg")
    with _FORWARDING_LOCK:
        if _FORWARDING["blocks"] == 0:
            _FORWARDING["kept"] = (medseg_log.handlers, medseg_log.propagate)
            medseg_log.handlers = [_FirstOfEachWarning(medseg_log.handlers, medseg_log.propagate)]
            medseg_log.propagate = False
        _FORWARDING["blocks"] += 1
    token = _TOLD.set(set())
    try:
        yield
    finally:
        _TOLD.reset(token)
        with _FORWARDING_LOCK:
            _FORWARDING["blocks"] -= 1
            if _FORWARDING["blocks"] == 0:
                medseg_log.handlers, medseg_log.propagate = _FORWARDING["kept"]
                _FORWARDING["kept"] = None


@_each_warning_once()  # each call a block of its own: a reading's warning told once per sidecar
def verify_sidecar(sidecar: Path | str, input_path: Path | str | None = None, model: str | os.PathLike | None = None,
                   rerun: bool = False, device: str = "cpu", threads: int | None = None) -> Verification:
    """Check the files a segmentation sidecar names against its record.

    * the segmentation beside the sidecar against ``segmentation_sha256``;
    * the input (``input_path``, else the path the sidecar records) against ``input_sha256``, hashed as medseg hashes
      it when it reads it (a DICOM folder: the recorded series' files, found by the recorded UID alone; their recorded
      digests, ``input_info.file_sha256``, against them too: files changed, gone, renamed or added are named; nnU-Net's
      channel files of a case, each against ``input_info.channel_sha256``: one changed or gone is named, the others
      compared all the same);
    * the model (``model``: a shipped model's name or a package folder; else the recorded ``model.path``, else its
      name) against the recorded weights' and settings' SHA-256;
    * the versions of medseg and its libraries, and the platform (Python, system, CPU and its instruction set), now
      against the recorded ones (a difference is told, not failed: another release or CPU may give other labels, and
      ``rerun`` says whether it does);
    * with ``rerun``, the input segmented again in memory on ``device`` with the recorded precision, tile overlap
      and batch size, and with ``threads`` (default: the recorded ``cpu_threads``), and compared voxel by voxel with
      the segmentation (``differing_voxels``; a DICOM SEG output, ``--format dicom-seg``, read back onto its
      series' grid).

    A sidecar that cannot be read is an :class:`~medseg.errors.InputError`, and so is an ``input_path`` that is not
    there (a path mistyped: nothing is checked); a file that is missing or differs is a failed :class:`Check`, not an
    error (``compared`` False for one that could not be compared: the input the sidecar records gone; ``differs``
    of the result says whether a file was found changed). A warning of reading a file is told once, however often
    the checks read it."""
    from medseg.cohort.records import content_sha256, input_files, unavailable
    from medseg.io.atomic import sha256_of
    from medseg.io.seg_volume import find_recorded_source, recorded_series

    sidecar = Path(sidecar)
    record = read_sidecar(sidecar)
    result = Verification(sidecar)
    if input_path is not None:
        _given_input(input_path, sidecar)

    segmentation = sidecar.parent / str(record["segmentation"])
    if not segmentation.is_file():
        from medseg.io.files import not_there

        # a link whose target moved is named with where it leads, as the report and the input's line name it
        why = not_there(segmentation, "").removeprefix("; ")
        result.checks.append(Check("segmentation", False, f"{segmentation}: not there{f' ({why})' if why else ''}",
                                   compared=False))
    elif "segmentation_sha256" not in record:
        result.checks.append(Check("segmentation", None, f"{segmentation}: the sidecar records no segmentation_sha256 "
                                   "(written by medseg before 2026-12-02): not compared; "
                                   f"{setting('rerun')} compares its voxels"))
    else:
        try:
            found = sha256_of(segmentation)
        except OSError as error:  # there, and its reading fails (permission denied, an I/O error): not compared
            from medseg.io.files import os_reason

            found = None
            result.checks.append(Check("segmentation", False, f"{segmentation}: cannot read ({os_reason(error)})",
                                       compared=False))
        if found is not None:
            same = found == record["segmentation_sha256"]
            result.checks.append(Check("segmentation", same, f"{segmentation}: " + (
                f"matches segmentation_sha256 ({_short(found)})" if same else
                f"SHA-256 {_short(found)}, the sidecar records {_short(record['segmentation_sha256'])}: "
                "changed since medseg wrote it")))

    # a relative path (sidecars before medseg recorded absolute ones): tried here, beside the sidecar and above it
    source = Path(input_path) if input_path is not None else \
        find_recorded_source(sidecar, str(record["input"])) or Path(str(record["input"]))
    info = record.get("input_info") or {}
    # the series' UID, or its key where that does not single it out (none, or one shared by a split series' parts)
    series = recorded_series(record) if info.get("format") == "dicom" else None
    modalities = len(record.get("modalities") or []) or 1
    files = input_files(source, modalities)  # nnU-Net's channel files of a case_0000 input, else the input alone
    absent = next((file for file in files if not os.path.exists(file)), None)
    found = content_sha256(source, series, modalities) if absent is None and len(files) == 1 else None
    named = source if len(files) == 1 else f"{source} (channel files {', '.join(file.name for file in files)})"
    missing = _unread_reason(source, series) if found is None and absent is None and len(files) == 1 else None
    if len(files) > 1:  # each channel file against its recorded SHA-256, where the sidecar records them
        result.checks.append(_channels_check(files, info, record["input_sha256"], named, input_path is None))
    elif missing is not None:  # the input is there, and cannot be hashed: the reader's reason, a series' files
        changed, differs = _changed_files(source, info, series, record["input_sha256"]) if source.is_dir() else \
            ("", False)
        if differs and unavailable(source):  # emptied (a share not mounted, its files dropped): not there, as a
            differs = False  # folder gone is; not a series found changed
        elif not source.is_dir():  # a NIfTI no longer read as one: its bytes, which input_sha256 hashes, may differ
            changed, differs = _nifti_bytes_differ(source, record["input_sha256"])
        result.checks.append(Check("input", False, _naming(source, missing)
                                   + (changed.replace(": ", "; ", 1) if source.is_dir() else changed),
                                   compared=differs))
    elif found is None:
        absent = absent if absent is not None else source
        elsewhere = input_path is None and absent == source
        result.checks.append(Check("input", False, _not_compared(absent)
                                   + (f"; give its copy with {setting('input_path', ANY)}" if elsewhere else ""),
                                   compared=False))
    else:
        same, added = found == record["input_sha256"], ""
        if same and source.is_dir():  # its files' recorded digests, which the series' SHA-256 does not cover
            same, added = _matching_series(source, info, series, record["input_sha256"])
        result.checks.append(Check("input", same, f"{named}: " + (
            f"matches input_sha256 ({_short(found)}){added}" if found == record["input_sha256"] else
            f"SHA-256 {_short(found)}, the sidecar records {_short(record['input_sha256'])}: not the input segmented"
            + _changed_files(source, info, series, record["input_sha256"])[0])))

    package = _model_check(record, model, result)
    _versions_check(record, device, result)
    if rerun:
        _rerun(record, source, series, segmentation, package, device, threads, result)
    return result


_CHANNEL_DIGESTS_FROM = "2026-12-08"  # the day medseg infer began to record input_info.channel_sha256


def _channels_check(files: list[Path], info: dict, recorded_sha256: str, named: str, elsewhere: bool) -> Check:
    """The input check of nnU-Net's channel files of one case (``files``, in channel order, as found now): the
    case's SHA-256 against ``input_sha256``, and each file's against the sidecar's ``input_info.channel_sha256`` (the
    file of a channel by its place in the order: a copy of the case under another name, given with ``--input``, is
    compared too). The files that changed, are not there or cannot be read are named, and the others compared all the
    same: a file changed is a difference found, though another is not there. A sidecar from before the files' own
    digests were recorded (:data:`_CHANNEL_DIGESTS_FROM`) is checked as the case's SHA-256 alone, its line saying what
    that cannot tell. ``elsewhere``: the input is the path the sidecar records (none given), which a copy may stand
    for."""
    from medseg.io.channels import channel_digests

    whole, now = channel_digests(files)
    recorded = info.get("channel_sha256")
    if not recorded:  # a sidecar from before: the case's SHA-256 alone
        older = f"the sidecar records no SHA-256 per channel file (written by medseg before {_CHANNEL_DIGESTS_FROM})"
        if whole is None:
            file = next(file for file, digest in zip(files, now) if digest is None)
            hint = f"; give its copy with {setting('input_path', ANY)}" if elsewhere and file == files[0] else ""
            return Check("input", False, f"{_not_compared(file)}; {older}, so the other channel files are not "
                         f"compared either{hint}", compared=False)
        if whole == recorded_sha256:
            return Check("input", True, f"{named}: matches input_sha256 ({_short(whole)})")
        return Check("input", False, f"{named}: SHA-256 {_short(whole)}, the sidecar records "
                     f"{_short(recorded_sha256)}: not the input segmented; {older}: which one changed is not known")
    digests = list(recorded.values())
    changed, gone, unread, same, added = [], [], [], [], []
    for index, (file, digest) in enumerate(zip(files, now)):
        if index >= len(digests):
            added.append(file.name)
        elif digest is None:
            (unread if os.path.exists(file) else gone).append(file.name)
        else:
            (same if digest == digests[index] else changed).append(file.name)
    gone += list(recorded)[len(files):]  # recorded, and no file in their place now
    parts = ", ".join(_listed(names, what) for names, what in ((changed, "changed"), (gone, "not there"),
                                                                (unread, "not readable")) if names)
    of = f"of its {len(digests)} recorded channel files"
    more = f"; {_listed(added, 'file added' if len(added) == 1 else 'files added')}" if added else ""
    if whole is None:  # a file not there or not readable: the case is not compared whole, its files are
        if changed:
            return Check("input", False, f"{named}: not the input segmented: {of}, {parts}{more}")
        hint = f"; give its copy with {setting('input_path', ANY)}" if elsewhere and not same else ""
        kept = f", {_listed(same, 'as recorded')}" if same else ""
        return Check("input", False, f"{named}: {of}, {parts}{kept}: not compared whole{more}{hint}", compared=False)
    if whole == recorded_sha256:
        if not changed:
            return Check("input", True, f"{named}: matches input_sha256 ({_short(whole)})")
        wrong = [f"{file.name} recorded as {_short(recorded_digest)}, its SHA-256 {_short(digest)}"
                 for file, digest, recorded_digest in zip(files, now, digests) if digest != recorded_digest]
        return Check("input", False, f"{named}: matches input_sha256 ({_short(whole)}); but the sidecar's "
                     f"input_info.channel_sha256 is not that of the channel files ({'; '.join(wrong)}); {_EDITED}")
    text = (f"{named}: SHA-256 {_short(whole)}, the sidecar records {_short(recorded_sha256)}: not the input "
            "segmented: ")
    if parts:
        return Check("input", False, f"{text}{of}, {parts}{more}")
    if added:
        return Check("input", False, f"{text}its {len(digests)} recorded channel files are as they were{more}")
    return Check("input", False, f"{text}its {len(digests)} recorded channel files are as they were and the case "
                 f"has no other: the sidecar's input_sha256 is not that of the files it records; {_EDITED}")


def _given_input(path: Path | str, sidecar: Path) -> None:
    """Refuse an input given to check ``sidecar`` against that is not there (a path mistyped) in one line naming it,
    before any check: a mistake of the caller's, not a check of the sidecar that could not be made, as the input the
    sidecar records gone is. One that is there but cannot be looked at (a folder on its way without search
    permission) is left to the input check, which says so."""
    from medseg.cohort.records import cannot_look_at
    from medseg.io.files import not_there

    if not os.path.exists(path) and cannot_look_at(path) is None:
        raise InputError(f"{path}: {not_there(path)} ({setting('input_path', ANY)}: the input to check {sidecar} "
                         "against); nothing was checked")


def _not_compared(path: Path) -> str:
    """The input check's line for an input (or one of its channel files) that could not be hashed: not there (and
    why: a link that leads nowhere, ...), or there and not readable; not compared either way."""
    from medseg.cohort.records import cannot_look_at
    from medseg.io.files import not_there

    cannot = cannot_look_at(path)
    if cannot is None and not os.path.exists(path):
        return f"{path}: not there ({not_there(path)}), so not compared"
    return f"{path}: cannot read{f' ({cannot})' if cannot else ''}, so not compared"


def _model_check(record: dict, model, result: Verification):
    """Load the model and compare its hashes with the record; the package, or None where it failed."""
    from medseg.errors import MedsegError
    from medseg.package import load_package

    recorded = record["model"] if isinstance(record["model"], dict) else {}
    given = model if model is not None else recorded.get("path") or recorded.get("name")
    if model is None and recorded.get("path") and not Path(str(recorded["path"])).is_dir():
        given = recorded.get("name")  # the package folder moved (another install): the shipped model of that name
    if not given:
        result.checks.append(Check("model", False,
                                   f"the sidecar names no model; give one with {setting('model', ANY)}",
                                   compared=False))
        return None
    try:
        package = load_package(given)
    except MedsegError as error:
        result.checks.append(Check("model", False, _naming(given, str(error)), compared=False))
        return None
    weights, settings = recorded.get("weights_sha256"), recorded.get("settings_sha256")
    problems = []
    if package.sha256 != weights:
        problems.append(f"weights {_short(package.sha256)}, the sidecar records {_short(weights)}")
    if settings is not None and package.settings_sha256 != settings:
        problems.append(f"settings {_short(package.settings_sha256)}, the sidecar records {_short(settings)}")
    as_recorded = (f"weights {_short(weights)} and settings {_short(settings)} as recorded" if settings is not None
                   else f"weights {_short(weights)} as recorded (the sidecar records no settings_sha256)")
    text = (f"model {package.name} ({package.path}): " + ("; ".join(problems) + ": not the model that segmented it"
            if problems else as_recorded))
    result.checks.append(Check("model", not problems, text))
    return package


def _versions_check(record: dict, device: str, result: Verification) -> None:
    """The versions and platform now (the platform of ``device``, which a rerun uses) against the recorded ones."""
    from medseg.segment import versions

    recorded = record.get("versions") or {}
    info = record.get("input_info") if isinstance(record.get("input_info"), dict) else {}
    # a DICOM input's as infer records them: pydicom, and for compressed pixel data the decoders it has for the syntax
    now = versions(str(info.get("transfer_syntax") or "") if "pydicom" in recorded else None)
    differ = [f"{key} {recorded[key]} (now {now.get(key, 'none')})" for key in recorded
              if key in now and str(recorded[key]) != str(now[key])]
    if "medseg_commit" in recorded and "medseg_commit" not in now:
        differ.append(f"medseg_commit {recorded['medseg_commit']} (now not run from a checkout)")
    ran_on = record.get("platform") if isinstance(record.get("platform"), dict) else {}
    if ran_on:  # the CPU's instruction set decides torch's kernels; sidecars written before it was recorded: none
        from medseg.platform_record import platform_record

        # compared with the device a rerun here uses: a GPU's sidecar checked on a machine without one has none
        recorded_device = str(record.get("device") or "cpu")
        if recorded_device.split(":")[0] != _device_here(device).split(":")[0]:
            differ.append(f"device {recorded_device} (here {_device_here(device)})")
        here = platform_record(_device_here(device))
        differ += [f"{key} {ran_on[key]} (here {here.get(key, 'none')})" for key in ran_on
                   if str(ran_on[key]) != str(here.get(key))]
    if differ:
        text = ("versions or platform differ: " + ", ".join(differ) + f"; re-segment with {setting('rerun')} to see "
                "whether the labels do")
    else:
        text = ("versions and platform as recorded" if ran_on else
                "versions as recorded; the sidecar records no platform (written before it was)")
    result.checks.append(Check("versions", None if differ else True, text))


def _device_here(device: str) -> str:
    """``device`` as a rerun takes it: ``auto`` as the device it picks on this machine."""
    if device != "auto":
        return device
    from medseg.device import resolve_device

    return resolve_device("auto").device


def _rerun(record: dict, source: Path, series, segmentation: Path, package, device: str, threads,
           result: Verification) -> None:
    from medseg.defaults import DEFAULT_BATCH_SIZE
    from medseg.errors import MedsegError
    from medseg.inference import Segmenter
    from medseg.io.nifti import read_nifti
    from medseg.resources import set_threads
    from medseg.segment import segment_volume

    if package is None or not source.exists() or not segmentation.is_file():
        result.checks.append(Check("rerun", None, "not segmented again: the model, the input or the segmentation "
                                   "is not there"))
        return
    inference = record.get("inference") or {}
    threads = threads if threads is not None else record.get("cpu_threads")
    precision = str(record.get("precision") or "auto")
    if precision == "fp16" and not _device_here(device).startswith("cuda"):  # auto's precision on CUDA
        result.checks.append(Check("rerun", False, f"not segmented again: it was segmented on "
                                   f"{record.get('device') or 'a CUDA device'} in fp16, which needs a CUDA device; "
                                   f"give {setting('device', 'cuda')} (this run: {_device_here(device)})",
                                   compared=False))
        return
    recorded = inference.get("batch_size")
    if recorded is not None and (isinstance(recorded, bool) or not isinstance(recorded, int) or recorded < 1):
        # the sidecar edited: the segmenter's refusal would ask the verify user to give a batch size, of the input
        shown = repr(recorded) if isinstance(recorded, (int, float)) and not isinstance(recorded, bool) else \
            _json_kind(recorded, True)
        result.checks.append(Check("rerun", False, f"not segmented again: the sidecar's inference.batch_size is "
                                   f"{shown}, not a whole number of tiles of 1 or more; {_EDITED}", compared=False))
        return
    try:
        set_threads(threads)
        batch = DEFAULT_BATCH_SIZE if recorded is None else recorded
        # out of GPU memory, the batch is halved: the rerun's comes from the sidecar, so the device is what to change
        start = (f"a rerun starts from the batch its sidecar records, {batch} tiles" if recorded is not None else
                 f"the sidecar records no batch size: a rerun starts from medseg's default, {batch} tiles")
        note = f"{start}; {setting('device', 'cpu')} segments it again without the GPU"
        segmenter = Segmenter(package, device=device, precision=precision, batch_size=batch,
                              overlap=inference.get("overlap"), batch_note=note)
        if package.n_modalities > 1:
            from medseg.io.channels import read_channels

            volume = read_channels(source, package.modalities, package.name)
        else:
            from medseg.io.images import read_image

            volume = read_image(source, series=series, warn_skipped=False)
        labels = np.asarray(segment_volume(volume, segmenter))
    except MedsegError as error:
        result.checks.append(Check("rerun", False, _naming(source, f"segmenting it again failed: {error}"),
                                   compared=False))
        return
    except (RuntimeError, MemoryError) as error:  # out of memory, a torch refusal: this check fails, not the run
        log.debug("%s: segmenting it again failed", source, exc_info=True)
        reason = str(error) or ("out of memory" if isinstance(error, MemoryError) else type(error).__name__)
        result.checks.append(Check("rerun", False, f"{source}: segmenting it again failed ({reason})",
                                   compared=False))
        return
    try:
        if segmentation.name.lower().endswith((".nii", ".nii.gz")):
            stored = np.asarray(read_nifti(segmentation, hash_input=False, labels=True).array)
        else:  # a DICOM SEG (--format dicom-seg): its label values on the series' grid, as medseg evaluate reads it
            from medseg.io.seg_volume import read_seg_volume

            stored = np.asarray(read_seg_volume(segmentation, record, source, warn_skipped=False).array)
    except MedsegError as error:  # cut short, or not what medseg wrote: the segmentation check has failed too
        result.checks.append(Check("rerun", False, _naming(segmentation, f"cannot be read to compare: {error}"),
                                   compared=False))
        return
    if stored.shape != labels.shape:
        result.checks.append(Check("rerun", False, f"{segmentation}: shape {stored.shape}, and segmented again "
                                   f"{labels.shape}: not a segmentation of this input"))
        return
    differing = int(np.count_nonzero(stored != labels))
    result.differing_voxels = differing
    import torch

    used = torch.get_num_threads()  # as set: capped at the CPUs here, or as a sidecar before it in a batch left them
    how = (f"on {segmenter.device_choice.device} ({segmenter.precision}, batch {segmenter.batch_size}, "
           f"overlap {segmenter.overlap:g}, {used} thread{'' if used == 1 else 's'})")
    result.checks.append(Check("rerun", differing == 0, f"segmented again {how}: {differing:,} of {labels.size:,} "
                               f"voxels differ from {segmentation.name}"))
