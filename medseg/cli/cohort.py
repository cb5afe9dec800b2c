"""`medseg cohort`: run a sample sheet's cases into a results folder, resumably (the Snakefile's steps)."""

from __future__ import annotations

import contextlib
import signal
import time
from pathlib import Path

import click

from medseg.cli.options import (
    FiniteFloatRange,
    GivenPath,
    batch_option,
    device_option,
    escaped_line,
    invocation,
    model_option,
    precision_option,
    quiet,
    threads_option,
)

__all__ = ["cohort"]

# not readable=True: the library names a sheet or results folder this user may not read (exit 1, not a usage error)
_sheet = click.argument("samples", type=GivenPath(dir_okay=False, readable=False, path_type=Path))
_results = click.option("-o", "--results", "--output", "results",
                        type=GivenPath(file_okay=False, readable=False, path_type=Path), required=True,
                        help="The cohort's results folder (cases/<id>/... and status/).")
_cases = click.option("--case", "cases", multiple=True, metavar="ID",
                      help="Run only this case (repeatable; default: every case of the sheet).")
_memory = click.option("--memory-mb", type=click.IntRange(1), default=None,
                       help="The memory this job has, in MB (the scheduler's request): a case whose earlier attempts "
                            "died with less is tried again instead of being given up; one that died twice with as much "
                            "is given up (default: not known: every attempt that died counts against the case).")
_final_memory = click.option("--final-memory-mb", type=click.IntRange(1), default=None,
                             help="The memory of the job's last retry, in MB (needs --memory-mb): there, a case whose "
                                  "workers died twice is given up (so that the rest of the batch completes) instead of "
                                  "tried once more (default: none: a case that kills every worker while the memory "
                                  "keeps rising fails the job's last retry).")
_attempt = click.option("--attempt", "attempt", type=(click.IntRange(1), click.IntRange(1)), default=None,
                        metavar="N M", help="This job is attempt N of at most M (Snakemake's retries): on the last, a "
                                            "case whose workers died twice is given up, so that the rest of the batch "
                                            "completes, whatever memory the scheduler granted. Under SLURM, an "
                                            "attempt ended by SIGTERM at its time limit ($SLURM_JOB_END_TIME) notes N "
                                            "beside --record (RECORD.out-of-time): the workflow's retry then asks for "
                                            "more time and the same memory (default: none: the last retry is the "
                                            "one whose --memory-mb reaches --final-memory-mb).")
# a scoring job imports no torch: its threads are medseg's own, which the surface distances' searches follow
_scoring_threads = click.option(
    "--threads", type=click.IntRange(1), default=None,
    help="CPU threads for the surface distances' searches (default: the CPUs this process may use, at most a "
         "cgroup's CPU quota). Results do not depend on it; torch is not used.",
)
_time_limit = click.option("--time-limit", "time_limit", type=click.FloatRange(0), default=None,
                           metavar="MINUTES",
                           help="The job's run time (the scheduler's limit, the rule's runtime): under SLURM, the last "
                                "attempt (--attempt N N) stops before it (at $SLURM_JOB_END_TIME where SLURM sets it) "
                                "and records the cases it did not finish as failed, so that the job ends with its "
                                "record and the report is made; a later run tries them again (default: none: no "
                                "stop before a limit).")
_job_log = click.option("--job-log", "job_log", type=GivenPath(dir_okay=False, path_type=Path), default=None,
                        help="The log this job's output goes to (the workflow's rule log), named where the job's last "
                             "attempt (--attempt N N, with --record) fails for a reason of the whole job (the model, "
                             "the device, a results folder that takes no outputs, an error medseg did not "
                             "foresee): its unfinished cases are then recorded as failed, naming the job, the error "
                             "and this log, and the job ends with its record, so that the report is made (default: "
                             "none: the records name no log).")
_record = click.option("--record", type=GivenPath(dir_okay=False, path_type=Path), default=None,
                       help="Write a JSON summary of this run here, atomically, once every case is done (default: "
                            "none written).")


_COHORT_HELP = """Run the cases of a sample sheet (TSV: case_id, image, optional reference and series) into a results
folder.

Finished cases are kept; a case that fails gets a failure record (cases/<id>/<id>_failed.json) and the
others carry on; a run that was killed is resumed by running the same command again. The Snakefile
calls these steps for batches of cases; they also work on their own.

\b
$ medseg cohort infer samples.tsv -o results --model phantom
$ medseg cohort evaluate samples.tsv -o results
"""


