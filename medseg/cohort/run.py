"""Run a batch of cohort cases: segment each (``infer``) or score each against its reference (``evaluate``).

One call handles several cases, so the model is loaded once per batch (loading costs python, torch and MONAI
imports, 4.4 s; README.md, Figures). Each case is independent:

* a case already finished for the same work (see :mod:`medseg.cohort.records`) is kept as it is;
* otherwise its old outputs are removed, it is run, and it ends either with its outputs or with a failure
  record ``<id>_failed.json`` (stage ``read``, ``infer`` or ``evaluate``) — an error in one case never stops
  the others;
* its completion record is written last.

Errors that are not about one case (the model package cannot be loaded, the device is missing, the results
folder cannot be written) are raised: they would fail every case alike; on a workflow job's last attempt, any such
error (medseg's or not, but a stop) records the batch's unfinished cases as failed instead, naming the job, so that
the workflow makes its report.

What a case's results were made for, and whether they still stand, is :mod:`~medseg.cohort.fingerprints`; a case's
attempts and the cases given up for killing their workers :mod:`~medseg.cohort.attempts`; the jobs a run planned
:mod:`~medseg.cohort.batch_plan`. The public names this module listed before they moved there are still importable
from here (``__all__``).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from medseg import stopping
from medseg.cohort.attempts import _attempt, _unless_more_memory, give_up, given_up_for_less_memory
from medseg.cohort.batch_plan import changed_since_planned, read_batch_plan, write_batch_plan
from medseg.cohort.fingerprints import (
    _recode_sidecar,
    _resign_infer,
    equivalent_fingerprints,
    evaluate_fingerprint,
    evaluate_kept,
    evaluate_same_content,
    infer_fingerprint,
    infer_kept,
    infer_same_content,
    package_modalities,
    stale_cases,
)
from medseg.cohort.records import (
    ResultsFolder,
    away_text,
    now,
    one_line,
    path_signature,
    unreadable_path,
    write_json,
)
from medseg.cohort.samples import Sample
from medseg.cohort.slurm_logs import job_log_path
from medseg.defaults import DEFAULT_BATCH_SIZE, DEFAULT_MODEL
from medseg.errors import InputError, JobFailedError, JobTimeLimitError, MedsegError, OutputWriteError, WorkerDiedError
from medseg.failure_records import failure_stage
from medseg.io.atomic import _WHOLE_FOLDER_ERRNOS, atomic_paths, results_unwritable
from medseg.io.files import check_searchable
from medseg.resources import cgroup_limit, set_threads

__all__ = ["CaseOutcome", "InferOptions", "JobSummary", "changed_since_planned", "check_no_workflow_run",
           "evaluate_cases", "given_up_for_less_memory", "infer_cases", "read_batch_plan", "stale_cases",
           "write_batch_plan", "write_job_record"]

log = logging.getLogger(__name__)

JOB_SCHEMA = "medseg-cohort-job/1"
# the fingerprint of a case recorded as failed for its job's error (:func:`_job_failed`): made for no work
JOB_FAILED = "job-failed"


def _log_failure(case_id: str, stage: str, error: BaseException | str) -> None:
    """A case's failure. Its outcome carries the one-line error, which the command prints once per case; the log
    repeats it only at debug level, except for an error medseg did not foresee (a bug), whose traceback is logged."""
    if isinstance(error, BaseException) and not isinstance(error, MedsegError):
        log.error("%s: failed at %s with an unexpected error", case_id, stage, exc_info=error)
    else:
        log.debug("%s: failed at %s: %s", case_id, stage, error)


@dataclass(frozen=True)
class InferOptions:
    """What the segmentations are made with."""

    model: str = DEFAULT_MODEL
    device: str = "auto"
    precision: str = "auto"
    batch_size: int = DEFAULT_BATCH_SIZE
    overlap: float | None = None
    threads: int | None = None  # CPU threads for torch; does not change results
    memory_mb: int | None = None  # the job's memory (the scheduler's request): crashes with less do not count
    final_attempt: bool = False  # this job is its last retry (see give_up)
    invocation: dict | None = None  # the job's command line and folder, recorded in sidecars; changes nothing
    # the weights' SHA-256 the workflow run planned with: a job that finds another package there refuses it
    planned_sha256: str | None = None
    # the Unix time this job stops at, its batch's unfinished cases recorded as failed (medseg.cohort.job_deadline)
    deadline: float | None = None
    # the workflow's job (``batch001.infer``) and its log: on its last attempt (final_attempt), an error of the whole
    # job (the model, the device, any error but a stop) records the batch's unfinished cases as failed, naming both,
    # so the report is made
    job: str | None = None
    job_log: str | None = None


@dataclass
class CaseOutcome:
    """How one case of a job ended."""

    case_id: str
    outcome: str  # ok | failed | skipped
    reused: bool  # finished by an earlier run, kept as it was
    seconds: float
    stage: str | None = None  # where it failed
    error: str | None = None


@dataclass
class JobSummary:
    """The cases of one job (``infer`` or ``evaluate``) and its times: what a job record holds."""

    stage: str
    cases: list[CaseOutcome] = field(default_factory=list)
    setup_s: float = 0.0  # imports and model loading, 0 when nothing had to be run
    total_s: float = 0.0
    model: dict | None = None
    # the error of the whole job that ended its last attempt (error, error_type, log; kept_earlier: the cases it kept
    # that this run did not make), its unfinished cases recorded as failed: None for a job whose every case ran
    job_error: dict | None = None

    def count(self, outcome: str) -> int:
        return sum(case.outcome == outcome for case in self.cases)

    @property
    def reused(self) -> int:
        return sum(case.reused for case in self.cases)

    def timed(self, setup_s: float, clock: float) -> JobSummary:
        """This summary with its times set: ``setup_s``, and the seconds since ``clock`` (a
        :func:`time.perf_counter` reading taken as the job began), both to the millisecond."""
        self.setup_s = round(setup_s, 3)
        self.total_s = round(time.perf_counter() - clock, 3)
        return self


class _LazySegmenter:
    """The device and precision on first need (torch alone), the network once a case's input has been read (a
    :class:`~medseg.segmenter_plan.SegmenterPlan`): a batch whose cases are all finished loads nothing, and one on
    the CPU whose inputs cannot be read imports neither MONAI nor builds the network (on a GPU the network is placed
    with the device, before a case's earlier results go: running out of GPU memory there is the job's error)."""

    def __init__(self, package, options: InferOptions) -> None:
        from medseg.segmenter_plan import SegmenterPlan

        self.package = package
        self.options = options
        self.choice: tuple[str, str] | None = None
        self.plan = SegmenterPlan(package, device=options.device, precision=options.precision,
                                  batch_size=options.batch_size, overlap=options.overlap,
                                  invocation=options.invocation, threads=options.threads, on_ready=self._ready)
        self.setup_s = 0.0

    def device(self) -> tuple[str, str]:
        """The device and precision the cases are segmented on, as the segmenter resolves them: a device or
        precision this machine lacks, met by each of a job's attempts, is told before MONAI's import (torch alone:
        about 4 CPU-s less per attempt)."""
        if self.choice is None:
            clock = time.perf_counter()
            from medseg.device import resolve_device, resolve_precision
            from medseg.tile_memory import refuse_tile_over_memory

            device = resolve_device(self.options.device).device
            precision = resolve_precision(self.options.precision, device)
            # the job's own errors of building the network, before the first case's earlier results go (as when the
            # network was built first): on the CPU a tile the machine cannot hold, estimated without torch's network;
            # on a GPU the network itself is placed now (out of GPU memory), its import a GPU job's small part
            refuse_tile_over_memory(self.package, device)
            self.setup_s += time.perf_counter() - clock
            if not str(device).startswith("cpu"):
                self.plan.ready()
            self.choice = (device, precision)
        return self.choice

    def _ready(self, segmenter) -> None:
        self.setup_s += self.plan.setup_s
        log.info("model %s (%s) on %s, precision %s, ready in %.2f s (torch and MONAI imports included)",
                 self.package.name, self.package.sha256[:12], segmenter.device_choice, segmenter.precision,
                 self.setup_s)


def infer_cases(samples: Sequence[Sample], results: Path | str, options: InferOptions,
                on_case: Callable[[CaseOutcome], None] | None = None, redo: str | None = None) -> JobSummary:
    """Segment ``samples`` into ``results/cases/<id>/``, skipping finished cases and recording failures;
    ``on_case`` is given each case's outcome as it ends (a job stopped by a full disk has told the ones before).
    ``redo``: a forced run's token; cases not yet made under it are made again (see :class:`ResultsFolder`).
    Torch's thread count is set for the process when a case is segmented (``options.threads``, else no more than a
    cgroup's CPU quota allows) and left so."""
    from medseg.package import load_package, shipped_name_taken

    clock = time.perf_counter()
    check_searchable(results)  # before the model is loaded: every case's files are in it
    folder = ResultsFolder(results, redo=redo)
    summary = JobSummary(stage="infer")
    lazy = package = None
    try:
        package = load_package(options.model)
        if options.planned_sha256 and package.sha256 != options.planned_sha256:
            # a training run wrote a new package into the folder mid-run: the run's cases would be made by two models
            from medseg.errors import ModelPackageError

            raise ModelPackageError(f"{package.path}: replaced since this workflow run planned its jobs (weights "
                                    f"SHA-256 {options.planned_sha256[:12]}… then, {package.sha256[:12]}… now); the "
                                    "cases done so far are the planned package's: run the workflow again, which makes "
                                    "every case with the package as it is now")
        taken = shipped_name_taken(package, options.model)
        if taken is not None:  # as `medseg infer` and the workflow's planning warn (a job's log keeps it too)
            log.warning("%s", taken)
        lazy = _LazySegmenter(package, options)
        summary.model = {"name": package.name, "weights_sha256": package.sha256}

        def run_one(sample: Sample, out_of_time: bool) -> CaseOutcome:
            with _case_claim(folder, sample.case_id):
                return _infer_one(sample, folder, package, options, lazy, out_of_time)

        _each_case(samples, summary, on_case, options.deadline, run_one)
    except Exception as error:  # not a stop (KeyboardInterrupt, SystemExit): the job ends as it was asked to
        # a workflow job's last attempt: Snakemake would make no report, the batch having no job record. Any error
        # of the whole job counts, medseg's or not (torch's RuntimeError, a MemoryError while the model loads), and
        # a results folder that takes no outputs too: its cases are recorded where their records can still be written
        if not (options.final_attempt and options.job):
            raise
        _job_failed(samples, folder, summary, error, _JobFailure("infer", options.job, options.job_log), on_case,
                    lambda sample, job, kept: _job_failed_case(sample, folder, job, kept, options, package))
    return summary.timed(lazy.setup_s if lazy is not None else 0.0, clock)


