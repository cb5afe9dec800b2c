"""Files and folders as they are found: listing a folder, naming what is not there or cannot be read."""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from medseg.errors import ImageReadError, InputError

if TYPE_CHECKING:
    from typing import TypeGuard

__all__ = ["absent_content", "absent_files", "absolute_path", "apple_double", "blocked_folder", "check_present",
           "check_readable", "check_searchable", "dicom_modality", "exists", "files_under", "further_channels",
           "is_annex_link", "is_dicom_file", "is_path", "link_nowhere", "missing_under", "name_difference",
           "nnunet_channel", "not_regular", "not_there", "os_reason", "part10_seg_series", "path_argument",
           "plain_name", "real_path", "type_text", "undecodable", "unencodable_name", "unread_channels",
           "with_article"]

_APPLE_DOUBLE_MAGIC = b"\x00\x05\x16\x07"
_ANNEX_POINTER = b"/annex/objects/"  # an unlocked git-annex file whose content is not here holds its key's path
_LFS_POINTERS = (b"version https://git-lfs.github.com/spec/v1\n", b"version https://hawser.github.com/spec/v1\n")
_REPOSITORY_FOLDERS = frozenset({".git", ".datalad"})  # a repository's own, never a study's slices
_REPOSITORY_FILES = frozenset({".git", ".gitattributes", ".gitignore", ".gitmodules"})
_POINTER_BYTES = 1024  # Git LFS pointers are under 1024 bytes; a git-annex pointer is its key, a line


def apple_double(path: Path | str) -> str | None:
    """What to say of a macOS resource-fork file (AppleDouble: the ``._scan.nii.gz`` a Mac writes beside
    ``scan.nii.gz`` on a disk or in an archive it makes; the Decathlon's tarballs hold one per image): a file named
    ``._…`` that starts with AppleDouble's magic number. None for any other file, or one that cannot be read."""
    path = Path(path)
    if not path.name.startswith("._"):
        return None
    try:
        with open(path, "rb") as handle:
            if handle.read(4) != _APPLE_DOUBLE_MAGIC:
                return None
    except OSError:
        return None
    return (f"a macOS resource-fork file (AppleDouble, the '._' companion of {path.name[2:]} that a Mac writes and "
            "the Decathlon's tarballs hold), not an image")


def _annex_link(target: str) -> bool:
    """Whether a link's ``target`` leads into a git-annex object store (``../.git/annex/objects/Xk/Mv/KEY/KEY``),
    as git-annex and DataLad store a locked file."""
    return "/annex/objects/" in "/" + target.replace("\\", "/")


def is_annex_link(path: Path | str) -> bool:
    """Whether ``path`` is a link into a git-annex object store: a locked file of a DataLad / git-annex dataset,
    whose content is there or not."""
    try:
        return os.path.islink(path) and _annex_link(os.readlink(path))
    except OSError:
        return False


def _absent_kind(path: Path) -> str | None:
    """Which of a dataset's stand-ins for absent content ``path`` is: ``annex link``, ``annex pointer``, ``lfs
    pointer``; None for any other path."""
    try:
        if path.is_symlink() and not path.exists():
            return "annex link" if _annex_link(os.readlink(path)) else None
        if not path.is_file() or path.stat().st_size > _POINTER_BYTES:
            return None
        with open(path, "rb") as handle:
            head = handle.read(_POINTER_BYTES)
    except OSError:
        return None
    if head.startswith(_ANNEX_POINTER):
        return "annex pointer"
    return "lfs pointer" if head.startswith(_LFS_POINTERS) else None


_ABSENT_WHAT = {"annex link": "a git-annex link whose content is not present here (not fetched, or dropped)",
                "annex pointer": "a git-annex pointer file, not {what} (an unlocked file whose content is not "
                                 "present here)",
                "lfs pointer": "a Git LFS pointer file, not {what} (its content was not pulled)"}


def _lfs_pull(paths: list[Path]) -> str:
    """``git lfs pull`` limited to ``paths`` (files or folders): ``git lfs pull --include=images/case4.nii.gz``.
    git-lfs takes ``--include=<paths>``, a comma-separated list of patterns matched against paths from the
    repository's root (not from the current folder, and not absolute), so the paths are given from the root of the
    Git repository that holds them (the nearest folder above with a ``.git``, found from where the path leads: a
    pointer reached through a linked folder lives in the repository the link leads into, not in the one, if any,
    that holds the link), and, where the current folder is not in it, the command runs there
    (``git -C ROOT lfs pull …``). The whole ``git lfs pull`` where there is no such
    repository (or the paths are in several), or where a path holds a comma or a wildcard character, which a
    pattern cannot say literally."""
    import shlex

    roots, included = set(), []
    for path in paths:
        absolute = Path(os.path.realpath(path))  # links followed: the repository the pointer itself lives in
        root = next((folder for folder in (absolute, *absolute.parents) if os.path.lexists(folder / ".git")), None)
        if root is None:
            return "git lfs pull"
        roots.add(root)
        included.append(absolute.relative_to(root).as_posix())
    if len(roots) != 1 or any(char in name for name in included for char in ",*?[\\") or "." in included:
        return "git lfs pull"
    root = roots.pop()
    here = Path(os.path.realpath(os.curdir))
    where = "" if here == root or root in here.parents else f" -C {shlex.quote(os.fspath(root))}"
    return f"git{where} lfs pull --include={shlex.quote(','.join(included))}"


