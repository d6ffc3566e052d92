# NLG tables: E2E and WebNLG (GPT-2), XSum (BART). In the default profile the small GPT-2 and BART
# are pre-trained first (cached: they rebuild only when their rule changes).


rule pretrain:
    output:
        PRETRAIN_MARKER,
    params:
        out=lambda w: f"{MODELS_DIR}/{w.kind}",
        steps=lambda w: config["nlg"]["pretrain_steps"][w.kind],
    log:
        f"{RUNS}/logs/pretrain_{{kind}}.log",
    benchmark:
        f"{RUNS}/benchmarks/pretrain_{{kind}}.tsv"
    threads: 1
    wildcard_constraints:
        kind="gpt2|bart",
    conda:
        "../envs/deltalora.yaml"
    shell:
        "python3 -m deltalora pretrain --kind {wildcards.kind} --out {params.out} --steps {params.steps} "
        "--threads {threads} > {log} 2>&1"


rule nlg_train:
    input:
        nlg_model_input,
    output:
        expand(NLG_RECORD, seed=SEEDS, allow_missing=True),
    params:
        method=row_method,
        sets=row_sets,
        seeds=SEED_LIST,
        profile=PROFILE,
        model=nlg_model_arg,
        out=nlg_run_dir,
    log:
        NLG_LOG,
    benchmark:
        f"{RUNS}/benchmarks/nlg/{{nlg_task}}/{{row}}.tsv"
    threads: 1
    resources:
        gpu=GPUS,
    wildcard_constraints:
        nlg_task="e2e|webnlg|xsum",
    conda:
        "../envs/deltalora.yaml"
    shell:
        "DELTALORA_NO_PROGRESS=1 python3 -m deltalora train --task {wildcards.nlg_task} --method {params.method} "
        "--row {wildcards.row} --seed {params.seeds} --out '{params.out}' --profile {params.profile} "
        "{params.model} {params.sets} > {log} 2>&1"


rule nlg_table:
    input:
        nlg_records,
    output:
        csv="results/{nlg_task}_table.csv",
        md="results/{nlg_task}_table.md",
        html="results/{nlg_task}_table.html",
    params:
        profile=PROFILE,
        rows=",".join(NLG_ROWS),
        paper=lambda w: config["nlg"]["paper_tables"][w.nlg_task],
    log:
        "results/logs/{nlg_task}_table.log",
    wildcard_constraints:
        nlg_task="e2e|webnlg|xsum",
    conda:
        "../envs/deltalora.yaml"
    shell:
        "python3 -m deltalora collect {wildcards.nlg_task} {input} --out {output.csv} --profile {params.profile} "
        "--rows {params.rows} --paper {params.paper} --plots results/plots > {log} 2>&1 && python3 -m deltalora html {output.md} --out {output.html} >> {log} 2>&1"