@dataclass(frozen=True)
class _JobFailure:
    """The workflow job whose last attempt failed for a reason of the whole job: its stage, its name
    (``batch001.infer``) and its log."""

    stage: str
    job: str
    log: str | None = None
    error: str = ""  # the error's one line (:func:`one_line`: a type and a message where medseg did not raise it)
    error_type: str = ""
    # SLURM's own log of the attempt, which holds SLURM's lines about it (medseg.cohort.slurm_logs); None elsewhere
    slurm_log: str | None = None

    def record(self) -> dict:
        """What a case's failure record says of the job (``job``): the report shows the job's error once, with the
        cases it covered, instead of once per case."""
        return {"name": self.job, "stage": self.stage, "error": self.error, "error_type": self.error_type,
                "log": self.log, "slurm_log": self.slurm_log}

    def case_error(self, sample: Sample, done: str) -> JobFailedError:
        """The error of one of the job's cases (``done``: what was not done to it)."""
        where = f"; the job's log: {self.log}" if self.log else ""
        where += f"; SLURM's log of the attempt: {self.slurm_log}" if self.slurm_log else ""
        return JobFailedError(f"{sample.image}: {done}: its job {self.job} failed on its last attempt for a reason "
                              f"of the whole job, not of this case: {self.error}{where}; a later run tries it again")