def _fetch_hint(kind: str, paths: list[Path], them: bool = False) -> str:
    """How to fetch the content of ``paths`` (a file; or folders, or several files: ``them``)."""
    import shlex

    if kind == "lfs pointer":
        return f"fetch {'them' if them else 'it'} with {_lfs_pull(paths)}"
    named = " ".join(shlex.quote(os.fspath(path)) for path in paths)
    return f"fetch {'them' if them else 'it'} with datalad get {named} (or git annex get)"


def absent_content(path: Path | str, what: str = "an image") -> str | None:
    """What to say of a file of a DataLad / git-annex or Git LFS dataset whose content is not here, and how to fetch
    it: a git-annex link that leads nowhere (content never fetched, or dropped), the pointer file an unlocked
    git-annex file is in its place (an adjusted branch, as on Windows), a Git LFS pointer file (``git lfs pull`` not
    run). None for any other path (a present annexed file, a link to a present file, an image). Read as a link or as
    an image, such a file was "a link that leads nowhere" or "not a NIfTI image", which said nothing of the fix.
    ``what``: what the file was to be, for a pointer file (``the weights``)."""
    path = Path(path)
    kind = _absent_kind(path)
    return None if kind is None else f"{_ABSENT_WHAT[kind].format(what=what)}: {_fetch_hint(kind, [path])}"


def check_present(path: Path | str) -> None:
    """Refuse, naming it and how to fetch it, a file of a DataLad / git-annex or Git LFS dataset whose content is
    not here (:func:`absent_content`)."""
    absent = absent_content(path)
    if absent is not None:
        raise ImageReadError(f"{path}: {absent}")


def nnunet_channel(name: str) -> tuple[str, str] | None:
    """A file's name without its suffixes (``case_0001``) split as nnU-Net names a case's input channels, into the
    case and the channel's four digits: ``("case", "0001")``; None for a name without a channel suffix."""
    match = re.fullmatch(r"(.+)_(\d{4})", name)
    return None if match is None else (match.group(1), match.group(2))


def further_channels(paths) -> list[tuple[Path, Path]]:
    """The files among ``paths`` named as nnU-Net names a case's second, third… input channel (``case_0001.nii.gz``)
    whose first channel (``case_0000.nii.gz``, in the same folder) is among them too, each with that first
    channel's file: segmented one by one, each channel would be taken for a case of its own. Folders are not, as
    for :func:`unread_channels`: DICOM series folders ``series_0000``, ``series_0001`` are series of their own."""
    from medseg.volume import stem

    firsts: dict[tuple[str, str], Path] = {}
    named = []
    for path in map(Path, paths):
        split = nnunet_channel(stem(path))
        if split is None or _is_folder(path):
            continue
        key = (os.path.dirname(os.path.abspath(path)), split[0])  # data/a_0000 and /…/data/a_0001: one case
        if split[1] == "0000":
            firsts[key] = path
        else:
            named.append((key, path))
    return [(path, firsts[key]) for key, path in named if key in firsts]


def _is_folder(path: Path) -> bool:
    """``Path.is_dir``, False where the path cannot be looked at (its input's own read says why)."""
    try:
        return path.is_dir()
    except OSError:
        return False


def unread_channels(paths) -> list[tuple[Path, Path]]:
    """The files among ``paths`` named as nnU-Net names a case's first input channel (``case_0000.nii.gz``) whose
    second (``case_0001.nii.gz``, in the same folder, of the same ending) is there but not among them, each with that
    second channel's file: a model of one image a case reads the first alone, the case's other channels unread.
    Folders are not: DICOM series folders named ``series_0000``, ``series_0001`` are series of their own."""
    from medseg.volume import stem

    given = {os.path.abspath(path) for path in paths}  # data/a_0001 and /…/data/a_0001 are one file given
    found = []
    for path in map(Path, paths):
        name = stem(path)
        split = nnunet_channel(name)
        if split is None or split[1] != "0000":
            continue
        second = path.with_name(f"{split[0]}_0001{path.name[len(name):]}")
        try:
            beside = os.path.abspath(second) not in given and exists(second) and not path.is_dir()
        except (ImageReadError, OSError):  # a folder that cannot be searched: its input's own read says so
            continue
        if beside:
            found.append((path, second))
    return found


