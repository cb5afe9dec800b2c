"""The cohort workflow's settings (medseg.cohort.settings): resource settings and the settings' patterns."""

from __future__ import annotations

from pathlib import Path

import pytest

from medseg.errors import InputError


def test_the_slurm_profiles_placeholders_are_found_in_the_default_resources():
    from medseg.cohort.settings import placeholder_resources

    assert placeholder_resources(["tmpdir=system_tmpdir", "mem_mb=2000", "slurm_account=your_account"]) == (
        "default resources slurm_account=your_account: still the SLURM profile's placeholder; give your cluster's "
        "account and partition on the command line, --default-resources slurm_account=ACCOUNT "
        "slurm_partition=PARTITION (sacctmgr show assoc user=$USER and sinfo list them; this replaces the profile's "
        "default-resources), or in a copy of the profile given to --profile, or sbatch will refuse every job")
    assert placeholder_resources(["slurm_account='your_account'"]) is not None
    assert placeholder_resources(["slurm_account=lab42", "slurm_partition=cpu"]) is None
    assert placeholder_resources([]) is None


def test_a_fixed_set_resources_memory_or_time_is_warned_about():
    """--set-resources infer:mem_mb=500 replaced the rule's memory on every attempt: a job killed for memory was
    submitted three times with 500 MB and its cases given up, where the rule's own memory doubles, then triples."""
    from medseg.cohort.settings import fixed_retry_resources

    class Resource:  # Snakemake's: an expression is evaluated per job (it may use attempt), a number is not
        def __init__(self, value, evaluable=False):
            self._value, self._evaluable = value, evaluable

        def is_evaluable(self):
            return self._evaluable

        @property
        def value(self):
            assert not self._evaluable
            return self._value

    assert fixed_retry_resources({"infer": {"mem_mb": Resource(500)}}) == (
        "set-resources infer:mem_mb=500: every attempt of the job asks for this, so a job killed for memory or time "
        "is retried with the same (the rules' own double, then triple, on a retry); to keep that, give "
        "infer:mem_mb=500*attempt or --config mem_mb=500")
    both = fixed_retry_resources({"infer": {"runtime": 60}, "evaluate": {"mem_mb": Resource(3000)}})
    assert both.startswith("set-resources infer:runtime=60, evaluate:mem_mb=3000: ")
    assert both.endswith("give infer:runtime=60*attempt; evaluate:mem_mb=3000*attempt or --config evaluate_mem_mb=3000")
    # an expression (of attempt), other resources and other rules keep the retries' scaling
    assert fixed_retry_resources({"infer": {"mem_mb": Resource(None, evaluable=True),
                                            "slurm_partition": Resource("gpu")},
                                  "report": {"mem_mb": Resource(8000)}}) is None
    assert fixed_retry_resources({}) is None


def test_memory_per_cpu_is_warned_about():
    """mem_mb_per_cpu in the default or a rule's resources makes the SLURM plugin ask for --mem-per-cpu instead of
    --mem (the README says not to): neither the retries' doubling nor the jobs' --memory-mb follow it, and nothing
    said so while planning."""
    from medseg.cohort.settings import per_cpu_memory

    assert per_cpu_memory(["slurm_account=lab42", "mem_mb_per_cpu=2000"], {}) == (
        "default-resources mem_mb_per_cpu=2000: memory per CPU makes the SLURM plugin ask for --mem-per-cpu instead "
        "of --mem, which neither a retry's doubled memory nor the memory the jobs are told (the rules' mem_mb) "
        "follow; give it as mem_mb (--default-resources mem_mb=..., --config mem_mb=... for inference)")
    both = per_cpu_memory(["mem_mb_per_cpu=2000"], {"infer": {"mem_mb_per_cpu": 4000}, "report": {"runtime": 9}})
    assert both.startswith("default-resources mem_mb_per_cpu=2000, set-resources infer:mem_mb_per_cpu: memory per "
                           "CPU makes")
    assert per_cpu_memory(["mem_mb=2000", "runtime=30"], {"infer": {"mem_mb": 4000, "cpus_per_gpu": 4}}) is None
    assert per_cpu_memory([], {}) is None