def _job_failed(samples: Sequence[Sample], folder: ResultsFolder, summary: JobSummary, error: Exception,
                job: _JobFailure, on_case: Callable[[CaseOutcome], None] | None,
                record_case: Callable[[Sample, _JobFailure, list[str]], CaseOutcome | None]) -> None:
    """Record the cases of ``samples`` that ``summary`` does not hold yet as failed for ``error``, an error of the
    whole ``job`` (the model package, the device, an unreadable folder of references, an error medseg did not
    foresee) on its last attempt, naming the job and its log, and note it in ``summary``: the job then ends with its
    record, so that the workflow makes its report, and the check after it fails the run naming the job.
    ``record_case(sample, job, kept)`` records one case and gives its outcome (None: a case the stage has nothing to
    do for), adding to ``kept`` a case kept although made for other settings than the job's (the job's record names
    them: ``job_error``'s ``kept_earlier``, which the report tells from the cases this run made). The records are
    not finished ones (:meth:`ResultsFolder.finished`): a later run tries the cases again. Where they cannot be
    written (a full disk, a read-only mount), an :class:`OutputWriteError` says in one line that the results folder
    takes no records, and so no report either."""
    line = one_line(error)
    # a type given (the error medseg's own line named in a log, where the run records the job): the job's own
    job = replace(job, error=line, error_type=job.error_type or type(error).__name__,
                  slurm_log=job.slurm_log or job_log_path(job.job))
    summary.job_error = {"error": line, "error_type": job.error_type, "log": job.log, "slurm_log": job.slurm_log}
    done = {case.case_id for case in summary.cases}
    pending = [sample for sample in samples if sample.case_id not in done]
    log.error("%s: the job's last attempt failed for a reason of the whole job, not of one case: %s; its "
              "unfinished cases (%d) are to be recorded as failed, so that the report is made", job.job, line,
              len(pending), exc_info=None if isinstance(error, MedsegError) else error)  # not foreseen: its traceback
    kept: list[str] = []
    for sample in pending:
        try:
            with _case_claim(folder, sample.case_id):
                outcome = record_case(sample, job, kept)
        except (MedsegError, OSError) as failure:
            raise _no_records(folder, job, error, failure) from error
        if outcome is None:
            continue
        summary.cases.append(outcome)
        if on_case is not None:
            on_case(outcome)
    if kept:  # the report tells them from the cases this run made
        summary.job_error["kept_earlier"] = kept


def _no_records(folder: ResultsFolder, job: _JobFailure, error: Exception, failure: Exception) -> OutputWriteError:
    """The one line of a job's last attempt whose results folder took not even its cases' failure records
    (``failure``, as ``error`` had failed the job): the job's record cannot be written, and the report cannot be
    written there either. The job's own error is named where it was not the folder's (a device missing as well)."""
    folders_own = results_unwritable(error) or (isinstance(error, OSError) and error.errno in _WHOLE_FOLDER_ERRNOS)
    own = "" if folders_own else f" (the job's own error: {one_line(error)})"  # an OSError of its own: a library's
    return OutputWriteError(f"{folder.root}: this results folder takes no records ({one_line(failure)}): job "
                            f"{job.job} could record neither its cases nor their failures{own}, and the cohort's "
                            "report cannot be written there either; free space on its disk or make it writable, then "
                            "run the same command again")


