# medseg cohort workflow: sample sheet -> per-case segmentation (infer) -> per-case scores (evaluate) -> QA report.
#
#   snakemake --cores 2 --config samples=my.tsv model=hippocampus results=out
#
# The work is done by `medseg cohort infer|evaluate` and `medseg report` (medseg/cohort/, medseg/report/);
# this file only plans the jobs. See the README, section "Cohorts with Snakemake".

from snakemake.utils import min_version, validate

min_version("9.0")


# defaults; relative paths in the config are relative to the working directory
configfile: f"{workflow.basedir}/configs/cohort.yaml"


# medseg's check first: one line naming the key (Snakemake's prints the whole schema); then Snakemake's, which
# also fills in the defaults
from medseg.cohort.settings import check_config, check_results_folder

check_config(config, f"{workflow.basedir}/configs/schemas/config.schema.yaml")
check_results_folder(config["results"])
validate(config, "configs/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/cohort.smk"


rule all:
    default_target: True
    input:
        rules.report.output,
