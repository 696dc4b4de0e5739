# spcl-bench: one command reproduces every table and figure of the SPCL paper.
#   snakemake --cores all                                   the synthetic phantom on a CPU
#   snakemake --cores all --configfile config/paper.yaml    the paper (ACDC, M&Ms, SCD)
#   snakemake --configfile config/paper.yaml --profile profiles/slurm    on a SLURM cluster
#   snakemake --report report.html                          HTML report of tables and figures
# The default target lives here (a rule in an included file is not a default target).

import os

from snakemake.utils import min_version, validate

min_version("8.0")

# A restart after a hard kill (SIGKILL, node failure) works with the same command: a lock that no
# running Snakemake can hold is removed here, before Snakemake checks it (methods/cluster/snakemake_lock.py).
from methods.cluster.snakemake_lock import at_startup

at_startup(workflow)


# config/config.yaml is the default, not a base: a --configfile replaces it. (Snakemake would merge
# the two, so a key the paper config leaves out, e.g. the phantom's 300 iterations in
# profile_overrides, would silently leak into the paper's runs.) --config key=value still applies.
if not workflow.overwrite_configfiles:

    configfile: os.path.join(workflow.basedir, "config", "config.yaml")


# Snakemake's YAML loader (PyYAML, YAML 1.1) reads `1e-4` as a string, and a nested --config value
# (`profile_overrides={train: {iterations: 20}}`) with every scalar a string: read them as the
# numbers they are, in the config file and in --config alike (methods/config_yaml.py).
from methods.config_yaml import exponent_numbers, typed_command_line

config.update(exponent_numbers(typed_command_line(dict(config),
                                                  getattr(workflow.config_settings, "config_args", None))))

validate(config, "workflow/schemas/config.schema.yaml", set_default=True)


include: "workflow/rules/common.smk"
include: "workflow/rules/resources.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/provenance.smk"
include: "workflow/rules/analysis.smk"


localrules:
    all,
    run_config,
    provenance,


rule all:
    default_target: True
    input:
        f"{ANALYSIS_OUT}/REPORT.md",
        f"{ANALYSIS_OUT}/REPORT.html",
