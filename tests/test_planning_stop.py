"""Unit tests of medseg.cohort.planning_stop that need no Snakemake run (the real runs are in test_workflow)."""

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