def undecodable(error: UnicodeDecodeError, skipped: int = 0) -> str:
    """Where a text file stops being the encoding it was read as: ``byte 0xe9 on line 2, column 7`` (the column in
    bytes, as an editor showing the raw file counts them); for UTF-16, whose line breaks are two bytes, ``byte 0xd8
    at byte 40 of the text``. ``skipped``: bytes of the file before the decoded ones (a UTF-8 byte order mark that
    ``utf-8-sig`` took off), which count in line 1's column."""
    byte = f"byte {error.object[error.start]:#04x}"
    if str(error.encoding).lower().replace("-", "").startswith("utf16"):
        return f"{byte} at byte {error.start} of the text"
    before = bytes(error.object[:error.start])
    line, column = before.count(b"\n") + 1, len(before) - before.rfind(b"\n")
    if line == 1:
        column += skipped
    return f"{byte} on line {line}, column {column}"


# letters whose names start with a vowel sound (ef, aitch, el, em, en, ar, es, ex): read out one by one at the start of
# a type's name, they take "an" (an ndarray, an MGHImage), unless they begin a spoken word (a str, a float, a list)
_VOWEL_SOUND_LETTERS = "fhlmnrsx"
_SPOKEN_STARTS = ("fl", "fr", "sc", "sh", "sk", "sl", "sm", "sn", "sp", "sq", "st", "sw")


def unencodable_name(error: UnicodeEncodeError) -> str | None:
    """What to say of ``error`` where it is a file name the file system encoding cannot hold: a path read from a file
    (a sidecar's input) holding ``é`` where that encoding is ASCII (a C locale with Python's UTF-8 mode turned off):
    the name, the character and how to run instead. None for any other encoding error. The names a command line
    gives, and those of folders listed, are the system's own and always encode."""
    import codecs
    import sys

    encoding = codecs.lookup(sys.getfilesystemencoding()).name
    if encoding == "utf-8" or codecs.lookup(error.encoding).name != encoding or not isinstance(error.object, str):
        return None
    return (f"{error.object}: the file name holds {error.object[error.start]!r}, which this system's file name "
            f"encoding ({sys.getfilesystemencoding()}) cannot hold; run medseg in a UTF-8 locale (LC_ALL=C.UTF-8) or "
            "with PYTHONUTF8=1")


def with_article(name: str) -> str:
    """A type's name after the article it takes as read aloud: ``an int``, ``an ndarray`` (en-dee-array), ``an
    MGHImage``, ``a Nifti1Image``, ``a NoneType``, ``a str``, ``a uint8`` (you-int)."""
    lower = name.lower()
    first, second = lower[:1], lower[1:2]
    if first in "aeio":
        vowel_sound = bool(first)
    elif first == "u":  # a uint8, a ufunc, a URL, a user; an unsigned
        vowel_sound = second not in ("i", "f", "r", "s", "u")
    elif first == "x":  # an xarray, an XML
        vowel_sound = True
    elif first in _VOWEL_SOUND_LETTERS and second and second not in "aeiouy":  # two consonants: read letter by letter
        vowel_sound = name[:2].isupper() or lower[:2] not in _SPOKEN_STARTS
    else:
        vowel_sound = False
    return f"{'an' if vowel_sound else 'a'} {name}"


def type_text(value) -> str:
    """``value``'s type with its article, for the errors about an argument of the wrong type: ``a NoneType``,
    ``an int``, ``an ndarray`` (:func:`with_article`)."""
    return with_article(type(value).__name__)


def is_path(value: object) -> TypeGuard[str | os.PathLike]:
    """Whether a caller's ``value`` is a path: text or an ``os.PathLike`` (a :class:`~pathlib.Path`); not bytes,
    None, a list of paths or a number."""
    return isinstance(value, (str, os.PathLike))


def path_argument(value, role: str) -> Path:
    """``value``, a caller's path (text or an ``os.PathLike``), as a :class:`~pathlib.Path`; anything else (None, a
    list of paths, a number) an :class:`InputError` saying what was given as ``role`` ("the input"), where ``Path``
    raised its own TypeError ("expected str, bytes or os.PathLike object, not NoneType")."""
    if is_path(value):
        return Path(value)
    many = " (one call takes one path; call it for each)" if isinstance(value, (list, tuple, set)) else ""
    raise InputError(f"{type_text(value)} given as {role}; give a path (a str or a pathlib.Path){many}")


