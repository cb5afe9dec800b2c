# Sample sheet, jobs and helpers of the cohort workflow.

import contextlib
import functools
import os
import re
import shlex
import sys
from pathlib import Path

from medseg.cohort.planning_stop import (end_with_execution, ends_with_the_process, log_stop, outcome_decided,
                                         planning_done, run_ended, run_stopped_line, stop_if_snakemake_took_sigterm,
                                         stop_planning_on_interrupt, stopped_by, stopped_code, wait_for_lost_jobs)


def tell_stop(line, logfiles):
    """A stop's one line: on the console, and at the end of the run's Snakemake log (``logfiles``), which is where a
    user whose terminal closed (SIGHUP) finds it."""
    log_stop(line, logfiles)
    print(line, file=sys.stderr, flush=True)


def planning_stopped(line):
    """A Ctrl-C, SIGTERM or SIGHUP while the run is planned: one line and exit code 130, 143 or 129 (a Ctrl-C was a
    KeyboardInterrupt traceback; a SIGTERM or SIGHUP ended the process at once, leaving Snakemake's lock once it had
    taken it)."""
    if workflow.scheduler is not None and workflow.dryrun:
        # a dry run listing its jobs: Snakemake's job loop takes a SystemExit for a failed run (exit 1), and its log
        # writer drops it (the listing went on, exit 0); a dry run holds no lock and writes nothing, so it ends here,
        # on a line of its own (the stop may cut a line of the listing)
        sys.stdout.flush()
        print("\n" + line, file=sys.stderr, flush=True)
        if not ends_with_the_process():  # a program running the workflow through Snakemake's API goes on: the job
            sys.exit(stopped_code())  # loop takes this in, and end_with_execution raises it again as the run returns
        claim = globals().get("_results_claim")  # a dry run of --touch holds the results folder; os._exit runs no
        if claim is not None:  # atexit, which gives it back and removes its lock file
            claim.__exit__(None, None, None)
        os._exit(stopped_code())
    lock = globals().get("snakelock")  # a stop in onstart: the run's record (the lock is Snakemake's to release)
    if lock is not None:
        lock.forget_run(Path(".snakemake"))
    tell_stop(line, getattr(getattr(workflow, "logger_manager", None), "get_logfile", list)())
    sys.exit(stopped_code())


# first, before the imports that take most of planning's time; Snakemake's own handling of a Ctrl-C comes back as the
# jobs start (onstart)
if workflow.is_main_process:
    stop_planning_on_interrupt(planning_stopped)

import pandas as pd

from medseg import cohort, stopping
from medseg.cohort import records, snakelock
from medseg.cohort.input_voxels import input_grid
from medseg.numbers import counted
from medseg.cohort.job_command import medseg_command
from medseg.cohort.job_memory import evaluate_memory_mb, infer_memory_mb
from medseg.cohort.job_totals import AskedJob, asked_line
from medseg.cohort.invocation import profile_retries, runtime_enforced
from medseg.cohort.job_deadline import EXECUTOR_VARIABLE
from medseg.cohort.slurm_logs import (LOGDIR_VARIABLE, RUN_START_VARIABLE, attempt_id, attempt_logs,
                                      retry_memory_attempts, slurm_logdir)
from medseg.cohort.job_runtime import evaluate_minutes as planned_evaluate_minutes
from medseg.cohort.job_runtime import infer_minutes as planned_infer_minutes
from medseg.cohort.report_memory import report_memory_mb
from medseg.cohort.time_outs import forget_out_of_time, memory_factor
from medseg.cohort.settings import (check_config, check_results_folder, config_source, cpus_beside_threads,
                                    first_attempt_memory, fixed_retry_resources, gpu_model_without_gpu,
                                    old_default_runtime, per_cpu_memory, placeholder_resources, resource_settings,
                                    rule_threads, runtime_overridden, job_cpus, scaled_memory_mb,
                                    set_memory_mb, set_runtime_minutes)
from medseg.errors import MedsegError
from medseg.package import DEFAULT_MODEL, load_package, shipped_name_taken, shipped_package_path
from snakemake.logging import logger
from snakemake.utils import validate
from snakemake_interface_executor_plugins.settings import DeploymentMethod

# the run's set-up and end are its hooks (the batch plan, the run record, a Ctrl-C told): a run without them is
# refused, a usage error, before any work (the job processes Snakemake spawns are given --no-hooks: not asked there)
def refuse_no_hooks():
    print(cohort.NO_HOOKS_REFUSED, file=sys.stderr, flush=True)
    sys.exit(2)


def refuse_no_hooks_setting(*args, executor_plugin=None, **kwargs):
    """--no-hooks in the settings of Snakemake's Python API, which no command line carries and which it sets only as
    the run is executed (after this file is read): refused then, before Snakemake takes its lock or starts a job."""
    if cohort.hooks_skipped_by(getattr(workflow, "execution_settings", None), executor_plugin):
        refuse_no_hooks()


