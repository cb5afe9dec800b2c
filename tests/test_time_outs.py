"""The note a cohort job leaves when SLURM's time limit ends an attempt, and the memory its retry asks for."""

from __future__ import annotations

import json
from pathlib import Path

from medseg.cohort.time_outs import (
    NEAR_END_S,
    forget_out_of_time,
    memory_factor,
    note_out_of_time,
    out_of_time_attempts,
)

END = 1_800_000_000.0


def _slurm(end: float | str = END) -> dict[str, str]:
    return {"SLURM_JOB_ID": "4242001", "SLURM_JOB_END_TIME": str(end)}


def test_a_sigterm_at_the_end_notes_the_attempt_and_its_retry_keeps_the_memory(tmp_path):
    """A SIGTERM at or after the job's end is SLURM's time limit: the attempt is noted beside the job record, and the
    retry multiplies its first attempt's memory by 1 (not 2), the one after by 2 (not 3)."""
    record = tmp_path / "jobs" / "batch002.infer.json"
    record.parent.mkdir()
    assert memory_factor(record, 1) == 1 and memory_factor(record, 2) == 2 and memory_factor(record, 3) == 3
    assert note_out_of_time(record, 1, _slurm(), now=END + 20)
    assert json.loads((tmp_path / "jobs" / "batch002.infer.json.out-of-time").read_text()) == {"attempts": [1]}
    assert [memory_factor(record, attempt) for attempt in (1, 2, 3)] == [1, 1, 2]
    # its second attempt ran out of time too (the signal a little before the end by this node's clock)
    assert note_out_of_time(record, 2, _slurm(), now=END - NEAR_END_S + 1)
    assert out_of_time_attempts(record) == {1, 2}
    assert [memory_factor(record, attempt) for attempt in (1, 2, 3)] == [1, 1, 1]
    assert sorted(p.name for p in record.parent.iterdir()) == ["batch002.infer.json.out-of-time"]


def test_a_sigterm_that_is_not_the_time_limit_notes_nothing(tmp_path):
    """A SIGTERM well before the end (scancel, Ctrl-C of the run), outside SLURM, or where SLURM does not tell the
    job's end notes nothing: the retry asks for more memory, as a job killed for memory needs."""
    record = tmp_path / "batch001.evaluate.json"
    assert not note_out_of_time(record, 1, _slurm(), now=END - NEAR_END_S - 1)
    assert not note_out_of_time(record, 1, {"SLURM_JOB_END_TIME": str(END)}, now=END)
    assert not note_out_of_time(record, 1, {"SLURM_JOB_ID": "4242001"}, now=END)
    assert not note_out_of_time(record, 1, _slurm("garbage"), now=END)
    assert not note_out_of_time(record, 1, _slurm("nan"), now=END)
    assert list(tmp_path.iterdir()) == []
    assert memory_factor(record, 2) == 2


def test_a_note_that_cannot_be_written_or_read_counts_no_time_out(tmp_path):
    """A results folder that takes no note: nothing noted, no error (the job is stopping); a damaged note: the
    retries ask for more memory, as without one."""
    record = tmp_path / "missing" / "batch001.infer.json"
    assert not note_out_of_time(record, 1, _slurm(), now=END)
    damaged = tmp_path / "batch001.infer.json"
    (tmp_path / "batch001.infer.json.out-of-time").write_text("{\"attempts\": [1")
    assert out_of_time_attempts(damaged) == set() and memory_factor(damaged, 3) == 3


def test_a_new_run_forgets_the_last_runs_notes(tmp_path):
    """A run's attempts count from 1 again: the notes of the last run's are removed as the run starts, the job records
    beside them kept."""
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    (jobs / "batch001.infer.json").write_text("{}")
    assert note_out_of_time(jobs / "batch001.infer.json", 1, _slurm(), now=END)
    forget_out_of_time(jobs)
    assert sorted(p.name for p in jobs.iterdir()) == ["batch001.infer.json"]
    assert memory_factor(jobs / "batch001.infer.json", 2) == 2
    forget_out_of_time(tmp_path / "absent")  # no folder yet: nothing to forget


