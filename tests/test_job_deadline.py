"""A cohort job's last attempt stops before its SLURM time limit and records its unfinished cases as failed
(medseg.cohort.job_deadline), so that its batch gets a job record and the report is made."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest
from cohort_cases import (
    MODEL,
    SMALL_IMAGES_SEGMENTED,
    cohort_folder,  # noqa: F401  (the cohort fixture its tests take)
)

from medseg.cohort import InferOptions, evaluate_cases, infer_cases, read_samples
from medseg.cohort.job_deadline import OutOfTime, job_deadline, stop_at
from medseg.cohort.records import ResultsFolder

pytestmark = SMALL_IMAGES_SEGMENTED


def test_only_a_last_attempt_under_slurm_stops_before_its_limit():
    """SLURM's own end of the job where it tells it, less 30 s or a twentieth of the limit; else the job's run time
    from the command's start, less a tenth for the job's start before it. Elsewhere (a local run, which enforces no
    run time) and before the last attempt (SLURM's limit brings a retry with more time), no deadline."""
    slurm = {"SLURM_JOB_ID": "42", "SLURM_JOB_END_TIME": "10000"}
    assert job_deadline(18, True, started=1000.0, environ=slurm) == 10000 - (10000 - 1000) / 20
    assert job_deadline(18, True, started=9900.0, environ=slurm) == 10000 - 30
    assert job_deadline(18, False, started=1000.0, environ=slurm) is None
    assert job_deadline(18, True, started=1000.0, environ={"SLURM_JOB_END_TIME": "10000"}) is None
    # without SLURM's end time: 18 min less a tenth (972 s), less a twentieth of that (48.6 s, more than 30 s)
    assert job_deadline(18, True, started=1000.0, environ={"SLURM_JOB_ID": "42"}) == pytest.approx(1000 + 972 - 48.6)
    assert job_deadline(5, True, started=1000.0, environ={"SLURM_JOB_ID": "42"}) == pytest.approx(1000 + 270 - 30)
    assert job_deadline(None, True, started=1000.0, environ={"SLURM_JOB_ID": "42"}) is None
    assert job_deadline(0, True, started=1000.0, environ={"SLURM_JOB_ID": "42", "SLURM_JOB_END_TIME": "x"}) is None


def test_the_stop_comes_where_the_job_is():
    with pytest.raises(OutOfTime), stop_at(time.time() - 1):
        pass
    clock = time.perf_counter()
    with pytest.raises(OutOfTime), stop_at(time.time() + 0.2):
        time.sleep(5)
    assert time.perf_counter() - clock < 2
    with stop_at(None), stop_at(time.time() + 60):
        pass
    time.sleep(0.1)  # the timer was taken back: nothing is raised after the block


def test_cases_a_job_did_not_finish_by_its_deadline_are_recorded_and_tried_again(cohort, monkeypatch):
    """The case under way is stopped (its attempt taken back: a time limit is not the case's crash), it and the
    cases not reached are recorded as failed (JobTimeLimitError), a finished case is kept; scoring skips the failed
    case's scores, and a later job makes it."""
    import medseg.segment

    sheet, results = cohort
    samples = {s.case_id: s for s in read_samples(sheet)}
    options = InferOptions(model=MODEL, device="cpu", batch_size=8)
    assert [c.outcome for c in infer_cases([samples["a"]], results, options).cases] == ["ok"]
    segment_case = medseg.segment.segment_case

    def slow(*args, **kwargs):
        time.sleep(30)

    monkeypatch.setattr(medseg.segment, "segment_case", slow)
    clock = time.perf_counter()
    summary = infer_cases([samples["a"], samples["b"], samples["c"]], results,
                          replace(options, deadline=time.time() + 1.0))
    assert time.perf_counter() - clock < 10
    assert [(c.case_id, c.outcome, c.reused, c.stage) for c in summary.cases] == [
        ("a", "ok", True, None), ("b", "failed", False, "infer"), ("c", "failed", False, "infer")]
    folder = ResultsFolder(results)
    for case in ("b", "c"):
        failure = json.loads(folder.failure(case).read_text())
        assert failure["error_type"] == "JobTimeLimitError"
        # what is known: the last attempt ran out (the earlier ones may have ended for memory; a command run by hand
        # had none): not 'every attempt of its workflow job ran out of its time limit'
        assert failure["error"].startswith(f"{samples[case].image}: the job never finished this case: the job's last "
                                           "attempt ran out of time and stopped itself before SLURM ended it; a later "
                                           "run tries it again")
        assert "--set-resources infer:runtime=MINUTES*attempt" in failure["error"]
        assert json.loads(folder.status_path(case, "infer").read_text())["out_of_time"] is True
        assert not folder.started_path(case, "infer").exists()
    scored = evaluate_cases([samples["a"], samples["b"]], results)
    assert [(c.case_id, c.outcome) for c in scored.cases] == [("a", "ok"), ("b", "skipped")]
    # a later job (more time) makes the cases again; the finished one is kept
    monkeypatch.setattr(medseg.segment, "segment_case", segment_case)
    again = infer_cases([samples["a"], samples["b"]], results, options)
    assert [(c.case_id, c.outcome, c.reused) for c in again.cases] == [("a", "ok", True), ("b", "ok", False)]
    assert not folder.failure("b").exists()


def test_an_end_time_before_the_job_started_is_not_taken(caplog):
    """A $SLURM_JOB_END_TIME before the command's start (a node clock ahead of the controller's, a value left in the
    environment by another job) stopped the job at once: every case of its batch was recorded as failed, unworked,
    whatever its --time-limit. It is passed over, with a warning, for the job's run time."""
    slurm = {"SLURM_JOB_ID": "42", "SLURM_JOB_END_TIME": "900"}
    with caplog.at_level("WARNING", logger="medseg.cohort.job_deadline"):
        assert job_deadline(18, True, started=1000.0, environ=slurm) == pytest.approx(1000 + 972 - 48.6)
    assert [record.getMessage() for record in caplog.records] == [
        "$SLURM_JOB_END_TIME 900 (00:15:00 UTC) is before this job's start (00:16:40 UTC by this node's clock): "
        "a clock that differs from SLURM's, or a value left by another job; the job's run time (--time-limit) is "
        "used instead"]
    caplog.clear()
    with caplog.at_level("WARNING", logger="medseg.cohort.job_deadline"):
        assert job_deadline(None, True, started=1000.0, environ=slurm) is None  # nothing else to go by: no stop
        assert job_deadline(18, True, started=1000.0, environ={**slurm, "SLURM_JOB_END_TIME": "1000"}) \
            == pytest.approx(1000 + 972 - 48.6)
    assert len(caplog.records) == 2


def test_a_local_workflow_run_inside_a_slurm_allocation_stops_only_at_the_allocations_end():
    """Snakemake with the local profile submitted as one SLURM job (sbatch, salloc) runs each job on the allocation's
    node with $SLURM_JOB_ID set: a job's last attempt stopped at its rule's runtime (--time-limit), which no scheduler
    enforces there, recording cases that would have finished as failed. A workflow run tells its jobs its executor
    (MEDSEG_COHORT_EXECUTOR, set as it starts): with the local one, only SLURM's own end of the allocation counts."""
    local = {"SLURM_JOB_ID": "42", "MEDSEG_COHORT_EXECUTOR": "local"}
    assert job_deadline(18, True, started=1000.0, environ=local) is None
    assert job_deadline(18, True, started=1000.0, environ={**local, "SLURM_JOB_END_TIME": "10000"}) \
        == 10000 - (10000 - 1000) / 20
    # the SLURM executor's jobs, and a command run by hand (no workflow): the run time is the job's own limit
    for executor in ({"MEDSEG_COHORT_EXECUTOR": "slurm"}, {}):
        assert job_deadline(18, True, started=1000.0, environ={"SLURM_JOB_ID": "42", **executor}) \
            == pytest.approx(1000 + 972 - 48.6)


def test_an_end_time_too_far_to_time_runs_the_job_to_its_end(cohort):
    """A $SLURM_JOB_END_TIME centuries away (garbage, or a scheduler's 'no limit' written as a huge number) made the
    timer overflow as the job's cases began: the job failed with a traceback and no record, the very outcome the
    deadline is there to prevent. It is no deadline: the cases run."""
    sheet, results = cohort
    samples = {s.case_id: s for s in read_samples(sheet)}
    deadline = job_deadline(18, True, started=time.time(), environ={"SLURM_JOB_ID": "42",
                                                                     "SLURM_JOB_END_TIME": "99999999999"})
    with stop_at(deadline):
        time.sleep(0.1)
    options = InferOptions(model=MODEL, device="cpu", batch_size=8, deadline=deadline)
    assert [c.outcome for c in infer_cases([samples["a"]], results, options).cases] == ["ok"]


def test_a_scoring_job_out_of_time_records_its_cases_as_failed_and_a_later_one_scores_them(cohort):
    """The scoring stage's own path (the inference stage's is above): a case not scored by the deadline is recorded
    as failed at evaluate, with no metrics file, its segmentation kept; a later job scores it."""
    sheet, results = cohort
    samples = [s for s in read_samples(sheet) if s.case_id in ("a", "b", "c")]
    options = InferOptions(model=MODEL, device="cpu", batch_size=8)
    assert [c.outcome for c in infer_cases(samples, results, options).cases] == ["ok"] * 3
    summary = evaluate_cases(samples, results, deadline=time.time() - 1)
    # c has no reference: nothing to score, nothing recorded
    assert [(c.case_id, c.outcome, c.stage) for c in summary.cases] == [("a", "failed", "evaluate"),
                                                                        ("b", "failed", "evaluate")]
    folder = ResultsFolder(results)
    for case in ("a", "b"):
        assert not folder.metrics(case).exists() and folder.segmentation(case).exists()
        failure = json.loads(folder.failure(case).read_text())
        assert failure["error_type"] == "JobTimeLimitError"
        assert "--set-resources evaluate:runtime=MINUTES*attempt" in failure["error"]
        assert json.loads(folder.status_path(case, "evaluate").read_text())["out_of_time"] is True
    again = evaluate_cases(samples, results)
    assert [(c.case_id, c.outcome, c.reused) for c in again.cases] == [("a", "ok", False), ("b", "ok", False)]
    assert folder.metrics("a").exists() and not folder.failure("a").exists()