if workflow.is_main_process:
    if cohort.hooks_skipped(sys.argv[1:]):
        run_ended()
        refuse_no_hooks()
    # a second --config replaced the first's settings without a word (the sheet, the results folder, device=cuda); the
    # settings Snakemake read tell whether sys.argv is its command line or that of a program running it through its API
    _repeated_config = cohort.repeated_config(
        sys.argv[1:], getattr(getattr(workflow, "config_settings", None), "config_args", None))
    if _repeated_config is not None:
        run_ended()
        sys.exit(f"medseg: error: {_repeated_config}")
    # and a --config on the command line replaced a profile's config: whole (a copy of the SLURM profile's device=cuda)
    _dropped_config = cohort.dropped_profile_config(
        sys.argv[1:], getattr(getattr(workflow, "config_settings", None), "config_args", None))
    if _dropped_config is not None:
        logger.warning(_dropped_config)
    # the handlers found before the run come back however it ends, also where it reaches no hook (nothing to do, a
    # dry run, an error)
    end_with_execution(workflow, refuse_no_hooks_setting, sys.exit)


def planned(step, *args, **kwargs):
    """Run a planning step; its MedsegError is medseg's one-line error and exit code 1 (raised, Snakemake would
    frame it with the Snakefile's line and two traceback lines)."""
    try:
        return step(*args, **kwargs)
    except MedsegError as error:
        run_ended()  # a caller of Snakemake's API gets its handlers back
        sys.exit(f"medseg: error: {error}")


_CONFIG_SETTINGS = getattr(workflow, "config_settings", None)  # where each setting came from, for the messages


@functools.lru_cache(maxsize=1)
def config_profile():
    """The profile file whose config: gave the run its --config settings (Snakemake reads a profile's config: as a
    --config), None where the command line typed --config or a program runs the workflow through Snakemake's API:
    asked only for a message that names where a setting was set."""
    return cohort.config_profile(sys.argv[1:], getattr(_CONFIG_SETTINGS, "config_args", None))


# medseg's check first: one line naming the key (Snakemake's prints the whole schema); then Snakemake's, which
# also fills in the defaults
planned(check_config, config, f"{workflow.basedir}/configs/schemas/config.schema.yaml",
        lambda key: config_source(key, getattr(_CONFIG_SETTINGS, "config", None) or {},
                                  getattr(_CONFIG_SETTINGS, "configfiles", None) or [],
                                  f"{workflow.basedir}/configs/cohort.yaml", config_profile()))
planned(check_results_folder, config["results"])
# --set-resources and --resources, through Snakemake's public names only: a Snakemake that renames them skips the
# checks that read them with a warning, not a traceback (medseg/cohort/settings.py resource_settings)
_RESOURCE_SETTINGS = getattr(workflow, "resource_settings", None)
_OVERRIDES, _CAPS, _unread = resource_settings(_RESOURCE_SETTINGS)
_DEFAULT_RESOURCES = getattr(getattr(_RESOURCE_SETTINGS, "default_resources", None), "args", None) or []
# the threads each batch rule's jobs run on (--config threads, --set-threads, at most --max-threads and --cores), with
# which Snakemake evaluates a --set-resources expression of threads (mem_mb=2000*threads, cpus_per_task=threads)
_THREADS = rule_threads(_RESOURCE_SETTINGS, {"infer": config.get("threads", 1), "evaluate": 1},
                        cohort.previewing(sys.argv[1:]))
if workflow.is_main_process:  # a dry run with the shipped SLURM profile as it is planned every job without a word
    if _unread is not None:
        logger.warning(_unread)
    _placeholders = placeholder_resources(_DEFAULT_RESOURCES)
    if _placeholders is not None:
        logger.warning(_placeholders)
    # a fixed --set-resources infer:mem_mb= (or runtime) replaces the rules' own, which retries scale: a job killed
    # for memory was submitted again twice with as much
    _fixed = fixed_retry_resources(_OVERRIDES)
    if _fixed is not None:
        logger.warning(_fixed)
    # memory per CPU: sbatch --mem-per-cpu, which neither the retries' scaling nor the jobs' --memory-mb follow
    _per_cpu = per_cpu_memory(_DEFAULT_RESOURCES, _OVERRIDES)
    if _per_cpu is not None:
        logger.warning(_per_cpu)
    # CPUs per task (or per GPU) other than the threads medseg runs on: sbatch gives them, medseg leaves them idle
    _cpus = cpus_beside_threads(_DEFAULT_RESOURCES, _OVERRIDES, _THREADS,
                                {"infer"} if str(config.get("device", "")).startswith("cuda") else set())
    if _cpus is not None:
        logger.warning(_cpus)
    # a GPU model for inference jobs that ask for no GPU (device not cuda): sbatch --gpus=MODEL:0, the jobs on the CPU
    _no_gpu = gpu_model_without_gpu(_DEFAULT_RESOURCES, _OVERRIDES, config.get("device", "auto"))
    if _no_gpu is not None:
        logger.warning(_no_gpu)
validate(config, "../../configs/schemas/config.schema.yaml")

SHEET = config["samples"]
# the jobs' parameter: the sheet named another way (relative, absolute, with ..) is the same sheet, not a change
SHEET_PATH = os.path.abspath(SHEET)
RESULTS = str(Path(config["results"]))
# medseg runs with the interpreter that runs Snakemake (no environment to activate), or, with
# --software-deployment-method conda, from the rule's conda environment (workflow/envs/medseg.yaml). The jobs run
# the medseg this file plans with, the folder beside the Snakefile (which Snakemake puts first on the path): from
# another working folder (-s, --directory) a job's Python imported the environment's medseg instead, an installed
# wheel or another checkout's editable install, other code than the run was planned with
_CONDA = DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
_MEDSEG_ROOT = str(Path(cohort.__file__).resolve().parents[2])  # medseg/cohort/__init__.py
MEDSEG = medseg_command("python", None) if _CONDA else medseg_command(sys.executable, _MEDSEG_ROOT)

