"""A cohort batch (medseg.cohort.run) on a full disk, over the file size limit, and with case folders that take no
files or are links."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import nibabel as nib
import pytest
from cohort_cases import (
    MODEL,
    SHAPE,
    SMALL_IMAGES_SEGMENTED,
    cohort_folder,  # noqa: F401  (the cohort fixture its tests take)
)

from medseg.cohort import InferOptions, evaluate_cases, infer_cases, read_samples
from medseg.cohort.records import ResultsFolder

pytestmark = SMALL_IMAGES_SEGMENTED


class _SmallDisk:
    """A 256 kB tmpfs, filled page by page (4 kB files) until the file system says it is full."""

    def __init__(self, root: Path) -> None:
        self.root, self.pages = root, []

    def fill(self, leave_pages: int = 0) -> None:
        while True:
            page = self.root / f".page{len(self.pages)}"
            try:
                page.write_bytes(b"x" * 4096)
            except OSError:
                page.unlink(missing_ok=True)
                break
            self.pages.append(page)
        for _ in range(leave_pages):
            self.pages.pop().unlink()

    def free(self) -> None:
        for page in self.pages:
            page.unlink()
        self.pages = []


@contextmanager
def _small_disk_at(root: Path) -> Iterator[_SmallDisk]:
    """A 256 kB tmpfs mounted at ``root`` for the block, unmounted after it; skipped where this process may not
    mount one (no mount command, not root). A process left behind still holding a file in it (a workflow job that
    outlived a Snakemake killed at its time limit) does not keep it mounted: it is detached (``umount --lazy``), and
    freed as that process ends; a disk that cannot be unmounted at all fails the test, naming it."""
    if shutil.which("mount") is None:
        pytest.skip("a full disk needs a small tmpfs, and there is no mount command to mount one")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(root)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("a full disk needs a small tmpfs, and this process may not mount one")
    try:
        yield _SmallDisk(root)
    finally:
        if subprocess.run(["umount", str(root)], capture_output=True).returncode != 0:  # busy: "target is busy"
            lazy = subprocess.run(["umount", "--lazy", str(root)], capture_output=True, text=True)
            assert lazy.returncode == 0, f"{root}: the small disk stays mounted: {lazy.stderr.strip()}"


@pytest.fixture
def small_disk(tmp_path):
    root = tmp_path / "disk"
    root.mkdir()
    with _small_disk_at(root) as disk:
        yield disk


def test_the_small_disk_is_skipped_where_there_is_no_mount_command(tmp_path, monkeypatch):
    """Where no ``mount`` command is found (a minimal image), the tests of a full disk are skipped, saying why: they
    stopped in an error, a FileNotFoundError of ``mount``."""
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no mount command in it
    with pytest.raises(pytest.skip.Exception, match="there is no mount command"):
        with _small_disk_at(tmp_path):
            pass


def test_the_small_disk_is_unmounted_even_while_a_process_left_behind_holds_it(tmp_path):
    """A test that fails while a process it started still holds a file in the small disk (a workflow job outliving a
    Snakemake killed at its time limit): ``umount`` said "target is busy", in silence, and the disk stayed mounted
    under the test's temporary folder, one more at each such failure. It is now detached, and freed as that process
    ends."""
    root = tmp_path / "disk"
    root.mkdir()
    with _small_disk_at(root):
        held = subprocess.Popen(["sleep", "60"], cwd=root)  # its working folder in the disk: the disk is busy
    try:
        assert not os.path.ismount(root)
    finally:
        held.kill()
        held.wait()
        subprocess.run(["umount", str(root)], capture_output=True)  # where the test failed: not left mounted


def test_a_full_disk_stops_the_job_and_is_not_the_cases_failure(cohort, small_disk):
    """A full disk while a case's outputs are written fails every case alike: the job stops with one line, the case
    is redone by the same command once there is room. It was recorded as the case's failure, kept by every later
    run, or (where the record could not be written either) counted as a crash of its worker, so that it was given
    up as a dead worker."""
    from medseg.errors import OutputWriteError

    sheet, _ = cohort
    results = small_disk.root / "results"
    samples = [s for s in read_samples(sheet) if s.case_id == "a"]
    options = InferOptions(model=MODEL, device="cpu", batch_size=8)
    folder = ResultsFolder(results)
    for stage, step in (("infer", lambda: infer_cases(samples, results, options)),
                        ("evaluate", lambda: evaluate_cases(samples, results))):
        folder.case_dir("a").mkdir(parents=True, exist_ok=True)
        folder.started_path("a", stage).parent.mkdir(parents=True, exist_ok=True)
        for _ in range(3):  # more often than a crash is tried again
            small_disk.fill(leave_pages=1)  # room for the note that the work began, none for its outputs
            with pytest.raises(OutputWriteError, match=r"cannot write \(no space left on device\)"):
                step()
            assert not folder.started_path("a", stage).exists() and folder.status("a", stage) is None
            assert not folder.failure("a").exists() and not list(results.rglob(".ms-*"))
            small_disk.free()
        summary = step()  # space freed: the same command does the case
        assert [(c.outcome, c.reused) for c in summary.cases] == [("ok", False)]
    assert folder.metrics("a").is_file() and nib.load(folder.segmentation("a")).shape == SHAPE


def test_a_disk_too_full_for_a_cases_outputs_stops_the_job_before_it_is_segmented(cohort, tmp_path, monkeypatch):
    """The infer step checks the free space as medseg infer does, before the case's inference: a disk too full for its
    outputs stops the job as a full disk found at the write does, the case not recorded as failed."""
    import medseg.segment
    from medseg.errors import OutputWriteError

    sheet, _ = cohort
    results = tmp_path / "results"
    real = os.statvfs

    def statvfs(path):
        status = real(path)
        if not Path(path).is_relative_to(results):
            return status
        return os.statvfs_result((*status[:3], 0, 0, *status[5:]))  # a full disk

    monkeypatch.setattr(os, "statvfs", statvfs)
    monkeypatch.setattr(medseg.segment, "_label_volume", lambda *args, **kwargs: pytest.fail("segmented"))
    samples = [s for s in read_samples(sheet) if s.case_id == "a"]
    with pytest.raises(OutputWriteError, match=rf"^{results / 'cases' / 'a'}: no room for a_seg.nii.gz and 1 JSON "
                                               r"file: 0 bytes free on its file system, at least 1,060 needed"):
        infer_cases(samples, results, InferOptions(model=MODEL, device="cpu", batch_size=8))
    folder = ResultsFolder(results)
    assert folder.status("a", "infer") is None and not folder.failure("a").exists()
    assert not folder.started_path("a", "infer").exists() and not folder.segmentation("a").exists()


def test_cases_are_told_as_they_end_so_a_job_a_full_disk_stops_has_told_the_ones_before(cohort, small_disk,
                                                                                          capsys, monkeypatch):
    """The per-case lines came only at the end: a job a full disk stopped at its fourth case showed only the error,
    not that three cases were done (and kept)."""
    from medseg.cli import main
    from medseg.cohort import run as cohort_run

    sheet, _ = cohort
    results = small_disk.root / "results"
    segment = cohort_run._infer_one

    def disk_full_after_a(sample, *args):
        outcome = segment(sample, *args)
        if sample.case_id == "a":
            small_disk.fill()
        return outcome

    monkeypatch.setattr(cohort_run, "_infer_one", disk_full_after_a)
    with pytest.raises(SystemExit) as caught:
        main(["cohort", "infer", str(sheet), "-o", str(results), "--model", MODEL, "--device", "cpu",
              "--case", "a", "--case", "b"])
    assert caught.value.code == 1
    captured = capsys.readouterr()
    assert captured.out.startswith("a: ok (") and "b:" not in captured.out
    assert captured.err.strip().splitlines()[-1].endswith("cannot write (no space left on device)")
    small_disk.free()


def test_an_output_over_the_file_size_limit_is_the_cases_own_failure(cohort):
    """A file size limit (EFBIG) refuses one output that is too large, not the folder: that case fails, the job
    goes on (a review caught a first version of the full-disk rule stopping every run at such a case)."""
    import resource

    sheet, results = cohort
    samples = [s for s in read_samples(sheet) if s.case_id == "a"]
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1000, hard))  # records and the segmentation fit, the sidecar not
    try:
        summary = infer_cases(samples, results, InferOptions(model=MODEL, device="cpu", batch_size=8))
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    [case] = summary.cases
    assert (case.outcome, case.stage) == ("failed", "infer") and "a_seg.json: cannot write (file too large)" \
        in case.error
    assert ResultsFolder(results).status("a", "infer")["outcome"] == "failed"


def test_an_attempt_is_taken_back_on_a_full_disk_after_earlier_crashes(tmp_path, small_disk):
    """With earlier attempts recorded, taking one back rewrites the note, which a full disk had no room for: the
    stop was counted as a crash (the case given up after two of them)."""
    folder = ResultsFolder(small_disk.root / "results")
    folder.started_path("a", "infer").parent.mkdir(parents=True)
    folder.mark_started("a", "infer", "print", 1, 4000)  # a worker that died
    folder.mark_started("a", "infer", "print", 2, 8000)  # the attempt now stopped by the full disk
    small_disk.fill()
    folder.unmark_started("a", "infer", 1)
    assert folder.attempts("a", "infer", "print") == 1
    assert json.loads(folder.started_path("a", "infer").read_text())["memory_mb"] == [4000]


def test_a_file_in_the_place_of_a_case_folder_fails_that_case_only(cohort):
    sheet, results = cohort
    samples = [s for s in read_samples(sheet) if s.case_id in ("a", "b")]
    (results / "cases").mkdir(parents=True)
    (results / "cases" / "a").write_text("not a folder\n")
    summary = infer_cases(samples, results, InferOptions(model=MODEL, device="cpu", batch_size=8))
    assert [(c.case_id, c.outcome) for c in summary.cases] == [("a", "failed"), ("b", "ok")]
    assert summary.cases[0].error == (f"{results / 'cases' / 'a'}: a file is in the place of this case's results "
                                      "folder; move it away")
    # the failure stands while the file is there (planning does not rerun the batch for it every time), and the
    # case is redone once it is moved away
    folder = ResultsFolder(results)
    assert folder.case_outputs_present("a", "infer")
    scored = evaluate_cases(samples, results)  # the scoring step too: a failure with its record, b scored
    assert [(c.case_id, c.outcome) for c in scored.cases] == [("a", "failed"), ("b", "ok")]
    assert scored.cases[0].error == summary.cases[0].error and folder.case_outputs_present("a", "evaluate")
    from medseg.cohort import stale_cases
    from medseg.package import load_package

    options = InferOptions(model=MODEL, device="cpu", batch_size=8)
    assert stale_cases(samples, results, load_package(MODEL), options) == {"infer": [], "evaluate": []}
    (results / "cases" / "a").unlink()
    assert not folder.case_outputs_present("a", "infer") and not folder.case_outputs_present("a", "evaluate")
    summary = infer_cases(samples, results, InferOptions(model=MODEL, device="cpu", batch_size=8))
    assert [(c.case_id, c.outcome, c.reused) for c in summary.cases] == [("a", "ok", False), ("b", "ok", True)]
    scored = evaluate_cases(samples, results)
    assert [(c.case_id, c.outcome, c.reused) for c in scored.cases] == [("a", "ok", False), ("b", "ok", True)]


def _refusing_files(folder: Path) -> None:
    """Make ``folder`` refuse new files (mode 0555), or skip where this process writes there regardless (root)."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o555)
    try:
        (folder / "probe").touch()
    except PermissionError:
        return
    (folder / "probe").unlink()
    folder.chmod(0o755)
    pytest.skip("this process may write in a folder of mode 0555 (root): it cannot refuse a file")


