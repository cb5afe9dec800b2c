"""The resources a cohort run's jobs ask for (memory of the batch, scoring and report jobs) and the resource
settings warned about while planning."""

from __future__ import annotations

import re

import nibabel as nib
import numpy as np
import pytest
from cohort_cases import SMALL_IMAGES_SEGMENTED
from workflow_runs import (
    MODEL,
    REPO,
    SHAPE,
    snakemake,
    workflow_cohort,  # noqa: F401  (the cohort fixture its tests take)
    write_sheet,
)

pytestmark = SMALL_IMAGES_SEGMENTED


def test_the_slurm_profiles_placeholder_account_is_warned_about_while_planning(cohort, tmp_path):
    """A dry run with profiles/slurm as shipped planned every job without a word; sbatch then refused them all."""
    import importlib.util

    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        pytest.skip("the SLURM executor plugin is not installed (pip install -e '.[workflow]')")
    _, sheet = cohort
    warning = "default resources slurm_account=your_account: still the SLURM profile's placeholder"
    plain = snakemake(tmp_path, "-n", "--profile", str(REPO / "profiles" / "slurm"), samples=sheet,
                      results=tmp_path / "results")
    assert plain.returncode == 0, plain.stderr[-3000:]
    assert warning in plain.stdout + plain.stderr
    assert not (tmp_path / "results").exists()  # a preview writes nothing
    # the warning names the way that leaves the checkout as it is
    assert "--default-resources slurm_account=ACCOUNT slurm_partition=PARTITION" in plain.stdout + plain.stderr
    # which is the README's: the account and partition alone on the command line (replacing the profile's list) give
    # every cluster job both, and the rules' own memory and run time stay
    set_ = snakemake(tmp_path, "-n", "--profile", str(REPO / "profiles" / "slurm"), "--default-resources",
                     "slurm_account=lab42", "slurm_partition=short", samples=sheet, results=tmp_path / "results",
                     cases_per_job=3)
    assert set_.returncode == 0, set_.stderr[-3000:]
    assert warning not in set_.stdout + set_.stderr
    jobs = re.findall(r"^(?:local)?rule (\w+):.*?^\s+resources: (.*?)$", set_.stdout, re.MULTILINE | re.DOTALL)
    resources = {}
    for rule, listed in jobs:
        resources.setdefault(rule, []).append(dict(item.split("=", 1) for item in listed.split(", ")))
    assert sorted((rule, len(listed)) for rule, listed in resources.items()) == [
        ("all", 1), ("check_failures", 1), ("evaluate", 2), ("infer", 2), ("report", 1)]
    for listed in resources.values():
        assert all(job["slurm_account"] == "lab42" and job["slurm_partition"] == "short" for job in listed), listed
    # the run time and memory planned from the batch's small inputs (medseg/cohort/job_runtime.py, job_memory.py)
    assert sorted((job["runtime"], job["mem_mb"]) for job in resources["infer"]) == [("6", "1300"), ("6", "1300")]
    assert [(job["runtime"], job["mem_mb"]) for job in resources["report"]] == [("60", "900")]


def test_a_second_config_on_the_command_line_is_refused_before_anything_runs(cohort, tmp_path):
    """`--config device=cpu ... --config samples=...`: Snakemake kept the second alone, and the run went on without
    the first's settings (the README's GPU step adds device=cuda to the command line)."""
    _, sheet = cohort
    run = snakemake(tmp_path, "--cores", "1", "--config", "device=cpu", "cases_per_job=2", samples=sheet,
                    results=tmp_path / "results")
    assert run.returncode == 1, run.stderr[-3000:]
    assert run.stderr.splitlines()[-1] == (
        f"medseg: error: --config given 2 times: Snakemake keeps the last one's settings alone (model={MODEL} "
        f"samples={sheet} results={tmp_path / 'results'}) and drops the others' (device=cpu cases_per_job=2); give "
        "every KEY=VALUE after one --config")
    assert not (tmp_path / "results").exists()
    assert not (tmp_path / ".snakemake" / "locks").exists() or not any((tmp_path / ".snakemake" / "locks").iterdir())


def _infer_runtimes(cohort, tmp_path):
    """A sheet of the cohort's a, b, c and a 512x512x300 volume of 0.7x0.7x1 mm (planning reads its header alone:
    zeros keep the file small), three cases a job; a preview of it with settings (``key=value``) that returns the
    inference jobs' (batch, minutes), and what each preview said by its settings."""
    _, sheet = cohort
    data = sheet.parent
    nib.save(nib.Nifti1Image(np.zeros((512, 512, 300), np.int16), np.diag([0.7, 0.7, 1.0, 1.0])),
             str(tmp_path / "ct.nii.gz"))
    rows = [("a", str(data / "a.nii.gz"), ""), ("b", str(data / "b.nii.gz"), ""), ("c", str(data / "c.nii.gz"), ""),
            ("ct", str(tmp_path / "ct.nii.gz"), "")]
    own = write_sheet(tmp_path, rows)
    said = {}

    def infer_runtimes(*settings):
        planned = snakemake(tmp_path, "-n", "--cores", "1", samples=own, results=tmp_path / "results",
                            cases_per_job=3, **dict(setting.split("=", 1) for setting in settings))
        assert planned.returncode == 0, planned.stderr[-3000:]
        said[settings] = planned.stdout + planned.stderr
        jobs = re.findall(r"^rule infer:.*?^\s+wildcards: batch=(\w+)$\s+resources: .*?runtime=(\d+)", planned.stdout,
                          re.MULTILINE | re.DOTALL)
        return sorted((batch, int(minutes)) for batch, minutes in jobs)

    return infer_runtimes, said


