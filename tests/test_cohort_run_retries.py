"""Cases a cohort batch (medseg.cohort.run) gives up or tries again: killed workers, memory, the device auto
chose, a case another run works on, an input this user may not read."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from cohort_cases import (
    MODEL,
    SMALL_IMAGES_SEGMENTED,
    cohort_folder,  # noqa: F401  (the cohort fixture its tests take)
)

from medseg.cohort import InferOptions, infer_cases, read_samples
from medseg.cohort.records import ResultsFolder
from medseg.errors import DeviceError

pytestmark = SMALL_IMAGES_SEGMENTED


def test_a_case_that_killed_its_worker_twice_is_recorded_not_retried(cohort):
    from medseg.cohort.fingerprints import infer_fingerprint
    from medseg.package import load_package

    sheet, results = cohort
    samples = [s for s in read_samples(sheet) if s.case_id in ("a", "b")]
    options = InferOptions(model=MODEL, device="cpu", batch_size=8)
    folder = ResultsFolder(results)
    package = load_package(MODEL)
    # "a" was started twice by processes that died; "b" once
    folder.mark_started("a", "infer", infer_fingerprint(samples[0], package, options), 2)
    folder.mark_started("b", "infer", infer_fingerprint(samples[1], package, options), 1)
    summary = infer_cases(samples, results, options)
    assert [(c.case_id, c.outcome, c.stage) for c in summary.cases] == [("a", "failed", "infer"), ("b", "ok", None)]
    failure = json.loads(folder.failure("a").read_text())
    assert failure["error_type"] == "WorkerDiedError" and "died 2 times" in failure["error"]
    assert not folder.started_path("a", "infer").exists() and not folder.started_path("b", "infer").exists()
    # a marker made for other work (here: another overlap) does not count
    other = InferOptions(model=MODEL, device="cpu", batch_size=8, overlap=0.5)
    folder.mark_started("a", "infer", "not this work", 5)
    again = infer_cases(samples[:1], results, other)
    assert [(c.outcome, c.reused) for c in again.cases] == [("ok", False)]


def test_attempts_killed_with_less_memory_than_the_job_now_has_do_not_count(cohort):
    """On a cluster a job killed for memory is retried with more (the Snakefile passes its mem_mb): a case that
    died twice with 2000 and 4000 MB is tried again with 6000, and given up only when two deaths had as much."""
    from medseg.cohort.fingerprints import infer_fingerprint
    from medseg.package import load_package

    sheet, results = cohort
    sample = next(s for s in read_samples(sheet) if s.case_id == "a")
    folder = ResultsFolder(results)
    options = InferOptions(model=MODEL, device="cpu", batch_size=4, overlap=0.3)  # work of its own
    print_ = infer_fingerprint(sample, load_package(MODEL), options)
    folder.mark_started("a", "infer", print_, 1, 2000)
    folder.mark_started("a", "infer", print_, 2, 4000)
    assert json.loads(folder.started_path("a", "infer").read_text())["memory_mb"] == [2000, 4000]
    assert [folder.crashes("a", "infer", print_, m) for m in (None, 2000, 4000, 6000)] == [2, 2, 1, 0]
    summary = infer_cases([sample], results, replace(options, memory_mb=6000))
    assert [(c.case_id, c.outcome) for c in summary.cases] == [("a", "ok")]
    # given up when two deaths had at least the job's memory
    options = replace(options, overlap=0.35)
    print_ = infer_fingerprint(sample, load_package(MODEL), options)
    folder.mark_started("a", "infer", print_, 1, 4000)
    folder.mark_started("a", "infer", print_, 2, 4000)
    summary = infer_cases([sample], results, replace(options, memory_mb=4000))
    assert [(c.case_id, c.outcome) for c in summary.cases] == [("a", "failed")]
    assert "died 2 times without reporting an error (crashed, killed or out of memory); it died with up to 4000 MB " \
           "and was given up with 4000 MB, and a later run whose job starts with more than 4000 MB tries it again" in \
           json.loads(folder.failure("a").read_text())["error"]
    # kept as failed for as much memory, tried again (and segmented) with more
    summary = infer_cases([sample], results, replace(options, memory_mb=4000))
    assert [(c.outcome, c.reused) for c in summary.cases] == [("failed", True)]
    summary = infer_cases([sample], results, replace(options, memory_mb=8000))
    assert [(c.outcome, c.reused) for c in summary.cases] == [("ok", False)]
    # on the job's last retry (told by its attempt: test_the_last_retry_is_told_by_the_attempt_else_by_the_memory), two
    # deaths in all are enough (with less memory): the batch completes; the record
    # keeps the most memory it died with (2000 and 4000: 4000), not the last retry's, which it never had
    options = replace(options, overlap=0.4)
    print_ = infer_fingerprint(sample, load_package(MODEL), options)
    folder.mark_started("a", "infer", print_, 1, 2000)
    folder.mark_started("a", "infer", print_, 2, 4000)
    summary = infer_cases([sample], results, replace(options, memory_mb=6000, final_attempt=True))
    assert [(c.case_id, c.outcome) for c in summary.cases] == [("a", "failed")]
    status = json.loads(folder.status_path("a", "infer").read_text())
    assert (status["worker_died_memory_mb"], status["worker_given_up_memory_mb"]) == (4000, 6000)
    # the same settings keep it given up (it was offered 6000 on the last retry, untried)
    summary = infer_cases([sample], results, replace(options, memory_mb=2000))
    assert [(c.outcome, c.reused) for c in summary.cases] == [("failed", True)]
    # the same with a constant memory (--set-resources): kept; a later run whose job has more than it was offered
    # (6000) tries it again
    summary = infer_cases([sample], results, replace(options, memory_mb=6000))
    assert [(c.outcome, c.reused) for c in summary.cases] == [("failed", True)]
    summary = infer_cases([sample], results, replace(options, memory_mb=7000))
    assert [(c.outcome, c.reused) for c in summary.cases] == [("ok", False)]


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="auto chooses the CPU only without CUDA")
def test_naming_what_auto_chose_keeps_the_cases(cohort):
    """Segmented with device and precision auto (the CPU, fp32), then with device=cpu or precision=fp32 named: the
    same work, but every case was redone (a whole cohort, where auto → cuda on a GPU cluster). Now kept, in the job
    and at planning; another precision is still other work."""
    from medseg.cohort.fingerprints import stale_cases
    from medseg.package import load_package

    sheet, results = cohort
    samples = [s for s in read_samples(sheet) if s.case_id in ("a", "bad")]  # a result and a failure
    auto = InferOptions(model=MODEL, device="auto", precision="auto", batch_size=4)
    first = infer_cases(samples, results, auto)
    assert [(c.case_id, c.outcome, c.reused) for c in first.cases] == [("a", "ok", False), ("bad", "failed", False)]
    package = load_package(MODEL)
    for device, precision in (("cpu", "auto"), ("auto", "fp32"), ("cpu", "fp32"), ("auto", "auto")):
        named = replace(auto, device=device, precision=precision)
        assert stale_cases(samples, results, package, named)["infer"] == [], (device, precision)
        summary = infer_cases(samples, results, named)
        assert [(c.outcome, c.reused) for c in summary.cases] == [("ok", True), ("failed", True)], (device, precision)
    # an image away (an unmounted share): its results are kept for the equivalent request too, not deleted
    image = samples[0].image
    image.rename(image.with_name("away.nii.gz"))
    named = replace(auto, device="cpu")
    assert stale_cases(samples, results, package, named)["infer"] == []
    assert [c.outcome for c in infer_cases(samples[:1], results, named).cases] == ["failed"]
    assert ResultsFolder(results).segmentation("a").is_file()
    image.with_name("away.nii.gz").rename(image)
    assert [(c.outcome, c.reused) for c in infer_cases(samples[:1], results, named).cases] == [("ok", True)]
    other = replace(auto, device="cpu", precision="bf16")
    assert stale_cases(samples, results, package, other)["infer"] == ["a", "bad"]
    assert [c.reused for c in infer_cases(samples, results, other).cases] == [False, False]


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="auto chooses the CPU only without CUDA")
def test_a_case_given_up_under_auto_stays_given_up_when_the_device_is_named(cohort):
    """A case whose workers died twice (with device auto on the CPU) is given up; naming device=cpu tried it again
    (and killed workers again), since the given-up record listed no equivalent requests."""
    from medseg.cohort.fingerprints import equivalent_fingerprints, infer_fingerprint, stale_cases
    from medseg.cohort.records import path_signature
    from medseg.package import load_package

    sheet, results = cohort
    sample = next(s for s in read_samples(sheet) if s.case_id == "a")
    package, folder = load_package(MODEL), ResultsFolder(results)
    auto = InferOptions(model=MODEL, device="auto", precision="auto", batch_size=4)
    signature = path_signature(sample.image)
    print_ = infer_fingerprint(sample, package, auto, signature)
    also = equivalent_fingerprints(sample, package, auto, signature, "cpu", "fp32")
    for attempt in (1, 2):  # as the attempts that died noted themselves
        folder.mark_started("a", "infer", print_, attempt, None, also)
    assert [c.outcome for c in infer_cases([sample], results, auto).cases] == ["failed"]
    assert "died 2 times" in json.loads(folder.failure("a").read_text())["error"]
    named = replace(auto, device="cpu")
    assert stale_cases([sample], results, package, named)["infer"] == []
    assert [(c.outcome, c.reused) for c in infer_cases([sample], results, named).cases] == [("failed", True)]


def test_a_case_another_run_works_on_is_waited_for_not_taken_for_a_crash(cohort, caplog):
    """Three cohort commands started at once on one results folder took each other's attempt notes for crashes:
    healthy cases were recorded as failed ("died 2 times") beside their good segmentation, and outputs cleared
    under another run. Each case is now claimed (status/.<id>.lock) and a claimed one waited for."""
    import threading

    from medseg.io.folder_claim import claim_path

    sheet, results = cohort
    samples = [s for s in read_samples(sheet) if s.case_id in ("a", "b")]
    options = InferOptions(model=MODEL, device="cpu", batch_size=8)
    holder = subprocess.Popen(  # another run, in the middle of case a, with an attempt noted
        [sys.executable, "-c", "import sys; from medseg.io.folder_claim import claimed\n"
         "from medseg.cohort.records import ResultsFolder\n"
         f"with claimed({str(results / 'status' / 'a')!r}, 'cohort run on case a'):\n"
         f"    ResultsFolder({str(results)!r}).mark_started('a', 'infer', 'its work', 1)\n"
         "    print('held', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1])
    summaries = []
    try:
        assert holder.stdout.readline() == "held\n"
        assert claim_path(results / "status" / "a") == results / "status" / ".a.lock"
        with caplog.at_level("INFO", logger="medseg"):
            runner = threading.Thread(target=lambda: summaries.append(infer_cases(samples, results, options)))
            runner.start()
            runner.join(timeout=6)
            assert runner.is_alive() and not summaries  # waiting at case a, which it has not touched
            assert not (results / "cases" / "a").exists()
    finally:
        holder.communicate("")
    runner.join(timeout=120)
    assert [(c.case_id, c.outcome) for c in summaries[0].cases] == [("a", "ok"), ("b", "ok")]
    assert f"{results / 'status' / '.a.lock'}: held by another cohort run on case a (pid {holder.pid}" in caplog.text
    assert not (results / "cases" / "a" / "a_failed.json").exists()
    assert not (results / "status" / ".a.lock").exists() and not (results / "status" / ".b.lock").exists()


def test_an_input_this_user_may_not_read_is_tried_again_once_it_can_be(cohort):
    """An image without read permission fails its case (the others go on); giving read access changes neither its
    size nor its time, so the case stayed failed through every later run. It is made again once it can be read,
    and planning names its batch to run again."""
    from medseg.cohort import stale_cases
    from medseg.package import load_package

    sheet, results = cohort
    samples = [s for s in read_samples(sheet) if s.case_id in ("a", "b")]
    options = InferOptions(model=MODEL, device="cpu", batch_size=8)
    image = samples[0].image
    image.chmod(0)
    try:
        try:
            image.open("rb").close()
        except PermissionError:
            pass
        else:
            pytest.skip("this process reads a file of mode 0 (root)")
        summary = infer_cases(samples, results, options)
        assert [(c.case_id, c.outcome, c.stage) for c in summary.cases] == [("a", "failed", "read"),
                                                                              ("b", "ok", None)]
        assert summary.cases[0].error == f"{image}: cannot read (permission denied)"
        assert stale_cases(samples, results, load_package(MODEL), options)["infer"] == []  # still not readable
        again = infer_cases(samples, results, options)
        assert [(c.case_id, c.outcome, c.reused) for c in again.cases] == [("a", "failed", True), ("b", "ok", True)]
    finally:
        image.chmod(0o644)
    assert stale_cases(samples, results, load_package(MODEL), options)["infer"] == ["a"]
    summary = infer_cases(samples, results, options)
    assert [(c.case_id, c.outcome, c.reused) for c in summary.cases] == [("a", "ok", False), ("b", "ok", True)]


def test_a_case_given_up_under_a_tighter_cgroup_names_its_limit(cohort, monkeypatch):
    """Run locally (no SLURM), a job's mem_mb is asked for but not enforced; a cgroup (a container's, a login node's)
    killed the worker at its own limit, and the record said only "died with up to 8000 MB"."""
    from pathlib import Path

    import medseg.cohort.run as run
    from medseg.cohort.fingerprints import infer_fingerprint
    from medseg.package import load_package
    from medseg.resources import CgroupLimit

    sheet, results = cohort
    sample = next(s for s in read_samples(sheet) if s.case_id == "a")
    folder = ResultsFolder(results)
    options = InferOptions(model=MODEL, device="cpu", batch_size=4, overlap=0.45, memory_mb=8000)
    print_ = infer_fingerprint(sample, load_package(MODEL), options)
    folder.mark_started("a", "infer", print_, 1, 8000)
    folder.mark_started("a", "infer", print_, 2, 8000)
    limit = Path("/sys/fs/cgroup/memory/job/memory.limit_in_bytes")
    monkeypatch.setattr(run, "cgroup_limit", lambda: CgroupLimit(800 * 2**20, limit))
    summary = infer_cases([sample], results, options)
    assert [(c.case_id, c.outcome) for c in summary.cases] == [("a", "failed")]
    assert json.loads(folder.failure("a").read_text())["error"].endswith(
        "it died with up to 8000 MB and was given up with 8000 MB, and a later run whose job starts with more than "
        f"8000 MB tries it again (this job's cgroup allows it 800 MiB, {limit}, less than the job asked for)")
    # a cgroup allowing what the job asked for is not told
    options = replace(options, overlap=0.46)
    print_ = infer_fingerprint(sample, load_package(MODEL), options)
    folder.mark_started("a", "infer", print_, 1, 8000)
    folder.mark_started("a", "infer", print_, 2, 8000)
    monkeypatch.setattr(run, "cgroup_limit", lambda: CgroupLimit(8000 * 10**6, limit))
    infer_cases([sample], results, options)
    assert json.loads(folder.failure("a").read_text())["error"].endswith("more than 8000 MB tries it again")


def test_an_error_of_the_whole_job_on_its_last_attempt_records_its_cases_and_names_the_job(cohort, tmp_path):
    """A job whose every attempt failed for a reason of the whole job (the model package, the device) left no job
    record, so the workflow made no report: the user had nothing to read. On its last attempt its unfinished cases
    are recorded as failed, naming the job, its one-line error and its log; the job ends with its record, whose
    job_error the run's check names, and a later run tries the cases again."""
    from medseg.cohort import write_job_record
    from medseg.cohort.check import check_failures, failed_jobs
    from medseg.errors import CohortFailedError, ModelPackageError

    sheet, results = cohort
    samples = [s for s in read_samples(sheet) if s.case_id in ("a", "b")]
    folder = ResultsFolder(results)
    options = InferOptions(model=MODEL, device="cpu", batch_size=8)
    assert [c.outcome for c in infer_cases(samples[:1], results, options).cases] == ["ok"]  # a, made earlier
    missing = tmp_path / "no-package"
    log = results / "logs" / "infer" / "batch001.log"
    broken = replace(options, model=str(missing), job="batch001.infer", job_log=str(log))
    with pytest.raises(ModelPackageError):  # an earlier attempt fails, and Snakemake tries the job again
        infer_cases(samples, results, broken)
    assert not folder.failure("b").exists()
    summary = infer_cases(samples, results, replace(broken, final_attempt=True))
    line = f"{missing}: no such model folder or shipped model (shipped: hippocampus, phantom)"
    # a, segmented earlier, is kept: without the package the job cannot tell whether it was made for this run's
    # settings, and the job's record names it so that the report tells it from a case this run made
    assert summary.job_error == {"error": line, "error_type": "ModelPackageError", "log": str(log),
                                 "slurm_log": None, "kept_earlier": ["a"]}
    expected = (f"{samples[1].image}: not segmented: its job batch001.infer failed on its last attempt for a reason "
                f"of the whole job, not of this case: {line}; the job's log: {log}; a later run tries it again")
    assert [(c.case_id, c.outcome, c.reused, c.stage, c.error) for c in summary.cases] == [
        ("a", "ok", True, None, None), ("b", "failed", False, "infer", expected)]
    record = json.loads(folder.failure("b").read_text())
    assert (record["schema"], record["stage"], record["error_type"], record["error"]) == (
        "medseg-failure/1", "infer", "JobFailedError", expected)
    assert folder.segmentation("a").is_file() and not folder.failure("a").exists()
    write_job_record(results / "jobs" / "batch001.infer.json", summary)
    assert failed_jobs(results) == [("batch001.infer", summary.job_error)]
    (results / "summary.json").write_text(json.dumps({"cases": {"failed": 1, "total": 2}}))
    with pytest.raises(CohortFailedError) as failed:  # fail_on_failed_cases all: 1 of 2 failed, but a job did
        check_failures(results / "summary.json", "all")
    assert str(failed.value) == (
        f"{results}: job batch001.infer failed on its last attempt for a reason of the whole job: {line} (its log: "
        f"{log}); its cases are listed as failed in {results / 'report.html'}, and a later run tries them again")
    assert check_failures(results / "summary.json", "never") == {"failed": 1, "total": 2, "fail_on": "never"}
    # the device, once the package is loaded: the case under way and those after it (a, made on the CPU, is kept:
    # the job made nothing in its place)
    cuda = replace(options, device="cuda:7", job="batch001.infer", final_attempt=True)
    on_gpu = infer_cases(samples, results, cuda)
    assert [(c.case_id, c.outcome) for c in on_gpu.cases] == [("a", "ok"), ("b", "failed")]
    assert on_gpu.job_error["error_type"] == "DeviceError"
    assert "the job's log" not in on_gpu.cases[1].error  # no log named
    # b not finished: the next run makes it
    again = infer_cases(samples, results, options)
    assert [(c.case_id, c.outcome, c.reused) for c in again.cases] == [("a", "ok", True), ("b", "ok", False)]
    assert not folder.failure("a").exists() and not folder.failure("b").exists()