def test_cpus_other_than_the_rules_threads_are_warned_about():
    """--set-resources infer:cpus_per_task=8 (or a profile's cpus_per_task, or cpus_per_gpu for GPU jobs) had sbatch
    give each job 8 CPUs while medseg ran on the rule's one thread, without a word."""
    from snakemake.cli import parse_set_resources
    from snakemake.resources import Resources

    from medseg.cohort.settings import cpus_beside_threads, rule_threads

    def overrides(*texts):  # as planning gets them from the command line: Snakemake's Resources per rule
        return {rule: Resources.from_mapping(given) for rule, given in parse_set_resources(list(texts)).items()}

    threads = {"infer": 1, "evaluate": 1}
    assert cpus_beside_threads([], overrides("infer:cpus_per_task=8", "evaluate:cpus_per_task=4"), threads) == (
        "set-resources infer:cpus_per_task=8 (infer runs 1 thread), set-resources evaluate:cpus_per_task=4 "
        "(evaluate runs 1 thread): the SLURM plugin asks sbatch for these CPUs, but medseg runs each job on its "
        "rule's threads, so CPUs are held idle (or threads share fewer CPUs); give the CPUs as threads instead, "
        "--config threads=N for infer and --set-threads evaluate=N for evaluate (the plugin then asks for "
        "--cpus-per-task=N), or leave cpus_per_task and cpus_per_gpu out")
    assert cpus_beside_threads(["slurm_account=lab42", "cpus_per_task=2"], {}, {"infer": 4}) == (
        cpus_beside_threads([], {"infer": {"cpus_per_task": 2}}, {"infer": 4}).replace(
            "set-resources infer:cpus_per_task", "default-resources cpus_per_task"))
    assert "(infer runs 4 threads)" in cpus_beside_threads(["cpus_per_task=2"], {}, {"infer": 4})
    # per GPU: only where the rule's jobs ask for a GPU (the plugin reads it there only)
    assert cpus_beside_threads([], overrides("infer:cpus_per_gpu=4"), threads, {"infer"}).startswith(
        "set-resources infer:cpus_per_gpu=4 (infer runs 1 thread): ")
    assert cpus_beside_threads([], overrides("infer:cpus_per_gpu=4"), threads) is None
    # an expression (of attempt): its first attempt's
    assert cpus_beside_threads([], overrides("infer:cpus_per_task=4*attempt"), threads).startswith(
        "set-resources infer:cpus_per_task=4 (infer runs 1 thread): ")
    # an expression of threads: with the rule's threads, as Snakemake evaluates it for the job (it was evaluated with
    # one thread, and infer:cpus_per_task=threads with --config threads=4, the job asking for its 4 threads, was
    # warned of as 1 CPU)
    assert cpus_beside_threads([], overrides("infer:cpus_per_task=threads"), {"infer": 4, "evaluate": 1}) is None
    assert cpus_beside_threads([], overrides("infer:cpus_per_task=2*threads"), {"infer": 4}).startswith(
        "set-resources infer:cpus_per_task=8 (infer runs 4 threads): ")
    # as many as the threads, cpus_per_task beside cpus_per_gpu (the plugin takes the former), other rules and other
    # resources: nothing to say
    assert cpus_beside_threads([], overrides("infer:cpus_per_task=4"), {"infer": 4}) is None
    assert cpus_beside_threads([], overrides("infer:cpus_per_task=1", "infer:cpus_per_gpu=4"), threads,
                               {"infer"}) is None
    assert cpus_beside_threads(["mem_mb=2000"], overrides("report:cpus_per_task=4", "infer:mem_mb=4000"),
                               threads) is None
    # an expression of the job's input is worked out per job, and replaces the default: nothing said rather than the
    # default's CPUs (which the jobs do not ask for) warned of; one set to null leaves the job without it (the plugin
    # reads cpus_per_gpu for GPU jobs, else the threads), not with the default's
    of_input = overrides("infer:cpus_per_task=max(1, int(input.size_mb))")
    assert cpus_beside_threads(["cpus_per_task=2"], of_input, {"infer": 4}) is None
    assert cpus_beside_threads(["cpus_per_gpu=2"], of_input, {"infer": 4}, {"infer"}) is None
    assert cpus_beside_threads(["cpus_per_task=2"], overrides("infer:cpus_per_gpu=input.size_mb"), {"infer": 4},
                               {"infer"}).startswith("default-resources cpus_per_task=2 (infer runs 4 threads): ")
    cleared = {"infer": Resources.from_mapping({"cpus_per_task": None})}
    assert cpus_beside_threads(["cpus_per_task=2"], cleared, {"infer": 4}) is None
    assert cpus_beside_threads(["cpus_per_task=2", "cpus_per_gpu=8"], cleared, {"infer": 4}, {"infer"}).startswith(
        "default-resources cpus_per_gpu=8 (infer runs 4 threads): ")
    # cpus_per_task=0 the plugin takes as not set (a GPU job then gets --cpus-per-gpu): said nothing of cpus_per_gpu=8
    assert cpus_beside_threads(["cpus_per_gpu=8"], overrides("infer:cpus_per_task=0"), {"infer": 4},
                               {"infer"}).startswith("default-resources cpus_per_gpu=8 (infer runs 4 threads): ")
    assert cpus_beside_threads(["cpus_per_task=0", "cpus_per_gpu=8"], {}, {"infer": 4}, {"infer"}).startswith(
        "default-resources cpus_per_gpu=8 (infer runs 4 threads): ")
    assert cpus_beside_threads(["cpus_per_task=0"], {}, {"infer": 4}) is None
    # --set-threads replaces the Snakefile's threads
    from types import SimpleNamespace

    from snakemake.cli import parse_set_threads

    assert rule_threads(SimpleNamespace(overwrite_threads={"evaluate": 4}), threads) == {"infer": 1, "evaluate": 4}
    assert rule_threads(SimpleNamespace(overwrite_threads=parse_set_threads(["evaluate=2"])), threads) == {
        "infer": 1, "evaluate": 2}
    assert rule_threads(None, {"infer": 2}) == {"infer": 2}