def test_an_inference_jobs_run_time_is_planned_from_its_cases_voxels(cohort, tmp_path):
    """Every inference job asked 10 min + 5 a case whatever its volumes: 50 hippocampus crops asked for 260 min (and
    520, 780 on a retry), which a partition with a shorter MaxTime refused. A batch of small phantoms now asks for a
    few minutes and one of a CT-sized volume for more; config minutes_per_case is still the user's own figure."""
    infer_runtimes, said = _infer_runtimes(cohort, tmp_path)
    # 5 min + 3 x (3 s + 15 s x 0.037 M voxels); 5 min + 3 s + 15 s x 78.6 M voxels
    assert infer_runtimes() == [("batch001", 6), ("batch002", 25)]
    assert infer_runtimes("minutes_per_case=0.5") == [("batch001", 11), ("batch002", 10)]
    # a figure other than the old default's 5 is not warned about (the next test's warning)
    assert not [settings for settings, text in said.items() if "the default before run times were planned" in text]


@pytest.mark.slow(reason="two Snakemake previews; a null minutes_per_case and bf16 on the CPU planned: "
                         "test_job_runtime.py's test_a_job_asks_for_its_start_its_cases_and_their_voxels and "
                         "test_bf16_on_the_cpu_is_planned_as_emulated, a null setting on the command line "
                         "test_workflow_planning.py's test_a_null_setting_can_be_given_on_the_command_line")
def test_an_inference_jobs_run_time_is_planned_for_a_null_figure_and_for_bf16_on_the_cpu(cohort, tmp_path):
    infer_runtimes, said = _infer_runtimes(cohort, tmp_path)
    assert infer_runtimes("minutes_per_case=null") == [("batch001", 6), ("batch002", 25)]
    # bf16 on the CPU, emulated where the node has no AVX-512 BF16 or AMX: 17 times the voxels' seconds
    assert infer_runtimes("precision=bf16", "device=cpu") == [("batch001", 8), ("batch002", 340)]
    assert not [settings for settings, text in said.items() if "the default before run times were planned" in text]


def _planned_with_old_default(cohort, tmp_path):
    """A preview of the cohort on its own results folder: what it said and its inference jobs' run times."""
    _, sheet = cohort

    def planned(*args, **settings):
        run = snakemake(tmp_path, "-n", *args, samples=sheet, results=tmp_path / "results", **settings)
        assert run.returncode == 0, run.stderr[-3000:]
        runtimes = re.findall(r"^rule infer:.*?^\s+resources: .*?runtime=(\d+)", run.stdout, re.MULTILINE | re.DOTALL)
        return run.stdout + run.stderr, sorted(int(m) for m in runtimes)

    return planned


_CLUSTER = ("--executor", "slurm", "--jobs", "4")


def test_the_old_default_minutes_per_case_is_warned_about_once_naming_where_it_is_set(cohort, tmp_path):
    """A config copied before the run time was planned from the voxels holds minutes_per_case: 5, its default then:
    every inference job asked 10 min + 5 a case (60 min for 10 small cases, planned now at 6), without a word. The
    setting is kept (it may be meant) and warned about once, naming the file or --config that sets it, what it asks
    and what would be planned; only where the run time is used (the next test)."""
    import importlib.util

    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        pytest.skip("the SLURM executor plugin is not installed (pip install -e '.[workflow]')")
    planned = _planned_with_old_default(cohort, tmp_path)
    old = tmp_path / "old.yaml"
    old.write_text("cases_per_job: 3\nminutes_per_case: 5\n")
    said, runtimes = planned(*_CLUSTER, "--configfile", str(old))
    assert runtimes == [20, 25]  # the setting is kept: 10 + 5 x 2 cases, 10 + 5 x 3
    warning = (f"{old}: minutes_per_case: 5: the default before run times were planned from the cases' voxels; its 2 "
               "inference jobs ask for 20-25 min (10 + 5 a case; twice and three times that on a retry), where "
               "planned from their voxels they would ask for 6 min: set minutes_per_case: null (or leave it out) to "
               "have the run time planned, or give a figure of your own other than 5")
    assert said.count(warning) == 1, said[-3000:]
    # given on the command line, the warning names it
    said, _ = planned(*_CLUSTER, minutes_per_case=5, cases_per_job=10)
    assert ("--config minutes_per_case=5: the default before run times were planned from the cases' voxels; its "
            "inference job asks for 35 min") in said


@pytest.mark.slow(reason="three Snakemake previews; which executors enforce the run time is test_invocation.py's "
                         "test_the_executors_that_hand_a_jobs_run_time_to_a_scheduler, a run time set with "
                         "--set-resources test_cohort_settings.py's "
                         "test_a_run_time_given_with_set_resources_is_told_from_the_rules_own, other figures "
                         "test_the_old_default_minutes_per_case_is_named_with_what_would_be_planned")
def test_the_old_default_minutes_per_case_is_not_warned_about_where_the_run_time_is_not_its(cohort, tmp_path):
    """Only a cluster executor (a local run enforces none) that is not given the run time with --set-resources
    infer:runtime= instead (the jobs ask for that) is warned about the old default; another figure is not."""
    import importlib.util

    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        pytest.skip("the SLURM executor plugin is not installed (pip install -e '.[workflow]')")
    planned = _planned_with_old_default(cohort, tmp_path)
    # a local run: the run time is no job's limit; the same setting, kept, is not warned about
    said, runtimes = planned("--cores", "1", minutes_per_case=5, cases_per_job=10)
    assert runtimes == [35]
    assert "the default before run times were planned" not in said, said[-3000:]
    # on the cluster with --set-resources infer:runtime=: what every job asks for, not minutes_per_case's figure
    said, runtimes = planned(*_CLUSTER, "--set-resources", "infer:runtime=30*attempt", minutes_per_case=5,
                             cases_per_job=10)
    assert runtimes == [30]
    assert "the default before run times were planned" not in said, said[-3000:]
    said, _ = planned(*_CLUSTER, minutes_per_case="0.5")
    assert "the default before run times were planned" not in said