class _InWorkflowOrder(click.Group):
    """Lists its subcommands in the order the workflow runs them (infer, evaluate, check), not alphabetically."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)


@click.group("cohort", cls=_InWorkflowOrder, help=_COHORT_HELP)
def cohort():
    from medseg.cli.options import name_options

    ctx = click.get_current_context()
    if ctx.invoked_subcommand is not None:  # this step's options, not another step's
        name_options(ctx, f"cohort {ctx.invoked_subcommand}")


def _redo(stage: str):
    """--redo TOKEN, also from $MEDSEG_REDO_<STAGE>: how the workflow tells its jobs that Snakemake was forced
    (-F, --forcerun RULE) without a job parameter that would rerun the jobs again once it is no longer given."""
    return click.option("--redo", metavar="TOKEN[:BATCH,...]", default=None, envvar=f"MEDSEG_REDO_{stage.upper()}",
                        help=f"Make every case again, once: a case counts as finished only when made under this "
                             f"TOKEN (the workflow sets it, through $MEDSEG_REDO_{stage.upper()}, when Snakemake is "
                             "forced: -F, --forcerun); with batches, only in a job whose --record names one "
                             "(default: none: cases finished earlier for the same work are kept).")


_in_run = click.option("--in-run", metavar="HOLDER", default=None, hidden=True, envvar="MEDSEG_COHORT_RUN",
                       help="A job of the workflow run that holds the results folder, as its claim file names it "
                            "(the Snakefile sets $MEDSEG_COHORT_RUN for its jobs).")


_stop_file = click.option("--stop-file", metavar="PATH", default=None, hidden=True, envvar="MEDSEG_COHORT_STOP",
                          help="The stop file of the workflow run this job is part of: once it exists (the run was "
                               "stopped), the job ends after its current case, as if the signal had reached it (the "
                               "Snakefile sets $MEDSEG_COHORT_STOP for its jobs).")


def _watch(stop_file: str | None) -> None:
    """A job of a workflow run ends between two cases once the run's stop file exists: a job the run's Ctrl-C, SIGTERM
    or SIGHUP did not reach (Snakemake started it just as the stop landed, or the signal went to Snakemake alone) ran
    its whole batch to the end, and the stopped run waited for it."""
    from medseg import stopping
    from medseg.cli import stop_for

    stopping.watch(stop_file, stop_for)


_planned = click.option("--planned-sha256", metavar="SHA256", default=None, hidden=True, envvar="MEDSEG_COHORT_WEIGHTS",
                        help="The weights' SHA-256 the workflow run planned with: a package found with other weights "
                             "(replaced mid-run) is refused (the Snakefile sets $MEDSEG_COHORT_WEIGHTS for its jobs).")


def _select(samples, cases, results, holder: str | None):
    """The sheet's rows of ``cases`` (all without). A step started by hand is refused while a workflow run holds the
    results folder; a job of that run (``holder``: the run's process, as the folder's claim file names it) skips,
    with a warning, a case taken out of the sheet since the run planned its jobs (the sheet edited mid-run had
    failed the job, three times, and the run without a report); a case whose row was changed since is run as it is
    now, named in the same warning."""
    from medseg.cohort import read_samples
    from medseg.cohort.batch_plan import changed_since_planned
    from medseg.cohort.run import check_no_workflow_run
    from medseg.io.folder_claim import claim_holder

    in_run = bool(holder) and claim_holder(results) == holder
    if not in_run:
        check_no_workflow_run(results)
    rows = read_samples(samples)
    if not cases:
        return rows
    by_id = {row.case_id: row for row in rows}
    unknown = [case for case in cases if case not in by_id]
    if unknown and not in_run:
        raise click.BadParameter(f"not in {samples}: {', '.join(unknown)}", param_hint="--case")
    selected = [by_id[case] for case in cases if case in by_id]
    changed = changed_since_planned(results, selected) if in_run else []
    if unknown or changed:
        click.echo(escaped_line(f"warning: {samples}: {_edited(unknown, changed)}; the next run plans from the sheet "
                                "as it is"), err=True)
    return selected


def _planned_by_run(planned_sha256: str | None, results, holder: str | None) -> str | None:
    """The planned weights a job checks its package against: None where they are left over from a run that no longer
    holds the results folder (both variables kept in a shell after it ended): a step by hand then uses the package as
    it is, as without them. Under --nolock a run names no holder, and its jobs check the weights still."""
    from medseg.io.folder_claim import claim_holder

    if not planned_sha256 or (holder and claim_holder(results) != holder):
        return None
    return planned_sha256


def _edited(removed: list[str], changed: list[str]) -> str:
    """What a job does with its cases taken out of the sheet (skipped) and those whose row was changed (run as the
    row is now) since its run planned it, naming each."""
    what = [f"{', '.join(removed)} no longer in the sheet"] if removed else []
    what += [f"the row{'s' if len(changed) > 1 else ''} of {', '.join(changed)} changed"] if changed else []
    done = ([f"{', '.join(removed)} skipped" if changed else "skipped"] if removed else []) + (
        [f"{', '.join(changed) + ' ' if removed else ''}run as the sheet has {'them' if len(changed) > 1 else 'it'} "
         "now"] if changed else [])
    return f"{', '.join(what)} (edited since this run planned its jobs): {', '.join(done)}"


_in_workflow = click.option("--in-workflow", is_flag=True, hidden=True,
                            help="This step runs as a job of the cohort workflow (the Snakefile gives it): its "
                                 "messages name the workflow's settings (batch_size: 8 in the workflow config), which "
                                 "its user sets, not this step's options.")


@contextlib.contextmanager
def _typed_in_workflow(in_workflow: bool):
    """A workflow job's medseg error: its type on a line of its own before the error's line (``medseg: error type:
    DeviceError``), which the run reads in the job's log where no attempt recorded the job, and names as the job's
    own record would (medseg/cohort/unstarted_jobs.py); a command run by hand says the error's line alone."""
    from medseg.errors import MedsegError

    try:
        yield
    except MedsegError as error:
        if in_workflow:
            from medseg.cohort.unstarted_jobs import ERROR_TYPE_LINE

            click.echo(f"{ERROR_TYPE_LINE}{type(error).__name__}", err=True)
        raise


