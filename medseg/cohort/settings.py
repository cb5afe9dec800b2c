"""The cohort workflow's settings (``configs/cohort.yaml`` and ``--config``), checked before Snakemake's own
validation so that a typo is one line with a suggestion rather than the schema printed whole."""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from medseg.errors import InputError
from medseg.json_schema import schema_validator
from medseg.numbers import counted
from medseg.one_line import escaped_line

__all__ = ["OLD_MINUTES_PER_CASE", "check_config", "check_results_folder", "config_source", "cpus_beside_threads",
           "first_attempt_memory", "fixed_retry_resources", "gpu_model_without_gpu", "job_cpus",
           "old_default_runtime", "pattern_characters", "per_cpu_memory", "placeholder_resources",
           "resource_settings", "rule_threads", "runtime_overridden", "scaled_memory_mb", "set_memory_mb",
           "set_runtime_minutes"]

# what profiles/slurm/config.yaml holds until a user sets their cluster's values (sbatch refuses them)
SLURM_PLACEHOLDERS = {"slurm_account": "your_account"}
# minutes_per_case's default before the inference jobs' run time was planned from their cases' voxels: every job asked
# 10 min + 5 a case (260 min for 50 hippocampus crops, planned now at 9)
OLD_MINUTES_PER_CASE = 5
# the resources the workflow's retried jobs ask more of (twice, then three times), and the setting that sets each
RETRY_SCALED = {("infer", "mem_mb"): "mem_mb", ("infer", "runtime"): None,
                ("evaluate", "mem_mb"): "evaluate_mem_mb", ("evaluate", "runtime"): None}


def check_config(config: dict, schema_path: Path | str, source: Callable[[object], str] | None = None) -> None:
    """Raise :class:`InputError` naming the first unknown key (with the closest known one) or bad value, and, with
    ``source`` (a key's :func:`config_source`), where that key was set: a config file's path, ``--config KEY=VALUE``
    or a profile's ``config:`` (a cohort's settings come from several places, and the message named only the key). A
    whole number written as a float (``batch_size=16.0``), which the schema's ``integer`` accepts, is made an int in
    ``config``: the commands the jobs run refuse "16.0", so every job failed after a passing dry run."""
    try:
        _check_config(config, schema_path)
    except InputError as error:
        key = getattr(error, "config_key", None)
        if source is None or key is None:
            raise
        raise InputError(f"{error} ({_set_where(source(key))})") from None


def _set_where(where: str) -> str:
    """``config_source``'s answer in a message: ``set by --config device=cpu``, ``set by config: device=cpu in profile
    /path/config.yaml``, ``set in /path/cohort.yaml`` or ``set where this workflow cannot tell: not in ...``."""
    if where.startswith("not in "):
        return escaped_line(f"set where this workflow cannot tell: {where}")
    return escaped_line(f"set by {where}" if _set_by_option(where) else f"set in {where}")


def _keyed(message: str, key: object) -> InputError:
    error = InputError(message)
    # check_config's source names where it was set: the key as read, as a YAML file's `yes:` is True, not 'True'
    error.config_key = key  # type: ignore[attr-defined]
    return error


