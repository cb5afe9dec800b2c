"""Unit tests of medseg.cohort.planning_stop that need no Snakemake run (the real runs are in
test_workflow_planning_stops.py and test_workflow_job_stops.py)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import signal
import time
from types import SimpleNamespace

import pytest

from medseg.cohort import planning_stop


def _lost_job(seconds: float):
    """A job run as Snakemake's local executor runs one (the whole job inside its thread's asyncio runner), in a pool
    then shut without waiting, as a stop that cut ``submit`` short leaves it; its runner and its end time."""
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    runners, ended = [], []

    def job():
        runner = asyncio.Runner()

        async def run():
            runners.append(runner)  # its loop runs
            time.sleep(seconds)  # the job's shell command, which blocks the thread's running loop
            ended.append(time.monotonic())

        runner.run(run())

    pool.submit(job)
    while not runners:
        time.sleep(0.001)
    pool.shutdown(wait=False)
    workflow = SimpleNamespace(scheduler=SimpleNamespace(_executor=SimpleNamespace(pool=pool), _local_executor=None))
    return workflow, pool, runners[0], ended


@pytest.fixture
def stop_noted(monkeypatch):
    monkeypatch.setattr(planning_stop, "_stopped_by", signal.SIGHUP)


def test_a_job_snakemake_lost_is_waited_for_so_that_its_loop_can_be_closed(stop_noted):
    """A stop that lands as Snakemake submits a local job: the job runs on in a thread Snakemake lost track of.
    Snakemake's teardown closed that thread's running event loop ("RuntimeError: Cannot close a running event loop",
    exit code 1 in place of 129) and the stop's line counted the job's cases before they were written. Waited for
    first, the job has ended and its loop closes."""
    workflow, pool, runner, ended = _lost_job(0.3)
    assert runner.get_loop().is_running()  # as Snakemake's teardown found it
    assert planning_stop.wait_for_lost_jobs(workflow) == 1
    assert len(ended) == 1  # the job ended before the wait returned
    runner.close()  # the teardown's close: no "Cannot close a running event loop"
    pool.shutdown(wait=True)


def test_without_a_stop_or_with_the_pool_still_open_nothing_is_waited_for(monkeypatch):
    monkeypatch.setattr(planning_stop, "_stopped_by", None)
    workflow, pool, runner, ended = _lost_job(0.3)
    started = time.monotonic()
    assert planning_stop.wait_for_lost_jobs(workflow) == 0 and not ended
    assert time.monotonic() - started < 0.2
    pool.shutdown(wait=True)
    runner.close()

    monkeypatch.setattr(planning_stop, "_stopped_by", signal.SIGINT)
    idle = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    idle.submit(lambda: None).result()  # a thread of an open pool, idle: it would never end
    workflow = SimpleNamespace(scheduler=SimpleNamespace(_executor=SimpleNamespace(pool=idle), _local_executor=None))
    assert planning_stop.wait_for_lost_jobs(workflow) == 0
    assert planning_stop.wait_for_lost_jobs(SimpleNamespace(scheduler=None)) == 0  # a run with no scheduler yet
    idle.shutdown(wait=True)


@pytest.fixture
def stop_state(monkeypatch):
    """medseg.cohort.planning_stop as a fresh process has it (no run started, no stop noted, no handlers kept), and
    the process's SIGINT, SIGTERM and SIGHUP handlers, each put back as the test ends: a test that set ``_command``
    (through ``_under_snakemake_command``) or a handler left it set for every later test."""
    from medseg.cohort import planning_stop

    for name, fresh in (("_handler", None), ("_stopped_by", None), ("_command", False), ("_before", {}),
                        ("_executing", False), ("_tracked", False), ("_decided", False), ("_stop_file", None)):
        monkeypatch.setattr(planning_stop, name, fresh)
    monkeypatch.setattr(planning_stop, "_ignored_by_stop", False, raising=False)  # (none before medseg kept it)
    numbers = [signal.SIGINT, signal.SIGTERM, *([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])]
    found = {number: signal.getsignal(number) for number in numbers}
    yield planning_stop
    for number, handler in found.items():
        signal.signal(number, handler)


def test_the_planning_ctrl_c_handler_tells_one_line_and_gives_snakemake_its_own_back(monkeypatch, stop_state):
    """The handler the Snakefile sets while it plans calls its stop with the one line (the Snakefile's tells it and
    exits 130); planning_done puts Python's own KeyboardInterrupt back for Snakemake's handling of a stop while jobs
    run (it stops them), and notes that Ctrl-C for the workflow's onerror."""
    from medseg.cohort import planning_stop
    from medseg.cohort.planning_stop import (
        PLANNING_STOPPED,
        STOPPED_CODE,
        jobs_stopped,
        planning_done,
        planning_stopped_line,
        stop_planning_on_interrupt,
        stopped_code,
    )

    monkeypatch.setattr(planning_stop, "_under_snakemake_command", lambda: True)  # its process ends with the run

    told: list[str] = []

    def stop(line: str):
        told.append(line)
        raise SystemExit(STOPPED_CODE)

    stop_planning_on_interrupt(stop)
    with pytest.raises(SystemExit) as stopped:
        signal.raise_signal(signal.SIGINT)
    assert (stopped.value.code, told) == (130, [PLANNING_STOPPED])
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN  # a second Ctrl-C waits for the way out
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    stop_planning_on_interrupt(stop)  # a SIGTERM (a time limit, scancel) while planning: its own line, and 143
    with pytest.raises(SystemExit):
        signal.raise_signal(signal.SIGTERM)
    assert (told[-1], stopped_code()) == (planning_stopped_line(signal.SIGTERM), 143)
    assert "(SIGTERM: a time limit, scancel or kill); no job was started" in told[-1]
    stop_planning_on_interrupt(stop)
    planning_done()
    assert not jobs_stopped()
    with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGINT)
    assert told[:1] == [PLANNING_STOPPED] and jobs_stopped()  # for the workflow's onerror to tell


