"""Atomic outputs: write to hidden temporary files beside the targets, rename when all are complete."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import re
import shutil
import signal
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from medseg.errors import MedsegError, OutputExistsError, OutputWriteError
from medseg.io.files import files_under, is_annex_link, link_nowhere, os_reason
from medseg.numbers import counted
from medseg.settings_named import setting

__all__ = ["LEFTOVER_PATTERNS", "STALE_AFTER_S", "atomic_paths", "check_folders_writable", "check_superseded",
           "check_writable", "folder_now", "fsync_path", "placed_before_stop", "reading_folder", "reason_of",
           "remove_empty_folders", "remove_leftovers", "remove_leftovers_of", "remove_stale_leftovers",
           "results_unwritable", "sha256_of"]


log = logging.getLogger(__name__)

MAX_NAME_BYTES = 255  # the file-name limit of common file systems
# hidden files a writer killed outright (SIGKILL, power loss) may leave beside its targets: the names
# :func:`_temp_name` and :func:`_put_in_place` give (".ms-" and 8 hex digits), not a user's ".ms-notes.partial"
LEFTOVER_PATTERNS = (".ms-*.part*", ".ms-*.prev*")
_LEFTOVER_NAME = re.compile(r"\.ms-[0-9a-f]{8}\.(part.*|prev.*)")
WINDOWS = os.name == "nt"  # where a file another program holds open cannot be replaced or removed (PermissionError)
_NAMED_AFTER = 100  # a temporary file or backup carries its target's name up to this many bytes (see _aside_name)


def _leftovers(folder: Path) -> list[Path]:
    """The files in ``folder`` named as this module names its temporary files and backups."""
    return [path for pattern in LEFTOVER_PATTERNS for path in folder.glob(pattern)
            if _LEFTOVER_NAME.fullmatch(path.name)]


def remove_leftovers_of(folder: Path, names: Sequence[str]) -> None:
    """Remove the leftovers in ``folder`` of a killed writer of the files ``names`` (their temporary files and
    backups carry the name): for a folder other processes write to as well, where only these files are this
    process's (a cohort case's records in the shared ``status/``)."""
    wanted = set(names)
    with contextlib.suppress(OSError):
        for partial in _leftovers(folder):
            if partial.name.split(".", 3)[-1] in wanted:
                with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                    partial.unlink()


def remove_leftovers(folder: Path) -> None:
    """Remove the hidden partial files (:data:`LEFTOVER_PATTERNS`) a killed writer left in ``folder``. Only for a
    folder this process holds (a cohort case, a training run's folder): another writer's live temporary files match
    the same patterns."""
    if folder.is_dir():
        for partial in _leftovers(folder):
            with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                partial.unlink()


STALE_AFTER_S = 3600  # a live writer writes a temporary file in seconds and places it at once; an hour is dead
_SWEPT: set[Path] = set()  # shared folders whose stale leftovers this process has removed already


def remove_stale_leftovers(folder: Path, now: float | None = None) -> list[Path]:
    """Remove, from a folder other processes may write to as well (``medseg infer -o``), the leftovers
    (:data:`LEFTOVER_PATTERNS`) that nothing has touched for :data:`STALE_AFTER_S` (neither written nor renamed:
    their mtime and ctime): a killed writer's, not a live one's. ``now``: the folder's own clock (see
    :func:`folder_now`); by default this machine's. Returns what was removed."""
    now = time.time() if now is None else now
    removed = []
    with contextlib.suppress(OSError):  # a folder that cannot be listed: nothing to sweep
        for partial in _leftovers(folder):
            try:
                info = partial.lstat()
                if now - max(info.st_mtime, info.st_ctime) > STALE_AFTER_S and not partial.is_dir():
                    partial.unlink()
                    removed.append(partial)
            except OSError:  # gone meanwhile, or not ours to remove: left as it is
                continue
    return removed


def folder_now(folder: Path) -> float | None:
    """The time by ``folder``'s own clock: the mtime of a file made there now (a networked folder's times are its
    server's, which may differ from this machine's clock); None where no file can be made there."""
    try:
        return _probe_file(folder).st_mtime
    except OSError:
        return None


