"""Why a cohort job's attempt ended, where SLURM's time limit ended it: so that its retry asks for more time alone.

Snakemake retries a failed job knowing only its attempt number (a rule's resource functions are given the wildcards,
input, threads and attempt, not why the last attempt failed; the SLURM plugin's ``SLURM status is: 'TIMEOUT'`` reaches
the run's log alone), so every retry asked for twice, then three times the memory and the run time, whichever ran out.
A job that SLURM ends at its time limit is sent SIGTERM first (then SIGKILL, ``KillWait`` later): a medseg job that
gets it at or after its end (``$SLURM_JOB_END_TIME``, less :data:`NEAR_END_S` for SLURM's clock and the signal's
delivery) notes the attempt beside its job record (:func:`note_out_of_time`) before it stops, and the workflow's
resource function asks for the memory of the attempt before it (:func:`memory_factor`).

Only positive evidence counts: a job killed for memory (SIGKILL, nothing noted), one SLURM ended for time before
medseg had started (its Snakemake still loading), one whose end SLURM does not tell (``$SLURM_JOB_END_TIME`` unset)
and a ``scancel`` (a SIGTERM before the end) note nothing, and their retry asks for more memory as before: a job
killed for memory is never retried with as little. Run time still grows on every retry (a job killed for memory
leaves no mark that tells it from a node's failure; time asked for and not used is not billed).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path

__all__ = ["NEAR_END_S", "SUFFIX", "forget_out_of_time", "memory_factor", "note_out_of_time", "out_of_time_attempts"]

# a SIGTERM this close to the job's end, or after it, is SLURM's time limit (SLURM checks the limits about every 30 s,
# so its signal comes at the end or after it; a node's clock may be a little ahead)
NEAR_END_S = 60
SUFFIX = ".out-of-time"  # beside the job record: RESULTS/jobs/batch001.infer.json.out-of-time


def _note_path(record: str | os.PathLike) -> Path:
    return Path(f"{record}{SUFFIX}")


def out_of_time_attempts(record: str | os.PathLike) -> set[int]:
    """The attempts of the job whose record is ``record`` that SLURM ended at their time limit, as they noted it
    (none where there is no note, or one that cannot be read)."""
    try:
        data = json.loads(_note_path(record).read_text(encoding="utf-8"))
        return {int(attempt) for attempt in data["attempts"]}
    except (OSError, ValueError, KeyError, TypeError):
        return set()


def note_out_of_time(record: str | os.PathLike, attempt: int, environ: Mapping[str, str] | None = None,
                     now: float | None = None, results: str | os.PathLike | None = None,
                     run: str | None = None) -> bool:
    """Note that attempt ``attempt`` of the job whose record is ``record`` was ended by SLURM's time limit, where the
    SIGTERM it got came at or after its end (``$SLURM_JOB_END_TIME``, less :data:`NEAR_END_S`); returns whether it
    was noted. Called as the job stops on SIGTERM: an error writing the note is passed over (the retry then asks for
    more memory too, as without it). With ``results``, nothing is noted where another run than the job's (``run``:
    its claim holder, :func:`~medseg.io.folder_claim.holder_text`) holds that folder: a job left working by a run
    killed outright, whose note would count for the next run's job of the same batch."""
    environ = os.environ if environ is None else environ
    now = time.time() if now is None else now
    if not environ.get("SLURM_JOB_ID"):
        return False
    if results is not None:
        from medseg.io.folder_claim import claim_holder

        holder = claim_holder(results)
        if holder is not None and holder != (run or ""):
            return False
    try:
        end = float(environ.get("SLURM_JOB_END_TIME", ""))
    except ValueError:
        return False
    if not math.isfinite(end) or end <= 0 or now < end - NEAR_END_S:
        return False
    attempts = sorted(out_of_time_attempts(record) | {int(attempt)})
    path = _note_path(record)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temp.write_text(json.dumps({"attempts": attempts}) + "\n", encoding="utf-8")
        temp.replace(path)
    except OSError:
        with contextlib.suppress(OSError):
            temp.unlink()
        return False
    return True


def memory_factor(record: str | os.PathLike, attempt: int) -> int:
    """What attempt ``attempt`` of the job whose record is ``record`` multiplies its first attempt's memory by: one
    more for each earlier attempt that did not note it ran out of time (:func:`note_out_of_time`), so 1, 2, 3 where
    none did, as Snakemake's ``attempt`` alone gives."""
    timed_out = out_of_time_attempts(record) if attempt > 1 else set()
    return max(1, attempt - len({earlier for earlier in timed_out if earlier < attempt}))


def forget_out_of_time(jobs_folder: str | os.PathLike) -> None:
    """Remove the notes of an earlier run's attempts (a run's attempts count from 1 again) from ``jobs_folder``
    (RESULTS/jobs); one that cannot be removed is passed over (the notes name attempts, which a new run's first
    attempt never reads)."""
    with contextlib.suppress(OSError):
        for note in Path(jobs_folder).glob(f"*{SUFFIX}"):
            with contextlib.suppress(OSError):
                note.unlink()