def _named_in_workflow(in_workflow: bool, stage: str) -> None:
    """A job of the workflow names the workflow's settings from here on (the group named the step's options)."""
    if in_workflow:
        from medseg.cli.options import name_options

        name_options(click.get_current_context(), f"cohort {stage}", in_workflow=True)


def _job_options(stage: str):
    """The options an infer or evaluate job takes after its own, in this order: --threads (torch's for infer,
    the surface distances' for evaluate), the memory, retries and time limit it runs under, --record, --redo and the
    workflow run's claim (--in-run)."""
    threads = threads_option if stage == "infer" else _scoring_threads

    def decorate(command):
        for option in reversed((threads, _memory, _final_memory, _attempt, _time_limit, _record, _redo(stage),
                                _in_run, _in_workflow)):
            command = option(command)
        return command

    return decorate


def _check_job(memory_mb: int | None, final_memory_mb: int | None, attempt: tuple[int, int] | None, record) -> None:
    """The checks of :func:`_job_options`' values, before any case runs."""
    if final_memory_mb is not None and memory_mb is None:
        raise click.UsageError("--final-memory-mb needs --memory-mb (the memory this job has)")
    if attempt is not None and attempt[0] > attempt[1]:
        raise click.BadParameter(f"attempt {attempt[0]} of at most {attempt[1]}: N is at most M",
                                 param_hint="'--attempt'")
    _check_record(record)


@contextlib.contextmanager
def _noting_time_limit(record, attempt: tuple[int, int] | None, results, run: str | None):
    """A job stopped by SIGTERM at its SLURM time limit notes its attempt beside its record, so that the workflow
    submits it again with more time and the memory it had (medseg/cohort/time_outs.py), unless another run than its
    own (``run``) holds ``results``; any other stop notes nothing."""
    from medseg import stopping

    try:
        yield
    except stopping.Terminated as stop:
        if stop.code == 128 + signal.SIGTERM and record is not None and attempt is not None:
            from medseg.cohort.time_outs import note_out_of_time

            note_out_of_time(record, attempt[0], results=results, run=run)
        raise


