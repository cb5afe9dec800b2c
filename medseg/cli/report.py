"""`medseg report`: cohort tables and the HTML QA report from a results folder."""

from __future__ import annotations

from pathlib import Path

import click

from medseg.cli.options import (
    FiniteFloatRange,
    GivenPath,
    ct_window_option,
    escaped_line,
    file_output,
    name_options,
    output_dir_option,
    output_or_folder,
    overwrite_option,
    quiet,
    typed_option,
)
from medseg.report.build import DEFAULT_MAX_OVERLAYS
from medseg.report.flags import DEFAULT_DICE_THRESHOLD, DEFAULT_OUTLIER_Z

__all__ = ["report"]

SHOWN_ERRORS = 5  # the failed jobs' errors told a line each; the others counted in one line


_HELP = """Collect every case under RESULTS_DIR (*_seg.json, *_metrics.json, *_failed.json, searched
recursively) into cohort.tsv, summary.json and one self-contained HTML page: summary per label,
distributions, cases worst first with their flags and overlays, failures and provenance.

\b
$ medseg report results -o qa/
$ medseg report results --dice-threshold 0.8 --max-overlays 200 --overwrite
$ medseg report results --sheet samples.tsv
$ medseg report results --ct-window lung
"""


@click.command("report", help=_HELP)
# not readable=True: the library names a results folder or sheet this user may not read (exit 1, not a usage error)
@click.argument("results_dir", type=GivenPath(file_okay=False, readable=False, path_type=Path))
@click.option("-o", "--output", "output", default=None, metavar="FILE.html|DIR",
              help="The HTML page, a .html or .htm file, or a folder (one that exists, or a new one named with a "
                   "trailing /, as qa/): report.html in it; cohort.tsv and summary.json are written beside it. "
                   "Default: RESULTS_DIR/report.html.")
@output_dir_option("report.html, cohort.tsv and summary.json")
@click.option("--dice-threshold", type=FiniteFloatRange(0, 1), default=DEFAULT_DICE_THRESHOLD, show_default=True,
              help="Flag labels whose Dice is below this.")
@click.option("--outlier-z", type=FiniteFloatRange(0, min_open=True), default=DEFAULT_OUTLIER_Z, show_default=True,
              help="Flag predicted volumes, predicted − reference volumes and HD95 whose robust z-score across the "
                   "cohort exceeds this, and Dice this far below the cohort's (above --dice-threshold).")
@click.option("--max-overlays", type=click.IntRange(0), default=DEFAULT_MAX_OVERLAYS, show_default=True,
              help="Draw slice overlays for this many scored or failed cases, worst first, and as many cases "
                   "without a reference (the slow part on large cohorts).")
@ct_window_option
@click.option("--sheet", type=GivenPath(dir_okay=False, readable=False, path_type=Path), default=None,
              help="The cohort's sample sheet: list its cases that have no results, or no scores, as failed "
                   "(default: none: the cases found in RESULTS_DIR alone).")
@overwrite_option
@click.option("--in-workflow", is_flag=True, hidden=True,
              help="The cohort workflow's report job (the Snakefile gives it): its page and messages name the "
                   "workflow's settings (max_overlays: 0 in the workflow config), which its user sets, not these "
                   "options.")