@pytest.mark.parametrize("command", [True, False], ids=["snakemake's command line", "a caller of its API"])
def test_a_sigterm_stops_the_jobs_as_a_ctrl_c_does_and_a_second_stop_waits(monkeypatch, stop_state, command):
    """From onstart, SIGTERM (Snakemake's own handler waited for the jobs, then reported a failed run) raises
    Python's KeyboardInterrupt, which Snakemake's job loop takes to stop the jobs, and is noted for onerror (exit code
    143); a second Ctrl-C or SIGTERM while the run stops is held (it cut the clean-up short with a traceback), until
    the run ends: under Snakemake's command line, whose process then ends, to the end; a caller of the API gets its
    handlers back."""
    from medseg.cohort import planning_stop
    from medseg.cohort.planning_stop import (
        planning_done,
        run_ended,
        stop_planning_on_interrupt,
        stopped_by,
        stopped_code,
    )

    monkeypatch.setattr(planning_stop, "_under_snakemake_command", lambda: command)

    def callers(number, frame):
        pass

    signal.signal(signal.SIGINT, callers)
    signal.signal(signal.SIGTERM, callers)
    stop_planning_on_interrupt(lambda line: None)
    planning_done()
    assert signal.getsignal(signal.SIGTERM) is planning_stop._stop_jobs
    with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGTERM)
    assert (stopped_by(), stopped_code()) == (signal.SIGTERM, 143)
    signal.raise_signal(signal.SIGINT)  # held: no KeyboardInterrupt
    signal.raise_signal(signal.SIGTERM)
    assert stopped_by() == signal.SIGTERM
    run_ended()  # onerror
    held = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    assert held == ((planning_stop._held,) * 2 if command else (callers, callers))


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
@pytest.mark.parametrize("command", [True, False], ids=["snakemake's command line", "a caller of its API"])
def test_a_sighup_stops_the_run_as_a_sigterm_does_and_is_left_ignored_under_nohup(monkeypatch, stop_state, command):
    """SIGHUP (an ssh session closed under the run) ended Snakemake at once, while the run was planned or its jobs
    ran. It is handled as SIGTERM is: its own line and exit code 129 while planning; from onstart, Python's
    KeyboardInterrupt, which Snakemake's job loop takes to stop the jobs, noted for onerror; the terminal that may be
    gone is left first (its writes failed with EIO, and the line with them). Under nohup (SIGHUP ignored) the run is
    left to run on, as medseg's commands are."""
    from medseg import stopping
    from medseg.cohort.planning_stop import (
        planning_done,
        planning_stopped_line,
        run_ended,
        stop_planning_on_interrupt,
        stopped_by,
        stopped_code,
    )

    monkeypatch.setattr(stop_state, "_under_snakemake_command", lambda: command)
    left: list[bool] = []
    monkeypatch.setattr(stopping, "leave_hung_up_terminal", lambda: left.append(True))
    told: list[str] = []

    def callers(number, frame):
        told.append("the caller's")

    def stop(line: str):
        told.append(line)
        raise SystemExit(stopped_code())

    signal.signal(signal.SIGHUP, callers)
    stop_planning_on_interrupt(stop)
    with pytest.raises(SystemExit) as stopped:
        signal.raise_signal(signal.SIGHUP)
    assert (stopped.value.code, told, left) == (129, [planning_stopped_line(signal.SIGHUP)], [True])
    assert told[0] == ("medseg: stopped while the cohort run was being planned (SIGHUP: the terminal or ssh session "
                       "closed); no job was started")
    # under the command line a second stop waits for the way out; a caller of the API has its handler back
    assert signal.getsignal(signal.SIGHUP) is (signal.SIG_IGN if command else callers)

    signal.signal(signal.SIGHUP, callers)
    stop_planning_on_interrupt(stop)  # the next run, planned: its jobs run from onstart
    planning_done()
    assert signal.getsignal(signal.SIGHUP) is stop_state._stop_jobs
    with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGHUP)
    assert (stopped_by(), stopped_code(), len(left)) == (signal.SIGHUP, 129, 2)
    signal.raise_signal(signal.SIGHUP)  # held while the run stops: no KeyboardInterrupt
    assert stopped_by() == signal.SIGHUP
    run_ended()  # onerror
    assert signal.getsignal(signal.SIGHUP) is (stop_state._held if command else callers)

    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # nohup
    stop_planning_on_interrupt(stop)
    assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    planning_done()
    assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    with pytest.raises(KeyboardInterrupt):  # a Ctrl-C still stops it
        signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    assert told == [planning_stopped_line(signal.SIGHUP)] and len(left) == 3


