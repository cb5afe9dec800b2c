"""The results folder of a cohort, and the records that say which case is finished.

Layout (the ``cases/`` part is shared with ``medseg report``)::

    RESULTS/cases/<id>/<id>_seg.nii.gz, <id>_seg.json     segmentation and its sidecar
    RESULTS/cases/<id>/<id>_metrics.json                   scores, when the case has a reference
    RESULTS/cases/<id>/<id>_failed.json                    a failure record (schema medseg-failure/1)
    RESULTS/status/<id>.<stage>.json                       completion record of a stage (infer, evaluate)
    RESULTS/status/<id>.<stage>.started.json               attempts at a stage not finished yet

A stage of a case is *finished* only when its completion record exists, was made for the same work (its
fingerprint: the input files' size and time, the model's weights hash, the settings) and every output it
lists exists. Where a file's size or time changed but its content is the one the case's results record having
read, the case is kept and its record takes the new size and time (:mod:`medseg.cohort.run`). The record is
written atomically and last, after the outputs, so a run killed at any moment leaves either a finished case or
one that is redone from scratch.

A case that kills the process working on it (a decoder that crashes, the out-of-memory killer) cannot record
its own failure. Each attempt is therefore noted before it starts (``.started.json``); a case that was started
:data:`MAX_ATTEMPTS` times for the same work without finishing is recorded as failed instead of being tried
again (the Snakefile retries a job that died, so the rest of its batch still runs). Each attempt notes the memory
its job had (``--memory-mb``, from the scheduler's request); attempts that died with less memory than the job now
has do not count, so a case killed for memory is tried again when a retry brings more.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import hashlib
import json
import os
from pathlib import Path

from medseg.failure_records import FAILURE_SCHEMA, failure_record
from medseg.io.atomic import atomic_paths, reason_of
from medseg.io.pairs import input_signature
from medseg.jsonfile import RECORD_BYTES, read_json_object

__all__ = [
    "FAILURE_SCHEMA",
    "MAX_ATTEMPTS",
    "STATUS_SCHEMA",
    "ResultsFolder",
    "cannot_look_at",
    "case_claim_what",
    "content_sha256",
    "dataset_names_differ",
    "fingerprint",
    "further_channel_rows",
    "input_files",
    "made_for",
    "not_fetched",
    "now",
    "one_line",
    "path_signature",
    "read_record",
    "readable_again",
    "unavailable",
    "unread_channel_rows",
    "unread_compressions",
    "unreadable_path",
    "write_json",
]

STATUS_SCHEMA = "medseg-case-status/1"
MAX_ATTEMPTS = 2


def case_claim_what(case_id: str) -> str:
    """The work a case's claim keeps to one process, as a claim's messages name it."""
    return f"cohort run on case {case_id}"


def now() -> str:
    """The time now in UTC, ISO 8601 to the second, as records give it."""
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def one_line(error: BaseException) -> str:
    """An error as one line: library errors as they are, others prefixed with their type."""
    from medseg.errors import MedsegError

    text = " ".join(str(error).split())
    if isinstance(error, MedsegError) and text:
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def path_signature(path: Path | None, modalities: int = 1) -> list | str | None:
    """What identifies a file's or folder's content cheaply: sizes and modification times (ns), of both files of a
    header / image pair, and for a model of several ``modalities`` of each of nnU-Net's channel files of a
    ``case_0000`` input (:func:`~medseg.io.pairs.input_signature`)."""
    if path is None:
        return None
    path = Path(path)
    try:
        if path.is_dir():
            return sorted([str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns]
                          for p in path.rglob("*") if p.is_file())
    except OSError:
        return "missing"
    return input_signature(path, modalities) or "missing"


def input_files(path: Path | str, modalities: int = 1) -> list[Path]:
    """The files (or folder) an input is read from by a model of ``modalities`` modalities: nnU-Net's channel files
    of a ``case_0000`` input (:func:`~medseg.io.channels.channel_files`), else ``path`` alone."""
    from medseg.io.channels import channel_files

    return channel_files(path, modalities) or [Path(path)]


def unread_compressions(samples, modalities: int = 1) -> list[tuple[str, str]]:
    """``(case_id, error line)`` for each sample whose image (any of its channel files) or reference is named with a
    compression medseg does not read (:func:`medseg.io.compression.unsupported_compression`: ``scan.nii.xz``, a
    ``.nii.zst`` without zstd). Its case fails when it runs, as infer refuses such a file; planning, which counts
    each input's voxels from its header, counted it as none without a word, so the workflow warns of them first."""
    from medseg.io.compression import unsupported_compression

    found = []
    for sample in samples:
        paths = [*input_files(sample.image, modalities), *([sample.reference] if sample.reference else [])]
        error = next((text for text in map(unsupported_compression, paths) if text is not None), None)
        if error is not None:
            found.append((sample.case_id, error))
    return found