def absolute_path(path: Path | str) -> Path:
    """``path`` made absolute and lexically normalised (``a/../b`` -> ``b``), symbolic links kept as written; except
    where ``..`` follows a link to a folder elsewhere (``scans/../labels`` with ``scans`` a link): the shell, and
    every reader, opens the one beside the link's target, and so is it named. Only that step is resolved: a link
    named after it (``scans/../labels_link/a.nii.gz``) stays as written, as a file that is itself a link does (a
    content-addressed store's ``blob-0001``: its name tells its format); resolving all the folders before the file
    named the target of every link on the way."""
    written = Path(path)
    if ".." not in written.parts:
        return Path(os.path.abspath(written))
    here = Path(os.path.abspath(written.anchor or "."))
    for part in written.parts[1:] if written.anchor else written.parts:
        if part != "..":
            here = here / part
        elif os.path.realpath(here.parent) == os.path.dirname(os.path.realpath(here)):
            here = here.parent  # the parent as written is the one the file system goes to
        else:  # a link to a folder elsewhere: its target's parent
            here = Path(os.path.dirname(os.path.realpath(here)))
    return here


def real_path(path: Path | str) -> Path:
    """``Path.resolve`` as Python 3.13 does it: links followed, and a loop of links (``a`` a link to ``a``) left as
    written, where Python 3.11 and 3.12 raise ``RuntimeError`` (a traceback, where the reader names such a link
    "a link that leads nowhere")."""
    return Path(os.path.realpath(path))


def link_nowhere(link: Path | str) -> str:
    """What a symbolic link that leads nowhere is, after its name: ``a symbolic link to moved/scans, which does not
    exist``, or, for a loop (``scans`` a link to ``scans``, or two links to each other), ``a symbolic link to scans,
    a loop of links that leads nowhere`` (which was said as "a link to scans, which does not exist", a file to look
    for that was the link itself)."""
    import errno

    try:
        target = os.readlink(link)
    except OSError:
        return "a symbolic link that cannot be read"
    try:
        os.stat(link)
    except OSError as error:
        if error.errno == errno.ELOOP:
            return f"a symbolic link to {target}, a loop of links that leads nowhere"
    return f"a symbolic link to {target}, which does not exist"


def blocked_folder(folder: Path | str) -> str | None:
    """What stops ``folder`` from being made, or used, as a folder, in words that name it: ``notes.txt is a file, not
    a folder`` (a file in its place or in the place of a folder above it), ``scans is a symbolic link to …, which
    does not exist`` (a link on the way that leads nowhere, or a loop of links: :func:`link_nowhere`), or ``shared is
    a folder whose files this user may not reach (permission denied)`` (no search permission on the way, there or in
    a link's target). None where nothing on the way stops it (a name too long, or a folder this user may not write
    to: making it says those). Looked at with ``os.lstat``: ``Path.exists`` raised a bare ``PermissionError`` (or
    "File name too long") for a path it cannot look at, a traceback where the command named its ``-o``."""
    import errno
    import stat

    folder = Path(folder)
    unreachable = False  # a folder deeper on the way could not be looked at: this one's files are out of reach
    for part in (folder, *folder.parents):
        try:
            mode = os.lstat(part).st_mode
        except OSError as error:
            unreachable = unreachable or error.errno in (errno.EACCES, errno.EPERM)
            continue  # not there (yet), or under a file or a folder out of reach: said from further up
        if stat.S_ISLNK(mode):
            try:
                mode = os.stat(part).st_mode
            except OSError as error:
                if error.errno not in (errno.EACCES, errno.EPERM):
                    return f"{part} is {link_nowhere(part)}"
                return (f"{part} is a symbolic link to {os.readlink(part)}, which this user may not reach (permission "
                        "denied)")
        if not stat.S_ISDIR(mode):
            return f"{part} is a file, not a folder"
        return f"{part} is a folder whose files this user may not reach (permission denied)" if unreachable else None
    return None


# why a path in a folder this user may not search cannot be read: one wording wherever it is told (a case made before
# and a case not made yet read alike; one said "cannot look at it", the other "cannot read (permission denied)")
SEARCH_DENIED = "permission denied: a folder on its way cannot be searched"


def exists(path: Path | str) -> bool:
    """``Path.exists``, with a path that cannot be looked at (a folder on its way without search permission) an
    :class:`ImageReadError` naming it, where ``Path.exists`` raises a bare ``PermissionError``."""
    try:
        return Path(path).exists()
    except PermissionError as error:
        raise ImageReadError(f"{path}: cannot read ({SEARCH_DENIED})") from error


def name_difference(first: str, second: str) -> str:
    """How two file names that look alike differ: ``in letter case``, ``in how an accent is composed, as one
    character or as a letter and its accent`` (``é`` as one character, or as ``e`` and its accent, as macOS names
    files), or both; for the errors about names that macOS's and Windows's disks hold as one file."""
    import unicodedata

    if first.casefold() == second.casefold():
        return "in letter case"
    if unicodedata.normalize("NFC", first) == unicodedata.normalize("NFC", second):
        return "in how an accent is composed, as one character or as a letter and its accent"
    return "in letter case and in how an accent is composed"