def _job_failed_case(sample: Sample, folder: ResultsFolder, job: _JobFailure, kept: list[str], options: InferOptions,
                     package=None) -> CaseOutcome:
    """One case of an inference job's :func:`_job_failed`: kept where it was finished earlier, else recorded as failed.
    A case finished earlier is kept as it is: for this work, where ``package`` (the loaded model package) tells it,
    and a case segmented (its outputs there) for any work: the job made nothing in its place."""
    case_id = sample.case_id
    if package is not None:
        done = folder.finished(case_id, "infer", infer_fingerprint(sample, package, options))
        if done is not None:
            return CaseOutcome(case_id, done["outcome"], True, 0.0, done.get("failed_stage"), done.get("error"))
    # a case segmented earlier, for other settings too (the device or model mistyped for this run): this job made
    # nothing in its place, and clearing it had a run back on the old settings make it again
    inferred = folder.status(case_id, "infer")
    if inferred is not None and inferred.get("outcome") == "ok" and folder.case_outputs_present(case_id):
        kept.append(case_id)
        return CaseOutcome(case_id, "ok", True, 0.0)
    blocked = _blocked_case_folder(folder, case_id, "infer", JOB_FAILED)
    if blocked is not None:
        return blocked
    error = job.case_error(sample, "not segmented")
    _log_failure(case_id, "infer", error)
    folder.forget(case_id, ("infer", "evaluate"))
    folder.clear(case_id, [folder.segmentation(case_id), folder.sidecar(case_id), folder.metrics(case_id),
                           folder.failure(case_id)])
    return _record_job_failed(sample, folder, job, error)


def _record_job_failed(sample: Sample, folder: ResultsFolder, job: _JobFailure, error: JobFailedError) -> CaseOutcome:
    """Write a case's failure record for its failed ``job`` (naming the job, its error and its log: ``job``) and its
    stage's record, not a finished one."""
    from medseg.failure_records import failure_record

    record = failure_record(sample.case_id, job.stage, error, sample.image, sample.reference, sample.series)
    record["job"] = job.record()
    write_json(folder.failure(sample.case_id), record)
    folder.mark_finished(sample.case_id, job.stage, JOB_FAILED, "failed", [folder.failure(sample.case_id)], 0.0,
                         one_line(error), {"failed_stage": job.stage, "job_failed": True})
    return CaseOutcome(sample.case_id, "failed", False, 0.0, job.stage, one_line(error))


def _job_failed_score(sample: Sample, folder: ResultsFolder, job: _JobFailure, kept: list[str]) -> CaseOutcome | None:
    """One case of a scoring job's :func:`_job_failed`: nothing without a reference or a segmentation to score
    (skipped), kept where it was scored earlier, for this work or (added to ``kept``) another reference or
    segmentation, as the inference job keeps a segmentation (the job made nothing in its place), else recorded as
    failed at ``evaluate`` (its segmentation kept)."""
    case_id = sample.case_id
    if sample.reference is None:
        return None
    inferred = folder.status(case_id, "infer")
    if inferred is None or inferred.get("outcome") != "ok" or not folder.case_outputs_present(case_id):
        return CaseOutcome(case_id, "skipped", False, 0.0, None, "segmentation failed")
    try:
        done = folder.finished(case_id, "evaluate", evaluate_fingerprint(sample, inferred))
    except Exception:  # noqa: BLE001 - what failed the job may fail this too: the case is then not finished
        done = None
    if done is not None:
        return CaseOutcome(case_id, done["outcome"], True, 0.0, done.get("failed_stage"), done.get("error"))
    scored = folder.status(case_id, "evaluate")
    if scored is not None and scored.get("outcome") == "ok" and folder.case_outputs_present(case_id, "evaluate"):
        kept.append(case_id)
        return CaseOutcome(case_id, "ok", True, 0.0)
    blocked = _blocked_case_folder(folder, case_id, "evaluate", JOB_FAILED)
    if blocked is not None:
        return blocked
    error = job.case_error(sample, "not scored")
    _log_failure(case_id, "evaluate", error)
    folder.forget(case_id, ("evaluate",))
    folder.clear(case_id, [folder.metrics(case_id), folder.failure(case_id)])
    return _record_job_failed(sample, folder, job, error)


def _each_case(samples: Sequence[Sample], summary: JobSummary, on_case: Callable[[CaseOutcome], None] | None,
               deadline: float | None, run_one: Callable[[Sample, bool], CaseOutcome | None]) -> None:
    """Run ``run_one(sample, out_of_time)`` on each case in turn (each under its claim), adding its outcome to
    ``summary``. Once ``deadline`` has come (a job's last attempt, :mod:`~medseg.cohort.job_deadline`), the case under
    way is stopped and it and the cases after it are run with ``out_of_time``: recorded as failed where they would be
    worked on, kept where they are finished."""
    from medseg.cohort.job_deadline import OutOfTime, stop_at

    out_of_time = False
    pending = list(samples)
    if deadline is not None:
        log.info("the job's last attempt: it stops at %s UTC, before its time limit, recording the cases it has not "
                 "finished by then as failed", time.strftime("%H:%M:%S", time.gmtime(deadline)))
    try:
        with stop_at(deadline):
            while pending:
                _one_case(pending[0], summary, on_case, False, run_one)
                pending.pop(0)
    except OutOfTime:
        out_of_time = True
    if out_of_time:
        done = {case.case_id for case in summary.cases}  # the stop may land after a case's outcome was added
        pending = [sample for sample in pending if sample.case_id not in done]
        log.warning("the job's time is up: %d of %d cases not finished are recorded as failed", len(pending),
                    len(samples))
        for sample in pending:
            _one_case(sample, summary, on_case, True, run_one)