def test_a_gpu_model_that_gives_jobs_other_gpus_than_asked_for_is_warned_about():
    """A profile's default gpu_model had the SLURM plugin ask for --gpus=a100:1 for the scoring and report jobs, which
    use no GPU; a gpu_model for inference with device auto or cpu asked for --gpus=a100:0, and the jobs ran on the
    CPU. Both were planned without a word."""
    from snakemake.cli import parse_set_resources
    from snakemake.resources import Resources

    from medseg.cohort.settings import gpu_model_without_gpu

    def overrides(*texts):  # as planning gets them from the command line: Snakemake's Resources per rule
        return {rule: Resources.from_mapping(given) for rule, given in parse_set_resources(list(texts)).items()}

    no_gpu = ("the inference jobs ask for no GPU (gpu=0; the SLURM plugin passes --gpus=a100:0) and run on the CPU; "
              "give --config device=cuda to run them on the GPU, or leave gpu_model out")
    assert gpu_model_without_gpu([], overrides("infer:gpu_model=a100"), "auto") == (
        f"set-resources infer:gpu_model=a100 with device auto: {no_gpu}")
    every_job = ("default-resources gpu_model=a100: the SLURM plugin asks every job whose rule sets no gpu for one, "
                 "the scoring and report jobs too (--gpus=a100:1 each, which they do not use); give it to inference "
                 "alone, --set-resources infer:gpu_model=a100")
    assert gpu_model_without_gpu(["slurm_account=lab42", "gpu_model=a100"], {}, "cuda") == every_job
    assert gpu_model_without_gpu(["gpu_model='a100'"], overrides("infer:slurm_partition=gpu"), "cpu") == (
        f"{every_job}; with device cpu, {no_gpu}")
    # inference with a GPU model and device cuda (the README's way), or no GPU model: nothing to say
    assert gpu_model_without_gpu([], overrides("infer:gpu_model=a100", "infer:slurm_partition=gpu"), "cuda:1") is None
    assert gpu_model_without_gpu(["slurm_account=lab42"], overrides("infer:slurm_partition=gpu"), "auto") is None
    # an empty GPU model for inference takes the default's away from it, as the plugin reads it (no --gpus): only the
    # default's warning for the other jobs is left (the device's was given too, for --gpus=a100:0 that never came)
    for cleared in (overrides("infer:gpu_model=''"), overrides("infer:gpu_model="),
                    {"infer": Resources.from_mapping({"gpu_model": ""})},
                    {"infer": Resources.from_mapping({"gpu_model": None})}):
        assert gpu_model_without_gpu(["gpu_model=a100"], cleared, "auto") == every_job
        assert gpu_model_without_gpu([], cleared, "cpu") is None
    # a GPU model worked out per job (of its input): nothing said of the inference jobs, rather than the default's
    of_input = overrides("infer:gpu_model='h100' if input.size_mb > 1000 else 'a100'")
    assert gpu_model_without_gpu(["gpu_model=a100"], of_input, "auto") == every_job
    assert gpu_model_without_gpu([], of_input, "auto") is None