def dataset_names_differ(samples, package) -> None:
    """Warns, once for each, where a Decathlon / nnU-Net dataset.json of the references' dataset names the label
    values otherwise than ``package`` (:func:`medseg.scoring.warn_if_dataset_names_differ`: another labelling
    convention, each of the model's labels then scored against another structure under its name), as ``medseg
    evaluate`` and ``medseg infer --reference`` warn; the cohort's scores are the sidecars' labels by value too, and
    a sheet made from a dataset folder's labelsTr was scored without a word. One reference per folder is looked at."""
    from medseg.scoring import warn_if_dataset_names_differ

    warned: set = set()
    folders: set[str] = set()
    for sample in samples:
        if sample.reference is None:
            continue
        folder = os.path.dirname(os.path.abspath(sample.reference))
        if folder not in folders:
            folders.add(folder)
            warn_if_dataset_names_differ(sample.reference, package.labels, f"the model {package.name}",
                                         warned=warned)


def further_channel_rows(samples, modalities: int, sheet: Path | str, total: int | None = None) -> str | None:
    """The planning warning for the rows whose image is one of nnU-Net's further channel files of a case
    (``case_0001.nii.gz``, its ``case_0000.nii.gz`` beside it: :func:`~medseg.io.channels.further_channel_text`),
    which a model of several ``modalities`` refuses: each such case failed only as its job read it. One line naming
    the sheet's line and file of each (the first three); None where there is none, and for a model of one image a
    case, which reads ``case_0001.nii.gz`` as a case of its own. ``total``: the sheet's cases (``samples``' count
    where not given)."""
    from medseg.io.channels import further_channel_text
    from medseg.numbers import counted

    if modalities < 2:
        return None
    found = [(sample, text) for sample in samples if (text := further_channel_text(sample.image)) is not None]
    if not found:
        return None
    shown = "; ".join(f"{sheet}:{sample.line}: {sample.image}: {text}" for sample, text in found[:3])
    more = f"; ... ({len(found) - 3} more: {', '.join(sample.case_id for sample, _ in found[3:13])}" \
           f"{' ...' if len(found) > 13 else ''})" if len(found) > 3 else ""
    total = len(samples) if total is None else total
    one = len(found) == 1
    return (f"{len(found)} of {counted(total, 'case')} {'names' if one else 'name'} a channel file other than "
            f"{'its' if one else 'their'} case's first (_0000) as the image; "
            f"{'this case fails' if one else 'these cases fail'} as bad input, the others run: {shown}{more}")


def unread_channel_rows(samples, modalities: int, model: str, sheet: Path | str,
                        total: int | None = None) -> str | None:
    """The planning warning for the rows whose image is nnU-Net's first channel file of a case of several
    (``case_0000.nii.gz``, its ``case_0001.nii.gz`` beside it: :func:`~medseg.io.files.unread_channels`), which
    ``model``, of one image a case, segments from that file alone, the case's other channels unread, as ``medseg
    infer`` warns. One line naming the sheet's line and file of each (the first three); None where there is none,
    and for a model of several ``modalities``, which reads them. ``total``: the sheet's cases (``samples``' count
    where not given)."""
    from medseg.io.files import unread_channels
    from medseg.numbers import counted

    if modalities > 1:
        return None
    # the sheet's images looked at together: a case_0001 another row names is read, as a case of its own
    seconds = dict(unread_channels([sample.image for sample in samples]))
    found = [(sample, seconds[Path(sample.image)]) for sample in samples if Path(sample.image) in seconds]
    if not found:
        return None
    shown = "; ".join(f"{sheet}:{sample.line}: {sample.image} ({second.name} beside it)"
                      for sample, second in found[:3])
    more = f"; ... ({len(found) - 3} more: {', '.join(sample.case_id for sample, _ in found[3:13])}" \
           f"{' ...' if len(found) > 13 else ''})" if len(found) > 3 else ""
    total = len(samples) if total is None else total
    one = len(found) == 1
    return (f"{len(found)} of {counted(total, 'case')} {'names' if one else 'name'} the _0000 file of a case of "
            f"several channels as nnU-Net names them, and model {model} takes one image a case: each is segmented "
            f"from its _0000 file alone, its other channels unread: {shown}{more}")