def _one_case(sample: Sample, summary: JobSummary, on_case: Callable[[CaseOutcome], None] | None, out_of_time: bool,
              run_one: Callable[[Sample, bool], CaseOutcome | None]) -> None:
    # a Ctrl-C or SIGTERM whose exception a callback swallowed; the stop file of a workflow run that was stopped
    # (a job the signal did not reach ends here, after its current case)
    stopping.check(between=True)
    outcome = run_one(sample, out_of_time)
    if outcome is None:
        return
    summary.cases.append(outcome)
    if on_case is not None:
        on_case(outcome)


def check_no_workflow_run(results: Path | str) -> None:
    """Refuse, with an :class:`~medseg.errors.OutputExistsError` naming the process, while a workflow run holds the
    results folder (the claim its planning takes beside the folder): a cohort step started by hand beside it had
    replaced a case the run had just made and removed its fresh scores. Only looked at, not held: steps started by
    hand may run side by side, each case claimed in turn (and a workflow started after one is not refused: its jobs
    wait for each case the step holds). The workflow's own jobs do not ask."""
    from medseg.errors import OutputExistsError
    from medseg.io.folder_claim import claim_path, held_by_another

    holder = held_by_another(results)
    if holder is not None:
        raise OutputExistsError(f"{results}: another cohort run is writing to this folder ({holder}, per "
                                f"{claim_path(results)}); wait for it to end or give another folder")


def _case_claim(folder: ResultsFolder, case_id: str):
    """One process at a time on a case. Two cohort commands run at once on one results folder (started by hand; the
    workflow's jobs hold other cases) took each other's attempt notes for crashes, recorded healthy cases as
    failed and cleared each other's outputs. The claim (``status/.<id>.lock``) is waited for: the second run then
    finds the case finished and keeps it. Once held, the leftovers of a killed writer of the case's records go
    (the case's own in the shared ``status/``; a kept case's too)."""
    from medseg.cohort.records import case_claim_what
    from medseg.io.folder_claim import claim_refusal, claimed

    @contextlib.contextmanager
    def held():
        what = case_claim_what(case_id)
        if claim_refusal(folder.claim_folder(case_id), what) is not None:
            # a link or a named pipe in its place, which a claim refuses: the case fails alone, as blocked (its step
            # records it so, writing nothing of the case's own), where the refusal stopped the job
            yield
            return
        with claimed(folder.claim_folder(case_id), what, wait=True):
            folder.remove_record_leftovers(case_id)
            yield

    return held()


def _infer_one(sample: Sample, folder: ResultsFolder, package, options: InferOptions,
               lazy: _LazySegmenter, out_of_time: bool = False) -> CaseOutcome:
    from medseg.segment import segment_case

    case_id = sample.case_id
    signature = path_signature(sample.image, package_modalities(package))
    print_ = infer_fingerprint(sample, package, options, signature)
    blocked = _blocked_case_folder(folder, case_id, "infer", print_, probe=False)  # a file in its place
    if blocked is not None:
        return blocked
    done = _unless_more_memory(folder.finished(case_id, "infer", print_), options.memory_mb, case_id)
    if done is None and (old := infer_same_content(sample, folder, package, options)) is not None:
        _resign_infer(sample, folder, package, options, old, signature)
        done = folder.finished(case_id, "infer", print_)
    if done is not None:
        if done["outcome"] == "ok":
            _recode_sidecar(sample, folder, package)
        log.debug("%s: finished earlier (%s), kept", case_id, done["outcome"])
        return CaseOutcome(case_id, done["outcome"], True, 0.0, done.get("failed_stage"), done.get("error"))
    if infer_kept(sample, folder, package, options):
        # the same row, model and settings; only the file is away: what was made from it stays (the report shows
        # the case as not answering its row meanwhile)
        error = (f"{away_text(sample.image, modalities=package_modalities(package))}; the results made from it "
                 "earlier are kept, and reused if it comes back unchanged")
        _log_failure(case_id, "read", error)
        return CaseOutcome(case_id, "failed", False, 0.0, "read", error)
    # a case folder that takes no files (another user's, made read-only): that case fails, not the job; looked at
    # only here, where the case is to be made again (finished results in a folder made read-only since are kept)
    blocked = _blocked_case_folder(folder, case_id, "infer", print_)
    if blocked is not None:
        return blocked
    attempts = folder.attempts(case_id, "infer", print_)
    given_up = not out_of_time and give_up(folder, case_id, "infer", print_, options.memory_mb, options.final_attempt)
    # outside the try: a device problem is not this case's failure; before the case's earlier results go, which such
    # a job (a device mistyped for the run) cleared without making anything in their place. The network is built once
    # the input has been read (segment_case): an input that cannot be read is recorded without it
    choice = None if out_of_time or given_up else lazy.device()
    folder.forget(case_id, ("infer", "evaluate"))
    folder.clear(case_id, [folder.segmentation(case_id), folder.sidecar(case_id), folder.metrics(case_id),
                           folder.failure(case_id)])
    if out_of_time:
        return _timed_out(sample, folder, "infer", print_)
    if given_up:
        return _died(sample, folder, "infer", print_, attempts, options.memory_mb)
    also = equivalent_fingerprints(sample, package, options, signature, *choice)
    with _attempt(folder, case_id, "infer", print_, attempts, options.memory_mb, also):
        clock = time.perf_counter()
        try:
            outputs = segment_case(sample.image, lazy.plan, out_dir=folder.case_dir(case_id), overwrite=True,
                                   series=sample.series, case_id=case_id)
        except Exception as error:  # any error in one case is recorded, the others carry on
            if results_unwritable(error) or error is lazy.plan.error:  # building the network: the job's error
                raise
            seconds = time.perf_counter() - clock
            stage = failure_stage(error)
            _log_failure(case_id, stage, error)
            failure = folder.write_failure(case_id, stage, error, sample.image, sample.reference, sample.series)
            unreadable = unreadable_path(error)  # tried again once it can be read
            folder.mark_finished(case_id, "infer", print_, "failed", [failure], seconds, one_line(error),
                                 {"failed_stage": stage, "image_signature": signature, "also_made_for": also,
                                  **({"unreadable": unreadable} if unreadable else {})})
            return CaseOutcome(case_id, "failed", False, round(seconds, 3), stage, one_line(error))
        seconds = time.perf_counter() - clock
        folder.mark_finished(case_id, "infer", print_, "ok", [outputs.segmentation, outputs.sidecar], seconds,
                             extra={"timings_s": outputs.record.get("timings_s"), "image_signature": signature,
                                    "also_made_for": also})
    log.debug("%s: segmented in %.2f s", case_id, seconds)
    return CaseOutcome(case_id, "ok", False, round(seconds, 3))