def os_reason(error: OSError) -> str:
    """An OS error's reason as medseg's messages word it, in lower case: ``permission denied``, ``no space left on
    device`` (every message words it so, reading or writing); an error without the OS's reason, its own text."""
    if error.strerror:
        return error.strerror.lower()
    return str(error) or type(error).__name__


def check_readable(path: Path, prefix: str = "") -> None:
    """Refuse, naming ``path`` (after ``prefix``, e.g. "scan.hdr: cannot read the data file"), a regular file that
    cannot be opened: nibabel words that as a file it cannot make out; and a dataset's file whose content is not here
    (:func:`check_present`). Other kinds of file are not opened (a named pipe would wait for a writer)."""
    if not path.is_file():
        return
    try:
        with open(path, "rb"):
            pass
    except OSError as error:
        raise ImageReadError(f"{prefix or f'{path}: cannot read'} ({os_reason(error)})") from error
    check_present(path)


def check_searchable(folder: Path | str) -> None:
    """Refuse, naming it, a folder whose files this user may not reach (no search permission: ``chmod 0``, ``a-x``),
    where every path under it would be refused one by one; a folder that is not there (yet) passes, as does one
    that is searchable but not listable (``-wx``: its files are reached by name)."""
    try:
        os.stat(os.path.join(folder, "."))
    except PermissionError as error:
        raise InputError(f"{folder}: cannot look at its files ({os_reason(error)})") from error
    except OSError:
        return


def not_there(path: Path | str, what: str = "no such file or folder") -> str:
    """Why ``path``, which does not exist, is not there: ``what``, or, for a link, where it leads (a link whose target
    was moved or deleted, or a loop of links, was said to be no file at all, beside the link the user can see; a
    git-annex link, that its content is not here and how to fetch it)."""
    path = Path(path)
    if path.is_symlink():
        try:
            target = os.readlink(path)
        except OSError:
            return what
        if _annex_link(target):
            return absent_content(path) or what
        return f"a link to {target} that leads nowhere (its target moved or deleted, or a loop of links)"
    alike = _spelt_otherwise(path)
    if alike is not None:
        found, differences = alike
        return f"{what}; {found} is there (the path given differs only in {differences})"
    return what


_STRAY = " \t\"'"  # what a path pasted from a file manager brings along: a space after it, or its quotes
_LOOKED_AT = 10_000  # names of a folder compared at most: an error line, not a search of a huge folder
_DIFFERENCES = {"stray": "a space or quote at an end of a name", "case": "letter case",
                "accent": "how an accent is composed, as one character or as a letter and its accent"}


def _spelt_otherwise(path: Path) -> tuple[Path, str] | None:
    """The path that is there where ``path``, which is not, is spelt otherwise, and how it differs: spaces and quotes
    at the ends of its names (``scan.nii.gz ``, ``'scan.nii.gz'``, ``Übung 1 /scan.nii.gz``: pasted from a file
    manager), letter case (``Phantom.nii.gz``: course notes written on Windows or macOS, whose disks take either), how
    an accent is composed (``Übung`` copied from a Mac, its ``Ü`` a ``U`` and its accent); None where no one path
    there matches. A pasted space cannot be seen in the message that says the file is not there."""
    import unicodedata

    text = str(path).strip(_STRAY)
    if not text:
        return None
    kinds = {"stray"} if text != str(path) else set()
    anchor = Path(text).anchor
    found = Path(anchor) if anchor else None
    for part in Path(text[len(anchor):]).parts:
        here = found / part if found is not None else Path(part)
        if part == ".." or os.path.lexists(here):
            found = here
            continue
        folder = os.path.abspath(found if found is not None else ".")
        try:
            alike = _names_by_key(folder, os.stat(folder).st_mtime_ns).get(_name_key(part), [])
        except OSError:
            return None
        if len(alike) != 1:
            return None
        # the stray space or quote may be the name's on disk (a folder made as -o "Ergebnisse "), not the typed one's
        name, core = alike[0], part.strip(_STRAY)
        bare = name.strip(_STRAY)
        kinds |= {kind for kind, differs in (
            ("stray", core != part or bare != name),
            ("case", unicodedata.normalize("NFC", core) != unicodedata.normalize("NFC", bare)),
            ("accent", core.casefold() != bare.casefold() and unicodedata.normalize("NFC", core).casefold()
             == unicodedata.normalize("NFC", bare).casefold())) if differs}
        found = found / name if found is not None else Path(name)
    if found is None or found == path or not kinds:
        return None
    words = [_DIFFERENCES[kind] for kind in _DIFFERENCES if kind in kinds]
    return found, " and ".join(words) if len(words) < 3 else f"{words[0]}, {words[1]} and {words[2]}"