def _sweep_once(folder: Path) -> None:
    """:func:`remove_stale_leftovers` for an output folder, once per process (a batch writes many sets there),
    under the folder's lock: a backup (``.prev``) exists only while a writer holding that lock places a set."""
    key = Path(os.path.abspath(folder))
    if key in _SWEPT:
        return
    _SWEPT.add(key)
    try:
        if not _leftovers(folder):  # the usual case: no probe file, no lock
            return
    except OSError:  # a folder that cannot be listed: nothing to sweep
        return
    now = folder_now(folder)
    if now is None:
        return
    with _folder_locks([folder / "-"]):  # the lock of the folder that holds a (any) file "-"
        removed = remove_stale_leftovers(folder, now)
    if removed:
        log.info("%s: removed %s a killed writer left (untouched for over an hour)", folder,
                 counted(len(removed), "partial file"))


def _temp_name(target: Path) -> Path:
    return _aside_name(target, "part")


def _aside_name(target: Path, kind: str) -> Path:
    """A hidden name beside ``target`` for its temporary file (``part``) or its previous file's backup (``prev``):
    ``.ms-<8 hex>.<kind>.<target's name>``, so that the leftovers of a killed writer of one file can be told
    (:func:`remove_leftovers_of`); a long name only keeps its full suffix (``.nii.gz``: writers pick the format
    from the name), not to make an over-long one."""
    tag = f".ms-{uuid.uuid4().hex[:8]}.{kind}"
    if len(os.fsencode(target.name)) <= _NAMED_AFTER:
        return target.with_name(f"{tag}.{target.name}")
    suffix = target.name[-len(".nii.gz"):] if target.name.lower().endswith(".nii.gz") else target.suffix
    return target.with_name(f"{tag}{suffix}")


def check_writable(targets: Sequence[Path], overwrite: bool) -> None:
    """Refuse when any target exists and ``overwrite`` is false, is a folder (never replaced) or a symbolic link
    (neither written through, which would change a file elsewhere and not in one step, nor replaced by a file, which
    would drop the link: with or without ``overwrite``), or has a name the file system cannot hold; or when two
    targets are one file."""
    _refuse_annexed(targets)
    seen: set[Path] = set()
    for target in targets:
        same = Path(os.path.abspath(target))
        if same in seen:
            raise OutputWriteError(f"{target}: named twice among the outputs of one step")
        seen.add(same)
        target = Path(target)
        size = len(os.fsencode(target.name))
        if size > MAX_NAME_BYTES:
            raise OutputWriteError(f"{target}: the file name is too long ({size} bytes, at most {MAX_NAME_BYTES}); "
                                   "shorten the input's name")
        for part in target.parent.parts:
            part_size = len(os.fsencode(part))
            if part_size > MAX_NAME_BYTES:
                raise OutputWriteError(f"{target}: the folder name {part[:24]}… is too long ({part_size} bytes, at "
                                       f"most {MAX_NAME_BYTES}); shorten the output folder's name")
        try:
            folder = target.is_dir()
            exists = target.exists() or target.is_symlink()
            link = os.readlink(target) if target.is_symlink() else None
        except OSError as error:
            raise OutputWriteError(f"{target}: cannot check this output ({reason_of(error)})") from error
        if link is not None:
            _refuse_link(target, link)
        if folder:
            raise OutputWriteError(f"{target}: a folder is in the place of this output; move it away")
        if not overwrite and exists:
            raise OutputExistsError(f"{target}: output exists already; pass {setting('overwrite')} to replace it")


def _refuse_annexed(targets: Sequence[Path | str]) -> None:
    """Refuse, naming them all and how to make them writable, the targets that are locked files of a DataLad /
    git-annex dataset (links into its read-only store), where a link in an output's place was told as any link:
    "remove the link", which in a dataset is to unlock it."""
    import shlex

    annexed = [Path(target) for target in targets if is_annex_link(target)]
    if not annexed:
        return
    more = f" (and {len(annexed) - 1} more of its outputs)" if len(annexed) > 1 else ""
    named = " ".join(shlex.quote(os.fspath(target)) for target in annexed)
    if all(target.exists() for target in annexed):
        raise OutputWriteError(f"{annexed[0]}: an annexed file of a DataLad / git-annex dataset (a link into its "
                               f"read-only store) is in the place of this output{more}; unlock it first (datalad "
                               f"unlock {named}, or git annex unlock) and rerun with {setting('overwrite')} (medseg "
                               "neither writes through a link nor replaces it with a file)")
    raise OutputWriteError(f"{annexed[0]}: an annexed file of a DataLad / git-annex dataset is in the place of this "
                           f"output{more}, its content not all present here; fetch and unlock it (datalad get "
                           f"{named}, then datalad unlock) and rerun with {setting('overwrite')}, or remove it (git "
                           "rm) (medseg neither writes through a link nor replaces it with a file)")