def test_a_profiles_config_dropped_by_the_command_lines_is_warned_about_while_planning(cohort, tmp_path):
    """A --config on the command line replaced a profile's config: whole, without a word: a copy of the SLURM profile
    setting device and cases_per_job planned the defaults once the README's --config samples=... was given."""
    _, sheet = cohort
    profile = tmp_path / "profile"
    profile.mkdir()
    (profile / "config.yaml").write_text("config:\n  device: cpu\n  cases_per_job: 2\n")
    planned = snakemake(tmp_path, "-n", "--cores", "1", "--profile", str(profile), samples=sheet,
                        results=tmp_path / "results", minutes_per_case=5)
    assert planned.returncode == 0, planned.stderr[-3000:]
    assert ("profile config device=cpu cases_per_job=2: dropped, as a --config on the command line replaces a "
            "profile's config: whole (Snakemake keeps one); give them among the command line's --config settings "
            "too") in planned.stdout + planned.stderr
    assert len(re.findall(r"^rule infer:", planned.stdout, re.MULTILINE)) == 1  # cases_per_job 10: one batch
    # a local run enforces no run time: the old default minutes_per_case, kept, is not warned about (the warning
    # of a cluster run: test_the_old_default_minutes_per_case_is_warned_about_once_naming_where_it_is_set)
    assert "the default before run times were planned" not in planned.stdout + planned.stderr


@pytest.mark.slow(reason="a Snakemake preview; a command line that sets the profile's config again dropping nothing "
                         "is test_invocation.py's test_a_profiles_config_that_the_command_lines_drops_is_told")
def test_a_profiles_config_set_again_on_the_command_line_is_not_warned_about(cohort, tmp_path):
    _, sheet = cohort
    profile = tmp_path / "profile"
    profile.mkdir()
    (profile / "config.yaml").write_text("config:\n  device: cpu\n  cases_per_job: 2\n")
    again = snakemake(tmp_path, "-n", "--cores", "1", "--profile", str(profile), samples=sheet,
                      results=tmp_path / "results", device="cpu", cases_per_job=2)
    assert again.returncode == 0 and "profile config" not in again.stdout + again.stderr, again.stderr[-3000:]


# a program with options of its own (two --config) running a dry run of the workflow through Snakemake's Python API;
# argv: the program's own options, then SNAKEFILE WORKDIR KEY=VALUE...
_API_PROGRAM = """
import sys
from pathlib import Path

from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

snakefile, workdir, *settings = sys.argv[5:]
try:
    with SnakemakeApi(OutputSettings()) as api:
        workflow = api.workflow(resource_settings=ResourceSettings(cores=1), snakefile=Path(snakefile),
                                config_settings=ConfigSettings(config=dict(text.split("=", 1) for text in settings)),
                                workdir=Path(workdir))
        workflow.dag().execute_workflow(executor="dryrun")
    print("returned", file=sys.stderr)
except SystemExit as stop:
    print(f"exit {stop.code}", file=sys.stderr)
"""


def test_a_programs_own_options_are_not_taken_for_a_second_config(cohort, tmp_path):
    """Through Snakemake's Python API the command line is the program's own: a program given `--config a.yaml
    --config b.yaml` of its own was refused as if Snakemake had dropped a.yaml."""
    import subprocess
    import sys

    from workflow_runs import SNAKEFILE

    _, sheet = cohort
    done = subprocess.run([sys.executable, "-c", _API_PROGRAM, "--config", "a.yaml", "--config", "b.yaml",
                           str(SNAKEFILE), str(tmp_path), f"model={MODEL}", f"samples={sheet}",
                           f"results={tmp_path / 'results'}"], capture_output=True, text=True, timeout=300)
    assert "--config given" not in done.stderr, done.stderr[-3000:]
    assert "This was a dry-run" in done.stdout + done.stderr and done.stderr.splitlines()[-1] == "returned", \
        done.stderr[-3000:]


@pytest.fixture(scope="module")
def odd_resources(cohort, tmp_path_factory) -> dict[str, tuple[str, str]]:
    """One dry run (printing its commands) given each resource setting warned about while planning: a fixed
    inference memory, memory per CPU, CPUs per task other than the threads (and evaluate's matched by
    --set-threads), a GPU model without device cuda; and one given their plain forms. Each warning is its own line,
    asked for on its own: one run a side, not one per setting (a Snakemake start, about 2 CPU-s each). Their
    outputs by side ("odd", "plain"): stdout and stderr together, and stdout."""
    _, sheet = cohort
    odd_run = tmp_path_factory.mktemp("odd_resources")
    odd = snakemake(odd_run, "-n", "-p", "--set-resources", "infer:mem_mb=500", "infer:cpus_per_task=8",
                    "evaluate:cpus_per_task=2", "infer:gpu_model=a100", "--set-threads", "evaluate=2",
                    "--default-resources", "mem_mb_per_cpu=2000", samples=sheet, results=odd_run / "results",
                    device="auto")
    assert odd.returncode == 0, odd.stderr[-3000:]
    plain_run = tmp_path_factory.mktemp("plain_resources")
    plain = snakemake(plain_run, "-n", "-p", "--set-resources", "infer:mem_mb=500*attempt", "--default-resources",
                      "mem_mb=2000", samples=sheet, results=plain_run / "results")
    assert plain.returncode == 0, plain.stderr[-3000:]
    return {"odd": (odd.stdout + odd.stderr, odd.stdout), "plain": (plain.stdout + plain.stderr, plain.stdout)}


