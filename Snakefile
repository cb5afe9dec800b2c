# medseg cohort workflow: sample sheet -> per-case segmentation (infer) -> per-case scores (evaluate) -> QA report.
#
#   snakemake --cores 2 --config samples=my.tsv model=hippocampus results=out
#
# The work is done by `medseg cohort infer|evaluate` and `medseg report` (medseg/cohort/, medseg/report/);
# this file only plans the jobs. See docs/cohorts.md, "Cohorts with Snakemake".

from snakemake.utils import min_version

min_version("9.0")


# defaults; relative paths in the config are relative to the working directory. Their YAML is checked first:
# Snakemake's own error for it ("Config file is not valid JSON or YAML") named neither the file nor the line
# (where it is there: Snakemake reads it only then, and without it a --configfile stands for it)
import os
import sys

from medseg.errors import MedsegError
from medseg.shown_warnings import show_warnings
from medseg.yamlfile import check_yaml_file

show_warnings(labelled=False)  # medseg's own warnings while planning, on stderr (the library's loggers are silent)

if os.path.exists(f"{workflow.basedir}/configs/cohort.yaml"):
    try:
        check_yaml_file(f"{workflow.basedir}/configs/cohort.yaml", "the workflow's settings")
    except MedsegError as error:
        sys.exit(f"medseg: error: {error}")


configfile: f"{workflow.basedir}/configs/cohort.yaml"


# the settings are checked first thing in workflow/rules/common.smk (one line naming the key)
include: "workflow/rules/common.smk"
include: "workflow/rules/cohort.smk"


rule all:
    default_target: True
    input:
        rules.report.output,
        rules.check_failures.output,
