"""One run at a time per output folder: a claim held for the whole run, not only while files are placed.

Two training runs given the same output folder used to both go on: each checked the folder before the other had
written anything (reading the cases and the first epoch take minutes), then each saved its checkpoints over the
other's and the second package replaced the first without a word. A claim is an exclusive advisory lock (flock)
on a hidden file beside the folder, ``.<name>.lock``, which names the process holding it; it is taken before the
folder is checked and released (the file removed) when the run ends. The kernel releases it when a process dies,
so a run killed outright leaves at most the file, which the next run takes over. The file sits beside the folder,
not in it, because the folder itself may not exist until the first checkpoint; missing parent folders are made for
it and removed again when the run leaves them empty. Claims are re-entrant within a process (the command line and
the library's ``train`` both claim). A file system without flock is used without a claim.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

from medseg.errors import OutputExistsError, OutputWriteError
from medseg.io.files import blocked_folder, real_path

__all__ = ["claimed", "claim_holder", "claim_path", "claim_refusal", "held_by_another", "holder_text",
           "remove_unheld_claims"]

log = logging.getLogger(__name__)

_HELD: dict[Path, int] = {}  # claim files this process holds, with how many nested claims hold each

# how every claim file is opened: never through a link (its name is known in advance, and anyone who may write beside
# the folder could point it at a file of this user's, which the claim would overwrite, or at /dev/zero, which the
# holder's read took until the memory ran out), and never waiting for a writer (a named pipe in its place, on which
# `medseg report` and a cohort step waited for ever)
_OPEN_FLAGS = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
_HOLDER_BYTES = 4096  # a claim names its process in a line (holder_text): a host's full name has up to 253 characters


def claim_path(folder: Path | str) -> Path:
    """The claim file of ``folder``: beside it (links resolved, so two names of one folder share a claim)."""
    folder = real_path(folder)
    return folder.parent / f".{folder.name}.lock"


def claim_refusal(folder: Path | str, what: str = "run") -> str | None:
    """Why :func:`claimed` refuses ``folder``'s claim file, in one line naming it: a symbolic link or a named pipe (a
    socket, a device) in its place, which it neither writes through nor waits on; None for a regular file, a folder
    or nothing there. A cohort fails the one case whose claim this is (:meth:`ResultsFolder.blocked_reason
    <medseg.cohort.records.ResultsFolder.blocked_reason>`)."""
    path = claim_path(folder)
    try:
        mode = path.lstat().st_mode
    except OSError:
        return None
    kind = next((name for test, name in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISFIFO, "a named pipe"),
                                         (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"),
                                         (stat.S_ISBLK, "a device")) if test(mode)), None)
    if kind is None:
        return None
    return (f"{path}: {kind} where medseg keeps its claim on {folder} (one {what} at a time); nothing is written "
            "through it: remove it and run again")


def _open_claim(path: Path, flags: int, mode: int = 0o666) -> int:
    """An open handle of the claim file ``path`` (:data:`_OPEN_FLAGS`); anything but a regular file there is an
    OSError, as a missing one."""
    handle = os.open(path, flags | _OPEN_FLAGS, mode)
    try:
        regular = stat.S_ISREG(os.fstat(handle).st_mode)
    except OSError:
        regular = False
    if not regular:
        os.close(handle)
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    return handle


@contextlib.contextmanager
def claimed(folder: Path | str, what: str = "run", wait: bool = False) -> Iterator[None]:
    """Hold ``folder`` for this process; another process's claim on it is an :class:`OutputExistsError` naming
    that process (``what``: the kind of run, for the message), or, with ``wait``, waited for. Claims are per
    process: two threads of one process share them."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no claim
        yield
        return
    path = claim_path(folder)
    if path in _HELD:
        _HELD[path] += 1
        try:
            yield
        finally:
            _HELD[path] -= 1
        return
    # not through a link on the way that leads nowhere: its target's folders were made for the claim file, and the
    # run wrote there (train -o moved/model into the missing mount point); without a claim, the run refuses the link
    made = _make_parents(path.parent) if blocked_folder(Path(folder).parent) is None else []
    handle = None
    try:
        handle = _lock(path, fcntl, folder, what, wait)
        if handle is not None:
            _HELD[path] = 1
        elif Path(folder).is_dir() and os.access(folder, os.W_OK):  # the run goes on, and nothing guards it
            log.warning("%s: cannot make the claim file %s (its folder is not writable, or the file system has no "
                        "locks); this %s goes on without keeping a second one out of the folder meanwhile", folder,
                        path, what)
        yield
    finally:
        if handle is not None:
            _HELD.pop(path, None)
            with contextlib.suppress(OSError):
                path.unlink()  # before the lock goes: a run waiting for it then opens a new file (see _lock)
            os.close(handle)
        for parent in made:  # the deepest first; a folder the run wrote into is not empty and stays
            with contextlib.suppress(OSError):
                parent.rmdir()