def _final_attempt(attempt: tuple[int, int] | None, memory_mb: int | None, final_memory_mb: int | None) -> bool:
    """Whether this job is its last retry: ``--attempt N M`` names the last, or ``--memory-mb`` has reached
    ``--final-memory-mb`` (which does not tell it where a scheduler caps the retries' memory, as Snakemake's
    ``--resources mem_mb`` does: the Snakefile passes the attempt)."""
    if attempt is not None:
        return attempt[0] >= attempt[1]
    return memory_mb is not None and final_memory_mb is not None and memory_mb >= final_memory_mb


def _check_record(record) -> None:
    """The job record's place, tried before any case runs (a record that cannot be written failed the job only
    once every case had been worked on). It is Snakemake's output: an earlier one is replaced."""
    if record is not None:
        from medseg.io.atomic import check_folders_writable, check_writable

        check_writable([record], overwrite=True)
        check_folders_writable([record])


def _tell(case) -> None:
    """A case's line, as it ends: the one report of a failed case (the log repeats it at debug level only), and
    of those done when a job stops (a full disk)."""
    if quiet() and case.outcome != "failed":
        return
    note = " (kept from an earlier run)" if case.reused else f" ({case.seconds:.1f} s)"
    detail = f": {case.stage}: {case.error}" if case.outcome == "failed" else ""
    click.echo(escaped_line(f"{case.case_id}: {case.outcome}{note}{detail}"))


def _report(summary, record) -> None:
    from medseg.cohort import write_job_record
    from medseg.numbers import counted

    if record is not None:
        write_job_record(record, summary)
    if not quiet():
        total = len(summary.cases)
        # kept cases are among the ok, failed and skipped ones ("6 ok, 4 failed, 9 kept" read as 19 cases; "0 skipped
        # (2 of them kept)" as kept skipped cases); one case is not "1 cases, 0 of them kept"
        kept = (f"{summary.reused} of them kept from earlier runs" if total != 1 else
                "kept from an earlier run" if summary.reused else "none kept from earlier runs")
        click.echo(f"{summary.stage}: {summary.count('ok')} ok, {summary.count('failed')} failed, "
                   f"{summary.count('skipped')} skipped ({counted(total, 'case')}, {kept}); "
                   f"setup ({'imports, model' if summary.stage == 'infer' else 'imports'}) {summary.setup_s:.1f} s, "
                   f"total {summary.total_s:.1f} s", err=True)


_INFER_HELP = """Segment the cases of the sample sheet SAMPLES into RESULTS/cases/<id>/ (model loaded once for all of
them).

Exit code 0 when every case ended as a segmentation or as a failure record; 1 when the run itself could
not go on (model, device, results folder).

\b
$ medseg cohort infer samples.tsv -o results --case case01 --case case02 \\
    --threads 1
"""


@cohort.command("infer", help=_INFER_HELP, short_help="Segment the sheet's cases into RESULTS/cases/<id>/.")
@_sheet
@_results
@_cases
@model_option
@device_option
@precision_option
@batch_option
@click.option("--overlap", type=FiniteFloatRange(0, 0.95), default=None,
              help="Overlap of neighbouring tiles, a fraction of the tile (default: the model's inference.overlap).")
@_job_options("infer")
@_job_log
@_planned
@_stop_file
def infer(samples, results, cases, model, device, precision, batch_size, overlap, threads, memory_mb, final_memory_mb,
          attempt, time_limit, record, job_log, redo, in_run, in_workflow, planned_sha256, stop_file):
    started = time.time()
    _named_in_workflow(in_workflow, "infer")
    _check_job(memory_mb, final_memory_mb, attempt, record)
    _watch(stop_file)
    with _typed_in_workflow(in_workflow), _noting_time_limit(record, attempt, results, in_run):
        _infer(samples, results, cases, model, device, precision, batch_size, overlap, threads, memory_mb,
               final_memory_mb, attempt, time_limit, record, job_log, redo, in_run, planned_sha256, started)
    return 0