def test_resource_settings_are_read_through_snakemakes_public_names():
    """Planning read Snakemake's private ResourceSettings._parsed_overwrite_resources and _parsed_resources. The
    settings as the command line gives them (parsed) and as the Python API does (raw mappings, units to convert) give
    the same memory; a --resources cap and an expression of attempt are followed."""
    from types import SimpleNamespace

    from snakemake.cli import parse_set_resources
    from snakemake.resources import Resources

    from medseg.cohort.settings import first_attempt_memory, resource_settings

    raw = SimpleNamespace(overwrite_resources={"infer": {"mem": "8GB"}, "evaluate": {"mem_mb": 3000}},
                          resources={"mem_mb": 6000})
    overrides, caps, warning = resource_settings(raw)
    assert warning is None
    assert first_attempt_memory("infer", 4000, overrides, caps) == 6000  # 8 GB, capped by --resources mem_mb=6000
    assert first_attempt_memory("evaluate", 2000, overrides, caps) == 3000
    assert first_attempt_memory("report", 4000, overrides, caps) == 4000
    parsed = SimpleNamespace(overwrite_resources=parse_set_resources(["infer:mem=8GB", "evaluate:mem_mb=3000*attempt"]),
                             resources=Resources.from_mapping({}))
    overrides, caps, warning = resource_settings(parsed)
    assert warning is None
    assert first_attempt_memory("infer", 4000, overrides, caps) == 8000
    assert first_attempt_memory("evaluate", 2000, overrides, caps) == 3000  # the first attempt's
    # the private names are not needed: a settings object without them is read the same
    assert not hasattr(parsed, "_parsed_overwrite_resources")


def test_a_set_resources_memory_of_threads_is_worked_out_with_the_rules_threads():
    """--set-resources infer:mem_mb=2000*threads with --config threads=4 had SLURM asked for 8000 MB per job, while
    planning took the jobs to start with 2000 MB (the expression was evaluated with one thread): a case given up
    with 6000 MB was not tried again by a run whose jobs had 8000."""
    from types import SimpleNamespace

    from snakemake.cli import parse_set_resources, parse_set_threads
    from snakemake.resources import Resources

    from medseg.cohort.settings import first_attempt_memory, resource_settings, rule_threads

    settings = SimpleNamespace(overwrite_resources=parse_set_resources(
        ["infer:mem_mb=2000*threads", "evaluate:mem_mb=1000*threads*attempt"]), resources=Resources.from_mapping({}))
    overrides, caps, warning = resource_settings(settings)
    assert warning is None
    assert first_attempt_memory("infer", 4000, overrides, caps, threads=4) == 8000
    assert first_attempt_memory("evaluate", 900, overrides, caps, threads=3) == 3000
    assert first_attempt_memory("infer", 4000, overrides, {"mem_mb": 6000}, threads=4) == 6000  # --resources caps it
    assert first_attempt_memory("report", 900, overrides, caps, threads=4) == 900  # the config's, not an expression
    # the rules' threads: --set-threads in the Snakefile's place, at most --max-threads, as Snakemake holds each job
    threads = {"infer": 4, "evaluate": 1}
    assert rule_threads(SimpleNamespace(overwrite_threads=parse_set_threads(["evaluate=2"]), max_threads=None),
                        threads) == {"infer": 4, "evaluate": 2}
    assert rule_threads(SimpleNamespace(overwrite_threads=parse_set_threads(["evaluate=8"]), max_threads=3),
                        threads) == {"infer": 3, "evaluate": 3}