def _name_key(name: str) -> str:
    """``name`` as :func:`_spelt_otherwise` compares names: without stray spaces and quotes, NFC, case folded."""
    import unicodedata

    return unicodedata.normalize("NFC", name.strip(_STRAY)).casefold()


@functools.lru_cache(maxsize=8)
def _names_by_key(folder: str, mtime_ns: int) -> dict[str, list[str]]:
    """The names in ``folder`` (the first :data:`_LOOKED_AT`) by :func:`_name_key`, read once while the folder's
    modification time, ``mtime_ns``, stays as it was: a batch of many missing inputs of one large folder lists it once,
    not once per input."""
    names: dict[str, list[str]] = {}
    with os.scandir(folder) as entries:
        for _, entry in zip(range(_LOOKED_AT), entries):
            names.setdefault(_name_key(entry.name), []).append(entry.name)
    return names


_WORDS_JOINED = 8  # words of one path split at its spaces, at most: a batch of many missing inputs stays quick


def split_path(arguments: list[str]) -> tuple[list[str], str] | None:
    """The first run of ``arguments`` that are not there but, joined by spaces, name a path that is: a path with a
    space given without quotes, which the shell split into words (``Übung 1/scan.nii.gz``: ``Übung`` and
    ``1/scan.nii.gz``), as ``(words, joined)``, of up to eight words; None where there is none."""
    for start, first in enumerate(arguments):
        if not first or os.path.lexists(first):
            continue
        for stop in range(start + 2, min(len(arguments), start + _WORDS_JOINED) + 1):
            joined = " ".join(arguments[start:stop])
            if os.path.lexists(joined):
                return arguments[start:stop], joined
    return None


def not_regular(path: Path | str) -> str:
    """What ``path``, which exists but is neither a regular file nor a folder, is: ``not a regular file (a named
    pipe)``, or, for a link, ``a link to /dev/zero, not a regular file (a character device)`` (such a link was said to
    lead nowhere, and a named pipe to be missing)."""
    import stat

    path = Path(path)
    try:
        mode = path.stat().st_mode
    except OSError:
        return not_there(path)
    kind = next((name for test, name in ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISCHR, "a character device"),
                                         (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
                 if test(mode)), "not a file or folder")
    if path.is_symlink():
        try:
            return f"a link to {os.readlink(path)}, not a regular file ({kind})"
        except OSError:
            pass
    return f"not a regular file ({kind})"


def files_under(folder: Path | str) -> list[Path]:
    """Every file under ``folder``, sorted: links to files are followed, links to folders are not (as
    ``Path.rglob``). A subfolder that cannot be listed or an entry that cannot be looked at (no permission) is an
    :class:`ImageReadError` naming it: ``rglob`` passes over the first in silence, so a series stored in part in such
    a folder would be read without those slices, and raises a bare ``PermissionError`` for the second. So are the
    files of a DataLad / git-annex or Git LFS dataset whose content is not here (:func:`absent_content`), named
    together: a series fetched in part was read without them (its links lead nowhere), or refused as holding a file
    cut short (a pointer file named ``.dcm``). So are links that lead nowhere and are not git-annex's (a missing file,
    named with where it led). A repository's own files are not the folder's: a ``.git`` (the
    repository, with a DataLad / git-annex dataset's store of contents, every slice a second time) or ``.datalad``
    folder, and ``.git``, ``.gitattributes``, ``.gitignore`` and ``.gitmodules`` files, as a dataset holding one
    study has them beside its slices."""
    folder = Path(folder)
    files, absent, broken = _walk(folder)
    missing = _missing_text(folder, absent, broken)
    if missing is not None:
        raise ImageReadError(f"{folder}: {missing}")
    return sorted(files)


def missing_under(folder: Path | str) -> str | None:
    """What :func:`files_under` says of the files under ``folder`` that are not here (a dataset's files whose
    content is not here, links that lead nowhere), without the folder's name: ``3 of its files are git-annex links
    whose content is not present here (…): fetch them with …``; None where there is none, or where the folder cannot
    be walked (reading it says why). A folder whose files are all there is told from one ``stat`` a file (a cohort
    asks it of every DICOM folder input of its sheet each time the workflow is planned)."""
    if _nothing_missing_under(Path(folder)):  # one walk of the entries' types and sizes where all are here
        return None
    try:
        _, absent, broken = _walk(Path(folder))
    except ImageReadError:
        return None
    return _missing_text(Path(folder), absent, broken)