def content_sha256(path: Path | str, series: str | None = None, modalities: int = 1) -> str | None:
    """The SHA-256 of an input's content as medseg records it when it reads it (a sidecar's ``input_sha256``, the
    metrics' ``reference_sha256``): a DICOM folder's series (``series`` as the sheet names it), a DICOM file as it is,
    an image's files as reading it reads them (both of a header / image pair; for a model of several ``modalities``,
    nnU-Net's channel files of a ``case_0000`` input, in order). None where it cannot be read. Kept for the file's
    size and time as they are (a report's sheet check and its sidecar check ask for the same file), by its resolved
    path, links followed: one file named relative and absolute, or through a link, is hashed once (a link pointed
    at another file since resolves to that one)."""
    path = Path(path)
    files = input_files(path, modalities) if modalities > 1 else [path]
    if len(files) > 1:
        return _channels_sha256(tuple(os.path.realpath(file) for file in files),
                                json.dumps(path_signature(path, modalities)))
    # read as given: a reading warning names the file as the caller's own read of it names it, and is told once
    return _content_sha256(os.path.realpath(path), series, json.dumps(path_signature(path)), str(path))


@functools.lru_cache(maxsize=1024)
def _channels_sha256(files: tuple[str, ...], signature: str) -> str | None:
    """The SHA-256 of nnU-Net's channel files of one case, in order (their resolved paths), as reading them hashes
    them, while their signature is ``signature`` (the cache's key)."""
    from medseg.io.atomic import sha256_of

    try:
        return sha256_of(list(files))
    except OSError:
        return None


class _KeptHashes:
    """:func:`content_sha256`'s hashes of one file (or DICOM folder's series), kept by its resolved path, the series
    asked for (with its type: a series UID, :class:`~medseg.io.dicom_series.SeriesUID`, is not the key of the same
    text) and its signature (a file changed since has another), the latest ``size`` of them; the path it is read by
    on a miss, as given, is no part of the key."""

    def __init__(self, size: int) -> None:
        import collections
        import threading

        self._size = size
        self._kept: collections.OrderedDict = collections.OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, resolved: str, series: str | None, signature: str, given: str) -> str | None:
        key = (resolved, type(series), series, signature)
        with self._lock:
            if key in self._kept:
                self._kept.move_to_end(key)
                return self._kept[key]
        found = _read_sha256(Path(given), series)
        with self._lock:
            self._kept[key] = found
            while len(self._kept) > self._size:
                self._kept.popitem(last=False)
        return found

    def cache_clear(self) -> None:
        """Forget the hashes kept."""
        with self._lock:
            self._kept.clear()


_content_sha256 = _KeptHashes(4096)


def _read_sha256(path: Path, series: str | None) -> str | None:
    """:func:`content_sha256` of the file (or DICOM folder) ``path``, read as given; None where it cannot be read."""
    from medseg.errors import MedsegError
    from medseg.io.atomic import sha256_of
    from medseg.io.files import is_dicom_file
    from medseg.io.nifti import files_read

    try:
        if path.is_dir():
            from medseg.io.dicom import series_sha256

            return series_sha256(path, series)
        return sha256_of(path) if is_dicom_file(path) else sha256_of(files_read(path))
    except (MedsegError, OSError):
        return None


def unavailable(path: Path | str | None, modalities: int = 1) -> bool:
    """Whether an input is away: missing, or a folder without any file in it but hidden ones (a share not mounted,
    an emptied DICOM folder; empty subfolders like ``lost+found`` and files like ``.DS_Store`` do not count), or a
    folder some of whose files are not here (a DICOM series in a dataset some of whose slices were dropped, as a
    dropped NIfTI file is missing; links that lead nowhere), or a file whose content is not here in its own place
    (an unlocked git-annex file dropped is a pointer file, as the slices of such a series are; a Git LFS pointer),
    or a file some of whose image is in files whose content is not here (an Analyze / NIfTI pair's ``.img``, the
    ``.raw`` a ``.mhd`` or ``.nhdr`` names, dropped: :func:`~medseg.io.pairs.parts_not_here`); for a model of
    several ``modalities``, any of nnU-Net's channel files of a ``case_0000`` input (:func:`input_files`)."""
    from medseg.io.files import absent_content, missing_under
    from medseg.io.pairs import parts_not_here

    if path is None:
        return False
    path = Path(path)
    if modalities > 1:
        files = input_files(path, modalities)
        if len(files) > 1:
            return any(unavailable(file) for file in files)
    try:
        if not path.is_dir():
            return not path.exists() or absent_content(path) is not None or parts_not_here(path) is not None
        # stops at the first file: an emptied folder is told without a walk of all of it
        if not any(p.is_file() and not p.name.startswith(".") for p in path.rglob("*")):
            return True
    except OSError:
        return True
    return missing_under(path) is not None  # one walk of types and sizes where all are here