def test_a_case_folder_that_takes_no_files_fails_that_case_only(cohort):
    """A case folder another user made, or one made read-only by hand: the case failed to write its outputs, then
    its failure record, and that error stopped the job, so that the cases after it were never made (every retry
    alike, and the run ended without a report). That case fails now, with its status record only, the others go
    on; it is redone once the folder takes files, and a finished case whose folder is made read-only is kept."""
    from medseg.report.collect import add_expected_cases, collect_results

    sheet, results = cohort
    samples = [s for s in read_samples(sheet) if s.case_id in ("a", "b")]
    options = InferOptions(model=MODEL, device="cpu", batch_size=8)
    locked = results / "cases" / "a"
    _refusing_files(locked)
    try:
        summary = infer_cases(samples, results, options)
        message = (f"{locked}: this case's results folder takes no files (permission denied); give this user write "
                   "access to it, or move it away, and run again")
        assert [(c.case_id, c.outcome, c.stage, c.error) for c in summary.cases] == [
            ("a", "failed", "infer", message), ("b", "ok", None, None)]
        scored = evaluate_cases(samples, results)
        assert [(c.case_id, c.outcome) for c in scored.cases] == [("a", "skipped"), ("b", "ok")]
        [shown] = add_expected_cases([], [samples[0]], results)  # the report, with the sheet, names the cause
        assert (shown.failure["stage"], shown.failure["error"]) == ("infer", message)
        assert sorted(p.name for p in (results / "status").glob("a.*")) == ["a.evaluate.json", "a.infer.json"]
        locked.chmod(0o755)  # put right: the case is made, b kept
        summary = infer_cases(samples, results, options)
        assert [(c.case_id, c.outcome, c.reused) for c in summary.cases] == [("a", "ok", False), ("b", "ok", True)]
        assert [(c.case_id, c.outcome) for c in evaluate_cases(samples, results).cases] == [("a", "ok"), ("b", "ok")]
        locked.chmod(0o555)  # finished results made read-only by hand are kept, not failed
        summary = infer_cases(samples, results, options)
        assert [(c.case_id, c.outcome, c.reused) for c in summary.cases] == [("a", "ok", True), ("b", "ok", True)]
        scored = evaluate_cases(samples, results)
        assert [(c.case_id, c.outcome, c.reused) for c in scored.cases] == [("a", "ok", True), ("b", "ok", True)]
        # to be made again (other settings) in that folder: it fails, and the report does not show the results the
        # folder still holds, an earlier run's, as this run's
        summary = infer_cases(samples, results, replace(options, overlap=0.5))
        assert [(c.case_id, c.outcome) for c in summary.cases] == [("a", "failed"), ("b", "ok")]
        evaluate_cases(samples, results)
        shown = {c.case_id: c for c in add_expected_cases(collect_results(results), samples, results)}
        assert shown["b"].failure is None and (shown["a"].failure["stage"], shown["a"].failure["error"]) == (
            "infer", f"{message} (the results it holds are an earlier run's)")
    finally:
        locked.chmod(0o755)