def _refuse_link(target: Path, link: str) -> None:
    """A link where an output goes, as an :class:`OutputWriteError` naming where it leads (or that it leads
    nowhere)."""
    leads = Path(os.path.realpath(target))  # a relative link named as the file it leads to, not from here
    if leads.exists():
        raise OutputWriteError(f"{target}: a link to {leads} is in the place of this output; remove the link (medseg "
                               f"neither writes through a link, which would change {leads.name} there, nor replaces "
                               "it with a file)")
    raise OutputWriteError(f"{target}: a link to {link} that leads nowhere is in the place of this output; remove the "
                           "link (medseg neither writes through a link nor replaces it with a file)")


def check_folders_writable(targets: Sequence[Path | str]) -> None:
    """Refuse, before any work, when a file cannot be made where ``targets`` go: in each target's folder, or in the
    nearest folder above it that exists (where the missing ones will be made). Tried by making a temporary file (it
    leaves nothing behind), since permission bits do not say it for root, a read-only mount or a full quota; the
    mode it gets there is kept for the outputs (:func:`_file_mode`), which then make no second one."""
    folders = {Path(os.path.realpath(Path(target).parent)) for target in targets}  # where "link/.." leads
    for folder in sorted(folders):
        existing = next((f for f in (folder, *folder.parents) if f.exists()), None)
        if existing is None:
            continue
        if not existing.is_dir():  # a file where a folder is to be made
            raise OutputWriteError(f"{folder}: cannot make this output folder: {existing} is a file, not a folder")
        try:
            _probe_file(existing)
        except OSError as error:
            if existing != folder:  # the folder to make is named, and where it could not be made
                raise OutputWriteError(f"{folder}: cannot make this output folder: {existing} takes no files "
                                       f"({reason_of(error)})") from error
            raise OutputWriteError(f"{existing}: cannot write outputs in this folder ({reason_of(error)})") from error