def _lock(path: Path, fcntl, folder: Path | str, what: str, wait: bool = False) -> int | None:
    """An open handle of ``path`` holding its exclusive lock, or None where no lock can be taken (a read-only
    folder, where the run fails anyway on its first write, with its own message; a file system without flock)."""
    while True:
        try:
            handle = _open_claim(path, os.O_RDWR | os.O_CREAT)  # as any new file: the umask decides
        except OSError as error:
            refusal = claim_refusal(folder, what)
            if refusal is not None:  # a link (O_NOFOLLOW's ELOOP), a named pipe: nothing written through it
                raise OutputWriteError(refusal) from error
            if not isinstance(error, PermissionError):
                return None
            # another user's claim file, which this user may read only
            if not os.path.lexists(path):  # none there: its folder takes no new file from this user (no claim)
                return None
            if _foreign_claim_gone(path, fcntl, folder, what, wait):
                continue  # removed (a killed run's) or released meanwhile: make this run's own
            return None
        try:
            _flock(handle, fcntl, fcntl.LOCK_EX, path, folder, what, wait)
        except OutputExistsError:  # held by another run (an OSError too: before the next clause)
            os.close(handle)
            raise
        except OSError:
            os.close(handle)
            return None
        except BaseException:
            os.close(handle)
            raise
        try:  # the holder before us may have removed the file between our open and our lock: lock the new one
            same = os.fstat(handle).st_ino == os.stat(path).st_ino
        except OSError:
            same = False
        except BaseException:  # a stop (see below)
            os.close(handle)
            raise
        if same:
            break
        os.close(handle)
    try:
        with contextlib.suppress(OSError):
            os.ftruncate(handle, 0)
            os.write(handle, f"{holder_text()}\n".encode())
    except BaseException:  # a stop landing here lost the locked handle: a process that goes on after it (a job's
        os.close(handle)  # deadline) was refused its next claim on the folder by itself
        raise
    return handle


