"""A Ctrl-C, SIGTERM or SIGHUP while Snakemake plans a cohort run, or runs its jobs: one line and exit code 130 (143
for SIGTERM, 129 for SIGHUP), not a traceback, a failed run, nor a lock left behind.

Snakemake catches ``Exception`` around the parsing of the Snakefile and the building of its jobs, not the
``KeyboardInterrupt`` a Ctrl-C raises, so that a stop in that first second or so ended in a Python traceback of
whatever was being imported (pandas, medseg, Snakemake's own modules), 30-90 lines; a SIGTERM ended the process at
once, leaving Snakemake's lock where it had taken it (as it builds the jobs). Once the run starts its jobs,
Snakemake's own handling of a Ctrl-C takes over again (it stops the jobs and releases its lock): at ``onstart``
(:func:`planning_done`; the workflow refuses ``--no-hooks``, which skips it). A SIGTERM (a SLURM time limit or
``scancel``, ``kill``) is handled there as a Ctrl-C is: Snakemake's own SIGTERM handler waited for the running jobs
to end, tried a stopped job again, and reported a failed run. That stop is noted (:func:`stopped_by`): Snakemake
reports the stopped run as a failed one (exit code 1, "At least one job did not complete successfully"), and the
workflow's ``onerror`` tells it in one line (:func:`run_stopped_line`) and exits with 128 + the signal's number
(:func:`stopped_code`: 130, 143), as a script expects of an interrupt. A second Ctrl-C or SIGTERM while the run stops
waits for the way out: it cut Snakemake's clean-up (its wait for the jobs, its lock release) short with tracebacks.
SIGHUP (the ssh session or terminal of a run started without tmux or nohup closed) ended Snakemake at once, leaving its
lock, the run's record and the claim on the results folder; it is handled as SIGTERM is, and left ignored under nohup
(as a Ctrl-C is left ignored in a run that a script started in its background).
The terminal it came from may be gone, so standard output and error that are that terminal go to /dev/null from then
on (a write failing with EIO ended the run in a traceback and exit code 1), and each stop's line is also added to the
run's Snakemake log (:func:`log_stop`).

The handlers found before the run are put back as the run ends (:func:`run_ended`, in ``onsuccess`` and ``onerror``,
and as Snakemake's ``workflow.execute`` returns or raises, :func:`end_with_execution`, for a run that reaches no hook:
nothing to do, a dry run, an error; a planning error and a stop while planning put them back at once), except under
Snakemake's command line, whose process ends with the run, once a stop came: a Python program that ran the workflow
through Snakemake's API kept medseg's handler, or after a Ctrl-C while planning had SIGINT ignored, for the rest of
its life (and Snakemake's SIGTERM handler of the finished run, which swallowed its next SIGTERM). Such a program that
reads the Snakefile and runs nothing (it unlocks, lists the rules, makes a report, or the API refuses the run) gets its
handlers back with the first Ctrl-C, SIGTERM or SIGHUP, which goes to its own (:func:`_pass_on`).
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import NoReturn

from medseg import stopping

__all__ = ["PLANNING_STOPPED", "STOPPED_CODE", "end_with_execution", "ends_with_the_process", "jobs_stopped",
           "log_stop", "outcome_decided", "planning_done", "planning_stopped_line", "run_ended", "run_stopped_line",
           "stop_if_snakemake_took_sigterm", "stop_planning_on_interrupt", "stopped_by", "stopped_code",
           "wait_for_lost_jobs"]

PLANNING_STOPPED = "medseg: stopped while the cohort run was being planned (Ctrl-C); no job was started"
STOPPED_CODE = 130  # as a shell reports a command ended by SIGINT, and as medseg's commands exit on a Ctrl-C
# each stop handled, as its lines name it, and what sends it (a Ctrl-C needs no such words)
_NAMES = {signal.SIGINT: ("Ctrl-C", None), signal.SIGTERM: ("SIGTERM", "a time limit, scancel or kill")}
_HANGUP = getattr(signal, "SIGHUP", None)  # none on Windows
if _HANGUP is not None:
    _NAMES[_HANGUP] = ("SIGHUP", "the terminal or ssh session closed")
_SIGNALS = tuple(_NAMES)  # the stops handled, while the run is planned and once its jobs run

_START_S = 5.0  # how long a job's thread whose start a stop cut short is given to start (wait_for_lost_jobs)
_handler: Callable | None = None
_stopped_by: int | None = None  # the signal (Ctrl-C, SIGTERM, SIGHUP) that stopped the run, planned or running its jobs
_command = False  # Snakemake's command line runs the workflow: its process ends with the run
_before: dict[int, object] = {}  # the handlers found as the run started, put back as it ends
_executing = False  # inside Snakemake's workflow.execute (end_with_execution): the run is planned there until onstart
_tracked = False  # end_with_execution wraps workflow.execute of the run read last, so that _executing tells
_ignored_by_stop = False  # a stop under Snakemake's command line ignored the stops for its way out: not the caller's
_decided = False  # the run's outcome is decided (onsuccess, onerror): a stop changes nothing (outcome_decided)
_stop_file: str | None = None  # written by the stop once the jobs run, for the jobs it may miss (planning_done)


def stop_planning_on_interrupt(stop: Callable[[str], NoReturn]) -> None:
    """Until :func:`planning_done`, a Ctrl-C (SIGINT), SIGTERM or SIGHUP (a Ctrl-C or SIGHUP unless ignored: a run
    in a script's background, ``nohup``; :func:`_left_ignored`) calls ``stop``
    with its line (:func:`planning_stopped_line`; :data:`PLANNING_STOPPED` for a Ctrl-C): the workflow's
    (``workflow/rules/common.smk``) tells it and exits with :func:`stopped_code` (:data:`STOPPED_CODE`, 143, 129), which
    Snakemake lets through after releasing what it holds (its lock). Snakemake sets its own SIGTERM handler as it makes
    the jobs' scheduler, just before ``onstart``: a SIGTERM from there is its own until then. Only in the main
    thread, where Python takes signals.

    Each run starts here, with no stop noted (:func:`stopped_by`): a process that runs the workflow again (through
    Snakemake's Python API, after a run a Ctrl-C stopped) would otherwise tell a job that failed as a Ctrl-C. The
    handlers found are kept for :func:`run_ended`, unless they are this module's own, left by a run that ended
    without putting them back (then those found before that run are kept)."""
    global _before, _command, _decided, _handler, _ignored_by_stop, _stopped_by, _tracked
    _stopped_by, _tracked = None, False
    _decided = False
    if threading.current_thread() is not threading.main_thread():
        return
    found = {number: signal.getsignal(number) for number in _SIGNALS}
    # ignored by an earlier run's stop in this process, not by whoever started it: handled, and not kept as theirs
    leftover, _ignored_by_stop = _ignored_by_stop, False
    if not _before or not (leftover or any(_ours(handler) for handler in found.values())):
        _before = found
    command = _command = _under_snakemake_command()

    def handler(number, frame) -> None:
        global _ignored_by_stop, _stopped_by
        if not command and _tracked and not (_executing or _reading(frame)):
            _pass_on(number, frame)
            return
        _stopped_by = number
        _hung_up(number)
        if command:  # a second Ctrl-C, SIGTERM or SIGHUP does not cut the line or the way out short; the process ends
            # with it
            for ignored in _SIGNALS:
                signal.signal(ignored, signal.SIG_IGN)
            _ignored_by_stop = True
        else:  # a caller's process goes on: its own handlers back (run_ended is not reached)
            run_ended()
        stop(planning_stopped_line(number))

    _handler = handler
    started_with = _before if leftover else found
    for number in _SIGNALS:
        if not _left_ignored(number, started_with.get(number)):
            signal.signal(number, handler)


def _left_ignored(number: int, handler: object) -> bool:
    """Whether the stop ``number`` is left to ``handler``, found as the run starts: SIGHUP where it is ignored (the
    run started under ``nohup``), which then runs on when its terminal closes, and SIGINT where it is ignored (a run
    started in the background of a script, ``snakemake … &`` in a shell that is not interactive, which a Ctrl-C to
    the script's terminal then does not stop), as medseg's own commands leave them. SIGTERM is handled all the same
    (a time limit, ``scancel``, ``kill``)."""
    return number in (signal.SIGINT, _HANGUP) and handler == signal.SIG_IGN


def _hung_up(number: int) -> None:
    """After a SIGHUP the terminal may be gone: output to it then goes to /dev/null rather than fail
    (:func:`medseg.stopping.leave_hung_up_terminal`); the run's Snakemake log keeps the stop's line
    (:func:`log_stop`)."""
    if number == _HANGUP:
        stopping.leave_hung_up_terminal()


def _reading(frame) -> bool:
    """Whether Snakemake is reading the Snakefile (``Workflow.include``) at ``frame``: True where that cannot be
    told (a Snakemake that names it otherwise), as every stop before :func:`planning_done` was one while planning."""
    workflow = getattr(sys.modules.get("snakemake.workflow"), "Workflow", None)
    code = getattr(getattr(workflow, "include", None), "__code__", None)
    return code is None or _called_from(code, frame)


def _pass_on(number: int, frame) -> None:
    """A Ctrl-C, SIGTERM or SIGHUP to a program that read the workflow through Snakemake's API and is not running it (it
    only unlocked, listed the rules or made a report, or the API raised an error before the run): no run is being
    planned, so the program's own handlers come back and this signal goes to its own (the default SIGTERM ends the
    process). It told "stopped while the cohort run was being planned" and raised SystemExit, wherever the program
    was."""
    before = _before.get(number)
    run_ended()
    if callable(before):
        before(number, frame)
    elif before == signal.SIG_DFL:
        signal.raise_signal(number)


def planning_done(stop_file: str | os.PathLike | None = None, workflow=None) -> None:
    """Python's own Ctrl-C (``KeyboardInterrupt``) back, for Snakemake to stop the run's jobs with, where
    :func:`stop_planning_on_interrupt` set it aside, and SIGTERM made one too, in place of Snakemake's own SIGTERM
    handler (which waited for the running jobs to end, and reported a failed run), and SIGHUP where it is not ignored
    (it ended Snakemake at once); the stop is noted for :func:`stopped_by`, and written to ``stop_file``
    (:func:`medseg.stopping.mark`), which the run's jobs watch: a local job the signal did not reach (one Snakemake
    started just as the stop landed, or any while the signal went to Snakemake alone) ran its whole batch to the end
    while the stopped run waited for it; it ends after its current case.

    A SIGTERM that Snakemake's own handler took (``workflow``'s scheduler notes it), between making the jobs' scheduler
    and here, stops the run as one a moment earlier does (the planning line, exit code 143): it started no job and
    ended as a failed run (exit code 1)."""
    global _handler, _stop_file
    _stop_file = None if stop_file is None else os.fspath(stop_file)
    if _handler is None or threading.current_thread() is not threading.main_thread():
        return
    stop_if_snakemake_took_sigterm(workflow)
    for number in _SIGNALS:  # SIGTERM in place of Snakemake's own; the others where planning's handler is still set
        if number == signal.SIGTERM or signal.getsignal(number) is _handler:
            signal.signal(number, _stop_jobs)
    _handler = None


def stop_if_snakemake_took_sigterm(workflow) -> None:
    """Where Snakemake's own SIGTERM handler took a SIGTERM since it made ``workflow``'s job scheduler (see
    :func:`planning_done`), stop the run as the planning handler does (its line, SystemExit(143)); nothing otherwise,
    or once :func:`planning_done` has given the stops to the jobs."""
    if _handler is not None and threading.current_thread() is threading.main_thread() \
            and _terminated_in_snakemakes_hands(workflow):
        _handler(signal.SIGTERM, sys._getframe())


def outcome_decided() -> None:
    """From here on (the workflow's ``onsuccess`` and ``onerror``: every job has ended) a Ctrl-C, SIGTERM or SIGHUP
    changes nothing: it waits for the way out (:func:`_held`), and under Snakemake's command line, whose process ends
    with the run, it stays so after :func:`run_ended` (a program running the workflow through Snakemake's API gets its
    own handlers back there). One that came as the hook forgot the run's record or as Snakemake released its lock ended
    in a KeyboardInterrupt traceback (exit code 1) where every job had succeeded. Only in the main thread."""
    global _decided
    if threading.current_thread() is not threading.main_thread():
        return
    _decided = True
    for number in _SIGNALS:
        current = signal.getsignal(number)
        if current is not signal.SIG_IGN and (_ours(current) or _snakemakes(current)):
            signal.signal(number, _held)


def _terminated_in_snakemakes_hands(workflow) -> bool:
    """Whether Snakemake's SIGTERM handler, which its job scheduler sets as it is made, took a SIGTERM (the scheduler
    then starts no job and reports a failed run); False with a Snakemake that names these otherwise."""
    scheduler = getattr(workflow, "scheduler", None)
    return (getattr(scheduler, "_user_kill", None) == "graceful"
            and _snakemakes(getattr(scheduler, "exit_gracefully", None)))


def _stop_jobs(number, frame) -> None:
    """Python's own Ctrl-C (``KeyboardInterrupt``, which Snakemake's job loop takes to stop the jobs), noted; a second
    Ctrl-C, SIGTERM or SIGHUP waits for the way out (:func:`_held`)."""
    global _stopped_by
    if _stopped_by is None:
        _stopped_by = number
        if _stop_file is not None:
            stopping.mark(_stop_file, number)
    _hung_up(number)
    for held in _SIGNALS:
        if signal.getsignal(held) is not signal.SIG_IGN:  # a SIGHUP under nohup stays ignored
            signal.signal(held, _held)
    signal.default_int_handler(number, frame)


def _held(number, frame) -> None:
    """A Ctrl-C, SIGTERM or SIGHUP after the one that stopped the run: Snakemake is waiting for its jobs and releasing
    its lock, and the workflow tells the stop; interrupted, each ended in chained tracebacks. A SIGHUP still leaves a
    terminal that is gone (:func:`_hung_up`)."""
    _hung_up(number)


def _ours(handler: object) -> bool:
    return handler is _stop_jobs or handler is _held or (_handler is not None and handler is _handler)


def _snakemakes(handler: object) -> bool:
    """Whether ``handler`` is a method of one of Snakemake's objects: its job scheduler's SIGTERM handler, which it
    sets as it plans the jobs and never takes back."""
    owner = getattr(handler, "__self__", None)
    return owner is not None and type(owner).__module__.partition(".")[0] == "snakemake"


def run_ended() -> None:
    """The SIGINT, SIGTERM and SIGHUP handlers found when :func:`stop_planning_on_interrupt` started the run back (the
    workflow's ``onsuccess`` and ``onerror``, :func:`end_with_execution`), where the run's own are still set
    (``_stop_jobs``, ``_held``, the planning handler, Snakemake's SIGTERM handler); only in the main thread. Under
    Snakemake's command line, once a stop came, a second one still waits for the way out: that process ends with the
    run (a Ctrl-C as Snakemake releases its lock ended in a traceback)."""
    global _before, _handler
    if not _before or threading.current_thread() is not threading.main_thread():
        return
    if _command and (_stopped_by is not None or _decided):
        return
    for number, before in _before.items():
        current = signal.getsignal(number)
        if before is not None and (_ours(current) or _snakemakes(current) or current is signal.SIG_IGN):
            signal.signal(number, before)
    _before, _handler = {}, None


def end_with_execution(workflow, check: Callable[..., None] | None = None,
                       stopped: Callable[[int], NoReturn] | None = None) -> None:
    """Snakemake's ``workflow.execute`` (of this workflow object only) ends with :func:`run_ended`, returning or
    raising: a run that reaches no hook (nothing to do, a dry run, a lock or job error) put nothing back, and a program
    running the workflow through Snakemake's API kept the planning handler, and Snakemake's SIGTERM handler. Without
    ``execute`` (a Snakemake that names it otherwise) nothing changes: the hooks still put the handlers back.

    ``check`` is called first, with the arguments of ``execute``, once Snakemake has set the run's settings on
    ``workflow`` (``execution_settings``): its Python API sets them only then, after the Snakefile is read.
    ``stopped`` (the workflow's ``sys.exit``) is called with :func:`stopped_code` where a stop Snakemake's job loop
    took in ended the run of a program running it through the API, so that the program is told of the stop.

    Outside Snakemake's command line, a Ctrl-C, SIGTERM or SIGHUP before :func:`planning_done` stops the run only
    while the Snakefile is read or the run is executed; elsewhere it is the program's own (:func:`_pass_on`)."""
    global _tracked
    execute = getattr(workflow, "execute", None)
    if execute is None:
        return
    _tracked = True
    if getattr(execute, "_ends_the_run", False):
        return

    @functools.wraps(execute)
    def execute_then_end(*args, **kwargs):
        global _executing
        _executing = True
        try:
            if check is not None:
                check(*args, **kwargs)
            done = execute(*args, **kwargs)
        except Exception:
            if _stopped_by is None or _command:
                raise
            done = None  # the stop, reported by Snakemake as a failed run
        finally:
            _executing = False
            run_ended()
        if _stopped_by is not None and not _command and stopped is not None:
            # a stop Snakemake's job loop took in (while a dry run listed its jobs): the caller is told by SystemExit,
            # as of a stop anywhere else while the run was planned
            stopped(stopped_code())
        return done

    execute_then_end._ends_the_run = True
    workflow.execute = execute_then_end


def wait_for_lost_jobs(workflow) -> int:
    """After a stop (:func:`stopped_by`), wait for the local jobs Snakemake lost track of; return how many threads
    were waited for.

    A stop that lands as Snakemake starts a local job, while its thread pool starts the job's thread, breaks off
    ``submit`` after the job was queued: the job, started after the signal (which it never received), runs to its end
    in a thread Snakemake does not know of and does not wait for. The run's line counted its cases as unfinished
    while they were still being made, and Snakemake's teardown, closing that thread's event loop while it still ran,
    ended in ``RuntimeError: Cannot close a running event loop`` and exit code 1 instead of 130 (143, 129); the
    process, whose exit waits for the thread, ended only with the job anyway. Once the stop has shut the pool of
    Snakemake's local executor (``scheduler._executor.pool``, shut as the stop is taken in) each of its threads still
    alive is such a job (an idle one ends as the pool shuts): it is waited for here, so that the line counts the cases
    as they really ended and the teardown finds no loop running. Nothing is done without a stop, with a pool not shut,
    or with a Snakemake that names these otherwise."""
    if _stopped_by is None:
        return 0
    scheduler = getattr(workflow, "scheduler", None)
    prefixes = set()
    for name in ("_executor", "_local_executor"):
        pool = getattr(getattr(scheduler, name, None), "pool", None)
        prefix = getattr(pool, "_thread_name_prefix", None)
        if getattr(pool, "_shutdown", False) is True and isinstance(prefix, str) and prefix:
            prefixes.add(prefix + "_")
    lost = [thread for thread in threading.enumerate() if thread is not threading.current_thread()
            and not thread.daemon and any(thread.name.startswith(prefix) for prefix in prefixes)]
    started_by = time.monotonic() + _START_S
    for thread in lost:
        while True:
            try:
                thread.join()
                break
            except RuntimeError:  # not started yet: the stop cut its start short, and it starts in a moment
                if time.monotonic() > started_by:
                    break
                time.sleep(0.01)
    return len(lost)


def _under_snakemake_command() -> bool:
    """Whether Snakemake's command line (``snakemake.cli.main``) runs the workflow: its process ends with the run."""
    main = getattr(sys.modules.get("snakemake.cli"), "main", None)
    code = getattr(main, "__code__", None)
    return code is not None and _called_from(code, sys._getframe(1))


def _called_from(code, frame) -> bool:
    """Whether ``frame`` or one of its callers runs ``code``."""
    while frame is not None:
        if frame.f_code is code:
            return True
        frame = frame.f_back
    return False


def ends_with_the_process() -> bool:
    """Whether Snakemake's command line runs the workflow read last: its process ends with the run (a program running
    it through Snakemake's Python API goes on)."""
    return _command


def stopped_by() -> int | None:
    """The signal (``signal.SIGINT``, ``signal.SIGTERM``, ``signal.SIGHUP``) that stopped the run, while it was planned
    or once its jobs were Snakemake's to stop (after :func:`planning_done`); None when none did."""
    return _stopped_by


def jobs_stopped() -> bool:
    """Whether a Ctrl-C, SIGTERM or SIGHUP stopped the run (:func:`stopped_by`)."""
    return _stopped_by is not None


def planning_stopped_line(signum: int = signal.SIGINT) -> str:
    """The one line of a run a Ctrl-C (``signum``; or a SIGTERM, SIGHUP) stopped while it was planned:
    :data:`PLANNING_STOPPED` for a Ctrl-C."""
    name = _named(signum, "{name}: {cause}")
    return f"medseg: stopped while the cohort run was being planned ({name}); no job was started"


def stopped_code() -> int:
    """The exit code of a run :func:`stopped_by` a signal: 128 + its number (130 for Ctrl-C, 143 for SIGTERM, 129
    for SIGHUP), as a shell reports a command that signal ended."""
    return 128 + int(_stopped_by if _stopped_by is not None else signal.SIGINT)


def run_stopped_line(finished: int, total: int, signum: int = signal.SIGINT, unscored: int = 0) -> str:
    """The one line of a run a Ctrl-C (``signum``; or a SIGTERM, SIGHUP) stopped while its jobs ran: what is kept
    (``finished`` of the ``total`` cases done for this run's work, and ``unscored`` more segmented but not scored:
    :func:`~medseg.cohort.fingerprints.finished_cases`), what is not, and how to go on. It does not say
    that the jobs were stopped: a signal to Snakemake alone lets the local jobs run to their end, and a cluster's cancel
    can miss a job (docs/cohorts-slurm.md, *Resources and profiles*)."""
    kept = f"{finished} of {total} case{'' if total == 1 else 's'} finished (kept)"
    if unscored:
        kept += f", {unscored} more segmented but not scored yet (kept)"
    return (f"medseg: stopped by {_named(signum, '{name} ({cause})')} while the cohort's jobs ran: the report "
            f"was not written, nor the unfinished cases of the jobs stopped; {kept}; run the same command again to go "
            "on")


def log_stop(line: str, logfiles: Iterable[str | os.PathLike]) -> None:
    """Add a stop's one line to the run's Snakemake log files (``.snakemake/log/<time>.snakemake.log``: Snakemake's
    ``get_logfile()``, a hook's ``log``), where it is read after a hangup: the terminal that would have shown it was
    gone. A log that cannot be written is passed over (the exit code still tells the stop)."""
    for path in logfiles:
        with contextlib.suppress(OSError), open(path, "a", encoding="utf-8") as log:
            log.write(line + "\n")


def _named(signum: int, form: str) -> str:
    """The signal ``signum`` as a stop's line names it: its name, with what sends it in ``form`` (``{name}`` and
    ``{cause}``) where that is said; ``signal N`` for one not handled here."""
    name, cause = _NAMES.get(signum, (f"signal {int(signum)}", None))
    return name if cause is None else form.format(name=name, cause=cause)
