"""What SimpleITK and the C++ libraries under it say while an NRRD / MetaImage file is read: the lines they print on
the process' standard error (file descriptor 2) kept instead of shown, and told in one line (a warning naming the
file, or the reason of an error), SimpleITK's own errors in one line; and each read run with medseg's threads, one
read at a time."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
import threading
from pathlib import Path

__all__ = ["sitk_reading"]

# the NRRD and MetaImage reader's logger, whichever of its modules warns: its warnings are told as
# "WARNING medseg.io.itk_image: ..."
log = logging.getLogger("medseg.io.itk_image")

class _Printed:
    text = ""


# fd 2 is the process's: two threads reading at once would each keep the other's lines (a good file refused with
# the "Uncompress failed" of a damaged one, the damaged one read as good), and the later to finish would put back
# the earlier one's capture as the standard error for ever. The reads whose lines are kept run one at a time.
_FD2_LOCK = threading.Lock()


@contextlib.contextmanager
def sitk_reading(sitk, reader):
    """A SimpleITK read: what the libraries print kept (:func:`_printed_by_libraries`, ``.text`` once it ends), and
    ITK's worker threads as many as medseg's own (:func:`medseg.resources.cpu_threads`: ``--threads``, else the CPUs
    and cgroup quota this process has), ``reader``'s and ITK's global default for the filters it makes (which would
    otherwise be every core of the machine), the global default put back afterwards. The reads run one at a time
    (the lock of :func:`_printed_by_libraries`), so no other read sees another count."""
    from medseg.resources import cpu_threads

    threads = cpu_threads()
    with _printed_by_libraries() as printed:
        default = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(threads)
        try:
            reader.SetNumberOfThreads(threads)
            yield printed
        finally:
            sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(default)


@contextlib.contextmanager
def _printed_by_libraries():
    """What the C++ libraries under SimpleITK print on the process' standard error (file descriptor 2) while the
    block runs, kept (``.text``, once it ends) instead of shown: MetaImage's library prints its reasons there itself,
    lines the user would see before medseg's one (and "Uncompress failed" is all it says of voxels it could not
    decompress). Where fd 2 cannot be taken over, nothing is kept. One block at a time in the process (threads
    wait on each other); what another thread writes to fd 2 meanwhile is kept with it."""
    with _FD2_LOCK:
        with _redirected_fd2() as kept:
            yield kept


@contextlib.contextmanager
def _redirected_fd2():
    """fd 2 pointed at a temporary file while the block runs, and put back however it ends."""
    kept = _Printed()
    try:
        sys.stderr.flush()
    except (AttributeError, OSError, ValueError):
        pass
    try:
        capture = tempfile.TemporaryFile()
    except OSError:  # no room for it: the lines are shown as they come
        yield kept
        return
    try:
        saved = os.dup(2)
    except OSError:
        capture.close()
        yield kept
        return
    try:
        os.dup2(capture.fileno(), 2)
        yield kept
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        capture.seek(0)
        kept.text = capture.read(1 << 16).decode("utf-8", "replace")
        capture.close()


_FAILED = re.compile(r"fail|error|cannot|can't|unable|not read", re.IGNORECASE)


def _says_failed(printed: str) -> bool:
    """Whether what the libraries printed says that something failed."""
    return bool(_FAILED.search(printed))


def _printed_reason(printed: str) -> str:
    """What the libraries printed, in one line: the lines that say what is wrong before the chain of the functions
    that gave up (``MetaImage: Read: Cannot parse file``)."""
    lines = [line.strip().rstrip(".") for line in printed.splitlines() if line.strip()]
    own = [line for line in lines if not re.match(r"^Meta\w*: ", line)]
    kept = list(dict.fromkeys(own or [re.sub(r"^Meta\w*: (?:\w+: )?", "", line) for line in lines]))
    text = "; ".join(kept)
    return text if len(text) <= 300 else text[:297] + "..."


def _log_printed(path: Path, printed: str) -> None:
    """What the libraries printed while a file was read well, as one warning naming it (not lines of their own)."""
    if printed.strip():
        log.warning("%s: SimpleITK: %s", path, _printed_reason(printed))


def _reason(error: RuntimeError, printed: str = "", header: bool = False) -> str:
    """SimpleITK's message in one line, without its source locations and object addresses; what the libraries
    printed meanwhile (``printed``) where it says more. ``header``: the error came reading the header alone."""
    if printed.strip():
        return ("its header cannot be parsed: " if header else "") + _printed_reason(printed)
    lines = [line.strip() for line in str(error).splitlines()]
    kept = []
    for line in lines:
        if not line or line.startswith("Exception thrown in SimpleITK") or "trouble" in line or line.endswith(":"):
            continue  # a source location, or a step of teem's chain of errors ("_nrrdRead: trouble")
        line = re.sub(r"^(?:sitk::ERROR|ITK ERROR): (?:\w+\(0x[0-9a-f]+\): )?", "", line)
        line = re.sub(r"^\[\w+\] \w+: ", "", line)
        kept.append(line)
    text = "; ".join(kept) or type(error).__name__
    if text.startswith("Unable to determine ImageIO reader"):
        return "SimpleITK finds no reader for its content"
    if text.startswith("File cannot be read") and "No such file or directory" in text:  # MetaImage's word for it
        return "its header cannot be parsed" if header else "its voxel data ends early or does not decompress"
    return text if len(text) <= 300 else text[:297] + "..."