@contextlib.contextmanager
def atomic_paths(targets: Sequence[Path | str], overwrite: bool = False,
                 retire: Sequence[Path | str] | Callable[[], Sequence[Path | str]] = (),
                 discard: Callable[[], Sequence[Path | str]] | None = None) -> Iterator[list[Path]]:
    """Yield temporary paths for ``targets``; on success put each onto its target, all or none.

    ``retire`` are outputs of an earlier run that the new set supersedes (a metrics file of a run that was scored,
    when this one is not): they go in the same step as the targets are placed, and come back if placing fails.
    Like targets, they are refused without ``overwrite``. Given as a function that finds them, they are looked for
    again under the folder's lock as the set is placed: another process may have written them meanwhile (a run with
    a reference placing its metrics while this one, without, segmented the same case). ``discard`` finds, under that
    lock, records the new set makes obsolete whatever ``overwrite`` says (a failure record of the case: a case
    segmented now has not failed); they go as retired files go.

    Nothing partial is ever visible under a target name: if the block raises, the temporary files are removed and
    the targets are left as they were; if putting one output in place fails, those already put in place are taken
    back and replaced targets restored. Each replaced target is replaced in one step and never disappears, not even
    for a moment (its old file keeps a second name, or a copy where the file system has no hard links, until the new
    one is in place), so a reader finds an old or a new file, never none (it takes no lock: between two files of a
    set it may find one new and one old). Placing holds a lock on the folder, so two processes writing the same
    outputs leave one complete set, and a target written meanwhile by another process is not replaced without
    ``overwrite``; Ctrl-C or SIGTERM arriving while a set is placed act once it is whole. An ``OSError`` while
    writing (no permission, disk full) becomes :class:`OutputWriteError` naming the output.
    """
    targets = [Path(t) for t in targets]
    find_retired = retire if callable(retire) else None
    retire = [Path(r) for r in (find_retired() if find_retired is not None else retire)]
    check_writable(targets, overwrite)
    check_superseded(retire, overwrite)
    made: list[Path] = []  # folders made for the outputs, removed again (when empty) if the set is not placed
    for target in targets:
        missing = [f for f in (target.parent, *target.parent.parents) if not f.exists() and not f.is_symlink()]
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            made += [f for f in missing if f not in made]
        except OSError as error:
            remove_empty_folders([*made, *missing])  # those made for the targets before this one, and for it
            existing = next((f for f in (target.parent, *target.parent.parents) if f.exists()), None)
            if existing == target.parent and not existing.is_dir():
                raise OutputWriteError(f"{target.parent}: a file, not a folder; {target.name} cannot be written "
                                       "in it") from error
            if existing is not None and not existing.is_dir():  # said as check_folders_writable says it
                raise OutputWriteError(f"{target.parent}: cannot make this output folder: {existing} is a file, not a "
                                       "folder") from error
            dangling = next((f for f in (target.parent, *target.parent.parents) if f.is_symlink() and not f.exists()),
                            None)
            if dangling is not None:  # exists() follows the link: "File exists" named nothing that exists
                raise OutputWriteError(f"{target.parent}: cannot make this output folder: {dangling} is "
                                       f"{link_nowhere(dangling)}") from error
            raise OutputWriteError(f"{target.parent}: cannot make this output folder ({reason_of(error)})") from error
        _sweep_once(target.parent)
    temps = [_temp_name(t) for t in targets]
    placed = False
    try:
        try:
            yield temps
            for temp in temps:
                # some writers (safetensors) create private 0600 files: give every output the usual mode
                os.chmod(temp, _file_mode(temp.parent))
                fsync_path(temp)  # on the disk before its name is: a power loss must not leave an empty output
        except OSError as error:
            if isinstance(error, MedsegError):
                raise
            raise OutputWriteError(f"{_which(error, targets, temps)}: cannot write ({reason_of(error)})") from error
        with _folder_locks(targets), _signals_held(targets):  # a stop while waiting for the lock still stops
            if find_retired is not None:  # as they are now, placed by another process meanwhile or not
                retire = [Path(r) for r in find_retired()]
            if not overwrite:  # another process may have written a target since the check above
                check_writable(targets, overwrite=False)
                check_superseded(retire, overwrite=False)
            _put_in_place(temps, targets, [*retire, *(map(Path, discard()) if discard is not None else ())])
            placed = True
            for folder in sorted({t.parent for t in targets}):
                fsync_path(folder)  # the new names too (before a stop held back meanwhile acts)
    finally:
        for temp in temps:
            with contextlib.suppress(OSError):  # a read-only folder or a vanished file: nothing more to clean
                temp.unlink()
        if not placed:  # a full disk or Ctrl-C left the folders made for the outputs empty
            remove_empty_folders(made)


def remove_empty_folders(folders: Sequence[Path]) -> None:
    """Remove those of ``folders`` that are empty, the deepest first (another writer's file in one keeps it)."""
    for folder in sorted(folders, key=lambda f: len(f.parts), reverse=True):
        with contextlib.suppress(OSError):
            folder.rmdir()


def fsync_path(path: Path) -> None:
    """Flush a file, or a folder's entries, to the disk, where the file system allows it (best effort: one that
    cannot, e.g. some network file systems, is not an error)."""
    with contextlib.suppress(OSError):
        handle = os.open(path, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)


def check_superseded(retire: Sequence[Path | str], overwrite: bool) -> None:
    """Refuse, without ``overwrite``, when an output of an earlier run that a new set would remove exists."""
    if overwrite:
        return
    for path in map(Path, retire):
        if path.exists() or path.is_symlink():
            raise OutputExistsError(f"{path}: output of an earlier run of this case exists, which this run would "
                                    f"remove; pass {setting('overwrite')} to replace it")