@pytest.mark.parametrize("command", [True, False], ids=["snakemake's command line", "a caller of its API"])
def test_an_ignored_ctrl_c_is_left_ignored_while_planning_while_the_jobs_run_and_after(monkeypatch, stop_state,
                                                                                         command):
    """SIGINT ignored as the run starts (a script's background) stays ignored: planning, from onstart, while a SIGTERM
    stops the jobs, and after the run; SIGTERM is still handled."""
    from medseg.cohort.planning_stop import planning_done, run_ended, stop_planning_on_interrupt, stopped_by

    monkeypatch.setattr(stop_state, "_under_snakemake_command", lambda: command)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stop_planning_on_interrupt(lambda line: None)
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    assert signal.getsignal(signal.SIGTERM) is stop_state._handler
    signal.raise_signal(signal.SIGINT)  # nothing happens
    planning_done()
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == (signal.SIG_IGN,
                                                                                 stop_state._stop_jobs)
    signal.raise_signal(signal.SIGINT)
    assert stopped_by() is None
    with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGTERM)
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN and stopped_by() == signal.SIGTERM
    run_ended()
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN


@pytest.mark.parametrize("command", [True, False], ids=["snakemake-command", "api"])
def test_once_the_outcome_is_decided_a_stop_changes_nothing(monkeypatch, stop_state, command):
    """onsuccess and onerror: a Ctrl-C or SIGTERM there (or, under Snakemake's command line, after them, as Snakemake
    releases its lock) raised KeyboardInterrupt, a traceback and exit code 1 after every job had ended; it is held. A
    program running the workflow through Snakemake's API gets its own handlers back as the run ends."""
    from medseg.cohort.planning_stop import outcome_decided, planning_done, run_ended, stop_planning_on_interrupt

    def callers(number, frame):
        raise AssertionError("the caller's handler, while the run ended")

    monkeypatch.setattr(stop_state, "_under_snakemake_command", lambda: command)
    signal.signal(signal.SIGINT, callers)
    signal.signal(signal.SIGTERM, callers)
    stop_planning_on_interrupt(lambda line: None)
    planning_done()
    outcome_decided()
    signal.raise_signal(signal.SIGINT)  # held: no KeyboardInterrupt
    signal.raise_signal(signal.SIGTERM)
    assert stop_state.stopped_by() is None
    run_ended()
    held = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    assert held == ((stop_state._held,) * 2 if command else (callers, callers))
    if command:
        signal.raise_signal(signal.SIGINT)  # as Snakemake releases its lock: still held