def _check_config(config: dict, schema_path: Path | str) -> None:
    import yaml

    schema = yaml.safe_load(Path(schema_path).read_text())
    known = list(schema.get("properties", {}))
    for key in config:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise _keyed(f"config: unknown key {key!r}{hint}; the keys are {', '.join(known)}", key)
    kinds = {key: spec.get("type") if isinstance(spec.get("type"), list) else [spec.get("type")]
             for key, spec in schema.get("properties", {}).items()}
    # a choice among names that may be null (ct_window: its enum holds None and none of these words)
    nullable_choices = {key for key, spec in schema.get("properties", {}).items()
                        if None in (spec.get("enum") or []) and not {"null", "none", "~"} & {
                            str(choice).lower() for choice in spec["enum"] if choice is not None}}
    for key, types in kinds.items():
        # Snakemake passes --config overlap=null as the text 'null': the YAML file's null, given on the command line
        if (("null" in types and "string" not in types) or key in nullable_choices) and str(
                config.get(key)).lower() in ("null", "none", "~"):
            config[key] = None
    for key, types in kinds.items():  # `--config results=` (nothing after it) reaches here as None
        if key in config and config[key] is None and "null" not in types and None not in types:
            wanted = " or ".join(f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}" for kind in types)
            raise _keyed(f"config {key}: no value given ({key}= with nothing after it, or null); it takes "
                         f"{wanted}", key)
    for key, value in config.items():  # NaN passes every bound of the schema: dice_threshold=nan crashed the report
        if isinstance(value, float) and not math.isfinite(value):
            raise _keyed(f"config {key}: {value} is not a finite number", key)
    # patterns end where ECMA-262's do: device 'cpu\n' passed, and its line break split each job's shell command
    errors = sorted(schema_validator(schema).iter_errors(config), key=lambda e: [str(p) for p in e.path])
    if errors:
        error = errors[0]
        where = ".".join(str(p) for p in error.path)
        # a choice in the words of the YAML file (null, true), not Python's list of them ([..., None]: the file's None
        # is the text 'None')
        message = " ".join(error.message.split())
        if error.validator == "enum":
            choices = ", ".join(map(_yaml_word, error.validator_value))
            message = f"{_yaml_word(error.instance, quoted=True)} is not one of {choices}"

        if not error.path:
            raise InputError(f"config: {message}")
        raise _keyed(f"config {where}: {message}", error.path[0])
    for key, types in kinds.items():
        if "integer" in types and isinstance(config.get(key), float) and config[key].is_integer():
            config[key] = int(config[key])