def _flock(handle: int, fcntl, mode: int, path: Path, folder: Path | str, what: str, wait: bool) -> None:
    """flock ``mode`` (exclusive, or shared) on the open claim file ``path``: where another run holds it, refused
    naming the holder (:func:`_held`), or with ``wait`` waited for after a warning (a signal's exception, Ctrl-C,
    ends the wait). A file system without flock raises its OSError."""
    try:
        fcntl.flock(handle, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(handle)
        if not wait:
            raise _held(folder, what, holder, path) from None
        log.warning("%s: held by another %s (%s); waiting for it to end", path, what, holder)
        fcntl.flock(handle, mode)


def _held(folder: Path | str, what: str, holder: str, path: Path) -> OutputExistsError:
    """The refusal of a run that finds ``folder`` claimed by ``holder`` (per the claim file ``path``)."""
    return OutputExistsError(f"{folder}: another {what} is writing to this folder ({holder}, per {path}); wait for it "
                             "to end or give another folder")


def _foreign_claim_gone(path: Path, fcntl, folder: Path | str, what: str, wait: bool) -> bool:
    """A claim file this user may not open for writing: another user's, made under a umask that left it
    read-only to the group (umask 022). Taken for "no locks here", such a file let a second run go on beside the
    first, in a results folder the group shares. Held by a live run: refused naming it, or with ``wait`` waited for
    (a shared lock, which a file open for reading takes also over NFS). Not held: a killed run's leftover, removed
    while a shared lock keeps its owner's next run from taking it meanwhile. True when the file is gone (make this
    run's own); False where it cannot be told (no locks) or removed (no write access to its folder: no claim, as
    before)."""
    try:
        handle = _open_claim(path, os.O_RDONLY)
    except FileNotFoundError:  # released meanwhile
        return True
    except OSError:
        return False
    try:
        try:
            _flock(handle, fcntl, fcntl.LOCK_SH, path, folder, what, wait)
        except OutputExistsError:  # held by a live run (an OSError too: before the next clause)
            raise
        except OSError:  # a file system without flock
            return False
        try:
            same = os.fstat(handle).st_ino == os.stat(path).st_ino
        except FileNotFoundError:  # its holder ended and removed it
            return True
        except OSError:
            return False
        if not same:  # replaced meanwhile: look again
            return True
        left = _holder(handle)
        try:
            path.unlink()
        except FileNotFoundError:
            return True
        except OSError:
            return False
        log.info("%s: removed the claim file a %s that ended left (%s)", path, what, left)
        return True
    finally:
        os.close(handle)


def _user() -> str:
    """This process's user name (its uid where the system has no name for it)."""
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except (KeyError, OSError):
        return f"uid {os.geteuid()}"


def holder_text() -> str:
    """How a claim file names this process (``pid 4242 on login1, user alice``): who to ask, in a folder a group
    shares."""
    return f"pid {os.getpid()} on {socket.gethostname()}, user {_user()}"


def held_by_another(folder: Path | str) -> str | None:
    """Who holds ``folder``'s claim (:func:`holder_text`) when another process does; None when none does. Only looked
    at (a shared lock, taken and dropped at once): processes that look at the same time do not stop each other, and
    no claim file is made or removed."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no claims
        return None
    try:
        handle = _open_claim(claim_path(folder), os.O_RDONLY)
    except OSError:  # no claim file (or a link, a named pipe: no claim's): nobody holds the folder
        return None
    try:
        fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _holder(handle)
    except OSError:  # a file system without flock: no claims
        return None
    finally:
        os.close(handle)  # drops the shared lock, if taken
    return None


def remove_unheld_claims(folder: Path | str) -> list[Path]:
    """Remove the claim files in ``folder`` (``.<name>.lock``: the claims on its entries, as a cohort's ``status/``
    holds one per case worked on) that no process holds; return them. A stop that lands as a claim is taken or given
    back (between the file's making and its lock, or its lock's release and its removal) leaves the file, which the
    next claim of the same entry takes over, but which looked like a crashed run's. Each is removed under its own lock,
    so that a process opening it meanwhile locks a new file instead (:func:`claimed`); a held one, of a process still
    working, is kept. Nothing is removed where the platform or file system has no locks."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no claims
        return []
    try:
        names = sorted(entry.name for entry in os.scandir(folder) if entry.name.startswith(".")
                       and entry.name.endswith(".lock") and entry.is_file(follow_symlinks=False))
    except OSError:
        return []
    removed = []
    for name in names:
        path = Path(folder, name)
        try:
            handle = _open_claim(path, os.O_RDWR)
        except OSError:  # gone meanwhile, another user's, or a link put in its place since
            continue
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if os.fstat(handle).st_ino == os.stat(path).st_ino:
                path.unlink()
                removed.append(path)
        except OSError:  # held (BlockingIOError), replaced or removed meanwhile, or no locks here
            continue
        finally:
            os.close(handle)
    return removed


def claim_holder(folder: Path | str) -> str | None:
    """The process a claim file of ``folder`` names (:func:`holder_text`), held or left by a killed run; None when
    there is none."""
    try:
        handle = _open_claim(claim_path(folder), os.O_RDONLY)
    except OSError:
        return None
    try:
        return _read_holder(handle) or None
    finally:
        os.close(handle)


def _holder(handle: int) -> str:
    """Who holds a claim, as its file says."""
    return _read_holder(handle) or "a process that has not yet written its name"


def _read_holder(handle: int) -> str:
    """The process the open claim file ``handle`` names (:func:`holder_text`); empty where it names none yet."""
    try:
        return os.pread(handle, _HOLDER_BYTES, 0).decode("utf-8", "replace").strip()
    except OSError:
        return ""


def _make_parents(folder: Path) -> list[Path]:
    """Make ``folder`` and its missing parents; the ones made, deepest first (none when it cannot be made: the run
    then fails on its own write, with its own message)."""
    missing = []
    while not folder.exists() and folder.parent != folder:
        missing.append(folder)
        folder = folder.parent
    made = []
    for parent in reversed(missing):
        try:
            parent.mkdir()
        except FileExistsError:
            continue
        except OSError:
            break
        made.append(parent)
    return made[::-1]