_rows = planned(cohort.read_sample_rows, SHEET)
# medseg's own checks first: their messages name the sheet and its line; the schema documents the columns
SAMPLES = planned(cohort.samples_from_rows, _rows, Path(SHEET).parent, where=SHEET)
validate(
    pd.DataFrame([{k: v for k, v in row.items() if not k.startswith("_")} for row in _rows]),
    "../../configs/schemas/samples.schema.yaml",
)
# the jobs the last run planned (with this cases_per_job) keep their cases: a row taken out or added reruns its own
# job only. The plan is written as a run starts (onstart), so that a job a cluster starts, which reads this file
# again while other jobs write their records, finds the same jobs (an unchanged plan is kept whole)
_PLAN = cohort.read_batch_plan(RESULTS, config["cases_per_job"])
BATCHES = planned(cohort.batches, SAMPLES, config["cases_per_job"], _PLAN)
# a changed weights file or model.json (a new model version) makes every inference job run again; damaged weights
# (not the SHA-256 model.json records) are refused here, once, not in every job after its retries
# model: phantom, unless given on the command line, is the shipped demo model's folder, as `medseg infer` without
# --model takes it (a package folder ./phantom is taken when named); named, a package folder of a shipped model's
# name is warned about once, by the main process
_MODEL = str(config["model"])
if _MODEL == DEFAULT_MODEL and "model" not in workflow.config_settings.config:
    _MODEL = shipped_package_path(DEFAULT_MODEL)
_PACKAGE = planned(load_package, _MODEL if workflow.is_main_process else Path(_MODEL),
                   check_hash=workflow.is_main_process)
# the inputs of a job (images, references, the model's files) are not declared to Snakemake: it fails a job whose
# record is older than an input ("clock skew"), so that a file dated in the future (copied with its times from a
# machine whose clock is ahead, a share whose server's clock is) failed every job that read it, again and again, and
# the run. A job still reruns when they change: their path, size and time are its parameters (inputs_signature), the
# model's SHA-256 is its cases' (planning redoes the cases of another model, medseg/cohort/stale_jobs.py), and medseg
# reads them from the sheet
MODEL_FOLDER = str(_PACKAGE.weights_path.parent)
GPUS = 1 if config["device"].startswith("cuda") else 0
# a failed infer or evaluate job is tried again this many times, with more memory and time; each job is told its
# attempt, so that on the last a case that killed every worker is given up and the rest of the batch completes
# (the memory a retry gets does not tell it: --resources mem_mb caps it)
RETRIES = 2
# the rules' retries, for the main process only: it submits a failed job again with more memory and time. A job a
# cluster runs is a Snakemake process of its own, where a rule's retries: applies too (over the --retries 0 it is
# given): a SLURM job killed for memory ran its command twice more in the same allocation, telling medseg twice and
# three times the memory and its last attempt, so a case needing more was given up inside the first job, which then
# succeeded (snakemake-executor-plugin-slurm issue #284)
RULE_RETRIES = RETRIES if workflow.is_main_process else 0
_TAKEN = shipped_name_taken(_PACKAGE, config["model"]) if workflow.is_main_process else None
if _TAKEN is not None:  # as `medseg infer` warns
    logger.warning(_TAKEN)
if workflow.is_main_process and _PACKAGE.path.resolve() == shipped_package_path(DEFAULT_MODEL).resolve():
    # as `medseg infer` without --model says: a sheet of real scans run without model= gets synthetic-shape labels
    logger.warning(f"model {DEFAULT_MODEL}: the shipped demo model (synthetic shapes only), the default of "
                   "configs/cohort.yaml; for real images give model=NAME (`medseg models`) or a package folder")

# a run killed outright (SIGKILL, power loss) leaves Snakemake's lock behind; release it when that run is
# provably gone, so that running the same command again resumes (medseg/cohort/snakelock.py)
if workflow.is_main_process:
    # a checkout another member ran from (umask 022): one line, where Snakemake stopped with a traceback
    planned(cohort.check_snakemake_folder, Path(".snakemake"))
    for _lock in snakelock.release_stale_locks(Path(".snakemake")):
        logger.warning(f"released the Snakemake lock {_lock} left by a run that was killed")
    # a lock that is kept and would stop this run: one line saying whose it is and what to do, where Snakemake's
    # LockException advised --unlock also while that run, or the jobs of a killed one, still worked (a preview, an
    # --unlock among them, takes no lock)
    if cohort.claims_results(sys.argv[1:]):
        planned(snakelock.check_lock, Path(".snakemake"), RESULTS)


# the folder of SLURM's logs of this run's jobs (set as the run starts, under SLURM), and the time planning began: a
# log changed since is of this run's attempts
_SLURM_LOGS = None
_RUN_START = __import__("time").time()