def _nothing_missing_under(folder: Path) -> bool:
    """True where one walk with the entries' own types and sizes (``os.scandir``) finds under ``folder`` only files
    that :func:`_walk` takes as present, without reading them: a regular file (or a link to one) larger than any
    pointer file. False where a file may be missing, or an entry or folder cannot be looked at: the caller then
    walks as :func:`_walk` does, so both answer alike."""
    stack = [folder]
    try:
        while stack:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    if entry.is_dir():  # as os.walk sorts them (a link to a folder is not walked, nor a file)
                        if not entry.is_symlink() and entry.name not in _REPOSITORY_FOLDERS:
                            stack.append(Path(entry.path))
                        continue
                    if entry.name in _REPOSITORY_FILES:
                        continue
                    if entry.is_file(follow_symlinks=False):  # a regular file: a pointer file only when small
                        if entry.stat(follow_symlinks=False).st_size > _POINTER_BYTES:
                            continue
                        with open(entry.path, "rb") as handle:
                            if handle.read(_POINTER_BYTES).startswith((_ANNEX_POINTER, *_LFS_POINTERS)):
                                return False
                        continue
                    if entry.is_file() and entry.stat().st_size > _POINTER_BYTES:
                        continue  # a link to present content: no pointer file is this large
                    path = Path(entry.path)  # a small file, a link leading nowhere, a pipe: as _walk sees it
                    if (path.is_file() or path.is_symlink()) and (
                            absent_content(path) is not None or not (path.is_file() or path.exists())):
                        return False
    except OSError:
        return False
    return True


def _missing_text(folder: Path, absent: list[Path], broken: list[Path]) -> str | None:
    """:func:`missing_under`'s words for ``absent`` and ``broken`` files under ``folder``; None for none."""
    said = [_absent_files(folder, sorted(absent))] if absent else []
    if broken:
        said.append(_broken_links(folder, sorted(broken)))
    return "; ".join(said) or None


def _walk(folder: Path) -> tuple[list[Path], list[Path], list[Path]]:
    """The files under ``folder`` (:func:`files_under`), those of a dataset whose content is not here, and the links
    that lead nowhere (not git-annex's)."""
    def refuse(error: OSError) -> None:
        if error.filename == os.fspath(folder):  # the folder itself: "dcm: cannot list dcm (Permission denied)"
            raise ImageReadError(f"{folder}: cannot read ({os_reason(error)})") from error
        raise ImageReadError(f"{folder}: cannot list {error.filename} ({os_reason(error)})") from error

    files: list[Path] = []
    absent: list[Path] = []
    broken: list[Path] = []  # links that lead nowhere, not git-annex's: a file that is missing
    for root, folders, names in os.walk(folder, onerror=refuse):
        folders[:] = [name for name in folders if name not in _REPOSITORY_FOLDERS]  # not walked
        for name in names:
            if name in _REPOSITORY_FILES:
                continue
            path = Path(root, name)
            try:
                if path.is_file() or path.is_symlink():
                    if absent_content(path) is not None:
                        absent.append(path)
                    elif path.is_file():
                        files.append(path)
                    elif not path.exists():
                        broken.append(path)
            except OSError as error:
                raise ImageReadError(f"{folder}: cannot look at {path} ({os_reason(error)})") from error
    return files, absent, broken


def _broken_links(folder: Path, broken: list[Path]) -> str:
    """What to say of the links under ``folder`` that lead nowhere (their targets moved or deleted, or a loop of
    links), the first three named with their targets: missing files, which were passed over in silence (a series read
    without those slices); without the folder's name."""
    def shown(path: Path) -> str:
        try:
            return f"{os.path.relpath(path, folder)} -> {os.readlink(path)}"
        except OSError:
            return os.path.relpath(path, folder)

    one = len(broken) == 1
    listed = ", ".join(shown(path) for path in broken[:3]) + (", ..." if len(broken) > 3 else "")
    links = "a link that leads" if one else "links that lead"
    what = (f"{len(broken)} of its files {'is' if one else 'are'} {links} nowhere ({listed}: "
            f"{'its target' if one else 'their targets'} moved or deleted, or a loop of links), "
            f"{'a missing file' if one else 'missing files'}: restore {'its target' if one else 'their targets'} or "
            f"remove {'it' if one else 'them'}")
    return what


def dicom_modality(path: Path | str) -> str | None:
    """The Modality of a DICOM file (``SEG``, ``CT``, …), upper case; None where it has none or cannot be read. The
    header is read with ``force``: a file written without the 128-byte preamble and ``DICM`` marker (older exporters,
    some archives) is read too."""
    import pydicom

    try:
        value = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["Modality"], force=True).get("Modality")
    except Exception:  # noqa: BLE001 - pydicom raises many kinds on a damaged header or a file that is no DICOM
        return None
    return str(value).strip().upper() if value else None


_SEG_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"  # the Segmentation Storage SOP Class