def away_text(path: Path | str, missing: str = "no such file or folder", modalities: int = 1) -> str:
    """Why an :func:`unavailable` input is away, as the line of a case that keeps its results begins:
    ``a.nii.gz: no such file or folder`` (``missing``), what a link in its place is (a git-annex link whose content
    is not here, and how to fetch it; a link that leads nowhere, and where it led), ``study: an empty folder``, or
    ``study: 3 of its files are git-annex links whose content is not present here (…): fetch them with …``, or
    what a pointer file in its place is (``a git-annex pointer file, not an image (…): fetch it with …``), or which
    of the other files it is read from is not here (``scan.mhd: its data file scan.raw is a git-annex link whose
    content is not present here (…): fetch it with …``), or that it cannot be looked at (``a_label.nii.gz: cannot read
    (permission denied)``: a folder on its way this user may not search). For a model of several ``modalities``, that
    of the first of nnU-Net's channel files of a ``case_0000`` input that is away (``case_0001.nii.gz: no such file
    or folder``)."""
    from medseg.io.files import absent_content, missing_under, not_there
    from medseg.io.pairs import parts_not_here

    path = Path(path)
    if modalities > 1:
        path = next((file for file in input_files(path, modalities) if unavailable(file)), path)
    cannot = cannot_look_at(path)
    if cannot is not None:
        return f"{path}: cannot read ({cannot})"
    if path.is_dir():
        return f"{path}: {missing_under(path) or 'an empty folder'}"
    if not path.exists():
        return f"{path}: {not_there(path, missing)}"
    return f"{path}: {absent_content(path) or parts_not_here(path) or not_there(path, missing)}"


def cannot_look_at(path: Path | str) -> str | None:
    """Why this user cannot look at ``path`` (``permission denied``: a folder on its way without search permission),
    where ``Path.is_dir`` and ``Path.exists`` raise a bare ``PermissionError``; None for a path that is there or
    simply not there."""
    import errno

    from medseg.io.files import SEARCH_DENIED, os_reason

    try:
        os.stat(path)
    except OSError as error:
        if error.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):  # not there: said by the caller
            return None
        if error.errno in (errno.EACCES, errno.EPERM):  # stat needs no access to the file itself: a folder's search
            return SEARCH_DENIED  # as medseg infer words it
        return os_reason(error)
    return None


def not_fetched(paths) -> str:
    """For the lines about a sample sheet's missing files: which of ``paths`` are, or hold (a DICOM folder), a
    DataLad / git-annex dataset's files whose content is not here, and how to fetch them (``; among them, 2 files are
    git-annex links whose content is not present here (…): fetch them with datalad get …``: the files, or their
    folders where more than three); "" where none is. A dataset cloned and not fetched was 'none of the images exists
    (paths in a sample sheet are relative to the sheet's folder …)', which sent its user after the paths."""
    from medseg.io.files import absent_content, absent_files
    from medseg.io.pairs import image_parts
    from medseg.numbers import counted

    absent: list[Path] = []
    for path in map(Path, filter(None, paths)):
        try:
            under = (sorted(p for p in path.rglob("*") if not p.name.startswith(".")) if path.is_dir()
                     else [path, *image_parts(path)])  # a .hdr's .img, a .mhd's .raw
        except OSError:
            continue
        absent += [p for p in under if absent_content(p) is not None]
    if not absent:
        return ""
    fetch = absent if len(absent) <= 3 else sorted({path.parent for path in absent})
    are = "is" if len(absent) == 1 else "are"
    return f"; among them, {counted(len(absent), 'file')} {are} {absent_files(absent, fetch)}"