def retry_memory_factor(rule, batch, record, attempt):
    """What attempt ``attempt`` of the job of ``rule`` on ``batch`` multiplies its first attempt's memory by. Under
    SLURM, one more for each earlier attempt whose SLURM log says it was killed for memory: a time-out, a node's
    failure or a batch script that failed before medseg started keeps the memory (medseg/cohort/slurm_logs.py),
    where each earlier attempt of this run left its log there (else as elsewhere). Elsewhere the attempt, less the earlier attempts that noted a time-out (``record``'s note,
    medseg/cohort/time_outs.py). A job's own Snakemake process (which SLURM runs, told the folder and its job id)
    reads the same logs: the memory it tells medseg is the memory the job asked SLURM for."""
    if attempt <= 1:
        return 1
    since = _RUN_START
    if workflow.is_main_process:
        folder, job_id = _SLURM_LOGS, None
    else:  # a job's own Snakemake process works the memory out again, for the command it runs: the same logs
        folder, job_id = os.environ.get(LOGDIR_VARIABLE), attempt_id()  # a task of an array: <array id>_<task>
        folder = folder if job_id else None
        try:  # the run's start, which it tells its jobs: an earlier run's log of the batch is none of its attempts
            since = float(os.environ.get(RUN_START_VARIABLE) or 0.0)
        except ValueError:
            since = 0.0
    # where an earlier attempt's log is not there, the rule without logs (retry_memory_attempts)
    fallback = attempt if record is None else memory_factor(record, attempt)
    if folder is not None:
        return retry_memory_attempts(Path(folder, f"rule_{rule}", batch), attempt, fallback, since, job_id)
    return fallback


onstart:
    # no job has started before the end of onstart: a Ctrl-C, SIGTERM or SIGHUP until then is one while the run is
    # planned (its line and exit code; one in onstart's own work was a KeyboardInterrupt traceback), and so is a
    # SIGTERM that Snakemake's own handler took since it made the jobs' scheduler
    stop_if_snakemake_took_sigterm(workflow)
    stopping.unmark(_STOP_FILE)  # one left by a run of this pid
    planned(cohort.write_batch_plan, RESULTS, config["cases_per_job"], BATCHES, _PLAN)
    # the notes of an earlier run's attempts that SLURM ended at their time limit (this run's attempts count from 1)
    forget_out_of_time(Path(RESULTS, "jobs"))
    snakelock.record_run(Path(".snakemake"))
    # the jobs are told the executor (known from here on): with the local one, Snakemake perhaps itself a SLURM job,
    # no scheduler enforces a job's runtime, and a last attempt does not stop at it (medseg/cohort/job_deadline.py)
    os.environ[EXECUTOR_VARIABLE] = getattr(workflow.executor_plugin, "name", "")
    # and, under SLURM, the folder of SLURM's logs of the jobs, which tell why an attempt ended (retry_memory_factor)
    # and which a job names in its records (medseg/cohort/slurm_logs.py)
    global _SLURM_LOGS
    if getattr(workflow.executor_plugin, "name", "") == "slurm":
        _SLURM_LOGS = slurm_logdir(getattr(workflow.executor_settings, "logdir", None), workflow.workdir_init)
        os.environ[LOGDIR_VARIABLE] = str(_SLURM_LOGS)
        os.environ[RUN_START_VARIABLE] = repr(_RUN_START)
    else:
        os.environ.pop(LOGDIR_VARIABLE, None)
        os.environ.pop(RUN_START_VARIABLE, None)
    # from here on a stop is Snakemake's to handle: it stops the jobs, releases its lock; and it writes the run's stop
    # file, after which the jobs end after their current case (those the signal did not reach: started as it landed,
    # or all when it went to Snakemake alone)
    planning_done(_STOP_FILE, workflow)


# each ends with the SIGINT, SIGTERM and SIGHUP handlers found before the run back (a caller of Snakemake's API gets
# its own; end_with_execution, above, for a run that reaches no hook)
onsuccess:
    outcome_decided()  # every job has ended: a stop from here on changes nothing (it was a traceback, exit code 1)
    try:
        snakelock.forget_run(Path(".snakemake"))
        if _forced:  # its token was kept for the same command run again after a stop (a plain run does not finish it)
            cohort.forget_forced_run(RESULTS)
    finally:
        run_ended()