def _yaml_word(value, quoted: bool = False) -> str:
    """A config value as the YAML file writes it: ``null``, ``true``, a number; text quoted (``'liver'``) where it is
    the value given, bare where it is a choice (see :func:`check_config`)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value) if quoted else value
    return str(value) if isinstance(value, (int, float)) else repr(value)


def check_results_folder(results: Path | str) -> None:
    """A results path that exists as something other than a folder is refused in one line; so is one that Snakemake
    would read as a pattern (a brace starts a wildcard, <name> a path variable), which stopped the run with a
    Snakemake error about wildcards."""
    path = Path(results)
    odd = pattern_characters(path)
    if odd:
        raise InputError(f"{path}: the results folder (config 'results') has {' '.join(repr(c) for c in odd)} in its "
                         "path, which Snakemake reads as a wildcard or path variable; choose a folder without them")
    if path.exists() and not path.is_dir():
        raise InputError(f"{path}: the results folder (config 'results') is a file; name a folder")
    annexed = _annexed_files(path)
    if annexed:  # each job that rewrote one failed on it, retries and all, one file named at a time
        import shlex

        shown = ", ".join(os.path.relpath(p, path) for p in annexed[:3]) + (", ..." if len(annexed) > 3 else "")
        raise InputError(f"{path}: the results folder holds {counted(len(annexed), 'annexed file')} of a DataLad / "
                         f"git-annex dataset (links into its read-only store, as datalad save leaves them: {shown}), "
                         f"which a run replaces; unlock them first (datalad unlock {shlex.quote(os.fspath(path))}, or "
                         "git annex unlock), or run the workflow with datalad run --output on the results folder")


def _annexed_files(folder: Path) -> list[Path]:
    """The files under ``folder`` that are locked files of a DataLad / git-annex dataset (links into its store)."""
    from medseg.io.files import is_annex_link

    found = []
    for root, folders, names in os.walk(folder):
        folders[:] = [name for name in folders if name != ".git"]
        found += [Path(root, name) for name in names if is_annex_link(Path(root, name))]
    return sorted(found)


def pattern_characters(path: Path | str) -> list[str]:
    """The characters of ``path`` that Snakemake reads as a pattern rather than as themselves: a brace starts a
    wildcard, <name> is a path variable."""
    return sorted({c for c in str(path) if c in "{}<>"})


def placeholder_resources(default_resources: Sequence[str]) -> str | None:
    """The warning for a profile's default resources (Snakemake's ``NAME=VALUE`` texts) that still hold the shipped
    SLURM profile's placeholders: a dry run planned them without a word, and every job was then refused by sbatch.
    It names the ways to set them that leave the checkout as it is (the command line, a copy of the profile): an
    edited profile in a shared checkout is a local change to a tracked file, in the way of every later update.
    None when none is left."""
    left = [f"{name}={value}" for name, value in _named_values(default_resources).items()
            if SLURM_PLACEHOLDERS.get(name) == _unquoted(value)]
    if not left:
        return None
    return (f"default resources {', '.join(left)}: still the SLURM profile's placeholder; give your cluster's account "
            "and partition on the command line, --default-resources slurm_account=ACCOUNT slurm_partition=PARTITION "
            "(sacctmgr show assoc user=$USER and sinfo list them; this replaces the profile's default-resources), or "
            "in a copy of the profile given to --profile, or sbatch will refuse every job")


def fixed_retry_resources(overrides: Mapping[str, Mapping[str, object]]) -> str | None:
    """The warning for ``--set-resources`` (or a profile's ``set-resources``) that gives ``infer`` or ``evaluate`` a
    fixed memory or run time: it replaces the rule's own, which a retry doubles, then triples, so a job killed for
    memory or time was submitted again with as much, twice, and its cases given up. ``overrides`` maps each rule to
    its resources (numbers, or Snakemake's ``Resource``: one still to be evaluated depends on ``attempt``). None when
    none is fixed."""
    fixed = []
    for (rule, name), setting in RETRY_SCALED.items():
        value = _fixed(overrides.get(rule, {}).get(name))  # an expression (of attempt) is evaluated per job
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            fixed.append((f"{rule}:{name}={value:g}", rule, name, value, setting))
    if not fixed:
        return None
    alternatives = "; ".join(f"{rule}:{name}={value:g}*attempt"
                             + (f" or --config {setting}={value:g}" if setting else "")
                             for _, rule, name, value, setting in fixed)
    return (f"set-resources {', '.join(text for text, *_ in fixed)}: every attempt of the job asks for this, so a job "
            "killed for memory or time is retried with the same (the rules' own double, then triple, on a retry); "
            f"to keep that, give {alternatives}")


def per_cpu_memory(default_resources: Sequence[str], overrides: Mapping[str, Mapping[str, object]]) -> str | None:
    """The warning for memory given per CPU (``mem_mb_per_cpu``) in a profile's or the command line's default
    resources (``NAME=VALUE`` texts) or ``set-resources`` (rule → resources): the SLURM plugin then asks for
    ``--mem-per-cpu`` instead of ``--mem``, which neither a retry's doubled memory nor the memory the jobs are told
    (``--memory-mb``: the rule's ``mem_mb``) follow. It was planned and run without a word. None when none is."""
    given = [f"default-resources {name}={value}" for name, value in _named_values(default_resources).items()
             if name == "mem_mb_per_cpu"]
    given += [f"set-resources {rule}:mem_mb_per_cpu" for rule, resources in overrides.items()
              if "mem_mb_per_cpu" in resources]
    if not given:
        return None
    return (f"{', '.join(given)}: memory per CPU makes the SLURM plugin ask for --mem-per-cpu instead of --mem, which "
            "neither a retry's doubled memory nor the memory the jobs are told (the rules' mem_mb) follow; give it as "
            "mem_mb (--default-resources mem_mb=..., --config mem_mb=... for inference)")


def _named_values(texts: Sequence[str]) -> dict[str, str]:
    """Snakemake's ``NAME=VALUE`` texts (the default resources) as name → value, the spaces around each taken off;
    the last of a name counts, as in Snakemake's own."""
    named = {}
    for text in map(str, texts):
        name, _, value = text.partition("=")
        named[name.strip()] = value.strip()
    return named


def _unquoted(value: str) -> str:
    """A ``NAME=VALUE`` text's value without the quotes that make it a string (``gpu_model='a100'``)."""
    return value.strip().strip("'\"")


def _fixed(value: object) -> object:
    """A resource's value where it is given as one, None where Snakemake's ``Resource`` holds an expression still to
    be evaluated per job (of ``attempt``, ``threads`` or the job's input); a plain value as it is."""
    if hasattr(value, "is_evaluable"):
        return None if value.is_evaluable() else value.value
    return value


def _whole_number(value: object) -> int | None:
    """A resource's value as a whole number: a number or a ``NAME=VALUE`` text's value; None for anything else."""
    if isinstance(value, str):
        try:
            value = int(_unquoted(value))
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


# what _rule_resource gives for a resource that set-resources leaves out, and for one it cannot work out
_NOT_GIVEN, _NOT_KNOWN = object(), object()


def _rule_resource(overrides: Mapping[str, Mapping[str, object]], rule: str, name: str, threads: int = 1,
                   attempt: int = 1) -> object:
    """The value ``set-resources RULE:NAME=`` gives a rule's ``attempt`` (``overrides``: rule → resources, numbers
    or Snakemake's ``Resource``, which holds a text or an expression as one to evaluate, here with the rule's
    ``threads``, as Snakemake evaluates it for the job); ``_NOT_GIVEN`` where none is given, ``_NOT_KNOWN`` where it
    cannot be worked out before the jobs exist (an expression of the job's input)."""
    import asyncio

    given = overrides.get(rule, {})
    if name not in given:  # Snakemake's Resources: get() gives an unset Resource, not None, for a name not there
        return _NOT_GIVEN
    value = given[name]
    try:
        if hasattr(value, "evaluate"):
            value = value.evaluate(wildcards={}, input=[], attempt=attempt, threads=threads, rulename=rule,
                                   async_run=asyncio.run).value
    except Exception:  # an expression of the job's input, or Snakemake's signature changed: not known here
        return _NOT_KNOWN
    return value


def cpus_beside_threads(default_resources: Sequence[str], overrides: Mapping[str, Mapping[str, object]],
                        threads: Mapping[str, int], gpu_rules: frozenset[str] | set[str] = frozenset()) -> str | None:
    """The warning for CPUs given to the SLURM jobs as ``cpus_per_task`` (or, for a rule in ``gpu_rules``, whose
    jobs ask for a GPU, ``cpus_per_gpu``) in the default resources (``NAME=VALUE`` texts) or ``set-resources`` (rule
    → resources) that differ from the threads the rule's command runs on (``threads``: rule → its threads, the
    rules that pass ``--threads`` to medseg). The plugin then asks sbatch for those CPUs, while medseg runs on the
    rule's threads: CPUs held idle (or, fewer, threads sharing them). It was planned without a word. None when
    none differs, and for a rule whose ``set-resources`` value cannot be worked out before the jobs exist (an
    expression of the job's input): the default it replaces was warned of, though the jobs do not ask for it."""
    defaults = _named_values(default_resources)
    given = []
    for rule, rule_threads in threads.items():
        for name in ("cpus_per_task", "cpus_per_gpu"):
            if name == "cpus_per_gpu" and rule not in gpu_rules:
                continue  # the plugin reads it for jobs that ask for a GPU only
            source, value = f"set-resources {rule}:{name}", _rule_resource(overrides, rule, name, rule_threads)
            if value is _NOT_KNOWN:
                break  # worked out for each job: nothing said rather than a guess
            if value is _NOT_GIVEN:
                source, value = f"default-resources {name}", defaults.get(name)
            if value is None or _whole_number(value) == 0:  # none given, set to null (the job leaves it out) or 0,
                continue  # which the plugin takes as not set: it reads the next (cpus_per_gpu), else the threads
            cpus = _whole_number(value)
            if cpus is not None and cpus > 0 and cpus != rule_threads:
                given.append(f"{source}={cpus} ({rule} runs {rule_threads} thread{'s' * (rule_threads != 1)})")
            break  # cpus_per_task given: the plugin ignores cpus_per_gpu
    if not given:
        return None
    return (f"{', '.join(given)}: the SLURM plugin asks sbatch for these CPUs, but medseg runs each job on its rule's "
            "threads, so CPUs are held idle (or threads share fewer CPUs); give the CPUs as threads instead, "
            "--config threads=N for infer and --set-threads evaluate=N for evaluate (the plugin then asks for "
            "--cpus-per-task=N), or leave cpus_per_task and cpus_per_gpu out")


def gpu_model_without_gpu(default_resources: Sequence[str], overrides: Mapping[str, Mapping[str, object]],
                          device: str) -> str | None:
    """The warning for a ``gpu_model`` that gives SLURM jobs other GPUs than the workflow asks for: in the default
    resources (``NAME=VALUE`` texts), the plugin asks for ``--gpus=MODEL:1`` for every job whose rule sets no
    ``gpu`` (scoring and the report, which use none, each held a GPU); given to the inference jobs (``set-resources
    infer:gpu_model=``, or the default) while ``device`` is not ``cuda``, the rule asks for no GPU (gpu=0), the
    plugin passes ``--gpus=MODEL:0``, and the jobs run on the CPU (on a GPU partition, as the profile's example sets
    beside it). Both were planned without a word. An empty ``set-resources infer:gpu_model=`` (or null) takes the
    default's away from the inference jobs: the plugin reads an empty GPU model as none. None otherwise."""
    default = _unquoted(_named_values(default_resources).get("gpu_model", "")) or None
    infer = _rule_resource(overrides, "infer", "gpu_model")
    given = infer is not _NOT_GIVEN  # set-resources replaces the default, empty too
    said = []
    if default is not None:
        said.append(f"default-resources gpu_model={default}: the SLURM plugin asks every job whose rule sets no gpu "
                    f"for one, the scoring and report jobs too (--gpus={default}:1 each, which they do not use); give "
                    f"it to inference alone, --set-resources infer:gpu_model={default}")
    model = None if infer is _NOT_KNOWN else (infer or None) if given else default  # not known: nothing said
    if model and not str(device).startswith("cuda"):
        source = f"set-resources infer:gpu_model={model} with device {device}:" if given else f"with device {device},"
        said.append(f"{source} the inference jobs ask for no GPU (gpu=0; the SLURM plugin passes --gpus={model}:0) "
                    "and run on the CPU; give --config device=cuda to run them on the GPU, or leave gpu_model out")
    return "; ".join(said) or None


def rule_threads(settings: object, threads: Mapping[str, int], preview: bool = False) -> dict[str, int]:
    """The threads of each rule of ``threads`` (rule → the Snakefile's threads), a ``--set-threads RULE=N`` of
    Snakemake's ``ResourceSettings`` ``settings`` in their place (its public ``overwrite_threads``; one that is not
    a whole number, or settings without that name, keep the Snakefile's), at most its ``--max-threads``
    (``max_threads``) and its ``--cores`` (``cores``), to which Snakemake holds every job's threads: a local run
    with ``--cores 2`` (profiles/local) runs a rule of 4 threads on 2, and evaluates ``mem_mb=2000*threads`` to
    4000. A cluster run leaves ``cores`` unset. A ``preview`` (a dry run) without ``--cores`` has Snakemake set it
    to 1, which the run it previews does not have: there a ``cores`` of 1 is not followed."""
    given = getattr(settings, "overwrite_threads", None)
    given = given if isinstance(given, Mapping) else {}
    caps = [_whole_number(getattr(settings, "max_threads", None)), _whole_number(getattr(settings, "cores", None))]
    if preview and caps[1] == 1:
        caps[1] = None  # Snakemake's stand-in for a dry run without --cores
    found = {}
    for rule, number in threads.items():
        found[rule] = _whole_number(_fixed(given.get(rule))) or number  # a Resource from the command line
        for most in caps:
            if most is not None and most > 0:
                found[rule] = min(found[rule], most)
    return found


def resource_settings(settings: object) -> tuple[dict[str, Mapping], Mapping, str | None]:
    """The ``--set-resources`` (rule → resources) and ``--resources`` (the run's caps) of Snakemake's
    ``ResourceSettings`` ``settings`` (``workflow.resource_settings``), parsed as Snakemake parses them (units made
    MB, an expression of ``attempt`` kept as a ``Resource`` to evaluate), and a warning, None when they were read.

    Only public names are read: the settings' ``overwrite_resources`` and ``resources`` (parsed already from the
    command line, raw mappings from Snakemake's Python API) and ``snakemake.resources.Resources.from_mapping``. A
    Snakemake that names them otherwise gives empty mappings and the warning: the planning checks that read them
    (fixed retry memory, memory per CPU, cases given up with less memory) are skipped, where reading Snakemake's
    private attributes would have stopped planning with a traceback."""
    try:
        from snakemake.resources import Resources

        overrides = {str(rule): Resources.from_mapping(resources)
                     for rule, resources in settings.overwrite_resources.items()}
        caps = Resources.from_mapping(settings.resources)
    except Exception as error:  # any change of Snakemake's settings: the checks are skipped, the run goes on
        return {}, {}, (f"cannot read Snakemake's --set-resources and --resources ({type(error).__name__}: "
                        f"{' '.join(str(error).split()) or 'no detail'}; a Snakemake this medseg was not made for?): "
                        "the planning checks of the jobs' memory are skipped (fixed retry memory, memory per CPU, "
                        "cases given up with less memory than this run's jobs start with)")
    return overrides, caps, None


def first_attempt_memory(rule: str, configured: int, overrides: Mapping[str, Mapping[str, object]],
                         caps: Mapping[str, object], threads: int = 1) -> int | None:
    """The memory (MB) a rule's jobs start with: ``configured`` (the config's), a ``--set-resources RULE:mem_mb=``
    (or mem=) in its place, evaluated with the rule's ``threads`` as Snakemake evaluates it for the job
    (``mem_mb=2000*threads``), at most a ``--resources mem_mb=``; ``overrides`` and ``caps`` as
    :func:`resource_settings` gives them. None when a ``--set-resources`` expression cannot be worked out before the
    jobs exist (one that reads the job's input)."""
    memory = _rule_resource(overrides, rule, "mem_mb", threads)  # a number, or an expression of attempt, threads
    memory = configured if memory is _NOT_GIVEN else memory
    cap = caps["mem_mb"] if "mem_mb" in caps else None
    cap = getattr(cap, "value", cap)
    if not isinstance(memory, (int, float)) or isinstance(memory, bool):
        return None
    return int(min(memory, cap) if isinstance(cap, (int, float)) and not isinstance(cap, bool) else memory)


def set_runtime_minutes(overrides: Mapping[str, Mapping[str, object]], rule: str, threads: int = 1,
                        attempts: int = 1) -> tuple[int, ...] | None:
    """The run time (minutes) ``--set-resources RULE:runtime=`` gives each of the rule's attempts 1 to ``attempts``
    (``runtime=60*attempt``: 60, 120, 180), evaluated with its ``threads`` as Snakemake evaluates it for the job;
    None where none is given (:func:`runtime_overridden`) or it cannot be worked out before the jobs exist."""
    minutes = []
    for attempt in range(1, attempts + 1):
        value = _rule_resource(overrides, rule, "runtime", threads, attempt)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        value = _whole_number(value)
        if value is None or value < 0:
            return None
        minutes.append(value)
    return tuple(minutes)


def set_memory_mb(overrides: Mapping[str, Mapping[str, object]], rule: str, caps: Mapping[str, object],
                  threads: int = 1, attempts: int = 1) -> tuple[int, ...] | None:
    """The memory (MB) ``--set-resources RULE:mem_mb=`` gives each of the rule's attempts 1 to ``attempts`` (a fixed
    value the same on each, which the rule's retries no longer scale; ``mem_mb=4000*attempt``: 4000, 8000, 12000), at
    most a ``--resources mem_mb=``, as :func:`first_attempt_memory` gives the first; None where none is given or it
    cannot be worked out before the jobs exist."""
    cap = _memory_cap(caps)
    memory = []
    for attempt in range(1, attempts + 1):
        value = _rule_resource(overrides, rule, "mem_mb", threads, attempt)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
            return None
        memory.append(int(min(value, cap) if cap is not None else value))
    return tuple(memory)


def scaled_memory_mb(first_mb: int, caps: Mapping[str, object], attempts: int = 1) -> tuple[int, ...] | None:
    """The memory (MB) each of attempts 1 to ``attempts`` of a rule whose retries scale it asks for at worst (k times
    the first attempt's ``first_mb``), at most a ``--resources mem_mb=`` (Snakemake constrains a retry's resources by
    it too); None where none is given (k times the first)."""
    cap = _memory_cap(caps)
    return None if cap is None else tuple(int(min(first_mb * attempt, cap)) for attempt in range(1, attempts + 1))


def _memory_cap(caps: Mapping[str, object]) -> float | None:
    """The ``--resources mem_mb=`` every job's memory is at most, or None."""
    cap = caps["mem_mb"] if "mem_mb" in caps else None
    cap = getattr(cap, "value", cap)
    return cap if isinstance(cap, (int, float)) and not isinstance(cap, bool) else None


def job_cpus(default_resources: Sequence[str], overrides: Mapping[str, Mapping[str, object]], rule: str,
             threads: int, gpus: int = 0) -> int:
    """The CPUs the SLURM plugin asks sbatch for a job of ``rule``: ``cpus_per_task`` (``set-resources``, else the
    default resources ``NAME=VALUE`` texts), else for a job of ``gpus`` GPUs ``cpus_per_gpu`` times them, else its
    ``threads``, as the plugin reads them (0 or none: the next). A value that cannot be worked out before the jobs
    exist counts as the threads."""
    defaults = _named_values(default_resources)
    for name in ("cpus_per_task", "cpus_per_gpu"):
        if name == "cpus_per_gpu" and not gpus:
            break
        value = _rule_resource(overrides, rule, name, threads)
        if value is _NOT_KNOWN:
            return threads
        cpus = _whole_number(defaults.get(name) if value is _NOT_GIVEN else value)
        if cpus is not None and cpus > 0:
            return cpus * (gpus if name == "cpus_per_gpu" else 1)
    return threads


def runtime_overridden(overrides: Mapping[str, Mapping[str, object]], rule: str = "infer") -> bool:
    """Whether ``--set-resources RULE:runtime=`` (or a profile's ``set-resources``) gives the rule's jobs their run
    time (``overrides`` as :func:`resource_settings` gives them): it replaces the one the rule plans, from the
    cases' voxels or ``minutes_per_case``, on every attempt."""
    return _rule_resource(overrides, rule, "runtime") is not _NOT_GIVEN


def config_source(key: object, command_line: Mapping, configfiles: Sequence[Path | str],
                  workflow_configfile: Path | str, profile: Path | str | None = None) -> str:
    """Where the workflow's setting ``key`` came from, as Snakemake takes them (each later one wins): the
    workflow's own ``configs/cohort.yaml`` (``workflow_configfile``), each ``--configfile`` in turn (``configfiles``)
    and ``--config`` (``command_line``, its settings as Snakemake read them): ``--config KEY=VALUE`` or the file's
    path. ``profile``: the profile file whose ``config:`` gave ``command_line`` (:func:`~medseg.cohort.invocation.
    config_profile`), where no ``--config`` was typed: ``config: KEY=VALUE in profile PATH``. A file that cannot be
    read now is passed over (Snakemake read it); a key none of them holds is ``not in FILES or --config`` (it was named
    as set in ``configs/cohort.yaml``, which does not hold it: a file changed since, a caller of Snakemake's API)."""
    import yaml

    if key in command_line:  # `--config results=` (nothing after it) Snakemake reads as None
        given = f"{key}={'' if command_line[key] is None else command_line[key]}"
        return f"--config {given}" if profile is None else f"config: {given} in profile {profile}"
    looked, unread = [], []
    for path in reversed([str(Path(p).absolute()) for p in [workflow_configfile, *configfiles]]):
        try:
            settings = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError, yaml.YAMLError):
            unread.insert(0, path)
            continue
        if isinstance(settings, Mapping) and key in settings:
            return path
        looked.insert(0, path)
    looked.append("--config" if profile is None else f"profile {profile}'s config:")
    return (f"not in {', '.join(looked[:-1])} or {looked[-1]}" if len(looked) > 1 else f"not in {looked[0]}") + (
        f" ({', '.join(unread)} cannot be read now)" if unread else "")


def _set_by_option(where: str) -> bool:
    """Whether a :func:`config_source` answer is a setting given as such (``--config KEY=VALUE``, a profile's
    ``config: KEY=VALUE``), not a file's path."""
    return where.startswith(("--config ", "config: "))


def old_default_runtime(value: object, source: str, asked: Sequence[int], planned: Sequence[int]) -> str | None:
    """The warning for ``minutes_per_case`` set to its old default (:data:`OLD_MINUTES_PER_CASE`) by ``source``
    (:func:`config_source`): an old config copied from the checkout asks every inference job for 10 min + 5 a case,
    ``asked`` (the batches' minutes), where their voxels plan ``planned``. The setting is the user's and is kept (a
    figure of their own may be meant: a slow node), so the warning names it, what it asks and what would be planned,
    and how to have it planned. None for any other value."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != OLD_MINUTES_PER_CASE or not asked:
        return None

    def span(minutes: Sequence[int]) -> str:
        low, high = min(minutes), max(minutes)
        return f"{low} min" if low == high else f"{low}-{high} min"

    jobs = "its inference job asks" if len(asked) == 1 else f"its {len(asked)} inference jobs ask"
    unknown = source.startswith("not in ")
    where = (source if _set_by_option(source) else f"{source}: minutes_per_case: {value}" if not unknown else
             f"minutes_per_case: {value} (set where this workflow cannot tell: {source})")
    return (f"{where}: the default before run times were planned from the cases' voxels; {jobs} for "
            f"{span(asked)} (10 + 5 a case; twice and three times that on a retry), where planned from their "
            f"voxels {'it' if len(asked) == 1 else 'they'} would ask for {span(planned)}: set minutes_per_case: null "
            "(or leave it out) to have the run time planned, or give a figure of your own other than 5")