def test_a_fixed_set_resources_memory_is_warned_about_while_planning(odd_resources):
    """--set-resources infer:mem_mb=500 gave every retry of a job killed for memory the same 500 MB, without a word;
    an expression of attempt keeps the retries' scaling."""
    said, stdout = odd_resources["odd"]
    assert said.count("set-resources infer:mem_mb=500: every attempt of the job asks for this") == 1
    assert "--memory-mb 500 " in stdout
    said, stdout = odd_resources["plain"]
    assert "set-resources" not in said.replace("--set-resources", "")
    assert "--memory-mb 500 " in stdout


def test_memory_per_cpu_is_warned_about_while_planning(odd_resources):
    """--default-resources mem_mb_per_cpu= (sbatch --mem-per-cpu, which the retries' scaling and the jobs'
    --memory-mb do not follow) was planned without a word."""
    warning = "default-resources mem_mb_per_cpu=2000: memory per CPU makes the SLURM plugin ask for --mem-per-cpu"
    assert odd_resources["odd"][0].count(warning) == 1
    assert "mem_mb_per_cpu" not in odd_resources["plain"][0]


def test_a_set_resources_memory_of_threads_tries_a_case_given_up_with_less_again(tmp_path):
    """--set-resources infer:mem_mb=2000*threads with --config threads=2 gives each job 4000 MB; planning worked the
    expression out with one thread (2000 MB), so a case given up with 3000 MB was kept given up, never tried with
    the more memory its job now has. A --resources cap (3500 MB) is what the jobs start with, and what the case is
    tried again with (the workflow's own call; its in-process checks are test_cohort_settings.py's)."""
    import json

    from medseg.cohort import InferOptions, ResultsFolder, infer_cases, read_samples, write_job_record
    from medseg.synthetic import write_phantom

    write_phantom(tmp_path / "a.nii.gz", None, shape=SHAPE, seed=41)
    sheet = write_sheet(tmp_path, [("a", "a.nii.gz", "")])
    results = tmp_path / "results"
    options = InferOptions(model=MODEL, device="auto", precision="auto")
    write_job_record(results / "jobs" / "batch001.infer.json", infer_cases(read_samples(sheet), results, options))
    status = ResultsFolder(results).status_path("a", "infer")  # as a case whose workers were killed with 3000 MB
    status.write_text(json.dumps({**json.loads(status.read_text()), "outcome": "failed",
                                  "worker_given_up_memory_mb": 3000}))
    # --cores 2: the dry run's jobs get the rule's 2 threads too (a dry run holds them to 1 core otherwise)
    run = snakemake(tmp_path, "-n", "--cores", "2", "--set-resources", "infer:mem_mb=2000*threads", "--resources",
                    "mem_mb=3500", samples=sheet, results=results, threads=2)
    assert run.returncode == 0, run.stderr[-3000:]
    output = run.stdout + run.stderr  # 4000 MB, capped to 3500: more than the 3000 it was given up with
    assert "a given up with less memory than this run's jobs start with (3500 MB): job batch001.infer will run " \
           "again when the workflow runs" in output


def test_a_set_resources_memory_of_threads_is_worked_out_with_the_threads_the_cores_allow(tmp_path):
    """--cores 3 holds a rule of 4 threads to 3, and Snakemake gives each job infer:mem_mb=2000*threads = 6000 MB;
    planning took 4 threads (8000 MB): with --cores 2 (4000 MB), a case given up with 5000 MB was named as tried
    again, its batch voided on every run while the job kept the case given up."""
    import json

    from medseg.cohort import InferOptions, ResultsFolder, infer_cases, read_samples, write_job_record
    from medseg.synthetic import write_phantom

    write_phantom(tmp_path / "a.nii.gz", None, shape=SHAPE, seed=41)
    sheet = write_sheet(tmp_path, [("a", "a.nii.gz", "")])
    results = tmp_path / "results"
    options = InferOptions(model=MODEL, device="auto", precision="auto")
    write_job_record(results / "jobs" / "batch001.infer.json", infer_cases(read_samples(sheet), results, options))
    status = ResultsFolder(results).status_path("a", "infer")  # as a case whose workers were killed with 5000 MB
    status.write_text(json.dumps({**json.loads(status.read_text()), "outcome": "failed",
                                  "worker_given_up_memory_mb": 5000}))
    run = snakemake(tmp_path, "-n", "--cores", "3", "--set-resources", "infer:mem_mb=2000*threads", samples=sheet,
                    results=results, threads=4)
    assert run.returncode == 0, run.stderr[-3000:]
    output = run.stdout + run.stderr  # 3 threads of the 4: 6000 MB, not 8000
    assert "a given up with less memory than this run's jobs start with (6000 MB): job batch001.infer will run " \
           "again when the workflow runs" in output


def test_cpus_per_task_other_than_the_threads_are_warned_about_while_planning(odd_resources):
    """--set-resources infer:cpus_per_task=8 had the SLURM plugin ask for 8 CPUs per job while medseg ran on one
    thread (config threads), planned without a word; evaluate's CPUs matched by --set-threads are not warned of."""
    output = odd_resources["odd"][0]
    assert output.count("set-resources infer:cpus_per_task=8 (infer runs 1 thread): the SLURM plugin asks sbatch "
                        "for these CPUs, but medseg runs each job on its rule's threads") == 1
    assert "evaluate:cpus_per_task=2 (" not in output