def test_a_stops_line_is_added_to_the_runs_snakemake_log(tmp_path):
    """The one line of a stop goes to the run's Snakemake log too: after a hangup no terminal showed it. A log that
    cannot be written is passed over."""
    from medseg.cohort.planning_stop import log_stop

    log = tmp_path / "2026-01-01T000000.000000.snakemake.log"
    log.write_text("Select jobs to execute...\n")
    log_stop("medseg: stopped by SIGHUP", [str(log), tmp_path / "gone" / "x.snakemake.log"])
    assert log.read_text() == "Select jobs to execute...\nmedseg: stopped by SIGHUP\n"
    assert not (tmp_path / "gone").exists()


def test_a_stop_file_stops_a_job_between_its_cases_as_the_signal_it_names(tmp_path):
    """The stop file a stopped run writes (the first stop's signal) is raised between cases, as that signal's stop; a
    check within a case does not read it, and nothing is raised once the watch is cleared."""
    from medseg import stopping
    from medseg.cli import _Terminated, stop_for

    marker = tmp_path / "runs" / "host-1.stop"
    stopping.watch(marker, stop_for)
    try:
        stopping.check(between=True)  # none yet
        stopping.mark(marker, signal.SIGTERM)
        assert stopping.marked(marker) == signal.SIGTERM
        stopping.check()  # within a case: read between cases only
        with pytest.raises(_Terminated) as stop:
            stopping.check(between=True)
        assert (stop.value.code, stop.value.said) == (143, "Terminated.")
        marker.write_text("")  # caught as it was written: a stop all the same
        assert stopping.marked(marker) == signal.SIGTERM
        stopping.mark(marker, signal.SIGINT)
        with pytest.raises(KeyboardInterrupt) as stop:
            stopping.check(between=True)
        assert not isinstance(stop.value, _Terminated)
    finally:
        stopping.clear()
    stopping.check(between=True)  # no watch: nothing raised
    stopping.unmark(marker)
    assert stopping.marked(marker) is None and not marker.exists()


def test_outside_the_snakefile_and_the_run_a_stop_is_the_callers_own(monkeypatch, stop_state):
    """Outside Snakemake's command line, the planning handler stops the run only while the Snakefile is read or the
    run is executed (workflow.execute); a Ctrl-C or SIGTERM that reaches it elsewhere (the program only unlocked or
    listed the rules, or the API refused the run) gives the program its handlers back and goes to its own. It was
    told as a stop while planning, with SystemExit, wherever the program was."""
    from types import SimpleNamespace

    import snakemake.api  # noqa: F401  (and its Workflow, whose include tells a Snakefile being read)

    from medseg.cohort import planning_stop
    from medseg.cohort.planning_stop import end_with_execution, planning_stopped_line, stop_planning_on_interrupt

    monkeypatch.setattr(planning_stop, "_under_snakemake_command", lambda: False)
    told: list[object] = []

    def callers(number, frame):
        told.append(int(number))

    def stop(line: str):
        told.append(line)
        raise SystemExit(130)

    def execute(*args, **kwargs):  # planning the run's jobs, stopped
        signal.raise_signal(signal.SIGTERM)

    signal.signal(signal.SIGINT, callers)
    signal.signal(signal.SIGTERM, callers)
    stop_planning_on_interrupt(stop)
    end_with_execution(SimpleNamespace(execute=execute))
    signal.raise_signal(signal.SIGINT)  # the Snakefile read, no run: the caller's
    assert told == [int(signal.SIGINT)]
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == (callers, callers)
    signal.raise_signal(signal.SIGTERM)
    assert told == [int(signal.SIGINT), int(signal.SIGTERM)]
    stop_planning_on_interrupt(stop)  # the next read, then its run, stopped while it is planned
    workflow = SimpleNamespace(execute=execute)
    end_with_execution(workflow)
    with pytest.raises(SystemExit):
        workflow.execute()
    assert told[2:] == [planning_stopped_line(signal.SIGTERM)]
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == (callers, callers)