def report(results_dir, output, output_dir, dice_threshold, outlier_z, max_overlays, ct_window, sheet, overwrite,
           in_workflow):
    if in_workflow:  # the workflow's settings from here on (the group named the options)
        name_options(click.get_current_context(), "report", in_workflow=True)
    output = output_or_folder(output, output_dir)
    from medseg.numbers import counted
    from medseg.report.build import build_report

    given_as = typed_option("output", "output_dir")  # -o, --output or --output-dir, for the messages
    output = file_output(given_as, output, "report.html", (".html", ".htm")) or results_dir / "report.html"
    outputs = build_report(results_dir, output, dice_threshold=dice_threshold, outlier_z=outlier_z,
                           max_overlays=max_overlays, overwrite=overwrite, sheet=sheet,
                           ct_window=ct_window)
    if not quiet():
        one = outputs.training_images == 1
        trained = (f"; {outputs.training_images} {'is' if one else 'are'} the model's training "
                   f"image{'' if one else 's'}" if outputs.training_images else "")
        if outputs.training_scored:  # no Dice to speak of where none of them was scored
            trained += (", its Dice not the model's accuracy on new data" if one else
                        ", their Dice not its accuracy on new data")
        included = ", failures included" if outputs.failed else ""  # the flagged count holds the failed cases
        click.echo(f"{counted(outputs.cases, 'case')} ({outputs.failed} failed, {outputs.flagged} flagged for review"
                   f"{included}{trained}), {counted(outputs.overlays, 'overlay')} in {outputs.seconds:.1f} s")
        from medseg.report.failed_jobs import same_error_groups

        # a job's error once, not once per case (the cases' lines repeated it); once for jobs with the same error;
        # the first few errors, then a count (300 jobs each failing its own way were 300 lines)
        groups = same_error_groups(outputs.failed_jobs)
        for group in groups[:SHOWN_ERRORS]:
            click.echo(escaped_line(_failed_job_line(group[0]) if len(group) == 1 else
                                    _failed_jobs_line(group, outputs.html)))
        if len(groups) > SHOWN_ERRORS:
            jobs, errors = sum(len(group) for group in groups[SHOWN_ERRORS:]), len(groups) - SHOWN_ERRORS
            click.echo(escaped_line(
                f"… and {jobs} more failed job{'' if jobs == 1 else 's'} ({errors} other error"
                f"{'' if errors == 1 else 's'}): each with its error and logs under Jobs that failed in "
                f"{outputs.html} and in {outputs.summary}"))
        covered = {case for job in outputs.failed_jobs for case in job.failed}
        failures = [(case_id, error) for case_id, error in outputs.failures if case_id not in covered]
        shown = 5
        for case_id, error in failures[:shown]:  # what failed, without opening the page or a log
            click.echo(escaped_line(f"failed: {case_id}: {error}"))
        if len(failures) > shown:
            more = len(failures) - shown
            click.echo(f"… and {more} more failed case{'' if more == 1 else 's'}: see the report")
        if outputs.left_out:  # results of cases not in the sheet: on disk, not in the report
            from medseg.report.expected_cases import left_out_text

            click.echo(escaped_line(left_out_text(outputs.left_out, len(outputs.left_out_cases))))
        click.echo(escaped_line(f"wrote {outputs.html}, {outputs.table} and {outputs.summary}"))
    return 0


def _failed_job_line(job) -> str:
    """A workflow job that failed as a whole (:class:`~medseg.report.failed_jobs.FailedJob`): its error and log once,
    its cases (the first 10 named) and those it kept from an earlier run."""
    def some(cases: list[str]) -> str:
        return ", ".join(cases[:10]) + (f" … ({len(cases)} cases)" if len(cases) > 10 else "")

    log = f" (its log: {job.log})" if job.log else ""
    failed = (f"; {'its case' if len(job.failed) == 1 else 'its cases'} {some(job.failed)} "
              f"{'is' if len(job.failed) == 1 else 'are'} listed as failed, and a later run tries "
              f"{'it' if len(job.failed) == 1 else 'them'} again" if job.failed else "")
    kept = f"; {some(job.kept)} kept from an earlier run" if job.kept else ""
    return f"failed job: {job.name}: {job.error}{log}{failed}{kept}"


def _failed_jobs_line(jobs, page) -> str:
    """Workflow jobs that failed as a whole with one error: the jobs (the first few), the error and the first's log
    once, their cases (the first 10 named), and where each job's logs are (the page's Jobs that failed)."""
    from medseg.report.failed_jobs import job_names_text, shared_error

    def some(cases: list[str]) -> str:
        return ", ".join(cases[:10]) + (f" … ({len(cases)} cases)" if len(cases) > 10 else "")

    first = jobs[0]
    log = (f" (the first's log: {first.log}; each job's logs are under Jobs that failed in {page})" if first.log
           else f" (each job's logs are under Jobs that failed in {page})")
    failed = [case for job in jobs for case in job.failed]
    kept = [case for job in jobs for case in job.kept]
    cases = (f"; {'their case' if len(failed) == 1 else 'their cases'} {some(failed)} "
             f"{'is' if len(failed) == 1 else 'are'} listed as failed, and a later run tries "
             f"{'it' if len(failed) == 1 else 'them'} again" if failed else "")
    kept_text = f"; {some(kept)} kept from an earlier run" if kept else ""
    return (f"failed jobs: {job_names_text([job.name for job in jobs])}, each: "
            f"{shared_error(first.error, first.slurm_log)}{log}{cases}"
            f"{kept_text}")
