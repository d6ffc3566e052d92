# Memory and speed: full FT, LoRA, Delta-LoRA inplace / folded / naive, one fresh process per
# measurement on CPU (interleaved rounds). It asks for memory.threads cores (default 8; a local run gets
# at most --cores) so nothing else disturbs the timings (Snakemake's total core count is unknown under SLURM).
# Two rules: the measurements are written to disk by the first, the table and the plot are made from them by
# the second, so that a failing table or plot never throws away the measurements (and a rerun does not
# re-measure).
MEMORY_MEASUREMENTS = "results/memory/measurements.json"


rule memory_measure:
    output:
        MEMORY_MEASUREMENTS,
    params:
        models=",".join(config["memory"]["models"]),
        device=config["memory"]["device"],
        dtypes=",".join(config["memory"]["dtypes"]),
        rounds=config["memory"]["rounds"],
        batch=config["memory"]["batch"],
        seq=config["memory"]["seq"],
        bf16_model=config["memory"]["bf16_model"],
        qlora_models=",".join(config["memory"].get("qlora_models", [])),
        # timed steps, warm-up steps and bf16 rounding-loss steps: the command's defaults unless set
        steps=" ".join(
            f"--{k.replace('_', '-')} {config['memory'][k]}"
            for k in ("steps", "warmup", "bf16_steps")
            if k in config["memory"]
        ),
    threads: int(config["memory"].get("threads", 8))
    resources:
        gpu=GPUS,
    log:
        "results/logs/memory_measure.log",
    conda:
        "../envs/deltalora.yaml"
    shell:
        "python3 -m deltalora bench memory --models {params.models} --device {params.device} --dtypes {params.dtypes} "
        "--rounds {params.rounds} --batch {params.batch} --seq {params.seq} --threads {threads} "
        "--bf16-model {params.bf16_model} --qlora-models '{params.qlora_models}' {params.steps} "
        "--measurements {output} > {log} 2>&1"


rule memory_table:
    input:
        MEMORY_MEASUREMENTS,
    output:
        csv="results/memory_table.csv",
        md="results/memory_table.md",
        html="results/memory_table.html",
    params:
        profile=PROFILE,
        smoke="--smoke" if config.get("smoke") else "",
    log:
        "results/logs/memory_table.log",
    conda:
        "../envs/deltalora.yaml"
    shell:
        "python3 -m deltalora collect memory {input} --profile {params.profile} {params.smoke} --out {output.csv} "
        "--plots results/plots > {log} 2>&1 && python3 -m deltalora html {output.md} --out {output.html} >> {log} 2>&1"
