# The decisive proxy-scale study (results/audit_decisive.md): claims 8 and 5 (equal tuning), with the
# seeds the power analysis asks for and steps enough that the training loss flattens
# (deltalora/audit/decisive.py, docs/audit.md). Configured by the `decisive:` section; optional.

DEC = config.get("decisive")
if DEC:
    DEC_PLAN = plan_seeds(DEC["seeds"])
    DEC_SEEDS = DEC_PLAN["seeds"]
    DEC_JOBS = max(1, min(int(DEC.get("jobs_per_row", 1)), len(DEC_SEEDS)))
    # seeds of each job of a row: contiguous chunks, so that a row's jobs fill the cores evenly
    DEC_CHUNKS = [DEC_SEEDS[k * len(DEC_SEEDS) // DEC_JOBS:(k + 1) * len(DEC_SEEDS) // DEC_JOBS] for k in range(DEC_JOBS)]
    DEC_RECORD = f"{RUNS}/decisive/{{task}}/{{row}}/seed{{seed}}/record.json"
    for _row in DEC["rows"]:
        if _row not in ROWS:
            raise ValueError(f"decisive.rows: row {_row!r} is not defined under rows: ({', '.join(ROWS)})")

    for _k, _chunk in enumerate(DEC_CHUNKS):

        rule:
            name:
                f"decisive_train_{_k}" if DEC_JOBS > 1 else "decisive_train"
            output:
                expand(DEC_RECORD, seed=_chunk, allow_missing=True),
            params:
                method=row_method,
                sets=lambda w, threads: set_args([*DEC.get("overrides", []), *row_items(w.row)], threads),
                seeds=",".join(map(str, _chunk)),
                profile=PROFILE,
                out=lambda w: f"{RUNS}/decisive/{w.task}/{w.row}/seed{{seed}}",
            log:
                f"{RUNS}/logs/decisive/{{task}}/{{row}}.{_k}.log",
            threads: 1
            resources:
                gpu=GPUS,
            conda:
                "../envs/deltalora.yaml"
            shell:
                "DELTALORA_NO_PROGRESS=1 python3 -m deltalora train --task glue/{wildcards.task} --method {params.method} "
                "--row {wildcards.row} --seed {params.seeds} --out '{params.out}' --profile {params.profile} "
                "{params.sets} > {log} 2>&1"

    rule audit_decisive:
        input:
            expand(DEC_RECORD, task=DEC["tasks"], row=DEC["rows"], seed=DEC_SEEDS),
        output:
            md="results/audit_decisive.md",
            csv="results/audit_decisive.csv",
            html="results/audit_decisive.html",
        params:
            profile=PROFILE,
            max_drop=DEC.get("max_drop", 0.05),
            plan=shlex.quote(DEC_PLAN["text"]),
        log:
            "results/logs/audit_decisive.log",
        conda:
            "../envs/deltalora.yaml"
        shell:
            "python3 -m deltalora.audit.decisive {input} --profile {params.profile} --max-drop {params.max_drop} "
            "--seed-plan {params.plan} --out {output.md} --csv {output.csv} > {log} 2>&1 "
            "&& python3 -m deltalora html {output.md} --out {output.html} >> {log} 2>&1"
