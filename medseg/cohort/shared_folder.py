"""A results folder several users, or machines, run into (a group's folder on a shared file system).

medseg replaces its outputs by renaming new files onto them, which takes write access to their folder only, and
makes them with the mode a new file gets there (the umask's, or a default ACL's). Two things still stopped another
member's run:

* a folder every job writes into (the results folder itself, ``jobs/``, ``status/``, ``logs/``...) that this user
  may not write, made by a member whose umask (022) leaves folders read-only to the group: planning removed a job
  record there and stopped with a ``PermissionError`` and Snakemake's traceback. It is refused in one line, naming
  the folder, its owner and the remedy (:func:`check_results_writable`);
* a file Snakemake rewrites in place or checks before running a job (a job record, the report's files, a
  benchmark), made by such a member in a folder the group may write: Snakemake refused the job ("Write-protected
  output files") or failed writing its benchmark. Each is replaced by this user's copy, the same bytes and times
  (:func:`adopt_unwritable_files`), which the folder's write access allows.

And one that machines with different clocks write (a share's server against its clients, a folder copied with its
times from a machine whose clock is ahead): Snakemake fails a job whose output is older than one of its inputs
("clock skew"), so a job record or report file dated in the future failed the jobs that read it, on every run until
that time came. Planning sets such files to the folder's time now (:func:`future_dated_files`, :func:`reset_times`).
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from medseg.errors import OutputWriteError

__all__ = ["SHARED_SUBFOLDERS", "adopt_unwritable_files", "check_results_writable", "check_snakemake_folder",
           "future_dated_files", "reset_times"]

# the folders of a results folder that every job writes into; a case's own folder (cases/<id>) is the case's, and
# one that takes no files fails that case only
SHARED_SUBFOLDERS = ("", "jobs", "status", "cases", "logs", "logs/infer", "logs/evaluate", "benchmarks",
                     "benchmarks/infer", "benchmarks/evaluate")
# the files Snakemake checks for write access before it runs their job, or writes in place: job records, the
# report's files, benchmarks (a job's log it removes first, which the folder's write access allows)
_TRACKED = ("jobs/*.json", "report.html", "cohort.tsv", "summary.json", "benchmarks/*.tsv", "benchmarks/*/*.tsv")
# the files whose times Snakemake compares, as it runs their jobs (benchmarks only count as the oldest output)
_TIMED = ("jobs/*.infer.json", "jobs/*.evaluate.json", "report.html", "cohort.tsv", "summary.json", "jobs/*.json")
# times within this of the folder's clock are not "in the future": file systems keep times to 1-2 s on some
FUTURE_AFTER_S = 2.0


def _owner(status: os.stat_result) -> str:
    """``user alice, group lab, drwxr-sr-x`` (ids where the system has no names for them)."""
    import grp
    import pwd

    try:
        user = pwd.getpwuid(status.st_uid).pw_name
    except KeyError:
        user = f"uid {status.st_uid}"
    try:
        group = grp.getgrgid(status.st_gid).gr_name
    except KeyError:
        group = f"gid {status.st_gid}"
    return f"user {user}, group {group}, {stat.filemode(status.st_mode)}"


def check_results_writable(results: Path | str) -> None:
    """Refuse, in one line, a results folder, or one of the folders every job writes into
    (:data:`SHARED_SUBFOLDERS`), that exists and takes no file from this user. Tried by making a file there (permission
    bits say nothing for root, a read-only mount or a default ACL). Folders still to be made are the run's own."""
    from medseg.io.atomic import check_folders_writable, reason_of

    results = Path(results)
    for name in SHARED_SUBFOLDERS:
        folder = results / name if name else results
        if not folder.is_dir():
            continue
        try:
            check_folders_writable([folder / "-"])
        except OutputWriteError as error:
            cause = error.__cause__
            reason = reason_of(cause) if isinstance(cause, OSError) else str(error)
            try:
                owner = f"; {_owner(folder.stat())}"
            except OSError:
                owner = ""
            where = "this results folder" if folder == results else f"this folder of the results folder {results}"
            raise OutputWriteError(
                f"{folder}: {where} takes no files from this user ({reason}{owner}); have it made writable to this "
                f"user (for a folder a group shares, its owner runs chmod -R g+w {results}; see "
                "docs/cohorts.md, 'Results folder') or give another results folder") from error