def test_an_error_of_the_whole_job_keeps_the_cases_segmented_earlier_for_other_settings(cohort):
    """A whole-job error on the last attempt (here --device cuda:7 on a machine without it: a setting mistyped for the
    run) cleared every case of the batch segmented earlier with other settings (the CPU): the case under way as the
    device was resolved, on every attempt, and the others as they were recorded as failed, where the job had made
    nothing in their place; the user, back on the CPU, had them made again. The failed job keeps them as they are."""
    sheet, results = cohort
    samples = [s for s in read_samples(sheet) if s.case_id in ("a", "b", "c")]
    folder = ResultsFolder(results)
    options = InferOptions(model=MODEL, device="cpu", batch_size=8)
    assert [c.outcome for c in infer_cases(samples[:2], results, options).cases] == ["ok", "ok"]
    made = {case: folder.segmentation(case).read_bytes() for case in ("a", "b")}
    cuda = replace(options, device="cuda:7", job="batch001.infer")
    with pytest.raises(DeviceError):  # an earlier attempt: Snakemake tries the job again
        infer_cases(samples, results, cuda)
    assert folder.segmentation("a").read_bytes() == made["a"]
    failed = infer_cases(samples, results, replace(cuda, final_attempt=True))
    assert failed.job_error["error_type"] == "DeviceError"
    assert [(c.case_id, c.outcome, c.reused) for c in failed.cases] == [
        ("a", "ok", True), ("b", "ok", True), ("c", "failed", False)]
    assert {case: folder.segmentation(case).read_bytes() for case in ("a", "b")} == made
    assert not folder.failure("a").exists() and not folder.failure("b").exists() and folder.failure("c").is_file()
    again = infer_cases(samples, results, options)  # back on the CPU: a and b are kept, c made
    assert [(c.case_id, c.outcome, c.reused) for c in again.cases] == [
        ("a", "ok", True), ("b", "ok", True), ("c", "ok", False)]
