# deltalora: regenerate the Delta-LoRA paper's tables and ablations, and audit its claims.
#
#   snakemake --cores all results/glue_table.csv                  # the main job (embedded profile)
#   snakemake --cores all                                          # everything (rule all)
#   snakemake -n all --configfile workflow/config/paper.yaml       # the paper profile's DAG
#   snakemake --cores all --report results/report.html             # one page with every result built
#
# Put targets before --configfile: it takes every following word as a config file.
#
# Rules stay thin: each calls the `deltalora` command line; the logic lives in the package.
from snakemake.utils import min_version

min_version("8.0")


configfile: "workflow/config/default.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/glue.smk"
include: "workflow/rules/nlg.smk"
include: "workflow/rules/ablations.smk"
include: "workflow/rules/memory.smk"
include: "workflow/rules/qlora.smk"
include: "workflow/rules/baselines.smk"
include: "workflow/rules/audit.smk"
include: "workflow/rules/decisive.smk"
include: "workflow/rules/report.smk"  # after the others: it reads their definitions


report: "workflow/report/workflow.rst"


# Tables and the audit read records and write small files: on a cluster they run on the submit host.
localrules:
    all,
    glue_table,
    nlg_table,
    ablation_table,
    qlora_table,
    baselines_table,
    memory_table,
    runtime_table,
    audit,
    audit_decisive,


rule all:
    default_target: True
    input:
        "results/glue_table.csv",
        expand("results/{nlg_task}_table.csv", nlg_task=NLG_TASKS),
        "results/ablation_dropout.csv",
        "results/ablation_lambda_k.csv",
        "results/ablation_rank.csv",
        "results/memory_table.csv",
        *(["results/qlora_table.csv"] if QLORA else []),
        *(["results/baselines_table.csv"] if BL else []),
        "results/audit.md",
        # claims 8 and 5 at equal tuning (decisive.smk); the smoke overlays shrink it to one task and two
        # seeds, so a smoke build runs every rule of `all` too.
        *(["results/audit_decisive.md"] if DEC else []),
        "results/runtime_table.csv",
        report_inputs(),  # results that exist now, for `snakemake --report` (workflow/rules/report.smk)