def _blocked_case_folder(folder: ResultsFolder, case_id: str, stage: str = "infer",
                         print_: str = "blocked", probe: bool = True) -> CaseOutcome | None:
    """A file where the case's folder should be, or a case folder that takes no files (another user's, an immutable
    one): the case fails (no failure file can be written there), others go on. The stage's status record says so:
    later runs leave the case failed (planning does not void its batch for it), and redo it once that is put
    right."""
    error = folder.blocked_reason(case_id, probe)
    if error is not None:
        # scoring a segmentation made before its folder stopped taking files fails at scoring
        segmented = stage == "evaluate" and (folder.status(case_id, "infer") or {}).get("outcome") == "ok"
        failed_stage = "evaluate" if segmented else "infer"
        _log_failure(case_id, failed_stage, error)
        folder.forget(case_id, ("infer", "evaluate") if stage == "infer" else (stage,))
        folder.mark_finished(case_id, stage, print_, "failed", [], 0.0, error,
                             {"failed_stage": failed_stage, "blocked": True})
        return CaseOutcome(case_id, "failed", False, 0.0, failed_stage, error)
    return None


def _timed_out(sample: Sample, folder: ResultsFolder, stage: str, print_: str) -> CaseOutcome:
    """Record a case that its job's last attempt did not finish before the job's time limit (stopped under way, or
    not reached). Its record is not a finished one (:meth:`ResultsFolder.finished`): a later run tries it again."""
    error = JobTimeLimitError(
        f"{sample.image}: the job never finished this case: the job's last attempt ran out of time and stopped "
        f"itself before SLURM ended it; a later run tries it again (give the job more "
        f"time: --set-resources {stage}:runtime=MINUTES*attempt)")
    _log_failure(sample.case_id, stage, error)
    failure = folder.write_failure(sample.case_id, stage, error, sample.image, sample.reference, sample.series)
    folder.mark_finished(sample.case_id, stage, print_, "failed", [failure], 0.0, one_line(error),
                         {"failed_stage": stage, "out_of_time": True})
    return CaseOutcome(sample.case_id, "failed", False, 0.0, stage, one_line(error))


def _died(sample: Sample, folder: ResultsFolder, stage: str, print_: str, attempts: int,
          memory_mb: int | None = None) -> CaseOutcome:
    """Record a case whose earlier attempts killed their process, instead of trying it once more."""
    died_with = folder.death_memory(sample.case_id, stage, print_)
    also = folder.equivalents(sample.case_id, stage, print_)  # read before mark_finished removes the note
    offered = max((m for m in (died_with, memory_mb) if m is not None), default=None)
    memory = (f"; it died with up to {died_with} MB and was given up with {offered} MB, and a later run whose job "
              f"starts with more than {offered} MB tries it again" if died_with is not None else "; not tried again")
    limit = cgroup_limit()
    if limit is not None and (offered is None or limit.size < offered * 10**6):  # a job's mem_mb that no one enforced
        memory += (f" (this job's cgroup allows it {limit.size / 2**20:.0f} MiB, {limit.file}"
                   f"{'' if offered is None else ', less than the job asked for'})")
    error = WorkerDiedError(
        f"{sample.image}: the process working on this case died {'once' if attempts == 1 else f'{attempts} times'} "
        "without reporting an error "
        f"(crashed, killed or out of memory){memory}"
    )
    _log_failure(sample.case_id, stage, error)
    failure = folder.write_failure(sample.case_id, stage, error, sample.image, sample.reference, sample.series)
    folder.mark_finished(sample.case_id, stage, print_, "failed", [failure], 0.0, one_line(error),
                         {"failed_stage": stage, "worker_died_memory_mb": died_with,
                          # the most this job offered (on its last retry a case is given up untried)
                          "worker_given_up_memory_mb": offered, **({"also_made_for": also} if also else {})})
    return CaseOutcome(sample.case_id, "failed", False, 0.0, stage, one_line(error))