def test_a_gpu_model_for_inference_without_device_cuda_is_warned_about_while_planning(odd_resources):
    """--set-resources infer:gpu_model=a100 with device auto: sbatch --gpus=a100:0 and the jobs on the CPU, planned
    without a word."""
    assert odd_resources["odd"][0].count("set-resources infer:gpu_model=a100 with device auto: the inference jobs "
                                         "ask for no GPU (gpu=0; the SLURM plugin passes --gpus=a100:0)") == 1


def test_the_memory_of_scoring_jobs_is_a_setting(cohort, tmp_path):
    """Scoring large volumes (surface distances) can need more than the 2 GB default; the retries scale it."""
    _, sheet = cohort
    run = snakemake(tmp_path, "-n", "-p", samples=sheet, results=tmp_path / "results", evaluate_mem_mb=5000,
                    cases_per_job=10)
    assert run.returncode == 0, run.stderr[-3000:]
    commands = [line for line in run.stdout.splitlines() if "cohort evaluate" in line]
    assert len(commands) == 1 and "--memory-mb 5000 --final-memory-mb 15000 --attempt 1 3 " in commands[0]
    # a whole number written as 3000.0 passes the schema's integer check; the jobs must get 3000 (medseg refused
    # "9000.0" for --final-memory-mb, so every job failed after the dry run had passed)
    run = snakemake(tmp_path, "-n", "-p", samples=sheet, results=tmp_path / "results", evaluate_mem_mb=3000.0,
                    mem_mb=3000.0, cases_per_job=10.0, batch_size=16.0, max_overlays=5.0)
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.splitlines()
    assert any("cohort evaluate" in line and "--memory-mb 3000 --final-memory-mb 9000 " in line for line in lines)
    assert any("cohort infer" in line and "--memory-mb 3000 --final-memory-mb 9000 " in line
               and "--batch-size 16 " in line for line in lines)
    assert any(" report " in line and "--max-overlays 5 " in line for line in lines)


def test_the_report_jobs_memory_follows_the_cohort(cohort, tmp_path):
    """The report job asked 4000 MB whatever the cohort: its memory grows with the largest input (one case's arrays
    are held at once), the cases and the overlays drawn (medseg/cohort/report_memory.py)."""
    _, sheet = cohort

    def report_memory(run):
        assert run.returncode == 0, run.stderr[-3000:]
        block = (run.stdout + run.stderr).split("rule report:")[1].split("\n\n")[0]
        return int(re.search(r"mem_mb=(\d+)", block).group(1))

    # 5 small cases, 3 with a reference: 800 + 1.25 + 1.5 x 5 overlays + 8 B x 36,864 voxels
    assert report_memory(snakemake(tmp_path, "-n", samples=sheet, results=tmp_path / "results")) == 900
    header = nib.Nifti1Header()  # a 512 x 512 x 300 CT, as its header declares it (only headers are read to plan)
    header.set_data_dtype(np.int16)
    header.set_data_shape((512, 512, 300))
    with open(tmp_path / "ct.nii", "wb") as file:  # its voxels zeros on no disk space (a sparse file)
        file.write(header.binaryblock + b"\0" * 4)
        file.truncate(352 + 2 * 512 * 512 * 300)
    large = write_sheet(tmp_path, [("ct", "ct.nii", ""), ("a", str(sheet.parent / "a.nii.gz"), "")])
    # 800 + 0.5 + 1.5 x 2 overlays + 8 B x 78.6 M voxels
    assert report_memory(snakemake(tmp_path, "-n", samples=large, results=tmp_path / "results2")) == 1500


def test_the_batch_jobs_memory_follows_their_largest_input_unless_set(cohort, tmp_path):
    """Every inference job asked for 4000 MB and every scoring job 2000 MB, whatever its volumes: three times what
    a batch of small phantoms takes, and less than a large CT with a model that resamples is charged. Each batch's
    jobs now ask for what its largest input needs (headers only, medseg/cohort/job_memory.py); mem_mb and
    evaluate_mem_mb in the config, and --set-resources, still give every job their own figure."""
    _, sheet = cohort
    header = nib.Nifti1Header()  # a 512 x 512 x 300 CT of 0.7 x 0.7 x 1 mm, as its header declares it
    header.set_data_dtype(np.int16)
    header.set_data_shape((512, 512, 300))
    header.set_zooms((0.7, 0.7, 1.0))
    with open(tmp_path / "ct.nii", "wb") as file:  # its voxels zeros on no disk space (a sparse file)
        file.write(header.binaryblock + b"\0" * 4)
        file.truncate(352 + 2 * 512 * 512 * 300)
    data = sheet.parent
    large = write_sheet(tmp_path, [("a", str(data / "a.nii.gz"), str(data / "a_label.nii.gz")),
                                   ("b", str(data / "b.nii.gz"), ""),
                                   ("ct", "ct.nii", str(data / "a_label.nii.gz")), ("c", str(data / "c.nii.gz"), "")])

    def asked(run):
        assert run.returncode == 0, run.stderr[-3000:]
        jobs = {}
        for block in (run.stdout + run.stderr).split("\n\n"):
            rule = re.search(r"^rule (infer|evaluate):", block, re.M)
            if rule:
                batch = re.search(r"wildcards: batch=(\w+)", block).group(1)
                memory = int(re.search(r"mem_mb=(\d+)", block).group(1))
                command = re.search(r"--memory-mb (\d+) --final-memory-mb (\d+) ", block)
                jobs[rule.group(1), batch] = (memory, int(command.group(1)), int(command.group(2)))
        return jobs

    # batch001 (a, b): 1200 MB + 12 B x 36,864 voxels, and for scoring a's 800 + 32 B a voxel; batch002 (ct, c):
    # phantom keeps the voxel size, 1200 + 12 B x 78.6 M; scoring ct 800 + 32 B x 78.6 M; the last retry 3 times
    assert asked(snakemake(tmp_path, "-n", "-p", samples=large, results=tmp_path / "results", cases_per_job=2)) == {
        ("infer", "batch001"): (1300, 1300, 3900), ("infer", "batch002"): (2200, 2200, 6600),
        ("evaluate", "batch001"): (900, 900, 2700), ("evaluate", "batch002"): (3400, 3400, 10200)}
    # the config's mem_mb wins for inference, a --set-resources for scoring
    assert asked(snakemake(tmp_path, "-n", "-p", "--set-resources", "evaluate:mem_mb=5000*attempt", samples=large,
                           results=tmp_path / "results", cases_per_job=2, mem_mb=3000)) == {
        ("infer", "batch001"): (3000, 3000, 9000), ("infer", "batch002"): (3000, 3000, 9000),
        ("evaluate", "batch001"): (5000, 5000, 2700), ("evaluate", "batch002"): (5000, 5000, 10200)}