def test_a_case_folder_that_stops_taking_files_before_scoring_fails_that_case_at_scoring(cohort):
    """Segmented, then its folder made read-only while its reference changed: the case fails at evaluate, its
    segmentation kept; the job goes on to the next case."""
    sheet, results = cohort
    samples = [s for s in read_samples(sheet) if s.case_id in ("a", "b")]
    infer_cases(samples, results, InferOptions(model=MODEL, device="cpu", batch_size=8))
    evaluate_cases(samples, results)
    reference = samples[0].reference
    data = reference.read_bytes()
    reference.write_bytes(data + b"\0")  # another file now (gzip ignores trailing zeros): scored again
    locked = results / "cases" / "a"
    _refusing_files(locked)
    try:
        scored = evaluate_cases(samples, results)
    finally:
        locked.chmod(0o755)
    assert [(c.case_id, c.outcome, c.stage) for c in scored.cases] == [("a", "failed", "evaluate"),
                                                                       ("b", "ok", None)]
    assert "this case's results folder takes no files (permission denied)" in scored.cases[0].error
    assert (locked / "a_seg.nii.gz").is_file() and ResultsFolder(results).status("a", "evaluate")["blocked"]


def _tree(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(folder.iterdir())}


def test_a_case_folder_that_is_a_link_fails_that_case_and_nothing_is_written_or_removed_where_it_leads(cohort,
                                                                                                        tmp_path):
    """cases/<id> as a link to another folder was followed: the case's files were written there, and a forced run
    (or a reference taken out of the sheet) removed files there, outside the results folder. The case fails now with
    one line naming the link, at infer, evaluate (a forced run too) and in the report; the folder it leads to is left
    as it was; the case is made once the link is gone."""
    from medseg.report import build_report

    sheet, results = cohort
    samples = [s for s in read_samples(sheet) if s.case_id in ("a", "c")]  # c has no reference
    (results / "cases").mkdir(parents=True)
    mine = {}
    for case in ("a", "c"):
        elsewhere = tmp_path / f"elsewhere_{case}"
        elsewhere.mkdir()
        for name in (f"{case}_seg.nii.gz", f"{case}_seg.json", f"{case}_metrics.json", "notes.txt"):
            (elsewhere / name).write_text(f"the user's {name}\n")
        mine[case] = _tree(elsewhere)
        (results / "cases" / case).symlink_to(elsewhere, target_is_directory=True)

    def error(case):
        return (f"{results / 'cases' / case}: a link to {tmp_path / f'elsewhere_{case}'} is in the place of this "
                "case's results folder; a cohort writes its cases' files, and removes those it replaces, inside the "
                "results folder, not where a link leads: put the folder itself in place of the link, or remove the "
                "link")

    options = InferOptions(model=MODEL, device="cpu", batch_size=8)
    for redo in (None, "forced"):
        summary = infer_cases(samples, results, options, redo=redo)
        assert [(c.case_id, c.outcome, c.stage, c.error) for c in summary.cases] == [
            ("a", "failed", "infer", error("a")), ("c", "failed", "infer", error("c"))]
        scored = evaluate_cases(samples, results, redo=redo)
        assert [(c.case_id, c.outcome, c.error) for c in scored.cases] == [("a", "failed", error("a"))]
        assert {case: _tree(tmp_path / f"elsewhere_{case}") for case in "ac"} == mine
    with open(build_report(results, results / "report.html", sheet=sheet).table, newline="") as handle:
        rows = {row["case_id"]: row for row in csv.DictReader(handle, delimiter="\t")}
    assert (rows["a"]["status"], rows["a"]["failed_stage"], rows["a"]["error"]) == ("failed", "infer", error("a"))
    assert {case: _tree(tmp_path / f"elsewhere_{case}") for case in "ac"} == mine
    (results / "cases" / "a").unlink()  # put right: the case is made
    summary = infer_cases(samples[:1], results, options)
    assert [(c.case_id, c.outcome) for c in summary.cases] == [("a", "ok")]
    assert sorted(p.name for p in (results / "cases" / "a").iterdir()) == ["a_seg.json", "a_seg.nii.gz"]