def report_unstarted_jobs(snakemake_log):
    """After a failed run under SLURM: an inference or scoring job whose every attempt ended before medseg recorded
    anything (its batch script or its node failed: SLURM's logs of this run hold every attempt, and the job wrote no
    record; or sbatch refused it, as Snakemake's log of the run, ``snakemake_log``, says with sbatch's message) is
    recorded here, its cases as failed naming the job and SLURM's log of its last attempt or sbatch's refusal
    (medseg/cohort/unstarted_jobs.py); then the report is made and the failed cases checked as the run's last steps
    do, here on the login node (one line each where that fails). The report had never been made: it needs every
    batch's record."""
    import subprocess

    from medseg.cohort.unstarted_jobs import failed_array_tasks, record_unstarted_job, refused_submissions

    recorded = []
    _refused = refused_submissions(snakemake_log)
    # an array task whose batch script failed before Snakemake started, as every task of its array did: its log names
    # no job, Snakemake's log of the run names the job of each failed task
    _failed_tasks = failed_array_tasks(snakemake_log)
    for _batch, _samples in BATCHES.items():
        for _stage in ("infer", "evaluate"):
            if Path(RESULTS, "jobs", f"{_batch}.{_stage}.json").exists():
                continue
            _logs = attempt_logs(Path(_SLURM_LOGS, f"rule_{_stage}", _batch), _RUN_START, _failed_tasks)
            _refusals = _refused.get(f"{_batch}.{_stage}", [])
            if len(_logs) + len(_refusals) < 1 + RETRIES:  # not every attempt ran (the run stopped first):
                continue  # Snakemake's own message
            try:
                record_unstarted_job(_samples, RESULTS, f"{_batch}.{_stage}", _logs,  # a job that never ran: no log
                                     f"{RESULTS}/logs/{_stage}/{_batch}.log" if _logs else None, _options, _PACKAGE,
                                     _refusals, since=_RUN_START)
            except (MedsegError, OSError) as error:
                print(f"medseg: error: {error}", file=sys.stderr, flush=True)
                return
            recorded.append(f"{_batch}.{_stage}")
    if not recorded:
        return
    _unrecorded = [batch for batch in BATCHES if not Path(RESULTS, "jobs", f"{batch}.infer.json").exists()]
    if _unrecorded:
        print(f"medseg: {cohort.some_names(recorded)}: every attempt ended before medseg recorded anything; their "
              f"cases are recorded as failed, but no report is made: {cohort.some_names(_unrecorded)} never ran",
              file=sys.stderr, flush=True)
        return
    # on this node, where no job's memory limit holds: the memory its job would have asked for (report_memory)
    print(f"medseg: {cohort.some_names(recorded)}: every attempt ended before medseg recorded anything (SLURM's log "
          "of the last, medseg's error, or sbatch's refusal, is named in the report); their cases are recorded as "
          f"failed, and the report is made here (about {report_memory():,} MB, as its job would ask)",
          file=sys.stderr, flush=True)
    _report_log = Path(RESULTS, "logs", "report.log")
    _report_log.parent.mkdir(parents=True, exist_ok=True)
    _window = "" if config["ct_window"] is None else f" --ct-window {shlex.quote(str(config['ct_window']))}"
    subprocess.run(f"{MEDSEG} -v report {shlex.quote(RESULTS)} -o {shlex.quote(str(Path(RESULTS, 'report.html')))}"
                   f" --dice-threshold {config['dice_threshold']} --max-overlays {config['max_overlays']}{_window}"
                   f" --sheet {shlex.quote(SHEET_PATH)} --overwrite --in-workflow"
                   f" > {shlex.quote(str(_report_log))} 2>&1",
                   shell=True, check=False)
    with contextlib.suppress(OSError):
        _shown = False
        for _line in _report_log.read_text(encoding="utf-8", errors="replace").splitlines():
            _shown = _shown or re.match(r"[0-9]+ cases? \(", _line) is not None
            if _shown:
                print(_line, flush=True)
    # without the step's --record: the check fails on the failed job just recorded, before it writes its record (as
    # the check_failures step does, whose output Snakemake would remove), so that there would be none either
    _check = subprocess.run(f"{MEDSEG} cohort check {shlex.quote(RESULTS)} --fail-on "
                            f"{config.get('fail_on_failed_cases', 'all')}", shell=True, check=False,
                            capture_output=True, text=True)
    print((_check.stdout + _check.stderr).strip(), file=sys.stderr, flush=True)


onerror:
    outcome_decided()
    try:
        if stopped_by() is not None:  # a job the stop caught as it started, which Snakemake lost track of, ends first
            # (its process would wait for it anyway): after its current case, told by the stop file (removed with the
            # run's record, next)
            wait_for_lost_jobs(workflow)
        snakelock.forget_run(Path(".snakemake"))
        if stopped_by() is not None:  # a Ctrl-C, SIGTERM or SIGHUP, which Snakemake reports as a failed run (exit
            # 1): one line, also in the run's log, and exit 130 (143, 129)
            records.ResultsFolder(RESULTS).remove_left_claims()  # of a case a job was taking or giving back as the
            # stop landed; the cases finished for this run's model, settings and forcing (results made for other
            # work are still there, but to be made again: they counted as kept, "202 of 202" where 40 were made)
            # and a case given up with less memory than its job starts with, which the jobs try again
            _done = cohort.finished_cases(BATCHES, RESULTS, _PACKAGE, _options,
                                          {_stage: os.environ.get(_variable)
                                           for _stage, _variable in _REDO_VARIABLES.items()}, _memory)
            tell_stop(run_stopped_line(_done.finished, len(SAMPLES), stopped_by(), _done.unscored), log)
            sys.exit(stopped_code())
        if _SLURM_LOGS is not None:
            report_unstarted_jobs(log)
    finally:
        run_ended()


# a multi-modal model's case_0000 image is read with nnU-Net's channel files beside it: each of them counts
_MODALITIES = cohort.package_modalities(_PACKAGE)
_missing = [s for s in SAMPLES if records.unavailable(s.image, _MODALITIES)]
if len(_missing) == len(SAMPLES):
    run_ended()
    sys.exit(
        f"medseg: error: {SHEET}: "
        + (f"none of the {len(SAMPLES)} images is here" if len(SAMPLES) > 1 else "its one image is not here")
        + f" (paths in a sample sheet are relative to "
        f"the sheet's folder; an empty folder, or one some of whose files are not here, counts as missing), e.g. {SAMPLES[0].image}"
        + records.not_fetched(f for s in SAMPLES for f in records.input_files(s.image, _MODALITIES))
    )
if _missing and workflow.is_main_process:
    logger.warning(
        f"{len(_missing)} of {len(SAMPLES)} images not found (or folders empty, or some of whose files are not here); these cases fail (results made "
        "earlier from the same row, model and settings are kept): "
        + ", ".join(s.case_id for s in _missing[:10])
        + (" ..." if len(_missing) > 10 else "")
        + records.not_fetched(f for s in _missing for f in records.input_files(s.image, _MODALITIES))
    )