def _infer(samples, results, cases, model, device, precision, batch_size, overlap, threads, memory_mb, final_memory_mb,
           attempt, time_limit, record, job_log, redo, in_run, planned_sha256, started) -> None:
    from medseg.cohort import InferOptions, infer_cases, redo_for_job
    from medseg.cohort.job_deadline import job_deadline

    selected = _select(samples, cases, results, in_run)
    options = InferOptions(model=model, device=device, precision=precision, batch_size=batch_size, overlap=overlap,
                           threads=threads, memory_mb=memory_mb,
                           final_attempt=_final_attempt(attempt, memory_mb, final_memory_mb), invocation=invocation(),
                           planned_sha256=_planned_by_run(planned_sha256, results, in_run),
                           deadline=job_deadline(time_limit, _final_attempt(attempt, memory_mb, final_memory_mb),
                                                 started),
                           job=record.name.removesuffix(".json") if record is not None else None,
                           job_log=str(job_log) if job_log is not None else None)
    _report(infer_cases(selected, results, options, on_case=_tell, redo=redo_for_job(redo, record)), record)


_EVALUATE_HELP = """Score the cases of the sample sheet SAMPLES that have a reference; writes
RESULTS/cases/<id>/<id>_metrics.json. Every selected case must have been through `cohort infer` (those not yet
segmented are named, and none is scored).

\b
$ medseg cohort evaluate samples.tsv -o results
"""


@cohort.command("evaluate", help=_EVALUATE_HELP,
                short_help="Score the segmented cases that have a reference (Dice, HD95, ASSD, volumes).")
@_sheet
@_results
@_cases
@_job_options("evaluate")
@_job_log
@_stop_file
def evaluate(samples, results, cases, threads, memory_mb, final_memory_mb, attempt, time_limit, record, job_log, redo,
             in_run, in_workflow, stop_file):
    from medseg.cohort import evaluate_cases, redo_for_job
    from medseg.cohort.job_deadline import job_deadline

    started = time.time()
    _named_in_workflow(in_workflow, "evaluate")
    _check_job(memory_mb, final_memory_mb, attempt, record)
    _watch(stop_file)
    with _typed_in_workflow(in_workflow), _noting_time_limit(record, attempt, results, in_run):
        selected = _select(samples, cases, results, in_run)
        final = _final_attempt(attempt, memory_mb, final_memory_mb)
        _report(evaluate_cases(selected, results, threads=threads, memory_mb=memory_mb, on_case=_tell,
                               final_attempt=final, redo=redo_for_job(redo, record),
                               deadline=job_deadline(time_limit, final, started),
                               job=record.name.removesuffix(".json") if record is not None else None,
                               job_log=str(job_log) if job_log is not None else None), record)
    return 0


_CHECK_HELP = """Whether the cohort in RESULTS succeeded as a whole, from RESULTS/summary.json (written by `medseg
report RESULTS`, or with -o a page in RESULTS): exit 1 with one line when
its failed cases meet --fail-on (the workflow's last step, the workflow's setting fail_on_failed_cases), or, unless
--fail-on never, when a job record in RESULTS/jobs/ says its job's last attempt failed for a reason of the whole job
(the model, the device), its cases recorded as failed.

\b
$ medseg cohort check results --fail-on any
"""


@cohort.command("check", help=_CHECK_HELP,
                short_help="Exit 1 when the report's failed cases meet --fail-on (the workflow's last step).")
@click.argument("results", type=GivenPath(file_okay=False, readable=False, path_type=Path))
@click.option("--fail-on", type=click.Choice(["all", "any", "never"]), default="all", show_default=True,  # FAIL_ON
              help="Exit 1 when every case failed (all), when any did (any), or never.")
@click.option("--record", type=GivenPath(dir_okay=False, path_type=Path), default=None,
              help="Write the check's result (failed, total, fail_on) here as JSON, atomically (default: none "
                   "written).")
def check(results, fail_on, record):
    import json

    from medseg.cohort.check import check_failures
    from medseg.io.atomic import atomic_paths
    from medseg.numbers import counted

    _check_record(record)
    counts = check_failures(results / "summary.json", fail_on)
    if record is not None:
        with atomic_paths([record], overwrite=True) as temps:
            temps[0].write_text(json.dumps({"schema": "medseg-cohort-check/1", **counts}, indent=2) + "\n")
    if not quiet():
        click.echo(escaped_line(f"{results}: {counts['failed']} of {counted(counts['total'], 'case')} failed; "
                                f"fail_on_failed_cases {fail_on}: the run succeeds"))
    return 0