@contextlib.contextmanager
def _signals_held(targets: Sequence[Path] = ()) -> Iterator[None]:
    """Ctrl-C and SIGTERM are held back while outputs are put in place and acted on right after, so that a stop
    never leaves a half-placed set. Python handles signals in the main thread only, so the handlers are swapped
    there (blocking the signal would not do: another thread, such as torch's, may receive it). The stop raised after
    a set was placed carries ``targets`` (see :func:`placed_before_stop`)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {}
    for number in (signal.SIGINT, signal.SIGTERM, *((signal.SIGHUP,) if hasattr(signal, "SIGHUP") else ())):
        with contextlib.suppress(ValueError, OSError):
            previous[number] = signal.signal(number, lambda signum, frame: received.append(signum))
    placed = False
    try:
        yield
        placed = True
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        for number in dict.fromkeys(received):
            handler = previous.get(number)
            if callable(handler):
                try:
                    handler(number, None)  # Python's own Ctrl-C handler raises KeyboardInterrupt here
                except KeyboardInterrupt as stop:
                    stop.outputs_placed = tuple(targets) if placed else ()  # whole before the stop
                    raise
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), number)


def placed_before_stop(stop: KeyboardInterrupt) -> tuple[Path, ...]:
    """The outputs a Ctrl-C or SIGTERM was held back for while they were placed, once all were in place (a batch
    then counts that case as done; training says its package is complete); empty when none were."""
    placed = getattr(stop, "outputs_placed", ())
    return tuple(placed) if isinstance(placed, tuple) else ()


@contextlib.contextmanager
def _folder_locks(targets: list[Path]) -> Iterator[None]:
    """An exclusive advisory lock (flock) on each output folder, so that concurrent writers place whole sets one
    after the other; a file system without flock is used without it."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield
        return
    handles = []
    try:
        for folder in sorted({t.parent.resolve() for t in targets}):
            try:
                handle = os.open(folder, os.O_RDONLY)
            except OSError:
                continue
            handles.append(handle)
            with contextlib.suppress(OSError):
                fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        for handle in handles:
            with contextlib.suppress(OSError):
                os.close(handle)  # closing releases the lock


@contextlib.contextmanager
def reading_folder(folder: Path | str) -> Iterator[None]:
    """Hold a shared lock (flock) on ``folder`` while files of one set are read from it: a writer places its set
    under the folder's exclusive lock (:func:`atomic_paths`), so a reader holding this finds every file of the set
    old or every file new, never some of each (a model package replaced by ``medseg train --overwrite`` while
    ``medseg infer`` loaded it: the old ``model.json`` and the new weights, refused as corrupt). Readers do not
    stop each other; a folder that cannot be opened, or a file system without flock, is read without it."""
    try:
        import fcntl
    except ImportError:  # not POSIX
        yield
        return
    try:
        handle = os.open(Path(folder).resolve(), os.O_RDONLY)
    except OSError:
        yield
        return
    try:
        with contextlib.suppress(OSError):
            fcntl.flock(handle, fcntl.LOCK_SH)
        yield
    finally:
        os.close(handle)  # closing releases the lock


def _put_in_place(temps: list[Path], targets: list[Path], retire: Sequence[Path] = ()) -> None:
    """Rename every temp onto its target and take the ``retire`` files away; on a failure undo the renames done so
    far (old targets and retired files come back)."""
    backups: dict[Path, Path] = {}  # target -> a second name of its previous file
    placed: list[Path] = []
    at = None  # the path being handled, for the error
    try:
        for old in retire:
            at = old
            if old.is_dir() and not old.is_symlink():  # never move a folder aside
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(old))
            if old.exists() or old.is_symlink():
                backup = _aside_name(old, "prev")
                os.replace(old, backup)
                backups[old] = backup
        for temp, target in zip(temps, targets):
            at = target
            if target.is_dir() and not target.is_symlink():  # never move a folder aside
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(target))
            if target.exists() or target.is_symlink():
                backup = _aside_name(target, "prev")
                try:  # a second name: the target stays visible until the new file replaces it
                    os.link(target, backup, follow_symlinks=False)
                except OSError:  # no hard links here (some network or FAT file systems): a copy, the target stays
                    try:
                        shutil.copy2(target, backup, follow_symlinks=False)
                    except BaseException:
                        with contextlib.suppress(OSError):
                            backup.unlink()  # a partial copy (a full disk) is not left behind
                        raise
                backups[target] = backup
            os.replace(temp, target)
            placed.append(target)
    except BaseException as error:
        for target in placed:
            with contextlib.suppress(OSError):
                if target not in backups:
                    target.unlink()
        for target, backup in backups.items():
            with contextlib.suppress(OSError):
                os.replace(backup, target)  # a no-op (or the same bytes) while not yet replaced
            with contextlib.suppress(OSError):
                backup.unlink()
        if not isinstance(error, OSError):
            raise
        doing = "cannot remove this output of an earlier run" if at in retire else "cannot put the output in place"
        reason = reason_of(error)
        if WINDOWS and isinstance(error, PermissionError):
            reason += ": another program may have it open, a viewer say; close it and run again"
        raise OutputWriteError(f"{at}: {doing} ({reason}); no output of this set was changed") from error
    for backup in backups.values():
        with contextlib.suppress(OSError):
            backup.unlink()