_away = {s.case_id for s in _missing}  # each image looked at once: a DICOM folder is walked for it
_uncompressed = records.unread_compressions([s for s in SAMPLES if s.case_id not in _away], _MODALITIES)
if _uncompressed and workflow.is_main_process:  # planning counted their voxels as none, without a word
    logger.warning(
        f"{len(_uncompressed)} of {len(SAMPLES)} cases name a file in a compression medseg does not read; these cases fail "
        "as bad input, the others run: " + ", ".join(case for case, _ in _uncompressed[:10])
        + (" ..." if len(_uncompressed) > 10 else "") + f" (e.g. {_uncompressed[0][1]})"
    )
# a row naming case_0001.nii.gz, not its case's case_0000.nii.gz: it failed only as its job read it
_further = records.further_channel_rows([s for s in SAMPLES if s.case_id not in _away], _MODALITIES, SHEET,
                                       len(SAMPLES))
if _further is not None and workflow.is_main_process:
    logger.warning(_further)
# a row naming case_0000.nii.gz of a case of several channels, for a model of one image a case: its others unread
_unread = records.unread_channel_rows([s for s in SAMPLES if s.case_id not in _away], _MODALITIES, _PACKAGE.name,
                                      SHEET, len(SAMPLES))
if _unread is not None and workflow.is_main_process:
    logger.warning(_unread)
_no_reference = [s for s in SAMPLES if s.case_id not in _away and records.unavailable(s.reference)]
if workflow.is_main_process:  # a dataset.json of the references' dataset naming the labels otherwise: scored by value
    _unreferenced = {s.case_id for s in _no_reference}
    records.dataset_names_differ([s for s in SAMPLES if s.case_id not in _away and s.case_id not in _unreferenced],
                                 _PACKAGE)
if _no_reference and workflow.is_main_process:
    logger.warning(
        f"{counted(len(_no_reference), 'reference')} not found; "
        + ("this case will be segmented, and its scoring fails" if len(_no_reference) == 1
           else "these cases will be segmented, and their scoring fails")
        + " (scores made earlier against the same file are kept): " + ", ".join(s.case_id for s in _no_reference[:10])
        + (" ..." if len(_no_reference) > 10 else "")
        + records.not_fetched(s.reference for s in _no_reference)
    )


wildcard_constraints:
    batch="|".join(re.escape(name) for name in BATCHES),


def inputs_signature(wildcards, column):
    """The batch's input files by path, size and modification time, as a short hash: a job parameter, so that
    a file replaced by another with an older time (mv, rsync -a, a restored backup) still reruns the job. For
    the images, each case's DICOM series choice (the sheet's series column) counts too."""
    samples = BATCHES[wildcards.batch]
    modalities = _MODALITIES if column == "image" else 1  # a case_0000's channel files beside it too
    files = [[str(getattr(s, column)), records.path_signature(getattr(s, column), modalities)] for s in samples]
    if column == "image":
        files = [[*entry, s.series] for entry, s in zip(files, samples)]
    return records.fingerprint(files=files)[:16]


# a job record vouches that its batch's cases are finished: medseg.cohort.stale_jobs says when it is void (cases
# gone, made for other work, given up with less memory) and removes it, with the report, so that the batch runs
# again. Snakemake tells a Snakefile neither that it is only previewing (-n, --unlock, --lint, --summary...) nor
# what it will run: the command line says so, and a preview must change nothing
_PREVIEW = cohort.previewing(sys.argv[1:])
# one run at a time per results folder: Snakemake's lock is per working folder, so two runs started from two
# folders on one results folder both went on (cases segmented twice, one run's job logs over the other's). The
# claim (a lock beside the folder, naming the process) is held until this process ends; a preview takes none
# (a preview that changes the folder takes it too: --touch, --delete-all-output, --cleanup-metadata ...)
# (--nolock: the user's call, as for Snakemake's own lock)
_HOLDER = ""  # the process holding the results folder, as its claim file names it: its jobs' mark (below)
if workflow.is_main_process and cohort.claims_results(sys.argv[1:]):
    import atexit

    from medseg.io.folder_claim import claimed, holder_text

    _results_claim = claimed(RESULTS, "cohort run")
    planned(_results_claim.__enter__)
    atexit.register(_results_claim.__exit__, None, None, None)
    _HOLDER = holder_text()
# a results folder a group shares: a folder every job writes into that this user may not write stops the run here, in
# one line (planning removed a job record there with a traceback); another member's files that Snakemake would not
# replace (job records, the report, benchmarks, made under umask 022) become this user's, the same bytes and times
if workflow.is_main_process and not _PREVIEW:
    planned(cohort.check_results_writable, RESULTS)
    _adopted = cohort.adopt_unwritable_files(RESULTS)
    if _adopted:
        logger.warning(f"{RESULTS}: {counted(len(_adopted), 'file')} this user could not write (another user's: "
                       f"{cohort.some_names([str(Path(p).relative_to(RESULTS)) for p in _adopted], 3)}) replaced by "
                       "this user's copies, the same contents and times, so that the jobs can write them")
# job records and report files dated ahead of the folder's clock (machines whose clocks differ, a folder copied with
# its times): Snakemake failed every job reading one ("clock skew"), on every run until that time; set to now
if workflow.is_main_process:
    import time as _time

    _ahead = cohort.future_dated_files(RESULTS, _time.time() if _PREVIEW else None)
    if _ahead:
        if not _PREVIEW:
            cohort.reset_times([_path for _path, _ in _ahead])
        _named = [f"{Path(_path).relative_to(RESULTS)} {_seconds / 3600:.1f} h" for _path, _seconds in _ahead]
        logger.warning(f"{RESULTS}: {counted(len(_ahead), 'file')} dated ahead of the clock ({cohort.some_names(_named, 3)}; "
                       "machines whose clocks differ, or copied with their times from one whose clock is ahead): "
                       + ("they will be set to now when the workflow runs (a preview changes nothing)" if _PREVIEW
                          else "set to now, so that Snakemake does not fail the jobs that read them; the jobs after "
                          "them run again, keeping their cases"))


