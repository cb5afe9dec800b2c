"""What a cohort run asks a cluster for, in all: its jobs by rule, and the CPU, GPU and memory time they reserve.

Snakemake's preview (``-n``) lists every job with its resources, one job at a time: for 200 cases, 41 jobs to add up
by hand before a submission. The workflow's planning says it in one line instead (:func:`asked_line`), for a run
whose executor hands each job's run time to a scheduler.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["AskedJob", "asked_line"]


@dataclass(frozen=True)
class AskedJob:
    """One job as its first attempt asks for it: its rule, run time (minutes) and memory (MB), each None where a
    --set-resources gives it in a form planning cannot work out, its CPUs (as sbatch is asked for them) and GPUs;
    ``attempt_minutes``: each attempt's run time where a --set-resources gives it (``runtime=60*attempt``), which
    the rule's retries do not scale; ``attempt_mem_mb`` likewise each attempt's memory (``mem_mb=4000``: 4000 on
    each)."""

    rule: str
    minutes: int | None
    mem_mb: int | None
    cpus: int = 1
    gpus: int = 0
    attempt_minutes: tuple[int, ...] | None = None
    attempt_mem_mb: tuple[int, ...] | None = None


def _span(values: Sequence[int], unit: str) -> str:
    low, high = min(values), max(values)
    return f"{low:,} {unit}" if low == high else f"{low:,}-{high:,} {unit}"


def _hours(value_minutes: float) -> str:
    return f"{value_minutes / 60:.1f}"


def asked_line(jobs: Sequence[AskedJob], retried_rules: Sequence[str] = ("infer", "evaluate"),
               retries: int = 2, other_retries: int = 0) -> str:
    """One line: the jobs by rule (count, run time and memory each) and, over them all, the CPU hours, GPU hours and
    memory (GB hours) their run times reserve on the first attempts, and what they would come to were every job of
    ``retried_rules`` to fail ``retries`` times and every other job (the report) ``other_retries`` times (a
    profile's ``retries``): attempt k asks for k times the first's run time (or what a --set-resources gives each
    attempt) and, at worst (each attempt killed for memory), k times its memory (or what a --set-resources gives
    each attempt: a fixed mem_mb is the same on each). A job whose run time is not known
    (``minutes`` None) counts in the jobs, not in the hours."""
    by_rule: dict[str, list[AskedJob]] = {}
    for job in jobs:
        by_rule.setdefault(job.rule, []).append(job)
    parts = []
    for rule, its in by_rule.items():
        minutes = [job.minutes for job in its if job.minutes is not None]
        runtime = _span(minutes, "min") if len(minutes) == len(its) else "run time from --set-resources"
        memories = [job.mem_mb for job in its if job.mem_mb is not None]
        memory = _span(memories, "MB") if len(memories) == len(its) else "memory from --set-resources"
        gpus = f", {_span([job.gpus for job in its], 'GPU')}" if any(job.gpus for job in its) else ""
        parts.append(f"{len(its)} {rule} ({runtime}, {memory}"
                     f"{', ' + _span([job.cpus for job in its], 'CPU') if any(job.cpus > 1 for job in its) else ''}"
                     f"{gpus}{' each' if len(its) > 1 else ''})")
    timed = [job for job in jobs if job.minutes is not None]
    cpu = sum(job.minutes * job.cpus for job in timed)
    gpu = sum(job.minutes * job.gpus for job in timed)
    memory = sum(job.minutes * job.mem_mb / 1000 for job in timed if job.mem_mb is not None)

    def each_attempt(job: AskedJob, given: tuple[int, ...] | None, first: int) -> list[int]:
        """Each attempt's run time (minutes) or memory (MB), every retry taken: what a --set-resources gives each,
        else k times the first's."""
        count = 1 + (retries if job.rule in retried_rules else other_retries)
        if given:
            given = list(given[:count])
            return given + given[-1:] * (count - len(given))
        return [first * attempt for attempt in range(1, count + 1)]

    def attempts(job: AskedJob) -> list[int]:
        return each_attempt(job, job.attempt_minutes, job.minutes)

    worst_cpu = sum(sum(attempts(job)) * job.cpus for job in timed)
    worst_gpu = sum(sum(attempts(job)) * job.gpus for job in timed)
    # at worst every attempt was killed for memory: attempt k asks for k times the first's memory (a time-out keeps
    # it), unless a --set-resources gives each attempt's (a fixed mem_mb: the same on each)
    worst_memory = sum(sum(minutes * memory for minutes, memory in
                           zip(attempts(job), each_attempt(job, job.attempt_mem_mb, job.mem_mb)))
                       / 1000 for job in timed if job.mem_mb is not None)
    others = sorted({job.rule for job in jobs} - set(retried_rules))
    failing = f"every {'/'.join(retried_rules)} job to fail {retries} times"
    if others and other_retries:
        failing += f" and the {'/'.join(others)} {other_retries} time{'s' if other_retries > 1 else ''}"
    return (f"the sheet's jobs ask the cluster for: {', '.join(parts)}; their run times reserve {_hours(cpu)} CPU h"
            f"{f', {_hours(gpu)} GPU h' if gpu else ''} and {_hours(memory)} GB h of memory on their first attempts, "
            f"{_hours(worst_cpu)} CPU h{f', {_hours(worst_gpu)} GPU h' if worst_gpu else ''} and "
            f"{_hours(worst_memory)} GB h were {failing} (each retry with more time, and more memory as after an "
            "out-of-memory kill; a job that finished in an earlier run is not submitted again: Snakemake's job stats "
            "count those that run)")