def test_a_link_in_the_place_of_a_cases_claim_fails_that_case_alone(cohort, tmp_path):
    """A case is claimed (``status/.<id>.lock``) while a cohort step works on it; a symbolic link put there, which a
    claim refuses rather than write through, stopped the whole job at that case, the cases after it unmade. That case
    fails now, naming the link, at infer and evaluate; the others are made; nothing is written where it leads; the
    case is made once the link is gone."""
    sheet, results = cohort
    samples = [s for s in read_samples(sheet) if s.case_id in ("a", "b")]
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (results / "status").mkdir(parents=True)
    link = results / "status" / ".a.lock"
    link.symlink_to(victim)
    error = (f"{link}: a symbolic link where medseg keeps its claim on {results / 'status' / 'a'} (one cohort run "
             "on case a at a time); nothing is written through it: remove it and run again")
    options = InferOptions(model=MODEL, device="cpu", batch_size=8)
    summary = infer_cases(samples, results, options)
    assert [(c.case_id, c.outcome, c.stage, c.error) for c in summary.cases] == [("a", "failed", "infer", error),
                                                                                 ("b", "ok", None, None)]
    scored = evaluate_cases(samples, results)
    assert [(c.case_id, c.outcome, c.error) for c in scored.cases] == [("a", "failed", error), ("b", "ok", None)]
    assert victim.read_text() == "precious\n" and link.is_symlink()
    assert not (results / "cases" / "a").exists()
    link.unlink()  # put right: the case is made
    summary = infer_cases(samples, results, options)
    assert [(c.case_id, c.outcome, c.reused) for c in summary.cases] == [("a", "ok", False), ("b", "ok", True)]