# Snakemake forced to run finished jobs again (-F, --forcerun infer|evaluate or job records, -f on job records):
# their jobs must make their cases again, not keep them (medseg/cohort/forced_runs.py). They are told through the
# environment, which jobs a cluster starts get with the job (envvars)
_REDO_VARIABLES = {stage: f"MEDSEG_REDO_{stage.upper()}" for stage in ("infer", "evaluate")}
# (after the claim: the forced run's token is kept in the folder); and that they are its jobs: the process holding
# the results folder, as its claim file names it (set above; none with --nolock); a cohort step started by hand is
# refused while a run holds the folder
_RUN_VARIABLE = "MEDSEG_COHORT_RUN"
# and the model's weights as planned: a package replaced mid-run (a training run finishing into its folder) is refused
# by the jobs that find it, instead of making the later cases with another model than the earlier ones
_WEIGHTS_VARIABLE = "MEDSEG_COHORT_WEIGHTS"
# and the run's stop file, written when it is stopped: a job the signal did not reach ends after its current case
_STOP_VARIABLE = "MEDSEG_COHORT_STOP"
_STOP_FILE = snakelock.stop_file(Path(".snakemake"))
if workflow.is_main_process:
    os.environ[_RUN_VARIABLE] = _HOLDER
    os.environ[_STOP_VARIABLE] = str(_STOP_FILE)
    os.environ[_WEIGHTS_VARIABLE] = _PACKAGE.sha256
    _forced = {} if _PREVIEW else cohort.forced_jobs(sys.argv[1:])
    for _stage, _value in cohort.redo_values(RESULTS, _forced).items():
        os.environ[_REDO_VARIABLES[_stage]] = _value
    for _stage, _batches in _forced.items():
        logger.warning(f"forced ({_stage}): "
                       + ("every case is" if _batches is None else f"the cases of {cohort.some_names(_batches)} are")
                       + f" {'segmented' if _stage == 'infer' else 'scored'} again, not kept from earlier runs")
    _stopped = None if cohort.forced_jobs(sys.argv[1:]) else cohort.stopped_forced_run(RESULTS)
    if _stopped:
        logger.warning(_stopped)
else:
    for _variable in (*_REDO_VARIABLES.values(), _RUN_VARIABLE, _WEIGHTS_VARIABLE, _STOP_VARIABLE):
        os.environ.setdefault(_variable, "")


envvars:
    *_REDO_VARIABLES.values(),
    _RUN_VARIABLE,
    _WEIGHTS_VARIABLE,
    _STOP_VARIABLE,


@functools.cache
def _input_grid(path):
    """An input's voxels and voxel size from its header, read once per planning (the batches' and the report's)."""
    return input_grid(path)


# the config key that sets each batch rule's memory; null (the default): planned from the batch's inputs
MEMORY_SETTINGS = {"infer": "mem_mb", "evaluate": "evaluate_mem_mb"}


@functools.cache
def batch_memory(batch, stage):
    """The memory (MB) a job of ``stage`` (infer, evaluate) on ``batch`` asks for on its first attempt: the config's
    mem_mb / evaluate_mem_mb where given, else planned from the largest input of the batch (its header;
    medseg/cohort/job_memory.py). A --set-resources RULE:mem_mb= replaces it (Snakemake's own)."""
    configured = config[MEMORY_SETTINGS[stage]]
    if configured is not None:
        return int(configured)
    samples = BATCHES[batch]
    if stage == "infer":
        return infer_memory_mb([_input_grid(str(s.image)) for s in samples], _PACKAGE, config["device"])
    return evaluate_memory_mb([_input_grid(str(s.image)) for s in samples if s.reference is not None])


if workflow.is_main_process:
    _folder = cohort.ResultsFolder(RESULTS)
    # a case given up with less memory than this run's jobs start with is tried again; Snakemake would keep its
    # finished batch (a larger --set-resources RULE:mem_mb= changes no job parameter)
    _memory = {stage: {batch: first_attempt_memory(stage, batch_memory(batch, stage), _OVERRIDES, _CAPS,
                                                   _THREADS[stage])
                       for batch in BATCHES} for stage in ("infer", "evaluate")}
    _options = cohort.InferOptions(model=str(_PACKAGE.path), device=config["device"], precision=config["precision"],
                                   overlap=config["overlap"])
    # finished jobs whose records are void (cases gone, made for other work, given up with less memory) run again
    _void = planned(cohort.void_stale_jobs, BATCHES, RESULTS, _PACKAGE, _options, _memory, _PREVIEW)
    # a row taken out of the sheet is named in the report (left out) while its folder is there; once the folder is
    # removed as the report advises, nothing else changed for Snakemake: the report is rebuilt here
    _left = _folder.left_since_report(s.case_id for s in SAMPLES)
    if _left:
        if not _PREVIEW:
            planned(cohort.remove_report, RESULTS)
        logger.warning(f"report: {cohort.some_names(_left)} not in the sample sheet, and "
                       f"{'its folder' if len(_left) == 1 else 'their folders'} under cases/ removed: the report will "
                       "be rebuilt"
                       + (" when the workflow runs (a preview changes nothing)" if _PREVIEW else ""))
    for _stage, _voided in _void.items():  # one warning per stage (a new model voids every batch)
        _message = cohort.voided_message(_stage, _voided, None, _PREVIEW)
        if _message is not None:
            logger.warning(_message)
    _message = cohort.unrecorded_message(_void, _PREVIEW)
    if _message is not None:
        logger.warning(_message)
    _message = cohort.new_jobs_message(_void, _PREVIEW)
    if _message is not None:
        logger.warning(_message)