def test_a_cluster_preview_says_what_the_sheets_jobs_ask_for_in_all(cohort, tmp_path):
    """Before a submission, the CPU and GPU time a cohort asks a cluster for was the sum, by hand, of every job's
    resources in Snakemake's preview (41 jobs for 200 cases). Planning with a cluster executor says it in one line,
    the same figures as the jobs Snakemake lists; a local run's jobs ask no scheduler, and it says nothing."""
    import importlib.util

    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        pytest.skip("the SLURM executor plugin is not installed (pip install -e '.[workflow]')")
    _, sheet = cohort
    preview = snakemake(tmp_path, "-n", "--profile", str(REPO / "profiles" / "slurm"), "--default-resources",
                        "slurm_account=lab42", "slurm_partition=cpu", "--set-resources", "infer:slurm_partition=gpu",
                        samples=sheet, results=tmp_path / "results", cases_per_job=3, device="cuda", threads=2)
    assert preview.returncode == 0, preview.stderr[-3000:]
    jobs = re.findall(r"^rule (\w+):.*?^\s+resources: (.*?)$", preview.stdout, re.MULTILINE | re.DOTALL)
    listed = [(rule, dict(item.split("=", 1) for item in resources.split(", "))) for rule, resources in jobs
              if rule in ("infer", "evaluate", "report")]
    infer = [int(job["runtime"]) for rule, job in listed if rule == "infer"]
    cpu_minutes = sum(int(job["runtime"]) * (2 if rule == "infer" else 1) for rule, job in listed)
    gb_minutes = sum(int(job["runtime"]) * int(job["mem_mb"]) / 1000 for _, job in listed)
    infer_mb = {job["mem_mb"] for rule, job in listed if rule == "infer"}
    assert len(infer) == 2 and len(infer_mb) == 1 and not preview.stderr.count("Traceback")
    line = next(line for line in (preview.stdout + preview.stderr).splitlines() if "jobs ask the cluster" in line)
    assert line.startswith(f"the sheet's jobs ask the cluster for: 2 infer ({infer[0]} min, {int(infer_mb.pop()):,} "
                           "MB, 2 CPU, 1 GPU each), 2 evaluate (")
    assert f"their run times reserve {cpu_minutes / 60:.1f} CPU h, {sum(infer) / 60:.1f} GPU h and " \
           f"{gb_minutes / 60:.1f} GB h of memory on their first attempts" in line
    # bf16 on the CPU: its jobs' run times planned as emulated (the local run lists them too)
    local = snakemake(tmp_path, "-n", "--cores", "1", samples=sheet, results=tmp_path / "results", cases_per_job=3,
                      precision="bf16", device="cpu")
    assert local.returncode == 0 and "jobs ask the cluster" not in local.stdout + local.stderr
    # a, b, c: 8 min (6 in fp32: test_an_inference_jobs_run_time_is_planned_for_a_null_figure_and_for_bf16_on_the_cpu)
    # each job's block read alone: a pattern across blocks ran from an infer job listed after batch001's to the
    # evaluate job of batch001, whichever order Snakemake listed them in
    blocks = re.split(r"^(?=rule \w+:$)", local.stdout, flags=re.MULTILINE)
    assert [re.search(r"runtime=(\d+)", block).group(1) for block in blocks
            if block.startswith("rule infer:") and re.search(r"^\s+wildcards: batch=batch001$", block, re.MULTILINE)
            ] == ["8"], local.stdout[-3000:]