def test_a_full_disk_on_a_jobs_last_attempt_records_its_cases_where_their_records_fit(cohort, small_disk):
    """A results folder too full for a case's outputs on the job's last attempt left the batch without a job record,
    and the run without a report, even where the small records still fitted. The cases are recorded as failed for the
    job's error (tried again by a later run); where not even those fit, the job fails as before."""
    from medseg.errors import OutputWriteError

    sheet, _ = cohort
    results = small_disk.root / "results"
    samples = [s for s in read_samples(sheet) if s.case_id in ("a", "b")]
    options = InferOptions(model=MODEL, device="cpu", batch_size=8, job="batch001.infer", final_attempt=True)
    folder = ResultsFolder(results)
    folder.case_dir("a").mkdir(parents=True)
    folder.case_dir("b").mkdir(parents=True)
    folder.started_path("a", "infer").parent.mkdir(parents=True)
    small_disk.fill(leave_pages=0)
    with pytest.raises(OutputWriteError) as raised:  # no room even for a record: one line naming the folder, and that
        infer_cases(samples, results, options)  # the report cannot be written there either
    assert str(raised.value) == (
        f"{results}: this results folder takes no records ({folder.failure('a')}: cannot write (no space left on "
        "device)): job batch001.infer could record neither its cases nor their failures, and the cohort's report "
        "cannot be written there either; free space on its disk or make it writable, then run the same command again")
    assert folder.status("a", "infer") is None and not folder.failure("a").exists()
    small_disk.free()
    small_disk.fill(leave_pages=6)  # room for a's outputs and records (a few kB), not for b's outputs too
    summary = infer_cases(samples, results, options)
    assert summary.job_error["error_type"] == "OutputWriteError"
    assert summary.job_error["error"].endswith(f"{folder.sidecar('b')}: cannot write (no space left on device)")
    assert [(c.case_id, c.outcome, c.stage) for c in summary.cases] == [("a", "ok", None), ("b", "failed", "infer")]
    failure = json.loads(folder.failure("b").read_text())
    assert failure["error_type"] == "JobFailedError" and failure["job"]["error_type"] == "OutputWriteError"
    small_disk.free()
    again = infer_cases(samples, results, replace(options, job=None, final_attempt=False))  # room: made
    assert [(c.case_id, c.outcome, c.reused) for c in again.cases] == [("a", "ok", True), ("b", "ok", False)]


