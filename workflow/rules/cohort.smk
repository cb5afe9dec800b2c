# Rules: infer (a batch of cases per job) -> evaluate (the batch's cases that have a reference) -> report.
# Each job ends by writing its record under RESULTS/jobs/ atomically, after every case of the batch has
# either its outputs or its failure record; a case is never left half-written under its final name.
# A job that dies (a case crashed or exhausted its process) is retried: finished cases are kept, and a case
# that killed two attempts is recorded as failed instead of being tried a third time (medseg/cohort/records.py).


rule infer:
    input:
        images=batch_images,
        weights=WEIGHTS,
    output:
        record=f"{RESULTS}/jobs/{{batch}}.infer.json",
    params:
        medseg=MEDSEG,
        sheet=SHEET,
        results=lambda wildcards, output: results_of(output.record),
        cases=case_args,
        model=lambda wildcards, input: Path(input.weights).parent,
        device=config["device"],
        precision=config["precision"],
        batch_size=config["batch_size"],
        overlap="" if config["overlap"] is None else f"--overlap {config['overlap']}",
    log:
        f"{RESULTS}/logs/infer/{{batch}}.log",
    conda:
        "../envs/medseg.yaml"
    benchmark:
        f"{RESULTS}/benchmarks/infer/{{batch}}.tsv"
    threads: config["threads"]
    retries: 2
    resources:
        mem_mb=config["mem_mb"],
        runtime=infer_minutes,
        gpu=GPUS,
    shell:
        "{params.medseg} -v cohort infer {params.sheet:q} -o {params.results:q} {params.cases} --model {params.model:q}"
        " --device {params.device} --precision {params.precision} --batch-size {params.batch_size}"
        " {params.overlap} --threads {threads} --record {output.record:q} > {log:q} 2>&1"


rule evaluate:
    input:
        infer=rules.infer.output.record,
        references=batch_references,
    output:
        record=f"{RESULTS}/jobs/{{batch}}.evaluate.json",
    params:
        medseg=MEDSEG,
        sheet=SHEET,
        results=lambda wildcards, output: results_of(output.record),
        cases=lambda wildcards: case_args(wildcards, scored_only=True),
    log:
        f"{RESULTS}/logs/evaluate/{{batch}}.log",
    conda:
        "../envs/medseg.yaml"
    benchmark:
        f"{RESULTS}/benchmarks/evaluate/{{batch}}.tsv"
    threads: 1
    retries: 2
    resources:
        mem_mb=2000,
        runtime=30,
    shell:
        "{params.medseg} -v cohort evaluate {params.sheet:q} -o {params.results:q} {params.cases} --threads {threads}"
        " --record {output.record:q} > {log:q} 2>&1"


rule report:
    input:
        infer=expand(rules.infer.output.record, batch=BATCHES),
        evaluate=expand(rules.evaluate.output.record, batch=SCORED),
    output:
        html=f"{RESULTS}/report.html",
        table=f"{RESULTS}/cohort.tsv",
        summary=f"{RESULTS}/summary.json",
    params:
        medseg=MEDSEG,
        results=lambda wildcards, output: Path(output.html).parent,
        dice_threshold=config["dice_threshold"],
        max_overlays=config["max_overlays"],
    log:
        f"{RESULTS}/logs/report.log",
    conda:
        "../envs/medseg.yaml"
    benchmark:
        f"{RESULTS}/benchmarks/report.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,
    shell:
        "{params.medseg} -v report {params.results:q} -o {output.html:q} --dice-threshold {params.dice_threshold}"
        " --max-overlays {params.max_overlays} --overwrite > {log:q} 2>&1"