def test_the_cluster_totals_count_a_set_run_time_and_the_cpus_a_gpu_job_is_given(cohort, tmp_path):
    """`--set-resources infer:runtime=60*attempt` (what docs/cohorts.md advises where time is the risk) left the
    inference jobs out of the hours, and `infer:cpus_per_gpu=4` (profiles/slurm's example) counted 1 CPU where sbatch
    reserves 4: the line's totals fell short of what the preview's jobs ask for. Both count now, as listed."""
    import importlib.util

    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        pytest.skip("the SLURM executor plugin is not installed (pip install -e '.[workflow]')")
    _, sheet = cohort
    preview = snakemake(tmp_path, "-n", "--profile", str(REPO / "profiles" / "slurm"), "--default-resources",
                        "slurm_account=lab42", "slurm_partition=cpu", "--set-resources", "infer:runtime=60*attempt",
                        "infer:cpus_per_gpu=4", samples=sheet, results=tmp_path / "results", cases_per_job=2,
                        device="cuda", minutes_per_case=5)
    assert preview.returncode == 0, preview.stderr[-3000:]
    # the jobs ask for --set-resources' run time, not minutes_per_case's: its old default is not warned about
    assert "the default before run times were planned" not in preview.stdout + preview.stderr
    jobs = re.findall(r"^rule (infer|evaluate|report):.*?^\s+resources: (.*?)$", preview.stdout,
                      re.MULTILINE | re.DOTALL)
    listed = [(rule, dict(item.split("=", 1) for item in resources.split(", "))) for rule, resources in jobs]
    assert sorted({job["runtime"] for rule, job in listed if rule == "infer"}) == ["60"]
    assert {job["cpus_per_gpu"] for rule, job in listed if rule == "infer"} == {"4"}
    cpus = {"infer": 4, "evaluate": 1, "report": 1}
    cpu_minutes = sum(int(job["runtime"]) * cpus[rule] for rule, job in listed)
    # the retries: infer's run time is 60*attempt (60 + 120 + 180), evaluate's the rule's (1 + 2 + 3 times), the
    # report's the profile's one retry (1 + 2 times)
    worst = sum(4 * 360 if rule == "infer" else int(job["runtime"]) * (6 if rule == "evaluate" else 3)
                for rule, job in listed)
    line = next(line for line in (preview.stdout + preview.stderr).splitlines() if "jobs ask the cluster" in line)
    assert line.startswith("the sheet's jobs ask the cluster for: 3 infer (60 min, "), line
    assert ", 4 CPU, 1 GPU each), 3 evaluate (" in line, line
    assert f"their run times reserve {cpu_minutes / 60:.1f} CPU h, 3.0 GPU h and " in line, line
    assert f"{worst / 60:.1f} CPU h, 18.0 GPU h and " in line, line
    assert " GB h were every infer/evaluate job to fail 2 times and the report 1 time (" in line, line


def test_a_retry_after_its_time_limit_asks_for_more_time_and_the_memory_it_had(cohort, tmp_path):
    """A retried job asked for twice the memory and the time whichever ran out. Where its attempt noted that SLURM's
    time limit ended it (medseg/cohort/time_outs.py), the retry asks for twice the time and the memory it had; the
    other batches' retries (killed for memory: nothing noted) for twice both. Snakemake's ``--attempt`` (what a job
    it submits is given) has its preview plan the second attempts."""
    import json

    _, sheet = cohort
    results = tmp_path / "results"
    (results / "jobs").mkdir(parents=True)
    for job in ("batch001.infer", "batch002.evaluate"):
        (results / "jobs" / f"{job}.json.out-of-time").write_text(json.dumps({"attempts": [1]}))

    def planned(*options):
        run = snakemake(tmp_path, "-n", "--cores", "1", *options, samples=sheet, results=results, cases_per_job=3)
        assert run.returncode == 0, run.stderr[-3000:]
        jobs = re.findall(r"^rule (infer|evaluate):.*?^\s+wildcards: batch=(\w+)$\s+resources: (.*?)$", run.stdout,
                          re.MULTILINE | re.DOTALL)
        listed = {(rule, batch): dict(item.split("=", 1) for item in resources.split(", "))
                  for rule, batch, resources in jobs}
        return {job: (int(its["mem_mb"]), int(its["runtime"])) for job, its in listed.items()}

    first, second = planned(), planned("--attempt", "2")
    assert sorted(first) == sorted(second) == [("evaluate", "batch001"), ("evaluate", "batch002"),
                                               ("infer", "batch001"), ("infer", "batch002")]
    kept = {("infer", "batch001"), ("evaluate", "batch002")}
    for job, (memory, minutes) in first.items():
        assert second[job] == (memory if job in kept else 2 * memory, 2 * minutes), (job, first, second)
    # a preview leaves the notes (a run removes the last run's as it starts: its attempts count from 1)
    assert sorted(p.name for p in (results / "jobs").iterdir()) == ["batch001.infer.json.out-of-time",
                                                                      "batch002.evaluate.json.out-of-time"]


def test_a_relative_profile_with_directory_still_says_the_totals(cohort, tmp_path):
    """`snakemake --directory RUN --profile profiles/slurm` from the checkout (a relative profile, read by Snakemake
    before it moves into RUN): planning looked for the profile in RUN, found none, took the run for a local one and
    said no totals. Started from a shell, as a user does."""
    import importlib.util
    import os
    import shlex
    import subprocess
    import sys

    from workflow_runs import MODEL

    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        pytest.skip("the SLURM executor plugin is not installed (pip install -e '.[workflow]')")
    _, sheet = cohort
    # a relative --directory, which leads from $PWD to the run's folder (an absolute one takes no profile from $PWD)
    command = [sys.executable, "-m", "snakemake", "-s", "Snakefile", "--directory", os.path.relpath(tmp_path, REPO),
               "-n", "--profile", "profiles/slurm", "--default-resources", "slurm_account=lab42", "slurm_partition=cpu",
               "--config", f"model={MODEL}", f"samples={sheet}", f"results={tmp_path / 'results'}", "cases_per_job=3"]
    preview = subprocess.run(["bash", "-c", f"cd {shlex.quote(str(REPO))} && exec {shlex.join(command)}"],
                             capture_output=True, text=True, timeout=300)
    assert preview.returncode == 0, preview.stderr[-3000:]
    line = next((line for line in (preview.stdout + preview.stderr).splitlines() if "jobs ask the cluster" in line),
                None)
    assert line is not None and line.endswith("count those that run)"), preview.stderr[-3000:]
    assert "2 infer (" in line and "were every infer/evaluate job to fail 2 times and the report 1 time (" in line


