"""A cohort case's attempts: the note that work on it has begun (left behind only by a process that died working on
it), and the cases given up for killing their workers, which a job with more memory tries again."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

from medseg.cohort.records import MAX_ATTEMPTS, ResultsFolder
from medseg.cohort.samples import Sample

__all__ = ["give_up", "given_up_for_less_memory", "retried_with"]

# the cohort step's logger, whichever of its modules logs: its lines are told as "INFO medseg.cohort.run: ..."
log = logging.getLogger("medseg.cohort.run")


@contextlib.contextmanager
def _attempt(folder: ResultsFolder, case_id: str, stage: str, print_: str, attempts: int,
             memory_mb: int | None, also_made_for: list[str] | None = None) -> Iterator[None]:
    """The note that work on a case has begun, for the block's duration: it stays only when the process dies
    inside the block (a crash, a kill, out of memory), which is what it is there to count. Anything raised out of
    the block (Ctrl-C, a scheduler's SIGTERM, results that cannot be written) is not the case's crash: the
    attempt is taken back as the error goes on."""
    try:
        # inside: a stop held back while the note was put in place acts once it is there, and takes it back
        folder.mark_started(case_id, stage, print_, attempts + 1, memory_mb, also_made_for)
        yield
    except BaseException:
        with contextlib.suppress(Exception):  # a disk still full: the error that stopped the work is the one to tell
            folder.unmark_started(case_id, stage, attempts)
        raise


def give_up(folder: ResultsFolder, case_id: str, stage: str, print_: str, memory_mb: int | None,
            final_attempt: bool = False) -> bool:
    """Whether a case whose earlier attempts killed their process is given up instead of tried once more: when
    :data:`MAX_ATTEMPTS` of them had at least this job's memory, or when this is the job's last retry
    (``final_attempt``) and it died :data:`MAX_ATTEMPTS` times already. The second rule keeps one case that kills
    every worker from failing its job, and the run, for good: the other cases of the batch complete and the report
    is made; its record says to raise the memory to try it again."""
    if folder.crashes(case_id, stage, print_, memory_mb) >= MAX_ATTEMPTS:
        return True
    return final_attempt and folder.attempts(case_id, stage, print_) >= MAX_ATTEMPTS


def _given_up_with(record: dict | None) -> int | None:
    """The memory a case given up for killing its workers was offered (None: not such a case, or not known)."""
    record = record or {}
    return record.get("worker_given_up_memory_mb", record.get("worker_died_memory_mb"))


def given_up_for_less_memory(samples: Sequence[Sample], results: Path | str, stage: str,
                             memory_mb: int | None) -> list[str]:
    """The cases given up at ``stage`` for killing their workers with less memory than ``memory_mb``, which a job
    starting with that much tries again. The workflow voids their batches' job records at planning time: a larger
    ``--set-resources RULE:mem_mb=`` changes none of a job's parameters, so Snakemake would keep the finished
    batch and the case would never be tried."""
    if memory_mb is None:
        return []
    folder = ResultsFolder(results)
    return [sample.case_id for sample in samples
            if (offered := _given_up_with(folder.status(sample.case_id, stage))) is not None and memory_mb > offered]


def retried_with(done: dict | None, memory_mb: int | None) -> bool:
    """Whether a finished record is of a case given up for killing its workers with less memory than ``memory_mb``
    (a job's), which that job tries again: the jobs' test (:func:`_unless_more_memory`), and a stopped run's count of
    its finished cases (:func:`~medseg.cohort.fingerprints.finished_cases`)."""
    offered = _given_up_with(done)
    return done is not None and offered is not None and memory_mb is not None and memory_mb > offered


def _unless_more_memory(done: dict | None, memory_mb: int | None, case_id: str) -> dict | None:
    """A finished record, unless it is a case given up for killing its workers and this job has more memory than
    the case was offered when it was given up: then it is tried again. The same settings keep it given up, whatever
    sets the memory (the rule's mem_mb or --set-resources; the final-retry figure does not follow the latter)."""
    if retried_with(done, memory_mb):
        log.info("%s: given up with %d MB; trying again with %d MB", case_id, _given_up_with(done), memory_mb)
        return None
    return done
