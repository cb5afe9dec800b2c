"""The time a cohort job's last attempt stops at, so that its batch still gets a job record.

A SLURM job that reaches its time limit (``-t``, the rule's ``runtime``) is ended by SLURM and marked TIMEOUT: it
writes nothing more, and Snakemake submits it again with more time. Where every attempt ran out, the batch had no job
record, and the report, which needs every batch's, was never made: a run of 1,000 cases ended without a report for
the sake of one slow batch. The last attempt (``--attempt N N``) of a job under SLURM therefore stops itself a little
before its limit: the case under way is stopped, and it and the batch's cases not reached are recorded as failed
(:class:`~medseg.errors.JobTimeLimitError`, "the job never finished it"), so that the job ends, writes its record,
and the report lists them beside the other cases. A later run tries them again.

The limit is SLURM's own, ``$SLURM_JOB_END_TIME`` (the job's end as a Unix time, which recent SLURM versions set), else
the job's run time (``--time-limit``, the rule's ``runtime``) from the moment the command started, less a tenth for
the job's start before it, unless the job is one of a workflow run with Snakemake's local executor (Snakemake
itself submitted as one SLURM job: its jobs run in its allocation, and nothing enforces their rule's runtime; only
SLURM's end of the allocation counts there). An end before the command's start (a node's clock ahead of SLURM's, a
value another job left in the environment) is passed over with a warning: taken, it stopped the job at once, every
case of its batch recorded as failed unworked; one more than ten years away (garbage) is no limit, where its timer
overflowed and failed the job with a traceback. The stop comes :data:`STOP_MARGIN_S` seconds, or a twentieth of the
limit where that is more, before it: time to record the cases and for the job's own Snakemake to end before SLURM's
signal.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import time
from collections.abc import Iterator, Mapping

__all__ = ["EXECUTOR_VARIABLE", "STOP_MARGIN_S", "OutOfTime", "job_deadline", "stop_at"]

STOP_MARGIN_S = 30
# the executor of the workflow run whose job this is (Snakemake's plugin name, set as the run starts): "local" where
# the jobs run beside Snakemake, a run time no scheduler enforces (Snakemake itself may be a SLURM job)
EXECUTOR_VARIABLE = "MEDSEG_COHORT_EXECUTOR"
_FARTHEST_S = 10 * 365 * 24 * 3600  # an end of the job further away is no limit (no job runs that long)

log = logging.getLogger(__name__)


class OutOfTime(KeyboardInterrupt):
    """Raised where the job is when its deadline comes (a KeyboardInterrupt, as a stop signal's: a case's
    ``except Exception`` does not take it for the case's own failure, and its attempt is taken back)."""


def job_deadline(time_limit_minutes: float | None, final_attempt: bool, started: float | None = None,
                 environ: Mapping[str, str] | None = None) -> float | None:
    """The Unix time at which a job stops its batch (None: it runs until done). Only a job's last attempt stops
    itself, and only under SLURM (``$SLURM_JOB_ID`` set): elsewhere the run time is not enforced (a local run).
    ``time_limit_minutes``: the job's run time as the rule asked for it, used where SLURM does not give the job's end
    (``$SLURM_JOB_END_TIME``, or where that is not after ``started``: warned), counted from ``started`` (the
    command's start, default now); not in a job of a workflow run with the local executor (:data:`EXECUTOR_VARIABLE`:
    Snakemake itself submitted as one SLURM job, its jobs on the allocation's node, whose runtime nothing enforces)."""
    environ = os.environ if environ is None else environ
    if not final_attempt or not environ.get("SLURM_JOB_ID"):
        return None
    started = time.time() if started is None else started
    try:
        end = float(environ.get("SLURM_JOB_END_TIME", ""))
        limit_s = end - started
    except ValueError:
        end = None
    if end is not None and math.isfinite(end) and end - started > _FARTHEST_S:
        # garbage, or a scheduler's "no limit" as a huge number: the timer overflowed, failing the job with a
        # traceback and no record
        log.info("$SLURM_JOB_END_TIME %s is more than ten years away: the job does not stop itself",
                 environ["SLURM_JOB_END_TIME"])
        return None
    if end is not None and math.isfinite(end) and 0 < end <= started:
        log.warning("$SLURM_JOB_END_TIME %s (%s UTC) is before this job's start (%s UTC by this node's clock): a clock "
                    "that differs from SLURM's, or a value left by another job; the job's run time (--time-limit) is "
                    "used instead", environ["SLURM_JOB_END_TIME"], _utc(end), _utc(started))
        end = None
    if end is None or not math.isfinite(end) or end <= 0:
        if environ.get(EXECUTOR_VARIABLE) == "local":  # a workflow run's jobs on its own node: no scheduler enforces
            return None  # their runtime (Snakemake submitted as one SLURM job, whose end SLURM did not give)
        if time_limit_minutes is None or not math.isfinite(time_limit_minutes) or time_limit_minutes <= 0:
            return None
        limit_s = time_limit_minutes * 60 * 0.9  # the job's start before this command took some of it
        end = started + limit_s
    return end - max(STOP_MARGIN_S, limit_s / 20)


def _utc(unix_time: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(unix_time))


def _raise_out_of_time(signum, frame) -> None:
    """SIGALRM's handler: raises :class:`OutOfTime` where Python is, and records it for :func:`medseg.stopping.check`
    to raise again where that one was dropped (inside a callback, a ``__del__``, an import's bare ``except:``)."""
    from medseg import stopping

    stop = OutOfTime()
    stopping.request(stop)
    raise stop


@contextlib.contextmanager
def stop_at(deadline: float | None) -> Iterator[None]:
    """Raise :class:`OutOfTime` where the block is once ``deadline`` (a Unix time) has come: at once where it has
    passed; nothing where it is None or where the process has no SIGALRM (Windows). The timer and its handler are
    taken back as the block ends."""
    if deadline is None or not hasattr(signal, "setitimer"):
        yield
        return
    remaining = deadline - time.time()
    if remaining <= 0:
        raise OutOfTime()
    previous = signal.signal(signal.SIGALRM, _raise_out_of_time)
    signal.setitimer(signal.ITIMER_REAL, remaining)
    try:
        yield
    except OutOfTime:
        from medseg import stopping

        stopping.request(None)  # handled here: not raised again by the next check
        raise
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