def test_a_caller_of_snakemakes_api_gets_its_own_ctrl_c_handler_back_when_the_run_ends(stop_state):
    """The handler the Snakefile sets at onstart (``_stop_jobs``) stayed for the rest of a process that ran the workflow
    through Snakemake's API, and a Ctrl-C while planning left SIGINT ignored there: the workflow's onsuccess and
    onerror (``run_ended``), and a stop while planning outside Snakemake's command line, put the caller's back."""
    from medseg.cohort import planning_stop
    from medseg.cohort.planning_stop import PLANNING_STOPPED, planning_done, run_ended, stop_planning_on_interrupt

    told: list[str] = []

    def callers(number, frame):
        told.append("the caller's")

    def stop(line: str):
        told.append(line)
        raise SystemExit(130)

    signal.signal(signal.SIGINT, callers)
    stop_planning_on_interrupt(stop)
    planning_done()
    assert signal.getsignal(signal.SIGINT) is planning_stop._stop_jobs
    run_ended()  # onsuccess or onerror
    assert signal.getsignal(signal.SIGINT) is callers
    run_ended()  # once only: a handler set since is the caller's
    stop_planning_on_interrupt(stop)  # the next run, stopped while it is planned
    with pytest.raises(SystemExit):
        signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is callers  # not ignored
    signal.raise_signal(signal.SIGINT)
    assert told == [PLANNING_STOPPED, "the caller's"]
    stop_planning_on_interrupt(stop)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # one the caller set during the run is kept
    run_ended()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_the_ctrl_c_line_does_not_say_that_the_jobs_were_stopped():
    """The line said "the running jobs were stopped" also where they were not: a SIGINT to Snakemake alone lets the
    local jobs run to their end, and a SLURM cancel can miss a job."""
    from medseg.cohort.planning_stop import run_stopped_line

    assert run_stopped_line(1, 3) == (
        "medseg: stopped by Ctrl-C while the cohort's jobs ran: the report was not written, nor the unfinished cases "
        "of the jobs stopped; 1 of 3 cases finished (kept); run the same command again to go on")
    assert "1 of 1 case finished (kept)" in run_stopped_line(1, 1)
    assert run_stopped_line(0, 2, signal.SIGTERM).startswith(
        "medseg: stopped by SIGTERM (a time limit, scancel or kill) while the cohort's jobs ran: the report was not "
        "written")


def test_the_stop_line_counts_the_cases_segmented_but_not_scored_apart():
    """Cases whose segmentation the stopped run made but whose scores it did not are neither finished nor lost: a
    run stopped with 34 of them (kept, and only scored by the next run) said "2 of 201 cases finished"."""
    from medseg.cohort.planning_stop import run_stopped_line

    assert run_stopped_line(2, 201, unscored=34) == (
        "medseg: stopped by Ctrl-C while the cohort's jobs ran: the report was not written, nor the unfinished cases "
        "of the jobs stopped; 2 of 201 cases finished (kept), 34 more segmented but not scored yet (kept); run the "
        "same command again to go on")
    assert run_stopped_line(2, 201, unscored=0) == run_stopped_line(2, 201)


def test_a_ctrl_c_of_an_earlier_run_in_the_process_is_not_told_of_the_next(stop_state):
    """The Ctrl-C noted for the workflow's onerror stayed noted: a process that ran the workflow again (Snakemake's
    Python API, after a run a Ctrl-C stopped) told a job that failed in the next run as a Ctrl-C, exit 130."""
    from medseg.cohort.planning_stop import jobs_stopped, planning_done, stop_planning_on_interrupt

    stop_planning_on_interrupt(lambda line: None)
    planning_done()
    with pytest.raises(KeyboardInterrupt):  # the first run's jobs stopped by a Ctrl-C
        signal.raise_signal(signal.SIGINT)
    assert jobs_stopped()
    stop_planning_on_interrupt(lambda line: None)  # the next run, planned in the same process
    planning_done()
    assert not jobs_stopped()