def part10_seg_series(path: Path | str) -> set[str] | None:
    """The series a DICOM SEG file segments (those it references, as the check that it segments the series it is
    placed on reads them: :func:`~medseg.io.seg_reading.referenced_series`, its ReferencedSeriesSequence and, for
    series of other studies, its StudiesContainingOtherReferencedInstancesSequence; empty where it lists none), for a
    file that is a DICOM Part 10 file (the 128-byte preamble and ``DICM`` marker) of the Segmentation Storage SOP
    Class, as archives store a SEG under its SOP Instance UID, without a ``.dcm``; None for any other file, or one
    that cannot be read. Only the header is read, not the frames."""
    import pydicom

    from medseg.io.seg_reading import referenced_series

    if not _has_dicom_marker(path):
        return None
    try:
        seg = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=[
            "SOPClassUID", "ReferencedSeriesSequence", "StudiesContainingOtherReferencedInstancesSequence"])
        if str(seg.get("SOPClassUID", "")) != _SEG_STORAGE:
            return None
        return referenced_series(seg)
    except Exception:  # noqa: BLE001 - pydicom raises many kinds on a damaged header
        return None


def _absent_files(folder: Path, absent: list[Path]) -> str:
    """The error for a folder of a DataLad / git-annex or Git LFS dataset some of whose files' content is not here
    (a DICOM series fetched in part, whose missing slices were passed over as links that lead nowhere, or read as
    files that are not DICOM)."""
    shown = [Path(os.path.relpath(path, folder)) for path in absent]
    are = "is" if len(absent) == 1 else "are"
    return f"{len(absent)} of its files {are} {absent_files(absent, [folder], shown)}"


def absent_files(absent: list[Path], fetch: list[Path], shown: list[Path] | None = None) -> str:
    """What ``absent``, files of a DataLad / git-annex or Git LFS dataset whose content is not here
    (:func:`absent_content`), are, the first three named (as ``shown`` names them, else as given), and how to fetch
    them (``datalad get`` of the folders ``fetch``): ``git-annex links whose content is not present here (a, b):
    fetch them with datalad get images labels (or git annex get)``."""
    kinds = [_absent_kind(Path(path)) or "annex link" for path in absent]
    names = [os.fspath(path) for path in (shown or absent)]
    listed = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
    one = len(absent) == 1
    what = {"annex link": "a git-annex link" if one else "git-annex links",
            "annex pointer": "a git-annex pointer file" if one else "git-annex pointer files",
            "lfs pointer": "a Git LFS pointer file" if one else "Git LFS pointer files"}
    held = [text for kind, text in what.items() if kind in kinds]
    held_text = held[0] if len(held) == 1 else f"{', '.join(held[:-1])} and {held[-1]}"
    fetch_hint = _fetch_hint("lfs pointer" if set(kinds) == {"lfs pointer"} else "annex link", fetch, them=not one)
    if "lfs pointer" in kinds and set(kinds) != {"lfs pointer"}:
        fetch_hint = f"{fetch_hint[:-1]}; {_lfs_pull(fetch)} for the Git LFS ones)"
    return f"{held_text} whose content is not present here ({listed}): {fetch_hint}"


def is_dicom_file(path: Path | str) -> bool:
    """Is ``path`` a DICOM file (a DICOM SEG, as a label image): named ``.dcm``, or a file with the ``DICM`` marker
    after its 128-byte preamble, as DICOM files from an archive often have no suffix."""
    path = Path(path)
    if path.suffix.lower() == ".dcm":
        return True
    if path.name.lower().endswith((".nii", ".nii.gz", ".hdr", ".hdr.gz", ".img", ".img.gz", ".mgz", ".nrrd", ".nhdr",
                                   ".mha", ".mhd")):
        return False
    return _has_dicom_marker(path)


def _has_dicom_marker(path: Path | str) -> bool:
    """Whether ``path`` is a regular file with the ``DICM`` marker after its 128-byte preamble (a DICOM Part 10
    file); False for any other, or one that cannot be read."""
    try:
        if not os.path.isfile(path):  # checked before opening: opening a named pipe waits for a writer
            return False
        with open(path, "rb") as handle:
            return handle.read(132)[128:] == b"DICM"
    except OSError:
        return False


def plain_name(name: str) -> bool:
    """Whether ``name`` is a file's name alone here: no folder (``/``; on Windows ``\\`` too), not ``.`` or ``..``, no
    drive (on Windows). On POSIX ``\\`` and ``C:`` are characters of a name, as medseg records them: a series
    unzipped from a Windows archive holds ``DICOM\\IM0001`` files, a case may be named ``scan\\006``, and joined to a
    folder they stay in it."""
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        return False
    path = Path(name)  # the platform's own rules: a Windows path's folders and drive
    return not path.anchor and len(path.parts) == 1 and path.name == name
