# The audit: each claim of the paper tested by a stated rule on measured numbers.


rule audit:
    input:
        records=[*audit_records(), *QLORA_RECORDS, *BASELINE_RECORDS],
        memory="results/memory_table.csv",
        dropout="results/ablation_dropout.csv",
    output:
        md="results/audit.md",
        csv="results/audit.csv",
        html="results/audit.html",
    params:
        profile=PROFILE,
        cosines="results/ablation_dropout_cosines.csv",
    log:
        "results/logs/audit.log",
    conda:
        "../envs/deltalora.yaml"
    shell:
        "python3 -m deltalora audit {input.records} --profile {params.profile} --memory {input.memory} "
        "--dropout {input.dropout} --cosines {params.cosines} --out {output.md} --csv {output.csv} "
        "--plots results/plots/audit > {log} 2>&1 && python3 -m deltalora html {output.md} --out {output.html} >> {log} 2>&1"
