# Rules: infer (a batch of cases per job) -> evaluate (scores the batch's cases that have a reference, removes the
# scores of those that no longer have one) -> report.
# Each job ends by writing its record under RESULTS/jobs/ atomically, after every case of the batch has
# either its outputs or its failure record; a case is never left half-written under its final name.
# A job that dies (a case crashed or exhausted its process) is retried with more memory and time: finished cases
# are kept, and a case that killed two attempts with as much memory as the job now has, or two attempts in all by
# the job's last retry, is recorded as failed instead of being tried again (medseg/cohort/run.py give_up); one
# killed with less is tried with the retry's memory, and a later run with a larger mem_mb tries it again. The job
# knows its last retry from its attempt (resources.attempt), not from its memory, which --resources may cap. Under
# SLURM the last retry also stops before its time limit (--time-limit, the job's runtime), recording the cases it did
# not finish as failed, so that the batch has its record and the report is made (medseg/cohort/job_deadline.py).
# An attempt SLURM ended at its time limit notes it beside its record, and its retry asks for more time alone
# (medseg/cohort/time_outs.py).


rule infer:
    output:
        record=f"{RESULTS}/jobs/{{batch}}.infer.json",
    params:
        medseg=MEDSEG,
        sheet=lambda wildcards: SHEET_PATH,  # a function: its value is not read as a pattern
        results=lambda wildcards, output: results_of(output.record),
        cases=case_args,
        inputs=lambda wildcards: inputs_signature(wildcards, "image"),
        model=lambda wildcards: MODEL_FOLDER,  # a function: its value is not read as a pattern
        device=config["device"],
        precision=config["precision"],
        batch_size=config["batch_size"],
        overlap="" if config["overlap"] is None else f"--overlap {config['overlap']}",
        # the memory of the last retry, unless --resources caps it (--attempt tells the last retry then); as a
        # param, a changed mem_mb also reruns finished batches, so a case given up with less memory is tried again
        final_mem=lambda wildcards: batch_memory(wildcards.batch, "infer") * (1 + RETRIES),
        attempts=1 + RETRIES,
    log:
        f"{RESULTS}/logs/infer/{{batch}}.log",
    conda:
        "../envs/medseg.yaml"
    benchmark:
        f"{RESULTS}/benchmarks/infer/{{batch}}.tsv"
    threads: config["threads"]
    retries: RULE_RETRIES
    resources:
        # config mem_mb, or planned from the batch's largest input (medseg/cohort/job_memory.py), and the run time
        # from its cases' voxels (medseg/cohort/job_runtime.py) unless config minutes_per_case is given; a retried job
        # asks for twice, then three times the time, and the first attempt's memory once more for each earlier attempt
        # killed for memory: under SLURM, as SLURM's log of that attempt says (medseg/cohort/slurm_logs.py), elsewhere
        # each attempt but those that noted SLURM's time limit ended them: Snakemake gives these functions the attempt,
        # not why the last one failed (medseg/cohort/time_outs.py; docs/cohorts.md, *What runs*)
        mem_mb=lambda wildcards, attempt: batch_memory(wildcards.batch, "infer") * retry_memory_factor(
            "infer", wildcards.batch, f"{RESULTS}/jobs/{wildcards.batch}.infer.json", attempt),
        attempt=lambda wildcards, attempt: attempt,  # not a limit: passed to the job as --attempt
        runtime=lambda wildcards, attempt: infer_minutes(wildcards.batch) * attempt,
        gpu=GPUS,
    shell:
        "{params.medseg} -v cohort infer {params.sheet:q} -o {params.results:q} {params.cases} --model {params.model:q}"
        " --device {params.device} --precision {params.precision} --batch-size {params.batch_size}"
        " {params.overlap} --threads {threads} --memory-mb {resources.mem_mb} --final-memory-mb {params.final_mem}"
        " --attempt {resources.attempt} {params.attempts} --time-limit {resources.runtime} --record {output.record:q}"
        " --job-log {log:q} --in-workflow > {log:q} 2>&1"


