# Ablations on a GLUE subset: dropout on/off, lambda x K (a Paramspace grid), rank.
# One job per (task, grid point) trains all seeds in one process, like the GLUE table.


rule ablation_dropout_train:
    output:
        expand(ABL_RECORD, seed=ABL_SEEDS, allow_missing=True),
    params:
        method=lambda w: w.method,
        sets=dropout_sets,
        seeds=ABL_SEED_LIST,
        profile=PROFILE,
        out=abl_run_dir,
    log:
        ABL_LOG,
    benchmark:
        f"{RUNS}/benchmarks/ablations/{{study}}/{{task}}/{{method}}/{{point}}.tsv"
    threads: 1
    resources:
        gpu=GPUS,
    wildcard_constraints:
        study="dropout",
        method="lora|delta_lora",
    conda:
        "../envs/deltalora.yaml"
    shell:
        "DELTALORA_NO_PROGRESS=1 python3 -m deltalora train --task glue/{wildcards.task} --method {params.method} "
        "--row {wildcards.study}_{wildcards.method}_{wildcards.point} --seed {params.seeds} --out '{params.out}' "
        "--profile {params.profile} {params.sets} > {log} 2>&1"


use rule ablation_dropout_train as ablation_lambda_k_train with:
    params:
        method="delta_lora",
        sets=lambda_k_sets,
        seeds=ABL_SEED_LIST,
        profile=PROFILE,
        out=abl_run_dir,
    wildcard_constraints:
        study="lambda_k",
        method="delta_lora",


use rule ablation_dropout_train as ablation_rank_train with:
    params:
        method=lambda w: w.method,
        sets=rank_sets,
        seeds=ABL_SEED_LIST,
        profile=PROFILE,
        out=abl_run_dir,
    wildcard_constraints:
        study="rank",
        method="lora|delta_lora",


rule ablation_table:
    input:
        ablation_records,
    output:
        csv="results/ablation_{study}.csv",
        md="results/ablation_{study}.md",
        html="results/ablation_{study}.html",
    params:
        profile=PROFILE,
        table=lambda w: {"dropout": "dropout", "lambda_k": "lambda-k", "rank": "rank"}[w.study],
    log:
        "results/logs/ablation_{study}.log",
    wildcard_constraints:
        study="dropout|lambda_k|rank",
    conda:
        "../envs/deltalora.yaml"
    shell:
        "python3 -m deltalora collect {params.table} {input} --out {output.csv} --profile {params.profile} "
        "--plots results/plots > {log} 2>&1 && python3 -m deltalora html {output.md} --out {output.html} >> {log} 2>&1"