def test_a_job_that_slurm_ends_at_its_time_limit_notes_its_attempt(tmp_path):
    """`medseg cohort infer` as a workflow job runs it, sent SIGTERM while it segments a case after its SLURM end
    (``$SLURM_JOB_END_TIME``, here already past: its first attempt, which does not stop itself): it stops as on any
    SIGTERM (exit code 143, the case's attempt taken back) and notes its attempt beside its job record."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import nibabel as nib
    import numpy as np
    from workflow_runs import MODEL, write_sheet

    ramp = np.broadcast_to(np.arange(300, dtype=np.int16), (256, 256, 300))  # seconds of inference
    nib.save(nib.Nifti1Image(np.ascontiguousarray(ramp), np.eye(4)), str(tmp_path / "big.nii.gz"))
    sheet = write_sheet(tmp_path, [("big", str(tmp_path / "big.nii.gz"), "")])
    results = tmp_path / "results"
    record = results / "jobs" / "batch001.infer.json"
    record.parent.mkdir(parents=True)
    env = {**os.environ, "SLURM_JOB_ID": "4242001", "SLURM_JOB_END_TIME": str(int(time.time()) - 5)}
    process = subprocess.Popen([sys.executable, "-m", "medseg", "cohort", "infer", str(sheet), "-o", str(results),
                                "--model", str(MODEL), "--device", "cpu", "--attempt", "1", "3", "--time-limit", "10",
                                "--record", str(record)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    started = results / "status" / "big.infer.started.json"
    deadline = time.time() + 240
    while not started.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert started.exists(), process.communicate(timeout=60)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr[-3000:]
    assert json.loads((results / "jobs" / "batch001.infer.json.out-of-time").read_text()) == {"attempts": [1]}
    assert not record.exists() and not started.exists()
    assert memory_factor(record, 2) == 1


def test_a_job_of_a_killed_run_notes_nothing_once_another_run_holds_the_folder(tmp_path):
    """A run killed outright leaves its SLURM jobs working; the next run forgets the notes as it starts, and then such a
    job ended by its time limit noted its attempt 1 for the new run's job of the same batch, whose retry, killed for
    memory, asked for the memory it had. A job notes nothing where another run than its own holds the results folder
    (its claim); its SIGTERM stops it as before."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import nibabel as nib
    import numpy as np
    from workflow_runs import MODEL, write_sheet

    from medseg.io.folder_claim import claimed

    ramp = np.broadcast_to(np.arange(300, dtype=np.int16), (256, 256, 300))  # seconds of inference
    nib.save(nib.Nifti1Image(np.ascontiguousarray(ramp), np.eye(4)), str(tmp_path / "big.nii.gz"))
    sheet = write_sheet(tmp_path, [("big", str(tmp_path / "big.nii.gz"), "")])
    results = tmp_path / "results"
    record = results / "jobs" / "batch001.infer.json"
    record.parent.mkdir(parents=True)
    killed_run = "pid 4242 on login1, user alice"  # the run that started the job, gone since
    env = {**os.environ, "SLURM_JOB_ID": "4242001", "SLURM_JOB_END_TIME": str(int(time.time()) - 5)}
    env.pop("MEDSEG_COHORT_RUN", None)
    process = subprocess.Popen([sys.executable, "-m", "medseg", "cohort", "infer", str(sheet), "-o", str(results),
                                "--model", str(MODEL), "--device", "cpu", "--attempt", "1", "3", "--time-limit", "10",
                                "--record", str(record), "--in-run", killed_run], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started = results / "status" / "big.infer.started.json"
    deadline = time.time() + 240
    while not started.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert started.exists(), process.communicate(timeout=60)
    with claimed(results, "cohort run"):  # the new run holds the folder (this process)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr[-3000:]
    assert sorted(p.name for p in (results / "jobs").iterdir()) == []
    assert memory_factor(record, 2) == 2


def test_the_slurm_log_line_the_docs_name_is_the_one_slurm_writes():
    """docs/cohorts-slurm.md told to look for `CANCELLED DUE TO TIME LIMIT` in a failed job's SLURM log; slurmstepd
    writes `*** JOB 4242001 ON node01 CANCELLED AT 2026-12-07T10:00:00 DUE TO TIME LIMIT ***` (src/slurmd/slurmstepd/
    req.c), which that text, searched for, does not find. The stand-in SLURM writes SLURM's line too."""
    import re

    from documents import read

    slurm = "slurmstepd: error: *** JOB 4242001 ON node01 CANCELLED AT 2026-12-07T10:00:00 DUE TO TIME LIMIT ***"
    told = re.search(r"SLURM's own `oom_kill` or `([^`]+)` line", " ".join(read("docs/cohorts-slurm.md").split()))
    assert told is not None and told.group(1) in slurm, told
    fake = (Path(__file__).parent / "fake_slurm.py").read_text(encoding="utf-8")
    assert "*** JOB {job_id} ON {" in fake and "CANCELLED AT " in fake and told.group(1) in fake