rule evaluate:
    input:
        infer=rules.infer.output.record,
    output:
        record=f"{RESULTS}/jobs/{{batch}}.evaluate.json",
    params:
        medseg=MEDSEG,
        sheet=lambda wildcards: SHEET_PATH,  # a function: its value is not read as a pattern
        results=lambda wildcards, output: results_of(output.record),
        cases=case_args,
        references=lambda wildcards: inputs_signature(wildcards, "reference"),
        final_mem=lambda wildcards: batch_memory(wildcards.batch, "evaluate") * (1 + RETRIES),
        attempts=1 + RETRIES,
    log:
        f"{RESULTS}/logs/evaluate/{{batch}}.log",
    conda:
        "../envs/medseg.yaml"
    benchmark:
        f"{RESULTS}/benchmarks/evaluate/{{batch}}.tsv"
    threads: 1
    retries: RULE_RETRIES
    resources:
        # config evaluate_mem_mb, or planned from the largest input of the batch's cases with a reference, and the
        # run time from their voxels (medseg/cohort/job_runtime.py); twice, then three times as much on a retry (the
        # memory not after an attempt that SLURM's time limit ended, as for infer)
        mem_mb=lambda wildcards, attempt: batch_memory(wildcards.batch, "evaluate") * retry_memory_factor(
            "evaluate", wildcards.batch, f"{RESULTS}/jobs/{wildcards.batch}.evaluate.json", attempt),
        attempt=lambda wildcards, attempt: attempt,
        runtime=lambda wildcards, attempt: evaluate_minutes(wildcards.batch) * attempt,
    shell:
        "{params.medseg} -v cohort evaluate {params.sheet:q} -o {params.results:q} {params.cases} --threads {threads}"
        " --memory-mb {resources.mem_mb} --final-memory-mb {params.final_mem} --attempt {resources.attempt}"
        " {params.attempts} --time-limit {resources.runtime} --record {output.record:q} --job-log {log:q}"
        " --in-workflow > {log:q} 2>&1"


rule report:
    input:
        infer=expand(rules.infer.output.record, batch=BATCHES),
        evaluate=expand(rules.evaluate.output.record, batch=BATCHES),
    output:
        html=f"{RESULTS}/report.html",
        table=f"{RESULTS}/cohort.tsv",
        summary=f"{RESULTS}/summary.json",
    params:
        medseg=MEDSEG,
        sheet=lambda wildcards: SHEET_PATH,  # a function: its value is not read as a pattern
        results=lambda wildcards, output: Path(output.html).parent,
        dice_threshold=config["dice_threshold"],
        max_overlays=config["max_overlays"],
        # given only where the config names one: else the model's window (model.json report.ct_window), or the default
        ct_window="" if config["ct_window"] is None else f" --ct-window {config['ct_window']}",
    log:
        f"{RESULTS}/logs/report.log",
    conda:
        "../envs/medseg.yaml"
    benchmark:
        f"{RESULTS}/benchmarks/report.tsv"
    threads: 1
    resources:
        # what the report holds at once: its libraries, each case's records, the overlays it may draw and the largest
        # case's arrays (medseg/cohort/report_memory.py); scaled on a retry as the other rules' are: a report killed
        # for memory or time was resubmitted with as much (under SLURM the memory only after an out-of-memory kill)
        mem_mb=lambda wildcards, attempt: report_memory() * retry_memory_factor("report", "", None, attempt),
        runtime=lambda wildcards, attempt: 60 * attempt,
    shell:
        "{params.medseg} -v report {params.results:q} -o {output.html:q} --dice-threshold {params.dice_threshold}"
        " --max-overlays {params.max_overlays}{params.ct_window} --sheet {params.sheet:q} --overwrite --in-workflow"
        " > {log:q} 2>&1"


# the run's own exit status: each failed case has its failure record and the others carry on, so every step
# succeeds; this last one fails the run (the report kept) when the failed cases meet fail_on_failed_cases. It runs
# where Snakemake runs, so it also puts on the console the report's count of failed and flagged cases, the failures'
# errors and where the report is (the report's log from the count line on): printed by the report job, they went to
# its SLURM log on a cluster, deleted when the job succeeded
rule check_failures:
    input:
        summary=rules.report.output.summary,
    output:
        record=f"{RESULTS}/jobs/cohort.check.json",
    params:
        medseg=MEDSEG,
        results=lambda wildcards, input: Path(input.summary).parent,
        report_log=rules.report.log[0],
        fail_on=config.get("fail_on_failed_cases", "all"),
    log:
        f"{RESULTS}/logs/check_failures.log",
    conda:
        "../envs/medseg.yaml"
    benchmark:
        f"{RESULTS}/benchmarks/check_failures.tsv"
    localrule: True
    retries: 0  # a verdict, not a flaky job (a profile's retries would run it again)
    shell:
        "awk 'shown || /^[0-9]+ cases? \\(/ {{ shown = 1; print }}' {params.report_log:q} || true; "
        "{params.medseg} cohort check {params.results:q} --fail-on {params.fail_on} --record {output.record:q}"
        " > {log:q} 2>&1"