def test_the_rules_threads_are_held_to_the_runs_cores_as_snakemake_holds_each_job():
    """A local run with --cores 2 (profiles/local) runs a rule of 4 threads on 2 and evaluates infer:mem_mb=2000*threads
    to 4000 MB; planning took 4 threads (8000 MB), so a case given up with 6000 MB had its batch voided and run again
    on every run, the job (4000 MB) keeping it given up. A dry run's --cores 1 is Snakemake's stand-in, not followed."""
    from types import SimpleNamespace

    from snakemake.cli import parse_set_threads

    from medseg.cohort.settings import rule_threads

    threads = {"infer": 4, "evaluate": 1}
    local = SimpleNamespace(overwrite_threads={}, max_threads=None, cores=2)
    assert rule_threads(local, threads) == {"infer": 2, "evaluate": 1}
    assert rule_threads(local, threads, preview=True) == {"infer": 2, "evaluate": 1}  # --cores 2 given to the dry run
    assert rule_threads(SimpleNamespace(overwrite_threads=parse_set_threads(["evaluate=8"]), max_threads=3, cores=2),
                        threads) == {"infer": 2, "evaluate": 2}
    one = SimpleNamespace(overwrite_threads={}, max_threads=None, cores=1)
    assert rule_threads(one, threads) == {"infer": 1, "evaluate": 1}  # a run on one core
    assert rule_threads(one, threads, preview=True) == threads  # a dry run without --cores
    assert rule_threads(SimpleNamespace(overwrite_threads={}, max_threads=None, cores=None), threads) == threads


def test_resource_settings_renamed_by_a_snakemake_upgrade_are_a_warning_not_a_traceback():
    """A Snakemake whose settings name --set-resources otherwise: planning went on with a warning that the memory
    checks are skipped; the jobs keep the config's memory."""
    from types import SimpleNamespace

    from medseg.cohort.settings import first_attempt_memory, resource_settings

    for settings in (SimpleNamespace(set_resources={}, global_resources={}), None):
        overrides, caps, warning = resource_settings(settings)
        assert (overrides, caps) == ({}, {})
        assert warning.startswith("cannot read Snakemake's --set-resources and --resources (AttributeError: ")
        assert warning.endswith("the planning checks of the jobs' memory are skipped (fixed retry memory, memory per "
                                "CPU, cases given up with less memory than this run's jobs start with)")
        assert first_attempt_memory("infer", 4000, overrides, caps) == 4000


def test_a_setting_with_a_final_line_break_is_refused_by_its_pattern():
    """JSON Schema's pattern is searched with Python's re, where $ matches before a final line break: device
    'cpu\n' (a YAML block scalar, a quoted "cpu\n") passed, and the line break split every inference job's shell
    command in two, so each job failed three times ("--precision: command not found")."""
    from medseg.cohort.settings import check_config

    schema = Path(__file__).resolve().parents[1] / "configs" / "schemas" / "config.schema.yaml"
    config = {"samples": "samples.tsv", "model": "phantom", "results": "results", "device": "cpu\n"}
    with pytest.raises(InputError) as caught:
        check_config(config, schema)
    assert str(caught.value) == "config device: 'cpu\\n' does not match '^(auto|cpu|mps|cuda(:[0-9]+)?)$'"
    config["device"] = "cuda:1"
    check_config(config, schema)


def test_where_a_setting_comes_from_is_the_last_source_that_sets_it(tmp_path):
    """--config wins over every --configfile, a later --configfile over an earlier, and any of them over the
    workflow's own configs/cohort.yaml, as Snakemake takes them."""
    from medseg.cohort.settings import config_source

    first, second, own = tmp_path / "first.yaml", tmp_path / "second.yaml", tmp_path / "cohort.yaml"
    first.write_text("minutes_per_case: 5\n")
    second.write_text("cases_per_job: 3\n")
    own.write_text("minutes_per_case: null\n")
    assert config_source("minutes_per_case", {"minutes_per_case": 5}, [first], own) == "--config minutes_per_case=5"
    assert config_source("minutes_per_case", {}, [first, second], own) == str(first)
    assert config_source("minutes_per_case", {}, [second, tmp_path / "gone.yaml"], own) == str(own)


