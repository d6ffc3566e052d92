# The decisive proxy-scale study (results/audit_decisive.md): claims 4 and 5 at equal tuning, with the
# seeds the power analysis asks for and steps enough that the training loss flattens
# (deltalora/audit/decisive.py, docs/audit.md). Configured by the `decisive:` section; optional.

DEC = config.get("decisive")
if DEC:
    DEC_SEEDS = [int(s) for s in DEC["seeds"]]
    DEC_RECORD = f"{RUNS}/decisive/{{task}}/{{row}}/seed{{seed}}/record.json"
    DEC_LOG = f"{RUNS}/logs/decisive/{{task}}/{{row}}.log"
    for _row in DEC["rows"]:
        if _row not in ROWS:
            raise ValueError(f"decisive.rows: row {_row!r} is not defined under rows: ({', '.join(ROWS)})")

    rule decisive_train:
        output:
            expand(DEC_RECORD, seed=DEC_SEEDS, allow_missing=True),
        params:
            method=row_method,
            sets=lambda w, threads: " ".join(
                f"--set {shlex.quote(s)}"
                for s in [*config.get("overrides", []), *DEC.get("overrides", []), *ROWS[w.row].get("set", []),
                          f"train.threads={threads}"]
            ),
            seeds=",".join(map(str, DEC_SEEDS)),
            profile=PROFILE,
            out=lambda w: f"{RUNS}/decisive/{w.task}/{w.row}/seed{{seed}}",
        log:
            DEC_LOG,
        threads: 1
        resources:
            gpu=GPUS,
        conda:
            "../envs/deltalora.yaml"
        shell:
            "DELTALORA_NO_PROGRESS=1 deltalora train --task glue/{wildcards.task} --method {params.method} "
            "--row {wildcards.row} --seed {params.seeds} --out '{params.out}' --profile {params.profile} "
            "{params.sets} > {log} 2>&1"

    rule audit_decisive:
        input:
            expand(DEC_RECORD, task=DEC["tasks"], row=DEC["rows"], seed=DEC_SEEDS),
        output:
            md="results/audit_decisive.md",
            csv="results/audit_decisive.csv",
        params:
            profile=PROFILE,
            max_drop=DEC.get("max_drop", 0.05),
        log:
            "results/logs/audit_decisive.log",
        conda:
            "../envs/deltalora.yaml"
        shell:
            "python -m deltalora.audit.decisive {input} --profile {params.profile} --max-drop {params.max_drop} "
            "--out {output.md} --csv {output.csv} > {log} 2>&1"