def made_for(record: dict, print_: str) -> bool:
    """Whether a completion record's work is what ``print_`` identifies: its own fingerprint, or one of the requests
    that the job found would have done the same work (``also_made_for``: ``device=cpu`` where ``auto`` chose the
    CPU)."""
    also = record.get("also_made_for")
    return record.get("fingerprint") == print_ or (isinstance(also, list) and print_ in also)


def fingerprint(**parts) -> str:
    """SHA-256 of the parts as canonical JSON (paths as strings)."""
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def unreadable_path(error: BaseException) -> str | None:
    """The file or folder a read was refused for want of permission (a ``PermissionError`` in what ``error`` was
    raised from), or None: a case failed so is tried again once it can be read (:func:`readable_again`), which
    changes neither the file's size nor its time. An output that could not be written is not such a file."""
    from medseg.errors import OutputWriteError

    if isinstance(error, OutputWriteError):
        return None
    seen: set[int] = set()
    cause: BaseException | None = error
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, PermissionError) and cause.filename:
            return os.fsdecode(cause.filename)
        cause = cause.__cause__ or cause.__context__
    return None


def readable_again(record: dict | None) -> bool:
    """Whether a stage that failed on a file it could not read (its record's ``unreadable``) can read it now."""
    path = (record or {}).get("unreadable")
    if not isinstance(path, str) or record.get("outcome") != "failed":
        return False
    try:
        if os.path.isdir(path):
            os.listdir(path)
        else:
            with open(path, "rb"):
                pass
    except OSError:
        return False
    return True


def read_record(path: Path) -> dict:
    """A cohort's bookkeeping record (completion, attempt, failure, forced-run record) as :func:`write_json` wrote
    it; a :class:`~medseg.jsonfile.JsonFileError` for one that is not (too large, not JSON, not an object, not a
    file), ``OSError`` as reading raises it."""
    return read_json_object(path, RECORD_BYTES, "a cohort record")


def write_json(path: Path, record: dict) -> None:
    """Write ``record`` to ``path`` atomically (replacing it), as strict JSON."""
    from medseg.metrics import jsonable

    with atomic_paths([path], overwrite=True) as (temp,):
        temp.write_text(json.dumps(jsonable(record), indent=2, allow_nan=False) + "\n")