def test_the_old_default_minutes_per_case_is_named_with_what_would_be_planned():
    from medseg.cohort.settings import old_default_runtime

    said = old_default_runtime(5, "/data/old.yaml", [260], [9])
    assert said == ("/data/old.yaml: minutes_per_case: 5: the default before run times were planned from the cases' "
                    "voxels; its inference job asks for 260 min (10 + 5 a case; twice and three times that on a "
                    "retry), where planned from their voxels it would ask for 9 min: set minutes_per_case: null (or "
                    "leave it out) to have the run time planned, or give a figure of your own other than 5")
    assert old_default_runtime(5.0, "--config minutes_per_case=5.0", [60, 35], [6, 6]).startswith(
        "--config minutes_per_case=5.0: the default before run times were planned from the cases' voxels; its 2 "
        "inference jobs ask for 35-60 min")
    assert [old_default_runtime(value, "x", [60], [6]) for value in (None, 0.2, 4, True, "5")] == [None] * 5


def test_a_run_time_given_with_set_resources_is_told_from_the_rules_own():
    """--set-resources infer:runtime=30 replaces the run time minutes_per_case plans: its old-default warning named
    minutes that no job asked for."""
    from snakemake.cli import parse_set_resources
    from snakemake.resources import Resources

    from medseg.cohort.settings import runtime_overridden

    def overrides(*texts):  # as planning gets them from the command line: Snakemake's Resources per rule
        return {rule: Resources.from_mapping(given) for rule, given in parse_set_resources(list(texts)).items()}

    assert runtime_overridden(overrides("infer:runtime=30")) is True
    assert runtime_overridden(overrides("infer:runtime=30*attempt")) is True
    assert runtime_overridden(overrides("infer:mem_mb=4000", "evaluate:runtime=30")) is False
    assert runtime_overridden(overrides("evaluate:runtime=30"), "evaluate") is True
    assert runtime_overridden({}) is False


def test_the_cpus_and_run_times_a_cluster_job_asks_for_are_worked_out_as_the_plugin_reads_them():
    """The cluster totals counted each job's threads as its CPUs and left a --set-resources run time out: sbatch is
    asked for cpus_per_task (else, for a GPU job, cpus_per_gpu per GPU, else the threads), and runtime=60*attempt
    gives each attempt 60, 120 and 180 minutes."""
    from types import SimpleNamespace

    from snakemake.cli import parse_set_resources
    from snakemake.resources import Resources

    from medseg.cohort.settings import job_cpus, resource_settings, set_runtime_minutes

    settings = SimpleNamespace(overwrite_resources=parse_set_resources(
        ["infer:cpus_per_gpu=4", "infer:runtime=60*attempt", "evaluate:runtime=2h", "report:cpus_per_task=0"]),
        resources=Resources.from_mapping({}))
    overrides, _, warning = resource_settings(settings)
    assert warning is None
    assert job_cpus([], overrides, "infer", 1, gpus=1) == 4
    assert job_cpus([], overrides, "infer", 2, gpus=0) == 2  # cpus_per_gpu: read for a GPU job only
    assert job_cpus(["cpus_per_task=3"], overrides, "infer", 1, gpus=1) == 3  # cpus_per_task first
    assert job_cpus(["cpus_per_task=3"], overrides, "evaluate", 1) == 3  # the default resources'
    assert job_cpus(["cpus_per_task=3"], overrides, "report", 1) == 1  # 0: not set, the threads
    assert set_runtime_minutes(overrides, "infer", attempts=3) == (60, 120, 180)
    assert set_runtime_minutes(overrides, "evaluate", attempts=2) == (120, 120)
    assert set_runtime_minutes(overrides, "report") is None  # none given


