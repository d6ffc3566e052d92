# Run-time statistics of the training jobs (their `benchmark:` files), for the report's "Memory and
# speed" category. The report's flags and catalogue are in report_common.smk.


include: "report_common.smk"


rule runtime_table:
    input:
        training_benchmarks(),
    output:
        csv="results/runtime_table.csv",
        md="results/runtime_table.md",
        html="results/runtime_table.html",
    params:
        profile=PROFILE,
        smoke="--smoke" if config.get("smoke") else "",
    log:
        "results/logs/runtime_table.log",
    conda:
        "../envs/deltalora.yaml"
    shell:
        "python3 -m deltalora collect runtime {input} --out {output.csv} --profile {params.profile} "
        "{params.smoke} > {log} 2>&1 && python3 -m deltalora html {output.md} --out {output.html} >> {log} 2>&1"