class ResultsFolder:
    """Paths of one cohort's results, and the completion records of its cases.

    ``redo``: a token naming one forced run (Snakemake's ``-F`` / ``--forcerun``): a case counts as finished only
    when its record was written under that token, so every case is made again once, and a retried or resumed job of
    that run keeps what the run has already made again."""

    def __init__(self, root: Path | str, redo: str | None = None) -> None:
        self.root = Path(root)
        self.redo = redo or None

    def case_dir(self, case_id: str) -> Path:
        return self.root / "cases" / case_id

    def linked_folder(self, case_id: str) -> Path | None:
        """The link, if any, in the place of the case's folder (``cases/<id>``) or of ``cases/`` itself: a case's
        files are written, and those a run replaces removed, in the results folder, never where a link leads."""
        for folder in (self.root / "cases", self.case_dir(case_id)):
            if folder.is_symlink():
                return folder
        return None

    def blocked(self, case_id: str, probe: bool = True) -> bool:
        """Whether the case's folder cannot take its files: a file or a link is in its place, or (``probe``) it is a
        folder that takes no files (see :meth:`blocked_reason`). The case fails until that is put right; the others go
        on."""
        return self.blocked_reason(case_id, probe) is not None

    def blocked_reason(self, case_id: str, probe: bool = True) -> str | None:
        """Why the case's folder cannot take its files, as one line, or None: a file in its place, a link in its
        place or in that of ``cases/`` (:meth:`linked_folder`), or (``probe``) a folder of the case's own that
        refuses new files (no write permission for this user, an immutable folder), tried by making a file there. A
        refusal that would refuse every case's files alike (a full disk or quota, a read-only mount) is not the
        case's: None, and the writing step stops the job on it."""
        from medseg.errors import OutputWriteError
        from medseg.io.atomic import check_folders_writable, results_unwritable
        from medseg.io.folder_claim import claim_refusal

        # a link or a named pipe in the place of the case's claim (status/.<id>.lock), which a claim refuses
        refused = claim_refusal(self.claim_folder(case_id), case_claim_what(case_id))
        if refused is not None:
            return refused
        where = self.case_dir(case_id)
        link = self.linked_folder(case_id)
        if link is not None:
            try:
                leads = os.readlink(link)
            except OSError:
                leads = "?"
            nowhere = "" if link.exists() else " that leads nowhere"
            what = "this case's results folder" if link == where else "the results' cases/ folder"
            return (f"{link}: a link to {leads}{nowhere} is in the place of {what}; a cohort writes its cases' files, "
                    "and removes those it replaces, inside the results folder, not where a link leads: put the "
                    "folder itself in place of the link, or remove the link")
        if where.exists() and not where.is_dir():
            return f"{where}: a file is in the place of this case's results folder; move it away"
        if not probe or not where.is_dir():
            return None
        try:
            check_folders_writable([where / f"{case_id}_seg.json"])
        except OutputWriteError as error:
            if results_unwritable(error):
                return None
            return (f"{where}: this case's results folder takes no files ({reason_of(error)}); give this user "
                    "write access to it, or move it away, and run again")
        return None

    def segmentation(self, case_id: str) -> Path:
        return self.case_dir(case_id) / f"{case_id}_seg.nii.gz"

    def sidecar(self, case_id: str) -> Path:
        return self.case_dir(case_id) / f"{case_id}_seg.json"

    def metrics(self, case_id: str) -> Path:
        return self.case_dir(case_id) / f"{case_id}_metrics.json"

    def failure(self, case_id: str) -> Path:
        return self.case_dir(case_id) / f"{case_id}_failed.json"

    def claim_folder(self, case_id: str) -> Path:
        """What a cohort step claims while it works on the case (:func:`medseg.io.folder_claim.claimed`: its claim file
        is ``status/.<id>.lock``)."""
        return self.root / "status" / case_id

    def status_path(self, case_id: str, stage: str) -> Path:
        return self.root / "status" / f"{case_id}.{stage}.json"

    def relative(self, path: Path) -> str:
        return Path(path).relative_to(self.root).as_posix()

    def left_since_report(self, case_ids) -> list[str]:
        """The cases the last report shows (its ``cohort.tsv``) or names as left out (``summary.json``) that are not
        among ``case_ids`` (the sheet's) and whose folder ``cases/<id>`` was removed (or moved) after the report was
        written: a row taken out of the sheet, then its folder removed as the report advises, which the report still
        names. Empty when there is no
        report or readable table, or nothing under ``cases/`` was removed since the report (a case kept elsewhere
        in the folder stays in the report, which then is up to date: it is not rebuilt again and again)."""
        import csv

        try:
            written = (self.root / "report.html").stat().st_mtime
            changed = max((folder.stat().st_mtime for folder in (self.root, self.root / "cases")
                           if folder.is_dir()), default=0.0)
        except OSError:
            return []
        if changed <= written:
            return []
        try:
            with open(self.root / "cohort.tsv", newline="", encoding="utf-8") as handle:
                shown = [row.get("case_id") or "" for row in csv.DictReader(handle, delimiter="\t")]
        except (OSError, ValueError, csv.Error):
            return []
        try:  # the results of rows taken out of the sheet, which the report names (summary.json) but leaves out
            left_out = read_json_object(self.root / "summary.json", None, "a report summary").get("left_out")
        except (OSError, ValueError):  # a JsonFileError too
            left_out = None
        if isinstance(left_out, list):
            shown += [Path(folder).name for folder in left_out  # a case's own folder, cases/<id>/
                      if isinstance(folder, str) and folder.startswith("cases/") and folder.endswith("/")]
        wanted = set(case_ids)
        return [case for case in dict.fromkeys(shown) if case and case not in wanted
                and not os.path.lexists(self.case_dir(case))]

    def status(self, case_id: str, stage: str) -> dict | None:
        """The completion record of a stage, or None when absent or unreadable."""
        try:
            record = read_record(self.status_path(case_id, stage))
        except (OSError, ValueError):  # a JsonFileError too
            return None
        return record if record.get("schema") == STATUS_SCHEMA else None

    def finished(self, case_id: str, stage: str, print_: str) -> dict | None:
        """The completion record if the stage is finished for the work ``print_`` identifies, else None."""
        record = self.status(case_id, stage)
        if record is None or not made_for(record, print_) or not self._outputs_exist(record):
            return None
        if self.redo is not None and record.get("redo") != self.redo:  # made before the forced run
            return None
        if record.get("blocked") and not self.blocked(case_id):  # failed for a file since moved away
            return None
        if readable_again(record):  # failed on a file it may read now
            return None
        if record.get("out_of_time"):  # its job's last attempt ran out of time before it: tried again
            return None
        if record.get("job_failed"):  # its job's last attempt failed for a reason of the whole job: tried again
            return None
        return record

    def case_outputs_present(self, case_id: str, stage: str = "infer") -> bool:
        """Whether the case's record of ``stage`` and every output it lists still exist (whatever made them); a
        failure for a file in the place of the case's folder stands while that file is there."""
        record = self.status(case_id, stage)
        if record is not None and record.get("blocked"):
            return self.blocked(case_id)
        return record is not None and self._outputs_exist(record)

    def _outputs_exist(self, record: dict) -> bool:
        return all((self.root / name).is_file() for name in record.get("outputs", []))

    def started_path(self, case_id: str, stage: str) -> Path:
        return self.root / "status" / f"{case_id}.{stage}.started.json"

    def attempts(self, case_id: str, stage: str, print_: str) -> int:
        """How many times this work was started on this case without finishing."""
        try:
            record = read_record(self.started_path(case_id, stage))
        except (OSError, ValueError):  # a JsonFileError too
            return 0
        if record.get("fingerprint") != print_:
            return 0
        return int(record.get("attempts", 0))

    def crashes(self, case_id: str, stage: str, print_: str, memory_mb: int | None = None) -> int:
        """The unfinished attempts that count against trying once more: all of them, or, given the memory this job
        has (``memory_mb``), those that had as much or more. An attempt killed with less memory (the scheduler's
        out-of-memory kill, retried with more) may succeed now; attempts that recorded no memory count."""
        total, known = self._attempt_memories(case_id, stage, print_)
        if memory_mb is None:
            return total
        return total - len(known) + sum(1 for m in known if m >= memory_mb)

    def death_memory(self, case_id: str, stage: str, print_: str) -> int | None:
        """The most memory an unfinished attempt of this work had (None when none recorded its memory)."""
        return max(self._attempt_memories(case_id, stage, print_)[1], default=None)

    def _attempt_memories(self, case_id: str, stage: str, print_: str) -> tuple[int, list[int]]:
        """The number of unfinished attempts of this work, and the memory of those that recorded it."""
        total = self.attempts(case_id, stage, print_)
        if not total:
            return 0, []
        try:
            record = read_record(self.started_path(case_id, stage))
        except (OSError, ValueError):  # replaced since it was read
            return total, []
        return total, [m for m in (record.get("memory_mb") or [])[:total] if isinstance(m, int)]

    def mark_started(self, case_id: str, stage: str, print_: str, attempts: int, memory_mb: int | None = None,
                     also_made_for: list[str] | None = None) -> None:
        """Note an attempt at the work ``print_`` identifies (``also_made_for``: the equivalent requests, kept for the
        record of a case given up after its attempts died: :meth:`equivalents`)."""
        memories: list = []
        if attempts > 1:  # the earlier attempts' memory, from the record of the same work
            with contextlib.suppress(OSError, ValueError):  # a JsonFileError too
                record = read_record(self.started_path(case_id, stage))
                if record.get("fingerprint") == print_:
                    memories = list(record.get("memory_mb") or [])[:attempts - 1]
        memories += [None] * (attempts - 1 - len(memories)) + [memory_mb]
        write_json(self.started_path(case_id, stage), {
            "case_id": case_id, "stage": stage, "fingerprint": print_, "attempts": attempts,
            "memory_mb": memories, "pid": os.getpid(), "created": now(),
            **({"also_made_for": also_made_for} if also_made_for else {})})

    def equivalents(self, case_id: str, stage: str, print_: str) -> list[str] | None:
        """The equivalent requests the latest attempt at this work noted (see :meth:`mark_started`), or None."""
        try:
            record = read_record(self.started_path(case_id, stage))
        except (OSError, ValueError):  # a JsonFileError too
            return None
        also = record.get("also_made_for") if record.get("fingerprint") == print_ else None
        return also if isinstance(also, list) else None

    def unmark_started(self, case_id: str, stage: str, attempts_before: int) -> None:
        """Take back the attempt just marked (the run was stopped, the case did not crash it)."""
        if attempts_before:
            path = self.started_path(case_id, stage)
            record = read_record(path)
            memories = list(record.get("memory_mb") or [])[:attempts_before]
            record |= {"attempts": attempts_before, "memory_mb": memories}
            try:
                write_json(path, record)
            except OSError:  # a full disk has no room for a new file: the shorter record goes over the old one
                data = (json.dumps(record, indent=2) + "\n").encode()
                with open(path, "r+b") as handle:
                    handle.write(data)
                    handle.truncate(len(data))
        else:
            with contextlib.suppress(FileNotFoundError):
                self.started_path(case_id, stage).unlink()

    def unscore(self, case_id: str) -> bool:
        """Remove the scores of a case that has no reference any more: its evaluate record, metrics, and a
        failure record of stage evaluate. True when there was something to remove."""
        linked = self.linked_folder(case_id) is not None  # nothing is removed where a link leads
        removed = self.status_path(case_id, "evaluate").exists() or (not linked and self.metrics(case_id).exists())
        self.forget(case_id, ("evaluate",))
        with contextlib.suppress(FileNotFoundError, NotADirectoryError):
            self.started_path(case_id, "evaluate").unlink()
        if linked:
            return removed
        self.clear(case_id, [self.metrics(case_id)])
        try:
            stage = read_record(self.failure(case_id)).get("stage")
        except (OSError, ValueError):  # a JsonFileError too
            stage = None
        if stage == "evaluate":
            self.failure(case_id).unlink()
            removed = True
        return removed

    def forget(self, case_id: str, stages: tuple[str, ...]) -> None:
        """Remove completion records, first, so that the stages count as unfinished from here on."""
        for stage in stages:
            with contextlib.suppress(FileNotFoundError):
                self.status_path(case_id, stage).unlink()

    def clear(self, case_id: str, paths: list[Path]) -> None:
        """Remove stale outputs and the hidden partial files a killed writer may have left in the case folder (those
        of its records in ``status/`` go as the case is claimed: :meth:`remove_record_leftovers`); nothing where a link
        in the place of the case's folder leads (:meth:`linked_folder`)."""
        if self.linked_folder(case_id) is not None:
            return
        for path in paths:
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                path.unlink()
        from medseg.io.atomic import remove_leftovers

        remove_leftovers(self.case_dir(case_id))

    def remove_left_claims(self) -> list[Path]:
        """Remove the cases' claim files (``status/.<id>.lock``) that no process holds (a stop that landed as a job
        took or gave back a case's claim left one); return them. For a stopped workflow run, once its jobs have
        ended."""
        from medseg.io.folder_claim import remove_unheld_claims

        return remove_unheld_claims(self.root / "status")

    def remove_record_leftovers(self, case_id: str) -> None:
        """Remove the hidden partial files and backups a killed writer left of the case's records in ``status/``
        (shared with the other cases: only the case's own). For the holder of the case's claim."""
        from medseg.io.atomic import remove_leftovers_of

        remove_leftovers_of(self.root / "status", [path.name for stage in ("infer", "evaluate")
                                                   for path in (self.status_path(case_id, stage),
                                                                self.started_path(case_id, stage))])

    def mark_finished(self, case_id: str, stage: str, print_: str, outcome: str, outputs: list[Path],
                      seconds: float, error: str | None = None, extra: dict | None = None) -> dict:
        """Write the completion record (last, atomically) and return it."""
        record = {
            "schema": STATUS_SCHEMA,
            "case_id": case_id,
            "stage": stage,
            "outcome": outcome,
            "error": error,
            "outputs": [self.relative(p) for p in outputs],
            "fingerprint": print_,
            "run_id": os.urandom(8).hex(),
            "seconds": round(seconds, 3),
            "host": os.uname().nodename if hasattr(os, "uname") else None,
            "pid": os.getpid(),
            "created": now(),
            **({"redo": self.redo} if self.redo is not None else {}),
            **(extra or {}),
        }
        write_json(self.status_path(case_id, stage), record)
        with contextlib.suppress(FileNotFoundError):
            self.started_path(case_id, stage).unlink()
        return record

    def write_failure(self, case_id: str, stage: str, error: BaseException, input_path: Path | None,
                      reference: Path | None, series: str | None = None) -> Path:
        """Write ``<id>_failed.json`` (schema medseg-failure/1, :func:`~medseg.failure_records.failure_record`) and
        return its path. ``series``: the DICOM series
        the sheet asked for (a failed case has no sidecar to say which)."""
        path = self.failure(case_id)
        write_json(path, failure_record(case_id, stage, error, input_path, reference, series))
        return path