def test_the_memory_set_resources_gives_each_attempt_is_worked_out_as_the_jobs_ask_for_it():
    """A fixed --set-resources mem_mb is the same on every attempt (the rule's retries no longer scale it), an
    expression of attempt is evaluated for each, --resources mem_mb caps each, and an expression of the job's input
    is not known before the jobs exist."""
    from types import SimpleNamespace

    from snakemake.cli import parse_set_resources
    from snakemake.resources import Resources

    from medseg.cohort.settings import resource_settings, set_memory_mb

    settings = SimpleNamespace(overwrite_resources=parse_set_resources(
        ["infer:mem_mb=4000", "evaluate:mem_mb=1000*attempt", "report:mem_mb=lambda wildcards, input: 5"]),
        resources=Resources.from_mapping({"mem_mb": 2500}))
    overrides, caps, _ = resource_settings(settings)
    assert set_memory_mb(overrides, "infer", {}, attempts=3) == (4000, 4000, 4000)
    assert set_memory_mb(overrides, "evaluate", {}, attempts=3) == (1000, 2000, 3000)
    assert set_memory_mb(overrides, "evaluate", caps, attempts=3) == (1000, 2000, 2500)
    assert set_memory_mb(overrides, "report", {}, attempts=2) is None
    assert set_memory_mb({}, "infer", {}, attempts=3) is None  # none given: the rule's own, which retries scale


@pytest.mark.parametrize(("value", "shown"), [("liver", "'liver'"), (True, "true"), (3, "3")])
def test_a_choice_that_may_be_null_lists_its_choices_in_yamls_words(value, shown):
    """The config's ct_window takes a window's name or null (the model's window): a wrong one was refused with
    Python's list, "is not one of ['soft-tissue', 'bone', 'lung', 'brain', None]", naming a None that the YAML file
    cannot hold (``None`` there is the text 'None'). The choices read as the file writes them."""
    import yaml

    from medseg.cohort.settings import check_config

    repo = Path(__file__).resolve().parents[1]
    config = yaml.safe_load((repo / "configs" / "cohort.yaml").read_text()) | {"ct_window": value}
    with pytest.raises(InputError) as refused:
        check_config(config, repo / "configs" / "schemas" / "config.schema.yaml")
    assert str(refused.value) == f"config ct_window: {shown} is not one of soft-tissue, bone, lung, brain, null"


def test_a_bad_setting_names_where_it_was_set(tmp_path):
    """A cohort's settings come from the workflow's configs/cohort.yaml, each --configfile and --config: the message
    named only the key, so a user with a bad value in one of three places had to find it. With ``source`` (the
    Snakefile passes :func:`config_source`) it names the file or the --config setting; a line break in a --config
    value stays escaped on the one line."""
    from medseg.cohort.settings import check_config, config_source

    schema = Path(__file__).resolve().parents[1] / "configs" / "schemas" / "config.schema.yaml"
    own, mine = tmp_path / "cohort.yaml", tmp_path / "mine.yaml"
    own.write_text("cases_per_job: 10\n")
    mine.write_text("cases_per_job: 0\n")
    base = {"samples": "samples.tsv", "model": "phantom", "results": "results"}

    def refused(config, command_line):
        with pytest.raises(InputError) as caught:
            check_config(config, schema, lambda key: config_source(key, command_line, [mine], own))
        return str(caught.value)

    assert refused({**base, "cases_per_job": 0}, {}) == (
        f"config cases_per_job: 0 is less than the minimum of 1 (set in {mine})")
    assert refused({**base, "cases_per_job": 0}, {"cases_per_job": 0}) == (
        "config cases_per_job: 0 is less than the minimum of 1 (set by --config cases_per_job=0)")
    assert refused({**base, "colour": "red"}, {}).endswith(
        f"(set where this workflow cannot tell: not in {own}, {mine} or --config)")
    assert refused({**base, "dice_threshold": float("nan")}, {"dice_threshold": "nan"}).endswith(
        "(set by --config dice_threshold=nan)")
    assert refused({**base, "device": "cpu\n"}, {"device": "cpu\n"}).endswith("(set by --config device=cpu\\n)")
    with pytest.raises(InputError) as caught:  # without a source, the key alone as before
        check_config({**base, "cases_per_job": 0}, schema)
    assert str(caught.value) == "config cases_per_job: 0 is less than the minimum of 1"


