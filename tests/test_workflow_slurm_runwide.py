"""A cohort whose every job fails for one reason of the whole run (``device: cuda`` where torch has no CUDA), through
profiles/slurm, which keeps going, against the stand-in SLURM commands (``tests/fake_slurm.py``): what the records,
``cohort.tsv``, the report and the run's last line say, and how many attempts the run spends on it."""

from __future__ import annotations

import csv
import html
import importlib.util
import json
import sys

import pytest
from test_workflow_slurm_submission import _option, _run, _submitted
from workflow_runs import workflow_cohort  # noqa: F401  (the cohort fixture its tests take)

pytestmark = [
    pytest.mark.slow,  # a run of SLURM jobs through the plugin: about 1 min
    pytest.mark.skipif(importlib.util.find_spec("snakemake_executor_plugin_slurm") is None,
                       reason="the SLURM executor plugin is not installed (pip install -e '.[workflow]')"),
    pytest.mark.skipif(sys.platform != "linux",
                       reason="the stand-in SLURM commands read /proc to enforce --mem, as SLURM's cgroup does"),
]


def test_every_job_failing_for_the_device_is_recorded_with_medsegs_error(cohort, tmp_path, monkeypatch):
    """device: cuda on nodes without CUDA fails every inference job: each batch's first two attempts fail (medseg's
    error line, no record), its last records its case as failed with medseg's DeviceError (not as a job that ended
    before medseg started); the report is made, names the error under each job, and the run's last line names it."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here: device: cuda does not fail")
    run, state, results, logs = _run(cohort, tmp_path, monkeypatch, device="cuda")
    assert run.returncode == 1, run.stderr[-3000:]
    said = "device: cuda in the workflow config: CUDA is not available on this machine"
    # every batch × 3 attempts, as the profile keeps going; then scoring (nothing to score) and the report
    comments = [_option(entry, "--comment") for entry in _submitted(state)]
    assert sorted(comment for comment in comments if comment.startswith("rule_infer_")) == (
        ["rule_infer_wildcards_a"] * 3 + ["rule_infer_wildcards_b"] * 3)
    assert comments.count("rule_report") == 1
    for case in ("a", "b"):
        record = json.loads((results / "jobs" / f"{case}.infer.json").read_text())
        assert record["job_error"]["error_type"] == "DeviceError"
        assert record["job_error"]["error"].startswith(said)
        assert record["job_error"]["slurm_log"].startswith(str(logs / "rule_infer" / case))
    with open(results / "cohort.tsv", newline="", encoding="utf-8") as handle:
        rows = {row["case_id"]: row for row in csv.DictReader(handle, delimiter="\t")}
    assert {case: (row["status"], row["failed_job"]) for case, row in rows.items()} == {
        "a": ("failed", "a.infer"), "b": ("failed", "b.infer")}
    assert all(said in row["error"] and "before medseg started" not in row["error"] for row in rows.values())
    page = (results / "report.html").read_text()
    # the two jobs failed with one error: one entry, the error once, each job's logs on its own line
    assert "Jobs that failed (2)" in page and page.count(html.escape(said)) == 1
    assert '<li id="job-a.infer">' in page and '<li id="job-b.infer">' in page
    assert "before medseg started" not in page
    last = [line for line in run.stderr.splitlines() if line.startswith("medseg: error: ")][-1]
    assert f"jobs a.infer, b.infer failed on their last attempt for a reason of the whole job, each: {said}" in last
    assert "; their cases are listed as failed in " in last and ", with each job's logs, " in last
    assert "every attempt ended before medseg" not in run.stderr
