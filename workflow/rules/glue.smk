# GLUE: one job per (task, row) trains all seeds in one process (process start-up, ~5 s, would
# otherwise dominate the embedded profile's few-second runs); the table is built from the records.


if GLUE_GROUP == "task":
    # One job per task trains every row and seed: start-up (~5 s a process) would otherwise cost more
    # than a proxy run itself. The audit's extra rows get their own job per task.

    rule glue_train:
        output:
            expand(GLUE_RECORD, row=GLUE_ROWS, seed=SEEDS, allow_missing=True),
        params:
            rows=lambda w: rows_json(GLUE_ROWS),
            sets=global_sets,
            seeds=SEED_LIST,
            profile=PROFILE,
            out=glue_task_dir,
        log:
            GLUE_TASK_LOG,
        benchmark:
            f"{RUNS}/benchmarks/glue/{{task}}.tsv"
        threads: 1
        resources:
            gpu=GPUS,
        conda:
            "../envs/deltalora.yaml"
        shell:
            "DELTALORA_NO_PROGRESS=1 python3 -m deltalora train --task glue/{wildcards.task} --rows-json {params.rows} "
            "--seed {params.seeds} --out '{params.out}' --profile {params.profile} {params.sets} > {log} 2>&1"

    if AUDIT_ONLY_ROWS:

        use rule glue_train as audit_train with:
            output:
                expand(GLUE_RECORD, row=AUDIT_ONLY_ROWS, seed=SEEDS, allow_missing=True),
            params:
                rows=lambda w: rows_json(AUDIT_ONLY_ROWS),
                sets=global_sets,
                seeds=SEED_LIST,
                profile=PROFILE,
                out=glue_task_dir,
            log:
                AUDIT_TASK_LOG,
            benchmark:
                f"{RUNS}/benchmarks/glue/{{task}}_audit_rows.tsv"

elif GLUE_GROUP == "row":

    rule glue_train:
        output:
            expand(GLUE_RECORD, seed=SEEDS, allow_missing=True),
        params:
            method=row_method,
            sets=row_sets,
            seeds=SEED_LIST,
            profile=PROFILE,
            out=glue_run_dir,
        log:
            GLUE_LOG,
        benchmark:
            f"{RUNS}/benchmarks/glue/{{task}}/{{row}}.tsv"
        threads: 1
        resources:
            gpu=GPUS,
        conda:
            "../envs/deltalora.yaml"
        shell:
            "DELTALORA_NO_PROGRESS=1 python3 -m deltalora train --task glue/{wildcards.task} --method {params.method} "
            "--row {wildcards.row} --seed {params.seeds} --out '{params.out}' --profile {params.profile} "
            "{params.sets} > {log} 2>&1"

else:  # one job per seed: long GPU runs, where start-up is negligible and a failure costs one seed

    rule glue_train:
        input:
            mnli_source,
        output:
            GLUE_RECORD,
        params:
            method=row_method,
            sets=seed_sets,
            profile=PROFILE,
            out=glue_seed_dir,
        log:
            GLUE_SEED_LOG,
        benchmark:
            f"{RUNS}/benchmarks/glue/{{task}}/{{row}}/seed{{seed}}.tsv"
        threads: 1
        resources:
            gpu=GPUS,
        conda:
            "../envs/deltalora.yaml"
        shell:
            "DELTALORA_NO_PROGRESS=1 python3 -m deltalora train --task glue/{wildcards.task} --method {params.method} "
            "--row {wildcards.row} --seed {wildcards.seed} --out {params.out} --profile {params.profile} "
            "{params.sets} > {log} 2>&1"


rule glue_table:
    input:
        glue_records(),
    output:
        csv="results/glue_table.csv",
        md="results/glue_table.md",
        html="results/glue_table.html",
        tex="results/glue_table.tex",
        plots=multiext("results/plots/glue_scores", ".png", ".pdf"),
        curves=multiext("results/plots/glue_training_curves", ".png", ".pdf"),
    params:
        profile=PROFILE,
        rows=",".join(GLUE_ROWS),
        paper=config["glue"].get("paper_table", "paper_tables/glue_roberta_base.csv"),
    log:
        "results/logs/glue_table.log",
    conda:
        "../envs/deltalora.yaml"
    shell:
        "python3 -m deltalora collect glue {input} --out {output.csv} --profile {params.profile} --rows {params.rows} "
        "--paper {params.paper} --plots results/plots > {log} 2>&1 && python3 -m deltalora html {output.md} --out {output.html} >> {log} 2>&1"