def _which(error: OSError, targets: list[Path], temps: list[Path]) -> Path:
    """The output an OSError was about: by its temp file's name, else the last output whose temporary file was
    begun (outputs are written in order; a full disk does not say which file it stopped), else the folder."""
    name = str(error.filename or "")
    for temp, target in zip(temps, targets):
        if name and Path(name).name == temp.name:
            return target
    begun = [target for temp, target in zip(temps, targets) if temp.exists()]
    if begun:
        return begun[-1]
    return targets[0].parent if targets else Path(name or ".")


# what the file system says when it can take no more of anyone's outputs: a full disk or quota, a read-only or
# failing mount (not a file size limit, EFBIG: that is one output too large, the case's own)
_WHOLE_FOLDER_ERRNOS = frozenset(
    code for code in (errno.ENOSPC, getattr(errno, "EDQUOT", None), errno.EROFS, errno.EIO) if code is not None)


def results_unwritable(error: BaseException) -> bool:
    """Whether ``error`` is an output write refused for reasons that would refuse every case's outputs alike
    (:data:`_WHOLE_FOLDER_ERRNOS`, in it or in what it was raised from), not for one case's own (its name, a folder
    in the way). Errors reading inputs do not count, whatever their cause."""
    if not isinstance(error, OutputWriteError):
        return False
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in _WHOLE_FOLDER_ERRNOS:
            return True
        error = error.__cause__
    return False


def reason_of(error: OSError) -> str:
    """The OS's reason, as :func:`~medseg.io.files.os_reason` words it. A writer that wraps the OS error in its own
    (pydicom: "With tag (7FE0,0010) got exception: [Errno 28] …" and a whole traceback) is looked through to the error
    it wraps."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, OSError) and cause.strerror:
            return os_reason(cause)
        cause = cause.__cause__ or cause.__context__
    text = " ".join(str(error).split("\nTraceback", 1)[0].split())
    return text or type(error).__name__


_FILE_MODES: dict[Path, int] = {}  # per folder: the mode a plain open() gives a new file there


def _file_mode(folder: Path) -> int:
    """The mode a plain ``open()`` gives a new file in ``folder``: this process's umask's, or, in a folder with a
    default ACL (a shared group folder: ``setfacl -d -m g:lab:rwx``), the ACL's, which the umask does not restrict
    there (umask 022 gave 0644 and an ACL mask of r--, where ``touch`` gives 0664: the group could no longer write).
    Seen on a file made there (once per folder); where none can be made, the umask's."""
    key = Path(os.path.abspath(folder))
    if key not in _FILE_MODES:
        try:
            _probe_file(key)
        except OSError:
            mask = os.umask(0o022)
            os.umask(mask)
            return 0o666 & ~mask
    return _FILE_MODES[key]


def _probe_file(folder: Path) -> os.stat_result:
    """The status of a file made in ``folder`` as a plain ``open()`` makes one (removed at once): whether one can be
    made (else the ``OSError``), the folder's clock, and the mode new files get there, kept for :func:`_file_mode`."""
    probe = _aside_name(Path(folder) / "probe", "part")  # a leftover of a killed process is swept as any other
    handle = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        status = os.fstat(handle)
    finally:
        # removed first, by one call: a Ctrl-C or SIGTERM raised between two calls here (the stop handlers raise where
        # Python is) left the probe behind in an output folder the stop had promised to leave as it was
        try:
            os.unlink(probe)
        except OSError:
            pass
        finally:
            os.close(handle)
    _FILE_MODES[Path(os.path.abspath(folder))] = stat.S_IMODE(status.st_mode)
    return status


def sha256_of(path: Path | str | Sequence[Path | str]) -> str:
    """SHA-256 of a file, of a folder's files (sorted relative paths and contents, each path ended by a NUL and
    followed by its file's size, so that no name and content can pass for another split of the same bytes), or of
    several files' contents in the order given (an image stored as a header and an image file); one file in a list
    hashes as that file."""
    if isinstance(path, (list, tuple)):
        if len(path) == 1:
            return sha256_of(path[0])
        files, path = [Path(p) for p in path], None
    else:
        path = Path(path)
        files = files_under(path) if path.is_dir() else [path]
    digest = hashlib.sha256()
    for file in files:
        if path is not None and path.is_dir():
            name = os.fsencode(file.relative_to(path))
            digest.update(name + b"\0" + file.stat().st_size.to_bytes(8, "little"))
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()
