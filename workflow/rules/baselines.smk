# The modern-baselines table (results/baselines_table.csv, docs/baselines.md): every row of the
# `baselines:` section trains at each learning rate of one sweep, on each task and seed; the collector
# selects each row's learning rate on dev and reports validation. Optional: without the section,
# BASELINE_RECORDS is empty and the audit's claim-8 family says "no evidence".

BL = config.get("baselines")
BASELINE_RECORDS = []
if BL:
    for _row in BL["rows"]:
        if _row not in ROWS:
            raise ValueError(f"baselines.rows: row {_row!r} is not defined under rows: ({', '.join(ROWS)})")
    _rel = peft_releases()
    # rows whose tuner or option is newer than the installed PEFT: listed in the table with the release
    BL_SKIPPED = {
        r: why
        for r in BL["rows"]
        if ROWS[r]["method"] == "peft" and (why := _rel.skip_reason(ROWS[r].get("hp") or {}))
    }
    BL_ROWS = [r for r in BL["rows"] if r not in BL_SKIPPED]
    BL_SEEDS = [int(s) for s in BL["seeds"]]
    BL_LRS = [float(x) for x in BL["lrs"]]
    BASELINE_RECORDS = [
        f"{RUNS}/baselines/{t}/{record_row(r, lr)}/seed{s}/record.json"
        for t in BL["tasks"]
        for r in BL_ROWS
        for lr in BL_LRS
        for s in BL_SEEDS
    ]

    rule baselines_train:
        output:
            [
                f"{RUNS}/baselines/{{task}}/{record_row('{brow}', lr)}/seed{s}/record.json"
                for lr in BL_LRS
                for s in BL_SEEDS
            ],
        wildcard_constraints:
            brow="[A-Za-z0-9_]+",
        params:
            rows=baselines_rows_json,
            sets=lambda w, threads: set_args([*BL.get("overrides", []), "analysis.update_rank=true"], threads),
            seeds=",".join(map(str, BL_SEEDS)),
            profile=PROFILE,
            out=lambda w: f"{RUNS}/baselines/{w.task}/{{row}}/seed{{seed}}",
        log:
            f"{RUNS}/logs/baselines/{{task}}/{{brow}}.log",
        benchmark:
            f"{RUNS}/benchmarks/baselines/{{task}}/{{brow}}.tsv"
        threads: 1
        resources:
            gpu=GPUS,
        conda:
            "../envs/deltalora.yaml"
        shell:
            "DELTALORA_NO_PROGRESS=1 python3 -m deltalora train --task glue/{wildcards.task} --rows-json {params.rows} "
            "--seed {params.seeds} --out '{params.out}' --profile {params.profile} {params.sets} > {log} 2>&1"

    rule baselines_table:
        input:
            BASELINE_RECORDS,
        output:
            csv="results/baselines_table.csv",
            md="results/baselines_table.md",
            tex="results/baselines_table.tex",
            html="results/baselines_table.html",
            plots=multiext("results/plots/baselines_rank", ".png", ".pdf"),
        params:
            profile=PROFILE,
            rows=",".join(BL["rows"]),
            skipped=shlex.quote(json.dumps(BL_SKIPPED)),
        log:
            "results/logs/baselines_table.log",
        conda:
            "../envs/deltalora.yaml"
        shell:
            "python3 -m deltalora.collect.baselines {input} --out {output.csv} --profile {params.profile} "
            "--rows {params.rows} --skipped {params.skipped} --plots results/plots > {log} 2>&1 "
            "&& python3 -m deltalora html {output.md} --out {output.html} >> {log} 2>&1"