def check_snakemake_folder(state: Path | str = ".snakemake") -> None:
    """Refuse, in one line, a working folder whose Snakemake folder (``.snakemake``: Snakemake's lock, logs and
    records of jobs), or one of its folders, takes no files from this user: a checkout another member ran the
    workflow from under umask 022. Snakemake stopped with a PermissionError and its traceback after planning. Where
    there is none yet, the working folder must take it."""
    from medseg.io.atomic import check_folders_writable, reason_of

    state = Path(os.path.abspath(state))
    try:
        folders = [state, *sorted(p for p in state.iterdir() if p.is_dir() and not p.is_symlink())]
    except OSError:
        folders = [state]
    for folder in folders:
        try:
            check_folders_writable([folder / "-"])
        except OutputWriteError as error:
            cause = error.__cause__
            reason = reason_of(cause) if isinstance(cause, OSError) else str(error)
            shown = next((f for f in (folder, *folder.parents) if f.exists()), folder)
            try:
                owner = f"; {_owner(shown.stat())}"
            except OSError:
                owner = ""
            raise OutputWriteError(
                f"{shown}: Snakemake's folder of this working folder takes no files from this user ({reason}{owner}); "
                "run the workflow from a working folder of your own (your own checkout, or snakemake --directory "
                f"DIR), or have its owner make it writable to the group (chmod -R g+w {state})") from error


def adopt_unwritable_files(results: Path | str) -> list[Path]:
    """Replace each file of the results folder that Snakemake checks or rewrites in place (job records, the report's
    files, benchmarks) and that this user may not write, where its folder takes this user's files, by this user's
    copy: the same bytes and times (Snakemake compares them), the mode a new file gets there. Returns the files
    replaced; a file that cannot be replaced is left as it is (Snakemake then names it)."""
    from medseg.io.atomic import atomic_paths

    results = Path(results)
    adopted = []
    for pattern in _TRACKED:
        for path in sorted(results.glob(pattern)):
            try:
                if path.is_symlink() or not path.is_file() or os.access(path, os.W_OK):
                    continue
                if not os.access(path, os.R_OK) or not os.access(path.parent, os.W_OK | os.X_OK):
                    continue
                times = path.stat()
                with atomic_paths([path], overwrite=True) as (temp,):
                    shutil.copyfile(path, temp)
                    os.utime(temp, ns=(times.st_atime_ns, times.st_mtime_ns))
            except (OSError, OutputWriteError):
                continue
            adopted.append(path)
    return adopted


def future_dated_files(results: Path | str, now: float | None = None) -> list[tuple[Path, float]]:
    """The files of the results folder whose times Snakemake compares (job records, the report's files) dated after
    ``now``, each with how many seconds ahead. ``now`` by default is the folder's own clock (a file made there and
    removed: a share's times are its server's); none where no file can be made there."""
    from medseg.io.atomic import folder_now

    results = Path(results)
    if not (results / "jobs").is_dir():
        return []
    now = folder_now(results / "jobs") if now is None else now
    if now is None:
        return []
    ahead: dict[Path, float] = {}
    for pattern in _TIMED:  # job records first, infer before evaluate, then the report: the order they are made in
        for path in sorted(results.glob(pattern)):
            try:
                seconds = path.stat().st_mtime - now
            except OSError:
                continue
            if seconds > FUTURE_AFTER_S and path not in ahead and path.is_file():
                ahead[path] = seconds
    return list(ahead.items())


def reset_times(paths: list[Path]) -> list[Path]:
    """Set each of ``paths`` to the time now by its file system's clock (as ``touch`` does; in the order given, so
    that files made one after the other keep their order). Returns those set; one this user may not set is left."""
    done = []
    for path in paths:
        try:
            os.utime(path)
        except OSError:
            continue
        done.append(path)
    return done