def evaluate_cases(samples: Sequence[Sample], results: Path | str, threads: int | None = None,
                   memory_mb: int | None = None, on_case: Callable[[CaseOutcome], None] | None = None,
                   final_attempt: bool = False, redo: str | None = None, deadline: float | None = None,
                   job: str | None = None, job_log: str | None = None) -> JobSummary:
    """Score the segmentations of ``samples`` that have a reference, skipping finished cases (``memory_mb`` and
    ``deadline``: the job's memory and the time it stops at, ``job`` and ``job_log`` the workflow's job and its log,
    as for :class:`InferOptions`; ``on_case`` and ``redo`` as for :func:`infer_cases`). On the job's last attempt
    (``final_attempt``, with ``job``), an error of the whole job (a results folder that takes no outputs, an error
    medseg did not foresee: a SciPy that fails as it is imported) records the cases not scored yet as failed, naming
    the job, its error and its log, and the job ends with its summary, so that the workflow makes its report (the
    segmentations are kept). A reference that cannot be read fails its case alone.

    Each case must have been through :func:`infer_cases`; a case whose segmentation failed is ``skipped``. medseg's
    thread count (:func:`medseg.resources.cpu_threads`, which the surface distances' searches follow) is set for the
    process when a case is scored (``threads``), and left so; torch is not imported.
    """
    clock = time.perf_counter()
    check_searchable(results)  # every case's files are in it
    folder = ResultsFolder(results, redo=redo)
    summary = JobSummary(stage="evaluate")
    setup = _MetricsSetup(threads)
    try:
        _evaluate_all(samples, folder, summary, setup, memory_mb, on_case, final_attempt, deadline)
    except Exception as error:  # not a stop (KeyboardInterrupt, SystemExit): as for infer_cases
        if not (final_attempt and job):
            raise
        _job_failed(samples, folder, summary, error, _JobFailure("evaluate", job, job_log), on_case,
                    lambda sample, failed, kept: _job_failed_score(sample, folder, failed, kept))
    return summary.timed(setup.setup_s, clock)


def _evaluate_all(samples: Sequence[Sample], folder: ResultsFolder, summary: JobSummary, setup: _MetricsSetup,
                  memory_mb: int | None, on_case: Callable[[CaseOutcome], None] | None, final_attempt: bool,
                  deadline: float | None) -> None:
    """The cases of :func:`evaluate_cases`, their outcomes added to ``summary``."""
    # every case to score must have been segmented: said before any is scored, all of them at once
    unsegmented = [sample.case_id for sample in samples
                   if sample.reference is not None and not folder.blocked(sample.case_id)
                   and (folder.status(sample.case_id, "infer") is None
                        or not folder.case_outputs_present(sample.case_id))]
    if unsegmented:
        shown = ", ".join(unsegmented[:5]) + (f" … ({len(unsegmented)} cases)" if len(unsegmented) > 5 else "")
        raise InputError(f"{folder.root}: {'case' if len(unsegmented) == 1 else 'cases'} {shown} "
                         f"{'has' if len(unsegmented) == 1 else 'have'} not been segmented yet; run the infer step "
                         "first")

    def run_one(sample: Sample, out_of_time: bool) -> CaseOutcome | None:
        if sample.reference is None:
            if folder.unscore(sample.case_id):
                log.info("%s: no reference any more; its earlier scores were removed", sample.case_id)
            else:
                log.info("%s: no reference, nothing to score", sample.case_id)
            return None
        with _case_claim(folder, sample.case_id):
            if folder.blocked(sample.case_id, probe=False):  # its record carries the fingerprint planning compares
                inferred = folder.status(sample.case_id, "infer")
                print_ = evaluate_fingerprint(sample, inferred) if inferred and "run_id" in inferred else "blocked"
                return _blocked_case_folder(folder, sample.case_id, "evaluate", print_)
            return _evaluate_one(sample, folder, setup, memory_mb, final_attempt, out_of_time)

    _each_case(samples, summary, on_case, deadline, run_one)


class _MetricsSetup:
    """Sets medseg's threads (``threads``: the surface distances' searches follow them) and imports scipy's k-d tree
    and feature transform on first use, timed apart from the cases (scoring uses neither torch nor MONAI)."""

    def __init__(self, threads: int | None) -> None:
        self.threads = threads
        self.setup_s = 0.0
        self.ready = False

    def get(self) -> None:
        if not self.ready:
            clock = time.perf_counter()
            import scipy.ndimage  # noqa: F401 - the import is what is timed
            import scipy.spatial  # noqa: F401

            set_threads(self.threads, torch=False)  # or no more than a cgroup's CPU quota allows
            self.ready = True
            self.setup_s = time.perf_counter() - clock


