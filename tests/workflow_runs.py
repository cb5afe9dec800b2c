"""Snakemake runs of the Snakefile on small synthetic cohorts, shared by the workflow's test modules."""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from cohort_cases import MODEL, SHAPE, write_cohort_data  # noqa: F401 - SHAPE: the workflow modules take it from here

REPO = Path(__file__).resolve().parents[1]
SNAKEFILE = REPO / "Snakefile"


def snakemake(workdir: Path, *args: str, timeout: float = 300, **config) -> subprocess.CompletedProcess:
    """Run Snakemake on the repository's Snakefile in ``workdir`` (its own .snakemake folder)."""
    settings = [f"{key}={value}" for key, value in {"model": MODEL, **config}.items()]
    command = [sys.executable, "-m", "snakemake", "-s", str(SNAKEFILE), "--directory", str(workdir),
               *args, "--config", *settings]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def write_sheet(folder: Path, rows: list[tuple[str, str, str]]) -> Path:
    sheet = folder / "samples.tsv"
    sheet.write_text("case_id\timage\treference\n" + "".join("\t".join(row) + "\n" for row in rows))
    return sheet


def sheet_of_own(cohort, tmp_path: Path, cases: list[str]) -> Path:
    """A sheet beside ``tmp_path`` (which the tests look through) of the cohort's case a (image and reference) under
    each name of ``cases``: the module's sheet, which later tests read, is left as it is (a test that wrote over it
    made them run its cases)."""
    data = cohort[0] / "data"
    own = tmp_path.parent / f"{tmp_path.name}-sheet"
    own.mkdir(exist_ok=True)
    return write_sheet(own, [(case, str(data / "a.nii.gz"), str(data / "a_label.nii.gz")) for case in cases])


@pytest.fixture(scope="module", name="cohort")
def workflow_cohort(tmp_path_factory) -> tuple[Path, Path]:
    """Cases: a, b (with references), c (no reference), bad (truncated .nii.gz), gone (missing file)."""
    folder = tmp_path_factory.mktemp("cohort")
    data = write_cohort_data(folder / "data", seeds=(11, 12, 13))
    sheet = write_sheet(data, [("a", "a.nii.gz", "a_label.nii.gz"), ("b", "b.nii.gz", "b_label.nii.gz"),
                               ("c", "c.nii.gz", ""), ("bad", "bad.nii.gz", "b_label.nii.gz"),
                               ("gone", "gone.nii.gz", "")])
    return folder, sheet


# the stops a run handles as Ctrl-C (SIGHUP where the platform has it), as a terminal, SLURM or an ssh session's end
# sends them, for the tests' parameters
STOPS = [pytest.param(signal.SIGINT, id="ctrl-c"), pytest.param(signal.SIGTERM, id="sigterm"),
         pytest.param(getattr(signal, "SIGHUP", 1), id="sighup",
                      marks=pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform"))]


def snakemake_log(workdir: Path) -> str:
    """The text of the last run's Snakemake log (``.snakemake/log/<time>.snakemake.log``)."""
    logs = sorted((workdir / ".snakemake" / "log").glob("*.snakemake.log"))
    assert logs, f"no Snakemake log in {workdir}"
    return logs[-1].read_text()


def _records(status: Path) -> list[Path]:
    """The cases' finished inference records in ``status``; not a writer's temporary file (``.ms-<hex>.part.<name>``,
    which pathlib's ``*`` matches: a kill that landed while one was written had it read as a finished case)."""
    return [path for path in status.glob("*.infer.json") if not path.name.startswith(".")]


@contextlib.contextmanager
def as_a_job_segments():
    """Cases segmented in this process as a run's inference job segments them: its command leaves the
    :class:`~medseg.errors.MedsegWarning` that the phantom model was trained on larger volumes than these small test
    images to its log (the command's filters ignore the category), where here it reached pytest's summary, unasked."""
    from medseg.errors import MedsegWarning

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=MedsegWarning,
                                message=r".*: field of view unlike the volumes model phantom was trained on: ")
        yield


def made_beforehand(sheet: Path, results: Path, cases: tuple[str, ...] | None = None) -> dict[str, str]:
    """The sheet's cases (or those of ``cases``) segmented into ``results`` in this process, as a run's inference jobs
    make them with the workflow's default settings; their run ids. A run's job then keeps them (``setup (imports,
    model) 0.0 s`` in its log) instead of importing torch and MONAI, about 4 CPU-s a job, for a test whose subject is
    what a later run does (the cases' segmentation by a job is the subject of test_workflow_run.py's run)."""
    from medseg.cohort import InferOptions, infer_cases, read_samples

    samples = [sample for sample in read_samples(sheet) if cases is None or sample.case_id in cases]
    with as_a_job_segments():
        summary = infer_cases(samples, results, InferOptions(MODEL))
    assert summary.count("ok") == len(samples), summary
    return {path.name.split(".")[0]: json.loads(path.read_text())["run_id"] for path in _records(results / "status")}


def kept_by_its_job(results: Path, batch: str = "batch001") -> bool:
    """Whether the last inference job of ``batch`` loaded no model (each of its cases kept from earlier)."""
    return "setup (imports, model) 0.0 s" in (results / "logs" / "infer" / f"{batch}.log").read_text()