def test_a_results_folder_that_takes_no_records_fails_the_run_in_one_line_naming_it(tmp_path, small_disk):
    """A results folder whose disk filled up once the run had planned (room for the plan and the job's log, none for
    a case's records): every attempt of the job failed, its last one logging that its cases "are recorded as failed,
    so that the report is made", then that it could not record them, then the first error again, naming a record
    file; the run ended without a report and without saying why there was none. Its last attempt now ends on one
    line naming the folder, the problem and that the report cannot be written there, which the console shows."""
    import sys

    from workflow_runs import SNAKEFILE, write_sheet

    from medseg.synthetic import write_phantom

    data = tmp_path / "data"
    data.mkdir()
    write_phantom(data / "a.nii.gz", None, shape=SHAPE, seed=3)
    sheet = write_sheet(data, [("a", "a.nii.gz", "")])
    results = small_disk.root / "results"
    results.mkdir()
    small_disk.fill(leave_pages=3)  # the run's claim on the folder, the plan and the job's log; no case record
    settings = [f"{key}={value}" for key, value in {"model": MODEL, "samples": sheet, "results": results,
                                                     "max_overlays": 0}.items()]
    run = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--directory", str(tmp_path),
                          "--cores", "1", "--config", *settings], capture_output=True, text=True, timeout=300)
    assert run.returncode == 1, run.stderr[-3000:]
    record = results / "cases" / "a" / "a_failed.json"
    line = (f"medseg: error: {results}: this results folder takes no records ({record}: cannot write (no space left "
            "on device)): job batch001.infer could record neither its cases nor their "
            "failures, and the cohort's report cannot be written there either; free space on its disk or make it "
            "writable, then run the same command again")
    assert line in run.stdout + run.stderr, run.stderr[-3000:]
    log = (results / "logs" / "infer" / "batch001.log").read_text()
    assert "are recorded as failed, so that the report is made" not in log and log.strip().splitlines()[-1] == line
    assert not (results / "report.html").exists() and not (results / "jobs" / "batch001.infer.json").exists()