def _evaluate_one(sample: Sample, folder: ResultsFolder, setup: _MetricsSetup, memory_mb: int | None = None,
                  final_attempt: bool = False, out_of_time: bool = False) -> CaseOutcome:
    from medseg.metrics import metrics_json
    from medseg.scoring import score_prediction

    case_id = sample.case_id
    inferred = folder.status(case_id, "infer")
    if inferred is None or not folder.case_outputs_present(case_id):
        raise InputError(f"{folder.root}: case {case_id} has not been segmented yet; run the infer step first")
    signature = path_signature(sample.reference)
    print_ = evaluate_fingerprint(sample, inferred, signature)
    done = _unless_more_memory(folder.finished(case_id, "evaluate", print_), memory_mb, case_id)
    if done is None and evaluate_same_content(sample, folder, inferred) is not None:
        # the reference's content is the one scored: the record takes its signature now (hashed once)
        write_json(folder.status_path(case_id, "evaluate"), {**folder.status(case_id, "evaluate"),
                                                              "fingerprint": print_, "reference_signature": signature})
        log.info("%s: the reference's size or time changed but not its content; its scores are kept", case_id)
        done = folder.finished(case_id, "evaluate", print_)
    if done is not None:
        if done["outcome"] == "skipped":  # never scored: its segmentation had failed, and still has
            log.info("%s: not scored (%s), as before", case_id, done.get("error") or "skipped")
        else:
            log.debug("%s: scored earlier (%s), kept", case_id, done["outcome"])
        return CaseOutcome(case_id, done["outcome"], True, 0.0, done.get("failed_stage"), done.get("error"))
    if evaluate_kept(sample, folder, inferred):
        # worded as the image's case above ("missing" said the same in other words); unavailable: missing, a link
        # that leads nowhere (said to be an empty folder), a folder without files or with some not here
        error = (f"{away_text(sample.reference, 'no such file')}; the scores made against it earlier are kept, and "
                 "reused if it comes back unchanged")
        _log_failure(case_id, "evaluate", error)
        return CaseOutcome(case_id, "failed", False, 0.0, "evaluate", error)
    folder.forget(case_id, ("evaluate",))
    if inferred["outcome"] != "ok":
        folder.mark_finished(case_id, "evaluate", print_, "skipped", [], 0.0, "segmentation failed")
        return CaseOutcome(case_id, "skipped", False, 0.0, None, "segmentation failed")
    blocked = _blocked_case_folder(folder, case_id, "evaluate", print_)  # as at infer
    if blocked is not None:
        return blocked
    folder.clear(case_id, [folder.metrics(case_id), folder.failure(case_id)])
    attempts = folder.attempts(case_id, "evaluate", print_)
    if out_of_time:
        return _timed_out(sample, folder, "evaluate", print_)
    if give_up(folder, case_id, "evaluate", print_, memory_mb, final_attempt):
        return _died(sample, folder, "evaluate", print_, attempts, memory_mb)
    setup.get()
    with _attempt(folder, case_id, "evaluate", print_, attempts, memory_mb):
        clock = time.perf_counter()
        metrics_path = folder.metrics(case_id)
        try:
            # its labels by the sidecar the infer step wrote; an edited segmentation is warned about
            # named after the case id: the reference's name is compared with the sheet's image's
            metrics = score_prediction(folder.segmentation(case_id), sample.reference, case_id,
                                       sidecar_required=True, named_for=sample.image)
            with atomic_paths([metrics_path], overwrite=True) as (temp,):
                temp.write_text(metrics_json(metrics))
        except Exception as error:  # any error in one case is recorded, the others carry on
            if results_unwritable(error):
                raise
            seconds = time.perf_counter() - clock
            _log_failure(case_id, "evaluate", error)
            failure = folder.write_failure(case_id, "evaluate", error, sample.image, sample.reference, sample.series)
            unreadable = unreadable_path(error)  # tried again once it can be read
            folder.mark_finished(case_id, "evaluate", print_, "failed", [failure], seconds, one_line(error),
                                 {"failed_stage": "evaluate", **({"unreadable": unreadable} if unreadable else {})})
            return CaseOutcome(case_id, "failed", False, round(seconds, 3), "evaluate", one_line(error))
        seconds = time.perf_counter() - clock
        folder.mark_finished(case_id, "evaluate", print_, "ok", [metrics_path], seconds,
                             extra={"reference_signature": signature})
    log.debug("%s: scored in %.2f s", case_id, seconds)
    return CaseOutcome(case_id, "ok", False, round(seconds, 3))


def write_job_record(path: Path | str, summary: JobSummary) -> None:
    """Write a batch's summary (schema medseg-cohort-job/1) atomically: Snakemake's proof the job finished. The
    leftovers of a writer of the same record killed outright (this job's earlier run) go first."""
    from medseg.io.atomic import remove_leftovers_of

    path = Path(path)
    remove_leftovers_of(path.parent, [path.name])
    write_json(path, {
        "schema": JOB_SCHEMA,
        "stage": summary.stage,
        "model": summary.model,
        "setup_s": summary.setup_s,
        "total_s": summary.total_s,
        "counts": {outcome: summary.count(outcome) for outcome in ("ok", "failed", "skipped")} | {
            "reused": summary.reused},
        "cases": [asdict(case) for case in summary.cases],
        **({"job_error": summary.job_error} if summary.job_error is not None else {}),
        "created": now(),
    })