def case_args(wildcards):
    """--case ID for each case of the batch."""
    return " ".join(f"--case {shlex.quote(s.case_id)}" for s in BATCHES[wildcards.batch])


@functools.cache
def report_memory():
    """The report job's memory (MB) on its first attempt, from the sheet's cases, max_overlays and the largest input's
    header (read once, when the report job is planned)."""
    voxels = max((_input_grid(str(s.image)).voxels for s in SAMPLES), default=0)
    return report_memory_mb(SAMPLES, config["max_overlays"], voxels)


@functools.cache
def infer_minutes(batch):
    """The run time (minutes) an inference job of ``batch`` asks for on its first attempt: 10 + the config's
    minutes_per_case a case where given, else planned from its cases' voxels, the model, the tile overlap and bf16 on
    the CPU (medseg/cohort/job_runtime.py). A --set-resources infer:runtime= replaces it (Snakemake's own)."""
    return planned_infer_minutes([_input_grid(str(s.image)) for s in BATCHES[batch]], _PACKAGE,
                                 config["minutes_per_case"], config["overlap"], config["precision"], config["device"])


@functools.cache
def evaluate_minutes(batch):
    """The run time (minutes) a scoring job of ``batch`` asks for on its first attempt, planned from the voxels of its
    cases with a reference (medseg/cohort/job_runtime.py). A --set-resources evaluate:runtime= replaces it
    (Snakemake's own)."""
    return planned_evaluate_minutes([_input_grid(str(s.image)) for s in BATCHES[batch] if s.reference is not None])


if (workflow.is_main_process and config["minutes_per_case"] is not None and runtime_enforced(sys.argv[1:])
        and not runtime_overridden(_OVERRIDES)):
    # an old config's minutes_per_case: 5, the default before the run time was planned from the voxels, asks every
    # job for hours; kept (the user's figure), and said once, naming where it is set. Only where the run time is
    # used: a cluster executor, which hands it to the scheduler (a local run enforces none), and no --set-resources
    # infer:runtime= in its place (the jobs ask for that)
    _old_runtime = old_default_runtime(
        config["minutes_per_case"],
        config_source("minutes_per_case", workflow.config_settings.config, workflow.config_settings.configfiles or [],
                      f"{workflow.basedir}/configs/cohort.yaml", config_profile()),
        [infer_minutes(batch) for batch in BATCHES],
        [planned_infer_minutes([_input_grid(str(s.image)) for s in BATCHES[batch]], _PACKAGE, None,
                               config["overlap"], config["precision"], config["device"]) for batch in BATCHES])
    if _old_runtime is not None:
        logger.warning(_old_runtime)


if workflow.is_main_process and runtime_enforced(sys.argv[1:]):
    # what the sheet's jobs ask a cluster for in all, before a submission (Snakemake's preview lists them one by one)
    # a --set-resources RULE:runtime= counts as the jobs ask for it on each attempt (not scaled by the rule), and the
    # CPUs as sbatch is asked for them (cpus_per_task, cpus_per_gpu for a GPU job, else the threads)
    # every attempt a job may make: the rules' retries, or the profile's (--retries) for the report where more
    _other_retries = profile_retries(sys.argv[1:])
    _attempts = 1 + max(RETRIES, _other_retries)
    _set_minutes = {_rule: set_runtime_minutes(_OVERRIDES, _rule, _THREADS.get(_rule, 1), _attempts)
                    for _rule in ("infer", "evaluate", "report")}

    def _asked(rule, planned_minutes, mem_mb, threads, gpus=0):
        if runtime_overridden(_OVERRIDES, rule):
            attempts = _set_minutes[rule]
            planned_minutes = None if attempts is None else attempts[0]
        else:
            attempts = None
        # a --set-resources RULE:mem_mb= each attempt asks for (a fixed one: the same on each, not scaled by retries)
        memory = set_memory_mb(_OVERRIDES, rule, _CAPS, threads, _attempts)
        if memory is None and mem_mb is not None:  # the rule's own, which retries scale: at most --resources mem_mb
            memory = scaled_memory_mb(mem_mb, _CAPS, _attempts)
        return AskedJob(rule, planned_minutes, mem_mb, job_cpus(_DEFAULT_RESOURCES, _OVERRIDES, rule, threads, gpus),
                        gpus, attempts, memory)

    logger.info(asked_line(
        [_asked("infer", infer_minutes(batch), _memory["infer"][batch], _THREADS["infer"], GPUS) for batch in BATCHES]
        + [_asked("evaluate", evaluate_minutes(batch), _memory["evaluate"][batch], _THREADS["evaluate"])
           for batch in BATCHES]
        + [_asked("report", 60, first_attempt_memory("report", report_memory(), _OVERRIDES, _CAPS), 1)],
        retries=RETRIES, other_retries=_other_retries))


def results_of(job_record):
    """The results folder of a job record RESULTS/jobs/<batch>.<stage>.json."""
    return Path(job_record).parent.parent