def test_the_worst_case_counts_a_memory_set_resources_fixes_as_the_jobs_ask_for_it(cohort, tmp_path):
    """`--set-resources infer:mem_mb=4000` replaces the rules' memory, which retries scale: every attempt asks for
    4,000 MB (planning warns of it). The worst case counted attempt k at k times the memory, as if the rule's scaling
    still held: 2.3 times the GB hours the retries can ask for. It counts the memory given now (a fixed value, or an
    expression of attempt), as listed."""
    import importlib.util

    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        pytest.skip("the SLURM executor plugin is not installed (pip install -e '.[workflow]')")
    _, sheet = cohort
    preview = snakemake(tmp_path, "-n", "--profile", str(REPO / "profiles" / "slurm"), "--default-resources",
                        "slurm_account=lab42", "slurm_partition=cpu", "--set-resources", "infer:mem_mb=4000",
                        "evaluate:mem_mb=1000*attempt", "report:mem_mb=2000", samples=sheet,
                        results=tmp_path / "results", cases_per_job=2)
    assert preview.returncode == 0, preview.stderr[-3000:]
    jobs = re.findall(r"^rule (infer|evaluate|report):.*?^\s+resources: (.*?)$", preview.stdout,
                      re.MULTILINE | re.DOTALL)
    listed = [(rule, dict(item.split("=", 1) for item in resources.split(", "))) for rule, resources in jobs]
    assert {(rule, job["mem_mb"]) for rule, job in listed} == {("infer", "4000"), ("evaluate", "1000"),
                                                               ("report", "2000")}
    # attempt k: k times the run time (the report's one retry: the profile's), and the memory --set-resources gives it
    memory = {"infer": lambda attempt: 4000, "evaluate": lambda attempt: 1000 * attempt, "report": lambda attempt: 2000}
    worst = sum(int(job["runtime"]) * attempt * memory[rule](attempt) / 1000
                for rule, job in listed for attempt in range(1, (3 if rule == "report" else 4)))
    line = next(line for line in (preview.stdout + preview.stderr).splitlines() if "jobs ask the cluster" in line)
    expected = f" and {worst / 60:.1f} GB h were every infer/evaluate job to fail 2 times and the report 1 time ("
    assert expected in line, (worst / 60, line)


def test_the_worst_case_counts_every_retry_the_profile_gives_the_report_as_set_resources_gives_it(cohort, tmp_path):
    """The run times a --set-resources gives each attempt were worked out for the rules' 3 attempts: a report given
    runtime=90*attempt and --retries 3 (4 attempts) counted its last at 270 min, the third's, where it asks for 360."""
    import importlib.util

    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        pytest.skip("the SLURM executor plugin is not installed (pip install -e '.[workflow]')")
    _, sheet = cohort
    preview = snakemake(tmp_path, "-n", "--profile", str(REPO / "profiles" / "slurm"), "--default-resources",
                        "slurm_account=lab42", "slurm_partition=cpu", "--retries", "3", "--set-resources",
                        "report:runtime=90*attempt", samples=sheet, results=tmp_path / "results", cases_per_job=2)
    assert preview.returncode == 0, preview.stderr[-3000:]
    jobs = re.findall(r"^rule (infer|evaluate|report):.*?^\s+resources: (.*?)$", preview.stdout,
                      re.MULTILINE | re.DOTALL)
    listed = [(rule, dict(item.split("=", 1) for item in resources.split(", "))) for rule, resources in jobs]
    assert [job["runtime"] for rule, job in listed if rule == "report"] == ["90"]
    # infer and evaluate: the rules' 1 + 2 + 3 times; the report: 90 + 180 + 270 + 360
    worst = sum(int(job["runtime"]) * 6 for rule, job in listed if rule != "report") + 900
    line = next(line for line in (preview.stdout + preview.stderr).splitlines() if "jobs ask the cluster" in line)
    assert f"on their first attempts, {worst / 60:.1f} CPU h and " in line, (worst / 60, line)
    assert "were every infer/evaluate job to fail 2 times and the report 3 times (" in line, line


def test_the_worst_case_counts_the_retries_memory_at_most_the_resources_cap(cohort, tmp_path):
    """`--resources mem_mb=1500` caps each job's memory, a retry's too (Snakemake constrains a job's resources by the
    global ones): the worst case counted attempt k at k times the first's memory, past the cap."""
    import importlib.util

    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        pytest.skip("the SLURM executor plugin is not installed (pip install -e '.[workflow]')")
    _, sheet = cohort
    preview = snakemake(tmp_path, "-n", "--profile", str(REPO / "profiles" / "slurm"), "--default-resources",
                        "slurm_account=lab42", "slurm_partition=cpu", "--resources", "mem_mb=1500", samples=sheet,
                        results=tmp_path / "results", cases_per_job=2)
    assert preview.returncode == 0, preview.stderr[-3000:]
    jobs = re.findall(r"^rule (infer|evaluate|report):.*?^\s+resources: (.*?)$", preview.stdout,
                      re.MULTILINE | re.DOTALL)
    listed = [(rule, dict(item.split("=", 1) for item in resources.split(", "))) for rule, resources in jobs]
    assert max(int(job["mem_mb"]) for _, job in listed) <= 1500
    worst = sum(int(job["runtime"]) * attempt * min(int(job["mem_mb"]) * attempt, 1500) / 1000
                for rule, job in listed for attempt in range(1, (3 if rule == "report" else 4)))
    line = next(line for line in (preview.stdout + preview.stderr).splitlines() if "jobs ask the cluster" in line)
    expected = f" and {worst / 60:.1f} GB h were every infer/evaluate job to fail 2 times and the report 1 time ("
    assert expected in line, (worst / 60, line)