def test_a_setting_a_profiles_config_gave_names_the_profile_file(tmp_path):
    """A profile's ``config:`` reaches the workflow as Snakemake's --config settings: a refused one was named
    "(set by --config cases_per_job=0)", which the user never typed. With the profile file that gave them it is
    named as the profile's config:, and the old minutes_per_case warning names it the same way."""
    from medseg.cohort.settings import check_config, config_source, old_default_runtime

    schema = Path(__file__).resolve().parents[1] / "configs" / "schemas" / "config.schema.yaml"
    own, profile = tmp_path / "cohort.yaml", tmp_path / "lab" / "config.yaml"
    own.write_text("cases_per_job: 10\n")
    config = {"samples": "samples.tsv", "model": "phantom", "results": "results", "cases_per_job": 0}
    with pytest.raises(InputError) as caught:
        check_config(config, schema, lambda key: config_source(key, {"cases_per_job": 0}, [], own, profile))
    assert str(caught.value) == (
        f"config cases_per_job: 0 is less than the minimum of 1 (set by config: cases_per_job=0 in profile {profile})")
    source = config_source("minutes_per_case", {"minutes_per_case": 5}, [], own, profile)
    assert old_default_runtime(5, source, [60], [6]).startswith(
        f"config: minutes_per_case=5 in profile {profile}: the default before run times were planned")
    # a key the profile's config does not give: the file that sets it, as before
    assert config_source("cases_per_job", {"device": "cpu"}, [], own, profile) == str(own)


def test_a_key_found_in_no_file_the_workflow_knows_is_not_said_to_be_in_its_own(tmp_path):
    """A refused key that none of the files the workflow read holds now (nor --config) was named as set in the
    workflow's own configs/cohort.yaml, which does not hold it: what the workflow can tell is said instead."""
    from medseg.cohort.settings import config_source, old_default_runtime

    own, mine = tmp_path / "cohort.yaml", tmp_path / "mine.yaml"
    own.write_text("cases_per_job: 10\nminutes_per_case: null\n")
    mine.write_text("device: cpu\n")
    assert config_source("colour", {}, [mine], own) == f"not in {own}, {mine} or --config"
    assert config_source("cases_per_job", {}, [mine], own) == str(own)
    assert config_source("colour", {}, [mine, tmp_path / "gone.yaml"], own) == (
        f"not in {own}, {mine} or --config ({tmp_path / 'gone.yaml'} cannot be read now)")
    assert old_default_runtime(5, f"not in {own} or --config", [60], [6]).startswith(
        f"minutes_per_case: 5 (set where this workflow cannot tell: not in {own} or --config): the default before")


def test_a_key_yaml_reads_as_no_text_is_named_in_the_file_that_set_it(tmp_path):
    """A config file's ``yes:`` (or ``on:``, ``1:``) is a key YAML reads as True (or 1), not as text: the message
    named the workflow's own configs/cohort.yaml, which does not hold it, as where it was set, as the key was looked
    up as the text 'True'."""
    import yaml

    from medseg.cohort.settings import check_config, config_source

    schema = Path(__file__).resolve().parents[1] / "configs" / "schemas" / "config.schema.yaml"
    own, mine = tmp_path / "cohort.yaml", tmp_path / "mine.yaml"
    mine.write_text("yes: 3\n")
    config = {"samples": "samples.tsv", "model": "phantom", "results": "results", **yaml.safe_load(mine.read_text())}
    with pytest.raises(InputError) as caught:
        check_config(config, schema, lambda key: config_source(key, {}, [mine], own))
    assert str(caught.value).startswith("config: unknown key True;")
    assert str(caught.value).endswith(f"(set in {mine})")


def test_a_results_folder_with_braces_or_angle_brackets_is_refused_in_one_line(tmp_path):
    """Snakemake reads a brace in a path as a wildcard and <name> as a path variable: such a results folder is refused
    naming the characters, before anything is made (test_workflow_planning.py runs it through Snakemake)."""
    from medseg.cohort.settings import check_results_folder

    for odd, shown in (("o{u}t", "'{' '}'"), ("o<u>t", "'<' '>'")):
        with pytest.raises(InputError) as caught:
            check_results_folder(tmp_path / odd)
        assert str(caught.value) == (
            f"{tmp_path / odd}: the results folder (config 'results') has {shown} in its path, which Snakemake "
            "reads as a wildcard or path variable; choose a folder without them")
        assert not (tmp_path / odd).exists()
    check_results_folder(tmp_path / "out")  # a plain name is taken
